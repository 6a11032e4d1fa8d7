//! Reads that never make the writer wait: pinned read views scanned in bounded chunks.
//!
//! # The scheme (issue 8, ARCHITECTURE.md "MVCC reader concurrency")
//! A read picks its revision once ([`MvccReader::view`]) and registers a *pin* on it. The
//! key index is an MVCC history, so the state at that revision stays readable however
//! many writes land afterwards; the only thing that could destroy it is compaction, and
//! the physical part of compaction never removes a revision a pin still needs (it runs
//! at `min(compact revision, oldest pin)`, see `compaction.rs`). The view then reads in
//! chunks of at most [`SCAN_CHUNK_ENTRIES`] index entries; each chunk takes the index's
//! read lock, and drops it before the next one. So the writer waits at most for one
//! chunk (tens of microseconds) instead of a whole scan, and a caller on an executor
//! can yield between chunks so that its core keeps serving.
//!
//! A write txn is published by one increment of the current revision under the write
//! lock, so a view never sees part of a txn: index entries above its revision are
//! skipped by `KeyIndex::get`.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::{Mutex, RwLock};

use super::key_index::{KeyIndex, Rev};
use super::{encode_etcd_key_value, Event, KeyValue, RangeOptions, RangeResult, State};
use crate::error::{Error, Result};

/// Index entries (keys, or revisions for event and hash scans) one chunk of a scan
/// visits while holding the index's read lock. Chosen so that a chunk of 1 KiB values
/// takes well under a millisecond: the longest the writer can wait for a reader.
pub const SCAN_CHUNK_ENTRIES: usize = 1024;

/// The revisions that running reads pin: physical compaction never goes above the
/// lowest (see `compaction.rs`). A count per revision, as many reads share one.
#[derive(Default)]
pub(crate) struct Pins {
    counts: Mutex<BTreeMap<i64, usize>>,
}

impl Pins {
    /// The lowest pinned revision, if any read is running.
    pub(crate) fn lowest(&self) -> Option<i64> {
        self.counts.lock().keys().next().copied()
    }

    /// Pins `at`. Called with the index's lock held (read or write), so a compaction
    /// that publishes its revision under the write lock either sees this pin or made
    /// the caller see the new compact revision first.
    pub(crate) fn pin(self: &Arc<Self>, at: i64) -> Pin {
        *self.counts.lock().entry(at).or_default() += 1;
        Pin {
            pins: Arc::clone(self),
            at,
        }
    }
}

/// One registered pin; released on drop.
pub(crate) struct Pin {
    pins: Arc<Pins>,
    at: i64,
}

impl Drop for Pin {
    fn drop(&mut self) {
        let mut counts = self.pins.counts.lock();
        if let Some(n) = counts.get_mut(&self.at) {
            *n -= 1;
            if *n == 0 {
                counts.remove(&self.at);
            }
        }
    }
}

/// A key-value pair of a [`ReadView`] scan, borrowing its value from the value segment
/// (no copy): encode it where it must go.
#[derive(Debug)]
pub struct KvRef<'a> {
    /// The key.
    pub key: &'a Bytes,
    /// Revision of the put that created the key's current generation.
    pub create_revision: i64,
    /// Revision of the last modification at or below the view's revision.
    pub mod_revision: i64,
    /// Number of puts since the generation was created.
    pub version: i64,
    /// Lease id, 0 for none.
    pub lease: i64,
    /// The value; empty when the scan asked for keys only.
    pub value: &'a [u8],
}

impl KvRef<'_> {
    /// An owned copy.
    pub fn to_owned_kv(&self) -> KeyValue {
        KeyValue {
            key: self.key.clone(),
            create_revision: self.create_revision,
            mod_revision: self.mod_revision,
            version: self.version,
            value: Bytes::copy_from_slice(self.value),
            lease: self.lease,
        }
    }
}

