//! Checkpoints written off the write path.
//!
//! [`Mvcc::begin_checkpoint`] (on the writer, microseconds) captures what the checkpoint
//! records — the applied index, the current and compact revisions, the server's meta,
//! every value segment with its tail — and pins the compact revision. The returned
//! [`CheckpointJob`] runs on any thread: it fdatasyncs the value segments written since
//! the previous checkpoint, then streams the key index *as of the captured revision* into
//! the checkpoint file, [`super::SCAN_CHUNK_ENTRIES`] keys per hold of the read lock, while
//! the writer goes on (entries written later are cut off by `KeyIndex::truncated`, the
//! compaction published at capture time is applied on the copy). [`Mvcc::finish_checkpoint`]
//! (on the writer) records the result. Value-segment GC waits while a job runs: it would
//! move records below the captured tails.
//!
//! The file is the format of `CheckpointCodec` (checkpoint.rs), byte for byte: the key
//! count and body length, known only at the end, are written in place afterwards and
//! the CRC is combined from the CRCs of the parts.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Seek, SeekFrom, Write};
use std::ops::Bound;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::RwLock;

use super::checkpoint::{CheckpointCodec, CHECKPOINT_EXT};
use super::read::{key_index_at, Pin, SCAN_CHUNK_ENTRIES};
use super::values::ValueSegment;
use super::{Mvcc, State};
use crate::codec::PutLe;
use crate::error::{Error, Result};
use crate::fsutil;

/// A checkpoint to write; see the module doc. `Send`: run it on a helper thread.
pub struct CheckpointJob {
    state: Arc<RwLock<State>>,
    dir: PathBuf,
    values_dir: PathBuf,
    seq: u64,
    previous: u64,
    applied_index: u64,
    meta: Bytes,
    revision: i64,
    compact_revision: i64,
    /// Every readable segment: (seq, tail, the segment).
    segments: Vec<(u64, u64, Arc<ValueSegment>)>,
    /// Segments written since the previous checkpoint: synced first.
    unsynced: Vec<Arc<ValueSegment>>,
    /// Retired segments this checkpoint makes deletable, deleted once it is durable.
    deletable: Vec<PathBuf>,
    _pin: Pin,
}

/// What a finished [`CheckpointJob`] hands back to [`Mvcc::finish_checkpoint`].
pub struct CheckpointDone {
    seq: u64,
    applied_index: u64,
    meta: Bytes,
    tails: BTreeMap<u64, u64>,
    /// Bytes of the new checkpoint file.
    bytes: u64,
    /// Bytes of the retired segments deleted.
    freed: u64,
}

impl CheckpointDone {
    /// The applied index the checkpoint records.
    pub fn applied_index(&self) -> u64 {
        self.applied_index
    }
}

impl Mvcc {
    /// Captures a checkpoint of the current state with `applied_index` and the server's
    /// opaque `meta`; the returned job writes it (see the module doc). Errors:
    /// `InvalidOptions` while another job has not been finished.
    pub fn begin_checkpoint(&mut self, applied_index: u64, meta: &[u8]) -> Result<CheckpointJob> {
        if self.checkpoint_in_flight {
            return Err(Error::InvalidOptions(
                "a checkpoint is already being written".into(),
            ));
        }
        let seq = self.checkpoint_seq_max + 1;
        let deletable = self.take_deletable_segments(seq);
        let st = self.state.read();
        let segments = st
            .segments
            .iter()
            .map(|(s, seg)| (*s, self.tails[s], Arc::clone(seg)))
            .collect();
        let unsynced = std::mem::take(&mut self.unsynced)
            .into_iter()
            .filter_map(|s| st.segments.get(&s).cloned())
            .collect();
        let job = CheckpointJob {
            state: Arc::clone(&self.state),
            dir: self.dir.clone(),
            values_dir: self.values_dir.clone(),
            seq,
            previous: self.checkpoint_seq,
            applied_index,
            meta: Bytes::copy_from_slice(meta),
            revision: st.current_revision,
            compact_revision: st.compact_revision,
            segments,
            unsynced,
            deletable,
            // Physical compaction stays at or below the revision the file records.
            _pin: self.pins.pin(st.compact_revision),
        };
        drop(st);
        self.checkpoint_seq_max = seq;
        self.checkpoint_in_flight = true;
        Ok(job)
    }

    /// Records a finished job: a restart now loads its checkpoint, and snapshots ship it.
    /// An `Err` from the job leaves the store usable but the caller must treat it as a
    /// failed commit (the server stops, as etcd does).
    pub fn finish_checkpoint(&mut self, done: Result<CheckpointDone>) -> Result<()> {
        self.checkpoint_in_flight = false;
        let done = done?;
        self.checkpoint_seq = done.seq;
        self.checkpoint_tails = done.tails;
        self.applied_index = done.applied_index;
        self.meta = done.meta;
        let mut st = self.state.write();
        st.disk_bytes =
            (st.disk_bytes + done.bytes).saturating_sub(done.freed + st.checkpoint_bytes);
        st.checkpoint_bytes = done.bytes;
        Ok(())
    }

