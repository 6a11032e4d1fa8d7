//! Checkpoint files: a durable image of the key index, the store revisions, the
//! value-segment tails, the applied index and the server's opaque `meta`.

use std::collections::BTreeMap;
use std::path::Path;

use bytes::{Bytes, BytesMut};

use super::key_index::{Generation, KeyIndex, Rev};
use super::values::{ValueCodec, ValueSegment, VALUE_EXT};
use crate::codec::Reader;
use crate::error::{Error, Result};
use crate::fsutil;

/// File extension of checkpoints.
pub(crate) const CHECKPOINT_EXT: &str = "ckpt";

/// Location of one revision's record in the value segments.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Loc {
    pub(crate) seg: u64,
    pub(crate) offset: u64,
    pub(crate) bytes: u32,
}

/// One value segment as recorded by a checkpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SegmentTail {
    pub(crate) seq: u64,
    /// Bytes of the segment that hold records referenced or written before the
    /// checkpoint; anything after is discarded on open.
    pub(crate) tail: u64,
}

/// Everything a checkpoint holds, as [`CheckpointCodec::encode`] takes it (tests; the
/// server streams checkpoints, `background.rs`).
#[cfg(test)]
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Image {
    pub(crate) applied_index: u64,
    pub(crate) current_revision: i64,
    pub(crate) compact_revision: i64,
    pub(crate) meta: Bytes,
    pub(crate) segments: Vec<SegmentTail>,
    pub(crate) keys: BTreeMap<Bytes, KeyIndex>,
    pub(crate) locs: BTreeMap<Rev, Loc>,
}

/// A decoded checkpoint in the shape [`super::Mvcc::open`] builds its state from: the
/// key index as a map, and every revision once, ascending, with its key and location
/// (so the revision map is built in bulk, not looked up key by key).
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Decoded {
    pub(crate) applied_index: u64,
    pub(crate) current_revision: i64,
    pub(crate) compact_revision: i64,
    pub(crate) meta: Bytes,
    pub(crate) segments: Vec<SegmentTail>,
    pub(crate) keys: BTreeMap<Bytes, KeyIndex>,
    /// Ascending by revision, no revision twice.
    pub(crate) revs: Vec<(Rev, Bytes, Loc)>,
}

/// Bytes of the shared buffers decoded keys are copied into: one allocation per chunk
/// instead of one per key. A live key keeps its chunk alive, so the memory a chunk's
/// deleted keys held is returned only once every key of the chunk is gone (keys are
/// decoded in order, so a chunk holds neighbours); the overhead is bounded by the key
/// bytes of the checkpoint loaded at start.
const KEY_CHUNK_BYTES: usize = 4096;

/// Copies keys into [`KEY_CHUNK_BYTES`] chunks and hands out slices of them.
struct KeyChunks {
    chunk: BytesMut,
}

impl KeyChunks {
    fn new() -> KeyChunks {
        KeyChunks {
            chunk: BytesMut::new(),
        }
    }

    fn copy(&mut self, key: &[u8]) -> Bytes {
        if self.chunk.capacity() - self.chunk.len() < key.len() {
            self.chunk = BytesMut::with_capacity(KEY_CHUNK_BYTES.max(key.len()));
        }
        self.chunk.extend_from_slice(key);
        let copied = self.chunk.split().freeze();
        assert_eq!(copied.len(), key.len());
        copied
    }
}

