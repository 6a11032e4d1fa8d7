//! `--config-file`: etcd's YAML keys (`embed/config.go` `json:"..."` tags, read by etcd
//! through sigs.k8s.io/yaml) turned into the equivalent `--flag=value` arguments, so that
//! a file and the same flags give the same configuration by construction.
//!
//! As etcd: unknown keys are ignored (etcd's YAML decoding is not strict); the nested
//! `client-transport-security` / `peer-transport-security` maps hold `cert-file`,
//! `key-file`, `client-cert-file`, `client-key-file`, `client-cert-auth`,
//! `trusted-ca-file`, `auto-tls`, `allowed-cn`, `allowed-hostname` and
//! `skip-client-san-verification`; `socket-options` holds `reuse-port` and
//! `reuse-address`; durations are integers of nanoseconds (Go's `time.Duration` in JSON),
//! and Cairn also takes Go duration text (`5s`); lists (`log-outputs: [stderr]`) are
//! joined with commas.

use serde_yaml::Value;

use super::table::{self, Kind};

/// Turns the YAML text of a config file into `--flag=value` arguments, plus the keys
/// that name no flag (as `client-transport-security.foo` for nested ones). Errors: the
/// YAML does not parse, the top level or a nested section is not a map, or a value has
/// the wrong shape (a map where a scalar belongs).
pub fn args_from_yaml(text: &str) -> Result<(Vec<String>, Vec<String>), String> {
    let root: Value = serde_yaml::from_str(text).map_err(|e| format!("invalid YAML: {e}"))?;
    let map = match root {
        Value::Null => return Ok((Vec::new(), Vec::new())),
        Value::Mapping(map) => map,
        _ => return Err("the configuration file must be a YAML map of etcd's keys".into()),
    };
    let mut args = Vec::new();
    let mut unknown = Vec::new();
    for (key, value) in map {
        let key = scalar_key(&key)?;
        match key.as_str() {
            "client-transport-security" | "peer-transport-security" => {
                let peer = key.starts_with("peer");
                for (sub, value) in section(&key, value)? {
                    let sub = scalar_key(&sub)?;
                    match security_flag(peer, &sub) {
                        Some(flag) => push(&mut args, flag, &value)?,
                        None => unknown.push(format!("{key}.{sub}")),
                    }
                }
            }
            "socket-options" => {
                for (sub, value) in section(&key, value)? {
                    let sub = scalar_key(&sub)?;
                    match sub.as_str() {
                        "reuse-port" => push(&mut args, "socket-reuse-port", &value)?,
                        "reuse-address" => push(&mut args, "socket-reuse-address", &value)?,
                        _ => unknown.push(format!("{key}.{sub}")),
                    }
                }
            }
            // etcd maps this YAML spelling onto the flag (server/embed/config.go).
            "experimental-snapshot-catch-up-entries" => {
                push(&mut args, "experimental-snapshot-catchup-entries", &value)?
            }
            // Not flags in a file: etcd has no such keys.
            "config-file" | "version" => unknown.push(key),
            name => match table::find(name) {
                Some(spec) => push(&mut args, spec.name, &value)?,
                None => unknown.push(key),
            },
        }
    }
    Ok((args, unknown))
}

/// The flag a key of `client-transport-security` (`peer == false`) or
/// `peer-transport-security` stands for; `None` when there is none.
fn security_flag(peer: bool, key: &str) -> Option<&'static str> {
    Some(match (peer, key) {
        (false, "cert-file") => "cert-file",
        (false, "key-file") => "key-file",
        (false, "client-cert-file") => "client-cert-file",
        (false, "client-key-file") => "client-key-file",
        (false, "client-cert-auth") => "client-cert-auth",
        (false, "trusted-ca-file") => "trusted-ca-file",
        (false, "auto-tls") => "auto-tls",
        (false, "allowed-hostname") => "client-cert-allowed-hostname",
        (true, "cert-file") => "peer-cert-file",
        (true, "key-file") => "peer-key-file",
        (true, "client-cert-file") => "peer-client-cert-file",
        (true, "client-key-file") => "peer-client-key-file",
        (true, "client-cert-auth") => "peer-client-cert-auth",
        (true, "trusted-ca-file") => "peer-trusted-ca-file",
        (true, "auto-tls") => "peer-auto-tls",
        (true, "allowed-cn") => "peer-cert-allowed-cn",
        (true, "allowed-hostname") => "peer-cert-allowed-hostname",
        (true, "skip-client-san-verification") => "peer-skip-client-san-verification",
        _ => return None,
    })
}

