//! Log matching (Raft §5.3, figure 3): if two logs contain an entry with the same
//! index and term, the logs are identical in all entries up through that index.
//!
//! Checked incrementally: every entry that enters any log (appended after a Ready,
//! or found on a disk after a crash) is registered under (index, term) with its
//! content digest and the term of the entry before it. If every (index, term) always
//! comes with the same content and the same predecessor term, then by induction two
//! logs sharing (index, term) share the whole prefix. After every step, the last and
//! the committed entry of every log are checked against the registry again.

use std::collections::HashMap;

use raft::{Entry, MemStorage, Storage};

use super::super::kv::digest;
use super::NodeView;

/// Content and predecessor of one (index, term).
#[derive(Clone, Copy, Debug)]
struct Fact {
    digest: u64,
    prev_term: Option<u64>,
    first_seen_on: u64,
}

/// The (index, term) registry.
#[derive(Default)]
pub struct LogMatching {
    facts: HashMap<(u64, u64), Fact>,
}

impl LogMatching {
    fn register(&mut self, id: u64, e: &Entry, prev_term: Option<u64>) -> Result<(), String> {
        let new = Fact {
            digest: digest(e),
            prev_term,
            first_seen_on: id,
        };
        let f = self.facts.entry((e.index, e.term)).or_insert(new);
        if f.digest != new.digest {
            return Err(format!(
                "log matching: entry {} of term {} differs between node {} and node {id}",
                e.index, e.term, f.first_seen_on
            ));
        }
        match (f.prev_term, prev_term) {
            (Some(a), Some(b)) if a != b => Err(format!(
                "log matching: entry {} of term {} follows term {a} on node {} but term {b} on node {id}",
                e.index, e.term, f.first_seen_on
            )),
            (None, Some(_)) => {
                f.prev_term = prev_term;
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// Registers entries just appended to `store` (member `id`'s log).
    pub fn on_append(
        &mut self,
        id: u64,
        entries: &[Entry],
        store: &MemStorage,
    ) -> Result<(), String> {
        for e in entries {
            let prev = store.term(e.index - 1).ok();
            self.register(id, e, prev)?;
        }
        Ok(())
    }

    /// Registers a whole log (a member starting from its disk).
    pub fn on_recover(&mut self, id: u64, store: &MemStorage) -> Result<(), String> {
        let (first, last) = (store.first_index().unwrap(), store.last_index().unwrap());
        let entries = store
            .entries(first, last + 1, None)
            .map_err(|e| e.to_string())?;
        self.on_append(id, &entries, store)
    }

    /// Re-checks the last and the committed entry of every log.
    pub fn check(&mut self, nodes: &[NodeView]) -> Result<(), String> {
        for n in nodes {
            let last = n.store.last_index().unwrap();
            let commit = n.status.as_ref().map_or(0, |s| s.hard_state.commit);
            for i in [last, commit] {
                if i < n.store.first_index().unwrap() {
                    continue;
                }
                let Ok(es) = n.store.entries(i, i + 1, None) else {
                    continue;
                };
                let prev = n.store.term(i - 1).ok();
                self.register(n.id, &es[0], prev)?;
            }
        }
        Ok(())
    }
}

/// The whole-log comparison the registry stands for, run once at the end of a seed:
/// two logs holding the same (index, term) hold the same entries up to it.
pub fn check_full(nodes: &[NodeView]) -> Result<(), String> {
    let logs: Vec<(u64, Vec<Entry>)> = nodes
        .iter()
        .map(|n| {
            let (first, last) = (
                n.store.first_index().unwrap(),
                n.store.last_index().unwrap(),
            );
            (first, n.store.entries(first, last + 1, None).unwrap())
        })
        .collect();
    for a in 0..logs.len() {
        for b in a + 1..logs.len() {
            let ((fa, la), (fb, lb)) = (&logs[a], &logs[b]);
            let lo = *fa.max(fb);
            let hi = (fa + la.len() as u64).min(fb + lb.len() as u64);
            let at = |f: u64, l: &[Entry], i: u64| l[(i - f) as usize].clone();
            let Some(top) = (lo..hi)
                .rev()
                .find(|&i| at(*fa, la, i).term == at(*fb, lb, i).term)
            else {
                continue;
            };
            if let Some(i) = (lo..=top).find(|&i| at(*fa, la, i) != at(*fb, lb, i)) {
                return Err(format!(
                    "log matching: nodes {} and {} agree at index {top} but differ at {i}",
                    nodes[a].id, nodes[b].id
                ));
            }
        }
    }
    Ok(())
}
