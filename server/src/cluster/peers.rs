//! The raft core's side of the peer transport (`net::peer`): Raft messages out through
//! [`TransportPeers`], peers' messages and forwarded requests in through
//! [`RaftPeerHandler`]. Both live on the raft core's executor.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;

use bytes::Bytes;
use engine::SnapshotReceiver;
use futures::channel::oneshot;
use futures::future::LocalBoxFuture;
use futures::StreamExt;
use net::pb::etcdserverpb::{
    HashKvRequest, HashKvResponse, HashResponse, LeaseKeepAliveRequest, LeaseKeepAliveResponse,
    LeaseTimeToLiveRequest, LeaseTimeToLiveResponse, MemberPromoteRequest, MemberPromoteResponse,
};
use net::peer::{PeerHandler, PeerTransport, SnapshotChunks};
use net::{HttpRequest, HttpResponse, Status};
use prost::Message as _;
use tracing::{debug, info, warn};

use super::driver::{PeerSender, RaftRequest, Shared};
use super::membership::MemberInfo;
use super::reconfig::{MemberChange, MemberChangeResult};
use super::storage::RECEIVED_SNAPSHOT_DIR;
use crate::errors;
use crate::lease::{LeaseAnswer, LeaseQuery};
use crate::member::PeerMember;

/// Unary peer method: LeaseKeepAlive forwarded to the leader (body and answer are etcd's
/// `LeaseKeepAliveRequest`/`LeaseKeepAliveResponse`), as etcd's `/leases` peer handler.
pub const METHOD_LEASE_RENEW: &str = "LeaseRenew";
/// Unary peer method: MemberPromote forwarded to the leader (etcd's
/// `MemberPromoteRequest`/`MemberPromoteResponse`), as etcd's `/members/promote/<id>`.
pub const METHOD_MEMBER_PROMOTE: &str = "MemberPromote";
/// Unary peer method: LeaseTimeToLive forwarded to the leader (etcd's
/// `LeaseTimeToLiveRequest`/`LeaseTimeToLiveResponse`), as etcd's `/leases/internal`.
pub const METHOD_LEASE_TIME_TO_LIVE: &str = "LeaseTimeToLive";

/// Unary peer method: HashKV of this member's store (body and answer are etcd's
/// `HashKVRequest`/`HashKVResponse`), as etcd's peer-port `/members/hashkv` that
/// `--experimental-initial-corrupt-check` asks (etcd `etcdserver/corrupt.go`).
pub const METHOD_HASH_KV: &str = "HashKV";

/// This member's HashKV answer at `revision` (0 = current); the compact revision is -1
/// before the first compaction, as etcd reports it. Hashes a chunk at a time and yields
/// to the executor between chunks. Errors: etcd's `compacted` and `future revision`
/// statuses.
pub async fn hash_kv_answer(shared: &Shared, revision: i64) -> Result<HashKvResponse, Status> {
    let engine_err = |e: engine::Error| errors::from_engine(&e);
    let mut scan = shared.reader.hash_kv_scan(revision).map_err(engine_err)?;
    while !scan.step().map_err(engine_err)? {
        glommio::executor().yield_if_needed().await;
    }
    let (hash, compact_revision, hash_revision) = scan.result();
    Ok(HashKvResponse {
        header: Some(shared.header(0)),
        hash,
        // etcd reports -1 until the first compaction (compactMainRev's initial value).
        compact_revision: if compact_revision == 0 {
            -1
        } else {
            compact_revision
        },
        hash_revision,
    })
}

/// This member's Maintenance.Hash answer ([`engine::MvccReader::hash`]), computed as
/// [`hash_kv_answer`] is, a chunk at a time. Errors: etcd's text for a corrupt record.
pub async fn hash_answer(shared: &Shared) -> Result<HashResponse, Status> {
    let engine_err = |e: engine::Error| errors::from_engine(&e);
    let mut scan = shared.reader.hash_kv_scan(0).map_err(engine_err)?;
    while !scan.step().map_err(engine_err)? {
        glommio::executor().yield_if_needed().await;
    }
    Ok(HashResponse {
        header: Some(shared.header(0)),
        hash: scan.store_hash(),
    })
}

/// [`PeerSender`] over the peer transport.
pub struct TransportPeers {
    transport: Rc<PeerTransport>,
    peers: RefCell<BTreeMap<u64, Vec<String>>>,
    metrics: Rc<crate::metrics::PeerMetrics>,
}

