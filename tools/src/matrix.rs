//! `cairn-bench compare --workloads ... --rounds N`: a workload matrix run against
//! each server in alternation (round 1: cairn, etcd; round 2: cairn, etcd; ...), every
//! run on a fresh data dir with identical flags, one member or a 3-member loopback
//! cluster; medians, spread (min–max) and ratios of throughput, latency percentiles,
//! server CPU per request and peak server RSS; a Markdown table, JSON and charts.
//!
//! Beside the load workloads the matrix runs two watch workloads, measured in events:
//! `watch` (etcd's watch benchmark: `--conns` streams holding `--clients` watchers on one
//! key, then `--total` puts; events/s delivered and the watch creation latencies) and
//! `watch-latency` (`--clients` watchers on `--conns` streams on the writer's prefix,
//! `--total` sequential puts; events/s and put→event latency p50, p99 and max).

use std::time::Duration;

use serde::Serialize;

use crate::cluster::Cluster;
use crate::compare::{cpu_us_per_op, Target};
use crate::error::{invalid, BenchError, Result};
use crate::failover::median;
use crate::load::{Bench, LoadConfig, Workload};
use crate::procstat;
use crate::selfcpu::{rusage_cpu_us, SelfCpu};
use crate::server::ServerProcess;
use crate::stats::{us_to_ms, Summary};
use crate::watch::{run_watch_latency, PrefixMode, WatchConfig};
use crate::watchbench::{run_watch_bench, WatchBenchConfig};

/// Most rounds one comparison accepts.
pub const ROUNDS_MAX: u32 = 100;
/// How often server RSS is sampled during a run, ms.
pub const MATRIX_RSS_SAMPLE_MS: u64 = 100;

/// The workload names `--workloads` accepts, in etcd benchmark's spelling.
pub const MATRIX_WORKLOADS: [&str; 10] = [
    "put",
    "range",
    "range-serializable",
    "txn-put",
    "txn-mixed",
    "lease-keepalive",
    "stm",
    "kube",
    "watch",
    "watch-latency",
];

/// One workload of the matrix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatrixWorkload {
    /// A load generator workload: requests/s and request latency.
    Load(Workload),
    /// etcd's `watch` benchmark: events/s delivered, watch creation latency.
    Watch,
    /// Put→event latency: events/s and event latency p50, p99, max.
    WatchLatency,
}

impl MatrixWorkload {
    /// The name in reports ([`Workload::name`] for load workloads).
    pub fn name(&self) -> &'static str {
        match self {
            MatrixWorkload::Load(workload) => workload.name(),
            MatrixWorkload::Watch => "watch",
            MatrixWorkload::WatchLatency => "watch-latency",
        }
    }
}

/// The label of metric `key` ([`MATRIX_METRICS`]) for workload `name`: the watch
/// workloads count events, not requests, and `watch`'s latencies are of watch creation.
pub fn metric_label(workload: &str, key: &str) -> String {
    let label = MATRIX_METRICS
        .iter()
        .find(|(k, _, _)| *k == key)
        .map_or(key, |(_, l, _)| l);
    let latency = key.ends_with("_ms");
    match workload {
        "watch" | "watch-latency" if key == "ops_s" => "events/s".into(),
        "watch" | "watch-latency" if key == "server_cpu_us_per_op" => "server CPU µs/event".into(),
        "watch" if latency => format!("create {label}"),
        "watch-latency" if latency => format!("event {label}"),
        _ => label.to_string(),
    }
}

