//! Server configuration: etcd's flags and `ETCD_*` environment variables.
//!
//! Flag names, defaults and validation messages follow etcd 3.4/3.6 (`etcdmain/config.go`,
//! `embed/config.go`). Every flag can also be set through the environment variable etcd
//! uses for it: `ETCD_` + the flag name upper-cased with `-` replaced by `_`
//! (e.g. `--data-dir` ↔ `ETCD_DATA_DIR`). A flag given on the command line wins.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;

use std::ffi::OsString;
use std::time::Duration;

use clap::{CommandFactory, FromArgMatches, Parser};

mod file;
pub mod table;
pub mod values;

pub use values::AutoCompaction;
use values::{parse_go_bool, parse_go_duration};

/// etcd's default `--max-request-bytes` (1.5 MiB, `embed.DefaultMaxRequestBytes`).
pub const DEFAULT_MAX_REQUEST_BYTES: u32 = 1536 * 1024;
/// gRPC receive limit slack etcd adds on top of `--max-request-bytes` (`grpcOverheadBytes`, 512 KiB).
pub const GRPC_OVERHEAD_BYTES: usize = 512 * 1024;
/// etcd's default backend quota (2 GiB, `etcdserver.DefaultQuotaBytes`).
pub const DEFAULT_QUOTA_BACKEND_BYTES: i64 = 2 * 1024 * 1024 * 1024;
/// etcd's largest accepted quota (8 GiB, `etcdserver.MaxQuotaBytes`).
pub const MAX_QUOTA_BACKEND_BYTES: i64 = 8 * 1024 * 1024 * 1024;
/// etcd's default `--experimental-watch-progress-notify-interval` (10 minutes,
/// `v3rpc.progressReportInterval`), also used when the flag is 0.
pub const WATCH_PROGRESS_NOTIFY_INTERVAL_DEFAULT: Duration = crate::watch::PROGRESS_NOTIFY_INTERVAL;
/// HTTP/2 streams per client connection when `--max-concurrent-streams` keeps etcd's
/// default (`math.MaxUint32`, i.e. unlimited): Cairn bounds every queue, so it serves at
/// most this many streams per connection unless a value is given.
pub const MAX_CONCURRENT_STREAMS_DEFAULT: u32 = 1_000;
/// Largest `--config-file` accepted, in bytes (a YAML file of every flag is ~10 KiB).
pub const CONFIG_FILE_BYTES_MAX: u64 = 1024 * 1024;
/// etcd's largest election timeout (`embed.maxElectionMs`).
pub const ELECTION_TIMEOUT_MS_MAX: u64 = 50_000;

