//! Leader side of Raft: proposals, replication with flow control, commit, heartbeats,
//! ReadIndex, leader transfer (etcd-io/raft `raft.go` `stepLeader`).

use bytes::Bytes;
use tracing::debug;

use crate::errors::{Error, Result};
use crate::message::{Entry, EntryType, Message, MessageType};
use crate::progress::ProgressState;
use crate::raft::{Raft, StateRole};
use crate::read_only::{ctx_round, round_ctx, ReadState};
use crate::storage::Storage;

impl<S: Storage> Raft<S> {
    pub(crate) fn step_leader(&mut self, m: Message) -> Result<()> {
        match m.msg_type {
            MessageType::Beat => {
                self.bcast_heartbeat();
                return Ok(());
            }
            MessageType::CheckQuorum => {
                self.check_quorum_active();
                return Ok(());
            }
            MessageType::Propose => return self.handle_propose(m),
            MessageType::ReadIndex => return self.handle_read_index(m),
            _ => {}
        }
        let Some(pr) = self.prs.progress.get_mut(&m.from) else {
            return Ok(());
        };
        match m.msg_type {
            MessageType::AppendResponse => self.handle_append_response(m),
            MessageType::HeartbeatResponse => self.handle_heartbeat_response(m),
            MessageType::SnapStatus if pr.state == ProgressState::Snapshot => {
                if m.reject {
                    pr.pending_snapshot = 0;
                }
                pr.become_probe();
                // Success: wait for the follower's AppendResponse. Failure: wait for a
                // heartbeat round before probing again.
                pr.probe_sent = true;
            }
            MessageType::Unreachable if pr.state == ProgressState::Replicate => {
                pr.become_probe();
            }
            MessageType::TransferLeader => self.handle_transfer_leader(m.from),
            _ => {}
        }
        Ok(())
    }

    fn check_quorum_active(&mut self) {
        if !self.prs.quorum_active(self.id) {
            self.become_follower(self.term, 0);
        }
        let id = self.id;
        for (pid, pr) in self.prs.progress.iter_mut() {
            pr.recent_active = *pid == id;
        }
    }

    fn handle_propose(&mut self, mut m: Message) -> Result<()> {
        if m.entries.is_empty() {
            return Err(Error::MessageInvalid("proposal without entries".into()));
        }
        if !self.prs.progress.contains_key(&self.id) || self.lead_transferee.is_some() {
            return Err(Error::ProposalDropped);
        }
        let size = payload_size(&m.entries);
        if self.uncommitted_size > 0
            && size > 0
            && self.uncommitted_size.saturating_add(size) > self.max_uncommitted_size
        {
            // Nothing outstanding: accept any size, so one large proposal can pass;
            // empty entries always pass (etcd `increaseUncommittedSize`).
            debug!(
                id = self.id,
                uncommitted = self.uncommitted_size,
                size,
                "proposal dropped: max_uncommitted_entries_bytes reached"
            );
            return Err(Error::ProposalDropped);
        }
        let conf_changes = m
            .entries
            .iter()
            .filter(|e| e.entry_type == EntryType::ConfChange)
            .count();
        if conf_changes > 0 {
            // One membership change at a time: refuse while one is not yet applied.
            if conf_changes > 1 || self.pending_conf_index > self.raft_log.applied {
                return Err(Error::ProposalDropped);
            }
            let pos = m
                .entries
                .iter()
                .position(|e| e.entry_type == EntryType::ConfChange)
                .unwrap_or(0);
            self.pending_conf_index = self.raft_log.last_index() + pos as u64 + 1;
        }
        self.uncommitted_size += size;
        self.append_entry(std::mem::take(&mut m.entries));
        self.bcast_append();
        Ok(())
    }

    /// Entries handed out as committed no longer count as uncommitted (etcd
    /// `reduceUncommittedSize`; saturates, the count may underestimate).
    pub(crate) fn reduce_uncommitted_size(&mut self, committed: &[Entry]) {
        self.uncommitted_size = self
            .uncommitted_size
            .saturating_sub(payload_size(committed));
    }

    /// Appends `es` at the end of the leader's log with the current term. They count
    /// toward the commit quorum only once the application persisted them
    /// ([`Raft::on_persisted`] at advance), so that commit always means a quorum of
    /// durable copies (etcd-io/raft `appendEntry` self-ack).
    pub(crate) fn append_entry(&mut self, mut es: Vec<Entry>) {
        let last = self.raft_log.last_index();
        for (i, e) in es.iter_mut().enumerate() {
            e.term = self.term;
            e.index = last + 1 + i as u64;
        }
        self.raft_log.append(&es);
    }

