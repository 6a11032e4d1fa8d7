//! Mixed load for long latency runs (issue 9's acceptance: "a 30-minute mixed load —
//! puts, linearizable ranges, watches, leases at 100 clients — shows no request slower
//! than 100 ms at p99.99").
//!
//! `clients` tasks share `conns` connections (client `i` on connection `i % conns`).
//! Until the duration is up each client picks an operation by weight ([`Mix`]) and
//! sends it, one request in flight per client:
//!
//! - `put`: `Put` of a key picked uniformly from the key space;
//! - `range`: linearizable `Range` of one such key;
//! - `lease`: `LeaseGrant` (TTL [`LEASE_TTL_S`]), a `Put` of a key attached to the lease,
//!   one `LeaseKeepAlive` round trip on a fresh keep-alive stream, `LeaseRevoke` (which
//!   deletes the key if it is still attached). Each RPC is measured on its own.
//!
//! Keys are `/registry/pods/ns{n}/pod-{index}` ([`put_key`]): with the default
//! [`PrefixMode::Distinct`] key `index` lies in namespace `index % watchers`, and
//! watcher `w` (on stream `w % watch_streams`, all streams on a connection of their
//! own) watches namespace `w`, so every put reaches exactly one watcher. With
//! [`PrefixMode::Shared`] every key and every watcher is in namespace 0 and each put
//! fans out to all watchers.
//!
//! Every value starts with the put's send time ([`stamp_value`]: ns since the run's
//! base instant, 16 hex digits); the watch readers parse it from each put event and
//! record put→event latency. Every request has a deadline; a late request counts as an
//! error. Latencies go into one hdrhistogram per RPC type (µs, up to
//! [`LATENCY_US_MAX`](crate::LATENCY_US_MAX)); each is a `Mutex` shared by the clients, locked only to record
//! one value and, every [`PROGRESS_INTERVAL_S`], to clone it for the progress line.
//!
//! Event accounting: each acknowledged put must reach `fanout` watchers, so the run
//! expects at least (acknowledged puts + acknowledged lease puts) × fanout events and
//! at most (all puts + lease puts + revokes, failed ones included) × fanout.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use etcd_client::{Client, EventType, PutOptions};
use hdrhistogram::Histogram;
use rand::distributions::{Distribution, WeightedIndex};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::cluster::{STATUS_POLL_MS, STATUS_TIMEOUT_MS};
use crate::error::{invalid, BenchError, Result};
use crate::keys::{make_value, KeyPicker};
use crate::load::{
    connect_options, connect_warm, validate_endpoints, ClientTls, CLIENTS_MAX, VAL_SIZE_MAX,
};
use crate::stats::{new_latency_histogram, record_latency_us, us_to_ms};
use crate::watch::{
    fanout, open_watchers, put_key, OpenStream, PrefixMode, WatchConfig, WATCHERS_MAX,
};

/// Longest run, s (one day).
pub const MIXED_DURATION_S_MAX: u64 = 86_400;
/// Most distinct keys a run accepts.
pub const MIXED_KEY_SPACE_MAX: u64 = 100_000_000;
/// Largest weight of one operation in [`Mix`].
pub const MIX_WEIGHT_MAX: u32 = 1_000_000;
/// Longest per-request deadline, ms.
pub const MIXED_REQUEST_TIMEOUT_MS_MAX: u64 = 600_000;
/// TTL of each granted lease, s; the lease is revoked well before it expires.
pub const LEASE_TTL_S: i64 = 30;
/// Interval between progress lines, s.
pub const PROGRESS_INTERVAL_S: u64 = 10;
/// Bytes of the send-time stamp at the start of every value (16 hex digits).
pub const STAMP_BYTES: u32 = 16;
/// Deadline for every watcher's `created` reply, ms.
pub const WATCH_CREATE_TIMEOUT_MS: u64 = 60_000;
/// Longest wait after the last request for the expected watch events, ms.
pub const WATCH_DRAIN_TIMEOUT_MS: u64 = 10_000;
/// Longest wait for a leader before the load starts, ms (a fresh single member elects
/// itself after an election timeout; the serializable warm-up does not need one).
pub const LEADER_WAIT_MS: u64 = 30_000;
/// Interval at which the drain checks the event count, ms.
const DRAIN_POLL_MS: u64 = 5;
/// Key of the serializable warm-up `Range` on each connection (outside every watch).
const WARM_UP_KEY: &str = "/cairn-bench/warm-up";

mod report;

pub use report::{MixedReport, OpReport, WatchEventReport};

const _: () = assert!(STAMP_BYTES as usize == 2 * std::mem::size_of::<u64>());
const _: () = assert!(DRAIN_POLL_MS < WATCH_DRAIN_TIMEOUT_MS);
const _: () = assert!(STATUS_POLL_MS < LEADER_WAIT_MS);

