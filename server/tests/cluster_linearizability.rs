//! A recorded client history under kill -9, SIGSTOP and partition faults, checked for
//! linearizability (Cairn issue 6, item 5).
//!
//! A 3-member cluster with its peer traffic behind the test proxy serves
//! [`CLIENTS_COUNT`] concurrent clients, each bound to one member's endpoint (spread over
//! all members, so followers forward writes and serve linearizable reads). Each client
//! runs a seeded random mix of `Put` (a value unique to the operation), linearizable
//! `Get`, `Delete` and a compare-and-set `Txn` over [`KEYS_COUNT`] keys, one request at a
//! time, recording when it called and when the response arrived (ns since one origin), the
//! request and the response with its header revision (and `mod_revision` for reads).
//! A write that fails or times out has an unknown outcome ([`RETURN_UNKNOWN`]); a failed
//! read is left out of the history (it had no effect).
//!
//! Meanwhile the main thread runs a fault schedule drawn from the seed, in rounds of the
//! three faults in a shuffled order, until the run time has passed (at least one round):
//! - kill -9 of the leader, down for a while, then restart;
//! - SIGSTOP of a random member for 2–3 election timeouts, then SIGCONT;
//! - the leader isolated from both other members by the proxy, then healed.
//!
//! After a quiet tail the clients stop, every fault is healed, and the store's own history
//! is read with a watch of the key prefix from revision 1 up to the current revision. It
//! resolves the writes whose outcome was unknown, as `tools::linearizability` advises: a
//! put or compare-and-set whose (unique) value appears took effect and gets its real
//! revision (keeping [`RETURN_UNKNOWN`] as its return time); one whose value does not
//! appear never took effect and is dropped; an unknown delete is dropped when its key has
//! no delete event that no acknowledged delete accounts for, given that event's revision
//! when it is the key's only unknown delete, and otherwise left unknown. The same watch
//! gives integrity checks that need no search: one event per revision with no gaps
//! (etcd api_guarantees.md: every write gets the next revision, history is not lost);
//! every acknowledged write appears at the revision its response gave; a failed
//! compare-and-set never took effect; no value is written twice or by nobody; and the
//! final values equal the last event of each key. Then `check` (Wing–Gong/Porcupine with
//! `EtcdKvModel`) must find the history linearizable, and the history must hold at least
//! [`COMPLETED_OPERATIONS_MIN`] completed operations so that the test cannot pass
//! vacuously.
//!
//! Environment:
//! - `SEED=<u64>` replays the random choices (operations, keys, fault order, members and
//!   durations); the seed of every run is printed. Timing still differs between runs, so a
//!   seed narrows a failure down rather than replaying it exactly.
//! - `CAIRN_LIN_SECONDS=<s>` sets the run time (default [`RUN_SECONDS_DEFAULT`], at most
//!   [`RUN_SECONDS_MAX`]); the default keeps the test under a minute on a 2-core machine.
//! - `CAIRN_TEST_TARGET=etcd` runs it against Debian's etcd 3.4, like every test here.

mod common;

use common::cluster::{Cluster, ELECTION_TIMEOUT_MS};
use common::runtime;
use etcd_client::{Client, Compare, CompareOp, EventType, GetOptions, Txn, TxnOp, WatchOptions};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tools::linearizability::{
    check, EtcdKvModel, KvInput, KvOp, KvOutput, Model, ObservedValue, Operation, RETURN_UNKNOWN,
};

