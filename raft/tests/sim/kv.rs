//! The replicated state machine: a few registers written by client puts, plus the
//! set of removed member ids (etcd keeps membership in its backend too), and a hash
//! of every applied entry so that two members' applied prefixes can be compared.

use std::collections::BTreeSet;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use raft::Entry;

/// Number of registers (keys); few, so that reads and writes collide.
pub const KEYS: usize = 4;

/// A client put, carried as a Normal entry's data: `b'P' key:u8 write_id:u64le`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Put {
    /// Register written, `< KEYS`.
    pub key: u8,
    /// Unique id of the write (the value written).
    pub write_id: u64,
}

impl Put {
    /// Entry data for this put.
    pub fn encode(&self) -> Bytes {
        let mut b = BytesMut::with_capacity(10);
        b.put_u8(b'P');
        b.put_u8(self.key);
        b.put_u64_le(self.write_id);
        b.freeze()
    }

    /// The put in `data`, or `None` for any other data (empty leader entries).
    pub fn decode(data: &[u8]) -> Option<Put> {
        if data.len() != 10 || data[0] != b'P' || data[1] as usize >= KEYS {
            return None;
        }
        let mut rest = &data[2..];
        Some(Put {
            key: data[1],
            write_id: rest.get_u64_le(),
        })
    }
}

/// What a register holds: the last write and the log index that wrote it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Register {
    /// Write id (0 = never written).
    pub write_id: u64,
    /// Index of the entry that wrote it (0 = never written).
    pub index: u64,
}

/// The state machine of one member.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Kv {
    /// Index of the last applied entry.
    pub applied: u64,
    /// Hash chained over every applied entry (index, term, type, data).
    pub hash: u64,
    /// The registers.
    pub registers: [Register; KEYS],
    /// Members removed by an applied conf change; their messages are dropped by the
    /// transport (etcd rafthttp refuses removed members).
    pub removed: BTreeSet<u64>,
}

impl Kv {
    /// Applies `e` (the next entry): chains the hash, performs a put, records a
    /// removed member.
    pub fn apply(&mut self, e: &Entry) {
        assert_eq!(e.index, self.applied + 1, "entries are applied in order");
        self.applied = e.index;
        self.hash = chain(self.hash, e);
        if e.entry_type == raft::EntryType::ConfChange {
            if let Ok(cc) = raft::ConfChange::decode(&e.data) {
                if cc.change_type == raft::ConfChangeType::RemoveNode {
                    self.removed.insert(cc.node_id);
                }
            }
        }
        if let Some(p) = Put::decode(&e.data) {
            if e.entry_type == raft::EntryType::Normal {
                self.registers[p.key as usize] = Register {
                    write_id: p.write_id,
                    index: e.index,
                };
            }
        }
    }

    /// The image stored in snapshots: `applied hash registers*KEYS n_removed removed*`.
    pub fn encode(&self) -> Bytes {
        let mut b = BytesMut::new();
        b.put_u64_le(self.applied);
        b.put_u64_le(self.hash);
        for r in &self.registers {
            b.put_u64_le(r.write_id);
            b.put_u64_le(r.index);
        }
        b.put_u64_le(self.removed.len() as u64);
        for id in &self.removed {
            b.put_u64_le(*id);
        }
        b.freeze()
    }

    /// Decodes [`Kv::encode`]; `None` for anything else (a bogus snapshot).
    pub fn decode(mut data: &[u8]) -> Option<Kv> {
        let fixed = 16 + 16 * KEYS + 8;
        if data.len() < fixed {
            return None;
        }
        let mut kv = Kv {
            applied: data.get_u64_le(),
            hash: data.get_u64_le(),
            ..Kv::default()
        };
        for r in kv.registers.iter_mut() {
            r.write_id = data.get_u64_le();
            r.index = data.get_u64_le();
        }
        let n = data.get_u64_le();
        if data.len() as u64 != n.checked_mul(8)? {
            return None;
        }
        for _ in 0..n {
            kv.removed.insert(data.get_u64_le());
        }
        Some(kv)
    }
}

/// FNV-style chaining of one entry into a running hash.
fn chain(hash: u64, e: &Entry) -> u64 {
    let mut h = hash ^ e.term.wrapping_mul(0x100_0000_01B3) ^ e.index.rotate_left(17);
    h ^= u64::from(e.entry_type == raft::EntryType::ConfChange) << 63;
    for b in e.data.iter() {
        h = (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01B3);
    }
    h
}

/// A digest of one entry's content (type and data), for the log-matching registry.
pub fn digest(e: &Entry) -> u64 {
    chain(
        0,
        &Entry {
            term: 0,
            index: 0,
            ..e.clone()
        },
    )
}
