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

use etcd_client::{Client, CompactionOptions, DeleteOptions, GetOptions};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use rand::Rng;

use crate::ctl::{exit, CtlError, CtlResult};
use crate::load::connect_options;
use crate::ClientTls;

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
/// Deadline of the final delete, the compaction and each defragmentation (etcd: 30 s).
pub const CLEANUP_TIMEOUT: Duration = Duration::from_secs(30);
/// Deadline of one put, ms: etcdctl sends the puts without one; a minute stands for none.
pub const CHECK_PUT_TIMEOUT_MS: u64 = 60_000;

/// The model (`s`, `m`, `l` or `xl`) a `--load` name stands for (etcd's
/// `checkPerfAlias`/`checkDatascaleAlias`: `small`, `medium`, `large`, `xLarge` too).
/// Errors: etcd's `unknown load option NAME`.
pub fn load_model(name: &str) -> std::result::Result<&'static str, String> {
    Ok(match name {
        "s" | "small" => "s",
        "m" | "medium" => "m",
        "l" | "large" => "l",
        "xl" | "xLarge" => "xl",
        _ => return Err(format!("unknown load option {name}")),
    })
}

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
    /// etcd's model for `name` (see [`load_model`]; etcd's `checkPerfCfgMap`).
    /// Errors: etcd's `unknown load option NAME`.
    pub fn named(name: &str) -> std::result::Result<PerfLoad, String> {
        let (rate_per_s, clients) = match load_model(name)? {
            "s" => (150, 50),
            "m" => (1_000, 200),
            "l" => (8_000, 500),
            _ => (15_000, 1_000),
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

/// Latencies folded as they come (Welford), with the errors (etcd's `report.Stats`).
#[derive(Default)]
pub(crate) struct Tally {
    count: u64,
    mean_s: f64,
    m2: f64,
    slowest_s: f64,
    pub(crate) errors: BTreeMap<String, u64>,
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

    /// Population standard deviation of the latencies, s (0 without any).
    fn stddev_s(&self) -> f64 {
        if self.count == 0 {
            0.0
        } else {
            (self.m2 / self.count as f64).sqrt()
        }
    }
}

/// A failed request as etcdctl exits on it: `Error: <text>`, exit status 1.
pub(crate) fn request_error(e: impl std::fmt::Display) -> CtlError {
    CtlError::new(exit::ERROR, e.to_string())
}

/// `count` clients of `endpoints`, one connection each (etcdctl's `mustClient` per
/// client). Errors: the first failed connection.
pub(crate) async fn connect_clients(
    endpoints: &[String],
    tls: &ClientTls,
    count: u32,
) -> CtlResult<Vec<Client>> {
    let options = connect_options(CHECK_PUT_TIMEOUT_MS, tls).map_err(request_error)?;
    let mut clients = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let client = Client::connect(endpoints, Some(options.clone()))
            .await
            .map_err(request_error)?;
        clients.push(client);
    }
    Ok(clients)
}

/// etcdctl's refusal of a prefix that holds keys: `prefix "P" has keys. Delete with
/// etcdctl del --prefix P first`, exit status 3 (ExitInvalidInput).
pub(crate) async fn refuse_used_prefix(client: &mut Client, prefix: &str) -> CtlResult {
    let existing = client
        .get(prefix, Some(GetOptions::new().with_prefix().with_limit(1)))
        .await
        .map_err(request_error)?;
    if existing.kvs().is_empty() {
        return Ok(());
    }
    Err(CtlError::new(
        exit::INVALID_INPUT,
        format!("prefix {prefix:?} has keys. Delete with etcdctl del --prefix {prefix} first"),
    ))
}

/// A bar of `len` steps on stdout, where etcdctl draws its cheggaaa/pb bar (format
/// `Bom !`: `B`, filled `o`, head `m`, empty ` `, `!`). indicatif hides it when stdout
/// is not a terminal, so pipes see only the result lines.
pub(crate) fn progress_bar(len: u64) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stdout());
    if let Ok(style) = ProgressStyle::with_template(" {pos} / {len} B{wide_bar}! {percent}% {eta}")
    {
        bar.set_style(style.progress_chars("om "));
    }
    bar
}

/// Finishes `bar` as pb's `Finish` does: the full bar stays, the line ends.
pub(crate) fn finish_bar(bar: &ProgressBar) {
    bar.finish();
    if !bar.is_hidden() {
        println!();
    }
}

/// Put workers, one per client, taking keys from a queue of `clients` slots (etcd's
/// `requests` channel) and putting `value` under each; every result goes to a [`Tally`]
/// and, when given, one step of a progress bar.
pub(crate) struct Putters {
    requests: tokio::sync::mpsc::Sender<Vec<u8>>,
    workers: Vec<tokio::task::JoinHandle<()>>,
    tally: Arc<Mutex<Tally>>,
}

