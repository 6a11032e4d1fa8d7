//! The member's durable Raft state: WAL record formats, the checkpoint's state-machine meta,
//! and recovery at start (ARCHITECTURE.md "Start-up and recovery").

use std::path::Path;
use std::time::{Duration, Instant};

use bytes::{Buf, BufMut, Bytes};
use engine::{Mvcc, MvccOptions, Wal, WalOptions};
use raft::{
    ConfChange, ConfChangeType, ConfState, Entry, EntryType, HardState, MemStorage, Snapshot,
    SnapshotMetadata, Storage,
};
use tracing::info;

use super::membership::Membership;
use crate::logging::go_duration;

/// WAL record type of a Raft entry. Payload: `term u64 LE | entry type u8 | data`.
pub const REC_ENTRY: u8 = 1;
/// WAL record type of the Raft hard state. Payload: `term | vote | commit`, each u64 LE.
pub const REC_HARD_STATE: u8 = 2;
/// WAL record type of a snapshot marker: the log before `index` lives in the MVCC checkpoint.
/// Payload: `index | term`, each u64 LE.
pub const REC_SNAPSHOT: u8 = 3;
/// Directory under `member/` where a snapshot from the leader is received; installed (or
/// removed) by the raft core, or at the next start when the WAL already marks it.
pub const RECEIVED_SNAPSHOT_DIR: &str = "snapshot.received";
/// Size of each preallocated WAL segment (etcd's WAL segment size is 64 MB too).
pub const WAL_SEGMENT_BYTES: u64 = 64 * 1024 * 1024;

/// Encodes a Raft entry as a WAL record payload (see [`REC_ENTRY`]).
pub fn encode_entry(e: &Entry) -> Vec<u8> {
    let mut buf = Vec::with_capacity(9 + e.data.len());
    buf.put_u64_le(e.term);
    buf.put_u8(match e.entry_type {
        EntryType::Normal => 0,
        EntryType::ConfChange => 1,
    });
    buf.extend_from_slice(&e.data);
    buf
}

fn decode_entry(index: u64, mut payload: Bytes) -> Result<Entry, String> {
    if payload.len() < 9 {
        return Err(format!(
            "entry {index}: record of {} bytes is too short",
            payload.len()
        ));
    }
    let term = payload.get_u64_le();
    let entry_type = match payload.get_u8() {
        0 => EntryType::Normal,
        1 => EntryType::ConfChange,
        t => return Err(format!("entry {index}: unknown entry type {t}")),
    };
    Ok(Entry {
        term,
        index,
        entry_type,
        data: payload,
    })
}

/// `values` as consecutive u64 LE.
pub fn encode_u64s(values: &[u64]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

fn decode_u64s<const N: usize>(what: &str, mut payload: Bytes) -> Result<[u64; N], String> {
    if payload.len() != 8 * N {
        return Err(format!(
            "{what} record has {} bytes, want {}",
            payload.len(),
            8 * N
        ));
    }
    Ok(std::array::from_fn(|_| payload.get_u64_le()))
}

/// Magic that starts a checkpoint meta of [`StateMeta::encode`]'s format. A meta without it
/// is the lease table alone (the format before membership was kept).
const STATE_META_MAGIC: &[u8; 8] = b"CAIRNSM1";

/// The state machine's parts kept beside the key index in an MVCC checkpoint's meta bytes.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct StateMeta {
    /// The lessor's table ([`crate::lease::Lessor::encode`]).
    pub lessor: Vec<u8>,
    /// The member table, if the checkpoint holds one.
    pub membership: Option<Membership>,
    /// The raised alarms (none in checkpoints written before alarms existed).
    pub alarms: crate::alarm::AlarmStore,
    /// The auth store (empty and disabled in checkpoints written before auth existed).
    pub auth: crate::auth::store::AuthStore,
}