/// Encoding of checkpoint files `NNNNNNNNNNNNNNNN.ckpt` (all integers little-endian).
///
/// ```text
///   0  magic           8  b"CAIRNCKP"
///   8  version         4  1
///  12  reserved        4  0
///  16  body_len        8  bytes of the body
///  24  body            body_len bytes:
///        applied_index u64, current_revision i64, compact_revision i64,
///        meta_len u32, meta bytes,
///        segment_count u32, per segment: seq u64, tail u64,
///        key_count u64, per key:
///          key_len u32, key bytes, modified (main i64, sub i64),
///          generation_count u32, per generation:
///            created (main i64, sub i64), ver i64, rev_count u32, per revision:
///              main i64, sub i64, segment seq u64, offset u64, record bytes u32
///  24+body_len  crc32   4  crc32 (IEEE) of every byte before it
/// ```
///
/// Written to `NNNN.ckpt.tmp`, fsynced, renamed, directory fsynced. Decoding checks
/// the CRC first, then `1 <= current_revision` and `0 <= compact_revision <=
/// current_revision`, every count against the bytes left, then the key-index
/// invariants (ascending revisions, tombstone-terminated closed generations).
pub(crate) struct CheckpointCodec;

impl CheckpointCodec {
    pub(crate) const MAGIC: [u8; 8] = *b"CAIRNCKP";
    pub(crate) const VERSION: u32 = 1;

    /// Appends one key's entry of the key-index section (layout above); `loc` gives each
    /// revision's record location, and its error stops the encoding.
    pub(crate) fn encode_key_entry<E>(
        b: &mut Vec<u8>,
        key: &[u8],
        ki: &KeyIndex,
        mut loc: impl FnMut(&Rev) -> std::result::Result<Loc, E>,
    ) -> std::result::Result<(), E> {
        use crate::codec::PutLe;
        b.put_u32_le(key.len() as u32);
        b.extend_from_slice(key);
        b.put_i64_le(ki.modified.main);
        b.put_i64_le(ki.modified.sub);
        b.put_u32_le(ki.generations.len() as u32);
        for g in &ki.generations {
            b.put_i64_le(g.created.main);
            b.put_i64_le(g.created.sub);
            b.put_i64_le(g.ver);
            b.put_u32_le(g.revs.len() as u32);
            for r in &g.revs {
                let at = loc(r)?;
                b.put_i64_le(r.main);
                b.put_i64_le(r.sub);
                b.put_u64_le(at.seg);
                b.put_u64_le(at.offset);
                b.put_u32_le(at.bytes);
            }
        }
        Ok(())
    }

    /// The whole file for `img` at once; the server streams it instead
    /// (`background.rs`), and a test checks both give the same bytes.
    #[cfg(test)]
    pub(crate) fn encode(img: &Image) -> Vec<u8> {
        use crate::codec::PutLe;
        let mut b = Vec::with_capacity(64 + img.meta.len() + img.locs.len() * 48);
        b.extend_from_slice(&Self::MAGIC);
        b.put_u32_le(Self::VERSION);
        b.put_u32_le(0);
        b.put_u64_le(0); // body_len, patched below
        b.put_u64_le(img.applied_index);
        b.put_i64_le(img.current_revision);
        b.put_i64_le(img.compact_revision);
        b.put_u32_le(img.meta.len() as u32);
        b.extend_from_slice(&img.meta);
        b.put_u32_le(img.segments.len() as u32);
        for s in &img.segments {
            b.put_u64_le(s.seq);
            b.put_u64_le(s.tail);
        }
        b.put_u64_le(img.keys.len() as u64);
        for (key, ki) in &img.keys {
            Self::encode_key_entry(&mut b, key, ki, |r| {
                Ok::<_, std::convert::Infallible>(img.locs[r])
            })
            .unwrap_or_else(|never| match never {});
        }
        let body_len = (b.len() - 24) as u64;
        b[16..24].copy_from_slice(&body_len.to_le_bytes());
        let crc = crc32fast::hash(&b);
        b.put_u32_le(crc);
        b
    }

