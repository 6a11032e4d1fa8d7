//! Starting on a data dir that upstream etcd wrote: the member's `member/snap/db` (etcd's
//! bbolt backend, as `etcdctl snapshot restore` leaves it or as a stopped etcd member
//! keeps it) is imported into Cairn's store on first start (issue 10, ARCHITECTURE.md
//! "Migration from etcd").
//!
//! What is read (layout in [`engine::etcd_backend`]): every revision of the `key` bucket
//! with its history, the compaction revisions and the consistent index from `meta`, the
//! leases, and the member table. The member table comes from the `members` bucket for a
//! stopped member's own dir, and from the flags (`--initial-cluster`) for a restored one:
//! `etcdctl snapshot restore` leaves the old cluster's members in the bucket and writes the
//! new ones to a term-1 v2 snapshot `member/snap/0000000000000001-<index>.snap` whose index
//! is the db's consistent index, which is how a restored dir is recognised.
//!
//! Crash safety: the store is built in `member/kv.import` and a Cairn WAL in
//! `member/wal.import`; then etcd's WAL moves aside to `member/wal.etcd`, the new WAL
//! takes its place, and `kv.import` becomes `kv` last. A start that finds no `member/kv`
//! redoes the whole import. A damaged or unreadable db fails the start with the reason,
//! and nothing is renamed.

use std::path::Path;
use std::time::Instant;

use engine::etcd_backend::{
    parse_revision_key, BackendReader, StoredAlarm, StoredKeyValue, StoredLease, StoredMember,
    BUCKET_ALARM, BUCKET_AUTH, BUCKET_AUTH_ROLES, BUCKET_AUTH_USERS, BUCKET_KEY, BUCKET_LEASE,
    BUCKET_MEMBERS, BUCKET_META, META_CONSISTENT_INDEX, META_FINISHED_COMPACT,
    META_SCHEDULED_COMPACT, META_TERM,
};
use engine::{ImportedRevision, Mvcc, MvccOptions, Wal, WalOptions};
use prost::Message;
use tracing::info;

use super::membership::{MemberInfo, Membership};
use super::storage::{encode_u64s, StateMeta, REC_HARD_STATE, REC_SNAPSHOT, WAL_SEGMENT_BYTES};
use crate::logging::go_duration;

/// What an import read, for its log line and for tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportReport {
    /// Revisions imported into the store (orphan tombstones excluded).
    pub revisions: u64,
    /// The store's revision after the import.
    pub revision: i64,
    /// The compact revision.
    pub compact_revision: i64,
    /// Leases.
    pub leases: usize,
    /// Members of the member table the store starts with.
    pub members: usize,
    /// The db's consistent index: the Raft index the member starts at.
    pub consistent_index: u64,
    /// The membership came from the db's `members` bucket (else from the flags).
    pub members_from_db: bool,
}

fn be_u64(what: &str, v: &[u8]) -> Result<u64, String> {
    let bytes: [u8; 8] = v
        .try_into()
        .map_err(|_| format!("meta {what} has {} bytes, want 8", v.len()))?;
    Ok(u64::from_be_bytes(bytes))
}

fn compact_rev(what: &str, v: Option<Vec<u8>>) -> Result<i64, String> {
    match v {
        None => Ok(0),
        Some(v) => parse_revision_key(&v)
            .map(|(main, _, _)| main)
            .ok_or_else(|| format!("meta {what} is not a revision")),
    }
}

/// Whether `member/snap` holds the term-1 v2 snapshot at `index` that `etcdctl snapshot
/// restore` writes (etcd `snap.Snapshotter` names: `%016x-%016x.snap`, term then index).
fn restored_by_etcdctl(member_dir: &Path, index: u64) -> bool {
    member_dir
        .join("snap")
        .join(format!("{:016x}-{:016x}.snap", 1, index))
        .is_file()
}

