//! The receiving side: the peer listener, identity checks, and the three kinds of stream.

use std::io;
use std::net::SocketAddr;
use std::pin::{pin, Pin};
use std::rc::Rc;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures::future::{select, Either, LocalBoxFuture};
use futures::stream::LocalBoxStream;
use futures::{FutureExt, Stream, StreamExt};
use glommio::net::TcpListener;
use tokio::io::{AsyncRead, AsyncWrite};

use super::wire::{id_hex, SenderHeaders, CALL_PATH_PREFIX, RAFT_PATH, SNAPSHOT_PATH};
use super::{PeerIdentity, PeerLimits, PEER_CONCURRENT_STREAMS_MAX};
use crate::conn::{serve_h2, ServerLimits};
use crate::grpc::{CallContext, GrpcService, Inbound, MethodKind, Outbound};
use crate::http1::{HttpHandler, HttpRequest, HttpResponse};
use crate::shutdown::Shutdown;
use crate::status::{Code, Status};
use crate::tls::TlsAcceptor;

/// What the server does with what peers send. One per core; every method runs on the
/// executor that serves the connection.
pub trait PeerHandler: 'static {
    /// Whether `from` (a member ID) may talk to this member. Called for every stream after
    /// the cluster ID matched; `false` refuses the stream with PERMISSION_DENIED (etcd refuses
    /// removed members with 410 Gone, rafthttp `http.go`). Default: everyone.
    fn accepts(&self, from: u64) -> bool {
        let _ = from;
        true
    }

    /// Raft messages from member `from`, in the order sent (opaque bytes: the server encodes
    /// them with `raft::Message::encode`). Each call carries the messages decoded from what
    /// arrived together. Must not block or wait: hand them to the Raft node's inbox.
    fn on_raft_messages(&self, from: u64, messages: Vec<Bytes>);

    /// A snapshot from member `from`: `meta` is the sender's first message (e.g. the encoded
    /// Raft snapshot message), `chunks` the data that follows, as the sender sent it. The
    /// sender waits for the returned result: `Err(reason)` reaches it as the failure text.
    /// Reading `chunks` slowly slows the sender (HTTP/2 flow control). If the sender resets
    /// the stream (its source failed, it was removed or shut down), `chunks` yields an error;
    /// the future may also be dropped before it completes (reset seen first, connection
    /// gone): clean up partial state in `Drop`.
    fn on_snapshot(
        &self,
        from: u64,
        meta: Bytes,
        chunks: SnapshotChunks,
    ) -> LocalBoxFuture<'static, Result<(), String>>;

    /// A unary call `method` from member `from` with an opaque `body`; the answer's bytes or
    /// a status go back to the caller (e.g. a lease keep-alive forwarded to the leader).
    fn on_request(
        &self,
        from: u64,
        method: String,
        body: Bytes,
    ) -> LocalBoxFuture<'static, Result<Bytes, Status>>;

    /// An HTTP/1.1 request on the peer port (etcd serves `/members` and `/version` there;
    /// a member joining a cluster reads `/members` before it knows any member's ID).
    /// Default: 404.
    fn http(&self, request: &HttpRequest) -> HttpResponse {
        let _ = request;
        HttpResponse::text(404, "404 page not found\n")
    }
}

/// Routes the peer port's HTTP/1.1 requests to [`PeerHandler::http`].
struct PeerHttp {
    handler: Rc<dyn PeerHandler>,
}

impl HttpHandler for PeerHttp {
    fn handle(self: Rc<Self>, request: HttpRequest) -> LocalBoxFuture<'static, HttpResponse> {
        let response = self.handler.http(&request);
        Box::pin(async move { response })
    }
}

/// The data chunks of one incoming snapshot, in order: a `Stream` of `Result<Bytes,
/// String>`. It ends (`None`) when the sender finished; an `Err` (a chunk over
/// `snapshot_chunk_bytes_max`, a stream cut off inside a chunk, shutdown) is the last item.
/// Memory held is at most one HTTP/2 stream window (`H2_STREAM_WINDOW_BYTES`) plus one chunk.
pub struct SnapshotChunks {
    inner: LocalBoxStream<'static, Result<Bytes, String>>,
}

