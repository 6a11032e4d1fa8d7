//! HTTP/1.1 on the client port (etcd serves `/health`, `/version`, `/metrics` and the JSON
//! gateway `/v3/*` there): requests parsed with `httparse`, bodies by `Content-Length`,
//! keep-alive, `Connection: close`, pipelining. Chunked request bodies are refused with
//! 411 Length Required (RFC 9112 §6.3 allows a server to require Content-Length).
//! Response bodies have a `Content-Length`, or are streamed with chunked transfer coding
//! ([`HttpReply::Streamed`], e.g. the gateway's watch stream).

use std::net::SocketAddr;
use std::rc::Rc;

use bytes::{Bytes, BytesMut};
use futures::future::{select, Either, LocalBoxFuture};
use futures::stream::{LocalBoxStream, StreamExt};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::shutdown::Shutdown;

/// Largest request head (request line + headers) accepted, in bytes; larger → 431.
pub const HTTP1_HEAD_BYTES_MAX: usize = 64 * 1024;
/// Most headers accepted in one request; more → 431.
pub const HTTP1_HEADERS_MAX: usize = 100;
const READ_CHUNK_BYTES: usize = 16 * 1024;

/// One HTTP/1.1 request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpRequest {
    /// The method, e.g. `"GET"`.
    pub method: String,
    /// The request target as sent, including the query, e.g. `"/metrics?x=1"`.
    pub path: String,
    /// The headers in order, names as sent (compare case-insensitively).
    pub headers: Vec<(String, String)>,
    /// The body (empty without `Content-Length`).
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

/// The answer to an [`HttpRequest`]; the server adds `Content-Length` and `Connection`.
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
    /// the connection or the server shuts down (then the body is ended at once).
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

/// A request head that could not be served; answered, then the connection closes.
#[derive(Debug, PartialEq, Eq)]
enum Refusal {
    /// Status and message.
    Status(u16, &'static str),
}

/// A parsed request head: the request without its body, the body length, and whether the
/// connection stays open afterwards.
#[derive(Debug, PartialEq, Eq)]
struct Head {
    request: HttpRequest,
    head_len: usize,
    body_len: usize,
    keep_alive: bool,
}

/// Parses a request head from the start of `buf`: `Ok(None)` when more bytes are needed.
fn parse_head(buf: &[u8], max_body_bytes: usize) -> Result<Option<Head>, Refusal> {
    let mut headers = [httparse::EMPTY_HEADER; HTTP1_HEADERS_MAX];
    let mut parsed = httparse::Request::new(&mut headers);
    let head_len = match parsed.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if buf.len() > HTTP1_HEAD_BYTES_MAX => {
            return Err(Refusal::Status(431, "request header fields too large"))
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => {
            return Err(Refusal::Status(431, "request header fields too large"))
        }
        Err(_) => return Err(Refusal::Status(400, "malformed request")),
    };
    if head_len > HTTP1_HEAD_BYTES_MAX {
        return Err(Refusal::Status(431, "request header fields too large"));
    }
    let version = parsed.version.unwrap_or(1);
    let mut request = HttpRequest {
        method: parsed.method.unwrap_or("").to_string(),
        path: parsed.path.unwrap_or("").to_string(),
        headers: Vec::with_capacity(parsed.headers.len()),
        body: Bytes::new(),
    };
    let mut body_len: Option<usize> = None;
    let mut connection_close = version == 0;
    for header in parsed.headers.iter() {
        let value = String::from_utf8_lossy(header.value).into_owned();
        if header.name.eq_ignore_ascii_case("content-length") {
            let len = value
                .trim()
                .parse::<usize>()
                .map_err(|_| Refusal::Status(400, "bad content-length"))?;
            if body_len.is_some_and(|previous| previous != len) {
                return Err(Refusal::Status(400, "bad content-length"));
            }
            body_len = Some(len);
        } else if header.name.eq_ignore_ascii_case("transfer-encoding") {
            return Err(Refusal::Status(411, "length required"));
        } else if header.name.eq_ignore_ascii_case("connection") {
            for token in value.split(',').map(str::trim) {
                if token.eq_ignore_ascii_case("close") {
                    connection_close = true;
                } else if token.eq_ignore_ascii_case("keep-alive") && version == 0 {
                    connection_close = false;
                }
            }
        }
        request.headers.push((header.name.to_string(), value));
    }
    let body_len = body_len.unwrap_or(0);
    if body_len > max_body_bytes {
        return Err(Refusal::Status(413, "request body too large"));
    }
    Ok(Some(Head {
        request,
        head_len,
        body_len,
        keep_alive: !connection_close,
    }))
}

fn reason_phrase(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        301 => "Moved Permanently",
        302 => "Found",
        304 => "Not Modified",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        411 => "Length Required",
        412 => "Precondition Failed",
        413 => "Payload Too Large",
        415 => "Unsupported Media Type",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Unknown",
    }
}

