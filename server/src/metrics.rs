//! Prometheus metrics with etcd's names, types, labels, help texts and buckets, so etcd's
//! Grafana dashboard and alert rules work on Cairn (etcd 3.4 `etcdserver/metrics.go`,
//! `wal/metrics.go`, `mvcc/metrics.go`, `mvcc/backend/metrics.go`,
//! `etcdserver/api/rafthttp/metrics.go`, `etcdserver/api/v3rpc/metrics.go`, and
//! go-grpc-prometheus `server_metrics.go` for `grpc_server_*`), plus `process_*` (the
//! `prometheus` crate's process collector, Go client's names) and Cairn's own under
//! `cairn_`.
//!
//! One process-wide [`Metrics`] ([`get`]). Counters and histograms are atomics updated where
//! the event happens (raft driver, WAL fsync, apply, gRPC call start/end, peer transport);
//! gauges that mirror state (leader, indexes, sizes) are set when scraped
//! ([`Metrics::set_state`]). No lock is taken per request: per-method gRPC counters are resolved
//! once at start-up ([`grpc::GrpcMetrics`]).

pub mod grpc;

use std::sync::LazyLock;

use prometheus::core::Collector;
use prometheus::{
    exponential_buckets, Encoder, Gauge, GaugeVec, Histogram, HistogramOpts, IntCounter,
    IntCounterVec, IntGauge, Opts, Registry, TextEncoder,
};

/// `--metrics`: `basic` or `extensive` (etcd's flag; extensive adds
/// `grpc_server_handling_seconds`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetricsLevel {
    /// etcd's default.
    Basic,
    /// Adds the per-method gRPC latency histogram.
    Extensive,
}

impl MetricsLevel {
    /// Parses the flag's value; anything else is an error naming the flag.
    pub fn parse(value: &str) -> Result<MetricsLevel, String> {
        match value {
            "basic" => Ok(MetricsLevel::Basic),
            "extensive" => Ok(MetricsLevel::Extensive),
            other => Err(format!(
                "invalid --metrics value {other:?}: use \"basic\" or \"extensive\""
            )),
        }
    }
}

