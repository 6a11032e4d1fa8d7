//! The Election and Lock services (etcd 3.4 `etcdserver/api/v3election`, `api/v3lock`
//! over `clientv3/concurrency`): through the `etcd-client` crate with exact revisions,
//! keys, values and error statuses, and through the real `etcdctl lock` / `etcdctl elect`.
//! Only lease IDs chosen by the server are masked. Every wait is bounded.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::{grpc_status, runtime, text, tonic_status::Status, TestServer};
use etcd_client::{Client, LeaderKey, LockOptions, ProclaimOptions, ResignOptions};

/// gRPC UNKNOWN: how grpc-go reports the plain Go errors of etcd's election/lock servers.
const UNKNOWN: i32 = 2;
/// Bound for any wait on a call that must complete.
const WAIT: Duration = Duration::from_secs(10);
/// How long a call that must stay blocked is given to (wrongly) complete.
const BLOCKED_CHECK: Duration = Duration::from_millis(500);

fn unknown(message: &str) -> Status {
    Status {
        code: UNKNOWN,
        message: message.to_string(),
    }
}

async fn grant(c: &mut Client) -> i64 {
    c.lease_grant(60, None).await.expect("lease grant").id()
}

fn rev(header: Option<&etcd_client::ResponseHeader>) -> i64 {
    header.expect("header").revision()
}

#[test]
fn lock_waits_for_unlock() {
    let server = TestServer::start();
    runtime().block_on(async {
        let mut c = server.client().await;
        let (l1, l2) = (grant(&mut c).await, grant(&mut c).await);
        let mut locks = c.lock_client();
        let first = locks
            .lock("mylock", Some(LockOptions::new().with_lease(l1)))
            .await
            .expect("lock 1");
        assert_eq!(first.key(), format!("mylock/{l1:x}").as_bytes());
        assert_eq!(rev(first.header()), 2);

        // Locking again with the same lease reuses the key: it holds the lock already.
        let again = locks
            .lock("mylock", Some(LockOptions::new().with_lease(l1)))
            .await
            .expect("lock 1 again");
        assert_eq!(again.key(), first.key());
        assert_eq!(rev(again.header()), 2);

        let mut other = c.lock_client();
        let mut second = tokio::spawn(async move {
            other
                .lock("mylock", Some(LockOptions::new().with_lease(l2)))
                .await
        });
        assert!(
            tokio::time::timeout(BLOCKED_CHECK, &mut second)
                .await
                .is_err(),
            "second lock acquired while the first is held"
        );
        let unlocked = locks.unlock(first.key()).await.expect("unlock 1");
        // The waiting lock's key was put at revision 3, the unlock deletes at 4.
        assert_eq!(rev(unlocked.header()), 4);
        let second = tokio::time::timeout(WAIT, second)
            .await
            .expect("second lock acquired after unlock")
            .expect("join")
            .expect("lock 2");
        assert_eq!(second.key(), format!("mylock/{l2:x}").as_bytes());
        assert_eq!(rev(second.header()), 4);
        let kvs = c
            .get(
                "mylock/",
                Some(etcd_client::GetOptions::new().with_prefix()),
            )
            .await
            .expect("get");
        assert_eq!(kvs.kvs().len(), 1);
        assert_eq!(kvs.kvs()[0].create_revision(), 3);
        assert_eq!(kvs.kvs()[0].lease(), l2);
        assert_eq!(kvs.kvs()[0].value(), b"");
        assert_eq!(
            rev(locks.unlock(second.key()).await.expect("unlock 2").header()),
            5
        );

        // Lease 0: the server grants a 60 s lease for the session.
        let own = locks.lock("other", None).await.expect("lock with lease 0");
        let key = String::from_utf8(own.key().to_vec()).expect("utf-8 key");
        let hex = key
            .strip_prefix("other/")
            .expect("key under the lock's prefix");
        let lease = i64::from_str_radix(hex, 16).expect("hex lease id");
        let ttl = c.lease_time_to_live(lease, None).await.expect("ttl");
        assert_eq!(ttl.granted_ttl(), 60);
        assert!(ttl.ttl() > 0 && ttl.ttl() <= 60);

        // A lease that does not exist: the KV error reaches the caller as UNKNOWN.
        let err = locks
            .lock("mylock", Some(LockOptions::new().with_lease(12345)))
            .await
            .expect_err("lock with a missing lease");
        assert_eq!(
            grpc_status(err),
            unknown("etcdserver: requested lease not found")
        );
        let err = locks.unlock("").await.expect_err("unlock of no key");
        assert_eq!(grpc_status(err), unknown("etcdserver: key is not provided"));
    });
}

