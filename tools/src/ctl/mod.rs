//! `cairnctl`'s online commands: etcdctl 3.4's commands, flags, output and exit codes,
//! speaking gRPC through the project's own client ([`net::Client`]).
//!
//! - [`GlobalFlags`]: etcdctl's global flags and their `ETCDCTL_*` environment variables.
//! - [`Session`]: the connection and the per-call timeout of one command.
//! - [`CtlError`]: what etcdctl's `ExitWithError` prints (`Error: <message>` on stderr)
//!   and its exit code ([`exit`]).
//! - Output: [`Format`] (`-w`), Go's formatting rules in `go` (JSON, `%q`, tables,
//!   humanize), the printers of each command group in `kv` and `maintenance`.
//! - Help and usage errors: `usage`, etcdctl's help template and cobra/pflag's error texts
//!   for cairnctl's clap tree.

pub mod auth;
pub mod concurrency;
pub mod global;
mod go;
pub mod kv;
pub mod lease;
pub mod maintenance;
pub mod mirror;
pub mod stream;
pub mod txn;
pub mod usage;
mod usage_text;
pub mod watch;
pub mod watch_args;

use std::path::PathBuf;
use std::time::Duration;

use net::pb::etcdserverpb::{AuthenticateRequest, AuthenticateResponse};
use net::{Client, ClientOptions, Code, Endpoint, Keepalive, Status};

/// etcdctl's exit codes (`etcdctl/ctlv3/command/error.go`).
pub mod exit {
    /// Success.
    pub const SUCCESS: i32 = 0;
    /// A failed request.
    pub const ERROR: i32 = 1;
    /// No connection could be made (or authentication at connect failed).
    pub const BAD_CONNECTION: i32 = 2;
    /// Unreadable input (txn, watch).
    pub const INVALID_INPUT: i32 = 3;
    /// A valid flag with an unsupported value (e.g. `-w table` for `get`).
    pub const BAD_FEATURE: i32 = 4;
    /// Interrupted.
    pub const INTERRUPTED: i32 = 5;
    /// An I/O failure.
    pub const IO: i32 = 6;
    /// Wrong arguments.
    pub const BAD_ARGS: i32 = 128;
}

/// An error as etcdctl reports it: `Error: <message>` on stderr, exit `code`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CtlError {
    /// Exit code ([`exit`]).
    pub code: i32,
    /// The text after `Error: `.
    pub message: String,
}

impl CtlError {
    /// An error with exit `code`.
    pub fn new(code: i32, message: impl Into<String>) -> CtlError {
        CtlError {
            code,
            message: message.into(),
        }
    }

    /// A failed RPC, exit 1, as clientv3 words it: etcd's own errors ("etcdserver: ...",
    /// rpctypes' table) and Go context errors by their text; others as grpc-go's
    /// `rpc error: code = <Code> desc = <message>`.
    pub fn rpc(status: Status) -> CtlError {
        CtlError::new(exit::ERROR, status_text(&status))
    }

    /// `<what> not supported as output format`, exit 4 (etcdctl's `printerUnsupported`).
    pub fn unsupported(format: Format) -> CtlError {
        CtlError::new(
            exit::BAD_FEATURE,
            format!("{} not supported as output format", format.name()),
        )
    }
}

/// The text clientv3 gives a failed call (`rpctypes.Error`, `toErr`).
pub fn status_text(status: &Status) -> String {
    let known = status.message.starts_with("etcdserver: ")
        || (status.code == Code::DeadlineExceeded && status.message == "context deadline exceeded")
        || (status.code == Code::Cancelled && status.message == "context canceled");
    if known {
        status.message.clone()
    } else {
        status.to_string()
    }
}

/// Result of a command.
pub type CtlResult<T = ()> = Result<T, CtlError>;

/// `-w/--write-out`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// etcdctl's default human-readable lines.
    Simple,
    /// Go's `encoding/json` of the response.
    Json,
    /// `"Name" : value` lines.
    Fields,
    /// ASCII tables (member list, endpoint commands).
    Table,
    /// The response's protobuf encoding.
    Protobuf,
}

