//! The KV, Maintenance and Lease-attachment behaviour of the gRPC API through the
//! `etcd-client` crate, with exact values and exact error statuses (etcd
//! api/v3rpc/rpctypes/error.go, etcdserver/apply.go, mvcc/kvstore_txn.go).

mod common;

use common::{code, grpc_status, runtime, tonic_status::Status, TestServer};
use etcd_client::{
    Client, CompactionOptions, Compare, CompareOp, DeleteOptions, GetOptions, GetResponse,
    KeyValue, PutOptions, SortOrder, SortTarget, Txn, TxnOp, TxnOpResponse, TxnResponse,
};

const COMPACTED: &str = "etcdserver: mvcc: required revision has been compacted";
const FUTURE: &str = "etcdserver: mvcc: required revision is a future revision";

/// One key-value as `key=value c<create> m<mod> v<version>` (+ ` l<lease>` if attached).
fn kv(kv: &KeyValue) -> String {
    let mut s = format!(
        "{}={} c{} m{} v{}",
        String::from_utf8_lossy(kv.key()),
        String::from_utf8_lossy(kv.value()),
        kv.create_revision(),
        kv.mod_revision(),
        kv.version()
    );
    if kv.lease() != 0 {
        s.push_str(&format!(" l{}", kv.lease()));
    }
    s
}

