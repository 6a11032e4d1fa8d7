//! etcd's Lease service: the lessor owned by the raft core (lease table, key attachments,
//! expiry), its recovery from the MVCC checkpoint, and the gRPC handlers (LeaseGrant,
//! LeaseRevoke, LeaseKeepAlive, LeaseTimeToLive, LeaseLeases).
//!
//! Source of every rule: etcd 3.4 `lease/lessor.go` (Grant, Revoke, Renew, Promote,
//! revokeExpiredLeases), `etcdserver/v3_server.go` (LeaseGrant ID choice, LeaseTimeToLive,
//! LeaseLeases), `etcdserver/apply.go` (LeaseGrant/LeaseRevoke headers),
//! `etcdserver/api/v3rpc/lease.go` (KeepAlive stream, TimeToLive of a missing lease).
//!
//! Grants and revokes are Raft entries applied by [`Lessor`]; renewals, TimeToLive and
//! Leases are answered by the raft core from its table without a log entry (etcd's renew
//! is leader-local too). Expiry is decided by the leader: every tick it proposes a revoke
//! for at most [`EXPIRED_REVOKES_PER_TICK_MAX`] expired leases.

use std::collections::{BTreeSet, HashMap};
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use bytes::{Buf, BufMut, Bytes};
use engine::{Event, EventType, Mvcc, RangeOptions};
use futures::channel::oneshot;
use net::pb::etcdserverpb::{
    InternalRaftRequest, LeaseGrantRequest, LeaseGrantResponse, LeaseKeepAliveRequest,
    LeaseKeepAliveResponse, LeaseLeasesRequest, LeaseLeasesResponse, LeaseRevokeRequest,
    LeaseRevokeResponse, LeaseStatus, LeaseTimeToLiveRequest, LeaseTimeToLiveResponse,
    ResponseHeader,
};
use net::{Code, Inbound, Outbound, Status};
use prost::Message;
use tracing::{debug, warn};

use crate::cluster::{encode_entry_data, Applied, RaftRequest};
use crate::errors;
use crate::kv::WriteView;
use crate::service::decode;
use crate::service::EtcdService;

/// Largest TTL a lease may be granted, in seconds (etcd `lease.MaxLeaseTTL`).
pub const MAX_LEASE_TTL_SECONDS: i64 = 9_000_000_000;
/// Most expired leases the leader proposes to revoke per tick (etcd revokes at most
/// `leaseRevokeRate / 2` = 500 per 500 ms check; ticks here are one heartbeat, 100 ms by
/// default, so 100 per tick keeps the same 1,000/s rate).
pub const EXPIRED_REVOKES_PER_TICK_MAX: usize = 100;
/// How long the leader waits for a proposed expiry revoke to apply before proposing it
/// again (etcd `ExpiredLeasesRetryInterval`, its request timeout: 5 s + 2 election timeouts
/// of 1 s by default).
pub const EXPIRED_REVOKE_RETRY: Duration = Duration::from_secs(7);
/// Version byte of the lease table in the checkpoint's meta bytes (2: with the remaining
/// TTL of lease checkpointing; 1, read only: without).
const META_VERSION: u8 = 2;
/// etcd's lease checkpoint interval (`lease.defaultLeaseCheckpointInterval`).
pub const LEASE_CHECKPOINT_INTERVAL: Duration = Duration::from_secs(5 * 60);
/// Test-only override of [`LEASE_CHECKPOINT_INTERVAL`], in milliseconds (etcd 3.4 has no
/// flag for it; its tests shorten it the same way).
pub const LEASE_CHECKPOINT_INTERVAL_ENV: &str = "CAIRN_LEASE_CHECKPOINT_INTERVAL_MS";

/// The lease checkpoint interval: [`LEASE_CHECKPOINT_INTERVAL`] unless
/// [`LEASE_CHECKPOINT_INTERVAL_ENV`] holds a number of milliseconds above 0.
pub fn checkpoint_interval() -> Duration {
    std::env::var(LEASE_CHECKPOINT_INTERVAL_ENV)
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .filter(|ms| *ms > 0)
        .map_or(LEASE_CHECKPOINT_INTERVAL, Duration::from_millis)
}

/// Most leases in one LeaseCheckpoint request (etcd `maxLeaseCheckpointBatchSize`).
pub const LEASE_CHECKPOINTS_PER_REQUEST_MAX: usize = 1000;
/// Largest number of leases a checkpoint's meta bytes may declare (guards decoding
/// against a corrupt count before allocating).
pub const META_LEASES_MAX: usize = 1 << 28;

/// etcd's minimum lease TTL in seconds: `(3 * electionTicks) / 2` heartbeats, rounded up
/// to whole seconds (etcdserver `server.go` `minTTL`; 2 s with the default 10 × 100 ms).
pub fn min_ttl_seconds(election_ticks: usize, tick: Duration) -> i64 {
    let min_ttl = tick * ((3 * election_ticks as u32) / 2);
    let millis = min_ttl.as_millis() as i64;
    (millis + 999) / 1000
}

