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

/// Workers that start servers at once in [`every_etcd_help_flag_starts_and_serves`].
const PARALLEL_STARTS_MAX: usize = 4;

/// Flags the test helper passes on every start (with its own ports and paths); passing
/// etcd's defaults for them again would point the server elsewhere.
const HELPER_FLAGS: &[&str] = &[
    "name",
    "data-dir",
    "listen-client-urls",
    "advertise-client-urls",
    "listen-peer-urls",
    "initial-advertise-peer-urls",
    "initial-cluster",
];

/// `(flag, default)` of every flag `etcd --help` lists (Debian's etcd 3.4), read from the
/// real binary: lines `  --name 'default'` or `  --bcrypt-cost 10`.
fn etcd_help_flags() -> Vec<(String, String)> {
    let output = Command::new("etcd")
        .arg("--help")
        .output()
        .expect("run `etcd --help` (Debian package etcd-server)");
    let help = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let mut flags = Vec::new();
    for line in help.lines() {
        let Some(rest) = line.strip_prefix("  --") else {
            continue;
        };
        let (name, default) = rest.split_once(' ').unwrap_or((rest, ""));
        flags.push((
            name.to_string(),
            default.trim().trim_matches('\'').to_string(),
        ));
    }
    flags
}

/// A value etcd accepts for `flag`: its help default, or a sensible one where the help
/// shows none that parses.
fn valid_value(flag: &str, default: &str) -> String {
    match (flag, default) {
        ("max-concurrent-streams", "math.MaxUint32") => "4294967295".into(),
        ("backend-batch-interval", "") => "100ms".into(),
        // etcd 3.4 refuses an explicit empty list: "unexpected TLS cipher suite \"\"".
        ("cipher-suites", "") => "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256".into(),
        _ => default.to_string(),
    }
}

/// Runs `check` on each item with at most [`PARALLEL_STARTS_MAX`] at once; panics with
/// every failure's message.
fn for_each_parallel<T: Send + Sync>(items: &[T], check: impl Fn(&T) + Sync) {
    let next = std::sync::atomic::AtomicUsize::new(0);
    let failures = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..PARALLEL_STARTS_MAX {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let Some(item) = items.get(i) else { break };
                let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| check(item)));
                if let Err(panic) = result {
                    let message = panic
                        .downcast_ref::<String>()
                        .cloned()
                        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                        .unwrap_or_default();
                    failures.lock().unwrap().push(message);
                }
            });
        }
    });
    let failures = failures.into_inner().unwrap();
    assert!(
        failures.is_empty(),
        "{} failed:\n{}",
        failures.len(),
        failures.join("\n---\n")
    );
}

/// A started server answers a put and a get, then stops on SIGTERM with exit 0.
fn serves_and_stops(mut server: TestServer, what: &str) -> String {
    let (exit, stdout, stderr) = text(&server.etcdctl(&["put", "k", "v"]));
    assert_eq!(
        (exit, stdout.as_str(), stderr.as_str()),
        (0, "OK\n", ""),
        "{what}: put"
    );
    let (exit, stdout, _) = text(&server.etcdctl(&["get", "k", "--print-value-only"]));
    assert_eq!((exit, stdout.as_str()), (0, "v\n"), "{what}: get");
    let log = server.log();
    let status = server.sigterm();
    assert_clean_stop(status, &format!("{what}; log:\n{log}"));
    log
}

/// Cairn exits 0 after SIGTERM; etcd 3.4 runs its shutdown handlers and re-raises
/// SIGTERM (pkg/osutil/interrupt_unix.go), so it dies of signal 15.
fn assert_clean_stop(status: std::process::ExitStatus, what: &str) {
    use std::os::unix::process::ExitStatusExt;
    match Target::from_env() {
        Target::Cairn => assert_eq!(status.code(), Some(0), "{what}: SIGTERM exit status"),
        Target::Etcd => assert!(
            status.code() == Some(0) || status.signal() == Some(libc::SIGTERM),
            "{what}: SIGTERM exit status {status:?}"
        ),
    }
}

fn ignored_warning(flag: &str) -> String {
    format!("{flag} is accepted for etcd compatibility and ignored")
}

