//! The report of a mixed run: per-RPC latency percentiles, watch event accounting,
//! the pass/fail verdict, as markdown or JSON.

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::stats::us_to_ms;
use crate::watch::PrefixMode;

/// Count, errors and latency percentiles of one RPC type (or of put→event).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OpReport {
    /// [`Op::name`](super::Op::name), or `put→event` for the watch latency.
    pub op: String,
    /// Successful requests (events measured, for put→event).
    pub count: u64,
    /// Failed or timed-out requests (stream failures, for put→event).
    pub errors: u64,
    /// Median latency, ms.
    pub p50_ms: f64,
    /// 99th percentile latency, ms.
    pub p99_ms: f64,
    /// 99.9th percentile latency, ms.
    pub p999_ms: f64,
    /// 99.99th percentile latency, ms.
    pub p9999_ms: f64,
    /// Largest latency, ms.
    pub max_ms: f64,
    /// The first error's text.
    pub first_error: Option<String>,
}

impl OpReport {
    /// Percentiles of `histogram` (µs); an empty histogram gives zeros.
    pub fn from_histogram(
        op: &str,
        histogram: &Histogram<u64>,
        errors: u64,
        first_error: Option<String>,
    ) -> OpReport {
        let q = |quantile: f64| {
            if histogram.is_empty() {
                0.0
            } else {
                us_to_ms(histogram.value_at_quantile(quantile))
            }
        };
        OpReport {
            op: op.to_string(),
            count: histogram.len(),
            errors,
            p50_ms: q(0.50),
            p99_ms: q(0.99),
            p999_ms: q(0.999),
            p9999_ms: q(0.9999),
            max_ms: if histogram.is_empty() {
                0.0
            } else {
                us_to_ms(histogram.max())
            },
            first_error,
        }
    }

    /// One markdown table row.
    fn markdown_row(&self) -> String {
        format!(
            "| {} | {} | {} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} |\n",
            self.op,
            self.count,
            self.errors,
            self.p50_ms,
            self.p99_ms,
            self.p999_ms,
            self.p9999_ms,
            self.max_ms
        )
    }
}

/// What the watchers saw.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WatchEventReport {
    /// Watchers held.
    pub watchers: u32,
    /// Streams holding them.
    pub streams: u32,
    /// Prefix mode.
    pub mode: PrefixMode,
    /// Events received (puts and deletes).
    pub events_received: u64,
    /// Events the acknowledged puts must cause.
    pub events_expected_min: u64,
    /// Events that every put and revoke sent (failed ones included) could cause.
    pub events_expected_max: u64,
    /// Put→event latency of the put events (`count`: events measured; `errors`: watch
    /// streams that failed or were canceled).
    pub latency: OpReport,
}

impl WatchEventReport {
    /// Expected events that never arrived (a lower bound on lost events).
    pub fn events_missing(&self) -> u64 {
        self.events_expected_min
            .saturating_sub(self.events_received)
    }
}

/// The result of a mixed run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MixedReport {
    /// Wall-clock time from the first request to the last answer, s.
    pub elapsed_s: f64,
    /// Clients.
    pub clients: u32,
    /// Connections.
    pub conns: u32,
    /// The mix, as `--mix` spells it.
    pub mix: String,
    /// Per RPC type, in [`Op::ALL`](super::Op::ALL) order.
    pub ops: Vec<OpReport>,
    /// Watch events; `None` without watchers.
    pub watch: Option<WatchEventReport>,
    /// The p99.99 limit checked, ms.
    pub max_p9999_ms: Option<f64>,
    /// Client tasks that panicked.
    pub task_errors: Vec<String>,
}

impl MixedReport {
    /// Successful requests of every type.
    pub fn requests(&self) -> u64 {
        self.ops.iter().map(|op| op.count).sum()
    }

    /// Failed requests of every type.
    pub fn errors(&self) -> u64 {
        self.ops.iter().map(|op| op.errors).sum()
    }

    /// The RPC type with the highest p99.99 (ties: the first), `None` if nothing
    /// succeeded.
    pub fn worst_p9999(&self) -> Option<&OpReport> {
        self.ops
            .iter()
            .filter(|op| op.count > 0)
            .reduce(|worst, op| {
                if op.p9999_ms > worst.p9999_ms {
                    op
                } else {
                    worst
                }
            })
    }

