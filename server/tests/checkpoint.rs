//! Restart after checkpoints: with a small `--snapshot-count` the server checkpoints the
//! MVCC store, marks the WAL and purges old segments many times; every acknowledged
//! write, the revision history kept, compaction and the member identity must survive
//! kill -9 and restart, and writes must go on after it.

mod common;

use common::{runtime, TestServer};
use etcd_client::{CompactionOptions, GetOptions};

const KEYS: usize = 120;

async fn put_range(server: &TestServer, from: usize, to: usize) -> i64 {
    let mut c = server.client().await;
    let mut revision = 0;
    for i in from..to {
        let resp = c
            .put(format!("k/{i:04}"), format!("v{i}"), None)
            .await
            .unwrap_or_else(|e| panic!("put #{i}: {e:?}\n{}", server.log_tail(2000)));
        revision = resp.header().expect("header").revision();
        assert_eq!(revision, i as i64 + 2, "one revision per put");
    }
    revision
}

async fn check(server: &TestServer, count: usize, revision: i64) {
    let mut c = server.client().await;
    let resp = c
        .get("k/", Some(GetOptions::new().with_prefix()))
        .await
        .expect("get");
    assert_eq!(resp.header().expect("header").revision(), revision);
    assert_eq!(resp.kvs().len(), count);
    for (i, kv) in resp.kvs().iter().enumerate() {
        assert_eq!(kv.key(), format!("k/{i:04}").as_bytes());
        assert_eq!(kv.value(), format!("v{i}").as_bytes());
        assert_eq!(kv.mod_revision(), i as i64 + 2);
    }
}

#[test]
fn restart_after_many_checkpoints_keeps_everything() {
    let mut server = TestServer::builder()
        .args(&["--snapshot-count", "7"])
        .start();
    let rt = runtime();
    let revision = rt.block_on(put_range(&server, 0, KEYS));
    let (member_id, cluster_id) = rt.block_on(async {
        let mut c = server.client().await;
        let s = c.status().await.expect("status");
        let h = s.header().expect("header");
        (h.member_id(), h.cluster_id())
    });

    server.kill9();
    server.restart();
    rt.block_on(check(&server, KEYS, revision));
    rt.block_on(async {
        let mut c = server.client().await;
        // History from before the checkpoints is still readable.
        let old = c
            .get("k/0000", Some(GetOptions::new().with_revision(2)))
            .await
            .expect("get at revision 2");
        assert_eq!(old.kvs()[0].value(), b"v0");
        let s = c.status().await.expect("status");
        let h = s.header().expect("header");
        assert_eq!((h.member_id(), h.cluster_id()), (member_id, cluster_id));
        c.compact(50, Some(CompactionOptions::new().with_physical()))
            .await
            .expect("compact");
    });

    // More writes, more checkpoints, a clean stop and another crash.
    let revision = rt.block_on(put_range(&server, KEYS, 2 * KEYS));
    server.kill9();
    server.restart();
    rt.block_on(check(&server, 2 * KEYS, revision));
    rt.block_on(async {
        let mut c = server.client().await;
        let err = c
            .get("k/0000", Some(GetOptions::new().with_revision(2)))
            .await
            .expect_err("compacted before the restart");
        assert!(
            err.to_string()
                .contains("etcdserver: mvcc: required revision has been compacted"),
            "{err}"
        );
    });
}
