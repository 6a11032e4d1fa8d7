//! Integration-test harness: spawns the server under test (Cairn's `cairn` binary or
//! upstream `etcd`) on free loopback ports with a temporary data dir, waits until
//! `GET /health` reports healthy, and drives it with the real `etcdctl` (v3 API) or the
//! `etcd-client` crate.
//!
//! The target is chosen by the environment variable `CAIRN_TEST_TARGET`:
//! unset or `cairn` → the `cairn` binary built by cargo (`CARGO_BIN_EXE_cairn`);
//! `etcd` → `etcd` found on `PATH` (Debian's `etcd-server`, 3.4). Tests are written so
//! that they pass against upstream etcd; that is what proves the expectations.
//!
//! Every test binary compiles this module and uses a subset of it.
#![allow(dead_code)]

pub mod cluster;
pub mod proxy;

use std::collections::HashSet;
use std::fs::File;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a server may take to report healthy after spawn.
pub const STARTUP_TIMEOUT_MS: u64 = 30_000;
/// How long a server may take to exit after SIGTERM.
pub const SHUTDOWN_TIMEOUT_MS: u64 = 30_000;
/// `--command-timeout` handed to every `etcdctl` invocation.
pub const ETCDCTL_COMMAND_TIMEOUT: &str = "15s";
/// How many times start-up is retried with fresh ports when a port was taken meanwhile.
const PORT_RETRIES_MAX: u32 = 3;

/// The server implementation under test.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// Cairn's own binary, `CARGO_BIN_EXE_cairn`.
    Cairn,
    /// Upstream etcd found on `PATH`.
    Etcd,
}

impl Target {
    /// Reads `CAIRN_TEST_TARGET` (unset/`cairn` or `etcd`); panics on any other value.
    pub fn from_env() -> Target {
        match std::env::var("CAIRN_TEST_TARGET").as_deref() {
            Err(_) | Ok("") | Ok("cairn") => Target::Cairn,
            Ok("etcd") => Target::Etcd,
            Ok(other) => panic!("CAIRN_TEST_TARGET must be `cairn` or `etcd`, got {other:?}"),
        }
    }

    /// The program to execute.
    pub fn program(self) -> PathBuf {
        match self {
            Target::Cairn => PathBuf::from(env!("CARGO_BIN_EXE_cairn")),
            Target::Etcd => PathBuf::from("etcd"),
        }
    }

    /// A bare command for the target program (no flags, null stdin).
    pub fn command(self) -> Command {
        let mut command = Command::new(self.program());
        command.stdin(Stdio::null());
        command
    }
}

/// Returns true (and prints why) when the current target is not Cairn, for tests that
/// exercise Cairn-only behaviour. Usage: `if common::skip_unless_cairn("why") { return; }`.
/// Sends SIGTERM and asserts a clean exit: code 0, or (etcd 3.4,
/// `pkg/osutil/interrupt_unix.go`) death by the re-raised SIGTERM.
pub fn stop_cleanly(server: &mut TestServer) {
    use std::os::unix::process::ExitStatusExt;
    let status = server.sigterm();
    assert!(
        status.code() == Some(0) || status.signal() == Some(libc::SIGTERM),
        "exit after SIGTERM: {status}; output:\n{}",
        server.log()
    );
}

pub fn skip_unless_cairn(why: &str) -> bool {
    if Target::from_env() == Target::Cairn {
        return false;
    }
    eprintln!("skipped: only meaningful against cairn: {why}");
    true
}

/// Ports handed out by this process, so parallel tests never get the same one.
static PORTS_TAKEN: Mutex<Option<HashSet<u16>>> = Mutex::new(None);

/// A loopback TCP port that was free a moment ago and that this process has not handed
/// out before.
pub fn free_port() -> u16 {
    loop {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let port = listener.local_addr().expect("local_addr").port();
        drop(listener);
        let mut taken = PORTS_TAKEN.lock().unwrap_or_else(|e| e.into_inner());
        if taken.get_or_insert_with(HashSet::new).insert(port) {
            return port;
        }
    }
}