#[test]
fn every_etcd_help_flag_starts_and_serves() {
    let flags = etcd_help_flags();
    assert!(
        flags.len() >= 70,
        "etcd --help listed only {} flags",
        flags.len()
    );
    let to_pass: Vec<(String, String)> = flags
        .into_iter()
        .filter(|(name, _)| !HELPER_FLAGS.contains(&name.as_str()))
        .map(|(name, default)| {
            let value = valid_value(&name, &default);
            (name, value)
        })
        .collect();
    let is_cairn = Target::from_env() == Target::Cairn;
    for_each_parallel(&to_pass, |(name, value)| {
        let arg = format!("--{name}={value}");
        let server = TestServer::builder().args(&[arg.as_str()]).start();
        let log = serves_and_stops(server, &arg);
        // Spot checks of the warning: flags Cairn ignores say so once, implemented ones not.
        if is_cairn {
            let warned = log.matches(&ignored_warning(&format!("--{name}"))).count();
            match name.as_str() {
                "wal-dir"
                | "enable-v2"
                | "proxy"
                | "max-wals"
                | "enable-pprof"
                | "log-package-levels"
                | "experimental-backend-bbolt-freelist-type" => {
                    assert_eq!(warned, 1, "{arg}: one warning expected; log:\n{log}")
                }
                "snapshot-count"
                | "max-txn-ops"
                | "heartbeat-interval"
                | "log-level"
                | "experimental-watch-progress-notify-interval"
                | "max-concurrent-streams"
                | "auth-token"
                | "auth-token-ttl"
                | "bcrypt-cost" => {
                    assert_eq!(warned, 0, "{arg}: implemented, no warning; log:\n{log}")
                }
                _ => {}
            }
        }
    });
}

#[test]
fn kubeadm_static_pod_flags_without_tls() {
    // kubeadm's etcd manifest (cmd/kubeadm/app/phases/etcd/local.go) with http URLs: the
    // TLS file flags wait for the tls work; everything else is passed as kubeadm does.
    let metrics = format!("http://127.0.0.1:{}", free_port());
    let server = TestServer::builder()
        .args(&[
            "--client-cert-auth=true",
            "--experimental-initial-corrupt-check=true",
            "--experimental-watch-progress-notify-interval=5s",
            &format!("--listen-metrics-urls={metrics}"),
            "--peer-client-cert-auth=true",
            "--snapshot-count=10000",
        ])
        .start();
    let log = serves_and_stops(server, "kubeadm flags");
    if Target::from_env() == Target::Cairn {
        assert!(
            !log.contains("is accepted for etcd compatibility and ignored"),
            "kubeadm's flags are all implemented; log:\n{log}"
        );
    }
}

#[test]
fn watch_progress_notify_interval_flag_sets_the_interval() {
    // etcd --experimental-watch-progress-notify-interval: a watcher created with
    // progress_notify gets an empty response with the current revision every interval.
    // The default (10 min) would never answer within the test's 20 s bound.
    let server = TestServer::builder()
        .env("ETCD_EXPERIMENTAL_WATCH_PROGRESS_NOTIFY_INTERVAL", "1s")
        .start();
    runtime().block_on(async {
        let mut c = server.client().await;
        c.put("k", "v", None).await.expect("put");
        let options = etcd_client::WatchOptions::new().with_progress_notify();
        let (_watcher, mut stream) = c.watch("k", Some(options)).await.expect("watch");
        let progress = tokio::time::timeout(std::time::Duration::from_secs(20), async {
            loop {
                let response = stream.message().await.expect("stream").expect("open");
                if !response.created() && response.events().is_empty() {
                    return response;
                }
            }
        })
        .await
        .expect("a progress notification within 20 s");
        assert_eq!(progress.header().expect("header").revision(), 2);
    });
}

#[test]
fn ignored_flags_and_unknown_variables_warn_once_each() {
    if common::skip_unless_cairn("the warning text is Cairn's") {
        return;
    }
    let server = TestServer::builder()
        .args(&["--wal-dir", "/nonexistent/wal", "--enable-v2"])
        .env("ETCD_MAX_WALS", "3")
        .env("ETCD_NO_SUCH_SETTING", "1")
        .start();
    let log = serves_and_stops(server, "ignored flags");
    for flag in ["--wal-dir", "--enable-v2", "--max-wals"] {
        assert_eq!(
            log.matches(&ignored_warning(flag)).count(),
            1,
            "{flag}; log:\n{log}"
        );
    }
    assert_eq!(
        log.matches(&ignored_warning("ETCD_NO_SUCH_SETTING"))
            .count(),
        1,
        "log:\n{log}"
    );
    assert!(
        log.contains("unrecognized environment variable"),
        "log:\n{log}"
    );
    // Defaults warn nothing.
    let log = serves_and_stops(TestServer::start(), "defaults");
    assert!(!log.contains("ignored"), "log:\n{log}");
}

