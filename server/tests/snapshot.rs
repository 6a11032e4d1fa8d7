//! Backup, restore and two-way migration with upstream etcd (issue 10), checked with
//! Debian's etcdctl and etcd 3.4:
//! - `etcdctl snapshot save` from Cairn; `etcdctl snapshot status` reads the file and
//!   prints Cairn's revision, and `cairnctl snapshot status` prints what etcdctl prints;
//! - a Cairn snapshot restored with `etcdctl snapshot restore` starts etcd 3.4 with the
//!   same keys, leases and HashKV;
//! - an etcd snapshot restored with `etcdctl snapshot restore` starts Cairn (imported on
//!   first start) with the same keys and HashKV, at the current and older revisions;
//! - a stopped etcd member's own data dir starts Cairn with etcd's data;
//! - `cairnctl snapshot restore`, and the refusals: a damaged file, a damaged db;
//! - the backup drill on a 3-member Cairn cluster.
//!
//! Each test starts its own servers on free ports; the histories written include
//! overwrites, deletes, a compaction followed by more writes, and a lease.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::cluster::Cluster;
use common::{etcdctl_at, free_port, is_healthy, text, STARTUP_TIMEOUT_MS};
use serde_json::Value;

/// A server process on a data dir this test prepared.
struct Proc {
    child: Option<Child>,
    port: u16,
    log: PathBuf,
}

