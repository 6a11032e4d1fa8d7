//! Entries and snapshot not yet persisted by the caller (etcd-io/raft `log_unstable.go`).

use crate::message::{Entry, Snapshot};

/// `entries[i]` has index `offset + i`. `snapshot`, if any, precedes the entries.
#[derive(Debug, Default)]
pub(crate) struct Unstable {
    pub(crate) snapshot: Option<Snapshot>,
    pub(crate) entries: Vec<Entry>,
    pub(crate) offset: u64,
}

impl Unstable {
    pub(crate) fn new(offset: u64) -> Self {
        Unstable {
            snapshot: None,
            entries: Vec::new(),
            offset,
        }
    }

    /// First index if only the unstable snapshot knows it.
    pub(crate) fn maybe_first_index(&self) -> Option<u64> {
        self.snapshot.as_ref().map(|s| s.metadata.index + 1)
    }

    pub(crate) fn maybe_last_index(&self) -> Option<u64> {
        match self.entries.len() {
            0 => self.snapshot.as_ref().map(|s| s.metadata.index),
            n => Some(self.offset + n as u64 - 1),
        }
    }

    pub(crate) fn maybe_term(&self, index: u64) -> Option<u64> {
        if index < self.offset {
            let s = self.snapshot.as_ref()?;
            return (s.metadata.index == index).then_some(s.metadata.term);
        }
        let last = self.maybe_last_index()?;
        if index > last {
            return None;
        }
        Some(self.entries[(index - self.offset) as usize].term)
    }

    /// The caller persisted entries up to `index` (with `term`): drop them.
    pub(crate) fn stable_to(&mut self, index: u64, term: u64) {
        // Only when the term matches: otherwise the entry was replaced meanwhile.
        if self.maybe_term(index) == Some(term) && index >= self.offset {
            let n = (index + 1 - self.offset) as usize;
            self.entries.drain(..n);
            self.offset = index + 1;
        }
    }

    pub(crate) fn stable_snap_to(&mut self, index: u64) {
        if self
            .snapshot
            .as_ref()
            .is_some_and(|s| s.metadata.index == index)
        {
            self.snapshot = None;
        }
    }

    pub(crate) fn restore(&mut self, snapshot: Snapshot) {
        self.entries.clear();
        self.offset = snapshot.metadata.index + 1;
        self.snapshot = Some(snapshot);
    }

    /// Appends `ents`, first truncating whatever conflicts with them.
    pub(crate) fn truncate_and_append(&mut self, ents: &[Entry]) {
        let Some(first) = ents.first() else { return };
        let after = first.index;
        if after == self.offset + self.entries.len() as u64 {
            // directly after: plain append
        } else if after <= self.offset {
            // replaces everything unstable; the log will read the prefix from storage
            self.offset = after;
            self.entries.clear();
        } else {
            self.entries.truncate((after - self.offset) as usize);
        }
        self.entries.extend_from_slice(ents);
    }

    /// Entries in `[lo, hi)`; the caller checked the bounds.
    pub(crate) fn slice(&self, lo: u64, hi: u64) -> &[Entry] {
        assert!(
            lo >= self.offset,
            "unstable slice {lo} below offset {}",
            self.offset
        );
        assert!(hi <= self.offset + self.entries.len() as u64);
        &self.entries[(lo - self.offset) as usize..(hi - self.offset) as usize]
    }
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

    #[test]
    fn truncate_and_append_cases() {
        // etcd log_unstable_test.go TestUnstableTruncateAndAppend
        let mk = || Unstable {
            snapshot: None,
            entries: vec![ent(5, 1)],
            offset: 5,
        };
        let mut u = mk();
        u.truncate_and_append(&[ent(6, 1), ent(7, 1)]);
        assert_eq!(
            (u.offset, u.entries.clone()),
            (5, vec![ent(5, 1), ent(6, 1), ent(7, 1)])
        );
        let mut u = mk();
        u.truncate_and_append(&[ent(5, 2), ent(6, 2)]);
        assert_eq!(
            (u.offset, u.entries.clone()),
            (5, vec![ent(5, 2), ent(6, 2)])
        );
        let mut u = mk();
        u.truncate_and_append(&[ent(4, 2), ent(5, 2), ent(6, 2)]);
        assert_eq!(
            (u.offset, u.entries.clone()),
            (4, vec![ent(4, 2), ent(5, 2), ent(6, 2)])
        );
        let mut u = Unstable {
            snapshot: None,
            entries: vec![ent(5, 1), ent(6, 1), ent(7, 1)],
            offset: 5,
        };
        u.truncate_and_append(&[ent(6, 2)]);
        assert_eq!(
            (u.offset, u.entries.clone()),
            (5, vec![ent(5, 1), ent(6, 2)])
        );
    }

    #[test]
    fn stable_to_requires_matching_term() {
        let mut u = Unstable {
            snapshot: None,
            entries: vec![ent(5, 1), ent(6, 1)],
            offset: 5,
        };
        u.stable_to(5, 2);
        assert_eq!(u.offset, 5);
        u.stable_to(5, 1);
        assert_eq!((u.offset, u.entries.clone()), (6, vec![ent(6, 1)]));
        u.stable_to(4, 1);
        assert_eq!(u.offset, 6);
    }

    #[test]
    fn snapshot_indexes() {
        let mut u = Unstable::new(1);
        let mut s = Snapshot::default();
        s.metadata.index = 4;
        s.metadata.term = 2;
        u.restore(s);
        assert_eq!(u.maybe_first_index(), Some(5));
        assert_eq!(u.maybe_last_index(), Some(4));
        assert_eq!(u.maybe_term(4), Some(2));
        assert_eq!(u.maybe_term(3), None);
        u.stable_snap_to(4);
        assert!(u.snapshot.is_none());
    }
}
