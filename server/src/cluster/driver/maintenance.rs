//! Maintenance requests the raft core answers from its state machine: the consistent cut
//! Maintenance.Snapshot streams (`api/maintenance.rs`).

use std::sync::atomic::Ordering;
use std::sync::Arc;

use futures::channel::oneshot;
use tracing::warn;

use super::RaftCore;
use crate::cluster::Membership;

/// The state machine at one applied index, as Maintenance.Snapshot writes it (etcd
/// `Backend().Snapshot()`): the `key` bucket at the revision of that index (a pinned scan:
/// writes go on while it is read), the lease table and the member table of the same
/// moment.
pub struct SnapshotCut {
    /// The applied Raft index (etcd's `consistent_index`).
    pub applied_index: u64,
    /// The Raft term when the cut was taken.
    pub term: u64,
    /// The `key` bucket at the cut's revision.
    pub scan: engine::KeyBucketScan,
    /// Leases as `(id, granted TTL in seconds)`, by ID.
    pub leases: Vec<(i64, i64)>,
    /// The member table.
    pub members: Arc<Membership>,
}

impl RaftCore {
    /// Takes a [`SnapshotCut`] at the applied index. The store's current revision is the
    /// applied index's: applies run on this thread, so no write is half-way here.
    pub(super) fn answer_snapshot(&mut self, reply: oneshot::Sender<SnapshotCut>) {
        match self.shared.reader.key_bucket_scan(0) {
            Ok(scan) => {
                let _ = reply.send(SnapshotCut {
                    applied_index: self.applied,
                    term: self.shared.term.load(Ordering::Acquire),
                    scan,
                    leases: self.lessor.table(),
                    members: self.shared.membership(),
                });
            }
            // Revision 0 is never compacted nor in the future: unreachable, but a dropped
            // reply tells the caller "server stopped" rather than panic.
            Err(e) => warn!("cannot begin a snapshot scan: {e}"),
        }
    }
}