/// Errors of the Lease service not already in [`errors`] (etcd `rpctypes/error.go`).
pub mod lease_errors {
    use net::{Code, Status};

    /// `ErrGRPCLeaseExist`.
    pub fn lease_exist() -> Status {
        Status::new(Code::FailedPrecondition, "etcdserver: lease already exists")
    }

    /// `ErrGRPCLeaseTTLTooLarge`.
    pub fn ttl_too_large() -> Status {
        Status::new(Code::OutOfRange, "etcdserver: too large lease TTL")
    }
}

/// Generates lease IDs the way etcd's `idutil.Generator` does: the low 16 bits of the
/// member ID in the top 16 bits, then a 48-bit counter that starts at the boot time in
/// milliseconds shifted left by 8; masked to a positive int64 (v3_server.go LeaseGrant).
fn next_lease_id(member_id: u64) -> i64 {
    static SUFFIX: OnceLock<AtomicU64> = OnceLock::new();
    const SUFFIX_BITS: u32 = 48;
    let suffix = SUFFIX.get_or_init(|| {
        let ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        AtomicU64::new(ms << 8)
    });
    loop {
        let n = suffix.fetch_add(1, Ordering::Relaxed).wrapping_add(1);
        let id = ((member_id & 0xffff) << SUFFIX_BITS) | (n & ((1 << SUFFIX_BITS) - 1));
        let id = (id & (u64::MAX >> 1)) as i64;
        if id != 0 {
            return id;
        }
    }
}

/// One lease.
#[derive(Debug)]
struct Lease {
    /// Granted TTL in seconds (at least the minimum TTL).
    ttl: i64,
    /// When it expires; `None` = never (this member is not the leader: etcd's `forever`).
    expiry: Option<Instant>,
    /// Keys attached to it.
    keys: BTreeSet<Bytes>,
    /// When the leader last proposed revoking it after expiry.
    revoke_proposed: Option<Instant>,
    /// Seconds left at the last lease checkpoint (etcd `remainingTTL`; 0: none): a new
    /// leader, or this member after a restart, counts the lease down from it.
    remaining_ttl: i64,
}

impl Lease {
    /// Expiry := now + `extend` + TTL (etcd `refresh`); capped at now + 2^32 s when the
    /// sum leaves the monotonic clock's range (MaxLeaseTTL is 285 years).
    fn refresh(&mut self, now: Instant, extend: Duration) {
        // etcd `Lease.RemainingTTL`: the checkpointed remainder when there is one.
        let left = if self.remaining_ttl > 0 {
            self.remaining_ttl
        } else {
            self.ttl
        };
        let ttl = Duration::from_secs(left.max(0) as u64);
        self.expiry = Some(
            now.checked_add(extend + ttl)
                .unwrap_or(now + Duration::from_secs(u32::MAX as u64)),
        );
        self.revoke_proposed = None;
    }

    /// Remaining whole seconds, truncated toward zero like Go's `int64(d.Seconds())`.
    fn remaining_seconds(&self, now: Instant) -> i64 {
        match self.expiry {
            None => i64::MAX / 1_000_000_000,
            Some(e) if e >= now => (e - now).as_secs() as i64,
            Some(e) => -((now - e).as_secs() as i64),
        }
    }

    /// Remaining nanoseconds (negative once expired; `i64::MAX` when it never expires).
    fn remaining_nanos(&self, now: Instant) -> i64 {
        match self.expiry {
            None => i64::MAX,
            Some(e) if e >= now => (e - now).as_nanos().min(i64::MAX as u128) as i64,
            Some(e) => -((now - e).as_nanos().min(i64::MAX as u128) as i64),
        }
    }

    fn expired(&self, now: Instant) -> bool {
        self.expiry.is_some_and(|e| e <= now)
    }
}

/// A query the cores send the raft core about leases (no log entry).
#[derive(Debug)]
pub enum LeaseQuery {
    /// LeaseKeepAlive: refresh the lease's expiry; the reply is its TTL.
    Renew(i64),
    /// LeaseTimeToLive, with the attached keys when `keys`.
    TimeToLive {
        /// The lease.
        id: i64,
        /// Whether to list the attached keys.
        keys: bool,
    },
    /// LeaseLeases: every lease ID, soonest expiry first.
    Leases,
}

/// The raft core's answer to a [`LeaseQuery`].
#[derive(Debug)]
pub enum LeaseAnswer {
    /// Renewed: the lease's granted TTL in seconds.
    Renewed(i64),
    /// TimeToLive (header not filled).
    TimeToLive(LeaseTimeToLiveResponse),
    /// Lease IDs, soonest expiry first.
    Leases(Vec<i64>),
}

