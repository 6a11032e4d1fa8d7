//! The raft core: the one executor task that owns the Raft node, the WAL and the MVCC
//! writer, talks to the other members, and runs the apply loop (DESIGN.md §2–3).
//!
//! Loop: wait for a request, a peer message or the next tick → drain every queued one
//! (that is the batch) → `Ready` → append entries and hard state to the WAL → ONE
//! `fdatasync` through io_uring (group commit: whatever arrives meanwhile waits in the
//! channel and forms the next batch) → send messages to peers → apply committed entries →
//! reply → advance. Messages leave only after the state they depend on is durable
//! (etcd-io/raft's Ready contract), so no member acknowledges what it could lose, and no
//! client sees success before its entry is durable on a quorum. A failed fsync stops the
//! process.

use crate::logging::fatal_storage;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use engine::{Mvcc, MvccReader, Wal};
use futures::channel::oneshot;
use futures::future::LocalBoxFuture;
use net::pb::etcdserverpb::{
    CompactionResponse, DeleteRangeResponse, InternalRaftRequest, LeaseGrantResponse,
    LeaseRevokeResponse, PutResponse, ResponseHeader, TxnResponse,
};
use net::pb::membershippb::{Attributes, ClusterMemberAttrSetRequest};
use net::Status;
use prost::Message as _;
use raft::{MemStorage, MessageType, RawNode, StateRole, Storage as _};
use tracing::{debug, error, info, warn};

mod apply;
mod auth;
pub(crate) use auth::check_txn as check_txn_auth;
mod checkpoint;
mod maintenance;
mod reconfigure;
mod slow_apply;
mod snapshot;

pub use maintenance::SnapshotCut;

use super::membership::Membership;
use super::peers;
use super::pending::{request_timeout, MemberChangeReply, MoveLeaderReply, Pending};
use super::reconfig::MemberChange;
use super::replies::{Delivery, Outbox, ProposalReply, ReadWaiter};
use super::storage::{
    encode_entry, encode_u64s, Recovered, StateMeta, RECEIVED_SNAPSHOT_DIR, REC_ENTRY,
    REC_HARD_STATE,
};
use crate::errors;
use crate::lease::{self, LeaseAnswer, LeaseQuery, Lessor};

/// Entries kept in the log behind a checkpoint so that slightly lagging followers catch up
/// from the log (etcd `SnapshotCatchUpEntries`).
pub const SNAPSHOT_CATCH_UP_ENTRIES: u64 = 5_000;
/// Most requests taken from the channel into one Raft batch.
pub const BATCH_REQUESTS_MAX: usize = 4_096;
/// Bytes of entry data before the request protobuf: origin member ID and request ID.
pub const ENTRY_DATA_HEADER_BYTES: usize = 16;

/// A write on its way through Raft.
pub struct Proposal {
    /// Request ID, unique among this member's requests (the key its reply waits under).
    pub id: u64,
    /// Entry data: `origin member u64 LE | id u64 LE | InternalRaftRequest protobuf`
    /// (see [`encode_entry_data`]).
    pub data: Bytes,
    /// The decoded request, so the apply loop need not decode `data` again.
    pub request: InternalRaftRequest,
    /// Where the apply result goes.
    pub reply: ProposalReply,
}

/// What the cores and the peer transport send the raft core.
pub enum RaftRequest {
    /// Replicate and apply a write (boxed: the decoded request is large).
    Propose(Box<Proposal>),
    /// Linearizable-read barrier: answered once the applied index reaches the read index.
    ReadIndex(ReadWaiter),
    /// A lease query answered from the lessor without a log entry (renew, TimeToLive,
    /// Leases). When this member does not lead and the flag is set, renew and TimeToLive
    /// are forwarded to the leader (etcd forwards them over its peer port); queries that
    /// peers forwarded here carry `false`, so they are never forwarded twice.
    Lease(
        LeaseQuery,
        oneshot::Sender<Result<LeaseAnswer, Status>>,
        bool,
    ),
    /// Raft messages from a peer, in the order it sent them.
    Peer(Vec<raft::Message>),
    /// A membership change (Cluster service); answered once applied. A promotion reaching
    /// a follower is forwarded to the leader (only it knows whether the learner caught
    /// up, etcd `PromoteMember`) when the flag is set; peers' forwarded ones carry `false`.
    Member(MemberChange, MemberChangeReply, bool),
    /// Maintenance.MoveLeader: answered once the transferee leads.
    MoveLeader(u64, MoveLeaderReply),
    /// A snapshot from the leader, received whole into `snapshot.received`: step its
    /// message; the reply says whether it was installed.
    InstallSnapshot(raft::Message, oneshot::Sender<Result<(), String>>),
    /// How sending a snapshot to a member ended (`true`: failed), for Raft's flow control.
    SnapshotStatus(u64, bool),
    /// Maintenance.Snapshot: a consistent cut of the state machine at the applied index.
    Snapshot(oneshot::Sender<SnapshotCut>),
    /// Propose an alarm on this member's own account (the periodic corruption check).
    RaiseAlarm(net::pb::etcdserverpb::AlarmRequest),
    /// Maintenance.Defragment: answered once the store's garbage is reclaimed.
    Defragment(oneshot::Sender<Result<(), Status>>),
    /// Finish the current batch, sync, stop.
    Shutdown(oneshot::Sender<()>),
}

