//! The quota drill of issue 10, through the real etcdctl: fill a member past a small
//! `--quota-backend-bytes` → the NOSPACE alarm is raised, writes are refused with etcd's
//! error, reads and deletes go on, `/health` and `endpoint status` report the alarm →
//! compact, defrag (the reported size shrinks), disarm → writes are accepted again. (The
//! alarm's persistence in checkpoints is covered by `cluster::storage`'s unit test.)
//! Passes against `CAIRN_TEST_TARGET=etcd` too.

mod common;

use common::{grpc_status, http_get, runtime, text, TestServer};
use serde_json::Value;

/// The quota the drill fills (8 MiB).
const QUOTA_BYTES: u64 = 8 << 20;
/// Bytes of each value written to fill it.
const VALUE_BYTES: usize = 256 << 10;
/// Puts the fill may take before the test gives up (2.5 × the quota).
const FILL_PUTS_MAX: usize = 80;

const NO_SPACE: &str = "etcdserver: mvcc: database space exceeded";

fn ok(server: &TestServer, args: &[&str]) -> String {
    let (code, stdout, stderr) = text(&server.etcdctl(args));
    assert_eq!(code, 0, "etcdctl {args:?}: {stdout:?} {stderr:?}");
    stdout
}

fn status(server: &TestServer) -> Value {
    let out = ok(server, &["endpoint", "status", "-w", "json"]);
    serde_json::from_str::<Value>(&out).unwrap()[0]["Status"].clone()
}

#[test]
fn quota_drill_nospace_then_compact_defrag_disarm() {
    let quota = QUOTA_BYTES.to_string();
    let server = TestServer::builder()
        .args(&["--quota-backend-bytes", &quota])
        .start();
    // Fill with overwrites of one key until the quota refuses a put.
    let value = vec![b'x'; VALUE_BYTES];
    let refused = runtime().block_on(async {
        let mut client = server.client().await;
        for _ in 0..FILL_PUTS_MAX {
            if let Err(e) = client.put("fill", value.clone(), None).await {
                return Some(grpc_status(e));
            }
        }
        None
    });
    let refused = refused.expect("the quota refused a put");
    assert_eq!(refused.code, common::code::RESOURCE_EXHAUSTED);
    assert_eq!(refused.message, NO_SPACE);

    // The alarm is raised, listed, reported; writes fail, reads and deletes go on.
    let member_id = status(&server)["header"]["member_id"].as_u64().unwrap();
    let alarm = format!("memberID:{member_id} alarm:NOSPACE ");
    assert_eq!(ok(&server, &["alarm", "list"]), format!("{alarm}\n"));
    let (code, _, stderr) = text(&server.etcdctl(&["put", "small", "v"]));
    assert_eq!(code, 1);
    assert!(stderr.contains(&format!("Error: {NO_SPACE}")), "{stderr}");
    let (code, _, stderr) = text(&server.etcdctl(&["lease", "grant", "60"]));
    assert_eq!(code, 1);
    assert!(stderr.contains(NO_SPACE), "{stderr}");
    assert_eq!(ok(&server, &["get", "fill", "--keys-only"]), "fill\n\n");
    ok(&server, &["del", "nothing"]);
    let st = status(&server);
    assert_eq!(st["errors"][0], alarm.as_str(), "{st}");
    let health = http_get(server.client_port(), "/health").unwrap();
    assert_eq!(health.status, 503);
    let body: Value = serde_json::from_slice(&health.body).unwrap();
    assert_eq!(body["health"], "false");
    if server.target() == common::Target::Cairn {
        assert_eq!(body["reason"], "ALARM NOSPACE");
    }

    // Compact, defrag: the reported size shrinks below the quota.
    let before = status(&server)["dbSize"].as_u64().unwrap();
    let revision = status(&server)["header"]["revision"].as_i64().unwrap();
    ok(&server, &["compact", &revision.to_string()]);
    let out = ok(&server, &["defrag"]);
    assert!(
        out.starts_with("Finished defragmenting etcd member["),
        "{out}"
    );
    let after = status(&server)["dbSize"].as_u64().unwrap();
    assert!(
        after < before && after < QUOTA_BYTES / 2,
        "dbSize {before} → {after} after compact + defrag"
    );
    // Still refused until the alarm is disarmed.
    let (code, _, _) = text(&server.etcdctl(&["put", "small", "v"]));
    assert_eq!(code, 1);
    assert_eq!(ok(&server, &["alarm", "disarm"]), format!("{alarm}\n"));
    assert_eq!(ok(&server, &["alarm", "list"]), "");
    assert_eq!(ok(&server, &["put", "small", "v"]), "OK\n");
    assert!(status(&server)["errors"]
        .as_array()
        .is_none_or(|e| e.is_empty()));
    assert_eq!(
        http_get(server.client_port(), "/health").unwrap().status,
        200
    );
}
