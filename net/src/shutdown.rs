//! A per-core, one-way shutdown latch.

use std::cell::Cell;
use std::rc::Rc;

use crate::notify::Notify;

#[derive(Default)]
struct Inner {
    triggered: Cell<bool>,
    notify: Notify,
}

/// Per-core shutdown signal (an `Rc` inside; clones share the state; not `Send`).
///
/// [`Shutdown::trigger`] makes [`crate::serve`] stop accepting, send HTTP/2 GOAWAY on every
/// connection and close idle HTTP/1.1 connections, while in-flight calls run to their end.
/// Long-lived streaming calls (Watch, LeaseKeepAlive, Observe) must end themselves: a
/// service can `select` on [`Shutdown::wait`]. Triggering is permanent.
#[derive(Clone, Default)]
pub struct Shutdown {
    inner: Rc<Inner>,
}

impl Shutdown {
    /// A signal not yet triggered.
    pub fn new() -> Self {
        Shutdown::default()
    }

    /// Triggers the signal and wakes every waiter. Idempotent.
    pub fn trigger(&self) {
        if !self.inner.triggered.replace(true) {
            self.inner.notify.notify();
        }
    }

    /// True once [`Shutdown::trigger`] was called on this signal or a clone.
    pub fn is_triggered(&self) -> bool {
        self.inner.triggered.get()
    }

    /// Resolves once the signal is triggered (at once if it already was).
    pub async fn wait(&self) {
        // `changed()` is taken before the check: a trigger in between is not missed.
        let changed = self.inner.notify.changed();
        if self.inner.triggered.get() {
            return;
        }
        changed.await
    }
}

impl std::fmt::Debug for Shutdown {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shutdown")
            .field("triggered", &self.is_triggered())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::FutureExt;

    #[test]
    fn trigger_wakes_waiters_and_is_sticky() {
        let shutdown = Shutdown::new();
        let clone = shutdown.clone();
        assert!(!shutdown.is_triggered());
        let mut waiting = Box::pin(clone.wait());
        assert_eq!(waiting.as_mut().now_or_never(), None);
        assert_eq!(shutdown.inner.notify.waiter_count(), 1);
        shutdown.trigger();
        assert!(clone.is_triggered());
        assert_eq!(shutdown.inner.notify.waiter_count(), 0);
        assert_eq!(waiting.as_mut().now_or_never(), Some(()));
        assert_eq!(clone.wait().now_or_never(), Some(()));
        shutdown.trigger();
        assert!(shutdown.is_triggered());
    }

    #[test]
    fn dropped_waiter_unregisters() {
        let shutdown = Shutdown::new();
        {
            let mut waiting = Box::pin(shutdown.wait());
            assert_eq!(waiting.as_mut().now_or_never(), None);
            assert_eq!(waiting.as_mut().now_or_never(), None);
            assert_eq!(shutdown.inner.notify.waiter_count(), 1);
        }
        assert_eq!(shutdown.inner.notify.waiter_count(), 0);
    }
}
