//! The peer transport end to end: `PeerTransport` (sender) against `serve_peers`
//! (receiver) on loopback sockets, both on one glommio executor per test.

use std::cell::{Cell, RefCell};
use std::future::{poll_fn, Future};
use std::net::SocketAddr;
use std::pin::pin;
use std::rc::Rc;
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::future::{select, Either, LocalBoxFuture};
use futures::{AsyncReadExt, FutureExt, StreamExt};
use glommio::task::JoinHandle;
use net::peer::{
    serve_peers, PeerError, PeerHandler, PeerIdentity, PeerLimits, PeerStatus, PeerTransport,
    SnapshotChunks,
};
use net::{Code, Shutdown, Status};

/// Longest wait for an event another task or the network produces; a test that hits it
/// fails with the name of what it waited for.
const WAIT_MAX: Duration = Duration::from_secs(20);
const CLUSTER: u64 = 0xc1;
const SENDER: PeerIdentity = PeerIdentity {
    member_id: 1,
    cluster_id: CLUSTER,
};
const RECEIVER: PeerIdentity = PeerIdentity {
    member_id: 2,
    cluster_id: CLUSTER,
};

fn run<F: Future<Output = ()>>(test: F) {
    glommio::LocalExecutorBuilder::default()
        .make()
        .expect("glommio executor")
        .run(test);
}

async fn with_timeout<F: Future>(duration: Duration, f: F) -> Option<F::Output> {
    match select(pin!(f), pin!(glommio::timer::sleep(duration))).await {
        Either::Left((value, _)) => Some(value),
        Either::Right(_) => None,
    }
}

/// A change signal for the test handler's records.
#[derive(Default)]
struct Signal {
    generation: Cell<u64>,
    wakers: RefCell<Vec<Waker>>,
}

impl Signal {
    fn notify(&self) {
        self.generation.set(self.generation.get() + 1);
        for waker in self.wakers.take() {
            waker.wake();
        }
    }

    /// Waits until `condition` holds, re-checking after every change.
    async fn wait_until(&self, what: &str, condition: impl Fn() -> bool) {
        let deadline = Instant::now() + WAIT_MAX;
        while !condition() {
            let seen = self.generation.get();
            let changed = poll_fn(|cx| {
                if self.generation.get() != seen {
                    return Poll::Ready(());
                }
                self.wakers.borrow_mut().push(cx.waker().clone());
                Poll::Pending
            });
            let left = deadline.saturating_duration_since(Instant::now());
            if with_timeout(left, changed).await.is_none() {
                panic!("timed out waiting for {what}");
            }
        }
    }
}

/// Waits until peer `id`'s status satisfies `condition`; returns that status.
async fn wait_status(
    transport: &PeerTransport,
    id: u64,
    what: &str,
    condition: impl Fn(&PeerStatus) -> bool,
) -> PeerStatus {
    let deadline = Instant::now() + WAIT_MAX;
    loop {
        let changed = transport.status_changed(id);
        let status = transport.status(id).expect("a known peer");
        if condition(&status) {
            return status;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if with_timeout(left, changed).await.is_none() {
            panic!("timed out waiting for {what}; last status {status:?}");
        }
    }
}

async fn wait_connected(transport: &PeerTransport, id: u64) -> PeerStatus {
    wait_status(transport, id, "the peer to connect", |s| s.connected).await
}

/// How the test handler treats snapshots.
#[derive(Clone, Copy, Default)]
enum SnapshotPlan {
    /// Read every chunk, checking the lead of the sender (`pulled` chunks) over the chunks
    /// read; pause once after chunk `pause_at` so that an unbounded sender would run ahead.
    #[default]
    ReadAll,
    /// Read `n` chunks, then fail with "disk full".
    FailAfter(usize),
}

/// One received snapshot: from, meta, data bytes read, the handler's outcome.
type SnapshotRecord = (u64, Bytes, usize, Result<(), String>);

#[derive(Default)]
struct Recorder {
    /// Raft messages as delivered: (from, bytes).
    messages: RefCell<Vec<(u64, Bytes)>>,
    /// Number of `on_raft_messages` calls.
    deliveries: Cell<usize>,
    refused_member: Cell<Option<u64>>,
    snapshot_plan: Cell<SnapshotPlan>,
    /// Chunks pulled from the sender's source (shared with the sending side of the test).
    pulled: Rc<Cell<usize>>,
    /// Snapshot chunks read by the handler, all snapshots together.
    chunks_read: Cell<usize>,
    /// Largest `pulled - read` seen by the handler, in chunks.
    lead_max: Cell<usize>,
    /// (from, meta, bytes read, outcome) of every snapshot.
    snapshots: RefCell<Vec<SnapshotRecord>>,
    changed: Signal,
}

struct TestHandler(Rc<Recorder>);

struct Cancelled {
    recorder: Rc<Recorder>,
    from: u64,
    meta: Bytes,
    bytes: Rc<Cell<usize>>,
    armed: bool,
}

impl Drop for Cancelled {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        self.recorder.snapshots.borrow_mut().push((
            self.from,
            self.meta.clone(),
            self.bytes.get(),
            Err("cancelled".to_string()),
        ));
        self.recorder.changed.notify();
    }
}

