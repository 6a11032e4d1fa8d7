//! The gRPC services every core serves: KV, Maintenance (Status, Hash, HashKV; Snapshot in
//! `api/maintenance.rs`), Cluster
//! (MemberList) here; Watch (`watch/`), Lease (`lease.rs`), Election (`election.rs`) and
//! Lock (`lock.rs`) routed from here to their modules. Decoding, validation and reads
//! happen on the receiving core; writes and linearizable-read barriers go to the raft
//! core over a bounded channel.

use std::cell::Cell;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::Bytes;
use futures::channel::oneshot;
use futures::future::LocalBoxFuture;
use net::pb::etcdserverpb::{
    AlarmRequest, CompactionRequest, DefragmentRequest, DefragmentResponse, DeleteRangeRequest,
    DeleteRangeResponse, HashKvRequest, HashRequest, InternalRaftRequest, PutRequest, RangeRequest,
    RangeResponse, RequestHeader, StatusRequest, StatusResponse, TxnRequest, TxnResponse,
};
use net::{CallContext, GrpcService, Inbound, MethodKind, Outbound, Status};
use prost::Message;

use crate::auth::AuthInfo;
use crate::cluster::{
    encode_entry_data, Applied, Proposal, ProposalReply, RaftRequest, ReadWaiter, Shared,
    ENTRY_DATA_HEADER_BYTES,
};
use crate::errors;
use crate::kv;

/// The etcd API version Cairn implements, reported by Status and `/version`.
pub const ETCD_API_VERSION: &str = "3.6.0";
/// The etcd cluster version reported by `/version`.
pub const ETCD_CLUSTER_VERSION: &str = "3.6.0";
/// Cairn's own version.
pub const CAIRN_VERSION: &str = env!("CARGO_PKG_VERSION");

/// Proposes `$request` as the `$field` of an `InternalRaftRequest`, waits for it to apply
/// and returns the `Applied::$variant` response with its header filled: the one place the
/// propose → match → fill plumbing of the write methods lives (DESIGN.md §8).
macro_rules! applied {
    ($svc:expr, $caller:expr, $field:ident: $request:expr, $variant:ident) => {
        match $svc
            .propose_as(
                $caller,
                InternalRaftRequest {
                    $field: Some($request),
                    ..Default::default()
                },
            )
            .await?
        {
            Applied::$variant(mut resp) => {
                $svc.fill(&mut resp.header);
                resp
            }
            other => unreachable!(concat!(stringify!($variant), " applied as {:?}"), other),
        }
    };
}

/// Per-server settings every core's service reads.
pub struct ServiceConfig {
    /// `--max-request-bytes`: the largest Raft request accepted.
    pub max_request_bytes: usize,
    /// `--max-txn-ops`.
    pub txn_ops_max: usize,
    /// Backend quota in bytes (Status.dbSizeQuota).
    pub quota_backend_bytes: i64,
    /// Member name.
    pub name: String,
    /// Advertised client URLs.
    pub client_urls: Vec<String>,
    /// `--election-timeout`.
    pub election_timeout: std::time::Duration,
    /// Interval of watch progress notifications (etcd `--experimental-watch-progress-notify-interval`).
    pub watch_progress_notify_interval: std::time::Duration,
    /// `--auto-compaction-mode` / `--auto-compaction-retention`.
    pub auto_compaction: crate::config::AutoCompaction,
    /// The member's `member/` folder (Maintenance.Snapshot writes its file there).
    pub member_dir: std::path::PathBuf,
    /// `--client-cert-auth`: a verified client certificate's CommonName is the user of a
    /// call without a token (etcd's CN authentication).
    pub client_cert_auth: bool,
    /// `--bcrypt-cost`: the cost of the password hashes UserAdd and UserChangePassword make.
    pub bcrypt_cost: u32,
}

/// One core's gRPC service.
pub struct EtcdService {
    shared: Arc<Shared>,
    config: Arc<ServiceConfig>,
    raft: flume::Sender<RaftRequest>,
    /// This service's core (where the raft core's answers to it are delivered).
    core: usize,
    id_prefix: u64,
    next_id: Cell<u64>,
    /// Counts this core's calls and message bytes (crate::metrics).
    observer: Rc<crate::metrics::grpc::CoreObserver>,
}