/// Spawns `command` (output to `log_path`) and waits until `/health` on `client_port`
/// answers healthy; panics with the log if it exits or does not within the start-up bound.
fn spawn_healthy(mut command: Command, client_port: u16, log_path: &Path) -> std::process::Child {
    let log = std::fs::File::create(log_path).expect("log file");
    let mut child = command
        .stdin(std::process::Stdio::null())
        .stdout(log.try_clone().expect("dup log"))
        .stderr(log)
        .spawn()
        .expect("spawn server");
    let deadline =
        std::time::Instant::now() + std::time::Duration::from_millis(common::STARTUP_TIMEOUT_MS);
    while !common::is_healthy(client_port) {
        let exited = child.try_wait().expect("try_wait");
        if exited.is_some() || std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "server not healthy ({exited:?}); log:\n{}",
                std::fs::read_to_string(log_path).unwrap_or_default()
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    child
}

fn sigterm_and_wait(child: &mut std::process::Child) -> std::process::ExitStatus {
    let pid = i32::try_from(child.id()).expect("pid fits i32");
    // SAFETY: kill(2) on our own child, not yet reaped.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let deadline =
        std::time::Instant::now() + std::time::Duration::from_millis(common::SHUTDOWN_TIMEOUT_MS);
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no exit after SIGTERM"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

#[test]
fn config_file_with_nested_tls_keys_starts_and_ignores_other_flags() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (client_port, peer_port) = (free_port(), free_port());
    let client = format!("http://127.0.0.1:{client_port}");
    let peer = format!("http://127.0.0.1:{peer_port}");
    let data_dir = dir.path().join("from-file.etcd");
    let yaml = format!(
        "name: filenode\n\
         data-dir: {data}\n\
         listen-client-urls: {client}\n\
         advertise-client-urls: {client}\n\
         listen-peer-urls: {peer}\n\
         initial-advertise-peer-urls: {peer}\n\
         initial-cluster: filenode={peer}\n\
         initial-cluster-token: file-token\n\
         max-txn-ops: 2\n\
         logger: zap\n\
         log-outputs: [stderr]\n\
         client-transport-security:\n  client-cert-auth: false\n  auto-tls: false\n\
         peer-transport-security:\n  client-cert-auth: false\n  auto-tls: false\n\
         not-an-etcd-key: 1\n",
        data = data_dir.display()
    );
    let path = dir.path().join("etcd.conf.yml");
    std::fs::write(&path, yaml).expect("write config file");
    let mut command = Target::from_env().command();
    command
        .current_dir(dir.path())
        .arg(format!("--config-file={}", path.display()))
        // Ignored, as etcd: the file wins over other flags and ETCD_* variables.
        .args(["--name", "flagnode", "--max-txn-ops", "100"])
        .env("ETCD_SNAPSHOT_COUNT", "abc");
    let log_path = dir.path().join("server.log");
    let mut child = spawn_healthy(command, client_port, &log_path);
    let put = common::etcdctl_at(&client, &["put", "k", "v"], "");
    assert_eq!(text(&put).0, 0, "{:?}", text(&put));
    // max-txn-ops 2 from the file: a txn with 3 puts is refused.
    let txn = common::etcdctl_at(&client, &["txn"], "\n\nput a 1\nput b 2\nput c 3\n\n");
    let (exit, _, stderr) = text(&txn);
    assert_ne!(exit, 0, "a 3-op txn must be refused");
    assert!(
        stderr.contains("too many operations in txn request"),
        "{stderr}"
    );
    let members = common::etcdctl_at(&client, &["member", "list"], "");
    let (_, stdout, _) = text(&members);
    assert!(stdout.contains("filenode"), "name from the file: {stdout}");
    assert!(is_non_empty_dir(&data_dir), "data dir from the file");
    assert!(!dir.path().join("flagnode.etcd").exists());
    let status = sigterm_and_wait(&mut child);
    let log = std::fs::read_to_string(&log_path).unwrap_or_default();
    assert_clean_stop(status, &format!("config file; log:\n{log}"));
    assert!(
        log.contains("loaded server configuration, other configuration command line flags and environment variables will be ignored if provided"),
        "log:\n{log}"
    );
}

#[test]
fn cairn_version_subcommand_prints_etcd_layout() {
    if common::skip_unless_cairn("`etcd version` is not an etcd command") {
        return;
    }
    for args in [&["version"][..], &["--version"][..]] {
        let mut command = Target::from_env().command();
        command.args(args);
        let (exit, stdout, stderr) = text(&run_to_exit(command, EXIT_TIMEOUT_MS));
        assert_eq!(exit, 0, "{args:?}: {stderr}");
        let lines: Vec<&str> = stdout.lines().collect();
        assert_eq!(lines.len(), 5, "{stdout}");
        assert_eq!(
            lines[0],
            format!("cairn Version: {}", env!("CARGO_PKG_VERSION"))
        );
        assert_eq!(lines[1], "etcd API Version: 3.6.0");
        let sha = lines[2].strip_prefix("Git SHA: ").expect("Git SHA line");
        assert!(
            sha == "Not provided" || (sha.len() >= 7 && sha.chars().all(|c| c.is_ascii_hexdigit())),
            "{sha:?}"
        );
        assert!(
            lines[3].starts_with("Rust Version: rustc 1."),
            "{}",
            lines[3]
        );
        assert_eq!(lines[4], "Rust OS/Arch: linux/amd64");
    }
}

#[test]
fn periodic_auto_compaction_compacts_old_revisions_on_the_leader() {
    // etcd v3compactor periodic mode: with a 1 s retention, revisions older than about a
    // second are compacted by the leader without any client asking.
    let server = TestServer::builder()
        .args(&[
            "--auto-compaction-mode=periodic",
            "--auto-compaction-retention=1s",
        ])
        .start();
    runtime().block_on(async {
        let mut c = server.client().await;
        c.put("k", "v1", None).await.expect("put v1"); // revision 2
        c.put("k", "v2", None).await.expect("put v2"); // revision 3
        let old = || etcd_client::GetOptions::new().with_revision(2);
        let first = c
            .get("k", Some(old()))
            .await
            .expect("revision 2 readable at first");
        assert_eq!(first.kvs()[0].value(), b"v1");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        let status = loop {
            match c.get("k", Some(old())).await {
                Err(e) => break grpc_status(e),
                Ok(_) => {
                    assert!(
                        std::time::Instant::now() < deadline,
                        "revision 2 not compacted within 20 s; log:\n{}",
                        server.log()
                    );
                    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                }
            }
        };
        assert_eq!(
            status.message,
            "etcdserver: mvcc: required revision has been compacted"
        );
        let now = c.get("k", None).await.expect("current value stays");
        assert_eq!(now.kvs()[0].value(), b"v2");
    });
}

#[test]
fn every_etcd_help_flag_at_once_on_the_command_line_and_in_the_environment() {
    // A harness may pass many flags together: all of them in one start, first as flags,
    // then as ETCD_* variables.
    let to_pass: Vec<(String, String)> = etcd_help_flags()
        .into_iter()
        .filter(|(name, _)| !HELPER_FLAGS.contains(&name.as_str()))
        .map(|(name, default)| {
            let value = valid_value(&name, &default);
            (name, value)
        })
        .collect();
    let args: Vec<String> = to_pass
        .iter()
        .map(|(name, value)| format!("--{name}={value}"))
        .collect();
    let arg_refs: Vec<&str> = args.iter().map(String::as_str).collect();
    serves_and_stops(
        TestServer::builder().args(&arg_refs).start(),
        "every flag at once",
    );
    serves_and_stops(
        with_etcd_env(&to_pass).start(),
        "every ETCD_* variable at once",
    );
}

#[test]
fn kubeadm_flags_for_etcd_3_6_without_tls() {
    if common::skip_unless_cairn("Debian's etcd 3.4 has no 3.6 flags") {
        return;
    }
    // kubeadm for etcd 3.6 spells the renamed flags without `experimental-` and moves
    // the corrupt check to a feature gate.
    let server = TestServer::builder()
        .args(&[
            "--client-cert-auth=true",
            "--feature-gates=InitialCorruptCheck=true",
            "--watch-progress-notify-interval=5s",
            "--peer-client-cert-auth=true",
            "--snapshot-count=10000",
        ])
        .start();
    let log = serves_and_stops(server, "kubeadm 3.6 flags");
    assert!(
        !log.contains("is accepted for etcd compatibility and ignored"),
        "kubeadm's 3.6 flags are all implemented; log:\n{log}"
    );
}

#[test]
fn listen_client_urls_without_advertise_client_urls_exits_1() {
    let cwd = tempfile::tempdir().expect("temp dir");
    let mut command = Target::from_env().command();
    command.current_dir(cwd.path()).arg(format!(
        "--listen-client-urls=http://127.0.0.1:{}",
        free_port()
    ));
    let (exit, stdout, stderr) = text(&run_to_exit(command, EXIT_TIMEOUT_MS));
    // etcd: "error verifying flags, --advertise-client-urls is required when
    // --listen-client-urls is set explicitly. See 'etcd --help'.", exit 1.
    assert_eq!(exit, 1, "stdout {stdout:?} stderr {stderr:?}");
    assert!(
        format!("{stdout}{stderr}").contains(
            "--advertise-client-urls is required when --listen-client-urls is set explicitly"
        ),
        "stderr {stderr:?}"
    );
    assert!(
        !cwd.path().join("default.etcd").exists(),
        "no server started"
    );
}

/// `(flag, default)` of every row of docs/flags.md (etcd 3.4, 3.5 and 3.6 flags).
fn documented_flags() -> Vec<(String, String)> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/flags.md");
    let text = std::fs::read_to_string(&path).expect("read docs/flags.md");
    text.lines()
        .filter(|line| line.starts_with("| `--"))
        .map(|line| {
            let cells: Vec<&str> = line.split(" | ").collect();
            let name = cells[0].trim_start_matches("| `--").trim_end_matches('`');
            let default = cells[2].trim_matches('`');
            (name.to_string(), default.to_string())
        })
        .collect()
}

