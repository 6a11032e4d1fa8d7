//! Maintenance.Snapshot (etcd `api/v3rpc/maintenance.go`): the member's state machine as a
//! bbolt file in etcd's layout ([`engine::etcd_backend`]), streamed in 32 KiB blobs with
//! the bytes still to come, then a last message holding the SHA-256 of everything sent —
//! what `etcdctl snapshot save` writes to disk and `etcdctl snapshot restore` checks.
//!
//! The raft core takes a consistent cut ([`SnapshotCut`]: applied index, a pinned scan of
//! the `key` bucket, leases, members) in microseconds; a helper thread writes the bbolt
//! file from it into a temporary directory of the member dir and then reads it back in
//! blobs to the stream through a bounded channel. Writes go on meanwhile.

use std::io::Read;
use std::path::Path;
use std::rc::Rc;
use std::time::Instant;

use bytes::Bytes;
use engine::etcd_backend::{
    member_key, revision_key, BackendWriter, StoredAlarm, StoredLease, StoredMember, BUCKET_ALARM,
    BUCKET_CLUSTER, BUCKET_KEY, BUCKET_LEASE, BUCKET_MEMBERS, BUCKET_META, CLUSTER_VERSION_KEY,
    META_CONSISTENT_INDEX, META_FINISHED_COMPACT, META_SCHEDULED_COMPACT, META_TERM,
};
use futures::channel::oneshot;
use net::pb::etcdserverpb::{SnapshotRequest, SnapshotResponse};
use net::{Code, Inbound, Outbound, Status};
use prost::Message;
use sha2::{Digest, Sha256};
use tracing::{info, warn};

use crate::cluster::{RaftRequest, SnapshotCut};
use crate::service::{await_reply, decode, encode, EtcdService};

/// The server-streaming method served here.
pub const SNAPSHOT_METHOD: &str = "/etcdserverpb.Maintenance/Snapshot";

/// Bytes of each blob (etcd `maintenanceServer.Snapshot`: `make([]byte, 32*1024)`).
pub const SNAPSHOT_BLOB_BYTES: usize = 32 * 1024;

/// Blobs the writing thread may be ahead of the stream (bounds the memory per call).
const BLOBS_AHEAD: usize = 64;

/// The cluster version a snapshot records in its `cluster` bucket: the oldest etcd whose
/// `snapshot restore` reads Cairn's snapshots (tested with Debian's etcd 3.4).
pub const SNAPSHOT_CLUSTER_VERSION: &str = "3.4.0";

/// Prefix of the temporary directories snapshots are written in, under the member dir;
/// [`remove_leftovers`] deletes the ones a crash left behind.
const TEMP_PREFIX: &str = ".snapshot-save-";

/// Deletes temporary snapshot directories of `member_dir` left by a crash. Errors: the
/// directory cannot be listed or an entry removed (the message names it).
pub fn remove_leftovers(member_dir: &Path) -> Result<(), String> {
    let Ok(entries) = std::fs::read_dir(member_dir) else {
        return Ok(());
    };
    for entry in entries.flatten() {
        if entry.file_name().to_string_lossy().starts_with(TEMP_PREFIX) {
            let path = entry.path();
            std::fs::remove_dir_all(&path)
                .map_err(|e| format!("cannot remove {}: {e}", path.display()))?;
        }
    }
    Ok(())
}

/// One message for the stream, from the writing thread.
enum Piece {
    /// The db's size, once written.
    Size(u64),
    /// The next blob of the db.
    Blob(Bytes),
    /// The SHA-256 of every blob.
    Sha(Bytes),
}

/// Serves one Snapshot call: reads the request, asks the raft core for a cut, streams the
/// file. Errors: `Internal` with the reason when the file cannot be written or read (etcd
/// turns the backend's error into a gRPC error the same way, `togRPCError`).
pub async fn snapshot(
    svc: Rc<EtcdService>,
    mut inbound: Inbound,
    mut outbound: Outbound,
) -> Result<(), Status> {
    let _: SnapshotRequest = match inbound.next().await {
        Some(message) => decode(message?)?,
        None => return Err(Status::new(Code::Internal, "no request message")),
    };
    let (reply, cut) = oneshot::channel();
    svc.send(RaftRequest::Snapshot(reply)).await?;
    let cut = await_reply(cut).await?;
    let started = Instant::now();
    let revision = cut.scan.revision();
    info!(
        "consistent-index" = cut.applied_index,
        revision, "sending database snapshot to client"
    );
    let dir = tempfile::Builder::new()
        .prefix(TEMP_PREFIX)
        .tempdir_in(&svc.config().member_dir)
        .map_err(|e| internal(format!("cannot create a snapshot directory: {e}")))?;
    let path = dir.path().join("db");
    let (tx, rx) = flume::bounded::<Result<Piece, String>>(BLOBS_AHEAD);
    let thread_path = path.clone();
    std::thread::Builder::new()
        .name("snapshot".into())
        .spawn(move || {
            if let Err(e) = write_and_read(cut, &thread_path, &tx) {
                let _ = tx.send(Err(e));
            }
        })
        .map_err(|e| internal(format!("cannot start the snapshot thread: {e}")))?;
    let mut header = Some(svc.shared().header(revision));
    let (mut size, mut sent) = (0u64, 0u64);
    while let Ok(piece) = rx.recv_async().await {
        let resp = match piece.map_err(internal)? {
            Piece::Size(s) => {
                size = s;
                continue;
            }
            Piece::Blob(blob) => {
                sent += blob.len() as u64;
                SnapshotResponse {
                    header: header.take(),
                    remaining_bytes: size.saturating_sub(sent),
                    blob,
                    ..Default::default()
                }
            }
            Piece::Sha(sha) => SnapshotResponse {
                header: header.take(),
                remaining_bytes: 0,
                blob: sha,
                ..Default::default()
            },
        };
        outbound.send(encode(&resp)).await?;
    }
    drop(dir);
    if sent != size || size == 0 {
        warn!(sent, size, "database snapshot ended early");
        return Err(internal(format!(
            "snapshot stream ended after {sent} of {size} bytes"
        )));
    }
    info!(
        size,
        took = %crate::logging::go_duration(started.elapsed()),
        "sent database snapshot to client"
    );
    Ok(())
}

