//! The simulated cluster: members running `RawNode` over simulated disks, a network
//! that loses, duplicates, delays and partitions messages, and a client/admin that
//! writes, reads, compacts and changes membership. Each member handles its Ready
//! exactly as the server's raft core does (`server/src/raft_core.rs`
//! `process_ready`): write the snapshot, entries and hard state to the WAL, fsync
//! only if `must_sync`, append to the storage raft reads, send the messages, apply
//! the snapshot and committed entries (`apply_conf_change` + `set_conf_state` for a
//! conf change), match read states, advance, serve reads. A crash may strike between
//! any two of these steps and between simulation steps.

use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};

use bytes::Bytes;
use raft::{
    ConfChange, ConfChangeType, ConfState, Config, Entry, EntryType, HardState, MemStorage,
    Message, MessageType, RawNode, StateRole, Storage,
};

use super::disk::{Disk, Record};
use super::faults::{draw_partition, Blocked, Faults, ELECTION_TICKS};
use super::fuzz;
use super::invariants::read_safety::{ReadFloor, WaitingRead};
use super::invariants::{state_machine_safety, Invariants, NodeView};
use super::kv::{Kv, Put, KEYS};
use super::rng::Rng;

/// Members the admin may add over a run, on top of the initial ones.
pub const NEW_MEMBERS_MAX: u64 = 4;
/// Largest voter count the admin grows the cluster to.
const VOTERS_MAX: usize = 7;
/// Messages in flight at once; more are dropped (a bounded transport queue).
const IN_FLIGHT_MESSAGES_MAX: usize = 20_000;
/// Reads one member has outstanding at once; further requests wait.
const PENDING_READS_MAX: usize = 32;
/// A member that applied its own removal keeps running this long, so that the
/// others can learn the commit from it (etcdserver stops it with a delay too).
const REMOVED_STOP_DELAY_TICKS: u64 = 2 * ELECTION_TICKS as u64;
/// Fewest voters a removal may leave. Membership takes effect when applied (etcd),
/// so the survivors of a removal need a quorum of the OLD configuration to learn
/// its commit; from 2 voters that includes the removed member, and losing it before
/// the survivor learns the commit leaves the cluster without a leader forever.
const VOTERS_AFTER_REMOVAL_MIN: usize = 2;
/// A read not answered within this many ticks is given up (the client times out:
/// a leader may drop a forwarded read, etcd's reads time out too).
const READ_TIMEOUT_TICKS: u64 = 5 * ELECTION_TICKS as u64;
/// Calm steps without progress after which the liveness phase fails: no member of
/// the leader's configuration stored or applied anything new (or there was no leader).
pub const LIVENESS_STALL_STEPS_MAX: u64 = 40 * ELECTION_TICKS as u64;
/// Calm steps the liveness phase may take in all: a backlog built during the faults
/// drains slowly with a small inflight window and one entry per message.
pub const LIVENESS_STEPS_MAX: u64 = 20 * LIVENESS_STALL_STEPS_MAX;

/// Where a member is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Life {
    /// Id not in use yet.
    Absent,
    /// Ticking and receiving.
    Running,
    /// Neither ticking nor receiving until the step `until` (messages wait for it).
    Paused {
        /// Step at which it resumes.
        until: u64,
    },
    /// Down; only its disk is left.
    Crashed,
    /// Shut down for good after applying its own removal.
    Stopped,
}

/// One simulated member.
pub struct SimNode {
    /// Member id.
    pub id: u64,
    /// Life state.
    pub life: Life,
    raw: Option<RawNode<MemStorage>>,
    disk: Disk,
    /// Durable log while crashed (what the invariants see).
    durable: Option<MemStorage>,
    kv: Kv,
    /// Hard state last handed out by a Ready (for the `must_sync` contract).
    hard_state: HardState,
    /// Read context counter: 1, 2, 3, ... on every member and again from 1 after
    /// every restart, as the server numbers its reads (`read_ctx_seq`), so contexts
    /// collide across members and across restarts.
    read_seq: u64,
    pending_reads: BTreeMap<Bytes, ReadFloor>,
    waiting_reads: Vec<WaitingRead>,
    /// Step at which it shuts down, once it applied its own removal.
    shutdown_at: Option<u64>,
}

/// What a run exercised (summed over seeds in the test's report).
#[derive(Debug, Default, Clone)]
pub struct Stats {
    /// Crashes between steps and inside Ready handling.
    pub crashes: u64,
    /// Crashes at a crash point inside Ready handling.
    pub ready_crashes: u64,
    /// WAL records written but lost to crashes.
    pub records_lost: u64,
    /// Member starts (initial, restarts, new members).
    pub restarts: u64,
    /// Partitions cut.
    pub partitions: u64,
    /// Pauses.
    pub pauses: u64,
    /// Messages stepped.
    pub delivered: u64,
    /// Snapshots installed by followers.
    pub snapshots_installed: u64,
    /// Conf changes applied (on any member, counting each member).
    pub conf_changes_applied: u64,
    /// Fuzzed messages stepped.
    pub fuzzed: u64,
    /// Fuzzed messages `step` refused with an error.
    pub fuzz_errors: u64,
    /// Reads requested.
    pub reads_requested: u64,
    /// Reads served and checked.
    pub reads_served: u64,
    /// Writes proposed.
    pub writes_proposed: u64,
}