#[test]
fn every_documented_etcd_3_5_and_3_6_flag_at_once() {
    if common::skip_unless_cairn("Debian's etcd 3.4 lacks the 3.5/3.6 flags") {
        return;
    }
    let flags: Vec<(String, String)> = documented_flags()
        .into_iter()
        .filter(|(name, _)| !HELPER_FLAGS.contains(&name.as_str()) && name != "config-file")
        .map(|(name, default)| {
            let value = valid_value(&name, &default);
            (name, value)
        })
        .collect();
    assert!(
        flags.len() >= 140,
        "docs/flags.md lists {} flags",
        flags.len()
    );
    let args: Vec<String> = flags
        .iter()
        .map(|(name, value)| format!("--{name}={value}"))
        .collect();
    let arg_refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let log = serves_and_stops(
        TestServer::builder().args(&arg_refs).start(),
        "every documented flag at once",
    );
    for flag in [
        "--raft-read-timeout",
        "--discovery-token",
        "--v2-deprecation",
        "--vv",
    ] {
        assert_eq!(
            log.matches(&ignored_warning(flag)).count(),
            1,
            "{flag}; log:\n{log}"
        );
    }
    serves_and_stops(
        with_etcd_env(&flags).start(),
        "every documented ETCD_* variable at once",
    );
}

