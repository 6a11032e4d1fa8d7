//! `cairn-bench scale` (issue 8): one server at a time holding N keys — load, memory and
//! disk, put latency while one client reads every key, restart time.
//!
//! For each target, one after the other, on a fresh one-member server started with the
//! same flags (`--quota-backend-bytes`, `--snapshot-count`):
//!
//! 1. **Load**: keys `/scale/%012d` for 0 ..< N, each put once with a fresh
//!    `value_bytes` random value, by `clients` clients over `connections` gRPC
//!    connections. Failed puts are counted, not retried.
//! 2. **After load** (after [`SETTLE_MS`]): the server's `RssAnon` and the disk use of
//!    its data dir, allocated blocks (as `du -s`) and apparent size.
//! 3. **Baseline**: one client puts a 16-byte value to [`PROBE_KEY`] `baseline_puts`
//!    times in a row, nothing else running.
//! 4. **Full-prefix range**: a second client, on its own connection and its own thread
//!    (so decoding the ~1 GiB answer takes nothing from the putting client's runtime),
//!    sends one linearizable `Range` of the prefix `/scale/`, no limit. The first client
//!    puts to [`PROBE_KEY`] in a loop while it is in flight (puts sent after the range is
//!    sent and before its answer is decoded count), and a third thread samples the
//!    server's `RssAnon` every [`RSS_SAMPLE_MS`] ms.
//! 5. **Restart after kill -9** (unless disabled): SIGKILL, then spawn the server again on
//!    the same data dir and ports; the time from the spawn to the first answered
//!    linearizable `Range` of `/scale/000000000000`.
//! 6. **Restart after SIGTERM**: SIGTERM and wait for the exit (the stop time), then as
//!    in 5.
//!
//! The kill -9 restart comes first so that it recovers the state the load left (the
//! graceful stop may write a checkpoint that a later crash would not need to replay).
//! Both restarts read from a warm page cache.

use std::collections::HashSet;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use etcd_client::{Client, ConnectOptions, GetOptions, GetResponse, KvClient};
use serde::Serialize;

use crate::compare::Target;
use crate::error::{invalid, BenchError, Result};
use crate::keys::SplitMix64;
use crate::load::{connect_options, connect_warm, ClientTls, CLIENTS_MAX, VAL_SIZE_MAX};
use crate::procstat;
use crate::server::ServerProcess;
use crate::stats::{new_latency_histogram, record_latency_us, us_to_ms, Summary};

/// Prefix of every loaded key; the full-prefix range reads exactly these.
pub const SCALE_PREFIX: &str = "/scale/";
/// The key the single putting client writes during the baseline and the range; outside
/// [`SCALE_PREFIX`], so the range does not return it.
pub const PROBE_KEY: &str = "/scale-probe/put";
/// Size of the probe put's value, bytes.
pub const PROBE_VALUE_BYTES: usize = 16;
/// Most keys one run loads (the key format has 12 digits).
pub const KEYS_MAX: u64 = 100_000_000;
/// Most puts of the baseline.
pub const BASELINE_PUTS_MAX: u64 = 1_000_000;
/// Interval between `RssAnon` samples during the range, ms.
pub const RSS_SAMPLE_MS: u64 = 20;
/// Pause between the end of the load and the memory and disk samples, ms, so that
/// work queued by the last puts (flushes, a garbage collection) is not caught half done.
pub const SETTLE_MS: u64 = 2_000;
/// Pause between failed first reads after a restart, ms.
pub const RESTART_POLL_MS: u64 = 10;
/// Deadline of one connection attempt or first read after a restart, ms.
pub const RESTART_ATTEMPT_TIMEOUT_MS: u64 = 1_000;
/// Longest wait for the exit after SIGTERM, ms.
pub const STOP_TIMEOUT_MS: u64 = 120_000;
/// Longest wait, after the exit, for the server's ports to be free again, ms.
pub const PORTS_FREE_TIMEOUT_MS: u64 = 120_000;
/// The range client's receive limit, bytes: the most a server sends in one message
/// (etcd's `MaxCallSendMsgSize`, `math.MaxInt32`; tonic's default is 4 MiB).
pub const RANGE_RESPONSE_BYTES_MAX: usize = i32::MAX as usize;
/// Interval between progress lines during the load, s.
pub const LOAD_PROGRESS_S: u64 = 10;
/// Default `--quota-backend-bytes`: 8 GiB, the most etcd 3.4 recommends, so that 1M
/// 1 KiB values (about 1.3 GiB in etcd's bbolt file) stay far from the NOSPACE alarm.
pub const QUOTA_BACKEND_BYTES_DEFAULT: u64 = 8 * 1024 * 1024 * 1024;
/// Default `--snapshot-count`: etcd 3.4's default.
pub const SNAPSHOT_COUNT_DEFAULT: u64 = 100_000;

const MIB: f64 = 1024.0 * 1024.0;

