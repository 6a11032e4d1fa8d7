//! The MVCC key-value store, with etcd's semantics (etcd mvcc/kvstore.go,
//! kvstore_txn.go, key_index.go, index.go).
//!
//! # Shape
//! - Key index in memory: an ordered map key → [`KeyIndex`] (generations of revisions,
//!   exactly etcd's `keyIndex`), plus a revision map (main, sub) → record location used
//!   for watch catch-up ([`MvccReader::events`]), compaction and hashing.
//! - Values (with the per-revision metadata: create_revision, version, lease, tombstone
//!   flag) live in append-only value segments (`values/*.val`, format on
//!   `values::ValueCodec`), written with pwrite and read through `memmap2`.
//! - Durability comes from checkpoints ([`Mvcc::begin_checkpoint`], [`Mvcc::checkpoint`]):
//!   value segments are fdatasync'ed, then the key index is written to a new checkpoint
//!   file. On open, the newest valid checkpoint is loaded and every value byte written
//!   after it is discarded; the server re-applies its WAL from `applied_index + 1`.
//!
//! # Concurrency choice
//! One `parking_lot::RwLock` guards the index. The single writer (the apply loop, via
//! [`WriteTxn`]) takes the write lock for a few microseconds per operation, after the
//! value bytes were already written to the segment outside the lock. Readers never hold
//! the read lock for more than one chunk of a scan ([`ReadView`], `read.rs`), so the
//! writer never waits for a long read. A write txn's index entries carry main
//! revision `current + 1`, which no reader can see until [`WriteTxn::end`] bumps the
//! current revision under the write lock: that single increment publishes the whole txn
//! atomically, exactly as etcd's `storeTxnWrite.End` does with `revMu`. Checkpoints are
//! written beside the writer (`background.rs`), compaction runs in steps
//! (`compaction.rs`).
//!
//! # Revisions
//! An empty store is at revision 1 (etcd). `compact_revision` is 0 before the first
//! compaction (etcd keeps -1 internally; both mean "nothing compacted").

mod background;
mod checkpoint;
mod compaction;
mod import;
mod key_index;
mod mapped;
mod read;
mod snapshot;
mod values;

pub use self::background::{CheckpointDone, CheckpointJob};
pub use self::compaction::{COMPACTION_STEP_REVISIONS, GC_STEP_RECORDS};
pub use self::import::ImportedRevision;
pub use self::read::{
    CountChunk, HashKvScan, KeyBucketScan, KvRef, MvccReader, ReadView, SCAN_CHUNK_ENTRIES,
};
pub use self::snapshot::{
    received_applied_index, SnapshotReceiver, SnapshotSource, SNAPSHOT_CHUNK_BYTES,
};

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::RwLock;

use self::checkpoint::{load_checkpoint, Loc, CHECKPOINT_EXT};
use self::key_index::{KeyIndex, Rev};
use self::values::{ValueCodec, ValueRecord, ValueSegment, VALUE_EXT};
use crate::error::{Error, Result};
use crate::fsutil;

/// A key-value pair at one revision (etcd mvccpb.KeyValue).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct KeyValue {
    /// The key.
    pub key: Bytes,
    /// Revision of the put that created the key's current generation.
    pub create_revision: i64,
    /// Revision of the last modification.
    pub mod_revision: i64,
    /// Number of puts since the generation was created (1 after the creating put).
    pub version: i64,
    /// The value (empty for `keys_only` reads and delete events).
    pub value: Bytes,
    /// Lease id attached to the key, 0 for none.
    pub lease: i64,
}

/// Kind of an [`Event`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventType {
    /// A put.
    Put,
    /// A delete (tombstone).
    Delete,
}

/// One change, as a watcher sees it (etcd mvccpb.Event).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// Put or delete.
    pub event_type: EventType,
    /// For a put, the new kv. For a delete, only `key` and `mod_revision` (the deletion
    /// revision) are set, like etcd.
    pub kv: KeyValue,
    /// The key's state right before this event, when asked for and still retained.
    pub prev_kv: Option<KeyValue>,
}

