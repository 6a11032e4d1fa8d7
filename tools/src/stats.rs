//! Latency histograms and the run summary printed by every load subcommand.

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::error::{invalid, Result};

/// Largest latency a histogram records, in µs (60 s); slower requests saturate to it.
pub const LATENCY_US_MAX: u64 = 60_000_000;
/// Significant decimal digits the latency histograms keep (3 → 0.1 % resolution).
pub const LATENCY_SIGFIGS: u8 = 3;

/// A new, empty latency histogram over 1 µs ..= [`LATENCY_US_MAX`] µs.
pub fn new_latency_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, LATENCY_US_MAX, LATENCY_SIGFIGS)
        .expect("constant histogram bounds are valid")
}

/// Records one latency in µs; 0 is stored as 1 µs and values above
/// [`LATENCY_US_MAX`] as the maximum, so recording never fails.
pub fn record_latency_us(histogram: &mut Histogram<u64>, latency_us: u64) {
    histogram.saturating_record(latency_us.clamp(1, LATENCY_US_MAX));
}

/// Formats a duration given in µs as milliseconds with exactly three decimals,
/// e.g. `1234` → `"1.234"`, `5` → `"0.005"`. Exact: no floating point involved.
pub fn format_ms(latency_us: u64) -> String {
    format!("{}.{:03}", latency_us / 1000, latency_us % 1000)
}

/// Converts µs to ms as a float for JSON output (`1234` → `1.234`).
pub fn us_to_ms(latency_us: u64) -> f64 {
    latency_us as f64 / 1000.0
}

/// The result of one load run. Latencies count successful requests only, in µs.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    /// The operation measured: "put", "range", "range-serializable", "txn-put", ... ([`crate::Workload::name`]).
    pub op: String,
    /// Requests that succeeded.
    pub ops: u64,
    /// Requests that failed or timed out.
    pub errors: u64,
    /// Requests never sent because the run hit its duration limit.
    pub skipped: u64,
    /// Wall-clock time of the run in µs, from the first request to the last answer.
    pub elapsed_us: u64,
    /// Median latency, µs.
    pub p50_us: u64,
    /// 90th percentile latency, µs.
    pub p90_us: u64,
    /// 99th percentile latency, µs.
    pub p99_us: u64,
    /// 99.9th percentile latency, µs.
    pub p999_us: u64,
    /// Largest latency seen, µs.
    pub max_us: u64,
    /// Mean latency, µs (rounded down).
    pub mean_us: u64,
    /// The first error's text, if any request failed.
    pub first_error: Option<String>,
}

/// The JSON shape of a [`Summary`]: latencies in ms, throughput in ops/s.
#[derive(Debug, Serialize)]
pub(crate) struct SummaryJson<'a> {
    op: &'a str,
    ops: u64,
    errors: u64,
    skipped: u64,
    elapsed_s: f64,
    throughput_ops_s: f64,
    p50_ms: f64,
    p90_ms: f64,
    p99_ms: f64,
    p999_ms: f64,
    max_ms: f64,
    mean_ms: f64,
    first_error: Option<&'a str>,
}

impl Summary {
    /// Builds a summary from the merged histogram of successful requests.
    ///
    /// `histogram.len()` must equal `ops`; an empty histogram gives all-zero latencies.
    pub fn from_histogram(
        op: &str,
        histogram: &Histogram<u64>,
        errors: u64,
        skipped: u64,
        elapsed_us: u64,
        first_error: Option<String>,
    ) -> Summary {
        let empty = histogram.is_empty();
        let q = |quantile: f64| {
            if empty {
                0
            } else {
                histogram.value_at_quantile(quantile)
            }
        };
        Summary {
            op: op.to_string(),
            ops: histogram.len(),
            errors,
            skipped,
            elapsed_us,
            p50_us: q(0.50),
            p90_us: q(0.90),
            p99_us: q(0.99),
            p999_us: q(0.999),
            max_us: if empty { 0 } else { histogram.max() },
            mean_us: if empty { 0 } else { histogram.mean() as u64 },
            first_error,
        }
    }

    /// Successful requests per second of wall-clock time; 0 when nothing was timed.
    pub fn throughput_ops_s(&self) -> f64 {
        if self.elapsed_us == 0 {
            return 0.0;
        }
        self.ops as f64 * 1_000_000.0 / self.elapsed_us as f64
    }

    /// The human-readable report: three lines (plus one naming the first error).
    pub fn to_text(&self) -> String {
        let mut text = format!(
            "{}: {} ok, {} errors, {} skipped in {} s\n\
             throughput: {:.1} ops/s\n\
             latency ms: p50 {}  p90 {}  p99 {}  p99.9 {}  max {}  mean {}\n",
            self.op,
            self.ops,
            self.errors,
            self.skipped,
            format_ms(self.elapsed_us / 1000),
            self.throughput_ops_s(),
            format_ms(self.p50_us),
            format_ms(self.p90_us),
            format_ms(self.p99_us),
            format_ms(self.p999_us),
            format_ms(self.max_us),
            format_ms(self.mean_us),
        );
        if let Some(error) = &self.first_error {
            text.push_str(&format!("first error: {error}\n"));
        }
        text
    }

    /// The same report as one JSON object (latencies in ms, `elapsed_s` in seconds).
    pub fn to_json(&self) -> String {
        serde_json::to_string(&self.json_fields()).expect("summary serializes")
    }

