//! `cairnctl check disk`: measures a disk the way a consensus store's WAL uses it —
//! appends to a preallocated segment, each followed by `fdatasync` — and judges it against
//! etcd's guidance: the 99th percentile of WAL fdatasync under 10 ms (etcd's hardware
//! recommendations, "wal_fsync_duration_seconds"; etcd warns at 1 s, `warnSyncDuration`).
//!
//! Each mode appends [`CheckDiskConfig::writes`] records of [`CheckDiskConfig::record_bytes`]
//! per writer to its own 64 MiB segment preallocated with `fallocate`, and times
//! write + fdatasync into an hdrhistogram:
//! - `buffered`: `pwrite` through the page cache, then `fdatasync`;
//! - `direct`: `O_DIRECT` (4 KiB-aligned buffers and offsets), then `fdatasync`;
//! - `io_uring`: `O_DIRECT` writes and `fdatasync` submitted through io_uring (glommio's
//!   `DmaFile`, as Cairn's runtime does I/O); when io_uring is unavailable the mode is
//!   skipped and the report says why;
//! - each with 1 writer and with [`CheckDiskConfig::writers`] concurrent writers (threads,
//!   each on its own segment and, for io_uring, its own executor, as several members or a
//!   WAL plus a checkpoint would).
//!
//! The files live in a fresh directory under the data dir and are removed afterwards; a
//! data dir that holds anything is refused (the check must never touch a member's data).

use std::fs::{File, OpenOptions};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::Instant;

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::error::{BenchError, Result};
use crate::stats::{format_ms, new_latency_histogram, record_latency_us, us_to_ms};

/// Bytes preallocated per segment (etcd's WAL segment size).
pub const SEGMENT_BYTES: u64 = 64 << 20;
/// etcd's guidance for the 99th percentile of WAL fdatasync, in µs.
pub const P99_FDATASYNC_GUIDANCE_US: u64 = 10_000;
/// Alignment of `O_DIRECT` buffers and offsets.
const DIRECT_ALIGN: usize = 4096;

/// What to measure.
#[derive(Clone, Debug)]
pub struct CheckDiskConfig {
    /// The directory to measure in; must be empty or missing.
    pub data_dir: PathBuf,
    /// Appends per writer and mode (at least 1).
    pub writes: usize,
    /// Bytes per append (1 ..= 1 MiB; rounded up to 4 KiB for `direct`).
    pub record_bytes: usize,
    /// Concurrent writers of the N-writer runs (at least 2).
    pub writers: usize,
}

/// One mode's latencies of write + fdatasync, in µs.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct ModeResult {
    /// `buffered`, `direct` or `io_uring`.
    pub mode: String,
    /// Concurrent writers.
    pub writers: usize,
    /// Appends measured (all writers).
    pub appends: u64,
    /// Median, ms.
    pub p50_ms: f64,
    /// 99th percentile, ms.
    pub p99_ms: f64,
    /// 99.9th percentile, ms.
    pub p999_ms: f64,
    /// Slowest, ms.
    pub max_ms: f64,
    /// Whether p99 is under etcd's guidance.
    pub pass: bool,
}

/// The whole check.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct CheckDiskReport {
    /// The directory measured.
    pub data_dir: String,
    /// Bytes per append.
    pub record_bytes: usize,
    /// Every mode measured.
    pub modes: Vec<ModeResult>,
    /// Modes that could not run here, with the reason.
    pub skipped: Vec<String>,
    /// The verdict: the 1-writer buffered run (how a WAL writes) meets the guidance.
    pub pass: bool,
}

