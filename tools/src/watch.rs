//! Watch measurements: put→event latency with many watchers, and the server's RSS cost
//! of idle watchers.
//!
//! Watchers are spread over `streams` gRPC Watch streams (one HTTP/2 connection, like a
//! Kubernetes API server's watch cache), watcher `w` on stream `w % streams`. Each
//! watcher watches a prefix `/registry/pods/ns{i}/`:
//!
//! - [`PrefixMode::Shared`] (default): every watcher watches `/registry/pods/ns0/` and
//!   the writer writes there, so each put fans out to all watchers (expected events =
//!   puts × watchers). This is the fan-out cost a busy resource type pays.
//! - [`PrefixMode::Distinct`]: watcher `w` watches `/registry/pods/ns{w}/`; put `i` goes
//!   to `ns{i % watchers}`, so each put reaches exactly one watcher (expected events =
//!   puts) while the server still holds every watcher (all of them range watchers).
//! - [`PrefixMode::Key`]: watcher `w` watches the single key `/registry/pods/ns{w}/pod`
//!   (no prefix); put `i` writes the key of watcher `i % watchers`, so each put reaches
//!   exactly one single-key watcher. Keys repeat, so the put index travels in the value
//!   ([`put_value`]).
//!
//! One writer puts `puts` keys sequentially on its own connection. For every
//! (put, watcher) pair the latency runs from just before the put is sent to the arrival
//! of the response carrying its event on the watch stream (both `Instant`s in this
//! process). Every phase is bounded: creation, each put, the writer as a whole and the
//! drain after the last put all have deadlines.
//!
//! RSS per 1,000 idle watchers is (RSS after − RSS before) scaled to 1,000 watchers,
//! streams included. Against a Go server the delta also holds heap growth the GC has
//! not returned, so with few watchers the fixed part dominates: etcd 3.4 on the dev VM
//! gave 4.8–8.3 MiB per 1,000 at `--watchers 1000` but a steady 1.8 MiB per 1,000 at
//! `--watchers 10000`. Use ≥ 10,000 watchers on a fresh server for a stable figure.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use etcd_client::{Client, ConnectOptions, WatchOptions, WatchStream, Watcher};
use serde::Serialize;

use crate::error::{invalid, BenchError, Result};
use crate::keys::make_value;
use crate::load::{validate_endpoints, CONNECT_TIMEOUT_MS, VAL_SIZE_MAX};
use crate::procstat;
use crate::server::ServerProcess;
use crate::stats::{new_latency_histogram, record_latency_us, us_to_ms};

/// Most watchers one run accepts.
pub const WATCHERS_MAX: u32 = 100_000;
/// Most puts one latency run accepts.
pub const WATCH_PUTS_MAX: u64 = 1_000_000;
/// Most (put, watcher) events one latency run may expect.
pub const WATCH_EVENTS_MAX: u64 = 50_000_000;
/// The common start of every watched prefix.
pub const PREFIX_BASE: &str = "/registry/pods/ns";
/// Interval at which the drain phase checks whether every event arrived, ms.
const DRAIN_POLL_MS: u64 = 5;

/// Which prefix each watcher watches; see the module docs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PrefixMode {
    /// All watchers on the writer's prefix: each put fans out to every watcher.
    Shared,
    /// One prefix per watcher: each put reaches one watcher.
    Distinct,
    /// One single key per watcher: each put reaches one watcher.
    Key,
}

impl PrefixMode {
    /// Parses `shared`, `distinct` or `key`.
    pub fn parse(text: &str) -> Result<PrefixMode> {
        match text {
            "shared" => Ok(PrefixMode::Shared),
            "distinct" => Ok(PrefixMode::Distinct),
            "key" => Ok(PrefixMode::Key),
            other => Err(invalid(
                "prefix-mode",
                format!("{other:?} is not shared, distinct or key"),
            )),
        }
    }

    /// `shared`, `distinct` or `key`.
    pub fn name(&self) -> &'static str {
        match self {
            PrefixMode::Shared => "shared",
            PrefixMode::Distinct => "distinct",
            PrefixMode::Key => "key",
        }
    }
}

/// The prefix `/registry/pods/ns{namespace}/`.
pub fn watch_prefix(namespace: u32) -> String {
    format!("{PREFIX_BASE}{namespace}/")
}

/// The single key `/registry/pods/ns{namespace}/pod` of key mode.
pub fn watch_key(namespace: u32) -> String {
    format!("{}pod", watch_prefix(namespace))
}

/// What watcher `watcher` watches: a prefix, or in key mode a single key.
pub fn watcher_prefix(mode: PrefixMode, watcher: u32) -> String {
    match mode {
        PrefixMode::Shared => watch_prefix(0),
        PrefixMode::Distinct => watch_prefix(watcher),
        PrefixMode::Key => watch_key(watcher),
    }
}

/// The key of put `index`: `/registry/pods/ns{n}/pod-{index}` where `n` is 0 in shared
/// mode and `index % watchers` in distinct mode; in key mode the single key of watcher
/// `index % watchers`.
pub fn put_key(mode: PrefixMode, watchers: u32, index: u64) -> String {
    let namespace = match mode {
        PrefixMode::Shared => 0,
        PrefixMode::Distinct | PrefixMode::Key => (index % u64::from(watchers.max(1))) as u32,
    };
    match mode {
        PrefixMode::Key => watch_key(namespace),
        PrefixMode::Shared | PrefixMode::Distinct => {
            format!("{}pod-{index}", watch_prefix(namespace))
        }
    }
}