/// An HTTP/1.1 response: status code, lower-cased headers, body (chunked decoding done).
#[derive(Debug, Clone)]
pub struct HttpResponse {
    /// Status code, e.g. 200.
    pub status: u16,
    /// Header (name lower-cased, value trimmed) pairs, in order.
    pub headers: Vec<(String, String)>,
    /// The body bytes.
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// The first header named `name` (lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as UTF-8 (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// `GET path` on 127.0.0.1:`port` with `Connection: close`; `None` on any I/O or parse error.
pub fn http_get(port: u16, path: &str) -> Option<HttpResponse> {
    http_request(port, "GET", path)
}

/// `method path` (no body) on 127.0.0.1:`port` with `Connection: close`; `None` on any I/O
/// or parse error.
pub fn http_request(port: u16, method: &str, path: &str) -> Option<HttpResponse> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    stream
        .set_write_timeout(Some(Duration::from_secs(5)))
        .ok()?;
    let request =
        format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).ok()?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).ok()?;
    parse_http_response(&raw)
}

fn parse_http_response(raw: &[u8]) -> Option<HttpResponse> {
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&raw[..split]).ok()?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next()?;
    let status: u16 = status_line.split(' ').nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| {
            let (name, value) = line.split_once(':')?;
            Some((name.trim().to_ascii_lowercase(), value.trim().to_string()))
        })
        .collect();
    let mut body = raw[split + 4..].to_vec();
    let chunked = headers
        .iter()
        .any(|(n, v)| n == "transfer-encoding" && v.eq_ignore_ascii_case("chunked"));
    if chunked {
        body = decode_chunked(&body)?;
    }
    Some(HttpResponse {
        status,
        headers,
        body,
    })
}

fn decode_chunked(mut data: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = data.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&data[..line_end]).ok()?;
        let size_text = size_text.split(';').next()?.trim();
        let size = usize::from_str_radix(size_text, 16).ok()?;
        data = &data[line_end + 2..];
        if size == 0 {
            return Some(out);
        }
        if data.len() < size + 2 {
            return None;
        }
        out.extend_from_slice(&data[..size]);
        data = &data[size + 2..];
    }
}

/// True when `GET /health` answers 200 with JSON whose `health` is `"true"`.
pub fn is_healthy(port: u16) -> bool {
    let Some(response) = http_get(port, "/health") else {
        return false;
    };
    if response.status != 200 {
        return false;
    }
    match serde_json::from_slice::<serde_json::Value>(&response.body) {
        Ok(json) => json.get("health").and_then(|h| h.as_str()) == Some("true"),
        Err(_) => false,
    }
}

/// How a flag value is given to the server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pass {
    /// As a command-line flag.
    Flag,
    /// As the `ETCD_*` environment variable.
    Env,
    /// Not at all (the server's default applies).
    Omit,
}

/// Options for starting a [`TestServer`].
#[derive(Clone, Debug)]
pub struct Builder {
    name: String,
    name_pass: Pass,
    data_dir_pass: Pass,
    extra_args: Vec<String>,
    envs: Vec<(String, String)>,
    nofile_limit: Option<u64>,
}

impl Default for Builder {
    fn default() -> Self {
        Builder {
            name: "node1".to_string(),
            name_pass: Pass::Flag,
            data_dir_pass: Pass::Flag,
            extra_args: Vec::new(),
            envs: Vec::new(),
            nofile_limit: None,
        }
    }
}

impl Builder {
    /// Member name (default `node1`); also used in `--initial-cluster`.
    pub fn name(mut self, name: &str) -> Self {
        self.name = name.to_string();
        self
    }

    /// How the name is passed (`--name`, `ETCD_NAME`, or not at all).
    pub fn name_pass(mut self, pass: Pass) -> Self {
        self.name_pass = pass;
        self
    }

    /// How the data dir is passed (`--data-dir`, `ETCD_DATA_DIR`, or not at all, in which
    /// case the server's default `<name>.etcd` relative to the working directory applies).
    pub fn data_dir_pass(mut self, pass: Pass) -> Self {
        self.data_dir_pass = pass;
        self
    }

