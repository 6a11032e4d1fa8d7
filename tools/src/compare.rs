//! The side-by-side harness: each target server in turn, the same put phases against
//! each, server CPU per put from `/proc/<pid>/stat` and RSS from `/proc/<pid>/status`.

use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;

use crate::error::{invalid, BenchError, Result};
use crate::load::{Bench, LoadConfig, Workload, CLIENTS_MAX};
use crate::procstat;
use crate::server::ServerProcess;
use crate::stats::us_to_ms;

/// A server binary to measure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Name in the table ("cairn", "etcd").
    pub name: String,
    /// Path of the binary, or a name looked up on `PATH`.
    pub bin: PathBuf,
}

/// Parameters of a comparison.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompareConfig {
    /// Servers, measured one after another in this order.
    pub targets: Vec<Target>,
    /// One put phase per entry, with that many concurrent clients.
    pub clients: Vec<u32>,
    /// Puts per phase.
    pub total: u64,
    /// Connections per phase; `None` picks [`default_conns`] of the phase's clients.
    pub conns: Option<u32>,
    /// Key size, bytes.
    pub key_size: u32,
    /// Value size, bytes.
    pub val_size: u32,
    /// Distinct keys.
    pub key_space: u64,
    /// How long a server may take to report healthy, ms.
    pub startup_timeout_ms: u64,
    /// Deadline of one request, ms.
    pub request_timeout_ms: u64,
    /// Limit on one phase, s.
    pub phase_duration_max_s: u64,
    /// Idle window sampled before the put phases (after [`IDLE_SETTLE`]), s; 0 skips it.
    pub idle_s: u64,
}

/// Pause between a server reporting healthy and its idle window, so start-up work
/// (elections, the first checkpoint) is not counted as idle.
pub const IDLE_SETTLE: Duration = Duration::from_secs(2);
/// Longest idle window, s.
pub const IDLE_S_MAX: u64 = 600;

impl CompareConfig {
    /// Defaults sized for a 2-core machine (about 20 s per target against etcd 3.4 on
    /// the development VMs; each phase is capped at 120 s): phases of 1 and 100
    /// clients, 20 000 puts each, 8-byte keys, 256-byte values, 100 000 keys.
    pub fn new(targets: Vec<Target>) -> CompareConfig {
        CompareConfig {
            targets,
            clients: vec![1, 100],
            total: 20_000,
            conns: None,
            key_size: 8,
            val_size: 256,
            key_space: 100_000,
            startup_timeout_ms: 20_000,
            request_timeout_ms: 10_000,
            phase_duration_max_s: 120,
            idle_s: 10,
        }
    }

    /// The load config of the phase with `clients` clients against `endpoint`.
    pub fn phase(&self, endpoint: String, clients: u32) -> LoadConfig {
        let mut load = LoadConfig::new(vec![endpoint], Workload::Put);
        load.clients = clients;
        load.conns = self
            .conns
            .unwrap_or_else(|| default_conns(clients))
            .min(clients);
        load.total = self.total;
        load.key_size = self.key_size;
        load.val_size = self.val_size;
        load.key_space = self.key_space;
        load.request_timeout_ms = self.request_timeout_ms;
        load.duration_max_s = self.phase_duration_max_s;
        load
    }

    /// Checks the comparison and every phase's load config.
    pub fn validate(&self) -> Result<()> {
        if self.targets.is_empty() {
            return Err(invalid("cairn-bin", "no target to measure"));
        }
        if self.idle_s > IDLE_S_MAX {
            return Err(invalid(
                "idle-s",
                format!("{} is outside 0..={IDLE_S_MAX}", self.idle_s),
            ));
        }
        if self.clients.is_empty() {
            return Err(invalid("clients", "at least one phase is required"));
        }
        if self.startup_timeout_ms == 0 || self.startup_timeout_ms > 600_000 {
            return Err(invalid(
                "startup-timeout-ms",
                format!("{} is outside 1..=600000", self.startup_timeout_ms),
            ));
        }
        for &clients in &self.clients {
            if clients == 0 || clients > CLIENTS_MAX {
                return Err(invalid(
                    "clients",
                    format!("{clients} is outside 1..={CLIENTS_MAX}"),
                ));
            }
            self.phase("http://127.0.0.1:2379".into(), clients)
                .validate()?;
        }
        Ok(())
    }
}

/// Connections for `clients` clients when `--conns` is not given: one per 10 clients,
/// at least 1 (etcd's benchmark docs use 100 clients over 10–100 connections).
pub fn default_conns(clients: u32) -> u32 {
    clients.div_ceil(10).max(1)
}