/// Every metric the server exports. Field names follow the metric names.
pub struct Metrics {
    registry: Registry,
    /// etcd_server_has_leader: 1 while a leader is known (set at scrape).
    pub has_leader: IntGauge,
    /// etcd_server_is_leader: 1 while this member leads (set at scrape).
    pub is_leader: IntGauge,
    /// etcd_server_is_learner: 1 while this member is a learner (set at scrape).
    pub is_learner: IntGauge,
    /// etcd_server_leader_changes_seen_total.
    pub leader_changes_seen_total: IntCounter,
    /// etcd_server_heartbeat_send_failures_total: heartbeats the transport dropped.
    pub heartbeat_send_failures_total: IntCounter,
    /// etcd_server_slow_apply_total: entries whose apply took over `--warning-apply-duration` (100 ms).
    pub slow_apply_total: IntCounter,
    /// etcd_server_proposals_committed_total: a gauge of the commit index, as etcd's.
    pub proposals_committed_total: Gauge,
    /// etcd_server_proposals_applied_total: a gauge of the applied index, as etcd's.
    pub proposals_applied_total: Gauge,
    /// etcd_server_proposals_pending: proposals of this member waiting to be applied.
    pub proposals_pending: Gauge,
    /// etcd_server_proposals_failed_total: proposals refused by Raft or timed out.
    pub proposals_failed_total: IntCounter,
    /// etcd_server_read_indexes_failed_total: read-index rounds Raft refused.
    pub read_indexes_failed_total: IntCounter,
    /// etcd_server_quota_backend_bytes: `--quota-backend-bytes` in effect.
    pub quota_backend_bytes: Gauge,
    /// etcd_server_version{server_version}.
    pub version: GaugeVec,
    /// etcd_server_id{server_id}: this member's ID in hex.
    pub id: GaugeVec,
    /// etcd_server_health_success: /health answers that were healthy.
    pub health_success: IntCounter,
    /// etcd_server_health_failures: /health answers that were not.
    pub health_failures: IntCounter,
    /// etcd_disk_wal_fsync_duration_seconds.
    pub wal_fsync_duration_seconds: Histogram,
    /// etcd_disk_backend_commit_duration_seconds: Cairn's MVCC checkpoint, its commit.
    pub backend_commit_duration_seconds: Histogram,
    /// etcd_mvcc_db_total_size_in_bytes (set at scrape).
    pub db_total_size_in_bytes: Gauge,
    /// etcd_mvcc_db_total_size_in_use_in_bytes (set at scrape).
    pub db_total_size_in_use_in_bytes: Gauge,
    /// etcd_debugging_mvcc_keys_total: live keys, kept by the apply loop.
    pub keys_total: Gauge,
    /// etcd_debugging_mvcc_watcher_total: watchers on every core.
    pub watcher_total: Gauge,
    /// etcd_debugging_mvcc_watch_stream_total: Watch streams open on every core.
    pub watch_stream_total: Gauge,
    /// etcd_debugging_mvcc_db_total_size_in_bytes: the 3.4 name dashboards still read
    /// (set at scrape).
    pub debugging_db_total_size_in_bytes: Gauge,
    /// etcd_debugging_mvcc_current_revision (set at scrape).
    pub current_revision: Gauge,
    /// etcd_debugging_mvcc_compact_revision (set at scrape).
    pub compact_revision: Gauge,
    /// etcd_cluster_version{cluster_version}.
    pub cluster_version: GaugeVec,
    /// etcd_debugging_mvcc_put_total (etcd counts each put under both names).
    pub debugging_put_total: IntCounter,
    /// etcd_debugging_mvcc_delete_total.
    pub debugging_delete_total: IntCounter,
    /// etcd_debugging_mvcc_txn_total.
    pub debugging_txn_total: IntCounter,
    /// etcd_debugging_lease_granted_total: leases granted (applied).
    pub lease_granted_total: IntCounter,
    /// etcd_debugging_auth_revision: the auth store's revision (etcd `auth/metrics.go`).
    pub auth_revision: IntGauge,
    /// etcd_debugging_lease_revoked_total: leases revoked (applied; expiry included).
    pub lease_revoked_total: IntCounter,
    /// etcd_debugging_lease_renewed_total: keep-alives answered by the leader.
    pub lease_renewed_total: IntCounter,
    /// etcd_network_peer_sent_failures_total{To}: Raft messages the transport dropped.
    pub peer_sent_failures_total: IntCounterVec,
    /// etcd_mvcc_put_total: puts applied (Txn puts included).
    pub put_total: IntCounter,
    /// etcd_mvcc_delete_total: delete requests applied.
    pub delete_total: IntCounter,
    /// etcd_mvcc_txn_total: Txn requests applied.
    pub txn_total: IntCounter,
    /// etcd_network_peer_sent_bytes_total{To}.
    pub peer_sent_bytes_total: IntCounterVec,
    /// etcd_network_peer_received_bytes_total{From}.
    pub peer_received_bytes_total: IntCounterVec,
    /// etcd_network_peer_round_trip_time_seconds{To}: HTTP/2 PING round trips.
    pub peer_round_trip_time_seconds: prometheus::HistogramVec,
    /// etcd_network_client_grpc_sent_bytes_total.
    pub client_grpc_sent_bytes_total: IntCounter,
    /// etcd_network_client_grpc_received_bytes_total.
    pub client_grpc_received_bytes_total: IntCounter,
    /// cairn_wal_fsync_batch_entries: Raft entries made durable by one fsync (group commit).
    pub wal_fsync_batch_entries: Histogram,
    /// cairn_server_core_requests_total{core}: gRPC calls started on each core.
    pub core_requests_total: IntCounterVec,
    /// grpc_server_* per method.
    pub grpc: grpc::GrpcMetrics,
}

static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

/// The process's metrics.
pub fn get() -> &'static Metrics {
    &METRICS
}

fn gauge(name: &str, help: &str) -> Gauge {
    Gauge::with_opts(Opts::new(name, help)).expect("valid gauge")
}

fn int_gauge(name: &str, help: &str) -> IntGauge {
    IntGauge::with_opts(Opts::new(name, help)).expect("valid gauge")
}

fn counter(name: &str, help: &str) -> IntCounter {
    IntCounter::with_opts(Opts::new(name, help)).expect("valid counter")
}

fn histogram(name: &str, help: &str, buckets: Vec<f64>) -> Histogram {
    Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets)).expect("valid histogram")
}

/// etcd's disk latency buckets: 1 ms doubling to 8.192 s (`ExponentialBuckets(0.001, 2, 14)`).
fn disk_buckets() -> Vec<f64> {
    exponential_buckets(0.001, 2.0, 14).expect("valid buckets")
}