/// `(id, granted TTL, remaining TTL at the last checkpoint)` triples in seconds (0: no
/// checkpoint) as the checkpoint meta bytes of [`Lessor`]'s format, sorted by ID: what
/// [`Lessor::recover`] reads.
pub fn encode_lease_table(leases: impl IntoIterator<Item = (i64, i64, i64)>) -> Vec<u8> {
    let mut leases: Vec<(i64, i64, i64)> = leases.into_iter().collect();
    leases.sort_unstable();
    let mut buf = Vec::with_capacity(5 + 24 * leases.len());
    buf.put_u8(META_VERSION);
    buf.put_u32_le(leases.len() as u32);
    for (id, ttl, remaining) in leases {
        buf.put_i64_le(id);
        buf.put_i64_le(ttl);
        buf.put_i64_le(remaining);
    }
    buf
}

/// The lease table (etcd's lessor), owned by the raft core.
///
/// Persisted in the MVCC checkpoint's meta bytes ([`Lessor::encode`]): `version u8 (= 2) |
/// count u32 LE | count × (id i64 LE | ttl i64 LE | remaining ttl i64 LE)` (version 1,
/// still read, has no remaining TTL). Attachments are not stored: they are rebuilt from
/// the keys' `lease` fields at open.
///
/// Lease checkpointing (etcd 3.6, `--experimental-enable-lease-checkpoint`): the leader
/// proposes every lease's remaining TTL every [`LEASE_CHECKPOINT_INTERVAL`]
/// ([`propose_checkpoints`]); every member records it, keeps it in its checkpoint, and a
/// new leader (or a restarted one) counts the lease down from it instead of the whole TTL.
#[derive(Debug)]
pub struct Lessor {
    leases: HashMap<i64, Lease>,
    min_ttl_seconds: i64,
    primary: bool,
    /// Lease checkpointing: its interval when enabled.
    checkpoint_interval: Option<Duration>,
    /// When the leader proposes the next checkpoints.
    next_checkpoint: Option<Instant>,
    /// Leases renewed with a checkpointed remainder: the leader proposes a checkpoint of 0
    /// for them so that every member forgets it (etcd's `clearRemainingTTL`).
    clear_remaining: Vec<i64>,
}

impl Lessor {
    /// An empty table with etcd's minimum TTL.
    pub fn new(min_ttl_seconds: i64) -> Lessor {
        Lessor {
            leases: HashMap::new(),
            min_ttl_seconds,
            primary: false,
            checkpoint_interval: None,
            next_checkpoint: None,
            clear_remaining: Vec::new(),
        }
    }

    /// Turns lease checkpointing on with `interval` (see the type's doc).
    pub fn enable_checkpoints(&mut self, interval: Duration) {
        self.checkpoint_interval = Some(interval);
    }

    /// Recovers the table at open: leases from the checkpoint's `meta` bytes, attachments
    /// from every key whose `lease` is set. Leases never expire until [`Lessor::promote`].
    pub fn recover(mvcc: &Mvcc, meta: &[u8], min_ttl_seconds: i64) -> Result<Lessor, String> {
        let mut lessor = Lessor::new(min_ttl_seconds);
        lessor.decode(meta)?;
        if lessor.leases.is_empty() {
            // No key can belong to a lease: skip the scan, which reads every key's value
            // record (about 1.3 s for 1,000,000 keys of 1 KiB). Keys naming an unknown
            // lease are then not warned about, the one thing the scan would still do.
            return Ok(lessor);
        }
        let all = mvcc
            .reader()
            .range(
                b"\0",
                b"\0",
                &RangeOptions {
                    keys_only: true,
                    ..Default::default()
                },
            )
            .map_err(|e| format!("cannot scan keys for lease attachments: {e}"))?;
        for kv in all.kvs.into_iter().filter(|kv| kv.lease != 0) {
            match lessor.leases.get_mut(&kv.lease) {
                Some(l) => {
                    l.keys.insert(kv.key);
                }
                // etcd's kvstore restore only logs this too.
                None => warn!(lease = kv.lease, "a key is attached to an unknown lease"),
            }
        }
        Ok(lessor)
    }

    fn decode(&mut self, meta: &[u8]) -> Result<(), String> {
        if meta.is_empty() {
            return Ok(());
        }
        let mut buf = meta;
        let version = buf.get_u8();
        let entry_bytes = match version {
            1 => 16,
            META_VERSION => 24,
            _ => {
                return Err(format!(
                    "checkpoint lease table has version {version}, want 1 or {META_VERSION}"
                ))
            }
        };
        if buf.remaining() < 4 {
            return Err("checkpoint lease table is truncated".into());
        }
        let count = buf.get_u32_le() as usize;
        if count > META_LEASES_MAX || buf.remaining() != count * entry_bytes {
            return Err(format!(
                "checkpoint lease table declares {count} leases but holds {} bytes",
                buf.remaining()
            ));
        }
        for _ in 0..count {
            let id = buf.get_i64_le();
            let ttl = buf.get_i64_le();
            let remaining_ttl = if version == 1 { 0 } else { buf.get_i64_le() };
            if id == 0 {
                return Err("checkpoint lease table holds lease 0".into());
            }
            self.leases.insert(
                id,
                Lease {
                    ttl,
                    expiry: None,
                    keys: BTreeSet::new(),
                    revoke_proposed: None,
                    remaining_ttl,
                },
            );
        }
        Ok(())
    }

