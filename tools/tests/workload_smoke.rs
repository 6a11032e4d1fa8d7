//! Smoke runs of every etcd-benchmark workload of `cairn-bench` (put, range both
//! consistencies, txn-put, txn-mixed, lease-keepalive, stm, kube, watch) against a real
//! cairn binary with tiny sizes, checking the `--json` fields (requests == total,
//! errors == 0) and, for kube, that conflicts were retried and no update was lost; and
//! of `compare --rounds 2` with the workload matrix (load and watch workloads), checking
//! the table, the JSON file and the charts (PNG magic, SVG as XML). Runs only when
//! `CAIRN_BENCH_SMOKE_BIN` names a cairn binary (this crate cannot build the server);
//! compare uses `etcd` on PATH as its second target, or the cairn binary again.
//!
//! ```text
//! CAIRN_BENCH_SMOKE_BIN=$PWD/target/debug/cairn cargo test -p tools --test workload_smoke
//! ```

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use tools::ServerProcess;

fn cairn_bin() -> Option<PathBuf> {
    let Some(bin) = std::env::var_os("CAIRN_BENCH_SMOKE_BIN") else {
        eprintln!("CAIRN_BENCH_SMOKE_BIN is not set; workload smoke run not done");
        return None;
    };
    Some(PathBuf::from(bin))
}

