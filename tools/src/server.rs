//! Starting and stopping a server under test: etcd or cairn, one member, loopback only.
//!
//! Both binaries take etcd's flags (etcd embed/config.go): `--name`, `--data-dir`,
//! `--listen-client-urls`, `--advertise-client-urls`, `--listen-peer-urls`,
//! `--initial-advertise-peer-urls`, `--initial-cluster`. The data dir and the server's
//! log live in a temporary directory removed when the [`ServerProcess`] is dropped.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::error::{BenchError, Result};

/// Interval between `/health` polls while a server starts, ms.
pub const HEALTH_POLL_MS: u64 = 100;
/// Largest `/health` response read, bytes.
const HEALTH_RESPONSE_BYTES_MAX: usize = 16 * 1024;
/// Lines of the server log quoted in an error.
const LOG_TAIL_LINES: usize = 15;
/// Interval between checks for the server's exit after SIGTERM, ms.
pub const EXIT_POLL_MS: u64 = 10;

/// Two distinct free loopback TCP ports (client, peer), found by binding port 0.
///
/// The ports are released before the server binds them; another process could take
/// one in between, which start-up then reports as a server error.
pub fn free_ports() -> Result<(u16, u16)> {
    let bind = || {
        std::net::TcpListener::bind("127.0.0.1:0").map_err(|source| BenchError::Io {
            op: "bind",
            path: PathBuf::from("127.0.0.1:0"),
            source,
        })
    };
    // Both listeners are held at once so the two ports differ.
    let client = bind()?;
    let peer = bind()?;
    let port = |l: &std::net::TcpListener| {
        l.local_addr()
            .map(|a| a.port())
            .map_err(|source| BenchError::Io {
                op: "local_addr",
                path: PathBuf::from("127.0.0.1:0"),
                source,
            })
    };
    Ok((port(&client)?, port(&peer)?))
}

/// `count` distinct free loopback TCP ports, found by binding port 0 `count` times
/// while holding every listener, so the ports differ from each other.
///
/// As with [`free_ports`], the ports are released before the servers bind them.
/// Errors: [`BenchError::Io`] when binding fails (e.g. out of ports).
pub fn free_port_list(count: usize) -> Result<Vec<u16>> {
    let mut listeners = Vec::with_capacity(count);
    for _ in 0..count {
        let listener =
            std::net::TcpListener::bind("127.0.0.1:0").map_err(|source| BenchError::Io {
                op: "bind",
                path: PathBuf::from("127.0.0.1:0"),
                source,
            })?;
        listeners.push(listener);
    }
    listeners
        .iter()
        .map(|l| {
            l.local_addr()
                .map(|a| a.port())
                .map_err(|source| BenchError::Io {
                    op: "local_addr",
                    path: PathBuf::from("127.0.0.1:0"),
                    source,
                })
        })
        .collect()
}

/// The etcd-style command line of a one-member server listening on loopback.
pub fn server_args(name: &str, data_dir: &Path, client_port: u16, peer_port: u16) -> Vec<String> {
    let client_url = format!("http://127.0.0.1:{client_port}");
    let peer_url = format!("http://127.0.0.1:{peer_port}");
    vec![
        "--name".into(),
        name.into(),
        "--data-dir".into(),
        data_dir.display().to_string(),
        "--listen-client-urls".into(),
        client_url.clone(),
        "--advertise-client-urls".into(),
        client_url,
        "--listen-peer-urls".into(),
        peer_url.clone(),
        "--initial-advertise-peer-urls".into(),
        peer_url.clone(),
        "--initial-cluster".into(),
        format!("{name}={peer_url}"),
    ]
}

/// Whether a raw HTTP/1.1 response to `GET /health` says healthy: status 200 and a
/// JSON body with `"health":"true"` (etcd etcdserver/api/etcdhttp/metrics.go).
pub fn is_healthy_response(response: &str) -> bool {
    let Some((head, body)) = response.split_once("\r\n\r\n") else {
        return false;
    };
    let status_ok = head
        .lines()
        .next()
        .is_some_and(|line| line.split_whitespace().nth(1) == Some("200"));
    let compact: String = body.chars().filter(|c| !c.is_whitespace()).collect();
    status_ok && compact.contains("\"health\":\"true\"")
}

