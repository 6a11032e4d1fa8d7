//! The `kube` workload: what kube-apiserver sends to etcd (k8s.io/apiserver
//! `pkg/storage/etcd3/store.go`, `compact.go`, `lease_manager.go`).
//!
//! Each request is, by weight ([`KubeConfig`]):
//! - update: `GuaranteedUpdate`'s optimistic put, a Txn
//!   `If(mod_revision(key) == cached) Then(Put(updated object)) Else(Get)`, starting from
//!   the client's cached copy (the apiserver's watch cache); a failed compare (a
//!   conflict, counted) takes the current object from the Else branch's Range response
//!   and retries the update on it (counted as a retry), at most
//!   [`KUBE_UPDATE_ATTEMPTS_MAX`] times — the first update of a key is its create
//!   (`mod_revision == 0`). The update is `tryUpdate` of a counter: an object's value
//!   starts with the number of successful updates it has had ([`object_value`]), so
//!   every object's value equals its etcd version when no update was lost;
//! - get: a linearizable Range of one object (a quorum read);
//! - list: one page of a paginated list of the whole `/registry/pods/` prefix with
//!   `--kube-page-size` keys; later pages are read at the first page's revision from
//!   the last key returned, as the apiserver's `continue` tokens do; a compacted
//!   revision restarts the list (counted);
//! - event: a Put under `/registry/events/` attached to a short-TTL lease, one lease
//!   reused for a while as `lease_manager.go` does (reused for half its TTL here).
//!
//! Beside the clients, [`KubeBackground`] holds `--kube-watchers` watches on
//! `/registry/` with prev_kv and progress notify (the watch cache's), and compacts
//! every `--kube-compact-interval-s` through the `compact_rev_key` CAS of `compact.go`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use etcd_client::{Client, Compare, CompareOp, GetOptions, PutOptions, Txn, TxnOp, WatchOptions};

use crate::error::{invalid, Result};
use crate::keys::SplitMix64;
use crate::ops::{first_range_kvs, Counters};

/// Prefix of the objects updated, read and listed.
pub const KUBE_PODS_PREFIX: &str = "/registry/pods/";
/// Prefix of the event keys (each with a lease).
pub const KUBE_EVENTS_PREFIX: &str = "/registry/events/";
/// Prefix the background watchers watch.
pub const KUBE_WATCH_PREFIX: &str = "/registry/";
/// The key of kube-apiserver's compaction CAS (`compact.go` `compactRevKey`).
pub const COMPACT_REV_KEY: &str = "compact_rev_key";
/// Namespaces the objects are spread over.
pub const KUBE_NAMESPACES: u64 = 10;
/// Most Txns of one update (the first and its retries) before it counts as an error.
/// kube-apiserver's `GuaranteedUpdate` loops until it succeeds; a bench run must end.
pub const KUBE_UPDATE_ATTEMPTS_MAX: u32 = 100;
/// Bytes of the update counter that starts every object's value (decimal, zero-padded).
pub const KUBE_COUNTER_BYTES: usize = 20;

/// Parameters of the `kube` workload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KubeConfig {
    /// Objects under [`KUBE_PODS_PREFIX`], 1..=10 000 000.
    pub objects: u64,
    /// Keys per list page (the apiserver's `limit`), 1..=100 000.
    pub page_size: u32,
    /// TTL of the event leases, s, 1..=86 400.
    pub event_ttl_s: i64,
    /// Background watchers on [`KUBE_WATCH_PREFIX`], 0..=1000.
    pub watchers: u32,
    /// Seconds between compactions; 0: none.
    pub compact_interval_s: u64,
    /// Weights of update, get, list and event requests.
    pub weights: [u32; 4],
}

impl Default for KubeConfig {
    /// 1000 objects, pages of 500, 60 s event leases, 4 watchers, compaction every
    /// 10 s, weights update 50, get 20, list 10, event 20.
    fn default() -> KubeConfig {
        KubeConfig {
            objects: 1_000,
            page_size: 500,
            event_ttl_s: 60,
            watchers: 4,
            compact_interval_s: 10,
            weights: [50, 20, 10, 20],
        }
    }
}

impl KubeConfig {
    /// Checks every field; the error names the flag.
    pub fn validate(&self) -> Result<()> {
        if self.objects == 0 || self.objects > 10_000_000 {
            return Err(invalid(
                "kube-objects",
                format!("{} is outside 1..=10000000", self.objects),
            ));
        }
        if self.page_size == 0 || self.page_size > 100_000 {
            return Err(invalid(
                "kube-page-size",
                format!("{} is outside 1..=100000", self.page_size),
            ));
        }
        if self.event_ttl_s <= 0 || self.event_ttl_s > 86_400 {
            return Err(invalid(
                "kube-event-ttl-s",
                format!("{} is outside 1..=86400", self.event_ttl_s),
            ));
        }
        if self.watchers > 1_000 {
            return Err(invalid(
                "kube-watchers",
                format!("{} is outside 0..=1000", self.watchers),
            ));
        }
        if self.weights.iter().all(|&w| w == 0) || self.weights.iter().any(|&w| w > 1_000) {
            return Err(invalid(
                "kube-mix",
                "weights must be 0..=1000 and not all 0",
            ));
        }
        Ok(())
    }

