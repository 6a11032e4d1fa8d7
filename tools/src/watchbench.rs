//! The `watch` workload, after etcd's `tools/benchmark/cmd/watch.go`: open
//! `streams × watch_per_stream` watchers on `watched_key_total` keys (watcher `w`
//! watches key `w % watched_key_total`, streams filled in turn) and time each
//! creation; then send `put_total` puts to the watched keys and wait until every
//! watcher has received each event that concerns it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use etcd_client::{Client, WatchOptions, Watcher};
use serde::Serialize;

use crate::error::{invalid, BenchError, Result};
use crate::keys::{key_for, make_value};
use crate::load::{connect_options, connect_warm, validate_endpoints, ClientTls};
use crate::selfcpu::{rusage_cpu_us, SelfCpu};
use crate::stats::{new_latency_histogram, record_latency_us, Summary};

/// Most watchers one run opens.
pub const WATCHBENCH_WATCHERS_MAX: u64 = 1_000_000;

/// Parameters of the `watch` workload (etcd `watch` flags).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchBenchConfig {
    /// Client URLs.
    pub endpoints: Vec<String>,
    /// gRPC watch streams (etcd `--streams`), each on its own connection.
    pub streams: u32,
    /// Watchers per stream (etcd `--watch-per-stream`).
    pub watch_per_stream: u32,
    /// Distinct watched keys (etcd `--watched-key-total`).
    pub watched_key_total: u64,
    /// Puts after the watchers are open (etcd `--put-total`), spread round-robin over
    /// the watched keys.
    pub put_total: u64,
    /// Key size, bytes.
    pub key_size: u32,
    /// Value size, bytes.
    pub val_size: u32,
    /// Deadline of one request and of the wait for the last event, ms.
    pub request_timeout_ms: u64,
    /// TLS and user.
    pub tls: ClientTls,
}

impl WatchBenchConfig {
    /// etcd's defaults: 10 streams × 100 watchers on 1 key, 1000 puts.
    pub fn new(endpoints: Vec<String>) -> WatchBenchConfig {
        WatchBenchConfig {
            endpoints,
            streams: 10,
            watch_per_stream: 100,
            watched_key_total: 1,
            put_total: 1_000,
            key_size: 8,
            val_size: 8,
            request_timeout_ms: 10_000,
            tls: ClientTls::default(),
        }
    }

    /// Watchers in all.
    pub fn watchers(&self) -> u64 {
        u64::from(self.streams) * u64::from(self.watch_per_stream)
    }

    /// Events the puts must deliver: each put to key k reaches every watcher of k.
    pub fn expected_events(&self) -> u64 {
        let watchers = self.watchers();
        (0..self.put_total.min(self.watched_key_total))
            .map(|k| {
                let puts_to_k = self.put_total / self.watched_key_total
                    + u64::from(k < self.put_total % self.watched_key_total);
                let watchers_of_k = watchers / self.watched_key_total
                    + u64::from(k < watchers % self.watched_key_total);
                puts_to_k * watchers_of_k
            })
            .sum()
    }

    /// Checks every field; the error names the flag.
    pub fn validate(&self) -> Result<()> {
        validate_endpoints(&self.endpoints)?;
        if self.streams == 0
            || self.watch_per_stream == 0
            || self.watchers() > WATCHBENCH_WATCHERS_MAX
        {
            return Err(invalid(
                "streams",
                format!("streams × watch-per-stream must be 1..={WATCHBENCH_WATCHERS_MAX}"),
            ));
        }
        if self.watched_key_total == 0 {
            return Err(invalid("watched-key-total", "at least 1"));
        }
        if self.put_total == 0 || self.put_total > crate::load::TOTAL_MAX {
            return Err(invalid("put-total", "1..=100000000"));
        }
        crate::keys::validate_key_shape(self.key_size, self.watched_key_total)
    }
}

/// What a `watch` run measured.
#[derive(Debug, Clone, PartialEq)]
pub struct WatchBenchReport {
    /// Watch creation latencies (one request per watcher).
    pub create: Summary,
    /// Put latencies.
    pub put: Summary,
    /// Events received by all watchers.
    pub events: u64,
    /// Events the puts should have delivered.
    pub expected_events: u64,
    /// Time from the first put to the last expected event, µs.
    pub delivery_us: u64,
    /// The bench's CPU over both phases.
    pub cpu: SelfCpu,
}

