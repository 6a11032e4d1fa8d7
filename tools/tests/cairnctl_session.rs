//! cairnctl against Debian's etcdctl 3.4: one scripted session of online commands, run
//! once with each tool, compared byte for byte (stdout, stderr, exit code).
//!
//! Both tools must see the same state, revisions included, so the session runs twice
//! against twin Cairn servers: the same name, data-dir layout, ports and cluster token,
//! hence the same member and cluster IDs, started fresh, first with etcdctl, then
//! (after the first server stopped) with cairnctl. Read-only steps also run back to back
//! on the same server with both tools (`Step::Both`), so every read is also compared on
//! one server.
//!
//! Masked, and why:
//! - `lease timetolive`'s remaining TTL: it counts down between two runs of a step;
//! - lease IDs: Cairn, like etcd, makes them from the member ID and the time; each
//!   tool's `lease grant` output gives the ID, which is then replaced by `<LEASE>` in
//!   its outputs (hex and decimal), and fed to later steps as `{lease}`;
//! - `took` of `endpoint health`: a measured duration;
//! - the lease ID that ends lock and election keys (`lk/<id>`, `el/<id>`), for the same
//!   reason;
//! - stderr lines of etcdctl's logs (`ctl_common::etcdctl_log`): its client library's retries (zap
//!   JSON with a timestamp and a random target name), grpc-go's `--debug` log, and
//!   `stty`'s complaints under a password prompt without a terminal; cairnctl has none.
//!
//! Requires Debian's `etcdctl` 3.4; skipped with a message when it is missing.

mod ctl_common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use ctl_common::*;

/// One step of the session.
enum Step {
    /// Run with the session's tool only (state-changing, or a read that sees its writes).
    One(&'static [&'static str]),
    /// Run with etcdctl then cairnctl on the same server; both outputs must match there
    /// too (read-only steps).
    Both(&'static [&'static str]),
    /// Run with `stdin` as input.
    Stdin(&'static [&'static str], &'static str),
    /// `Both` with `stdin` as input.
    BothStdin(&'static [&'static str], &'static str),
    /// `Both` for a command that runs until interrupted (`watch`, `lock`, `elect`):
    /// sent SIGTERM after `WATCH_MS`, SIGKILL if still running `WATCH_MS` later.
    Watch(&'static [&'static str]),
    /// `Watch` with these environment variables set.
    WatchEnv(
        &'static [(&'static str, &'static str)],
        &'static [&'static str],
    ),
    /// `Both` for an interactive command (`watch -i`): `stdin` is written and kept open
    /// for `WATCH_MS`, then closed (the end of input ends the command); SIGKILL if still
    /// running `WATCH_MS` later.
    WatchStdin(&'static [&'static str], &'static str),
}

/// How long a `watch` runs before it is killed.
const WATCH_MS: u64 = 1500;

