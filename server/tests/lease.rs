//! The Lease service (etcd 3.4 `lease/lessor.go`, `etcdserver/v3_server.go`,
//! `api/v3rpc/lease.go`): grant, revoke, keep-alive, time-to-live and list through the
//! `etcd-client` crate and the real `etcdctl`, key attachment through Put and Txn, expiry
//! decided by the leader, and leases surviving a kill -9. Exact values and exact error
//! statuses; only lease IDs chosen by the server and TTL countdowns are masked.

mod common;

use std::time::{Duration, Instant};

use common::{
    code, etcdctl_rpc_error, grpc_status, normalize_etcdctl_stderr, runtime, text,
    tonic_status::Status, TestServer,
};
use etcd_client::{
    Client, Compare, CompareOp, GetOptions, LeaseGrantOptions, LeaseTimeToLiveOptions, PutOptions,
    Txn, TxnOp, WatchOptions,
};

/// etcd's `MaxLeaseTTL` in seconds.
const MAX_LEASE_TTL: i64 = 9_000_000_000;
/// Bounded wait for a lease of the minimum TTL (2 s) to expire and be revoked.
const EXPIRY_WAIT_MS: u64 = 20_000;
/// How often the expiry wait polls.
const POLL_MS: u64 = 100;

fn status(code: i32, message: &str) -> Status {
    Status {
        code,
        message: message.to_string(),
    }
}

fn not_found() -> Status {
    status(code::NOT_FOUND, "etcdserver: requested lease not found")
}

/// Keys of every key-value in the store as `key=value` (+ ` l<lease>` if attached), and
/// the header revision.
async fn all(c: &mut Client) -> (Vec<String>, i64) {
    let resp = c
        .get("\0", Some(GetOptions::new().with_from_key()))
        .await
        .expect("get all");
    let kvs = resp
        .kvs()
        .iter()
        .map(|kv| {
            let mut s = format!(
                "{}={}",
                String::from_utf8_lossy(kv.key()),
                String::from_utf8_lossy(kv.value())
            );
            if kv.lease() != 0 {
                s.push_str(&format!(" l{}", kv.lease()));
            }
            s
        })
        .collect();
    (kvs, resp.header().expect("header").revision())
}

/// (TTL, granted TTL, attached keys sorted): etcd lists keys in map order, so they are sorted.
async fn ttl(c: &mut Client, id: i64) -> (i64, i64, Vec<String>) {
    let resp = c
        .lease_time_to_live(id, Some(LeaseTimeToLiveOptions::new().with_keys()))
        .await
        .expect("time to live");
    assert_eq!(resp.id(), id);
    let mut keys: Vec<String> = resp
        .keys()
        .iter()
        .map(|k| String::from_utf8_lossy(k).into_owned())
        .collect();
    keys.sort();
    (resp.ttl(), resp.granted_ttl(), keys)
}

async fn leases(c: &mut Client) -> Vec<i64> {
    let resp = c.leases().await.expect("leases");
    resp.leases().iter().map(|l| l.id()).collect()
}

async fn grant(c: &mut Client, ttl: i64, id: i64) -> (i64, i64, i64) {
    let resp = c
        .lease_grant(ttl, Some(LeaseGrantOptions::new().with_id(id)))
        .await
        .expect("lease grant");
    (
        resp.id(),
        resp.ttl(),
        resp.header().expect("header").revision(),
    )
}

async fn grant_err(c: &mut Client, ttl: i64, id: i64) -> Status {
    grpc_status(
        c.lease_grant(ttl, Some(LeaseGrantOptions::new().with_id(id)))
            .await
            .expect_err("lease grant must fail"),
    )
}

