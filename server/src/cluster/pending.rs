//! Requests the raft core holds until Raft answers them: proposals waiting for their entry
//! to be applied, and linearizable reads waiting for a read index and then for the applied
//! index to reach it. Each is answered exactly once: with its result, or with etcd's
//! error when the request timeout passes (`etcdserver: request timed out`, etcd's
//! `ReqTimeout()` = 5 s + 2 × election timeout), when the leader changes under a read
//! (`etcdserver: leader changed`, etcd 3.5 `linearizableReadLoop`), or at shutdown.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use futures::channel::oneshot;
use net::pb::etcdserverpb::InternalRaftRequest;
use net::Status;

use super::driver::Applied;
use super::membership::MemberInfo;
use super::reconfig::MemberChangeResult;
use super::replies::{Delivery, Outbox, ProposalReply, ReadWaiter};
use crate::errors;
/// Where a membership change's result goes.
pub type MemberChangeReply = oneshot::Sender<Result<MemberChangeResult, Status>>;
/// Where a leader transfer's result goes.
pub type MoveLeaderReply = oneshot::Sender<Result<(), Status>>;

/// A proposed ConfChange waiting for its apply.
struct PendingConfChange {
    data: Bytes,
    deadline: Instant,
    added: Option<MemberInfo>,
    reply: MemberChangeReply,
}

/// Bytes of a read request context: `boot_id u64 LE | round u64 LE`.
pub const READ_CONTEXT_BYTES: usize = 16;

/// etcd's request timeout: 5 s plus two election timeouts (`ServerConfig.ReqTimeout`).
pub fn request_timeout(election_timeout: Duration) -> Duration {
    Duration::from_secs(5) + 2 * election_timeout
}

/// The waiting requests of one raft core.
pub struct Pending {
    proposals: HashMap<u64, (InternalRaftRequest, ProposalReply)>,
    /// Proposal IDs in arrival order with their deadlines (one timeout for all, so the
    /// front always expires first).
    proposal_deadlines: VecDeque<(Instant, u64)>,
    queued_reads: Vec<ReadWaiter>,
    /// Read rounds sent to Raft, by round number, with their deadline.
    reads_by_round: HashMap<u64, (Instant, Vec<ReadWaiter>)>,
    /// Read rounds that have a read index, waiting for apply.
    reads_by_index: Vec<(u64, Instant, Vec<ReadWaiter>)>,
    conf_changes: Vec<PendingConfChange>,
    /// Leader transfers waiting for their transferee to lead, with their deadline.
    transfers: Vec<(u64, Instant, MoveLeaderReply)>,
    round: u64,
    boot_id: u64,
    timeout: Duration,
    /// Answers to proposals and reads, sent to their cores by [`Pending::flush_replies`].
    outbox: Outbox,
}

impl Pending {
    /// `boot_id` distinguishes this process's read contexts from an earlier run's (a
    /// delayed answer to an earlier incarnation must never release a read of this one).
    /// Proposal and read answers go through `outbox` (see [`super::replies`]).
    pub fn new(boot_id: u64, timeout: Duration, outbox: Outbox) -> Pending {
        Pending {
            proposals: HashMap::new(),
            proposal_deadlines: VecDeque::new(),
            queued_reads: Vec::new(),
            reads_by_round: HashMap::new(),
            reads_by_index: Vec::new(),
            conf_changes: Vec::new(),
            transfers: Vec::new(),
            round: 0,
            boot_id,
            timeout,
            outbox,
        }
    }

    /// Answers a proposal (sent with the others at [`Pending::flush_replies`]).
    pub fn answer(&mut self, reply: ProposalReply, result: Result<Applied, Status>) {
        self.outbox.push(Delivery::Applied(reply, result));
    }

    /// Sends the answers collected since the last call, one message per core.
    pub fn flush_replies(&mut self) {
        self.outbox.flush();
    }

    /// Holds a proposal until its entry is applied or it times out.
    pub fn add_proposal(
        &mut self,
        id: u64,
        request: InternalRaftRequest,
        reply: ProposalReply,
        now: Instant,
    ) {
        self.proposals.insert(id, (request, reply));
        self.proposal_deadlines.push_back((now + self.timeout, id));
    }