impl Stats {
    /// Adds `o` into `self`.
    pub fn add(&mut self, o: &Stats) {
        self.crashes += o.crashes;
        self.ready_crashes += o.ready_crashes;
        self.records_lost += o.records_lost;
        self.restarts += o.restarts;
        self.partitions += o.partitions;
        self.pauses += o.pauses;
        self.delivered += o.delivered;
        self.snapshots_installed += o.snapshots_installed;
        self.conf_changes_applied += o.conf_changes_applied;
        self.fuzzed += o.fuzzed;
        self.fuzz_errors += o.fuzz_errors;
        self.reads_requested += o.reads_requested;
        self.reads_served += o.reads_served;
        self.writes_proposed += o.writes_proposed;
    }
}

/// Deferred local reports to a sender (delivered after its Ready was handled).
enum Report {
    Snapshot { from: u64, to: u64, failed: bool },
    Unreachable { from: u64, to: u64 },
}

/// One run.
pub struct Cluster {
    /// The run's seed.
    pub seed: u64,
    rng: Rng,
    /// Fault mix.
    pub faults: Faults,
    nodes: Vec<SimNode>,
    in_flight: Vec<(u64, Message)>,
    blocked: Blocked,
    /// Name of the current partition.
    pub partition: &'static str,
    reports: Vec<Report>,
    /// Current step (= tick).
    pub now: u64,
    next_write_id: u64,
    next_new_id: u64,
    /// Invariant state.
    pub inv: Invariants,
    /// Counters.
    pub stats: Stats,
    markers: BTreeMap<u64, u64>,
    /// Print every event (`CAIRN_SIM_TRACE=1`).
    trace: bool,
    /// Deliberately broken application, for the tests that show the checks fail.
    pub sabotage: Sabotage,
}

/// Ways to break the application on purpose: each must make some seed fail.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Sabotage {
    /// The application is correct.
    #[default]
    None,
    /// Never fsync: a crash loses acknowledged entries and votes.
    SkipFsync,
    /// Serve reads at once, without waiting for the read index.
    ServeReadsEarly,
}

macro_rules! trace {
    ($c:expr, $($arg:tt)*) => {
        if $c.trace {
            eprintln!("[{:>4}] {}", $c.now, format!($($arg)*));
        }
    };
}

impl Cluster {
    /// A cluster of `size` voters bootstrapped as etcd does: every member's log holds
    /// one committed AddNode entry per initial member (term 1), so that members added
    /// later learn the initial membership from the log.
    pub fn new(seed: u64, size: u64) -> Result<Cluster, String> {
        let mut rng = Rng::new(seed ^ size.rotate_right(8));
        let mut faults = Faults::draw(&mut rng);
        if std::env::var_os("CAIRN_SIM_NO_FUZZ").is_some() {
            faults.fuzz_per_mille = 0;
        }
        let voters: Vec<u64> = (1..=size).collect();
        let bootstrap: Vec<Entry> = voters
            .iter()
            .map(|&id| Entry {
                term: 1,
                index: id,
                entry_type: EntryType::ConfChange,
                data: ConfChange {
                    change_type: ConfChangeType::AddNode,
                    node_id: id,
                    context: Bytes::new(),
                }
                .encode(),
            })
            .collect();
        let mut c = Cluster {
            seed,
            rng,
            faults,
            nodes: Vec::new(),
            in_flight: Vec::new(),
            blocked: Blocked::new(),
            partition: "none",
            reports: Vec::new(),
            now: 0,
            next_write_id: 1,
            next_new_id: size + 1,
            inv: Invariants::default(),
            stats: Stats::default(),
            markers: BTreeMap::new(),
            trace: std::env::var_os("CAIRN_SIM_TRACE").is_some(),
            sabotage: Sabotage::None,
        };
        for id in 1..=size + NEW_MEMBERS_MAX {
            let disk = if id <= size {
                let mut s = MemStorage::new_with_conf_state(ConfState {
                    voters: voters.clone(),
                    learners: vec![],
                });
                s.append(&bootstrap).expect("bootstrap log");
                s.set_hard_state(HardState {
                    term: 1,
                    vote: 0,
                    commit: size,
                });
                Disk::new(s)
            } else {
                Disk::empty()
            };
            c.nodes.push(SimNode {
                id,
                life: Life::Absent,
                raw: None,
                disk,
                durable: None,
                kv: Kv::default(),
                hard_state: HardState::default(),
                read_seq: 0,
                pending_reads: BTreeMap::new(),
                waiting_reads: Vec::new(),
                shutdown_at: None,
            });
        }
        for id in 1..=size {
            c.restart(id)?;
        }
        Ok(c)
    }

    fn node(&mut self, id: u64) -> &mut SimNode {
        &mut self.nodes[(id - 1) as usize]
    }

    fn exists(&self, id: u64) -> bool {
        id >= 1 && id <= self.nodes.len() as u64
    }

