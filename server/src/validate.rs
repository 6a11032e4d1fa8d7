//! Validation of client requests, as pure functions of the request: the checks etcd's
//! gRPC layer runs before a request reaches Raft or the store.
//!
//! Sources: etcd 3.4 `etcdserver/api/v3rpc/key.go` (`checkRangeRequest`,
//! `checkPutRequest`, `checkDeleteRequest`, `checkTxnRequest`, `checkIntervals`) and
//! `etcdserver/api/v3rpc/member.go` with `pkg/types/urls.go` (`NewURLs`). Every error is
//! etcd's exact gRPC code and message (`crate::errors`).
//!
//! The services (`kv.rs`, `service.rs`, `api/cluster.rs` in the `cairn` binary) call these
//! functions; [`unary_request`] and [`stream_message`] run the same decode-and-check steps
//! per gRPC method, without a server, for the fuzzer (`cairn-fuzz requests`).

use std::collections::HashSet;

use bytes::Bytes;
use net::pb::etcdserverpb::{
    request_op, AlarmRequest, CompactionRequest, DefragmentRequest, DeleteRangeRequest,
    HashKvRequest, HashRequest, LeaseGrantRequest, LeaseKeepAliveRequest, LeaseLeasesRequest,
    LeaseRevokeRequest, LeaseTimeToLiveRequest, MemberAddRequest, MemberListRequest,
    MemberPromoteRequest, MemberRemoveRequest, MemberUpdateRequest, MoveLeaderRequest, PutRequest,
    RangeRequest, RequestOp, StatusRequest, TxnRequest, WatchRequest,
};
use net::pb::{v3electionpb, v3lockpb};
use net::Status;
use prost::Message;

use crate::errors;

/// `checkRangeRequest`.
pub fn check_range(r: &RangeRequest) -> Result<(), Status> {
    if r.key.is_empty() {
        return Err(errors::empty_key());
    }
    Ok(())
}

/// `checkPutRequest`.
pub fn check_put(r: &PutRequest) -> Result<(), Status> {
    if r.key.is_empty() {
        return Err(errors::empty_key());
    }
    if r.ignore_value && !r.value.is_empty() {
        return Err(errors::value_provided());
    }
    if r.ignore_lease && r.lease != 0 {
        return Err(errors::lease_provided());
    }
    Ok(())
}

/// `checkDeleteRequest`.
pub fn check_delete(r: &DeleteRangeRequest) -> Result<(), Status> {
    if r.key.is_empty() {
        return Err(errors::empty_key());
    }
    Ok(())
}

/// `checkTxnRequest` followed by `checkIntervals` on both branches.
pub fn check_txn(r: &TxnRequest, txn_ops_max: usize) -> Result<(), Status> {
    check_txn_ops(r, txn_ops_max)?;
    check_intervals(&r.success)?;
    check_intervals(&r.failure)?;
    Ok(())
}

fn check_txn_ops(r: &TxnRequest, txn_ops_max: usize) -> Result<(), Status> {
    let opc = r.compare.len().max(r.success.len()).max(r.failure.len());
    if opc > txn_ops_max {
        return Err(errors::too_many_ops());
    }
    if r.compare.iter().any(|c| c.key.is_empty()) {
        return Err(errors::empty_key());
    }
    for op in r.success.iter().chain(r.failure.iter()) {
        match &op.request {
            Some(request_op::Request::RequestRange(q)) => check_range(q)?,
            Some(request_op::Request::RequestPut(q)) => check_put(q)?,
            Some(request_op::Request::RequestDeleteRange(q)) => check_delete(q)?,
            Some(request_op::Request::RequestTxn(q)) => check_txn_ops(q, txn_ops_max - opc)?,
            None => return Err(errors::key_not_found()),
        }
    }
    Ok(())
}

/// Half-open key interval; `end == None` is a single key, an `end` of `"\0"` is unbounded.
struct Interval {
    begin: Bytes,
    end: Option<Bytes>,
}

