//! The report of a partition without a linearization, written for a test failure.

use std::collections::HashSet;
use std::fmt::{self, Write as _};

use super::search::Failure;
use super::{Model, Operation, RETURN_UNKNOWN};

/// Operations of the longest linearizable prefix that a report prints (the last ones);
/// the rest are counted, not printed.
pub const REPORT_PREFIX_OPERATIONS_MAX: usize = 20;

/// Why a partition is not linearizable: how far the search got and what it could not
/// place next.
///
/// Indices are into the checked history. Its `Display` is the readable report:
///
/// ```text
/// not linearizable: partition 0 (key "x"), 3 operations
/// longest linearizable prefix: 2 of 3 operations, in order:
///   #0 client 1 [0..10 ns] put("x", "a") -> ok
///   #1 client 2 [20..30 ns] put("x", "b") -> ok
/// state after it: "b" mod_rev >= 1, store revision >= 0
/// none of these can come next (called before the earliest pending return, 50 ns):
///   #2 client 3 [40..50 ns] get("x") -> "a"   (the model rejects it here)
/// ```
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// Index of the partition in the model's partition list.
    pub partition: usize,
    /// The model's name for it ([`Model::describe_partition`]), e.g. the key.
    pub partition_name: String,
    /// Operations in the partition.
    pub partition_operations: usize,
    /// The longest sequence of operations that could be linearized, in order.
    pub longest_prefix: Vec<usize>,
    /// The operations that could come right after the prefix by real time (called before
    /// the earliest return among the operations not in it), none of which leads to a
    /// linearization of the whole partition.
    pub next_candidates: Vec<usize>,
    /// For each of `next_candidates`, whether the model accepts it after the prefix
    /// (accepted ones lead to dead ends later).
    pub next_accepted: Vec<bool>,
    text: String,
}

impl Report {
    pub(super) fn build<M: Model>(
        model: &M,
        history: &[Operation<M::Input, M::Output>],
        returns: &[u64],
        partition: usize,
        ops: &[usize],
        failure: Failure<M::State>,
    ) -> Report {
        let in_prefix: HashSet<usize> = failure.longest.iter().copied().collect();
        let remaining: Vec<usize> = ops
            .iter()
            .copied()
            .filter(|i| !in_prefix.contains(i))
            .collect();
        let earliest_return = remaining
            .iter()
            .map(|&i| returns[i])
            .min()
            .unwrap_or(RETURN_UNKNOWN);
        let mut next_candidates: Vec<usize> = remaining
            .iter()
            .copied()
            .filter(|&i| history[i].call <= earliest_return)
            .collect();
        next_candidates.sort_by_key(|&i| (history[i].call, i));
        let next_accepted: Vec<bool> = next_candidates
            .iter()
            .map(|&i| {
                let op = &history[i];
                model.step(&failure.state, &op.input, &op.output).is_some()
            })
            .collect();

        let partition_name = model.describe_partition(history, ops);
        let mut text = String::new();
        // Writing to a String cannot fail.
        let _ = writeln!(
            text,
            "not linearizable: partition {partition} ({partition_name}), {} operations",
            ops.len()
        );
        let _ = writeln!(
            text,
            "longest linearizable prefix: {} of {} operations, in order:",
            failure.longest.len(),
            ops.len()
        );
        let skipped = failure
            .longest
            .len()
            .saturating_sub(REPORT_PREFIX_OPERATIONS_MAX);
        if skipped > 0 {
            let _ = writeln!(text, "  ... {skipped} earlier operations");
        }
        for &i in &failure.longest[skipped..] {
            let _ = writeln!(text, "  {}", describe(model, history, returns, i));
        }
        let _ = writeln!(
            text,
            "state after it: {}",
            model.describe_state(&failure.state)
        );
        let _ = writeln!(
            text,
            "none of these can come next (called before the earliest pending return, {}):",
            time(earliest_return)
        );
        for (&i, &accepted) in next_candidates.iter().zip(&next_accepted) {
            let verdict = if accepted {
                "accepted here, but every continuation fails later"
            } else {
                "the model rejects it here"
            };
            let _ = writeln!(
                text,
                "  {}   ({verdict})",
                describe(model, history, returns, i)
            );
        }
        Report {
            partition,
            partition_name,
            partition_operations: ops.len(),
            longest_prefix: failure.longest,
            next_candidates,
            next_accepted,
            text,
        }
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// `#index client c [call..return ns] description`.
/// With `, took effect by T ns` when the model proved an unknown outcome's effect.
fn describe<M: Model>(
    model: &M,
    history: &[Operation<M::Input, M::Output>],
    returns: &[u64],
    i: usize,
) -> String {
    let op = &history[i];
    let proven = if returns[i] == op.return_ {
        String::new()
    } else {
        format!(", took effect by {} ns", returns[i])
    };
    format!(
        "#{i} client {} [{}..{}{proven}] {}",
        op.client_id,
        op.call,
        time(op.return_),
        model.describe_operation(&op.input, &op.output)
    )
}

/// A time in ns, or "never" for [`RETURN_UNKNOWN`].
fn time(ns: u64) -> String {
    if ns == RETURN_UNKNOWN {
        String::from("never (outcome unknown)")
    } else {
        format!("{ns} ns")
    }
}