/// The result of applying one write request (headers carry only the revision; the
/// service fills the cluster/member IDs and term).
#[derive(Debug)]
pub enum Applied {
    /// Put.
    Put(PutResponse),
    /// DeleteRange.
    DeleteRange(DeleteRangeResponse),
    /// Txn.
    Txn(TxnResponse),
    /// Compaction.
    Compaction(CompactionResponse),
    /// LeaseGrant.
    LeaseGrant(LeaseGrantResponse),
    /// LeaseRevoke.
    LeaseRevoke(LeaseRevokeResponse),
    /// A member's published name and client URLs (no client waits for it).
    MemberAttributes,
    /// Lease remaining TTLs recorded (no client waits for it).
    LeaseCheckpoint,
    /// Alarm (GET, ACTIVATE, DEACTIVATE).
    Alarm(net::pb::etcdserverpb::AlarmResponse),
    /// An Auth request's response, encoded, its header filled (`driver/auth.rs`).
    Auth(Bytes),
}

/// State every core reads: IDs, Raft progress, members, the MVCC reader.
pub struct Shared {
    /// This member's ID.
    pub member_id: u64,
    /// The cluster's ID.
    pub cluster_id: u64,
    /// Current Raft term.
    pub term: AtomicU64,
    /// Raft commit index.
    pub commit_index: AtomicU64,
    /// Raft applied index.
    pub applied_index: AtomicU64,
    /// Current leader's member ID (0 = none).
    pub leader: AtomicU64,
    /// Whether this member is a learner.
    pub is_learner: AtomicBool,
    /// Whether the applied member table holds this member's name and client URLs: etcd
    /// serves clients only after publishing them ("ready to serve client requests"), and
    /// `/health` reports healthy only after it too.
    pub published: AtomicBool,
    /// The member table as of the applied index (replaced whole on every change).
    pub members: RwLock<Arc<Membership>>,
    /// Read view of the MVCC store.
    pub reader: MvccReader,
    /// Publishes every applied revision's events to the watch hubs (crate::watch).
    pub watch: crate::watch::WatchPublisher,
    /// The raised alarms as of the applied index (`/health`, Status.errors).
    pub alarms: RwLock<Arc<Vec<net::pb::etcdserverpb::AlarmMember>>>,
    /// The auth store as of the applied index (replaced whole on every change).
    pub auth: RwLock<Arc<crate::auth::store::AuthStore>>,
    /// Whether auth is enabled as of the applied index: the checks' fast path.
    pub auth_enabled: AtomicBool,
    /// The token provider (`--auth-token`): tokens are assigned when Authenticate applies,
    /// on every member, and checked by every core.
    pub tokens: Arc<crate::auth::token::Tokens>,
}

impl Shared {
    /// A response header at `revision` (0 = the store's current revision).
    pub fn header(&self, revision: i64) -> ResponseHeader {
        ResponseHeader {
            cluster_id: self.cluster_id,
            member_id: self.member_id,
            revision: if revision == 0 {
                self.reader.current_revision()
            } else {
                revision
            },
            raft_term: self.term.load(Ordering::Acquire),
        }
    }

    /// The member table as of the applied index.
    pub fn membership(&self) -> Arc<Membership> {
        self.members.read().expect("members lock").clone()
    }
}

/// Builds entry data: `origin member u64 LE | id u64 LE | request protobuf`. The origin
/// tells every member whether a client of its own waits for the entry: request IDs are
/// unique per member only.
pub fn encode_entry_data(origin: u64, id: u64, request: &InternalRaftRequest) -> Bytes {
    let mut buf = BytesMut::with_capacity(ENTRY_DATA_HEADER_BYTES + request.encoded_len());
    buf.put_u64_le(origin);
    buf.put_u64_le(id);
    request.encode(&mut buf).expect("BytesMut grows");
    buf.freeze()
}

/// Where the raft core sends Raft messages: the peer transport (`net::peer`), or nothing
/// in a single-member cluster. Implementations never block.
pub trait PeerSender {
    /// Queues `message` (an encoded `raft::Message`) for member `to`; false if it was
    /// dropped (queue full, peer unknown or disconnected): Raft is told it is unreachable.
    fn send(&self, to: u64, message: Bytes) -> bool;
    /// Members that dropped messages since the last call.
    fn take_unreachable(&self) -> Vec<u64>;
    /// The members to talk to, other than this one, with their peer URLs.
    fn set_peers(&self, peers: Vec<(u64, Vec<String>)>);
    /// Whether a peer refused this member as removed from the cluster.
    fn removed_by_peers(&self) -> bool;
    /// Streams a snapshot to member `to`: `meta` is the encoded Raft snapshot message,
    /// `chunks` the engine's archive. Resolves once the receiver installed it or failed.
    fn send_snapshot(
        &self,
        to: u64,
        meta: Bytes,
        chunks: futures::stream::LocalBoxStream<'static, Result<Bytes, String>>,
    ) -> LocalBoxFuture<'static, Result<(), String>>;
    /// A unary call to member `to` (see `peers::METHOD_*`), bounded by the transport's
    /// request timeout.
    fn request(
        &self,
        to: u64,
        method: &'static str,
        body: Bytes,
    ) -> LocalBoxFuture<'static, Result<Bytes, Status>>;
}