    fn config(&self, id: u64, applied: u64) -> Config {
        Config {
            id,
            election_tick: ELECTION_TICKS,
            heartbeat_tick: self.faults.heartbeat_ticks,
            max_size_per_msg: self.faults.max_size_per_msg,
            max_inflight_msgs: self.faults.max_inflight_msgs,
            pre_vote: self.faults.pre_vote,
            check_quorum: self.faults.check_quorum,
            applied,
            seed: self.seed ^ self.now.rotate_left(32),
        }
    }

    /// Starts member `id` from its disk only.
    fn restart(&mut self, id: u64) -> Result<(), String> {
        let rec = self
            .node(id)
            .disk
            .recover()
            .map_err(|e| format!("node {id} recovery: {e}"))?;
        let kv = match &rec.image {
            Some((index, data)) => {
                let kv = Kv::decode(data)
                    .ok_or_else(|| format!("node {id}: undecodable image at {index} on disk"))?;
                if kv.applied != *index {
                    return Err(format!(
                        "node {id}: image at {index} claims applied {}",
                        kv.applied
                    ));
                }
                kv
            }
            None => Kv::default(),
        };
        self.inv.log_matching.on_recover(id, &rec.storage)?;
        let hs = rec.storage.hard_state();
        let cfg = self.config(id, kv.applied);
        let raw = RawNode::new_with_limits(&cfg, &self.faults.limits, rec.storage)
            .map_err(|e| format!("node {id}: restart from its disk failed: {e}"))?;
        let n = self.node(id);
        n.raw = Some(raw);
        n.life = Life::Running;
        n.durable = None;
        n.kv = kv;
        n.hard_state = hs;
        self.stats.restarts += 1;
        trace!(
            self,
            "node {id} starts: applied {} hard state {hs:?}",
            self.nodes[(id - 1) as usize].kv.applied
        );
        Ok(())
    }

    /// Power loss on member `id`: memory and the unsynced WAL tail are gone.
    fn crash(&mut self, id: u64) -> Result<(), String> {
        let torn = self.faults.torn_tail;
        let idx = (id - 1) as usize;
        let lost = self.nodes[idx].disk.crash(&mut self.rng, torn);
        let n = &mut self.nodes[idx];
        n.raw = None;
        n.life = Life::Crashed;
        n.pending_reads.clear();
        n.waiting_reads.clear();
        n.read_seq = 0;
        let rec = n
            .disk
            .recover()
            .map_err(|e| format!("node {id} recovery after crash: {e}"))?;
        self.inv.log_matching.on_recover(id, &rec.storage)?;
        self.nodes[idx].durable = Some(rec.storage);
        self.stats.crashes += 1;
        self.stats.records_lost += lost as u64;
        trace!(self, "node {id} crashes, {lost} unsynced records lost");
        Ok(())
    }

    /// A crash point inside Ready handling: true if the member crashed.
    fn crash_point(&mut self, id: u64) -> Result<bool, String> {
        if self.rng.chance(self.faults.ready_crash_per_mille) {
            self.stats.ready_crashes += 1;
            self.crash(id)?;
            return Ok(true);
        }
        Ok(false)
    }

    fn is_up(&self, id: u64) -> bool {
        self.exists(id)
            && matches!(
                self.nodes[(id - 1) as usize].life,
                Life::Running | Life::Paused { .. }
            )
    }

