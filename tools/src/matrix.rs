//! `cairn-bench compare --workloads ... --rounds N`: a workload matrix run against
//! each server in alternation (round 1: cairn, etcd; round 2: cairn, etcd; ...), every
//! run on a fresh data dir with identical flags, one member or a 3-member loopback
//! cluster; medians, spread (min–max) and ratios of throughput, latency percentiles,
//! server CPU per request and peak server RSS; a Markdown table, JSON and charts.

use std::time::Duration;

use serde::Serialize;

use crate::cluster::Cluster;
use crate::compare::{cpu_us_per_op, Target};
use crate::error::{invalid, BenchError, Result};
use crate::failover::median;
use crate::load::{Bench, LoadConfig, Workload};
use crate::procstat;
use crate::server::ServerProcess;
use crate::stats::us_to_ms;

/// Most rounds one comparison accepts.
pub const ROUNDS_MAX: u32 = 100;
/// How often server RSS is sampled during a run, ms.
pub const MATRIX_RSS_SAMPLE_MS: u64 = 100;

/// The workload names `--workloads` accepts, in etcd benchmark's spelling.
pub const MATRIX_WORKLOADS: [&str; 8] = [
    "put",
    "range",
    "range-serializable",
    "txn-put",
    "txn-mixed",
    "lease-keepalive",
    "stm",
    "kube",
];

/// Parses a `--workloads` list such as `put,range,txn-put` (names of
/// [`MATRIX_WORKLOADS`]; `txn` means `txn-put`). Errors name the unknown entry.
pub fn parse_workloads(text: &str) -> Result<Vec<Workload>> {
    let mut workloads = Vec::new();
    for name in text.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        workloads.push(match name {
            "put" => Workload::Put,
            "range" => Workload::Range {
                serializable: false,
            },
            "range-serializable" | "range-s" => Workload::Range { serializable: true },
            "txn-put" | "txn" => Workload::Txn { ops: 1 },
            "txn-mixed" => Workload::TxnMixed {
                read_per_mille: 500,
                serializable: false,
            },
            "lease-keepalive" => Workload::LeaseKeepalive,
            "stm" => Workload::Stm { keys_per_txn: 1 },
            "kube" => Workload::Kube,
            other => {
                return Err(invalid(
                    "workloads",
                    format!(
                        "unknown workload {other:?} (one of {})",
                        MATRIX_WORKLOADS.join(",")
                    ),
                ))
            }
        });
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
    pub workloads: Vec<Workload>,
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
            let mut load = self.load.clone();
            load.workload = workload;
            load.validate()?;
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
    /// 90th percentile, ms.
    pub p90_ms: f64,
    /// 99th percentile, ms.
    pub p99_ms: f64,
    /// 99.9th percentile, ms.
    pub p999_ms: f64,
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
    /// The value of metric `key` of [`MATRIX_METRICS`].
    pub fn metric(&self, key: &str) -> f64 {
        match key {
            "ops_s" => self.ops_s,
            "p50_ms" => self.p50_ms,
            "p90_ms" => self.p90_ms,
            "p99_ms" => self.p99_ms,
            "p999_ms" => self.p999_ms,
            "max_ms" => self.max_ms,
            "server_cpu_us_per_op" => self.server_cpu_us_per_op,
            "peak_rss_mib" => self.peak_rss_mib,
            "bench_cpu_pct_of_core" => self.bench_cpu_pct_of_core,
            other => panic!("unknown metric {other}"),
        }
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
                            .map(|r| r.metric(key))
                            .collect();
                        let median = median(&values)?;
                        let min = values.iter().copied().fold(f64::INFINITY, f64::min);
                        let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                        Some((target.clone(), MetricSpread { median, min, max }))
                    })
                    .collect();
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
            let label = MATRIX_METRICS
                .iter()
                .find(|(k, _, _)| *k == line.metric)
                .map_or(line.metric.as_str(), |(_, l, _)| l);
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
                load.workload = workload;
                load.endpoints = deployment.endpoints();
                load.progress = false;
                let bench = Bench::connect(load).await?;
                let pids = deployment.pids();
                let (sampler, stop) = rss_sampler(pids.clone());
                let before = cpu_us(&pids)?;
                let report = bench.run_report().await;
                let after = cpu_us(&pids).map_err(|_| BenchError::Server {
                    name: target.name.clone(),
                    reason: format!("exited during {}", workload.name()),
                })?;
                let _ = stop.send(());
                let peak_rss = sampler.await.unwrap_or(0);
                let s = &report.summary;
                progress(&format!(
                    "round {round}: {}: {}: {:.0} ops/s, p99 {:.3} ms, {} errors",
                    target.name,
                    workload.name(),
                    s.throughput_ops_s(),
                    us_to_ms(s.p99_us),
                    s.errors
                ));
                if report.cpu.saturated() {
                    progress(&report.cpu.warning());
                }
                runs.push(MatrixRun {
                    round,
                    target: target.name.clone(),
                    workload: workload.name().to_string(),
                    requests: report.requests(),
                    errors: s.errors,
                    ops_s: s.throughput_ops_s(),
                    p50_ms: us_to_ms(s.p50_us),
                    p90_ms: us_to_ms(s.p90_us),
                    p99_ms: us_to_ms(s.p99_us),
                    p999_ms: us_to_ms(s.p999_us),
                    max_ms: us_to_ms(s.max_us),
                    server_cpu_us_per_op: cpu_us_per_op(before, after, s.ops),
                    peak_rss_mib: peak_rss as f64 / (1024.0 * 1024.0),
                    bench_cpu_pct_of_core: report.cpu.pct_of_core(),
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
        p90_ms: 2.0,
        p99_ms: 3.0,
        p999_ms: 4.0,
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
    fn workload_lists() {
        assert_eq!(
            parse_workloads("put,txn").unwrap(),
            vec![Workload::Put, Workload::Txn { ops: 1 }]
        );
        assert!(parse_workloads("put,nope").is_err());
        assert!(parse_workloads("").is_err());
        assert_eq!(
            parse_workloads(&MATRIX_WORKLOADS.join(",")).unwrap().len(),
            8
        );
    }
}
