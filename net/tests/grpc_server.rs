//! End-to-end: a real h2 client (tokio) against `net::serve` on a glommio executor.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[test]
fn unary_ok_has_headers_message_and_ok_trailers() {
    let server = TestServer::start(limits());
    runtime().block_on(async {
        let mut client = connect(server.addr).await;
        let reply = call(
            &mut client,
            grpc_request("/test.Echo/Unary"),
            frame(b"hello"),
        )
        .await;
        assert_eq!(reply.http_status, 200);
        assert_eq!(
            reply.headers.get("content-type").unwrap(),
            "application/grpc"
        );
        assert!(reply.headers.get("grpc-status").is_none());
        assert_eq!(reply.messages, vec![Bytes::from_static(b"hello")]);
        let trailers = reply.trailers.as_ref().expect("trailers");
        assert_eq!(trailers.get("grpc-status").unwrap(), "0");
        assert_eq!(reply.status(), ("0".to_string(), String::new()));
    });
    server.join();
}

#[test]
fn unary_request_split_across_data_frames_and_empty_message() {
    let server = TestServer::start(limits());
    runtime().block_on(async {
        let mut client = connect(server.addr).await;
        let framed = frame(b"split message");
        let (response, mut send) = client
            .send_request(grpc_request("/test.Echo/Unary"), false)
            .unwrap();
        send.send_data(framed.slice(0..3), false).unwrap();
        send.send_data(framed.slice(3..9), false).unwrap();
        send.send_data(framed.slice(9..), true).unwrap();
        let reply = read_reply(response).await;
        assert_eq!(reply.messages, vec![Bytes::from_static(b"split message")]);
        assert_eq!(reply.status().0, "0");

        let empty = call(&mut client, grpc_request("/test.Echo/Unary"), frame(b"")).await;
        assert_eq!(empty.messages, vec![Bytes::new()]);
        assert_eq!(empty.status().0, "0");

        let none = call(&mut client, grpc_request("/test.Echo/Unary"), Bytes::new()).await;
        assert_eq!(none.status(), ("2".to_string(), "EOF".to_string()));
    });
    server.join();
}

#[test]
fn error_before_any_message_is_trailers_only() {
    let server = TestServer::start(limits());
    runtime().block_on(async {
        let mut client = connect(server.addr).await;
        let (response, mut send) = client
            .send_request(grpc_request("/test.Echo/Fail"), false)
            .unwrap();
        send.send_data(frame(b"x"), true).unwrap();
        let response = response.await.unwrap();
        // Trailers-Only: the HEADERS frame ends the stream.
        assert!(response.body().is_end_stream());
        assert_eq!(response.status(), 200);
        let headers = response.headers();
        assert_eq!(headers.get("content-type").unwrap(), "application/grpc");
        assert_eq!(headers.get("grpc-status").unwrap(), "5");
        assert_eq!(
            headers.get("grpc-message").unwrap(),
            "etcdserver: key not found 100%25%0A"
        );
    });
    server.join();
}

#[test]
fn unknown_service_and_method_are_unimplemented() {
    let server = TestServer::start(limits());
    runtime().block_on(async {
        let mut client = connect(server.addr).await;
        let reply = call(
            &mut client,
            grpc_request("/etcdserverpb.KV/Nope"),
            frame(b""),
        )
        .await;
        assert_eq!(
            reply.status(),
            (
                "12".to_string(),
                "unknown method Nope for service etcdserverpb.KV".to_string()
            )
        );
        assert!(reply.trailers.is_none());
        assert!(reply.messages.is_empty());
        let reply = call(&mut client, grpc_request("/foo.Bar/Baz"), frame(b"")).await;
        assert_eq!(
            reply.status(),
            ("12".to_string(), "unknown service foo.Bar".to_string())
        );
    });
    server.join();
}

