//! Write-ahead log: preallocated segment files, CRC-checked records, group commit.
//!
//! The on-disk format is documented on [`RecordCodec`]. Recovery rules (raft-engine
//! `pipe_builder.rs`, fjall `journal/batch_reader.rs`, etcd `wal/decoder.go`):
//! - a zero-filled remainder after the last record of a segment is the normal end;
//! - in the LAST segment, a bad record (short, bad length, CRC mismatch, non-zero
//!   padding) after which no valid record can be found is a torn tail: its bytes are
//!   zeroed, the segment is fdatasync'ed and the next append overwrites from there;
//! - a bad record anywhere else, or one followed by a valid record, is corruption:
//!   `open` refuses with [`Error::Corruption`] naming the file and the record offset.

use std::fs::{File, OpenOptions};
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;

use crate::codec::{align8, check_segment_header, encode_segment_header, get_u32, get_u64};
use crate::error::{Error, Result};
use crate::fsutil::{self, Allocation};

/// File extension of WAL segments.
const WAL_EXT: &str = "wal";

/// Options of [`Wal::open`].
#[derive(Clone, Debug)]
pub struct WalOptions {
    /// Preallocated size of each segment file in bytes; a multiple of 4096 within
    /// [`WalOptions::SEGMENT_BYTES_MIN`, `WalOptions::SEGMENT_BYTES_MAX`]. Default 64 MiB.
    /// The largest record a segment holds is `segment_bytes - 32` encoded bytes.
    pub segment_bytes: u64,
}

impl WalOptions {
    /// Smallest allowed `segment_bytes`.
    pub const SEGMENT_BYTES_MIN: u64 = 4096;
    /// Largest allowed `segment_bytes` (1 TiB).
    pub const SEGMENT_BYTES_MAX: u64 = 1 << 40;

    /// Checks the ranges; the error names the option and its allowed range.
    pub fn validate(&self) -> Result<()> {
        let b = self.segment_bytes;
        if !(Self::SEGMENT_BYTES_MIN..=Self::SEGMENT_BYTES_MAX).contains(&b)
            || !b.is_multiple_of(4096)
        {
            return Err(Error::InvalidOptions(format!(
                "segment_bytes {b} must be a multiple of 4096 in [{}, {}]",
                Self::SEGMENT_BYTES_MIN,
                Self::SEGMENT_BYTES_MAX
            )));
        }
        Ok(())
    }
}

impl Default for WalOptions {
    fn default() -> WalOptions {
        WalOptions {
            segment_bytes: 64 << 20,
        }
    }
}

/// One record read back by [`Wal::open`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WalRecord {
    /// Caller-defined record type.
    pub record_type: u8,
    /// Caller tag: the Raft index, or 0 for state records. Used by [`Wal::purge`].
    pub index: u64,
    /// The payload bytes as appended.
    pub payload: Bytes,
}

/// Encoding of WAL segments (all integers little-endian).
///
/// Segment file `NNNNNNNNNNNNNNNN.wal` (16-digit zero-padded sequence number, starting
/// at 1, consecutive), preallocated to `segment_bytes`:
///
/// ```text
/// header (32 bytes):
///   0  magic        8  b"CAIRNWAL"
///   8  version      4  1
///  12  header_crc   4  crc32 (IEEE, crc32fast) of bytes 0..12 and 16..32
///  16  seq          8  the sequence number of the file name
///  24  reserved     8  0
/// records, each starting at an 8-byte aligned offset, from offset 32:
///   0  length       4  bytes after the 8-byte prefix = 9 + payload length (so never 0)
///   4  crc          4  crc32 of bytes 0..4 (length) and 8..8+length (type, index, payload)
///   8  type         1  caller's record type
///   9  index        8  caller's tag (Raft index, 0 for state records)
///  17  payload      length - 9 bytes
///      padding      zeros up to the next multiple of 8
/// end: a length of 0 followed only by zeros (the preallocated remainder).
/// ```
///
/// Limits: an encoded record (header + payload + padding) is at most
/// `segment_bytes - 32` bytes ([`Error::RecordTooLarge`] otherwise) and the payload at
/// most [`RecordCodec::PAYLOAD_BYTES_MAX`].
pub(crate) struct RecordCodec;