impl Format {
    /// The flag value.
    pub fn name(self) -> &'static str {
        match self {
            Format::Simple => "simple",
            Format::Json => "json",
            Format::Fields => "fields",
            Format::Table => "table",
            Format::Protobuf => "protobuf",
        }
    }
}

/// etcdctl 3.4's global flags (`etcdctl/ctlv3/ctl.go`), each also read from `ETCDCTL_<NAME>`
/// (upper case, `-` → `_`), as etcdctl's `flags.SetPflagsFromEnv`.
#[derive(Clone, Debug, clap::Args)]
pub struct GlobalFlags {
    /// gRPC endpoints, comma separated.
    #[arg(
        long,
        global = true,
        env = "ETCDCTL_ENDPOINTS",
        default_value = "127.0.0.1:2379",
        value_delimiter = ','
    )]
    pub endpoints: Vec<String>,
    /// Dial timeout for client connections (Go duration, e.g. `2s`).
    #[arg(long, global = true, env = "ETCDCTL_DIAL_TIMEOUT", default_value = "2s", value_parser = parse_go_duration)]
    pub dial_timeout: Duration,
    /// Timeout for short running commands (excluding dial timeout).
    #[arg(long, global = true, env = "ETCDCTL_COMMAND_TIMEOUT", default_value = "5s", value_parser = parse_go_duration)]
    pub command_timeout: Duration,
    /// Verify certificates of TLS-enabled secure servers using this CA bundle.
    #[arg(long, global = true, env = "ETCDCTL_CACERT", value_parser = any_path())]
    pub cacert: Option<PathBuf>,
    /// Identify secure client using this TLS certificate file.
    #[arg(long, global = true, env = "ETCDCTL_CERT", value_parser = any_path())]
    pub cert: Option<PathBuf>,
    /// Identify secure client using this TLS key file.
    #[arg(long, global = true, env = "ETCDCTL_KEY", value_parser = any_path())]
    pub key: Option<PathBuf>,
    /// Skip server certificate verification (CAUTION: this option should be enabled only
    /// for testing purposes). As etcdctl, it applies only when a TLS configuration is made:
    /// with `--cacert`, `--cert`, `--key`, secure discovery or `--insecure-transport=false`.
    #[arg(long, global = true, env = "ETCDCTL_INSECURE_SKIP_TLS_VERIFY", num_args = 0..=1, require_equals = true, default_value = "false", default_missing_value = "true", value_parser = parse_go_bool, action = clap::ArgAction::Set)]
    pub insecure_skip_tls_verify: bool,
    /// Disable transport security for client connections (`false`: TLS against the
    /// system's roots even without `--cacert`).
    #[arg(long, global = true, env = "ETCDCTL_INSECURE_TRANSPORT", num_args = 0..=1, require_equals = true, default_value = "true", default_missing_value = "true", value_parser = parse_go_bool, action = clap::ArgAction::Set)]
    pub insecure_transport: bool,
    /// Accept insecure SRV records describing cluster endpoints (`false`: `http://`
    /// endpoints found by `--discovery-srv` are ignored).
    #[arg(long, global = true, env = "ETCDCTL_INSECURE_DISCOVERY", num_args = 0..=1, require_equals = true, default_value = "true", default_missing_value = "true", value_parser = parse_go_bool, action = clap::ArgAction::Set)]
    pub insecure_discovery: bool,
    /// Domain name to query for SRV records describing cluster endpoints.
    #[arg(
        short = 'd',
        long,
        global = true,
        env = "ETCDCTL_DISCOVERY_SRV",
        default_value = ""
    )]
    pub discovery_srv: String,
    /// Service name to query when using DNS discovery.
    #[arg(
        long,
        global = true,
        env = "ETCDCTL_DISCOVERY_SRV_NAME",
        default_value = ""
    )]
    pub discovery_srv_name: String,
    /// Keepalive time for client connections (HTTP/2 PING interval; `0`: none).
    #[arg(long, global = true, env = "ETCDCTL_KEEPALIVE_TIME", default_value = "2s", value_parser = parse_go_duration)]
    pub keepalive_time: Duration,
    /// Keepalive timeout for client connections.
    #[arg(long, global = true, env = "ETCDCTL_KEEPALIVE_TIMEOUT", default_value = "6s", value_parser = parse_go_duration)]
    pub keepalive_timeout: Duration,
    /// Enable client-side debug logging (cairnctl prints the flags' values as etcdctl
    /// does, not grpc-go's log).
    #[arg(long, global = true, env = "ETCDCTL_DEBUG", num_args = 0..=1, require_equals = true, default_value = "false", default_missing_value = "true", value_parser = parse_go_bool, action = clap::ArgAction::Set)]
    pub debug: bool,
    /// username[:password] for authentication (prompt if password is not supplied).
    #[arg(long, global = true, env = "ETCDCTL_USER")]
    pub user: Option<String>,
    /// password for authentication (if this option is used, --user option shouldn't include password).
    #[arg(long, global = true, env = "ETCDCTL_PASSWORD")]
    pub password: Option<String>,
    /// Set the output format (fields, json, protobuf, simple, table).
    #[arg(
        short = 'w',
        long = "write-out",
        global = true,
        env = "ETCDCTL_WRITE_OUT",
        value_enum,
        default_value = "simple"
    )]
    pub write_out: Format,
    /// Print byte strings as hex encoded strings.
    #[arg(long, global = true, env = "ETCDCTL_HEX")]
    pub hex: bool,
}