/// Parses a `--workloads` list such as `put,range,txn-put,watch` (names of
/// [`MATRIX_WORKLOADS`]; `txn` means `txn-put`). `txn-mixed` reads `read_per_mille`
/// of its requests. Errors name the unknown entry.
pub fn parse_workloads(text: &str, read_per_mille: u32) -> Result<Vec<MatrixWorkload>> {
    let mut workloads = Vec::new();
    for name in text.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        let load = match name {
            "put" => Workload::Put,
            "range" => Workload::Range {
                serializable: false,
            },
            "range-serializable" | "range-s" => Workload::Range { serializable: true },
            "txn-put" | "txn" => Workload::Txn { ops: 1 },
            "txn-mixed" => Workload::TxnMixed {
                read_per_mille,
                serializable: false,
            },
            "lease-keepalive" => Workload::LeaseKeepalive,
            "stm" => Workload::Stm { keys_per_txn: 1 },
            "kube" => Workload::Kube,
            "watch" => {
                workloads.push(MatrixWorkload::Watch);
                continue;
            }
            "watch-latency" => {
                workloads.push(MatrixWorkload::WatchLatency);
                continue;
            }
            other => {
                return Err(invalid(
                    "workloads",
                    format!(
                        "unknown workload {other:?} (one of {})",
                        MATRIX_WORKLOADS.join(",")
                    ),
                ))
            }
        };
        workloads.push(MatrixWorkload::Load(load));
    }
    if workloads.is_empty() {
        return Err(invalid("workloads", "at least one workload"));
    }
    Ok(workloads)
}

/// Parameters of a matrix comparison.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MatrixConfig {
    /// Servers, in the order each round runs them (A, B).
    pub targets: Vec<Target>,
    /// Workloads, run in this order on the same fresh server in every round (so a
    /// `put` first fills the key space the reads then find).
    pub workloads: Vec<MatrixWorkload>,
    /// Rounds, 1..=[`ROUNDS_MAX`].
    pub rounds: u32,
    /// 3-member loopback clusters instead of one member; clients spread over all.
    pub cluster: bool,
    /// The load flags of every run (endpoints and workload are replaced per run).
    pub load: LoadConfig,
    /// How long a server may take to report healthy, ms.
    pub startup_timeout_ms: u64,
}

impl MatrixConfig {
    /// Checks the matrix and the load flags.
    pub fn validate(&self) -> Result<()> {
        if self.targets.is_empty() {
            return Err(invalid("cairn-bin", "no target to measure"));
        }
        if self.rounds == 0 || self.rounds > ROUNDS_MAX {
            return Err(invalid(
                "rounds",
                format!("{} is outside 1..={ROUNDS_MAX}", self.rounds),
            ));
        }
        if self.workloads.is_empty() {
            return Err(invalid("workloads", "at least one workload"));
        }
        for &workload in &self.workloads {
            match workload {
                MatrixWorkload::Load(workload) => {
                    let mut load = self.load.clone();
                    load.workload = workload;
                    load.validate()?;
                }
                MatrixWorkload::Watch => watch_bench_config(&self.load).validate()?,
                MatrixWorkload::WatchLatency => watch_latency_config(&self.load).validate()?,
            }
        }
        Ok(())
    }
}

/// One run: one workload against one fresh server in one round.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MatrixRun {
    /// Round, from 1.
    pub round: u32,
    /// Target name.
    pub target: String,
    /// Workload name ([`Workload::name`]).
    pub workload: String,
    /// Requests answered or failed.
    pub requests: u64,
    /// Failed requests.
    pub errors: u64,
    /// Successful requests per second.
    pub ops_s: f64,
    /// Latency percentiles, ms.
    pub p50_ms: f64,
    /// 90th percentile, ms (`None`: not measured, `watch-latency`).
    pub p90_ms: Option<f64>,
    /// 99th percentile, ms.
    pub p99_ms: f64,
    /// 99.9th percentile, ms (`None`: not measured, `watch-latency`).
    pub p999_ms: Option<f64>,
    /// Largest latency, ms.
    pub max_ms: f64,
    /// Server CPU (all members) per successful request, µs.
    pub server_cpu_us_per_op: f64,
    /// Peak RSS of the largest member during the run, MiB.
    pub peak_rss_mib: f64,
    /// The bench process's CPU, % of one core.
    pub bench_cpu_pct_of_core: f64,
}

