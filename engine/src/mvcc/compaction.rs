//! Compaction in bounded steps, and value-segment garbage collection.
//!
//! etcd's Compact has a logical part (from now on reads below the revision fail with
//! `ErrCompacted`) and a physical part (dropping the history), which etcd runs in the
//! background in batches (`scheduleCompaction`). Cairn does the same: [`Mvcc::schedule_compaction`]
//! publishes the compact revision at once, and [`Mvcc::maintain`] does the physical part
//! [`COMPACTION_STEP_REVISIONS`] revisions at a time, each step under one short hold of
//! the write lock, so the apply loop interleaves it with writes. The physical part never
//! goes above the lowest revision a running read pinned (see `read.rs`): a long Range,
//! watch catch-up, HashKV or checkpoint keeps seeing the history it started on.
//!
//! GC then rewrites sparse value segments the same way: each step walks the next
//! [`GC_STEP_RECORDS`] records of a segment, copies the ones the index still points at to
//! the active segment and repoints them under the write lock; a segment is retired once
//! its walk reaches its tail (deleted once no loadable checkpoint references it).

use std::collections::BTreeSet;

use super::checkpoint::Loc;
use super::key_index::Rev;
use super::{Mvcc, VALUE_EXT};
use crate::error::{Error, Result};
use crate::fsutil;

/// Revisions of the compacted window examined per [`Mvcc::maintain`] step (each step
/// compacts the keys they belong to under one hold of the write lock).
pub const COMPACTION_STEP_REVISIONS: usize = 1024;

/// Records a GC step examines at most (each live one is copied).
pub const GC_STEP_RECORDS: usize = 1024;

/// A value segment being rewritten by GC: the next record to examine.
#[derive(Debug, Clone)]
pub(crate) struct GcWork {
    seq: u64,
    offset: u64,
}

/// The physical part of a compaction still to do.
#[derive(Debug, Clone)]
pub(crate) struct CompactionWork {
    /// The compact revision to reach.
    target: i64,
    /// The revision this pass compacts at: `target`, or lower while a read pins a lower
    /// revision (a later pass finishes the job). `None` between passes.
    pass: Option<i64>,
    /// Next revision of the window `(physical, pass]` to examine.
    cursor: Rev,
}

impl Mvcc {
    /// etcd Compact, all of it: [`Mvcc::schedule_compaction`], then every step of the
    /// physical part that no running read prevents, then garbage collection of sparse
    /// value segments (see [`super::MvccOptions::gc_live_percent`]). Errors as
    /// `schedule_compaction`, or `Io` when rewriting a segment fails.
    pub fn compact(&mut self, revision: i64) -> Result<()> {
        self.schedule_compaction(revision)?;
        while self.maintain()? {}
        Ok(())
    }

    /// The logical part of etcd's Compact: from now on reads below `revision` fail with
    /// `Compacted`. `revision <= compact_revision` → `Err(Compacted)`; `revision >
    /// current` → `Err(FutureRevision)`. The physical part (dropping the history below
    /// `revision`, keeping each key's latest revision <= `revision` unless it is a
    /// tombstone) is left to [`Mvcc::maintain`]. Not durable until the next checkpoint
    /// (the server replays its WAL, which holds the compaction request).
    pub fn schedule_compaction(&mut self, revision: i64) -> Result<()> {
        let mut st = self.state.write();
        if revision <= st.compact_revision {
            return Err(Error::Compacted);
        }
        if revision > st.current_revision {
            return Err(Error::FutureRevision);
        }
        st.compact_revision = revision;
        self.compaction = Some(CompactionWork {
            target: revision,
            pass: None,
            cursor: Rev::new(self.physical_compact + 1, 0),
        });
        Ok(())
    }

