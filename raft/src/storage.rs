//! The durable log as raft reads it, and an in-memory implementation.
//!
//! Shapes follow etcd-io/raft `storage.go` (`Storage`, `MemoryStorage`) and tikv
//! raft-rs `storage.rs`.

use bytes::Bytes;

use crate::errors::{Error, Result};
use crate::message::{ConfState, Entry, HardState, Snapshot, SnapshotMetadata};

/// What a node restarts from: the persisted hard state and the membership.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct RaftState {
    /// Last persisted term, vote and commit index.
    pub hard_state: HardState,
    /// Membership as of the last applied conf change or snapshot.
    pub conf_state: ConfState,
}

/// Read-only view of the durable log.
///
/// The log holds entries `first_index()..=last_index()`; everything up to
/// `first_index() - 1` is covered by a snapshot (or is the empty start: a fresh log
/// has `first_index() == 1`, `last_index() == 0` and `term(0) == 0`).
///
/// # Correctness
///
/// - No holes: entries are contiguous, `entries[i].index == first_index() + i`.
/// - `term(first_index() - 1)` is answerable (the snapshot's or compaction point's
///   term), so that raft can match the first entry it appends after it.
/// - Writes are serialized and durable: the caller appends the entries and hard state
///   of a [`crate::Ready`] (fsynced when `must_sync`) before it calls
///   [`crate::RawNode::advance`]; raft never sees an entry it was not told is stable
///   through this trait except via its own unstable buffer.
/// - A returned error is one of the storage variants of [`Error`]: `Compacted` for an
///   index below `first_index()`, `Unavailable` above `last_index()`,
///   `SnapshotTemporarilyUnavailable` when no usable snapshot exists yet.
pub trait Storage {
    /// The persisted hard state and membership, read once by [`crate::RawNode::new`].
    fn initial_state(&self) -> Result<RaftState>;
    /// Entries in `[low, high)`. With `max_size` (bytes, each entry counted as
    /// [`entry_size`]), stops before the entry that would exceed it, but always
    /// returns at least one entry.
    /// Errors: `Compacted` if `low < first_index()`, `Unavailable` if
    /// `high > last_index() + 1` or `low > high`.
    fn entries(&self, low: u64, high: u64, max_size: Option<u64>) -> Result<Vec<Entry>>;
    /// Term of the entry at `index`, for `first_index() - 1 <= index <= last_index()`.
    /// Errors: `Compacted` below, `Unavailable` above.
    fn term(&self, index: u64) -> Result<u64>;
    /// Index of the first entry held (snapshot index + 1).
    fn first_index(&self) -> Result<u64>;
    /// Index of the last entry held (the snapshot index when there are no entries).
    fn last_index(&self) -> Result<u64>;
    /// The most recent snapshot, which must cover at least `request_index` (0 = any)
    /// and reach `first_index() - 1`. Errors: `SnapshotTemporarilyUnavailable` if none.
    fn snapshot(&self, request_index: u64) -> Result<Snapshot>;
}

/// In-memory [`Storage`]. The server fills it from its WAL on start and appends to it
/// after persisting each [`crate::Ready`]; raft only reads it.
///
/// Layout: `compacted` (index, term) is the last discarded position; `entries` are
/// `compacted.0 + 1 ..`; `snapshot` is the newest snapshot handed in (by
/// [`MemStorage::apply_snapshot`] or [`MemStorage::create_snapshot`]).
#[derive(Clone, Debug, Default)]
pub struct MemStorage {
    hard_state: HardState,
    conf_state: ConfState,
    snapshot: Snapshot,
    compacted_index: u64,
    compacted_term: u64,
    entries: Vec<Entry>,
}

impl MemStorage {
    /// An empty log: first index 1, last index 0, no members.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty log whose membership is `cs` (a new cluster's initial members).
    pub fn new_with_conf_state(cs: ConfState) -> Self {
        MemStorage {
            conf_state: cs,
            ..Self::default()
        }
    }

    /// The stored hard state.
    pub fn hard_state(&self) -> HardState {
        self.hard_state
    }

    /// The stored membership.
    pub fn conf_state(&self) -> &ConfState {
        &self.conf_state
    }

    /// Replaces the hard state (after persisting a Ready's `hard_state`).
    pub fn set_hard_state(&mut self, hs: HardState) {
        self.hard_state = hs;
    }

