//! A simulated disk holding one member's WAL, as the server's raft core writes it:
//! records appended in order, a synced prefix and an unsynced tail. A crash keeps the
//! synced prefix and, with a torn tail, any prefix of the unsynced records (a WAL
//! reader stops at the first record that did not make it); everything else is lost.
//! A restarted member is rebuilt from these records only.

use bytes::Bytes;
use raft::{ConfState, Entry, HardState, MemStorage, Snapshot, Storage};

use super::rng::Rng;

/// One WAL record.
#[derive(Clone, Debug)]
pub enum Record {
    /// A log entry from a Ready's `entries` (replaces any stored entry at its index
    /// and everything after it).
    Entry(Entry),
    /// A Ready's `hard_state`.
    HardState(HardState),
    /// A snapshot received from the leader (a Ready's `snapshot`), state machine
    /// image included.
    Snapshot(Snapshot),
    /// The member's own checkpoint: its state machine image at `snapshot`'s index,
    /// after which entries up to `compact_to` are discarded.
    Checkpoint {
        /// Image, index, term and membership at that index.
        snapshot: Snapshot,
        /// Last discarded index.
        compact_to: u64,
    },
}

/// The durable state of one member.
#[derive(Clone, Debug)]
pub struct Disk {
    /// What the member was created with (initial membership and bootstrap log).
    bootstrap: MemStorage,
    records: Vec<Record>,
    /// `records[..synced]` survive any crash.
    synced: usize,
}

/// What a member restarts from.
pub struct Recovered {
    /// The log, hard state and membership raft will read.
    pub storage: MemStorage,
    /// The newest state machine image (`None` for the bootstrap state) and its index.
    pub image: Option<(u64, Bytes)>,
}

impl Disk {
    /// A disk holding only `bootstrap`, durable.
    pub fn new(bootstrap: MemStorage) -> Disk {
        Disk {
            bootstrap,
            records: Vec::new(),
            synced: 0,
        }
    }

    /// Appends `r` to the unsynced tail.
    pub fn write(&mut self, r: Record) {
        self.records.push(r);
    }

    /// fsync: everything written so far is durable.
    pub fn sync(&mut self) {
        self.synced = self.records.len();
    }

    /// Records written but not yet synced.
    pub fn unsynced(&self) -> usize {
        self.records.len() - self.synced
    }

    /// Power loss: the unsynced tail is lost, except (with `torn`) a random prefix of
    /// it. Returns how many records were lost.
    pub fn crash(&mut self, rng: &mut Rng, torn: bool) -> usize {
        let tail = self.unsynced() as u64;
        let kept = if torn && tail > 0 {
            rng.below(tail + 1)
        } else {
            0
        };
        let keep = self.synced + kept as usize;
        let lost = self.records.len() - keep;
        self.records.truncate(keep);
        self.synced = keep;
        lost
    }

    /// Replays the durable records into a fresh storage, as the server's `open` does
    /// from its WAL. Errors describe a record that cannot be replayed (a WAL the
    /// member wrote out of order).
    pub fn recover(&self) -> Result<Recovered, String> {
        let mut storage = self.bootstrap.clone();
        let mut image = None;
        let mut hard_state = storage.hard_state();
        for (i, r) in self.records[..self.synced].iter().enumerate() {
            match r {
                Record::Entry(e) => storage
                    .append(std::slice::from_ref(e))
                    .map_err(|err| format!("WAL record {i}: entry {}: {err}", e.index))?,
                Record::HardState(hs) => hard_state = *hs,
                Record::Snapshot(s) => {
                    storage
                        .apply_snapshot(s.clone())
                        .map_err(|err| format!("WAL record {i}: snapshot: {err}"))?;
                    image = Some((s.metadata.index, s.data.clone()));
                }
                Record::Checkpoint {
                    snapshot,
                    compact_to,
                } => {
                    let meta = &snapshot.metadata;
                    storage
                        .create_snapshot(meta.index, meta.conf_state.clone(), snapshot.data.clone())
                        .map_err(|err| {
                            format!("WAL record {i}: checkpoint {}: {err}", meta.index)
                        })?;
                    storage.set_conf_state(meta.conf_state.clone());
                    if *compact_to > storage.first_index().unwrap_or(1) - 1 {
                        storage.compact(*compact_to).map_err(|err| {
                            format!("WAL record {i}: compact {compact_to}: {err}")
                        })?;
                    }
                    image = Some((meta.index, snapshot.data.clone()));
                }
            }
        }
        // The membership raft starts with is the one of the newest image: conf changes
        // after it are applied again from the log (etcd does the same).
        if let Some(snap) = storage.snapshot(0).ok().filter(|s| !s.is_empty()) {
            storage.set_conf_state(snap.metadata.conf_state.clone());
        }
        let floor = image.as_ref().map_or(0, |(index, _)| *index);
        hard_state.term = hard_state.term.max(storage.hard_state().term);
        hard_state.commit = hard_state.commit.max(floor);
        storage.set_hard_state(hard_state);
        Ok(Recovered { storage, image })
    }

    /// The membership a brand-new member starts with: none (it learns it from the
    /// leader's log or snapshot).
    pub fn empty() -> Disk {
        Disk::new(MemStorage::new_with_conf_state(ConfState::default()))
    }
}
