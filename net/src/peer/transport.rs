//! The sending side: one task per peer that dials, keeps the Raft stream open and drains the
//! peer's bounded queue into it; snapshots and unary calls ride on the same connection.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeSet, HashMap, VecDeque};
use std::future::Future;
use std::net::{SocketAddr, ToSocketAddrs};
use std::pin::pin;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use futures::future::{select, select_all, Either, LocalBoxFuture};
use futures::stream::LocalBoxStream;
use futures::{FutureExt, StreamExt};
use glommio::net::TcpStream;
use h2::client::SendRequest;
use h2::{Ping, PingPong, RecvStream, SendStream};
use tokio_util::compat::FuturesAsyncReadCompatExt;

use super::wire::{
    build_request, check_method_name, check_response_head, id_hex, read_single_response,
    read_trailer_status, PeerUrl, CALL_PATH_PREFIX, RAFT_PATH, SNAPSHOT_PATH,
};
use super::{PeerError, PeerIdentity, PeerLimits, RAFT_BATCH_BYTES_MAX};
use crate::conn::{
    H2_CONNECTION_WINDOW_BYTES, H2_HEADER_LIST_BYTES_MAX, H2_SEND_BUFFER_BYTES,
    H2_STREAM_WINDOW_BYTES,
};
use crate::framing::{encode_message, encode_message_header, MessageDecoder};
use crate::notify::Notify;
use crate::shutdown::Shutdown;
use crate::status::{Code, Status};
use crate::stream::{next_message, status_from_h2, COALESCE_BYTES_MAX};
use crate::tls::{MaybeTls, TlsConnector};

/// What is known about one peer, as [`PeerTransport::status`] reports it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PeerStatus {
    /// The Raft stream to the peer is open and accepted: `send` queues messages.
    pub connected: bool,
    /// Why the last connection attempt or connection failed (e.g. the receiver's refusal
    /// "cairn: cluster ID mismatch: ..."), until the next successful connect.
    pub last_error: Option<String>,
    /// Raft messages handed to HTTP/2 (etcd `peer_sent_bytes_total` counts their bytes).
    pub sent_messages: u64,
    /// Bytes of those messages, framing excluded.
    pub sent_bytes: u64,
    /// Raft messages dropped: queue full, not connected, or queued when the connection
    /// broke (etcd `peer_sent_failures_total`).
    pub dropped_messages: u64,
    /// Connection attempts and connections that failed (each sets `last_error`).
    pub connection_failures: u64,
    /// Times the peer became unreachable (each logged once, at warn level).
    pub became_unreachable: u64,
    /// Times the peer became reachable (each logged once, at info level), the first
    /// connect included.
    pub became_reachable: u64,
}

/// Whether a peer is reachable, for logging transitions only once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Health {
    Unknown,
    Reachable,
    Unreachable,
}

/// An open HTTP/2 connection to a peer whose Raft stream was accepted.
#[derive(Clone)]
struct Link {
    send_request: SendRequest<Bytes>,
    url: PeerUrl,
}

struct Peer {
    id: u64,
    urls: RefCell<Vec<PeerUrl>>,
    /// Raft messages waiting for the writer; bounded by `queue_messages_max` and
    /// `queue_bytes_max`.
    queue: RefCell<VecDeque<Bytes>>,
    queued_bytes: Cell<usize>,
    /// Notified when the queue goes from empty to non-empty.
    queued: Notify,
    /// A full queue was logged; cleared when the writer empties the queue.
    queue_full_logged: Cell<bool>,
    link: RefCell<Option<Link>>,
    health: Cell<Health>,
    status: RefCell<PeerStatus>,
    /// Notified on every change of connection state or `last_error`, and on removal.
    changed: Notify,
    /// Notified when the URLs change: the task reconnects.
    redial: Notify,
    /// Triggered by `remove_peer` and `shutdown`: the task ends.
    stop: Shutdown,
}

impl Peer {
    fn is_connected(&self) -> bool {
        self.status.borrow().connected
    }

    /// Counts a dropped message and reports the peer unreachable.
    fn drop_message(&self, shared: &Shared) {
        self.status.borrow_mut().dropped_messages += 1;
        shared.unreachable.borrow_mut().insert(self.id);
    }

    /// Takes queued messages, framed (gRPC length prefix), up to `RAFT_BATCH_BYTES_MAX`
    /// (at least one message). Returns the bytes, the message count and the message bytes.
    fn take_batch(&self) -> Option<(Bytes, u64, u64)> {
        let mut queue = self.queue.borrow_mut();
        let first = queue.front()?;
        let mut framed = BytesMut::with_capacity((5 + first.len()).min(RAFT_BATCH_BYTES_MAX));
        let (mut count, mut bytes) = (0u64, 0u64);
        while let Some(front) = queue.front() {
            if count > 0 && framed.len() + 5 + front.len() > RAFT_BATCH_BYTES_MAX {
                break;
            }
            let message = queue.pop_front().expect("front exists");
            framed.put_slice(&encode_message_header(message.len()));
            framed.put_slice(&message);
            count += 1;
            bytes += message.len() as u64;
            self.queued_bytes
                .set(self.queued_bytes.get() - message.len());
        }
        if queue.is_empty() {
            self.queue_full_logged.set(false);
        }
        Some((framed.freeze(), count, bytes))
    }

