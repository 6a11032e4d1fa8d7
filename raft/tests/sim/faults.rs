//! Fault parameters, all drawn from the seed (TigerBeetle VOPR style), and the
//! partition shapes the network can be cut into.

use std::collections::BTreeSet;

use super::rng::Rng;

/// Election timeout of every node, in ticks (one simulation step is one tick).
pub const ELECTION_TICKS: usize = 10;
/// Longest heartbeat interval a seed draws, in ticks.
pub const HEARTBEAT_TICKS_MAX: usize = 3;
const _: () = assert!(HEARTBEAT_TICKS_MAX < ELECTION_TICKS);

/// How hostile one seed's run is. Probabilities are per mille, per step unless said.
#[derive(Clone, Debug)]
pub struct Faults {
    /// A sent message is lost.
    pub loss_per_mille: u64,
    /// A sent message is delivered twice (each copy with its own delay).
    pub dup_per_mille: u64,
    /// Ordinary delivery delay is uniform in `0..=delay_ticks_max` (reorders).
    pub delay_ticks_max: u64,
    /// A message is held much longer: up to `long_delay_ticks_max` (above the election
    /// timeout, so it arrives from an old term).
    pub long_delay_per_mille: u64,
    /// Upper bound of a long delay, in ticks.
    pub long_delay_ticks_max: u64,
    /// A running node crashes between two steps.
    pub crash_per_mille: u64,
    /// A node crashes at each crash point while handling a Ready (after writing,
    /// after syncing, after sending, after applying).
    pub ready_crash_per_mille: u64,
    /// On a crash, some of the written but unsynced records survive (a torn tail
    /// that stops at a record boundary); otherwise all of them are lost.
    pub torn_tail: bool,
    /// A crashed node restarts.
    pub restart_per_mille: u64,
    /// The network is cut into a new partition.
    pub partition_per_mille: u64,
    /// The partition heals.
    pub heal_per_mille: u64,
    /// A running node is paused (no ticks, no deliveries) for up to `pause_ticks_max`.
    pub pause_per_mille: u64,
    /// Longest pause, in ticks.
    pub pause_ticks_max: u64,
    /// The leader is asked for a membership change.
    pub conf_change_per_mille: u64,
    /// A fuzzed peer message is stepped into a node.
    pub fuzz_per_mille: u64,
    /// A client write is proposed.
    pub propose_per_mille: u64,
    /// A member asks for a linearizable read.
    pub read_per_mille: u64,
    /// The leader is asked to transfer leadership.
    pub transfer_per_mille: u64,
    /// A node checkpoints its state machine and compacts its log.
    pub compact_per_mille: u64,
    /// Raft's pre-vote option on every node.
    pub pre_vote: bool,
    /// Raft's check-quorum option on every node.
    pub check_quorum: bool,
    /// Heartbeat interval of every node, in ticks (`1..=HEARTBEAT_TICKS_MAX`).
    pub heartbeat_ticks: usize,
    /// Appends in flight per follower (1 = stop and wait).
    pub max_inflight_msgs: usize,
    /// Bytes of entries per Append (0 = one entry per message).
    pub max_size_per_msg: u64,
    /// Raft's resource limits on every node (small in some seeds, so that proposals,
    /// committed entries per Ready and pending reads hit them).
    pub limits: raft::Limits,
}

impl Faults {
    /// Draws a fault mix: each kind is off in some seeds and heavy in others.
    pub fn draw(rng: &mut Rng) -> Faults {
        let mut sometimes = |max: u64| {
            if rng.chance(750) {
                rng.below(max + 1)
            } else {
                0
            }
        };
        let loss_per_mille = sometimes(150);
        let dup_per_mille = sometimes(80);
        let long_delay_per_mille = sometimes(20);
        let crash_per_mille = sometimes(10);
        let ready_crash_per_mille = sometimes(6);
        let partition_per_mille = sometimes(20);
        let pause_per_mille = sometimes(8);
        let conf_change_per_mille = sometimes(40);
        let fuzz_per_mille = sometimes(40);
        let transfer_per_mille = sometimes(8);
        Faults {
            loss_per_mille,
            dup_per_mille,
            delay_ticks_max: rng.range(0, 4),
            long_delay_per_mille,
            long_delay_ticks_max: rng.range(ELECTION_TICKS as u64 + 1, 6 * ELECTION_TICKS as u64),
            crash_per_mille,
            ready_crash_per_mille,
            torn_tail: rng.chance(500),
            restart_per_mille: rng.range(10, 80),
            partition_per_mille,
            heal_per_mille: rng.range(5, 40),
            pause_per_mille,
            pause_ticks_max: rng.range(2, 4 * ELECTION_TICKS as u64),
            conf_change_per_mille,
            fuzz_per_mille,
            propose_per_mille: rng.range(100, 600),
            read_per_mille: rng.range(50, 400),
            transfer_per_mille,
            compact_per_mille: rng.range(5, 60),
            pre_vote: rng.chance(500),
            check_quorum: rng.chance(500),
            heartbeat_ticks: rng.range(1, HEARTBEAT_TICKS_MAX as u64) as usize,
            max_inflight_msgs: rng.pick(&[1, 2, 8, 64]),
            max_size_per_msg: rng.pick(&[0, 26, 256, 4096]),
            limits: draw_limits(rng),
        }
    }

