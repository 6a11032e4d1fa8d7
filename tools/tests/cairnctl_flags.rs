//! cairnctl against Debian's etcdctl 3.4, beyond the scripted session
//! (`cairnctl_session.rs`): the global flags that act before dialing, `https://`
//! endpoints verified against the system's roots, and `make-mirror` between two Cairn
//! servers. Outputs are compared byte for byte after `ctl_common::mask`.
//!
//! Requires Debian's `etcdctl` 3.4; skipped with a message when it is missing.

mod ctl_common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ctl_common::*;

/// The global flags that act before a connection, nothing listening: `--discovery-srv`
/// on a domain that does not resolve (the resolver's answer in etcdctl's words),
/// `--debug`'s flag listing with `ETCDCTL_*` values (a bad one is ignored, as
/// etcdctl), the `--user` and `user add` prompts on piped stdin; and a flag value that
/// does not parse: stderr and exit code only (etcdctl also prints cobra's usage text on
/// stdout, which cairnctl does not).
#[test]
fn global_flags_before_dialing_as_etcdctl() {
    let Some(etcdctl) = etcdctl() else {
        eprintln!("skipped: Debian's etcdctl 3.4 is not installed");
        return;
    };
    let cairnctl = PathBuf::from(env!("CARGO_BIN_EXE_cairnctl"));
    let endpoint = format!("127.0.0.1:{}", free_port());
    let base = [
        "--endpoints",
        &endpoint,
        "--dial-timeout",
        "300ms",
        "--command-timeout",
        "600ms",
    ];
    let with = |args: &[&str]| -> Vec<String> {
        strings(&base).into_iter().chain(strings(args)).collect()
    };
    type FlagStep<'a> = (Vec<String>, Vec<(&'a str, String)>, &'a str);
    let steps: Vec<FlagStep> = vec![
        (with(&["-d", "nonexistent.invalid", "get", "a"]), vec![], ""),
        (
            with(&[
                "--discovery-srv",
                "nonexistent.invalid",
                "--discovery-srv-name",
                "x",
                "get",
                "a",
            ]),
            vec![],
            "",
        ),
        (
            with(&["get", "a"]),
            vec![("ETCDCTL_DISCOVERY_SRV", "nonexistent.invalid".into())],
            "",
        ),
        (
            with(&["--debug", "--hex", "-w", "json", "get", "a"]),
            vec![
                ("ETCDCTL_KEEPALIVE_TIME", "90s".into()),
                ("ETCDCTL_KEEPALIVE_TIMEOUT", "1500ms".into()),
                ("ETCDCTL_INSECURE_TRANSPORT", "false".into()),
                ("ETCDCTL_INSECURE_DISCOVERY", "0".into()),
                ("ETCDCTL_INSECURE_SKIP_TLS_VERIFY", "true".into()),
                ("ETCDCTL_DISCOVERY_SRV_NAME", "blue".into()),
                ("ETCDCTL_USER", "u:p".into()),
            ],
            "",
        ),
        (
            with(&["get", "a"]),
            vec![
                ("ETCDCTL_DEBUG", "T".into()),
                ("ETCDCTL_KEEPALIVE_TIME", "soon".into()),
                ("ETCDCTL_INSECURE_TRANSPORT", "maybe".into()),
            ],
            "",
        ),
        (with(&["--user", "u", "get", "a"]), vec![], "secret\n"),
        (with(&["--user", "u", "get", "a"]), vec![], ""),
        (with(&["user", "add", "x"]), vec![], ""),
        (with(&["user", "add", "x"]), vec![], "a\nb\n"),
        (with(&["user", "passwd", "x"]), vec![], "\n"),
        // A command's arguments are checked before dialing (the endpoint has no server):
        // the argument error, not "context deadline exceeded".
        (with(&["put"]), vec![], ""),
        (with(&["put", "--lease", "--prev-kv"]), vec![], ""),
        (with(&["--user", "u:p", "get"]), vec![], ""),
        (with(&["del"]), vec![], ""),
        (with(&["compaction", "x"]), vec![], ""),
        (with(&["lease", "grant"]), vec![], ""),
        (with(&["lease", "timetolive", "zz"]), vec![], ""),
        (with(&["member", "remove"]), vec![], ""),
        (with(&["snapshot", "save"]), vec![], ""),
        (with(&["role", "grant-permission", "r"]), vec![], ""),
    ];
    for (args, env, stdin) in &steps {
        let etcdctl_out = run_plain(&etcdctl, args, env, stdin);
        let cairnctl_out = run_plain(&cairnctl, args, env, stdin);
        assert_eq!(
            etcdctl_out, cairnctl_out,
            "{args:?} {env:?}: etcdctl (left) and cairnctl (right) differ"
        );
    }
    let bad_values: &[&[&str]] = &[
        &["--keepalive-time", "soon", "get", "a"],
        &["--keepalive-timeout=1x", "get", "a"],
        &["--debug=maybe", "get", "a"],
        &["--insecure-transport=yes", "get", "a"],
        &["--insecure-discovery=2", "get", "a"],
        &["--insecure-skip-tls-verify=no", "get", "a"],
        &["--dial-timeout", "5", "get", "a"],
    ];
    for args in bad_values {
        let args = with(args);
        let [e, c] = [&etcdctl, &cairnctl].map(|tool| run_plain(tool, &args, &[], ""));
        assert_eq!(
            (e.code, e.stderr),
            (c.code, c.stderr),
            "{args:?}: etcdctl (left) and cairnctl (right) differ"
        );
    }
}

