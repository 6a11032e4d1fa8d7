//! `tools`: the library behind `cairn-bench`, the load generator and side-by-side
//! harness that measures Cairn against upstream etcd over the etcd v3 gRPC API.
//!
//! - Load: N clients over C connections issuing a bounded number of puts, ranges
//!   or txns ([`LoadConfig`], [`Bench`], [`run_load`]).
//! - [`Summary`]: throughput and latency percentiles from hdrhistogram, as text or JSON.
//! - [`run_compare`]: starts each server binary in turn on loopback, runs put phases,
//!   reports server CPU µs per put and RSS as a markdown table ([`render_markdown`]).
//! - Watches: put→event latency with many watchers ([`run_watch_latency`]), server RSS
//!   per 1,000 idle watchers ([`run_watch_memory`]), both servers side by side
//!   ([`run_compare_watch`], [`render_watch_markdown`]).
//! - Mixed load for long latency runs ([`run_mixed`]): puts, linearizable ranges and
//!   lease RPCs by weight ([`Mix`]) while watchers drain events; p50…p99.99 per RPC type
//!   and put→event latency ([`MixedReport`]).
//! - Clusters: [`Cluster`] starts three members of a target on loopback;
//!   [`run_compare_cluster`] runs the put phases against each target's cluster
//!   ([`render_cluster_markdown`]); [`run_failover`] kills the leader again and again
//!   under load and reports failover times and lost writes ([`FailoverReport`]).
//! - Scale ([`run_scale`], issue 8): N keys loaded into each server in turn; load
//!   latency, anonymous RSS and disk use, 1-client put latency during a full-prefix
//!   range, restart time after SIGTERM and kill -9 ([`ScaleReport`],
//!   [`render_scale_markdown`]).
//! - [`ctl`]: `cairnctl`'s online commands (etcdctl 3.4's put, get, del, endpoint,
//!   member, lease, alarm, compaction, defrag, version) over `net::Client`.
//! - [`snapshot`]: `cairnctl snapshot status|restore`, etcdctl's offline snapshot
//!   commands on etcd backend files.
//! - [`check_datascale`]: `cairnctl check datascale`, etcdctl's memory check (puts a
//!   load's keys and reads the server's resident memory from `/metrics`).
//! - [`check_perf`]: `cairnctl check perf`, etcdctl's rate-limited put check with its
//!   pass/fail.
//! - [`disk_check`]: `cairnctl check disk`, WAL-style appends + fdatasync latencies
//!   against etcd's guidance.
//! - [`procstat`]: `/proc/<pid>/stat` and `/proc/<pid>/status` parsing.
//! - [`linearizability`]: a linearizability checker for recorded client histories
//!   (Wing & Gong with Lowe's memo, as Porcupine), with an etcd KV model, for the
//!   cluster fault tests.
#![deny(missing_docs)]

mod charts;
pub mod check_datascale;
pub mod check_perf;
mod cluster;
mod compare;
pub mod ctl;
pub mod disk_check;
mod error;
mod failover;
mod keys;
mod kube;
pub mod linearizability;
mod load;
mod matrix;
mod mixed;
mod ops;
pub mod procstat;
mod scale;
mod selfcpu;
mod server;
pub mod snapshot;
mod stats;
mod watch;
mod watchbench;

