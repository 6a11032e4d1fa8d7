//! Shared test harness: a glommio server thread with a test service, and h2 client helpers.
#![allow(dead_code)]

pub mod raw_h2;

use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures::future::LocalBoxFuture;
use futures::{FutureExt, StreamExt};
use http::{HeaderMap, Request};
use net::{
    CallContext, Code, GrpcService, HttpHandler, HttpReply, HttpRequest, HttpResponse, Inbound,
    MethodKind, Outbound, ServerLimits, Shutdown, Status,
};

/// Records what the server side saw, for assertions from the test thread.
pub type Events = Arc<Mutex<Vec<String>>>;

pub struct TestGrpc {
    events: Events,
}

/// Records `name` when dropped: the call's future ended (completed or was dropped).
struct DropGuard(Events, &'static str);

impl Drop for DropGuard {
    fn drop(&mut self) {
        self.0.lock().unwrap().push(self.1.to_string());
    }
}

impl GrpcService for TestGrpc {
    fn method_kind(&self, path: &str) -> Option<MethodKind> {
        match path {
            "/test.Echo/Unary" | "/test.Echo/Fail" | "/test.Echo/Slow" | "/test.Echo/Len"
            | "/test.Echo/Panic" => Some(MethodKind::Unary),
            "/test.Echo/Stream"
            | "/test.Echo/Download"
            | "/test.Echo/DownloadBatched"
            | "/test.Echo/Upload"
            | "/test.Echo/Ack"
            | "/test.Echo/Hold"
            | "/test.Echo/PanicAfterOne" => Some(MethodKind::Streaming),
            _ => None,
        }
    }

    fn unary(
        self: Rc<Self>,
        ctx: CallContext,
        request: Bytes,
    ) -> LocalBoxFuture<'static, Result<Bytes, Status>> {
        async move {
            match ctx.path.as_str() {
                "/test.Echo/Unary" => Ok(request),
                // A handler bug: the call must fail alone (net/src/panic.rs).
                "/test.Echo/Panic" => panic!("injected panic in a unary handler"),
                "/test.Echo/Fail" => Err(Status::new(
                    Code::NotFound,
                    "etcdserver: key not found 100%\n",
                )),
                "/test.Echo/Slow" => {
                    let _guard = DropGuard(self.events.clone(), "slow-ended");
                    glommio::timer::sleep(Duration::from_secs(3600)).await;
                    Ok(request)
                }
                "/test.Echo/Len" => Ok(Bytes::from((request.len() as u64).to_be_bytes().to_vec())),
                other => Err(Status::new(Code::Internal, format!("unexpected {other}"))),
            }
        }
        .boxed_local()
    }

    fn streaming(
        self: Rc<Self>,
        ctx: CallContext,
        mut inbound: Inbound,
        mut outbound: Outbound,
    ) -> LocalBoxFuture<'static, Result<(), Status>> {
        async move {
            let _guard = DropGuard(self.events.clone(), "stream-ended");
            match ctx.path.as_str() {
                // Echoes the first message, then panics.
                "/test.Echo/PanicAfterOne" => {
                    if let Some(message) = inbound.next().await {
                        outbound.send(message?).await?;
                    }
                    panic!("injected panic in a stream")
                }
                // Echoes every message, then ends OK when the client half-closes.
                "/test.Echo/Stream" => {
                    while let Some(message) = inbound.next().await {
                        outbound.send(message?).await?;
                    }
                    Ok(())
                }
                // Request: count (u32 BE) + size (u32 BE); answers `count` messages of
                // `size` bytes, message i filled with byte i.
                "/test.Echo/Download" => {
                    let request = inbound.next().await.unwrap_or(Ok(Bytes::new()))?;
                    let count = u32::from_be_bytes(request[0..4].try_into().unwrap());
                    let size = u32::from_be_bytes(request[4..8].try_into().unwrap());
                    for i in 0..count {
                        outbound
                            .send(Bytes::from(vec![i as u8; size as usize]))
                            .await?;
                    }
                    Ok(())
                }
                // As Download, but sent with `send_many` in batches of three messages.
                "/test.Echo/DownloadBatched" => {
                    let request = inbound.next().await.unwrap_or(Ok(Bytes::new()))?;
                    let count = u32::from_be_bytes(request[0..4].try_into().unwrap());
                    let size = u32::from_be_bytes(request[4..8].try_into().unwrap());
                    let messages: Vec<Bytes> = (0..count)
                        .map(|i| Bytes::from(vec![i as u8; size as usize]))
                        .collect();
                    for batch in messages.chunks(3) {
                        outbound.send_many(batch).await?;
                    }
                    Ok(())
                }
                // Sums the sizes of all request messages and answers the total (u64 BE).
                "/test.Echo/Upload" => {
                    let mut total = 0u64;
                    while let Some(message) = inbound.next().await {
                        total += message?.len() as u64;
                    }
                    outbound
                        .send(Bytes::from(total.to_be_bytes().to_vec()))
                        .await?;
                    Ok(())
                }
                // Answers every request message with its length (u64 BE) as it takes it.
                "/test.Echo/Ack" => {
                    while let Some(message) = inbound.next().await {
                        let len = message?.len() as u64;
                        outbound
                            .send(Bytes::from(len.to_be_bytes().to_vec()))
                            .await?;
                    }
                    Ok(())
                }
                // Sends nothing; ends with the error that ended the inbound side.
                "/test.Echo/Hold" => {
                    while let Some(message) = inbound.next().await {
                        if let Err(status) = message {
                            self.events
                                .lock()
                                .unwrap()
                                .push(format!("hold-error {:?}", status.code));
                            return Err(status);
                        }
                    }
                    Err(Status::new(Code::Aborted, "half-closed"))
                }
                other => Err(Status::new(Code::Internal, format!("unexpected {other}"))),
            }
        }
        .boxed_local()
    }
}

