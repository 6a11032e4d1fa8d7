//! Linearizable reads by ReadIndex, the "safe" option: the leader records its commit
//! index for each request, confirms it is still leader with one heartbeat round, then
//! answers every request queued up to the acknowledged one (Raft thesis §6.4,
//! etcd-io/raft `read_only.go`).

use std::collections::{BTreeSet, HashMap, VecDeque};

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

/// One pending request: the original message, its read index and who acknowledged.
#[derive(Debug)]
pub(crate) struct ReadIndexStatus {
    pub(crate) req: Message,
    pub(crate) index: u64,
    pub(crate) acks: BTreeSet<u64>,
}

/// Pending requests by context, in arrival order.
#[derive(Debug, Default)]
pub(crate) struct ReadOnly {
    pending: HashMap<Bytes, ReadIndexStatus>,
    queue: VecDeque<Bytes>,
}

impl ReadOnly {
    /// Queues `req` (whose context is `entries[0].data`) at read index `index`;
    /// a context already pending is ignored.
    pub(crate) fn add_request(&mut self, index: u64, req: Message) {
        let ctx = req.entries[0].data.clone();
        if self.pending.contains_key(&ctx) {
            return;
        }
        self.pending.insert(
            ctx.clone(),
            ReadIndexStatus {
                req,
                index,
                acks: BTreeSet::new(),
            },
        );
        self.queue.push_back(ctx);
    }

    /// Records a heartbeat acknowledgement from `id` for `ctx`; returns who has
    /// acknowledged it so far (None for an unknown context).
    pub(crate) fn recv_ack(&mut self, id: u64, ctx: &[u8]) -> Option<&BTreeSet<u64>> {
        let status = self.pending.get_mut(ctx)?;
        status.acks.insert(id);
        Some(&status.acks)
    }

    /// Removes and returns every request queued up to and including `ctx` (an ack of
    /// a later heartbeat confirms leadership for all earlier requests too).
    pub(crate) fn advance(&mut self, ctx: &[u8]) -> Vec<ReadIndexStatus> {
        let Some(pos) = self.queue.iter().position(|c| c.as_ref() == ctx) else {
            return Vec::new();
        };
        self.queue
            .drain(..=pos)
            .filter_map(|c| self.pending.remove(&c))
            .collect()
    }

    /// Context of the newest pending request, carried by the next heartbeats.
    pub(crate) fn last_pending_request_ctx(&self) -> Option<Bytes> {
        self.queue.back().cloned()
    }

    #[cfg(test)]
    pub(crate) fn pending_count(&self) -> usize {
        self.queue.len()
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
    fn advance_releases_everything_up_to_the_acknowledged_context() {
        let mut ro = ReadOnly::default();
        ro.add_request(5, req(b"a"));
        ro.add_request(6, req(b"b"));
        ro.add_request(7, req(b"a"));
        ro.add_request(8, req(b"c"));
        assert_eq!(ro.pending_count(), 3);
        assert_eq!(
            ro.last_pending_request_ctx(),
            Some(Bytes::from_static(b"c"))
        );
        assert_eq!(ro.recv_ack(2, b"b").map(|a| a.len()), Some(1));
        assert_eq!(ro.recv_ack(3, b"b").map(|a| a.len()), Some(2));
        assert!(ro.recv_ack(3, b"zz").is_none());
        let done: Vec<u64> = ro.advance(b"b").iter().map(|s| s.index).collect();
        assert_eq!(done, vec![5, 6]);
        assert_eq!(ro.pending_count(), 1);
        assert!(ro.advance(b"b").is_empty());
    }
}
