//! The load generator watching itself: its own CPU share over a run (getrusage of the
//! bench process) with a warning when it saturates its runtime, and the indicatif
//! progress bar on stderr.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Share of one core per runtime worker thread above which the bench itself is the
/// bottleneck, percent.
pub const SATURATED_PCT_PER_WORKER: f64 = 90.0;
/// The progress bar appears only after the run has lasted this long, ms.
pub const PROGRESS_DELAY_MS: u64 = 2_000;
/// How often the progress bar is redrawn, ms.
pub const PROGRESS_TICK_MS: u64 = 200;

/// User + system CPU time of this process so far (getrusage(RUSAGE_SELF)), µs.
pub fn rusage_cpu_us() -> u64 {
    // SAFETY: getrusage writes one plain struct it is given; zeroed is a valid value.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: RUSAGE_SELF with a valid pointer to an owned rusage.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    if rc != 0 {
        return 0;
    }
    let us = |tv: libc::timeval| tv.tv_sec as u64 * 1_000_000 + tv.tv_usec as u64;
    us(usage.ru_utime) + us(usage.ru_stime)
}

/// The bench process's CPU use over one run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SelfCpu {
    /// CPU time (user + system) used during the run, µs.
    pub cpu_us: u64,
    /// Wall time of the run, µs.
    pub wall_us: u64,
    /// Cores this process may run on (`available_parallelism`).
    pub cores: u32,
    /// Tokio worker threads of the runtime that drove the load (one per core: the
    /// multi-thread runtime's default).
    pub workers: u32,
}

impl SelfCpu {
    /// A measurement of `cpu_us` over `wall_us` on this machine's cores, with the
    /// default multi-thread runtime (one worker per core).
    pub fn measured(cpu_us: u64, wall_us: u64) -> SelfCpu {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get() as u32);
        SelfCpu {
            cpu_us,
            wall_us,
            cores,
            workers: cores,
        }
    }

    /// CPU time as a share of one core, percent (200 = two cores busy).
    pub fn pct_of_core(&self) -> f64 {
        if self.wall_us == 0 {
            return 0.0;
        }
        self.cpu_us as f64 * 100.0 / self.wall_us as f64
    }

    /// CPU time as a share of all cores, percent.
    pub fn pct_of_all_cores(&self) -> f64 {
        self.pct_of_core() / f64::from(self.cores.max(1))
    }

    /// Whether the bench used more than [`SATURATED_PCT_PER_WORKER`] of a core per
    /// worker thread: then its numbers measure the load generator, not the server.
    pub fn saturated(&self) -> bool {
        self.pct_of_core() > SATURATED_PCT_PER_WORKER * f64::from(self.workers.max(1))
    }

    /// One line, plus a warning line when [`SelfCpu::saturated`].
    pub fn to_text(&self) -> String {
        let mut text = format!(
            "bench cpu: {:.0}% of one core, {:.0}% of {} cores\n",
            self.pct_of_core(),
            self.pct_of_all_cores(),
            self.cores
        );
        if self.saturated() {
            text.push_str(&self.warning());
            text.push('\n');
        }
        text
    }

    /// The saturation warning (for stderr).
    pub fn warning(&self) -> String {
        format!(
            "warning: the load generator used {:.0}% of a core with {} worker threads \
             (> {SATURATED_PCT_PER_WORKER:.0}% each): it saturates its cores and the \
             result measures it, not the server",
            self.pct_of_core(),
            self.workers
        )
    }
}

/// A progress bar on stderr fed from the run's request counter; drawn only when
/// enabled, stderr is a terminal and the run lasts longer than [`PROGRESS_DELAY_MS`].
pub struct Progress {
    task: Option<(
        tokio::task::JoinHandle<()>,
        tokio::sync::oneshot::Sender<()>,
    )>,
}

impl Progress {
    /// Starts the bar: length `total` requests, or `duration_s` seconds for a timed
    /// run; `next` is the shared request counter.
    pub fn start(
        enabled: bool,
        duration_s: Option<u64>,
        total: u64,
        next: Arc<AtomicU64>,
    ) -> Progress {
        if !enabled || !std::io::stderr().is_terminal() {
            return Progress { task: None };
        }
        let (stop, mut stopped) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(async move {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(PROGRESS_DELAY_MS)) => {}
                _ = &mut stopped => return,
            }
            let started = std::time::Instant::now() - Duration::from_millis(PROGRESS_DELAY_MS);
            let length = duration_s.unwrap_or(total);
            let bar = ProgressBar::with_draw_target(Some(length), ProgressDrawTarget::stderr());
            let template = match duration_s {
                Some(_) => "{elapsed_precise} [{bar:40}] {pos}/{len} s {msg}",
                None => "{elapsed_precise} [{bar:40}] {pos}/{len} requests ({per_sec}) eta {eta}",
            };
            if let Ok(style) = ProgressStyle::with_template(template) {
                bar.set_style(style.progress_chars("=> "));
            }
            let mut tick = tokio::time::interval(Duration::from_millis(PROGRESS_TICK_MS));
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = &mut stopped => break,
                }
                let sent = next.load(Ordering::Relaxed).min(total);
                match duration_s {
                    Some(_) => {
                        bar.set_position(started.elapsed().as_secs().min(length));
                        bar.set_message(format!("{sent} requests"));
                    }
                    None => bar.set_position(sent),
                }
            }
            bar.finish_and_clear();
        });
        Progress {
            task: Some((task, stop)),
        }
    }

    /// Stops and clears the bar.
    pub async fn finish(self) {
        if let Some((task, stop)) = self.task {
            let _ = stop.send(());
            let _ = task.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_and_saturation() {
        let cpu = SelfCpu {
            cpu_us: 1_900_000,
            wall_us: 1_000_000,
            cores: 2,
            workers: 2,
        };
        assert!((cpu.pct_of_core() - 190.0).abs() < 1e-9);
        assert!((cpu.pct_of_all_cores() - 95.0).abs() < 1e-9);
        assert!(cpu.saturated());
        let idle = SelfCpu {
            cpu_us: 100_000,
            ..cpu
        };
        assert!(!idle.saturated());
        assert!(!idle.to_text().contains("warning"));
        assert_eq!(SelfCpu { wall_us: 0, ..cpu }.pct_of_core(), 0.0);
    }

    #[test]
    fn rusage_grows() {
        let before = rusage_cpu_us();
        let mut x = 0u64;
        for i in 0..5_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        assert!(x != 1);
        assert!(rusage_cpu_us() >= before);
    }
}
