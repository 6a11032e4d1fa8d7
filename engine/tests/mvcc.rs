//! MVCC semantics with exact revisions and versions (etcd mvcc/kvstore_test.go style).

use bytes::Bytes;
use engine::{Error, Event, EventType, KeyValue, Mvcc, MvccOptions, RangeOptions};

fn open(dir: &std::path::Path) -> Mvcc {
    Mvcc::open(dir, MvccOptions::default()).unwrap()
}

fn kv(key: &str, value: &str, create: i64, modr: i64, version: i64, lease: i64) -> KeyValue {
    KeyValue {
        key: Bytes::copy_from_slice(key.as_bytes()),
        create_revision: create,
        mod_revision: modr,
        version,
        value: Bytes::copy_from_slice(value.as_bytes()),
        lease,
    }
}

fn put(m: &mut Mvcc, key: &str, value: &str) -> i64 {
    let mut t = m.write();
    t.put(key.as_bytes(), value.as_bytes(), 0);
    t.end().0
}

fn delete(m: &mut Mvcc, key: &str, end: &str) -> (i64, usize) {
    let mut t = m.write();
    let n = t.delete_range(key.as_bytes(), end.as_bytes()).len();
    (t.end().0, n)
}

fn at(rev: i64) -> RangeOptions {
    RangeOptions {
        revision: rev,
        ..RangeOptions::default()
    }
}

fn keys(m: &Mvcc, key: &str, end: &[u8], o: &RangeOptions) -> Vec<String> {
    m.reader()
        .range(key.as_bytes(), end, o)
        .unwrap()
        .kvs
        .iter()
        .map(|k| String::from_utf8(k.key.to_vec()).unwrap())
        .collect()
}

#[test]
fn put_put_delete_put_generations() {
    let tmp = tempfile::tempdir().unwrap();
    let mut m = open(tmp.path());
    let r = m.reader();
    assert_eq!(r.current_revision(), 1);
    assert_eq!(r.compact_revision(), 0);

    let mut t = m.write();
    assert_eq!(t.revision(), 1);
    assert_eq!(t.put(b"foo", b"bar", 7), None);
    assert_eq!(t.revision(), 2);
    assert_eq!(t.end().0, 2);

    let mut t = m.write();
    assert_eq!(t.put(b"foo", b"baz", 0), Some(kv("foo", "bar", 2, 2, 1, 7)));
    t.end();

    let mut t = m.write();
    assert_eq!(
        t.delete_range(b"foo", b""),
        vec![kv("foo", "baz", 2, 3, 2, 0)]
    );
    assert_eq!(t.end().0, 4);

    let mut t = m.write();
    assert_eq!(t.put(b"foo", b"qux", 0), None);
    assert_eq!(t.end().0, 5);

    let get = |rev| {
        let res = r.range(b"foo", b"", &at(rev)).unwrap();
        assert_eq!(res.revision, 5);
        res.kvs
    };
    assert_eq!(get(0), vec![kv("foo", "qux", 5, 5, 1, 0)]);
    assert_eq!(get(5), vec![kv("foo", "qux", 5, 5, 1, 0)]);
    assert_eq!(get(4), vec![]);
    assert_eq!(get(3), vec![kv("foo", "baz", 2, 3, 2, 0)]);
    assert_eq!(get(2), vec![kv("foo", "bar", 2, 2, 1, 7)]);
    assert_eq!(get(1), vec![]);
    assert!(matches!(
        r.range(b"foo", b"", &at(6)),
        Err(Error::FutureRevision)
    ));

    // Deleting a missing key writes nothing and keeps the revision.
    assert_eq!(delete(&mut m, "nope", ""), (5, 0));
    assert_eq!(r.current_revision(), 5);
}

