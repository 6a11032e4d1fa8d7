//! The real `etcdctl` (3.4, v3 API) against the server: KV commands, txn, compaction and
//! the endpoint commands. Full stdout/stderr text is asserted; only what differs between
//! runs or servers (member/cluster ids, raft term, timings, hashes, db size, the version
//! string) is masked.

mod common;

use common::{etcdctl_rpc_error, mask_header, normalize_etcdctl_stderr, text, TestServer};

/// Runs etcdctl, asserts exit 0 and empty stderr, returns stdout.
fn ok(server: &TestServer, args: &[&str]) -> String {
    let (code, stdout, stderr) = text(&server.etcdctl(args));
    assert_eq!(
        (code, stderr.as_str()),
        (0, ""),
        "etcdctl {args:?} failed; stdout {stdout:?}"
    );
    stdout
}

/// Runs etcdctl with `stdin`, asserts exit 0 and empty stderr, returns stdout.
fn ok_stdin(server: &TestServer, args: &[&str], stdin: &str) -> String {
    let (code, stdout, stderr) = text(&server.etcdctl_stdin(args, stdin));
    assert_eq!(
        (code, stderr.as_str()),
        (0, ""),
        "etcdctl {args:?} <<< {stdin:?} failed; stdout {stdout:?}"
    );
    stdout
}

/// Runs etcdctl, asserts exit 1 and empty stdout, returns the normalized stderr.
fn fails(server: &TestServer, args: &[&str]) -> String {
    let (code, stdout, stderr) = text(&server.etcdctl(args));
    assert_eq!(
        (code, stdout.as_str()),
        (1, ""),
        "etcdctl {args:?} should fail; stderr {stderr:?}"
    );
    normalize_etcdctl_stderr(&stderr)
}

/// Puts the fixture used by the get tests; afterwards the revision is 8 and
///
/// | key | value | create | mod | version |
/// |-----|-------|--------|-----|---------|
/// | k1  | b     | 5      | 5   | 1       |
/// | k2  | a     | 2      | 7   | 3       |
/// | k3  | c     | 3      | 4   | 2       |
/// | x   | y     | 8      | 8   | 1       |
///
/// so every sort target orders k1..k3 differently and without ties.
fn put_fixture(server: &TestServer) {
    for (key, value) in [
        ("k2", "x2"),
        ("k3", "x3"),
        ("k3", "c"),
        ("k1", "b"),
        ("k2", "y2"),
        ("k2", "a"),
        ("x", "y"),
    ] {
        assert_eq!(ok(server, &["put", key, value]), "OK\n");
    }
}

#[test]
fn get_variants() {
    let server = TestServer::start();
    put_fixture(&server);
    assert_eq!(ok(&server, &["get", "k1"]), "k1\nb\n");
    assert_eq!(ok(&server, &["get", "nothere"]), "");
    assert_eq!(
        ok(&server, &["get", "k", "--prefix"]),
        "k1\nb\nk2\na\nk3\nc\n"
    );
    assert_eq!(
        ok(&server, &["get", "", "--prefix"]),
        "k1\nb\nk2\na\nk3\nc\nx\ny\n"
    );
    assert_eq!(
        ok(&server, &["get", "k", "--prefix", "--limit", "2"]),
        "k1\nb\nk2\na\n"
    );
    // [key, range_end)
    assert_eq!(ok(&server, &["get", "k1", "k3"]), "k1\nb\nk2\na\n");
    assert_eq!(
        ok(&server, &["get", "k2", "--from-key"]),
        "k2\na\nk3\nc\nx\ny\n"
    );
    assert_eq!(
        ok(&server, &["get", "k", "--prefix", "--keys-only"]),
        "k1\n\nk2\n\nk3\n\n"
    );
    assert_eq!(
        ok(&server, &["get", "k", "--prefix", "--print-value-only"]),
        "b\na\nc\n"
    );
    assert_eq!(ok(&server, &["get", "k1", "--consistency=s"]), "k1\nb\n");
    assert_eq!(
        ok(
            &server,
            &["get", "k", "--prefix", "--consistency=s", "--limit=1"]
        ),
        "k1\nb\n"
    );
}