/// A range response as (kvs, count, more, header revision).
fn range(resp: &GetResponse) -> (Vec<String>, i64, bool, i64) {
    (
        resp.kvs().iter().map(kv).collect(),
        resp.count(),
        resp.more(),
        resp.header().expect("header").revision(),
    )
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

fn status(code: i32, message: &str) -> Status {
    Status {
        code,
        message: message.to_string(),
    }
}

async fn get(client: &mut Client, key: &str, options: GetOptions) -> (Vec<String>, i64, bool, i64) {
    range(&client.get(key, Some(options)).await.expect("get"))
}

async fn get_err(client: &mut Client, key: &str, options: GetOptions) -> Status {
    grpc_status(
        client
            .get(key, Some(options))
            .await
            .expect_err("get must fail"),
    )
}

/// Puts the fixture; afterwards the revision is 8 and
///
/// | key | value | create | mod | version |
/// |-----|-------|--------|-----|---------|
/// | k1  | b     | 5      | 5   | 1       |
/// | k2  | a     | 2      | 7   | 3       |
/// | k3  | c     | 3      | 4   | 2       |
/// | x   | y     | 8      | 8   | 1       |
///
/// so every sort target orders k1..k3 differently and without ties.
async fn put_fixture(client: &mut Client) {
    let puts = [
        ("k2", "x2"),
        ("k3", "x3"),
        ("k3", "c"),
        ("k1", "b"),
        ("k2", "y2"),
        ("k2", "a"),
        ("x", "y"),
    ];
    for (i, (key, value)) in puts.into_iter().enumerate() {
        let resp = client.put(key, value, None).await.expect("put");
        let revision = resp.header().expect("header").revision();
        assert_eq!(revision, i as i64 + 2, "put {key}");
    }
}

const K1: &str = "k1=b c5 m5 v1";
const K2: &str = "k2=a c2 m7 v3";
const K3: &str = "k3=c c3 m4 v2";
const X: &str = "x=y c8 m8 v1";

#[test]
fn range_key_forms() {
    let server = TestServer::start();
    runtime().block_on(async {
        let mut c = server.client().await;
        put_fixture(&mut c).await;
        let o = GetOptions::new;
        assert_eq!(get(&mut c, "k1", o()).await, (strings(&[K1]), 1, false, 8));
        assert_eq!(get(&mut c, "nothere", o()).await, (vec![], 0, false, 8));
        // [key, range_end)
        assert_eq!(
            get(&mut c, "k1", o().with_range("k3")).await,
            (strings(&[K1, K2]), 2, false, 8)
        );
        // range_end <= key selects nothing.
        assert_eq!(
            get(&mut c, "k3", o().with_range("k1")).await,
            (vec![], 0, false, 8)
        );
        // prefix: range_end = key with its last byte incremented.
        assert_eq!(
            get(&mut c, "k", o().with_prefix()).await,
            (strings(&[K1, K2, K3]), 3, false, 8)
        );
        assert_eq!(
            get(&mut c, "k", o().with_range("l")).await,
            (strings(&[K1, K2, K3]), 3, false, 8)
        );
        // range_end "\0": every key >= key.
        assert_eq!(
            get(&mut c, "k2", o().with_range(vec![0u8])).await,
            (strings(&[K2, K3, X]), 3, false, 8)
        );
        assert_eq!(
            get(&mut c, "k2", o().with_from_key()).await,
            (strings(&[K2, K3, X]), 3, false, 8)
        );
        // key "\0" and range_end "\0": every key.
        assert_eq!(
            get(&mut c, "", o().with_all_keys()).await,
            (strings(&[K1, K2, K3, X]), 4, false, 8)
        );
        assert_eq!(
            get_err(&mut c, "", o()).await,
            status(code::INVALID_ARGUMENT, "etcdserver: key is not provided")
        );
    });
}

#[test]
fn range_limit_count_keys_only_serializable_revision_filters() {
    let server = TestServer::start();
    runtime().block_on(async {
        let mut c = server.client().await;
        put_fixture(&mut c).await;
        let o = GetOptions::new;
        let p = || GetOptions::new().with_prefix();
        assert_eq!(
            get(&mut c, "k", p().with_limit(2)).await,
            (strings(&[K1, K2]), 3, true, 8)
        );
        assert_eq!(
            get(&mut c, "k", p().with_limit(3)).await,
            (strings(&[K1, K2, K3]), 3, false, 8)
        );
        assert_eq!(
            get(&mut c, "k", p().with_limit(1).with_from_key()).await,
            (strings(&[K1]), 4, true, 8)
        );
        assert_eq!(
            get(&mut c, "k", p().with_count_only()).await,
            (vec![], 3, false, 8)
        );
        assert_eq!(
            get(&mut c, "k", p().with_count_only().with_limit(1)).await,
            (vec![], 3, false, 8)
        );
        assert_eq!(
            get(&mut c, "k", p().with_keys_only()).await,
            (
                strings(&["k1= c5 m5 v1", "k2= c2 m7 v3", "k3= c3 m4 v2"]),
                3,
                false,
                8
            )
        );
        assert_eq!(
            get(&mut c, "k", p().with_serializable()).await,
            (strings(&[K1, K2, K3]), 3, false, 8)
        );
        assert_eq!(
            get(&mut c, "k1", o().with_serializable()).await,
            (strings(&[K1]), 1, false, 8)
        );
        // Historical revisions; the header carries the current revision.
        assert_eq!(
            get(&mut c, "k", p().with_revision(6)).await,
            (strings(&[K1, "k2=y2 c2 m6 v2", K3]), 3, false, 8)
        );
        assert_eq!(
            get(&mut c, "k", p().with_revision(4)).await,
            (strings(&["k2=x2 c2 m2 v1", K3]), 2, false, 8)
        );
        assert_eq!(
            get(&mut c, "k2", o().with_revision(2)).await,
            (strings(&["k2=x2 c2 m2 v1"]), 1, false, 8)
        );
        assert_eq!(
            get(&mut c, "k", p().with_revision(1)).await,
            (vec![], 0, false, 8)
        );
        assert_eq!(
            get(&mut c, "k", p().with_revision(8)).await,
            (strings(&[K1, K2, K3]), 3, false, 8)
        );
        assert_eq!(
            get_err(&mut c, "k", p().with_revision(9)).await,
            status(code::OUT_OF_RANGE, FUTURE)
        );
        // Revision filters prune after counting: count stays the range's size
        // (etcd etcdserver/apply.go Range).
        assert_eq!(
            get(&mut c, "k", p().with_min_mod_revision(5)).await,
            (strings(&[K1, K2]), 3, false, 8)
        );
        assert_eq!(
            get(&mut c, "k", p().with_max_mod_revision(5)).await,
            (strings(&[K1, K3]), 3, false, 8)
        );
        assert_eq!(
            get(&mut c, "k", p().with_min_create_revision(3)).await,
            (strings(&[K1, K3]), 3, false, 8)
        );
        assert_eq!(
            get(&mut c, "k", p().with_max_create_revision(3)).await,
            (strings(&[K2, K3]), 3, false, 8)
        );
        assert_eq!(
            get(
                &mut c,
                "k",
                p().with_min_mod_revision(4).with_max_mod_revision(5)
            )
            .await,
            (strings(&[K1, K3]), 3, false, 8)
        );
        // With a filter the limit applies after filtering.
        assert_eq!(
            get(&mut c, "k", p().with_min_mod_revision(5).with_limit(1)).await,
            (strings(&[K1]), 3, true, 8)
        );
    });
}

#[test]
fn range_sort_orders_and_targets() {
    let server = TestServer::start();
    runtime().block_on(async {
        let mut c = server.client().await;
        put_fixture(&mut c).await;
        use SortOrder::{Ascend, Descend};
        use SortTarget::{Create, Key, Mod, Value, Version};
        let cases = [
            (Key, Ascend, [K1, K2, K3]),
            (Key, Descend, [K3, K2, K1]),
            (Create, Ascend, [K2, K3, K1]),
            (Create, Descend, [K1, K3, K2]),
            (Mod, Ascend, [K3, K1, K2]),
            (Mod, Descend, [K2, K1, K3]),
            (Version, Ascend, [K1, K3, K2]),
            (Version, Descend, [K2, K3, K1]),
            (Value, Ascend, [K2, K1, K3]),
            (Value, Descend, [K3, K1, K2]),
            // Order NONE: by key for KEY, ascending for any other target.
            (Key, SortOrder::None, [K1, K2, K3]),
            (Create, SortOrder::None, [K2, K3, K1]),
            (Mod, SortOrder::None, [K3, K1, K2]),
            (Version, SortOrder::None, [K1, K3, K2]),
            (Value, SortOrder::None, [K2, K1, K3]),
        ];
        for (target, order, expected) in cases {
            let options = GetOptions::new().with_prefix().with_sort(target, order);
            assert_eq!(
                get(&mut c, "k", options).await,
                (strings(&expected), 3, false, 8),
                "{target:?} {order:?}"
            );
        }
        // Sorting happens before the limit.
        let options = GetOptions::new()
            .with_prefix()
            .with_sort(Value, Descend)
            .with_limit(2);
        assert_eq!(
            get(&mut c, "k", options).await,
            (strings(&[K3, K1]), 3, true, 8)
        );
        let options = GetOptions::new()
            .with_prefix()
            .with_sort(Key, Descend)
            .with_limit(1);
        assert_eq!(
            get(&mut c, "k", options).await,
            (strings(&[K3]), 3, true, 8)
        );
    });
}

#[test]
fn compaction_and_compacted_or_future_revisions() {
    let server = TestServer::start();
    runtime().block_on(async {
        let mut c = server.client().await;
        for value in ["v1", "v2", "v3", "v4"] {
            c.put("k", value, None).await.expect("put");
        }
        // Revisions 2..=5 hold v1..v4.
        let resp = c.compact(3, None).await.expect("compact 3");
        assert_eq!(resp.header().expect("header").revision(), 5);
        let o = GetOptions::new;
        assert_eq!(
            get_err(&mut c, "k", o().with_revision(2)).await,
            status(code::OUT_OF_RANGE, COMPACTED)
        );
        assert_eq!(
            get(&mut c, "k", o().with_revision(3)).await,
            (strings(&["k=v2 c2 m3 v2"]), 1, false, 5)
        );
        assert_eq!(
            get_err(&mut c, "k", o().with_revision(6)).await,
            status(code::OUT_OF_RANGE, FUTURE)
        );
        let again = c.compact(3, None).await.expect_err("compact 3 twice");
        assert_eq!(grpc_status(again), status(code::OUT_OF_RANGE, COMPACTED));
        let below = c.compact(2, None).await.expect_err("compact below");
        assert_eq!(grpc_status(below), status(code::OUT_OF_RANGE, COMPACTED));
        let future = c.compact(6, None).await.expect_err("compact future");
        assert_eq!(grpc_status(future), status(code::OUT_OF_RANGE, FUTURE));
        // Compacting the current revision is allowed; physical waits for the removal.
        let resp = c
            .compact(5, Some(CompactionOptions::new().with_physical()))
            .await
            .expect("compact 5 physical");
        assert_eq!(resp.header().expect("header").revision(), 5);
        assert_eq!(
            get_err(&mut c, "k", o().with_revision(4)).await,
            status(code::OUT_OF_RANGE, COMPACTED)
        );
        // Each key's latest state survives; compaction consumed no revision.
        assert_eq!(
            get(&mut c, "k", o()).await,
            (strings(&["k=v4 c2 m5 v4"]), 1, false, 5)
        );
        let resp = c.put("k", "v5", None).await.expect("put");
        assert_eq!(resp.header().expect("header").revision(), 6);
        // A compacted revision inside a txn fails the whole txn.
        let txn = Txn::new().and_then([TxnOp::get("k", Some(o().with_revision(4)))]);
        let err = c.txn(txn).await.expect_err("txn with compacted range");
        assert_eq!(grpc_status(err), status(code::OUT_OF_RANGE, COMPACTED));
    });
}

#[test]
fn put_options_and_errors() {
    let server = TestServer::start();
    runtime().block_on(async {
        let mut c = server.client().await;
        let resp = c.put("k", "v1", None).await.expect("put");
        assert_eq!(resp.header().expect("header").revision(), 2);
        assert!(resp.prev_key().is_none());
        let resp = c
            .put("k", "v2", Some(PutOptions::new().with_prev_key()))
            .await
            .expect("put prev_kv");
        assert_eq!(resp.prev_key().map(kv), Some("k=v1 c2 m2 v1".to_string()));
        assert_eq!(resp.header().expect("header").revision(), 3);
        let resp = c
            .put("new", "v", Some(PutOptions::new().with_prev_key()))
            .await
            .expect("put new prev_kv");
        assert!(resp.prev_key().is_none());
        // ignore_value keeps the value and bumps mod revision and version.
        let resp = c
            .put(
                "k",
                "",
                Some(PutOptions::new().with_ignore_value().with_prev_key()),
            )
            .await
            .expect("put ignore_value");
        assert_eq!(resp.prev_key().map(kv), Some("k=v2 c2 m3 v2".to_string()));
        assert_eq!(
            get(&mut c, "k", GetOptions::new()).await,
            (strings(&["k=v2 c2 m5 v3"]), 1, false, 5)
        );
        let errors = [
            (
                c.put("k", "x", Some(PutOptions::new().with_ignore_value()))
                    .await,
                status(code::INVALID_ARGUMENT, "etcdserver: value is provided"),
            ),
            (
                c.put("missing", "", Some(PutOptions::new().with_ignore_value()))
                    .await,
                status(code::INVALID_ARGUMENT, "etcdserver: key not found"),
            ),
            (
                c.put("missing", "v", Some(PutOptions::new().with_ignore_lease()))
                    .await,
                status(code::INVALID_ARGUMENT, "etcdserver: key not found"),
            ),
            (
                c.put("k", "v", Some(PutOptions::new().with_lease(1234)))
                    .await,
                status(code::NOT_FOUND, "etcdserver: requested lease not found"),
            ),
            (
                c.put("", "v", None).await,
                status(code::INVALID_ARGUMENT, "etcdserver: key is not provided"),
            ),
        ];
        for (result, expected) in errors {
            assert_eq!(grpc_status(result.expect_err("put must fail")), expected);
        }
        // Failed puts consumed no revision.
        let resp = c.put("k", "v3", None).await.expect("put");
        assert_eq!(resp.header().expect("header").revision(), 6);
    });
}

#[test]
fn put_with_lease_ignore_lease_and_compare_lease() {
    let server = TestServer::start();
    runtime().block_on(async {
        let mut c = server.client().await;
        let lease = c.lease_grant(600, None).await.expect("lease grant").id();
        assert!(lease > 0);
        c.put("k", "v1", Some(PutOptions::new().with_lease(lease)))
            .await
            .expect("put with lease");
        let l = |s: &str| format!("{s} l{lease}");
        assert_eq!(
            get(&mut c, "k", GetOptions::new()).await,
            (vec![l("k=v1 c2 m2 v1")], 1, false, 2)
        );
        // ignore_lease keeps the attached lease.
        c.put("k", "v2", Some(PutOptions::new().with_ignore_lease()))
            .await
            .expect("put ignore_lease");
        assert_eq!(
            get(&mut c, "k", GetOptions::new()).await,
            (vec![l("k=v2 c2 m3 v2")], 1, false, 3)
        );
        let err = c
            .put(
                "k",
                "v",
                Some(PutOptions::new().with_ignore_lease().with_lease(lease)),
            )
            .await
            .expect_err("ignore_lease with lease");
        assert_eq!(
            grpc_status(err),
            status(code::INVALID_ARGUMENT, "etcdserver: lease is provided")
        );
        // LEASE compares.
        for (op, against, succeeded) in [
            (CompareOp::Equal, lease, true),
            (CompareOp::Equal, lease + 1, false),
            (CompareOp::NotEqual, 0, true),
            (CompareOp::Greater, lease - 1, true),
            (CompareOp::Greater, lease, false),
            (CompareOp::Less, lease + 1, true),
            (CompareOp::Less, lease, false),
        ] {
            let txn = Txn::new().when([Compare::lease("k", op, against)]);
            let resp = c.txn(txn).await.expect("txn");
            assert_eq!(resp.succeeded(), succeeded, "lease {op:?} {against}");
        }
        // A plain put detaches the lease.
        c.put("k", "v3", None).await.expect("put");
        assert_eq!(
            get(&mut c, "k", GetOptions::new()).await,
            (strings(&["k=v3 c2 m4 v3"]), 1, false, 4)
        );
        let txn = Txn::new().when([Compare::lease("k", CompareOp::Equal, 0)]);
        assert!(c.txn(txn).await.expect("txn").succeeded());
    });
}

#[test]
fn delete_range_forms() {
    let server = TestServer::start();
    runtime().block_on(async {
        let mut c = server.client().await;
        for key in ["a", "b1", "b2", "b3", "c", "d", "e", "f"] {
            c.put(key, format!("v-{key}"), None).await.expect("put");
        }
        // Revision 9 now; keys created at 2..=9 in that order.
        let delete = |key: &'static str, options: Option<DeleteOptions>| {
            let mut c = c.clone();
            async move {
                let resp = c.delete(key, options).await.expect("delete");
                (
                    resp.deleted(),
                    resp.prev_kvs().iter().map(kv).collect::<Vec<_>>(),
                    resp.header().expect("header").revision(),
                )
            }
        };
        assert_eq!(delete("a", None).await, (1, vec![], 10));
        assert_eq!(delete("a", None).await, (0, vec![], 10));
        let prefix_prev = DeleteOptions::new().with_prefix().with_prev_key();
        assert_eq!(
            delete("b", Some(prefix_prev)).await,
            (
                3,
                strings(&["b1=v-b1 c3 m3 v1", "b2=v-b2 c4 m4 v1", "b3=v-b3 c5 m5 v1"]),
                11
            )
        );
        assert_eq!(
            delete("c", Some(DeleteOptions::new().with_prev_key())).await,
            (1, strings(&["c=v-c c6 m6 v1"]), 12)
        );
        // [key, range_end)
        assert_eq!(
            delete("d", Some(DeleteOptions::new().with_range("e"))).await,
            (1, vec![], 13)
        );
        // range_end "\0": every key >= key.
        assert_eq!(
            delete(
                "e",
                Some(DeleteOptions::new().with_range(vec![0u8]).with_prev_key())
            )
            .await,
            (2, strings(&["e=v-e c8 m8 v1", "f=v-f c9 m9 v1"]), 14)
        );
        assert_eq!(
            get(&mut c, "", GetOptions::new().with_all_keys()).await,
            (vec![], 0, false, 14)
        );
        // Deleted keys remain visible at older revisions.
        assert_eq!(
            get(&mut c, "b2", GetOptions::new().with_revision(10)).await,
            (strings(&["b2=v-b2 c4 m4 v1"]), 1, false, 14)
        );
        // Re-creating a deleted key starts a new generation.
        c.put("a", "again", None).await.expect("put");
        assert_eq!(
            get(&mut c, "a", GetOptions::new()).await,
            (strings(&["a=again c15 m15 v1"]), 1, false, 15)
        );
        let err = c.delete("", None).await.expect_err("empty key");
        assert_eq!(
            grpc_status(err),
            status(code::INVALID_ARGUMENT, "etcdserver: key is not provided")
        );
    });
}