fn internal(reason: impl Into<String>) -> Status {
    Status::new(Code::Internal, reason)
}

/// Writes the cut as a bbolt file at `path`, then sends its size, its blobs and their
/// SHA-256. Stops early (Ok) when the stream went away.
fn write_and_read(
    cut: SnapshotCut,
    path: &Path,
    tx: &flume::Sender<Result<Piece, String>>,
) -> Result<(), String> {
    let started = Instant::now();
    let size = write_backend(cut, path).map_err(|e| e.to_string())?;
    info!(
        size,
        took = %crate::logging::go_duration(started.elapsed()),
        "wrote database snapshot"
    );
    if tx.send(Ok(Piece::Size(size))).is_err() {
        return Ok(());
    }
    let mut file =
        std::fs::File::open(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let mut sha = Sha256::new();
    let mut left = size;
    while left > 0 {
        let n = SNAPSHOT_BLOB_BYTES.min(left as usize);
        let mut blob = vec![0u8; n];
        file.read_exact(&mut blob)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        sha.update(&blob);
        left -= n as u64;
        if tx.send(Ok(Piece::Blob(Bytes::from(blob)))).is_err() {
            return Ok(());
        }
    }
    let _ = tx.send(Ok(Piece::Sha(Bytes::copy_from_slice(&sha.finalize()))));
    Ok(())
}

/// The bbolt file of a cut: every bucket of etcd 3.4, the `key` bucket from the pinned
/// scan, `meta` with the consistent index, term and compaction revisions, leases, the
/// member table, the raised alarms, the auth store and the cluster version. Returns its size in bytes.
pub fn write_backend(mut cut: SnapshotCut, path: &Path) -> engine::Result<u64> {
    let mut w = BackendWriter::create(path)?;
    let mut failed = None;
    while !cut.scan.step(|k, v| {
        if failed.is_none() {
            failed = w.put(BUCKET_KEY, k, v).err();
        }
    })? {
        if let Some(e) = failed.take() {
            return Err(e);
        }
    }
    if let Some(e) = failed {
        return Err(e);
    }
    w.put(
        BUCKET_META,
        META_CONSISTENT_INDEX,
        &cut.applied_index.to_be_bytes(),
    )?;
    w.put(BUCKET_META, META_TERM, &cut.term.to_be_bytes())?;
    let compact = cut.scan.compact_revision();
    if compact > 0 {
        let rev = revision_key(compact, 0, false);
        w.put(BUCKET_META, META_FINISHED_COMPACT, &rev)?;
        w.put(BUCKET_META, META_SCHEDULED_COMPACT, &rev)?;
    }
    for &(id, ttl, remaining_ttl) in &cut.leases {
        let lease = StoredLease {
            id,
            ttl,
            remaining_ttl,
        };
        w.put(
            BUCKET_LEASE,
            &(id as u64).to_be_bytes(),
            &lease.encode_to_vec(),
        )?;
    }
    for m in cut.members.members() {
        let stored = StoredMember {
            id: m.id,
            peer_urls: m.peer_urls.clone(),
            is_learner: m.is_learner,
            name: m.name.clone(),
            client_urls: m.client_urls.clone(),
        };
        let json = serde_json::to_vec(&stored).expect("a member serializes");
        w.put(BUCKET_MEMBERS, &member_key(m.id), &json)?;
    }
    for a in &cut.alarms {
        let key = StoredAlarm {
            member_id: a.member_id,
            alarm: a.alarm,
        };
        w.put(BUCKET_ALARM, &key.encode_to_vec(), &[])?;
    }
    for (bucket, key, value) in cut.auth.bucket_records() {
        w.put(bucket, &key, &value)?;
    }
    w.put(
        BUCKET_CLUSTER,
        CLUSTER_VERSION_KEY,
        SNAPSHOT_CLUSTER_VERSION.as_bytes(),
    )?;
    w.finish()
}