    /// Does one bounded step of deferred work: a step of a compaction's physical part,
    /// or, once that is done and no checkpoint is being written, the value-segment
    /// garbage collection it made due. Returns true when more work can be done now
    /// (call again); false when there is none, or what is left waits for a read to end
    /// or a checkpoint to finish. Errors: `Io` from rewriting a segment.
    pub fn maintain(&mut self) -> Result<bool> {
        if self.compaction.is_some() {
            return Ok(self.compaction_step());
        }
        if self.checkpoint_in_flight {
            // GC would move records below the tails the checkpoint captured.
            return Ok(false);
        }
        if std::mem::take(&mut self.gc_due) {
            self.plan_garbage_collection();
        }
        self.garbage_collection_step()
    }

    /// True while value segments rewritten by garbage collection wait for checkpoints that
    /// no longer reference them before they are deleted.
    pub fn has_retired_segments(&self) -> bool {
        !self.retired.is_empty()
    }

    /// True while a compaction's physical part or a garbage collection is pending.
    pub fn has_pending_work(&self) -> bool {
        self.compaction.is_some() || self.gc_due || !self.gc.is_empty()
    }

    fn compaction_step(&mut self) -> bool {
        let Some(mut work) = self.compaction.take() else {
            return false;
        };
        let pass = match work.pass {
            Some(pass) => pass,
            None => {
                let cap = self.pins.lowest().unwrap_or(i64::MAX);
                let pass = work.target.min(cap);
                if pass <= self.physical_compact {
                    // A read pins the history; it ends, then the next call goes on.
                    self.compaction = Some(work);
                    return false;
                }
                work.pass = Some(pass);
                work.cursor = Rev::new(self.physical_compact + 1, 0);
                pass
            }
        };
        let end = Rev::new(pass + 1, 0);
        let mut st = self.state.write();
        let mut touched = BTreeSet::new();
        let mut next = end;
        for (examined, (rev, entry)) in st.revs.range(work.cursor..end).enumerate() {
            if examined == COMPACTION_STEP_REVISIONS {
                next = *rev;
                break;
            }
            touched.insert(entry.key.clone());
        }
        for key in touched {
            let Some(ki) = st.keys.get_mut(&key) else {
                continue;
            };
            let removed = ki.compact(pass);
            if ki.is_empty() {
                st.keys.remove(&key);
            }
            for r in removed {
                if let Some(e) = st.revs.remove(&r) {
                    if let Some(live) = st.live_bytes.get_mut(&e.loc.seg) {
                        *live -= u64::from(e.loc.bytes);
                    }
                }
            }
        }
        drop(st);
        if next < end {
            work.cursor = next;
            self.compaction = Some(work);
            return true;
        }
        self.physical_compact = pass;
        if pass < work.target {
            work.pass = None;
            self.compaction = Some(work);
            // More only once the pinning read ends.
            return self.pins.lowest().is_none_or(|p| p > pass);
        }
        self.gc_due = self.options.gc_live_percent != 0;
        self.gc_due && !self.checkpoint_in_flight
    }

    /// Picks the sparse closed segments to rewrite (see
    /// [`super::MvccOptions::gc_live_percent`]).
    fn plan_garbage_collection(&mut self) {
        if self.options.gc_live_percent == 0 {
            return;
        }
        self.plan_rewrites(u64::from(self.options.gc_live_percent));
    }

    /// Adds to the GC plan every closed segment whose live bytes are below `pct` percent
    /// of its written bytes (not already planned).
    fn plan_rewrites(&mut self, pct: u64) {
        let st = self.state.read();
        let planned: BTreeSet<u64> = self.gc.iter().map(|w| w.seq).collect();
        let candidates: Vec<u64> = st
            .live_bytes
            .iter()
            .filter(|(seq, live)| {
                let written = self.tails[*seq] - super::ValueCodec::HEADER_BYTES;
                **seq != self.active.seq && **live * 100 < written * pct
            })
            .map(|(seq, _)| *seq)
            .filter(|seq| !planned.contains(seq))
            .collect();
        drop(st);
        self.gc.extend(candidates.into_iter().map(|seq| GcWork {
            seq,
            offset: super::ValueCodec::HEADER_BYTES,
        }));
    }