#[derive(Serialize)]
struct PhaseJson<'a> {
    requests: u64,
    ops: u64,
    errors: u64,
    throughput_ops_s: f64,
    p50_ms: f64,
    p90_ms: f64,
    p99_ms: f64,
    p999_ms: f64,
    max_ms: f64,
    first_error: Option<&'a str>,
}

fn phase_json(s: &Summary) -> PhaseJson<'_> {
    use crate::stats::us_to_ms;
    PhaseJson {
        requests: s.ops + s.errors,
        ops: s.ops,
        errors: s.errors,
        throughput_ops_s: s.throughput_ops_s(),
        p50_ms: us_to_ms(s.p50_us),
        p90_ms: us_to_ms(s.p90_us),
        p99_ms: us_to_ms(s.p99_us),
        p999_ms: us_to_ms(s.p999_us),
        max_ms: us_to_ms(s.max_us),
        first_error: s.first_error.as_deref(),
    }
}

impl WatchBenchReport {
    /// Whether every watcher was created, every put succeeded and every event arrived.
    pub fn is_complete(&self) -> bool {
        self.create.errors == 0 && self.put.errors == 0 && self.events == self.expected_events
    }

    /// Text: both phases' summaries, the events, the bench CPU line.
    pub fn to_text(&self) -> String {
        format!(
            "{}{}events: {} of {} in {:.3} s\n{}",
            self.create.to_text(),
            self.put.to_text(),
            self.events,
            self.expected_events,
            self.delivery_us as f64 / 1e6,
            self.cpu.to_text()
        )
    }

    /// One JSON object: `op`, `create` and `put` phases (latencies in ms), `events`,
    /// `expected_events`, `delivery_s`, bench CPU.
    pub fn to_json(&self) -> String {
        serde_json::json!({
            "op": "watch",
            "create": phase_json(&self.create),
            "put": phase_json(&self.put),
            "events": self.events,
            "expected_events": self.expected_events,
            "delivery_s": self.delivery_us as f64 / 1e6,
            "bench_cpu_pct_of_core": self.cpu.pct_of_core(),
            "bench_cpu_pct_of_all_cores": self.cpu.pct_of_all_cores(),
            "bench_cpu_saturated": self.cpu.saturated(),
        })
        .to_string()
    }
}

