//! HTTP/1.1 on the client port: `net::serve_stream` over an in-memory connection, so the
//! request heads, `Content-Length` bodies, pipelining, keep-alive and refusals go through
//! exactly the server's code.
//!
//! Input: `split seed u8 | bytes the client sends`, then the client half-closes. The
//! connection is served to its end on a glommio executor. Properties: it ends; what the
//! server wrote is a sequence of complete HTTP/1.1 responses, each `200` from the handler
//! (echoing the request's method, target and body length, which must match its
//! `Content-Length` when it has one; chunked bodies are read too), a `100 Continue`
//! interim answer, or a refusal (400, 413, 431) that is the last response; no more
//! responses than requests could fit in the input.

use std::cell::RefCell;
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures::future::LocalBoxFuture;
use futures::FutureExt;
use net::{
    CallContext, GrpcService, HttpHandler, HttpRequest, HttpResponse, Inbound, MethodKind,
    Outbound, ServerLimits, Shutdown, Status,
};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::{Target, Verdict};

/// The HTTP/2 client preface: an input starting with it would be served as HTTP/2.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// Body limit the target serves with (small, so that 413 is reachable).
const BODY_BYTES_MAX: usize = 4096;

pub(crate) struct Http1 {
    executor: glommio::LocalExecutor,
}

impl Http1 {
    pub(crate) fn new() -> Http1 {
        Http1 {
            executor: glommio::LocalExecutorBuilder::default()
                .make()
                .expect("a glommio executor (io_uring) for the http1 target"),
        }
    }
}

/// A connection whose client sends `input` in chunks, then half-closes; what the server
/// writes is collected.
struct Connection {
    input: Bytes,
    at: usize,
    step: u64,
    split: usize,
    written: Rc<RefCell<Vec<u8>>>,
}

impl AsyncRead for Connection {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        this.step = this
            .step
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let want = 1 + (this.step >> 33) as usize % this.split;
        let n = want.min(buf.remaining()).min(this.input.len() - this.at);
        buf.put_slice(&this.input[this.at..this.at + n]);
        this.at += n;
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Connection {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.written.borrow_mut().extend_from_slice(buf);
        Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// Answers every request with 200 and `method target body-length`.
struct Echo;

impl HttpHandler for Echo {
    fn handle(self: Rc<Self>, request: HttpRequest) -> LocalBoxFuture<'static, HttpResponse> {
        // A chunked body has no declared length: its own length stands in.
        let declared = match request.header("content-length") {
            Some(v) => v.trim().parse::<usize>().unwrap_or(0),
            None if request.header("transfer-encoding").is_some() => request.body.len(),
            None => 0,
        };
        let body = format!(
            "{} {} {} {}",
            request.method,
            request.path,
            request.body.len(),
            declared
        );
        // A HEAD answer carries no body but the Content-Length of one; answer empty so
        // that the responses stay parsable without knowing the requests.
        let body = if request.method == "HEAD" {
            String::new()
        } else {
            body
        };
        Box::pin(async move { HttpResponse::text(200, body) })
    }
}

/// No gRPC methods: an HTTP/2 connection never starts (the preface is avoided).
struct NoGrpc;

impl GrpcService for NoGrpc {
    fn method_kind(&self, _path: &str) -> Option<MethodKind> {
        None
    }
    fn unary(
        self: Rc<Self>,
        _: CallContext,
        _: Bytes,
    ) -> LocalBoxFuture<'static, Result<Bytes, Status>> {
        Box::pin(async { Err(Status::new(net::Code::Unimplemented, "none")) })
    }
    fn streaming(
        self: Rc<Self>,
        _: CallContext,
        _: Inbound,
        _: Outbound,
    ) -> LocalBoxFuture<'static, Result<(), Status>> {
        Box::pin(async { Err(Status::new(net::Code::Unimplemented, "none")) })
    }
}

