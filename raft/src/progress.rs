//! The leader's view of each follower, flow control and quorum arithmetic
//! (etcd-io/raft `tracker/progress.go`, `tracker/inflights.go`, `quorum/majority.go`).

use std::collections::{BTreeMap, BTreeSet};

use crate::message::ConfState;

/// How the leader replicates to one follower (etcd `tracker/state.go`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ProgressState {
    /// Send one Append per heartbeat interval until the follower's match index is
    /// found.
    #[default]
    Probe,
    /// Stream Appends optimistically, bounded by the inflight window.
    Replicate,
    /// A snapshot is in flight; send nothing else until it is reported.
    Snapshot,
}

/// Read-only copy of one member's progress, as shown by [`crate::RawNode::status`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeerProgress {
    /// Highest index known replicated on the member.
    pub matched: u64,
    /// Next index the leader will send.
    pub next_index: u64,
    /// Replication state.
    pub state: ProgressState,
    /// Heard from since the last check-quorum round.
    pub recent_active: bool,
    /// True for a learner.
    pub is_learner: bool,
}

/// Ring of the last indexes of Append messages in flight (etcd `Inflights`).
#[derive(Clone, Debug)]
pub(crate) struct Inflights {
    start: usize,
    count: usize,
    buffer: Vec<u64>,
}

impl Inflights {
    pub(crate) fn new(cap: usize) -> Self {
        assert!(cap > 0);
        Inflights {
            start: 0,
            count: 0,
            buffer: vec![0; cap],
        }
    }

    pub(crate) fn full(&self) -> bool {
        self.count == self.buffer.len()
    }

    #[cfg(test)]
    pub(crate) fn count(&self) -> usize {
        self.count
    }

    pub(crate) fn add(&mut self, last_index: u64) {
        assert!(!self.full(), "inflights: add to a full window");
        let i = (self.start + self.count) % self.buffer.len();
        self.buffer[i] = last_index;
        self.count += 1;
    }

    /// Frees every inflight message whose last index is ≤ `to`.
    pub(crate) fn free_to(&mut self, to: u64) {
        while self.count > 0 && self.buffer[self.start] <= to {
            self.start = (self.start + 1) % self.buffer.len();
            self.count -= 1;
        }
    }

    pub(crate) fn free_first_one(&mut self) {
        if self.count > 0 {
            self.start = (self.start + 1) % self.buffer.len();
            self.count -= 1;
        }
    }

    pub(crate) fn reset(&mut self) {
        self.start = 0;
        self.count = 0;
    }
}

/// Replication progress of one member, kept by the leader.
#[derive(Clone, Debug)]
pub(crate) struct Progress {
    pub(crate) matched: u64,
    pub(crate) next_idx: u64,
    pub(crate) state: ProgressState,
    /// In Probe: an Append was sent and no answer (or heartbeat response) came yet.
    pub(crate) probe_sent: bool,
    /// In Snapshot: index of the snapshot being sent.
    pub(crate) pending_snapshot: u64,
    pub(crate) recent_active: bool,
    pub(crate) ins: Inflights,
    pub(crate) is_learner: bool,
}

impl Progress {
    pub(crate) fn new(next_idx: u64, inflight_cap: usize, is_learner: bool) -> Self {
        Progress {
            matched: 0,
            next_idx,
            state: ProgressState::Probe,
            probe_sent: false,
            pending_snapshot: 0,
            recent_active: false,
            ins: Inflights::new(inflight_cap),
            is_learner,
        }
    }

    fn reset_state(&mut self, state: ProgressState) {
        self.probe_sent = false;
        self.pending_snapshot = 0;
        self.state = state;
        self.ins.reset();
    }

    pub(crate) fn become_probe(&mut self) {
        // After a snapshot, resume from the snapshot index if it is ahead.
        if self.state == ProgressState::Snapshot {
            let pending = self.pending_snapshot;
            self.reset_state(ProgressState::Probe);
            self.next_idx = (self.matched + 1).max(pending + 1);
        } else {
            self.reset_state(ProgressState::Probe);
            self.next_idx = self.matched + 1;
        }
    }

    pub(crate) fn become_replicate(&mut self) {
        self.reset_state(ProgressState::Replicate);
        self.next_idx = self.matched + 1;
    }