/// Options of a range read.
#[derive(Clone, Debug, Default)]
pub struct RangeOptions {
    /// Maximum number of kvs returned; 0 = no limit. `count` ignores it.
    pub limit: usize,
    /// Revision to read at; 0 (or negative) = current.
    pub revision: i64,
    /// Return kvs with empty values.
    pub keys_only: bool,
    /// Return no kvs, only `count`.
    pub count_only: bool,
}

/// Result of a range read.
#[derive(Clone, Debug, Default)]
pub struct RangeResult {
    /// Matching kvs in ascending key order, at most `limit`.
    pub kvs: Vec<KeyValue>,
    /// Number of matching keys, ignoring `limit`.
    pub count: usize,
    /// The store revision the read was served at (etcd returns the current revision
    /// here even for historical reads).
    pub revision: i64,
}

/// Options of [`Mvcc::open`].
#[derive(Clone, Debug)]
pub struct MvccOptions {
    /// Preallocated size of each value segment in bytes; a multiple of 4096 in
    /// [4096, 1 TiB]. Default 64 MiB. A record larger than a segment gets a segment of
    /// its own, so no value is ever too large for the store.
    pub segment_bytes: u64,
    /// After a compaction, a closed value segment whose live bytes are below this
    /// percentage of its written bytes is rewritten (its live records are copied to
    /// the active segment) and deleted once two later checkpoints no longer reference
    /// it. 0 disables garbage collection; at most 100. Default 50.
    pub gc_live_percent: u8,
}

impl Default for MvccOptions {
    fn default() -> MvccOptions {
        MvccOptions {
            segment_bytes: 64 << 20,
            gc_live_percent: 50,
        }
    }
}

impl MvccOptions {
    /// Checks the ranges; the error names the option and its allowed range.
    pub fn validate(&self) -> Result<()> {
        let b = self.segment_bytes;
        if !(4096..=(1u64 << 40)).contains(&b) || !b.is_multiple_of(4096) {
            return Err(Error::InvalidOptions(format!(
                "segment_bytes {b} must be a multiple of 4096 in [4096, {}]",
                1u64 << 40
            )));
        }
        if self.gc_live_percent > 100 {
            return Err(Error::InvalidOptions(format!(
                "gc_live_percent {} must be in [0, 100]",
                self.gc_live_percent
            )));
        }
        Ok(())
    }
}

/// Where one retained revision lives, plus its key (for revision-ordered scans).
#[derive(Clone, Debug)]
struct RevEntry {
    key: Bytes,
    loc: Loc,
}

/// Everything readers see, behind one lock.
struct State {
    keys: BTreeMap<Bytes, KeyIndex>,
    revs: BTreeMap<Rev, RevEntry>,
    current_revision: i64,
    compact_revision: i64,
    segments: BTreeMap<u64, Arc<ValueSegment>>,
    /// Bytes of retained records per readable segment.
    live_bytes: BTreeMap<u64, u64>,
    /// Bytes on disk: value segment capacities (retired ones included until deleted)
    /// plus the newest checkpoint file.
    disk_bytes: u64,
    checkpoint_bytes: u64,
}

impl State {
    fn empty() -> State {
        State {
            keys: BTreeMap::new(),
            revs: BTreeMap::new(),
            current_revision: 1,
            compact_revision: 0,
            segments: BTreeMap::new(),
            live_bytes: BTreeMap::new(),
            disk_bytes: 0,
            checkpoint_bytes: 0,
        }
    }