#[test]
fn get_sorted() {
    let server = TestServer::start();
    put_fixture(&server);
    let cases = [
        ("KEY", "ASCEND", "k1 k2 k3"),
        ("KEY", "DESCEND", "k3 k2 k1"),
        ("CREATE", "ASCEND", "k2 k3 k1"),
        ("CREATE", "DESCEND", "k1 k3 k2"),
        ("MODIFY", "ASCEND", "k3 k1 k2"),
        ("MODIFY", "DESCEND", "k2 k1 k3"),
        ("VERSION", "ASCEND", "k1 k3 k2"),
        ("VERSION", "DESCEND", "k2 k3 k1"),
        ("VALUE", "ASCEND", "k2 k1 k3"),
        ("VALUE", "DESCEND", "k3 k1 k2"),
    ];
    for (target, order, expected) in cases {
        let sort_by = format!("--sort-by={target}");
        let order_flag = format!("--order={order}");
        let stdout = ok(
            &server,
            &["get", "k", "--prefix", "--keys-only", &sort_by, &order_flag],
        );
        let keys: Vec<&str> = stdout.split('\n').filter(|l| !l.is_empty()).collect();
        assert_eq!(keys.join(" "), expected, "{target} {order}");
    }
    // --sort-by alone ascends; --order alone sorts by key.
    assert_eq!(
        ok(&server, &["get", "k", "--prefix", "--sort-by=VALUE"]),
        "k2\na\nk1\nb\nk3\nc\n"
    );
    assert_eq!(
        ok(&server, &["get", "k", "--prefix", "--order=DESCEND"]),
        "k3\nc\nk2\na\nk1\nb\n"
    );
    // Sort is applied before the limit.
    assert_eq!(
        ok(
            &server,
            &[
                "get",
                "k",
                "--prefix",
                "--sort-by=VALUE",
                "--order=DESCEND",
                "--limit=1"
            ]
        ),
        "k3\nc\n"
    );
}

#[test]
fn get_historical_and_json() {
    let server = TestServer::start();
    put_fixture(&server);
    assert_eq!(ok(&server, &["get", "k2", "--rev=6"]), "k2\ny2\n");
    assert_eq!(ok(&server, &["get", "k2", "--rev=2"]), "k2\nx2\n");
    assert_eq!(ok(&server, &["get", "k1", "--rev=4"]), "");
    assert_eq!(
        ok(&server, &["get", "k", "--prefix", "--rev=3"]),
        "k2\nx2\nk3\nx3\n"
    );
    assert_eq!(
        mask_header(&ok(&server, &["get", "k2", "-w", "json"])),
        "{\"header\":{\"cluster_id\":<cluster_id>,\"member_id\":<member_id>,\"revision\":8,\
         \"raft_term\":<raft_term>},\"kvs\":[{\"key\":\"azI=\",\"create_revision\":2,\
         \"mod_revision\":7,\"version\":3,\"value\":\"YQ==\"}],\"count\":1}\n"
    );
    assert_eq!(
        mask_header(&ok(
            &server,
            &["get", "k", "--prefix", "--limit=2", "-w", "json"]
        )),
        "{\"header\":{\"cluster_id\":<cluster_id>,\"member_id\":<member_id>,\"revision\":8,\
         \"raft_term\":<raft_term>},\"kvs\":[{\"key\":\"azE=\",\"create_revision\":5,\
         \"mod_revision\":5,\"version\":1,\"value\":\"Yg==\"},{\"key\":\"azI=\",\
         \"create_revision\":2,\"mod_revision\":7,\"version\":3,\"value\":\"YQ==\"}],\
         \"more\":true,\"count\":3}\n"
    );
    assert_eq!(
        mask_header(&ok(&server, &["get", "nothere", "-w", "json"])),
        "{\"header\":{\"cluster_id\":<cluster_id>,\"member_id\":<member_id>,\"revision\":8,\
         \"raft_term\":<raft_term>}}\n"
    );
    assert_eq!(
        mask_header(&ok(&server, &["get", "k2", "-w", "fields"])),
        "\"ClusterID\" : <ClusterID>\n\"MemberID\" : <MemberID>\n\"Revision\" : 8\n\
         \"RaftTerm\" : <RaftTerm>\n\"Key\" : \"k2\"\n\"CreateRevision\" : 2\n\
         \"ModRevision\" : 7\n\"Version\" : 3\n\"Value\" : \"a\"\n\"Lease\" : 0\n\
         \"More\" : false\n\"Count\" : 1\n"
    );
}

