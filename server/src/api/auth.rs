//! The Auth service (etcd `etcdserver/api/v3rpc/auth.go`, the Auth part of
//! `etcdserver/v3_server.go`). Every method goes through Raft as the caller; passwords are
//! hashed and checked with bcrypt on glommio's blocking thread, never on an executor
//! (the raft core's or a serving core's), as etcd 3.5 hashes in the API layer.

use base64::Engine;
use bytes::Bytes;
use net::pb::etcdserverpb::{
    AuthUserAddRequest, AuthUserChangePasswordRequest, AuthenticateRequest,
    InternalAuthenticateRequest, InternalRaftRequest,
};
use net::{Code, Status};

use crate::auth::AuthInfo;
use crate::cluster::Applied;
use crate::errors;
use crate::service::{decode, EtcdService};

/// Every method of the Auth service, by gRPC path.
pub const UNARY_METHODS: &[&str] = &[
    "/etcdserverpb.Auth/AuthEnable",
    "/etcdserverpb.Auth/AuthDisable",
    "/etcdserverpb.Auth/AuthStatus",
    "/etcdserverpb.Auth/Authenticate",
    "/etcdserverpb.Auth/UserAdd",
    "/etcdserverpb.Auth/UserGet",
    "/etcdserverpb.Auth/UserList",
    "/etcdserverpb.Auth/UserDelete",
    "/etcdserverpb.Auth/UserChangePassword",
    "/etcdserverpb.Auth/UserGrantRole",
    "/etcdserverpb.Auth/UserRevokeRole",
    "/etcdserverpb.Auth/RoleAdd",
    "/etcdserverpb.Auth/RoleGet",
    "/etcdserverpb.Auth/RoleList",
    "/etcdserverpb.Auth/RoleDelete",
    "/etcdserverpb.Auth/RoleGrantPermission",
    "/etcdserverpb.Auth/RoleRevokePermission",
];

/// Authenticate retries while the auth store changes between the password check and the
/// token's apply (etcd loops without a bound; a store changing this often is an attack or
/// a bug, answered with "revision of auth store is old").
pub const AUTHENTICATE_ATTEMPTS_MAX: usize = 16;

/// etcd 3.4 `auth.ErrNoPasswordUser`, which its gRPC layer does not map (so UNKNOWN).
fn no_password_user() -> Status {
    Status::new(
        Code::Unknown,
        "auth: authentication failed, password was given for no password user",
    )
}

/// Serves one method of [`UNARY_METHODS`] for `caller`.
pub async fn unary(
    svc: &EtcdService,
    caller: &AuthInfo,
    path: &str,
    body: Bytes,
) -> Result<Bytes, Status> {
    let mut request = InternalRaftRequest::default();
    match path {
        "/etcdserverpb.Auth/Authenticate" => return authenticate(svc, decode(body)?).await,
        "/etcdserverpb.Auth/AuthEnable" => request.auth_enable = Some(decode(body)?),
        "/etcdserverpb.Auth/AuthDisable" => request.auth_disable = Some(decode(body)?),
        "/etcdserverpb.Auth/AuthStatus" => request.auth_status = Some(decode(body)?),
        "/etcdserverpb.Auth/UserAdd" => {
            let mut r: AuthUserAddRequest = decode(body)?;
            if !r.options.as_ref().is_some_and(|o| o.no_password) {
                r.hashed_password = hash_password(svc, std::mem::take(&mut r.password)).await?;
            }
            request.auth_user_add = Some(r);
        }
        "/etcdserverpb.Auth/UserChangePassword" => {
            let mut r: AuthUserChangePasswordRequest = decode(body)?;
            r.hashed_password = hash_password(svc, std::mem::take(&mut r.password)).await?;
            request.auth_user_change_password = Some(r);
        }
        "/etcdserverpb.Auth/UserGet" => request.auth_user_get = Some(decode(body)?),
        "/etcdserverpb.Auth/UserList" => request.auth_user_list = Some(decode(body)?),
        "/etcdserverpb.Auth/UserDelete" => request.auth_user_delete = Some(decode(body)?),
        "/etcdserverpb.Auth/UserGrantRole" => request.auth_user_grant_role = Some(decode(body)?),
        "/etcdserverpb.Auth/UserRevokeRole" => request.auth_user_revoke_role = Some(decode(body)?),
        "/etcdserverpb.Auth/RoleAdd" => request.auth_role_add = Some(decode(body)?),
        "/etcdserverpb.Auth/RoleGet" => request.auth_role_get = Some(decode(body)?),
        "/etcdserverpb.Auth/RoleList" => request.auth_role_list = Some(decode(body)?),
        "/etcdserverpb.Auth/RoleDelete" => request.auth_role_delete = Some(decode(body)?),
        "/etcdserverpb.Auth/RoleGrantPermission" => {
            request.auth_role_grant_permission = Some(decode(body)?)
        }
        "/etcdserverpb.Auth/RoleRevokePermission" => {
            request.auth_role_revoke_permission = Some(decode(body)?)
        }
        _ => {
            return Err(Status::new(
                Code::Unimplemented,
                format!("unknown method {path}"),
            ))
        }
    }
    applied_auth(svc, caller, request).await
}