/// Parameters of a scale run (the flags of `cairn-bench scale`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScaleConfig {
    /// Servers, measured one after another in this order.
    pub targets: Vec<Target>,
    /// Keys loaded, 1..=[`KEYS_MAX`].
    pub keys: u64,
    /// Value size of each loaded key, bytes, 0..=[`VAL_SIZE_MAX`].
    pub value_bytes: u32,
    /// Concurrent load clients, one put in flight each, 1..=[`CLIENTS_MAX`].
    pub clients: u32,
    /// gRPC connections of the load, 1..=clients; client i uses connection i % connections.
    pub connections: u32,
    /// `--quota-backend-bytes` given to every server.
    pub quota_backend_bytes: u64,
    /// `--snapshot-count` given to every server.
    pub snapshot_count: u64,
    /// Sequential probe puts of the baseline, 1..=[`BASELINE_PUTS_MAX`].
    pub baseline_puts: u64,
    /// Whether to measure a restart after SIGKILL too.
    pub kill9: bool,
    /// How long a fresh server may take to report healthy, ms.
    pub startup_timeout_ms: u64,
    /// Deadline of one put, ms; a late put counts as an error.
    pub request_timeout_ms: u64,
    /// Limit on the load, s: puts not yet sent by then are skipped.
    pub load_duration_max_s: u64,
    /// Deadline of the full-prefix range, ms.
    pub range_timeout_ms: u64,
    /// Longest wait from a restart's spawn to its first answered read, ms.
    pub restart_timeout_ms: u64,
}

impl ScaleConfig {
    /// Issue 8's sizes: 1,000,000 keys of 1,024 random bytes, 1,000 clients over 100
    /// connections; 8 GiB quota, snapshot-count 100,000; 1,000 baseline puts; a kill -9
    /// restart as well.
    pub fn new(targets: Vec<Target>) -> ScaleConfig {
        ScaleConfig {
            targets,
            keys: 1_000_000,
            value_bytes: 1024,
            clients: 1_000,
            connections: 100,
            quota_backend_bytes: QUOTA_BACKEND_BYTES_DEFAULT,
            snapshot_count: SNAPSHOT_COUNT_DEFAULT,
            baseline_puts: 1_000,
            kill9: true,
            startup_timeout_ms: 60_000,
            request_timeout_ms: 10_000,
            load_duration_max_s: 3_600,
            range_timeout_ms: 600_000,
            restart_timeout_ms: 600_000,
        }
    }

    /// Checks every field; the error names the flag and its allowed range.
    pub fn validate(&self) -> Result<()> {
        if self.targets.is_empty() {
            return Err(invalid("cairn-bin", "no target to measure"));
        }
        let in_range = |flag: &'static str, value: u64, low: u64, high: u64| {
            if value < low || value > high {
                return Err(invalid(flag, format!("{value} is outside {low}..={high}")));
            }
            Ok(())
        };
        in_range("keys", self.keys, 1, KEYS_MAX)?;
        in_range(
            "value-bytes",
            self.value_bytes.into(),
            0,
            VAL_SIZE_MAX.into(),
        )?;
        in_range("clients", self.clients.into(), 1, CLIENTS_MAX.into())?;
        if self.connections == 0 || self.connections > self.clients {
            return Err(invalid(
                "connections",
                format!(
                    "{} is outside 1..=clients ({})",
                    self.connections, self.clients
                ),
            ));
        }
        in_range("snapshot-count", self.snapshot_count, 1, u64::MAX)?;
        in_range("baseline-puts", self.baseline_puts, 1, BASELINE_PUTS_MAX)?;
        in_range("startup-timeout-ms", self.startup_timeout_ms, 1, 600_000)?;
        in_range("request-timeout-ms", self.request_timeout_ms, 1, 600_000)?;
        in_range("load-duration-max-s", self.load_duration_max_s, 1, 86_400)?;
        in_range("range-timeout-ms", self.range_timeout_ms, 1, 3_600_000)?;
        in_range("restart-timeout-ms", self.restart_timeout_ms, 1, 3_600_000)?;
        Ok(())
    }

    /// The flags every server gets after its name, data dir and URLs.
    pub fn server_flags(&self) -> Vec<String> {
        vec![
            "--quota-backend-bytes".into(),
            self.quota_backend_bytes.to_string(),
            "--snapshot-count".into(),
            self.snapshot_count.to_string(),
        ]
    }
}

/// Loaded key number `index`: `/scale/` and the index in 12 zero-padded digits.
pub fn scale_key(index: u64) -> String {
    format!("{SCALE_PREFIX}{index:012}")
}

/// Latency of the single putting client over one window.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ProbePuts {
    /// Puts answered.
    pub puts: u64,
    /// Puts failed or timed out.
    pub errors: u64,
    /// Median latency, ms.
    pub p50_ms: f64,
    /// 99th percentile latency, ms.
    pub p99_ms: f64,
    /// Largest latency, ms.
    pub max_ms: f64,
    /// When the slowest put was sent, s after the window's first put (during the
    /// range: about the time since the range was sent).
    pub max_sent_at_s: f64,
    /// The first failure's text.
    pub first_error: Option<String>,
}

/// The full-prefix range.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RangeReport {
    /// From sending the request to the decoded answer (or the failure), s.
    pub duration_s: f64,
    /// Size of the answer as the server encoded it (protobuf `RangeResponse`), bytes.
    pub response_bytes: u64,
    /// Keys in the answer.
    pub kvs: u64,
    /// Why the range failed, if it did.
    pub error: Option<String>,
}

/// One restart on the same data dir.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RestartReport {
    /// How the server was stopped: "SIGTERM" or "SIGKILL".
    pub signal: &'static str,
    /// From the signal to the exit, s (`None` for SIGKILL).
    pub stop_s: Option<f64>,
    /// From the reaped exit until the client and peer ports could be bound again, s
    /// (not part of `restart_s`).
    pub ports_free_s: f64,
    /// From the spawn to the first answered linearizable read, s.
    pub restart_s: f64,
    /// Whether that read returned the first loaded key.
    pub read_found_key: bool,
    /// Connection attempts and reads that failed before it.
    pub failed_attempts: u64,
}