    /// Why the run fails, one line each; empty when it passes. Failures: any request
    /// error, any watch stream failure, missing watch events, a panicked client, a
    /// p99.99 above [`MixedReport::max_p9999_ms`].
    pub fn failures(&self) -> Vec<String> {
        let mut failures = Vec::new();
        for op in self.ops.iter().filter(|op| op.errors > 0) {
            failures.push(format!(
                "{}: {} errors, first: {}",
                op.op,
                op.errors,
                op.first_error.as_deref().unwrap_or("?")
            ));
        }
        if let Some(watch) = &self.watch {
            if watch.latency.errors > 0 {
                failures.push(format!(
                    "watch: {} stream failures, first: {}",
                    watch.latency.errors,
                    watch.latency.first_error.as_deref().unwrap_or("?")
                ));
            }
            if watch.events_missing() > 0 {
                failures.push(format!(
                    "watch: {} of at least {} expected events missing",
                    watch.events_missing(),
                    watch.events_expected_min
                ));
            }
        }
        failures.extend(self.task_errors.iter().cloned());
        if let Some(max) = self.max_p9999_ms {
            for op in self.ops.iter().filter(|op| op.p9999_ms > max) {
                failures.push(format!(
                    "{}: p99.99 {:.3} ms is above --max-p9999-ms {max}",
                    op.op, op.p9999_ms
                ));
            }
        }
        failures
    }

    /// The markdown report: a header line, the table (one row per RPC type and one
    /// for put→event), totals, watch event counts and the verdict on the limit.
    pub fn to_markdown(&self) -> String {
        let mut out = format!(
            "mixed: {:.1} s, {} clients over {} connections, mix {}\n\n\
             | op | count | errors | p50 ms | p99 ms | p99.9 ms | p99.99 ms | max ms |\n\
             |---|---:|---:|---:|---:|---:|---:|---:|\n",
            self.elapsed_s, self.clients, self.conns, self.mix
        );
        for op in &self.ops {
            out.push_str(&op.markdown_row());
        }
        if let Some(watch) = &self.watch {
            out.push_str(&watch.latency.markdown_row());
        }
        let rate = if self.elapsed_s > 0.0 {
            self.requests() as f64 / self.elapsed_s
        } else {
            0.0
        };
        out.push_str(&format!(
            "\nrequests: {} ok, {} errors ({rate:.0} ok/s)\n",
            self.requests(),
            self.errors()
        ));
        if let Some(watch) = &self.watch {
            out.push_str(&format!(
                "watch: {} watchers ({} prefixes) on {} streams; events received {}, \
                 expected {}..={}\n",
                watch.watchers,
                watch.mode.name(),
                watch.streams,
                watch.events_received,
                watch.events_expected_min,
                watch.events_expected_max
            ));
        }
        if let Some(worst) = self.worst_p9999() {
            out.push_str(&format!(
                "worst p99.99: {:.3} ms ({})",
                worst.p9999_ms, worst.op
            ));
            match self.max_p9999_ms {
                Some(max) if worst.p9999_ms > max => out.push_str(&format!(", above {max} ms")),
                Some(max) => out.push_str(&format!(", within {max} ms")),
                None => {}
            }
            out.push('\n');
        }
        for failure in self.failures() {
            out.push_str(&format!("FAIL {failure}\n"));
        }
        out
    }

