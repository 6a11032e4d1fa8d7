//! WAL crash and corruption tests: write, inject the fault, reopen, assert.

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use engine::{Error, Wal, WalOptions, WalRecord};

const SEGMENT_BYTES: u64 = 4096;
const HEADER_BYTES: u64 = 32;

fn opts() -> WalOptions {
    WalOptions {
        segment_bytes: SEGMENT_BYTES,
    }
}

fn record_bytes(payload: usize) -> u64 {
    (17 + payload as u64).div_ceil(8) * 8
}

fn payload(i: u64) -> Vec<u8> {
    let len = (i * 37 % 200) as usize + 1;
    (0..len).map(|j| (i as usize * 7 + j) as u8).collect()
}

fn rec(i: u64) -> WalRecord {
    WalRecord {
        record_type: (i % 3) as u8 + 1,
        index: i,
        payload: payload(i).into(),
    }
}

fn write_records(dir: &Path, range: std::ops::Range<u64>) {
    let (mut wal, _) = Wal::open(dir, opts()).unwrap();
    for i in range {
        wal.append((i % 3) as u8 + 1, i, &payload(i)).unwrap();
    }
    wal.sync().unwrap();
}

fn seg_path(dir: &Path, seq: u64) -> PathBuf {
    dir.join(format!("{seq:016}.wal"))
}

fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "wal"))
        .collect();
    v.sort();
    v
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

/// (seq, offset) of each record 1..=n written by `write_records(1..n+1)`, replaying the
/// rotation rule (a record goes to a new segment when it does not fit).
fn layout(n: u64) -> Vec<(u64, u64)> {
    let mut seq = 1;
    let mut off = HEADER_BYTES;
    let mut out = Vec::new();
    for i in 1..=n {
        let b = record_bytes(payload(i).len());
        if off + b > SEGMENT_BYTES {
            seq += 1;
            off = HEADER_BYTES;
        }
        out.push((seq, off));
        off += b;
    }
    out
}

#[test]
fn append_sync_reopen_returns_every_record() {
    let tmp = tempfile::tempdir().unwrap();
    write_records(tmp.path(), 1..11);
    let (_, records) = Wal::open(tmp.path(), opts()).unwrap();
    assert_eq!(records, (1..11).map(rec).collect::<Vec<_>>());
}

#[test]
fn empty_payload_and_type_zero_roundtrip() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut wal, recs) = Wal::open(tmp.path(), opts()).unwrap();
    assert!(recs.is_empty());
    wal.append(0, 0, b"").unwrap();
    wal.append(0, 5, b"x").unwrap();
    wal.sync().unwrap();
    drop(wal);
    let (_, recs) = Wal::open(tmp.path(), opts()).unwrap();
    assert_eq!(recs.len(), 2);
    assert_eq!(
        (recs[0].record_type, recs[0].index, recs[0].payload.len()),
        (0, 0, 0)
    );
    assert_eq!((recs[1].index, &recs[1].payload[..]), (5, &b"x"[..]));
}

#[test]
fn rotation_across_segments_keeps_order_and_file_size() {
    let tmp = tempfile::tempdir().unwrap();
    write_records(tmp.path(), 1..101);
    let lay = layout(100);
    let segs = segments(tmp.path());
    assert_eq!(segs.len() as u64, lay.last().unwrap().0);
    assert!(segs.len() >= 3);
    for s in &segs {
        // Writes land inside the preallocated space: the file never grows.
        assert_eq!(std::fs::metadata(s).unwrap().len(), SEGMENT_BYTES);
    }
    let (wal, records) = Wal::open(tmp.path(), opts()).unwrap();
    assert_eq!(records, (1..101).map(rec).collect::<Vec<_>>());
    assert_eq!(wal.segment_count(), segs.len());
    assert_eq!(wal.active_segment_seq(), segs.len() as u64);
}

#[test]
fn record_too_large_is_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut wal, _) = Wal::open(tmp.path(), opts()).unwrap();
    assert_eq!(wal.record_bytes_max(), SEGMENT_BYTES - HEADER_BYTES);
    let big = vec![1u8; (SEGMENT_BYTES - HEADER_BYTES - 17 + 1) as usize];
    match wal.append(1, 1, &big) {
        Err(Error::RecordTooLarge { bytes, limit }) => {
            assert_eq!(bytes, SEGMENT_BYTES - HEADER_BYTES + 8);
            assert_eq!(limit, SEGMENT_BYTES - HEADER_BYTES);
        }
        other => panic!("expected RecordTooLarge, got {other:?}"),
    }
    // The largest record fits exactly in a fresh segment.
    let max = vec![2u8; (SEGMENT_BYTES - HEADER_BYTES - 17 - 7) as usize];
    wal.append(1, 1, &max).unwrap();
    wal.append(1, 2, b"after").unwrap();
    wal.sync().unwrap();
    drop(wal);
    let (_, recs) = Wal::open(tmp.path(), opts()).unwrap();
    assert_eq!(recs.len(), 2);
    assert_eq!(recs[0].payload.len(), max.len());
    assert_eq!(&recs[1].payload[..], b"after");
}

