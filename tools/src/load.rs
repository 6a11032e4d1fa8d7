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

use etcd_client::{Client, ConnectOptions, GetOptions};

use crate::error::{invalid, BenchError, Result};
use crate::keys::{key_for, make_value, validate_key_shape, KeyPicker};
pub use crate::ops::RunReport;
use crate::ops::{ClientOps, Counters};
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

/// What each request does. The names and semantics follow etcd's `tools/benchmark`
/// (`cmd/put.go`, `range.go`, `txn_put.go`, `txn_mixed.go`, `lease.go`, `stm.go`).
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
    /// etcd `txn-mixed`: each request is a one-op Txn, a Range (read) with probability
    /// `read_per_mille`/1000 and a Put otherwise; reads use [`LoadConfig::limit`] and
    /// [`LoadConfig::end_range`].
    TxnMixed {
        /// Reads per 1000 requests: `1000 · r / (1 + r)` for etcd's `--rw-ratio r`.
        read_per_mille: u32,
        /// Serializable reads (etcd `--consistency=s`).
        serializable: bool,
    },
    /// etcd `lease-keepalive`: each client grants one lease (TTL
    /// [`crate::LEASE_KEEPALIVE_TTL_S`], not timed) and each request is one keep-alive
    /// sent and its answer received on the client's stream.
    LeaseKeepalive,
    /// etcd `stm` with repeatable-read isolation: each request reads `keys_per_txn`
    /// distinct random keys and commits a Txn that puts them all if none changed
    /// (mod_revision compares), retrying on conflict; the request's latency covers
    /// every attempt.
    Stm {
        /// Keys read and written per transaction, 1..=[`TXN_OPS_MAX`].
        keys_per_txn: u32,
    },
    /// kube-apiserver's pattern (see [`crate::kube`]): optimistic-concurrency updates,
    /// gets, paginated lists at a revision and event puts with leases, with watchers
    /// (prev_kv, progress notify) and periodic compaction running beside.
    Kube,
}

