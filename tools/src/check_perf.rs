//! `cairnctl check perf`: etcdctl 3.4's performance check (`etcdctl/ctlv3/command/check.go`)
//! — rate-limited puts of 256-byte random keys and 1 KiB values under a prefix from many
//! clients for a fixed time, then a pass/fail on throughput, slowest request and latency
//! spread, and the prefix deleted again.
//!
//! Loads (etcd's `checkPerfCfgMap`): `s` 150 puts/s from 50 clients, `m` 1,000/s from 200,
//! `l` 8,000/s from 500, `xl` 15,000/s from 1,000; 60 s each. Verdict (etcd's): PASS when no
//! request failed, throughput above 90 % of the load's rate, the slowest request under
//! 0.5 s and the standard deviation of latencies under 0.1 s.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use etcd_client::{DeleteOptions, GetOptions};
use rand::Rng;

use crate::error::invalid;
use crate::load::connect_options;
use crate::{BenchError, ClientTls, Result};

/// Key bytes per put (etcd: `ksize`).
pub const CHECK_PERF_KEY_BYTES: usize = 256;
/// Value bytes per put (etcd: `vsize`).
pub const CHECK_PERF_VALUE_BYTES: usize = 1024;
/// etcd's default prefix of the check's keys.
pub const CHECK_PERF_PREFIX: &str = "/etcdctl-check-perf/";
/// Throughput below this share of the load's rate fails (etcd: `s.RPS/limit <= 0.9`).
pub const THROUGHPUT_SHARE_MIN: f64 = 0.9;
/// A slower request fails the check, s (etcd: `s.Slowest > 0.5`).
pub const SLOWEST_S_MAX: f64 = 0.5;
/// A larger standard deviation of latencies fails the check, s (etcd: `s.Stddev > 0.1`).
pub const STDDEV_S_MAX: f64 = 0.1;
/// Deadline of the final delete of the prefix (etcd: 30 s).
pub const CLEANUP_TIMEOUT: Duration = Duration::from_secs(30);

/// One of etcd's load models.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PerfLoad {
    /// Puts per second over all clients.
    pub rate_per_s: u32,
    /// Concurrent clients, one connection each.
    pub clients: u32,
    /// How long puts are sent.
    pub duration: Duration,
}

impl PerfLoad {
    /// etcd's model for `name` (`s`/`small`, `m`/`medium`, `l`/`large`, `xl`/`xLarge`).
    /// Errors: etcd's `unknown load option NAME`.
    pub fn named(name: &str) -> std::result::Result<PerfLoad, String> {
        let (rate_per_s, clients) = match name {
            "s" | "small" => (150, 50),
            "m" | "medium" => (1_000, 200),
            "l" | "large" => (8_000, 500),
            "xl" | "xLarge" => (15_000, 1_000),
            _ => return Err(format!("unknown load option {name}")),
        };
        Ok(PerfLoad {
            rate_per_s,
            clients,
            duration: Duration::from_secs(60),
        })
    }
}

/// What to check and how.
#[derive(Clone, Debug)]
pub struct PerfConfig {
    /// Client URLs.
    pub endpoints: Vec<String>,
    /// TLS files and credentials.
    pub tls: ClientTls,
    /// The load model.
    pub load: PerfLoad,
    /// Prefix of the keys written; must hold no key at the start.
    pub prefix: String,
    /// Compact at the revision of the final delete (etcd `--auto-compact`).
    pub auto_compact: bool,
    /// Defragment every endpoint at the end (etcd `--auto-defrag`).
    pub auto_defrag: bool,
    /// Deadline of one request, ms (etcdctl's `--command-timeout`).
    pub request_timeout_ms: u64,
}

/// What the check measured (etcd `report.Stats`, seconds).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PerfReport {
    /// Puts that succeeded.
    pub succeeded: u64,
    /// Failed puts by error text.
    pub errors: BTreeMap<String, u64>,
    /// Successful puts per second of the whole run.
    pub rps: f64,
    /// The slowest successful put, s.
    pub slowest_s: f64,
    /// Population standard deviation of the successful puts' latencies, s.
    pub stddev_s: f64,
}

