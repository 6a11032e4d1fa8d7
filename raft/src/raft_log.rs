//! The log as raft sees it: stable entries in [`Storage`] followed by [`Unstable`]
//! ones (etcd-io/raft `log.go`).

use crate::errors::{Error, Result};
use crate::log_unstable::Unstable;
use crate::message::{Entry, Snapshot};
use crate::storage::{limit_size, Storage};

/// Invariant: `applied <= committed <= last_index()`.
pub(crate) struct RaftLog<S: Storage> {
    pub(crate) store: S,
    pub(crate) unstable: Unstable,
    pub(crate) committed: u64,
    pub(crate) applied: u64,
}

fn storage_failed(what: &str, e: Error) -> ! {
    // A storage that cannot answer first/last index cannot be reasoned about; etcd
    // panics likewise (log.go).
    panic!("raft storage {what} failed: {e}")
}

impl<S: Storage> RaftLog<S> {
    pub(crate) fn new(store: S) -> Result<Self> {
        let first = store.first_index()?;
        let last = store.last_index()?;
        Ok(RaftLog {
            store,
            unstable: Unstable::new(last + 1),
            committed: first - 1,
            applied: first - 1,
        })
    }

    pub(crate) fn first_index(&self) -> u64 {
        match self.unstable.maybe_first_index() {
            Some(i) => i,
            None => self
                .store
                .first_index()
                .unwrap_or_else(|e| storage_failed("first_index", e)),
        }
    }

    pub(crate) fn last_index(&self) -> u64 {
        match self.unstable.maybe_last_index() {
            Some(i) => i,
            None => self
                .store
                .last_index()
                .unwrap_or_else(|e| storage_failed("last_index", e)),
        }
    }

    /// Term at `index`; `Compacted` below `first_index() - 1`, `Unavailable` above
    /// `last_index()`.
    pub(crate) fn term(&self, index: u64) -> Result<u64> {
        let dummy = self.first_index() - 1;
        if index < dummy {
            return Err(Error::Compacted);
        }
        if index > self.last_index() {
            return Err(Error::Unavailable);
        }
        if let Some(t) = self.unstable.maybe_term(index) {
            return Ok(t);
        }
        match self.store.term(index) {
            Ok(t) => Ok(t),
            Err(e @ (Error::Compacted | Error::Unavailable)) => Err(e),
            Err(e) => storage_failed("term", e),
        }
    }

    pub(crate) fn last_term(&self) -> u64 {
        self.term(self.last_index())
            .unwrap_or_else(|e| panic!("raft log: term of last index failed: {e}"))
    }

    pub(crate) fn zero_term_on_compacted(&self, index: u64) -> u64 {
        self.term(index).unwrap_or(0)
    }

    pub(crate) fn match_term(&self, index: u64, term: u64) -> bool {
        self.term(index) == Ok(term)
    }

    /// Raft §5.4.1: a candidate's log is at least as up-to-date as ours.
    pub(crate) fn is_up_to_date(&self, last_index: u64, term: u64) -> bool {
        let our = self.last_term();
        term > our || (term == our && last_index >= self.last_index())
    }

    /// Index of the first entry in `ents` that conflicts with (or extends) the log, 0
    /// if all are already present.
    pub(crate) fn find_conflict(&self, ents: &[Entry]) -> u64 {
        ents.iter()
            .find(|e| !self.match_term(e.index, e.term))
            .map_or(0, |e| e.index)
    }

    /// The largest index ≤ `index` whose term is ≤ `term`, with that term (0 when
    /// unknown). Used to skip a whole term per rejection (etcd `findConflictByTerm`).
    pub(crate) fn find_conflict_by_term(&self, mut index: u64, term: u64) -> (u64, u64) {
        while index > 0 {
            match self.term(index) {
                Err(_) => return (index, 0),
                Ok(t) if t <= term => return (index, t),
                Ok(_) => index -= 1,
            }
        }
        (0, 0)
    }

    /// Follower side of Append: if (`index`, `log_term`) matches, appends `ents`
    /// (replacing conflicting entries), raises commit to `min(committed, last new)`
    /// and returns the last new index.
    pub(crate) fn maybe_append(
        &mut self,
        index: u64,
        log_term: u64,
        committed: u64,
        ents: &[Entry],
    ) -> Option<u64> {
        if !self.match_term(index, log_term) {
            return None;
        }
        let last_new = index + ents.len() as u64;
        let conflict = self.find_conflict(ents);
        if conflict != 0 {
            assert!(
                conflict > self.committed,
                "raft log: entry {conflict} conflicts with committed entry (committed {})",
                self.committed
            );
            self.append(&ents[(conflict - index - 1) as usize..]);
        }
        self.commit_to(committed.min(last_new));
        Some(last_new)
    }

