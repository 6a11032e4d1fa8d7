//! etcd's backend database: a bbolt file with etcd's buckets and encodings, the format of
//! `Maintenance.Snapshot`, of `etcdctl snapshot save|status|restore` and of an etcd
//! member's `member/snap/db`. Written and read with the `bbolt-rs` crate (feature `compat`:
//! Go bbolt's magic number), so etcd, etcdctl and Go's bbolt read what Cairn writes.
//!
//! # Layout (etcd 3.4/3.5)
//! | bucket | key | value | etcd source |
//! |---|---|---|---|
//! | `key` | revision key: `main u64 BE \| '_' \| sub u64 BE`, + `'t'` for a tombstone | marshaled `mvccpb.KeyValue` (a tombstone's holds only the key) | mvcc/revision.go, kvstore_txn.go |
//! | `meta` | `consistent_index`, `term` | u64 BE | etcdserver/cindex |
//! | `meta` | `finishedCompactRev`, `scheduledCompactRev` | revision key of `(rev, 0)` | mvcc/kvstore_compaction.go |
//! | `lease` | lease ID as u64 BE | marshaled `leasepb.Lease` | lease/lessor.go |
//! | `members`, `members_removed` | member ID in hex (Go `types.ID.String`) | member JSON / `"removed"` | api/membership/store.go |
//! | `cluster` | `clusterVersion` | e.g. `"3.4.0"` | api/membership/store.go |
//! | `alarm` | marshaled `etcdserverpb.AlarmMember` | empty | etcdserver/api/v3alarm |
//! | `auth`, `authUsers`, `authRoles` | auth state | | auth/store.go |
//!
//! A snapshot file is the database followed by a 32-byte SHA-256 of it (etcd
//! `maintenance.go` `Snapshot`, checked by `snapshot restore` when the file size modulo 512
//! is 32: [`split_snapshot_file`]).

mod read;
mod write;

pub use self::read::{split_snapshot_file, BackendReader, BackendStatus};
pub use self::write::{BackendWriter, WRITE_BATCH_BYTES};

use serde::{Deserialize, Serialize};

/// Bucket of every retained key revision.
pub const BUCKET_KEY: &[u8] = b"key";
/// Bucket of the consistent index, term and compaction revisions.
pub const BUCKET_META: &[u8] = b"meta";
/// Bucket of leases.
pub const BUCKET_LEASE: &[u8] = b"lease";
/// Bucket of cluster members.
pub const BUCKET_MEMBERS: &[u8] = b"members";
/// Bucket of removed member IDs.
pub const BUCKET_MEMBERS_REMOVED: &[u8] = b"members_removed";
/// Bucket holding the cluster version.
pub const BUCKET_CLUSTER: &[u8] = b"cluster";
/// Bucket of raised alarms.
pub const BUCKET_ALARM: &[u8] = b"alarm";
/// Bucket of the auth switch and revision.
pub const BUCKET_AUTH: &[u8] = b"auth";
/// Bucket of users.
pub const BUCKET_AUTH_USERS: &[u8] = b"authUsers";
/// Bucket of roles.
pub const BUCKET_AUTH_ROLES: &[u8] = b"authRoles";
/// Every bucket an etcd 3.4 backend has, created by [`BackendWriter::create`].
pub const BUCKETS: [&[u8]; 10] = [
    BUCKET_KEY,
    BUCKET_META,
    BUCKET_LEASE,
    BUCKET_MEMBERS,
    BUCKET_MEMBERS_REMOVED,
    BUCKET_CLUSTER,
    BUCKET_ALARM,
    BUCKET_AUTH,
    BUCKET_AUTH_USERS,
    BUCKET_AUTH_ROLES,
];

/// `meta` key of the last applied Raft index (etcd `consistentIndexKeyName`).
pub const META_CONSISTENT_INDEX: &[u8] = b"consistent_index";
/// `meta` key of the Raft term of that index (etcd 3.5 `termKeyName`).
pub const META_TERM: &[u8] = b"term";
/// `meta` key of the last finished compaction (etcd `finishedCompactKeyName`).
pub const META_FINISHED_COMPACT: &[u8] = b"finishedCompactRev";
/// `meta` key of the last scheduled compaction (etcd `scheduledCompactKeyName`).
pub const META_SCHEDULED_COMPACT: &[u8] = b"scheduledCompactRev";
/// `cluster` key of the cluster version (etcd `clusterVersionKeyName`).
pub const CLUSTER_VERSION_KEY: &[u8] = b"clusterVersion";
/// Bytes of the SHA-256 trailer of a snapshot file.
pub const SHA256_TRAILER_BYTES: usize = 32;
/// Bytes of a revision key without the tombstone mark (etcd `revBytesLen`).
pub const REVISION_KEY_BYTES: usize = 17;