/// Command line and environment of `cairn`, as etcd's.
#[derive(Parser, Debug, Clone)]
#[command(
    name = "cairn",
    about = "Cairn: a strongly consistent key-value store that speaks the etcd v3 API.",
    disable_version_flag = true,
    after_help = "Every flag of etcd 3.4, 3.5 and 3.6 is accepted (with its ETCD_* variable); \
                  the ones Cairn has no use for log one warning each when given. \
                  See docs/flags.md for the full table, and --config-file for etcd's YAML.",
    args_override_self = true
)]
pub struct Config {
    /// Human-readable name for this member.
    #[arg(long, env = "ETCD_NAME", default_value = "default")]
    pub name: String,
    /// Path to the data directory (default: `<name>.etcd`).
    #[arg(long, env = "ETCD_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// List of URLs to listen on for client traffic (comma separated).
    #[arg(
        long,
        env = "ETCD_LISTEN_CLIENT_URLS",
        default_value = "http://localhost:2379"
    )]
    pub listen_client_urls: String,
    /// List of this member's client URLs to advertise to the public.
    #[arg(
        long,
        env = "ETCD_ADVERTISE_CLIENT_URLS",
        default_value = "http://localhost:2379"
    )]
    pub advertise_client_urls: String,
    /// List of URLs to listen on for peer traffic.
    #[arg(
        long,
        env = "ETCD_LISTEN_PEER_URLS",
        default_value = "http://localhost:2380"
    )]
    pub listen_peer_urls: String,
    /// List of this member's peer URLs to advertise to the rest of the cluster.
    #[arg(
        long,
        env = "ETCD_INITIAL_ADVERTISE_PEER_URLS",
        default_value = "http://localhost:2380"
    )]
    pub initial_advertise_peer_urls: String,
    /// Initial cluster configuration for bootstrapping (`name=peerURL,...`; default: `<name>=<initial-advertise-peer-urls>`).
    #[arg(long, env = "ETCD_INITIAL_CLUSTER")]
    pub initial_cluster: Option<String>,
    /// Initial cluster state ('new' or 'existing').
    #[arg(long, env = "ETCD_INITIAL_CLUSTER_STATE", default_value = "new", value_parser = ["new", "existing"])]
    pub initial_cluster_state: String,
    /// Initial cluster token for the cluster during bootstrap.
    #[arg(
        long,
        env = "ETCD_INITIAL_CLUSTER_TOKEN",
        default_value = "etcd-cluster"
    )]
    pub initial_cluster_token: String,
    /// Maximum client request size in bytes the server will accept.
    #[arg(long, env = "ETCD_MAX_REQUEST_BYTES", default_value_t = DEFAULT_MAX_REQUEST_BYTES)]
    pub max_request_bytes: u32,
    /// Maximum number of operations permitted in a transaction.
    #[arg(long, env = "ETCD_MAX_TXN_OPS", default_value_t = 128)]
    pub max_txn_ops: u32,
    /// Raise alarms when backend size exceeds the given quota (0 means the default quota).
    #[arg(long, env = "ETCD_QUOTA_BACKEND_BYTES", default_value_t = 0)]
    pub quota_backend_bytes: i64,
    /// Number of committed transactions to trigger a snapshot to disk.
    #[arg(long, env = "ETCD_SNAPSHOT_COUNT", default_value_t = 100_000)]
    pub snapshot_count: u64,
    /// Time (in milliseconds) of a heartbeat interval.
    #[arg(long, env = "ETCD_HEARTBEAT_INTERVAL", default_value_t = 100)]
    pub heartbeat_interval: u64,
    /// Time (in milliseconds) for an election to timeout.
    #[arg(long, env = "ETCD_ELECTION_TIMEOUT", default_value_t = 1000)]
    pub election_timeout: u64,
    /// Reject reconfiguration requests that would cause quorum loss.
    #[arg(long, env = "ETCD_STRICT_RECONFIG_CHECK", default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true", value_parser = parse_go_bool)]
    pub strict_reconfig_check: bool,
    /// Promote learners to voters as soon as they have caught up with the leader (Cairn's
    /// own flag; etcd never shipped this, etcd issue 15107). Off by default.
    #[arg(long, env = "CAIRN_AUTO_PROMOTE_LEARNERS", default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true", value_parser = parse_go_bool)]
    pub auto_promote_learners: bool,
    /// Log level: debug, info, warn, error, panic or fatal.
    #[arg(long, env = "ETCD_LOG_LEVEL", default_value = "info", value_parser = ["debug", "info", "warn", "error", "panic", "fatal"])]
    pub log_level: String,
    /// Number of cores (executors) to run on; default all online cores. Cairn's own flag.
    #[arg(long, env = "CAIRN_CORES")]
    pub cores: Option<usize>,
    /// Path to the client server TLS cert file.
    #[arg(long, env = "ETCD_CERT_FILE", default_value = "")]
    pub cert_file: String,
    /// Path to the client server TLS key file.
    #[arg(long, env = "ETCD_KEY_FILE", default_value = "")]
    pub key_file: String,
    /// Enable client cert authentication.
    #[arg(long, env = "ETCD_CLIENT_CERT_AUTH", default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true", value_parser = parse_go_bool)]
    pub client_cert_auth: bool,
    /// Path to the client certificate revocation list file.
    #[arg(long, env = "ETCD_CLIENT_CRL_FILE", default_value = "")]
    pub client_crl_file: String,
    /// Allowed TLS hostname for client cert authentication.
    #[arg(long, env = "ETCD_CLIENT_CERT_ALLOWED_HOSTNAME", default_value = "")]
    pub client_cert_allowed_hostname: String,
    /// Path to the client server TLS trusted CA cert file.
    #[arg(long, env = "ETCD_TRUSTED_CA_FILE", default_value = "")]
    pub trusted_ca_file: String,
    /// Client TLS using generated certificates.
    #[arg(long, env = "ETCD_AUTO_TLS", default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true", value_parser = parse_go_bool)]
    pub auto_tls: bool,
    /// Path to the peer server TLS cert file.
    #[arg(long, env = "ETCD_PEER_CERT_FILE", default_value = "")]
    pub peer_cert_file: String,
    /// Path to the peer server TLS key file.
    #[arg(long, env = "ETCD_PEER_KEY_FILE", default_value = "")]
    pub peer_key_file: String,
    /// Enable peer client cert authentication.
    #[arg(long, env = "ETCD_PEER_CLIENT_CERT_AUTH", default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true", value_parser = parse_go_bool)]
    pub peer_client_cert_auth: bool,
    /// Path to the peer server TLS trusted CA file.
    #[arg(long, env = "ETCD_PEER_TRUSTED_CA_FILE", default_value = "")]
    pub peer_trusted_ca_file: String,
    /// Required CN for client certs connecting to the peer endpoint.
    #[arg(long, env = "ETCD_PEER_CERT_ALLOWED_CN", default_value = "")]
    pub peer_cert_allowed_cn: String,
    /// Allowed TLS hostname for inter peer authentication.
    #[arg(long, env = "ETCD_PEER_CERT_ALLOWED_HOSTNAME", default_value = "")]
    pub peer_cert_allowed_hostname: String,
    /// Peer TLS using self-generated certificates if --peer-key-file and --peer-cert-file are not provided.
    #[arg(long, env = "ETCD_PEER_AUTO_TLS", default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true", value_parser = parse_go_bool)]
    pub peer_auto_tls: bool,
    /// Path to the peer certificate revocation list file.
    #[arg(long, env = "ETCD_PEER_CRL_FILE", default_value = "")]
    pub peer_crl_file: String,
    /// Comma-separated list of supported TLS cipher suites between client/server and peers (empty: the library's defaults).
    #[arg(long, env = "ETCD_CIPHER_SUITES", default_value = "")]
    pub cipher_suites: String,
    /// Minimum TLS version supported by etcd (TLS1.2 or TLS1.3; empty: TLS1.2).
    #[arg(long, env = "ETCD_TLS_MIN_VERSION", default_value = "")]
    pub tls_min_version: String,
    /// Maximum TLS version supported by etcd (TLS1.2 or TLS1.3; empty: the highest).
    #[arg(long, env = "ETCD_TLS_MAX_VERSION", default_value = "")]
    pub tls_max_version: String,
    /// The validity period of the client and peer certificates generated by --auto-tls and --peer-auto-tls, in years.
    #[arg(long, env = "ETCD_SELF_SIGNED_CERT_VALIDITY", default_value_t = 1)]
    pub self_signed_cert_validity: u32,
    /// List of URLs to listen on for the metrics and health endpoints.
    #[arg(long, env = "ETCD_LISTEN_METRICS_URLS", default_value = "")]
    pub listen_metrics_urls: String,
    /// Set level of detail for exported metrics, specify 'extensive' to include server side grpc histogram metrics.
    #[arg(long, env = "ETCD_METRICS", default_value = "basic", value_parser = ["basic", "extensive"])]
    pub metrics: String,
    /// Currently only supports 'zap' for structured logging ('capnslog' is accepted as etcd 3.4's default and logs as zap).
    #[arg(long, env = "ETCD_LOGGER", default_value = "zap", value_parser = ["zap", "capnslog"])]
    pub logger: String,
    /// Specify 'stdout' or 'stderr' to skip journald logging even when running under systemd, or list of comma separated output targets.
    #[arg(long, env = "ETCD_LOG_OUTPUTS", default_value = "default")]
    pub log_outputs: String,
    /// Enable to check data corruption before serving any client/peer traffic.
    #[arg(long, env = "ETCD_EXPERIMENTAL_INITIAL_CORRUPT_CHECK", default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true", value_parser = parse_go_bool)]
    pub experimental_initial_corrupt_check: bool,
    /// Path to the server configuration file (etcd's YAML keys). When given, the other
    /// command-line flags and environment variables are ignored, as etcd.
    #[arg(long, env = "ETCD_CONFIG_FILE")]
    pub config_file: Option<PathBuf>,
    /// Maximum concurrent streams that each client can open at a time (HTTP/2).
    #[arg(long, env = "ETCD_MAX_CONCURRENT_STREAMS", default_value_t = u32::MAX)]
    pub max_concurrent_streams: u32,
    /// Minimum duration interval that a client should wait before pinging server.
    #[arg(long, env = "ETCD_GRPC_KEEPALIVE_MIN_TIME", default_value = "5s", value_parser = parse_go_duration)]
    pub grpc_keepalive_min_time: Duration,
    /// Frequency duration of server-to-client ping to check if a connection is alive (0 to disable).
    #[arg(long, env = "ETCD_GRPC_KEEPALIVE_INTERVAL", default_value = "2h", value_parser = parse_go_duration)]
    pub grpc_keepalive_interval: Duration,
    /// Additional duration of wait before closing a non-responsive connection (0 to disable).
    #[arg(long, env = "ETCD_GRPC_KEEPALIVE_TIMEOUT", default_value = "20s", value_parser = parse_go_duration)]
    pub grpc_keepalive_timeout: Duration,
    /// Specify auth token type and options: `simple` or `jwt,pub-key=...,priv-key=...,sign-method=...,ttl=...`.
    #[arg(long, env = "ETCD_AUTH_TOKEN", default_value = "simple")]
    pub auth_token: String,
    /// Specify bcrypt algorithm cost factor for auth password hashing.
    #[arg(long, env = "ETCD_BCRYPT_COST", default_value_t = BCRYPT_COST_DEFAULT)]
    pub bcrypt_cost: u32,
    /// The lifetime in seconds of the auth token.
    #[arg(long, env = "ETCD_AUTH_TOKEN_TTL", default_value_t = 300)]
    pub auth_token_ttl: u64,
    /// Enable leader to send regular checkpoints to other members to prevent reset of remaining TTL on leader change.
    #[arg(long, env = "ETCD_EXPERIMENTAL_ENABLE_LEASE_CHECKPOINT", default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true", value_parser = parse_go_bool)]
    pub experimental_enable_lease_checkpoint: bool,
    /// Enable persisting remainingTTL to prevent indefinite auto-renewal of long lived leases.
    #[arg(long, env = "ETCD_EXPERIMENTAL_ENABLE_LEASE_CHECKPOINT_PERSIST", default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true", value_parser = parse_go_bool)]
    pub experimental_enable_lease_checkpoint_persist: bool,
    /// Duration of time between cluster corruption check passes (etcd 3.4/3.5 name).
    #[arg(long, env = "ETCD_EXPERIMENTAL_CORRUPT_CHECK_TIME", default_value = "0s", value_parser = parse_go_duration)]
    pub experimental_corrupt_check_time: Duration,
    /// Duration of time between cluster corruption check passes (etcd 3.6 name; wins when given).
    #[arg(long, env = "ETCD_CORRUPT_CHECK_TIME", value_parser = parse_go_duration)]
    pub corrupt_check_time: Option<Duration>,
    /// Duration of periodic watch progress notifications (etcd 3.4/3.5 name).
    #[arg(long, env = "ETCD_EXPERIMENTAL_WATCH_PROGRESS_NOTIFY_INTERVAL", default_value = "10m", value_parser = parse_go_duration)]
    pub experimental_watch_progress_notify_interval: Duration,
    /// Duration of periodic watch progress notifications (etcd 3.6 name; wins when given).
    #[arg(long, env = "ETCD_WATCH_PROGRESS_NOTIFY_INTERVAL", value_parser = parse_go_duration)]
    pub watch_progress_notify_interval: Option<Duration>,
    /// Time duration after which a warning is generated if request takes more time (etcd 3.4/3.5 name).
    #[arg(long, env = "ETCD_EXPERIMENTAL_WARNING_APPLY_DURATION", default_value = "100ms", value_parser = parse_go_duration)]
    pub experimental_warning_apply_duration: Duration,
    /// Time duration after which a warning is generated if request takes more time (etcd 3.6 name; wins when given).
    #[arg(long, env = "ETCD_WARNING_APPLY_DURATION", value_parser = parse_go_duration)]
    pub warning_apply_duration: Option<Duration>,
    /// Auto compaction retention length. 0 means disable auto compaction.
    #[arg(long, env = "ETCD_AUTO_COMPACTION_RETENTION", default_value = "0")]
    pub auto_compaction_retention: String,
    /// Interpret 'auto-compaction-retention' one of: periodic|revision.
    #[arg(long, env = "ETCD_AUTO_COMPACTION_MODE", default_value = "periodic")]
    pub auto_compaction_mode: String,
    /// List of additional URLs to listen on for HTTP-only client traffic (etcd 3.5+); Cairn
    /// serves gRPC and HTTP on every client URL.
    #[arg(long, env = "ETCD_LISTEN_CLIENT_HTTP_URLS", default_value = "")]
    pub listen_client_http_urls: String,
    /// Enable debug-level logging (etcd 3.4; same as --log-level=debug).
    #[arg(long, env = "ETCD_DEBUG", default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true", value_parser = parse_go_bool)]
    pub debug: bool,
    /// etcd 3.4's deprecated spelling of --log-outputs (used when --log-outputs is not given).
    #[arg(long, env = "ETCD_LOG_OUTPUT")]
    pub log_output: Option<String>,
    /// Log format: 'json' or 'console' (etcd 3.6).
    #[arg(long, env = "ETCD_LOG_FORMAT", default_value = "json", value_parser = ["json", "console"])]
    pub log_format: String,
    /// Path to the client TLS cert file for outgoing client connections (etcd 3.5+).
    #[arg(long, env = "ETCD_CLIENT_CERT_FILE", default_value = "")]
    pub client_cert_file: String,
    /// Path to the client TLS key file for outgoing client connections (etcd 3.5+).
    #[arg(long, env = "ETCD_CLIENT_KEY_FILE", default_value = "")]
    pub client_key_file: String,
    /// Path to the client TLS cert file peers present when they dial (etcd 3.5+).
    #[arg(long, env = "ETCD_PEER_CLIENT_CERT_FILE", default_value = "")]
    pub peer_client_cert_file: String,
    /// Path to the client TLS key file peers present when they dial (etcd 3.5+).
    #[arg(long, env = "ETCD_PEER_CLIENT_KEY_FILE", default_value = "")]
    pub peer_client_key_file: String,
    /// Skip verification of SAN field in client certificate for peer connections (etcd 3.4/3.5 name).
    #[arg(long, env = "ETCD_EXPERIMENTAL_PEER_SKIP_CLIENT_SAN_VERIFICATION", default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true", value_parser = parse_go_bool)]
    pub experimental_peer_skip_client_san_verification: bool,
    /// Skip verification of SAN field in client certificate for peer connections (etcd 3.6 name).
    #[arg(long, env = "ETCD_PEER_SKIP_CLIENT_SAN_VERIFICATION", default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true", value_parser = parse_go_bool)]
    pub peer_skip_client_san_verification: bool,
    /// Sets the maximum number of learners that can be available in the cluster membership
    /// (etcd 3.6; 0 or less: no learners).
    #[arg(
        long,
        env = "ETCD_MAX_LEARNERS",
        default_value_t = crate::cluster::LEARNERS_MAX as i64,
        allow_negative_numbers = true
    )]
    pub max_learners: i64,
    /// Comma-separated list of etcd 3.6 feature gates (`Name=true|false`).
    #[arg(long, env = "ETCD_FEATURE_GATES", default_value = "")]
    pub feature_gates: String,
    /// Print the version and exit.
    #[arg(long)]
    pub version: bool,
}