#[test]
fn txn_writes_share_one_main_revision_with_increasing_subs() {
    let tmp = tempfile::tempdir().unwrap();
    let mut m = open(tmp.path());
    put(&mut m, "c", "1"); // rev 2
    let reader = m.reader();
    let mut t = m.write();
    assert_eq!(t.put(b"a", b"x", 0), None);
    assert_eq!(t.put(b"b", b"y", 0), None);
    assert_eq!(t.delete_range(b"c", b"").len(), 1);
    assert_eq!(t.put(b"a", b"z", 0), Some(kv("a", "x", 3, 3, 1, 0)));
    // The txn sees its own writes; other readers do not, until end().
    let inside = t.range(b"a", b"\0", &RangeOptions::default()).unwrap();
    assert_eq!(inside.revision, 3);
    assert_eq!(
        inside.kvs,
        vec![kv("a", "z", 3, 3, 2, 0), kv("b", "y", 3, 3, 1, 0)]
    );
    let outside = reader.range(b"a", b"\0", &RangeOptions::default()).unwrap();
    assert_eq!(outside.revision, 2);
    assert_eq!(outside.kvs, vec![kv("c", "1", 2, 2, 1, 0)]);
    assert!(matches!(
        reader.range(b"a", b"", &at(3)),
        Err(Error::FutureRevision)
    ));
    assert_eq!(reader.events(b"a", b"\0", 3, 3, false, 0).unwrap(), vec![]);
    let (rev, events) = t.end();
    assert_eq!(rev, 3);
    assert_eq!(
        events,
        vec![
            Event {
                event_type: EventType::Put,
                kv: kv("a", "x", 3, 3, 1, 0),
                prev_kv: None
            },
            Event {
                event_type: EventType::Put,
                kv: kv("b", "y", 3, 3, 1, 0),
                prev_kv: None
            },
            Event {
                event_type: EventType::Delete,
                kv: KeyValue {
                    key: Bytes::from_static(b"c"),
                    mod_revision: 3,
                    ..KeyValue::default()
                },
                prev_kv: Some(kv("c", "1", 2, 2, 1, 0)),
            },
            Event {
                event_type: EventType::Put,
                kv: kv("a", "z", 3, 3, 2, 0),
                prev_kv: Some(kv("a", "x", 3, 3, 1, 0)),
            },
        ]
    );
    // The history holds the same four events in (main, sub) order.
    assert_eq!(reader.events(b"", b"\0", 3, 3, true, 0).unwrap(), events);
    assert_eq!(reader.current_revision(), 3);
    // A txn that only reads does not advance the revision.
    let t = m.write();
    assert_eq!(
        t.range(b"a", b"", &RangeOptions::default())
            .unwrap()
            .revision,
        3
    );
    assert_eq!(t.end(), (3, vec![]));
    // A txn dropped without end() still commits.
    {
        let mut t = m.write();
        t.put(b"d", b"dropped", 0);
    }
    assert_eq!(reader.current_revision(), 4);
    assert_eq!(
        reader.range(b"d", b"", &at(0)).unwrap().kvs,
        vec![kv("d", "dropped", 4, 4, 1, 0)]
    );
}

#[test]
fn range_end_forms_limit_count_and_keys_only() {
    let tmp = tempfile::tempdir().unwrap();
    let mut m = open(tmp.path());
    for k in ["a", "b", "b/1", "b/2", "c", "d"] {
        put(&mut m, k, &format!("v-{k}"));
    }
    let all = RangeOptions::default();
    assert_eq!(keys(&m, "b", b"", &all), ["b"]);
    assert_eq!(keys(&m, "b/", b"b0", &all), ["b/1", "b/2"]);
    assert_eq!(keys(&m, "b", b"d", &all), ["b", "b/1", "b/2", "c"]);
    assert_eq!(keys(&m, "c", b"\0", &all), ["c", "d"]);
    assert_eq!(
        keys(&m, "\0", b"\0", &all),
        ["a", "b", "b/1", "b/2", "c", "d"]
    );
    assert_eq!(
        keys(&m, "", b"\0", &all),
        ["a", "b", "b/1", "b/2", "c", "d"]
    );
    assert_eq!(keys(&m, "zz", b"", &all), Vec::<String>::new());
    // An inverted or empty range matches nothing (no panic).
    assert_eq!(keys(&m, "d", b"a", &all), Vec::<String>::new());
    assert_eq!(keys(&m, "b", b"b", &all), Vec::<String>::new());

    let r = m.reader();
    let limited = r
        .range(
            b"a",
            b"\0",
            &RangeOptions {
                limit: 2,
                ..RangeOptions::default()
            },
        )
        .unwrap();
    assert_eq!(limited.count, 6);
    assert_eq!(
        limited.kvs,
        vec![kv("a", "v-a", 2, 2, 1, 0), kv("b", "v-b", 3, 3, 1, 0)]
    );
    assert_eq!(limited.revision, 7);
    let counted = r
        .range(
            b"b",
            b"c",
            &RangeOptions {
                count_only: true,
                ..RangeOptions::default()
            },
        )
        .unwrap();
    assert_eq!((counted.kvs.len(), counted.count), (0, 3));
    let ko = r
        .range(
            b"c",
            b"\0",
            &RangeOptions {
                keys_only: true,
                ..RangeOptions::default()
            },
        )
        .unwrap();
    assert_eq!(
        ko.kvs,
        vec![
            KeyValue {
                value: Bytes::new(),
                ..kv("c", "", 6, 6, 1, 0)
            },
            KeyValue {
                value: Bytes::new(),
                ..kv("d", "", 7, 7, 1, 0)
            },
        ]
    );
    // Historical range: at revision 4 only a, b, b/1 existed.
    assert_eq!(keys(&m, "a", b"\0", &at(4)), ["a", "b", "b/1"]);
    let c4 = r.range(
        b"a",
        b"\0",
        &RangeOptions {
            revision: 4,
            count_only: true,
            ..RangeOptions::default()
        },
    );
    assert_eq!(c4.unwrap().count, 3);
}