/// Runs the `watch` workload. Errors: invalid config, a connection that fails.
pub async fn run_watch_bench(config: &WatchBenchConfig) -> Result<WatchBenchReport> {
    config.validate()?;
    let options = connect_options(config.request_timeout_ms, &config.tls)?;
    let deadline = Duration::from_millis(config.request_timeout_ms);
    let mut clients: Vec<Client> = Vec::new();
    for _ in 0..config.streams {
        let warm = key_for(0, config.key_size);
        clients.push(connect_warm(&config.endpoints, &options, warm, deadline).await?);
    }
    let events = Arc::new(AtomicU64::new(0));
    let cpu_before = rusage_cpu_us();
    let started = Instant::now();
    // Phase 1: open the watchers, stream by stream, timing each creation.
    let mut histogram = new_latency_histogram();
    let (mut errors, mut first_error) = (0, None);
    let mut watchers: Vec<Watcher> = Vec::new();
    let mut drains = Vec::new();
    for (s, client) in clients.iter().enumerate() {
        let mut open: Option<(Watcher, etcd_client::WatchStream)> = None;
        for i in 0..config.watch_per_stream {
            let w = s as u64 + u64::from(i) * u64::from(config.streams);
            let key = key_for(w % config.watched_key_total, config.key_size);
            let sent = Instant::now();
            let outcome =
                tokio::time::timeout(deadline, create_watch(client, &mut open, key)).await;
            let latency_us = sent.elapsed().as_micros() as u64;
            match outcome {
                Ok(Ok(())) => record_latency_us(&mut histogram, latency_us),
                Ok(Err(e)) => {
                    errors += 1;
                    first_error.get_or_insert(e.to_string());
                }
                Err(_) => {
                    errors += 1;
                    first_error.get_or_insert("watch create timed out".to_string());
                }
            }
        }
        if let Some((watcher, mut stream)) = open {
            watchers.push(watcher);
            let events = Arc::clone(&events);
            drains.push(tokio::spawn(async move {
                while let Ok(Some(answer)) = stream.message().await {
                    events.fetch_add(answer.events().len() as u64, Ordering::Relaxed);
                }
            }));
        }
    }
    let create_us = started.elapsed().as_micros() as u64;
    let create = Summary::from_histogram(
        "watch-create",
        &histogram,
        errors,
        0,
        create_us,
        first_error,
    );
    let put = put_phase(config, &clients[0], deadline).await;
    let puts_done = Instant::now();
    let expected = config.expected_events();
    let wait_until = puts_done + deadline;
    // Bounded by the request deadline.
    while events.load(Ordering::Relaxed) < expected && Instant::now() < wait_until {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let delivery_us = (puts_done.elapsed().as_micros() + u128::from(put.elapsed_us)) as u64;
    let cpu = SelfCpu::measured(
        rusage_cpu_us().saturating_sub(cpu_before),
        started.elapsed().as_micros() as u64,
    );
    for drain in &drains {
        drain.abort();
    }
    drop(watchers);
    if clients.is_empty() {
        return Err(BenchError::Request("no stream".into()));
    }
    Ok(WatchBenchReport {
        create,
        put,
        events: events.load(Ordering::Relaxed),
        expected_events: expected,
        delivery_us,
        cpu,
    })
}

/// Creates one watch on `key`: the stream's first (opening it), or one more on the
/// open stream, answered when its `created` response arrives.
async fn create_watch(
    client: &Client,
    open: &mut Option<(Watcher, etcd_client::WatchStream)>,
    key: Vec<u8>,
) -> std::result::Result<(), String> {
    let Some((watcher, stream)) = open.as_mut() else {
        let opened = client.watch_client().watch(key, None).await;
        *open = Some(opened.map_err(|e| e.to_string())?);
        return Ok(());
    };
    watcher
        .watch(key, None::<WatchOptions>)
        .await
        .map_err(|e| e.to_string())?;
    // Bounded by the caller's deadline; no puts run yet, so only created answers come.
    loop {
        match stream.message().await {
            Ok(Some(answer)) if answer.created() => return Ok(()),
            Ok(Some(_)) => {}
            Ok(None) => return Err("watch stream closed".into()),
            Err(e) => return Err(e.to_string()),
        }
    }
}

/// `put_total` sequential puts, key `i % watched_key_total` for put `i`.
async fn put_phase(config: &WatchBenchConfig, client: &Client, deadline: Duration) -> Summary {
    let mut kv = client.kv_client();
    let value = make_value(config.val_size);
    let mut histogram = new_latency_histogram();
    let (mut errors, mut first_error) = (0, None);
    let started = Instant::now();
    for i in 0..config.put_total {
        let key = key_for(i % config.watched_key_total, config.key_size);
        let sent = Instant::now();
        match tokio::time::timeout(deadline, kv.put(key, value.clone(), None)).await {
            Ok(Ok(_)) => record_latency_us(&mut histogram, sent.elapsed().as_micros() as u64),
            Ok(Err(e)) => {
                errors += 1;
                first_error.get_or_insert(e.to_string());
            }
            Err(_) => {
                errors += 1;
                first_error.get_or_insert("put timed out".to_string());
            }
        }
    }
    let elapsed_us = started.elapsed().as_micros() as u64;
    Summary::from_histogram("watch-put", &histogram, errors, 0, elapsed_us, first_error)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expected_events_counts_watchers_per_key() {
        let mut c = WatchBenchConfig::new(vec!["http://127.0.0.1:2379".into()]);
        c.streams = 2;
        c.watch_per_stream = 3;
        c.watched_key_total = 1;
        c.put_total = 10;
        assert_eq!(c.expected_events(), 60);
        c.watched_key_total = 4; // watchers per key 2,2,1,1; puts per key 3,3,2,2
        assert_eq!(c.expected_events(), 6 + 6 + 2 + 2);
        c.put_total = 2; // keys 0 and 1 get one put each
        assert_eq!(c.expected_events(), 4);
    }
}
