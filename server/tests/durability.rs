//! Durability: a write acknowledged to a client survives kill -9 and restart; SIGTERM
//! shuts down cleanly and keeps the data (etcd pkg/osutil/interrupt_unix.go).

mod common;

use common::{runtime, TestServer};
use etcd_client::{GetOptions, Txn, TxnOp};
use std::os::unix::process::ExitStatusExt;

const KEYS_COUNT: usize = 200;

/// Writes `KEYS_COUNT` keys (puts and 2-key txns) and returns the final revision.
async fn write_keys(server: &TestServer) -> i64 {
    let mut c = server.client().await;
    let mut revision = 0;
    for i in 0..KEYS_COUNT {
        let key = format!("key/{i:04}");
        let value = format!("value-{i}");
        let result = if i % 2 == 0 {
            c.put(key, value, None)
                .await
                .map(|resp| resp.header().expect("header").revision())
        } else {
            let txn = Txn::new().and_then([
                TxnOp::put(key, value.clone(), None),
                TxnOp::put(format!("txn/{i:04}"), value, None),
            ]);
            c.txn(txn)
                .await
                .map(|resp| resp.header().expect("header").revision())
        };
        revision = result.unwrap_or_else(|e| {
            panic!(
                "write #{i} ({}) failed: {e:?}; server output (tail):\n{}",
                if i % 2 == 0 { "put" } else { "txn" },
                server.log_tail(4000)
            )
        });
        // One revision per request, starting at 2.
        assert_eq!(revision, i as i64 + 2);
    }
    revision
}

/// Asserts every key written by `write_keys` is there with its value and revisions.
async fn check_keys(server: &TestServer, revision: i64) {
    let mut c = server.client().await;
    let resp = c
        .get("key/", Some(GetOptions::new().with_prefix()))
        .await
        .expect("get");
    assert_eq!(resp.header().expect("header").revision(), revision);
    assert_eq!(resp.kvs().len(), KEYS_COUNT);
    for (i, kv) in resp.kvs().iter().enumerate() {
        assert_eq!(kv.key(), format!("key/{i:04}").as_bytes());
        assert_eq!(kv.value(), format!("value-{i}").as_bytes());
        assert_eq!(kv.create_revision(), i as i64 + 2);
        assert_eq!(kv.mod_revision(), i as i64 + 2);
        assert_eq!(kv.version(), 1);
    }
    let resp = c
        .get(
            "txn/",
            Some(GetOptions::new().with_prefix().with_count_only()),
        )
        .await
        .expect("get");
    assert_eq!(resp.count(), (KEYS_COUNT / 2) as i64);
    // History is kept too.
    let resp = c
        .get("key/0000", Some(GetOptions::new().with_revision(2)))
        .await
        .expect("get at revision 2");
    assert_eq!(resp.kvs().len(), 1);
}

#[test]
fn acknowledged_writes_survive_kill9() {
    let mut server = TestServer::start();
    let rt = runtime();
    let revision = rt.block_on(write_keys(&server));
    server.kill9();
    server.restart();
    rt.block_on(check_keys(&server, revision));
    // The restarted server keeps accepting writes at the next revision.
    rt.block_on(async {
        let mut c = server.client().await;
        let resp = c.put("after", "restart", None).await.expect("put");
        assert_eq!(resp.header().expect("header").revision(), revision + 1);
    });
    // And survives a second crash.
    server.kill9();
    server.restart();
    rt.block_on(async {
        let mut c = server.client().await;
        let resp = c.get("after", None).await.expect("get");
        assert_eq!(resp.kvs().len(), 1);
        assert_eq!(resp.kvs()[0].value(), b"restart");
        assert_eq!(resp.header().expect("header").revision(), revision + 1);
    });
}

#[test]
fn sigterm_exits_cleanly_and_keeps_data() {
    let mut server = TestServer::start();
    let rt = runtime();
    let revision = rt.block_on(write_keys(&server));
    let status = server.sigterm();
    // etcd 3.4 runs its shutdown handlers and then re-raises SIGTERM with the default
    // action (pkg/osutil/interrupt_unix.go), so it dies "by signal 15"; exit code 0 is
    // the other clean outcome. Anything else (a crash, SIGKILL, code != 0) is not.
    let clean = status.code() == Some(0) || status.signal() == Some(libc::SIGTERM);
    assert!(
        clean,
        "exit after SIGTERM: {status}; output:\n{}",
        server.log()
    );
    server.restart();
    rt.block_on(check_keys(&server, revision));
}
