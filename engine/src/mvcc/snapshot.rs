//! Shipping the whole store to another member (a Raft snapshot for a follower whose log
//! the leader no longer holds) and installing it there.
//!
//! What ships is the newest checkpoint and every value segment it references, cut at the
//! checkpoint's tails: a consistent image at the checkpoint's applied index, taken without
//! stopping writes (segments are append-only; the files are opened when the source is
//! made, so a later checkpoint or a GC that deletes them does not disturb the stream).
//!
//! Archive format, streamed in chunks of at most [`SNAPSHOT_CHUNK_BYTES`] (integers
//! little-endian):
//!
//! ```text
//! magic b"CAIRNSNP" | version u8 (= 1)
//! per file:  name_len u16 (1..=NAME_BYTES_MAX) | name | allocate u64 | size u64 | size bytes
//! end:       name_len u16 = 0 | crc32 u32 (IEEE, of every byte before it)
//! ```
//!
//! `name` is `NNNNNNNNNNNNNNNN.ckpt` or `values/NNNNNNNNNNNNNNNN.val`; `allocate` is the
//! file's preallocated size (a value segment's capacity), at least `size`.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use bytes::{BufMut, Bytes, BytesMut};

use super::checkpoint::{self, CHECKPOINT_EXT};
use super::values::VALUE_EXT;
use super::Mvcc;
use crate::error::{Error, Result};
use crate::fsutil;

/// Largest chunk [`SnapshotSource::next_chunk`] returns.
pub const SNAPSHOT_CHUNK_BYTES: usize = 1024 * 1024;
/// Longest file name in an archive.
const NAME_BYTES_MAX: usize = 64;
/// Largest file in an archive (1 TiB): a bound against absurd sizes from a bad peer.
const FILE_BYTES_MAX: u64 = 1 << 40;
const MAGIC: &[u8; 8] = b"CAIRNSNP";
const VERSION: u8 = 1;

/// A consistent image of the store at its newest checkpoint, read as archive chunks.
pub struct SnapshotSource {
    applied_index: u64,
    files: VecDeque<(String, File, u64, u64)>,
    /// The file being read and the offset reached.
    current: Option<(File, u64, u64)>,
    started: bool,
    finished: bool,
    hasher: crc32fast::Hasher,
    total_bytes: u64,
}

impl Mvcc {
    /// The store as of its newest checkpoint, to ship to another member.
    /// Errors: no checkpoint yet (`InvalidOptions`), or a file that cannot be opened.
    pub fn snapshot_source(&self) -> Result<SnapshotSource> {
        if self.checkpoint_seq == 0 {
            return Err(Error::InvalidOptions(
                "the store has no checkpoint to ship yet".into(),
            ));
        }
        let mut files = VecDeque::new();
        let ckpt = fsutil::seq_path(&self.dir, self.checkpoint_seq, CHECKPOINT_EXT);
        let file = File::open(&ckpt).map_err(|e| Error::io(&ckpt, e))?;
        let len = file.metadata().map_err(|e| Error::io(&ckpt, e))?.len();
        let name = format!("{:016}.{CHECKPOINT_EXT}", self.checkpoint_seq);
        files.push_back((name, file, len, len));
        let st = self.state.read();
        for (seq, tail) in &self.checkpoint_tails {
            let Some(seg) = st.segments.get(seq) else {
                return Err(Error::corruption(
                    &ckpt,
                    0,
                    format!("value segment {seq} of the checkpoint is gone"),
                ));
            };
            let file = seg.open_read_only()?;
            let name = format!("values/{seq:016}.{VALUE_EXT}");
            files.push_back((name, file, seg.capacity, *tail));
        }
        let total_bytes = files.iter().map(|f| f.3).sum();
        Ok(SnapshotSource {
            applied_index: self.applied_index,
            files,
            current: None,
            started: false,
            finished: false,
            hasher: crc32fast::Hasher::new(),
            total_bytes,
        })
    }

