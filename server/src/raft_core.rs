//! The raft core: the one executor task that owns the Raft node, the WAL and the MVCC
//! writer, and runs the apply loop (DESIGN.md §2–3).
//!
//! Loop: wait for a request or the next tick → drain every queued request (that is the
//! batch) → `Ready` → append entries and hard state to the WAL → ONE `fdatasync` on a
//! blocking helper thread (group commit: whatever arrives meanwhile waits in the channel
//! and forms the next batch) → send messages → apply committed entries → reply → advance.
//! No client sees success before its entry is durable; a failed fsync stops the process.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use engine::{Mvcc, MvccOptions, MvccReader, Wal, WalOptions};
use futures::channel::oneshot;
use net::pb::etcdserverpb::{
    CompactionResponse, DeleteRangeResponse, InternalRaftRequest, LeaseGrantResponse,
    LeaseRevokeResponse, PutResponse, ResponseHeader, TxnResponse,
};
use net::Status;
use prost::Message as _;
use raft::{
    ConfState, Entry, EntryType, HardState, MemStorage, RawNode, Snapshot, SnapshotMetadata,
    Storage,
};
use tracing::{debug, error, info, warn};

use crate::errors;
use crate::kv::{self, WriteView};
use crate::lease::{self, LeaseAnswer, LeaseQuery, Lessor};

/// WAL record type of a Raft entry. Payload: `term u64 LE | entry type u8 | data`.
const REC_ENTRY: u8 = 1;
/// WAL record type of the Raft hard state. Payload: `term | vote | commit`, each u64 LE.
const REC_HARD_STATE: u8 = 2;
/// WAL record type of a snapshot marker: the log before `index` lives in the MVCC checkpoint.
/// Payload: `index | term`, each u64 LE.
const REC_SNAPSHOT: u8 = 3;
/// Size of each preallocated WAL segment (etcd's WAL segment size is 64 MB too).
pub const WAL_SEGMENT_BYTES: u64 = 64 * 1024 * 1024;
/// Entries kept in the log behind a checkpoint so that slightly lagging followers catch up
/// from the log (etcd `SnapshotCatchUpEntries`).
pub const SNAPSHOT_CATCH_UP_ENTRIES: u64 = 5_000;
/// Most requests taken from the channel into one Raft batch.
pub const BATCH_REQUESTS_MAX: usize = 4_096;

/// A write on its way through Raft.
pub struct Proposal {
    /// Request ID, unique in this process (the key its reply waits under).
    pub id: u64,
    /// Entry data: `id u64 LE | InternalRaftRequest protobuf` (see [`encode_entry_data`]).
    pub data: Bytes,
    /// The decoded request, so the apply loop need not decode `data` again.
    pub request: InternalRaftRequest,
    /// Where the apply result goes.
    pub reply: oneshot::Sender<Result<Applied, Status>>,
}

/// What the cores send the raft core.
pub enum RaftRequest {
    /// Replicate and apply a write (boxed: the decoded request is large).
    Propose(Box<Proposal>),
    /// Linearizable-read barrier: answered once the applied index reaches the read index.
    ReadIndex(oneshot::Sender<Result<(), Status>>),
    /// A lease query answered from the lessor without a log entry (renew, TimeToLive, Leases).
    Lease(LeaseQuery, oneshot::Sender<Result<LeaseAnswer, Status>>),
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
}

/// State every core reads: IDs, Raft progress, the MVCC reader.
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
    /// Read view of the MVCC store.
    pub reader: MvccReader,
    /// Publishes every applied revision's events to the watch hubs (crate::watch).
    pub watch: crate::watch::WatchPublisher,
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
}

/// Builds entry data: `id u64 LE | request protobuf`.
pub fn encode_entry_data(id: u64, request: &InternalRaftRequest) -> Bytes {
    let mut buf = BytesMut::with_capacity(8 + request.encoded_len());
    buf.put_u64_le(id);
    request.encode(&mut buf).expect("BytesMut grows");
    buf.freeze()
}

