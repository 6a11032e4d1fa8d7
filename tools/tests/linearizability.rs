//! The linearizability checker with the etcd KV model: hand-written histories (after
//! Porcupine's KV and etcd cases), histories recorded from a simulated sequential store
//! with random overlapping windows (always linearizable) and mutations of them (never),
//! and the checking speed of a 10,000-operation history.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::time::{Duration, Instant};

use proptest::prelude::*;
use tools::linearizability::{
    check, CheckResult, EtcdKvModel, KvInput, KvOp, KvOutput, ObservedValue, Operation,
    RETURN_UNKNOWN,
};
use tools::SplitMix64;

type KvOperation = Operation<KvInput, KvOutput>;

fn kv_op(
    client_id: u64,
    key: &str,
    op: KvOp,
    call: u64,
    output: KvOutput,
    ret: u64,
) -> KvOperation {
    Operation {
        client_id,
        input: KvInput {
            key: key.as_bytes().to_vec(),
            op,
        },
        call,
        output,
        return_: ret,
    }
}

fn put(client: u64, key: &str, value: &str, call: u64, ret: u64) -> KvOperation {
    put_rev(client, key, value, None, call, ret)
}

fn put_rev(
    client: u64,
    key: &str,
    value: &str,
    rev: Option<i64>,
    call: u64,
    ret: u64,
) -> KvOperation {
    let op = KvOp::Put {
        value: value.as_bytes().to_vec(),
    };
    kv_op(client, key, op, call, KvOutput::Put { revision: rev }, ret)
}

fn put_unknown(client: u64, key: &str, value: &str, call: u64) -> KvOperation {
    let op = KvOp::Put {
        value: value.as_bytes().to_vec(),
    };
    kv_op(client, key, op, call, KvOutput::Unknown, RETURN_UNKNOWN)
}

fn get(client: u64, key: &str, value: Option<&str>, call: u64, ret: u64) -> KvOperation {
    get_rev(client, key, value, None, None, call, ret)
}

fn get_rev(
    client: u64,
    key: &str,
    value: Option<&str>,
    mod_revision: Option<i64>,
    revision: Option<i64>,
    call: u64,
    ret: u64,
) -> KvOperation {
    let kv = value.map(|v| ObservedValue {
        value: v.as_bytes().to_vec(),
        mod_revision,
    });
    kv_op(
        client,
        key,
        KvOp::Get,
        call,
        KvOutput::Get { kv, revision },
        ret,
    )
}

fn delete(client: u64, key: &str, deleted: i64, call: u64, ret: u64) -> KvOperation {
    let output = KvOutput::Delete {
        deleted,
        revision: None,
    };
    kv_op(client, key, KvOp::Delete, call, output, ret)
}

fn cas(
    client: u64,
    key: &str,
    expected: Option<&str>,
    value: &str,
    succeeded: Option<bool>,
    call: u64,
    ret: u64,
) -> KvOperation {
    let op = KvOp::CompareAndSet {
        expected: expected.map(|e| e.as_bytes().to_vec()),
        value: value.as_bytes().to_vec(),
    };
    let (output, ret) = match succeeded {
        Some(succeeded) => (
            KvOutput::CompareAndSet {
                succeeded,
                revision: None,
            },
            ret,
        ),
        None => (KvOutput::Unknown, RETURN_UNKNOWN),
    };
    kv_op(client, key, op, call, output, ret)
}

fn verdict(history: &[KvOperation]) -> CheckResult {
    check(&EtcdKvModel, history, Some(Duration::from_secs(60))).unwrap()
}

fn assert_ok(history: &[KvOperation]) {
    let result = verdict(history);
    assert!(result.is_ok(), "expected linearizable, got:\n{result}");
}

fn assert_illegal(history: &[KvOperation]) -> String {
    match verdict(history) {
        CheckResult::Illegal(report) => report.to_string(),
        other => panic!("expected Illegal, got {other}"),
    }
}