impl SnapshotChunks {
    /// `inbound` enforces `snapshot_chunk_bytes_max` (RESOURCE_EXHAUSTED, reported here as
    /// the stream's last item and to the sender).
    fn new(inbound: Inbound, shutdown: Shutdown) -> SnapshotChunks {
        struct State {
            inbound: Inbound,
            shutdown: Shutdown,
            done: bool,
        }
        let state = State {
            inbound,
            shutdown,
            done: false,
        };
        let inner = futures::stream::unfold(state, |mut state| async move {
            if state.done {
                return None;
            }
            let next = {
                let next = pin!(state.inbound.next());
                let stop = pin!(state.shutdown.wait());
                match select(next, stop).await {
                    Either::Left((next, _)) => next,
                    Either::Right(((), _)) => Some(Err(Status::new(
                        Code::Unavailable,
                        "server is shutting down",
                    ))),
                }
            };
            let item = match next? {
                Ok(chunk) => Ok(chunk),
                Err(status) => Err(format!("snapshot stream broken: {}", status.message)),
            };
            state.done = item.is_err();
            Some((item, state))
        });
        SnapshotChunks {
            inner: inner.boxed_local(),
        }
    }
}

impl Stream for SnapshotChunks {
    type Item = Result<Bytes, String>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.inner.poll_next_unpin(cx)
    }
}

impl std::fmt::Debug for SnapshotChunks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SnapshotChunks").finish_non_exhaustive()
    }
}

/// The peer listener of one core: HTTP/2 with prior knowledge, the peer protocol's three
/// paths (see the [module docs](super)). Clones share the handler and shutdown signal.
#[derive(Clone)]
pub struct PeerServer {
    service: Rc<PeerService>,
    limits: ServerLimits,
    shutdown: Shutdown,
    tls: Option<Rc<TlsAcceptor>>,
}

impl PeerServer {
    /// A server for `identity` that hands what peers send to `handler`. `shutdown` ends the
    /// accept loop, sends GOAWAY on every connection and ends open Raft and snapshot streams.
    /// Panics if `limits` is invalid ([`PeerLimits::validate`] names the field).
    pub fn new(
        identity: PeerIdentity,
        handler: Rc<dyn PeerHandler>,
        limits: PeerLimits,
        shutdown: Shutdown,
    ) -> PeerServer {
        if let Err(error) = limits.validate() {
            panic!("invalid PeerLimits: {error}");
        }
        // Snapshot chunks are at most message_bytes_max (validated): one receive limit
        // covers every kind of message; streams narrow it further.
        let server_limits = ServerLimits {
            max_recv_message_bytes: limits.message_bytes_max,
            max_send_message_bytes: limits.message_bytes_max,
            max_concurrent_streams: PEER_CONCURRENT_STREAMS_MAX,
            ..ServerLimits::default()
        };
        PeerServer {
            service: Rc::new(PeerService {
                identity,
                handler,
                limits,
                shutdown: shutdown.clone(),
            }),
            limits: server_limits,
            shutdown,
            tls: None,
        }
    }

    /// Serves `https://` peer URLs: every accepted connection completes this TLS handshake
    /// first (`--peer-cert-file`, `--peer-key-file`, `--peer-trusted-ca-file`,
    /// `--peer-client-cert-auth`, ...); a failed handshake closes the connection.
    pub fn with_tls(mut self, tls: Option<Rc<TlsAcceptor>>) -> PeerServer {
        self.tls = tls;
        self
    }

    /// The accept loop: serves each connection in its own local task until shutdown, then
    /// waits for every connection to end. Accept errors are logged and retried after 10 ms.
    pub async fn serve(&self, listener: TcpListener) -> io::Result<()> {
        let gate = glommio::sync::Gate::new();
        loop {
            let accepted = {
                let accept = pin!(listener.accept());
                let stop = pin!(self.shutdown.wait());
                match select(accept, stop).await {
                    Either::Left((accepted, _)) => accepted,
                    Either::Right(((), _)) => break,
                }
            };
            let stream = match accepted {
                Ok(stream) => stream,
                Err(error) => {
                    tracing::warn!(%error, "peer: accept failed");
                    glommio::timer::sleep(std::time::Duration::from_millis(10)).await;
                    continue;
                }
            };
            let remote = stream.peer_addr().ok();
            let server = self.clone();
            let spawned = gate.spawn(async move {
                // HTTP/2 (the peer protocol) or HTTP/1.1 (`PeerHandler::http`), sniffed.
                let http = Rc::new(PeerHttp {
                    handler: server.service.handler.clone(),
                });
                let served = crate::conn::serve_tcp(
                    stream,
                    server.tls.clone(),
                    server.service.clone(),
                    http,
                    server.limits.clone(),
                    server.shutdown.clone(),
                )
                .await;
                if let Err(error) = served {
                    tracing::debug!(%error, ?remote, "peer: connection ended with an error");
                }
            });
            match spawned {
                Ok(task) => {
                    task.detach();
                }
                Err(error) => tracing::warn!(%error, "peer: could not spawn a connection task"),
            }
        }
        gate.close().await.map_err(io::Error::from)
    }