/// Runs `txn` and returns (succeeded, header revision, op responses).
async fn txn(c: &mut Client, txn: Txn) -> (bool, i64, Vec<TxnOpResponse>) {
    let resp: TxnResponse = c.txn(txn).await.expect("txn");
    (
        resp.succeeded(),
        resp.header().expect("header").revision(),
        resp.op_responses(),
    )
}

#[test]
fn txn_compare_targets_and_results() {
    let server = TestServer::start();
    runtime().block_on(async {
        let mut c = server.client().await;
        c.put("t", "v1", None).await.expect("put");
        c.put("t", "v2", None).await.expect("put");
        // t: create 2, mod 3, version 2, value "v2". Revision 3.
        use CompareOp::{Equal, Greater, Less, NotEqual};
        type Make = fn(CompareOp, i64) -> Compare;
        let targets: [(&str, Make, i64); 3] = [
            ("version", |op, n| Compare::version("t", op, n), 2),
            ("create", |op, n| Compare::create_revision("t", op, n), 2),
            ("mod", |op, n| Compare::mod_revision("t", op, n), 3),
        ];
        for (name, make, actual) in targets {
            for (op, against, expected) in [
                (Equal, actual, true),
                (Equal, actual - 1, false),
                (NotEqual, actual - 1, true),
                (NotEqual, actual, false),
                (Greater, actual - 1, true),
                (Greater, actual, false),
                (Less, actual + 1, true),
                (Less, actual, false),
            ] {
                let t = Txn::new()
                    .when([make(op, against)])
                    .and_then([TxnOp::get("t", None)])
                    .or_else([]);
                let (succeeded, revision, responses) = txn(&mut c, t).await;
                assert_eq!(succeeded, expected, "{name} {op:?} {against}");
                assert_eq!(revision, 3);
                assert_eq!(responses.len(), usize::from(expected));
            }
        }
        for (op, against, expected) in [
            (Equal, "v2", true),
            (Equal, "v1", false),
            (NotEqual, "v1", true),
            (NotEqual, "v2", false),
            (Greater, "v1", true),
            (Greater, "v2", false),
            (Less, "v3", true),
            (Less, "v2", false),
        ] {
            let t = Txn::new().when([Compare::value("t", op, against)]);
            let (succeeded, _, _) = txn(&mut c, t).await;
            assert_eq!(succeeded, expected, "value {op:?} {against}");
        }
        // A missing key: version/create/mod are 0; a value compare is false.
        for (compare, expected) in [
            (Compare::version("none", Equal, 0), true),
            (Compare::create_revision("none", Equal, 0), true),
            (Compare::mod_revision("none", Less, 1), true),
            (Compare::value("none", Equal, ""), false),
            (Compare::value("none", NotEqual, "x"), false),
        ] {
            let t = Txn::new().when([compare.clone()]);
            let (succeeded, _, _) = txn(&mut c, t).await;
            assert_eq!(succeeded, expected, "{compare:?}");
        }
        // All compares must hold.
        let t = Txn::new().when([
            Compare::version("t", Equal, 2),
            Compare::value("t", Equal, "nope"),
        ]);
        assert!(!txn(&mut c, t).await.0);
        // An empty txn succeeds and consumes no revision.
        assert!(txn(&mut c, Txn::new()).await.0);
        assert_eq!(txn(&mut c, Txn::new()).await.1, 3);
    });
}