/// Every unary method served, by gRPC path.
const UNARY_METHODS: &[&str] = &[
    "/etcdserverpb.KV/Range",
    "/etcdserverpb.KV/Put",
    "/etcdserverpb.KV/DeleteRange",
    "/etcdserverpb.KV/Txn",
    "/etcdserverpb.KV/Compact",
    "/etcdserverpb.Maintenance/Status",
    "/etcdserverpb.Maintenance/Hash",
    "/etcdserverpb.Maintenance/HashKV",
    "/etcdserverpb.Maintenance/Alarm",
    "/etcdserverpb.Maintenance/Defragment",
];

/// Waits for a reply sent from another core (the raft core); a dropped sender means the
/// raft core stopped, which is etcd's "server stopped" (`errors::stopped`).
pub(crate) async fn await_reply<T>(reply: oneshot::Receiver<T>) -> Result<T, Status> {
    reply.await.map_err(|_| errors::stopped())
}

/// Decodes a request message; a malformed one gets grpc-go's unmarshalling error.
pub(crate) fn decode<M: Message + Default>(body: Bytes) -> Result<M, Status> {
    M::decode(body).map_err(errors::decode_failed)
}

/// Encodes a response message.
pub(crate) fn encode<M: Message>(m: &M) -> Bytes {
    Bytes::from(m.encode_to_vec())
}

impl EtcdService {
    /// A service for core `core`; request IDs are `boot nonce (16 bits) | core (8) | counter (40)`.
    pub fn new(
        shared: Arc<Shared>,
        config: Arc<ServiceConfig>,
        raft: flume::Sender<RaftRequest>,
        core: usize,
        boot_nonce: u16,
    ) -> Self {
        EtcdService {
            shared,
            config,
            raft,
            id_prefix: (u64::from(boot_nonce) << 48) | ((core as u64 & 0xff) << 40),
            core,
            next_id: Cell::new(1),
            observer: crate::metrics::grpc::CoreObserver::new(core),
        }
    }

    /// Sends `request` to the raft core.
    pub(crate) async fn send(&self, request: RaftRequest) -> Result<(), Status> {
        self.raft
            .send_async(request)
            .await
            .map_err(|_| errors::stopped())
    }

    /// Replicates `request` through Raft as `caller` (the header's user and auth revision,
    /// checked where it applies) and waits for its apply result.
    pub(crate) async fn propose_as(
        &self,
        caller: &AuthInfo,
        mut request: InternalRaftRequest,
    ) -> Result<Applied, Status> {
        let counter = self.next_id.get();
        self.next_id.set(counter.wrapping_add(1) & ((1 << 40) - 1));
        let id = self.id_prefix | counter;
        request.header = Some(RequestHeader {
            id,
            username: caller.username.clone(),
            auth_revision: caller.revision,
        });
        let data = encode_entry_data(self.shared.member_id, id, &request);
        if data.len() - ENTRY_DATA_HEADER_BYTES > self.config.max_request_bytes {
            return Err(errors::request_too_large());
        }
        let (reply, result) = ProposalReply::new(self.core);
        let proposal = Box::new(Proposal {
            id,
            data,
            request,
            reply,
        });
        self.send(RaftRequest::Propose(proposal)).await?;
        await_reply(result).await?
    }

    /// etcd's quota check (`quotaAlarmer.check`, `backendQuota.Available`): a request
    /// that would grow the store (`cost` bytes, etcd's estimate) to the quota raises the
    /// NOSPACE alarm for this member through Raft and fails with `etcdserver: mvcc:
    /// database space exceeded`. The store's size is [`engine::MvccReader::size_bytes`].
    pub(crate) async fn check_quota(&self, cost: usize) -> Result<(), Status> {
        let size = self.shared.reader.size_bytes() as i64;
        if cost == 0 || size + (cost as i64) < self.config.quota_backend_bytes {
            return Ok(());
        }
        let raise = AlarmRequest {
            action: crate::alarm::ACTION_ACTIVATE,
            member_id: self.shared.member_id,
            alarm: crate::alarm::ALARM_NOSPACE,
        };
        // etcd ignores the alarm's own outcome too: the request fails either way.
        let alarm = InternalRaftRequest {
            alarm: Some(raise),
            ..Default::default()
        };
        let _ = self.propose_as(&AuthInfo::internal(), alarm).await;
        Err(errors::no_space())
    }

    /// Waits until this member has applied everything committed when the call began.
    pub(crate) async fn read_barrier(&self) -> Result<(), Status> {
        let (reply, done) = ReadWaiter::new(self.core);
        self.send(RaftRequest::ReadIndex(reply)).await?;
        await_reply(done).await?
    }