/// Raft settings the raft core needs.
pub struct RaftSettings {
    /// Election timeout in ticks.
    pub election_ticks: usize,
    /// Tick length (`--heartbeat-interval`).
    pub tick: Duration,
    /// Applied entries between checkpoints (`--snapshot-count`).
    pub snapshot_count: u64,
    /// This member's name and client URLs, published to the cluster through Raft.
    pub name: String,
    /// This member's advertised client URLs.
    pub client_urls: Vec<String>,
    /// `--strict-reconfig-check`: refuse membership changes that could lose quorum.
    pub strict_reconfig_check: bool,
    /// `--auto-promote-learners`: the leader promotes learners that caught up.
    pub auto_promote_learners: bool,
    /// `--max-learners`: learners the member table may hold.
    pub learners_max: usize,
    /// Stops the server as SIGTERM does (in-flight requests finish, then the raft core is
    /// shut down): called once this member is removed from the cluster.
    pub stop_serving: Box<dyn Fn() + Send>,
    /// Called once, on the raft core, when this member's name and client URLs are first
    /// applied (etcd's `ReadyNotify`: the member then logs "ready to serve client requests").
    pub on_ready: Option<Box<dyn FnOnce() + Send>>,
    /// `--warning-apply-duration`: applying one request slower than this logs "apply
    /// request took too long" and counts in `etcd_server_slow_apply_total` (etcd: 100 ms).
    pub warning_apply_duration: Duration,
    /// Lease checkpointing's interval (`--experimental-enable-lease-checkpoint`); `None`:
    /// off.
    pub lease_checkpoint_interval: Option<Duration>,
    /// The token provider (`--auth-token`, `--auth-token-ttl`).
    pub tokens: Arc<crate::auth::token::Tokens>,
}

impl RaftSettings {
    fn election_timeout(&self) -> Duration {
        self.tick * self.election_ticks as u32
    }
}

/// What ended the raft core's wait.
enum Wake {
    Request(Result<RaftRequest, flume::RecvError>),
    Checkpoint(engine::Result<engine::CheckpointDone>),
    Timer,
}

/// The raft core's state (lives on one executor).
pub struct RaftCore {
    node: RawNode<MemStorage>,
    wal: Wal,
    mvcc: Mvcc,
    shared: Arc<Shared>,
    membership: Membership,
    pending: Pending,
    peers: Rc<dyn PeerSender>,
    applied: u64,
    last_checkpoint: u64,
    settings: RaftSettings,
    syncer: WalSyncer,
    lessor: Lessor,
    /// The raised alarms (crate::alarm).
    alarms: crate::alarm::AlarmStore,
    /// The auth store (crate::auth), published to `Shared::auth` on every change.
    auth: Arc<crate::auth::store::AuthStore>,
    /// The last log index the member restarted with: the log up to it is re-applied first.
    replay_until: u64,
    /// Leader before the restart's log was re-applied: the lessor's promotion waits.
    promote_after_replay: bool,
    /// Defragment calls waiting for the store's garbage collection to finish.
    defragment: Vec<oneshot::Sender<Result<(), Status>>>,
    /// When the running defragmentation began.
    defragment_started: Option<Instant>,
    /// Leader changes seen (etcd's `leader_changes_seen`), to word timeouts as etcd does.
    leader_changes: u64,
    /// The leader change count at the last proposal expiry check.
    leader_changes_at_expiry: u64,
    /// When this member last proposed its attributes (name, client URLs).
    attributes_proposed_at: Option<Instant>,
    /// This member applied its own removal: it stops once the Ready is handled.
    removed: bool,
    /// Peers of a joining member until its member table names it (then emptied).
    bootstrap_peers: Vec<(u64, Vec<String>)>,
    /// The server is stopping because this member was removed.
    stopping: bool,
    /// A leader became known: publish this member's attributes once the Ready is done.
    publish_due: bool,
    /// When this leader last proposed promoting a learner on its own.
    auto_promote_proposed_at: Option<Instant>,
    /// Waits for the verdict on a snapshot received from the leader.
    snapshot_reply: Option<oneshot::Sender<Result<(), String>>>,
    /// The raft core's own queue, for tasks it spawns (snapshot sends) to report back.
    inbox: flume::Sender<RaftRequest>,
    /// `member/`: where received snapshots wait to be installed.
    member_dir: std::path::PathBuf,
    /// The checkpoint being written by a helper thread, if any.
    checkpoint: Option<checkpoint::InFlight>,
    /// The store has deferred work (compaction steps, GC) it can do now.
    maintenance_due: bool,
}