    /// Index entries whose key is in `[key, range_end)` (etcd range_end forms: empty =
    /// the single key, `"\0"` = every key >= key). An empty or inverted range is empty.
    fn key_range<'a>(
        &'a self,
        key: &'a [u8],
        range_end: &'a [u8],
    ) -> Box<dyn Iterator<Item = (&'a Bytes, &'a KeyIndex)> + 'a> {
        let bounds: (Bound<&[u8]>, Bound<&[u8]>) = if range_end.is_empty() {
            (Bound::Included(key), Bound::Included(key))
        } else if range_end == [0] {
            (Bound::Included(key), Bound::Unbounded)
        } else if range_end <= key {
            return Box::new(std::iter::empty());
        } else {
            (Bound::Included(key), Bound::Excluded(range_end))
        };
        Box::new(self.keys.range::<[u8], _>(bounds))
    }

    /// Reads and verifies the record of `rev`.
    fn record(&self, rev: Rev) -> Result<(ValueRecord<'_>, &Bytes)> {
        let entry = self.revs.get(&rev).ok_or_else(|| {
            Error::corruption(
                "",
                0,
                format!("revision {}.{} missing from the index", rev.main, rev.sub),
            )
        })?;
        let seg = self.segments.get(&entry.loc.seg).ok_or_else(|| {
            Error::corruption("", 0, format!("value segment {} missing", entry.loc.seg))
        })?;
        let rec = seg.read(entry.loc.offset, entry.loc.bytes)?;
        if rec.rev != rev || rec.key != entry.key {
            return Err(Error::corruption(
                &seg.path,
                entry.loc.offset,
                format!("record holds revision {:?}, index says {rev:?}", rec.rev),
            ));
        }
        Ok((rec, &entry.key))
    }

    /// The kv stored at `rev` (a put).
    fn kv(&self, rev: Rev, keys_only: bool) -> Result<KeyValue> {
        let (rec, key) = self.record(rev)?;
        Ok(KeyValue {
            key: key.clone(),
            create_revision: rec.create_revision,
            mod_revision: rev.main,
            version: rec.version,
            value: if keys_only {
                Bytes::new()
            } else {
                Bytes::copy_from_slice(rec.value)
            },
            lease: rec.lease,
        })
    }

    /// etcd storeTxnRead.rangeKeys: reads at `options.revision` (0 = `cur`).
    fn range(
        &self,
        key: &[u8],
        range_end: &[u8],
        options: &RangeOptions,
        cur: i64,
    ) -> Result<RangeResult> {
        let mut rev = options.revision;
        if rev > cur {
            return Err(Error::FutureRevision);
        }
        if rev <= 0 {
            rev = cur;
        }
        if rev < self.compact_revision {
            return Err(Error::Compacted);
        }
        let mut result = RangeResult {
            kvs: Vec::new(),
            count: 0,
            revision: cur,
        };
        for (_, ki) in self.key_range(key, range_end) {
            let Some(found) = ki.get(rev) else { continue };
            result.count += 1;
            if options.count_only || (options.limit != 0 && result.kvs.len() >= options.limit) {
                continue;
            }
            result.kvs.push(self.kv(found.modified, options.keys_only)?);
        }
        Ok(result)
    }

    fn key_in_range(k: &[u8], key: &[u8], range_end: &[u8]) -> bool {
        if range_end.is_empty() {
            k == key
        } else if range_end == [0] {
            k >= key
        } else {
            k >= key && k < range_end
        }
    }

    /// The event of the retained revision `rev` of key index `ki`.
    fn event(&self, rev: Rev, ki: &KeyIndex, key: &Bytes, with_prev_kv: bool) -> Result<Event> {
        let prev_kv = match ki.previous(rev) {
            Some(p) if with_prev_kv => Some(self.kv(p, false)?),
            _ => None,
        };
        if ki.is_tombstone(rev) {
            return Ok(Event {
                event_type: EventType::Delete,
                kv: KeyValue {
                    key: key.clone(),
                    mod_revision: rev.main,
                    ..KeyValue::default()
                },
                prev_kv,
            });
        }
        Ok(Event {
            event_type: EventType::Put,
            kv: self.kv(rev, false)?,
            prev_kv,
        })
    }
}