async fn applied_auth(
    svc: &EtcdService,
    caller: &AuthInfo,
    request: InternalRaftRequest,
) -> Result<Bytes, Status> {
    match svc.propose_as(caller, request).await? {
        Applied::Auth(encoded) => Ok(encoded),
        other => unreachable!("an Auth request applied as {other:?}"),
    }
}

/// bcrypt at `--bcrypt-cost`, base64 as etcd 3.5's `hashedPassword`.
async fn hash_password(svc: &EtcdService, password: String) -> Result<String, Status> {
    let cost = svc.config().bcrypt_cost;
    let hashed = glommio::executor()
        .spawn_blocking(move || bcrypt::hash(password, cost))
        .await
        .map_err(|e| Status::new(Code::Unknown, format!("bcrypt: {e}")))?;
    Ok(base64::engine::general_purpose::STANDARD.encode(hashed))
}

/// etcd `EtcdServer.Authenticate`: a linearizable read first, the password checked against
/// the hash at some auth revision, the token assigned through Raft (so every member
/// knows a simple token); retried if the store changed in between.
async fn authenticate(svc: &EtcdService, r: AuthenticateRequest) -> Result<Bytes, Status> {
    svc.read_barrier().await?;
    for _ in 0..AUTHENTICATE_ATTEMPTS_MAX {
        let store = svc.shared().auth.read().expect("auth lock").clone();
        if !store.enabled() {
            return Err(errors::auth_not_enabled());
        }
        let user = store.user(&r.name).ok_or_else(errors::auth_failed)?;
        if user.options.as_ref().is_some_and(|o| o.no_password) {
            return Err(no_password_user());
        }
        let hash = String::from_utf8_lossy(&user.password).into_owned();
        let checked_revision = store.revision();
        let password = r.password.clone();
        let matches = glommio::executor()
            .spawn_blocking(move || bcrypt::verify(password, &hash).unwrap_or(false))
            .await;
        if !matches {
            tracing::warn!(user = %r.name, "invalid authentication was requested");
            return Err(errors::auth_failed());
        }
        let request = InternalRaftRequest {
            authenticate: Some(InternalAuthenticateRequest {
                name: r.name.clone(),
                password: String::new(),
                simple_token: svc.shared().tokens.gen_prefix(),
            }),
            ..Default::default()
        };
        let resp = applied_auth(svc, &AuthInfo::default(), request).await?;
        let current = svc.shared().auth.read().expect("auth lock").revision();
        if checked_revision == current {
            return Ok(resp);
        }
        tracing::info!("revision when password checked became stale; retrying");
    }
    Err(errors::auth_old_revision())
}