/// Runs cairn-bench with `args`, asserts exit status 0, returns stdout.
fn bench(args: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_cairn-bench"))
        .args(args)
        .output()
        .expect("cairn-bench runs");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "cairn-bench {args:?} failed: {stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

fn json(text: &str) -> Value {
    serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// After the kube run: conflicts were retried, and every object's value counts its
/// successful updates — its update counter equals its etcd version (one put per
/// successful update; a lost update would leave the counter behind), and the counters
/// sum to the report's successful updates.
async fn check_kube_objects(endpoint: &str, report: &Value) {
    let counter = |name: &str| report["counters"][name].as_u64().unwrap_or(0);
    assert!(counter("kube_updates") > 0, "{report}");
    assert!(
        counter("kube_retries") > 0,
        "no conflict was retried: {report}"
    );
    assert!(
        counter("kube_retries") <= counter("kube_conflicts"),
        "{report}"
    );
    let mut client = etcd_client::Client::connect([endpoint], None)
        .await
        .unwrap();
    let objects = client
        .get(
            tools::KUBE_PODS_PREFIX,
            Some(etcd_client::GetOptions::new().with_prefix()),
        )
        .await
        .unwrap();
    let mut sum = 0;
    for kv in objects.kvs() {
        let updates = tools::object_updates(kv.value()).expect("a kube object value");
        assert_eq!(
            updates,
            kv.version() as u64,
            "{}: counter {updates} but {} puts",
            kv.key_str().unwrap(),
            kv.version()
        );
        sum += updates;
    }
    assert_eq!(sum, counter("kube_updates"), "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_workload_against_cairn() {
    let Some(bin) = cairn_bin() else { return };
    let server = ServerProcess::start("cairn", &bin, Duration::from_secs(30))
        .await
        .unwrap();
    let endpoint = format!("--endpoints={}", server.client_url());
    let common = [
        endpoint.as_str(),
        "--total",
        "60",
        "--clients",
        "4",
        "--conns",
        "2",
        "--key-space-size",
        "50",
        "--json",
    ];
    let runs: [(&str, &[&str], &str); 9] = [
        ("put", &["--sequential-keys"], "put"),
        ("range", &["--consistency", "l"], "range"),
        (
            "range",
            &["--consistency", "s", "--target-leader"],
            "range-serializable",
        ),
        ("txn-put", &["--txn-ops", "2"], "txn-put"),
        (
            "txn-mixed",
            &["--rw-ratio", "2", "--limit", "5"],
            "txn-mixed",
        ),
        ("lease-keepalive", &[], "lease-keepalive"),
        ("stm", &["--keys-per-txn", "2"], "stm"),
        (
            "kube",
            &["--kube-objects", "20", "--kube-page-size", "5"],
            "kube",
        ),
        ("put", &["--rate", "200", "--seq"], "put"),
    ];
    for (command, extra, op) in runs {
        let mut args = vec![command];
        args.extend(common);
        args.extend(extra);
        let report = json(&bench(&args));
        assert_eq!(report["op"], op, "{report}");
        assert_eq!(report["requests"], 60, "{report}");
        assert_eq!(report["ops"], 60, "{report}");
        assert_eq!(report["errors"], 0, "{report}");
        assert!(
            report["throughput_ops_s"].as_f64().unwrap() > 0.0,
            "{report}"
        );
        let p = |k: &str| report[k].as_f64().unwrap();
        assert!(
            p("p50_ms") <= p("p90_ms") && p("p90_ms") <= p("p99_ms"),
            "{report}"
        );
        assert!(
            p("p99_ms") <= p("p999_ms") && p("p999_ms") <= p("max_ms"),
            "{report}"
        );
        assert!(p("bench_cpu_pct_of_core") >= 0.0, "{report}");
        assert!(report["bench_cpu_saturated"].is_boolean(), "{report}");
        if command == "kube" {
            assert!(
                report["counters"]["kube_watch_events"].as_u64().unwrap() > 0,
                "{report}"
            );
            check_kube_objects(&server.client_url(), &report).await;
        }
        if extra.contains(&"--rate") {
            // 60 requests at 200/s cannot finish before request 59's slot, 295 ms.
            assert!(report["elapsed_s"].as_f64().unwrap() >= 0.29, "{report}");
        }
    }
    let watch = json(&bench(&[
        "watch",
        endpoint.as_str(),
        "--streams",
        "2",
        "--watch-per-stream",
        "5",
        "--watched-key-total",
        "3",
        "--put-total",
        "30",
        "--json",
    ]));
    assert_eq!(watch["create"]["requests"], 10, "{watch}");
    assert_eq!(watch["create"]["errors"], 0, "{watch}");
    assert_eq!(watch["put"]["requests"], 30, "{watch}");
    assert_eq!(watch["events"], watch["expected_events"], "{watch}");
    // 30 puts over 3 keys, 10 watchers over 3 keys (4, 3, 3): 10 × (4 + 3 + 3).
    assert_eq!(watch["expected_events"], 100, "{watch}");
    let timed = json(&bench(&[
        "put",
        endpoint.as_str(),
        "--duration",
        "1",
        "--json",
    ]));
    assert_eq!(timed["errors"], 0, "{timed}");
    assert!(timed["elapsed_s"].as_f64().unwrap() >= 0.99, "{timed}");
    drop(server);
}

#[test]
fn compare_matrix_two_rounds() {
    let Some(cairn) = cairn_bin() else { return };
    let etcd = tools::find_binary(std::path::Path::new("etcd")).unwrap_or_else(|| cairn.clone());
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("charts");
    // --json FILE inside --out-dir, which the run creates.
    let json_path = out.join("compare.json");
    let table = bench(&[
        "compare",
        "--cairn-bin",
        cairn.to_str().unwrap(),
        "--etcd-bin",
        etcd.to_str().unwrap(),
        "--workloads",
        "put,range,kube,txn-mixed,watch,watch-latency",
        "--rw-ratio",
        "3",
        "--rounds",
        "2",
        "--total",
        "50",
        "--clients",
        "4",
        "--out-dir",
        out.to_str().unwrap(),
        "--json",
        json_path.to_str().unwrap(),
    ]);
    assert!(
        table.contains("| workload | metric | cairn | etcd | cairn/etcd |"),
        "{table}"
    );
    for row in [
        "| put | ops/s |",
        "| range | p99.9 ms |",
        "| kube | peak RSS MiB |",
        "| txn-mixed | p99 ms |",
        "| watch | events/s |",
        "| watch | create p99 ms |",
        "| watch-latency | events/s |",
        "| watch-latency | event p99 ms |",
        "| watch-latency | server CPU µs/event |",
    ] {
        assert!(table.contains(row), "{row} missing: {table}");
    }
    let report = json(&std::fs::read_to_string(&json_path).unwrap());
    assert_eq!(report["rounds"], 2);
    let runs = report["runs"].as_array().unwrap();
    assert!(
        !table.contains("| watch-latency | event p90 ms |"),
        "watch-latency measures no p90: {table}"
    );
    assert_eq!(runs.len(), 2 * 2 * 6, "{report}");
    for run in runs {
        // The watch workloads: 50 puts, no failed put, no missing or duplicate event.
        assert_eq!(run["requests"], 50, "{run}");
        assert_eq!(run["errors"], 0, "{run}");
        assert!(run["ops_s"].as_f64().unwrap() > 0.0, "{run}");
        assert!(run["peak_rss_mib"].as_f64().unwrap() > 0.0, "{run}");
    }
    let rounds: Vec<(u64, &str)> = runs
        .iter()
        .filter(|r| r["workload"] == "put")
        .map(|r| (r["round"].as_u64().unwrap(), r["target"].as_str().unwrap()))
        .collect();
    assert_eq!(
        rounds,
        [(1, "cairn"), (1, "etcd"), (2, "cairn"), (2, "etcd")]
    );
    assert!(out.join("compare.md").exists());
    for name in ["latency", "throughput"] {
        let png = std::fs::read(out.join(format!("{name}.png"))).unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        let svg = std::fs::read_to_string(out.join(format!("{name}.svg"))).unwrap();
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        assert_eq!(svg.matches("<svg").count(), svg.matches("</svg>").count());
        assert!(svg.contains("cairn") && svg.contains("etcd"));
    }
}