impl Interval {
    fn contains(&self, key: &[u8]) -> bool {
        match &self.end {
            None => self.begin.as_ref() == key,
            Some(end) if end.as_ref() == b"\0" => key >= self.begin.as_ref(),
            Some(end) => key >= self.begin.as_ref() && key < end.as_ref(),
        }
    }
}

fn intersects(dels: &[Interval], key: &[u8]) -> bool {
    dels.iter().any(|d| d.contains(key))
}

/// `checkIntervals`: no key is put twice, nor put and deleted, along any path of a Txn
/// (a key may be put once in each branch of a nested Txn).
fn check_intervals(reqs: &[RequestOp]) -> Result<(), Status> {
    check_intervals_inner(reqs).map(|_| ())
}

fn check_intervals_inner(reqs: &[RequestOp]) -> Result<(HashSet<Bytes>, Vec<Interval>), Status> {
    let mut dels: Vec<Interval> = reqs
        .iter()
        .filter_map(|op| match &op.request {
            Some(request_op::Request::RequestDeleteRange(d)) => Some(Interval {
                begin: d.key.clone(),
                end: (!d.range_end.is_empty()).then(|| d.range_end.clone()),
            }),
            _ => None,
        })
        .collect();
    let mut puts: HashSet<Bytes> = HashSet::new();
    for op in reqs {
        let Some(request_op::Request::RequestTxn(t)) = &op.request else {
            continue;
        };
        let (puts_then, dels_then) = check_intervals_inner(&t.success)?;
        let (puts_else, dels_else) = check_intervals_inner(&t.failure)?;
        for k in &puts_then {
            if puts.contains(k) || intersects(&dels, k) {
                return Err(errors::duplicate_key());
            }
            puts.insert(k.clone());
        }
        for k in &puts_else {
            if (puts.contains(k) && !puts_then.contains(k)) || intersects(&dels, k) {
                return Err(errors::duplicate_key());
            }
            puts.insert(k.clone());
        }
        dels.extend(dels_then);
        dels.extend(dels_else);
    }
    for op in reqs {
        let Some(request_op::Request::RequestPut(p)) = &op.request else {
            continue;
        };
        if puts.contains(&p.key) || intersects(&dels, &p.key) {
            return Err(errors::duplicate_key());
        }
        puts.insert(p.key.clone());
    }
    Ok((puts, dels))
}

/// Peer URLs as etcd's `types.NewURLs` accepts them (scheme http, https, unix or unixs; a
/// `host:port`; no path; at least one), sorted; otherwise `etcdserver: given member URLs
/// are invalid`.
pub fn parse_peer_urls(raw: &[String]) -> Result<Vec<String>, Status> {
    if raw.is_empty() {
        return Err(errors::member_bad_urls());
    }
    let mut urls = Vec::with_capacity(raw.len());
    for s in raw {
        let u = url::Url::parse(s.trim()).map_err(|_| errors::member_bad_urls())?;
        let scheme_ok = matches!(u.scheme(), "http" | "https" | "unix" | "unixs");
        // `host:port` with the port written out, as Go's net.SplitHostPort demands
        // (the url crate hides a port equal to the scheme's default).
        let authority = s.trim().split_once("://").map_or("", |(_, rest)| rest);
        let authority = authority.split(['/', '?', '#']).next().unwrap_or("");
        let port_written = authority
            .rsplit_once(':')
            .is_some_and(|(_, port)| !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()));
        let host_port = u.host_str().is_some_and(|h| !h.is_empty()) && port_written;
        let no_path = matches!(u.path(), "" | "/") && u.query().is_none();
        if !scheme_ok || !host_port || !no_path {
            return Err(errors::member_bad_urls());
        }
        urls.push(s.trim().to_string());
    }
    urls.sort();
    Ok(urls)
}

