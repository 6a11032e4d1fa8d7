//! etcd's Watch service (DESIGN.md §2): per-core watcher hubs fed once per applied revision.
//!
//! - **Publication.** The raft core hands every applied revision's events to
//!   [`WatchPublisher::publish`], which `try_send`s one shared copy into each core's bounded
//!   feed ([`FEED_CAPACITY_REVISIONS`]). It never blocks: when a core's feed is full the
//!   revision is dropped for that core and the core is marked lagging; its hub then reads
//!   the missed revisions from MVCC history ([`engine::MvccReader::events`]) in bounded
//!   chunks. A hub dispatches revision `r` only when it has dispatched `r - 1`, so a
//!   revision that arrives twice (feed and history) is skipped: never lost, never duplicated.
//! - **Hub.** One per core ([`start_hub`]); it owns that core's watchers. A *synced*
//!   watcher gets each revision's matching events as one response, pushed into its stream's
//!   bounded queue ([`STREAM_QUEUE_RESPONSES_MAX`]). When that queue is full the watcher
//!   becomes *unsynced* (etcd's unsynced watcher group): it keeps only the next revision it
//!   needs, and catches up from history in chunks of whole revisions
//!   ([`CATCH_UP_EVENTS_MAX`]) whenever its stream has room, then rejoins the synced group.
//!   Memory per watcher is therefore bounded by its stream's queue, whatever the write rate.
//! - **Stream.** One task reads requests (create, cancel, progress), the call's own future
//!   writes the stream's queue to the wire, in order; every response of a watcher follows
//!   its `created` response and precedes its `canceled` one. The stream ends with its
//!   client, or with `etcdserver: server stopped` when the server shuts down.
//!
//! Semantics follow etcd 3.4 (`etcdserver/api/v3rpc/watch.go`, `mvcc/watchable_store.go`,
//! `mvcc/watcher.go`): auto watch IDs from 0 per stream; a duplicate ID or an empty range is
//! answered `created` + `canceled` with watch ID -1 and etcd's reason; a start revision below
//! the compaction point is answered `created`, then `canceled` with `compact_revision`;
//! a progress request is answered with watch ID -1.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::future::poll_fn;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};

use engine::{Event, EventType};
use net::pb::etcdserverpb::{
    watch_create_request::FilterType, ResponseHeader, WatchCreateRequest, WatchResponse,
};
use net::pb::mvccpb;
use net::Status;

use crate::cluster::Shared;

/// The gRPC path of etcd's Watch method.
pub const WATCH_METHOD: &str = "/etcdserverpb.Watch/Watch";
/// Revisions a core's feed holds before the publisher marks the core lagging.
pub const FEED_CAPACITY_REVISIONS: usize = 1_024;
/// Environment variable overriding [`FEED_CAPACITY_REVISIONS`] (for tests that force the
/// lagging-hub path, e.g. `1`).
pub const FEED_CAPACITY_ENV: &str = "CAIRN_WATCH_FEED_CAPACITY_REVISIONS";
/// Responses a stream's queue holds before its watchers fall back to catching up from
/// history. Control responses (created, canceled, progress) may exceed it by
/// [`STREAM_CONTROL_RESPONSES_MAX`]; past that the stream stops reading requests.
pub const STREAM_QUEUE_RESPONSES_MAX: usize = 64;
/// Control responses a stream's queue may hold beyond [`STREAM_QUEUE_RESPONSES_MAX`].
pub const STREAM_CONTROL_RESPONSES_MAX: usize = 64;
/// Events one catch-up read of one watcher returns at most (whole revisions: the last
/// revision read may add its remaining events). etcd batches up to 1,000 revisions.
pub const CATCH_UP_EVENTS_MAX: usize = 1_000;
/// Events one history read of a lagging hub returns at most (whole revisions, as above).
pub const HUB_CATCH_UP_EVENTS_MAX: usize = 4_096;
/// Bytes etcd adds to `--max-request-bytes` for a watch response before fragmenting it
/// (`grpcOverheadBytes` in etcd's v3rpc).
pub const GRPC_OVERHEAD_BYTES: usize = 512 * 1024;
/// Interval of the progress notifications sent to watchers created with `progress_notify`
/// (etcd's `progressReportInterval`).
pub const PROGRESS_NOTIFY_INTERVAL: Duration = Duration::from_secs(10 * 60);
/// Environment variable overriding [`PROGRESS_NOTIFY_INTERVAL`] in milliseconds (for tests).
pub const PROGRESS_NOTIFY_INTERVAL_ENV: &str = "CAIRN_WATCH_PROGRESS_NOTIFY_INTERVAL_MS";
/// etcd's `clientv3.InvalidWatchID`: the ID of responses that belong to no watcher.
pub const INVALID_WATCH_ID: i64 = -1;
/// etcd `mvcc.ErrWatcherDuplicateID`.
pub const DUPLICATE_ID_REASON: &str = "mvcc: duplicate watch ID provided on the WatchStream";
/// etcd `mvcc.ErrEmptyWatcherRange`.
pub const EMPTY_RANGE_REASON: &str = "mvcc: watcher range is empty";

