//! Charts of a [`MatrixReport`] with `plotters`, as PNG (bitmap backend, text through
//! ab_glyph with the Ubuntu Light TTF embedded by `epaint_default_fonts`, so no system
//! fontconfig is needed) and SVG (text as `<text>` elements).
//!
//! `latency.{png,svg}`: one panel per workload, each target's median latency at p50,
//! p90, p99, p99.9 and max (ms; the points a workload measures), side by side.
//! `throughput.{png,svg}`: median ops/s (events/s for the watch workloads) per workload
//! and target as bars, with min–max whiskers over the rounds.

use std::path::{Path, PathBuf};
use std::sync::Once;

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::error::{BenchError, Result};
use crate::matrix::MatrixReport;

/// Chart size, pixels (SVG units for the SVG files).
pub const CHART_SIZE: (u32, u32) = (1200, 700);
/// Latency points of a curve: (metric key, axis label).
pub const LATENCY_POINTS: [(&str, &str); 5] = [
    ("p50_ms", "p50"),
    ("p90_ms", "p90"),
    ("p99_ms", "p99"),
    ("p999_ms", "p99.9"),
    ("max_ms", "max"),
];

static FONT: Once = Once::new();

/// Registers the embedded TTF as the "sans-serif" family (once per process).
fn register_font() {
    FONT.call_once(|| {
        let _ = plotters::style::register_font(
            "sans-serif",
            FontStyle::Normal,
            epaint_default_fonts::UBUNTU_LIGHT,
        );
    });
}

fn chart_error(what: &str, e: impl std::fmt::Debug) -> BenchError {
    BenchError::Request(format!("chart {what}: {e:?}"))
}

/// Writes `latency.png`, `latency.svg`, `throughput.png`, `throughput.svg` into
/// `out_dir` (created if missing) and returns their paths.
///
/// Errors: [`BenchError::Io`] for the directory, [`BenchError::Request`] naming the
/// chart when drawing or encoding fails.
pub fn write_charts(report: &MatrixReport, out_dir: &Path) -> Result<Vec<PathBuf>> {
    register_font();
    std::fs::create_dir_all(out_dir).map_err(|source| BenchError::Io {
        op: "create",
        path: out_dir.to_path_buf(),
        source,
    })?;
    let mut written = Vec::new();
    for name in ["latency", "throughput"] {
        let png = out_dir.join(format!("{name}.png"));
        {
            let root = BitMapBackend::new(&png, CHART_SIZE).into_drawing_area();
            draw(name, &root, report).map_err(|e| chart_error(name, e))?;
            root.present().map_err(|e| chart_error(name, e))?;
        }
        let svg = out_dir.join(format!("{name}.svg"));
        {
            let root = SVGBackend::new(&svg, CHART_SIZE).into_drawing_area();
            draw(name, &root, report).map_err(|e| chart_error(name, e))?;
            root.present().map_err(|e| chart_error(name, e))?;
        }
        written.push(png);
        written.push(svg);
    }
    Ok(written)
}

/// Draws chart `name` ("latency" or "throughput") on any backend.
fn draw<DB: DrawingBackend>(
    name: &str,
    root: &DrawingArea<DB, Shift>,
    report: &MatrixReport,
) -> std::result::Result<(), String> {
    match name {
        "latency" => draw_latency(root, report),
        _ => draw_throughput(root, report),
    }
}

fn target_color(index: usize) -> RGBColor {
    const COLORS: [RGBColor; 4] = [
        RGBColor(0x1f, 0x77, 0xb4),
        RGBColor(0xd6, 0x27, 0x28),
        RGBColor(0x2c, 0xa0, 0x2c),
        RGBColor(0x94, 0x67, 0xbd),
    ];
    COLORS[index % COLORS.len()]
}

/// One target's curve: (target index, name, (point index, median ms) points).
type Curve<'a> = (usize, &'a String, Vec<(f64, f64)>);