pub struct TestHttp;

impl HttpHandler for TestHttp {
    /// `POST /stream`: the body's bytes streamed back one chunk per byte, an empty item
    /// between each; anything else as [`HttpHandler::handle`].
    fn reply(self: Rc<Self>, request: HttpRequest) -> LocalBoxFuture<'static, HttpReply> {
        if (request.method.as_str(), request.path.as_str()) != ("POST", "/stream") {
            let response = self.handle(request);
            return Box::pin(async move { HttpReply::Full(response.await) });
        }
        let chunks: Vec<Bytes> = request
            .body
            .iter()
            .flat_map(|b| [Bytes::new(), Bytes::copy_from_slice(&[*b])])
            .collect();
        let head = HttpResponse::text(200, "");
        Box::pin(
            async move { HttpReply::Streamed(head, futures::stream::iter(chunks).boxed_local()) },
        )
    }

    fn handle(self: Rc<Self>, request: HttpRequest) -> LocalBoxFuture<'static, HttpResponse> {
        async move {
            match (request.method.as_str(), request.path.as_str()) {
                ("GET", "/health") => HttpResponse {
                    status: 200,
                    content_type: "application/json".to_string(),
                    body: Bytes::from_static(b"{\"health\":\"true\",\"reason\":\"\"}"),
                    headers: Vec::new(),
                },
                ("POST", "/echo") => HttpResponse {
                    status: 200,
                    content_type: "application/octet-stream".to_string(),
                    body: request.body,
                    headers: Vec::new(),
                },
                _ => HttpResponse::text(404, "404 page not found\n"),
            }
        }
        .boxed_local()
    }
}