/// A request message decoded the way the services decode it: a malformed one gets
/// grpc-go's unmarshalling error (`Internal`, "grpc: error unmarshalling request: ...").
pub fn decode<M: Message + Default>(body: Bytes) -> Result<M, Status> {
    M::decode(body).map_err(errors::decode_failed)
}

/// What the services check before a request leaves the receiving core.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// `--max-txn-ops`: most operations in one Txn branch (etcd default 128).
    pub txn_ops_max: usize,
}

/// The request of a unary gRPC method once it passed the checks of its method, ready to
/// be proposed or served.
#[derive(Clone, Debug, PartialEq)]
pub enum Validated {
    /// `KV/Range`.
    Range(RangeRequest),
    /// `KV/Put`.
    Put(PutRequest),
    /// `KV/DeleteRange`.
    DeleteRange(DeleteRangeRequest),
    /// `KV/Txn`.
    Txn(TxnRequest),
    /// `KV/Compact`.
    Compaction(CompactionRequest),
    /// `Lease/LeaseGrant`.
    LeaseGrant(LeaseGrantRequest),
    /// `Lease/LeaseRevoke`.
    LeaseRevoke(LeaseRevokeRequest),
    /// `Cluster/MemberAdd` with its peer URLs as the member table stores them (sorted).
    MemberAdd(MemberAddRequest, Vec<String>),
    /// `Cluster/MemberUpdate` with its peer URLs (sorted).
    MemberUpdate(MemberUpdateRequest, Vec<String>),
    /// A method whose request has no checks beyond decoding (Status, Hash, HashKV,
    /// MoveLeader, MemberRemove/List/Promote, LeaseTimeToLive/Leases, Election, Lock).
    Decoded,
}

/// Decodes `body` as the request of the unary method `path` (e.g.
/// `"/etcdserverpb.KV/Txn"`) and runs the checks its service runs before proposing or
/// serving it. Errors: the decode error, the method's check error (etcd's code and
/// message), or `Unimplemented` "unknown method <path>" as the services answer.
pub fn unary_request(path: &str, body: Bytes, limits: &Limits) -> Result<Validated, Status> {
    use v3electionpb::{CampaignRequest, LeaderRequest, ProclaimRequest, ResignRequest};
    Ok(match path {
        "/etcdserverpb.KV/Range" => {
            let r: RangeRequest = decode(body)?;
            check_range(&r)?;
            Validated::Range(r)
        }
        "/etcdserverpb.KV/Put" => {
            let r: PutRequest = decode(body)?;
            check_put(&r)?;
            Validated::Put(r)
        }
        "/etcdserverpb.KV/DeleteRange" => {
            let r: DeleteRangeRequest = decode(body)?;
            check_delete(&r)?;
            Validated::DeleteRange(r)
        }
        "/etcdserverpb.KV/Txn" => {
            let r: TxnRequest = decode(body)?;
            check_txn(&r, limits.txn_ops_max)?;
            Validated::Txn(r)
        }
        "/etcdserverpb.KV/Compact" => Validated::Compaction(decode(body)?),
        "/etcdserverpb.Lease/LeaseGrant" => Validated::LeaseGrant(decode(body)?),
        "/etcdserverpb.Lease/LeaseRevoke" => Validated::LeaseRevoke(decode(body)?),
        "/etcdserverpb.Cluster/MemberAdd" => {
            let r: MemberAddRequest = decode(body)?;
            let urls = parse_peer_urls(&r.peer_ur_ls)?;
            Validated::MemberAdd(r, urls)
        }
        "/etcdserverpb.Cluster/MemberUpdate" => {
            let r: MemberUpdateRequest = decode(body)?;
            let urls = parse_peer_urls(&r.peer_ur_ls)?;
            Validated::MemberUpdate(r, urls)
        }
        "/etcdserverpb.Cluster/MemberRemove" => decoded::<MemberRemoveRequest>(body)?,
        "/etcdserverpb.Cluster/MemberList" => decoded::<MemberListRequest>(body)?,
        "/etcdserverpb.Cluster/MemberPromote" => decoded::<MemberPromoteRequest>(body)?,
        "/etcdserverpb.Maintenance/Status" => decoded::<StatusRequest>(body)?,
        "/etcdserverpb.Maintenance/Hash" => decoded::<HashRequest>(body)?,
        "/etcdserverpb.Maintenance/HashKV" => decoded::<HashKvRequest>(body)?,
        "/etcdserverpb.Maintenance/MoveLeader" => decoded::<MoveLeaderRequest>(body)?,
        "/etcdserverpb.Maintenance/Alarm" => decoded::<AlarmRequest>(body)?,
        "/etcdserverpb.Maintenance/Defragment" => decoded::<DefragmentRequest>(body)?,
        "/etcdserverpb.Lease/LeaseTimeToLive" => decoded::<LeaseTimeToLiveRequest>(body)?,
        "/etcdserverpb.Lease/LeaseLeases" => decoded::<LeaseLeasesRequest>(body)?,
        "/v3electionpb.Election/Campaign" => decoded::<CampaignRequest>(body)?,
        "/v3electionpb.Election/Proclaim" => decoded::<ProclaimRequest>(body)?,
        "/v3electionpb.Election/Leader" => decoded::<LeaderRequest>(body)?,
        "/v3electionpb.Election/Resign" => decoded::<ResignRequest>(body)?,
        "/v3lockpb.Lock/Lock" => decoded::<v3lockpb::LockRequest>(body)?,
        "/v3lockpb.Lock/Unlock" => decoded::<v3lockpb::UnlockRequest>(body)?,
        _ => {
            return Err(Status::new(
                net::Code::Unimplemented,
                format!("unknown method {path}"),
            ))
        }
    })
}

