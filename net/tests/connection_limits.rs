//! What one client can make the server hold: flow-control credit returned only for
//! messages the handler took, `max_concurrent_streams`, and the cap on connections per core.
//! Driven by a raw HTTP/2 client that sees (and can break) every frame.

mod common;

use std::io::Read;

use bytes::Bytes;
use common::raw_h2::{
    Frame, RawH2, DATA, HEADERS, REFUSED_STREAM, RST_STREAM, SETTINGS_INITIAL_WINDOW_SIZE,
    SETTINGS_MAX_CONCURRENT_STREAMS,
};
use common::{limits, TestServer};
use net::{MessageDecoder, ServerLimits};

/// RST_STREAM error code FLOW_CONTROL_ERROR (RFC 9113 §7).
const FLOW_CONTROL_ERROR: u32 = 0x3;

fn message(len: usize) -> Vec<u8> {
    net::encode_message(&vec![7u8; len]).to_vec()
}

/// Reads frames until `count` response messages of `stream` are decoded (the test
/// service's `/test.Echo/Ack` answers each request message with its length, u64 BE).
fn read_acks(
    client: &mut RawH2,
    decoder: &mut MessageDecoder,
    stream: u32,
    count: usize,
) -> Vec<u64> {
    let mut acks = Vec::new();
    while acks.len() < count {
        let frame = client.read_frame().expect("server closed the connection");
        assert_ne!(frame.kind, RST_STREAM, "stream reset: {frame:?}");
        if frame.kind == DATA && frame.stream == stream {
            decoder.push(Bytes::from(frame.payload));
            while let Some(ack) = decoder.next_message().unwrap() {
                acks.push(u64::from_be_bytes(ack[..].try_into().unwrap()));
            }
        }
    }
    acks
}

/// Two PING round trips: the second PING is read after the server flushed what it had
/// queued when it answered the first, so every frame sent before is in the result.
fn settle(client: &mut RawH2) -> Vec<Frame> {
    let mut frames = client.ping(1);
    frames.extend(client.ping(2));
    frames
}

#[test]
fn request_bytes_are_credited_back_only_when_the_handler_takes_their_message() {
    let limits = ServerLimits {
        max_recv_message_bytes: 1536 * 1024,
        stream_window_bytes: net::stream_window_for_messages(1536 * 1024),
        ..limits()
    };
    let window = limits.stream_window_bytes;
    // One whole largest message fits a stream's window.
    assert_eq!(window as usize, limits.max_recv_message_bytes + 5);
    let server = TestServer::start(limits.clone());
    let mut client = RawH2::handshake(server.addr);
    assert_eq!(client.setting(SETTINGS_INITIAL_WINDOW_SIZE), Some(window));
    let mut decoder = MessageDecoder::new(usize::MAX);

    client.open_grpc(1, "/test.Echo/Ack", false);
    let first = message(10);
    let second_len = limits.max_recv_message_bytes - 100;
    let second = message(second_len);
    let body = [first.clone(), second].concat();
    // Everything but the second message's last byte: the handler takes the first message
    // and then waits for the rest of the second.
    client.send_data(1, &body[..body.len() - 1], false);
    assert_eq!(read_acks(&mut client, &mut decoder, 1, 1), vec![10]);
    settle(&mut client);
    assert!(
        client.credited(1) <= first.len() as u64,
        "credit for {} bytes came back while the handler had taken {} (the first message)",
        client.credited(1),
        first.len()
    );
    // The server holds the partial message: all of it unconsumed, within the window.
    assert!(client.sent(1) - client.credited(1) <= u64::from(window));

    client.send_data(1, &body[body.len() - 1..], false);
    assert_eq!(
        read_acks(&mut client, &mut decoder, 1, 1),
        vec![second_len as u64]
    );
    settle(&mut client);
    assert_eq!(client.credited(1), body.len() as u64);
    drop(client);
    server.join();
}

#[test]
fn credit_too_small_to_announce_at_once_reaches_a_client_that_ran_out() {
    let limits = ServerLimits {
        max_recv_message_bytes: 1536 * 1024,
        stream_window_bytes: net::stream_window_for_messages(1536 * 1024),
        ..limits()
    };
    let server = TestServer::start(limits.clone());
    let mut client = RawH2::handshake(server.addr);
    let mut decoder = MessageDecoder::new(usize::MAX);
    client.open_grpc(1, "/test.Echo/Ack", false);
    // Ten small messages, taken at once: h2 holds back their few bytes of credit while
    // most of the window is left.
    let small = message(100);
    for _ in 0..10 {
        client.send_data(1, &small, false);
    }
    assert_eq!(read_acks(&mut client, &mut decoder, 1, 10), vec![100; 10]);
    settle(&mut client);
    assert!(client.credited(1) < 10 * small.len() as u64);
    // A largest message fills the whole window: the client runs out of credit early.
    let large = message(limits.max_recv_message_bytes);
    let first_part = client.send_within_credit(1, &large);
    assert!(first_part < large.len());
    settle(&mut client);
    // The server took every byte into the waiting message and then announced the small
    // messages' credit, so the client can go on.
    assert_eq!(client.credited(1), 10 * small.len() as u64);
    client.send_data(1, &large[first_part..], false);
    assert_eq!(
        read_acks(&mut client, &mut decoder, 1, 1),
        vec![limits.max_recv_message_bytes as u64]
    );
    drop(client);
    server.join();
}