#[test]
fn put_variants_and_errors() {
    let server = TestServer::start();
    let endpoint = server.endpoint();
    assert_eq!(ok(&server, &["put", "k1", "v1"]), "OK\n");
    assert_eq!(
        ok(&server, &["put", "k1", "v2", "--prev-kv"]),
        "OK\nk1\nv1\n"
    );
    assert_eq!(ok(&server, &["put", "new", "v", "--prev-kv"]), "OK\n");
    // The value may come from stdin.
    assert_eq!(
        ok_stdin(&server, &["put", "stdin-key"], "from stdin"),
        "OK\n"
    );
    assert_eq!(
        ok(&server, &["get", "stdin-key", "--print-value-only"]),
        "from stdin\n"
    );
    assert_eq!(ok(&server, &["put", "k1", "--ignore-value"]), "OK\n");
    assert_eq!(
        mask_header(&ok(&server, &["get", "k1", "-w", "json"])),
        "{\"header\":{\"cluster_id\":<cluster_id>,\"member_id\":<member_id>,\"revision\":6,\
         \"raft_term\":<raft_term>},\"kvs\":[{\"key\":\"azE=\",\"create_revision\":2,\
         \"mod_revision\":6,\"version\":3,\"value\":\"djI=\"}],\"count\":1}\n"
    );
    assert_eq!(
        mask_header(&ok(&server, &["put", "k1", "v3", "-w", "json"])),
        "{\"header\":{\"cluster_id\":<cluster_id>,\"member_id\":<member_id>,\"revision\":7,\
         \"raft_term\":<raft_term>}}\n"
    );
    assert_eq!(
        fails(&server, &["put", "k1", "v", "--lease=1234"]),
        etcdctl_rpc_error(
            &endpoint,
            "NotFound",
            "etcdserver: requested lease not found"
        )
    );
    assert_eq!(
        fails(&server, &["put", "", "v"]),
        etcdctl_rpc_error(
            &endpoint,
            "InvalidArgument",
            "etcdserver: key is not provided"
        )
    );
    // --ignore-value on a missing key.
    assert_eq!(
        fails(&server, &["put", "missing", "--ignore-value"]),
        etcdctl_rpc_error(&endpoint, "InvalidArgument", "etcdserver: key not found")
    );
    // Failed puts do not consume revisions.
    assert_eq!(
        mask_header(&ok(&server, &["get", "k1", "-w", "json"])),
        "{\"header\":{\"cluster_id\":<cluster_id>,\"member_id\":<member_id>,\"revision\":7,\
         \"raft_term\":<raft_term>},\"kvs\":[{\"key\":\"azE=\",\"create_revision\":2,\
         \"mod_revision\":7,\"version\":4,\"value\":\"djM=\"}],\"count\":1}\n"
    );
}