fn decoded<M: Message + Default>(body: Bytes) -> Result<Validated, Status> {
    decode::<M>(body).map(|_| Validated::Decoded)
}

/// Every unary method [`unary_request`] knows, by gRPC path.
pub const UNARY_METHODS: &[&str] = &[
    "/etcdserverpb.KV/Range",
    "/etcdserverpb.KV/Put",
    "/etcdserverpb.KV/DeleteRange",
    "/etcdserverpb.KV/Txn",
    "/etcdserverpb.KV/Compact",
    "/etcdserverpb.Lease/LeaseGrant",
    "/etcdserverpb.Lease/LeaseRevoke",
    "/etcdserverpb.Lease/LeaseTimeToLive",
    "/etcdserverpb.Lease/LeaseLeases",
    "/etcdserverpb.Cluster/MemberAdd",
    "/etcdserverpb.Cluster/MemberUpdate",
    "/etcdserverpb.Cluster/MemberRemove",
    "/etcdserverpb.Cluster/MemberList",
    "/etcdserverpb.Cluster/MemberPromote",
    "/etcdserverpb.Maintenance/Status",
    "/etcdserverpb.Maintenance/Hash",
    "/etcdserverpb.Maintenance/HashKV",
    "/etcdserverpb.Maintenance/MoveLeader",
    "/etcdserverpb.Maintenance/Alarm",
    "/etcdserverpb.Maintenance/Defragment",
    "/v3electionpb.Election/Campaign",
    "/v3electionpb.Election/Proclaim",
    "/v3electionpb.Election/Leader",
    "/v3electionpb.Election/Resign",
    "/v3lockpb.Lock/Lock",
    "/v3lockpb.Lock/Unlock",
];

/// The streaming methods whose messages [`stream_message`] decodes.
pub const STREAM_METHODS: &[&str] = &[
    "/etcdserverpb.Watch/Watch",
    "/etcdserverpb.Lease/LeaseKeepAlive",
    "/v3electionpb.Election/Observe",
];