/// The next Observe message as (header revision, value, mod revision).
async fn next(observe: &mut etcd_client::ObserveStream) -> (i64, String, i64) {
    let m = tokio::time::timeout(WAIT, observe.message())
        .await
        .expect("observe message in time")
        .expect("observe stream")
        .expect("observe message");
    let kv = m.kv().expect("kv");
    (
        rev(m.header()),
        String::from_utf8_lossy(kv.value()).into_owned(),
        kv.mod_revision(),
    )
}

#[test]
fn campaign_leader_proclaim_observe_resign() {
    let server = TestServer::start();
    runtime().block_on(async {
        let mut c = server.client().await;
        let (l1, l2) = (grant(&mut c).await, grant(&mut c).await);
        let mut e = c.election_client();

        let err = e.leader("myelection").await.expect_err("no leader yet");
        assert_eq!(grpc_status(err), unknown("election: no leader"));

        let won = e
            .campaign("myelection", "v1", l1)
            .await
            .expect("campaign 1");
        assert_eq!(rev(won.header()), 2);
        let leader1 = won.leader().expect("leader key").clone();
        assert_eq!(leader1.name(), b"myelection");
        assert_eq!(leader1.key(), format!("myelection/{l1:x}").as_bytes());
        assert_eq!((leader1.rev(), leader1.lease()), (2, l1));

        let current = e.leader("myelection").await.expect("leader");
        assert_eq!(rev(current.header()), 2);
        let kv = current.kv().expect("kv");
        assert_eq!((kv.key(), kv.value()), (leader1.key(), &b"v1"[..]));
        assert_eq!((kv.create_revision(), kv.lease()), (2, l1));

        let mut observe = e.observe("myelection").await.expect("observe");
        assert_eq!(next(&mut observe).await, (2, "v1".to_string(), 2));

        let proclaimed = e
            .proclaim(
                "v2",
                Some(ProclaimOptions::new().with_leader(leader1.clone())),
            )
            .await
            .expect("proclaim");
        assert_eq!(rev(proclaimed.header()), 3);
        assert_eq!(next(&mut observe).await, (3, "v2".to_string(), 3));

        let mut e2 = c.election_client();
        let mut second = tokio::spawn(async move { e2.campaign("myelection", "p2", l2).await });
        assert!(
            tokio::time::timeout(BLOCKED_CHECK, &mut second)
                .await
                .is_err(),
            "second campaign won while the first leader holds"
        );

        let stale = LeaderKey::new()
            .with_name("myelection")
            .with_key(leader1.key())
            .with_rev(99)
            .with_lease(l1);
        let err = e
            .proclaim("x", Some(ProclaimOptions::new().with_leader(stale)))
            .await
            .expect_err("proclaim with a stale revision");
        assert_eq!(grpc_status(err), unknown("election: not leader"));
        let err = e
            .proclaim("x", None)
            .await
            .expect_err("proclaim, no leader");
        assert_eq!(
            grpc_status(err),
            unknown("\"leader\" field must be provided")
        );
        let err = e.resign(None).await.expect_err("resign, no leader");
        assert_eq!(
            grpc_status(err),
            unknown("\"leader\" field must be provided")
        );

        // Campaign 2 put its key at revision 4; resigning deletes key 1 at revision 5.
        let resigned = e
            .resign(Some(ResignOptions::new().with_leader(leader1.clone())))
            .await
            .expect("resign 1");
        assert_eq!(rev(resigned.header()), 5);
        let won2 = tokio::time::timeout(WAIT, second)
            .await
            .expect("second campaign won after resign")
            .expect("join")
            .expect("campaign 2");
        assert_eq!(rev(won2.header()), 4);
        let leader2 = won2.leader().expect("leader key 2").clone();
        assert_eq!(leader2.key(), format!("myelection/{l2:x}").as_bytes());
        assert_eq!((leader2.rev(), leader2.lease()), (4, l2));
        assert_eq!(next(&mut observe).await, (5, "p2".to_string(), 4));

        // Resigning an already resigned key succeeds and changes nothing.
        let again = e
            .resign(Some(ResignOptions::new().with_leader(leader1)))
            .await
            .expect("resign 1 again");
        assert_eq!(rev(again.header()), 5);
        let current = e.leader("myelection").await.expect("leader 2");
        assert_eq!(current.kv().expect("kv").value(), b"p2");

        e.resign(Some(ResignOptions::new().with_leader(leader2)))
            .await
            .expect("resign 2");
        let err = e.leader("myelection").await.expect_err("no leader");
        assert_eq!(grpc_status(err), unknown("election: no leader"));

        // With no leader, Observe waits for the next put under the prefix.
        c.put("myelection/abc", "p3", None).await.expect("put");
        assert_eq!(next(&mut observe).await, (7, "p3".to_string(), 7));
    });
}