impl TransportPeers {
    /// Sends through `transport`; counts bytes sent and round trips in `metrics`.
    pub fn new(
        transport: Rc<PeerTransport>,
        metrics: Rc<crate::metrics::PeerMetrics>,
    ) -> TransportPeers {
        let observer = metrics.clone();
        transport.observe_round_trips(Rc::new(move |to, time| observer.round_trip(to, time)));
        TransportPeers {
            transport,
            peers: RefCell::new(BTreeMap::new()),
            metrics,
        }
    }
}

impl PeerSender for TransportPeers {
    fn send(&self, to: u64, message: Bytes) -> bool {
        let bytes = message.len();
        let sent = self.transport.send(to, message).is_ok();
        if sent {
            self.metrics.sent(to, bytes);
        } else {
            self.metrics.sent_failure(to);
        }
        sent
    }

    fn take_unreachable(&self) -> Vec<u64> {
        self.transport.take_unreachable()
    }

    fn set_peers(&self, peers: Vec<(u64, Vec<String>)>) {
        let wanted: BTreeMap<u64, Vec<String>> = peers.into_iter().collect();
        let mut current = self.peers.borrow_mut();
        for id in current.keys().copied().collect::<Vec<_>>() {
            if !wanted.contains_key(&id) {
                self.transport.remove_peer(id);
                current.remove(&id);
            }
        }
        for (id, urls) in wanted {
            if current.get(&id) == Some(&urls) {
                continue;
            }
            match self.transport.add_peer(id, urls.clone()) {
                Ok(()) => {
                    current.insert(id, urls);
                }
                Err(e) => warn!(peer = format!("{id:x}"), "cannot talk to peer: {e}"),
            }
        }
    }

    fn removed_by_peers(&self) -> bool {
        !self.transport.refused_as_non_member().is_empty()
    }

    fn send_snapshot(
        &self,
        to: u64,
        meta: Bytes,
        chunks: futures::stream::LocalBoxStream<'static, Result<Bytes, String>>,
    ) -> LocalBoxFuture<'static, Result<(), String>> {
        let transport = self.transport.clone();
        Box::pin(async move { transport.send_snapshot(to, meta, chunks).await })
    }

    fn request(
        &self,
        to: u64,
        method: &'static str,
        body: Bytes,
    ) -> LocalBoxFuture<'static, Result<Bytes, Status>> {
        let transport = self.transport.clone();
        Box::pin(async move { transport.request(to, method, body).await })
    }
}

/// Takes what peers send: Raft messages go to the raft core's queue (dropped when it is
/// full: Raft retransmits), forwarded lease requests are answered by the raft core.
pub struct RaftPeerHandler {
    shared: Arc<Shared>,
    raft: flume::Sender<RaftRequest>,
    /// `member/`, where snapshots are received.
    member_dir: PathBuf,
    /// A snapshot is being received (one at a time).
    receiving: Rc<Cell<bool>>,
    /// Counts bytes received per peer.
    metrics: Rc<crate::metrics::PeerMetrics>,
}

impl RaftPeerHandler {
    /// A handler feeding the raft core through `raft`; snapshots are received under
    /// `member_dir`; received bytes are counted in `metrics`.
    pub fn new(
        shared: Arc<Shared>,
        raft: flume::Sender<RaftRequest>,
        member_dir: PathBuf,
        metrics: Rc<crate::metrics::PeerMetrics>,
    ) -> RaftPeerHandler {
        RaftPeerHandler {
            shared,
            raft,
            member_dir,
            receiving: Rc::new(Cell::new(false)),
            metrics,
        }
    }
}

/// Clears the "receiving" mark when a snapshot receipt ends, however it ends.
struct Receiving(Rc<Cell<bool>>);

impl Drop for Receiving {
    fn drop(&mut self) {
        self.0.set(false);
    }
}

impl PeerHandler for RaftPeerHandler {
    /// Everyone of this cluster but removed members (etcd answers those 410 Gone, and they
    /// stop). A member this one does not know yet (its table lags the log, or it is still
    /// joining) is accepted: Raft ignores what does not fit its configuration.
    fn accepts(&self, from: u64) -> bool {
        !self.shared.membership().is_removed(from)
    }