#[test]
fn oversize_request_is_resource_exhausted() {
    let server = TestServer::start(limits());
    runtime().block_on(async {
        let mut client = connect(server.addr).await;
        let big = vec![7u8; 1024 * 1024 + 1];
        let reply = call(&mut client, grpc_request("/test.Echo/Unary"), frame(&big)).await;
        assert_eq!(
            reply.status(),
            (
                "8".to_string(),
                "grpc: received message larger than max (1048577 vs. 1048576)".to_string()
            )
        );
        // Exactly at the limit is accepted.
        let max = vec![1u8; 1024 * 1024];
        let reply = call(&mut client, grpc_request("/test.Echo/Len"), frame(&max)).await;
        assert_eq!(
            reply.messages,
            vec![Bytes::from((1024u64 * 1024).to_be_bytes().to_vec())]
        );
        // The connection still works.
        let reply = call(
            &mut client,
            grpc_request("/test.Echo/Unary"),
            frame(b"after"),
        )
        .await;
        assert_eq!(reply.messages, vec![Bytes::from_static(b"after")]);
    });
    server.join();
}

#[test]
fn compressed_flag_and_encoding_are_refused() {
    let server = TestServer::start(limits());
    runtime().block_on(async {
        let mut client = connect(server.addr).await;
        let reply = call(
            &mut client,
            grpc_request("/test.Echo/Unary"),
            Bytes::from_static(&[1, 0, 0, 0, 1, 0]),
        )
        .await;
        assert_eq!(
            reply.status(),
            (
                "13".to_string(),
                "grpc: compressed flag set with identity or empty encoding".to_string()
            )
        );
        let mut request = grpc_request("/test.Echo/Unary");
        request
            .headers_mut()
            .insert("grpc-encoding", "gzip".parse().unwrap());
        let reply = call(&mut client, request, frame(b"x")).await;
        assert_eq!(
            reply.status(),
            (
                "12".to_string(),
                "grpc: Decompressor is not installed for grpc-encoding \"gzip\"".to_string()
            )
        );
    });
    server.join();
}

#[test]
fn bad_method_content_type_and_timeout_get_http_errors() {
    let server = TestServer::start(limits());
    runtime().block_on(async {
        let mut client = connect(server.addr).await;
        let mut get = grpc_request("/test.Echo/Unary");
        *get.method_mut() = http::Method::GET;
        let reply = call(&mut client, get, Bytes::new()).await;
        assert_eq!(reply.http_status, 405);
        assert_eq!(
            reply.status(),
            (
                "13".to_string(),
                "http2Server.operateHeaders parsed a :method field: GET which should be POST"
                    .to_string()
            )
        );

        let mut json = grpc_request("/test.Echo/Unary");
        json.headers_mut()
            .insert("content-type", "application/json".parse().unwrap());
        let reply = call(&mut client, json, Bytes::new()).await;
        assert_eq!(reply.http_status, 415);
        assert_eq!(
            reply.status(),
            (
                "3".to_string(),
                "invalid gRPC request content-type \"application/json\"".to_string()
            )
        );

        let mut timeout = grpc_request("/test.Echo/Unary");
        timeout
            .headers_mut()
            .insert("grpc-timeout", "18f6n".parse().unwrap());
        let reply = call(&mut client, timeout, frame(b"x")).await;
        assert_eq!(reply.http_status, 400);
        assert_eq!(
            reply.status(),
            (
                "13".to_string(),
                "malformed grpc-timeout: transport: timeout value is not a number: \"18f6n\""
                    .to_string()
            )
        );
    });
    server.join();
}

