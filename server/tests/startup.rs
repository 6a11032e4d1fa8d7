//! etcd's start-up checks: the data dir is created 0700 and an existing one with looser
//! permissions gets etcd's warning; a second process on a data dir in use, or on a
//! client URL in use, exits with a clear error, while a restart right after SIGKILL waits for
//! the dead process's listeners to close; `--experimental-initial-corrupt-check` passes on a healthy cluster and
//! stops a member whose data differs from its peers' with etcd's messages.

mod common;

use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Child, Stdio};

use common::cluster::{wait_until, Cluster};
use common::{free_port, Target, TestServer};

/// How long a refused second process may take to exit.
const REFUSAL_TIMEOUT_MS: u64 = 20_000;

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).expect("stat").permissions().mode() & 0o777
}

#[test]
fn data_dir_is_created_private() {
    let server = TestServer::start();
    assert_eq!(mode(server.data_dir()), 0o700);
    assert_eq!(mode(&server.data_dir().join("member")), 0o700);
}

#[test]
fn looser_data_dir_permissions_get_etcds_warning() {
    let mut server = TestServer::builder().args(&["--logger", "zap"]).start();
    stop(&mut server);
    std::fs::set_permissions(server.data_dir(), std::fs::Permissions::from_mode(0o755))
        .expect("chmod");
    server.restart();
    let log = server.log();
    let expected = format!(
        "directory \"{}\" exist, but the permission is \"drwxr-xr-x\". The recommended permission is \"-rwx------\" to prevent possible unprivileged access to the data.",
        server.data_dir().display()
    );
    let found = log.lines().any(|line| {
        match serde_json::from_str::<serde_json::Value>(line) {
            Ok(v) => v["msg"] == "check file permission" && v["error"] == expected.as_str(),
            // etcd 3.4 prints this one through capnslog.
            Err(_) => line.contains(&format!("check file permission: {expected}")),
        }
    });
    assert!(found, "no permission warning in:\n{log}");
    // The server still starts and keeps the permissions it was given.
    assert_eq!(mode(server.data_dir()), 0o755);
}

#[test]
fn second_server_on_a_client_url_in_use_exits_with_an_error() {
    let server = TestServer::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let client = format!("http://127.0.0.1:{}", server.client_port());
    let peer = format!("http://127.0.0.1:{}", free_port());
    // Killed on the way out, so a server that wrongly started does not outlive the test.
    let mut child = KillOnDrop(lone_member(
        server.target(),
        "other",
        &dir.path().join("data"),
        &client,
        &peer,
    ));
    let status = wait_until("the second server to exit", REFUSAL_TIMEOUT_MS, || {
        child
            .0
            .try_wait()
            .expect("try_wait")
            .ok_or_else(|| "still running".to_string())
    });
    let mut stderr = String::new();
    child
        .0
        .stderr
        .take()
        .expect("stderr piped")
        .read_to_string(&mut stderr)
        .expect("stderr");
    let stderr = stderr.to_lowercase();
    assert!(!status.success(), "{stderr}");
    assert!(stderr.contains("address already in use"), "{stderr}");
    // The first server is unharmed.
    assert!(common::is_healthy(server.client_port()));
}

/// Restarts in a row of [`restart_right_after_sigkill_becomes_healthy`].
const RESTARTS_AFTER_SIGKILL: usize = 20;

/// A supervisor (systemd `Restart=always`, kubelet) restarts a killed server at once. Right
/// after SIGKILL the kernel may still be closing the dead process's listening sockets
/// (io_uring teardown keeps them open a few milliseconds): the start-up probe must wait for
/// those, not fail with "address already in use" as for a live server on the URL.
#[test]
fn restart_right_after_sigkill_becomes_healthy() {
    let mut server = TestServer::start();
    let mut failed = Vec::new();
    for restart in 1..=RESTARTS_AFTER_SIGKILL {
        server.kill9();
        if let Err(log) = server.try_restart() {
            failed.push((restart, log));
        }
    }
    let Some((first, log)) = failed.first() else {
        return;
    };
    let restarts: Vec<usize> = failed.iter().map(|(restart, _)| *restart).collect();
    panic!(
        "{} of {RESTARTS_AFTER_SIGKILL} restarts right after SIGKILL did not become healthy \
         (restarts {restarts:?}); the output of restart {first}:\n{log}",
        failed.len()
    );
}

/// A one-member server process `name` on `data_dir` with client URL `client` and peer URL
/// `peer`, stderr piped (the refusal tests read it).
fn lone_member(target: Target, name: &str, data_dir: &Path, client: &str, peer: &str) -> Child {
    target
        .command()
        .args(["--name", name, "--data-dir"])
        .arg(data_dir)
        .args([
            "--listen-client-urls",
            client,
            "--advertise-client-urls",
            client,
        ])
        .args([
            "--listen-peer-urls",
            peer,
            "--initial-advertise-peer-urls",
            peer,
        ])
        .args(["--initial-cluster", &format!("{name}={peer}")])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn")
}

