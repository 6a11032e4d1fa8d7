//! The Raft state machine: roles, terms, elections and the follower/candidate side
//! of replication (etcd-io/raft `raft.go`; Ongaro & Ousterhout, "In Search of an
//! Understandable Consensus Algorithm", and Ongaro's thesis for pre-vote,
//! check-quorum, leader transfer and ReadIndex). Leader-side handlers live in
//! `raft_leader.rs`.

use bytes::Bytes;
use tracing::debug;

use crate::config::{Config, Limits};
use crate::errors::{Error, Result};
use crate::message::{
    ConfChange, ConfChangeType, ConfState, EntryType, HardState, Message, MessageType, Snapshot,
};
use crate::progress::{ProgressTracker, VoteResult};
use crate::raft_log::RaftLog;
use crate::read_only::{ReadOnly, ReadState};
use crate::storage::Storage;

/// Context of vote requests sent because of a leader transfer; they bypass leader
/// stickiness (etcd `campaignTransfer`).
pub(crate) const CAMPAIGN_TRANSFER: &[u8] = b"CampaignTransfer";

/// Role of a node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum StateRole {
    /// Follows a leader (or waits for one).
    #[default]
    Follower,
    /// Asking for votes in a new term.
    Candidate,
    /// Checking with pre-votes whether it could win, before raising its term.
    PreCandidate,
    /// Leads the current term.
    Leader,
}

/// Volatile state worth telling the application about; not persisted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SoftState {
    /// Known leader of the current term, 0 if none.
    pub leader_id: u64,
    /// This node's role.
    pub raft_state: StateRole,
}

/// Kind of campaign (etcd `CampaignType`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CampaignKind {
    PreElection,
    Election,
    Transfer,
}

/// Mixed into the seed for [`Raft::read_incarnation`], so that the tag is not the
/// first value of the election-timeout generator.
const READ_INCARNATION_SALT: u64 = 0x5EAD_1DE4_C0FF_EE00;

/// SplitMix64: a small, fully specified generator, so that a seed reproduces the
/// same election timeouts on every platform and crate version.
#[derive(Clone, Debug)]
pub(crate) struct SplitMix64(u64);