/// Every implemented command, each `-w` format of a few, and refusals.
fn script() -> Vec<Step> {
    use Step::*;
    vec![
        One(&["put", "foo", "bar"]),
        One(&["put", "foo", "baz", "--prev-kv"]),
        One(&["put", "foo", "qux", "--prev-kv", "-w", "json"]),
        One(&["put", "foo", "quux", "--prev-kv", "-w", "fields"]),
        Stdin(&["put", "from-stdin"], "line one\nline two\n"),
        One(&["put", "a/1", "x"]),
        One(&["put", "a/2", "yy"]),
        One(&["put", "a/3", "zzz"]),
        One(&["put", "b", "\u{e9}t\u{e9} \"quoted\" <tag>"]),
        One(&["put", "foo", "--ignore-value"]),
        Both(&["get", "foo"]),
        Both(&["get", "foo", "-w", "json"]),
        Both(&["get", "foo", "-w", "fields"]),
        Both(&["get", "foo", "-w", "protobuf"]),
        Both(&["get", "foo", "-w", "table"]),
        Both(&["get", "foo", "--hex"]),
        Both(&["get", "a/", "--prefix"]),
        Both(&["get", "a/", "--prefix", "--limit", "2", "-w", "json"]),
        Both(&["get", "a/", "--prefix", "--sort-by", "value", "--order", "descend"]),
        Both(&["get", "a/", "--prefix", "--sort-by", "create", "-w", "fields"]),
        Both(&["get", "a/", "--prefix", "--keys-only"]),
        Both(&["get", "a/", "--prefix", "--print-value-only"]),
        Both(&["get", "a/1", "a/3"]),
        Both(&["get", "a/2", "--from-key", "--consistency", "s"]),
        Both(&["get", "", "--prefix", "--keys-only"]),
        Both(&["get", "foo", "--rev", "2"]),
        Both(&["get", "b", "-w", "json"]),
        Both(&["get", "b", "-w", "fields"]),
        Both(&["get", "from-stdin"]),
        Both(&["get", "missing", "-w", "json"]),
        Both(&["get", "foo", "--rev", "1000"]),
        Both(&["get"]),
        Both(&["get", "a", "--prefix", "--from-key"]),
        Both(&["get", "a", "b", "--prefix"]),
        Both(&["get", "a", "--consistency", "x"]),
        Both(&["get", "a", "--order", "sideways"]),
        Both(&["get", "a", "--sort-by", "size"]),
        Both(&["get", "a", "--print-value-only", "-w", "json"]),
        Both(&["put"]),
        Both(&["put", "k", "--lease", "xyz"]),
        Both(&["put", "k", "v", "--ignore-value"]),
        Both(&["put", "k", "v", "--lease", "1234"]),
        Both(&["del"]),
        One(&["del", "a/1", "--prev-kv"]),
        One(&["del", "a/", "--prefix", "--prev-kv", "-w", "json"]),
        One(&["del", "from-stdin", "-w", "fields"]),
        One(&["del", "nothing"]),
        One(&["del", "b", "--from-key"]),
        Both(&["version"]),
        // Txn: compares, success and failure blocks on stdin.
        Stdin(&["txn"], "value(\"foo\") = \"quux\"\nmod(\"foo\") > \"1\"\n\nput t1 x --prev-kv\nget foo\ndel a/3 --prev-kv\n\nget foo\n\n"),
        Stdin(&["txn", "-w", "json"], "ver(\"foo\") = \"1\"\n\nput t2 x\n\nput t2 y\nget t1 --keys-only\n\n"),
        Stdin(&["txn", "-w", "fields"], "create(\"t2\") < \"1000\"\n\nput \"t 3\" \"q v\\tw\"\ndel nothing\n\n\n"),
        BothStdin(&["txn", "-w", "protobuf"], "val(\"t2\") != \"y\"\n\nget t\n\nget t --prefix\n\n"),
        BothStdin(&["txn", "-i"], "\n\nget t --prefix --keys-only\n\n\n"),
        BothStdin(&["txn", "--interactive=false"], "m(\"t1\") = \"0\"\n\nget t1\n\nget \"t 3\"\n\n"),
        BothStdin(&["txn"], "bogus\n\n\n\n"),
        BothStdin(&["txn"], "ver(\"a\" = \"x\"\n\n\n\n"),
        BothStdin(&["txn"], "ver(\"a\") = \"x\"\n\n\n\n"),
        BothStdin(&["txn"], "weight(\"a\") = \"1\"\n\n\n\n"),
        BothStdin(&["txn"], "\n\nput\n\n\n"),
        BothStdin(&["txn"], "\n\nbogus x\n\n\n"),
        BothStdin(&["txn"], "\n\n"),
        BothStdin(&["txn", "extra"], ""),
        // Snapshots (the file is relative to the session's directory; taken before any
        // user exists: bcrypt salts make the auth bucket differ between the twins).
        Both(&["snapshot", "save", "snap.db"]),
        Both(&["snapshot", "status", "snap.db", "-w", "json"]),
        Both(&["snapshot", "status", "snap.db", "-w", "fields"]),
        Both(&["snapshot", "status", "snap.db", "-w", "table"]),
        Both(&["snapshot", "status", "snap.db"]),
        Both(&["snapshot", "save"]),
        Both(&["snapshot", "save", "no-such-dir/snap.db"]),
        // Users, roles, authentication.
        One(&["user", "add", "root:rootpw"]),
        One(&["role", "add", "reader"]),
        One(&["role", "grant-permission", "reader", "read", "a/", "--prefix"]),
        One(&["role", "grant-permission", "reader", "readwrite", "k1"]),
        One(&["role", "grant-permission", "reader", "write", "x", "z", "-w", "json"]),
        One(&["role", "grant-permission", "reader", "read", "", "--from-key", "-w", "fields"]),
        Stdin(&["user", "add", "alice", "--interactive=false"], "alicepw\n"),
        One(&["user", "add", "bob", "--new-user-password", "bobpw", "-w", "json"]),
        One(&["user", "add", "carol:pw", "-w", "protobuf"]),
        One(&["user", "grant-role", "alice", "reader"]),
        One(&["user", "grant-role", "bob", "reader", "-w", "fields"]),
        Both(&["role", "get", "reader"]),
        Both(&["role", "get", "reader", "-w", "json"]),
        Both(&["role", "get", "reader", "-w", "fields"]),
        Both(&["role", "get", "reader", "-w", "protobuf"]),
        Both(&["role", "list"]),
        Both(&["role", "list", "-w", "json"]),
        Both(&["role", "list", "-w", "fields"]),
        Both(&["user", "get", "alice"]),
        Both(&["user", "get", "alice", "-w", "json"]),
        Both(&["user", "get", "alice", "-w", "fields"]),
        Both(&["user", "get", "alice", "--detail"]),
        Both(&["user", "get", "alice", "--detail", "-w", "json"]),
        Both(&["user", "list"]),
        Both(&["user", "list", "-w", "json"]),
        Both(&["user", "list", "-w", "table"]),
        Both(&["role", "get", "nope"]),
        Both(&["user", "get", "nope"]),
        Both(&["user", "add"]),
        Both(&["user", "add", ":x"]),
        Both(&["user", "grant-role", "alice"]),
        Both(&["role", "grant-permission", "reader", "bogus", "a"]),
        Both(&["role", "grant-permission", "reader", "read", "a", "b", "--prefix"]),
        Both(&["role", "revoke-permission", "reader", "nothing"]),
        Both(&["auth", "enable", "extra"]),
        One(&["auth", "enable"]),
        Both(&["get", "a/", "--prefix"]),
        Both(&["--user", "alice:alicepw", "get", "a/", "--prefix"]),
        Both(&["--user", "alice:alicepw", "put", "a/9", "x"]),
        Both(&["--user", "alice:wrong", "get", "a/2"]),
        Both(&["--user", "alice", "--password", "alicepw", "get", "k1"]),
        Both(&["--user", "root:rootpw", "role", "get", "root"]),
        Stdin(&["--user", "root:rootpw", "user", "passwd", "alice", "--interactive=false"], "newpw\n"),
        Both(&["--user", "alice:newpw", "get", "a/2", "-w", "json"]),
        One(&["--user", "root:rootpw", "role", "revoke-permission", "reader", "a/", "--prefix"]),
        One(&["--user", "root:rootpw", "role", "revoke-permission", "reader", "x", "z", "-w", "json"]),
        One(&["--user", "root:rootpw", "role", "revoke-permission", "reader", "", "--from-key"]),
        One(&["--user", "root:rootpw", "role", "revoke-permission", "reader", "k1", "-w", "fields"]),
        One(&["--user", "root:rootpw", "user", "revoke-role", "alice", "reader"]),
        One(&["--user", "root:rootpw", "auth", "disable"]),
        One(&["user", "delete", "bob"]),
        One(&["user", "delete", "carol", "-w", "json"]),
        One(&["role", "delete", "reader"]),
        Both(&["user", "list"]),
        Both(&["role", "list"]),
        // Members, endpoints (before any lease: HashKV hashes lease IDs, which differ
        // between the twin servers).
        Both(&["member", "list"]),
        Both(&["member", "list", "-w", "table"]),
        Both(&["member", "list", "-w", "json"]),
        Both(&["member", "list", "-w", "fields"]),
        Both(&["member", "list", "-w", "protobuf"]),
        Both(&["member", "remove", "xyz"]),
        Both(&["member", "remove", "1234"]),
        Both(&["member", "update", "1234", "--peer-urls", "http://127.0.0.1:1"]),
        Both(&["member", "update", "1234"]),
        Both(&["member", "promote", "1234"]),
        Both(&["member", "add"]),
        Both(&["member", "add", "n", "http://127.0.0.1:1"]),
        Both(&["member", "add", "n"]),
        Both(&["endpoint", "health"]),
        Both(&["endpoint", "health", "-w", "json"]),
        Both(&["endpoint", "health", "--cluster"]),
        Both(&["endpoint", "status"]),
        Both(&["endpoint", "status", "-w", "table"]),
        Both(&["endpoint", "status", "-w", "json"]),
        Both(&["endpoint", "status", "-w", "fields"]),
        Both(&["endpoint", "status", "--cluster"]),
        Both(&["endpoint", "hashkv"]),
        Both(&["endpoint", "hashkv", "-w", "table"]),
        Both(&["endpoint", "hashkv", "-w", "json"]),
        Both(&["endpoint", "hashkv", "-w", "fields"]),
        Both(&["endpoint", "hashkv", "--rev", "5"]),
        // Leadership, watches.
        Both(&["move-leader", "1234"]),
        Both(&["move-leader", "xyz"]),
        Both(&["move-leader"]),
        Watch(&["watch", "--rev", "1", "--prefix", "a/"]),
        Watch(&["watch", "--rev", "1", "foo", "--prev-kv", "-w", "json"]),
        Watch(&["watch", "--rev", "2", "a/1", "a/9", "-w", "fields"]),
        Watch(&["watch", "--rev", "1", "b", "--hex"]),
        Watch(&["watch", "--rev", "1", "from-stdin", "-w", "protobuf"]),
        Watch(&["watch"]),
        Watch(&["watch", "a", "b", "--prefix"]),
        // watch's exec form, environment key and interactive mode (one block: only the
        // exec form and one interactive session run until stopped, to keep the time).
        // Key `b` has two events and a value with quotes, for ETCD_WATCH_VALUE's %q.
        Watch(&["watch", "--rev", "1", "b", "--", "sh", "-c", "echo $ETCD_WATCH_KEY $ETCD_WATCH_VALUE $ETCD_WATCH_EVENT_TYPE $ETCD_WATCH_REVISION"]),
        Watch(&["watch", "--rev", "1", "b", "--prev-kv", "-w", "json", "--", "sh", "-c", "exit 3"]),
        Watch(&["watch", "--rev", "1", "b", "--", "nosuchcmd", "x"]),
        Watch(&["watch", "b", "--"]),
        Watch(&["watch", "--"]),
        Watch(&["watch", "b", "c", "d", "--rev", "1", "--", "false"]),
        WatchEnv(&[("ETCDCTL_WATCH_KEY", "b")], &["watch", "--rev", "1", "--", "sh", "-c", "echo $ETCD_WATCH_KEY; exit 2"]),
        WatchEnv(&[("ETCDCTL_WATCH_KEY", "b")], &["watch", "b", "--", "echo", "1"]),
        WatchEnv(&[("ETCDCTL_WATCH_KEY", "b")], &["watch", "b"]),
        WatchEnv(&[("ETCDCTL_WATCH_RANGE_END", "c")], &["watch", "b"]),
        WatchStdin(&["watch", "-i"], "\nbogus x\nwatch\nwatch --prefix a/ b\nwatch -- echo\nwatch \"zz\\x41\"\nprogress\n"),
        WatchStdin(&["watch", "-i"], "progress\nwatch --rev 1 b -- sh -c \"echo $ETCD_WATCH_KEY; exit 4\"\n"),
        WatchStdin(&["watch", "-i"], "watch --rev=x b\n"),
        WatchStdin(&["watch", "-i"], "watch --bogus b\n"),
        WatchStdin(&["watch", "-i"], "watch --prefix\n"),
        WatchStdin(&["watch", "-i"], "watch b --\n"),
        // Leases.
        One(&["lease", "grant", "100"]),
        One(&["put", "leased", "v", "--lease", "{lease}"]),
        Both(&["lease", "timetolive", "{lease}"]),
        Both(&["lease", "timetolive", "{lease}", "--keys"]),
        Both(&["lease", "timetolive", "{lease}", "--keys", "-w", "json"]),
        Both(&["lease", "timetolive", "{lease}", "--keys", "-w", "fields"]),
        Both(&["lease", "timetolive", "{lease}", "-w", "json"]),
        Both(&["lease", "list"]),
        Both(&["lease", "list", "-w", "json"]),
        Both(&["lease", "list", "-w", "fields"]),
        Both(&["get", "leased", "-w", "json"]),
        One(&["lease", "keep-alive", "--once", "{lease}"]),
        One(&["lease", "keep-alive", "--once", "{lease}", "-w", "json"]),
        Watch(&["lease", "keep-alive", "{lease}"]),
        One(&["put", "leased", "w", "--ignore-lease", "--prev-kv", "-w", "fields"]),
        One(&["lease", "revoke", "{lease}"]),
        Both(&["lease", "timetolive", "{lease}"]),
        Both(&["lease", "keep-alive", "--once", "{lease}"]),
        Both(&["lease", "revoke", "{lease}"]),
        Both(&["lease", "grant"]),
        Both(&["lease", "grant", "ten"]),
        Both(&["lease", "revoke", "zz"]),
        One(&["lease", "grant", "50", "-w", "json"]),
        One(&["lease", "grant", "50", "-w", "fields"]),
        Both(&["lease", "list"]),
        // Maintenance.
        Both(&["alarm", "list"]),
        Both(&["alarm", "list", "-w", "json"]),
        Both(&["alarm", "list", "extra"]),
        One(&["alarm", "disarm"]),
        One(&["compaction", "4"]),
        Both(&["compaction", "3"]),
        Both(&["compaction", "four"]),
        Both(&["compaction"]),
        Both(&["get", "foo", "--rev", "3"]),
        Watch(&["watch", "--rev", "2", "foo"]),
        One(&["compaction", "--physical", "6"]),
        One(&["defrag"]),
        Both(&["endpoint", "hashkv", "--rev", "6"]),
        Both(&["get", "", "--prefix", "-w", "json"]),
        // Lock and elect, last: their sessions' leases would show in `lease list`, and
        // their keys end in those lease IDs.
        Watch(&["lock", "lk"]),
        Watch(&["lock", "lk", "--ttl", "5"]),
        Watch(&["elect", "el", "proposal-1"]),
        Watch(&["elect", "-l", "el"]),
        Watch(&["lock"]),
        Watch(&["elect", "el"]),
        Watch(&["elect", "-l", "el", "p"]),
        // lock running a command: its environment, its exit status, a missing program.
        One(&["lock", "lx", "--", "sh", "-c", "echo held ${ETCD_LOCK_KEY%/*}"]),
        One(&["lock", "lx", "--", "sh", "-c", "exit 3"]),
        One(&["lock", "lx", "--", "nosuchcmd"]),
        // ctlflags: the rest of etcdctl's global flags (accepted, TLS-less here) and the
        // password prompts with stdin from a pipe (speakeasy then reads one line per
        // prompt; etcdctl's `stty` complaints and `--debug`'s grpc log are masked).
        Both(&["--keepalive-time", "5s", "--keepalive-timeout", "3s", "get", "foo"]),
        Both(&["--keepalive-time=0s", "--insecure-transport=false", "get", "foo"]),
        Both(&["--insecure-skip-tls-verify", "--insecure-discovery=false", "get", "foo"]),
        Both(&["--debug", "get", "foo"]),
        Both(&["--debug=false", "--insecure-transport=0", "get", "foo", "-w", "json"]),
        Stdin(&["user", "add", "dave"], "pw1\npw1\n"),
        BothStdin(&["user", "add", "erin"], "pw1\npw2\n"),
        BothStdin(&["user", "add", "erin"], ""),
        BothStdin(&["user", "add", "erin"], "   \n"),
        Stdin(&["user", "passwd", "dave", "-w", "json"], " pw2 \npw2\n"),
        BothStdin(&["user", "passwd", "dave"], "pw3\n"),
        BothStdin(&["--user", "dave", "get", "foo"], "pw2\n"),
        One(&["user", "delete", "dave"]),
    ]
}