/// Issues the WAL's fdatasyncs through io_uring (glommio), so the executor neither blocks
/// nor hands the call to another thread. Keeps a glommio handle (on a dup'ed fd) for the
/// few most recent segment files.
#[derive(Default)]
struct WalSyncer {
    files: Vec<(
        Arc<std::fs::File>,
        std::path::PathBuf,
        glommio::io::BufferedFile,
    )>,
}

impl WalSyncer {
    /// Closes the handles on the files at `paths` (segments about to be deleted): a
    /// descriptor closed after its file's unlink would free the file's blocks, discard
    /// included, on this executor.
    async fn forget(&mut self, paths: &[std::path::PathBuf]) {
        let (gone, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut self.files)
            .into_iter()
            .partition(|(_, p, _)| paths.contains(p));
        self.files = kept;
        for (_, _, file) in gone {
            let _ = file.close().await;
        }
    }
}

/// Segment files the syncer keeps a handle for (the active one and its predecessor suffice).
const SYNCER_FILES_MAX: usize = 4;

impl WalSyncer {
    /// Errors: `Io` naming the segment whose fdatasync (or dup) failed.
    async fn sync(&mut self, handle: engine::SyncHandle) -> engine::Result<()> {
        use std::os::fd::{AsRawFd, FromRawFd};
        for (path, file) in handle.into_segments() {
            #[cfg(feature = "failpoints")]
            if let Some(e) = fail::eval("wal-fdatasync", |_| {
                std::io::Error::from_raw_os_error(libc::EIO)
            }) {
                return Err(engine::Error::io(path, e));
            }
            let at = match self
                .files
                .iter()
                .position(|(f, _, _)| Arc::ptr_eq(f, &file))
            {
                Some(at) => at,
                None => {
                    // SAFETY: dup returns a new descriptor that the BufferedFile then owns.
                    let fd = unsafe { libc::dup(file.as_raw_fd()) };
                    if fd < 0 {
                        return Err(engine::Error::io(path, std::io::Error::last_os_error()));
                    }
                    // SAFETY: `fd` is open and owned by nothing else.
                    let glommio_file = unsafe { glommio::io::BufferedFile::from_raw_fd(fd) };
                    if self.files.len() == SYNCER_FILES_MAX {
                        let (_, _, old) = self.files.remove(0);
                        let _ = old.close().await;
                    }
                    self.files.push((file, path.clone(), glommio_file));
                    self.files.len() - 1
                }
            };
            self.files[at]
                .2
                .fdatasync()
                .await
                .map_err(|e| engine::Error::io(&path, std::io::Error::other(e.to_string())))?;
        }
        Ok(())
    }
}

/// Who the raft core is.
pub struct CoreIdentity {
    /// This member.
    pub member_id: u64,
    /// Its cluster.
    pub cluster_id: u64,
    /// Unique per start: makes this run's read contexts unique (see [`Pending::new`]) and
    /// seeds Raft.
    pub boot_id: u64,
}

/// How the raft core reaches the other members and itself.
pub struct CorePeers {
    /// The peer transport.
    pub sender: Rc<dyn PeerSender>,
    /// The members a joining member talks to until its own member table (rebuilt from the
    /// leader's log) names it.
    pub bootstrap_peers: Vec<(u64, Vec<String>)>,
    /// The raft core's own request queue, for tasks it spawns to report back.
    pub inbox: flume::Sender<RaftRequest>,
    /// Core `i`'s reply line: the answers to its proposals and reads, one message per
    /// raft loop iteration (see `replies`).
    pub reply_lines: Vec<flume::Sender<Vec<Delivery>>>,
}