#[test]
fn grant_revoke_list_and_errors() {
    let server = TestServer::start();
    runtime().block_on(async {
        let mut c = server.client().await;
        // A generated ID is positive; the revision does not move.
        let resp = c.lease_grant(600, None).await.expect("lease grant");
        let a = resp.id();
        assert!(a > 0, "generated lease id {a}");
        assert_eq!(
            (resp.ttl(), resp.header().expect("header").revision()),
            (600, 1)
        );
        let b = c.lease_grant(600, None).await.expect("lease grant").id();
        assert!(b > 0 && b != a, "second generated id {b} (first {a})");
        assert_eq!(grant(&mut c, 1000, 1000).await, (1000, 1000, 1));
        assert_eq!(
            grant_err(&mut c, 5, 1000).await,
            status(
                code::FAILED_PRECONDITION,
                "etcdserver: lease already exists"
            )
        );
        assert_eq!(
            grant_err(&mut c, MAX_LEASE_TTL + 1, 7).await,
            status(code::OUT_OF_RANGE, "etcdserver: too large lease TTL")
        );
        assert_eq!(grant(&mut c, MAX_LEASE_TTL, 9).await, (9, MAX_LEASE_TTL, 1));
        // Leases, soonest expiry first.
        assert_eq!(leases(&mut c).await, vec![a, b, 1000, 9]);

        let (t, granted, keys) = ttl(&mut c, 1000).await;
        assert!((990..=1000).contains(&t), "remaining TTL {t}");
        assert_eq!((granted, keys), (1000, vec![]));

        let resp = c.lease_revoke(1000).await.expect("revoke");
        assert_eq!(resp.header().expect("header").revision(), 1);
        assert_eq!(
            grpc_status(c.lease_revoke(1000).await.expect_err("revoke twice")),
            not_found()
        );
        assert_eq!(
            grpc_status(c.lease_revoke(0).await.expect_err("revoke 0")),
            not_found()
        );
        // TimeToLive of a missing lease is TTL -1, not an error.
        assert_eq!(ttl(&mut c, 1000).await, (-1, 0, vec![]));
        assert_eq!(leases(&mut c).await, vec![a, b, 9]);
        for id in [a, b, 9] {
            c.lease_revoke(id).await.expect("revoke");
        }
        assert_eq!(leases(&mut c).await, Vec::<i64>::new());
    });
}

#[test]
fn ttl_below_minimum_is_raised_to_it() {
    let server = TestServer::start();
    runtime().block_on(async {
        let mut c = server.client().await;
        // (3 * 10 election ticks) / 2 * 100 ms heartbeat = 1.5 s, rounded up.
        assert_eq!(grant(&mut c, 1, 11).await, (11, 2, 1));
        assert_eq!(grant(&mut c, 0, 12).await, (12, 2, 1));
        assert_eq!(grant(&mut c, -5, 13).await, (13, 2, 1));
        assert_eq!(grant(&mut c, 3, 14).await, (14, 3, 1));
    });
}

#[test]
fn keys_attach_move_detach_and_revoke_in_one_revision() {
    let server = TestServer::start();
    runtime().block_on(async {
        let mut c = server.client().await;
        let (l1, l2) = (101, 102);
        grant(&mut c, 600, l1).await;
        grant(&mut c, 600, l2).await;
        let with = |l: i64| Some(PutOptions::new().with_lease(l));
        c.put("k1", "v", with(l1)).await.expect("put"); // rev 2
        c.put("k2", "v", with(l1)).await.expect("put"); // rev 3
        c.put("k3", "v", with(l2)).await.expect("put"); // rev 4
        assert_eq!(ttl(&mut c, l1).await.2, vec!["k1", "k2"]);
        assert_eq!(ttl(&mut c, l2).await.2, vec!["k3"]);

        c.put("k2", "w", with(l2)).await.expect("move k2"); // rev 5
        c.put("k1", "w", None).await.expect("detach k1"); // rev 6
        assert_eq!(ttl(&mut c, l1).await.2, Vec::<String>::new());
        assert_eq!(ttl(&mut c, l2).await.2, vec!["k2", "k3"]);

        c.put("k4", "v", with(l2)).await.expect("put"); // rev 7
        c.delete("k4", None).await.expect("delete"); // rev 8
        assert_eq!(ttl(&mut c, l2).await.2, vec!["k2", "k3"]);

        // ignore_lease keeps the attachment; a Txn put attaches.
        c.put("k3", "x", Some(PutOptions::new().with_ignore_lease()))
            .await
            .expect("put ignore_lease"); // rev 9
        let txn = Txn::new()
            .when([Compare::lease("k3", CompareOp::Equal, l2)])
            .and_then([TxnOp::put("k5", "v", with(l1))]);
        assert!(c.txn(txn).await.expect("txn").succeeded()); // rev 10
        assert_eq!(ttl(&mut c, l1).await.2, vec!["k5"]);
        assert_eq!(ttl(&mut c, l2).await.2, vec!["k2", "k3"]);
        let txn = Txn::new().and_then([TxnOp::put("k6", "v", with(999))]);
        assert_eq!(
            grpc_status(c.txn(txn).await.expect_err("txn with unknown lease")),
            not_found()
        );
        assert_eq!(
            grpc_status(c.put("k6", "v", with(999)).await.expect_err("put")),
            not_found()
        );

        // Revoking l2 deletes k2 and k3 in one revision (11).
        let resp = c.lease_revoke(l2).await.expect("revoke");
        assert_eq!(resp.header().expect("header").revision(), 11);
        assert_eq!(
            all(&mut c).await,
            (vec!["k1=w".to_string(), format!("k5=v l{l1}")], 11)
        );
        // A key's lease that was revoked is no lease any more.
        assert_eq!(
            grpc_status(c.put("k2", "v", with(l2)).await.expect_err("put")),
            not_found()
        );
    });
}

