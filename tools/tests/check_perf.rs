//! `cairnctl check perf` and `check datascale` against a live server. perf: a short run
//! passes with etcdctl's verdict lines (no progress bar on a pipe) and leaves the prefix
//! empty; a prefix holding keys and an unknown load are refused with etcdctl's texts and
//! exit statuses. datascale: the same run of `cairnctl` and of Debian's `etcdctl`
//! against the same server prints the same lines once numbers are masked (and etcdctl's
//! `\r`-drawn bar, which pb prints even to a pipe, is left out), leaves the prefix
//! empty, and both refuse a used prefix and an unknown load alike. Runs against Debian's
//! etcd (always installed by scripts/test.sh) and against Cairn (built here if missing).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use etcd_client::{Client, GetOptions};
use tools::ServerProcess;

fn cairnctl(args: &[&str]) -> (i32, String, String) {
    run(Path::new(env!("CARGO_BIN_EXE_cairnctl")), args)
}

fn run(program: &Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("run {}: {e}", program.display()));
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
    if let Some(etcdctl) = on_path("etcdctl") {
        datascale(name, &endpoint, &etcdctl).await;
    } else {
        eprintln!("skipped check datascale: no etcdctl on PATH");
    }
}

/// `s` with every run of digits (and a leading minus) replaced by `N`.
fn mask_numbers(s: &str) -> String {
    let mut out = String::new();
    let mut in_number = false;
    for c in s.chars() {
        let digit = c.is_ascii_digit() || c == '-';
        if digit && !in_number {
            out.push('N');
        } else if !digit {
            out.push(c);
        }
        in_number = digit;
    }
    out
}

/// stdout without etcdctl's progress bar: pb draws it with `\r` and no newline until
/// it finishes, so it is the line that starts with `\r`.
fn without_bar(stdout: &str) -> String {
    stdout
        .lines()
        .filter(|line| !line.starts_with('\r'))
        .map(|line| format!("{line}\n"))
        .collect()
}

async fn datascale(name: &str, endpoint: &str, etcdctl: &Path) {
    let args = [
        "--endpoints",
        endpoint,
        "check",
        "datascale",
        "--load",
        "s",
        "--auto-compact",
        "--auto-defrag",
    ];
    let (code, ours, stderr) = cairnctl(&args);
    assert_eq!((code, stderr.as_str()), (0, ""), "{name}: {ours}");
    let (code, theirs, stderr) = run(etcdctl, &args);
    assert_eq!((code, stderr.as_str()), (0, ""), "{name}: etcdctl {theirs}");
    assert_eq!(
        mask_numbers(&ours),
        mask_numbers(&without_bar(&theirs)),
        "{name}: cairnctl:\n{ours}\netcdctl:\n{theirs}"
    );
    let lines: Vec<&str> = ours.lines().collect();
    assert_eq!(
        lines[0],
        "Start data scale check for work load [10000 key-value pairs, 1024 bytes per key-value, 50 concurrent clients]."
    );
    assert!(lines[1].starts_with("Compacting with revision "), "{ours}");
    assert_eq!(lines[3], format!("Defragmenting {endpoint:?}"));
    let memory = lines.last().unwrap();
    assert!(
        memory.starts_with("PASS: Approximate system memory used : ") && memory.ends_with(" MB."),
        "{ours}"
    );
    let mut client = Client::connect([endpoint], None).await.unwrap();
    let prefix = "/etcdctl-check-datascale/";
    let left = client
        .get(
            prefix,
            Some(GetOptions::new().with_prefix().with_count_only()),
        )
        .await
        .unwrap();
    assert_eq!(left.count(), 0, "{name}: the check deletes its keys");

    client
        .put("/etcdctl-check-datascale/x", "y", None)
        .await
        .unwrap();
    let refused = ["--endpoints", endpoint, "check", "datascale"];
    let ours = cairnctl(&refused);
    assert_eq!(ours.0, 3, "{name}: etcdctl's ExitInvalidInput");
    assert_eq!(ours, run(etcdctl, &refused), "{name}");
    client
        .delete("/etcdctl-check-datascale/x", None)
        .await
        .unwrap();
    let unknown = [
        "--endpoints",
        endpoint,
        "check",
        "datascale",
        "--load",
        "big",
    ];
    let ours = cairnctl(&unknown);
    assert_eq!(ours.0, 4, "{name}: etcdctl's ExitBadFeature");
    assert_eq!(ours, run(etcdctl, &unknown), "{name}");
}

/// The first `program` on PATH.
fn on_path(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join(program))
            .find(|c| c.is_file())
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_perf_passes_and_refuses_as_etcdctl() {
    check("cairn", &cairn_bin()).await;
    match on_path("etcd") {
        Some(etcd) => check("etcd", &etcd).await,
        None => eprintln!("skipped the etcd half: no etcd on PATH"),
    }
}
