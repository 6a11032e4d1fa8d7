//! `/metrics` as etcd serves it: Prometheus text that `promtool check metrics` parses, with
//! etcd's metric names, types and labels (etcd 3.4 `etcdserver/metrics.go`, `wal/metrics.go`,
//! `mvcc/metrics.go`, `mvcc/backend/metrics.go`, `rafthttp/metrics.go`,
//! `v3rpc/metrics.go`, go-grpc-prometheus), values that move with the load, and the
//! `--listen-metrics-urls` listener. `CAIRN_TEST_TARGET=etcd` runs them against etcd 3.4.

mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::process::{Command, Stdio};

use common::{free_port, http_get, http_request, runtime, Target, TestServer};

/// Every metric family the server must export, with its Prometheus type.
const REQUIRED: &[(&str, &str)] = &[
    ("etcd_server_has_leader", "gauge"),
    ("etcd_server_is_leader", "gauge"),
    ("etcd_server_leader_changes_seen_total", "counter"),
    ("etcd_server_proposals_committed_total", "gauge"),
    ("etcd_server_proposals_applied_total", "gauge"),
    ("etcd_server_proposals_pending", "gauge"),
    ("etcd_server_proposals_failed_total", "counter"),
    ("etcd_server_slow_apply_total", "counter"),
    ("etcd_server_heartbeat_send_failures_total", "counter"),
    ("etcd_server_id", "gauge"),
    ("etcd_server_version", "gauge"),
    ("etcd_disk_wal_fsync_duration_seconds", "histogram"),
    ("etcd_disk_backend_commit_duration_seconds", "histogram"),
    ("etcd_mvcc_db_total_size_in_bytes", "gauge"),
    ("etcd_mvcc_db_total_size_in_use_in_bytes", "gauge"),
    ("etcd_debugging_mvcc_keys_total", "gauge"),
    ("etcd_debugging_mvcc_watcher_total", "gauge"),
    ("etcd_debugging_mvcc_watch_stream_total", "gauge"),
    ("etcd_debugging_mvcc_db_total_size_in_bytes", "gauge"),
    ("etcd_debugging_mvcc_current_revision", "gauge"),
    ("etcd_debugging_mvcc_compact_revision", "gauge"),
    ("etcd_debugging_mvcc_put_total", "counter"),
    ("etcd_mvcc_put_total", "counter"),
    ("etcd_cluster_version", "gauge"),
    ("etcd_server_quota_backend_bytes", "gauge"),
    ("etcd_network_client_grpc_sent_bytes_total", "counter"),
    ("etcd_network_client_grpc_received_bytes_total", "counter"),
    ("grpc_server_started_total", "counter"),
    ("grpc_server_handled_total", "counter"),
    ("process_resident_memory_bytes", "gauge"),
    ("process_cpu_seconds_total", "counter"),
    ("process_open_fds", "gauge"),
    ("process_max_fds", "gauge"),
    ("process_start_time_seconds", "gauge"),
    ("process_virtual_memory_bytes", "gauge"),
];

/// Families exported only once a peer exists (a cluster; see `cluster_peer_metrics`).
const PEER_FAMILIES: &[(&str, &str)] = &[
    ("etcd_network_peer_sent_bytes_total", "counter"),
    ("etcd_network_peer_received_bytes_total", "counter"),
    ("etcd_network_peer_round_trip_time_seconds", "histogram"),
];