/// The MVCC store. Single writer (the apply loop owns it); readers use
/// [`Mvcc::reader`]. `Send`.
pub struct Mvcc {
    dir: PathBuf,
    values_dir: PathBuf,
    options: MvccOptions,
    state: Arc<RwLock<State>>,
    /// Preallocated bytes of the active segment not yet written (read by `MvccReader::size_bytes`).
    active_free: Arc<AtomicU64>,
    active: Arc<ValueSegment>,
    /// Next write offset in the active segment.
    tail: u64,
    /// Written bytes per readable segment.
    tails: BTreeMap<u64, u64>,
    /// Segments written since the last checkpoint.
    unsynced: BTreeSet<u64>,
    /// (segment seq, checkpoint seq when retired): rewritten by GC, awaiting deletion.
    retired: Vec<(u64, u64)>,
    /// Sequence number of the newest checkpoint written or loaded (0 = none).
    checkpoint_seq: u64,
    /// The value segments and tails that checkpoint records (what a snapshot ships).
    checkpoint_tails: BTreeMap<u64, u64>,
    /// Highest checkpoint sequence number seen on disk (corrupt ones included).
    checkpoint_seq_max: u64,
    applied_index: u64,
    meta: Bytes,
    buf: Vec<u8>,
    /// Revisions running reads pin (shared with every reader).
    pins: Arc<read::Pins>,
    /// The revision the key index is physically compacted at (<= the compact revision).
    physical_compact: i64,
    /// The physical part of a compaction still to do ([`Mvcc::maintain`]).
    compaction: Option<compaction::CompactionWork>,
    /// A compaction finished: sparse value segments are to be picked for rewriting.
    gc_due: bool,
    /// Segments being rewritten by GC, one step at a time.
    gc: Vec<compaction::GcWork>,
    /// A [`CheckpointJob`] was begun and not finished yet.
    checkpoint_in_flight: bool,
    /// The next value segment, being created by a helper thread.
    spare: Option<std::thread::JoinHandle<Result<ValueSegment>>>,
}

