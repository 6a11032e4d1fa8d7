//! Shipping a store to another member: the archive stream, its checks, installing it in
//! place under live readers, and recovery from a crash in the middle of an install.

use std::path::Path;

use bytes::Bytes;
use engine::{received_applied_index, Mvcc, MvccOptions, RangeOptions, SnapshotReceiver};

fn small() -> MvccOptions {
    MvccOptions {
        segment_bytes: 4096,
        ..MvccOptions::default()
    }
}

fn put(m: &mut Mvcc, key: &str, value: &str) -> i64 {
    let mut t = m.write();
    t.put(key.as_bytes(), value.as_bytes(), 0);
    t.end().0
}

/// Every key as `(key, value, create_revision, mod_revision, version)`.
type Kvs = Vec<(Bytes, Bytes, i64, i64, i64)>;

fn all(m: &Mvcc) -> Kvs {
    m.reader()
        .range(b"\0", b"\0", &RangeOptions::default())
        .unwrap()
        .kvs
        .into_iter()
        .map(|k| (k.key, k.value, k.create_revision, k.mod_revision, k.version))
        .collect()
}

/// The whole archive of `m`'s newest checkpoint.
fn archive(m: &Mvcc) -> (u64, Vec<u8>) {
    let mut source = m.snapshot_source().unwrap();
    let mut out = Vec::new();
    while let Some(chunk) = source.next_chunk().unwrap() {
        assert!(chunk.len() <= engine::SNAPSHOT_CHUNK_BYTES);
        out.extend_from_slice(&chunk);
    }
    (source.applied_index(), out)
}

fn receive(dir: &Path, bytes: &[u8], split: usize) -> engine::Result<u64> {
    let mut r = SnapshotReceiver::create(dir)?;
    for chunk in bytes.chunks(split) {
        r.push(chunk)?;
    }
    r.finish()
}

/// A store with history across several value segments, a compaction and a checkpoint at
/// applied index 40, then writes after the checkpoint that must not ship.
fn source_store(dir: &Path) -> (Mvcc, Kvs, (u32, i64, i64)) {
    let mut m = Mvcc::open(dir, small()).unwrap();
    for i in 0..120 {
        put(
            &mut m,
            &format!("k{:03}", i % 37),
            &format!("v{i}-{}", "x".repeat(40)),
        );
    }
    m.compact(50).unwrap();
    m.checkpoint(40, b"meta").unwrap();
    let at_checkpoint = all(&m);
    let hash = m.reader().hash_kv(0).unwrap();
    for i in 0..30 {
        put(&mut m, &format!("late{i}"), "after the checkpoint");
    }
    (m, at_checkpoint, hash)
}

#[test]
fn snapshot_round_trips_at_every_split_and_installs_under_a_live_reader() {
    let tmp = tempfile::tempdir().unwrap();
    let (source, expected, hash) = source_store(&tmp.path().join("src"));
    let (applied, bytes) = archive(&source);
    assert_eq!(applied, 40);

    let target_dir = tmp.path().join("member").join("kv");
    let mut target = Mvcc::open(&target_dir, small()).unwrap();
    put(&mut target, "stale", "replaced by the snapshot");
    target.checkpoint(3, b"old").unwrap();
    let reader = target.reader();

    for split in [1, 7, 4096, bytes.len()] {
        let received = tmp.path().join("member").join(format!("received-{split}"));
        assert_eq!(
            receive(&received, &bytes, split).unwrap(),
            40,
            "split {split}"
        );
        assert_eq!(received_applied_index(&received).unwrap(), Some(40));
    }
    let received = tmp.path().join("member").join("received-7");
    assert_eq!(target.install(&received).unwrap(), 40);
    assert!(!received.exists());
    assert_eq!(all(&target), expected);
    assert_eq!(target.checkpoint_state(), (40, Bytes::from_static(b"meta")));
    // The reader taken before the install sees the new store.
    assert_eq!(reader.hash_kv(0).unwrap(), hash);
    assert_eq!(reader.compact_revision(), 50);
    // Writes continue on top, and a reopen finds the same store.
    put(&mut target, "after", "install");
    target.checkpoint(41, b"meta2").unwrap();
    drop(target);
    let reopened = Mvcc::open(&target_dir, small()).unwrap();
    assert_eq!(reopened.checkpoint_state().0, 41);
    let keys: Vec<Bytes> = all(&reopened).into_iter().map(|k| k.0).collect();
    assert!(keys.contains(&Bytes::from_static(b"after")));
    assert!(!keys.contains(&Bytes::from_static(b"stale")));
}

