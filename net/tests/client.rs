//! `net::Client` against `net::serve` (the test service of `common`): unary answers and
//! errors from trailers and Trailers-Only, deadlines, a bidirectional stream, an
//! unreachable endpoint.

mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use net::pb::etcdserverpb::PutRequest;
use net::{Client, ClientOptions, Code, Endpoint, Keepalive};

fn options(dial_timeout: Duration) -> ClientOptions {
    ClientOptions {
        tls: None,
        dial_timeout,
        keepalive: None,
    }
}

fn on_glommio<T>(f: impl std::future::Future<Output = T>) -> T {
    glommio::LocalExecutorBuilder::default()
        .make()
        .expect("glommio executor")
        .run(f)
}

fn put(key: &'static str) -> PutRequest {
    PutRequest {
        key: Bytes::from_static(key.as_bytes()),
        value: Bytes::from_static(b"v"),
        ..Default::default()
    }
}

#[test]
fn unary_calls_errors_and_deadlines() {
    let server = TestServer::start(limits());
    let endpoint = Endpoint::parse(&server.addr.to_string()).unwrap();
    on_glommio(async {
        let client = Client::connect(&endpoint, &options(Duration::from_secs(5)))
            .await
            .unwrap();
        let second = Duration::from_secs(1);
        // The echo answers the request's own bytes.
        let answer: PutRequest = client
            .unary("/test.Echo/Unary", &put("k"), second)
            .await
            .unwrap();
        assert_eq!(answer, put("k"));
        // An error before any message (Trailers-Only), message percent-decoded.
        let error = client
            .unary::<_, PutRequest>("/test.Echo/Fail", &put("k"), second)
            .await
            .unwrap_err();
        assert_eq!(error.code, Code::NotFound);
        assert_eq!(error.message, "etcdserver: key not found 100%\n");
        let error = client
            .unary::<_, PutRequest>("/test.Nope/Nope", &put("k"), second)
            .await
            .unwrap_err();
        assert_eq!(error.code, Code::Unimplemented);
        // The deadline ends the call on the client side.
        let started = Instant::now();
        let error = client
            .unary::<_, PutRequest>("/test.Echo/Slow", &put("k"), Duration::from_millis(100))
            .await
            .unwrap_err();
        assert_eq!(error.code, Code::DeadlineExceeded);
        assert_eq!(error.message, "context deadline exceeded");
        assert!(started.elapsed() < Duration::from_secs(2));
        // The connection still serves calls; the token rides along.
        client.set_token(Some("tok".into()));
        let answer: PutRequest = client
            .unary("/test.Echo/Unary", &put("again"), second)
            .await
            .unwrap();
        assert_eq!(answer, put("again"));
    });
    server.join();
}

#[test]
fn bidirectional_stream_in_order_then_ok() {
    let server = TestServer::start(limits());
    let endpoint = Endpoint::parse(&format!("http://{}", server.addr)).unwrap();
    on_glommio(async {
        let client = Client::connect(&endpoint, &options(Duration::from_secs(5)))
            .await
            .unwrap();
        let mut call = client.open("/test.Echo/Stream", None).await.unwrap();
        for key in ["a", "b", "c"] {
            call.send(&put(key)).unwrap();
            let echoed: PutRequest = call.message().await.unwrap().unwrap();
            assert_eq!(echoed, put(key));
        }
        call.close_send().unwrap();
        assert_eq!(call.message::<PutRequest>().await.unwrap(), None);
        call.finish().await.unwrap();
    });
    server.join();
}

#[test]
fn unreachable_endpoint_fails_at_the_dial_timeout() {
    // A port nobody listens on: bound, then released.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let endpoint = Endpoint::parse(&format!("127.0.0.1:{port}")).unwrap();
    on_glommio(async {
        let started = Instant::now();
        let error = Client::connect(&endpoint, &options(Duration::from_millis(300)))
            .await
            .err()
            .expect("nothing listens");
        assert_eq!(error.code, Code::DeadlineExceeded);
        assert_eq!(error.message, "context deadline exceeded");
        assert!(started.elapsed() >= Duration::from_millis(300));
        assert!(started.elapsed() < Duration::from_secs(3));
    });
}

/// A peer that accepts the connection and then never reads nor writes: without
/// keepalive a call waits for its deadline; with it, the unanswered PING closes the
/// connection and the open call fails first, with the connection's error.
#[test]
fn unanswered_keepalive_ping_closes_the_connection() {
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = Endpoint::parse(&silent.local_addr().unwrap().to_string()).unwrap();
    let (done, finished) = std::sync::mpsc::channel::<()>();
    let holder = std::thread::spawn(move || {
        let mut accepted = Vec::new();
        for _ in 0..2 {
            accepted.push(silent.accept().unwrap().0);
        }
        // Both connections stay open, silent, until the client side is done.
        let _ = finished.recv();
    });
    let call_timeout = Duration::from_millis(1500);
    on_glommio(async {
        let mut plain = options(Duration::from_secs(5));
        let client = Client::connect(&endpoint, &plain).await.unwrap();
        let error = client
            .unary::<_, PutRequest>("/test.Echo/Unary", &put("k"), call_timeout)
            .await
            .unwrap_err();
        assert_eq!(error.code, Code::DeadlineExceeded, "{error:?}");
        plain.keepalive = Some(Keepalive {
            time: Duration::from_millis(50),
            timeout: Duration::from_millis(100),
        });
        let client = Client::connect(&endpoint, &plain).await.unwrap();
        let error = client
            .unary::<_, PutRequest>("/test.Echo/Unary", &put("k"), call_timeout)
            .await
            .unwrap_err();
        assert_ne!(error.code, Code::DeadlineExceeded, "{error:?}");
    });
    done.send(()).unwrap();
    holder.join().unwrap();
}