/// The metrics compared, as (key, label, higher is better).
pub const MATRIX_METRICS: [(&str, &str, bool); 9] = [
    ("ops_s", "ops/s", true),
    ("p50_ms", "p50 ms", false),
    ("p90_ms", "p90 ms", false),
    ("p99_ms", "p99 ms", false),
    ("p999_ms", "p99.9 ms", false),
    ("max_ms", "max ms", false),
    ("server_cpu_us_per_op", "server CPU µs/req", false),
    ("peak_rss_mib", "peak RSS MiB", false),
    ("bench_cpu_pct_of_core", "bench CPU % of a core", false),
];

impl MatrixRun {
    /// The value of metric `key` of [`MATRIX_METRICS`], `None` when not measured.
    pub fn metric(&self, key: &str) -> Option<f64> {
        Some(match key {
            "ops_s" => self.ops_s,
            "p50_ms" => self.p50_ms,
            "p90_ms" => return self.p90_ms,
            "p99_ms" => self.p99_ms,
            "p999_ms" => return self.p999_ms,
            "max_ms" => self.max_ms,
            "server_cpu_us_per_op" => self.server_cpu_us_per_op,
            "peak_rss_mib" => self.peak_rss_mib,
            "bench_cpu_pct_of_core" => self.bench_cpu_pct_of_core,
            other => panic!("unknown metric {other}"),
        })
    }
}

/// Median and spread of one metric over the rounds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct MetricSpread {
    /// Median over rounds.
    pub median: f64,
    /// Smallest value.
    pub min: f64,
    /// Largest value.
    pub max: f64,
}

/// One (workload, metric) line: each target's spread and the ratio of the first
/// target's median to the second's.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MatrixLine {
    /// Workload name.
    pub workload: String,
    /// Metric key of [`MATRIX_METRICS`].
    pub metric: String,
    /// Per target, in config order.
    pub targets: Vec<(String, MetricSpread)>,
    /// First target's median / second's; `None` with one target or a zero divisor.
    pub ratio: Option<f64>,
}

/// Everything a matrix comparison measured.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MatrixReport {
    /// Target names in order.
    pub targets: Vec<String>,
    /// Workload names in order.
    pub workloads: Vec<String>,
    /// Rounds run.
    pub rounds: u32,
    /// Members per server (1 or 3).
    pub members: usize,
    /// Every run.
    pub runs: Vec<MatrixRun>,
    /// Medians, spreads and ratios.
    pub lines: Vec<MatrixLine>,
}

impl MatrixReport {
    /// Builds the lines from the runs.
    pub fn new(
        targets: Vec<String>,
        workloads: Vec<String>,
        rounds: u32,
        members: usize,
        runs: Vec<MatrixRun>,
    ) -> MatrixReport {
        let mut lines = Vec::new();
        for workload in &workloads {
            for (key, _, _) in MATRIX_METRICS {
                let spreads: Vec<(String, MetricSpread)> = targets
                    .iter()
                    .filter_map(|target| {
                        let values: Vec<f64> = runs
                            .iter()
                            .filter(|r| &r.target == target && &r.workload == workload)
                            .filter_map(|r| r.metric(key))
                            .collect();
                        let median = median(&values)?;
                        let min = values.iter().copied().fold(f64::INFINITY, f64::min);
                        let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                        Some((target.clone(), MetricSpread { median, min, max }))
                    })
                    .collect();
                if spreads.is_empty() {
                    continue;
                }
                let ratio = match spreads.as_slice() {
                    [a, b, ..] if b.1.median != 0.0 => Some(a.1.median / b.1.median),
                    _ => None,
                };
                lines.push(MatrixLine {
                    workload: workload.clone(),
                    metric: key.to_string(),
                    targets: spreads,
                    ratio,
                });
            }
        }
        MatrixReport {
            targets,
            workloads,
            rounds,
            members,
            runs,
            lines,
        }
    }