const _: () = assert!(STREAM_QUEUE_RESPONSES_MAX > 0);
const _: () = assert!(CATCH_UP_EVENTS_MAX > 0 && HUB_CATCH_UP_EVENTS_MAX > 0);

mod index;
mod internal;
mod publish;
mod stream;

use index::Watchers;
pub(crate) use internal::InternalWatch;
use publish::Published;
pub use publish::{Feed, WatchPublisher};
pub use stream::{serve_stream, CreateCheck};

/// A single-waiter wake-up flag for tasks of one executor.
#[derive(Default)]
struct Signal {
    fired: Cell<bool>,
    waker: RefCell<Option<Waker>>,
}

impl Signal {
    fn notify(&self) {
        self.fired.set(true);
        if let Some(waker) = self.waker.borrow_mut().take() {
            waker.wake();
        }
    }

    async fn wait(&self) {
        poll_fn(|cx| {
            if self.fired.replace(false) {
                Poll::Ready(())
            } else {
                *self.waker.borrow_mut() = Some(cx.waker().clone());
                Poll::Pending
            }
        })
        .await
    }
}

/// What one stream holds: its ordered response queue and its watch IDs.
#[derive(Default)]
struct StreamOut {
    /// Responses in send order, each with whether it may be fragmented.
    queue: RefCell<VecDeque<(WatchResponse, bool)>>,
    /// Fired when the queue gets a response (or the reader ended).
    ready: Signal,
    /// Fired when the writer took responses off the queue.
    room: Signal,
    /// Watch ID → hub key of this stream's watchers.
    ids: RefCell<HashMap<i64, u64>>,
    /// etcd's `watchStream.nextID`.
    next_auto_id: Cell<i64>,
    /// Set when the request reader ended with an error.
    failed: RefCell<Option<Status>>,
}

impl StreamOut {
    fn has_room(&self) -> bool {
        self.queue.borrow().len() < STREAM_QUEUE_RESPONSES_MAX
    }

    fn push(&self, response: WatchResponse, fragment: bool) {
        self.queue.borrow_mut().push_back((response, fragment));
        self.ready.notify();
    }
}

struct Watcher {
    stream: Rc<StreamOut>,
    id: i64,
    key: Vec<u8>,
    /// Empty: the single `key`; `[0]`: every key >= `key`; else `[key, range_end)`.
    range_end: Vec<u8>,
    /// Unsynced: the next revision this watcher needs. Synced: a lower bound (its start
    /// revision, or the one after the last revision it got); it needs the later of this and
    /// the hub's next revision ([`Watcher::needs_from`]), so dispatching a revision touches
    /// only the watchers its events match.
    next_rev: i64,
    prev_kv: bool,
    no_put: bool,
    no_delete: bool,
    fragment: bool,
    progress_notify: bool,
    /// Events were sent since the last progress tick.
    had_events: bool,
    synced: bool,
}

