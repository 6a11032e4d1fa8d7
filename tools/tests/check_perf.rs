//! `cairnctl check perf` against a live server: a short run passes with etcdctl's verdict
//! lines and leaves the prefix empty; a prefix holding keys and an unknown load are
//! refused with etcdctl's texts and exit statuses. Runs against Debian's etcd (always
//! installed by scripts/test.sh) and against Cairn (built here if missing).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use etcd_client::{Client, GetOptions};
use tools::ServerProcess;

fn cairnctl(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_cairnctl"))
        .args(args)
        .output()
        .expect("run cairnctl");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `target/<profile>/cairn`, built with cargo when absent.
fn cairn_bin() -> PathBuf {
    let bin = Path::new(env!("CARGO_BIN_EXE_cairnctl")).with_file_name("cairn");
    if !bin.exists() {
        let built = Command::new(env!("CARGO"))
            .args(["build", "-p", "server", "--bin", "cairn"])
            .status()
            .expect("cargo build cairn");
        assert!(built.success(), "building cairn failed");
    }
    bin
}

async fn check(name: &str, program: &Path) {
    let server = ServerProcess::start(name, program, Duration::from_secs(30))
        .await
        .unwrap();
    let endpoint = server.client_url();
    let ep = ["--endpoints", endpoint.as_str()];

    let (code, stdout, stderr) =
        cairnctl(&[&["check", "perf", "--duration-s", "3"], &ep[..]].concat());
    assert_eq!(code, 0, "{name}: {stdout} {stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 4, "{name}: {stdout}");
    assert!(lines[0].starts_with("PASS: Throughput is "), "{stdout}");
    assert!(lines[0].ends_with(" writes/s"), "{stdout}");
    assert!(
        lines[1].starts_with("PASS: Slowest request took 0."),
        "{stdout}"
    );
    assert!(lines[2].starts_with("PASS: Stddev is 0."), "{stdout}");
    assert_eq!(lines[3], "PASS");
    let mut client = Client::connect([endpoint.as_str()], None).await.unwrap();
    let left = client
        .get(
            "/etcdctl-check-perf/",
            Some(GetOptions::new().with_prefix().with_count_only()),
        )
        .await
        .unwrap();
    assert_eq!(left.count(), 0, "{name}: the check deletes its keys");

    client
        .put("/etcdctl-check-perf/x", "y", None)
        .await
        .unwrap();
    let (code, _, stderr) = cairnctl(&[&["check", "perf"], &ep[..]].concat());
    assert_eq!(code, 3, "{name}: etcdctl's ExitInvalidInput");
    assert_eq!(
        stderr,
        "Error: prefix \"/etcdctl-check-perf/\" has keys. Delete with etcdctl del --prefix /etcdctl-check-perf/ first\n"
    );
    let (code, _, stderr) = cairnctl(&[&["check", "perf", "--load", "huge"], &ep[..]].concat());
    assert_eq!(code, 4, "{name}: etcdctl's ExitBadFeature");
    assert_eq!(stderr, "Error: unknown load option huge\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_perf_passes_and_refuses_as_etcdctl() {
    check("cairn", &cairn_bin()).await;
    match std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join("etcd"))
            .find(|c| c.is_file())
    }) {
        Some(etcd) => check("etcd", &etcd).await,
        None => eprintln!("skipped the etcd half: no etcd on PATH"),
    }
}