    /// Decodes and validates; `Err((offset, reason))` names the first bad byte range.
    pub(crate) fn decode(data: &[u8]) -> std::result::Result<Decoded, (u64, String)> {
        if data.len() < 28 {
            return Err((0, "checkpoint shorter than its header".into()));
        }
        if data[0..8] != Self::MAGIC {
            return Err((0, "bad magic".into()));
        }
        let mut r = Reader::new(data);
        r.bytes(8);
        let version = r.u32().unwrap_or(0);
        if version != Self::VERSION {
            return Err((8, format!("unsupported version {version}")));
        }
        r.u32();
        let body_len = r.u64().unwrap_or(u64::MAX);
        if body_len != (data.len() - 28) as u64 {
            return Err((
                16,
                format!("body length {body_len} does not match the file"),
            ));
        }
        let crc_at = data.len() - 4;
        let crc = u32::from_le_bytes(data[crc_at..].try_into().unwrap_or([0; 4]));
        if crc != crc32fast::hash(&data[..crc_at]) {
            return Err((crc_at as u64, "crc mismatch".into()));
        }
        let body = &data[24..crc_at];
        let mut r = Reader::new(body);
        Self::decode_body(&mut r).map_err(|reason| (24 + r.position() as u64, reason))
    }

    fn decode_body(r: &mut Reader<'_>) -> std::result::Result<Decoded, String> {
        let short = || "truncated body".to_string();
        let mut img = Decoded {
            applied_index: r.u64().ok_or_else(short)?,
            current_revision: r.i64().ok_or_else(short)?,
            compact_revision: r.i64().ok_or_else(short)?,
            ..Decoded::default()
        };
        // An empty store is at revision 1 and compacts only below its current revision;
        // a checkpoint saying otherwise would make every read fail as compacted (found by
        // `cairn-fuzz store`).
        if img.current_revision < 1 {
            return Err(format!("current revision {} below 1", img.current_revision));
        }
        if !(0..=img.current_revision).contains(&img.compact_revision) {
            return Err(format!(
                "compact revision {} outside [0, current revision {}]",
                img.compact_revision, img.current_revision
            ));
        }
        let meta_len = r.u32().ok_or_else(short)? as usize;
        img.meta = Bytes::copy_from_slice(r.bytes(meta_len).ok_or_else(short)?);
        let seg_count = r.u32().ok_or_else(short)?;
        for _ in 0..seg_count {
            img.segments.push(SegmentTail {
                seq: r.u64().ok_or_else(short)?,
                tail: r.u64().ok_or_else(short)?,
            });
        }
        let key_count = r.u64().ok_or_else(short)?;
        // Every key takes at least 28 bytes: a count beyond that is a lie, not a
        // reason to reserve memory.
        let keys_max = r.total().saturating_sub(r.position()) / 28;
        let keys_expected = usize::try_from(key_count).unwrap_or(0).min(keys_max);
        let mut keys = Vec::with_capacity(keys_expected);
        // Every key has a revision; most have just one once compacted.
        img.revs.reserve(keys_expected);
        let mut chunks = KeyChunks::new();
        for _ in 0..key_count {
            let key_len = r.u32().ok_or_else(short)? as usize;
            let key = chunks.copy(r.bytes(key_len).ok_or_else(short)?);
            let ki = Self::decode_key_index(r, &key, &mut img.revs)?;
            Self::check_key_index(&ki, img.current_revision)
                .map_err(|e| format!("key {key:?}: {e}"))?;
            keys.push((key, ki));
        }
        if r.position() != r.total() {
            return Err("trailing bytes after the key index".into());
        }
        // Written in key order: the sort finds one run and the map is built in bulk.
        img.keys = BTreeMap::from_iter(keys);
        if img.keys.len() as u64 != key_count {
            return Err("key stored twice".into());
        }
        sort_revisions(&mut img.revs);
        if let Some(w) = img.revs.windows(2).find(|w| w[0].0 == w[1].0) {
            return Err(format!("revision {:?} stored twice", w[0].0));
        }
        Ok(img)
    }