#[test]
fn stale_read_after_a_newer_write_returned_is_illegal() {
    let history = [
        put(1, "x", "a", 0, 10),
        put(2, "x", "b", 20, 30),
        get(3, "x", Some("a"), 40, 50),
    ];
    let report = assert_illegal(&history);
    let expected = r#"not linearizable: partition 0 (key "x"), 3 operations
longest linearizable prefix: 2 of 3 operations, in order:
  #0 client 1 [0..10 ns] put("x", "a") -> ok
  #1 client 2 [20..30 ns] put("x", "b") -> ok
state after it: "b" mod_rev >= 1, store revision >= 0
none of these can come next (called before the earliest pending return, 50 ns):
  #2 client 3 [40..50 ns] get("x") -> "a"   (the model rejects it here)
"#;
    assert_eq!(report, expected);
}

#[test]
fn lost_acknowledged_write_is_illegal() {
    let history = [put(1, "x", "a", 0, 10), get(2, "x", None, 20, 30)];
    assert_illegal(&history);
    // Concurrent with the write, the read may come first.
    assert_ok(&[put(1, "x", "a", 0, 10), get(2, "x", None, 5, 30)]);
}

#[test]
fn read_of_a_value_never_written_is_illegal() {
    let history = [put(1, "x", "a", 0, 10), get(2, "x", Some("z"), 0, 30)];
    assert_illegal(&history);
}

#[test]
fn concurrent_overlapping_writes_linearize_in_either_order_but_only_one() {
    let writes = [put(1, "x", "a", 0, 100), put(2, "x", "b", 10, 90)];
    for last in ["a", "b"] {
        let mut history = writes.to_vec();
        history.push(get(3, "x", Some(last), 110, 120));
        history.push(get(4, "x", Some(last), 130, 140));
        assert_ok(&history);
    }
    // Reads during the writes may see both in turn, but not go back.
    let mut history = writes.to_vec();
    history.push(get(3, "x", Some("a"), 20, 30));
    history.push(get(3, "x", Some("b"), 40, 50));
    assert_ok(&history);
    history.push(get(3, "x", Some("a"), 60, 70));
    assert_illegal(&history);
    // After both returned, the value cannot flip without another write.
    let mut history = writes.to_vec();
    history.push(get(3, "x", Some("a"), 110, 120));
    history.push(get(4, "x", Some("b"), 130, 140));
    assert_illegal(&history);
}

#[test]
fn unknown_outcome_write_that_happened() {
    let history = [
        put(1, "x", "a", 0, 10),
        put_unknown(2, "x", "b", 20),
        get(3, "x", Some("b"), 30, 40),
    ];
    assert_ok(&history);
    // It happened late: long after its call, even after the next read.
    let late = [
        put(1, "x", "a", 0, 10),
        put_unknown(2, "x", "b", 20),
        get(3, "x", Some("a"), 30, 40),
        get(3, "x", Some("b"), 1_000, 1_010),
    ];
    assert_ok(&late);
    // Once seen, it cannot be undone.
    let mut undone = history.to_vec();
    undone.push(get(3, "x", Some("a"), 50, 60));
    assert_illegal(&undone);
}

#[test]
fn unknown_outcome_write_that_did_not_happen() {
    let history = [
        put(1, "x", "a", 0, 10),
        put_unknown(2, "x", "b", 20),
        get(3, "x", Some("a"), 30, 40),
        get(3, "x", Some("a"), 50, 60),
    ];
    assert_ok(&history);
    // But it cannot take effect before it was called.
    let early = [get(3, "x", Some("b"), 0, 10), put_unknown(2, "x", "b", 20)];
    assert_illegal(&early);
}

#[test]
fn delete_reports_one_key_iff_it_existed() {
    assert_ok(&[
        put(1, "x", "a", 0, 10),
        delete(2, "x", 1, 20, 30),
        get(3, "x", None, 40, 50),
        delete(2, "x", 0, 60, 70),
    ]);
    assert_illegal(&[put(1, "x", "a", 0, 10), delete(2, "x", 0, 20, 30)]);
    assert_illegal(&[delete(2, "x", 1, 0, 10)]);
    assert_illegal(&[
        put(1, "x", "a", 0, 10),
        delete(2, "x", 1, 20, 30),
        get(3, "x", Some("a"), 40, 50),
    ]);
}