impl StateMeta {
    /// `magic "CAIRNSM1" | lessor_len u32 | lessor | membership_len u32 | membership |
    /// alarms_len u32 | alarms | auth_len u32 | auth` (little-endian; membership_len 0 =
    /// none; the alarm and auth parts are absent in checkpoints written before they
    /// existed; auth as [`crate::auth::store::AuthStore::encode`]).
    pub fn encode(&self) -> Vec<u8> {
        let members = self.membership.as_ref().map(Membership::encode);
        let members = members.unwrap_or_default();
        let mut buf = Vec::with_capacity(16 + self.lessor.len() + members.len());
        buf.extend_from_slice(STATE_META_MAGIC);
        buf.put_u32_le(self.lessor.len() as u32);
        buf.extend_from_slice(&self.lessor);
        buf.put_u32_le(members.len() as u32);
        buf.extend_from_slice(&members);
        let alarms = self.alarms.encode();
        buf.put_u32_le(alarms.len() as u32);
        buf.extend_from_slice(&alarms);
        let auth = self.auth.encode();
        buf.put_u32_le(auth.len() as u32);
        buf.extend_from_slice(&auth);
        buf
    }

    /// Parses [`StateMeta::encode`]'s bytes, or the older lease-table-only meta.
    pub fn decode(meta: &[u8]) -> Result<StateMeta, String> {
        let Some(mut buf) = meta.strip_prefix(STATE_META_MAGIC.as_slice()) else {
            return Ok(StateMeta {
                lessor: meta.to_vec(),
                membership: None,
                alarms: Default::default(),
                auth: Default::default(),
            });
        };
        // `None` once the bytes are used up (a part the writer's version did not have).
        let mut part = |what: &str| -> Result<Option<Vec<u8>>, String> {
            if buf.is_empty() {
                return Ok(None);
            }
            if buf.remaining() < 4 {
                return Err(format!("checkpoint meta: {what} length is truncated"));
            }
            let len = buf.get_u32_le() as usize;
            if buf.remaining() < len {
                return Err(format!("checkpoint meta: {what} is truncated"));
            }
            let bytes = buf[..len].to_vec();
            buf.advance(len);
            Ok(Some(bytes))
        };
        let required = |p: Option<Vec<u8>>, what: &str| {
            p.ok_or_else(|| format!("checkpoint meta: {what} length is truncated"))
        };
        let lessor = required(part("lease table")?, "lease table")?;
        let members = required(part("membership")?, "membership")?;
        let membership = if members.is_empty() {
            None
        } else {
            Some(Membership::decode(&members)?)
        };
        let alarms = match part("alarms")? {
            None => crate::alarm::AlarmStore::default(),
            Some(bytes) => crate::alarm::AlarmStore::decode(&bytes)?,
        };
        let auth = match part("auth")? {
            None => crate::auth::store::AuthStore::default(),
            Some(bytes) => crate::auth::store::AuthStore::decode(&bytes)?,
        };
        Ok(StateMeta {
            lessor,
            membership,
            alarms,
            auth,
        })
    }
}

/// What recovery found.
pub struct Recovered {
    /// The MVCC store at its checkpoint.
    pub mvcc: Mvcc,
    /// The WAL, opened for appending.
    pub wal: Wal,
    /// The Raft log after the newest snapshot marker, with hard and conf state.
    pub storage: MemStorage,
    /// The checkpoint's applied index.
    pub applied: u64,
    /// The checkpoint's state-machine meta.
    pub meta: StateMeta,
    /// The member table as of `applied`.
    pub membership: Membership,
    /// The recovered hard state.
    pub hard_state: HardState,
    /// The `member/` folder.
    pub member_dir: std::path::PathBuf,
}

