//! A sequential model of etcd's KV API on single keys, with revisions.

use std::collections::BTreeMap;

use super::{Model, Operation};

/// Bytes of a key or value shown in reports; longer ones are cut with `...`.
pub const DISPLAY_BYTES_MAX: usize = 48;

/// A request on one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KvInput {
    /// The key; the model partitions the history by it.
    pub key: Vec<u8>,
    /// What was asked.
    pub op: KvOp,
}

/// The requests the model knows (etcd `Range`, `Put`, `DeleteRange` and `Txn`, each on a
/// single key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KvOp {
    /// `Range` of the key alone (a linearizable read).
    Get,
    /// `Put` of `value`.
    Put {
        /// The value written.
        value: Vec<u8>,
    },
    /// `DeleteRange` of the key alone.
    Delete,
    /// A compare-and-set `Txn`: if the key's value equals `expected` put `value`, else do
    /// nothing. `expected: None` means "the key does not exist" (etcd:
    /// `Compare(CreateRevision(key), "=", 0)`); a value compare against a missing key
    /// fails, as in etcd's `applyCompare`.
    CompareAndSet {
        /// The value the key must hold, or `None` for "absent".
        expected: Option<Vec<u8>>,
        /// The value put if the compare holds.
        value: Vec<u8>,
    },
}

/// A key-value pair a `Get` saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservedValue {
    /// The value.
    pub value: Vec<u8>,
    /// Its `mod_revision` (etcd `mvccpb.KeyValue.mod_revision`), if recorded.
    pub mod_revision: Option<i64>,
}

/// A response. Every `revision` is the response header's revision (etcd
/// `ResponseHeader.revision`), `None` when not recorded; revisions are checked only where
/// given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KvOutput {
    /// Answer to [`KvOp::Get`]: the pair, or `None` if the key does not exist.
    Get {
        /// What was read.
        kv: Option<ObservedValue>,
        /// Header revision: the store revision the read was served at.
        revision: Option<i64>,
    },
    /// Answer to [`KvOp::Put`].
    Put {
        /// Header revision: the revision of this write.
        revision: Option<i64>,
    },
    /// Answer to [`KvOp::Delete`].
    Delete {
        /// Keys deleted: 1 if the key existed, else 0.
        deleted: i64,
        /// Header revision: this write's revision if `deleted == 1`, else the store
        /// revision.
        revision: Option<i64>,
    },
    /// Answer to [`KvOp::CompareAndSet`].
    CompareAndSet {
        /// Whether the compare held and the value was put (etcd `TxnResponse.succeeded`).
        succeeded: bool,
        /// Header revision: this write's revision if `succeeded`, else the store revision.
        revision: Option<i64>,
    },
    /// No response (timeout, connection lost): the request may or may not have taken
    /// effect. Pair it with [`RETURN_UNKNOWN`](super::RETURN_UNKNOWN) as the return time.
    Unknown,
}

/// What is known about the `mod_revision` of a key's current value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ModRevision {
    /// Exactly this (from a write's response, or pinned by a read that saw it).
    Known(i64),
    /// At least this: the write's response was not seen.
    AtLeast(i64),
}

/// The model's state of one key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct KvState {
    /// The value, `None` if the key does not exist.
    pub value: Option<Vec<u8>>,
    /// The value's `mod_revision`; `Known(0)` when the key does not exist.
    pub mod_revision: ModRevision,
    /// A lower bound on the store's revision at this point of the linearization.
    pub revision_floor: i64,
}