    /// Replaces the whole store with a snapshot that a [`SnapshotReceiver`] finished in
    /// `received` (a directory beside the store's). The store's directory is swapped for
    /// it (the old one is renamed to `<dir>.old`, then deleted), and the store reloads in
    /// place: every [`super::MvccReader`] sees the new contents at once. A crash between
    /// the two renames is undone by [`Mvcc::open`]. Returns the new applied index.
    pub fn install(&mut self, received: &Path) -> Result<u64> {
        // A spare segment being created must not land in the directory swapped in.
        if let Some(spare) = self.take_spare()? {
            std::fs::remove_file(&spare.path).map_err(|e| Error::io(&spare.path, e))?;
        }
        let old = old_dir(&self.dir);
        if old.exists() {
            std::fs::remove_dir_all(&old).map_err(|e| Error::io(&old, e))?;
        }
        std::fs::rename(&self.dir, &old).map_err(|e| Error::io(&self.dir, e))?;
        std::fs::rename(received, &self.dir).map_err(|e| Error::io(received, e))?;
        let parent = self.dir.parent().unwrap_or(Path::new("."));
        fsutil::sync_dir(parent)?;
        // Opening deletes `<dir>.old` (recover_install).
        let mut fresh = Mvcc::open(&self.dir, self.options.clone())?;
        {
            let mut shared = self.state.write();
            let mut loaded = fresh.state.write();
            std::mem::swap(&mut *shared, &mut *loaded);
        }
        fresh.state = self.state.clone();
        self.active_free.store(
            fresh.active_free.load(std::sync::atomic::Ordering::Acquire),
            std::sync::atomic::Ordering::Release,
        );
        fresh.active_free = self.active_free.clone();
        *self = fresh;
        Ok(self.applied_index)
    }
}

/// `<dir>.old`: where [`Mvcc::install`] moves the replaced store.
pub(crate) fn old_dir(dir: &Path) -> PathBuf {
    let mut name = dir.file_name().unwrap_or_default().to_os_string();
    name.push(".old");
    dir.with_file_name(name)
}

/// Undoes or finishes an interrupted [`Mvcc::install`] before `dir` is opened: with `dir`
/// missing and `<dir>.old` present the swap stopped between its renames, so the old store
/// comes back; with both present, the old one is deleted.
pub(crate) fn recover_install(dir: &Path) -> Result<()> {
    let old = old_dir(dir);
    if !old.exists() {
        return Ok(());
    }
    if dir.exists() {
        std::fs::remove_dir_all(&old).map_err(|e| Error::io(&old, e))
    } else {
        std::fs::rename(&old, dir).map_err(|e| Error::io(&old, e))
    }
}

impl SnapshotSource {
    /// The applied index of the checkpoint this image is.
    pub fn applied_index(&self) -> u64 {
        self.applied_index
    }

    /// Bytes of file data the archive carries (framing excluded).
    pub fn total_bytes(&self) -> u64 {
        self.total_bytes
    }

    /// The next chunk of the archive (at most [`SNAPSHOT_CHUNK_BYTES`]), `None` after the
    /// last. Errors: a read failed or a file is shorter than recorded.
    pub fn next_chunk(&mut self) -> Result<Option<Bytes>> {
        if self.finished {
            return Ok(None);
        }
        let mut out = BytesMut::with_capacity(SNAPSHOT_CHUNK_BYTES);
        if !self.started {
            self.started = true;
            out.put_slice(MAGIC);
            out.put_u8(VERSION);
        }
        while out.len() < SNAPSHOT_CHUNK_BYTES {
            if self.current.is_none() {
                let Some((name, file, allocate, size)) = self.files.pop_front() else {
                    out.put_u16_le(0);
                    self.hasher.update(&out);
                    let crc = std::mem::take(&mut self.hasher).finalize();
                    out.put_u32_le(crc);
                    self.finished = true;
                    return Ok(Some(out.freeze()));
                };
                out.put_u16_le(name.len() as u16);
                out.put_slice(name.as_bytes());
                out.put_u64_le(allocate);
                out.put_u64_le(size);
                self.current = Some((file, 0, size));
                continue;
            }
            let (file, offset, size) = self.current.as_mut().expect("a current file");
            let room = SNAPSHOT_CHUNK_BYTES - out.len();
            let want = room.min((*size - *offset) as usize);
            let start = out.len();
            out.resize(start + want, 0);
            file.read_exact_at(&mut out[start..], *offset)
                .map_err(|e| Error::io("snapshot source file", e))?;
            *offset += want as u64;
            if *offset == *size {
                self.current = None;
            }
        }
        self.hasher.update(&out);
        Ok(Some(out.freeze()))
    }
}