    /// Serves one accepted connection whose bytes `io` carries: plain TCP today, a TLS
    /// stream (after the handshake) later. Returns when the connection ends; `Ok` for an
    /// orderly end (peer close, GOAWAY), `Err` for socket errors.
    pub async fn serve_connection<T>(&self, io: T, remote: Option<SocketAddr>) -> io::Result<()>
    where
        T: AsyncRead + AsyncWrite + Unpin,
    {
        serve_h2(
            io,
            self.service.clone(),
            &self.limits,
            &self.shutdown,
            remote,
            // Peers authenticate by their TLS certificates' names, not as users.
            None,
        )
        .await
    }
}

/// Serves the peer protocol on `listener` until `shutdown`: `PeerServer::new(..).serve(..)`
/// (plaintext; for `https://` peer URLs use [`PeerServer::with_tls`]).
pub async fn serve_peers(
    listener: TcpListener,
    identity: PeerIdentity,
    handler: Rc<dyn PeerHandler>,
    limits: PeerLimits,
    shutdown: Shutdown,
) -> io::Result<()> {
    PeerServer::new(identity, handler, limits, shutdown)
        .serve(listener)
        .await
}

/// The peer protocol as a [`GrpcService`].
struct PeerService {
    identity: PeerIdentity,
    handler: Rc<dyn PeerHandler>,
    limits: PeerLimits,
    shutdown: Shutdown,
}

impl PeerService {
    /// Checks the sender's identity headers: same cluster, addressed to this member, and
    /// accepted by the handler. Returns the sender's member ID.
    fn check_sender(&self, ctx: &CallContext) -> Result<u64, Status> {
        let sender = SenderHeaders::parse(&ctx.metadata)?;
        if sender.cluster_id != self.identity.cluster_id {
            tracing::warn!(
                local_cluster_id = %id_hex(self.identity.cluster_id),
                remote_cluster_id = %id_hex(sender.cluster_id),
                remote_member_id = %id_hex(sender.member_id),
                remote = ?ctx.peer,
                "peer: refused a stream from a member of another cluster (cluster ID mismatch)"
            );
            return Err(Status::new(
                Code::FailedPrecondition,
                format!(
                    "cairn: cluster ID mismatch: sender {} is in cluster {}, member {} is in cluster {}",
                    id_hex(sender.member_id),
                    id_hex(sender.cluster_id),
                    id_hex(self.identity.member_id),
                    id_hex(self.identity.cluster_id)
                ),
            ));
        }
        if sender.to_member_id != self.identity.member_id {
            tracing::warn!(
                member_id = %id_hex(self.identity.member_id),
                to_member_id = %id_hex(sender.to_member_id),
                remote_member_id = %id_hex(sender.member_id),
                "peer: refused a stream meant for another member (member ID mismatch)"
            );
            return Err(Status::new(
                Code::FailedPrecondition,
                format!(
                    "cairn: member ID mismatch: the stream is for member {}, this is member {}",
                    id_hex(sender.to_member_id),
                    id_hex(self.identity.member_id)
                ),
            ));
        }
        if !self.handler.accepts(sender.member_id) {
            tracing::warn!(
                remote_member_id = %id_hex(sender.member_id),
                remote = ?ctx.peer,
                "peer: refused a stream from a member that is not in the cluster"
            );
            return Err(self.not_a_member(sender.member_id));
        }
        Ok(sender.member_id)
    }