impl SplitMix64 {
    pub(crate) fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// One Raft node's consensus state.
pub(crate) struct Raft<S: Storage> {
    pub(crate) id: u64,
    pub(crate) term: u64,
    pub(crate) vote: u64,
    pub(crate) raft_log: RaftLog<S>,
    pub(crate) prs: ProgressTracker,
    pub(crate) state: StateRole,
    pub(crate) leader_id: u64,
    /// Target of an ongoing leader transfer.
    pub(crate) lead_transferee: Option<u64>,
    /// Index of the last conf change proposed; a new one is refused until it is
    /// applied (single-step membership changes, Raft thesis §4.1).
    pub(crate) pending_conf_index: u64,
    pub(crate) read_only: ReadOnly,
    /// ReadIndex requests received before this leader committed an entry of its term.
    pub(crate) pending_read_index_messages: Vec<Message>,
    pub(crate) read_states: Vec<ReadState>,
    /// Tag of this start of the node, put in the `context` of the ReadIndex requests
    /// it forwards and echoed by the leader: an answer carrying another tag was asked
    /// for before a restart and must not be matched to a new request that reuses the
    /// same application context.
    pub(crate) read_incarnation: Bytes,
    pub(crate) msgs: Vec<Message>,
    pub(crate) election_elapsed: usize,
    pub(crate) heartbeat_elapsed: usize,
    pub(crate) election_timeout: usize,
    pub(crate) heartbeat_timeout: usize,
    pub(crate) randomized_election_timeout: usize,
    pub(crate) check_quorum: bool,
    pub(crate) pre_vote: bool,
    pub(crate) max_msg_size: u64,
    /// Payload bytes this leader appended that were not yet handed out as committed
    /// entries (etcd `uncommittedSize`); an underestimate after a leader change.
    pub(crate) uncommitted_size: u64,
    /// [`Limits::max_uncommitted_entries_bytes`], `u64::MAX` for unlimited.
    pub(crate) max_uncommitted_size: u64,
    pub(crate) max_committed_size_per_ready: u64,
    pub(crate) max_pending_read_index: usize,
    /// A TimeoutNow arrived while a committed conf change was not applied yet; the
    /// transfer campaign starts when it is (within the election timeout).
    pub(crate) transfer_campaign_pending: bool,
    rng: SplitMix64,
}

impl<S: Storage> Raft<S> {
    /// Builds a follower from `store`'s persisted state. Errors: config out of range,
    /// a conf state naming a node as both voter and learner, a persisted commit
    /// index outside the stored log, `applied` above the commit index, or a storage
    /// error.
    pub(crate) fn new(config: &Config, limits: &Limits, store: S) -> Result<Self> {
        config.validate()?;
        limits.validate()?;
        let rs = store.initial_state()?;
        let raft_log = RaftLog::new(store)?;
        let mut r = Raft {
            id: config.id,
            term: 0,
            vote: 0,
            raft_log,
            prs: ProgressTracker::new(config.max_inflight_msgs),
            state: StateRole::Follower,
            leader_id: 0,
            lead_transferee: None,
            pending_conf_index: 0,
            read_only: ReadOnly::default(),
            pending_read_index_messages: Vec::new(),
            read_states: Vec::new(),
            read_incarnation: Bytes::copy_from_slice(
                &SplitMix64::new(config.seed ^ config.id ^ READ_INCARNATION_SALT)
                    .next_u64()
                    .to_le_bytes(),
            ),
            msgs: Vec::new(),
            election_elapsed: 0,
            heartbeat_elapsed: 0,
            election_timeout: config.election_tick,
            heartbeat_timeout: config.heartbeat_tick,
            randomized_election_timeout: config.election_tick,
            check_quorum: config.check_quorum,
            pre_vote: config.pre_vote,
            max_msg_size: config.max_size_per_msg,
            uncommitted_size: 0,
            max_uncommitted_size: match limits.max_uncommitted_entries_bytes {
                0 => u64::MAX,
                n => n,
            },
            max_committed_size_per_ready: limits.max_committed_entries_bytes_per_ready,
            max_pending_read_index: limits.max_pending_read_index_requests,
            transfer_campaign_pending: false,
            rng: SplitMix64::new(config.seed ^ config.id.wrapping_mul(0xA24B_AED4_963E_E407)),
        };
        r.load_conf_state(&rs.conf_state)?;
        if !rs.hard_state.is_empty() {
            r.load_hard_state(rs.hard_state)?;
        }
        if config.applied > 0 {
            if config.applied > r.raft_log.committed {
                return Err(Error::ConfigInvalid(format!(
                    "applied must be in 0..={} (the commit index), got {}",
                    r.raft_log.committed, config.applied
                )));
            }
            if config.applied > r.raft_log.applied {
                r.raft_log.applied_to(config.applied);
            }
        }
        r.become_follower(r.term, 0);
        Ok(r)
    }

    fn load_conf_state(&mut self, cs: &ConfState) -> Result<()> {
        let next = self.raft_log.last_index() + 1;
        let mut prs = ProgressTracker::new(self.prs.inflight_cap);
        for &id in &cs.voters {
            prs.insert(id, next, false);
        }
        for &id in &cs.learners {
            if prs.voters.contains(&id) {
                return Err(Error::ConfigInvalid(format!(
                    "conf_state: node {id} is both voter and learner"
                )));
            }
            prs.insert(id, next, true);
        }
        self.prs = prs;
        Ok(())
    }

    fn load_hard_state(&mut self, hs: HardState) -> Result<()> {
        let log = &self.raft_log;
        if hs.commit < log.committed || hs.commit > log.last_index() {
            return Err(Error::Storage(format!(
                "hard state commit {} is out of range [{}, {}]",
                hs.commit,
                log.committed,
                log.last_index()
            )));
        }
        self.raft_log.committed = hs.commit;
        self.term = hs.term;
        self.vote = hs.vote;
        Ok(())
    }

