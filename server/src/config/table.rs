//! Every flag of etcd 3.4, 3.5 and 3.6 with its value kind, etcd's default and what
//! Cairn does with it. The flags Cairn implements are fields of [`super::Config`]; the
//! others are generated from this table as clap arguments that accept etcd's value
//! syntax and, when given, produce one warning naming the flag and why it is ignored.
//!
//! Sources: `etcd --help` of Debian's etcd 3.4.23, etcd's `etcdmain/config.go` (3.4),
//! `server/etcdmain/config.go` and `server/etcdmain/help.go` (3.5), and
//! `server/embed/config.go` `AddFlags` (3.6). `docs/flags.md` is generated from this table
//! (see the `docs_flags_md_is_current` test).

use clap::{Arg, ArgAction, Command};

use super::values::{parse_go_bool, parse_go_duration};

/// The value a flag takes, in Go `flag` syntax.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `--flag`, `--flag=true|false` (Go `strconv.ParseBool` spellings).
    Bool,
    /// Any text.
    Text,
    /// A whole number ≥ 0 (Go `uint`/`uint64`).
    Uint,
    /// A whole number (Go `int`/`int64`).
    Int,
    /// A Go duration such as `5s`, `100ms`, `1h`.
    Duration,
}

/// Which etcd releases have the flag (bit set of [`V34`], [`V35`], [`V36`]).
pub type Since = u8;
/// etcd 3.4.
pub const V34: Since = 1;
/// etcd 3.5.
pub const V35: Since = 2;
/// etcd 3.6.
pub const V36: Since = 4;
const ALL: Since = V34 | V35 | V36;
const V35_: Since = V35 | V36;

/// What Cairn does with a flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Implemented; the text says where it goes.
    Implemented(&'static str),
    /// Accepted, checked for etcd's value syntax, and ignored with one warning giving
    /// this reason.
    Ignored(&'static str),
}

/// One etcd flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlagSpec {
    /// The name without dashes, e.g. `max-wals`.
    pub name: &'static str,
    /// The value it takes.
    pub kind: Kind,
    /// etcd's default as `etcd --help` shows it (newest release where they differ).
    pub default: &'static str,
    /// The etcd releases that have it.
    pub since: Since,
    /// What Cairn does with it.
    pub status: Status,
}

impl FlagSpec {
    /// The environment variable etcd reads for it: `ETCD_` + the name upper-cased with
    /// `-` → `_` (etcd `pkg/flags.FlagToEnv`).
    pub fn env(&self) -> String {
        env_name(self.name)
    }
}

/// `ETCD_` + `name` upper-cased with `-` and `.` → `_` (etcd `pkg/flags.FlagToEnv`).
pub fn env_name(name: &str) -> String {
    format!("ETCD_{}", name.to_uppercase().replace(['-', '.'], "_"))
}

const fn f(
    name: &'static str,
    kind: Kind,
    default: &'static str,
    since: Since,
    status: Status,
) -> FlagSpec {
    FlagSpec {
        name,
        kind,
        default,
        since,
        status,
    }
}

use Kind::{Bool, Duration as Dur, Int, Text, Uint};
use Status::{Ignored as No, Implemented as Yes};

const V2: &str = "Cairn serves only the v3 API (no v2 store, no v2 proxy)";
const BBOLT: &str = "bbolt tuning; Cairn has its own storage engine";
const TRACING: &str = "OpenTelemetry tracing is not implemented";
const DISCOVERY: &str = "discovery is not implemented; use --initial-cluster";
const CAPNSLOG: &str = "capnslog-only setting; Cairn logs through tracing (zap layout)";
const NOT_YET: &str = "not implemented yet";
const LEGACY: &str = "flag from etcd 0.4, no longer supported (etcd ignores it too)";