/// What one chunk of [`ReadView::count_chunk`] found.
#[derive(Debug, Default, Clone)]
pub struct CountChunk {
    /// Keys visible at the view's revision.
    pub keys: u64,
    /// Bytes of their value records (key, value and a 53-byte header each, 8-aligned):
    /// an upper bound, in practice, of their protobuf encoding, to size a response.
    pub record_bytes: u64,
    /// Where the next chunk starts (exclusive); `None` once the range is done.
    pub resume: Option<Bytes>,
}

/// A consistent read of the store at one revision that holds the index's lock only one
/// chunk at a time (see the module doc). `Send + Sync`; dropping it releases its pin.
pub struct ReadView {
    state: Arc<RwLock<State>>,
    revision: i64,
    current_revision: i64,
    compact_revision: i64,
    _pin: Pin,
}

/// Lower and upper bound of a key scan.
type KeyBounds<'a> = (Bound<&'a [u8]>, Bound<&'a [u8]>);

/// A range's bounds with etcd's `range_end` forms; `after` resumes a scan.
fn bounds<'a>(
    key: &'a [u8],
    range_end: &'a [u8],
    after: Option<&'a [u8]>,
) -> Option<KeyBounds<'a>> {
    let upper = if range_end.is_empty() {
        Bound::Included(key)
    } else if range_end == [0] {
        Bound::Unbounded
    } else if range_end <= key {
        return None;
    } else {
        Bound::Excluded(range_end)
    };
    let lower = match after {
        Some(after) => {
            let past_end = match upper {
                Bound::Included(end) => after >= end,
                Bound::Excluded(end) => after >= end,
                Bound::Unbounded => false,
            };
            if past_end || after < key {
                return None;
            }
            Bound::Excluded(after)
        }
        None => Bound::Included(key),
    };
    Some((lower, upper))
}

impl ReadView {
    /// The revision this view reads at.
    pub fn revision(&self) -> i64 {
        self.revision
    }

    /// The store's current revision when the view was made (what etcd's Range header
    /// reports, even for a read at an older revision).
    pub fn current_revision(&self) -> i64 {
        self.current_revision
    }

    /// The compact revision when the view was made.
    pub fn compact_revision(&self) -> i64 {
        self.compact_revision
    }