/// The TLS flags of one side (client URLs or peer URLs), as given; paths are empty when
/// unset. etcd: `transport.TLSInfo` built in `embed.Config` (`ClientTLSInfo`, `PeerTLSInfo`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsFlags {
    /// `--cert-file` / `--peer-cert-file`.
    pub cert_file: String,
    /// `--key-file` / `--peer-key-file`.
    pub key_file: String,
    /// `--trusted-ca-file` / `--peer-trusted-ca-file`.
    pub trusted_ca_file: String,
    /// `--client-cert-auth` / `--peer-client-cert-auth`: require and verify client certificates.
    pub client_cert_auth: bool,
    /// `--auto-tls` / `--peer-auto-tls`: generate a self-signed certificate when no cert/key is given.
    pub auto_tls: bool,
    /// `--client-crl-file` / `--peer-crl-file`.
    pub crl_file: String,
    /// `--client-cert-allowed-hostname` / `--peer-cert-allowed-hostname`.
    pub allowed_hostname: String,
    /// `--peer-cert-allowed-cn` (peer side only; empty on the client side).
    pub allowed_cn: String,
    /// `--client-cert-file` / `--peer-client-cert-file` (etcd 3.5+): the certificate this
    /// side presents when it dials out; empty: `cert_file` is used, as etcd.
    pub client_cert_file: String,
    /// `--client-key-file` / `--peer-client-key-file` (etcd 3.5+); empty: `key_file`.
    pub client_key_file: String,
    /// `--peer-skip-client-san-verification` (peer side only): accept peer client
    /// certificates whose SAN does not match the peer's address.
    pub skip_client_san_verification: bool,
}

