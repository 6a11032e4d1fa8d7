//! Publication of applied revisions to every core's watch hub, never blocking the raft
//! core (see the parent module's docs).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use engine::Event;

use super::{FEED_CAPACITY_ENV, FEED_CAPACITY_REVISIONS};

/// One applied revision's events, shared by every core's feed.
pub(super) struct Published {
    pub(super) revision: i64,
    pub(super) events: Vec<Event>,
}

struct FeedSender {
    tx: flume::Sender<Arc<Published>>,
    lagging: Arc<AtomicBool>,
}

/// A core's end of the publication: its bounded feed and its lagging flag.
pub struct Feed {
    pub(super) rx: flume::Receiver<Arc<Published>>,
    pub(super) lagging: Arc<AtomicBool>,
}

/// Publishes applied revisions to every core's hub without ever blocking (`Send + Sync`;
/// lives in [`crate::cluster::Shared`]).
#[derive(Default)]
pub struct WatchPublisher {
    feeds: RwLock<Vec<FeedSender>>,
}

impl WatchPublisher {
    /// A publisher with no subscribed core.
    pub fn new() -> Self {
        WatchPublisher::default()
    }

    /// Registers a core's feed. Revisions published after this call reach the feed or mark
    /// it lagging.
    pub fn subscribe(&self) -> Feed {
        let capacity = std::env::var(FEED_CAPACITY_ENV)
            .ok()
            .and_then(|v| v.parse::<usize>().ok())
            .filter(|n| *n > 0)
            .unwrap_or(FEED_CAPACITY_REVISIONS);
        let (tx, rx) = flume::bounded(capacity);
        let lagging = Arc::new(AtomicBool::new(false));
        self.feeds
            .write()
            .expect("watch feeds lock")
            .push(FeedSender {
                tx,
                lagging: lagging.clone(),
            });
        Feed { rx, lagging }
    }

    /// Publishes the events of one applied write (all of one revision, as
    /// `WriteTxn::end` returns them, after the revision became visible to readers).
    /// An empty list (a write that changed nothing) publishes nothing.
    pub fn publish(&self, events: Vec<Event>) {
        crate::metrics::get().on_events(&events);
        let Some(first) = events.first() else {
            return;
        };
        let revision = first.kv.mod_revision;
        assert!(events.iter().all(|e| e.kv.mod_revision == revision));
        let feeds = self.feeds.read().expect("watch feeds lock");
        if feeds.is_empty() {
            return;
        }
        let published = Arc::new(Published { revision, events });
        for feed in feeds.iter() {
            if let Err(flume::TrySendError::Full(_)) = feed.tx.try_send(published.clone()) {
                feed.lagging.store(true, Ordering::Release);
            }
        }
    }

    /// The store jumped to a new state without publishing its revisions one by one (a
    /// Raft snapshot was installed): every core catches up from MVCC history.
    pub fn resync_all(&self) {
        for feed in self.feeds.read().expect("watch feeds lock").iter() {
            feed.lagging.store(true, Ordering::Release);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::watch::tests::put;

    #[test]
    fn a_full_feed_marks_the_core_lagging_and_never_blocks() {
        let publisher = WatchPublisher::new();
        publisher.publish(vec![put("k", 2)]); // nobody subscribed: dropped
        let feed = publisher.subscribe();
        let capacity = feed.rx.capacity().expect("bounded");
        for revision in 0..capacity as i64 + 5 {
            publisher.publish(vec![put("k", revision + 3)]);
        }
        publisher.publish(Vec::new()); // a write that changed nothing
        assert!(feed.lagging.load(Ordering::Acquire));
        let got: Vec<i64> = feed.rx.try_iter().map(|p| p.revision).collect();
        assert_eq!(got, (3..3 + capacity as i64).collect::<Vec<_>>());
    }
}