/// The `ETCDCTL_*` variables of the duration and boolean global flags whose values do
/// not parse, each with the value etcdctl uses instead: pflag's `Set` stores the zero
/// value its parser returned with the error (`0s`, `false`), and etcdctl drops the error
/// of `flags.SetPflagsFromEnv`. Set these in the environment before parsing.
pub fn unparsable_env() -> Vec<(&'static str, &'static str)> {
    let durations = [
        "ETCDCTL_DIAL_TIMEOUT",
        "ETCDCTL_COMMAND_TIMEOUT",
        "ETCDCTL_KEEPALIVE_TIME",
        "ETCDCTL_KEEPALIVE_TIMEOUT",
    ];
    let bools = [
        "ETCDCTL_DEBUG",
        "ETCDCTL_INSECURE_TRANSPORT",
        "ETCDCTL_INSECURE_DISCOVERY",
        "ETCDCTL_INSECURE_SKIP_TLS_VERIFY",
    ];
    let value = |name: &str| std::env::var(name).ok();
    let bad_durations = durations
        .into_iter()
        .filter(|name| value(name).is_some_and(|v| parse_go_duration(&v).is_err()))
        .map(|name| (name, "0s"));
    let bad_bools = bools
        .into_iter()
        .filter(|name| value(name).is_some_and(|v| parse_go_bool(&v).is_err()))
        .map(|name| (name, "false"));
    bad_durations.chain(bad_bools).collect()
}

/// A path flag that accepts an empty value (refused later with etcdctl's message).
fn any_path() -> impl clap::builder::TypedValueParser<Value = PathBuf> {
    use clap::builder::TypedValueParser;
    clap::builder::OsStringValueParser::new().map(PathBuf::from)
}

/// Parses a Go boolean flag value (`strconv.ParseBool`): `1 t T TRUE true True`,
/// `0 f F FALSE false False`; otherwise Go's error text.
pub use go::parse_bool as parse_go_bool;

/// Parses a Go duration (`time.ParseDuration`): an optional sign, then a sequence of
/// decimal numbers with units `ns`, `us`/`µs`, `ms`, `s`, `m`, `h`, e.g. `2s`, `1m30s`,
/// `500ms`; `0` alone. A negative duration is zero here: etcdctl treats both alike (an
/// expired deadline, no keepalive).
pub fn parse_go_duration(text: &str) -> Result<Duration, String> {
    let bad = || format!("time: invalid duration \"{text}\"");
    let (negative, unsigned) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    if unsigned == "0" {
        return Ok(Duration::ZERO);
    }
    let mut rest = unsigned;
    let mut total = 0f64;
    if rest.is_empty() {
        return Err(bad());
    }
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(|| format!("time: missing unit in duration \"{text}\""))?;
        let value: f64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let seconds = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" | "μs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            unit => {
                return Err(format!(
                    "time: unknown unit \"{unit}\" in duration \"{text}\""
                ))
            }
        };
        total += value * seconds;
        rest = &rest[unit_len..];
    }
    if negative {
        return Ok(Duration::ZERO);
    }
    Ok(Duration::from_secs_f64(total))
}