#[test]
fn invalid_options_are_rejected() {
    let tmp = tempfile::tempdir().unwrap();
    let err = Wal::open(
        tmp.path(),
        WalOptions {
            segment_bytes: 1000,
        },
    )
    .err()
    .unwrap();
    assert_eq!(
        err.to_string(),
        "invalid option: segment_bytes 1000 must be a multiple of 4096 in [4096, 1099511627776]"
    );
}

/// Cuts the last segment at every byte offset of its last few records (both as a
/// shorter file and as a zero-filled remainder) and checks that exactly the complete
/// records before the cut survive, that appending afterwards works, and that a second
/// reopen sees the survivors plus the new records.
#[test]
fn torn_tail_at_every_offset_keeps_the_durable_prefix() {
    let n = 60;
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path().join("base");
    write_records(&base, 1..n + 1);
    let lay = layout(n);
    let last_seq = lay.last().unwrap().0;
    let in_last: Vec<(u64, u64)> = lay
        .iter()
        .enumerate()
        .filter(|(_, (s, _))| *s == last_seq)
        .map(|(i, (_, off))| (i as u64 + 1, *off))
        .collect();
    assert!(
        in_last.len() >= 4,
        "test needs several records in the last segment"
    );
    let first_cut = in_last[in_last.len() - 4].1;
    let end = in_last.last().unwrap().1 + record_bytes(payload(n).len());
    let mut case = 0;
    for cut in first_cut..=end {
        for zero_fill in [false, true] {
            case += 1;
            let dir = tmp.path().join(format!("case{case}"));
            copy_dir(&base, &dir);
            let f = OpenOptions::new()
                .write(true)
                .open(seg_path(&dir, last_seq))
                .unwrap();
            if zero_fill {
                f.write_all_at(&vec![0u8; (SEGMENT_BYTES - cut) as usize], cut)
                    .unwrap();
            } else {
                f.set_len(cut).unwrap();
            }
            drop(f);
            // Complete records are those ending at or before the cut. Zero-filling keeps
            // a record whose cut falls in its (zero) padding; a shorter file does not.
            let survivors = lay
                .iter()
                .enumerate()
                .filter(|(i, (s, off))| {
                    let len = payload(*i as u64 + 1).len();
                    let end = if zero_fill {
                        17 + len as u64
                    } else {
                        record_bytes(len)
                    };
                    *s < last_seq || off + end <= cut
                })
                .count() as u64;
            let (mut wal, records) = Wal::open(&dir, opts()).unwrap();
            assert_eq!(
                records.len() as u64,
                survivors,
                "cut at {cut} zero_fill {zero_fill}"
            );
            assert_eq!(records, (1..survivors + 1).map(rec).collect::<Vec<_>>());
            wal.append(9, 1000, b"new-1").unwrap();
            wal.append(9, 1001, b"new-2").unwrap();
            wal.sync().unwrap();
            drop(wal);
            let (_, again) = Wal::open(&dir, opts()).unwrap();
            assert_eq!(again.len() as u64, survivors + 2);
            assert_eq!(&again[again.len() - 2].payload[..], b"new-1");
            assert_eq!(again[again.len() - 1].index, 1001);
            std::fs::remove_dir_all(&dir).unwrap();
        }
    }
}

#[test]
fn flipped_byte_in_a_closed_segment_is_corruption_naming_file_and_offset() {
    let n = 60;
    let tmp = tempfile::tempdir().unwrap();
    write_records(tmp.path(), 1..n + 1);
    let lay = layout(n);
    // Record 5 lives in segment 1; flip one payload byte.
    let (seq, off) = lay[4];
    assert_eq!(seq, 1);
    let path = seg_path(tmp.path(), 1);
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .unwrap();
    let mut b = [0u8; 1];
    f.read_exact_at(&mut b, off + 20).unwrap();
    f.write_all_at(&[b[0] ^ 0x40], off + 20).unwrap();
    drop(f);
    match Wal::open(tmp.path(), opts()) {
        Err(Error::Corruption {
            file,
            offset,
            reason,
        }) => {
            assert_eq!(file, path);
            assert_eq!(offset, off);
            assert_eq!(reason, "crc mismatch");
        }
        Err(e) => panic!("expected corruption, got {e}"),
        Ok(_) => panic!("expected corruption, got Ok"),
    }
}