/// Spawns `etcdctl` with `args`, returning the child and a channel of its stdout lines.
fn spawn_etcdctl(
    server: &TestServer,
    args: &[&str],
) -> (std::process::Child, mpsc::Receiver<String>) {
    let mut child = Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .env_remove("ETCDCTL_ENDPOINTS")
        .arg(format!("--endpoints={}", server.endpoint()))
        .arg("--dial-timeout=5s")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn etcdctl");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    (child, rx)
}

fn lines(rx: &mpsc::Receiver<String>, n: usize) -> Vec<String> {
    (0..n)
        .map(|_| rx.recv_timeout(WAIT).expect("etcdctl output line in time"))
        .collect()
}

/// `name/<lease hex>` → `name/<LEASE>`.
fn mask_lease(line: &str, prefix: &str) -> String {
    match line.strip_prefix(prefix) {
        Some(hex) if !hex.is_empty() && hex.chars().all(|c| c.is_ascii_hexdigit()) => {
            format!("{prefix}<LEASE>")
        }
        _ => line.to_string(),
    }
}

fn interrupt(mut child: std::process::Child) -> i32 {
    // SAFETY-free: kill(1) with SIGINT on our own child's pid.
    Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill -INT");
    for _ in 0..100 {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return status.code().unwrap_or(-1);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    panic!("etcdctl did not exit after SIGINT");
}

#[test]
fn etcdctl_lock_and_elect() {
    let server = TestServer::start();

    // `lock NAME -- CMD` runs CMD while holding the lock, with the key in its environment.
    let out = server.etcdctl(&[
        "lock",
        "mylock",
        "--",
        "sh",
        "-c",
        "echo held $ETCD_LOCK_KEY",
    ]);
    let (code, stdout, stderr) = text(&out);
    assert_eq!(code, 0, "stderr: {stderr}");
    let masked: Vec<String> = stdout
        .lines()
        .map(|l| match l.strip_prefix("held ") {
            Some(key) => format!("held {}", mask_lease(key, "mylock/")),
            None => l.to_string(),
        })
        .collect();
    assert_eq!(masked, ["held mylock/<LEASE>"]);
    // The lock is released when the command ends: nothing stays under the prefix.
    let (_, keys, _) = text(&server.etcdctl(&["get", "mylock/", "--prefix", "--keys-only"]));
    assert_eq!(keys, "");

    // Plain `lock NAME` prints the key and holds it until interrupted.
    let (child, rx) = spawn_etcdctl(&server, &["lock", "mylock"]);
    let got: Vec<String> = lines(&rx, 1)
        .iter()
        .map(|l| mask_lease(l, "mylock/"))
        .collect();
    assert_eq!(got, ["mylock/<LEASE>"]);
    assert_eq!(interrupt(child), 0);

    // `elect NAME VALUE` campaigns, prints the leader key and value, holds until interrupted;
    // `elect -l NAME` observes.
    let (leader, rx) = spawn_etcdctl(&server, &["elect", "myelection", "p1"]);
    let got: Vec<String> = lines(&rx, 2)
        .iter()
        .map(|l| mask_lease(l, "myelection/"))
        .collect();
    assert_eq!(got, ["myelection/<LEASE>", "p1"]);
    let (listener, lrx) = spawn_etcdctl(&server, &["elect", "-l", "myelection"]);
    let got: Vec<String> = lines(&lrx, 2)
        .iter()
        .map(|l| mask_lease(l, "myelection/"))
        .collect();
    assert_eq!(got, ["myelection/<LEASE>", "p1"]);
    let (_, leader_out, _) = text(&server.etcdctl(&["get", "myelection/", "--prefix"]));
    let leader_out: Vec<String> = leader_out
        .lines()
        .map(|l| mask_lease(l, "myelection/"))
        .collect();
    assert_eq!(leader_out, ["myelection/<LEASE>", "p1"]);
    // A second candidate waits; when the leader is interrupted (it resigns) the candidate
    // wins and the listener sees it.
    let (candidate, crx) = spawn_etcdctl(&server, &["elect", "myelection", "p2"]);
    assert!(
        crx.recv_timeout(BLOCKED_CHECK).is_err(),
        "second candidate elected while the leader holds"
    );
    assert_eq!(interrupt(leader), 0);
    let got: Vec<String> = lines(&crx, 2)
        .iter()
        .map(|l| mask_lease(l, "myelection/"))
        .collect();
    assert_eq!(got, ["myelection/<LEASE>", "p2"]);
    let got: Vec<String> = lines(&lrx, 2)
        .iter()
        .map(|l| mask_lease(l, "myelection/"))
        .collect();
    assert_eq!(got, ["myelection/<LEASE>", "p2"]);
    assert_eq!(interrupt(candidate), 0);
    let _ = interrupt(listener);
}

/// A client whose every request has a 1 s deadline.
async fn short_deadline_client(server: &TestServer) -> Client {
    let options = etcd_client::ConnectOptions::new()
        .with_timeout(Duration::from_secs(1))
        .with_connect_timeout(Duration::from_secs(5));
    Client::connect([server.endpoint()], Some(options))
        .await
        .expect("connect")
}

/// Keys under `prefix`, polled until there are `want` of them (bounded by [`WAIT`]).
async fn wait_for_keys(c: &mut Client, prefix: &str, want: usize) -> Vec<String> {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let resp = c
            .get(prefix, Some(etcd_client::GetOptions::new().with_prefix()))
            .await
            .expect("get");
        let keys: Vec<String> = resp
            .kvs()
            .iter()
            .map(|kv| String::from_utf8_lossy(kv.key()).into_owned())
            .collect();
        if keys.len() == want || tokio::time::Instant::now() >= deadline {
            return keys;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[test]
fn canceled_waits_clean_up_their_keys() {
    let server = TestServer::start();
    runtime().block_on(async {
        let mut c = server.client().await;
        let (l1, l2) = (grant(&mut c).await, grant(&mut c).await);
        let short = short_deadline_client(&server).await;

        // A Lock whose deadline passes while waiting deletes its key (etcd: Unlock).
        let held = c
            .lock_client()
            .lock("mylock", Some(LockOptions::new().with_lease(l1)))
            .await
            .expect("lock 1");
        short
            .lock_client()
            .lock("mylock", Some(LockOptions::new().with_lease(l2)))
            .await
            .expect_err("lock 2 times out");
        let keys = wait_for_keys(&mut c, "mylock/", 1).await;
        assert_eq!(keys, [format!("mylock/{l1:x}")]);
        c.lock_client().unlock(held.key()).await.expect("unlock");

        // A Campaign whose deadline passes while waiting resigns (deletes its key).
        c.election_client()
            .campaign("myelection", "v1", l1)
            .await
            .expect("campaign 1");
        short
            .election_client()
            .campaign("myelection", "v2", l2)
            .await
            .expect_err("campaign 2 times out");
        let keys = wait_for_keys(&mut c, "myelection/", 1).await;
        assert_eq!(keys, [format!("myelection/{l1:x}")]);
        let leader = c
            .election_client()
            .leader("myelection")
            .await
            .expect("leader");
        assert_eq!(leader.kv().expect("kv").value(), b"v1");
    });
}

#[test]
fn lock_is_mutually_exclusive_across_clients() {
    const CLIENTS: usize = 5;
    const ROUNDS: usize = 4;
    let server = TestServer::start();
    runtime().block_on(async {
        let mut tasks = Vec::new();
        for _ in 0..CLIENTS {
            let mut c = server.client().await;
            tasks.push(tokio::spawn(async move {
                for _ in 0..ROUNDS {
                    let held = c.lock_client().lock("counter-lock", None).await?;
                    let resp = c.get("counter", None).await?;
                    let n: usize = resp
                        .kvs()
                        .first()
                        .map_or(0, |kv| kv.value_str().unwrap_or("0").parse().unwrap_or(0));
                    c.put("counter", (n + 1).to_string(), None).await?;
                    c.lock_client().unlock(held.key()).await?;
                }
                Ok::<(), etcd_client::Error>(())
            }));
        }
        for task in tasks {
            tokio::time::timeout(WAIT * 3, task)
                .await
                .expect("lockers finish in time")
                .expect("join")
                .expect("locker");
        }
        let mut c = server.client().await;
        let resp = c.get("counter", None).await.expect("get counter");
        assert_eq!(
            resp.kvs()[0].value_str().expect("utf-8"),
            (CLIENTS * ROUNDS).to_string()
        );
        assert!(wait_for_keys(&mut c, "counter-lock/", 0).await.is_empty());
    });
}

#[test]
fn an_expired_lease_releases_the_lock() {
    let server = TestServer::start();
    runtime().block_on(async {
        let mut c = server.client().await;
        let short = c.lease_grant(2, None).await.expect("grant 2 s").id();
        let long = grant(&mut c).await;
        c.lock_client()
            .lock("mylock", Some(LockOptions::new().with_lease(short)))
            .await
            .expect("lock 1");
        // Nobody keeps the 2 s lease alive: its expiry deletes the key and lock 2 gets it.
        let second = tokio::time::timeout(
            WAIT * 2,
            c.lock_client()
                .lock("mylock", Some(LockOptions::new().with_lease(long))),
        )
        .await
        .expect("lock 2 acquired after the lease expired")
        .expect("lock 2");
        assert_eq!(second.key(), format!("mylock/{long:x}").as_bytes());
        let keys = wait_for_keys(&mut c, "mylock/", 1).await;
        assert_eq!(keys, [format!("mylock/{long:x}")]);
    });
}