    /// Proposals of this member waiting for their entry to apply.
    pub fn proposals_waiting(&self) -> usize {
        self.proposals.len()
    }

    /// The proposal `id` of this member, if it is still waiting.
    pub fn take_proposal(&mut self, id: u64) -> Option<(InternalRaftRequest, ProposalReply)> {
        self.proposals.remove(&id)
    }

    /// Holds a proposed ConfChange (its entry data) until it is applied or times out.
    pub fn add_conf_change(
        &mut self,
        data: Bytes,
        added: Option<MemberInfo>,
        reply: MemberChangeReply,
        now: Instant,
    ) {
        self.conf_changes.push(PendingConfChange {
            data,
            deadline: now + self.timeout,
            added,
            reply,
        });
    }

    /// The waiter of the ConfChange entry `data`, if this member proposed it.
    pub fn take_conf_change(
        &mut self,
        data: &[u8],
    ) -> Option<(Option<MemberInfo>, MemberChangeReply)> {
        let at = self.conf_changes.iter().position(|c| c.data == data)?;
        let c = self.conf_changes.swap_remove(at);
        Some((c.added, c.reply))
    }

    /// Holds a leader transfer to `transferee` until it leads or times out.
    pub fn add_transfer(&mut self, transferee: u64, reply: MoveLeaderReply, now: Instant) {
        self.transfers.push((transferee, now + self.timeout, reply));
    }

    /// `leader` leads now: answers the transfers to it.
    pub fn on_leader(&mut self, leader: u64) {
        let (done, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut self.transfers)
            .into_iter()
            .partition(|(to, _, _)| *to == leader);
        self.transfers = waiting;
        for (_, _, reply) in done {
            let _ = reply.send(Ok(()));
        }
    }

    /// Queues a read for the next read round.
    pub fn queue_read(&mut self, waiter: ReadWaiter) {
        self.queued_reads.push(waiter);
    }

    /// Starts a read round for every queued read; returns the context to hand to
    /// `RawNode::read_index`, or None if no read is queued.
    pub fn start_read_round(&mut self, now: Instant) -> Option<Bytes> {
        if self.queued_reads.is_empty() {
            return None;
        }
        self.round += 1;
        let waiters = std::mem::take(&mut self.queued_reads);
        self.reads_by_round
            .insert(self.round, (now + self.timeout, waiters));
        let mut ctx = BytesMut::with_capacity(READ_CONTEXT_BYTES);
        ctx.put_u64_le(self.boot_id);
        ctx.put_u64_le(self.round);
        Some(ctx.freeze())
    }

    /// Raft refused the read round `ctx` (no leader, too many pending): its reads fail
    /// with `status` at once.
    pub fn fail_round(&mut self, ctx: &[u8], status: &Status) {
        let Some(round) = self.round_of(ctx) else {
            return;
        };
        if let Some((_, waiters)) = self.reads_by_round.remove(&round) {
            for w in waiters {
                self.outbox.push(Delivery::Read(w, Err(status.clone())));
            }
        }
    }

    /// The round of a context of this run.
    fn round_of(&self, ctx: &[u8]) -> Option<u64> {
        let ctx = <[u8; READ_CONTEXT_BYTES]>::try_from(ctx).ok()?;
        let boot_id = u64::from_le_bytes(ctx[..8].try_into().expect("8 bytes"));
        (boot_id == self.boot_id).then(|| u64::from_le_bytes(ctx[8..].try_into().expect("8 bytes")))
    }

    /// Raft answered a read round with `index`; contexts not of this run are ignored.
    pub fn on_read_state(&mut self, ctx: &[u8], index: u64) {
        let Some(round) = self.round_of(ctx) else {
            return;
        };
        if let Some((deadline, waiters)) = self.reads_by_round.remove(&round) {
            self.reads_by_index.push((index, deadline, waiters));
        }
    }

    /// Answers every read whose read index is at or below `applied`.
    pub fn release_reads(&mut self, applied: u64) {
        self.reads_by_index.retain_mut(|(index, _, waiters)| {
            if *index > applied {
                return true;
            }
            for w in waiters.drain(..) {
                self.outbox.push(Delivery::Read(w, Ok(())));
            }
            false
        });
    }

