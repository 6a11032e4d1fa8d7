//! The snapshot archive a leader streams to a lagging follower
//! (`engine::SnapshotReceiver`: archive framing, names, sizes, CRC, the checkpoint inside)
//! and its installation (`Mvcc::install`, which opens the received store).
//!
//! Input: `flags-and-split u8 | archive bytes`, pushed in chunks of a size drawn from the
//! low 7 bits. Half of the mutated archives get their trailing CRC recomputed so that
//! mutations reach the files inside; half of those also get the checksums of the files
//! inside recomputed (`super::reseal`), marked by the high bit. Properties: the receiver
//! refuses a bad archive with an error; an archive it finishes installs (the received
//! store opens) and, unless the files inside were resealed, every key it serves was
//! written by the history the archive came from. A resealed input's children stay resealed,
//! and splices never take bytes from a resealed input: either would let records with
//! checksums made by the harness into an input whose values are checked (the first
//! finding of this target was exactly that, not an engine fault).

use std::collections::HashSet;

use engine::{Mvcc, MvccOptions, RangeOptions, SnapshotReceiver};
use rand::Rng;

use crate::{Target, Verdict};

pub(crate) struct Snapshot {
    /// Every (key, value) the history put.
    written: HashSet<(Vec<u8>, Vec<u8>)>,
}

impl Snapshot {
    pub(crate) fn new() -> Snapshot {
        Snapshot {
            written: (0..super::store::HISTORY_PUTS)
                .map(|i| (super::store::key(i), super::store::value(i)))
                .collect(),
        }
    }
}

/// Most bytes the files of one archive may ask to preallocate before the target feeds it
/// to the receiver: 64 MiB. The receiver preallocates what the archive declares (up to
/// the engine's 1 TiB per file) before the archive's CRC is checked; unbounded, a fuzz run
/// fills the disk. Archives declaring more are counted as rejected without being fed.
const ARCHIVE_ALLOCATE_BYTES_MAX: u64 = 64 << 20;

/// The file entries of an archive, as far as its framing parses:
/// `(name, allocate, data range)` after the 9-byte head.
fn entries(archive: &[u8]) -> Vec<(Vec<u8>, u64, std::ops::Range<usize>)> {
    let mut out = Vec::new();
    let mut at = 9;
    while at + 2 <= archive.len() {
        let name_len = u16::from_le_bytes([archive[at], archive[at + 1]]) as usize;
        let data_at = at + 2 + name_len + 16;
        if name_len == 0 || data_at > archive.len() {
            break;
        }
        let name = archive[at + 2..at + 2 + name_len].to_vec();
        let field =
            |from: usize| u64::from_le_bytes(archive[from..from + 8].try_into().expect("8"));
        let (allocate, size) = (field(data_at - 16), field(data_at - 8));
        let end = usize::try_from(size)
            .ok()
            .and_then(|s| data_at.checked_add(s))
            .unwrap_or(usize::MAX);
        out.push((name, allocate, data_at..end.min(archive.len())));
        if end > archive.len() {
            break;
        }
        at = end;
    }
    out
}

/// High bit of the first input byte: the files inside the archive were resealed.
const RESEALED_INSIDE: u8 = 0x80;

/// Corpus inputs drawn per mutation as splice donors (those not resealed inside are used).
const DONORS_MAX: usize = 4;

/// Recomputes the archive's trailing CRC.
fn reseal(archive: &mut [u8]) {
    let len = archive.len();
    if len >= 4 {
        let crc = crc32fast::hash(&archive[..len - 4]);
        archive[len - 4..].copy_from_slice(&crc.to_le_bytes());
    }
}

/// Recomputes the checksums of the files inside the archive (as far as it parses).
fn reseal_inside(archive: &mut [u8]) {
    for (name, _, range) in entries(archive) {
        let data = &mut archive[range];
        if name.ends_with(b".ckpt") {
            super::reseal::reseal_checkpoint(data);
        } else if name.ends_with(b".val") {
            super::reseal::reseal_header(data);
            super::reseal::reseal_records(data);
        }
    }
}

