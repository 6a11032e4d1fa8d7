//! `cairnctl check disk` on this machine: it prints its table and verdict, and its 1-writer
//! buffered fdatasync p50 agrees within noise with an independent measurement made here
//! (a plain file, `write` + `File::sync_data`, no preallocation, no shared code).

use std::io::Write;
use std::process::Command;
use std::time::Instant;

/// Appends of the independent measurement and of the check.
const APPENDS: usize = 300;
/// How far apart the two medians may be (fdatasync latency on a shared VM is noisy).
const P50_RATIO_MAX: f64 = 3.0;

fn independent_p50_ms(dir: &std::path::Path) -> f64 {
    let mut file = std::fs::File::create(dir.join("independent")).unwrap();
    let record = [0x5au8; 2048];
    let mut samples: Vec<f64> = (0..APPENDS)
        .map(|_| {
            let started = Instant::now();
            file.write_all(&record).unwrap();
            file.sync_data().unwrap();
            started.elapsed().as_secs_f64() * 1000.0
        })
        .collect();
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

#[test]
fn check_disk_prints_a_verdict_and_agrees_with_an_independent_measurement() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let run = |json: bool| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_cairnctl"));
        c.args(["check", "disk", "--data-dir"])
            .arg(&data_dir)
            .args(["--writes", &APPENDS.to_string(), "--writers", "2"]);
        if json {
            c.arg("--json");
        }
        c.output().unwrap()
    };
    let text = run(false);
    let stdout = String::from_utf8_lossy(&text.stdout);
    let verdict = stdout.lines().last().unwrap_or_default();
    assert!(
        verdict.starts_with("PASS:") || verdict.starts_with("FAIL:"),
        "{stdout}"
    );
    assert_eq!(text.status.success(), verdict.starts_with("PASS:"));
    for mode in ["buffered", "direct"] {
        assert!(stdout.contains(mode), "{stdout}");
    }

    let independent = independent_p50_ms(dir.path());
    let json = run(true);
    let report: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    let wal = &report["modes"][0];
    assert_eq!(
        (wal["mode"].as_str(), wal["writers"].as_u64()),
        (Some("buffered"), Some(1))
    );
    let ours = wal["p50_ms"].as_f64().unwrap();
    let ratio = (ours / independent).max(independent / ours);
    assert!(
        ratio <= P50_RATIO_MAX,
        "check disk p50 {ours} ms vs independent {independent} ms"
    );
    assert_eq!(
        std::fs::read_dir(&data_dir).unwrap().count(),
        0,
        "the check leaves nothing behind"
    );
}