#[test]
fn compare_and_set_succeeds_iff_the_compare_holds() {
    assert_ok(&[
        put(1, "x", "a", 0, 10),
        cas(2, "x", Some("a"), "b", Some(true), 20, 30),
        get(3, "x", Some("b"), 40, 50),
        cas(2, "x", Some("a"), "c", Some(false), 60, 70),
        get(3, "x", Some("b"), 80, 90),
    ]);
    // A value compare on a missing key fails; "absent" on a missing key holds.
    assert_ok(&[
        cas(1, "x", Some("a"), "b", Some(false), 0, 10),
        cas(1, "x", None, "c", Some(true), 20, 30),
        cas(1, "x", None, "d", Some(false), 40, 50),
        get(2, "x", Some("c"), 60, 70),
    ]);
    assert_illegal(&[cas(1, "x", Some("a"), "b", Some(true), 0, 10)]);
    assert_illegal(&[
        put(1, "x", "a", 0, 10),
        cas(2, "x", Some("a"), "b", Some(false), 20, 30),
    ]);
}

#[test]
fn two_concurrent_compare_and_sets_from_the_same_value_cannot_both_win() {
    let race = |second: bool| {
        vec![
            put(1, "x", "a", 0, 10),
            cas(2, "x", Some("a"), "b", Some(true), 20, 100),
            cas(3, "x", Some("a"), "c", Some(second), 30, 90),
        ]
    };
    assert_ok(&race(false));
    assert_illegal(&race(true));
}

#[test]
fn unknown_outcome_compare_and_set_may_or_may_not_have_happened() {
    let base = [
        put(1, "x", "a", 0, 10),
        cas(2, "x", Some("a"), "b", None, 20, 0),
    ];
    for seen in ["a", "b"] {
        let mut history = base.to_vec();
        history.push(get(3, "x", Some(seen), 30, 40));
        assert_ok(&history);
    }
    // Its compare no longer held once "c" was written, so it cannot yield "b" after.
    let mut history = base.to_vec();
    history.push(put(3, "x", "c", 30, 40));
    history.push(get(3, "x", Some("b"), 50, 60));
    assert_illegal(&history);
}

#[test]
fn write_revisions_order_concurrent_writes() {
    // Concurrent writes: revision order says "b" (4) came before "a" (5).
    let writes = [
        put_rev(1, "x", "a", Some(5), 0, 100),
        put_rev(2, "x", "b", Some(4), 10, 90),
    ];
    let mut history = writes.to_vec();
    history.push(get_rev(3, "x", Some("a"), Some(5), Some(5), 110, 120));
    assert_ok(&history);
    let mut history = writes.to_vec();
    history.push(get(3, "x", Some("b"), 110, 120));
    assert_illegal(&history);
    // Sequential writes must have increasing revisions.
    assert_illegal(&[
        put_rev(1, "x", "a", Some(5), 0, 10),
        put_rev(1, "x", "b", Some(5), 20, 30),
    ]);
}

#[test]
fn get_mod_revision_is_the_revision_of_the_write_it_sees() {
    assert_ok(&[
        put_rev(1, "x", "a", Some(5), 0, 10),
        get_rev(2, "x", Some("a"), Some(5), Some(9), 20, 30),
    ]);
    assert_illegal(&[
        put_rev(1, "x", "a", Some(5), 0, 10),
        get_rev(2, "x", Some("a"), Some(6), Some(9), 20, 30),
    ]);
    // A mod_revision above the read's own header revision is impossible.
    assert_illegal(&[
        put_rev(1, "x", "a", None, 0, 10),
        get_rev(2, "x", Some("a"), Some(9), Some(8), 20, 30),
    ]);
}

#[test]
fn a_write_after_a_read_gets_a_larger_revision_than_the_read_saw() {
    assert_illegal(&[
        put_rev(1, "x", "a", Some(5), 0, 10),
        get_rev(2, "x", Some("a"), Some(5), Some(10), 20, 30),
        put_rev(1, "x", "b", Some(8), 40, 50),
    ]);
    assert_ok(&[
        put_rev(1, "x", "a", Some(5), 0, 10),
        get_rev(2, "x", Some("a"), Some(5), Some(10), 20, 30),
        put_rev(1, "x", "b", Some(11), 40, 50),
    ]);
}