/// Everything measured on one server.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ScaleResult {
    /// Target name ("cairn", "etcd").
    pub target: String,
    /// Loaded keys (puts answered OK).
    pub keys_loaded: u64,
    /// Load puts that failed or timed out.
    pub load_errors: u64,
    /// Load puts never sent (the load hit its duration limit).
    pub load_skipped: u64,
    /// The first failed load put's text.
    pub load_first_error: Option<String>,
    /// Wall time of the load, s.
    pub load_s: f64,
    /// Answered puts per second of the load.
    pub load_puts_s: f64,
    /// Load put latency p50, ms.
    pub load_p50_ms: f64,
    /// Load put latency p99, ms.
    pub load_p99_ms: f64,
    /// Load put latency p99.9, ms.
    pub load_p999_ms: f64,
    /// Largest load put latency, ms.
    pub load_max_ms: f64,
    /// Server `RssAnon` after the load, MiB.
    pub rss_anon_after_load_mib: f64,
    /// Blocks allocated under the data dir (as `du -s`), MiB.
    pub disk_allocated_mib: f64,
    /// Sum of file sizes under the data dir (as `du -s --apparent-size`), MiB.
    pub disk_apparent_mib: f64,
    /// The single client's puts with nothing else running.
    pub baseline_put: ProbePuts,
    /// The full-prefix range.
    pub range: RangeReport,
    /// The single client's puts while the range was in flight.
    pub put_during_range: ProbePuts,
    /// Server `RssAnon` just before the range, MiB.
    pub rss_anon_before_range_mib: f64,
    /// Highest `RssAnon` sampled while the range was in flight, MiB.
    pub rss_anon_peak_range_mib: f64,
    /// `RssAnon` samples taken during the range.
    pub rss_samples: u64,
    /// Restart after SIGKILL, if measured.
    pub restart_kill9: Option<RestartReport>,
    /// Restart after SIGTERM.
    pub restart_sigterm: RestartReport,
}

impl ScaleResult {
    /// Peak `RssAnon` during the range above the value just before it, MiB (0 if the
    /// peak sampled was lower).
    pub fn rss_anon_peak_above_idle_mib(&self) -> f64 {
        (self.rss_anon_peak_range_mib - self.rss_anon_before_range_mib).max(0.0)
    }
}

/// A whole run: parameters, one result per server measured, servers left out and why.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ScaleReport {
    /// Keys loaded on each server.
    pub keys: u64,
    /// Value size, bytes.
    pub value_bytes: u32,
    /// Load clients.
    pub clients: u32,
    /// Load connections.
    pub connections: u32,
    /// `--quota-backend-bytes` of every server.
    pub quota_backend_bytes: u64,
    /// `--snapshot-count` of every server.
    pub snapshot_count: u64,
    /// One per server, in run order.
    pub servers: Vec<ScaleResult>,
    /// Servers not measured, with the reason (e.g. no etcd binary found).
    pub skipped: Vec<String>,
}

mod measure;
mod report;

pub use self::measure::{disk_use, key_value_bytes, range_response_bytes, varint_bytes, DiskUse};
pub use self::report::render_scale_markdown;

/// Fresh pseudo-random bytes from `rng`, `len` of them.
fn random_value(rng: &mut SplitMix64, len: usize) -> Vec<u8> {
    let mut value = Vec::with_capacity(len);
    while value.len() < len {
        let word = rng.next_u64().to_le_bytes();
        let take = (len - value.len()).min(word.len());
        value.extend_from_slice(&word[..take]);
    }
    value
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / MIB
}

/// Runs every target in turn (see the module doc). `progress` receives one line per
/// step (for stderr).
///
/// Errors: invalid config; a server that does not start, exits during a step, or does
/// not answer after a restart; a load connection that fails; `/proc` or the data dir
/// unreadable.
pub async fn run_scale(
    config: &ScaleConfig,
    skipped: Vec<String>,
    mut progress: impl FnMut(&str),
) -> Result<ScaleReport> {
    config.validate()?;
    let mut servers = Vec::with_capacity(config.targets.len());
    for target in &config.targets {
        servers.push(run_target(config, target, &mut progress).await?);
    }
    Ok(ScaleReport {
        keys: config.keys,
        value_bytes: config.value_bytes,
        clients: config.clients,
        connections: config.connections,
        quota_backend_bytes: config.quota_backend_bytes,
        snapshot_count: config.snapshot_count,
        servers,
        skipped,
    })
}

