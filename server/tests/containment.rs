//! Contained failures (issue 9, item 3; server/src/supervise.rs):
//!
//! - a panic in a unary handler or a stream task fails that call with INTERNAL, is logged
//!   with its method, and the core keeps serving;
//! - a core or the raft core that dies stops the process: error and fatal log lines naming
//!   the core, exit status 1, listeners closed;
//! - ENOSPC or EIO on the storage's writes end the process with a fatal line naming the
//!   file, never a panic or a signal.
//!
//! Faults are injected with fail points (the `failpoints` feature; scripts/test.sh runs
//! `cargo test -p server --features failpoints --test containment`); without the feature
//! those tests print why they skip. The disk-full test mounts a small tmpfs, which needs
//! root; it skips with the reason when `mount` fails.

mod common;

use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;

use common::*;
use etcd_client::LeaseGrantOptions;

/// gRPC code INTERNAL.
const INTERNAL: i32 = 13;
/// The message of a call whose handler panicked (net::PANIC_STATUS_MESSAGE).
const PANIC_MESSAGE: &str = "grpc: the server panicked while serving this call";

/// Whether the server under test was built with fail points; prints why a test skips.
fn fail_points_built(test: &str) -> bool {
    if skip_unless_cairn(test) {
        return false;
    }
    if !cfg!(feature = "failpoints") {
        eprintln!("{test}: skipped: fail points need `--features failpoints`");
        return false;
    }
    true
}

/// The server's JSON log lines.
fn log_lines(server: &TestServer) -> Vec<serde_json::Value> {
    server
        .log()
        .lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect()
}

/// The first log line with `level` and `msg`, or a panic showing the log.
fn find_line(server: &TestServer, level: &str, msg: &str) -> serde_json::Value {
    log_lines(server)
        .into_iter()
        .find(|l| l["level"] == level && l["msg"] == msg)
        .unwrap_or_else(|| {
            panic!(
                "no {level} line {msg:?} in the log:\n{}",
                server.log_tail(8000)
            )
        })
}

fn start_with_fail_point(spec: &str, args: &[&str]) -> TestServer {
    TestServer::builder()
        .env("FAILPOINTS", spec)
        .args(args)
        .start()
}

/// Asserts that the process ended by itself with status 1 (not by a signal: no abort, no
/// SIGBUS), and that nothing printed Rust's plain-text panic message.
fn assert_stopped_with_status_1(server: &TestServer, status: ExitStatus) {
    assert_eq!(
        (status.code(), status.signal()),
        (Some(1), None),
        "log:\n{}",
        server.log_tail(8000)
    );
    assert!(
        !server.log().contains("panicked at"),
        "a plain-text panic message in the log:\n{}",
        server.log_tail(8000)
    );
}

/// The value of the first event of the next response on `stream`.
async fn first_value(stream: &mut etcd_client::WatchStream) -> Vec<u8> {
    let seen = stream.message().await.expect("event").expect("a response");
    seen.events()[0].kv().expect("kv").value().to_vec()
}

/// The error line of a contained panic (`net::serve_call`).
const CALL_PANICKED: &str = "gRPC call panicked; failing it with INTERNAL";

/// A panic in `method` was logged with its method, and the server still runs; stops it.
fn assert_contained(server: &mut TestServer, method: &str) {
    let line = find_line(server, "error", CALL_PANICKED);
    assert_eq!(line["method"], method);
    assert!(server.is_running());
    stop_cleanly(server);
}

#[test]
fn a_panicking_unary_handler_fails_its_call_with_internal() {
    if !fail_points_built("a_panicking_unary_handler_fails_its_call_with_internal") {
        return;
    }
    let mut server = start_with_fail_point(
        "grpc-unary=return(/etcdserverpb.KV/Range)",
        &["--cores", "1"],
    );
    runtime().block_on(async {
        let mut c = server.client().await;
        c.put("k", "v", None).await.expect("put");
        let status = grpc_status(c.get("k", None).await.expect_err("get panics"));
        assert_eq!(
            (status.code, status.message.as_str()),
            (INTERNAL, PANIC_MESSAGE)
        );
        // The same connection, on the same (only) core, goes on serving.
        c.put("k", "v2", None).await.expect("put after the panic");
        let status = c.status().await.expect("status after the panic");
        assert!(status.header().expect("header").revision() >= 3);
        let status = grpc_status(c.get("k", None).await.expect_err("get panics again"));
        assert_eq!(status.code, INTERNAL);
    });
    let line = find_line(&server, "error", CALL_PANICKED);
    assert_eq!(line["method"], "/etcdserverpb.KV/Range");
    assert_eq!(
        line["panic"],
        "fail point grpc-unary: injected panic for /etcdserverpb.KV/Range"
    );
    let hook = find_line(&server, "error", "panic");
    // glommio names an executor's thread `<name>-<executor id>`.
    assert!(hook["thread"]
        .as_str()
        .is_some_and(|t| t.starts_with("cairn-core-0-")));
    assert!(is_healthy(server.client_port()));
    assert!(server.is_running());
    stop_cleanly(&mut server);
}