    /// The leader changed: reads whose round has no read index yet fail with etcd's
    /// `leader changed` (their confirmation may never come).
    pub fn on_leader_change(&mut self) {
        for (_, (_, waiters)) in self.reads_by_round.drain() {
            for w in waiters {
                self.outbox
                    .push(Delivery::Read(w, Err(errors::leader_changed())));
            }
        }
    }

    /// Answers every request whose deadline passed with etcd's timeout error
    /// (`leader_failed`: the leader changed since, as etcd's `ErrTimeoutDueToLeaderFail`).
    pub fn expire(&mut self, now: Instant, leader_failed: bool) {
        let status = || {
            if leader_failed {
                errors::timeout_due_to_leader_fail()
            } else {
                errors::timeout()
            }
        };
        while let Some(&(deadline, id)) = self.proposal_deadlines.front() {
            if deadline > now {
                break;
            }
            self.proposal_deadlines.pop_front();
            if let Some((_, reply)) = self.proposals.remove(&id) {
                crate::metrics::get().proposals_failed_total.inc();
                self.outbox.push(Delivery::Applied(reply, Err(status())));
            }
        }
        self.reads_by_round.retain(|_, (deadline, waiters)| {
            if *deadline > now {
                return true;
            }
            for w in waiters.drain(..) {
                self.outbox.push(Delivery::Read(w, Err(errors::timeout())));
            }
            false
        });
        self.reads_by_index.retain_mut(|(_, deadline, waiters)| {
            if *deadline > now {
                return true;
            }
            for w in waiters.drain(..) {
                self.outbox.push(Delivery::Read(w, Err(errors::timeout())));
            }
            false
        });
        let (expired, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut self.conf_changes)
            .into_iter()
            .partition(|c| c.deadline <= now);
        self.conf_changes = waiting;
        for c in expired {
            let _ = c.reply.send(Err(status()));
        }
        let (expired, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut self.transfers)
            .into_iter()
            .partition(|(_, deadline, _)| *deadline <= now);
        self.transfers = waiting;
        for (_, _, reply) in expired {
            let _ = reply.send(Err(errors::timeout_leader_transfer()));
        }
        // Deadlines of proposals answered meanwhile are dropped lazily above; keep the
        // queue from growing past the proposals it tracks.
        if self.proposal_deadlines.len() > 2 * self.proposals.len() + 1024 {
            let proposals = &self.proposals;
            self.proposal_deadlines
                .retain(|(_, id)| proposals.contains_key(id));
        }
    }