impl Mvcc {
    /// Opens `dir` (created if missing): loads the newest valid checkpoint (falling back
    /// to an older one when the newest fails its CRC or references a broken segment;
    /// `Err(Corruption)` naming the newest file when none is valid) and discards every
    /// value-segment byte written after it. Without a checkpoint the store is empty
    /// (revision 1) and leftover value segments are deleted.
    pub fn open(dir: &Path, options: MvccOptions) -> Result<Mvcc> {
        options.validate()?;
        snapshot::recover_install(dir)?;
        let values_dir = dir.join("values");
        fsutil::create_dir(dir)?;
        fsutil::create_dir(&values_dir)?;
        fsutil::remove_with_suffix(dir, ".ckpt.tmp")?;
        fsutil::remove_with_suffix(&values_dir, ".val.tmp")?;
        fsutil::remove_with_suffix(&values_dir, ".val.spare")?;
        fsutil::remove_with_suffix(&values_dir, ".val.spare.tmp")?;
        let ckpts = fsutil::list_seq_files(dir, CHECKPOINT_EXT)?;
        let checkpoint_seq_max = ckpts.last().map_or(0, |c| c.0);
        let mut first_err = None;
        let mut loaded = None;
        for (seq, path) in ckpts.iter().rev() {
            match load_checkpoint(path, &values_dir) {
                Ok(l) => {
                    loaded = Some((*seq, l));
                    break;
                }
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "checkpoint unusable, trying an older one");
                    first_err.get_or_insert(e);
                }
            }
        }
        if let (None, Some(e)) = (&loaded, first_err) {
            return Err(e);
        }
        // Older checkpoints may reference segments deleted below; newer ones are corrupt.
        let loaded_seq = loaded.as_ref().map_or(0, |l| l.0);
        for (seq, path) in &ckpts {
            if *seq < loaded_seq {
                std::fs::remove_file(path).map_err(|e| Error::io(path, e))?;
            } else if *seq > loaded_seq {
                let aside = path.with_extension("ckpt.corrupt");
                std::fs::rename(path, &aside).map_err(|e| Error::io(path, e))?;
            }
        }
        let mut state = State::empty();
        let mut tails = BTreeMap::new();
        let (mut applied_index, mut meta) = (0, Bytes::new());
        if let Some((_, (img, segs, ckpt_bytes))) = loaded {
            applied_index = img.applied_index;
            meta = img.meta.clone();
            state.current_revision = img.current_revision;
            state.compact_revision = img.compact_revision;
            state.checkpoint_bytes = ckpt_bytes;
            for (seg, tail) in segs {
                tails.insert(seg.seq, tail);
                state.live_bytes.insert(seg.seq, 0);
                state.segments.insert(seg.seq, Arc::new(seg));
            }
            state.revs = rev_map(img.revs, &mut state.live_bytes);
            state.keys = img.keys;
        }
        let checkpoint_tails = tails.clone();
        let mut seg_seq_max = 0;
        for (seq, path) in fsutil::list_seq_files(&values_dir, VALUE_EXT)? {
            seg_seq_max = seg_seq_max.max(seq);
            if !state.segments.contains_key(&seq) {
                std::fs::remove_file(&path).map_err(|e| Error::io(&path, e))?;
            }
        }
        fsutil::sync_dir(&values_dir)?;
        fsutil::sync_dir(dir)?;
        let (active, tail) = match state.segments.last_key_value() {
            Some((seq, seg)) => (Arc::clone(seg), tails[seq]),
            None => {
                let seg = Arc::new(ValueSegment::create(
                    &values_dir,
                    seg_seq_max + 1,
                    options.segment_bytes,
                )?);
                state.segments.insert(seg.seq, Arc::clone(&seg));
                state.live_bytes.insert(seg.seq, 0);
                tails.insert(seg.seq, ValueCodec::HEADER_BYTES);
                (seg, ValueCodec::HEADER_BYTES)
            }
        };
        state.disk_bytes =
            state.segments.values().map(|s| s.capacity).sum::<u64>() + state.checkpoint_bytes;
        let loaded_compact = state.compact_revision;
        Ok(Mvcc {
            dir: dir.to_path_buf(),
            values_dir,
            options,
            state: Arc::new(RwLock::new(state)),
            active_free: Arc::new(AtomicU64::new(active.capacity - tail)),
            active,
            tail,
            tails,
            unsynced: BTreeSet::new(),
            retired: Vec::new(),
            checkpoint_seq: loaded_seq,
            checkpoint_tails,
            checkpoint_seq_max,
            applied_index,
            meta,
            buf: Vec::new(),
            pins: Arc::default(),
            physical_compact: loaded_compact,
            compaction: None,
            gc_due: false,
            gc: Vec::new(),
            checkpoint_in_flight: false,
            spare: None,
        })
    }

    /// A read handle; `Clone + Send + Sync`, sees every committed write txn.
    pub fn reader(&self) -> MvccReader {
        MvccReader {
            state: Arc::clone(&self.state),
            pins: Arc::clone(&self.pins),
            active_free: Arc::clone(&self.active_free),
        }
    }

    /// Begins one write request: at most one new main revision (etcd store.Write).
    /// Dropping the txn without calling [`WriteTxn::end`] commits it all the same.
    pub fn write(&mut self) -> WriteTxn<'_> {
        let begin = self.state.read().current_revision;
        WriteTxn {
            mvcc: self,
            begin,
            events: Vec::new(),
            ended: false,
        }
    }

    /// `(applied_index, meta)` of the checkpoint loaded at open or last written;
    /// `(0, empty)` when none.
    pub fn checkpoint_state(&self) -> (u64, Bytes) {
        (self.applied_index, self.meta.clone())
    }

    /// Appends one encoded record (in `self.buf` or `raw`) to the active segment,
    /// rotating first when it does not fit. Returns its location.
    fn append(&mut self, raw: &[u8]) -> Result<Loc> {
        let bytes = raw.len() as u64;
        assert_eq!(bytes % 8, 0);
        if self.tail + bytes > self.active.capacity {
            self.rotate(bytes)?;
        }
        self.active.write_at(raw, self.tail)?;
        let loc = Loc {
            seg: self.active.seq,
            offset: self.tail,
            bytes: u32::try_from(bytes).map_err(|_| Error::RecordTooLarge {
                bytes,
                limit: ValueCodec::KEY_VALUE_BYTES_MAX,
            })?,
        };
        self.tail += bytes;
        if self.spare.is_none() && self.tail > self.active.capacity / 2 {
            self.prepare_spare(self.active.seq + 1);
        }
        self.tails.insert(self.active.seq, self.tail);
        self.active_free
            .store(self.active.capacity - self.tail, Ordering::Relaxed);
        self.unsynced.insert(self.active.seq);
        Ok(loc)
    }

    fn rotate(&mut self, record_bytes: u64) -> Result<()> {
        let need = (ValueCodec::HEADER_BYTES + record_bytes).div_ceil(4096) * 4096;
        let capacity = self.options.segment_bytes.max(need);
        let seq = self.active.seq + 1;
        let seg = match self.take_spare()? {
            Some(spare) if spare.seq == seq && spare.capacity >= need => {
                Arc::new(spare.into_place(&self.values_dir)?)
            }
            other => {
                if let Some(spare) = other {
                    // Too small for this record: the record gets a segment of its own.
                    std::fs::remove_file(&spare.path).map_err(|e| Error::io(&spare.path, e))?;
                }
                Arc::new(ValueSegment::create(&self.values_dir, seq, capacity)?)
            }
        };
        {
            let mut st = self.state.write();
            st.segments.insert(seq, Arc::clone(&seg));
            st.live_bytes.insert(seq, 0);
            st.disk_bytes += capacity;
        }
        self.active = seg;
        self.tail = ValueCodec::HEADER_BYTES;
        self.tails.insert(seq, self.tail);
        self.active_free
            .store(self.active.capacity - self.tail, Ordering::Relaxed);
        Ok(())
    }

    /// Starts creating segment `seq` on a helper thread once the active segment is half
    /// full, so that the rotation that needs it does not wait for its fallocate and fsyncs (issue 8: nothing of the kind on the
    /// write path). A spare left on disk by a crash is deleted by [`Mvcc::open`] as any
    /// segment no checkpoint references.
    fn prepare_spare(&mut self, seq: u64) {
        let dir = self.values_dir.clone();
        let capacity = self.options.segment_bytes;
        self.spare = std::thread::Builder::new()
            .name("value-segment".into())
            .spawn(move || ValueSegment::create_spare(&dir, seq, capacity))
            .ok();
    }

    /// The spare segment, once created (waits for it if it is still being made).
    /// Errors: the creation's (disk full, I/O error).
    fn take_spare(&mut self) -> Result<Option<ValueSegment>> {
        let Some(handle) = self.spare.take() else {
            return Ok(None);
        };
        match handle.join() {
            Ok(created) => created.map(Some),
            Err(_) => Err(Error::InvalidOptions(
                "the thread creating a value segment panicked".into(),
            )),
        }
    }
}

