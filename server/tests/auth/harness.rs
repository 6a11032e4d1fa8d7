//! The auth acceptance test's harness (`tests/auth.rs` holds the sessions): servers
//! started with the same flags, the PKI made with `openssl`, the etcdctl session that
//! records masked transcripts, and the side-by-side report of the first divergence.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use super::common;
/// How long a server may take to answer `endpoint health` after spawn.
pub(crate) const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a watch may run before it must have printed what it is waited for (or, for a
/// refused watch, exited by itself).
pub(crate) const WATCH_TIMEOUT: Duration = Duration::from_secs(10);
/// How long one session may run before its remaining steps are skipped.
pub(crate) const SESSION_TIMEOUT: Duration = Duration::from_secs(150);
/// The bcrypt cost both servers hash passwords with (etcd's minimum; keeps the session
/// fast).
pub(crate) const BCRYPT_COST: &str = "4";

/// Which server implementation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Etcd,
    Cairn,
}

impl Kind {
    pub(crate) fn program(self) -> PathBuf {
        match self {
            Kind::Etcd => PathBuf::from("etcd"),
            Kind::Cairn => PathBuf::from(env!("CARGO_BIN_EXE_cairn")),
        }
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            Kind::Etcd => "etcd",
            Kind::Cairn => "cairn",
        }
    }
}

/// Which session (and server flags).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    Simple,
    Jwt,
    Tls,
}

impl Mode {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Mode::Simple => "simple",
            Mode::Jwt => "jwt",
            Mode::Tls => "tls",
        }
    }
}

/// Certificates and JWT keys shared by every server of the run, made with `openssl`.
pub(crate) struct Pki {
    pub(crate) dir: tempfile::TempDir,
}

impl Pki {
    pub(crate) fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }

    pub(crate) fn openssl(&self, args: &[&str]) {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .output()
            .expect("spawn openssl");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// ca.{crt,key}; server.{crt,key} (SAN 127.0.0.1, localhost); client pairs with CN
    /// root, alice and mallory; jwt.key (RSA 2048, PKCS#8) and jwt.pub.
    pub(crate) fn new() -> Pki {
        let pki = Pki {
            dir: tempfile::Builder::new()
                .prefix("cairn-auth-pki-")
                .tempdir()
                .expect("temp dir"),
        };
        let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"];
        let mut ca = vec!["req", "-x509", "-nodes", "-days", "36500"];
        ca.extend(ec);
        ca.extend([
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
            "-subj",
            "/CN=cairn-auth-test-ca",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ]);
        pki.openssl(&ca);
        let server_ext = "subjectAltName=IP:127.0.0.1,DNS:localhost\n\
                          extendedKeyUsage=serverAuth,clientAuth\n\
                          keyUsage=critical,digitalSignature\n";
        let client_ext = "extendedKeyUsage=clientAuth\nkeyUsage=critical,digitalSignature\n";
        for (serial, stem, ext) in [
            ("2", "server", server_ext),
            ("3", "root", client_ext),
            ("4", "alice", client_ext),
            ("5", "mallory", client_ext),
        ] {
            std::fs::write(pki.dir.path().join(format!("{stem}.ext")), ext).unwrap();
            let subj = format!("/CN={stem}");
            let (key, csr, crt, extfile) = (
                format!("{stem}.key"),
                format!("{stem}.csr"),
                format!("{stem}.crt"),
                format!("{stem}.ext"),
            );
            let mut req = vec!["req", "-new", "-nodes"];
            req.extend(ec);
            req.extend(["-keyout", &key, "-out", &csr, "-subj", &subj]);
            pki.openssl(&req);
            pki.openssl(&[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-set_serial",
                serial,
                "-days",
                "36500",
                "-extfile",
                &extfile,
                "-out",
                &crt,
            ]);
        }
        pki.openssl(&[
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
            "jwt.key",
        ]);
        pki.openssl(&["pkey", "-in", "jwt.key", "-pubout", "-out", "jwt.pub"]);
        pki
    }
}

/// One running server; SIGKILLed when dropped.
pub(crate) struct Server {
    pub(crate) kind: Kind,
    pub(crate) child: Option<Child>,
    pub(crate) work: tempfile::TempDir,
    pub(crate) client_port: u16,
    pub(crate) peer_port: u16,
    pub(crate) url: String,
    pub(crate) tls: bool,
}

