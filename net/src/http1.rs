//! HTTP/1.1 on the client port (etcd serves `/health`, `/version`, `/metrics` and the JSON
//! gateway `/v3/*` there), served by hyper 1.x (`server::conn::http1`) over the glommio
//! connection (`hyper_util::rt::TokioIo` over the connection's tokio-io traits): keep-alive,
//! `Connection: close`, pipelining, `Content-Length` and chunked request bodies; response
//! bodies whole with `Content-Length`, or streamed chunked ([`HttpReply::Streamed`], e.g.
//! the gateway's watch stream). Header names are written in title case (`Content-Type`) as
//! Go's `net/http` writes them; no `Date` header.
//!
//! Limits and refusals: a request head over [`HTTP1_HEAD_BYTES_MAX`] bytes or
//! [`HTTP1_HEADERS_MAX`] headers → 431 (hyper); a malformed head → 400 (hyper); a body over
//! [`crate::ServerLimits::http1_max_body_bytes`] → 413 and the connection closes. A request
//! must arrive whole, head and body, within [`crate::ServerLimits::http1_request_timeout`]
//! from its first byte, or the connection is closed without an answer (as Go's
//! `http.Server` `ReadTimeout`); an idle keep-alive connection has no such limit. On
//! shutdown idle connections close and a request being served is answered first
//! (hyper's graceful shutdown).

use std::cell::Cell;
use std::convert::Infallible;
use std::future::{poll_fn, Future};
use std::io;
use std::net::SocketAddr;
use std::pin::{pin, Pin};
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use futures::future::LocalBoxFuture;
use futures::stream::{LocalBoxStream, StreamExt};
use http_body_util::{BodyExt, Limited};
use hyper::body::{Frame, Incoming, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::notify::Notify;
use crate::shutdown::Shutdown;

/// Largest request head (request line + headers) accepted, in bytes; larger → 431.
pub const HTTP1_HEAD_BYTES_MAX: usize = 64 * 1024;
/// Most headers accepted in one request; more → 431.
pub const HTTP1_HEADERS_MAX: usize = 100;

/// One HTTP/1.1 request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpRequest {
    /// The method, e.g. `"GET"`.
    pub method: String,
    /// The request target as sent, including the query, e.g. `"/metrics?x=1"`.
    pub path: String,
    /// The headers in order, names lower-cased (compare case-insensitively).
    pub headers: Vec<(String, String)>,
    /// The body (`Content-Length` or de-chunked; empty without one).
    pub body: Bytes,
}

impl HttpRequest {
    /// The first header named `name` (ASCII case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// The answer to an [`HttpRequest`]; the server adds `Content-Length` (and `Connection:
/// close` when it closes after a refusal).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpResponse {
    /// The status code, e.g. 200.
    pub status: u16,
    /// The `Content-Type` header value, e.g. `"application/json"`; empty → none sent.
    pub content_type: String,
    /// The body.
    pub body: Bytes,
    /// Further headers `(name, value)`, e.g. `("Allow", "GET")`.
    pub headers: Vec<(String, String)>,
}

impl HttpResponse {
    /// A `text/plain; charset=utf-8` response.
    pub fn text(status: u16, body: impl Into<String>) -> HttpResponse {
        HttpResponse {
            status,
            content_type: "text/plain; charset=utf-8".to_string(),
            body: Bytes::from(body.into()),
            headers: Vec::new(),
        }
    }
}

/// An answer whose body is sent whole or streamed.
pub enum HttpReply {
    /// A response with its whole body (sent with `Content-Length`).
    Full(HttpResponse),
    /// A response whose `body` field is ignored: its body is each item of the stream as it
    /// comes, sent as one chunk (`Transfer-Encoding: chunked`, RFC 9112 §7.1) and flushed;
    /// the end of the stream ends the body. The stream is dropped when the client closes
    /// the connection; when the server shuts down the body is ended at once.
    Streamed(HttpResponse, LocalBoxStream<'static, Bytes>),
}

impl std::fmt::Debug for HttpReply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HttpReply::Full(response) => f.debug_tuple("Full").field(response).finish(),
            HttpReply::Streamed(head, _) => f.debug_tuple("Streamed").field(head).finish(),
        }
    }
}

