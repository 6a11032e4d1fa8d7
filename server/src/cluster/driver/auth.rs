//! The auth store on the raft core (etcd `etcdserver/apply_auth.go`, the auth part of
//! `apply.go`): Auth requests applied, admin permission required where etcd's
//! `needAdminPermission` says, and the permission checks writes pass at apply, with the
//! user and auth revision the receiving member put in the request header.

use std::sync::Arc;

use base64::Engine;
use bytes::Bytes;
use net::pb::etcdserverpb::{
    request_op, AuthDisableResponse, AuthEnableResponse, AuthRoleAddResponse,
    AuthRoleDeleteResponse, AuthRoleGrantPermissionResponse, AuthRoleListResponse,
    AuthRoleRevokePermissionResponse, AuthStatusResponse, AuthUserAddResponse,
    AuthUserChangePasswordResponse, AuthUserDeleteResponse, AuthUserGrantRoleResponse,
    AuthUserListResponse, AuthUserRevokeRoleResponse, AuthenticateResponse, InternalRaftRequest,
    RequestOp, TxnRequest,
};
use net::Status;
use prost::Message;
use tracing::info;

use super::{Applied, RaftCore};
use crate::auth::store::{Access, AuthStore};
use crate::auth::AuthInfo;

/// The user and auth revision a request was proposed with (etcd `authApplierV3.Apply`).
pub(crate) fn request_auth_info(request: &InternalRaftRequest) -> AuthInfo {
    request
        .header
        .as_ref()
        .map(|h| AuthInfo {
            username: h.username.clone(),
            revision: h.auth_revision,
        })
        .unwrap_or_default()
}

/// etcd `needAdminPermission`.
fn needs_admin(r: &InternalRaftRequest) -> bool {
    r.auth_enable.is_some()
        || r.auth_disable.is_some()
        || r.auth_user_add.is_some()
        || r.auth_user_delete.is_some()
        || r.auth_user_change_password.is_some()
        || r.auth_user_grant_role.is_some()
        || r.auth_user_revoke_role.is_some()
        || r.auth_role_add.is_some()
        || r.auth_role_grant_permission.is_some()
        || r.auth_role_revoke_permission.is_some()
        || r.auth_role_delete.is_some()
        || r.auth_user_list.is_some()
        || r.auth_role_list.is_some()
}

/// A password's bcrypt hash from the request: etcd 3.5's base64 `hashedPassword`, made by
/// the receiving member; a request without one (written by a member that does not hash)
/// is hashed here at etcd's default cost.
fn password_hash(hashed: &str, password: &str) -> Result<Bytes, Status> {
    if !hashed.is_empty() {
        return base64::engine::general_purpose::STANDARD
            .decode(hashed)
            .map(Bytes::from)
            .map_err(|_| crate::errors::auth_failed());
    }
    bcrypt::hash(password, bcrypt::DEFAULT_COST)
        .map(|h| Bytes::from(h.into_bytes()))
        .map_err(|e| Status::new(net::Code::Internal, format!("bcrypt: {e}")))
}

/// Checks every compare and every op of both branches, nested txns included (etcd
/// `checkTxnAuth`; etcd 3.4 skips nested txns, which would let one through unchecked).
pub(crate) fn check_txn(auth: &AuthStore, info: &AuthInfo, t: &TxnRequest) -> Result<(), Status> {
    for c in &t.compare {
        auth.check_op(info, &c.key, &c.range_end, Access::Read)?;
    }
    let ops = |ops: &[RequestOp]| -> Result<(), Status> {
        for op in ops {
            match &op.request {
                Some(request_op::Request::RequestRange(r)) => {
                    auth.check_op(info, &r.key, &r.range_end, Access::Read)?
                }
                Some(request_op::Request::RequestPut(p)) => {
                    auth.check_op(info, &p.key, &[], Access::Write)?
                }
                Some(request_op::Request::RequestDeleteRange(d)) => {
                    if d.prev_kv {
                        auth.check_op(info, &d.key, &d.range_end, Access::Read)?;
                    }
                    auth.check_op(info, &d.key, &d.range_end, Access::Write)?
                }
                Some(request_op::Request::RequestTxn(nested)) => check_txn(auth, info, nested)?,
                None => {}
            }
        }
        Ok(())
    };
    ops(&t.success)?;
    ops(&t.failure)
}