    pub(crate) fn become_snapshot(&mut self, snapshot_index: u64) {
        self.reset_state(ProgressState::Snapshot);
        self.pending_snapshot = snapshot_index;
    }

    /// An accepting AppendResponse for `n`; false if it is stale.
    pub(crate) fn maybe_update(&mut self, n: u64) -> bool {
        let updated = self.matched < n;
        if updated {
            self.matched = n;
            self.probe_sent = false;
        }
        self.next_idx = self.next_idx.max(n + 1);
        updated
    }

    pub(crate) fn optimistic_update(&mut self, n: u64) {
        self.next_idx = n + 1;
    }

    /// A rejecting AppendResponse for `rejected` with the follower's hint; false if
    /// it is stale.
    pub(crate) fn maybe_decr_to(&mut self, rejected: u64, match_hint: u64) -> bool {
        if self.state == ProgressState::Replicate {
            // Stale if it rejects an index we already know matches.
            if rejected <= self.matched {
                return false;
            }
            self.next_idx = self.matched + 1;
            return true;
        }
        // Probe: only the rejection of the last probe counts.
        if self.next_idx == 0 || self.next_idx - 1 != rejected {
            return false;
        }
        self.next_idx = rejected
            .min(match_hint.saturating_add(1))
            .max(self.matched + 1)
            .max(1);
        self.probe_sent = false;
        true
    }

    pub(crate) fn is_paused(&self) -> bool {
        match self.state {
            ProgressState::Probe => self.probe_sent,
            ProgressState::Replicate => self.ins.full(),
            ProgressState::Snapshot => true,
        }
    }

    pub(crate) fn view(&self) -> PeerProgress {
        PeerProgress {
            matched: self.matched,
            next_index: self.next_idx,
            state: self.state,
            recent_active: self.recent_active,
            is_learner: self.is_learner,
        }
    }
}

/// Outcome of counting votes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum VoteResult {
    Pending,
    Lost,
    Won,
}

/// Membership, per-member progress and the votes of the current election.
#[derive(Clone, Debug)]
pub(crate) struct ProgressTracker {
    pub(crate) voters: BTreeSet<u64>,
    pub(crate) learners: BTreeSet<u64>,
    pub(crate) progress: BTreeMap<u64, Progress>,
    pub(crate) votes: BTreeMap<u64, bool>,
    pub(crate) inflight_cap: usize,
}

impl ProgressTracker {
    pub(crate) fn new(inflight_cap: usize) -> Self {
        ProgressTracker {
            voters: BTreeSet::new(),
            learners: BTreeSet::new(),
            progress: BTreeMap::new(),
            votes: BTreeMap::new(),
            inflight_cap,
        }
    }

    pub(crate) fn conf_state(&self) -> ConfState {
        ConfState {
            voters: self.voters.iter().copied().collect(),
            learners: self.learners.iter().copied().collect(),
        }
    }

    /// One voter: it alone is the quorum (learners do not count).
    pub(crate) fn is_singleton(&self) -> bool {
        self.voters.len() == 1
    }

    fn quorum(&self) -> usize {
        self.voters.len() / 2 + 1
    }

    /// Largest index replicated on a majority of voters (etcd `CommittedIndex`).
    /// `u64::MAX` for an empty voter set, so that nothing blocks on it.
    pub(crate) fn quorum_committed_index(&self) -> u64 {
        if self.voters.is_empty() {
            return u64::MAX;
        }
        self.quorum_index_by(|id| self.progress.get(&id).map_or(0, |p| p.matched))
    }

    /// The largest value that a majority of voters has reached, given each voter's
    /// value (etcd `quorum/majority.go` `CommittedIndex` over any index). 0 for an
    /// empty voter set.
    pub(crate) fn quorum_index_by(&self, value: impl Fn(u64) -> u64) -> u64 {
        if self.voters.is_empty() {
            return 0;
        }
        let mut values: Vec<u64> = self.voters.iter().map(|id| value(*id)).collect();
        values.sort_unstable_by(|a, b| b.cmp(a));
        values[self.quorum() - 1]
    }

    pub(crate) fn has_quorum(&self, ids: &BTreeSet<u64>) -> bool {
        self.voters.iter().filter(|id| ids.contains(id)).count() >= self.quorum()
    }

