//! Contained panics (net/src/panic.rs): a handler that panics fails its own call with
//! INTERNAL; the connection, its other calls and the executor keep serving.

mod common;

use bytes::Bytes;
use common::*;

fn internal() -> (String, String) {
    ("13".to_string(), net::PANIC_STATUS_MESSAGE.to_string())
}

#[test]
fn a_panicking_unary_handler_fails_only_its_call() {
    let server = TestServer::start(limits());
    runtime().block_on(async {
        let mut client = connect(server.addr).await;
        // A call in flight on the same connection while another panics: it ends by its
        // own deadline, as it would have anyway.
        let mut slow = grpc_request("/test.Echo/Slow");
        slow.headers_mut()
            .insert("grpc-timeout", http::HeaderValue::from_static("300m"));
        let (slow, mut send) = client.send_request(slow, false).unwrap();
        send.send_data(frame(b"slow"), true).unwrap();
        let reply = call(&mut client, grpc_request("/test.Echo/Panic"), frame(b"x")).await;
        assert_eq!(reply.status(), internal());
        assert!(reply.messages.is_empty());
        let slow = read_reply(slow).await;
        assert_eq!(
            slow.status(),
            ("4".to_string(), "context deadline exceeded".to_string())
        );
        // The same connection serves the next call.
        let reply = call(
            &mut client,
            grpc_request("/test.Echo/Unary"),
            frame(b"after"),
        )
        .await;
        assert_eq!(reply.messages, vec![Bytes::from_static(b"after")]);
        assert_eq!(reply.status().0, "0");
        // So does a new one.
        let mut other = connect(server.addr).await;
        let reply = call(&mut other, grpc_request("/test.Echo/Unary"), frame(b"new")).await;
        assert_eq!(reply.messages, vec![Bytes::from_static(b"new")]);
    });
    // The executor thread did not die: `join` unwraps its result.
    server.join();
}

#[test]
fn a_panicking_stream_ends_with_internal_after_its_messages() {
    let server = TestServer::start(limits());
    runtime().block_on(async {
        let mut client = connect(server.addr).await;
        let reply = call(
            &mut client,
            grpc_request("/test.Echo/PanicAfterOne"),
            frame(b"first"),
        )
        .await;
        assert_eq!(reply.messages, vec![Bytes::from_static(b"first")]);
        // Headers were sent with the first message: the status comes in trailers.
        assert!(reply.trailers.is_some());
        assert_eq!(reply.status(), internal());
        let reply = call(
            &mut client,
            grpc_request("/test.Echo/Stream"),
            frame(b"echo"),
        )
        .await;
        assert_eq!(reply.messages, vec![Bytes::from_static(b"echo")]);
        assert_eq!(reply.status().0, "0");
    });
    assert!(server.events().contains(&"stream-ended".to_string()));
    server.join();
}