impl Watcher {
    /// The next revision this watcher needs when the hub's next revision is `hub_next_rev`.
    fn needs_from(&self, hub_next_rev: i64) -> i64 {
        if self.synced {
            self.next_rev.max(hub_next_rev)
        } else {
            self.next_rev
        }
    }

    fn matches(&self, key: &[u8]) -> bool {
        if self.range_end.is_empty() {
            key == self.key.as_slice()
        } else if self.range_end == [0] {
            key >= self.key.as_slice()
        } else {
            key >= self.key.as_slice() && key < self.range_end.as_slice()
        }
    }

    fn wants(&self, event: &Event) -> bool {
        let filtered = match event.event_type {
            EventType::Put => self.no_put,
            EventType::Delete => self.no_delete,
        };
        !filtered && self.matches(&event.kv.key)
    }

    fn to_pb(&self, event: &Event) -> mvccpb::Event {
        mvccpb::Event {
            r#type: match event.event_type {
                EventType::Put => mvccpb::event::EventType::Put as i32,
                EventType::Delete => mvccpb::event::EventType::Delete as i32,
            },
            kv: Some(crate::kv::to_pb(event.kv.clone())),
            prev_kv: if self.prev_kv {
                event.prev_kv.clone().map(crate::kv::to_pb)
            } else {
                None
            },
        }
    }
}

struct HubState {
    /// The next revision to dispatch: every revision below it reached every synced watcher.
    next_rev: i64,
    watchers: Watchers,
    next_key: u64,
    unsynced: usize,
}

/// One core's watchers and the task that feeds them (see the module docs).
pub struct WatchHub {
    shared: Arc<Shared>,
    state: RefCell<HubState>,
    kick: Signal,
    shutdown: net::Shutdown,
    max_request_bytes: usize,
}

thread_local! {
    /// This core's hub (every core is one executor thread).
    static HUB: RefCell<Option<Rc<WatchHub>>> = const { RefCell::new(None) };
}

/// Starts this core's hub: subscribes to the publisher and spawns the hub task, which ends
/// when `shutdown` triggers. `max_request_bytes` (etcd `--max-request-bytes`) plus
/// [`GRPC_OVERHEAD_BYTES`] bounds fragments; `progress_every` is etcd's
/// `--experimental-watch-progress-notify-interval`.
pub fn start_hub(
    shared: Arc<Shared>,
    shutdown: net::Shutdown,
    max_request_bytes: usize,
    progress_every: Duration,
) {
    let feed = shared.watch.subscribe();
    let next_rev = shared.reader.current_revision() + 1;
    let hub = Rc::new(WatchHub {
        shared,
        state: RefCell::new(HubState {
            next_rev,
            watchers: Watchers::default(),
            next_key: 0,
            unsynced: 0,
        }),
        kick: Signal::default(),
        shutdown,
        max_request_bytes: max_request_bytes.saturating_add(GRPC_OVERHEAD_BYTES),
    });
    HUB.with(|h| *h.borrow_mut() = Some(hub.clone()));
    glommio::spawn_local(hub.run(feed, progress_interval(progress_every))).detach();
}

/// `flag` ([`PROGRESS_NOTIFY_INTERVAL`] unless set), or the test override from
/// [`PROGRESS_NOTIFY_INTERVAL_ENV`].
fn progress_interval(flag: Duration) -> Duration {
    std::env::var(PROGRESS_NOTIFY_INTERVAL_ENV)
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .filter(|ms| *ms > 0)
        .map_or(flag, Duration::from_millis)
}

enum Wake {
    Revision(Option<Arc<Published>>),
    Kick,
    Shutdown,
}

/// A history read failed with something other than compaction: the value store cannot
/// be read, so the member stops (etcd panics on a backend read failure) rather than leave
/// watchers silently behind.
fn history_unreadable(e: &engine::Error) -> ! {
    crate::logging::fatal(
        "failed to read watch history from the store",
        &e.to_string(),
    )
}