/// Imports `member/snap/db` when this member has no Cairn store yet (see the module doc).
/// Returns `None` when there is nothing to import. Errors: the db is damaged, unreadable or
/// not an etcd backend (the message names the file and the reason), or the import's files
/// cannot be written.
pub fn import_etcd_data(
    member_dir: &Path,
    initial: &Membership,
) -> Result<Option<ImportReport>, String> {
    let db = member_dir.join("snap").join("db");
    if member_dir.join("kv").exists() || !db.is_file() {
        return Ok(None);
    }
    let started = Instant::now();
    info!(path = %db.display(), "importing the etcd backend found in the data dir");
    let kv_tmp = member_dir.join("kv.import");
    let wal_tmp = member_dir.join("wal.import");
    for leftover in [&kv_tmp, &wal_tmp] {
        if leftover.exists() {
            std::fs::remove_dir_all(leftover)
                .map_err(|e| format!("cannot remove {}: {e}", leftover.display()))?;
        }
    }
    let imported = build_store(&db, &kv_tmp, member_dir, initial);
    let (report, term) = match imported {
        Ok(done) => done,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&kv_tmp);
            return Err(format!("cannot import {}: {e}", db.display()));
        }
    };
    // The Raft log starts at the consistent index, as a snapshot there.
    let index = report.consistent_index;
    let write_wal = || -> engine::Result<()> {
        let options = WalOptions {
            segment_bytes: WAL_SEGMENT_BYTES,
        };
        let (mut wal, _) = Wal::open(&wal_tmp, options)?;
        wal.append(REC_SNAPSHOT, index, &encode_u64s(&[index, term]))?;
        wal.append(REC_HARD_STATE, 0, &encode_u64s(&[term, 0, index]))?;
        wal.sync()
    };
    write_wal().map_err(|e| format!("cannot write the WAL of the imported store: {e}"))?;
    let wal = member_dir.join("wal");
    let etcd_wal = member_dir.join("wal.etcd");
    let rename = |from: &Path, to: &Path| {
        std::fs::rename(from, to)
            .map_err(|e| format!("cannot rename {} to {}: {e}", from.display(), to.display()))
    };
    if wal.exists() {
        if etcd_wal.exists() {
            // A Cairn WAL of an import that crashed before `kv` existed.
            std::fs::remove_dir_all(&wal)
                .map_err(|e| format!("cannot remove {}: {e}", wal.display()))?;
        } else {
            rename(&wal, &etcd_wal)?;
        }
    }
    rename(&wal_tmp, &wal)?;
    rename(&kv_tmp, &member_dir.join("kv"))?;
    engine_sync_dir(member_dir)?;
    info!(
        revisions = report.revisions,
        revision = report.revision,
        "compact-revision" = report.compact_revision,
        leases = report.leases,
        members = report.members,
        "members-from-db" = report.members_from_db,
        "consistent-index" = report.consistent_index,
        took = %go_duration(started.elapsed()),
        "imported the etcd backend"
    );
    Ok(Some(report))
}

fn engine_sync_dir(dir: &Path) -> Result<(), String> {
    std::fs::File::open(dir)
        .and_then(|f| f.sync_all())
        .map_err(|e| format!("cannot sync {}: {e}", dir.display()))
}

/// Reads `db` into a new store at `kv_dir` and checkpoints it. Returns the report and the
/// Raft term to start at.
fn build_store(
    db: &Path,
    kv_dir: &Path,
    member_dir: &Path,
    initial: &Membership,
) -> Result<(ImportReport, u64), String> {
    BackendReader::open(db, |r| {
        r.check()?;
        let mut mvcc = Mvcc::open(kv_dir, MvccOptions::default())?;
        let mut revisions = 0u64;
        let mut bad = None;
        r.for_each(BUCKET_KEY, |k, v| {
            let Some((main, sub, tombstone)) = parse_revision_key(k) else {
                bad = Some(format!(
                    "the key bucket holds a key that is not a revision: {k:?}"
                ));
                return Err(engine::Error::InvalidOptions("bad revision key".into()));
            };
            let kv = StoredKeyValue::decode(v).map_err(|e| {
                engine::Error::InvalidOptions(format!("revision {main}.{sub}: bad KeyValue: {e}"))
            })?;
            if mvcc.import_revision(&ImportedRevision::from_stored((main, sub, tombstone), &kv))? {
                revisions += 1;
            }
            Ok(())
        })
        .map_err(|e| match bad.take() {
            Some(b) => engine::Error::InvalidOptions(b),
            None => e,
        })?;
        Ok((mvcc, revisions, read_rest(r, member_dir, initial)))
    })
    .map_err(|e| e.to_string())
    .and_then(|(mut mvcc, revisions, rest)| {
        let (rest, lessor) = rest?;
        let compact = rest.finished_compact.max(rest.scheduled_compact);
        let revision = mvcc
            .finish_import(compact)
            .map_err(|e| format!("cannot compact the imported store at {compact}: {e}"))?;
        let meta = StateMeta {
            lessor,
            membership: Some(rest.membership.clone()),
            alarms: rest.alarms.clone(),
            auth: rest.auth.clone(),
        };
        mvcc.checkpoint(rest.consistent_index, &meta.encode())
            .map_err(|e| format!("cannot checkpoint the imported store: {e}"))?;
        Ok((
            ImportReport {
                revisions,
                revision,
                compact_revision: compact,
                leases: rest.leases,
                members: rest.membership.members().count(),
                consistent_index: rest.consistent_index,
                members_from_db: rest.members_from_db,
            },
            rest.term,
        ))
    })
}

