//! Bounded connections, end to end against the `cairn` binary: `--max-concurrent-streams`
//! reaches HTTP/2 SETTINGS and a client that opens more streams gets them refused (as
//! etcd's grpc-go does); 10,000 idle connections do not stop service, and those that never
//! send a protocol preface are closed by the preface timeout; the server raises its open
//! file limit and logs the connection cap derived from it.

mod common;

#[path = "../../net/tests/common/raw_h2.rs"]
mod raw_h2;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};

use common::{skip_unless_cairn, text, TestServer};
use raw_h2::{RawH2, PREFACE, REFUSED_STREAM, RST_STREAM, SETTINGS_MAX_CONCURRENT_STREAMS};

/// Idle connections the service must survive (issue 9 acceptance).
const IDLE_CONNECTIONS: usize = 10_000;

fn client_addr(server: &TestServer) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], server.client_port()))
}

fn put_and_get(server: &TestServer, key: &str, value: &str) {
    let (code, stdout, stderr) = text(&server.etcdctl(&["put", key, value]));
    assert_eq!((code, stdout.as_str()), (0, "OK\n"), "put: {stderr}");
    let (code, stdout, stderr) = text(&server.etcdctl(&["get", key, "--print-value-only"]));
    assert_eq!((code, stdout), (0, format!("{value}\n")), "get: {stderr}");
}

#[test]
fn a_stream_beyond_max_concurrent_streams_is_refused() {
    let server = TestServer::builder()
        .args(&["--max-concurrent-streams", "2"])
        .start();
    let mut client = RawH2::handshake(client_addr(&server));
    assert_eq!(client.setting(SETTINGS_MAX_CONCURRENT_STREAMS), Some(2));
    for stream in [1, 3, 5] {
        client.open_grpc(stream, "/etcdserverpb.Watch/Watch", false);
    }
    let refused = loop {
        let frame = client.read_frame().expect("server closed the connection");
        if frame.kind == RST_STREAM {
            break frame;
        }
    };
    assert_eq!(refused.stream, 5);
    assert_eq!(refused.u32_at(0), REFUSED_STREAM);
    drop(client);
    // A conforming client queues its calls within the limit: etcdctl still works.
    put_and_get(&server, "streams", "two");
}

#[test]
fn ten_thousand_idle_connections_do_not_stop_service() {
    // Each idle connection is a descriptor here and one in the server.
    let soft = rlimit::utils::increase_nofile_limit(u64::MAX).expect("raise RLIMIT_NOFILE");
    assert!(
        soft as usize > IDLE_CONNECTIONS + 256,
        "RLIMIT_NOFILE hard limit {soft} is too low for {IDLE_CONNECTIONS} connections"
    );
    let server = TestServer::builder().start();
    let addr = client_addr(&server);

    // Half connect and send nothing; half complete the HTTP/2 handshake and stay idle.
    let silent: Vec<TcpStream> = (0..IDLE_CONNECTIONS / 2)
        .map(|_| TcpStream::connect(addr).expect("connect"))
        .collect();
    let mut idle_h2: Vec<RawH2> = (0..IDLE_CONNECTIONS / 2)
        .map(|_| RawH2::handshake(addr))
        .collect();
    put_and_get(&server, "idle", "10000");

    if skip_unless_cairn("etcd 3.4 has no preface timeout and no connection cap log") {
        return;
    }
    // The silent ones are closed by the preface timeout (10 s): each reads end of stream.
    for mut socket in silent {
        let mut buf = [0u8; 1];
        let read = socket.read(&mut buf);
        assert!(
            matches!(read, Ok(0)) || read.is_err(),
            "a silent connection got {read:?}"
        );
    }
    // The HTTP/2 ones are still served.
    for (i, client) in idle_h2.iter_mut().enumerate() {
        client.ping(i as u64);
    }
    put_and_get(&server, "idle", "after");

    // The server raised its soft limit to the hard one and capped connections per core.
    let (open_file_limit, cap) = cap_line(&server);
    let (_, hard) = rlimit::Resource::NOFILE.get().unwrap();
    assert_eq!(open_file_limit, hard);
    assert!(cap as usize >= IDLE_CONNECTIONS / 2, "cap {cap}");
}

/// The server's start-up line about the cap: (open-file-limit, connections-per-core-max).
fn cap_line(server: &TestServer) -> (u64, u64) {
    let log = server.log();
    let line = log
        .lines()
        .find(|l| l.contains("client connections per core are capped by the open-file limit"))
        .unwrap_or_else(|| panic!("no connection cap line in:\n{log}"));
    let line: serde_json::Value = serde_json::from_str(line).unwrap();
    (
        line["open-file-limit"].as_u64().unwrap(),
        line["connections-per-core-max"].as_u64().unwrap(),
    )
}

/// Connects and sends the HTTP/2 preface; true when the server answers with a frame
/// (served), false when it closes the connection unread (refused).
fn admitted(addr: SocketAddr, held: &mut Vec<TcpStream>) -> bool {
    let mut socket = TcpStream::connect(addr).expect("connect");
    // The write may fail when the server already closed the connection.
    let _ = socket
        .write_all(PREFACE)
        .and_then(|()| socket.write_all(&[0, 0, 0, 4, 0, 0, 0, 0, 0]));
    let mut head = [0u8; 9];
    if socket.read_exact(&mut head).is_err() {
        return false;
    }
    held.push(socket);
    true
}

#[test]
fn connections_beyond_the_per_core_cap_are_closed_and_logged_once_per_burst() {
    if skip_unless_cairn("etcd has no connection cap") {
        return;
    }
    // 512 descriptors kept for the server itself + 100 for client connections, one core.
    let server = TestServer::builder()
        .nofile_limit(612)
        .args(&["--cores", "1"])
        .start();
    assert_eq!(cap_line(&server), (612, 100));
    let addr = client_addr(&server);
    let mut held = Vec::new();
    while admitted(addr, &mut held) {
        assert!(held.len() <= 100, "more than the cap were served");
    }
    // The start-up health probe's connection may not have been counted out yet.
    assert!(held.len() >= 98, "only {} served", held.len());
    for _ in 0..20 {
        assert!(!admitted(addr, &mut held), "served beyond the cap");
    }
    let reached =
        "net: too many open connections on this core, closing new connections until some end";
    assert_eq!(server.log().matches(reached).count(), 1, "{}", server.log());

    // Once connections end, new ones are served and the burst's end is logged once.
    drop(held);
    put_and_get(&server, "cap", "again");
    let log = server.log();
    let again: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("net: below the connection limit again, accepting new connections"))
        .collect();
    assert_eq!(again.len(), 1, "{log}");
    let again: serde_json::Value = serde_json::from_str(again[0]).unwrap();
    assert!(again["refused"].as_u64().unwrap() >= 21, "{again}");
    assert_eq!(again["connections-max"], 100);
}
