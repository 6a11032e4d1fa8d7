//! Listening, accepting, and one connection's protocol: HTTP/2 (gRPC) or HTTP/1.1.

use std::io;
use std::net::SocketAddr;
use std::os::fd::{FromRawFd, IntoRawFd};
use std::pin::{pin, Pin};
use std::rc::Rc;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use futures::future::{select, Either};
use glommio::net::{TcpListener, TcpStream};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio_util::compat::FuturesAsyncReadCompatExt;

use crate::grpc::{serve_call, CallLimits, GrpcService};
use crate::http1::{serve_http1, HttpHandler};
use crate::shutdown::Shutdown;
use crate::tls::TlsAcceptor;

/// The HTTP/2 client connection preface (RFC 9113 §3.4).
const H2_PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// Initial HTTP/2 flow-control window per stream, in bytes (grpc-go's BDP estimator grows
/// to similar sizes; 64 KiB would cap a stream at one window per round trip).
pub const H2_STREAM_WINDOW_BYTES: u32 = 1024 * 1024;
/// Initial HTTP/2 flow-control window per connection, in bytes (the dialer's; a server's
/// connection window is [`connection_window_bytes`], at least this).
pub const H2_CONNECTION_WINDOW_BYTES: u32 = 16 * 1024 * 1024;
/// Largest HTTP/2 flow-control window, in bytes (RFC 9113 §6.9.1: 2^31 − 1).
pub const H2_WINDOW_BYTES_MAX: u32 = (1 << 31) - 1;
const _: () = assert!(H2_STREAM_WINDOW_BYTES <= H2_WINDOW_BYTES_MAX);
const _: () = assert!(H2_CONNECTION_WINDOW_BYTES <= H2_WINDOW_BYTES_MAX);
/// Largest request header list accepted, in bytes (grpc-go's default is 16 MiB; etcd tokens
/// and metadata are small).
pub const H2_HEADER_LIST_BYTES_MAX: u32 = 1024 * 1024;
/// Bytes a stream may queue for sending before `Outbound::send` waits.
pub const H2_SEND_BUFFER_BYTES: usize = 1024 * 1024;
/// Pending connections queued by the kernel per listening socket.
pub const LISTEN_BACKLOG: i32 = 1024;
/// Default of [`ServerLimits::preface_timeout`], in milliseconds.
pub const PREFACE_TIMEOUT_MS: u64 = 10_000;
/// Default of [`ServerLimits::http1_request_timeout`], in milliseconds.
pub const HTTP1_REQUEST_TIMEOUT_MS: u64 = 30_000;
/// Default of [`ServerLimits::keepalive_interval`], in milliseconds: etcd's
/// `--grpc-keepalive-interval` default, 2 h.
pub const KEEPALIVE_INTERVAL_MS: u64 = 2 * 60 * 60 * 1000;
/// Default of [`ServerLimits::keepalive_timeout`], in milliseconds: etcd's
/// `--grpc-keepalive-timeout` default, 20 s.
pub const KEEPALIVE_TIMEOUT_MS: u64 = 20_000;