/// A server on 127.0.0.1:0 in its own thread with a glommio executor.
pub struct TestServer {
    pub addr: SocketAddr,
    pub events: Events,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TestServer {
    pub fn start(limits: ServerLimits) -> TestServer {
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let stop = Arc::new(AtomicBool::new(false));
        let events: Events = Arc::default();
        let server_stop = stop.clone();
        let server_events = events.clone();
        let thread = std::thread::spawn(move || {
            let executor = glommio::LocalExecutorBuilder::default()
                .make()
                .expect("glommio executor");
            executor.run(async move {
                let listener = net::bind_reuseport("127.0.0.1:0".parse().unwrap()).unwrap();
                addr_tx.send(listener.local_addr().unwrap()).unwrap();
                let shutdown = Shutdown::new();
                let trigger = shutdown.clone();
                glommio::spawn_local(async move {
                    while !server_stop.load(Ordering::SeqCst) {
                        glommio::timer::sleep(Duration::from_millis(5)).await;
                    }
                    trigger.trigger();
                })
                .detach();
                let grpc = Rc::new(TestGrpc {
                    events: server_events,
                });
                net::serve(listener, grpc, Rc::new(TestHttp), limits, shutdown)
                    .await
                    .unwrap();
            });
        });
        let addr = addr_rx.recv().expect("server address");
        TestServer {
            addr,
            events,
            stop,
            thread: Some(thread),
        }
    }

    /// Triggers the server's shutdown signal.
    pub fn trigger_shutdown(&self) {
        self.stop.store(true, Ordering::SeqCst);
    }

    /// Triggers shutdown and waits until `serve` returned.
    pub fn join(mut self) {
        self.trigger_shutdown();
        self.thread.take().unwrap().join().unwrap();
    }

    pub fn events(&self) -> Vec<String> {
        self.events.lock().unwrap().clone()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

pub fn limits() -> ServerLimits {
    ServerLimits {
        max_recv_message_bytes: 1024 * 1024,
        max_send_message_bytes: 4 * 1024 * 1024,
        max_concurrent_streams: 1000,
        http1_max_body_bytes: 1024,
        ..ServerLimits::default()
    }
}

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

pub async fn connect(addr: SocketAddr) -> h2::client::SendRequest<Bytes> {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (client, connection) = h2::client::handshake(tcp).await.unwrap();
    tokio::spawn(async move {
        let _ = connection.await;
    });
    client
}

pub fn grpc_request(path: &str) -> Request<()> {
    Request::builder()
        .method("POST")
        .uri(format!("http://127.0.0.1{path}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(())
        .unwrap()
}

pub fn frame(message: &[u8]) -> Bytes {
    net::encode_message(message)
}

/// What a call answered.
#[derive(Debug)]
pub struct Reply {
    pub http_status: u16,
    pub headers: HeaderMap,
    pub messages: Vec<Bytes>,
    pub trailers: Option<HeaderMap>,
}

impl Reply {
    /// grpc-status and decoded grpc-message, from the trailers or (Trailers-Only) the headers.
    pub fn status(&self) -> (String, String) {
        let map = self.trailers.as_ref().unwrap_or(&self.headers);
        let code = map
            .get("grpc-status")
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default();
        let message = map
            .get("grpc-message")
            .map(|v| net::decode_grpc_message(v.to_str().unwrap()))
            .unwrap_or_default();
        (code, message)
    }
}

/// Reads a whole response: headers, every message (releasing flow-control capacity), trailers.
pub async fn read_reply(response: h2::client::ResponseFuture) -> Reply {
    let response = response.await.unwrap();
    let (parts, mut body) = response.into_parts();
    let mut decoder = net::MessageDecoder::new(usize::MAX);
    let mut messages = Vec::new();
    while let Some(chunk) = body.data().await {
        let chunk = chunk.unwrap();
        body.flow_control().release_capacity(chunk.len()).unwrap();
        decoder.push(chunk);
        while let Some(message) = decoder.next_message().unwrap() {
            messages.push(message);
        }
    }
    assert!(decoder.is_idle());
    let trailers = body.trailers().await.unwrap();
    Reply {
        http_status: parts.status.as_u16(),
        headers: parts.headers,
        messages,
        trailers,
    }
}

/// One unary call with `data` as the whole request body.
pub async fn call(
    client: &mut h2::client::SendRequest<Bytes>,
    request: Request<()>,
    data: Bytes,
) -> Reply {
    let (response, mut send) = client.send_request(request, false).unwrap();
    send.send_data(data, true).unwrap();
    read_reply(response).await
}

pub fn concat(parts: &[Bytes]) -> Bytes {
    let mut all = BytesMut::new();
    for part in parts {
        all.extend_from_slice(part);
    }
    all.freeze()
}