    /// Visits the index entries of `[key, range_end)` (etcd's `range_end` forms, see
    /// [`MvccReader::range`]) after `after` (exclusive; `None` = from `key`), at most
    /// [`SCAN_CHUNK_ENTRIES`] of them, calling `visit` for each key visible at the
    /// view's revision with its record unless `keys_only` (then `value` is empty and no
    /// record is read). Returns the last key examined when the range may go on.
    ///
    /// Errors: `Corruption` when a record fails its check.
    pub fn read_chunk(
        &self,
        key: &[u8],
        range_end: &[u8],
        after: Option<&[u8]>,
        keys_only: bool,
        mut visit: impl FnMut(KvRef<'_>),
    ) -> Result<Option<Bytes>> {
        let Some(bounds) = bounds(key, range_end, after) else {
            return Ok(None);
        };
        let st = self.state.read();
        let mut last = None;
        for (examined, (k, ki)) in st.keys.range::<[u8], _>(bounds).enumerate() {
            if examined == SCAN_CHUNK_ENTRIES {
                return Ok(last);
            }
            last = Some(k.clone());
            let Some(found) = ki.get(self.revision) else {
                continue;
            };
            let (rec, _) = st.record(found.modified)?;
            visit(KvRef {
                key: k,
                create_revision: rec.create_revision,
                mod_revision: found.modified.main,
                version: rec.version,
                lease: rec.lease,
                value: if keys_only { &[] } else { rec.value },
            });
        }
        Ok(None)
    }

    /// Counts, in one chunk as [`ReadView::read_chunk`], the keys of the range visible
    /// at the view's revision and the bytes of their records, without reading them.
    pub fn count_chunk(
        &self,
        key: &[u8],
        range_end: &[u8],
        after: Option<&[u8]>,
    ) -> Result<CountChunk> {
        let mut out = CountChunk::default();
        let Some(bounds) = bounds(key, range_end, after) else {
            return Ok(out);
        };
        let st = self.state.read();
        for (examined, (k, ki)) in st.keys.range::<[u8], _>(bounds).enumerate() {
            if examined == SCAN_CHUNK_ENTRIES {
                return Ok(out);
            }
            out.resume = Some(k.clone());
            if let Some(found) = ki.get(self.revision) {
                out.keys += 1;
                out.record_bytes += st
                    .revs
                    .get(&found.modified)
                    .map_or(0, |e| u64::from(e.loc.bytes));
            }
        }
        out.resume = None;
        Ok(out)
    }

    /// The whole range as [`MvccReader::range`] returns it, read chunk by chunk.
    pub fn range(
        &self,
        key: &[u8],
        range_end: &[u8],
        options: &RangeOptions,
    ) -> Result<RangeResult> {
        let mut result = RangeResult {
            kvs: Vec::new(),
            count: 0,
            revision: self.current_revision,
        };
        let mut after: Option<Bytes> = None;
        // Values are read while kvs are still wanted; past `limit` only counting goes on.
        loop {
            let want_kvs =
                !options.count_only && (options.limit == 0 || result.kvs.len() < options.limit);
            if !want_kvs {
                let chunk = self.count_chunk(key, range_end, after.as_deref())?;
                result.count += chunk.keys as usize;
                match chunk.resume {
                    Some(resume) => after = Some(resume),
                    None => return Ok(result),
                }
                continue;
            }
            let limit = options.limit;
            let kvs = &mut result.kvs;
            let count = &mut result.count;
            let resume =
                self.read_chunk(key, range_end, after.as_deref(), options.keys_only, |kv| {
                    *count += 1;
                    if limit == 0 || kvs.len() < limit {
                        kvs.push(kv.to_owned_kv());
                    }
                })?;
            match resume {
                Some(resume) => after = Some(resume),
                None => return Ok(result),
            }
        }
    }
}

/// A cheap, cloneable, thread-safe read handle on the store (`Clone + Send + Sync`).
/// Sees every write txn that has ended, never a part of one in progress.
#[derive(Clone)]
pub struct MvccReader {
    pub(super) state: Arc<RwLock<State>>,
    pub(super) pins: Arc<Pins>,
    /// Preallocated bytes of the active value segment not yet written.
    pub(super) active_free: Arc<std::sync::atomic::AtomicU64>,
}

impl MvccReader {
    /// The store's current revision; 1 on an empty store, as etcd.
    pub fn current_revision(&self) -> i64 {
        self.state.read().current_revision
    }

    /// The last compaction revision; 0 when never compacted.
    pub fn compact_revision(&self) -> i64 {
        self.state.read().compact_revision
    }

    /// A [`ReadView`] at `revision` (0 or negative = current). Errors: `Compacted` below
    /// the compact revision, `FutureRevision` above the current one (etcd's rules for a
    /// Range's revision).
    pub fn view(&self, revision: i64) -> Result<ReadView> {
        let st = self.state.read();
        let rev = if revision <= 0 {
            st.current_revision
        } else {
            revision
        };
        if rev > st.current_revision {
            return Err(Error::FutureRevision);
        }
        if rev < st.compact_revision {
            return Err(Error::Compacted);
        }
        Ok(ReadView {
            state: Arc::clone(&self.state),
            revision: rev,
            current_revision: st.current_revision,
            compact_revision: st.compact_revision,
            _pin: self.pins.pin(rev),
        })
    }

    /// Range read (etcd storeTxnRead.Range). `range_end`: empty → the single `key`;
    /// `b"\0"` → every key >= `key`; otherwise `[key, range_end)` (empty when
    /// `range_end <= key`). Keys ascending. `options.revision` below the compact revision
    /// → `Err(Compacted)`; above the current one → `Err(FutureRevision)`. Read in chunks
    /// through a [`ReadView`]: the writer never waits for the whole range.
    pub fn range(
        &self,
        key: &[u8],
        range_end: &[u8],
        options: &RangeOptions,
    ) -> Result<RangeResult> {
        self.view(options.revision)?.range(key, range_end, options)
    }