    pub(crate) fn soft_state(&self) -> SoftState {
        SoftState {
            leader_id: self.leader_id,
            raft_state: self.state,
        }
    }

    pub(crate) fn hard_state(&self) -> HardState {
        HardState {
            term: self.term,
            vote: self.vote,
            commit: self.raft_log.committed,
        }
    }

    /// A member that may campaign: a voter without a pending snapshot.
    pub(crate) fn promotable(&self) -> bool {
        self.prs.voters.contains(&self.id) && self.raft_log.unstable.snapshot.is_none()
    }

    /// Queues `m` for the next Ready, stamping `from` (if unset) and `term`.
    pub(crate) fn send(&mut self, mut m: Message) {
        if m.from == 0 {
            m.from = self.id;
        }
        match m.msg_type {
            MessageType::RequestVote
            | MessageType::RequestVoteResponse
            | MessageType::RequestPreVote
            | MessageType::RequestPreVoteResponse => {
                assert!(m.term != 0, "raft: {:?} must carry a term", m.msg_type);
            }
            // Forwarded to the leader as local requests, without a term (etcd send()).
            MessageType::Propose | MessageType::ReadIndex => m.term = 0,
            _ => m.term = self.term,
        }
        self.msgs.push(m);
    }

    fn reset_randomized_election_timeout(&mut self) {
        let spread = self.rng.next_u64() % self.election_timeout as u64;
        self.randomized_election_timeout = self.election_timeout + spread as usize;
    }

    fn reset(&mut self, term: u64) {
        if self.term != term {
            self.term = term;
            self.vote = 0;
        }
        self.leader_id = 0;
        self.election_elapsed = 0;
        self.heartbeat_elapsed = 0;
        self.reset_randomized_election_timeout();
        self.lead_transferee = None;
        self.prs.reset_votes();
        let last = self.raft_log.last_index();
        // Only durable entries count toward the commit quorum (see on_persisted).
        let persisted = self.raft_log.persisted_index();
        let (id, cap) = (self.id, self.prs.inflight_cap);
        for (pid, pr) in self.prs.progress.iter_mut() {
            let learner = pr.is_learner;
            *pr = crate::progress::Progress::new(last + 1, cap, learner);
            if *pid == id {
                pr.matched = persisted;
            }
        }
        self.pending_conf_index = 0;
        self.uncommitted_size = 0;
        self.transfer_campaign_pending = false;
        self.read_only.reset();
        self.pending_read_index_messages.clear();
    }

    pub(crate) fn become_follower(&mut self, term: u64, leader_id: u64) {
        self.reset(term);
        self.leader_id = leader_id;
        self.state = StateRole::Follower;
        debug!(id = self.id, term, leader_id, "became follower");
    }

    pub(crate) fn become_candidate(&mut self) {
        assert!(
            self.state != StateRole::Leader,
            "raft: invalid transition [Leader -> Candidate]"
        );
        self.reset(self.term + 1);
        self.vote = self.id;
        self.state = StateRole::Candidate;
        debug!(id = self.id, term = self.term, "became candidate");
    }

    pub(crate) fn become_pre_candidate(&mut self) {
        assert!(
            self.state != StateRole::Leader,
            "raft: invalid transition [Leader -> PreCandidate]"
        );
        // Neither term nor vote changes: a pre-vote must not disturb anyone.
        self.prs.reset_votes();
        self.leader_id = 0;
        self.state = StateRole::PreCandidate;
        debug!(id = self.id, term = self.term, "became pre-candidate");
    }

    pub(crate) fn become_leader(&mut self) {
        assert!(
            self.state != StateRole::Follower,
            "raft: invalid transition [Follower -> Leader]"
        );
        self.reset(self.term);
        self.leader_id = self.id;
        self.state = StateRole::Leader;
        if let Some(pr) = self.prs.progress.get_mut(&self.id) {
            pr.become_replicate();
        }
        // Conf changes in the uncommitted tail may be pending: be conservative.
        self.pending_conf_index = self.raft_log.last_index();
        // An empty entry of the new term lets it commit earlier entries (§5.4.2).
        self.append_entry(vec![Default::default()]);
        debug!(id = self.id, term = self.term, "became leader");
    }