impl RecordCodec {
    pub(crate) const MAGIC: [u8; 8] = *b"CAIRNWAL";
    pub(crate) const VERSION: u32 = 1;
    pub(crate) const SEGMENT_HEADER_BYTES: u64 = 32;
    pub(crate) const RECORD_HEADER_BYTES: u64 = 17;
    /// Largest payload whose length fits the 32-bit length field.
    pub(crate) const PAYLOAD_BYTES_MAX: u64 = u32::MAX as u64 - 64;

    /// Encoded size of a record with `payload_bytes` of payload, padding included.
    pub(crate) fn record_bytes(payload_bytes: u64) -> u64 {
        align8(Self::RECORD_HEADER_BYTES + payload_bytes)
    }

    pub(crate) fn encode_header(seq: u64) -> [u8; 32] {
        encode_segment_header(&Self::MAGIC, Self::VERSION, seq, 0)
    }

    pub(crate) fn check_header(data: &[u8], seq: u64) -> std::result::Result<(), String> {
        check_segment_header(data, &Self::MAGIC, Self::VERSION, seq).map(|_| ())
    }

    /// Appends the encoding of one record to `buf`.
    pub(crate) fn encode(buf: &mut Vec<u8>, record_type: u8, index: u64, payload: &[u8]) {
        let start = buf.len();
        let length = 9 + payload.len() as u32;
        buf.extend_from_slice(&length.to_le_bytes());
        buf.extend_from_slice(&[0u8; 4]);
        buf.push(record_type);
        buf.extend_from_slice(&index.to_le_bytes());
        buf.extend_from_slice(payload);
        let mut c = crc32fast::Hasher::new();
        c.update(&buf[start..start + 4]);
        c.update(&buf[start + 8..]);
        let crc = c.finalize();
        buf[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
        let padded = Self::record_bytes(payload.len() as u64) as usize;
        buf.resize(start + padded, 0);
        assert_eq!(buf.len() - start, padded);
        assert_eq!((buf.len() - start) % 8, 0);
    }

    /// Decodes the record at `off`: `Ok(None)` at the clean end (zeros to the end of
    /// `data`), `Ok(Some((record, next_offset)))`, or `Err(reason)` for a bad record.
    /// The record's payload is where it lies in `data`, not a copy.
    pub(crate) fn decode(
        data: &[u8],
        off: usize,
    ) -> std::result::Result<Option<(RecordAt, usize)>, String> {
        assert_eq!(off % 8, 0);
        if off >= data.len() {
            return Ok(None);
        }
        let rest = &data[off..];
        let Some(length) = get_u32(rest, 0) else {
            return if all_zero(rest) {
                Ok(None)
            } else {
                Err("partial record length".into())
            };
        };
        if length == 0 {
            return if all_zero(rest) {
                Ok(None)
            } else {
                Err("zero length followed by non-zero bytes".into())
            };
        }
        if length < 9 {
            return Err(format!("length {length} below the minimum 9"));
        }
        let body_end = 8 + length as usize;
        let padded = align8(body_end as u64) as usize;
        if padded > rest.len() {
            return Err(format!(
                "record of {padded} bytes extends past the segment end"
            ));
        }
        let mut c = crc32fast::Hasher::new();
        c.update(&rest[0..4]);
        c.update(&rest[8..body_end]);
        if get_u32(rest, 4) != Some(c.finalize()) {
            return Err("crc mismatch".into());
        }
        if !all_zero(&rest[body_end..padded]) {
            return Err("non-zero padding".into());
        }
        let record = RecordAt {
            record_type: rest[8],
            index: get_u64(rest, 9).unwrap_or(0),
            payload: off + 17..off + body_end,
        };
        assert_eq!(record.payload.len() + 9, length as usize);
        Ok(Some((record, off + padded)))
    }

    /// True if some valid record starts at an aligned offset after `bad`.
    pub(crate) fn valid_record_after(data: &[u8], bad: usize) -> bool {
        let mut off = bad + 8;
        while off + Self::RECORD_HEADER_BYTES as usize <= data.len() {
            if get_u32(data, off).unwrap_or(0) >= 9 {
                if let Ok(Some(_)) = Self::decode(data, off) {
                    return true;
                }
            }
            off += 8;
        }
        false
    }
}

/// A record decoded in place: its fields, and the range of its payload in the segment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct RecordAt {
    pub(crate) record_type: u8,
    pub(crate) index: u64,
    pub(crate) payload: Range<usize>,
}

