//! Deterministic simulation of Raft clusters (TigerBeetle VOPR style): see
//! `sim/mod.rs` for what is modelled and `sim/invariants/` for what is checked
//! after every step.
//!
//! The default `cargo test -p raft` runs [`DEFAULT_SEEDS`] seeds for each initial
//! cluster size (1, 3 and 5 voters), [`DEFAULT_STEPS`] faulty steps each plus the
//! liveness phase. The workspace builds the raft crate (and these tests) with
//! `opt-level = 2` in the dev/test profiles (`[profile.dev.package.raft]` in the root
//! `Cargo.toml`), overflow checks and debug assertions kept: about 10 s of CPU for the
//! 6,000 seeds, against about 40 s unoptimized.
//!
//! Environment:
//! - `SEED=S`: run only seed S (every size), printing its stats.
//! - `CAIRN_SIM_SEEDS=N`: N seeds per cluster size.
//! - `CAIRN_SIM_SEED_START=S`: first seed of the range (default 0).
//! - `CAIRN_SIM_STEPS=N`: faulty steps per seed before the liveness phase.
//! - `CAIRN_SIM_THREADS=N`: run the seeds of each size on N threads (default 1).
//! - `CAIRN_SIM_NO_FUZZ=1`: no fuzzed messages (to tell a fuzz finding from others).
//! - `CAIRN_SIM_TRACE=1`: print every event of the run (use with `SEED`).
//!
//! A sweep of 10^6 seeds on every core, in release mode (about 3.5 ms of CPU per
//! seed at the default steps):
//!
//! ```text
//! CAIRN_SIM_SEEDS=333334 CAIRN_SIM_THREADS=$(nproc) \
//!   cargo test -p raft --release --test simulation -- --test-threads=1 simulate_
//! ```
//!
//! Shard a longer sweep over machines with `CAIRN_SIM_SEED_START`. Every failure
//! prints `reproduce with: SEED=...`, the seed's fault parameters and the members'
//! state.

mod sim;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// Seeds per cluster size in the default `cargo test` run.
const DEFAULT_SEEDS: u64 = 2000;
/// Faulty steps per seed in the default run.
const DEFAULT_STEPS: u64 = 300;

fn env_u64(name: &str) -> Option<u64> {
    let v = std::env::var(name).ok()?;
    Some(
        v.parse()
            .unwrap_or_else(|_| panic!("{name} must be a u64, got {v:?}")),
    )
}

fn seeds() -> Vec<u64> {
    if let Some(s) = env_u64("SEED") {
        return vec![s];
    }
    let n = env_u64("CAIRN_SIM_SEEDS").unwrap_or(DEFAULT_SEEDS);
    let start = env_u64("CAIRN_SIM_SEED_START").unwrap_or(0);
    (start..start + n).collect()
}

fn simulate(size: u64) {
    let seeds = seeds();
    let single = seeds.len() == 1;
    let steps = env_u64("CAIRN_SIM_STEPS").unwrap_or(DEFAULT_STEPS);
    let threads = env_u64("CAIRN_SIM_THREADS").unwrap_or(1).max(1) as usize;
    // Knobs that change a run, repeated in the reproduce line.
    let mut knobs = String::new();
    if steps != DEFAULT_STEPS {
        knobs += &format!(" CAIRN_SIM_STEPS={steps}");
    }
    if std::env::var_os("CAIRN_SIM_NO_FUZZ").is_some() {
        knobs += " CAIRN_SIM_NO_FUZZ=1";
    }
    let knobs = &knobs;
    let next = AtomicU64::new(0);
    let failures = Mutex::new(Vec::new());
    let totals = Mutex::new((0u64, 0u64, 0u64, 0u64, sim::cluster::Stats::default()));
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                let Some(&seed) = seeds.get(i) else { break };
                match sim::run_seed(seed, size, steps) {
                    Ok(o) => {
                        if single {
                            eprintln!("size {size} seed {seed}: {o:?}");
                        }
                        let mut t = totals.lock().unwrap();
                        t.0 += 1;
                        t.1 += o.steps;
                        t.2 += o.committed as u64;
                        t.3 += o.terms_with_leader as u64;
                        t.4.add(&o.stats);
                    }
                    Err(e) => {
                        eprintln!(
                            "{size}-node cluster, seed {seed} failed: {e}\n\
                             reproduce with: SEED={seed}{knobs} cargo test -p raft --test simulation simulate_"
                        );
                        failures.lock().unwrap().push(seed);
                    }
                }
            });
        }
    });
    let (clean, steps, committed, terms, stats) = &*totals.lock().unwrap();
    eprintln!(
        "size {size}: {clean} seeds clean ({steps} steps), {committed} entries committed, \
         {terms} terms with a leader; {stats:?}"
    );
    let failures = failures.into_inner().unwrap();
    assert!(
        failures.is_empty(),
        "size {size}: failing seeds: {failures:?}"
    );
}

#[test]
fn simulate_one_node() {
    simulate(1);
}

#[test]
fn simulate_three_nodes() {
    simulate(3);
}

#[test]
fn simulate_five_nodes() {
    simulate(5);
}

/// The same seed gives the same run, step for step.
#[test]
fn same_seed_same_run() {
    let run = || {
        let mut c = sim::cluster::Cluster::new(42, 3).unwrap();
        for _ in 0..400 {
            c.step().unwrap();
        }
        (
            c.inv.election.leaders.clone(),
            c.inv
                .commits
                .facts
                .iter()
                .map(|f| f.sm_hash)
                .collect::<Vec<_>>(),
            c.stats.delivered,
        )
    };
    assert_eq!(run(), run());
}

/// The checks can fail: a broken application is caught within a few seeds.
fn sabotage_is_caught(sabotage: sim::cluster::Sabotage, needle: &str) {
    let failures: Vec<String> = (0..200)
        .filter_map(|seed| sim::run_seed_with(seed, 3, DEFAULT_STEPS, sabotage).err())
        .collect();
    let mut kinds = std::collections::BTreeMap::new();
    for e in &failures {
        let kind: String = e.split(':').next().unwrap_or("").chars().take(40).collect();
        *kinds.entry(kind).or_insert(0) += 1;
    }
    eprintln!("{sabotage:?} failure kinds: {kinds:?}");
    let first = failures.iter().find(|e| e.contains(needle));
    eprintln!(
        "{sabotage:?}: {} of 200 seeds failed; first {needle:?}: {}",
        failures.len(),
        first.map_or("none", |e| e.lines().next().unwrap_or(""))
    );
    assert!(
        first.is_some(),
        "{sabotage:?} was not caught as {needle:?}: {failures:?}"
    );
}

#[test]
fn skipping_fsync_is_caught() {
    sabotage_is_caught(sim::cluster::Sabotage::SkipFsync, "safety");
}

#[test]
fn serving_reads_early_is_caught() {
    sabotage_is_caught(sim::cluster::Sabotage::ServeReadsEarly, "read safety");
}