    /// Events (puts and deletes) with main revision in `[from_revision, to_revision]`
    /// (`to_revision` is capped at the current revision; `from_revision <= 0` means 1) on
    /// keys in `[key, range_end)` (same forms as [`MvccReader::range`]), ordered by
    /// (main, sub) revision.
    ///
    /// `prev_kv` (when `with_prev_kv`) is the key's previous retained revision in the
    /// same generation, i.e. its state right before the event; `None` for a creating put.
    /// `max_events` (0 = no limit) bounds the result by whole revisions: events are
    /// added revision by revision and no revision is ever split, so the result can
    /// exceed `max_events` by the events of its last revision.
    ///
    /// `from_revision < compact_revision` → `Err(Compacted)`, as etcd's watchable store
    /// (`w.minRev < compactRev`); starting exactly at the compact revision is allowed.
    /// The revisions are scanned [`SCAN_CHUNK_ENTRIES`] at a time under the read lock.
    pub fn events(
        &self,
        key: &[u8],
        range_end: &[u8],
        from_revision: i64,
        to_revision: i64,
        with_prev_kv: bool,
        max_events: usize,
    ) -> Result<Vec<Event>> {
        let from = from_revision.max(1);
        let (to, _pin) = {
            let st = self.state.read();
            if from < st.compact_revision {
                return Err(Error::Compacted);
            }
            // Physical compaction stays at or below `from - 1`: every revision >= from
            // is kept while this scan runs.
            (
                to_revision.min(st.current_revision),
                self.pins.pin(from - 1),
            )
        };
        let mut out = Vec::new();
        let mut cursor = Rev::new(from, 0);
        let end = Rev::new(to + 1, 0);
        let mut last_main = 0;
        while cursor < end {
            let st = self.state.read();
            let mut next = end;
            for (examined, (rev, entry)) in st.revs.range(cursor..end).enumerate() {
                if examined == SCAN_CHUNK_ENTRIES {
                    next = *rev;
                    break;
                }
                if !State::key_in_range(&entry.key, key, range_end) {
                    continue;
                }
                if rev.main != last_main && max_events != 0 && out.len() >= max_events {
                    return Ok(out);
                }
                last_main = rev.main;
                let ki = st.keys.get(&entry.key).ok_or_else(|| {
                    Error::corruption(
                        "",
                        0,
                        format!("key of revision {rev:?} missing from the index"),
                    )
                })?;
                out.push(st.event(*rev, ki, &entry.key, with_prev_kv)?);
            }
            cursor = next;
        }
        Ok(out)
    }

    /// etcd HashKV: CRC-32C over the bucket name `key`, then the bbolt key and value of
    /// every revision of a [`KeyBucketScan`] at `revision` keeping at `revision`.
    /// `revision` 0 = current. Returns `(hash, compact_revision, revision used)`.
    /// `0 < revision <= compact_revision` → `Err(Compacted)`; above current →
    /// `Err(FutureRevision)` (etcd kvstore.go HashByRev). Runs a [`HashKvScan`] to the end.
    pub fn hash_kv(&self, revision: i64) -> Result<(u32, i64, i64)> {
        let mut scan = self.hash_kv_scan(revision)?;
        while !scan.step()? {}
        Ok(scan.result())
    }

    /// A HashKV computed one chunk at a time ([`HashKvScan::step`]), so that an
    /// executor can yield between chunks; errors as [`MvccReader::hash_kv`]. The compact
    /// revision is pinned while the scan lives: writes and compactions go on meanwhile.
    pub fn hash_kv_scan(&self, revision: i64) -> Result<HashKvScan> {
        let mut scan = self.key_bucket_scan(revision)?;
        scan.keep_at = scan.revision;
        Ok(HashKvScan {
            scan,
            // etcd mvcc/kvstore.go HashByRev starts with the bucket name "key".
            hash: crc32c::crc32c(b"key"),
        })
    }