/// What one client iteration does (a lease iteration is four RPCs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MixOp {
    /// One `Put`.
    Put,
    /// One linearizable `Range` of a single key.
    Range,
    /// `LeaseGrant`, `Put` with the lease, `LeaseKeepAlive` once, `LeaseRevoke`.
    Lease,
}

impl MixOp {
    /// Every operation, in [`Mix`] order.
    pub const ALL: [MixOp; 3] = [MixOp::Put, MixOp::Range, MixOp::Lease];

    /// The name used in `--mix`: `put`, `range`, `lease`.
    pub fn name(self) -> &'static str {
        match self {
            MixOp::Put => "put",
            MixOp::Range => "range",
            MixOp::Lease => "lease",
        }
    }
}

/// Relative weights of the operations (`--mix put=45,range=45,lease=10`). Weights need
/// not sum to 100; a client picks operation `o` with probability weight(o) / sum.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mix {
    /// Weights indexed like [`MixOp::ALL`], each 0..=[`MIX_WEIGHT_MAX`], sum > 0.
    pub weights: [u32; 3],
}

impl Default for Mix {
    /// put 45, range 45, lease 10.
    fn default() -> Mix {
        Mix {
            weights: [45, 45, 10],
        }
    }
}

impl std::fmt::Display for Mix {
    /// `put=45,range=45,lease=10` (every operation, zero weights included).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, (op, weight)) in MixOp::ALL.iter().zip(self.weights).enumerate() {
            let comma = if i == 0 { "" } else { "," };
            write!(f, "{comma}{}={weight}", op.name())?;
        }
        Ok(())
    }
}

impl Mix {
    /// Parses `name=weight` pairs separated by commas; names are `put`, `range`,
    /// `lease`, each at most once; a name left out has weight 0.
    ///
    /// Errors (flag `mix`): an unknown name, a repeated name, a weight that is not a
    /// number or above [`MIX_WEIGHT_MAX`], or all weights 0.
    pub fn parse(text: &str) -> Result<Mix> {
        let mut weights = [0u32; 3];
        let mut seen = [false; 3];
        for part in text.split(',') {
            let part = part.trim();
            let (name, weight) = part
                .split_once('=')
                .ok_or_else(|| invalid("mix", format!("{part:?} is not name=weight")))?;
            let slot = MixOp::ALL
                .iter()
                .position(|op| op.name() == name.trim())
                .ok_or_else(|| {
                    invalid(
                        "mix",
                        format!("unknown operation {:?} (put, range, lease)", name.trim()),
                    )
                })?;
            if seen[slot] {
                return Err(invalid("mix", format!("{} given twice", name.trim())));
            }
            seen[slot] = true;
            let weight: u32 = weight.trim().parse().map_err(|_| {
                invalid("mix", format!("weight {:?} is not a number", weight.trim()))
            })?;
            weights[slot] = weight;
        }
        let mix = Mix { weights };
        mix.validate()?;
        Ok(mix)
    }

    /// Checks each weight ≤ [`MIX_WEIGHT_MAX`] and that some weight is positive.
    pub fn validate(&self) -> Result<()> {
        for (op, weight) in MixOp::ALL.iter().zip(self.weights) {
            if weight > MIX_WEIGHT_MAX {
                return Err(invalid(
                    "mix",
                    format!("{}={weight} is outside 0..={MIX_WEIGHT_MAX}", op.name()),
                ));
            }
        }
        if self.weights.iter().all(|w| *w == 0) {
            return Err(invalid("mix", "every weight is 0"));
        }
        Ok(())
    }

    /// The weight of `op`.
    pub fn weight(&self, op: MixOp) -> u32 {
        self.weights[op as usize]
    }

    /// A sampler of this mix. Panics if the mix is invalid (call [`Mix::validate`]).
    pub fn chooser(&self) -> MixChooser {
        MixChooser {
            index: WeightedIndex::new(self.weights).expect("validated mix has a positive weight"),
        }
    }
}

/// Picks operations with the probabilities of a [`Mix`] (rand's `WeightedIndex`).
#[derive(Debug, Clone)]
pub struct MixChooser {
    index: WeightedIndex<u32>,
}

impl MixChooser {
    /// The next operation; operations of weight 0 are never picked.
    pub fn choose(&self, rng: &mut impl Rng) -> MixOp {
        MixOp::ALL[self.index.sample(rng)]
    }
}

