//! MVCC store recovery (`engine::Mvcc::open`) on corrupted checkpoints and value
//! segments: the checkpoint codec, the value record codec, segment headers, missing,
//! truncated and extra files.
//!
//! Input: a [`crate::Bundle`] of a store directory (4 KiB value segments, two
//! checkpoints, values written after the last one) built from one known history.
//! Properties: `open` returns an error or a store whose every readable key-value pair
//! (current, at every retained revision, and in the event history) was written by the
//! history, and whose checkpoint meta is one the history wrote; after a successful open,
//! a put that is checkpointed is there when the directory is opened again.

use std::collections::HashSet;

use engine::{Mvcc, MvccOptions, RangeOptions};

use crate::{Bundle, Target, Verdict};

/// Value segment size of the target: the smallest allowed, so values span segments.
const SEGMENT_BYTES: u64 = 4096;
/// Puts in the history.
pub(crate) const HISTORY_PUTS: usize = 50;
/// Historical revisions read after an open (bounded work).
const REVISIONS_READ_MAX: i64 = 64;
/// Checkpoint metas the history writes.
const METAS: [&[u8]; 3] = [b"", b"meta-1", b"meta-2"];

pub(crate) struct StoreFiles {
    /// Every (key, value) the history put.
    written: HashSet<(Vec<u8>, Vec<u8>)>,
}

pub(crate) fn options() -> MvccOptions {
    MvccOptions {
        segment_bytes: SEGMENT_BYTES,
        gc_live_percent: 50,
    }
}

pub(crate) fn key(i: usize) -> Vec<u8> {
    format!("k{}", i % 8).into_bytes()
}

pub(crate) fn value(i: usize) -> Vec<u8> {
    let len = if i == 13 { 5000 } else { (i * 53) % 900 };
    let mut v = format!("value-{i}-").into_bytes();
    v.resize(v.len() + len, b'a' + (i % 26) as u8);
    v
}

/// Runs the history in `dir` up to stage 1 (first checkpoint) or 2 (everything).
pub(crate) fn build(dir: &std::path::Path, stage: u8) -> engine::Result<()> {
    let mut m = Mvcc::open(dir, options())?;
    let put = |m: &mut Mvcc, i: usize| {
        let mut t = m.write();
        t.put(&key(i), &value(i), 0);
        t.end();
    };
    for i in 0..30 {
        put(&mut m, i);
        if i == 15 {
            let mut t = m.write();
            t.delete_range(b"k3", b"");
            t.end();
        }
    }
    m.compact(10)?;
    m.checkpoint(10, METAS[1])?;
    if stage >= 2 {
        for i in 30..45 {
            put(&mut m, i);
        }
        m.checkpoint(20, METAS[2])?;
        for i in 45..HISTORY_PUTS {
            put(&mut m, i);
        }
    }
    Ok(())
}

impl StoreFiles {
    pub(crate) fn new() -> StoreFiles {
        StoreFiles {
            written: (0..HISTORY_PUTS).map(|i| (key(i), value(i))).collect(),
        }
    }

    fn check_kvs<'a>(&self, kvs: impl Iterator<Item = &'a engine::KeyValue>) -> Result<(), String> {
        for kv in kvs {
            if kv.key.as_ref() == b"fuzz" {
                continue;
            }
            if !self.written.contains(&(kv.key.to_vec(), kv.value.to_vec())) {
                return Err(format!(
                    "read a value never written for key {:?} ({} bytes)",
                    String::from_utf8_lossy(&kv.key),
                    kv.value.len()
                ));
            }
        }
        Ok(())
    }

    /// Reads everything the opened store serves and checks it against the history.
    fn check_reads(&self, m: &Mvcc) -> Result<(), String> {
        let reader = m.reader();
        let all = |revision| RangeOptions {
            revision,
            ..Default::default()
        };
        // Reading the current revision may find a damaged value record (a corruption
        // error), never a revision the store cannot serve.
        match reader.range(&[0], &[0], &all(0)) {
            Ok(r) => self.check_kvs(r.kvs.iter())?,
            Err(engine::Error::Corruption { .. }) => {}
            Err(e) => return Err(format!("reading the current revision failed: {e}")),
        }
        let current = reader.current_revision();
        let from = reader.compact_revision().max(current - REVISIONS_READ_MAX);
        for revision in from.max(1)..=current {
            if let Ok(r) = reader.range(&[0], &[0], &all(revision)) {
                self.check_kvs(r.kvs.iter())?;
            }
        }
        if let Ok(events) = reader.events(&[0], &[0], from, current, true, 0) {
            // A delete event's kv is the tombstone (key, empty value): only its key and its
            // prev_kv come from the history.
            let puts = events
                .iter()
                .filter(|e| e.event_type == engine::EventType::Put)
                .map(|e| &e.kv);
            self.check_kvs(puts.chain(events.iter().filter_map(|e| e.prev_kv.as_ref())))?;
        }
        let _ = reader.hash_kv(0);
        Ok(())
    }
}

impl Target for StoreFiles {
    fn name(&self) -> &'static str {
        "store"
    }

    fn seeds(&mut self) -> Vec<Vec<u8>> {
        [1u8, 2]
            .iter()
            .map(|&stage| {
                let dir = super::scratch_dir().expect("a scratch directory");
                build(dir.path(), stage).expect("the store history");
                Bundle::read_dir(dir.path())
                    .expect("the store files")
                    .encode()
            })
            .collect()
    }

    fn mutate(&mut self, input: &mut Vec<u8>, corpus: &[Vec<u8>], mutator: &mut crate::Mutator) {
        super::mutate_bundle(input, corpus, mutator);
    }

    fn execute(&mut self, input: &[u8]) -> Result<Verdict, String> {
        let Some(mut bundle) = Bundle::decode(input) else {
            return Ok(Verdict::Rejected);
        };
        let resealed = super::take_marker(&mut bundle);
        let dir = super::scratch_dir().map_err(|e| format!("scratch dir: {e}"))?;
        bundle
            .write_dir(dir.path())
            .map_err(|e| format!("writing the bundle: {e}"))?;
        let Ok(mut m) = Mvcc::open(dir.path(), options()) else {
            return Ok(Verdict::Rejected);
        };
        let (applied, meta) = m.checkpoint_state();
        if !resealed && !METAS.contains(&meta.as_ref()) {
            return Err(format!(
                "recovered a checkpoint meta never written ({} bytes)",
                meta.len()
            ));
        }
        let reads = self.check_reads(&m);
        if !resealed
            || reads
                .as_ref()
                .is_err_and(|e| e.starts_with("reading the current"))
        {
            reads?;
        }
        let mut t = m.write();
        t.put(b"fuzz", b"after recovery", 0);
        t.end();
        if m.checkpoint(applied + 1, b"meta-3").is_err() {
            return Ok(Verdict::Rejected);
        }
        drop(m);
        let m = Mvcc::open(dir.path(), options())
            .map_err(|e| format!("reopen after a checkpoint failed: {e}"))?;
        let r = m
            .reader()
            .range(b"fuzz", b"", &RangeOptions::default())
            .map_err(|e| format!("reading the put after reopen failed: {e}"))?;
        if r.kvs.len() != 1 || r.kvs[0].value.as_ref() != b"after recovery" {
            return Err("a checkpointed put is missing after reopen".into());
        }
        Ok(Verdict::Accepted)
    }
}
