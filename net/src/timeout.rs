//! The `grpc-timeout` request header (grpc doc/PROTOCOL-HTTP2.md):
//! `Timeout → TimeoutValue TimeoutUnit`, `TimeoutValue` = 1 to 8 ASCII digits,
//! `TimeoutUnit` = `H` hours, `M` minutes, `S` seconds, `m` ms, `u` µs, `n` ns.

use std::time::Duration;

/// Longest `TimeoutValue` the spec allows, in digits.
pub const GRPC_TIMEOUT_DIGITS_MAX: usize = 8;

/// Parses a `grpc-timeout` value strictly: 1–8 ASCII digits then one unit letter; no sign, no
/// spaces. Errors carry a message in grpc-go's words (`transport/http_util.go`
/// `decodeTimeout`); the server prefixes them with "malformed grpc-timeout: ".
pub fn parse_grpc_timeout(value: &str) -> Result<Duration, String> {
    let bytes = value.as_bytes();
    if bytes.len() < 2 {
        return Err(format!("transport: timeout string is too short: {value:?}"));
    }
    if bytes.len() > GRPC_TIMEOUT_DIGITS_MAX + 1 {
        return Err(format!("transport: timeout string is too long: {value:?}"));
    }
    let (digits, unit) = bytes.split_at(bytes.len() - 1);
    if !digits.iter().all(u8::is_ascii_digit) {
        return Err(format!(
            "transport: timeout value is not a number: {value:?}"
        ));
    }
    // At most 8 digits: fits u64 with room to multiply by 3600 s.
    let amount: u64 = digits
        .iter()
        .fold(0u64, |acc, d| acc * 10 + u64::from(d - b'0'));
    let duration = match unit[0] {
        b'H' => Duration::from_secs(amount * 3600),
        b'M' => Duration::from_secs(amount * 60),
        b'S' => Duration::from_secs(amount),
        b'm' => Duration::from_millis(amount),
        b'u' => Duration::from_micros(amount),
        b'n' => Duration::from_nanos(amount),
        _ => {
            return Err(format!(
                "transport: timeout unit is not recognized: {value:?}"
            ))
        }
    };
    Ok(duration)
}

/// Formats a duration as a `grpc-timeout` value, rounding up to the smallest unit that fits in
/// 8 digits (for clients; e.g. 1.5 s → `"1500000u"`).
pub fn format_grpc_timeout(timeout: Duration) -> String {
    const MAX: u128 = 99_999_999;
    let nanos = timeout.as_nanos();
    let units: [(u128, char); 6] = [
        (1, 'n'),
        (1_000, 'u'),
        (1_000_000, 'm'),
        (1_000_000_000, 'S'),
        (60_000_000_000, 'M'),
        (3_600_000_000_000, 'H'),
    ];
    for (size, unit) in units {
        let amount = nanos.div_ceil(size);
        if amount <= MAX {
            return format!("{amount}{unit}");
        }
    }
    format!("{MAX}H")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_unit() {
        assert_eq!(parse_grpc_timeout("1H"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_grpc_timeout("2M"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_grpc_timeout("30S"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_grpc_timeout("250m"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_grpc_timeout("7u"), Ok(Duration::from_micros(7)));
        assert_eq!(
            parse_grpc_timeout("99999999n"),
            Ok(Duration::from_nanos(99_999_999))
        );
        assert_eq!(parse_grpc_timeout("0S"), Ok(Duration::ZERO));
        assert_eq!(
            parse_grpc_timeout("00000001m"),
            Ok(Duration::from_millis(1))
        );
        assert_eq!(
            parse_grpc_timeout("99999999H"),
            Ok(Duration::from_secs(99_999_999 * 3600))
        );
    }

    #[test]
    fn rejects_malformed_values() {
        assert_eq!(
            parse_grpc_timeout("S"),
            Err("transport: timeout string is too short: \"S\"".to_string())
        );
        assert_eq!(
            parse_grpc_timeout("123456789S"),
            Err("transport: timeout string is too long: \"123456789S\"".to_string())
        );
        assert_eq!(
            parse_grpc_timeout("10s"),
            Err("transport: timeout unit is not recognized: \"10s\"".to_string())
        );
        assert_eq!(
            parse_grpc_timeout("18f6n"),
            Err("transport: timeout value is not a number: \"18f6n\"".to_string())
        );
        assert!(parse_grpc_timeout("-1S").is_err());
        assert!(parse_grpc_timeout("+1S").is_err());
        assert!(parse_grpc_timeout(" 1S").is_err());
        assert!(parse_grpc_timeout("").is_err());
        assert!(parse_grpc_timeout("1é").is_err());
    }

    #[test]
    fn formats_within_eight_digits() {
        assert_eq!(format_grpc_timeout(Duration::from_nanos(5)), "5n");
        assert_eq!(format_grpc_timeout(Duration::from_millis(1500)), "1500000u");
        assert_eq!(format_grpc_timeout(Duration::from_secs(5)), "5000000u");
        assert_eq!(format_grpc_timeout(Duration::from_secs(3600)), "3600000m");
        assert_eq!(format_grpc_timeout(Duration::from_secs(400_000)), "400000S");
        for d in [Duration::from_millis(1500), Duration::from_secs(86_400)] {
            assert!(parse_grpc_timeout(&format_grpc_timeout(d)).unwrap() >= d);
        }
    }
}