    /// Answers everything still waiting with `status` (shutdown).
    pub fn fail_all(&mut self, status: &Status) {
        for (_, (_, reply)) in self.proposals.drain() {
            self.outbox
                .push(Delivery::Applied(reply, Err(status.clone())));
        }
        self.proposal_deadlines.clear();
        for c in self.conf_changes.drain(..) {
            let _ = c.reply.send(Err(status.clone()));
        }
        for (_, _, reply) in self.transfers.drain(..) {
            let _ = reply.send(Err(status.clone()));
        }
        let rounds = self.reads_by_round.drain().map(|(_, (_, w))| w);
        let indexed = self.reads_by_index.drain(..).map(|(_, _, w)| w);
        let queued = std::iter::once(std::mem::take(&mut self.queued_reads));
        for waiters in rounds.chain(indexed).chain(queued).collect::<Vec<_>>() {
            for w in waiters {
                self.outbox.push(Delivery::Read(w, Err(status.clone())));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(p: &mut Pending) -> oneshot::Receiver<Result<(), Status>> {
        let (tx, rx) = ReadWaiter::new(0);
        p.queue_read(tx);
        rx
    }

    #[test]
    fn read_released_only_at_its_index() {
        let now = Instant::now();
        let mut p = Pending::new(7, Duration::from_secs(1), Outbox::default());
        let mut rx = read(&mut p);
        let ctx = p.start_read_round(now).unwrap();
        p.on_read_state(&ctx, 10);
        p.release_reads(9);
        assert_eq!(rx.try_recv().unwrap(), None);
        p.release_reads(10);
        assert_eq!(rx.try_recv().unwrap(), Some(Ok(())));
    }

    #[test]
    fn context_of_another_run_is_ignored() {
        let now = Instant::now();
        let mut p = Pending::new(7, Duration::from_secs(1), Outbox::default());
        let mut rx = read(&mut p);
        let ctx = p.start_read_round(now).unwrap();
        let mut other = Pending::new(8, Duration::from_secs(1), Outbox::default());
        let _other_rx = read(&mut other);
        let other_ctx = other.start_read_round(now).unwrap();
        assert_ne!(ctx, other_ctx);
        p.on_read_state(&other_ctx, 1);
        p.release_reads(100);
        assert_eq!(
            rx.try_recv().unwrap(),
            None,
            "a foreign context released a read"
        );
        p.on_read_state(&ctx, 1);
        p.release_reads(100);
        assert_eq!(rx.try_recv().unwrap(), Some(Ok(())));
    }

    #[test]
    fn timeouts_and_leader_change_answer_with_etcd_errors() {
        let now = Instant::now();
        let timeout = Duration::from_secs(1);
        let mut p = Pending::new(1, timeout, Outbox::default());
        let (tx, mut proposal) = ProposalReply::new(0);
        p.add_proposal(5, InternalRaftRequest::default(), tx, now);
        let mut unconfirmed = read(&mut p);
        p.start_read_round(now).unwrap();
        p.expire(now + timeout / 2, false);
        assert!(proposal.try_recv().unwrap().is_none());
        p.on_leader_change();
        assert_eq!(
            unconfirmed.try_recv().unwrap(),
            Some(Err(errors::leader_changed()))
        );
        p.expire(now + timeout, true);
        let status = proposal.try_recv().unwrap().unwrap().unwrap_err();
        assert_eq!(status, errors::timeout_due_to_leader_fail());
        assert!(p.take_proposal(5).is_none());
    }

    #[test]
    fn conf_changes_and_transfers_are_answered() {
        let now = Instant::now();
        let timeout = Duration::from_secs(1);
        let mut p = Pending::new(1, timeout, Outbox::default());
        let (tx, _rx) = oneshot::channel();
        p.add_conf_change(Bytes::from_static(b"cc"), None, tx, now);
        assert!(p.take_conf_change(b"other").is_none());
        assert!(p.take_conf_change(b"cc").is_some());
        let (tx, mut to_two) = oneshot::channel();
        p.add_transfer(2, tx, now);
        let (tx, mut to_three) = oneshot::channel();
        p.add_transfer(3, tx, now);
        p.on_leader(2);
        assert_eq!(to_two.try_recv().unwrap(), Some(Ok(())));
        assert_eq!(to_three.try_recv().unwrap(), None);
        p.expire(now + timeout, false);
        assert_eq!(
            to_three.try_recv().unwrap(),
            Some(Err(errors::timeout_leader_transfer()))
        );
        let (tx, mut cc) = oneshot::channel();
        p.add_conf_change(Bytes::from_static(b"cc2"), None, tx, now);
        p.expire(now + timeout, false);
        assert_eq!(
            cc.try_recv().unwrap().unwrap().unwrap_err(),
            errors::timeout()
        );
    }

    #[test]
    fn a_refused_round_fails_its_reads_only() {
        let now = Instant::now();
        let mut p = Pending::new(3, Duration::from_secs(1), Outbox::default());
        let mut first = read(&mut p);
        let first_ctx = p.start_read_round(now).unwrap();
        let mut second = read(&mut p);
        let second_ctx = p.start_read_round(now).unwrap();
        p.fail_round(&second_ctx, &errors::no_leader());
        assert_eq!(second.try_recv().unwrap(), Some(Err(errors::no_leader())));
        assert_eq!(first.try_recv().unwrap(), None);
        p.on_read_state(&first_ctx, 1);
        p.release_reads(1);
        assert_eq!(first.try_recv().unwrap(), Some(Ok(())));
    }

    #[test]
    fn fail_all_answers_everything() {
        let now = Instant::now();
        let mut p = Pending::new(1, Duration::from_secs(1), Outbox::default());
        let (tx, mut proposal) = ProposalReply::new(0);
        p.add_proposal(5, InternalRaftRequest::default(), tx, now);
        let mut queued = read(&mut p);
        p.fail_all(&errors::stopped());
        assert_eq!(
            proposal.try_recv().unwrap().unwrap().unwrap_err(),
            errors::stopped()
        );
        assert_eq!(queued.try_recv().unwrap(), Some(Err(errors::stopped())));
    }
}