    /// The state shared with every core.
    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// The server's settings.
    pub(crate) fn config(&self) -> &ServiceConfig {
        &self.config
    }

    fn fill(&self, header: &mut Option<net::pb::etcdserverpb::ResponseHeader>) {
        let revision = header.as_ref().map_or(0, |h| h.revision);
        *header = Some(self.shared.header(revision));
    }

    /// KV Range as the gRPC method serves it (validation, read barrier unless serializable,
    /// `caller`'s read permission, etcd `doSerialize`).
    pub(crate) async fn range_as(
        &self,
        caller: &AuthInfo,
        r: RangeRequest,
    ) -> Result<RangeResponse, Status> {
        kv::check_range(&r)?;
        if !r.serializable {
            self.read_barrier().await?;
        }
        self.check_read(caller, &r.key, &r.range_end)?;
        let mut resp = kv::range(&kv::Pinned::new(&self.shared.reader), &r)?;
        self.check_auth_unchanged(caller)?;
        self.fill(&mut resp.header);
        Ok(resp)
    }

    /// KV Range as the gRPC method answers it: encoded while scanned when etcd's result
    /// is the index order (`range.rs`), otherwise as [`EtcdService::range`].
    async fn range_encoded(&self, caller: &AuthInfo, r: RangeRequest) -> Result<Bytes, Status> {
        if !crate::range::streams(&r) {
            return Ok(encode(&self.range_as(caller, r).await?));
        }
        kv::check_range(&r)?;
        if !r.serializable {
            self.read_barrier().await?;
        }
        self.check_read(caller, &r.key, &r.range_end)?;
        let view = self
            .shared
            .reader
            .view(r.revision.max(0))
            .map_err(|e| errors::from_engine(&e))?;
        let header = self.shared.header(view.current_revision());
        let max = crate::range::MAX_SEND_MESSAGE_BYTES;
        let encoded = crate::range::encode_range(&view, &r, header, max).await?;
        self.check_auth_unchanged(caller)?;
        Ok(encoded)
    }

    /// KV DeleteRange as the gRPC method serves it.
    pub(crate) async fn delete_range_as(
        &self,
        caller: &AuthInfo,
        r: DeleteRangeRequest,
    ) -> Result<DeleteRangeResponse, Status> {
        kv::check_delete(&r)?;
        Ok(applied!(self, caller, delete_range: r, DeleteRange))
    }

    /// KV Txn as the gRPC method serves it (read-only txns served locally).
    pub(crate) async fn txn_as(
        &self,
        caller: &AuthInfo,
        r: TxnRequest,
    ) -> Result<TxnResponse, Status> {
        kv::check_txn(&r, self.config.txn_ops_max)?;
        self.check_quota(quota_cost_txn(&r)).await?;
        if kv::txn_is_read_only(&r) {
            if !kv::txn_is_serializable(&r) {
                self.read_barrier().await?;
            }
            self.check_txn(caller, &r)?;
            let mut resp = kv::txn_read_only(&kv::Pinned::new(&self.shared.reader), &r)?;
            self.check_auth_unchanged(caller)?;
            self.fill(&mut resp.header);
            return Ok(resp);
        }
        Ok(applied!(self, caller, txn: r, Txn))
    }

