//! Engine benchmarks (not tests): plain `std::time` measurements printed to stdout.
//!
//! Run: `cargo bench -p benches --bench engine`. Files go to `$CAIRN_BENCH_DIR` (default:
//! a temporary directory under the current directory, so that the disk under test is
//! the workspace's disk rather than a tmpfs).
//!
//! - WAL: append a batch of 256-byte records then one fdatasync (group commit), for
//!   batch sizes 1, 10 and 100; reports batches/s, records/s and µs per sync.
//! - WAL preallocation: the same single-record append+sync into a preallocated segment
//!   versus appends that extend a plain file (why segments are preallocated).
//! - MVCC: put ops/s (one put per write txn, 64-byte values over 10k keys), range ops/s
//!   for single-key gets and 100-key prefix ranges, and checkpoint time.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use engine::{Mvcc, MvccOptions, RangeOptions, Wal, WalOptions};

fn bench_dir() -> tempfile::TempDir {
    match std::env::var_os("CAIRN_BENCH_DIR") {
        Some(d) => {
            std::fs::create_dir_all(&d).expect("create CAIRN_BENCH_DIR");
            tempfile::tempdir_in(d).expect("tempdir")
        }
        None => tempfile::tempdir_in(".").expect("tempdir"),
    }
}

/// Runs `f` repeatedly for about `budget`; returns (iterations, elapsed).
fn run_for(budget: Duration, mut f: impl FnMut()) -> (u64, Duration) {
    let start = Instant::now();
    let mut n = 0;
    while start.elapsed() < budget {
        f();
        n += 1;
    }
    (n, start.elapsed())
}

fn wal_batches() {
    let payload = vec![0xabu8; 256];
    for batch in [1u64, 10, 100] {
        let dir = bench_dir();
        let (mut wal, _) = Wal::open(dir.path(), WalOptions::default()).expect("open wal");
        let mut index = 0u64;
        let (n, elapsed) = run_for(Duration::from_secs(2), || {
            for _ in 0..batch {
                index += 1;
                wal.append(1, index, &payload).expect("append");
            }
            wal.sync().expect("sync");
        });
        let secs = elapsed.as_secs_f64();
        println!(
            "wal append+sync batch={batch:>3}: {:>9.0} batches/s {:>10.0} records/s {:>8.1} us/batch",
            n as f64 / secs,
            (n * batch) as f64 / secs,
            secs * 1e6 / n as f64
        );
    }
}

fn wal_prealloc_vs_extend() {
    let payload = vec![0xcdu8; 256];
    let dir = bench_dir();
    let (mut wal, _) = Wal::open(dir.path(), WalOptions::default()).expect("open wal");
    let mut index = 0;
    let (n, elapsed) = run_for(Duration::from_secs(2), || {
        index += 1;
        wal.append(1, index, &payload).expect("append");
        wal.sync().expect("sync");
    });
    println!(
        "wal 1 record + fdatasync, preallocated segment: {:>8.1} us/op",
        elapsed.as_secs_f64() * 1e6 / n as f64
    );
    let path: PathBuf = dir.path().join("extending.log");
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .expect("open");
    let (n, elapsed) = run_for(Duration::from_secs(2), || {
        f.write_all(&payload).expect("write");
        f.sync_data().expect("sync");
    });
    println!(
        "plain append extending the file + fdatasync:    {:>8.1} us/op",
        elapsed.as_secs_f64() * 1e6 / n as f64
    );
}

fn mvcc() {
    let dir = bench_dir();
    let mut m = Mvcc::open(dir.path(), MvccOptions::default()).expect("open mvcc");
    let value = vec![0x5au8; 64];
    let keys = 10_000u64;
    let mut i = 0u64;
    let (n, elapsed) = run_for(Duration::from_secs(2), || {
        let key = format!("/registry/pods/ns{}/pod{:05}", i % 100, i % keys);
        let mut t = m.write();
        t.put(key.as_bytes(), &value, 0);
        t.end();
        i += 1;
    });
    println!(
        "mvcc put (1 per txn):            {:>10.0} ops/s ({} revisions)",
        n as f64 / elapsed.as_secs_f64(),
        n
    );
    let reader = m.reader();
    let mut j = 0u64;
    let (n, elapsed) = run_for(Duration::from_secs(2), || {
        let key = format!("/registry/pods/ns{}/pod{:05}", j % 100, j % keys);
        let res = reader
            .range(key.as_bytes(), b"", &RangeOptions::default())
            .expect("range");
        assert_eq!(res.count, 1);
        j += 1;
    });
    println!(
        "mvcc range single key:           {:>10.0} ops/s",
        n as f64 / elapsed.as_secs_f64()
    );
    let mut j = 0u64;
    let (n, elapsed) = run_for(Duration::from_secs(2), || {
        let prefix = format!("/registry/pods/ns{}/", j % 100);
        let mut end = prefix.clone().into_bytes();
        *end.last_mut().expect("non-empty") += 1;
        let res = reader
            .range(prefix.as_bytes(), &end, &RangeOptions::default())
            .expect("range");
        assert_eq!(res.count, 100);
        j += 1;
    });
    println!(
        "mvcc range prefix (100 keys):    {:>10.0} ops/s",
        n as f64 / elapsed.as_secs_f64()
    );
    let start = Instant::now();
    m.checkpoint(1, b"").expect("checkpoint");
    println!(
        "mvcc checkpoint ({} keys, {} revisions): {:.1} ms",
        keys,
        i,
        start.elapsed().as_secs_f64() * 1e3
    );
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` passes nothing useful. Run
    // the measurements only when invoked as a benchmark.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    wal_batches();
    wal_prealloc_vs_extend();
    mvcc();
}