/// Checks the server's output; `Ok(handled requests)`.
fn check_responses(out: &[u8], input_len: usize) -> Result<usize, String> {
    let mut at = 0;
    let mut handled = 0;
    while at < out.len() {
        let mut headers = [httparse::EMPTY_HEADER; 16];
        let mut resp = httparse::Response::new(&mut headers);
        let head = match resp.parse(&out[at..]) {
            Ok(httparse::Status::Complete(n)) => n,
            other => return Err(format!("unparsable response at byte {at}: {other:?}")),
        };
        let code = resp.code.unwrap_or(0);
        if code == 100 {
            // hyper's answer to `Expect: 100-continue` before it reads the body.
            at += head;
            continue;
        }
        let len = resp
            .headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case("content-length"))
            .and_then(|h| std::str::from_utf8(h.value).ok()?.parse::<usize>().ok())
            .ok_or("response without Content-Length")?;
        let body = out
            .get(at + head..at + head + len)
            .ok_or("response body shorter than its Content-Length")?;
        at += head + len;
        match code {
            200 => {
                handled += 1;
                let text = String::from_utf8_lossy(body);
                let mut fields = text.rsplitn(3, ' ');
                let (declared, got) = (fields.next(), fields.next());
                if !text.is_empty() && declared != got {
                    return Err(format!("body length differs from Content-Length: {text}"));
                }
            }
            400 | 413 | 431 => {
                if at != out.len() {
                    return Err(format!("a {code} refusal was not the last response"));
                }
            }
            other => return Err(format!("unexpected status {other}")),
        }
    }
    // The smallest request head httparse takes ("A / HTTP/1.1\n\n") has 14 bytes.
    if handled > input_len / 4 + 1 {
        return Err(format!("{handled} responses from {input_len} input bytes"));
    }
    Ok(handled)
}

impl Target for Http1 {
    fn name(&self) -> &'static str {
        "http1"
    }

    fn seeds(&mut self) -> Vec<Vec<u8>> {
        let requests: [&[u8]; 6] = [
            b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n",
            b"GET /metrics?x=1 HTTP/1.1\r\nHost: x\r\nAccept: */*\r\n\r\nGET /version HTTP/1.1\r\n\r\n",
            b"POST /v3/kv/range HTTP/1.1\r\nContent-Length: 14\r\nContent-Type: application/json\r\n\r\n{\"key\":\"Zm9v\"}",
            b"POST /v3/kv/put HTTP/1.1\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}GET / HTTP/1.1\r\n\r\n",
            b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\nHEAD /health HTTP/1.1\r\n\r\n",
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        ];
        requests
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let mut s = vec![[1u8, 3, 17, 255, 64, 2][i]];
                s.extend_from_slice(r);
                s
            })
            .collect()
    }

    fn execute(&mut self, input: &[u8]) -> Result<Verdict, String> {
        let [split, sent @ ..] = input else {
            return Ok(Verdict::Rejected);
        };
        let mut sent = sent.to_vec();
        if sent.starts_with(H2_PREFACE) {
            sent[0] ^= 0x20;
        }
        let written = Rc::new(RefCell::new(Vec::new()));
        let conn = Connection {
            input: Bytes::from(sent),
            at: 0,
            step: u64::from(*split),
            split: usize::from(*split) + 1,
            written: written.clone(),
        };
        let limits = ServerLimits {
            http1_max_body_bytes: BODY_BYTES_MAX,
            ..ServerLimits::default()
        };
        let served = self.executor.run(
            std::panic::AssertUnwindSafe(net::serve_stream(
                conn,
                None,
                None,
                Rc::new(NoGrpc),
                Rc::new(Echo),
                limits,
                Shutdown::new(),
            ))
            .catch_unwind(),
        );
        match served {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                return Err(format!(
                    "serve_stream failed on an in-memory connection: {e}"
                ))
            }
            Err(panic) => std::panic::resume_unwind(panic),
        }
        let out = written.borrow();
        let handled = check_responses(&out, input.len())?;
        Ok(if handled > 0 {
            Verdict::Accepted
        } else {
            Verdict::Rejected
        })
    }
}