/// The response head; the body follows unless the request was HEAD.
fn encode_response_head(response: &HttpResponse, keep_alive: bool) -> Vec<u8> {
    encode_head(response, keep_alive, Some(response.body.len()))
}

/// The response head with `Content-Length: body_len`, or with `Transfer-Encoding: chunked`
/// when `body_len` is `None`.
fn encode_head(response: &HttpResponse, keep_alive: bool, body_len: Option<usize>) -> Vec<u8> {
    let mut head = format!(
        "HTTP/1.1 {} {}\r\n",
        response.status,
        reason_phrase(response.status)
    );
    if !response.content_type.is_empty() {
        head.push_str("Content-Type: ");
        head.push_str(&response.content_type);
        head.push_str("\r\n");
    }
    for (name, value) in &response.headers {
        head.push_str(name);
        head.push_str(": ");
        head.push_str(value);
        head.push_str("\r\n");
    }
    match body_len {
        Some(len) => head.push_str(&format!("Content-Length: {len}\r\n")),
        None => head.push_str("Transfer-Encoding: chunked\r\n"),
    }
    if !keep_alive {
        head.push_str("Connection: close\r\n");
    }
    head.push_str("\r\n");
    head.into_bytes()
}

async fn write_response<T: AsyncWrite + Unpin>(
    stream: &mut T,
    response: &HttpResponse,
    keep_alive: bool,
    head_only: bool,
) -> std::io::Result<()> {
    let head = encode_response_head(response, keep_alive);
    if head_only || response.body.is_empty() {
        stream.write_all(&head).await?;
    } else if response.body.len() <= READ_CHUNK_BYTES {
        let mut all = head;
        all.extend_from_slice(&response.body);
        stream.write_all(&all).await?;
    } else {
        stream.write_all(&head).await?;
        stream.write_all(&response.body).await?;
    }
    stream.flush().await
}

/// How a streamed response ended.
enum StreamEnd {
    /// The body was sent whole; the connection may serve the next request.
    Done,
    /// The client closed the connection, or the server is shutting down: close it.
    Close,
}

/// Sends `head` then `body` chunked, until the body ends, the client closes the connection
/// (a read returns 0; bytes of a pipelined request are kept in `buf`) or `shutdown`.
async fn write_streamed<T: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut T,
    buf: &mut BytesMut,
    head: &HttpResponse,
    mut body: LocalBoxStream<'static, Bytes>,
    keep_alive: bool,
    buffered_bytes_max: usize,
    shutdown: &Shutdown,
) -> std::io::Result<StreamEnd> {
    stream
        .write_all(&encode_head(head, keep_alive, None))
        .await?;
    stream.flush().await?;
    loop {
        let next = {
            let chunk = std::pin::pin!(body.next());
            let read = std::pin::pin!(read_more(stream, buf));
            let stop = std::pin::pin!(shutdown.wait());
            match select(chunk, select(read, stop)).await {
                Either::Left((chunk, _)) => Either::Left(chunk),
                Either::Right((Either::Left((read, _)), _)) => Either::Right(Some(read?)),
                Either::Right((Either::Right(((), _)), _)) => Either::Right(None),
            }
        };
        match next {
            Either::Left(Some(chunk)) if chunk.is_empty() => {}
            Either::Left(Some(chunk)) => {
                let mut framed = format!("{:x}\r\n", chunk.len()).into_bytes();
                framed.extend_from_slice(&chunk);
                framed.extend_from_slice(b"\r\n");
                stream.write_all(&framed).await?;
                stream.flush().await?;
            }
            Either::Left(None) => {
                stream.write_all(b"0\r\n\r\n").await?;
                stream.flush().await?;
                return Ok(StreamEnd::Done);
            }
            Either::Right(Some(0)) => return Ok(StreamEnd::Close),
            Either::Right(Some(_)) if buf.len() > buffered_bytes_max => {
                return Ok(StreamEnd::Close)
            }
            Either::Right(Some(_)) => {}
            Either::Right(None) => {
                stream.write_all(b"0\r\n\r\n").await?;
                stream.flush().await?;
                return Ok(StreamEnd::Close);
            }
        }
    }
}

