//! Deterministic simulation of a Raft cluster (TigerBeetle VOPR style; etcd-io/raft
//! `rafttest/`; openraft `tests-turmoil`). Everything random comes from one seed.
//!
//! What is modelled:
//! - **Members** run `RawNode` and handle each Ready as the server's raft core does:
//!   WAL write (snapshot, entries, hard state) → fsync only if `must_sync` → the
//!   storage raft reads → send (a snapshot goes out fresh at the applied index with
//!   the current membership, as etcdserver merges it) → apply (conf changes through
//!   `apply_conf_change` + `set_conf_state`) → match read states → advance → serve
//!   reads. The `must_sync` contract itself is checked.
//! - **Disk** (`disk.rs`): WAL records with a synced prefix and an unsynced tail. A
//!   crash strikes between steps or at any of four points inside Ready handling and
//!   loses the unsynced tail (or, with a torn tail, all but a prefix of it). A member
//!   restarts from its disk only: log, hard state, membership and state machine image
//!   of its newest snapshot or checkpoint; later conf changes are applied again.
//! - **Network**: loss, duplication, delay with reordering, long delays beyond the
//!   election timeout, partitions (one node isolated, majority/minority, a bridge node
//!   that sees both sides, one-way, random asymmetric links), paused members (no ticks,
//!   no deliveries, a backlog on resume), unreachable and snapshot reports.
//! - **Membership**: the admin asks the leader to add a voter, add a learner, promote
//!   a learner, remove a voter, remove a learner or remove the leader itself. New
//!   members start empty and catch up by log (the bootstrap conf changes are in the
//!   log, as etcd does) or snapshot; a removed member stops after a delay once it
//!   applied its removal, or at once when a peer that applied it refuses its
//!   messages (etcd rafthttp `errMemberRemoved`).
//! - **Clients**: puts on a few registers; linearizable reads (ReadIndex) from any
//!   member, with contexts numbered 1, 2, 3… on every member and again after every
//!   restart; log compaction with checkpoints; leader transfers; small resource
//!   limits in some seeds.
//! - **Fuzz** (`fuzz.rs`): peer messages no correct node may be hurt by (term 0,
//!   stale terms, `u64::MAX` indexes, invalid entries, bogus snapshots, random types
//!   and fields) are stepped into members: a panic fails the seed, `step` may return
//!   an error. Random and bit-flipped bytes are fed to the decoder.
//!
//! After every step the invariants in `invariants/` are checked; at the end faults
//! stop and the cluster must elect a leader and apply a final write on every member.
//!
//! Files: `cluster.rs` (members, network, events, liveness), `disk.rs`, `faults.rs`
//! (the seed's fault mix, partition shapes), `fuzz.rs`, `kv.rs` (the registers),
//! `rng.rs`, `invariants/` (one file per property).

pub mod cluster;
pub mod disk;
pub mod faults;
pub mod fuzz;
pub mod invariants;
pub mod kv;
pub mod rng;

use std::panic::{catch_unwind, AssertUnwindSafe};

use cluster::{panic_text, Cluster, Sabotage, Stats};

/// What a clean run did.
#[derive(Debug)]
pub struct Outcome {
    /// Indexes committed.
    pub committed: usize,
    /// Terms that had a leader.
    pub terms_with_leader: usize,
    /// Steps run (faulty and liveness phases).
    pub steps: u64,
    /// Counters.
    pub stats: Stats,
}

/// Runs one seed: `steps` faulty steps, then the liveness phase. On failure the
/// message names the seed's fault mix and the members' state.
pub fn run_seed(seed: u64, size: u64, steps: u64) -> Result<Outcome, String> {
    run_seed_with(seed, size, steps, Sabotage::None)
}

/// [`run_seed`] with a deliberately broken application.
pub fn run_seed_with(
    seed: u64,
    size: u64,
    steps: u64,
    sabotage: Sabotage,
) -> Result<Outcome, String> {
    let mut context = String::new();
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        let mut c = Cluster::new(seed, size)?;
        c.sabotage = sabotage;
        context = format!("faults: {:?}", c.faults);
        let r = (|| {
            for _ in 0..steps {
                c.step()?;
            }
            c.liveness()
        })();
        match r {
            Ok(()) => Ok(Outcome {
                committed: c.inv.commits.facts.len(),
                terms_with_leader: c.inv.election.leaders.len(),
                steps: c.now,
                stats: c.stats.clone(),
            }),
            Err(e) => Err(format!(
                "{e}\n  at step {} (partition: {})\n  {context}\n  stats: {:?}\n{}",
                c.now,
                c.partition,
                c.stats,
                c.describe()
            )),
        }
    }));
    match outcome {
        Ok(r) => r,
        Err(p) => Err(format!("panic: {}\n  {context}", panic_text(&p))),
    }
}
