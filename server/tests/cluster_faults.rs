//! Cluster faults: kill -9 of the leader under a 100-writer load (no acknowledged write
//! lost, members converge), a leader isolated in a minority by the peer proxy (commits
//! nothing, serves no linearizable read, the majority elects and serves), a member that
//! misses more writes than the leader keeps in its log (catches up by snapshot), and a
//! 5-member cluster losing two members (still writes and reads linearizably; a third
//! loss stops writes). Guarantees from etcd's api_guarantees.md and the Raft paper
//! (§5.2 election, §5.4 safety, §7 log compaction); the tests pass against
//! `CAIRN_TEST_TARGET=etcd`.

mod common;

use common::cluster::{
    etcdctl_timeout, wait_until, Cluster, ELECTION_TIMEOUT_MS, LEADER_TIMEOUT_MS,
};
use common::proxy::PeerProxy;
use common::{runtime, text};
use etcd_client::{Client, GetOptions};
use std::collections::{BTreeMap, HashSet};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Concurrent writers of the kill-under-load test.
const WRITERS_COUNT: usize = 100;
/// Acknowledged writes before the leader is killed.
const ACKS_BEFORE_KILL: usize = 1_500;
/// Acknowledged writes after the new leader is known, proving that writes resumed.
const ACKS_AFTER_FAILOVER: usize = 1_500;
/// Upper bound on each load phase (reaching an ack count).
const LOAD_PHASE_TIMEOUT_MS: u64 = 60_000;
/// Per-request timeout of the load's clients.
const OP_TIMEOUT_MS: u64 = 5_000;
/// A writer whose request failed waits this long before the next one (on another member).
const ERROR_BACKOFF_MS: u64 = 20;
/// Upper bound on stopping the load (every writer finishes its request in flight).
const LOAD_STOP_TIMEOUT_MS: u64 = 2 * OP_TIMEOUT_MS;
/// `--snapshot-count` of the snapshot catch-up test.
const SNAPSHOT_COUNT: u64 = 1_000;
/// etcd keeps this many entries in its log after a snapshot (etcdserver
/// `DefaultSnapshotCatchUpEntries`); a follower further behind needs a snapshot.
const ETCD_SNAPSHOT_CATCH_UP_ENTRIES: u64 = 5_000;
/// Writes made while a member is stopped: more than the leader keeps in its log.
const WRITES_WHILE_STOPPED: u64 = 8_000;
/// Longest wait for a watch that requires a leader to end once its member lost the leader
/// (3 election timeouts of 1 s, polled each timeout, plus detecting the loss).
const NO_LEADER_WATCH_END_MS: u64 = 20_000;
/// Concurrent writers while a member is stopped.
const CATCH_UP_WRITERS_COUNT: u64 = 50;
/// `--command-timeout` of requests that must fail for want of a quorum.
const NO_QUORUM_COMMAND_TIMEOUT_MS: u64 = 3_000;
/// What etcdctl may print (last line) when a request cannot reach a quorum: the client's
/// deadline passed first, the server saw the propagated deadline (`ctx.Err()` becomes gRPC
/// Unknown), or one of etcd's own errors (api/v3rpc/rpctypes/error.go).
const NO_QUORUM_ERRORS: &[&str] = &[
    "Error: context deadline exceeded",
    "Error: rpc error: code = Unknown desc = context deadline exceeded",
    "Error: etcdserver: request timed out",
    "Error: etcdserver: request timed out, possibly due to previous leader failure",
    "Error: etcdserver: request timed out, possibly due to connection lost",
    "Error: etcdserver: leader changed",
    "Error: etcdserver: no leader",
];
/// How long a blocked proxy connection may take to be closed, or an allowed one to answer.
const PROXY_IO_TIMEOUT_MS: u64 = 5_000;