    /// Parses `update=50,get=20,list=10,event=20` (left-out names weigh 0).
    pub fn parse_mix(text: &str) -> Result<[u32; 4]> {
        let mut weights = [0; 4];
        for part in text.split(',').filter(|p| !p.is_empty()) {
            let (name, weight) = part
                .split_once('=')
                .ok_or_else(|| invalid("kube-mix", format!("{part:?} is not name=weight")))?;
            let slot = ["update", "get", "list", "event"]
                .iter()
                .position(|n| *n == name)
                .ok_or_else(|| invalid("kube-mix", format!("unknown request {name:?}")))?;
            weights[slot] = weight
                .parse()
                .map_err(|_| invalid("kube-mix", format!("{weight:?} is not a number")))?;
        }
        Ok(weights)
    }
}

/// Key of object `index`: `/registry/pods/ns{index % 10}/pod-{index:08}`.
pub fn object_key(index: u64) -> Vec<u8> {
    format!(
        "{KUBE_PODS_PREFIX}ns{}/pod-{index:08}",
        index % KUBE_NAMESPACES
    )
    .into_bytes()
}

/// An object's value after its `updates`-th successful update: the counter in
/// [`KUBE_COUNTER_BYTES`] decimal digits, then `filler` past that many bytes (so the
/// value keeps `--val-size` when it is larger).
pub fn object_value(updates: u64, filler: &[u8]) -> Vec<u8> {
    let mut value = format!("{updates:0width$}", width = KUBE_COUNTER_BYTES).into_bytes();
    value.extend(filler.iter().skip(KUBE_COUNTER_BYTES));
    value
}

/// The update counter of an object's value ([`object_value`]); `None` for a value this
/// workload did not write.
pub fn object_updates(value: &[u8]) -> Option<u64> {
    let digits = value.get(..KUBE_COUNTER_BYTES)?;
    std::str::from_utf8(digits).ok()?.parse().ok()
}

/// The end of the range covering every key that starts with `prefix` (etcd's
/// `GetPrefixRangeEnd`).
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

/// What a client knows of one object: its mod_revision (0: absent) and update counter.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct ObjectState {
    mod_revision: i64,
    updates: u64,
}

impl ObjectState {
    /// The state of `kv` (`None`: the object does not exist). Errors: a value this
    /// workload did not write.
    fn of(kv: Option<&etcd_client::KeyValue>) -> std::result::Result<ObjectState, String> {
        let Some(kv) = kv else {
            return Ok(ObjectState::default());
        };
        let updates = object_updates(kv.value()).ok_or_else(|| {
            format!(
                "object {} holds a value the kube workload did not write",
                String::from_utf8_lossy(kv.key())
            )
        })?;
        Ok(ObjectState {
            mod_revision: kv.mod_revision(),
            updates,
        })
    }
}

/// One kube client's state between requests.
pub(crate) struct KubeClient {
    index: u32,
    config: KubeConfig,
    counters: Arc<Counters>,
    /// Last state seen per object (absent: not seen, expected not to exist).
    objects: HashMap<u64, ObjectState>,
    /// Next list page: (start key, revision of the list).
    cursor: Option<(Vec<u8>, i64)>,
    /// Event lease: (id, granted at).
    lease: Option<(i64, Instant)>,
    events: u64,
}

impl KubeClient {
    /// State of client number `index`.
    pub(crate) fn new(index: u32, config: KubeConfig, counters: Arc<Counters>) -> KubeClient {
        KubeClient {
            index,
            config,
            counters,
            objects: HashMap::new(),
            cursor: None,
            lease: None,
            events: 0,
        }
    }

    /// One request, its kind drawn by weight with `rng`.
    pub(crate) async fn send(
        &mut self,
        client: &Client,
        rng: &mut SplitMix64,
        value: &[u8],
    ) -> std::result::Result<(), String> {
        let total: u32 = self.config.weights.iter().sum();
        let mut draw = rng.below(u64::from(total)) as u32;
        let mut kind = 0;
        for (i, &w) in self.config.weights.iter().enumerate() {
            if draw < w {
                kind = i;
                break;
            }
            draw -= w;
        }
        let object = rng.below(self.config.objects);
        match kind {
            0 => self.update(client, object, value).await,
            1 => self.get(client, object).await,
            2 => self.list(client).await.map_err(|e| e.to_string()),
            _ => self.event(client, value).await.map_err(|e| e.to_string()),
        }
    }

