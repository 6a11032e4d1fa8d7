//! etcd's structured logs: one JSON object per line, written by a `tracing` layer in the
//! shape of etcd's zap logger (`pkg/logutil/zap.go` `DefaultZapLoggerConfig`):
//!
//! ```text
//! {"level":"info","ts":"2026-12-01T04:54:44.635Z","caller":"embed/etcd.go:117","msg":"...",<fields>}
//! ```
//!
//! - key order `level`, `ts`, `caller`, `msg`, then the event's fields in the order given;
//! - `level`: zap's lowercase names (`debug`, `info`, `warn`, `error`; `fatal` for events
//!   sent to [`FATAL_TARGET`]);
//! - `ts`: zap's `ISO8601TimeEncoder`, local time with milliseconds and the zone offset
//!   (`2006-01-02T15:04:05.000Z0700`: `Z` in UTC, `+0800` elsewhere);
//! - `caller`: zap's `ShortCallerEncoder`, the last folder and file plus the line
//!   (`cluster/driver.rs:629`);
//! - field values: numbers and booleans as JSON numbers and booleans, everything else as
//!   strings, except values wrapped with [`json`] which are embedded as JSON (etcd's
//!   `zap.Strings` lists).
//!
//! Flags (etcd `embed/config_logging.go`): `--logger` `zap` (`capnslog`, etcd 3.4's
//! default, is accepted and logs as zap after one warning); `--log-outputs` `default`
//! (= `stderr`), `stderr`, `stdout` or file paths (appended, created 0600), several at
//! once, `default` only alone; `--log-level` `debug`|`info`|`warn`|`error`|`panic`|`fatal`
//! (the last two log errors and worse). `CAIRN_LOG`, a `tracing` filter directive
//! (`CAIRN_LOG=server=debug,h2=info`), overrides `--log-level` for developers.

use std::fmt::{self, Write as _};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::prelude::*;

/// Events logged with this target print as level `fatal` (zap's `Fatal`; the caller
/// exits after logging). Use [`fatal`] rather than this target directly.
pub const FATAL_TARGET: &str = "fatal";

/// `--log-outputs` value meaning stderr (etcd `embed.DefaultLogOutput`).
pub const DEFAULT_LOG_OUTPUT: &str = "default";

/// Most bytes of one log line; a longer line keeps `level`, `ts`, `caller` and
/// `msg` (cut to half this) and reports the dropped fields' size as `truncated-bytes`
/// (a request dumped into a warning must not make a 1.5 MiB line).
pub const LINE_BYTES_MAX: usize = 64 * 1024;

/// Marks a field value as JSON text to embed as is (see [`json`]).
const JSON_MARK: char = '\u{1}';

/// A field value embedded as JSON rather than as a string, e.g.
/// `info!("listen-peer-urls" = %logging::json(&urls), "...")` prints
/// `"listen-peer-urls":["http://127.0.0.1:2380"]`, as etcd's `zap.Strings`.
pub fn json<T: serde::Serialize + ?Sized>(value: &T) -> JsonField {
    JsonField(serde_json::to_string(value).unwrap_or_else(|_| "null".into()))
}

/// A value for [`json`]: displays as JSON text behind a private marker the log layer
/// recognizes.
pub struct JsonField(String);

impl fmt::Display for JsonField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{JSON_MARK}{}", self.0)
    }
}

/// A duration as Go's `time.Duration.String` prints it (zap's `StringDurationEncoder`):
/// `1.909095ms`, `7s`, `1m30s`, `0s`.
pub fn go_duration(d: Duration) -> String {
    let nanos = d.as_nanos();
    if nanos == 0 {
        return "0s".into();
    }
    let trim = |whole: u128, frac: u128, digits: usize, unit: &str| {
        let mut s = format!("{whole}");
        if frac > 0 {
            let f = format!("{frac:0digits$}");
            s.push('.');
            s.push_str(f.trim_end_matches('0'));
        }
        s.push_str(unit);
        s
    };
    if nanos < 1_000 {
        return format!("{nanos}ns");
    }
    if nanos < 1_000_000 {
        return trim(nanos / 1_000, nanos % 1_000, 3, "µs");
    }
    if nanos < 1_000_000_000 {
        return trim(nanos / 1_000_000, nanos % 1_000_000, 6, "ms");
    }
    let secs = nanos / 1_000_000_000;
    let frac = nanos % 1_000_000_000;
    let (h, m, s) = (secs / 3600, (secs / 60) % 60, secs % 60);
    let mut out = String::new();
    if h > 0 {
        let _ = write!(out, "{h}h");
    }
    if h > 0 || m > 0 {
        let _ = write!(out, "{m}m");
    }
    out.push_str(&trim(s, frac, 9, "s"));
    out
}

