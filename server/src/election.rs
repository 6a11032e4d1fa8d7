//! etcd's Election service (`v3electionpb`): Campaign, Proclaim, Leader, Observe, Resign.
//!
//! etcd serves it by running its client-side algorithms against itself
//! (`etcdserver/api/v3election/election.go` over `clientv3/concurrency/election.go`);
//! this module runs the same algorithms against the local KV paths of [`EtcdService`]
//! (linearizable Range, Txn through Raft) and this core's watch hub.
//!
//! Sessions follow etcd's server: a request's lease is the session's lease; lease 0
//! grants a new lease of [`SESSION_TTL_SECONDS`] that nobody keeps alive (the session is
//! orphaned at once, as etcd's `session()` does).

use std::rc::Rc;

use bytes::Bytes;
use net::pb::etcdserverpb::{
    compare, range_request, request_op, response_op, Compare, DeleteRangeRequest,
    LeaseGrantRequest, LeaseGrantResponse, PutRequest, RangeRequest, RangeResponse, RequestOp,
    ResponseHeader, TxnRequest, TxnResponse,
};
use net::pb::mvccpb::{self, KeyValue};
use net::pb::v3electionpb::{
    CampaignRequest, CampaignResponse, LeaderKey, LeaderRequest, LeaderResponse, ProclaimRequest,
    ProclaimResponse, ResignRequest, ResignResponse,
};
use net::{Code, Inbound, Outbound, Status};

use crate::service::{decode, encode, Client};
use crate::watch::InternalWatch;

/// The unary methods of the Election service, by gRPC path.
pub const UNARY_METHODS: &[&str] = &[
    "/v3electionpb.Election/Campaign",
    "/v3electionpb.Election/Proclaim",
    "/v3electionpb.Election/Leader",
    "/v3electionpb.Election/Resign",
];

/// The Election service's server-streaming method.
pub const OBSERVE_METHOD: &str = "/v3electionpb.Election/Observe";

/// TTL of the lease a session grants when the request names none (etcd's
/// `concurrency.defaultSessionTTL`).
pub const SESSION_TTL_SECONDS: i64 = 60;

/// etcd `v3election.ErrMissingLeaderKey` (a plain Go error: grpc-go reports it UNKNOWN).
pub fn missing_leader_key() -> Status {
    Status::new(Code::Unknown, "\"leader\" field must be provided")
}

/// etcd `concurrency.ErrElectionNotLeader`.
pub fn not_leader() -> Status {
    Status::new(Code::Unknown, "election: not leader")
}

/// etcd `concurrency.ErrElectionNoLeader`.
pub fn no_leader() -> Status {
    Status::new(Code::Unknown, "election: no leader")
}

/// Serves one unary Election method (`path` is one of [`UNARY_METHODS`]).
pub async fn unary(svc: Rc<Client>, path: String, body: Bytes) -> Result<Bytes, Status> {
    match path.as_str() {
        "/v3electionpb.Election/Campaign" => {
            let r = decode(body)?;
            Ok(encode(&campaign(&svc, r).await.map_err(client_error)?))
        }
        "/v3electionpb.Election/Proclaim" => {
            let r = decode(body)?;
            Ok(encode(&proclaim(&svc, r).await.map_err(client_error)?))
        }
        "/v3electionpb.Election/Leader" => {
            let r = decode(body)?;
            Ok(encode(&leader(&svc, r).await.map_err(client_error)?))
        }
        "/v3electionpb.Election/Resign" => {
            let r = decode(body)?;
            Ok(encode(&resign(&svc, r).await.map_err(client_error)?))
        }
        _ => Err(Status::new(
            Code::Unimplemented,
            format!("unknown method {path}"),
        )),
    }
}

// ------------------------------------------------------------ shared helpers (also Lock)

/// etcd's server calls its own client: clientv3 turns the KV layer's gRPC errors into
/// `rpctypes.EtcdError`, a plain error to grpc-go, so they reach the caller as UNKNOWN
/// with the same text.
pub(crate) fn client_error(status: Status) -> Status {
    Status::new(Code::Unknown, status.message)
}

/// etcd's `clientv3.GetPrefixRangeEnd`.
pub(crate) fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

/// `fmt.Sprintf("%s%x", prefix, leaseID)` (Go prints a negative ID as `-` and hex digits).
pub(crate) fn lease_key(prefix: &[u8], lease: i64) -> Vec<u8> {
    let hex = if lease < 0 {
        format!("-{:x}", lease.unsigned_abs())
    } else {
        format!("{lease:x}")
    };
    let mut key = prefix.to_vec();
    key.extend_from_slice(hex.as_bytes());
    key
}