/// The RPCs measured, one histogram each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `Put` of the `put` operation.
    Put,
    /// Linearizable `Range` of one key.
    Range,
    /// `LeaseGrant`.
    LeaseGrant,
    /// `Put` attached to the lease.
    LeasePut,
    /// One `LeaseKeepAlive` request and its response, on a new keep-alive stream.
    LeaseKeepAlive,
    /// `LeaseRevoke`.
    LeaseRevoke,
}

impl Op {
    /// Every RPC type, in report order.
    pub const ALL: [Op; 6] = [
        Op::Put,
        Op::Range,
        Op::LeaseGrant,
        Op::LeasePut,
        Op::LeaseKeepAlive,
        Op::LeaseRevoke,
    ];

    /// The name in reports: `put`, `range`, `lease-grant`, `lease-put`,
    /// `lease-keepalive`, `lease-revoke`.
    pub fn name(self) -> &'static str {
        match self {
            Op::Put => "put",
            Op::Range => "range",
            Op::LeaseGrant => "lease-grant",
            Op::LeasePut => "lease-put",
            Op::LeaseKeepAlive => "lease-keepalive",
            Op::LeaseRevoke => "lease-revoke",
        }
    }
}

/// A value of `filler.len()` bytes whose first [`STAMP_BYTES`] are `sent_ns` as
/// lower-case hex and the rest is `filler`'s tail. `filler` must be at least
/// [`STAMP_BYTES`] long.
pub fn stamp_value(sent_ns: u64, filler: &[u8]) -> Vec<u8> {
    assert!(filler.len() >= STAMP_BYTES as usize);
    let mut value = format!("{sent_ns:016x}").into_bytes();
    value.extend_from_slice(&filler[STAMP_BYTES as usize..]);
    value
}

/// The send time stamped by [`stamp_value`], ns; `None` if `value` does not start with
/// [`STAMP_BYTES`] hex digits.
pub fn parse_stamp(value: &[u8]) -> Option<u64> {
    let stamp = value.get(..STAMP_BYTES as usize)?;
    if !stamp.iter().all(u8::is_ascii_hexdigit) {
        return None;
    }
    u64::from_str_radix(std::str::from_utf8(stamp).ok()?, 16).ok()
}

/// Parameters of a mixed run (the flags of `cairn-bench mixed`).
#[derive(Debug, Clone, PartialEq)]
pub struct MixedConfig {
    /// Client URLs; every connection balances over all.
    pub endpoints: Vec<String>,
    /// Concurrent clients, one request in flight each, 1..=[`CLIENTS_MAX`].
    pub clients: u32,
    /// Connections (HTTP/2) for the clients, 1..=clients.
    pub conns: u32,
    /// Length of the load, s, 1..=[`MIXED_DURATION_S_MAX`].
    pub duration_s: u64,
    /// Distinct keys, 1..=[`MIXED_KEY_SPACE_MAX`].
    pub key_space: u64,
    /// Value size, bytes, [`STAMP_BYTES`]..=[`VAL_SIZE_MAX`].
    pub val_size: u32,
    /// Operation weights.
    pub mix: Mix,
    /// Watchers held for the whole run, 0..=[`WATCHERS_MAX`] (0: no watches).
    pub watchers: u32,
    /// Watch streams holding them, 1..=watchers (ignored without watchers).
    pub watch_streams: u32,
    /// Which namespace each watcher watches and each key lies in.
    pub prefix_mode: PrefixMode,
    /// Deadline of one request, ms, 1..=[`MIXED_REQUEST_TIMEOUT_MS_MAX`].
    pub request_timeout_ms: u64,
    /// The run fails if some RPC type's p99.99 exceeds this, ms (put→event excluded).
    pub max_p9999_ms: Option<f64>,
    /// TLS for `https://` endpoints.
    pub tls: ClientTls,
}

impl MixedConfig {
    /// 60 s, 100 clients over 10 connections, 10 000 keys, 256-byte values, the
    /// default [`Mix`], 1 000 watchers on 10 streams (distinct prefixes), 10 s request
    /// deadline, no p99.99 limit.
    pub fn new(endpoints: Vec<String>) -> MixedConfig {
        MixedConfig {
            endpoints,
            clients: 100,
            conns: 10,
            duration_s: 60,
            key_space: 10_000,
            val_size: 256,
            mix: Mix::default(),
            watchers: 1_000,
            watch_streams: 10,
            prefix_mode: PrefixMode::Distinct,
            request_timeout_ms: 10_000,
            max_p9999_ms: None,
            tls: ClientTls::default(),
        }
    }