/// Members of the cluster.
const MEMBERS_COUNT: usize = 3;
/// Concurrent clients; client `c` is bound to member `c % MEMBERS_COUNT`.
const CLIENTS_COUNT: usize = 9;
/// Keys the clients operate on (`lin/k00` ...).
const KEYS_COUNT: usize = 30;
/// Prefix of every key the test writes.
const KEY_PREFIX: &str = "lin/";
/// Run time without `CAIRN_LIN_SECONDS`, seconds.
const RUN_SECONDS_DEFAULT: u64 = 20;
/// Largest accepted `CAIRN_LIN_SECONDS`, seconds.
const RUN_SECONDS_MAX: u64 = 3_600;
/// The environment variable that sets the run time in seconds.
const RUN_SECONDS_ENV: &str = "CAIRN_LIN_SECONDS";
/// The environment variable that sets the seed.
const SEED_ENV: &str = "SEED";
/// Per-request timeout of the clients; a write that times out has an unknown outcome.
const OP_TIMEOUT_MS: u64 = 2_000;
/// Pause of a client after a failed request, so that a dead member is not hammered.
const ERROR_BACKOFF_MS: u64 = 100;
/// Percent of operations that are linearizable `Get`s.
const GET_PERCENT: u32 = 40;
/// Percent of operations that are `Put`s.
const PUT_PERCENT: u32 = 30;
/// Percent of operations that are compare-and-set `Txn`s; the rest are `Delete`s.
const CAS_PERCENT: u32 = 18;
/// Load before the first fault, ms.
const WARMUP_MS: u64 = 1_500;
/// Pause between two faults (after the cluster agreed on a leader again), ms.
const QUIET_MS_MIN: u64 = 300;
/// Upper bound of the pause between two faults, ms.
const QUIET_MS_MAX: u64 = 1_500;
/// How long a killed leader stays down before its restart, ms (lower bound).
const KILL_DOWN_MS_MIN: u64 = 200;
/// Upper bound of how long a killed leader stays down, ms.
const KILL_DOWN_MS_MAX: u64 = 2 * ELECTION_TIMEOUT_MS;
/// How long a member stays SIGSTOPped, ms (lower bound): long enough to lose leadership
/// or be declared unreachable.
const STOP_MS_MIN: u64 = 2 * ELECTION_TIMEOUT_MS;
/// Upper bound of how long a member stays SIGSTOPped, ms.
const STOP_MS_MAX: u64 = 3 * ELECTION_TIMEOUT_MS;
/// How long the leader stays isolated, ms (lower bound): the others elect a new leader.
const ISOLATE_MS_MIN: u64 = 2 * ELECTION_TIMEOUT_MS;
/// Upper bound of how long the leader stays isolated, ms.
const ISOLATE_MS_MAX: u64 = 4 * ELECTION_TIMEOUT_MS;
/// Load after the last fault healed, before the clients stop, ms.
const TAIL_MS: u64 = 2_000;
/// Faults injected in one run at most, whatever the run time.
const FAULTS_MAX: usize = 300;
const _: () = assert!(FAULTS_MAX >= FAULTS.len());
/// How long the clients may take to stop (each finishes its request in flight).
const CLIENTS_STOP_TIMEOUT_MS: u64 = OP_TIMEOUT_MS + 10_000;
/// Request timeout of the client that reads the final history, ms.
const FINAL_READ_TIMEOUT_MS: u64 = 30_000;
/// How long the watch from revision 1 may take to deliver the whole history, ms.
const WATCH_HISTORY_TIMEOUT_MS: u64 = 60_000;
/// Deadline of the linearizability check, ms (the default run checks in about a second).
const CHECK_DEADLINE_MS: u64 = 120_000;
/// Completed operations (responses received) the history must hold at least.
const COMPLETED_OPERATIONS_MIN: usize = 300;
/// Completed writes (puts, deletes, compare-and-sets) the history must hold at least.
const COMPLETED_WRITES_MIN: usize = 100;
/// Completed reads that saw a value the history must hold at least.
const READS_OF_VALUES_MIN: usize = 50;

const _: () = assert!(GET_PERCENT + PUT_PERCENT + CAS_PERCENT < 100);
const _: () = assert!(QUIET_MS_MIN <= QUIET_MS_MAX);
const _: () = assert!(KILL_DOWN_MS_MIN <= KILL_DOWN_MS_MAX);
const _: () = assert!(STOP_MS_MIN <= STOP_MS_MAX);
const _: () = assert!(ISOLATE_MS_MIN <= ISOLATE_MS_MAX);
const _: () = assert!(CLIENTS_COUNT >= MEMBERS_COUNT);

/// One recorded operation of the history.
type KvOperation = Operation<KvInput, KvOutput>;

/// The faults of the schedule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fault {
    /// kill -9 of the leader, restart after a while.
    KillLeader,
    /// SIGSTOP of a random member, SIGCONT after a while.
    StopMember,
    /// The leader cut off from every other member by the proxy, healed after a while.
    IsolateLeader,
}

const FAULTS: [Fault; 3] = [Fault::KillLeader, Fault::StopMember, Fault::IsolateLeader];