/// Reads more bytes into `buf`; `Ok(0)` at end of stream. Cancel-safe: if the future is
/// dropped mid-read, `buf` keeps exactly the bytes it had.
/// [`read_more`] that gives up at `deadline` (`Ok(None)`); no deadline: waits as long as
/// it takes.
async fn read_more_by<T: AsyncRead + Unpin>(
    stream: &mut T,
    buf: &mut BytesMut,
    deadline: Option<std::time::Instant>,
) -> std::io::Result<Option<usize>> {
    let Some(deadline) = deadline else {
        return read_more(stream, buf).await.map(Some);
    };
    let read = std::pin::pin!(read_more(stream, buf));
    let timer = std::pin::pin!(glommio::timer::sleep(
        deadline.saturating_duration_since(std::time::Instant::now())
    ));
    match select(read, timer).await {
        Either::Left((read, _)) => read.map(Some),
        Either::Right(_) => Ok(None),
    }
}

/// A request that did not arrive within [`crate::ServerLimits::http1_request_timeout`]:
/// the connection is closed without an answer, as Go's `http.Server` does.
fn request_too_slow(peer: Option<SocketAddr>, limits: &crate::ServerLimits) -> std::io::Result<()> {
    tracing::debug!(
        ?peer,
        timeout_ms = limits.http1_request_timeout.as_millis() as u64,
        "net: HTTP/1.1 request not complete in time, disconnecting"
    );
    Ok(())
}

async fn read_more<T: AsyncRead + Unpin>(
    stream: &mut T,
    buf: &mut BytesMut,
) -> std::io::Result<usize> {
    struct Truncate<'a> {
        buf: &'a mut BytesMut,
        len: usize,
    }
    impl Drop for Truncate<'_> {
        fn drop(&mut self) {
            self.buf.truncate(self.len);
        }
    }
    let start = buf.len();
    buf.resize(start + READ_CHUNK_BYTES, 0);
    let mut guard = Truncate { buf, len: start };
    let read = stream.read(&mut guard.buf[start..]).await?;
    guard.len = start + read;
    Ok(read)
}