/// Every etcd flag, in `etcd --help` order, then the legacy names etcd ignores.
pub const FLAGS: &[FlagSpec] = &[
    f("config-file", Text, "", ALL, Yes("YAML with etcd's keys; the other flags and ETCD_* variables are then ignored, as etcd")),
    // Member.
    f("name", Text, "default", ALL, Yes("ServerConfig.name")),
    f("data-dir", Text, "${name}.etcd", ALL, Yes("ServerConfig.data_dir")),
    f("wal-dir", Text, "", ALL, No("Cairn keeps its WAL in member/wal under --data-dir")),
    f("snapshot-count", Uint, "100000", ALL, Yes("ServerConfig.snapshot_count: entries between checkpoints (etcd 3.6's default is 10000)")),
    f("heartbeat-interval", Uint, "100", ALL, Yes("ServerConfig.heartbeat_interval_ms: the Raft tick")),
    f("election-timeout", Uint, "1000", ALL, Yes("ServerConfig.election_ticks")),
    f("initial-election-tick-advance", Bool, "true", ALL, No("Cairn's ticks start at zero; a lone voter campaigns at once")),
    f("listen-peer-urls", Text, "http://localhost:2380", ALL, Yes("ServerConfig.listen_peer_addrs")),
    f("listen-client-urls", Text, "http://localhost:2379", ALL, Yes("ServerConfig.listen_client_addrs")),
    f("listen-client-http-urls", Text, "", V35_, Yes("added to ServerConfig.listen_client_addrs (every client URL serves gRPC and HTTP)")),
    f("max-snapshots", Uint, "5", ALL, No("Cairn keeps its own checkpoints (the newest two)")),
    f("max-wals", Uint, "5", ALL, No("Cairn purges WAL segments below the newest checkpoint itself")),
    f("memory-mlock", Bool, "false", V36, No(NOT_YET)),
    f("experimental-memory-mlock", Bool, "false", V35_, No(NOT_YET)),
    f("quota-backend-bytes", Int, "0", ALL, Yes("ServerConfig.quota_backend_bytes (NOSPACE alarm)")),
    f("backend-bbolt-freelist-type", Text, "map", V35_, No(BBOLT)),
    f("experimental-backend-bbolt-freelist-type", Text, "array", V34, No(BBOLT)),
    f("backend-batch-interval", Dur, "", ALL, No(BBOLT)),
    f("backend-batch-limit", Int, "0", ALL, No(BBOLT)),
    f("max-txn-ops", Uint, "128", ALL, Yes("ServerConfig.txn_ops_max")),
    f("max-request-bytes", Uint, "1572864", ALL, Yes("ServerConfig.max_request_bytes (+512 KiB gRPC receive limit)")),
    f("max-concurrent-streams", Uint, "math.MaxUint32", ALL, Yes("ServerConfig.max_concurrent_streams → net::ServerLimits (HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS)")),
    f("grpc-keepalive-min-time", Dur, "5s", ALL, Yes("parsed; a value other than the default warns: clients' PING rate is not policed yet")),
    f("grpc-keepalive-interval", Dur, "2h", ALL, Yes("net::ServerLimits.keepalive_interval: the server PINGs each gRPC connection this often (0: never)")),
    f("grpc-keepalive-timeout", Dur, "20s", ALL, Yes("net::ServerLimits.keepalive_timeout: an unanswered PING closes the connection after this long")),
    f("socket-reuse-port", Bool, "false", V35_, No("Cairn always sets SO_REUSEPORT (one listener per core)")),
    f("socket-reuse-address", Bool, "false", V35_, No("Cairn always sets SO_REUSEADDR")),
    f("enable-grpc-gateway", Bool, "true", ALL, No("the JSON gateway (/v3/*) is not implemented yet; /health, /version and /metrics are always served")),
    f("raft-read-timeout", Dur, "5s", V35_, No("the peer transport detects dead peers by HTTP/2 PING (5 s)")),
    f("raft-write-timeout", Dur, "5s", V35_, No("the peer transport detects dead peers by HTTP/2 PING (5 s)")),
    f("feature-gates", Text, "", V36, Yes("InitialCorruptCheck → ServerConfig.initial_corrupt_check; each other gate set warns that it is ignored")),
    // Clustering.
    f("initial-advertise-peer-urls", Text, "http://localhost:2380", ALL, Yes("ServerConfig.initial_advertise_peer_urls")),
    f("initial-cluster", Text, "default=http://localhost:2380", ALL, Yes("ServerConfig.initial_cluster")),
    f("initial-cluster-state", Text, "new", ALL, Yes("ServerConfig.join_existing")),
    f("initial-cluster-token", Text, "etcd-cluster", ALL, Yes("ServerConfig.initial_cluster_token (cluster and member IDs)")),
    f("advertise-client-urls", Text, "http://localhost:2379", ALL, Yes("ServerConfig.advertise_client_urls")),
    f("discovery", Text, "", ALL, No(DISCOVERY)),
    f("discovery-fallback", Text, "proxy", ALL, No(DISCOVERY)),
    f("discovery-proxy", Text, "", ALL, No(DISCOVERY)),
    f("discovery-srv", Text, "", ALL, No(DISCOVERY)),
    f("discovery-srv-name", Text, "", ALL, No(DISCOVERY)),
    f("discovery-token", Text, "", V36, No(DISCOVERY)),
    f("discovery-endpoints", Text, "", V36, No(DISCOVERY)),
    f("discovery-dial-timeout", Dur, "2s", V36, No(DISCOVERY)),
    f("discovery-request-timeout", Dur, "5s", V36, No(DISCOVERY)),
    f("discovery-keepalive-time", Dur, "2s", V36, No(DISCOVERY)),
    f("discovery-keepalive-timeout", Dur, "6s", V36, No(DISCOVERY)),
    f("discovery-insecure-transport", Bool, "true", V36, No(DISCOVERY)),
    f("discovery-insecure-skip-tls-verify", Bool, "false", V36, No(DISCOVERY)),
    f("discovery-cert", Text, "", V36, No(DISCOVERY)),
    f("discovery-key", Text, "", V36, No(DISCOVERY)),
    f("discovery-cacert", Text, "", V36, No(DISCOVERY)),
    f("discovery-user", Text, "", V36, No(DISCOVERY)),
    f("discovery-password", Text, "", V36, No(DISCOVERY)),
    f("strict-reconfig-check", Bool, "true", ALL, Yes("ServerConfig.strict_reconfig_check")),
    f("pre-vote", Bool, "true", ALL, No("Cairn always runs pre-vote and check-quorum (etcd 3.5+'s default; 3.4's default was false)")),
    f("auto-compaction-retention", Text, "0", ALL, Yes("ServerConfig.auto_compaction → the leader's compactor (compactor.rs, etcd's v3compactor)")),
    f("auto-compaction-mode", Text, "periodic", ALL, Yes("ServerConfig.auto_compaction → the leader's compactor")),
    f("enable-v2", Bool, "false", V34 | V35, No(V2)),
    f("v2-deprecation", Text, "write-only", V35_, No(V2)),
    // Security.
    f("cert-file", Text, "", ALL, Yes("ServerConfig.client_tls.cert_file")),
    f("key-file", Text, "", ALL, Yes("ServerConfig.client_tls.key_file")),
    f("client-cert-auth", Bool, "false", ALL, Yes("ServerConfig.client_tls.client_cert_auth")),
    f("client-cert-file", Text, "", V35_, Yes("ServerConfig.client_tls.client_cert_file")),
    f("client-key-file", Text, "", V35_, Yes("ServerConfig.client_tls.client_key_file")),
    f("client-crl-file", Text, "", ALL, Yes("ServerConfig.client_tls.crl_file")),
    f("client-cert-allowed-hostname", Text, "", ALL, Yes("ServerConfig.client_tls.allowed_hostname")),
    f("trusted-ca-file", Text, "", ALL, Yes("ServerConfig.client_tls.trusted_ca_file")),
    f("auto-tls", Bool, "false", ALL, Yes("ServerConfig.client_tls.auto_tls")),
    f("peer-cert-file", Text, "", ALL, Yes("ServerConfig.peer_tls.cert_file")),
    f("peer-key-file", Text, "", ALL, Yes("ServerConfig.peer_tls.key_file")),
    f("peer-client-cert-auth", Bool, "false", ALL, Yes("ServerConfig.peer_tls.client_cert_auth")),
    f("peer-client-cert-file", Text, "", V35_, Yes("ServerConfig.peer_tls.client_cert_file")),
    f("peer-client-key-file", Text, "", V35_, Yes("ServerConfig.peer_tls.client_key_file")),
    f("peer-trusted-ca-file", Text, "", ALL, Yes("ServerConfig.peer_tls.trusted_ca_file")),
    f("peer-cert-allowed-cn", Text, "", ALL, Yes("ServerConfig.peer_tls.allowed_cn")),
    f("peer-cert-allowed-hostname", Text, "", ALL, Yes("ServerConfig.peer_tls.allowed_hostname")),
    f("peer-auto-tls", Bool, "false", ALL, Yes("ServerConfig.peer_tls.auto_tls")),
    f("self-signed-cert-validity", Uint, "1", V35_, Yes("ServerConfig.tls_common.self_signed_cert_validity_years")),
    f("peer-crl-file", Text, "", ALL, Yes("ServerConfig.peer_tls.crl_file")),
    f("cipher-suites", Text, "", ALL, Yes("ServerConfig.tls_common.cipher_suites")),
    f("cors", Text, "*", ALL, No("Cairn's HTTP endpoints send no CORS headers")),
    f("host-whitelist", Text, "*", ALL, No("Cairn's HTTP endpoints accept every Host")),
    f("tls-min-version", Text, "TLS1.2", V35_, Yes("ServerConfig.tls_common.min_version")),
    f("tls-max-version", Text, "", V35_, Yes("ServerConfig.tls_common.max_version")),
    f("peer-skip-client-san-verification", Bool, "false", V36, Yes("ServerConfig.peer_tls.skip_client_san_verification")),
    f("experimental-peer-skip-client-san-verification", Bool, "false", ALL, Yes("ServerConfig.peer_tls.skip_client_san_verification")),
    // Auth.
    f("auth-token", Text, "simple", ALL, Yes("ServerConfig.auth_token (auth::token)")),
    f("bcrypt-cost", Uint, "10", ALL, Yes("ServerConfig.bcrypt_cost")),
    f("auth-token-ttl", Uint, "300", ALL, Yes("ServerConfig.auth_token_ttl")),
    // Profiling and monitoring.
    f("enable-pprof", Bool, "false", ALL, No("Go runtime profiling has no Cairn counterpart")),
    f("metrics", Text, "basic", ALL, Yes("ServerConfig.metrics")),
    f("listen-metrics-urls", Text, "", ALL, Yes("ServerConfig.listen_metrics_addrs")),
    // Logging.
    f("logger", Text, "zap", ALL, Yes("ServerConfig.logger ('capnslog' logs as zap)")),
    f("log-outputs", Text, "default", ALL, Yes("ServerConfig.log_outputs")),
    f("log-output", Text, "default", V34, Yes("ServerConfig.log_outputs (etcd 3.4's deprecated spelling)")),
    f("log-level", Text, "info", ALL, Yes("ServerConfig.log_level")),
    f("log-format", Text, "json", V36, Yes("json only; console warns and logs JSON")),
    f("debug", Bool, "false", V34, Yes("ServerConfig.log_level = debug (etcd 3.4)")),
    f("log-package-levels", Text, "", V34, No(CAPNSLOG)),
    f("enable-log-rotation", Bool, "false", V35_, No(NOT_YET)),
    f("log-rotation-config-json", Text, "{\"maxsize\": 100, \"maxage\": 0, \"maxbackups\": 0, \"localtime\": false, \"compress\": false}", V35_, No(NOT_YET)),
    // v2 proxy.
    f("proxy", Text, "off", V34 | V35, No(V2)),
    f("proxy-failure-wait", Uint, "5000", V34 | V35, No(V2)),
    f("proxy-refresh-interval", Uint, "30000", V34 | V35, No(V2)),
    f("proxy-dial-timeout", Uint, "1000", V34 | V35, No(V2)),
    f("proxy-write-timeout", Uint, "5000", V34 | V35, No(V2)),
    f("proxy-read-timeout", Uint, "0", V34 | V35, No(V2)),
    // Tracing.
    f("experimental-enable-distributed-tracing", Bool, "false", V35_, No(TRACING)),
    f("enable-distributed-tracing", Bool, "false", V36, No(TRACING)),
    f("experimental-distributed-tracing-address", Text, "localhost:4317", V35_, No(TRACING)),
    f("distributed-tracing-address", Text, "localhost:4317", V36, No(TRACING)),
    f("experimental-distributed-tracing-service-name", Text, "etcd", V35_, No(TRACING)),
    f("distributed-tracing-service-name", Text, "etcd", V36, No(TRACING)),
    f("experimental-distributed-tracing-instance-id", Text, "", V35_, No(TRACING)),
    f("distributed-tracing-instance-id", Text, "", V36, No(TRACING)),
    f("experimental-distributed-tracing-sampling-rate", Int, "0", V35_, No(TRACING)),
    f("distributed-tracing-sampling-rate", Int, "0", V36, No(TRACING)),
    // Experimental and their 3.6 names.
    f("experimental-initial-corrupt-check", Bool, "false", ALL, Yes("ServerConfig.initial_corrupt_check")),
    f("experimental-corrupt-check-time", Dur, "0s", ALL, Yes("ServerConfig.corrupt_check_time (leader compares HashKV with its peers, CORRUPT alarm)")),
    f("corrupt-check-time", Dur, "0s", V36, Yes("ServerConfig.corrupt_check_time")),
    f("experimental-compact-hash-check-enabled", Bool, "false", V35_, No(NOT_YET)),
    f("experimental-compact-hash-check-time", Dur, "1m", V35_, No(NOT_YET)),
    f("compact-hash-check-time", Dur, "1m", V36, No(NOT_YET)),
    f("experimental-enable-v2v3", Text, "", V34 | V35, No(V2)),
    f("experimental-enable-lease-checkpoint", Bool, "false", ALL, Yes("ServerConfig.lease_checkpoint (remaining TTLs checkpointed through Raft every 5 min)")),
    f("experimental-enable-lease-checkpoint-persist", Bool, "false", ALL, Yes("ServerConfig.lease_checkpoint (remaining TTLs always kept in Cairn's checkpoints, as etcd 3.6)")),
    f("experimental-compaction-batch-limit", Int, "1000", ALL, No(BBOLT)),
    f("compaction-batch-limit", Int, "1000", V36, No(BBOLT)),
    f("experimental-compaction-sleep-interval", Dur, "10ms", V35_, No(BBOLT)),
    f("compaction-sleep-interval", Dur, "10ms", V36, No(BBOLT)),
    f("experimental-watch-progress-notify-interval", Dur, "10m", ALL, Yes("ServerConfig.watch_progress_notify_interval")),
    f("watch-progress-notify-interval", Dur, "10m", V36, Yes("ServerConfig.watch_progress_notify_interval")),
    f("experimental-warning-apply-duration", Dur, "100ms", ALL, Yes("ServerConfig.warning_apply_duration (slow-apply warning)")),
    f("warning-apply-duration", Dur, "100ms", V36, Yes("ServerConfig.warning_apply_duration (slow-apply warning)")),
    f("experimental-warning-unary-request-duration", Dur, "300ms", V35_, No(NOT_YET)),
    f("warning-unary-request-duration", Dur, "300ms", V36, No(NOT_YET)),
    f("experimental-txn-mode-write-with-shared-buffer", Bool, "true", V35_, No(BBOLT)),
    f("experimental-bootstrap-defrag-threshold-megabytes", Uint, "0", V35_, No(BBOLT)),
    f("bootstrap-defrag-threshold-megabytes", Uint, "0", V36, No(BBOLT)),
    f("max-learners", Int, "1", V36, Yes("ServerConfig.learners_max → membership changes (set the same value on every member, as etcd)")),
    f("experimental-downgrade-check-time", Dur, "5s", V35_, No("downgrades are not implemented")),
    f("downgrade-check-time", Dur, "5s", V36, No("downgrades are not implemented")),
    f("experimental-snapshot-catchup-entries", Uint, "5000", V35_, No("Cairn keeps 5000 entries for lagging followers, etcd's default")),
    f("snapshot-catchup-entries", Uint, "5000", V36, No("Cairn keeps 5000 entries for lagging followers, etcd's default")),
    f("experimental-stop-grpc-service-on-defrag", Bool, "false", V35_, No(NOT_YET)),
    // Unsafe.
    f("force-new-cluster", Bool, "false", ALL, No(NOT_YET)),
    f("unsafe-no-fsync", Bool, "false", ALL, No("Cairn always syncs its WAL (not implemented)")),
    // etcd's own ignored legacy flags (etcdmain/config.go `ignored`).
    f("cluster-active-size", Bool, "", ALL, No(LEGACY)),
    f("cluster-remove-delay", Bool, "", ALL, No(LEGACY)),
    f("cluster-sync-interval", Bool, "", ALL, No(LEGACY)),
    f("config", Bool, "", ALL, No(LEGACY)),
    f("force", Bool, "", ALL, No(LEGACY)),
    f("max-result-buffer", Bool, "", ALL, No(LEGACY)),
    f("max-retry-attempts", Bool, "", ALL, No(LEGACY)),
    f("peer-heartbeat-interval", Bool, "", ALL, No(LEGACY)),
    f("peer-election-timeout", Bool, "", ALL, No(LEGACY)),
    f("retry-interval", Bool, "", ALL, No(LEGACY)),
    f("snapshot", Bool, "", ALL, No(LEGACY)),
    f("v", Bool, "", ALL, No(LEGACY)),
    f("vv", Bool, "", ALL, No(LEGACY)),
];