fn encode_entry(e: &Entry) -> Vec<u8> {
    let mut buf = Vec::with_capacity(9 + e.data.len());
    buf.put_u64_le(e.term);
    buf.put_u8(match e.entry_type {
        EntryType::Normal => 0,
        EntryType::ConfChange => 1,
    });
    buf.extend_from_slice(&e.data);
    buf
}

fn decode_entry(index: u64, mut payload: Bytes) -> Result<Entry, String> {
    if payload.len() < 9 {
        return Err(format!(
            "entry {index}: record of {} bytes is too short",
            payload.len()
        ));
    }
    let term = payload.get_u64_le();
    let entry_type = match payload.get_u8() {
        0 => EntryType::Normal,
        1 => EntryType::ConfChange,
        t => return Err(format!("entry {index}: unknown entry type {t}")),
    };
    Ok(Entry {
        term,
        index,
        entry_type,
        data: payload,
    })
}

fn encode_u64s(values: &[u64]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

fn decode_u64s<const N: usize>(what: &str, mut payload: Bytes) -> Result<[u64; N], String> {
    if payload.len() != 8 * N {
        return Err(format!(
            "{what} record has {} bytes, want {}",
            payload.len(),
            8 * N
        ));
    }
    Ok(std::array::from_fn(|_| payload.get_u64_le()))
}

/// Raft settings the raft core needs.
pub struct RaftSettings {
    /// Voters of the initial configuration.
    pub voters: Vec<u64>,
    /// Election timeout in ticks.
    pub election_ticks: usize,
    /// Tick length.
    pub tick: Duration,
    /// Applied entries between checkpoints (`--snapshot-count`).
    pub snapshot_count: u64,
}

/// A linearizable read waiting for the applied index to reach its read index.
type ReadWaiter = oneshot::Sender<Result<(), Status>>;

/// The raft core's state (lives on one executor).
pub struct RaftCore {
    node: RawNode<MemStorage>,
    wal: Wal,
    mvcc: Mvcc,
    shared: Arc<Shared>,
    pending: HashMap<
        u64,
        (
            InternalRaftRequest,
            oneshot::Sender<Result<Applied, Status>>,
        ),
    >,
    queued_reads: Vec<ReadWaiter>,
    reads_by_ctx: HashMap<u64, Vec<ReadWaiter>>,
    reads_by_index: Vec<(u64, Vec<ReadWaiter>)>,
    read_ctx_seq: u64,
    applied: u64,
    last_checkpoint: u64,
    settings: RaftSettings,
    syncer: WalSyncer,
    lessor: Lessor,
}

/// Issues the WAL's fdatasyncs through io_uring (glommio), so the executor neither blocks
/// nor hands the call to another thread. Keeps a glommio handle (on a dup'ed fd) for the
/// few most recent segment files.
#[derive(Default)]
struct WalSyncer {
    files: Vec<(Arc<std::fs::File>, glommio::io::BufferedFile)>,
}

/// Segment files the syncer keeps a handle for (the active one and its predecessor suffice).
const SYNCER_FILES_MAX: usize = 4;

impl WalSyncer {
    async fn sync(&mut self, handle: engine::SyncHandle) -> std::io::Result<()> {
        use std::os::fd::{AsRawFd, FromRawFd};
        for file in handle.into_files() {
            let at = match self.files.iter().position(|(f, _)| Arc::ptr_eq(f, &file)) {
                Some(at) => at,
                None => {
                    // SAFETY: dup returns a new descriptor that the BufferedFile then owns.
                    let fd = unsafe { libc::dup(file.as_raw_fd()) };
                    if fd < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    // SAFETY: `fd` is open and owned by nothing else.
                    let glommio_file = unsafe { glommio::io::BufferedFile::from_raw_fd(fd) };
                    if self.files.len() == SYNCER_FILES_MAX {
                        let (_, old) = self.files.remove(0);
                        let _ = old.close().await;
                    }
                    self.files.push((file, glommio_file));
                    self.files.len() - 1
                }
            };
            self.files[at]
                .1
                .fdatasync()
                .await
                .map_err(|e| std::io::Error::other(e.to_string()))?;
        }
        Ok(())
    }
}

/// Opens the member's storage under `member_dir` and recovers: MVCC from its checkpoint,
/// the Raft log and hard state from the WAL.
pub fn open(
    member_dir: &Path,
    member_id: u64,
    cluster_id: u64,
    settings: RaftSettings,
) -> Result<RaftCore, String> {
    let mvcc = Mvcc::open(&member_dir.join("kv"), MvccOptions::default())
        .map_err(|e| format!("cannot open the MVCC store: {e}"))?;
    let (applied, meta) = mvcc.checkpoint_state();
    let min_ttl = lease::min_ttl_seconds(settings.election_ticks, settings.tick);
    let lessor = Lessor::recover(&mvcc, &meta, min_ttl)?;
    let (wal, records) = Wal::open(
        &member_dir.join("wal"),
        WalOptions {
            segment_bytes: WAL_SEGMENT_BYTES,
        },
    )
    .map_err(|e| format!("cannot open the WAL: {e}"))?;
    let conf_state = ConfState {
        voters: settings.voters.clone(),
        learners: Vec::new(),
    };
    let mut storage = MemStorage::new_with_conf_state(conf_state.clone());

    // The latest snapshot marker decides where the in-memory log starts.
    let mut snapshot = (0u64, 0u64);
    for rec in records.iter().filter(|r| r.record_type == REC_SNAPSHOT) {
        let [index, term] = decode_u64s::<2>("snapshot", rec.payload.clone())?;
        if index > snapshot.0 {
            snapshot = (index, term);
        }
    }
    if snapshot.0 > 0 {
        storage
            .apply_snapshot(Snapshot {
                metadata: SnapshotMetadata {
                    index: snapshot.0,
                    term: snapshot.1,
                    conf_state,
                },
                data: Bytes::new(),
            })
            .map_err(|e| format!("cannot restore the log at snapshot {}: {e}", snapshot.0))?;
    }
    let mut hard_state = HardState::default();
    let mut wal = wal;
    if records.is_empty() && applied == 0 {
        // A new member's log starts as etcd's bootstrap leaves it: one committed term-1
        // entry (etcd's is the initial ConfChange; the configuration here is already in
        // the ConfState), so the first leader's term is 2, as etcd reports.
        let entry = Entry {
            term: 1,
            index: 1,
            entry_type: EntryType::Normal,
            data: Bytes::new(),
        };
        hard_state = HardState {
            term: 1,
            vote: 0,
            commit: 1,
        };
        let appended = wal
            .append(REC_ENTRY, 1, &encode_entry(&entry))
            .and_then(|()| wal.append(REC_HARD_STATE, 0, &encode_u64s(&[1, 0, 1])))
            .and_then(|()| wal.sync());
        appended.map_err(|e| format!("cannot write the bootstrap entry to the WAL: {e}"))?;
        storage
            .append(&[entry])
            .map_err(|e| format!("bootstrap entry: {e}"))?;
    }
    for rec in records {
        match rec.record_type {
            REC_ENTRY if rec.index > snapshot.0 => {
                let entry = decode_entry(rec.index, rec.payload)?;
                storage
                    .append(&[entry])
                    .map_err(|e| format!("WAL entry {}: {e}", rec.index))?;
            }
            REC_ENTRY | REC_SNAPSHOT => {}
            REC_HARD_STATE => {
                let [term, vote, commit] = decode_u64s::<3>("hard state", rec.payload)?;
                hard_state = HardState { term, vote, commit };
            }
            other => {
                return Err(format!(
                    "WAL record type {other} at index {} is unknown",
                    rec.index
                ))
            }
        }
    }
    hard_state.commit = hard_state.commit.max(snapshot.0).max(applied);
    let last_index = storage.last_index().map_err(|e| e.to_string())?;
    if applied > last_index {
        return Err(format!(
            "the MVCC checkpoint is at index {applied} but the WAL ends at {last_index}: the WAL lost entries"
        ));
    }
    storage.set_hard_state(hard_state);
    info!(
        applied,
        last_index,
        term = hard_state.term,
        commit = hard_state.commit,
        "recovered"
    );

    let config = raft::Config {
        id: member_id,
        election_tick: settings.election_ticks,
        heartbeat_tick: 1,
        max_size_per_msg: 1024 * 1024,
        max_inflight_msgs: 256,
        pre_vote: true,
        check_quorum: true,
        applied,
        seed: member_id
            ^ std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64),
    };
    let node = RawNode::new(&config, storage).map_err(|e| format!("cannot start Raft: {e}"))?;
    let shared = Arc::new(Shared {
        member_id,
        cluster_id,
        term: AtomicU64::new(hard_state.term),
        commit_index: AtomicU64::new(hard_state.commit),
        applied_index: AtomicU64::new(applied),
        leader: AtomicU64::new(0),
        reader: mvcc.reader(),
        watch: crate::watch::WatchPublisher::new(),
    });
    Ok(RaftCore {
        node,
        wal,
        mvcc,
        shared,
        pending: HashMap::new(),
        queued_reads: Vec::new(),
        reads_by_ctx: HashMap::new(),
        reads_by_index: Vec::new(),
        read_ctx_seq: 0,
        applied,
        last_checkpoint: applied,
        settings,
        syncer: WalSyncer::default(),
        lessor,
    })
}

