//! One Watch stream: a task reading requests, the call's future writing the stream's
//! ordered response queue (see the parent module's docs).

use std::rc::Rc;

use bytes::Bytes;
use net::pb::etcdserverpb::{
    watch_request::RequestUnion, WatchCreateRequest, WatchRequest, WatchResponse,
};
use net::{Inbound, Outbound, Status};
use prost::Message;

use super::{StreamOut, WatchHub, HUB, STREAM_CONTROL_RESPONSES_MAX, STREAM_QUEUE_RESPONSES_MAX};
use crate::errors;

/// Removes a stream's watchers from its hub when the stream ends, however it ends.
struct StreamGuard {
    hub: Rc<WatchHub>,
    out: Rc<StreamOut>,
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        crate::metrics::get().watch_stream_total.dec();
        let keys: Vec<u64> = self.out.ids.borrow_mut().drain().map(|(_, k)| k).collect();
        for key in keys {
            self.hub.remove(key);
        }
        self.out.queue.borrow_mut().clear();
    }
}

/// Whether the stream's caller may watch a create request's range: `Err(cancel reason)`
/// refuses it (auth, `auth/check.rs`).
pub type CreateCheck = Box<dyn Fn(&WatchCreateRequest) -> Result<(), String>>;

/// Serves one Watch stream on this core until the client ends it or the server shuts down;
/// every create request first passes `check`.
pub async fn serve_stream(
    inbound: Inbound,
    mut outbound: Outbound,
    check: CreateCheck,
) -> Result<(), Status> {
    let hub = HUB
        .with(|h| h.borrow().clone())
        .ok_or_else(errors::stopped)?;
    let out = Rc::new(StreamOut::default());
    let guard = StreamGuard {
        hub: hub.clone(),
        out: out.clone(),
    };
    crate::metrics::get().watch_stream_total.inc();
    let _reader = glommio::spawn_local(contain_reader(
        out.clone(),
        read_requests(hub.clone(), out.clone(), inbound, check),
    ));
    loop {
        if let Some(status) = out.failed.borrow_mut().take() {
            return Err(status);
        }
        let next = take_batch(&out);
        match next {
            Some(batch) => {
                let sent = futures_lite::future::or(
                    async {
                        Some(match batch {
                            Batch::One(response, fragment) => {
                                send_response(
                                    &mut outbound,
                                    response,
                                    fragment,
                                    hub.max_request_bytes,
                                )
                                .await
                            }
                            Batch::Many(messages) => outbound.send_many(&messages).await,
                        })
                    },
                    async {
                        hub.shutdown.wait().await;
                        None
                    },
                )
                .await;
                match sent {
                    Some(result) => result?,
                    None => return Err(errors::stopped()),
                }
                out.room.notify();
                if hub.has_unsynced() {
                    hub.kick.notify();
                }
            }
            None => {
                let stopping = futures_lite::future::or(
                    async {
                        out.ready.wait().await;
                        false
                    },
                    async {
                        hub.shutdown.wait().await;
                        true
                    },
                )
                .await;
                if stopping {
                    drop(guard);
                    return Err(errors::stopped());
                }
            }
        }
    }
}

/// Most bytes of queued responses written as one batch (one HTTP/2 DATA run).
pub const WRITE_BATCH_BYTES_MAX: usize = 64 * 1024;

/// What the writer sends next: one response (possibly fragmented), or several encoded
/// responses coalesced into one write.
enum Batch {
    One(WatchResponse, bool),
    Many(Vec<Bytes>),
}

/// Takes the next response, or as many queued non-fragmenting responses as fit in
/// [`WRITE_BATCH_BYTES_MAX`], in queue order.
fn take_batch(out: &StreamOut) -> Option<Batch> {
    let mut queue = out.queue.borrow_mut();
    let (first, fragment) = queue.pop_front()?;
    if fragment || queue.front().is_none_or(|(_, f)| *f) {
        return Some(Batch::One(first, fragment));
    }
    let mut bytes = first.encoded_len();
    let mut messages = vec![Bytes::from(first.encode_to_vec())];
    while let Some((next, false)) = queue.front() {
        let len = next.encoded_len();
        if bytes + len > WRITE_BATCH_BYTES_MAX {
            break;
        }
        bytes += len;
        let (next, _) = queue.pop_front().expect("front exists");
        messages.push(Bytes::from(next.encode_to_vec()));
    }
    Some(Batch::Many(messages))
}

/// Reads the stream's requests until the client half-closes (the stream then stays open,
/// as etcd's does) or fails (the stream then ends with that error).
/// Runs the stream's request reader; a panic in it fails the stream with INTERNAL (logged
/// with the method) rather than the core: glommio would let it unwind out of the executor.
async fn contain_reader(out: Rc<StreamOut>, reader: impl std::future::Future<Output = ()>) {
    if let Err(status) = net::catch_call_panic(super::WATCH_METHOD, reader).await {
        *out.failed.borrow_mut() = Some(status);
        out.ready.notify();
    }
}

async fn read_requests(
    hub: Rc<WatchHub>,
    out: Rc<StreamOut>,
    mut inbound: Inbound,
    check: CreateCheck,
) {
    while let Some(message) = inbound.next().await {
        let request =
            message.and_then(|body| WatchRequest::decode(body).map_err(errors::decode_failed));
        let request = match request {
            Ok(r) => r,
            Err(status) => {
                *out.failed.borrow_mut() = Some(status);
                out.ready.notify();
                return;
            }
        };
        while out.queue.borrow().len() >= STREAM_QUEUE_RESPONSES_MAX + STREAM_CONTROL_RESPONSES_MAX
        {
            out.room.wait().await;
        }
        match request.request_union {
            Some(RequestUnion::CreateRequest(c)) => {
                crate::supervise::panic_point!("watch-create", String::from_utf8_lossy(&c.key));
                match check(&c) {
                    Ok(()) => hub.create(&out, c),
                    Err(reason) => hub.refuse(&out, &reason),
                }
            }
            Some(RequestUnion::CancelRequest(c)) => hub.cancel(&out, c.watch_id),
            Some(RequestUnion::ProgressRequest(_)) => hub.progress(&out),
            None => {}
        }
    }
}

/// Sends one response; with `fragment`, a response of at least `max_request_bytes` is split
/// across responses as etcd's `sendFragments` does (never when it has fewer than 2 events).
async fn send_response(
    outbound: &mut Outbound,
    response: WatchResponse,
    fragment: bool,
    max_request_bytes: usize,
) -> Result<(), Status> {
    if !fragment || response.encoded_len() < max_request_bytes || response.events.len() < 2 {
        return outbound.send(Bytes::from(response.encode_to_vec())).await;
    }
    let mut events = response.events.into_iter().peekable();
    let template = WatchResponse {
        events: Vec::new(),
        fragment: true,
        ..response
    };
    while events.peek().is_some() {
        let mut part = template.clone();
        while let Some(event) = events.peek() {
            part.events.push(event.clone());
            if part.events.len() > 1 && part.encoded_len() >= max_request_bytes {
                part.events.pop();
                break;
            }
            events.next();
        }
        if events.peek().is_none() {
            part.fragment = false;
        }
        outbound.send(Bytes::from(part.encode_to_vec())).await?;
    }
    Ok(())
}