impl RaftCore {
    /// The auth store as the cores see it.
    fn publish_auth(&self) {
        self.shared
            .auth_enabled
            .store(self.auth.enabled(), std::sync::atomic::Ordering::Release);
        *self.shared.auth.write().expect("auth lock") = self.auth.clone();
        crate::metrics::get()
            .auth_revision
            .set(self.auth.revision() as i64);
    }

    /// Replaces the auth store (snapshot install, recovery) and publishes it.
    pub(super) fn set_auth(&mut self, auth: AuthStore) {
        self.auth = Arc::new(auth);
        if self.auth.enabled() {
            self.shared.tokens.enable();
        } else {
            self.shared.tokens.disable();
        }
        self.publish_auth();
    }

    /// The permission checks of etcd's `authApplierV3` for KV, lease and compaction
    /// requests: `Some(error)` refuses the request before it changes anything.
    pub(super) fn auth_refuses(&self, request: &InternalRaftRequest) -> Option<Status> {
        if !self.auth.enabled() {
            return None;
        }
        let info = request_auth_info(request);
        let auth = &*self.auth;
        let lease_keys_writable = |id: i64| -> Result<(), Status> {
            for key in self.lessor.keys_of(id) {
                auth.check_op(&info, &key, &[], Access::Write)?;
            }
            Ok(())
        };
        let checked = if let Some(put) = &request.put {
            auth.check_op(&info, &put.key, &[], Access::Write)
                .and_then(|()| lease_keys_writable(put.lease))
                .and_then(|()| match put.prev_kv {
                    true => auth.check_op(&info, &put.key, &[], Access::Read),
                    false => Ok(()),
                })
        } else if let Some(d) = &request.delete_range {
            auth.check_op(&info, &d.key, &d.range_end, Access::Write)
                .and_then(|()| match d.prev_kv {
                    true => auth.check_op(&info, &d.key, &d.range_end, Access::Read),
                    false => Ok(()),
                })
        } else if let Some(txn) = &request.txn {
            check_txn(auth, &info, txn)
        } else if let Some(revoke) = &request.lease_revoke {
            lease_keys_writable(revoke.id)
        } else if request.compaction.is_some() {
            // Compaction drops history every user shares: root only.
            auth.check_admin(&info)
        } else {
            Ok(())
        };
        checked.err()
    }

    /// Applies an Auth request (`None` for any other request), answering with the encoded
    /// response, its header filled.
    pub(super) fn apply_auth(
        &mut self,
        request: &InternalRaftRequest,
        index: u64,
    ) -> Option<Result<Applied, Status>> {
        let is_auth = needs_admin(request)
            || request.authenticate.is_some()
            || request.auth_status.is_some()
            || request.auth_user_get.is_some()
            || request.auth_role_get.is_some();
        if !is_auth {
            return None;
        }
        let info = request_auth_info(request);
        if needs_admin(request) {
            if let Err(e) = self.auth.check_admin(&info) {
                return Some(Err(e));
            }
        }
        let revision_before = self.auth.revision();
        let enabled_before = self.auth.enabled();
        let answer = self.apply_auth_request(request, &info, index);
        if self.auth.revision() != revision_before || self.auth.enabled() != enabled_before {
            self.publish_auth();
        }
        Some(answer.map(Applied::Auth))
    }