/// `name + "/"`: the key prefix of an election or lock.
pub(crate) fn key_prefix(name: &[u8]) -> Vec<u8> {
    let mut prefix = name.to_vec();
    prefix.push(b'/');
    prefix
}

/// The session's lease (etcd `concurrency.NewSession(WithLease(lease))`): 0 grants a new
/// lease of [`SESSION_TTL_SECONDS`].
pub(crate) async fn session_lease(svc: &Client, lease: i64) -> Result<i64, Status> {
    if lease != 0 {
        return Ok(lease);
    }
    let request = LeaseGrantRequest {
        ttl: SESSION_TTL_SECONDS,
        id: 0,
    };
    let body = crate::lease::unary(
        &svc.svc,
        &svc.caller,
        "/etcdserverpb.Lease/LeaseGrant",
        encode(&request),
    )
    .await?;
    let resp: LeaseGrantResponse = decode(body)?;
    if !resp.error.is_empty() {
        return Err(Status::new(Code::Unknown, resp.error));
    }
    Ok(resp.id)
}

/// A `create_revision(key) == revision` comparison.
pub(crate) fn create_revision_is(key: &[u8], revision: i64) -> Compare {
    Compare {
        result: compare::CompareResult::Equal as i32,
        target: compare::CompareTarget::Create as i32,
        key: Bytes::copy_from_slice(key),
        target_union: Some(compare::TargetUnion::CreateRevision(revision)),
        ..Default::default()
    }
}

/// A Txn operation.
pub(crate) fn op(request: request_op::Request) -> RequestOp {
    RequestOp {
        request: Some(request),
    }
}

/// `OpGet(key)`.
pub(crate) fn get(key: &[u8]) -> request_op::Request {
    request_op::Request::RequestRange(RangeRequest {
        key: Bytes::copy_from_slice(key),
        ..Default::default()
    })
}

/// `OpPut(key, value, WithLease(lease))`.
pub(crate) fn put(key: &[u8], value: Bytes, lease: i64) -> request_op::Request {
    request_op::Request::RequestPut(PutRequest {
        key: Bytes::copy_from_slice(key),
        value,
        lease,
        ..Default::default()
    })
}

/// `OpDelete(key)`.
pub(crate) fn delete(key: &[u8]) -> request_op::Request {
    request_op::Request::RequestDeleteRange(DeleteRangeRequest {
        key: Bytes::copy_from_slice(key),
        ..Default::default()
    })
}

/// `Get(prefix, WithFirstCreate())` (`ascend`) or `WithLastCreate()` as a request.
pub(crate) fn by_create(prefix: &[u8], ascend: bool, max_create_revision: i64) -> RangeRequest {
    let order = if ascend {
        range_request::SortOrder::Ascend
    } else {
        range_request::SortOrder::Descend
    };
    RangeRequest {
        key: Bytes::copy_from_slice(prefix),
        range_end: prefix_end(prefix).into(),
        limit: 1,
        sort_order: order as i32,
        sort_target: range_request::SortTarget::Create as i32,
        max_create_revision,
        ..Default::default()
    }
}

/// The KVs of a Txn's `index`th response when it is a range response.
pub(crate) fn range_kvs(resp: &TxnResponse, index: usize) -> &[KeyValue] {
    match resp.responses.get(index).and_then(|r| r.response.as_ref()) {
        Some(response_op::Response::ResponseRange(r)) => &r.kvs,
        _ => &[],
    }
}

fn internal(what: &str) -> Status {
    Status::new(Code::Internal, format!("unexpected txn response: {what}"))
}

/// The revision of a response header (0 when absent).
pub(crate) fn header_of(header: &Option<ResponseHeader>) -> i64 {
    header.as_ref().map_or(0, |h| h.revision)
}