    /// The spread of `metric` for `target` on `workload`, if measured.
    pub fn spread(&self, workload: &str, metric: &str, target: &str) -> Option<MetricSpread> {
        self.lines
            .iter()
            .find(|l| l.workload == workload && l.metric == metric)?
            .targets
            .iter()
            .find(|(t, _)| t == target)
            .map(|(_, s)| *s)
    }

    /// The Markdown table: `workload | metric | <target> median (min–max) ... | A/B`,
    /// then a warning line per run that had errors.
    pub fn to_markdown(&self) -> String {
        let mut out = format!(
            "{} round(s), {} member(s) per server; median (min–max) over rounds\n\n| workload | metric |",
            self.rounds, self.members
        );
        for target in &self.targets {
            out.push_str(&format!(" {target} |"));
        }
        let ratio_name = match self.targets.as_slice() {
            [a, b, ..] => format!("{a}/{b}"),
            _ => "ratio".into(),
        };
        out.push_str(&format!(" {ratio_name} |\n|---|---|"));
        out.push_str(&"---:|".repeat(self.targets.len() + 1));
        out.push('\n');
        for line in &self.lines {
            let label = metric_label(&line.workload, &line.metric);
            out.push_str(&format!("| {} | {label} |", line.workload));
            for target in &self.targets {
                match line.targets.iter().find(|(t, _)| t == target) {
                    Some((_, s)) => out.push_str(&format!(
                        " {} ({}–{}) |",
                        fmt_value(s.median),
                        fmt_value(s.min),
                        fmt_value(s.max)
                    )),
                    None => out.push_str(" - |"),
                }
            }
            match line.ratio {
                Some(r) => out.push_str(&format!(" {r:.2} |\n")),
                None => out.push_str(" - |\n"),
            }
        }
        for run in self.runs.iter().filter(|r| r.errors > 0) {
            out.push_str(&format!(
                "\nwarning: round {} {} {}: {} of {} requests failed\n",
                run.round, run.target, run.workload, run.errors, run.requests
            ));
        }
        out
    }
}

