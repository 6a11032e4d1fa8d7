//! The raft core's side of the peer transport (`net::peer`): Raft messages out through
//! [`TransportPeers`], peers' messages and forwarded requests in through
//! [`RaftPeerHandler`]. Both live on the raft core's executor.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::Arc;

use bytes::Bytes;
use futures::channel::oneshot;
use futures::future::LocalBoxFuture;
use net::pb::etcdserverpb::{
    LeaseKeepAliveRequest, LeaseKeepAliveResponse, LeaseTimeToLiveRequest, LeaseTimeToLiveResponse,
};
use net::peer::{PeerHandler, PeerTransport, SnapshotChunks};
use net::Status;
use prost::Message as _;
use tracing::{debug, warn};

use super::driver::{PeerSender, RaftRequest, Shared};
use crate::errors;
use crate::lease::{LeaseAnswer, LeaseQuery};

/// Unary peer method: LeaseKeepAlive forwarded to the leader (body and answer are etcd's
/// `LeaseKeepAliveRequest`/`LeaseKeepAliveResponse`), as etcd's `/leases` peer handler.
pub const METHOD_LEASE_RENEW: &str = "LeaseRenew";
/// Unary peer method: LeaseTimeToLive forwarded to the leader (etcd's
/// `LeaseTimeToLiveRequest`/`LeaseTimeToLiveResponse`), as etcd's `/leases/internal`.
pub const METHOD_LEASE_TIME_TO_LIVE: &str = "LeaseTimeToLive";

/// [`PeerSender`] over the peer transport.
pub struct TransportPeers {
    transport: Rc<PeerTransport>,
    peers: RefCell<BTreeMap<u64, Vec<String>>>,
}

impl TransportPeers {
    /// Sends through `transport`.
    pub fn new(transport: Rc<PeerTransport>) -> TransportPeers {
        TransportPeers {
            transport,
            peers: RefCell::new(BTreeMap::new()),
        }
    }
}

impl PeerSender for TransportPeers {
    fn send(&self, to: u64, message: Bytes) -> bool {
        self.transport.send(to, message).is_ok()
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
}

impl RaftPeerHandler {
    /// A handler feeding the raft core through `raft`.
    pub fn new(shared: Arc<Shared>, raft: flume::Sender<RaftRequest>) -> RaftPeerHandler {
        RaftPeerHandler { shared, raft }
    }
}

impl PeerHandler for RaftPeerHandler {
    fn accepts(&self, from: u64) -> bool {
        self.shared.membership().get(from).is_some()
    }

    fn on_raft_messages(&self, from: u64, messages: Vec<Bytes>) {
        let mut decoded = Vec::with_capacity(messages.len());
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

    fn on_snapshot(
        &self,
        from: u64,
        _meta: Bytes,
        _chunks: SnapshotChunks,
    ) -> LocalBoxFuture<'static, Result<(), String>> {
        warn!(
            peer = format!("{from:x}"),
            "refused a snapshot: installing snapshots from the leader is not built yet"
        );
        Box::pin(async { Err("this member cannot install snapshots yet".to_string()) })
    }

    fn on_request(
        &self,
        from: u64,
        method: String,
        body: Bytes,
    ) -> LocalBoxFuture<'static, Result<Bytes, Status>> {
        let raft = self.raft.clone();
        Box::pin(async move {
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