    fn on_raft_messages(&self, from: u64, messages: Vec<Bytes>) {
        let mut decoded = Vec::with_capacity(messages.len());
        self.metrics
            .received(from, messages.iter().map(Bytes::len).sum());
        for bytes in messages {
            match raft::Message::decode(&bytes) {
                Ok(m) if m.from == from => decoded.push(m),
                Ok(m) => debug!(
                    peer = format!("{from:x}"),
                    claimed = format!("{:x}", m.from),
                    "dropped a Raft message whose sender is not its connection's member"
                ),
                Err(e) => warn!(peer = format!("{from:x}"), "undecodable Raft message: {e}"),
            }
        }
        if decoded.is_empty() {
            return;
        }
        if self.raft.try_send(RaftRequest::Peer(decoded)).is_err() {
            debug!(
                peer = format!("{from:x}"),
                "raft core queue full: dropped peer messages"
            );
        }
    }

    /// etcd's peer-port `/members` (what a joining member reads) and `/version`.
    fn http(&self, request: &HttpRequest) -> HttpResponse {
        if request.method != "GET" {
            return HttpResponse {
                headers: vec![("Allow".into(), "GET".into())],
                ..HttpResponse::text(405, "Method Not Allowed")
            };
        }
        match request.path.split('?').next().unwrap_or("") {
            "/members" => {
                let members: Vec<PeerMember> = self
                    .shared
                    .membership()
                    .members()
                    .map(|m| PeerMember {
                        id: m.id,
                        peer_urls: m.peer_urls.clone(),
                        name: m.name.clone(),
                        client_urls: m.client_urls.clone(),
                        is_learner: m.is_learner,
                    })
                    .collect();
                HttpResponse {
                    status: 200,
                    content_type: "application/json".into(),
                    body: Bytes::from(serde_json::to_vec(&members).expect("serializable")),
                    headers: vec![(
                        "X-Etcd-Cluster-ID".into(),
                        format!("{:x}", self.shared.cluster_id),
                    )],
                }
            }
            "/version" => HttpResponse {
                status: 200,
                content_type: "application/json".into(),
                body: Bytes::from(crate::http::version_json()),
                headers: Vec::new(),
            },
            _ => HttpResponse::text(404, "404 page not found\n"),
        }
    }

    /// Receives the leader's snapshot into `member/snapshot.received`, then lets the raft
    /// core step its message and install it; the sender learns the verdict.
    fn on_snapshot(
        &self,
        from: u64,
        meta: Bytes,
        mut chunks: SnapshotChunks,
    ) -> LocalBoxFuture<'static, Result<(), String>> {
        if self.receiving.replace(true) {
            return Box::pin(async { Err("another snapshot is being received".to_string()) });
        }
        let guard = Receiving(self.receiving.clone());
        let raft = self.raft.clone();
        let dir = self.member_dir.join(RECEIVED_SNAPSHOT_DIR);
        Box::pin(async move {
            let _guard = guard;
            let message = raft::Message::decode(&meta).map_err(|e| e.to_string())?;
            let index = match (&message.snapshot, message.msg_type, message.from) {
                (Some(s), raft::MessageType::Snapshot, sender) if sender == from => {
                    s.metadata.index
                }
                _ => {
                    return Err("the snapshot stream does not start with a snapshot message".into())
                }
            };
            info!(peer = format!("{from:x}"), index, "receiving a snapshot");
            // As etcd's snapshot handler: a snapshot that cannot be saved (disk full, I/O
            // error) is refused and logged, not fatal; the leader sends it again later.
            let saving = |e: engine::Error| {
                warn!(
                    path = %e.path().map_or_else(String::new, |p| p.display().to_string()),
                    error = %e,
                    "failed to save incoming database snapshot"
                );
                e.to_string()
            };
            let mut receiver = SnapshotReceiver::create(&dir).map_err(saving)?;
            while let Some(chunk) = chunks.next().await {
                receiver.push(&chunk?).map_err(saving)?;
            }
            let applied = receiver.finish().map_err(saving)?;
            if applied != index {
                return Err(format!(
                    "the snapshot message is at index {index} but its data at {applied}"
                ));
            }
            let (reply, verdict) = oneshot::channel();
            raft.send_async(RaftRequest::InstallSnapshot(message, reply))
                .await
                .map_err(|_| "the raft core stopped".to_string())?;
            verdict
                .await
                .map_err(|_| "the raft core stopped".to_string())?
        })
    }

    fn on_request(
        &self,
        from: u64,
        method: String,
        body: Bytes,
    ) -> LocalBoxFuture<'static, Result<Bytes, Status>> {
        let raft = self.raft.clone();
        let shared = self.shared.clone();
        Box::pin(async move {
            if method == METHOD_HASH_KV {
                let r = HashKvRequest::decode(body).map_err(errors::decode_failed)?;
                let resp = hash_kv_answer(&shared, r.revision).await?;
                return Ok(Bytes::from(resp.encode_to_vec()));
            }
            if method == METHOD_MEMBER_PROMOTE {
                let r = MemberPromoteRequest::decode(body).map_err(errors::decode_failed)?;
                let (reply, answer) = oneshot::channel();
                raft.send_async(RaftRequest::Member(
                    MemberChange::Promote(r.id),
                    reply,
                    false,
                ))
                .await
                .map_err(|_| errors::stopped())?;
                let result = answer.await.map_err(|_| errors::stopped())??;
                let resp = MemberPromoteResponse {
                    header: None,
                    members: result.members.iter().map(MemberInfo::to_pb).collect(),
                };
                return Ok(Bytes::from(resp.encode_to_vec()));
            }
            let query = match method.as_str() {
                METHOD_LEASE_RENEW => LeaseQuery::Renew(
                    LeaseKeepAliveRequest::decode(body)
                        .map_err(errors::decode_failed)?
                        .id,
                ),
                METHOD_LEASE_TIME_TO_LIVE => {
                    let r = LeaseTimeToLiveRequest::decode(body).map_err(errors::decode_failed)?;
                    LeaseQuery::TimeToLive {
                        id: r.id,
                        keys: r.keys,
                    }
                }
                other => {
                    return Err(Status::new(
                        net::Code::Unimplemented,
                        format!("unknown peer method {other} (from {from:x})"),
                    ))
                }
            };
            let (reply, answer) = oneshot::channel();
            raft.send_async(RaftRequest::Lease(query, reply, false))
                .await
                .map_err(|_| errors::stopped())?;
            let answer = answer.await.map_err(|_| errors::stopped())??;
            Ok(encode_lease_answer(answer))
        })
    }
}