/// Every step on one target; the server is killed and its directory removed at the end
/// (or on an error).
async fn run_target(
    config: &ScaleConfig,
    target: &Target,
    progress: &mut impl FnMut(&str),
) -> Result<ScaleResult> {
    let name = &target.name;
    progress(&format!("{name}: starting {}", target.bin.display()));
    let startup = Duration::from_millis(config.startup_timeout_ms);
    let mut server =
        ServerProcess::start_with_args(name, &target.bin, &config.server_flags(), startup).await?;
    let url = server.client_url();

    progress(&format!(
        "{name}: loading {} keys of {} bytes, {} clients over {} connections",
        config.keys, config.value_bytes, config.clients, config.connections
    ));
    let load = load_keys(&url, config, &mut *progress, name).await?;
    ensure_running(&mut server, "the load")?;
    progress(&format!("{name}: {}", load.to_text().trim_end()));

    tokio::time::sleep(Duration::from_millis(SETTLE_MS)).await;
    let rss_anon_after_load = procstat::rss_anon_bytes(server.pid())?;
    let disk = disk_use(server.data_dir())?;
    progress(&format!(
        "{name}: RssAnon {:.1} MiB, disk {:.1} MiB allocated, {:.1} MiB apparent",
        mib(rss_anon_after_load),
        mib(disk.allocated_bytes),
        mib(disk.apparent_bytes)
    ));

    let options = connect_options(config.request_timeout_ms, &ClientTls::default())?;
    let deadline = Duration::from_millis(config.request_timeout_ms);
    let probe = connect_warm(
        std::slice::from_ref(&url),
        &options,
        PROBE_KEY.into(),
        deadline,
    )
    .await?;
    let mut probe_kv = probe.kv_client();
    progress(&format!(
        "{name}: baseline, {} puts of one client",
        config.baseline_puts
    ));
    let baseline_put = baseline_puts(&mut probe_kv, config.baseline_puts, deadline).await;

    progress(&format!("{name}: full-prefix range of {SCALE_PREFIX}"));
    let rss_before_range = procstat::rss_anon_bytes(server.pid())?;
    let during = range_with_puts(&url, server.pid(), &mut probe_kv, config, deadline).await?;
    drop(probe);
    ensure_running(&mut server, "the range")?;
    progress(&format!(
        "{name}: range {:.2} s, {:.1} MiB, {} kvs{}; {} puts during it",
        during.range.duration_s,
        mib(during.range.response_bytes),
        during.range.kvs,
        during
            .range
            .error
            .as_deref()
            .map_or(String::new(), |e| format!(", failed: {e}")),
        during.puts.puts
    ));

    let (restart_kill9, restart_sigterm) = restarts(&mut server, config, progress).await?;
    drop(server);

    Ok(ScaleResult {
        target: name.clone(),
        keys_loaded: load.ops,
        load_errors: load.errors,
        load_skipped: load.skipped,
        load_first_error: load.first_error.clone(),
        load_s: load.elapsed_us as f64 / 1_000_000.0,
        load_puts_s: load.throughput_ops_s(),
        load_p50_ms: us_to_ms(load.p50_us),
        load_p99_ms: us_to_ms(load.p99_us),
        load_p999_ms: us_to_ms(load.p999_us),
        load_max_ms: us_to_ms(load.max_us),
        rss_anon_after_load_mib: mib(rss_anon_after_load),
        disk_allocated_mib: mib(disk.allocated_bytes),
        disk_apparent_mib: mib(disk.apparent_bytes),
        baseline_put,
        range: during.range,
        put_during_range: during.puts,
        rss_anon_before_range_mib: mib(rss_before_range),
        rss_anon_peak_range_mib: mib(during.rss_anon_peak_bytes),
        rss_samples: during.rss_samples,
        restart_kill9,
        restart_sigterm,
    })
}

/// The restart after kill -9 (when configured), then the one after SIGTERM, each
/// timed from the spawn to the first answered read of the first loaded key.
async fn restarts(
    server: &mut ServerProcess,
    config: &ScaleConfig,
    progress: &mut impl FnMut(&str),
) -> Result<(Option<RestartReport>, RestartReport)> {
    let name = server.name().to_string();
    let first_key = scale_key(0);
    let timeout = Duration::from_millis(config.restart_timeout_ms);
    let kill9 = if config.kill9 {
        progress(&format!("{name}: kill -9 and restart"));
        server.kill();
        let report = timed_restart(server, "SIGKILL", None, &first_key, timeout).await?;
        progress(&format!(
            "{name}: answered {:.2} s after the spawn",
            report.restart_s
        ));
        Some(report)
    } else {
        None
    };
    progress(&format!("{name}: SIGTERM and restart"));
    let stop = server
        .terminate(Duration::from_millis(STOP_TIMEOUT_MS))
        .await?;
    let sigterm = timed_restart(server, "SIGTERM", Some(stop), &first_key, timeout).await?;
    progress(&format!(
        "{name}: stopped in {:.2} s, answered {:.2} s after the spawn",
        stop.as_secs_f64(),
        sigterm.restart_s
    ));
    Ok((kill9, sigterm))
}

fn ensure_running(server: &mut ServerProcess, step: &str) -> Result<()> {
    if server.is_running() {
        Ok(())
    } else {
        Err(server.failure(format!("exited during {step}")))
    }
}

/// The load: `clients` tasks over `connections` warmed-up connections take key indexes
/// from one counter until `keys` or the duration limit.
async fn load_keys(
    url: &str,
    config: &ScaleConfig,
    progress: &mut impl FnMut(&str),
    name: &str,
) -> Result<Summary> {
    let options = connect_options(config.request_timeout_ms, &ClientTls::default())?;
    let deadline = Duration::from_millis(config.request_timeout_ms);
    let endpoints = [url.to_string()];
    let mut conns = Vec::with_capacity(config.connections as usize);
    for _ in 0..config.connections {
        let client = connect_warm(&endpoints, &options, PROBE_KEY.into(), deadline).await?;
        conns.push(client.kv_client());
    }
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let stop_at = started + Duration::from_secs(config.load_duration_max_s);
    let tasks: Vec<_> = (0..config.clients)
        .map(|client| {
            let kv = conns[(client % config.connections) as usize].clone();
            tokio::spawn(load_client(
                kv,
                client,
                Arc::clone(&next),
                config.keys,
                config.value_bytes as usize,
                deadline,
                stop_at,
            ))
        })
        .collect();
    let mut last_progress = Instant::now();
    // Bounded: every client stops by `stop_at` plus one request deadline.
    while !tasks.iter().all(|task| task.is_finished()) {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if last_progress.elapsed() >= Duration::from_secs(LOAD_PROGRESS_S) {
            last_progress = Instant::now();
            let sent = next.load(Ordering::Relaxed).min(config.keys);
            progress(&format!(
                "{name}: {sent} of {} puts sent after {:.0} s",
                config.keys,
                started.elapsed().as_secs_f64()
            ));
        }
    }
    let (histogram, errors, first_error) = crate::load::merge_client_results(tasks).await;
    let elapsed_us = started.elapsed().as_micros() as u64;
    let sent = next.load(Ordering::Relaxed).min(config.keys);
    Ok(Summary::from_histogram(
        "put",
        &histogram,
        errors,
        config.keys - sent,
        elapsed_us,
        first_error,
    ))
}