impl PerfReport {
    /// etcdctl's verdict lines (`PASS: Throughput is N writes/s`, ...) and whether the
    /// check passed; the caller prints the lines, then `PASS` or `FAIL`.
    pub fn verdict(&self, load: &PerfLoad) -> (Vec<String>, bool) {
        let mut lines = Vec::new();
        let mut ok = true;
        if !self.errors.is_empty() {
            lines.push("FAIL: too many errors".to_string());
            for (error, count) in &self.errors {
                lines.push(format!("FAIL: ERROR({error}) -> {count}"));
            }
            ok = false;
        }
        let writes = self.rps as i64 + 1;
        if self.rps / f64::from(load.rate_per_s) <= THROUGHPUT_SHARE_MIN {
            lines.push(format!("FAIL: Throughput too low: {writes} writes/s"));
            ok = false;
        } else {
            lines.push(format!("PASS: Throughput is {writes} writes/s"));
        }
        if self.slowest_s > SLOWEST_S_MAX {
            lines.push(format!(
                "Slowest request took too long: {:.6}s",
                self.slowest_s
            ));
            ok = false;
        } else {
            lines.push(format!("PASS: Slowest request took {:.6}s", self.slowest_s));
        }
        if self.stddev_s > STDDEV_S_MAX {
            lines.push(format!("Stddev too high: {:.6}s", self.stddev_s));
            ok = false;
        } else {
            lines.push(format!("PASS: Stddev is {:.6}s", self.stddev_s));
        }
        (lines, ok)
    }
}

/// Latencies folded as they come (Welford), with the errors.
#[derive(Default)]
struct Tally {
    count: u64,
    mean_s: f64,
    m2: f64,
    slowest_s: f64,
    errors: BTreeMap<String, u64>,
}

impl Tally {
    fn record(&mut self, result: std::result::Result<Duration, String>) {
        match result {
            Ok(latency) => {
                let x = latency.as_secs_f64();
                self.count += 1;
                let delta = x - self.mean_s;
                self.mean_s += delta / self.count as f64;
                self.m2 += delta * (x - self.mean_s);
                self.slowest_s = self.slowest_s.max(x);
            }
            Err(error) => *self.errors.entry(error).or_default() += 1,
        }
    }
}