    /// True between [`Mvcc::begin_checkpoint`] and [`Mvcc::finish_checkpoint`].
    pub fn checkpoint_in_flight(&self) -> bool {
        self.checkpoint_in_flight
    }

    /// A durable checkpoint of the current state, written on this thread (tests, tools,
    /// and the rare checkpoint that must exist before the caller goes on). Syncs the
    /// value segments written since the previous checkpoint, writes `NNNN.ckpt.tmp`,
    /// fsyncs, renames, fsyncs the directory; the previous checkpoint is kept as a
    /// fallback, older ones are deleted. After `Ok`, a restart loads this image without
    /// replaying the WAL up to `applied_index`. Errors: `InvalidOptions` while a job
    /// runs; `Io` naming the file.
    pub fn checkpoint(&mut self, applied_index: u64, meta: &[u8]) -> Result<()> {
        let job = self.begin_checkpoint(applied_index, meta)?;
        let done = job.run();
        self.finish_checkpoint(done)
    }
}

impl CheckpointJob {
    /// The applied index the checkpoint records.
    pub fn applied_index(&self) -> u64 {
        self.applied_index
    }

    /// Writes the checkpoint (blocking file I/O; any thread). Errors: `Io` naming the
    /// file (disk full, EIO), `Corruption` when the index names a missing revision.
    pub fn run(self) -> Result<CheckpointDone> {
        for seg in &self.unsynced {
            seg.sync()?;
        }
        // Segments put in place since the last checkpoint were renamed without a sync.
        fsutil::sync_dir(&self.values_dir)?;
        let path = fsutil::seq_path(&self.dir, self.seq, CHECKPOINT_EXT);
        let tmp = path.with_extension("ckpt.tmp");
        fsutil::inject("checkpoint-write", &tmp)?;
        let bytes = self.write(&tmp).map_err(|e| Error::io(&tmp, e))?;
        std::fs::rename(&tmp, &path).map_err(|e| Error::io(&path, e))?;
        fsutil::sync_dir(&self.dir)?;
        for (old, old_path) in fsutil::list_seq_files(&self.dir, CHECKPOINT_EXT)? {
            if old < self.previous {
                std::fs::remove_file(&old_path).map_err(|e| Error::io(&old_path, e))?;
            }
        }
        let mut freed = 0;
        for p in &self.deletable {
            freed += std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
            std::fs::remove_file(p).map_err(|e| Error::io(p, e))?;
        }
        fsutil::sync_dir(&self.values_dir)?;
        Ok(CheckpointDone {
            seq: self.seq,
            applied_index: self.applied_index,
            meta: self.meta.clone(),
            tails: self.segments.iter().map(|(s, t, _)| (*s, *t)).collect(),
            bytes,
            freed,
        })
    }

    /// Streams the file; returns its length. Layout: `CheckpointCodec`'s.
    fn write(&self, tmp: &std::path::Path) -> std::io::Result<u64> {
        let file = File::create(tmp)?;
        let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
        // Header with body_len 0; patched below.
        let mut header = Vec::with_capacity(24);
        header.extend_from_slice(&CheckpointCodec::MAGIC);
        header.put_u32_le(CheckpointCodec::VERSION);
        header.put_u32_le(0);
        header.put_u64_le(0);
        out.write_all(&header)?;
        let mut prefix = Vec::new();
        prefix.put_u64_le(self.applied_index);
        prefix.put_i64_le(self.revision);
        prefix.put_i64_le(self.compact_revision);
        prefix.put_u32_le(self.meta.len() as u32);
        prefix.extend_from_slice(&self.meta);
        prefix.put_u32_le(self.segments.len() as u32);
        for (seq, tail, _) in &self.segments {
            prefix.put_u64_le(*seq);
            prefix.put_u64_le(*tail);
        }
        out.write_all(&prefix)?;
        out.write_all(&0u64.to_le_bytes())?; // key_count, patched below
        let mut keys_crc = crc32fast::Hasher::new();
        let mut keys_len = 0u64;
        let mut key_count = 0u64;
        let mut after: Option<Bytes> = None;
        let mut chunk = Vec::new();
        loop {
            chunk.clear();
            let resume = self
                .encode_chunk(after.as_ref(), &mut chunk, &mut key_count)
                .map_err(std::io::Error::other)?;
            keys_crc.update(&chunk);
            keys_len += chunk.len() as u64;
            out.write_all(&chunk)?;
            match resume {
                Some(last) => after = Some(last),
                None => break,
            }
        }
        let body_len = (prefix.len() + 8) as u64 + keys_len;
        header[16..24].copy_from_slice(&body_len.to_le_bytes());
        // crc(header | prefix | key_count | keys), from the parts.
        let mut crc = crc32fast::Hasher::new();
        crc.update(&header);
        crc.update(&prefix);
        crc.update(&key_count.to_le_bytes());
        crc.combine(&keys_crc);
        out.write_all(&crc.finalize().to_le_bytes())?;
        let mut file = out.into_inner().map_err(|e| e.into_error())?;
        file.seek(SeekFrom::Start(16))?;
        file.write_all(&body_len.to_le_bytes())?;
        file.seek(SeekFrom::Start(24 + prefix.len() as u64))?;
        file.write_all(&key_count.to_le_bytes())?;
        file.sync_all()?;
        Ok(24 + body_len + 4)
    }