    /// Decodes one key's generations, appending each revision to `revs`.
    fn decode_key_index(
        r: &mut Reader<'_>,
        key: &Bytes,
        revs: &mut Vec<(Rev, Bytes, Loc)>,
    ) -> std::result::Result<KeyIndex, String> {
        let short = || "truncated body".to_string();
        let modified = Rev::new(r.i64().ok_or_else(short)?, r.i64().ok_or_else(short)?);
        let gen_count = r.u32().ok_or_else(short)? as usize;
        // A generation takes at least 28 bytes, a revision 36.
        let left = r.total().saturating_sub(r.position());
        let mut generations = Vec::with_capacity(gen_count.min(left / 28));
        for _ in 0..gen_count {
            let created = Rev::new(r.i64().ok_or_else(short)?, r.i64().ok_or_else(short)?);
            let ver = r.i64().ok_or_else(short)?;
            let rev_count = r.u32().ok_or_else(short)? as usize;
            let left = r.total().saturating_sub(r.position());
            let mut g = Generation {
                ver,
                created,
                revs: Vec::with_capacity(rev_count.min(left / 36)),
            };
            for _ in 0..rev_count {
                let rev = Rev::new(r.i64().ok_or_else(short)?, r.i64().ok_or_else(short)?);
                let loc = Loc {
                    seg: r.u64().ok_or_else(short)?,
                    offset: r.u64().ok_or_else(short)?,
                    bytes: r.u32().ok_or_else(short)?,
                };
                g.revs.push(rev);
                revs.push((rev, key.clone(), loc));
            }
            generations.push(g);
        }
        Ok(KeyIndex {
            modified,
            generations,
        })
    }

    /// Checks the invariants `KeyIndex` relies on (so that later asserts cannot fire).
    fn check_key_index(ki: &KeyIndex, current_revision: i64) -> std::result::Result<(), String> {
        let Some((_, closed)) = ki.generations.split_last() else {
            return Err("no generation".into());
        };
        if closed.iter().any(|g| g.revs.is_empty()) {
            return Err("empty closed generation".into());
        }
        if ki.generations.iter().all(|g| g.revs.is_empty()) {
            return Err("no revision".into());
        }
        let mut prev = Rev::default();
        for g in &ki.generations {
            for r in &g.revs {
                if *r <= prev || r.main > current_revision {
                    return Err(format!("revision {r:?} out of order"));
                }
                prev = *r;
            }
            if g.ver < g.revs.len() as i64 {
                return Err("version below the number of revisions".into());
            }
        }
        if ki.modified != prev {
            return Err("modified is not the last revision".into());
        }
        Ok(())
    }
}

/// Sorts decoded revisions ascending. They come in key order, and a store's retained
/// revisions are usually dense in `[lowest, highest]` main revision: then they are placed
/// by a counting sort on `main` (O(n), a comparison sort took 40 % of decoding at
/// 1,000,000 keys), and only the few revisions sharing a `main` (the writes of one txn)
/// are compared. Sparse revisions (a long history compacted) get a comparison sort.
fn sort_revisions(revs: &mut [(Rev, Bytes, Loc)]) {
    let mains = || revs.iter().map(|(rev, _, _)| rev.main);
    let (Some(lo), Some(hi)) = (mains().min(), mains().max()) else {
        return;
    };
    // Decoding checked every revision against the current revision and 0 (keys start
    // above `Rev::default()`), so the span cannot overflow.
    let span = usize::try_from(hi - lo).ok().and_then(|s| s.checked_add(1));
    let dense_max = revs.len().saturating_mul(2).saturating_add(1024);
    // Positions are u32: half the memory of usize for the three arrays below.
    let fits = dense_max < u32::MAX as usize;
    let Some(span) = span.filter(|span| fits && *span <= dense_max) else {
        revs.sort_unstable_by_key(|(rev, _, _)| *rev);
        return;
    };
    // starts[b] = position of the first revision whose main is lo + b.
    let mut starts = vec![0u32; span + 1];
    for (rev, _, _) in revs.iter() {
        starts[(rev.main - lo) as usize + 1] += 1;
    }
    for b in 1..=span {
        starts[b] += starts[b - 1];
    }
    let mut next = starts.clone();
    let mut order = vec![0u32; revs.len()];
    for (i, (rev, _, _)) in revs.iter().enumerate() {
        let b = (rev.main - lo) as usize;
        order[next[b] as usize] = i as u32;
        next[b] += 1;
    }
    drop(next);
    apply_permutation(revs, &mut order);
    for w in starts.windows(2) {
        let bucket = &mut revs[w[0] as usize..w[1] as usize];
        if bucket.len() > 1 {
            bucket.sort_unstable_by_key(|(rev, _, _)| *rev);
        }
    }
}

