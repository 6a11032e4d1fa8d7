//! What etcdctl 3.4 does with its global flags before it dials (`ctlv3/command/global.go`
//! `clientConfigFromCmd`): `--debug` prints every global flag's value, `--discovery-srv`
//! finds the endpoints in DNS SRV records (`pkg/srv.GetClient`), `--user` without a
//! password asks for it on the terminal (`speakeasy.Ask`); and the password prompts of
//! `user add` / `user passwd` (`readPasswordInteractive`).

use std::io::{IsTerminal, Read, Write};
use std::net::SocketAddr;
use std::time::Duration;

use super::{exit, go, CtlError, CtlResult, GlobalFlags};

/// The SRV service of etcd's client URLs (`srv.GetClient("etcd-client", ...)`).
const CLIENT_SERVICE: &str = "etcd-client";

/// The global flags as etcdctl uses them to dial: with `--debug` their values printed on
/// stderr (`ETCDCTL_<NAME>=<value>` lines, sorted by name, before discovery), the
/// endpoints `--discovery-srv` finds (when it finds any), and `--user NAME`'s password
/// asked on the terminal (then `--user` holds `NAME:PASSWORD`).
///
/// Errors: a failed SRV lookup (both services), exit 1 with clientv3's text
/// `dns lookup errors: <https error> and <http error>`; a failed prompt, exit 1.
pub fn resolve(mut flags: GlobalFlags) -> CtlResult<GlobalFlags> {
    if flags.debug {
        eprint!("{}", debug_dump(&flags));
    }
    if !flags.discovery_srv.is_empty() {
        let found = discover(
            &flags.discovery_srv,
            &flags.discovery_srv_name,
            flags.insecure_discovery,
        )?;
        if !found.is_empty() {
            flags.endpoints = found;
        }
    }
    let needs_password = flags.password.as_deref().unwrap_or("").is_empty();
    if let Some(user) = flags
        .user
        .clone()
        .filter(|u| !u.is_empty() && !u.contains(':'))
    {
        if needs_password {
            let password = ask_password("Password: ")
                .map_err(|e| CtlError::new(exit::ERROR, e.to_string()))?;
            flags.user = Some(format!("{user}:{password}"));
        }
    }
    Ok(flags)
}

/// etcdctl `--debug`'s lines: each global flag as `ETCDCTL_<NAME>=<pflag value>`.
fn debug_dump(flags: &GlobalFlags) -> String {
    let path = |p: &Option<std::path::PathBuf>| {
        p.as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_default()
    };
    let values: [(&str, String); 18] = [
        ("CACERT", path(&flags.cacert)),
        ("CERT", path(&flags.cert)),
        ("COMMAND_TIMEOUT", go_duration(flags.command_timeout)),
        ("DEBUG", flags.debug.to_string()),
        ("DIAL_TIMEOUT", go_duration(flags.dial_timeout)),
        ("DISCOVERY_SRV", flags.discovery_srv.clone()),
        ("DISCOVERY_SRV_NAME", flags.discovery_srv_name.clone()),
        ("ENDPOINTS", format!("[{}]", flags.endpoints.join(","))),
        ("HEX", flags.hex.to_string()),
        ("INSECURE_DISCOVERY", flags.insecure_discovery.to_string()),
        (
            "INSECURE_SKIP_TLS_VERIFY",
            flags.insecure_skip_tls_verify.to_string(),
        ),
        ("INSECURE_TRANSPORT", flags.insecure_transport.to_string()),
        ("KEEPALIVE_TIME", go_duration(flags.keepalive_time)),
        ("KEEPALIVE_TIMEOUT", go_duration(flags.keepalive_timeout)),
        ("KEY", path(&flags.key)),
        ("PASSWORD", flags.password.clone().unwrap_or_default()),
        ("USER", flags.user.clone().unwrap_or_default()),
        ("WRITE_OUT", flags.write_out.name().to_string()),
    ];
    values
        .iter()
        .map(|(name, value)| format!("ETCDCTL_{name}={value}\n"))
        .collect()
}

