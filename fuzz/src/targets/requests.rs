//! Every etcd request a client can send, decoded with prost from arbitrary bytes and run
//! through the checks the services run (`server::validate`: etcd's `check*Request`,
//! `checkIntervals`, `types.NewURLs`).
//!
//! Input: `method selector u8 | request bytes`; the selector picks the gRPC method
//! (unary, then streaming) and `--max-txn-ops` (128, etcd's default, or 3). Properties:
//! an error is etcd's exact code and one of its messages (or grpc-go's unmarshalling
//! error); an accepted request re-encodes to bytes that decode to the same request and
//! pass the same checks, and it survives the `InternalRaftRequest` round trip that puts
//! it into the Raft log; a Txn keeps `--max-txn-ops` per branch at every level.

use bytes::Bytes;
use net::pb::etcdserverpb::{
    compare, request_op, CompactionRequest, Compare, DeleteRangeRequest, InternalRaftRequest,
    LeaseGrantRequest, LeaseKeepAliveRequest, LeaseRevokeRequest, MemberAddRequest,
    MemberUpdateRequest, PutRequest, RangeRequest, RequestOp, TxnRequest, WatchCreateRequest,
    WatchRequest,
};
use net::pb::{v3electionpb, v3lockpb};
use net::{Code, Status};
use prost::Message;
use server::errors;
use server::validate::{self, Limits, Validated, STREAM_METHODS, UNARY_METHODS};

use crate::{Target, Verdict};

/// `--max-txn-ops` values tried: etcd's default and a small one.
const TXN_OPS_MAX: [usize; 2] = [128, 3];

pub(crate) struct Requests;

fn method_count() -> usize {
    UNARY_METHODS.len() + STREAM_METHODS.len()
}

fn selector(path: &str) -> u8 {
    let all = UNARY_METHODS.iter().chain(STREAM_METHODS);
    all.clone()
        .position(|p| *p == path)
        .expect("a known method") as u8
}

/// The errors validation may give, besides the unmarshalling error.
fn expected_errors() -> Vec<Status> {
    vec![
        errors::empty_key(),
        errors::key_not_found(),
        errors::value_provided(),
        errors::lease_provided(),
        errors::too_many_ops(),
        errors::duplicate_key(),
        errors::member_bad_urls(),
    ]
}

fn wrap(v: &Validated) -> Option<InternalRaftRequest> {
    let mut r = InternalRaftRequest::default();
    match v {
        Validated::Range(q) => r.range = Some(q.clone()),
        Validated::Put(q) => r.put = Some(q.clone()),
        Validated::DeleteRange(q) => r.delete_range = Some(q.clone()),
        Validated::Txn(q) => r.txn = Some(q.clone()),
        Validated::Compaction(q) => r.compaction = Some(*q),
        Validated::LeaseGrant(q) => r.lease_grant = Some(*q),
        Validated::LeaseRevoke(q) => r.lease_revoke = Some(*q),
        _ => return None,
    }
    Some(r)
}

fn encoded(v: &Validated) -> Option<Vec<u8>> {
    Some(match v {
        Validated::Range(q) => q.encode_to_vec(),
        Validated::Put(q) => q.encode_to_vec(),
        Validated::DeleteRange(q) => q.encode_to_vec(),
        Validated::Txn(q) => q.encode_to_vec(),
        Validated::Compaction(q) => q.encode_to_vec(),
        Validated::LeaseGrant(q) => q.encode_to_vec(),
        Validated::LeaseRevoke(q) => q.encode_to_vec(),
        Validated::MemberAdd(q, _) => q.encode_to_vec(),
        Validated::MemberUpdate(q, _) => q.encode_to_vec(),
        Validated::Decoded => return None,
    })
}

/// Most operations of any branch at any level of `t`.
fn txn_width_ok(t: &TxnRequest, max: usize) -> bool {
    let opc = t.compare.len().max(t.success.len()).max(t.failure.len());
    opc <= max
        && t.success
            .iter()
            .chain(&t.failure)
            .all(|op| match &op.request {
                Some(request_op::Request::RequestTxn(inner)) => txn_width_ok(inner, max - opc),
                _ => true,
            })
}

fn check_accepted(path: &str, v: &Validated, limits: &Limits) -> Result<(), String> {
    if let Some(bytes) = encoded(v) {
        let again = validate::unary_request(path, Bytes::from(bytes), limits)
            .map_err(|e| format!("re-encoded request refused: {e:?}"))?;
        if again != *v {
            return Err("re-encoded request decoded differently".into());
        }
    }
    if let Some(entry) = wrap(v) {
        let back = InternalRaftRequest::decode(entry.encode_to_vec().as_slice())
            .map_err(|e| format!("InternalRaftRequest does not decode back: {e}"))?;
        if back != entry {
            return Err("InternalRaftRequest round trip changed the request".into());
        }
    }
    match v {
        Validated::Txn(t) if !txn_width_ok(t, limits.txn_ops_max) => {
            Err("a Txn wider than --max-txn-ops was accepted".into())
        }
        Validated::MemberAdd(_, urls) | Validated::MemberUpdate(_, urls)
            if urls.is_empty() || urls.windows(2).any(|w| w[0] > w[1]) =>
        {
            Err("peer URLs accepted empty or unsorted".into())
        }
        _ => Ok(()),
    }
}

