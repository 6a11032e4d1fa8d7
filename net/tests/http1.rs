//! HTTP/1.1 on the same port as gRPC.

mod common;

use common::*;
use net::ServerLimits;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn read_response(stream: &mut tokio::net::TcpStream) -> String {
    // Reads until the body announced by Content-Length is complete.
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let text = String::from_utf8_lossy(&buf).to_string();
        if let Some(head_end) = text.find("\r\n\r\n") {
            let length: usize = text[..head_end]
                .lines()
                .find_map(|l| l.strip_prefix("Content-Length: "))
                .map(|v| v.parse().unwrap())
                .unwrap_or(0);
            if buf.len() >= head_end + 4 + length {
                return text;
            }
        }
        let n = stream.read(&mut chunk).await.unwrap();
        assert!(n > 0, "connection closed early: {text:?}");
        buf.extend_from_slice(&chunk[..n]);
    }
}

#[test]
fn get_keep_alive_and_close() {
    let server = TestServer::start(limits());
    runtime().block_on(async {
        let mut stream = tokio::net::TcpStream::connect(server.addr).await.unwrap();
        stream
            .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        assert_eq!(
            read_response(&mut stream).await,
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 29\r\n\r\n{\"health\":\"true\",\"reason\":\"\"}"
        );
        // Same connection, a body, pipelined with a request that asks to close.
        stream
            .write_all(b"POST /echo HTTP/1.1\r\nContent-Length: 5\r\n\r\nhelloGET /nope HTTP/1.1\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        // Both answers, in order; the server closes after the second.
        let mut rest = String::new();
        stream.read_to_string(&mut rest).await.unwrap();
        assert_eq!(
            rest,
            "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: 5\r\n\r\nhello\
             HTTP/1.1 404 Not Found\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 19\r\nConnection: close\r\n\r\n404 page not found\n"
        );
    });
    server.join();
}

#[test]
fn limits_are_refused_and_chunked_bodies_read() {
    let server = TestServer::start(limits());
    runtime().block_on(async {
        let mut stream = tokio::net::TcpStream::connect(server.addr).await.unwrap();
        stream
            .write_all(b"POST /echo HTTP/1.1\r\nContent-Length: 2000\r\n\r\n")
            .await
            .unwrap();
        let mut reply = String::new();
        stream.read_to_string(&mut reply).await.unwrap();
        assert_eq!(
            reply,
            "HTTP/1.1 413 Payload Too Large\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 22\r\nConnection: close\r\n\r\nrequest body too large"
        );
        // A chunked body is read (as Go's net/http, which etcd's gateway runs on, reads it).
        let mut stream = tokio::net::TcpStream::connect(server.addr).await.unwrap();
        stream
            .write_all(b"POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n2\r\nhe\r\n3\r\nllo\r\n0\r\n\r\n")
            .await
            .unwrap();
        let mut reply = String::new();
        stream.read_to_string(&mut reply).await.unwrap();
        assert_eq!(
            reply,
            "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello"
        );
        // A chunked body over the limit: 413 too.
        let mut stream = tokio::net::TcpStream::connect(server.addr).await.unwrap();
        let mut request = b"POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        for _ in 0..3 {
            request.extend_from_slice(b"3e8\r\n");
            request.extend_from_slice(&[b'x'; 1000]);
            request.extend_from_slice(b"\r\n");
        }
        request.extend_from_slice(b"0\r\n\r\n");
        stream.write_all(&request).await.unwrap();
        let mut reply = String::new();
        stream.read_to_string(&mut reply).await.unwrap();
        assert!(reply.starts_with("HTTP/1.1 413 Payload Too Large\r\n"), "{reply}");
        // A head over HTTP1_HEAD_BYTES_MAX: 431.
        let mut stream = tokio::net::TcpStream::connect(server.addr).await.unwrap();
        let mut request = b"GET /health HTTP/1.1\r\nX-Big: ".to_vec();
        request.extend_from_slice(&vec![b'a'; net::HTTP1_HEAD_BYTES_MAX + 1]);
        request.extend_from_slice(b"\r\n\r\n");
        let _ = stream.write_all(&request).await;
        let mut reply = Vec::new();
        let _ = stream.read_to_end(&mut reply).await;
        let reply = String::from_utf8_lossy(&reply);
        assert!(reply.starts_with("HTTP/1.1 431 Request Header Fields Too Large\r\n"), "{reply}");
    });
    server.join();
}

#[test]
fn streamed_replies_are_chunked_and_the_connection_stays_usable() {
    let server = TestServer::start(limits());
    runtime().block_on(async {
        let mut stream = tokio::net::TcpStream::connect(server.addr).await.unwrap();
        stream
            .write_all(b"POST /stream HTTP/1.1\r\nContent-Length: 3\r\n\r\nabcGET /nope HTTP/1.1\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut all = String::new();
        stream.read_to_string(&mut all).await.unwrap();
        assert_eq!(
            all,
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nTransfer-Encoding: chunked\r\n\r\n\
             1\r\na\r\n1\r\nb\r\n1\r\nc\r\n0\r\n\r\n\
             HTTP/1.1 404 Not Found\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 19\r\nConnection: close\r\n\r\n404 page not found\n"
        );
    });
    server.join();
}

#[test]
fn idle_keep_alive_connection_closes_on_shutdown() {
    let server = TestServer::start(limits());
    let rt = runtime();
    let mut stream = rt.block_on(async {
        let mut stream = tokio::net::TcpStream::connect(server.addr).await.unwrap();
        stream
            .write_all(b"GET /health HTTP/1.1\r\n\r\n")
            .await
            .unwrap();
        read_response(&mut stream).await;
        stream
    });
    server.join();
    rt.block_on(async {
        let mut rest = Vec::new();
        stream.read_to_end(&mut rest).await.unwrap();
        assert!(rest.is_empty());
    });
}

fn short_timeouts() -> ServerLimits {
    ServerLimits {
        preface_timeout: std::time::Duration::from_millis(300),
        http1_request_timeout: std::time::Duration::from_millis(300),
        ..limits()
    }
}

/// Reads until the server closes; `None` if it has not closed within 10 s (the server's
/// limits under test are 300 ms).
async fn read_until_closed(stream: &mut tokio::net::TcpStream) -> Option<Vec<u8>> {
    let mut all = Vec::new();
    tokio::time::timeout(
        std::time::Duration::from_secs(10),
        stream.read_to_end(&mut all),
    )
    .await
    .ok()
    .map(|read| {
        read.unwrap();
        all
    })
}

#[test]
fn a_client_that_sends_nothing_is_disconnected_after_the_preface_timeout() {
    let server = TestServer::start(short_timeouts());
    runtime().block_on(async {
        let mut silent = tokio::net::TcpStream::connect(server.addr).await.unwrap();
        let got = read_until_closed(&mut silent).await;
        assert_eq!(got, Some(Vec::new()), "silent connection not closed");
        // Half an HTTP/2 preface, then silence: closed too.
        let mut half = tokio::net::TcpStream::connect(server.addr).await.unwrap();
        half.write_all(b"PRI * HTTP/2.0\r\n").await.unwrap();
        let got = read_until_closed(&mut half).await;
        assert_eq!(got, Some(Vec::new()), "half preface not closed");
    });
    server.join();
}

#[test]
fn a_slow_http1_request_is_disconnected_but_an_idle_keep_alive_is_not() {
    let server = TestServer::start(short_timeouts());
    runtime().block_on(async {
        // Slow-loris: a request head that never ends gets no answer and a close.
        let mut slow = tokio::net::TcpStream::connect(server.addr).await.unwrap();
        slow.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n")
            .await
            .unwrap();
        let got = read_until_closed(&mut slow).await;
        assert_eq!(got, Some(Vec::new()), "slow head not closed");
        // A body that stops short of its Content-Length: the same.
        let mut short_body = tokio::net::TcpStream::connect(server.addr).await.unwrap();
        short_body
            .write_all(b"POST /echo HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc")
            .await
            .unwrap();
        let got = read_until_closed(&mut short_body).await;
        assert_eq!(got, Some(Vec::new()), "short body not closed");
        // Between requests a keep-alive connection may stay idle longer than the limit.
        let mut idle = tokio::net::TcpStream::connect(server.addr).await.unwrap();
        idle.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let first = read_response(&mut idle).await;
        assert!(first.starts_with("HTTP/1.1 200 OK\r\n"), "{first}");
        tokio::time::sleep(std::time::Duration::from_millis(900)).await;
        idle.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let second = read_response(&mut idle).await;
        assert!(second.starts_with("HTTP/1.1 200 OK\r\n"), "{second}");
    });
    server.join();
}