#[test]
fn delete_range_prefix_and_recreate() {
    let tmp = tempfile::tempdir().unwrap();
    let mut m = open(tmp.path());
    for k in ["p/1", "p/2", "p/3", "q"] {
        put(&mut m, k, "v");
    }
    let mut t = m.write();
    let deleted = t.delete_range(b"p/", b"p0");
    assert_eq!(
        deleted,
        vec![
            kv("p/1", "v", 2, 2, 1, 0),
            kv("p/2", "v", 3, 3, 1, 0),
            kv("p/3", "v", 4, 4, 1, 0)
        ]
    );
    // Deleting again inside the same txn finds nothing.
    assert_eq!(t.delete_range(b"p/", b"p0"), vec![]);
    assert_eq!(t.put(b"p/2", b"again", 0), None);
    let (rev, events) = t.end();
    assert_eq!(rev, 6);
    assert_eq!(events.len(), 4);
    assert_eq!(events[3].kv, kv("p/2", "again", 6, 6, 1, 0));
    assert_eq!(keys(&m, "p/", b"p0", &at(0)), ["p/2"]);
    assert_eq!(keys(&m, "p/", b"p0", &at(5)), ["p/1", "p/2", "p/3"]);
}

#[test]
fn compaction_keeps_latest_and_drops_tombstoned_keys() {
    let tmp = tempfile::tempdir().unwrap();
    let mut m = open(tmp.path());
    put(&mut m, "a", "1"); // 2
    put(&mut m, "a", "2"); // 3
    put(&mut m, "b", "1"); // 4
    delete(&mut m, "b", ""); // 5
    put(&mut m, "a", "3"); // 6
    put(&mut m, "c", "1"); // 7
    let r = m.reader();
    assert!(matches!(m.compact(8), Err(Error::FutureRevision)));
    m.compact(5).unwrap();
    assert_eq!(r.compact_revision(), 5);
    assert!(matches!(m.compact(5), Err(Error::Compacted)));
    assert!(matches!(m.compact(4), Err(Error::Compacted)));
    assert!(matches!(r.range(b"a", b"", &at(4)), Err(Error::Compacted)));
    // At the compact revision itself: a is at version 2, b is gone.
    assert_eq!(
        r.range(b"a", b"\0", &at(5)).unwrap().kvs,
        vec![kv("a", "2", 2, 3, 2, 0)]
    );
    assert_eq!(
        r.range(b"a", b"\0", &at(0)).unwrap().kvs,
        vec![kv("a", "3", 2, 6, 3, 0), kv("c", "1", 7, 7, 1, 0)]
    );
    // History from the compact revision on: only a's kept revision 3 is below 6.
    assert!(matches!(
        r.events(b"a", b"\0", 4, 7, false, 0),
        Err(Error::Compacted)
    ));
    let evs = r.events(b"a", b"\0", 5, 7, true, 0).unwrap();
    assert_eq!(evs.len(), 2);
    assert_eq!(evs[0].kv, kv("a", "3", 2, 6, 3, 0));
    assert_eq!(evs[0].prev_kv, Some(kv("a", "2", 2, 3, 2, 0)));
    assert_eq!(evs[1].kv, kv("c", "1", 7, 7, 1, 0));
    // Writes continue; version keeps counting after compaction.
    put(&mut m, "a", "4"); // 8
    assert_eq!(
        r.range(b"a", b"", &at(0)).unwrap().kvs,
        vec![kv("a", "4", 2, 8, 4, 0)]
    );
    m.compact(8).unwrap();
    assert_eq!(r.range(b"a", b"\0", &at(8)).unwrap().count, 2);
    assert!(r.events(b"", b"\0", 8, 8, false, 0).unwrap().len() == 1);
}