#[test]
fn revision_of_an_unknown_outcome_write_is_pinned_by_the_first_read_that_sees_it() {
    let base = [
        put_rev(1, "x", "a", Some(5), 0, 10),
        put_unknown(2, "x", "b", 20),
    ];
    let with = |reads: &[KvOperation]| {
        let mut history = base.to_vec();
        history.extend_from_slice(reads);
        history
    };
    assert_ok(&with(&[get_rev(
        3,
        "x",
        Some("b"),
        Some(9),
        Some(9),
        30,
        40,
    )]));
    // It came after revision 5, so it cannot have revision 5 or less.
    assert_illegal(&with(&[get_rev(
        3,
        "x",
        Some("b"),
        Some(5),
        Some(9),
        30,
        40,
    )]));
    // Two reads of it must agree.
    assert_illegal(&with(&[
        get_rev(3, "x", Some("b"), Some(9), Some(9), 30, 40),
        get_rev(3, "x", Some("b"), Some(10), Some(10), 50, 60),
    ]));
    // A read before it happened raises the bound it must exceed.
    assert_illegal(&with(&[
        get_rev(3, "x", Some("a"), Some(5), Some(12), 30, 40),
        get_rev(3, "x", Some("b"), Some(11), Some(13), 50, 60),
    ]));
}

#[test]
fn a_write_that_never_returned_but_whose_revision_is_known_precedes_higher_revisions() {
    // A fault test learnt afterwards (from a watch) that the lost put of "b" got revision 7.
    let resolved = |call| {
        let op = KvOp::Put {
            value: b"b".to_vec(),
        };
        let output = KvOutput::Put { revision: Some(7) };
        kv_op(2, "x", op, call, output, RETURN_UNKNOWN)
    };
    assert_ok(&[
        put_rev(1, "x", "a", Some(5), 0, 10),
        resolved(20),
        get_rev(3, "x", Some("a"), Some(5), Some(6), 30, 40),
        get_rev(3, "x", Some("b"), Some(7), Some(8), 50, 60),
    ]);
    // A read served at revision 8 comes after revision 7, so it cannot see "a".
    let history = [
        put_rev(1, "x", "a", Some(5), 0, 10),
        resolved(20),
        get_rev(3, "x", Some("a"), Some(5), Some(8), 30, 40),
    ];
    let report = assert_illegal(&history);
    assert!(
        report.contains("#1 client 2 [20..never (outcome unknown), took effect by 40 ns]"),
        "{report}"
    );
}

#[test]
fn an_unknown_write_is_proven_by_the_first_read_of_its_unique_value() {
    use tools::linearizability::Model;
    let history = [
        put(1, "x", "a", 0, 10),
        put_unknown(2, "x", "b", 20),
        get(3, "x", Some("b"), 30, 60),
        get(4, "x", Some("b"), 35, 50),
        put_unknown(5, "x", "c", 25),
        put_unknown(6, "x", "a", 70),
        get(3, "x", Some("a"), 80, 90),
        get(7, "y", Some("c"), 30, 40),
    ];
    // "b" is first seen by the read that returned at 50; "c" is never seen on key x (the
    // read of key y does not count); "a" has two writers, so its read proves neither.
    assert_eq!(EtcdKvModel.observed_effects(&history), vec![(1, 50)]);
    // Key x is linearizable; key y read a value never written there.
    let report = assert_illegal(&history);
    assert!(
        report.starts_with("not linearizable: partition 1 (key \"y\")"),
        "{report}"
    );
}

#[test]
fn a_response_of_another_kind_than_the_request_is_illegal() {
    let history = [kv_op(
        1,
        "x",
        KvOp::Get,
        0,
        KvOutput::Put { revision: None },
        10,
    )];
    assert_illegal(&history);
}

#[test]
fn keys_are_checked_apart_and_the_report_names_the_key() {
    let history = [
        put(1, "k1", "a", 0, 10),
        put(2, "k2", "b", 0, 10),
        get(3, "k1", Some("a"), 20, 30),
        get(4, "k2", None, 20, 30),
    ];
    let report = assert_illegal(&history);
    assert!(
        report.starts_with("not linearizable: partition 1 (key \"k2\"), 2 operations"),
        "{report}"
    );
    assert!(
        report.contains("#1 client 2 [0..10 ns] put(\"k2\", \"b\") -> ok"),
        "{report}"
    );
    assert!(
        report.contains("#3 client 4 [20..30 ns] get(\"k2\") -> absent"),
        "{report}"
    );
}