/// promtool's lint findings that etcd 3.4's own `/metrics` has too: they follow from
/// etcd's names, which dashboards depend on, so Cairn keeps them.
const ETCD_LINT_FINDINGS: &[&str] = &[
    "etcd_debugging_mvcc_keys_total",
    "etcd_debugging_mvcc_watcher_total",
    "etcd_server_proposals_applied_total",
    "etcd_server_proposals_committed_total",
    "etcd_server_health_failures",
    "etcd_server_health_success",
    "etcd_debugging_lease_ttl_total",
    "etcd_debugging_mvcc_db_compaction_pause_duration_milliseconds",
    "etcd_debugging_mvcc_db_compaction_total_duration_milliseconds",
    "etcd_debugging_mvcc_index_compaction_pause_duration_milliseconds",
    "etcd_debugging_mvcc_pending_events_total",
    "etcd_debugging_mvcc_slow_watcher_total",
    "etcd_debugging_mvcc_watch_stream_total",
    "etcd_disk_wal_write_bytes_total",
    "etcd_grpc_proxy_cache_hits_total",
    "etcd_grpc_proxy_cache_keys_total",
    "etcd_grpc_proxy_cache_misses_total",
    "etcd_grpc_proxy_watchers_coalescing_total",
    "etcd_server_learner_promote_successes",
    "etcd_server_snapshot_apply_in_progress_total",
];

/// One scrape: `# TYPE` per family and the value of every series (name + labels as sent).
struct Scrape {
    types: BTreeMap<String, String>,
    samples: Vec<(String, BTreeMap<String, String>, f64)>,
    text: String,
}

impl Scrape {
    fn parse(text: &str) -> Scrape {
        let mut types = BTreeMap::new();
        let mut samples = Vec::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').expect("# TYPE name kind");
                types.insert(name.to_string(), kind.to_string());
                continue;
            }
            if line.starts_with('#') || line.is_empty() {
                continue;
            }
            let (series, value) = line.rsplit_once(' ').expect("series value");
            let value: f64 = value
                .parse()
                .unwrap_or_else(|_| panic!("value in {line:?}"));
            let (name, labels) = match series.split_once('{') {
                Some((name, rest)) => (name, parse_labels(rest.trim_end_matches('}'))),
                None => (series, BTreeMap::new()),
            };
            samples.push((name.to_string(), labels, value));
        }
        Scrape {
            types,
            samples,
            text: text.to_string(),
        }
    }

    /// The sum of every series named `name` whose labels include `labels`.
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.samples
            .iter()
            .filter(|(n, l, _)| {
                n == name
                    && labels
                        .iter()
                        .all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v))
            })
            .map(|(_, _, v)| v)
            .sum()
    }

    /// Whether a series named `name` with `labels` exists.
    fn has(&self, name: &str, labels: &[(&str, &str)]) -> bool {
        self.samples.iter().any(|(n, l, _)| {
            n == name
                && labels
                    .iter()
                    .all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v))
        })
    }
}

fn parse_labels(text: &str) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    let mut rest = text;
    while let Some((key, after)) = rest.split_once("=\"") {
        let end = after.find('"').expect("closing quote");
        labels.insert(
            key.trim_start_matches(',').to_string(),
            after[..end].to_string(),
        );
        rest = &after[end + 1..];
    }
    labels
}

fn scrape(port: u16) -> Scrape {
    let response = http_get(port, "/metrics").expect("GET /metrics");
    assert_eq!(response.status, 200, "{}", response.text());
    assert_eq!(
        response.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    Scrape::parse(&response.text())
}

/// Runs `promtool check metrics` on `text`: (exit code, output).
fn promtool(text: &str) -> (i32, String) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool is installed (Debian package `prometheus`; scripts/test.sh installs it)");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("write to promtool");
    let out = child.wait_with_output().expect("promtool runs");
    let mut output = String::from_utf8_lossy(&out.stdout).into_owned();
    output.push_str(&String::from_utf8_lossy(&out.stderr));
    (out.status.code().unwrap_or(-1), output)
}