/// Logs `message` with level `fatal` and the given error text (zap `Fatal` with
/// `zap.Error`), then exits with status 1, as etcd's `lg.Fatal`. The line's `caller` is
/// the caller of this function.
#[track_caller]
pub fn fatal(message: &str, error: &str) -> ! {
    let at = std::panic::Location::caller();
    let caller = short_caller(at.file(), at.line());
    tracing::error!(target: FATAL_TARGET, caller = %caller, error, "{message}");
    std::process::exit(1);
}

/// [`fatal`] for a storage failure (etcd's `lg.Fatal(message, zap.Error(err))` on WAL,
/// backend and snapshot writes): the line also names the file in a `path` field when the
/// error has one (`engine::Error::path`), then the process exits with status 1. Never
/// retried: after a failed write or fdatasync the page cache's state is unknown
/// (DESIGN.md §3).
#[track_caller]
pub fn fatal_storage(message: &str, error: &engine::Error) -> ! {
    let at = std::panic::Location::caller();
    let caller = short_caller(at.file(), at.line());
    let path = error
        .path()
        .map_or_else(String::new, |p| p.display().to_string());
    tracing::error!(
        target: FATAL_TARGET,
        caller = %caller,
        path = %path,
        error = %error,
        "{message}"
    );
    std::process::exit(1);
}

/// A field with this name replaces the line's `caller` instead of being appended
/// (used by [`fatal`] to name its own caller).
const CALLER_FIELD: &str = "caller";

/// One destination of log lines.
enum Output {
    Stderr,
    Stdout,
    File(File),
}

impl Output {
    fn write_line(&mut self, line: &[u8]) {
        // A log line that cannot be written is lost; there is nowhere to report it.
        let _ = match self {
            Output::Stderr => std::io::stderr().lock().write_all(line),
            Output::Stdout => std::io::stdout().lock().write_all(line),
            Output::File(f) => f.write_all(line),
        };
    }
}

/// Opens the `--log-outputs` destinations. Errors name the flag and the value.
fn open_outputs(outputs: &[String]) -> Result<Vec<Output>, String> {
    let outputs: Vec<&str> = if outputs.is_empty() {
        vec![DEFAULT_LOG_OUTPUT]
    } else {
        outputs.iter().map(String::as_str).collect()
    };
    if outputs.len() > 1 && outputs.contains(&DEFAULT_LOG_OUTPUT) {
        // etcd embed/config_logging.go.
        return Err(format!(
            "multi logoutput for {DEFAULT_LOG_OUTPUT:?} is not supported yet"
        ));
    }
    let mut opened = Vec::new();
    for output in outputs {
        opened.push(match output {
            DEFAULT_LOG_OUTPUT | "stderr" => Output::Stderr,
            "stdout" => Output::Stdout,
            path => Output::File(
                OpenOptions::new()
                    .create(true)
                    .append(true)
                    .mode(0o600)
                    .open(path)
                    .map_err(|e| format!("--log-outputs: cannot open {path:?}: {e}"))?,
            ),
        });
    }
    Ok(opened)
}

/// The layer that writes etcd's JSON lines.
pub struct ZapLayer {
    outputs: Mutex<Vec<Output>>,
}

impl<S: Subscriber> Layer<S> for ZapLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let line = format_event(event, SystemTime::now());
        let mut outputs = self.outputs.lock().unwrap_or_else(|e| e.into_inner());
        for output in outputs.iter_mut() {
            output.write_line(line.as_bytes());
        }
    }
}