// ---- Histories recorded from a simulated store ----------------------------------------

/// Shape of a simulated run.
#[derive(Debug, Clone)]
struct Sim {
    seed: u64,
    clients: usize,
    keys: usize,
    ops: usize,
    /// Percent of operations whose response is lost; half of those take effect.
    unknown_percent: u64,
    /// At most this many lost responses in the run: each unresolved one stays pending to
    /// the end, and an illegal history costs the search about 2^(pending) times more.
    lost_max: usize,
    /// Every written value unique (needed by the mutations), or from a set of 3.
    distinct_values: bool,
    /// Responses carry revisions.
    revisions: bool,
    /// Largest gap, ns, between call, linearization point and return.
    delay_ns_max: u64,
    /// Resolve lost responses afterwards as a fault test can from the server's history
    /// (a watch from revision 1): a write that took effect gets its real response but
    /// still no return time; one that did not is dropped.
    resolve_lost: bool,
}

/// A recorded history and, for each operation, the index of the operation whose write a
/// `Get` saw (`None` for other operations, absent keys and lost responses).
struct Recorded {
    history: Vec<KvOperation>,
    writer: Vec<Option<usize>>,
}

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Event {
    Call(usize),
    Apply(usize),
    Return(usize),
}

/// A sequential store with etcd revisions behind clients that overlap in time: each
/// operation takes effect at one instant between its call and its return, which is what
/// a linearizable store does, so the recorded history is linearizable by construction.
fn simulate(sim: &Sim) -> Recorded {
    let mut rng = SplitMix64::new(sim.seed);
    let mut events = BinaryHeap::new();
    let mut seq = 0u64;
    let mut schedule = |events: &mut BinaryHeap<_>, time: u64, event: Event| {
        seq += 1;
        events.push(Reverse((time, seq, event)));
    };
    let mut client_ids: Vec<u64> = (0..sim.clients as u64).collect();
    let mut next_client_id = sim.clients as u64;
    for client in 0..sim.clients {
        let start = rng.below(sim.delay_ns_max + 1);
        schedule(&mut events, start, Event::Call(client));
    }
    let mut store: BTreeMap<String, (String, i64, usize)> = BTreeMap::new();
    let mut revision = 1i64;
    let mut values = 0u64;
    let mut lost_count = 0usize;
    let mut recorded = Recorded {
        history: Vec::new(),
        writer: Vec::new(),
    };
    // Per operation: its client, lost response, takes effect despite that.
    let mut fate: Vec<(usize, bool, bool)> = Vec::new();

    while let Some(Reverse((time, _, event))) = events.pop() {
        match event {
            Event::Call(client) => {
                if recorded.history.len() == sim.ops {
                    continue;
                }
                let key = format!("k{}", rng.below(sim.keys as u64));
                let mut value = || next_value(&mut values, sim.distinct_values);
                let op = match rng.below(10) {
                    0..=3 => KvOp::Get,
                    4..=6 => KvOp::Put { value: value() },
                    7 => KvOp::Delete,
                    _ => {
                        let expected = match rng.below(4) {
                            0 | 1 => store.get(&key).map(|(v, _, _)| v.clone().into_bytes()),
                            2 => None,
                            _ => Some(format!("v{}", rng.below(values + 1)).into_bytes()),
                        };
                        KvOp::CompareAndSet {
                            expected,
                            value: next_value(&mut values, sim.distinct_values),
                        }
                    }
                };
                let lost = rng.below(100) < sim.unknown_percent && lost_count < sim.lost_max;
                lost_count += usize::from(lost);
                let happens = !lost || rng.below(2) == 0;
                let index = recorded.history.len();
                recorded.history.push(Operation {
                    client_id: client_ids[client],
                    input: KvInput {
                        key: key.into_bytes(),
                        op,
                    },
                    call: time,
                    output: KvOutput::Unknown,
                    return_: RETURN_UNKNOWN,
                });
                recorded.writer.push(None);
                fate.push((client, lost, happens));
                let at = time + rng.below(sim.delay_ns_max + 1);
                schedule(&mut events, at, Event::Apply(index));
            }
            Event::Apply(index) => {
                let (_, lost, happens) = fate[index];
                if happens {
                    let (output, writer) =
                        apply(&mut store, &mut revision, &recorded.history[index], index);
                    let output = if sim.revisions {
                        output
                    } else {
                        strip_revisions(output)
                    };
                    if !lost {
                        recorded.history[index].output = output;
                        recorded.writer[index] = writer;
                    } else if sim.resolve_lost && is_known_write_output(&output) {
                        recorded.history[index].output = output;
                    }
                }
                let at = time + rng.below(sim.delay_ns_max + 1);
                schedule(&mut events, at, Event::Return(index));
            }
            Event::Return(index) => {
                let (client, lost, _) = fate[index];
                if lost {
                    // The client gives up on it and goes on as a new process (Jepsen).
                    client_ids[client] = next_client_id;
                    next_client_id += 1;
                } else {
                    recorded.history[index].return_ = time;
                }
                let at = time + rng.below(sim.delay_ns_max / 2 + 1);
                schedule(&mut events, at, Event::Call(client));
            }
        }
    }
    if sim.resolve_lost {
        resolve(&mut recorded);
    }
    recorded
}