async fn load_client(
    mut kv: KvClient,
    client: u32,
    next: Arc<AtomicU64>,
    keys: u64,
    value_bytes: usize,
    deadline: Duration,
    stop_at: Instant,
) -> crate::load::ClientResult {
    let mut rng = SplitMix64::new(0x5CA1_E000_0000_0000 ^ u64::from(client));
    let mut result = crate::load::ClientResult {
        histogram: new_latency_histogram(),
        errors: 0,
        first_error: None,
    };
    // Bounded: each iteration takes one key index, at most `keys` of them.
    loop {
        let index = next.fetch_add(1, Ordering::Relaxed);
        if index >= keys || Instant::now() >= stop_at {
            break;
        }
        let value = random_value(&mut rng, value_bytes);
        let sent = Instant::now();
        let outcome = tokio::time::timeout(deadline, kv.put(scale_key(index), value, None)).await;
        let latency_us = sent.elapsed().as_micros() as u64;
        result.record(outcome, latency_us, "put", deadline);
    }
    result
}

/// Latencies of the single putting client, accumulated over one window.
struct ProbeRecorder {
    histogram: hdrhistogram::Histogram<u64>,
    errors: u64,
    first_error: Option<String>,
    /// Send time of the window's first put.
    first_sent: Option<Instant>,
    /// Largest latency so far, µs, and its send time.
    slowest: Option<(u64, Instant)>,
}

impl ProbeRecorder {
    fn new() -> ProbeRecorder {
        ProbeRecorder {
            histogram: new_latency_histogram(),
            errors: 0,
            first_error: None,
            first_sent: None,
            slowest: None,
        }
    }

    /// One put of [`PROBE_KEY`], recorded.
    async fn put(&mut self, kv: &mut KvClient, deadline: Duration) {
        let value = vec![b'p'; PROBE_VALUE_BYTES];
        let sent = Instant::now();
        let outcome = tokio::time::timeout(deadline, kv.put(PROBE_KEY, value, None)).await;
        let latency_us = sent.elapsed().as_micros() as u64;
        self.first_sent.get_or_insert(sent);
        match outcome {
            Ok(Ok(_)) => {
                record_latency_us(&mut self.histogram, latency_us);
                if self.slowest.is_none_or(|(us, _)| latency_us > us) {
                    self.slowest = Some((latency_us, sent));
                }
            }
            Ok(Err(e)) => {
                self.errors += 1;
                self.first_error.get_or_insert_with(|| e.to_string());
            }
            Err(_) => {
                self.errors += 1;
                self.first_error
                    .get_or_insert_with(|| format!("put timed out after {deadline:?}"));
            }
        }
    }

    fn report(self) -> ProbePuts {
        let empty = self.histogram.is_empty();
        let q = |quantile| {
            if empty {
                0.0
            } else {
                us_to_ms(self.histogram.value_at_quantile(quantile))
            }
        };
        ProbePuts {
            puts: self.histogram.len(),
            errors: self.errors,
            p50_ms: q(0.5),
            p99_ms: q(0.99),
            max_ms: if empty {
                0.0
            } else {
                us_to_ms(self.histogram.max())
            },
            max_sent_at_s: match (self.first_sent, self.slowest) {
                (Some(first), Some((_, sent))) => sent.duration_since(first).as_secs_f64(),
                _ => 0.0,
            },
            first_error: self.first_error,
        }
    }
}

async fn baseline_puts(kv: &mut KvClient, puts: u64, deadline: Duration) -> ProbePuts {
    let mut recorder = ProbeRecorder::new();
    for _ in 0..puts {
        recorder.put(kv, deadline).await;
    }
    recorder.report()
}

/// States of the range thread, shared with the putting client and the RSS sampler.
const RANGE_CONNECTING: u8 = 0;
const RANGE_IN_FLIGHT: u8 = 1;
const RANGE_DONE: u8 = 2;

/// What the range window measured.
struct RangeWindow {
    range: RangeReport,
    puts: ProbePuts,
    rss_anon_peak_bytes: u64,
    rss_samples: u64,
}