#[test]
fn a_panic_in_a_watch_stream_task_fails_that_stream_only() {
    if !fail_points_built("a_panic_in_a_watch_stream_task_fails_that_stream_only") {
        return;
    }
    let mut server = start_with_fail_point("watch-create=return(boom)", &["--cores", "1"]);
    runtime().block_on(async {
        let mut c = server.client().await;
        let (_other, mut other_stream) = c.watch("a", None).await.expect("watch a");
        let (mut watcher, mut stream) = c.watch("a", None).await.expect("watch a again");
        c.put("a", "1", None).await.expect("put a");
        let first = stream.message().await.expect("event").expect("a response");
        assert_eq!(first.events().len(), 1);
        // A second watch on the same stream makes its request reader task panic.
        watcher
            .watch("boom", None)
            .await
            .expect("send the create request");
        let error = loop {
            match stream.message().await {
                Ok(Some(_)) => continue,
                Ok(None) => panic!("the stream ended without a status"),
                Err(e) => break e,
            }
        };
        let status = grpc_status(error);
        assert_eq!(
            (status.code, status.message.as_str()),
            (INTERNAL, PANIC_MESSAGE)
        );
        // The other stream and new ones are served.
        let (_new, mut new_stream) = c.watch("a", None).await.expect("watch after the panic");
        c.put("a", "2", None).await.expect("put a again");
        assert_eq!(first_value(&mut other_stream).await, b"1");
        assert_eq!(first_value(&mut other_stream).await, b"2");
        assert_eq!(first_value(&mut new_stream).await, b"2");
    });
    assert_contained(&mut server, "/etcdserverpb.Watch/Watch");
}

#[test]
fn a_panic_in_a_lease_keep_alive_stream_fails_that_stream_only() {
    if !fail_points_built("a_panic_in_a_lease_keep_alive_stream_fails_that_stream_only") {
        return;
    }
    let mut server = start_with_fail_point("lease-keep-alive=return(7777)", &["--cores", "1"]);
    runtime().block_on(async {
        let mut c = server.client().await;
        for id in [7777, 42] {
            c.lease_grant(600, Some(LeaseGrantOptions::new().with_id(id)))
                .await
                .expect("grant");
        }
        let error = c
            .lease_keep_alive(7777)
            .await
            .expect_err("keep-alive panics");
        let status = grpc_status(error);
        assert_eq!(
            (status.code, status.message.as_str()),
            (INTERNAL, PANIC_MESSAGE)
        );
        let (mut keeper, mut stream) = c.lease_keep_alive(42).await.expect("keep alive 42");
        keeper.keep_alive().await.expect("send");
        let resp = stream.message().await.expect("recv").expect("a response");
        assert_eq!((resp.id(), resp.ttl()), (42, 600));
    });
    assert_contained(&mut server, "/etcdserverpb.Lease/LeaseKeepAlive");
}

#[test]
fn a_dead_core_fails_health_and_stops_the_process() {
    if !fail_points_built("a_dead_core_fails_health_and_stops_the_process") {
        return;
    }
    // Core 1's probe task (no request of its own) panics at the first probe.
    let mut server = start_with_fail_point("core-probe=return(1)", &["--cores", "2"]);
    let port = server.client_port();
    // The connection lands on core 0 or 1; on core 1 it dies with the core, unanswered.
    if let Some(response) = http_get(port, "/livez") {
        assert_eq!(response.status, 503, "{}", response.text());
        assert!(
            response
                .text()
                .contains("[-]serializable_read failed: core 1"),
            "{}",
            response.text()
        );
    }
    let status = server.wait_exit();
    assert_stopped_with_status_1(&server, status);
    let hook = find_line(&server, "error", "panic");
    assert!(hook["thread"]
        .as_str()
        .is_some_and(|t| t.starts_with("cairn-core-1-")));
    let abnormal = find_line(&server, "error", "core stopped abnormally");
    assert_eq!(abnormal["core"], 1);
    let fatal = find_line(
        &server,
        "fatal",
        "a core stopped abnormally; stopping the member",
    );
    assert_eq!(
        fatal["error"],
        "core 1 panicked: fail point core-probe: injected panic for 1"
    );
    // The process has exited, so its listeners are closed (the port itself may already
    // serve another test's server: tests run in parallel).
}