    /// Encodes the keys after `after` under one hold of the read lock, until
    /// [`SCAN_CHUNK_ENTRIES`] index entries (a key and each of its revisions) were
    /// examined: a key with a long history counts for its revisions, so a chunk's cost
    /// is bounded whatever the history (a chunk of 1,024 keys of 260 revisions each held
    /// the lock for ~150 ms). Returns the last key encoded when more may follow.
    fn encode_chunk(
        &self,
        after: Option<&Bytes>,
        b: &mut Vec<u8>,
        key_count: &mut u64,
    ) -> Result<Option<Bytes>> {
        let st = self.state.read();
        let lower = match after {
            Some(k) => Bound::Excluded(k.as_ref()),
            None => Bound::Unbounded,
        };
        let mut examined = 0;
        let mut last = None;
        for (key, ki) in st.keys.range::<[u8], _>((lower, Bound::Unbounded)) {
            if examined >= SCAN_CHUNK_ENTRIES {
                // At least one key was examined before: `last` is set.
                return Ok(last);
            }
            examined += 1 + ki.generations.iter().map(|g| g.revs.len()).sum::<usize>();
            last = Some(key.clone());
            let Some(ki) = key_index_at(ki, self.revision, self.compact_revision) else {
                continue;
            };
            *key_count += 1;
            CheckpointCodec::encode_key_entry(b, key, &ki, |r| {
                st.revs.get(r).map(|e| e.loc).ok_or_else(|| {
                    Error::corruption(
                        "",
                        0,
                        format!("revision {}.{} missing from the index", r.main, r.sub),
                    )
                })
            })?;
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::super::checkpoint::load;
    use super::*;
    use crate::MvccOptions;

    /// The streamed file is `CheckpointCodec::encode`'s, byte for byte, and it records
    /// the state at the captured revision even though writes and a compaction landed
    /// while the job had not run yet.
    #[test]
    fn streamed_checkpoint_is_the_codec_encoding_at_the_captured_revision() {
        let dir = tempfile::tempdir().unwrap();
        let mut m = Mvcc::open(dir.path(), MvccOptions::default()).unwrap();
        for i in 0..3000u32 {
            let mut t = m.write();
            t.put(format!("k{:05}", i % 1700).as_bytes(), &i.to_le_bytes(), 0);
            t.end();
        }
        let mut t = m.write();
        t.delete_range(b"k00100", b"k00200");
        t.end();
        m.compact(2000).unwrap();
        let expected = m.reader().hash_kv(0).unwrap();
        let job = m.begin_checkpoint(77, b"meta").unwrap();
        // Writes and a compaction after the capture must not reach the file.
        for i in 0..500u32 {
            let mut t = m.write();
            t.put(format!("k{:05}", i).as_bytes(), b"later", 0);
            t.put(format!("new{i}").as_bytes(), b"later", 0);
            t.end();
        }
        m.schedule_compaction(3300).unwrap();
        while m.maintain().unwrap() {}
        let done = job.run();
        m.finish_checkpoint(done).unwrap();
        let path = fsutil::seq_path(dir.path(), m.checkpoint_seq, CHECKPOINT_EXT);
        let bytes = std::fs::read(&path).unwrap();
        let d = load(&path).unwrap();
        assert_eq!(d.applied_index, 77);
        assert_eq!(d.current_revision, expected.2);
        assert_eq!(d.compact_revision, 2000);
        let img = super::super::checkpoint::Image {
            applied_index: d.applied_index,
            current_revision: d.current_revision,
            compact_revision: d.compact_revision,
            meta: d.meta,
            segments: d.segments,
            keys: d.keys,
            locs: d.revs.iter().map(|(r, _, loc)| (*r, *loc)).collect(),
        };
        assert_eq!(CheckpointCodec::encode(&img), bytes);
        drop(m);
        let m = Mvcc::open(dir.path(), MvccOptions::default()).unwrap();
        assert_eq!(m.reader().hash_kv(0).unwrap(), expected);
        assert_eq!(m.checkpoint_state().0, 77);
    }
}