    /// Replaces the membership (after applying a conf change).
    pub fn set_conf_state(&mut self, cs: ConfState) {
        self.conf_state = cs;
    }

    fn first(&self) -> u64 {
        self.compacted_index + 1
    }

    fn last(&self) -> u64 {
        self.compacted_index + self.entries.len() as u64
    }

    /// Appends `entries` (a Ready's `entries`, already made durable). An entry whose
    /// index is already held replaces it and everything after it (a new leader
    /// overwrote an uncommitted suffix); entries at or below the compaction point are
    /// skipped.
    ///
    /// Errors: [`Error::Storage`] if `entries` are not contiguous or would leave a gap
    /// after `last_index()`.
    pub fn append(&mut self, entries: &[Entry]) -> Result<()> {
        let Some(first_new) = entries.first() else {
            return Ok(());
        };
        for w in entries.windows(2) {
            if w[1].index != w[0].index + 1 {
                return Err(Error::Storage(format!(
                    "appended entries not contiguous: {} then {}",
                    w[0].index, w[1].index
                )));
            }
        }
        if first_new.index > self.last() + 1 {
            return Err(Error::Storage(format!(
                "append at {} leaves a gap after last index {}",
                first_new.index,
                self.last()
            )));
        }
        let skip = self.first().saturating_sub(first_new.index) as usize;
        let Some(tail) = entries.get(skip..).filter(|t| !t.is_empty()) else {
            return Ok(());
        };
        let keep = (tail[0].index - self.first()) as usize;
        self.entries.truncate(keep);
        self.entries.extend_from_slice(tail);
        Ok(())
    }

    /// Replaces the whole state with `snapshot` (a follower installing a Ready's
    /// snapshot): the log becomes empty after `snapshot.metadata.index`, the
    /// membership becomes the snapshot's, and the hard state's commit is raised to the
    /// snapshot index.
    ///
    /// Errors: [`Error::Storage`] if the metadata cannot describe a log position and
    /// membership (index 0 or `u64::MAX`, term 0, no voters, a node listed twice or as
    /// both voter and learner); [`Error::SnapshotOutOfDate`] if it is not newer than
    /// the held snapshot and the compaction point (it would roll the log back).
    pub fn apply_snapshot(&mut self, snapshot: Snapshot) -> Result<()> {
        let meta = &snapshot.metadata;
        meta.check()
            .map_err(|e| Error::Storage(format!("snapshot metadata invalid: {e}")))?;
        if meta.index <= self.snapshot.metadata.index.max(self.compacted_index) {
            return Err(Error::SnapshotOutOfDate);
        }
        self.compacted_index = meta.index;
        self.compacted_term = meta.term;
        self.entries.clear();
        self.conf_state = meta.conf_state.clone();
        self.hard_state.term = self.hard_state.term.max(meta.term);
        self.hard_state.commit = self.hard_state.commit.max(meta.index);
        self.snapshot = snapshot;
        Ok(())
    }

    /// Records a snapshot of the state machine at `index` (≤ last index; should be
    /// ≤ applied), with membership `cs` and image `data`, so that lagging followers can
    /// be sent it. Does not discard entries: call [`MemStorage::compact`] for that.
    /// etcd `MemoryStorage.CreateSnapshot`.
    ///
    /// Errors: `SnapshotOutOfDate` if not newer than the held snapshot, `Compacted` if
    /// below the compaction point, `Unavailable` above the last index.
    pub fn create_snapshot(&mut self, index: u64, cs: ConfState, data: Bytes) -> Result<()> {
        if index <= self.snapshot.metadata.index {
            return Err(Error::SnapshotOutOfDate);
        }
        let term = self.term(index)?;
        self.snapshot = Snapshot {
            metadata: SnapshotMetadata {
                index,
                term,
                conf_state: cs,
            },
            data,
        };
        Ok(())
    }

    /// Discards entries up to and including `compact_index`; its term stays known, so
    /// `first_index()` becomes `compact_index + 1`. The caller must only compact
    /// applied entries, and should hold a snapshot at or above `compact_index` for
    /// followers that still need them.
    ///
    /// Errors: `Compacted` if already compacted past it, `Unavailable` if above the
    /// last index.
    pub fn compact(&mut self, compact_index: u64) -> Result<()> {
        if compact_index <= self.compacted_index {
            return Err(Error::Compacted);
        }
        if compact_index > self.last() {
            return Err(Error::Unavailable);
        }
        let n = (compact_index - self.compacted_index) as usize;
        self.compacted_term = self.entries[n - 1].term;
        self.compacted_index = compact_index;
        self.entries.drain(..n);
        Ok(())
    }
}