impl Metrics {
    fn new() -> Metrics {
        let m = Metrics {
            registry: Registry::new(),
            has_leader: int_gauge(
                "etcd_server_has_leader",
                "Whether or not a leader exists. 1 is existence, 0 is not.",
            ),
            is_leader: int_gauge(
                "etcd_server_is_leader",
                "Whether or not this member is a leader. 1 if is, 0 otherwise.",
            ),
            is_learner: int_gauge(
                "etcd_server_is_learner",
                "Whether or not this member is a learner. 1 if is, 0 otherwise.",
            ),
            leader_changes_seen_total: counter(
                "etcd_server_leader_changes_seen_total",
                "The number of leader changes seen.",
            ),
            heartbeat_send_failures_total: counter(
                "etcd_server_heartbeat_send_failures_total",
                "The total number of leader heartbeat send failures (likely overloaded from slow disk).",
            ),
            slow_apply_total: counter(
                "etcd_server_slow_apply_total",
                "The total number of slow apply requests (likely overloaded from slow disk).",
            ),
            proposals_committed_total: gauge(
                "etcd_server_proposals_committed_total",
                "The total number of consensus proposals committed.",
            ),
            proposals_applied_total: gauge(
                "etcd_server_proposals_applied_total",
                "The total number of consensus proposals applied.",
            ),
            proposals_pending: gauge(
                "etcd_server_proposals_pending",
                "The current number of pending proposals to commit.",
            ),
            proposals_failed_total: counter(
                "etcd_server_proposals_failed_total",
                "The total number of failed proposals seen.",
            ),
            read_indexes_failed_total: counter(
                "etcd_server_read_indexes_failed_total",
                "The total number of failed read indexes seen.",
            ),
            quota_backend_bytes: gauge(
                "etcd_server_quota_backend_bytes",
                "Current backend storage quota size in bytes.",
            ),
            version: GaugeVec::new(
                Opts::new(
                    "etcd_server_version",
                    "Which version is running. 1 for 'server_version' label with current version.",
                ),
                &["server_version"],
            )
            .expect("valid gauge"),
            id: GaugeVec::new(
                Opts::new(
                    "etcd_server_id",
                    "Server or member ID in hexadecimal format. 1 for 'server_id' label with current ID.",
                ),
                &["server_id"],
            )
            .expect("valid gauge"),
            health_success: counter(
                "etcd_server_health_success",
                "The total number of successful health checks",
            ),
            health_failures: counter(
                "etcd_server_health_failures",
                "The total number of failed health checks",
            ),
            wal_fsync_duration_seconds: histogram(
                "etcd_disk_wal_fsync_duration_seconds",
                "The latency distributions of fsync called by WAL.",
                disk_buckets(),
            ),
            backend_commit_duration_seconds: histogram(
                "etcd_disk_backend_commit_duration_seconds",
                "The latency distributions of commit called by backend.",
                disk_buckets(),
            ),
            db_total_size_in_bytes: gauge(
                "etcd_mvcc_db_total_size_in_bytes",
                "Total size of the underlying database physically allocated in bytes.",
            ),
            db_total_size_in_use_in_bytes: gauge(
                "etcd_mvcc_db_total_size_in_use_in_bytes",
                "Total size of the underlying database logically in use in bytes.",
            ),
            keys_total: gauge("etcd_debugging_mvcc_keys_total", "Total number of keys."),
            watcher_total: gauge(
                "etcd_debugging_mvcc_watcher_total",
                "Total number of watchers.",
            ),
            watch_stream_total: gauge(
                "etcd_debugging_mvcc_watch_stream_total",
                "Total number of watch streams.",
            ),
            debugging_db_total_size_in_bytes: gauge(
                "etcd_debugging_mvcc_db_total_size_in_bytes",
                "Total size of the underlying database physically allocated in bytes.",
            ),
            current_revision: gauge(
                "etcd_debugging_mvcc_current_revision",
                "The current revision of store.",
            ),
            compact_revision: gauge(
                "etcd_debugging_mvcc_compact_revision",
                "The revision of the last compaction in store.",
            ),
            cluster_version: GaugeVec::new(
                Opts::new(
                    "etcd_cluster_version",
                    "Which version is running. 1 for 'cluster_version' label with current cluster version",
                ),
                &["cluster_version"],
            )
            .expect("valid gauge"),
            debugging_put_total: counter(
                "etcd_debugging_mvcc_put_total",
                "Total number of puts seen by this member.",
            ),
            debugging_delete_total: counter(
                "etcd_debugging_mvcc_delete_total",
                "Total number of deletes seen by this member.",
            ),
            debugging_txn_total: counter(
                "etcd_debugging_mvcc_txn_total",
                "Total number of txns seen by this member.",
            ),
            lease_granted_total: counter(
                "etcd_debugging_lease_granted_total",
                "The total number of granted leases.",
            ),
            auth_revision: int_gauge(
                "etcd_debugging_auth_revision",
                "The current revision of auth store.",
            ),
            lease_revoked_total: counter(
                "etcd_debugging_lease_revoked_total",
                "The total number of revoked leases.",
            ),
            lease_renewed_total: counter(
                "etcd_debugging_lease_renewed_total",
                "The number of renewed leases seen by the leader.",
            ),
            peer_sent_failures_total: IntCounterVec::new(
                Opts::new(
                    "etcd_network_peer_sent_failures_total",
                    "The total number of send failures from peers.",
                ),
                &["To"],
            )
            .expect("valid counter"),
            put_total: counter(
                "etcd_mvcc_put_total",
                "Total number of puts seen by this member.",
            ),
            delete_total: counter(
                "etcd_mvcc_delete_total",
                "Total number of deletes seen by this member.",
            ),
            txn_total: counter(
                "etcd_mvcc_txn_total",
                "Total number of txns seen by this member.",
            ),
            peer_sent_bytes_total: IntCounterVec::new(
                Opts::new(
                    "etcd_network_peer_sent_bytes_total",
                    "The total number of bytes sent to peers.",
                ),
                &["To"],
            )
            .expect("valid counter"),
            peer_received_bytes_total: IntCounterVec::new(
                Opts::new(
                    "etcd_network_peer_received_bytes_total",
                    "The total number of bytes received from peers.",
                ),
                &["From"],
            )
            .expect("valid counter"),
            peer_round_trip_time_seconds: prometheus::HistogramVec::new(
                // 0.1 ms doubling to 3.2768 s (etcd `ExponentialBuckets(0.0001, 2, 16)`).
                HistogramOpts::new(
                    "etcd_network_peer_round_trip_time_seconds",
                    "Round-Trip-Time histogram between peers",
                )
                .buckets(exponential_buckets(0.0001, 2.0, 16).expect("valid buckets")),
                &["To"],
            )
            .expect("valid histogram"),
            client_grpc_sent_bytes_total: counter(
                "etcd_network_client_grpc_sent_bytes_total",
                "The total number of bytes sent to grpc clients.",
            ),
            client_grpc_received_bytes_total: counter(
                "etcd_network_client_grpc_received_bytes_total",
                "The total number of bytes received from grpc clients.",
            ),
            wal_fsync_batch_entries: histogram(
                "cairn_wal_fsync_batch_entries",
                "Raft entries made durable by one WAL fdatasync (group commit batch size).",
                exponential_buckets(1.0, 2.0, 14).expect("valid buckets"),
            ),
            core_requests_total: IntCounterVec::new(
                Opts::new(
                    "cairn_server_core_requests_total",
                    "The total number of gRPC calls started on each core.",
                ),
                &["core"],
            )
            .expect("valid counter"),
            grpc: grpc::GrpcMetrics::new(),
        };
        let collectors: Vec<Box<dyn Collector>> = vec![
            Box::new(m.has_leader.clone()),
            Box::new(m.is_leader.clone()),
            Box::new(m.is_learner.clone()),
            Box::new(m.leader_changes_seen_total.clone()),
            Box::new(m.heartbeat_send_failures_total.clone()),
            Box::new(m.slow_apply_total.clone()),
            Box::new(m.proposals_committed_total.clone()),
            Box::new(m.proposals_applied_total.clone()),
            Box::new(m.proposals_pending.clone()),
            Box::new(m.proposals_failed_total.clone()),
            Box::new(m.read_indexes_failed_total.clone()),
            Box::new(m.quota_backend_bytes.clone()),
            Box::new(m.version.clone()),
            Box::new(m.id.clone()),
            Box::new(m.health_success.clone()),
            Box::new(m.health_failures.clone()),
            Box::new(m.wal_fsync_duration_seconds.clone()),
            Box::new(m.backend_commit_duration_seconds.clone()),
            Box::new(m.db_total_size_in_bytes.clone()),
            Box::new(m.db_total_size_in_use_in_bytes.clone()),
            Box::new(m.keys_total.clone()),
            Box::new(m.watcher_total.clone()),
            Box::new(m.watch_stream_total.clone()),
            Box::new(m.debugging_db_total_size_in_bytes.clone()),
            Box::new(m.current_revision.clone()),
            Box::new(m.compact_revision.clone()),
            Box::new(m.cluster_version.clone()),
            Box::new(m.debugging_put_total.clone()),
            Box::new(m.debugging_delete_total.clone()),
            Box::new(m.debugging_txn_total.clone()),
            Box::new(m.peer_sent_failures_total.clone()),
            Box::new(m.lease_granted_total.clone()),
            Box::new(m.auth_revision.clone()),
            Box::new(m.lease_revoked_total.clone()),
            Box::new(m.lease_renewed_total.clone()),
            Box::new(m.put_total.clone()),
            Box::new(m.delete_total.clone()),
            Box::new(m.txn_total.clone()),
            Box::new(m.peer_sent_bytes_total.clone()),
            Box::new(m.peer_received_bytes_total.clone()),
            Box::new(m.peer_round_trip_time_seconds.clone()),
            Box::new(m.client_grpc_sent_bytes_total.clone()),
            Box::new(m.client_grpc_received_bytes_total.clone()),
            Box::new(m.wal_fsync_batch_entries.clone()),
            Box::new(m.core_requests_total.clone()),
            Box::new(prometheus::process_collector::ProcessCollector::for_self()),
        ];
        for collector in collectors {
            m.registry
                .register(collector)
                .expect("metric names are unique");
        }
        m.grpc.register(&m.registry);
        m.version
            .with_label_values(&[crate::service::ETCD_API_VERSION])
            .set(1.0);
        // etcd's cluster version keeps major.minor ("3.6.0").
        m.cluster_version
            .with_label_values(&[crate::service::ETCD_CLUSTER_VERSION])
            .set(1.0);
        m
    }

