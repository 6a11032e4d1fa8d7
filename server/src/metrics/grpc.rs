//! `grpc_server_*` as go-grpc-prometheus exports them for etcd (`server_metrics.go`,
//! `util.go`): `grpc_server_started_total{grpc_type,grpc_service,grpc_method}`,
//! `grpc_server_handled_total{grpc_type,grpc_service,grpc_method,grpc_code}`,
//! and with `--metrics=extensive`
//! `grpc_server_handling_seconds` (Prometheus' default buckets). As there, every method of
//! every registered service starts at 0 with every code.
//!
//! Every (method, code) counter is resolved once at start-up; a call looks its method up in
//! an immutable map and touches atomics only ([`CoreObserver`]).

use std::collections::HashMap;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use net::{CallObserver, Code, MethodKind};
use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, Opts, Registry,
};

/// grpc-go's `codes.Code.String()` for codes 0..=16.
pub const GRPC_CODE_NAMES: [&str; 17] = [
    "OK",
    "Canceled",
    "Unknown",
    "InvalidArgument",
    "DeadlineExceeded",
    "NotFound",
    "AlreadyExists",
    "PermissionDenied",
    "ResourceExhausted",
    "FailedPrecondition",
    "Aborted",
    "OutOfRange",
    "Unimplemented",
    "Internal",
    "Unavailable",
    "DataLoss",
    "Unauthenticated",
];

/// go-grpc-prometheus' `grpc_type` of a method: etcd's streaming methods are bidirectional
/// (Watch, LeaseKeepAlive) except the server-streaming Maintenance.Snapshot and
/// Election.Observe (etcd `rpc.proto`, `v3election.proto`).
pub fn grpc_type(path: &str, kind: MethodKind) -> &'static str {
    match kind {
        MethodKind::Unary => "unary",
        MethodKind::Streaming
            if path == "/etcdserverpb.Maintenance/Snapshot"
                || path == "/v3electionpb.Election/Observe" =>
        {
            "server_stream"
        }
        MethodKind::Streaming => "bidi_stream",
    }
}

/// `/pkg.Service/Method` → (`pkg.Service`, `Method`); ("unknown", "unknown") otherwise.
pub fn split_method(path: &str) -> (&str, &str) {
    let trimmed = path.strip_prefix('/').unwrap_or(path);
    match trimmed.find('/') {
        Some(at) => (&trimmed[..at], &trimmed[at + 1..]),
        None => ("unknown", "unknown"),
    }
}

/// One method's resolved series.
struct MethodSeries {
    started: IntCounter,
    handled: [IntCounter; 17],
    handling_seconds: Histogram,
}

/// The `grpc_server_*` families and each method's series.
pub struct GrpcMetrics {
    started_total: IntCounterVec,
    handled_total: IntCounterVec,
    handling_seconds: HistogramVec,
    methods: HashMap<&'static str, MethodSeries>,
    extensive: AtomicBool,
}

impl GrpcMetrics {
    pub(super) fn new() -> GrpcMetrics {
        let labels = ["grpc_type", "grpc_service", "grpc_method"];
        let started_total = IntCounterVec::new(
            Opts::new(
                "grpc_server_started_total",
                "Total number of RPCs started on the server.",
            ),
            &labels,
        )
        .expect("valid counter");
        let handled_total = IntCounterVec::new(
            Opts::new(
                "grpc_server_handled_total",
                "Total number of RPCs completed on the server, regardless of success or failure.",
            ),
            &["grpc_type", "grpc_service", "grpc_method", "grpc_code"],
        )
        .expect("valid counter");
        let handling_seconds = HistogramVec::new(
            HistogramOpts::new(
                "grpc_server_handling_seconds",
                "Histogram of response latency (seconds) of gRPC that had been application-level handled by the server.",
            ),
            &labels,
        )
        .expect("valid histogram");
        let mut methods = HashMap::new();
        for &(path, kind) in net::pb::METHODS {
            let (service, method) = split_method(path);
            let values = [grpc_type(path, kind), service, method];
            let handled = std::array::from_fn(|code| {
                handled_total.with_label_values(&[
                    values[0],
                    values[1],
                    values[2],
                    GRPC_CODE_NAMES[code],
                ])
            });
            methods.insert(
                path,
                MethodSeries {
                    started: started_total.with_label_values(&values),
                    handled,
                    handling_seconds: handling_seconds.with_label_values(&values),
                },
            );
        }
        GrpcMetrics {
            started_total,
            handled_total,
            handling_seconds,
            methods,
            extensive: AtomicBool::new(false),
        }
    }

    /// Registers the counter families (the handling histogram joins at [`Self::set_level`]).
    pub(super) fn register(&self, registry: &Registry) {
        for collector in [self.started_total.clone(), self.handled_total.clone()] {
            registry
                .register(Box::new(collector))
                .expect("unique gRPC metrics");
        }
    }