/// Runs `tool` with `args` against `endpoint` in `dir`, as `how` says.
fn run(tool: &Path, dir: &Path, endpoint: &str, args: &[String], how: &How) -> Output {
    let mut c = Command::new(tool);
    // Authentication (bcrypt in a debug build of cairn, on a shared machine) can take
    // longer than the 2 s default dial timeout, which covers it in etcdctl 3.4.
    c.current_dir(dir)
        .arg("--endpoints")
        .arg(endpoint)
        .arg("--dial-timeout=20s")
        .args(args)
        .envs(how.env.iter().copied());
    c.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().expect("run tool");
    let mut input = child.stdin.take().unwrap();
    if let Some(text) = how.stdin {
        use std::io::Write;
        input.write_all(text.as_bytes()).unwrap();
    }
    let after = Duration::from_millis(WATCH_MS);
    // Waits up to `after` for the child to end by itself.
    let wait = |child: &mut Child| {
        let started = Instant::now();
        while started.elapsed() < after && child.try_wait().unwrap().is_none() {
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    match how.stop {
        None => drop(input),
        Some(Stop::Signal) => {
            drop(input);
            wait(&mut child);
            if child.try_wait().unwrap().is_none() {
                let pid = child.id() as libc::pid_t;
                // SAFETY: kill(2) on our own child's pid (not reaped yet: it cannot be
                // another process's); no memory is involved.
                unsafe { libc::kill(pid, libc::SIGTERM) };
                wait(&mut child);
            }
            let _ = child.kill();
        }
        Some(Stop::EndOfInput) => {
            wait(&mut child);
            drop(input);
            wait(&mut child);
            let _ = child.kill();
        }
    }
    child.wait_with_output().unwrap()
}

/// How a step's command is run: its input, environment, and how it is stopped.
struct How<'a> {
    /// Written to its stdin.
    stdin: Option<&'a str>,
    /// Environment variables added.
    env: &'a [(&'static str, &'static str)],
    /// `None`: runs to its end.
    stop: Option<Stop>,
}

/// How a command that runs until stopped is stopped, `WATCH_MS` after its start.
#[derive(Clone, Copy)]
enum Stop {
    /// SIGTERM (SIGKILL `WATCH_MS` later).
    Signal,
    /// Its stdin is closed (SIGKILL `WATCH_MS` later).
    EndOfInput,
}

/// Runs the session with `tool` on a fresh server; for `Step::Both` also runs `other`
/// right after on the same server and asserts the same outcome.
fn session(tool: &Path, other: &Path, cairn: &Path, ports: (u16, u16)) -> Vec<Outcome> {
    let dir = tempfile::tempdir().unwrap();
    let server = start(cairn, &dir.path().join("data"), ports.0, ports.1);
    let mut lease = Leases::default();
    let mut outcomes = Vec::new();
    for step in script() {
        let (args, stdin, both) = match step {
            Step::One(args) => (args, None, false),
            Step::Both(args) | Step::Watch(args) | Step::WatchEnv(_, args) => (args, None, true),
            Step::Stdin(args, input) => (args, Some(input), false),
            Step::BothStdin(args, input) | Step::WatchStdin(args, input) => {
                (args, Some(input), true)
            }
        };
        let env = match step {
            Step::WatchEnv(env, _) => env,
            _ => &[],
        };
        let stop = match step {
            Step::Watch(_) | Step::WatchEnv(..) => Some(Stop::Signal),
            Step::WatchStdin(..) => Some(Stop::EndOfInput),
            _ => None,
        };
        let args = lease.substitute(args);
        let how = How { stdin, env, stop };
        let output = run(tool, dir.path(), &server.endpoint, &args, &how);
        lease.learn(&args, &String::from_utf8_lossy(&output.stdout));
        let outcome = mask(&lease, &output);
        if both {
            let again = mask(
                &lease,
                &run(other, dir.path(), &server.endpoint, &args, &how),
            );
            assert_eq!(
                outcome,
                again,
                "{args:?}: {} and {} differ on the same server",
                tool.display(),
                other.display()
            );
        }
        outcomes.push(outcome);
    }
    outcomes
}

#[test]
fn cairnctl_prints_what_etcdctl_prints() {
    let Some(etcdctl) = etcdctl() else {
        eprintln!("skipped: Debian's etcdctl 3.4 is not installed");
        return;
    };
    let cairn = cairn();
    let cairnctl = PathBuf::from(env!("CARGO_BIN_EXE_cairnctl"));
    let ports = (free_port(), free_port());
    let expected = session(&etcdctl, &cairnctl, &cairn, ports);
    let actual = session(&cairnctl, &etcdctl, &cairn, ports);
    let script = script();
    assert_eq!(expected.len(), actual.len());
    for ((step, e), a) in script.iter().zip(&expected).zip(&actual) {
        let args = match step {
            Step::One(a)
            | Step::Both(a)
            | Step::Watch(a)
            | Step::WatchEnv(_, a)
            | Step::Stdin(a, _)
            | Step::BothStdin(a, _)
            | Step::WatchStdin(a, _) => a,
        };
        assert_eq!(
            e, a,
            "step {args:?}: etcdctl (left) and cairnctl (right) differ"
        );
    }
}

/// Over https with client certificates: `--cacert`, `--cert`, `--key`,
/// `--insecure-skip-tls-verify`, and their `ETCDCTL_*` variables, both tools back to
/// back on one server.
#[test]
fn cairnctl_speaks_tls_as_etcdctl() {
    let Some(etcdctl) = etcdctl() else {
        eprintln!("skipped: Debian's etcdctl 3.4 is not installed");
        return;
    };
    let pki = tempfile::tempdir().unwrap();
    make_pki(pki.path());
    let path = |name: &str| pki.path().join(name).display().to_string();
    let server_flags = vec![
        "--cert-file".to_string(),
        path("server.crt"),
        "--key-file".into(),
        path("server.key"),
        "--trusted-ca-file".into(),
        path("ca.crt"),
        "--client-cert-auth".into(),
    ];
    let client_flags = vec![
        format!("--cacert={}", path("ca.crt")),
        format!("--cert={}", path("client.crt")),
        format!("--key={}", path("client.key")),
    ];
    let cairn = cairn();
    let cairnctl = PathBuf::from(env!("CARGO_BIN_EXE_cairnctl"));
    let data = tempfile::tempdir().unwrap();
    let server = start_with(
        &cairn,
        &data.path().join("data"),
        free_port(),
        free_port(),
        &server_flags,
        &client_flags,
    );
    let with = |extra: &[&str]| -> Vec<String> {
        client_flags
            .iter()
            .cloned()
            .chain(extra.iter().map(|s| s.to_string()))
            .collect()
    };
    let skip_verify = |extra: &[&str]| -> Vec<String> {
        [
            "--insecure-skip-tls-verify".to_string(),
            format!("--cert={}", path("client.crt")),
            format!("--key={}", path("client.key")),
        ]
        .into_iter()
        .chain(extra.iter().map(|s| s.to_string()))
        .collect()
    };
    // Arguments and environment variables of each step.
    type TlsStep<'a> = (Vec<String>, Vec<(&'a str, String)>);
    let steps: Vec<TlsStep> = vec![
        (with(&["put", "tls-key", "v"]), vec![]),
        (with(&["get", "tls-key", "-w", "json"]), vec![]),
        (with(&["endpoint", "status"]), vec![]),
        (with(&["member", "list", "-w", "table"]), vec![]),
        (skip_verify(&["get", "tls-key"]), vec![]),
        (
            vec!["get".into(), "tls-key".into(), "-w".into(), "fields".into()],
            vec![
                ("ETCDCTL_CACERT", path("ca.crt")),
                ("ETCDCTL_CERT", path("client.crt")),
                ("ETCDCTL_KEY", path("client.key")),
            ],
        ),
        (with(&["--cert=", "get", "x"]), vec![]),
    ];
    for (args, env) in steps {
        let outcomes: Vec<Outcome> = [&etcdctl, &cairnctl]
            .iter()
            .map(|tool| {
                let output = Command::new(tool)
                    .arg("--endpoints")
                    .arg(&server.endpoint)
                    .args(&args)
                    .envs(env.iter().map(|(k, v)| (k, v)))
                    .stdin(Stdio::null())
                    .output()
                    .unwrap();
                mask(&Leases::default(), &output)
            })
            .collect();
        assert_eq!(
            outcomes[0], outcomes[1],
            "{args:?} {env:?}: etcdctl (left) and cairnctl (right) differ"
        );
    }
}

