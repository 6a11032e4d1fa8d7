//! Read safety: a linearizable read (ReadIndex, Raft thesis §6.4) served on member
//! M once M's applied index reaches the read index R must see every write that was
//! acknowledged before the read was requested. A write counts as acknowledged from
//! the moment any member applied it (the earliest a client could hear of it).
//!
//! Checked twice: when M receives R (R must be at least the index of the newest
//! acknowledged write, because the server may serve the read as soon as it applied
//! R), and when M serves the read (each register must hold that write or a later
//! one). After every step no answered read may be left unserved past its index.

use bytes::Bytes;
use raft::{Entry, EntryType};

use super::super::kv::{Kv, Put, KEYS};
use super::NodeView;

/// What a read must see: the newest acknowledged write overall and per register.
#[derive(Clone, Copy, Debug)]
pub struct ReadFloor {
    /// Index of the newest acknowledged entry when the read was requested.
    pub index: u64,
    /// Per register, the index of its newest acknowledged put.
    pub registers: [u64; KEYS],
    /// Step at which the read was requested.
    pub requested_at: u64,
}

/// A read answered with read index `index`, waiting to be served.
#[derive(Clone, Debug)]
pub struct WaitingRead {
    /// Read index.
    pub index: u64,
    /// The request's context.
    pub ctx: Bytes,
    /// What it must see.
    pub floor: ReadFloor,
}

/// Acknowledged writes.
#[derive(Default)]
pub struct ReadSafety {
    acked_index: u64,
    acked_registers: [u64; KEYS],
    /// Reads served and checked.
    pub served: u64,
}

impl ReadSafety {
    /// Some member applied `e`: from now on it is acknowledged.
    pub fn on_apply(&mut self, e: &Entry) {
        self.acked_index = self.acked_index.max(e.index);
        if e.entry_type == EntryType::Normal {
            if let Some(p) = Put::decode(&e.data) {
                let r = &mut self.acked_registers[p.key as usize];
                *r = (*r).max(e.index);
            }
        }
    }

    /// The floor of a read requested now (step `now`).
    pub fn floor(&self, now: u64) -> ReadFloor {
        ReadFloor {
            index: self.acked_index,
            registers: self.acked_registers,
            requested_at: now,
        }
    }

    /// Member `id` got read index `index` for a read with `floor`.
    pub fn on_read_state(
        &self,
        id: u64,
        ctx: &[u8],
        index: u64,
        floor: &ReadFloor,
    ) -> Result<(), String> {
        if index < floor.index {
            return Err(format!(
                "read safety: node {id} got read index {index} for read {ctx:?} requested at step {}, \
                 but entry {} was acknowledged before",
                floor.requested_at, floor.index
            ));
        }
        Ok(())
    }

    /// Member `id` serves `read` from state `kv` (normally applied at least up to
    /// `read.index`; what is checked is what the read returns).
    pub fn on_serve(&mut self, id: u64, read: &WaitingRead, kv: &Kv) -> Result<(), String> {
        for (k, (&floor, reg)) in read.floor.registers.iter().zip(&kv.registers).enumerate() {
            if reg.index < floor {
                return Err(format!(
                    "read safety: node {id} served read {:?} (read index {}, applied {}) with register {k} \
                     written at {}, but the write at {floor} was acknowledged before the read (step {})",
                    read.ctx, read.index, kv.applied, reg.index, read.floor.requested_at
                ));
            }
        }
        self.served += 1;
        Ok(())
    }
}

/// No answered read is left waiting once its member applied its read index.
pub fn check(nodes: &[NodeView]) -> Result<(), String> {
    for n in nodes {
        let Some(kv) = n.kv else { continue };
        if let Some(r) = n.waiting_reads.iter().find(|r| r.index <= kv.applied) {
            return Err(format!(
                "node {}: read {:?} with read index {} not served although applied is {}",
                n.id, r.ctx, r.index, kv.applied
            ));
        }
    }
    Ok(())
}
