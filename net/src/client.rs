//! A small gRPC client for etcd's v3 API on glommio: one HTTP/2 connection to one
//! endpoint, unary calls and streaming calls (Watch, LeaseKeepAlive, Snapshot, Election
//! Observe), the `token` metadata of etcd's auth, a deadline per call.
//!
//! Used by `cairnctl`; it speaks to Cairn and to etcd alike. Rules as grpc-go's client
//! (grpc `doc/PROTOCOL-HTTP2.md`): requests carry `content-type: application/grpc`,
//! `te: trailers` and `grpc-timeout`; a response's status comes from its trailers, or
//! from its headers for Trailers-Only; an HTTP/2 reset is CANCELLED; a deadline that
//! passes is DEADLINE_EXCEEDED "context deadline exceeded" (Go's `context` text, which
//! etcdctl prints).

use std::cell::{Cell, RefCell};
use std::net::{SocketAddr, ToSocketAddrs};
use std::pin::pin;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::future::{select, Either};
use glommio::net::TcpStream;
use h2::client::SendRequest;
use h2::{RecvStream, SendStream};
use http::header::{HeaderValue, CONTENT_TYPE, TE};
use http::uri::{Authority, Scheme};
use http::{Request, Uri};
use tokio_util::compat::FuturesAsyncReadCompatExt;

use crate::framing::{encode_message, MessageDecoder};
use crate::peer::wire::{check_response_head, read_trailer_status, status_in, PeerUrl};
use crate::status::{Code, Status};
use crate::stream::{next_message, status_from_h2};
use crate::timeout::format_grpc_timeout;
use crate::tls::MaybeTls;

/// Largest response message accepted, in bytes: grpc-go's client default is
/// `math.MaxInt32`; etcd's clientv3 sets no lower limit. 2 GiB − 1 as theirs.
pub const CLIENT_RECEIVE_BYTES_MAX: usize = i32::MAX as usize;

/// How a [`Client`] connects.
#[derive(Clone, Debug)]
pub struct ClientOptions {
    /// TLS for `https://` endpoints (rustls, built by the caller from `--cacert`,
    /// `--cert`, `--key`); `None`: `https://` endpoints are refused.
    pub tls: Option<Arc<rustls::ClientConfig>>,
    /// Time allowed for TCP connect, TLS and the HTTP/2 handshake (etcdctl
    /// `--dial-timeout`, default 2 s).
    pub dial_timeout: Duration,
    /// HTTP/2 PING keepalive (etcdctl `--keepalive-time`/`--keepalive-timeout`); `None`:
    /// no pings (etcdctl's `--keepalive-time 0`).
    pub keepalive: Option<Keepalive>,
}

/// grpc-go's client keepalive (`keepalive.ClientParameters` as clientv3 sets it, with
/// `PermitWithoutStream` false): while at least one call is open, a PING every `time`
/// (grpc-go raises it to [`KEEPALIVE_TIME_MIN_MS`]; callers that mimic it do so); a PING
/// not answered within `timeout` closes the connection, and its calls fail.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Keepalive {
    /// Pause between PINGs.
    pub time: Duration,
    /// How long a PING may wait for its answer (etcdctl default 6 s).
    pub timeout: Duration,
}

/// grpc-go's floor on the keepalive interval ("Adjusting keepalive ping interval to
/// minimum period of 10s"), in milliseconds.
pub const KEEPALIVE_TIME_MIN_MS: u64 = 10_000;

/// One endpoint as etcdctl accepts it: `host:port`, `http://host:port` or
/// `https://host:port`.
#[derive(Clone, Debug)]
pub struct Endpoint {
    url: PeerUrl,
}

impl Endpoint {
    /// Parses an endpoint; no scheme means `http://` (etcd clientv3). Errors name the
    /// endpoint and the problem.
    pub fn parse(text: &str) -> Result<Endpoint, String> {
        let full = if text.contains("://") {
            text.to_string()
        } else {
            format!("http://{text}")
        };
        let url = PeerUrl::parse(&full).map_err(|e| e.replace("peer URL", "endpoint"))?;
        Ok(Endpoint { url })
    }

    /// Whether the endpoint is `https://`.
    pub fn is_tls(&self) -> bool {
        self.url.tls
    }

    /// `host:port` as given.
    pub fn authority(&self) -> &str {
        self.url.authority.as_str()
    }
}

/// A gRPC connection to one endpoint. Per-core (`!Send`): the HTTP/2 connection runs as a
/// task on the current glommio executor and ends when the `Client` is dropped.
pub struct Client {
    send_request: SendRequest<Bytes>,
    authority: Authority,
    tls: bool,
    token: RefCell<Option<String>>,
    /// Calls open on the connection (the keepalive pings only while some are).
    open_calls: Rc<Cell<usize>>,
}