impl Drop for Mvcc {
    /// Waits for a spare value segment being created: no file appears in the store's
    /// directory after the store is gone.
    fn drop(&mut self) {
        if let Some(spare) = self.spare.take() {
            let _ = spare.join();
        }
    }
}

/// One write request (etcd storeTxnWrite): every write shares main revision
/// `begin + 1`, with sub revisions 0, 1, 2... in order. Ends with [`WriteTxn::end`]
/// (or on drop).
///
/// Writes go to the value segment at once; a failure to write there (disk full, I/O
/// error) is an `Err` of [`WriteTxn::try_put`] / [`WriteTxn::try_delete_range`] that the
/// server treats as fatal, as etcd's backend does with `lg.Fatal`: the apply loop cannot
/// go on with a half-applied request, and the WAL replays it after restart.
pub struct WriteTxn<'a> {
    mvcc: &'a mut Mvcc,
    begin: i64,
    events: Vec<Event>,
    ended: bool,
}

impl<'a> WriteTxn<'a> {
    fn next_rev(&self) -> Rev {
        Rev::new(self.begin + 1, self.events.len() as i64)
    }

    fn write_record(&mut self, rec: &ValueRecord<'_>) -> Result<Loc> {
        let mut buf = std::mem::take(&mut self.mvcc.buf);
        buf.clear();
        ValueCodec::encode(&mut buf, rec);
        let loc = self.mvcc.append(&buf);
        self.mvcc.buf = buf;
        loc
    }

    /// [`WriteTxn::try_put`] for tests and tools: panics where it returns `Err`.
    pub fn put(&mut self, key: &[u8], value: &[u8], lease: i64) -> Option<KeyValue> {
        self.try_put(key, value, lease)
            .unwrap_or_else(|e| panic!("mvcc: put failed: {e}"))
    }

