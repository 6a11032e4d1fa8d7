//! gRPC calls on HTTP/2 streams: the service traits and one stream's life.
//!
//! A call (grpc doc/PROTOCOL-HTTP2.md) is validated (`:method` POST, `content-type`
//! `application/grpc[+|;...]`, `grpc-timeout`, `grpc-encoding`), dispatched by path to the
//! [`GrpcService`], raced against its deadline and against a client reset, and ended with
//! `grpc-status` trailers (also for OK), or with a Trailers-Only response when it fails before
//! any message was sent.

use std::cell::RefCell;
use std::future::{poll_fn, Future};
use std::net::SocketAddr;
use std::pin::pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use futures::future::LocalBoxFuture;
use h2::server::SendResponse;
use h2::RecvStream;
use http::{header, HeaderMap, Request, StatusCode};

use crate::framing::{encode_message_header, MESSAGE_HEADER_BYTES};
use crate::panic::catch_call_panic;
use crate::status::{Code, Status};
use crate::stream::{
    response_head, send_trailers_only, trailers, CallState, Phase, COALESCE_BYTES_MAX,
};
use crate::timeout::parse_grpc_timeout;

pub use crate::stream::{Inbound, Outbound};

/// What a call knows about its request.
#[derive(Debug)]
pub struct CallContext {
    /// The method path, e.g. `"/etcdserverpb.KV/Range"`.
    pub path: String,
    /// When the call must end (from `grpc-timeout`); the server itself ends the call with
    /// DEADLINE_EXCEEDED "context deadline exceeded" at that instant.
    pub deadline: Option<Instant>,
    /// The request headers (gRPC metadata: e.g. `token` for etcd auth), pseudo-headers excluded.
    pub metadata: HeaderMap,
    /// The client's address, when known.
    pub peer: Option<SocketAddr>,
    /// The subject CommonName of the client certificate the TLS handshake verified
    /// (`--client-cert-auth`), for etcd's CN authentication; `None` without one.
    pub common_name: Option<std::sync::Arc<str>>,
}

/// How a method's messages flow.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MethodKind {
    /// One request message, one response message: [`GrpcService::unary`].
    Unary,
    /// Client, server or bidirectional streaming: [`GrpcService::streaming`].
    Streaming,
}

/// Hooks for metrics on the calls a [`GrpcService`] serves: etcd counts calls with
/// go-grpc-prometheus interceptors (`grpc_server_started_total`, `grpc_server_handled_total`,
/// `grpc_server_handling_seconds`) and message bytes in its codec (etcd
/// `etcdserver/api/v3rpc/codec.go`). Every method defaults to doing nothing; they run on
/// every call and message, so implementations must be cheap (atomics, no locks).
pub trait CallObserver {
    /// A call to `path` (e.g. `"/etcdserverpb.KV/Put"`) of kind `kind` was dispatched to the
    /// service. Calls to unknown methods or refused before dispatch are not reported (as
    /// grpc-go never runs the interceptors for them).
    fn call_started(&self, _path: &str, _kind: MethodKind) {}
    /// A call reported by [`CallObserver::call_started`] ended with `code`, `elapsed` after
    /// it started. A passed deadline ends it with DEADLINE_EXCEEDED, a client reset with
    /// CANCELLED.
    fn call_finished(&self, _path: &str, _kind: MethodKind, _code: Code, _elapsed: Duration) {}
    /// A request message of `bytes` bytes (protobuf, framing excluded) was received.
    fn message_received(&self, _bytes: usize) {}
    /// A response message of `bytes` bytes (protobuf, framing excluded) was queued to send.
    fn message_sent(&self, _bytes: usize) {}
}

/// The application side of the gRPC server (one per core; calls run as local tasks).
pub trait GrpcService: 'static {
    /// The observer of this service's calls (metrics), if any; asked once per call.
    fn observer(&self) -> Option<Rc<dyn CallObserver>> {
        None
    }

    /// The kind of the method at `path` (e.g. `"/etcdserverpb.KV/Range"`), or `None` when it
    /// is not served: the call then ends UNIMPLEMENTED with grpc-go's message ("unknown
    /// service etcdserverpb.Foo" / "unknown method Bar for service etcdserverpb.KV").
    /// [`crate::pb::method_kind`] knows every etcd method.
    fn method_kind(&self, path: &str) -> Option<MethodKind>;

    /// A unary call. `request` is the request message's protobuf bytes (framing removed, not
    /// yet decoded); `Ok` carries the response message's protobuf bytes.
    fn unary(
        self: Rc<Self>,
        ctx: CallContext,
        request: Bytes,
    ) -> LocalBoxFuture<'static, Result<Bytes, Status>>;

    /// A streaming call (bidirectional, server or client streaming). The call ends with the
    /// returned status (`Ok(())` → grpc-status 0) once the future resolves; the future is
    /// dropped if the deadline passes or the client resets the stream.
    fn streaming(
        self: Rc<Self>,
        ctx: CallContext,
        inbound: Inbound,
        outbound: Outbound,
    ) -> LocalBoxFuture<'static, Result<(), Status>>;
}

