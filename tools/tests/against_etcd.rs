//! End-to-end checks of cairn-bench against upstream etcd (Debian `etcd-server`).
//! Skipped, with a message, when no `etcd` binary is on PATH.

use std::path::{Path, PathBuf};
use std::time::Duration;

use etcd_client::{Client, GetOptions};
use tools::{run_compare, run_load, CompareConfig, LoadConfig, ServerProcess, Target, Workload};

fn etcd_bin() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("etcd"))
        .find(|candidate| candidate.is_file())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loads_write_and_read_exactly_what_they_say() {
    let Some(etcd) = etcd_bin() else {
        eprintln!("skipped: no etcd on PATH");
        return;
    };
    let server = ServerProcess::start("etcd", &etcd, Duration::from_secs(30))
        .await
        .unwrap();
    let endpoint = server.client_url();

    let mut put = LoadConfig::new(vec![endpoint.clone()], Workload::Put);
    put.clients = 3;
    put.conns = 2;
    put.total = 300;
    put.key_space = 1_000;
    put.seq = true;
    put.val_size = 16;
    let summary = run_load(put.clone()).await.unwrap();
    assert_eq!(summary.op, "put");
    assert_eq!(summary.ops, 300);
    assert_eq!(summary.errors, 0);
    assert_eq!(summary.skipped, 0);

    let mut range = put.clone();
    range.workload = Workload::Range { serializable: true };
    let summary = run_load(range).await.unwrap();
    assert_eq!(
        (summary.op.as_str(), summary.ops, summary.errors),
        ("range-serializable", 300, 0)
    );

    let mut txn = put.clone();
    txn.workload = Workload::Txn { ops: 2 };
    txn.total = 10;
    let summary = run_load(txn).await.unwrap();
    assert_eq!(
        (summary.op.as_str(), summary.ops, summary.errors),
        ("txn-put", 10, 0)
    );

    // Sequential keys 0..300 of 8 bytes each; then 10 txns of keys (n, n+1) for n < 10.
    let mut client = Client::connect([endpoint.as_str()], None).await.unwrap();
    let all = client
        .get(
            vec![0u8],
            Some(GetOptions::new().with_from_key().with_count_only()),
        )
        .await
        .unwrap();
    assert_eq!(all.count(), 300);
    // One revision per put and per txn, after the initial revision 1.
    assert_eq!(all.header().unwrap().revision(), 1 + 300 + 10);
    let first = client.get(tools::key_for(0, 8), None).await.unwrap();
    assert_eq!(first.kvs()[0].value(), tools::make_value(16).as_slice());
    assert_eq!(first.kvs()[0].version(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compare_runs_every_phase_of_every_target() {
    let Some(etcd) = etcd_bin() else {
        eprintln!("skipped: no etcd on PATH");
        return;
    };
    let target = |name: &str, bin: &Path| Target {
        name: name.into(),
        bin: bin.to_path_buf(),
    };
    let mut config = CompareConfig::new(vec![target("a", &etcd), target("b", &etcd)]);
    config.clients = vec![1, 8];
    config.total = 200;
    config.idle_s = 1;
    let mut progress = Vec::new();
    let rows = run_compare(&config, |line| progress.push(line.to_string()))
        .await
        .unwrap();
    let shape: Vec<(&str, u32, u64)> = rows
        .iter()
        .map(|r| (r.target.as_str(), r.clients, r.errors))
        .collect();
    assert_eq!(
        shape,
        vec![("a", 1, 0), ("a", 8, 0), ("b", 1, 0), ("b", 8, 0)]
    );
    for row in &rows {
        assert!(row.ops_s > 0.0, "{row:?}");
        assert!(row.rss_mib > 1.0, "{row:?}");
        assert!(row.p50_ms <= row.p99_ms, "{row:?}");
        assert!(row.idle_cpu_ms_per_10s.is_some(), "{row:?}");
    }
    assert_eq!(progress[0], format!("a: starting {}", etcd.display()));
    assert_eq!(progress[1], "a: idle for 1 s");
    assert_eq!(progress[2], "a: 200 puts, 1 clients, 1 conns");
    assert_eq!(progress[4], "a: 200 puts, 8 clients, 1 conns");
    let table = tools::render_markdown(&rows);
    assert_eq!(table.lines().count(), 2 + 4);
}