#[test]
fn a_dead_raft_core_stops_the_process() {
    if !fail_points_built("a_dead_raft_core_stops_the_process") {
        return;
    }
    let mut server = start_with_fail_point("apply-put=return(boom)", &["--cores", "2"]);
    runtime().block_on(async {
        let mut c = server.client().await;
        c.put("fine", "v", None).await.expect("put");
        // Applying this put panics in the raft core task, which ends core 0.
        c.put("boom", "v", None)
            .await
            .expect_err("the raft core died");
    });
    let status = server.wait_exit();
    assert_stopped_with_status_1(&server, status);
    let fatal = find_line(
        &server,
        "fatal",
        "a core stopped abnormally; stopping the member",
    );
    assert_eq!(
        fatal["error"],
        "core 0 panicked: fail point apply-put: injected panic for boom"
    );
}

/// Puts `value` under fresh keys until a put fails (the server died), at most `puts_max`
/// times; panics with the log if every put succeeded.
fn put_until_failure(server: &TestServer, value: Vec<u8>, puts_max: usize) {
    runtime().block_on(async {
        let mut c = server.client().await;
        for i in 0..puts_max {
            if c.put(format!("k{i}"), value.clone(), None).await.is_err() {
                return;
            }
        }
        panic!("{puts_max} puts succeeded; log:\n{}", server.log_tail(8000));
    });
}

/// Asserts the fatal line a storage failure ends with: etcd's `message`, a `path` field
/// naming a file under `dir` whose name ends with `suffix`, and `errno_text` in the error.
fn assert_storage_fatal(
    server: &TestServer,
    message: &str,
    dir: &std::path::Path,
    suffix: &str,
    errno_text: &str,
) {
    let fatal = find_line(server, "fatal", message);
    let path = fatal["path"].as_str().expect("a path field");
    assert!(
        path.starts_with(&dir.display().to_string()) && path.ends_with(suffix),
        "path {path:?}, expected a *{suffix} file under {}",
        dir.display()
    );
    let error = fatal["error"].as_str().expect("an error field");
    assert!(error.contains(errno_text), "error {error:?}");
    assert!(error.contains(path), "error {error:?} does not name {path}");
}

#[test]
fn eio_on_storage_writes_ends_with_a_fatal_line_naming_the_file() {
    if !fail_points_built("eio_on_storage_writes_ends_with_a_fatal_line_naming_the_file") {
        return;
    }
    // (fail point, extra flags, etcd's fatal message, file name suffix). The WAL points let
    // start-up's writes through first; the checkpoint ones fire at the first checkpoint,
    // after 20 applied entries.
    let cases: [(&str, &[&str], &str, &str); 4] = [
        (
            "wal-write=30*off->return(EIO)",
            &[],
            "failed to save Raft hard state and entries",
            ".wal",
        ),
        (
            "wal-fdatasync=30*off->return(EIO)",
            &[],
            "failed to save Raft hard state and entries",
            ".wal",
        ),
        (
            "checkpoint-write=return(EIO)",
            &["--snapshot-count", "20"],
            "failed to commit tx",
            ".ckpt.tmp",
        ),
        (
            "value-sync=return(EIO)",
            &["--snapshot-count", "20"],
            "failed to commit tx",
            ".val",
        ),
    ];
    for (spec, args, message, suffix) in cases {
        let mut server = start_with_fail_point(spec, args);
        put_until_failure(&server, b"v".to_vec(), 200);
        let status = server.wait_exit();
        assert_stopped_with_status_1(&server, status);
        let member = server.data_dir().join("member");
        assert_storage_fatal(&server, message, &member, suffix, "Input/output error");
    }
}

#[test]
fn a_full_disk_while_applying_a_put_is_fatal_not_a_panic() {
    if !fail_points_built("a_full_disk_while_applying_a_put_is_fatal_not_a_panic") {
        return;
    }
    // Start-up creates the first value segment (64 MiB); the next one, needed after ~64
    // puts of 1 MiB, cannot be created (a helper thread makes it ahead of need, as
    // `NNNN.val.spare`; the failure surfaces when the apply loop needs it). Before, the
    // apply loop panicked here.
    let mut server = start_with_fail_point("value-create=1*off->return(ENOSPC)", &[]);
    put_until_failure(&server, vec![7u8; 1024 * 1024], 100);
    let status = server.wait_exit();
    assert_stopped_with_status_1(&server, status);
    let values = server.data_dir().join("member").join("kv").join("values");
    assert_storage_fatal(
        &server,
        "failed to write to a bucket",
        &values,
        ".val.spare.tmp",
        "No space left on device",
    );
}