const _: () = assert!(WRITES_WHILE_STOPPED > SNAPSHOT_COUNT + ETCD_SNAPSHOT_CATCH_UP_ENTRIES);
const _: () = assert!(WRITES_WHILE_STOPPED.is_multiple_of(CATCH_UP_WRITERS_COUNT));
const _: () = assert!(NO_QUORUM_COMMAND_TIMEOUT_MS > 2 * ELECTION_TIMEOUT_MS);

/// What one writer did: every key it attempted, and the (key, value) pairs acknowledged.
#[derive(Debug, Default)]
struct WriterLog {
    attempted: Vec<String>,
    acked: Vec<(String, String)>,
    errors: usize,
}

/// Writes fresh keys `<prefix><writer>/<seq>` until `stop`, through `clients` (one per
/// member), moving to the next member after an error.
async fn writer(
    index: usize,
    prefix: &'static str,
    mut clients: Vec<Client>,
    stop: Arc<AtomicBool>,
    acks: Arc<AtomicUsize>,
) -> WriterLog {
    let mut log = WriterLog::default();
    let mut member = index % clients.len();
    let mut seq = 0u64;
    while !stop.load(Ordering::SeqCst) {
        seq += 1;
        let key = format!("{prefix}{index:03}/{seq:06}");
        let value = format!("w{index}-s{seq}");
        log.attempted.push(key.clone());
        match clients[member].put(key.clone(), value.clone(), None).await {
            Ok(_) => {
                log.acked.push((key, value));
                acks.fetch_add(1, Ordering::SeqCst);
            }
            Err(_) => {
                log.errors += 1;
                member = (member + 1) % clients.len();
                tokio::time::sleep(Duration::from_millis(ERROR_BACKOFF_MS)).await;
            }
        }
    }
    log
}

/// Every key-value pair under `prefix`, read linearizably through member `via`.
async fn read_prefix(cluster: &Cluster, via: usize, prefix: &str) -> BTreeMap<String, String> {
    let mut client = cluster.client(via, 30_000).await;
    let response = client
        .get(prefix, Some(GetOptions::new().with_prefix()))
        .await
        .expect("read back the load's keys");
    response
        .kvs()
        .iter()
        .map(|kv| {
            (
                kv.key_str().expect("utf-8 key").to_string(),
                kv.value_str().expect("utf-8 value").to_string(),
            )
        })
        .collect()
}

fn wait_acks(acks: &AtomicUsize, at_least: usize, what: &str) {
    wait_until(what, LOAD_PHASE_TIMEOUT_MS, || {
        let now = acks.load(Ordering::SeqCst);
        if now >= at_least {
            Ok(())
        } else {
            Err(format!("{now} of {at_least} acknowledged writes"))
        }
    });
}

fn ok(output: std::process::Output) -> String {
    let (code, stdout, stderr) = text(&output);
    assert_eq!(
        code, 0,
        "etcdctl failed: stdout {stdout:?} stderr {stderr:?}"
    );
    stdout
}

/// Asserts that etcdctl failed with one of [`NO_QUORUM_ERRORS`] and returns that line.
fn fails_without_quorum(output: std::process::Output) -> String {
    let (code, stdout, stderr) = text(&output);
    assert_ne!(
        code, 0,
        "etcdctl should have failed: stdout {stdout:?} stderr {stderr:?}"
    );
    let last = stderr.lines().last().unwrap_or_default().to_string();
    assert!(
        NO_QUORUM_ERRORS.contains(&last.as_str()),
        "not an etcd no-quorum error: {stderr}"
    );
    last
}