/// Why a call ended before its handler did.
enum Race<T> {
    Done(T),
    DeadlineExceeded,
    Reset,
}

/// Runs `call` until it completes, the deadline passes, or `poll_reset` reports a reset.
async fn race<T>(
    call: impl Future<Output = T>,
    deadline: Option<Instant>,
    mut poll_reset: impl FnMut(&mut Context<'_>) -> Poll<()>,
) -> Race<T> {
    let mut call = pin!(call);
    let mut timer = deadline.map(|deadline| {
        Box::pin(glommio::timer::sleep(
            deadline.saturating_duration_since(Instant::now()),
        ))
    });
    poll_fn(|cx| {
        if let Some(timer) = timer.as_mut() {
            if timer.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Race::DeadlineExceeded);
            }
        }
        if let Poll::Ready(value) = call.as_mut().poll(cx) {
            return Poll::Ready(Race::Done(value));
        }
        if poll_reset(cx).is_ready() {
            return Poll::Ready(Race::Reset);
        }
        Poll::Pending
    })
    .await
}

/// Limits that apply to every call of a connection.
#[derive(Clone, Copy, Debug)]
pub(crate) struct CallLimits {
    pub(crate) max_recv_message_bytes: usize,
    pub(crate) max_send_message_bytes: usize,
    /// Each stream's receive window as announced (`ServerLimits::stream_window_bytes`).
    pub(crate) stream_window_bytes: usize,
}

/// A request rejected before dispatch: the HTTP status and gRPC status to answer with.
type Rejection = (StatusCode, Status);

/// Checks method, content-type, grpc-encoding and grpc-timeout as grpc-go's
/// `http2_server.go operateHeaders` does; returns the deadline.
fn check_request(
    request: &Request<RecvStream>,
    now: Instant,
) -> Result<Option<Instant>, Rejection> {
    if request.method() != http::Method::POST {
        return Err((
            StatusCode::METHOD_NOT_ALLOWED,
            Status::new(
                Code::Internal,
                format!(
                    "http2Server.operateHeaders parsed a :method field: {} which should be POST",
                    request.method()
                ),
            ),
        ));
    }
    let headers = request.headers();
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .unwrap_or_default();
    if !is_grpc_content_type(&content_type) {
        return Err((
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Status::new(
                Code::InvalidArgument,
                format!("invalid gRPC request content-type {content_type:?}"),
            ),
        ));
    }
    if let Some(encoding) = headers.get("grpc-encoding") {
        if encoding.as_bytes() != b"identity" {
            return Err((
                StatusCode::OK,
                Status::new(
                    Code::Unimplemented,
                    format!(
                        "grpc: Decompressor is not installed for grpc-encoding {:?}",
                        String::from_utf8_lossy(encoding.as_bytes())
                    ),
                ),
            ));
        }
    }
    let Some(timeout) = headers.get("grpc-timeout") else {
        return Ok(None);
    };
    let parsed = timeout
        .to_str()
        .map_err(|_| "transport: timeout value is not ASCII".to_string())
        .and_then(parse_grpc_timeout);
    match parsed {
        // A deadline beyond what `Instant` can represent is no deadline.
        Ok(timeout) => Ok(now.checked_add(timeout)),
        Err(message) => Err((
            StatusCode::BAD_REQUEST,
            Status::new(Code::Internal, format!("malformed grpc-timeout: {message}")),
        )),
    }
}

/// `application/grpc`, optionally followed by `+subtype` or `;params` (grpc-go
/// `grpcutil.ContentSubtype`).
fn is_grpc_content_type(content_type: &str) -> bool {
    match content_type.strip_prefix("application/grpc") {
        Some(rest) => rest.is_empty() || rest.starts_with('+') || rest.starts_with(';'),
        None => false,
    }
}

