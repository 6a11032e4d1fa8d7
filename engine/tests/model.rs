//! Property test: the MVCC store against a plain model that keeps the full history.

use std::collections::BTreeSet;

use bytes::Bytes;
use engine::{Error, Event, EventType, KeyValue, Mvcc, MvccOptions, RangeOptions};
use proptest::prelude::*;

/// One entry of the model's history: (main, sub, key, Some((value, lease)) | None = delete).
type Entry = (i64, i64, Vec<u8>, Option<(Vec<u8>, i64)>);

#[derive(Default)]
struct Model {
    history: Vec<Entry>,
    current: i64,
    compact: i64,
}

fn in_range(k: &[u8], key: &[u8], end: &[u8]) -> bool {
    if end.is_empty() {
        k == key
    } else if end == [0] {
        k >= key
    } else {
        k >= key && k < end
    }
}

impl Model {
    fn new() -> Model {
        Model {
            history: Vec::new(),
            current: 1,
            compact: 0,
        }
    }

    /// State of `key` right before history position `upto` (exclusive).
    fn state_before(&self, key: &[u8], upto: usize) -> Option<KeyValue> {
        let mut kv: Option<KeyValue> = None;
        for (main, _, k, op) in &self.history[..upto] {
            if k != key {
                continue;
            }
            kv = op.as_ref().map(|(v, lease)| KeyValue {
                key: Bytes::copy_from_slice(k),
                create_revision: kv.as_ref().map_or(*main, |p| p.create_revision),
                mod_revision: *main,
                version: kv.as_ref().map_or(1, |p| p.version + 1),
                value: Bytes::copy_from_slice(v),
                lease: *lease,
            });
        }
        kv
    }

    fn get(&self, key: &[u8], rev: i64) -> Option<KeyValue> {
        let upto = self.history.iter().take_while(|e| e.0 <= rev).count();
        self.state_before(key, upto)
    }

    fn keys(&self) -> BTreeSet<Vec<u8>> {
        self.history.iter().map(|e| e.2.clone()).collect()
    }

    fn range(&self, key: &[u8], end: &[u8], rev: i64) -> Vec<KeyValue> {
        self.keys()
            .iter()
            .filter(|k| in_range(k, key, end))
            .filter_map(|k| self.get(k, rev))
            .collect()
    }

    fn events(&self, key: &[u8], end: &[u8], from: i64, to: i64) -> Vec<Event> {
        let mut out = Vec::new();
        for (i, (main, _, k, op)) in self.history.iter().enumerate() {
            if *main < from || *main > to || !in_range(k, key, end) {
                continue;
            }
            let prev_kv = self.state_before(k, i);
            let (event_type, kv) = match op {
                Some(_) => (EventType::Put, self.state_before(k, i + 1).unwrap()),
                None => (
                    EventType::Delete,
                    KeyValue {
                        key: Bytes::copy_from_slice(k),
                        mod_revision: *main,
                        ..KeyValue::default()
                    },
                ),
            };
            out.push(Event {
                event_type,
                kv,
                prev_kv,
            });
        }
        out
    }
}

#[derive(Clone, Debug)]
enum TxnOp {
    Put(Vec<u8>, Vec<u8>, i64),
    Delete(Vec<u8>, Vec<u8>),
}

#[derive(Clone, Debug)]
enum Op {
    Txn(Vec<TxnOp>),
    Compact(u8),
    Range(Vec<u8>, Vec<u8>, u8, usize),
    Events(Vec<u8>, Vec<u8>, u8, usize),
    Reopen,
}

fn key() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        Just(b"a".to_vec()),
        Just(b"b".to_vec()),
        Just(b"b/1".to_vec()),
        Just(b"b/2".to_vec()),
        Just(b"c".to_vec()),
        Just(b"d".to_vec()),
    ]
}

fn end() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        Just(Vec::new()),
        Just(vec![0u8]),
        Just(b"b0".to_vec()),
        Just(b"c".to_vec()),
        Just(b"e".to_vec()),
    ]
}

fn txn_op() -> impl Strategy<Value = TxnOp> {
    prop_oneof![
        3 => (key(), proptest::collection::vec(any::<u8>(), 0..20), 0i64..3)
            .prop_map(|(k, v, l)| TxnOp::Put(k, v, l)),
        1 => (key(), end()).prop_map(|(k, e)| TxnOp::Delete(k, e)),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => proptest::collection::vec(txn_op(), 0..4).prop_map(Op::Txn),
        1 => any::<u8>().prop_map(Op::Compact),
        3 => (key(), end(), any::<u8>(), 0usize..4).prop_map(|(k, e, r, l)| Op::Range(k, e, r, l)),
        2 => (key(), end(), any::<u8>(), 0usize..4).prop_map(|(k, e, r, l)| Op::Events(k, e, r, l)),
        1 => Just(Op::Reopen),
    ]
}

fn opts() -> MvccOptions {
    MvccOptions {
        segment_bytes: 4096,
        gc_live_percent: 60,
    }
}