/// Drops the operations whose response was lost and that did not write.
fn resolve(recorded: &mut Recorded) {
    let keep: Vec<bool> = recorded
        .history
        .iter()
        .map(|op| op.return_ != RETURN_UNKNOWN || is_known_write_output(&op.output))
        .collect();
    let mut new_index = vec![usize::MAX; keep.len()];
    let mut next = 0;
    for (i, &k) in keep.iter().enumerate() {
        if k {
            new_index[i] = next;
            next += 1;
        }
    }
    let history = std::mem::take(&mut recorded.history);
    let writer = std::mem::take(&mut recorded.writer);
    for ((op, w), k) in history.into_iter().zip(writer).zip(&keep) {
        if *k {
            recorded.history.push(op);
            recorded.writer.push(w.map(|w| new_index[w]));
        }
    }
}

/// The next value to write: unique, or one of 3.
fn next_value(values: &mut u64, distinct: bool) -> Vec<u8> {
    *values += 1;
    if distinct {
        format!("v{values}").into_bytes()
    } else {
        format!("v{}", *values % 3).into_bytes()
    }
}

/// Applies one operation to the store; returns its response and, for a `Get` that found
/// the key, the operation that wrote the value.
fn apply(
    store: &mut BTreeMap<String, (String, i64, usize)>,
    revision: &mut i64,
    op: &KvOperation,
    index: usize,
) -> (KvOutput, Option<usize>) {
    let key = String::from_utf8(op.input.key.clone()).unwrap();
    let text = |v: &[u8]| String::from_utf8(v.to_vec()).unwrap();
    match &op.input.op {
        KvOp::Get => {
            let found = store.get(&key);
            let kv = found.map(|(v, m, _)| ObservedValue {
                value: v.clone().into_bytes(),
                mod_revision: Some(*m),
            });
            let output = KvOutput::Get {
                kv,
                revision: Some(*revision),
            };
            (output, found.map(|(_, _, w)| *w))
        }
        KvOp::Put { value } => {
            *revision += 1;
            store.insert(key, (text(value), *revision, index));
            (
                KvOutput::Put {
                    revision: Some(*revision),
                },
                None,
            )
        }
        KvOp::Delete => {
            let deleted = if store.remove(&key).is_some() {
                *revision += 1;
                1
            } else {
                0
            };
            (
                KvOutput::Delete {
                    deleted,
                    revision: Some(*revision),
                },
                None,
            )
        }
        KvOp::CompareAndSet { expected, value } => {
            let current = store.get(&key).map(|(v, _, _)| v.as_bytes());
            let succeeded = current == expected.as_deref();
            if succeeded {
                *revision += 1;
                store.insert(key, (text(value), *revision, index));
            }
            (
                KvOutput::CompareAndSet {
                    succeeded,
                    revision: Some(*revision),
                },
                None,
            )
        }
    }
}

