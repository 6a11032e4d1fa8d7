//! Node configuration (etcd-io/raft `raft.go` `Config`, raft-rs `config.rs`).

use crate::errors::{Error, Result};

/// Largest accepted `election_tick`; far above any sensible value, it only keeps
/// `2 * election_tick` (the randomized timeout's upper bound) from overflowing.
pub const ELECTION_TICK_MAX: usize = 1 << 20;
/// Largest accepted `max_inflight_msgs` (bounds the per-follower inflight ring).
pub const INFLIGHT_MSGS_MAX: usize = 1 << 16;

/// Largest accepted [`Limits::max_pending_read_index_requests`].
pub const PENDING_READ_INDEX_REQUESTS_MAX: usize = 1 << 20;

/// Resource limits of one node, given to [`crate::RawNode::new_with_limits`]
/// ([`crate::RawNode::new`] uses the defaults). Kept apart from [`Config`] so that
/// code building a `Config` with a struct literal keeps compiling when a limit is
/// added.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Most bytes of entry data (payloads only, as etcd counts them) that a leader
    /// holds proposed but not yet handed out as committed entries. A proposal that
    /// would go beyond it fails with [`Error::ProposalDropped`]; a proposal is always
    /// accepted when nothing is outstanding, and empty entries always are (the new
    /// leader's entry). 0 = unlimited. Default 1 GiB (etcd raftexample).
    /// etcd `Config.MaxUncommittedEntriesSize`.
    pub max_uncommitted_entries_bytes: u64,
    /// Most bytes of committed entries in one [`crate::Ready`] (each entry counted as
    /// its data plus [`crate::ENTRY_HEADER_BYTES`]); one entry is always handed out
    /// even if larger, so 0 means one entry per Ready. The rest follow in later
    /// Readys. Default 1 MiB (etcd's default: `MaxSizePerMsg`, 1 MiB in the etcd
    /// server). etcd `Config.MaxCommittedSizePerReady`.
    pub max_committed_entries_bytes_per_ready: u64,
    /// Most ReadIndex requests a leader holds unanswered (waiting for an entry of its
    /// term to commit, or for a heartbeat round to be acknowledged). Further requests
    /// fail with [`Error::ReadIndexQueueFull`]. Default 4096; allowed range
    /// `1..=1048576` ([`PENDING_READ_INDEX_REQUESTS_MAX`]).
    pub max_pending_read_index_requests: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_uncommitted_entries_bytes: 1 << 30,
            max_committed_entries_bytes_per_ready: 1 << 20,
            max_pending_read_index_requests: 4096,
        }
    }
}

impl Limits {
    /// Checks every field's range.
    ///
    /// Errors: [`Error::ConfigInvalid`] naming the first bad field and its allowed range.
    pub fn validate(&self) -> Result<()> {
        let n = self.max_pending_read_index_requests;
        if n == 0 || n > PENDING_READ_INDEX_REQUESTS_MAX {
            return Err(Error::ConfigInvalid(format!(
                "max_pending_read_index_requests must be in 1..={PENDING_READ_INDEX_REQUESTS_MAX}, got {n}"
            )));
        }
        Ok(())
    }
}