/// Parser state of a [`SnapshotReceiver`].
enum Expect {
    Magic,
    FileHeader,
    FileData {
        file: File,
        path: PathBuf,
        written: u64,
        size: u64,
    },
    Done,
}

/// Writes an incoming archive into a fresh directory, checking names, sizes and the CRC.
pub struct SnapshotReceiver {
    dir: PathBuf,
    buf: BytesMut,
    expect: Expect,
    hasher: crc32fast::Hasher,
    /// Files written, with the preallocation each asked for (made in `finish`).
    files: Vec<(PathBuf, u64)>,
}

impl SnapshotReceiver {
    /// Starts receiving into `dir`, which is deleted first if it exists.
    pub fn create(dir: &Path) -> Result<SnapshotReceiver> {
        if dir.exists() {
            std::fs::remove_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        }
        fsutil::create_dir(&dir.join("values"))?;
        Ok(SnapshotReceiver {
            dir: dir.to_path_buf(),
            buf: BytesMut::new(),
            expect: Expect::Magic,
            hasher: crc32fast::Hasher::new(),
            files: Vec::new(),
        })
    }

    fn bad(&self, reason: impl Into<String>) -> Error {
        Error::corruption(&self.dir, 0, format!("snapshot stream: {}", reason.into()))
    }

    /// Takes the next chunk (any split of the archive).
    pub fn push(&mut self, chunk: &[u8]) -> Result<()> {
        self.buf.extend_from_slice(chunk);
        loop {
            match &mut self.expect {
                Expect::Magic => {
                    if self.buf.len() < MAGIC.len() + 1 {
                        return Ok(());
                    }
                    let head = self.buf.split_to(MAGIC.len() + 1);
                    if &head[..8] != MAGIC || head[8] != VERSION {
                        return Err(self.bad("not a Cairn snapshot of version 1"));
                    }
                    self.hasher.update(&head);
                    self.expect = Expect::FileHeader;
                }
                Expect::FileHeader => {
                    if self.buf.len() < 2 {
                        return Ok(());
                    }
                    let name_len = u16::from_le_bytes([self.buf[0], self.buf[1]]) as usize;
                    if name_len == 0 {
                        if self.buf.len() < 6 {
                            return Ok(());
                        }
                        self.hasher.update(&self.buf[..2]);
                        let crc = u32::from_le_bytes(self.buf[2..6].try_into().expect("4"));
                        let want = std::mem::take(&mut self.hasher).finalize();
                        if crc != want {
                            return Err(self.bad(format!("crc {crc:#x}, computed {want:#x}")));
                        }
                        let _ = self.buf.split_to(6);
                        if !self.buf.is_empty() {
                            return Err(self.bad("bytes after the end of the archive"));
                        }
                        self.expect = Expect::Done;
                        return Ok(());
                    }
                    if name_len > NAME_BYTES_MAX {
                        return Err(self.bad(format!("file name of {name_len} bytes")));
                    }
                    if self.buf.len() < 2 + name_len + 16 {
                        return Ok(());
                    }
                    let head = self.buf.split_to(2 + name_len + 16);
                    self.hasher.update(&head);
                    let name = std::str::from_utf8(&head[2..2 + name_len])
                        .map_err(|_| self.bad("file name is not UTF-8"))?
                        .to_string();
                    let at = 2 + name_len;
                    let allocate = u64::from_le_bytes(head[at..at + 8].try_into().expect("8"));
                    let size = u64::from_le_bytes(head[at + 8..at + 16].try_into().expect("8"));
                    if !valid_name(&name) {
                        return Err(self.bad(format!("unexpected file {name:?}")));
                    }
                    if size > allocate || allocate > FILE_BYTES_MAX {
                        return Err(self.bad(format!(
                            "{name}: size {size}, preallocation {allocate} (at most {FILE_BYTES_MAX})"
                        )));
                    }
                    let path = self.dir.join(&name);
                    let file = OpenOptions::new()
                        .write(true)
                        .create_new(true)
                        .open(&path)
                        .map_err(|e| Error::io(&path, e))?;
                    // Preallocated by `finish` (value segments are mapped once installed:
                    // their blocks must exist), once the CRC vouches for `allocate`: a
                    // damaged stream must not reserve up to FILE_BYTES_MAX of disk.
                    self.files.push((path.clone(), allocate));
                    self.expect = Expect::FileData {
                        file,
                        path,
                        written: 0,
                        size,
                    };
                }
                Expect::FileData {
                    file,
                    path,
                    written,
                    size,
                } => {
                    let take = self.buf.len().min((*size - *written) as usize);
                    if take > 0 {
                        let data = self.buf.split_to(take);
                        file.write_all_at(&data, *written)
                            .map_err(|e| Error::io(&*path, e))?;
                        self.hasher.update(&data);
                        *written += take as u64;
                    }
                    if *written < *size {
                        return Ok(());
                    }
                    self.expect = Expect::FileHeader;
                }
                Expect::Done => {
                    if self.buf.is_empty() {
                        return Ok(());
                    }
                    return Err(self.bad("bytes after the end of the archive"));
                }
            }
        }
    }