/// etcd's KV API on single keys, partitioned by key.
///
/// Values: a `Get` must see the value of the last write before it (or no key); a
/// `Delete` deletes 1 key iff the key exists; a compare-and-set succeeds iff its compare
/// holds. An operation with [`KvOutput::Unknown`] is accepted in any state and applies its
/// write (if its compare holds); the search covers "it never happened" by ordering it last.
///
/// Revisions (etcd `api_guarantees.md`: every write gets a new, larger revision, and a
/// read is served at the store's current revision), checked only where the history records
/// them. The state keeps a lower bound on the store revision (`revision_floor`):
/// - a write's revision must exceed the floor, and becomes it;
/// - any other response's header revision must be at least the floor, and becomes it;
/// - a `Get`'s `mod_revision` must equal the revision of the write it sees, and not exceed
///   the `Get`'s header revision.
///
/// This stays sound with unknown outcomes: a write whose response was lost (or whose
/// revision was not recorded) has some revision above the floor, so the value's
/// `mod_revision` is `AtLeast(floor + 1)` and the floor stays (a weaker bound, but
/// raising it by 1 per such write made states that differ only in that count, and
/// measured 2,000 operations on one key with 40 lost writes went from 1.3 s to
/// [`MEMO_BYTES_MAX`](super::MEMO_BYTES_MAX)). The first `Get` that sees that value with
/// a `mod_revision` pins it. Each rule holds in etcd's real order of execution restricted
/// to one key, so it never rejects a correct history; it is only weaker than a check
/// across keys (revisions are global, but partitions are checked apart).
#[derive(Debug, Clone, Copy, Default)]
pub struct EtcdKvModel;

impl KvState {
    /// After a write of `value` (`None`: delete) with revision `revision` (`None`: not
    /// known: above the floor, which stays), or `None` if the revision does not exceed the
    /// floor.
    fn write(&self, value: Option<&[u8]>, revision: Option<i64>) -> Option<KvState> {
        let (mod_revision, floor) = match revision {
            Some(r) if r <= self.revision_floor => return None,
            Some(r) => (ModRevision::Known(r), r),
            None => (
                ModRevision::AtLeast(self.revision_floor.saturating_add(1)),
                self.revision_floor,
            ),
        };
        Some(KvState {
            value: value.map(<[u8]>::to_vec),
            mod_revision: if value.is_some() {
                mod_revision
            } else {
                ModRevision::Known(0)
            },
            revision_floor: floor,
        })
    }

    /// After a response that wrote nothing with header revision `revision`, or `None` if
    /// it is below the floor.
    fn observe(&self, revision: Option<i64>) -> Option<KvState> {
        let mut next = self.clone();
        if let Some(r) = revision {
            if r < self.revision_floor {
                return None;
            }
            next.revision_floor = r;
        }
        Some(next)
    }

    /// After a `Get` that saw `kv` at header revision `revision`.
    fn read(&self, kv: Option<&ObservedValue>, revision: Option<i64>) -> Option<KvState> {
        let mut next = self.observe(revision)?;
        match (kv, &self.value) {
            (None, None) => {}
            (Some(seen), Some(value)) if seen.value == *value => {
                if let Some(m) = seen.mod_revision {
                    if revision.is_some_and(|r| m > r) {
                        return None;
                    }
                    match self.mod_revision {
                        ModRevision::Known(k) if k != m => return None,
                        ModRevision::Known(_) => {}
                        ModRevision::AtLeast(low) if m < low => return None,
                        ModRevision::AtLeast(_) => {
                            next.mod_revision = ModRevision::Known(m);
                            next.revision_floor = next.revision_floor.max(m);
                        }
                    }
                }
            }
            _ => return None,
        }
        Some(next)
    }

    /// Whether a compare-and-set's compare holds.
    fn holds(&self, expected: Option<&Vec<u8>>) -> bool {
        self.value.as_ref() == expected
    }

    /// After an operation whose outcome is unknown, taken as having happened.
    fn apply_unknown(&self, op: &KvOp) -> KvState {
        let wrote = match op {
            KvOp::Get => None,
            KvOp::Put { value } => self.write(Some(value), None),
            KvOp::Delete if self.value.is_some() => self.write(None, None),
            KvOp::Delete => None,
            KvOp::CompareAndSet { expected, value } if self.holds(expected.as_ref()) => {
                self.write(Some(value), None)
            }
            KvOp::CompareAndSet { .. } => None,
        };
        wrote.unwrap_or_else(|| self.clone())
    }
}

impl Model for EtcdKvModel {
    type State = KvState;
    type Input = KvInput;
    type Output = KvOutput;

    fn init(&self) -> KvState {
        KvState {
            value: None,
            mod_revision: ModRevision::Known(0),
            revision_floor: 0,
        }
    }