    /// The table as checkpoint meta bytes (format in the type's doc), leases by ID.
    pub fn encode(&self) -> Vec<u8> {
        encode_lease_table(self.table())
    }

    /// Every lease as `(id, granted TTL, remaining TTL at the last checkpoint)` in seconds
    /// (0: none), by ID: what a snapshot's `lease` bucket holds (`leasepb.Lease`).
    pub fn table(&self) -> Vec<(i64, i64, i64)> {
        let mut leases: Vec<(i64, i64, i64)> = self
            .leases
            .iter()
            .map(|(id, l)| (*id, l.ttl, l.remaining_ttl))
            .collect();
        leases.sort_unstable();
        leases
    }

    /// Applies a LeaseCheckpoint (etcd `lessor.Checkpoint`): records each lease's
    /// remaining TTL (0 clears it); unknown leases are skipped.
    pub fn apply_checkpoint(&mut self, r: &net::pb::etcdserverpb::LeaseCheckpointRequest) {
        for cp in &r.checkpoints {
            if let Some(l) = self.leases.get_mut(&cp.id) {
                l.remaining_ttl = cp.remaining_ttl;
            }
        }
    }

    /// The leader's checkpoints due at `now`: every [`Lessor::enable_checkpoints`]
    /// interval, each lease whose granted TTL exceeds the interval (etcd
    /// `scheduleCheckpointIfNeeded`) with its remaining whole seconds, plus a 0 for every
    /// lease renewed since with a checkpointed remainder; in requests of at most
    /// [`LEASE_CHECKPOINTS_PER_REQUEST_MAX`].
    pub fn take_checkpoints(
        &mut self,
        now: Instant,
    ) -> Vec<net::pb::etcdserverpb::LeaseCheckpointRequest> {
        use net::pb::etcdserverpb::{LeaseCheckpoint, LeaseCheckpointRequest};
        let Some(interval) = self.checkpoint_interval.filter(|_| self.primary) else {
            return Vec::new();
        };
        let mut checkpoints: Vec<LeaseCheckpoint> = std::mem::take(&mut self.clear_remaining)
            .into_iter()
            .map(|id| LeaseCheckpoint {
                id,
                remaining_ttl: 0,
            })
            .collect();
        let due = self.next_checkpoint.get_or_insert(now + interval);
        if *due <= now {
            *due = now + interval;
            let mut ids: Vec<(&i64, &Lease)> = self
                .leases
                .iter()
                .filter(|(_, l)| l.ttl as u64 > interval.as_secs() && !l.expired(now))
                .collect();
            ids.sort_by_key(|(id, _)| **id);
            checkpoints.extend(ids.into_iter().map(|(id, l)| LeaseCheckpoint {
                id: *id,
                remaining_ttl: l.remaining_seconds(now),
            }));
        }
        checkpoints
            .chunks(LEASE_CHECKPOINTS_PER_REQUEST_MAX)
            .map(|c| LeaseCheckpointRequest {
                checkpoints: c.to_vec(),
            })
            .collect()
    }

