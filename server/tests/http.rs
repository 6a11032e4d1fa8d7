//! HTTP/1.1 endpoints on the client URL: `GET /health` and `GET /version`, as etcd serves
//! them (etcd etcdserver/api/etcdhttp/metrics.go and base.go).

mod common;

use common::{http_get, http_request, TestServer};

/// Parses `X.Y.Z` into three numbers.
fn semver(text: &str) -> Option<(u64, u64, u64)> {
    let mut parts = text.split('.');
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    let patch = parts.next()?.parse().ok()?;
    if parts.next().is_some() {
        return None;
    }
    Some((major, minor, patch))
}

#[test]
fn health_reports_true_as_json() {
    let server = TestServer::start();
    let response = http_get(server.client_port(), "/health").expect("GET /health");
    assert_eq!(response.status, 200);
    let json: serde_json::Value = serde_json::from_slice(&response.body)
        .unwrap_or_else(|e| panic!("/health body {:?} is not JSON: {e}", response.text()));
    let object = json.as_object().expect("/health body is a JSON object");
    // etcd 3.4 answers exactly {"health":"true"}; 3.5+ adds "reason":"" when healthy.
    assert_eq!(object.get("health"), Some(&serde_json::json!("true")));
    for (key, value) in object {
        match key.as_str() {
            "health" => {}
            "reason" => assert_eq!(value, &serde_json::json!(""), "reason when healthy"),
            other => panic!("unexpected key {other:?} in /health body {json}"),
        }
    }
    assert!(
        response.text().starts_with("{\"health\":\"true\""),
        "field order as etcd's: {:?}",
        response.text()
    );
}

#[test]
fn version_reports_server_and_cluster_versions() {
    let server = TestServer::start();
    let response = http_get(server.client_port(), "/version").expect("GET /version");
    assert_eq!(response.status, 200);
    assert_eq!(response.header("content-type"), Some("application/json"));
    let json: serde_json::Value = serde_json::from_slice(&response.body)
        .unwrap_or_else(|e| panic!("/version body {:?} is not JSON: {e}", response.text()));
    let object = json.as_object().expect("/version body is a JSON object");
    let server_version = object
        .get("etcdserver")
        .and_then(|v| v.as_str())
        .expect("etcdserver key");
    let cluster_version = object
        .get("etcdcluster")
        .and_then(|v| v.as_str())
        .expect("etcdcluster key");
    let (major, minor, _) = semver(server_version).expect("etcdserver is X.Y.Z");
    assert_eq!(major, 3, "etcdserver major version");
    // The cluster version keeps major.minor only (etcd version.Cluster) → "X.Y.0".
    assert_eq!(cluster_version, format!("{major}.{minor}.0"));
    for (key, value) in object {
        match key.as_str() {
            "etcdserver" | "etcdcluster" => {}
            // "storage" exists from etcd 3.6 on; "cairn" is Cairn's own version, reported
            // beside the etcd API version it implements (DESIGN.md section 6).
            "storage" | "cairn" => {
                let text = value.as_str().unwrap_or_default();
                assert!(semver(text).is_some(), "{key} is X.Y.Z: {json}");
            }
            other => panic!("unexpected key {other:?} in /version body {json}"),
        }
    }
}

#[test]
fn health_and_version_reject_other_methods() {
    let server = TestServer::start();
    for path in ["/health", "/version"] {
        let response = http_request(server.client_port(), "POST", path).expect("POST");
        assert_eq!(response.status, 405, "POST {path}");
        assert_eq!(response.header("allow"), Some("GET"), "POST {path}");
        assert_eq!(response.text(), "Method Not Allowed\n", "POST {path}");
    }
}

#[test]
fn unknown_path_is_404() {
    let server = TestServer::start();
    let response = http_get(server.client_port(), "/no-such-path").expect("GET");
    assert_eq!(response.status, 404);
    assert_eq!(response.text(), "404 page not found\n");
}