#[test]
fn del_variants() {
    let server = TestServer::start();
    for key in ["a", "b1", "b2", "b3", "c", "d", "e"] {
        assert_eq!(ok(&server, &["put", key, &format!("v-{key}")]), "OK\n");
    }
    assert_eq!(ok(&server, &["del", "a"]), "1\n");
    assert_eq!(ok(&server, &["del", "a"]), "0\n");
    assert_eq!(ok(&server, &["del", "nothere"]), "0\n");
    assert_eq!(
        ok(&server, &["del", "b", "--prefix", "--prev-kv"]),
        "3\nb1\nv-b1\nb2\nv-b2\nb3\nv-b3\n"
    );
    assert_eq!(ok(&server, &["del", "c", "--prev-kv"]), "1\nc\nv-c\n");
    assert_eq!(
        ok(&server, &["del", "d", "--from-key", "--prev-kv"]),
        "2\nd\nv-d\ne\nv-e\n"
    );
    assert_eq!(ok(&server, &["get", "", "--prefix"]), "");
    // 7 puts + 4 deleting requests; deleting nothing does not consume a revision.
    assert_eq!(
        mask_header(&ok(&server, &["get", "a", "-w", "json"])),
        "{\"header\":{\"cluster_id\":<cluster_id>,\"member_id\":<member_id>,\"revision\":12,\
         \"raft_term\":<raft_term>}}\n"
    );
    for key in ["r1", "r2", "r3"] {
        assert_eq!(ok(&server, &["put", key, "v"]), "OK\n");
    }
    // [key, range_end)
    assert_eq!(ok(&server, &["del", "r1", "r3"]), "2\n");
    assert_eq!(ok(&server, &["get", "r", "--prefix"]), "r3\nv\n");
}

#[test]
fn txn_branches() {
    let server = TestServer::start();
    assert_eq!(ok(&server, &["put", "k1", "v1"]), "OK\n");
    // Success branch: value compare holds.
    let stdout = ok_stdin(
        &server,
        &["txn"],
        "value(\"k1\") = \"v1\"\n\nput k2 \"yes\"\nget k1\n\nput k2 \"no\"\n\n",
    );
    assert_eq!(stdout, "SUCCESS\n\nOK\n\nk1\nv1\n");
    // Failure branch: value compare fails, both failure ops run.
    let stdout = ok_stdin(
        &server,
        &["txn"],
        "value(\"k1\") = \"zz\"\n\nput k2 \"yes\"\n\nput k2 \"no\"\ndel k1\n\n",
    );
    assert_eq!(stdout, "FAILURE\n\nOK\n\n1\n");
    // k2: create 3, mod 4, version 2. Several compares, all must hold.
    let stdout = ok_stdin(
        &server,
        &["txn"],
        "version(\"k2\") = \"2\"\nmod(\"k2\") > \"3\"\ncreate(\"k2\") < \"4\"\n\
         create(\"k2\") = \"3\"\nmod(\"k2\") = \"4\"\n\nget k2\ndel k2 --prev-kv\n\n\n",
    );
    assert_eq!(stdout, "SUCCESS\n\nk2\nno\n\n1\nk2\nno\n");
    // A missing key has version 0: version > 0 fails, failure branch is empty.
    let stdout = ok_stdin(
        &server,
        &["txn"],
        "version(\"k2\") > \"0\"\n\nput k3 v\n\n\n",
    );
    assert_eq!(stdout, "FAILURE\n");
    // One compare fails → failure branch, with a get over a prefix.
    assert_eq!(ok(&server, &["put", "p1", "a"]), "OK\n");
    assert_eq!(ok(&server, &["put", "p2", "b"]), "OK\n");
    let stdout = ok_stdin(
        &server,
        &["txn"],
        "value(\"p1\") = \"a\"\nvalue(\"p2\") = \"a\"\n\nput p3 c\n\nget p --prefix\n\n",
    );
    assert_eq!(stdout, "FAILURE\n\np1\na\np2\nb\n");
    // JSON: revision 7 (put k1, txn put, txn put+del, txn get+del, p1, p2), succeeded
    // omitted when false and responses omitted when empty.
    let stdout = ok_stdin(
        &server,
        &["txn", "-w", "json"],
        "version(\"nothere\") = \"1\"\n\n\n\n",
    );
    assert_eq!(
        mask_header(&stdout),
        "{\"header\":{\"cluster_id\":<cluster_id>,\"member_id\":<member_id>,\"revision\":7,\
         \"raft_term\":<raft_term>}}\n"
    );
    let stdout = ok_stdin(
        &server,
        &["txn", "-w", "json"],
        "value(\"p1\") = \"a\"\n\nput p1 z\n\n\n",
    );
    assert_eq!(
        mask_header(&stdout),
        "{\"header\":{\"cluster_id\":<cluster_id>,\"member_id\":<member_id>,\"revision\":8,\
         \"raft_term\":<raft_term>},\"succeeded\":true,\"responses\":[{\"Response\":\
         {\"ResponsePut\":{\"header\":{\"revision\":8}}}}]}\n"
    );
}

