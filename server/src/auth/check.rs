//! Who a call acts as, and the checks made on the receiving core before a request is
//! served or proposed (etcd `AuthInfoFromCtx`, `AuthInfoFromTLS`, `doSerialize`,
//! `isWatchPermitted`, the maintenance and cluster servers' `IsAdminPermitted`). Writes
//! are checked again where they apply (`cluster/driver/auth.rs`), with the user and auth
//! revision found here.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use net::pb::etcdserverpb::{TxnRequest, WatchCreateRequest};
use net::{CallContext, Status};

use super::store::{Access, AuthStore};
use super::token::simple_token_index;
use super::AuthInfo;
use crate::errors;
use crate::service::EtcdService;

/// gRPC metadata carrying the token (etcd `rpctypes.TokenFieldNameGRPC`).
pub const TOKEN_METADATA: &str = "token";
/// The gateway's header carrying the token (etcd `rpctypes.TokenFieldNameSwagger`).
pub const TOKEN_METADATA_GATEWAY: &str = "authorization";

impl EtcdService {
    /// The auth store as of the applied index, `None` while auth is disabled (the checks'
    /// fast path: no lock taken).
    pub(crate) fn auth_store(&self) -> Option<Arc<AuthStore>> {
        let shared = self.shared();
        if !shared.auth_enabled.load(Ordering::Acquire) {
            return None;
        }
        Some(shared.auth.read().expect("auth lock").clone())
    }

    fn auth_revision(&self) -> u64 {
        self.shared().auth.read().expect("auth lock").revision()
    }

    /// The caller of `ctx` (etcd `EtcdServer.AuthInfoFromCtx`): the token's user when the
    /// call carries one (invalid, expired or revoked → "etcdserver: invalid auth token");
    /// else, with `--client-cert-auth`, the verified client certificate's CommonName;
    /// else nobody (`AuthInfo::default()`). A simple token names the Raft index of its
    /// Authenticate: a member that has not applied it yet first catches up (etcd
    /// `isValidSimpleToken` waits the same way).
    pub(crate) async fn caller(&self, ctx: &CallContext) -> Result<AuthInfo, Status> {
        if let Some(token) = token_of(ctx) {
            let index = token.ok().and_then(simple_token_index);
            if index.is_some_and(|i| i > self.shared().applied_index.load(Ordering::Acquire)) {
                self.read_barrier().await?;
            }
        }
        self.caller_now(ctx)
    }

    /// [`EtcdService::caller`] without waiting for a simple token's index.
    pub(crate) fn caller_now(&self, ctx: &CallContext) -> Result<AuthInfo, Status> {
        if let Some(token) = token_of(ctx) {
            let token = token.map_err(|()| errors::invalid_auth_token())?;
            return self
                .shared()
                .tokens
                .info(token, self.auth_revision())
                .ok_or_else(errors::invalid_auth_token);
        }
        if self.config().client_cert_auth {
            if let Some(cn) = &ctx.common_name {
                return Ok(AuthInfo {
                    username: cn.to_string(),
                    revision: self.auth_revision(),
                });
            }
        }
        Ok(AuthInfo::default())
    }

    /// etcd `IsAdminPermitted` on the serving core (Maintenance, Cluster changes).
    pub(crate) fn check_admin(&self, caller: &AuthInfo) -> Result<(), Status> {
        match self.auth_store() {
            None => Ok(()),
            Some(auth) => auth.check_admin(caller),
        }
    }

    /// etcd `IsRangePermitted` on the serving core.
    pub(crate) fn check_read(
        &self,
        caller: &AuthInfo,
        key: &[u8],
        range_end: &[u8],
    ) -> Result<(), Status> {
        match self.auth_store() {
            None => Ok(()),
            Some(auth) => auth.check_op(caller, key, range_end, Access::Read),
        }
    }

    /// etcd `checkTxnAuth` for a read-only Txn served here.
    pub(crate) fn check_txn(&self, caller: &AuthInfo, t: &TxnRequest) -> Result<(), Status> {
        match self.auth_store() {
            None => Ok(()),
            Some(auth) => crate::cluster::check_txn_auth(&auth, caller, t),
        }
    }

    /// etcd `doSerialize`'s last step: a read checked at one auth revision fails with
    /// "revision of auth store is old" if the store changed while it was served.
    pub(crate) fn check_auth_unchanged(&self, caller: &AuthInfo) -> Result<(), Status> {
        if caller.revision != 0
            && caller.revision != super::store::INTERNAL_REVISION
            && caller.revision != self.auth_revision()
        {
            return Err(errors::auth_old_revision());
        }
        Ok(())
    }

    /// etcd `isWatchPermitted` for one create request of a Watch stream opened with
    /// `ctx`: `Err(cancel reason)` as etcd words it (the gRPC error's Go text, e.g.
    /// `rpc error: code = PermissionDenied desc = etcdserver: permission denied`). A
    /// `--from-key` watch is checked over its whole range (etcd 3.4 checks only its first
    /// key).
    pub(crate) fn check_watch(
        &self,
        ctx: &CallContext,
        c: &WatchCreateRequest,
    ) -> Result<(), String> {
        let Some(auth) = self.auth_store() else {
            return Ok(());
        };
        let key: &[u8] = if c.key.is_empty() { &[0] } else { &c.key };
        self.caller_now(ctx)
            .and_then(|caller| auth.check_op(&caller, key, &c.range_end, Access::Read))
            .map_err(|s| go_error_text(&s))
    }
}

/// The call's token: `Some(Err(()))` for one that is not text.
fn token_of(ctx: &CallContext) -> Option<Result<&str, ()>> {
    let value = ctx
        .metadata
        .get(TOKEN_METADATA)
        .or_else(|| ctx.metadata.get(TOKEN_METADATA_GATEWAY))?;
    Some(value.to_str().map_err(|_| ()))
}

/// grpc-go's `status.Error(...).Error()` text of an auth error.
fn go_error_text(s: &Status) -> String {
    let code = match s.code {
        net::Code::PermissionDenied => "PermissionDenied",
        net::Code::InvalidArgument => "InvalidArgument",
        net::Code::Unauthenticated => "Unauthenticated",
        net::Code::FailedPrecondition => "FailedPrecondition",
        _ => "Unknown",
    };
    format!("rpc error: code = {code} desc = {}", s.message)
}

/// An auth refusal as etcd 3.4's maintenance server returns it: the auth store's error
/// unmapped, so grpc-go sends UNKNOWN with the `auth:` text (`auth/store.go` errors).
pub(crate) fn as_auth_store_error(s: &Status) -> Status {
    let text = match s.message.as_str() {
        "etcdserver: permission denied" => "auth: permission denied",
        "etcdserver: user name is empty" => "auth: user name is empty",
        "etcdserver: user name not found" => "auth: user not found",
        "etcdserver: invalid auth token" => "auth: invalid auth token",
        _ => return s.clone(),
    };
    Status::new(net::Code::Unknown, text)
}
