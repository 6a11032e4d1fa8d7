//! Value segments: append-only files holding one record per key revision, written and
//! read through one shared `memmap2` mapping of the fallocated file ([`MappedFile`]).

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::mapped::MappedFile;

use super::key_index::Rev;
use crate::codec::{align8, check_segment_header, encode_segment_header, get_i64, get_u32};
use crate::error::{Error, Result};
use crate::fsutil::{self, Allocation};

/// File extension of value segments.
pub(crate) const VALUE_EXT: &str = "val";

/// Encoding of value segments (all integers little-endian).
///
/// File `values/NNNNNNNNNNNNNNNN.val` (16-digit sequence number), preallocated:
///
/// ```text
/// header (32 bytes):
///   0  magic        8  b"CAIRNVAL"
///   8  version      4  1
///  12  header_crc   4  crc32 (IEEE) of bytes 0..12 and 16..32
///  16  seq          8  sequence number of the file name
///  24  capacity     8  preallocated size of the file in bytes
/// records, 8-byte aligned, from offset 32, one per key revision:
///   0  length       4  bytes after the 8-byte prefix = 45 + key + value lengths
///   4  crc          4  crc32 of bytes 0..4 and 8..8+length
///   8  main         8  revision main
///  16  sub          8  revision sub
///  24  create_rev   8  create_revision (0 for a tombstone)
///  32  version      8  version (0 for a tombstone)
///  40  lease        8  lease id (0 for none / tombstone)
///  48  flags        1  bit 0: tombstone
///  49  key_len      4  key length
///  53  key, value   key_len + (length - 45 - key_len) bytes
///      padding      zeros to the next multiple of 8
/// ```
///
/// Which bytes are valid is decided by the checkpoint (it records each segment's
/// tail); the reader verifies the CRC of every record it reads.
pub(crate) struct ValueCodec;

/// One decoded value record, borrowing key and value from the mapping.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct ValueRecord<'a> {
    pub(crate) rev: Rev,
    pub(crate) create_revision: i64,
    pub(crate) version: i64,
    pub(crate) lease: i64,
    pub(crate) tombstone: bool,
    pub(crate) key: &'a [u8],
    pub(crate) value: &'a [u8],
}

impl ValueCodec {
    pub(crate) const MAGIC: [u8; 8] = *b"CAIRNVAL";
    pub(crate) const VERSION: u32 = 1;
    pub(crate) const HEADER_BYTES: u64 = 32;
    const FIXED_BYTES: usize = 53;
    /// Largest key + value a record may hold (the length field is 32 bits).
    pub(crate) const KEY_VALUE_BYTES_MAX: u64 = u32::MAX as u64 - 128;

    /// Encoded size of a record, padding included.
    pub(crate) fn record_bytes(key_len: usize, value_len: usize) -> u64 {
        align8((Self::FIXED_BYTES + key_len + value_len) as u64)
    }

    pub(crate) fn encode_header(seq: u64, capacity: u64) -> [u8; 32] {
        encode_segment_header(&Self::MAGIC, Self::VERSION, seq, capacity)
    }

    /// Checks the header; returns the capacity it records.
    pub(crate) fn check_header(data: &[u8], seq: u64) -> std::result::Result<u64, String> {
        check_segment_header(data, &Self::MAGIC, Self::VERSION, seq)
    }