/// What one client recorded.
#[derive(Debug, Default)]
struct ClientLog {
    /// Operations with a response, and writes without one (outcome unknown).
    operations: Vec<KvOperation>,
    /// Reads that failed (left out of the history).
    failed_reads: usize,
}

/// One event of the store's history as a watch from revision 1 delivers it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct HistoryEvent {
    /// The revision of the write.
    revision: i64,
    /// The key written.
    key: Vec<u8>,
    /// The value put, `None` for a delete.
    value: Option<Vec<u8>>,
}

impl std::fmt::Display for HistoryEvent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let key = String::from_utf8_lossy(&self.key);
        match &self.value {
            Some(v) => write!(
                f,
                "rev {} put {key} = {}",
                self.revision,
                String::from_utf8_lossy(v)
            ),
            None => write!(f, "rev {} delete {key}", self.revision),
        }
    }
}

/// The final state read after the run: the store revision and every key's value.
#[derive(Debug)]
struct FinalState {
    /// Header revision of the final range.
    revision: i64,
    /// Every key under [`KEY_PREFIX`] with its value.
    values: BTreeMap<Vec<u8>, Vec<u8>>,
    /// The store's history from revision 1 to `revision`.
    events: Vec<HistoryEvent>,
}

/// How the unknown outcomes were resolved.
#[derive(Debug, Default)]
struct Resolution {
    /// Writes whose outcome was unknown.
    unknown: usize,
    /// ... that the store's history shows took effect (given their revision).
    took_effect: usize,
    /// ... that the store's history shows did not take effect (dropped).
    dropped: usize,
    /// ... left unknown (deletes that cannot be told apart).
    still_unknown: usize,
}

fn key_name(index: usize) -> Vec<u8> {
    format!("{KEY_PREFIX}k{index:02}").into_bytes()
}

fn now_ns(origin: Instant) -> u64 {
    u64::try_from(origin.elapsed().as_nanos()).expect("test runs for less than 584 years")
}

fn seed_from_env() -> u64 {
    match std::env::var(SEED_ENV) {
        Ok(text) => text
            .parse()
            .unwrap_or_else(|e| panic!("{SEED_ENV}={text:?} is not a u64: {e}")),
        Err(_) => rand::random(),
    }
}

fn run_seconds_from_env() -> u64 {
    let seconds = match std::env::var(RUN_SECONDS_ENV) {
        Ok(text) => text
            .parse()
            .unwrap_or_else(|e| panic!("{RUN_SECONDS_ENV}={text:?} is not a number: {e}")),
        Err(_) => RUN_SECONDS_DEFAULT,
    };
    assert!(
        (1..=RUN_SECONDS_MAX).contains(&seconds),
        "{RUN_SECONDS_ENV} must be 1..={RUN_SECONDS_MAX}, got {seconds}"
    );
    seconds
}

fn header_revision(header: Option<&etcd_client::ResponseHeader>) -> Option<i64> {
    header.map(|h| h.revision())
}

/// Sends `op` on `key` and turns the response into the model's output.
async fn execute(
    client: &mut Client,
    key: &[u8],
    op: &KvOp,
) -> Result<KvOutput, etcd_client::Error> {
    Ok(match op {
        KvOp::Get => {
            let response = client.get(key, None).await?;
            KvOutput::Get {
                kv: response.kvs().first().map(|kv| ObservedValue {
                    value: kv.value().to_vec(),
                    mod_revision: Some(kv.mod_revision()),
                }),
                revision: header_revision(response.header()),
            }
        }
        KvOp::Put { value } => {
            let response = client.put(key, value.clone(), None).await?;
            KvOutput::Put {
                revision: header_revision(response.header()),
            }
        }
        KvOp::Delete => {
            let response = client.delete(key, None).await?;
            KvOutput::Delete {
                deleted: response.deleted(),
                revision: header_revision(response.header()),
            }
        }
        KvOp::CompareAndSet { expected, value } => {
            let compare = match expected {
                // etcd's idiom for "the key does not exist".
                None => Compare::create_revision(key, CompareOp::Equal, 0),
                Some(expected) => Compare::value(key, CompareOp::Equal, expected.clone()),
            };
            let txn = Txn::new()
                .when([compare])
                .and_then([TxnOp::put(key, value.clone(), None)]);
            let response = client.txn(txn).await?;
            KvOutput::CompareAndSet {
                succeeded: response.succeeded(),
                revision: header_revision(response.header()),
            }
        }
    })
}

