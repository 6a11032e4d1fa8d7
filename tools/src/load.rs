//! The load generator: N concurrent clients over C gRPC connections, a bounded number
//! of requests, per-request latency into hdrhistogram.
//!
//! Shape follows etcd's `tools/benchmark` (`cmd/put.go`, `cmd/range.go`): clients are
//! spread round-robin over connections; every request has a deadline; failed requests
//! are counted, not retried. Requests are handed out from one shared counter, so the
//! run ends after exactly `total` requests (or at the duration limit).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use etcd_client::{Client, ConnectOptions, GetOptions, KvClient, Txn, TxnOp};

use crate::error::{invalid, BenchError, Result};
use crate::keys::{key_for, make_value, validate_key_shape, KeyPicker};
use crate::stats::{new_latency_histogram, record_latency_us, Summary};

/// Most concurrent clients one run accepts.
pub const CLIENTS_MAX: u32 = 10_000;
/// Most requests one run accepts.
pub const TOTAL_MAX: u64 = 100_000_000;
/// Largest value, bytes: etcd's default `--max-request-bytes` (1.5 MiB) less room for
/// the key and framing (etcd embed/config.go DefaultMaxRequestBytes).
pub const VAL_SIZE_MAX: u32 = 1_500_000;
/// Most operations in one benchmark Txn (etcd's default `--max-txn-ops`).
pub const TXN_OPS_MAX: u32 = 128;
/// Connect timeout per connection, ms.
pub const CONNECT_TIMEOUT_MS: u64 = 5_000;

/// What each request does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workload {
    /// `Put(key, value)`.
    Put,
    /// `Range(key)`: linearizable unless `serializable`.
    Range {
        /// Serve from the receiving member's local state (etcd `--consistency=s`).
        serializable: bool,
    },
    /// `Txn` with no compares and `ops` puts in its success branch (etcd `txn-put`).
    Txn {
        /// Puts per Txn, 1..=[`TXN_OPS_MAX`].
        ops: u32,
    },
}

impl Workload {
    /// The name printed in reports: "put", "range", "range-serializable", "txn".
    pub fn name(&self) -> &'static str {
        match self {
            Workload::Put => "put",
            Workload::Range {
                serializable: false,
            } => "range",
            Workload::Range { serializable: true } => "range-serializable",
            Workload::Txn { .. } => "txn",
        }
    }
}

/// One load run's parameters (the flags of `put`, `range` and `txn`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadConfig {
    /// Client URLs such as `http://127.0.0.1:2379`; every connection balances over all.
    pub endpoints: Vec<String>,
    /// Concurrent clients, each with one request in flight, 1..=[`CLIENTS_MAX`].
    pub clients: u32,
    /// gRPC connections (HTTP/2), 1..=clients; client i uses connection i % conns.
    pub conns: u32,
    /// Requests to send in all, 1..=[`TOTAL_MAX`].
    pub total: u64,
    /// Key size, bytes.
    pub key_size: u32,
    /// Value size, bytes, 0..=[`VAL_SIZE_MAX`] (puts and txns).
    pub val_size: u32,
    /// Distinct keys; requests pick among indexes 0 ..< key_space.
    pub key_space: u64,
    /// Pick keys sequentially instead of uniformly at random.
    pub seq: bool,
    /// What each request does.
    pub workload: Workload,
    /// Deadline of one request, ms; a request past it counts as an error.
    pub request_timeout_ms: u64,
    /// Limit on the whole run, s: requests not yet sent by then are skipped.
    pub duration_max_s: u64,
    /// TLS for `https://` endpoints (etcdctl's `--cacert`, `--cert`, `--key`).
    pub tls: ClientTls,
}

/// Client TLS files, as etcdctl's `--cacert`, `--cert`, `--key` (PEM), and etcdctl's
/// `--user` credentials. Empty: plaintext and no user, or for `https://` endpoints the
/// server is verified against no CA and fails.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientTls {
    /// `name:password` to authenticate as (etcdctl's `--user`); every connection gets its
    /// own token (the client's Authenticate), as etcd's benchmark tool does.
    pub user: Option<String>,
    /// CA certificates that the server's certificate must chain to.
    pub cacert: Option<std::path::PathBuf>,
    /// Client certificate (mutual TLS); needs `key`.
    pub cert: Option<std::path::PathBuf>,
    /// Key of `cert`.
    pub key: Option<std::path::PathBuf>,
}