    async fn call(&self, caller: &AuthInfo, path: &str, body: Bytes) -> Result<Bytes, Status> {
        if CLUSTER_ADMIN_METHODS.contains(&path) {
            self.check_admin(caller)?;
        }
        if MAINTENANCE_ADMIN_METHODS.contains(&path) {
            self.check_admin(caller)
                .map_err(|e| crate::auth::check::as_auth_store_error(&e))?;
        }
        match path {
            "/etcdserverpb.KV/Range" => self.range_encoded(caller, decode(body)?).await,
            "/etcdserverpb.KV/Put" => {
                let r: PutRequest = decode(body)?;
                kv::check_put(&r)?;
                self.check_quota(quota_cost_put(&r)).await?;
                Ok(encode(&applied!(self, caller, put: r, Put)))
            }
            "/etcdserverpb.KV/DeleteRange" => {
                Ok(encode(&self.delete_range_as(caller, decode(body)?).await?))
            }
            "/etcdserverpb.KV/Txn" => Ok(encode(&self.txn_as(caller, decode(body)?).await?)),
            "/etcdserverpb.KV/Compact" => {
                let r: CompactionRequest = decode(body)?;
                Ok(encode(&applied!(self, caller, compaction: r, Compaction)))
            }
            "/etcdserverpb.Maintenance/Status" => {
                let _: StatusRequest = decode(body)?;
                Ok(encode(&self.status()))
            }
            "/etcdserverpb.Maintenance/Hash" => {
                let _: HashRequest = decode(body)?;
                Ok(encode(&crate::cluster::hash_answer(&self.shared).await?))
            }
            "/etcdserverpb.Maintenance/Alarm" => {
                let r: AlarmRequest = decode(body)?;
                // Listing alarms is open to every user, as in etcd 3.4; raising or
                // disarming one is the root role's (etcd 3.4 lets anyone).
                if r.action != crate::alarm::ACTION_GET {
                    self.check_admin(caller)?;
                }
                Ok(encode(&applied!(self, caller, alarm: r, Alarm)))
            }
            "/etcdserverpb.Maintenance/Defragment" => {
                let _: DefragmentRequest = decode(body)?;
                let (reply, done) = oneshot::channel();
                self.send(RaftRequest::Defragment(reply)).await?;
                await_reply(done).await??;
                Ok(encode(&DefragmentResponse {
                    header: Some(self.shared.header(0)),
                }))
            }
            "/etcdserverpb.Maintenance/HashKV" => {
                let r: HashKvRequest = decode(body)?;
                let resp = crate::cluster::hash_kv_answer(&self.shared, r.revision);
                Ok(encode(&resp.await?))
            }
            p if crate::api::cluster::UNARY_METHODS.contains(&p) => {
                crate::api::cluster::unary(self, p, body).await
            }
            p if crate::lease::UNARY_METHODS.contains(&p) => {
                crate::lease::unary(self, caller, p, body).await
            }
            p if crate::api::auth::UNARY_METHODS.contains(&p) => {
                crate::api::auth::unary(self, caller, p, body).await
            }
            _ => Err(Status::new(
                net::Code::Unimplemented,
                format!("unknown method {path}"),
            )),
        }
    }

    fn status(&self) -> StatusResponse {
        let s = &self.shared;
        StatusResponse {
            header: Some(s.header(0)),
            version: ETCD_API_VERSION.to_string(),
            db_size: s.reader.size_bytes() as i64,
            leader: s.leader.load(Ordering::Acquire),
            raft_index: s.commit_index.load(Ordering::Acquire),
            raft_term: s.term.load(Ordering::Acquire),
            raft_applied_index: s.applied_index.load(Ordering::Acquire),
            errors: s
                .alarms
                .read()
                .expect("alarms lock")
                .iter()
                .map(crate::alarm::alarm_text)
                .collect(),
            db_size_in_use: s.reader.size_in_use_bytes() as i64,
            is_learner: s.is_learner.load(Ordering::Acquire),
            storage_version: ETCD_CLUSTER_VERSION.to_string(),
            db_size_quota: self.config.quota_backend_bytes,
            ..Default::default()
        }
    }
}

/// Maintenance methods only a user with the `root` role may call while auth is enabled
/// (etcd 3.4's `authMaintenanceServer`, whose refusals are the auth store's own errors, not
/// mapped to gRPC ones: UNKNOWN `auth: permission denied`). Maintenance.Snapshot, a
/// stream, is checked the same way in `streaming`.
pub(crate) const MAINTENANCE_ADMIN_METHODS: &[&str] = &[
    "/etcdserverpb.Maintenance/Hash",
    "/etcdserverpb.Maintenance/HashKV",
    "/etcdserverpb.Maintenance/Defragment",
    "/etcdserverpb.Maintenance/MoveLeader",
    crate::api::maintenance::SNAPSHOT_METHOD,
];

/// Cluster methods only a user with the `root` role may call while auth is enabled (etcd
/// `checkMembershipOperationPermission`, errors mapped to etcd's gRPC ones).
const CLUSTER_ADMIN_METHODS: &[&str] = &[
    "/etcdserverpb.Cluster/MemberAdd",
    "/etcdserverpb.Cluster/MemberRemove",
    "/etcdserverpb.Cluster/MemberUpdate",
    "/etcdserverpb.Cluster/MemberPromote",
];

/// The service acting for one caller: the in-process client of Election and Lock (etcd's
/// v3election and v3lock call the server through a client carrying the caller's token).
/// Its KV methods are the service's, checked and proposed as the caller; everything else
/// is the service's own (`Deref`).
pub(crate) struct Client {
    /// The service.
    pub(crate) svc: Rc<EtcdService>,
    /// Who the calls act as.
    pub(crate) caller: AuthInfo,
}