/// Decodes one message of a client stream as its service does (`WatchRequest`,
/// `LeaseKeepAliveRequest`, Observe's `LeaderRequest`). Watch create requests are
/// checked by the watch hub against the stream's state, not here.
pub fn stream_message(path: &str, body: Bytes) -> Result<(), Status> {
    match path {
        "/etcdserverpb.Watch/Watch" => decode::<WatchRequest>(body).map(drop),
        "/etcdserverpb.Lease/LeaseKeepAlive" => decode::<LeaseKeepAliveRequest>(body).map(drop),
        "/v3electionpb.Election/Observe" => decode::<v3electionpb::LeaderRequest>(body).map(drop),
        _ => Err(Status::new(
            net::Code::Unimplemented,
            format!("unknown method {path}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use net::pb::etcdserverpb::request_op::Request;

    const LIMITS: Limits = Limits { txn_ops_max: 128 };

    fn put(key: &str) -> RequestOp {
        RequestOp {
            request: Some(Request::RequestPut(PutRequest {
                key: Bytes::copy_from_slice(key.as_bytes()),
                ..Default::default()
            })),
        }
    }

    fn txn(success: Vec<RequestOp>, failure: Vec<RequestOp>) -> Bytes {
        let t = TxnRequest {
            compare: vec![],
            success,
            failure,
        };
        Bytes::from(t.encode_to_vec())
    }

    #[test]
    fn unary_requests_get_etcds_errors() {
        let call = |path, body| unary_request(path, body, &LIMITS);
        let empty_put = Bytes::from(PutRequest::default().encode_to_vec());
        assert_eq!(
            call("/etcdserverpb.KV/Put", empty_put),
            Err(errors::empty_key())
        );
        let garbage = call("/etcdserverpb.KV/Range", Bytes::from_static(b"\x0a\xff"));
        let status = garbage.unwrap_err();
        assert_eq!(status.code, net::Code::Internal);
        assert!(
            status
                .message
                .starts_with("grpc: error unmarshalling request: "),
            "{status:?}"
        );
        assert_eq!(
            call(
                "/etcdserverpb.KV/Txn",
                txn(vec![put("a"), put("a")], vec![])
            ),
            Err(errors::duplicate_key())
        );
        // The same key put once in each branch of a nested Txn is allowed (checkIntervals).
        let nested = RequestOp {
            request: Some(Request::RequestTxn(TxnRequest {
                compare: vec![],
                success: vec![put("a")],
                failure: vec![put("a")],
            })),
        };
        assert!(call("/etcdserverpb.KV/Txn", txn(vec![nested], vec![])).is_ok());
        let wide = txn((0..129).map(|i| put(&i.to_string())).collect(), vec![]);
        assert_eq!(
            call("/etcdserverpb.KV/Txn", wide),
            Err(errors::too_many_ops())
        );
        let add = MemberAddRequest {
            peer_ur_ls: vec!["http://b:2380".into(), "http://a:2380".into()],
            is_learner: false,
        };
        assert_eq!(
            call(
                "/etcdserverpb.Cluster/MemberAdd",
                Bytes::from(add.encode_to_vec())
            ),
            Ok(Validated::MemberAdd(
                add.clone(),
                vec!["http://a:2380".into(), "http://b:2380".into()]
            ))
        );
        let unknown = call("/etcdserverpb.KV/Nope", Bytes::new()).unwrap_err();
        assert_eq!(unknown.code, net::Code::Unimplemented);
    }

    #[test]
    fn every_method_is_listed_and_known() {
        for path in UNARY_METHODS {
            let r = unary_request(path, Bytes::new(), &LIMITS);
            assert_ne!(
                r.as_ref().err().map(|s| s.code),
                Some(net::Code::Unimplemented),
                "{path}"
            );
        }
        for path in STREAM_METHODS {
            assert!(stream_message(path, Bytes::new()).is_ok(), "{path}");
        }
    }
}
