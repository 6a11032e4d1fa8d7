//! Checkpoints off the raft core's path (issue 8): every `--snapshot-count` applied
//! entries the core captures a checkpoint (`Mvcc::begin_checkpoint`, microseconds) and a
//! helper thread writes it while the core goes on applying. When the thread reports back
//! (the core's loop waits on it beside requests and ticks), the core records the
//! checkpoint as Raft's snapshot, marks the WAL and purges what the checkpoint covers —
//! the same steps, in the same order, as when the checkpoint was written in place.

use std::time::Instant;

use bytes::Bytes;
use engine::{CheckpointDone, CheckpointJob};
use raft::Storage;
use tracing::{debug, info, warn};

use super::RaftCore;
use crate::cluster::storage::{encode_u64s, REC_HARD_STATE, REC_SNAPSHOT};
use crate::logging::fatal_storage;

use super::SNAPSHOT_CATCH_UP_ENTRIES;

/// What the core captured with a checkpoint it started.
pub(super) struct Captured {
    index: u64,
    term: u64,
    conf_state: raft::ConfState,
    started: Instant,
}

/// A checkpoint a helper thread is writing.
pub(super) struct InFlight {
    captured: Captured,
    done: flume::Receiver<engine::Result<CheckpointDone>>,
}

impl InFlight {
    /// The helper thread's result (an error if it ended without one).
    pub(super) async fn result(&self) -> engine::Result<CheckpointDone> {
        self.done
            .recv_async()
            .await
            .unwrap_or_else(|_| Err(thread_lost()))
    }
}

fn thread_lost() -> engine::Error {
    engine::Error::io(
        "checkpoint thread",
        std::io::Error::other("the checkpoint thread ended without a result"),
    )
}

impl RaftCore {
    /// Every `--snapshot-count` applied entries: start a checkpoint unless one is being
    /// written (then the next one starts once it is recorded).
    pub(super) fn maybe_checkpoint(&mut self) {
        if self.checkpoint.is_some()
            || self.applied - self.last_checkpoint < self.settings.snapshot_count
        {
            return;
        }
        self.start_checkpoint();
    }

    /// Starts a checkpoint at the applied index on a helper thread (the loop records it
    /// when the thread reports back). The caller checks that none is being written.
    pub(super) fn start_checkpoint(&mut self) {
        let Some(job) = self.begin_checkpoint() else {
            return;
        };
        let (tx, rx) = flume::bounded(1);
        let captured = self.capture(job.applied_index());
        let spawned = std::thread::Builder::new()
            .name("checkpoint".into())
            .spawn(move || {
                let _ = tx.send(job.run());
            });
        if let Err(e) = spawned {
            fatal_storage(
                "failed to commit tx",
                &engine::Error::io("checkpoint thread", e),
            );
        }
        self.checkpoint = Some(InFlight { captured, done: rx });
    }

    /// Waits for the checkpoint being written, blocking this thread (the helper thread
    /// does not need it): before a snapshot install swaps the store under the job, and
    /// before a checkpoint that must exist at once.
    pub(super) fn wait_checkpoint(&mut self) {
        if let Some(flight) = self.checkpoint.take() {
            let done = flight.done.recv().unwrap_or_else(|_| Err(thread_lost()));
            self.record_checkpoint(flight.captured, done);
        }
    }

    /// A checkpoint at the applied index, written on this thread: for a snapshot that
    /// must name a member added since the last checkpoint (rare; the core waits for it).
    pub(super) fn checkpoint_now(&mut self) {
        self.wait_checkpoint();
        if self.applied == self.last_checkpoint && self.mvcc.checkpoint_state().0 == self.applied {
            return;
        }
        let Some(job) = self.begin_checkpoint() else {
            return;
        };
        let captured = self.capture(job.applied_index());
        let done = job.run();
        self.record_checkpoint(captured, done);
    }

    fn begin_checkpoint(&mut self) -> Option<CheckpointJob> {
        match self
            .mvcc
            .begin_checkpoint(self.applied, &self.state_meta().encode())
        {
            Ok(job) => Some(job),
            Err(e) => {
                warn!("cannot start a checkpoint: {e}");
                None
            }
        }
    }

    fn capture(&self, index: u64) -> Captured {
        let term = self
            .node
            .store()
            .term(index)
            .unwrap_or_else(|e| panic!("term of applied entry {index}: {e}"));
        Captured {
            index,
            term,
            conf_state: raft::ConfState {
                voters: self.membership.voters(),
                learners: self.membership.learners(),
            },
            started: Instant::now(),
        }
    }