/// A child process killed and reaped when dropped.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn second_process_on_a_data_dir_in_use_exits_with_an_error() {
    if common::skip_unless_cairn("etcd 3.4 blocks on the bbolt file lock instead of exiting") {
        return;
    }
    let server = TestServer::start();
    let client = format!("http://127.0.0.1:{}", free_port());
    let peer = format!("http://127.0.0.1:{}", free_port());
    let data_dir = server.data_dir().display().to_string();
    let mut child = lone_member(Target::Cairn, "node1", server.data_dir(), &client, &peer);
    let status = wait_until("the second process to exit", REFUSAL_TIMEOUT_MS, || {
        child
            .try_wait()
            .expect("try_wait")
            .ok_or_else(|| "still running".to_string())
    });
    let output = child.wait_with_output().expect("output");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(status.code(), Some(1), "{stderr}");
    let line: serde_json::Value = serde_json::from_str(stderr.trim()).expect("one JSON line");
    assert_eq!(line["level"], "fatal");
    let error = line["error"].as_str().expect("error");
    assert!(
        error.starts_with(&format!(
            "data dir {data_dir} is in use by another process (pid {})",
            server.pid()
        )),
        "{error}"
    );
    // The first server is unharmed.
    assert!(common::is_healthy(server.client_port()));
}

#[test]
fn initial_corrupt_check_passes_on_a_healthy_cluster() {
    let mut cluster = Cluster::builder()
        .size(3)
        .args(&["--logger", "zap", "--experimental-initial-corrupt-check"])
        .start();
    for i in 0..10 {
        let out = cluster.etcdctl(0, &["put", &format!("k{i}"), "v"]);
        assert!(out.status.success(), "{out:?}");
    }
    cluster.restart(2);
    let log = cluster.member(2).log();
    assert!(
        log.contains("\"msg\":\"starting initial corruption check\""),
        "{log}"
    );
    assert!(
        log.contains("\"msg\":\"initial corruption checking passed; no corruption\""),
        "{log}"
    );
    assert!(!log.contains("found different hash values"), "{log}");
}

/// The value every member stores and the test alters in one member's value segment.
const ORIGINAL: &[u8] = b"original-value-0001";
const ALTERED: &[u8] = b"altered!-value-0001";

#[test]
fn initial_corrupt_check_stops_a_member_whose_data_differs() {
    if common::skip_unless_cairn("alters Cairn's own value segment format") {
        return;
    }
    let mut cluster = Cluster::builder()
        .size(3)
        .args(&[
            "--experimental-initial-corrupt-check",
            "--snapshot-count",
            "5",
        ])
        .start();
    let out = cluster.etcdctl(
        0,
        &["put", "victim", std::str::from_utf8(ORIGINAL).unwrap()],
    );
    assert!(out.status.success(), "{out:?}");
    // Enough entries after it that every member checkpoints past it (the altered record
    // must lie below the checkpoint's value-segment tail to be kept at restart).
    for i in 0..20 {
        let out = cluster.etcdctl(0, &["put", &format!("k{i}"), "v"]);
        assert!(out.status.success(), "{out:?}");
    }
    wait_until("member 2 to apply everything", 10_000, || {
        let hashes: Vec<_> = (0..3).map(|i| cluster.hashkv(i)).collect();
        match (&hashes[0], &hashes[2]) {
            (Ok(a), Ok(b)) if a.revision == b.revision && a.hash == b.hash => Ok(()),
            other => Err(format!("{other:?}")),
        }
    });
    cluster.kill9(2);
    alter_value(&cluster.member(2).data_dir().join("member/kv/values"));
    cluster.spawn(2);
    let status = cluster.wait_exit(2);
    let log = cluster.member(2).log();
    assert_eq!(status.code(), Some(1), "{log}");
    let id = format!("{:x}", cluster.member_id(2));
    let fatal = log
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["level"] == "fatal")
        .unwrap_or_else(|| panic!("no fatal line:\n{log}"));
    assert_eq!(fatal["msg"], "discovery failed");
    assert_eq!(
        fatal["error"],
        format!("{id} found data inconsistency with peers").as_str()
    );
    assert_eq!(
        log.matches("\"msg\":\"found different hash values from remote peer\"")
            .count(),
        2,
        "{log}"
    );
    // The member never served clients.
    assert!(!log.contains("ready to serve client requests"), "{log}");
}

/// Replaces [`ORIGINAL`] with [`ALTERED`] (same length) in the value segment holding it
/// and fixes that record's CRC (format: `engine::mvcc::values::ValueCodec`), so the
/// member opens cleanly but holds different data at the same revision.
fn alter_value(values: &Path) {
    let mut done = 0;
    for entry in std::fs::read_dir(values).expect("values dir") {
        let path = entry.expect("entry").path();
        let mut bytes = std::fs::read(&path).expect("read segment");
        let mut at = 32usize;
        let mut changed = false;
        while at + 8 <= bytes.len() {
            let length = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
            if length == 0 || at + 8 + length > bytes.len() {
                break;
            }
            let body = at + 8..at + 8 + length;
            if let Some(pos) = find(&bytes[body.clone()], ORIGINAL) {
                let start = body.start + pos;
                bytes[start..start + ALTERED.len()].copy_from_slice(ALTERED);
                let mut covered = bytes[at..at + 4].to_vec();
                covered.extend_from_slice(&bytes[body.clone()]);
                let crc = crc32_ieee(&covered);
                bytes[at + 4..at + 8].copy_from_slice(&crc.to_le_bytes());
                changed = true;
                done += 1;
            }
            at += (8 + length).div_ceil(8) * 8;
        }
        if changed {
            std::fs::write(&path, &bytes).expect("write segment");
        }
    }
    assert_eq!(done, 1, "the value is stored once in {}", values.display());
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// CRC-32 (IEEE, reflected, polynomial 0xEDB88320), as `crc32fast`.
fn crc32_ieee(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

#[test]
fn crc32_matches_the_standard_check_value() {
    assert_eq!(crc32_ieee(b"123456789"), 0xCBF4_3926);
}

fn stop(server: &mut TestServer) {
    common::stop_cleanly(server);
}