/// A random operation; a compare-and-set expects the value this client last saw.
fn pick_op(rng: &mut StdRng, value: Vec<u8>, last_seen: Option<&Option<Vec<u8>>>) -> KvOp {
    let roll = rng.gen_range(0..100);
    if roll < GET_PERCENT {
        KvOp::Get
    } else if roll < GET_PERCENT + PUT_PERCENT {
        KvOp::Put { value }
    } else if roll < GET_PERCENT + PUT_PERCENT + CAS_PERCENT {
        KvOp::CompareAndSet {
            expected: last_seen.cloned().flatten(),
            value,
        }
    } else {
        KvOp::Delete
    }
}

/// What the key holds after `op` answered `output` (None: not known).
fn value_after(op: &KvOp, output: &KvOutput) -> Option<Option<Vec<u8>>> {
    match (op, output) {
        (KvOp::Get, KvOutput::Get { kv, .. }) => Some(kv.as_ref().map(|kv| kv.value.clone())),
        (KvOp::Put { value }, KvOutput::Put { .. }) => Some(Some(value.clone())),
        (KvOp::Delete, KvOutput::Delete { .. }) => Some(None),
        (
            KvOp::CompareAndSet { value, .. },
            KvOutput::CompareAndSet {
                succeeded: true, ..
            },
        ) => Some(Some(value.clone())),
        _ => None,
    }
}

/// One client: random operations through `client` until `stop`, one at a time.
async fn run_client(
    id: u64,
    mut client: Client,
    mut rng: StdRng,
    stop: Arc<AtomicBool>,
    origin: Instant,
) -> ClientLog {
    let mut log = ClientLog::default();
    // The value this client last saw per key, for compare-and-set.
    let mut last_seen: HashMap<Vec<u8>, Option<Vec<u8>>> = HashMap::new();
    let mut seq = 0u64;
    while !stop.load(Ordering::SeqCst) {
        seq += 1;
        let key = key_name(rng.gen_range(0..KEYS_COUNT));
        let value = format!("c{id}-{seq}").into_bytes();
        let op = pick_op(&mut rng, value, last_seen.get(&key));
        let call = now_ns(origin);
        let result = execute(&mut client, &key, &op).await;
        let return_ = now_ns(origin);
        let (output, return_) = match result {
            Ok(output) => {
                match value_after(&op, &output) {
                    Some(now) => last_seen.insert(key.clone(), now),
                    None => last_seen.remove(&key),
                };
                (output, return_)
            }
            Err(_) => {
                last_seen.remove(&key);
                tokio::time::sleep(Duration::from_millis(ERROR_BACKOFF_MS)).await;
                if op == KvOp::Get {
                    log.failed_reads += 1;
                    continue;
                }
                (KvOutput::Unknown, RETURN_UNKNOWN)
            }
        };
        log.operations.push(Operation {
            client_id: id,
            input: KvInput { key, op },
            call,
            output,
            return_,
        });
    }
    log
}

/// A random duration in `min..=max` ms.
fn random_ms(rng: &mut StdRng, min: u64, max: u64) -> Duration {
    Duration::from_millis(rng.gen_range(min..=max))
}

/// Injects `fault` and undoes it; returns a description. Waits for a leader first, so
/// every fault starts from a cluster that serves.
fn inject(cluster: &mut Cluster, rng: &mut StdRng, fault: Fault) -> String {
    let leader = cluster.wait_leader();
    match fault {
        Fault::KillLeader => {
            let down = random_ms(rng, KILL_DOWN_MS_MIN, KILL_DOWN_MS_MAX);
            cluster.kill9(leader);
            std::thread::sleep(down);
            cluster.restart(leader);
            format!("kill -9 leader m{leader}, restarted after {down:?}")
        }
        Fault::StopMember => {
            let member = rng.gen_range(0..MEMBERS_COUNT);
            let stopped = random_ms(rng, STOP_MS_MIN, STOP_MS_MAX);
            cluster.stop(member);
            std::thread::sleep(stopped);
            cluster.cont(member);
            let role = if member == leader {
                "leader"
            } else {
                "follower"
            };
            format!("SIGSTOP m{member} ({role}) for {stopped:?}")
        }
        Fault::IsolateLeader => {
            let isolated = random_ms(rng, ISOLATE_MS_MIN, ISOLATE_MS_MAX);
            cluster.proxy().isolate(leader);
            std::thread::sleep(isolated);
            cluster.proxy().heal();
            format!("isolate leader m{leader} for {isolated:?}")
        }
    }
}

