//! Checkpoint, reopen, fallback and value-segment garbage collection.

use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use engine::{Error, Mvcc, MvccOptions, RangeOptions};

fn small() -> MvccOptions {
    MvccOptions {
        segment_bytes: 4096,
        ..MvccOptions::default()
    }
}

fn put(m: &mut Mvcc, key: &str, value: &str) -> i64 {
    let mut t = m.write();
    t.put(key.as_bytes(), value.as_bytes(), 3);
    t.end().0
}

fn all(m: &Mvcc) -> Vec<(String, String, i64, i64, i64)> {
    m.reader()
        .range(b"", b"\0", &RangeOptions::default())
        .unwrap()
        .kvs
        .into_iter()
        .map(|k| {
            (
                String::from_utf8(k.key.to_vec()).unwrap(),
                String::from_utf8(k.value.to_vec()).unwrap(),
                k.create_revision,
                k.mod_revision,
                k.version,
            )
        })
        .collect()
}

fn files(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(ext))
        .collect();
    v.sort();
    v
}

#[test]
fn fresh_store_has_no_checkpoint() {
    let tmp = tempfile::tempdir().unwrap();
    let m = Mvcc::open(tmp.path(), small()).unwrap();
    assert_eq!(m.checkpoint_state(), (0, Bytes::new()));
    assert_eq!(m.reader().current_revision(), 1);
    // Only written bytes count: the 32-byte segment header, not the preallocated rest.
    assert_eq!(m.reader().size_bytes(), 32);
    assert_eq!(m.reader().size_in_use_bytes(), 0);
    // Writes without a checkpoint are discarded on reopen.
    let mut m = m;
    put(&mut m, "a", "1");
    drop(m);
    let m = Mvcc::open(tmp.path(), small()).unwrap();
    assert_eq!(m.reader().current_revision(), 1);
    assert_eq!(all(&m), vec![]);
}

#[test]
fn checkpoint_reopen_restores_state_and_drops_later_writes() {
    let tmp = tempfile::tempdir().unwrap();
    let mut m = Mvcc::open(tmp.path(), small()).unwrap();
    for i in 0..200 {
        put(&mut m, &format!("k{:03}", i % 50), &format!("value-{i}"));
    }
    let mut t = m.write();
    t.delete_range(b"k010", b"k020");
    t.end();
    m.compact(100).unwrap();
    let before = all(&m);
    let r = m.reader();
    let (hash, hkv, cur) = (r.hash(), r.hash_kv(0).unwrap(), r.current_revision());
    assert_eq!(cur, 202);
    m.checkpoint(77, b"server-meta").unwrap();
    assert_eq!(
        m.checkpoint_state(),
        (77, Bytes::from_static(b"server-meta"))
    );
    // Written after the checkpoint: must be gone after reopen.
    put(&mut m, "after", "x");
    put(&mut m, "k000", "overwritten");
    drop(m);

    let mut m = Mvcc::open(tmp.path(), small()).unwrap();
    assert_eq!(
        m.checkpoint_state(),
        (77, Bytes::from_static(b"server-meta"))
    );
    let r = m.reader();
    assert_eq!(r.current_revision(), cur);
    assert_eq!(r.compact_revision(), 100);
    assert_eq!(all(&m), before);
    assert_eq!(r.hash(), hash);
    assert_eq!(r.hash_kv(0).unwrap(), hkv);
    // History above the compact revision survived too.
    let hist = r.range(
        b"k001",
        b"",
        &RangeOptions {
            revision: 150,
            ..RangeOptions::default()
        },
    );
    assert_eq!(hist.unwrap().kvs[0].value, Bytes::from_static(b"value-101"));
    // Re-applying the dropped writes gives the same revisions as before.
    assert_eq!(put(&mut m, "after", "x"), 203);
    assert_eq!(put(&mut m, "k000", "overwritten"), 204);
    m.checkpoint(79, b"m2").unwrap();
    drop(m);
    let m = Mvcc::open(tmp.path(), small()).unwrap();
    assert_eq!(m.checkpoint_state(), (79, Bytes::from_static(b"m2")));
    assert_eq!(m.reader().current_revision(), 204);
    let k0 = m
        .reader()
        .range(b"k000", b"", &RangeOptions::default())
        .unwrap()
        .kvs;
    assert_eq!((k0[0].version, k0[0].create_revision), (5, 2));
}