    /// Checks every field; the error names the flag and its allowed range.
    pub fn validate(&self) -> Result<()> {
        validate_endpoints(&self.endpoints)?;
        let range = |flag: &'static str, value: u64, min: u64, max: u64| {
            if value < min || value > max {
                Err(invalid(flag, format!("{value} is outside {min}..={max}")))
            } else {
                Ok(())
            }
        };
        range("clients", self.clients.into(), 1, CLIENTS_MAX.into())?;
        if self.conns == 0 || self.conns > self.clients {
            return Err(invalid(
                "conns",
                format!("{} is outside 1..=clients ({})", self.conns, self.clients),
            ));
        }
        range("duration-s", self.duration_s, 1, MIXED_DURATION_S_MAX)?;
        range("key-space", self.key_space, 1, MIXED_KEY_SPACE_MAX)?;
        range(
            "val-size",
            self.val_size.into(),
            STAMP_BYTES.into(),
            VAL_SIZE_MAX.into(),
        )?;
        self.mix.validate()?;
        range("watchers", self.watchers.into(), 0, WATCHERS_MAX.into())?;
        if self.watchers > 0 && (self.watch_streams == 0 || self.watch_streams > self.watchers) {
            return Err(invalid(
                "watch-streams",
                format!(
                    "{} is outside 1..=watchers ({})",
                    self.watch_streams, self.watchers
                ),
            ));
        }
        range(
            "request-timeout-ms",
            self.request_timeout_ms,
            1,
            MIXED_REQUEST_TIMEOUT_MS_MAX,
        )?;
        if let Some(max) = self.max_p9999_ms {
            if !(max.is_finite() && max > 0.0) {
                return Err(invalid("max-p9999-ms", format!("{max} is not above 0")));
            }
        }
        Ok(())
    }

    /// Watchers each put reaches: 0 without watchers.
    pub fn fanout(&self) -> u64 {
        if self.watchers == 0 {
            0
        } else {
            fanout(self.prefix_mode, self.watchers)
        }
    }
}

/// Latencies, error count and first error of one RPC type, shared by every client.
struct Recorder {
    histogram: Mutex<Histogram<u64>>,
    errors: AtomicU64,
    first_error: Mutex<Option<String>>,
}

impl Recorder {
    fn new() -> Recorder {
        Recorder {
            histogram: Mutex::new(new_latency_histogram()),
            errors: AtomicU64::new(0),
            first_error: Mutex::new(None),
        }
    }

    fn record(&self, latency_us: u64) {
        let mut histogram = self.histogram.lock().unwrap_or_else(|e| e.into_inner());
        record_latency_us(&mut histogram, latency_us);
    }

    fn fail(&self, error: impl FnOnce() -> String) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        let mut first = self.first_error.lock().unwrap_or_else(|e| e.into_inner());
        if first.is_none() {
            *first = Some(error());
        }
    }

    fn snapshot(&self) -> Histogram<u64> {
        self.histogram
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn report(&self, op: &str) -> OpReport {
        let first_error = self
            .first_error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        OpReport::from_histogram(
            op,
            &self.snapshot(),
            self.errors.load(Ordering::Relaxed),
            first_error,
        )
    }
}

/// State shared by the clients, the watch readers and the progress loop.
struct Shared {
    config: MixedConfig,
    /// Indexed like [`Op::ALL`].
    ops: Vec<Recorder>,
    /// Put→event latency; errors are stream failures.
    watch: Recorder,
    events: AtomicU64,
    /// Slowest successful request since the last progress line, µs.
    interval_max_us: AtomicU64,
    /// Origin of the send-time stamps.
    base: Instant,
    deadline: Duration,
    stop_at: Instant,
    /// [`make_value`] of the value size; its tail follows each stamp.
    filler: Vec<u8>,
}

impl Shared {
    fn recorder(&self, op: Op) -> &Recorder {
        &self.ops[op as usize]
    }

    /// A stamped value for a put sent now.
    fn value_now(&self) -> Vec<u8> {
        stamp_value(self.base.elapsed().as_nanos() as u64, &self.filler)
    }

    /// Sends `request` within the deadline and records its latency or its error
    /// under `op`; the response on success.
    async fn timed<T, E: std::fmt::Display>(
        &self,
        op: Op,
        request: impl Future<Output = std::result::Result<T, E>>,
    ) -> Option<T> {
        let sent = Instant::now();
        let outcome = tokio::time::timeout(self.deadline, request).await;
        let latency_us = sent.elapsed().as_micros() as u64;
        let recorder = self.recorder(op);
        match outcome {
            Ok(Ok(response)) => {
                recorder.record(latency_us);
                self.interval_max_us
                    .fetch_max(latency_us, Ordering::Relaxed);
                Some(response)
            }
            Ok(Err(e)) => {
                recorder.fail(|| e.to_string());
                None
            }
            Err(_) => {
                recorder.fail(|| format!("timed out after {:?}", self.deadline));
                None
            }
        }
    }

