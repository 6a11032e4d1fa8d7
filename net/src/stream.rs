//! The two directions of a streaming call on an HTTP/2 stream ([`Inbound`], [`Outbound`]),
//! and the response-side state they share with the call's driver: response headers,
//! messages, then trailers, or one Trailers-Only HEADERS frame.

use std::cell::RefCell;
use std::future::poll_fn;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use bytes::{BufMut, Bytes, BytesMut};
use futures::task::{ArcWake, AtomicWaker};
use h2::server::SendResponse;
use h2::{RecvStream, SendStream};
use http::{header, HeaderMap, HeaderValue, Response, StatusCode};

use crate::framing::{encode_message_header, MessageDecoder, MESSAGE_HEADER_BYTES};
use crate::grpc::CallObserver;
use crate::status::{encode_grpc_message, Code, Status};

/// Messages up to this size are copied behind their 5-byte prefix into one DATA frame;
/// larger ones are sent as prefix + the caller's buffer, without a copy.
pub(crate) const COALESCE_BYTES_MAX: usize = 16 * 1024;

/// The request messages of a call.
///
/// Flow control: HTTP/2 credit for a message's bytes (prefix included) is returned to the
/// client when the message is handed to the handler, not when the bytes arrive, so bytes
/// the handler has not taken count against the stream's and the connection's receive
/// windows: a client can make a stream hold at most its window (`window_bytes`) of request
/// data that nobody consumed. The client port's stream windows hold one whole largest
/// message ([`crate::stream_window_for_messages`]); where a message is larger than the
/// window (peer Raft messages), the bytes of the message being waited for are credited as
/// they arrive once the window is full, so the call cannot stall (grpc-go
/// `inFlow.maybeAdjust` lets such a message in the same way).
///
/// [`Inbound::local`] makes one that hands over given messages instead (a call made from
/// inside the server, e.g. by the JSON gateway).
pub struct Inbound {
    /// The HTTP/2 request body; `None` for a local call, whose messages are in `local`.
    body: Option<RecvStream>,
    local: std::collections::VecDeque<Bytes>,
    decoder: MessageDecoder,
    /// The stream's receive window, in bytes (what the server announced).
    window_bytes: usize,
    /// Bytes taken from `body` whose credit has not been returned yet.
    unreleased_bytes: usize,
    /// Bytes credited before their message was handed over (a message outgrew the window);
    /// handing those messages over returns nothing more for them.
    credited_ahead_bytes: usize,
    done: bool,
    observer: Option<Rc<dyn CallObserver>>,
}

impl Inbound {
    /// `window_bytes`: the stream's receive window as announced in SETTINGS.
    pub(crate) fn new(body: RecvStream, max_message_bytes: usize, window_bytes: usize) -> Inbound {
        Inbound {
            body: Some(body),
            local: std::collections::VecDeque::new(),
            decoder: MessageDecoder::new(max_message_bytes),
            window_bytes,
            unreleased_bytes: 0,
            credited_ahead_bytes: 0,
            done: false,
            observer: None,
        }
    }

    /// The request messages of a call made from inside the server: `messages` in order,
    /// then the end of the stream (as a client that half-closed after sending them).
    pub fn local(messages: impl IntoIterator<Item = Bytes>) -> Inbound {
        Inbound {
            body: None,
            local: messages.into_iter().collect(),
            decoder: MessageDecoder::new(usize::MAX),
            window_bytes: 0,
            unreleased_bytes: 0,
            credited_ahead_bytes: 0,
            done: false,
            observer: None,
        }
    }

    /// Reports every request message's size to `observer` (metrics).
    pub(crate) fn observed_by(mut self, observer: Option<Rc<dyn CallObserver>>) -> Inbound {
        self.observer = observer;
        self
    }

    fn observe(&self, result: &Option<Result<Bytes, Status>>) {
        if let (Some(observer), Some(Ok(message))) = (&self.observer, result) {
            observer.message_received(message.len());
        }
    }

