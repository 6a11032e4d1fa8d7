//! Linearizability checker for recorded client histories.
//!
//! A history is a list of [`Operation`]s that clients issued against a store, each with the
//! time it was called and the time its response arrived. [`check`] decides whether some
//! total order of the operations (a *linearization*) both respects real time (an operation
//! that returned before another was called comes first) and is accepted, one operation at a
//! time, by a sequential specification, the [`Model`] (Herlihy & Wing 1990).
//!
//! # Algorithm
//!
//! Wing & Gong's search (1993) with Lowe's improvements ("Testing for linearizability",
//! 2017), as Porcupine implements it (anishathalye/porcupine `checker.go`):
//!
//! - Calls and returns are sorted by time (a call before a return at the same instant, so
//!   operations that touch are concurrent) into a doubly linked list.
//! - Depth-first search: walking the list, a call whose operation the model accepts from
//!   the current state is *linearized*: its call and return entries are unlinked, the
//!   previous state is pushed on a stack, and the walk restarts at the head. Reaching a
//!   return entry means its operation had to be linearized by now and was not: pop the last
//!   linearized operation, relink it and try the next call after it.
//! - Memoization (Lowe): every (set of linearized operations as a bitset, model state)
//!   pair reached is remembered; reaching a pair again is a dead end, since the search from
//!   it already failed or is under way. This turns many exponential searches polynomial.
//! - Partitioning (Porcupine, P-compositionality of Horn & Kroening 2015): a history over
//!   independent objects, such as the keys of a KV store, is linearizable iff each
//!   object's sub-history is; [`Model::partition`] splits it and each part is searched on
//!   its own.
//!
//! Operations whose outcome is unknown (the client timed out or lost its connection, so a
//! write may or may not have happened) follow Jepsen and Porcupine: their return time is
//! [`RETURN_UNKNOWN`] (never returned) and their output tells the model to accept any
//! effect. Because such an operation is concurrent with everything called after it, the
//! search may place it last, which is the same as it never having happened; so a model
//! applies the effect when it accepts it and need not branch.
//!
//! One addition of this port keeps unknown outcomes affordable:
//! [`Model::observed_effects`] lets a model prove that an unknown-outcome operation took
//! effect by some time (for [`EtcdKvModel`]: a read saw its unique value, or an operation
//! saw a revision at or above its known revision); the search then treats it as having
//! returned then. This loses no linearization.
//!
//! # Cost, and how to record histories that check quickly
//!
//! Each unknown-outcome operation that is neither proven nor disproven stays pending to the
//! end of its partition, and the search of a history without a linearization may try it
//! at every dead end: the cost grows about 2^(pending operations per partition). So fault
//! tests should write a unique value per put, spread operations over many keys, and after
//! the run resolve lost writes from the server's own history (a watch from revision 1):
//! give a write that took effect its real response (with its revision) but keep
//! [`RETURN_UNKNOWN`] as its return time, and drop one that did not take effect.
//! Measured in a debug build on the shared 2-core VM (load ~9) with
//! `tools/tests/linearizability.rs`: 10,000 operations over 100 keys from 10 clients with
//! 2% lost responses left unresolved, 0.1–0.6 s (the same with one stale read, illegal,
//! 0.06–0.25 s); 2,000 operations on one key from 10 clients, 10% lost responses
//! resolved, 0.3–0.9 s, and 2–10% unresolved, 1.1–2.4 s. Illegal histories are where
//! unresolved ones hurt: one key, 51 operations of which 17 lost, 18.6 s; one key, 2,000
//! operations with 40 lost and a stale read near the end, past [`MEMO_BYTES_MAX`] (25 s).
//!
//! Cross-checked (outside this repository, which does not hold the data) against the 102
//! Jepsen etcd logs in Porcupine's `test_data/jepsen` with [`EtcdKvModel`]: the same
//! verdict as Porcupine's tests on every log (23 linearizable, 79 not), 10.9 s in all.
//!
//! # Limits
//!
//! The search is exponential in the worst case. [`HISTORY_OPERATIONS_MAX`] and
//! [`PARTITION_OPERATIONS_MAX`] bound the input (exceeding them is a [`HistoryError`]);
//! the optional deadline and [`MEMO_BYTES_MAX`] bound the work (reaching them gives
//! [`CheckResult::Unknown`]).

