//! `failover`: kill -9 the leader of a three-member cluster under a steady put load,
//! again and again, and measure how long writes stop; then read back every
//! acknowledged put (zero lost writes is the rule: Raft paper §5.4, Leader Completeness
//! — an acknowledged put is committed, and a committed entry is in every later
//! leader's log).
//!
//! Per kill: the leader is found from each member's Maintenance `Status`
//! ([`leader_index`]); it is killed with SIGKILL; *failover* is the time from the kill
//! to the first put acknowledged among those sent after the killed process was reaped
//! (an earlier put could be acknowledged late by a follower that applies an entry the
//! old leader committed, which would not show a working new leader); *new leader* is
//! the time until a surviving member's `Status` names itself leader. The killed member
//! is then restarted on its data dir and the next kill waits until it is healthy and its
//! Raft index is within `catch_up_entries_max` of the leader's.
//!
//! The load: `clients` tasks, each putting its own keys `failover/<client>/<seq>`
//! ([`failover_key`]) one at a time, starting on member `client % 3`. A put that fails
//! or passes its deadline moves the client to the next member, as clientv3 moves to
//! another endpoint, after [`RETRY_PAUSE_MS`]. Each client connects to every member
//! separately (one `etcd-client` `Client` per member URL), so the test controls which
//! member a put goes to.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use etcd_client::{Client, ConnectOptions, GetOptions, KvClient};
use serde::Serialize;

use crate::cluster::{leader_index, Cluster, CLUSTER_MEMBERS, STATUS_POLL_MS};
use crate::compare::Target;
use crate::error::{invalid, BenchError, Result};
use crate::keys::make_value;
use crate::load::{CONNECT_TIMEOUT_MS, VAL_SIZE_MAX};

/// Most kills one run accepts.
pub const KILLS_MAX: u32 = 1_000;
/// Most load clients of a failover run.
pub const FAILOVER_CLIENTS_MAX: u32 = 1_000;
/// Pause after a failed put before the client tries the next member, ms.
pub const RETRY_PAUSE_MS: u64 = 10;
/// Keys fetched per `Range` while reading back acknowledged puts.
pub const VERIFY_PAGE_KEYS: i64 = 10_000;
/// Prefix of every key the failover load writes.
pub const FAILOVER_PREFIX: &str = "failover/";

/// Parameters of a failover run (flags of `cairn-bench failover`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailoverConfig {
    /// The server binary and its name in the report.
    pub target: Target,
    /// Concurrent put clients, 1..=[`FAILOVER_CLIENTS_MAX`].
    pub clients: u32,
    /// Leader kills, 1..=[`KILLS_MAX`].
    pub kills: u32,
    /// Value size, bytes, 0..=[`VAL_SIZE_MAX`].
    pub val_size: u32,
    /// Deadline of one put, ms; a put past it counts as failed (outcome unknown).
    ///
    /// It bounds how precisely failover is measured: until a follower's election
    /// timeout fires it still follows the dead leader and forwards proposals to it
    /// (etcd-io/raft `raft.go` stepFollower, `MsgProp`), where they are lost, and the
    /// server answers only when its own request timeout passes; the client learns
    /// nothing before this deadline. So failover ms is at most new-leader ms plus this
    /// deadline (plus [`RETRY_PAUSE_MS`]). clientv3's `WithRequireLeader` would not
    /// help here (the follower believes it has a leader), and `etcd-client` cannot
    /// send that metadata anyway.
    pub request_timeout_ms: u64,
    /// Steady load before each kill, ms.
    pub steady_ms: u64,
    /// Longest wait after a kill for a new leader and the first acknowledged put, ms.
    pub failover_timeout_ms: u64,
    /// Longest wait for a restarted member to be healthy and caught up, ms.
    pub catch_up_timeout_ms: u64,
    /// A restarted member is caught up when its Raft index is at most this many
    /// entries behind the leader's.
    pub catch_up_entries_max: u64,
    /// How long the cluster may take to start, ms.
    pub startup_timeout_ms: u64,
    /// Most acknowledged puts remembered per client; a client that reaches it stops.
    pub acked_puts_per_client_max: u64,
}