/// The db's buckets other than `key`.
struct Rest {
    consistent_index: u64,
    term: u64,
    finished_compact: i64,
    scheduled_compact: i64,
    leases: usize,
    membership: Membership,
    members_from_db: bool,
    alarms: crate::alarm::AlarmStore,
    auth: crate::auth::store::AuthStore,
}

fn read_rest(
    r: &BackendReader<'_>,
    member_dir: &Path,
    initial: &Membership,
) -> Result<(Rest, Vec<u8>), String> {
    let meta = |k: &[u8]| r.get(BUCKET_META, k);
    // The Raft log needs an index of at least 1 to start from a snapshot.
    let consistent_index = match meta(META_CONSISTENT_INDEX) {
        Some(v) => be_u64("consistent_index", &v)?,
        None => 0,
    }
    .max(1);
    let term = match meta(META_TERM) {
        Some(v) => be_u64("term", &v)?,
        None => 1,
    }
    .max(1);
    let finished_compact = compact_rev("finishedCompactRev", meta(META_FINISHED_COMPACT))?;
    let scheduled_compact = compact_rev("scheduledCompactRev", meta(META_SCHEDULED_COMPACT))?;
    let mut leases = Vec::new();
    r.for_each(BUCKET_LEASE, |_, v| {
        let l = StoredLease::decode(v)
            .map_err(|e| engine::Error::InvalidOptions(format!("bad lease: {e}")))?;
        leases.push((l.id, l.ttl, l.remaining_ttl));
        Ok(())
    })
    .map_err(|e| e.to_string())?;
    let mut members = Vec::new();
    r.for_each(BUCKET_MEMBERS, |_, v| {
        let m: StoredMember = serde_json::from_slice(v)
            .map_err(|e| engine::Error::InvalidOptions(format!("bad member: {e}")))?;
        members.push(MemberInfo {
            id: m.id,
            name: m.name,
            peer_urls: m.peer_urls,
            client_urls: m.client_urls,
            is_learner: m.is_learner,
        });
        Ok(())
    })
    .map_err(|e| e.to_string())?;
    let mut alarms = Vec::new();
    r.for_each(BUCKET_ALARM, |k, _| {
        let a = StoredAlarm::decode(k)
            .map_err(|e| engine::Error::InvalidOptions(format!("bad alarm: {e}")))?;
        alarms.push((a.member_id, a.alarm));
        Ok(())
    })
    .map_err(|e| e.to_string())?;
    let auth = read_auth(r)?;
    let members_from_db = !members.is_empty() && !restored_by_etcdctl(member_dir, consistent_index);
    let membership = if members_from_db {
        Membership::new(members)
    } else {
        initial.clone()
    };
    let lease_count = leases.len();
    Ok((
        Rest {
            consistent_index,
            term,
            finished_compact,
            scheduled_compact,
            leases: lease_count,
            membership,
            members_from_db,
            alarms: crate::alarm::AlarmStore::from_list(alarms),
            auth,
        },
        crate::lease::encode_lease_table(leases),
    ))
}

/// The auth store from the db's `auth`, `authUsers` and `authRoles` buckets (users,
/// roles, their bcrypt hashes, whether auth is enabled, the auth revision).
fn read_auth(r: &BackendReader<'_>) -> Result<crate::auth::store::AuthStore, String> {
    type Records = Vec<(Vec<u8>, Vec<u8>)>;
    let collect = |bucket: &'static [u8]| -> Result<Records, String> {
        let mut out = Vec::new();
        if r.has_bucket(bucket) {
            r.for_each(bucket, |k, v| {
                out.push((k.to_vec(), v.to_vec()));
                Ok(())
            })
            .map_err(|e| e.to_string())?;
        }
        Ok(out)
    };
    let auth = collect(BUCKET_AUTH)?;
    let users = collect(BUCKET_AUTH_USERS)?;
    let roles = collect(BUCKET_AUTH_ROLES)?;
    crate::auth::store::AuthStore::from_bucket_records(
        auth.iter().map(|(k, v)| (&k[..], &v[..])),
        users.iter().map(|(_, v)| &v[..]),
        roles.iter().map(|(_, v)| &v[..]),
    )
}