/// Size limits of the server.
#[derive(Clone, Debug)]
pub struct ServerLimits {
    /// Largest gRPC request message accepted, in bytes; larger → RESOURCE_EXHAUSTED
    /// "grpc: received message larger than max (N vs. M)". etcd: `--max-request-bytes`
    /// + 512 KiB (embed/serve.go `grpcOverheadBytes`).
    pub max_recv_message_bytes: usize,
    /// Largest gRPC response message sent, in bytes; larger → RESOURCE_EXHAUSTED
    /// "grpc: trying to send message larger than max (N vs. M)". etcd: `math.MaxInt32`.
    pub max_send_message_bytes: usize,
    /// Concurrent HTTP/2 streams per connection (SETTINGS_MAX_CONCURRENT_STREAMS).
    /// etcd `--max-concurrent-streams`, default `math.MaxUint32`.
    pub max_concurrent_streams: u32,
    /// Largest HTTP/1.1 request body, in bytes; larger → 413.
    pub http1_max_body_bytes: usize,
    /// Longest wait for a new connection's first bytes to tell its protocol (the 24-byte
    /// HTTP/2 client preface, or the start of an HTTP/1.1 request); a client that connects
    /// and sends nothing, or trickles, is disconnected then. Counted after the TLS
    /// handshake, which has its own limit (`tls::TLS_HANDSHAKE_TIMEOUT_MS`).
    pub preface_timeout: std::time::Duration,
    /// Longest time one HTTP/1.1 request may take to arrive, from its first byte to the
    /// end of its body (Go's `http.Server.ReadTimeout`); then the connection is closed.
    /// An idle keep-alive connection between requests is not bounded by it.
    pub http1_request_timeout: std::time::Duration,
    /// How often the server PINGs each HTTP/2 (gRPC) client connection (etcd
    /// `--grpc-keepalive-interval`, grpc-go `keepalive.ServerParameters.Time`); zero: never.
    pub keepalive_interval: std::time::Duration,
    /// How long a PING may go unanswered before the connection is closed (etcd
    /// `--grpc-keepalive-timeout`, grpc-go `keepalive.ServerParameters.Timeout`).
    pub keepalive_timeout: std::time::Duration,
    /// Open client connections per core (executor thread), counted over every listener that
    /// core serves with [`serve_with_tls`]; a connection accepted at the cap is closed at
    /// once (see `admission.rs`). Default: no cap (`usize::MAX`); the server derives one from
    /// `RLIMIT_NOFILE`. Peer listeners do not count.
    pub connections_max: usize,
    /// Receive window of each HTTP/2 stream, in bytes (SETTINGS_INITIAL_WINDOW_SIZE; at
    /// most [`H2_WINDOW_BYTES_MAX`]). Request bytes are credited back to the client when
    /// the handler takes their message ([`crate::Inbound`]), so a stream holds at most this
    /// much that nobody consumed; a message larger than the window is credited as it
    /// arrives once the window is full. Default [`H2_STREAM_WINDOW_BYTES`]; the client port
    /// uses [`stream_window_for_messages`] so that every request fits.
    pub stream_window_bytes: u32,
}

impl Default for ServerLimits {
    /// etcd's defaults: 1.5 MiB requests + 512 KiB overhead, `MaxInt32` responses,
    /// unlimited streams; HTTP/1.1 bodies up to the same 2 MiB; no connection cap.
    fn default() -> ServerLimits {
        ServerLimits {
            max_recv_message_bytes: 1536 * 1024 + 512 * 1024,
            max_send_message_bytes: i32::MAX as usize,
            max_concurrent_streams: u32::MAX,
            http1_max_body_bytes: 1536 * 1024 + 512 * 1024,
            preface_timeout: std::time::Duration::from_millis(PREFACE_TIMEOUT_MS),
            http1_request_timeout: std::time::Duration::from_millis(HTTP1_REQUEST_TIMEOUT_MS),
            keepalive_interval: std::time::Duration::from_millis(KEEPALIVE_INTERVAL_MS),
            keepalive_timeout: std::time::Duration::from_millis(KEEPALIVE_TIMEOUT_MS),
            connections_max: usize::MAX,
            stream_window_bytes: H2_STREAM_WINDOW_BYTES,
        }
    }
}

/// A stream receive window that holds one whole message of `max_message_bytes` with its
/// 5-byte prefix, at least [`H2_STREAM_WINDOW_BYTES`], at most [`H2_WINDOW_BYTES_MAX`]: for
/// [`ServerLimits::stream_window_bytes`], so that every request message is credited back
/// only once the handler takes it.
pub fn stream_window_for_messages(max_message_bytes: usize) -> u32 {
    let message = max_message_bytes.saturating_add(crate::framing::MESSAGE_HEADER_BYTES);
    let message = u32::try_from(message).unwrap_or(u32::MAX);
    message.clamp(H2_STREAM_WINDOW_BYTES, H2_WINDOW_BYTES_MAX)
}