pub use charts::{write_charts, CHART_SIZE, LATENCY_POINTS};
pub use cluster::{
    agreed_leader, cluster_member_args, initial_cluster, leader_index, member_status,
    render_cluster_markdown, run_compare_cluster, Cluster, ClusterRow, MemberStatus,
    CLUSTER_MEMBERS, CLUSTER_TOKEN, STATUS_POLL_MS, STATUS_TIMEOUT_MS,
};
pub use compare::{
    cpu_us_per_op, default_conns, render_markdown, run_compare, CompareConfig, Row, Target,
};
pub use error::{BenchError, Result};
pub use failover::{
    failover_key, median, run_failover, FailoverConfig, FailoverReport, KillRecord, Spread,
    FAILOVER_CLIENTS_MAX, FAILOVER_PREFIX, KILLS_MAX, RETRY_PAUSE_MS, VERIFY_PAGE_KEYS,
};
pub use keys::{key_for, make_value, validate_key_shape, KeyPicker, SplitMix64, KEY_SIZE_MAX};
pub use kube::{
    object_key, object_updates, object_value, prefix_end, KubeConfig, COMPACT_REV_KEY,
    KUBE_COUNTER_BYTES, KUBE_EVENTS_PREFIX, KUBE_NAMESPACES, KUBE_PODS_PREFIX,
    KUBE_UPDATE_ATTEMPTS_MAX, KUBE_WATCH_PREFIX,
};
pub use load::{
    leader_endpoint, run_load, run_load_report, validate_endpoints, Bench, ClientTls, LoadConfig,
    RunReport, Workload, CLIENTS_MAX, CONNECT_TIMEOUT_MS, TOTAL_MAX, TXN_OPS_MAX, VAL_SIZE_MAX,
};
pub use matrix::{
    metric_label, parse_workloads, run_matrix, MatrixConfig, MatrixLine, MatrixReport, MatrixRun,
    MatrixWorkload, MetricSpread, MATRIX_METRICS, MATRIX_RSS_SAMPLE_MS, MATRIX_WORKLOADS,
    ROUNDS_MAX,
};
pub use mixed::{
    parse_stamp, run_mixed, stamp_value, Mix, MixChooser, MixOp, MixedConfig, MixedReport, Op,
    OpReport, WatchEventReport, LEADER_WAIT_MS, LEASE_TTL_S, MIXED_DURATION_S_MAX,
    MIXED_KEY_SPACE_MAX, MIXED_REQUEST_TIMEOUT_MS_MAX, MIX_WEIGHT_MAX, PROGRESS_INTERVAL_S,
    STAMP_BYTES, WATCH_CREATE_TIMEOUT_MS, WATCH_DRAIN_TIMEOUT_MS,
};
pub use ops::{Counters, LEASE_KEEPALIVE_TTL_S, STM_ATTEMPTS_MAX};
pub use scale::{
    disk_use, find_binary, key_value_bytes, range_response_bytes, render_scale_markdown, run_scale,
    scale_key, varint_bytes, DiskUse, ProbePuts, RangeReport, RestartReport, ScaleConfig,
    ScaleReport, ScaleResult, BASELINE_PUTS_MAX, KEYS_MAX, LOAD_PROGRESS_S, PORTS_FREE_TIMEOUT_MS,
    PROBE_KEY, PROBE_VALUE_BYTES, QUOTA_BACKEND_BYTES_DEFAULT, RANGE_RESPONSE_BYTES_MAX,
    RESTART_ATTEMPT_TIMEOUT_MS, RESTART_POLL_MS, RSS_SAMPLE_MS, SCALE_PREFIX, SETTLE_MS,
    SNAPSHOT_COUNT_DEFAULT, STOP_TIMEOUT_MS,
};
pub use selfcpu::{
    rusage_cpu_us, Progress, SelfCpu, PROGRESS_DELAY_MS, PROGRESS_TICK_MS, SATURATED_PCT_PER_WORKER,
};
pub use server::{
    free_port_list, free_ports, is_healthy_response, server_args, ServerProcess, EXIT_POLL_MS,
    HEALTH_POLL_MS,
};
pub use stats::{
    format_ms, new_latency_histogram, parse_clients_list, record_latency_us, us_to_ms, Summary,
    LATENCY_SIGFIGS, LATENCY_US_MAX,
};
pub use watch::{
    event_put_index, fanout, kib_per_1000, parse_put_index, put_key, put_value,
    render_watch_markdown, run_compare_watch, run_watch_latency, run_watch_memory, tally_events,
    watch_key, watch_prefix, watcher_prefix, watchers_on_stream, PrefixMode, WatchConfig,
    WatchLatencyReport, WatchMemoryReport, WatchRow, PREFIX_BASE, WATCHERS_MAX, WATCH_EVENTS_MAX,
    WATCH_PUTS_MAX,
};
pub use watchbench::{
    run_watch_bench, WatchBenchConfig, WatchBenchReport, WATCHBENCH_WATCHERS_MAX,
};