/// Chunk index after which the slow receiver pauses.
const PAUSE_AT_CHUNK: usize = 100;
/// How long it pauses; an unbounded sender would push the whole snapshot meanwhile.
const PAUSE: Duration = Duration::from_millis(300);

impl PeerHandler for TestHandler {
    fn http(&self, request: &net::HttpRequest) -> net::HttpResponse {
        match request.path.as_str() {
            "/members" => net::HttpResponse {
                status: 200,
                content_type: "application/json".into(),
                body: Bytes::from_static(b"[]"),
                headers: vec![("X-Etcd-Cluster-ID".into(), "c1".into())],
            },
            _ => net::HttpResponse::text(404, "404 page not found\n"),
        }
    }

    fn accepts(&self, from: u64) -> bool {
        self.0.refused_member.get() != Some(from)
    }

    fn on_raft_messages(&self, from: u64, messages: Vec<Bytes>) {
        assert!(!messages.is_empty());
        self.0
            .messages
            .borrow_mut()
            .extend(messages.into_iter().map(|m| (from, m)));
        self.0.deliveries.set(self.0.deliveries.get() + 1);
        self.0.changed.notify();
    }

    fn on_snapshot(
        &self,
        from: u64,
        meta: Bytes,
        mut chunks: SnapshotChunks,
    ) -> LocalBoxFuture<'static, Result<(), String>> {
        let recorder = self.0.clone();
        async move {
            let plan = recorder.snapshot_plan.get();
            let mut read_chunks = 0usize;
            let bytes = Rc::new(Cell::new(0usize));
            // Records the snapshot as cancelled if the future is dropped before it ends.
            let mut guard = Cancelled {
                recorder: recorder.clone(),
                from,
                meta: meta.clone(),
                bytes: bytes.clone(),
                armed: true,
            };
            let outcome = loop {
                if let SnapshotPlan::FailAfter(n) = plan {
                    if read_chunks == n {
                        break Err("disk full".to_string());
                    }
                }
                match chunks.next().await {
                    None => break Ok(()),
                    Some(Err(error)) => break Err(error),
                    Some(Ok(chunk)) => {
                        assert!(chunk.iter().all(|&b| b == read_chunks as u8));
                        read_chunks += 1;
                        bytes.set(bytes.get() + chunk.len());
                        recorder.chunks_read.set(recorder.chunks_read.get() + 1);
                        recorder.changed.notify();
                        let lead = recorder.pulled.get().saturating_sub(read_chunks);
                        recorder.lead_max.set(recorder.lead_max.get().max(lead));
                        if read_chunks == PAUSE_AT_CHUNK {
                            glommio::timer::sleep(PAUSE).await;
                            let lead = recorder.pulled.get().saturating_sub(read_chunks);
                            recorder.lead_max.set(recorder.lead_max.get().max(lead));
                        }
                    }
                }
            };
            guard.armed = false;
            recorder
                .snapshots
                .borrow_mut()
                .push((from, meta, bytes.get(), outcome.clone()));
            recorder.changed.notify();
            outcome
        }
        .boxed_local()
    }

    fn on_request(
        &self,
        from: u64,
        method: String,
        body: Bytes,
    ) -> LocalBoxFuture<'static, Result<Bytes, Status>> {
        async move {
            match method.as_str() {
                "Echo" => Ok(body),
                "WhoAmI" => Ok(Bytes::from(from.to_be_bytes().to_vec())),
                "LeaseTimeToLive" => Err(Status::new(
                    Code::NotFound,
                    "etcdserver: requested lease not found",
                )),
                "Slow" => {
                    glommio::timer::sleep(Duration::from_secs(3600)).await;
                    Ok(body)
                }
                other => Err(Status::new(Code::Unimplemented, format!("no {other}"))),
            }
        }
        .boxed_local()
    }
}

/// A receiving member serving on a fresh loopback port (or `addr`).
struct Receiver {
    addr: SocketAddr,
    recorder: Rc<Recorder>,
    shutdown: Shutdown,
    task: JoinHandle<std::io::Result<()>>,
}