#[test]
fn flipped_byte_in_the_last_record_is_a_torn_tail() {
    let n = 60;
    let tmp = tempfile::tempdir().unwrap();
    write_records(tmp.path(), 1..n + 1);
    let lay = layout(n);
    let (seq, off) = *lay.last().unwrap();
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .open(seg_path(tmp.path(), seq))
        .unwrap();
    f.write_all_at(&[0xee], off + 18).unwrap();
    drop(f);
    let (mut wal, records) = Wal::open(tmp.path(), opts()).unwrap();
    assert_eq!(records, (1..n).map(rec).collect::<Vec<_>>());
    wal.append(4, 500, b"replacement").unwrap();
    wal.sync().unwrap();
    drop(wal);
    let (_, records) = Wal::open(tmp.path(), opts()).unwrap();
    assert_eq!(records.len() as u64, n);
    assert_eq!(
        records[..n as usize - 1],
        (1..n).map(rec).collect::<Vec<_>>()[..]
    );
    assert_eq!(records[n as usize - 1].index, 500);
    assert_eq!(&records[n as usize - 1].payload[..], b"replacement");
}

#[test]
fn bad_record_followed_by_valid_records_in_last_segment_is_corruption() {
    let n = 60;
    let tmp = tempfile::tempdir().unwrap();
    write_records(tmp.path(), 1..n + 1);
    let lay = layout(n);
    let (seq, off) = lay[lay.len() - 3];
    let path = seg_path(tmp.path(), seq);
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .unwrap();
    f.write_all_at(&[0xee], off + 18).unwrap();
    drop(f);
    match Wal::open(tmp.path(), opts()) {
        Err(Error::Corruption {
            file,
            offset,
            reason,
        }) => {
            assert_eq!(file, path);
            assert_eq!(offset, off);
            assert_eq!(reason, "crc mismatch, followed by valid records");
        }
        Err(e) => panic!("expected corruption, got {e}"),
        Ok(_) => panic!("expected corruption, got Ok"),
    }
}

#[test]
fn bad_length_followed_by_valid_records_is_corruption() {
    let n = 60;
    let tmp = tempfile::tempdir().unwrap();
    write_records(tmp.path(), 1..n + 1);
    let lay = layout(n);
    let (seq, off) = lay[lay.len() - 3];
    let path = seg_path(tmp.path(), seq);
    let f = OpenOptions::new().write(true).open(&path).unwrap();
    f.write_all_at(&0xffff_0000u32.to_le_bytes(), off).unwrap();
    drop(f);
    match Wal::open(tmp.path(), opts()) {
        Err(Error::Corruption { offset, reason, .. }) => {
            assert_eq!(offset, off);
            assert_eq!(
                reason,
                "record of 4294901768 bytes extends past the segment end, followed by valid records"
            );
        }
        Err(e) => panic!("expected corruption, got {e}"),
        Ok(_) => panic!("expected corruption, got Ok"),
    }
}

#[test]
fn missing_middle_segment_is_corruption() {
    let tmp = tempfile::tempdir().unwrap();
    write_records(tmp.path(), 1..101);
    std::fs::remove_file(seg_path(tmp.path(), 2)).unwrap();
    match Wal::open(tmp.path(), opts()) {
        Err(Error::Corruption {
            file,
            offset,
            reason,
        }) => {
            assert_eq!(file, seg_path(tmp.path(), 2));
            assert_eq!(offset, 0);
            assert_eq!(reason, "missing wal segment");
        }
        Err(e) => panic!("expected corruption, got {e}"),
        Ok(_) => panic!("expected corruption, got Ok"),
    }
}

#[test]
fn bad_header_is_corruption() {
    let tmp = tempfile::tempdir().unwrap();
    write_records(tmp.path(), 1..5);
    let path = seg_path(tmp.path(), 1);
    let f = OpenOptions::new().write(true).open(&path).unwrap();
    f.write_all_at(b"X", 0).unwrap();
    drop(f);
    match Wal::open(tmp.path(), opts()) {
        Err(Error::Corruption {
            file,
            offset,
            reason,
        }) => {
            assert_eq!((file, offset, reason.as_str()), (path, 0, "bad magic"));
        }
        Err(e) => panic!("expected corruption, got {e}"),
        Ok(_) => panic!("expected corruption, got Ok"),
    }
}