    /// Advances the logical clock by one tick; true if it stepped a local message
    /// (an election, heartbeats or a quorum check), i.e. a Ready is likely.
    pub(crate) fn tick(&mut self) -> bool {
        match self.state {
            StateRole::Leader => self.tick_heartbeat(),
            _ => self.tick_election(),
        }
    }

    fn local(&self, msg_type: MessageType) -> Message {
        Message {
            from: self.id,
            ..Message::new(msg_type)
        }
    }

    fn tick_election(&mut self) -> bool {
        self.election_elapsed += 1;
        if self.election_elapsed >= self.election_timeout {
            // A leader transfer is abandoned after an election timeout (as on the
            // leader's side, see tick_heartbeat).
            self.transfer_campaign_pending = false;
        }
        if self.promotable() && self.election_elapsed >= self.randomized_election_timeout {
            self.election_elapsed = 0;
            let _ = self.step(self.local(MessageType::Hup));
            return true;
        }
        false
    }

    fn tick_heartbeat(&mut self) -> bool {
        self.heartbeat_elapsed += 1;
        self.election_elapsed += 1;
        let mut acted = false;
        if self.election_elapsed >= self.election_timeout {
            self.election_elapsed = 0;
            if self.check_quorum {
                let _ = self.step(self.local(MessageType::CheckQuorum));
                acted = true;
            }
            // A transfer that did not finish within an election timeout is abandoned.
            if self.state == StateRole::Leader && self.lead_transferee.is_some() {
                self.lead_transferee = None;
            }
        }
        if self.state != StateRole::Leader {
            return acted;
        }
        if self.heartbeat_elapsed >= self.heartbeat_timeout {
            self.heartbeat_elapsed = 0;
            let _ = self.step(self.local(MessageType::Beat));
            acted = true;
        }
        acted
    }

    /// Starts an election unless leader, not a voter, or a committed conf change is
    /// not applied yet (it might remove this node).
    pub(crate) fn hup(&mut self, transfer: bool) {
        if self.state == StateRole::Leader || !self.promotable() {
            return;
        }
        let (applied, committed) = (self.raft_log.applied, self.raft_log.committed);
        if committed > applied {
            let pending = match self.raft_log.slice(applied + 1, committed + 1, None) {
                Ok(ents) => ents.iter().any(|e| e.entry_type == EntryType::ConfChange),
                Err(_) => true,
            };
            if pending {
                debug!(
                    id = self.id,
                    "cannot campaign: pending conf change not applied"
                );
                // A TimeoutNow is honoured once the change is applied (see
                // `on_applied`): the leader that sent it may have just applied its
                // own removal and stepped down.
                self.transfer_campaign_pending = transfer;
                return;
            }
        }
        let kind = if transfer {
            CampaignKind::Transfer
        } else if self.pre_vote {
            CampaignKind::PreElection
        } else {
            CampaignKind::Election
        };
        self.transfer_campaign_pending = false;
        self.campaign(kind);
    }

    pub(crate) fn campaign(&mut self, kind: CampaignKind) {
        let (vote_type, resp_type, term) = if kind == CampaignKind::PreElection {
            self.become_pre_candidate();
            let t = self.term + 1;
            (
                MessageType::RequestPreVote,
                MessageType::RequestPreVoteResponse,
                t,
            )
        } else {
            self.become_candidate();
            (
                MessageType::RequestVote,
                MessageType::RequestVoteResponse,
                self.term,
            )
        };
        if self.poll(self.id, resp_type, true) == VoteResult::Won {
            // A single voter wins at once.
            if kind == CampaignKind::PreElection {
                self.campaign(CampaignKind::Election);
            } else {
                self.become_leader();
            }
            return;
        }
        let (index, log_term) = (self.raft_log.last_index(), self.raft_log.last_term());
        let context = if kind == CampaignKind::Transfer {
            Bytes::from_static(CAMPAIGN_TRANSFER)
        } else {
            Bytes::new()
        };
        let voters: Vec<u64> = self.prs.voters.iter().copied().collect();
        let me = self.id;
        for to in voters.into_iter().filter(|v| *v != me) {
            self.send(Message {
                to,
                term,
                index,
                log_term,
                context: context.clone(),
                ..Message::new(vote_type)
            });
        }
    }