#[test]
fn txn_compare_with_range_end() {
    let server = TestServer::start();
    runtime().block_on(async {
        let mut c = server.client().await;
        c.put("r1", "a", None).await.expect("put");
        c.put("r2", "a", None).await.expect("put");
        c.put("r2", "b", None).await.expect("put");
        // r1: version 1, value a; r2: version 2, value b.
        use CompareOp::{Equal, Greater, Less, NotEqual};
        for (compare, expected) in [
            (Compare::version("r", Greater, 0).with_prefix(), true),
            (Compare::version("r", Equal, 1).with_prefix(), false),
            (Compare::version("r", Less, 3).with_prefix(), true),
            (Compare::version("r1", Equal, 1).with_range("r2"), true),
            (Compare::version("r1", Equal, 1).with_range("r3"), false),
            (Compare::value("r", NotEqual, "c").with_prefix(), true),
            (Compare::value("r", Equal, "a").with_prefix(), false),
            (Compare::create_revision("r", Less, 4).with_prefix(), true),
            (Compare::mod_revision("r", Greater, 2).with_prefix(), false),
            (
                Compare::version("r", Greater, 0).with_range(vec![0u8]),
                true,
            ),
            // An empty range compares against a zero key-value; VALUE is then false.
            (Compare::version("s", Equal, 0).with_prefix(), true),
            (Compare::value("s", Equal, "").with_prefix(), false),
        ] {
            let t = Txn::new().when([compare.clone()]);
            let (succeeded, revision, _) = txn(&mut c, t).await;
            assert_eq!(succeeded, expected, "{compare:?}");
            assert_eq!(revision, 4);
        }
    });
}

