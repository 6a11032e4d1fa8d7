//! Command line and environment: etcd's flags and `ETCD_*` variables (etcd
//! etcdmain/config.go, pkg/flags/flag.go), the default data dir `<name>.etcd`, and
//! Cairn's own `--cores`.

mod common;

use common::{code, free_port, grpc_status, run_to_exit, runtime, text, Pass, Target, TestServer};
use etcd_client::{Txn, TxnOp};
use std::path::Path;
use std::process::Command;

const EXIT_TIMEOUT_MS: u64 = 20_000;

/// The target with the flags of a complete single-member configuration on fresh ports,
/// run in `cwd`.
fn member_command(name: &str, cwd: &Path) -> Command {
    let client = format!("http://127.0.0.1:{}", free_port());
    let peer = format!("http://127.0.0.1:{}", free_port());
    let mut command = Target::from_env().command();
    command
        .current_dir(cwd)
        .args(["--name", name])
        .args(["--listen-client-urls", &client])
        .args(["--advertise-client-urls", &client])
        .args(["--listen-peer-urls", &peer])
        .args(["--initial-advertise-peer-urls", &peer])
        .args(["--initial-cluster", &format!("{name}={peer}")]);
    command
}

fn is_non_empty_dir(path: &Path) -> bool {
    std::fs::read_dir(path)
        .map(|mut entries| entries.next().is_some())
        .unwrap_or(false)
}

#[test]
fn unknown_flag_exits_2_naming_it() {
    let cwd = tempfile::tempdir().expect("temp dir");
    let mut command = Target::from_env().command();
    command.current_dir(cwd.path()).args(["--bogus-flag", "1"]);
    let (exit, stdout, stderr) = text(&run_to_exit(command, EXIT_TIMEOUT_MS));
    // Go's flag package: "flag provided but not defined: -bogus-flag", exit 2.
    assert_eq!(exit, 2, "stdout {stdout:?} stderr {stderr:?}");
    assert!(stderr.contains("bogus-flag"), "stderr {stderr:?}");
    assert!(
        !cwd.path().join("default.etcd").exists(),
        "no server started"
    );
}

#[test]
fn invalid_flag_value_exits_2_naming_the_flag() {
    let cwd = tempfile::tempdir().expect("temp dir");
    let mut command = Target::from_env().command();
    command
        .current_dir(cwd.path())
        .args(["--max-txn-ops", "abc"]);
    let (exit, stdout, stderr) = text(&run_to_exit(command, EXIT_TIMEOUT_MS));
    // etcd: `invalid value "abc" for flag -max-txn-ops: parse error`, exit 2.
    assert_eq!(exit, 2, "stdout {stdout:?} stderr {stderr:?}");
    assert!(stderr.contains("max-txn-ops"), "stderr {stderr:?}");
    assert!(stderr.contains("abc"), "stderr {stderr:?}");
}

#[test]
fn version_flag_prints_version_and_exits_0() {
    let cwd = tempfile::tempdir().expect("temp dir");
    let mut command = Target::from_env().command();
    command.current_dir(cwd.path()).arg("--version");
    let (exit, stdout, stderr) = text(&run_to_exit(command, EXIT_TIMEOUT_MS));
    assert_eq!(exit, 0, "stderr {stderr:?}");
    // etcd: "etcd Version: 3.4.23\nGit SHA: ...\nGo Version: ...\nGo OS/Arch: ...".
    let first = stdout.lines().next().unwrap_or_default();
    let (_, version) = first
        .split_once(" Version: ")
        .unwrap_or_else(|| panic!("first line {first:?} has no \" Version: \""));
    let parts: Vec<&str> = version.split('.').collect();
    assert_eq!(parts.len(), 3, "version {version:?} is X.Y.Z");
    for part in parts {
        assert!(part.parse::<u32>().is_ok(), "version {version:?} is X.Y.Z");
    }
    assert!(
        !cwd.path().join("default.etcd").exists(),
        "no server started"
    );
}

