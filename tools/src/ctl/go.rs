//! Go's formatting, as etcdctl's output depends on it: `encoding/json` of gogoproto
//! structs (fields in declaration order, `omitempty`, bytes as base64), `%q`
//! (`strconv.Quote`), olekukonko/tablewriter's tables with `ALIGN_RIGHT`, and
//! go-humanize's `Bytes`; and the texts of a few Go library errors etcdctl prints
//! (`strconv` parsing, `os/exec`).

use base64::Engine;

/// A JSON object built field by field in the order Go's `encoding/json` writes a
/// struct's fields; `omit_*` methods skip zero values as `omitempty` does.
#[derive(Default)]
pub struct JsonObject {
    fields: Vec<(String, String)>,
}

impl JsonObject {
    /// An empty object.
    pub fn new() -> JsonObject {
        JsonObject::default()
    }

    /// Adds `name` with an already encoded JSON `value`.
    pub fn raw(mut self, name: &str, value: String) -> JsonObject {
        self.fields.push((name.to_string(), value));
        self
    }

    /// A number field, omitted when 0 (`omitempty`).
    pub fn num<N: PartialEq + Default + std::fmt::Display>(self, name: &str, value: N) -> Self {
        if value == N::default() {
            self
        } else {
            self.raw(name, value.to_string())
        }
    }

    /// A bool field, omitted when false.
    pub fn flag(self, name: &str, value: bool) -> Self {
        if value {
            self.raw(name, "true".into())
        } else {
            self
        }
    }

    /// A string field, omitted when empty.
    pub fn str(self, name: &str, value: &str) -> Self {
        if value.is_empty() {
            self
        } else {
            self.raw(name, string(value))
        }
    }

    /// A bytes field (base64), omitted when empty.
    pub fn bytes(self, name: &str, value: &[u8]) -> Self {
        if value.is_empty() {
            self
        } else {
            self.raw(
                name,
                string(&base64::engine::general_purpose::STANDARD.encode(value)),
            )
        }
    }

    /// An array field of encoded values, omitted when empty.
    pub fn array(self, name: &str, values: Vec<String>) -> Self {
        if values.is_empty() {
            self
        } else {
            self.raw(name, format!("[{}]", values.join(",")))
        }
    }

    /// A nested object, omitted when `None` (a nil pointer with `omitempty`).
    pub fn object(self, name: &str, value: Option<JsonObject>) -> Self {
        match value {
            Some(object) => self.raw(name, object.encode()),
            None => self,
        }
    }

    /// The encoded object and a newline, as etcdctl's `printJSON` writes it.
    pub fn line(&self) -> Vec<u8> {
        let mut out = self.encode().into_bytes();
        out.push(b'\n');
        out
    }

    /// The encoded object.
    pub fn encode(&self) -> String {
        let fields: Vec<String> = self
            .fields
            .iter()
            .map(|(name, value)| format!("{}:{value}", string(name)))
            .collect();
        format!("{{{}}}", fields.join(","))
    }
}

/// A Go JSON string: `encoding/json` escapes `<`, `>`, `&`, U+2028 and U+2029 besides
/// what JSON requires, and writes invalid UTF-8 as U+FFFD.
pub fn string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                out.push_str(&format!("\\u{:04x}", c as u32))
            }
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Go's `%q` of a byte string (`strconv.Quote`): printable runes as they are, `\a \b \f
/// \n \r \t \v`, other control bytes and invalid UTF-8 bytes as `\xNN`, other
/// non-printable runes as `\uNNNN`.
pub fn quote(bytes: &[u8]) -> String {
    let mut out = String::from("\"");
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\u{7}' => out.push_str("\\a"),
                '\u{8}' => out.push_str("\\b"),
                '\u{c}' => out.push_str("\\f"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                '\u{b}' => out.push_str("\\v"),
                c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                    out.push_str(&format!("\\x{:02x}", c as u32))
                }
                c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
                c => out.push(c),
            }
        }
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out.push('"');
    out
}