impl Proc {
    /// Spawns `program` as a one-member cluster named `name` on `data_dir` with the given
    /// peer port, and waits until `/health` is true; panics with its log otherwise.
    fn spawn(program: &Path, name: &str, data_dir: &Path, peer_port: u16) -> Proc {
        let port = free_port();
        let client = format!("http://127.0.0.1:{port}");
        let peer = format!("http://127.0.0.1:{peer_port}");
        let log = data_dir.with_extension(format!("{port}.log"));
        let file = std::fs::File::create(&log).expect("create log");
        let child = member_command(program, name, data_dir, &client, &peer)
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("clone log"))
            .stderr(file)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", program.display()));
        let mut p = Proc {
            child: Some(child),
            port,
            log,
        };
        let deadline = Instant::now() + Duration::from_millis(STARTUP_TIMEOUT_MS);
        while !is_healthy(port) {
            let exited = p.child.as_mut().expect("child").try_wait().expect("wait");
            assert!(
                exited.is_none() && Instant::now() < deadline,
                "{} did not become healthy ({exited:?}):\n{}",
                program.display(),
                p.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        p
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// `program` as the only member `name` of a cluster, on `data_dir`, serving clients at
/// `client` and peers at `peer` (etcd's flags, which Cairn takes too).
fn member_command(
    program: &Path,
    name: &str,
    data_dir: &Path,
    client: &str,
    peer: &str,
) -> Command {
    let mut c = Command::new(program);
    c.args(["--name", name, "--data-dir"])
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
        .args(["--initial-cluster", &format!("{name}={peer}")]);
    c
}

fn cairn() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_cairn"))
}

/// `target/<profile>/cairnctl`, built beside `cairn` by `cargo test --workspace`.
fn cairnctl() -> Command {
    let bin = cairn().with_file_name("cairnctl");
    if !bin.exists() {
        let built = Command::new(env!("CARGO"))
            .args(["build", "-p", "tools", "--bin", "cairnctl"])
            .status()
            .expect("cargo build cairnctl");
        assert!(built.success(), "building cairnctl failed");
    }
    Command::new(bin)
}

/// Asserts success and returns stdout.
fn ok(what: &str, output: Output) -> String {
    let (code, stdout, stderr) = text(&output);
    assert_eq!(
        code, 0,
        "{what} failed: stdout {stdout:?} stderr {stderr:?}"
    );
    stdout
}

fn ctl(endpoint: &str, args: &[&str]) -> String {
    ok(&format!("etcdctl {args:?}"), etcdctl_at(endpoint, args, ""))
}

/// `etcdctl` without an endpoint (the offline snapshot commands).
fn etcdctl_offline(args: &[&str]) -> Output {
    Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .args(args)
        .output()
        .expect("spawn etcdctl")
}

/// Every key with its metadata and value, and the header's revision.
fn everything(endpoint: &str) -> (i64, Vec<Value>) {
    let json: Value = serde_json::from_str(&ctl(endpoint, &["get", "", "--prefix", "-w", "json"]))
        .expect("get JSON");
    let revision = json["header"]["revision"].as_i64().expect("revision");
    let kvs = json["kvs"].as_array().cloned().unwrap_or_default();
    (revision, kvs)
}

/// `endpoint hashkv --rev rev` → (hash, compact revision).
fn hashkv(endpoint: &str, rev: i64) -> (u64, i64) {
    let out = ctl(
        endpoint,
        &[
            "endpoint",
            "hashkv",
            "--rev",
            &rev.to_string(),
            "-w",
            "json",
        ],
    );
    let json: Value = serde_json::from_str(&out).expect("hashkv JSON");
    let h = &json[0]["HashKV"];
    (
        h["hash"].as_u64().expect("hash"),
        h["compact_revision"].as_i64().unwrap_or(0),
    )
}

fn lease_ids(endpoint: &str) -> Vec<String> {
    let mut ids: Vec<String> = ctl(endpoint, &["lease", "list"])
        .lines()
        .skip(1)
        .map(str::to_string)
        .collect();
    ids.sort();
    ids
}

/// Writes a history with overwrites, deletes, a compaction followed by more writes and a
/// leased key. Returns the compaction revision.
fn write_history(endpoint: &str) -> i64 {
    for i in 0..40 {
        ctl(endpoint, &["put", &format!("k{i:02}"), &format!("v{i}")]);
    }
    for i in 0..10 {
        ctl(
            endpoint,
            &["put", &format!("k{i:02}"), &format!("again{i}")],
        );
    }
    ctl(endpoint, &["del", "k3", "--prefix"]);
    let (compact, _) = everything(endpoint);
    ctl(endpoint, &["compact", &compact.to_string()]);
    for i in 5..15 {
        ctl(
            endpoint,
            &["put", &format!("k{i:02}"), &format!("after{i}")],
        );
    }
    ctl(endpoint, &["del", "k20"]);
    let lease = ctl(endpoint, &["lease", "grant", "3600"]);
    let id = lease
        .split_whitespace()
        .nth(1)
        .expect("lease id")
        .to_string();
    ctl(endpoint, &["put", "leased", "v", "--lease", &id]);
    compact
}

/// Asserts that `b` serves what `a` serves: every key, the revision, the leases and the
/// HashKV at the current revision and at every revision from the compaction on.
fn assert_same_store(a: &str, b: &str, compact: i64) {
    let (rev_a, kvs_a) = everything(a);
    let (rev_b, kvs_b) = everything(b);
    assert_eq!(rev_a, rev_b, "revision");
    assert_eq!(kvs_a, kvs_b, "keys, values, versions, revisions, leases");
    assert_eq!(lease_ids(a), lease_ids(b), "leases");
    for rev in compact + 1..=rev_a {
        assert_eq!(hashkv(a, rev), hashkv(b, rev), "HashKV at revision {rev}");
    }
}

/// A Cairn member with [`write_history`]'s history and an `etcdctl snapshot save` of it:
/// (the member, the compaction revision, the snapshot file).
fn cairn_with_snapshot(dir: &Path, name: &str) -> (Proc, i64, PathBuf) {
    let source = Proc::spawn(&cairn(), name, &dir.join(name), free_port());
    let compact = write_history(&source.endpoint());
    let file = dir.join(format!("{name}.snap"));
    ctl(
        &source.endpoint(),
        &["snapshot", "save", &file.display().to_string()],
    );
    (source, compact, file)
}

fn restore_with_etcdctl(file: &Path, data_dir: &Path, name: &str, peer_port: u16) {
    let peer = format!("http://127.0.0.1:{peer_port}");
    ok(
        "etcdctl snapshot restore",
        etcdctl_offline(&[
            "snapshot",
            "restore",
            &file.display().to_string(),
            "--data-dir",
            &data_dir.display().to_string(),
            "--name",
            name,
            "--initial-cluster",
            &format!("{name}={peer}"),
            "--initial-advertise-peer-urls",
            &peer,
        ]),
    );
}

#[test]
fn cairn_snapshot_is_read_by_etcdctl_and_restored_into_etcd() {
    let dir = tempfile::tempdir().unwrap();
    let (source, compact, file) = cairn_with_snapshot(dir.path(), "c1");
    assert!(
        source.log().contains("sending database snapshot to client"),
        "etcd's log line"
    );

    // etcdctl reads the file and finds Cairn's revision; cairnctl prints what it prints.
    let (revision, _) = everything(&source.endpoint());
    let status: Value = serde_json::from_str(&ok(
        "etcdctl snapshot status",
        etcdctl_offline(&[
            "snapshot",
            "status",
            &file.display().to_string(),
            "-w",
            "json",
        ]),
    ))
    .unwrap();
    assert_eq!(status["revision"].as_i64(), Some(revision));
    for format in ["simple", "table", "json"] {
        let f = file.display().to_string();
        let theirs = ok(
            "etcdctl",
            etcdctl_offline(&["snapshot", "status", &f, "-w", format]),
        );
        let ours = ok(
            "cairnctl",
            cairnctl()
                .args(["snapshot", "status", &f, "-w", format])
                .output()
                .unwrap(),
        );
        assert_eq!(ours, theirs, "-w {format}");
    }

    // etcd 3.4 starts from it with the same store.
    let etcd_dir = dir.path().join("etcd");
    let peer = free_port();
    restore_with_etcdctl(&file, &etcd_dir, "e1", peer);
    let etcd = Proc::spawn(Path::new("etcd"), "e1", &etcd_dir, peer);
    assert_same_store(&source.endpoint(), &etcd.endpoint(), compact);
}

#[test]
fn etcd_snapshot_restored_with_etcdctl_starts_cairn() {
    let dir = tempfile::tempdir().unwrap();
    let etcd = Proc::spawn(
        Path::new("etcd"),
        "e1",
        &dir.path().join("etcd"),
        free_port(),
    );
    let compact = write_history(&etcd.endpoint());
    let file = dir.path().join("etcd.snap");
    ctl(
        &etcd.endpoint(),
        &["snapshot", "save", &file.display().to_string()],
    );

    let cairn_dir = dir.path().join("cairn");
    let peer = free_port();
    restore_with_etcdctl(&file, &cairn_dir, "c1", peer);
    let restored = Proc::spawn(&cairn(), "c1", &cairn_dir, peer);
    let log = restored.log();
    assert!(log.contains("imported the etcd backend"), "{log}");
    assert!(
        cairn_dir.join("member/wal.etcd").is_dir(),
        "etcd's WAL kept aside"
    );
    assert_same_store(&etcd.endpoint(), &restored.endpoint(), compact);
    let members = ctl(&restored.endpoint(), &["member", "list"]);
    assert!(members.contains(", c1, "), "the flags' member: {members}");

    // It goes on from the imported revision, and reads below the compaction fail as etcd's.
    let (revision, _) = everything(&restored.endpoint());
    ctl(&restored.endpoint(), &["put", "new", "x"]);
    assert_eq!(everything(&restored.endpoint()).0, revision + 1);
    let old = etcdctl_at(
        &restored.endpoint(),
        &["get", "k00", "--rev", &(compact - 1).to_string()],
        "",
    );
    let (code, _, stderr) = text(&old);
    assert_ne!(code, 0);
    assert!(
        stderr.contains("required revision has been compacted"),
        "{stderr}"
    );
}

/// A stopped etcd member's own data dir (not a restore): Cairn started on it with the
/// same flags imports `member/snap/db` and serves what etcd served.
#[test]
fn a_stopped_etcd_members_data_dir_starts_cairn() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("member1");
    let peer = free_port();
    let mut etcd = Proc::spawn(Path::new("etcd"), "m1", &data, peer);
    let compact = write_history(&etcd.endpoint());
    let (revision, kvs) = everything(&etcd.endpoint());
    let hashes: Vec<(u64, i64)> = (compact + 1..=revision)
        .map(|rev| hashkv(&etcd.endpoint(), rev))
        .collect();
    let leases = lease_ids(&etcd.endpoint());
    let mut child = etcd.child.take().unwrap();
    // SAFETY: kill(2) on the child's pid; SIGTERM stops etcd cleanly.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    child.wait().unwrap();
    drop(etcd);

    let cairn = Proc::spawn(&cairn(), "m1", &data, peer);
    assert!(cairn.log().contains("imported the etcd backend"));
    assert_eq!(everything(&cairn.endpoint()), (revision, kvs));
    assert_eq!(lease_ids(&cairn.endpoint()), leases);
    let ours: Vec<(u64, i64)> = (compact + 1..=revision)
        .map(|rev| hashkv(&cairn.endpoint(), rev))
        .collect();
    assert_eq!(
        ours, hashes,
        "HashKV at every revision from the compaction on"
    );
}

#[test]
fn cairnctl_restore_starts_cairn_and_refuses_damaged_input() {
    let dir = tempfile::tempdir().unwrap();
    let (source, compact, file) = cairn_with_snapshot(dir.path(), "c1");

    let peer = free_port();
    let restored_dir = dir.path().join("restored");
    let restore = |file: &Path, data_dir: &Path| {
        let url = format!("http://127.0.0.1:{peer}");
        cairnctl()
            .args(["snapshot", "restore"])
            .arg(file)
            .arg("--data-dir")
            .arg(data_dir)
            .args(["--name", "r1", "--initial-cluster", &format!("r1={url}")])
            .args(["--initial-advertise-peer-urls", &url])
            .output()
            .unwrap()
    };
    ok("cairnctl snapshot restore", restore(&file, &restored_dir));
    let (code, _, stderr) = text(&restore(&file, &restored_dir));
    assert_eq!(code, 1);
    assert_eq!(
        stderr.trim(),
        format!(
            "Error: data-dir {:?} exists",
            restored_dir.display().to_string()
        )
    );
    let restored = Proc::spawn(&cairn(), "r1", &restored_dir, peer);
    assert_same_store(&source.endpoint(), &restored.endpoint(), compact);
    let status: Value = serde_json::from_str(&ctl(
        &restored.endpoint(),
        &["endpoint", "status", "-w", "json"],
    ))
    .unwrap();
    let id = status[0]["Status"]["header"]["member_id"].as_u64().unwrap();
    let url = format!("http://127.0.0.1:{peer}");
    assert_eq!(id, server::ids::member_id(&[url], "etcd-cluster"));
    drop(restored);

    // A flipped byte: the hash check refuses it and nothing is written.
    let mut bytes = std::fs::read(&file).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x55;
    let damaged = dir.path().join("damaged.snap");
    std::fs::write(&damaged, &bytes).unwrap();
    let target = dir.path().join("never");
    let (code, _, stderr) = text(&restore(&damaged, &target));
    assert_eq!(code, 1);
    assert!(stderr.starts_with("Error: etcd backend"), "{stderr}");
    assert!(stderr.contains("expected sha256 ["), "{stderr}");
    assert!(!target.exists());

    // A damaged db in a data dir: cairn refuses to start and writes no store.
    let data = dir.path().join("bad-db");
    std::fs::create_dir_all(data.join("member/snap")).unwrap();
    let db_len = bytes.len() - 32;
    let mut db = bytes[..db_len].to_vec();
    db.truncate(db_len / 2);
    std::fs::write(data.join("member/snap/db"), &db).unwrap();
    let url = format!("http://127.0.0.1:{}", free_port());
    let client = format!("http://127.0.0.1:{}", free_port());
    let out = member_command(&cairn(), "b1", &data, &client, &url)
        .output()
        .unwrap();
    let (code, stdout, stderr) = text(&out);
    assert_ne!(code, 0);
    let all = format!("{stdout}{stderr}");
    assert!(all.contains("cannot import"), "{all}");
    assert!(!data.join("member/kv").exists());
    assert!(!data.join("member/kv.import").exists());
}

/// The acceptance: write keys on a 3-member Cairn cluster, save a snapshot,
/// change keys, stop every member, restore each from the snapshot with etcdctl, start
/// them: the snapshot's keys are back, the later changes gone, HashKV equal everywhere.
#[test]
fn backup_drill_on_three_members() {
    if common::skip_unless_cairn("restores Cairn members from a Cairn snapshot") {
        return;
    }
    let mut cluster = Cluster::start(3);
    let leader = cluster.wait_leader();
    let endpoint = cluster.endpoint(leader);
    let compact = write_history(&endpoint);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("backup.snap");
    ctl(
        &endpoint,
        &["snapshot", "save", &file.display().to_string()],
    );
    let saved = everything(&endpoint);
    ctl(&endpoint, &["put", "later", "gone"]);
    ctl(&endpoint, &["del", "k00"]);
    for i in 0..cluster.len() {
        cluster.kill9(i);
    }
    for i in 0..cluster.len() {
        let m = cluster.member(i);
        std::fs::remove_dir_all(m.data_dir()).unwrap();
        ok(
            "etcdctl snapshot restore",
            etcdctl_offline(&[
                "snapshot",
                "restore",
                &file.display().to_string(),
                "--data-dir",
                &m.data_dir().display().to_string(),
                "--name",
                &m.name,
                "--initial-cluster",
                &m.initial_cluster,
                "--initial-cluster-token",
                &m.initial_cluster_token,
                "--initial-advertise-peer-urls",
                &m.peer_url(),
            ]),
        );
    }
    for i in 0..cluster.len() {
        cluster.spawn(i);
    }
    cluster.wait_all_healthy();
    cluster.wait_leader();
    for i in 0..cluster.len() {
        let e = cluster.endpoint(i);
        let (revision, kvs) = everything(&e);
        assert_eq!((revision, &kvs), (saved.0, &saved.1), "member {i}");
        assert!(
            !kvs.iter().any(|kv| kv["key"] == "bGF0ZXI="),
            "later put gone"
        );
    }
    let first = cluster.hashkv(0).unwrap();
    for i in 1..cluster.len() {
        assert_eq!(cluster.hashkv(i).unwrap(), first, "member {i}");
    }
    assert_eq!(first.compact_revision, compact);
}

/// Users, roles, permissions and the enabled flag as etcdctl sets them up, auth enabled
/// last; `alice` may read `pub/` only.
fn set_up_auth(endpoint: &str) {
    ctl(endpoint, &["put", "pub/a", "1"]);
    ctl(endpoint, &["put", "secret", "s"]);
    for (user, password) in [("root", "rootpw"), ("alice", "alicepw")] {
        ctl(
            endpoint,
            &[
                "user",
                "add",
                user,
                &format!("--new-user-password={password}"),
                "--interactive=false",
            ],
        );
    }
    ctl(endpoint, &["user", "grant-role", "root", "root"]);
    ctl(endpoint, &["role", "add", "reader"]);
    ctl(
        endpoint,
        &[
            "role",
            "grant-permission",
            "reader",
            "read",
            "pub/",
            "--prefix",
        ],
    );
    ctl(endpoint, &["user", "grant-role", "alice", "reader"]);
    ctl(endpoint, &["auth", "enable"]);
}

/// What a server restored from [`set_up_auth`]'s snapshot enforces: the same passwords
/// (bcrypt hashes travel as they are), roles and permissions, auth still enabled.
fn assert_auth_restored(endpoint: &str) {
    let alice = ["--user", "alice:alicepw"];
    let get = |who: &[&str], key: &str| {
        let mut args = who.to_vec();
        args.extend(["get", key]);
        text(&etcdctl_at(endpoint, &args, ""))
    };
    assert_eq!(get(&alice, "pub/a").1, "pub/a\n1\n");
    let (code, _, stderr) = get(&alice, "secret");
    assert_ne!(code, 0);
    assert!(stderr.contains("etcdserver: permission denied"), "{stderr}");
    let (code, _, stderr) = get(&["--user", "alice:wrong"], "pub/a");
    assert_ne!(code, 0);
    assert!(stderr.contains("authentication failed"), "{stderr}");
    let (code, _, stderr) = get(&[], "pub/a");
    assert_ne!(code, 0);
    assert!(
        stderr.contains("user name is empty"),
        "auth stays enabled: {stderr}"
    );
    assert_eq!(get(&["--user", "root:rootpw"], "secret").1, "secret\ns\n");
    let roles = ctl(
        endpoint,
        &["--user", "root:rootpw", "role", "get", "reader"],
    );
    assert!(roles.contains("[pub/, pub0) (prefix pub/)"), "{roles}");
}

#[test]
fn auth_travels_in_snapshots_both_ways() {
    let dir = tempfile::tempdir().unwrap();
    let root = ["--user", "root:rootpw"];
    for (from, to) in [
        (cairn(), PathBuf::from("etcd")),
        (PathBuf::from("etcd"), cairn()),
    ] {
        let tag = if from == cairn() { "c" } else { "e" };
        let source = Proc::spawn(
            &from,
            "s1",
            &dir.path().join(format!("{tag}-src")),
            free_port(),
        );
        set_up_auth(&source.endpoint());
        let file = dir.path().join(format!("{tag}.snap"));
        let mut save = root.to_vec();
        let f = file.display().to_string();
        save.extend(["snapshot", "save", &f]);
        ctl(&source.endpoint(), &save);
        let restored_dir = dir.path().join(format!("{tag}-restored"));
        let peer = free_port();
        restore_with_etcdctl(&file, &restored_dir, "r1", peer);
        let restored = Proc::spawn(&to, "r1", &restored_dir, peer);
        assert_auth_restored(&restored.endpoint());
    }
}