#[test]
fn default_data_dir_is_name_dot_etcd_in_cwd() {
    let mut server = TestServer::builder()
        .name("mynode")
        .data_dir_pass(Pass::Omit)
        .start();
    let dir = server.work_dir().join("mynode.etcd");
    assert!(is_non_empty_dir(&dir), "{} holds the data", dir.display());
    let (exit, stdout, stderr) = text(&server.etcdctl(&["put", "k", "v"]));
    assert_eq!((exit, stdout.as_str(), stderr.as_str()), (0, "OK\n", ""));
    // Data lives there: it survives a restart that again relies on the default.
    server.kill9();
    server.restart();
    let (exit, stdout, stderr) = text(&server.etcdctl(&["get", "k"]));
    assert_eq!((exit, stdout.as_str(), stderr.as_str()), (0, "k\nv\n", ""));
}

#[test]
fn etcd_name_and_etcd_data_dir_from_environment() {
    // The name comes only from ETCD_NAME: the default data dir proves it is honoured.
    let server = TestServer::builder()
        .name("envnode")
        .name_pass(Pass::Env)
        .data_dir_pass(Pass::Omit)
        .start();
    let dir = server.work_dir().join("envnode.etcd");
    assert!(is_non_empty_dir(&dir), "{} holds the data", dir.display());
    assert!(!server.work_dir().join("default.etcd").exists());
    drop(server);

    let server = TestServer::builder()
        .name("envdir")
        .data_dir_pass(Pass::Env)
        .start();
    assert!(
        is_non_empty_dir(server.data_dir()),
        "ETCD_DATA_DIR {} holds the data",
        server.data_dir().display()
    );
    assert!(!server.work_dir().join("envdir.etcd").exists());
}

#[test]
fn env_variable_conflicting_with_flag_is_an_error() {
    let cwd = tempfile::tempdir().expect("temp dir");
    let mut command = member_command("flagname", cwd.path());
    command.env("ETCD_NAME", "envname");
    let output = run_to_exit(command, EXIT_TIMEOUT_MS);
    let (exit, stdout, stderr) = text(&output);
    // etcd pkg/flags/flag.go verifyEnv: fatal log, exit 1.
    assert_eq!(exit, 1, "stdout {stdout:?} stderr {stderr:?}");
    let all = format!("{stdout}{stderr}");
    assert!(
        all.contains(
            "conflicting environment variable \"ETCD_NAME\" is shadowed by corresponding \
             command-line flag (either unset environment variable or disable flag)"
        ),
        "output {all:?}"
    );
}

#[test]
fn limits_from_flag_and_environment() {
    // --max-request-bytes as a flag, --max-txn-ops through ETCD_MAX_TXN_OPS.
    let server = TestServer::builder()
        .args(&["--max-request-bytes", "1024"])
        .env("ETCD_MAX_TXN_OPS", "3")
        .start();
    runtime().block_on(async {
        let mut c = server.client().await;
        let ops = |n: usize| {
            Txn::new().and_then(
                (0..n)
                    .map(|i| TxnOp::put(format!("k{i}"), "v", None))
                    .collect::<Vec<_>>(),
            )
        };
        c.txn(ops(3)).await.expect("3 ops are allowed");
        let err = c.txn(ops(4)).await.expect_err("4 ops are too many");
        let status = grpc_status(err);
        assert_eq!(
            (status.code, status.message.as_str()),
            (
                code::INVALID_ARGUMENT,
                "etcdserver: too many operations in txn request"
            )
        );
        c.put("small", vec![b'a'; 512], None)
            .await
            .expect("512 bytes fit");
        let err = c
            .put("large", vec![b'a'; 2048], None)
            .await
            .expect_err("2048 bytes do not");
        let status = grpc_status(err);
        assert_eq!(
            (status.code, status.message.as_str()),
            (code::INVALID_ARGUMENT, "etcdserver: request is too large")
        );
    });
}

#[test]
fn cores_flag_is_accepted() {
    if common::skip_unless_cairn("--cores is Cairn's own flag; etcd rejects it") {
        return;
    }
    let server = TestServer::builder().args(&["--cores", "1"]).start();
    let (exit, stdout, stderr) = text(&server.etcdctl(&["put", "k", "v"]));
    assert_eq!((exit, stdout.as_str(), stderr.as_str()), (0, "OK\n", ""));
    let (exit, stdout, stderr) = text(&server.etcdctl(&["get", "k"]));
    assert_eq!((exit, stdout.as_str(), stderr.as_str()), (0, "k\nv\n", ""));
}