/// One `GET /health` on `127.0.0.1:port`; `false` for any answer but healthy, or no
/// answer within `timeout`.
pub(crate) async fn probe_health(port: u16, timeout: Duration) -> bool {
    let attempt = async {
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
        let request =
            format!("GET /health HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await?;
        let mut response = Vec::new();
        let mut chunk = [0u8; 4096];
        // Bounded: stops at EOF or HEALTH_RESPONSE_BYTES_MAX.
        while response.len() < HEALTH_RESPONSE_BYTES_MAX {
            let n = stream.read(&mut chunk).await?;
            if n == 0 {
                break;
            }
            response.extend_from_slice(&chunk[..n]);
        }
        Ok::<_, std::io::Error>(String::from_utf8_lossy(&response).into_owned())
    };
    match tokio::time::timeout(timeout, attempt).await {
        Ok(Ok(response)) => is_healthy_response(&response),
        _ => false,
    }
}

/// A fresh temporary directory named `<prefix>…` for a server's data and log.
///
/// Errors: [`BenchError::Io`] naming the temp directory.
pub(crate) fn temp_dir(prefix: &str) -> Result<tempfile::TempDir> {
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir()
        .map_err(|source| BenchError::Io {
            op: "create temp dir",
            path: std::env::temp_dir(),
            source,
        })
}

/// A running server under test. Dropping it kills the process (SIGKILL), reaps it and
/// removes its temporary directory.
pub struct ServerProcess {
    name: String,
    bin: PathBuf,
    args: Vec<String>,
    child: Child,
    client_port: u16,
    peer_port: u16,
    data_dir: PathBuf,
    log_path: PathBuf,
    // Declared last: removed after the child is dead.
    _dir: tempfile::TempDir,
}

impl ServerProcess {
    /// Starts `bin` as member `name` in a fresh temporary data dir on free loopback
    /// ports, then polls `/health` every [`HEALTH_POLL_MS`] ms until healthy.
    ///
    /// Errors: [`BenchError::Io`] if the temp dir or process cannot be created;
    /// [`BenchError::Server`] (with the tail of its log) if the process exits or is not
    /// healthy within `startup_timeout`.
    pub async fn start(name: &str, bin: &Path, startup_timeout: Duration) -> Result<ServerProcess> {
        ServerProcess::start_with_args(name, bin, &[], startup_timeout).await
    }

    /// As [`ServerProcess::start`], with `extra_args` after the etcd-style flags of
    /// [`server_args`] (e.g. `--quota-backend-bytes`, `--snapshot-count`). A restart
    /// ([`ServerProcess::respawn`]) passes the same flags.
    ///
    /// Errors: as [`ServerProcess::start`].
    pub async fn start_with_args(
        name: &str,
        bin: &Path,
        extra_args: &[String],
        startup_timeout: Duration,
    ) -> Result<ServerProcess> {
        let dir = temp_dir(&format!("cairn-bench-{name}-"))?;
        let (client_port, peer_port) = free_ports()?;
        let log_path = dir.path().join("server.log");
        let log = File::create(&log_path).map_err(|source| BenchError::Io {
            op: "create",
            path: log_path.clone(),
            source,
        })?;
        let log_err = log.try_clone().map_err(|source| BenchError::Io {
            op: "dup",
            path: log_path.clone(),
            source,
        })?;
        let data_dir = dir.path().join("data");
        let mut args = server_args("bench", &data_dir, client_port, peer_port);
        args.extend(extra_args.iter().cloned());
        let child = spawn(bin, &args, log, log_err)?;
        let mut server = ServerProcess {
            name: name.to_string(),
            bin: bin.to_path_buf(),
            args,
            child,
            client_port,
            peer_port,
            data_dir,
            log_path,
            _dir: dir,
        };
        server.wait_healthy(startup_timeout).await?;
        Ok(server)
    }

    async fn wait_healthy(&mut self, startup_timeout: Duration) -> Result<()> {
        let started = Instant::now();
        let poll = Duration::from_millis(HEALTH_POLL_MS);
        let polls_max = startup_timeout.as_millis() / poll.as_millis() + 1;
        for _ in 0..polls_max {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(self.error(format!("exited during start-up with {status}")));
            }
            if probe_health(self.client_port, poll * 10).await {
                return Ok(());
            }
            if started.elapsed() >= startup_timeout {
                break;
            }
            tokio::time::sleep(poll).await;
        }
        Err(self.error(format!("not healthy after {startup_timeout:?}")))
    }

    fn error(&self, reason: String) -> BenchError {
        let log = std::fs::read_to_string(&self.log_path).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        let tail = lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n");
        BenchError::Server {
            name: self.name.clone(),
            reason: format!("{reason}; log tail:\n{tail}"),
        }
    }

    /// The name given at start ("cairn", "etcd").
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The process id, for `/proc/<pid>` sampling.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The client URL, `http://127.0.0.1:<port>`.
    pub fn client_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.client_port)
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// The server's data dir (`--data-dir`), inside the temporary directory.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// Stops the server gracefully: SIGTERM, then waits for it to exit, polling every
    /// [`EXIT_POLL_MS`] ms. Returns the time from the signal to the exit. The data dir
    /// stays for [`ServerProcess::respawn`].
    ///
    /// Errors: [`BenchError::Server`] if it had already exited, or has not exited
    /// within `timeout` (it is then killed with SIGKILL and reaped).
    pub async fn terminate(&mut self, timeout: Duration) -> Result<Duration> {
        if !self.is_running() {
            return Err(self.error("terminate: not running".into()));
        }
        let pid = libc::pid_t::try_from(self.child.id()).expect("Linux pids fit in pid_t");
        let signalled = Instant::now();
        // SAFETY: kill(2) touches no memory; the pid is our own unreaped child, so it
        // cannot have been reused by another process.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let poll = Duration::from_millis(EXIT_POLL_MS);
        let polls_max = timeout.as_millis() / poll.as_millis() + 1;
        for _ in 0..polls_max {
            if let Ok(Some(_)) = self.child.try_wait() {
                return Ok(signalled.elapsed());
            }
            tokio::time::sleep(poll).await;
        }
        self.kill();
        Err(self.error(format!("still running {timeout:?} after SIGTERM; killed")))
    }

    /// Kills the server with SIGKILL and reaps it; the data dir stays for
    /// [`ServerProcess::respawn`]. A process that already exited is only reaped.
    pub fn kill(&mut self) {
        // An error means the process already exited; the wait reaps it either way.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Waits until the server's client and peer ports can be bound again (with
    /// `SO_REUSEADDR`, as a server's own check before listening), polling every
    /// [`EXIT_POLL_MS`] ms; returns how long that took. A process's sockets can outlive
    /// it briefly: a killed server that used io_uring has its files released by the
    /// kernel's asynchronous ring teardown, after the process is reaped.
    ///
    /// Errors: [`BenchError::Server`] if a port is still taken after `timeout`.
    pub async fn wait_ports_free(&self, timeout: Duration) -> Result<Duration> {
        let started = Instant::now();
        let poll = Duration::from_millis(EXIT_POLL_MS);
        let polls_max = timeout.as_millis() / poll.as_millis() + 1;
        let bindable = |port| std::net::TcpListener::bind(("127.0.0.1", port)).is_ok();
        for _ in 0..polls_max {
            if bindable(self.client_port) && bindable(self.peer_port) {
                return Ok(started.elapsed());
            }
            tokio::time::sleep(poll).await;
        }
        Err(self.error(format!(
            "ports {} and {} still taken {timeout:?} after the exit",
            self.client_port, self.peer_port
        )))
    }

    /// Starts the stopped server again on its data dir and ports with the same flags,
    /// appending to its log, and returns at once (it is not waited for: callers time
    /// their own first request).
    ///
    /// Errors: [`BenchError::Server`] if it is still running; [`BenchError::Io`] if
    /// the log cannot be opened or the process cannot be spawned.
    pub fn respawn(&mut self) -> Result<()> {
        if self.is_running() {
            return Err(self.error("respawn: still running".into()));
        }
        let open_log = || -> Result<File> {
            std::fs::OpenOptions::new()
                .append(true)
                .open(&self.log_path)
                .map_err(|source| BenchError::Io {
                    op: "open",
                    path: self.log_path.clone(),
                    source,
                })
        };
        self.child = spawn(&self.bin, &self.args, open_log()?, open_log()?)?;
        Ok(())
    }

    /// A [`BenchError::Server`] naming this server, with `reason` and its log tail.
    pub fn failure(&self, reason: impl Into<String>) -> BenchError {
        self.error(reason.into())
    }
}