/// Reorders `items` in place so that position `p` holds what was at `order[p]`, by
/// following each cycle of the permutation (no second copy of `items`: at 8,000,000
/// revisions that copy was 0.5 GB of freshly faulted memory). `order` is used up.
fn apply_permutation<T>(items: &mut [T], order: &mut [u32]) {
    const DONE: u32 = u32::MAX;
    assert_eq!(items.len(), order.len());
    assert!(items.len() < DONE as usize);
    for start in 0..order.len() {
        let mut at = start;
        while order[at] != DONE {
            let from = order[at] as usize;
            order[at] = DONE;
            if from == start {
                break;
            }
            items.swap(at, from);
            at = from;
        }
    }
}

/// Reads a checkpoint file and decodes it.
///
/// The file is mapped read-only (populated in one call) rather than copied: at
/// 8,000,000 keys it is 0.8 GB, and a copy is as much freshly faulted memory again.
pub(crate) fn load(path: &Path) -> crate::Result<Decoded> {
    let file = std::fs::File::open(path).map_err(|e| crate::Error::io(path, e))?;
    let len = file
        .metadata()
        .map_err(|e| crate::Error::io(path, e))?
        .len();
    let decoded = if len == 0 {
        CheckpointCodec::decode(&[])
    } else {
        // SAFETY: the mapping is read-only and dropped before `load` returns. A checkpoint
        // is never written after its rename into place, and the server holds the data
        // dir's lock, so nothing in Cairn changes or truncates it meanwhile; another
        // program truncating it would make this read fault (SIGBUS), as a media error
        // under any mapped page would.
        let map = unsafe { memmap2::MmapOptions::new().populate().map(&file) }
            .map_err(|e| crate::Error::io(path, e))?;
        CheckpointCodec::decode(&map)
    };
    decoded.map_err(|(offset, reason)| crate::Error::corruption(path, offset, reason))
}

/// A decoded checkpoint, its segments opened with their tails, and its file size.
pub(crate) type LoadedCheckpoint = (Decoded, Vec<(ValueSegment, u64)>, u64);

