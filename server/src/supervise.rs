//! Contained failures of the process (issue 9): what happens when a thread panics or a
//! core ends without being asked to.
//!
//! - Every panic is logged as one etcd-style JSON line at error level (`msg` "panic",
//!   fields `thread`, `location`, `panic`) by [`install_panic_hook`], instead of Rust's
//!   plain-text message.
//! - A panic while serving a gRPC call is caught by `net` and fails only that call
//!   (`net::catch_call_panic`); a stream's helper tasks are wrapped the same way.
//! - Any other panic on an executor unwinds out of glommio's run loop and ends that core's
//!   thread (glommio catches nothing); so does a panic in the raft core task, which runs on
//!   core 0. [`supervise`] learns of every core's end. One that ends by a panic, or returns
//!   before a stop was requested, is a *failed core*: `/health` and the probes report false
//!   from then on ([`CoreProbes::fail`]), every other core is told to stop (listeners close,
//!   connections drain as on SIGTERM, the raft core syncs the WAL when it is still alive),
//!   and the process logs a fatal line naming the core and exits 1 — it never goes on
//!   half-serving. Cores that do not finish stopping within [`FAILED_STOP_TIMEOUT_MS`] are
//!   not waited for: the exit closes their listeners. Nothing acknowledged is lost by
//!   exiting: every answered write was fdatasync'ed before its answer.
//!
//! Fail points (tikv `fail`, only with the `failpoints` feature; configured at start by the
//! `FAILPOINTS` environment variable, e.g. `FAILPOINTS='grpc-unary=return(/etcdserverpb.KV/Range)'`),
//! used by `server/tests/containment.rs`:
//!
//! | name | where | `return(arg)` panics when |
//! |---|---|---|
//! | `grpc-unary` | a unary call's handler (`service.rs`) | the method path is `arg` |
//! | `watch-create` | a Watch stream's request reader task | the created watch's key is `arg` |
//! | `lease-keep-alive` | a LeaseKeepAlive stream | the renewed lease ID (decimal) is `arg` |
//! | `apply-put` | the raft core applying a Put | the key is `arg` |
//! | `core-probe` | a core's health-probe task (outside any request) | the core number is `arg` |
//!
//! Storage fail points inject an I/O error instead of panicking: the engine's `fallocate`,
//! `value-create`, `wal-write`, `value-sync` and `checkpoint-write` (listed at
//! `engine::fsutil::inject`; `return(EIO)`, `return(ENOSPC)` or `return(EOPNOTSUPP)`,
//! plain `return` is EIO), and the server's `wal-fdatasync` (the raft core's WAL
//! fdatasync, `cluster/driver.rs`) and `meta-write` (`member/meta.json`, `member.rs`),
//! which always inject EIO. Every storage write failure after start-up ends the process
//! with `logging::fatal_storage`: a fatal line with etcd's message, the file in `path`,
//! exit 1; one during start-up fails it with the file named in the error.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::error;

use crate::http::CoreProbes;

/// After a core failed, how long the other cores get to stop serving (in-flight requests
/// answered, the WAL synced) before the process exits anyway, in milliseconds.
pub const FAILED_STOP_TIMEOUT_MS: u64 = 5_000;

/// Logs every panic as an etcd-style JSON line (level error, `msg` "panic") with the
/// thread's name, the panic's location and text. Installed once at start-up, before the
/// executors start.
pub fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let thread = std::thread::current();
        let location = info
            .location()
            .map_or_else(String::new, |l| format!("{}:{}", l.file(), l.line()));
        error!(
            thread = thread.name().unwrap_or("unnamed"),
            location = %location,
            panic = net::panic_text(info.payload()),
            "panic"
        );
    }));
}

/// `panic_point!(point, subject)`: panics with a message naming the fail point `point` when
/// it is configured `return(arg)` and `arg` equals `subject` (anything that derefs to
/// `str`). Without the `failpoints` feature it expands to nothing: `subject` is not even
/// evaluated.
macro_rules! panic_point {
    ($point:expr, $subject:expr) => {{
        #[cfg(feature = "failpoints")]
        $crate::supervise::check_panic_point($point, &$subject);
    }};
}
pub(crate) use panic_point;

/// The body of [`panic_point!`].
#[cfg(feature = "failpoints")]
pub fn check_panic_point(point: &str, subject: &str) {
    let hit = fail::eval(point, |arg| arg.as_deref() == Some(subject)).unwrap_or(false);
    if hit {
        panic!("fail point {point}: injected panic for {subject}");
    }
}

