//! Raft consensus as a deterministic state machine, in the shape of etcd-io/raft and
//! tikv/raft-rs: the application feeds a [`RawNode`] ticks, peer messages and
//! proposals, and performs the I/O that each [`Ready`] asks for (persist, send,
//! apply, advance). No I/O, clock, thread or unseeded randomness inside.
//!
//! Implemented: elections with randomized timeouts from a seeded RNG, pre-vote,
//! check-quorum and leader stickiness; replication with log matching, conflict
//! backtracking by term, probe/replicate/snapshot flow control and an inflight
//! window; commit of current-term entries at a quorum of durable copies (Raft
//! §5.4.2; the leader's own copy counts once persisted); ReadIndex (etcd
//! `ReadOnlySafe`, with heartbeat rounds numbered by the leader); leader transfer
//! (TimeoutNow); snapshots to lagging followers; single-step membership changes with
//! learners (a removed leader hands over and steps down); resource [`Limits`].
//! Peer input is validated by [`RawNode::step`] ([`Error::MessageInvalid`]).
#![deny(missing_docs)]

mod config;
mod errors;
mod log_unstable;
mod message;
mod progress;
mod raft;
mod raft_leader;
mod raft_log;
mod raw_node;
mod read_only;
mod storage;

#[cfg(test)]
mod tests;

pub use crate::config::{
    Config, Limits, ELECTION_TICK_MAX, INFLIGHT_MSGS_MAX, PENDING_READ_INDEX_REQUESTS_MAX,
};
pub use crate::errors::{Error, Result};
pub use crate::message::{
    ConfChange, ConfChangeType, ConfState, Entry, EntryType, HardState, Message, MessageType,
    Snapshot, SnapshotMetadata,
};
pub use crate::progress::{PeerProgress, ProgressState};
pub use crate::raft::{SoftState, StateRole};
pub use crate::raw_node::{RawNode, Ready, Status};
pub use crate::read_only::ReadState;
pub use crate::storage::{entry_size, MemStorage, RaftState, Storage, ENTRY_HEADER_BYTES};
