//! The JSON gateway on the client URL, driven with `curl` as etcd's docs drive it
//! (`POST /v3/kv/put` with `{"key":"Zm9v","value":"YmFy"}`): bytes as base64, 64-bit
//! integers as strings, field names as in the .proto files, errors as
//! `{"error","message","code"}`. Every expectation here holds against etcd 3.4 too
//! (`CAIRN_TEST_TARGET=etcd`).

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStdout, Command, Stdio};

use common::TestServer;
use serde_json::{json, Value};

/// `curl -X POST` of `body` to `path`: the HTTP status and the body.
fn post(server: &TestServer, path: &str, body: &str) -> (u16, String) {
    let output = Command::new("curl")
        .args([
            "-s",
            "--max-time",
            "15",
            "-w",
            "\n%{http_code}",
            "-X",
            "POST",
        ])
        .arg(format!("{}{path}", server.endpoint()))
        .args(["-d", body])
        .output()
        .expect("run curl");
    assert!(output.status.success(), "curl {path} failed: {output:?}");
    let text = String::from_utf8(output.stdout).expect("UTF-8 body");
    let (body, status) = text.rsplit_once('\n').expect("status line from -w");
    (status.parse().expect("HTTP status"), body.to_string())
}

/// [`post`] that must answer 200 with JSON.
fn post_ok(server: &TestServer, path: &str, body: &str) -> Value {
    let (status, text) = post(server, path, body);
    assert_eq!(status, 200, "{path} {body} → {text}");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {text:?} is not JSON: {e}"))
}

/// A streamed response read line by line (`curl -N`); the curl process is killed on drop.
struct Stream {
    curl: Child,
    lines: BufReader<ChildStdout>,
}

impl Stream {
    fn open(server: &TestServer, path: &str, body: &str) -> Stream {
        let mut curl = Command::new("curl")
            .args(["-s", "-N", "--max-time", "30", "-X", "POST"])
            .arg(format!("{}{path}", server.endpoint()))
            .args(["-d", body])
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn curl");
        let lines = BufReader::new(curl.stdout.take().expect("curl stdout"));
        Stream { curl, lines }
    }

    /// The next line as JSON; panics at the end of the stream.
    fn next(&mut self) -> Value {
        let mut line = String::new();
        let read = self.lines.read_line(&mut line).expect("read stream");
        assert!(read > 0, "stream ended");
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{line:?} is not JSON: {e}"))
    }

    /// The rest of the stream, once curl has ended.
    fn rest(mut self) -> String {
        let mut rest = String::new();
        std::io::Read::read_to_string(&mut self.lines, &mut rest).expect("read stream");
        rest
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        let _ = self.curl.kill();
        let _ = self.curl.wait();
    }
}

/// `etcd_debugging_mvcc_watcher_total`: the watchers open on the server.
fn watchers(server: &TestServer) -> u64 {
    let metrics = common::http_get(server.client_port(), "/metrics").expect("GET /metrics");
    let text = metrics.text();
    let line = text
        .lines()
        .find(|line| line.starts_with("etcd_debugging_mvcc_watcher_total "))
        .expect("etcd_debugging_mvcc_watcher_total");
    line.rsplit(' ').next().unwrap().parse().expect("a count")
}

/// A string-encoded 64-bit integer field.
fn int(value: &Value) -> i64 {
    value
        .as_str()
        .unwrap_or_else(|| panic!("{value} is not a string-encoded integer"))
        .parse()
        .expect("integer")
}