/// The value of put `index`: `filler` in shared and distinct mode; in key mode
/// `"{index}:"` followed by `filler`'s bytes up to `filler`'s length (longer than
/// `filler` only when it is shorter than the index and colon).
pub fn put_value(mode: PrefixMode, index: u64, filler: &[u8]) -> Vec<u8> {
    match mode {
        PrefixMode::Shared | PrefixMode::Distinct => filler.to_vec(),
        PrefixMode::Key => {
            let mut value = format!("{index}:").into_bytes();
            let pad = filler.len().saturating_sub(value.len());
            value.extend_from_slice(&filler[..pad]);
            value
        }
    }
}

/// The put index of an event with `key` and `value`: from the key ([`parse_put_index`])
/// in shared and distinct mode, from the value ([`put_value`]) of a key-mode key in key
/// mode; `None` for anything this run did not write.
pub fn event_put_index(mode: PrefixMode, key: &[u8], value: &[u8]) -> Option<u64> {
    if mode != PrefixMode::Key {
        return parse_put_index(key);
    }
    let key = std::str::from_utf8(key).ok()?;
    let namespace = key.strip_prefix(PREFIX_BASE)?.strip_suffix("/pod")?;
    if namespace.is_empty() || !namespace.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let end = value.iter().position(|b| *b == b':')?;
    let digits = &value[..end];
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

/// The put index encoded in a key made by [`put_key`]; `None` for any other key.
pub fn parse_put_index(key: &[u8]) -> Option<u64> {
    let key = std::str::from_utf8(key).ok()?;
    let rest = key.strip_prefix(PREFIX_BASE)?;
    let (_, pod) = rest.split_once('/')?;
    let digits = pod.strip_prefix("pod-")?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Watchers per put: all of them in shared mode, one in distinct and key mode.
pub fn fanout(mode: PrefixMode, watchers: u32) -> u64 {
    match mode {
        PrefixMode::Shared => u64::from(watchers),
        PrefixMode::Distinct | PrefixMode::Key => 1,
    }
}

/// How many of `watchers` watchers stream `stream` of `streams` holds (watcher `w` is
/// on stream `w % streams`).
pub fn watchers_on_stream(watchers: u32, streams: u32, stream: u32) -> u32 {
    watchers / streams + u32::from(stream < watchers % streams)
}

/// RSS growth per 1,000 watchers, KiB (negative if RSS shrank); 0 without watchers.
pub fn kib_per_1000(rss_before_bytes: u64, rss_after_bytes: u64, watchers: u32) -> f64 {
    if watchers == 0 {
        return 0.0;
    }
    let delta_kib = (rss_after_bytes as f64 - rss_before_bytes as f64) / 1024.0;
    delta_kib * 1000.0 / f64::from(watchers)
}

/// Missing and duplicate events given, per put, how many events arrived, whether the
/// put was acknowledged, and the fan-out. Unacknowledged puts expect nothing; events
/// for them are counted separately by the caller. Returns `(missing, duplicates)`.
pub fn tally_events(received: &[u32], acked: &[bool], fanout: u64) -> (u64, u64) {
    let mut missing = 0;
    let mut duplicates = 0;
    for (&got, &ok) in received.iter().zip(acked) {
        if !ok {
            continue;
        }
        let got = u64::from(got);
        missing += fanout.saturating_sub(got);
        duplicates += got.saturating_sub(fanout);
    }
    (missing, duplicates)
}

/// Parameters of a watch measurement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchConfig {
    /// Client URLs.
    pub endpoints: Vec<String>,
    /// Watchers in all, 1..=[`WATCHERS_MAX`].
    pub watchers: u32,
    /// Watch streams, 1..=watchers.
    pub streams: u32,
    /// Sequential puts of the latency run, 1..=[`WATCH_PUTS_MAX`].
    pub puts: u64,
    /// Which prefix each watcher watches.
    pub mode: PrefixMode,
    /// Value size of each put, bytes.
    pub val_size: u32,
    /// Deadline of one put, ms.
    pub request_timeout_ms: u64,
    /// Deadline for every watcher's `created` response, ms.
    pub create_timeout_ms: u64,
    /// How long to wait after the last put for outstanding events, ms.
    pub drain_timeout_ms: u64,
    /// Limit on the writer, s: puts not sent by then are skipped.
    pub duration_max_s: u64,
    /// Pause between the last `created` response and the second RSS sample, ms.
    pub settle_ms: u64,
}

impl WatchConfig {
    /// 1 000 watchers on 10 streams, 2 000 puts of 256 bytes, shared prefix; 10 s put
    /// deadline, 60 s creation deadline, 30 s drain, 300 s writer limit, 2 s settle.
    pub fn new(endpoints: Vec<String>) -> WatchConfig {
        WatchConfig {
            endpoints,
            watchers: 1_000,
            streams: 10,
            puts: 2_000,
            mode: PrefixMode::Shared,
            val_size: 256,
            request_timeout_ms: 10_000,
            create_timeout_ms: 60_000,
            drain_timeout_ms: 30_000,
            duration_max_s: 300,
            settle_ms: 2_000,
        }
    }

    /// Events the latency run expects if every put is acknowledged.
    pub fn expected_events(&self) -> u64 {
        self.puts * fanout(self.mode, self.watchers)
    }

    /// Checks every field; the error names the flag and its allowed range.
    pub fn validate(&self) -> Result<()> {
        validate_endpoints(&self.endpoints)?;
        if self.watchers == 0 || self.watchers > WATCHERS_MAX {
            return Err(invalid(
                "watchers",
                format!("{} is outside 1..={WATCHERS_MAX}", self.watchers),
            ));
        }
        if self.streams == 0 || self.streams > self.watchers {
            return Err(invalid(
                "streams",
                format!(
                    "{} is outside 1..=watchers ({})",
                    self.streams, self.watchers
                ),
            ));
        }
        if self.puts == 0 || self.puts > WATCH_PUTS_MAX {
            return Err(invalid(
                "puts",
                format!("{} is outside 1..={WATCH_PUTS_MAX}", self.puts),
            ));
        }
        if self.expected_events() > WATCH_EVENTS_MAX {
            return Err(invalid(
                "puts",
                format!(
                    "{} puts × fan-out {} = {} events, more than {WATCH_EVENTS_MAX}",
                    self.puts,
                    fanout(self.mode, self.watchers),
                    self.expected_events()
                ),
            ));
        }
        if self.val_size > VAL_SIZE_MAX {
            return Err(invalid(
                "val-size",
                format!("{} is outside 0..={VAL_SIZE_MAX}", self.val_size),
            ));
        }
        let ms_range = |flag: &'static str, value: u64| {
            if value == 0 || value > 600_000 {
                Err(invalid(flag, format!("{value} is outside 1..=600000")))
            } else {
                Ok(())
            }
        };
        ms_range("request-timeout-ms", self.request_timeout_ms)?;
        ms_range("create-timeout-ms", self.create_timeout_ms)?;
        ms_range("drain-timeout-ms", self.drain_timeout_ms)?;
        if self.settle_ms > 600_000 {
            return Err(invalid(
                "settle-ms",
                format!("{} is outside 0..=600000", self.settle_ms),
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

/// An open watch stream whose watchers have all been created.
pub(crate) struct OpenStream {
    // Kept so the request half of the stream stays open.
    _watcher: Watcher,
    /// The response half: events of every watcher on this stream.
    pub(crate) stream: WatchStream,
}

/// Connects one client for `config.endpoints`.
async fn connect(config: &WatchConfig) -> Result<Client> {
    let options = ConnectOptions::new()
        .with_connect_timeout(Duration::from_millis(CONNECT_TIMEOUT_MS))
        .with_timeout(Duration::from_millis(config.request_timeout_ms));
    Client::connect(&config.endpoints, Some(options))
        .await
        .map_err(|source| BenchError::Connect {
            endpoints: config.endpoints.join(","),
            source: Box::new(source),
        })
}

/// Opens stream `index` and creates its watchers, waiting for every `created` reply.
async fn open_stream(client: Client, config: WatchConfig, index: u32) -> Result<OpenStream> {
    let count = watchers_on_stream(config.watchers, config.streams, index);
    let prefix_of = |k: u32| watcher_prefix(config.mode, index + k * config.streams);
    let options = || match config.mode {
        PrefixMode::Key => None,
        PrefixMode::Shared | PrefixMode::Distinct => Some(WatchOptions::new().with_prefix()),
    };
    let mut watch_client = client.watch_client();
    // etcd-client waits for (and asserts) the first watcher's `created` reply.
    let (mut watcher, mut stream) = watch_client
        .watch(prefix_of(0), options())
        .await
        .map_err(|e| BenchError::Request(format!("watch stream {index}: {e}")))?;
    for k in 1..count {
        watcher
            .watch(prefix_of(k), options())
            .await
            .map_err(|e| BenchError::Request(format!("create watcher on stream {index}: {e}")))?;
    }
    let mut created = 1;
    // Bounded: each iteration consumes one message; the caller applies a deadline.
    while created < count {
        match stream.message().await {
            Ok(Some(response)) => {
                if response.canceled() {
                    return Err(BenchError::Request(format!(
                        "watcher canceled on stream {index}: {:?}",
                        response.cancel_reason()
                    )));
                }
                if response.created() {
                    created += 1;
                }
            }
            Ok(None) => {
                return Err(BenchError::Request(format!(
                    "stream {index} closed after {created} of {count} watchers"
                )))
            }
            Err(e) => return Err(BenchError::Request(format!("stream {index}: {e}"))),
        }
    }
    Ok(OpenStream {
        _watcher: watcher,
        stream,
    })
}

/// Opens every stream concurrently and waits until all watchers are created, within
/// `config.create_timeout_ms`. Uses `watchers`, `streams`, `mode` and
/// `create_timeout_ms` of `config` only.
pub(crate) async fn open_watchers(
    client: &Client,
    config: &WatchConfig,
) -> Result<Vec<OpenStream>> {
    let mut tasks = Vec::with_capacity(config.streams as usize);
    for index in 0..config.streams {
        tasks.push(tokio::spawn(open_stream(
            client.clone(),
            config.clone(),
            index,
        )));
    }
    let deadline = Duration::from_millis(config.create_timeout_ms);
    let all = async {
        let mut streams = Vec::with_capacity(tasks.len());
        for task in &mut tasks {
            // A panic inside etcd-client (it asserts the first reply is `created`)
            // surfaces here as a JoinError instead of aborting the run.
            match task.await {
                Ok(result) => streams.push(result?),
                Err(join) => {
                    return Err(BenchError::Request(format!(
                        "watch stream task failed: {join}"
                    )))
                }
            }
        }
        Ok(streams)
    };
    let outcome = tokio::time::timeout(deadline, all).await;
    for task in &tasks {
        task.abort();
    }
    match outcome {
        Ok(result) => result,
        Err(_) => Err(BenchError::Request(format!(
            "not every `created` reply of {} watchers arrived within {deadline:?}",
            config.watchers
        ))),
    }
}

/// Result of a put→event latency run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WatchLatencyReport {
    /// Watchers held.
    pub watchers: u32,
    /// Watch streams.
    pub streams: u32,
    /// Prefix mode.
    pub mode: PrefixMode,
    /// Puts acknowledged by the server.
    pub puts_acked: u64,
    /// Puts that failed or timed out.
    pub put_errors: u64,
    /// Puts never sent (writer duration limit).
    pub puts_skipped: u64,
    /// Events expected for the acknowledged puts.
    pub events_expected: u64,
    /// Events received for the acknowledged puts (duplicates excluded).
    pub events_received: u64,
    /// Expected events that never arrived.
    pub events_missing: u64,
    /// Events beyond the expected count for some put.
    pub events_duplicate: u64,
    /// Events for unacknowledged puts, or with keys this run did not write.
    pub events_other: u64,
    /// Median put→event latency, ms.
    pub p50_ms: f64,
    /// 99th percentile put→event latency, ms.
    pub p99_ms: f64,
    /// Largest put→event latency, ms.
    pub max_ms: f64,
    /// Writer time from first put to last acknowledgement, s.
    pub write_s: f64,
    /// The first put or stream error, if any.
    pub first_error: Option<String>,
}

impl WatchLatencyReport {
    /// Whether every expected event arrived exactly once and no put failed.
    pub fn is_complete(&self) -> bool {
        self.events_missing == 0
            && self.events_duplicate == 0
            && self.put_errors == 0
            && self.puts_skipped == 0
    }

    /// The human-readable report.
    pub fn to_text(&self) -> String {
        let mut text = format!(
            "watch-latency: {} watchers ({} prefix) on {} streams, {} puts acked, {} errors, {} skipped in {:.3} s\n\
             events: {} received of {} expected, {} missing, {} duplicate, {} other\n\
             put→event ms: p50 {:.3}  p99 {:.3}  max {:.3}\n",
            self.watchers,
            self.mode.name(),
            self.streams,
            self.puts_acked,
            self.put_errors,
            self.puts_skipped,
            self.write_s,
            self.events_received,
            self.events_expected,
            self.events_missing,
            self.events_duplicate,
            self.events_other,
            self.p50_ms,
            self.p99_ms,
            self.max_ms,
        );
        if let Some(error) = &self.first_error {
            text.push_str(&format!("first error: {error}\n"));
        }
        text
    }
}

/// What one stream reader saw.
struct ReaderResult {
    histogram: hdrhistogram::Histogram<u64>,
    /// Events per put index.
    per_put: Vec<u32>,
    other: u64,
    error: Option<String>,
}

/// Reads events from one stream until `stop` turns true or the stream ends.
async fn read_events(
    mut stream: WatchStream,
    mode: PrefixMode,
    base: Instant,
    sent_ns: Arc<Vec<AtomicU64>>,
    received: Arc<AtomicU64>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> ReaderResult {
    let mut result = ReaderResult {
        histogram: new_latency_histogram(),
        per_put: vec![0; sent_ns.len()],
        other: 0,
        error: None,
    };
    // Bounded by the caller: it sets `stop` after the drain deadline.
    loop {
        let message = tokio::select! {
            message = stream.message() => message,
            _ = stop.wait_for(|stop| *stop) => break,
        };
        let arrived_ns = base.elapsed().as_nanos() as u64;
        let response = match message {
            Ok(Some(response)) => response,
            Ok(None) => {
                result.error = Some("watch stream closed by the server".into());
                break;
            }
            Err(e) => {
                result.error = Some(format!("watch stream: {e}"));
                break;
            }
        };
        if response.canceled() {
            result.error = Some(format!(
                "watcher {} canceled: {:?}",
                response.watch_id(),
                response.cancel_reason()
            ));
        }
        let events = response.events();
        for event in events {
            let index = event
                .kv()
                .and_then(|kv| event_put_index(mode, kv.key(), kv.value()));
            let sent = index
                .and_then(|i| sent_ns.get(i as usize))
                .map(|s| s.load(Ordering::Acquire))
                .unwrap_or(0);
            match index {
                Some(i) if sent > 0 => {
                    // `sent` is stored as elapsed ns + 1 so that 0 means "not sent".
                    let latency_us = arrived_ns.saturating_sub(sent - 1) / 1_000;
                    record_latency_us(&mut result.histogram, latency_us);
                    result.per_put[i as usize] += 1;
                }
                _ => result.other += 1,
            }
        }
        received.fetch_add(events.len() as u64, Ordering::Relaxed);
    }
    result
}

/// Opens the watchers, runs the sequential writer, waits for the events, and reports
/// put→event latency and event accounting.
///
/// Errors: invalid config, connection failure, or watchers not created in time. Put
/// failures and missing events are reported in the result, not as errors.
pub async fn run_watch_latency(
    config: &WatchConfig,
    mut progress: impl FnMut(&str),
) -> Result<WatchLatencyReport> {
    config.validate()?;
    let watch_conn = connect(config).await?;
    let started = Instant::now();
    let streams = open_watchers(&watch_conn, config).await?;
    progress(&format!(
        "watch-latency: {} watchers on {} streams created in {:.3} s",
        config.watchers,
        config.streams,
        started.elapsed().as_secs_f64()
    ));

    let puts = config.puts as usize;
    let base = Instant::now();
    let sent_ns: Arc<Vec<AtomicU64>> = Arc::new((0..puts).map(|_| AtomicU64::new(0)).collect());
    let received = Arc::new(AtomicU64::new(0));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let readers: Vec<_> = streams
        .into_iter()
        .map(|open| {
            tokio::spawn(read_events(
                open.stream,
                config.mode,
                base,
                Arc::clone(&sent_ns),
                Arc::clone(&received),
                stop_rx.clone(),
            ))
        })
        .collect();

    // The writer, on its own connection so events and puts do not share a socket.
    let writer = connect(config).await?;
    let mut kv = writer.kv_client();
    let value = make_value(config.val_size);
    let deadline = Duration::from_millis(config.request_timeout_ms);
    // Warm-up outside the watched prefixes, so connection set-up is not timed.
    match tokio::time::timeout(deadline, kv.get("/cairn-bench/warm-up", None)).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => return Err(BenchError::Request(format!("warm-up range: {e}"))),
        Err(_) => return Err(BenchError::Request("warm-up range timed out".into())),
    }
    let stop_writing_at = Instant::now() + Duration::from_secs(config.duration_max_s);
    let mut acked = vec![false; puts];
    let mut put_errors = 0;
    let mut first_error: Option<String> = None;
    let mut sent_count = 0usize;
    let write_started = Instant::now();
    for (index, ok) in acked.iter_mut().enumerate() {
        if Instant::now() >= stop_writing_at {
            break;
        }
        let key = put_key(config.mode, config.watchers, index as u64);
        let value = put_value(config.mode, index as u64, &value);
        sent_count += 1;
        sent_ns[index].store(base.elapsed().as_nanos() as u64 + 1, Ordering::Release);
        match tokio::time::timeout(deadline, kv.put(key, value, None)).await {
            Ok(Ok(_)) => *ok = true,
            Ok(Err(e)) => {
                put_errors += 1;
                first_error.get_or_insert_with(|| format!("put: {e}"));
            }
            Err(_) => {
                put_errors += 1;
                first_error.get_or_insert_with(|| format!("put timed out after {deadline:?}"));
            }
        }
    }
    let write_s = write_started.elapsed().as_secs_f64();
    let puts_acked = acked.iter().filter(|ok| **ok).count() as u64;
    let fan = fanout(config.mode, config.watchers);
    let expected = puts_acked * fan;
    progress(&format!(
        "watch-latency: {puts_acked} puts acked in {write_s:.3} s; waiting for {expected} events"
    ));

    // Drain: bounded by drain_timeout_ms / DRAIN_POLL_MS polls.
    let poll = Duration::from_millis(DRAIN_POLL_MS);
    let polls_max = config.drain_timeout_ms / DRAIN_POLL_MS + 1;
    for _ in 0..polls_max {
        if received.load(Ordering::Relaxed) >= expected
            || readers.iter().all(|reader| reader.is_finished())
        {
            break;
        }
        tokio::time::sleep(poll).await;
    }
    // Stop the readers; `send` fails only when every reader is gone already.
    let _ = stop_tx.send(true);

    let mut histogram = new_latency_histogram();
    let mut per_put = vec![0u32; puts];
    let mut other = 0;
    for reader in readers {
        match reader.await {
            Ok(result) => {
                histogram
                    .add(&result.histogram)
                    .expect("histograms share bounds");
                for (total, count) in per_put.iter_mut().zip(&result.per_put) {
                    *total += count;
                }
                other += result.other;
                if first_error.is_none() {
                    first_error = result.error;
                }
            }
            Err(join) => {
                first_error.get_or_insert_with(|| format!("reader task failed: {join}"));
            }
        }
    }
    // Events of unacknowledged puts are "other".
    other += per_put
        .iter()
        .zip(&acked)
        .filter(|(_, ok)| !**ok)
        .map(|(count, _)| u64::from(*count))
        .sum::<u64>();
    let (missing, duplicates) = tally_events(&per_put, &acked, fan);
    let q = |quantile: f64| {
        if histogram.is_empty() {
            0
        } else {
            histogram.value_at_quantile(quantile)
        }
    };
    Ok(WatchLatencyReport {
        watchers: config.watchers,
        streams: config.streams,
        mode: config.mode,
        puts_acked,
        put_errors,
        puts_skipped: (puts - sent_count) as u64,
        events_expected: expected,
        events_received: expected - missing,
        events_missing: missing,
        events_duplicate: duplicates,
        events_other: other,
        p50_ms: us_to_ms(q(0.50)),
        p99_ms: us_to_ms(q(0.99)),
        max_ms: us_to_ms(if histogram.is_empty() {
            0
        } else {
            histogram.max()
        }),
        write_s,
        first_error,
    })
}

/// Result of an idle-watcher memory measurement.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WatchMemoryReport {
    /// Watchers created.
    pub watchers: u32,
    /// Watch streams.
    pub streams: u32,
    /// Server RSS after connecting, before any watch stream, KiB.
    pub rss_before_kib: u64,
    /// Server RSS after every watcher was created and the settle pause, KiB.
    pub rss_after_kib: u64,
    /// RSS growth per 1,000 watchers, KiB (streams included).
    pub kib_per_1000_watchers: f64,
    /// Time to open the streams and receive every `created` reply, s.
    pub create_s: f64,
}

impl WatchMemoryReport {
    /// The human-readable report.
    pub fn to_text(&self) -> String {
        format!(
            "watch-memory: {} watchers on {} streams created in {:.3} s\n\
             server RSS KiB: before {}  after {}  delta {}\n\
             RSS per 1,000 idle watchers: {:.0} KiB\n",
            self.watchers,
            self.streams,
            self.create_s,
            self.rss_before_kib,
            self.rss_after_kib,
            self.rss_after_kib as i64 - self.rss_before_kib as i64,
            self.kib_per_1000_watchers
        )
    }
}

/// Samples server `pid`'s RSS, creates the idle watchers (waiting for every `created`
/// reply), settles for `config.settle_ms`, samples again. The watchers are closed
/// when this returns.
pub async fn run_watch_memory(config: &WatchConfig, pid: u32) -> Result<WatchMemoryReport> {
    config.validate()?;
    let client = connect(config).await?;
    // One request so the connection (not the watchers) is in the "before" sample.
    let mut kv = client.kv_client();
    let warm_up = kv.get("/cairn-bench/warm-up", None);
    match tokio::time::timeout(Duration::from_millis(config.request_timeout_ms), warm_up).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => return Err(BenchError::Request(format!("warm-up range: {e}"))),
        Err(_) => return Err(BenchError::Request("warm-up range timed out".into())),
    }
    let before = procstat::sample(pid)?;
    let started = Instant::now();
    let streams = open_watchers(&client, config).await?;
    let create_s = started.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_millis(config.settle_ms)).await;
    let after = procstat::sample(pid)?;
    drop(streams);
    Ok(WatchMemoryReport {
        watchers: config.watchers,
        streams: config.streams,
        rss_before_kib: before.rss_bytes / 1024,
        rss_after_kib: after.rss_bytes / 1024,
        kib_per_1000_watchers: kib_per_1000(before.rss_bytes, after.rss_bytes, config.watchers),
        create_s,
    })
}

/// One line of the compare-watch table. `None` measurements failed; see `error`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WatchRow {
    /// Target name.
    pub target: String,
    /// Watchers held.
    pub watchers: u32,
    /// Median put→event latency, ms.
    pub p50_ms: Option<f64>,
    /// 99th percentile put→event latency, ms.
    pub p99_ms: Option<f64>,
    /// Server RSS growth per 1,000 idle watchers, KiB.
    pub rss_kib_per_1000_watchers: Option<f64>,
    /// Events expected by the latency run.
    pub events_expected: u64,
    /// Expected events that never arrived.
    pub events_missing: u64,
    /// Failures of this target, joined.
    pub error: Option<String>,
}