    /// A [`KeyBucketScan`] at `revision` (0 = current) keeping at the compact revision (the
    /// `key` bucket of a snapshot file). `0 < revision <= compact
    /// revision` → `Err(Compacted)`; above the current one → `Err(FutureRevision)`.
    pub fn key_bucket_scan(&self, revision: i64) -> Result<KeyBucketScan> {
        let st = self.state.read();
        if revision > 0 && revision <= st.compact_revision {
            return Err(Error::Compacted);
        }
        if revision > st.current_revision {
            return Err(Error::FutureRevision);
        }
        let rev = if revision <= 0 {
            st.current_revision
        } else {
            revision
        };
        Ok(KeyBucketScan {
            state: Arc::clone(&self.state),
            revision: rev,
            compact: st.compact_revision,
            keep_at: st.compact_revision,
            cursor: Rev::new(0, 0),
            key: Vec::new(),
            value: Vec::new(),
            _pin: self.pins.pin(st.compact_revision),
        })
    }

    /// crc32 of the whole current state: current and compact revisions and the HashKV
    /// at the current revision ([`HashKvScan::store_hash`]). Equal on two stores with the
    /// same history whatever their physical compaction. A record that fails its check
    /// gives a hash no healthy member has (and an error log).
    pub fn hash(&self) -> u32 {
        let hashed = self.hash_kv_scan(0).and_then(|mut scan| {
            while !scan.step()? {}
            Ok(scan.store_hash())
        });
        hashed.unwrap_or_else(|e| {
            tracing::error!(error = %e, "hash over a corrupt value record");
            crc32fast::hash(b"corrupt")
        })
    }

    /// Bytes on disk: value segments (preallocated size, segments awaiting deletion
    /// included) plus the newest checkpoint; etcd's dbSize analogue.
    pub fn size_bytes(&self) -> u64 {
        // Preallocated space not yet written does not count, as a growing bbolt file's would not.
        let disk = self.state.read().disk_bytes;
        disk.saturating_sub(self.active_free.load(std::sync::atomic::Ordering::Relaxed))
    }

    /// Bytes of value records still retained plus the newest checkpoint; etcd's
    /// dbSizeInUse analogue.
    pub fn size_in_use_bytes(&self) -> u64 {
        let st = self.state.read();
        st.live_bytes.values().sum::<u64>() + st.checkpoint_bytes
    }
}

/// A walk over etcd's `key` bucket as it would be at one revision: every retained
/// revision with main revision in `(compact_revision, revision]`, plus, at or below the
/// compact revision, the revisions of etcd's `keep` set at a *keep revision*: each key's
/// latest revision at or below it, unless that is a tombstone. In (main, sub) order, as
/// bbolt iterates the bucket. The compact revision is pinned while the scan lives: writes
/// and compactions go on meanwhile.
///
/// [`MvccReader::key_bucket_scan`] keeps at the compact revision: what etcd's physical
/// compaction leaves in bbolt (`kvindex.Compact(compactRev)`), the `key` bucket of a
/// `Maintenance.Snapshot` file. HashKV ([`HashKvScan`]) keeps at the hashed revision, as
/// etcd 3.4's `HashByRev` does (`kvindex.Keep(rev)`, checked against Debian's etcd 3.4).
pub struct KeyBucketScan {
    state: Arc<RwLock<State>>,
    revision: i64,
    compact: i64,
    keep_at: i64,
    cursor: Rev,
    key: Vec<u8>,
    value: Vec<u8>,
    _pin: Pin,
}

impl KeyBucketScan {
    /// The revision the scan reads at.
    pub fn revision(&self) -> i64 {
        self.revision
    }

    /// The compact revision when the scan began.
    pub fn compact_revision(&self) -> i64 {
        self.compact
    }