    /// The fields of [`Summary::to_json`], for reports that add their own.
    pub(crate) fn json_fields(&self) -> SummaryJson<'_> {
        SummaryJson {
            op: &self.op,
            ops: self.ops,
            errors: self.errors,
            skipped: self.skipped,
            elapsed_s: self.elapsed_us as f64 / 1_000_000.0,
            throughput_ops_s: self.throughput_ops_s(),
            p50_ms: us_to_ms(self.p50_us),
            p90_ms: us_to_ms(self.p90_us),
            p99_ms: us_to_ms(self.p99_us),
            p999_ms: us_to_ms(self.p999_us),
            max_ms: us_to_ms(self.max_us),
            mean_ms: us_to_ms(self.mean_us),
            first_error: self.first_error.as_deref(),
        }
    }
}

/// Parses a comma-separated list of client counts such as `1,100` (flag `--clients`
/// of `compare`). Each must be in `1..=clients_max`; the list must not be empty.
pub fn parse_clients_list(text: &str, clients_max: u32) -> Result<Vec<u32>> {
    let mut list = Vec::new();
    for part in text.split(',') {
        let part = part.trim();
        let clients: u32 = part
            .parse()
            .map_err(|_| invalid("clients", format!("{part:?} is not a number")))?;
        if clients == 0 || clients > clients_max {
            return Err(invalid(
                "clients",
                format!("{clients} is outside 1..={clients_max}"),
            ));
        }
        list.push(clients);
    }
    Ok(list)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_ms_is_exact() {
        assert_eq!(format_ms(0), "0.000");
        assert_eq!(format_ms(5), "0.005");
        assert_eq!(format_ms(999), "0.999");
        assert_eq!(format_ms(1000), "1.000");
        assert_eq!(format_ms(1234), "1.234");
        assert_eq!(format_ms(60_000_000), "60000.000");
    }

    #[test]
    fn record_clamps_to_bounds() {
        let mut h = new_latency_histogram();
        record_latency_us(&mut h, 0);
        record_latency_us(&mut h, LATENCY_US_MAX * 10);
        assert_eq!(h.len(), 2);
        assert_eq!(h.min(), 1);
        assert!(h.equivalent(h.max(), LATENCY_US_MAX));
    }

    #[test]
    fn summary_percentiles_of_1_to_1000() {
        let mut h = new_latency_histogram();
        for us in 1..=1000 {
            record_latency_us(&mut h, us);
        }
        // Values below 2048 are stored exactly with 3 significant digits.
        let s = Summary::from_histogram("put", &h, 2, 0, 2_000_000, None);
        assert_eq!(s.ops, 1000);
        assert_eq!(s.errors, 2);
        assert_eq!(s.p50_us, 500);
        assert_eq!(s.p90_us, 900);
        assert_eq!(s.p99_us, 990);
        assert_eq!(s.p999_us, 999);
        assert_eq!(s.max_us, 1000);
        assert_eq!(s.mean_us, 500);
        assert_eq!(s.throughput_ops_s(), 500.0);
    }

    #[test]
    fn summary_text_and_json() {
        let mut h = new_latency_histogram();
        // Below 2048 µs the histogram is exact; above, values round up to their bucket.
        for us in [500, 1000, 1500, 2000] {
            record_latency_us(&mut h, us);
        }
        let s = Summary::from_histogram("put", &h, 1, 0, 4_000, Some("boom".into()));
        assert_eq!(
            s.to_text(),
            "put: 4 ok, 1 errors, 0 skipped in 0.004 s\n\
             throughput: 1000.0 ops/s\n\
             latency ms: p50 1.000  p90 2.000  p99 2.000  p99.9 2.000  max 2.000  mean 1.250\n\
             first error: boom\n"
        );
        let v: serde_json::Value = serde_json::from_str(&s.to_json()).unwrap();
        assert_eq!(v["op"], "put");
        assert_eq!(v["ops"], 4);
        assert_eq!(v["errors"], 1);
        assert_eq!(v["throughput_ops_s"], 1000.0);
        assert_eq!(v["p50_ms"], 1.0);
        assert_eq!(v["p99_ms"], 2.0);
        assert_eq!(v["mean_ms"], 1.25);
        assert_eq!(v["elapsed_s"], 0.004);
        assert_eq!(v["first_error"], "boom");
    }

    #[test]
    fn empty_summary_is_zero() {
        let h = new_latency_histogram();
        let s = Summary::from_histogram("range", &h, 3, 0, 0, None);
        assert_eq!(s.ops, 0);
        assert_eq!(s.p50_us, 0);
        assert_eq!(s.max_us, 0);
        assert_eq!(s.throughput_ops_s(), 0.0);
    }

    #[test]
    fn clients_list_parses_and_validates() {
        assert_eq!(parse_clients_list("1,100", 1000).unwrap(), vec![1, 100]);
        assert_eq!(parse_clients_list(" 8 ", 1000).unwrap(), vec![8]);
        let e = parse_clients_list("1,0", 1000).unwrap_err().to_string();
        assert_eq!(e, "invalid --clients: 0 is outside 1..=1000");
        let e = parse_clients_list("1,x", 1000).unwrap_err().to_string();
        assert_eq!(e, "invalid --clients: \"x\" is not a number");
        assert!(parse_clients_list("", 1000).is_err());
    }
}