/// The table entry of `name`, if etcd has such a flag.
pub fn find(name: &str) -> Option<&'static FlagSpec> {
    FLAGS.iter().find(|spec| spec.name == name)
}

/// Adds one clap argument per ignored flag of [`FLAGS`], with etcd's environment variable
/// and a value parser for its kind. Legacy flags take an optional value of any text, as
/// etcd's `IgnoredFlag`.
pub fn add_ignored_args(mut command: Command) -> Command {
    static ENV_NAMES: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    let env_names = ENV_NAMES.get_or_init(|| FLAGS.iter().map(FlagSpec::env).collect());
    for (spec, env) in FLAGS.iter().zip(env_names) {
        let Status::Ignored(reason) = spec.status else {
            continue;
        };
        let arg = Arg::new(spec.name)
            .long(spec.name)
            .env(env.as_str())
            .help(format!(
                "Accepted for etcd compatibility and ignored: {reason}."
            ))
            .action(ArgAction::Set)
            .help_heading("Accepted for etcd compatibility and ignored (see docs/flags.md)")
            // etcd's own --help leaves out the 0.4 legacy flags too.
            .hide(reason == LEGACY);
        let arg = match spec.kind {
            Kind::Bool if reason == LEGACY => arg.num_args(0..=1).default_missing_value(""),
            Kind::Bool => arg
                .num_args(0..=1)
                .default_missing_value("true")
                .value_parser(|s: &str| parse_go_bool(s)),
            Kind::Text => arg,
            Kind::Uint => arg.value_parser(|s: &str| {
                s.parse::<u64>()
                    .map_err(|_| format!("invalid value {s:?}: parse error"))
            }),
            Kind::Int => arg.value_parser(|s: &str| {
                s.parse::<i64>()
                    .map_err(|_| format!("invalid value {s:?}: parse error"))
            }),
            Kind::Duration => arg.value_parser(|s: &str| parse_go_duration(s)),
        };
        command = command.arg(arg);
    }
    command
}

