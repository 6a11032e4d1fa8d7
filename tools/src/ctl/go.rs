//! Go's formatting, as etcdctl's output depends on it: `encoding/json` of gogoproto
//! structs (fields in declaration order, `omitempty`, bytes as base64), `%q`
//! (`strconv.Quote`), olekukonko/tablewriter's tables with `ALIGN_RIGHT`, and
//! go-humanize's `Bytes`.

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
