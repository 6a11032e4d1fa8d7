//! The time-bounded mutation loop, panic capture, minimisation and regression replay.

use std::cell::RefCell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::Once;
use std::time::{Duration, Instant};

use rand::Rng;

use crate::{alloc, guard, Mutator, Target, Verdict, ALLOC_BYTES_MAX};

/// Largest input the mutator produces, in bytes: 1 MiB (above every decoder's interesting
/// sizes, small enough that an execution stays fast).
pub const INPUT_BYTES_MAX: usize = 1 << 20;
/// Longest time one execution may take before the watchdog of `cairn-fuzz` calls it a
/// hang, saves the input and stops the process: 10 s (executions take microseconds to
/// milliseconds; a debug build on a loaded machine stays far below).
pub const EXEC_MS_MAX: u64 = 10_000;
/// Most inputs kept as parents; beyond it a random one is replaced.
const CORPUS_INPUTS_MAX: usize = 4096;
/// Chance, in percent, that an accepted child joins the corpus.
const KEEP_ACCEPTED_PERCENT: u32 = 10;

/// How long and how to fuzz one target.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// Wall-clock time to fuzz.
    pub duration: Duration,
    /// Seed of the mutations (the run is reproducible from it, timing aside).
    pub seed: u64,
    /// Where to save failing inputs (`<dir>/<target>/<hash>.bin`); `None`: not saved.
    pub artifacts: Option<PathBuf>,
    /// Time to spend minimising each new failing input.
    pub minimize_for: Duration,
}

/// A failing input.
#[derive(Clone, Debug)]
pub struct Finding {
    /// The input, minimised if that was possible.
    pub input: Vec<u8>,
    /// The panic message or broken property.
    pub reason: String,
    /// Where it was saved.
    pub saved: Option<PathBuf>,
}

/// The outcome of [`run`].
#[derive(Clone, Debug)]
pub struct Report {
    /// Target name.
    pub target: &'static str,
    /// Executions, seeds included.
    pub execs: u64,
    /// Executions whose input the decoder accepted.
    pub accepted: u64,
    /// Wall-clock time spent.
    pub elapsed: Duration,
    /// Inputs in the corpus at the end.
    pub corpus: usize,
    /// Distinct failures (by reason's first line).
    pub findings: Vec<Finding>,
}

impl Report {
    /// Executions per second of wall-clock time.
    pub fn execs_per_second(&self) -> f64 {
        self.execs as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

thread_local! {
    /// Set while [`execute`] runs on this thread: the panic hook records here instead of
    /// printing.
    static CAUGHT: RefCell<Option<Option<String>>> = const { RefCell::new(None) };
}

fn install_panic_hook() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let recorded = CAUGHT.with(|c| {
                let mut c = c.borrow_mut();
                match c.as_mut() {
                    Some(slot) => {
                        *slot = Some(info.to_string());
                        true
                    }
                    None => false,
                }
            });
            if !recorded {
                previous(info);
            }
        }));
    });
}

/// Runs `input` through `target` once: a panic becomes `Err("panic: ...")` with its
/// message and location, more than [`ALLOC_BYTES_MAX`] heap bytes live at once (with
/// [`crate::CountingAlloc`] installed) becomes `Err("allocated ...")`.
pub fn execute(target: &mut dyn Target, input: &[u8]) -> Result<Verdict, String> {
    install_panic_hook();
    CAUGHT.with(|c| *c.borrow_mut() = Some(None));
    guard::enter(input);
    let base = alloc::start();
    let outcome = catch_unwind(AssertUnwindSafe(|| target.execute(input)));
    let peak = alloc::peak_above(base);
    guard::leave();
    let message = CAUGHT.with(|c| c.borrow_mut().take().flatten());
    let result = match outcome {
        Ok(result) => result,
        Err(_) => Err(format!(
            "panic: {}",
            message.unwrap_or_else(|| "(no message)".into())
        )),
    };
    if result.is_ok() && peak > ALLOC_BYTES_MAX {
        return Err(format!(
            "allocated {peak} bytes at once (limit {ALLOC_BYTES_MAX})"
        ));
    }
    result
}

/// A failure's identity for de-duplication and minimisation: its first line with digits
/// dropped (offsets and sizes vary between inputs failing the same way).
fn signature(reason: &str) -> String {
    reason
        .lines()
        .next()
        .unwrap_or("")
        .chars()
        .filter(|c| !c.is_ascii_digit())
        .collect()
}

