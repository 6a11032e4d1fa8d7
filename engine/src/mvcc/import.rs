//! Building a store from another store's history: the `key` bucket of an etcd backend
//! (a snapshot being restored, an etcd member's `member/snap/db` on first start).
//!
//! The revisions arrive in (main, sub) order, as bbolt iterates the bucket, and the key
//! index is rebuilt as etcd's `restoreIntoIndex` does (etcd mvcc/kvstore.go): the first
//! revision of a key seen opens a generation created at its `create_revision` with its
//! `version`; later puts extend the key's history; a tombstone closes the generation (a
//! tombstone of a key not in the index is dropped, as etcd skips it). Then
//! [`Mvcc::finish_import`] sets the revisions and runs the compaction the backend records.

use bytes::Bytes;

use super::key_index::{Generation, KeyIndex, Rev};
use super::values::{ValueCodec, ValueRecord};
use super::{Mvcc, RevEntry};
use crate::error::{Error, Result};

/// One revision of an etcd `key` bucket: its revision key and its `mvccpb.KeyValue`.
#[derive(Clone, Copy, Debug)]
pub struct ImportedRevision<'a> {
    /// Main revision.
    pub main: i64,
    /// Sub revision.
    pub sub: i64,
    /// The revision key carries the tombstone mark `'t'`.
    pub tombstone: bool,
    /// The key.
    pub key: &'a [u8],
    /// The value (empty for a tombstone).
    pub value: &'a [u8],
    /// `create_revision` of the key's generation.
    pub create_revision: i64,
    /// `version` of the key at this revision.
    pub version: i64,
    /// Lease ID, 0 for none.
    pub lease: i64,
}

impl<'a> ImportedRevision<'a> {
    /// The revision of one `key` bucket entry: its revision key's parts and its decoded
    /// `mvccpb.KeyValue`.
    pub fn from_stored(
        (main, sub, tombstone): (i64, i64, bool),
        kv: &'a crate::etcd_backend::StoredKeyValue,
    ) -> ImportedRevision<'a> {
        ImportedRevision {
            main,
            sub,
            tombstone,
            key: &kv.key,
            value: &kv.value,
            create_revision: kv.create_revision,
            version: kv.version,
            lease: kv.lease,
        }
    }
}

impl Mvcc {
    /// Adds one revision of an imported history to an empty store (see the module doc).
    /// Returns false when the revision was dropped (a tombstone of a key that has no live
    /// generation). Errors: `InvalidOptions` when the revision is not above the previous
    /// one, is below 1, or its key and value exceed the record limit; `Io` from the
    /// value segment.
    pub fn import_revision(&mut self, r: &ImportedRevision<'_>) -> Result<bool> {
        let rev = Rev::new(r.main, r.sub);
        let last = self.state.read().revs.last_key_value().map(|(rev, _)| *rev);
        if r.main < 1 || r.sub < 0 || last.is_some_and(|last| rev <= last) {
            return Err(Error::InvalidOptions(format!(
                "imported revision {}.{} is not above the previous one {last:?}",
                r.main, r.sub
            )));
        }
        if (r.key.len() + r.value.len()) as u64 > ValueCodec::KEY_VALUE_BYTES_MAX {
            return Err(Error::InvalidOptions(format!(
                "imported revision {}.{}: key and value above {} bytes",
                r.main,
                r.sub,
                ValueCodec::KEY_VALUE_BYTES_MAX
            )));
        }
        let live = {
            let st = self.state.read();
            st.keys
                .get(r.key)
                .is_some_and(|ki| ki.generations.last().is_some_and(|g| !g.revs.is_empty()))
        };
        if r.tombstone && !live {
            return Ok(false);
        }
        let mut buf = std::mem::take(&mut self.buf);
        buf.clear();
        ValueCodec::encode(
            &mut buf,
            &ValueRecord {
                rev,
                create_revision: if r.tombstone { 0 } else { r.create_revision },
                version: if r.tombstone { 0 } else { r.version },
                lease: if r.tombstone { 0 } else { r.lease },
                tombstone: r.tombstone,
                key: r.key,
                value: if r.tombstone { &[] } else { r.value },
            },
        );
        let loc = self.append(&buf);
        self.buf = buf;
        let loc = loc?;
        let key = Bytes::copy_from_slice(r.key);
        let mut st = self.state.write();
        match st.keys.get_mut(r.key) {
            Some(ki) if r.tombstone => {
                ki.tombstone(rev);
            }
            Some(ki) if ki.generations.last().is_some_and(|g| g.revs.is_empty()) => {
                // A new generation after a tombstone, as etcd's keyIndex.put starts one.
                ki.put(rev);
            }
            Some(ki) => ki.put(rev),
            None => {
                // etcd keyIndex.restore: the generation's creation and version as stored.
                st.keys.insert(
                    key.clone(),
                    KeyIndex {
                        modified: rev,
                        generations: vec![Generation {
                            ver: r.version,
                            created: Rev::new(r.create_revision, 0),
                            revs: vec![rev],
                        }],
                    },
                );
            }
        }
        st.revs.insert(rev, RevEntry { key, loc });
        *st.live_bytes.entry(loc.seg).or_default() += u64::from(loc.bytes);
        Ok(true)
    }

