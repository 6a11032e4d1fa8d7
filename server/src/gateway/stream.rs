//! Streaming methods through the gateway (Watch, LeaseKeepAlive, Election Observe,
//! Maintenance Snapshot): the service's own streaming handler runs with a local
//! [`Inbound`] holding the request messages from the body and a local [`Outbound`] whose
//! messages become lines of a chunked HTTP response, as grpc-gateway v1
//! `runtime.ForwardResponseStream` writes them:
//!
//! - each response message as one line `{"result":{…}}\n`, flushed;
//! - a call that fails after its first message ends the body with
//!   `{"error":{"grpc_code":…,"http_code":…,"message":…,"http_status":…}}`;
//! - a call that fails before any message: that error chunk as the whole body, with the
//!   HTTP status for its code (grpc-gateway `handleForwardResponseStreamError`).
//!
//! The request side ends after the body's messages (grpc-gateway `CloseSend`s at the body's
//! end): a watch stays open (etcd's watch server keeps streaming after the client's
//! half-close), a keep-alive answers each request then ends. The call is dropped, and with
//! it every watcher it created, when the HTTP client closes the connection.

use std::future::poll_fn;
use std::rc::Rc;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures::channel::mpsc;
use futures::future::LocalBoxFuture;
use futures::StreamExt;
use net::{CallContext, Code, GrpcService, HttpReply, Inbound, Outbound, Status};
use prost_reflect::{MessageDescriptor, MethodDescriptor};

use super::json;
use crate::service::EtcdService;

/// Response messages buffered between the call and the HTTP connection; a slower client
/// makes the call wait (its `Outbound::send` blocks), as HTTP/2 flow control would.
pub const RESPONSES_BUFFERED_MAX: usize = 16;

/// What a streaming call produced next.
enum Event {
    Message(Bytes),
    Failed(Status),
}

/// A running streaming call and the receiving end of its responses.
struct Responses {
    /// The call; `None` once it has ended.
    call: Option<LocalBoxFuture<'static, Result<(), Status>>>,
    messages: mpsc::Receiver<Bytes>,
    /// How the call ended, until reported.
    outcome: Option<Result<(), Status>>,
}

impl Responses {
    /// The next response message, or the call's failure once every message before it was
    /// taken; `None` after a successful end. Drives the call while waiting.
    fn poll_event(&mut self, cx: &mut Context<'_>) -> Poll<Option<Event>> {
        loop {
            match self.messages.poll_next_unpin(cx) {
                Poll::Ready(Some(message)) => return Poll::Ready(Some(Event::Message(message))),
                Poll::Ready(None) => {
                    // Every sender is gone: the call has ended or is ending.
                    if let Some(call) = self.call.as_mut() {
                        let outcome = std::task::ready!(call.as_mut().poll(cx));
                        self.call = None;
                        self.outcome = Some(outcome);
                    }
                    return Poll::Ready(match self.outcome.take() {
                        Some(Err(status)) => Some(Event::Failed(status)),
                        _ => None,
                    });
                }
                Poll::Pending => {
                    let Some(call) = self.call.as_mut() else {
                        return Poll::Pending;
                    };
                    let outcome = std::task::ready!(call.as_mut().poll(cx));
                    self.call = None;
                    self.outcome = Some(outcome);
                    // Its Outbound is dropped now: the receiver yields what is left, then ends.
                }
            }
        }
    }

    async fn next_event(&mut self) -> Option<Event> {
        poll_fn(|cx| self.poll_event(cx)).await
    }
}

/// One chunk of the response body for `event`.
fn chunk(output: &MessageDescriptor, event: Event) -> Bytes {
    match event {
        Event::Message(message) => match json::response_to_json(output, message) {
            Ok(json) => Bytes::from(json::stream_result(&json)),
            Err(status) => Bytes::from(json::stream_error(&status)),
        },
        Event::Failed(status) => Bytes::from(json::stream_error(&status)),
    }
}

/// Runs the streaming `method` of `service` with the request messages in `body` (a
/// sequence of JSON values; a server-streaming method takes the first, or the empty
/// request). A body that does not decode: grpc-gateway's bidirectional handlers return
/// the decoder's error as is (UNKNOWN, HTTP 500), its server-streaming ones as
/// INVALID_ARGUMENT (HTTP 400), in the `{"error","message","code"}` shape.
pub(super) async fn call(
    service: Rc<EtcdService>,
    ctx: CallContext,
    mut observed: super::Observed,
    method: &MethodDescriptor,
    body: &[u8],
) -> HttpReply {
    let messages = match json::requests_from_json(&method.input(), body) {
        Ok(messages) if method.is_client_streaming() => messages,
        Ok(messages) => vec![messages.into_iter().next().unwrap_or_default()],
        Err(text) => {
            let code = if method.is_client_streaming() {
                Code::Unknown
            } else {
                Code::InvalidArgument
            };
            let status = Status::new(code, text);
            observed.finish(status.code);
            return super::error_reply(&status);
        }
    };
    let (sender, receiver) = mpsc::channel(RESPONSES_BUFFERED_MAX);
    let inbound = Inbound::local(messages);
    let outbound = Outbound::local(sender, crate::range::MAX_SEND_MESSAGE_BYTES);
    let path = ctx.path.clone();
    let call = service.streaming(ctx, inbound, outbound);
    let mut responses = Responses {
        call: Some(Box::pin(async move {
            let outcome = net::catch_call_panic(&path, call).await.and_then(|r| r);
            observed.finish(outcome.as_ref().map_or_else(|s| s.code, |()| Code::Ok));
            outcome
        })),
        messages: receiver,
        outcome: None,
    };
    let output = method.output();
    match responses.next_event().await {
        None => super::json_reply(200, Bytes::new()),
        Some(Event::Failed(status)) => {
            super::json_reply(json::http_status(status.code), json::stream_error(&status))
        }
        Some(first) => {
            let first = chunk(&output, first);
            let rest = futures::stream::unfold(
                (responses, output),
                |(mut responses, output)| async move {
                    let event = responses.next_event().await?;
                    Some((chunk(&output, event), (responses, output)))
                },
            );
            let body = futures::stream::once(async move { first }).chain(rest);
            let head = super::json_head(200);
            HttpReply::Streamed(head, Box::pin(body))
        }
    }
}