    /// Appends one record to `buf`.
    pub(crate) fn encode(buf: &mut Vec<u8>, r: &ValueRecord<'_>) {
        let start = buf.len();
        let length = (Self::FIXED_BYTES - 8 + r.key.len() + r.value.len()) as u32;
        buf.extend_from_slice(&length.to_le_bytes());
        buf.extend_from_slice(&[0u8; 4]);
        buf.extend_from_slice(&r.rev.main.to_le_bytes());
        buf.extend_from_slice(&r.rev.sub.to_le_bytes());
        buf.extend_from_slice(&r.create_revision.to_le_bytes());
        buf.extend_from_slice(&r.version.to_le_bytes());
        buf.extend_from_slice(&r.lease.to_le_bytes());
        buf.push(u8::from(r.tombstone));
        buf.extend_from_slice(&(r.key.len() as u32).to_le_bytes());
        buf.extend_from_slice(r.key);
        buf.extend_from_slice(r.value);
        let mut c = crc32fast::Hasher::new();
        c.update(&buf[start..start + 4]);
        c.update(&buf[start + 8..]);
        let crc = c.finalize();
        buf[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
        let padded = Self::record_bytes(r.key.len(), r.value.len()) as usize;
        buf.resize(start + padded, 0);
        assert_eq!((buf.len() - start) % 8, 0);
    }

    /// Decodes one whole record (`data` is exactly its padded bytes).
    pub(crate) fn decode(data: &[u8]) -> std::result::Result<ValueRecord<'_>, String> {
        let length = get_u32(data, 0).ok_or("short record")? as usize;
        if length < Self::FIXED_BYTES - 8 || 8 + length > data.len() {
            return Err(format!("bad record length {length}"));
        }
        let body_end = 8 + length;
        let mut c = crc32fast::Hasher::new();
        c.update(&data[0..4]);
        c.update(&data[8..body_end]);
        if get_u32(data, 4) != Some(c.finalize()) {
            return Err("crc mismatch".into());
        }
        let key_len = get_u32(data, 49).ok_or("short record")? as usize;
        if Self::FIXED_BYTES + key_len > body_end {
            return Err(format!("bad key length {key_len}"));
        }
        let field = |at| get_i64(data, at).unwrap_or(0);
        Ok(ValueRecord {
            rev: Rev::new(field(8), field(16)),
            create_revision: field(24),
            version: field(32),
            lease: field(40),
            tombstone: data[48] & 1 == 1,
            key: &data[Self::FIXED_BYTES..Self::FIXED_BYTES + key_len],
            value: &data[Self::FIXED_BYTES + key_len..body_end],
        })
    }
}

/// One value segment file, mapped shared and writable for its whole capacity: the writer
/// copies records into the mapping (no syscall per record), readers read published ranges
/// from it, and `fdatasync` on the file writes the dirty pages back. The mapping's
/// invariants (allocated before mapped, never truncated, bounds-checked) are enforced by
/// [`MappedFile`].
/// `NNNN.val.spare`: a segment created ahead of need (deleted by `Mvcc::open`).
pub(crate) fn spare_path(dir: &Path, seq: u64) -> PathBuf {
    let mut name = fsutil::seq_path(dir, seq, VALUE_EXT).into_os_string();
    name.push(".spare");
    PathBuf::from(name)
}

pub(crate) struct ValueSegment {
    pub(crate) seq: u64,
    pub(crate) path: PathBuf,
    mapped: MappedFile,
    pub(crate) capacity: u64,
}

impl ValueSegment {
    /// Creates and preallocates a new segment of `capacity` bytes. Errors: `Io` naming the
    /// file when the disk is full or the filesystem cannot preallocate.
    pub(crate) fn create(dir: &Path, seq: u64, capacity: u64) -> Result<ValueSegment> {
        let path = fsutil::seq_path(dir, seq, VALUE_EXT);
        fsutil::inject("value-create", &path.with_extension("val.tmp"))?;
        let header = ValueCodec::encode_header(seq, capacity);
        let file = fsutil::create_segment_file(&path, &header, capacity, Allocation::Required)?;
        Self::map(seq, path, file, capacity)
    }

    /// [`ValueSegment::create`] under the name `NNNN.val.spare`: made ahead of need by a
    /// helper thread, put in place by [`ValueSegment::into_place`].
    pub(crate) fn create_spare(dir: &Path, seq: u64, capacity: u64) -> Result<ValueSegment> {
        let path = spare_path(dir, seq);
        fsutil::inject("value-create", &path.with_extension("spare.tmp"))?;
        let header = ValueCodec::encode_header(seq, capacity);
        let file = fsutil::create_segment_file(&path, &header, capacity, Allocation::Required)?;
        Self::map(seq, path, file, capacity)
    }

    /// Renames a spare segment to its segment name (one rename, no fsync: the directory
    /// is synced before any checkpoint that references the segment is written).
    pub(crate) fn into_place(mut self, dir: &Path) -> Result<ValueSegment> {
        let path = fsutil::seq_path(dir, self.seq, VALUE_EXT);
        std::fs::rename(&self.path, &path).map_err(|e| Error::io(&self.path, e))?;
        self.mapped.set_path(path.clone());
        self.path = path;
        Ok(self)
    }