    /// Extra command-line arguments, appended after the standard ones.
    pub fn args(mut self, args: &[&str]) -> Self {
        self.extra_args.extend(args.iter().map(|a| a.to_string()));
        self
    }

    /// Starts the server with this soft and hard `RLIMIT_NOFILE` (default: inherited).
    pub fn nofile_limit(mut self, limit: u64) -> Self {
        self.nofile_limit = Some(limit);
        self
    }

    /// An extra environment variable.
    pub fn env(mut self, name: &str, value: &str) -> Self {
        self.envs.push((name.to_string(), value.to_string()));
        self
    }

    /// Spawns the server and waits until it is healthy; panics with its output otherwise.
    pub fn start(self) -> TestServer {
        let root = tempfile::Builder::new()
            .prefix("cairn-it-")
            .tempdir()
            .expect("create temp dir");
        let data_dir = match self.data_dir_pass {
            Pass::Omit => root.path().join(format!("{}.etcd", self.name)),
            Pass::Flag | Pass::Env => root.path().join("data"),
        };
        let mut server = TestServer {
            target: Target::from_env(),
            options: self,
            root,
            data_dir,
            client_port: 0,
            peer_port: 0,
            child: None,
            spawns: 0,
        };
        let mut attempt = 0;
        loop {
            attempt += 1;
            server.client_port = free_port();
            server.peer_port = free_port();
            match server.spawn_and_wait() {
                Ok(()) => return server,
                Err(log)
                    if attempt < PORT_RETRIES_MAX && log.contains("address already in use") =>
                {
                    continue
                }
                Err(log) => panic!(
                    "{:?} server did not become healthy (limit {} ms; args {:?}); its output:\n{}",
                    server.target,
                    STARTUP_TIMEOUT_MS,
                    server.args(),
                    log
                ),
            }
        }
    }
}

/// A running server under test. The child process is killed (SIGKILL) on drop; the
/// temporary directory holding data dir and logs is removed then too.
pub struct TestServer {
    target: Target,
    options: Builder,
    root: tempfile::TempDir,
    data_dir: PathBuf,
    client_port: u16,
    peer_port: u16,
    child: Option<Child>,
    spawns: u32,
}

impl TestServer {
    /// Starts the target with default options (name `node1`).
    pub fn start() -> TestServer {
        Builder::default().start()
    }

    /// A builder for non-default options.
    pub fn builder() -> Builder {
        Builder::default()
    }

    /// The target under test.
    pub fn target(&self) -> Target {
        self.target
    }