/// Runs rounds of every fault in a shuffled order until `until` has passed (but at least
/// one round, and at most [`FAULTS_MAX`] faults); returns what was injected, by kind.
fn run_faults(
    cluster: &mut Cluster,
    rng: &mut StdRng,
    origin: Instant,
    until: Instant,
) -> BTreeMap<&'static str, usize> {
    let mut counts = BTreeMap::new();
    let mut injected = 0;
    loop {
        let mut round = FAULTS;
        round.shuffle(rng);
        for fault in round {
            let done = injected >= FAULTS.len() && Instant::now() >= until;
            if done || injected >= FAULTS_MAX {
                return counts;
            }
            let what = inject(cluster, rng, fault);
            injected += 1;
            *counts.entry(fault_name(fault)).or_default() += 1;
            eprintln!("t={:.1}s {what}", origin.elapsed().as_secs_f64());
            std::thread::sleep(random_ms(rng, QUIET_MS_MIN, QUIET_MS_MAX));
        }
    }
}

fn fault_name(fault: Fault) -> &'static str {
    match fault {
        Fault::KillLeader => "kill -9 leader",
        Fault::StopMember => "SIGSTOP member",
        Fault::IsolateLeader => "isolate leader",
    }
}

/// Reads the final state through member `via`: the current revision and values, and the
/// history up to that revision from a watch of the prefix starting at revision 1.
async fn read_final_state(cluster: &Cluster, via: usize) -> FinalState {
    let mut client = cluster.client(via, FINAL_READ_TIMEOUT_MS).await;
    let response = client
        .get(KEY_PREFIX, Some(GetOptions::new().with_prefix()))
        .await
        .expect("final range of the test's keys");
    let revision = response.header().expect("range header").revision();
    let values = response
        .kvs()
        .iter()
        .map(|kv| (kv.key().to_vec(), kv.value().to_vec()))
        .collect();
    let events = tokio::time::timeout(
        Duration::from_millis(WATCH_HISTORY_TIMEOUT_MS),
        watch_history(&mut client, revision),
    )
    .await
    .unwrap_or_else(|_| {
        panic!("the watch from revision 1 did not reach revision {revision} in time")
    });
    FinalState {
        revision,
        values,
        events,
    }
}

/// Every event under [`KEY_PREFIX`] from revision 1 through `last_revision`.
async fn watch_history(client: &mut Client, last_revision: i64) -> Vec<HistoryEvent> {
    let options = WatchOptions::new().with_prefix().with_start_revision(1);
    let (_watcher, mut stream) = client
        .watch(KEY_PREFIX, Some(options))
        .await
        .expect("watch from revision 1");
    let mut events = Vec::new();
    let mut reached = 1;
    while reached < last_revision {
        let response = stream
            .message()
            .await
            .expect("watch stream")
            .expect("watch stream ended before the last revision");
        assert!(
            !response.canceled(),
            "watch from revision 1 canceled (compact revision {}): {}",
            response.compact_revision(),
            response.cancel_reason()
        );
        for event in response.events() {
            let kv = event.kv().expect("watch event carries its key-value");
            reached = reached.max(kv.mod_revision());
            if kv.mod_revision() > last_revision {
                continue;
            }
            events.push(HistoryEvent {
                revision: kv.mod_revision(),
                key: kv.key().to_vec(),
                value: match event.event_type() {
                    EventType::Put => Some(kv.value().to_vec()),
                    EventType::Delete => None,
                },
            });
        }
    }
    events
}