impl ClientTls {
    /// The `etcd-client` TLS options, `None` when no file is given. Errors:
    /// [`BenchError::Io`] naming an unreadable file, [`BenchError::InvalidArg`] for a
    /// certificate without key or the reverse.
    pub fn options(&self) -> Result<Option<etcd_client::TlsOptions>> {
        if self.cacert.is_none() && self.cert.is_none() && self.key.is_none() {
            return Ok(None);
        }
        let read = |path: &std::path::PathBuf| {
            std::fs::read(path).map_err(|source| BenchError::Io {
                op: "read",
                path: path.clone(),
                source,
            })
        };
        let mut tls = etcd_client::TlsOptions::new();
        if let Some(ca) = &self.cacert {
            tls = tls.ca_certificate(etcd_client::Certificate::from_pem(read(ca)?));
        }
        match (&self.cert, &self.key) {
            (Some(cert), Some(key)) => {
                tls = tls.identity(etcd_client::Identity::from_pem(read(cert)?, read(key)?));
            }
            (None, None) => {}
            _ => return Err(invalid("cert", "--cert and --key go together")),
        }
        Ok(Some(tls))
    }
}

impl LoadConfig {
    /// A config with etcd benchmark-like defaults for `endpoints` and `workload`:
    /// 1 client, 1 connection, 10 000 requests, 8-byte keys, 256-byte values,
    /// 100 000 keys, random order, 10 s request timeout, 600 s run limit.
    pub fn new(endpoints: Vec<String>, workload: Workload) -> LoadConfig {
        LoadConfig {
            endpoints,
            clients: 1,
            conns: 1,
            total: 10_000,
            key_size: 8,
            val_size: 256,
            key_space: 100_000,
            seq: false,
            workload,
            request_timeout_ms: 10_000,
            duration_max_s: 600,
            tls: ClientTls::default(),
        }
    }

    /// Checks every field; the error names the flag and its allowed range.
    pub fn validate(&self) -> Result<()> {
        validate_endpoints(&self.endpoints)?;
        if self.clients == 0 || self.clients > CLIENTS_MAX {
            return Err(invalid(
                "clients",
                format!("{} is outside 1..={CLIENTS_MAX}", self.clients),
            ));
        }
        if self.conns == 0 || self.conns > self.clients {
            return Err(invalid(
                "conns",
                format!("{} is outside 1..=clients ({})", self.conns, self.clients),
            ));
        }
        if self.total == 0 || self.total > TOTAL_MAX {
            return Err(invalid(
                "total",
                format!("{} is outside 1..={TOTAL_MAX}", self.total),
            ));
        }
        validate_key_shape(self.key_size, self.key_space)?;
        if self.val_size > VAL_SIZE_MAX {
            return Err(invalid(
                "val-size",
                format!("{} is outside 0..={VAL_SIZE_MAX}", self.val_size),
            ));
        }
        if let Workload::Txn { ops } = self.workload {
            if ops == 0 || ops > TXN_OPS_MAX {
                return Err(invalid(
                    "txn-ops",
                    format!("{ops} is outside 1..={TXN_OPS_MAX}"),
                ));
            }
        }
        if self.request_timeout_ms == 0 || self.request_timeout_ms > 600_000 {
            return Err(invalid(
                "request-timeout-ms",
                format!("{} is outside 1..=600000", self.request_timeout_ms),
            ));
        }
        if self.duration_max_s == 0 || self.duration_max_s > 86_400 {
            return Err(invalid(
                "duration-max-s",
                format!("{} is outside 1..=86400", self.duration_max_s),
            ));
        }
        Ok(())
    }
}

/// Checks a list of client URLs: at least one, each `http://` or `https://` followed by
/// `host:port` with a numeric port.
pub fn validate_endpoints(endpoints: &[String]) -> Result<()> {
    if endpoints.is_empty() {
        return Err(invalid("endpoints", "at least one URL is required"));
    }
    for endpoint in endpoints {
        let rest = endpoint
            .strip_prefix("http://")
            .or_else(|| endpoint.strip_prefix("https://"))
            .ok_or_else(|| {
                invalid(
                    "endpoints",
                    format!("{endpoint:?} does not start with http:// or https://"),
                )
            })?;
        let authority = rest.trim_end_matches('/');
        let port = authority.rsplit_once(':');
        match port {
            Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => {}
            _ => {
                return Err(invalid(
                    "endpoints",
                    format!("{endpoint:?} is not scheme://host:port"),
                ))
            }
        }
    }
    Ok(())
}