impl Storage for MemStorage {
    fn initial_state(&self) -> Result<RaftState> {
        Ok(RaftState {
            hard_state: self.hard_state,
            conf_state: self.conf_state.clone(),
        })
    }

    fn entries(&self, low: u64, high: u64, max_size: Option<u64>) -> Result<Vec<Entry>> {
        if low < self.first() {
            return Err(Error::Compacted);
        }
        if high > self.last() + 1 || low > high {
            return Err(Error::Unavailable);
        }
        let lo = (low - self.first()) as usize;
        let hi = (high - self.first()) as usize;
        Ok(limit_size(&self.entries[lo..hi], max_size))
    }

    fn term(&self, index: u64) -> Result<u64> {
        if index == self.compacted_index {
            return Ok(self.compacted_term);
        }
        if index < self.compacted_index {
            return Err(Error::Compacted);
        }
        if index > self.last() {
            return Err(Error::Unavailable);
        }
        Ok(self.entries[(index - self.first()) as usize].term)
    }

    fn first_index(&self) -> Result<u64> {
        Ok(self.first())
    }

    fn last_index(&self) -> Result<u64> {
        Ok(self.last())
    }

    fn snapshot(&self, request_index: u64) -> Result<Snapshot> {
        let index = self.snapshot.metadata.index;
        if self.snapshot.is_empty() || index < request_index || index < self.compacted_index {
            return Err(Error::SnapshotTemporarilyUnavailable);
        }
        Ok(self.snapshot.clone())
    }
}

/// Size of an entry for size limits: its data plus [`ENTRY_HEADER_BYTES`].
pub fn entry_size(e: &Entry) -> u64 {
    e.data.len() as u64 + ENTRY_HEADER_BYTES
}

/// Bytes counted per entry on top of its data by size limits (roughly its term,
/// index and type on the wire), so that empty entries are not free.
pub const ENTRY_HEADER_BYTES: u64 = 16;