    /// Put (etcd storeTxnWrite.put): version + 1 (1 on a new or deleted key),
    /// create_revision kept (a new generation after a delete starts at this revision),
    /// mod_revision = this txn's main revision, sub revision = number of earlier writes in
    /// the txn. Returns the previous kv (as seen by this txn) if the key was live.
    ///
    /// Errors: `Io` naming the value segment when a new segment cannot be created (disk
    /// full, I/O error, no fallocate); `Corruption` when the previous kv fails its check.
    /// After an error the store is not usable: the caller must stop (etcd's backend calls
    /// `lg.Fatal`), and the WAL replays the request after a restart.
    pub fn try_put(&mut self, key: &[u8], value: &[u8], lease: i64) -> Result<Option<KeyValue>> {
        assert!(
            (key.len() + value.len()) as u64 <= ValueCodec::KEY_VALUE_BYTES_MAX,
            "key + value above {} bytes",
            ValueCodec::KEY_VALUE_BYTES_MAX
        );
        let rev = self.next_rev();
        let (prev, create_revision, version) = {
            let st = self.mvcc.state.read();
            match st.keys.get(key).and_then(|ki| ki.get(rev.main)) {
                Some(f) => {
                    let prev = st.kv(f.modified, false)?;
                    (Some(prev), f.created.main, f.ver + 1)
                }
                None => (None, rev.main, 1),
            }
        };
        let loc = self.write_record(&ValueRecord {
            rev,
            create_revision,
            version,
            lease,
            tombstone: false,
            key,
            value,
        })?;
        let key = Bytes::copy_from_slice(key);
        {
            let mut st = self.mvcc.state.write();
            st.keys.entry(key.clone()).or_default().put(rev);
            st.revs.insert(
                rev,
                RevEntry {
                    key: key.clone(),
                    loc,
                },
            );
            *st.live_bytes.entry(loc.seg).or_default() += u64::from(loc.bytes);
        }
        self.events.push(Event {
            event_type: EventType::Put,
            kv: KeyValue {
                key,
                create_revision,
                mod_revision: rev.main,
                version,
                value: Bytes::copy_from_slice(value),
                lease,
            },
            prev_kv: prev.clone(),
        });
        Ok(prev)
    }

    /// [`WriteTxn::try_delete_range`] for tests and tools: panics where it returns `Err`.
    pub fn delete_range(&mut self, key: &[u8], range_end: &[u8]) -> Vec<KeyValue> {
        self.try_delete_range(key, range_end)
            .unwrap_or_else(|e| panic!("mvcc: delete failed: {e}"))
    }

    /// DeleteRange (etcd storeTxnWrite.deleteRange): writes a tombstone for every key in
    /// the range that is live as this txn sees it; returns the deleted kvs (their state
    /// right before the delete), in key order. `range_end` forms as
    /// [`MvccReader::range`]. Errors as [`WriteTxn::try_put`], with the same consequence.
    pub fn try_delete_range(&mut self, key: &[u8], range_end: &[u8]) -> Result<Vec<KeyValue>> {
        let read_rev = self.read_revision();
        let victims: Vec<KeyValue> = {
            let st = self.mvcc.state.read();
            st.key_range(key, range_end)
                .filter_map(|(_, ki)| ki.get(read_rev))
                .map(|f| st.kv(f.modified, false))
                .collect::<Result<_>>()?
        };
        for prev in &victims {
            let rev = self.next_rev();
            let loc = self.write_record(&ValueRecord {
                rev,
                create_revision: 0,
                version: 0,
                lease: 0,
                tombstone: true,
                key: &prev.key,
                value: &[],
            })?;
            {
                let mut st = self.mvcc.state.write();
                let done = st
                    .keys
                    .get_mut(&prev.key)
                    .is_some_and(|ki| ki.tombstone(rev));
                assert!(done, "tombstone of a live key failed");
                st.revs.insert(
                    rev,
                    RevEntry {
                        key: prev.key.clone(),
                        loc,
                    },
                );
                *st.live_bytes.entry(loc.seg).or_default() += u64::from(loc.bytes);
            }
            self.events.push(Event {
                event_type: EventType::Delete,
                kv: KeyValue {
                    key: prev.key.clone(),
                    mod_revision: rev.main,
                    ..KeyValue::default()
                },
                prev_kv: Some(prev.clone()),
            });
        }
        Ok(victims)
    }