/// A value with 3 significant-ish digits: integers above 100, 3 decimals below 1.
fn fmt_value(v: f64) -> String {
    if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else if v.abs() >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

/// One fresh deployment: a single member or a cluster.
enum Deployment {
    One(ServerProcess),
    Cluster(Cluster),
}

impl Deployment {
    async fn start(target: &Target, cluster: bool, startup: Duration) -> Result<Deployment> {
        Ok(if cluster {
            Deployment::Cluster(Cluster::start(&target.name, &target.bin, startup).await?)
        } else {
            Deployment::One(ServerProcess::start(&target.name, &target.bin, startup).await?)
        })
    }

    fn endpoints(&self) -> Vec<String> {
        match self {
            Deployment::One(server) => vec![server.client_url()],
            Deployment::Cluster(cluster) => cluster.client_urls(),
        }
    }

    fn pids(&self) -> Vec<u32> {
        match self {
            Deployment::One(server) => vec![server.pid()],
            Deployment::Cluster(cluster) => {
                (0..cluster.len()).filter_map(|i| cluster.pid(i)).collect()
            }
        }
    }

    fn members(&self) -> usize {
        self.pids().len()
    }
}

/// Total CPU µs of `pids`. Errors: a pid that cannot be sampled (exited).
fn cpu_us(pids: &[u32]) -> Result<u64> {
    pids.iter()
        .map(|&pid| procstat::sample(pid).map(|s| s.cpu_us))
        .sum()
}

/// Samples the largest RSS of `pids` every [`MATRIX_RSS_SAMPLE_MS`] until stopped;
/// the task's result is the peak, bytes.
fn rss_sampler(
    pids: Vec<u32>,
) -> (
    tokio::task::JoinHandle<u64>,
    tokio::sync::oneshot::Sender<()>,
) {
    let (stop, mut stopped) = tokio::sync::oneshot::channel();
    let task = tokio::spawn(async move {
        let mut peak = 0;
        let mut tick = tokio::time::interval(Duration::from_millis(MATRIX_RSS_SAMPLE_MS));
        loop {
            for &pid in &pids {
                if let Ok(sample) = procstat::sample(pid) {
                    peak = peak.max(sample.rss_bytes);
                }
            }
            tokio::select! {
                _ = tick.tick() => {}
                _ = &mut stopped => return peak,
            }
        }
    });
    (task, stop)
}

/// Runs the matrix: for each round, each target in order on a fresh deployment, each
/// workload in order. `progress` receives one line per step (for stderr).
///
/// Errors: invalid config, a server that does not start or dies, a failed connection.
pub async fn run_matrix(
    config: &MatrixConfig,
    mut progress: impl FnMut(&str),
) -> Result<MatrixReport> {
    config.validate()?;
    let startup = Duration::from_millis(config.startup_timeout_ms);
    let mut runs = Vec::new();
    let mut members = 1;
    for round in 1..=config.rounds {
        for target in &config.targets {
            progress(&format!(
                "round {round}: {}: starting {}",
                target.name,
                target.bin.display()
            ));
            let deployment = Deployment::start(target, config.cluster, startup).await?;
            members = deployment.members();
            for &workload in &config.workloads {
                let mut load = config.load.clone();
                load.endpoints = deployment.endpoints();
                load.progress = false;
                let pids = deployment.pids();
                let (sampler, stop) = rss_sampler(pids.clone());
                let before = cpu_us(&pids)?;
                let m = measure(workload, load).await?;
                let after = cpu_us(&pids).map_err(|_| BenchError::Server {
                    name: target.name.clone(),
                    reason: format!("exited during {}", workload.name()),
                })?;
                let _ = stop.send(());
                let peak_rss = sampler.await.unwrap_or(0);
                progress(&format!(
                    "round {round}: {}: {}: {:.0} {}, {} {:.3}, {} errors",
                    target.name,
                    workload.name(),
                    m.per_s,
                    metric_label(workload.name(), "ops_s"),
                    metric_label(workload.name(), "p99_ms"),
                    m.p99_ms,
                    m.errors
                ));
                if m.cpu.saturated() {
                    progress(&m.cpu.warning());
                }
                runs.push(MatrixRun {
                    round,
                    target: target.name.clone(),
                    workload: workload.name().to_string(),
                    requests: m.requests,
                    errors: m.errors,
                    ops_s: m.per_s,
                    p50_ms: m.p50_ms,
                    p90_ms: m.p90_ms,
                    p99_ms: m.p99_ms,
                    p999_ms: m.p999_ms,
                    max_ms: m.max_ms,
                    server_cpu_us_per_op: cpu_us_per_op(before, after, m.ops),
                    peak_rss_mib: peak_rss as f64 / (1024.0 * 1024.0),
                    bench_cpu_pct_of_core: m.cpu.pct_of_core(),
                });
            }
            drop(deployment);
        }
    }
    let targets = config.targets.iter().map(|t| t.name.clone()).collect();
    let workloads = config
        .workloads
        .iter()
        .map(|w| w.name().to_string())
        .collect();
    Ok(MatrixReport::new(
        targets,
        workloads,
        config.rounds,
        members,
        runs,
    ))
}

/// What one workload run measured, before the server's CPU and RSS.
struct Measured {
    /// Requests sent (puts for the watch workloads).
    requests: u64,
    /// Failed requests, and for the watch workloads missing or duplicate events.
    errors: u64,
    /// Successful requests, or events received: the divisor of server CPU.
    ops: u64,
    /// `ops` per second.
    per_s: f64,
    p50_ms: f64,
    p90_ms: Option<f64>,
    p99_ms: f64,
    p999_ms: Option<f64>,
    max_ms: f64,
    /// The bench process's CPU over the run.
    cpu: SelfCpu,
}

impl Measured {
    /// Requests/s and latency of `summary`, `requests` sent in all.
    fn of_summary(summary: &Summary, requests: u64, cpu: SelfCpu) -> Measured {
        Measured {
            requests,
            errors: summary.errors,
            ops: summary.ops,
            per_s: summary.throughput_ops_s(),
            p50_ms: us_to_ms(summary.p50_us),
            p90_ms: Some(us_to_ms(summary.p90_us)),
            p99_ms: us_to_ms(summary.p99_us),
            p999_ms: Some(us_to_ms(summary.p999_us)),
            max_ms: us_to_ms(summary.max_us),
            cpu,
        }
    }
}

/// The `watch` run of the matrix's load flags: `--conns` streams, `--clients` watchers
/// spread over them (at least one each) on one key, `--total` puts.
fn watch_bench_config(load: &LoadConfig) -> WatchBenchConfig {
    let mut config = WatchBenchConfig::new(load.endpoints.clone());
    config.streams = load.conns;
    config.watch_per_stream = (load.clients / load.conns.max(1)).max(1);
    config.put_total = load.total;
    config.key_size = load.key_size;
    config.val_size = load.val_size;
    config.request_timeout_ms = load.request_timeout_ms;
    config.tls = load.tls.clone();
    config
}

/// The `watch-latency` run of the matrix's load flags: `--clients` watchers on `--conns`
/// streams on the writer's prefix, `--total` puts of `--val-size` bytes.
fn watch_latency_config(load: &LoadConfig) -> WatchConfig {
    let mut config = WatchConfig::new(load.endpoints.clone());
    config.watchers = load.clients;
    config.streams = load.conns.min(load.clients);
    config.puts = load.total;
    config.mode = PrefixMode::Shared;
    config.val_size = load.val_size;
    config.request_timeout_ms = load.request_timeout_ms;
    config.duration_max_s = load.duration_max_s;
    config
}

/// Runs `workload` with the load flags `load` (endpoints set).
async fn measure(workload: MatrixWorkload, mut load: LoadConfig) -> Result<Measured> {
    match workload {
        MatrixWorkload::Load(workload) => {
            load.workload = workload;
            let report = Bench::connect(load).await?.run_report().await;
            let requests = report.requests();
            Ok(Measured::of_summary(&report.summary, requests, report.cpu))
        }
        MatrixWorkload::Watch => {
            let report = run_watch_bench(&watch_bench_config(&load)).await?;
            let create = &report.create;
            let missing = report.expected_events.saturating_sub(report.events);
            let delivery_s = report.delivery_us as f64 / 1e6;
            Ok(Measured {
                requests: report.put.ops + report.put.errors,
                errors: report.put.errors + create.errors + missing,
                ops: report.events,
                per_s: if delivery_s > 0.0 {
                    report.events as f64 / delivery_s
                } else {
                    0.0
                },
                ..Measured::of_summary(create, 0, report.cpu)
            })
        }
        MatrixWorkload::WatchLatency => {
            let cpu_before = rusage_cpu_us();
            let started = std::time::Instant::now();
            let report = run_watch_latency(&watch_latency_config(&load), |_| {}).await?;
            let cpu = SelfCpu::measured(
                rusage_cpu_us().saturating_sub(cpu_before),
                started.elapsed().as_micros() as u64,
            );
            let received = report.events_received;
            Ok(Measured {
                requests: report.puts_acked + report.put_errors + report.puts_skipped,
                errors: report.put_errors
                    + report.puts_skipped
                    + report.events_missing
                    + report.events_duplicate,
                ops: received,
                per_s: if report.write_s > 0.0 {
                    received as f64 / report.write_s
                } else {
                    0.0
                },
                p50_ms: report.p50_ms,
                p90_ms: None,
                p99_ms: report.p99_ms,
                p999_ms: None,
                max_ms: report.max_ms,
                cpu,
            })
        }
    }
}

/// A run with fixed latencies and `ops_s`, for the tests of this module and of charts.
#[cfg(test)]
pub(crate) fn sample_run(round: u32, target: &str, workload: &str, ops_s: f64) -> MatrixRun {
    MatrixRun {
        round,
        target: target.into(),
        workload: workload.into(),
        requests: 10,
        errors: 0,
        ops_s,
        p50_ms: 1.0,
        p90_ms: Some(2.0),
        p99_ms: 3.0,
        p999_ms: Some(4.0),
        max_ms: 5.0,
        server_cpu_us_per_op: 10.0,
        peak_rss_mib: 20.0,
        bench_cpu_pct_of_core: 30.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(round: u32, target: &str, ops_s: f64) -> MatrixRun {
        sample_run(round, target, "put", ops_s)
    }

    #[test]
    fn medians_spreads_and_ratios() {
        let runs = vec![
            run(1, "cairn", 100.0),
            run(1, "etcd", 50.0),
            run(2, "cairn", 300.0),
            run(2, "etcd", 50.0),
            run(3, "cairn", 200.0),
            run(3, "etcd", 100.0),
        ];
        let report = MatrixReport::new(
            vec!["cairn".into(), "etcd".into()],
            vec!["put".into()],
            3,
            1,
            runs,
        );
        let cairn = report.spread("put", "ops_s", "cairn").unwrap();
        assert_eq!((cairn.median, cairn.min, cairn.max), (200.0, 100.0, 300.0));
        let line = report.lines.iter().find(|l| l.metric == "ops_s").unwrap();
        assert_eq!(line.ratio, Some(4.0));
        let table = report.to_markdown();
        assert!(
            table.contains("| put | ops/s | 200 (100–300) | 50.00 (50.00–100) | 4.00 |"),
            "{table}"
        );
        assert_eq!(report.lines.len(), MATRIX_METRICS.len());
    }

    #[test]
    fn watch_latency_rows_leave_out_unmeasured_percentiles() {
        let mut watch = sample_run(1, "cairn", "watch-latency", 5000.0);
        watch.p90_ms = None;
        watch.p999_ms = None;
        let report = MatrixReport::new(
            vec!["cairn".into()],
            vec!["watch-latency".into()],
            1,
            1,
            vec![watch],
        );
        assert_eq!(report.lines.len(), MATRIX_METRICS.len() - 2);
        assert!(report.spread("watch-latency", "p90_ms", "cairn").is_none());
        let table = report.to_markdown();
        assert!(table.contains("| watch-latency | events/s | 5000 (5000–5000) |"));
        assert!(table.contains("| watch-latency | event p99 ms | 3.00 (3.00–3.00) |"));
        assert!(!table.contains("p90"), "{table}");
        assert_eq!(metric_label("watch", "p50_ms"), "create p50 ms");
        assert_eq!(metric_label("put", "ops_s"), "ops/s");
    }

    #[test]
    fn workload_lists() {
        assert_eq!(
            parse_workloads("put,txn,watch,txn-mixed", 250).unwrap(),
            vec![
                MatrixWorkload::Load(Workload::Put),
                MatrixWorkload::Load(Workload::Txn { ops: 1 }),
                MatrixWorkload::Watch,
                MatrixWorkload::Load(Workload::TxnMixed {
                    read_per_mille: 250,
                    serializable: false
                }),
            ]
        );
        assert!(parse_workloads("put,nope", 500).is_err());
        assert!(parse_workloads("", 500).is_err());
        assert_eq!(
            parse_workloads(&MATRIX_WORKLOADS.join(","), 500)
                .unwrap()
                .len(),
            MATRIX_WORKLOADS.len()
        );
    }
}