/// Fuzzes `target` for `options.duration`: executes the seeds, then mutated children of
/// the corpus. Accepted children join the corpus now and then. Each new failure is
/// minimised and saved.
pub fn run(target: &mut dyn Target, options: &RunOptions) -> Report {
    let started = Instant::now();
    let deadline = started + options.duration;
    let mut mutator = Mutator::new(options.seed);
    let mut corpus = target.seeds();
    assert!(!corpus.is_empty(), "{} has no seeds", target.name());
    let mut report = Report {
        target: target.name(),
        execs: 0,
        accepted: 0,
        elapsed: Duration::ZERO,
        corpus: 0,
        findings: Vec::new(),
    };
    let record = |report: &mut Report, target: &mut dyn Target, input: &[u8], reason: String| {
        let sig = signature(&reason);
        if report.findings.iter().any(|f| signature(&f.reason) == sig) {
            return;
        }
        let input = minimize(target, input, &sig, options.minimize_for);
        let saved = options
            .artifacts
            .as_ref()
            .and_then(|dir| save(dir, report.target, &input).ok());
        report.findings.push(Finding {
            input,
            reason,
            saved,
        });
    };
    for seed in corpus.clone() {
        report.execs += 1;
        match execute(target, &seed) {
            Ok(Verdict::Accepted) => report.accepted += 1,
            Ok(Verdict::Rejected) => {}
            Err(reason) => record(&mut report, target, &seed, reason),
        }
    }
    let mut child = Vec::new();
    while Instant::now() < deadline {
        for _ in 0..64 {
            let parent = &corpus[mutator.rng().gen_range(0..corpus.len())];
            child.clear();
            child.extend_from_slice(parent);
            target.mutate(&mut child, &corpus, &mut mutator);
            report.execs += 1;
            match execute(target, &child) {
                Ok(Verdict::Accepted) => {
                    report.accepted += 1;
                    if mutator.rng().gen_range(0..100) < KEEP_ACCEPTED_PERCENT {
                        if corpus.len() < CORPUS_INPUTS_MAX {
                            corpus.push(child.clone());
                        } else {
                            let i = mutator.rng().gen_range(0..corpus.len());
                            corpus[i] = child.clone();
                        }
                    }
                }
                Ok(Verdict::Rejected) => {}
                Err(reason) => record(&mut report, target, &child, reason),
            }
        }
    }
    report.elapsed = started.elapsed();
    report.corpus = corpus.len();
    report
}

/// Shrinks `input` while it still fails with signature `sig`: removes chunks of halving
/// size, then zeroes bytes, until nothing shrinks further or `budget` is spent.
pub fn minimize(target: &mut dyn Target, input: &[u8], sig: &str, budget: Duration) -> Vec<u8> {
    let deadline = Instant::now() + budget;
    let fails = |target: &mut dyn Target, candidate: &[u8]| matches!(execute(target, candidate), Err(r) if signature(&r) == sig);
    let mut best = input.to_vec();
    let mut chunk = best.len().div_ceil(2).max(1);
    while Instant::now() < deadline {
        let mut shrunk = false;
        let mut start = 0;
        while start < best.len() && Instant::now() < deadline {
            let end = (start + chunk).min(best.len());
            let mut candidate = best[..start].to_vec();
            candidate.extend_from_slice(&best[end..]);
            if fails(target, &candidate) {
                best = candidate;
                shrunk = true;
            } else {
                start += chunk;
            }
        }
        if !shrunk {
            if chunk == 1 {
                break;
            }
            chunk = chunk.div_ceil(2);
        }
    }
    for i in 0..best.len() {
        if Instant::now() >= deadline {
            break;
        }
        if best[i] != 0 {
            let mut candidate = best.clone();
            candidate[i] = 0;
            if fails(target, &candidate) {
                best = candidate;
            }
        }
    }
    best
}

fn save(dir: &Path, target: &str, input: &[u8]) -> std::io::Result<PathBuf> {
    let dir = dir.join(target);
    std::fs::create_dir_all(&dir)?;
    let path = dir.join(format!("{:016x}.bin", fnv1a(input)));
    std::fs::write(&path, input)?;
    Ok(path)
}

/// FNV-1a, 64 bits: a stable file name for an input.
pub(crate) fn fnv1a(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Executes every file in `dir` (a target's regression directory; missing = empty),
/// sorted by name: `(path, outcome)` for each.
pub fn replay_dir(
    target: &mut dyn Target,
    dir: &Path,
) -> std::io::Result<Vec<(PathBuf, Result<Verdict, String>)>> {
    let mut paths = match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .map(|e| e.map(|e| e.path()))
            .collect::<std::io::Result<Vec<_>>>()?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(e),
    };
    paths.retain(|p| p.extension().is_some_and(|e| e == "bin"));
    paths.sort();
    let mut out = Vec::with_capacity(paths.len());
    for path in paths {
        let input = std::fs::read(&path)?;
        let outcome = execute(target, &input);
        out.push((path, outcome));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A decoder with a planted bug: panics on inputs starting with "BUG".
    struct Planted;

    impl Target for Planted {
        fn name(&self) -> &'static str {
            "planted"
        }
        fn seeds(&mut self) -> Vec<Vec<u8>> {
            vec![b"BUx and more bytes after it".to_vec()]
        }
        fn execute(&mut self, input: &[u8]) -> Result<Verdict, String> {
            if input.starts_with(b"BUG") {
                panic!("planted bug");
            }
            Ok(Verdict::Accepted)
        }
    }

    #[test]
    fn finds_catches_and_minimises_a_planted_panic() {
        let report = run(
            &mut Planted,
            &RunOptions {
                duration: Duration::from_secs(2),
                seed: 1,
                artifacts: None,
                minimize_for: Duration::from_secs(1),
            },
        );
        assert_eq!(report.findings.len(), 1, "{report:?}");
        let f = &report.findings[0];
        assert!(f.reason.starts_with("panic: "), "{}", f.reason);
        assert!(f.reason.contains("planted bug"), "{}", f.reason);
        assert_eq!(f.input, b"BUG");
    }
}