mod etcd_kv;
mod report;
mod search;

use std::fmt;
use std::hash::Hash;
use std::time::{Duration, Instant};

pub use etcd_kv::{
    EtcdKvModel, KvInput, KvOp, KvOutput, KvState, ModRevision, ObservedValue, DISPLAY_BYTES_MAX,
};
pub use report::{Report, REPORT_PREFIX_OPERATIONS_MAX};

/// Operations a whole history may hold; larger histories are refused with
/// [`HistoryError::HistoryTooLarge`].
pub const HISTORY_OPERATIONS_MAX: usize = 1_000_000;

/// Operations one partition (one key, for [`EtcdKvModel`]) may hold; larger partitions are
/// refused with [`HistoryError::PartitionTooLarge`]. Each memo entry holds a bitset of this
/// many bits, so 20,000 operations cost 2.5 KiB per entry.
pub const PARTITION_OPERATIONS_MAX: usize = 20_000;

/// Bytes the memo of one partition may hold, counting each entry's bitset, the inline
/// size of its state and an estimate of the map's overhead, but not heap data the state
/// points to (a [`KvState`]'s value). Reaching it stops the check with
/// [`CheckResult::Unknown`] and [`Incomplete::MemoFull`].
pub const MEMO_BYTES_MAX: usize = 256 << 20;

/// Search steps between two looks at the clock for the deadline.
pub const DEADLINE_CHECK_STEPS: u64 = 1_024;

/// The return time of an operation whose outcome is unknown: it never returned (Jepsen's
/// `:info`, Porcupine's infinite return time).
pub const RETURN_UNKNOWN: u64 = u64::MAX;

/// One client operation of a recorded history.
///
/// `call` and `return_` are nanoseconds on one clock shared by every client (for example
/// since the start of the test); only their order matters. `return_` is at least `call`,
/// or [`RETURN_UNKNOWN`] when no response arrived.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operation<I, O> {
    /// The client that issued it; only shown in reports.
    pub client_id: u64,
    /// What was asked.
    pub input: I,
    /// When the request was sent, in ns.
    pub call: u64,
    /// What was answered; for an unknown outcome, the model's "anything" output.
    pub output: O,
    /// When the response arrived, in ns; [`RETURN_UNKNOWN`] if it never did.
    pub return_: u64,
}

impl<I, O> Operation<I, O> {
    /// True when the response never arrived (`return_ == RETURN_UNKNOWN`).
    pub fn is_outcome_unknown(&self) -> bool {
        self.return_ == RETURN_UNKNOWN
    }
}

/// A sequential specification of the object under test (Porcupine's `Model`).
///
/// `step` must be a pure function of its arguments: the search calls it many times from
/// the same state and memoizes on the states it returns.
pub trait Model {
    /// The object's abstract state; states that compare equal must behave the same.
    type State: Clone + Eq + Hash + fmt::Debug;
    /// A request.
    type Input: fmt::Debug;
    /// A response, including the "outcome unknown" response if the model has one.
    type Output: fmt::Debug;

    /// The state before any operation.
    fn init(&self) -> Self::State;

    /// The state after applying `input` that answered `output` in `state`, or `None` if a
    /// correct sequential object could not have answered `output` in `state`.
    fn step(
        &self,
        state: &Self::State,
        input: &Self::Input,
        output: &Self::Output,
    ) -> Option<Self::State>;

    /// Splits the history into independent parts, each a list of indices into `history`;
    /// every index must appear in exactly one part. The default is one part holding all.
    fn partition(&self, history: &[Operation<Self::Input, Self::Output>]) -> Vec<Vec<usize>> {
        vec![(0..history.len()).collect()]
    }

    /// A name for one part of [`Model::partition`], shown in reports (for example its key).
    fn describe_partition(
        &self,
        history: &[Operation<Self::Input, Self::Output>],
        partition: &[usize],
    ) -> String {
        let _ = (history, partition);
        String::from("all operations")
    }

