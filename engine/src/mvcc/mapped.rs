//! A file mapped shared and writable whose every mapped byte has a disk block.
//!
//! Writing through a `MAP_SHARED` mapping allocates nothing at write time: a page of a
//! sparse file (a hole) gets its block only when the kernel writes it back, and if the disk
//! is full then, the writing thread gets SIGBUS at the store instruction instead of ENOSPC.
//! So the invariants that make the engine's `unsafe` mapping sound are enforced here, by
//! construction, not left to callers:
//!
//! 1. Nothing is mapped before `[0, len)` is allocated: [`MappedFile::allocate_and_map`]
//!    runs fallocate (mode 0: blocks reserved, holes filled, file at least `len` bytes) on
//!    the file first and refuses, with an error naming the file, where that fails (disk
//!    full) or the filesystem has no fallocate.
//! 2. The mapping never outlives its file's length: the type owns the `File` and offers no
//!    way to truncate it or to reach the descriptor, so nothing in this process shrinks a
//!    mapped file (another process cannot either: the server holds the data dir's lock).
//! 3. Every access is bounds-checked against `len` with `assert!`, kept in release builds:
//!    a bad offset is a programmer error and panics before touching memory.
//!
//! What the type cannot promise, and callers must: a range is not read while it is being
//! written (the store publishes a record only after writing it, under its lock).
//! A media error under a mapped page is still SIGBUS when the page is read back from disk;
//! fdatasync reports write-back errors as EIO, which the server treats as fatal.

use std::fs::File;
use std::path::{Path, PathBuf};

use memmap2::MmapRaw;

use crate::error::{Error, Result};
use crate::fsutil::{self, Allocation};

/// A file mapped over `[0, len)`, every byte of which is allocated on disk.
pub(crate) struct MappedFile {
    path: PathBuf,
    file: File,
    mmap: MmapRaw,
    len: u64,
}

impl MappedFile {
    /// Allocates `[0, len)` of `file` (opened read-write) with fallocate, then maps it
    /// shared. Errors: `Io` naming `path` when fallocate fails (ENOSPC, EIO) or the
    /// filesystem has no fallocate, or when mmap fails.
    pub(crate) fn allocate_and_map(file: File, path: &Path, len: u64) -> Result<MappedFile> {
        fsutil::preallocate(&file, path, len, Allocation::Required)?;
        let size = file.metadata().map_err(|e| Error::io(path, e))?.len();
        assert!(
            size >= len,
            "fallocate left {} at {size} bytes, below {len}",
            path.display()
        );
        let mmap = memmap2::MmapOptions::new()
            .len(usize::try_from(len).expect("a mapped length fits in usize"))
            .map_raw(&file)
            .map_err(|e| Error::io(path, e))?;
        assert_eq!(mmap.len() as u64, len);
        Ok(MappedFile {
            path: path.to_path_buf(),
            file,
            mmap,
            len,
        })
    }

    /// The mapped (and allocated) length in bytes.
    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    /// The file's path, for errors.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Records that the file was renamed to `path` (the mapping is unaffected).
    pub(crate) fn set_path(&mut self, path: PathBuf) {
        self.path = path;
    }

    /// Copies `bytes` to `offset`. Panics when the range is not inside `[0, len)`.
    /// The caller guarantees no reader looks at the range meanwhile.
    pub(crate) fn write(&self, offset: u64, bytes: &[u8]) {
        let end = offset.checked_add(bytes.len() as u64);
        assert!(
            end.is_some_and(|end| end <= self.len),
            "write outside the mapping"
        );
        // SAFETY: the range is inside the mapping (asserted), whose pages all have disk
        // blocks (fallocate before mapping) and whose file is never truncated (this type
        // owns it and offers no way to); the caller guarantees no concurrent reader.
        unsafe {
            std::ptr::copy_nonoverlapping(
                bytes.as_ptr(),
                self.mmap.as_mut_ptr().add(offset as usize),
                bytes.len(),
            );
        }
    }

    /// The `bytes` bytes at `offset`, or `None` when the range is not inside `[0, len)`.
    pub(crate) fn read(&self, offset: u64, bytes: u64) -> Option<&[u8]> {
        let end = offset.checked_add(bytes)?;
        if end > self.len {
            return None;
        }
        // SAFETY: inside the mapping, which lives as long as `self` and whose file is
        // never truncated; published ranges are never written again.
        Some(unsafe {
            std::slice::from_raw_parts(self.mmap.as_ptr().add(offset as usize), bytes as usize)
        })
    }

    /// A new read-only descriptor of the file (for streaming it elsewhere): it cannot
    /// truncate or write the file.
    pub(crate) fn open_read_only(&self) -> Result<File> {
        File::open(&self.path).map_err(|e| Error::io(&self.path, e))
    }

    /// fdatasyncs the file: the pages written through the mapping reach the disk.
    pub(crate) fn sync(&self) -> Result<()> {
        fsutil::inject("value-sync", &self.path)?;
        self.file.sync_data().map_err(|e| Error::io(&self.path, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_only_allocated_files_and_checks_bounds() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .unwrap();
        // A sparse file: mapping it fills the hole first.
        file.set_len(8192).unwrap();
        let mapped = MappedFile::allocate_and_map(file, &path, 8192).unwrap();
        let blocks = {
            use std::os::unix::fs::MetadataExt;
            std::fs::metadata(&path).unwrap().blocks()
        };
        assert!(blocks * 512 >= 8192, "{blocks} blocks of 512 bytes");
        mapped.write(8, b"abc");
        assert_eq!(mapped.read(8, 3), Some(&b"abc"[..]));
        assert_eq!(mapped.read(8190, 3), None);
        assert_eq!(mapped.read(u64::MAX, 2), None);
        let outside =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| mapped.write(8190, b"xyz")));
        assert!(outside.is_err());
        mapped.sync().unwrap();
    }
}