#[test]
fn compaction_and_errors() {
    let server = TestServer::start();
    let endpoint = server.endpoint();
    for value in ["v1", "v2", "v3", "v4"] {
        assert_eq!(ok(&server, &["put", "k", value]), "OK\n");
    }
    // Revisions 2..=5 hold v1..v4.
    assert_eq!(ok(&server, &["compaction", "3"]), "compacted revision 3\n");
    let compacted = etcdctl_rpc_error(
        &endpoint,
        "OutOfRange",
        "etcdserver: mvcc: required revision has been compacted",
    );
    let future = etcdctl_rpc_error(
        &endpoint,
        "OutOfRange",
        "etcdserver: mvcc: required revision is a future revision",
    );
    assert_eq!(fails(&server, &["get", "k", "--rev=2"]), compacted);
    assert_eq!(ok(&server, &["get", "k", "--rev=3"]), "k\nv2\n");
    assert_eq!(ok(&server, &["get", "k", "--rev=5"]), "k\nv4\n");
    assert_eq!(fails(&server, &["get", "k", "--rev=6"]), future);
    assert_eq!(fails(&server, &["compaction", "3"]), compacted);
    assert_eq!(fails(&server, &["compaction", "2"]), compacted);
    assert_eq!(fails(&server, &["compaction", "100"]), future);
    assert_eq!(
        ok(&server, &["compaction", "5", "--physical"]),
        "compacted revision 5\n"
    );
    assert_eq!(fails(&server, &["get", "k", "--rev=4"]), compacted);
    // The latest state of each key survives compaction.
    assert_eq!(ok(&server, &["get", "k"]), "k\nv4\n");
    // Compaction does not consume a revision.
    assert_eq!(ok(&server, &["put", "k", "v5"]), "OK\n");
    assert_eq!(
        mask_header(&ok(&server, &["get", "k", "-w", "json"])),
        "{\"header\":{\"cluster_id\":<cluster_id>,\"member_id\":<member_id>,\"revision\":6,\
         \"raft_term\":<raft_term>},\"kvs\":[{\"key\":\"aw==\",\"create_revision\":2,\
         \"mod_revision\":6,\"version\":5,\"value\":\"djU=\"}],\"count\":1}\n"
    );
}

/// Asserts `field` is a decimal number and returns it.
fn number(field: &str, what: &str) -> u64 {
    field
        .parse()
        .unwrap_or_else(|_| panic!("{what} {field:?} is not a number"))
}

/// Asserts `field` is a member id as etcdctl prints it: lower-case hex, at most 16 digits.
fn assert_member_id(field: &str) {
    assert!((1..=16).contains(&field.len()), "member id {field:?}");
    assert!(
        field
            .chars()
            .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c)),
        "member id {field:?} is lower-case hex"
    );
}

/// Asserts `field` is etcd's humanized db size (go-humanize Bytes, e.g. "20 kB").
fn assert_db_size(field: &str) {
    let (amount, unit) = field.split_once(' ').expect("db size has a unit");
    assert!(
        ["B", "kB", "MB", "GB"].contains(&unit),
        "db size unit {unit:?}"
    );
    assert!(amount.parse::<f64>().is_ok(), "db size amount {amount:?}");
}