/// The receive window of each HTTP/2 connection the server accepts, in bytes: room for every
/// stream's window at once (`max_concurrent_streams` × [`ServerLimits::stream_window_bytes`]), at least
/// [`H2_CONNECTION_WINDOW_BYTES`], at most [`H2_WINDOW_BYTES_MAX`]. h2 returns connection and
/// stream credit together; were the connection window smaller, streams each holding part of
/// a message could use it up and wait for each other forever (grpc-go avoids this by
/// crediting the connection on receipt). So what one connection can make the server hold is
/// bounded by this window, i.e. by `--max-concurrent-streams`; only above 2 GiB (e.g. 1,000
/// streams of 2 MiB messages) could streams of one connection wait for each other.
pub fn connection_window_bytes(limits: &ServerLimits) -> u32 {
    let all_streams = u64::from(limits.stream_window_bytes.min(H2_WINDOW_BYTES_MAX))
        .saturating_mul(u64::from(limits.max_concurrent_streams.max(1)));
    let window = all_streams.clamp(
        u64::from(H2_CONNECTION_WINDOW_BYTES),
        u64::from(H2_WINDOW_BYTES_MAX),
    );
    window as u32
}

/// Binds a TCP listener on `addr` with `SO_REUSEADDR` and `SO_REUSEPORT`, so that every
/// core can bind the same address and the kernel spreads connections among them.
/// Must be called on a glommio executor thread. Errors: the socket calls' (e.g.
/// `AddrInUse` when a process without SO_REUSEPORT holds the port).
pub fn bind_reuseport(addr: SocketAddr) -> io::Result<TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.bind(&addr.into())?;
    socket.listen(LISTEN_BACKLOG)?;
    // SAFETY: the descriptor is a listening TCP socket that we own and hand over whole.
    Ok(unsafe { TcpListener::from_raw_fd(socket.into_raw_fd()) })
}

/// The accept loop: serves each connection in its own local task. On `shutdown` it stops
/// accepting, lets every connection drain (GOAWAY for HTTP/2), and returns once all have
/// ended. Accept errors (e.g. too many open files) are logged and the loop goes on after a
/// short pause; connection errors are logged at debug level. A connection accepted while
/// the core has `limits.connections_max` open is closed at once. Plaintext only: see
/// [`serve_with_tls`].
pub async fn serve<G: GrpcService, H: HttpHandler>(
    listener: TcpListener,
    grpc: Rc<G>,
    http: Rc<H>,
    limits: ServerLimits,
    shutdown: Shutdown,
) -> io::Result<()> {
    serve_with_tls(listener, None, grpc, http, limits, shutdown).await
}

/// [`serve`] for an `https://` (`tls` is `Some`) or `http://` (`None`) listener. With TLS,
/// every connection first completes the server handshake (a failed handshake, e.g.
/// plaintext on the TLS port or a refused client certificate, closes the connection and is
/// logged at debug level); then the same protocol sniffing as plaintext applies.
pub async fn serve_with_tls<G: GrpcService, H: HttpHandler>(
    listener: TcpListener,
    tls: Option<Rc<TlsAcceptor>>,
    grpc: Rc<G>,
    http: Rc<H>,
    limits: ServerLimits,
    shutdown: Shutdown,
) -> io::Result<()> {
    let gate = glommio::sync::Gate::new();
    let address = listener.local_addr().ok();
    loop {
        let accepted = {
            let accept = pin!(listener.accept());
            let stop = pin!(shutdown.wait());
            match select(accept, stop).await {
                Either::Left((accepted, _)) => Some(accepted),
                Either::Right(((), _)) => None,
            }
        };
        let Some(accepted) = accepted else { break };
        let stream = match accepted {
            Ok(stream) => stream,
            Err(error) => {
                tracing::warn!(%error, "net: accept failed");
                glommio::timer::sleep(std::time::Duration::from_millis(10)).await;
                continue;
            }
        };
        let Some(slot) = crate::admission::admit(limits.connections_max, address) else {
            drop(stream);
            continue;
        };
        let connection = serve_tcp(
            stream,
            tls.clone(),
            grpc.clone(),
            http.clone(),
            limits.clone(),
            shutdown.clone(),
        );
        let spawned = gate.spawn(async move {
            let _slot = slot;
            if let Err(error) = connection.await {
                tracing::debug!(%error, "net: connection ended with an error");
            }
        });
        match spawned {
            Ok(task) => {
                task.detach();
            }
            Err(error) => tracing::warn!(%error, "net: could not spawn a connection task"),
        }
    }
    gate.close().await.map_err(io::Error::from)
}