/// Serves HTTP/1.1 requests on `stream` until the client closes, asks to close, a request
/// is refused, or `shutdown` is triggered (checked between requests). `buf` holds bytes
/// already read from the connection.
pub(crate) async fn serve_http1<T: AsyncRead + AsyncWrite + Unpin, H: HttpHandler>(
    mut stream: T,
    mut buf: BytesMut,
    http: Rc<H>,
    limits: &crate::ServerLimits,
    shutdown: Shutdown,
    peer: Option<SocketAddr>,
) -> std::io::Result<()> {
    let max_body_bytes = limits.http1_max_body_bytes;
    loop {
        // Set at a request's first byte: the whole request must arrive by then.
        let mut request_deadline: Option<std::time::Instant> = None;
        let head = loop {
            match parse_head(&buf, max_body_bytes) {
                Ok(Some(head)) => break head,
                Ok(None) => {}
                Err(Refusal::Status(status, message)) => {
                    let response = HttpResponse::text(status, message);
                    return write_response(&mut stream, &response, false, false).await;
                }
            }
            let idle = buf.is_empty();
            if idle && shutdown.is_triggered() {
                return Ok(());
            }
            if !idle && request_deadline.is_none() {
                request_deadline = Some(std::time::Instant::now() + limits.http1_request_timeout);
            }
            let read = {
                let read = std::pin::pin!(read_more_by(&mut stream, &mut buf, request_deadline));
                let stop = std::pin::pin!(shutdown.wait());
                match select(read, stop).await {
                    Either::Left((read, _)) => Some(read?),
                    Either::Right(((), _)) => None,
                }
            };
            match read {
                Some(Some(0)) => return Ok(()),
                Some(Some(_)) => {}
                Some(None) => return request_too_slow(peer, limits),
                // Shutdown while waiting: an idle connection closes; a partial request
                // is still read to its end (within its deadline).
                None if idle => return Ok(()),
                None => match read_more_by(&mut stream, &mut buf, request_deadline).await? {
                    Some(0) => return Ok(()),
                    Some(_) => {}
                    None => return request_too_slow(peer, limits),
                },
            }
        };
        let _ = buf.split_to(head.head_len);
        let deadline = request_deadline
            .unwrap_or_else(|| std::time::Instant::now() + limits.http1_request_timeout);
        while buf.len() < head.body_len {
            match read_more_by(&mut stream, &mut buf, Some(deadline)).await? {
                Some(0) => return Ok(()),
                Some(_) => {}
                None => return request_too_slow(peer, limits),
            }
        }
        let mut request = head.request;
        request.body = buf.split_to(head.body_len).freeze();
        let head_only = request.method == "HEAD";
        let reply = http.clone().reply(request).await;
        let keep_alive = head.keep_alive && !shutdown.is_triggered();
        match reply {
            HttpReply::Full(response) => {
                write_response(&mut stream, &response, keep_alive, head_only).await?;
            }
            HttpReply::Streamed(response, _) if head_only => {
                write_response(&mut stream, &response, keep_alive, true).await?;
            }
            HttpReply::Streamed(response, body) => {
                let buffered_bytes_max = HTTP1_HEAD_BYTES_MAX + max_body_bytes;
                let end = write_streamed(
                    &mut stream,
                    &mut buf,
                    &response,
                    body,
                    keep_alive,
                    buffered_bytes_max,
                    &shutdown,
                )
                .await?;
                if matches!(end, StreamEnd::Close) {
                    return Ok(());
                }
            }
        }
        if !keep_alive {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_get_with_query() {
        let raw = b"GET /health?serializable=true HTTP/1.1\r\nHost: x\r\n\r\nrest";
        let head = parse_head(raw, 10).unwrap().unwrap();
        assert_eq!(head.request.method, "GET");
        assert_eq!(head.request.path, "/health?serializable=true");
        assert_eq!(
            head.request.headers,
            vec![("Host".to_string(), "x".to_string())]
        );
        assert_eq!(head.request.header("host"), Some("x"));
        assert_eq!(head.head_len, raw.len() - 4);
        assert_eq!(head.body_len, 0);
        assert!(head.keep_alive);
    }

    #[test]
    fn partial_head_needs_more() {
        assert_eq!(parse_head(b"GET / HTTP/1.1\r\nHost:", 10), Ok(None));
        assert_eq!(parse_head(b"", 10), Ok(None));
    }

    #[test]
    fn content_length_and_connection() {
        let raw = b"POST /v3/kv/range HTTP/1.1\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}";
        let head = parse_head(raw, 10).unwrap().unwrap();
        assert_eq!(head.body_len, 2);
        assert!(!head.keep_alive);
        let http10 = parse_head(b"GET / HTTP/1.0\r\n\r\n", 10).unwrap().unwrap();
        assert!(!http10.keep_alive);
        let http10_ka = parse_head(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", 10)
            .unwrap()
            .unwrap();
        assert!(http10_ka.keep_alive);
    }

    #[test]
    fn refusals() {
        assert_eq!(
            parse_head(b"POST / HTTP/1.1\r\nContent-Length: 11\r\n\r\n", 10),
            Err(Refusal::Status(413, "request body too large"))
        );
        assert_eq!(
            parse_head(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", 10),
            Err(Refusal::Status(411, "length required"))
        );
        assert_eq!(
            parse_head(b"POST / HTTP/1.1\r\nContent-Length: x\r\n\r\n", 10),
            Err(Refusal::Status(400, "bad content-length"))
        );
        assert_eq!(
            parse_head(
                b"GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
                10
            ),
            Err(Refusal::Status(400, "bad content-length"))
        );
        assert_eq!(
            parse_head(b"\x01\x02 / HTTP/1.1\r\n\r\n", 10),
            Err(Refusal::Status(400, "malformed request"))
        );
        let huge = vec![b'a'; HTTP1_HEAD_BYTES_MAX + 1];
        let mut raw = b"GET /".to_vec();
        raw.extend(huge);
        assert_eq!(
            parse_head(&raw, 10),
            Err(Refusal::Status(431, "request header fields too large"))
        );
    }

    #[test]
    fn response_head_bytes() {
        let response = HttpResponse {
            status: 200,
            content_type: "application/json".to_string(),
            body: Bytes::from_static(b"{\"health\":\"true\"}"),
            headers: vec![("Allow".to_string(), "GET".to_string())],
        };
        assert_eq!(
            encode_response_head(&response, true),
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nAllow: GET\r\nContent-Length: 17\r\n\r\n"
        );
        let closing = HttpResponse::text(404, "");
        assert_eq!(
            encode_response_head(&closing, false),
            &b"HTTP/1.1 404 Not Found\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"[..]
        );
    }
}