impl WatchHub {
    async fn run(self: Rc<Self>, feed: Feed, progress_every: Duration) {
        let mut next_progress = Instant::now() + progress_every;
        let mut received: Option<Arc<Published>> = None;
        loop {
            if self.shutdown.is_triggered() {
                break;
            }
            let mut gap = false;
            let mut taken = 0usize;
            while let Some(p) = received.take().or_else(|| feed.rx.try_recv().ok()) {
                gap |= !self.on_revision(&p);
                taken += 1;
                if taken.is_multiple_of(64) {
                    futures_lite::future::yield_now().await;
                }
            }
            if feed.lagging.swap(false, Ordering::AcqRel) || gap {
                self.catch_up_hub().await;
                continue;
            }
            if self.state.borrow().unsynced > 0 && self.catch_up_watchers().await {
                continue;
            }
            if Instant::now() >= next_progress {
                self.progress_tick();
                next_progress = Instant::now() + progress_every;
            }
            // Nothing left to do without a new revision, a kick (a watcher created or a
            // stream with room again) or the progress tick.
            let wait = next_progress.saturating_duration_since(Instant::now());
            let wake = futures_lite::future::or(
                async { Wake::Revision(feed.rx.recv_async().await.ok()) },
                futures_lite::future::or(
                    async {
                        futures_lite::future::or(self.kick.wait(), async {
                            glommio::timer::sleep(wait).await;
                        })
                        .await;
                        Wake::Kick
                    },
                    async {
                        self.shutdown.wait().await;
                        Wake::Shutdown
                    },
                ),
            )
            .await;
            match wake {
                Wake::Revision(p) => received = p,
                Wake::Kick => {}
                Wake::Shutdown => break,
            }
        }
        let mut st = self.state.borrow_mut();
        st.watchers.clear();
        st.unsynced = 0;
    }

    /// Dispatches a published revision if it is the next one; false on a gap (a revision
    /// before it was dropped from the feed).
    fn on_revision(&self, p: &Published) -> bool {
        let next_rev = self.state.borrow().next_rev;
        if p.revision < next_rev {
            return true;
        }
        if p.revision > next_rev {
            return false;
        }
        self.dispatch(p.revision, &p.events);
        true
    }

    /// Sends revision `revision`'s events to every synced watcher waiting for it: one
    /// response per watcher holding its matching events in revision order (etcd
    /// `newWatcherBatch`). Only the watchers whose range covers an event's key are visited.
    fn dispatch(&self, revision: i64, events: &[Event]) {
        let mut st = self.state.borrow_mut();
        assert_eq!(revision, st.next_rev);
        let mut batches: BTreeMap<u64, Vec<mvccpb::Event>> = BTreeMap::new();
        for event in events {
            st.watchers.for_each_covering(&event.kv.key, |hub_key, w| {
                if w.synced && w.next_rev <= revision && w.wants(event) {
                    batches.entry(hub_key).or_default().push(w.to_pb(event));
                }
            });
        }
        let mut fell_behind = 0;
        for (hub_key, matching) in batches {
            let w = st
                .watchers
                .get_mut(&hub_key)
                .expect("batched watcher exists");
            if !w.stream.has_room() {
                tracing::debug!(watch_id = w.id, revision, "watcher fell behind: unsynced");
                w.synced = false;
                w.next_rev = revision;
                fell_behind += 1;
                continue;
            }
            w.stream
                .push(self.event_response(w.id, revision, matching), w.fragment);
            w.next_rev = revision + 1;
            w.had_events = true;
        }
        st.unsynced += fell_behind;
        st.next_rev = revision + 1;
    }

    fn event_response(&self, id: i64, revision: i64, events: Vec<mvccpb::Event>) -> WatchResponse {
        WatchResponse {
            header: Some(self.shared.header(revision)),
            watch_id: id,
            events,
            ..Default::default()
        }
    }