    /// Appends `ents` (truncating a conflicting unstable/stable suffix); returns the
    /// new last index.
    pub(crate) fn append(&mut self, ents: &[Entry]) -> u64 {
        let Some(first) = ents.first() else {
            return self.last_index();
        };
        assert!(
            first.index > self.committed,
            "raft log: append at {} would overwrite committed {}",
            first.index,
            self.committed
        );
        self.unstable.truncate_and_append(ents);
        self.last_index()
    }

    /// Highest index of this log that is durable in the storage: entries below the
    /// unstable offset are read from the storage (which may still hold a replaced
    /// suffix after them). 0 while a snapshot waits to be persisted.
    pub(crate) fn persisted_index(&self) -> u64 {
        if self.unstable.snapshot.is_some() {
            return 0;
        }
        let stored = self
            .store
            .last_index()
            .unwrap_or_else(|e| storage_failed("last_index", e));
        stored.min(self.unstable.offset - 1)
    }

    pub(crate) fn unstable_entries(&self) -> &[Entry] {
        &self.unstable.entries
    }

    /// Committed entries not yet applied, from `applied + 1`, at most `max_size` bytes
    /// (at least one entry). They may include unstable ones: the caller persists a
    /// Ready's entries before applying its committed entries. None while a snapshot
    /// is waiting to be persisted and applied (etcd `nextCommittedEnts`): it covers
    /// the entries up to its index.
    ///
    /// Errors: [`Error::Storage`] if entries after `applied` were compacted from the
    /// storage before being applied: handing out the rest would leave a hole in the
    /// state machine (etcd panics likewise in `nextCommittedEnts`).
    pub(crate) fn next_entries(&self, max_size: Option<u64>) -> Result<Vec<Entry>> {
        if !self.has_next_entries() {
            return Ok(Vec::new());
        }
        let lo = self.applied + 1;
        let first = self.first_index();
        if lo < first {
            return Err(Error::Storage(format!(
                "committed entries {lo}..{first} were compacted before they were applied \
                 (applied {}, commit {}): compact only applied entries",
                self.applied, self.committed
            )));
        }
        Ok(self
            .slice(lo, self.committed + 1, max_size)
            .unwrap_or_else(|e| {
                panic!("raft log: unexpected error reading committed entries: {e}")
            }))
    }

    pub(crate) fn has_next_entries(&self) -> bool {
        self.unstable.snapshot.is_none() && self.committed > self.applied
    }

    pub(crate) fn snapshot(&self) -> Result<Snapshot> {
        match &self.unstable.snapshot {
            Some(s) => Ok(s.clone()),
            None => self.store.snapshot(0),
        }
    }

    pub(crate) fn commit_to(&mut self, to_commit: u64) {
        if self.committed < to_commit {
            assert!(
                to_commit <= self.last_index(),
                "raft log: commit {to_commit} beyond last index {} (log corrupted, truncated or lost?)",
                self.last_index()
            );
            self.committed = to_commit;
        }
    }

    pub(crate) fn applied_to(&mut self, index: u64) {
        if index == 0 {
            return;
        }
        assert!(
            index <= self.committed && index >= self.applied,
            "raft log: applied {index} out of range [{}, {}]",
            self.applied,
            self.committed
        );
        self.applied = index;
    }

    pub(crate) fn stable_to(&mut self, index: u64, term: u64) {
        self.unstable.stable_to(index, term);
    }

    pub(crate) fn stable_snap_to(&mut self, index: u64) {
        self.unstable.stable_snap_to(index);
    }

    /// Entries from `index` to the end, at most `max_size` bytes (at least one).
    pub(crate) fn entries(&self, index: u64, max_size: Option<u64>) -> Result<Vec<Entry>> {
        if index > self.last_index() {
            return Ok(Vec::new());
        }
        self.slice(index, self.last_index() + 1, max_size)
    }

    /// Leader side: commits `max_index` if its entry is from `term` (Raft §5.4.2).
    pub(crate) fn maybe_commit(&mut self, max_index: u64, term: u64) -> bool {
        if max_index > self.committed && self.zero_term_on_compacted(max_index) == term {
            self.commit_to(max_index);
            return true;
        }
        false
    }

    pub(crate) fn restore(&mut self, snapshot: Snapshot) {
        self.committed = snapshot.metadata.index;
        self.unstable.restore(snapshot);
    }