/// The options of every load connection: [`CONNECT_TIMEOUT_MS`], a default deadline of
/// `request_timeout_ms` per request, and TLS when `tls` names files.
pub(crate) fn connect_options(request_timeout_ms: u64, tls: &ClientTls) -> Result<ConnectOptions> {
    let mut options = ConnectOptions::new()
        .with_connect_timeout(Duration::from_millis(CONNECT_TIMEOUT_MS))
        .with_timeout(Duration::from_millis(request_timeout_ms));
    if let Some(tls) = tls.options()? {
        options = options.with_tls(tls);
    }
    if let Some(user) = &tls.user {
        let (name, password) = user
            .split_once(':')
            .ok_or_else(|| invalid("user", "--user takes name:password"))?;
        options = options.with_user(name, password);
    }
    Ok(options)
}

/// Opens one connection to `endpoints` and sends one serializable `Range` of
/// `warm_up_key` on it within `deadline`, so that connection set-up is not timed.
///
/// Errors: [`BenchError::Connect`], or [`BenchError::Request`] if the warm-up fails.
pub(crate) async fn connect_warm(
    endpoints: &[String],
    options: &ConnectOptions,
    warm_up_key: Vec<u8>,
    deadline: Duration,
) -> Result<Client> {
    let client = Client::connect(endpoints, Some(options.clone()))
        .await
        .map_err(|source| BenchError::Connect {
            endpoints: endpoints.join(","),
            source: Box::new(source),
        })?;
    let mut kv = client.kv_client();
    let warm_up = kv.get(warm_up_key, Some(GetOptions::new().with_serializable()));
    match tokio::time::timeout(deadline, warm_up).await {
        Ok(Ok(_)) => Ok(client),
        Ok(Err(e)) => Err(BenchError::Request(format!("warm-up range: {e}"))),
        Err(_) => Err(BenchError::Request("warm-up range timed out".into())),
    }
}

/// Connected clients, ready to run the load: one `KvClient` per connection.
pub struct Bench {
    config: LoadConfig,
    conns: Vec<KvClient>,
}

/// What one client task measured.
pub(crate) struct ClientResult {
    pub(crate) histogram: hdrhistogram::Histogram<u64>,
    pub(crate) errors: u64,
    pub(crate) first_error: Option<String>,
}

impl ClientResult {
    /// Records one request's outcome: its latency when it succeeded, an error (the first
    /// one's text kept) when it failed or outlived `deadline`; `what` names it there.
    pub(crate) fn record<T, E: std::fmt::Display>(
        &mut self,
        outcome: std::result::Result<std::result::Result<T, E>, tokio::time::error::Elapsed>,
        latency_us: u64,
        what: &str,
        deadline: std::time::Duration,
    ) {
        let error = match outcome {
            Ok(Ok(_)) => return record_latency_us(&mut self.histogram, latency_us),
            Ok(Err(e)) => e.to_string(),
            Err(_) => format!("{what} timed out after {deadline:?}"),
        };
        self.errors += 1;
        self.first_error.get_or_insert(error);
    }
}

/// Waits for every client task and merges what they measured: (latencies, errors, the
/// first error's text). A task that failed counts as one error.
pub(crate) async fn merge_client_results(
    tasks: Vec<tokio::task::JoinHandle<ClientResult>>,
) -> (hdrhistogram::Histogram<u64>, u64, Option<String>) {
    let mut histogram = new_latency_histogram();
    let mut errors = 0;
    let mut first_error = None;
    for task in tasks {
        match task.await {
            Ok(result) => {
                histogram
                    .add(&result.histogram)
                    .expect("histograms share bounds");
                errors += result.errors;
                if first_error.is_none() {
                    first_error = result.first_error;
                }
            }
            Err(join) => {
                errors += 1;
                first_error.get_or_insert_with(|| format!("client task failed: {join}"));
            }
        }
    }
    (histogram, errors, first_error)
}