/// Loads a checkpoint and opens every segment it references (checking tails).
pub(crate) fn load_checkpoint(path: &Path, values_dir: &Path) -> Result<LoadedCheckpoint> {
    let img = load(path)?;
    let ckpt_bytes = std::fs::metadata(path)
        .map_err(|e| Error::io(path, e))?
        .len();
    let mut segs = Vec::new();
    for st in &img.segments {
        let p = fsutil::seq_path(values_dir, st.seq, VALUE_EXT);
        let seg = ValueSegment::open(&p, st.seq)?;
        if st.tail < ValueCodec::HEADER_BYTES || st.tail > seg.capacity || st.tail % 8 != 0 {
            return Err(Error::corruption(
                path,
                0,
                format!("bad tail {} for segment {}", st.tail, st.seq),
            ));
        }
        segs.push((seg, st.tail));
    }
    // A location is valid inside the largest tail recorded for its segment.
    let mut tails: BTreeMap<u64, u64> = BTreeMap::new();
    for st in &img.segments {
        let tail = tails.entry(st.seq).or_default();
        *tail = (*tail).max(st.tail);
    }
    for (rev, _, loc) in &img.revs {
        let ok = tails.get(&loc.seg).is_some_and(|tail| {
            loc.offset >= ValueCodec::HEADER_BYTES
                && loc.offset.saturating_add(u64::from(loc.bytes)) <= *tail
        });
        if !ok {
            return Err(Error::corruption(
                path,
                0,
                format!(
                    "revision {}.{} points outside the recorded segments",
                    rev.main, rev.sub
                ),
            ));
        }
    }
    Ok((img, segs, ckpt_bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image() -> Image {
        let mut keys = BTreeMap::new();
        let mut ki = KeyIndex::default();
        ki.put(Rev::new(2, 0));
        assert!(ki.tombstone(Rev::new(3, 0)));
        ki.put(Rev::new(4, 1));
        keys.insert(Bytes::from_static(b"a"), ki);
        let mut locs = BTreeMap::new();
        locs.insert(
            Rev::new(2, 0),
            Loc {
                seg: 1,
                offset: 32,
                bytes: 64,
            },
        );
        locs.insert(
            Rev::new(3, 0),
            Loc {
                seg: 1,
                offset: 96,
                bytes: 56,
            },
        );
        locs.insert(
            Rev::new(4, 1),
            Loc {
                seg: 2,
                offset: 32,
                bytes: 64,
            },
        );
        Image {
            applied_index: 9,
            current_revision: 4,
            compact_revision: 1,
            meta: Bytes::from_static(b"meta"),
            segments: vec![
                SegmentTail { seq: 1, tail: 152 },
                SegmentTail { seq: 2, tail: 96 },
            ],
            keys,
            locs,
        }
    }

    /// What decoding `img`'s encoding must give.
    fn decoded(img: &Image) -> Decoded {
        let mut revs: Vec<(Rev, Bytes, Loc)> = img
            .keys
            .iter()
            .flat_map(|(key, ki)| ki.all_revs().map(|r| (r, key.clone(), img.locs[&r])))
            .collect();
        revs.sort_by_key(|(r, _, _)| *r);
        Decoded {
            applied_index: img.applied_index,
            current_revision: img.current_revision,
            compact_revision: img.compact_revision,
            meta: img.meta.clone(),
            segments: img.segments.clone(),
            keys: img.keys.clone(),
            revs,
        }
    }

    #[test]
    fn roundtrip() {
        let img = image();
        let enc = CheckpointCodec::encode(&img);
        assert_eq!(CheckpointCodec::decode(&enc).unwrap(), decoded(&img));
    }

    /// Many keys, several revisions and generations each, keys longer than a chunk: the
    /// bulk-built maps equal the image, revisions come out ascending.
    #[test]
    fn roundtrip_many_keys() {
        let mut img = Image {
            current_revision: 1,
            segments: vec![SegmentTail {
                seq: 1,
                tail: 1 << 30,
            }],
            ..Image::default()
        };
        let mut offset = 32;
        for main in 2..3000i64 {
            let n = (main * 7919) % 1000;
            let key = if n % 97 == 0 {
                Bytes::from(vec![b'k'; KEY_CHUNK_BYTES + n as usize])
            } else {
                Bytes::from(format!("key{n:05}"))
            };
            let ki = img.keys.entry(key).or_default();
            let rev = Rev::new(main, 0);
            let deleted = main % 5 == 0 && ki.tombstone(rev);
            if !deleted {
                ki.put(rev);
            }
            let loc = Loc {
                seg: 1,
                offset,
                bytes: 64,
            };
            offset += 64;
            img.locs.insert(Rev::new(main, 0), loc);
            img.current_revision = main;
        }
        // Drop the locations of revisions no key holds (failed tombstones).
        let held: std::collections::BTreeSet<Rev> =
            img.keys.values().flat_map(|ki| ki.all_revs()).collect();
        img.locs.retain(|r, _| held.contains(r));
        let dec = CheckpointCodec::decode(&CheckpointCodec::encode(&img)).unwrap();
        assert!(dec.revs.windows(2).all(|w| w[0].0 < w[1].0));
        assert_eq!(dec, decoded(&img));
    }

    /// Dense and sparse revisions, several per main revision, come out ascending.
    #[test]
    fn revisions_sort_dense_and_sparse() {
        let loc = Loc {
            seg: 1,
            offset: 32,
            bytes: 64,
        };
        for stride in [1i64, 3, 1_000_000] {
            let mut revs: Vec<(Rev, Bytes, Loc)> = (0..5000i64)
                .map(|i| {
                    let main = 7 + ((i * 7919) % 2500) * stride;
                    (Rev::new(main, (i * 31) % 2), Bytes::new(), loc)
                })
                .collect();
            let mut want: Vec<Rev> = revs.iter().map(|r| r.0).collect();
            want.sort_unstable();
            sort_revisions(&mut revs);
            assert_eq!(revs.iter().map(|r| r.0).collect::<Vec<_>>(), want);
        }
        let mut empty = Vec::new();
        sort_revisions(&mut empty);
        assert!(empty.is_empty());
    }

    #[test]
    fn permutation_is_applied_in_place() {
        let mut order: Vec<u32> = vec![3, 0, 4, 1, 2, 5];
        let want: Vec<u32> = order.iter().map(|i| i * 10).collect();
        let mut items: Vec<u32> = (0..6).map(|i| i * 10).collect();
        apply_permutation(&mut items, &mut order);
        assert_eq!(items, want);
    }

    /// A key or a revision written twice is refused even behind a valid CRC.
    #[test]
    fn duplicates_are_refused() {
        let img = image();
        let mut enc = CheckpointCodec::encode(&img);
        // The key count is followed by the only key: say there are two, append it again.
        let key_count_at = 24 + 24 + 4 + img.meta.len() + 4 + 16 * img.segments.len();
        let key_at = key_count_at + 8;
        assert_eq!(enc[key_count_at], 1);
        let key = enc[key_at..enc.len() - 4].to_vec();
        enc.truncate(enc.len() - 4);
        enc.extend_from_slice(&key);
        enc[key_count_at] = 2;
        let body_len = (enc.len() - 24) as u64;
        enc[16..24].copy_from_slice(&body_len.to_le_bytes());
        let crc = crc32fast::hash(&enc);
        enc.extend_from_slice(&crc.to_le_bytes());
        let (_, reason) = CheckpointCodec::decode(&enc).expect_err("duplicate key");
        assert_eq!(reason, "key stored twice");

        let mut img = image();
        let mut ki = KeyIndex::default();
        ki.put(Rev::new(2, 0));
        img.keys.insert(Bytes::from_static(b"b"), ki);
        let (_, reason) = CheckpointCodec::decode(&CheckpointCodec::encode(&img))
            .expect_err("duplicate revision");
        assert!(reason.contains("stored twice"), "{reason}");
    }

    /// Revisions no store can have are refused even behind a valid CRC.
    #[test]
    fn impossible_revisions_are_refused() {
        for (current, compact) in [(4, 5), (4, -1), (0, 0), (-3, -4)] {
            let img = Image {
                current_revision: current,
                compact_revision: compact,
                ..image()
            };
            let (offset, reason) = CheckpointCodec::decode(&CheckpointCodec::encode(&img))
                .expect_err("impossible revisions");
            assert_eq!(offset, 24 + 24, "{reason}");
            assert!(reason.contains("revision"), "{reason}");
        }
    }

    #[test]
    fn every_flipped_byte_is_detected() {
        let enc = CheckpointCodec::encode(&image());
        for i in 0..enc.len() {
            let mut bad = enc.clone();
            bad[i] ^= 0x10;
            assert!(
                CheckpointCodec::decode(&bad).is_err(),
                "flip at {i} not detected"
            );
        }
        for n in 0..enc.len() {
            assert!(
                CheckpointCodec::decode(&enc[..n]).is_err(),
                "cut at {n} not detected"
            );
        }
    }
}