/// Builds the raft core from recovered storage.
pub fn open(
    recovered: Recovered,
    identity: CoreIdentity,
    settings: RaftSettings,
    peers: CorePeers,
) -> Result<RaftCore, String> {
    let CoreIdentity {
        member_id,
        cluster_id,
        boot_id,
    } = identity;
    let CorePeers {
        sender: peers,
        bootstrap_peers,
        inbox,
        reply_lines,
    } = peers;
    let Recovered {
        mvcc,
        wal,
        storage,
        applied,
        meta,
        membership,
        hard_state,
        member_dir,
    } = recovered;
    let min_ttl = lease::min_ttl_seconds(settings.election_ticks, settings.tick);
    let mut lessor = Lessor::recover(&mvcc, &meta.lessor, min_ttl)?;
    if let Some(interval) = settings.lease_checkpoint_interval {
        lessor.enable_checkpoints(interval);
    }
    let config = raft::Config {
        id: member_id,
        election_tick: settings.election_ticks,
        heartbeat_tick: 1,
        max_size_per_msg: 1024 * 1024,
        max_inflight_msgs: 256,
        pre_vote: true,
        check_quorum: true,
        applied,
        seed: member_id ^ boot_id,
    };
    // Everything in the log at start is applied before the lessor is promoted: a leader
    // never drops its own entries.
    let replay_until = storage.last_index().map_err(|e| e.to_string())?;
    let node = RawNode::new(&config, storage).map_err(|e| format!("cannot start Raft: {e}"))?;
    let is_learner = membership.get(member_id).is_some_and(|m| m.is_learner);
    let shared = Arc::new(Shared {
        member_id,
        cluster_id,
        term: AtomicU64::new(hard_state.term),
        commit_index: AtomicU64::new(hard_state.commit),
        applied_index: AtomicU64::new(applied),
        leader: AtomicU64::new(0),
        is_learner: AtomicBool::new(is_learner),
        published: AtomicBool::new(false),
        members: RwLock::new(Arc::new(membership.clone())),
        reader: mvcc.reader(),
        watch: crate::watch::WatchPublisher::new(),
        alarms: RwLock::new(Arc::new(meta.alarms.list())),
        auth: RwLock::new(Arc::new(meta.auth.clone())),
        auth_enabled: AtomicBool::new(meta.auth.enabled()),
        tokens: settings.tokens.clone(),
    });
    if meta.auth.enabled() {
        settings.tokens.enable();
    }
    crate::metrics::get()
        .auth_revision
        .set(meta.auth.revision() as i64);
    let timeout = request_timeout(settings.election_timeout());
    let mut core = RaftCore {
        node,
        wal,
        mvcc,
        shared,
        membership,
        pending: Pending::new(boot_id, timeout, Outbox::new(reply_lines)),
        peers,
        applied,
        last_checkpoint: applied,
        settings,
        syncer: WalSyncer::default(),
        lessor,
        alarms: meta.alarms.clone(),
        auth: Arc::new(meta.auth.clone()),
        defragment: Vec::new(),
        defragment_started: None,
        replay_until,
        promote_after_replay: false,
        leader_changes: 0,
        leader_changes_at_expiry: 0,
        attributes_proposed_at: None,
        removed: false,
        bootstrap_peers,
        stopping: false,
        publish_due: false,
        auto_promote_proposed_at: None,
        snapshot_reply: None,
        inbox,
        member_dir,
        checkpoint: None,
        maintenance_due: false,
    };
    core.membership_changed();
    Ok(core)
}

impl RaftCore {
    /// The state shared with every core.
    pub fn shared(&self) -> Arc<Shared> {
        self.shared.clone()
    }

    /// Runs the loop until a Shutdown request (or every sender is gone), then syncs the WAL.
    pub async fn run(mut self, requests: flume::Receiver<RaftRequest>) {
        if self.membership.voters() == [self.shared.member_id] {
            // A lone voter need not wait an election timeout (etcd fast-forwards its ticks too).
            if let Err(e) = self.node.campaign() {
                warn!("campaign failed: {e}");
            }
        }
        // Apply what the WAL holds committed (and, alone, win the election) now rather
        // than after the first tick or request.
        let (applied, started) = (self.applied, Instant::now());
        self.process_ready().await;
        if self.applied > applied {
            info!(
                from = applied + 1,
                to = self.applied,
                took = %crate::logging::go_duration(started.elapsed()),
                "applied the committed WAL entries after the checkpoint"
            );
        }
        let tick = self.settings.tick;
        let mut next_tick = Instant::now() + tick;
        let mut shutdown: Option<oneshot::Sender<()>> = None;
        while shutdown.is_none() {
            let wait = if self.maintenance_due {
                // The store has a step of compaction or GC to do now: look for requests
                // without waiting, then do it.
                Duration::ZERO
            } else {
                next_tick.saturating_duration_since(Instant::now())
            };
            let woke = futures_lite::future::or(
                async { Wake::Request(requests.recv_async().await) },
                futures_lite::future::or(
                    async {
                        match &self.checkpoint {
                            Some(flight) => Wake::Checkpoint(flight.result().await),
                            None => std::future::pending().await,
                        }
                    },
                    async {
                        glommio::timer::sleep(wait).await;
                        Wake::Timer
                    },
                ),
            )
            .await;
            let first = match woke {
                Wake::Request(request) => Some(request),
                Wake::Checkpoint(done) => {
                    self.checkpoint_finished(done).await;
                    None
                }
                Wake::Timer => None,
            };
            let now = Instant::now();
            if now >= next_tick {
                self.on_tick(now);
                next_tick = now + tick;
            }
            let mut batch = 0;
            match first {
                Some(Ok(request)) => {
                    self.handle(request, &mut shutdown, now);
                    batch += 1;
                }
                Some(Err(_)) => break,
                None => {}
            }
            while batch < BATCH_REQUESTS_MAX {
                let Ok(request) = requests.try_recv() else {
                    break;
                };
                self.handle(request, &mut shutdown, now);
                batch += 1;
            }
            if let Some(ctx) = self.pending.start_read_round(now) {
                if let Err(e) = self.node.try_read_index(ctx.clone()) {
                    crate::metrics::get().read_indexes_failed_total.inc();
                    let status = match e {
                        raft::Error::ReadIndexQueueFull { .. } => errors::too_many_requests(),
                        _ => errors::no_leader(),
                    };
                    self.pending.fail_round(&ctx, &status);
                }
            }
            self.process_ready().await;
            self.pending.flush_replies();
            self.maintain_store();
            self.maybe_finish_defragment();
            crate::metrics::get()
                .proposals_pending
                .set(self.pending.proposals_waiting() as f64);
        }
        // Fail what is still waiting, then make everything written durable.
        self.pending.fail_all(&errors::stopped());
        self.pending.flush_replies();
        if let Err(e) = self.wal.sync() {
            crate::logging::fatal_storage("failed to sync the WAL at shutdown", &e);
        }
        info!(applied = self.applied, "raft core stopped");
        if let Some(done) = shutdown {
            let _ = done.send(());
        }
    }