impl TlsFlags {
    /// True when this side has a certificate (given or to be generated).
    pub fn is_set(&self) -> bool {
        (!self.cert_file.is_empty() && !self.key_file.is_empty()) || self.auto_tls
    }
}

/// TLS settings shared by both sides: `--cipher-suites`, `--tls-min-version`,
/// `--tls-max-version`, `--self-signed-cert-validity`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsCommon {
    /// IANA cipher suite names (etcd takes Go's names, e.g. `TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256`); empty: defaults.
    pub cipher_suites: Vec<String>,
    /// `TLS1.2` or `TLS1.3`; empty when unset.
    pub min_version: String,
    /// `TLS1.2` or `TLS1.3`; empty when unset.
    pub max_version: String,
    /// Validity of auto-generated certificates, in years.
    pub self_signed_cert_validity_years: u32,
}

/// One address to listen on and whether it speaks TLS (`https://` / `unixs://`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListenAddr {
    /// The socket address.
    pub addr: SocketAddr,
    /// True for `https://` URLs.
    pub tls: bool,
}

/// A URL of the `http://host:port` form etcd takes for client and peer URLs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    /// The URL as written, e.g. `http://localhost:2379`.
    pub raw: String,
    /// `host:port` part.
    pub host_port: String,
    /// True for `https://`.
    pub tls: bool,
}

impl Url {
    /// Parses one URL. Errors name the flag and the URL (`etcd types.NewURLs`).
    pub fn parse(flag: &str, raw: &str) -> Result<Url, String> {
        let raw = raw.trim();
        let (rest, tls) = if let Some(rest) = raw.strip_prefix("http://") {
            (rest, false)
        } else if let Some(rest) = raw.strip_prefix("https://") {
            (rest, true)
        } else if raw.starts_with("unix://") || raw.starts_with("unixs://") {
            return Err(format!(
                "--{flag}: unix socket URL {raw:?} is not supported (use http:// or https://)"
            ));
        } else {
            return Err(format!(
                "--{flag}: URL scheme must be http, https, unix or unixs: {raw}"
            ));
        };
        let host_port = rest.trim_end_matches('/');
        if host_port.is_empty() || host_port.contains('/') {
            return Err(format!(
                "--{flag}: URL address does not have the form \"host:port\": {raw}"
            ));
        }
        if !host_port.contains(':') || host_port.ends_with(':') {
            return Err(format!(
                "--{flag}: URL address does not have the form \"host:port\": {raw}"
            ));
        }
        Ok(Url {
            raw: raw.to_string(),
            host_port: host_port.to_string(),
            tls,
        })
    }

    /// Parses a comma-separated list; at least one URL.
    pub fn parse_list(flag: &str, list: &str) -> Result<Vec<Url>, String> {
        let urls: Result<Vec<Url>, String> = list
            .split(',')
            .filter(|s| !s.trim().is_empty())
            .map(|s| Url::parse(flag, s))
            .collect();
        let urls = urls?;
        if urls.is_empty() {
            return Err(format!("--{flag}: at least one URL is required"));
        }
        Ok(urls)
    }

    /// Resolves the addresses to listen on, with this URL's scheme.
    pub fn listen_addrs(&self) -> Result<Vec<ListenAddr>, String> {
        Ok(self
            .socket_addrs()?
            .into_iter()
            .map(|addr| ListenAddr {
                addr,
                tls: self.tls,
            })
            .collect())
    }

    /// Resolves the address to listen on (`localhost` → loopback).
    pub fn socket_addrs(&self) -> Result<Vec<SocketAddr>, String> {
        let addrs: Vec<SocketAddr> = self
            .host_port
            .to_socket_addrs()
            .map_err(|e| format!("cannot resolve {}: {e}", self.raw))?
            .collect();
        // etcd listens once per URL; `localhost` resolves to IPv4 first here.
        let v4: Vec<SocketAddr> = addrs.iter().filter(|a| a.is_ipv4()).copied().collect();
        Ok(if v4.is_empty() {
            addrs
        } else {
            v4[..1].to_vec()
        })
    }
}