/// Checks a duration flag in ms against `1..=max`.
fn check_ms(flag: &'static str, value: u64, max: u64) -> Result<()> {
    if value == 0 || value > max {
        return Err(invalid(flag, format!("{value} is outside 1..={max}")));
    }
    Ok(())
}

impl FailoverConfig {
    /// Defaults: 10 clients, 10 kills, 256-byte values, 500 ms put deadline (see
    /// [`FailoverConfig::request_timeout_ms`]), 1 s steady
    /// load before each kill, 30 s for a failover, 60 s for a rejoin, caught up within
    /// 100 entries, 20 s start-up, 1 000 000 acknowledged puts per client.
    pub fn new(target: Target) -> FailoverConfig {
        FailoverConfig {
            target,
            clients: 10,
            kills: 10,
            val_size: 256,
            request_timeout_ms: 500,
            steady_ms: 1_000,
            failover_timeout_ms: 30_000,
            catch_up_timeout_ms: 60_000,
            catch_up_entries_max: 100,
            startup_timeout_ms: 20_000,
            acked_puts_per_client_max: 1_000_000,
        }
    }

    /// Checks every field; the error names the flag and its allowed range.
    pub fn validate(&self) -> Result<()> {
        if self.clients == 0 || self.clients > FAILOVER_CLIENTS_MAX {
            return Err(invalid(
                "clients",
                format!("{} is outside 1..={FAILOVER_CLIENTS_MAX}", self.clients),
            ));
        }
        if self.kills == 0 || self.kills > KILLS_MAX {
            return Err(invalid(
                "kills",
                format!("{} is outside 1..={KILLS_MAX}", self.kills),
            ));
        }
        if self.val_size > VAL_SIZE_MAX {
            return Err(invalid(
                "val-size",
                format!("{} is outside 0..={VAL_SIZE_MAX}", self.val_size),
            ));
        }
        check_ms("request-timeout-ms", self.request_timeout_ms, 600_000)?;
        check_ms("steady-ms", self.steady_ms, 600_000)?;
        check_ms("failover-timeout-ms", self.failover_timeout_ms, 600_000)?;
        check_ms("catch-up-timeout-ms", self.catch_up_timeout_ms, 600_000)?;
        check_ms("startup-timeout-ms", self.startup_timeout_ms, 600_000)?;
        if self.catch_up_entries_max > 1_000_000 {
            return Err(invalid(
                "catch-up-entries-max",
                format!("{} is outside 0..=1000000", self.catch_up_entries_max),
            ));
        }
        if self.acked_puts_per_client_max == 0 || self.acked_puts_per_client_max > 100_000_000 {
            return Err(invalid(
                "acked-puts-per-client-max",
                format!(
                    "{} is outside 1..=100000000",
                    self.acked_puts_per_client_max
                ),
            ));
        }
        Ok(())
    }
}

/// The key of client `client`'s put number `seq`: `failover/<client, 4 digits>/<seq,
/// 12 digits>`, so keys sort by client, then by sequence.
pub fn failover_key(client: u32, seq: u64) -> String {
    format!("{FAILOVER_PREFIX}{client:04}/{seq:012}")
}

/// The median of `values`: the middle value, or the mean of the two middle values
/// when there is an even number; `None` when empty. NaNs sort last.
pub fn median(values: &[f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let mid = sorted.len() / 2;
    Some(if sorted.len() % 2 == 1 {
        sorted[mid]
    } else {
        (sorted[mid - 1] + sorted[mid]) / 2.0
    })
}

/// Minimum, median and maximum of a series, ms.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Spread {
    /// Smallest value, ms.
    pub min_ms: f64,
    /// Median ([`median`]), ms.
    pub median_ms: f64,
    /// Largest value, ms.
    pub max_ms: f64,
}