fn all_zero(b: &[u8]) -> bool {
    b.iter().all(|&x| x == 0)
}

/// A closed (full) segment kept until purged.
#[derive(Debug)]
struct ClosedSegment {
    path: PathBuf,
    /// Largest `index` tag of its records (0 when none).
    index_max: u64,
}

/// The segment appends go to.
struct ActiveSegment {
    seq: u64,
    path: PathBuf,
    file: Arc<File>,
    /// Next write offset (8-byte aligned).
    offset: u64,
    index_max: u64,
    /// Written since the last sync / sync_handle.
    dirty: bool,
}

/// The write-ahead log. Single owner; `Send`.
///
/// Appends go to the page cache ([`Wal::append`]); durability comes from one
/// fdatasync per batch ([`Wal::sync`] or [`Wal::sync_handle`]), which is the group
/// commit the server builds on.
pub struct Wal {
    dir: PathBuf,
    options: WalOptions,
    closed: Vec<ClosedSegment>,
    active: ActiveSegment,
    /// Files of segments closed by rotation since the last sync, not yet synced.
    unsynced: Vec<(PathBuf, Arc<File>)>,
    /// Encoded records appended to the active segment but not yet written: one pwrite
    /// per batch instead of one per record. Written before any sync, rotation or drop.
    pending: Vec<u8>,
    /// Offset in the active segment where `pending` goes.
    pending_offset: u64,
    /// The next segment, being created by a helper thread as `NNNN.wal.spare`.
    spare: Option<std::thread::JoinHandle<Result<ActiveSegment>>>,
    /// The directory, when a rename into it (a spare put in place) is not synced yet:
    /// the next [`Wal::sync_handle`] syncs it with the segments.
    dir_unsynced: Option<Arc<File>>,
}

/// Bytes of encoded records held before they are written even without a sync.
pub const PENDING_BYTES_MAX: usize = 1024 * 1024;

/// A pending fdatasync created by [`Wal::sync_handle`]; `Send`, runs on any thread.
#[must_use = "the appended records are not durable until SyncHandle::sync returns Ok"]
pub struct SyncHandle {
    files: Vec<(PathBuf, Arc<File>)>,
}

impl SyncHandle {
    /// fdatasyncs every segment written before the handle was made. Once this returns
    /// `Ok`, every record appended before [`Wal::sync_handle`] is durable. A failure
    /// must stop the process (design §3): the page cache state is then unknown.
    ///
    /// Errors: `Io` naming the segment whose fdatasync failed.
    pub fn sync(self) -> Result<()> {
        for (path, f) in &self.files {
            f.sync_data().map_err(|e| Error::io(path, e))?;
        }
        Ok(())
    }

    /// The segment files to fdatasync, for a caller that issues the fdatasync itself
    /// (the server does it through io_uring). Everything appended before the handle was
    /// made is durable once each of these files has been fdatasync'ed.
    pub fn into_files(self) -> Vec<Arc<File>> {
        self.files.into_iter().map(|(_, f)| f).collect()
    }

    /// [`SyncHandle::into_files`] with each segment's path (for errors that name it).
    pub fn into_segments(self) -> Vec<(PathBuf, Arc<File>)> {
        self.files
    }
}

