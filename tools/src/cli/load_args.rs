//! cairn-bench's load flags, named as etcd's `tools/benchmark` names them (`--conns`,
//! `--clients`, `--total`, `--rate`, `--key-size`, `--val-size`, `--key-space-size`,
//! `--sequential-keys`, `--consistency`, `--target-leader`), with the older cairn-bench
//! names (`--key-space`, `--seq`) kept as aliases.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use tools::{ClientTls, KubeConfig, LoadConfig, Workload};

/// etcdctl's TLS flags, for the subcommands that take client URLs.
#[derive(Args, Debug)]
pub struct TlsArgs {
    /// CA bundle that verifies the server's certificate (https endpoints), as etcdctl's.
    #[arg(long)]
    pub cacert: Option<PathBuf>,
    /// Client certificate for mutual TLS, as etcdctl's.
    #[arg(long)]
    pub cert: Option<PathBuf>,
    /// Key of --cert, as etcdctl's.
    #[arg(long)]
    pub key: Option<PathBuf>,
    /// `name:password` to authenticate as, as etcdctl's `--user` (auth enabled).
    #[arg(long)]
    pub user: Option<String>,
}

impl TlsArgs {
    /// The library's TLS settings.
    pub fn client_tls(&self) -> ClientTls {
        ClientTls {
            user: self.user.clone(),
            cacert: self.cacert.clone(),
            cert: self.cert.clone(),
            key: self.key.clone(),
        }
    }
}

/// Flags every load workload takes.
#[derive(Args, Debug)]
pub struct LoadArgs {
    /// Client URLs, comma separated.
    #[arg(long, value_delimiter = ',', default_value = "http://127.0.0.1:2379")]
    pub endpoints: Vec<String>,
    /// Concurrent clients (1..=10000).
    #[arg(long, default_value_t = 1)]
    pub clients: u32,
    /// gRPC connections shared by the clients (1..=clients).
    #[arg(long, default_value_t = 1)]
    pub conns: u32,
    /// Requests in all (ignored with --duration).
    #[arg(long, default_value_t = 10_000)]
    pub total: u64,
    /// Run for this many seconds instead of --total requests.
    #[arg(long)]
    pub duration: Option<u64>,
    /// Requests per second over all clients; 0: no limit.
    #[arg(long, default_value_t = 0)]
    pub rate: u32,
    /// Key size in bytes.
    #[arg(long, default_value_t = 8)]
    pub key_size: u32,
    /// Value size in bytes.
    #[arg(long, default_value_t = 256)]
    pub val_size: u32,
    /// Number of distinct keys (etcd's name; `--key-space` and stm's `--keys` too).
    #[arg(long = "key-space-size", visible_aliases = ["key-space", "keys"], default_value_t = 100_000)]
    pub key_space: u64,
    /// Sequential keys instead of uniformly random ones (`--seq` too).
    #[arg(long = "sequential-keys", visible_alias = "seq")]
    pub seq: bool,
    /// Read consistency: l (linearizable) or s (serializable).
    #[arg(long, default_value = "l", value_parser = ["l", "s"])]
    pub consistency: String,
    /// Send every request to the leader's endpoint only (found with Status).
    #[arg(long)]
    pub target_leader: bool,
    /// Deadline of one request, ms.
    #[arg(long, default_value_t = 10_000)]
    pub request_timeout_ms: u64,
    /// Limit on the whole run, s; unsent requests are reported as skipped.
    #[arg(long, default_value_t = 600)]
    pub duration_max_s: u64,
    /// Print one JSON object instead of text (also hides the progress bar).
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub tls: TlsArgs,
}

impl LoadArgs {
    /// Whether reads are serializable (`--consistency s`).
    pub fn serializable(&self) -> bool {
        self.consistency == "s"
    }

    /// The load config running `workload` with these flags.
    pub fn config(&self, workload: Workload) -> LoadConfig {
        let mut config = LoadConfig::new(self.endpoints.clone(), workload);
        config.clients = self.clients;
        config.conns = self.conns;
        config.total = self.total;
        config.duration_s = self.duration;
        config.rate = self.rate;
        config.key_size = self.key_size;
        config.val_size = self.val_size;
        config.key_space = self.key_space;
        config.seq = self.seq;
        config.target_leader = self.target_leader;
        config.request_timeout_ms = self.request_timeout_ms;
        config.duration_max_s = self.duration_max_s.max(self.duration.unwrap_or(0));
        config.progress = !self.json;
        config.tls = self.tls.client_tls();
        config
    }
}

/// The kube workload's own flags.
#[derive(Args, Debug)]
pub struct KubeArgs {
    /// Objects under /registry/pods/.
    #[arg(long, default_value_t = 1_000)]
    pub kube_objects: u64,
    /// Keys per list page (the apiserver's limit).
    #[arg(long, default_value_t = 500)]
    pub kube_page_size: u32,
    /// TTL of the event leases, s.
    #[arg(long, default_value_t = 60)]
    pub kube_event_ttl_s: i64,
    /// Watchers on /registry/ (prev_kv, progress notify).
    #[arg(long, default_value_t = 4)]
    pub kube_watchers: u32,
    /// Seconds between compactions through compact_rev_key; 0: none.
    #[arg(long, default_value_t = 10)]
    pub kube_compact_interval_s: u64,
    /// Request weights.
    #[arg(long, default_value = "update=50,get=20,list=10,event=20")]
    pub kube_mix: String,
}

