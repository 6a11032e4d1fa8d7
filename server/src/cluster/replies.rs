//! Replies from the raft core to the cores, batched: one hand-off per core per raft loop
//! iteration (issue 9: "one notification per core per raft batch, dispatched on the
//! receiving core").
//!
//! A write or linearizable read waits on its own core for a oneshot. Completing each
//! oneshot from the raft core's thread would be one cross-thread wake-up per request;
//! instead the raft core collects the iteration's answers per core in an [`Outbox`] and
//! sends each core one `Vec` through that core's reply line. The core's [`deliver`] task
//! completes the oneshots there, so every per-request wake-up is a local one.

use futures::channel::oneshot;
use net::Status;

use super::driver::Applied;

/// Where a proposal's apply result goes.
pub type ProposalReply = Reply<Result<Applied, Status>>;
/// A linearizable read waiting for the applied index to reach its read index.
pub type ReadWaiter = Reply<Result<(), Status>>;

/// A reply owed to a task on core `core`.
pub struct Reply<T> {
    core: usize,
    tx: oneshot::Sender<T>,
}

impl<T> Reply<T> {
    /// A reply to a task on core `core` and the receiver that task waits on.
    pub fn new(core: usize) -> (Reply<T>, oneshot::Receiver<T>) {
        let (tx, rx) = oneshot::channel();
        (Reply { core, tx }, rx)
    }
}

/// One answer on its way to the core that waits for it.
pub enum Delivery {
    /// A proposal's apply result.
    Applied(ProposalReply, Result<Applied, Status>),
    /// A read barrier's outcome.
    Read(ReadWaiter, Result<(), Status>),
}

impl Delivery {
    fn core(&self) -> usize {
        match self {
            Delivery::Applied(r, _) => r.core,
            Delivery::Read(r, _) => r.core,
        }
    }

    /// Completes the oneshot (a waiter that gave up is ignored).
    fn complete(self) {
        match self {
            Delivery::Applied(r, v) => {
                let _ = r.tx.send(v);
            }
            Delivery::Read(r, v) => {
                let _ = r.tx.send(v);
            }
        }
    }
}

/// The raft core's answers of one loop iteration, per core.
#[derive(Default)]
pub struct Outbox {
    /// Core `i`'s reply line; with none (unit tests), answers complete at once.
    lines: Vec<flume::Sender<Vec<Delivery>>>,
    /// Answers collected for core `i` since the last [`Outbox::flush`].
    waiting: Vec<Vec<Delivery>>,
}

impl Outbox {
    /// An outbox over the cores' reply lines (index = core).
    pub fn new(lines: Vec<flume::Sender<Vec<Delivery>>>) -> Outbox {
        let waiting = lines.iter().map(|_| Vec::new()).collect();
        Outbox { lines, waiting }
    }

    /// Queues `delivery` for its core (or completes it now when that core has no line).
    pub fn push(&mut self, delivery: Delivery) {
        match self.waiting.get_mut(delivery.core()) {
            Some(queue) => queue.push(delivery),
            None => delivery.complete(),
        }
    }

    /// Sends each core its queued answers, one message per core. A core whose line is
    /// gone has stopped serving; its waiters are dropped with it.
    pub fn flush(&mut self) {
        for (queue, line) in self.waiting.iter_mut().zip(&self.lines) {
            if !queue.is_empty() {
                let _ = line.send(std::mem::take(queue));
            }
        }
    }
}

/// A core's delivery task: completes the answers the raft core sent this core, until the
/// raft core is gone.
pub async fn deliver(line: flume::Receiver<Vec<Delivery>>) {
    while let Ok(batch) = line.recv_async().await {
        for delivery in batch {
            delivery.complete();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_wait_for_flush_and_go_one_message_per_core() {
        let lines: Vec<_> = (0..2).map(|_| flume::unbounded()).collect();
        let mut outbox = Outbox::new(lines.iter().map(|(tx, _)| tx.clone()).collect());
        let (a, mut a_rx) = ReadWaiter::new(1);
        let (b, mut b_rx) = ReadWaiter::new(1);
        outbox.push(Delivery::Read(a, Ok(())));
        outbox.push(Delivery::Read(b, Err(crate::errors::timeout())));
        assert_eq!(a_rx.try_recv().unwrap(), None, "delivered before flush");
        outbox.flush();
        outbox.flush();
        assert!(
            lines[0].1.is_empty(),
            "core 0 got a message with no answers"
        );
        let batch = lines[1].1.try_recv().unwrap();
        assert_eq!(batch.len(), 2);
        assert!(lines[1].1.is_empty(), "more than one message for one flush");
        for d in batch {
            d.complete();
        }
        assert_eq!(a_rx.try_recv().unwrap(), Some(Ok(())));
        assert_eq!(
            b_rx.try_recv().unwrap(),
            Some(Err(crate::errors::timeout()))
        );
    }

    #[test]
    fn without_lines_answers_complete_at_once() {
        let mut outbox = Outbox::default();
        let (a, mut a_rx) = ReadWaiter::new(0);
        outbox.push(Delivery::Read(a, Ok(())));
        assert_eq!(a_rx.try_recv().unwrap(), Some(Ok(())));
    }
}