impl Wal {
    /// Opens (or creates) `dir`, scans every segment and verifies every CRC.
    ///
    /// A torn/partial/zeroed tail in the LAST segment is truncated (its bytes zeroed,
    /// the next append overwrites from there) and synced; a bad record anywhere else,
    /// or one followed by a valid record, is `Err(Error::Corruption{file, offset, reason})`;
    /// a missing segment in the sequence is `Corruption` naming the missing file.
    /// Returns every valid record in append order.
    pub fn open(dir: &Path, options: WalOptions) -> Result<(Wal, Vec<WalRecord>)> {
        options.validate()?;
        fsutil::create_dir(dir)?;
        fsutil::remove_with_suffix(dir, ".wal.tmp")?;
        fsutil::remove_with_suffix(dir, ".wal.spare")?;
        fsutil::remove_with_suffix(dir, ".wal.spare.tmp")?;
        let files = fsutil::list_seq_files(dir, WAL_EXT)?;
        let mut records = Vec::new();
        let mut closed = Vec::new();
        let mut active = None;
        for (i, (seq, path)) in files.iter().enumerate() {
            if i > 0 && *seq != files[i - 1].0 + 1 {
                let missing = fsutil::seq_path(dir, files[i - 1].0 + 1, WAL_EXT);
                return Err(Error::corruption(missing, 0, "missing wal segment"));
            }
            let last = i + 1 == files.len();
            let mut data = std::fs::read(path).map_err(|e| Error::io(path, e))?;
            RecordCodec::check_header(&data, *seq)
                .map_err(|reason| Error::corruption(path, 0, reason))?;
            let mut found = Vec::new();
            let (end, index_max) = scan_segment(path, &data, last, &mut found)?;
            if last {
                let file = OpenOptions::new()
                    .read(true)
                    .write(true)
                    .open(path)
                    .map_err(|e| Error::io(path, e))?;
                if (end as usize) < data.len() && !all_zero(&data[end as usize..]) {
                    zero_tail(&file, path, &data, end)?;
                }
                active = Some(ActiveSegment {
                    seq: *seq,
                    path: path.clone(),
                    file: Arc::new(file),
                    offset: end,
                    index_max,
                    dirty: false,
                });
            } else {
                closed.push(ClosedSegment {
                    path: path.clone(),
                    index_max,
                });
            }
            // Payloads are slices of the segment as read (no copy per record); the buffer
            // is first shrunk to the records (the allocator decides whether the
            // preallocated zeros after them are returned or the block kept whole).
            data.truncate(end as usize);
            data.shrink_to_fit();
            let data = Bytes::from(data);
            records.extend(found.into_iter().map(|r| WalRecord {
                record_type: r.record_type,
                index: r.index,
                payload: data.slice(r.payload),
            }));
        }
        let active = match active {
            Some(a) => a,
            None => new_segment(dir, 1, options.segment_bytes)?,
        };
        let wal = Wal {
            dir: dir.to_path_buf(),
            options,
            closed,
            active,
            unsynced: Vec::new(),
            pending: Vec::new(),
            pending_offset: 0,
            spare: None,
            dir_unsynced: None,
        };
        Ok((wal, records))
    }

    /// Largest encoded record (header + payload + padding) one segment holds.
    pub fn record_bytes_max(&self) -> u64 {
        self.options.segment_bytes - RecordCodec::SEGMENT_HEADER_BYTES
    }

    /// Writes one record into the active segment (page cache, pwrite); NOT durable
    /// until a sync. `index` is a caller tag (the Raft index; 0 for state records) used
    /// by [`Wal::purge`]. Rotates to a new preallocated segment when the active one is
    /// full. A record larger than [`Wal::record_bytes_max`] is `Err(RecordTooLarge)`.
    pub fn append(&mut self, record_type: u8, index: u64, payload: &[u8]) -> Result<()> {
        let bytes = RecordCodec::record_bytes(payload.len() as u64);
        if payload.len() as u64 > RecordCodec::PAYLOAD_BYTES_MAX || bytes > self.record_bytes_max()
        {
            return Err(Error::RecordTooLarge {
                bytes,
                limit: self.record_bytes_max().min(RecordCodec::PAYLOAD_BYTES_MAX),
            });
        }
        if self.active.offset + bytes > self.options.segment_bytes {
            self.rotate()?;
        }
        assert_eq!(self.active.offset % 8, 0);
        assert!(self.active.offset + bytes <= self.options.segment_bytes);
        if self.pending.is_empty() {
            self.pending_offset = self.active.offset;
        }
        let before = self.pending.len();
        RecordCodec::encode(&mut self.pending, record_type, index, payload);
        assert_eq!((self.pending.len() - before) as u64, bytes);
        let a = &mut self.active;
        a.offset += bytes;
        a.index_max = a.index_max.max(index);
        a.dirty = true;
        if self.spare.is_none() && a.offset > self.options.segment_bytes / 2 {
            self.prepare_spare();
        }
        if self.pending.len() >= PENDING_BYTES_MAX {
            self.flush()?;
        }
        Ok(())
    }