    /// The Raft stream was accepted on `link`.
    fn on_connected(&self, link: Link) {
        let url = link.url.text.clone();
        *self.link.borrow_mut() = Some(link);
        {
            let mut status = self.status.borrow_mut();
            status.connected = true;
            status.last_error = None;
            if self.health.replace(Health::Reachable) != Health::Reachable {
                status.became_reachable += 1;
                tracing::info!(peer_id = %id_hex(self.id), %url, "peer: member became reachable");
            }
        }
        self.changed.notify();
    }

    /// The connection ended or could not be made. `error` is `None` for a deliberate end
    /// (stop, new URLs), which is not a change of reachability.
    fn on_disconnected(&self, shared: &Shared, url: &PeerUrl, error: Option<String>) {
        *self.link.borrow_mut() = None;
        let dropped = {
            let mut queue = self.queue.borrow_mut();
            let dropped = queue.len() as u64;
            queue.clear();
            self.queued_bytes.set(0);
            self.queue_full_logged.set(false);
            dropped
        };
        {
            let mut status = self.status.borrow_mut();
            status.connected = false;
            status.dropped_messages += dropped;
            if let Some(error) = &error {
                status.last_error = Some(error.clone());
                status.connection_failures += 1;
                if self.health.replace(Health::Unreachable) != Health::Unreachable {
                    status.became_unreachable += 1;
                    tracing::warn!(
                        peer_id = %id_hex(self.id),
                        url = %url.text,
                        %error,
                        "peer: member became unreachable"
                    );
                }
            }
        }
        if dropped > 0 || error.is_some() {
            shared.unreachable.borrow_mut().insert(self.id);
        }
        self.changed.notify();
    }

    /// Waits until the peer is connected; `Err` once it is removed or the transport shut down.
    async fn wait_link(&self) -> Result<Link, String> {
        loop {
            if self.stop.is_triggered() {
                return Err(format!(
                    "peer {} was removed or the transport shut down",
                    id_hex(self.id)
                ));
            }
            let changed = self.changed.changed();
            if let Some(link) = self.link.borrow().clone() {
                return Ok(link);
            }
            changed.await;
        }
    }
}

struct Shared {
    identity: PeerIdentity,
    limits: PeerLimits,
    peers: RefCell<HashMap<u64, Rc<Peer>>>,
    /// Peers that dropped messages or lost their connection since the last
    /// `take_unreachable`; at most one entry per peer.
    unreachable: RefCell<BTreeSet<u64>>,
    /// Peers whose receiver refused this member as not (or no longer) a member of the
    /// cluster (PERMISSION_DENIED from [`super::PeerHandler::accepts`]).
    refused_as_non_member: RefCell<BTreeSet<u64>>,
    shutdown: Shutdown,
    tasks_running: Cell<usize>,
    tasks_changed: Notify,
    /// Told every answered keepalive PING's round trip (member, time): metrics.
    round_trip_observer: RefCell<Option<RoundTripObserver>>,
    /// The client side of TLS for `https://` peer URLs; `None`: only `http://` URLs.
    tls: Option<Rc<TlsConnector>>,
}

/// Receives the round-trip time of every answered keepalive PING to a peer: `(member ID,
/// time from sending the PING to its acknowledgement)` (etcd measures
/// `etcd_network_peer_round_trip_time_seconds` with its prober).
pub type RoundTripObserver = Rc<dyn Fn(u64, Duration)>;

/// The sending side of the peer protocol on one core: per peer a bounded queue and a task
/// that connects (HTTP/2 with prior knowledge), reconnects with exponential backoff
/// (`backoff_min` doubling up to `backoff_max`) and drains the queue into the Raft stream
/// in batches. Snapshots and unary calls use the same connection.
///
/// Everything runs as local tasks of the current glommio executor: methods that start a
/// task (`add_peer`) must be called on one.
pub struct PeerTransport {
    shared: Rc<Shared>,
}

impl PeerTransport {
    /// A transport sending as `identity`. Panics if `limits` is invalid
    /// ([`PeerLimits::validate`] names the field).
    pub fn new(identity: PeerIdentity, limits: PeerLimits) -> Rc<PeerTransport> {
        PeerTransport::with_tls(identity, limits, None)
    }