    /// The keys attached to lease `id` (none for an unknown lease), sorted: the keys
    /// etcd's auth checks at LeaseRevoke and at a Put naming the lease.
    pub fn keys_of(&self, id: i64) -> Vec<Bytes> {
        self.leases
            .get(&id)
            .map(|l| l.keys.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Whether lease `id` exists (the lessor's `Lookup`, used by Put and Txn).
    pub fn contains(&self, id: i64) -> bool {
        self.leases.contains_key(&id)
    }

    /// Applies LeaseGrant (lessor.Grant): `revision` is the store's current revision.
    pub fn apply_grant(
        &mut self,
        r: &LeaseGrantRequest,
        revision: i64,
    ) -> Result<LeaseGrantResponse, Status> {
        if r.id == 0 {
            return Err(errors::lease_not_found());
        }
        if r.ttl > MAX_LEASE_TTL_SECONDS {
            return Err(lease_errors::ttl_too_large());
        }
        if self.leases.contains_key(&r.id) {
            return Err(lease_errors::lease_exist());
        }
        let mut lease = Lease {
            ttl: r.ttl.max(self.min_ttl_seconds),
            expiry: None,
            keys: BTreeSet::new(),
            revoke_proposed: None,
            remaining_ttl: 0,
        };
        if self.primary {
            lease.refresh(Instant::now(), Duration::ZERO);
        }
        let ttl = lease.ttl;
        self.leases.insert(r.id, lease);
        Ok(LeaseGrantResponse {
            header: Some(ResponseHeader {
                revision,
                ..Default::default()
            }),
            id: r.id,
            ttl,
            error: String::new(),
        })
    }

    /// Applies LeaseRevoke (lessor.Revoke): deletes every attached key, sorted, in ONE
    /// write txn (one revision, none if nothing was attached), then drops the lease.
    /// Returns the response and the txn's events.
    pub fn apply_revoke(
        &mut self,
        r: &LeaseRevokeRequest,
        mut view: WriteView<'_>,
    ) -> Result<(LeaseRevokeResponse, Vec<Event>), Status> {
        let Some(lease) = self.leases.remove(&r.id) else {
            return Err(errors::lease_not_found());
        };
        for key in &lease.keys {
            view.delete_range(key, &[]);
        }
        let (revision, events) = view.end();
        self.apply_events(&events);
        Ok((
            LeaseRevokeResponse {
                header: Some(ResponseHeader {
                    revision,
                    ..Default::default()
                }),
            },
            events,
        ))
    }

    /// Updates attachments from a write txn's events: a put moves its key from the
    /// previous lease to its own; a delete detaches it.
    pub fn apply_events(&mut self, events: &[Event]) {
        for e in events {
            let old = e.prev_kv.as_ref().map_or(0, |p| p.lease);
            let new = match e.event_type {
                EventType::Put => e.kv.lease,
                EventType::Delete => 0,
            };
            if old == new {
                continue;
            }
            if let Some(l) = self.leases.get_mut(&old) {
                l.keys.remove(&e.kv.key);
            }
            if let Some(l) = self.leases.get_mut(&new) {
                l.keys.insert(e.kv.key.clone());
            }
        }
    }

    /// Role change from Raft: becoming leader refreshes every lease's expiry to
    /// now + `extend` + TTL (etcd Promote with the election timeout); losing it makes
    /// every lease live forever here until the next promotion (etcd Demote).
    pub fn set_primary(&mut self, primary: bool, extend: Duration) {
        if primary == self.primary {
            return;
        }
        self.primary = primary;
        let now = Instant::now();
        for l in self.leases.values_mut() {
            if primary {
                l.refresh(now, extend);
            } else {
                l.expiry = None;
                l.revoke_proposed = None;
            }
        }
    }

    /// Expired leases to revoke now: at most `limit`, none proposed within
    /// [`EXPIRED_REVOKE_RETRY`]; marks them proposed.
    pub fn take_expired(&mut self, now: Instant, limit: usize) -> Vec<i64> {
        if !self.primary {
            return Vec::new();
        }
        let mut ids = Vec::new();
        for (id, l) in self.leases.iter_mut() {
            if ids.len() == limit {
                break;
            }
            let retry_due = l
                .revoke_proposed
                .is_none_or(|at| now.duration_since(at) >= EXPIRED_REVOKE_RETRY);
            if l.expired(now) && retry_due {
                l.revoke_proposed = Some(now);
                ids.push(*id);
            }
        }
        ids
    }

    /// Answers a query at `now`. Not the leader → etcd's "no leader" (etcd would forward to
    /// the leader; a single-member Cairn has no peer to forward to).
    pub fn answer(&mut self, query: LeaseQuery, now: Instant) -> Result<LeaseAnswer, Status> {
        match query {
            LeaseQuery::Leases => {
                let mut ls: Vec<(i64, i64)> = self
                    .leases
                    .iter()
                    .map(|(id, l)| (l.remaining_nanos(now), *id))
                    .collect();
                ls.sort();
                Ok(LeaseAnswer::Leases(
                    ls.into_iter().map(|(_, id)| id).collect(),
                ))
            }
            _ if !self.primary => Err(errors::no_leader()),
            LeaseQuery::Renew(id) => match self.leases.get_mut(&id) {
                // An expired lease is on its way out (etcd waits for its revoke, then
                // reports it missing).
                Some(l) if !l.expired(now) => {
                    if l.remaining_ttl > 0 {
                        // etcd's Renew: the whole TTL again, and a checkpoint of 0.
                        l.remaining_ttl = 0;
                        self.clear_remaining.push(id);
                    }
                    l.refresh(now, Duration::ZERO);
                    Ok(LeaseAnswer::Renewed(l.ttl))
                }
                _ => Err(errors::lease_not_found()),
            },
            LeaseQuery::TimeToLive { id, keys } => {
                let Some(l) = self.leases.get(&id) else {
                    return Err(errors::lease_not_found());
                };
                Ok(LeaseAnswer::TimeToLive(LeaseTimeToLiveResponse {
                    header: Some(ResponseHeader::default()),
                    id,
                    ttl: l.remaining_seconds(now),
                    granted_ttl: l.ttl,
                    keys: if keys {
                        l.keys.iter().cloned().collect()
                    } else {
                        Vec::new()
                    },
                }))
            }
        }
    }
}

/// Proposes the leader's due lease checkpoints ([`Lessor::take_checkpoints`]); no client
/// waits for them. `member_id` is this member (the entries' origin).
pub fn propose_checkpoints(
    lessor: &mut Lessor,
    node: &mut raft::RawNode<raft::MemStorage>,
    member_id: u64,
) {
    for checkpoint in lessor.take_checkpoints(Instant::now()) {
        let request = InternalRaftRequest {
            lease_checkpoint: Some(checkpoint),
            ..Default::default()
        };
        if let Err(e) = node.propose(Bytes::new(), encode_entry_data(member_id, 0, &request)) {
            debug!("lease checkpoint not proposed: {e}");
        }
    }
}

/// Proposes a LeaseRevoke for each expired lease (at most [`EXPIRED_REVOKES_PER_TICK_MAX`]),
/// as etcd's leader does from `revokeExpiredLeases`. The entries carry request ID 0: no
/// client waits for them. `member_id` is this member (the entries' origin). They act as
/// the server itself, so auth never keeps an expired lease alive (etcd 3.5 revokes
/// expired leases with a root token: `WithRoot`).
pub fn propose_expired(
    lessor: &mut Lessor,
    node: &mut raft::RawNode<raft::MemStorage>,
    member_id: u64,
) {
    for id in lessor.take_expired(Instant::now(), EXPIRED_REVOKES_PER_TICK_MAX) {
        let internal = crate::auth::AuthInfo::internal();
        let request = InternalRaftRequest {
            header: Some(net::pb::etcdserverpb::RequestHeader {
                id: 0,
                username: internal.username,
                auth_revision: internal.revision,
            }),
            lease_revoke: Some(LeaseRevokeRequest { id }),
            ..Default::default()
        };
        if let Err(e) = node.propose(Bytes::new(), encode_entry_data(member_id, 0, &request)) {
            debug!(lease = id, "expiry revoke not proposed: {e}");
        }
    }
}

// ---------------------------------------------------------------- gRPC handlers

/// Every unary method of the Lease service, by gRPC path.
pub const UNARY_METHODS: &[&str] = &[
    "/etcdserverpb.Lease/LeaseGrant",
    "/etcdserverpb.Lease/LeaseRevoke",
    "/etcdserverpb.Lease/LeaseTimeToLive",
    "/etcdserverpb.Lease/LeaseLeases",
];

/// The Lease service's bidirectional streaming method.
pub const KEEP_ALIVE_METHOD: &str = "/etcdserverpb.Lease/LeaseKeepAlive";

async fn query(svc: &EtcdService, query: LeaseQuery) -> Result<LeaseAnswer, Status> {
    let (reply, answer) = oneshot::channel();
    svc.send(RaftRequest::Lease(query, reply, true)).await?;
    crate::service::await_reply(answer).await?
}

/// Serves one unary Lease method (`path` is one of [`UNARY_METHODS`]).
/// `caller` proposes LeaseGrant and LeaseRevoke (checked where they apply) and must read
/// every key a LeaseTimeToLive with `keys` lists (etcd 3.5 `checkLeaseTimeToLive`).
pub async fn unary(
    svc: &EtcdService,
    caller: &crate::auth::AuthInfo,
    path: &str,
    body: Bytes,
) -> Result<Bytes, Status> {
    let shared = svc.shared();
    let fill = |header: &mut Option<ResponseHeader>| {
        let revision = header.as_ref().map_or(0, |h| h.revision);
        *header = Some(shared.header(revision));
    };
    match path {
        "/etcdserverpb.Lease/LeaseGrant" => {
            let mut r: LeaseGrantRequest = decode(body)?;
            // etcd's quotaLeaseServer.
            svc.check_quota(crate::service::QUOTA_LEASE_OVERHEAD_BYTES)
                .await?;
            if r.id == 0 {
                r.id = next_lease_id(shared.member_id);
            }
            let request = InternalRaftRequest {
                lease_grant: Some(r),
                ..Default::default()
            };
            match svc.propose_as(caller, request).await? {
                Applied::LeaseGrant(mut resp) => {
                    fill(&mut resp.header);
                    Ok(Bytes::from(resp.encode_to_vec()))
                }
                other => unreachable!("LeaseGrant applied as {other:?}"),
            }
        }
        "/etcdserverpb.Lease/LeaseRevoke" => {
            let r: LeaseRevokeRequest = decode(body)?;
            let request = InternalRaftRequest {
                lease_revoke: Some(r),
                ..Default::default()
            };
            match svc.propose_as(caller, request).await? {
                Applied::LeaseRevoke(mut resp) => {
                    fill(&mut resp.header);
                    Ok(Bytes::from(resp.encode_to_vec()))
                }
                other => unreachable!("LeaseRevoke applied as {other:?}"),
            }
        }
        "/etcdserverpb.Lease/LeaseTimeToLive" => {
            let r: LeaseTimeToLiveRequest = decode(body)?;
            let mut resp = match query(
                svc,
                LeaseQuery::TimeToLive {
                    id: r.id,
                    keys: r.keys,
                },
            )
            .await
            {
                Ok(LeaseAnswer::TimeToLive(resp)) => resp,
                // v3rpc LeaseTimeToLive: a missing lease is TTL -1, not an error.
                Err(e) if e.code == Code::NotFound => LeaseTimeToLiveResponse {
                    header: None,
                    id: r.id,
                    ttl: -1,
                    ..Default::default()
                },
                Err(e) => return Err(e),
                Ok(other) => unreachable!("TimeToLive answered {other:?}"),
            };
            if r.keys {
                if let Some(auth) = svc.auth_store() {
                    for key in &resp.keys {
                        auth.check_op(caller, key, &[], crate::auth::store::Access::Read)?;
                    }
                }
            }
            resp.header = None;
            fill(&mut resp.header);
            Ok(Bytes::from(resp.encode_to_vec()))
        }
        "/etcdserverpb.Lease/LeaseLeases" => {
            let _: LeaseLeasesRequest = decode(body)?;
            let ids = match query(svc, LeaseQuery::Leases).await? {
                LeaseAnswer::Leases(ids) => ids,
                other => unreachable!("Leases answered {other:?}"),
            };
            let resp = LeaseLeasesResponse {
                header: Some(shared.header(0)),
                leases: ids.into_iter().map(|id| LeaseStatus { id }).collect(),
            };
            Ok(Bytes::from(resp.encode_to_vec()))
        }
        _ => Err(Status::new(
            Code::Unimplemented,
            format!("unknown method {path}"),
        )),
    }
}

/// LeaseKeepAlive: for each request, renew and answer `{header, ID, TTL}` (TTL 0 when the
/// lease is gone); the header is taken before the renewal, as etcd does. Ends OK when
/// the client half-closes.
pub async fn keep_alive(
    svc: Rc<EtcdService>,
    mut inbound: Inbound,
    mut outbound: Outbound,
) -> Result<(), Status> {
    while let Some(message) = inbound.next().await {
        let r: LeaseKeepAliveRequest = decode(message?)?;
        crate::supervise::panic_point!("lease-keep-alive", r.id.to_string());
        let header = svc.shared().header(0);
        let ttl = match query(&svc, LeaseQuery::Renew(r.id)).await {
            Ok(LeaseAnswer::Renewed(ttl)) => ttl,
            Err(e) if e.code == Code::NotFound => 0,
            Err(e) => return Err(e),
            Ok(other) => unreachable!("Renew answered {other:?}"),
        };
        let resp = LeaseKeepAliveResponse {
            header: Some(header),
            id: r.id,
            ttl,
        };
        outbound.send(Bytes::from(resp.encode_to_vec())).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn min_ttl_is_etcds() {
        assert_eq!(min_ttl_seconds(10, Duration::from_millis(100)), 2);
        assert_eq!(min_ttl_seconds(10, Duration::from_millis(200)), 3);
        assert_eq!(min_ttl_seconds(5, Duration::from_millis(100)), 1);
    }

    #[test]
    fn meta_round_trip() {
        let mut l = Lessor::new(2);
        for (id, ttl) in [(7, 10), (3, 1)] {
            l.apply_grant(&LeaseGrantRequest { id, ttl }, 1).unwrap();
        }
        l.apply_checkpoint(&net::pb::etcdserverpb::LeaseCheckpointRequest {
            checkpoints: vec![net::pb::etcdserverpb::LeaseCheckpoint {
                id: 7,
                remaining_ttl: 4,
            }],
        });
        let bytes = l.encode();
        assert_eq!(bytes.len(), 5 + 48);
        let mut back = Lessor::new(2);
        back.decode(&bytes).unwrap();
        assert_eq!(back.leases[&3].ttl, 2);
        assert_eq!(back.leases[&7].ttl, 10);
        assert_eq!(back.leases[&7].remaining_ttl, 4);
        assert!(back.decode(&bytes[..bytes.len() - 1]).is_err());
        // Version 1 (before checkpoints): `id | ttl` pairs, no remainder.
        let mut v1 = vec![1u8];
        v1.extend_from_slice(&1u32.to_le_bytes());
        v1.extend_from_slice(&9i64.to_le_bytes());
        v1.extend_from_slice(&30i64.to_le_bytes());
        let mut old = Lessor::new(2);
        old.decode(&v1).unwrap();
        assert_eq!((old.leases[&9].ttl, old.leases[&9].remaining_ttl), (30, 0));
    }

    #[test]
    fn checkpoints_are_due_each_interval_and_renewals_clear_them() {
        let mut l = Lessor::new(2);
        l.enable_checkpoints(Duration::from_secs(5));
        for (id, ttl) in [(1, 60), (2, 3)] {
            l.apply_grant(&LeaseGrantRequest { id, ttl }, 1).unwrap();
        }
        let start = Instant::now();
        assert!(l.take_checkpoints(start).is_empty(), "not the leader");
        l.set_primary(true, Duration::ZERO);
        assert!(
            l.take_checkpoints(start).is_empty(),
            "first interval not over"
        );
        let due = l.take_checkpoints(start + Duration::from_secs(6));
        assert_eq!(due.len(), 1);
        // Lease 2's TTL is not above the interval (etcd schedules none for it).
        assert_eq!(due[0].checkpoints.len(), 1);
        assert_eq!(due[0].checkpoints[0].id, 1);
        l.apply_checkpoint(&due[0]);
        assert!(l.leases[&1].remaining_ttl > 0);
        assert!(matches!(
            l.answer(LeaseQuery::Renew(1), Instant::now()),
            Ok(LeaseAnswer::Renewed(60))
        ));
        assert_eq!(l.leases[&1].remaining_ttl, 0, "renewal clears it here");
        let clear = l.take_checkpoints(start + Duration::from_secs(7));
        assert_eq!(
            clear[0].checkpoints[0].remaining_ttl, 0,
            "and for every member"
        );
    }

    #[test]
    fn grant_errors() {
        let mut l = Lessor::new(2);
        l.apply_grant(&LeaseGrantRequest { id: 1, ttl: 5 }, 1)
            .unwrap();
        assert_eq!(
            l.apply_grant(&LeaseGrantRequest { id: 1, ttl: 5 }, 1)
                .unwrap_err(),
            lease_errors::lease_exist()
        );
        assert_eq!(
            l.apply_grant(
                &LeaseGrantRequest {
                    id: 2,
                    ttl: MAX_LEASE_TTL_SECONDS + 1
                },
                1
            )
            .unwrap_err(),
            lease_errors::ttl_too_large()
        );
    }

    #[test]
    fn expired_leases_are_taken_up_to_the_limit_and_retried_later() {
        let mut l = Lessor::new(2);
        l.set_primary(true, Duration::ZERO);
        for id in 1..=3 {
            l.apply_grant(&LeaseGrantRequest { id, ttl: 5 }, 1).unwrap();
        }
        let now = Instant::now();
        assert_eq!(l.take_expired(now, 2), Vec::<i64>::new());
        let later = now + Duration::from_secs(6);
        let mut taken = l.take_expired(later, 2);
        assert_eq!(taken.len(), 2);
        taken.extend(l.take_expired(later, 2));
        taken.sort();
        assert_eq!(taken, vec![1, 2, 3]);
        assert_eq!(l.take_expired(later, 2), Vec::<i64>::new());
        assert_eq!(l.take_expired(later + EXPIRED_REVOKE_RETRY, 5).len(), 3);
        l.set_primary(false, Duration::ZERO);
        assert_eq!(
            l.take_expired(later + 2 * EXPIRED_REVOKE_RETRY, 5),
            Vec::<i64>::new()
        );
    }

    fn put_event(key: &str, lease: i64, prev_lease: Option<i64>) -> Event {
        let kv = |lease| engine::KeyValue {
            key: Bytes::copy_from_slice(key.as_bytes()),
            lease,
            ..Default::default()
        };
        Event {
            event_type: EventType::Put,
            kv: kv(lease),
            prev_kv: prev_lease.map(kv),
        }
    }

    fn keys(l: &Lessor, id: i64) -> Vec<&[u8]> {
        l.leases[&id].keys.iter().map(|k| k.as_ref()).collect()
    }

    #[test]
    fn events_attach_move_and_detach_keys() {
        let mut l = Lessor::new(2);
        for id in [1, 2] {
            l.apply_grant(&LeaseGrantRequest { id, ttl: 5 }, 1).unwrap();
        }
        l.apply_events(&[put_event("a", 1, None), put_event("b", 1, Some(0))]);
        assert_eq!(keys(&l, 1), [b"a", b"b"]);
        l.apply_events(&[put_event("a", 2, Some(1)), put_event("b", 0, Some(1))]);
        assert_eq!(keys(&l, 1), Vec::<&[u8]>::new());
        assert_eq!(keys(&l, 2), [b"a"]);
        let mut delete = put_event("a", 0, Some(2));
        delete.event_type = EventType::Delete;
        l.apply_events(&[delete]);
        assert_eq!(keys(&l, 2), Vec::<&[u8]>::new());
    }

    #[test]
    fn lease_ids_are_positive_and_unique() {
        let a = next_lease_id(0xffff_ffff_ffff_ffff);
        let b = next_lease_id(0xffff_ffff_ffff_ffff);
        assert!(a > 0 && b > 0);
        assert_ne!(a, b);
    }
}