    /// `--metrics=extensive` registers and starts `grpc_server_handling_seconds`
    /// (etcd's `grpc_prometheus.EnableHandlingTimeHistogram`). Called once.
    pub(super) fn set_level(&self, level: super::MetricsLevel, registry: &Registry) {
        if level == super::MetricsLevel::Extensive && !self.extensive.swap(true, Ordering::AcqRel) {
            registry
                .register(Box::new(self.handling_seconds.clone()))
                .expect("unique gRPC metrics");
        }
    }

    fn call_started(&self, path: &str) {
        if let Some(series) = self.methods.get(path) {
            series.started.inc();
        }
    }

    fn call_finished(&self, path: &str, code: Code, elapsed: Duration) {
        if let Some(series) = self.methods.get(path) {
            let index = (code.as_u32() as usize).min(GRPC_CODE_NAMES.len() - 1);
            series.handled[index].inc();
            if self.extensive.load(Ordering::Relaxed) {
                series.handling_seconds.observe(elapsed.as_secs_f64());
            }
        }
    }
}

/// The [`CallObserver`] of one core's gRPC service: counts calls per method, per core
/// (`cairn_server_core_requests_total`), and message bytes
/// (`etcd_network_client_grpc_{sent,received}_bytes_total`, counted per message as etcd's
/// codec does).
pub struct CoreObserver {
    metrics: &'static super::Metrics,
    core_requests: IntCounter,
}

impl CoreObserver {
    /// The observer for core `core`.
    pub fn new(core: usize) -> Rc<CoreObserver> {
        let metrics = super::get();
        Rc::new(CoreObserver {
            metrics,
            core_requests: metrics
                .core_requests_total
                .with_label_values(&[&core.to_string()]),
        })
    }
}

impl CallObserver for CoreObserver {
    fn call_started(&self, path: &str, kind: MethodKind) {
        self.core_requests.inc();
        self.metrics.grpc.call_started(path);
        let _ = kind;
    }

    fn call_finished(&self, path: &str, _kind: MethodKind, code: Code, elapsed: Duration) {
        self.metrics.grpc.call_finished(path, code, elapsed);
    }

    fn message_received(&self, bytes: usize) {
        self.metrics
            .client_grpc_received_bytes_total
            .inc_by(bytes as u64);
    }

    fn message_sent(&self, bytes: usize) {
        self.metrics
            .client_grpc_sent_bytes_total
            .inc_by(bytes as u64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_names_are_grpc_gos() {
        assert_eq!(GRPC_CODE_NAMES[Code::Ok.as_u32() as usize], "OK");
        assert_eq!(
            GRPC_CODE_NAMES[Code::Cancelled.as_u32() as usize],
            "Canceled"
        );
        assert_eq!(
            GRPC_CODE_NAMES[Code::Unauthenticated.as_u32() as usize],
            "Unauthenticated"
        );
        assert_eq!(
            GRPC_CODE_NAMES[Code::DeadlineExceeded.as_u32() as usize],
            "DeadlineExceeded"
        );
    }

    #[test]
    fn types_and_names_of_methods() {
        assert_eq!(
            split_method("/etcdserverpb.KV/Put"),
            ("etcdserverpb.KV", "Put")
        );
        assert_eq!(split_method("nopath"), ("unknown", "unknown"));
        assert_eq!(
            grpc_type("/etcdserverpb.KV/Put", MethodKind::Unary),
            "unary"
        );
        assert_eq!(
            grpc_type("/etcdserverpb.Watch/Watch", MethodKind::Streaming),
            "bidi_stream"
        );
        assert_eq!(
            grpc_type("/etcdserverpb.Maintenance/Snapshot", MethodKind::Streaming),
            "server_stream"
        );
    }

    #[test]
    fn calls_count_by_method_and_code() {
        let m = GrpcMetrics::new();
        m.call_started("/etcdserverpb.KV/Put");
        m.call_finished("/etcdserverpb.KV/Put", Code::Ok, Duration::from_millis(1));
        m.call_finished(
            "/etcdserverpb.KV/Put",
            Code::InvalidArgument,
            Duration::from_millis(1),
        );
        m.call_started("/no.Such/Method");
        let put = &m.methods["/etcdserverpb.KV/Put"];
        assert_eq!(put.started.get(), 1);
        assert_eq!(put.handled[0].get(), 1);
        assert_eq!(put.handled[3].get(), 1);
        assert_eq!(put.handling_seconds.get_sample_count(), 0, "basic level");
        m.set_level(crate::metrics::MetricsLevel::Extensive, &Registry::new());
        m.call_finished("/etcdserverpb.KV/Put", Code::Ok, Duration::from_millis(1));
        assert_eq!(put.handling_seconds.get_sample_count(), 1);
    }
}
