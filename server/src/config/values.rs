//! Go `flag` value syntax as etcd's users type it: durations (`time.ParseDuration`),
//! booleans (`strconv.ParseBool`), and etcd's `--auto-compaction-retention`.

use std::time::Duration;

/// Parses a Go duration (`time.ParseDuration`): an optional sign, then one or more
/// `<decimal number><unit>` terms with units `ns`, `us`/`µs`/`μs`, `ms`, `s`, `m`, `h`
/// (e.g. `5s`, `100ms`, `1h30m`, `1.5h`); `0` alone needs no unit.
///
/// Errors: Go's text, e.g. `time: invalid duration "5x"`; negative durations are refused
/// (no etcd flag takes one); values beyond `u64` nanoseconds are refused as overflow.
pub fn parse_go_duration(text: &str) -> Result<Duration, String> {
    let invalid = || format!("time: invalid duration {text:?}");
    let mut rest = text;
    if let Some(r) = rest.strip_prefix('+') {
        rest = r;
    } else if let Some(r) = rest.strip_prefix('-') {
        if r == "0" {
            return Ok(Duration::ZERO);
        }
        return Err(format!("negative duration {text:?} is not allowed"));
    }
    if rest == "0" {
        return Ok(Duration::ZERO);
    }
    if rest.is_empty() {
        return Err(invalid());
    }
    let mut total_ns: f64 = 0.0;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(|| format!("time: missing unit in duration {text:?}"))?;
        let number = &rest[..number_len];
        if number.is_empty() || number == "." || number.matches('.').count() > 1 {
            return Err(invalid());
        }
        let value: f64 = number.parse().map_err(|_| invalid())?;
        rest = &rest[number_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit_ns: f64 = match &rest[..unit_len] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            "" => return Err(format!("time: missing unit in duration {text:?}")),
            unit => return Err(format!("time: unknown unit {unit:?} in duration {text:?}")),
        };
        rest = &rest[unit_len..];
        total_ns += value * unit_ns;
    }
    if total_ns > u64::MAX as f64 {
        return Err(format!("time: invalid duration {text:?} (overflow)"));
    }
    Ok(Duration::from_nanos(total_ns.round() as u64))
}

/// Parses a Go boolean (`strconv.ParseBool`): `1 t T TRUE true True` and
/// `0 f F FALSE false False`. Error: `parse error` with the value, as Go's flag package.
pub fn parse_go_bool(text: &str) -> Result<bool, String> {
    match text {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Ok(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Ok(false),
        _ => Err(format!("invalid boolean value {text:?}: parse error")),
    }
}

/// etcd 3.6's feature gates (`server/features/etcd_features.go`) and what Cairn does
/// with each when it is set: `None` for the ones Cairn maps onto its own settings.
pub const FEATURE_GATES: &[(&str, Option<&str>)] = &[
    ("InitialCorruptCheck", None),
    ("StopGRPCServiceOnDefrag", Some("not implemented yet")),
    (
        "TxnModeWriteWithSharedBuffer",
        Some("bbolt tuning; Cairn has its own storage engine"),
    ),
    ("CompactHashCheck", Some("not implemented yet")),
    ("LeaseCheckpoint", Some("not implemented yet")),
    ("LeaseCheckpointPersist", Some("not implemented yet")),
    ("SetMemberLocalAddr", Some("not implemented yet")),
    ("AllAlpha", Some("no Cairn feature is gated")),
    ("AllBeta", Some("no Cairn feature is gated")),
];

/// Parses `--feature-gates` (`Name=bool,...`) as etcd's `featuregate.Set`: each entry
/// needs `=` and a Go boolean, and names one of [`FEATURE_GATES`]. Errors are etcd's
/// texts (`missing bool value for X`, `invalid value of X=Y ...`,
/// `unrecognized feature gate: X`).
pub fn parse_feature_gates(text: &str) -> Result<Vec<(&'static str, bool)>, String> {
    let mut gates = Vec::new();
    for entry in text.split(',').filter(|e| !e.is_empty()) {
        let (name, value) = match entry.split_once('=') {
            Some((n, v)) => (n.trim(), v.trim()),
            None => return Err(format!("missing bool value for {}", entry.trim())),
        };
        let enabled = parse_go_bool(value)
            .map_err(|e| format!("invalid value of {name}={value}, err: {e}"))?;
        let (known, _) = FEATURE_GATES
            .iter()
            .find(|(gate, _)| *gate == name)
            .ok_or_else(|| format!("unrecognized feature gate: {name}"))?;
        gates.retain(|(gate, _)| gate != known);
        gates.push((*known, enabled));
    }
    Ok(gates)
}

/// `--auto-compaction-mode` with `--auto-compaction-retention` (etcd
/// `embed.Config.AutoCompactionRetention`, `etcdserver/api/v3compactor`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AutoCompaction {
    /// Retention `0`: no automatic compaction (etcd's default).
    Off,
    /// `periodic`: keep this much history (a bare number is hours, as etcd).
    Periodic(Duration),
    /// `revision`: keep this many revisions.
    Revision(u64),
}