impl Spread {
    /// The spread of `values` (ms); `None` when empty.
    pub fn of(values: &[f64]) -> Option<Spread> {
        let median_ms = median(values)?;
        Some(Spread {
            min_ms: values.iter().copied().fold(f64::INFINITY, f64::min),
            median_ms,
            max_ms: values.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        })
    }
}

/// What one kill measured.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KillRecord {
    /// Name of the leader that was killed (`n1`…).
    pub killed: String,
    /// Name of the member that became leader.
    pub new_leader: String,
    /// Kill → first acknowledged put sent after the kill, ms.
    pub failover_ms: f64,
    /// Kill → a surviving member's `Status` naming itself leader, ms.
    pub leader_ms: f64,
    /// Restart of the killed member → healthy and caught up, ms.
    pub rejoin_ms: f64,
}

/// The result of a failover run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FailoverReport {
    /// Target name.
    pub target: String,
    /// Concurrent put clients.
    pub clients: u32,
    /// One record per kill, in order.
    pub kills: Vec<KillRecord>,
    /// Spread of `failover_ms` over the kills.
    pub failover: Option<Spread>,
    /// Spread of `leader_ms` over the kills.
    pub new_leader: Option<Spread>,
    /// Puts the cluster acknowledged.
    pub acked_puts: u64,
    /// Puts that failed or timed out (their outcome is unknown; not checked).
    pub failed_puts: u64,
    /// Acknowledged puts whose key was found when read back.
    pub read_back: u64,
    /// Acknowledged puts whose key was missing: must be 0.
    pub lost_writes: u64,
}

impl FailoverReport {
    /// The text report: a markdown table of the kills, the spreads, the put counts.
    pub fn to_text(&self) -> String {
        let mut out = format!(
            "{}: {CLUSTER_MEMBERS} members, {} clients, {} kills\n\n\
             | kill | killed | new leader | failover ms | new leader ms | rejoin ms |\n\
             |---:|---|---|---:|---:|---:|\n",
            self.target,
            self.clients,
            self.kills.len()
        );
        for (i, kill) in self.kills.iter().enumerate() {
            out.push_str(&format!(
                "| {} | {} | {} | {:.0} | {:.0} | {:.0} |\n",
                i + 1,
                kill.killed,
                kill.new_leader,
                kill.failover_ms,
                kill.leader_ms,
                kill.rejoin_ms
            ));
        }
        out.push('\n');
        let spread = |name: &str, spread: &Option<Spread>| match spread {
            Some(s) => format!(
                "{name} ms: min {:.0}  median {:.0}  max {:.0}\n",
                s.min_ms, s.median_ms, s.max_ms
            ),
            None => format!("{name} ms: none\n"),
        };
        out.push_str(&spread("failover", &self.failover));
        out.push_str(&spread("new leader", &self.new_leader));
        out.push_str(&format!(
            "acknowledged puts: {}, failed puts: {}, read back: {}, lost writes: {}\n",
            self.acked_puts, self.failed_puts, self.read_back, self.lost_writes
        ));
        out
    }
}

/// State shared by the load clients and the kill loop. Times are µs since `start`.
struct Shared {
    start: Instant,
    stop: AtomicBool,
    /// Puts sent at or after this time count for the current failover; `u64::MAX`
    /// while no kill is pending.
    count_from_us: AtomicU64,
    /// When the first counted put was acknowledged; `u64::MAX` until then.
    first_ack_us: AtomicU64,
    acked: AtomicU64,
    failed: AtomicU64,
}

impl Shared {
    fn now_us(&self) -> u64 {
        self.start.elapsed().as_micros() as u64
    }
}