#[test]
fn keeps_previous_checkpoint_and_deletes_older_ones() {
    let tmp = tempfile::tempdir().unwrap();
    let mut m = Mvcc::open(tmp.path(), small()).unwrap();
    for i in 1..=4 {
        put(&mut m, "a", &i.to_string());
        m.checkpoint(i, b"").unwrap();
    }
    let names: Vec<String> = files(tmp.path(), ".ckpt")
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["0000000000000003.ckpt", "0000000000000004.ckpt"]);
}

#[test]
fn corrupt_newest_checkpoint_falls_back_to_the_previous_one() {
    let tmp = tempfile::tempdir().unwrap();
    let mut m = Mvcc::open(tmp.path(), small()).unwrap();
    put(&mut m, "a", "1");
    put(&mut m, "b", "1");
    m.checkpoint(10, b"first").unwrap();
    let state_at_first = all(&m);
    let hash_at_first = m.reader().hash();
    put(&mut m, "a", "2");
    m.checkpoint(11, b"second").unwrap();
    drop(m);
    let newest = files(tmp.path(), ".ckpt").pop().unwrap();
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&newest)
        .unwrap();
    f.write_all_at(b"\xff", 40).unwrap();
    drop(f);
    let mut m = Mvcc::open(tmp.path(), small()).unwrap();
    assert_eq!(m.checkpoint_state(), (10, Bytes::from_static(b"first")));
    assert_eq!(all(&m), state_at_first);
    assert_eq!(m.reader().hash(), hash_at_first);
    assert!(newest.with_extension("ckpt.corrupt").exists());
    // A new checkpoint gets a fresh sequence number and reopens fine.
    put(&mut m, "a", "2");
    m.checkpoint(11, b"again").unwrap();
    drop(m);
    let m = Mvcc::open(tmp.path(), small()).unwrap();
    assert_eq!(m.checkpoint_state(), (11, Bytes::from_static(b"again")));
    assert_eq!(
        files(tmp.path(), ".ckpt")
            .last()
            .unwrap()
            .file_name()
            .unwrap(),
        "0000000000000003.ckpt"
    );
}

#[test]
fn only_checkpoint_corrupt_is_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let mut m = Mvcc::open(tmp.path(), small()).unwrap();
    put(&mut m, "a", "1");
    m.checkpoint(1, b"").unwrap();
    drop(m);
    let path = files(tmp.path(), ".ckpt").pop().unwrap();
    let len = std::fs::metadata(&path).unwrap().len();
    let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    f.set_len(len - 1).unwrap();
    drop(f);
    match Mvcc::open(tmp.path(), small()) {
        Err(Error::Corruption {
            file,
            offset,
            reason,
        }) => {
            assert_eq!(file, path);
            assert_eq!(offset, 16);
            assert_eq!(
                reason,
                format!("body length {} does not match the file", len - 28)
            );
        }
        Err(e) => panic!("expected corruption, got {e}"),
        Ok(_) => panic!("expected corruption, got Ok"),
    }
}

#[test]
fn corrupt_value_record_is_reported_by_reads() {
    let tmp = tempfile::tempdir().unwrap();
    let mut m = Mvcc::open(tmp.path(), small()).unwrap();
    put(&mut m, "a", "hello");
    m.checkpoint(1, b"").unwrap();
    drop(m);
    let seg = files(&tmp.path().join("values"), ".val").pop().unwrap();
    let f = std::fs::OpenOptions::new().write(true).open(&seg).unwrap();
    // First record at 32: flip a byte of its value ("hello" starts at 32 + 53 + 1).
    f.write_all_at(b"J", 32 + 54).unwrap();
    drop(f);
    let m = Mvcc::open(tmp.path(), small()).unwrap();
    match m.reader().range(b"a", b"", &RangeOptions::default()) {
        Err(Error::Corruption {
            file,
            offset,
            reason,
        }) => {
            assert_eq!((file, offset, reason.as_str()), (seg, 32, "crc mismatch"));
        }
        other => panic!("expected corruption, got {other:?}"),
    }
    // Counting needs no value bytes.
    let c = m.reader().range(
        b"a",
        b"",
        &RangeOptions {
            count_only: true,
            ..RangeOptions::default()
        },
    );
    assert_eq!(c.unwrap().count, 1);
}

