//! Smoke runs of `cairn-bench scale` at a tiny size (2,000 keys, 20 clients over 4
//! connections), every step included: load, RssAnon and disk, baseline and in-range
//! puts, the full-prefix range, restarts after kill -9 and SIGTERM. No timing is
//! asserted; each takes about 10 s.
//!
//! Against cairn only when `CAIRN_BENCH_SMOKE_BIN` names a cairn binary (as
//! `cluster_smoke`: this crate cannot build the server); against upstream etcd whenever
//! an `etcd` binary is on PATH (Debian `etcd-server`), which checks the harness itself.
//!
//! ```text
//! CAIRN_BENCH_SMOKE_BIN=$PWD/target/release/cairn cargo test -p tools --test scale_smoke
//! ```

use std::path::PathBuf;

use tools::{find_binary, render_scale_markdown, run_scale, ScaleConfig, ScaleResult, Target};

/// The tiny run of the brief: `--keys 2000 --clients 20 --connections 4`, 100 baseline
/// puts, 512-byte values.
fn tiny_config(target: Target) -> ScaleConfig {
    let mut config = ScaleConfig::new(vec![target]);
    config.keys = 2_000;
    config.clients = 20;
    config.connections = 4;
    config.value_bytes = 512;
    config.baseline_puts = 100;
    config
}

/// What any server must show after the tiny run.
fn assert_sane(result: &ScaleResult, config: &ScaleConfig) {
    assert_eq!(result.keys_loaded, config.keys, "{result:?}");
    assert_eq!(result.load_errors, 0, "{result:?}");
    assert_eq!(result.load_skipped, 0, "{result:?}");
    assert!(result.load_puts_s > 0.0, "{result:?}");
    assert!(result.load_p50_ms <= result.load_p99_ms, "{result:?}");
    assert!(result.load_p99_ms <= result.load_p999_ms, "{result:?}");
    assert!(result.load_p999_ms <= result.load_max_ms, "{result:?}");
    assert!(result.rss_anon_after_load_mib > 0.0, "{result:?}");
    let payload_mib = (config.keys * u64::from(config.value_bytes)) as f64 / (1024.0 * 1024.0);
    assert!(result.disk_apparent_mib > payload_mib, "{result:?}");
    assert!(result.disk_allocated_mib > 0.0, "{result:?}");
    assert_eq!(result.baseline_put.puts, config.baseline_puts, "{result:?}");
    assert_eq!(result.baseline_put.errors, 0, "{result:?}");
    assert_eq!(result.range.error, None, "{result:?}");
    assert_eq!(result.range.kvs, config.keys, "{result:?}");
    let range_payload = config.keys * (19 + u64::from(config.value_bytes));
    assert!(result.range.response_bytes > range_payload, "{result:?}");
    assert_eq!(result.put_during_range.errors, 0, "{result:?}");
    assert!(result.rss_samples >= 1, "{result:?}");
    assert!(result.rss_anon_peak_range_mib > 0.0, "{result:?}");
    let kill9 = result
        .restart_kill9
        .as_ref()
        .expect("kill -9 restart measured");
    assert!(kill9.read_found_key, "{result:?}");
    assert_eq!(kill9.stop_s, None, "{result:?}");
    assert!(result.restart_sigterm.read_found_key, "{result:?}");
    assert!(result.restart_sigterm.stop_s.is_some(), "{result:?}");
    assert!(result.restart_sigterm.restart_s > 0.0, "{result:?}");
}

/// Runs the tiny config against `target` and checks the one result.
async fn smoke(target: Target) {
    let config = tiny_config(target);
    let report = run_scale(&config, vec![], |line| eprintln!("{line}"))
        .await
        .unwrap();
    print!("{}", render_scale_markdown(&report));
    assert_eq!(report.servers.len(), 1);
    assert_eq!(report.keys, 2_000);
    assert_sane(&report.servers[0], &config);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scale_smoke_cairn() {
    let Some(bin) = std::env::var_os("CAIRN_BENCH_SMOKE_BIN") else {
        eprintln!("CAIRN_BENCH_SMOKE_BIN is not set; scale smoke run not done");
        return;
    };
    smoke(Target {
        name: "cairn".into(),
        bin: PathBuf::from(bin),
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scale_smoke_etcd() {
    let Some(bin) = find_binary(std::path::Path::new("etcd")) else {
        eprintln!("skipped: no etcd on PATH");
        return;
    };
    smoke(Target {
        name: "etcd".into(),
        bin,
    })
    .await;
}