#[test]
fn purge_removes_whole_old_segments_only() {
    let tmp = tempfile::tempdir().unwrap();
    write_records(tmp.path(), 1..101);
    let lay = layout(100);
    let last_in_seg = |seq: u64| lay.iter().rposition(|(s, _)| *s == seq).unwrap() as u64 + 1;
    let (mut wal, _) = Wal::open(tmp.path(), opts()).unwrap();
    let total = wal.segment_count();
    // Segment 1 holds records 1..=last_in_seg(1): purging below that removes nothing.
    assert_eq!(wal.purge(last_in_seg(1) - 1).unwrap(), 0);
    assert_eq!(wal.purge(last_in_seg(1)).unwrap(), 1);
    assert_eq!(wal.purge(last_in_seg(2)).unwrap(), 1);
    assert_eq!(wal.segment_count(), total - 2);
    // Never the active segment, even when every index qualifies.
    assert_eq!(wal.purge(u64::MAX).unwrap(), total - 3);
    assert_eq!(wal.segment_count(), 1);
    wal.append(1, 101, b"tail").unwrap();
    wal.sync().unwrap();
    drop(wal);
    let (_, records) = Wal::open(tmp.path(), opts()).unwrap();
    let first_kept = last_in_seg(total as u64 - 1) + 1;
    assert_eq!(records.len() as u64, 100 - first_kept + 1 + 1);
    assert_eq!(records[0], rec(first_kept));
    assert_eq!(records.last().unwrap().index, 101);
}

#[test]
fn purge_treats_zero_tags_as_purgeable() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut wal, _) = Wal::open(tmp.path(), opts()).unwrap();
    // Segment 1: state records (index 0) only; segment 2: index 10.
    let big = vec![0u8; 2000];
    wal.append(1, 0, &big).unwrap();
    wal.append(1, 0, &big).unwrap();
    wal.append(1, 10, &big).unwrap();
    wal.append(1, 11, &big).unwrap();
    wal.append(1, 12, &big).unwrap();
    assert_eq!(wal.segment_count(), 3);
    assert_eq!(wal.purge(5).unwrap(), 1);
    assert_eq!(wal.purge(10).unwrap(), 0);
    assert_eq!(wal.purge(11).unwrap(), 1);
    assert_eq!(wal.segment_count(), 1);
}

#[test]
fn sync_handle_runs_on_another_thread() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut wal, _) = Wal::open(tmp.path(), opts()).unwrap();
    for i in 1..40 {
        wal.append(1, i, &payload(i)).unwrap();
    }
    let handle = wal.sync_handle().unwrap();
    let t = std::thread::spawn(move || handle.sync());
    // The owner keeps appending meanwhile.
    for i in 40..80 {
        wal.append(1, i, &payload(i)).unwrap();
    }
    t.join().unwrap().unwrap();
    wal.sync_handle().unwrap().sync().unwrap();
    drop(wal);
    let (_, records) = Wal::open(tmp.path(), opts()).unwrap();
    assert_eq!(records.len(), 79);
    assert_eq!(
        records.iter().map(|r| r.index).collect::<Vec<_>>(),
        (1..80).collect::<Vec<_>>()
    );
}

/// Segments are made ahead of need as `NNNN.wal.spare` and renamed in place at rotation;
/// records written into them survive a reopen, and a spare a crash left behind is
/// deleted by open (it holds nothing).
#[test]
fn spare_segments_are_put_in_place_at_rotation_and_leftovers_deleted() {
    let tmp = tempfile::tempdir().unwrap();
    let n = 200;
    write_records(tmp.path(), 1..n + 1);
    let (_, records) = Wal::open(tmp.path(), opts()).unwrap();
    assert_eq!(records, (1..n + 1).map(rec).collect::<Vec<_>>());
    let segs = segments(tmp.path());
    assert_eq!(segs.len() as u64, layout(n).last().unwrap().0);
    // A spare left by a crash, after the last segment: open deletes it.
    let leftover = tmp.path().join(format!("{:016}.wal.spare", segs.len() + 1));
    std::fs::write(&leftover, [0u8; 64]).unwrap();
    let (wal, records) = Wal::open(tmp.path(), opts()).unwrap();
    assert_eq!(records.len() as u64, n);
    assert!(!leftover.exists());
    drop(wal);
    let names: Vec<String> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !n.ends_with(".wal"))
        .collect();
    assert!(names.iter().all(|n| n.ends_with(".wal.spare")), "{names:?}");
}