#[test]
fn compaction_gc_frees_value_segments() {
    let tmp = tempfile::tempdir().unwrap();
    let values = tmp.path().join("values");
    let mut m = Mvcc::open(tmp.path(), small()).unwrap();
    let value = "v".repeat(99);
    // Every record is 160 bytes: 25 fit in a 4096-byte segment after its header.
    // Ten keys written once (segment 1), then 390 overwrites of ten hot keys.
    for i in 0..10 {
        put(&mut m, &format!("cold{i}"), &format!("{value}{i:03}"));
    }
    for i in 10..400 {
        put(
            &mut m,
            &format!("hot_{}", i % 10),
            &format!("{value}{i:03}"),
        );
    }
    let r = m.reader();
    let segs_before = files(&values, ".val").len();
    assert_eq!(segs_before, 16);
    assert_eq!(r.size_in_use_bytes(), 400 * 160);
    // 15 full segments plus the active one's header and 25 records.
    assert_eq!(r.size_bytes(), 15 * 4096 + 32 + 25 * 160);
    let expected = all(&m);
    let hash_before_ckpt = r.hash_kv(0).unwrap().0;
    m.checkpoint(1, b"").unwrap();
    m.compact(r.current_revision()).unwrap();
    // 20 live records, plus the checkpoint. Segments 1..=15 were rewritten: the ten
    // cold records of segment 1 moved to a new segment 17 (16 was full and active).
    let ckpt_bytes = std::fs::metadata(files(tmp.path(), ".ckpt").pop().unwrap())
        .unwrap()
        .len();
    assert_eq!(r.size_in_use_bytes(), 20 * 160 + ckpt_bytes);
    assert_eq!(all(&m), expected);
    // Rewritten segments stay on disk until two later checkpoints no longer need them.
    assert_eq!(files(&values, ".val").len(), segs_before + 1);
    m.checkpoint(2, b"").unwrap();
    assert_eq!(files(&values, ".val").len(), segs_before + 1);
    m.checkpoint(3, b"").unwrap();
    assert_eq!(files(&values, ".val").len(), 2);
    assert_eq!(
        r.size_bytes(),
        4096 + 32
            + 10 * 160
            + std::fs::metadata(files(tmp.path(), ".ckpt").pop().unwrap())
                .unwrap()
                .len()
    );
    let hash = r.hash();
    drop(m);
    let m = Mvcc::open(tmp.path(), small()).unwrap();
    assert_eq!(all(&m), expected);
    assert_eq!(m.reader().hash(), hash);
    assert_ne!(m.reader().hash_kv(0).unwrap().0, hash_before_ckpt);
}

#[test]
fn crash_between_gc_and_checkpoint_reopens_the_older_image() {
    let tmp = tempfile::tempdir().unwrap();
    let mut m = Mvcc::open(tmp.path(), small()).unwrap();
    for i in 0..100 {
        put(&mut m, &format!("key{}", i % 5), &format!("value-{i}"));
    }
    m.checkpoint(5, b"").unwrap();
    let expected = all(&m);
    let hash = m.reader().hash();
    m.compact(101).unwrap();
    // Crash here: the compaction and GC are not in any checkpoint.
    drop(m);
    let m = Mvcc::open(tmp.path(), small()).unwrap();
    assert_eq!(m.reader().compact_revision(), 0);
    assert_eq!(m.reader().hash(), hash);
    assert_eq!(all(&m), expected);
    let old = m.reader().range(
        b"key0",
        b"",
        &RangeOptions {
            revision: 2,
            ..RangeOptions::default()
        },
    );
    assert_eq!(old.unwrap().kvs[0].value, Bytes::from_static(b"value-0"));
}