/// The connection of one command: the first endpoint that answers, the command timeout,
/// the output settings. Dialed on first use ([`Session::client`]), as etcdctl makes its
/// client only after it has checked the command's arguments.
pub struct Session {
    flags: GlobalFlags,
    connection: std::cell::OnceCell<Connection>,
    /// `--command-timeout`: each call's deadline.
    pub timeout: Duration,
    /// `-w`.
    pub format: Format,
    /// `--hex`.
    pub hex: bool,
}

impl Session {
    /// A session that dials on its first call.
    pub fn lazy(flags: &GlobalFlags) -> Session {
        Session {
            flags: flags.clone(),
            connection: std::cell::OnceCell::new(),
            timeout: flags.command_timeout,
            format: flags.write_out,
            hex: flags.hex,
        }
    }

    /// A session dialed now. Errors as [`Session::client`].
    pub async fn connect(flags: &GlobalFlags) -> CtlResult<Session> {
        let session = Session::lazy(flags);
        session.client().await?;
        Ok(session)
    }

    /// The connection, dialed on the first call: the first reachable endpoint of
    /// `--endpoints` and, with `--user`, authenticated (etcd `Auth.Authenticate`; the
    /// token goes on every later call). Errors: bad TLS or endpoint flags (exit 128);
    /// "context deadline exceeded" when no endpoint answers. etcdctl 3.4 dials lazily
    /// unless it must authenticate: without `--user` the first call fails after
    /// `--command-timeout` with exit 1; with `--user`, `clientv3.New` fails after
    /// `--dial-timeout` with exit 2 (`mustClient`), as does a refused authentication.
    pub async fn client(&self) -> CtlResult<&Client> {
        if let Some(connection) = self.connection.get() {
            return Ok(&connection.client);
        }
        let connection = dial(&self.flags).await?;
        authenticate(&connection.client, &self.flags, self.timeout).await?;
        Ok(&self.connection.get_or_init(|| connection).client)
    }

    /// A new connection to the endpoint [`Session::client`] reached, with the same options
    /// and auth token (for a stream that outlives its connection: grpc-go redials a lost
    /// one). Errors as [`Client::connect`]; UNAVAILABLE before the first dial.
    pub async fn redial(&self) -> Result<Client, Status> {
        let Some(connection) = self.connection.get() else {
            return Err(Status::new(
                Code::Unavailable,
                "cairn: redial before the first dial",
            ));
        };
        let client = Client::connect(&connection.endpoint, &connection.options).await?;
        client.set_token(connection.client.token());
        Ok(client)
    }

    /// A unary call with the command timeout; failures as clientv3 words them (exit 1).
    pub async fn call<Req, Resp>(&self, path: &str, request: &Req) -> CtlResult<Resp>
    where
        Req: prost::Message,
        Resp: prost::Message + Default,
    {
        self.client()
            .await?
            .unary(path, request, self.timeout)
            .await
            .map_err(CtlError::rpc)
    }
}

/// A session's connection and how it was made (for [`Session::redial`]).
struct Connection {
    client: Client,
    endpoint: Endpoint,
    options: ClientOptions,
}

/// Connects to the first reachable endpoint of `flags.endpoints` (see [`Session::client`]).
async fn dial(flags: &GlobalFlags) -> CtlResult<Connection> {
    let lazy = credentials(flags)?.is_none();
    let (mut options, tls_configured) = client_options(flags)?;
    if lazy {
        options.dial_timeout = flags.command_timeout;
    }
    let mut last = Status::deadline_exceeded();
    for endpoint in &flags.endpoints {
        let parsed = parse_endpoint(endpoint.trim(), tls_configured)?;
        match Client::connect(&parsed, &options).await {
            Ok(client) => {
                return Ok(Connection {
                    client,
                    endpoint: parsed,
                    options,
                })
            }
            Err(status) => last = status,
        }
    }
    let code = if lazy {
        exit::ERROR
    } else {
        exit::BAD_CONNECTION
    };
    Err(CtlError::new(code, status_text(&last)))
}

