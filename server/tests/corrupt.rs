//! The periodic corruption check (`--experimental-corrupt-check-time`, etcd 3.4
//! `etcdserver/corrupt.go`): a follower whose store holds a revision the cluster never
//! wrote is caught by the leader's next pass, which raises the CORRUPT alarm; from then on
//! writes fail with `etcdserver: corrupt cluster` (reads go on, as etcd's) and `/health`
//! reports it, until the alarm is disarmed.

mod common;

use common::cluster::{wait_until, Cluster};
use common::{http_get, text};

/// The check's interval in these tests.
const CHECK_INTERVAL: &str = "1s";
/// How long the alarm may take: a few passes, each asking two peers.
const ALARM_TIMEOUT_MS: u64 = 30_000;

#[test]
fn a_follower_ahead_of_the_leader_raises_the_corrupt_alarm() {
    if common::skip_unless_cairn("damages a follower's store through Cairn's engine") {
        return;
    }
    let mut cluster = Cluster::builder()
        .size(3)
        .args(&["--experimental-corrupt-check-time", CHECK_INTERVAL])
        .start();
    let leader = cluster.wait_leader();
    let endpoint = cluster.endpoint(leader);
    for i in 0..10 {
        let out = common::etcdctl_at(&endpoint, &["put", &format!("k{i}"), "v"], "");
        assert_eq!(text(&out).0, 0);
    }
    assert!(
        cluster
            .member(leader)
            .log()
            .contains("enabled corruption checking"),
        "etcd's start-up line"
    );

    // A revision no one wrote, in a follower's store, with its applied index unchanged.
    let follower = cluster.followers(leader)[0];
    cluster.kill9(follower);
    {
        let dir = cluster
            .member(follower)
            .data_dir()
            .join("member")
            .join("kv");
        let mut mvcc = engine::Mvcc::open(&dir, engine::MvccOptions::default()).unwrap();
        let (applied, meta) = mvcc.checkpoint_state();
        let mut w = mvcc.write();
        w.put(b"injected", b"never written by a client", 0);
        w.end();
        mvcc.checkpoint(applied, &meta).unwrap();
    }
    cluster.spawn(follower);

    let alarm = wait_until("the CORRUPT alarm", ALARM_TIMEOUT_MS, || {
        let out = common::etcdctl_at(&endpoint, &["alarm", "list"], "");
        let (_, stdout, stderr) = text(&out);
        if stdout.contains("alarm:CORRUPT") {
            Ok(stdout)
        } else {
            Err(format!("alarm list: {stdout:?} {stderr:?}"))
        }
    });
    // etcdctl prints the protobuf text form, which leaves out the zero member ID.
    assert_eq!(alarm, "alarm:CORRUPT \n");
    // The leader names the check that failed: the follower's revision is ahead, or its
    // hash at the leader's revision differs.
    let log = cluster.member(leader).log();
    assert!(
        log.contains("revision from follower must be less than or equal to leader's")
            || log.contains("same compact revision then hashes must match"),
        "{log}"
    );
    let (code, _, stderr) = text(&common::etcdctl_at(&endpoint, &["put", "k", "v"], ""));
    assert_eq!(code, 1);
    assert!(stderr.contains("etcdserver: corrupt cluster"), "{stderr}");
    // Reads do not go through the applier (etcd's Range uses applyV3Base): they go on.
    let (code, stdout, _) = text(&common::etcdctl_at(&endpoint, &["get", "k0"], ""));
    assert_eq!((code, stdout.as_str()), (0, "k0\nv\n"));
    let health = http_get(cluster.member(leader).client_port(), "/health").unwrap();
    assert_eq!(health.status, 503);
}