    /// Handles member `id`'s Ready until it has none (server `process_ready`).
    pub fn handle_ready(&mut self, id: u64) -> Result<(), String> {
        let idx = (id - 1) as usize;
        loop {
            if !self.is_up(id) {
                return Ok(());
            }
            let n = &mut self.nodes[idx];
            let raw = n.raw.as_mut().expect("up members have a RawNode");
            if !raw.has_ready() {
                return Ok(());
            }
            let mut rd = raw.ready();
            trace!(
                self,
                "node {id} ready: ss {:?} hs {:?} entries {:?} snap {:?} committed {:?} msgs {} reads {:?} sync {}",
                rd.soft_state,
                rd.hard_state,
                rd.entries.iter().map(|e| (e.index, e.term)).collect::<Vec<_>>(),
                rd.snapshot.as_ref().map(|s| (s.metadata.index, s.metadata.term)),
                rd.committed_entries.iter().map(|e| e.index).collect::<Vec<_>>(),
                rd.messages.len(),
                rd.read_states,
                rd.must_sync
            );
            if rd
                .soft_state
                .is_some_and(|ss| ss.raft_state == StateRole::Leader)
            {
                let term = raw.status().hard_state.term;
                self.inv.election.on_leader(term, id)?;
            }
            // The must_sync contract (etcd MustSync).
            let n = &mut self.nodes[idx];
            let hs = rd.hard_state.unwrap_or(n.hard_state);
            let needs_sync = !rd.entries.is_empty()
                || rd.snapshot.is_some()
                || hs.term != n.hard_state.term
                || hs.vote != n.hard_state.vote;
            if needs_sync && !rd.must_sync {
                return Err(format!(
                    "node {id}: Ready needs an fsync but must_sync is false"
                ));
            }
            n.hard_state = hs;
            // 1. WAL: snapshot, entries, hard state; fsync only if must_sync.
            if let Some(s) = &rd.snapshot {
                n.disk.write(Record::Snapshot(s.clone()));
            }
            for e in &rd.entries {
                n.disk.write(Record::Entry(e.clone()));
            }
            if let Some(hs) = rd.hard_state {
                n.disk.write(Record::HardState(hs));
            }
            if self.crash_point(id)? {
                return Ok(());
            }
            if rd.must_sync && self.sabotage != Sabotage::SkipFsync {
                self.nodes[idx].disk.sync();
            }
            if self.crash_point(id)? {
                return Ok(());
            }
            // 2. The storage raft reads.
            let n = &mut self.nodes[idx];
            let store = n.raw.as_mut().expect("up").mut_store();
            if let Some(s) = &rd.snapshot {
                store
                    .apply_snapshot(s.clone())
                    .map_err(|e| format!("node {id}: apply_snapshot: {e}"))?;
            }
            store
                .append(&rd.entries)
                .map_err(|e| format!("node {id}: append: {e}"))?;
            if let Some(hs) = rd.hard_state {
                store.set_hard_state(hs);
            }
            self.inv.log_matching.on_append(id, &rd.entries, store)?;
            // 3. Messages. A snapshot goes out as a fresh one at the applied index with
            // the current membership (etcdserver `createMergedSnapshotMessage`): the
            // stored one may predate the receiver's addition, and a member ignores a
            // snapshot that does not name it.
            for mut m in std::mem::take(&mut rd.messages) {
                if m.msg_type == MessageType::Snapshot {
                    m.snapshot = Some(self.merged_snapshot(id)?);
                }
                self.send(m);
            }
            if self.crash_point(id)? {
                return Ok(());
            }
            // 4. Apply.
            if let Some(s) = &rd.snapshot {
                self.install_snapshot(id, s)?;
            }
            for e in &rd.committed_entries {
                self.apply(id, e)?;
            }
            let n = &mut self.nodes[idx];
            for rs in &rd.read_states {
                // Unknown contexts are answers to duplicates or to reads lost in a crash.
                if let Some(floor) = n.pending_reads.remove(&rs.request_ctx) {
                    self.inv
                        .reads
                        .on_read_state(id, &rs.request_ctx, rs.index, &floor)?;
                    n.waiting_reads.push(WaitingRead {
                        index: rs.index,
                        ctx: rs.request_ctx.clone(),
                        floor,
                    });
                }
            }
            if self.crash_point(id)? {
                return Ok(());
            }
            // 5. Advance, then serve the reads whose index is applied.
            let n = &mut self.nodes[idx];
            n.raw.as_mut().expect("up").advance(rd);
            self.serve_reads(id)?;
        }
    }

    fn merged_snapshot(&self, id: u64) -> Result<raft::Snapshot, String> {
        let n = &self.nodes[(id - 1) as usize];
        let store = n.raw.as_ref().expect("up").store();
        let index = n.kv.applied;
        let term = store
            .term(index)
            .map_err(|e| format!("node {id}: term of applied {index}: {e}"))?;
        Ok(raft::Snapshot {
            metadata: raft::SnapshotMetadata {
                index,
                term,
                conf_state: store.conf_state().clone(),
            },
            data: n.kv.encode(),
        })
    }

    fn install_snapshot(&mut self, id: u64, s: &raft::Snapshot) -> Result<(), String> {
        let kv = Kv::decode(&s.data).ok_or_else(|| {
            format!(
                "node {id} installed a snapshot at {} whose image no member made (bogus snapshot accepted)",
                s.metadata.index
            )
        })?;
        if kv.applied != s.metadata.index {
            return Err(format!(
                "node {id} installed a snapshot at {} holding an image at {}",
                s.metadata.index, kv.applied
            ));
        }
        state_machine_safety::on_snapshot(
            &mut self.inv.commits,
            id,
            s.metadata.index,
            s.metadata.term,
            &kv,
        )?;
        self.node(id).kv = kv;
        self.stats.snapshots_installed += 1;
        Ok(())
    }

    fn apply(&mut self, id: u64, e: &Entry) -> Result<(), String> {
        let idx = (id - 1) as usize;
        let n = &mut self.nodes[idx];
        if e.index != n.kv.applied + 1 {
            return Err(format!(
                "node {id} got entry {} to apply after {}",
                e.index, n.kv.applied
            ));
        }
        if e.entry_type == EntryType::ConfChange {
            let cc = ConfChange::decode(&e.data).map_err(|err| {
                format!("node {id}: undecodable conf change at {}: {err}", e.index)
            })?;
            let raw = n.raw.as_mut().expect("up");
            if let Ok(cs) = raw.apply_conf_change(&cc) {
                raw.mut_store().set_conf_state(cs);
                self.stats.conf_changes_applied += 1;
            }
            if cc.change_type == ConfChangeType::RemoveNode
                && cc.node_id == id
                && n.shutdown_at.is_none()
            {
                n.shutdown_at = Some(self.now + REMOVED_STOP_DELAY_TICKS);
            }
        }
        let n = &mut self.nodes[idx];
        n.kv.apply(e);
        if let Some(p) = Put::decode(&e.data) {
            if self.markers.contains_key(&p.write_id) {
                self.markers.insert(p.write_id, e.index);
            }
        }
        state_machine_safety::on_apply(&mut self.inv.commits, id, e, &self.nodes[idx].kv)?;
        self.inv.reads.on_apply(e);
        Ok(())
    }