/// The full-prefix range on its own thread, puts of `probe_kv` while it is in flight,
/// `RssAnon` of `pid` sampled on a third thread.
///
/// Errors: [`BenchError::Io`] if a thread cannot be spawned.
async fn range_with_puts(
    url: &str,
    pid: u32,
    probe_kv: &mut KvClient,
    config: &ScaleConfig,
    deadline: Duration,
) -> Result<RangeWindow> {
    let state = Arc::new(AtomicU8::new(RANGE_CONNECTING));
    let range_timeout = Duration::from_millis(config.range_timeout_ms);
    let sampler = {
        let state = Arc::clone(&state);
        spawn_thread("scale-rss", move || sample_rss_anon(pid, &state))?
    };
    let ranger = {
        let state = Arc::clone(&state);
        let url = url.to_string();
        spawn_thread("scale-range", move || {
            full_range(&url, range_timeout, &state)
        })
    };
    let ranger = match ranger {
        Ok(ranger) => ranger,
        Err(e) => {
            state.store(RANGE_DONE, Ordering::Release);
            let _ = sampler.join();
            return Err(e);
        }
    };
    let mut recorder = ProbeRecorder::new();
    let waiting_since = Instant::now();
    // Bounded: the range thread leaves CONNECTING within its connect timeout, and
    // IN_FLIGHT within the range timeout.
    loop {
        match state.load(Ordering::Acquire) {
            RANGE_CONNECTING if waiting_since.elapsed() < range_timeout => {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            RANGE_IN_FLIGHT => recorder.put(probe_kv, deadline).await,
            _ => break,
        }
    }
    let range = ranger.join().unwrap_or_else(|_| RangeReport {
        error: Some("range thread panicked".into()),
        ..RangeReport::default()
    });
    state.store(RANGE_DONE, Ordering::Release);
    let (rss_anon_peak_bytes, rss_samples) = sampler.join().unwrap_or((0, 0));
    Ok(RangeWindow {
        range,
        puts: recorder.report(),
        rss_anon_peak_bytes,
        rss_samples,
    })
}

fn spawn_thread<T: Send + 'static>(
    name: &str,
    body: impl FnOnce() -> T + Send + 'static,
) -> Result<std::thread::JoinHandle<T>> {
    std::thread::Builder::new()
        .name(name.into())
        .spawn(body)
        .map_err(|source| BenchError::Io {
            op: "spawn thread",
            path: PathBuf::from(name),
            source,
        })
}

/// Samples `RssAnon` of `pid` every [`RSS_SAMPLE_MS`] ms until `state` is
/// [`RANGE_DONE`]; returns the peak in bytes and the number of samples. A failed
/// sample (the process gone) ends the sampling.
fn sample_rss_anon(pid: u32, state: &AtomicU8) -> (u64, u64) {
    let mut peak = 0;
    let mut samples = 0;
    // Bounded: the range thread sets RANGE_DONE when its request ends or times out.
    while state.load(Ordering::Acquire) != RANGE_DONE {
        match procstat::rss_anon_bytes(pid) {
            Ok(bytes) => {
                peak = peak.max(bytes);
                samples += 1;
            }
            Err(_) => break,
        }
        std::thread::sleep(Duration::from_millis(RSS_SAMPLE_MS));
    }
    (peak, samples)
}

/// One linearizable range of [`SCALE_PREFIX`] on a fresh connection, on a runtime of
/// its own; sets `state` to [`RANGE_IN_FLIGHT`] when it sends and [`RANGE_DONE`] when
/// the answer is decoded or the request failed.
fn full_range(url: &str, timeout: Duration, state: &AtomicU8) -> RangeReport {
    let failed = |error: String| RangeReport {
        error: Some(error),
        ..RangeReport::default()
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            state.store(RANGE_DONE, Ordering::Release);
            return failed(format!("tokio runtime: {e}"));
        }
    };
    let report = runtime.block_on(async {
        let options = ConnectOptions::new()
            .with_connect_timeout(Duration::from_millis(crate::load::CONNECT_TIMEOUT_MS))
            .with_timeout(timeout);
        let endpoints = [url.to_string()];
        let client = match connect_warm(&endpoints, &options, PROBE_KEY.into(), timeout).await {
            Ok(client) => client,
            Err(e) => return failed(e.to_string()),
        };
        let mut kv = client
            .kv_client()
            .max_decoding_message_size(RANGE_RESPONSE_BYTES_MAX);
        let prefix = GetOptions::new().with_prefix();
        state.store(RANGE_IN_FLIGHT, Ordering::Release);
        let sent = Instant::now();
        let outcome = tokio::time::timeout(timeout, kv.get(SCALE_PREFIX, Some(prefix))).await;
        let duration_s = sent.elapsed().as_secs_f64();
        state.store(RANGE_DONE, Ordering::Release);
        match outcome {
            Ok(Ok(response)) => RangeReport {
                duration_s,
                response_bytes: range_response_bytes(&response),
                kvs: response.kvs().len() as u64,
                error: None,
            },
            Ok(Err(e)) => RangeReport {
                duration_s,
                error: Some(e.to_string()),
                ..RangeReport::default()
            },
            Err(_) => RangeReport {
                duration_s,
                error: Some(format!("timed out after {timeout:?}")),
                ..RangeReport::default()
            },
        }
    });
    state.store(RANGE_DONE, Ordering::Release);
    report
}