    /// The next request message (protobuf bytes). `None` once the client half-closed (or after
    /// an error was returned). Errors: RESOURCE_EXHAUSTED "grpc: received message larger than
    /// max (N vs. M)", INTERNAL for a compressed message, CANCELLED "context canceled" when
    /// the client reset the stream, UNKNOWN "unexpected EOF" for a truncated message.
    /// Flow-control credit for the message is returned to the client as it is handed over
    /// (see the type's docs).
    pub async fn next(&mut self) -> Option<Result<Bytes, Status>> {
        if self.done {
            return None;
        }
        let result = self.next_message().await;
        if !matches!(result, Some(Ok(_))) {
            self.done = true;
        }
        self.observe(&result);
        result
    }

    /// Reads until one whole message is decoded; `None` at a clean end of stream.
    async fn next_message(&mut self) -> Option<Result<Bytes, Status>> {
        if self.body.is_none() {
            return self.local.pop_front().map(Ok);
        }
        loop {
            if let Some(result) = self.decoded() {
                return Some(result);
            }
            if self.unreleased_bytes >= self.window_bytes {
                // The message waited for is larger than the window: without credit now
                // the client could never send its rest.
                self.credited_ahead_bytes += self.unreleased_bytes;
                self.release(self.unreleased_bytes);
            } else {
                // h2 announces returned credit only once it is a large enough part of the
                // window left, and checks only when credit is returned: credit returned
                // earlier may still be unannounced although the client has run out.
                // Returning nothing makes h2 check again against the window left now.
                self.release(0);
            }
            let body = self.body.as_mut()?;
            match body.data().await {
                Some(Ok(chunk)) => {
                    self.unreleased_bytes += chunk.len();
                    self.decoder.push(chunk);
                }
                Some(Err(error)) => return Some(Err(status_from_h2(&error))),
                None if self.decoder.is_idle() => return None,
                None => return Some(Err(Status::new(Code::Unknown, "unexpected EOF"))),
            }
        }
    }

    /// The next message already decoded from received bytes, its credit returned; `None`
    /// when more bytes are needed.
    fn decoded(&mut self) -> Option<Result<Bytes, Status>> {
        match self.decoder.next_message() {
            Ok(Some(message)) => {
                let framed = MESSAGE_HEADER_BYTES + message.len();
                let ahead = framed.min(self.credited_ahead_bytes);
                self.credited_ahead_bytes -= ahead;
                self.release(framed - ahead);
                Some(Ok(message))
            }
            Ok(None) => None,
            Err(status) => Some(Err(status)),
        }
    }

    /// Returns credit for `bytes` taken bytes (zero: lets h2 announce credit it holds back).
    fn release(&mut self, bytes: usize) {
        assert!(bytes <= self.unreleased_bytes, "credit for bytes not taken");
        self.unreleased_bytes -= bytes;
        // Refused only when the stream is already gone; the next read reports that.
        if let Some(body) = self.body.as_mut() {
            let _ = body.flow_control().release_capacity(bytes);
        }
    }

    /// Changes the largest request message accepted from the next message on (the peer
    /// transport's streams carry messages of different kinds and limits).
    pub(crate) fn set_max_message_bytes(&mut self, max_message_bytes: usize) {
        self.decoder.set_max_message_bytes(max_message_bytes);
    }

    /// The next request message if one is already decoded from received bytes, without
    /// waiting for more; `None` when more bytes are needed or the stream is done. Errors as
    /// [`Inbound::next`] (only decoding errors can occur here).
    pub(crate) fn next_buffered(&mut self) -> Option<Result<Bytes, Status>> {
        if self.done {
            return None;
        }
        if self.body.is_none() {
            let result = self.local.pop_front().map(Ok);
            self.observe(&result);
            return result;
        }
        let result = self.decoded()?;
        if result.is_err() {
            self.done = true;
        }
        let result = Some(result);
        self.observe(&result);
        result
    }
}

impl std::fmt::Debug for Inbound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inbound").field("done", &self.done).finish()
    }
}

