//! A core's watchers indexed by key range, so that an event is matched only against the
//! watchers whose range covers its key (etcd `mvcc/watcher_group.go`: `watcherGroup` with
//! `keyWatchers` and an `adt.IntervalTree` of ranges).
//!
//! - Single-key watchers (empty `range_end`) sit in a hash map by key.
//! - Range watchers `[key, range_end)`, from-key watchers (`range_end` = `"\0"`, every key
//!   `>= key`) and the all-keys watch (`key` = `range_end` = `"\0"`) sit in an interval
//!   tree: a treap ordered by `(start, hub key)` whose nodes carry the largest end of their
//!   subtree, so a stabbing query visits `O(log n + matches)` nodes in expectation.
//!
//! No crate fitted: `store-interval-tree` 0.4 visits every right subtree on a query (O(n)
//! per event) and keeps one value per interval; `unbounded-interval-tree` stores no
//! values and cannot remove a given interval; `iset` needs `Copy` bounds (keys are bytes).
//!
//! The index holds synced and unsynced watchers alike; the hub skips the unsynced ones.

use std::cmp::Ordering;
use std::collections::{BTreeSet, HashMap};
use std::rc::Rc;

use super::Watcher;

/// The end of a watched range as etcd orders it (`adt.NewStringAffineInterval`): a key,
/// exclusive, or no end at all (from-key and all-keys watches). `Key < Unbounded`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum RangeEnd {
    Key(Rc<[u8]>),
    Unbounded,
}

impl RangeEnd {
    /// etcd's watch `range_end`: `"\0"` means no end; any other non-empty value is a key.
    fn from_range_end(range_end: &[u8]) -> RangeEnd {
        if range_end == [0] {
            RangeEnd::Unbounded
        } else {
            RangeEnd::Key(Rc::from(range_end))
        }
    }

    /// Whether `key` lies before this end (the range, if it starts at or before `key`,
    /// covers it).
    fn is_after(&self, key: &[u8]) -> bool {
        match self {
            RangeEnd::Key(end) => key < &end[..],
            RangeEnd::Unbounded => true,
        }
    }
}

type Link = Option<Box<Node>>;

struct Node {
    start: Box<[u8]>,
    end: RangeEnd,
    id: u64,
    /// Heap priority: a parent's is never below its children's.
    priority: u64,
    /// The largest `end` in this node's subtree.
    max_end: RangeEnd,
    left: Link,
    right: Link,
}

impl Node {
    fn order(&self, start: &[u8], id: u64) -> Ordering {
        (&self.start[..], self.id).cmp(&(start, id))
    }

    /// Recomputes `max_end` from the node and its children.
    fn update(&mut self) {
        let mut max = &self.end;
        for child in [&self.left, &self.right].into_iter().flatten() {
            if child.max_end > *max {
                max = &child.max_end;
            }
        }
        self.max_end = max.clone();
    }
}