fn scalar_key(key: &Value) -> Result<String, String> {
    match key {
        Value::String(s) => Ok(s.clone()),
        other => Err(format!("configuration key {other:?} is not a string")),
    }
}

fn section(key: &str, value: Value) -> Result<serde_yaml::Mapping, String> {
    match value {
        Value::Mapping(map) => Ok(map),
        Value::Null => Ok(serde_yaml::Mapping::new()),
        _ => Err(format!("invalid {key}: a map is required")),
    }
}

/// Appends `--flag=value` for one YAML value; `null` gives nothing (etcd's default stays).
fn push(args: &mut Vec<String>, flag: &str, value: &Value) -> Result<(), String> {
    let duration = table::find(flag).is_some_and(|s| s.kind == Kind::Duration);
    let text = match value {
        Value::Null => return Ok(()),
        Value::Number(n) if duration => format!("{n}ns"),
        Value::Sequence(items) => items
            .iter()
            .map(|item| scalar_text(flag, item))
            .collect::<Result<Vec<_>, _>>()?
            .join(","),
        scalar => scalar_text(flag, scalar)?,
    };
    args.push(format!("--{flag}={text}"));
    Ok(())
}

fn scalar_text(flag: &str, value: &Value) -> Result<String, String> {
    match value {
        Value::Bool(b) => Ok(b.to_string()),
        Value::Number(n) => Ok(n.to_string()),
        Value::String(s) => Ok(s.clone()),
        _ => Err(format!(
            "invalid value for {flag}: a scalar or a list is required"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_become_flags() {
        let (args, unknown) = args_from_yaml(
            "name: n1\nheartbeat-interval: 50\nstrict-reconfig-check: false\n\
             log-outputs: [stderr, stdout]\ngrpc-keepalive-timeout: 3000000000\n\
             wal-dir: /tmp/w\nno-such-key: 1\n\
             peer-transport-security:\n  cert-file: p.crt\n  allowed-cn: cn1\n  bogus: 1\n\
             client-transport-security:\n  client-cert-auth: true\n  allowed-hostname: h\n",
        )
        .unwrap();
        assert_eq!(
            args,
            vec![
                "--name=n1",
                "--heartbeat-interval=50",
                "--strict-reconfig-check=false",
                "--log-outputs=stderr,stdout",
                "--grpc-keepalive-timeout=3000000000ns",
                "--wal-dir=/tmp/w",
                "--peer-cert-file=p.crt",
                "--peer-cert-allowed-cn=cn1",
                "--client-cert-auth=true",
                "--client-cert-allowed-hostname=h",
            ]
        );
        assert_eq!(
            unknown,
            vec!["no-such-key", "peer-transport-security.bogus"]
        );
    }

    #[test]
    fn empty_file_is_all_defaults() {
        assert_eq!(args_from_yaml(""), Ok((Vec::new(), Vec::new())));
        assert_eq!(args_from_yaml("name: ~\n"), Ok((Vec::new(), Vec::new())));
    }

    #[test]
    fn bad_shapes_are_errors() {
        assert!(args_from_yaml("- a\n- b\n").is_err());
        assert!(args_from_yaml("name: [1, {a: b}]\n").is_err());
        assert!(args_from_yaml("peer-transport-security: 3\n").is_err());
        assert!(args_from_yaml("name: \"unterminated\n").is_err());
    }
}
