//! etcd's JSON gateway on the client URLs: `POST /v3/<route>` (also `/v3beta/`,
//! `/v3alpha/`) with a JSON request body, answered with JSON, as etcd 3.4's grpc-gateway
//! serves it (`embed/serve.go`, `etcdserverpb/gw/rpc.pb.gw.go`), e.g.
//!
//! ```text
//! POST /v3/kv/put {"key":"Zm9v","value":"YmFy"}
//! 200 {"header":{"cluster_id":"…","member_id":"…","revision":"2","raft_term":"2"}}
//! ```
//!
//! The gateway re-implements no etcd semantics: the JSON is mapped to the method's
//! protobuf request ([`json`]), the same [`EtcdService`] that serves gRPC answers it
//! (unary calls through `GrpcService::unary`, streams through `GrpcService::streaming` with
//! local message channels, [`stream`]), and the protobuf response is mapped back.
//!
//! Shapes and errors:
//! - routes: [`routes`]; another path under a prefix → 404 `Not Found`; a route with another
//!   method than POST → 405 `Method Not Allowed` (Go `http.Error` texts, as etcd's mux);
//!   `OPTIONS` (a CORS preflight) → 200 with the CORS headers and no body, as etcd's
//!   `accessController` answers it;
//! - a body that is not the request's JSON → 400 with code 3 (unary calls; streams: see
//!   [`stream`]); an empty body is the empty request;
//! - a failed call → the HTTP status of its gRPC code (grpc-gateway
//!   `HTTPStatusFromCode`) and `{"error":M,"message":M,"code":C}`; a method the service
//!   does not serve (e.g. Auth today) fails as its gRPC call does, UNIMPLEMENTED
//!   "unknown service etcdserverpb.Auth" → 501;
//! - metadata: `Authorization` is passed on as `authorization`, `Grpc-Metadata-<K>` as
//!   `<k>` (grpc-gateway v1 `runtime.AnnotateContext`);
//! - metrics: each call counts in the gRPC metrics (`grpc_server_started_total`,
//!   `grpc_server_handled_total`, …) as the gRPC call it is (etcd's gateway calls its own
//!   gRPC server); a stream whose HTTP client went away ends CANCELLED.

mod json;
mod routes;
mod stream;

use std::rc::Rc;
use std::time::Instant;

use bytes::Bytes;
use net::{
    CallContext, CallObserver, Code, GrpcService, HttpReply, HttpRequest, HttpResponse, MethodKind,
    Status,
};

use crate::service::EtcdService;

pub use routes::is_gateway_path;

/// Headers etcd adds to every answer on the client URLs (etcd 3.4 `embed/serve.go`
/// `accessController` with `--cors` at its default `*`, `addCORSHeader`).
const CORS_HEADERS: [(&str, &str); 3] = [
    (
        "Access-Control-Allow-Headers",
        "accept, content-type, authorization",
    ),
    (
        "Access-Control-Allow-Methods",
        "POST, GET, OPTIONS, PUT, DELETE",
    ),
    ("Access-Control-Allow-Origin", "*"),
];

/// The JSON gateway of one core.
pub struct Gateway {
    service: Rc<EtcdService>,
}

fn cors_headers() -> Vec<(String, String)> {
    CORS_HEADERS
        .iter()
        .map(|(name, value)| (name.to_string(), value.to_string()))
        .collect()
}

/// A response head with `Content-Type: application/json` and the CORS headers.
fn json_head(status: u16) -> HttpResponse {
    let mut headers = cors_headers();
    if status == 200 {
        // grpc-gateway forwards the gRPC response's headers as `Grpc-Metadata-*`.
        headers.push((
            "Grpc-Metadata-Content-Type".into(),
            "application/grpc".into(),
        ));
    }
    HttpResponse {
        status,
        content_type: "application/json".into(),
        body: Bytes::new(),
        headers,
    }
}

/// A whole JSON answer.
fn json_reply(status: u16, body: impl Into<Bytes>) -> HttpReply {
    let mut response = json_head(status);
    response.body = body.into();
    HttpReply::Full(response)
}

/// A failed call: grpc-gateway's `DefaultHTTPError`.
fn error_reply(status: &Status) -> HttpReply {
    json_reply(json::http_status(status.code), json::error_body(status))
}