    fn step(&self, state: &KvState, input: &KvInput, output: &KvOutput) -> Option<KvState> {
        match (&input.op, output) {
            (op, KvOutput::Unknown) => Some(state.apply_unknown(op)),
            (KvOp::Get, KvOutput::Get { kv, revision }) => state.read(kv.as_ref(), *revision),
            (KvOp::Put { value }, KvOutput::Put { revision }) => {
                state.write(Some(value), *revision)
            }
            (KvOp::Delete, KvOutput::Delete { deleted, revision }) => {
                match (state.value.is_some(), *deleted) {
                    (true, 1) => state.write(None, *revision),
                    (false, 0) => state.observe(*revision),
                    _ => None,
                }
            }
            (
                KvOp::CompareAndSet { expected, value },
                KvOutput::CompareAndSet {
                    succeeded,
                    revision,
                },
            ) => match (state.holds(expected.as_ref()), *succeeded) {
                (true, true) => state.write(Some(value), *revision),
                (false, false) => state.observe(*revision),
                _ => None,
            },
            // A response of another kind than the request: no correct server sends it.
            _ => None,
        }
    }

    /// One partition per key, in key order.
    fn partition(&self, history: &[Operation<KvInput, KvOutput>]) -> Vec<Vec<usize>> {
        let mut by_key: BTreeMap<&[u8], Vec<usize>> = BTreeMap::new();
        for (i, op) in history.iter().enumerate() {
            by_key.entry(&op.input.key).or_default().push(i);
        }
        by_key.into_values().collect()
    }

    /// Two proofs, per key:
    /// - by value: an unknown-outcome put or compare-and-set whose value no other
    ///   operation on the key writes took effect by the return of the first operation that
    ///   saw that value: a `Get` returning it, or a compare-and-set expecting it that
    ///   succeeded (both with known outcomes);
    /// - by revision: a write that never returned but whose revision `r` is known (a fault
    ///   test can learn it afterwards from a watch of the key's history) took effect by the
    ///   return of the first operation on the key with a header revision `>= r`, since
    ///   after such an operation the model needs a revision above it.
    ///
    /// Proofs by operations that returned before the write was called are ignored by
    /// [`check`](super::check); such a history is illegal anyway.
    fn observed_effects(&self, history: &[Operation<KvInput, KvOutput>]) -> Vec<(usize, u64)> {
        let mut effects = Vec::new();
        for partition in self.partition(history) {
            effects.extend(proven_by_revision(history, &partition));
            // value -> (writers, the unknown-outcome writer)
            let mut writers: BTreeMap<&[u8], (usize, Option<usize>)> = BTreeMap::new();
            for &i in &partition {
                let op = &history[i];
                let value = match &op.input.op {
                    KvOp::Put { value } | KvOp::CompareAndSet { value, .. } => value,
                    KvOp::Get | KvOp::Delete => continue,
                };
                let entry = writers.entry(value).or_default();
                entry.0 += 1;
                if op.output == KvOutput::Unknown {
                    entry.1 = Some(i);
                }
            }
            for (value, (count, unknown)) in writers {
                let (1, Some(w)) = (count, unknown) else {
                    continue;
                };
                let call = history[w].call;
                let first_seen = partition
                    .iter()
                    .map(|&i| &history[i])
                    .filter(|op| op.return_ >= call && observes(op, value))
                    .map(|op| op.return_)
                    .min();
                if let Some(by) = first_seen {
                    effects.push((w, by));
                }
            }
        }
        effects
    }

    fn describe_partition(
        &self,
        history: &[Operation<KvInput, KvOutput>],
        partition: &[usize],
    ) -> String {
        match partition.first() {
            Some(&i) => format!("key {}", bytes(&history[i].input.key)),
            None => String::from("no operations"),
        }
    }