    fn on_tick(&mut self, now: Instant) {
        if self.peers.removed_by_peers() {
            // This member missed the entry removing it; its peers know.
            self.stop_removed();
        }
        self.node.tick();
        lease::propose_expired(&mut self.lessor, &mut self.node, self.shared.member_id);
        lease::propose_checkpoints(&mut self.lessor, &mut self.node, self.shared.member_id);
        let leader_failed = self.leader_changes != self.leader_changes_at_expiry;
        self.leader_changes_at_expiry = self.leader_changes;
        self.pending.expire(now, leader_failed);
        self.maybe_publish_attributes(now);
        self.maybe_auto_promote(now);
    }

    fn handle(
        &mut self,
        request: RaftRequest,
        shutdown: &mut Option<oneshot::Sender<()>>,
        now: Instant,
    ) {
        match request {
            RaftRequest::Propose(p) => {
                let Proposal {
                    id,
                    data,
                    request,
                    reply,
                } = *p;
                match self.node.propose(Bytes::new(), data) {
                    Ok(()) => self.pending.add_proposal(id, request, reply, now),
                    Err(e) => {
                        debug!("proposal dropped: {e}");
                        crate::metrics::get().proposals_failed_total.inc();
                        self.pending.answer(reply, Err(errors::no_leader()));
                    }
                }
            }
            RaftRequest::ReadIndex(reply) => self.pending.queue_read(reply),
            RaftRequest::Lease(query, reply, forwardable) => {
                self.answer_lease(query, reply, forwardable, now)
            }
            RaftRequest::Peer(messages) => {
                for m in messages {
                    self.step_peer(m);
                }
            }
            RaftRequest::Member(change, reply, forwardable) => {
                let leader = self.shared.leader.load(Ordering::Acquire);
                let follower = leader != 0 && leader != self.shared.member_id;
                match change {
                    MemberChange::Promote(id) if forwardable && follower => {
                        self.forward_promote(leader, id, reply)
                    }
                    change => self.propose_member_change(change, reply, now),
                }
            }
            RaftRequest::MoveLeader(target, reply) => self.move_leader(target, reply, now),
            RaftRequest::InstallSnapshot(message, reply) => {
                let from = message.from;
                self.snapshot_reply = Some(reply);
                if let Err(e) = self.node.step(message) {
                    warn!(from = format!("{from:x}"), "snapshot message refused: {e}");
                }
            }
            RaftRequest::SnapshotStatus(to, failed) => {
                if failed {
                    warn!(member = format!("{to:x}"), "sending a snapshot failed");
                } else {
                    info!(member = format!("{to:x}"), "sent a snapshot");
                }
                self.node.report_snapshot(to, failed);
            }
            RaftRequest::Snapshot(reply) => self.answer_snapshot(reply),
            RaftRequest::Defragment(reply) => self.start_defragment(reply),
            RaftRequest::RaiseAlarm(alarm) => self.propose_alarm(alarm),
            RaftRequest::Shutdown(done) => *shutdown = Some(done),
        }
    }

    /// Answers a lease query from the lessor, or forwards renew/TimeToLive to the leader.
    fn answer_lease(
        &mut self,
        query: LeaseQuery,
        reply: oneshot::Sender<Result<LeaseAnswer, Status>>,
        forwardable: bool,
        now: Instant,
    ) {
        let leader = self.shared.leader.load(Ordering::Acquire);
        let follower = leader != 0 && leader != self.shared.member_id;
        if forwardable && follower {
            if let Some((method, body)) = peers::encode_lease_query(&query) {
                let call = self.peers.request(leader, method, body);
                glommio::spawn_local(async move {
                    let answer = call
                        .await
                        .and_then(|body| peers::decode_lease_answer(&query, body));
                    let _ = reply.send(answer);
                })
                .detach();
                return;
            }
        }
        let answer = self.lessor.answer(query, now);
        if let Ok(LeaseAnswer::Renewed(_)) = answer {
            crate::metrics::get().lease_renewed_total.inc();
        }
        let _ = reply.send(answer);
    }