/// With `--user`, authenticates on `client` and sets the token it gets.
async fn authenticate(client: &Client, flags: &GlobalFlags, timeout: Duration) -> CtlResult {
    let Some((name, password)) = credentials(flags)? else {
        return Ok(());
    };
    let request = AuthenticateRequest { name, password };
    let answer: Result<AuthenticateResponse, Status> = client
        .unary("/etcdserverpb.Auth/Authenticate", &request, timeout)
        .await;
    match answer {
        Ok(response) => client.set_token(Some(response.token)),
        // clientv3 `dialWithBalancer`: a server without auth is no error; no token.
        Err(s) if s.message == AUTH_NOT_ENABLED => {}
        Err(s) => return Err(CtlError::new(exit::BAD_CONNECTION, status_text(&s))),
    }
    Ok(())
}

/// etcd's `rpctypes.ErrAuthNotEnabled` text, which clientv3 ignores when authenticating.
const AUTH_NOT_ENABLED: &str = "etcdserver: authentication is not enabled";

/// `--user name[:password]` / `--password` as etcdctl's `authCfgFromCmd`; the prompt for
/// `--user name` alone is [`global::resolve`]'s, which leaves `name:password` here (a
/// caller that skipped it gets `--user name` refused).
fn credentials(flags: &GlobalFlags) -> CtlResult<Option<(String, String)>> {
    let Some(user) = flags.user.as_deref().filter(|u| !u.is_empty()) else {
        return Ok(None);
    };
    let (name, password) = match flags.password.as_deref().filter(|p| !p.is_empty()) {
        Some(password) => (user, password),
        None => match user.split_once(':') {
            Some(pair) => pair,
            None => {
                return Err(CtlError::new(
                    exit::ERROR,
                    "no password given: use --user name:password or --password",
                ))
            }
        },
    };
    // clientv3 authenticates only with both (`cfg.Username != "" && cfg.Password != ""`).
    if name.is_empty() || password.is_empty() {
        return Ok(None);
    }
    Ok(Some((name.to_string(), password.to_string())))
}

/// An endpoint as clientv3 dials it: `https://` and `http://` as said; without a scheme,
/// TLS when the flags make a TLS configuration (`Client.directDialCreds`).
fn parse_endpoint(text: &str, tls_configured: bool) -> CtlResult<Endpoint> {
    let full = if tls_configured && !text.contains("://") {
        format!("https://{text}")
    } else {
        text.to_string()
    };
    Endpoint::parse(&full).map_err(|e| CtlError::new(exit::BAD_ARGS, e))
}

/// The client's options and whether the flags make a TLS configuration.
fn client_options(flags: &GlobalFlags) -> CtlResult<(ClientOptions, bool)> {
    for (name, value) in [
        ("cert", &flags.cert),
        ("key", &flags.key),
        ("cacert", &flags.cacert),
    ] {
        if value.as_ref().is_some_and(|p| p.as_os_str().is_empty()) {
            return Err(CtlError::new(
                exit::BAD_ARGS,
                format!("empty string is passed to --{name} option"),
            ));
        }
    }
    let secure_discovery = !flags.insecure_discovery && !flags.discovery_srv.is_empty();
    let files = flags.cacert.is_some() || flags.cert.is_some() || flags.key.is_some();
    let https = flags.endpoints.iter().any(|e| e.starts_with("https://"));
    let tls = TlsFlags {
        cacert: flags.cacert.clone(),
        cert: flags.cert.clone(),
        key: flags.key.clone(),
        configured: files || secure_discovery || !flags.insecure_transport,
        insecure_skip_verify: flags.insecure_skip_tls_verify,
    };
    let options = tls.options(
        https,
        flags.dial_timeout,
        keepalive(flags.keepalive_time, flags.keepalive_timeout),
    )?;
    Ok((options, tls.configured))
}