#[test]
fn max_learners_flag_limits_learner_members() {
    if common::skip_unless_cairn("Debian's etcd 3.4 has no --max-learners") {
        return;
    }
    let add_learner = |server: &TestServer, name: &str| {
        let peer = format!("--peer-urls=http://127.0.0.1:{}", free_port());
        text(&server.etcdctl(&["member", "add", name, "--learner", &peer]))
    };
    // etcd's default: one learner.
    let server = TestServer::start();
    assert_eq!(add_learner(&server, "l1").0, 0);
    let (exit, _, stderr) = add_learner(&server, "l2");
    assert_ne!(exit, 0);
    assert!(
        stderr.contains("too many learner members in cluster"),
        "{stderr}"
    );
    drop(server);
    let server = TestServer::builder().args(&["--max-learners=2"]).start();
    assert_eq!(add_learner(&server, "l1").0, 0);
    let (exit, stdout, stderr) = add_learner(&server, "l2");
    assert_eq!(exit, 0, "{stdout} {stderr}");
    let (exit, _, stderr) = add_learner(&server, "l3");
    assert_ne!(exit, 0);
    assert!(
        stderr.contains("too many learner members in cluster"),
        "{stderr}"
    );
}

/// A server builder with each `(flag, value)` given as its `ETCD_*` variable.
fn with_etcd_env<N: AsRef<str>, V: AsRef<str>>(flags: &[(N, V)]) -> common::Builder {
    let mut builder = TestServer::builder();
    for (name, value) in flags {
        let env = format!("ETCD_{}", name.as_ref().to_uppercase().replace('-', "_"));
        builder = builder.env(&env, value.as_ref());
    }
    builder
}
