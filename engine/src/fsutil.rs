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

/// Reserves `bytes` of disk for `file` so that later writes inside that range allocate
/// nothing and do not change the file size (fallocate mode 0; falls back to `set_len`
/// on filesystems without fallocate).
pub(crate) fn preallocate(file: &File, path: &Path, bytes: u64) -> Result<()> {
    let len = libc::off_t::try_from(bytes).map_err(|_| {
        Error::InvalidOptions(format!("preallocation of {bytes} bytes is too large"))
    })?;
    // SAFETY: fallocate on a valid, open file descriptor with in-range arguments.
    let rc = unsafe { libc::fallocate(file.as_raw_fd(), 0, 0, len) };
    if rc == 0 {
        return Ok(());
    }
    let err = std::io::Error::last_os_error();
    match err.raw_os_error() {
        Some(libc::EOPNOTSUPP) | Some(libc::ENOSYS) => {
            file.set_len(bytes).map_err(|e| Error::io(path, e))
        }
        _ => Err(Error::io(path, err)),
    }
}

/// Creates a new segment file at `path` atomically: writes `header` into `path.tmp`,
/// preallocates `bytes`, fdatasyncs, renames into place and fsyncs the directory.
/// Returns the file opened read-write.
pub(crate) fn create_segment_file(path: &Path, header: &[u8], bytes: u64) -> Result<File> {
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
    preallocate(&file, &tmp, bytes)?;
    file.write_all_at(header, 0)
        .map_err(|e| Error::io(&tmp, e))?;
    file.sync_all().map_err(|e| Error::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))?;
    if let Some(parent) = path.parent() {
        sync_dir(parent)?;
    }
    Ok(file)
}