impl Putters {
    /// Starts one worker per client.
    pub(crate) fn start(clients: &[Client], value: Vec<u8>, bar: Option<ProgressBar>) -> Putters {
        let tally = Arc::new(Mutex::new(Tally::default()));
        let (requests, queue) = shared_queue(clients.len());
        let value = Arc::new(value);
        let workers = clients
            .iter()
            .map(|client| {
                let mut kv = client.kv_client();
                let (queue, tally, value, bar) =
                    (queue.clone(), tally.clone(), value.clone(), bar.clone());
                tokio::spawn(async move {
                    while let Ok(key) = queue.recv().await {
                        let sent = Instant::now();
                        let result = kv.put(key, value.to_vec(), None).await;
                        let outcome = result.map(|_| sent.elapsed()).map_err(|e| e.to_string());
                        tally.lock().expect("tally lock").record(outcome);
                        if let Some(bar) = &bar {
                            bar.inc(1);
                        }
                    }
                })
            })
            .collect();
        Putters {
            requests,
            workers,
            tally,
        }
    }

    /// Queues one put of `key`; waits while the queue is full.
    pub(crate) async fn send(&self, key: Vec<u8>) {
        // The workers only stop once this sender is dropped in `finish`.
        let sent = self.requests.send(key).await;
        assert!(sent.is_ok(), "put workers stopped early");
    }

    /// Closes the queue, waits for every queued put, returns the tally.
    pub(crate) async fn finish(self) -> CtlResult<Tally> {
        drop(self.requests);
        for worker in self.workers {
            worker
                .await
                .map_err(|e| request_error(format!("put worker: {e}")))?;
        }
        let tally = std::mem::take(&mut *self.tally.lock().expect("tally lock"));
        Ok(tally)
    }
}

/// What etcdctl does after the puts: deletes `prefix` (30 s deadline), then with
/// `--auto-compact` compacts physically at the delete's revision and with
/// `--auto-defrag` defragments every endpoint, printing etcdctl's lines
/// (`Compacting with revision N`, `Compacted with revision N`, `Defragmenting "EP"`,
/// `Defragmented "EP"`; etcdctl's `compact` and `defrag` of `util.go`).
/// Errors: the failed request (etcdctl's ExitError).
pub(crate) async fn clean_up(
    clients: &[Client],
    (endpoints, tls): (&[String], &ClientTls),
    prefix: &str,
    (auto_compact, auto_defrag): (bool, bool),
) -> CtlResult {
    let mut first = clients[0].clone();
    let deleted = tokio::time::timeout(
        CLEANUP_TIMEOUT,
        first.delete(prefix, Some(DeleteOptions::new().with_prefix())),
    )
    .await
    .map_err(|_| request_error("context deadline exceeded"))?
    .map_err(request_error)?;
    if auto_compact {
        let revision = deleted.header().map_or(0, |h| h.revision());
        println!("Compacting with revision {revision}");
        let options = CompactionOptions::new().with_physical();
        tokio::time::timeout(CLEANUP_TIMEOUT, first.compact(revision, Some(options)))
            .await
            .map_err(|_| request_error("context deadline exceeded"))?
            .map_err(request_error)?;
        println!("Compacted with revision {revision}");
    }
    if auto_defrag {
        for endpoint in endpoints {
            println!("Defragmenting {endpoint:?}");
            let options = connect_options(CHECK_PUT_TIMEOUT_MS, tls).map_err(request_error)?;
            let defragmented = async {
                let mut one = Client::connect([endpoint], Some(options)).await?;
                one.defragment().await
            };
            tokio::time::timeout(CLEANUP_TIMEOUT, defragmented)
                .await
                .map_err(|_| request_error("context deadline exceeded"))?
                .map_err(request_error)?;
            println!("Defragmented {endpoint:?}");
        }
    }
    Ok(())
}

