//! Linearizable reads by ReadIndex, the "safe" option: the leader records its commit
//! index for each request, confirms it is still leader with one heartbeat round, then
//! answers every request of that round and the rounds before it (Raft thesis §6.4,
//! etcd-io/raft `read_only.go`).
//!
//! Rounds are numbered by the leader itself: each request starts a round whose
//! sequence number travels in the heartbeats' `context` (8 bytes, little-endian) and
//! comes back in the acknowledgements. An acknowledgement of round `s` proves that the
//! member still followed this leader after every request of rounds `≤ s` arrived, so
//! it confirms exactly those. etcd keys rounds by the application's request context
//! instead; contexts of different members (or of one member before and after a
//! restart) can be equal, and a delayed acknowledgement of an earlier round with the
//! same bytes then confirms a later read: a stale read.

use std::collections::{BTreeMap, VecDeque};

use bytes::Bytes;

use crate::message::Message;

/// The result of a read-index request: once the applied index reaches `index`, a
/// read that started before the request is linearizable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReadState {
    /// Commit index at the time the leader received the request.
    pub index: u64,
    /// The context given to [`crate::RawNode::read_index`], unchanged.
    pub request_ctx: Bytes,
}

/// One pending request: the original message (its sender and context), its read
/// index and the round that must be acknowledged by a quorum.
#[derive(Debug)]
pub(crate) struct ReadIndexStatus {
    pub(crate) req: Message,
    pub(crate) index: u64,
    pub(crate) round: u64,
}

/// Pending requests in arrival order (their rounds strictly increase) and the newest
/// round each member acknowledged.
#[derive(Debug, Default)]
pub(crate) struct ReadOnly {
    queue: VecDeque<ReadIndexStatus>,
    acked: BTreeMap<u64, u64>,
    /// Last round handed out. Never reset, so that an acknowledgement can never
    /// match a round of an earlier leadership of this node (those also carry an
    /// older term and are dropped before they get here).
    last_round: u64,
}

/// Encodes a round number as a heartbeat context.
pub(crate) fn round_ctx(round: u64) -> Bytes {
    Bytes::copy_from_slice(&round.to_le_bytes())
}

/// Decodes a heartbeat response's context; None unless it is exactly 8 bytes.
pub(crate) fn ctx_round(ctx: &[u8]) -> Option<u64> {
    Some(u64::from_le_bytes(ctx.try_into().ok()?))
}

impl ReadOnly {
    /// Queues `req` at read index `index` in a new round; returns the round.
    pub(crate) fn add_request(&mut self, index: u64, req: Message) -> u64 {
        self.last_round += 1;
        self.queue.push_back(ReadIndexStatus {
            req,
            index,
            round: self.last_round,
        });
        self.last_round
    }

    /// The last round handed out.
    pub(crate) fn last_round(&self) -> u64 {
        self.last_round
    }

    /// Records that `id` acknowledged `round`; rounds never handed out are ignored.
    pub(crate) fn recv_ack(&mut self, id: u64, round: u64) {
        if round == 0 || round > self.last_round {
            return;
        }
        let a = self.acked.entry(id).or_insert(0);
        *a = (*a).max(round);
    }

    /// Newest round `id` acknowledged (0 if none).
    pub(crate) fn acked(&self, id: u64) -> u64 {
        self.acked.get(&id).copied().unwrap_or(0)
    }

    /// Removes and returns every request whose round is `≤ confirmed`, in order.
    pub(crate) fn advance(&mut self, confirmed: u64) -> Vec<ReadIndexStatus> {
        let n = self
            .queue
            .iter()
            .take_while(|s| s.round <= confirmed)
            .count();
        self.queue.drain(..n).collect()
    }

    /// Round to carry on the next heartbeats: the newest, if any request waits.
    pub(crate) fn pending_round(&self) -> Option<u64> {
        self.queue.back().map(|s| s.round)
    }

    /// Number of requests waiting for their round to be confirmed.
    pub(crate) fn pending_count(&self) -> usize {
        self.queue.len()
    }

    /// Drops every pending request and acknowledgement (a new term or role);
    /// round numbers keep increasing.
    pub(crate) fn reset(&mut self) {
        self.queue.clear();
        self.acked.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::{Entry, MessageType};

    fn req(ctx: &'static [u8]) -> Message {
        Message {
            entries: vec![Entry {
                data: Bytes::from_static(ctx),
                ..Default::default()
            }],
            ..Message::new(MessageType::ReadIndex)
        }
    }

    #[test]
    fn advance_releases_every_round_up_to_the_confirmed_one() {
        let mut ro = ReadOnly::default();
        assert_eq!(ro.add_request(5, req(b"a")), 1);
        assert_eq!(ro.add_request(6, req(b"b")), 2);
        assert_eq!(ro.add_request(7, req(b"a")), 3, "same context, own round");
        assert_eq!(ro.pending_count(), 3);
        assert_eq!(ro.pending_round(), Some(3));
        ro.recv_ack(2, 2);
        ro.recv_ack(2, 1);
        assert_eq!(ro.acked(2), 2, "an older round does not lower the ack");
        ro.recv_ack(3, 9);
        assert_eq!(ro.acked(3), 0, "a round never handed out is ignored");
        let done: Vec<u64> = ro.advance(2).iter().map(|s| s.index).collect();
        assert_eq!(done, vec![5, 6]);
        assert_eq!(ro.pending_count(), 1);
        assert!(ro.advance(2).is_empty());
        ro.reset();
        assert_eq!((ro.pending_count(), ro.acked(2)), (0, 0));
        assert_eq!(ro.add_request(8, req(b"c")), 4, "rounds keep increasing");
        assert_eq!(ctx_round(&round_ctx(4)), Some(4));
        assert_eq!(ctx_round(b"abc"), None);
    }
}