#[test]
fn events_across_revisions_with_prev_kv_and_whole_revision_limits() {
    let tmp = tempfile::tempdir().unwrap();
    let mut m = open(tmp.path());
    put(&mut m, "k1", "a"); // 2
    let mut t = m.write(); // 3: two writes
    t.put(b"k1", b"b", 5);
    t.put(b"k2", b"c", 0);
    t.end();
    delete(&mut m, "k1", ""); // 4
    put(&mut m, "other", "x"); // 5
    put(&mut m, "k1", "d"); // 6
    let r = m.reader();
    let evs = r.events(b"k", b"l", 1, 100, true, 0).unwrap();
    let summary: Vec<(EventType, String, i64, Option<String>)> = evs
        .iter()
        .map(|e| {
            (
                e.event_type,
                String::from_utf8(e.kv.key.to_vec()).unwrap(),
                e.kv.mod_revision,
                e.prev_kv
                    .as_ref()
                    .map(|p| String::from_utf8(p.value.to_vec()).unwrap()),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            (EventType::Put, "k1".into(), 2, None),
            (EventType::Put, "k1".into(), 3, Some("a".into())),
            (EventType::Put, "k2".into(), 3, None),
            (EventType::Delete, "k1".into(), 4, Some("b".into())),
            (EventType::Put, "k1".into(), 6, None),
        ]
    );
    assert_eq!(evs[1].kv, kv("k1", "b", 2, 3, 2, 5));
    assert_eq!(evs[3].prev_kv, Some(kv("k1", "b", 2, 3, 2, 5)));
    // Without prev_kv.
    assert!(r
        .events(b"k", b"l", 1, 100, false, 0)
        .unwrap()
        .iter()
        .all(|e| e.prev_kv.is_none()));
    // Single key, bounded revisions.
    let k2: Vec<i64> = r
        .events(b"k2", b"", 1, 100, false, 0)
        .unwrap()
        .iter()
        .map(|e| e.kv.mod_revision)
        .collect();
    assert_eq!(k2, vec![3]);
    let mid: Vec<i64> = r
        .events(b"k", b"l", 3, 4, false, 0)
        .unwrap()
        .iter()
        .map(|e| e.kv.mod_revision)
        .collect();
    assert_eq!(mid, vec![3, 3, 4]);
    // max_events never splits a revision: 2 events → revisions 2 and 3 (3 events).
    let lim = |max| -> Vec<i64> {
        r.events(b"k", b"l", 1, 100, false, max)
            .unwrap()
            .iter()
            .map(|e| e.kv.mod_revision)
            .collect()
    };
    assert_eq!(lim(1), vec![2]);
    assert_eq!(lim(2), vec![2, 3, 3]);
    assert_eq!(lim(3), vec![2, 3, 3]);
    assert_eq!(lim(4), vec![2, 3, 3, 4]);
    // From beyond the current revision: nothing.
    assert_eq!(r.events(b"k", b"l", 7, 100, false, 0).unwrap(), vec![]);
}

#[test]
fn readers_on_other_threads_see_whole_txns_only() {
    let tmp = tempfile::tempdir().unwrap();
    let mut m = open(tmp.path());
    let r = m.reader();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let s2 = stop.clone();
    let checker = std::thread::spawn(move || {
        let mut checks = 0u64;
        while !s2.load(std::sync::atomic::Ordering::Relaxed) || checks == 0 {
            let res = r.range(b"x", b"y", &RangeOptions::default()).unwrap();
            // Every txn writes x1 and x2 together, with the same value.
            if !res.kvs.is_empty() {
                assert_eq!(res.kvs.len(), 2);
                assert_eq!(res.kvs[0].value, res.kvs[1].value);
                assert_eq!(res.kvs[0].mod_revision, res.revision);
            }
            checks += 1;
        }
        checks
    });
    for i in 0..300 {
        let mut t = m.write();
        let v = format!("{i}");
        t.put(b"x1", v.as_bytes(), 0);
        t.put(b"x2", v.as_bytes(), 0);
        t.end();
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    assert!(checker.join().unwrap() > 0);
    assert_eq!(m.reader().current_revision(), 301);
}

#[test]
fn hash_kv_follows_revisions_and_compaction() {
    let tmp = tempfile::tempdir().unwrap();
    let mut m = open(tmp.path());
    let r = m.reader();
    let (h_empty, c, rev) = r.hash_kv(0).unwrap();
    assert_eq!((c, rev), (0, 1));
    put(&mut m, "a", "1");
    put(&mut m, "b", "1");
    let (h2, _, _) = r.hash_kv(2).unwrap();
    let (h3, _, rev3) = r.hash_kv(0).unwrap();
    assert_eq!(rev3, 3);
    assert_ne!(h2, h3);
    assert_ne!(h_empty, h2);
    put(&mut m, "a", "2"); // 4
                           // Hash at an old revision does not change as the store moves on.
    assert_eq!(r.hash_kv(3).unwrap().0, h3);
    assert!(matches!(r.hash_kv(5), Err(Error::FutureRevision)));
    let h4 = r.hash_kv(4).unwrap().0;
    m.compact(3).unwrap();
    assert!(matches!(r.hash_kv(3), Err(Error::Compacted)));
    // Compaction drops a@2 from what hash_kv(4) covers (as etcd's keep set does).
    let (h4c, c, rev) = r.hash_kv(4).unwrap();
    assert_eq!((c, rev), (3, 4));
    assert_ne!(h4c, h4);
    put(&mut m, "c", "1"); // 5
    assert_eq!(r.hash_kv(4).unwrap().0, h4c);
    // A member that applied the same requests and compaction agrees.
    let tmp2 = tempfile::tempdir().unwrap();
    let mut m2 = open(tmp2.path());
    for (k, v) in [("a", "1"), ("b", "1"), ("a", "2")] {
        put(&mut m2, k, v);
    }
    m2.compact(3).unwrap();
    put(&mut m2, "c", "1");
    assert_eq!(m2.reader().hash_kv(4).unwrap(), (h4c, 3, 4));
    assert_eq!(m2.reader().hash_kv(0).unwrap(), r.hash_kv(0).unwrap());
    assert_eq!(m2.reader().hash(), r.hash());
    put(&mut m2, "c", "2");
    assert_ne!(m2.reader().hash(), r.hash());
}

#[test]
fn invalid_options_are_rejected() {
    let tmp = tempfile::tempdir().unwrap();
    let bad = MvccOptions {
        segment_bytes: 100,
        ..MvccOptions::default()
    };
    assert_eq!(
        Mvcc::open(tmp.path(), bad).err().unwrap().to_string(),
        "invalid option: segment_bytes 100 must be a multiple of 4096 in [4096, 1099511627776]"
    );
    let bad = MvccOptions {
        gc_live_percent: 101,
        ..MvccOptions::default()
    };
    assert_eq!(
        Mvcc::open(tmp.path(), bad).err().unwrap().to_string(),
        "invalid option: gc_live_percent 101 must be in [0, 100]"
    );
}

#[test]
fn large_values_get_their_own_segment() {
    let tmp = tempfile::tempdir().unwrap();
    let mut m = Mvcc::open(
        tmp.path(),
        MvccOptions {
            segment_bytes: 4096,
            ..MvccOptions::default()
        },
    )
    .unwrap();
    let big = vec![7u8; 10_000];
    let mut t = m.write();
    t.put(b"big", &big, 0);
    t.put(b"small", b"s", 0);
    t.end();
    let res = m
        .reader()
        .range(b"big", b"", &RangeOptions::default())
        .unwrap();
    assert_eq!(res.kvs[0].value.len(), 10_000);
    assert!(res.kvs[0].value.iter().all(|b| *b == 7));
    m.checkpoint(1, b"").unwrap();
    drop(m);
    let m = Mvcc::open(
        tmp.path(),
        MvccOptions {
            segment_bytes: 4096,
            ..MvccOptions::default()
        },
    )
    .unwrap();
    let res = m
        .reader()
        .range(b"big", b"\0", &RangeOptions::default())
        .unwrap();
    assert_eq!(res.count, 2);
    assert_eq!(res.kvs[0].value.len(), 10_000);
}