    /// The progress line: requests and errors so far, events, worst p99.99 so far, and
    /// the slowest request since the previous line (which it resets).
    fn progress_line(&self) -> String {
        let mut requests = 0;
        let mut errors = 0;
        let mut worst: Option<(f64, &str)> = None;
        for op in Op::ALL {
            let recorder = self.recorder(op);
            let histogram = recorder.snapshot();
            requests += histogram.len();
            errors += recorder.errors.load(Ordering::Relaxed);
            if !histogram.is_empty() {
                let p9999 = us_to_ms(histogram.value_at_quantile(0.9999));
                if worst.is_none_or(|(w, _)| p9999 > w) {
                    worst = Some((p9999, op.name()));
                }
            }
        }
        let elapsed_s = self.base.elapsed().as_secs_f64();
        let (p9999, op) = worst.unwrap_or((0.0, "-"));
        let interval_max_us = self.interval_max_us.swap(0, Ordering::Relaxed);
        format!(
            "mixed: {elapsed_s:.0} s of {}: {requests} ok ({:.0}/s), {errors} errors, \
             {} watch events, worst p99.99 {p9999:.3} ms ({op}), slowest since last line \
             {:.3} ms",
            self.config.duration_s,
            requests as f64 / elapsed_s.max(f64::MIN_POSITIVE),
            self.events.load(Ordering::Relaxed),
            us_to_ms(interval_max_us),
        )
    }
}

/// One client: picks operations until the run's end, one request in flight.
async fn client_loop(shared: Arc<Shared>, conn: Client, client: u32) {
    let config = &shared.config;
    let mut kv = conn.kv_client();
    let mut lease = conn.lease_client();
    let chooser = config.mix.chooser();
    let mut rng = StdRng::seed_from_u64(u64::from(client));
    let mut picker = KeyPicker::new(client, config.key_space, false);
    let key = |picker: &mut KeyPicker| {
        put_key(config.prefix_mode, config.watchers, picker.pick(0)).into_bytes()
    };
    // Bounded by the clock: every request has a deadline and the loop ends at stop_at.
    while Instant::now() < shared.stop_at {
        match chooser.choose(&mut rng) {
            MixOp::Put => {
                let put = kv.put(key(&mut picker), shared.value_now(), None);
                shared.timed(Op::Put, put).await;
            }
            MixOp::Range => {
                shared
                    .timed(Op::Range, kv.get(key(&mut picker), None))
                    .await;
            }
            MixOp::Lease => {
                let key = key(&mut picker);
                lease_cycle(&shared, &mut kv, &mut lease, key).await;
            }
        }
    }
}

/// Grant, attached put, one keep-alive, revoke; stops after a failed grant.
async fn lease_cycle(
    shared: &Shared,
    kv: &mut etcd_client::KvClient,
    lease: &mut etcd_client::LeaseClient,
    key: Vec<u8>,
) {
    let grant = lease.grant(LEASE_TTL_S, None);
    let Some(granted) = shared.timed(Op::LeaseGrant, grant).await else {
        return;
    };
    let id = granted.id();
    let options = PutOptions::new().with_lease(id);
    let put = kv.put(key, shared.value_now(), Some(options));
    shared.timed(Op::LeasePut, put).await;
    // etcd-client opens the stream, sends one request and waits for its answer
    // (failing on TTL ≤ 0, "lease not found"); dropping the pair closes the stream.
    shared.timed(Op::LeaseKeepAlive, lease.keep_alive(id)).await;
    shared.timed(Op::LeaseRevoke, lease.revoke(id)).await;
}

/// Reads one watch stream until `stop`: counts events and records put→event latency
/// of stamped put events. A failed or canceled stream is recorded and ends the reader.
async fn read_events(
    shared: Arc<Shared>,
    mut open: OpenStream,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    // Bounded by the caller: it sets `stop` after the drain.
    loop {
        let message = tokio::select! {
            message = open.stream.message() => message,
            _ = stop.wait_for(|stop| *stop) => break,
        };
        let arrived_ns = shared.base.elapsed().as_nanos() as u64;
        let response = match message {
            Ok(Some(response)) => response,
            Ok(None) => {
                shared
                    .watch
                    .fail(|| "watch stream closed by the server".into());
                break;
            }
            Err(e) => {
                shared.watch.fail(|| format!("watch stream: {e}"));
                break;
            }
        };
        if response.canceled() {
            let id = response.watch_id();
            let reason = response.cancel_reason().to_string();
            shared
                .watch
                .fail(|| format!("watcher {id} canceled: {reason:?}"));
        }
        let events = response.events();
        for event in events {
            let stamp = match (event.event_type(), event.kv()) {
                (EventType::Put, Some(kv)) => parse_stamp(kv.value()),
                _ => None,
            };
            if let Some(sent_ns) = stamp.filter(|sent| *sent <= arrived_ns) {
                shared.watch.record((arrived_ns - sent_ns) / 1_000);
            }
        }
        shared
            .events
            .fetch_add(events.len() as u64, Ordering::Relaxed);
    }
}