fn strip_revisions(output: KvOutput) -> KvOutput {
    match output {
        KvOutput::Get { kv, .. } => KvOutput::Get {
            kv: kv.map(|seen| ObservedValue {
                mod_revision: None,
                ..seen
            }),
            revision: None,
        },
        KvOutput::Put { .. } => KvOutput::Put { revision: None },
        KvOutput::Delete { deleted, .. } => KvOutput::Delete {
            deleted,
            revision: None,
        },
        KvOutput::CompareAndSet { succeeded, .. } => KvOutput::CompareAndSet {
            succeeded,
            revision: None,
        },
        KvOutput::Unknown => KvOutput::Unknown,
    }
}

/// The value an operation writes, if it is a put or a compare-and-set that succeeded (or
/// whose outcome is unknown).
fn written_value(op: &KvOperation) -> Option<&[u8]> {
    match (&op.input.op, &op.output) {
        (KvOp::Put { value }, _) => Some(value),
        (
            KvOp::CompareAndSet { value, .. },
            KvOutput::CompareAndSet {
                succeeded: true, ..
            },
        )
        | (KvOp::CompareAndSet { value, .. }, KvOutput::Unknown) => Some(value),
        _ => None,
    }
}

/// An operation with a known outcome that changed the key (put, delete of 1 key, or a
/// compare-and-set that succeeded).
fn is_known_write(op: &KvOperation) -> bool {
    is_known_write_output(&op.output)
}

/// A response of a put, a delete of 1 key, or a compare-and-set that succeeded.
fn is_known_write_output(output: &KvOutput) -> bool {
    match output {
        KvOutput::Put { .. } => true,
        KvOutput::Delete { deleted, .. } => *deleted == 1,
        KvOutput::CompareAndSet { succeeded, .. } => *succeeded,
        _ => false,
    }
}

/// Ways to break a `Get` of a history with distinct values so that no linearization
/// exists. Returns (get index, new output) candidates for mutation `kind`:
/// 0 a value never written; 1 a value overwritten by a write that returned before the
/// read was called (stale); 2 a value written only after the read returned (future);
/// 3 the right value with a wrong `mod_revision` (the write's revision was known).
fn mutations(recorded: &Recorded, kind: u64) -> Vec<(usize, KvOutput)> {
    let h = &recorded.history;
    let mut by_key: BTreeMap<&[u8], Vec<&KvOperation>> = BTreeMap::new();
    for op in h {
        by_key.entry(&op.input.key).or_default().push(op);
    }
    let seen = |value: &[u8], mod_revision| KvOutput::Get {
        kv: Some(ObservedValue {
            value: value.to_vec(),
            mod_revision,
        }),
        revision: None,
    };
    let mut out = Vec::new();
    for (r, read) in h.iter().enumerate() {
        let KvOutput::Get { kv, .. } = &read.output else {
            continue;
        };
        let same_key = &by_key[read.input.key.as_slice()];
        match kind {
            0 => out.push((r, seen(b"never-written", None))),
            1 => {
                for w in same_key.iter().filter(|w| w.return_ != RETURN_UNKNOWN) {
                    let Some(value) = written_value(w) else {
                        continue;
                    };
                    let overwritten = same_key.iter().any(|w2| {
                        is_known_write(w2) && w.return_ < w2.call && w2.return_ < read.call
                    });
                    if overwritten {
                        out.push((r, seen(value, None)));
                    }
                }
            }
            2 => {
                for w in same_key.iter().filter(|w| read.return_ < w.call) {
                    if let Some(value) = written_value(w) {
                        out.push((r, seen(value, None)));
                    }
                }
            }
            _ => {
                let (Some(kv), Some(w)) = (kv, recorded.writer[r]) else {
                    continue;
                };
                let revision_known = matches!(
                    h[w].output,
                    KvOutput::Put { revision: Some(_) }
                        | KvOutput::CompareAndSet {
                            revision: Some(_),
                            ..
                        }
                );
                if let (Some(m), true) = (kv.mod_revision, revision_known) {
                    out.push((r, seen(&kv.value, Some(m + 1))));
                }
            }
        }
    }
    out
}

