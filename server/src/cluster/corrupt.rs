//! The periodic corruption check (`--experimental-corrupt-check-time`, etcd 3.4
//! `etcdserver/corrupt.go` `monitorKVHash` and `checkHashKV`): every interval the leader
//! hashes its store (HashKV at its current revision), asks every peer for its HashKV at
//! that revision over the peer port, waits for a linearizable read, hashes again, and
//! raises the CORRUPT alarm (member ID 0, as etcd 3.4: it is not clear which member is
//! corrupt) when
//! - its own two hashes differ at the same revision and compact revision;
//! - a peer reports a revision or a compact revision above the leader's;
//! - a peer at the leader's first compact revision reports a different hash.
//!
//! The alarm then refuses every KV and lease request (`alarm.rs`), and `/health` reports
//! it, until an operator disarms it.

use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use net::pb::etcdserverpb::{AlarmRequest, HashKvRequest, HashKvResponse};
use net::peer::PeerTransport;
use prost::Message as _;
use tracing::{info, warn};

use super::driver::{RaftRequest, Shared};
use super::peers::{hash_kv_answer, METHOD_HASH_KV};
use super::replies::ReadWaiter;
use crate::logging::go_duration;

/// Runs the check every `interval` while this member leads, until the raft core's request
/// channel closes. `core` is the core this task runs on (where the read barrier's answer
/// is delivered).
pub async fn monitor_kv_hash(
    shared: Arc<Shared>,
    transport: Rc<PeerTransport>,
    raft: flume::Sender<RaftRequest>,
    core: usize,
    interval: Duration,
) {
    info!(
        "local-member-id" = %format!("{:x}", shared.member_id),
        interval = %go_duration(interval),
        "enabled corruption checking"
    );
    loop {
        glommio::timer::sleep(interval).await;
        if raft.is_disconnected() {
            return;
        }
        if shared.leader.load(Ordering::Acquire) != shared.member_id {
            continue;
        }
        if let Err(e) = check_hash_kv(&shared, &transport, &raft, core).await {
            warn!(error = %e, "failed to check hash KV");
        }
    }
}

/// One pass of the check (see the module doc). Errors: this member's own HashKV or the
/// read barrier failed (the peers' failures only skip them, as etcd's do).
async fn check_hash_kv(
    shared: &Shared,
    transport: &PeerTransport,
    raft: &flume::Sender<RaftRequest>,
    core: usize,
) -> Result<(), String> {
    let first = hash_kv_answer(shared, 0).await.map_err(|s| s.message)?;
    let (h, crev) = (first.hash, first.compact_revision);
    let rev = first.hash_revision;
    let me = shared.member_id;
    let mut peers = Vec::new();
    for m in shared.membership().members().filter(|m| m.id != me) {
        let body = Bytes::from(HashKvRequest { revision: rev }.encode_to_vec());
        let answer = transport
            .request(m.id, METHOD_HASH_KV, body)
            .await
            .ok()
            .and_then(|b| HashKvResponse::decode(b).ok());
        peers.push((m.id, answer));
    }
    let (reply, done) = ReadWaiter::new(core);
    raft.send_async(RaftRequest::ReadIndex(reply))
        .await
        .map_err(|_| crate::errors::stopped().message)?;
    done.await
        .map_err(|_| crate::errors::stopped().message)?
        .map_err(|s| s.message)?;
    let second = hash_kv_answer(shared, 0).await.map_err(|s| s.message)?;
    let (h2, rev2, crev2) = (second.hash, second.hash_revision, second.compact_revision);
    let mut alarmed = false;
    let mut mismatch = || {
        if !alarmed {
            alarmed = true;
            let _ = raft.try_send(RaftRequest::RaiseAlarm(AlarmRequest {
                action: crate::alarm::ACTION_ACTIVATE,
                member_id: 0,
                alarm: crate::alarm::ALARM_CORRUPT,
            }));
        }
    };
    if h2 != h && rev2 == rev && crev == crev2 {
        warn!(
            "revision-1" = rev,
            "compact-revision-1" = crev,
            "hash-1" = h,
            "revision-2" = rev2,
            "compact-revision-2" = crev2,
            "hash-2" = h2,
            "found hash mismatch"
        );
        mismatch();
    }
    let mut checked = 0;
    for (id, answer) in peers {
        let Some(p) = answer else { continue };
        checked += 1;
        let peer = format!("{id:x}");
        let peer_revision = p.header.as_ref().map_or(0, |h| h.revision);
        if peer_revision > rev2 {
            warn!(
                "leader-revision" = rev2,
                "follower-revision" = peer_revision,
                "follower-peer-id" = %peer,
                "revision from follower must be less than or equal to leader's"
            );
            mismatch();
        }
        if p.compact_revision > crev2 {
            warn!(
                "leader-compact-revision" = crev2,
                "follower-compact-revision" = p.compact_revision,
                "follower-peer-id" = %peer,
                "compact revision from follower must be less than or equal to leader's"
            );
            mismatch();
        }
        if p.compact_revision == crev && p.hash != h {
            warn!(
                "leader-compact-revision" = crev2,
                "leader-hash" = h,
                "follower-compact-revision" = p.compact_revision,
                "follower-hash" = p.hash,
                "follower-peer-id" = %peer,
                "same compact revision then hashes must match"
            );
            mismatch();
        }
    }
    info!(
        "number-of-peers-checked" = checked,
        "finished peer corruption check"
    );
    Ok(())
}