/// Checks the store's history on its own and against the acknowledged writes; returns
/// every violation found (empty when none).
fn integrity_problems(state: &FinalState, operations: &[KvOperation]) -> Vec<String> {
    let mut problems = Vec::new();
    let expected_revisions: Vec<i64> = (2..=state.revision).collect();
    let revisions: Vec<i64> = state.events.iter().map(|e| e.revision).collect();
    if revisions != expected_revisions {
        problems.push(format!(
            "the watch from revision 1 does not give one event per revision 2..={}: {} events",
            state.revision,
            revisions.len()
        ));
    }
    let mut last: BTreeMap<&[u8], &[u8]> = BTreeMap::new();
    let mut writers: HashMap<&[u8], usize> = HashMap::new();
    for op in operations {
        if let KvOp::Put { value } | KvOp::CompareAndSet { value, .. } = &op.input.op {
            *writers.entry(value.as_slice()).or_default() += 1;
        }
    }
    let mut seen_values: HashMap<&[u8], i64> = HashMap::new();
    for event in &state.events {
        match &event.value {
            Some(value) => {
                last.insert(&event.key, value);
                if writers.get(value.as_slice()) != Some(&1) {
                    problems.push(format!("{event} puts a value no single operation wrote"));
                }
                if let Some(earlier) = seen_values.insert(value, event.revision) {
                    problems.push(format!("{event} puts a value already put at {earlier}"));
                }
            }
            None => {
                last.remove(event.key.as_slice());
            }
        }
    }
    let final_values: BTreeMap<&[u8], &[u8]> = state
        .values
        .iter()
        .map(|(k, v)| (k.as_slice(), v.as_slice()))
        .collect();
    if final_values != last {
        problems.push(String::from(
            "the final values differ from the last event of each key in the watched history",
        ));
    }
    let by_revision: HashMap<i64, &HistoryEvent> =
        state.events.iter().map(|e| (e.revision, e)).collect();
    for op in operations {
        if let Some(problem) = acknowledged_write_problem(op, &by_revision, &seen_values) {
            problems.push(problem);
        }
    }
    problems
}

/// Whether an operation with a response disagrees with the store's history: an
/// acknowledged write must be in it at its revision, a failed compare-and-set must not.
fn acknowledged_write_problem(
    op: &KvOperation,
    by_revision: &HashMap<i64, &HistoryEvent>,
    seen_values: &HashMap<&[u8], i64>,
) -> Option<String> {
    let key = &op.input.key;
    let (revision, value) = match (&op.input.op, &op.output) {
        (KvOp::Put { value }, KvOutput::Put { revision }) => (*revision, Some(value)),
        (
            KvOp::CompareAndSet { value, .. },
            KvOutput::CompareAndSet {
                succeeded: true,
                revision,
            },
        ) => (*revision, Some(value)),
        (
            KvOp::Delete,
            KvOutput::Delete {
                deleted: 1,
                revision,
            },
        ) => (*revision, None),
        (
            KvOp::CompareAndSet { value, .. },
            KvOutput::CompareAndSet {
                succeeded: false, ..
            },
        ) => {
            return seen_values.get(value.as_slice()).map(|r| {
                format!(
                    "{} (client {}) took effect at revision {r}",
                    EtcdKvModel.describe_operation(&op.input, &op.output),
                    op.client_id
                )
            })
        }
        _ => return None,
    };
    let Some(revision) = revision else {
        return Some(format!(
            "acknowledged write without header revision: {}",
            EtcdKvModel.describe_operation(&op.input, &op.output)
        ));
    };
    let found = by_revision.get(&revision);
    let matches = found.is_some_and(|e| e.key == *key && e.value.as_ref() == value);
    (!matches).then(|| {
        format!(
            "acknowledged {} is not in the store's history at revision {revision} \
             (there: {})",
            EtcdKvModel.describe_operation(&op.input, &op.output),
            found.map_or(String::from("nothing"), |e| e.to_string()),
        )
    })
}