impl Client {
    /// Connects within `options.dial_timeout`, trying again after a refused connection or
    /// a failed TLS handshake, as grpc-go. Errors: UNAVAILABLE with the reason (no TLS
    /// configured for `https://`, an HTTP/2 handshake failure), DEADLINE_EXCEEDED
    /// "context deadline exceeded" when the dial timeout passes (what etcdctl 3.4
    /// reports for an endpoint it cannot reach or whose certificate does not verify).
    pub async fn connect(endpoint: &Endpoint, options: &ClientOptions) -> Result<Client, Status> {
        match with_deadline(options.dial_timeout, dial(endpoint, options)).await {
            Some(result) => result,
            None => Err(Status::deadline_exceeded()),
        }
    }

    /// Sets the auth token sent as `token` metadata on every later call (etcd's
    /// `Authenticate` answer); `None` sends none.
    pub fn set_token(&self, token: Option<String>) {
        *self.token.borrow_mut() = token;
    }

    /// The auth token sent on every call, if any.
    pub fn token(&self) -> Option<String> {
        self.token.borrow().clone()
    }

    /// A unary call to `path` (e.g. `/etcdserverpb.KV/Range`) that must end within
    /// `timeout`. Errors: the server's status, DEADLINE_EXCEEDED "context deadline
    /// exceeded", CANCELLED for a reset stream, UNAVAILABLE for a broken connection,
    /// INTERNAL for an OK answer without a message or an undecodable one.
    pub async fn unary<Req, Resp>(
        &self,
        path: &str,
        request: &Req,
        timeout: Duration,
    ) -> Result<Resp, Status>
    where
        Req: prost::Message,
        Resp: prost::Message + Default,
    {
        let call = async {
            let mut call = self.open(path, Some(timeout)).await?;
            call.send(request)?;
            call.close_send()?;
            let message = call.message::<Resp>().await?;
            let status = call.finish().await;
            match (message, status) {
                (_, Err(status)) => Err(status),
                (Some(message), Ok(())) => Ok(message),
                (None, Ok(())) => Err(Status::new(
                    Code::Internal,
                    "cairn: server answered OK with no message",
                )),
            }
        };
        with_deadline(timeout, call)
            .await
            .unwrap_or_else(|| Err(Status::deadline_exceeded()))
    }

    /// Opens a streaming call to `path` (client, server or bidirectional streaming);
    /// `timeout` bounds the whole call on the server (`grpc-timeout`), `None` for calls
    /// that last until closed (Watch). Errors as [`Client::unary`].
    pub async fn open(&self, path: &str, timeout: Option<Duration>) -> Result<Call, Status> {
        self.open_with_metadata(path, timeout, &[]).await
    }