    /// True if a quorum of voters (counting `self_id`) was recently active.
    pub(crate) fn quorum_active(&self, self_id: u64) -> bool {
        let active: BTreeSet<u64> = self
            .progress
            .iter()
            .filter(|(id, p)| **id == self_id || p.recent_active)
            .map(|(id, _)| *id)
            .collect();
        self.has_quorum(&active)
    }

    pub(crate) fn reset_votes(&mut self) {
        self.votes.clear();
    }

    /// Records `id`'s vote; the first answer of each member counts.
    pub(crate) fn record_vote(&mut self, id: u64, granted: bool) {
        self.votes.entry(id).or_insert(granted);
    }

    /// (granted, rejected, result) over voters.
    pub(crate) fn tally_votes(&self) -> (usize, usize, VoteResult) {
        let granted = self
            .voters
            .iter()
            .filter(|id| self.votes.get(id) == Some(&true))
            .count();
        let rejected = self
            .voters
            .iter()
            .filter(|id| self.votes.get(id) == Some(&false))
            .count();
        let result = if granted >= self.quorum() {
            VoteResult::Won
        } else if self.voters.len() - rejected < self.quorum() {
            VoteResult::Lost
        } else {
            VoteResult::Pending
        };
        (granted, rejected, result)
    }

    /// Adds `id` as voter (promoting a learner) or learner, with fresh progress.
    pub(crate) fn insert(&mut self, id: u64, next_idx: u64, is_learner: bool) {
        if is_learner {
            self.voters.remove(&id);
            self.learners.insert(id);
        } else {
            self.learners.remove(&id);
            self.voters.insert(id);
        }
        let cap = self.inflight_cap;
        let p = self
            .progress
            .entry(id)
            .or_insert_with(|| Progress::new(next_idx, cap, is_learner));
        p.is_learner = is_learner;
    }

    pub(crate) fn remove(&mut self, id: u64) {
        self.voters.remove(&id);
        self.learners.remove(&id);
        self.progress.remove(&id);
        self.votes.remove(&id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inflights_window() {
        let mut ins = Inflights::new(3);
        ins.add(5);
        ins.add(7);
        ins.add(9);
        assert!(ins.full());
        ins.free_to(6);
        assert_eq!(ins.count(), 2);
        ins.add(11);
        ins.free_to(9);
        assert_eq!(ins.count(), 1);
        ins.free_first_one();
        assert_eq!(ins.count(), 0);
    }

    #[test]
    fn probe_decrement_uses_hint_and_ignores_stale() {
        let mut p = Progress::new(10, 4, false);
        assert!(!p.maybe_decr_to(5, 5), "stale: last probe was at 9");
        assert!(p.maybe_decr_to(9, 3));
        assert_eq!(p.next_idx, 4);
        p.matched = 3;
        p.become_replicate();
        assert_eq!(p.next_idx, 4);
        p.optimistic_update(8);
        assert!(!p.maybe_decr_to(2, 2), "stale: below match");
        assert!(p.maybe_decr_to(6, 6));
        assert_eq!(p.next_idx, 4);
    }

    #[test]
    fn quorum_index_and_votes() {
        let mut t = ProgressTracker::new(4);
        for id in 1..=5 {
            t.insert(id, 1, false);
        }
        for (id, m) in [(1, 5), (2, 3), (3, 9), (4, 1), (5, 4)] {
            t.progress.get_mut(&id).unwrap().matched = m;
        }
        assert_eq!(t.quorum_committed_index(), 4);
        t.insert(6, 1, true);
        assert_eq!(t.quorum_committed_index(), 4);
        t.record_vote(1, true);
        t.record_vote(2, false);
        t.record_vote(6, true);
        assert_eq!(t.tally_votes(), (1, 1, VoteResult::Pending));
        t.record_vote(3, true);
        t.record_vote(3, false);
        assert_eq!(t.tally_votes(), (2, 1, VoteResult::Pending));
        t.record_vote(4, false);
        t.record_vote(5, false);
        assert_eq!(t.tally_votes(), (2, 3, VoteResult::Lost));
        t.reset_votes();
        for id in [1, 2, 3] {
            t.record_vote(id, true);
        }
        assert_eq!(t.tally_votes(), (3, 0, VoteResult::Won));
    }
}