/// Configuration after validation, with derived values.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Member name.
    pub name: String,
    /// Data directory.
    pub data_dir: PathBuf,
    /// Addresses every core listens on for clients.
    pub listen_client_addrs: Vec<ListenAddr>,
    /// Addresses the peer transport listens on (core 0 only).
    pub listen_peer_addrs: Vec<ListenAddr>,
    /// `--listen-metrics-urls`: addresses serving `/metrics` and the health endpoints only.
    pub listen_metrics_addrs: Vec<ListenAddr>,
    /// TLS of the client URLs (and of `https://` metrics URLs).
    pub client_tls: TlsFlags,
    /// TLS of the peer URLs (server and client side of the peer transport).
    pub peer_tls: TlsFlags,
    /// TLS settings of both sides.
    pub tls_common: TlsCommon,
    /// `--metrics`: `basic` or `extensive`.
    pub metrics: String,
    /// `--logger`: `zap` (`capnslog` is accepted and logs as zap).
    pub logger: String,
    /// `--log-outputs`: `default`, `stderr`, `stdout` or file paths.
    pub log_outputs: Vec<String>,
    /// `--experimental-initial-corrupt-check`.
    pub initial_corrupt_check: bool,
    /// Advertised client URLs (reported by MemberList).
    pub advertise_client_urls: Vec<String>,
    /// This member's advertised peer URLs.
    pub initial_advertise_peer_urls: Vec<String>,
    /// `(name, peer URLs)` of every initial member.
    pub initial_cluster: Vec<(String, Vec<String>)>,
    /// `--initial-cluster-state existing`: join a running cluster instead of bootstrapping.
    pub join_existing: bool,
    /// Cluster token.
    pub initial_cluster_token: String,
    /// `--strict-reconfig-check`.
    pub strict_reconfig_check: bool,
    /// `--auto-promote-learners`.
    pub auto_promote_learners: bool,
    /// etcd `--max-request-bytes`.
    pub max_request_bytes: usize,
    /// gRPC receive limit: max_request_bytes + 512 KiB, as etcd.
    pub max_recv_message_bytes: usize,
    /// etcd `--max-txn-ops`.
    pub txn_ops_max: usize,
    /// Backend quota in bytes (default 2 GiB).
    pub quota_backend_bytes: i64,
    /// Applied entries between checkpoints.
    pub snapshot_count: u64,
    /// Raft tick in milliseconds.
    pub heartbeat_interval_ms: u64,
    /// Election timeout in Raft ticks.
    pub election_ticks: usize,
    /// Executors to run.
    pub cores: usize,
    /// tracing filter directive.
    pub log_level: String,
    /// `--log-format` (etcd 3.6): `json` or `console`.
    pub log_format: String,
    /// `--max-concurrent-streams`: HTTP/2 streams per client connection
    /// ([`MAX_CONCURRENT_STREAMS_DEFAULT`] when the flag keeps etcd's unlimited default).
    pub max_concurrent_streams: u32,
    /// `--grpc-keepalive-min-time`: the shortest ping interval a client may use.
    pub grpc_keepalive_min_time: Duration,
    /// `--grpc-keepalive-interval`: server-to-client ping interval (zero: off).
    pub grpc_keepalive_interval: Duration,
    /// `--grpc-keepalive-timeout`: wait for a ping answer before closing (zero: off).
    pub grpc_keepalive_timeout: Duration,
    /// `--watch-progress-notify-interval` (or its `experimental-` name): interval of the
    /// progress notifications to watchers created with `progress_notify`.
    pub watch_progress_notify_interval: Duration,
    /// `--warning-apply-duration` (or its `experimental-` name): applies slower than this
    /// are logged as slow.
    pub warning_apply_duration: Duration,
    /// `--experimental-enable-lease-checkpoint` (the `-persist` flag implies it): the leader
    /// checkpoints every lease's remaining TTL through Raft (`lease::Lessor`).
    pub lease_checkpoint: bool,
    /// `--auth-token`: the token provider's type and options (`auth::token`).
    pub auth_token: String,
    /// `--auth-token-ttl`: a simple token's idle lifetime.
    pub auth_token_ttl: Duration,
    /// `--bcrypt-cost`, within bcrypt's 4..=31 (etcd falls back to its default of 10
    /// outside it, with a warning; so does Cairn).
    pub bcrypt_cost: u32,
    /// `--corrupt-check-time` (or its `experimental-` name): interval of the leader's
    /// corruption check against its peers (`cluster::monitor_kv_hash`); zero: off.
    pub corrupt_check_time: Duration,
    /// `--auto-compaction-mode` with `--auto-compaction-retention`.
    pub auto_compaction: AutoCompaction,
    /// `--max-learners`: learners the member table may hold (etcd 3.6, default 1).
    pub learners_max: usize,
    /// `--config-file`, when the configuration came from it.
    pub config_file: Option<PathBuf>,
    /// Flags (`--name`) and environment variables (`ETCD_NAME`) that were given but have
    /// no effect in Cairn, each with the reason; main logs one warning per entry.
    pub ignored_flags: Vec<(String, String)>,
}

impl ServerConfig {
    /// The bootstrap checks of `--initial-cluster` (etcd makes them only when a member
    /// starts without data: a restarted member ignores the initial-cluster flags): this
    /// member's name is listed, with exactly its `--initial-advertise-peer-urls`.
    pub fn check_initial_cluster(&self) -> Result<(), String> {
        let own = self
            .initial_cluster
            .iter()
            .find(|(n, _)| *n == self.name)
            .ok_or_else(|| {
                format!(
                    "couldn't find local name {:?} in the initial cluster configuration",
                    self.name
                )
            })?;
        let mut own_urls = own.1.clone();
        own_urls.sort();
        let mut advertised = self.initial_advertise_peer_urls.clone();
        advertised.sort();
        if own_urls != advertised {
            return Err(format!(
                "--initial-cluster has {}={} but missing from --initial-advertise-peer-urls={} (resolved urls: \"{}\" != \"{}\")",
                self.name,
                own.1.join(","),
                self.initial_advertise_peer_urls.join(","),
                own.1.join(","),
                self.initial_advertise_peer_urls.join(",")
            ));
        }
        Ok(())
    }
}

