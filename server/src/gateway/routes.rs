//! The gateway's routes: HTTP path → gRPC method, as etcd 3.4's generated grpc-gateway
//! registers them (`etcdserver/etcdserverpb/gw/rpc.pb.gw.go`,
//! `etcdserver/api/v3election/v3electionpb/gw/v3election.pb.gw.go`,
//! `etcdserver/api/v3lock/v3lockpb/gw/v3lock.pb.gw.go`). Every route is `POST`.

/// The path prefixes the gateway answers under. etcd 3.4 serves `/v3/` and rewrites
/// `/v3beta/` to it (`embed/serve.go`); `/v3alpha/` (etcd 3.3) is accepted too.
pub const PREFIXES: [&str; 3] = ["/v3/", "/v3beta/", "/v3alpha/"];

/// Path after the prefix → gRPC method path. Where two gRPC methods share a path
/// (`maintenance/hash`: Hash and HashKV), etcd's mux answers with the first registered
/// one, Hash (checked against etcd 3.4.23: the reply carries `hash`, no `hash_revision`).
const ROUTES: &[(&str, &str)] = &[
    ("kv/range", "/etcdserverpb.KV/Range"),
    ("kv/put", "/etcdserverpb.KV/Put"),
    ("kv/deleterange", "/etcdserverpb.KV/DeleteRange"),
    ("kv/txn", "/etcdserverpb.KV/Txn"),
    ("kv/compaction", "/etcdserverpb.KV/Compact"),
    ("watch", "/etcdserverpb.Watch/Watch"),
    ("lease/grant", "/etcdserverpb.Lease/LeaseGrant"),
    ("lease/revoke", "/etcdserverpb.Lease/LeaseRevoke"),
    ("kv/lease/revoke", "/etcdserverpb.Lease/LeaseRevoke"),
    ("lease/keepalive", "/etcdserverpb.Lease/LeaseKeepAlive"),
    ("lease/timetolive", "/etcdserverpb.Lease/LeaseTimeToLive"),
    ("kv/lease/timetolive", "/etcdserverpb.Lease/LeaseTimeToLive"),
    ("lease/leases", "/etcdserverpb.Lease/LeaseLeases"),
    ("kv/lease/leases", "/etcdserverpb.Lease/LeaseLeases"),
    ("cluster/member/add", "/etcdserverpb.Cluster/MemberAdd"),
    (
        "cluster/member/remove",
        "/etcdserverpb.Cluster/MemberRemove",
    ),
    (
        "cluster/member/update",
        "/etcdserverpb.Cluster/MemberUpdate",
    ),
    ("cluster/member/list", "/etcdserverpb.Cluster/MemberList"),
    (
        "cluster/member/promote",
        "/etcdserverpb.Cluster/MemberPromote",
    ),
    ("maintenance/alarm", "/etcdserverpb.Maintenance/Alarm"),
    ("maintenance/status", "/etcdserverpb.Maintenance/Status"),
    (
        "maintenance/defragment",
        "/etcdserverpb.Maintenance/Defragment",
    ),
    ("maintenance/hash", "/etcdserverpb.Maintenance/Hash"),
    ("maintenance/snapshot", "/etcdserverpb.Maintenance/Snapshot"),
    (
        "maintenance/transfer-leadership",
        "/etcdserverpb.Maintenance/MoveLeader",
    ),
    ("auth/enable", "/etcdserverpb.Auth/AuthEnable"),
    ("auth/disable", "/etcdserverpb.Auth/AuthDisable"),
    ("auth/authenticate", "/etcdserverpb.Auth/Authenticate"),
    ("auth/user/add", "/etcdserverpb.Auth/UserAdd"),
    ("auth/user/get", "/etcdserverpb.Auth/UserGet"),
    ("auth/user/list", "/etcdserverpb.Auth/UserList"),
    ("auth/user/delete", "/etcdserverpb.Auth/UserDelete"),
    (
        "auth/user/changepw",
        "/etcdserverpb.Auth/UserChangePassword",
    ),
    ("auth/user/grant", "/etcdserverpb.Auth/UserGrantRole"),
    ("auth/user/revoke", "/etcdserverpb.Auth/UserRevokeRole"),
    ("auth/role/add", "/etcdserverpb.Auth/RoleAdd"),
    ("auth/role/get", "/etcdserverpb.Auth/RoleGet"),
    ("auth/role/list", "/etcdserverpb.Auth/RoleList"),
    ("auth/role/delete", "/etcdserverpb.Auth/RoleDelete"),
    ("auth/role/grant", "/etcdserverpb.Auth/RoleGrantPermission"),
    (
        "auth/role/revoke",
        "/etcdserverpb.Auth/RoleRevokePermission",
    ),
    ("election/campaign", "/v3electionpb.Election/Campaign"),
    ("election/proclaim", "/v3electionpb.Election/Proclaim"),
    ("election/leader", "/v3electionpb.Election/Leader"),
    ("election/observe", "/v3electionpb.Election/Observe"),
    ("election/resign", "/v3electionpb.Election/Resign"),
    ("lock/lock", "/v3lockpb.Lock/Lock"),
    ("lock/unlock", "/v3lockpb.Lock/Unlock"),
];

/// Whether `path` (the request target without its query) is under a gateway prefix.
pub fn is_gateway_path(path: &str) -> bool {
    PREFIXES.iter().any(|prefix| path.starts_with(prefix))
}

/// The gRPC method path for a gateway path (e.g. `/v3beta/kv/put` →
/// `/etcdserverpb.KV/Put`), or `None` when no route matches (etcd: 404 "Not Found").
pub fn method_for(path: &str) -> Option<&'static str> {
    let rest = PREFIXES
        .iter()
        .find_map(|prefix| path.strip_prefix(prefix))?;
    ROUTES
        .iter()
        .find(|(route, _)| *route == rest)
        .map(|(_, method)| *method)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_and_aliases() {
        assert_eq!(method_for("/v3/kv/put"), Some("/etcdserverpb.KV/Put"));
        assert_eq!(method_for("/v3beta/kv/put"), Some("/etcdserverpb.KV/Put"));
        assert_eq!(method_for("/v3alpha/kv/put"), Some("/etcdserverpb.KV/Put"));
        assert_eq!(
            method_for("/v3/kv/lease/timetolive"),
            method_for("/v3/lease/timetolive")
        );
        assert_eq!(method_for("/v3/lock/lock"), Some("/v3lockpb.Lock/Lock"));
        assert_eq!(method_for("/v3/kv/nothere"), None);
        assert_eq!(method_for("/v3/kv/put/"), None);
        assert_eq!(method_for("/v4/kv/put"), None);
        assert!(is_gateway_path("/v3beta/watch"));
        assert!(!is_gateway_path("/version"));
    }

    #[test]
    fn every_route_names_an_etcd_method() {
        for (route, method) in ROUTES {
            assert!(
                net::pb::method_kind(method).is_some(),
                "{route} → {method} is not a method of etcd's API"
            );
        }
    }
}