impl Client {
    /// The service acting as `caller`.
    pub(crate) fn new(svc: Rc<EtcdService>, caller: AuthInfo) -> Client {
        Client { svc, caller }
    }

    /// [`EtcdService::range_as`] as this client's caller.
    pub(crate) async fn range(&self, r: RangeRequest) -> Result<RangeResponse, Status> {
        self.svc.range_as(&self.caller, r).await
    }

    /// [`EtcdService::txn_as`] as this client's caller.
    pub(crate) async fn txn(&self, r: TxnRequest) -> Result<TxnResponse, Status> {
        self.svc.txn_as(&self.caller, r).await
    }

    /// [`EtcdService::delete_range_as`] as this client's caller.
    pub(crate) async fn delete_range(
        &self,
        r: DeleteRangeRequest,
    ) -> Result<DeleteRangeResponse, Status> {
        self.svc.delete_range_as(&self.caller, r).await
    }
}

impl std::ops::Deref for Client {
    type Target = EtcdService;
    fn deref(&self) -> &EtcdService {
        &self.svc
    }
}

/// etcd's estimate of a key's metadata in the backend (`quota.go` `kvOverhead`).
pub const QUOTA_KV_OVERHEAD_BYTES: usize = 256;
/// etcd's estimate of a lease in the backend (`quota.go` `leaseOverhead`).
pub const QUOTA_LEASE_OVERHEAD_BYTES: usize = 64;

/// etcd `costPut`.
pub fn quota_cost_put(r: &PutRequest) -> usize {
    QUOTA_KV_OVERHEAD_BYTES + r.key.len() + r.value.len()
}

/// etcd `costTxn`: the larger of the two branches' direct puts.
pub fn quota_cost_txn(r: &TxnRequest) -> usize {
    use net::pb::etcdserverpb::request_op::Request;
    let branch = |ops: &[net::pb::etcdserverpb::RequestOp]| -> usize {
        ops.iter()
            .map(|op| match &op.request {
                Some(Request::RequestPut(p)) => quota_cost_put(p),
                _ => 0,
            })
            .sum()
    };
    branch(&r.success).max(branch(&r.failure))
}

/// gRPC metadata a client sets to be refused at once while the member has no leader
/// (etcd `rpctypes.MetadataRequireLeaderKey`, value `MetadataHasLeader`).
pub const REQUIRE_LEADER_KEY: &str = "hasleader";
/// Election timeouts without a leader after which a stream that asked for a leader ends
/// (etcd `maxNoLeaderCnt`).
pub const NO_LEADER_ELECTIONS_MAX: u32 = 3;

/// Whether the call carries `hasleader: true`.
fn requires_leader(ctx: &CallContext) -> bool {
    ctx.metadata
        .get(REQUIRE_LEADER_KEY)
        .is_some_and(|v| v.as_bytes() == b"true")
}

impl EtcdService {
    /// etcd's interceptors: a call carrying `hasleader: true` fails with `etcdserver: no
    /// leader` while this member knows no leader.
    fn check_require_leader(&self, ctx: &CallContext) -> Result<(), Status> {
        if requires_leader(ctx) && self.shared.leader.load(Ordering::Acquire) == 0 {
            return Err(errors::no_leader());
        }
        Ok(())
    }
}

/// What a learner serves (etcd 3.4 `isRPCSupportedForLearner`): Status and serializable
/// Range only.
fn unary_supported_for_learner(path: &str, request: &Bytes) -> bool {
    match path {
        "/etcdserverpb.Maintenance/Status" => true,
        "/etcdserverpb.KV/Range" => {
            RangeRequest::decode(request.clone()).is_ok_and(|r| r.serializable)
        }
        _ => false,
    }
}

impl GrpcService for EtcdService {
    fn observer(&self) -> Option<Rc<dyn net::CallObserver>> {
        Some(self.observer.clone())
    }

    fn method_kind(&self, path: &str) -> Option<MethodKind> {
        let streaming = [
            crate::lease::KEEP_ALIVE_METHOD,
            crate::watch::WATCH_METHOD,
            crate::election::OBSERVE_METHOD,
            crate::api::maintenance::SNAPSHOT_METHOD,
        ];
        if streaming.contains(&path) {
            return Some(MethodKind::Streaming);
        }
        (UNARY_METHODS.contains(&path)
            || crate::api::cluster::UNARY_METHODS.contains(&path)
            || crate::lease::UNARY_METHODS.contains(&path)
            || crate::api::auth::UNARY_METHODS.contains(&path)
            || crate::election::UNARY_METHODS.contains(&path)
            || crate::lock::UNARY_METHODS.contains(&path))
        .then_some(MethodKind::Unary)
    }