impl Config {
    /// Checks every flag and derives the server configuration. Messages name the flag
    /// and the allowed range, as etcd's (`embed.Config.Validate`).
    pub fn validate(&self) -> Result<ServerConfig, String> {
        if self.heartbeat_interval == 0 {
            return Err("--heartbeat-interval must be > 0 ms".into());
        }
        if 5 * self.heartbeat_interval > self.election_timeout {
            return Err(format!(
                "--election-timeout[{}ms] should be at least as 5 times as --heartbeat-interval[{}ms]",
                self.election_timeout, self.heartbeat_interval
            ));
        }
        if self.election_timeout > ELECTION_TIMEOUT_MS_MAX {
            return Err(format!(
                "--election-timeout[{}ms] is too long, and should be set less than {}ms",
                self.election_timeout, ELECTION_TIMEOUT_MS_MAX
            ));
        }
        if self.max_txn_ops == 0 {
            return Err("--max-txn-ops must be > 0".into());
        }
        if self.max_request_bytes == 0 {
            return Err("--max-request-bytes must be > 0".into());
        }
        let max_concurrent_streams = match self.max_concurrent_streams {
            0 => return Err("--max-concurrent-streams must be > 0".into()),
            u32::MAX => MAX_CONCURRENT_STREAMS_DEFAULT,
            n => n,
        };
        if self.snapshot_count == 0 {
            return Err("--snapshot-count must be > 0".into());
        }
        let quota = match self.quota_backend_bytes {
            q if q < 0 => return Err("--quota-backend-bytes must be >= 0".into()),
            0 => DEFAULT_QUOTA_BACKEND_BYTES,
            // Above etcd's MaxQuotaBytes is allowed with a warning, as etcd
            // (etcdserver/quota.go, logged by `runtime::log_quota`).
            q => q,
        };
        let online = std::thread::available_parallelism().map_or(1, |n| n.get());
        let cores = match self.cores {
            None => online,
            Some(0) => return Err("--cores must be >= 1".into()),
            Some(n) if n > online => {
                return Err(format!("--cores {n} exceeds the {online} online cores"))
            }
            Some(n) => n,
        };
        let client_tls = TlsFlags {
            cert_file: self.cert_file.clone(),
            key_file: self.key_file.clone(),
            trusted_ca_file: self.trusted_ca_file.clone(),
            client_cert_auth: self.client_cert_auth,
            auto_tls: self.auto_tls,
            crl_file: self.client_crl_file.clone(),
            allowed_hostname: self.client_cert_allowed_hostname.clone(),
            allowed_cn: String::new(),
            client_cert_file: self.client_cert_file.clone(),
            client_key_file: self.client_key_file.clone(),
            skip_client_san_verification: false,
        };
        let peer_tls = TlsFlags {
            cert_file: self.peer_cert_file.clone(),
            key_file: self.peer_key_file.clone(),
            trusted_ca_file: self.peer_trusted_ca_file.clone(),
            client_cert_auth: self.peer_client_cert_auth,
            auto_tls: self.peer_auto_tls,
            crl_file: self.peer_crl_file.clone(),
            allowed_hostname: self.peer_cert_allowed_hostname.clone(),
            allowed_cn: self.peer_cert_allowed_cn.clone(),
            client_cert_file: self.peer_client_cert_file.clone(),
            client_key_file: self.peer_client_key_file.clone(),
            skip_client_san_verification: self.peer_skip_client_san_verification
                || self.experimental_peer_skip_client_san_verification,
        };
        let listen = Url::parse_list("listen-client-urls", &self.listen_client_urls)?;
        let mut listen_client_addrs = Vec::new();
        for url in &listen {
            if url.tls && !client_tls.is_set() {
                return Err(format!("TLS key/cert (--cert-file, --key-file) must be provided for client url {} with HTTPS scheme", url.raw));
            }
            listen_client_addrs.extend(url.listen_addrs()?);
        }
        if !self.listen_client_http_urls.trim().is_empty() {
            for url in Url::parse_list("listen-client-http-urls", &self.listen_client_http_urls)? {
                if url.tls && !client_tls.is_set() {
                    return Err(format!("TLS key/cert (--cert-file, --key-file) must be provided for client url {} with HTTPS scheme", url.raw));
                }
                for addr in url.listen_addrs()? {
                    if !listen_client_addrs.contains(&addr) {
                        listen_client_addrs.push(addr);
                    }
                }
            }
        }
        let advertise = Url::parse_list("advertise-client-urls", &self.advertise_client_urls)?;
        let mut listen_peer_addrs = Vec::new();
        for url in Url::parse_list("listen-peer-urls", &self.listen_peer_urls)? {
            if url.tls && !peer_tls.is_set() {
                return Err(format!("TLS key/cert (--peer-cert-file, --peer-key-file) must be provided for peer url {} with HTTPS scheme", url.raw));
            }
            listen_peer_addrs.extend(url.listen_addrs()?);
        }
        let mut listen_metrics_addrs = Vec::new();
        if !self.listen_metrics_urls.trim().is_empty() {
            for url in Url::parse_list("listen-metrics-urls", &self.listen_metrics_urls)? {
                if url.tls && !client_tls.is_set() {
                    return Err(format!("TLS key/cert (--cert-file, --key-file) must be provided for metrics url {} with HTTPS scheme", url.raw));
                }
                listen_metrics_addrs.extend(url.listen_addrs()?);
            }
        }
        let tls_common = TlsCommon {
            cipher_suites: self
                .cipher_suites
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect(),
            min_version: self.tls_min_version.clone(),
            max_version: self.tls_max_version.clone(),
            self_signed_cert_validity_years: self.self_signed_cert_validity,
        };
        let peer_urls: Vec<String> = Url::parse_list(
            "initial-advertise-peer-urls",
            &self.initial_advertise_peer_urls,
        )?
        .into_iter()
        .map(|u| u.raw)
        .collect();
        let initial_cluster = match &self.initial_cluster {
            Some(spec) => parse_initial_cluster(spec)?,
            None => vec![(self.name.clone(), peer_urls.clone())],
        };
        let log_level = match self.log_level.as_str() {
            _ if self.debug => "debug".to_string(),
            "panic" | "fatal" => "error".to_string(),
            other => other.to_string(),
        };
        let auto_compaction =
            AutoCompaction::parse(&self.auto_compaction_mode, &self.auto_compaction_retention)?;
        let feature_gates = values::parse_feature_gates(&self.feature_gates)
            .map_err(|e| format!("--feature-gates: {e}"))?;
        let mut initial_corrupt_check = self.experimental_initial_corrupt_check;
        let mut ignored_flags = Vec::new();
        for (gate, enabled) in feature_gates {
            match values::FEATURE_GATES.iter().find(|(g, _)| *g == gate) {
                Some((_, None)) => initial_corrupt_check = enabled,
                Some((_, Some(reason))) => ignored_flags.push((
                    format!("--feature-gates {gate}={enabled}"),
                    reason.to_string(),
                )),
                None => unreachable!("parse_feature_gates returns known gates only"),
            }
        }
        // Parsed and kept, but not acted on yet: say so when a value other than etcd's
        // default is asked for, rather than pretending.
        if self.grpc_keepalive_min_time != Duration::from_secs(5) {
            ignored_flags.push((
                format!(
                    "--grpc-keepalive-min-time={:?}",
                    self.grpc_keepalive_min_time
                ),
                "Cairn does not police how often clients PING yet (h2 answers every PING)"
                    .to_string(),
            ));
        }
        if self.log_format != "json" {
            ignored_flags.push((
                format!("--log-format={}", self.log_format),
                "Cairn writes zap's JSON layout only".to_string(),
            ));
        }
        let bcrypt_cost = if (BCRYPT_COST_MIN..=BCRYPT_COST_MAX).contains(&self.bcrypt_cost) {
            self.bcrypt_cost
        } else {
            ignored_flags.push((
                format!("--bcrypt-cost={}", self.bcrypt_cost),
                format!(
                    "outside bcrypt's {BCRYPT_COST_MIN}..={BCRYPT_COST_MAX}; using the default {BCRYPT_COST_DEFAULT}"
                ),
            ));
            BCRYPT_COST_DEFAULT
        };
        let log_outputs = match &self.log_output {
            Some(deprecated) if self.log_outputs == "default" => deprecated.clone(),
            _ => self.log_outputs.clone(),
        };
        Ok(ServerConfig {
            name: self.name.clone(),
            data_dir: self
                .data_dir
                .clone()
                .unwrap_or_else(|| PathBuf::from(format!("{}.etcd", self.name))),
            listen_client_addrs,
            listen_peer_addrs,
            listen_metrics_addrs,
            client_tls,
            peer_tls,
            tls_common,
            metrics: self.metrics.clone(),
            logger: self.logger.clone(),
            log_outputs: log_outputs
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect(),
            initial_corrupt_check,
            advertise_client_urls: advertise.into_iter().map(|u| u.raw).collect(),
            initial_advertise_peer_urls: peer_urls,
            initial_cluster,
            join_existing: self.initial_cluster_state == "existing",
            initial_cluster_token: self.initial_cluster_token.clone(),
            strict_reconfig_check: self.strict_reconfig_check,
            auto_promote_learners: self.auto_promote_learners,
            max_request_bytes: self.max_request_bytes as usize,
            max_recv_message_bytes: self.max_request_bytes as usize + GRPC_OVERHEAD_BYTES,
            txn_ops_max: self.max_txn_ops as usize,
            quota_backend_bytes: quota,
            snapshot_count: self.snapshot_count,
            heartbeat_interval_ms: self.heartbeat_interval,
            election_ticks: (self.election_timeout / self.heartbeat_interval) as usize,
            cores,
            log_level,
            log_format: self.log_format.clone(),
            max_concurrent_streams,
            grpc_keepalive_min_time: self.grpc_keepalive_min_time,
            grpc_keepalive_interval: self.grpc_keepalive_interval,
            grpc_keepalive_timeout: self.grpc_keepalive_timeout,
            // etcd v3rpc keeps its 10-minute default when the interval is 0.
            watch_progress_notify_interval: Some(
                self.watch_progress_notify_interval
                    .unwrap_or(self.experimental_watch_progress_notify_interval),
            )
            .filter(|d| !d.is_zero())
            .unwrap_or(WATCH_PROGRESS_NOTIFY_INTERVAL_DEFAULT),
            warning_apply_duration: self
                .warning_apply_duration
                .unwrap_or(self.experimental_warning_apply_duration),
            lease_checkpoint: self.experimental_enable_lease_checkpoint
                || self.experimental_enable_lease_checkpoint_persist,
            auth_token: self.auth_token.clone(),
            auth_token_ttl: Duration::from_secs(self.auth_token_ttl),
            bcrypt_cost,
            corrupt_check_time: self
                .corrupt_check_time
                .unwrap_or(self.experimental_corrupt_check_time),
            auto_compaction,
            learners_max: usize::try_from(self.max_learners.max(0)).unwrap_or(usize::MAX),
            config_file: None,
            ignored_flags,
        })
    }
}