    fn read_revision(&self) -> i64 {
        if self.events.is_empty() {
            self.begin
        } else {
            self.begin + 1
        }
    }

    /// Range as etcd's storeTxnWrite.Range: reads at [`WriteTxn::revision`], so it sees
    /// this txn's own earlier writes; `RangeResult::revision` is that revision too.
    pub fn range(
        &self,
        key: &[u8],
        range_end: &[u8],
        options: &RangeOptions,
    ) -> Result<RangeResult> {
        let st = self.mvcc.state.read();
        st.range(key, range_end, options, self.read_revision())
    }

    /// The revision this txn reads at and that a response should report: the store
    /// revision at begin, plus one once the txn has written something (then it is also
    /// the main revision of its writes).
    pub fn revision(&self) -> i64 {
        self.read_revision()
    }

    fn finish(&mut self) -> i64 {
        self.ended = true;
        if self.events.is_empty() {
            return self.begin;
        }
        let mut st = self.mvcc.state.write();
        assert_eq!(st.current_revision, self.begin);
        st.current_revision = self.begin + 1;
        self.begin + 1
    }

    /// Commits: the store revision advances by one only if the txn wrote something; the
    /// whole txn becomes visible to readers at once. Returns (the store revision after
    /// the txn, its events in (main, sub) order, each with `prev_kv` = the key's state
    /// right before that write).
    pub fn end(mut self) -> (i64, Vec<Event>) {
        let rev = self.finish();
        (rev, std::mem::take(&mut self.events))
    }
}

impl Drop for WriteTxn<'_> {
    fn drop(&mut self) {
        if !self.ended {
            self.finish();
        }
    }
}

/// Appends the protobuf encoding etcd stores for a revision (gogoproto `mvccpb.KeyValue`
/// marshal: fields in number order, zero values omitted; a tombstone holds only the key).
fn encode_etcd_key_value(buf: &mut Vec<u8>, rec: &values::ValueRecord<'_>, rev: Rev) {
    fn varint(buf: &mut Vec<u8>, mut v: u64) {
        while v >= 0x80 {
            buf.push((v as u8) | 0x80);
            v >>= 7;
        }
        buf.push(v as u8);
    }
    fn bytes_field(buf: &mut Vec<u8>, field: u64, b: &[u8]) {
        if !b.is_empty() {
            varint(buf, field << 3 | 2);
            varint(buf, b.len() as u64);
            buf.extend_from_slice(b);
        }
    }
    fn int_field(buf: &mut Vec<u8>, field: u64, v: i64) {
        if v != 0 {
            varint(buf, field << 3);
            varint(buf, v as u64);
        }
    }
    bytes_field(buf, 1, rec.key);
    if rec.tombstone {
        return;
    }
    int_field(buf, 2, rec.create_revision);
    int_field(buf, 3, rev.main);
    int_field(buf, 4, rec.version);
    bytes_field(buf, 5, rec.value);
    int_field(buf, 6, rec.lease);
}

/// The revision map from a checkpoint's revisions (ascending, each once: the map is built
/// in bulk); adds each record's bytes to its segment's entry of `live_bytes`.
fn rev_map(
    revs: Vec<(Rev, Bytes, Loc)>,
    live_bytes: &mut BTreeMap<u64, u64>,
) -> BTreeMap<Rev, RevEntry> {
    let count = revs.len();
    // (segment, bytes) of the current run of records in one segment.
    let mut run: Option<(u64, u64)> = None;
    let map: BTreeMap<Rev, RevEntry> = revs
        .into_iter()
        .map(|(rev, key, loc)| {
            match &mut run {
                Some((seg, bytes)) if *seg == loc.seg => *bytes += u64::from(loc.bytes),
                _ => {
                    if let Some((seg, bytes)) = run.replace((loc.seg, u64::from(loc.bytes))) {
                        *live_bytes.entry(seg).or_default() += bytes;
                    }
                }
            }
            (rev, RevEntry { key, loc })
        })
        .collect();
    if let Some((seg, bytes)) = run {
        *live_bytes.entry(seg).or_default() += bytes;
    }
    assert_eq!(map.len(), count, "checkpoint revisions are unique");
    map
}