/// The UNIMPLEMENTED status for a path the service does not serve, worded as grpc-go
/// `server.go handleStream`: a service of etcd's API that the path names but whose method
/// it lacks → "unknown method M for service S"; otherwise "unknown service S".
pub fn unknown_method(path: &str) -> Status {
    let trimmed = path.strip_prefix('/').unwrap_or(path);
    let Some(pos) = trimmed.rfind('/') else {
        return Status::new(
            Code::Unimplemented,
            format!("malformed method name: {path:?}"),
        );
    };
    let (service, method) = (&trimmed[..pos], &trimmed[pos + 1..]);
    let known_service = crate::pb::SERVICES.contains(&service);
    if known_service && crate::pb::method_kind(path).is_none() {
        Status::new(
            Code::Unimplemented,
            format!("unknown method {method} for service {service}"),
        )
    } else {
        Status::new(Code::Unimplemented, format!("unknown service {service}"))
    }
}

/// Serves one HTTP/2 stream as a gRPC call, start to end.
pub(crate) async fn serve_call<G: GrpcService>(
    grpc: Rc<G>,
    request: Request<RecvStream>,
    mut respond: SendResponse<Bytes>,
    limits: CallLimits,
    peer: Option<SocketAddr>,
    common_name: Option<std::sync::Arc<str>>,
) {
    let deadline = match check_request(&request, Instant::now()) {
        Ok(deadline) => deadline,
        Err((http_status, status)) => return send_trailers_only(respond, http_status, &status),
    };
    let (parts, body) = request.into_parts();
    let path = parts.uri.path().to_string();
    let Some(kind) = grpc.method_kind(&path) else {
        return send_trailers_only(respond, StatusCode::OK, &unknown_method(&path));
    };
    let observer = grpc.observer();
    let started = Instant::now();
    if let Some(observer) = &observer {
        observer.call_started(&path, kind);
    }
    // The method names a contained panic in the log and the observer's end of the call.
    let method = path.clone();
    let ctx = CallContext {
        path,
        deadline,
        metadata: parts.headers,
        peer,
        common_name,
    };
    // A client reset ends the call with nothing sent; grpc-go reports it as CANCELLED.
    // A panic in the handler fails this call with INTERNAL (see `crate::panic`).
    let code = match kind {
        MethodKind::Unary => {
            let call = unary_call(grpc, ctx, body, limits, observer.clone());
            let call = async { catch_call_panic(&method, call).await.and_then(|r| r) };
            let outcome = race(call, deadline, |cx| respond.poll_reset(cx).map(|_| ())).await;
            let result = match outcome {
                Race::Done(result) => Some(result),
                Race::DeadlineExceeded => Some(Err(Status::deadline_exceeded())),
                Race::Reset => None,
            };
            match result {
                Some(result) => {
                    let code = result.as_ref().err().map_or(Code::Ok, |status| status.code);
                    let max_send = limits.max_send_message_bytes;
                    send_unary_response(respond, result, max_send, observer.as_deref())
                        .unwrap_or(code)
                }
                None => Code::Cancelled,
            }
        }
        MethodKind::Streaming => {
            let state = Rc::new(RefCell::new(CallState::new(respond)));
            let inbound = Inbound::new(
                body,
                limits.max_recv_message_bytes,
                limits.stream_window_bytes,
            )
            .observed_by(observer.clone());
            let outbound = Outbound::new(state.clone(), limits.max_send_message_bytes)
                .observed_by(observer.clone());
            // Created inside the caught future: a panic building it is contained too.
            let call = catch_call_panic(&method, async move {
                grpc.streaming(ctx, inbound, outbound).await
            });
            let call = async { call.await.and_then(|r| r) };
            let outcome = race(call, deadline, |cx| state.borrow_mut().poll_reset(cx)).await;
            let status = match outcome {
                Race::Done(Ok(())) => Some(Status::new(Code::Ok, "")),
                Race::Done(Err(status)) => Some(status),
                Race::DeadlineExceeded => Some(Status::deadline_exceeded()),
                Race::Reset => {
                    state.borrow_mut().phase = Phase::Closed;
                    None
                }
            };
            match status {
                Some(status) => {
                    state.borrow_mut().finish(&status);
                    status.code
                }
                None => Code::Cancelled,
            }
        }
    };
    if let Some(observer) = &observer {
        observer.call_finished(&method, kind, code, started.elapsed());
    }
}