fn io_err(op: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> BenchError {
    let path = path.to_path_buf();
    move |source| BenchError::Io { op, path, source }
}

/// Runs the check. Errors: a data dir holding files, bad sizes, or a failing syscall
/// (the error names the file); the files made are removed in every case.
pub fn check_disk(c: &CheckDiskConfig) -> Result<CheckDiskReport> {
    if c.writes == 0 || c.writers < 2 || c.record_bytes == 0 || c.record_bytes > 1 << 20 {
        return Err(BenchError::InvalidArg {
            flag: "writes/--writers/--record-bytes",
            reason: "need --writes >= 1, --writers >= 2 and 1 <= --record-bytes <= 1048576".into(),
        });
    }
    if let Ok(mut entries) = std::fs::read_dir(&c.data_dir) {
        if entries.next().is_some() {
            return Err(BenchError::Refused(format!(
                "{} is not empty: check disk runs only on a directory without data",
                c.data_dir.display()
            )));
        }
    }
    std::fs::create_dir_all(&c.data_dir).map_err(io_err("create", &c.data_dir))?;
    let work = tempfile::Builder::new()
        .prefix(".cairn-check-disk-")
        .tempdir_in(&c.data_dir)
        .map_err(io_err("create temp dir", &c.data_dir))?;
    let mut modes = Vec::new();
    let mut skipped = Vec::new();
    for mode in [Mode::Buffered, Mode::Direct, Mode::IoUring] {
        for writers in [1, c.writers] {
            match run_mode(work.path(), c, mode, writers) {
                Ok(m) => modes.push(m),
                Err(BenchError::Refused(why)) if mode == Mode::IoUring => {
                    skipped.push(format!("io_uring: {why}"));
                    break;
                }
                Err(e) => return Err(e),
            }
        }
    }
    drop(work);
    let pass = modes[0].pass;
    Ok(CheckDiskReport {
        data_dir: c.data_dir.display().to_string(),
        record_bytes: c.record_bytes,
        modes,
        skipped,
        pass,
    })
}

/// How appends reach the disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Buffered,
    Direct,
    IoUring,
}

fn run_mode(dir: &Path, c: &CheckDiskConfig, mode: Mode, writers: usize) -> Result<ModeResult> {
    let name = match mode {
        Mode::Buffered => "buffered",
        Mode::Direct => "direct",
        Mode::IoUring => "io_uring",
    };
    let histograms: Vec<Result<Histogram<u64>>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..writers)
            .map(|w| {
                let path = dir.join(format!("{name}-{writers}-{w}.seg"));
                scope.spawn(move || match mode {
                    Mode::IoUring => append_and_sync_io_uring(&path, c),
                    _ => append_and_sync(&path, c, mode == Mode::Direct),
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    });
    let mut all = new_latency_histogram();
    for h in histograms {
        all.add(h?).expect("histograms share their bounds");
    }
    let p99 = all.value_at_quantile(0.99);
    Ok(ModeResult {
        mode: name.to_string(),
        writers,
        appends: all.len(),
        p50_ms: us_to_ms(all.value_at_quantile(0.50)),
        p99_ms: us_to_ms(p99),
        p999_ms: us_to_ms(all.value_at_quantile(0.999)),
        max_ms: us_to_ms(all.max()),
        pass: p99 < P99_FDATASYNC_GUIDANCE_US,
    })
}

/// A zeroed buffer of `len` bytes whose start is [`DIRECT_ALIGN`]-aligned.
fn aligned_buffer(len: usize) -> (Vec<u8>, usize) {
    let buf = vec![0xa5u8; len + DIRECT_ALIGN];
    let start = buf.as_ptr().align_offset(DIRECT_ALIGN);
    (buf, start)
}

fn append_and_sync(path: &Path, c: &CheckDiskConfig, direct: bool) -> Result<Histogram<u64>> {
    let mut options = OpenOptions::new();
    options.create_new(true).read(true).write(true);
    if direct {
        options.custom_flags(libc::O_DIRECT);
    }
    let file: File = options.open(path).map_err(io_err("open", path))?;
    // SAFETY: fallocate(2) on a file descriptor this function owns.
    let rc = unsafe {
        libc::fallocate(
            std::os::fd::AsRawFd::as_raw_fd(&file),
            0,
            0,
            SEGMENT_BYTES as i64,
        )
    };
    if rc != 0 {
        return Err(io_err("fallocate", path)(std::io::Error::last_os_error()));
    }
    file.sync_all().map_err(io_err("fsync", path))?;
    let len = if direct {
        c.record_bytes.div_ceil(DIRECT_ALIGN) * DIRECT_ALIGN
    } else {
        c.record_bytes
    };
    let (buf, start) = aligned_buffer(len);
    let record = &buf[start..start + len];
    let mut histogram = new_latency_histogram();
    let mut offset = 0u64;
    for _ in 0..c.writes {
        if offset + len as u64 > SEGMENT_BYTES {
            offset = 0;
        }
        let started = Instant::now();
        file.write_all_at(record, offset)
            .map_err(io_err("write", path))?;
        file.sync_data().map_err(io_err("fdatasync", path))?;
        record_latency_us(&mut histogram, started.elapsed().as_micros() as u64);
        offset += len as u64;
    }
    drop(file);
    std::fs::remove_file(path).map_err(io_err("remove", path))?;
    Ok(histogram)
}

/// [`append_and_sync`] through io_uring on a glommio executor of this thread.
/// Errors: `Refused` when no executor can be made here (io_uring unavailable).
fn append_and_sync_io_uring(path: &Path, c: &CheckDiskConfig) -> Result<Histogram<u64>> {
    let executor = glommio::LocalExecutorBuilder::default()
        .make()
        .map_err(|e| BenchError::Refused(format!("no io_uring executor: {e}")))?;
    let io = |op: &'static str| {
        let path = path.to_path_buf();
        move |e: glommio::GlommioError<()>| BenchError::Io {
            op,
            path,
            source: std::io::Error::other(e.to_string()),
        }
    };
    executor.run(async {
        let file = glommio::io::DmaFile::create(path)
            .await
            .map_err(io("open"))?;
        file.pre_allocate(SEGMENT_BYTES, false)
            .await
            .map_err(io("fallocate"))?;
        file.fdatasync().await.map_err(io("fsync"))?;
        let len = c.record_bytes.div_ceil(DIRECT_ALIGN) * DIRECT_ALIGN;
        let mut histogram = new_latency_histogram();
        let mut offset = 0u64;
        for _ in 0..c.writes {
            if offset + len as u64 > SEGMENT_BYTES {
                offset = 0;
            }
            let mut buf = file.alloc_dma_buffer(len);
            buf.as_bytes_mut().fill(0xa5);
            let started = Instant::now();
            file.write_at(buf, offset).await.map_err(io("write"))?;
            file.fdatasync().await.map_err(io("fdatasync"))?;
            record_latency_us(&mut histogram, started.elapsed().as_micros() as u64);
            offset += len as u64;
        }
        file.remove().await.map_err(io("remove"))?;
        file.close().await.map_err(io("close"))?;
        Ok(histogram)
    })
}