    fn poll(&mut self, id: u64, msg_type: MessageType, granted: bool) -> VoteResult {
        self.prs.record_vote(id, granted);
        let (g, r, result) = self.prs.tally_votes();
        debug!(
            id = self.id,
            from = id,
            ?msg_type,
            granted = g,
            rejected = r,
            ?result,
            "poll"
        );
        result
    }

    /// Entry point for every message (etcd `Step`): handles terms, then votes, then
    /// dispatches by role.
    pub(crate) fn step(&mut self, m: Message) -> Result<()> {
        if m.term > self.term {
            if matches!(
                m.msg_type,
                MessageType::RequestVote | MessageType::RequestPreVote
            ) {
                let force = m.context.as_ref() == CAMPAIGN_TRANSFER;
                let in_lease = self.check_quorum
                    && self.leader_id != 0
                    && self.election_elapsed < self.election_timeout;
                if !force && in_lease {
                    // Leader stickiness (thesis §4.2.3): we heard from a leader recently.
                    return Ok(());
                }
            }
            match m.msg_type {
                MessageType::RequestPreVote => {}
                MessageType::RequestPreVoteResponse if !m.reject => {}
                MessageType::Append | MessageType::Heartbeat | MessageType::Snapshot => {
                    self.become_follower(m.term, m.from)
                }
                _ => self.become_follower(m.term, 0),
            }
        } else if m.term != 0 && m.term < self.term {
            self.on_stale_term(&m);
            return Ok(());
        }
        match m.msg_type {
            MessageType::Hup => {
                self.hup(false);
                Ok(())
            }
            MessageType::RequestVote | MessageType::RequestPreVote => {
                self.on_vote_request(&m);
                Ok(())
            }
            _ => match self.state {
                StateRole::Leader => self.step_leader(m),
                StateRole::Candidate | StateRole::PreCandidate => self.step_candidate(m),
                StateRole::Follower => self.step_follower(m),
            },
        }
    }

    fn on_stale_term(&mut self, m: &Message) {
        if (self.check_quorum || self.pre_vote)
            && matches!(m.msg_type, MessageType::Heartbeat | MessageType::Append)
        {
            // Tell a deposed leader (or one cut off by a partition) about the newer
            // term; otherwise with check-quorum/pre-vote it might never learn it.
            self.send(Message {
                to: m.from,
                ..Message::new(MessageType::AppendResponse)
            });
        } else if m.msg_type == MessageType::RequestPreVote {
            self.send(Message {
                to: m.from,
                term: self.term,
                reject: true,
                ..Message::new(MessageType::RequestPreVoteResponse)
            });
        } else if m.msg_type == MessageType::RequestVote {
            // Raft §5.1 and figure 2: reply false with the current term, "for the
            // candidate to update itself". Ignoring it (as etcd does) lets a candidate
            // that can win race, term after term, a member that keeps campaigning
            // without being able to win (its configuration is stale) and never talks
            // to it: without pre-vote, neither ever learns the other is ahead.
            self.send(Message {
                to: m.from,
                term: self.term,
                reject: true,
                ..Message::new(MessageType::RequestVoteResponse)
            });
        }
    }

    fn on_vote_request(&mut self, m: &Message) {
        let pre = m.msg_type == MessageType::RequestPreVote;
        let resp_type = if pre {
            MessageType::RequestPreVoteResponse
        } else {
            MessageType::RequestVoteResponse
        };
        let can_vote = self.vote == m.from
            || (self.vote == 0 && self.leader_id == 0)
            || (pre && m.term > self.term);
        if can_vote && self.raft_log.is_up_to_date(m.index, m.log_term) {
            self.send(Message {
                to: m.from,
                term: m.term,
                ..Message::new(resp_type)
            });
            if !pre {
                self.election_elapsed = 0;
                self.vote = m.from;
            }
        } else {
            self.send(Message {
                to: m.from,
                term: self.term,
                reject: true,
                ..Message::new(resp_type)
            });
        }
    }