    /// Ends an import: the current revision becomes the highest imported main revision
    /// (at least `compact_revision`, at least 1), then the store is compacted at
    /// `compact_revision` (etcd's `finishedCompactRev`, or its `scheduledCompactRev` when
    /// that compaction had not finished; 0 = none) with its physical part run to the end.
    /// Returns the current revision. Errors: those of [`Mvcc::compact`].
    pub fn finish_import(&mut self, compact_revision: i64) -> Result<i64> {
        let current = {
            let mut st = self.state.write();
            let last = st.revs.last_key_value().map_or(1, |(rev, _)| rev.main);
            st.current_revision = last.max(compact_revision).max(1);
            st.current_revision
        };
        if compact_revision > 0 {
            self.compact(compact_revision)?;
        }
        Ok(current)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mvcc::{MvccOptions, RangeOptions};

    fn put<'a>(
        main: i64,
        key: &'a [u8],
        value: &'a [u8],
        created: i64,
        version: i64,
    ) -> ImportedRevision<'a> {
        ImportedRevision {
            main,
            sub: 0,
            tombstone: false,
            key,
            value,
            create_revision: created,
            version,
            lease: 0,
        }
    }

    #[test]
    fn an_imported_history_reads_and_hashes_as_the_original() {
        let dir = tempfile::tempdir().unwrap();
        // The original: a@2 b@3 a@4 delete b@5 b@6, compacted at 4, then a@7.
        let mut orig = Mvcc::open(&dir.path().join("orig"), MvccOptions::default()).unwrap();
        for (k, v) in [("a", "1"), ("b", "1"), ("a", "2")] {
            let mut w = orig.write();
            w.put(k.as_bytes(), v.as_bytes(), 0);
            w.end();
        }
        let mut w = orig.write();
        w.delete_range(b"b", b"");
        w.end();
        let mut w = orig.write();
        w.put(b"b", b"2", 0);
        w.end();
        orig.compact(4).unwrap();
        let mut w = orig.write();
        w.put(b"a", b"3", 7);
        w.end();

        let mut bucket = Vec::new();
        let reader = orig.reader();
        let mut scan = reader.key_bucket_scan(0).unwrap();
        while !scan
            .step(|k, v| bucket.push((k.to_vec(), v.to_vec())))
            .unwrap()
        {}
        let mut copy = Mvcc::open(&dir.path().join("copy"), MvccOptions::default()).unwrap();
        for (k, v) in &bucket {
            let rev = crate::etcd_backend::parse_revision_key(k).unwrap();
            let kv: crate::etcd_backend::StoredKeyValue = prost::Message::decode(&v[..]).unwrap();
            copy.import_revision(&ImportedRevision::from_stored(rev, &kv))
                .unwrap();
        }
        assert_eq!(copy.finish_import(4).unwrap(), 7);
        let (a, b) = (orig.reader(), copy.reader());
        assert_eq!(a.hash_kv(0).unwrap(), b.hash_kv(0).unwrap());
        assert_eq!(a.hash(), b.hash());
        let all = RangeOptions::default();
        let (ra, rb) = (
            a.range(b"", b"\0", &all).unwrap(),
            b.range(b"", b"\0", &all).unwrap(),
        );
        assert_eq!(ra.kvs, rb.kvs);
        assert_eq!(rb.kvs[0].version, 3, "a's version survives the compaction");
        assert_eq!(rb.kvs[0].lease, 7);
        let at4 = RangeOptions {
            revision: 4,
            ..RangeOptions::default()
        };
        assert_eq!(
            a.range(b"", b"\0", &at4).unwrap().kvs,
            b.range(b"", b"\0", &at4).unwrap().kvs
        );
        assert_eq!(b.compact_revision(), 4);
        assert!(b
            .range(
                b"",
                b"\0",
                &RangeOptions {
                    revision: 3,
                    ..RangeOptions::default()
                }
            )
            .is_err());
        // Writes go on from the imported revision with etcd's versions.
        let mut w = copy.write();
        let prev = w.put(b"b", b"3", 0).unwrap();
        assert_eq!((prev.create_revision, prev.version), (6, 1));
        assert_eq!(w.end().0, 8);
    }

    #[test]
    fn out_of_order_revisions_and_orphan_tombstones() {
        let dir = tempfile::tempdir().unwrap();
        let mut m = Mvcc::open(dir.path(), MvccOptions::default()).unwrap();
        let orphan = ImportedRevision {
            tombstone: true,
            ..put(2, b"x", b"", 0, 0)
        };
        assert!(!m.import_revision(&orphan).unwrap());
        assert!(m.import_revision(&put(3, b"x", b"v", 3, 1)).unwrap());
        assert!(m.import_revision(&put(3, b"y", b"v", 3, 1)).is_err());
        assert_eq!(m.finish_import(0).unwrap(), 3);
    }
}