/// etcd's revision key (`revToBytes`, plus `'t'` for a tombstone: `appendMarkTombstone`).
pub fn revision_key(main: i64, sub: i64, tombstone: bool) -> Vec<u8> {
    let mut k = Vec::with_capacity(REVISION_KEY_BYTES + 1);
    k.extend_from_slice(&main.to_be_bytes());
    k.push(b'_');
    k.extend_from_slice(&sub.to_be_bytes());
    if tombstone {
        k.push(b't');
    }
    k
}

/// `(main, sub, tombstone)` of a revision key; `None` when it is not one (length other
/// than 17 or 18, no `'_'`, an 18th byte other than `'t'`).
pub fn parse_revision_key(k: &[u8]) -> Option<(i64, i64, bool)> {
    let tombstone = match k.len() {
        REVISION_KEY_BYTES => false,
        18 if k[17] == b't' => true,
        _ => return None,
    };
    if k[8] != b'_' {
        return None;
    }
    let main = i64::from_be_bytes(k[..8].try_into().ok()?);
    let sub = i64::from_be_bytes(k[9..17].try_into().ok()?);
    Some((main, sub, tombstone))
}

/// `mvccpb.KeyValue` as stored in the `key` bucket.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct StoredKeyValue {
    /// The key.
    #[prost(bytes = "vec", tag = "1")]
    pub key: Vec<u8>,
    /// Revision of the key's creation in its generation.
    #[prost(int64, tag = "2")]
    pub create_revision: i64,
    /// Revision of this modification.
    #[prost(int64, tag = "3")]
    pub mod_revision: i64,
    /// Version within the generation (1 at creation).
    #[prost(int64, tag = "4")]
    pub version: i64,
    /// The value.
    #[prost(bytes = "vec", tag = "5")]
    pub value: Vec<u8>,
    /// The attached lease, 0 for none.
    #[prost(int64, tag = "6")]
    pub lease: i64,
}

/// `leasepb.Lease` as stored in the `lease` bucket (key: the ID as u64 BE).
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct StoredLease {
    /// Lease ID.
    #[prost(int64, tag = "1")]
    pub id: i64,
    /// Granted TTL, seconds.
    #[prost(int64, tag = "2")]
    pub ttl: i64,
    /// Remaining TTL at the last lease checkpoint, seconds (0: none).
    #[prost(int64, tag = "3")]
    pub remaining_ttl: i64,
}

/// `etcdserverpb.AlarmMember`, the key of an `alarm` bucket entry.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct StoredAlarm {
    /// The member that raised it.
    #[prost(uint64, tag = "1")]
    pub member_id: u64,
    /// `AlarmType`: 1 NOSPACE, 2 CORRUPT.
    #[prost(int32, tag = "2")]
    pub alarm: i32,
}

/// A member as the `members` bucket holds it (etcd `membership.Member` JSON).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredMember {
    /// Member ID (a JSON number).
    pub id: u64,
    /// Peer URLs.
    #[serde(rename = "peerURLs", default)]
    pub peer_urls: Vec<String>,
    /// Whether it is a learner (omitted when false).
    #[serde(rename = "isLearner", default, skip_serializing_if = "is_false")]
    pub is_learner: bool,
    /// Name (omitted when empty: not yet published).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// Client URLs (omitted when empty).
    #[serde(rename = "clientURLs", default, skip_serializing_if = "Vec::is_empty")]
    pub client_urls: Vec<String>,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// A member's key in `members` / `members_removed` (Go `types.ID.String`: lower-case hex,
/// no padding).
pub fn member_key(id: u64) -> Vec<u8> {
    format!("{id:x}").into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revision_keys_round_trip_and_refuse_other_bytes() {
        let k = revision_key(0x0102, 3, false);
        assert_eq!(k.len(), 17);
        assert_eq!(&k[..8], &[0, 0, 0, 0, 0, 0, 1, 2]);
        assert_eq!(parse_revision_key(&k), Some((0x0102, 3, false)));
        let t = revision_key(9, 0, true);
        assert_eq!(t.last(), Some(&b't'));
        assert_eq!(parse_revision_key(&t), Some((9, 0, true)));
        assert_eq!(parse_revision_key(b"short"), None);
        let mut bad = k.clone();
        bad[8] = b'-';
        assert_eq!(parse_revision_key(&bad), None);
        let mut bad = t;
        bad[17] = b'x';
        assert_eq!(parse_revision_key(&bad), None);
    }

    #[test]
    fn member_json_is_etcds() {
        let m = StoredMember {
            id: 10276657743932975437,
            peer_urls: vec!["http://localhost:2380".into()],
            is_learner: false,
            name: "default".into(),
            client_urls: vec!["http://localhost:2379".into()],
        };
        // etcd 3.4 json.Marshal(membership.Member).
        assert_eq!(
            serde_json::to_string(&m).unwrap(),
            r#"{"id":10276657743932975437,"peerURLs":["http://localhost:2380"],"name":"default","clientURLs":["http://localhost:2379"]}"#
        );
        assert_eq!(member_key(0x8e9e05c52164694d), b"8e9e05c52164694d");
    }
}
