//! A per-core change signal: waiters created before a `notify` are woken by it.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

#[derive(Default)]
struct Inner {
    generation: Cell<u64>,
    next_waiter_id: Cell<u64>,
    waiters: RefCell<HashMap<u64, Waker>>,
}

/// Wakes every [`Changed`] future created before the latest [`Notify::notify`]. Clones share
/// the state (`Rc`; not `Send`). A waiter registers one waker at a time, so repeated polls
/// do not grow the waiter table.
#[derive(Clone, Default)]
pub(crate) struct Notify {
    inner: Rc<Inner>,
}

impl Notify {
    /// Marks a change and wakes every waiter.
    pub(crate) fn notify(&self) {
        self.inner.generation.set(self.inner.generation.get() + 1);
        let waiters = std::mem::take(&mut *self.inner.waiters.borrow_mut());
        for (_, waker) in waiters {
            waker.wake();
        }
    }

    /// A future that resolves at the first `notify` after this call. Capturing the
    /// generation here (not at the first poll) means a caller that checks its condition and
    /// then calls `changed()` without an `.await` in between cannot miss a change.
    pub(crate) fn changed(&self) -> Changed {
        Changed {
            inner: self.inner.clone(),
            seen: self.inner.generation.get(),
            id: None,
        }
    }
}

impl Notify {
    /// Waiters currently registered (tests check that none leak).
    #[cfg(test)]
    pub(crate) fn waiter_count(&self) -> usize {
        self.inner.waiters.borrow().len()
    }
}

/// See [`Notify::changed`].
pub(crate) struct Changed {
    inner: Rc<Inner>,
    seen: u64,
    id: Option<u64>,
}

impl Future for Changed {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.inner.generation.get() != self.seen {
            return Poll::Ready(());
        }
        let id = match self.id {
            Some(id) => id,
            None => {
                let id = self.inner.next_waiter_id.get();
                self.inner.next_waiter_id.set(id + 1);
                self.id = Some(id);
                id
            }
        };
        self.inner
            .waiters
            .borrow_mut()
            .insert(id, cx.waker().clone());
        Poll::Pending
    }
}

impl Drop for Changed {
    fn drop(&mut self) {
        if let Some(id) = self.id {
            self.inner.waiters.borrow_mut().remove(&id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::FutureExt;

    #[test]
    fn wakes_only_waiters_created_before_the_change() {
        let notify = Notify::default();
        let mut before = Box::pin(notify.changed());
        assert_eq!(before.as_mut().now_or_never(), None);
        assert_eq!(before.as_mut().now_or_never(), None);
        assert_eq!(notify.inner.waiters.borrow().len(), 1);
        notify.notify();
        assert_eq!(notify.inner.waiters.borrow().len(), 0);
        assert_eq!(before.as_mut().now_or_never(), Some(()));
        let mut after = Box::pin(notify.changed());
        assert_eq!(after.as_mut().now_or_never(), None);
        drop(after);
        assert_eq!(notify.inner.waiters.borrow().len(), 0);
    }

    #[test]
    fn change_between_creation_and_first_poll_is_seen() {
        let notify = Notify::default();
        let changed = notify.changed();
        notify.notify();
        assert_eq!(changed.now_or_never(), Some(()));
    }
}