/// Polls Maintenance `Status` through `client` (each call bounded by
/// [`STATUS_TIMEOUT_MS`]) until the answering member knows a leader.
///
/// Errors: [`BenchError::Request`] when none is known within [`LEADER_WAIT_MS`].
async fn wait_for_leader(client: &Client) -> Result<()> {
    let mut maintenance = client.maintenance_client();
    let timeout = Duration::from_millis(STATUS_TIMEOUT_MS);
    let poll = Duration::from_millis(STATUS_POLL_MS);
    let started = Instant::now();
    // Bounded: each round takes at least STATUS_POLL_MS, the loop ends at LEADER_WAIT_MS.
    let mut last = String::from("no answer");
    while started.elapsed() < Duration::from_millis(LEADER_WAIT_MS) {
        match tokio::time::timeout(timeout, maintenance.status()).await {
            Ok(Ok(status)) if status.leader() != 0 => return Ok(()),
            Ok(Ok(_)) => last = "status names no leader".into(),
            Ok(Err(e)) => last = format!("status: {e}"),
            Err(_) => last = format!("status timed out after {timeout:?}"),
        }
        tokio::time::sleep(poll).await;
    }
    Err(BenchError::Request(format!(
        "no leader within {LEADER_WAIT_MS} ms ({last})"
    )))
}

/// Runs the mixed load: connects, waits for a leader, creates the watchers, runs the clients for
/// `config.duration_s` with a progress line every [`PROGRESS_INTERVAL_S`], waits up
/// to [`WATCH_DRAIN_TIMEOUT_MS`] for the expected watch events, and reports.
///
/// Errors: invalid config, a connection or warm-up failure, no leader within
/// [`LEADER_WAIT_MS`], watchers not created within [`WATCH_CREATE_TIMEOUT_MS`]. Failed requests are counted in the report.
pub async fn run_mixed(
    config: &MixedConfig,
    mut progress: impl FnMut(&str),
) -> Result<MixedReport> {
    config.validate()?;
    let options = connect_options(config.request_timeout_ms, &config.tls)?;
    let deadline = Duration::from_millis(config.request_timeout_ms);
    let warm_up = || WARM_UP_KEY.as_bytes().to_vec();
    let mut conns = Vec::with_capacity(config.conns as usize);
    for _ in 0..config.conns {
        conns.push(connect_warm(&config.endpoints, &options, warm_up(), deadline).await?);
    }
    wait_for_leader(&conns[0]).await?;
    let mut streams = Vec::new();
    if config.watchers > 0 {
        let watch_conn = connect_warm(&config.endpoints, &options, warm_up(), deadline).await?;
        let mut watch_config = WatchConfig::new(config.endpoints.clone());
        watch_config.watchers = config.watchers;
        watch_config.streams = config.watch_streams;
        watch_config.mode = config.prefix_mode;
        watch_config.create_timeout_ms = WATCH_CREATE_TIMEOUT_MS;
        let created = Instant::now();
        streams = open_watchers(&watch_conn, &watch_config).await?;
        progress(&format!(
            "mixed: {} watchers on {} streams created in {:.3} s",
            config.watchers,
            config.watch_streams,
            created.elapsed().as_secs_f64()
        ));
    }

    let base = Instant::now();
    let shared = Arc::new(Shared {
        config: config.clone(),
        ops: Op::ALL.iter().map(|_| Recorder::new()).collect(),
        watch: Recorder::new(),
        events: AtomicU64::new(0),
        interval_max_us: AtomicU64::new(0),
        base,
        deadline,
        stop_at: base + Duration::from_secs(config.duration_s),
        filler: make_value(config.val_size),
    });
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let readers: Vec<_> = streams
        .into_iter()
        .map(|open| tokio::spawn(read_events(Arc::clone(&shared), open, stop_rx.clone())))
        .collect();
    let clients: Vec<_> = (0..config.clients)
        .map(|client| {
            let conn = conns[(client % config.conns) as usize].clone();
            tokio::spawn(client_loop(Arc::clone(&shared), conn, client))
        })
        .collect();

    let task_errors = join_with_progress(&shared, clients, &mut progress).await;
    let elapsed_s = base.elapsed().as_secs_f64();
    let ops: Vec<OpReport> = Op::ALL
        .iter()
        .map(|op| shared.recorder(*op).report(op.name()))
        .collect();
    let count = |op: Op| ops[op as usize].count;
    let sent = |op: Op| ops[op as usize].count + ops[op as usize].errors;
    let fan = config.fanout();
    let expected_min = (count(Op::Put) + count(Op::LeasePut)) * fan;
    let expected_max = (sent(Op::Put) + sent(Op::LeasePut) + sent(Op::LeaseRevoke)) * fan;
    drain_events(&shared, &readers, expected_min).await;
    // `send` fails only when every reader is gone already.
    let _ = stop_tx.send(true);
    for reader in readers {
        if let Err(join) = reader.await {
            shared.watch.fail(|| format!("watch reader failed: {join}"));
        }
    }
    let watch = (config.watchers > 0).then(|| WatchEventReport {
        watchers: config.watchers,
        streams: config.watch_streams,
        mode: config.prefix_mode,
        events_received: shared.events.load(Ordering::Relaxed),
        events_expected_min: expected_min,
        events_expected_max: expected_max,
        latency: shared.watch.report("put→event"),
    });
    Ok(MixedReport {
        elapsed_s,
        clients: config.clients,
        conns: config.conns,
        mix: config.mix.to_string(),
        ops,
        watch,
        max_p9999_ms: config.max_p9999_ms,
        task_errors,
    })
}