/// An `https://` endpoint whose certificate no system root vouches for (the test CA's):
/// without `--cacert` the server is verified against the system's roots and the call
/// fails as etcdctl's does; `--insecure-skip-tls-verify` turns verification off only
/// with a TLS configuration (`--insecure-transport=false` or a file flag), as etcdctl;
/// an endpoint without a scheme speaks TLS once `--cacert` is given.
#[test]
fn https_endpoints_verify_against_system_roots_as_etcdctl() {
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
    ];
    let cacert = format!("--cacert={}", path("ca.crt"));
    let cairn = cairn();
    let cairnctl = PathBuf::from(env!("CARGO_BIN_EXE_cairnctl"));
    let data = tempfile::tempdir().unwrap();
    let port = free_port();
    let server = start_with(
        &cairn,
        &data.path().join("data"),
        port,
        free_port(),
        &server_flags,
        std::slice::from_ref(&cacert),
    );
    let plain = format!("127.0.0.1:{port}");
    let timeouts = ["--dial-timeout", "500ms", "--command-timeout", "1s"];
    let steps: Vec<Vec<String>> = vec![
        strings(&["--endpoints", &server.endpoint, "put", "k", "v"]),
        strings(&["--endpoints", &server.endpoint, "get", "k"]),
        strings(&[
            "--endpoints",
            &server.endpoint,
            "--insecure-skip-tls-verify",
            "get",
            "k",
        ]),
        strings(&[
            "--endpoints",
            &server.endpoint,
            "--insecure-transport=false",
            "get",
            "k",
        ]),
        strings(&[
            "--endpoints",
            &server.endpoint,
            "--insecure-transport=false",
            "--insecure-skip-tls-verify",
            "get",
            "k",
        ]),
        strings(&[
            "--endpoints",
            &server.endpoint,
            "--user",
            "root:pw",
            "get",
            "k",
        ]),
        strings(&["--endpoints", &plain, &cacert, "get", "k", "-w", "json"]),
        strings(&[
            "--endpoints",
            &plain,
            "--insecure-transport=false",
            "--insecure-skip-tls-verify",
            "get",
            "k",
        ]),
        strings(&["--endpoints", &server.endpoint, &cacert, "get", "k"]),
    ];
    for args in steps {
        let args: Vec<String> = strings(&timeouts).into_iter().chain(args).collect();
        let [e, c] = [&etcdctl, &cairnctl].map(|tool| run_plain(tool, &args, &[], ""));
        assert_eq!(e, c, "{args:?}: etcdctl (left) and cairnctl (right) differ");
    }
}

/// How long make-mirror's destination may take to show the last key put on the source.
const MIRROR_CATCH_UP_MS: u64 = 30_000;

