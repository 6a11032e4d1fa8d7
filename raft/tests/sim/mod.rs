//! Deterministic simulation of a Raft cluster (TigerBeetle VOPR style; etcd-io/raft
//! `rafttest/`; openraft `tests-turmoil`). Everything random comes from one seed.
//!
//! - `cluster.rs`: members handling Ready as the server does, crashes at every
//!   step of that handling, network faults, membership changes, client writes and
//!   reads, the liveness phase.
//! - `disk.rs`: the WAL with a synced prefix and an unsynced (possibly torn) tail.
//! - `faults.rs`: the fault mix drawn per seed, partition shapes.
//! - `fuzz.rs`: fuzzed peer messages and decoder input.
//! - `kv.rs`: the replicated registers.
//! - `invariants/`: one file per safety property, checked after every step.

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