/// One line of the table.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Row {
    /// Target name.
    pub target: String,
    /// Concurrent clients of the phase.
    pub clients: u32,
    /// Successful puts per second.
    pub ops_s: f64,
    /// Median put latency, ms.
    pub p50_ms: f64,
    /// 99th percentile put latency, ms.
    pub p99_ms: f64,
    /// Server CPU time (utime + stime) during the phase divided by successful puts, µs.
    pub server_cpu_us_per_op: f64,
    /// Server resident set size at the end of the phase, MiB.
    pub rss_mib: f64,
    /// Failed puts.
    pub errors: u64,
    /// Server CPU time while idle (no client connected) before the phases, in ms per
    /// 10 s of wall time; `None` when the idle window was skipped.
    pub idle_cpu_ms_per_10s: Option<f64>,
}

/// CPU ms per 10 s of wall time from two samples `window` apart.
pub fn cpu_ms_per_10s(cpu_before_us: u64, cpu_after_us: u64, window: Duration) -> f64 {
    if window.is_zero() {
        return 0.0;
    }
    cpu_after_us.saturating_sub(cpu_before_us) as f64 / 1_000.0 * 10.0 / window.as_secs_f64()
}

/// Server CPU µs per successful op; 0 when no op succeeded.
pub fn cpu_us_per_op(cpu_before_us: u64, cpu_after_us: u64, ops: u64) -> f64 {
    if ops == 0 {
        return 0.0;
    }
    cpu_after_us.saturating_sub(cpu_before_us) as f64 / ops as f64
}

/// The markdown table: `target | clients | ops/s | p50 ms | p99 ms | server CPU µs/op |
/// RSS MiB | idle CPU ms/10 s`, one row per phase, followed by a line per phase that had
/// errors.
pub fn render_markdown(rows: &[Row]) -> String {
    let mut out = String::from(
        "| target | clients | ops/s | p50 ms | p99 ms | server CPU µs/op | RSS MiB | idle CPU ms/10 s |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for row in rows {
        let idle = row
            .idle_cpu_ms_per_10s
            .map_or_else(|| "-".to_string(), |ms| format!("{ms:.0}"));
        out.push_str(&format!(
            "| {} | {} | {:.0} | {:.3} | {:.3} | {:.0} | {:.1} | {} |\n",
            row.target,
            row.clients,
            row.ops_s,
            row.p50_ms,
            row.p99_ms,
            row.server_cpu_us_per_op,
            row.rss_mib,
            idle
        ));
    }
    for row in rows.iter().filter(|row| row.errors > 0) {
        out.push_str(&format!(
            "\nwarning: {} with {} clients had {} failed puts\n",
            row.target, row.clients, row.errors
        ));
    }
    out
}

