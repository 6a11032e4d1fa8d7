//! Smoke run of `compare-cluster` and `failover` against a real cairn binary, with tiny
//! sizes (a few hundred puts, 2 kills). Runs only when `CAIRN_BENCH_SMOKE_BIN` names a
//! cairn binary (e.g. `target/debug/cairn` after `cargo build -p server`), because this
//! crate cannot build the server itself; takes about 15–30 s.
//!
//! ```text
//! CAIRN_BENCH_SMOKE_BIN=$PWD/target/debug/cairn cargo test -p tools --test cluster_smoke
//! ```

use std::path::PathBuf;

use tools::{run_compare_cluster, run_failover, CompareConfig, FailoverConfig, Target};

fn cairn() -> Option<Target> {
    let Some(bin) = std::env::var_os("CAIRN_BENCH_SMOKE_BIN") else {
        eprintln!("CAIRN_BENCH_SMOKE_BIN is not set; cluster smoke run not done");
        return None;
    };
    Some(Target {
        name: "cairn".into(),
        bin: PathBuf::from(bin),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compare_cluster_smoke() {
    let Some(target) = cairn() else { return };
    let mut config = CompareConfig::new(vec![target]);
    config.clients = vec![1, 10];
    config.total = 300;
    let rows = run_compare_cluster(&config, |line| eprintln!("{line}"))
        .await
        .unwrap();
    assert_eq!(rows.len(), 2);
    for row in &rows {
        assert_eq!(row.errors, 0, "{row:?}");
        assert!(row.ops_s > 0.0, "{row:?}");
        assert!(row.p99_ms >= row.p50_ms, "{row:?}");
        assert_eq!(row.rss_mib.len(), 3, "{row:?}");
        assert!(row.rss_mib.iter().all(|&m| m > 0.0), "{row:?}");
        assert!(row.server_cpu_us_per_op > 0.0, "{row:?}");
        assert!(["n1", "n2", "n3"].contains(&row.leader.as_str()), "{row:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failover_smoke() {
    let Some(target) = cairn() else { return };
    let mut config = FailoverConfig::new(target);
    config.kills = 2;
    config.clients = 4;
    config.steady_ms = 300;
    let report = run_failover(&config, |line| eprintln!("{line}"))
        .await
        .unwrap();
    print!("{}", report.to_text());
    assert_eq!(report.kills.len(), 2);
    for kill in &report.kills {
        assert_ne!(kill.killed, kill.new_leader, "{kill:?}");
        assert!(kill.failover_ms > 0.0, "{kill:?}");
    }
    assert!(report.acked_puts > 0);
    assert_eq!(report.read_back, report.acked_puts);
    assert_eq!(report.lost_writes, 0);
}