/// Runs the server until it exits by itself (it must fail at start-up); returns its status
/// and output.
fn run_failing_start(fail_point: &str) -> (ExitStatus, String) {
    let root = tempfile::tempdir().expect("temp dir");
    let (client, peer) = (
        format!("http://127.0.0.1:{}", free_port()),
        format!("http://127.0.0.1:{}", free_port()),
    );
    let output = Target::Cairn
        .command()
        .env("FAILPOINTS", fail_point)
        .args(["--name", "node1", "--data-dir"])
        .arg(root.path().join("data"))
        .args([
            "--listen-client-urls",
            &client,
            "--advertise-client-urls",
            &client,
        ])
        .args([
            "--listen-peer-urls",
            &peer,
            "--initial-advertise-peer-urls",
            &peer,
        ])
        .arg(format!("--initial-cluster=node1={peer}"))
        .output()
        .expect("run cairn");
    let log = String::from_utf8_lossy(&output.stderr).into_owned();
    (output.status, log)
}

/// The fatal line of a start-up failure's output.
fn fatal_line(log: &str) -> serde_json::Value {
    log.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|l| l["level"] == "fatal")
        .unwrap_or_else(|| panic!("no fatal line in:\n{log}"))
}

#[test]
fn a_filesystem_without_fallocate_is_refused_at_start() {
    if !fail_points_built("a_filesystem_without_fallocate_is_refused_at_start") {
        return;
    }
    let (status, log) = run_failing_start("fallocate=return(EOPNOTSUPP)");
    assert_eq!((status.code(), status.signal()), (Some(1), None), "{log}");
    let error = fatal_line(&log)["error"]
        .as_str()
        .expect("error")
        .to_string();
    assert!(error.contains(".val.tmp"), "{error}");
    assert!(
        error.contains("the filesystem cannot preallocate (fallocate)"),
        "{error}"
    );
}

#[test]
fn eio_writing_meta_json_is_fatal_at_start() {
    if !fail_points_built("eio_writing_meta_json_is_fatal_at_start") {
        return;
    }
    let (status, log) = run_failing_start("meta-write=return");
    assert_eq!((status.code(), status.signal()), (Some(1), None), "{log}");
    let error = fatal_line(&log)["error"]
        .as_str()
        .expect("error")
        .to_string();
    assert!(error.contains("meta.json"), "{error}");
    assert!(error.contains("Input/output error"), "{error}");
    assert!(!log.contains("panicked at"), "{log}");
}

/// A tmpfs mounted for one test, unmounted on drop.
struct TmpfsMount {
    dir: tempfile::TempDir,
}

impl TmpfsMount {
    /// Mounts a tmpfs of `size` (e.g. `"160m"`), or `Err` with `mount`'s complaint.
    fn new(size: &str) -> Result<TmpfsMount, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).trim().to_string());
        }
        Ok(TmpfsMount { dir })
    }

    fn path(&self) -> &std::path::Path {
        self.dir.path()
    }
}

impl Drop for TmpfsMount {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg(self.dir.path())
            .status();
    }
}

#[test]
fn a_full_disk_ends_with_a_fatal_line_naming_the_file() {
    if skip_unless_cairn("a_full_disk_ends_with_a_fatal_line_naming_the_file") {
        return;
    }
    // Start-up preallocates a 64 MiB WAL segment and a 64 MiB value segment; 1 MiB values
    // fill one of them within ~64 puts, and its successor does not fit.
    let mount = match TmpfsMount::new("160m") {
        Ok(mount) => mount,
        Err(why) => {
            eprintln!("a_full_disk_ends_with_a_fatal_line_naming_the_file: skipped: cannot mount a tmpfs ({why})");
            return;
        }
    };
    let data_dir = mount.path().join("data");
    let mut server = TestServer::builder()
        .args(&["--data-dir", &data_dir.display().to_string()])
        .start();
    put_until_failure(&server, vec![7u8; 1024 * 1024], 150);
    let status = server.wait_exit();
    assert_stopped_with_status_1(&server, status);
    let fatal = log_lines(&server)
        .into_iter()
        .find(|l| l["level"] == "fatal")
        .unwrap_or_else(|| panic!("no fatal line:\n{}", server.log_tail(8000)));
    let message = fatal["msg"].as_str().expect("msg").to_string();
    // The successor is made ahead of need by a helper thread (`NNNN.wal.spare`,
    // `NNNN.val.spare`, once the active segment is half full); its failure surfaces when
    // the segment is needed.
    let suffix = match message.as_str() {
        "failed to save Raft hard state and entries" => ".wal.spare.tmp",
        "failed to write to a bucket" => ".val.spare.tmp",
        other => panic!(
            "unexpected fatal line {other:?}:\n{}",
            server.log_tail(8000)
        ),
    };
    assert_storage_fatal(
        &server,
        &message,
        &data_dir,
        suffix,
        "No space left on device",
    );
    drop(server);
}