impl Server {
    /// The flags of `mode`, identical for both kinds.
    pub(crate) fn args(&self, mode: Mode, pki: &Pki) -> Vec<String> {
        let peer = format!("http://127.0.0.1:{}", self.peer_port);
        let mut args = vec![
            "--name=n1".to_string(),
            format!("--data-dir={}", self.work.path().join("data").display()),
            format!("--listen-client-urls={}", self.url),
            format!("--advertise-client-urls={}", self.url),
            format!("--listen-peer-urls={peer}"),
            format!("--initial-advertise-peer-urls={peer}"),
            format!("--initial-cluster=n1={peer}"),
            format!("--bcrypt-cost={BCRYPT_COST}"),
        ];
        match mode {
            Mode::Simple | Mode::Tls => {
                args.push("--auth-token=simple".to_string());
                args.push("--auth-token-ttl=300".to_string());
            }
            Mode::Jwt => args.push(format!(
                "--auth-token=jwt,pub-key={},priv-key={},sign-method=RS256,ttl=10m",
                pki.path("jwt.pub"),
                pki.path("jwt.key")
            )),
        }
        if mode == Mode::Tls {
            args.extend([
                format!("--cert-file={}", pki.path("server.crt")),
                format!("--key-file={}", pki.path("server.key")),
                format!("--trusted-ca-file={}", pki.path("ca.crt")),
                "--client-cert-auth=true".to_string(),
            ]);
        }
        args
    }