#[test]
fn leader_kill9_under_load_loses_no_acknowledged_write() {
    let mut cluster = Cluster::start(3);
    let old_leader = cluster.wait_leader();
    let rt = runtime();
    let clients: Vec<Client> = rt.block_on(async {
        let mut clients = Vec::new();
        for i in 0..3 {
            clients.push(cluster.client(i, OP_TIMEOUT_MS).await);
        }
        clients
    });
    let stop = Arc::new(AtomicBool::new(false));
    let acks = Arc::new(AtomicUsize::new(0));
    let writers: Vec<_> = (0..WRITERS_COUNT)
        .map(|w| {
            rt.spawn(writer(
                w,
                "load/",
                clients.clone(),
                Arc::clone(&stop),
                Arc::clone(&acks),
            ))
        })
        .collect();

    wait_acks(&acks, ACKS_BEFORE_KILL, "the load's writes before the kill");
    cluster.kill9(old_leader);
    let survivors = cluster.serving();
    let new_leader = cluster.wait_leader_among(&survivors);
    assert_ne!(new_leader, old_leader);
    let acks_at_new_leader = acks.load(Ordering::SeqCst);
    wait_acks(
        &acks,
        acks_at_new_leader + ACKS_AFTER_FAILOVER,
        "writes to resume under the new leader",
    );
    stop.store(true, Ordering::SeqCst);
    let logs: Vec<WriterLog> = rt.block_on(async {
        let all = futures_join(writers);
        tokio::time::timeout(Duration::from_millis(LOAD_STOP_TIMEOUT_MS), all)
            .await
            .expect("writers stop within their request timeout")
    });

    let stored = rt.block_on(read_prefix(&cluster, new_leader, "load/"));
    let attempted: HashSet<&str> = logs
        .iter()
        .flat_map(|l| l.attempted.iter().map(String::as_str))
        .collect();
    let mut acked_count = 0;
    for log in &logs {
        for (key, value) in &log.acked {
            acked_count += 1;
            assert_eq!(
                stored.get(key),
                Some(value),
                "acknowledged write {key} lost"
            );
        }
    }
    for key in stored.keys() {
        assert!(
            attempted.contains(key.as_str()),
            "{key} stored but never written"
        );
    }
    let errors: usize = logs.iter().map(|l| l.errors).sum();
    eprintln!(
        "acknowledged {acked_count}, stored {}, failed requests {errors}",
        stored.len()
    );
    assert!(acked_count >= ACKS_BEFORE_KILL + ACKS_AFTER_FAILOVER);

    cluster.restart(old_leader);
    let converged = cluster.wait_hashkv_equal(&[0, 1, 2]);
    assert_eq!(
        converged.revision,
        1 + stored.len() as i64,
        "one revision per stored put"
    );
    let on_restarted = rt.block_on(read_prefix(&cluster, old_leader, "load/"));
    assert_eq!(on_restarted, stored);
}

/// Awaits every task in order and returns their outputs.
/// [`WRITES_WHILE_STOPPED`] puts of `<prefix>/<writer>/<n>` by
/// [`CATCH_UP_WRITERS_COUNT`] concurrent writers spread over `members`; every one must
/// succeed (a quorum is up).
fn write_concurrently(cluster: &Cluster, members: &[usize], prefix: &str) {
    runtime().block_on(async {
        let mut clients = Vec::new();
        for &i in members {
            clients.push(cluster.client(i, OP_TIMEOUT_MS).await);
        }
        let per_writer = WRITES_WHILE_STOPPED / CATCH_UP_WRITERS_COUNT;
        let tasks: Vec<_> = (0..CATCH_UP_WRITERS_COUNT)
            .map(|w| {
                let mut client = clients[w as usize % clients.len()].clone();
                let prefix = prefix.to_string();
                tokio::spawn(async move {
                    for n in 0..per_writer {
                        let key = format!("{prefix}/{w:03}/{n:04}");
                        client
                            .put(key.clone(), format!("value-{w}-{n}"), None)
                            .await
                            .unwrap_or_else(|e| panic!("put {key} with a quorum up: {e}"));
                    }
                })
            })
            .collect();
        futures_join(tasks).await;
    });
}

async fn futures_join<T: Send + 'static>(handles: Vec<tokio::task::JoinHandle<T>>) -> Vec<T> {
    let mut out = Vec::with_capacity(handles.len());
    for handle in handles {
        out.push(handle.await.expect("writer task"));
    }
    out
}