/// The application side of the HTTP/1.1 endpoints (one per core).
pub trait HttpHandler: 'static {
    /// Answers one request.
    fn handle(self: Rc<Self>, request: HttpRequest) -> LocalBoxFuture<'static, HttpResponse>;

    /// Answers one request, possibly with a streamed body; the server calls this one. The
    /// default answers with [`HttpHandler::handle`]'s whole response.
    fn reply(self: Rc<Self>, request: HttpRequest) -> LocalBoxFuture<'static, HttpReply> {
        let response = self.handle(request);
        Box::pin(async move { HttpReply::Full(response.await) })
    }
}

/// What the connection's reads and the requests being served tell the request timer.
#[derive(Default)]
struct Activity {
    /// When the first byte of the request being received arrived; `None` while idle or
    /// while a request is being served.
    request_started: Cell<Option<Instant>>,
    /// A request's body is complete and its answer is not yet done.
    in_service: Cell<bool>,
    /// Bytes arrived while a request was served (a pipelined request).
    read_in_service: Cell<bool>,
    changed: Notify,
}

impl Activity {
    fn bytes_read(&self) {
        if self.in_service.get() {
            self.read_in_service.set(true);
        } else if self.request_started.get().is_none() {
            self.request_started.set(Some(Instant::now()));
            self.changed.notify();
        }
    }

    /// A request arrived whole: the timer stops.
    fn service_started(&self) {
        self.in_service.set(true);
        self.request_started.set(None);
        self.changed.notify();
    }

    /// Its answer is done: bytes read meanwhile start the next request's timer.
    fn service_ended(&self) {
        self.in_service.set(false);
        if self.read_in_service.replace(false) {
            self.request_started.set(Some(Instant::now()));
            self.changed.notify();
        }
    }
}

/// The connection as hyper reads it: the bytes already read while sniffing the protocol,
/// then the stream; every read is reported to the request timer.
struct Tracked<T> {
    prefix: Bytes,
    inner: T,
    activity: Rc<Activity>,
}

impl<T: AsyncRead + Unpin> AsyncRead for Tracked<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.prefix.is_empty() {
            let n = this.prefix.len().min(buf.remaining());
            buf.put_slice(&this.prefix.split_to(n));
            this.activity.bytes_read();
            return Poll::Ready(Ok(()));
        }
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            this.activity.bytes_read();
        }
        polled
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Tracked<T> {
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

/// A response body: whole, or a stream (local: neither needs to be `Send`).
enum Body {
    Full(Option<Bytes>),
    Streamed(EndsService),
}

impl hyper::body::Body for Body {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        match self.get_mut() {
            Body::Full(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            Body::Streamed(stream) => stream.poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self, Body::Full(None))
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Body::Full(bytes) => SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64)),
            Body::Streamed(_) => SizeHint::default(),
        }
    }
}

/// A streamed body that tells the request timer when it is done (ended or dropped), and
/// ends at shutdown.
struct EndsService {
    stream: LocalBoxStream<'static, Bytes>,
    activity: Option<Rc<Activity>>,
    stop: LocalBoxFuture<'static, ()>,
}

impl EndsService {
    fn end(&mut self) {
        if let Some(activity) = self.activity.take() {
            activity.service_ended();
        }
    }
}

impl EndsService {
    fn poll_frame(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if self.stop.as_mut().poll(cx).is_ready() {
            self.end();
            return Poll::Ready(None);
        }
        loop {
            match std::task::ready!(self.stream.poll_next_unpin(cx)) {
                // An empty chunk would read as the end of a chunked body.
                Some(bytes) if bytes.is_empty() => {}
                Some(bytes) => return Poll::Ready(Some(Ok(Frame::data(bytes)))),
                None => {
                    self.end();
                    return Poll::Ready(None);
                }
            }
        }
    }
}

impl Drop for EndsService {
    fn drop(&mut self) {
        self.end();
    }
}