    /// Checks that the archive ended (its CRC verified), preallocates and syncs every file
    /// and the directories, and returns the applied index of the checkpoint it holds
    /// (loaded and verified, with the header and recorded tail of every value segment it
    /// references, as `Mvcc::open` checks them).
    pub fn finish(self) -> Result<u64> {
        if !matches!(self.expect, Expect::Done) {
            return Err(self.bad("the stream ended before the end of the archive"));
        }
        let mut checkpoints = 0;
        let mut applied = 0;
        for (path, allocate) in &self.files {
            let f = OpenOptions::new()
                .write(true)
                .open(path)
                .map_err(|e| Error::io(path, e))?;
            fsutil::preallocate(&f, path, *allocate, fsutil::Allocation::Required)?;
            f.sync_all().map_err(|e| Error::io(path, e))?;
        }
        for (path, _) in &self.files {
            if path.extension().is_some_and(|e| e == CHECKPOINT_EXT) {
                checkpoints += 1;
                // Everything `Mvcc::open` checks (the checkpoint and the headers and tails
                // of the value segments it references): `Mvcc::install` swaps the store
                // for this directory before opening it, so what fails here must never get
                // that far (found by `cairn-fuzz snapshot`).
                let values = self.dir.join("values");
                applied = checkpoint::load_checkpoint(path, &values)?.0.applied_index;
            }
        }
        if checkpoints != 1 {
            return Err(self.bad(format!("{checkpoints} checkpoints, want 1")));
        }
        fsutil::sync_dir(&self.dir.join("values"))?;
        fsutil::sync_dir(&self.dir)?;
        if let Some(parent) = self.dir.parent() {
            fsutil::sync_dir(parent)?;
        }
        Ok(applied)
    }
}

/// The applied index of a finished snapshot directory's checkpoint, if it holds one.
pub fn received_applied_index(dir: &Path) -> Result<Option<u64>> {
    if !dir.exists() {
        return Ok(None);
    }
    let ckpts = fsutil::list_seq_files(dir, CHECKPOINT_EXT)?;
    match ckpts.as_slice() {
        [(_, path)] => Ok(Some(checkpoint::load(path)?.applied_index)),
        _ => Ok(None),
    }
}

fn valid_name(name: &str) -> bool {
    let digits = |s: &str| s.len() == 16 && s.bytes().all(|b| b.is_ascii_digit());
    if let Some(stem) = name.strip_suffix(".ckpt") {
        return digits(stem);
    }
    name.strip_prefix("values/")
        .and_then(|n| n.strip_suffix(".val"))
        .is_some_and(digits)
}