#[test]
fn leader_isolated_in_a_minority_commits_nothing() {
    let mut cluster = Cluster::builder().size(3).proxied(true).start();
    let old_leader = cluster.wait_leader();
    let majority = cluster.followers(old_leader);
    ok(cluster.etcdctl(old_leader, &["put", "partition/before", "v0"]));

    cluster.proxy().isolate(old_leader);
    // A put through the isolated leader cannot reach a quorum.
    let minority = [cluster.endpoint(old_leader)];
    let put_error = fails_without_quorum(etcdctl_timeout(
        &minority,
        NO_QUORUM_COMMAND_TIMEOUT_MS,
        &["put", "partition/minority", "lost"],
    ));
    eprintln!("put through the isolated leader: {put_error}");
    let new_leader = cluster.wait_leader_among(&majority);
    assert_ne!(new_leader, old_leader);
    ok(cluster.etcdctl(new_leader, &["put", "partition/majority", "v1"]));
    for &i in &majority {
        let value = ok(cluster.etcdctl(i, &["get", "partition/majority", "--print-value-only"]));
        assert_eq!(value, "v1\n");
    }
    // No linearizable read in the minority (it cannot confirm it is up to date).
    let read_error = fails_without_quorum(etcdctl_timeout(
        &minority,
        NO_QUORUM_COMMAND_TIMEOUT_MS,
        &["get", "partition/before"],
    ));
    eprintln!("linearizable get through the isolated member: {read_error}");
    let put_error_again = fails_without_quorum(etcdctl_timeout(
        &minority,
        NO_QUORUM_COMMAND_TIMEOUT_MS,
        &["put", "partition/minority", "lost-again"],
    ));
    eprintln!("put through the isolated former leader: {put_error_again}");

    cluster.proxy().heal();
    let leader = cluster.wait_leader();
    assert!(
        majority.contains(&leader),
        "the former leader's log is behind the majority's; it cannot win (Raft §5.4.1)"
    );
    let value = wait_until(
        "the former leader to serve linearizable reads again",
        LEADER_TIMEOUT_MS,
        || {
            let (code, stdout, stderr) = text(&etcdctl_timeout(
                &minority,
                NO_QUORUM_COMMAND_TIMEOUT_MS,
                &["get", "partition/majority", "--print-value-only"],
            ));
            if code == 0 {
                Ok(stdout)
            } else {
                Err(stderr)
            }
        },
    );
    assert_eq!(value, "v1\n");
    for i in 0..3 {
        let stdout = ok(cluster.etcdctl(i, &["get", "partition/minority"]));
        assert_eq!(
            stdout, "",
            "a write through the isolated leader was committed on m{i}"
        );
    }
    cluster.wait_hashkv_equal(&[0, 1, 2]);
}

#[test]
fn a_stopped_member_catches_up_by_snapshot() {
    let count = SNAPSHOT_COUNT.to_string();
    let mut cluster = Cluster::builder()
        .size(3)
        .args(&["--snapshot-count", &count])
        .start();
    let leader = cluster.wait_leader();
    let lagging = cluster.followers(leader)[0];
    let live: Vec<usize> = cluster.followers(lagging);
    ok(cluster.etcdctl(leader, &["put", "snap/first", "v"]));

    cluster.stop(lagging);
    write_concurrently(&cluster, &live, "snap");
    cluster.cont(lagging);

    let converged = cluster.wait_hashkv_equal(&[0, 1, 2]);
    assert_eq!(converged.revision, 2 + WRITES_WHILE_STOPPED as i64);
    let last = format!(
        "snap/{:03}/{:04}",
        CATCH_UP_WRITERS_COUNT - 1,
        WRITES_WHILE_STOPPED / CATCH_UP_WRITERS_COUNT - 1
    );
    let serializable = ok(cluster.etcdctl(
        lagging,
        &["get", &last, "--print-value-only", "--consistency=s"],
    ));
    assert_eq!(
        serializable,
        format!(
            "value-{}-{}\n",
            CATCH_UP_WRITERS_COUNT - 1,
            WRITES_WHILE_STOPPED / CATCH_UP_WRITERS_COUNT - 1
        )
    );
    // `count` is the number of keys in the range whatever the limit.
    let counted = ok(cluster.etcdctl(
        lagging,
        &["get", "snap/", "--prefix", "--limit=1", "-w", "json"],
    ));
    let counted: serde_json::Value = serde_json::from_str(&counted).expect("get JSON");
    assert_eq!(counted["count"].as_u64(), Some(1 + WRITES_WHILE_STOPPED));
    // Proves that the scenario makes the leader send a snapshot rather than log entries
    // (etcd and Cairn log the same line when a follower installed one).
    assert!(
        cluster.log_contains(lagging, "finished applying incoming snapshot"),
        "the lagging member did not receive a snapshot"
    );
}

