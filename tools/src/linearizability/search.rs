//! The search of one partition: Wing & Gong's depth-first search over a linked list of
//! call and return entries, with Lowe's memo of (linearized bitset, state) pairs.
//! The shape follows Porcupine's `checkSingle` (anishathalye/porcupine `checker.go`).

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, DefaultHasher, Hash, Hasher};
use std::time::Instant;

use super::{Model, Operation, DEADLINE_CHECK_STEPS};

/// Bytes a memo entry costs beyond its bitset words and inline state: the allocator's
/// header of the bitset, the hash map slot and the bucket's spare capacity (an estimate).
const MEMO_ENTRY_OVERHEAD_BYTES: usize = 64;

/// How the search of one partition ended.
pub(super) enum Outcome<S> {
    /// A linearization exists.
    Linearizable,
    /// None exists.
    Illegal(Failure<S>),
    /// The deadline passed first.
    Deadline,
    /// The memo reached its byte limit first.
    MemoFull,
}

/// What the search learnt about a history without a linearization.
pub(super) struct Failure<S> {
    /// The longest sequence of operations (history indices, in order) that the search
    /// linearized before it had to backtrack.
    pub(super) longest: Vec<usize>,
    /// The model state after `longest`.
    pub(super) state: S,
}

/// Marks the end of the list (and "no match" for return entries).
const NIL: u32 = u32::MAX;
/// The sentinel node in front of the first entry.
const HEAD: u32 = 0;

/// The call and return entries of a partition as a doubly linked list in arrays.
/// Node 0 is the head sentinel; node `1 + 2k` and `2 + 2k` are not tied to operation `k`,
/// the order is by time.
struct Entries {
    prev: Vec<u32>,
    next: Vec<u32>,
    /// The operation (index into the partition) of each node.
    op: Vec<u32>,
    /// For a call node, its return node; `NIL` for return nodes and the head.
    matching: Vec<u32>,
}

impl Entries {
    /// Sorts calls and returns by time, calls first at equal times (so touching operations
    /// are concurrent), then by operation for a deterministic order.
    fn build<I, O>(history: &[Operation<I, O>], returns: &[u64], partition: &[usize]) -> Entries {
        // (time, is_return, op)
        let mut events: Vec<(u64, bool, u32)> = Vec::with_capacity(partition.len() * 2);
        for (k, &index) in partition.iter().enumerate() {
            let op = &history[index];
            let k =
                u32::try_from(k).expect("partition size is bounded by PARTITION_OPERATIONS_MAX");
            events.push((op.call, false, k));
            events.push((returns[index], true, k));
        }
        events.sort_unstable();

        let nodes = events.len() + 1;
        let mut entries = Entries {
            prev: Vec::with_capacity(nodes),
            next: Vec::with_capacity(nodes),
            op: Vec::with_capacity(nodes),
            matching: vec![NIL; nodes],
        };
        let mut return_node = vec![NIL; partition.len()];
        for node in 0..nodes {
            let node = node as u32;
            entries.prev.push(if node == HEAD { NIL } else { node - 1 });
            entries.next.push(if node as usize + 1 == nodes {
                NIL
            } else {
                node + 1
            });
            let op = if node == HEAD {
                NIL
            } else {
                events[node as usize - 1].2
            };
            entries.op.push(op);
            if node != HEAD && events[node as usize - 1].1 {
                return_node[op as usize] = node;
            }
        }
        for node in 1..nodes {
            let (_, is_return, op) = events[node - 1];
            if !is_return {
                entries.matching[node] = return_node[op as usize];
            }
        }
        entries
    }

    fn is_call(&self, node: u32) -> bool {
        self.matching[node as usize] != NIL
    }

    /// Removes `node` from the list.
    fn unlink(&mut self, node: u32) {
        let (prev, next) = (self.prev[node as usize], self.next[node as usize]);
        self.next[prev as usize] = next;
        if next != NIL {
            self.prev[next as usize] = prev;
        }
    }

    /// Puts `node` back where it was; valid in the reverse order of `unlink`s.
    fn relink(&mut self, node: u32) {
        let (prev, next) = (self.prev[node as usize], self.next[node as usize]);
        self.next[prev as usize] = node;
        if next != NIL {
            self.prev[next as usize] = node;
        }
    }

    /// Takes a call and its return out of the list.
    fn lift(&mut self, call: u32) {
        self.unlink(call);
        self.unlink(self.matching[call as usize]);
    }

    /// Undoes [`Entries::lift`].
    fn unlift(&mut self, call: u32) {
        self.relink(self.matching[call as usize]);
        self.relink(call);
    }
}

/// Which operations of the partition are linearized.
#[derive(Clone, PartialEq, Eq, Hash)]
struct Bitset(Box<[u64]>);

impl Bitset {
    fn new(bits: usize) -> Bitset {
        Bitset(vec![0; bits.div_ceil(64)].into_boxed_slice())
    }