/// clientv3's keepalive: none when `time` is zero (`DialKeepAliveTime > 0`); an interval
/// under grpc-go's floor ([`net::KEEPALIVE_TIME_MIN_MS`], 10 s) is raised to it, as
/// grpc-go does for etcdctl's default 2 s.
pub fn keepalive(time: Duration, timeout: Duration) -> Option<Keepalive> {
    let floor = Duration::from_millis(net::KEEPALIVE_TIME_MIN_MS);
    (!time.is_zero()).then_some(Keepalive {
        time: time.max(floor),
        timeout,
    })
}

/// The TLS side of one client's flags (the global ones, or make-mirror's `--dest-*`),
/// as etcdctl's `newClientCfg` reads them.
pub struct TlsFlags {
    /// `--cacert`: roots; `None`: the system's.
    pub cacert: Option<PathBuf>,
    /// `--cert`: the client certificate.
    pub cert: Option<PathBuf>,
    /// `--key`: its key.
    pub key: Option<PathBuf>,
    /// Whether etcdctl makes a TLS configuration: a file flag, secure discovery, or
    /// `--insecure-transport=false`.
    pub configured: bool,
    /// `--insecure-skip-tls-verify`, which etcdctl applies only to a made configuration:
    /// an `https://` endpoint without one gets grpc's default TLS, which verifies.
    pub insecure_skip_verify: bool,
}

impl TlsFlags {
    /// The client's options: TLS for `https://` endpoints (none when not needed: no
    /// TLS flags and no `https://` endpoint), `dial_timeout` and `keepalive`. Unreadable
    /// files exit 128 as etcdctl's `mustClient`.
    pub fn options(
        &self,
        https: bool,
        dial_timeout: Duration,
        keepalive: Option<Keepalive>,
    ) -> CtlResult<ClientOptions> {
        let mut options = ClientOptions {
            tls: None,
            dial_timeout,
            keepalive,
        };
        if !self.configured && !https {
            return Ok(options);
        }
        let settings = net::tls::ClientTlsSettings {
            cert_file: self.cert.clone(),
            key_file: self.key.clone(),
            trusted_ca_file: self.cacert.clone(),
            insecure_skip_verify: self.insecure_skip_verify && self.configured,
            system_roots: true,
            params: Default::default(),
        };
        let config = settings
            .build()
            .map_err(|e| CtlError::new(exit::BAD_ARGS, e.0))?;
        options.tls = Some(config);
        Ok(options)
    }
}

/// Runs `f` on a glommio executor of this thread (the client is per-core).
pub fn block_on<T>(f: impl std::future::Future<Output = T>) -> T {
    glommio::LocalExecutorBuilder::default()
        .make()
        .expect("a glommio executor (io_uring) on this thread")
        .run(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        assert_eq!(parse_go_duration("2s").unwrap(), Duration::from_secs(2));
        assert_eq!(parse_go_duration("1m30s").unwrap(), Duration::from_secs(90));
        assert_eq!(
            parse_go_duration("500ms").unwrap(),
            Duration::from_millis(500)
        );
        assert_eq!(parse_go_duration("0").unwrap(), Duration::ZERO);
        assert!(parse_go_duration("5").unwrap_err().contains("missing unit"));
        assert!(parse_go_duration("5x")
            .unwrap_err()
            .contains("unknown unit"));
        assert!(parse_go_duration("").is_err());
    }

    #[test]
    fn status_texts_as_clientv3() {
        let known = Status::new(Code::NotFound, "etcdserver: requested lease not found");
        assert_eq!(status_text(&known), "etcdserver: requested lease not found");
        assert_eq!(
            status_text(&Status::deadline_exceeded()),
            "context deadline exceeded"
        );
        let other = Status::new(Code::Unavailable, "connection closed");
        assert_eq!(
            status_text(&other),
            "rpc error: code = Unavailable desc = connection closed"
        );
    }
}