    /// Defragmentation (etcd `Maintenance.Defragment`): plans the rewrite of every closed
    /// value segment holding any record no longer retained, whatever
    /// [`super::MvccOptions::gc_live_percent`] says. [`Mvcc::maintain`] then runs it in
    /// steps (writes interleave); rewritten segments are deleted once two later
    /// checkpoints no longer reference them.
    ///
    /// The active segment is rotated first when it holds such a record, so that it can be
    /// rewritten too. Errors: `Io` when the new active segment cannot be created.
    pub fn schedule_defragment(&mut self) -> Result<()> {
        let active_has_garbage = {
            let st = self.state.read();
            let written = self.tail - super::ValueCodec::HEADER_BYTES;
            st.live_bytes.get(&self.active.seq).copied().unwrap_or(0) < written
        };
        if active_has_garbage {
            self.rotate(0)?;
        }
        self.plan_rewrites(100);
        Ok(())
    }

    /// Copies the next [`GC_STEP_RECORDS`] records of the first segment being rewritten
    /// that are still live to the active segment, and points the index at the copies;
    /// retires the segment once its walk reaches its tail. True when more remains.
    fn garbage_collection_step(&mut self) -> Result<bool> {
        let Some(work) = self.gc.first().cloned() else {
            return Ok(false);
        };
        let tail = self.tails[&work.seq];
        let seg = std::sync::Arc::clone(&self.state.read().segments[&work.seq]);
        let mut offset = work.offset;
        let mut live = Vec::new();
        {
            let st = self.state.read();
            while offset < tail && live.len() < GC_STEP_RECORDS {
                let (rec, bytes) = seg.record_at(offset)?;
                let here = Loc {
                    seg: work.seq,
                    offset,
                    bytes,
                };
                if st.revs.get(&rec.rev).is_some_and(|e| e.loc == here) {
                    live.push((rec.rev, here));
                }
                offset += u64::from(bytes);
            }
        }
        let mut moved = Vec::with_capacity(live.len());
        for (rev, old) in live {
            let raw = seg.raw(old.offset, old.bytes)?.to_vec();
            moved.push((rev, old, self.append(&raw)?));
        }
        {
            let mut st = self.state.write();
            for (rev, old, new) in moved {
                // Compacted meanwhile: the copy is garbage in its turn.
                let Some(e) = st.revs.get_mut(&rev).filter(|e| e.loc == old) else {
                    continue;
                };
                e.loc = new;
                *st.live_bytes.entry(new.seg).or_default() += u64::from(new.bytes);
                if let Some(l) = st.live_bytes.get_mut(&old.seg) {
                    *l = l.saturating_sub(u64::from(old.bytes));
                }
            }
        }
        if offset < tail {
            self.gc[0].offset = offset;
            return Ok(true);
        }
        self.gc.remove(0);
        {
            let mut st = self.state.write();
            st.segments.remove(&work.seq);
            st.live_bytes.remove(&work.seq);
        }
        self.tails.remove(&work.seq);
        self.unsynced.remove(&work.seq);
        self.retired.push((work.seq, self.checkpoint_seq));
        tracing::debug!(segment = work.seq, "value segment rewritten by gc");
        Ok(!self.gc.is_empty())
    }

    /// Paths of retired segments that a checkpoint numbered `seq` makes deletable (no
    /// checkpoint that could still be loaded references them), removed from the list.
    pub(crate) fn take_deletable_segments(&mut self, seq: u64) -> Vec<std::path::PathBuf> {
        let mut out = Vec::new();
        self.retired.retain(|(seg, retired_at)| {
            if seq >= retired_at + 2 {
                out.push(fsutil::seq_path(&self.values_dir, *seg, VALUE_EXT));
                false
            } else {
                true
            }
        });
        out
    }
}