impl Receiver {
    fn start(identity: PeerIdentity, limits: PeerLimits, addr: Option<SocketAddr>) -> Receiver {
        let addr = addr.unwrap_or_else(|| "127.0.0.1:0".parse().unwrap());
        let listener = net::bind_reuseport(addr).expect("bind");
        let addr = listener.local_addr().unwrap();
        let recorder = Rc::new(Recorder::default());
        let shutdown = Shutdown::new();
        let handler = Rc::new(TestHandler(recorder.clone()));
        let task = glommio::spawn_local(serve_peers(
            listener,
            identity,
            handler,
            limits,
            shutdown.clone(),
        ))
        .detach();
        Receiver {
            addr,
            recorder,
            shutdown,
            task,
        }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Shuts the listener down and waits until every connection ended.
    async fn stop(self) {
        self.shutdown.trigger();
        let served = with_timeout(WAIT_MAX, self.task)
            .await
            .expect("serve_peers ended after shutdown");
        served
            .expect("the task ran")
            .expect("serve_peers ended cleanly");
    }
}

async fn stop_transport(transport: &PeerTransport) {
    transport.shutdown();
    with_timeout(WAIT_MAX, transport.join())
        .await
        .expect("peer tasks ended after shutdown");
    assert_eq!(transport.tasks_running(), 0);
}

fn fast_limits() -> PeerLimits {
    PeerLimits {
        backoff_min: Duration::from_millis(5),
        backoff_max: Duration::from_millis(40),
        ..PeerLimits::default()
    }
}

/// Message `i`: its index (u64 BE), then `len - 8` bytes of `i as u8`.
fn numbered(i: u64, len: usize) -> Bytes {
    let mut message = i.to_be_bytes().to_vec();
    message.resize(len.max(8), i as u8);
    Bytes::from(message)
}

fn index_of(message: &Bytes) -> u64 {
    u64::from_be_bytes(message[..8].try_into().unwrap())
}

#[test]
fn messages_arrive_in_order_across_many_sends_and_batches() {
    run(async {
        let receiver = Receiver::start(RECEIVER, PeerLimits::default(), None);
        let transport = PeerTransport::new(SENDER, fast_limits());
        transport.add_peer(2, vec![receiver.url()]).unwrap();
        wait_connected(&transport, 2).await;

        let total = 20_000u64;
        let mut expected_bytes = 0u64;
        let mut sent = 0u64;
        while sent < total {
            // A burst of sends with no await in between: the writer batches them.
            let burst = 1 + sent % 500;
            for _ in 0..burst.min(total - sent) {
                // Mostly small messages, some larger than a DATA frame, one larger than
                // the stream window.
                let len = match sent {
                    7777 => 3 * 1024 * 1024,
                    i if i % 97 == 0 => 40_000,
                    i => 8 + (i as usize * 31) % 300,
                };
                transport.send(2, numbered(sent, len)).unwrap();
                expected_bytes += len as u64;
                sent += 1;
            }
            let recorder = &receiver.recorder;
            recorder
                .changed
                .wait_until("the burst to arrive", || {
                    recorder.messages.borrow().len() as u64 == sent
                })
                .await;
        }

        let messages = receiver.recorder.messages.borrow().clone();
        assert_eq!(messages.len() as u64, total);
        for (i, (from, message)) in messages.iter().enumerate() {
            assert_eq!(*from, 1);
            assert_eq!(index_of(message), i as u64);
            assert!(message[8..].iter().all(|&b| b == i as u8));
        }
        let deliveries = receiver.recorder.deliveries.get();
        assert!(
            deliveries > 1 && deliveries < total as usize,
            "{deliveries}"
        );
        let status = transport.status(2).unwrap();
        assert_eq!(status.sent_messages, total);
        assert_eq!(status.sent_bytes, expected_bytes);
        assert_eq!(status.dropped_messages, 0);
        assert_eq!(status.became_reachable, 1);
        assert_eq!(status.became_unreachable, 0);
        assert!(transport.take_unreachable().is_empty());

        stop_transport(&transport).await;
        assert_eq!(transport.send(2, numbered(0, 8)), Err(PeerError::ShutDown));
        receiver.stop().await;
    });
}

#[test]
fn frames_over_the_cap_are_refused() {
    run(async {
        let receiver_limits = PeerLimits {
            message_bytes_max: 64 * 1024,
            queue_bytes_max: 64 * 1024,
            snapshot_chunk_bytes_max: 64 * 1024,
            ..PeerLimits::default()
        };
        let receiver = Receiver::start(RECEIVER, receiver_limits, None);
        let sender_limits = PeerLimits {
            message_bytes_max: 1024 * 1024,
            ..fast_limits()
        };
        let transport = PeerTransport::new(SENDER, sender_limits);
        transport.add_peer(2, vec![receiver.url()]).unwrap();
        wait_connected(&transport, 2).await;

        // The sender's own cap: refused at once, nothing queued, not "unreachable".
        assert_eq!(
            transport.send(2, Bytes::from(vec![0u8; 1024 * 1024 + 1])),
            Err(PeerError::MessageTooLarge {
                to: 2,
                bytes: 1024 * 1024 + 1,
                max: 1024 * 1024
            })
        );
        assert!(transport.take_unreachable().is_empty());

        // The receiver's smaller cap: the stream is refused at the large frame; what came
        // before it is delivered, what came after it is not.
        transport.send(2, numbered(0, 100)).unwrap();
        transport.send(2, numbered(1, 100 * 1024)).unwrap();
        transport.send(2, numbered(2, 100)).unwrap();
        let status = wait_status(&transport, 2, "the refusal", |s| s.last_error.is_some()).await;
        let error = status.last_error.unwrap();
        assert!(
            error.contains("received message larger than max (102400 vs. 65536)"),
            "{error}"
        );
        assert_eq!(status.became_unreachable, 1);
        assert_eq!(transport.take_unreachable(), vec![2]);
        let indexes: Vec<u64> = receiver
            .recorder
            .messages
            .borrow()
            .iter()
            .map(|(_, m)| index_of(m))
            .collect();
        assert_eq!(indexes, vec![0]);

        // The sender reconnects and messages flow again.
        wait_status(&transport, 2, "the reconnect", |s| {
            s.connected && s.became_reachable == 2
        })
        .await;
        transport.send(2, numbered(3, 100)).unwrap();
        let recorder = &receiver.recorder;
        recorder
            .changed
            .wait_until("message 3", || recorder.messages.borrow().len() == 2)
            .await;
        assert_eq!(index_of(&recorder.messages.borrow()[1].1), 3);

        // A snapshot chunk over the receiver's snapshot_chunk_bytes_max: the handler's
        // stream ends with the error, and the sender hears of it.
        let source = futures::stream::iter([
            Ok(Bytes::from(vec![0u8; 1000])),
            Ok(Bytes::from(vec![1u8; 100 * 1024])),
        ]);
        let sent = transport
            .send_snapshot(2, Bytes::from_static(b"m"), source.boxed_local())
            .await;
        assert_eq!(
            sent,
            Err(
                "peer 2 failed to receive the snapshot: snapshot stream broken: \
                 grpc: received message larger than max (102400 vs. 65536)"
                    .to_string()
            )
        );
        let (_, _, bytes, _) = recorder.snapshots.borrow()[0].clone();
        assert_eq!(bytes, 1000);

        stop_transport(&transport).await;
        receiver.stop().await;
    });
}

#[test]
fn down_peer_drops_and_is_reported_once_then_reconnects() {
    run(async {
        // A port with nothing listening (yet).
        let addr = {
            let probe = net::bind_reuseport("127.0.0.1:0".parse().unwrap()).unwrap();
            probe.local_addr().unwrap()
        };
        let transport = PeerTransport::new(SENDER, fast_limits());
        transport
            .add_peer(2, vec![format!("http://{addr}")])
            .unwrap();
        let status = wait_status(&transport, 2, "the failed dial", |s| {
            s.became_unreachable == 1
        })
        .await;
        assert!(!status.connected);
        assert!(
            status.last_error.as_deref().unwrap().contains("refused"),
            "{status:?}"
        );

        for i in 0..100 {
            assert_eq!(
                transport.send(2, numbered(i, 16)),
                Err(PeerError::NotConnected(2))
            );
        }
        assert_eq!(transport.take_unreachable(), vec![2]);
        assert_eq!(transport.take_unreachable(), Vec::<u64>::new());
        assert_eq!(transport.status(2).unwrap().dropped_messages, 100);
        assert_eq!(
            transport.send(9, numbered(0, 16)),
            Err(PeerError::UnknownPeer(9))
        );

        // Several more dials fail (the backoff is at most 40 ms); still one transition.
        let status = wait_status(&transport, 2, "more failed dials", |s| {
            s.connection_failures >= 4
        })
        .await;
        assert_eq!(status.became_unreachable, 1);

        let receiver = Receiver::start(RECEIVER, PeerLimits::default(), Some(addr));
        let status = wait_connected(&transport, 2).await;
        assert_eq!(status.became_reachable, 1);
        assert_eq!(status.became_unreachable, 1);
        assert_eq!(status.last_error, None);
        for i in 0..10 {
            transport.send(2, numbered(i, 16)).unwrap();
        }
        let recorder = &receiver.recorder;
        recorder
            .changed
            .wait_until("messages after the reconnect", || {
                recorder.messages.borrow().len() == 10
            })
            .await;

        // The receiver goes away: one more transition, then it comes back on the same port.
        receiver.stop().await;
        let status = wait_status(&transport, 2, "the disconnect", |s| {
            s.became_unreachable == 2
        })
        .await;
        assert!(!status.connected);
        let receiver = Receiver::start(RECEIVER, PeerLimits::default(), Some(addr));
        let status = wait_connected(&transport, 2).await;
        assert_eq!((status.became_reachable, status.became_unreachable), (2, 2));

        stop_transport(&transport).await;
        receiver.stop().await;
    });
}

#[test]
fn senders_from_another_cluster_or_unknown_members_are_refused() {
    run(async {
        let receiver = Receiver::start(RECEIVER, PeerLimits::default(), None);
        let stranger = PeerTransport::new(
            PeerIdentity {
                member_id: 1,
                cluster_id: 0xdead,
            },
            fast_limits(),
        );
        stranger.add_peer(2, vec![receiver.url()]).unwrap();
        let status = wait_status(&stranger, 2, "the refusal", |s| s.last_error.is_some()).await;
        let error = status.last_error.unwrap();
        assert!(
            error.contains(
                "cluster ID mismatch: sender 1 is in cluster dead, member 2 is in cluster c1"
            ),
            "{error}"
        );
        assert!(!status.connected);
        assert_eq!(status.became_reachable, 0);
        assert_eq!(
            stranger.send(2, numbered(0, 8)),
            Err(PeerError::NotConnected(2))
        );

        // The right cluster but a member the handler does not accept.
        receiver.recorder.refused_member.set(Some(1));
        let removed = PeerTransport::new(SENDER, fast_limits());
        removed.add_peer(2, vec![receiver.url()]).unwrap();
        let status = wait_status(&removed, 2, "the refusal", |s| s.last_error.is_some()).await;
        let error = status.last_error.unwrap();
        assert!(
            error.contains("member 1 is not a member of cluster c1"),
            "{error}"
        );
        assert_eq!(removed.refused_as_non_member(), vec![2]);
        assert!(stranger.refused_as_non_member().is_empty());
        // Accepted again (e.g. the refusal was a receiver that had not applied the
        // member's addition yet): the mark goes away on the next accepted stream.
        receiver.recorder.refused_member.set(None);
        wait_connected(&removed, 2).await;
        assert!(removed.refused_as_non_member().is_empty());
        // Removed while its stream is open: the stream ends at the next message, and the
        // redial is refused.
        receiver.recorder.refused_member.set(Some(1));
        removed.send(2, numbered(1, 8)).unwrap();
        wait_status(&removed, 2, "the refusal of an open stream", |s| {
            s.last_error.as_deref().is_some_and(|e| {
                e.contains("refused the Raft stream: cairn: member 1 is not a member")
            })
        })
        .await;
        assert_eq!(removed.refused_as_non_member(), vec![2]);

        // Addressed to another member than the one listening there.
        receiver.recorder.refused_member.set(None);
        let misdirected = PeerTransport::new(SENDER, fast_limits());
        misdirected.add_peer(3, vec![receiver.url()]).unwrap();
        let status = wait_status(&misdirected, 3, "the refusal", |s| s.last_error.is_some()).await;
        let error = status.last_error.unwrap();
        assert!(
            error.contains("member ID mismatch: the stream is for member 3, this is member 2"),
            "{error}"
        );
        assert!(receiver.recorder.messages.borrow().is_empty());

        for transport in [&stranger, &removed, &misdirected] {
            stop_transport(transport).await;
        }
        receiver.stop().await;
    });
}

#[test]
fn snapshot_of_64_mib_is_back_pressured_by_a_slow_receiver() {
    const CHUNK_BYTES: usize = 64 * 1024;
    const CHUNKS: usize = 1024;
    run(async {
        let receiver = Receiver::start(RECEIVER, PeerLimits::default(), None);
        let transport = PeerTransport::new(SENDER, fast_limits());
        transport.add_peer(2, vec![receiver.url()]).unwrap();
        wait_connected(&transport, 2).await;

        let pulled = receiver.recorder.pulled.clone();
        let source = futures::stream::iter(0..CHUNKS).map(move |i| {
            pulled.set(i + 1);
            Ok(Bytes::from(vec![i as u8; CHUNK_BYTES]))
        });
        let sent = transport
            .send_snapshot(
                2,
                Bytes::from_static(b"meta:index=42"),
                source.boxed_local(),
            )
            .await;
        assert_eq!(sent, Ok(()));

        let snapshots = receiver.recorder.snapshots.borrow().clone();
        assert_eq!(snapshots.len(), 1);
        let (from, meta, bytes, outcome) = &snapshots[0];
        assert_eq!((*from, &meta[..]), (1, &b"meta:index=42"[..]));
        assert_eq!(*bytes, CHUNK_BYTES * CHUNKS);
        assert_eq!(outcome, &Ok(()));
        // The sender never ran more than the flow-control window (1 MiB per stream = 16
        // chunks) and a few chunks in hand ahead of the reader, also while the reader
        // paused: at most 24 chunks = 1.5 MiB of 64 MiB (measured: 16).
        let lead_max = receiver.recorder.lead_max.get();
        assert!(lead_max <= 24, "sender ran {lead_max} chunks ahead");
        assert!(lead_max > 0);

        // Raft messages still flow on the same connection afterwards.
        transport.send(2, numbered(0, 8)).unwrap();
        let recorder = &receiver.recorder;
        recorder
            .changed
            .wait_until("a message", || recorder.messages.borrow().len() == 1)
            .await;
        stop_transport(&transport).await;
        receiver.stop().await;
    });
}

#[test]
fn snapshot_failures_reach_the_other_side() {
    run(async {
        let receiver = Receiver::start(RECEIVER, PeerLimits::default(), None);
        let transport = PeerTransport::new(SENDER, fast_limits());
        transport.add_peer(2, vec![receiver.url()]).unwrap();
        wait_connected(&transport, 2).await;

        // The receiver fails after three chunks of 100.
        receiver
            .recorder
            .snapshot_plan
            .set(SnapshotPlan::FailAfter(3));
        let source =
            futures::stream::iter(0..100usize).map(|i| Ok(Bytes::from(vec![i as u8; 64 * 1024])));
        let sent = transport
            .send_snapshot(2, Bytes::from_static(b"m"), source.boxed_local())
            .await;
        let error = sent.unwrap_err();
        assert!(
            error.contains("peer 2 failed to receive the snapshot: disk full"),
            "{error}"
        );

        // The sender's source fails after two chunks (once the receiver has read them: a
        // reset discards what is still buffered): the stream is reset and the receiver's
        // handler sees it break.
        receiver.recorder.snapshot_plan.set(SnapshotPlan::ReadAll);
        let read_before = receiver.recorder.chunks_read.get();
        let recorder = receiver.recorder.clone();
        let source = futures::stream::unfold(0usize, move |i| {
            let recorder = recorder.clone();
            async move {
                if i < 2 {
                    return Some((Ok(Bytes::from(vec![i as u8; 1000])), i + 1));
                }
                recorder
                    .changed
                    .wait_until("the receiver to read two chunks", || {
                        recorder.chunks_read.get() == read_before + 2
                    })
                    .await;
                Some((Err("read error on the checkpoint file".to_string()), i + 1))
            }
        });
        let sent = transport
            .send_snapshot(2, Bytes::from_static(b"m"), source.boxed_local())
            .await;
        assert_eq!(
            sent,
            Err("reading the snapshot failed: read error on the checkpoint file".to_string())
        );
        let recorder = &receiver.recorder;
        recorder
            .changed
            .wait_until("the receiver's handler to end", || {
                recorder.snapshots.borrow().len() == 2
            })
            .await;
        let (_, _, bytes, outcome) = recorder.snapshots.borrow()[1].clone();
        assert_eq!(bytes, 2000);
        assert_eq!(
            outcome,
            Err("snapshot stream broken: context canceled".to_string())
        );

        // A chunk over snapshot_chunk_bytes_max is refused by the sender.
        let too_big = PeerLimits::default().snapshot_chunk_bytes_max + 1;
        let source = futures::stream::iter([Ok(Bytes::from(vec![0u8; too_big]))]);
        let sent = transport
            .send_snapshot(2, Bytes::from_static(b"m"), source.boxed_local())
            .await;
        assert!(sent
            .unwrap_err()
            .contains("exceeds snapshot_chunk_bytes_max 1048576"),);

        assert!(transport.is_connected(2));
        stop_transport(&transport).await;
        receiver.stop().await;
    });
}

#[test]
fn unary_requests_answer_fail_and_time_out() {
    run(async {
        let receiver = Receiver::start(RECEIVER, PeerLimits::default(), None);
        let limits = PeerLimits {
            request_timeout: Duration::from_millis(300),
            ..fast_limits()
        };
        let transport = PeerTransport::new(SENDER, limits);
        // A host name: resolved off the executor thread; every address is tried.
        let by_name = format!("http://localhost:{}", receiver.addr.port());
        transport.add_peer(2, vec![by_name]).unwrap();

        // Waits for the connection, within the request timeout.
        let echoed = transport
            .request(2, "Echo", Bytes::from_static(b"keep-alive 7587"))
            .await;
        assert_eq!(echoed, Ok(Bytes::from_static(b"keep-alive 7587")));
        let empty = transport.request(2, "Echo", Bytes::new()).await;
        assert_eq!(empty, Ok(Bytes::new()));
        let large = Bytes::from(vec![5u8; 3 * 1024 * 1024]);
        assert_eq!(transport.request(2, "Echo", large.clone()).await, Ok(large));
        let who = transport.request(2, "WhoAmI", Bytes::new()).await.unwrap();
        assert_eq!(&who[..], &1u64.to_be_bytes());

        assert_eq!(
            transport.request(2, "LeaseTimeToLive", Bytes::new()).await,
            Err(Status::new(
                Code::NotFound,
                "etcdserver: requested lease not found"
            ))
        );
        let started = Instant::now();
        assert_eq!(
            transport.request(2, "Slow", Bytes::new()).await,
            Err(Status::deadline_exceeded())
        );
        assert!(started.elapsed() >= Duration::from_millis(300));
        assert_eq!(
            transport
                .request(2, "bad/name", Bytes::new())
                .await
                .unwrap_err()
                .code,
            Code::InvalidArgument
        );
        assert_eq!(
            transport
                .request(7, "Echo", Bytes::new())
                .await
                .unwrap_err(),
            Status::new(Code::Unavailable, "peer transport: unknown peer 7")
        );
        // The connection survived the timed-out call.
        assert_eq!(
            transport.request(2, "Echo", Bytes::from_static(b"x")).await,
            Ok(Bytes::from_static(b"x"))
        );

        stop_transport(&transport).await;
        receiver.stop().await;
    });
}

#[test]
fn update_peer_redials_and_remove_peer_stops_its_task() {
    run(async {
        let receiver = Receiver::start(RECEIVER, PeerLimits::default(), None);
        let nowhere = {
            let probe = net::bind_reuseport("127.0.0.1:0".parse().unwrap()).unwrap();
            probe.local_addr().unwrap()
        };
        let transport = PeerTransport::new(SENDER, fast_limits());
        assert_eq!(
            transport.add_peer(1, vec![receiver.url()]),
            Err(PeerError::SelfPeer(1))
        );
        assert_eq!(transport.add_peer(2, vec![]), Err(PeerError::NoUrls(2)));
        assert!(matches!(
            transport.add_peer(2, vec!["https://127.0.0.1:1".into()]),
            Err(PeerError::InvalidUrl(_))
        ));
        transport
            .add_peer(2, vec![format!("http://{nowhere}")])
            .unwrap();
        wait_status(&transport, 2, "the failed dial", |s| {
            s.became_unreachable == 1
        })
        .await;
        transport.update_peer(2, vec![receiver.url()]).unwrap();
        wait_connected(&transport, 2).await;
        assert_eq!(
            transport.update_peer(5, vec![receiver.url()]),
            Err(PeerError::UnknownPeer(5))
        );

        // A raw socket stands in for peer 3: the task dials it and waits for an answer
        // that never comes; removing the peer closes the socket and ends the task.
        let listener = glommio::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        transport.add_peer(3, vec![url]).unwrap();
        assert_eq!(transport.tasks_running(), 2);
        let mut socket = with_timeout(WAIT_MAX, listener.accept())
            .await
            .expect("peer 3 dialed")
            .unwrap();
        let mut preface = [0u8; 24];
        socket.read_exact(&mut preface).await.unwrap();
        assert_eq!(&preface, b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");

        transport.remove_peer(3);
        let mut rest = Vec::new();
        let read = with_timeout(WAIT_MAX, socket.read_to_end(&mut rest))
            .await
            .expect("the socket closed after remove_peer");
        assert!(read.is_ok());
        assert_eq!(transport.status(3), None);
        assert_eq!(
            transport.send(3, numbered(0, 8)),
            Err(PeerError::UnknownPeer(3))
        );
        // The task dropped the socket on its way out, so it has ended by now.
        assert_eq!(transport.tasks_running(), 1);

        transport.remove_peer(2);
        with_timeout(WAIT_MAX, transport.join())
            .await
            .expect("every task ended");
        assert!(!transport.is_connected(2));
        receiver.stop().await;
    });
}

#[test]
fn a_peer_that_stops_answering_is_detected_by_keepalive() {
    use tokio_util::compat::FuturesAsyncReadCompatExt;
    run(async {
        let limits = PeerLimits {
            keepalive_interval: Duration::from_millis(50),
            keepalive_timeout: Duration::from_millis(200),
            ..fast_limits()
        };
        let transport = PeerTransport::new(SENDER, limits);
        // A hand-driven h2 server accepts the Raft stream, then stops reading its socket,
        // as a peer that froze (SIGSTOP) or sits behind a partition.
        let listener = glommio::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        transport.add_peer(2, vec![url]).unwrap();
        let socket = listener.accept().await.unwrap();
        let mut connection = h2::server::handshake(socket.compat()).await.unwrap();
        let (request, mut respond) = connection.accept().await.unwrap().unwrap();
        assert_eq!(request.uri().path(), "/cairn.peer.Peer/Raft");
        assert_eq!(request.headers()["cairn-member-id"], "1");
        assert_eq!(request.headers()["cairn-cluster-id"], "c1");
        assert_eq!(request.headers()["cairn-to-member-id"], "2");
        let mut response = http::Response::new(());
        response
            .headers_mut()
            .insert("content-type", "application/grpc".parse().unwrap());
        let mut stream = respond.send_response(response, false).unwrap();
        stream
            .send_data(Bytes::from_static(&[0, 0, 0, 0, 0]), false)
            .unwrap();
        // Drive the connection until the sender counts the peer as connected.
        {
            let drive = connection.accept();
            let connected = wait_connected(&transport, 2);
            match select(pin!(drive), pin!(connected)).await {
                Either::Left(_) => panic!("the fake peer's connection ended"),
                Either::Right(_) => {}
            }
        }
        // From here on nothing reads the socket: PINGs go unanswered.
        let status = wait_status(&transport, 2, "the keepalive to give up", |s| {
            s.last_error.is_some()
        })
        .await;
        let error = status.last_error.unwrap();
        assert_eq!(error, "no answer to an HTTP/2 PING within 200ms");
        assert!(!status.connected);
        assert_eq!(status.became_unreachable, 1);
        drop((stream, connection));
        stop_transport(&transport).await;
    });
}

#[test]
fn a_full_queue_drops_and_reports_the_peer() {
    run(async {
        let receiver = Receiver::start(RECEIVER, PeerLimits::default(), None);
        let limits = PeerLimits {
            queue_messages_max: 8,
            queue_bytes_max: 64 * 1024,
            message_bytes_max: 16 * 1024,
            snapshot_chunk_bytes_max: 16 * 1024,
            ..fast_limits()
        };
        let transport = PeerTransport::new(SENDER, limits);
        transport.add_peer(2, vec![receiver.url()]).unwrap();
        wait_connected(&transport, 2).await;

        // No await in between: the writer cannot drain, the queue's bound decides.
        for i in 0..8 {
            transport.send(2, numbered(i, 100)).unwrap();
        }
        assert_eq!(
            transport.send(2, numbered(8, 100)),
            Err(PeerError::QueueFull(2))
        );
        assert_eq!(transport.take_unreachable(), vec![2]);
        let recorder = &receiver.recorder;
        recorder
            .changed
            .wait_until("the queued messages", || {
                recorder.messages.borrow().len() == 8
            })
            .await;

        // The byte bound: four messages of 16 KiB fill 64 KiB.
        for i in 0..4 {
            transport.send(2, numbered(10 + i, 16 * 1024)).unwrap();
        }
        assert_eq!(
            transport.send(2, numbered(14, 100)),
            Err(PeerError::QueueFull(2))
        );
        recorder
            .changed
            .wait_until("the large messages", || {
                recorder.messages.borrow().len() == 12
            })
            .await;
        let indexes: Vec<u64> = recorder
            .messages
            .borrow()
            .iter()
            .map(|(_, m)| index_of(m))
            .collect();
        assert_eq!(indexes, vec![0, 1, 2, 3, 4, 5, 6, 7, 10, 11, 12, 13]);
        let status = transport.status(2).unwrap();
        assert_eq!(status.dropped_messages, 2);
        // Dropping for a full queue is not a connection change.
        assert!(status.connected);
        assert_eq!(status.became_unreachable, 0);

        stop_transport(&transport).await;
        receiver.stop().await;
    });
}

#[test]
fn http1_requests_on_the_peer_port_reach_the_handler() {
    use futures::{AsyncReadExt, AsyncWriteExt};
    run(async {
        let receiver = Receiver::start(RECEIVER, fast_limits(), None);
        let mut socket = glommio::net::TcpStream::connect(receiver.addr)
            .await
            .unwrap();
        socket
            .write_all(b"GET /members HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut answer = String::new();
        socket.read_to_string(&mut answer).await.unwrap();
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        // Header names go out in canonical case, as Go's net/http writes etcd's
        // `X-Etcd-Cluster-ID` (textproto.CanonicalMIMEHeaderKey).
        assert!(answer.contains("X-Etcd-Cluster-Id: c1"), "{answer}");
        assert!(answer.ends_with("[]"), "{answer}");
        let mut socket = glommio::net::TcpStream::connect(receiver.addr)
            .await
            .unwrap();
        socket
            .write_all(b"GET /nothing HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut answer = String::new();
        socket.read_to_string(&mut answer).await.unwrap();
        assert!(answer.starts_with("HTTP/1.1 404"), "{answer}");
        receiver.stop().await;
    });
}