/// Runs every target in turn: start it, run each put phase, sample the server's CPU
/// just before and after each phase's timed part, kill it. `progress` receives one
/// line per step (for stderr).
///
/// Errors: invalid config, a server that does not start, a connection that fails, or
/// `/proc` sampling failing (e.g. the server died mid-phase).
pub async fn run_compare(
    config: &CompareConfig,
    mut progress: impl FnMut(&str),
) -> Result<Vec<Row>> {
    config.validate()?;
    let startup = Duration::from_millis(config.startup_timeout_ms);
    let mut rows = Vec::new();
    for target in &config.targets {
        progress(&format!(
            "{}: starting {}",
            target.name,
            target.bin.display()
        ));
        let mut server = ServerProcess::start(&target.name, &target.bin, startup).await?;
        let idle_cpu_ms_per_10s = if config.idle_s > 0 {
            let window = Duration::from_secs(config.idle_s);
            progress(&format!("{}: idle for {} s", target.name, config.idle_s));
            tokio::time::sleep(IDLE_SETTLE).await;
            let before = procstat::sample(server.pid())?;
            tokio::time::sleep(window).await;
            let after = procstat::sample(server.pid())?;
            Some(cpu_ms_per_10s(before.cpu_us, after.cpu_us, window))
        } else {
            None
        };
        for &clients in &config.clients {
            let load = config.phase(server.client_url(), clients);
            progress(&format!(
                "{}: {} puts, {} clients, {} conns",
                target.name, load.total, load.clients, load.conns
            ));
            let bench = Bench::connect(load).await?;
            let before = procstat::sample(server.pid())?;
            let summary = bench.run().await;
            let after = procstat::sample(server.pid())?;
            if !server.is_running() {
                return Err(BenchError::Server {
                    name: target.name.clone(),
                    reason: "exited during the run".into(),
                });
            }
            rows.push(Row {
                target: target.name.clone(),
                clients,
                ops_s: summary.throughput_ops_s(),
                p50_ms: us_to_ms(summary.p50_us),
                p99_ms: us_to_ms(summary.p99_us),
                server_cpu_us_per_op: cpu_us_per_op(before.cpu_us, after.cpu_us, summary.ops),
                rss_mib: after.rss_bytes as f64 / (1024.0 * 1024.0),
                errors: summary.errors,
                idle_cpu_ms_per_10s,
            });
            progress(&format!(
                "{}: {}",
                target.name,
                summary.to_text().trim_end()
            ));
        }
        drop(server);
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn targets() -> Vec<Target> {
        vec![Target {
            name: "etcd".into(),
            bin: PathBuf::from("etcd"),
        }]
    }

    #[test]
    fn conns_default_to_one_per_ten_clients() {
        assert_eq!(default_conns(1), 1);
        assert_eq!(default_conns(10), 1);
        assert_eq!(default_conns(11), 2);
        assert_eq!(default_conns(100), 10);
    }

    #[test]
    fn phase_config() {
        let mut c = CompareConfig::new(targets());
        let p = c.phase("http://127.0.0.1:1".into(), 100);
        assert_eq!(p.clients, 100);
        assert_eq!(p.conns, 10);
        assert_eq!(p.total, 20_000);
        assert_eq!(p.workload, Workload::Put);
        c.conns = Some(50);
        assert_eq!(c.phase("http://127.0.0.1:1".into(), 1).conns, 1);
        assert_eq!(c.phase("http://127.0.0.1:1".into(), 100).conns, 50);
    }

    #[test]
    fn compare_validation() {
        assert!(CompareConfig::new(targets()).validate().is_ok());
        assert_eq!(
            CompareConfig::new(vec![])
                .validate()
                .unwrap_err()
                .to_string(),
            "invalid --cairn-bin: no target to measure"
        );
        let mut c = CompareConfig::new(targets());
        c.clients = vec![1, 0];
        assert_eq!(
            c.validate().unwrap_err().to_string(),
            "invalid --clients: 0 is outside 1..=10000"
        );
        let mut c = CompareConfig::new(targets());
        c.total = 0;
        assert_eq!(
            c.validate().unwrap_err().to_string(),
            "invalid --total: 0 is outside 1..=100000000"
        );
    }

    #[test]
    fn cpu_per_op() {
        assert_eq!(cpu_us_per_op(1_000_000, 1_500_000, 1_000), 500.0);
        assert_eq!(cpu_us_per_op(10, 10, 5), 0.0);
        assert_eq!(cpu_us_per_op(10, 20, 0), 0.0);
        assert_eq!(cpu_us_per_op(30, 20, 4), 0.0);
        assert_eq!(cpu_ms_per_10s(0, 300_000, Duration::from_secs(5)), 600.0);
        assert_eq!(cpu_ms_per_10s(0, 300_000, Duration::ZERO), 0.0);
    }

    #[test]
    fn markdown_table() {
        let rows = vec![
            Row {
                target: "etcd".into(),
                clients: 1,
                ops_s: 412.44,
                p50_ms: 2.345,
                p99_ms: 5.0,
                server_cpu_us_per_op: 310.6,
                rss_mib: 40.25,
                errors: 0,
                idle_cpu_ms_per_10s: Some(61.4),
            },
            Row {
                target: "cairn".into(),
                clients: 100,
                ops_s: 9000.5,
                p50_ms: 10.0,
                p99_ms: 30.125,
                server_cpu_us_per_op: 90.0,
                rss_mib: 12.0,
                errors: 3,
                idle_cpu_ms_per_10s: None,
            },
        ];
        assert_eq!(
            render_markdown(&rows),
            "| target | clients | ops/s | p50 ms | p99 ms | server CPU µs/op | RSS MiB | idle CPU ms/10 s |\n\
             |---|---:|---:|---:|---:|---:|---:|---:|\n\
             | etcd | 1 | 412 | 2.345 | 5.000 | 311 | 40.2 | 61 |\n\
             | cairn | 100 | 9000 | 10.000 | 30.125 | 90 | 12.0 | - |\n\
             \nwarning: cairn with 100 clients had 3 failed puts\n"
        );
    }
}