fn run(ops: Vec<Op>) {
    let tmp = tempfile::tempdir().unwrap();
    let mut m = Mvcc::open(tmp.path(), opts()).unwrap();
    let mut model = Model::new();
    for op in ops {
        match op {
            Op::Txn(txn_ops) => {
                let mut t = m.write();
                let main = model.current + 1;
                let mut sub = 0;
                let mut expected_events = Vec::new();
                for top in txn_ops {
                    match top {
                        TxnOp::Put(k, v, lease) => {
                            let prev = t.put(&k, &v, lease);
                            let upto = model.history.len();
                            assert_eq!(prev, model.state_before(&k, upto));
                            model.history.push((main, sub, k.clone(), Some((v, lease))));
                            sub += 1;
                            expected_events.push(Event {
                                event_type: EventType::Put,
                                kv: model.state_before(&k, upto + 1).unwrap(),
                                prev_kv: prev,
                            });
                        }
                        TxnOp::Delete(k, e) => {
                            let deleted = t.delete_range(&k, &e);
                            let live: Vec<KeyValue> = model
                                .keys()
                                .iter()
                                .filter(|x| in_range(x, &k, &e))
                                .filter_map(|x| model.state_before(x, model.history.len()))
                                .collect();
                            assert_eq!(deleted, live);
                            for d in deleted {
                                model.history.push((main, sub, d.key.to_vec(), None));
                                sub += 1;
                                expected_events.push(Event {
                                    event_type: EventType::Delete,
                                    kv: KeyValue {
                                        key: d.key.clone(),
                                        mod_revision: main,
                                        ..KeyValue::default()
                                    },
                                    prev_kv: Some(d),
                                });
                            }
                        }
                    }
                }
                let (rev, events) = t.end();
                if sub > 0 {
                    model.current += 1;
                }
                assert_eq!(rev, model.current);
                assert_eq!(events, expected_events);
            }
            Op::Compact(x) => {
                let span = model.current - model.compact + 1;
                let rev = model.compact + (x as i64 % span);
                let res = m.compact(rev);
                if rev <= model.compact {
                    assert!(matches!(res, Err(Error::Compacted)), "{res:?}");
                } else {
                    res.unwrap();
                    model.compact = rev;
                }
            }
            Op::Range(k, e, r, limit) => {
                let rev = r as i64 % (model.current + 2);
                let o = RangeOptions {
                    revision: rev,
                    limit,
                    ..RangeOptions::default()
                };
                let res = m.reader().range(&k, &e, &o);
                if rev > model.current {
                    assert!(matches!(res, Err(Error::FutureRevision)));
                } else if rev > 0 && rev < model.compact {
                    assert!(matches!(res, Err(Error::Compacted)));
                } else {
                    let res = res.unwrap();
                    let read_at = if rev == 0 { model.current } else { rev };
                    let mut want = model.range(&k, &e, read_at);
                    assert_eq!(res.count, want.len());
                    assert_eq!(res.revision, model.current);
                    if limit > 0 {
                        want.truncate(limit);
                    }
                    assert_eq!(res.kvs, want);
                }
            }
            Op::Events(k, e, r, max) => {
                let from = 1 + r as i64 % (model.current + 1);
                let res = m.reader().events(&k, &e, from, model.current, true, max);
                if from < model.compact {
                    assert!(matches!(res, Err(Error::Compacted)));
                } else if from > model.compact {
                    let got = res.unwrap();
                    let want = model.events(&k, &e, from, model.current);
                    if max == 0 {
                        assert_eq!(got, want);
                    } else {
                        // Whole revisions only: a prefix of the history that ends at a
                        // revision boundary, cut only once `max` events were reached.
                        assert_eq!(got[..], want[..got.len()]);
                        if got.len() < want.len() {
                            assert!(got.len() >= max);
                            let last = got.last().unwrap().kv.mod_revision;
                            assert_ne!(want[got.len()].kv.mod_revision, last);
                        }
                        if let Some(last) = got.last() {
                            let start = got
                                .iter()
                                .position(|e| e.kv.mod_revision == last.kv.mod_revision)
                                .unwrap();
                            assert!(start < max);
                        }
                    }
                } else {
                    res.unwrap();
                }
            }
            Op::Reopen => {
                let hash = m.reader().hash();
                m.checkpoint(model.current as u64, b"m").unwrap();
                drop(m);
                m = Mvcc::open(tmp.path(), opts()).unwrap();
                assert_eq!(m.reader().hash(), hash);
                assert_eq!(m.reader().current_revision(), model.current);
                assert_eq!(m.reader().compact_revision(), model.compact);
            }
        }
    }
    let res = m
        .reader()
        .range(b"", b"\0", &RangeOptions::default())
        .unwrap();
    assert_eq!(res.kvs, model.range(b"", &[0], model.current));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]
    #[test]
    fn mvcc_matches_model(ops in proptest::collection::vec(op(), 1..60)) {
        run(ops);
    }
}