/// etcd `concurrency.waitDelete`: waits for a delete of `key` at or after `revision`.
async fn wait_delete(key: &[u8], revision: i64) -> Result<(), Status> {
    let mut watch = InternalWatch::new(key.to_vec(), Vec::new(), revision)?;
    loop {
        let response = watch.next().await?;
        if response.canceled {
            // The client's watch channel reports ErrCompacted, a plain error to grpc-go.
            return Err(Status::new(
                Code::Unknown,
                "etcdserver: mvcc: required revision has been compacted",
            ));
        }
        if response
            .events
            .iter()
            .any(|e| e.r#type == mvccpb::event::EventType::Delete as i32)
        {
            return Ok(());
        }
    }
}

/// etcd `concurrency.waitDeletes`: waits until no key under `prefix` has a create revision
/// of at most `max_create_revision`; returns the header of the last (empty) Range.
pub(crate) async fn wait_deletes(
    svc: &Client,
    prefix: &[u8],
    max_create_revision: i64,
) -> Result<ResponseHeader, Status> {
    loop {
        let resp: RangeResponse = svc
            .range(by_create(prefix, false, max_create_revision))
            .await?;
        let Some(last) = resp.kvs.first() else {
            return Ok(resp.header.unwrap_or_default());
        };
        wait_delete(&last.key, header_of(&resp.header)).await?;
    }
}

/// Runs a clean-up request (`Resign`/`Unlock` on a canceled call) when dropped armed: etcd
/// runs it with the client's context after the call's context ended.
pub(crate) struct CleanupOnDrop {
    svc: Rc<Client>,
    txn: Option<TxnRequest>,
}

impl CleanupOnDrop {
    /// Arms a clean-up of `txn`.
    pub(crate) fn new(svc: Rc<Client>, txn: TxnRequest) -> Self {
        CleanupOnDrop {
            svc,
            txn: Some(txn),
        }
    }

    /// Runs the clean-up now and disarms it.
    pub(crate) async fn run_now(mut self) {
        if let Some(txn) = self.txn.take() {
            let _ = self.svc.txn(txn).await;
        }
    }

    /// Disarms the clean-up.
    pub(crate) fn disarm(mut self) {
        self.txn = None;
    }
}

impl Drop for CleanupOnDrop {
    fn drop(&mut self) {
        let Some(txn) = self.txn.take() else {
            return;
        };
        let svc = self.svc.clone();
        // Outside an executor (teardown) spawning panics; the clean-up is then skipped.
        let spawned = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            glommio::spawn_local(async move {
                let _ = svc.txn(txn).await;
            })
            .detach();
        }));
        if spawned.is_err() {
            tracing::warn!("election/lock clean-up skipped: no executor");
        }
    }
}

// ------------------------------------------------------------ Election methods

/// `Txn(If(create_revision(key) == rev).Then(OpDelete(key)))`: etcd's `Election.Resign`.
fn resign_txn(key: &[u8], rev: i64) -> TxnRequest {
    TxnRequest {
        compare: vec![create_revision_is(key, rev)],
        success: vec![op(delete(key))],
        ..Default::default()
    }
}

/// etcd `Election.Proclaim` for a resumed election; the response header of the Txn.
async fn proclaim_as(
    svc: &Client,
    key: &[u8],
    rev: i64,
    lease: i64,
    value: Bytes,
) -> Result<ResponseHeader, Status> {
    let resp = svc
        .txn(TxnRequest {
            compare: vec![create_revision_is(key, rev)],
            success: vec![op(put(key, value, lease))],
            ..Default::default()
        })
        .await?;
    if !resp.succeeded {
        return Err(not_leader());
    }
    Ok(resp.header.unwrap_or_default())
}

/// Campaign: etcd `Election.Campaign` with the request's session.
async fn campaign(svc: &Rc<Client>, r: CampaignRequest) -> Result<CampaignResponse, Status> {
    let lease = session_lease(svc, r.lease).await?;
    let prefix = key_prefix(&r.name);
    let key = lease_key(&prefix, lease);
    let resp = svc
        .txn(TxnRequest {
            compare: vec![create_revision_is(&key, 0)],
            success: vec![op(put(&key, r.value.clone(), lease))],
            failure: vec![op(get(&key))],
        })
        .await?;
    let mut leader_rev = header_of(&resp.header);
    if !resp.succeeded {
        let kv = range_kvs(&resp, 0)
            .first()
            .ok_or_else(|| internal("campaign key vanished"))?;
        leader_rev = kv.create_revision;
        if kv.value != r.value {
            if let Err(e) = proclaim_as(svc, &key, leader_rev, lease, r.value.clone()).await {
                // etcd resigns after a failed proclaim; after ErrElectionNotLeader its
                // leader key is already cleared, so that resign changes nothing.
                if e.message != not_leader().message {
                    CleanupOnDrop::new(svc.clone(), resign_txn(&key, leader_rev))
                        .run_now()
                        .await;
                }
                return Err(e);
            }
        }
    }
    // A canceled call (deadline, client reset) resigns, as etcd does.
    let cleanup = CleanupOnDrop::new(svc.clone(), resign_txn(&key, leader_rev));
    let waited = wait_deletes(svc, &prefix, leader_rev - 1).await;
    cleanup.disarm();
    waited?;
    Ok(CampaignResponse {
        header: resp.header,
        leader: Some(LeaderKey {
            name: r.name,
            key: key.into(),
            rev: leader_rev,
            lease,
        }),
    })
}