#[test]
fn metrics_pass_promtool_and_hold_etcds_names() {
    let server = TestServer::start();
    let port = server.client_port();
    let page = scrape(port);
    let (code, output) = promtool(&page.text);
    // 0: clean; 3: lint findings only (1 would be a parse error).
    assert!(code == 0 || code == 3, "promtool exit {code}: {output}");
    for line in output.lines().filter(|l| !l.trim().is_empty()) {
        let name = line.split_whitespace().next().unwrap_or_default();
        assert!(
            ETCD_LINT_FINDINGS.contains(&name),
            "promtool finding that etcd does not have: {line}"
        );
    }
    for (name, kind) in REQUIRED {
        assert_eq!(
            page.types.get(*name).map(String::as_str),
            Some(*kind),
            "# TYPE of {name}"
        );
    }
    assert_eq!(page.value("etcd_server_has_leader", &[]), 1.0);
    assert_eq!(page.value("etcd_server_is_leader", &[]), 1.0);
    assert!(page.value("etcd_server_leader_changes_seen_total", &[]) >= 1.0);
    assert!(page.value("process_resident_memory_bytes", &[]) > 0.0);
    assert!(page.value("process_open_fds", &[]) > 0.0);
    assert!(page.value("etcd_mvcc_db_total_size_in_bytes", &[]) > 0.0);
    // As go-grpc-prometheus, every method starts at 0 with every code.
    for code in [
        "OK",
        "Canceled",
        "InvalidArgument",
        "Unavailable",
        "Unauthenticated",
    ] {
        assert!(
            page.has(
                "grpc_server_handled_total",
                &[
                    ("grpc_type", "unary"),
                    ("grpc_service", "etcdserverpb.KV"),
                    ("grpc_method", "Range"),
                    ("grpc_code", code),
                ],
            ),
            "Range with code {code}"
        );
    }
    assert!(page.has(
        "grpc_server_started_total",
        &[
            ("grpc_type", "bidi_stream"),
            ("grpc_service", "etcdserverpb.Watch"),
            ("grpc_method", "Watch"),
        ],
    ));
    // The member ID label is the hex ID etcdctl prints.
    let output = server.etcdctl(&["endpoint", "status", "-w", "json"]);
    assert!(output.status.success(), "{output:?}");
    let status: serde_json::Value =
        serde_json::from_slice(&output.stdout).expect("endpoint status JSON");
    let id = status[0]["Status"]["header"]["member_id"]
        .as_u64()
        .expect("member_id");
    assert_eq!(
        page.value("etcd_server_id", &[("server_id", &format!("{id:x}"))]),
        1.0
    );
    // Only --metrics=extensive adds the handling-time histogram.
    assert!(!page.types.contains_key("grpc_server_handling_seconds"));
}

#[test]
fn counters_move_under_load() {
    const PUTS: usize = 40;
    let server = TestServer::start();
    let port = server.client_port();
    let endpoint = server.endpoint();
    let rt = runtime();
    let before = scrape(port);
    let (watched, during) = rt.block_on(async {
        let mut client = etcd_client::Client::connect([endpoint.as_str()], None)
            .await
            .expect("connect");
        let (_watcher, mut stream) = client
            .watch(
                "load/",
                Some(etcd_client::WatchOptions::new().with_prefix()),
            )
            .await
            .expect("watch");
        for i in 0..PUTS {
            client
                .put(format!("load/{i:03}"), vec![b'v'; 100], None)
                .await
                .expect("put");
            client.get(format!("load/{i:03}"), None).await.expect("get");
        }
        // A put rewriting an existing key adds no key.
        client.put("load/000", "again", None).await.expect("put");
        let during = tokio::task::spawn_blocking(move || scrape(port))
            .await
            .expect("scrape");
        let mut watched = 0;
        while watched < PUTS + 1 {
            let response = stream.message().await.expect("watch").expect("response");
            watched += response.events().len();
        }
        (watched, during)
    });
    assert_eq!(watched, PUTS + 1);
    let delta = |name: &str, labels: &[(&str, &str)]| {
        during.value(name, labels) - before.value(name, labels)
    };
    let writes = (PUTS + 1) as f64;
    assert!(delta("etcd_server_proposals_committed_total", &[]) >= writes);
    assert!(delta("etcd_server_proposals_applied_total", &[]) >= writes);
    let put_ok = [
        ("grpc_type", "unary"),
        ("grpc_service", "etcdserverpb.KV"),
        ("grpc_method", "Put"),
        ("grpc_code", "OK"),
    ];
    assert_eq!(delta("grpc_server_handled_total", &put_ok), writes);
    let range_ok = [("grpc_method", "Range"), ("grpc_code", "OK")];
    assert_eq!(delta("grpc_server_handled_total", &range_ok), PUTS as f64);
    assert_eq!(
        delta("grpc_server_started_total", &[("grpc_method", "Put")]),
        writes
    );
    assert!(delta("etcd_disk_wal_fsync_duration_seconds_count", &[]) >= 1.0);
    // Each put carries a 100-byte value: the request bytes alone exceed PUTS * 100.
    assert!(delta("etcd_network_client_grpc_received_bytes_total", &[]) > (PUTS * 100) as f64);
    // Each get returns the 100-byte value.
    assert!(delta("etcd_network_client_grpc_sent_bytes_total", &[]) > (PUTS * 100) as f64);
    // One revision and one put per write.
    assert_eq!(delta("etcd_debugging_mvcc_current_revision", &[]), writes);
    assert_eq!(delta("etcd_mvcc_put_total", &[]), writes);
    assert_eq!(during.value("etcd_debugging_mvcc_watcher_total", &[]), 1.0);
    assert_eq!(
        during.value("etcd_debugging_mvcc_watch_stream_total", &[]),
        1.0
    );
    if server.target() == Target::Cairn {
        assert_eq!(delta("etcd_debugging_mvcc_keys_total", &[]), PUTS as f64);
        assert!(delta("cairn_wal_fsync_batch_entries_count", &[]) >= 1.0);
        let per_core: f64 = during.value("cairn_server_core_requests_total", &[])
            - before.value("cairn_server_core_requests_total", &[]);
        // Puts, gets and the watch itself (the scrape's own HTTP request is not gRPC).
        assert!(
            per_core >= (2 * PUTS + 2) as f64,
            "per-core calls: {per_core}"
        );
    }
    assert_eq!(during.value("etcd_server_proposals_pending", &[]), 0.0);
}