    /// kube-apiserver's `GuaranteedUpdate` (storage/etcd3 `store.go`): the update of the
    /// cached state in a Txn guarded by its mod_revision; on a failed compare the Else
    /// branch's Range gives the current state (`getState`, `origStateIsCurrent = true`)
    /// and the update is tried again on it. Errors: a failed Txn, a value this workload
    /// did not write, or [`KUBE_UPDATE_ATTEMPTS_MAX`] conflicts in a row.
    async fn update(
        &mut self,
        client: &Client,
        object: u64,
        value: &[u8],
    ) -> std::result::Result<(), String> {
        let key = object_key(object);
        let mut state = self.objects.get(&object).copied().unwrap_or_default();
        for attempt in 0..KUBE_UPDATE_ATTEMPTS_MAX {
            if attempt > 0 {
                Counters::bump(&self.counters.kube_retries);
            }
            let updated = object_value(state.updates + 1, value);
            let txn = Txn::new()
                .when([Compare::mod_revision(
                    key.clone(),
                    CompareOp::Equal,
                    state.mod_revision,
                )])
                .and_then([TxnOp::put(key.clone(), updated, None)])
                .or_else([TxnOp::get(key.clone(), None)]);
            let answer = client
                .kv_client()
                .txn(txn)
                .await
                .map_err(|e| e.to_string())?;
            if answer.succeeded() {
                let revision = answer.header().map_or(0, |h| h.revision());
                let done = ObjectState {
                    mod_revision: revision,
                    updates: state.updates + 1,
                };
                self.objects.insert(object, done);
                Counters::bump(&self.counters.kube_updates);
                return Ok(());
            }
            Counters::bump(&self.counters.kube_conflicts);
            let responses = answer.op_responses();
            state = ObjectState::of(first_range_kvs(&responses).and_then(|kvs| kvs.first()))?;
            self.objects.insert(object, state);
        }
        Err(format!(
            "update of {}: {KUBE_UPDATE_ATTEMPTS_MAX} conflicts in a row",
            String::from_utf8_lossy(&key)
        ))
    }

    async fn get(&mut self, client: &Client, object: u64) -> std::result::Result<(), String> {
        let answer = client
            .kv_client()
            .get(object_key(object), None)
            .await
            .map_err(|e| e.to_string())?;
        let state = ObjectState::of(answer.kvs().first())?;
        self.objects.insert(object, state);
        Ok(())
    }

    async fn list(&mut self, client: &Client) -> std::result::Result<(), etcd_client::Error> {
        let end = prefix_end(KUBE_PODS_PREFIX.as_bytes());
        let (start, revision) = self
            .cursor
            .take()
            .unwrap_or_else(|| (KUBE_PODS_PREFIX.as_bytes().to_vec(), 0));
        let page = |start: Vec<u8>, revision: i64| {
            let options = GetOptions::new()
                .with_range(end.clone())
                .with_limit(i64::from(self.config.page_size))
                .with_revision(revision);
            let mut kv = client.kv_client();
            async move { kv.get(start, Some(options)).await }
        };
        let answer = match page(start, revision).await {
            Err(e) if revision != 0 && e.to_string().contains("compacted") => {
                Counters::bump(&self.counters.kube_list_restarts);
                page(KUBE_PODS_PREFIX.as_bytes().to_vec(), 0).await?
            }
            other => other?,
        };
        Counters::bump(&self.counters.kube_list_pages);
        let list_revision = if revision != 0 {
            revision
        } else {
            answer.header().map_or(0, |h| h.revision())
        };
        if answer.more() {
            if let Some(last) = answer.kvs().last() {
                let mut next = last.key().to_vec();
                next.push(0);
                self.cursor = Some((next, list_revision));
            }
        }
        Ok(())
    }

    async fn event(
        &mut self,
        client: &Client,
        value: &[u8],
    ) -> std::result::Result<(), etcd_client::Error> {
        let reuse = Duration::from_secs(self.config.event_ttl_s as u64 / 2);
        let lease = match self.lease {
            Some((id, granted)) if granted.elapsed() < reuse => id,
            _ => {
                let grant = client
                    .lease_client()
                    .grant(self.config.event_ttl_s, None)
                    .await?;
                Counters::bump(&self.counters.kube_leases);
                self.lease = Some((grant.id(), Instant::now()));
                grant.id()
            }
        };
        self.events += 1;
        let key = format!(
            "{KUBE_EVENTS_PREFIX}ns{}/event-{}-{}",
            self.events % KUBE_NAMESPACES,
            self.index,
            self.events
        );
        let options = PutOptions::new().with_lease(lease);
        client
            .kv_client()
            .put(key, value.to_vec(), Some(options))
            .await?;
        Ok(())
    }
}

