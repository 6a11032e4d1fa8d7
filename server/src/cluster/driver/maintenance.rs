//! Maintenance requests the raft core answers from its state machine: the consistent cut
//! Maintenance.Snapshot streams (`api/maintenance.rs`), and Defragment.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use futures::channel::oneshot;
use net::Status;
use tracing::{info, warn};

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
    /// Leases as `(id, granted TTL, remaining TTL at the last checkpoint)` in seconds, by
    /// ID.
    pub leases: Vec<(i64, i64, i64)>,
    /// The member table.
    pub members: Arc<Membership>,
    /// The raised alarms.
    pub alarms: Vec<net::pb::etcdserverpb::AlarmMember>,
    /// The auth store.
    pub auth: Arc<crate::auth::store::AuthStore>,
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
                    alarms: self.alarms.list(),
                    auth: self.auth.clone(),
                });
            }
            // Revision 0 is never compacted nor in the future: unreachable, but a dropped
            // reply tells the caller "server stopped" rather than panic.
            Err(e) => warn!("cannot begin a snapshot scan: {e}"),
        }
    }
}

impl RaftCore {
    /// Maintenance.Defragment (etcd `backend.Defrag`, which copies the whole bbolt file
    /// while every write waits): here the store's garbage collection is planned for every
    /// closed value segment holding a record no longer retained, and runs in bounded steps
    /// between requests ([`RaftCore::maintain_store`]), so writes go on. The reply goes
    /// out once it is done ([`RaftCore::maybe_finish_defragment`]).
    pub(super) fn start_defragment(&mut self, reply: oneshot::Sender<Result<(), Status>>) {
        if self.defragment.is_empty() {
            info!(
                "current-db-size-bytes" = self.shared.reader.size_bytes(),
                "current-db-size-in-use-bytes" = self.shared.reader.size_in_use_bytes(),
                "starting defragmentation"
            );
            if let Err(e) = self.mvcc.schedule_defragment() {
                // A value segment that cannot be created: as any failed write, fatal.
                crate::logging::fatal_storage("failed to defragment", &e);
            }
            self.defragment_started = Some(std::time::Instant::now());
        }
        self.defragment.push(reply);
        self.maintenance_due = true;
    }

    /// Answers the waiting Defragment calls once the garbage collection is done and the
    /// rewritten segments are deleted: that takes two checkpoints begun after it (until
    /// then a loadable checkpoint references them), written on the helper thread as any
    /// checkpoint, so the core keeps applying meanwhile.
    pub(super) fn maybe_finish_defragment(&mut self) {
        if self.defragment.is_empty() || self.mvcc.has_pending_work() {
            return;
        }
        if self.mvcc.has_retired_segments() {
            if self.checkpoint.is_none() {
                self.start_checkpoint();
            }
            return;
        }
        let took = self.defragment_started.take().map(|t| t.elapsed());
        info!(
            "current-db-size-bytes" = self.shared.reader.size_bytes(),
            "current-db-size-in-use-bytes" = self.shared.reader.size_in_use_bytes(),
            took = %took.map(crate::logging::go_duration).unwrap_or_default(),
            "finished defragmenting directory"
        );
        for reply in self.defragment.drain(..) {
            let _ = reply.send(Ok(()));
        }
    }
}

impl RaftCore {
    /// Proposes `alarm` with no client waiting (etcd's corruption check does the same from
    /// a goroutine); a member that cannot propose (no leader) logs it.
    pub(super) fn propose_alarm(&mut self, alarm: net::pb::etcdserverpb::AlarmRequest) {
        let request = net::pb::etcdserverpb::InternalRaftRequest {
            alarm: Some(alarm),
            ..Default::default()
        };
        let data = super::encode_entry_data(self.shared.member_id, 0, &request);
        if let Err(e) = self.node.propose(bytes::Bytes::new(), data) {
            warn!("alarm not proposed: {e}");
        }
    }
}

impl RaftCore {
    /// The alarms' part of applying `request`: an `AlarmRequest` is applied here; any
    /// other request is refused while a raised alarm forbids it (etcd's capped and corrupt
    /// appliers; a member's published attributes are not theirs to refuse). `None`: the
    /// request goes on to the state machine.
    pub(super) fn apply_alarms(
        &mut self,
        request: &net::pb::etcdserverpb::InternalRaftRequest,
    ) -> Option<Result<super::Applied, Status>> {
        if let Some(alarm) = &request.alarm {
            let resp = self.alarms.apply(alarm);
            *self.shared.alarms.write().expect("alarms lock") = Arc::new(self.alarms.list());
            return Some(Ok(super::Applied::Alarm(resp)));
        }
        if request.cluster_member_attr_set.is_some() {
            return None;
        }
        let writes = request.put.is_some()
            || request.lease_grant.is_some()
            || request.txn.as_ref().is_some_and(crate::alarm::txn_puts);
        self.alarms.refuses(writes).map(Err)
    }
}