#[cfg(test)]
/// `docs/flags.md`: every flag with its environment variable, etcd's default, the etcd
/// releases that have it and what Cairn does with it.
pub fn docs_markdown() -> String {
    let mark = |since: Since, v: Since| if since & v != 0 { "✓" } else { "" };
    let mut out = String::from(
        "# Flags\n\n\
         Generated from `server/src/config/table.rs` by the `docs_flags_md_is_current` test\n\
         (`CAIRN_WRITE_DOCS=1 cargo test -p server --bin cairn docs_flags_md_is_current`).\n\n\
         `cairn` takes every flag of etcd 3.4, 3.5 and 3.6, with etcd's value syntax\n\
         (`--flag=value`, `--flag value`, `-flag`, booleans as `--flag` or `--flag=true|false`,\n\
         durations such as `5s`, `100ms`, `1h`), its `ETCD_*` environment variable, and\n\
         `--config-file` with etcd's YAML keys (nested `client-transport-security` and\n\
         `peer-transport-security` included; unknown keys are ignored, as etcd, with a warning).\n\
         A flag given on the command line wins over its variable; giving both is an error, as etcd.\n\
         With `--config-file` every other flag and variable is ignored, as etcd.\n\n\
         A flag Cairn has no use for is accepted, its value checked, and — only when it is given\n\
         on the command line, in the environment or in the config file — one warning names it\n\
         and the reason at start. An unknown flag is an error (exit 2), as etcd.\n\n\
         `cairn --version` and `cairn version` print etcd's layout with Cairn's values.\n\
         Cairn's own flags: `--cores` (`CAIRN_CORES`), `--auto-promote-learners`\n\
         (`CAIRN_AUTO_PROMOTE_LEARNERS`).\n\n\
         | flag | environment | etcd default | 3.4 | 3.5 | 3.6 | Cairn |\n\
         |---|---|---|:-:|:-:|:-:|---|\n",
    );
    for spec in FLAGS {
        let status = match spec.status {
            Status::Implemented(what) => format!("implemented: {what}"),
            Status::Ignored(why) => format!("accepted and ignored: {why}"),
        };
        let default = if spec.default.is_empty() {
            String::new()
        } else {
            format!("`{}`", spec.default)
        };
        out.push_str(&format!(
            "| `--{}` | `{}` | {} | {} | {} | {} | {} |\n",
            spec.name,
            spec.env(),
            default.replace('|', "\\|"),
            mark(spec.since, V34),
            mark(spec.since, V35),
            mark(spec.since, V36),
            status.replace('|', "\\|"),
        ));
    }
    out
}