#[test]
fn failed_calls_count_under_their_grpc_code() {
    let server = TestServer::start();
    let port = server.client_port();
    let endpoint = server.endpoint();
    let before = scrape(port);
    let error = runtime().block_on(async {
        let mut client = etcd_client::Client::connect([endpoint.as_str()], None)
            .await
            .expect("connect");
        client.put("", "v", None).await.expect_err("empty key")
    });
    assert!(
        error
            .to_string()
            .contains("etcdserver: key is not provided"),
        "{error}"
    );
    let after = scrape(port);
    let put = |code: &'static str| {
        [
            ("grpc_type", "unary"),
            ("grpc_service", "etcdserverpb.KV"),
            ("grpc_method", "Put"),
            ("grpc_code", code),
        ]
    };
    let delta = |labels: &[(&str, &str)]| {
        after.value("grpc_server_handled_total", labels)
            - before.value("grpc_server_handled_total", labels)
    };
    assert_eq!(delta(&put("InvalidArgument")), 1.0);
    assert_eq!(delta(&put("OK")), 0.0);
    assert_eq!(
        after.value("grpc_server_started_total", &put("OK")[..3])
            - before.value("grpc_server_started_total", &put("OK")[..3]),
        1.0
    );
}

#[test]
fn lease_counters_follow_grant_keepalive_and_revoke() {
    let server = TestServer::start();
    let port = server.client_port();
    let before = scrape(port);
    let output = server.etcdctl(&["lease", "grant", "60"]);
    assert!(output.status.success(), "{output:?}");
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    // "lease 694d7a4ac7b2ea0a granted with TTL(60s)"
    let id = text
        .split_whitespace()
        .nth(1)
        .expect("lease id")
        .to_string();
    let output = server.etcdctl(&["lease", "keep-alive", "--once", &id]);
    assert!(output.status.success(), "{output:?}");
    let output = server.etcdctl(&["lease", "revoke", &id]);
    assert!(output.status.success(), "{output:?}");
    let after = scrape(port);
    let delta = |name: &str| after.value(name, &[]) - before.value(name, &[]);
    assert_eq!(delta("etcd_debugging_lease_granted_total"), 1.0);
    assert_eq!(delta("etcd_debugging_lease_renewed_total"), 1.0);
    assert_eq!(delta("etcd_debugging_lease_revoked_total"), 1.0);
}

