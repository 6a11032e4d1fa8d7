//! The per-key revision history, a port of etcd's `keyIndex` (etcd mvcc/key_index.go).
//!
//! A key's history is a list of generations. A generation holds the revisions of one
//! life of the key: from its creating put to (and including) its tombstone. The last
//! generation is empty after a delete. Example (etcd's own): put(1.0); put(2.0);
//! tombstone(3.0); put(4.0); tombstone(5.0) gives
//! `{1.0, 2.0, 3.0(t)} {4.0, 5.0(t)} {}`.

/// A revision: `main` is the store revision of the write request, `sub` the index of
/// the write inside it (etcd mvcc/revision.go). Ordered by (main, sub).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct Rev {
    pub(crate) main: i64,
    pub(crate) sub: i64,
}

impl Rev {
    pub(crate) fn new(main: i64, sub: i64) -> Rev {
        Rev { main, sub }
    }
}

/// One life of a key.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Generation {
    /// Number of puts/tombstone in this generation since creation (compaction keeps it).
    pub(crate) ver: i64,
    /// Revision of the put that created this generation.
    pub(crate) created: Rev,
    /// Revisions ascending; after compaction, only the retained suffix.
    pub(crate) revs: Vec<Rev>,
}

impl Generation {
    fn is_empty(&self) -> bool {
        self.revs.is_empty()
    }
}

/// A key's generations. Invariant: never zero generations; all revisions ascending.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct KeyIndex {
    pub(crate) modified: Rev,
    pub(crate) generations: Vec<Generation>,
}

impl Default for KeyIndex {
    fn default() -> KeyIndex {
        KeyIndex {
            modified: Rev::default(),
            generations: vec![Generation::default()],
        }
    }
}

/// What `get` found: the revision visible at the asked revision.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Found {
    pub(crate) modified: Rev,
    pub(crate) created: Rev,
    pub(crate) ver: i64,
}

impl KeyIndex {
    /// Records a put at `rev`. Panics if `rev` is not above the last modification
    /// (a programmer error: revisions only grow).
    pub(crate) fn put(&mut self, rev: Rev) {
        assert!(
            rev > self.modified,
            "put at {rev:?} not above modified {:?}",
            self.modified
        );
        let g = self
            .generations
            .last_mut()
            .expect("key index has a generation");
        if g.revs.is_empty() {
            g.created = rev;
        }
        g.revs.push(rev);
        g.ver += 1;
        self.modified = rev;
    }

    /// Records a tombstone at `rev`; false (nothing done) if the key is not live.
    pub(crate) fn tombstone(&mut self, rev: Rev) -> bool {
        if self.generations.last().is_none_or(Generation::is_empty) {
            return false;
        }
        self.put(rev);
        self.generations.push(Generation::default());
        true
    }

    /// True when no revision is retained.
    pub(crate) fn is_empty(&self) -> bool {
        self.generations.len() == 1 && self.generations[0].is_empty()
    }

    /// The revision visible at `at_rev` (etcd keyIndex.get): `None` when the key did
    /// not exist or was deleted at `at_rev`.
    pub(crate) fn get(&self, at_rev: i64) -> Option<Found> {
        let g = self.find_generation(at_rev)?;
        let n = g.revs.iter().rposition(|r| r.main <= at_rev)?;
        Some(Found {
            modified: g.revs[n],
            created: g.created,
            ver: g.ver - (g.revs.len() - n - 1) as i64,
        })
    }

    fn find_generation(&self, at_rev: i64) -> Option<&Generation> {
        let last = self.generations.len() - 1;
        for (i, g) in self.generations.iter().enumerate().rev() {
            if g.is_empty() {
                continue;
            }
            if i != last {
                let tomb = g.revs[g.revs.len() - 1].main;
                if tomb <= at_rev {
                    return None;
                }
            }
            if g.revs[0].main <= at_rev {
                return Some(g);
            }
        }
        None
    }