    fn serve_reads(&mut self, id: u64) -> Result<(), String> {
        let idx = (id - 1) as usize;
        let applied = self.nodes[idx].kv.applied;
        let (ready, waiting): (Vec<WaitingRead>, Vec<WaitingRead>) =
            std::mem::take(&mut self.nodes[idx].waiting_reads)
                .into_iter()
                .partition(|r| r.index <= applied || self.sabotage == Sabotage::ServeReadsEarly);
        self.nodes[idx].waiting_reads = waiting;
        for r in &ready {
            self.inv.reads.on_serve(id, r, &self.nodes[idx].kv)?;
            self.stats.reads_served += 1;
        }
        Ok(())
    }

    /// Puts `m` on the wire (through the codec), with loss, duplication and delay.
    fn send(&mut self, m: Message) {
        let m = Message::decode(&m.encode()).expect("codec round trip");
        if !self.exists(m.to) || self.in_flight.len() >= IN_FLIGHT_MESSAGES_MAX {
            return;
        }
        if self.rng.chance(self.faults.loss_per_mille) {
            if m.msg_type == MessageType::Snapshot {
                self.reports.push(Report::Snapshot {
                    from: m.from,
                    to: m.to,
                    failed: true,
                });
            }
            return;
        }
        let copies = if self.rng.chance(self.faults.dup_per_mille) {
            2
        } else {
            1
        };
        for _ in 0..copies {
            let delay = if self.rng.chance(self.faults.long_delay_per_mille) {
                self.rng
                    .range(ELECTION_TICKS as u64, self.faults.long_delay_ticks_max)
            } else {
                self.rng.below(self.faults.delay_ticks_max + 1)
            };
            self.in_flight.push((self.now + delay, m.clone()));
        }
    }

    fn deliver_due(&mut self) -> Result<(), String> {
        let now = self.now;
        let mut due = Vec::new();
        self.in_flight.retain(|(at, m)| {
            if *at <= now {
                due.push(m.clone());
                false
            } else {
                true
            }
        });
        self.rng.shuffle(&mut due);
        for m in due {
            let (from, to) = (m.from, m.to);
            let is_snap = m.msg_type == MessageType::Snapshot;
            if let Life::Paused { until } = self.node(to).life {
                self.in_flight.push((until, m)); // backlog for when it resumes
                continue;
            }
            if self.blocked.contains(&(from, to)) || !self.is_up(to) {
                if is_snap {
                    self.reports.push(Report::Snapshot {
                        from,
                        to,
                        failed: true,
                    });
                } else if self.rng.chance(250) {
                    self.reports.push(Report::Unreachable { from, to });
                }
                continue;
            }
            if self.node(to).kv.removed.contains(&from) {
                // etcd's transport refuses a removed member (rafthttp answers 410
                // errMemberRemoved) and that member stops itself.
                if self.exists(from) && self.is_up(from) && self.node(from).shutdown_at.is_none() {
                    self.node(from).shutdown_at = Some(self.now + 1);
                    trace!(self, "node {to} refuses removed node {from}, which stops");
                }
                continue;
            }
            self.stats.delivered += 1;
            trace!(self, "deliver {m:?}");
            let raw = self.node(to).raw.as_mut().expect("up");
            match raw.step(m) {
                // Expected operating errors: a forwarded proposal or read the leader
                // cannot take, a response from a member removed meanwhile.
                Ok(())
                | Err(raft::Error::ProposalDropped)
                | Err(raft::Error::StepPeerNotFound)
                | Err(raft::Error::ReadIndexQueueFull { .. }) => {}
                Err(e) => return Err(format!("node {to} refused a message from {from}: {e}")),
            }
            self.handle_ready(to)?;
            if is_snap {
                self.reports.push(Report::Snapshot {
                    from,
                    to,
                    failed: false,
                });
            }
        }
        self.deliver_reports()
    }

    fn deliver_reports(&mut self) -> Result<(), String> {
        while !self.reports.is_empty() {
            for r in std::mem::take(&mut self.reports) {
                let (from, to) = match r {
                    Report::Snapshot { from, to, .. } | Report::Unreachable { from, to } => {
                        (from, to)
                    }
                };
                if !self.is_up(from) {
                    continue;
                }
                let raw = self.node(from).raw.as_mut().expect("up");
                match r {
                    Report::Snapshot { failed, .. } => raw.report_snapshot(to, failed),
                    Report::Unreachable { .. } => raw.report_unreachable(to),
                }
                self.handle_ready(from)?;
            }
        }
        Ok(())
    }