    /// The steps after a durable checkpoint: Raft's snapshot, the WAL marker, purges;
    /// the WAL sync in between blocks this thread (for callers that are not async).
    fn record_checkpoint(&mut self, captured: Captured, done: engine::Result<CheckpointDone>) {
        let (index, term) = self.mark_checkpoint(captured, done);
        let started = Instant::now();
        if let Err(e) = self.wal.sync() {
            fatal_storage("failed to save Raft snapshot", &e);
        }
        // Not async: the WAL segments it covers are purged by the next checkpoint the
        // loop records (closing the syncer's handles on them needs the executor).
        self.checkpoint_marked(index, term, started, false);
    }

    /// [`RaftCore::record_checkpoint`] for the loop: the WAL sync goes through io_uring, so
    /// the executor serves meanwhile.
    pub(super) async fn checkpoint_finished(&mut self, done: engine::Result<CheckpointDone>) {
        let Some(flight) = self.checkpoint.take() else {
            return;
        };
        let (index, term) = self.mark_checkpoint(flight.captured, done);
        let started = Instant::now();
        let handle = match self.wal.sync_handle() {
            Ok(handle) => handle,
            Err(e) => fatal_storage("failed to save Raft snapshot", &e),
        };
        if let Err(e) = self.syncer.sync(handle).await {
            fatal_storage("failed to save Raft snapshot", &e);
        }
        let purged = self.checkpoint_marked(index, term, started, true);
        if !purged.is_empty() {
            self.syncer.forget(&purged).await;
            self.remove_wal_segments(purged);
        }
    }

    /// Deletes purged WAL segments on a helper thread: an unlink frees the file's blocks
    /// (and, on a filesystem mounted with `discard`, waits for the device), which is no
    /// work for the raft core. A failure is a warning, as a failed purge always was.
    fn remove_wal_segments(&self, paths: Vec<std::path::PathBuf>) {
        let dir = self.wal.dir().to_path_buf();
        let spawned = std::thread::Builder::new()
            .name("wal-purge".into())
            .spawn(move || match engine::Wal::remove_segments(&dir, &paths) {
                Ok(n) => debug!(segments = n, "purged WAL segments"),
                Err(e) => warn!("WAL purge failed: {e}"),
            });
        if let Err(e) = spawned {
            warn!("WAL purge not started: {e}");
        }
    }

    /// Records the finished checkpoint in the store and Raft's log storage, and appends
    /// the WAL's snapshot marker and hard state (not synced yet). Returns (index, term).
    fn mark_checkpoint(
        &mut self,
        captured: Captured,
        done: engine::Result<CheckpointDone>,
    ) -> (u64, u64) {
        let Captured {
            index,
            term,
            conf_state,
            started,
        } = captured;
        if let Err(e) = self.mvcc.finish_checkpoint(done) {
            // etcd's backend commit (bbolt) failing is fatal too.
            fatal_storage("failed to commit tx", &e);
        }
        crate::metrics::get()
            .backend_commit_duration_seconds
            .observe(started.elapsed().as_secs_f64());
        // Followers behind the compacted log get this checkpoint as their snapshot.
        if let Err(e) = self
            .node
            .mut_store()
            .create_snapshot(index, conf_state, Bytes::new())
        {
            warn!(index, "recording the Raft snapshot failed: {e}");
        }
        let hs = self.node.status().hard_state;
        self.wal_append(REC_SNAPSHOT, index, &encode_u64s(&[index, term]));
        self.wal_append(
            REC_HARD_STATE,
            0,
            &encode_u64s(&[hs.term, hs.vote, hs.commit]),
        );
        (index, term)
    }

    /// Once the WAL marker is durable: compacts the Raft log to what the checkpoint
    /// covers and, with `purge`, returns the WAL segments to delete (the caller deletes
    /// them).
    fn checkpoint_marked(
        &mut self,
        index: u64,
        term: u64,
        sync_started: Instant,
        purge: bool,
    ) -> Vec<std::path::PathBuf> {
        crate::metrics::get()
            .wal_fsync_duration_seconds
            .observe(sync_started.elapsed().as_secs_f64());
        let keep_from = index.saturating_sub(SNAPSHOT_CATCH_UP_ENTRIES);
        let mut purged = Vec::new();
        if keep_from > 0 {
            if purge {
                purged = self.wal.take_purgeable(keep_from);
            }
            match self.node.mut_store().compact(keep_from) {
                Ok(()) => info!("compact-index" = keep_from, "compacted Raft logs"),
                Err(e) => warn!("log compaction at {keep_from} failed: {e}"),
            }
        }
        self.last_checkpoint = index;
        info!("snapshot-index" = index, term, "saved snapshot");
        self.maintenance_due = true;
        purged
    }

    /// One bounded step of the store's deferred work (compaction, GC); remembers whether
    /// more can be done at once, so the loop does not wait for a request before it.
    pub(super) fn maintain_store(&mut self) {
        match self.mvcc.maintain() {
            Ok(more) => self.maintenance_due = more,
            Err(e) => fatal_storage("failed to write to a bucket", &e),
        }
    }
}