/// Go's `time.Duration.String()`: `0s`, `1.5µs`, `200ms`, `2s`, `1m30s`, `1h0m0s`.
pub fn go_duration(d: Duration) -> String {
    let ns = d.as_nanos();
    if ns == 0 {
        return "0s".into();
    }
    if ns < 1_000_000_000 {
        let (unit, per) = match ns {
            0..=999 => ("ns", 1),
            1_000..=999_999 => ("µs", 1_000),
            _ => ("ms", 1_000_000),
        };
        return format!("{}{unit}", decimal(ns, per));
    }
    let (hour, minute) = (3_600_000_000_000u128, 60_000_000_000u128);
    let seconds = decimal(ns % minute, 1_000_000_000);
    match (ns / hour, ns % hour / minute) {
        (0, 0) => format!("{seconds}s"),
        (0, m) => format!("{m}m{seconds}s"),
        (h, m) => format!("{h}h{m}m{seconds}s"),
    }
}

/// `value / per` with the fraction's trailing zeros dropped (`per` a power of ten).
fn decimal(value: u128, per: u128) -> String {
    let (whole, fraction) = (value / per, value % per);
    if fraction == 0 {
        return whole.to_string();
    }
    let width = per.ilog10() as usize;
    let digits = format!("{fraction:0width$}");
    format!("{whole}.{}", digits.trim_end_matches('0'))
}

/// clientv3's SRV discovery (`srv.GetClient`): `_etcd-client-ssl[-NAME]._tcp.DOMAIN`
/// gives `https://target:port` endpoints, `_etcd-client[-NAME]._tcp.DOMAIN`
/// `http://` ones; only both lookups failing is an error. Without
/// `insecure` (`--insecure-discovery=false`) the `http://` ones are dropped, each
/// named on stderr. A blocking lookup through the system's resolver configuration.
fn discover(domain: &str, service_name: &str, insecure: bool) -> CtlResult<Vec<String>> {
    let resolver = Srv::new();
    let mut endpoints = Vec::new();
    let mut errors = Vec::new();
    for (scheme, service) in [
        ("https", format!("{CLIENT_SERVICE}-ssl")),
        ("http", CLIENT_SERVICE.to_string()),
    ] {
        let service = match service_name {
            "" => service,
            name => format!("{service}-{name}"),
        };
        match resolver.lookup(&format!("_{service}._tcp.{domain}")) {
            Ok(targets) => endpoints.extend(
                targets
                    .into_iter()
                    .map(|(host, port)| format!("{scheme}://{host}:{port}")),
            ),
            Err(e) => errors.push(e),
        }
    }
    if errors.len() == 2 {
        return Err(CtlError::new(
            exit::ERROR,
            format!("dns lookup errors: {} and {}", errors[0], errors[1]),
        ));
    }
    if insecure {
        return Ok(endpoints);
    }
    Ok(endpoints
        .into_iter()
        .filter(|e| {
            let plain = e.starts_with("http://");
            if plain {
                eprintln!(
                    "ignoring discovered insecure endpoint {}",
                    go::quote(e.as_bytes())
                );
            }
            !plain
        })
        .collect())
}

/// SRV lookups (hickory-resolver, configured from `/etc/resolv.conf`), their errors
/// worded as Go's `*net.DNSError`: `lookup <name> on <server>: <what>`.
struct Srv {
    resolver: Result<hickory_resolver::Resolver, String>,
    server: String,
}

impl Srv {
    fn new() -> Srv {
        match hickory_resolver::system_conf::read_system_conf() {
            Ok((config, options)) => {
                let server = config
                    .name_servers()
                    .first()
                    .map(|ns| ns.socket_addr)
                    .unwrap_or(SocketAddr::from(([127, 0, 0, 1], 53)));
                Srv {
                    resolver: hickory_resolver::Resolver::new(config, options)
                        .map_err(|e| e.to_string()),
                    server: server.to_string(),
                }
            }
            // Go falls back to localhost:53 without a readable resolv.conf.
            Err(_) => Srv {
                resolver: Err("no resolver configuration".into()),
                server: "127.0.0.1:53".into(),
            },
        }
    }