/// One panel per workload: each target's median latency curve.
fn draw_latency<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    report: &MatrixReport,
) -> std::result::Result<(), String> {
    let e = |e: DrawingAreaErrorKind<DB::ErrorType>| format!("{e:?}");
    root.fill(&WHITE).map_err(e)?;
    let title = format!(
        "latency (median of {} rounds, {} member(s))",
        report.rounds, report.members
    );
    let root = root.titled(&title, ("sans-serif", 24)).map_err(e)?;
    let n = report.workloads.len().max(1);
    let cols = n.min(4);
    let rows = n.div_ceil(cols);
    let panels = root.split_evenly((rows, cols));
    for (workload, panel) in report.workloads.iter().zip(panels.iter()) {
        let curves: Vec<Curve<'_>> = report
            .targets
            .iter()
            .enumerate()
            .map(|(t, target)| {
                let points = LATENCY_POINTS
                    .iter()
                    .enumerate()
                    .filter_map(|(i, (key, _))| {
                        report
                            .spread(workload, key, target)
                            .map(|s| (i as f64, s.median))
                    })
                    .collect();
                (t, target, points)
            })
            .collect();
        let y_max = curves
            .iter()
            .flat_map(|(_, _, p)| p.iter().map(|(_, y)| *y))
            .fold(0.0f64, f64::max)
            .max(0.001)
            * 1.1;
        // watch: watch creation latency; watch-latency: put→event latency.
        let caption = match crate::matrix::metric_label(workload, "p50_ms").split_once(' ') {
            Some((kind @ ("create" | "event"), _)) => format!("{workload} ({kind} latency)"),
            _ => workload.clone(),
        };
        let mut chart = ChartBuilder::on(panel)
            .caption(caption, ("sans-serif", 18))
            .margin(8)
            .x_label_area_size(30)
            .y_label_area_size(50)
            .build_cartesian_2d(-0.2f64..4.2f64, 0f64..y_max)
            .map_err(e)?;
        chart
            .configure_mesh()
            .x_labels(5)
            .x_label_formatter(&|x| {
                let i = x.round();
                if (x - i).abs() < 0.01 && (0.0..5.0).contains(&i) {
                    LATENCY_POINTS[i as usize].1.to_string()
                } else {
                    String::new()
                }
            })
            .y_desc("ms")
            .draw()
            .map_err(e)?;
        for (t, target, points) in curves {
            let color = target_color(t);
            chart
                .draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))
                .map_err(e)?
                .label(target.as_str())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
            chart
                .draw_series(points.iter().map(|&p| Circle::new(p, 3, color.filled())))
                .map_err(e)?;
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .position(SeriesLabelPosition::UpperLeft)
            .draw()
            .map_err(e)?;
    }
    Ok(())
}

/// Median ops/s (events/s for the watch workloads) per workload and target as bars with
/// min–max whiskers.
fn draw_throughput<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    report: &MatrixReport,
) -> std::result::Result<(), String> {
    let e = |e: DrawingAreaErrorKind<DB::ErrorType>| format!("{e:?}");
    root.fill(&WHITE).map_err(e)?;
    let n = report.workloads.len();
    let targets = report.targets.len().max(1);
    let y_max = report
        .workloads
        .iter()
        .flat_map(|w| {
            report
                .targets
                .iter()
                .filter_map(move |t| report.spread(w, "ops_s", t))
        })
        .map(|s| s.max)
        .fold(0.0f64, f64::max)
        .max(1.0)
        * 1.15;
    let title = format!(
        "throughput, ops/s (median, min–max over {} rounds, {} member(s))",
        report.rounds, report.members
    );
    let mut chart = ChartBuilder::on(root)
        .caption(title, ("sans-serif", 24))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(-0.5f64..(n as f64 - 0.5), 0f64..y_max)
        .map_err(e)?;
    // The watch workloads count events: their bars say so under the name.
    let names: Vec<String> = report
        .workloads
        .iter()
        .map(|w| match crate::matrix::metric_label(w, "ops_s").as_str() {
            "ops/s" => w.clone(),
            unit => format!("{w} ({unit})"),
        })
        .collect();
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(n.max(1))
        .x_label_formatter(&|x| {
            let i = x.round();
            if (x - i).abs() < 0.01 && i >= 0.0 && (i as usize) < names.len() {
                names[i as usize].clone()
            } else {
                String::new()
            }
        })
        .y_desc("ops/s")
        .draw()
        .map_err(e)?;
    let width = 0.8 / targets as f64;
    for (t, target) in report.targets.iter().enumerate() {
        let color = target_color(t);
        let bars: Vec<(f64, f64, f64, f64)> = report
            .workloads
            .iter()
            .enumerate()
            .filter_map(|(i, w)| {
                let s = report.spread(w, "ops_s", target)?;
                let x0 = i as f64 - 0.4 + t as f64 * width;
                Some((x0, s.median, s.min, s.max))
            })
            .collect();
        chart
            .draw_series(bars.iter().map(|&(x0, median, _, _)| {
                Rectangle::new([(x0, 0.0), (x0 + width * 0.9, median)], color.filled())
            }))
            .map_err(e)?
            .label(target.as_str())
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 15, y + 5)], color.filled()));
        chart
            .draw_series(bars.iter().map(|&(x0, _, min, max)| {
                let x = x0 + width * 0.45;
                PathElement::new(vec![(x, min), (x, max)], BLACK.stroke_width(2))
            }))
            .map_err(e)?;
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperRight)
        .draw()
        .map_err(e)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charts_are_written_and_parse_as_png_and_svg() {
        let run = crate::matrix::sample_run;
        let runs = vec![
            run(1, "cairn", "put", 100.0),
            run(1, "etcd", "put", 80.0),
            run(1, "cairn", "range", 300.0),
            run(1, "etcd", "range", 200.0),
        ];
        let report = MatrixReport::new(
            vec!["cairn".into(), "etcd".into()],
            vec!["put".into(), "range".into()],
            1,
            1,
            runs,
        );
        let dir = tempfile::tempdir().unwrap();
        let files = write_charts(&report, dir.path()).unwrap();
        assert_eq!(files.len(), 4);
        for file in files {
            let bytes = std::fs::read(&file).unwrap();
            if file.extension().unwrap() == "png" {
                assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
            } else {
                let text = String::from_utf8(bytes).unwrap();
                assert!(text.starts_with("<svg"), "{}", &text[..40]);
                assert!(text.contains("cairn"));
                assert!(text.trim_end().ends_with("</svg>"));
            }
        }
    }
}