    /// Reads the revisions this hub missed from history, in bounded chunks of whole
    /// revisions, and dispatches them in order.
    async fn catch_up_hub(&self) {
        let reader = &self.shared.reader;
        let to = reader.current_revision();
        tracing::debug!(
            from = self.state.borrow().next_rev,
            to,
            "watch hub fell behind: catching up from history"
        );
        loop {
            let from = self.state.borrow().next_rev;
            if from > to {
                return;
            }
            let events = match reader.events(&[0], &[0], from, to, true, HUB_CATCH_UP_EVENTS_MAX) {
                Ok(events) => events,
                Err(engine::Error::Compacted) => {
                    self.compacted_behind_hub(reader.compact_revision());
                    continue;
                }
                Err(e) => history_unreadable(&e),
            };
            let limited = events.len() >= HUB_CATCH_UP_EVENTS_MAX;
            let end = match (limited, events.last()) {
                (true, Some(last)) => last.kv.mod_revision,
                _ => to,
            };
            let mut at = 0;
            while at < events.len() {
                let revision = events[at].kv.mod_revision;
                let len = events[at..]
                    .iter()
                    .take_while(|e| e.kv.mod_revision == revision)
                    .count();
                self.skip_to(revision);
                self.dispatch(revision, &events[at..at + len]);
                at += len;
            }
            self.skip_to(end + 1);
            futures_lite::future::yield_now().await;
        }
    }

    /// Moves the hub (and so its synced watchers, see [`Watcher::needs_from`]) to
    /// `revision` across revisions that have no events left (only possible after compaction).
    fn skip_to(&self, revision: i64) {
        let mut st = self.state.borrow_mut();
        st.next_rev = st.next_rev.max(revision);
    }

    /// The hub fell behind a compaction: synced watchers needing compacted revisions are
    /// canceled as etcd cancels them; the hub resumes at the compaction revision.
    fn compacted_behind_hub(&self, compact_revision: i64) {
        let doomed: Vec<u64> = {
            let st = self.state.borrow();
            st.watchers
                .iter()
                .filter(|(_, w)| w.synced && w.needs_from(st.next_rev) < compact_revision)
                .map(|(k, _)| *k)
                .collect()
        };
        for key in doomed {
            self.cancel_compacted(key, compact_revision);
        }
        self.skip_to(compact_revision);
    }

    fn cancel_compacted(&self, key: u64, compact_revision: i64) {
        let Some(w) = self.remove(key) else {
            return;
        };
        w.stream.ids.borrow_mut().remove(&w.id);
        w.stream.push(
            WatchResponse {
                // etcd's compaction response carries no revision (watch.go sendLoop).
                header: Some(ResponseHeader {
                    revision: 0,
                    ..self.shared.header(0)
                }),
                watch_id: w.id,
                canceled: true,
                compact_revision,
                ..Default::default()
            },
            false,
        );
    }

    /// One bounded history read for each unsynced watcher whose stream has room. True when
    /// a watcher advanced, is still behind and its stream still has room: the caller reads
    /// again at once (no wake-up will come for it).
    async fn catch_up_watchers(&self) -> bool {
        let keys: Vec<u64> = {
            let st = self.state.borrow();
            st.watchers
                .iter()
                .filter(|(_, w)| !w.synced)
                .map(|(k, _)| *k)
                .collect()
        };
        let mut more = false;
        for key in keys {
            more |= self.catch_up_one(key);
            futures_lite::future::yield_now().await;
        }
        more
    }

