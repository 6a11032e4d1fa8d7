//! The application's handle on a Raft node: inputs in, [`Ready`] out
//! (etcd-io/raft `rawnode.go`, `node.go`; tikv raft-rs `raw_node.rs`).

use std::collections::BTreeMap;

use bytes::Bytes;

use crate::config::{Config, Limits};
use crate::errors::{Error, Result};
use crate::message::{
    ConfChange, ConfState, Entry, EntryType, HardState, Message, MessageType, Snapshot,
};
use crate::progress::PeerProgress;
use crate::raft::{Raft, SoftState, StateRole};
use crate::read_only::ReadState;
use crate::storage::Storage;

/// Everything the application must do after inputs were given to the node.
///
/// # Order contract
///
/// Handle a `Ready` in exactly this order (etcd-io/raft `node.go`, raft-rs `Ready`):
///
/// 1. **Persist** `snapshot` (if any), then `entries`, then `hard_state` (if any),
///    and make them durable: fsync first when `must_sync` is true. Then add them to
///    the [`Storage`] raft reads ([`crate::MemStorage::apply_snapshot`],
///    [`crate::MemStorage::append`], [`crate::MemStorage::set_hard_state`]).
/// 2. **Send** `messages` to their `to` nodes — only after step 1 is durable
///    ("persist before send"). Messages promise state of this Ready: a vote
///    response promises the persisted term and vote (a vote forgotten in a crash can
///    be given twice in one term, electing two leaders); an AppendResponse tells the
///    leader the entries are stored, and the leader counts it toward the commit
///    quorum (a follower that loses acknowledged entries in a crash can make a
///    committed entry disappear).
/// 3. **Apply** the snapshot's data (if any) and then `committed_entries`, in order,
///    to the state machine; for a [`EntryType::ConfChange`] entry call
///    [`RawNode::apply_conf_change`]. Serve `read_states` once the applied index
///    reaches each one's index.
/// 4. **Advance**: call [`RawNode::advance`] with this `Ready`. This is how raft
///    learns that the entries are durable: a leader counts its *own* entries toward
///    the commit quorum only from this call on (etcd-io/raft's self-acknowledgement
///    after persistence, `raft.go` `appendEntry`), exactly as it counts a
///    follower's only once that follower acknowledged them after persisting. So the
///    commit index only ever covers entries with durable copies on a quorum, the
///    leader's copy included. Consequences: the commit of entries proposed on a
///    leader comes in a later Ready than the entries themselves (on a single voter:
///    the next one, so loop `while has_ready()`); and the leader's commit rule does
///    not depend on the leader's own Append messages waiting for its fsync (Raft
///    thesis §10.2.1 lets a leader write in parallel with replicating), though this
///    crate's contract still asks every message to wait for step 1.
///
/// `committed_entries` may include entries of this very Ready's `entries` (a
/// follower can learn the commit index together with the entries it covers, which
/// are durable on a quorum elsewhere), which is why step 1 comes before step 3. Call
/// `advance` before asking for the next `ready()`.
#[derive(Debug, Default)]
pub struct Ready {
    /// New leader/role, if changed since the last Ready. Not persisted.
    pub soft_state: Option<SoftState>,
    /// New term/vote/commit, if changed since the last Ready. Persist it.
    pub hard_state: Option<HardState>,
    /// Answers to [`RawNode::read_index`] (and forwarded requests): each may be served
    /// once `applied >= index`.
    pub read_states: Vec<ReadState>,
    /// Entries to append to stable storage, contiguous, possibly overwriting the
    /// stored suffix from `entries[0].index` on.
    pub entries: Vec<Entry>,
    /// A snapshot received from the leader, to persist and apply before any entry.
    pub snapshot: Option<Snapshot>,
    /// Entries committed and not yet applied, contiguous, to apply in order; at most
    /// [`crate::Limits::max_committed_entries_bytes_per_ready`] bytes (at least one
    /// entry), the rest in later Readys. Empty while a `snapshot` is pending.
    pub committed_entries: Vec<Entry>,
    /// Messages to send after persisting.
    pub messages: Vec<Message>,
    /// True when step 1 must fsync: `entries` or `snapshot` are present, or the term or
    /// vote changed (etcd `MustSync`). A commit index change alone need not sync.
    pub must_sync: bool,
}