#[test]
fn damaged_or_cut_streams_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let (source, _, _) = source_store(&tmp.path().join("src"));
    let (_, bytes) = archive(&source);
    let dir = tmp.path().join("received");
    // Every byte flipped somewhere in the middle fails (CRC, header or data check).
    for at in [
        0,
        8,
        9,
        20,
        bytes.len() / 2,
        bytes.len() - 5,
        bytes.len() - 1,
    ] {
        let mut bad = bytes.clone();
        bad[at] ^= 0x40;
        assert!(receive(&dir, &bad, 4096).is_err(), "flipped byte {at}");
    }
    for cut in [0, 9, 30, bytes.len() / 2, bytes.len() - 1] {
        let err = receive(&dir, &bytes[..cut], 4096).unwrap_err();
        assert!(
            err.to_string().contains("snapshot stream"),
            "cut {cut}: {err}"
        );
    }
    let mut trailing = bytes.clone();
    trailing.push(0);
    assert!(receive(&dir, &trailing, 4096).is_err());
}

/// A value segment damaged behind a valid archive CRC (a faulty leader) is refused by
/// `finish`, before `install` swaps the store for it: the swap would leave a store that
/// does not open (found by `cairn-fuzz snapshot`).
#[test]
fn a_damaged_value_segment_is_refused_before_install() {
    let tmp = tempfile::tempdir().unwrap();
    let (source, _, _) = source_store(&tmp.path().join("src"));
    let (_, bytes) = archive(&source);
    let name = b"values/0000000000000001.val";
    let at = bytes
        .windows(name.len())
        .position(|w| w == name)
        .expect("the first value segment in the archive");
    let mut bad = bytes.clone();
    // The segment's data starts after its name, preallocation and size; break its magic.
    bad[at + name.len() + 16] ^= 0x01;
    let crc_at = bad.len() - 4;
    let crc = crc32fast::hash(&bad[..crc_at]);
    bad[crc_at..].copy_from_slice(&crc.to_le_bytes());
    let err = receive(&tmp.path().join("received"), &bad, 4096).unwrap_err();
    assert!(err.to_string().contains("bad magic"), "{err}");
}

/// A damaged preallocation size is caught by the CRC before anything is preallocated: a
/// stream damaged in transit does not reserve disk (up to 1 TiB per file).
#[test]
fn a_damaged_preallocation_reserves_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let (source, _, _) = source_store(&tmp.path().join("src"));
    let (_, bytes) = archive(&source);
    let name = b"values/0000000000000001.val";
    let at = bytes.windows(name.len()).position(|w| w == name).unwrap();
    let allocate_at = at + name.len();
    let mut bad = bytes.clone();
    // Bit 30 of the preallocation: 1 GiB more than the segment asked for.
    bad[allocate_at + 3] ^= 0x40;
    let received = tmp.path().join("received");
    let err = receive(&received, &bad, 4096).unwrap_err();
    assert!(err.to_string().contains("crc"), "{err}");
    let len = std::fs::metadata(received.join("values/0000000000000001.val"))
        .unwrap()
        .len();
    assert!(len < 1 << 20, "the damaged stream preallocated {len} bytes");
}

#[test]
fn file_names_outside_the_store_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("received");
    let mut bytes = b"CAIRNSNP\x01".to_vec();
    let name = b"../../etc/passwd";
    bytes.extend_from_slice(&(name.len() as u16).to_le_bytes());
    bytes.extend_from_slice(name);
    bytes.extend_from_slice(&4u64.to_le_bytes());
    bytes.extend_from_slice(&4u64.to_le_bytes());
    let err = receive(&dir, &bytes, 64).unwrap_err();
    assert!(err.to_string().contains("unexpected file"), "{err}");
}

#[test]
fn a_store_without_checkpoint_has_nothing_to_ship() {
    let tmp = tempfile::tempdir().unwrap();
    let mut m = Mvcc::open(tmp.path(), small()).unwrap();
    put(&mut m, "a", "b");
    assert!(m.snapshot_source().is_err());
}

#[test]
fn an_install_cut_between_its_renames_is_undone_at_open() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("kv");
    let mut m = Mvcc::open(&dir, small()).unwrap();
    put(&mut m, "kept", "yes");
    m.checkpoint(9, b"").unwrap();
    let expected = all(&m);
    drop(m);
    // The first rename happened, the second did not.
    std::fs::rename(&dir, tmp.path().join("kv.old")).unwrap();
    let m = Mvcc::open(&dir, small()).unwrap();
    assert_eq!(all(&m), expected);
    assert!(!tmp.path().join("kv.old").exists());
    drop(m);
    // Both renames happened, the old store was not deleted yet.
    std::fs::create_dir(tmp.path().join("kv.old")).unwrap();
    let m = Mvcc::open(&dir, small()).unwrap();
    assert_eq!(all(&m), expected);
    assert!(!tmp.path().join("kv.old").exists());
}