    /// The up (not paused) member that is leader with the highest term.
    fn leader(&self) -> Option<u64> {
        self.nodes
            .iter()
            .filter(|n| n.life == Life::Running)
            .filter_map(|n| {
                let st = n.raw.as_ref()?.status();
                (st.soft_state.raft_state == StateRole::Leader)
                    .then_some((st.hard_state.term, n.id))
            })
            .max()
            .map(|(_, id)| id)
    }

    fn started_ids(&self) -> Vec<u64> {
        self.nodes
            .iter()
            .filter(|n| !matches!(n.life, Life::Absent | Life::Stopped))
            .map(|n| n.id)
            .collect()
    }

    fn random_started(&mut self) -> Option<u64> {
        let ids = self.started_ids();
        (!ids.is_empty()).then(|| self.rng.pick(&ids))
    }

    /// Proposes a put on the leader (or on any member when there is none); a
    /// `marker` is remembered for the liveness check. Returns the write id if the
    /// proposal was accepted.
    fn propose_write(&mut self, marker: bool) -> Result<Option<u64>, String> {
        let target = match self.leader() {
            Some(l) => l,
            None => match self.random_started() {
                Some(id) => id,
                None => return Ok(None),
            },
        };
        if self.node(target).life != Life::Running {
            return Ok(None);
        }
        let put = Put {
            key: self.rng.below(KEYS as u64) as u8,
            write_id: self.next_write_id,
        };
        self.next_write_id += 1;
        if marker {
            self.markers.insert(put.write_id, 0);
        }
        let raw = self.node(target).raw.as_mut().expect("running");
        let ok = raw.propose(Bytes::new(), put.encode()).is_ok();
        self.handle_ready(target)?;
        self.stats.writes_proposed += 1;
        Ok(ok.then_some(put.write_id))
    }

    fn request_read(&mut self, id: u64) -> Result<(), String> {
        let now = self.now;
        let floor = self.inv.reads.floor(now);
        let n = self.node(id);
        n.pending_reads
            .retain(|_, f| f.requested_at + READ_TIMEOUT_TICKS > now);
        if n.life != Life::Running || n.pending_reads.len() >= PENDING_READS_MAX {
            return Ok(());
        }
        n.read_seq += 1;
        let ctx = Bytes::copy_from_slice(&n.read_seq.to_le_bytes());
        n.pending_reads.insert(ctx.clone(), floor);
        if n.raw
            .as_mut()
            .expect("running")
            .try_read_index(ctx.clone())
            .is_err()
        {
            // No leader known, or the leader's queue is full: the client retries.
            n.pending_reads.remove(&ctx);
        }
        trace!(self, "node {id} read {ctx:?} floor {floor:?}");
        self.stats.reads_requested += 1;
        self.handle_ready(id)
    }

    /// Checkpoints member `id`'s state machine, compacts its log and makes the
    /// checkpoint durable (server `maybe_checkpoint`).
    fn compact(&mut self, id: u64) -> Result<(), String> {
        let keep = self.rng.below(4);
        let n = self.node(id);
        if n.life != Life::Running {
            return Ok(());
        }
        let image = n.kv.encode();
        let applied = n.kv.applied;
        let store = n.raw.as_mut().expect("running").mut_store();
        let snap_index = store.snapshot(0).map_or(0, |s| s.metadata.index);
        let first = store.first_index().unwrap();
        if applied <= snap_index.max(first - 1) + 2 {
            return Ok(());
        }
        let cs = store.conf_state().clone();
        store
            .create_snapshot(applied, cs, image)
            .map_err(|e| format!("node {id}: create_snapshot at {applied}: {e}"))?;
        let compact_to = applied - keep;
        if compact_to >= first {
            store
                .compact(compact_to)
                .map_err(|e| format!("node {id}: compact {compact_to}: {e}"))?;
        }
        let snapshot = store
            .snapshot(0)
            .map_err(|e| format!("node {id}: snapshot: {e}"))?;
        n.disk.write(Record::Checkpoint {
            snapshot,
            compact_to: compact_to.max(first - 1),
        });
        n.disk.sync();
        Ok(())
    }

    /// The admin asks the leader for one membership change.
    fn change_membership(&mut self) -> Result<(), String> {
        let Some(leader) = self.leader() else {
            return Ok(());
        };
        let cs = self
            .node(leader)
            .raw
            .as_ref()
            .expect("running")
            .status()
            .conf_state;
        let new_id = (self.next_new_id <= self.nodes.len() as u64).then_some(self.next_new_id);
        let (change_type, node_id) = match self.rng.below(8) {
            0 if new_id.is_some() && cs.voters.len() < VOTERS_MAX => {
                (ConfChangeType::AddNode, new_id.unwrap())
            }
            1 if new_id.is_some() => (ConfChangeType::AddLearnerNode, new_id.unwrap()),
            2 if !cs.learners.is_empty() => (ConfChangeType::AddNode, self.rng.pick(&cs.learners)),
            3 if cs.voters.len() > VOTERS_AFTER_REMOVAL_MIN => {
                (ConfChangeType::RemoveNode, self.rng.pick(&cs.voters))
            }
            4 if cs.voters.len() > VOTERS_AFTER_REMOVAL_MIN => (ConfChangeType::RemoveNode, leader),
            5 if !cs.learners.is_empty() => {
                (ConfChangeType::RemoveNode, self.rng.pick(&cs.learners))
            }
            // Raft changes nothing; it still blocks other changes until applied.
            6 => (ConfChangeType::UpdateNode, self.rng.pick(&cs.voters)),
            // Invalid (a voter cannot become a learner): every member must refuse it
            // the same way when applying it.
            7 => (ConfChangeType::AddLearnerNode, self.rng.pick(&cs.voters)),
            _ => return Ok(()),
        };
        let cc = ConfChange {
            change_type,
            node_id,
            context: Bytes::new(),
        };
        let raw = self.node(leader).raw.as_mut().expect("running");
        let accepted = raw.propose_conf_change(Bytes::new(), cc.clone()).is_ok();
        trace!(self, "leader {leader} proposes {cc:?}: accepted {accepted}");
        self.handle_ready(leader)?;
        if accepted && Some(node_id) == new_id {
            // The new member starts empty and catches up by log or snapshot.
            self.next_new_id += 1;
            self.restart(node_id)?;
        }
        Ok(())
    }