/// Proclaim: etcd `Election.Proclaim` on the resumed election.
async fn proclaim(svc: &Client, r: ProclaimRequest) -> Result<ProclaimResponse, Status> {
    let leader = r.leader.ok_or_else(missing_leader_key)?;
    let lease = session_lease(svc, leader.lease).await?;
    let header = proclaim_as(svc, &leader.key, leader.rev, lease, r.value).await?;
    Ok(ProclaimResponse {
        header: Some(header),
    })
}

/// Resign: etcd `Election.Resign` on the resumed election (succeeds whether or not the
/// key was still the leader's).
async fn resign(svc: &Client, r: ResignRequest) -> Result<ResignResponse, Status> {
    let leader = r.leader.ok_or_else(missing_leader_key)?;
    session_lease(svc, leader.lease).await?;
    let resp = svc.txn(resign_txn(&leader.key, leader.rev)).await?;
    Ok(ResignResponse {
        header: resp.header,
    })
}

/// Leader: the first-created key under the election's prefix.
async fn leader(svc: &Client, r: LeaderRequest) -> Result<LeaderResponse, Status> {
    let prefix = key_prefix(&r.name);
    let resp = svc.range(by_create(&prefix, true, 0)).await?;
    let kv = resp.kvs.into_iter().next().ok_or_else(no_leader)?;
    Ok(LeaderResponse {
        header: resp.header,
        kv: Some(kv),
    })
}

/// Observe: etcd `Election.observe`, each leader value as one LeaderResponse. Ends OK
/// when a watch is canceled (compaction) or a read fails, as etcd's channel closes.
pub async fn observe(
    svc: Rc<Client>,
    mut inbound: Inbound,
    mut outbound: Outbound,
) -> Result<(), Status> {
    let r: LeaderRequest = match inbound.next().await {
        Some(message) => decode(message?)?,
        None => return Err(Status::new(Code::Internal, "no request message")),
    };
    let prefix = key_prefix(&r.name);
    loop {
        let Ok(resp) = svc.range(by_create(&prefix, true, 0)).await else {
            return Ok(());
        };
        let (header, kv) = match resp.kvs.into_iter().next() {
            Some(kv) => (resp.header.unwrap_or_default(), kv),
            None => {
                // Wait for the first put on the prefix.
                let mut watch = InternalWatch::new(
                    prefix.clone(),
                    prefix_end(&prefix),
                    header_of(&resp.header),
                )?;
                loop {
                    let wr = watch.next().await?;
                    if wr.canceled {
                        return Ok(());
                    }
                    let first_put = wr
                        .events
                        .into_iter()
                        .find(|e| e.r#type == mvccpb::event::EventType::Put as i32)
                        .and_then(|e| e.kv);
                    if let Some(kv) = first_put {
                        let mut header = wr.header.unwrap_or_default();
                        header.revision = kv.mod_revision;
                        break (header, kv);
                    }
                }
            }
        };
        let next = header.revision + 1;
        let key = kv.key.clone();
        send(&mut outbound, header, kv).await?;
        let mut watch = InternalWatch::new(key.to_vec(), Vec::new(), next)?;
        'key: loop {
            let wr = watch.next().await?;
            if wr.canceled {
                return Ok(());
            }
            for event in wr.events {
                if event.r#type == mvccpb::event::EventType::Delete as i32 {
                    break 'key;
                }
                let kv = event.kv.unwrap_or_default();
                send(&mut outbound, wr.header.unwrap_or_default(), kv).await?;
            }
        }
    }
}

async fn send(outbound: &mut Outbound, header: ResponseHeader, kv: KeyValue) -> Result<(), Status> {
    let resp = LeaderResponse {
        header: Some(header),
        kv: Some(kv),
    };
    outbound.send(encode(&resp)).await
}