/// Reads until one whole message is decoded; `None` at a clean end of stream. Credit is
/// returned as bytes arrive: for clients reading a peer's single response, whose message may
/// be larger than the window (servers read requests through [`Inbound`]).
pub(crate) async fn next_message(
    body: &mut RecvStream,
    decoder: &mut MessageDecoder,
) -> Option<Result<Bytes, Status>> {
    loop {
        match decoder.next_message() {
            Ok(Some(message)) => return Some(Ok(message)),
            Ok(None) => {}
            Err(status) => return Some(Err(status)),
        }
        match body.data().await {
            Some(Ok(chunk)) => {
                // Releasing is refused only when the stream is already gone; the next read
                // reports that.
                let _ = body.flow_control().release_capacity(chunk.len());
                decoder.push(chunk);
            }
            Some(Err(error)) => return Some(Err(status_from_h2(&error))),
            None if decoder.is_idle() => return None,
            None => return Some(Err(Status::new(Code::Unknown, "unexpected EOF"))),
        }
    }
}

/// The response messages of a streaming call: to an HTTP/2 stream, or (a call made from
/// inside the server, [`Outbound::local`]) to a channel.
pub struct Outbound {
    call: Sink,
    max_message_bytes: usize,
    observer: Option<Rc<dyn CallObserver>>,
}

/// Where an [`Outbound`]'s messages go.
enum Sink {
    H2(Rc<RefCell<CallState>>),
    Local(futures::channel::mpsc::Sender<Bytes>),
}

impl Outbound {
    pub(crate) fn new(call: Rc<RefCell<CallState>>, max_message_bytes: usize) -> Outbound {
        Outbound {
            call: Sink::H2(call),
            max_message_bytes,
            observer: None,
        }
    }

    /// The response messages of a call made from inside the server: each message (protobuf
    /// bytes, unframed) is sent on `messages`; a full channel makes the sender wait, and a
    /// closed one fails the send with CANCELLED "context canceled" (the caller went away).
    pub fn local(
        messages: futures::channel::mpsc::Sender<Bytes>,
        max_message_bytes: usize,
    ) -> Outbound {
        Outbound {
            call: Sink::Local(messages),
            max_message_bytes,
            observer: None,
        }
    }

    /// Reports every response message's size to `observer` (metrics).
    pub(crate) fn observed_by(mut self, observer: Option<Rc<dyn CallObserver>>) -> Outbound {
        self.observer = observer;
        self
    }
}

impl Outbound {
    /// Sends one response message (protobuf bytes), framed. The response headers go out
    /// with the first message. Waits for HTTP/2 flow-control capacity, so a slow reader
    /// slows the sender. Errors: RESOURCE_EXHAUSTED "grpc: trying to send message larger
    /// than max (N vs. M)"; CANCELLED "context canceled" when the client reset the stream;
    /// UNAVAILABLE "transport is closing" when the connection is gone or the call ended.
    pub async fn send(&mut self, message: Bytes) -> Result<(), Status> {
        if message.len() > self.max_message_bytes {
            return Err(Status::new(
                Code::ResourceExhausted,
                format!(
                    "grpc: trying to send message larger than max ({} vs. {})",
                    message.len(),
                    self.max_message_bytes
                ),
            ));
        }
        match &mut self.call {
            Sink::H2(call) => call.borrow_mut().start_body()?,
            Sink::Local(messages) => return send_local(messages, message).await,
        }
        if let Some(observer) = &self.observer {
            observer.message_sent(message.len());
        }
        if message.len() <= COALESCE_BYTES_MAX {
            let mut framed = BytesMut::with_capacity(MESSAGE_HEADER_BYTES + message.len());
            framed.put_slice(&encode_message_header(message.len()));
            framed.put_slice(&message);
            self.send_data(framed.freeze()).await
        } else {
            let header = Bytes::copy_from_slice(&encode_message_header(message.len()));
            self.send_data(header).await?;
            self.send_data(message).await
        }
    }