/// One load client: puts its own keys until told to stop; returns the acknowledged
/// sequence numbers.
async fn failover_client(
    client: u32,
    members: Vec<KvClient>,
    value: Arc<Vec<u8>>,
    shared: Arc<Shared>,
    request_timeout: Duration,
    acked_max: u64,
) -> Vec<u64> {
    let mut acked = Vec::new();
    let mut member = client as usize % members.len();
    let mut seq = 0u64;
    // Bounded by `stop` and by `acked_max`.
    while !shared.stop.load(Ordering::Relaxed) && (acked.len() as u64) < acked_max {
        seq += 1;
        let key = failover_key(client, seq);
        let mut kv = members[member].clone();
        let sent_us = shared.now_us();
        let put = kv.put(key, value.to_vec(), None);
        match tokio::time::timeout(request_timeout, put).await {
            Ok(Ok(_)) => {
                acked.push(seq);
                shared.acked.fetch_add(1, Ordering::Relaxed);
                if sent_us >= shared.count_from_us.load(Ordering::Acquire) {
                    shared
                        .first_ack_us
                        .fetch_min(shared.now_us(), Ordering::AcqRel);
                }
            }
            _ => {
                shared.failed.fetch_add(1, Ordering::Relaxed);
                member = (member + 1) % members.len();
                tokio::time::sleep(Duration::from_millis(RETRY_PAUSE_MS)).await;
            }
        }
    }
    acked
}

/// Polls until a surviving member names itself leader and a put sent after the kill is
/// acknowledged. Returns (new leader index, leader µs, first ack µs) since `start`.
async fn wait_failover(
    cluster: &Cluster,
    killed: usize,
    shared: &Shared,
    deadline: Instant,
) -> Result<(usize, u64, u64)> {
    let mut leader: Option<(usize, u64)> = None;
    // Bounded by the deadline: each round sleeps STATUS_POLL_MS.
    loop {
        if leader.is_none() {
            let mut statuses = Vec::with_capacity(cluster.len());
            for index in 0..cluster.len() {
                statuses.push(if index == killed {
                    None
                } else {
                    cluster.status(index).await
                });
            }
            if let Some(index) = leader_index(&statuses) {
                leader = Some((index, shared.now_us()));
            }
        }
        let first_ack = shared.first_ack_us.load(Ordering::Acquire);
        if let (Some((index, leader_us)), true) = (leader, first_ack != u64::MAX) {
            return Ok((index, leader_us, first_ack));
        }
        if Instant::now() >= deadline {
            return Err(BenchError::Server {
                name: cluster.target().to_string(),
                reason: format!(
                    "after killing leader {}: {} within the failover timeout",
                    cluster.member_name(killed),
                    if leader.is_none() {
                        "no new leader"
                    } else {
                        "no put acknowledged"
                    }
                ),
            });
        }
        tokio::time::sleep(Duration::from_millis(STATUS_POLL_MS)).await;
    }
}

/// Waits until member `index` answers `Status` with a Raft index at most
/// `entries_max` behind the leader's.
async fn wait_caught_up(
    cluster: &Cluster,
    index: usize,
    entries_max: u64,
    deadline: Instant,
) -> Result<()> {
    // Bounded by the deadline: each round sleeps STATUS_POLL_MS.
    loop {
        let statuses = cluster.statuses().await;
        if let (Some(leader), Some(member)) = (leader_index(&statuses), statuses[index]) {
            let leader_raft_index = statuses[leader].map_or(0, |s| s.raft_index);
            if member.raft_index + entries_max >= leader_raft_index {
                return Ok(());
            }
        }
        if Instant::now() >= deadline {
            return Err(BenchError::Server {
                name: cluster.target().to_string(),
                reason: format!(
                    "restarted member {} did not catch up within the timeout (statuses {statuses:?})",
                    cluster.member_name(index)
                ),
            });
        }
        tokio::time::sleep(Duration::from_millis(STATUS_POLL_MS)).await;
    }
}