    /// Operations whose outcome is unknown but whose effect the rest of the history proves,
    /// each with the time (ns) by which it must have taken effect: typically the return of
    /// the first operation that observed a value only it wrote. The search then treats it
    /// as having returned at that time instead of never (times before its call or after
    /// its return are ignored). This loses no linearization (the observer must come after
    /// it) and keeps proven writes from being tried at every later point, which is what
    /// makes unknown outcomes expensive. The default proves nothing.
    fn observed_effects(
        &self,
        history: &[Operation<Self::Input, Self::Output>],
    ) -> Vec<(usize, u64)> {
        let _ = history;
        Vec::new()
    }

    /// A one-line description of an operation, shown in reports.
    fn describe_operation(&self, input: &Self::Input, output: &Self::Output) -> String {
        format!("{input:?} -> {output:?}")
    }

    /// A one-line description of a state, shown in reports.
    fn describe_state(&self, state: &Self::State) -> String {
        format!("{state:?}")
    }
}

/// The verdict of [`check`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckResult {
    /// Every partition has a linearization.
    Ok,
    /// A partition has none; the report says which and how far the search got.
    Illegal(Box<Report>),
    /// The check stopped before reaching a verdict.
    Unknown(Incomplete),
}

impl CheckResult {
    /// True for [`CheckResult::Ok`].
    pub fn is_ok(&self) -> bool {
        matches!(self, CheckResult::Ok)
    }

    /// True for [`CheckResult::Illegal`].
    pub fn is_illegal(&self) -> bool {
        matches!(self, CheckResult::Illegal(_))
    }
}

impl fmt::Display for CheckResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CheckResult::Ok => f.write_str("linearizable"),
            CheckResult::Illegal(report) => write!(f, "{report}"),
            CheckResult::Unknown(incomplete) => write!(f, "unknown: {incomplete}"),
        }
    }
}

/// Why a check stopped without a verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Incomplete {
    /// The deadline passed while checking partition `partition` (an index into the
    /// model's partition list); earlier partitions were linearizable.
    Deadline {
        /// The partition being checked.
        partition: usize,
    },
    /// The memo of partition `partition` reached [`MEMO_BYTES_MAX`].
    MemoFull {
        /// The partition being checked.
        partition: usize,
    },
}

impl fmt::Display for Incomplete {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Incomplete::Deadline { partition } => {
                write!(f, "deadline passed while checking partition {partition}")
            }
            Incomplete::MemoFull { partition } => write!(
                f,
                "memo of partition {partition} reached {MEMO_BYTES_MAX} bytes (MEMO_BYTES_MAX)"
            ),
        }
    }
}

/// A history the checker refuses to search.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HistoryError {
    /// More than [`HISTORY_OPERATIONS_MAX`] operations.
    #[error("history has {operations} operations, more than HISTORY_OPERATIONS_MAX ({max})")]
    HistoryTooLarge {
        /// Operations in the history.
        operations: usize,
        /// The limit.
        max: usize,
    },
    /// One partition has more than [`PARTITION_OPERATIONS_MAX`] operations.
    #[error(
        "partition {partition} ({name}) has {operations} operations, \
         more than PARTITION_OPERATIONS_MAX ({max})"
    )]
    PartitionTooLarge {
        /// Index of the partition.
        partition: usize,
        /// The model's name for it.
        name: String,
        /// Operations in it.
        operations: usize,
        /// The limit.
        max: usize,
    },
    /// An operation returned before it was called.
    #[error("operation {index} returns at {return_} ns, before its call at {call} ns")]
    ReturnBeforeCall {
        /// Index of the operation in the history.
        index: usize,
        /// Its call time, ns.
        call: u64,
        /// Its return time, ns.
        return_: u64,
    },
    /// [`Model::observed_effects`] named an operation the history does not have.
    #[error("observed effect names operation {index}, but the history has {operations}")]
    BadObservedEffect {
        /// The index named.
        index: usize,
        /// Operations in the history.
        operations: usize,
    },
    /// [`Model::partition`] did not put every operation in exactly one partition.
    #[error("bad partition: {reason}")]
    BadPartition {
        /// What was wrong.
        reason: String,
    },
}