/// Nothing listens: etcdctl 3.4 dials lazily, so a call fails after `--command-timeout`
/// with exit 1, and only `--user` (authentication at connect) fails with exit 2 after
/// `--dial-timeout`; the endpoint commands report the endpoint and go on.
#[test]
fn unreachable_endpoint_as_etcdctl() {
    let Some(etcdctl) = etcdctl() else {
        eprintln!("skipped: Debian's etcdctl 3.4 is not installed");
        return;
    };
    let cairnctl = PathBuf::from(env!("CARGO_BIN_EXE_cairnctl"));
    let endpoint = format!("127.0.0.1:{}", free_port());
    let steps: &[&[&str]] = &[
        &["get", "a"],
        &["put", "a", "b"],
        &["--user", "a:b", "get", "a"],
        &["endpoint", "health"],
        &["endpoint", "status", "-w", "json"],
        &["endpoint", "hashkv"],
        &["defrag"],
    ];
    for args in steps {
        let outcomes: Vec<Outcome> = [&etcdctl, &cairnctl]
            .iter()
            .map(|tool| {
                let output = Command::new(tool)
                    .args(["--endpoints", &endpoint])
                    .args(["--dial-timeout", "300ms", "--command-timeout", "600ms"])
                    .args(*args)
                    .stdin(Stdio::null())
                    .output()
                    .unwrap();
                mask(&Leases::default(), &output)
            })
            .collect();
        assert_eq!(
            outcomes[0], outcomes[1],
            "{args:?}: etcdctl (left) and cairnctl (right) differ"
        );
    }
}