/// One kill: find the leader, kill it, wait for failover, restart it, wait until it is
/// caught up.
async fn kill_once(
    cluster: &mut Cluster,
    config: &FailoverConfig,
    shared: &Shared,
) -> Result<KillRecord> {
    let deadline = Instant::now() + Duration::from_millis(config.failover_timeout_ms);
    let killed = loop {
        if let Some(leader) = leader_index(&cluster.statuses().await) {
            break leader;
        }
        if Instant::now() >= deadline {
            return Err(BenchError::Server {
                name: cluster.target().to_string(),
                reason: "no leader to kill".into(),
            });
        }
        tokio::time::sleep(Duration::from_millis(STATUS_POLL_MS)).await;
    };
    shared.first_ack_us.store(u64::MAX, Ordering::Release);
    let kill_us = shared.now_us();
    cluster.kill(killed)?;
    shared
        .count_from_us
        .store(shared.now_us(), Ordering::Release);
    let deadline = Instant::now() + Duration::from_millis(config.failover_timeout_ms);
    let (new_leader, leader_us, first_ack_us) =
        wait_failover(cluster, killed, shared, deadline).await?;
    shared.count_from_us.store(u64::MAX, Ordering::Release);
    let restarted = Instant::now();
    let catch_up = Duration::from_millis(config.catch_up_timeout_ms);
    cluster.restart(killed, catch_up).await?;
    wait_caught_up(
        cluster,
        killed,
        config.catch_up_entries_max,
        restarted + catch_up,
    )
    .await?;
    Ok(KillRecord {
        killed: cluster.member_name(killed).to_string(),
        new_leader: cluster.member_name(new_leader).to_string(),
        failover_ms: first_ack_us.saturating_sub(kill_us) as f64 / 1000.0,
        leader_ms: leader_us.saturating_sub(kill_us) as f64 / 1000.0,
        rejoin_ms: restarted.elapsed().as_secs_f64() * 1000.0,
    })
}

/// Reads every key under [`FAILOVER_PREFIX`] (linearizable, keys only, in pages of
/// [`VERIFY_PAGE_KEYS`]).
async fn read_back_keys(endpoints: &[String], timeout: Duration) -> Result<HashSet<Vec<u8>>> {
    let options = ConnectOptions::new()
        .with_connect_timeout(Duration::from_millis(CONNECT_TIMEOUT_MS))
        .with_timeout(timeout);
    let client = Client::connect(endpoints, Some(options))
        .await
        .map_err(|source| BenchError::Connect {
            endpoints: endpoints.join(","),
            source: Box::new(source),
        })?;
    let mut kv = client.kv_client();
    let range_end = {
        let mut end = FAILOVER_PREFIX.as_bytes().to_vec();
        *end.last_mut().expect("prefix is not empty") += 1;
        end
    };
    let mut keys = HashSet::new();
    let mut from = FAILOVER_PREFIX.as_bytes().to_vec();
    // Bounded: every page either is the last or advances `from` past its last key.
    loop {
        let options = GetOptions::new()
            .with_range(range_end.clone())
            .with_limit(VERIFY_PAGE_KEYS)
            .with_keys_only();
        let page = tokio::time::timeout(timeout, kv.get(from.clone(), Some(options)))
            .await
            .map_err(|_| BenchError::Request("read-back range timed out".into()))?
            .map_err(|e| BenchError::Request(format!("read-back range: {e}")))?;
        let Some(last) = page.kvs().last() else { break };
        from = last.key().to_vec();
        from.push(0);
        for kv in page.kvs() {
            keys.insert(kv.key().to_vec());
        }
        if !page.more() {
            break;
        }
    }
    Ok(keys)
}