    /// [`PeerTransport::new`] that can also dial `https://` peer URLs with `tls` (the
    /// peer certificate as client certificate, the peer trusted CA for the server's
    /// certificate, checked against the URL's host). Without `tls`, `https://` URLs are
    /// refused by `add_peer`/`update_peer`.
    pub fn with_tls(
        identity: PeerIdentity,
        limits: PeerLimits,
        tls: Option<Rc<TlsConnector>>,
    ) -> Rc<PeerTransport> {
        if let Err(error) = limits.validate() {
            panic!("invalid PeerLimits: {error}");
        }
        Rc::new(PeerTransport {
            shared: Rc::new(Shared {
                identity,
                limits,
                peers: RefCell::new(HashMap::new()),
                unreachable: RefCell::new(BTreeSet::new()),
                refused_as_non_member: RefCell::new(BTreeSet::new()),
                shutdown: Shutdown::new(),
                tasks_running: Cell::new(0),
                tasks_changed: Notify::default(),
                round_trip_observer: RefCell::new(None),
                tls,
            }),
        })
    }

    /// Reports every keepalive PING's round trip to `observer` from now on.
    pub fn observe_round_trips(&self, observer: RoundTripObserver) {
        *self.shared.round_trip_observer.borrow_mut() = Some(observer);
    }

    /// Adds peer `id` reachable at `urls` (`http://host:port`, tried in turn) and starts its
    /// task; for a known peer this is [`PeerTransport::update_peer`]. Errors: `SelfPeer`,
    /// `NoUrls`, `InvalidUrl` (naming the URL), `ShutDown`.
    pub fn add_peer(&self, id: u64, urls: Vec<String>) -> Result<(), PeerError> {
        let shared = &self.shared;
        if shared.shutdown.is_triggered() {
            return Err(PeerError::ShutDown);
        }
        if id == shared.identity.member_id {
            return Err(PeerError::SelfPeer(id));
        }
        let parsed = parse_urls(id, &urls, self.shared.tls.is_some())?;
        if shared.peers.borrow().contains_key(&id) {
            return self.update_peer(id, urls);
        }
        let peer = Rc::new(Peer {
            id,
            urls: RefCell::new(parsed),
            queue: RefCell::new(VecDeque::new()),
            queued_bytes: Cell::new(0),
            queued: Notify::default(),
            queue_full_logged: Cell::new(false),
            link: RefCell::new(None),
            health: Cell::new(Health::Unknown),
            status: RefCell::new(PeerStatus::default()),
            changed: Notify::default(),
            redial: Notify::default(),
            stop: Shutdown::new(),
        });
        shared.peers.borrow_mut().insert(id, peer.clone());
        shared.tasks_running.set(shared.tasks_running.get() + 1);
        let task_shared = shared.clone();
        glommio::spawn_local(async move {
            run_peer(&peer, &task_shared).await;
            task_shared
                .tasks_running
                .set(task_shared.tasks_running.get() - 1);
            task_shared.tasks_changed.notify();
        })
        .detach();
        Ok(())
    }

    /// Replaces the URLs of peer `id` (a membership update). If they differ, the current
    /// connection is closed and the task dials the new URLs at once. Errors: `UnknownPeer`,
    /// `NoUrls`, `InvalidUrl`.
    pub fn update_peer(&self, id: u64, urls: Vec<String>) -> Result<(), PeerError> {
        let parsed = parse_urls(id, &urls, self.shared.tls.is_some())?;
        let peer = self.peer(id).ok_or(PeerError::UnknownPeer(id))?;
        if *peer.urls.borrow() == parsed {
            return Ok(());
        }
        tracing::info!(peer_id = %id_hex(id), ?urls, "peer: URLs updated");
        *peer.urls.borrow_mut() = parsed;
        peer.redial.notify();
        Ok(())
    }

    /// Removes peer `id`: its task closes the connection and ends; queued messages are
    /// dropped and in-flight snapshots and calls to it fail. Unknown IDs are ignored.
    pub fn remove_peer(&self, id: u64) {
        let Some(peer) = self.shared.peers.borrow_mut().remove(&id) else {
            return;
        };
        self.shared.unreachable.borrow_mut().remove(&id);
        peer.stop.trigger();
        peer.changed.notify();
    }

    /// Queues a Raft message (opaque bytes) for peer `to`; never waits. When the peer is not
    /// connected or its queue is full the message is dropped, the peer is reported by
    /// [`PeerTransport::take_unreachable`], and `NotConnected`/`QueueFull` is returned (Raft
    /// retransmits; etcd's rafthttp drops the same way). Other errors: `MessageTooLarge`
    /// (over `message_bytes_max`), `UnknownPeer`, `ShutDown`.
    pub fn send(&self, to: u64, message: Bytes) -> Result<(), PeerError> {
        let shared = &self.shared;
        let limits = &shared.limits;
        if message.len() > limits.message_bytes_max {
            return Err(PeerError::MessageTooLarge {
                to,
                bytes: message.len(),
                max: limits.message_bytes_max,
            });
        }
        if shared.shutdown.is_triggered() {
            return Err(PeerError::ShutDown);
        }
        let peer = self.peer(to).ok_or(PeerError::UnknownPeer(to))?;
        if !peer.is_connected() {
            peer.drop_message(shared);
            return Err(PeerError::NotConnected(to));
        }
        let full = peer.queue.borrow().len() >= limits.queue_messages_max
            || peer.queued_bytes.get() + message.len() > limits.queue_bytes_max;
        if full {
            if !peer.queue_full_logged.replace(true) {
                tracing::warn!(
                    peer_id = %id_hex(to),
                    queue_messages_max = limits.queue_messages_max,
                    queue_bytes_max = limits.queue_bytes_max,
                    "peer: outgoing queue is full, dropping Raft messages (the peer or the network is slow)"
                );
            }
            peer.drop_message(shared);
            return Err(PeerError::QueueFull(to));
        }
        let was_empty = {
            let mut queue = peer.queue.borrow_mut();
            queue.push_back(message.clone());
            queue.len() == 1
        };
        peer.queued_bytes
            .set(peer.queued_bytes.get() + message.len());
        if was_empty {
            peer.queued.notify();
        }
        Ok(())
    }