    fn step_peer(&mut self, m: raft::Message) {
        if m.msg_type == MessageType::Snapshot {
            // A snapshot message is only valid with its data: it comes through the
            // snapshot stream (RaftRequest::InstallSnapshot), never the message stream.
            warn!(
                from = format!("{:x}", m.from),
                "dropped a snapshot message that came without its data"
            );
            return;
        }
        let (from, msg_type) = (m.from, m.msg_type);
        if let Err(e) = self.node.step(m) {
            debug!(
                from = format!("{from:x}"),
                ?msg_type,
                "peer message refused: {e}"
            );
        }
    }

    async fn process_ready(&mut self) {
        while self.node.has_ready() {
            let ready = match self.node.try_ready() {
                Ok(ready) => ready,
                Err(e) => fatal(&format!("Raft cannot hand out its next Ready: {e}")),
            };
            if let Some(ss) = &ready.soft_state {
                let old = self.shared.leader.swap(ss.leader_id, Ordering::AcqRel);
                if old != ss.leader_id {
                    self.leader_changes += 1;
                    self.pending.on_leader_change();
                    self.pending.on_leader(ss.leader_id);
                    let term = self.node.status().hard_state.term;
                    let me = self.shared.member_id;
                    if ss.leader_id == 0 {
                        info!("raft.node: {me:x} lost leader {old:x} at term {term}");
                    } else {
                        // etcd counts a change to a known new leader (`newLeader`).
                        crate::metrics::get().leader_changes_seen_total.inc();
                        if old != 0 {
                            info!(
                                "raft.node: {me:x} changed leader from {old:x} to {:x} at term {term}",
                                ss.leader_id
                            );
                        } else {
                            info!(
                                "raft.node: {me:x} elected leader {:x} at term {term}",
                                ss.leader_id
                            );
                        }
                        // Publish at once (after this Ready) rather than at the next tick.
                        self.attributes_proposed_at = None;
                        self.publish_due = true;
                    }
                }
                // A lone voter leads before it has re-applied the log it restarted with:
                // the lessor is promoted once that log is applied, so that it counts
                // from the state it had (checkpointed remaining TTLs included).
                let leader = ss.raft_state == StateRole::Leader;
                self.promote_after_replay = leader && self.applied < self.replay_until;
                if !self.promote_after_replay {
                    self.lessor
                        .set_primary(leader, self.settings.election_timeout());
                }
            }
            if let Some(snapshot) = &ready.snapshot {
                self.install_snapshot(snapshot, ready.hard_state);
            }
            for e in &ready.entries {
                self.wal_append(REC_ENTRY, e.index, &encode_entry(e));
            }
            if let Some(hs) = &ready.hard_state {
                self.wal_append(
                    REC_HARD_STATE,
                    0,
                    &encode_u64s(&[hs.term, hs.vote, hs.commit]),
                );
            }
            if ready.must_sync {
                let handle = match self.wal.sync_handle() {
                    Ok(handle) => handle,
                    Err(e) => fatal_storage("failed to save Raft hard state and entries", &e),
                };
                let started = Instant::now();
                if let Err(e) = self.syncer.sync(handle).await {
                    fatal_storage("failed to save Raft hard state and entries", &e);
                }
                let took = started.elapsed();
                if took > WARN_SYNC_DURATION {
                    warn!(
                        took = %crate::logging::go_duration(took),
                        "expected-duration" = %crate::logging::go_duration(WARN_SYNC_DURATION),
                        "slow fdatasync"
                    );
                }
                let metrics = crate::metrics::get();
                metrics
                    .wal_fsync_duration_seconds
                    .observe(took.as_secs_f64());
                metrics
                    .wal_fsync_batch_entries
                    .observe(ready.entries.len() as f64);
            }
            if !ready.entries.is_empty() {
                if let Err(e) = self.node.mut_store().append(&ready.entries) {
                    fatal(&format!("appending to the in-memory log failed: {e}"));
                }
            }
            if let Some(hs) = ready.hard_state {
                self.node.mut_store().set_hard_state(hs);
                self.shared.term.store(hs.term, Ordering::Release);
                self.shared.commit_index.store(hs.commit, Ordering::Release);
            }
            // Everything the messages depend on is durable now.
            for m in &ready.messages {
                if m.msg_type == MessageType::Snapshot {
                    self.send_snapshot(m);
                } else if !self.peers.send(m.to, Bytes::from(m.encode())) {
                    if m.msg_type == MessageType::Heartbeat {
                        crate::metrics::get().heartbeat_send_failures_total.inc();
                    }
                    self.node.report_unreachable(m.to);
                }
            }
            for id in self.peers.take_unreachable() {
                self.node.report_unreachable(id);
            }
            for entry in &ready.committed_entries {
                self.apply_entry(entry);
            }
            if self.promote_after_replay && self.applied >= self.replay_until {
                self.promote_after_replay = false;
                self.lessor
                    .set_primary(true, self.settings.election_timeout());
            }
            for rs in &ready.read_states {
                self.pending.on_read_state(&rs.request_ctx, rs.index);
            }
            self.node.advance(ready);
            self.shared
                .applied_index
                .store(self.applied, Ordering::Release);
            self.pending.release_reads(self.applied);
            self.maybe_checkpoint();
            if self.removed {
                self.stop_removed();
            }
            if !self.node.has_ready() && std::mem::take(&mut self.publish_due) {
                self.maybe_publish_attributes(Instant::now());
            }
        }
        if let Some(reply) = self.snapshot_reply.take() {
            // Raft did not take it: this member is not behind it (any more).
            let _ = std::fs::remove_dir_all(self.member_dir.join(RECEIVED_SNAPSHOT_DIR));
            let _ = reply.send(Err(
                "the snapshot was not installed: the member is not behind it".to_string(),
            ));
        }
    }