    /// No more faults: what the liveness phase runs with.
    pub fn calm(&mut self) {
        self.loss_per_mille = 0;
        self.dup_per_mille = 0;
        self.delay_ticks_max = self.delay_ticks_max.min(1);
        self.long_delay_per_mille = 0;
        self.crash_per_mille = 0;
        self.ready_crash_per_mille = 0;
        self.restart_per_mille = 1000;
        self.partition_per_mille = 0;
        self.heal_per_mille = 1000;
        self.pause_per_mille = 0;
        self.conf_change_per_mille = 0;
        self.fuzz_per_mille = 0;
        self.transfer_per_mille = 0;
        // Clients stop writing too (the final write is the liveness check's own);
        // reads go on, they add no entries.
        self.propose_per_mille = 0;
    }
}

fn draw_limits(rng: &mut Rng) -> raft::Limits {
    let mut limits = raft::Limits::default();
    if rng.chance(500) {
        // A few put entries (10 data bytes each), or 0 = unlimited.
        limits.max_uncommitted_entries_bytes = rng.pick(&[0, 10, 30, 100, 300]);
        // One entry per Ready (0) up to a handful (26 bytes each with the header).
        limits.max_committed_entries_bytes_per_ready = rng.pick(&[0, 26, 60, 200]);
        limits.max_pending_read_index_requests = rng.range(1, 8) as usize;
    }
    limits
}

/// Directed links `(from, to)` that drop every message.
pub type Blocked = BTreeSet<(u64, u64)>;

/// Cuts `nodes` into one of the partition shapes; returns the blocked links and a
/// name for the report.
pub fn draw_partition(rng: &mut Rng, nodes: &[u64]) -> (Blocked, &'static str) {
    let mut blocked = Blocked::new();
    let both = |blocked: &mut Blocked, a: u64, b: u64| {
        blocked.insert((a, b));
        blocked.insert((b, a));
    };
    let mut shuffled = nodes.to_vec();
    rng.shuffle(&mut shuffled);
    let n = shuffled.len();
    if n < 2 {
        return (blocked, "none");
    }
    match rng.below(5) {
        0 => {
            // One node isolated, both ways.
            for &o in &shuffled[1..] {
                both(&mut blocked, shuffled[0], o);
            }
            (blocked, "isolate one")
        }
        1 => {
            // Majority and minority sides (the leader may be on either).
            let cut = rng.range(1, (n as u64 - 1).max(1)) as usize;
            for &a in &shuffled[..cut] {
                for &b in &shuffled[cut..] {
                    both(&mut blocked, a, b);
                }
            }
            (blocked, "majority/minority")
        }
        2 if n >= 3 => {
            // A bridge node sees both sides; the sides do not see each other.
            let rest = &shuffled[1..];
            let cut = rng.range(1, rest.len() as u64 - 1) as usize;
            for &a in &rest[..cut] {
                for &b in &rest[cut..] {
                    both(&mut blocked, a, b);
                }
            }
            (blocked, "bridge")
        }
        3 => {
            // One node can send but not receive (or the reverse).
            let inbound = rng.chance(500);
            for &o in &shuffled[1..] {
                if inbound {
                    blocked.insert((o, shuffled[0]));
                } else {
                    blocked.insert((shuffled[0], o));
                }
            }
            (blocked, "one-way")
        }
        _ => {
            // Asymmetric: each directed link fails on its own.
            for &a in &shuffled {
                for &b in &shuffled {
                    if a != b && rng.chance(350) {
                        blocked.insert((a, b));
                    }
                }
            }
            (blocked, "asymmetric links")
        }
    }
}