impl Bench {
    /// Validates `config`, opens `config.conns` connections and sends one warm-up
    /// serializable `Range` on each, so that connection set-up is not timed.
    ///
    /// Errors: [`BenchError::InvalidArg`], [`BenchError::Connect`], or
    /// [`BenchError::Request`] if a warm-up request fails.
    pub async fn connect(config: LoadConfig) -> Result<Bench> {
        config.validate()?;
        let options = connect_options(config.request_timeout_ms, &config.tls)?;
        let deadline = Duration::from_millis(config.request_timeout_ms);
        let mut conns = Vec::with_capacity(config.conns as usize);
        for _ in 0..config.conns {
            let warm_up_key = key_for(0, config.key_size);
            let client = connect_warm(&config.endpoints, &options, warm_up_key, deadline).await?;
            conns.push(client.kv_client());
        }
        Ok(Bench { config, conns })
    }

    /// The configuration this bench runs.
    pub fn config(&self) -> &LoadConfig {
        &self.config
    }

    /// Runs the load to completion: exactly `total` requests unless the duration limit
    /// stops it first. Failed requests are counted in the summary, not returned as
    /// errors.
    pub async fn run(&self) -> Summary {
        let config = &self.config;
        let next = Arc::new(AtomicU64::new(0));
        let value = Arc::new(make_value(config.val_size));
        let started = Instant::now();
        let stop_at = started + Duration::from_secs(config.duration_max_s);
        let mut tasks = Vec::with_capacity(config.clients as usize);
        for client in 0..config.clients {
            let kv = self.conns[(client % config.conns) as usize].clone();
            let task = client_loop(
                kv,
                config.clone(),
                client,
                Arc::clone(&next),
                Arc::clone(&value),
                stop_at,
            );
            tasks.push(tokio::spawn(task));
        }
        let (histogram, errors, first_error) = merge_client_results(tasks).await;
        let elapsed_us = started.elapsed().as_micros() as u64;
        let sent = next.load(Ordering::Relaxed).min(config.total);
        let skipped = config.total - sent;
        Summary::from_histogram(
            config.workload.name(),
            &histogram,
            errors,
            skipped,
            elapsed_us,
            first_error,
        )
    }
}

/// Connects and runs one load; see [`Bench::connect`] and [`Bench::run`].
pub async fn run_load(config: LoadConfig) -> Result<Summary> {
    let bench = Bench::connect(config).await?;
    Ok(bench.run().await)
}

/// One client: takes request numbers from `next` until `total` or `stop_at`.
async fn client_loop(
    mut kv: KvClient,
    config: LoadConfig,
    client: u32,
    next: Arc<AtomicU64>,
    value: Arc<Vec<u8>>,
    stop_at: Instant,
) -> ClientResult {
    let mut picker = KeyPicker::new(client, config.key_space, config.seq);
    let deadline = Duration::from_millis(config.request_timeout_ms);
    let mut result = ClientResult {
        histogram: new_latency_histogram(),
        errors: 0,
        first_error: None,
    };
    // Bounded: each iteration consumes one request number, at most `total` of them.
    loop {
        let request = next.fetch_add(1, Ordering::Relaxed);
        if request >= config.total || Instant::now() >= stop_at {
            break;
        }
        let key = key_for(picker.pick(request), config.key_size);
        let sent = Instant::now();
        let outcome = tokio::time::timeout(deadline, send(&mut kv, &config, key, &value)).await;
        let latency_us = sent.elapsed().as_micros() as u64;
        result.record(outcome, latency_us, "request", deadline);
    }
    result
}

/// Sends one request of the configured workload.
async fn send(
    kv: &mut KvClient,
    config: &LoadConfig,
    key: Vec<u8>,
    value: &[u8],
) -> std::result::Result<(), etcd_client::Error> {
    match config.workload {
        Workload::Put => kv.put(key, value.to_vec(), None).await.map(drop),
        Workload::Range { serializable } => {
            let options = serializable.then(|| GetOptions::new().with_serializable());
            kv.get(key, options).await.map(drop)
        }
        Workload::Txn { ops } => {
            // Consecutive keys after the picked one, wrapping in the key space, so one
            // Txn never puts the same key twice (etcd rejects duplicate keys in a Txn).
            let first = key_index(&key);
            let puts: Vec<TxnOp> = (0..u64::from(ops))
                .map(|i| {
                    let index = (first + i) % config.key_space;
                    TxnOp::put(key_for(index, config.key_size), value.to_vec(), None)
                })
                .collect();
            kv.txn(Txn::new().and_then(puts)).await.map(drop)
        }
    }
}