/// The report as text: one line per mode and the verdict.
pub fn render_text(r: &CheckDiskReport) -> String {
    let mut out = format!(
        "disk check in {} ({} B appends, each followed by fdatasync)\n",
        r.data_dir, r.record_bytes
    );
    out.push_str("MODE      WRITERS  APPENDS  P50(ms)  P99(ms)  P99.9(ms)  MAX(ms)  P99<10ms\n");
    for m in &r.modes {
        let ms = |v: f64| format_ms((v * 1000.0).round() as u64);
        out.push_str(&format!(
            "{:<9} {:>7}  {:>7}  {:>7}  {:>7}  {:>9}  {:>7}  {}\n",
            m.mode,
            m.writers,
            m.appends,
            ms(m.p50_ms),
            ms(m.p99_ms),
            ms(m.p999_ms),
            ms(m.max_ms),
            if m.pass { "yes" } else { "no" }
        ));
    }
    for why in &r.skipped {
        out.push_str(&format!("skipped {why}\n"));
    }
    out.push_str(if r.pass {
        "PASS: the WAL's fdatasync p99 is under 10 ms (etcd's guidance)\n"
    } else {
        "FAIL: the WAL's fdatasync p99 is 10 ms or more; etcd's guidance asks for less\n"
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn measures_every_mode_and_refuses_a_dir_with_data() {
        let dir = tempfile::tempdir().unwrap();
        let c = CheckDiskConfig {
            data_dir: dir.path().join("empty"),
            writes: 20,
            record_bytes: 2048,
            writers: 2,
        };
        let r = check_disk(&c).unwrap();
        assert_eq!(r.modes.len() + 2 * r.skipped.len(), 6);
        assert_eq!(r.modes[1].appends, 40);
        assert!(r
            .modes
            .iter()
            .all(|m| m.p50_ms > 0.0 && m.max_ms >= m.p99_ms));
        assert_eq!(
            std::fs::read_dir(&c.data_dir).unwrap().count(),
            0,
            "cleaned up"
        );
        let text = render_text(&r);
        assert!(text.contains("buffered") && text.contains("direct"));
        std::fs::write(c.data_dir.join("member"), b"data").unwrap();
        assert!(check_disk(&c)
            .unwrap_err()
            .to_string()
            .contains("is not empty"));
    }
}