impl AutoCompaction {
    /// Parses mode and retention as etcd's `embed.Config.Validate`/`startEtcd` do: mode
    /// `periodic` or `revision`; periodic retention a Go duration or a whole number of hours;
    /// revision retention a whole number. Errors name the flag.
    pub fn parse(mode: &str, retention: &str) -> Result<AutoCompaction, String> {
        let retention = retention.trim();
        match mode {
            "periodic" => {
                let period = match retention.parse::<u64>() {
                    Ok(hours) => Duration::from_secs(hours.saturating_mul(3600)),
                    Err(_) => parse_go_duration(retention)
                        .map_err(|e| format!("--auto-compaction-retention: {e}"))?,
                };
                Ok(if period.is_zero() {
                    AutoCompaction::Off
                } else {
                    AutoCompaction::Periodic(period)
                })
            }
            "revision" => {
                let revisions = retention.parse::<u64>().map_err(|_| {
                    format!("--auto-compaction-retention: invalid revision retention {retention:?} (a whole number is required)")
                })?;
                Ok(if revisions == 0 {
                    AutoCompaction::Off
                } else {
                    AutoCompaction::Revision(revisions)
                })
            }
            other => Err(format!(
                "unknown auto-compaction-mode {other:?} (want \"periodic\" or \"revision\")"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_as_go() {
        assert_eq!(parse_go_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_go_duration("100ms"), Ok(Duration::from_millis(100)));
        assert_eq!(parse_go_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_go_duration("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_go_duration("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse_go_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_go_duration("1.5h"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_go_duration("250us"), Ok(Duration::from_micros(250)));
        // The forms `--auth-token jwt,...,ttl=` takes too (Go's time.ParseDuration).
        assert_eq!(parse_go_duration(".5s"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_go_duration("+1h2m3s"), Ok(Duration::from_secs(3723)));
        assert_eq!(parse_go_duration("1µs"), Ok(Duration::from_micros(1)));
        assert_eq!(parse_go_duration("7ns"), Ok(Duration::from_nanos(7)));
        for bad in ["", "10", "m", ".s", "1x", "1.2.3s", "-1s", "1 s", "s1"] {
            assert!(parse_go_duration(bad).is_err(), "{bad:?}");
        }
        assert_eq!(parse_go_duration("250µs"), Ok(Duration::from_micros(250)));
        assert_eq!(parse_go_duration("7ns"), Ok(Duration::from_nanos(7)));
        assert_eq!(parse_go_duration("0"), Ok(Duration::ZERO));
        assert_eq!(parse_go_duration("0s"), Ok(Duration::ZERO));
        assert_eq!(parse_go_duration("+3s"), Ok(Duration::from_secs(3)));
    }

    #[test]
    fn bad_durations_are_errors() {
        assert_eq!(
            parse_go_duration("5"),
            Err("time: missing unit in duration \"5\"".into())
        );
        assert_eq!(
            parse_go_duration("5x"),
            Err("time: unknown unit \"x\" in duration \"5x\"".into())
        );
        assert!(parse_go_duration("").is_err());
        assert!(parse_go_duration("s").is_err());
        assert!(parse_go_duration("1..2s").is_err());
        assert!(parse_go_duration("-5s").is_err());
        assert!(parse_go_duration("99999999999999999999h").is_err());
    }

    #[test]
    fn booleans_as_go() {
        for t in ["1", "t", "T", "TRUE", "true", "True"] {
            assert_eq!(parse_go_bool(t), Ok(true), "{t}");
        }
        for f in ["0", "f", "F", "FALSE", "false", "False"] {
            assert_eq!(parse_go_bool(f), Ok(false), "{f}");
        }
        assert!(parse_go_bool("yes").is_err());
        assert!(parse_go_bool("").is_err());
        assert!(parse_go_bool("tRUE").is_err());
    }

    #[test]
    fn feature_gates_as_etcd() {
        assert_eq!(parse_feature_gates(""), Ok(vec![]));
        assert_eq!(
            parse_feature_gates("InitialCorruptCheck=true,CompactHashCheck=false"),
            Ok(vec![
                ("InitialCorruptCheck", true),
                ("CompactHashCheck", false)
            ])
        );
        assert_eq!(
            parse_feature_gates("InitialCorruptCheck=true,InitialCorruptCheck=false"),
            Ok(vec![("InitialCorruptCheck", false)])
        );
        assert_eq!(
            parse_feature_gates("Bogus=true"),
            Err("unrecognized feature gate: Bogus".into())
        );
        assert_eq!(
            parse_feature_gates("InitialCorruptCheck"),
            Err("missing bool value for InitialCorruptCheck".into())
        );
        assert!(parse_feature_gates("InitialCorruptCheck=yes")
            .unwrap_err()
            .starts_with("invalid value of InitialCorruptCheck=yes"));
    }

    #[test]
    fn auto_compaction_as_etcd() {
        assert_eq!(
            AutoCompaction::parse("periodic", "0"),
            Ok(AutoCompaction::Off)
        );
        assert_eq!(
            AutoCompaction::parse("periodic", "1"),
            Ok(AutoCompaction::Periodic(Duration::from_secs(3600)))
        );
        assert_eq!(
            AutoCompaction::parse("periodic", "5m"),
            Ok(AutoCompaction::Periodic(Duration::from_secs(300)))
        );
        assert_eq!(
            AutoCompaction::parse("revision", "1000"),
            Ok(AutoCompaction::Revision(1000))
        );
        assert!(AutoCompaction::parse("revision", "5m").is_err());
        assert!(AutoCompaction::parse("hourly", "1").is_err());
        assert!(AutoCompaction::parse("periodic", "5x").is_err());
    }
}