/// Checks whether `history` is linearizable with respect to `model`.
///
/// Partitions are searched one after another in the order [`Model::partition`] returns
/// them; the first one without a linearization gives [`CheckResult::Illegal`]. With
/// `deadline`, the check gives [`CheckResult::Unknown`] once that much time has passed
/// (it looks at the clock every [`DEADLINE_CHECK_STEPS`] steps and before each partition).
///
/// # Errors
///
/// [`HistoryError`] when the history is over a limit, an operation returns before its
/// call, or the model's partition is not a partition of the history's indices.
pub fn check<M: Model>(
    model: &M,
    history: &[Operation<M::Input, M::Output>],
    deadline: Option<Duration>,
) -> Result<CheckResult, HistoryError> {
    check_limited(model, history, deadline, MEMO_BYTES_MAX)
}

/// [`check`] with the memo limit as a parameter, so tests can reach it.
fn check_limited<M: Model>(
    model: &M,
    history: &[Operation<M::Input, M::Output>],
    deadline: Option<Duration>,
    memo_bytes_max: usize,
) -> Result<CheckResult, HistoryError> {
    if history.len() > HISTORY_OPERATIONS_MAX {
        return Err(HistoryError::HistoryTooLarge {
            operations: history.len(),
            max: HISTORY_OPERATIONS_MAX,
        });
    }
    for (index, op) in history.iter().enumerate() {
        if op.return_ < op.call {
            return Err(HistoryError::ReturnBeforeCall {
                index,
                call: op.call,
                return_: op.return_,
            });
        }
    }
    let partitions = model.partition(history);
    validate_partitions(model, history, &partitions)?;
    let returns = effective_returns(model, history)?;

    let stop_at = deadline.map(|d| Instant::now() + d);
    for (index, partition) in partitions.iter().enumerate() {
        if stop_at.is_some_and(|t| Instant::now() >= t) {
            return Ok(CheckResult::Unknown(Incomplete::Deadline {
                partition: index,
            }));
        }
        match search::search(model, history, &returns, partition, stop_at, memo_bytes_max) {
            search::Outcome::Linearizable => {}
            search::Outcome::Deadline => {
                return Ok(CheckResult::Unknown(Incomplete::Deadline {
                    partition: index,
                }))
            }
            search::Outcome::MemoFull => {
                return Ok(CheckResult::Unknown(Incomplete::MemoFull {
                    partition: index,
                }))
            }
            search::Outcome::Illegal(failure) => {
                let report = Report::build(model, history, &returns, index, partition, failure);
                return Ok(CheckResult::Illegal(Box::new(report)));
            }
        }
    }
    Ok(CheckResult::Ok)
}

/// Each operation's return time for the search: its recorded one, or earlier where
/// [`Model::observed_effects`] proves its effect by then.
fn effective_returns<M: Model>(
    model: &M,
    history: &[Operation<M::Input, M::Output>],
) -> Result<Vec<u64>, HistoryError> {
    let mut returns: Vec<u64> = history.iter().map(|op| op.return_).collect();
    for (index, by) in model.observed_effects(history) {
        let Some(op) = history.get(index) else {
            return Err(HistoryError::BadObservedEffect {
                index,
                operations: history.len(),
            });
        };
        if op.call <= by && by < returns[index] {
            returns[index] = by;
        }
    }
    Ok(returns)
}

/// Every index in range, in exactly one partition, and no partition over the limit.
fn validate_partitions<M: Model>(
    model: &M,
    history: &[Operation<M::Input, M::Output>],
    partitions: &[Vec<usize>],
) -> Result<(), HistoryError> {
    let mut seen = vec![false; history.len()];
    for (index, partition) in partitions.iter().enumerate() {
        if partition.len() > PARTITION_OPERATIONS_MAX {
            return Err(HistoryError::PartitionTooLarge {
                partition: index,
                name: model.describe_partition(history, partition),
                operations: partition.len(),
                max: PARTITION_OPERATIONS_MAX,
            });
        }
        for &op in partition {
            let Some(slot) = seen.get_mut(op) else {
                return Err(HistoryError::BadPartition {
                    reason: format!(
                        "partition {index} names operation {op}, but the history has {}",
                        history.len()
                    ),
                });
            };
            if *slot {
                return Err(HistoryError::BadPartition {
                    reason: format!("operation {op} appears twice (again in partition {index})"),
                });
            }
            *slot = true;
        }
    }
    if let Some(missing) = seen.iter().position(|&s| !s) {
        return Err(HistoryError::BadPartition {
            reason: format!("operation {missing} is in no partition"),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests;