/// Opens the member's storage under `member_dir` and recovers: MVCC from its checkpoint,
/// the Raft log and hard state from the WAL. `initial` is the member table a new member
/// bootstraps with (from `--initial-cluster`, kept in `member/meta.json`); a checkpoint's
/// table wins over it. A data dir that etcd wrote is imported first
/// ([`super::import::import_etcd_data`]). A brand-new member of a new cluster writes etcd's bootstrap entries
/// ([`bootstrap`]); a member joining an existing cluster (`join`) starts with an empty log
/// and learns everything from the leader.
pub fn recover(member_dir: &Path, initial: Membership, join: bool) -> Result<Recovered, String> {
    if !join {
        super::import::import_etcd_data(member_dir, &initial)?;
    }
    let opened = open_store_and_wal(member_dir)?;
    let (mut mvcc, (mut wal, records)) = (opened.mvcc, opened.wal);
    let wal_records = records.len();
    finish_snapshot_install(member_dir, &mut mvcc, &records)?;
    let (applied, meta) = mvcc.checkpoint_state();
    let meta = StateMeta::decode(&meta)?;
    let membership = meta.membership.clone().unwrap_or(initial);
    let conf_state = ConfState {
        voters: membership.voters(),
        learners: membership.learners(),
    };
    let mut storage = MemStorage::new_with_conf_state(conf_state.clone());

    // The latest snapshot marker decides where the in-memory log starts.
    let mut snapshot = (0u64, 0u64);
    for rec in records.iter().filter(|r| r.record_type == REC_SNAPSHOT) {
        let [index, term] = decode_u64s::<2>("snapshot", rec.payload.clone())?;
        if index > snapshot.0 {
            snapshot = (index, term);
        }
    }
    if snapshot.0 > 0 {
        storage
            .apply_snapshot(Snapshot {
                metadata: SnapshotMetadata {
                    index: snapshot.0,
                    term: snapshot.1,
                    conf_state,
                },
                data: Bytes::new(),
            })
            .map_err(|e| format!("cannot restore the log at snapshot {}: {e}", snapshot.0))?;
    }
    let mut hard_state = HardState::default();
    if records.is_empty() && applied == 0 && !join {
        hard_state = bootstrap(&mut wal, &mut storage, &membership)?;
    }
    for rec in records {
        match rec.record_type {
            REC_ENTRY if rec.index > snapshot.0 => {
                let entry = decode_entry(rec.index, rec.payload)?;
                storage
                    .append(&[entry])
                    .map_err(|e| format!("WAL entry {}: {e}", rec.index))?;
            }
            REC_ENTRY | REC_SNAPSHOT => {}
            REC_HARD_STATE => {
                let [term, vote, commit] = decode_u64s::<3>("hard state", rec.payload)?;
                hard_state = HardState { term, vote, commit };
            }
            other => {
                return Err(format!(
                    "WAL record type {other} at index {} is unknown",
                    rec.index
                ))
            }
        }
    }
    hard_state.commit = hard_state.commit.max(snapshot.0).max(applied);
    let last_index = storage.last_index().map_err(|e| e.to_string())?;
    if applied > last_index {
        return Err(format!(
            "the MVCC checkpoint is at index {applied} but the WAL ends at {last_index}: the WAL lost entries"
        ));
    }
    storage.set_hard_state(hard_state);
    info!(
        applied,
        last_index,
        term = hard_state.term,
        commit = hard_state.commit,
        "wal-records" = wal_records,
        "store-open-took" = %go_duration(opened.store_took),
        "wal-open-took" = %go_duration(opened.wal_took),
        "recovered"
    );
    Ok(Recovered {
        mvcc,
        wal,
        storage,
        applied,
        meta,
        membership,
        hard_state,
        member_dir: member_dir.to_path_buf(),
    })
}

/// The store and the WAL, opened side by side, and how long each took.
struct Opened {
    mvcc: Mvcc,
    wal: (Wal, Vec<engine::WalRecord>),
    store_took: Duration,
    wal_took: Duration,
}

/// Opens the MVCC store (this thread) and the WAL (a second thread) at once: they are
/// independent files, and each costs about as much as the other at 1,000,000 keys with a
/// 100,000-entry WAL tail (ARCHITECTURE.md "Start-up and recovery").
fn open_store_and_wal(member_dir: &Path) -> Result<Opened, String> {
    let wal_dir = member_dir.join("wal");
    let open_wal = || {
        let started = Instant::now();
        let options = WalOptions {
            segment_bytes: WAL_SEGMENT_BYTES,
        };
        (Wal::open(&wal_dir, options), started.elapsed())
    };
    let ((mvcc, store_took), (wal, wal_took)) = std::thread::scope(|scope| {
        let wal = std::thread::Builder::new()
            .name("cairn-wal-open".into())
            .spawn_scoped(scope, open_wal)
            .map_err(|e| format!("cannot start the thread opening the WAL: {e}"))?;
        let started = Instant::now();
        let mvcc = Mvcc::open(&member_dir.join("kv"), MvccOptions::default());
        let store = (mvcc, started.elapsed());
        let wal = wal.join().unwrap_or_else(|p| std::panic::resume_unwind(p));
        Ok::<_, String>((store, wal))
    })?;
    Ok(Opened {
        mvcc: mvcc.map_err(|e| format!("cannot open the MVCC store: {e}"))?,
        wal: wal.map_err(|e| format!("cannot open the WAL: {e}"))?,
        store_took,
        wal_took,
    })
}