/// Waits until the stopped `server`'s ports are free (a killed Cairn's listeners can
/// outlive the reaped process for a while: io_uring teardown), spawns it again and
/// polls a linearizable read of `key` every [`RESTART_POLL_MS`] ms, each attempt on a
/// fresh connection, until one is answered; times the spawn to that answer.
///
/// Errors: [`BenchError::Server`] with the log tail if the ports stay taken, or the
/// server exits or does not answer within `timeout`; [`BenchError::Io`] if it cannot
/// be spawned.
async fn timed_restart(
    server: &mut ServerProcess,
    signal: &'static str,
    stop: Option<Duration>,
    key: &str,
    timeout: Duration,
) -> Result<RestartReport> {
    let ports_free = server
        .wait_ports_free(Duration::from_millis(PORTS_FREE_TIMEOUT_MS))
        .await?;
    let spawned = Instant::now();
    server.respawn()?;
    let url = server.client_url();
    let mut failed_attempts = 0;
    // Bounded by `timeout`: each failed round sleeps RESTART_POLL_MS.
    loop {
        let last_error = match first_read(&url, key).await {
            Ok(found) => {
                return Ok(RestartReport {
                    signal,
                    stop_s: stop.map(|d| d.as_secs_f64()),
                    ports_free_s: ports_free.as_secs_f64(),
                    restart_s: spawned.elapsed().as_secs_f64(),
                    read_found_key: found,
                    failed_attempts,
                })
            }
            Err(e) => e,
        };
        failed_attempts += 1;
        if !server.is_running() {
            return Err(server.failure(format!("exited during the restart after {signal}")));
        }
        if spawned.elapsed() >= timeout {
            return Err(server.failure(format!(
                "no linearizable read answered {timeout:?} after the restart after {signal} \
                 ({failed_attempts} attempts; last error: {last_error})"
            )));
        }
        tokio::time::sleep(Duration::from_millis(RESTART_POLL_MS)).await;
    }
}

/// One connection and one linearizable `Range` of `key`; whether the key was found.
async fn first_read(url: &str, key: &str) -> std::result::Result<bool, String> {
    let attempt = Duration::from_millis(RESTART_ATTEMPT_TIMEOUT_MS);
    let options = ConnectOptions::new()
        .with_connect_timeout(attempt)
        .with_timeout(attempt);
    let read = async {
        let client = Client::connect([url], Some(options))
            .await
            .map_err(|e| e.to_string())?;
        let response = client
            .kv_client()
            .get(key, None)
            .await
            .map_err(|e| e.to_string())?;
        Ok(!response.kvs().is_empty())
    };
    match tokio::time::timeout(attempt, read).await {
        Ok(outcome) => outcome,
        Err(_) => Err(format!("no answer within {attempt:?}")),
    }
}

/// Where a server binary is: `bin` itself when it names a path (contains `/`), else
/// the first `bin` in a directory of `PATH`; `None` when there is no such file.
pub fn find_binary(bin: &Path) -> Option<PathBuf> {
    if bin.components().count() > 1 || bin.is_absolute() {
        return bin.is_file().then(|| bin.to_path_buf());
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(bin))
        .find(|candidate| candidate.is_file())
}

#[cfg(test)]
mod tests {
    use super::measure::int_field_bytes;
    use super::*;

    fn cairn() -> Vec<Target> {
        vec![Target {
            name: "cairn".into(),
            bin: PathBuf::from("target/release/cairn"),
        }]
    }

    #[test]
    fn keys_are_zero_padded() {
        assert_eq!(scale_key(0), "/scale/000000000000");
        assert_eq!(scale_key(999_999), "/scale/000000999999");
        assert_eq!(scale_key(KEYS_MAX - 1), "/scale/000099999999");
        assert!(!PROBE_KEY.starts_with(SCALE_PREFIX));
    }

    #[test]
    fn defaults_are_issue_8s() {
        let c = ScaleConfig::new(cairn());
        assert!(c.validate().is_ok());
        assert_eq!((c.keys, c.value_bytes), (1_000_000, 1024));
        assert_eq!((c.clients, c.connections), (1_000, 100));
        assert_eq!(
            c.server_flags(),
            vec![
                "--quota-backend-bytes",
                "8589934592",
                "--snapshot-count",
                "100000"
            ]
        );
    }

    #[test]
    fn bad_flags_name_the_flag() {
        let error = |change: fn(&mut ScaleConfig)| {
            let mut c = ScaleConfig::new(cairn());
            change(&mut c);
            c.validate().unwrap_err().to_string()
        };
        assert_eq!(
            error(|c| c.keys = 0),
            "invalid --keys: 0 is outside 1..=100000000"
        );
        assert_eq!(
            error(|c| c.value_bytes = VAL_SIZE_MAX + 1),
            "invalid --value-bytes: 1500001 is outside 0..=1500000"
        );
        assert_eq!(
            error(|c| c.connections = 1_001),
            "invalid --connections: 1001 is outside 1..=clients (1000)"
        );
        assert_eq!(
            error(|c| c.clients = 0),
            "invalid --clients: 0 is outside 1..=10000"
        );
        assert_eq!(
            error(|c| c.targets.clear()),
            "invalid --cairn-bin: no target to measure"
        );
        assert!(ScaleConfig {
            snapshot_count: 0,
            ..ScaleConfig::new(cairn())
        }
        .validate()
        .is_err());
    }

    #[test]
    fn varints() {
        assert_eq!(varint_bytes(0), 1);
        assert_eq!(varint_bytes(127), 1);
        assert_eq!(varint_bytes(128), 2);
        assert_eq!(varint_bytes(16_383), 2);
        assert_eq!(varint_bytes(16_384), 3);
        assert_eq!(varint_bytes(u64::MAX), 10);
        assert_eq!(int_field_bytes(-1), 11);
        assert_eq!(int_field_bytes(0), 0);
    }