#[test]
fn extensive_adds_grpc_handling_seconds() {
    let server = TestServer::builder().args(&["--metrics=extensive"]).start();
    let output = server.etcdctl(&["put", "k", "v"]);
    assert!(output.status.success(), "{output:?}");
    let page = scrape(server.client_port());
    assert_eq!(
        page.types
            .get("grpc_server_handling_seconds")
            .map(String::as_str),
        Some("histogram")
    );
    assert!(
        page.value(
            "grpc_server_handling_seconds_count",
            &[("grpc_method", "Put"), ("grpc_type", "unary")]
        ) >= 1.0
    );
}

#[test]
fn metrics_listener_serves_metrics_and_health_only() {
    let metrics_port = free_port();
    let url = format!("http://127.0.0.1:{metrics_port}");
    let server = TestServer::builder()
        .args(&["--listen-metrics-urls", &url])
        .start();
    let page = scrape(metrics_port);
    assert_eq!(page.value("etcd_server_has_leader", &[]), 1.0);
    let health = http_get(metrics_port, "/health").expect("GET /health");
    assert_eq!(health.status, 200, "{}", health.text());
    assert!(health.text().starts_with(r#"{"health":"true""#));
    // etcd's metrics mux has no /version.
    let version = http_get(metrics_port, "/version").expect("GET /version");
    assert_eq!(version.status, 404);
    assert_eq!(version.text(), "404 page not found\n");
    // The client URL still serves /version.
    assert_eq!(
        http_get(server.client_port(), "/version")
            .expect("GET /version")
            .status,
        200
    );
    let post = http_request(metrics_port, "POST", "/health").expect("POST /health");
    assert_eq!(post.status, 405);
}

#[test]
fn invalid_metrics_flag_is_refused() {
    if common::skip_unless_cairn("the flag parser's message is Cairn's") {
        return;
    }
    let output = Target::Cairn
        .command()
        .args(["--metrics", "full"])
        .output()
        .expect("run cairn");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("full"), "{stderr}");
}

#[test]
fn cluster_peer_metrics() {
    use common::cluster::{wait_until, Cluster};
    if common::skip_unless_cairn("cluster helper runs cairn") {
        return;
    }
    let mut cluster = Cluster::start(3);
    cluster.wait_all_healthy();
    let leader = cluster.wait_leader();
    let output = cluster.etcdctl(leader, &["put", "peer-key", "v"]);
    assert!(output.status.success(), "{output:?}");
    let port = cluster.member(leader).client_port();
    let followers = cluster.followers(leader);
    let follower_id = format!("{:x}", cluster.member_id(followers[0]));
    // Keepalive PINGs go out every second: wait for one round trip to be observed.
    let page = wait_until("a peer round trip in /metrics", 10_000, || {
        let page = scrape(port);
        let count = page.value(
            "etcd_network_peer_round_trip_time_seconds_count",
            &[("To", &follower_id)],
        );
        if count >= 1.0 {
            Ok(page)
        } else {
            Err(format!("count {count}"))
        }
    });
    for (name, kind) in PEER_FAMILIES {
        assert_eq!(
            page.types.get(*name).map(String::as_str),
            Some(*kind),
            "{name}"
        );
    }
    assert!(
        page.value(
            "etcd_network_peer_sent_bytes_total",
            &[("To", &follower_id)]
        ) > 0.0
    );
    assert!(
        page.value(
            "etcd_network_peer_received_bytes_total",
            &[("From", &follower_id)]
        ) > 0.0
    );
    assert_eq!(page.value("etcd_server_is_leader", &[]), 1.0);
    let follower_page = scrape(cluster.member(followers[0]).client_port());
    assert_eq!(follower_page.value("etcd_server_is_leader", &[]), 0.0);
    assert_eq!(follower_page.value("etcd_server_has_leader", &[]), 1.0);
    // Every member applied the same entries.
    let applied = |p: &Scrape| p.value("etcd_server_proposals_applied_total", &[]);
    assert!(applied(&follower_page) > 0.0);
    assert!(applied(&page) > 0.0);
}