/// The watchers and the compactor that run beside the kube clients.
pub(crate) struct KubeBackground {
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl KubeBackground {
    /// Opens the watchers (each on its own stream, prev_kv and progress notify) and
    /// starts the compactor. A watch that cannot be opened is left out.
    pub(crate) async fn start(
        client: Client,
        config: KubeConfig,
        counters: Arc<Counters>,
    ) -> KubeBackground {
        let mut tasks = Vec::new();
        for _ in 0..config.watchers {
            let options = WatchOptions::new()
                .with_prefix()
                .with_prev_key()
                .with_progress_notify();
            let Ok((watcher, mut stream)) = client
                .watch_client()
                .watch(KUBE_WATCH_PREFIX, Some(options))
                .await
            else {
                continue;
            };
            let counters = Arc::clone(&counters);
            tasks.push(tokio::spawn(async move {
                let _watcher = watcher;
                while let Ok(Some(answer)) = stream.message().await {
                    let events = answer.events().len() as u64;
                    if events == 0 && !answer.created() {
                        Counters::bump(&counters.kube_progress_notifies);
                    }
                    counters
                        .kube_watch_events
                        .fetch_add(events, std::sync::atomic::Ordering::Relaxed);
                }
            }));
        }
        if config.compact_interval_s > 0 {
            let interval = Duration::from_secs(config.compact_interval_s);
            tasks.push(tokio::spawn(compactor(client, interval, counters)));
        }
        KubeBackground { tasks }
    }

    /// Stops the watchers and the compactor.
    pub(crate) async fn stop(self) {
        for task in &self.tasks {
            task.abort();
        }
        for task in self.tasks {
            let _ = task.await;
        }
    }
}

/// kube-apiserver's compaction loop (`compact.go`): every `interval`, a Txn
/// `If(version(compact_rev_key) == t) Then(Put(compact_rev_key, rev)) Else(Get)`; the
/// winner compacts to the revision it saw one interval before, so only one apiserver
/// of many compacts per interval.
async fn compactor(client: Client, interval: Duration, counters: Arc<Counters>) {
    let mut version = 0i64;
    let mut revision = 0i64;
    loop {
        tokio::time::sleep(interval).await;
        let mut kv = client.kv_client();
        let txn = Txn::new()
            .when([Compare::version(COMPACT_REV_KEY, CompareOp::Equal, version)])
            .and_then([TxnOp::put(COMPACT_REV_KEY, revision.to_string(), None)])
            .or_else([TxnOp::get(COMPACT_REV_KEY, None)]);
        let Ok(answer) = kv.txn(txn).await else {
            continue;
        };
        let current = answer.header().map_or(0, |h| h.revision());
        if !answer.succeeded() {
            let responses = answer.op_responses();
            version = first_range_kvs(&responses)
                .and_then(|kvs| kvs.first())
                .map_or(0, |kv| kv.version());
            revision = current;
            continue;
        }
        version += 1;
        if revision != 0 && kv.compact(revision, None).await.is_ok() {
            Counters::bump(&counters.kube_compactions);
        }
        revision = current;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_prefix_end() {
        assert_eq!(object_key(12), b"/registry/pods/ns2/pod-00000012".to_vec());
        assert_eq!(prefix_end(b"/registry/pods/"), b"/registry/pods0".to_vec());
        assert_eq!(prefix_end(b"a\xff"), b"b".to_vec());
        assert_eq!(prefix_end(b"\xff"), vec![0]);
    }

    #[test]
    fn object_values_carry_the_update_counter() {
        let value = object_value(7, &[b'x'; 25]);
        assert_eq!(value, b"00000000000000000007xxxxx".to_vec());
        assert_eq!(object_updates(&value), Some(7));
        assert_eq!(object_value(3, b"short").len(), KUBE_COUNTER_BYTES);
        assert_eq!(object_updates(b"123"), None);
        assert_eq!(object_updates(&[b'z'; 30]), None);
    }

    #[test]
    fn mix_parses_and_validates() {
        assert_eq!(
            KubeConfig::parse_mix("update=5,list=1").unwrap(),
            [5, 0, 1, 0]
        );
        assert!(KubeConfig::parse_mix("delete=1").is_err());
        assert!(KubeConfig::default().validate().is_ok());
        let zero = KubeConfig {
            weights: [0; 4],
            ..KubeConfig::default()
        };
        assert!(zero.validate().is_err());
    }
}