impl RaftCore {
    /// The state shared with every core.
    pub fn shared(&self) -> Arc<Shared> {
        self.shared.clone()
    }

    /// Runs the loop until a Shutdown request (or every sender is gone), then syncs the WAL.
    pub async fn run(mut self, requests: flume::Receiver<RaftRequest>) {
        if self.settings.voters == [self.shared.member_id] {
            // A lone voter need not wait an election timeout (etcd fast-forwards its ticks too).
            if let Err(e) = self.node.campaign() {
                warn!("campaign failed: {e}");
            }
        }
        let tick = self.settings.tick;
        let mut next_tick = Instant::now() + tick;
        let mut shutdown: Option<oneshot::Sender<()>> = None;
        while shutdown.is_none() {
            let wait = next_tick.saturating_duration_since(Instant::now());
            let first =
                futures_lite::future::or(async { Some(requests.recv_async().await) }, async {
                    glommio::timer::sleep(wait).await;
                    None
                })
                .await;
            if Instant::now() >= next_tick {
                self.node.tick();
                lease::propose_expired(&mut self.lessor, &mut self.node);
                next_tick = Instant::now() + tick;
            }
            let mut batch = 0;
            match first {
                Some(Ok(request)) => {
                    self.handle(request, &mut shutdown);
                    batch += 1;
                }
                Some(Err(_)) => break,
                None => {}
            }
            while batch < BATCH_REQUESTS_MAX {
                let Ok(request) = requests.try_recv() else {
                    break;
                };
                self.handle(request, &mut shutdown);
                batch += 1;
            }
            if !self.queued_reads.is_empty() {
                self.read_ctx_seq += 1;
                let ctx = self.read_ctx_seq;
                self.reads_by_ctx
                    .insert(ctx, std::mem::take(&mut self.queued_reads));
                self.node
                    .read_index(Bytes::copy_from_slice(&ctx.to_le_bytes()));
            }
            self.process_ready().await;
        }
        // Fail what is still waiting, then make everything written durable.
        for (_, (_, reply)) in self.pending.drain() {
            let _ = reply.send(Err(errors::stopped()));
        }
        if let Err(e) = self.wal.sync() {
            fatal(&format!("WAL sync at shutdown failed: {e}"));
        }
        info!(applied = self.applied, "raft core stopped");
        if let Some(done) = shutdown {
            let _ = done.send(());
        }
    }