#[test]
fn put_range_txn_delete_with_etcd_json() {
    let server = TestServer::start();
    // foo = bar, in base64.
    let put = post_ok(&server, "/v3/kv/put", r#"{"key":"Zm9v","value":"YmFy"}"#);
    let header = &put["header"];
    assert_eq!(int(&header["revision"]), 2);
    assert!(header["cluster_id"].is_string() && header["member_id"].is_string());
    assert!(int(&header["raft_term"]) >= 1);
    assert_eq!(put.as_object().unwrap().len(), 1, "only the header: {put}");

    let range = post_ok(&server, "/v3/kv/range", r#"{"key":"Zm9v"}"#);
    assert_eq!(
        range["kvs"],
        json!([{"key":"Zm9v","create_revision":"2","mod_revision":"2","version":"1","value":"YmFy"}])
    );
    assert_eq!(range["count"], json!("1"));
    assert!(range.get("more").is_none(), "false is left out: {range}");
    // A miss: only the header (kvs and count at their defaults are left out).
    let miss = post_ok(&server, "/v3/kv/range", r#"{"key":"bm9uZQ=="}"#);
    assert_eq!(
        miss.as_object().unwrap().keys().collect::<Vec<_>>(),
        ["header"]
    );

    // The lowerCamelCase names are accepted too; prev_kv comes back under its proto name.
    let put = post_ok(
        &server,
        "/v3/kv/put",
        r#"{"key":"Zm9v","value":"YmF6","prevKv":true}"#,
    );
    assert_eq!(put["prev_kv"]["value"], json!("YmFy"));
    assert_eq!(int(&put["header"]["revision"]), 3);

    // Txn: value == "baz" → put foo = qux, else range.
    let txn = r#"{"compare":[{"key":"Zm9v","result":"EQUAL","target":"VALUE","value":"YmF6"}],
        "success":[{"request_put":{"key":"Zm9v","value":"cXV4"}}],
        "failure":[{"request_range":{"key":"Zm9v"}}]}"#;
    let first = post_ok(&server, "/v3/kv/txn", txn);
    assert_eq!(first["succeeded"], json!(true));
    assert_eq!(
        first["responses"][0]["response_put"]["header"]["revision"],
        json!("4")
    );
    let second = post_ok(&server, "/v3/kv/txn", txn);
    assert!(
        second.get("succeeded").is_none(),
        "false is left out: {second}"
    );
    let kvs = &second["responses"][0]["response_range"]["kvs"];
    assert_eq!(kvs[0]["value"], json!("cXV4"));
    assert_eq!(kvs[0]["version"], json!("3"));

    // /v3beta/ is the same gateway.
    let range = post_ok(&server, "/v3beta/kv/range", r#"{"key":"Zm9v"}"#);
    assert_eq!(range["kvs"][0]["value"], json!("cXV4"));

    let deleted = post_ok(
        &server,
        "/v3/kv/deleterange",
        r#"{"key":"Zm9v","prev_kv":true}"#,
    );
    assert_eq!(deleted["deleted"], json!("1"));
    assert_eq!(deleted["prev_kvs"][0]["value"], json!("cXV4"));

    let status = post_ok(&server, "/v3/maintenance/status", "{}");
    assert_eq!(status["leader"], status["header"]["member_id"]);
    let members = post_ok(&server, "/v3/cluster/member/list", "{}");
    assert_eq!(members["members"][0]["ID"], status["leader"]);

    // Gateway calls count as the gRPC calls they are (etcd's gateway is a gRPC client).
    let metrics = common::http_get(server.client_port(), "/metrics").expect("GET /metrics");
    let puts = r#"grpc_server_handled_total{grpc_code="OK",grpc_method="Put",grpc_service="etcdserverpb.KV",grpc_type="unary"} 2"#;
    assert!(metrics.text().lines().any(|line| line == puts), "no {puts}");
}

#[test]
fn errors_as_etcd_gateway_returns_them() {
    let server = TestServer::start();
    let (status, body) = post(&server, "/v3/kv/put", r#"{"key":"","value":"YmFy"}"#);
    assert_eq!(status, 400);
    assert_eq!(
        body,
        r#"{"error":"etcdserver: key is not provided","message":"etcdserver: key is not provided","code":3}"#
    );
    // An empty body is the empty request.
    let (status, body) = post(&server, "/v3/kv/range", "");
    assert_eq!(
        (status, body.contains(r#""code":3"#)),
        (400, true),
        "{body}"
    );

    post_ok(&server, "/v3/kv/put", r#"{"key":"YQ==","value":"MQ=="}"#);
    post_ok(&server, "/v3/kv/put", r#"{"key":"YQ==","value":"Mg=="}"#);
    let (status, body) = post(&server, "/v3/kv/range", r#"{"key":"YQ==","revision":100}"#);
    assert_eq!(status, 400);
    assert_eq!(
        body,
        r#"{"error":"etcdserver: mvcc: required revision is a future revision","message":"etcdserver: mvcc: required revision is a future revision","code":11}"#
    );
    post_ok(&server, "/v3/kv/compaction", r#"{"revision":3}"#);
    let (status, body) = post(&server, "/v3/kv/range", r#"{"key":"YQ==","revision":2}"#);
    assert_eq!(status, 400);
    assert_eq!(
        body,
        r#"{"error":"etcdserver: mvcc: required revision has been compacted","message":"etcdserver: mvcc: required revision has been compacted","code":11}"#
    );
    let (status, body) = post(&server, "/v3/lease/revoke", r#"{"ID":12345}"#);
    assert_eq!(status, 404);
    assert_eq!(
        body,
        r#"{"error":"etcdserver: requested lease not found","message":"etcdserver: requested lease not found","code":5}"#
    );
    // Not JSON: 400, code 3 (the text is the JSON parser's own).
    let (status, body) = post(&server, "/v3/kv/put", "{bad");
    assert_eq!(status, 400);
    let error: Value = serde_json::from_str(&body).expect("JSON error body");
    assert_eq!(error["code"], json!(3));
    assert_eq!(error["error"], error["message"]);
    // Unknown routes and methods: Go's http.Error texts.
    let (status, body) = post(&server, "/v3/kv/nothere", "{}");
    assert_eq!((status, body.as_str()), (404, "Not Found\n"));
    let output = Command::new("curl")
        .args(["-s", "-w", "%{http_code}"])
        .arg(format!("{}/v3/kv/range", server.endpoint()))
        .output()
        .expect("run curl");
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        "Method Not Allowed\n405"
    );
    // A CORS preflight: 200 with etcd's CORS headers (`--cors` defaults to `*`).
    let preflight = common::http_request(server.client_port(), "OPTIONS", "/v3/kv/put")
        .expect("OPTIONS /v3/kv/put");
    assert_eq!(preflight.status, 200);
    assert_eq!(preflight.header("access-control-allow-origin"), Some("*"));
    assert!(preflight.body.is_empty());
}

#[test]
fn watch_streams_a_later_put_as_json_lines() {
    let server = TestServer::start();
    let mut watch = Stream::open(
        &server,
        "/v3/watch",
        r#"{"create_request":{"key":"Zm9v","prev_kv":true}}"#,
    );
    let created = watch.next();
    assert_eq!(created["result"]["created"], json!(true), "{created}");
    let start = int(&created["result"]["header"]["revision"]);

    // The watcher exists once "created" arrived: the put must reach it.
    post_ok(&server, "/v3/kv/put", r#"{"key":"Zm9v","value":"YmFy"}"#);
    let event = watch.next();
    let result = &event["result"];
    assert_eq!(int(&result["header"]["revision"]), start + 1);
    assert_eq!(
        result["events"],
        json!([{"kv":{"key":"Zm9v","create_revision":(start + 1).to_string(),
            "mod_revision":(start + 1).to_string(),"version":"1","value":"YmFy"}}])
    );
    post_ok(&server, "/v3/kv/deleterange", r#"{"key":"Zm9v"}"#);
    let event = watch.next();
    let deleted = &event["result"]["events"][0];
    assert_eq!(deleted["type"], json!("DELETE"));
    assert_eq!(deleted["prev_kv"]["value"], json!("YmFy"));
    assert_eq!(watchers(&server), 1);
    // The client going away cancels the watch.
    drop(watch);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while watchers(&server) != 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "watcher kept after the client left"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }

    // History from a start revision.
    let mut watch = Stream::open(
        &server,
        "/v3beta/watch",
        &format!(
            r#"{{"create_request":{{"key":"Zm9v","start_revision":"{}"}}}}"#,
            start + 1
        ),
    );
    assert_eq!(watch.next()["result"]["created"], json!(true));
    let mut types = Vec::new();
    while types.len() < 2 {
        let line = watch.next();
        for event in line["result"]["events"].as_array().expect("events") {
            types.push(event.get("type").cloned().unwrap_or(json!("PUT")));
        }
    }
    assert_eq!(types, [json!("PUT"), json!("DELETE")]);
    drop(watch);

    // Several requests in one body: the second one is answered too.
    let mut watch = Stream::open(
        &server,
        "/v3/watch",
        r#"{"create_request":{"key":"Zm9v"}} {"progress_request":{}}"#,
    );
    assert_eq!(watch.next()["result"]["created"], json!(true));
    assert_eq!(
        watch.next()["result"]["watch_id"],
        json!("-1"),
        "progress response"
    );
}

#[test]
fn lease_grant_keepalive_timetolive_revoke() {
    let server = TestServer::start();
    let grant = post_ok(&server, "/v3/lease/grant", r#"{"TTL":60,"ID":5}"#);
    assert_eq!((&grant["ID"], &grant["TTL"]), (&json!("5"), &json!("60")));
    post_ok(
        &server,
        "/v3/kv/put",
        r#"{"key":"bGVhc2Vk","value":"eA==","lease":"5"}"#,
    );

    // One keep-alive request: one response line, then the stream ends.
    let keepalive = Stream::open(&server, "/v3/lease/keepalive", r#"{"ID":5}"#);
    let mut keepalive = keepalive;
    let renewed = keepalive.next();
    assert_eq!(
        (&renewed["result"]["ID"], &renewed["result"]["TTL"]),
        (&json!("5"), &json!("60"))
    );
    assert_eq!(keepalive.rest(), "");

    let ttl = post_ok(&server, "/v3/lease/timetolive", r#"{"ID":5,"keys":true}"#);
    assert_eq!(ttl["grantedTTL"], json!("60"));
    assert!((1..=60).contains(&int(&ttl["TTL"])), "{ttl}");
    assert_eq!(ttl["keys"], json!(["bGVhc2Vk"]));
    let leases = post_ok(&server, "/v3/kv/lease/leases", "{}");
    assert_eq!(leases["leases"], json!([{"ID":"5"}]));

    post_ok(&server, "/v3/lease/revoke", r#"{"ID":"5"}"#);
    let ttl = post_ok(&server, "/v3/kv/lease/timetolive", r#"{"ID":5}"#);
    assert_eq!(ttl["TTL"], json!("-1"));
    let range = post_ok(&server, "/v3/kv/range", r#"{"key":"bGVhc2Vk"}"#);
    assert!(
        range.get("kvs").is_none(),
        "the lease's key went with it: {range}"
    );
}

#[test]
fn election_and_lock_through_the_gateway() {
    let server = TestServer::start();
    post_ok(&server, "/v3/lease/grant", r#"{"TTL":60,"ID":7}"#);
    // Election "el" with value "v1" under lease 7: leader key "el/7".
    let campaign = post_ok(
        &server,
        "/v3/election/campaign",
        r#"{"name":"ZWw=","value":"djE=","lease":7}"#,
    );
    let leader = campaign["leader"].clone();
    assert_eq!(
        (&leader["name"], &leader["key"]),
        (&json!("ZWw="), &json!("ZWwvNw=="))
    );
    assert_eq!(leader["lease"], json!("7"));
    let current = post_ok(&server, "/v3/election/leader", r#"{"name":"ZWw="}"#);
    assert_eq!(current["kv"]["value"], json!("djE="));

    let mut observe = Stream::open(&server, "/v3/election/observe", r#"{"name":"ZWw="}"#);
    assert_eq!(observe.next()["result"]["kv"]["value"], json!("djE="));
    let proclaim = json!({"leader": leader, "value": "djI="}).to_string();
    post_ok(&server, "/v3/election/proclaim", &proclaim);
    let proclaimed = observe.next();
    assert_eq!(proclaimed["result"]["kv"]["value"], json!("djI="));
    assert_eq!(proclaimed["result"]["kv"]["version"], json!("2"));
    drop(observe);

    post_ok(
        &server,
        "/v3/election/resign",
        &json!({"leader": leader}).to_string(),
    );
    let (status, body) = post(&server, "/v3/election/leader", r#"{"name":"ZWw="}"#);
    assert_eq!(status, 500);
    assert_eq!(
        body,
        r#"{"error":"election: no leader","message":"election: no leader","code":2}"#
    );

    let lock = post_ok(&server, "/v3/lock/lock", r#"{"name":"bGs=","lease":7}"#);
    assert_eq!(lock["key"], json!("bGsvNw=="));
    let held = post_ok(&server, "/v3/kv/range", r#"{"key":"bGsvNw=="}"#);
    assert_eq!(held["count"], json!("1"));
    post_ok(&server, "/v3/lock/unlock", r#"{"key":"bGsvNw=="}"#);
    let released = post_ok(&server, "/v3/kv/range", r#"{"key":"bGsvNw=="}"#);
    assert!(released.get("kvs").is_none(), "{released}");
}
