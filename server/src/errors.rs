//! etcd's client-facing errors, with the exact gRPC codes and messages clients match on.
//!
//! Source: etcd `api/v3rpc/rpctypes/error.go` (3.4 and 3.6 agree on every one used here).

use net::{Code, Status};

macro_rules! etcd_errors {
    ($($(#[$doc:meta])* $name:ident => ($code:ident, $msg:literal);)*) => {
        $(
            $(#[$doc])*
            pub fn $name() -> Status {
                Status::new(Code::$code, $msg)
            }
        )*
    };
}

etcd_errors! {
    /// `ErrGRPCEmptyKey`.
    empty_key => (InvalidArgument, "etcdserver: key is not provided");
    /// `ErrGRPCKeyNotFound` (ignore_value/ignore_lease on a missing key, empty request op).
    key_not_found => (InvalidArgument, "etcdserver: key not found");
    /// `ErrGRPCValueProvided`.
    value_provided => (InvalidArgument, "etcdserver: value is provided");
    /// `ErrGRPCLeaseProvided`.
    lease_provided => (InvalidArgument, "etcdserver: lease is provided");
    /// `ErrGRPCTooManyOps`.
    too_many_ops => (InvalidArgument, "etcdserver: too many operations in txn request");
    /// `ErrGRPCDuplicateKey`.
    duplicate_key => (InvalidArgument, "etcdserver: duplicate key given in txn request");
    /// `ErrGRPCCompacted`.
    compacted => (OutOfRange, "etcdserver: mvcc: required revision has been compacted");
    /// `ErrGRPCFutureRev`.
    future_rev => (OutOfRange, "etcdserver: mvcc: required revision is a future revision");
    /// `ErrGRPCLeaseNotFound`.
    lease_not_found => (NotFound, "etcdserver: requested lease not found");
    /// `ErrGRPCRequestTooLarge`.
    request_too_large => (InvalidArgument, "etcdserver: request is too large");
    /// `ErrGRPCNoLeader`.
    no_leader => (Unavailable, "etcdserver: no leader");
    /// `ErrGRPCStopped`.
    stopped => (Unavailable, "etcdserver: server stopped");
    /// `ErrGRPCNoSpace`: a write while the NOSPACE alarm is raised, or past the quota.
    no_space => (ResourceExhausted, "etcdserver: mvcc: database space exceeded");
    /// `ErrGRPCCorrupt`: a request while the CORRUPT alarm is raised.
    corrupt => (DataLoss, "etcdserver: corrupt cluster");
    /// `ErrGRPCTimeout`: a proposal or read not answered within the request timeout.
    timeout => (Unavailable, "etcdserver: request timed out");
    /// `ErrGRPCTimeoutDueToLeaderFail`: as `timeout`, with a leader change meanwhile.
    timeout_due_to_leader_fail => (Unavailable, "etcdserver: request timed out, possibly due to previous leader failure");
    /// `ErrGRPCLeaderChanged`: a linearizable read whose leader changed before it was confirmed.
    leader_changed => (Unavailable, "etcdserver: leader changed");
    /// `ErrGRPCMemberNotFound`.
    member_not_found => (NotFound, "etcdserver: member not found");
    /// `ErrGRPCMemberExist`.
    member_exist => (FailedPrecondition, "etcdserver: member ID already exist");
    /// `ErrGRPCPeerURLExist`.
    peer_url_exist => (FailedPrecondition, "etcdserver: Peer URLs already exists");
    /// `ErrGRPCMemberBadURLs`.
    member_bad_urls => (InvalidArgument, "etcdserver: given member URLs are invalid");
    /// `ErrGRPCMemberNotLearner`.
    member_not_learner => (FailedPrecondition, "etcdserver: can only promote a learner member");
    /// `ErrGRPCLearnerNotReady`.
    learner_not_ready => (FailedPrecondition, "etcdserver: can only promote a learner member which is in sync with leader");
    /// `ErrGRPCTooManyRequests`: more reads waiting for a read index than Raft holds.
    too_many_requests => (ResourceExhausted, "etcdserver: too many requests");
    /// `ErrGRPCNotLeader`.
    not_leader => (FailedPrecondition, "etcdserver: not leader");
    /// `ErrGRPCBadLeaderTransferee`.
    bad_leader_transferee => (FailedPrecondition, "etcdserver: bad leader transferee");
    /// `ErrTimeoutLeaderTransfer` (not in rpctypes: grpc-go reports it as UNKNOWN).
    timeout_leader_transfer => (Unknown, "etcdserver: request timed out, leader transfer took too long");
    /// `ErrGRPCTooManyLearners`.
    too_many_learners => (FailedPrecondition, "etcdserver: too many learner members in cluster");
    /// `ErrGRPCMemberNotEnoughStarted`.
    member_not_enough_started => (FailedPrecondition, "etcdserver: re-configuration failed due to not enough started members");
    /// `ErrGRPCNotSupportedForLearner`.
    not_supported_for_learner => (Unavailable, "etcdserver: rpc not supported for learner");
    /// `ErrGRPCRootUserNotExist`: AuthEnable without a `root` user.
    root_user_not_exist => (FailedPrecondition, "etcdserver: root user does not exist");
    /// `ErrGRPCRootRoleNotExist`: AuthEnable while `root` lacks the `root` role.
    root_role_not_exist => (FailedPrecondition, "etcdserver: root user does not have root role");
    /// `ErrGRPCUserAlreadyExist`.
    user_already_exist => (FailedPrecondition, "etcdserver: user name already exists");
    /// `ErrGRPCUserEmpty`: a user name of "" in UserAdd, or a request without a user while
    /// auth is enabled.
    user_empty => (InvalidArgument, "etcdserver: user name is empty");
    /// `ErrGRPCUserNotFound`.
    user_not_found => (FailedPrecondition, "etcdserver: user name not found");
    /// `ErrGRPCRoleAlreadyExist`.
    role_already_exist => (FailedPrecondition, "etcdserver: role name already exists");
    /// `ErrGRPCRoleNotFound`.
    role_not_found => (FailedPrecondition, "etcdserver: role name not found");
    /// `ErrGRPCRoleEmpty`.
    role_empty => (InvalidArgument, "etcdserver: role name is empty");
    /// `ErrGRPCAuthFailed`: Authenticate with an unknown user, a wrong password, or a user
    /// without a password.
    auth_failed => (InvalidArgument, "etcdserver: authentication failed, invalid user ID or password");
    /// `ErrGRPCPermissionDenied`.
    permission_denied => (PermissionDenied, "etcdserver: permission denied");
    /// `ErrGRPCRoleNotGranted`.
    role_not_granted => (FailedPrecondition, "etcdserver: role is not granted to the user");
    /// `ErrGRPCPermissionNotGranted`.
    permission_not_granted => (FailedPrecondition, "etcdserver: permission is not granted to the role");
    /// `ErrGRPCAuthNotEnabled`.
    auth_not_enabled => (FailedPrecondition, "etcdserver: authentication is not enabled");
    /// `ErrGRPCInvalidAuthToken`: a token that is unknown, expired, or badly signed.
    invalid_auth_token => (Unauthenticated, "etcdserver: invalid auth token");
    /// `ErrGRPCInvalidAuthMgmt`: revoking the `root` role from `root` while auth is enabled.
    invalid_auth_mgmt => (InvalidArgument, "etcdserver: invalid auth management");
    /// `ErrGRPCAuthOldRevision`: the request was authorized at an auth revision the store
    /// has since moved past.
    auth_old_revision => (InvalidArgument, "etcdserver: revision of auth store is old");

}

/// A protobuf message that does not decode: grpc-go's codec error text.
pub fn decode_failed(err: prost::DecodeError) -> Status {
    Status::new(
        Code::Internal,
        format!("grpc: error unmarshalling request: {err}"),
    )
}

/// Maps an engine error to the status etcd returns for the same failure.
pub fn from_engine(err: &engine::Error) -> Status {
    match err {
        engine::Error::Compacted => compacted(),
        engine::Error::FutureRevision => future_rev(),
        other => Status::new(Code::Internal, other.to_string()),
    }
}