/// What the command line asks for.
#[derive(Debug)]
pub enum Loaded {
    /// `--version` or `cairn version`: print [`version_text`] and exit 0.
    Version,
    /// Run a server with this configuration.
    Server(Box<ServerConfig>),
}

/// Why the command line was refused; each maps to etcd's exit code.
#[derive(Debug)]
pub enum LoadError {
    /// A flag is unknown or its value does not parse (Go's flag package: exit 2).
    /// `exit()` prints it as clap does.
    Usage(clap::Error),
    /// The flags parse but do not make a valid configuration (etcd: "error verifying
    /// flags", exit 1).
    Invalid(String),
    /// A conflicting environment variable, or an unreadable/invalid `--config-file`
    /// (etcd logs fatally and exits 1).
    Fatal(String),
}

/// Reads the configuration as etcd does (`etcdmain/config.go` `parse`): `args` is the
/// whole argv (program name first). Go's single-dash spelling (`-name x`) of a known flag
/// is accepted. `cairn version` and `--version` ask for the version. With `--config-file`
/// (or `ETCD_CONFIG_FILE`) every other flag and `ETCD_*` variable is ignored and the YAML
/// file is read with etcd's keys; otherwise flags win over `ETCD_*` variables, and a
/// variable shadowed by a flag is an error. Given flags that Cairn ignores, and `ETCD_*`
/// variables that name no flag, end up in [`ServerConfig::ignored_flags`].
pub fn load(args: Vec<OsString>) -> Result<Loaded, LoadError> {
    if args.get(1).and_then(|a| a.to_str()) == Some("version") && args.len() == 2 {
        return Ok(Loaded::Version);
    }
    let command = command();
    let args = go_style_args(&command, args);
    // First the command line alone (as etcd's flagSet.Parse): it decides between the
    // config file and flags + environment; ETCD_* variables are read only in the latter.
    let without_env = || command.clone().mut_args(|arg| arg.env(None::<&str>));
    let line = without_env()
        .try_get_matches_from(&args)
        .map_err(LoadError::Usage)?;
    if line.get_flag("version") {
        return Ok(Loaded::Version);
    }
    let config_file = line.get_one::<PathBuf>("config_file").cloned().or_else(|| {
        std::env::var_os(table::env_name("config-file"))
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    });
    let (matches, from_file) = match &config_file {
        Some(path) => {
            let text = read_config_file(path).map_err(LoadError::Fatal)?;
            let (file_args, unknown) = file::args_from_yaml(&text)
                .map_err(|e| LoadError::Fatal(format!("{}: {e}", path.display())))?;
            let mut argv = vec![OsString::from("cairn")];
            argv.extend(file_args.into_iter().map(OsString::from));
            let matches = without_env()
                .try_get_matches_from(argv)
                .map_err(|e| LoadError::Fatal(format!("{}: {}", path.display(), e.render())))?;
            (matches, Some((path.clone(), unknown)))
        }
        None => {
            let matches = command
                .clone()
                .try_get_matches_from(&args)
                .map_err(LoadError::Usage)?;
            check_env_shadowing(&matches).map_err(LoadError::Fatal)?;
            check_advertise_client_urls(&matches).map_err(LoadError::Invalid)?;
            (matches, None)
        }
    };
    let cli = Config::from_arg_matches(&matches).map_err(LoadError::Usage)?;
    let mut server = cli.validate().map_err(LoadError::Invalid)?;
    server.ignored_flags.splice(0..0, ignored_given(&matches));
    match from_file {
        Some((path, unknown)) => {
            server.config_file = Some(path);
            server.ignored_flags.extend(unknown.into_iter().map(|key| {
                (
                    format!("config-file key {key:?}"),
                    "unknown key (etcd ignores unknown keys too)".to_string(),
                )
            }));
        }
        None => server.ignored_flags.extend(unrecognized_env(&command)),
    }
    Ok(Loaded::Server(Box::new(server)))
}

/// `cairn --version`, laid out as etcd's (`etcd Version`, `Git SHA`, `Go Version`,
/// `Go OS/Arch`) with Cairn's values; `git_sha` and `rustc` come from the build script.
pub fn version_text(cairn: &str, etcd_api: &str) -> String {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    format!(
        "cairn Version: {cairn}\netcd API Version: {etcd_api}\nGit SHA: {}\nRust Version: {}\nRust OS/Arch: {}/{arch}\n",
        env!("CAIRN_GIT_SHA"),
        env!("CAIRN_RUSTC_VERSION"),
        std::env::consts::OS,
    )
}

