//! Deterministic simulation of Raft clusters (TigerBeetle VOPR style): see
//! `sim/mod.rs` for what is modelled and `sim/invariants/` for what is checked
//! after every step.
//!
//! Environment:
//! - `SEED=S`: run only seed S (both cluster sizes), printing its stats.
//! - `CAIRN_SIM_SEEDS=N`: N seeds per cluster size (default [`DEFAULT_SEEDS`]).
//! - `CAIRN_SIM_SEED_START=S`: first seed of the range (default 0).
//! - `CAIRN_SIM_STEPS=N`: faulty steps per seed (default [`DEFAULT_STEPS`]) before
//!   the liveness phase.
//! - `CAIRN_SIM_THREADS=N`: seeds run on N threads (default 1).
//!
//! A sweep of 10^6 seeds on every core, in release mode:
//!
//! ```text
//! CAIRN_SIM_SEEDS=500000 CAIRN_SIM_THREADS=$(nproc) \
//!   cargo test -p raft --release --test simulation -- --test-threads=1 simulate_
//! ```
//!
//! (500,000 seeds per size, two sizes; shard a longer sweep with
//! `CAIRN_SIM_SEED_START`.) Every failure prints `reproduce with: SEED=...` and the
//! seed's fault parameters.

mod sim;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// Seeds per cluster size in the default `cargo test` run.
const DEFAULT_SEEDS: u64 = 1000;
/// Faulty steps per seed in the default run.
const DEFAULT_STEPS: u64 = 300;

fn env_u64(name: &str) -> Option<u64> {
    let v = std::env::var(name).ok()?;
    Some(v.parse().unwrap_or_else(|_| panic!("{name} must be a u64, got {v:?}")))
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
    let next = AtomicU64::new(0);
    let failures = Mutex::new(Vec::new());
    let totals = Mutex::new((0u64, 0u64, 0u64));
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
                        t.1 += o.stats.reads_served;
                        t.2 += o.committed as u64;
                    }
                    Err(e) => {
                        eprintln!(
                            "{size}-node cluster, seed {seed} failed: {e}\n\
                             reproduce with: SEED={seed} cargo test -p raft --test simulation"
                        );
                        failures.lock().unwrap().push(seed);
                    }
                }
            });
        }
    });
    let (clean, reads, committed) = *totals.lock().unwrap();
    eprintln!("size {size}: {clean} seeds clean, {committed} entries committed, {reads} reads served");
    let failures = failures.into_inner().unwrap();
    assert!(failures.is_empty(), "size {size}: failing seeds: {failures:?}");
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
        (c.inv.election.leaders.clone(), c.inv.commits.facts.iter().map(|f| f.sm_hash).collect::<Vec<_>>(), c.stats.delivered)
    };
    assert_eq!(run(), run());
}