/// Resolves the unknown outcomes with the store's history (see the module doc) and
/// returns the history to check.
fn resolve(operations: Vec<KvOperation>, state: &FinalState) -> (Vec<KvOperation>, Resolution) {
    let puts: HashMap<&[u8], i64> = state
        .events
        .iter()
        .filter_map(|e| e.value.as_deref().map(|v| (v, e.revision)))
        .collect();
    let delete_events = unclaimed_delete_events(&operations, state);
    let mut unknown_deletes: HashMap<Vec<u8>, usize> = HashMap::new();
    for op in &operations {
        if op.input.op == KvOp::Delete && op.is_outcome_unknown() {
            *unknown_deletes.entry(op.input.key.clone()).or_default() += 1;
        }
    }
    let mut resolution = Resolution::default();
    let mut history = Vec::with_capacity(operations.len());
    for mut op in operations {
        if !op.is_outcome_unknown() {
            history.push(op);
            continue;
        }
        resolution.unknown += 1;
        let took_effect = match &op.input.op {
            KvOp::Put { value } => puts
                .get(value.as_slice())
                .map(|&r| KvOutput::Put { revision: Some(r) }),
            KvOp::CompareAndSet { value, .. } => {
                puts.get(value.as_slice())
                    .map(|&r| KvOutput::CompareAndSet {
                        succeeded: true,
                        revision: Some(r),
                    })
            }
            KvOp::Delete => {
                let unclaimed = delete_events.get(&op.input.key).map_or(&[][..], |v| v);
                match (unclaimed, unknown_deletes[&op.input.key]) {
                    ([], _) => None,
                    (&[r], 1) => Some(KvOutput::Delete {
                        deleted: 1,
                        revision: Some(r),
                    }),
                    _ => Some(KvOutput::Unknown),
                }
            }
            KvOp::Get => unreachable!("failed reads are not recorded"),
        };
        match took_effect {
            None => resolution.dropped += 1,
            Some(KvOutput::Unknown) => {
                resolution.still_unknown += 1;
                history.push(op);
            }
            Some(output) => {
                resolution.took_effect += 1;
                op.output = output;
                history.push(op);
            }
        }
    }
    (history, resolution)
}

/// Per key, the revisions of delete events that no acknowledged delete accounts for.
fn unclaimed_delete_events(
    operations: &[KvOperation],
    state: &FinalState,
) -> HashMap<Vec<u8>, Vec<i64>> {
    let claimed: Vec<i64> = operations
        .iter()
        .filter_map(|op| match op.output {
            KvOutput::Delete {
                deleted: 1,
                revision,
            } => revision,
            _ => None,
        })
        .collect();
    let mut unclaimed: HashMap<Vec<u8>, Vec<i64>> = HashMap::new();
    for event in &state.events {
        if event.value.is_none() && !claimed.contains(&event.revision) {
            unclaimed
                .entry(event.key.clone())
                .or_default()
                .push(event.revision);
        }
    }
    unclaimed
}

/// Writes the checked history (by key, in call order), the store's events and every
/// member's logs to a new directory under the system temp dir, kept after the test, and
/// returns it.
fn save_evidence(
    cluster: &Cluster,
    seed: u64,
    history: &[KvOperation],
    state: &FinalState,
) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("cairn-lin-{seed}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("create evidence dir");
    let mut sorted: Vec<&KvOperation> = history.iter().collect();
    sorted.sort_by(|a, b| (&a.input.key, a.call).cmp(&(&b.input.key, b.call)));
    let lines: Vec<String> = sorted
        .iter()
        .map(|op| {
            let return_ = if op.is_outcome_unknown() {
                String::from("unknown")
            } else {
                op.return_.to_string()
            };
            format!(
                "client {} [{}..{return_}] {}",
                op.client_id,
                op.call,
                EtcdKvModel.describe_operation(&op.input, &op.output)
            )
        })
        .collect();
    std::fs::write(dir.join("history.txt"), lines.join("\n")).expect("write history");
    let events: Vec<String> = state.events.iter().map(ToString::to_string).collect();
    std::fs::write(dir.join("events.txt"), events.join("\n")).expect("write events");
    for i in 0..cluster.len() {
        let member = cluster.member(i);
        std::fs::write(dir.join(format!("{}.log", member.name)), member.logs_all())
            .expect("write member log");
    }
    dir
}

/// Operations with a response, split into (all, writes, reads that saw a value).
fn completed_counts(history: &[KvOperation]) -> (usize, usize, usize) {
    let completed: Vec<&KvOperation> = history.iter().filter(|o| !o.is_outcome_unknown()).collect();
    let writes = completed.iter().filter(|o| o.input.op != KvOp::Get).count();
    let reads_of_values = completed
        .iter()
        .filter(|o| matches!(o.output, KvOutput::Get { kv: Some(_), .. }))
        .count();
    (completed.len(), writes, reads_of_values)
}

