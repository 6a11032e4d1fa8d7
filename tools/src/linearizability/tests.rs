//! The checker on a single register (Porcupine's `registerModel` cases) and its limits.

use std::time::Duration;

use super::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RegIn {
    Put(i64),
    Get,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RegOut {
    Ok,
    Value(i64),
}

/// One integer register starting at 0.
struct Register;

impl Model for Register {
    type State = i64;
    type Input = RegIn;
    type Output = RegOut;

    fn init(&self) -> i64 {
        0
    }

    fn step(&self, state: &i64, input: &RegIn, output: &RegOut) -> Option<i64> {
        match (input, output) {
            (RegIn::Put(v), RegOut::Ok) => Some(*v),
            (RegIn::Get, RegOut::Value(v)) if v == state => Some(*state),
            _ => None,
        }
    }
}

fn op(
    client_id: u64,
    input: RegIn,
    call: u64,
    output: RegOut,
    return_: u64,
) -> Operation<RegIn, RegOut> {
    Operation {
        client_id,
        input,
        call,
        output,
        return_,
    }
}

fn put(client: u64, v: i64, call: u64, ret: u64) -> Operation<RegIn, RegOut> {
    op(client, RegIn::Put(v), call, RegOut::Ok, ret)
}

fn get(client: u64, v: i64, call: u64, ret: u64) -> Operation<RegIn, RegOut> {
    op(client, RegIn::Get, call, RegOut::Value(v), ret)
}

fn verdict(history: &[Operation<RegIn, RegOut>]) -> CheckResult {
    check(&Register, history, None).unwrap()
}

#[test]
fn empty_history_is_linearizable() {
    assert_eq!(verdict(&[]), CheckResult::Ok);
}

// Porcupine TestRegisterModel, from MIT 6.824 2017 quiz 2, section VII.
#[test]
fn read_of_the_new_value_then_the_old_one_by_a_concurrent_reader_is_linearizable() {
    let history = [put(0, 100, 0, 100), get(1, 100, 25, 75), get(2, 0, 30, 60)];
    assert_eq!(verdict(&history), CheckResult::Ok);
}

#[test]
fn read_of_the_old_value_after_a_read_of_the_new_one_returned_is_illegal() {
    let history = [put(0, 200, 0, 100), get(1, 200, 10, 30), get(2, 0, 40, 90)];
    let CheckResult::Illegal(report) = verdict(&history) else {
        panic!("expected Illegal");
    };
    assert_eq!(report.partition, 0);
    assert_eq!(report.partition_name, "all operations");
    assert_eq!(report.partition_operations, 3);
    assert_eq!(report.longest_prefix, vec![0, 1]);
    assert_eq!(report.next_candidates, vec![2]);
    assert_eq!(report.next_accepted, vec![false]);
    let text = report.to_string();
    assert!(
        text.contains("longest linearizable prefix: 2 of 3 operations"),
        "{text}"
    );
    assert!(
        text.contains("#2 client 2 [40..90 ns] Get -> Value(0)"),
        "{text}"
    );
    assert!(text.contains("state after it: 200"), "{text}");
}

// Porcupine TestZeroDuration.
#[test]
fn zero_duration_operations_are_points_in_time() {
    let ok = [
        put(0, 100, 0, 100),
        get(1, 100, 25, 75),
        get(2, 0, 30, 30),
        get(3, 0, 30, 30),
    ];
    assert_eq!(verdict(&ok), CheckResult::Ok);
    let illegal = [
        put(0, 200, 0, 100),
        get(1, 200, 10, 10),
        get(2, 200, 10, 10),
        get(3, 0, 40, 90),
    ];
    assert!(verdict(&illegal).is_illegal());
}

#[test]
fn operations_that_touch_are_concurrent_and_strictly_ordered_ones_are_not() {
    // The get is called at the instant the put returns: either order is allowed.
    assert_eq!(
        verdict(&[put(0, 1, 0, 10), get(1, 0, 10, 20)]),
        CheckResult::Ok
    );
    // One ns later the put is strictly first.
    assert!(verdict(&[put(0, 1, 0, 10), get(1, 0, 11, 20)]).is_illegal());
}

#[test]
fn a_write_that_never_returned_may_take_effect_late_or_never() {
    let unknown = |v, call| put(9, v, call, RETURN_UNKNOWN);
    // It took effect between the two reads.
    let late = [unknown(5, 0), get(1, 0, 10, 20), get(1, 5, 30, 40)];
    assert_eq!(verdict(&late), CheckResult::Ok);
    // It never took effect.
    let never = [unknown(5, 0), get(1, 0, 10, 20), get(1, 0, 30, 40)];
    assert_eq!(verdict(&never), CheckResult::Ok);
    // But it cannot be undone once seen.
    let undone = [unknown(5, 0), get(1, 5, 10, 20), get(1, 0, 30, 40)];
    assert!(verdict(&undone).is_illegal());
    // And it cannot be seen before it was called.
    let early = [get(1, 5, 0, 10), unknown(5, 20)];
    assert!(verdict(&early).is_illegal());
}

#[test]
fn an_operation_the_model_never_accepts_is_illegal_even_without_a_return() {
    let history = [op(1, RegIn::Get, 0, RegOut::Ok, RETURN_UNKNOWN)];
    let CheckResult::Illegal(report) = verdict(&history) else {
        panic!("expected Illegal");
    };
    assert!(report.longest_prefix.is_empty());
    assert_eq!(report.next_candidates, vec![0]);
    assert!(
        report.to_string().contains("never (outcome unknown)"),
        "{report}"
    );
}

#[test]
fn memo_makes_many_concurrent_identical_writes_cheap() {
    // 14 concurrent writes of the same value, then a read of a value never written:
    // without the memo the search tries 14! orders; with it, 2^14 linearized sets.
    let mut history: Vec<_> = (0..14).map(|c| put(c, 1, 0, 100)).collect();
    history.push(get(99, 2, 200, 300));
    let result = check(&Register, &history, Some(Duration::from_secs(120))).unwrap();
    let CheckResult::Illegal(report) = result else {
        panic!("expected Illegal, got {result}");
    };
    assert_eq!(report.longest_prefix.len(), 14);
    assert_eq!(report.next_candidates, vec![14]);
}

#[test]
fn a_full_memo_gives_unknown() {
    // The memo case above needs 2^14 entries; 100 KB holds far fewer.
    let mut history: Vec<_> = (0..14).map(|c| put(c, 1, 0, 100)).collect();
    history.push(get(99, 2, 200, 300));
    assert_eq!(
        check_limited(&Register, &history, None, 100_000).unwrap(),
        CheckResult::Unknown(Incomplete::MemoFull { partition: 0 })
    );
}

#[test]
fn a_deadline_that_has_passed_gives_unknown() {
    let history = [put(0, 1, 0, 10)];
    assert_eq!(
        check(&Register, &history, Some(Duration::ZERO)).unwrap(),
        CheckResult::Unknown(Incomplete::Deadline { partition: 0 })
    );
}

#[test]
fn a_return_before_its_call_is_refused() {
    let history = [put(0, 1, 0, 10), put(0, 2, 20, 19)];
    assert_eq!(
        check(&Register, &history, None),
        Err(HistoryError::ReturnBeforeCall {
            index: 1,
            call: 20,
            return_: 19
        })
    );
}

#[test]
fn a_partition_over_the_limit_is_refused() {
    let history: Vec<_> = (0..=PARTITION_OPERATIONS_MAX as u64)
        .map(|i| put(0, 1, i, i))
        .collect();
    let err = check(&Register, &history, None).unwrap_err();
    assert_eq!(
        err,
        HistoryError::PartitionTooLarge {
            partition: 0,
            name: String::from("all operations"),
            operations: PARTITION_OPERATIONS_MAX + 1,
            max: PARTITION_OPERATIONS_MAX,
        }
    );
    assert!(
        err.to_string().contains("PARTITION_OPERATIONS_MAX"),
        "{err}"
    );
}

#[test]
fn a_history_over_the_limit_is_refused() {
    let history = vec![put(0, 1, 0, 0); HISTORY_OPERATIONS_MAX + 1];
    assert_eq!(
        check(&Register, &history, None),
        Err(HistoryError::HistoryTooLarge {
            operations: HISTORY_OPERATIONS_MAX + 1,
            max: HISTORY_OPERATIONS_MAX,
        })
    );
}

/// The register, partitioned by a fixed list, to test partition validation.
struct Partitioned(Vec<Vec<usize>>);

impl Model for Partitioned {
    type State = i64;
    type Input = RegIn;
    type Output = RegOut;

    fn init(&self) -> i64 {
        Register.init()
    }

    fn step(&self, state: &i64, input: &RegIn, output: &RegOut) -> Option<i64> {
        Register.step(state, input, output)
    }

    fn partition(&self, _: &[Operation<RegIn, RegOut>]) -> Vec<Vec<usize>> {
        self.0.clone()
    }

    fn describe_partition(&self, _: &[Operation<RegIn, RegOut>], partition: &[usize]) -> String {
        format!("ops {partition:?}")
    }
}

#[test]
fn partitions_are_checked_apart_and_must_cover_each_operation_once() {
    // Apart, each register is linearizable; together they would not be.
    let history = [put(0, 1, 0, 10), get(1, 0, 20, 30)];
    let apart = Partitioned(vec![vec![0], vec![1]]);
    assert_eq!(check(&apart, &history, None), Ok(CheckResult::Ok));
    let together = Partitioned(vec![vec![1], vec![0, 1]]);
    let err = check(&together, &history, None).unwrap_err();
    assert_eq!(
        err.to_string(),
        "bad partition: operation 1 appears twice (again in partition 1)"
    );
    let missing = Partitioned(vec![vec![0]]);
    let err = check(&missing, &history, None).unwrap_err();
    assert_eq!(
        err.to_string(),
        "bad partition: operation 1 is in no partition"
    );
    let out_of_range = Partitioned(vec![vec![0, 1, 2]]);
    let err = check(&out_of_range, &history, None).unwrap_err();
    assert_eq!(
        err.to_string(),
        "bad partition: partition 0 names operation 2, but the history has 2"
    );
}

#[test]
fn the_report_names_the_failing_partition() {
    let history = [
        put(0, 1, 0, 10),
        get(1, 1, 20, 30),
        put(2, 7, 0, 10),
        get(3, 0, 20, 30),
    ];
    let model = Partitioned(vec![vec![0, 1], vec![2, 3]]);
    let CheckResult::Illegal(report) = check(&model, &history, None).unwrap() else {
        panic!("expected Illegal");
    };
    assert_eq!(report.partition, 1);
    assert_eq!(report.partition_name, "ops [2, 3]");
    assert_eq!(report.longest_prefix, vec![2]);
    assert_eq!(report.next_candidates, vec![3]);
    assert!(report
        .to_string()
        .starts_with("not linearizable: partition 1 (ops [2, 3]), 2 operations\n"));
}

/// The register with a fixed list of proven effects.
struct Proven(Vec<(usize, u64)>);

impl Model for Proven {
    type State = i64;
    type Input = RegIn;
    type Output = RegOut;

    fn init(&self) -> i64 {
        Register.init()
    }

    fn step(&self, state: &i64, input: &RegIn, output: &RegOut) -> Option<i64> {
        Register.step(state, input, output)
    }

    fn observed_effects(&self, _: &[Operation<RegIn, RegOut>]) -> Vec<(usize, u64)> {
        self.0.clone()
    }
}

#[test]
fn a_proven_effect_bounds_when_an_unknown_write_took_effect() {
    let history = [put(9, 5, 0, RETURN_UNKNOWN), get(1, 0, 30, 40)];
    assert_eq!(check(&Proven(vec![]), &history, None), Ok(CheckResult::Ok));
    // Proven by 20 ns, before the read was called: the read must see it.
    assert!(check(&Proven(vec![(0, 20)]), &history, None)
        .unwrap()
        .is_illegal());
    // A bound before the call is ignored.
    let late = [put(9, 5, 50, RETURN_UNKNOWN), get(1, 0, 60, 70)];
    assert_eq!(
        check(&Proven(vec![(0, 20)]), &late, None),
        Ok(CheckResult::Ok)
    );
    assert_eq!(
        check(&Proven(vec![(2, 20)]), &history, None),
        Err(HistoryError::BadObservedEffect {
            index: 2,
            operations: 2
        })
    );
}