/// Awaits every client task, calling `progress` every [`PROGRESS_INTERVAL_S`];
/// returns a message per task that panicked.
async fn join_with_progress(
    shared: &Shared,
    clients: Vec<tokio::task::JoinHandle<()>>,
    progress: &mut impl FnMut(&str),
) -> Vec<String> {
    let joined = async {
        let mut errors = Vec::new();
        for client in clients {
            if let Err(join) = client.await {
                errors.push(format!("client task failed: {join}"));
            }
        }
        errors
    };
    tokio::pin!(joined);
    let interval = Duration::from_secs(PROGRESS_INTERVAL_S);
    let mut ticker = tokio::time::interval_at((shared.base + interval).into(), interval);
    // Bounded: the clients stop at stop_at plus at most four request deadlines.
    loop {
        tokio::select! {
            errors = &mut joined => return errors,
            _ = ticker.tick() => progress(&shared.progress_line()),
        }
    }
}

/// Waits until `expected` events arrived, every reader ended, or
/// [`WATCH_DRAIN_TIMEOUT_MS`] passed.
async fn drain_events(shared: &Shared, readers: &[tokio::task::JoinHandle<()>], expected: u64) {
    let poll = Duration::from_millis(DRAIN_POLL_MS);
    // Bounded: at most WATCH_DRAIN_TIMEOUT_MS / DRAIN_POLL_MS + 1 polls.
    for _ in 0..=WATCH_DRAIN_TIMEOUT_MS / DRAIN_POLL_MS {
        if shared.events.load(Ordering::Relaxed) >= expected
            || readers.iter().all(|reader| reader.is_finished())
        {
            return;
        }
        tokio::time::sleep(poll).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> MixedConfig {
        MixedConfig::new(vec!["http://127.0.0.1:2379".into()])
    }

    fn error_of(config: MixedConfig) -> String {
        config.validate().unwrap_err().to_string()
    }

    #[test]
    fn mix_parses_and_prints() {
        assert_eq!(
            Mix::parse("put=45,range=45,lease=10").unwrap(),
            Mix::default()
        );
        let mix = Mix::parse(" lease = 3 , put=1").unwrap();
        assert_eq!(mix.weights, [1, 0, 3]);
        assert_eq!(mix.weight(MixOp::Lease), 3);
        assert_eq!(mix.weight(MixOp::Range), 0);
        assert_eq!(mix.to_string(), "put=1,range=0,lease=3");
        assert_eq!(Mix::parse(&mix.to_string()).unwrap(), mix);
    }

    #[test]
    fn mix_rejects_bad_input() {
        let error = |text: &str| Mix::parse(text).unwrap_err().to_string();
        assert_eq!(
            error("put=1,txn=1"),
            "invalid --mix: unknown operation \"txn\" (put, range, lease)"
        );
        assert_eq!(error("put=1,put=2"), "invalid --mix: put given twice");
        assert_eq!(error("put"), "invalid --mix: \"put\" is not name=weight");
        assert_eq!(
            error("put=-1"),
            "invalid --mix: weight \"-1\" is not a number"
        );
        assert_eq!(error("put=0,range=0"), "invalid --mix: every weight is 0");
        assert_eq!(error(""), "invalid --mix: \"\" is not name=weight");
        assert_eq!(
            error("range=1000001"),
            "invalid --mix: range=1000001 is outside 0..=1000000"
        );
        assert!(Mix::parse("range=1000000").is_ok());
    }

    #[test]
    fn weighted_choice_follows_the_weights() {
        let chooser = Mix::parse("put=45,range=45,lease=10").unwrap().chooser();
        let mut rng = StdRng::seed_from_u64(7);
        let mut counts = [0u32; 3];
        for _ in 0..100_000 {
            counts[chooser.choose(&mut rng) as usize] += 1;
        }
        // Binomial standard deviation at n = 100 000, p = 0.45 is about 157.
        assert!((44_000..46_000).contains(&counts[0]), "{counts:?}");
        assert!((44_000..46_000).contains(&counts[1]), "{counts:?}");
        assert!((9_400..10_600).contains(&counts[2]), "{counts:?}");
    }

    #[test]
    fn weighted_choice_never_picks_weight_zero() {
        let chooser = Mix::parse("range=0,lease=5").unwrap().chooser();
        let mut rng = StdRng::seed_from_u64(1);
        assert!((0..10_000).all(|_| chooser.choose(&mut rng) == MixOp::Lease));
    }

    #[test]
    fn stamps_round_trip() {
        let filler = make_value(64);
        for sent_ns in [0, 1, 0xdead_beef, u64::MAX] {
            let value = stamp_value(sent_ns, &filler);
            assert_eq!(value.len(), 64);
            assert_eq!(&value[16..], &filler[16..]);
            assert_eq!(parse_stamp(&value), Some(sent_ns));
        }
        assert_eq!(stamp_value(255, &make_value(16)), b"00000000000000ff");
        assert_eq!(parse_stamp(b"00000000000000f"), None, "too short");
        assert_eq!(parse_stamp(b"00000000000000fg"), None, "not hex");
        assert_eq!(parse_stamp(b"+0000000000000ff"), None, "sign");
        assert_eq!(parse_stamp(b""), None);
    }

    #[test]
    fn default_config_is_valid() {
        assert!(config().validate().is_ok());
        assert_eq!(config().fanout(), 1);
        let mut c = config();
        c.prefix_mode = PrefixMode::Shared;
        assert_eq!(c.fanout(), 1_000);
        c.watchers = 0;
        c.watch_streams = 0;
        assert!(c.validate().is_ok(), "no watchers, no streams needed");
        assert_eq!(c.fanout(), 0);
    }

    #[test]
    fn config_rejects_out_of_range_flags() {
        let mut c = config();
        c.clients = 0;
        assert_eq!(error_of(c), "invalid --clients: 0 is outside 1..=10000");
        let mut c = config();
        c.conns = 101;
        assert_eq!(
            error_of(c),
            "invalid --conns: 101 is outside 1..=clients (100)"
        );
        let mut c = config();
        c.duration_s = 0;
        assert_eq!(error_of(c), "invalid --duration-s: 0 is outside 1..=86400");
        let mut c = config();
        c.key_space = 0;
        assert_eq!(
            error_of(c),
            "invalid --key-space: 0 is outside 1..=100000000"
        );
        let mut c = config();
        c.val_size = 15;
        assert_eq!(
            error_of(c),
            "invalid --val-size: 15 is outside 16..=1500000"
        );
        let mut c = config();
        c.watch_streams = 1_001;
        assert_eq!(
            error_of(c),
            "invalid --watch-streams: 1001 is outside 1..=watchers (1000)"
        );
        let mut c = config();
        c.watchers = WATCHERS_MAX + 1;
        assert_eq!(
            error_of(c),
            "invalid --watchers: 100001 is outside 0..=100000"
        );
        let mut c = config();
        c.request_timeout_ms = 0;
        assert_eq!(
            error_of(c),
            "invalid --request-timeout-ms: 0 is outside 1..=600000"
        );
        let mut c = config();
        c.max_p9999_ms = Some(f64::NAN);
        assert_eq!(error_of(c), "invalid --max-p9999-ms: NaN is not above 0");
        let mut c = config();
        c.mix.weights = [0; 3];
        assert_eq!(error_of(c), "invalid --mix: every weight is 0");
        let mut c = config();
        c.endpoints = vec!["127.0.0.1:2379".into()];
        assert!(c.validate().is_err());
    }

    #[test]
    fn op_names_and_order() {
        let names: Vec<&str> = Op::ALL.iter().map(|op| op.name()).collect();
        assert_eq!(
            names,
            [
                "put",
                "range",
                "lease-grant",
                "lease-put",
                "lease-keepalive",
                "lease-revoke"
            ]
        );
        for (i, op) in Op::ALL.iter().enumerate() {
            assert_eq!(*op as usize, i);
        }
        for (i, op) in MixOp::ALL.iter().enumerate() {
            assert_eq!(*op as usize, i);
        }
    }
}