#[test]
fn txn_ops_revisions_and_nesting() {
    let server = TestServer::start();
    runtime().block_on(async {
        let mut c = server.client().await;
        c.put("a", "0", None).await.expect("put");
        c.put("z", "old", None).await.expect("put");
        // Revision 3. Writes in one txn share one revision; reads see earlier writes.
        let t = Txn::new()
            .when([Compare::value("a", CompareOp::Equal, "0")])
            .and_then([
                TxnOp::put("a", "1", Some(PutOptions::new().with_prev_key())),
                TxnOp::put("b", "1", None),
                TxnOp::get("a", Some(GetOptions::new().with_range("c"))),
                TxnOp::delete("z", Some(DeleteOptions::new().with_prev_key())),
                TxnOp::put("c", "1", None),
            ]);
        let (succeeded, revision, responses) = txn(&mut c, t).await;
        assert!(succeeded);
        assert_eq!(revision, 4);
        assert_eq!(responses.len(), 5);
        match &responses[0] {
            TxnOpResponse::Put(p) => {
                assert_eq!(p.prev_key().map(kv), Some("a=0 c2 m2 v1".to_string()));
                assert_eq!(p.header().expect("header").revision(), 4);
            }
            other => panic!("expected put response, got {other:?}"),
        }
        match &responses[2] {
            TxnOpResponse::Get(g) => assert_eq!(
                range(g),
                (strings(&["a=1 c2 m4 v2", "b=1 c4 m4 v1"]), 2, false, 4)
            ),
            other => panic!("expected get response, got {other:?}"),
        }
        match &responses[3] {
            TxnOpResponse::Delete(d) => {
                assert_eq!(d.deleted(), 1);
                let prev: Vec<String> = d.prev_kvs().iter().map(kv).collect();
                assert_eq!(prev, strings(&["z=old c3 m3 v1"]));
            }
            other => panic!("expected delete response, got {other:?}"),
        }
        assert_eq!(
            get(&mut c, "", GetOptions::new().with_all_keys()).await,
            (
                strings(&["a=1 c2 m4 v2", "b=1 c4 m4 v1", "c=1 c4 m4 v1"]),
                3,
                false,
                4
            )
        );
        // Nested txn: every compare is evaluated before any op runs, so the inner
        // compare does not see the outer put of "n1".
        let inner = Txn::new()
            .when([Compare::version("n1", CompareOp::Equal, 0)])
            .and_then([TxnOp::put("n2", "inner-success", None)])
            .or_else([TxnOp::put("n2", "inner-failure", None)]);
        let outer = Txn::new()
            .when([Compare::version("n1", CompareOp::Equal, 0)])
            .and_then([TxnOp::put("n1", "outer", None), TxnOp::txn(inner)]);
        let (succeeded, revision, responses) = txn(&mut c, outer).await;
        assert!(succeeded);
        assert_eq!(revision, 5);
        match &responses[1] {
            TxnOpResponse::Txn(t) => {
                assert!(t.succeeded());
                assert_eq!(t.op_responses().len(), 1);
            }
            other => panic!("expected txn response, got {other:?}"),
        }
        assert_eq!(
            get(&mut c, "n", GetOptions::new().with_prefix()).await,
            (
                strings(&["n1=outer c5 m5 v1", "n2=inner-success c5 m5 v1"]),
                2,
                false,
                5
            )
        );
        // A read-only txn consumes no revision.
        let t = Txn::new().and_then([TxnOp::get("a", None)]);
        assert_eq!(txn(&mut c, t).await.1, 5);
    });
}