/// A deterministic, well-spread treap priority for hub key `id` (SplitMix64's finalizer;
/// hub keys are sequential, so they must not be used directly).
fn priority_of(id: u64) -> u64 {
    let mut z = id.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Splits `link` into the nodes ordered before `(start, id)` and the rest.
fn split(link: Link, start: &[u8], id: u64) -> (Link, Link) {
    let Some(mut node) = link else {
        return (None, None);
    };
    if node.order(start, id) == Ordering::Less {
        let (before, rest) = split(node.right.take(), start, id);
        node.right = before;
        node.update();
        (Some(node), rest)
    } else {
        let (before, rest) = split(node.left.take(), start, id);
        node.left = rest;
        node.update();
        (before, Some(node))
    }
}

/// Joins two treaps where every node of `a` is ordered before every node of `b`.
fn merge(a: Link, b: Link) -> Link {
    match (a, b) {
        (None, b) => b,
        (a, None) => a,
        (Some(mut a), Some(mut b)) => {
            if a.priority >= b.priority {
                a.right = merge(a.right.take(), Some(b));
                a.update();
                Some(a)
            } else {
                b.left = merge(Some(a), b.left.take());
                b.update();
                Some(b)
            }
        }
    }
}

/// Removes the node `(start, id)` if its end is `end`; false if there is none.
fn remove_from(link: &mut Link, start: &[u8], end: &RangeEnd, id: u64) -> bool {
    let (order, same_end) = match link.as_ref() {
        None => return false,
        Some(node) => (node.order(start, id), node.end == *end),
    };
    if order == Ordering::Equal {
        if !same_end {
            return false;
        }
        let mut node = link.take().expect("matched above");
        *link = merge(node.left.take(), node.right.take());
        return true;
    }
    let node = link.as_mut().expect("matched above");
    let child = if order == Ordering::Greater {
        &mut node.left
    } else {
        &mut node.right
    };
    let removed = remove_from(child, start, end, id);
    if removed {
        node.update();
    }
    removed
}

/// Calls `f` with the id of every range in `link` that covers `key`, in `(start, id)`
/// order.
fn stab(link: &Link, key: &[u8], f: &mut impl FnMut(u64)) {
    let Some(node) = link else {
        return;
    };
    if !node.max_end.is_after(key) {
        return;
    }
    stab(&node.left, key, f);
    if &node.start[..] <= key {
        if node.end.is_after(key) {
            f(node.id);
        }
        stab(&node.right, key, f);
    }
}

/// Key ranges `[start, end)` with unique `(start, id)`, answering "which ranges cover this
/// key" (etcd's `IntervalTree.Stab`).
#[derive(Default)]
struct RangeTree {
    root: Link,
    len: usize,
}

impl RangeTree {
    fn insert(&mut self, start: &[u8], end: RangeEnd, id: u64) {
        let node = Box::new(Node {
            start: Box::from(start),
            max_end: end.clone(),
            end,
            id,
            priority: priority_of(id),
            left: None,
            right: None,
        });
        let (before, rest) = split(self.root.take(), start, id);
        self.root = merge(merge(before, Some(node)), rest);
        self.len += 1;
    }

    fn remove(&mut self, start: &[u8], end: &RangeEnd, id: u64) -> bool {
        let removed = remove_from(&mut self.root, start, end, id);
        if removed {
            self.len -= 1;
        }
        removed
    }
}

/// The hub keys of the watchers of one single key. Most keys have one watcher; keeping it
/// inline saves a B-tree node (~100 bytes) per watcher.
enum KeyWatchers {
    One(u64),
    Many(BTreeSet<u64>),
}

impl KeyWatchers {
    /// Adds `id`; false if it was there already.
    fn insert(&mut self, id: u64) -> bool {
        match self {
            KeyWatchers::One(one) if *one == id => false,
            KeyWatchers::One(one) => {
                *self = KeyWatchers::Many(BTreeSet::from([*one, id]));
                true
            }
            KeyWatchers::Many(ids) => ids.insert(id),
        }
    }

    /// Removes `id`; returns whether it was there and whether the set is now empty.
    fn remove(&mut self, id: u64) -> (bool, bool) {
        match self {
            KeyWatchers::One(one) => (*one == id, *one == id),
            KeyWatchers::Many(ids) => {
                let removed = ids.remove(&id);
                if ids.len() == 1 {
                    let last = *ids.first().expect("one left");
                    *self = KeyWatchers::One(last);
                }
                (removed, false)
            }
        }
    }

    fn for_each(&self, f: &mut impl FnMut(u64)) {
        match self {
            KeyWatchers::One(one) => f(*one),
            KeyWatchers::Many(ids) => ids.iter().for_each(|id| f(*id)),
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        match self {
            KeyWatchers::One(_) => 1,
            KeyWatchers::Many(ids) => ids.len(),
        }
    }
}

/// Watcher hub keys indexed by the range each watches (see the module docs).
#[derive(Default)]
pub(super) struct WatcherIndex {
    /// Single-key watchers: key → hub keys.
    keys: HashMap<Box<[u8]>, KeyWatchers>,
    /// Range, from-key and all-keys watchers.
    ranges: RangeTree,
}

impl WatcherIndex {
    /// Adds watcher `id` on `key` with etcd's `range_end` (empty: `key` alone; `"\0"`:
    /// every key `>= key`; else `[key, range_end)`). `id` must not be in the index.
    pub(super) fn insert(&mut self, key: &[u8], range_end: &[u8], id: u64) {
        if range_end.is_empty() {
            let fresh = match self.keys.get_mut(key) {
                Some(ids) => ids.insert(id),
                None => self
                    .keys
                    .insert(Box::from(key), KeyWatchers::One(id))
                    .is_none(),
            };
            assert!(fresh, "watcher {id} indexed twice");
        } else {
            self.ranges
                .insert(key, RangeEnd::from_range_end(range_end), id);
        }
    }

    /// Removes watcher `id` added with the same `key` and `range_end`; false if absent.
    pub(super) fn remove(&mut self, key: &[u8], range_end: &[u8], id: u64) -> bool {
        if !range_end.is_empty() {
            let end = RangeEnd::from_range_end(range_end);
            return self.ranges.remove(key, &end, id);
        }
        let Some(ids) = self.keys.get_mut(key) else {
            return false;
        };
        let (removed, empty) = ids.remove(id);
        if empty {
            self.keys.remove(key);
        }
        removed
    }

    /// Calls `f` once with the id of every watcher whose range covers `key`.
    pub(super) fn for_each_covering(&self, key: &[u8], mut f: impl FnMut(u64)) {
        if let Some(ids) = self.keys.get(key) {
            ids.for_each(&mut f);
        }
        stab(&self.ranges.root, key, &mut f);
    }

    /// Watchers in the index.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.keys.values().map(KeyWatchers::len).sum::<usize>() + self.ranges.len
    }

    fn clear(&mut self) {
        self.keys.clear();
        self.ranges = RangeTree::default();
    }
}

/// A hub's watchers by hub key, with their [`WatcherIndex`] kept in step (etcd's
/// `watcherGroup`). A watcher's `key` and `range_end` must not change while it is here.
#[derive(Default)]
pub(super) struct Watchers {
    by_hub_key: HashMap<u64, Watcher>,
    index: WatcherIndex,
}

impl Watchers {
    /// Adds `watcher` under the new hub key `hub_key`.
    pub(super) fn insert(&mut self, hub_key: u64, watcher: Watcher) {
        self.index.insert(&watcher.key, &watcher.range_end, hub_key);
        let old = self.by_hub_key.insert(hub_key, watcher);
        assert!(old.is_none(), "hub key {hub_key} reused");
    }

    /// Removes and returns the watcher `hub_key`, if present.
    pub(super) fn remove(&mut self, hub_key: &u64) -> Option<Watcher> {
        let watcher = self.by_hub_key.remove(hub_key)?;
        let indexed = self
            .index
            .remove(&watcher.key, &watcher.range_end, *hub_key);
        assert!(indexed, "watcher {hub_key} missing from the index");
        Some(watcher)
    }

    pub(super) fn get(&self, hub_key: &u64) -> Option<&Watcher> {
        self.by_hub_key.get(hub_key)
    }

    pub(super) fn get_mut(&mut self, hub_key: &u64) -> Option<&mut Watcher> {
        self.by_hub_key.get_mut(hub_key)
    }

    pub(super) fn iter(&self) -> impl Iterator<Item = (&u64, &Watcher)> {
        self.by_hub_key.iter()
    }

    pub(super) fn values_mut(&mut self) -> impl Iterator<Item = &mut Watcher> {
        self.by_hub_key.values_mut()
    }

    pub(super) fn clear(&mut self) {
        self.by_hub_key.clear();
        self.index.clear();
    }

    /// Calls `f` with the hub key and watcher of every watcher whose range covers `key`
    /// (synced or not; filters not applied).
    pub(super) fn for_each_covering(&self, key: &[u8], mut f: impl FnMut(u64, &Watcher)) {
        self.index.for_each_covering(key, |hub_key| {
            let watcher = &self.by_hub_key[&hub_key];
            debug_assert!(watcher.matches(key));
            f(hub_key, watcher)
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The ids covering `key`, sorted.
    fn covering(index: &WatcherIndex, key: &[u8]) -> Vec<u64> {
        let mut ids = Vec::new();
        index.for_each_covering(key, |id| ids.push(id));
        ids.sort_unstable();
        ids
    }

    /// The brute-force matcher the hub used before the index: `Watcher::matches`.
    fn covers(key: &[u8], range_end: &[u8], probe: &[u8]) -> bool {
        crate::watch::tests::watcher_on(key, range_end).matches(probe)
    }

    /// Checks the treap's order, heap and `max_end` invariants; returns the node count.
    fn check(link: &Link, low: Option<(&[u8], u64)>, high: Option<(&[u8], u64)>) -> usize {
        let Some(node) = link else {
            return 0;
        };
        let here = (&node.start[..], node.id);
        assert!(low.is_none_or(|low| low < here));
        assert!(high.is_none_or(|high| here < high));
        let mut max = node.end.clone();
        for child in [&node.left, &node.right].into_iter().flatten() {
            assert!(child.priority <= node.priority);
            max = max.max(child.max_end.clone());
        }
        assert_eq!(node.max_end, max);
        1 + check(&node.left, low, Some(here)) + check(&node.right, Some(here), high)
    }

    #[test]
    fn single_key_range_from_key_and_all_keys() {
        let mut index = WatcherIndex::default();
        index.insert(b"b", b"", 1);
        index.insert(b"b", b"c", 2);
        index.insert(b"b", &[0], 3);
        index.insert(&[0], &[0], 4);
        index.insert(b"a", b"b", 5);
        index.insert(b"b", b"", 6);
        assert_eq!(covering(&index, b"a"), [4, 5]);
        assert_eq!(covering(&index, b"b"), [1, 2, 3, 4, 6]);
        assert_eq!(covering(&index, b"ba"), [2, 3, 4]);
        assert_eq!(covering(&index, b"c"), [3, 4]);
        assert_eq!(covering(&index, b"\0"), [4]);
        assert_eq!(index.len(), 6);
        assert!(index.remove(b"b", b"", 1));
        assert!(!index.remove(b"b", b"", 1));
        assert!(!index.remove(b"b", b"c", 3), "other range_end");
        assert!(!index.remove(b"b", b"c", 7), "other id");
        assert!(index.remove(b"b", &[0], 3));
        assert_eq!(covering(&index, b"b"), [2, 4, 6]);
        assert_eq!(covering(&index, b"c"), [4]);
        assert_eq!(index.len(), 4);
        // A key's watchers go from one to many and back, down to none.
        index.insert(b"b", b"", 7);
        assert!(index.remove(b"b", b"", 6));
        assert_eq!(covering(&index, b"b"), [2, 4, 7]);
        assert!(!index.remove(b"b", b"", 6));
        assert!(index.remove(b"b", b"", 7));
        assert!(!index.remove(b"b", b"", 7));
        assert_eq!(covering(&index, b"b"), [2, 4]);
        assert!(!index.keys.contains_key(&b"b"[..]));
    }

    #[test]
    fn many_ranges_stay_balanced_and_correct() {
        let mut index = WatcherIndex::default();
        // Nested prefixes and distinct prefixes, as Kubernetes' watch cache makes them.
        for id in 0..2_000u64 {
            let start = format!("/registry/pods/ns{id}/");
            let end = format!("/registry/pods/ns{id}0");
            index.insert(start.as_bytes(), end.as_bytes(), id);
        }
        index.insert(b"/registry/", b"/registry0", 5_000);
        assert_eq!(covering(&index, b"/registry/pods/ns17/pod-1"), [17, 5_000]);
        assert_eq!(covering(&index, b"/registry/pods/ns1"), [5_000]);
        assert_eq!(check(&index.ranges.root, None, None), 2_001);
        for id in (0..2_000u64).step_by(2) {
            let start = format!("/registry/pods/ns{id}/");
            let end = format!("/registry/pods/ns{id}0");
            assert!(index.remove(start.as_bytes(), end.as_bytes(), id));
        }
        assert_eq!(check(&index.ranges.root, None, None), 1_001);
        assert_eq!(covering(&index, b"/registry/pods/ns16/x"), [5_000]);
        assert_eq!(covering(&index, b"/registry/pods/ns17/x"), [17, 5_000]);
    }

    #[derive(Debug, Clone)]
    enum Op {
        Insert(Vec<u8>, Vec<u8>),
        Remove(usize),
    }

    /// Keys over a small alphabet (with "\0") so ranges overlap, nest and touch often.
    fn key() -> impl Strategy<Value = Vec<u8>> {
        prop::collection::vec(prop::sample::select(vec![0u8, b'a', b'b', b'c']), 0..4)
    }

    fn range_end() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![Just(Vec::new()), Just(vec![0]), key()]
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            3 => (key(), range_end()).prop_map(|(k, e)| Op::Insert(k, e)),
            1 => any::<usize>().prop_map(Op::Remove),
        ]
    }

    proptest! {
        /// After any sequence of inserts and removes, the index answers exactly what the
        /// brute-force matcher answers, for every probe key.
        #[test]
        fn index_agrees_with_brute_force(
            ops in prop::collection::vec(op(), 1..120),
            probes in prop::collection::vec(key(), 1..30),
        ) {
            let mut index = WatcherIndex::default();
            let mut live: Vec<(u64, Vec<u8>, Vec<u8>)> = Vec::new();
            let mut next_id = 0;
            for op in ops {
                match op {
                    // The hub rejects empty ranges before indexing (etcd
                    // ErrEmptyWatcherRange); mirror that.
                    Op::Insert(k, e) if !e.is_empty() && e != [0] && k >= e => {}
                    Op::Insert(k, e) => {
                        index.insert(&k, &e, next_id);
                        live.push((next_id, k, e));
                        next_id += 1;
                    }
                    Op::Remove(_) if live.is_empty() => {}
                    Op::Remove(at) => {
                        let (id, k, e) = live.swap_remove(at % live.len());
                        prop_assert!(index.remove(&k, &e, id));
                        prop_assert!(!index.remove(&k, &e, id));
                    }
                }
            }
            prop_assert_eq!(index.len(), live.len());
            prop_assert_eq!(
                check(&index.ranges.root, None, None),
                live.iter().filter(|(_, _, e)| !e.is_empty()).count()
            );
            for probe in probes {
                let mut expected: Vec<u64> = live
                    .iter()
                    .filter(|(_, k, e)| covers(k, e, &probe))
                    .map(|(id, _, _)| *id)
                    .collect();
                expected.sort_unstable();
                prop_assert_eq!(covering(&index, &probe), expected);
            }
        }
    }
}