/// A snapshot of the node's state for monitoring.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Status {
    /// This node's id.
    pub id: u64,
    /// Current term, vote and commit index.
    pub hard_state: HardState,
    /// Current leader and role.
    pub soft_state: SoftState,
    /// Applied index (as acknowledged through [`RawNode::advance`]).
    pub applied: u64,
    /// Current membership.
    pub conf_state: ConfState,
    /// Per-member replication progress; `Some` only on the leader.
    pub progress: Option<BTreeMap<u64, PeerProgress>>,
}

/// A Raft node driven by the application: feed it ticks, messages and proposals,
/// then handle its [`Ready`]. Deterministic: no I/O, clock or thread of its own.
pub struct RawNode<S: Storage> {
    raft: Raft<S>,
    prev_ss: SoftState,
    prev_hs: HardState,
}

impl<S: Storage> RawNode<S> {
    /// Builds a node from `store`'s persisted state (hard state, membership, log).
    /// It starts as a follower; a single voter becomes leader on [`RawNode::campaign`]
    /// or after its election timeout.
    ///
    /// Errors: [`Error::ConfigInvalid`] (see [`Config::validate`], or
    /// `config.applied` above the commit index), [`Error::Storage`] when the stored
    /// commit index is outside the stored log, or a storage error.
    pub fn new(config: &Config, store: S) -> Result<Self> {
        Self::new_with_limits(config, &Limits::default(), store)
    }

    /// [`RawNode::new`] with explicit resource [`Limits`].
    ///
    /// Errors: as [`RawNode::new`], and [`Error::ConfigInvalid`] for a limit out of
    /// range (see [`Limits::validate`]).
    pub fn new_with_limits(config: &Config, limits: &Limits, store: S) -> Result<Self> {
        let raft = Raft::new(config, limits, store)?;
        let prev_ss = raft.soft_state();
        let prev_hs = raft.hard_state();
        Ok(RawNode {
            raft,
            prev_ss,
            prev_hs,
        })
    }

    /// The storage raft reads.
    pub fn store(&self) -> &S {
        &self.raft.raft_log.store
    }

    /// The storage raft reads, for appending after persisting a Ready.
    pub fn mut_store(&mut self) -> &mut S {
        &mut self.raft.raft_log.store
    }

    /// Advances the logical clock by one tick (etcd: one `--heartbeat-interval`).
    /// Returns true if an election, heartbeat or quorum check was triggered.
    pub fn tick(&mut self) -> bool {
        self.raft.tick()
    }

    /// Starts an election now (pre-vote first when enabled). A single voter becomes
    /// leader at once. No effect on a leader, a learner or a non-member.
    pub fn campaign(&mut self) -> Result<()> {
        self.raft.step(Message {
            from: self.raft.id,
            ..Message::new(MessageType::Hup)
        })
    }

    /// Proposes `data` for the log. `context` is carried on the proposal message only.
    ///
    /// Errors: [`Error::ProposalDropped`] when this node is not the leader, there is
    /// no leader, a leader transfer is in progress, or the leader is no longer a
    /// member. The entry is committed when it appears in a Ready's
    /// `committed_entries`.
    pub fn propose(&mut self, context: Bytes, data: Bytes) -> Result<()> {
        self.propose_entry(context, EntryType::Normal, data)
    }

    /// Proposes a membership change (encoded with [`ConfChange::encode`]).
    ///
    /// Errors: as [`RawNode::propose`], and [`Error::ProposalDropped`] while an
    /// earlier conf change is not yet applied.
    pub fn propose_conf_change(&mut self, context: Bytes, cc: ConfChange) -> Result<()> {
        self.propose_entry(context, EntryType::ConfChange, cc.encode())
    }