    /// The report as one JSON object (latencies in ms), with a `failures` array.
    pub fn to_json(&self) -> String {
        #[derive(Serialize)]
        struct Json<'a> {
            #[serde(flatten)]
            report: &'a MixedReport,
            failures: Vec<String>,
        }
        serde_json::to_string(&Json {
            report: self,
            failures: self.failures(),
        })
        .expect("report serializes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::{new_latency_histogram, record_latency_us};

    fn op(name: &str, count: u64, errors: u64, p9999_ms: f64) -> OpReport {
        OpReport {
            op: name.into(),
            count,
            errors,
            p50_ms: 1.0,
            p99_ms: 2.0,
            p999_ms: 3.0,
            p9999_ms,
            max_ms: p9999_ms + 1.0,
            first_error: (errors > 0).then(|| "timed out after 10s".to_string()),
        }
    }

    fn report() -> MixedReport {
        MixedReport {
            elapsed_s: 10.0,
            clients: 100,
            conns: 10,
            mix: "put=45,range=45,lease=10".into(),
            ops: vec![op("put", 900, 0, 12.5), op("range", 100, 0, 4.25)],
            watch: Some(WatchEventReport {
                watchers: 1000,
                streams: 10,
                mode: PrefixMode::Distinct,
                events_received: 900,
                events_expected_min: 900,
                events_expected_max: 900,
                latency: op("put→event", 900, 0, 20.0),
            }),
            max_p9999_ms: Some(100.0),
            task_errors: vec![],
        }
    }

    #[test]
    fn percentiles_from_histogram() {
        let mut h = new_latency_histogram();
        for us in 1..=10_000 {
            record_latency_us(&mut h, us);
        }
        let r = OpReport::from_histogram("put", &h, 2, Some("boom".into()));
        assert_eq!(r.count, 10_000);
        assert_eq!(r.errors, 2);
        // 3 significant digits: values round up to their bucket's highest value.
        assert_eq!(r.p50_ms, 5.003);
        assert_eq!(r.p99_ms, 9.903);
        assert_eq!(r.p999_ms, 9.991);
        assert_eq!(r.p9999_ms, 9.999);
        assert_eq!(r.max_ms, 10.007);
        let empty = OpReport::from_histogram("range", &new_latency_histogram(), 0, None);
        assert_eq!((empty.count, empty.p9999_ms, empty.max_ms), (0, 0.0, 0.0));
    }

    #[test]
    fn passing_report_renders_as_markdown() {
        let r = report();
        assert_eq!(r.requests(), 1000);
        assert_eq!(r.errors(), 0);
        assert_eq!(r.worst_p9999().unwrap().op, "put");
        assert!(r.failures().is_empty());
        assert_eq!(
            r.to_markdown(),
            "mixed: 10.0 s, 100 clients over 10 connections, mix put=45,range=45,lease=10\n\
             \n\
             | op | count | errors | p50 ms | p99 ms | p99.9 ms | p99.99 ms | max ms |\n\
             |---|---:|---:|---:|---:|---:|---:|---:|\n\
             | put | 900 | 0 | 1.000 | 2.000 | 3.000 | 12.500 | 13.500 |\n\
             | range | 100 | 0 | 1.000 | 2.000 | 3.000 | 4.250 | 5.250 |\n\
             | put→event | 900 | 0 | 1.000 | 2.000 | 3.000 | 20.000 | 21.000 |\n\
             \n\
             requests: 1000 ok, 0 errors (100 ok/s)\n\
             watch: 1000 watchers (distinct prefixes) on 10 streams; events received 900, \
             expected 900..=900\n\
             worst p99.99: 12.500 ms (put), within 100 ms\n"
        );
    }

    #[test]
    fn failures_are_listed() {
        let mut r = report();
        r.ops.push(op("lease-grant", 10, 1, 150.0));
        r.ops.push(op("lease-put", 0, 0, 0.0));
        if let Some(watch) = &mut r.watch {
            watch.events_received = 890;
            watch.latency.errors = 1;
            watch.latency.first_error = Some("watch stream closed by the server".into());
        }
        r.task_errors.push("client task failed: panic".into());
        assert_eq!(r.worst_p9999().unwrap().op, "lease-grant");
        assert_eq!(
            r.failures(),
            vec![
                "lease-grant: 1 errors, first: timed out after 10s",
                "watch: 1 stream failures, first: watch stream closed by the server",
                "watch: 10 of at least 900 expected events missing",
                "client task failed: panic",
                "lease-grant: p99.99 150.000 ms is above --max-p9999-ms 100",
            ]
        );
        let text = r.to_markdown();
        assert!(text.contains("worst p99.99: 150.000 ms (lease-grant), above 100 ms\n"));
        assert!(text.ends_with("FAIL lease-grant: p99.99 150.000 ms is above --max-p9999-ms 100\n"));
        // Without a limit only the errors fail the run.
        r.max_p9999_ms = None;
        assert_eq!(r.failures().len(), 4);
    }

    #[test]
    fn json_has_every_field_and_the_failures() {
        let mut r = report();
        r.watch = None;
        let v: serde_json::Value = serde_json::from_str(&r.to_json()).unwrap();
        assert_eq!(v["clients"], 100);
        assert_eq!(v["ops"][0]["op"], "put");
        assert_eq!(v["ops"][0]["p9999_ms"], 12.5);
        assert_eq!(v["ops"][1]["count"], 100);
        assert_eq!(v["watch"], serde_json::Value::Null);
        assert_eq!(v["max_p9999_ms"], 100.0);
        assert_eq!(v["failures"], serde_json::json!([]));
        r.max_p9999_ms = Some(10.0);
        let v: serde_json::Value = serde_json::from_str(&r.to_json()).unwrap();
        assert_eq!(
            v["failures"][0],
            "put: p99.99 12.500 ms is above --max-p9999-ms 10"
        );
    }
}