/// Go's `strconv.Unquote` of a double-quoted literal (`"..."` with Go escapes: `\a \b
/// \f \n \r \t \v \\ \"`, `\xNN`, octal `\NNN`, `\uNNNN`, `\UNNNNNNNN`), as bytes.
/// `None` where Go fails with `invalid syntax`: no surrounding quotes, an unknown escape,
/// an unescaped `"` or newline inside, a `\u` value that is not a Unicode scalar.
pub fn unquote(text: &str) -> Option<Vec<u8>> {
    let inner = text.strip_prefix('"')?.strip_suffix('"')?;
    let mut out = Vec::with_capacity(inner.len());
    let mut chars = inner.chars();
    let hex = |chars: &mut std::str::Chars, digits: usize| -> Option<u32> {
        let mut value = 0u32;
        for _ in 0..digits {
            value = value * 16 + chars.next()?.to_digit(16)?;
        }
        Some(value)
    };
    while let Some(c) = chars.next() {
        let mut utf8 = [0u8; 4];
        match c {
            '"' | '\n' => return None,
            '\\' => match chars.next()? {
                'a' => out.push(7),
                'b' => out.push(8),
                'f' => out.push(0xc),
                'n' => out.push(b'\n'),
                'r' => out.push(b'\r'),
                't' => out.push(b'\t'),
                'v' => out.push(0xb),
                '\\' => out.push(b'\\'),
                '"' => out.push(b'"'),
                'x' => out.push(u8::try_from(hex(&mut chars, 2)?).ok()?),
                'u' => out.extend(
                    char::from_u32(hex(&mut chars, 4)?)?
                        .encode_utf8(&mut utf8)
                        .as_bytes(),
                ),
                'U' => out.extend(
                    char::from_u32(hex(&mut chars, 8)?)?
                        .encode_utf8(&mut utf8)
                        .as_bytes(),
                ),
                first @ '0'..='7' => {
                    let mut value = first.to_digit(8)?;
                    for _ in 0..2 {
                        value = value * 8 + chars.next()?.to_digit(8)?;
                    }
                    out.push(u8::try_from(value).ok()?);
                }
                _ => return None,
            },
            c => out.extend(c.encode_utf8(&mut utf8).as_bytes()),
        }
    }
    Some(out)
}

/// Go's `strconv.ParseInt(text, 0, 64)` (what pflag's `Int64` flags use): an optional
/// sign, then `0x`/`0o`/`0b`/`0` prefixed or decimal digits, `_` between digits after a
/// prefix. Errors as Go words them: `strconv.ParseInt: parsing "<text>": invalid syntax`
/// or `... value out of range`.
pub fn parse_int(text: &str) -> Result<i64, String> {
    let fail = |why: &str| {
        format!(
            "strconv.ParseInt: parsing {}: {why}",
            quote(text.as_bytes())
        )
    };
    let (negative, body) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    let lower = body.to_ascii_lowercase();
    let (radix, digits, prefixed) = if let Some(d) = lower.strip_prefix("0x") {
        (16, d.to_string(), true)
    } else if let Some(d) = lower.strip_prefix("0o") {
        (8, d.to_string(), true)
    } else if let Some(d) = lower.strip_prefix("0b") {
        (2, d.to_string(), true)
    } else if lower.len() > 1 && lower.starts_with('0') {
        (8, lower[1..].to_string(), true)
    } else {
        (10, lower.clone(), false)
    };
    let underscores_ok =
        prefixed && !digits.starts_with('_') && !digits.ends_with('_') && !digits.contains("__");
    if digits.is_empty() || (digits.contains('_') && !underscores_ok) {
        return Err(fail("invalid syntax"));
    }
    let digits = digits.replace('_', "");
    if !digits.chars().all(|c| c.is_digit(radix)) {
        return Err(fail("invalid syntax"));
    }
    let magnitude = u128::from_str_radix(&digits, radix).map_err(|_| fail("value out of range"))?;
    let value = if negative {
        -(magnitude as i128)
    } else {
        magnitude as i128
    };
    i64::try_from(value).map_err(|_| fail("value out of range"))
}