    /// Records what is known once the member's identity and flags are: its ID, the
    /// backend quota, the metrics level, the live key count.
    pub fn set_member(&self, member_id: u64, quota_backend_bytes: u64, level: MetricsLevel) {
        self.id
            .with_label_values(&[&format!("{member_id:x}")])
            .set(1.0);
        self.quota_backend_bytes.set(quota_backend_bytes as f64);
        self.grpc.set_level(level, &self.registry);
    }

    /// Adjusts `etcd_debugging_mvcc_keys_total` by one applied revision's events: a put
    /// creating a key (version 1) adds one, a delete removes one.
    pub fn on_events(&self, events: &[engine::Event]) {
        let mut delta = 0i64;
        for event in events {
            match event.event_type {
                engine::EventType::Put if event.kv.version == 1 => delta += 1,
                engine::EventType::Delete => delta -= 1,
                engine::EventType::Put => {}
            }
        }
        if delta != 0 {
            self.keys_total.add(delta as f64);
        }
    }

    /// Sets the gauges that mirror the server's state at scrape time.
    pub fn set_state(&self, state: &StateSample) {
        self.has_leader.set(i64::from(state.leader != 0));
        self.is_leader.set(i64::from(
            state.leader != 0 && state.leader == state.member_id,
        ));
        self.is_learner.set(i64::from(state.is_learner));
        self.proposals_committed_total
            .set(state.commit_index as f64);
        self.proposals_applied_total.set(state.applied_index as f64);
        self.db_total_size_in_bytes.set(state.db_size_bytes as f64);
        self.debugging_db_total_size_in_bytes
            .set(state.db_size_bytes as f64);
        self.current_revision.set(state.current_revision as f64);
        self.compact_revision.set(state.compact_revision as f64);
        self.db_total_size_in_use_in_bytes
            .set(state.db_size_in_use_bytes as f64);
    }