    /// Entries in `[lo, hi)`; `Compacted` if `lo < first_index()`.
    pub(crate) fn slice(&self, lo: u64, hi: u64, max_size: Option<u64>) -> Result<Vec<Entry>> {
        assert!(lo <= hi, "raft log: invalid slice {lo} > {hi}");
        if lo < self.first_index() {
            return Err(Error::Compacted);
        }
        assert!(
            hi <= self.last_index() + 1,
            "raft log: slice [{lo}, {hi}) out of bound [{}, {}]",
            self.first_index(),
            self.last_index()
        );
        if lo == hi {
            return Ok(Vec::new());
        }
        let offset = self.unstable.offset;
        let mut ents = Vec::new();
        if lo < offset {
            let stop = hi.min(offset);
            ents = match self.store.entries(lo, stop, max_size) {
                Ok(e) => e,
                Err(Error::Compacted) => return Err(Error::Compacted),
                Err(e) => storage_failed("entries", e),
            };
            if (ents.len() as u64) < stop - lo {
                return Ok(ents);
            }
        }
        if hi > offset {
            ents.extend_from_slice(self.unstable.slice(lo.max(offset), hi));
        }
        Ok(limit_size(&ents, max_size))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::MemStorage;

    fn ent(index: u64, term: u64) -> Entry {
        Entry {
            index,
            term,
            ..Default::default()
        }
    }

    fn log_with(ents: &[Entry]) -> RaftLog<MemStorage> {
        let mut log = RaftLog::new(MemStorage::new()).unwrap();
        log.append(ents);
        log
    }

    #[test]
    fn find_conflict() {
        // etcd log_test.go TestFindConflict
        let log = log_with(&[ent(1, 1), ent(2, 2), ent(3, 3)]);
        assert_eq!(log.find_conflict(&[]), 0);
        assert_eq!(log.find_conflict(&[ent(1, 1), ent(2, 2), ent(3, 3)]), 0);
        assert_eq!(log.find_conflict(&[ent(2, 2), ent(3, 3), ent(4, 4)]), 4);
        assert_eq!(log.find_conflict(&[ent(1, 4), ent(2, 4)]), 1);
        assert_eq!(log.find_conflict(&[ent(3, 4), ent(4, 4)]), 3);
    }

    #[test]
    fn find_conflict_by_term() {
        let log = log_with(&[ent(1, 1), ent(2, 2), ent(3, 2), ent(4, 5), ent(5, 5)]);
        assert_eq!(log.find_conflict_by_term(5, 3), (3, 2));
        assert_eq!(log.find_conflict_by_term(5, 5), (5, 5));
        assert_eq!(log.find_conflict_by_term(5, 0), (0, 0));
        assert_eq!(log.find_conflict_by_term(9, 9), (9, 0));
    }

    #[test]
    fn maybe_append_matches_and_commits() {
        let mut log = log_with(&[ent(1, 1), ent(2, 2), ent(3, 3)]);
        log.commit_to(1);
        assert_eq!(log.maybe_append(3, 2, 3, &[ent(4, 4)]), None);
        assert_eq!(log.maybe_append(3, 3, 3, &[ent(4, 4)]), Some(4));
        assert_eq!(log.committed, 3);
        // conflicting uncommitted entry 4 is replaced; commit limited to last new index
        assert_eq!(log.maybe_append(3, 3, 9, &[ent(4, 5)]), Some(4));
        assert_eq!(log.term(4), Ok(5));
        assert_eq!(log.committed, 4);
    }

    #[test]
    #[should_panic(expected = "conflicts with committed entry")]
    fn maybe_append_refuses_to_overwrite_committed() {
        let mut log = log_with(&[ent(1, 1), ent(2, 2)]);
        log.commit_to(2);
        log.maybe_append(1, 1, 2, &[ent(2, 3)]);
    }

    #[test]
    fn next_entries_spans_stable_and_unstable() {
        let mut store = MemStorage::new();
        store.append(&[ent(1, 1), ent(2, 1)]).unwrap();
        let mut log = RaftLog::new(store).unwrap();
        log.append(&[ent(3, 2), ent(4, 2)]);
        log.commit_to(3);
        assert_eq!(
            log.next_entries(None),
            Ok(vec![ent(1, 1), ent(2, 1), ent(3, 2)])
        );
        assert_eq!(log.next_entries(Some(0)), Ok(vec![ent(1, 1)]));
        log.applied_to(2);
        assert_eq!(log.next_entries(None), Ok(vec![ent(3, 2)]));
        log.applied_to(3);
        assert!(!log.has_next_entries());
        assert_eq!(log.slice(2, 5, Some(0)).unwrap(), vec![ent(2, 1)]);
        assert_eq!(log.entries(5, None), Ok(vec![]));
    }

    #[test]
    fn compacted_reads_and_up_to_date() {
        let mut store = MemStorage::new();
        store.append(&[ent(1, 1), ent(2, 1), ent(3, 2)]).unwrap();
        store.compact(2).unwrap();
        let log = RaftLog::new(store).unwrap();
        assert_eq!(log.term(1), Err(Error::Compacted));
        assert_eq!(log.term(2), Ok(1));
        assert_eq!(log.term(4), Err(Error::Unavailable));
        assert_eq!(log.entries(2, None), Err(Error::Compacted));
        assert_eq!(log.committed, 2);
        assert!(log.is_up_to_date(3, 2));
        assert!(!log.is_up_to_date(2, 2));
        assert!(log.is_up_to_date(1, 3));
        assert!(!log.is_up_to_date(9, 1));
    }
}