#[test]
fn keep_alive_renews_and_reports_missing_leases_as_ttl_zero() {
    let server = TestServer::start();
    runtime().block_on(async {
        let mut c = server.client().await;
        grant(&mut c, 600, 42).await;
        let (mut keeper, mut stream) = c.lease_keep_alive(42).await.expect("keep alive");
        keeper.keep_alive().await.expect("send");
        let resp = stream.message().await.expect("recv").expect("a response");
        assert_eq!((resp.id(), resp.ttl()), (42, 600));
        assert_eq!(resp.header().expect("header").revision(), 1);
        c.lease_revoke(42).await.expect("revoke");
        keeper.keep_alive().await.expect("send");
        let resp = stream.message().await.expect("recv").expect("a response");
        assert_eq!((resp.id(), resp.ttl()), (42, 0));

        // etcd-client's first exchange sees TTL 0 and reports the lease missing.
        let err = c.lease_keep_alive(12345).await.expect_err("keep alive");
        assert!(
            matches!(&err, etcd_client::Error::LeaseKeepAliveError(m) if m == "lease not found"),
            "{err:?}"
        );
    });
}

#[test]
fn expiry_revokes_the_lease_and_deletes_its_keys_in_one_revision() {
    let server = TestServer::start();
    runtime().block_on(async {
        let mut c = server.client().await;
        assert_eq!(grant(&mut c, 2, 5).await, (5, 2, 1));
        let with = Some(PutOptions::new().with_lease(5));
        c.put("a", "1", with.clone()).await.expect("put"); // rev 2
        c.put("b", "2", with).await.expect("put"); // rev 3
        c.put("c", "3", None).await.expect("put"); // rev 4
        let deadline = Instant::now() + Duration::from_millis(EXPIRY_WAIT_MS);
        while leases(&mut c).await == vec![5] {
            assert!(Instant::now() < deadline, "lease 5 did not expire");
            tokio::time::sleep(Duration::from_millis(POLL_MS)).await;
        }
        assert_eq!(all(&mut c).await, (vec!["c=3".to_string()], 5));
        assert_eq!(ttl(&mut c, 5).await, (-1, 0, vec![]));
        // History before the revoke still holds the attached keys.
        let resp = c
            .get("a", Some(GetOptions::new().with_revision(4)))
            .await
            .expect("get at 4");
        assert_eq!(resp.kvs().len(), 1);
    });
}

/// Leases and their attachments survive kill -9, both from the checkpoint
/// (`--snapshot-count 3`) and from the WAL entries after it.
#[test]
fn leases_survive_kill9_and_restart() {
    let mut server = TestServer::builder()
        .args(&["--snapshot-count", "3"])
        .start();
    runtime().block_on(async {
        let mut c = server.client().await;
        grant(&mut c, 600, 77).await;
        grant(&mut c, 600, 78).await;
        grant(&mut c, 600, 79).await;
        c.put("k77", "v", Some(PutOptions::new().with_lease(77)))
            .await
            .expect("put");
        c.put("k79", "v", Some(PutOptions::new().with_lease(79)))
            .await
            .expect("put");
        for i in 0..5 {
            c.put(format!("x{i}"), "v", None).await.expect("put");
        }
        c.lease_revoke(78).await.expect("revoke");
        grant(&mut c, 900, 80).await;
        c.put("k80", "v", Some(PutOptions::new().with_lease(80)))
            .await
            .expect("put");
    });
    server.kill9();
    server.restart();
    runtime().block_on(async {
        let mut c = server.client().await;
        let mut ids = leases(&mut c).await;
        ids.sort();
        assert_eq!(ids, vec![77, 79, 80]);
        let (t, granted, keys) = ttl(&mut c, 77).await;
        assert!((590..=601).contains(&t), "remaining TTL {t}");
        assert_eq!((granted, keys), (600, vec!["k77".to_string()]));
        assert_eq!(ttl(&mut c, 80).await.1, 900);
        assert_eq!(ttl(&mut c, 80).await.2, vec!["k80"]);
        let resp = c.lease_revoke(79).await.expect("revoke");
        // 1..=8 puts, revoke 78 without keys, put k80 = 9.
        assert_eq!(resp.header().expect("header").revision(), 10);
        let (kvs, _) = all(&mut c).await;
        assert!(!kvs.iter().any(|k| k.starts_with("k79")), "{kvs:?}");
    });
}