    /// Commits the quorum's match index if it is from the current term (§5.4.2);
    /// true if the commit index moved.
    pub(crate) fn maybe_commit(&mut self) -> bool {
        let mci = self.prs.quorum_committed_index();
        if !self.raft_log.maybe_commit(mci, self.term) {
            return false;
        }
        self.release_pending_read_index_messages();
        true
    }

    fn committed_entry_in_current_term(&self) -> bool {
        self.raft_log
            .zero_term_on_compacted(self.raft_log.committed)
            == self.term
    }

    pub(crate) fn bcast_append(&mut self) {
        let ids: Vec<u64> = self.prs.progress.keys().copied().collect();
        let me = self.id;
        for id in ids.into_iter().filter(|id| *id != me) {
            self.send_append(id);
        }
    }

    pub(crate) fn send_append(&mut self, to: u64) {
        self.maybe_send_append(to, true);
    }

    /// Sends entries from `to`'s next index, or a snapshot if they were compacted.
    /// With `send_if_empty` false, sends nothing when there is nothing new. True if
    /// a message was sent.
    pub(crate) fn maybe_send_append(&mut self, to: u64, send_if_empty: bool) -> bool {
        let Some(pr) = self.prs.progress.get(&to) else {
            return false;
        };
        if pr.is_paused() {
            return false;
        }
        let next = pr.next_idx;
        let term = self.raft_log.term(next - 1);
        let ents = self.raft_log.entries(next, Some(self.max_msg_size));
        if !send_if_empty && ents.as_ref().is_ok_and(|e| e.is_empty()) {
            return false;
        }
        let m = match (term, ents) {
            (Ok(log_term), Ok(entries)) => {
                let pr = self.prs.progress.get_mut(&to).expect("checked above");
                if let Some(last) = entries.last().map(|e| e.index) {
                    match pr.state {
                        ProgressState::Replicate => {
                            pr.optimistic_update(last);
                            pr.ins.add(last);
                        }
                        ProgressState::Probe => pr.probe_sent = true,
                        ProgressState::Snapshot => {
                            panic!("raft: {to} is in snapshot state and cannot take entries")
                        }
                    }
                }
                Message {
                    to,
                    index: next - 1,
                    log_term,
                    entries,
                    commit: self.raft_log.committed,
                    ..Message::new(MessageType::Append)
                }
            }
            _ => {
                // The entries were compacted: send a snapshot, but only to a follower
                // we know is alive (it may be large).
                if !self.prs.progress[&to].recent_active {
                    return false;
                }
                let snap = match self.raft_log.snapshot() {
                    Ok(s) if !s.is_empty() => s,
                    _ => return false,
                };
                let pr = self.prs.progress.get_mut(&to).expect("checked above");
                pr.become_snapshot(snap.metadata.index);
                Message {
                    to,
                    snapshot: Some(snap),
                    ..Message::new(MessageType::Snapshot)
                }
            }
        };
        self.send(m);
        true
    }

    fn handle_append_response(&mut self, m: Message) {
        let from = m.from;
        let pr = self
            .prs
            .progress
            .get_mut(&from)
            .expect("checked by step_leader");
        pr.recent_active = true;
        if m.reject {
            let mut next_probe = m.reject_hint;
            if m.log_term > 0 {
                next_probe = self
                    .raft_log
                    .find_conflict_by_term(m.reject_hint, m.log_term)
                    .0;
            }
            let pr = self.prs.progress.get_mut(&from).expect("present");
            if pr.maybe_decr_to(m.index, next_probe) {
                if pr.state == ProgressState::Replicate {
                    pr.become_probe();
                }
                self.send_append(from);
            }
            return;
        }
        let old_paused = pr.is_paused();
        if !pr.maybe_update(m.index) {
            return;
        }
        match pr.state {
            ProgressState::Probe => pr.become_replicate(),
            ProgressState::Snapshot => {
                if pr.matched >= pr.pending_snapshot {
                    pr.become_probe();
                    pr.become_replicate();
                }
            }
            ProgressState::Replicate => pr.ins.free_to(m.index),
        }
        if self.maybe_commit() {
            self.bcast_append();
        } else if old_paused {
            self.send_append(from);
        }
        // The window may allow several size-limited messages at once.
        while self.maybe_send_append(from, false) {}
        let matched = self.prs.progress.get(&from).map_or(0, |p| p.matched);
        if self.lead_transferee == Some(from) && matched == self.raft_log.last_index() {
            self.send_timeout_now(from);
        }
    }