#[test]
fn endpoint_status_health_hashkv() {
    let server = TestServer::start();
    let endpoint = server.endpoint();
    assert_eq!(ok(&server, &["put", "k", "v"]), "OK\n");

    // endpoint status, simple: endpoint, id, version, db size, is leader, is learner,
    // raft term, raft index, raft applied index, errors.
    let stdout = ok(&server, &["endpoint", "status"]);
    let line = stdout.strip_suffix('\n').expect("one line");
    let fields: Vec<&str> = line.split(", ").collect();
    assert_eq!(fields.len(), 10, "{line:?}");
    assert_eq!(fields[0], endpoint);
    assert_member_id(fields[1]);
    assert!(fields[2].starts_with("3."), "version {:?}", fields[2]);
    assert_db_size(fields[3]);
    assert_eq!(&fields[4..6], ["true", "false"]);
    assert!(number(fields[6], "raft term") >= 1);
    let raft_index = number(fields[7], "raft index");
    assert!(raft_index >= 1);
    assert_eq!(number(fields[8], "raft applied index"), raft_index);
    assert_eq!(fields[9], "");

    // endpoint status, table.
    let stdout = ok(&server, &["endpoint", "status", "-w", "table"]);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 5, "{stdout}");
    let cells = |line: &str| -> Vec<String> {
        line.trim_matches('|')
            .split('|')
            .map(|c| c.trim().to_string())
            .collect()
    };
    assert_eq!(
        cells(lines[1]),
        [
            "ENDPOINT",
            "ID",
            "VERSION",
            "DB SIZE",
            "IS LEADER",
            "IS LEARNER",
            "RAFT TERM",
            "RAFT INDEX",
            "RAFT APPLIED INDEX",
            "ERRORS"
        ]
    );
    let row = cells(lines[3]);
    assert_eq!(row[0], endpoint);
    assert_eq!(row[1], fields[1]);
    assert_eq!(row[2], fields[2]);
    assert_eq!(
        &row[4..],
        ["true", "false", fields[6], fields[7], fields[8], ""]
    );
    for border in [lines[0], lines[2], lines[4]] {
        assert!(
            border.starts_with("+-") && border.ends_with("-+"),
            "{border}"
        );
    }

    // endpoint status, json: member id in decimal equals the hex id; leader is itself.
    let stdout = ok(&server, &["endpoint", "status", "-w", "json"]);
    let json: serde_json::Value = serde_json::from_str(&stdout).expect("status json");
    let status = &json[0]["Status"];
    assert_eq!(json[0]["Endpoint"], serde_json::json!(endpoint));
    let member_id = status["header"]["member_id"].as_u64().expect("member_id");
    assert_eq!(format!("{member_id:x}"), fields[1]);
    assert_eq!(status["leader"].as_u64(), Some(member_id));
    assert_eq!(status["header"]["revision"].as_i64(), Some(2));
    assert!(status["dbSize"].as_i64().expect("dbSize") > 0);

    // endpoint health: reported on stderr, stdout empty.
    let (code, stdout, stderr) = text(&server.etcdctl(&["endpoint", "health"]));
    assert_eq!((code, stdout.as_str()), (0, ""));
    let prefix = format!("{endpoint} is healthy: successfully committed proposal: took = ");
    let took = stderr
        .strip_prefix(&prefix)
        .and_then(|rest| rest.strip_suffix('\n'))
        .unwrap_or_else(|| panic!("endpoint health stderr {stderr:?}"));
    assert!(!took.contains('\n') && took.ends_with('s'), "took {took:?}");

    // endpoint hashkv: stable without writes, changes after a put.
    let hashkv = |server: &TestServer| -> u32 {
        let stdout = ok(server, &["endpoint", "hashkv"]);
        let rest = stdout
            .strip_prefix(&format!("{endpoint}, "))
            .and_then(|r| r.strip_suffix('\n'))
            .unwrap_or_else(|| panic!("hashkv stdout {stdout:?}"));
        rest.parse().expect("hash is a u32")
    };
    let first = hashkv(&server);
    assert_eq!(hashkv(&server), first);
    assert_eq!(ok(&server, &["put", "k", "v2"]), "OK\n");
    assert_ne!(hashkv(&server), first);
    // hashkv at revision 2 is the hash taken before the second put.
    assert_eq!(
        ok(&server, &["endpoint", "hashkv", "--rev=2"]),
        format!("{endpoint}, {first}\n")
    );
}