    /// Sends several response messages as one run of DATA (one frame when flow control
    /// allows), as grpc-go's buffered writer coalesces queued messages. Same checks and
    /// errors as [`Outbound::send`]; nothing is sent if any message is too large.
    pub async fn send_many(&mut self, messages: &[Bytes]) -> Result<(), Status> {
        if let Some(large) = messages.iter().find(|m| m.len() > self.max_message_bytes) {
            return Err(Status::new(
                Code::ResourceExhausted,
                format!(
                    "grpc: trying to send message larger than max ({} vs. {})",
                    large.len(),
                    self.max_message_bytes
                ),
            ));
        }
        match &mut self.call {
            Sink::H2(call) => call.borrow_mut().start_body()?,
            Sink::Local(sink) => {
                for message in messages {
                    send_local(sink, message.clone()).await?;
                }
                return Ok(());
            }
        }
        if let Some(observer) = &self.observer {
            for message in messages {
                observer.message_sent(message.len());
            }
        }
        let total: usize = messages
            .iter()
            .map(|m| MESSAGE_HEADER_BYTES + m.len())
            .sum();
        let mut framed = BytesMut::with_capacity(total);
        for message in messages {
            framed.put_slice(&encode_message_header(message.len()));
            framed.put_slice(message);
        }
        self.send_data(framed.freeze()).await
    }

    async fn send_data(&mut self, mut data: Bytes) -> Result<(), Status> {
        let Sink::H2(call) = &self.call else {
            unreachable!("framed data for a local call");
        };
        while !data.is_empty() {
            let want = data.len();
            let capacity = poll_fn(|cx| call.borrow_mut().poll_send_capacity(cx, want)).await?;
            let piece = data.split_to(capacity.min(data.len()));
            call.borrow_mut().send_data(piece)?;
        }
        Ok(())
    }
}

/// Sends one message of a local call; the receiver gone means the caller went away.
async fn send_local(
    messages: &mut futures::channel::mpsc::Sender<Bytes>,
    message: Bytes,
) -> Result<(), Status> {
    use futures::SinkExt;
    messages
        .send(message)
        .await
        .map_err(|_| Status::cancelled())
}

impl std::fmt::Debug for Outbound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbound").finish_non_exhaustive()
    }
}

/// Wakes both the sender (which may be another task than the call's) and the call's own
/// task: h2 keeps one send-side waker per stream, shared by `poll_capacity` and `poll_reset`.
#[derive(Default)]
struct Fanout {
    sender: AtomicWaker,
    driver: AtomicWaker,
}

impl ArcWake for Fanout {
    fn wake_by_ref(arc_self: &Arc<Self>) {
        arc_self.sender.wake();
        arc_self.driver.wake();
    }
}

pub(crate) enum Phase {
    /// Nothing sent yet.
    Head(SendResponse<Bytes>),
    /// Response headers sent; messages may follow.
    Body(SendStream<Bytes>),
    /// Trailers sent, or the stream is gone.
    Closed,
}

pub(crate) struct CallState {
    pub(crate) phase: Phase,
    fanout: Arc<Fanout>,
    fanout_waker: Waker,
}

pub(crate) fn gone() -> Status {
    Status::new(Code::Unavailable, "transport is closing")
}

impl CallState {
    pub(crate) fn new(respond: SendResponse<Bytes>) -> CallState {
        let fanout = Arc::new(Fanout::default());
        let fanout_waker = futures::task::waker(fanout.clone());
        CallState {
            phase: Phase::Head(respond),
            fanout,
            fanout_waker,
        }
    }

    fn start_body(&mut self) -> Result<(), Status> {
        match std::mem::replace(&mut self.phase, Phase::Closed) {
            Phase::Head(mut respond) => {
                let stream = respond
                    .send_response(response_head(), false)
                    .map_err(|e| status_from_h2(&e))?;
                self.phase = Phase::Body(stream);
                Ok(())
            }
            Phase::Body(stream) => {
                self.phase = Phase::Body(stream);
                Ok(())
            }
            Phase::Closed => Err(gone()),
        }
    }