impl KubeArgs {
    /// The kube parameters. Errors: a malformed --kube-mix.
    pub fn config(&self) -> tools::Result<KubeConfig> {
        Ok(KubeConfig {
            objects: self.kube_objects,
            page_size: self.kube_page_size,
            event_ttl_s: self.kube_event_ttl_s,
            watchers: self.kube_watchers,
            compact_interval_s: self.kube_compact_interval_s,
            weights: KubeConfig::parse_mix(&self.kube_mix)?,
        })
    }
}

/// The `watch` workload's flags (etcd `watch`).
#[derive(Args, Debug)]
pub struct WatchBenchArgs {
    /// Client URLs, comma separated.
    #[arg(long, value_delimiter = ',', default_value = "http://127.0.0.1:2379")]
    pub endpoints: Vec<String>,
    /// Watch streams, one connection each.
    #[arg(long, default_value_t = 10)]
    pub streams: u32,
    /// Watchers per stream.
    #[arg(long, default_value_t = 100)]
    pub watch_per_stream: u32,
    /// Distinct watched keys.
    #[arg(long, default_value_t = 1)]
    pub watched_key_total: u64,
    /// Puts once the watchers are open.
    #[arg(long, default_value_t = 1_000)]
    pub put_total: u64,
    /// Key size in bytes.
    #[arg(long, default_value_t = 8)]
    pub key_size: u32,
    /// Value size in bytes.
    #[arg(long, default_value_t = 8)]
    pub val_size: u32,
    /// Deadline of one request and of the wait for the last event, ms.
    #[arg(long, default_value_t = 10_000)]
    pub request_timeout_ms: u64,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub tls: TlsArgs,
}

impl WatchBenchArgs {
    /// The run's parameters.
    pub fn config(&self) -> tools::WatchBenchConfig {
        let mut config = tools::WatchBenchConfig::new(self.endpoints.clone());
        config.streams = self.streams;
        config.watch_per_stream = self.watch_per_stream;
        config.watched_key_total = self.watched_key_total;
        config.put_total = self.put_total;
        config.key_size = self.key_size;
        config.val_size = self.val_size;
        config.request_timeout_ms = self.request_timeout_ms;
        config.tls = self.tls.client_tls();
        config
    }
}

/// The etcd-benchmark-compatible load subcommands.
#[derive(Subcommand, Debug)]
pub enum LoadCommand {
    /// Puts of `--val-size` byte values.
    Put(LoadArgs),
    /// Gets of single keys (`--consistency l|s`; `--serializable` = `s`).
    Range {
        #[command(flatten)]
        load: LoadArgs,
        /// Serializable reads (as `--consistency s`).
        #[arg(long)]
        serializable: bool,
    },
    /// Txns with no compares and --txn-ops puts each (`txn` too).
    #[command(alias = "txn")]
    TxnPut {
        #[command(flatten)]
        load: LoadArgs,
        /// Puts per Txn (1..=128).
        #[arg(long, default_value_t = 1)]
        txn_ops: u32,
    },
    /// One-op Txns, reads (Range with --limit, to --end-range) and writes (Put) in the
    /// ratio --rw-ratio reads per write.
    TxnMixed {
        #[command(flatten)]
        load: LoadArgs,
        /// Reads per write.
        #[arg(long, default_value_t = 1.0)]
        rw_ratio: f64,
        /// Most keys a read returns (0: no limit).
        #[arg(long, default_value_t = 1)]
        limit: u32,
        /// End of a read's key range (empty: single-key reads).
        #[arg(long)]
        end_range: Option<String>,
    },
    /// One keep-alive (sent and answered) per request on each client's lease.
    LeaseKeepalive(LoadArgs),
    /// Repeatable-read STM transactions over --keys-per-txn random keys of
    /// --key-space-size (`--keys`), retried on conflict.
    Stm {
        #[command(flatten)]
        load: LoadArgs,
        /// Keys read and written per transaction.
        #[arg(long, default_value_t = 1)]
        keys_per_txn: u32,
    },
    /// Watch creation latency (streams × watch-per-stream watchers), then puts to the
    /// watched keys until every event has arrived.
    Watch(WatchBenchArgs),
    /// kube-apiserver's pattern: optimistic updates, gets, paginated lists, leased
    /// events, with watchers and compaction beside.
    Kube {
        #[command(flatten)]
        load: LoadArgs,
        #[command(flatten)]
        kube: KubeArgs,
    },
}

