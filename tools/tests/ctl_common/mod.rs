//! What the cairnctl-against-etcdctl tests share: starting Cairn servers (plain or TLS,
//! with a test PKI), finding Debian's etcdctl 3.4, running a tool, and masking what
//! legitimately differs between the two tools' outputs ([`mask`]: lease IDs, measured
//! durations, etcdctl's own log lines).

// Each test crate uses a part of these helpers.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// How long a server may take to answer its first request.
pub const START_TIMEOUT_MS: u64 = 30_000;

/// What one run of a tool gave: exit code, stdout, stderr (masked).
#[derive(Debug, PartialEq, Eq)]
pub struct Outcome {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

pub struct Server {
    child: Child,
    pub endpoint: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `target/<profile>/cairn`, built (or found up to date) by cargo. The variables cargo
/// sets for this test (`CARGO_PKG_*`, `CARGO_MANIFEST_DIR`, ...) are removed first: build
/// scripts that read them would otherwise see a different environment than a plain
/// `cargo build` and rebuild half the tree each time.
pub fn cairn() -> PathBuf {
    let mut build = Command::new(env!("CARGO"));
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy().into_owned();
        let keep = matches!(name.as_str(), "CARGO_HOME" | "CARGO_TARGET_DIR");
        if !keep && (name.starts_with("CARGO_") || name == "OUT_DIR") {
            build.env_remove(&name);
        }
    }
    let built = build
        .args(["build", "-p", "server", "--bin", "cairn"])
        .status()
        .expect("cargo build cairn");
    assert!(built.success(), "building cairn failed");
    PathBuf::from(env!("CARGO_BIN_EXE_cairnctl")).with_file_name("cairn")
}

pub fn start(cairn: &Path, dir: &Path, client: u16, peer: u16) -> Server {
    start_with(cairn, dir, client, peer, &[], &[])
}

/// Starts cairn with `extra` flags (`tls`: https client URLs) and waits until etcdctl
/// (with `probe` flags) reads from it.
pub fn start_with(
    cairn: &Path,
    dir: &Path,
    client: u16,
    peer: u16,
    extra: &[String],
    probe: &[String],
) -> Server {
    let scheme = if extra.is_empty() { "http" } else { "https" };
    let client_url = format!("{scheme}://127.0.0.1:{client}");
    let peer_url = format!("http://127.0.0.1:{peer}");
    let child = Command::new(cairn)
        .args(["--name", "twin", "--data-dir"])
        .arg(dir)
        .args(["--listen-client-urls", &client_url])
        .args(["--advertise-client-urls", &client_url])
        .args(["--listen-peer-urls", &peer_url])
        .args(["--initial-advertise-peer-urls", &peer_url])
        .args(["--initial-cluster", &format!("twin={peer_url}")])
        .args(["--bcrypt-cost", "4"])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start cairn");
    let server = Server {
        child,
        endpoint: if extra.is_empty() {
            format!("127.0.0.1:{client}")
        } else {
            client_url.clone()
        },
    };
    let started = Instant::now();
    loop {
        let probe = Command::new("etcdctl")
            .args(["--endpoints", &server.endpoint])
            .args(probe)
            .args(["get", "probe"])
            .output()
            .unwrap();
        if probe.status.success() {
            return server;
        }
        assert!(
            started.elapsed() < Duration::from_millis(START_TIMEOUT_MS),
            "cairn did not answer within {START_TIMEOUT_MS} ms"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The leases the session granted, learnt from each `lease grant` output (simple, json
/// or fields); the first one is fed to later steps as `{lease}`.
#[derive(Default)]
pub struct Leases(Vec<i64>);

impl Leases {
    pub fn substitute(&self, args: &[&str]) -> Vec<String> {
        let id = self
            .0
            .first()
            .map_or("0".to_string(), |id| format!("{id:x}"));
        args.iter().map(|a| a.replace("{lease}", &id)).collect()
    }

    pub fn learn(&mut self, args: &[String], stdout: &str) {
        if args.len() < 2 || args[0] != "lease" || args[1] != "grant" {
            return;
        }
        let id = if let Some(rest) = stdout.strip_prefix("lease ") {
            i64::from_str_radix(rest.split(' ').next().unwrap(), 16).ok()
        } else {
            ["\"ID\":", "\"ID\" : "].iter().find_map(|tag| {
                let at = stdout.find(tag)? + tag.len();
                let digits: String = stdout[at..]
                    .chars()
                    .take_while(|c| c.is_ascii_digit())
                    .collect();
                digits.parse().ok()
            })
        };
        self.0.extend(id);
    }

    pub fn mask(&self, text: &str) -> String {
        let mut text = text.to_string();
        for id in &self.0 {
            text = text
                .replace(&format!("{id:016x}"), "<LEASE>")
                .replace(&format!("{id:x}"), "<LEASE>")
                .replace(&id.to_string(), "<LEASE>");
        }
        text
    }
}

/// Masks what legitimately differs (listed in `cairnctl_session.rs`'s doc).
pub fn mask(lease: &Leases, output: &Output) -> Outcome {
    let took = |text: String| -> String {
        text.lines()
            .map(|line| {
                let line = match line.find("took = ") {
                    Some(at) => format!("{}took = <TOOK>", &line[..at]),
                    None => line.to_string(),
                };
                match line.find("\"took\":\"") {
                    Some(at) => {
                        let rest = &line[at + 8..];
                        let end = rest.find('"').unwrap();
                        format!("{}\"took\":\"<TOOK>\"{}", &line[..at], &rest[end + 1..])
                    }
                    None => line,
                }
            })
            .filter(|line| !etcdctl_log(line))
            .map(
                |line| match line.strip_prefix("lk/").or(line.strip_prefix("el/")) {
                    // A lock or election key: `<name>/<session lease ID>`.
                    Some(_) => format!("{}<LEASE>", &line[..3]),
                    None => line,
                },
            )
            .map(|line| line + "\n")
            .collect()
    };
    Outcome {
        code: output.status.code(),
        stdout: lease.mask(&remaining_ttl(&took(
            String::from_utf8_lossy(&output.stdout).into_owned(),
        ))),
        stderr: lease.mask(&took(String::from_utf8_lossy(&output.stderr).into_owned())),
    }
}

/// `lease timetolive`'s remaining TTL replaced by `<TTL>` (simple `remaining(Ns)`, json
/// `"ttl":N`, fields `"TTL" : N` beside `"GrantedTTL"`): it counts down between two runs,
/// and a run on a loaded machine can cross a second (99 vs 98). The granted TTL stays.
fn remaining_ttl(text: &str) -> String {
    let digits_after = |line: &str, marker: &str| -> Option<String> {
        let at = line.find(marker)? + marker.len();
        let len = line[at..]
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(line.len() - at);
        Some(format!("{}<TTL>{}", &line[..at], &line[at + len..]))
    };
    let fields = text.contains("\"GrantedTTL\" : ");
    text.split_inclusive('\n')
        .map(|line| {
            digits_after(line, "remaining(")
                .or_else(|| digits_after(line, "\"ttl\":"))
                .or_else(|| fields.then(|| digits_after(line, "\"TTL\" : ")).flatten())
                .unwrap_or_else(|| line.to_string())
        })
        .collect()
}

/// Lines only etcdctl writes, on stderr: its client library's zap JSON log (retries,
/// with a timestamp and a random target), grpc-go's log under `--debug` (timestamped
/// `INFO:`/`WARNING:` lines), and `stty`'s complaint when speakeasy turns echo off and
/// on for a password prompt while stdin is not a terminal.
pub fn etcdctl_log(line: &str) -> bool {
    line.starts_with("{\"level\":")
        || line.starts_with("INFO: ")
        || line.starts_with("WARNING: ")
        || line.starts_with("stty: ")
}

pub fn etcdctl() -> Option<PathBuf> {
    let found = Command::new("etcdctl").arg("version").output().ok()?;
    let text = String::from_utf8_lossy(&found.stdout);
    text.contains("etcdctl version: 3.4")
        .then(|| PathBuf::from("etcdctl"))
}

pub fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .expect("spawn openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// ca.{crt,key}, server.{crt,key} (SAN 127.0.0.1), client.{crt,key} (CN root), EC P-256.
pub fn make_pki(dir: &Path) {
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let mut ca = vec![
        "req", "-x509", "-days", "3650", "-keyout", "ca.key", "-out", "ca.crt",
    ];
    ca.extend(ec);
    ca.extend([
        "-subj",
        "/CN=cairnctl-test-ca",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
    ]);
    openssl(dir, &ca);
    for (name, cn, ext) in [
        (
            "server",
            "127.0.0.1",
            "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth",
        ),
        ("client", "root", "extendedKeyUsage=clientAuth"),
    ] {
        let (key, csr, crt, extfile) = (
            format!("{name}.key"),
            format!("{name}.csr"),
            format!("{name}.crt"),
            format!("{name}.ext"),
        );
        let mut req = vec!["req", "-new", "-keyout", &key, "-out", &csr];
        req.extend(ec);
        let subject = format!("/CN={cn}");
        req.extend(["-subj", subject.as_str()]);
        openssl(dir, &req);
        std::fs::write(dir.join(&extfile), ext.replace("\\n", "\n")).unwrap();
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-days",
                "3650",
                "-out",
                &crt,
                "-extfile",
                &extfile,
            ],
        );
    }
}

/// Runs `tool` with `args`, `env` and `stdin` (not a terminal), masked as the session.
pub fn run_plain(tool: &Path, args: &[String], env: &[(&str, String)], stdin: &str) -> Outcome {
    use std::io::Write;
    let mut child = Command::new(tool)
        .args(args)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run tool");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    mask(&Leases::default(), &child.wait_with_output().unwrap())
}

pub fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}