fn sim_strategy(
    distinct: bool,
    unknown_percent_max: u64,
    lost_max: usize,
) -> impl Strategy<Value = Sim> {
    (
        any::<u64>(),
        1usize..6,
        1usize..4,
        1usize..70,
        0u64..unknown_percent_max,
        any::<bool>(),
        any::<bool>(),
        1u64..200,
        any::<bool>(),
    )
        .prop_map(
            move |(
                seed,
                clients,
                keys,
                ops,
                unknown_percent,
                d,
                revisions,
                delay_ns_max,
                resolve_lost,
            )| Sim {
                seed,
                clients,
                keys,
                ops,
                unknown_percent,
                lost_max,
                distinct_values: distinct || d,
                revisions,
                delay_ns_max,
                resolve_lost,
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn recorded_histories_are_linearizable(sim in sim_strategy(false, 30, 20)) {
        let recorded = simulate(&sim);
        let result = verdict(&recorded.history);
        prop_assert!(result.is_ok(), "{sim:?}\n{result}");
    }

    #[test]
    fn histories_with_a_mutated_read_are_illegal(sim in sim_strategy(true, 15, 6), kind in 0u64..4, pick in any::<u64>()) {
        let mut recorded = simulate(&sim);
        let mut candidates = mutations(&recorded, kind);
        if candidates.is_empty() {
            candidates = mutations(&recorded, 0);
        }
        prop_assume!(!candidates.is_empty());
        let (r, output) = candidates.swap_remove((pick % candidates.len() as u64) as usize);
        recorded.history[r].output = output;
        let result = verdict(&recorded.history);
        let CheckResult::Illegal(report) = &result else {
            return Err(TestCaseError::fail(format!("{sim:?}: mutation {kind} of #{r} gave {result}")));
        };
        let key = String::from_utf8(recorded.history[r].input.key.clone()).unwrap();
        prop_assert_eq!(&report.partition_name, &format!("key \"{key}\""));
    }
}

/// 10,000 operations over 100 keys from 10 clients, 2% lost responses: prints how long
/// the check takes (no assertion on time), and that one stale read is found.
#[test]
fn ten_thousand_operations_over_a_hundred_keys() {
    let sim = Sim {
        seed: 7,
        clients: 10,
        keys: 100,
        ops: 10_000,
        unknown_percent: 2,
        lost_max: usize::MAX,
        distinct_values: true,
        revisions: true,
        delay_ns_max: 1_000,
        resolve_lost: false,
    };
    let mut recorded = simulate(&sim);
    assert_eq!(recorded.history.len(), 10_000);
    let started = Instant::now();
    let result = verdict(&recorded.history);
    let elapsed = started.elapsed();
    assert!(result.is_ok(), "{result}");
    eprintln!("10,000 ops, 100 keys, 10 clients: linearizable, checked in {elapsed:?}");

    let (r, output) = mutations(&recorded, 1)
        .pop()
        .expect("some read can be made stale");
    recorded.history[r].output = output;
    let started = Instant::now();
    let result = verdict(&recorded.history);
    let elapsed = started.elapsed();
    assert!(result.is_illegal(), "{result}");
    eprintln!("same history with one stale read: illegal, found in {elapsed:?}");
}

/// One key hammered by 10 clients with wide overlaps and 10% lost responses, resolved
/// afterwards as a fault test can (writes that took effect carry their revision, the
/// others are dropped): the hard case for the search. Prints the time; asserts only the
/// verdict.
#[test]
fn two_thousand_operations_on_one_key() {
    let sim = Sim {
        seed: 11,
        clients: 10,
        keys: 1,
        ops: 2_000,
        unknown_percent: 10,
        lost_max: usize::MAX,
        distinct_values: true,
        revisions: true,
        delay_ns_max: 1_000,
        resolve_lost: true,
    };
    let recorded = simulate(&sim);
    let started = Instant::now();
    let result = verdict(&recorded.history);
    let elapsed = started.elapsed();
    assert!(result.is_ok(), "{result}");
    eprintln!("2,000 ops on 1 key, 10 clients, 10% lost and resolved: linearizable, checked in {elapsed:?}");
}