    /// One bounded history read for watcher `key`; true when it advanced, is still behind
    /// and its stream has room for more.
    fn catch_up_one(&self, key: u64) -> bool {
        let mut st = self.state.borrow_mut();
        let to = st.next_rev - 1;
        let Some(w) = st.watchers.get_mut(&key) else {
            return false;
        };
        if w.next_rev > to {
            w.synced = true;
            st.unsynced -= 1;
            return false;
        }
        if !w.stream.has_room() {
            return false;
        }
        let read = self.shared.reader.events(
            &w.key,
            &w.range_end,
            w.next_rev,
            to,
            w.prev_kv,
            CATCH_UP_EVENTS_MAX,
        );
        let events = match read {
            Ok(events) => events,
            Err(engine::Error::Compacted) => {
                drop(st);
                self.cancel_compacted(key, self.shared.reader.compact_revision());
                return false;
            }
            Err(e) => history_unreadable(&e),
        };
        let end = match (events.len() >= CATCH_UP_EVENTS_MAX, events.last()) {
            (true, Some(last)) => last.kv.mod_revision,
            _ => to,
        };
        let matching: Vec<mvccpb::Event> = events
            .iter()
            .filter(|e| w.wants(e))
            .map(|e| w.to_pb(e))
            .collect();
        if !matching.is_empty() {
            w.stream
                .push(self.event_response(w.id, end, matching), w.fragment);
            w.had_events = true;
        }
        w.next_rev = end + 1;
        if w.next_rev > to {
            w.synced = true;
            st.unsynced -= 1;
            return false;
        }
        w.stream.has_room()
    }

    /// Periodic progress (etcd `sendLoop`'s progress ticker): every synced watcher created
    /// with `progress_notify` that got no events since the last tick gets an empty response.
    fn progress_tick(&self) {
        let mut st = self.state.borrow_mut();
        let revision = st.next_rev - 1;
        for w in st.watchers.values_mut() {
            if !w.progress_notify {
                continue;
            }
            if !w.had_events && w.synced && w.stream.has_room() {
                w.stream
                    .push(self.event_response(w.id, revision, Vec::new()), false);
            }
            w.had_events = false;
        }
    }

    fn remove(&self, key: u64) -> Option<Watcher> {
        let mut st = self.state.borrow_mut();
        let w = st.watchers.remove(&key)?;
        crate::metrics::get().watcher_total.dec();
        if !w.synced {
            st.unsynced -= 1;
        }
        Some(w)
    }

    /// A create request answered created and canceled at once, watch ID -1, `reason` as
    /// the cancel reason (etcd's refusals in `recvLoop`).
    fn rejected(&self, current: i64, reason: &str) -> WatchResponse {
        WatchResponse {
            header: Some(self.shared.header(current)),
            watch_id: INVALID_WATCH_ID,
            created: true,
            canceled: true,
            cancel_reason: reason.to_string(),
            ..Default::default()
        }
    }

    /// Answers a create request the caller may not make (etcd `isWatchPermitted`).
    fn refuse(&self, out: &Rc<StreamOut>, reason: &str) {
        let current = self.shared.reader.current_revision();
        out.push(self.rejected(current, reason), false);
    }

    /// Handles a WatchCreateRequest (etcd `recvLoop` + `watchStream.Watch`).
    fn create(&self, out: &Rc<StreamOut>, c: WatchCreateRequest) {
        let key = if c.key.is_empty() {
            vec![0]
        } else {
            c.key.to_vec()
        };
        let range_end = c.range_end.to_vec();
        let current = self.shared.reader.current_revision();
        let rejected = |reason: &str| self.rejected(current, reason);
        if !range_end.is_empty() && range_end != [0] && key >= range_end {
            out.push(rejected(EMPTY_RANGE_REASON), false);
            return;
        }
        let id = if c.watch_id == 0 {
            let ids = out.ids.borrow();
            let mut id = out.next_auto_id.get();
            while ids.contains_key(&id) {
                id += 1;
            }
            out.next_auto_id.set(id + 1);
            id
        } else if out.ids.borrow().contains_key(&c.watch_id) {
            out.push(rejected(DUPLICATE_ID_REASON), false);
            return;
        } else {
            c.watch_id
        };
        let next_rev = if c.start_revision == 0 {
            current + 1
        } else {
            c.start_revision
        };
        out.push(
            WatchResponse {
                header: Some(self.shared.header(current)),
                watch_id: id,
                created: true,
                ..Default::default()
            },
            false,
        );
        let mut st = self.state.borrow_mut();
        let synced = next_rev >= st.next_rev;
        let hub_key = st.next_key;
        st.next_key += 1;
        st.watchers.insert(
            hub_key,
            Watcher {
                stream: out.clone(),
                id,
                key,
                range_end,
                next_rev,
                prev_kv: c.prev_kv,
                no_put: c.filters.contains(&(FilterType::Noput as i32)),
                no_delete: c.filters.contains(&(FilterType::Nodelete as i32)),
                fragment: c.fragment,
                progress_notify: c.progress_notify,
                had_events: false,
                synced,
            },
        );
        if !synced {
            st.unsynced += 1;
            self.kick.notify();
        }
        out.ids.borrow_mut().insert(id, hub_key);
        crate::metrics::get().watcher_total.inc();
    }