impl LoadCommand {
    /// The common flags and the load config of the subcommand.
    /// Errors: a malformed workload flag.
    /// Panics for [`LoadCommand::Watch`], which has its own runner.
    pub fn config(&self) -> tools::Result<(&LoadArgs, LoadConfig)> {
        Ok(match self {
            LoadCommand::Watch(_) => unreachable!("watch has its own runner"),
            LoadCommand::Put(load) => (load, load.config(Workload::Put)),
            LoadCommand::Range { load, serializable } => {
                let serializable = *serializable || load.serializable();
                (load, load.config(Workload::Range { serializable }))
            }
            LoadCommand::TxnPut { load, txn_ops } => {
                (load, load.config(Workload::Txn { ops: *txn_ops }))
            }
            LoadCommand::TxnMixed {
                load,
                rw_ratio,
                limit,
                end_range,
            } => {
                let workload = Workload::TxnMixed {
                    read_per_mille: read_per_mille(*rw_ratio)?,
                    serializable: load.serializable(),
                };
                let mut config = load.config(workload);
                config.limit = *limit;
                config.end_range = end_range.as_ref().map(|e| e.clone().into_bytes());
                (load, config)
            }
            LoadCommand::LeaseKeepalive(load) => (load, load.config(Workload::LeaseKeepalive)),
            LoadCommand::Stm { load, keys_per_txn } => (
                load,
                load.config(Workload::Stm {
                    keys_per_txn: *keys_per_txn,
                }),
            ),
            LoadCommand::Kube { load, kube } => {
                let mut config = load.config(Workload::Kube);
                config.kube = kube.config()?;
                (load, config)
            }
        })
    }
}

/// Reads per 1000 txn-mixed requests for etcd's `--rw-ratio r` (reads per write):
/// `1000 · r / (1 + r)`. Errors: a ratio that is negative or not finite.
fn read_per_mille(rw_ratio: f64) -> tools::Result<u32> {
    if !rw_ratio.is_finite() || rw_ratio < 0.0 {
        return Err(tools::BenchError::InvalidArg {
            flag: "rw-ratio",
            reason: format!("{rw_ratio} is not a ratio >= 0"),
        });
    }
    Ok((1000.0 * rw_ratio / (1.0 + rw_ratio)).round() as u32)
}

/// `compare`'s workload-matrix flags; giving any of them selects the matrix.
#[derive(Args, Debug)]
pub struct MatrixArgs {
    /// Workloads run in order on each fresh server: put, range, range-serializable,
    /// txn-put, txn-mixed, lease-keepalive, stm, kube, watch, watch-latency (comma
    /// separated). watch: --conns streams holding --clients watchers on one key, --total
    /// puts; watch-latency: --clients watchers on --conns streams, --total puts.
    #[arg(long)]
    pub workloads: Option<String>,
    /// Rounds; each runs every target in turn (cairn, etcd) on fresh data dirs.
    #[arg(long)]
    pub rounds: Option<u32>,
    /// 3-member loopback clusters instead of one member.
    #[arg(long)]
    pub cluster: bool,
    /// Directory for compare.md and the charts (latency and throughput, PNG and SVG).
    #[arg(long)]
    pub out_dir: Option<PathBuf>,
    /// Run each workload this many seconds instead of --total requests.
    #[arg(long)]
    pub duration: Option<u64>,
    /// Requests per second over all clients; 0: no limit.
    #[arg(long, default_value_t = 0)]
    pub rate: u32,
    /// Sequential keys instead of uniformly random ones.
    #[arg(long = "sequential-keys", visible_alias = "seq")]
    pub seq: bool,
    /// txn-mixed: reads per write.
    #[arg(long, default_value_t = 1.0)]
    pub rw_ratio: f64,
    /// txn-mixed: most keys a read returns (0: no limit).
    #[arg(long, default_value_t = 1)]
    pub limit: u32,
    /// txn-mixed: end of a read's key range (empty: single-key reads).
    #[arg(long)]
    pub end_range: Option<String>,
}

impl MatrixArgs {
    /// Whether a matrix flag was given.
    pub fn is_requested(&self) -> bool {
        self.workloads.is_some() || self.rounds.is_some() || self.cluster || self.out_dir.is_some()
    }

    /// The workloads (default: put), txn-mixed with `--rw-ratio`. Errors: an unknown
    /// name, a bad ratio.
    pub fn workloads(&self) -> tools::Result<Vec<tools::MatrixWorkload>> {
        tools::parse_workloads(
            self.workloads.as_deref().unwrap_or("put"),
            read_per_mille(self.rw_ratio)?,
        )
    }

    /// Sets the run-shape flags and txn-mixed's read shape on `load`.
    pub fn apply(&self, load: &mut LoadConfig) {
        load.duration_s = self.duration;
        load.rate = self.rate;
        load.seq = self.seq;
        load.limit = self.limit;
        load.end_range = self.end_range.as_ref().map(|e| e.clone().into_bytes());
        if let Some(duration) = self.duration {
            load.duration_max_s = load.duration_max_s.max(duration);
        }
    }
}