    /// Every retained revision, ascending.
    pub(crate) fn all_revs(&self) -> impl Iterator<Item = Rev> + '_ {
        self.generations.iter().flat_map(|g| g.revs.iter().copied())
    }

    /// True if `rev` is the tombstone (last revision of a non-last generation).
    pub(crate) fn is_tombstone(&self, rev: Rev) -> bool {
        let last = self.generations.len() - 1;
        self.generations[..last]
            .iter()
            .any(|g| g.revs.last() == Some(&rev))
    }

    /// The revision retained right before `rev` in the same generation (the previous
    /// state of the key), or `None` when `rev` created its generation.
    pub(crate) fn previous(&self, rev: Rev) -> Option<Rev> {
        for g in &self.generations {
            if let Ok(i) = g.revs.binary_search(&rev) {
                return if i > 0 { Some(g.revs[i - 1]) } else { None };
            }
        }
        None
    }

    /// The revision retained right after `rev`, in any generation.
    pub(crate) fn next(&self, rev: Rev) -> Option<Rev> {
        self.all_revs().find(|r| *r > rev)
    }

    /// The key's index as it was at revision `at`: revisions above it dropped, a
    /// generation closed at or below `at` followed by the empty one, `modified` the last
    /// revision kept. `None` when no retained revision is at or below `at`.
    pub(crate) fn truncated(&self, at: i64) -> Option<KeyIndex> {
        let last = self.generations.len() - 1;
        let mut generations = Vec::new();
        let mut closed = false;
        for (i, g) in self.generations.iter().enumerate() {
            if g.revs.is_empty() || g.revs[0].main > at {
                break;
            }
            let n = g
                .revs
                .iter()
                .rposition(|r| r.main <= at)
                .map_or(0, |p| p + 1);
            generations.push(Generation {
                ver: g.ver - (g.revs.len() - n) as i64,
                created: g.created,
                revs: g.revs[..n].to_vec(),
            });
            closed = i != last && n == g.revs.len();
            if !closed {
                break;
            }
        }
        let modified = *generations.last()?.revs.last()?;
        if closed {
            generations.push(Generation::default());
        }
        Some(KeyIndex {
            modified,
            generations,
        })
    }

    /// etcd keyIndex.compact: drops the history below `at_rev`, keeping the latest
    /// revision <= `at_rev` of the live generation unless it is a tombstone. Returns the
    /// revisions removed. The key index may become empty (then the caller drops it).
    pub(crate) fn compact(&mut self, at_rev: i64) -> Vec<Rev> {
        let before: Vec<Rev> = self.all_revs().collect();
        let mut gen_idx = 0;
        while gen_idx < self.generations.len() - 1 {
            let g = &self.generations[gen_idx];
            let tomb = g.revs[g.revs.len() - 1].main;
            if tomb > at_rev {
                break;
            }
            gen_idx += 1;
        }
        let g = &mut self.generations[gen_idx];
        if !g.is_empty() {
            if let Some(keep) = g.revs.iter().rposition(|r| r.main <= at_rev) {
                g.revs.drain(..keep);
            }
            if g.revs.len() == 1 && gen_idx != self.generations.len() - 1 {
                gen_idx += 1;
            }
        }
        self.generations.drain(..gen_idx);
        let after: std::collections::HashSet<Rev> = self.all_revs().collect();
        let removed: Vec<Rev> = before.into_iter().filter(|r| !after.contains(r)).collect();
        for r in &removed {
            assert!(r.main <= at_rev);
        }
        removed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(main: i64) -> Rev {
        Rev::new(main, 0)
    }

    /// etcd's example: put 2, 4, tombstone 6, put 8, 10, tombstone 12, put 14, 14.1, 16.
    fn example() -> KeyIndex {
        let mut ki = KeyIndex::default();
        ki.put(r(2));
        ki.put(r(4));
        assert!(ki.tombstone(r(6)));
        ki.put(r(8));
        ki.put(r(10));
        assert!(ki.tombstone(r(12)));
        ki.put(r(14));
        ki.put(Rev::new(14, 1));
        ki.put(r(16));
        ki
    }

    /// `truncated(at)` equals the index of the same history replayed up to `at`.
    #[test]
    fn truncated_replays_the_history_up_to_the_revision() {
        let ops = [
            (r(2), false),
            (r(4), false),
            (r(6), true),
            (r(8), false),
            (r(10), false),
            (r(12), true),
            (r(14), false),
            (Rev::new(14, 1), false),
            (r(16), false),
        ];
        let full = example();
        for at in 0..=17 {
            let mut want = KeyIndex::default();
            for (rev, tomb) in ops.iter().filter(|(rev, _)| rev.main <= at) {
                if *tomb {
                    assert!(want.tombstone(*rev));
                } else {
                    want.put(*rev);
                }
            }
            let want = (!want.is_empty()).then_some(want);
            assert_eq!(full.truncated(at), want, "at {at}");
        }
    }

    #[test]
    fn get_follows_etcd() {
        let ki = example();
        let g = |at| ki.get(at).map(|f| (f.modified, f.created, f.ver));
        assert_eq!(g(17), Some((r(16), r(14), 3)));
        assert_eq!(g(16), Some((r(16), r(14), 3)));
        assert_eq!(g(15), Some((Rev::new(14, 1), r(14), 2)));
        assert_eq!(g(14), Some((Rev::new(14, 1), r(14), 2)));
        assert_eq!(g(13), None);
        assert_eq!(g(12), None);
        assert_eq!(g(11), Some((r(10), r(8), 2)));
        assert_eq!(g(9), Some((r(8), r(8), 1)));
        assert_eq!(g(7), None);
        assert_eq!(g(5), Some((r(4), r(2), 2)));
        assert_eq!(g(3), Some((r(2), r(2), 1)));
        assert_eq!(g(1), None);
    }

    #[test]
    fn tombstone_of_dead_key_fails() {
        let mut ki = KeyIndex::default();
        assert!(!ki.tombstone(r(1)));
        ki.put(r(1));
        assert!(ki.tombstone(r(2)));
        assert!(!ki.tombstone(r(3)));
        assert!(ki.is_tombstone(r(2)));
        assert!(!ki.is_tombstone(r(1)));
    }

    #[test]
    fn compact_follows_etcd() {
        let mut ki = example();
        assert_eq!(ki.compact(1), vec![]);
        assert_eq!(ki.compact(3), vec![]);
        assert_eq!(ki.compact(4), vec![r(2)]);
        assert_eq!(ki.generations[0].revs, vec![r(4), r(6)]);
        // tombstone 6 <= 6: the whole first generation goes.
        assert_eq!(ki.compact(6), vec![r(4), r(6)]);
        assert_eq!(ki.generations[0].revs, vec![r(8), r(10), r(12)]);
        assert_eq!(ki.compact(11), vec![r(8)]);
        assert_eq!(ki.compact(12), vec![r(10), r(12)]);
        assert_eq!(ki.generations.len(), 1);
        assert_eq!(ki.generations[0].revs, vec![r(14), Rev::new(14, 1), r(16)]);
        assert_eq!(ki.compact(15), vec![r(14)]);
        assert_eq!(ki.generations[0].ver, 3);
        assert_eq!(ki.generations[0].created, r(14));
        assert_eq!(ki.get(16).map(|f| f.ver), Some(3));
        assert_eq!(ki.get(15).map(|f| f.ver), Some(2));
        assert_eq!(ki.compact(17), vec![Rev::new(14, 1)]);
        assert_eq!(ki.all_revs().collect::<Vec<_>>(), vec![r(16)]);
    }

    #[test]
    fn compact_deleted_key_empties_it() {
        let mut ki = KeyIndex::default();
        ki.put(r(1));
        assert!(ki.tombstone(r(2)));
        assert_eq!(ki.compact(2), vec![r(1), r(2)]);
        assert!(ki.is_empty());
    }

    #[test]
    fn previous_and_next() {
        let ki = example();
        assert_eq!(ki.previous(r(4)), Some(r(2)));
        assert_eq!(ki.previous(r(8)), None);
        assert_eq!(ki.previous(r(6)), Some(r(4)));
        assert_eq!(ki.next(r(6)), Some(r(8)));
        assert_eq!(ki.next(r(16)), None);
    }
}