/// zap's lowercase level name of an event.
fn level_name(event: &Event<'_>) -> &'static str {
    let meta = event.metadata();
    if meta.target() == FATAL_TARGET {
        return "fatal";
    }
    match *meta.level() {
        Level::ERROR => "error",
        Level::WARN => "warn",
        Level::INFO => "info",
        Level::DEBUG | Level::TRACE => "debug",
    }
}

/// zap's `ShortCallerEncoder`: the last folder and the file name, then the line; a
/// crate's `src/` folder is skipped.
fn short_caller(file: &str, line: u32) -> String {
    let mut parts = file.rsplit('/');
    let name = parts.next().unwrap_or(file);
    // A crate's top-level files are named by the crate (`server/runtime.rs`), as zap
    // names Go files by their package folder.
    let dir = match parts.next() {
        Some("src") => parts.next().or(Some("src")),
        other => other,
    };
    match dir {
        Some(dir) => format!("{dir}/{name}:{line}"),
        None => format!("{name}:{line}"),
    }
}

/// One whole line, ending in `\n`, at most [`LINE_BYTES_MAX`] bytes before the newline
/// plus the closing characters.
fn format_event(event: &Event<'_>, now: SystemTime) -> String {
    let meta = event.metadata();
    let mut visitor = FieldsVisitor::default();
    event.record(&mut visitor);
    let mut line = String::with_capacity(256);
    line.push_str("{\"level\":\"");
    line.push_str(level_name(event));
    line.push_str("\",\"ts\":\"");
    line.push_str(&iso8601_local(now));
    line.push_str("\",\"caller\":");
    let caller = visitor
        .caller
        .clone()
        .unwrap_or_else(|| short_caller(meta.file().unwrap_or("?"), meta.line().unwrap_or(0)));
    push_json_str(&mut line, &caller);
    line.push_str(",\"msg\":");
    push_json_str(&mut line, &visitor.message);
    line.push_str(&visitor.fields);
    if line.len() > LINE_BYTES_MAX {
        return format!(
            "{{\"level\":\"{}\",\"ts\":\"{}\",\"caller\":{},\"msg\":{},\"truncated-bytes\":{}}}\n",
            level_name(event),
            iso8601_local(now),
            serde_json::to_string(&caller).unwrap_or_default(),
            serde_json::to_string(&truncate_chars(&visitor.message, LINE_BYTES_MAX / 2))
                .unwrap_or_default(),
            visitor.fields.len()
        );
    }
    line.push_str("}\n");
    line
}

fn truncate_chars(s: &str, bytes_max: usize) -> String {
    if s.len() <= bytes_max {
        return s.to_string();
    }
    let mut cut = bytes_max;
    while !s.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}...", &s[..cut])
}

fn push_json_str(out: &mut String, s: &str) {
    out.push_str(&serde_json::to_string(s).expect("a string serializes"));
}

/// Collects `message` and the other fields, already encoded as `,"key":value`.
#[derive(Default)]
struct FieldsVisitor {
    message: String,
    fields: String,
    caller: Option<String>,
}

impl FieldsVisitor {
    fn key(&mut self, field: &Field) {
        self.fields.push(',');
        push_json_str(&mut self.fields, field.name());
        self.fields.push(':');
    }
    fn string(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message.push_str(value);
            return;
        }
        if field.name() == CALLER_FIELD {
            self.caller = Some(value.to_string());
            return;
        }
        self.key(field);
        match value.strip_prefix(JSON_MARK) {
            Some(raw) => self.fields.push_str(raw),
            None => push_json_str(&mut self.fields, value),
        }
    }
}

impl Visit for FieldsVisitor {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.string(field, &format!("{value:?}"));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.string(field, value);
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.key(field);
        let _ = write!(self.fields, "{value}");
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.key(field);
        let _ = write!(self.fields, "{value}");
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.key(field);
        let _ = write!(self.fields, "{value}");
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.key(field);
        if value.is_finite() {
            let _ = write!(self.fields, "{value}");
        } else {
            let _ = write!(self.fields, "\"{value}\"");
        }
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.string(field, &value.to_string());
    }
}

/// zap's `ISO8601TimeEncoder` in the local zone: `2006-01-02T15:04:05.000Z0700`.
fn iso8601_local(now: SystemTime) -> String {
    let since = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs() as libc::time_t;
    // SAFETY: localtime_r writes only into `tm`, a zeroed struct of the right type.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    let ok = unsafe { !libc::localtime_r(&secs, &mut tm).is_null() };
    if !ok {
        return iso8601(since.as_secs() as i64, since.subsec_millis(), 0);
    }
    let offset = tm.tm_gmtoff;
    iso8601(since.as_secs() as i64, since.subsec_millis(), offset)
}