impl Target for Snapshot {
    fn name(&self) -> &'static str {
        "snapshot"
    }

    fn seeds(&mut self) -> Vec<Vec<u8>> {
        [1u8, 2]
            .iter()
            .map(|&stage| {
                let dir = super::scratch_dir().expect("a scratch directory");
                super::store::build(dir.path(), stage).expect("the store history");
                let m = Mvcc::open(dir.path(), super::store::options()).expect("the store");
                let mut source = m.snapshot_source().expect("a snapshot source");
                let mut input = vec![stage * 31];
                while let Some(chunk) = source.next_chunk().expect("a chunk") {
                    input.extend_from_slice(&chunk);
                }
                input
            })
            .collect()
    }

    fn mutate(&mut self, input: &mut Vec<u8>, corpus: &[Vec<u8>], mutator: &mut crate::Mutator) {
        let flags = input.first().copied().unwrap_or(0);
        let mut archive = input.split_off(input.len().min(1));
        // The flags byte is not mutated as data: a resealed child must stay marked (its
        // records' checksums were made by the harness, so its values are not checked), and
        // splices take bytes only from archives whose files inside were never resealed.
        let donors: Vec<Vec<u8>> = (0..DONORS_MAX)
            .filter_map(|_| corpus.get(mutator.rng().gen_range(0..corpus.len().max(1))))
            .filter(|c| c.first().is_some_and(|f| f & RESEALED_INSIDE == 0))
            .map(|c| c[1..].to_vec())
            .collect();
        mutator.mutate(&mut archive, &donors);
        let mut resealed_inside = flags & RESEALED_INSIDE != 0;
        let mut split = flags & !RESEALED_INSIDE;
        if mutator.rng().gen_range(0..8) == 0 {
            split = mutator.rng().gen::<u8>() & !RESEALED_INSIDE;
        }
        if resealed_inside || mutator.rng().gen::<bool>() {
            if resealed_inside || mutator.rng().gen::<bool>() {
                resealed_inside = true;
                reseal_inside(&mut archive);
            }
            reseal(&mut archive);
        }
        input.clear();
        input.push(split | if resealed_inside { RESEALED_INSIDE } else { 0 });
        input.extend_from_slice(&archive);
    }

    fn execute(&mut self, input: &[u8]) -> Result<Verdict, String> {
        let [split, archive @ ..] = input else {
            return Ok(Verdict::Rejected);
        };
        let declared: u64 = entries(archive)
            .iter()
            .fold(0u64, |sum, e| sum.saturating_add(e.1));
        if declared > ARCHIVE_ALLOCATE_BYTES_MAX {
            return Ok(Verdict::Rejected);
        }
        let scratch = super::scratch_dir().map_err(|e| format!("scratch dir: {e}"))?;
        let received = scratch.path().join("received");
        let mut receiver =
            SnapshotReceiver::create(&received).map_err(|e| format!("receiver: {e}"))?;
        let resealed_inside = split & RESEALED_INSIDE != 0;
        let chunk = 1 + usize::from(split & !RESEALED_INSIDE) * 97;
        for part in archive.chunks(chunk) {
            if receiver.push(part).is_err() {
                return Ok(Verdict::Rejected);
            }
        }
        if receiver.finish().is_err() {
            return Ok(Verdict::Rejected);
        }
        let store = scratch.path().join("store");
        let options = MvccOptions::default();
        let mut m = Mvcc::open(&store, options).map_err(|e| format!("empty store: {e}"))?;
        m.install(&received)
            .map_err(|e| format!("a finished snapshot does not install: {e}"))?;
        let r = m.reader();
        let all = r.range(&[0], &[0], &RangeOptions::default());
        if let (Ok(all), false) = (all, resealed_inside) {
            for kv in &all.kvs {
                if !self.written.contains(&(kv.key.to_vec(), kv.value.to_vec())) {
                    return Err(format!(
                        "installed snapshot serves a value never written for {:?} at \
                         revision {} ({} bytes: {:?})",
                        String::from_utf8_lossy(&kv.key),
                        kv.mod_revision,
                        kv.value.len(),
                        String::from_utf8_lossy(&kv.value[..kv.value.len().min(24)])
                    ));
                }
            }
        }
        Ok(Verdict::Accepted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Target;

    /// The flags byte is the harness's, not data: a child of a resealed input stays
    /// resealed, and a child of an input never resealed inside takes no bytes from a
    /// resealed one (the corpus here holds only a resealed input with a marked value).
    #[test]
    fn resealing_is_never_lost_by_a_child() {
        let mut target = Snapshot::new();
        let seed = target.seeds().remove(0);
        let mut mutator = crate::Mutator::new(11);
        let mut resealed = seed.clone();
        resealed[0] |= RESEALED_INSIDE;
        let marked = b"harness-made";
        let at = resealed.len() / 2;
        resealed[at..at + marked.len()].copy_from_slice(marked);
        let corpus = vec![resealed.clone()];
        for _ in 0..2000 {
            let mut child = resealed.clone();
            target.mutate(&mut child, &corpus, &mut mutator);
            assert_ne!(
                child[0] & RESEALED_INSIDE,
                0,
                "a resealed child lost its mark"
            );
            let mut child = seed.clone();
            child[0] &= !RESEALED_INSIDE;
            target.mutate(&mut child, &corpus, &mut mutator);
            if child[0] & RESEALED_INSIDE == 0 {
                let spliced = child.windows(marked.len()).any(|w| w == marked);
                assert!(
                    !spliced,
                    "bytes of a resealed input reached a checked child"
                );
            }
        }
    }
}