/// Tells every core to stop serving; remembers that a stop was asked for, so that cores
/// ending afterwards end normally. Shared by the signal thread, the raft core (a removed
/// member stops) and [`supervise`].
#[derive(Clone)]
pub struct Stopper {
    senders: Vec<flume::Sender<()>>,
    requested: Arc<AtomicBool>,
}

impl Stopper {
    /// A stopper that signals each core through its stop channel (capacity 1).
    pub fn new(senders: Vec<flume::Sender<()>>) -> Stopper {
        Stopper {
            senders,
            requested: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Asks every core to stop (again, harmlessly, if already asked).
    pub fn stop(&self) {
        self.requested.store(true, Ordering::Release);
        for sender in &self.senders {
            let _ = sender.try_send(());
        }
    }

    fn is_requested(&self) -> bool {
        self.requested.load(Ordering::Acquire)
    }
}

/// How one core's executor thread ended.
struct CoreExit {
    core: usize,
    /// `Err(panic text)` when the thread panicked.
    outcome: Result<(), String>,
}

/// Joins every core's executor on a thread of its own, so that the first core to end is
/// seen at once whatever the order. `handles[i]` is core `i`.
fn watch_cores(
    handles: Vec<glommio::ExecutorJoinHandle<()>>,
) -> Result<std::sync::mpsc::Receiver<CoreExit>, String> {
    let (tx, rx) = std::sync::mpsc::channel();
    for (core, handle) in handles.into_iter().enumerate() {
        let tx = tx.clone();
        std::thread::Builder::new()
            .name(format!("cairn-join-{core}"))
            .spawn(move || {
                let outcome = match handle.join() {
                    Ok(()) => Ok(()),
                    Err(glommio::GlommioError::BuilderError(
                        glommio::BuilderErrorKind::ThreadPanic(payload),
                    )) => Err(net::panic_text(payload.as_ref()).to_string()),
                    Err(e) => Err(e.to_string()),
                };
                let _ = tx.send(CoreExit { core, outcome });
            })
            .map_err(|e| format!("cannot start a thread to watch core {core}: {e}"))?;
    }
    Ok(rx)
}

/// Waits until every core has ended. Once all but core 0 have, calls `stop_raft_core`
/// (core 0 then stops the raft core and ends). `Ok` when every core ended after a requested
/// stop; `Err(reason)` naming the first failed core otherwise (see the module docs), after
/// the others stopped or [`FAILED_STOP_TIMEOUT_MS`] passed.
pub fn supervise(
    handles: Vec<glommio::ExecutorJoinHandle<()>>,
    stopper: &Stopper,
    probes: &CoreProbes,
    stop_raft_core: impl FnOnce(),
) -> Result<(), String> {
    let cores = handles.len();
    let exits = watch_cores(handles)?;
    let mut running = vec![true; cores];
    let mut stop_raft_core = Some(stop_raft_core);
    let mut failure: Option<(String, Instant)> = None;
    while running.iter().any(|r| *r) {
        if running.iter().skip(1).all(|r| !*r) {
            if let Some(stop) = stop_raft_core.take() {
                stop();
            }
        }
        let exit = match &failure {
            None => exits.recv().ok(),
            Some((_, deadline)) => exits
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
                .ok(),
        };
        let Some(CoreExit { core, outcome }) = exit else {
            let still: Vec<usize> = (0..cores).filter(|c| running[*c]).collect();
            error!(
                cores = ?still,
                "timeout-ms" = FAILED_STOP_TIMEOUT_MS,
                "cores did not stop in time after a core failed; exiting anyway"
            );
            break;
        };
        running[core] = false;
        let reason = match outcome {
            Err(panic) => Some(format!("core {core} panicked: {panic}")),
            Ok(()) if !stopper.is_requested() => {
                Some(format!("core {core} stopped without being asked to"))
            }
            Ok(()) => None,
        };
        if let Some(reason) = reason {
            error!(core = core as u64, reason = %reason, "core stopped abnormally");
            if failure.is_none() {
                probes.fail(reason.clone());
                stopper.stop();
                let deadline = Instant::now() + Duration::from_millis(FAILED_STOP_TIMEOUT_MS);
                failure = Some((reason, deadline));
            }
        }
    }
    match failure {
        Some((reason, _)) => Err(reason),
        None => Ok(()),
    }
}