    fn poll_send_capacity(
        &mut self,
        cx: &mut Context<'_>,
        want: usize,
    ) -> Poll<Result<usize, Status>> {
        let Phase::Body(stream) = &mut self.phase else {
            return Poll::Ready(Err(gone()));
        };
        self.fanout.sender.register(cx.waker());
        let mut fanout_cx = Context::from_waker(&self.fanout_waker);
        stream.reserve_capacity(want);
        loop {
            let capacity = stream.capacity();
            if capacity > 0 {
                return Poll::Ready(Ok(capacity));
            }
            match stream.poll_capacity(&mut fanout_cx) {
                Poll::Ready(Some(Ok(_))) => continue,
                Poll::Ready(Some(Err(error))) => return Poll::Ready(Err(status_from_h2(&error))),
                Poll::Ready(None) => return Poll::Ready(Err(gone())),
                Poll::Pending => return Poll::Pending,
            }
        }
    }

    fn send_data(&mut self, data: Bytes) -> Result<(), Status> {
        let Phase::Body(stream) = &mut self.phase else {
            return Err(gone());
        };
        stream
            .send_data(data, false)
            .map_err(|e| status_from_h2(&e))
    }

    /// Ready when the client reset the stream.
    pub(crate) fn poll_reset(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        self.fanout.driver.register(cx.waker());
        let mut fanout_cx = Context::from_waker(&self.fanout_waker);
        let polled = match &mut self.phase {
            Phase::Head(respond) => respond.poll_reset(&mut fanout_cx),
            Phase::Body(stream) => stream.poll_reset(&mut fanout_cx),
            Phase::Closed => return Poll::Pending,
        };
        polled.map(|_| ())
    }

    /// Ends the call with `status`: trailers after messages, or Trailers-Only.
    pub(crate) fn finish(&mut self, status: &Status) {
        match std::mem::replace(&mut self.phase, Phase::Closed) {
            Phase::Head(respond) => send_trailers_only(respond, StatusCode::OK, status),
            Phase::Body(mut stream) => {
                if let Err(error) = stream.send_trailers(trailers(status)) {
                    tracing::debug!(%error, "grpc: sending trailers failed");
                }
            }
            Phase::Closed => {}
        }
    }
}

/// `:status 200`, `content-type: application/grpc`.
pub(crate) fn response_head() -> Response<()> {
    let mut response = Response::new(());
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    response
}

fn insert_status(headers: &mut HeaderMap, status: &Status) {
    headers.insert("grpc-status", status.code.header_value());
    let encoded = encode_grpc_message(&status.message);
    // The encoding leaves only visible ASCII and spaces, which are always valid header bytes.
    let value = HeaderValue::from_str(&encoded).unwrap_or_else(|_| HeaderValue::from_static(""));
    headers.insert("grpc-message", value);
}

pub(crate) fn trailers(status: &Status) -> HeaderMap {
    let mut headers = HeaderMap::with_capacity(2);
    insert_status(&mut headers, status);
    headers
}

/// Trailers-Only (grpc PROTOCOL-HTTP2.md): one HEADERS frame with END_STREAM carrying
/// `:status`, `content-type`, `grpc-status` and `grpc-message`.
pub(crate) fn send_trailers_only(
    mut respond: SendResponse<Bytes>,
    http_status: StatusCode,
    status: &Status,
) {
    let mut response = response_head();
    *response.status_mut() = http_status;
    insert_status(response.headers_mut(), status);
    if let Err(error) = respond.send_response(response, true) {
        tracing::debug!(%error, "grpc: sending trailers-only response failed");
    }
}

/// The status for an h2 stream or connection error, as grpc-go reports a peer's RST_STREAM
/// (CANCEL → "context canceled") or a broken transport.
pub(crate) fn status_from_h2(error: &h2::Error) -> Status {
    if error.is_reset() || (error.is_remote() && error.reason().is_some()) {
        Status::cancelled()
    } else {
        gone()
    }
}