    /// The peers that dropped messages or lost their connection since the last call, in
    /// ascending ID order; the server passes each to Raft's `report_unreachable`.
    pub fn take_unreachable(&self) -> Vec<u64> {
        std::mem::take(&mut *self.shared.unreachable.borrow_mut())
            .into_iter()
            .collect()
    }

    /// The peers whose last answer refused this member as not a member of the cluster
    /// (etcd's removed member learns its removal the same way: peers answer 410 Gone).
    pub fn refused_as_non_member(&self) -> Vec<u64> {
        self.shared
            .refused_as_non_member
            .borrow()
            .iter()
            .copied()
            .collect()
    }

    /// Whether the Raft stream to peer `id` is open (`false` for unknown peers).
    pub fn is_connected(&self, id: u64) -> bool {
        self.peer(id).is_some_and(|peer| peer.is_connected())
    }

    /// What is known about peer `id`, or `None` if it is not a peer.
    pub fn status(&self, id: u64) -> Option<PeerStatus> {
        self.peer(id).map(|peer| peer.status.borrow().clone())
    }

    /// A future that resolves at the next change of peer `id`'s connection state or
    /// `last_error`, or its removal (at once for an unknown peer). Changes after this call
    /// are not missed even if the future is first polled later.
    pub fn status_changed(&self, id: u64) -> impl Future<Output = ()> + 'static {
        let changed = self.peer(id).map(|peer| peer.changed.changed());
        async move {
            if let Some(changed) = changed {
                changed.await;
            }
        }
    }

    /// Sends a snapshot to peer `to` on a stream of its own: `meta` first (at most
    /// `message_bytes_max`), then every chunk of `chunks` (each at most
    /// `snapshot_chunk_bytes_max`), waiting for HTTP/2 flow-control capacity before each
    /// piece, so a slow receiver slows the sender and memory stays bounded. Resolves when the
    /// receiver's handler answered. Errors (text): not connected within `request_timeout`,
    /// a chunk too large or failing at the source (the stream is reset), the connection
    /// broke, the peer was removed, or the receiver's failure ("peer 2 failed to receive
    /// the snapshot: REASON").
    pub async fn send_snapshot(
        &self,
        to: u64,
        meta: Bytes,
        chunks: LocalBoxStream<'static, Result<Bytes, String>>,
    ) -> Result<(), String> {
        let shared = &self.shared;
        let limits = &shared.limits;
        let peer = self
            .peer(to)
            .ok_or_else(|| PeerError::UnknownPeer(to).to_string())?;
        if meta.len() > limits.message_bytes_max {
            return Err(format!(
                "snapshot meta of {} bytes exceeds message_bytes_max {}",
                meta.len(),
                limits.message_bytes_max
            ));
        }
        let link = with_timeout(limits.request_timeout, peer.wait_link())
            .await
            .ok_or_else(|| {
                format!(
                    "peer {} is not connected (waited {:?})",
                    id_hex(to),
                    limits.request_timeout
                )
            })??;
        let transfer = transfer_snapshot(shared, to, link, meta, chunks);
        let stop = peer.stop.wait();
        let result = match select(pin!(transfer), pin!(stop)).await {
            Either::Left((result, _)) => result,
            Either::Right(((), _)) => Err(format!(
                "peer {} was removed or the transport shut down",
                id_hex(to)
            )),
        };
        result
    }

    /// A unary call: `method` (1..=128 characters of `[A-Za-z0-9._-]`) with an opaque
    /// `body` to peer `to`; the answer's bytes or the receiver's status. Waits for the
    /// connection if needed; the whole call is bounded by `request_timeout` (sent as
    /// `grpc-timeout` too), after which it fails with DEADLINE_EXCEEDED "context deadline
    /// exceeded". Other errors: INVALID_ARGUMENT (method name), RESOURCE_EXHAUSTED (body or
    /// answer over `message_bytes_max`), UNAVAILABLE (unknown or removed peer, broken
    /// connection), and whatever the receiver's handler returned.
    pub async fn request(&self, to: u64, method: &str, body: Bytes) -> Result<Bytes, Status> {
        check_method_name(method)?;
        let shared = &self.shared;
        let limits = &shared.limits;
        if body.len() > limits.message_bytes_max {
            return Err(Status::new(
                Code::ResourceExhausted,
                format!(
                    "grpc: trying to send message larger than max ({} vs. {})",
                    body.len(),
                    limits.message_bytes_max
                ),
            ));
        }
        let peer = self.peer(to).ok_or_else(|| {
            Status::new(Code::Unavailable, PeerError::UnknownPeer(to).to_string())
        })?;
        let started = Instant::now();
        let call = async {
            let link = peer
                .wait_link()
                .await
                .map_err(|message| Status::new(Code::Unavailable, message))?;
            let remaining = limits.request_timeout.saturating_sub(started.elapsed());
            let path = format!("{CALL_PATH_PREFIX}{method}");
            let request = build_request(&link.url, &path, shared.identity, to, Some(remaining))
                .map_err(|message| Status::new(Code::Internal, message))?;
            let mut send_request = link
                .send_request
                .ready()
                .await
                .map_err(|e| status_from_h2(&e))?;
            let (response, mut stream) = send_request
                .send_request(request, false)
                .map_err(|e| status_from_h2(&e))?;
            stream
                .send_data(encode_message(&body), true)
                .map_err(|e| status_from_h2(&e))?;
            let response = response.await.map_err(|e| status_from_h2(&e))?;
            let answer = read_single_response(response, limits.message_bytes_max).await;
            drop(stream);
            answer
        };
        let stop = peer.stop.wait();
        let call = async {
            match select(pin!(call), pin!(stop)).await {
                Either::Left((result, _)) => result,
                Either::Right(((), _)) => Err(Status::new(
                    Code::Unavailable,
                    format!("peer {} was removed or the transport shut down", id_hex(to)),
                )),
            }
        };
        with_timeout(limits.request_timeout, call)
            .await
            .unwrap_or_else(|| Err(Status::deadline_exceeded()))
    }

    /// Stops every peer task (connections close, queued messages are dropped) and refuses
    /// further use. Idempotent; [`PeerTransport::join`] waits for the tasks to end.
    pub fn shutdown(&self) {
        self.shared.shutdown.trigger();
        for peer in self.shared.peers.borrow().values() {
            peer.stop.trigger();
            peer.changed.notify();
        }
    }

    /// Resolves once no peer task is running (after [`PeerTransport::shutdown`], or when
    /// every peer was removed).
    pub async fn join(&self) {
        loop {
            let changed = self.shared.tasks_changed.changed();
            if self.shared.tasks_running.get() == 0 {
                return;
            }
            changed.await;
        }
    }

    /// Peer tasks still running (removed peers' tasks until they have ended).
    pub fn tasks_running(&self) -> usize {
        self.shared.tasks_running.get()
    }

    fn peer(&self, id: u64) -> Option<Rc<Peer>> {
        self.shared.peers.borrow().get(&id).cloned()
    }
}