// ---------------------------------------------------------------- etcdctl

/// Masks the 16-hex-digit lease IDs and the remaining TTL countdown.
fn mask(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while !rest.is_empty() {
        let hex = rest
            .find(|c: char| !c.is_ascii_hexdigit())
            .unwrap_or(rest.len());
        if hex == 16 {
            out.push_str("<ID>");
            rest = &rest[16..];
            continue;
        }
        let skip = hex.max(rest.chars().next().map_or(1, char::len_utf8));
        out.push_str(&rest[..skip]);
        rest = &rest[skip..];
    }
    common::mask_numbers_after(&out, &["remaining("]).replace("<remaining(>", "<N>")
}

fn etcdctl_ok(server: &TestServer, args: &[&str]) -> String {
    let (code, stdout, stderr) = text(&server.etcdctl(args));
    assert_eq!(
        (code, stderr.as_str()),
        (0, ""),
        "etcdctl {args:?} failed; stdout {stdout:?}"
    );
    stdout
}

#[test]
fn etcdctl_lease_session() {
    let server = TestServer::start();
    let out = etcdctl_ok(&server, &["lease", "grant", "600"]);
    assert_eq!(mask(&out), "lease <ID> granted with TTL(600s)\n");
    let id = out.split(' ').nth(1).expect("id").to_string();
    assert_eq!(
        etcdctl_ok(&server, &["put", &format!("--lease={id}"), "k", "v"]),
        "OK\n"
    );
    assert_eq!(
        etcdctl_ok(&server, &["lease", "keep-alive", "--once", &id]),
        format!("lease {id} keepalived with TTL(600)\n")
    );
    assert_eq!(
        mask(&etcdctl_ok(&server, &["lease", "timetolive", &id])),
        "lease <ID> granted with TTL(600s), remaining(<N>s)\n"
    );
    assert_eq!(
        mask(&etcdctl_ok(
            &server,
            &["lease", "timetolive", "--keys", &id]
        )),
        "lease <ID> granted with TTL(600s), remaining(<N>s), attached keys([k])\n"
    );
    assert_eq!(
        etcdctl_ok(&server, &["lease", "list"]),
        format!("found 1 leases\n{id}\n")
    );
    assert_eq!(
        etcdctl_ok(&server, &["lease", "revoke", &id]),
        format!("lease {id} revoked\n")
    );
    assert_eq!(
        etcdctl_ok(&server, &["lease", "timetolive", &id]),
        format!("lease {id} already expired\n")
    );
    assert_eq!(etcdctl_ok(&server, &["get", "k"]), "");
    assert_eq!(etcdctl_ok(&server, &["lease", "list"]), "found 0 leases\n");

    let (code, stdout, stderr) = text(&server.etcdctl(&["lease", "revoke", &id]));
    assert_eq!((code, stdout.as_str()), (1, ""));
    let expected = etcdctl_rpc_error(
        &server.endpoint(),
        "NotFound",
        "etcdserver: requested lease not found",
    )
    .replace(
        "Error: etcdserver",
        "Error: failed to revoke lease (etcdserver",
    )
    .replace("not found\n", "not found)\n");
    assert_eq!(normalize_etcdctl_stderr(&stderr), expected);
    let (code, stdout, stderr) = text(&server.etcdctl(&["lease", "keep-alive", "--once", &id]));
    assert_eq!(
        (
            code,
            stdout.as_str(),
            normalize_etcdctl_stderr(&stderr).as_str()
        ),
        (2, "", "Error: etcdserver: requested lease not found\n")
    );
    let (code, stdout, stderr) = text(&server.etcdctl(&["put", "--lease=1234abcd", "k", "v"]));
    assert_eq!((code, stdout.as_str()), (1, ""));
    assert_eq!(
        normalize_etcdctl_stderr(&stderr),
        etcdctl_rpc_error(
            &server.endpoint(),
            "NotFound",
            "etcdserver: requested lease not found"
        )
    );
}