/// Runs `check perf`: refuses a prefix that holds keys, sends puts at the load's rate for
/// its duration (a bar of seconds on a terminal), cleans up ([`clean_up`]) and returns
/// the measurements. Errors: etcdctl's texts and exit statuses.
pub async fn run_check_perf(config: &PerfConfig) -> CtlResult<PerfReport> {
    let clients = connect_clients(&config.endpoints, &config.tls, config.load.clients).await?;
    refuse_used_prefix(&mut clients[0].clone(), &config.prefix).await?;
    let seconds = config.load.duration.as_secs().max(1);
    let bar = progress_bar(seconds);
    let putters = Putters::start(&clients, vec![0; CHECK_PERF_VALUE_BYTES], None);
    let started = Instant::now();
    let ticker = {
        let bar = bar.clone();
        tokio::spawn(async move {
            for _ in 0..seconds {
                tokio::time::sleep(Duration::from_secs(1)).await;
                bar.inc(1);
            }
            finish_bar(&bar);
        })
    };
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
        key.extend(random_key_body(CHECK_PERF_KEY_BYTES));
        putters.send(key).await;
    }
    let tally = putters.finish().await?;
    let elapsed = started.elapsed().as_secs_f64();
    ticker
        .await
        .map_err(|e| request_error(format!("progress: {e}")))?;
    let flags = (config.auto_compact, config.auto_defrag);
    clean_up(
        &clients,
        (&config.endpoints, &config.tls),
        &config.prefix,
        flags,
    )
    .await?;
    Ok(PerfReport {
        succeeded: tally.count,
        rps: tally.count as f64 / elapsed,
        slowest_s: tally.slowest_s,
        stddev_s: tally.stddev_s(),
        errors: tally.errors,
    })
}

/// The flags `check perf` and `check datascale` share (etcdctl's `--load`, `--prefix`,
/// `--auto-compact`, `--auto-defrag`) and the global ones they use.
#[derive(Clone, Debug, Default)]
pub struct CheckFlags {
    /// Client URLs (etcdctl's `--endpoints`, as given).
    pub endpoints: Vec<String>,
    /// TLS files and credentials.
    pub tls: ClientTls,
    /// etcdctl's `--insecure-skip-tls-verify` (datascale's `/metrics` fetch).
    pub insecure_skip_tls_verify: bool,
    /// The load's name ([`load_model`]).
    pub load: String,
    /// Prefix of the keys written; must hold no key at the start.
    pub prefix: String,
    /// Compact at the revision of the final delete.
    pub auto_compact: bool,
    /// Defragment every endpoint at the end.
    pub auto_defrag: bool,
}

/// Runs `f` on a new tokio runtime (`etcd-client` needs one; cairnctl's other commands
/// run on glommio).
pub(crate) fn block_on_tokio<T>(
    f: impl std::future::Future<Output = CtlResult<T>>,
) -> CtlResult<T> {
    tokio::runtime::Runtime::new()
        .map_err(request_error)?
        .block_on(f)
}

/// `cairnctl check perf` whole, puts sent for `duration` (etcdctl: 60 s): the load by
/// name (etcdctl's ExitBadFeature, 4, for an unknown one), the verdict lines and
/// `PASS`/`FAIL` on stdout; FAIL exits with status 1 and no message, as etcdctl's
/// `os.Exit(ExitError)`.
pub fn check_perf_command(flags: &CheckFlags, duration: Duration) -> CtlResult {
    let mut load = PerfLoad::named(&flags.load).map_err(|e| CtlError::new(exit::BAD_FEATURE, e))?;
    load.duration = duration;
    let config = PerfConfig {
        endpoints: flags.endpoints.clone(),
        tls: flags.tls.clone(),
        load,
        prefix: flags.prefix.clone(),
        auto_compact: flags.auto_compact,
        auto_defrag: flags.auto_defrag,
    };
    let report = block_on_tokio(run_check_perf(&config))?;
    let (lines, ok) = report.verdict(&config.load);
    for line in lines {
        println!("{line}");
    }
    if ok {
        println!("PASS");
        Ok(())
    } else {
        println!("FAIL");
        Err(CtlError::new(exit::ERROR, String::new()))
    }
}

/// A key body of `bytes`: 8 random bytes, then zeros (etcd writes a random varint there;
/// only the size and uniqueness matter, the keys are deleted after).
pub(crate) fn random_key_body(bytes: usize) -> Vec<u8> {
    let mut key = vec![0u8; bytes];
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
        let (a, b) = (random_key_body(CHECK_PERF_KEY_BYTES), random_key_body(8));
        assert_eq!(a.len(), CHECK_PERF_KEY_BYTES);
        assert_ne!(a[..8], b[..]);
        assert!(a[8..].iter().all(|x| *x == 0));
    }

    #[test]
    fn welford_gives_population_stddev() {
        let mut t = Tally::default();
        for ms in [10, 20, 30, 40] {
            t.record(Ok(Duration::from_millis(ms)));
        }
        t.record(Err("x".into()));
        let stddev = t.stddev_s();
        assert!((stddev - 0.011180).abs() < 1e-6, "{stddev}");
        assert_eq!(t.count, 4);
        assert_eq!(t.errors["x"], 1);
    }
}