    /// The client URL, `http://127.0.0.1:<port>`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.client_port)
    }

    /// The client port.
    pub fn client_port(&self) -> u16 {
        self.client_port
    }

    /// The peer URL, `http://127.0.0.1:<port>`.
    pub fn peer_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.peer_port)
    }

    /// The data directory (it may not exist if the server never created it).
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The working directory the server runs in (a fresh temp dir).
    pub fn work_dir(&self) -> &Path {
        self.root.path()
    }

    /// The process id of the running child.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("server is not running").id()
    }

    /// The command-line arguments the server is started with.
    pub fn args(&self) -> Vec<String> {
        let o = &self.options;
        let client = self.endpoint();
        let peer = self.peer_url();
        let mut args: Vec<String> = Vec::new();
        if o.name_pass == Pass::Flag {
            args.extend(["--name".to_string(), o.name.clone()]);
        }
        if o.data_dir_pass == Pass::Flag {
            args.extend([
                "--data-dir".to_string(),
                self.data_dir.display().to_string(),
            ]);
        }
        for (flag, value) in [
            ("--listen-client-urls", &client),
            ("--advertise-client-urls", &client),
            ("--listen-peer-urls", &peer),
            ("--initial-advertise-peer-urls", &peer),
        ] {
            args.extend([flag.to_string(), value.clone()]);
        }
        args.extend([
            "--initial-cluster".to_string(),
            format!("{}={}", o.name, peer),
        ]);
        args.extend(o.extra_args.iter().cloned());
        args
    }

    fn log_path(&self, spawn: u32) -> PathBuf {
        self.root.path().join(format!("server-{spawn}.log"))
    }

    /// Everything the server wrote to stdout/stderr since its latest (re)start.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path(self.spawns)).unwrap_or_default()
    }

    /// The last `bytes_max` bytes (at most) of [`TestServer::log`], for failure messages.
    pub fn log_tail(&self, bytes_max: usize) -> String {
        let log = self.log();
        let mut start = log.len().saturating_sub(bytes_max);
        while !log.is_char_boundary(start) {
            start += 1;
        }
        log[start..].to_string()
    }

    fn spawn_and_wait(&mut self) -> Result<(), String> {
        assert!(self.child.is_none(), "spawn while a child is running");
        self.spawns += 1;
        let log = File::create(self.log_path(self.spawns)).expect("create server log");
        let mut command = self.target.command();
        command
            .args(self.args())
            .current_dir(self.root.path())
            .stdout(log.try_clone().expect("clone log handle"))
            .stderr(log);
        let o = &self.options;
        if o.name_pass == Pass::Env {
            command.env("ETCD_NAME", &o.name);
        }
        if o.data_dir_pass == Pass::Env {
            command.env("ETCD_DATA_DIR", &self.data_dir);
        }
        for (name, value) in &o.envs {
            command.env(name, value);
        }
        if let Some(limit) = o.nofile_limit {
            use std::os::unix::process::CommandExt;
            // SAFETY: between fork and exec the hook only calls setrlimit(2), which is
            // async-signal-safe, and allocates nothing.
            unsafe {
                command.pre_exec(move || rlimit::setrlimit(rlimit::Resource::NOFILE, limit, limit));
            }
        }
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {:?}: {e}", self.target.program()));
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_millis(STARTUP_TIMEOUT_MS);
        loop {
            if is_healthy(self.client_port) {
                return Ok(());
            }
            let exited = self
                .child
                .as_mut()
                .expect("child")
                .try_wait()
                .expect("try_wait");
            if let Some(status) = exited {
                self.child = None;
                return Err(format!("(exited with {status})\n{}", self.log()));
            }
            if Instant::now() > deadline {
                self.kill9();
                return Err(format!("(killed after timeout)\n{}", self.log()));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGKILLs the server and reaps it. No-op if it is not running.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same ports and data dir and waits until healthy
    /// (SIGKILLs it first if it is still running). Panics with its output on failure.
    pub fn restart(&mut self) {
        if let Err(log) = self.try_restart() {
            panic!(
                "{:?} server did not become healthy again after restart; its output:\n{log}",
                self.target
            );
        }
    }

    /// [`TestServer::restart`] that returns the server's output instead of panicking when
    /// it does not become healthy (it is not running then).
    pub fn try_restart(&mut self) -> Result<(), String> {
        self.kill9();
        self.spawn_and_wait()
    }

    /// Sends SIGTERM and waits (bounded) for the process to exit; returns its status.
    pub fn sigterm(&mut self) -> ExitStatus {
        let child = self.child.as_ref().expect("server is not running");
        let pid = i32::try_from(child.id()).expect("pid fits i32");
        // SAFETY: plain kill(2) on our own child, which has not been reaped yet.
        let rc = unsafe { libc::kill(pid, libc::SIGTERM) };
        assert_eq!(rc, 0, "kill(SIGTERM) failed");
        self.wait_bounded("of SIGTERM")
    }

    /// Waits (bounded by [`SHUTDOWN_TIMEOUT_MS`]) for the server to exit on its own and
    /// returns its status; panics with its output if it is still running then.
    pub fn wait_exit(&mut self) -> ExitStatus {
        self.wait_bounded("on its own")
    }

    /// Reaps the child within [`SHUTDOWN_TIMEOUT_MS`]; past that kills it and panics with
    /// its output (`why`: what the exit was waiting for, for the message).
    fn wait_bounded(&mut self, why: &str) -> ExitStatus {
        let mut child = self.child.take().expect("server is not running");
        let deadline = Instant::now() + Duration::from_millis(SHUTDOWN_TIMEOUT_MS);
        loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "server did not exit within {SHUTDOWN_TIMEOUT_MS} ms {why}; output:\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// True while the child has not exited.
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            None => false,
            Some(child) => child.try_wait().expect("try_wait").is_none(),
        }
    }

    /// Runs `etcdctl --endpoints=<endpoint> --command-timeout=15s <args>` with
    /// `ETCDCTL_API=3` and empty stdin.
    pub fn etcdctl(&self, args: &[&str]) -> Output {
        self.etcdctl_stdin(args, "")
    }

    /// Like [`TestServer::etcdctl`] with `stdin` piped to the process.
    pub fn etcdctl_stdin(&self, args: &[&str], stdin: &str) -> Output {
        etcdctl_at(&self.endpoint(), args, stdin)
    }

    /// A connected `etcd_client::Client` (per-request timeout 15 s).
    pub async fn client(&self) -> etcd_client::Client {
        let options = etcd_client::ConnectOptions::new()
            .with_timeout(Duration::from_secs(15))
            .with_connect_timeout(Duration::from_secs(5));
        etcd_client::Client::connect([self.endpoint()], Some(options))
            .await
            .expect("connect etcd_client")
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Runs etcdctl (v3 API) against `endpoint` with `stdin` piped in.
pub fn etcdctl_at(endpoint: &str, args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .env_remove("ETCDCTL_ENDPOINTS")
        .arg(format!("--endpoints={endpoint}"))
        .arg(format!("--command-timeout={ETCDCTL_COMMAND_TIMEOUT}"))
        .arg("--dial-timeout=5s")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn etcdctl (Debian package etcd-client)");
    let mut pipe = child.stdin.take().expect("stdin");
    pipe.write_all(stdin.as_bytes())
        .expect("write etcdctl stdin");
    drop(pipe);
    child.wait_with_output().expect("wait etcdctl")
}

/// Exit code, stdout and stderr of an `Output`, as text (a signal death becomes -signal).
pub fn text(output: &Output) -> (i32, String, String) {
    let code = output
        .status
        .code()
        .unwrap_or_else(|| -output.status.signal().unwrap_or(0));
    (
        code,
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Replaces what differs from run to run in etcdctl's stderr: the `"ts"` of clientv3's
/// JSON warning lines and the random client id in their `"target"`.
pub fn normalize_etcdctl_stderr(stderr: &str) -> String {
    stderr
        .lines()
        .map(|line| {
            let line = replace_json_string(line, "\"ts\":\"", "<TS>");
            replace_json_string(&line, "\"target\":\"endpoint://client-", "<ID>/")
        })
        .map(|line| line + "\n")
        .collect()
}

/// Replaces the JSON string content after `prefix` up to the closing quote (for the
/// target, up to and including the first `/`) by `with`.
fn replace_json_string(line: &str, prefix: &str, with: &str) -> String {
    let Some(start) = line.find(prefix) else {
        return line.to_string();
    };
    let value_start = start + prefix.len();
    let rest = &line[value_start..];
    let stop = if with.ends_with('/') { '/' } else { '"' };
    let Some(len) = rest.find(stop) else {
        return line.to_string();
    };
    let skip = if stop == '/' { len + 1 } else { len };
    format!("{}{}{}", &line[..value_start], with, &rest[skip..])
}

/// The stderr etcdctl 3.4 prints when a unary call fails with gRPC `code` (Go name, e.g.
/// `OutOfRange`) and `message`, after [`normalize_etcdctl_stderr`]; `attempt` is 0 for
/// non-retried calls. Source: clientv3/retry_interceptor.go and etcdctl ExitWithError.
pub fn etcdctl_rpc_error(endpoint: &str, code: &str, message: &str) -> String {
    let host = endpoint.trim_start_matches("http://");
    format!(
        "{{\"level\":\"warn\",\"ts\":\"<TS>\",\"caller\":\"clientv3/retry_interceptor.go:62\",\
         \"msg\":\"retrying of unary invoker failed\",\"target\":\"endpoint://client-<ID>/{host}\",\
         \"attempt\":0,\"error\":\"rpc error: code = {code} desc = {message}\"}}\n\
         Error: {message}\n"
    )
}

/// Starts a multi-threaded tokio runtime for a test body.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// The gRPC status inside an `etcd_client::Error`, panicking on any other error kind.
pub fn grpc_status(error: etcd_client::Error) -> tonic_status::Status {
    match error {
        etcd_client::Error::GRpcStatus(status) => tonic_status::Status {
            code: status.code() as i32,
            message: status.message().to_string(),
        },
        other => panic!("expected a gRPC status error, got {other:?}"),
    }
}

/// A plain copy of a gRPC status: numeric code and message.
pub mod tonic_status {
    /// Numeric gRPC code (`tonic::Code as i32`) and message.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct Status {
        /// gRPC status code number (e.g. 11 = OUT_OF_RANGE).
        pub code: i32,
        /// The status message.
        pub message: String,
    }
}

/// gRPC status code numbers (grpc `doc/statuscodes.md`).
pub mod code {
    /// INVALID_ARGUMENT.
    pub const INVALID_ARGUMENT: i32 = 3;
    /// NOT_FOUND.
    pub const NOT_FOUND: i32 = 5;
    /// RESOURCE_EXHAUSTED.
    pub const RESOURCE_EXHAUSTED: i32 = 8;
    /// FAILED_PRECONDITION.
    pub const FAILED_PRECONDITION: i32 = 9;
    /// OUT_OF_RANGE.
    pub const OUT_OF_RANGE: i32 = 11;
}

/// Replaces the run of digits right after each occurrence of each marker by `<NAME>`,
/// where NAME is the marker with quotes, colons and spaces stripped (e.g. the marker
/// `"member_id":` turns `"member_id":123` into `"member_id":<member_id>`).
pub fn mask_numbers_after(text: &str, markers: &[&str]) -> String {
    let mut out = text.to_string();
    for marker in markers {
        let name: String = marker
            .chars()
            .filter(|c| !matches!(c, '"' | ':' | ' '))
            .collect();
        let mut result = String::with_capacity(out.len());
        let mut rest = out.as_str();
        while let Some(at) = rest.find(marker) {
            let after = at + marker.len();
            result.push_str(&rest[..after]);
            let digits = rest[after..]
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(rest.len() - after);
            if digits > 0 {
                result.push_str(&format!("<{name}>"));
            }
            rest = &rest[after + digits..];
        }
        result.push_str(rest);
        out = result;
    }
    out
}

/// Masks what differs between servers and runs in etcdctl's `-w json` / `-w fields`
/// response headers: cluster id, member id and raft term (also Status's leader).
pub fn mask_header(text: &str) -> String {
    mask_numbers_after(
        text,
        &[
            "\"cluster_id\":",
            "\"member_id\":",
            "\"raft_term\":",
            "\"ClusterID\" : ",
            "\"MemberID\" : ",
            "\"RaftTerm\" : ",
        ],
    )
}

/// Runs `command` (stdout and stderr captured) and waits at most `timeout_ms` for it to
/// exit; kills it and panics if it does not. For invocations that must exit by
/// themselves (`--version`, bad flags).
pub fn run_to_exit(mut command: Command, timeout_ms: u64) -> Output {
    let dir = tempfile::tempdir().expect("temp dir");
    let out_path = dir.path().join("stdout");
    let err_path = dir.path().join("stderr");
    let mut child = command
        .stdin(Stdio::null())
        .stdout(File::create(&out_path).expect("stdout file"))
        .stderr(File::create(&err_path).expect("stderr file"))
        .spawn()
        .expect("spawn");
    let deadline = Instant::now() + Duration::from_millis(timeout_ms);
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{command:?} did not exit within {timeout_ms} ms; stderr:\n{}",
                std::fs::read_to_string(&err_path).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Output {
        status,
        stdout: std::fs::read(&out_path).expect("read stdout"),
        stderr: std::fs::read(&err_path).expect("read stderr"),
    }
}