#[test]
fn five_members_survive_two_failures() {
    let mut cluster = Cluster::start(5);
    let leader = cluster.wait_leader();
    ok(cluster.etcdctl(leader, &["put", "five/key", "before"]));
    let victims = [leader, cluster.followers(leader)[0]];
    for &v in &victims {
        cluster.kill9(v);
    }
    let survivors = cluster.serving();
    assert_eq!(survivors.len(), 3);
    let new_leader = cluster.wait_leader_among(&survivors);
    assert!(!victims.contains(&new_leader));

    for (n, &writer) in survivors.iter().enumerate() {
        let value = format!("after-{n}");
        ok(cluster.etcdctl(writer, &["put", "five/key", &value]));
        for &reader in &survivors {
            let read = ok(cluster.etcdctl(reader, &["get", "five/key", "--print-value-only"]));
            assert_eq!(read, format!("{value}\n"), "linearizable read on m{reader}");
        }
    }

    // A third failure leaves 2 of 5: no quorum, no writes, no linearizable reads.
    cluster.kill9(survivors[0]);
    let rest = cluster.serving();
    let endpoints = cluster.endpoints_of(&rest);
    let put_error = fails_without_quorum(etcdctl_timeout(
        &endpoints,
        NO_QUORUM_COMMAND_TIMEOUT_MS,
        &["put", "five/key", "no-quorum"],
    ));
    eprintln!("put with 2 of 5 members: {put_error}");
    let read_error = fails_without_quorum(etcdctl_timeout(
        &endpoints,
        NO_QUORUM_COMMAND_TIMEOUT_MS,
        &["get", "five/key"],
    ));
    eprintln!("linearizable get with 2 of 5 members: {read_error}");

    for i in [victims[0], victims[1], survivors[0]] {
        cluster.restart(i);
    }
    cluster.wait_leader();
    cluster.wait_hashkv_equal(&[0, 1, 2, 3, 4]);
    // The timed-out put's outcome is unknown: a leader among the two may have appended it
    // and committed it once a quorum was back (Raft §5.4.2). Either way all agree.
    let last_acked = format!("after-{}\n", survivors.len() - 1);
    let first = ok(cluster.etcdctl(0, &["get", "five/key", "--print-value-only"]));
    assert!(
        first == last_acked || first == "no-quorum\n",
        "unexpected value {first:?}"
    );
    for i in 1..5 {
        let read = ok(cluster.etcdctl(i, &["get", "five/key", "--print-value-only"]));
        assert_eq!(read, first, "on m{i}");
    }
}

/// An echo server on a free loopback port (one thread per connection); returns the port.
fn echo_server() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind echo server");
    let port = listener.local_addr().expect("local_addr").port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            std::thread::spawn(move || {
                let mut buffer = [0u8; 1024];
                while let Ok(n) = stream.read(&mut buffer) {
                    if n == 0 || stream.write_all(&buffer[..n]).is_err() {
                        return;
                    }
                }
            });
        }
    });
    port
}

fn dial(port: u16) -> TcpStream {
    let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect to proxy");
    stream
        .set_read_timeout(Some(Duration::from_millis(PROXY_IO_TIMEOUT_MS)))
        .expect("read timeout");
    stream
}