impl Workload {
    /// The name printed in reports, etcd benchmark's: "put", "range", "range-serializable", "txn-put",
    /// "txn-mixed", "lease-keepalive", "stm", "kube".
    pub fn name(&self) -> &'static str {
        match self {
            Workload::Put => "put",
            Workload::Range {
                serializable: false,
            } => "range",
            Workload::Range { serializable: true } => "range-serializable",
            Workload::Txn { .. } => "txn-put",
            Workload::TxnMixed { .. } => "txn-mixed",
            Workload::LeaseKeepalive => "lease-keepalive",
            Workload::Stm { .. } => "stm",
            Workload::Kube => "kube",
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
    /// Run for this long instead of `total` requests (etcd benchmark `--duration`-like
    /// runs), s; `None`: stop after `total`.
    pub duration_s: Option<u64>,
    /// Requests per second over all clients (etcd `--rate`); 0: no limit. Request n
    /// is not sent before `start + n / rate`.
    pub rate: u32,
    /// Send every request to the leader's endpoint only, found with Maintenance Status
    /// on each endpoint (etcd `--target-leader`).
    pub target_leader: bool,
    /// Most keys returned by a `txn-mixed` read (etcd `--limit`), 0: no limit.
    pub limit: u32,
    /// End of the key range a `txn-mixed` read covers (etcd `--end-range`); `None`:
    /// a single-key read.
    pub end_range: Option<Vec<u8>>,
    /// Kube workload parameters (ignored by the other workloads).
    pub kube: crate::kube::KubeConfig,
    /// Show an indicatif progress bar on stderr (only drawn when stderr is a terminal).
    pub progress: bool,
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
            duration_s: None,
            rate: 0,
            target_leader: false,
            limit: 0,
            end_range: None,
            kube: crate::kube::KubeConfig::default(),
            progress: false,
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
        match self.workload {
            Workload::Txn { ops } if ops == 0 || ops > TXN_OPS_MAX => {
                return Err(invalid(
                    "txn-ops",
                    format!("{ops} is outside 1..={TXN_OPS_MAX}"),
                ));
            }
            Workload::Stm { keys_per_txn } if keys_per_txn == 0 || keys_per_txn > TXN_OPS_MAX => {
                return Err(invalid(
                    "keys-per-txn",
                    format!("{keys_per_txn} is outside 1..={TXN_OPS_MAX}"),
                ));
            }
            Workload::Stm { keys_per_txn } if u64::from(keys_per_txn) > self.key_space => {
                return Err(invalid(
                    "keys-per-txn",
                    format!(
                        "{keys_per_txn} is more than --key-space-size ({})",
                        self.key_space
                    ),
                ));
            }
            Workload::TxnMixed { read_per_mille, .. } if read_per_mille > 1000 => {
                return Err(invalid("rw-ratio", "reads per mille above 1000"));
            }
            Workload::Kube => self.kube.validate()?,
            _ => {}
        }
        if let Some(duration_s) = self.duration_s {
            if duration_s == 0 || duration_s > 86_400 {
                return Err(invalid(
                    "duration",
                    format!("{duration_s} is outside 1..=86400"),
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

/// Connected clients, ready to run the load: one client per connection.
pub struct Bench {
    config: LoadConfig,
    conns: Vec<Client>,
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
        self.error(error);
    }

    /// Counts one failed request; the first error's text is kept.
    pub(crate) fn error(&mut self, error: String) {
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

/// The endpoint of the leader among `endpoints`: Maintenance Status on each (own
/// connection), the one whose member ID is the leader its status names.
///
/// Errors: [`BenchError::Request`] when no endpoint answers as the leader.
pub async fn leader_endpoint(endpoints: &[String], options: &ConnectOptions) -> Result<String> {
    for endpoint in endpoints {
        let Ok(client) = Client::connect([endpoint.as_str()], Some(options.clone())).await else {
            continue;
        };
        let Ok(status) = client.maintenance_client().status().await else {
            continue;
        };
        let member_id = status.header().map(|h| h.member_id());
        if member_id == Some(status.leader()) {
            return Ok(endpoint.clone());
        }
    }
    Err(BenchError::Request(format!(
        "--target-leader: no endpoint of {} is the leader",
        endpoints.join(",")
    )))
}

impl Bench {
    /// Validates `config`, opens `config.conns` connections (to the leader's endpoint
    /// only with `target_leader`) and sends one warm-up serializable `Range` on each, so
    /// that connection set-up is not timed.
    ///
    /// Errors: [`BenchError::InvalidArg`], [`BenchError::Connect`], or
    /// [`BenchError::Request`] if a warm-up request fails or no leader is found.
    pub async fn connect(mut config: LoadConfig) -> Result<Bench> {
        config.validate()?;
        let options = connect_options(config.request_timeout_ms, &config.tls)?;
        if config.target_leader {
            config.endpoints = vec![leader_endpoint(&config.endpoints, &options).await?];
        }
        let deadline = Duration::from_millis(config.request_timeout_ms);
        let mut conns = Vec::with_capacity(config.conns as usize);
        for _ in 0..config.conns {
            let warm_up_key = key_for(0, config.key_size);
            let client = connect_warm(&config.endpoints, &options, warm_up_key, deadline).await?;
            conns.push(client);
        }
        Ok(Bench { config, conns })
    }

    /// The configuration this bench runs (endpoints narrowed to the leader's with
    /// `target_leader`).
    pub fn config(&self) -> &LoadConfig {
        &self.config
    }

    /// Runs the load to completion: exactly `total` requests (or for `duration_s`)
    /// unless the duration limit stops it first. Failed requests are counted in the
    /// summary, not returned as errors.
    pub async fn run(&self) -> Summary {
        self.run_report().await.summary
    }

    /// [`Bench::run`] with the bench process's own CPU use and the workload's counters.
    pub async fn run_report(&self) -> RunReport {
        let config = &self.config;
        let next = Arc::new(AtomicU64::new(0));
        let counters = Arc::new(Counters::default());
        let value = Arc::new(make_value(config.val_size));
        let background = match config.workload {
            Workload::Kube => Some(
                crate::kube::KubeBackground::start(
                    self.conns[0].clone(),
                    config.kube.clone(),
                    Arc::clone(&counters),
                )
                .await,
            ),
            _ => None,
        };
        let cpu_before = crate::selfcpu::rusage_cpu_us();
        let started = Instant::now();
        let run_s = config.duration_s.unwrap_or(config.duration_max_s);
        let stop_at = started + Duration::from_secs(run_s.min(config.duration_max_s));
        let total = self.request_limit();
        let progress = crate::selfcpu::Progress::start(
            config.progress,
            config.duration_s,
            total,
            Arc::clone(&next),
        );
        let mut tasks = Vec::with_capacity(config.clients as usize);
        for client in 0..config.clients {
            let conn = self.conns[(client % config.conns) as usize].clone();
            let task = client_loop(ClientLoop {
                ops: ClientOps::new(conn, config, client, Arc::clone(&counters)),
                config: config.clone(),
                client,
                total,
                next: Arc::clone(&next),
                value: Arc::clone(&value),
                started,
                stop_at,
            });
            tasks.push(tokio::spawn(task));
        }
        let (histogram, errors, first_error) = merge_client_results(tasks).await;
        let elapsed_us = started.elapsed().as_micros() as u64;
        let cpu = crate::selfcpu::SelfCpu::measured(
            crate::selfcpu::rusage_cpu_us().saturating_sub(cpu_before),
            elapsed_us,
        );
        progress.finish().await;
        if let Some(background) = background {
            background.stop().await;
        }
        let sent = next.load(Ordering::Relaxed).min(total);
        let skipped = match config.duration_s {
            Some(_) => 0,
            None => config.total - sent,
        };
        let summary = Summary::from_histogram(
            config.workload.name(),
            &histogram,
            errors,
            skipped,
            elapsed_us,
            first_error,
        );
        RunReport {
            summary,
            cpu,
            counters: counters.snapshot(),
        }
    }

    /// Requests the run may send: `total`, or [`TOTAL_MAX`] for a timed run.
    fn request_limit(&self) -> u64 {
        match self.config.duration_s {
            Some(_) => TOTAL_MAX,
            None => self.config.total,
        }
    }
}

/// Connects and runs one load; see [`Bench::connect`] and [`Bench::run`].
pub async fn run_load(config: LoadConfig) -> Result<Summary> {
    let bench = Bench::connect(config).await?;
    Ok(bench.run().await)
}

/// Connects and runs one load with the full report; see [`Bench::run_report`].
pub async fn run_load_report(config: LoadConfig) -> Result<RunReport> {
    let bench = Bench::connect(config).await?;
    Ok(bench.run_report().await)
}

/// Everything one client task needs.
struct ClientLoop {
    ops: ClientOps,
    config: LoadConfig,
    client: u32,
    total: u64,
    next: Arc<AtomicU64>,
    value: Arc<Vec<u8>>,
    started: Instant,
    stop_at: Instant,
}

/// One client: takes request numbers from `next` until `total` or `stop_at`, each not
/// before its slot under `rate`.
async fn client_loop(mut state: ClientLoop) -> ClientResult {
    let config = &state.config;
    let mut picker = KeyPicker::new(state.client, config.key_space, config.seq);
    let deadline = Duration::from_millis(config.request_timeout_ms);
    let mut result = ClientResult {
        histogram: new_latency_histogram(),
        errors: 0,
        first_error: None,
    };
    if let Err(e) = state.ops.prepare(config, &state.value).await {
        result.error(e);
        return result;
    }
    // Bounded: each iteration consumes one request number, at most `total` of them.
    loop {
        let request = state.next.fetch_add(1, Ordering::Relaxed);
        if request >= state.total || Instant::now() >= state.stop_at {
            break;
        }
        if config.rate > 0 {
            let slot =
                state.started + Duration::from_secs_f64(request as f64 / f64::from(config.rate));
            if slot >= state.stop_at {
                break;
            }
            tokio::time::sleep_until(slot.into()).await;
        }
        let key = key_for(picker.pick(request), config.key_size);
        let sent = Instant::now();
        let send = state.ops.send(config, key, &state.value);
        let outcome = tokio::time::timeout(deadline, send).await;
        let latency_us = sent.elapsed().as_micros() as u64;
        result.record(outcome, latency_us, "request", deadline);
    }
    state.ops.finish().await;
    result
}

/// The key index encoded in a key made by [`key_for`] (its last ≤ 8 bytes, big-endian).
pub(crate) fn key_index(key: &[u8]) -> u64 {
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
        assert_eq!(Workload::Txn { ops: 2 }.name(), "txn-put");
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
