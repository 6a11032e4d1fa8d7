//! `/health`, `/livez` and `/readyz` as etcd 3.5/3.6 serve them
//! (`server/etcdserver/api/etcdhttp/health.go`): query variants, verbose check lists,
//! per-check subpaths, and a 3-member cluster losing quorum. `/health` is compared with
//! etcd 3.4 (`CAIRN_TEST_TARGET=etcd`), which has no `/livez` or `/readyz`.

mod common;

use common::cluster::{wait_until, Cluster};
use common::{http_get, http_request, skip_unless_cairn, Target, TestServer};

/// The `/health` body as JSON.
fn health_json(port: u16, path: &str) -> (u16, serde_json::Value) {
    let response = http_get(port, path).unwrap_or_else(|| panic!("GET {path}"));
    let json = serde_json::from_slice(&response.body)
        .unwrap_or_else(|e| panic!("{path} body {:?} is not JSON: {e}", response.text()));
    (response.status, json)
}

#[test]
fn health_variants_are_healthy_on_a_lone_member() {
    let server = TestServer::start();
    let port = server.client_port();
    for path in [
        "/health",
        "/health?serializable=true",
        "/health?exclude=NOSPACE",
        "/health?serializable=false&exclude=NOSPACE&exclude=CORRUPT",
    ] {
        let (status, json) = health_json(port, path);
        assert_eq!(status, 200, "{path}: {json}");
        assert_eq!(json["health"], "true", "{path}");
        if server.target() == Target::Cairn {
            // etcd 3.5+: the reason is present and empty when healthy.
            assert_eq!(json["reason"], "", "{path}");
        }
    }
}

#[test]
fn livez_and_readyz_answer_ok_and_list_checks_when_verbose() {
    if skip_unless_cairn("etcd 3.4 has no /livez or /readyz") {
        return;
    }
    let server = TestServer::start();
    let port = server.client_port();
    for path in ["/livez", "/readyz"] {
        let response = http_get(port, path).expect(path);
        assert_eq!(response.status, 200, "{path}");
        assert_eq!(response.text(), "ok\n", "{path}");
        assert_eq!(
            response.header("content-type"),
            Some("text/plain; charset=utf-8")
        );
        assert_eq!(response.header("x-content-type-options"), Some("nosniff"));
    }
    let livez = http_get(port, "/livez?verbose").expect("livez");
    assert_eq!(livez.text(), "[+]serializable_read ok\nok\n");
    let readyz = http_get(port, "/readyz?verbose").expect("readyz");
    assert_eq!(
        readyz.text(),
        "[+]data_corruption ok\n[+]serializable_read ok\n[+]linearizable_read ok\n[+]non_learner ok\nok\n"
    );
    let excluded = http_get(
        port,
        "/readyz?verbose&exclude=linearizable_read&exclude=no_such_check",
    )
    .expect("readyz");
    assert_eq!(excluded.status, 200);
    assert_eq!(
        excluded.text(),
        "[+]data_corruption ok\n[+]serializable_read ok\n[+]non_learner ok\nok\n"
    );
    let single = http_get(port, "/readyz/linearizable_read?verbose").expect("subpath");
    assert_eq!(single.status, 200);
    assert_eq!(single.text(), "[+]linearizable_read ok\nok\n");
    let unknown = http_get(port, "/readyz/no_such_check").expect("unknown subpath");
    assert_eq!(unknown.status, 404);
    assert_eq!(unknown.text(), "404 page not found\n");
    for path in ["/livez", "/readyz", "/readyz/non_learner"] {
        let post = http_request(port, "POST", path).expect("POST");
        assert_eq!(post.status, 405, "POST {path}");
        assert_eq!(post.header("allow"), Some("GET"));
    }
}

#[test]
fn health_checks_are_counted_in_metrics() {
    if skip_unless_cairn("etcd 3.4 has no etcd_server_health_success") {
        return;
    }
    let server = TestServer::start();
    let port = server.client_port();
    let count = |name: &str| -> f64 {
        let text = http_get(port, "/metrics").expect("metrics").text();
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{name} in /metrics"))
    };
    // The test helper polled /health while the server started: count from here.
    let before = count("etcd_server_health_success");
    let failures_before = count("etcd_server_health_failures");
    for _ in 0..3 {
        assert_eq!(http_get(port, "/health").expect("health").status, 200);
    }
    assert_eq!(count("etcd_server_health_success") - before, 3.0);
    assert_eq!(count("etcd_server_health_failures") - failures_before, 0.0);
}

#[test]
fn quorum_loss_fails_health_and_readyz_but_not_livez() {
    let mut cluster = Cluster::start(3);
    let cairn = cluster.target() == Target::Cairn;
    cluster.wait_all_healthy();
    let leader = cluster.wait_leader();
    let survivor = cluster.followers(leader)[0];
    let port = cluster.member(survivor).client_port();
    let (status, json) = health_json(port, "/health");
    assert_eq!((status, json["health"].as_str()), (200, Some("true")));
    for i in 0..cluster.len() {
        if i != survivor {
            cluster.kill9(i);
        }
    }
    // The survivor learns it has no leader within an election timeout (it times out and
    // turns pre-candidate): poll until /health says so. Meanwhile the linearizable read
    // may fail instead (e.g. "RANGE ERROR:etcdserver: leader changed"), never succeed
    // for long: the answer is 200 only while the old leader is still believed in.
    let json = wait_until("/health to report the lost leader", 15_000, || {
        let (status, json) = health_json(port, "/health");
        // etcd 3.4 gives no reason: {"health":"false"}.
        let settled = !cairn || json["reason"] == "RAFT NO LEADER";
        if status == 503 && settled {
            Ok(json)
        } else {
            Err(format!("{status} {json}"))
        }
    });
    assert_eq!(json["health"], "false");
    if !cairn {
        // etcd 3.4 has neither ?serializable=true nor /livez and /readyz.
        return;
    }
    // A serializable check looks at local state only: every core still answers.
    let (status, json) = health_json(port, "/health?serializable=true");
    assert_eq!(status, 200, "{json}");
    assert_eq!(json["health"], "true");
    let livez = http_get(port, "/livez").expect("livez");
    assert_eq!(livez.status, 200, "{}", livez.text());
    let readyz = http_get(port, "/readyz?verbose").expect("readyz");
    assert_eq!(readyz.status, 503, "{}", readyz.text());
    let text = readyz.text();
    assert!(text.contains("[+]data_corruption ok\n"), "{text}");
    assert!(text.contains("[+]serializable_read ok\n"), "{text}");
    assert!(
        text.contains("[-]linearizable_read failed: etcdserver: "),
        "names the failing check with etcd's error: {text}"
    );
    assert!(text.contains("[+]non_learner ok\n"), "{text}");
    assert!(
        !text.ends_with("ok\nok\n"),
        "no trailing ok on failure: {text}"
    );
    // Without ?verbose a failure still lists the checks.
    let plain = http_get(port, "/readyz").expect("readyz");
    assert_eq!(plain.status, 503);
    assert!(plain.text().contains("[-]linearizable_read failed"));
}