/// True when `stream` echoes `ping` back through the proxy.
fn echoes(stream: &mut TcpStream) -> bool {
    if stream.write_all(b"ping").is_err() {
        return false;
    }
    let mut answer = [0u8; 4];
    stream.read_exact(&mut answer).is_ok() && &answer == b"ping"
}

/// True when the proxy closed `stream` (EOF or reset, not a read timeout).
fn closed(stream: &mut TcpStream) -> bool {
    let mut byte = [0u8; 1];
    match stream.read(&mut byte) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => !matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
    }
}

#[test]
fn proxy_cuts_and_restores_links() {
    let mut proxy = PeerProxy::new();
    // Member 0 is this test process (it dials); member 1 is an echo server; member 2 is
    // a bystander.
    proxy.add_member(0);
    let front = proxy.add_member(1);
    proxy.add_member(2);
    proxy.set_target(1, echo_server());
    proxy.set_pid(0, Some(std::process::id()));

    let mut live = dial(front);
    assert!(echoes(&mut live), "an open link forwards");

    proxy.isolate(2);
    assert!(
        echoes(&mut live),
        "isolating another member leaves 0–1 alone"
    );
    proxy.heal();

    proxy.block_link(1, 0);
    assert!(
        closed(&mut live),
        "blocking a link closes its live connections"
    );
    let mut refused = dial(front);
    assert!(
        !echoes(&mut refused),
        "a blocked link refuses new connections"
    );
    assert_eq!(proxy.blocked_links(), vec![(0, 1)]);

    proxy.unblock_link(0, 1);
    let mut again = dial(front);
    assert!(echoes(&mut again), "an unblocked link forwards again");

    // A connection whose owner is unknown passes only while its destination has no
    // blocked link.
    proxy.set_pid(0, None);
    let mut unknown = dial(front);
    assert!(echoes(&mut unknown));
    proxy.partition(&[&[1], &[2]]);
    assert!(
        closed(&mut unknown),
        "unknown source, destination partitioned"
    );
    assert!(
        echoes(&mut again),
        "member 0's identified connection to 1 is not across the cut"
    );
}