/// A MemberPromote as a forwarded peer request: `(method, body)`.
pub fn encode_promote(id: u64) -> (&'static str, Bytes) {
    (
        METHOD_MEMBER_PROMOTE,
        Bytes::from(MemberPromoteRequest { id }.encode_to_vec()),
    )
}

/// Decodes the leader's answer to a forwarded MemberPromote.
pub fn decode_promote_answer(body: Bytes) -> Result<MemberChangeResult, Status> {
    let resp = MemberPromoteResponse::decode(body)
        .map_err(|e| Status::new(net::Code::Internal, e.to_string()))?;
    Ok(MemberChangeResult {
        member: None,
        members: resp.members.into_iter().map(MemberInfo::from_pb).collect(),
    })
}

/// A lease query as a forwarded peer request: `(method, body)`; `None` for queries every
/// member answers itself.
pub fn encode_lease_query(query: &LeaseQuery) -> Option<(&'static str, Bytes)> {
    match query {
        LeaseQuery::Renew(id) => Some((
            METHOD_LEASE_RENEW,
            Bytes::from(LeaseKeepAliveRequest { id: *id }.encode_to_vec()),
        )),
        LeaseQuery::TimeToLive { id, keys } => Some((
            METHOD_LEASE_TIME_TO_LIVE,
            Bytes::from(
                LeaseTimeToLiveRequest {
                    id: *id,
                    keys: *keys,
                }
                .encode_to_vec(),
            ),
        )),
        LeaseQuery::Leases => None,
    }
}

fn encode_lease_answer(answer: LeaseAnswer) -> Bytes {
    match answer {
        LeaseAnswer::Renewed(ttl) => Bytes::from(
            LeaseKeepAliveResponse {
                ttl,
                ..Default::default()
            }
            .encode_to_vec(),
        ),
        LeaseAnswer::TimeToLive(resp) => Bytes::from(resp.encode_to_vec()),
        LeaseAnswer::Leases(_) => Bytes::new(),
    }
}

/// Decodes the leader's answer to a forwarded [`LeaseQuery`].
pub fn decode_lease_answer(query: &LeaseQuery, body: Bytes) -> Result<LeaseAnswer, Status> {
    match query {
        LeaseQuery::Renew(_) => LeaseKeepAliveResponse::decode(body)
            .map(|r| LeaseAnswer::Renewed(r.ttl))
            .map_err(|e| Status::new(net::Code::Internal, e.to_string())),
        LeaseQuery::TimeToLive { .. } => LeaseTimeToLiveResponse::decode(body)
            .map(LeaseAnswer::TimeToLive)
            .map_err(|e| Status::new(net::Code::Internal, e.to_string())),
        LeaseQuery::Leases => Err(Status::new(
            net::Code::Internal,
            "LeaseLeases is never forwarded",
        )),
    }
}