#[test]
fn deadline_ends_call_with_deadline_exceeded() {
    let server = TestServer::start(limits());
    runtime().block_on(async {
        let mut client = connect(server.addr).await;
        let mut request = grpc_request("/test.Echo/Slow");
        request
            .headers_mut()
            .insert("grpc-timeout", "50m".parse().unwrap());
        let reply = call(&mut client, request, frame(b"x")).await;
        assert_eq!(
            reply.status(),
            ("4".to_string(), "context deadline exceeded".to_string())
        );
        assert!(reply.messages.is_empty());

        // A streaming call gets the same treatment.
        let mut request = grpc_request("/test.Echo/Hold");
        request
            .headers_mut()
            .insert("grpc-timeout", "20m".parse().unwrap());
        let (response, _send) = client.send_request(request, false).unwrap();
        let reply = read_reply(response).await;
        assert_eq!(
            reply.status(),
            ("4".to_string(), "context deadline exceeded".to_string())
        );
    });
    assert!(server.events().contains(&"slow-ended".to_string()));
    assert!(server.events().contains(&"stream-ended".to_string()));
    server.join();
}

#[test]
fn bidirectional_stream_echoes_in_order() {
    let server = TestServer::start(limits());
    runtime().block_on(async {
        let mut client = connect(server.addr).await;
        let (response, mut send) = client
            .send_request(grpc_request("/test.Echo/Stream"), false)
            .unwrap();
        // One message alone, then two merged in one DATA frame, then one split in two.
        send.send_data(frame(b"one"), false).unwrap();
        send.send_data(concat(&[frame(b"two"), frame(b"")]), false)
            .unwrap();
        let four = frame(b"four");
        send.send_data(four.slice(0..2), false).unwrap();
        let response = response.await.unwrap();
        assert_eq!(response.status(), 200);
        let (_, mut body) = response.into_parts();
        let mut decoder = net::MessageDecoder::new(1024);
        let mut got = Vec::new();
        while got.len() < 3 {
            let chunk = body.data().await.unwrap().unwrap();
            body.flow_control().release_capacity(chunk.len()).unwrap();
            decoder.push(chunk);
            while let Some(message) = decoder.next_message().unwrap() {
                got.push(message);
            }
        }
        send.send_data(four.slice(2..), true).unwrap();
        while let Some(chunk) = body.data().await {
            let chunk = chunk.unwrap();
            body.flow_control().release_capacity(chunk.len()).unwrap();
            decoder.push(chunk);
            while let Some(message) = decoder.next_message().unwrap() {
                got.push(message);
            }
        }
        let expected: Vec<Bytes> = vec![
            Bytes::from_static(b"one"),
            Bytes::from_static(b"two"),
            Bytes::new(),
            Bytes::from_static(b"four"),
        ];
        assert_eq!(got, expected);
        let trailers = body.trailers().await.unwrap().unwrap();
        assert_eq!(trailers.get("grpc-status").unwrap(), "0");
    });
    server.join();
}

#[test]
fn big_upload_and_download_refill_flow_control_windows() {
    let server = TestServer::start(limits());
    runtime().block_on(async {
        let mut client = connect(server.addr).await;
        // 40 × 512 KiB = 20 MiB up: more than the 1 MiB stream and 16 MiB connection windows.
        let (response, mut send) = client
            .send_request(grpc_request("/test.Echo/Upload"), false)
            .unwrap();
        let chunk = frame(&vec![3u8; 512 * 1024]);
        for _ in 0..40 {
            send.reserve_capacity(chunk.len());
            let mut rest = chunk.clone();
            while !rest.is_empty() {
                let capacity = futures::future::poll_fn(|cx| send.poll_capacity(cx))
                    .await
                    .unwrap()
                    .unwrap();
                let n = capacity.min(rest.len());
                send.send_data(rest.split_to(n), false).unwrap();
            }
        }
        send.send_data(Bytes::new(), true).unwrap();
        let reply = read_reply(response).await;
        assert_eq!(
            reply.messages,
            vec![Bytes::from((40u64 * 512 * 1024).to_be_bytes().to_vec())]
        );
        assert_eq!(reply.status().0, "0");

        // 24 × 1 MiB down with the client's default 64 KiB windows.
        let mut request = Vec::new();
        request.extend(24u32.to_be_bytes());
        request.extend((1024u32 * 1024).to_be_bytes());
        let reply = call(
            &mut client,
            grpc_request("/test.Echo/Download"),
            frame(&request),
        )
        .await;
        assert_eq!(reply.messages.len(), 24);
        for (i, message) in reply.messages.iter().enumerate() {
            assert_eq!(message.len(), 1024 * 1024);
            assert!(message.iter().all(|b| *b == i as u8));
        }
        assert_eq!(reply.status().0, "0");
    });
    server.join();
}