impl Target for Requests {
    fn name(&self) -> &'static str {
        "requests"
    }

    fn seeds(&mut self) -> Vec<Vec<u8>> {
        let b = |s: &str| Bytes::copy_from_slice(s.as_bytes());
        let op = |r| RequestOp { request: Some(r) };
        let range = RangeRequest {
            key: b("foo"),
            range_end: b("fop"),
            limit: 10,
            revision: 3,
            ..Default::default()
        };
        let put = PutRequest {
            key: b("foo"),
            value: b("bar"),
            lease: 7,
            prev_kv: true,
            ..Default::default()
        };
        let delete = DeleteRangeRequest {
            key: b("a"),
            range_end: b("b"),
            ..Default::default()
        };
        let inner = TxnRequest {
            compare: vec![],
            success: vec![op(request_op::Request::RequestPut(PutRequest {
                key: b("x"),
                ..put.clone()
            }))],
            failure: vec![op(request_op::Request::RequestPut(PutRequest {
                key: b("x"),
                ..put.clone()
            }))],
        };
        let txn = TxnRequest {
            compare: vec![Compare {
                key: b("foo"),
                result: compare::CompareResult::Equal as i32,
                target: compare::CompareTarget::Value as i32,
                target_union: Some(compare::TargetUnion::Value(b("bar"))),
                ..Default::default()
            }],
            success: vec![
                op(request_op::Request::RequestPut(put.clone())),
                op(request_op::Request::RequestRange(range.clone())),
                op(request_op::Request::RequestTxn(inner)),
            ],
            failure: vec![op(request_op::Request::RequestDeleteRange(delete.clone()))],
        };
        let urls = vec![
            "http://10.0.0.1:2380".to_string(),
            "https://[::1]:2380".to_string(),
        ];
        let unary: Vec<(&str, Vec<u8>)> = vec![
            ("/etcdserverpb.KV/Range", range.encode_to_vec()),
            ("/etcdserverpb.KV/Put", put.encode_to_vec()),
            ("/etcdserverpb.KV/DeleteRange", delete.encode_to_vec()),
            ("/etcdserverpb.KV/Txn", txn.encode_to_vec()),
            (
                "/etcdserverpb.KV/Compact",
                CompactionRequest {
                    revision: 5,
                    physical: true,
                }
                .encode_to_vec(),
            ),
            (
                "/etcdserverpb.Lease/LeaseGrant",
                LeaseGrantRequest { ttl: 10, id: 0 }.encode_to_vec(),
            ),
            (
                "/etcdserverpb.Lease/LeaseRevoke",
                LeaseRevokeRequest { id: 7 }.encode_to_vec(),
            ),
            (
                "/etcdserverpb.Cluster/MemberAdd",
                MemberAddRequest {
                    peer_ur_ls: urls.clone(),
                    is_learner: true,
                }
                .encode_to_vec(),
            ),
            (
                "/etcdserverpb.Cluster/MemberUpdate",
                MemberUpdateRequest {
                    id: 9,
                    peer_ur_ls: urls,
                }
                .encode_to_vec(),
            ),
            (
                "/v3electionpb.Election/Campaign",
                v3electionpb::CampaignRequest {
                    name: b("e"),
                    lease: 7,
                    value: b("v"),
                }
                .encode_to_vec(),
            ),
            (
                "/v3lockpb.Lock/Lock",
                v3lockpb::LockRequest {
                    name: b("l"),
                    lease: 7,
                }
                .encode_to_vec(),
            ),
            (
                "/etcdserverpb.Watch/Watch",
                WatchRequest {
                    request_union: Some(
                        net::pb::etcdserverpb::watch_request::RequestUnion::CreateRequest(
                            WatchCreateRequest {
                                key: b("foo"),
                                range_end: b("fop"),
                                start_revision: 2,
                                prev_kv: true,
                                ..Default::default()
                            },
                        ),
                    ),
                }
                .encode_to_vec(),
            ),
            (
                "/etcdserverpb.Lease/LeaseKeepAlive",
                LeaseKeepAliveRequest { id: 7 }.encode_to_vec(),
            ),
        ];
        unary
            .into_iter()
            .map(|(path, body)| {
                let mut s = vec![selector(path)];
                s.extend(body);
                s
            })
            .collect()
    }

    fn execute(&mut self, input: &[u8]) -> Result<Verdict, String> {
        let [sel, body @ ..] = input else {
            return Ok(Verdict::Rejected);
        };
        let n = method_count();
        let i = *sel as usize % n;
        let limits = Limits {
            txn_ops_max: TXN_OPS_MAX[(*sel as usize / n) % TXN_OPS_MAX.len()],
        };
        let body = Bytes::copy_from_slice(body);
        let (path, outcome) = match UNARY_METHODS.get(i) {
            Some(path) => (
                *path,
                validate::unary_request(path, body, &limits).map(Some),
            ),
            None => {
                let path = STREAM_METHODS[i - UNARY_METHODS.len()];
                (path, validate::stream_message(path, body).map(|()| None))
            }
        };
        match outcome {
            Ok(Some(v)) => {
                check_accepted(path, &v, &limits)?;
                Ok(Verdict::Accepted)
            }
            Ok(None) => Ok(Verdict::Accepted),
            Err(status) => {
                let unmarshal = status.code == Code::Internal
                    && status
                        .message
                        .starts_with("grpc: error unmarshalling request: ");
                if unmarshal || expected_errors().contains(&status) {
                    Ok(Verdict::Rejected)
                } else {
                    Err(format!("{path}: unexpected error {status:?}"))
                }
            }
        }
    }
}