    fn describe_operation(&self, input: &KvInput, output: &KvOutput) -> String {
        let key = bytes(&input.key);
        let call = match &input.op {
            KvOp::Get => format!("get({key})"),
            KvOp::Put { value } => format!("put({key}, {})", bytes(value)),
            KvOp::Delete => format!("delete({key})"),
            KvOp::CompareAndSet { expected, value } => format!(
                "cas({key}, {} -> {})",
                expected.as_deref().map_or(String::from("absent"), bytes),
                bytes(value)
            ),
        };
        let answer = match output {
            KvOutput::Get { kv: None, revision } => format!("absent{}", rev(" rev", *revision)),
            KvOutput::Get {
                kv: Some(seen),
                revision,
            } => format!(
                "{}{}{}",
                bytes(&seen.value),
                rev(" mod_rev", seen.mod_revision),
                rev(" rev", *revision)
            ),
            KvOutput::Put { revision } => format!("ok{}", rev(" rev", *revision)),
            KvOutput::Delete { deleted, revision } => {
                format!("deleted {deleted}{}", rev(" rev", *revision))
            }
            KvOutput::CompareAndSet {
                succeeded,
                revision,
            } => format!(
                "{}{}",
                if *succeeded { "succeeded" } else { "failed" },
                rev(" rev", *revision)
            ),
            KvOutput::Unknown => String::from("unknown"),
        };
        format!("{call} -> {answer}")
    }

    fn describe_state(&self, state: &KvState) -> String {
        let value = state.value.as_deref().map_or(String::from("absent"), bytes);
        let mod_revision = match (state.value.is_some(), state.mod_revision) {
            (false, _) => String::new(),
            (true, ModRevision::Known(m)) => format!(" mod_rev {m}"),
            (true, ModRevision::AtLeast(m)) => format!(" mod_rev >= {m}"),
        };
        format!(
            "{value}{mod_revision}, store revision >= {}",
            state.revision_floor
        )
    }
}

/// The header revision of a response, `None` if not recorded or unknown.
fn header_revision(output: &KvOutput) -> Option<i64> {
    match output {
        KvOutput::Get { revision, .. }
        | KvOutput::Put { revision }
        | KvOutput::Delete { revision, .. }
        | KvOutput::CompareAndSet { revision, .. } => *revision,
        KvOutput::Unknown => None,
    }
}

/// Writes of one key that never returned but carry their revision, each with the first
/// return of another operation whose header revision is at least that revision.
fn proven_by_revision(
    history: &[Operation<KvInput, KvOutput>],
    partition: &[usize],
) -> Vec<(usize, u64)> {
    // (header revision, return) of the operations that returned, by revision.
    let mut returned: Vec<(i64, u64)> = partition
        .iter()
        .map(|&i| &history[i])
        .filter(|op| !op.is_outcome_unknown())
        .filter_map(|op| header_revision(&op.output).map(|r| (r, op.return_)))
        .collect();
    returned.sort_unstable();
    // Earliest return among the operations at or above each position.
    let mut earliest_from = vec![u64::MAX; returned.len() + 1];
    for k in (0..returned.len()).rev() {
        earliest_from[k] = earliest_from[k + 1].min(returned[k].1);
    }
    partition
        .iter()
        .filter(|&&i| history[i].is_outcome_unknown())
        .filter_map(|&i| {
            let r = header_revision(&history[i].output)?;
            let from = returned.partition_point(|&(h, _)| h < r);
            let by = earliest_from[from];
            (by != u64::MAX).then_some((i, by))
        })
        .collect()
}

/// Whether `op`, with a known outcome, saw `value` as the key's value.
fn observes(op: &Operation<KvInput, KvOutput>, value: &[u8]) -> bool {
    match (&op.input.op, &op.output) {
        (KvOp::Get, KvOutput::Get { kv: Some(seen), .. }) => seen.value == value,
        (
            KvOp::CompareAndSet {
                expected: Some(expected),
                ..
            },
            KvOutput::CompareAndSet {
                succeeded: true, ..
            },
        ) => expected == value,
        _ => false,
    }
}

/// `"text"` with non-printable bytes escaped, cut after [`DISPLAY_BYTES_MAX`] bytes.
fn bytes(b: &[u8]) -> String {
    let shown = &b[..b.len().min(DISPLAY_BYTES_MAX)];
    let cut = if b.len() > DISPLAY_BYTES_MAX {
        "..."
    } else {
        ""
    };
    format!("\"{}{cut}\"", shown.escape_ascii())
}

/// `" rev 5"`, or nothing when not recorded.
fn rev(label: &str, revision: Option<i64>) -> String {
    revision.map_or(String::new(), |r| format!("{label} {r}"))
}