    fn propose_entry(&mut self, context: Bytes, entry_type: EntryType, data: Bytes) -> Result<()> {
        self.raft.step(Message {
            from: self.raft.id,
            entries: vec![Entry {
                entry_type,
                data,
                ..Default::default()
            }],
            context,
            ..Message::new(MessageType::Propose)
        })
    }

    /// Applies a committed conf change (from a `committed_entries` entry) to the
    /// membership and returns the new membership, to be persisted with the applied
    /// index. A change with `node_id` 0 changes nothing.
    ///
    /// Errors: [`Error::ConfChangeInvalid`] for an AddLearnerNode of a voter.
    pub fn apply_conf_change(&mut self, cc: &ConfChange) -> Result<ConfState> {
        self.raft.apply_conf_change(cc)
    }

    /// Steps a message received from a peer.
    ///
    /// Errors: [`Error::StepLocalMsg`] for a local message type,
    /// [`Error::StepPeerNotFound`] for a response from a non-member,
    /// [`Error::MessageInvalid`] for a malformed message (sender 0, addressed to
    /// another node, term 0 on any kind but a forwarded Propose or ReadIndex, term
    /// `u64::MAX`, Append entries reaching index `u64::MAX` or not contiguous after
    /// `index` or with terms above the message term, a rejecting AppendResponse whose
    /// `reject_hint` is above its `index`, Snapshot without snapshot or with metadata
    /// that names no position or membership — index 0 or `u64::MAX`, term 0 or above
    /// the message term, no voters, node 0, a node listed twice or as voter and
    /// learner — or a ReadIndex without exactly one entry) or one that contradicts
    /// this node's log (an Append that would overwrite a committed entry, a Heartbeat
    /// committing beyond the last index, an AppendResponse acknowledging an index
    /// this leader does not have: signs of a lost or corrupted log);
    /// [`Error::ProposalDropped`] for a forwarded proposal that cannot be accepted;
    /// [`Error::ReadIndexQueueFull`] for a forwarded read beyond
    /// [`Limits::max_pending_read_index_requests`].
    pub fn step(&mut self, message: Message) -> Result<()> {
        if message.msg_type.is_local() {
            return Err(Error::StepLocalMsg);
        }
        if message.msg_type.is_response() && !self.raft.prs.progress.contains_key(&message.from) {
            return Err(Error::StepPeerNotFound);
        }
        if message.to != self.raft.id {
            return Err(Error::MessageInvalid(format!(
                "{:?} from {} is addressed to {}, not to this node {}",
                message.msg_type, message.from, message.to, self.raft.id
            )));
        }
        validate_peer_message(&message)?;
        self.raft.check_against_log(&message)?;
        self.raft.step(message)
    }

    /// Requests a linearizable read point identified by `request_ctx`. The answer
    /// arrives as a [`ReadState`] carrying `request_ctx` in a later Ready of this
    /// node: at once on a single voter; after a quorum acknowledged a heartbeat round
    /// sent after the request on a multi-member leader (a round confirms every
    /// earlier request too); via the leader on a follower. raft matches rounds by its
    /// own sequence numbers, so `request_ctx` only needs to identify the read to this
    /// node's application: equal contexts on different members are answered
    /// separately and correctly, and so are equal contexts before and after a
    /// restart when each start uses a different [`Config::seed`] (an answer to a read
    /// forwarded before the restart is dropped). Dropped silently when there is no
    /// leader.
    pub fn read_index(&mut self, request_ctx: Bytes) {
        let _ = self.try_read_index(request_ctx);
    }

    /// [`RawNode::read_index`], reporting a request that is dropped at once.
    ///
    /// Errors: [`Error::ReadIndexNoLeader`] when this node knows no leader;
    /// [`Error::ReadIndexQueueFull`] on a leader that already holds
    /// [`Limits::max_pending_read_index_requests`] unanswered requests. A request
    /// forwarded by a follower can still be dropped by the leader (no answer comes);
    /// the application's read times out as with etcd.
    pub fn try_read_index(&mut self, request_ctx: Bytes) -> Result<()> {
        if self.raft.state != StateRole::Leader && self.raft.leader_id == 0 {
            return Err(Error::ReadIndexNoLeader);
        }
        self.raft.step(Message {
            from: self.raft.id,
            entries: vec![Entry {
                data: request_ctx,
                ..Default::default()
            }],
            ..Message::new(MessageType::ReadIndex)
        })
    }