    fn handle(&mut self, request: RaftRequest, shutdown: &mut Option<oneshot::Sender<()>>) {
        match request {
            RaftRequest::Propose(p) => {
                let Proposal {
                    id,
                    data,
                    request,
                    reply,
                } = *p;
                match self.node.propose(Bytes::new(), data) {
                    Ok(()) => {
                        self.pending.insert(id, (request, reply));
                    }
                    Err(e) => {
                        debug!("proposal dropped: {e}");
                        let _ = reply.send(Err(errors::no_leader()));
                    }
                }
            }
            RaftRequest::ReadIndex(reply) => self.queued_reads.push(reply),
            RaftRequest::Lease(query, reply) => {
                let _ = reply.send(self.lessor.answer(query, Instant::now()));
            }
            RaftRequest::Shutdown(done) => *shutdown = Some(done),
        }
    }

    async fn process_ready(&mut self) {
        while self.node.has_ready() {
            let ready = self.node.ready();
            if let Some(ss) = &ready.soft_state {
                self.shared.leader.store(ss.leader_id, Ordering::Release);
                let election_timeout = self.settings.tick * self.settings.election_ticks as u32;
                self.lessor
                    .set_primary(ss.raft_state == raft::StateRole::Leader, election_timeout);
            }
            if let Some(snapshot) = &ready.snapshot {
                // Snapshots arrive only from a leader of a multi-member cluster.
                error!(
                    index = snapshot.metadata.index,
                    "received a Raft snapshot: not supported by a single-member Cairn yet"
                );
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
                    Err(e) => fatal(&format!("WAL write failed: {e}")),
                };
                if let Err(e) = self.syncer.sync(handle).await {
                    fatal(&format!("WAL fdatasync failed: {e}"));
                }
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
            if !ready.messages.is_empty() {
                debug!(
                    count = ready.messages.len(),
                    "dropping Raft messages: no peer transport in a single-member cluster"
                );
            }
            for entry in &ready.committed_entries {
                self.apply_entry(entry);
            }
            for rs in &ready.read_states {
                let ctx = rs
                    .request_ctx
                    .as_ref()
                    .try_into()
                    .map(u64::from_le_bytes)
                    .unwrap_or(0);
                if let Some(waiters) = self.reads_by_ctx.remove(&ctx) {
                    self.reads_by_index.push((rs.index, waiters));
                }
            }
            self.node.advance(ready);
            self.shared
                .applied_index
                .store(self.applied, Ordering::Release);
            self.release_reads();
            self.maybe_checkpoint();
        }
    }