/// The markdown table of [`run_compare_watch`], followed by a warning line per target
/// that missed events or failed.
pub fn render_watch_markdown(rows: &[WatchRow]) -> String {
    let mut out = String::from(
        "| target | watchers | put→event p50 ms | p99 ms | RSS delta per 1,000 idle watchers (KiB) |\n\
         |---|---:|---:|---:|---:|\n",
    );
    let cell = |value: Option<f64>, decimals: usize| match value {
        Some(v) => format!("{v:.decimals$}"),
        None => "n/a".into(),
    };
    for row in rows {
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} |\n",
            row.target,
            row.watchers,
            cell(row.p50_ms, 3),
            cell(row.p99_ms, 3),
            cell(row.rss_kib_per_1000_watchers, 0),
        ));
    }
    for row in rows {
        if row.events_missing > 0 {
            out.push_str(&format!(
                "\nwarning: {} missed {} of {} watch events\n",
                row.target, row.events_missing, row.events_expected
            ));
        }
        if let Some(error) = &row.error {
            out.push_str(&format!("\nwarning: {}: {}\n", row.target, error));
        }
    }
    out
}

/// Starts each target in turn on loopback, measures idle-watcher RSS on the fresh
/// server, closes those watchers, then runs the put→event latency measurement. A
/// target that does not start or whose watch measurements fail gets a row with `n/a`
/// and the error, and the next target still runs.
///
/// Errors: an invalid config.
pub async fn run_compare_watch(
    targets: &[crate::compare::Target],
    config: &WatchConfig,
    startup_timeout: Duration,
    mut progress: impl FnMut(&str),
) -> Result<Vec<WatchRow>> {
    config.validate()?;
    let mut rows = Vec::new();
    for target in targets {
        progress(&format!(
            "{}: starting {}",
            target.name,
            target.bin.display()
        ));
        let mut row = WatchRow {
            target: target.name.clone(),
            watchers: config.watchers,
            p50_ms: None,
            p99_ms: None,
            rss_kib_per_1000_watchers: None,
            events_expected: 0,
            events_missing: 0,
            error: None,
        };
        let mut server =
            match ServerProcess::start(&target.name, &target.bin, startup_timeout).await {
                Ok(server) => server,
                Err(e) => {
                    progress(&format!("{}: {e}", target.name));
                    row.error = Some(format!("start: {e}"));
                    rows.push(row);
                    continue;
                }
            };
        let mut target_config = config.clone();
        target_config.endpoints = vec![server.client_url()];
        let mut errors = Vec::new();
        match run_watch_memory(&target_config, server.pid()).await {
            Ok(memory) => {
                progress(&format!("{}: {}", target.name, memory.to_text().trim_end()));
                row.rss_kib_per_1000_watchers = Some(memory.kib_per_1000_watchers);
            }
            Err(e) => errors.push(format!("watch-memory: {e}")),
        }
        match run_watch_latency(&target_config, |line| {
            progress(&format!("{}: {line}", target.name))
        })
        .await
        {
            Ok(latency) => {
                progress(&format!(
                    "{}: {}",
                    target.name,
                    latency.to_text().trim_end()
                ));
                if latency.events_received > 0 {
                    row.p50_ms = Some(latency.p50_ms);
                    row.p99_ms = Some(latency.p99_ms);
                }
                row.events_expected = latency.events_expected;
                row.events_missing = latency.events_missing;
                if let Some(e) = latency.first_error {
                    errors.push(format!("watch-latency: {e}"));
                }
            }
            Err(e) => errors.push(format!("watch-latency: {e}")),
        }
        if !server.is_running() {
            errors.push("server exited during the run".into());
        }
        if !errors.is_empty() {
            row.error = Some(errors.join("; "));
        }
        rows.push(row);
        drop(server);
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_and_keys() {
        assert_eq!(watch_prefix(3), "/registry/pods/ns3/");
        assert_eq!(watcher_prefix(PrefixMode::Shared, 7), "/registry/pods/ns0/");
        assert_eq!(
            watcher_prefix(PrefixMode::Distinct, 7),
            "/registry/pods/ns7/"
        );
        assert_eq!(
            put_key(PrefixMode::Shared, 10, 25),
            "/registry/pods/ns0/pod-25"
        );
        assert_eq!(
            put_key(PrefixMode::Distinct, 10, 25),
            "/registry/pods/ns5/pod-25"
        );
        // A distinct-mode key lies under exactly its watcher's prefix.
        let key = put_key(PrefixMode::Distinct, 100, 11);
        assert!(key.starts_with(&watcher_prefix(PrefixMode::Distinct, 11)));
        assert!(!key.starts_with(&watcher_prefix(PrefixMode::Distinct, 1)));
    }

    #[test]
    fn key_mode_puts_reach_exactly_one_single_key_watcher() {
        assert_eq!(watcher_prefix(PrefixMode::Key, 7), "/registry/pods/ns7/pod");
        assert_eq!(put_key(PrefixMode::Key, 10, 27), "/registry/pods/ns7/pod");
        assert_eq!(fanout(PrefixMode::Key, 10_000), 1);
        let filler = make_value(8);
        assert_eq!(
            put_value(PrefixMode::Key, 42, &filler),
            [&b"42:"[..], &filler[..5]].concat()
        );
        assert_eq!(
            put_value(PrefixMode::Key, 1_234_567_890, &filler),
            b"1234567890:"
        );
        assert_eq!(put_value(PrefixMode::Distinct, 42, &filler), filler);
        for index in [0, 9, 10, 123_456] {
            let key = put_key(PrefixMode::Key, 10, index);
            let value = put_value(PrefixMode::Key, index, &filler);
            assert_eq!(
                event_put_index(PrefixMode::Key, key.as_bytes(), &value),
                Some(index)
            );
        }
        assert_eq!(
            event_put_index(PrefixMode::Key, b"/registry/pods/ns1/pod", b"x1:"),
            None
        );
        assert_eq!(
            event_put_index(PrefixMode::Key, b"/registry/pods/ns1/pod-1", b"1:"),
            None
        );
        assert_eq!(event_put_index(PrefixMode::Key, b"/elsewhere", b"1:"), None);
        let distinct = put_key(PrefixMode::Distinct, 10, 5);
        assert_eq!(
            event_put_index(PrefixMode::Distinct, distinct.as_bytes(), b"9:"),
            Some(5)
        );
    }

    #[test]
    fn put_index_round_trips() {
        for mode in [PrefixMode::Shared, PrefixMode::Distinct] {
            for index in [0, 1, 999, 123_456] {
                let key = put_key(mode, 1000, index);
                assert_eq!(parse_put_index(key.as_bytes()), Some(index), "{key}");
            }
        }
        assert_eq!(parse_put_index(b"/registry/pods/ns0/pod-"), None);
        assert_eq!(parse_put_index(b"/registry/pods/ns0/pod-1x"), None);
        assert_eq!(parse_put_index(b"/registry/pods/ns0/other"), None);
        assert_eq!(parse_put_index(b"/elsewhere/pod-1"), None);
        assert_eq!(parse_put_index(&[0xff, 0xfe]), None);
    }

    #[test]
    fn watchers_spread_over_streams() {
        assert_eq!(watchers_on_stream(1000, 10, 0), 100);
        assert_eq!(watchers_on_stream(1000, 10, 9), 100);
        let counts: Vec<u32> = (0..3).map(|s| watchers_on_stream(10, 3, s)).collect();
        assert_eq!(counts, vec![4, 3, 3]);
        assert_eq!(counts.iter().sum::<u32>(), 10);
        assert_eq!(watchers_on_stream(1, 1, 0), 1);
    }

    #[test]
    fn fanout_and_expected() {
        let mut c = WatchConfig::new(vec!["http://127.0.0.1:2379".into()]);
        assert_eq!(fanout(PrefixMode::Shared, 1000), 1000);
        assert_eq!(fanout(PrefixMode::Distinct, 1000), 1);
        assert_eq!(c.expected_events(), 2_000_000);
        c.mode = PrefixMode::Distinct;
        assert_eq!(c.expected_events(), 2_000);
    }

    #[test]
    fn tally_counts_missing_and_duplicates() {
        assert_eq!(tally_events(&[3, 3, 3], &[true, true, true], 3), (0, 0));
        assert_eq!(tally_events(&[3, 1, 0], &[true, true, true], 3), (5, 0));
        assert_eq!(tally_events(&[4, 3], &[true, true], 3), (0, 1));
        // Unacknowledged puts expect nothing.
        assert_eq!(tally_events(&[0, 5], &[false, true], 3), (0, 2));
    }

    #[test]
    fn rss_per_thousand() {
        assert_eq!(kib_per_1000(1024 * 1000, 1024 * 3000, 1000), 2000.0);
        assert_eq!(kib_per_1000(0, 1024 * 500, 10_000), 50.0);
        assert_eq!(kib_per_1000(1024 * 2000, 1024 * 1000, 1000), -1000.0);
        assert_eq!(kib_per_1000(0, 1024, 0), 0.0);
    }

    #[test]
    fn prefix_mode_parses() {
        assert_eq!(PrefixMode::parse("shared").unwrap(), PrefixMode::Shared);
        assert_eq!(PrefixMode::parse("distinct").unwrap(), PrefixMode::Distinct);
        assert_eq!(PrefixMode::parse("key").unwrap(), PrefixMode::Key);
        assert_eq!(
            PrefixMode::parse("all").unwrap_err().to_string(),
            "invalid --prefix-mode: \"all\" is not shared, distinct or key"
        );
    }

    #[test]
    fn watch_config_validation() {
        let ok = WatchConfig::new(vec!["http://127.0.0.1:2379".into()]);
        assert!(ok.validate().is_ok());
        let mut c = ok.clone();
        c.watchers = 0;
        assert_eq!(
            c.validate().unwrap_err().to_string(),
            "invalid --watchers: 0 is outside 1..=100000"
        );
        let mut c = ok.clone();
        c.streams = 1001;
        assert_eq!(
            c.validate().unwrap_err().to_string(),
            "invalid --streams: 1001 is outside 1..=watchers (1000)"
        );
        let mut c = ok.clone();
        c.puts = 100_000;
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .starts_with("invalid --puts: 100000 puts × fan-out 1000"));
        c.mode = PrefixMode::Distinct;
        assert!(c.validate().is_ok());
        let mut c = ok.clone();
        c.drain_timeout_ms = 0;
        assert_eq!(
            c.validate().unwrap_err().to_string(),
            "invalid --drain-timeout-ms: 0 is outside 1..=600000"
        );
        let mut c = ok;
        c.endpoints = vec!["127.0.0.1:2379".into()];
        assert!(c.validate().is_err());
    }

    #[test]
    fn watch_markdown_table() {
        let rows = vec![
            WatchRow {
                target: "cairn".into(),
                watchers: 1000,
                p50_ms: None,
                p99_ms: None,
                rss_kib_per_1000_watchers: None,
                events_expected: 0,
                events_missing: 0,
                error: Some("watch-memory: boom".into()),
            },
            WatchRow {
                target: "etcd".into(),
                watchers: 1000,
                p50_ms: Some(1.25),
                p99_ms: Some(9.0),
                rss_kib_per_1000_watchers: Some(1536.4),
                events_expected: 2_000_000,
                events_missing: 5,
                error: None,
            },
        ];
        assert_eq!(
            render_watch_markdown(&rows),
            "| target | watchers | put→event p50 ms | p99 ms | RSS delta per 1,000 idle watchers (KiB) |\n\
             |---|---:|---:|---:|---:|\n\
             | cairn | 1000 | n/a | n/a | n/a |\n\
             | etcd | 1000 | 1.250 | 9.000 | 1536 |\n\
             \nwarning: cairn: watch-memory: boom\n\
             \nwarning: etcd missed 5 of 2000000 watch events\n"
        );
    }
}
