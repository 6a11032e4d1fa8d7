//! Lease checkpointing (`--experimental-enable-lease-checkpoint`, etcd 3.6): the leader
//! records every long lease's remaining TTL through Raft, so that after a restart (or a
//! leader change) the lease counts down from there instead of starting its whole TTL
//! again. Without the flag the TTL starts over, as etcd 3.4's does.

mod common;

use common::cluster::wait_until;
use common::{text, TestServer};

/// Granted TTL of the lease in these tests, seconds.
const TTL_SECONDS: i64 = 60;
/// The checkpoint interval the tests run with (etcd's is 5 minutes).
const INTERVAL_MS: &str = "3000";

fn grant(server: &TestServer) -> String {
    let (code, stdout, stderr) =
        text(&server.etcdctl(&["lease", "grant", &TTL_SECONDS.to_string()]));
    assert_eq!(code, 0, "{stderr}");
    stdout
        .split_whitespace()
        .nth(1)
        .expect("lease id")
        .to_string()
}

/// `lease timetolive` → the remaining TTL in seconds.
fn remaining(server: &TestServer, id: &str) -> i64 {
    let (code, stdout, stderr) = text(&server.etcdctl(&["lease", "timetolive", id, "-w", "json"]));
    assert_eq!(code, 0, "{stderr}");
    let json: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    json["ttl"].as_i64().expect("ttl")
}

fn start(checkpoint: bool) -> TestServer {
    let mut args = vec!["--log-level", "debug"];
    if checkpoint {
        args.push("--experimental-enable-lease-checkpoint");
    }
    TestServer::builder()
        .args(&args)
        .env("CAIRN_LEASE_CHECKPOINT_INTERVAL_MS", INTERVAL_MS)
        .start()
}

#[test]
fn a_checkpointed_lease_keeps_counting_down_across_a_restart() {
    if common::skip_unless_cairn("shortens the checkpoint interval with a Cairn variable") {
        return;
    }
    let mut server = start(true);
    let id = grant(&server);
    wait_until("a lease checkpoint", 30_000, || {
        let log = server.log();
        let applied = log
            .lines()
            .any(|l| l.contains("applied lease checkpoint") && l.contains("\"leases\":1"));
        applied.then_some(()).ok_or_else(|| "not yet".to_string())
    });
    server.restart();
    let ttl = remaining(&server, &id);
    // The checkpoint came at least 3 s after the grant; the restart adds one election
    // timeout (etcd's promotion), so a lease counted from its checkpoint is at most 58.
    assert!(ttl > 0 && ttl <= TTL_SECONDS - 2, "ttl {ttl} after restart");
}

#[test]
fn without_checkpoints_a_restart_starts_the_ttl_over() {
    if common::skip_unless_cairn("the counterpart of the checkpoint test") {
        return;
    }
    let mut server = start(false);
    let id = grant(&server);
    // As long as the other test waits for its checkpoint: the lease has aged as much.
    wait_until(
        "the lease to age past a checkpoint interval",
        30_000,
        || {
            (remaining(&server, &id) <= TTL_SECONDS - 3)
                .then_some(())
                .ok_or_else(|| "not yet".to_string())
        },
    );
    server.restart();
    let ttl = remaining(&server, &id);
    assert!(
        ttl >= TTL_SECONDS - 1,
        "ttl {ttl} after restart: started over"
    );
}