#[test]
fn a_client_that_overruns_the_stream_window_gets_its_stream_reset() {
    let limits = ServerLimits {
        max_recv_message_bytes: 1536 * 1024,
        stream_window_bytes: net::stream_window_for_messages(1536 * 1024),
        ..limits()
    };
    let window = limits.stream_window_bytes as usize;
    assert_eq!(window, limits.max_recv_message_bytes + 5);
    let server = TestServer::start(limits.clone());
    let mut client = RawH2::handshake(server.addr);
    client.open_grpc(1, "/test.Echo/Ack", false);
    // All of a largest message but its last byte: the handler waits for that byte.
    let header = net::encode_message_header(limits.max_recv_message_bytes);
    let mut body = header.to_vec();
    body.resize(window - 1, 1);
    client.send_data(1, &body, false);
    settle(&mut client);
    assert_eq!(client.credited(1), 0, "nothing was consumed");
    // Two bytes where one is left of the window: a raw frame past what flow control allows.
    client.write_frame(DATA, 0, 1, &[1, 1]);
    let frames = settle(&mut client);
    let reset = frames
        .iter()
        .find(|f| f.kind == RST_STREAM && f.stream == 1)
        .unwrap_or_else(|| panic!("no RST_STREAM among {frames:?}"));
    assert_eq!(reset.u32_at(0), FLOW_CONTROL_ERROR);
    drop(client);
    server.join();
}

#[test]
fn a_stream_beyond_max_concurrent_streams_is_refused_as_grpc_go_does() {
    let limits = ServerLimits {
        max_concurrent_streams: 2,
        ..limits()
    };
    let server = TestServer::start(limits);
    let mut client = RawH2::handshake(server.addr);
    assert_eq!(client.setting(SETTINGS_MAX_CONCURRENT_STREAMS), Some(2));
    client.open_grpc(1, "/test.Echo/Hold", false);
    client.open_grpc(3, "/test.Echo/Hold", false);
    // A third open stream: grpc-go (etcd) answers RST_STREAM REFUSED_STREAM, so does h2.
    client.open_grpc(5, "/test.Echo/Hold", false);
    let refused = loop {
        let frame = client.read_frame().expect("server closed the connection");
        if frame.kind == RST_STREAM {
            break frame;
        }
    };
    assert_eq!(refused.stream, 5);
    assert_eq!(refused.u32_at(0), REFUSED_STREAM);

    // Once a call ends, a new stream is served.
    client.send_data(1, &[], true);
    loop {
        let frame = client.read_frame().expect("server closed the connection");
        assert_ne!(frame.kind, RST_STREAM, "unexpected reset: {frame:?}");
        if frame.stream == 1 && frame.ends_stream() {
            break;
        }
    }
    client.open_grpc(7, "/test.Echo/Ack", true);
    let ended = loop {
        let frame = client.read_frame().expect("server closed the connection");
        if frame.stream == 7 && (frame.ends_stream() || frame.kind == RST_STREAM) {
            break frame;
        }
    };
    assert_eq!(ended.kind, HEADERS, "stream 7 was not served: {ended:?}");
    // Stream 3 is still open: close the connection rather than wait for it to drain.
    drop(client);
    server.join();
}

#[test]
fn connections_beyond_the_cap_are_closed_at_once() {
    let limits = ServerLimits {
        connections_max: 3,
        ..limits()
    };
    let server = TestServer::start(limits);
    // Each one completes its handshake, so the server has counted it before the next.
    let held: Vec<RawH2> = (0..3).map(|_| RawH2::handshake(server.addr)).collect();
    for _ in 0..5 {
        // Closed without a byte read or written: the client reads end of stream.
        let mut refused = std::net::TcpStream::connect(server.addr).unwrap();
        let mut buf = [0u8; 1];
        assert_eq!(
            refused.read(&mut buf).unwrap(),
            0,
            "a connection beyond the cap was served"
        );
    }
    // The admitted ones are still served.
    for mut client in held {
        client.ping(9);
    }
    server.join();
}