    /// The (target, port) pairs of `name`'s SRV records; targets keep their final dot,
    /// as Go's `net.SRV.Target`.
    fn lookup(&self, name: &str) -> Result<Vec<(String, u16)>, String> {
        use hickory_resolver::error::ResolveErrorKind;
        use hickory_resolver::proto::op::ResponseCode;
        let fail = |what: String| format!("lookup {name} on {}: {what}", self.server);
        let resolver = self.resolver.as_ref().map_err(|e| fail(e.clone()))?;
        match resolver.srv_lookup(name) {
            Ok(found) => Ok(found
                .iter()
                .map(|srv| (srv.target().to_utf8(), srv.port()))
                .collect()),
            Err(e) => Err(fail(match e.kind() {
                // Go: NXDOMAIN and an empty answer are "no such host"; other failure
                // codes (SERVFAIL, REFUSED, ...) "server misbehaving".
                ResolveErrorKind::NoRecordsFound { response_code, .. } => match *response_code {
                    ResponseCode::NXDomain | ResponseCode::NoError => "no such host".into(),
                    _ => "server misbehaving".into(),
                },
                ResolveErrorKind::Timeout => "i/o timeout".into(),
                _ => e.to_string(),
            })),
        }
    }
}

/// speakeasy's `Ask` as etcdctl uses it: `prompt` on stdout, a line from stdin (without
/// echo on a terminal; as it comes from a pipe or file), then a newline on stdout; the
/// answer without surrounding white space. End of input gives an empty answer.
pub fn ask_password(prompt: &str) -> std::io::Result<String> {
    let mut stdout = std::io::stdout();
    stdout.write_all(prompt.as_bytes())?;
    stdout.flush()?;
    let stdin = std::io::stdin();
    let line = if stdin.is_terminal() {
        rpassword::read_password()?
    } else {
        // One byte at a time, as speakeasy, so that a second prompt reads the next line.
        let mut line = Vec::new();
        let mut byte = [0u8; 1];
        let mut input = stdin.lock();
        while input.read(&mut byte)? == 1 && byte[0] != b'\n' {
            line.push(byte[0]);
        }
        String::from_utf8_lossy(&line).into_owned()
    };
    stdout.write_all(b"\n")?;
    stdout.flush()?;
    Ok(line.trim().to_string())
}

/// `user add` / `user passwd`'s prompt (`readPasswordInteractive`): the password, then
/// again for confirmation. Errors exit 128: `empty password`, `given passwords are
/// different`, `failed to ask password: <why>`.
pub fn ask_new_password(name: &str) -> CtlResult<String> {
    let ask = |prompt: String| {
        ask_password(&prompt)
            .map_err(|e| CtlError::new(exit::BAD_ARGS, format!("failed to ask password: {e}")))
    };
    let first = ask(format!("Password of {name}: "))?;
    if first.is_empty() {
        return Err(CtlError::new(exit::BAD_ARGS, "empty password"));
    }
    let second = ask(format!("Type password of {name} again for confirmation: "))?;
    if first != second {
        return Err(CtlError::new(
            exit::BAD_ARGS,
            "given passwords are different",
        ));
    }
    Ok(first)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_as_go_prints_them() {
        let ms = Duration::from_millis;
        assert_eq!(go_duration(Duration::ZERO), "0s");
        assert_eq!(go_duration(ms(2000)), "2s");
        assert_eq!(go_duration(ms(200)), "200ms");
        assert_eq!(go_duration(ms(1500)), "1.5s");
        assert_eq!(go_duration(ms(90_000)), "1m30s");
        assert_eq!(go_duration(ms(3_600_000)), "1h0m0s");
        assert_eq!(go_duration(Duration::from_nanos(1500)), "1.5µs");
        assert_eq!(go_duration(Duration::from_nanos(7)), "7ns");
    }
}