impl Drop for PeerTransport {
    /// Dropping the transport stops its tasks, as [`PeerTransport::shutdown`].
    fn drop(&mut self) {
        self.shutdown();
    }
}

impl std::fmt::Debug for PeerTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerTransport")
            .field("identity", &self.shared.identity)
            .field("peers", &self.shared.peers.borrow().len())
            .finish_non_exhaustive()
    }
}

fn parse_urls(id: u64, urls: &[String], tls: bool) -> Result<Vec<PeerUrl>, PeerError> {
    if urls.is_empty() {
        return Err(PeerError::NoUrls(id));
    }
    urls.iter()
        .map(|url| {
            let parsed = PeerUrl::parse(url).map_err(PeerError::InvalidUrl)?;
            if parsed.tls && !tls {
                return Err(PeerError::InvalidUrl(format!(
                    "invalid peer URL {url:?}: https needs the peer TLS settings (--peer-cert-file and --peer-key-file, or --peer-auto-tls)"
                )));
            }
            Ok(parsed)
        })
        .collect()
}

/// `f`, or `None` if `duration` passes first.
async fn with_timeout<F: Future>(duration: Duration, f: F) -> Option<F::Output> {
    let timer = glommio::timer::sleep(duration);
    match select(pin!(f), pin!(timer)).await {
        Either::Left((value, _)) => Some(value),
        Either::Right(((), _)) => None,
    }
}

/// How one connection attempt ended.
enum SessionEnd {
    /// Removed or shut down.
    Stopped,
    /// The URLs changed: dial again at once.
    Redial,
    /// The attempt or the connection failed.
    Failed(String),
}

