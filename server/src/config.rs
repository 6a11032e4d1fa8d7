//! Server configuration: etcd's flags and `ETCD_*` environment variables.
//!
//! Flag names, defaults and validation messages follow etcd 3.4/3.6 (`etcdmain/config.go`,
//! `embed/config.go`). Every flag can also be set through the environment variable etcd
//! uses for it: `ETCD_` + the flag name upper-cased with `-` replaced by `_`
//! (e.g. `--data-dir` ↔ `ETCD_DATA_DIR`). A flag given on the command line wins.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;

use clap::{CommandFactory, Parser};

/// etcd's default `--max-request-bytes` (1.5 MiB, `embed.DefaultMaxRequestBytes`).
pub const DEFAULT_MAX_REQUEST_BYTES: u32 = 1536 * 1024;
/// gRPC receive limit slack etcd adds on top of `--max-request-bytes` (`grpcOverheadBytes`, 512 KiB).
pub const GRPC_OVERHEAD_BYTES: usize = 512 * 1024;
/// etcd's default backend quota (2 GiB, `etcdserver.DefaultQuotaBytes`).
pub const DEFAULT_QUOTA_BACKEND_BYTES: i64 = 2 * 1024 * 1024 * 1024;
/// etcd's largest accepted quota (8 GiB, `etcdserver.MaxQuotaBytes`).
pub const MAX_QUOTA_BACKEND_BYTES: i64 = 8 * 1024 * 1024 * 1024;
/// etcd's largest election timeout (`embed.maxElectionMs`).
pub const ELECTION_TIMEOUT_MS_MAX: u64 = 50_000;

/// Command line and environment of `cairn`, as etcd's.
#[derive(Parser, Debug, Clone)]
#[command(
    name = "cairn",
    about = "Cairn: a strongly consistent key-value store that speaks the etcd v3 API.",
    disable_version_flag = true
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
    #[arg(long, env = "ETCD_STRICT_RECONFIG_CHECK", default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub strict_reconfig_check: bool,
    /// Promote learners to voters as soon as they have caught up with the leader (Cairn's
    /// own flag; etcd never shipped this, etcd issue 15107). Off by default.
    #[arg(long, env = "CAIRN_AUTO_PROMOTE_LEARNERS", default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
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
    #[arg(long, env = "ETCD_CLIENT_CERT_AUTH", default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
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
    #[arg(long, env = "ETCD_AUTO_TLS", default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub auto_tls: bool,
    /// Path to the peer server TLS cert file.
    #[arg(long, env = "ETCD_PEER_CERT_FILE", default_value = "")]
    pub peer_cert_file: String,
    /// Path to the peer server TLS key file.
    #[arg(long, env = "ETCD_PEER_KEY_FILE", default_value = "")]
    pub peer_key_file: String,
    /// Enable peer client cert authentication.
    #[arg(long, env = "ETCD_PEER_CLIENT_CERT_AUTH", default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
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
    #[arg(long, env = "ETCD_PEER_AUTO_TLS", default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
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
    #[arg(long, env = "ETCD_EXPERIMENTAL_INITIAL_CORRUPT_CHECK", default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub experimental_initial_corrupt_check: bool,
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
        if self.snapshot_count == 0 {
            return Err("--snapshot-count must be > 0".into());
        }
        let quota = match self.quota_backend_bytes {
            q if q < 0 => return Err("--quota-backend-bytes must be >= 0".into()),
            0 => DEFAULT_QUOTA_BACKEND_BYTES,
            q if q > MAX_QUOTA_BACKEND_BYTES => {
                return Err(format!(
                    "--quota-backend-bytes {q} exceeds maximum recommended quota {MAX_QUOTA_BACKEND_BYTES}"
                ))
            }
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
        };
        let listen = Url::parse_list("listen-client-urls", &self.listen_client_urls)?;
        let mut listen_client_addrs = Vec::new();
        for url in &listen {
            if url.tls && !client_tls.is_set() {
                return Err(format!("TLS key/cert (--cert-file, --key-file) must be provided for client url {} with HTTPS scheme", url.raw));
            }
            listen_client_addrs.extend(url.listen_addrs()?);
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
            "panic" | "fatal" => "error".to_string(),
            other => other.to_string(),
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
            log_outputs: self
                .log_outputs
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect(),
            initial_corrupt_check: self.experimental_initial_corrupt_check,
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
        })
    }
}

/// etcd refuses to start when a flag is given both on the command line and through its
/// `ETCD_*` variable (`pkg/flags/flag.go` `verifyEnv`); so does Cairn, with etcd's message.
pub fn check_env_shadowing(matches: &clap::ArgMatches) -> Result<(), String> {
    for arg in Config::command().get_arguments() {
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
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<ServerConfig, String> {
        let mut argv = vec!["cairn"];
        argv.extend_from_slice(args);
        Config::try_parse_from(argv)
            .map_err(|e| e.to_string())?
            .validate()
    }

    #[test]
    fn defaults_match_etcd() {
        let c = parse(&[]).unwrap();
        assert_eq!(c.name, "default");
        assert_eq!(c.data_dir, PathBuf::from("default.etcd"));
        assert_eq!(
            c.listen_client_addrs,
            vec![ListenAddr {
                addr: "127.0.0.1:2379".parse().unwrap(),
                tls: false
            }]
        );
        assert_eq!(c.max_request_bytes, 1_572_864);
        assert_eq!(c.max_recv_message_bytes, 1_572_864 + 524_288);
        assert_eq!(c.txn_ops_max, 128);
        assert_eq!(c.quota_backend_bytes, 2_147_483_648);
        assert_eq!(c.election_ticks, 10);
        assert_eq!(
            c.initial_cluster,
            vec![(
                "default".to_string(),
                vec!["http://localhost:2380".to_string()]
            )]
        );
    }

    #[test]
    fn data_dir_follows_name() {
        assert_eq!(
            parse(&[
                "--name",
                "n1",
                "--initial-cluster",
                "n1=http://localhost:2380"
            ])
            .unwrap()
            .data_dir,
            PathBuf::from("n1.etcd")
        );
    }

    #[test]
    fn election_timeout_must_be_five_heartbeats() {
        let e = parse(&["--heartbeat-interval", "300", "--election-timeout", "1000"]).unwrap_err();
        assert_eq!(e, "--election-timeout[1000ms] should be at least as 5 times as --heartbeat-interval[300ms]");
    }

    #[test]
    fn unknown_flag_is_an_error() {
        let e = parse(&["--no-such-flag"]).unwrap_err();
        assert!(e.contains("--no-such-flag"), "{e}");
    }

    #[test]
    fn bad_url_is_named() {
        let e = parse(&["--listen-client-urls", "127.0.0.1:2379"]).unwrap_err();
        assert_eq!(
            e,
            "--listen-client-urls: URL scheme must be http, https, unix or unixs: 127.0.0.1:2379"
        );
    }

    #[test]
    fn local_member_must_be_in_initial_cluster() {
        let e = parse(&["--initial-cluster", "other=http://localhost:2380"])
            .unwrap()
            .check_initial_cluster()
            .unwrap_err();
        assert_eq!(
            e,
            "couldn't find local name \"default\" in the initial cluster configuration"
        );
    }
}