/// The longest prefix of `entries` whose [`entry_size`]s add up to at most
/// `max_size` bytes, and at least one entry. etcd `limitSize`.
pub(crate) fn limit_size(entries: &[Entry], max_size: Option<u64>) -> Vec<Entry> {
    let Some(max) = max_size else {
        return entries.to_vec();
    };
    let mut size = 0u64;
    let n = entries
        .iter()
        .take_while(|e| {
            size += entry_size(e);
            size <= max
        })
        .count();
    entries[..n.max(1).min(entries.len())].to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ent(index: u64, term: u64) -> Entry {
        Entry {
            index,
            term,
            ..Default::default()
        }
    }

    fn store_3_4_5() -> MemStorage {
        // compacted at 3 (term 3), entries 4 and 5 (terms 4, 5): etcd storage_test.go
        let mut s = MemStorage::new();
        s.append(&[ent(1, 1), ent(2, 2), ent(3, 3), ent(4, 4), ent(5, 5)])
            .unwrap();
        s.compact(3).unwrap();
        s
    }

    #[test]
    fn empty_log() {
        let s = MemStorage::new();
        assert_eq!(s.first_index(), Ok(1));
        assert_eq!(s.last_index(), Ok(0));
        assert_eq!(s.term(0), Ok(0));
        assert_eq!(s.term(1), Err(Error::Unavailable));
        assert_eq!(s.entries(1, 1, None), Ok(vec![]));
        assert_eq!(s.snapshot(0), Err(Error::SnapshotTemporarilyUnavailable));
    }

    #[test]
    fn term_bounds() {
        let s = store_3_4_5();
        assert_eq!(s.term(2), Err(Error::Compacted));
        assert_eq!(s.term(3), Ok(3));
        assert_eq!(s.term(4), Ok(4));
        assert_eq!(s.term(5), Ok(5));
        assert_eq!(s.term(6), Err(Error::Unavailable));
        assert_eq!(s.first_index(), Ok(4));
        assert_eq!(s.last_index(), Ok(5));
    }

    #[test]
    fn entries_bounds_and_size_limit() {
        let mut s = MemStorage::new();
        let big = |i: u64| Entry {
            index: i,
            term: 1,
            data: Bytes::from(vec![0u8; 10]),
            ..Default::default()
        };
        s.append(&[big(1), big(2), big(3), big(4)]).unwrap();
        s.compact(1).unwrap();
        assert_eq!(s.entries(1, 3, None), Err(Error::Compacted));
        assert_eq!(s.entries(2, 6, None), Err(Error::Unavailable));
        assert_eq!(s.entries(3, 2, None), Err(Error::Unavailable));
        assert_eq!(s.entries(2, 5, None).unwrap().len(), 3);
        // each entry counts 10 data + 16 header = 26 bytes
        assert_eq!(s.entries(2, 5, Some(60)).unwrap().len(), 2);
        assert_eq!(s.entries(2, 5, Some(52)).unwrap().len(), 2);
        assert_eq!(s.entries(2, 5, Some(51)).unwrap().len(), 1);
        assert_eq!(s.entries(2, 5, Some(0)).unwrap().len(), 1);
        assert_eq!(s.entries(2, 5, Some(0)).unwrap()[0].index, 2);
    }

    #[test]
    fn append_overwrites_conflicting_suffix_and_skips_compacted() {
        let mut s = store_3_4_5();
        s.append(&[ent(2, 2), ent(3, 3), ent(4, 6)]).unwrap();
        assert_eq!(s.last_index(), Ok(4));
        assert_eq!(s.term(4), Ok(6));
        s.append(&[ent(5, 6), ent(6, 6)]).unwrap();
        assert_eq!(
            s.entries(4, 7, None).unwrap(),
            vec![ent(4, 6), ent(5, 6), ent(6, 6)]
        );
        assert_eq!(
            s.append(&[ent(8, 6)]),
            Err(Error::Storage(
                "append at 8 leaves a gap after last index 6".into()
            ))
        );
        assert_eq!(
            s.append(&[ent(7, 6), ent(9, 6)]),
            Err(Error::Storage(
                "appended entries not contiguous: 7 then 9".into()
            ))
        );
        s.append(&[ent(1, 1)]).unwrap();
        assert_eq!(s.last_index(), Ok(6));
    }

    #[test]
    fn compact_bounds() {
        let mut s = store_3_4_5();
        assert_eq!(s.compact(3), Err(Error::Compacted));
        assert_eq!(s.compact(6), Err(Error::Unavailable));
        s.compact(5).unwrap();
        assert_eq!(s.first_index(), Ok(6));
        assert_eq!(s.last_index(), Ok(5));
        assert_eq!(s.term(5), Ok(5));
    }

    #[test]
    fn snapshots() {
        let mut s = store_3_4_5();
        let cs = ConfState {
            voters: vec![1, 2, 3],
            learners: vec![],
        };
        assert_eq!(s.snapshot(0), Err(Error::SnapshotTemporarilyUnavailable));
        assert_eq!(
            s.create_snapshot(2, cs.clone(), Bytes::new()),
            Err(Error::Compacted)
        );
        s.create_snapshot(4, cs.clone(), Bytes::from_static(b"x"))
            .unwrap();
        let snap = s.snapshot(0).unwrap();
        assert_eq!(snap.metadata.index, 4);
        assert_eq!(snap.metadata.term, 4);
        assert_eq!(s.snapshot(5), Err(Error::SnapshotTemporarilyUnavailable));
        assert_eq!(
            s.create_snapshot(4, cs.clone(), Bytes::new()),
            Err(Error::SnapshotOutOfDate)
        );
        // a snapshot below the compaction point is useless to a follower
        s.compact(5).unwrap();
        assert_eq!(s.snapshot(0), Err(Error::SnapshotTemporarilyUnavailable));

        let mut f = MemStorage::new();
        f.append(&[ent(1, 1)]).unwrap();
        let mut snap = snap;
        snap.metadata.index = 10;
        snap.metadata.term = 7;
        f.apply_snapshot(snap.clone()).unwrap();
        assert_eq!(f.first_index(), Ok(11));
        assert_eq!(f.last_index(), Ok(10));
        assert_eq!(f.term(10), Ok(7));
        assert_eq!(f.conf_state(), &cs);
        assert_eq!(
            f.hard_state(),
            HardState {
                term: 7,
                vote: 0,
                commit: 10
            }
        );
        assert_eq!(f.apply_snapshot(snap), Err(Error::SnapshotOutOfDate));
        assert_eq!(f.snapshot(10).unwrap().metadata.index, 10);
    }
}