/// etcd's `hasleader` metadata (`clientv3.WithRequireLeader`, which `etcdctl watch` sets):
/// a member without a leader ends such a watch with `etcdserver: no leader` after a few
/// election timeouts, while a watch without the metadata would stay open.
#[test]
fn a_watch_requiring_a_leader_ends_when_the_member_loses_it() {
    use std::io::Read;
    use std::process::{Command, Stdio};
    let mut cluster = Cluster::start(3);
    ok(cluster.etcdctl(0, &["put", "hasleader/key", "v1"]));
    // From revision 1, so the watch reports the put whenever it is registered.
    let mut watch = Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .args([
            "--endpoints",
            &cluster.endpoint(0),
            "watch",
            "hasleader/key",
            "--rev=1",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn etcdctl watch");
    cluster.kill9(1);
    cluster.kill9(2);
    // Three election timeouts without a leader (etcd `maxNoLeaderCnt`), polled once per
    // election timeout, plus the time to notice the loss: well within this bound.
    let ended = wait_until("the watch to end", NO_LEADER_WATCH_END_MS, || {
        match watch.try_wait().expect("etcdctl watch status") {
            Some(status) => Ok(status),
            None => Err("etcdctl watch still running".to_string()),
        }
    });
    let mut stdout = String::new();
    let mut stderr = String::new();
    watch
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    watch
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(stdout.contains("PUT\nhasleader/key\nv1\n"), "{stdout}");
    assert!(
        stderr.contains("etcdserver: no leader"),
        "{ended:?}: {stderr}"
    );
}

/// Across a leader change a watcher on a follower keeps streaming every event in order,
/// and a lease kept alive through that follower survives (the new leader refreshes lease
/// TTLs, etcd's Promote).
#[test]
fn watches_and_leases_on_a_follower_survive_a_leader_change() {
    const TTL_SECONDS: i64 = 5;
    const PUTS_BEFORE: usize = 20;
    const PUTS_AFTER: usize = 20;
    let mut cluster = Cluster::start(3);
    let leader = cluster.wait_leader();
    let follower = cluster.followers(leader)[0];
    let rt = runtime();
    let (mut watch_stream, lease) = rt.block_on(async {
        let mut c = cluster.client(follower, OP_TIMEOUT_MS).await;
        let lease = c.lease_grant(TTL_SECONDS, None).await.expect("grant").id();
        let put = etcd_client::PutOptions::new().with_lease(lease);
        c.put("leased/key", "v", Some(put))
            .await
            .expect("leased put");
        let (_, stream) = c
            .watch(
                "watched/",
                Some(etcd_client::WatchOptions::new().with_prefix()),
            )
            .await
            .expect("watch");
        (stream, lease)
    });
    let put_all = |cluster: &Cluster, member: usize, from: usize, to: usize| {
        rt.block_on(async {
            let mut c = cluster.client(member, OP_TIMEOUT_MS).await;
            for i in from..to {
                c.put(format!("watched/{i:03}"), format!("{i}"), None)
                    .await
                    .expect("put");
            }
        })
    };
    put_all(&cluster, leader, 0, PUTS_BEFORE);
    cluster.kill9(leader);
    let new_leader = cluster.wait_leader();
    assert_ne!(new_leader, leader);
    // Keep the lease alive through the follower across more than its TTL.
    rt.block_on(async {
        let mut c = cluster.client(follower, OP_TIMEOUT_MS).await;
        let (mut keeper, mut answers) = c.lease_keep_alive(lease).await.expect("keep-alive");
        for _ in 0..(2 * TTL_SECONDS) {
            keeper.keep_alive().await.expect("send keep-alive");
            let answer = answers.message().await.expect("keep-alive answer");
            assert_eq!(answer.expect("answer").ttl(), TTL_SECONDS);
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        }
    });
    put_all(&cluster, new_leader, PUTS_BEFORE, PUTS_BEFORE + PUTS_AFTER);
    let keys = rt.block_on(async {
        let mut keys = Vec::new();
        while keys.len() < PUTS_BEFORE + PUTS_AFTER {
            let resp = tokio::time::timeout(
                std::time::Duration::from_millis(OP_TIMEOUT_MS),
                watch_stream.message(),
            )
            .await
            .expect("an event within the timeout")
            .expect("watch stream")
            .expect("watch response");
            for e in resp.events() {
                keys.push(e.kv().expect("kv").key_str().expect("utf8").to_string());
            }
        }
        keys
    });
    let expected: Vec<String> = (0..PUTS_BEFORE + PUTS_AFTER)
        .map(|i| format!("watched/{i:03}"))
        .collect();
    assert_eq!(keys, expected);
    let leased = ok(cluster.etcdctl(follower, &["get", "leased/key", "--print-value-only"]));
    assert_eq!(leased, "v\n", "the kept-alive lease expired");
}

/// A member added after the leader compacted its log catches up by a snapshot that names
/// it: the leader sends its current state (etcd `createMergedSnapshotMessage`), not an
/// older checkpoint taken before the member existed, which the member would refuse.
#[test]
fn a_member_added_after_log_compaction_catches_up_by_snapshot() {
    let count = SNAPSHOT_COUNT.to_string();
    let mut cluster = Cluster::builder()
        .size(3)
        .args(&["--snapshot-count", &count])
        .start();
    write_concurrently(&cluster, &[0, 1, 2], "added");
    let added = cluster.add_member("m3", false);
    let converged = cluster.wait_hashkv_equal(&[0, 1, 2, added]);
    assert_eq!(converged.revision, 1 + WRITES_WHILE_STOPPED as i64);
    assert!(
        cluster.log_contains(added, "finished applying incoming snapshot"),
        "the added member did not catch up by snapshot"
    );
}