    /// Visits the next [`SCAN_CHUNK_ENTRIES`] revisions under one hold of the read lock,
    /// calling `visit(bbolt key, bbolt value)` for each revision in the bucket: the
    /// revision key (`main BE | '_' | sub BE`, + `'t'` for a tombstone) and the marshaled
    /// `mvccpb.KeyValue` (a tombstone's holds only the key). True once every revision is
    /// visited. Errors: `Corruption` when a record fails its check.
    pub fn step(&mut self, mut visit: impl FnMut(&[u8], &[u8])) -> Result<bool> {
        let end = Rev::new(self.revision + 1, 0);
        if self.cursor >= end {
            return Ok(true);
        }
        let (compact, keep_at) = (self.compact, self.keep_at);
        let st = self.state.read();
        let mut next = end;
        for (examined, (r, entry)) in st.revs.range(self.cursor..end).enumerate() {
            if examined == SCAN_CHUNK_ENTRIES {
                next = *r;
                break;
            }
            if r.main <= compact {
                // Kept only if it is the key's visible state at the keep revision; a
                // tombstone at or below the compact revision is never kept (it may linger
                // while a compaction's physical part is pending).
                let ki = st.keys.get(&entry.key);
                let superseded = ki
                    .and_then(|ki| ki.next(*r))
                    .is_some_and(|n| n.main <= keep_at);
                if superseded || ki.is_some_and(|ki| ki.is_tombstone(*r)) {
                    continue;
                }
            }
            let (rec, _) = st.record(*r)?;
            self.key.clear();
            self.key.extend_from_slice(&r.main.to_be_bytes());
            self.key.push(b'_');
            self.key.extend_from_slice(&r.sub.to_be_bytes());
            if rec.tombstone {
                self.key.push(b't');
            }
            self.value.clear();
            encode_etcd_key_value(&mut self.value, &rec, *r);
            visit(&self.key, &self.value);
        }
        self.cursor = next;
        Ok(next >= end)
    }
}

/// A HashKV in progress; see [`MvccReader::hash_kv_scan`].
pub struct HashKvScan {
    scan: KeyBucketScan,
    hash: u32,
}

impl HashKvScan {
    /// Hashes the next [`SCAN_CHUNK_ENTRIES`] revisions under one hold of the read lock;
    /// true once every revision is in. Errors: `Corruption` when a record fails its check.
    pub fn step(&mut self) -> Result<bool> {
        let hash = &mut self.hash;
        // Each revision's bbolt key and value, as etcd hashes them.
        self.scan.step(|k, v| {
            *hash = crc32c::crc32c_append(*hash, k);
            *hash = crc32c::crc32c_append(*hash, v);
        })
    }

    /// The store hash ([`MvccReader::hash`]) of a scan begun at the current revision:
    /// crc32 (IEEE) of the revision, the compact revision and the HashKV.
    pub fn store_hash(&self) -> u32 {
        let mut h = crc32fast::Hasher::new();
        h.update(&self.scan.revision.to_le_bytes());
        h.update(&self.scan.compact.to_le_bytes());
        h.update(&self.hash.to_le_bytes());
        h.finalize()
    }

    /// `(hash, compact_revision, revision)` once [`HashKvScan::step`] returned true.
    pub fn result(&self) -> (u32, i64, i64) {
        (self.hash, self.scan.compact, self.scan.revision)
    }
}

/// `KeyIndex` as it was at revision `at`, compacted at `compact` (`compact <= at`):
/// what a checkpoint taken at `at` records for the key, whatever was written or
/// compacted since. `None` when nothing of the key is retained at `at`.
pub(crate) fn key_index_at(ki: &KeyIndex, at: i64, compact: i64) -> Option<KeyIndex> {
    let mut out = if ki.modified.main <= at {
        ki.clone()
    } else {
        ki.truncated(at)?
    };
    out.compact(compact);
    (!out.is_empty()).then_some(out)
}