#[test]
fn batched_messages_arrive_whole_and_in_order() {
    let server = TestServer::start(limits());
    runtime().block_on(async {
        let mut client = connect(server.addr).await;
        // 7 messages in batches of 3, 3 and 1; 300 KB each, so batches span many DATA
        // frames and the client's 64 KiB windows.
        let mut request = Vec::new();
        request.extend(7u32.to_be_bytes());
        request.extend(300_000u32.to_be_bytes());
        let reply = call(
            &mut client,
            grpc_request("/test.Echo/DownloadBatched"),
            frame(&request),
        )
        .await;
        assert_eq!(reply.messages.len(), 7);
        for (i, message) in reply.messages.iter().enumerate() {
            assert_eq!(message.len(), 300_000);
            assert!(message.iter().all(|b| *b == i as u8));
        }
        assert_eq!(reply.status().0, "0");
    });
    server.join();
}

#[test]
fn many_concurrent_calls_on_one_connection() {
    let server = TestServer::start(limits());
    runtime().block_on(async {
        let client = connect(server.addr).await;
        let calls = (0..100u32).map(|i| {
            let mut client = client.clone();
            async move {
                let message = format!("call {i}");
                let reply = call(
                    &mut client,
                    grpc_request("/test.Echo/Unary"),
                    frame(message.as_bytes()),
                )
                .await;
                assert_eq!(reply.messages, vec![Bytes::from(message)]);
                assert_eq!(reply.status().0, "0");
            }
        });
        futures::future::join_all(calls).await;
    });
    server.join();
}