    #[test]
    fn key_value_size_matches_protobuf() {
        // key "a", create 2, mod 2, version 1, value "b", no lease:
        // 0a 01 61 | 10 02 | 18 02 | 20 01 | 2a 01 62
        assert_eq!(key_value_bytes(1, 2, 2, 1, 1, 0), 12);
        // A loaded key: 19-byte key, revisions below 2^21, 1 KiB value.
        assert_eq!(
            key_value_bytes(19, 1_000_001, 1_000_001, 1, 1024, 0),
            (2 + 19) + 4 + 4 + 2 + (1 + 2 + 1024)
        );
    }

    #[test]
    fn random_values_have_the_size_asked() {
        let mut rng = SplitMix64::new(1);
        assert_eq!(random_value(&mut rng, 0).len(), 0);
        assert_eq!(random_value(&mut rng, 13).len(), 13);
        let a = random_value(&mut rng, 1024);
        let b = random_value(&mut rng, 1024);
        assert_eq!(a.len(), 1024);
        assert_ne!(a, b);
    }

    #[test]
    fn disk_use_counts_files_once() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("sub/a"), vec![1u8; 10_000]).unwrap();
        std::fs::hard_link(dir.path().join("sub/a"), dir.path().join("b")).unwrap();
        std::fs::write(dir.path().join("c"), b"xyz").unwrap();
        let du = disk_use(dir.path()).unwrap();
        let dirs = std::fs::metadata(dir.path()).unwrap().len()
            + std::fs::metadata(dir.path().join("sub")).unwrap().len();
        assert_eq!(du.apparent_bytes, dirs + 10_000 + 3);
        assert!(du.allocated_bytes >= 10_000 + 3, "{du:?}");
        assert!(
            disk_use(&dir.path().join("missing"))
                .unwrap()
                .apparent_bytes
                == 0
        );
    }

    #[test]
    fn binaries_are_found_on_path_or_by_path() {
        assert!(find_binary(Path::new("sh")).is_some());
        assert_eq!(find_binary(Path::new("no-such-binary-cairn")), None);
        assert_eq!(find_binary(Path::new("/nonexistent/etcd")), None);
        assert_eq!(
            find_binary(Path::new("/bin/sh")),
            Some(PathBuf::from("/bin/sh"))
        );
    }

    fn result(target: &str) -> ScaleResult {
        ScaleResult {
            target: target.into(),
            keys_loaded: 1_000,
            load_errors: 0,
            load_skipped: 0,
            load_first_error: None,
            load_s: 2.5,
            load_puts_s: 400.0,
            load_p50_ms: 1.0,
            load_p99_ms: 5.5,
            load_p999_ms: 9.25,
            load_max_ms: 12.0,
            rss_anon_after_load_mib: 50.4,
            disk_allocated_mib: 130.0,
            disk_apparent_mib: 129.6,
            baseline_put: ProbePuts {
                puts: 100,
                p99_ms: 1.5,
                max_ms: 2.0,
                ..ProbePuts::default()
            },
            range: RangeReport {
                duration_s: 0.5,
                response_bytes: 3 * 1024 * 1024,
                kvs: 1_000,
                error: None,
            },
            put_during_range: ProbePuts {
                puts: 7,
                p99_ms: 30.0,
                max_ms: 31.0,
                max_sent_at_s: 0.25,
                ..ProbePuts::default()
            },
            rss_anon_before_range_mib: 50.0,
            rss_anon_peak_range_mib: 80.0,
            rss_samples: 25,
            restart_kill9: None,
            restart_sigterm: RestartReport {
                signal: "SIGTERM",
                stop_s: Some(0.25),
                ports_free_s: 0.05,
                restart_s: 1.5,
                read_found_key: true,
                failed_attempts: 3,
            },
        }
    }

    #[test]
    fn markdown_has_one_column_per_server() {
        let mut etcd = result("etcd");
        etcd.range.error = Some("boom".into());
        etcd.rss_anon_peak_range_mib = 10.0;
        let report = ScaleReport {
            keys: 1_000,
            value_bytes: 1024,
            clients: 10,
            connections: 2,
            quota_backend_bytes: 1 << 33,
            snapshot_count: 100_000,
            servers: vec![result("cairn"), etcd],
            skipped: vec![],
        };
        let text = render_scale_markdown(&report);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[2], "| | cairn | etcd |");
        assert_eq!(lines[3], "|---|---:|---:|");
        assert!(text.contains("| keys loaded | 1000 | 1000 |\n"), "{text}");
        assert!(
            text.contains("| load p50 / p99 / p99.9 / max ms | 1.00 / 5.50 / 9.25 / 12.00 |"),
            "{text}"
        );
        assert!(
            text.contains(
                "| full-prefix range s / response MiB | 0.50 / 3 | failed after 0.50 s |"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "| 1-client put p99 / max ms during range (puts; max sent at s) \
                 | 30.00 / 31.00 (7; 0.25) |"
            ),
            "{text}"
        );
        assert!(
            text.contains("| peak RSS anon above idle during range MiB | 30 | 0 |"),
            "{text}"
        );
        assert!(
            text.contains("| restart s after kill -9 (ports free after s) | - | - |"),
            "{text}"
        );
        assert!(text.contains(" | 1.50 (0.05) | 1.50 (0.05) |\n"), "{text}");
        assert!(text.contains("warning: etcd: range failed: boom"), "{text}");
        let json: serde_json::Value = serde_json::to_value(&report).unwrap();
        assert_eq!(json["servers"][0]["restart_sigterm"]["restart_s"], 1.5);
        assert_eq!(json["servers"][1]["range"]["error"], "boom");
    }
}