#[test]
fn txn_request_errors() {
    let server = TestServer::start();
    runtime().block_on(async {
        let mut c = server.client().await;
        c.put("k", "v", None).await.expect("put");
        let duplicate = status(
            code::INVALID_ARGUMENT,
            "etcdserver: duplicate key given in txn request",
        );
        let too_many = status(
            code::INVALID_ARGUMENT,
            "etcdserver: too many operations in txn request",
        );
        let cases = [
            (
                "two puts of one key",
                Txn::new().and_then([TxnOp::put("d", "1", None), TxnOp::put("d", "2", None)]),
                duplicate.clone(),
            ),
            (
                "put inside a deleted range",
                Txn::new().and_then([
                    TxnOp::delete("a", Some(DeleteOptions::new().with_range("z"))),
                    TxnOp::put("d", "2", None),
                ]),
                duplicate.clone(),
            ),
            (
                "put in outer and nested txn",
                Txn::new().and_then([
                    TxnOp::put("d", "1", None),
                    TxnOp::txn(Txn::new().and_then([TxnOp::put("d", "2", None)])),
                ]),
                duplicate.clone(),
            ),
            (
                "129 ops",
                Txn::new().and_then(
                    (0..129)
                        .map(|i| TxnOp::put(format!("op{i:03}"), "v", None))
                        .collect::<Vec<_>>(),
                ),
                too_many.clone(),
            ),
            (
                "129 compares",
                Txn::new().when(
                    (0..129)
                        .map(|_| Compare::version("k", CompareOp::Equal, 1))
                        .collect::<Vec<_>>(),
                ),
                too_many.clone(),
            ),
        ];
        for (name, t, expected) in cases {
            let err = c.txn(t).await.expect_err(name);
            assert_eq!(grpc_status(err), expected, "{name}");
        }
        // The same key in the success and the failure branch is fine.
        let t = Txn::new()
            .when([Compare::version("k", CompareOp::Equal, 1)])
            .and_then([TxnOp::put("d", "1", None)])
            .or_else([TxnOp::put("d", "2", None)]);
        let (succeeded, revision, _) = txn(&mut c, t).await;
        assert!(succeeded);
        assert_eq!(revision, 3);
        // Exactly 128 ops is the default limit and accepted, at one revision.
        let t = Txn::new().and_then(
            (0..128)
                .map(|i| TxnOp::put(format!("op{i:03}"), "v", None))
                .collect::<Vec<_>>(),
        );
        assert_eq!(txn(&mut c, t).await.1, 4);
        let options = GetOptions::new().with_prefix().with_count_only();
        assert_eq!(get(&mut c, "op", options).await, (vec![], 128, false, 4));
        let options = GetOptions::new()
            .with_prefix()
            .with_min_mod_revision(4)
            .with_max_mod_revision(4)
            .with_count_only();
        assert_eq!(get(&mut c, "op", options).await, (vec![], 128, false, 4));
    });
}