/// The hyper response for `reply`; `close` adds `Connection: close`.
fn to_response(
    reply: HttpReply,
    activity: &Rc<Activity>,
    shutdown: &Shutdown,
    close: bool,
) -> http::Response<Body> {
    let (head, stream) = match reply {
        HttpReply::Full(response) => (response, None),
        HttpReply::Streamed(head, stream) => (head, Some(stream)),
    };
    let mut response = http::Response::new(Body::Full(None));
    *response.status_mut() =
        http::StatusCode::from_u16(head.status).unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
    let headers = response.headers_mut();
    let content_type = (!head.content_type.is_empty())
        .then(|| ("Content-Type".to_string(), head.content_type.clone()));
    for (name, value) in content_type.iter().chain(head.headers.iter()) {
        match (
            http::HeaderName::from_bytes(name.as_bytes()),
            http::HeaderValue::from_str(value),
        ) {
            (Ok(name), Ok(value)) => {
                headers.append(name, value);
            }
            _ => tracing::warn!(%name, "net: invalid HTTP response header dropped"),
        }
    }
    let body = match stream {
        None => {
            headers.insert(http::header::CONTENT_LENGTH, head.body.len().into());
            activity.service_ended();
            Body::Full(Some(head.body))
        }
        Some(stream) => {
            let shutdown = shutdown.clone();
            Body::Streamed(EndsService {
                stream,
                activity: Some(activity.clone()),
                stop: Box::pin(async move { shutdown.wait().await }),
            })
        }
    };
    if close {
        headers.insert(
            http::header::CONNECTION,
            http::HeaderValue::from_static("close"),
        );
    }
    *response.body_mut() = body;
    response
}

/// A refusal that closes the connection.
fn refusal(status: u16, message: &'static str, activity: &Rc<Activity>) -> http::Response<Body> {
    activity.service_started();
    to_response(
        HttpReply::Full(HttpResponse::text(status, message)),
        activity,
        &Shutdown::new(),
        true,
    )
}

/// Serves one request: reads its body (within the limit), asks the handler, converts.
async fn serve_request<H: HttpHandler>(
    request: http::Request<Incoming>,
    http: Rc<H>,
    activity: Rc<Activity>,
    shutdown: Shutdown,
    max_body_bytes: usize,
) -> Result<http::Response<Body>, Infallible> {
    let declared = request
        .headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|len| len > max_body_bytes as u64) {
        return Ok(refusal(413, "request body too large", &activity));
    }
    let (parts, body) = request.into_parts();
    let body = match Limited::new(body, max_body_bytes).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(error) if error.is::<http_body_util::LengthLimitError>() => {
            return Ok(refusal(413, "request body too large", &activity));
        }
        Err(_) => return Ok(refusal(400, "malformed request body", &activity)),
    };
    activity.service_started();
    let request = HttpRequest {
        method: parts.method.as_str().to_string(),
        path: parts
            .uri
            .path_and_query()
            .map_or_else(|| parts.uri.to_string(), |p| p.as_str().to_string()),
        headers: parts
            .headers
            .iter()
            .map(|(name, value)| {
                let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
                (name.as_str().to_string(), value)
            })
            .collect(),
        body,
    };
    let reply = http.reply(request).await;
    Ok(to_response(reply, &activity, &shutdown, false))
}

/// Resolves when a request has not arrived whole within `timeout` of its first byte.
async fn request_timer(activity: Rc<Activity>, timeout: Duration) {
    loop {
        let changed = activity.changed.changed();
        match activity.request_started.get() {
            None => changed.await,
            Some(started) => {
                let left = (started + timeout).saturating_duration_since(Instant::now());
                let sleep = pin!(glommio::timer::sleep(left));
                let expired = matches!(
                    futures::future::select(pin!(changed), sleep).await,
                    futures::future::Either::Right(_)
                );
                if expired && activity.request_started.get() == Some(started) {
                    return;
                }
            }
        }
    }
}

/// A request that did not arrive within [`crate::ServerLimits::http1_request_timeout`]:
/// the connection is closed without an answer, as Go's `http.Server` does.
fn request_too_slow(peer: Option<SocketAddr>, limits: &crate::ServerLimits) {
    tracing::debug!(
        ?peer,
        timeout_ms = limits.http1_request_timeout.as_millis() as u64,
        "net: HTTP/1.1 request not complete in time, disconnecting"
    );
}