/// Configuration of one Raft node. All durations are in ticks: the caller decides how
/// long one [`crate::RawNode::tick`] is (etcd: `--heartbeat-interval`, 100 ms).
#[derive(Clone, Debug)]
pub struct Config {
    /// This node's id; must not be 0 (0 means "none" in messages).
    pub id: u64,
    /// A follower that hears nothing from a leader for a randomized timeout in
    /// `[election_tick, 2 * election_tick)` ticks starts an election. A leader with
    /// `check_quorum` steps down after `election_tick` ticks without hearing from a
    /// quorum. Default 10; must be greater than `heartbeat_tick`.
    pub election_tick: usize,
    /// A leader sends heartbeats every `heartbeat_tick` ticks. Default 1, must be ≥ 1.
    pub heartbeat_tick: usize,
    /// Soft limit in bytes of the entries in one Append message (each entry counted as
    /// its data plus [`crate::ENTRY_HEADER_BYTES`]); one entry is always sent even if
    /// larger, so 0 means one entry per message.
    /// Default 1 MiB (etcd server `maxSizePerMsg`).
    pub max_size_per_msg: u64,
    /// Most Append messages in flight to one follower in the replicate state.
    /// Default 256; allowed range `1..=65536`.
    pub max_inflight_msgs: usize,
    /// Pre-vote (Raft thesis §9.6): a candidate first checks that it could win before
    /// raising its term, so a rejoining partitioned node does not disrupt the cluster.
    /// Default true (etcd server `--pre-vote` default).
    pub pre_vote: bool,
    /// Check-quorum: a leader steps down if it has not heard from a quorum within an
    /// election timeout, and followers ignore vote requests while they hear from a
    /// leader (leader stickiness). Default true (etcd server sets `CheckQuorum`).
    pub check_quorum: bool,
    /// The last applied index when restarting; entries up to it are not handed out as
    /// committed again. 0 for a fresh node.
    pub applied: u64,
    /// Seed of the node's random number generator (randomized election timeout). The
    /// node mixes its id into it, so the same seed on every member is fine. Give a
    /// different seed at each start of a node (the server takes it from the clock):
    /// it also tags the reads the node forwards to the leader, so that an answer to a
    /// read sent before a restart is not taken for the answer to a new read with the
    /// same context.
    pub seed: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            id: 0,
            election_tick: 10,
            heartbeat_tick: 1,
            max_size_per_msg: 1024 * 1024,
            max_inflight_msgs: 256,
            pre_vote: true,
            check_quorum: true,
            applied: 0,
            seed: 0,
        }
    }
}

impl Config {
    /// A default configuration for node `id`.
    pub fn new(id: u64) -> Self {
        Config {
            id,
            ..Default::default()
        }
    }

    /// Checks every field's range.
    ///
    /// Errors: [`Error::ConfigInvalid`] naming the first bad field and its allowed range.
    pub fn validate(&self) -> Result<()> {
        if self.id == 0 {
            return Err(Error::ConfigInvalid(
                "id must be in 1..=18446744073709551615, got 0".to_string(),
            ));
        }
        if self.heartbeat_tick == 0 {
            return Err(Error::ConfigInvalid(
                "heartbeat_tick must be at least 1, got 0".to_string(),
            ));
        }
        if self.election_tick <= self.heartbeat_tick || self.election_tick > ELECTION_TICK_MAX {
            return Err(Error::ConfigInvalid(format!(
                "election_tick must be in {}..={} (greater than heartbeat_tick {}), got {}",
                self.heartbeat_tick + 1,
                ELECTION_TICK_MAX,
                self.heartbeat_tick,
                self.election_tick
            )));
        }
        if self.max_inflight_msgs == 0 || self.max_inflight_msgs > INFLIGHT_MSGS_MAX {
            return Err(Error::ConfigInvalid(format!(
                "max_inflight_msgs must be in 1..={}, got {}",
                INFLIGHT_MSGS_MAX, self.max_inflight_msgs
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_with_id_is_valid() {
        assert_eq!(Config::new(1).validate(), Ok(()));
    }

    #[test]
    fn validate_names_field_and_range() {
        let err = Config::default().validate().unwrap_err();
        assert_eq!(
            err.to_string(),
            "raft config invalid: id must be in 1..=18446744073709551615, got 0"
        );
        let mut c = Config::new(1);
        c.heartbeat_tick = 0;
        assert_eq!(
            c.validate().unwrap_err().to_string(),
            "raft config invalid: heartbeat_tick must be at least 1, got 0"
        );
        let mut c = Config::new(1);
        c.election_tick = 1;
        assert_eq!(
            c.validate().unwrap_err().to_string(),
            "raft config invalid: election_tick must be in 2..=1048576 (greater than heartbeat_tick 1), got 1"
        );
        let mut c = Config::new(1);
        c.max_inflight_msgs = 0;
        assert_eq!(
            c.validate().unwrap_err().to_string(),
            "raft config invalid: max_inflight_msgs must be in 1..=65536, got 0"
        );
    }
}