/// Go's `strconv.ParseBool` (pflag's `Bool` flags with `=value`): `1 t T TRUE true
/// True`, `0 f F FALSE false False`; otherwise `strconv.ParseBool: parsing "<text>":
/// invalid syntax`.
pub fn parse_bool(text: &str) -> Result<bool, String> {
    match text {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Ok(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Ok(false),
        _ => Err(format!(
            "strconv.ParseBool: parsing {}: invalid syntax",
            quote(text.as_bytes())
        )),
    }
}

/// The text of Go's `exec.Cmd.Run` error for `program`'s outcome, `None` on success:
/// `exit status N`, `signal: killed` (and the other signal names Go prints for 2, 9, 15,
/// else the number), `exec: "<program>": executable file not found in $PATH`.
pub fn exec_error(
    program: &str,
    outcome: &std::io::Result<std::process::ExitStatus>,
) -> Option<String> {
    use std::os::unix::process::ExitStatusExt;
    match outcome {
        Ok(st) if st.success() => None,
        Ok(st) => Some(match (st.code(), st.signal()) {
            (Some(code), _) => format!("exit status {code}"),
            (None, Some(9)) => "signal: killed".to_string(),
            (None, Some(15)) => "signal: terminated".to_string(),
            (None, Some(2)) => "signal: interrupt".to_string(),
            (None, signal) => format!("signal: {}", signal.unwrap_or(0)),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Some(format!(
            "exec: {}: executable file not found in $PATH",
            quote(program.as_bytes())
        )),
        Err(e) => Some(format!("exec: {e}")),
    }
}

/// etcdctl's `--hex` form of a byte string: `\x` before every two hex digits.
pub fn hex_escaped(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("\\x{b:02x}")).collect()
}

/// go-humanize `Bytes`: SI units (1000), `%.1f` under 10 and `%.0f` above, e.g.
/// `272 B`, `1.5 kB`, `83 MB`.
pub fn humanize_bytes(size: u64) -> String {
    if size < 10 {
        return format!("{size} B");
    }
    const SIZES: [&str; 7] = ["B", "kB", "MB", "GB", "TB", "PB", "EB"];
    let e = ((size as f64).ln() / 1000f64.ln()).floor();
    let suffix = SIZES[e as usize];
    let value = ((size as f64) / 1000f64.powf(e) * 10.0 + 0.5).floor() / 10.0;
    if value < 10.0 {
        format!("{value:.1} {suffix}")
    } else {
        format!("{value:.0} {suffix}")
    }
}

/// olekukonko/tablewriter's table as etcdctl renders it: header upper-cased and centered,
/// cells right-aligned (`ALIGN_RIGHT`), one space of padding, `+---+` borders.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let header: Vec<String> = header.iter().map(|h| h.to_uppercase()).collect();
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let line: String = widths
        .iter()
        .map(|w| format!("+{}", "-".repeat(w + 2)))
        .collect::<String>()
        + "+\n";
    let mut out = line.clone();
    for (h, w) in header.iter().zip(&widths) {
        let pad = w - h.chars().count();
        let left = pad / 2;
        out.push_str(&format!(
            "| {}{}{} ",
            " ".repeat(left),
            h,
            " ".repeat(pad - left)
        ));
    }
    out.push_str("|\n");
    out.push_str(&line);
    for row in rows {
        for (cell, w) in row.iter().zip(&widths) {
            out.push_str(&format!(
                "| {}{} ",
                " ".repeat(w - cell.chars().count()),
                cell
            ));
        }
        out.push_str("|\n");
    }
    out.push_str(&line);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_objects_as_go() {
        let header = JsonObject::new()
            .num("cluster_id", 7u64)
            .num("revision", 0i64);
        let o = JsonObject::new()
            .object("header", Some(header))
            .bytes("key", b"foo")
            .flag("more", false)
            .str("s", "<a&b>");
        assert_eq!(
            o.encode(),
            r#"{"header":{"cluster_id":7},"key":"Zm9v","s":"\u003ca\u0026b\u003e"}"#
        );
    }

    #[test]
    fn go_quote() {
        assert_eq!(quote(b"lk"), "\"lk\"");
        assert_eq!(quote(b"a\"b\\\n\x00\x7f"), r#""a\"b\\\n\x00\x7f""#);
        assert_eq!(quote(b"\xff\xc3\xa9"), r#""\xffé""#);
    }

    #[test]
    fn go_unquote() {
        assert_eq!(unquote(r#""fo\x41o""#).unwrap(), b"foAo");
        assert_eq!(unquote(r#""a\tb\101\u00e9""#).unwrap(), "a\tbAé".as_bytes());
        assert_eq!(unquote(r#""\q""#), None);
        assert_eq!(unquote(r#""\'""#), None);
        assert_eq!(unquote("\"x"), None);
    }

    #[test]
    fn go_parse_int_and_bool() {
        assert_eq!(parse_int("12"), Ok(12));
        assert_eq!(parse_int("-0x10"), Ok(-16));
        assert_eq!(parse_int("010"), Ok(8));
        assert_eq!(parse_int("0b1_1"), Ok(3));
        assert_eq!(
            parse_int("abc").unwrap_err(),
            "strconv.ParseInt: parsing \"abc\": invalid syntax"
        );
        assert_eq!(
            parse_int("99999999999999999999").unwrap_err(),
            "strconv.ParseInt: parsing \"99999999999999999999\": value out of range"
        );
        assert!(parse_int("1_0").unwrap_err().ends_with("invalid syntax"));
        assert_eq!(parse_bool("T"), Ok(true));
        assert!(parse_bool("yes").is_err());
    }

    #[test]
    fn humanize() {
        assert_eq!(humanize_bytes(0), "0 B");
        assert_eq!(humanize_bytes(272), "272 B");
        assert_eq!(humanize_bytes(1500), "1.5 kB");
        assert_eq!(humanize_bytes(82854982), "83 MB");
        assert_eq!(humanize_bytes(20480), "20 kB");
    }

    #[test]
    fn tables_as_tablewriter() {
        let t = table(&["ID", "Name"], &[vec!["2e12".into(), "default".into()]]);
        assert_eq!(
            t,
            "+------+---------+\n|  ID  |  NAME   |\n+------+---------+\n| 2e12 | default |\n+------+---------+\n"
        );
    }
}