/// The peer's task: dial, serve the connection until it breaks, back off, repeat.
async fn run_peer(peer: &Rc<Peer>, shared: &Shared) {
    let limits = &shared.limits;
    let mut backoff = limits.backoff_min;
    let mut url_index = 0usize;
    while !peer.stop.is_triggered() {
        let url = {
            let urls = peer.urls.borrow();
            urls[url_index % urls.len()].clone()
        };
        let end = {
            let redial = peer.redial.changed();
            let stop = peer.stop.wait();
            let session = session(peer, shared, &url);
            match select(pin!(session), select(pin!(stop), pin!(redial))).await {
                Either::Left((error, _)) => SessionEnd::Failed(error),
                Either::Right((Either::Left(_), _)) => SessionEnd::Stopped,
                Either::Right((Either::Right(_), _)) => SessionEnd::Redial,
            }
        };
        let was_connected = peer.is_connected();
        match end {
            SessionEnd::Stopped => {
                peer.on_disconnected(shared, &url, None);
                break;
            }
            SessionEnd::Redial => {
                peer.on_disconnected(shared, &url, None);
                url_index = 0;
                backoff = limits.backoff_min;
                continue;
            }
            SessionEnd::Failed(error) => peer.on_disconnected(shared, &url, Some(error)),
        }
        if was_connected {
            backoff = limits.backoff_min;
        } else {
            url_index = url_index.wrapping_add(1);
        }
        let redial = peer.redial.changed();
        let stop = peer.stop.wait();
        let pause = glommio::timer::sleep(backoff);
        if let Either::Right((Either::Right(_), _)) =
            select(pin!(pause), select(pin!(stop), pin!(redial))).await
        {
            url_index = 0;
            backoff = limits.backoff_min;
            continue;
        }
        if !was_connected {
            backoff = (backoff * 2).min(limits.backoff_max);
        }
    }
    *peer.link.borrow_mut() = None;
}

/// One connection: dial and handshake within `dial_timeout`, open the Raft stream and wait
/// for its acknowledgement, then write queued messages until something fails. Returns why
/// it ended. The connection closes when the returned future is dropped.
async fn session(peer: &Peer, shared: &Shared, url: &PeerUrl) -> String {
    let limits = &shared.limits;
    let dialed = with_timeout(limits.dial_timeout, dial(url, shared.tls.as_deref())).await;
    let (send_request, mut connection) = match dialed {
        Some(Ok(dialed)) => dialed,
        Some(Err(error)) => return error,
        None => {
            return format!(
                "dialing {} timed out after {:?}",
                url.text, limits.dial_timeout
            )
        }
    };
    let ping_pong = connection.ping_pong();
    let driver = async move {
        match connection.await {
            Ok(()) => format!("connection to {} closed", url.text),
            Err(error) => format!("connection to {} failed: {error}", url.text),
        }
    };
    let work = async move {
        let opened = with_timeout(
            limits.dial_timeout,
            open_raft_stream(send_request.clone(), url, shared, peer.id),
        )
        .await;
        let (mut stream, mut body) = match opened {
            Some(Ok(opened)) => opened,
            Some(Err(error)) => return error,
            None => {
                return format!(
                    "the Raft stream to {} was not accepted within {:?}",
                    url.text, limits.dial_timeout
                )
            }
        };
        peer.on_connected(Link {
            send_request,
            url: url.clone(),
        });
        let tasks: Vec<LocalBoxFuture<'_, String>> = vec![
            write_raft(peer, &mut stream).boxed_local(),
            async {
                match read_trailer_status(&mut body).await {
                    Ok(()) => format!("{} ended the Raft stream", url.text),
                    Err(status) => {
                        format!("{} ended the Raft stream: {}", url.text, status.message)
                    }
                }
            }
            .boxed_local(),
            keepalive(
                ping_pong,
                limits.keepalive_interval,
                limits.keepalive_timeout,
                |round_trip| {
                    if let Some(observer) = shared.round_trip_observer.borrow().as_ref() {
                        observer(peer.id, round_trip);
                    }
                },
            )
            .boxed_local(),
        ];
        let (error, _, _) = select_all(tasks).await;
        error
    };
    match select(pin!(driver), pin!(work)).await {
        Either::Left((error, _)) | Either::Right((error, _)) => error,
    }
}

/// TCP connect (names resolved on glommio's blocking pool), the TLS handshake for
/// `https://` URLs, and the HTTP/2 client handshake.
async fn dial(
    url: &PeerUrl,
    tls: Option<&TlsConnector>,
) -> Result<
    (
        SendRequest<Bytes>,
        h2::client::Connection<MaybeTls<tokio_util::compat::Compat<TcpStream>>, Bytes>,
    ),
    String,