    /// Writes the pending records (one pwrite) into the page cache.
    fn flush(&mut self) -> Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let a = &self.active;
        assert_eq!(self.pending_offset + self.pending.len() as u64, a.offset);
        fsutil::inject("wal-write", &a.path)?;
        a.file
            .write_all_at(&self.pending, self.pending_offset)
            .map_err(|e| Error::io(&a.path, e))?;
        self.pending.clear();
        Ok(())
    }

    /// fdatasyncs every segment written since the last sync (group commit: append a
    /// whole batch, then sync once). A failure must stop the process (design §3).
    pub fn sync(&mut self) -> Result<()> {
        let handle = self.sync_handle()?;
        handle.sync()
    }

    /// Like [`Wal::sync`] but returns a `Send` handle that performs the fdatasync later
    /// on another thread, so the owner can keep appending the next batch meanwhile.
    /// Everything appended before this call is durable once `handle.sync()` returns Ok.
    ///
    /// Errors: the write of records still held in memory failed (the process must stop).
    pub fn sync_handle(&mut self) -> Result<SyncHandle> {
        self.flush()?;
        let mut files = std::mem::take(&mut self.unsynced);
        if self.active.dirty {
            files.push((self.active.path.clone(), Arc::clone(&self.active.file)));
            self.active.dirty = false;
        }
        if let Some(dir) = self.dir_unsynced.take() {
            // The active segment's name: without it, its records are not durable either.
            files.push((self.dir.clone(), dir));
        }
        Ok(SyncHandle { files })
    }

    /// Deletes the oldest closed segments, in order, while every record of the segment
    /// has `index <= index` (records tagged 0 count as `<=` anything: the server
    /// re-writes its state record after a checkpoint). Stops at the first segment that
    /// does not qualify, so no hole ever appears; never deletes the active segment.
    /// Returns the number of segments removed. [`Wal::take_purgeable`] and
    /// [`Wal::remove_segments`] are the same in two steps, the second for another thread.
    pub fn purge(&mut self, index: u64) -> Result<usize> {
        let paths = self.take_purgeable(index);
        Wal::remove_segments(&self.dir, &paths)
    }

    /// The closed segments [`Wal::purge`] would delete, forgotten by the WAL (oldest
    /// first): delete them with [`Wal::remove_segments`], in this order. A restart before
    /// they are deleted finds them again, which is harmless (their records precede the
    /// snapshot marker).
    pub fn take_purgeable(&mut self, index: u64) -> Vec<PathBuf> {
        let n = self
            .closed
            .iter()
            .take_while(|s| s.index_max <= index)
            .count();
        self.closed.drain(..n).map(|s| s.path).collect()
    }

    /// Unlinks `paths` (segments of the WAL in `dir`, oldest first) and syncs `dir`;
    /// blocking (on a filesystem mounted with `discard`, an unlink of a 64 MiB segment
    /// waits for the device). Returns how many were deleted. Errors: `Io` naming the file.
    pub fn remove_segments(dir: &Path, paths: &[PathBuf]) -> Result<usize> {
        for p in paths {
            std::fs::remove_file(p).map_err(|e| Error::io(p, e))?;
        }
        if !paths.is_empty() {
            fsutil::sync_dir(dir)?;
        }
        Ok(paths.len())
    }

    /// The WAL's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Number of segment files, the active one included.
    pub fn segment_count(&self) -> usize {
        self.closed.len() + 1
    }

    /// Sequence number of the active segment.
    pub fn active_segment_seq(&self) -> u64 {
        self.active.seq
    }

    /// Starts creating the next segment on a helper thread once the active one is half
    /// full, so that rotation does not wait for its fallocate and fsyncs (issue 8).
    fn prepare_spare(&mut self) {
        let (dir, seq, bytes) = (
            self.dir.clone(),
            self.active.seq + 1,
            self.options.segment_bytes,
        );
        self.spare = std::thread::Builder::new()
            .name("wal-segment".into())
            .spawn(move || {
                let spare = spare_path(&dir, seq);
                let header = RecordCodec::encode_header(seq);
                let file =
                    fsutil::create_segment_file(&spare, &header, bytes, Allocation::BestEffort)?;
                Ok(ActiveSegment {
                    seq,
                    path: spare,
                    file: Arc::new(file),
                    offset: RecordCodec::SEGMENT_HEADER_BYTES,
                    index_max: 0,
                    dirty: false,
                })
            })
            .ok();
    }

    /// The next segment: the spare put in place by one rename (its directory entry is
    /// synced with the next sync), or one created here when there is none.
    fn next_segment(&mut self) -> Result<ActiveSegment> {
        let seq = self.active.seq + 1;
        let spare = match self.spare.take().map(|h| h.join()) {
            Some(Ok(made)) => Some(made?),
            Some(Err(_)) => {
                return Err(Error::InvalidOptions(
                    "the thread creating a WAL segment panicked".into(),
                ))
            }
            None => None,
        };
        let Some(mut spare) = spare.filter(|s| s.seq == seq) else {
            return new_segment(&self.dir, seq, self.options.segment_bytes);
        };
        let path = fsutil::seq_path(&self.dir, seq, WAL_EXT);
        std::fs::rename(&spare.path, &path).map_err(|e| Error::io(&spare.path, e))?;
        let dir = File::open(&self.dir).map_err(|e| Error::io(&self.dir, e))?;
        self.dir_unsynced = Some(Arc::new(dir));
        spare.path = path;
        Ok(spare)
    }

    fn rotate(&mut self) -> Result<()> {
        self.flush()?;
        let next = self.next_segment()?;
        let old = std::mem::replace(&mut self.active, next);
        if old.dirty {
            self.unsynced.push((old.path.clone(), old.file));
        }
        self.closed.push(ClosedSegment {
            path: old.path,
            index_max: old.index_max,
        });
        Ok(())
    }
}