    fn unary(
        self: Rc<Self>,
        ctx: CallContext,
        request: Bytes,
    ) -> LocalBoxFuture<'static, Result<Bytes, Status>> {
        if let Err(status) = self.check_require_leader(&ctx) {
            return Box::pin(async { Err(status) });
        }
        if self.shared.is_learner.load(Ordering::Acquire)
            && !unary_supported_for_learner(&ctx.path, &request)
        {
            return Box::pin(async { Err(errors::not_supported_for_learner()) });
        }
        Box::pin(async move {
            let caller = match self.caller(&ctx).await {
                Ok(caller) => caller,
                Err(e) if MAINTENANCE_ADMIN_METHODS.contains(&ctx.path.as_str()) => {
                    return Err(crate::auth::check::as_auth_store_error(&e))
                }
                Err(e) => return Err(e),
            };
            if crate::election::UNARY_METHODS.contains(&ctx.path.as_str()) {
                let client = Rc::new(Client::new(self, caller));
                return crate::election::unary(client, ctx.path, request).await;
            }
            if crate::lock::UNARY_METHODS.contains(&ctx.path.as_str()) {
                let client = Rc::new(Client::new(self, caller));
                return crate::lock::unary(client, ctx.path, request).await;
            }
            crate::supervise::panic_point!("grpc-unary", ctx.path);
            self.call(&caller, &ctx.path, request).await
        })
    }

    fn streaming(
        self: Rc<Self>,
        ctx: CallContext,
        _inbound: Inbound,
        _outbound: Outbound,
    ) -> LocalBoxFuture<'static, Result<(), Status>> {
        if let Err(status) = self.check_require_leader(&ctx) {
            return Box::pin(async { Err(status) });
        }
        if self.shared.is_learner.load(Ordering::Acquire) {
            // etcd 3.4 serves no stream on a learner.
            return Box::pin(async { Err(errors::not_supported_for_learner()) });
        }
        let needs_leader = requires_leader(&ctx);
        let svc = self.clone();
        let stream: LocalBoxFuture<'static, Result<(), Status>> = Box::pin(async move {
            // Every stream first finds its caller: a bad token ends it at once, as etcd's
            // interceptors do.
            let caller = match svc.caller(&ctx).await {
                Ok(caller) => caller,
                Err(e) if ctx.path == crate::api::maintenance::SNAPSHOT_METHOD => {
                    return Err(crate::auth::check::as_auth_store_error(&e))
                }
                Err(e) => return Err(e),
            };
            let path = ctx.path.as_str();
            if path == crate::lease::KEEP_ALIVE_METHOD {
                crate::lease::keep_alive(svc, _inbound, _outbound).await
            } else if path == crate::watch::WATCH_METHOD {
                let check: crate::watch::CreateCheck = Box::new(move |c| svc.check_watch(&ctx, c));
                crate::watch::serve_stream(_inbound, _outbound, check).await
            } else if path == crate::election::OBSERVE_METHOD {
                let client = Rc::new(Client::new(svc, caller));
                crate::election::observe(client, _inbound, _outbound).await
            } else if path == crate::api::maintenance::SNAPSHOT_METHOD {
                svc.check_admin(&caller)
                    .map_err(|e| crate::auth::check::as_auth_store_error(&e))?;
                crate::api::maintenance::snapshot(svc, _inbound, _outbound).await
            } else {
                // method_kind reports no other streaming method, so the transport never
                // calls this.
                Err(Status::new(
                    net::Code::Unimplemented,
                    format!("unknown method {path}"),
                ))
            }
        });
        if !needs_leader {
            return stream;
        }
        // etcd's monitorLeader: a stream that asked for a leader ends with `no leader`
        // once this member has had none for NO_LEADER_ELECTIONS_MAX election timeouts.
        let shared = self.shared.clone();
        let election = self.config.election_timeout;
        Box::pin(async move {
            let monitor = async move {
                let mut without = 0;
                loop {
                    glommio::timer::sleep(election).await;
                    if shared.leader.load(Ordering::Acquire) == 0 {
                        without += 1;
                    } else {
                        without = 0;
                    }
                    if without >= NO_LEADER_ELECTIONS_MAX {
                        return Err(errors::no_leader());
                    }
                }
            };
            futures_lite::future::or(stream, monitor).await
        })
    }
}