/// A snapshot from the leader whose WAL marker is durable but whose install into the store
/// did not finish before a crash is installed now; a received snapshot the WAL does not
/// mark is dropped (Raft had not accepted it).
fn finish_snapshot_install(
    member_dir: &Path,
    mvcc: &mut Mvcc,
    records: &[engine::WalRecord],
) -> Result<(), String> {
    let received = member_dir.join(RECEIVED_SNAPSHOT_DIR);
    let mut marker = 0;
    for rec in records.iter().filter(|r| r.record_type == REC_SNAPSHOT) {
        let [index, _] = decode_u64s::<2>("snapshot", rec.payload.clone())?;
        marker = marker.max(index);
    }
    let applied = mvcc.checkpoint_state().0;
    let held = engine::received_applied_index(&received).unwrap_or(None);
    if marker > applied {
        if held != Some(marker) {
            return Err(format!(
                "the WAL starts at a snapshot at index {marker} but the store is at {applied} and no received snapshot holds it: this member's data is incomplete; remove it and add the member again"
            ));
        }
        mvcc.install(&received)
            .map_err(|e| format!("cannot finish installing the snapshot at {marker}: {e}"))?;
        info!(
            index = marker,
            "finished installing a snapshot received before the restart"
        );
    } else if received.exists() {
        std::fs::remove_dir_all(&received)
            .map_err(|e| format!("cannot remove {}: {e}", received.display()))?;
    }
    Ok(())
}

/// Writes a new member's first log entries, as etcd's bootstrap does: one committed
/// term-1 ConfChange (AddNode, context = the member) per initial member, by ID, so that
/// every initial member starts with the same log, a member that joins later rebuilds the
/// member table from the log, and the first leader's term is 2, as etcd reports.
fn bootstrap(
    wal: &mut Wal,
    storage: &mut MemStorage,
    membership: &Membership,
) -> Result<HardState, String> {
    let entries: Vec<Entry> = membership
        .members()
        .enumerate()
        .map(|(i, m)| Entry {
            term: 1,
            index: i as u64 + 1,
            entry_type: EntryType::ConfChange,
            data: ConfChange {
                change_type: if m.is_learner {
                    ConfChangeType::AddLearnerNode
                } else {
                    ConfChangeType::AddNode
                },
                node_id: m.id,
                context: Bytes::from(m.to_raft_context()),
            }
            .encode(),
        })
        .collect();
    let last = entries.len() as u64;
    let hard_state = HardState {
        term: 1,
        vote: 0,
        commit: last,
    };
    let write = |wal: &mut Wal| -> engine::Result<()> {
        for e in &entries {
            wal.append(REC_ENTRY, e.index, &encode_entry(e))?;
        }
        wal.append(REC_HARD_STATE, 0, &encode_u64s(&[1, 0, last]))?;
        wal.sync()
    };
    write(wal).map_err(|e| format!("cannot write the bootstrap entries to the WAL: {e}"))?;
    storage
        .append(&entries)
        .map_err(|e| format!("bootstrap entries: {e}"))?;
    Ok(hard_state)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::membership::MemberInfo;

    #[test]
    fn state_meta_round_trip_and_legacy() {
        let meta = StateMeta {
            lessor: vec![1, 2, 3],
            membership: Some(Membership::new([MemberInfo {
                id: 7,
                name: "a".into(),
                peer_urls: vec!["http://127.0.0.1:2380".into()],
                client_urls: vec![],
                is_learner: false,
            }])),
            alarms: crate::alarm::AlarmStore::from_list([(7, crate::alarm::ALARM_NOSPACE)]),
            auth: {
                let mut auth = crate::auth::store::AuthStore::default();
                auth.role_add("r").unwrap();
                auth
            },
        };
        assert_eq!(StateMeta::decode(&meta.encode()).unwrap(), meta);
        let legacy = StateMeta::decode(&[1, 0, 0, 0, 0]).unwrap();
        assert_eq!(legacy.lessor, vec![1, 0, 0, 0, 0]);
        assert!(legacy.membership.is_none());
        let bytes = meta.encode();
        assert!(StateMeta::decode(&bytes[..bytes.len() - 1]).is_err());
    }
}