/// Spawns `bin` with `args`, stdin closed, stdout and stderr to `log` and `log_err`.
fn spawn(bin: &Path, args: &[String], log: File, log_err: File) -> Result<Child> {
    Command::new(bin)
        .args(args)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log_err)
        .spawn()
        .map_err(|source| BenchError::Io {
            op: "spawn",
            path: bin.to_path_buf(),
            source,
        })
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        // Errors mean the process is already gone; nothing else to do.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn args_name_every_url() {
        let args = server_args("bench", Path::new("/tmp/d"), 5000, 5001);
        assert_eq!(
            args,
            vec![
                "--name",
                "bench",
                "--data-dir",
                "/tmp/d",
                "--listen-client-urls",
                "http://127.0.0.1:5000",
                "--advertise-client-urls",
                "http://127.0.0.1:5000",
                "--listen-peer-urls",
                "http://127.0.0.1:5001",
                "--initial-advertise-peer-urls",
                "http://127.0.0.1:5001",
                "--initial-cluster",
                "bench=http://127.0.0.1:5001",
            ]
        );
    }

    #[test]
    fn health_responses() {
        let ok = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n{\"health\":\"true\"}";
        assert!(is_healthy_response(ok));
        let spaced = "HTTP/1.1 200 OK\r\n\r\n{ \"health\": \"true\", \"reason\": \"\" }";
        assert!(is_healthy_response(spaced));
        let unhealthy = "HTTP/1.1 503 Service Unavailable\r\n\r\n{\"health\":\"false\"}";
        assert!(!is_healthy_response(unhealthy));
        let false_200 = "HTTP/1.1 200 OK\r\n\r\n{\"health\":\"false\"}";
        assert!(!is_healthy_response(false_200));
        assert!(!is_healthy_response("HTTP/1.1 200 OK\r\n"));
        assert!(!is_healthy_response(""));
    }

    #[test]
    fn free_port_list_is_distinct() {
        let mut ports = free_port_list(6).unwrap();
        assert_eq!(ports.len(), 6);
        ports.sort_unstable();
        ports.dedup();
        assert_eq!(ports.len(), 6);
        assert!(!ports.contains(&0));
    }

    #[test]
    fn free_ports_differ() {
        let (a, b) = free_ports().unwrap();
        assert_ne!(a, b);
        assert_ne!(a, 0);
    }

    #[tokio::test]
    async fn missing_binary_is_an_io_error() {
        let err = ServerProcess::start(
            "none",
            Path::new("/nonexistent/cairn"),
            Duration::from_secs(1),
        )
        .await
        .err()
        .expect("binary does not exist");
        assert!(matches!(err, BenchError::Io { op: "spawn", .. }));
    }

    #[tokio::test]
    async fn early_exit_is_reported_with_log() {
        // `false` exits at once with status 1; its log is empty.
        let err = ServerProcess::start("f", Path::new("false"), Duration::from_secs(5))
            .await
            .err()
            .expect("false exits");
        let text = err.to_string();
        assert!(
            text.starts_with("server f: exited during start-up with exit status: 1"),
            "{text}"
        );
    }
}