/// One accepted TCP connection: `TCP_NODELAY`, the TLS handshake when `tls` is set, then
/// [`serve_stream`].
pub(crate) async fn serve_tcp<G: GrpcService, H: HttpHandler>(
    stream: TcpStream,
    tls: Option<Rc<TlsAcceptor>>,
    grpc: Rc<G>,
    http: Rc<H>,
    limits: ServerLimits,
    shutdown: Shutdown,
) -> io::Result<()> {
    let peer = stream.peer_addr().ok();
    stream.set_nodelay(true)?;
    match tls {
        None => serve_stream(stream.compat(), peer, None, grpc, http, limits, shutdown).await,
        // Boxed: a plaintext connection's future need not make room for TLS state.
        Some(tls) => {
            Box::pin(async move {
                let io = match tls.accept(stream.compat(), &shutdown).await {
                    Ok(io) => io,
                    Err(error) => {
                        tracing::debug!(%error, ?peer, "net: TLS handshake failed");
                        return Ok(());
                    }
                };
                let common_name = crate::tls::peer_common_name(&io);
                serve_stream(io, peer, common_name, grpc, http, limits, shutdown).await
            })
            .await
        }
    }
}

/// Serves one plaintext connection: [`serve_stream`] on the TCP stream.
pub async fn serve_connection<G: GrpcService, H: HttpHandler>(
    stream: TcpStream,
    grpc: Rc<G>,
    http: Rc<H>,
    limits: ServerLimits,
    shutdown: Shutdown,
) -> io::Result<()> {
    serve_tcp(stream, None, grpc, http, limits, shutdown).await
}

/// Serves one connection whose bytes `io` carries (plain TCP, or TLS after the handshake);
/// `peer` is the remote address for logs and [`crate::CallContext`], `common_name` the CN
/// of the client certificate the TLS handshake verified. The first bytes decide
/// the protocol: the HTTP/2 client preface (`"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"`) →
/// gRPC over HTTP/2; anything else → HTTP/1.1 (keep-alive) to `http`. Returns when the
/// connection ends; `Ok` for an orderly end (client close, GOAWAY), `Err` for socket errors.
pub async fn serve_stream<T, G, H>(
    mut io: T,
    peer: Option<SocketAddr>,
    common_name: Option<std::sync::Arc<str>>,
    grpc: Rc<G>,
    http: Rc<H>,
    limits: ServerLimits,
    shutdown: Shutdown,
) -> io::Result<()>
where
    T: AsyncRead + AsyncWrite + Unpin,
    G: GrpcService,
    H: HttpHandler,
{
    let mut head = BytesMut::zeroed(H2_PREFACE.len());
    let mut filled = 0;
    let mut preface_deadline = pin!(glommio::timer::sleep(limits.preface_timeout));
    while filled < H2_PREFACE.len() && head[..filled] == H2_PREFACE[..filled] {
        let read = {
            let read = pin!(io.read(&mut head[filled..]));
            let stop = pin!(shutdown.wait());
            match select(read, select(stop, preface_deadline.as_mut())).await {
                Either::Left((read, _)) => read?,
                // Nothing complete arrived before shutdown: nothing to serve.
                Either::Right((Either::Left(((), _)), _)) => return Ok(()),
                Either::Right((Either::Right((_, _)), _)) => {
                    tracing::debug!(
                        ?peer,
                        timeout_ms = limits.preface_timeout.as_millis() as u64,
                        "net: no protocol preface in time, disconnecting"
                    );
                    return Ok(());
                }
            }
        };
        if read == 0 {
            return Ok(());
        }
        filled += read;
    }
    head.truncate(filled);
    // The protocols' futures are boxed once the protocol is known, so that a connection
    // still waiting for its first bytes holds only this function's small state (the
    // HTTP/2 one would otherwise be inline: ~10 KiB per idle connection).
    if &head[..] == H2_PREFACE {
        let io = Rewind {
            prefix: head.freeze(),
            inner: io,
        };
        Box::pin(serve_h2(io, grpc, &limits, &shutdown, peer, common_name)).await
    } else {
        Box::pin(serve_http1(io, head, http, &limits, shutdown, peer)).await
    }
}