    /// Asks the leader to hand leadership to `transferee` (a voter). Proposals are
    /// dropped until the transfer ends (success, or an election timeout).
    pub fn transfer_leader(&mut self, transferee: u64) {
        let _ = self.raft.step(Message {
            from: transferee,
            ..Message::new(MessageType::TransferLeader)
        });
    }

    /// Tells the leader that the last message to `id` could not be delivered, so it
    /// falls back to probing.
    pub fn report_unreachable(&mut self, id: u64) {
        let _ = self.raft.step(Message {
            from: id,
            ..Message::new(MessageType::Unreachable)
        });
    }

    /// Tells the leader whether sending a snapshot to `id` failed.
    pub fn report_snapshot(&mut self, id: u64, failed: bool) {
        let _ = self.raft.step(Message {
            from: id,
            reject: failed,
            ..Message::new(MessageType::SnapStatus)
        });
    }

    /// True if [`RawNode::ready`] would return something to do.
    pub fn has_ready(&self) -> bool {
        let r = &self.raft;
        let hs = r.hard_state();
        r.soft_state() != self.prev_ss
            || (!hs.is_empty() && hs != self.prev_hs)
            || r.raft_log.unstable.snapshot.is_some()
            || !r.msgs.is_empty()
            || !r.raft_log.unstable_entries().is_empty()
            || r.raft_log.has_next_entries()
            || !r.read_states.is_empty()
    }

    /// Collects what the application must do; see [`Ready`] for the order. Messages
    /// and read states are handed out once; entries, snapshot and committed entries
    /// until [`RawNode::advance`] acknowledges them.
    ///
    /// Panics where [`RawNode::try_ready`] returns an error (the storage lost
    /// committed entries that were never applied).
    pub fn ready(&mut self) -> Ready {
        self.try_ready().unwrap_or_else(|e| panic!("raft: {e}"))
    }

    /// [`RawNode::ready`], returning an error instead of panicking when the committed
    /// entries after the applied index cannot be read.
    ///
    /// Errors: [`Error::Storage`] when entries after the applied index were compacted
    /// from the storage before the application applied them (only applied entries
    /// may be compacted): raft cannot hand out the rest without leaving a hole in
    /// the state machine. Nothing is consumed; the node cannot make progress until
    /// the storage holds those entries again (or a snapshot covering them is
    /// installed), so the server should stop.
    pub fn try_ready(&mut self) -> Result<Ready> {
        let max = self.raft.max_committed_size_per_ready;
        let committed_entries = self.raft.raft_log.next_entries(Some(max))?;
        let r = &mut self.raft;
        let ss = r.soft_state();
        let hs = r.hard_state();
        let entries = r.raft_log.unstable_entries().to_vec();
        let snapshot = r.raft_log.unstable.snapshot.clone();
        let must_sync = !entries.is_empty()
            || snapshot.is_some()
            || hs.term != self.prev_hs.term
            || hs.vote != self.prev_hs.vote;
        Ok(Ready {
            soft_state: (ss != self.prev_ss).then_some(ss),
            hard_state: (hs != self.prev_hs && !hs.is_empty()).then_some(hs),
            read_states: std::mem::take(&mut r.read_states),
            entries,
            snapshot,
            committed_entries,
            messages: std::mem::take(&mut r.msgs),
            must_sync,
        })
    }

