//! etcd's Cluster service: MemberAdd, MemberRemove, MemberUpdate, MemberList and
//! MemberPromote (etcd `api/v3rpc/member.go`), and Maintenance.MoveLeader.

use bytes::Bytes;
use futures::channel::oneshot;
use net::pb::etcdserverpb::{
    Member, MemberAddRequest, MemberAddResponse, MemberListRequest, MemberListResponse,
    MemberPromoteRequest, MemberPromoteResponse, MemberRemoveRequest, MemberRemoveResponse,
    MemberUpdateRequest, MemberUpdateResponse, MoveLeaderRequest, MoveLeaderResponse,
};
use net::Status;

use crate::cluster::{MemberChange, MemberChangeResult, MemberInfo, RaftRequest};
use crate::service::{await_reply, decode, encode, EtcdService};

/// Every unary method of the Cluster service served here, by gRPC path, and MoveLeader.
pub const UNARY_METHODS: &[&str] = &[
    "/etcdserverpb.Cluster/MemberAdd",
    "/etcdserverpb.Cluster/MemberRemove",
    "/etcdserverpb.Cluster/MemberUpdate",
    "/etcdserverpb.Cluster/MemberList",
    "/etcdserverpb.Cluster/MemberPromote",
    "/etcdserverpb.Maintenance/MoveLeader",
];

/// Serves one method of [`UNARY_METHODS`].
pub async fn unary(svc: &EtcdService, path: &str, body: Bytes) -> Result<Bytes, Status> {
    match path {
        "/etcdserverpb.Cluster/MemberAdd" => {
            let r: MemberAddRequest = decode(body)?;
            let peer_urls = parse_peer_urls(&r.peer_ur_ls)?;
            let result = change(
                svc,
                MemberChange::Add {
                    peer_urls,
                    is_learner: r.is_learner,
                },
            )
            .await?;
            Ok(encode(&MemberAddResponse {
                header: Some(svc.shared().header(0)),
                member: result.member.as_ref().map(MemberInfo::to_pb),
                members: pb_members(svc, &result.members),
            }))
        }
        "/etcdserverpb.Cluster/MemberRemove" => {
            let r: MemberRemoveRequest = decode(body)?;
            let result = change(svc, MemberChange::Remove(r.id)).await?;
            Ok(encode(&MemberRemoveResponse {
                header: Some(svc.shared().header(0)),
                members: pb_members(svc, &result.members),
            }))
        }
        "/etcdserverpb.Cluster/MemberUpdate" => {
            let r: MemberUpdateRequest = decode(body)?;
            let peer_urls = parse_peer_urls(&r.peer_ur_ls)?;
            let result = change(
                svc,
                MemberChange::Update {
                    id: r.id,
                    peer_urls,
                },
            )
            .await?;
            Ok(encode(&MemberUpdateResponse {
                header: Some(svc.shared().header(0)),
                members: pb_members(svc, &result.members),
            }))
        }
        "/etcdserverpb.Cluster/MemberPromote" => {
            let r: MemberPromoteRequest = decode(body)?;
            let result = change(svc, MemberChange::Promote(r.id)).await?;
            Ok(encode(&MemberPromoteResponse {
                header: Some(svc.shared().header(0)),
                members: pb_members(svc, &result.members),
            }))
        }
        "/etcdserverpb.Cluster/MemberList" => {
            let r: MemberListRequest = decode(body)?;
            if r.linearizable {
                svc.read_barrier().await?;
            }
            let members: Vec<MemberInfo> = svc.shared().membership().members().cloned().collect();
            Ok(encode(&MemberListResponse {
                header: Some(svc.shared().header(0)),
                members: pb_members(svc, &members),
            }))
        }
        "/etcdserverpb.Maintenance/MoveLeader" => {
            let r: MoveLeaderRequest = decode(body)?;
            let (reply, done) = oneshot::channel();
            svc.send(RaftRequest::MoveLeader(r.target_id, reply))
                .await?;
            await_reply(done).await??;
            Ok(encode(&MoveLeaderResponse {
                header: Some(svc.shared().header(0)),
            }))
        }
        _ => Err(Status::new(
            net::Code::Unimplemented,
            format!("unknown method {path}"),
        )),
    }
}

async fn change(svc: &EtcdService, change: MemberChange) -> Result<MemberChangeResult, Status> {
    let (reply, done) = oneshot::channel();
    svc.send(RaftRequest::Member(change, reply, true)).await?;
    await_reply(done).await?
}

/// Members as MemberList reports them. This member's own name and client URLs are known
/// before it has published them through Raft.
fn pb_members(svc: &EtcdService, members: &[MemberInfo]) -> Vec<Member> {
    let me = svc.shared().member_id;
    members
        .iter()
        .map(|m| {
            let mut pb = m.to_pb();
            if m.id == me && pb.client_ur_ls.is_empty() {
                pb.name = svc.config().name.clone();
                pb.client_ur_ls = svc.config().client_urls.clone();
            }
            pb
        })
        .collect()
}

pub use server::validate::parse_peer_urls;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::errors;

    #[test]
    fn peer_urls_as_etcd_accepts_them() {
        let ok = parse_peer_urls(&["http://b:2380".into(), "http://a:80".into()]).unwrap();
        assert_eq!(ok, ["http://a:80", "http://b:2380"]);
        for bad in [
            vec![],
            vec!["a:2380".to_string()],
            vec!["ftp://a:2380".to_string()],
            vec!["http://a".to_string()],
            vec!["http://a:2380/path".to_string()],
        ] {
            assert_eq!(
                parse_peer_urls(&bad),
                Err(errors::member_bad_urls()),
                "{bad:?}"
            );
        }
    }
}
