//! `cairn-fuzz`: fuzzes Cairn's decoders for a fixed time on the stable toolchain.
//!
//! ```text
//! cairn-fuzz <target|all> [--seconds N] [--seed S] [--artifacts DIR]
//! cairn-fuzz <target> --replay FILE...
//! ```
//!
//! Prints one line per target (executions, executions/s, accepted, corpus, findings) and
//! each finding with the file it was saved to; exits 1 if anything was found. See
//! `docs/fuzzing.md`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;

#[global_allocator]
static ALLOC: fuzz::CountingAlloc = fuzz::CountingAlloc;

/// Fuzz Cairn's decoders (stable toolchain, time-bounded mutation loop).
#[derive(Parser, Debug)]
#[command(name = "cairn-fuzz")]
struct Args {
    /// Target to run: framing, http1, requests, raft, wal, store, or all.
    target: String,
    /// Seconds to fuzz each target.
    #[arg(long, default_value_t = 60)]
    seconds: u64,
    /// Seed of the mutations (default: from the clock; printed).
    #[arg(long)]
    seed: Option<u64>,
    /// Where failing inputs are saved, as `<dir>/<target>/<hash>.bin`.
    #[arg(long, default_value = "fuzz/artifacts")]
    artifacts: PathBuf,
    /// Seconds spent minimising each new failing input.
    #[arg(long, default_value_t = 30)]
    minimize_seconds: u64,
    /// Instead of fuzzing, execute these inputs once each and print the outcome.
    #[arg(long, num_args = 1..)]
    replay: Vec<PathBuf>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let names: Vec<&str> = if args.target == "all" {
        fuzz::TARGETS.to_vec()
    } else if fuzz::TARGETS.contains(&args.target.as_str()) {
        vec![args.target.as_str()]
    } else {
        eprintln!(
            "cairn-fuzz: unknown target {:?}; targets: {}, all",
            args.target,
            fuzz::TARGETS.join(", ")
        );
        return ExitCode::from(2);
    };
    if !args.replay.is_empty() {
        return replay(names[0], &args.replay);
    }
    let seed = args.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64)
    });
    let mut found = false;
    for name in names {
        let mut target = fuzz::target(name).expect("a listed target");
        if let Err(e) = fuzz::guard::install(&args.artifacts, name) {
            eprintln!(
                "cairn-fuzz: cannot prepare {}: {e}",
                args.artifacts.display()
            );
            return ExitCode::from(2);
        }
        let report = fuzz::run(
            target.as_mut(),
            &fuzz::RunOptions {
                duration: Duration::from_secs(args.seconds),
                seed,
                artifacts: Some(args.artifacts.clone()),
                minimize_for: Duration::from_secs(args.minimize_seconds),
            },
        );
        println!(
            "{:<9} seed {seed} execs {} in {:.1} s = {:.0} execs/s, accepted {:.1}%, corpus {}, findings {}",
            report.target,
            report.execs,
            report.elapsed.as_secs_f64(),
            report.execs_per_second(),
            100.0 * report.accepted as f64 / report.execs.max(1) as f64,
            report.corpus,
            report.findings.len()
        );
        for f in &report.findings {
            found = true;
            let saved = f
                .saved
                .as_ref()
                .map_or("(not saved)".to_string(), |p| p.display().to_string());
            println!("  FOUND {saved} ({} bytes): {}", f.input.len(), f.reason);
        }
    }
    if found {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

fn replay(name: &str, files: &[PathBuf]) -> ExitCode {
    let mut target = fuzz::target(name).expect("a listed target");
    let mut failed = false;
    for file in files {
        let input = match std::fs::read(file) {
            Ok(input) => input,
            Err(e) => {
                eprintln!("cairn-fuzz: {}: {e}", file.display());
                return ExitCode::from(2);
            }
        };
        let outcome = fuzz::execute(target.as_mut(), &input);
        failed |= outcome.is_err();
        println!("{}: {outcome:?}", file.display());
    }
    if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}
