//! One client's requests for each [`Workload`], with the state a client keeps between
//! them (a lease and its keep-alive stream, kube's cached object states and list
//! cursor), and the counters a run reports beside its latencies.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use etcd_client::{
    Client, Compare, CompareOp, GetOptions, LeaseKeepAliveStream, LeaseKeeper, Txn, TxnOp,
    TxnOpResponse,
};
use serde::Serialize;

use crate::keys::{key_for, SplitMix64};
use crate::kube::KubeClient;
use crate::load::{key_index, LoadConfig, Workload};
use crate::selfcpu::SelfCpu;
use crate::stats::{Summary, SummaryJson};

/// TTL of the lease each `lease-keepalive` client keeps alive, s (etcd
/// `tools/benchmark/cmd/lease.go` grants 100).
pub const LEASE_KEEPALIVE_TTL_S: i64 = 100;
/// Most attempts of one `stm` transaction before it counts as an error.
pub const STM_ATTEMPTS_MAX: u32 = 100;

/// Counters a run reports beside latencies; all start at 0.
#[derive(Debug, Default)]
pub struct Counters {
    /// `stm`: commits that failed their compares and were retried.
    pub stm_retries: AtomicU64,
    /// `kube`: optimistic update Txns whose compare failed (the Else get gave the
    /// current object), as kube-apiserver's GuaranteedUpdate conflicts.
    pub kube_conflicts: AtomicU64,
    /// `kube`: update Txns sent again on the current object after a conflict.
    pub kube_retries: AtomicU64,
    /// `kube`: updates that succeeded (one put of the object each).
    pub kube_updates: AtomicU64,
    /// `kube`: list pages served.
    pub kube_list_pages: AtomicU64,
    /// `kube`: paginated lists restarted because their revision was compacted.
    pub kube_list_restarts: AtomicU64,
    /// `kube`: leases granted for events.
    pub kube_leases: AtomicU64,
    /// `kube`: watch events received by the watchers (progress notifications apart).
    pub kube_watch_events: AtomicU64,
    /// `kube`: progress notifications received.
    pub kube_progress_notifies: AtomicU64,
    /// `kube`: compactions done through the `compact_rev_key` CAS.
    pub kube_compactions: AtomicU64,
}

impl Counters {
    /// Adds 1 to `counter`.
    pub fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// The non-zero counters by name.
    pub fn snapshot(&self) -> BTreeMap<String, u64> {
        let all = [
            ("stm_retries", &self.stm_retries),
            ("kube_conflicts", &self.kube_conflicts),
            ("kube_retries", &self.kube_retries),
            ("kube_updates", &self.kube_updates),
            ("kube_list_pages", &self.kube_list_pages),
            ("kube_list_restarts", &self.kube_list_restarts),
            ("kube_leases", &self.kube_leases),
            ("kube_watch_events", &self.kube_watch_events),
            ("kube_progress_notifies", &self.kube_progress_notifies),
            ("kube_compactions", &self.kube_compactions),
        ];
        all.into_iter()
            .map(|(name, c)| (name.to_string(), c.load(Ordering::Relaxed)))
            .filter(|(_, v)| *v > 0)
            .collect()
    }
}

/// One run's full report: latencies, the load generator's own CPU, workload counters.
#[derive(Debug, Clone, PartialEq)]
pub struct RunReport {
    /// Throughput and latency percentiles of successful requests.
    pub summary: Summary,
    /// The bench process's CPU use over the run.
    pub cpu: SelfCpu,
    /// Workload counters ([`Counters::snapshot`]).
    pub counters: BTreeMap<String, u64>,
}

/// The JSON shape of a [`RunReport`]: the summary's fields (latencies in ms, throughput
/// in requests/s) and the report's own.
#[derive(Debug, Serialize)]
struct RunReportJson<'a> {
    requests: u64,
    #[serde(flatten)]
    summary: SummaryJson<'a>,
    bench_cpu_pct_of_core: f64,
    bench_cpu_pct_of_all_cores: f64,
    bench_cpu_saturated: bool,
    counters: &'a BTreeMap<String, u64>,
}