    fn wal_append(&mut self, record_type: u8, index: u64, payload: &[u8]) {
        if let Err(e) = self.wal.append(record_type, index, payload) {
            fatal(&format!("WAL append failed: {e}"));
        }
    }

    fn release_reads(&mut self) {
        let applied = self.applied;
        self.reads_by_index.retain_mut(|(index, waiters)| {
            if *index > applied {
                return true;
            }
            for w in waiters.drain(..) {
                let _ = w.send(Ok(()));
            }
            false
        });
    }

    fn apply_entry(&mut self, entry: &Entry) {
        assert!(
            entry.index == self.applied + 1,
            "applying entry {} after {}",
            entry.index,
            self.applied
        );
        match entry.entry_type {
            EntryType::ConfChange => {
                let cc = raft::ConfChange::decode(&entry.data).unwrap_or_else(|e| {
                    panic!("entry {}: undecodable conf change: {e}", entry.index)
                });
                match self.node.apply_conf_change(&cc) {
                    Ok(conf_state) => self.node.mut_store().set_conf_state(conf_state),
                    Err(e) => warn!(index = entry.index, "conf change rejected: {e}"),
                }
            }
            EntryType::Normal if entry.data.is_empty() => {}
            EntryType::Normal => {
                let mut data = entry.data.clone();
                assert!(
                    data.len() >= 8,
                    "entry {}: data shorter than its request id",
                    entry.index
                );
                let id = data.get_u64_le();
                let (request, reply) = match self.pending.remove(&id) {
                    Some((request, reply)) => (request, Some(reply)),
                    None => {
                        let request = InternalRaftRequest::decode(data).unwrap_or_else(|e| {
                            panic!("entry {}: undecodable request: {e}", entry.index)
                        });
                        (request, None)
                    }
                };
                let result = self.apply_request(&request);
                if let Some(reply) = reply {
                    let _ = reply.send(result);
                }
            }
        }
        self.applied = entry.index;
    }