    /// Renders every metric in Prometheus' text format 0.0.4 ([`TEXT_CONTENT_TYPE`]).
    pub fn render(&self) -> String {
        let families = self.registry.gather();
        let mut text = Vec::new();
        TextEncoder::new()
            .encode(&families, &mut text)
            .expect("text encoding into memory");
        String::from_utf8(text).expect("the text format is UTF-8")
    }

    /// Counts the keys of the store once (at start and after a snapshot is installed).
    pub fn count_keys(&self, reader: &engine::MvccReader) {
        let options = engine::RangeOptions {
            count_only: true,
            ..Default::default()
        };
        match reader.range(&[0], &[0], &options) {
            Ok(result) => self.keys_total.set(result.count as f64),
            Err(e) => tracing::warn!("counting keys for etcd_debugging_mvcc_keys_total: {e}"),
        }
    }
}

/// Per-peer byte counters and round-trip histograms, resolved once per peer so that a
/// message costs a map lookup and an atomic add (lives on the core running the transport).
#[derive(Default)]
pub struct PeerMetrics {
    sent: std::cell::RefCell<std::collections::HashMap<u64, IntCounter>>,
    received: std::cell::RefCell<std::collections::HashMap<u64, IntCounter>>,
    round_trips: std::cell::RefCell<std::collections::HashMap<u64, Histogram>>,
}

