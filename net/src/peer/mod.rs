//! The peer transport: how members of a Cairn cluster talk to each other on
//! `--listen-peer-urls` (etcd's port 2380). It carries opaque bytes; the server encodes
//! Raft messages (`raft::Message::encode`/`decode`), so `net` does not depend on `raft`.
//!
//! # Wire format
//!
//! HTTP/2 with prior knowledge (h2c) over TCP; every stream is a gRPC call (grpc
//! `doc/PROTOCOL-HTTP2.md`: `POST`, `content-type: application/grpc`, messages framed as
//! `compressed u8 = 0 | length u32 big-endian | bytes`, `grpc-status`/`grpc-message`
//! trailers, Trailers-Only for errors before any message), served by this crate's gRPC
//! server. Each direction between two members has its own connection: member A dials B to
//! send to B.
//!
//! Every request carries the sender's identity, IDs in lower-case hex as etcd prints them:
//!
//! | header | value | etcd's rafthttp equivalent |
//! |---|---|---|
//! | `cairn-cluster-id` | the sender's cluster ID | `X-Etcd-Cluster-ID` |
//! | `cairn-member-id` | the sender's member ID | `X-Server-From` |
//! | `cairn-to-member-id` | the member the sender means to reach | `X-Raft-To` |
//!
//! The receiver refuses, before reading any message: a missing or malformed header
//! (INVALID_ARGUMENT), another cluster ID (FAILED_PRECONDITION "cairn: cluster ID mismatch:
//! sender S is in cluster X, member M is in cluster Y", and a warning naming both cluster
//! IDs), another `to` member (FAILED_PRECONDITION "cairn: member ID mismatch ..."), and a
//! sender that [`PeerHandler::accepts`] refuses (PERMISSION_DENIED).
//!
//! | path | kind | request messages | response |
//! |---|---|---|---|
//! | `/cairn.peer.Peer/Raft` | client streaming, long-lived | one Raft message each | one empty message at once (the acknowledgement), then nothing until the stream ends |
//! | `/cairn.peer.Peer/Snapshot` | client streaming, one per snapshot | the meta, then the data chunks; the sender half-closes after the last | one empty message and OK once the handler succeeded, or ABORTED with the handler's reason |
//! | `/cairn.peer.Call/<method>` | unary, with `grpc-timeout` | the body | the answer, or the handler's status |
//!
//! # Limits
//!
//! [`PeerLimits`] names them all: a Raft message, snapshot meta, unary body or answer is at
//! most `message_bytes_max`; a snapshot chunk at most `snapshot_chunk_bytes_max` (larger
//! ones are refused by both sides with RESOURCE_EXHAUSTED); each peer's outgoing queue holds
//! at most `queue_messages_max` messages and `queue_bytes_max` bytes. HTTP/2 flow control
//! (1 MiB per stream, 16 MiB per connection, as the client port) bounds what a receiver
//! buffers, and makes a snapshot sender wait for a slow receiver.
//!
//! # Tasks
//!
//! Everything is per core (`Rc`, no locks) and runs as local glommio tasks: [`serve_peers`]
//! (or [`PeerServer`]) on the receiving side, [`PeerTransport`] on the sending side (one task
//! per peer). Both stop on their shutdown signal.

mod server;
mod transport;
pub(crate) mod wire;

use std::time::Duration;

pub use server::{serve_peers, PeerHandler, PeerServer, SnapshotChunks};
pub use transport::{PeerStatus, PeerTransport, RoundTripObserver};
pub use wire::{
    PeerIdentity, CALL_PATH_PREFIX, HEADER_CLUSTER_ID, HEADER_MEMBER_ID, HEADER_TO_MEMBER_ID,
    METHOD_NAME_BYTES_MAX, RAFT_PATH, SNAPSHOT_PATH,
};

/// Concurrent streams a peer may open on one connection (SETTINGS_MAX_CONCURRENT_STREAMS;
/// Go's HTTP/2 server default, which etcd's peer listener uses). A sender's further calls
/// wait for a free stream within their timeout.
pub const PEER_CONCURRENT_STREAMS_MAX: u32 = 250;

/// Most bytes of queued Raft messages (framing included) written to the Raft stream as one
/// batch; a single larger message is sent alone.
pub const RAFT_BATCH_BYTES_MAX: usize = 1024 * 1024;

/// The peer transport's limits and timeouts. `Default` gives values suited to etcd's
/// default timing (heartbeat 100 ms, election 1000 ms).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerLimits {
    /// Largest Raft message, snapshot meta, unary body or answer, in bytes. Default
    /// 16 MiB: a Raft append carries up to 1 MiB of entries (etcd `MaxSizePerMsg`) but at
    /// least one entry, and one entry may be a whole 1.5 MiB request plus its overhead.
    pub message_bytes_max: usize,
    /// Raft messages queued per peer before `send` drops. Default 4096 (etcd rafthttp
    /// `streamBufSize`).
    pub queue_messages_max: usize,
    /// Bytes of Raft messages queued per peer before `send` drops. Default 64 MiB.
    pub queue_bytes_max: usize,
    /// Largest snapshot data chunk, in bytes; at most `message_bytes_max`. Default 1 MiB.
    pub snapshot_chunk_bytes_max: usize,
    /// Time allowed to connect, complete the HTTP/2 handshake and have the Raft stream
    /// accepted. Default 1 s (etcd rafthttp's peer dial timeout).
    pub dial_timeout: Duration,
    /// First pause before dialing a peer again after a failed attempt. Default 50 ms.
    pub backoff_min: Duration,
    /// Longest pause between attempts (the pause doubles after each failure). Default 1 s,
    /// the election timeout: a peer that comes back is reached within one election.
    pub backoff_max: Duration,
    /// Time allowed for a unary call, waiting for the connection included; the timeout is
    /// also how long a snapshot waits for the connection. Default 5 s (etcd's request
    /// timeout).
    pub request_timeout: Duration,
    /// Pause between HTTP/2 PINGs on an idle or busy connection. Default 1 s.
    pub keepalive_interval: Duration,
    /// Time allowed for a PING's answer before the connection is dropped and dialed again.
    /// Default 5 s (etcd rafthttp `ConnReadTimeout`).
    pub keepalive_timeout: Duration,
}