    pub(crate) fn log_path(&self) -> PathBuf {
        self.work.path().join("server.log")
    }

    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Starts `kind` with the flags of `mode` and waits until `endpoint health` answers;
    /// retries with fresh ports when one was taken meanwhile, panics with the server's
    /// output otherwise.
    pub(crate) fn start(kind: Kind, mode: Mode, pki: &Pki) -> Server {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let client_port = common::free_port();
            let scheme = if mode == Mode::Tls { "https" } else { "http" };
            let mut server = Server {
                kind,
                child: None,
                work: tempfile::Builder::new()
                    .prefix(&format!("cairn-auth-{}-", kind.name()))
                    .tempdir()
                    .expect("temp dir"),
                client_port,
                peer_port: common::free_port(),
                url: format!("{scheme}://127.0.0.1:{client_port}"),
                tls: mode == Mode::Tls,
            };
            let args = server.args(mode, pki);
            let log = File::create(server.log_path()).expect("server log");
            let child = Command::new(kind.program())
                .args(&args)
                .current_dir(server.work.path())
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .unwrap_or_else(|e| panic!("spawn {:?}: {e}", kind.program()));
            server.child = Some(child);
            match server.wait_healthy(pki) {
                Ok(()) => return server,
                Err(why) if attempt < 3 && why.contains("address already in use") => continue,
                Err(why) => panic!(
                    "{} ({mode:?} session) did not become healthy: {why}\nargs: {args:?}\n\
                     its output:\n{}",
                    server.kind.name(),
                    server.log()
                ),
            }
        }
    }

    pub(crate) fn wait_healthy(&mut self, pki: &Pki) -> Result<(), String> {
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        let mut tls = Vec::new();
        if self.tls {
            tls = vec![
                format!("--cacert={}", pki.path("ca.crt")),
                format!("--cert={}", pki.path("root.crt")),
                format!("--key={}", pki.path("root.key")),
            ];
        }
        loop {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                self.child = None;
                return Err(format!("exited with {status}: {}", self.log()));
            }
            let out = Command::new("etcdctl")
                .env("ETCDCTL_API", "3")
                .env_remove("ETCDCTL_ENDPOINTS")
                .arg(format!("--endpoints={}", self.url))
                .args(["--dial-timeout=1s", "--command-timeout=2s"])
                .args(&tls)
                .args(["endpoint", "health"])
                .stdin(Stdio::null())
                .output()
                .expect("spawn etcdctl");
            if out.status.success() {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "not healthy within {STARTUP_TIMEOUT:?}: {}",
                    String::from_utf8_lossy(&out.stderr)
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Who runs an etcdctl command.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Who {
    /// No credentials (no client certificate either; not for the TLS session).
    Anon,
    /// `--user name:password`.
    User(&'static str),
    /// The client certificate of this CN, no `--user`.
    Cert(&'static str),
    /// A client certificate and `--user name:password`.
    CertUser(&'static str, &'static str),
}

pub(crate) const ROOT: Who = Who::User("root:rootpw");
pub(crate) const ALICE: Who = Who::User("alice:alicepw");

/// What an entry must show, checked against both servers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Expect {
    /// Succeeds (exit 0; a watch printed what it was waited for).
    Ok,
    /// An unauthorized operation: must fail, and change nothing.
    Refused,
    /// Some other error (bad request, not found, root protection).
    Fails,
}

/// One transcript entry.
pub(crate) struct Entry {
    /// The masked text: command, stdin, stdout, stderr, exit.
    pub(crate) text: String,
    pub(crate) expect: Expect,
    /// Exit 0 (or the watch printed its marker, or the gRPC call succeeded).
    pub(crate) succeeded: bool,
}

/// A session against one server: runs commands and records the masked transcript.
pub(crate) struct Session<'a> {
    pub(crate) server: &'a Server,
    pub(crate) pki: &'a Pki,
    pub(crate) entries: Vec<Entry>,
    /// Lease ids (hex, as etcdctl prints them) in the order granted.
    pub(crate) leases: Vec<String>,
    /// The member id (hex), from `member list`.
    pub(crate) member: Option<String>,
    pub(crate) runtime: tokio::runtime::Runtime,
    /// Past this, the remaining steps are recorded as skipped (a hung server must not
    /// hold the test for 15 s per command).
    pub(crate) deadline: Instant,
}

impl<'a> Session<'a> {
    pub(crate) fn new(server: &'a Server, pki: &'a Pki) -> Session<'a> {
        Session {
            server,
            pki,
            entries: Vec::new(),
            leases: Vec::new(),
            member: None,
            runtime: common::runtime(),
            deadline: Instant::now() + SESSION_TIMEOUT,
        }
    }

    /// Records `line` as skipped and returns true once the session is past its deadline.
    pub(crate) fn out_of_time(&mut self, line: &str, expect: Expect) -> bool {
        if Instant::now() <= self.deadline {
            return false;
        }
        self.entries.push(Entry {
            text: format!("{line}\n(skipped: the session ran past {SESSION_TIMEOUT:?})\n"),
            expect,
            succeeded: expect != Expect::Ok,
        });
        true
    }

    /// The etcdctl flags for `who`, and how the command is shown in the transcript.
    pub(crate) fn who_flags(&self, who: Who) -> (Vec<String>, String) {
        let mut flags = Vec::new();
        let mut shown = String::new();
        if self.server.tls {
            flags.push(format!("--cacert={}", self.pki.path("ca.crt")));
        }
        let cert = |flags: &mut Vec<String>, shown: &mut String, cn: &str| {
            flags.push(format!("--cert={}", self.pki.path(&format!("{cn}.crt"))));
            flags.push(format!("--key={}", self.pki.path(&format!("{cn}.key"))));
            shown.push_str(&format!("[cert CN={cn}] "));
        };
        match who {
            Who::Anon => {}
            Who::User(user) => {
                flags.push(format!("--user={user}"));
                shown.push_str(&format!("--user={user} "));
            }
            Who::Cert(cn) => cert(&mut flags, &mut shown, cn),
            Who::CertUser(cn, user) => {
                cert(&mut flags, &mut shown, cn);
                flags.push(format!("--user={user}"));
                shown.push_str(&format!("--user={user} "));
            }
        }
        (flags, shown)
    }

    pub(crate) fn etcdctl_command(&self, who: Who, args: &[&str]) -> (Command, String) {
        let (flags, shown) = self.who_flags(who);
        let mut command = Command::new("etcdctl");
        command
            .env("ETCDCTL_API", "3")
            .env_remove("ETCDCTL_ENDPOINTS")
            .current_dir(self.server.work.path())
            .arg(format!("--endpoints={}", self.server.url))
            .arg(format!(
                "--command-timeout={}",
                common::ETCDCTL_COMMAND_TIMEOUT
            ))
            .arg("--dial-timeout=5s")
            .args(&flags)
            .args(args);
        let line = self.mask(&format!("$ etcdctl {shown}{}", shell_words(args)));
        (command, line)
    }

    /// Runs etcdctl as `who` with `stdin`, records the entry, returns the exit code.
    pub(crate) fn run(&mut self, who: Who, args: &[&str], stdin: &str, expect: Expect) -> i32 {
        self.run_masked(who, args, stdin, expect, |s| s.to_string())
    }

    pub(crate) fn run_masked(
        &mut self,
        who: Who,
        args: &[&str],
        stdin: &str,
        expect: Expect,
        mask: impl Fn(&str) -> String,
    ) -> i32 {
        let (mut command, line) = self.etcdctl_command(who, args);
        if self.out_of_time(&line, expect) {
            return -1;
        }
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn etcdctl (Debian package etcd-client)");
        {
            use std::io::Write;
            let mut pipe = child.stdin.take().unwrap();
            pipe.write_all(stdin.as_bytes()).unwrap();
        }
        let output: Output = child.wait_with_output().expect("wait etcdctl");
        let (code, stdout, stderr) = common::text(&output);
        self.learn(args, &stdout);
        let mut text = line + "\n";
        for l in stdin.lines() {
            text.push_str(&format!("stdin> {l}\n"));
        }
        text.push_str(&self.mask_output(&mask(&stdout), &mask(&stderr)));
        text.push_str(&format!("exit {code}\n"));
        self.entries.push(Entry {
            text,
            expect,
            succeeded: code == 0,
        });
        code
    }

    pub(crate) fn ok(&mut self, who: Who, args: &[&str]) {
        self.run(who, args, "", Expect::Ok);
    }

    pub(crate) fn refused(&mut self, who: Who, args: &[&str]) {
        self.run(who, args, "", Expect::Refused);
    }

    pub(crate) fn fails(&mut self, who: Who, args: &[&str]) {
        self.run(who, args, "", Expect::Fails);
    }

    /// A step etcd 3.4 allows and Cairn refuses on purpose, as issue 11 asks and later
    /// etcd releases do (`why`): etcd must succeed, Cairn must answer "etcdserver:
    /// permission denied". Both transcripts then show the same note in its place.
    pub(crate) fn stricter(&mut self, who: Who, args: &[&str], why: &str) {
        let expect = match self.server.kind {
            Kind::Etcd => Expect::Ok,
            Kind::Cairn => Expect::Refused,
        };
        self.run(who, args, "", expect);
        let entry = self.entries.last_mut().expect("just recorded");
        let line = entry.text.lines().next().unwrap_or_default().to_string();
        let refused_as_expected = entry.text.contains("Error: etcdserver: permission denied");
        if self.server.kind == Kind::Cairn && !refused_as_expected {
            // Left as it is: the transcripts differ and the divergence is reported.
            return;
        }
        entry.text = format!("{line}\n(etcd 3.4 allows it; Cairn refuses it: {why})\n");
    }

    /// `etcdctl txn --interactive=false` with compares, success and failure ops.
    pub(crate) fn txn(
        &mut self,
        who: Who,
        compares: &[&str],
        success: &[&str],
        failure: &[&str],
        e: Expect,
    ) {
        let mut stdin = String::new();
        for part in [compares, success, failure] {
            for line in part {
                stdin.push_str(line);
                stdin.push('\n');
            }
            stdin.push('\n');
        }
        self.run(who, &["txn", "--interactive=false"], &stdin, e);
    }

    /// Runs a watch as `who`. With `until`, it must print that (then it is killed); without,
    /// it must exit by itself (a refused watch). Either within [`WATCH_TIMEOUT`].
    pub(crate) fn watch(&mut self, who: Who, args: &[&str], until: Option<&str>, expect: Expect) {
        let (mut command, line) = self.etcdctl_command(who, args);
        if self.out_of_time(&line, expect) {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let (out_path, err_path) = (dir.path().join("out"), dir.path().join("err"));
        let mut child = command
            .stdin(Stdio::null())
            .stdout(File::create(&out_path).unwrap())
            .stderr(File::create(&err_path).unwrap())
            .spawn()
            .expect("spawn etcdctl");
        let deadline = Instant::now() + WATCH_TIMEOUT;
        let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
        let (end, succeeded) = loop {
            if let Some(status) = child.try_wait().unwrap() {
                let code = status.code().unwrap_or(-1);
                break (format!("exit {code}"), code == 0 && until.is_none());
            }
            if let Some(marker) = until {
                if read(&out_path).contains(marker) {
                    let _ = child.kill();
                    let _ = child.wait();
                    break ("(printed the expected events; killed)".to_string(), true);
                }
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                break (
                    format!("(still running after {WATCH_TIMEOUT:?}; killed)"),
                    false,
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let (stdout, stderr) = (read(&out_path), read(&err_path));
        let text = format!("{line}\n{}{end}\n", self.mask_output(&stdout, &stderr));
        self.entries.push(Entry {
            text,
            expect,
            succeeded,
        });
    }

    /// Learns ids that differ between servers from a command's raw stdout.
    pub(crate) fn learn(&mut self, args: &[&str], stdout: &str) {
        // etcdctl prints ids with %x: 1 to 16 digits, no leading zeros.
        let hex_id =
            |s: &str| (1..=16).contains(&s.len()) && s.chars().all(|c| c.is_ascii_hexdigit());
        if args.first() == Some(&"lease") && args.get(1) == Some(&"grant") {
            if let Some(id) = stdout.split_whitespace().nth(1).filter(|s| hex_id(s)) {
                self.leases.push(id.to_string());
            }
        }
        if args.first() == Some(&"member") && args.get(1) == Some(&"list") {
            if let Some(id) = stdout.split(", ").next().filter(|s| hex_id(s)) {
                self.member = Some(id.to_string());
            }
        }
    }

    /// Masks the learnt lease and member ids where etcdctl prints them, and only there (an
    /// id may be as short as `1`): after `lease `, `--lease=`, `revoke `, `timetolive `,
    /// `--once `, as a whole line (`lease list`), as `"lease":` decimal in JSON; the
    /// member id as the first field of `member list` and the second of `endpoint status`.
    pub(crate) fn mask_ids(&self, text: &str) -> String {
        let mut text = text.to_string();
        for (n, hex) in self.leases.iter().enumerate() {
            let name = format!("<LEASE{}>", n + 1);
            for marker in ["lease ", "--lease=", "revoke ", "timetolive ", "--once "] {
                text = replace_run_if(&text, marker, |c| c.is_ascii_hexdigit(), hex, &name);
            }
            let decimal = u64::from_str_radix(hex, 16).unwrap().to_string();
            text = replace_run_if(&text, "\"lease\":", |c| c.is_ascii_digit(), &decimal, &name);
            text = map_lines(&text, |line| {
                if line == hex {
                    name.clone()
                } else {
                    line.to_string()
                }
            });
        }
        if let Some(member) = &self.member {
            let first = format!("{member}, ");
            let second = format!(", {member}, ");
            text = map_lines(&text, |line| match line.strip_prefix(&first) {
                Some(rest) => format!("<MEMBER>, {rest}"),
                None => line.replacen(&second, ", <MEMBER>, ", 1),
            });
        }
        text
    }

    /// The learnt id of the `n`th lease granted (1-based), for later commands.
    pub(crate) fn lease(&self, n: usize) -> String {
        self.leases
            .get(n - 1)
            .cloned()
            .unwrap_or_else(|| "0".to_string())
    }

    /// Masks stdout and stderr and prefixes their lines.
    pub(crate) fn mask_output(&self, stdout: &str, stderr: &str) -> String {
        let mut text = String::new();
        let stdout = self.mask(stdout);
        let stderr = self.mask(&common::normalize_etcdctl_stderr(stderr));
        for l in stdout.lines() {
            text.push_str(&format!("out> {l}\n"));
        }
        if !stdout.is_empty() && !stdout.ends_with('\n') {
            text.push_str("(no newline at end of stdout)\n");
        }
        for l in stderr.lines() {
            text.push_str(&format!("err> {l}\n"));
        }
        text
    }

    pub(crate) fn mask(&self, text: &str) -> String {
        let mut text = text
            .replace(
                &format!("127.0.0.1:{}", self.server.client_port),
                "127.0.0.1:<CLIENT>",
            )
            .replace(
                &format!("127.0.0.1:{}", self.server.peer_port),
                "127.0.0.1:<PEER>",
            );
        text = common::mask_header(&text);
        text = self.mask_ids(&text);
        text = mask_run(&text, "remaining(", |c| c.is_ascii_digit(), "<TTL>");
        text = mask_run(&text, "took = ", |c| c != '\n', "<TOOK>");
        text = mask_run(&text, "\"ts\":", |c| c.is_ascii_digit() || c == '.', "<TS>");
        text
    }

    /// Records a gRPC step (etcd-client), outside etcdctl.
    pub(crate) fn record_grpc(
        &mut self,
        what: &str,
        result: Result<String, String>,
        expect: Expect,
    ) {
        let succeeded = result.is_ok();
        let outcome = match result {
            Ok(text) => format!("ok: {text}"),
            Err(text) => format!("error: {text}"),
        };
        let text = format!("$ grpc {what}\n{}\n", self.mask(&outcome));
        self.entries.push(Entry {
            text,
            expect,
            succeeded,
        });
    }

    /// Connects with etcd-client as `user`/`password` (it authenticates once and sends
    /// that token with every call; it never authenticates again by itself).
    pub(crate) fn connect(
        &mut self,
        what: &str,
        user: &str,
        password: &str,
        expect: Expect,
    ) -> Option<etcd_client::Client> {
        if self.out_of_time(&format!("$ grpc {what}"), expect) {
            return None;
        }
        let url = self.server.url.clone();
        let options = etcd_client::ConnectOptions::new()
            .with_timeout(Duration::from_secs(15))
            .with_connect_timeout(Duration::from_secs(5))
            .with_user(user, password);
        let result = self
            .runtime
            .block_on(etcd_client::Client::connect([url], Some(options)));
        match result {
            Ok(client) => {
                self.record_grpc(what, Ok("authenticated".to_string()), expect);
                Some(client)
            }
            Err(e) => {
                self.record_grpc(what, Err(describe(e)), expect);
                None
            }
        }
    }

    /// `get key` with `client`'s token.
    pub(crate) fn grpc_get(
        &mut self,
        client: &mut Option<etcd_client::Client>,
        what: &str,
        key: &str,
        expect: Expect,
    ) {
        if self.out_of_time(&format!("$ grpc {what}: get {key}"), expect) {
            return;
        }
        let result = match client {
            None => Err("(no client)".to_string()),
            Some(client) => self
                .runtime
                .block_on(client.get(key, None))
                .map(|r| {
                    let kvs: Vec<String> = r
                        .kvs()
                        .iter()
                        .map(|kv| {
                            format!(
                                "{}={}",
                                String::from_utf8_lossy(kv.key()),
                                String::from_utf8_lossy(kv.value())
                            )
                        })
                        .collect();
                    format!(
                        "revision {} [{}]",
                        r.header().map_or(0, |h| h.revision()),
                        kvs.join(", ")
                    )
                })
                .map_err(describe),
        };
        self.record_grpc(&format!("{what}: get {key}"), result, expect);
    }

    /// `put key value` with `client`'s token.
    pub(crate) fn grpc_put(
        &mut self,
        client: &mut Option<etcd_client::Client>,
        what: &str,
        key: &str,
        value: &str,
        expect: Expect,
    ) {
        if self.out_of_time(&format!("$ grpc {what}: put {key} {value}"), expect) {
            return;
        }
        let result = match client {
            None => Err("(no client)".to_string()),
            Some(client) => self
                .runtime
                .block_on(client.put(key, value, None))
                .map(|r| format!("revision {}", r.header().map_or(0, |h| h.revision())))
                .map_err(describe),
        };
        self.record_grpc(&format!("{what}: put {key} {value}"), result, expect);
    }

    pub(crate) fn transcript(&self) -> String {
        self.entries
            .iter()
            .map(|e| e.text.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Entries whose outcome contradicts their expectation.
    pub(crate) fn violations(&self) -> Vec<String> {
        self.entries
            .iter()
            .filter(|e| match e.expect {
                Expect::Ok => !e.succeeded,
                Expect::Refused | Expect::Fails => e.succeeded,
            })
            .map(|e| format!("expected {:?}:\n{}", e.expect, e.text))
            .collect()
    }
}

/// An etcd-client error as text: the gRPC code and message, or the error itself.
pub(crate) fn describe(error: etcd_client::Error) -> String {
    match error {
        etcd_client::Error::GRpcStatus(status) => {
            format!("{:?}: {}", status.code(), status.message())
        }
        other => format!("{other}"),
    }
}

/// Replaces the run of characters matching `keep` right after each `marker` by `with`.
pub(crate) fn mask_run(
    text: &str,
    marker: &str,
    keep: impl Fn(char) -> bool,
    with: &str,
) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(marker) {
        let after = at + marker.len();
        out.push_str(&rest[..after]);
        let len = rest[after..]
            .find(|c: char| !keep(c))
            .unwrap_or(rest.len() - after);
        if len > 0 {
            out.push_str(with);
        }
        rest = &rest[after + len..];
    }
    out.push_str(rest);
    out
}

/// Replaces the run of characters matching `keep` right after each `marker` by `with`
/// where the run is exactly `value`.
pub(crate) fn replace_run_if(
    text: &str,
    marker: &str,
    keep: impl Fn(char) -> bool,
    value: &str,
    with: &str,
) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(marker) {
        let after = at + marker.len();
        out.push_str(&rest[..after]);
        let len = rest[after..]
            .find(|c: char| !keep(c))
            .unwrap_or(rest.len() - after);
        if &rest[after..after + len] == value {
            out.push_str(with);
        } else {
            out.push_str(&rest[after..after + len]);
        }
        rest = &rest[after + len..];
    }
    out.push_str(rest);
    out
}

/// `text` with `f` applied to each line (line ends kept).
pub(crate) fn map_lines(text: &str, f: impl Fn(&str) -> String) -> String {
    text.split_inclusive('\n')
        .map(|piece| match piece.strip_suffix('\n') {
            Some(line) => f(line) + "\n",
            None => f(piece),
        })
        .collect()
}

/// Arguments as a shell would need them quoted (for the transcript only).
pub(crate) fn shell_words(args: &[&str]) -> String {
    args.iter()
        .map(|a| {
            if !a.is_empty()
                && a.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_=/.:,<>".contains(c))
            {
                a.to_string()
            } else {
                format!("'{a}'")
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// In `endpoint status` lines (`endpoint, id, version, db size, is leader, is learner,
/// raft term, raft index, raft applied index, errors`) masks version, size, term and
/// indexes, which legitimately differ between implementations.
pub(crate) fn mask_endpoint_status(text: &str) -> String {
    text.lines()
        .map(|line| {
            let mut fields: Vec<String> = line.split(", ").map(str::to_string).collect();
            if fields.len() >= 9 {
                for (i, name) in [
                    (2, "<VERSION>"),
                    (3, "<DB SIZE>"),
                    (6, "<TERM>"),
                    (7, "<INDEX>"),
                    (8, "<APPLIED>"),
                ] {
                    fields[i] = name.to_string();
                }
            }
            fields.join(", ") + "\n"
        })
        .collect()
}

/// Lines of context shown before the first divergence.
pub(crate) const DIFF_CONTEXT: usize = 6;
/// Lines of each transcript, from the first divergence on, that are aligned.
pub(crate) const DIFF_WINDOW: usize = 300;
/// Rows of the side-by-side diff printed at most.
pub(crate) const DIFF_ROWS_MAX: usize = 60;

/// One row of the aligned diff: a line of the left, of the right, or of both.
pub(crate) enum Row<'t> {
    Same(&'t str),
    Left(&'t str),
    Right(&'t str),
}

/// Aligns `l` and `r` by a longest common subsequence of lines.
pub(crate) fn align<'t>(l: &[&'t str], r: &[&'t str]) -> Vec<Row<'t>> {
    let (n, m) = (l.len(), r.len());
    let mut lcs = vec![vec![0u32; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[i][j] = if l[i] == r[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j, mut rows) = (0, 0, Vec::new());
    while i < n || j < m {
        if i < n && j < m && l[i] == r[j] {
            rows.push(Row::Same(l[i]));
            i += 1;
            j += 1;
        } else if j == m || (i < n && lcs[i + 1][j] >= lcs[i][j + 1]) {
            rows.push(Row::Left(l[i]));
            i += 1;
        } else {
            rows.push(Row::Right(r[j]));
            j += 1;
        }
    }
    rows
}

/// The first divergence of two transcripts: a side-by-side diff (aligned like `diff`;
/// `|` a changed line, `<` only on the left, `>` only on the right) from a few lines
/// before it, and the command for the full `diff -u`.
pub(crate) fn divergence(
    mode: Mode,
    left_name: &str,
    left: &str,
    right_name: &str,
    right: &str,
) -> String {
    let l: Vec<&str> = left.lines().collect();
    let r: Vec<&str> = right.lines().collect();
    let first = (0..l.len().max(r.len()))
        .find(|&i| l.get(i) != r.get(i))
        .unwrap_or(0);
    let from = first.saturating_sub(DIFF_CONTEXT);
    let rows = align(
        &l[from..(first + DIFF_WINDOW).min(l.len())],
        &r[from..(first + DIFF_WINDOW).min(r.len())],
    );
    // Pair each run of left-only lines with the right-only run that follows it.
    let mut table: Vec<(String, char, String)> = Vec::new();
    let mut k = 0;
    while k < rows.len() && table.len() < DIFF_ROWS_MAX {
        match rows[k] {
            Row::Same(line) => {
                table.push((line.to_string(), ' ', line.to_string()));
                k += 1;
            }
            _ => {
                let mut lefts = Vec::new();
                while let Some(Row::Left(line)) = rows.get(k) {
                    lefts.push(*line);
                    k += 1;
                }
                let mut rights = Vec::new();
                while let Some(Row::Right(line)) = rows.get(k) {
                    rights.push(*line);
                    k += 1;
                }
                for n in 0..lefts.len().max(rights.len()) {
                    let (a, b) = (lefts.get(n), rights.get(n));
                    let mark = match (a, b) {
                        (Some(_), Some(_)) => '|',
                        (Some(_), None) => '<',
                        _ => '>',
                    };
                    table.push((
                        a.map_or(String::new(), |s| s.to_string()),
                        mark,
                        b.map_or(String::new(), |s| s.to_string()),
                    ));
                }
            }
        }
    }
    let width = 100;
    let clip = |s: &str, w: usize| -> String {
        let s: String = s.chars().take(w).collect();
        format!("{s:w$}")
    };
    let mut text = format!(
        "{} session: the transcripts differ from line {} on ({left_name} on the left, \
         {right_name} on the right):\n",
        mode.name(),
        first + 1
    );
    for (a, mark, b) in table {
        text.push_str(&format!(
            "{} {mark} {}\n",
            clip(&a, width),
            clip(&b, 2 * width).trim_end()
        ));
    }
    text.push_str(&format!(
        "full transcripts: diff -u {} {}\n",
        transcript_path(mode, left_name).display(),
        transcript_path(mode, right_name).display()
    ));
    text
}

/// Where the transcript of `name`'s `mode` session is written.
pub(crate) fn transcript_path(mode: Mode, name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("cairn-auth-{}-{name}.txt", mode.name()))
}

pub(crate) fn write_transcript(mode: Mode, name: &str, text: &str) {
    let _ = std::fs::write(transcript_path(mode, name), text);
}

pub(crate) fn sessions() -> Vec<Mode> {
    let list = std::env::var("CAIRN_AUTH_TEST_SESSIONS").unwrap_or_default();
    if list.is_empty() {
        return vec![Mode::Simple, Mode::Jwt, Mode::Tls];
    }
    list.split(',')
        .map(|name| match name.trim() {
            "simple" => Mode::Simple,
            "jwt" => Mode::Jwt,
            "tls" => Mode::Tls,
            other => panic!("CAIRN_AUTH_TEST_SESSIONS: unknown session {other:?}"),
        })
        .collect()
}
