//! Reads that never block the writer, checkpoints written beside it, compaction in
//! steps (issue 8): the writer goes on while a range is held open mid-scan, a pinned
//! read keeps its history across a compaction, and a store that went through many
//! background checkpoints, compactions and GC cycles reopens to exactly the same keys,
//! history and HashKV.

use std::sync::mpsc;

use engine::{Event, KeyValue, Mvcc, MvccOptions, MvccReader, RangeOptions, SCAN_CHUNK_ENTRIES};
use rand::{Rng, SeedableRng};

fn small_segments() -> MvccOptions {
    MvccOptions {
        segment_bytes: 16 * 4096,
        gc_live_percent: 50,
    }
}

fn key(i: usize) -> Vec<u8> {
    format!("key{i:06}").into_bytes()
}

/// Every kv of the store at `revision`, read with one `range` call.
fn snapshot_at(r: &MvccReader, revision: i64) -> Vec<KeyValue> {
    let options = RangeOptions {
        revision,
        ..RangeOptions::default()
    };
    r.range(b"", b"\0", &options).unwrap().kvs
}

/// The writer commits while a range over more keys than one chunk is held open mid-scan,
/// and the rest of that scan still returns the state at the revision it started at.
#[test]
fn a_write_completes_while_a_long_range_is_held_open_mid_scan() {
    let dir = tempfile::tempdir().unwrap();
    let mut m = Mvcc::open(dir.path(), MvccOptions::default()).unwrap();
    let n = 3 * SCAN_CHUNK_ENTRIES + 17;
    for i in 0..n {
        let mut t = m.write();
        t.put(&key(i), format!("v{i}").as_bytes(), 0);
        t.end();
    }
    let reader = m.reader();
    let before = snapshot_at(&reader, 0);
    let view = reader.view(0).unwrap();
    let mut seen = Vec::new();
    let resume = view
        .read_chunk(b"", b"\0", None, false, |kv| seen.push(kv.to_owned_kv()))
        .unwrap()
        .expect("the range goes on past one chunk");
    assert_eq!(seen.len(), SCAN_CHUNK_ENTRIES);

    // The scan is open; the writer overwrites, deletes, adds and compacts. On this one
    // thread, a reader that held the index's lock would deadlock here.
    let writer = std::thread::spawn(move || {
        for i in 0..n {
            let mut t = m.write();
            t.put(&key(i), b"overwritten", 0);
            t.end();
        }
        let mut t = m.write();
        t.delete_range(&key(0), &key(n / 2));
        t.end();
        let rev = m.reader().current_revision();
        m.compact(rev).unwrap();
        m
    });
    let m = writer.join().unwrap();
    assert!(m.reader().current_revision() > view.revision());

    let mut after = Some(resume);
    while let Some(from) = after.take() {
        after = view
            .read_chunk(b"", b"\0", Some(&from), false, |kv| {
                seen.push(kv.to_owned_kv())
            })
            .unwrap();
    }
    assert_eq!(seen, before);
    // Once the view is gone, the compaction it held back completes.
    drop(view);
    let mut m = m;
    while m.maintain().unwrap() {}
    assert!(!m.has_pending_work());
}

/// A compaction's physical part waits for a read pinned below it and completes after.
#[test]
fn compaction_waits_for_pinned_history() {
    let dir = tempfile::tempdir().unwrap();
    let mut m = Mvcc::open(dir.path(), MvccOptions::default()).unwrap();
    for i in 0..50 {
        let mut t = m.write();
        t.put(b"k", format!("v{i}").as_bytes(), 0);
        t.end();
    }
    let reader = m.reader();
    let view = reader.view(10).unwrap();
    m.compact(40).unwrap();
    // New reads below the compact revision fail at once (the logical part) ...
    assert!(matches!(reader.view(20), Err(engine::Error::Compacted)));
    // ... while the pinned one still reads its revision.
    let mut got = Vec::new();
    view.read_chunk(b"k", b"", None, false, |kv| got.push(kv.to_owned_kv()))
        .unwrap();
    assert_eq!(got[0].value.as_ref(), b"v8");
    assert!(m.has_pending_work());
    let in_use = reader.size_in_use_bytes();
    drop(view);
    while m.maintain().unwrap() {}
    assert!(!m.has_pending_work());
    assert!(reader.size_in_use_bytes() < in_use);
}

/// Everything observable about the store at every retained revision.
#[derive(Debug, PartialEq)]
struct Observed {
    revision: i64,
    compact: i64,
    hash_kv: (u32, i64, i64),
    states: Vec<Vec<KeyValue>>,
    events: Vec<Event>,
}

fn observe(r: &MvccReader) -> Observed {
    let revision = r.current_revision();
    let compact = r.compact_revision();
    let first = compact.max(1);
    Observed {
        revision,
        compact,
        hash_kv: r.hash_kv(0).unwrap(),
        states: (first..=revision).map(|rev| snapshot_at(r, rev)).collect(),
        events: r.events(b"", b"\0", first, revision, true, 0).unwrap(),
    }
}

/// Random writes with checkpoints written on another thread while writes go on,
/// compactions done in steps between writes, and GC rewriting sparse segments; after
/// the last checkpoint the reopened store equals the one that wrote it.
#[test]
fn reopen_after_many_background_checkpoints_compactions_and_gc_cycles() {
    let dir = tempfile::tempdir().unwrap();
    let mut m = Mvcc::open(dir.path(), small_segments()).unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(8);
    let (done_tx, done_rx) = mpsc::channel();
    let mut applied = 0u64;
    let mut checkpoints = 0;
    for round in 0..40 {
        for _ in 0..150 {
            applied += 1;
            let mut t = m.write();
            let k = rng.gen_range(0..400);
            if rng.gen_bool(0.1) {
                t.delete_range(&key(k), &key(k + rng.gen_range(1..20)));
            } else {
                let len = rng.gen_range(0..600);
                t.put(
                    &key(k),
                    &vec![b'a' + (round % 26) as u8; len],
                    rng.gen_range(0..3),
                );
            }
            t.end();
            // One step of compaction or GC between writes, as the server's loop does.
            m.maintain().unwrap();
        }
        if !m.checkpoint_in_flight() {
            let job = m
                .begin_checkpoint(applied, format!("meta{round}").as_bytes())
                .unwrap();
            let tx = done_tx.clone();
            std::thread::spawn(move || tx.send(job.run()).unwrap());
        }
        if round % 3 == 0 {
            let current = m.reader().current_revision();
            m.schedule_compaction(current - rng.gen_range(0..200)).ok();
        }
        if let Ok(done) = done_rx.try_recv() {
            m.finish_checkpoint(done).unwrap();
            checkpoints += 1;
        }
    }
    if m.checkpoint_in_flight() {
        m.finish_checkpoint(done_rx.recv().unwrap()).unwrap();
        checkpoints += 1;
    }
    while m.maintain().unwrap() {}
    m.checkpoint(applied, b"last").unwrap();
    assert!(
        checkpoints > 5,
        "only {checkpoints} background checkpoints finished"
    );
    let want = observe(&m.reader());
    drop(m);
    // GC ran: the first value segments were rewritten and deleted.
    let first_segment = std::fs::read_dir(dir.path().join("values"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .min()
        .unwrap();
    assert!(first_segment > format!("{:016}.val", 3), "{first_segment}");
    let m = Mvcc::open(dir.path(), small_segments()).unwrap();
    assert_eq!(m.checkpoint_state().0, applied);
    assert_eq!(observe(&m.reader()), want);
}
