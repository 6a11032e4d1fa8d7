//! Snapshots between members: sending the newest checkpoint to a follower behind the
//! compacted log, and installing one received from the leader (see ARCHITECTURE.md,
//! "Snapshots to followers").

use std::sync::atomic::Ordering;

use bytes::Bytes;
use tracing::{info, warn};

use super::{fatal, RaftCore, RaftRequest};
use crate::cluster::storage::{
    encode_u64s, StateMeta, RECEIVED_SNAPSHOT_DIR, REC_HARD_STATE, REC_SNAPSHOT,
};
use crate::lease::{self, Lessor};

impl RaftCore {
    /// Streams the newest checkpoint to `m.to` (Raft asked for a snapshot at its index).
    /// When that checkpoint's membership does not name the member (it was added after
    /// it), a checkpoint at the applied index is taken first and sent instead, as etcd
    /// sends its current state (`createMergedSnapshotMessage`): otherwise the member would
    /// refuse the snapshot until the next `--snapshot-count` checkpoint.
    pub(super) fn send_snapshot(&mut self, m: &raft::Message) {
        let to = m.to;
        let mut m = m.clone();
        let names_member = m.snapshot.as_ref().is_some_and(|s| {
            let cs = &s.metadata.conf_state;
            cs.voters.contains(&to) || cs.learners.contains(&to)
        });
        let stale = m
            .snapshot
            .as_ref()
            .is_some_and(|s| s.metadata.index < self.applied);
        if !names_member && stale {
            self.checkpoint_now();
            match raft::Storage::snapshot(self.node.store(), 0) {
                Ok(fresh) => m.snapshot = Some(fresh),
                Err(e) => warn!("no snapshot after a fresh checkpoint: {e}"),
            }
        }
        let m = &m;
        let index = m.snapshot.as_ref().map_or(0, |s| s.metadata.index);
        let source = match self.mvcc.snapshot_source() {
            Ok(source) if source.applied_index() == index => source,
            Ok(source) => {
                warn!(
                    member = format!("{to:x}"),
                    raft = index,
                    checkpoint = source.applied_index(),
                    "snapshot and checkpoint differ; not sent"
                );
                self.node.report_snapshot(to, true);
                return;
            }
            Err(e) => {
                warn!(
                    member = format!("{to:x}"),
                    "cannot read the snapshot to send: {e}"
                );
                self.node.report_snapshot(to, true);
                return;
            }
        };
        info!(
            member = format!("{to:x}"),
            index,
            bytes = source.total_bytes(),
            "sending a snapshot"
        );
        let chunks = futures::stream::unfold(Some(source), |source| async move {
            let mut source = source?;
            glommio::executor().yield_if_needed().await;
            match source.next_chunk() {
                Ok(Some(chunk)) => Some((Ok(chunk), Some(source))),
                Ok(None) => None,
                Err(e) => Some((Err(e.to_string()), None)),
            }
        });
        let sent = self
            .peers
            .send_snapshot(to, Bytes::from(m.encode()), Box::pin(chunks));
        let inbox = self.inbox.clone();
        glommio::spawn_local(async move {
            let failed = match sent.await {
                Ok(()) => false,
                Err(e) => {
                    warn!(member = format!("{to:x}"), "snapshot not delivered: {e}");
                    true
                }
            };
            let _ = inbox
                .send_async(RaftRequest::SnapshotStatus(to, failed))
                .await;
        })
        .detach();
    }

    /// Installs the leader's snapshot Raft accepted (etcd `applySnapshot`): the WAL marks
    /// the new log start first (so a restart finishes an interrupted install from the
    /// received files), then the store is swapped and the lessor and member table reload.
    pub(super) fn install_snapshot(
        &mut self,
        snapshot: &raft::Snapshot,
        hs: Option<raft::HardState>,
    ) {
        let (index, term) = (snapshot.metadata.index, snapshot.metadata.term);
        let received = self.member_dir.join(RECEIVED_SNAPSHOT_DIR);
        match engine::received_applied_index(&received) {
            Ok(Some(applied)) if applied == index => {}
            other => fatal(&format!(
                "Raft installs a snapshot at {index} but the received files hold {other:?}"
            )),
        }
        let hs = hs.unwrap_or(self.node.status().hard_state);
        self.wal_append(REC_SNAPSHOT, index, &encode_u64s(&[index, term]));
        self.wal_append(
            REC_HARD_STATE,
            0,
            &encode_u64s(&[hs.term, hs.vote, hs.commit.max(index)]),
        );
        if let Err(e) = self.wal.sync() {
            crate::logging::fatal_storage("failed to save Raft snapshot", &e);
        }
        // The store is swapped below: a checkpoint being written of the old one ends first.
        self.wait_checkpoint();
        if let Err(e) = self.mvcc.install(&received) {
            // etcd: "failed to restore mvcc store" when the received backend cannot be opened.
            crate::logging::fatal_storage("failed to restore mvcc store", &e);
        }
        crate::metrics::get().count_keys(&self.shared.reader);
        if let Err(e) = self.reload_state_machine() {
            fatal(&format!("the snapshot at {index} cannot be loaded: {e}"));
        }
        if let Err(e) = self.node.mut_store().apply_snapshot(snapshot.clone()) {
            fatal(&format!(
                "the Raft log cannot start at snapshot {index}: {e}"
            ));
        }
        self.applied = index;
        self.last_checkpoint = index;
        self.shared.applied_index.store(index, Ordering::Release);
        self.shared.watch.resync_all();
        if let Err(e) = self.wal.purge(index) {
            warn!("WAL purge after installing a snapshot failed: {e}");
        }
        info!(index, term, "finished applying incoming snapshot");
        if let Some(reply) = self.snapshot_reply.take() {
            let _ = reply.send(Ok(()));
        }
    }

    /// Reloads the lessor and the member table from the store's checkpoint meta.
    pub(super) fn reload_state_machine(&mut self) -> Result<(), String> {
        let (_, meta) = self.mvcc.checkpoint_state();
        let meta = StateMeta::decode(&meta)?;
        let min_ttl = lease::min_ttl_seconds(self.settings.election_ticks, self.settings.tick);
        self.lessor = Lessor::recover(&self.mvcc, &meta.lessor, min_ttl)?;
        if let Some(interval) = self.settings.lease_checkpoint_interval {
            self.lessor.enable_checkpoints(interval);
        }
        let leader = self.shared.leader.load(Ordering::Acquire) == self.shared.member_id;
        self.lessor
            .set_primary(leader, self.settings.election_timeout());
        if let Some(membership) = meta.membership {
            self.membership = membership;
            self.membership_changed();
        }
        self.set_auth(meta.auth);
        Ok(())
    }
}