    fn set(&mut self, bit: u32) {
        self.0[bit as usize / 64] |= 1 << (bit % 64);
    }

    fn clear(&mut self, bit: u32) {
        self.0[bit as usize / 64] &= !(1 << (bit % 64));
    }
}

/// Passes a precomputed `u64` hash through unchanged.
#[derive(Default)]
struct PrehashedHasher(u64);

impl Hasher for PrehashedHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u64` is used; fold anything else in so the hasher stays correct.
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// Lowe's memo: the (linearized set, state) pairs already reached, bucketed by a hash of
/// both so that a lookup needs no clone.
struct Memo<S> {
    buckets: HashMap<u64, Vec<(Bitset, S)>, BuildHasherDefault<PrehashedHasher>>,
    bytes: usize,
    bytes_max: usize,
    entry_bytes: usize,
}

impl<S: Clone + Eq + Hash> Memo<S> {
    fn new(bits: usize, bytes_max: usize) -> Memo<S> {
        Memo {
            buckets: HashMap::default(),
            bytes: 0,
            bytes_max,
            entry_bytes: bits.div_ceil(64) * 8
                + std::mem::size_of::<(Bitset, S)>()
                + MEMO_ENTRY_OVERHEAD_BYTES,
        }
    }

    /// Adds the pair; false if it was already there.
    fn insert(&mut self, linearized: &Bitset, state: &S) -> bool {
        let mut hasher = DefaultHasher::new();
        linearized.hash(&mut hasher);
        state.hash(&mut hasher);
        let bucket = self.buckets.entry(hasher.finish()).or_default();
        if bucket
            .iter()
            .any(|(bits, s)| bits == linearized && s == state)
        {
            return false;
        }
        bucket.push((linearized.clone(), state.clone()));
        self.bytes += self.entry_bytes;
        true
    }

    fn is_full(&self) -> bool {
        self.bytes > self.bytes_max
    }
}

/// Searches one partition (indices into `history`) for a linearization, with `returns`
/// as each operation's return time, and at most `memo_bytes_max` bytes of memo.
///
/// Candidates are tried in list order, as Porcupine does. (Trying the calls that returned
/// before the unknown-outcome ones was measured and was slower: 2,000 operations on one
/// key with 2% lost responses resolved took 7.2 s instead of 0.9 s.)
pub(super) fn search<M: Model>(
    model: &M,
    history: &[Operation<M::Input, M::Output>],
    returns: &[u64],
    partition: &[usize],
    stop_at: Option<Instant>,
    memo_bytes_max: usize,
) -> Outcome<M::State> {
    let mut entries = Entries::build(history, returns, partition);
    let mut linearized = Bitset::new(partition.len());
    let mut memo = Memo::new(partition.len(), memo_bytes_max);
    // The calls linearized so far, with the state before each.
    let mut calls: Vec<(u32, M::State)> = Vec::new();
    let mut longest: Option<(Vec<u32>, M::State)> = None;
    let mut state = model.init();
    let mut steps: u64 = 0;

    let mut node = entries.next[HEAD as usize];
    while entries.next[HEAD as usize] != NIL {
        steps += 1;
        if steps.is_multiple_of(DEADLINE_CHECK_STEPS)
            && stop_at.is_some_and(|t| Instant::now() >= t)
        {
            return Outcome::Deadline;
        }
        let op_k = entries.op[node as usize];
        if entries.is_call(node) {
            let op = &history[partition[op_k as usize]];
            let next_state = model.step(&state, &op.input, &op.output);
            let mut advanced = false;
            if let Some(next_state) = next_state {
                linearized.set(op_k);
                if memo.insert(&linearized, &next_state) {
                    if memo.is_full() {
                        return Outcome::MemoFull;
                    }
                    calls.push((node, std::mem::replace(&mut state, next_state)));
                    entries.lift(node);
                    node = entries.next[HEAD as usize];
                    advanced = true;
                } else {
                    linearized.clear(op_k);
                }
            }
            if !advanced {
                node = entries.next[node as usize];
            }
        } else {
            // The return of an operation not linearized yet: every way of going on from
            // here has been tried, so undo the last linearized call.
            if longest
                .as_ref()
                .is_none_or(|(ops, _)| calls.len() > ops.len())
            {
                let ops = calls.iter().map(|(n, _)| entries.op[*n as usize]).collect();
                longest = Some((ops, state.clone()));
            }
            let Some((call, previous)) = calls.pop() else {
                let (ops, state) = longest.expect("recorded just above");
                return Outcome::Illegal(Failure {
                    longest: ops.iter().map(|&k| partition[k as usize]).collect(),
                    state,
                });
            };
            state = previous;
            linearized.clear(entries.op[call as usize]);
            entries.unlift(call);
            node = entries.next[call as usize];
        }
    }
    Outcome::Linearizable
}