/// Drives one HTTP/2 connection: accepts streams and serves each as a local task.
pub(crate) async fn serve_h2<G: GrpcService, T: AsyncRead + AsyncWrite + Unpin>(
    io: T,
    grpc: Rc<G>,
    limits: &ServerLimits,
    shutdown: &Shutdown,
    peer: Option<SocketAddr>,
    common_name: Option<std::sync::Arc<str>>,
) -> io::Result<()> {
    let stream_window = limits.stream_window_bytes.min(H2_WINDOW_BYTES_MAX);
    let mut builder = h2::server::Builder::new();
    builder
        .initial_window_size(stream_window)
        .initial_connection_window_size(connection_window_bytes(limits))
        .max_concurrent_streams(limits.max_concurrent_streams)
        .max_header_list_size(H2_HEADER_LIST_BYTES_MAX)
        .max_send_buffer_size(H2_SEND_BUFFER_BYTES);
    let mut connection = match builder.handshake::<_, Bytes>(io).await {
        Ok(connection) => connection,
        Err(error) => return connection_end(error),
    };
    let call_limits = CallLimits {
        max_recv_message_bytes: limits.max_recv_message_bytes,
        max_send_message_bytes: limits.max_send_message_bytes,
        stream_window_bytes: stream_window as usize,
    };
    let ping_pong = connection
        .ping_pong()
        .expect("ping_pong is taken once, here");
    let mut keepalive = pin!(keepalive_lost(
        ping_pong,
        limits.keepalive_interval,
        limits.keepalive_timeout
    ));
    let mut draining = false;
    loop {
        let next = if draining {
            connection.accept().await
        } else {
            let stopped = {
                let accept = pin!(connection.accept());
                let stop = pin!(shutdown.wait());
                match select(accept, select(stop, keepalive.as_mut())).await {
                    Either::Left((next, _)) => Err(next),
                    Either::Right((Either::Left(((), _)), _)) => Ok(()),
                    Either::Right((Either::Right(((), _)), _)) => {
                        tracing::debug!(
                            ?peer,
                            timeout_ms = limits.keepalive_timeout.as_millis() as u64,
                            "net: keepalive PING unanswered, closing the connection"
                        );
                        return Ok(());
                    }
                }
            };
            match stopped {
                Err(next) => next,
                Ok(()) => {
                    connection.graceful_shutdown();
                    draining = true;
                    continue;
                }
            }
        };
        match next {
            None => return Ok(()),
            Some(Ok((request, respond))) => {
                let call = serve_call(
                    grpc.clone(),
                    request,
                    respond,
                    call_limits,
                    peer,
                    common_name.clone(),
                );
                glommio::spawn_local(call).detach();
            }
            Some(Err(error)) => return connection_end(error),
        }
    }
}

/// Completes when a keepalive PING, sent every `interval`, is not answered within
/// `timeout` (or the connection can no longer send PINGs); never with a zero `interval`.
async fn keepalive_lost(
    mut ping_pong: h2::PingPong,
    interval: std::time::Duration,
    timeout: std::time::Duration,
) {
    if interval.is_zero() {
        return futures::future::pending().await;
    }
    loop {
        glommio::timer::sleep(interval).await;
        let ping = pin!(ping_pong.ping(h2::Ping::opaque()));
        let late = pin!(glommio::timer::sleep(timeout));
        match select(ping, late).await {
            Either::Left((Ok(_pong), _)) => {}
            Either::Left((Err(_), _)) | Either::Right(_) => return,
        }
    }
}

/// Maps an h2 connection error: socket errors are errors; protocol errors and GOAWAYs are
/// the peer's doing and end the connection normally (logged).
fn connection_end(error: h2::Error) -> io::Result<()> {
    if error.is_io() {
        let error = error
            .into_io()
            .unwrap_or_else(|| io::Error::other("h2 i/o error"));
        return match error.kind() {
            io::ErrorKind::ConnectionReset
            | io::ErrorKind::BrokenPipe
            | io::ErrorKind::UnexpectedEof => Ok(()),
            _ => Err(error),
        };
    }
    tracing::debug!(%error, "net: http/2 connection ended");
    Ok(())
}

/// A stream that first replays bytes already read (the sniffed preface).
struct Rewind<T> {
    prefix: Bytes,
    inner: T,
}

impl<T: AsyncRead + Unpin> AsyncRead for Rewind<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.prefix.is_empty() {
            let n = this.prefix.len().min(buf.remaining());
            buf.put_slice(&this.prefix.split_to(n));
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Rewind<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}