impl PeerMetrics {
    /// `bytes` of Raft messages queued for member `to` (etcd_network_peer_sent_bytes_total).
    pub fn sent(&self, to: u64, bytes: usize) {
        self.sent
            .borrow_mut()
            .entry(to)
            .or_insert_with(|| {
                get()
                    .peer_sent_bytes_total
                    .with_label_values(&[&format!("{to:x}")])
            })
            .inc_by(bytes as u64);
    }

    /// `bytes` of Raft messages received from member `from`
    /// (etcd_network_peer_received_bytes_total).
    pub fn received(&self, from: u64, bytes: usize) {
        self.received
            .borrow_mut()
            .entry(from)
            .or_insert_with(|| {
                get()
                    .peer_received_bytes_total
                    .with_label_values(&[&format!("{from:x}")])
            })
            .inc_by(bytes as u64);
    }

    /// A Raft message for member `to` that the transport dropped
    /// (etcd_network_peer_sent_failures_total).
    pub fn sent_failure(&self, to: u64) {
        get()
            .peer_sent_failures_total
            .with_label_values(&[&format!("{to:x}")])
            .inc();
    }

    /// One round trip to member `to` (etcd_network_peer_round_trip_time_seconds).
    pub fn round_trip(&self, to: u64, time: std::time::Duration) {
        self.round_trips
            .borrow_mut()
            .entry(to)
            .or_insert_with(|| {
                get()
                    .peer_round_trip_time_seconds
                    .with_label_values(&[&format!("{to:x}")])
            })
            .observe(time.as_secs_f64());
    }
}

/// The server state mirrored by gauges, read when scraped.
#[derive(Clone, Copy, Debug, Default)]
pub struct StateSample {
    /// This member's ID.
    pub member_id: u64,
    /// The leader's member ID, 0 when none is known.
    pub leader: u64,
    /// Whether this member is a learner.
    pub is_learner: bool,
    /// Raft commit index.
    pub commit_index: u64,
    /// Raft applied index.
    pub applied_index: u64,
    /// Bytes the store occupies on disk (etcd's db size).
    pub db_size_bytes: u64,
    /// Bytes of the store in use (etcd's db size in use).
    pub db_size_in_use_bytes: u64,
    /// The store's current revision.
    pub current_revision: i64,
    /// The store's last compaction revision.
    pub compact_revision: i64,
}

/// The Content-Type of [`Metrics::render`]'s text.
pub const TEXT_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_follow_creating_puts_and_deletes() {
        let m = Metrics::new();
        let put = |version| engine::Event {
            event_type: engine::EventType::Put,
            kv: engine::KeyValue {
                version,
                ..Default::default()
            },
            prev_kv: None,
        };
        let delete = engine::Event {
            event_type: engine::EventType::Delete,
            kv: engine::KeyValue::default(),
            prev_kv: None,
        };
        m.on_events(&[put(1), put(1), put(2)]);
        assert_eq!(m.keys_total.get(), 2.0);
        m.on_events(std::slice::from_ref(&delete));
        assert_eq!(m.keys_total.get(), 1.0);
        m.on_events(&[put(3)]);
        assert_eq!(m.keys_total.get(), 1.0);
    }

    #[test]
    fn metrics_level_parses_etcds_values() {
        assert_eq!(MetricsLevel::parse("basic"), Ok(MetricsLevel::Basic));
        assert_eq!(
            MetricsLevel::parse("extensive"),
            Ok(MetricsLevel::Extensive)
        );
        assert!(MetricsLevel::parse("full")
            .unwrap_err()
            .contains("--metrics"));
    }
}