impl Drop for Wal {
    /// Writes records still held in memory into the page cache (not a sync: records
    /// appended since the last sync were never promised to be durable), and waits for a
    /// spare segment being created.
    fn drop(&mut self) {
        if let Err(e) = self.flush() {
            tracing::error!(error = %e, "WAL: writing pending records at close failed");
        }
        // No file appears in the directory after the WAL is gone.
        if let Some(spare) = self.spare.take() {
            let _ = spare.join();
        }
    }
}

/// Scans the records of one segment into `records`; returns (end offset, max index).
fn scan_segment(
    path: &Path,
    data: &[u8],
    last: bool,
    records: &mut Vec<RecordAt>,
) -> Result<(u64, u64)> {
    let mut off = RecordCodec::SEGMENT_HEADER_BYTES as usize;
    let mut index_max = 0;
    loop {
        match RecordCodec::decode(data, off) {
            Ok(Some((record, next))) => {
                assert!(next > off);
                index_max = index_max.max(record.index);
                records.push(record);
                off = next;
            }
            Ok(None) => return Ok((off as u64, index_max)),
            Err(reason) => {
                if !last {
                    return Err(Error::corruption(path, off as u64, reason));
                }
                if RecordCodec::valid_record_after(data, off) {
                    return Err(Error::corruption(
                        path,
                        off as u64,
                        format!("{reason}, followed by valid records"),
                    ));
                }
                tracing::warn!(path = %path.display(), offset = off, %reason, "truncating torn wal tail");
                return Ok((off as u64, index_max));
            }
        }
    }
}