/// The key index encoded in a key made by [`key_for`] (its last ≤ 8 bytes, big-endian).
fn key_index(key: &[u8]) -> u64 {
    let tail = &key[key.len().saturating_sub(8)..];
    tail.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> LoadConfig {
        LoadConfig::new(vec!["http://127.0.0.1:2379".into()], Workload::Put)
    }

    fn error_of(config: LoadConfig) -> String {
        config.validate().unwrap_err().to_string()
    }

    #[test]
    fn default_config_is_valid() {
        assert!(config().validate().is_ok());
    }

    #[test]
    fn rejects_out_of_range_flags() {
        let mut c = config();
        c.clients = 0;
        assert_eq!(error_of(c), "invalid --clients: 0 is outside 1..=10000");
        let mut c = config();
        c.clients = 10;
        c.conns = 11;
        assert_eq!(
            error_of(c),
            "invalid --conns: 11 is outside 1..=clients (10)"
        );
        let mut c = config();
        c.conns = 0;
        assert_eq!(error_of(c), "invalid --conns: 0 is outside 1..=clients (1)");
        let mut c = config();
        c.total = 0;
        assert_eq!(error_of(c), "invalid --total: 0 is outside 1..=100000000");
        let mut c = config();
        c.val_size = VAL_SIZE_MAX + 1;
        assert_eq!(
            error_of(c),
            "invalid --val-size: 1500001 is outside 0..=1500000"
        );
        let mut c = config();
        c.workload = Workload::Txn { ops: 129 };
        assert_eq!(error_of(c), "invalid --txn-ops: 129 is outside 1..=128");
        let mut c = config();
        c.key_size = 2;
        c.key_space = 70_000;
        assert_eq!(
            error_of(c),
            "invalid --key-space: 70000 keys do not fit in 2 bytes (at most 65536)"
        );
        let mut c = config();
        c.request_timeout_ms = 0;
        assert!(c.validate().is_err());
        let mut c = config();
        c.duration_max_s = 0;
        assert!(c.validate().is_err());
    }

    #[test]
    fn endpoint_validation() {
        let ok = |e: &str| validate_endpoints(&[e.to_string()]).is_ok();
        assert!(ok("http://127.0.0.1:2379"));
        assert!(ok("https://localhost:2379/"));
        assert!(ok("http://[::1]:2379"));
        assert!(!ok("127.0.0.1:2379"));
        assert!(!ok("http://127.0.0.1"));
        assert!(!ok("http://:2379"));
        assert!(!ok("http://127.0.0.1:99999"));
        assert_eq!(
            validate_endpoints(&[]).unwrap_err().to_string(),
            "invalid --endpoints: at least one URL is required"
        );
        assert_eq!(
            validate_endpoints(&["tcp://a:1".to_string()])
                .unwrap_err()
                .to_string(),
            "invalid --endpoints: \"tcp://a:1\" does not start with http:// or https://"
        );
    }

    #[test]
    fn workload_names() {
        assert_eq!(Workload::Put.name(), "put");
        assert_eq!(
            Workload::Range {
                serializable: false
            }
            .name(),
            "range"
        );
        assert_eq!(
            Workload::Range { serializable: true }.name(),
            "range-serializable"
        );
        assert_eq!(Workload::Txn { ops: 2 }.name(), "txn");
    }

    #[test]
    fn key_index_round_trips() {
        assert_eq!(key_index(&key_for(0, 8)), 0);
        assert_eq!(key_index(&key_for(123_456, 8)), 123_456);
        assert_eq!(key_index(&key_for(513, 2)), 513);
        assert_eq!(key_index(&key_for(99, 16)), 99);
    }

    #[tokio::test]
    async fn connect_to_closed_port_fails_cleanly() {
        // Bind then drop a listener to get a loopback port with nothing listening.
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let mut c = LoadConfig::new(vec![format!("http://127.0.0.1:{port}")], Workload::Put);
        c.request_timeout_ms = 2_000;
        let err = Bench::connect(c).await.err().expect("no server listens");
        assert!(matches!(
            err,
            BenchError::Request(_) | BenchError::Connect { .. }
        ));
    }
}