    fn step_candidate(&mut self, m: Message) -> Result<()> {
        let my_resp = if self.state == StateRole::PreCandidate {
            MessageType::RequestPreVoteResponse
        } else {
            MessageType::RequestVoteResponse
        };
        match m.msg_type {
            MessageType::Propose => return Err(Error::ProposalDropped),
            MessageType::Append => {
                self.become_follower(m.term, m.from);
                self.handle_append_entries(m);
            }
            MessageType::Heartbeat => {
                self.become_follower(m.term, m.from);
                self.handle_heartbeat(m);
            }
            MessageType::Snapshot => {
                self.become_follower(m.term, m.from);
                self.handle_snapshot(m);
            }
            t if t == my_resp => match self.poll(m.from, t, !m.reject) {
                VoteResult::Won => {
                    if self.state == StateRole::PreCandidate {
                        self.campaign(CampaignKind::Election);
                    } else {
                        self.become_leader();
                        self.bcast_append();
                    }
                }
                VoteResult::Lost => self.become_follower(self.term, 0),
                VoteResult::Pending => {}
            },
            _ => {}
        }
        Ok(())
    }

    fn step_follower(&mut self, mut m: Message) -> Result<()> {
        match m.msg_type {
            // Forwarded to the leader, which appends it (etcd `stepFollower` MsgProp); the
            // application learns the outcome when the entry is applied.
            MessageType::Propose if self.leader_id != 0 => {
                m.to = self.leader_id;
                self.send(m);
            }
            MessageType::Propose => return Err(Error::ProposalDropped),
            MessageType::Append => {
                self.election_elapsed = 0;
                self.leader_id = m.from;
                self.handle_append_entries(m);
            }
            MessageType::Heartbeat => {
                self.election_elapsed = 0;
                self.leader_id = m.from;
                self.handle_heartbeat(m);
            }
            MessageType::Snapshot => {
                self.election_elapsed = 0;
                self.leader_id = m.from;
                self.handle_snapshot(m);
            }
            // Forwarded to the leader; dropped while there is none.
            MessageType::TransferLeader | MessageType::ReadIndex if self.leader_id != 0 => {
                // `from` stays the member that asked (it may be another member that
                // sent its read here, etcd `stepFollower`), so the leader answers it.
                m.to = self.leader_id;
                if m.msg_type == MessageType::ReadIndex && m.from == self.id {
                    m.context = self.read_incarnation.clone();
                }
                self.send(m);
            }
            MessageType::TimeoutNow => self.hup(true),
            // An answer to a read this start of the node did not ask for (one sent
            // before a restart) is dropped: its context may have been reused.
            MessageType::ReadIndexResponse if m.context != self.read_incarnation => {}
            MessageType::ReadIndexResponse => {
                if let [e] = m.entries.as_slice() {
                    self.read_states.push(ReadState {
                        index: m.index,
                        request_ctx: e.data.clone(),
                    });
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// Refuses a current-term message that would break an invariant of this node's
    /// log if stepped (raft would otherwise panic, as etcd does).
    pub(crate) fn check_against_log(&self, m: &Message) -> Result<()> {
        if m.term < self.term {
            return Ok(());
        }
        let log = &self.raft_log;
        match m.msg_type {
            MessageType::Append if log.match_term(m.index, m.log_term) => {
                let conflict = log.find_conflict(&m.entries);
                if conflict != 0 && conflict <= log.committed {
                    return Err(Error::MessageInvalid(format!(
                        "append from {} would overwrite committed entry {conflict} (committed {})",
                        m.from, log.committed
                    )));
                }
            }
            MessageType::Heartbeat if m.commit > log.last_index() => {
                return Err(Error::MessageInvalid(format!(
                    "heartbeat from {} commits {} beyond last index {} (log lost or corrupted?)",
                    m.from,
                    m.commit,
                    log.last_index()
                )));
            }
            MessageType::AppendResponse if !m.reject && m.index > log.last_index() => {
                return Err(Error::MessageInvalid(format!(
                    "append response from {} acknowledges {} beyond last index {}",
                    m.from,
                    m.index,
                    log.last_index()
                )));
            }
            _ => {}
        }
        Ok(())
    }

    pub(crate) fn handle_append_entries(&mut self, m: Message) {
        let mut resp = Message {
            to: m.from,
            ..Message::new(MessageType::AppendResponse)
        };
        if m.index < self.raft_log.committed {
            resp.index = self.raft_log.committed;
            self.send(resp);
            return;
        }
        match self
            .raft_log
            .maybe_append(m.index, m.log_term, m.commit, &m.entries)
        {
            Some(last) => resp.index = last,
            None => {
                // Hint the largest index that might match, skipping whole terms.
                let hint = m.index.min(self.raft_log.last_index());
                let (hint, hint_term) = self.raft_log.find_conflict_by_term(hint, m.log_term);
                resp.index = m.index;
                resp.reject = true;
                resp.reject_hint = hint;
                resp.log_term = hint_term;
            }
        }
        self.send(resp);
    }

    pub(crate) fn handle_heartbeat(&mut self, m: Message) {
        self.raft_log.commit_to(m.commit);
        self.send(Message {
            to: m.from,
            context: m.context,
            ..Message::new(MessageType::HeartbeatResponse)
        });
    }

    pub(crate) fn handle_snapshot(&mut self, m: Message) {
        let Some(snap) = m.snapshot else { return };
        let index = if self.restore(snap) {
            self.raft_log.last_index()
        } else {
            self.raft_log.committed
        };
        self.send(Message {
            to: m.from,
            index,
            ..Message::new(MessageType::AppendResponse)
        });
    }

    /// Installs `snap` if it is ahead of the commit index and includes this node;
    /// false if ignored (or if it only fast-forwarded the commit index).
    pub(crate) fn restore(&mut self, snap: Snapshot) -> bool {
        let meta = &snap.metadata;
        if let Err(e) = meta.check() {
            // RawNode::step refuses such a message; keep raft safe if stepped directly.
            debug!(id = self.id, "ignored invalid snapshot: {e}");
            return false;
        }
        if meta.index <= self.raft_log.committed {
            return false;
        }
        if self.state != StateRole::Follower {
            // Only a follower may install a snapshot; be safe (etcd 3.5).
            self.become_follower(self.term + 1, 0);
            return false;
        }
        let cs = &meta.conf_state;
        if !cs.voters.contains(&self.id) && !cs.learners.contains(&self.id) {
            debug!(
                id = self.id,
                index = meta.index,
                "ignored snapshot not naming this node"
            );
            return false;
        }
        if self.raft_log.match_term(meta.index, meta.term) {
            self.raft_log.commit_to(meta.index);
            return false;
        }
        let cs = cs.clone();
        self.raft_log.restore(snap);
        self.load_conf_state(&cs)
            .expect("raft: snapshot conf state was checked before restoring");
        let last = self.raft_log.last_index();
        if let Some(pr) = self.prs.progress.get_mut(&self.id) {
            pr.maybe_update(last);
        }
        true
    }

    /// Applies a committed conf change to the membership; returns the new one.
    pub(crate) fn apply_conf_change(&mut self, cc: &ConfChange) -> Result<ConfState> {
        if cc.node_id == 0 {
            return Ok(self.prs.conf_state());
        }
        match cc.change_type {
            ConfChangeType::AddNode => self.add_node(cc.node_id, false)?,
            ConfChangeType::AddLearnerNode => self.add_node(cc.node_id, true)?,
            ConfChangeType::UpdateNode => {}
            ConfChangeType::RemoveNode => self.remove_node(cc.node_id),
        }
        Ok(self.prs.conf_state())
    }

    fn add_node(&mut self, id: u64, learner: bool) -> Result<()> {
        if let Some(pr) = self.prs.progress.get(&id) {
            if learner && !pr.is_learner {
                return Err(Error::ConfChangeInvalid(format!(
                    "node {id} is a voter and cannot become a learner"
                )));
            }
            if pr.is_learner == learner {
                return Ok(());
            }
            // learner promoted to voter: keep its progress
            self.prs.insert(id, 0, false);
            return Ok(());
        }
        let next = self.raft_log.last_index() + 1;
        self.prs.insert(id, next, learner);
        // Count a new member as active so check-quorum does not depose the leader
        // before it answers.
        if let Some(pr) = self.prs.progress.get_mut(&id) {
            pr.recent_active = true;
        }
        Ok(())
    }

    fn remove_node(&mut self, id: u64) {
        self.prs.remove(id);
        if self.state != StateRole::Leader {
            return;
        }
        if id == self.id {
            self.step_down_after_removal();
            return;
        }
        if self.prs.voters.is_empty() {
            return;
        }
        // The quorum may be smaller now.
        if self.maybe_commit() {
            self.bcast_append();
        }
        if self.lead_transferee == Some(id) {
            self.lead_transferee = None;
        }
    }
}

impl<S: Storage> Raft<S> {
    /// The application persisted entries (at [`crate::RawNode::advance`]): a leader
    /// now counts them toward the commit quorum, like a follower's acknowledgement
    /// (etcd-io/raft self-acks its appended entries after persistence through
    /// `msgsAfterAppend`). Commits and tells the followers if the commit index moved.
    pub(crate) fn on_persisted(&mut self) {
        if self.state != StateRole::Leader {
            return;
        }
        let persisted = self.raft_log.persisted_index();
        let Some(pr) = self.prs.progress.get_mut(&self.id) else {
            return;
        };
        if pr.maybe_update(persisted) && self.maybe_commit() {
            self.bcast_append();
        }
    }

    /// The application advanced the applied index: start a transfer campaign that
    /// a TimeoutNow asked for while a conf change was still unapplied.
    pub(crate) fn on_applied(&mut self) {
        if self.transfer_campaign_pending && self.state == StateRole::Follower {
            self.hup(true);
        }
    }

    /// The leader applied its own removal: the configuration that excludes it is
    /// committed, so it hands leadership to the remaining voter with the largest
    /// match index (the lowest id among equals) with TimeoutNow, as a leader transfer
    /// does, and becomes a follower that can no longer campaign (Raft thesis §4.2.2;
    /// etcd 3.5 `StepDownOnRemoval`, with the hand-over its TODO asks for). Without
    /// this it stayed leader of a configuration it was not part of, and its
    /// followers stayed in its lease.
    fn step_down_after_removal(&mut self) {
        let best = self
            .prs
            .voters
            .iter()
            .filter_map(|id| Some((self.prs.progress.get(id)?.matched, *id)))
            .max_by_key(|(matched, id)| (*matched, std::cmp::Reverse(*id)));
        if let Some((matched, to)) = best {
            if matched < self.raft_log.last_index() {
                // Send what it misses first (one message's worth), so that it can
                // win the election TimeoutNow starts.
                self.send_append(to);
            }
            self.send(Message {
                to,
                ..Message::new(MessageType::TimeoutNow)
            });
        }
        debug!(
            id = self.id,
            term = self.term,
            transferee = ?best.map(|b| b.1),
            "removed from the configuration: stepping down"
        );
        self.become_follower(self.term, 0);
    }
}

#[cfg(test)]
mod rng_tests {
    use super::SplitMix64;

    #[test]
    fn splitmix64_reference_values() {
        // Published SplitMix64 outputs for seed 0 (Vigna, prng.di.unimi.it).
        let mut r = SplitMix64::new(0);
        assert_eq!(r.next_u64(), 0xE220_A839_7B1D_CDAF);
        assert_eq!(r.next_u64(), 0x6E78_9E6A_A1B9_65F4);
    }
}