/// Runs the check: refuses a prefix that holds keys (etcd's `prefix "P" has keys. Delete
/// with etcdctl del --prefix P first`, as [`BenchError::Refused`]), sends puts at the
/// load's rate for its duration, deletes the prefix, compacts and defragments if asked.
/// Errors: connection and cleanup failures.
pub async fn run_check_perf(config: &PerfConfig) -> Result<PerfReport> {
    let options = connect_options(config.request_timeout_ms, &config.tls)?;
    let mut clients = Vec::with_capacity(config.load.clients as usize);
    for _ in 0..config.load.clients {
        let client = etcd_client::Client::connect(&config.endpoints, Some(options.clone()))
            .await
            .map_err(|source| BenchError::Connect {
                endpoints: config.endpoints.join(","),
                source: Box::new(source),
            })?;
        clients.push(client);
    }
    let mut first = clients[0].clone();
    let existing = first
        .get(
            config.prefix.as_str(),
            Some(GetOptions::new().with_prefix().with_limit(1)),
        )
        .await
        .map_err(|e| BenchError::Request(e.to_string()))?;
    if !existing.kvs().is_empty() {
        return Err(BenchError::Refused(format!(
            "prefix {:?} has keys. Delete with etcdctl del --prefix {} first",
            config.prefix, config.prefix
        )));
    }
    let tally = Arc::new(Mutex::new(Tally::default()));
    let (requests, queue) = shared_queue(config.load.clients as usize);
    let started = Instant::now();
    let mut workers = Vec::new();
    for client in &clients {
        let mut kv = client.kv_client();
        let queue = queue.clone();
        let tally = tally.clone();
        workers.push(tokio::spawn(async move {
            while let Ok(key) = queue.recv().await {
                let value = vec![0u8; CHECK_PERF_VALUE_BYTES];
                let sent = Instant::now();
                let result = kv.put(key, value, None).await;
                let outcome = result.map(|_| sent.elapsed()).map_err(|e| e.to_string());
                tally.lock().expect("tally lock").record(outcome);
            }
        }));
    }
    drop(queue);
    // etcd: rate.NewLimiter(limit, 1), one put per 1/limit s. Tokio's timer ticks in
    // milliseconds: ticks missed within one are sent at once, so the rate holds on average.
    let mut pace = tokio::time::interval(Duration::from_secs_f64(
        1.0 / f64::from(config.load.rate_per_s),
    ));
    pace.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let end = started + config.load.duration;
    loop {
        pace.tick().await;
        if Instant::now() >= end {
            break;
        }
        let mut key = config.prefix.as_bytes().to_vec();
        key.extend(random_key_body());
        if requests.send(key).await.is_err() {
            break;
        }
    }
    drop(requests);
    for worker in workers {
        worker
            .await
            .map_err(|e| BenchError::Request(format!("put worker: {e}")))?;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let tally = std::mem::take(&mut *tally.lock().expect("tally lock"));
    let cleanup = tokio::time::timeout(
        CLEANUP_TIMEOUT,
        first.delete(
            config.prefix.as_str(),
            Some(DeleteOptions::new().with_prefix()),
        ),
    )
    .await
    .map_err(|_| BenchError::Request("deleting the prefix timed out".into()))?
    .map_err(|e| BenchError::Request(e.to_string()))?;
    if config.auto_compact {
        let revision = cleanup.header().map_or(0, |h| h.revision());
        first
            .compact(revision, None)
            .await
            .map_err(|e| BenchError::Request(format!("compaction: {e}")))?;
    }
    if config.auto_defrag {
        let mut maintenance = first.maintenance_client();
        maintenance
            .defragment()
            .await
            .map_err(|e| BenchError::Request(format!("defragment: {e}")))?;
    }
    let stddev_s = if tally.count == 0 {
        0.0
    } else {
        (tally.m2 / tally.count as f64).sqrt()
    };
    Ok(PerfReport {
        succeeded: tally.count,
        errors: tally.errors,
        rps: tally.count as f64 / elapsed,
        slowest_s: tally.slowest_s,
        stddev_s,
    })
}

/// A key body of [`CHECK_PERF_KEY_BYTES`]: 8 random bytes, then zeros (etcd writes a
/// random varint there; only the size and uniqueness matter, the keys are deleted after).
fn random_key_body() -> Vec<u8> {
    let mut key = vec![0u8; CHECK_PERF_KEY_BYTES];
    rand::thread_rng().fill(&mut key[..8]);
    key
}

/// A bounded multi-consumer queue (etcd's `requests` channel of `clients` slots).
fn shared_queue(capacity: usize) -> (tokio::sync::mpsc::Sender<Vec<u8>>, Arc<SharedReceiver>) {
    let (tx, rx) = tokio::sync::mpsc::channel(capacity.max(1));
    (tx, Arc::new(SharedReceiver(tokio::sync::Mutex::new(rx))))
}

/// A receiver the workers share.
struct SharedReceiver(tokio::sync::Mutex<tokio::sync::mpsc::Receiver<Vec<u8>>>);

impl SharedReceiver {
    async fn recv(&self) -> std::result::Result<Vec<u8>, ()> {
        self.0.lock().await.recv().await.ok_or(())
    }
}

/// Parses `--load` (see [`PerfLoad::named`]) as an invalid-argument error.
pub fn parse_load(name: &str) -> Result<PerfLoad> {
    PerfLoad::named(name).map_err(|e| invalid("load", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loads_are_etcds() {
        assert_eq!(PerfLoad::named("small"), PerfLoad::named("s"));
        assert_eq!(PerfLoad::named("xLarge").unwrap().rate_per_s, 15_000);
        assert_eq!(PerfLoad::named("l").unwrap().clients, 500);
        assert_eq!(
            PerfLoad::named("huge").unwrap_err(),
            "unknown load option huge"
        );
    }

    #[test]
    fn verdict_lines_are_etcdctls() {
        let load = PerfLoad::named("s").unwrap();
        let good = PerfReport {
            succeeded: 9000,
            rps: 149.4,
            slowest_s: 0.0123,
            stddev_s: 0.0012,
            ..Default::default()
        };
        let (lines, ok) = good.verdict(&load);
        assert!(ok);
        assert_eq!(
            lines,
            [
                "PASS: Throughput is 150 writes/s",
                "PASS: Slowest request took 0.012300s",
                "PASS: Stddev is 0.001200s",
            ]
        );
        let mut bad = good.clone();
        bad.rps = 100.0;
        bad.slowest_s = 0.7;
        bad.errors.insert("boom".into(), 3);
        let (lines, ok) = bad.verdict(&load);
        assert!(!ok);
        assert_eq!(lines[0], "FAIL: too many errors");
        assert_eq!(lines[1], "FAIL: ERROR(boom) -> 3");
        assert_eq!(lines[2], "FAIL: Throughput too low: 101 writes/s");
        assert_eq!(lines[3], "Slowest request took too long: 0.700000s");
    }

    #[test]
    fn key_bodies_are_256_bytes_and_differ() {
        let (a, b) = (random_key_body(), random_key_body());
        assert_eq!(a.len(), CHECK_PERF_KEY_BYTES);
        assert_ne!(a, b);
        assert!(a[8..].iter().all(|x| *x == 0));
    }

    #[test]
    fn welford_gives_population_stddev() {
        let mut t = Tally::default();
        for ms in [10, 20, 30, 40] {
            t.record(Ok(Duration::from_millis(ms)));
        }
        t.record(Err("x".into()));
        let stddev = (t.m2 / t.count as f64).sqrt();
        assert!((stddev - 0.011180).abs() < 1e-6, "{stddev}");
        assert_eq!(t.count, 4);
        assert_eq!(t.errors["x"], 1);
    }
}