    /// [`Client::open`] with extra gRPC metadata on the call, as `(name, value)` pairs
    /// (lower-case ASCII names), e.g. etcd's `hasleader: true`
    /// (`clientv3.WithRequireLeader`). Errors as [`Client::open`]; INTERNAL for a name
    /// or value HTTP/2 cannot carry.
    pub async fn open_with_metadata(
        &self,
        path: &str,
        timeout: Option<Duration>,
        metadata: &[(&'static str, &str)],
    ) -> Result<Call, Status> {
        let mut request = self.request(path, timeout)?;
        for (name, value) in metadata {
            let value = HeaderValue::from_str(value)
                .map_err(|e| Status::new(Code::Internal, format!("bad metadata {name}: {e}")))?;
            request.headers_mut().insert(*name, value);
        }
        let mut send_request = self
            .send_request
            .clone()
            .ready()
            .await
            .map_err(|e| status_from_h2(&e))?;
        let (response, send) = send_request
            .send_request(request, false)
            .map_err(|e| status_from_h2(&e))?;
        Ok(Call {
            _open: OpenCall::new(&self.open_calls),
            send,
            response: Some(response),
            body: None,
            decoder: MessageDecoder::new(CLIENT_RECEIVE_BYTES_MAX),
        })
    }

    fn request(&self, path: &str, timeout: Option<Duration>) -> Result<Request<()>, Status> {
        let bad = |e: &dyn std::fmt::Display| {
            Status::new(
                Code::Internal,
                format!("cannot build a request to {path}: {e}"),
            )
        };
        let uri = Uri::builder()
            .scheme(if self.tls {
                Scheme::HTTPS
            } else {
                Scheme::HTTP
            })
            .authority(self.authority.clone())
            .path_and_query(path)
            .build()
            .map_err(|e| bad(&e))?;
        let mut request = Request::post(uri).body(()).map_err(|e| bad(&e))?;
        let headers = request.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
        headers.insert(TE, HeaderValue::from_static("trailers"));
        if let Some(timeout) = timeout {
            let value =
                HeaderValue::from_str(&format_grpc_timeout(timeout)).map_err(|e| bad(&e))?;
            headers.insert("grpc-timeout", value);
        }
        if let Some(token) = self.token.borrow().as_deref() {
            let value = HeaderValue::from_str(token).map_err(|e| bad(&e))?;
            headers.insert("token", value);
        }
        Ok(request)
    }
}

/// One open call: messages out with [`Call::send`], in with [`Call::message`], the
/// status with [`Call::finish`].
pub struct Call {
    _open: OpenCall,
    send: SendStream<Bytes>,
    response: Option<h2::client::ResponseFuture>,
    body: Option<RecvStream>,
    decoder: MessageDecoder,
}

impl Call {
    /// Queues one request message (h2 buffers it; flow control is h2's). Errors:
    /// CANCELLED or UNAVAILABLE when the stream or connection is gone.
    pub fn send<M: prost::Message>(&mut self, message: &M) -> Result<(), Status> {
        self.send
            .send_data(encode_message(&message.encode_to_vec()), false)
            .map_err(|e| status_from_h2(&e))
    }

    /// Ends the request side (half-close); the server's messages keep coming.
    pub fn close_send(&mut self) -> Result<(), Status> {
        self.send
            .send_data(Bytes::new(), true)
            .map_err(|e| status_from_h2(&e))
    }

    /// The next response message; `Ok(None)` once the server ended its messages (then
    /// [`Call::finish`] gives the status). A Trailers-Only error answer is returned here.
    /// Cancel-safe: a future dropped before it completes loses no message (so it can be
    /// raced against other input, as `cairnctl watch -i` does).
    pub async fn message<M: prost::Message + Default>(&mut self) -> Result<Option<M>, Status> {
        if let Some(pending) = self.response.as_mut() {
            let response = pending.await;
            self.response = None;
            let response = response.map_err(|e| status_from_h2(&e))?;
            if let Some(status) = status_in(response.headers()) {
                if status.code != Code::Ok {
                    return Err(status);
                }
            }
            check_response_head(&response)?;
            self.body = Some(response.into_body());
        }
        let Some(body) = self.body.as_mut() else {
            return Ok(None);
        };
        match next_message(body, &mut self.decoder).await {
            None => Ok(None),
            Some(Err(status)) => Err(status),
            Some(Ok(bytes)) => M::decode(bytes).map(Some).map_err(|e| {
                Status::new(
                    Code::Internal,
                    format!("grpc: failed to unmarshal the received message {e}"),
                )
            }),
        }
    }

    /// The call's status from the trailers, after the last message: `Ok` for OK.
    pub async fn finish(&mut self) -> Result<(), Status> {
        match self.body.as_mut() {
            Some(body) => read_trailer_status(body).await,
            None => Err(Status::new(
                Code::Internal,
                "cairn: finish called before the response arrived",
            )),
        }
    }
}

/// Counts a [`Call`] in its client's open calls while it lives.
struct OpenCall(Rc<Cell<usize>>);

impl OpenCall {
    fn new(count: &Rc<Cell<usize>>) -> OpenCall {
        count.set(count.get() + 1);
        OpenCall(count.clone())
    }
}

impl Drop for OpenCall {
    fn drop(&mut self) {
        self.0.set(self.0.get() - 1);
    }
}

/// Sends [`Keepalive`] PINGs on `ping_pong`'s connection while `open_calls` is not
/// zero; returns when a PING fails or goes unanswered for `keepalive.timeout` (the
/// caller then drops the connection).
async fn keep_alive(
    mut ping_pong: h2::PingPong,
    keepalive: Keepalive,
    open_calls: Rc<Cell<usize>>,
) {
    loop {
        glommio::timer::sleep(keepalive.time).await;
        if open_calls.get() == 0 {
            continue;
        }
        match with_deadline(keepalive.timeout, ping_pong.ping(h2::Ping::opaque())).await {
            Some(Ok(_pong)) => {}
            Some(Err(error)) => {
                tracing::debug!(%error, "client: keepalive PING failed");
                return;
            }
            None => {
                tracing::debug!(
                    timeout_ms = keepalive.timeout.as_millis() as u64,
                    "client: keepalive PING not answered; closing the connection"
                );
                return;
            }
        }
    }
}

/// `f`, or `None` if `duration` passes first.
pub async fn with_deadline<F: std::future::Future>(duration: Duration, f: F) -> Option<F::Output> {
    let timer = glommio::timer::sleep(duration);
    match select(pin!(f), pin!(timer)).await {
        Either::Left((value, _)) => Some(value),
        Either::Right(((), _)) => None,
    }
}

/// Pause between connection attempts while the dial timeout lasts, in milliseconds.
const DIAL_RETRY_MS: u64 = 100;

/// Most addresses of one host name tried per dial.
const RESOLVED_ADDRS_MAX: usize = 8;

/// A TCP connection to the first of `addrs` that accepts, trying again every
/// [`DIAL_RETRY_MS`] (the caller bounds the wait).
async fn connect_any(addrs: &[SocketAddr]) -> TcpStream {
    loop {
        for addr in addrs {
            if let Ok(stream) = TcpStream::connect(*addr).await {
                return stream;
            }
        }
        glommio::timer::sleep(Duration::from_millis(DIAL_RETRY_MS)).await;
    }
}

async fn dial(endpoint: &Endpoint, options: &ClientOptions) -> Result<Client, Status> {
    let unavailable = |message: String| Status::new(Code::Unavailable, message);
    let url = &endpoint.url;
    let addrs = match url.socket_addr() {
        Some(addr) => vec![addr],
        None => {
            let (host, port) = (url.host.clone(), url.port);
            glommio::executor()
                .spawn_blocking(move || {
                    (host.as_str(), port)
                        .to_socket_addrs()
                        .map(|a| a.take(RESOLVED_ADDRS_MAX).collect::<Vec<SocketAddr>>())
                })
                .await
                .map_err(|e| unavailable(format!("resolving {} failed: {e}", url.text)))?
        }
    };
    let tls = match (url.tls, options.tls.clone()) {
        (false, _) => None,
        (true, Some(config)) => {
            let name = rustls_pki_types::ServerName::try_from(url.host.clone())
                .map_err(|e| unavailable(format!("invalid TLS server name {:?}: {e}", url.host)))?;
            Some((tokio_rustls::TlsConnector::from(config), name))
        }
        (true, None) => {
            return Err(unavailable(format!(
                "{} needs TLS, which is not configured",
                url.text
            )))
        }
    };
    // grpc-go keeps dialing until the dial deadline (the caller's `with_deadline`), after
    // a refused connection as after a failed TLS handshake (a server certificate that
    // does not verify), so both end as etcdctl's do: "context deadline exceeded".
    let io = loop {
        let stream = connect_any(&addrs).await;
        let _ = stream.set_nodelay(true);
        let Some((connector, name)) = &tls else {
            break MaybeTls::Plain(stream.compat());
        };
        match connector.connect(name.clone(), stream.compat()).await {
            Ok(tls) => break MaybeTls::Tls(Box::new(tls)),
            Err(error) => {
                tracing::debug!(%error, endpoint = %url.text, "client: TLS handshake failed");
                glommio::timer::sleep(Duration::from_millis(DIAL_RETRY_MS)).await;
            }
        }
    };
    let (send_request, mut connection) = h2::client::Builder::new()
        .enable_push(false)
        .initial_window_size(1 << 20)
        .initial_connection_window_size(1 << 24)
        .handshake::<_, Bytes>(io)
        .await
        .map_err(|e| unavailable(format!("HTTP/2 handshake with {} failed: {e}", url.text)))?;
    let open_calls = Rc::new(Cell::new(0));
    let pinging = match (options.keepalive, connection.ping_pong()) {
        (Some(keepalive), Some(ping_pong)) => Some((keepalive, ping_pong)),
        _ => None,
    };
    let calls = open_calls.clone();
    glommio::spawn_local(async move {
        let run = async {
            if let Err(error) = connection.await {
                tracing::debug!(%error, "client: HTTP/2 connection ended");
            }
        };
        match pinging {
            // The first to end wins: the connection, or a failed keepalive, which drops it.
            Some((keepalive, ping_pong)) => {
                select(pin!(run), pin!(keep_alive(ping_pong, keepalive, calls))).await;
            }
            None => run.await,
        }
    })
    .detach();
    Ok(Client {
        send_request,
        authority: url.authority.clone(),
        tls: url.tls,
        token: RefCell::new(None),
        open_calls,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_as_etcdctl_accepts_them() {
        let plain = Endpoint::parse("127.0.0.1:2379").unwrap();
        assert!(!plain.is_tls());
        assert_eq!(plain.authority(), "127.0.0.1:2379");
        assert!(!Endpoint::parse("http://localhost:2379").unwrap().is_tls());
        assert!(Endpoint::parse("https://10.0.0.1:2379").unwrap().is_tls());
        let error = Endpoint::parse("ftp://10.0.0.1:2379").unwrap_err();
        assert!(error.contains("invalid endpoint"), "{error}");
        assert!(Endpoint::parse("10.0.0.1").is_err());
    }
}
