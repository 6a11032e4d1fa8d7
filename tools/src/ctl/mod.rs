//! `cairnctl`'s online commands: etcdctl 3.4's commands, flags, output and exit codes,
//! speaking gRPC through the project's own client ([`net::Client`]).
//!
//! - [`GlobalFlags`]: etcdctl's global flags and their `ETCDCTL_*` environment variables.
//! - [`Session`]: the connection and the per-call timeout of one command.
//! - [`CtlError`]: what etcdctl's `ExitWithError` prints (`Error: <message>` on stderr)
//!   and its exit code ([`exit`]).
//! - Output: [`Format`] (`-w`), Go's formatting rules in `go` (JSON, `%q`, tables,
//!   humanize), the printers of each command group in `kv` and `maintenance`.

pub mod auth;
pub mod concurrency;
mod go;
pub mod kv;
pub mod lease;
pub mod maintenance;
pub mod stream;
pub mod txn;
pub mod watch;
pub mod watch_args;

use std::path::PathBuf;
use std::time::Duration;

use net::pb::etcdserverpb::{AuthenticateRequest, AuthenticateResponse};
use net::{Client, ClientOptions, Code, Endpoint, Status};

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
    /// Skip server certificate verification.
    #[arg(long, global = true, env = "ETCDCTL_INSECURE_SKIP_TLS_VERIFY")]
    pub insecure_skip_tls_verify: bool,
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

/// A path flag that accepts an empty value (refused later with etcdctl's message).
fn any_path() -> impl clap::builder::TypedValueParser<Value = PathBuf> {
    use clap::builder::TypedValueParser;
    clap::builder::OsStringValueParser::new().map(PathBuf::from)
}

/// Parses a Go duration (`time.ParseDuration`): a sequence of decimal numbers with
/// units `ns`, `us`/`µs`, `ms`, `s`, `m`, `h`, e.g. `2s`, `1m30s`, `500ms`; `0` alone.
pub fn parse_go_duration(text: &str) -> Result<Duration, String> {
    let bad = || format!("time: invalid duration \"{text}\"");
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    let mut rest = text;
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
    Ok(Duration::from_secs_f64(total))
}

/// The connection of one command: the first endpoint that answers, the command timeout,
/// the output settings.
pub struct Session {
    /// The connection.
    pub client: Client,
    /// The endpoint connected to, as given.
    pub endpoint: String,
    /// `--command-timeout`: each call's deadline.
    pub timeout: Duration,
    /// `-w`.
    pub format: Format,
    /// `--hex`.
    pub hex: bool,
    /// How [`Session::client`] was dialed, for [`Session::redial`].
    dialed: (Endpoint, ClientOptions),
}

impl Session {
    /// Connects to the first reachable endpoint of `flags.endpoints` and, with `--user`,
    /// authenticates (etcd `Auth.Authenticate`; the token goes on every later call).
    /// Errors: "context deadline exceeded" when no endpoint answers. etcdctl 3.4 dials
    /// lazily unless it must authenticate: without `--user` the first call fails after
    /// `--command-timeout` with exit 1; with `--user`, `clientv3.New` fails after
    /// `--dial-timeout` with exit 2 (`mustClient`), as does a refused authentication.
    pub async fn connect(flags: &GlobalFlags) -> CtlResult<Session> {
        let lazy = credentials(flags)?.is_none();
        let mut options = client_options(flags)?;
        if lazy {
            options.dial_timeout = flags.command_timeout;
        }
        let mut last = Status::deadline_exceeded();
        for endpoint in &flags.endpoints {
            let parsed =
                Endpoint::parse(endpoint.trim()).map_err(|e| CtlError::new(exit::BAD_ARGS, e))?;
            match Client::connect(&parsed, &options).await {
                Ok(client) => {
                    let session = Session {
                        client,
                        endpoint: endpoint.trim().to_string(),
                        timeout: flags.command_timeout,
                        format: flags.write_out,
                        hex: flags.hex,
                        dialed: (parsed, options.clone()),
                    };
                    session.authenticate(flags).await?;
                    return Ok(session);
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

    /// A new connection to the same endpoint, with the same options and auth token (for
    /// a stream that outlives its connection: grpc-go redials a lost one). Errors as
    /// [`Client::connect`].
    pub async fn redial(&self) -> Result<Client, Status> {
        let (endpoint, options) = &self.dialed;
        let client = Client::connect(endpoint, options).await?;
        client.set_token(self.client.token());
        Ok(client)
    }

    async fn authenticate(&self, flags: &GlobalFlags) -> CtlResult {
        let Some((name, password)) = credentials(flags)? else {
            return Ok(());
        };
        let request = AuthenticateRequest { name, password };
        let response: AuthenticateResponse = self
            .client
            .unary("/etcdserverpb.Auth/Authenticate", &request, self.timeout)
            .await
            .map_err(|s| CtlError::new(exit::BAD_CONNECTION, status_text(&s)))?;
        self.client.set_token(Some(response.token));
        Ok(())
    }

    /// A unary call with the command timeout; failures as clientv3 words them (exit 1).
    pub async fn call<Req, Resp>(&self, path: &str, request: &Req) -> CtlResult<Resp>
    where
        Req: prost::Message,
        Resp: prost::Message + Default,
    {
        self.client
            .unary(path, request, self.timeout)
            .await
            .map_err(CtlError::rpc)
    }
}

/// `--user name[:password]` / `--password` as etcdctl's `authCfgFromCmd`. A password
/// prompt is not offered (cairnctl is for scripts): `--user name` alone is refused.
fn credentials(flags: &GlobalFlags) -> CtlResult<Option<(String, String)>> {
    let Some(user) = flags.user.as_deref().filter(|u| !u.is_empty()) else {
        return Ok(None);
    };
    match flags.password.as_deref().filter(|p| !p.is_empty()) {
        Some(password) => Ok(Some((user.to_string(), password.to_string()))),
        None => match user.split_once(':') {
            Some((name, password)) => Ok(Some((name.to_string(), password.to_string()))),
            None => Err(CtlError::new(
                exit::ERROR,
                "no password given: use --user name:password or --password",
            )),
        },
    }
}

fn client_options(flags: &GlobalFlags) -> CtlResult<ClientOptions> {
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
    let wants_tls = flags.cacert.is_some()
        || flags.cert.is_some()
        || flags.insecure_skip_tls_verify
        || flags.endpoints.iter().any(|e| e.starts_with("https://"));
    let tls = if wants_tls {
        let settings = net::tls::ClientTlsSettings {
            cert_file: flags.cert.clone(),
            key_file: flags.key.clone(),
            trusted_ca_file: flags.cacert.clone(),
            insecure_skip_verify: flags.insecure_skip_tls_verify,
            params: Default::default(),
        };
        Some(
            settings
                .build()
                .map_err(|e| CtlError::new(exit::BAD_ARGS, e.0))?,
        )
    } else {
        None
    };
    Ok(ClientOptions {
        tls,
        dial_timeout: flags.dial_timeout,
    })
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
