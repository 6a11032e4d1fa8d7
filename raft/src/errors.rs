//! The crate's one error type.
//!
//! Messages follow etcd-io/raft (`raft.go`, `storage.go`) and tikv/raft-rs
//! (`errors.rs`) where those define one, so that logs read the same.

/// Everything that can go wrong in the `raft` crate.
///
/// Storage errors (`Compacted`, `SnapshotOutOfDate`, `Unavailable`,
/// `SnapshotTemporarilyUnavailable`, `Storage`) are returned by [`crate::Storage`]
/// implementations; the rest by [`crate::RawNode`] and [`crate::Config`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// A proposal (or conf change) was ignored: this node is not the leader, there is
    /// no leader, a leader transfer is in progress, or the leader was removed from the
    /// configuration. etcd `ErrProposalDropped`.
    #[error("raft proposal dropped")]
    ProposalDropped,
    /// Storage: the requested index is below the first index because the log was
    /// compacted. etcd `ErrCompacted`.
    #[error("requested index is unavailable due to compaction")]
    Compacted,
    /// Storage: the snapshot offered is older than the one already held.
    /// etcd `ErrSnapOutOfDate`.
    #[error("requested index is older than the existing snapshot")]
    SnapshotOutOfDate,
    /// Storage: the requested index is above the last index. etcd `ErrUnavailable`.
    #[error("requested entry at index is unavailable")]
    Unavailable,
    /// Storage: no snapshot that covers the requested index exists yet; raft retries
    /// later. etcd `ErrSnapshotTemporarilyUnavailable`.
    #[error("snapshot is temporarily unavailable")]
    SnapshotTemporarilyUnavailable,
    /// Storage: any other storage failure (for example a gap between the stored log
    /// and appended entries), with a description.
    #[error("raft storage: {0}")]
    Storage(String),
    /// [`crate::RawNode::step`] was given a message type that only the node itself
    /// may generate (Hup, Beat, Unreachable, SnapStatus, CheckQuorum).
    /// etcd `ErrStepLocalMsg`.
    #[error("raft: cannot step raft local message")]
    StepLocalMsg,
    /// [`crate::RawNode::step`] was given a response from a node that is not in the
    /// configuration. etcd `ErrStepPeerNotFound`.
    #[error("raft: cannot step as peer not found")]
    StepPeerNotFound,
    /// A ReadIndex request was refused because the leader already holds
    /// `max_pending_read_index_requests` unanswered ones ([`crate::Limits`]); retry
    /// later. Returned by [`crate::RawNode::try_read_index`] on the leader, and by
    /// [`crate::RawNode::step`] for a request a follower forwarded (that follower's
    /// read gets no answer, as when etcd drops a read).
    #[error("raft: read index dropped: max_pending_read_index_requests ({max_pending_read_index_requests}) reached")]
    ReadIndexQueueFull {
        /// The limit that was reached.
        max_pending_read_index_requests: usize,
    },
    /// [`crate::RawNode::try_read_index`] on a node that knows no leader (etcd drops
    /// such a request silently).
    #[error("raft: read index dropped: no leader")]
    ReadIndexNoLeader,
    /// A [`crate::Config`] or [`crate::Limits`] field is out of range; the message names the field and
    /// the allowed range.
    #[error("raft config invalid: {0}")]
    ConfigInvalid(String),
    /// A conf change cannot be applied (for example turning a voter into a learner).
    #[error("raft conf change invalid: {0}")]
    ConfChangeInvalid(String),
    /// A peer message is malformed (entries not contiguous after `index`, entry
    /// terms above the message term, ...). It was not stepped.
    #[error("raft message invalid: {0}")]
    MessageInvalid(String),
    /// Bytes given to [`crate::Message::decode`] or [`crate::ConfChange::decode`]
    /// are not a valid encoding; the message names the field and byte offset.
    #[error("raft decode: {0}")]
    Decode(String),
}

/// `Result` with the crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;