async fn unary_call<G: GrpcService>(
    grpc: Rc<G>,
    ctx: CallContext,
    body: RecvStream,
    limits: CallLimits,
    observer: Option<Rc<dyn CallObserver>>,
) -> Result<Bytes, Status> {
    let mut inbound = Inbound::new(
        body,
        limits.max_recv_message_bytes,
        limits.stream_window_bytes,
    )
    .observed_by(observer);
    let request = match inbound.next().await {
        Some(result) => result?,
        None => return Err(Status::new(Code::Unknown, "EOF")),
    };
    grpc.unary(ctx, request).await
}

/// Sends the unary call's answer. Returns the code actually sent when it differs from the
/// result's (a response too large to send).
fn send_unary_response(
    mut respond: SendResponse<Bytes>,
    result: Result<Bytes, Status>,
    max_send: usize,
    observer: Option<&dyn CallObserver>,
) -> Option<Code> {
    let message = match result {
        Ok(message) if message.len() > max_send => {
            let status = Status::new(
                Code::ResourceExhausted,
                format!(
                    "grpc: trying to send message larger than max ({} vs. {})",
                    message.len(),
                    max_send
                ),
            );
            send_trailers_only(respond, StatusCode::OK, &status);
            return Some(status.code);
        }
        Ok(message) => message,
        Err(status) => {
            send_trailers_only(respond, StatusCode::OK, &status);
            return None;
        }
    };
    if let Some(observer) = observer {
        observer.message_sent(message.len());
    }
    let mut stream = match respond.send_response(response_head(), false) {
        Ok(stream) => stream,
        Err(error) => {
            tracing::debug!(%error, "grpc: sending response headers failed");
            return None;
        }
    };
    // Unary responses are bounded by max_send_message_bytes: queue them whole and let h2
    // release them as the flow-control window allows.
    let sent = if message.len() <= COALESCE_BYTES_MAX {
        let mut framed = BytesMut::with_capacity(MESSAGE_HEADER_BYTES + message.len());
        framed.put_slice(&encode_message_header(message.len()));
        framed.put_slice(&message);
        stream.send_data(framed.freeze(), false)
    } else {
        let header = Bytes::copy_from_slice(&encode_message_header(message.len()));
        stream
            .send_data(header, false)
            .and_then(|()| stream.send_data(message, false))
    };
    let ended = sent.and_then(|()| stream.send_trailers(trailers(&Status::new(Code::Ok, ""))));
    if let Err(error) = ended {
        tracing::debug!(%error, "grpc: sending unary response failed");
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_types() {
        assert!(is_grpc_content_type("application/grpc"));
        assert!(is_grpc_content_type("application/grpc+proto"));
        assert!(is_grpc_content_type("application/grpc;charset=utf-8"));
        assert!(!is_grpc_content_type("application/grpcx"));
        assert!(!is_grpc_content_type("application/json"));
        assert!(!is_grpc_content_type(""));
    }

    #[test]
    fn unknown_method_messages() {
        assert_eq!(
            unknown_method("/etcdserverpb.KV/Nope"),
            Status::new(
                Code::Unimplemented,
                "unknown method Nope for service etcdserverpb.KV"
            )
        );
        assert_eq!(
            unknown_method("/etcdserverpb.Foo/Bar"),
            Status::new(Code::Unimplemented, "unknown service etcdserverpb.Foo")
        );
        // A known method the service does not serve: its whole service is unknown to it.
        assert_eq!(
            unknown_method("/v3lockpb.Lock/Lock"),
            Status::new(Code::Unimplemented, "unknown service v3lockpb.Lock")
        );
        assert_eq!(
            unknown_method("nopath"),
            Status::new(Code::Unimplemented, "malformed method name: \"nopath\"")
        );
    }

    #[test]
    fn trailers_carry_encoded_status() {
        let headers = trailers(&Status::new(Code::NotFound, "100% gone\n"));
        assert_eq!(headers.get("grpc-status").unwrap(), "5");
        assert_eq!(headers.get("grpc-message").unwrap(), "100%25 gone%0A");
        let ok = trailers(&Status::new(Code::Ok, ""));
        assert_eq!(ok.get("grpc-status").unwrap(), "0");
        assert_eq!(ok.get("grpc-message").unwrap(), "");
    }
}