impl Default for PeerLimits {
    fn default() -> PeerLimits {
        PeerLimits {
            message_bytes_max: 16 * 1024 * 1024,
            queue_messages_max: 4096,
            queue_bytes_max: 64 * 1024 * 1024,
            snapshot_chunk_bytes_max: 1024 * 1024,
            dial_timeout: Duration::from_secs(1),
            backoff_min: Duration::from_millis(50),
            backoff_max: Duration::from_secs(1),
            request_timeout: Duration::from_secs(5),
            keepalive_interval: Duration::from_secs(1),
            keepalive_timeout: Duration::from_secs(5),
        }
    }
}

impl PeerLimits {
    /// Checks the limits; the error names the field and the allowed range.
    pub fn validate(&self) -> Result<(), String> {
        let u32_max = u32::MAX as usize;
        if self.message_bytes_max == 0 || self.message_bytes_max > u32_max {
            return Err(format!(
                "message_bytes_max must be 1..={u32_max}, got {}",
                self.message_bytes_max
            ));
        }
        if self.snapshot_chunk_bytes_max == 0
            || self.snapshot_chunk_bytes_max > self.message_bytes_max
        {
            return Err(format!(
                "snapshot_chunk_bytes_max must be 1..=message_bytes_max ({}), got {}",
                self.message_bytes_max, self.snapshot_chunk_bytes_max
            ));
        }
        if self.queue_messages_max == 0 {
            return Err("queue_messages_max must be at least 1".to_string());
        }
        if self.queue_bytes_max < self.message_bytes_max {
            return Err(format!(
                "queue_bytes_max ({}) must be at least message_bytes_max ({})",
                self.queue_bytes_max, self.message_bytes_max
            ));
        }
        let durations = [
            ("dial_timeout", self.dial_timeout),
            ("backoff_min", self.backoff_min),
            ("backoff_max", self.backoff_max),
            ("request_timeout", self.request_timeout),
            ("keepalive_interval", self.keepalive_interval),
            ("keepalive_timeout", self.keepalive_timeout),
        ];
        if let Some((name, _)) = durations.iter().find(|(_, d)| d.is_zero()) {
            return Err(format!("{name} must be greater than zero"));
        }
        if self.backoff_min > self.backoff_max {
            return Err(format!(
                "backoff_min ({:?}) must not exceed backoff_max ({:?})",
                self.backoff_min, self.backoff_max
            ));
        }
        Ok(())
    }
}

/// Errors of the peer transport's configuration and of [`PeerTransport::send`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PeerError {
    /// No peer with this member ID was added (or it was removed).
    #[error("peer transport: unknown peer {0:x}")]
    UnknownPeer(u64),
    /// A Raft message over `message_bytes_max`; nothing was queued.
    #[error(
        "peer transport: message of {bytes} bytes to peer {to:x} exceeds message_bytes_max {max}"
    )]
    MessageTooLarge {
        /// The peer.
        to: u64,
        /// The message's size.
        bytes: usize,
        /// `message_bytes_max`.
        max: usize,
    },
    /// The peer is not connected: the message was dropped and the peer reported unreachable.
    #[error("peer transport: peer {0:x} is not connected, message dropped")]
    NotConnected(u64),
    /// The peer's queue is full: the message was dropped and the peer reported unreachable.
    #[error("peer transport: outgoing queue of peer {0:x} is full, message dropped")]
    QueueFull(u64),
    /// A peer URL is not `http://host:port`; the text names the URL and the problem.
    #[error("peer transport: {0}")]
    InvalidUrl(String),
    /// A peer was given no URL.
    #[error("peer transport: peer {0:x} has no URLs")]
    NoUrls(u64),
    /// A member cannot be its own peer.
    #[error("peer transport: member {0:x} cannot be its own peer")]
    SelfPeer(u64),
    /// The transport was shut down.
    #[error("peer transport: shut down")]
    ShutDown,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_limits_are_valid_and_checks_name_fields() {
        assert_eq!(PeerLimits::default().validate(), Ok(()));
        let zero_queue = PeerLimits {
            queue_messages_max: 0,
            ..PeerLimits::default()
        };
        assert!(zero_queue
            .validate()
            .unwrap_err()
            .contains("queue_messages_max"));
        let small_queue = PeerLimits {
            queue_bytes_max: 10,
            ..PeerLimits::default()
        };
        assert!(small_queue
            .validate()
            .unwrap_err()
            .contains("queue_bytes_max"));
        let backoff = PeerLimits {
            backoff_min: Duration::from_secs(2),
            backoff_max: Duration::from_secs(1),
            ..PeerLimits::default()
        };
        assert!(backoff.validate().unwrap_err().contains("backoff_min"));
        let chunk = PeerLimits {
            snapshot_chunk_bytes_max: 2,
            message_bytes_max: 1,
            queue_bytes_max: 1,
            ..PeerLimits::default()
        };
        assert!(chunk
            .validate()
            .unwrap_err()
            .contains("snapshot_chunk_bytes_max"));
        let zero = PeerLimits {
            dial_timeout: Duration::ZERO,
            ..PeerLimits::default()
        };
        assert!(zero.validate().unwrap_err().contains("dial_timeout"));
    }
}