    fn apply_auth_request(
        &mut self,
        r: &InternalRaftRequest,
        info: &AuthInfo,
        index: u64,
    ) -> Result<Bytes, Status> {
        let header = Some(self.shared.header(0));
        let tokens = self.shared.tokens.clone();
        if let Some(a) = &r.authenticate {
            self.auth.authenticate(&a.name)?;
            let token = tokens.assign(&a.simple_token, index, &a.name, self.auth.revision())?;
            return Ok(AuthenticateResponse { header, token }
                .encode_to_vec()
                .into());
        }
        if r.auth_status.is_some() {
            let resp = AuthStatusResponse {
                header,
                enabled: self.auth.enabled(),
                auth_revision: self.auth.revision(),
            };
            return Ok(resp.encode_to_vec().into());
        }
        if let Some(g) = &r.auth_user_get {
            if let Err(e) = self.auth.check_admin(info) {
                if g.name != info.username {
                    return Err(e);
                }
            }
            let mut resp = self.auth.user_get(&g.name)?;
            resp.header = header;
            return Ok(resp.encode_to_vec().into());
        }
        if let Some(g) = &r.auth_role_get {
            if let Err(e) = self.auth.check_admin(info) {
                if !self.auth.has_role(&info.username, &g.role) {
                    return Err(e);
                }
            }
            let mut resp = self.auth.role_get(&g.role)?;
            resp.header = header;
            return Ok(resp.encode_to_vec().into());
        }
        if r.auth_user_list.is_some() {
            let users = self.auth.user_list();
            return Ok(AuthUserListResponse { header, users }
                .encode_to_vec()
                .into());
        }
        if r.auth_role_list.is_some() {
            let roles = self.auth.role_list();
            return Ok(AuthRoleListResponse { header, roles }
                .encode_to_vec()
                .into());
        }
        // Everything below changes the store.
        let auth = Arc::make_mut(&mut self.auth);
        let response = if r.auth_enable.is_some() {
            auth.enable()?;
            tokens.enable();
            info!("enabled authentication");
            AuthEnableResponse { header }.encode_to_vec()
        } else if r.auth_disable.is_some() {
            auth.disable();
            tokens.disable();
            info!("disabled authentication");
            AuthDisableResponse { header }.encode_to_vec()
        } else if let Some(u) = &r.auth_user_add {
            let no_password = u.options.as_ref().is_some_and(|o| o.no_password);
            let hashed = match no_password {
                true => Bytes::new(),
                false => password_hash(&u.hashed_password, &u.password)?,
            };
            auth.user_add(u, hashed)?;
            info!(user = %u.name, "added a user");
            AuthUserAddResponse { header }.encode_to_vec()
        } else if let Some(u) = &r.auth_user_delete {
            auth.user_delete(&u.name)?;
            tokens.invalidate_user(&u.name);
            info!(user = %u.name, "deleted a user");
            AuthUserDeleteResponse { header }.encode_to_vec()
        } else if let Some(u) = &r.auth_user_change_password {
            let hashed = password_hash(&u.hashed_password, &u.password)?;
            auth.user_change_password(u, hashed)?;
            tokens.invalidate_user(&u.name);
            info!(user = %u.name, "changed a password of a user");
            AuthUserChangePasswordResponse { header }.encode_to_vec()
        } else if let Some(g) = &r.auth_user_grant_role {
            auth.user_grant_role(g)?;
            AuthUserGrantRoleResponse { header }.encode_to_vec()
        } else if let Some(g) = &r.auth_user_revoke_role {
            auth.user_revoke_role(g)?;
            AuthUserRevokeRoleResponse { header }.encode_to_vec()
        } else if let Some(a) = &r.auth_role_add {
            auth.role_add(&a.name)?;
            AuthRoleAddResponse { header }.encode_to_vec()
        } else if let Some(d) = &r.auth_role_delete {
            auth.role_delete(&d.role)?;
            AuthRoleDeleteResponse { header }.encode_to_vec()
        } else if let Some(g) = &r.auth_role_grant_permission {
            auth.role_grant_permission(g)?;
            AuthRoleGrantPermissionResponse { header }.encode_to_vec()
        } else if let Some(g) = &r.auth_role_revoke_permission {
            auth.role_revoke_permission(g)?;
            AuthRoleRevokePermissionResponse { header }.encode_to_vec()
        } else {
            unreachable!("apply_auth_request called for a request that is not an Auth one")
        };
        Ok(response.into())
    }
}