/// Expiry deletes reach watchers: one DELETE per attached key, all at the revoke's
/// revision, with prev_kv naming the lease.
#[test]
fn watchers_see_the_deletes_of_an_expired_lease() {
    let server = TestServer::start();
    runtime().block_on(async {
        let mut c = server.client().await;
        let (_watcher, mut stream) = c
            .watch(
                "w/",
                Some(WatchOptions::new().with_prefix().with_prev_key()),
            )
            .await
            .expect("watch");
        assert_eq!(grant(&mut c, 2, 6).await, (6, 2, 1));
        let with = Some(PutOptions::new().with_lease(6));
        c.put("w/a", "1", with.clone()).await.expect("put"); // rev 2
        c.put("w/b", "2", with).await.expect("put"); // rev 3
        let mut seen = Vec::new();
        let wait = tokio::time::timeout(Duration::from_millis(EXPIRY_WAIT_MS), async {
            while seen.len() < 4 {
                let resp = stream.message().await.expect("watch recv").expect("open");
                for e in resp.events() {
                    let kv = e.kv().expect("kv");
                    seen.push(format!(
                        "{:?} {} m{} prev-lease {}",
                        e.event_type(),
                        String::from_utf8_lossy(kv.key()),
                        kv.mod_revision(),
                        e.prev_kv().map_or(0, |p| p.lease())
                    ));
                }
            }
        })
        .await;
        assert!(wait.is_ok(), "events seen before the timeout: {seen:?}");
        assert_eq!(
            seen,
            [
                "Put w/a m2 prev-lease 0",
                "Put w/b m3 prev-lease 0",
                "Delete w/a m4 prev-lease 6",
                "Delete w/b m4 prev-lease 6",
            ]
        );
    });
}

/// Keep-alives every [`KEEP_ALIVE_EVERY_MS`] hold a 3 s lease (and its key) well past its
/// TTL; once they stop, it expires.
#[test]
fn keep_alive_holds_a_lease_past_its_ttl() {
    const KEEP_ALIVE_EVERY_MS: u64 = 300;
    const KEEP_ALIVES: usize = 15;
    let server = TestServer::start();
    runtime().block_on(async {
        let mut c = server.client().await;
        assert_eq!(grant(&mut c, 3, 50).await, (50, 3, 1));
        c.put("held", "v", Some(PutOptions::new().with_lease(50)))
            .await
            .expect("put");
        let (mut keeper, mut stream) = c.lease_keep_alive(50).await.expect("keep alive");
        for _ in 0..KEEP_ALIVES {
            tokio::time::sleep(Duration::from_millis(KEEP_ALIVE_EVERY_MS)).await;
            keeper.keep_alive().await.expect("send");
            let resp = stream.message().await.expect("recv").expect("a response");
            assert_eq!((resp.id(), resp.ttl()), (50, 3));
        }
        assert_eq!(ttl(&mut c, 50).await.2, vec!["held"]);
        drop((keeper, stream));
        let deadline = Instant::now() + Duration::from_millis(EXPIRY_WAIT_MS);
        while leases(&mut c).await == vec![50] {
            assert!(Instant::now() < deadline, "lease 50 did not expire");
            tokio::time::sleep(Duration::from_millis(POLL_MS)).await;
        }
        assert_eq!(all(&mut c).await, (vec![], 3));
    });
}

/// `etcdctl lease keep-alive` (not --once) prints a line per keep-alive and, once the
/// lease is revoked, "expired or revoked." and exits 0.
#[test]
fn etcdctl_keep_alive_until_revoked() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    let server = TestServer::start();
    let out = etcdctl_ok(&server, &["lease", "grant", "3"]);
    let id = out.split(' ').nth(1).expect("id").to_string();
    let mut child = Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .env_remove("ETCDCTL_ENDPOINTS")
        .arg(format!("--endpoints={}", server.endpoint()))
        .args(["lease", "keep-alive", &id])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn etcdctl");
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
    let mut first = String::new();
    stdout.read_line(&mut first).expect("first line");
    assert_eq!(first, format!("lease {id} keepalived with TTL(3)\n"));
    assert_eq!(
        etcdctl_ok(&server, &["lease", "revoke", &id]),
        format!("lease {id} revoked\n")
    );
    // The client keeps alive every TTL/3 s, so it learns of the revoke within a second or
    // two; a bounded wait guards against a hang.
    let reader = std::thread::spawn(move || {
        let mut rest = String::new();
        std::io::Read::read_to_string(&mut stdout, &mut rest).expect("read");
        rest
    });
    let deadline = Instant::now() + Duration::from_millis(EXPIRY_WAIT_MS);
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("etcdctl lease keep-alive did not end after the revoke");
        }
        std::thread::sleep(Duration::from_millis(POLL_MS));
    };
    let rest = reader.join().expect("reader");
    assert!(status.success(), "{status:?}");
    let lines: Vec<&str> = rest.lines().collect();
    let (last, earlier) = lines.split_last().expect("a last line");
    assert_eq!(*last, format!("lease {id} expired or revoked."));
    for line in earlier {
        assert_eq!(*line, format!("lease {id} keepalived with TTL(3)"));
    }
}