    /// etcd stops a member that applied its own removal (or that its peers refuse as
    /// removed); so does Cairn, as on SIGTERM: in-flight requests finish, the WAL is synced,
    /// the process exits 0. Called once.
    fn stop_removed(&mut self) {
        if self.stopping {
            return;
        }
        self.stopping = true;
        warn!("the member has been permanently removed from the cluster; the data-dir used by this member must be removed");
        (self.settings.stop_serving)();
    }

    fn wal_append(&mut self, record_type: u8, index: u64, payload: &[u8]) {
        if let Err(e) = self.wal.append(record_type, index, payload) {
            fatal_storage("failed to save Raft hard state and entries", &e);
        }
    }

    /// Tells the transport about every member but this one (and, on a joining member whose
    /// table does not name it yet, the peers it joined through).
    fn update_peers(&mut self) {
        let me = self.shared.member_id;
        if self.membership.get(me).is_some() {
            self.bootstrap_peers.clear();
        }
        let mut peers: Vec<(u64, Vec<String>)> = self
            .membership
            .members()
            .filter(|m| m.id != me)
            .map(|m| (m.id, m.peer_urls.clone()))
            .collect();
        for (id, urls) in &self.bootstrap_peers {
            if self.membership.get(*id).is_none() {
                peers.push((*id, urls.clone()));
            }
        }
        self.peers.set_peers(peers);
    }

    /// Publishes the new member table to every core and the transport.
    fn membership_changed(&mut self) {
        *self.shared.members.write().expect("members lock") = Arc::new(self.membership.clone());
        let me = self.shared.member_id;
        let learner = self.membership.get(me).is_some_and(|m| m.is_learner);
        self.shared.is_learner.store(learner, Ordering::Release);
        let published = self.attributes_published();
        self.shared.published.store(published, Ordering::Release);
        if published {
            if let Some(on_ready) = self.settings.on_ready.take() {
                on_ready();
            }
        }
        self.update_peers();
    }

    /// Whether the applied table holds this member's current name and client URLs.
    fn attributes_published(&self) -> bool {
        self.membership.get(self.shared.member_id).is_some_and(|m| {
            m.name == self.settings.name && m.client_urls == self.settings.client_urls
        })
    }

    /// Proposes this member's name and client URLs until the applied table has them
    /// (etcd's `publishV3`: "published local member to cluster through raft"), at most once
    /// per request timeout.
    fn maybe_publish_attributes(&mut self, now: Instant) {
        let me = self.shared.member_id;
        if self.membership.get(me).is_none() || self.attributes_published() {
            return;
        }
        if self.shared.leader.load(Ordering::Acquire) == 0 {
            return;
        }
        let timeout = request_timeout(self.settings.election_timeout());
        if self
            .attributes_proposed_at
            .is_some_and(|at| now.duration_since(at) < timeout)
        {
            return;
        }
        self.attributes_proposed_at = Some(now);
        let request = InternalRaftRequest {
            cluster_member_attr_set: Some(ClusterMemberAttrSetRequest {
                member_id: me,
                member_attributes: Some(Attributes {
                    name: self.settings.name.clone(),
                    client_urls: self.settings.client_urls.clone(),
                }),
            }),
            ..Default::default()
        };
        if let Err(e) = self
            .node
            .propose(Bytes::new(), encode_entry_data(me, 0, &request))
        {
            debug!("publishing member attributes not proposed: {e}");
        }
    }

    fn state_meta(&self) -> StateMeta {
        StateMeta {
            lessor: self.lessor.encode(),
            membership: Some(self.membership.clone()),
            alarms: self.alarms.clone(),
            auth: (*self.auth).clone(),
        }
    }
}

/// A storage failure the process must not survive (DESIGN.md §3: a failed fsync stops the process).
fn fatal(message: &str) -> ! {
    error!(target: crate::logging::FATAL_TARGET, "{message}");
    std::process::exit(1);
}

/// etcd `wal.warnSyncDuration`: a WAL fdatasync slower than this logs "slow fdatasync".
pub const WARN_SYNC_DURATION: Duration = Duration::from_secs(1);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warning_thresholds_are_etcds() {
        assert_eq!(WARN_SYNC_DURATION, Duration::from_secs(1));
    }
}