/// Serves HTTP/1.1 requests on `stream` until the client closes, asks to close, a request
/// is refused, a request is too slow, or `shutdown` is triggered (then idle connections
/// close at once, a request being served is answered first). `buf` holds bytes already
/// read from the connection.
pub(crate) async fn serve_http1<T: AsyncRead + AsyncWrite + Unpin, H: HttpHandler>(
    stream: T,
    buf: BytesMut,
    http: Rc<H>,
    limits: &crate::ServerLimits,
    shutdown: Shutdown,
    peer: Option<SocketAddr>,
) -> io::Result<()> {
    let activity = Rc::new(Activity::default());
    let io = Tracked {
        prefix: buf.freeze(),
        inner: stream,
        activity: activity.clone(),
    };
    let max_body_bytes = limits.http1_max_body_bytes;
    let service_activity = activity.clone();
    let service_shutdown = shutdown.clone();
    let service = hyper::service::service_fn(move |request| {
        serve_request(
            request,
            http.clone(),
            service_activity.clone(),
            service_shutdown.clone(),
            max_body_bytes,
        )
    });
    let mut conn = pin!(hyper::server::conn::http1::Builder::new()
        .title_case_headers(true)
        .auto_date_header(false)
        .max_headers(HTTP1_HEADERS_MAX)
        .max_buf_size(HTTP1_HEAD_BYTES_MAX)
        .serve_connection(hyper_util::rt::TokioIo::new(io), service));
    let mut timer = pin!(request_timer(activity, limits.http1_request_timeout));
    let mut stop = pin!(shutdown.wait());
    let mut stopping = false;
    poll_fn(|cx| {
        if !stopping && stop.as_mut().poll(cx).is_ready() {
            stopping = true;
            conn.as_mut().graceful_shutdown();
        }
        if timer.as_mut().poll(cx).is_ready() {
            request_too_slow(peer, limits);
            return Poll::Ready(());
        }
        conn.as_mut().poll(cx).map(|result| {
            if let Err(error) = result {
                tracing::debug!(?peer, %error, "net: HTTP/1.1 connection ended");
            }
        })
    })
    .await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_timer_runs_from_a_request_first_byte_to_its_service() {
        let activity = Rc::new(Activity::default());
        assert_eq!(activity.request_started.get(), None, "idle: no timer");
        activity.bytes_read();
        let started = activity
            .request_started
            .get()
            .expect("first byte starts it");
        activity.bytes_read();
        assert_eq!(
            activity.request_started.get(),
            Some(started),
            "later bytes keep it"
        );
        activity.service_started();
        assert_eq!(activity.request_started.get(), None, "served: stopped");
        activity.service_ended();
        assert_eq!(
            activity.request_started.get(),
            None,
            "nothing pipelined: idle"
        );
        activity.service_started();
        activity.bytes_read();
        assert_eq!(activity.request_started.get(), None, "not while serving");
        activity.service_ended();
        assert!(
            activity.request_started.get().is_some(),
            "pipelined bytes: running"
        );
    }

    #[test]
    fn responses_carry_length_then_connection() {
        let activity = Rc::new(Activity::default());
        let reply = HttpReply::Full(HttpResponse {
            status: 405,
            content_type: "text/plain".into(),
            body: Bytes::from_static(b"no\n"),
            headers: vec![
                ("Allow".into(), "GET".into()),
                ("Bad\nName".into(), "x".into()),
            ],
        });
        let response = to_response(reply, &activity, &Shutdown::new(), true);
        assert_eq!(response.status(), 405);
        let names: Vec<&str> = response.headers().keys().map(|n| n.as_str()).collect();
        assert_eq!(
            names,
            ["content-type", "allow", "content-length", "connection"],
            "invalid names dropped"
        );
        assert_eq!(response.headers()["content-length"], "3");
        assert_eq!(response.headers()["connection"], "close");
    }
}