#[test]
fn response_header_and_maintenance_status() {
    let mut server = TestServer::start();
    let (member_id, cluster_id) = runtime().block_on(async {
        let mut c = server.client().await;
        let resp = c.get("nothing", None).await.expect("get");
        let header = resp.header().expect("header");
        // A fresh store is at revision 1.
        assert_eq!(header.revision(), 1);
        assert!(header.raft_term() >= 1);
        assert_ne!(header.member_id(), 0);
        assert_ne!(header.cluster_id(), 0);
        let (member_id, cluster_id, raft_term) =
            (header.member_id(), header.cluster_id(), header.raft_term());
        let put = c.put("k", "v", None).await.expect("put");
        let h = put.header().expect("header");
        assert_eq!(
            (h.member_id(), h.cluster_id(), h.raft_term(), h.revision()),
            (member_id, cluster_id, raft_term, 2)
        );

        let status = c.status().await.expect("status");
        let h = status.header().expect("header");
        assert_eq!(
            (h.member_id(), h.cluster_id(), h.raft_term(), h.revision()),
            (member_id, cluster_id, raft_term, 2)
        );
        assert!(status.version().starts_with("3."), "{}", status.version());
        assert!(status.db_size() > 0);
        assert!(status.raft_used_db_size() > 0);
        assert!(status.raft_used_db_size() <= status.db_size());
        assert_eq!(status.leader(), member_id);
        assert_eq!(status.raft_term(), raft_term);
        assert!(status.raft_index() >= 1);
        assert_eq!(status.raft_applied_index(), status.raft_index());
        assert!(!status.is_learner());
        assert!(status.errors().is_empty());
        // Each write is one more raft entry.
        let before = status.raft_index();
        c.put("k", "v2", None).await.expect("put");
        let status = c.status().await.expect("status");
        assert_eq!(status.raft_index(), before + 1);
        (member_id, cluster_id)
    });
    server.kill9();
    server.restart();
    runtime().block_on(async {
        let mut c = server.client().await;
        let resp = c.get("k", None).await.expect("get after restart");
        let header = resp.header().expect("header");
        assert_eq!(header.member_id(), member_id, "member id after restart");
        assert_eq!(header.cluster_id(), cluster_id, "cluster id after restart");
        assert_eq!(header.revision(), 3);
        let status = c.status().await.expect("status");
        assert_eq!(status.leader(), member_id);
    });
}

