//! Process-level guards of the `cairn-fuzz` binary: what a panic hook cannot catch.
//!
//! - A hang: a watchdog thread sees one execution run longer than
//!   [`crate::EXEC_MS_MAX`], writes its input to the crash file and aborts.
//! - A fatal signal (SIGSEGV, SIGBUS — e.g. a mapped file read past its end —, SIGABRT,
//!   SIGILL, SIGFPE): the handler writes the running input to the crash file with
//!   async-signal-safe calls, then the signal's default action ends the process.
//!
//! The crash file is `<artifacts>/<target>/crash-<pid>.bin`; replay it with
//! `cairn-fuzz <target> --replay <file>`.

use std::ffi::CString;
use std::sync::atomic::{AtomicPtr, AtomicU64, AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

static INPUT_PTR: AtomicPtr<u8> = AtomicPtr::new(std::ptr::null_mut());
static INPUT_LEN: AtomicUsize = AtomicUsize::new(0);
/// Milliseconds since [`EPOCH`] at which the running execution started; 0 = idle.
static EXEC_STARTED_MS: AtomicU64 = AtomicU64::new(0);
static EPOCH: OnceLock<Instant> = OnceLock::new();
/// The crash file's path (a leaked C string; replaced per target, read by the handler).
static CRASH_PATH: AtomicPtr<libc::c_char> = AtomicPtr::new(std::ptr::null_mut());
static WATCHDOG: std::sync::Once = std::sync::Once::new();

fn now_ms() -> u64 {
    EPOCH.get_or_init(Instant::now).elapsed().as_millis() as u64 + 1
}

/// Marks `input` as the running execution's (called by [`crate::execute`]).
pub(crate) fn enter(input: &[u8]) {
    INPUT_PTR.store(input.as_ptr() as *mut u8, Ordering::Release);
    INPUT_LEN.store(input.len(), Ordering::Release);
    EXEC_STARTED_MS.store(now_ms(), Ordering::Release);
}

/// Marks the end of the running execution.
pub(crate) fn leave() {
    EXEC_STARTED_MS.store(0, Ordering::Release);
    INPUT_LEN.store(0, Ordering::Release);
    INPUT_PTR.store(std::ptr::null_mut(), Ordering::Release);
}

/// Writes the running input to the crash file with async-signal-safe calls only.
fn dump_input() {
    let path = CRASH_PATH.load(Ordering::Acquire);
    let ptr = INPUT_PTR.load(Ordering::Acquire);
    let len = INPUT_LEN.load(Ordering::Acquire);
    if path.is_null() || ptr.is_null() {
        return;
    }
    // SAFETY: `path` is a valid C string leaked by `install` (never freed); `ptr..ptr+len` is
    // the input slice of the execution still running on the faulting (or hung) thread,
    // which has not returned, so the slice is alive.
    unsafe {
        let fd = libc::open(path, libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC, 0o644);
        if fd >= 0 {
            libc::write(fd, ptr as *const libc::c_void, len);
            libc::close(fd);
        }
        let msg = b"cairn-fuzz: the running input was written to the crash file\n";
        libc::write(2, msg.as_ptr() as *const libc::c_void, msg.len());
    }
}

extern "C" fn on_fatal_signal(signal: libc::c_int) {
    let msg = b"cairn-fuzz: fatal signal during an execution\n";
    // SAFETY: write(2) is async-signal-safe; the buffer is static.
    unsafe {
        libc::write(2, msg.as_ptr() as *const libc::c_void, msg.len());
    }
    dump_input();
    let _ = signal;
    // SA_RESETHAND restored the default action: returning re-raises it (a fault
    // re-executes the faulting instruction; abort() raises SIGABRT again).
}

/// Installs the signal handlers and starts the watchdog; the crash file is
/// `<artifacts>/<target>/crash-<pid>.bin` (the directory is created). Errors: the file
/// system's.
pub fn install(artifacts: &std::path::Path, target: &str) -> std::io::Result<std::path::PathBuf> {
    let dir = artifacts.join(target);
    std::fs::create_dir_all(&dir)?;
    let path = dir.join(format!("crash-{}.bin", std::process::id()));
    let c = CString::new(path.to_string_lossy().as_bytes()).map_err(std::io::Error::other)?;
    CRASH_PATH.store(c.into_raw(), Ordering::Release);
    now_ms();
    for signal in [
        libc::SIGSEGV,
        libc::SIGBUS,
        libc::SIGABRT,
        libc::SIGILL,
        libc::SIGFPE,
    ] {
        // SAFETY: a zeroed sigaction with a valid handler address and flags is a valid
        // argument; the handler only makes async-signal-safe calls.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = on_fatal_signal as *const () as usize;
            action.sa_flags = libc::SA_ONSTACK | libc::SA_RESETHAND;
            libc::sigemptyset(&mut action.sa_mask);
            libc::sigaction(signal, &action, std::ptr::null_mut());
        }
    }
    let mut spawned = Ok(());
    WATCHDOG.call_once(|| {
        spawned = std::thread::Builder::new()
            .name("cairn-fuzz-watchdog".into())
            .spawn(watchdog)
            .map(drop);
    });
    spawned?;
    Ok(path)
}

fn watchdog() {
    loop {
        std::thread::sleep(Duration::from_millis(250));
        let started = EXEC_STARTED_MS.load(Ordering::Acquire);
        if started != 0 && now_ms().saturating_sub(started) > crate::EXEC_MS_MAX {
            eprintln!(
                "cairn-fuzz: one execution ran longer than {} ms (a hang)",
                crate::EXEC_MS_MAX
            );
            dump_input();
            std::process::abort();
        }
    }
}