    /// Acknowledges that `ready` was handled (persisted, sent, applied): its entries
    /// and snapshot are now stable and its committed entries applied. A leader counts
    /// the now durable entries toward the commit quorum here, so a new Ready (a
    /// higher commit index, committed entries, Appends carrying the commit) may
    /// follow at once: check [`RawNode::has_ready`] again.
    pub fn advance(&mut self, ready: Ready) {
        if let Some(ss) = ready.soft_state {
            self.prev_ss = ss;
        }
        if let Some(hs) = ready.hard_state {
            self.prev_hs = hs;
        }
        self.raft.reduce_uncommitted_size(&ready.committed_entries);
        let log = &mut self.raft.raft_log;
        if let Some(e) = ready.committed_entries.last() {
            log.applied_to(e.index);
        } else if let Some(s) = &ready.snapshot {
            log.applied_to(s.metadata.index);
        }
        if let Some(e) = ready.entries.last() {
            log.stable_to(e.index, e.term);
        }
        if let Some(s) = &ready.snapshot {
            log.stable_snap_to(s.metadata.index);
        }
        self.raft.on_persisted();
        self.raft.on_applied();
    }

    /// Current state for monitoring.
    pub fn status(&self) -> Status {
        let r = &self.raft;
        Status {
            id: r.id,
            hard_state: r.hard_state(),
            soft_state: r.soft_state(),
            applied: r.raft_log.applied,
            conf_state: r.prs.conf_state(),
            progress: (r.state == StateRole::Leader).then(|| {
                r.prs
                    .progress
                    .iter()
                    .map(|(id, p)| (*id, p.view()))
                    .collect()
            }),
        }
    }
}

/// Rejects peer messages that would break the log's invariants if stepped.
fn validate_peer_message(m: &Message) -> Result<()> {
    if m.from == 0 {
        return Err(Error::MessageInvalid(format!(
            "{:?} from node 0",
            m.msg_type
        )));
    }
    // Term 0 marks a message generated inside the node (etcd `Step`: "local
    // message"), which skips every term check; only the requests a follower forwards
    // to its leader travel without a term (etcd `send`).
    if m.term == 0 && !matches!(m.msg_type, MessageType::Propose | MessageType::ReadIndex) {
        return Err(Error::MessageInvalid(format!(
            "{:?} from {} without a term (term 0 is reserved for local messages)",
            m.msg_type, m.from
        )));
    }
    if m.term == u64::MAX {
        // Nothing could follow it: the next campaign computes `term + 1`.
        return Err(Error::MessageInvalid(format!(
            "{:?} from {} with term {}",
            m.msg_type,
            m.from,
            u64::MAX
        )));
    }
    match m.msg_type {
        MessageType::Append => {
            // The log must be able to continue after the last entry (`last + 1`).
            let n = m.entries.len() as u64;
            if m.index
                .checked_add(n)
                .filter(|last| *last < u64::MAX)
                .is_none()
            {
                return Err(Error::MessageInvalid(format!(
                    "append of {n} entries after index {} would reach index {}",
                    m.index,
                    u64::MAX
                )));
            }
            let mut prev_term = m.log_term;
            for (i, e) in m.entries.iter().enumerate() {
                let want = m.index + 1 + i as u64;
                if e.index != want {
                    return Err(Error::MessageInvalid(format!(
                        "append entry {i} has index {}, expected {want}",
                        e.index
                    )));
                }
                if e.term < prev_term || e.term > m.term {
                    return Err(Error::MessageInvalid(format!(
                        "append entry {} has term {}, outside [{prev_term}, {}]",
                        e.index, e.term, m.term
                    )));
                }
                prev_term = e.term;
            }
        }
        MessageType::AppendResponse if m.reject && m.reject_hint > m.index => {
            // A follower hints an index at or below the one it rejected (etcd
            // `handleAppendEntries`); anything larger is garbage.
            return Err(Error::MessageInvalid(format!(
                "append response from {} rejects {} with hint {} above it",
                m.from, m.index, m.reject_hint
            )));
        }
        MessageType::Snapshot => {
            let Some(s) = &m.snapshot else {
                return Err(Error::MessageInvalid(
                    "snapshot message without snapshot".into(),
                ));
            };
            s.metadata.check().map_err(Error::MessageInvalid)?;
            if s.metadata.term > m.term {
                return Err(Error::MessageInvalid(format!(
                    "snapshot term {} above the message term {}",
                    s.metadata.term, m.term
                )));
            }
        }
        _ => {}
    }
    Ok(())
}