impl RunReport {
    /// Requests answered or failed (`ops + errors`).
    pub fn requests(&self) -> u64 {
        self.summary.ops + self.summary.errors
    }

    /// Text: the summary's lines, the bench CPU line, the counters, a saturation
    /// warning when [`SelfCpu::saturated`].
    pub fn to_text(&self) -> String {
        let mut text = self.summary.to_text();
        text.push_str(&self.cpu.to_text());
        for (name, value) in &self.counters {
            text.push_str(&format!("{name}: {value}\n"));
        }
        text
    }

    /// One JSON object (see the fields of `RunReportJson`: latencies in ms).
    pub fn to_json(&self) -> String {
        let json = RunReportJson {
            requests: self.requests(),
            summary: self.summary.json_fields(),
            bench_cpu_pct_of_core: self.cpu.pct_of_core(),
            bench_cpu_pct_of_all_cores: self.cpu.pct_of_all_cores(),
            bench_cpu_saturated: self.cpu.saturated(),
            counters: &self.counters,
        };
        serde_json::to_string(&json).expect("report serializes")
    }
}

/// One client's connection and the state it keeps between requests.
pub(crate) struct ClientOps {
    client: Client,
    counters: Arc<Counters>,
    rng: SplitMix64,
    keeper: Option<(LeaseKeeper, LeaseKeepAliveStream)>,
    kube: Option<KubeClient>,
}

impl ClientOps {
    /// State for client number `client` on connection `client`.
    pub(crate) fn new(
        client: Client,
        config: &LoadConfig,
        index: u32,
        counters: Arc<Counters>,
    ) -> ClientOps {
        let seed = 0x5eed_0000 + u64::from(index);
        let kube = matches!(config.workload, Workload::Kube)
            .then(|| KubeClient::new(index, config.kube.clone(), Arc::clone(&counters)));
        ClientOps {
            client,
            counters,
            rng: SplitMix64::new(seed),
            keeper: None,
            kube,
        }
    }

    /// Untimed set-up before the first request: `lease-keepalive` grants its lease and
    /// opens its keep-alive stream. Errors: the failed RPC's text.
    pub(crate) async fn prepare(
        &mut self,
        config: &LoadConfig,
        _value: &[u8],
    ) -> Result<(), String> {
        if config.workload == Workload::LeaseKeepalive {
            let mut lease = self.client.lease_client();
            let grant = lease
                .grant(LEASE_KEEPALIVE_TTL_S, None)
                .await
                .map_err(|e| format!("lease grant: {e}"))?;
            let stream = lease
                .keep_alive(grant.id())
                .await
                .map_err(|e| format!("lease keep-alive stream: {e}"))?;
            self.keeper = Some(stream);
        }
        Ok(())
    }

    /// Untimed clean-up after the last request.
    pub(crate) async fn finish(&mut self) {
        self.keeper = None;
    }