    /// The refusal of a sender that [`PeerHandler::accepts`] refuses.
    fn not_a_member(&self, from: u64) -> Status {
        Status::new(
            Code::PermissionDenied,
            format!(
                "cairn: member {} is not a member of cluster {} (removed or unknown)",
                id_hex(from),
                id_hex(self.identity.cluster_id)
            ),
        )
    }

    /// The Raft stream: acknowledge with one empty message, then deliver every message in
    /// order until the sender ends the stream, it breaks, or shutdown.
    async fn raft(
        &self,
        from: u64,
        mut inbound: Inbound,
        mut outbound: Outbound,
    ) -> Result<(), Status> {
        inbound.set_max_message_bytes(self.limits.message_bytes_max);
        outbound.send(Bytes::new()).await?;
        loop {
            let next = {
                let next = pin!(inbound.next());
                let stop = pin!(self.shutdown.wait());
                match select(next, stop).await {
                    Either::Left((next, _)) => next,
                    Either::Right(((), _)) => return Ok(()),
                }
            };
            let first = match next {
                None => return Ok(()),
                Some(message) => message?,
            };
            // Everything already decoded goes in the same call: bounded by the bytes of
            // the DATA frame just received.
            let mut messages = vec![first];
            let mut failed = None;
            while let Some(next) = inbound.next_buffered() {
                match next {
                    Ok(message) => messages.push(message),
                    Err(status) => {
                        failed = Some(status);
                        break;
                    }
                }
            }
            // A member removed while its stream was open: end the stream with the same
            // refusal a new one would get, so the sender learns it was removed.
            if !self.handler.accepts(from) {
                return Err(self.not_a_member(from));
            }
            self.handler.on_raft_messages(from, messages);
            if let Some(status) = failed {
                tracing::warn!(
                    remote_member_id = %id_hex(from),
                    error = %status.message,
                    "peer: refused a Raft message"
                );
                return Err(status);
            }
        }
    }

    /// A snapshot stream: the first message is the meta; the handler reads the rest.
    async fn snapshot(
        &self,
        from: u64,
        mut inbound: Inbound,
        mut outbound: Outbound,
    ) -> Result<(), Status> {
        inbound.set_max_message_bytes(self.limits.message_bytes_max);
        let meta = match inbound.next().await {
            Some(meta) => meta?,
            None => {
                return Err(Status::new(
                    Code::InvalidArgument,
                    "cairn: snapshot stream ended before its meta message",
                ))
            }
        };
        inbound.set_max_message_bytes(self.limits.snapshot_chunk_bytes_max);
        let chunks = SnapshotChunks::new(inbound, self.shutdown.clone());
        match self.handler.on_snapshot(from, meta, chunks).await {
            Ok(()) => outbound.send(Bytes::new()).await,
            Err(reason) => {
                tracing::warn!(remote_member_id = %id_hex(from), %reason, "peer: snapshot refused");
                Err(Status::new(Code::Aborted, reason))
            }
        }
    }
}

impl GrpcService for PeerService {
    fn method_kind(&self, path: &str) -> Option<MethodKind> {
        match path {
            RAFT_PATH | SNAPSHOT_PATH => Some(MethodKind::Streaming),
            _ if path.starts_with(CALL_PATH_PREFIX) => Some(MethodKind::Unary),
            _ => None,
        }
    }

    fn unary(
        self: Rc<Self>,
        ctx: CallContext,
        request: Bytes,
    ) -> LocalBoxFuture<'static, Result<Bytes, Status>> {
        async move {
            let from = self.check_sender(&ctx)?;
            let method = ctx.path[CALL_PATH_PREFIX.len()..].to_string();
            super::wire::check_method_name(&method)?;
            self.handler.on_request(from, method, request).await
        }
        .boxed_local()
    }

    fn streaming(
        self: Rc<Self>,
        ctx: CallContext,
        inbound: Inbound,
        outbound: Outbound,
    ) -> LocalBoxFuture<'static, Result<(), Status>> {
        async move {
            let from = self.check_sender(&ctx)?;
            match ctx.path.as_str() {
                RAFT_PATH => self.raft(from, inbound, outbound).await,
                SNAPSHOT_PATH => self.snapshot(from, inbound, outbound).await,
                other => Err(Status::new(
                    Code::Unimplemented,
                    format!("unknown peer method {other}"),
                )),
            }
        }
        .boxed_local()
    }
}