    /// Opens an existing segment and checks its header. Its blocks are allocated again
    /// before it is mapped (fallocate fills holes a copy or an older version left), so
    /// this fails like [`ValueSegment::create`] on a full disk.
    pub(crate) fn open(path: &Path, seq: u64) -> Result<ValueSegment> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(|e| Error::io(path, e))?;
        let mut header = [0u8; 32];
        file.read_exact_at(&mut header, 0)
            .map_err(|e| Error::io(path, e))?;
        let capacity = ValueCodec::check_header(&header, seq)
            .map_err(|reason| Error::corruption(path, 0, reason))?;
        let len = file.metadata().map_err(|e| Error::io(path, e))?.len();
        if len < capacity {
            return Err(Error::corruption(
                path,
                len,
                format!("file is {len} bytes, header says {capacity}"),
            ));
        }
        Self::map(seq, path.to_path_buf(), file, capacity)
    }

    fn map(seq: u64, path: PathBuf, file: File, capacity: u64) -> Result<ValueSegment> {
        let mapped = MappedFile::allocate_and_map(file, &path, capacity)?;
        Ok(ValueSegment {
            seq,
            path,
            mapped,
            capacity,
        })
    }

    /// Writes `bytes` at `offset` (a copy into the mapping of the preallocated range).
    /// The single writer never writes a range twice, and readers only read ranges
    /// published after they were written.
    pub(crate) fn write_at(&self, bytes: &[u8], offset: u64) -> Result<()> {
        assert!(offset >= ValueCodec::HEADER_BYTES);
        assert!(offset + bytes.len() as u64 <= self.capacity);
        assert_eq!(offset % 8, 0);
        self.mapped.write(offset, bytes);
        Ok(())
    }

    /// The raw bytes of the record at `offset` of `bytes` length.
    pub(crate) fn raw(&self, offset: u64, bytes: u32) -> Result<&[u8]> {
        let inside = offset >= ValueCodec::HEADER_BYTES
            && offset.saturating_add(u64::from(bytes)) <= self.capacity;
        match inside.then(|| self.mapped.read(offset, u64::from(bytes))) {
            Some(Some(raw)) => Ok(raw),
            _ => Err(Error::corruption(
                &self.path,
                offset,
                "record location outside the segment",
            )),
        }
    }

    /// Reads and verifies the record at `offset`.
    pub(crate) fn read(&self, offset: u64, bytes: u32) -> Result<ValueRecord<'_>> {
        let raw = self.raw(offset, bytes)?;
        ValueCodec::decode(raw).map_err(|reason| Error::corruption(&self.path, offset, reason))
    }

    /// The record starting at `offset` (below the segment's written tail) and its padded
    /// size: what a sequential walk of the segment (GC) reads. Errors: `Corruption`.
    pub(crate) fn record_at(&self, offset: u64) -> Result<(ValueRecord<'_>, u32)> {
        let prefix = self.raw(offset, 4)?;
        let length = u64::from(u32::from_le_bytes(prefix.try_into().unwrap_or([0; 4])));
        let bytes = u32::try_from(align8(8 + length)).map_err(|_| {
            Error::corruption(&self.path, offset, format!("bad record length {length}"))
        })?;
        Ok((self.read(offset, bytes)?, bytes))
    }

    /// A read-only descriptor of the file (snapshots stream it).
    pub(crate) fn open_read_only(&self) -> Result<File> {
        self.mapped.open_read_only()
    }

    /// fdatasyncs the segment. Errors: `Io` naming the file (EIO: written pages are lost).
    pub(crate) fn sync(&self) -> Result<()> {
        assert_eq!(self.mapped.len(), self.capacity);
        assert_eq!(self.mapped.path(), self.path);
        self.mapped.sync()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_roundtrip() {
        let r = ValueRecord {
            rev: Rev::new(5, 2),
            create_revision: 3,
            version: 2,
            lease: 7,
            tombstone: false,
            key: b"foo",
            value: b"bar!",
        };
        let mut buf = Vec::new();
        ValueCodec::encode(&mut buf, &r);
        assert_eq!(buf.len() as u64, ValueCodec::record_bytes(3, 4));
        assert_eq!(buf.len(), 64);
        assert_eq!(ValueCodec::decode(&buf).unwrap(), r);
        buf[58] ^= 0xff;
        assert_eq!(ValueCodec::decode(&buf).unwrap_err(), "crc mismatch");
    }
}