#[test]
fn hash_and_hash_kv() {
    let server = TestServer::start();
    runtime().block_on(async {
        let mut c = server.client().await;
        c.put("foo", "bar", None).await.expect("put");
        let hash = c.hash().await.expect("hash").hash();
        assert_eq!(c.hash().await.expect("hash").hash(), hash, "Hash is stable");
        let kv_resp = c.hash_kv(0).await.expect("hash_kv");
        let hash_kv = kv_resp.hash();
        assert_eq!(kv_resp.header().expect("header").revision(), 2);
        // Never compacted.
        assert_eq!(kv_resp.compact_version(), -1);
        assert_eq!(c.hash_kv(0).await.expect("hash_kv").hash(), hash_kv);
        assert_eq!(c.hash_kv(2).await.expect("hash_kv").hash(), hash_kv);
        c.put("foo", "baz", None).await.expect("put");
        assert_ne!(c.hash().await.expect("hash").hash(), hash, "Hash after put");
        let now = c.hash_kv(0).await.expect("hash_kv").hash();
        assert_ne!(now, hash_kv, "HashKV after put");
        assert_eq!(c.hash_kv(2).await.expect("hash_kv").hash(), hash_kv);
        assert_eq!(c.hash_kv(3).await.expect("hash_kv").hash(), now);
        let err = c.hash_kv(4).await.expect_err("future");
        assert_eq!(grpc_status(err), status(code::OUT_OF_RANGE, FUTURE));
        c.compact(2, Some(CompactionOptions::new().with_physical()))
            .await
            .expect("compact");
        let after = c.hash_kv(0).await.expect("hash_kv");
        assert_eq!(after.compact_version(), 2);
        let err = c.hash_kv(1).await.expect_err("compacted");
        assert_eq!(grpc_status(err), status(code::OUT_OF_RANGE, COMPACTED));
    });
}

#[test]
fn hash_kv_is_etcds_crc32c_over_revisions() {
    // etcd mvcc/kvstore.go hashKV: CRC-32C over "key" and then, per revision, the
    // 17-byte revision key and the marshaled mvccpb.KeyValue. Members compare it.
    let server = TestServer::start();
    runtime().block_on(async {
        let mut c = server.client().await;
        c.put("foo", "bar", None).await.expect("put");
        assert_eq!(c.hash_kv(0).await.expect("hash_kv").hash(), HASH_KV_FOO_BAR);
    });
}

/// HashKV after a single `put foo bar` at revision 2: what etcd 3.4 answers, and what
/// CRC-32C("key" ++ [0,0,0,0,0,0,0,2,'_',0,0,0,0,0,0,0,0] ++ KeyValue{key: "foo",
/// create_revision: 2, mod_revision: 2, version: 1, value: "bar"} as protobuf) gives.
const HASH_KV_FOO_BAR: u32 = 3_305_255_506;

#[test]
fn request_too_large() {
    let server = TestServer::start();
    runtime().block_on(async {
        let mut c = server.client().await;
        // Over --max-request-bytes (1.5 MiB) but under the gRPC receive limit (+512 KiB).
        let value = vec![b'a'; 1536 * 1024 + 1];
        let err = c.put("big", value, None).await.expect_err("too large");
        assert_eq!(
            grpc_status(err),
            status(code::INVALID_ARGUMENT, "etcdserver: request is too large")
        );
        // Over the gRPC receive limit: rejected by the transport.
        // PutRequest{key: "huge", value: 2 MiB + 1 bytes} encodes to 2_097_164 bytes.
        let value = vec![b'a'; 2048 * 1024 + 1];
        let err = c
            .put("huge", value, None)
            .await
            .expect_err("over grpc limit");
        assert_eq!(
            grpc_status(err),
            status(
                code::RESOURCE_EXHAUSTED,
                "grpc: received message larger than max (2097164 vs. 2097152)"
            )
        );
        // The server still serves; nothing was written.
        assert_eq!(
            get(&mut c, "", GetOptions::new().with_all_keys()).await,
            (vec![], 0, false, 1)
        );
        // Just under the limit is accepted.
        let value = vec![b'a'; 1536 * 1024 - 1024];
        c.put("fits", value, None).await.expect("put under limit");
    });
}