> {
    let addrs = match url.socket_addr() {
        Some(addr) => vec![addr],
        None => resolve(url).await?,
    };
    let mut failures = Vec::new();
    let mut connected = None;
    for addr in addrs {
        match TcpStream::connect(addr).await {
            Ok(stream) => {
                connected = Some(stream);
                break;
            }
            Err(error) => failures.push(format!("{addr}: {error}")),
        }
    }
    let Some(stream) = connected else {
        return Err(format!(
            "dialing {} failed: {}",
            url.text,
            failures.join("; ")
        ));
    };
    if let Err(error) = stream.set_nodelay(true) {
        tracing::debug!(%error, "peer: TCP_NODELAY failed");
    }
    let mut builder = h2::client::Builder::new();
    builder
        .initial_window_size(H2_STREAM_WINDOW_BYTES)
        .initial_connection_window_size(H2_CONNECTION_WINDOW_BYTES)
        .max_header_list_size(H2_HEADER_LIST_BYTES_MAX)
        .max_send_buffer_size(H2_SEND_BUFFER_BYTES)
        .enable_push(false);
    let io = match (url.tls, tls) {
        (false, _) => MaybeTls::Plain(stream.compat()),
        (true, Some(tls)) => match tls.connect(&url.host, stream.compat()).await {
            Ok(io) => MaybeTls::Tls(Box::new(io)),
            Err(error) => return Err(format!("TLS handshake with {} failed: {error}", url.text)),
        },
        (true, None) => return Err(format!("{} needs TLS, which is not configured", url.text)),
    };
    builder
        .handshake(io)
        .await
        .map_err(|error| format!("HTTP/2 handshake with {} failed: {error}", url.text))
}

/// Most addresses of one host name tried per dial.
const RESOLVED_ADDRS_MAX: usize = 8;

/// Resolves a host name off the executor thread (getaddrinfo blocks); at most
/// `RESOLVED_ADDRS_MAX` addresses, in the resolver's order.
async fn resolve(url: &PeerUrl) -> Result<Vec<SocketAddr>, String> {
    let (host, port) = (url.host.clone(), url.port);
    let resolved = glommio::executor()
        .spawn_blocking(move || {
            (host.as_str(), port)
                .to_socket_addrs()
                .map(|addrs| addrs.take(RESOLVED_ADDRS_MAX).collect::<Vec<_>>())
        })
        .await;
    match resolved {
        Ok(addrs) if addrs.is_empty() => Err(format!("resolving {}: no address", url.text)),
        Ok(addrs) => Ok(addrs),
        Err(error) => Err(format!("resolving {} failed: {error}", url.text)),
    }
}

/// Opens the Raft stream and waits for the receiver's acknowledgement (one empty
/// message). Errors carry the receiver's refusal, e.g. a cluster ID mismatch.
async fn open_raft_stream(
    send_request: SendRequest<Bytes>,
    url: &PeerUrl,
    shared: &Shared,
    to: u64,
) -> Result<(SendStream<Bytes>, RecvStream), String> {
    let identity = shared.identity;
    let h2_failed =
        |error: h2::Error| format!("opening the Raft stream to {} failed: {error}", url.text);
    let refused = |status: Status| {
        let mut non_member = shared.refused_as_non_member.borrow_mut();
        if status.code == Code::PermissionDenied {
            non_member.insert(to);
        } else {
            non_member.remove(&to);
        }
        format!("{} refused the Raft stream: {}", url.text, status.message)
    };
    let mut send_request = send_request.ready().await.map_err(h2_failed)?;
    let request = build_request(url, RAFT_PATH, identity, to, None)?;
    let (response, stream) = send_request
        .send_request(request, false)
        .map_err(h2_failed)?;
    let response = response.await.map_err(h2_failed)?;
    check_response_head(&response).map_err(refused)?;
    let mut body = response.into_body();
    let mut decoder = MessageDecoder::new(0);
    match next_message(&mut body, &mut decoder).await {
        Some(Ok(_)) => {
            shared.refused_as_non_member.borrow_mut().remove(&to);
            Ok((stream, body))
        }
        Some(Err(status)) => Err(refused(status)),
        None => Err(match read_trailer_status(&mut body).await {
            Err(status) => refused(status),
            Ok(()) => format!("{} ended the Raft stream before accepting it", url.text),
        }),
    }
}

/// Drains the peer's queue into the Raft stream, batch by batch, until sending fails.
async fn write_raft(peer: &Peer, stream: &mut SendStream<Bytes>) -> String {
    loop {
        let queued = peer.queued.changed();
        let Some((framed, count, bytes)) = peer.take_batch() else {
            queued.await;
            continue;
        };
        if let Err(error) = send_all(stream, framed).await {
            return format!("sending Raft messages failed: {error}");
        }
        let mut status = peer.status.borrow_mut();
        status.sent_messages += count;
        status.sent_bytes += bytes;
    }
}

/// Sends an HTTP/2 PING every `interval`; ends when one is not answered within `timeout`
/// (a peer that vanished without closing the connection). Each answer's round trip goes to
/// `on_round_trip`.
async fn keepalive(
    ping_pong: Option<PingPong>,
    interval: Duration,
    timeout: Duration,
    on_round_trip: impl Fn(Duration),
) -> String {
    let Some(mut ping_pong) = ping_pong else {
        return futures::future::pending().await;
    };
    loop {
        glommio::timer::sleep(interval).await;
        let sent = std::time::Instant::now();
        match with_timeout(timeout, ping_pong.ping(Ping::opaque())).await {
            Some(Ok(_)) => on_round_trip(sent.elapsed()),
            Some(Err(error)) => return format!("HTTP/2 PING failed: {error}"),
            None => return format!("no answer to an HTTP/2 PING within {timeout:?}"),
        }
    }
}

