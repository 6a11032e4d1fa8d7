//! The default test run's share of fuzzing: every saved regression input replays
//! cleanly, and every target survives a short run (`CAIRN_FUZZ_SECONDS`, default 2 s per
//! target) from a fixed seed (`CAIRN_FUZZ_SEED`, default 1).

use std::path::Path;
use std::time::Duration;

#[global_allocator]
static ALLOC: fuzz::CountingAlloc = fuzz::CountingAlloc;

fn regressions(target: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("regressions")
        .join(target)
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn replay(name: &str) {
    let mut target = fuzz::target(name).unwrap();
    for (path, outcome) in fuzz::replay_dir(target.as_mut(), &regressions(name)).unwrap() {
        assert!(outcome.is_ok(), "{}: {outcome:?}", path.display());
    }
}

fn short_run(name: &str) {
    let mut target = fuzz::target(name).unwrap();
    let report = fuzz::run(
        target.as_mut(),
        &fuzz::RunOptions {
            duration: Duration::from_secs(env_u64("CAIRN_FUZZ_SECONDS", 2)),
            seed: env_u64("CAIRN_FUZZ_SEED", 1),
            artifacts: None,
            minimize_for: Duration::from_secs(5),
        },
    );
    eprintln!(
        "{name}: {} execs, {:.0}/s, {} accepted, {} findings",
        report.execs,
        report.execs_per_second(),
        report.accepted,
        report.findings.len()
    );
    assert!(
        report.accepted > 0,
        "{name}: no input was accepted: {report:?}"
    );
    for f in &report.findings {
        eprintln!("{name}: input {:?}", f.input);
    }
    assert!(
        report.findings.is_empty(),
        "{name}: {:?}",
        report
            .findings
            .iter()
            .map(|f| &f.reason)
            .collect::<Vec<_>>()
    );
}

macro_rules! target_tests {
    ($($name:ident),*) => {
        mod replay_regressions {
            $(#[test] fn $name() { super::replay(stringify!($name)); })*
        }
        mod short_run {
            $(#[test] fn $name() { super::short_run(stringify!($name)); })*
        }
    };
}

target_tests!(framing, http1, requests, raft, wal, store, snapshot);

#[test]
fn every_target_is_tested() {
    assert_eq!(
        fuzz::TARGETS,
        ["framing", "http1", "requests", "raft", "wal", "store", "snapshot"]
    );
}
