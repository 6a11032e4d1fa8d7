//! Small filesystem helpers: sequence-numbered file names, preallocation, directory sync.

use std::fs::{File, OpenOptions};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// `dir/<seq zero-padded to 16 digits>.<ext>`, e.g. `0000000000000001.wal`.
pub(crate) fn seq_path(dir: &Path, seq: u64, ext: &str) -> PathBuf {
    dir.join(format!("{seq:016}.{ext}"))
}

/// Lists `(seq, path)` of the files in `dir` named `<16 digits>.<ext>`, ascending by seq.
pub(crate) fn list_seq_files(dir: &Path, ext: &str) -> Result<Vec<(u64, PathBuf)>> {
    let mut out = Vec::new();
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(stem) = name.strip_suffix(ext).and_then(|s| s.strip_suffix('.')) else {
            continue;
        };
        if stem.len() != 16 || !stem.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let Ok(seq) = stem.parse::<u64>() else {
            continue;
        };
        out.push((seq, entry.path()));
    }
    out.sort();
    Ok(out)
}

/// Removes every file in `dir` whose name ends with `suffix` (leftover temp files).
pub(crate) fn remove_with_suffix(dir: &Path, suffix: &str) -> Result<()> {
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        if entry.file_name().to_string_lossy().ends_with(suffix) {
            let path = entry.path();
            std::fs::remove_file(&path).map_err(|e| Error::io(&path, e))?;
        }
    }
    Ok(())
}

/// fsyncs a directory so that creates, renames and deletes inside it are durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    let f = File::open(dir).map_err(|e| Error::io(dir, e))?;
    f.sync_all().map_err(|e| Error::io(dir, e))
}

/// Creates the directory (and parents) if missing.
pub(crate) fn create_dir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))
}

/// Fail points on the engine's writes (tikv `fail`, only with the `failpoints` feature):
/// when the fail point `point` is configured `return(ERRNO)` (`EIO`, `ENOSPC`,
/// `EOPNOTSUPP`), returns that error as an `Error::Io` on `path`, as the system call would
/// have. Without the feature it does nothing and costs nothing. The points:
///
/// | name | the write |
/// |---|---|
/// | `fallocate` | every segment preallocation (WAL and value segments) |
/// | `value-create` | creating a value segment (at start, and when the active one is full) |
/// | `wal-write` | the pwrite of a batch of WAL records |
/// | `value-sync` | the fdatasync of a value segment at a checkpoint |
/// | `checkpoint-write` | writing a checkpoint file |
#[inline(always)]
pub(crate) fn inject(point: &str, path: &Path) -> Result<()> {
    match injected(point) {
        Some(error) => Err(Error::io(path, error)),
        None => Ok(()),
    }
}

/// The error the fail point `point` injects, if configured (see [`inject`]).
#[inline(always)]
fn injected(point: &str) -> Option<std::io::Error> {
    #[cfg(feature = "failpoints")]
    {
        fail::eval(point, |arg| {
            let errno = match arg.as_deref() {
                Some("ENOSPC") => libc::ENOSPC,
                Some("EOPNOTSUPP") => libc::EOPNOTSUPP,
                _ => libc::EIO,
            };
            std::io::Error::from_raw_os_error(errno)
        })
    }
    #[cfg(not(feature = "failpoints"))]
    {
        let _ = point;
        None
    }
}

/// Whether `file`'s blocks must be reserved or may stay sparse.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Allocation {
    /// fallocate, or `Err` (also where the filesystem has no fallocate): for files that are
    /// memory-mapped and written through the mapping, where a page without a block would
    /// turn a full disk into SIGBUS instead of an error.
    Required,
    /// fallocate where supported, else `set_len` (a sparse file): for files written with
    /// pwrite only, which reports a full disk as ENOSPC.
    BestEffort,
}

/// Reserves `bytes` of disk for `file` so that later writes inside that range allocate
/// nothing and do not change the file size (fallocate mode 0, which also allocates any
/// holes below `bytes` in an existing file). Where the filesystem has no fallocate,
/// `BestEffort` falls back to `set_len` and `Required` fails with a message naming the
/// file and the fix.
pub(crate) fn preallocate(file: &File, path: &Path, bytes: u64, how: Allocation) -> Result<()> {
    let len = libc::off_t::try_from(bytes).map_err(|_| {
        Error::InvalidOptions(format!("preallocation of {bytes} bytes is too large"))
    })?;
    let err = match injected("fallocate") {
        Some(err) => err,
        None => {
            // SAFETY: fallocate on a valid, open file descriptor with in-range arguments.
            match unsafe { libc::fallocate(file.as_raw_fd(), 0, 0, len) } {
                0 => return Ok(()),
                _ => std::io::Error::last_os_error(),
            }
        }
    };
    allocation_failed(file, path, bytes, how, err)
}

/// What [`preallocate`] does when fallocate failed with `err`.
fn allocation_failed(
    file: &File,
    path: &Path,
    bytes: u64,
    how: Allocation,
    err: std::io::Error,
) -> Result<()> {
    let unsupported = matches!(
        err.raw_os_error(),
        Some(libc::EOPNOTSUPP) | Some(libc::ENOSYS)
    );
    match (unsupported, how) {
        (true, Allocation::BestEffort) => file.set_len(bytes).map_err(|e| Error::io(path, e)),
        (true, Allocation::Required) => Err(Error::io(
            path,
            std::io::Error::new(
                err.kind(),
                format!(
                    "{err}: the filesystem cannot preallocate (fallocate); Cairn memory-maps \
                     value segments and needs their blocks allocated up front: put the data \
                     dir on a filesystem with fallocate (ext4, xfs, btrfs, tmpfs)"
                ),
            ),
        )),
        (false, _) => Err(Error::io(path, err)),
    }
}

/// Creates a new segment file at `path` atomically: writes `header` into `path.tmp`,
/// preallocates `bytes`, fdatasyncs, renames into place and fsyncs the directory.
/// Returns the file opened read-write.
pub(crate) fn create_segment_file(
    path: &Path,
    header: &[u8],
    bytes: u64,
    how: Allocation,
) -> Result<File> {
    use std::os::unix::fs::FileExt;
    let tmp = path.with_extension(format!(
        "{}.tmp",
        path.extension().and_then(|e| e.to_str()).unwrap_or("seg")
    ));
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&tmp)
        .map_err(|e| Error::io(&tmp, e))?;
    preallocate(&file, &tmp, bytes, how)?;
    file.write_all_at(header, 0)
        .map_err(|e| Error::io(&tmp, e))?;
    file.sync_all().map_err(|e| Error::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))?;
    if let Some(parent) = path.parent() {
        sync_dir(parent)?;
    }
    Ok(file)
}