    /// Handles a WatchCancelRequest: unknown IDs are ignored, as etcd does.
    fn cancel(&self, out: &StreamOut, id: i64) {
        let Some(key) = out.ids.borrow_mut().remove(&id) else {
            return;
        };
        self.remove(key);
        out.push(
            WatchResponse {
                header: Some(self.shared.header(0)),
                watch_id: id,
                canceled: true,
                ..Default::default()
            },
            false,
        );
    }

    /// Handles a WatchProgressRequest: watch ID -1, at the revision up to which every
    /// watcher of the stream has been sent all its events.
    fn progress(&self, out: &StreamOut) {
        let st = self.state.borrow();
        let mut revision = st.next_rev;
        for key in out.ids.borrow().values() {
            if let Some(w) = st.watchers.get(key) {
                revision = revision.min(w.needs_from(st.next_rev));
            }
        }
        out.push(
            WatchResponse {
                header: Some(self.shared.header(revision - 1)),
                watch_id: INVALID_WATCH_ID,
                ..Default::default()
            },
            false,
        );
    }

    fn has_unsynced(&self) -> bool {
        self.state.borrow().unsynced > 0
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use bytes::Bytes;
    use engine::KeyValue;

    /// A put event of `key` at `revision` (version 1, value "v").
    pub(crate) fn put(key: &str, revision: i64) -> Event {
        Event {
            event_type: EventType::Put,
            kv: KeyValue {
                key: Bytes::copy_from_slice(key.as_bytes()),
                create_revision: revision,
                mod_revision: revision,
                version: 1,
                value: Bytes::from_static(b"v"),
                lease: 0,
            },
            prev_kv: None,
        }
    }

    /// A synced watcher of `key` with etcd's `range_end`, no filters, from revision 1.
    pub(super) fn watcher_on(key: &[u8], range_end: &[u8]) -> Watcher {
        Watcher {
            stream: Rc::new(StreamOut::default()),
            id: 0,
            key: key.to_vec(),
            range_end: range_end.to_vec(),
            next_rev: 1,
            prev_kv: false,
            no_put: false,
            no_delete: false,
            fragment: false,
            progress_notify: false,
            had_events: false,
            synced: true,
        }
    }

    #[test]
    fn watcher_ranges_and_filters_follow_etcd() {
        let mut w = watcher_on(b"b", b"");
        assert!(w.matches(b"b") && !w.matches(b"ba") && !w.matches(b"a"));
        w.range_end = vec![0];
        assert!(w.matches(b"b") && w.matches(b"zz") && !w.matches(b"a"));
        w.range_end = b"c".to_vec();
        assert!(w.matches(b"b") && w.matches(b"bzz") && !w.matches(b"c"));
        w.no_put = true;
        assert!(!w.wants(&put("b", 2)));
        let mut delete = put("b", 3);
        delete.event_type = EventType::Delete;
        assert!(w.wants(&delete));
        w.no_delete = true;
        assert!(!w.wants(&delete));
    }
}