/// Zeroes `[end, last non-zero byte]` of the segment and fdatasyncs it.
fn zero_tail(file: &File, path: &Path, data: &[u8], end: u64) -> Result<()> {
    let last_nonzero = data.iter().rposition(|&b| b != 0).unwrap_or(0) as u64 + 1;
    let zeros = vec![0u8; 1 << 20];
    let mut at = end;
    while at < last_nonzero {
        let n = (last_nonzero - at).min(zeros.len() as u64);
        file.write_all_at(&zeros[..n as usize], at)
            .map_err(|e| Error::io(path, e))?;
        at += n;
    }
    file.sync_data().map_err(|e| Error::io(path, e))
}

/// `NNNN.wal.spare`: a segment made ahead of need (deleted by [`Wal::open`]).
fn spare_path(dir: &Path, seq: u64) -> PathBuf {
    let mut name = fsutil::seq_path(dir, seq, WAL_EXT).into_os_string();
    name.push(".spare");
    PathBuf::from(name)
}

fn new_segment(dir: &Path, seq: u64, segment_bytes: u64) -> Result<ActiveSegment> {
    let path = fsutil::seq_path(dir, seq, WAL_EXT);
    let header = RecordCodec::encode_header(seq);
    // Written with pwrite only: a filesystem without fallocate may leave it sparse.
    let file = fsutil::create_segment_file(&path, &header, segment_bytes, Allocation::BestEffort)?;
    Ok(ActiveSegment {
        seq,
        path,
        file: Arc::new(file),
        offset: RecordCodec::SEGMENT_HEADER_BYTES,
        index_max: 0,
        dirty: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_roundtrip_and_padding() {
        let mut buf = Vec::new();
        RecordCodec::encode(&mut buf, 7, 42, b"hello");
        assert_eq!(buf.len(), 24);
        let (r, next) = RecordCodec::decode(&buf, 0).unwrap().unwrap();
        assert_eq!(next, 24);
        assert_eq!(r.record_type, 7);
        assert_eq!(r.index, 42);
        assert_eq!(&buf[r.payload], b"hello");
        assert_eq!(RecordCodec::decode(&buf, 24).unwrap(), None);
    }

    #[test]
    fn decode_rejects_bad_records() {
        let mut buf = Vec::new();
        RecordCodec::encode(&mut buf, 1, 1, b"abc");
        let mut bad = buf.clone();
        bad[20] ^= 1;
        assert_eq!(
            RecordCodec::decode(&bad, 0).unwrap_err(),
            "non-zero padding"
        );
        let mut bad = buf.clone();
        bad[17] ^= 1;
        assert_eq!(RecordCodec::decode(&bad, 0).unwrap_err(), "crc mismatch");
        let mut bad = buf.clone();
        bad[0] = 3;
        assert_eq!(
            RecordCodec::decode(&bad, 0).unwrap_err(),
            "length 3 below the minimum 9"
        );
        let zeros_then_junk = [0u8, 0, 0, 0, 0, 0, 0, 0, 1];
        assert_eq!(
            RecordCodec::decode(&zeros_then_junk, 0).unwrap_err(),
            "zero length followed by non-zero bytes"
        );
        assert_eq!(
            RecordCodec::decode(&buf[..16], 0).unwrap_err(),
            "record of 24 bytes extends past the segment end"
        );
    }

    #[test]
    fn header_checks() {
        let h = RecordCodec::encode_header(5);
        assert_eq!(RecordCodec::check_header(&h, 5), Ok(()));
        assert_eq!(
            RecordCodec::check_header(&h, 6).unwrap_err(),
            "header seq 5 does not match file name seq 6"
        );
        let mut bad = h;
        bad[20] ^= 1;
        assert_eq!(
            RecordCodec::check_header(&bad, 5).unwrap_err(),
            "header crc mismatch"
        );
    }

    #[test]
    fn options_validate() {
        assert!(WalOptions::default().validate().is_ok());
        assert!(WalOptions {
            segment_bytes: 4097
        }
        .validate()
        .is_err());
        assert!(WalOptions { segment_bytes: 0 }.validate().is_err());
    }
}