/// Runs the failover measurement: starts the cluster, the steady load and the kills,
/// then stops the load and reads back every acknowledged put. `progress` receives one
/// line per step (for stderr).
///
/// Errors: invalid config, a cluster that does not start, no load acknowledged before
/// the first kill, a failover or rejoin past its timeout, or a failed read-back.
pub async fn run_failover(
    config: &FailoverConfig,
    mut progress: impl FnMut(&str),
) -> Result<FailoverReport> {
    config.validate()?;
    let name = &config.target.name;
    progress(&format!(
        "{name}: starting a {CLUSTER_MEMBERS}-member cluster of {}",
        config.target.bin.display()
    ));
    let startup = Duration::from_millis(config.startup_timeout_ms);
    let mut cluster = Cluster::start(name, &config.target.bin, startup).await?;
    let request_timeout = Duration::from_millis(config.request_timeout_ms);
    let options = ConnectOptions::new()
        .with_connect_timeout(Duration::from_millis(CONNECT_TIMEOUT_MS))
        .with_timeout(request_timeout);
    let mut members = Vec::with_capacity(cluster.len());
    for url in cluster.client_urls() {
        let client = Client::connect([url.as_str()], Some(options.clone()))
            .await
            .map_err(|source| BenchError::Connect {
                endpoints: url.clone(),
                source: Box::new(source),
            })?;
        members.push(client.kv_client());
    }
    let shared = Arc::new(Shared {
        start: Instant::now(),
        stop: AtomicBool::new(false),
        count_from_us: AtomicU64::new(u64::MAX),
        first_ack_us: AtomicU64::new(u64::MAX),
        acked: AtomicU64::new(0),
        failed: AtomicU64::new(0),
    });
    let value = Arc::new(make_value(config.val_size));
    let tasks: Vec<_> = (0..config.clients)
        .map(|client| {
            tokio::spawn(failover_client(
                client,
                members.clone(),
                Arc::clone(&value),
                Arc::clone(&shared),
                request_timeout,
                config.acked_puts_per_client_max,
            ))
        })
        .collect();
    progress(&format!("{name}: {} clients putting", config.clients));
    let mut kills = Vec::with_capacity(config.kills as usize);
    let mut outcome = Ok(());
    for kill in 1..=config.kills {
        tokio::time::sleep(Duration::from_millis(config.steady_ms)).await;
        if shared.acked.load(Ordering::Relaxed) == 0 {
            outcome = Err(BenchError::Request(format!(
                "no put acknowledged before kill {kill} (first {} ms of load)",
                config.steady_ms
            )));
            break;
        }
        match kill_once(&mut cluster, config, &shared).await {
            Ok(record) => {
                progress(&format!(
                    "{name}: kill {kill}: leader {} killed, failover {:.0} ms, new leader {} after {:.0} ms, rejoined in {:.0} ms",
                    record.killed, record.failover_ms, record.new_leader, record.leader_ms, record.rejoin_ms
                ));
                kills.push(record);
            }
            Err(e) => {
                outcome = Err(e);
                break;
            }
        }
    }
    shared.stop.store(true, Ordering::Relaxed);
    let mut acked_keys = Vec::new();
    for (client, task) in tasks.into_iter().enumerate() {
        let seqs = task
            .await
            .map_err(|e| BenchError::Request(format!("load client {client} failed: {e}")))?;
        acked_keys.extend(seqs.into_iter().map(|seq| failover_key(client as u32, seq)));
    }
    outcome?;
    progress(&format!(
        "{name}: reading back {} acknowledged puts",
        acked_keys.len()
    ));
    let found = read_back_keys(&cluster.client_urls(), Duration::from_secs(60)).await?;
    let read_back = acked_keys
        .iter()
        .filter(|key| found.contains(key.as_bytes()))
        .count() as u64;
    let failover_ms: Vec<f64> = kills.iter().map(|k| k.failover_ms).collect();
    let leader_ms: Vec<f64> = kills.iter().map(|k| k.leader_ms).collect();
    Ok(FailoverReport {
        target: name.clone(),
        clients: config.clients,
        failover: Spread::of(&failover_ms),
        new_leader: Spread::of(&leader_ms),
        kills,
        acked_puts: acked_keys.len() as u64,
        failed_puts: shared.failed.load(Ordering::Relaxed),
        read_back,
        lost_writes: acked_keys.len() as u64 - read_back,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn config() -> FailoverConfig {
        FailoverConfig::new(Target {
            name: "cairn".into(),
            bin: PathBuf::from("cairn"),
        })
    }

    #[test]
    fn medians() {
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[4.0]), Some(4.0));
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[10.0, 1.0, 4.0, 2.0]), Some(3.0));
        assert_eq!(median(&[5.0, 5.0]), Some(5.0));
    }

    #[test]
    fn spreads() {
        assert_eq!(Spread::of(&[]), None);
        assert_eq!(
            Spread::of(&[1200.0, 900.0, 3100.0]),
            Some(Spread {
                min_ms: 900.0,
                median_ms: 1200.0,
                max_ms: 3100.0
            })
        );
    }

    #[test]
    fn keys_sort_by_client_then_seq() {
        assert_eq!(failover_key(3, 17), "failover/0003/000000000017");
        assert!(failover_key(0, 999) < failover_key(0, 1000));
        assert!(failover_key(0, 999_999) < failover_key(1, 1));
    }

    #[test]
    fn validation() {
        assert!(config().validate().is_ok());
        let mut c = config();
        c.kills = 0;
        assert_eq!(
            c.validate().unwrap_err().to_string(),
            "invalid --kills: 0 is outside 1..=1000"
        );
        let mut c = config();
        c.clients = 1001;
        assert_eq!(
            c.validate().unwrap_err().to_string(),
            "invalid --clients: 1001 is outside 1..=1000"
        );
        let mut c = config();
        c.failover_timeout_ms = 0;
        assert_eq!(
            c.validate().unwrap_err().to_string(),
            "invalid --failover-timeout-ms: 0 is outside 1..=600000"
        );
        let mut c = config();
        c.val_size = VAL_SIZE_MAX + 1;
        assert!(c.validate().is_err());
    }

    #[test]
    fn report_text() {
        let report = FailoverReport {
            target: "cairn".into(),
            clients: 10,
            kills: vec![
                KillRecord {
                    killed: "n1".into(),
                    new_leader: "n3".into(),
                    failover_ms: 1234.4,
                    leader_ms: 1100.0,
                    rejoin_ms: 520.6,
                },
                KillRecord {
                    killed: "n3".into(),
                    new_leader: "n2".into(),
                    failover_ms: 1500.0,
                    leader_ms: 1400.2,
                    rejoin_ms: 610.0,
                },
            ],
            failover: Spread::of(&[1234.4, 1500.0]),
            new_leader: Spread::of(&[1100.0, 1400.2]),
            acked_puts: 5000,
            failed_puts: 12,
            read_back: 5000,
            lost_writes: 0,
        };
        assert_eq!(
            report.to_text(),
            "cairn: 3 members, 10 clients, 2 kills\n\n\
             | kill | killed | new leader | failover ms | new leader ms | rejoin ms |\n\
             |---:|---|---|---:|---:|---:|\n\
             | 1 | n1 | n3 | 1234 | 1100 | 521 |\n\
             | 2 | n3 | n2 | 1500 | 1400 | 610 |\n\
             \n\
             failover ms: min 1234  median 1367  max 1500\n\
             new leader ms: min 1100  median 1250  max 1400\n\
             acknowledged puts: 5000, failed puts: 12, read back: 5000, lost writes: 0\n"
        );
        let json: serde_json::Value = serde_json::to_value(&report).unwrap();
        assert_eq!(json["lost_writes"], 0);
        assert_eq!(json["kills"][1]["new_leader"], "n2");
        assert_eq!(json["failover"]["max_ms"], 1500.0);
    }
}