    fn handle_heartbeat_response(&mut self, m: Message) {
        let from = m.from;
        let last = self.raft_log.last_index();
        let pr = self
            .prs
            .progress
            .get_mut(&from)
            .expect("checked by step_leader");
        pr.recent_active = true;
        pr.probe_sent = false;
        if pr.state == ProgressState::Replicate && pr.ins.full() {
            pr.ins.free_first_one();
        }
        if pr.matched < last {
            self.send_append(from);
        }
        let Some(round) = ctx_round(&m.context) else {
            return;
        };
        self.read_only.recv_ack(from, round);
        // The newest round a quorum of voters acknowledged (the leader itself is
        // always at the newest round).
        let (me, last) = (self.id, self.read_only.last_round());
        let confirmed = self.prs.quorum_index_by(|id| {
            if id == me {
                last
            } else {
                self.read_only.acked(id)
            }
        });
        for rs in self.read_only.advance(confirmed) {
            self.respond_to_read_index(rs.req, rs.index);
        }
    }

    fn handle_transfer_leader(&mut self, transferee: u64) {
        let Some(pr) = self.prs.progress.get(&transferee) else {
            return;
        };
        if pr.is_learner {
            return;
        }
        let matched = pr.matched;
        if let Some(last) = self.lead_transferee {
            if last == transferee {
                return;
            }
            self.lead_transferee = None;
        }
        if transferee == self.id {
            return;
        }
        // Must finish within an election timeout (see tick_heartbeat).
        self.election_elapsed = 0;
        self.lead_transferee = Some(transferee);
        if matched == self.raft_log.last_index() {
            self.send_timeout_now(transferee);
        } else {
            self.send_append(transferee);
        }
    }

    fn send_timeout_now(&mut self, to: u64) {
        self.send(Message {
            to,
            ..Message::new(MessageType::TimeoutNow)
        });
    }

    fn handle_read_index(&mut self, m: Message) -> Result<()> {
        if m.entries.len() != 1 {
            return Err(Error::MessageInvalid(format!(
                "read index from {} with {} entries, expected 1 (the request context)",
                m.from,
                m.entries.len()
            )));
        }
        if self.prs.is_singleton() && self.prs.voters.contains(&self.id) {
            let index = self.raft_log.committed;
            self.respond_to_read_index(m, index);
            return Ok(());
        }
        let pending = self.pending_read_index_messages.len() + self.read_only.pending_count();
        if pending >= self.max_pending_read_index {
            return Err(Error::ReadIndexQueueFull {
                max_pending_read_index_requests: self.max_pending_read_index,
            });
        }
        if !self.committed_entry_in_current_term() {
            // The commit index of a new leader may be stale until it commits an
            // entry of its own term (thesis §6.4 step 1).
            self.pending_read_index_messages.push(m);
            return Ok(());
        }
        let round = self.read_only.add_request(self.raft_log.committed, m);
        self.bcast_heartbeat_with_ctx(Some(round_ctx(round)));
        Ok(())
    }

    fn release_pending_read_index_messages(&mut self) {
        if self.state != StateRole::Leader
            || self.pending_read_index_messages.is_empty()
            || !self.committed_entry_in_current_term()
        {
            return;
        }
        for m in std::mem::take(&mut self.pending_read_index_messages) {
            // Room was counted when it was queued; nothing else was added since.
            let _ = self.handle_read_index(m);
        }
    }

    fn respond_to_read_index(&mut self, req: Message, index: u64) {
        if req.from == 0 || req.from == self.id {
            self.read_states.push(ReadState {
                index,
                request_ctx: req.entries[0].data.clone(),
            });
        } else {
            // `context` echoes the requester's start tag (see `Raft::read_incarnation`).
            self.send(Message {
                to: req.from,
                index,
                entries: req.entries,
                context: req.context,
                ..Message::new(MessageType::ReadIndexResponse)
            });
        }
    }

    pub(crate) fn bcast_heartbeat(&mut self) {
        let ctx = self.read_only.pending_round().map(round_ctx);
        self.bcast_heartbeat_with_ctx(ctx);
    }

    fn bcast_heartbeat_with_ctx(&mut self, ctx: Option<Bytes>) {
        let ids: Vec<u64> = self.prs.progress.keys().copied().collect();
        let me = self.id;
        for to in ids.into_iter().filter(|id| *id != me) {
            // Never tell a follower to commit beyond what it is known to hold.
            let matched = self.prs.progress[&to].matched;
            self.send(Message {
                to,
                commit: matched.min(self.raft_log.committed),
                context: ctx.clone().unwrap_or_default(),
                ..Message::new(MessageType::Heartbeat)
            });
        }
    }
}

/// Bytes of entry data, the size etcd's uncommitted limit counts.
fn payload_size(entries: &[Entry]) -> u64 {
    entries.iter().map(|e| e.data.len() as u64).sum()
}
