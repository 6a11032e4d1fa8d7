//! etcd's authentication and RBAC (etcd `auth/`): the auth store the raft core applies
//! requests to (`store.rs`), the token providers (`token.rs`: `simple` and `jwt`), and the
//! checks every call passes (`check.rs`).

pub mod check;
pub mod store;
pub mod token;

/// Who a request acts as, and the auth store revision it was authorized at (etcd
/// `auth.AuthInfo`). A revision of 0 means "no user" (etcd's empty `AuthInfo{}`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuthInfo {
    /// The user name.
    pub username: String,
    /// The auth store revision (not an MVCC revision) the token or certificate was
    /// checked at.
    pub revision: u64,
}

impl AuthInfo {
    /// The identity of the server's own requests (automatic compaction, the quota's
    /// NOSPACE alarm): they pass every check.
    pub fn internal() -> AuthInfo {
        AuthInfo {
            username: String::new(),
            revision: store::INTERNAL_REVISION,
        }
    }
}