/// A plain-text answer as Go's `http.Error` writes it.
fn text_reply(status: u16, text: &'static str) -> HttpReply {
    let mut response = HttpResponse::text(status, text);
    response
        .headers
        .push(("X-Content-Type-Options".into(), "nosniff".into()));
    response.headers.extend(cors_headers());
    HttpReply::Full(response)
}

/// One call as the service's metrics see it: started when made, finished with its code,
/// or CANCELLED if dropped first.
struct Observed {
    observer: Option<Rc<dyn CallObserver>>,
    path: &'static str,
    kind: MethodKind,
    started: Instant,
    finished: bool,
}

impl Observed {
    fn start(service: &EtcdService, path: &'static str, kind: MethodKind) -> Observed {
        let observer = service.observer();
        if let Some(observer) = &observer {
            observer.call_started(path, kind);
        }
        Observed {
            observer,
            path,
            kind,
            started: Instant::now(),
            finished: false,
        }
    }

    fn finish(&mut self, code: Code) {
        if std::mem::replace(&mut self.finished, true) {
            return;
        }
        if let Some(observer) = &self.observer {
            let elapsed = self.started.elapsed();
            observer.call_finished(self.path, self.kind, code, elapsed);
        }
    }
}

impl Drop for Observed {
    fn drop(&mut self) {
        self.finish(Code::Cancelled);
    }
}

/// The gRPC metadata a request carries (see the module docs).
fn metadata(request: &HttpRequest) -> http::HeaderMap {
    let mut metadata = http::HeaderMap::new();
    for (name, value) in &request.headers {
        let key = if name.eq_ignore_ascii_case("authorization") {
            "authorization".to_string()
        } else if name.len() > 14 && name[..14].eq_ignore_ascii_case("grpc-metadata-") {
            name[14..].to_ascii_lowercase()
        } else {
            continue;
        };
        if let (Ok(key), Ok(value)) = (
            http::HeaderName::from_bytes(key.as_bytes()),
            http::HeaderValue::from_str(value),
        ) {
            metadata.append(key, value);
        }
    }
    metadata
}

impl Gateway {
    /// The gateway of the core that `service` serves.
    pub fn new(service: Rc<EtcdService>) -> Gateway {
        Gateway { service }
    }

    /// Answers a request whose path [`is_gateway_path`].
    pub async fn reply(&self, request: HttpRequest) -> HttpReply {
        let path = request.path.split('?').next().unwrap_or_default();
        if request.method == "OPTIONS" {
            return HttpReply::Full(HttpResponse {
                status: 200,
                content_type: String::new(),
                body: Bytes::new(),
                headers: cors_headers(),
            });
        }
        let Some(method_path) = routes::method_for(path) else {
            return text_reply(404, "Not Found\n");
        };
        if request.method != "POST" {
            return text_reply(405, "Method Not Allowed\n");
        }
        let Some(method) = json::method(method_path) else {
            unreachable!("route to {method_path}, which the .proto files lack");
        };
        let ctx = CallContext {
            path: method_path.to_string(),
            deadline: None,
            metadata: metadata(&request),
            peer: None,
            // etcd ignores the CN of gateway requests (`grpcgateway-accept`): the token in
            // `Authorization` is the only identity here.
            common_name: None,
        };
        match self.service.method_kind(method_path) {
            None => error_reply(&net::unknown_method(method_path)),
            Some(MethodKind::Streaming) => {
                let observed = Observed::start(&self.service, method_path, MethodKind::Streaming);
                let service = self.service.clone();
                stream::call(service, ctx, observed, &method, &request.body).await
            }
            Some(MethodKind::Unary) => {
                let body = match json::request_from_json(&method.input(), &request.body) {
                    Ok(body) => body,
                    Err(text) => {
                        return error_reply(&Status::new(net::Code::InvalidArgument, text))
                    }
                };
                let mut observed = Observed::start(&self.service, method_path, MethodKind::Unary);
                let call = self.service.clone().unary(ctx, body);
                let answer = net::catch_call_panic(method_path, call)
                    .await
                    .and_then(|answer| answer);
                observed.finish(answer.as_ref().map_or_else(|s| s.code, |_| Code::Ok));
                let answer =
                    answer.and_then(|answer| json::response_to_json(&method.output(), answer));
                match answer {
                    Ok(json) => json_reply(200, json),
                    Err(status) => error_reply(&status),
                }
            }
        }
    }
}