#[test]
fn client_reset_ends_the_streaming_call() {
    let server = TestServer::start(limits());
    runtime().block_on(async {
        let mut client = connect(server.addr).await;
        let (_response, mut send) = client
            .send_request(grpc_request("/test.Echo/Hold"), false)
            .unwrap();
        send.send_data(frame(b"hi"), false).unwrap();
        send.send_reset(h2::Reason::CANCEL);
        // The server drops or ends the call; wait (bounded) for it to record that.
        for _ in 0..500 {
            if server.events().contains(&"stream-ended".to_string()) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // And the connection still serves calls.
        let reply = call(&mut client, grpc_request("/test.Echo/Unary"), frame(b"ok")).await;
        assert_eq!(reply.messages, vec![Bytes::from_static(b"ok")]);
    });
    assert!(server.events().contains(&"stream-ended".to_string()));
    server.join();
}

#[test]
fn garbage_after_preface_and_abrupt_close_do_not_hurt_the_server() {
    let server = TestServer::start(limits());
    runtime().block_on(async {
        let mut raw = tokio::net::TcpStream::connect(server.addr).await.unwrap();
        raw.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\xff\xff\xff\xff\xff\xff\xff\xff\xff")
            .await
            .unwrap();
        let mut sink = Vec::new();
        // The server answers with SETTINGS/GOAWAY and closes.
        let _ = raw.read_to_end(&mut sink).await;
        let half = tokio::net::TcpStream::connect(server.addr).await.unwrap();
        drop(half);
        let mut client = connect(server.addr).await;
        let reply = call(
            &mut client,
            grpc_request("/test.Echo/Unary"),
            frame(b"still here"),
        )
        .await;
        assert_eq!(reply.messages, vec![Bytes::from_static(b"still here")]);
    });
    server.join();
}

async fn next_message(
    body: &mut h2::RecvStream,
    decoder: &mut net::MessageDecoder,
) -> Option<Bytes> {
    loop {
        if let Some(message) = decoder.next_message().unwrap() {
            return Some(message);
        }
        let chunk = body.data().await?.unwrap();
        body.flow_control().release_capacity(chunk.len()).unwrap();
        decoder.push(chunk);
    }
}

#[test]
fn graceful_shutdown_sends_goaway_and_lets_calls_finish() {
    let server = TestServer::start(limits());
    let rt = runtime();
    rt.block_on(async {
        let mut client = connect(server.addr).await;
        let (response, mut send) = client
            .send_request(grpc_request("/test.Echo/Stream"), false)
            .unwrap();
        send.send_data(frame(b"before"), false).unwrap();
        let response = response.await.unwrap();
        let (_, mut body) = response.into_parts();
        let mut decoder = net::MessageDecoder::new(1024);
        assert_eq!(
            next_message(&mut body, &mut decoder).await.unwrap(),
            "before"
        );

        server.trigger_shutdown();
        // After GOAWAY the client refuses new streams on this connection (bounded wait).
        let mut refused = false;
        for _ in 0..500 {
            tokio::time::sleep(Duration::from_millis(10)).await;
            let ready = futures::future::poll_fn(|cx| client.poll_ready(cx)).await;
            let attempt = ready.and_then(|()| {
                client
                    .send_request(grpc_request("/test.Echo/Unary"), true)
                    .map(|_| ())
            });
            if attempt.is_err() {
                refused = true;
                break;
            }
        }
        assert!(refused, "no GOAWAY seen");
        // The in-flight call still works and ends normally.
        send.send_data(frame(b"after"), true).unwrap();
        assert_eq!(
            next_message(&mut body, &mut decoder).await.unwrap(),
            "after"
        );
        assert_eq!(next_message(&mut body, &mut decoder).await, None);
        let trailers = body.trailers().await.unwrap().unwrap();
        assert_eq!(trailers.get("grpc-status").unwrap(), "0");
        // New connections are not accepted any more.
    });
    // serve() returns once every connection ended.
    server.join();
}

fn short_keepalive() -> net::ServerLimits {
    net::ServerLimits {
        keepalive_interval: Duration::from_millis(200),
        keepalive_timeout: Duration::from_millis(200),
        ..limits()
    }
}

#[test]
fn a_client_that_does_not_answer_keepalive_pings_is_disconnected() {
    let server = TestServer::start(short_keepalive());
    runtime().block_on(async {
        // The client preface and an empty SETTINGS frame, then nothing: no SETTINGS ack and
        // no PING ack ever.
        let mut raw = tokio::net::TcpStream::connect(server.addr).await.unwrap();
        raw.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")
            .await
            .unwrap();
        let mut bytes = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(10), raw.read_to_end(&mut bytes))
            .await
            .expect("the server closes the connection");
        read.unwrap();
        // Walk the frames the server sent: one of them is a PING (type 6) without ACK.
        let mut at = 0;
        let mut pinged = false;
        while at + 9 <= bytes.len() {
            let length = u32::from_be_bytes([0, bytes[at], bytes[at + 1], bytes[at + 2]]) as usize;
            let (kind, flags) = (bytes[at + 3], bytes[at + 4]);
            pinged |= kind == 6 && flags & 1 == 0;
            at += 9 + length;
        }
        assert!(pinged, "no PING before the close: {bytes:?}");
    });
    server.join();
}

#[test]
fn a_client_that_answers_keepalive_pings_stays_connected() {
    let server = TestServer::start(short_keepalive());
    runtime().block_on(async {
        let mut client = connect(server.addr).await;
        // Five keepalive intervals; h2's client answers every PING.
        tokio::time::sleep(Duration::from_millis(1_000)).await;
        let reply = call(
            &mut client,
            grpc_request("/test.Echo/Unary"),
            frame(b"still here"),
        )
        .await;
        assert_eq!(reply.status().0, "0", "{reply:?}");
        assert_eq!(reply.messages, vec![Bytes::from_static(b"still here")]);
    });
    server.join();
}