/// `make-mirror` with each tool, on fresh servers: keys put before it starts (the initial
/// copy), then while it runs puts, a delete and a three-operation Txn (replayed as one
/// revision); once the destination has the last key, the tool is stopped (SIGTERM).
/// Compared: the tool's output and exit, the destination's keys and values, and its
/// revision (one per copied key plus one per source revision); and the refusals.
#[test]
fn make_mirror_as_etcdctl() {
    let Some(etcdctl) = etcdctl() else {
        eprintln!("skipped: Debian's etcdctl 3.4 is not installed");
        return;
    };
    let cairn = cairn();
    let cairnctl = PathBuf::from(env!("CARGO_BIN_EXE_cairnctl"));
    let outcomes: Vec<Vec<Outcome>> = [&etcdctl, &cairnctl]
        .iter()
        .map(|tool| mirror_with(tool, &etcdctl, &cairn))
        .collect();
    for (e, c) in outcomes[0].iter().zip(&outcomes[1]) {
        assert_eq!(
            e, c,
            "make-mirror: etcdctl (left) and cairnctl (right) differ"
        );
    }
}

/// One make-mirror run with `tool` (see [`make_mirror_as_etcdctl`]); `etcdctl` writes to
/// and reads the servers.
fn mirror_with(tool: &Path, etcdctl: &Path, cairn: &Path) -> Vec<Outcome> {
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let source = start(
        cairn,
        &dirs[0].path().join("data"),
        free_port(),
        free_port(),
    );
    let dest = start(
        cairn,
        &dirs[1].path().join("data"),
        free_port(),
        free_port(),
    );
    let ctl = |endpoint: &str, args: &[&str], stdin: &str| {
        let args: Vec<String> = strings(&["--endpoints", endpoint])
            .into_iter()
            .chain(strings(args))
            .collect();
        let out = run_plain(etcdctl, &args, &[], stdin);
        assert_eq!(out.code, Some(0), "etcdctl {args:?}: {out:?}");
        out
    };
    for (key, value) in [("m/a", "1"), ("m/b", "2"), ("other", "3"), ("m/c", "4")] {
        ctl(&source.endpoint, &["put", key, value], "");
    }
    let mut outcomes = Vec::new();
    let refusals: &[&[&str]] = &[
        &["make-mirror"],
        &["make-mirror", "a", "b"],
        &[
            "make-mirror",
            "--dest-prefix",
            "x/",
            "--no-dest-prefix",
            &dest.endpoint,
        ],
    ];
    for args in refusals {
        let args: Vec<String> = strings(&["--endpoints", &source.endpoint])
            .into_iter()
            .chain(strings(args))
            .collect();
        outcomes.push(run_plain(tool, &args, &[], ""));
    }
    let mut mirror = Command::new(tool)
        .args([
            "--endpoints",
            &source.endpoint,
            "make-mirror",
            "--prefix",
            "m/",
            "--dest-prefix",
            "copy/",
        ])
        .arg(&dest.endpoint)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start make-mirror");
    ctl(&source.endpoint, &["put", "m/live", "5"], "");
    ctl(&source.endpoint, &["put", "m/b", "6"], "");
    ctl(&source.endpoint, &["del", "m/a"], "");
    ctl(
        &source.endpoint,
        &["txn"],
        "\n\nput m/t1 x\nput m/t2 y\ndel m/live\n\n",
    );
    ctl(&source.endpoint, &["put", "other", "7"], "");
    ctl(&source.endpoint, &["put", "m/zz-last", "8"], "");
    let started = Instant::now();
    while ctl(
        &dest.endpoint,
        &["get", "copy/zz-last", "--print-value-only"],
        "",
    )
    .stdout
        != "8\n"
    {
        assert!(
            started.elapsed() < Duration::from_millis(MIRROR_CATCH_UP_MS),
            "{}: the destination did not get copy/zz-last within {MIRROR_CATCH_UP_MS} ms",
            tool.display()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // SAFETY: kill(2) on our own child's pid; no memory is involved.
    unsafe { libc::kill(mirror.id() as libc::pid_t, libc::SIGTERM) };
    let stopped = mirror.wait().unwrap();
    let mut stdout = String::new();
    let mut stderr = String::new();
    use std::io::Read;
    mirror
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    mirror
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    outcomes.push(Outcome {
        code: stopped.code(),
        stdout,
        stderr,
    });
    outcomes.push(ctl(&dest.endpoint, &["get", "", "--prefix"], ""));
    let json = ctl(&dest.endpoint, &["get", "copy/zz-last", "-w", "json"], "").stdout;
    let at = json.find("\"revision\":").expect("a header revision");
    let revision: String = json[at..].chars().take_while(|c| *c != ',').collect();
    outcomes.push(Outcome {
        code: Some(0),
        stdout: revision,
        stderr: String::new(),
    });
    outcomes
}