/// Logs, once logging is up, where the configuration came from (etcd's line for
/// `--config-file`) and one warning per given flag that Cairn ignores.
pub fn log_given_config(config: &ServerConfig) {
    if let Some(path) = &config.config_file {
        tracing::info!(
            path = %path.display(),
            "loaded server configuration, other configuration command line flags and environment variables will be ignored if provided"
        );
    }
    for (flag, reason) in &config.ignored_flags {
        tracing::warn!(flag = %flag, "{flag} is accepted for etcd compatibility and ignored: {reason}");
    }
}

/// bcrypt's cost bounds and etcd's default (`golang.org/x/crypto/bcrypt` `MinCost`,
/// `MaxCost`, `DefaultCost`).
pub const BCRYPT_COST_MIN: u32 = 4;
/// See [`BCRYPT_COST_MIN`].
pub const BCRYPT_COST_MAX: u32 = 31;
/// See [`BCRYPT_COST_MIN`].
pub const BCRYPT_COST_DEFAULT: u32 = 10;

/// The whole command: [`Config`]'s flags plus the ignored ones of [`table::FLAGS`].
pub fn command() -> clap::Command {
    table::add_ignored_args(Config::command())
}

/// Rewrites Go's single-dash spelling of a known long flag (`-name`, `-name=x`) to
/// `--name`; everything else is left alone.
fn go_style_args(command: &clap::Command, args: Vec<OsString>) -> Vec<OsString> {
    let known = |name: &str| command.get_arguments().any(|a| a.get_long() == Some(name));
    args.into_iter()
        .enumerate()
        .map(|(i, arg)| {
            let Some(text) = arg.to_str() else { return arg };
            match text.strip_prefix('-') {
                Some(rest) if i > 0 && !rest.starts_with('-') && !rest.is_empty() => {
                    let name = rest.split_once('=').map_or(rest, |(n, _)| n);
                    if known(name) {
                        OsString::from(format!("-{text}"))
                    } else {
                        arg
                    }
                }
                _ => arg,
            }
        })
        .collect()
}

/// etcd (`etcdmain/config.go` `configFromCmdLine`, `embed.ErrUnsetAdvertiseClientURLsFlag`):
/// listening on explicit client URLs needs explicit advertised ones, unless the v2 proxy
/// is on. Flags and `ETCD_*` variables count as given; a config file keeps the default.
fn check_advertise_client_urls(matches: &clap::ArgMatches) -> Result<(), String> {
    use clap::parser::ValueSource;
    let given = |id: &str| {
        matches!(
            matches.value_source(id),
            Some(ValueSource::CommandLine | ValueSource::EnvVariable)
        )
    };
    let proxy = matches
        .get_one::<String>("proxy")
        .is_some_and(|p| p != "off");
    if given("listen_client_urls") && !given("advertise_client_urls") && !proxy {
        return Err(
            "--advertise-client-urls is required when --listen-client-urls is set explicitly"
                .into(),
        );
    }
    Ok(())
}

/// Reads `--config-file`, bounded by [`CONFIG_FILE_BYTES_MAX`].
fn read_config_file(path: &std::path::Path) -> Result<String, String> {
    use std::io::Read;
    let file = std::fs::File::open(path)
        .map_err(|e| format!("cannot read --config-file {}: {e}", path.display()))?;
    let mut text = String::new();
    file.take(CONFIG_FILE_BYTES_MAX + 1)
        .read_to_string(&mut text)
        .map_err(|e| format!("cannot read --config-file {}: {e}", path.display()))?;
    if text.len() as u64 > CONFIG_FILE_BYTES_MAX {
        return Err(format!(
            "--config-file {} is larger than {CONFIG_FILE_BYTES_MAX} bytes",
            path.display()
        ));
    }
    Ok(text)
}

/// The ignored flags of [`table::FLAGS`] that were given (command line, environment or
/// config file; a default is not "given"), each as `(--flag, reason)`.
fn ignored_given(matches: &clap::ArgMatches) -> Vec<(String, String)> {
    use clap::parser::ValueSource;
    table::FLAGS
        .iter()
        .filter_map(|spec| match spec.status {
            table::Status::Ignored(reason) => Some((spec.name, reason)),
            table::Status::Implemented(_) => None,
        })
        .filter(|(name, _)| {
            matches!(
                matches.value_source(name),
                Some(ValueSource::CommandLine | ValueSource::EnvVariable)
            )
        })
        .map(|(name, reason)| (format!("--{name}"), reason.to_string()))
        .collect()
}

/// `ETCD_*` variables that name no flag: etcd warns "unrecognized environment variable"
/// (`pkg/flags/flag.go` `verifyEnv`) and goes on.
fn unrecognized_env(command: &clap::Command) -> Vec<(String, String)> {
    let known: Vec<String> = command
        .get_arguments()
        .filter_map(|a| a.get_env().map(|e| e.to_string_lossy().into_owned()))
        .collect();
    let mut unknown: Vec<(String, String)> = std::env::vars_os()
        .filter_map(|(key, _)| key.into_string().ok())
        .filter(|key| key.starts_with("ETCD_") && !known.contains(key))
        .map(|key| (key, "unrecognized environment variable".to_string()))
        .collect();
    unknown.sort();
    unknown
}

/// etcd refuses to start when a flag is given both on the command line and through its
/// `ETCD_*` variable (`pkg/flags/flag.go` `verifyEnv`); so does Cairn, with etcd's message.
pub fn check_env_shadowing(matches: &clap::ArgMatches) -> Result<(), String> {
    for arg in command().get_arguments() {
        let Some(env) = arg.get_env() else { continue };
        let from_command_line = matches.value_source(arg.get_id().as_str())
            == Some(clap::parser::ValueSource::CommandLine);
        if from_command_line && std::env::var_os(env).is_some() {
            return Err(format!(
                "conflicting environment variable {:?} is shadowed by corresponding command-line flag (either unset environment variable or disable flag)",
                env.to_string_lossy()
            ));
        }
    }
    Ok(())
}

/// Parses `name=url,name=url2,other=url3` (a name may repeat for several URLs).
fn parse_initial_cluster(spec: &str) -> Result<Vec<(String, Vec<String>)>, String> {
    let mut members: Vec<(String, Vec<String>)> = Vec::new();
    for part in spec.split(',').filter(|p| !p.trim().is_empty()) {
        let (name, url) = part
            .split_once('=')
            .ok_or_else(|| format!("--initial-cluster: missing '=' in {part:?}"))?;
        let url = Url::parse("initial-cluster", url)?.raw;
        match members.iter_mut().find(|(n, _)| n == name) {
            Some((_, urls)) => urls.push(url),
            None => members.push((name.to_string(), vec![url])),
        }
    }
    if members.is_empty() {
        return Err("--initial-cluster: no members".into());
    }
    Ok(members)
}

#[cfg(test)]
mod tests;