/// Sends `data` on `stream`, waiting for flow-control capacity for each piece.
async fn send_all(stream: &mut SendStream<Bytes>, mut data: Bytes) -> Result<(), h2::Error> {
    while !data.is_empty() {
        stream.reserve_capacity(data.len());
        let capacity = std::future::poll_fn(|cx| loop {
            let capacity = stream.capacity();
            if capacity > 0 {
                return std::task::Poll::Ready(Ok(capacity));
            }
            match stream.poll_capacity(cx) {
                std::task::Poll::Ready(Some(Ok(_))) => continue,
                std::task::Poll::Ready(Some(Err(error))) => {
                    return std::task::Poll::Ready(Err(error))
                }
                std::task::Poll::Ready(None) => {
                    return std::task::Poll::Ready(Err(h2::Error::from(h2::Reason::STREAM_CLOSED)))
                }
                std::task::Poll::Pending => return std::task::Poll::Pending,
            }
        })
        .await?;
        let piece = data.split_to(capacity.min(data.len()));
        stream.send_data(piece, false)?;
    }
    Ok(())
}

/// Sends one length-prefixed message: copied behind its prefix when small, else the
/// prefix and the caller's buffer without a copy.
async fn send_message(stream: &mut SendStream<Bytes>, message: Bytes) -> Result<(), h2::Error> {
    if message.len() <= COALESCE_BYTES_MAX {
        send_all(stream, encode_message(&message)).await
    } else {
        send_all(
            stream,
            Bytes::copy_from_slice(&encode_message_header(message.len())),
        )
        .await?;
        send_all(stream, message).await
    }
}

/// The snapshot stream: meta and chunks out, the receiver's answer back. The answer is
/// polled first, so the receiver's failure wins over the send error it causes.
async fn transfer_snapshot(
    shared: &Shared,
    to: u64,
    link: Link,
    meta: Bytes,
    mut chunks: LocalBoxStream<'static, Result<Bytes, String>>,
) -> Result<(), String> {
    let limits = &shared.limits;
    let url = &link.url;
    let h2_failed = |error: h2::Error| format!("snapshot stream to {} failed: {error}", url.text);
    let request = build_request(url, SNAPSHOT_PATH, shared.identity, to, None)?;
    let mut send_request = link.send_request.ready().await.map_err(h2_failed)?;
    let (response, mut stream) = send_request
        .send_request(request, false)
        .map_err(h2_failed)?;
    let chunk_bytes_max = limits.snapshot_chunk_bytes_max;
    // Err(Ok(reason)): the source failed or a chunk is too large (the stream is reset);
    // Err(Err(error)): the stream broke, maybe because the receiver answered.
    let sending = async {
        send_message(&mut stream, meta)
            .await
            .map_err(|e| Err(h2_failed(e)))?;
        while let Some(chunk) = chunks.next().await {
            let chunk = match chunk {
                Ok(chunk) if chunk.len() > chunk_bytes_max => Err(format!(
                    "snapshot chunk of {} bytes exceeds snapshot_chunk_bytes_max {chunk_bytes_max}",
                    chunk.len()
                )),
                Ok(chunk) => Ok(chunk),
                Err(error) => Err(format!("reading the snapshot failed: {error}")),
            };
            match chunk {
                Ok(chunk) => send_message(&mut stream, chunk)
                    .await
                    .map_err(|e| Err(h2_failed(e)))?,
                Err(reason) => {
                    stream.send_reset(h2::Reason::CANCEL);
                    return Err(Ok(reason));
                }
            }
        }
        stream
            .send_data(Bytes::new(), true)
            .map_err(|e| Err(h2_failed(e)))
    };
    let answer = async {
        let response = response.await.map_err(h2_failed)?;
        read_single_response(response, limits.message_bytes_max)
            .await
            .map(|_| ())
            .map_err(|status| {
                format!(
                    "peer {} failed to receive the snapshot: {}",
                    id_hex(to),
                    status.message
                )
            })
    };
    let mut answer = pin!(answer);
    let result = match select(answer.as_mut(), pin!(sending)).await {
        Either::Left((answer, _)) => answer,
        Either::Right((Ok(()), _)) => answer.await,
        Either::Right((Err(Ok(reason)), _)) => Err(reason),
        Either::Right((Err(Err(error)), _)) => {
            // The receiver may have answered already (its failure is what broke the stream).
            match answer.now_or_never() {
                Some(Err(reason)) => Err(reason),
                _ => Err(error),
            }
        }
    };
    result
}