    fn fuzz(&mut self, id: u64) -> Result<(), String> {
        if self.node(id).life != Life::Running {
            return Ok(());
        }
        let peers: Vec<u64> = (1..=self.nodes.len() as u64).filter(|p| *p != id).collect();
        let raw = self.node(id).raw.as_ref().expect("running");
        let st = raw.status();
        let target = fuzz::Target {
            id,
            term: st.hard_state.term,
            last_index: raw.store().last_index().unwrap(),
            commit: st.hard_state.commit,
            peers: if peers.is_empty() { vec![id] } else { peers },
            voter: st.conf_state.voters.contains(&id),
        };
        let real = self.in_flight.first().map(|(_, m)| m.clone());
        let bytes = fuzz::garbage(&mut self.rng, real.as_ref());
        let decoded = catch_unwind(|| Message::decode(&bytes));
        if decoded.is_err() {
            return Err(format!("Message::decode panicked on {bytes:?}"));
        }
        let m = fuzz::message(&mut self.rng, &target);
        let m = Message::decode(&m.encode()).map_err(|e| format!("codec: {e}"))?;
        self.stats.fuzzed += 1;
        let shown = format!("{m:?}");
        trace!(self, "fuzz node {id} with {shown}");
        let raw = self.node(id).raw.as_mut().expect("running");
        match catch_unwind(AssertUnwindSafe(|| raw.step(m))) {
            Ok(Ok(())) => {}
            Ok(Err(_)) => self.stats.fuzz_errors += 1,
            Err(p) => {
                return Err(format!(
                    "node {id} panicked on fuzzed message {shown}: {}",
                    panic_text(&p)
                ))
            }
        }
        let r = catch_unwind(AssertUnwindSafe(|| self.handle_ready(id)));
        match r {
            Ok(r) => r.map_err(|e| format!("{e}\n  after fuzzed message to node {id}: {shown}")),
            Err(p) => Err(format!(
                "node {id} panicked handling the Ready after fuzzed message {shown}: {}",
                panic_text(&p)
            )),
        }
    }

    fn random_events(&mut self) -> Result<(), String> {
        let f = self.faults.clone();
        let Some(id) = self.random_started() else {
            return Ok(());
        };
        let life = self.node(id).life;
        if matches!(life, Life::Running | Life::Paused { .. }) && self.rng.chance(f.crash_per_mille)
        {
            self.crash(id)?;
        } else if life == Life::Crashed && self.rng.chance(f.restart_per_mille) {
            self.restart(id)?;
        }
        if self.rng.chance(f.partition_per_mille) {
            let ids = self.started_ids();
            let (blocked, name) = draw_partition(&mut self.rng, &ids);
            self.blocked = blocked;
            self.partition = name;
            self.stats.partitions += 1;
            trace!(self, "partition {name}: {:?}", self.blocked);
        } else if !self.blocked.is_empty() && self.rng.chance(f.heal_per_mille) {
            self.blocked.clear();
            self.partition = "none";
        }
        if self.node(id).life == Life::Running && self.rng.chance(f.pause_per_mille) {
            let until = self.now + self.rng.range(1, f.pause_ticks_max);
            self.node(id).life = Life::Paused { until };
            trace!(self, "node {id} paused until {until}");
            self.stats.pauses += 1;
        }
        if self.rng.chance(f.propose_per_mille) {
            self.propose_write(false)?;
        }
        if self.rng.chance(f.read_per_mille) {
            if let Some(r) = self.random_started() {
                self.request_read(r)?;
            }
        }
        if self.rng.chance(f.transfer_per_mille) {
            if let Some(l) = self.leader() {
                let to = self.rng.range(1, self.nodes.len() as u64);
                self.node(l)
                    .raw
                    .as_mut()
                    .expect("running")
                    .transfer_leader(to);
                self.handle_ready(l)?;
            }
        }
        if self.rng.chance(f.compact_per_mille) {
            self.compact(id)?;
        }
        if self.rng.chance(f.conf_change_per_mille) {
            self.change_membership()?;
        }
        if self.rng.chance(f.fuzz_per_mille) {
            self.fuzz(id)?;
        }
        Ok(())
    }