    fn apply_request(&mut self, request: &InternalRaftRequest) -> Result<Applied, Status> {
        let lease_exists = |id: i64| self.lessor.contains(id);
        let begin = self.shared.reader.current_revision();
        let compact = self.shared.reader.compact_revision();
        if let Some(put) = &request.put {
            let mut view = WriteView::new(self.mvcc.write(), begin, compact);
            let result = kv::put(&mut view, put, &lease_exists);
            let (_, events) = view.end();
            self.lessor.apply_events(&events);
            self.shared.watch.publish(events);
            return result.map(Applied::Put);
        }
        if let Some(delete) = &request.delete_range {
            let mut view = WriteView::new(self.mvcc.write(), begin, compact);
            let result = kv::delete_range(&mut view, delete);
            let (_, events) = view.end();
            self.lessor.apply_events(&events);
            self.shared.watch.publish(events);
            return result.map(Applied::DeleteRange);
        }
        if let Some(txn) = &request.txn {
            let mut view = WriteView::new(self.mvcc.write(), begin, compact);
            let result = kv::txn_write(&mut view, txn, &lease_exists);
            let (_, events) = view.end();
            self.lessor.apply_events(&events);
            self.shared.watch.publish(events);
            return result.map(Applied::Txn);
        }
        if let Some(grant) = &request.lease_grant {
            return self
                .lessor
                .apply_grant(grant, begin)
                .map(Applied::LeaseGrant);
        }
        if let Some(revoke) = &request.lease_revoke {
            let view = WriteView::new(self.mvcc.write(), begin, compact);
            let (resp, events) = self.lessor.apply_revoke(revoke, view)?;
            self.shared.watch.publish(events);
            return Ok(Applied::LeaseRevoke(resp));
        }
        if let Some(compaction) = &request.compaction {
            return match self.mvcc.compact(compaction.revision) {
                Ok(()) => Ok(Applied::Compaction(CompactionResponse {
                    header: Some(ResponseHeader {
                        revision: self.shared.reader.current_revision(),
                        ..Default::default()
                    }),
                })),
                Err(e) => Err(errors::from_engine(&e)),
            };
        }
        Err(Status::new(
            net::Code::Internal,
            "etcdserver: unsupported request in the Raft log",
        ))
    }

    /// Every `--snapshot-count` applied entries: checkpoint MVCC, mark the WAL, drop old segments.
    fn maybe_checkpoint(&mut self) {
        if self.applied - self.last_checkpoint < self.settings.snapshot_count {
            return;
        }
        let index = self.applied;
        let term = self
            .node
            .store()
            .term(index)
            .unwrap_or_else(|e| panic!("term of applied entry {index}: {e}"));
        if let Err(e) = self.mvcc.checkpoint(index, &self.lessor.encode()) {
            error!("checkpoint at index {index} failed: {e}");
            return;
        }
        let hs = self.node.status().hard_state;
        self.wal_append(REC_SNAPSHOT, index, &encode_u64s(&[index, term]));
        self.wal_append(
            REC_HARD_STATE,
            0,
            &encode_u64s(&[hs.term, hs.vote, hs.commit]),
        );
        if let Err(e) = self.wal.sync() {
            fatal(&format!("WAL sync after checkpoint failed: {e}"));
        }
        let keep_from = index.saturating_sub(SNAPSHOT_CATCH_UP_ENTRIES);
        if keep_from > 0 {
            match self.wal.purge(keep_from) {
                Ok(n) => debug!(segments = n, "purged WAL segments"),
                Err(e) => warn!("WAL purge failed: {e}"),
            }
            if let Err(e) = self.node.mut_store().compact(keep_from) {
                warn!("log compaction at {keep_from} failed: {e}");
            }
        }
        self.last_checkpoint = index;
        info!(index, term, "checkpoint written");
    }
}

/// A storage failure the process must not survive (DESIGN.md §3: a failed fsync stops the process).
fn fatal(message: &str) -> ! {
    error!("{message}");
    eprintln!("cairn: fatal: {message}");
    std::process::exit(1);
}
