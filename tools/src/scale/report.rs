//! The markdown table of a scale run.

use super::*;

fn format_probe(puts: &ProbePuts) -> String {
    format!("{:.2} / {:.2} ({})", puts.p99_ms, puts.max_ms, puts.puts)
}

fn format_restart(restart: Option<&RestartReport>) -> String {
    match restart {
        None => "-".into(),
        Some(r) => format!(
            "{:.2} ({:.2}){}",
            r.restart_s,
            r.ports_free_s,
            if r.read_found_key {
                ""
            } else {
                ", key missing"
            }
        ),
    }
}

/// A row of the markdown table: its label and how one server's cell is written.
type TableRow = (&'static str, fn(&ScaleResult) -> String);

/// The report as markdown: one line naming the parameters, a table with one column per
/// server, then a line per problem (failed puts, a failed range, a server left out).
pub fn render_scale_markdown(report: &ScaleReport) -> String {
    let mut out = format!(
        "{} keys `/scale/%012d` of {} random bytes, loaded by {} clients over {} \
         connections; one member on loopback, --quota-backend-bytes {} --snapshot-count {}. \
         Restart: spawn to the first answered linearizable Range, after the ports were free \
         again; max sent at: when the slowest put was sent, s after the range.\n\n",
        report.keys,
        report.value_bytes,
        report.clients,
        report.connections,
        report.quota_backend_bytes,
        report.snapshot_count
    );
    let servers = &report.servers;
    out.push_str("| |");
    for server in servers {
        out.push_str(&format!(" {} |", server.target));
    }
    out.push_str("\n|---|");
    out.push_str(&"---:|".repeat(servers.len()));
    out.push('\n');
    let rows: [TableRow; 13] = [
        ("keys loaded", |s| s.keys_loaded.to_string()),
        ("load puts/s", |s| format!("{:.0}", s.load_puts_s)),
        ("load s", |s| format!("{:.1}", s.load_s)),
        ("load p50 / p99 / p99.9 / max ms", |s| {
            format!(
                "{:.2} / {:.2} / {:.2} / {:.2}",
                s.load_p50_ms, s.load_p99_ms, s.load_p999_ms, s.load_max_ms
            )
        }),
        ("RSS anon after load MiB", |s| {
            format!("{:.0}", s.rss_anon_after_load_mib)
        }),
        ("disk MiB, allocated / apparent", |s| {
            format!("{:.0} / {:.0}", s.disk_allocated_mib, s.disk_apparent_mib)
        }),
        ("full-prefix range s / response MiB", |s| {
            match &s.range.error {
                None => format!(
                    "{:.2} / {:.0}",
                    s.range.duration_s,
                    mib(s.range.response_bytes)
                ),
                Some(_) => format!("failed after {:.2} s", s.range.duration_s),
            }
        }),
        (
            "1-client put p99 / max ms during range (puts; max sent at s)",
            |s| {
                let puts = &s.put_during_range;
                format!(
                    "{:.2} / {:.2} ({}; {:.2})",
                    puts.p99_ms, puts.max_ms, puts.puts, puts.max_sent_at_s
                )
            },
        ),
        ("1-client put p99 / max ms, no range (puts)", |s| {
            format_probe(&s.baseline_put)
        }),
        ("peak RSS anon above idle during range MiB", |s| {
            format!("{:.0}", s.rss_anon_peak_above_idle_mib())
        }),
        ("stop s (SIGTERM to exit)", |s| {
            s.restart_sigterm
                .stop_s
                .map_or_else(|| "-".into(), |stop| format!("{stop:.2}"))
        }),
        ("restart s after SIGTERM (ports free after s)", |s| {
            format_restart(Some(&s.restart_sigterm))
        }),
        ("restart s after kill -9 (ports free after s)", |s| {
            format_restart(s.restart_kill9.as_ref())
        }),
    ];
    for (label, cell) in rows {
        out.push_str(&format!("| {label} |"));
        for server in servers {
            out.push_str(&format!(" {} |", cell(server)));
        }
        out.push('\n');
    }
    for s in servers {
        if s.load_errors > 0 || s.load_skipped > 0 {
            out.push_str(&format!(
                "\nwarning: {}: {} load puts failed, {} skipped; first error: {}\n",
                s.target,
                s.load_errors,
                s.load_skipped,
                s.load_first_error.as_deref().unwrap_or("-")
            ));
        }
        if let Some(error) = &s.range.error {
            out.push_str(&format!("\nwarning: {}: range failed: {error}\n", s.target));
        }
        for (window, puts) in [
            ("baseline", &s.baseline_put),
            ("range", &s.put_during_range),
        ] {
            if puts.errors > 0 {
                out.push_str(&format!(
                    "\nwarning: {}: {} probe puts failed during the {window}; first error: {}\n",
                    s.target,
                    puts.errors,
                    puts.first_error.as_deref().unwrap_or("-")
                ));
            }
        }
    }
    for reason in &report.skipped {
        out.push_str(&format!("\nnot measured: {reason}\n"));
    }
    out
}