    /// One tick of the whole cluster, then every invariant.
    pub fn step(&mut self) -> Result<(), String> {
        self.now += 1;
        for idx in 0..self.nodes.len() {
            let id = idx as u64 + 1;
            if self.nodes[idx].shutdown_at.is_some_and(|t| t <= self.now) && self.is_up(id) {
                let n = &mut self.nodes[idx];
                n.raw = None;
                n.life = Life::Stopped;
                trace!(self, "node {id} shuts down (removed)");
                continue;
            }
            match self.nodes[idx].life {
                Life::Paused { until } if until <= self.now => self.nodes[idx].life = Life::Running,
                Life::Running => {}
                _ => continue,
            }
            self.nodes[idx].raw.as_mut().expect("running").tick();
            self.handle_ready(id)?;
        }
        self.deliver_due()?;
        self.random_events()?;
        self.check()
    }

    /// Runs every invariant over the current state.
    pub fn check(&mut self) -> Result<(), String> {
        let views = Self::views(&self.nodes);
        self.inv.after_step(&views)
    }

    /// What the invariants see of every started member.
    fn views(nodes: &[SimNode]) -> Vec<NodeView<'_>> {
        nodes
            .iter()
            .filter_map(|n| {
                let (store, status, kv) = match (&n.raw, &n.durable, n.life) {
                    (Some(r), _, Life::Running | Life::Paused { .. }) => {
                        (r.store(), Some(r.status()), Some(&n.kv))
                    }
                    (_, Some(d), Life::Crashed) => (d, None, None),
                    _ => return None,
                };
                Some(NodeView {
                    id: n.id,
                    store,
                    status,
                    kv,
                    waiting_reads: &n.waiting_reads,
                })
            })
            .collect()
    }

    /// Faults stop, every crashed or paused member comes back; then the cluster must
    /// elect a leader and apply a final write on every member of its configuration.
    pub fn liveness(&mut self) -> Result<(), String> {
        self.faults.calm();
        self.blocked.clear();
        self.partition = "none";
        for idx in 0..self.nodes.len() {
            let id = idx as u64 + 1;
            match self.nodes[idx].life {
                Life::Crashed => self.restart(id)?,
                Life::Paused { .. } => self.nodes[idx].life = Life::Running,
                _ => {}
            }
        }
        let start = self.now;
        let mut last_marker = 0;
        let (mut progress, mut progress_at) = (0, self.now);
        for _ in 0..LIVENESS_STEPS_MAX {
            if self.now - progress_at >= LIVENESS_STALL_STEPS_MAX {
                break;
            }
            self.step()?;
            let Some(leader) = self.leader() else {
                continue;
            };
            let due =
                self.markers.is_empty() || self.now - last_marker >= 3 * ELECTION_TICKS as u64;
            if due && self.propose_write(true)?.is_some() {
                last_marker = self.now;
            }
            let cs = self
                .node(leader)
                .raw
                .as_ref()
                .expect("running")
                .status()
                .conf_state;
            // Progress: members applying or storing entries (a backlog drains before
            // the leader's first entry of its term commits).
            let done_work: u64 = cs
                .voters
                .iter()
                .chain(&cs.learners)
                .filter(|&&m| self.exists(m) && self.is_up(m))
                .map(|&m| {
                    let n = &self.nodes[(m - 1) as usize];
                    let last = n
                        .raw
                        .as_ref()
                        .map_or(0, |r| r.store().last_index().unwrap());
                    n.kv.applied + last
                })
                .sum();
            if done_work > progress {
                (progress, progress_at) = (done_work, self.now);
            }
            let done = self.markers.values().filter(|i| **i > 0).any(|&i| {
                cs.voters.iter().chain(&cs.learners).all(|&m| {
                    self.exists(m) && self.is_up(m) && self.nodes[(m - 1) as usize].kv.applied >= i
                })
            });
            if done {
                let views = Self::views(&self.nodes);
                return super::invariants::log_matching::check_full(&views);
            }
        }
        Err(format!(
            "liveness: no final write applied on every member: {} calm steps, the last {} without \
             progress (members applying or storing entries)\n{}",
            self.now - start,
            self.now - progress_at,
            self.describe()
        ))
    }

    /// One line per member, for failure reports.
    pub fn describe(&self) -> String {
        self.nodes
            .iter()
            .filter(|n| n.life != Life::Absent)
            .map(|n| match &n.raw {
                Some(r) => {
                    let st = r.status();
                    format!(
                        "  node {}: {:?} {:?} term {} vote {} commit {} applied {} log [{}, {}] conf {:?} progress {:?}",
                        n.id,
                        n.life,
                        st.soft_state,
                        st.hard_state.term,
                        st.hard_state.vote,
                        st.hard_state.commit,
                        n.kv.applied,
                        r.store().first_index().unwrap(),
                        r.store().last_index().unwrap(),
                        st.conf_state,
                        st.progress
                    )
                }
                None => format!("  node {}: {:?}", n.id, n.life),
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// The text of a caught panic.
pub fn panic_text(p: &Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<String>()
        .cloned()
        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default()
}