    /// Sends one request of the configured workload for the picked `key`.
    pub(crate) async fn send(
        &mut self,
        config: &LoadConfig,
        key: Vec<u8>,
        value: &[u8],
    ) -> Result<(), String> {
        let mut kv = self.client.kv_client();
        let outcome = match config.workload {
            Workload::Put => kv.put(key, value.to_vec(), None).await.map(drop),
            Workload::Range { serializable } => {
                let options = serializable.then(|| GetOptions::new().with_serializable());
                kv.get(key, options).await.map(drop)
            }
            Workload::Txn { ops } => {
                // Consecutive keys after the picked one, wrapping in the key space, so one
                // Txn never puts the same key twice (etcd rejects duplicate keys in a Txn).
                let first = key_index(&key);
                let puts: Vec<TxnOp> = (0..u64::from(ops))
                    .map(|i| {
                        let index = (first + i) % config.key_space;
                        TxnOp::put(key_for(index, config.key_size), value.to_vec(), None)
                    })
                    .collect();
                kv.txn(Txn::new().and_then(puts)).await.map(drop)
            }
            Workload::TxnMixed {
                read_per_mille,
                serializable,
            } => {
                let read = self.rng.below(1000) < u64::from(read_per_mille);
                let op = if read {
                    let mut options = GetOptions::new().with_limit(i64::from(config.limit));
                    if let Some(end) = &config.end_range {
                        options = options.with_range(end.clone());
                    }
                    if serializable {
                        options = options.with_serializable();
                    }
                    TxnOp::get(key, Some(options))
                } else {
                    TxnOp::put(key, value.to_vec(), None)
                };
                kv.txn(Txn::new().and_then([op])).await.map(drop)
            }
            Workload::LeaseKeepalive => return self.keep_alive().await,
            Workload::Stm { keys_per_txn } => return self.stm(config, keys_per_txn, value).await,
            Workload::Kube => {
                let kube = self.kube.as_mut().expect("kube clients have kube state");
                return kube.send(&self.client, &mut self.rng, value).await;
            }
        };
        outcome.map_err(|e| e.to_string())
    }

    /// One keep-alive request and its answer on the client's stream.
    async fn keep_alive(&mut self) -> Result<(), String> {
        let (keeper, stream) = self.keeper.as_mut().ok_or("no lease stream")?;
        keeper.keep_alive().await.map_err(|e| e.to_string())?;
        match stream.message().await {
            Ok(Some(answer)) if answer.ttl() > 0 => Ok(()),
            Ok(Some(_)) => Err("lease expired".into()),
            Ok(None) => Err("keep-alive stream closed".into()),
            Err(e) => Err(e.to_string()),
        }
    }

    /// One repeatable-read STM transaction over `keys_per_txn` distinct random keys:
    /// read them, then put each (the value) if every mod_revision is unchanged;
    /// retried on conflict up to [`STM_ATTEMPTS_MAX`] times.
    async fn stm(
        &mut self,
        config: &LoadConfig,
        keys_per_txn: u32,
        value: &[u8],
    ) -> Result<(), String> {
        let mut indexes: Vec<u64> = Vec::with_capacity(keys_per_txn as usize);
        // Bounded: keys_per_txn <= key_space (validated), so distinct picks exist.
        while indexes.len() < keys_per_txn as usize {
            let index = self.rng.below(config.key_space);
            if !indexes.contains(&index) {
                indexes.push(index);
            }
        }
        let keys: Vec<Vec<u8>> = indexes
            .iter()
            .map(|&i| key_for(i, config.key_size))
            .collect();
        let mut kv = self.client.kv_client();
        for _ in 0..STM_ATTEMPTS_MAX {
            let mut compares = Vec::with_capacity(keys.len());
            for key in &keys {
                let got = kv.get(key.clone(), None).await.map_err(|e| e.to_string())?;
                let mod_revision = got.kvs().first().map_or(0, |kv| kv.mod_revision());
                compares.push(Compare::mod_revision(
                    key.clone(),
                    CompareOp::Equal,
                    mod_revision,
                ));
            }
            let puts: Vec<TxnOp> = keys
                .iter()
                .map(|key| TxnOp::put(key.clone(), value.to_vec(), None))
                .collect();
            let txn = Txn::new().when(compares).and_then(puts);
            let answer = kv.txn(txn).await.map_err(|e| e.to_string())?;
            if answer.succeeded() {
                return Ok(());
            }
            Counters::bump(&self.counters.stm_retries);
        }
        Err(format!("stm: {STM_ATTEMPTS_MAX} conflicting attempts"))
    }
}

/// The key-values of the first Range answer in a Txn's responses, if any.
pub(crate) fn first_range_kvs(responses: &[TxnOpResponse]) -> Option<&[etcd_client::KeyValue]> {
    responses.iter().find_map(|r| match r {
        TxnOpResponse::Get(get) => Some(get.kvs()),
        _ => None,
    })
}