/// Formats Unix seconds shifted by `offset_secs` east of UTC, with milliseconds.
fn iso8601(unix_secs: i64, millis: u32, offset_secs: i64) -> String {
    let local = unix_secs + offset_secs;
    let days = local.div_euclid(86_400);
    let day_secs = local.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    let zone = if offset_secs == 0 {
        "Z".to_string()
    } else {
        let sign = if offset_secs < 0 { '-' } else { '+' };
        let a = offset_secs.abs();
        format!("{sign}{:02}{:02}", a / 3600, (a / 60) % 60)
    };
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{millis:03}{zone}",
        day_secs / 3600,
        (day_secs / 60) % 60,
        day_secs % 60
    )
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (Howard Hinnant's
/// `civil_from_days`).
pub(crate) fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// Logging settings from the flags.
#[derive(Debug, Clone)]
pub struct LogSettings {
    /// `--logger`: `zap` or `capnslog`.
    pub logger: String,
    /// `--log-outputs`, split at commas.
    pub log_outputs: Vec<String>,
    /// `--log-level` as a `tracing` filter level (`panic`/`fatal` already mapped to
    /// `error` by the flag parser).
    pub log_level: String,
}

/// Installs the global logger. Errors (an output that cannot be opened, `default` mixed
/// with other outputs, a bad `CAIRN_LOG`) come back as text naming the flag; nothing is
/// installed then.
pub fn init(settings: &LogSettings) -> Result<(), String> {
    let outputs = open_outputs(&settings.log_outputs)?;
    let filter = match std::env::var("CAIRN_LOG") {
        Ok(directive) => tracing_subscriber::EnvFilter::try_new(&directive)
            .map_err(|e| format!("CAIRN_LOG={directive:?}: {e}"))?,
        Err(_) => tracing_subscriber::EnvFilter::try_new(&settings.log_level)
            .map_err(|e| format!("--log-level={:?}: {e}", settings.log_level))?,
    };
    let layer = ZapLayer {
        outputs: Mutex::new(outputs),
    };
    tracing_subscriber::registry()
        .with(filter)
        .with(layer)
        .try_init()
        .map_err(|e| format!("cannot install the logger: {e}"))?;
    if settings.logger == "capnslog" {
        tracing::warn!(
            logger = "capnslog",
            "--logger=capnslog is deprecated and not supported by cairn; logging as zap"
        );
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    #[test]
    fn go_durations_print_as_go() {
        assert_eq!(go_duration(Duration::ZERO), "0s");
        assert_eq!(go_duration(Duration::from_nanos(999)), "999ns");
        assert_eq!(go_duration(Duration::from_nanos(1_909_095)), "1.909095ms");
        assert_eq!(go_duration(Duration::from_millis(100)), "100ms");
        assert_eq!(go_duration(Duration::from_micros(1_500)), "1.5ms");
        assert_eq!(go_duration(Duration::from_micros(12)), "12µs");
        assert_eq!(go_duration(Duration::from_secs(1)), "1s");
        assert_eq!(go_duration(Duration::from_secs(7)), "7s");
        assert_eq!(go_duration(Duration::from_millis(1_250)), "1.25s");
        assert_eq!(go_duration(Duration::from_secs(90)), "1m30s");
        assert_eq!(go_duration(Duration::from_secs(3_600)), "1h0m0s");
    }

    #[test]
    fn timestamps_as_zap_iso8601() {
        // 2026-12-01T04:54:44.635Z, the first line etcd 3.4 printed here.
        assert_eq!(iso8601(1_796_100_884, 635, 0), "2026-12-01T04:54:44.635Z");
        assert_eq!(iso8601(0, 7, 8 * 3600), "1970-01-01T08:00:00.007+0800");
        assert_eq!(
            iso8601(0, 0, -(5 * 3600 + 1800)),
            "1969-12-31T18:30:00.000-0530"
        );
        assert_eq!(iso8601(951_782_400, 0, 0), "2000-02-29T00:00:00.000Z");
    }

    #[test]
    fn caller_is_short() {
        assert_eq!(
            short_caller("server/src/cluster/driver.rs", 629),
            "cluster/driver.rs:629"
        );
        assert_eq!(short_caller("server/src/main.rs", 3), "server/main.rs:3");
        assert_eq!(short_caller("src/main.rs", 3), "src/main.rs:3");
        assert_eq!(short_caller("main.rs", 3), "main.rs:3");
    }

    #[test]
    fn default_output_only_alone() {
        let err = open_outputs(&["default".into(), "stdout".into()])
            .err()
            .expect("refused");
        assert_eq!(err, "multi logoutput for \"default\" is not supported yet");
        assert_eq!(open_outputs(&[]).expect("stderr").len(), 1);
        let err = open_outputs(&["/nonexistent-dir/x.log".into()])
            .err()
            .expect("refused");
        assert!(err.starts_with("--log-outputs: cannot open"), "{err}");
    }

    /// Formats events through a scoped subscriber that captures lines.
    pub(crate) fn capture(f: impl FnOnce()) -> Vec<(String, serde_json::Value)> {
        use std::sync::Arc;
        #[derive(Clone, Default)]
        struct Lines(Arc<Mutex<Vec<String>>>);
        impl<S: Subscriber> Layer<S> for Lines {
            fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
                let line = format_event(event, SystemTime::now());
                self.0.lock().unwrap().push(line);
            }
        }
        let lines = Lines::default();
        let subscriber = tracing_subscriber::registry().with(lines.clone());
        tracing::subscriber::with_default(subscriber, f);
        let lines = lines.0.lock().unwrap().clone();
        lines
            .iter()
            .map(|l| {
                assert!(l.ends_with("}\n"), "{l:?}");
                assert_eq!(l.matches('\n').count(), 1, "{l:?}");
                let value = serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}"));
                (l.clone(), value)
            })
            .collect()
    }

    #[test]
    fn lines_are_zap_json_in_order() {
        let urls = vec!["http://127.0.0.1:2380".to_string()];
        let lines = capture(|| {
            tracing::info!(
                "local-member-id" = "bdae9bbc11dd390d",
                "forward-ticks" = 9u64,
                "is-learner" = false,
                "listen-peer-urls" = %json(&urls),
                "quote\"d" = "a\nb",
                "started as single-node"
            );
            tracing::error!(
                target: FATAL_TARGET,
                caller = "embed/etcd.go:227",
                error = "boom",
                "discovery failed"
            );
        });
        assert_eq!(lines.len(), 2);
        let first = &lines[0].1;
        let raw = &lines[0].0;
        let positions: Vec<usize> = [
            "level",
            "ts",
            "caller",
            "msg",
            "local-member-id",
            "forward-ticks",
            "is-learner",
            "listen-peer-urls",
            "quote\\\"d",
        ]
        .iter()
        .map(|k| {
            raw.find(&format!("\"{k}\":"))
                .unwrap_or_else(|| panic!("{k} in {raw}"))
        })
        .collect();
        assert!(positions.windows(2).all(|w| w[0] < w[1]), "{raw}");
        assert!(raw.starts_with("{\"level\":\"info\",\"ts\":\""), "{raw}");
        assert_eq!(first.as_object().unwrap().len(), positions.len());
        assert_eq!(first["level"], "info");
        assert_eq!(first["msg"], "started as single-node");
        assert_eq!(first["forward-ticks"], 9);
        assert_eq!(first["is-learner"], false);
        assert_eq!(first["listen-peer-urls"][0], "http://127.0.0.1:2380");
        assert_eq!(first["quote\"d"], "a\nb");
        assert!(first["caller"].as_str().unwrap().contains("logging.rs:"));
        let ts = first["ts"].as_str().unwrap();
        assert_eq!(ts.len(), "2026-12-01T04:54:44.635".len() + 1, "{ts}");
        assert_eq!(lines[1].1["level"], "fatal");
        assert_eq!(lines[1].1["caller"], "embed/etcd.go:227");
        assert_eq!(lines[1].0.matches("\"caller\"").count(), 1);
        assert_eq!(lines[1].1["error"], "boom");
    }

    #[test]
    fn long_lines_are_cut() {
        let big = "x".repeat(LINE_BYTES_MAX * 2);
        let lines = capture(|| tracing::warn!(request = %big, "apply request took too long"));
        assert_eq!(lines[0].1["msg"], "apply request took too long");
        assert!(lines[0].1["truncated-bytes"].as_u64().unwrap() > LINE_BYTES_MAX as u64);
    }
}