#[test]
fn client_history_under_faults_is_linearizable() {
    let seed = seed_from_env();
    let run_seconds = run_seconds_from_env();
    eprintln!("{SEED_ENV}={seed} {RUN_SECONDS_ENV}={run_seconds} (set them to reproduce)");
    let mut rng = StdRng::seed_from_u64(seed);
    let mut cluster = Cluster::builder().size(MEMBERS_COUNT).proxied(true).start();
    cluster.wait_leader();
    let rt = runtime();
    let origin = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::with_capacity(CLIENTS_COUNT);
    for c in 0..CLIENTS_COUNT {
        let client = rt.block_on(cluster.client(c % MEMBERS_COUNT, OP_TIMEOUT_MS));
        let client_rng = StdRng::seed_from_u64(rng.gen());
        let id = u64::try_from(c).expect("client index fits u64");
        tasks.push(rt.spawn(run_client(
            id,
            client,
            client_rng,
            Arc::clone(&stop),
            origin,
        )));
    }

    std::thread::sleep(Duration::from_millis(WARMUP_MS));
    let until = Instant::now() + Duration::from_secs(run_seconds);
    let faults = run_faults(&mut cluster, &mut rng, origin, until);
    std::thread::sleep(Duration::from_millis(TAIL_MS));
    stop.store(true, Ordering::SeqCst);
    let logs: Vec<ClientLog> = rt.block_on(async {
        let all = async {
            let mut logs = Vec::with_capacity(tasks.len());
            for task in tasks {
                logs.push(task.await.expect("client task"));
            }
            logs
        };
        tokio::time::timeout(Duration::from_millis(CLIENTS_STOP_TIMEOUT_MS), all)
            .await
            .expect("clients stop within their request timeout")
    });
    let load_seconds = origin.elapsed().as_secs_f64();

    cluster.proxy().heal();
    assert_eq!(
        cluster.serving().len(),
        MEMBERS_COUNT,
        "every fault was undone"
    );
    let leader = cluster.wait_leader();
    let state = rt.block_on(read_final_state(&cluster, leader));
    let operations: Vec<KvOperation> = logs.iter().flat_map(|l| l.operations.clone()).collect();
    let failed_reads: usize = logs.iter().map(|l| l.failed_reads).sum();
    let problems = integrity_problems(&state, &operations);
    let recorded = operations.len();
    let (history, resolution) = resolve(operations, &state);
    let (completed, writes, reads_of_values) = completed_counts(&history);
    eprintln!(
        "seed {seed}: {load_seconds:.1}s of load, faults {faults:?}; recorded {recorded} \
         operations ({completed} completed: {writes} writes, {reads_of_values} reads of \
         values; {failed_reads} failed reads left out), unknown outcomes {} (took effect {}, \
         did not {}, still unknown {}); store revision {}",
        resolution.unknown,
        resolution.took_effect,
        resolution.dropped,
        resolution.still_unknown,
        state.revision
    );

    let check_started = Instant::now();
    let verdict = check(
        &EtcdKvModel,
        &history,
        Some(Duration::from_millis(CHECK_DEADLINE_MS)),
    )
    .expect("the history is within the checker's limits");
    eprintln!(
        "checked {} operations in {:.2}s: {}",
        history.len(),
        check_started.elapsed().as_secs_f64(),
        if verdict.is_ok() {
            "linearizable"
        } else {
            "FAILED"
        }
    );
    let mut failures = problems;
    if !verdict.is_ok() {
        failures.push(verdict.to_string());
    }
    if !failures.is_empty() {
        let dir = save_evidence(&cluster, seed, &history, &state);
        failures.push(format!(
            "history, store events and member logs saved in {}",
            dir.display()
        ));
    }
    assert!(
        failures.is_empty(),
        "seed {seed}: the store's history disagrees with the clients' or is not \
         linearizable:\n{}",
        failures.join("\n")
    );
    assert!(
        completed >= COMPLETED_OPERATIONS_MIN,
        "only {completed} completed operations"
    );
    assert!(
        writes >= COMPLETED_WRITES_MIN,
        "only {writes} completed writes"
    );
    assert!(
        reads_of_values >= READS_OF_VALUES_MIN,
        "only {reads_of_values} reads saw a value"
    );
    for fault in FAULTS {
        assert!(
            faults.contains_key(fault_name(fault)),
            "{fault:?} was never injected"
        );
    }
}
