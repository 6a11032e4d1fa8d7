//! HTTP/1.1 endpoints on the client port: `GET /health` and `GET /version`, with etcd's
//! bodies (etcd 3.4 `etcdserver/api/etcdhttp/metrics.go`, `base.go`).

use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::Bytes;
use futures::future::LocalBoxFuture;
use net::{HttpHandler, HttpRequest, HttpResponse};

use crate::cluster::Shared;
use crate::service::{CAIRN_VERSION, ETCD_API_VERSION, ETCD_CLUSTER_VERSION};

/// Serves the HTTP/1.1 endpoints of one core.
pub struct Endpoints {
    shared: Arc<Shared>,
}

/// The body of `GET /version` (client and peer ports), etcd's shape plus Cairn's version.
pub fn version_json() -> String {
    format!(
        r#"{{"etcdserver":"{ETCD_API_VERSION}","etcdcluster":"{ETCD_CLUSTER_VERSION}","cairn":"{CAIRN_VERSION}"}}"#
    )
}

impl Endpoints {
    /// Endpoints reading `shared`.
    pub fn new(shared: Arc<Shared>) -> Self {
        Endpoints { shared }
    }

    fn respond(&self, request: &HttpRequest) -> HttpResponse {
        let path = request.path.split('?').next().unwrap_or("");
        match (request.method.as_str(), path) {
            ("GET", "/health") => {
                // etcd: unhealthy while there is no leader (or an alarm is raised); and
                // etcd serves nothing before this member published its attributes.
                let healthy = self.shared.leader.load(Ordering::Acquire) != 0
                    && self.shared.published.load(Ordering::Acquire);
                let body = if healthy {
                    r#"{"health":"true"}"#
                } else {
                    r#"{"health":"false"}"#
                };
                HttpResponse {
                    status: if healthy { 200 } else { 503 },
                    content_type: "text/plain; charset=utf-8".into(),
                    body: Bytes::from_static(body.as_bytes()),
                    headers: Vec::new(),
                }
            }
            ("GET", "/version") => HttpResponse {
                status: 200,
                content_type: "application/json".into(),
                body: Bytes::from(version_json()),
                headers: Vec::new(),
            },
            (_, "/health") | (_, "/version") => HttpResponse {
                status: 405,
                content_type: "text/plain; charset=utf-8".into(),
                body: Bytes::from_static(b"Method Not Allowed\n"),
                headers: vec![("Allow".into(), "GET".into())],
            },
            _ => HttpResponse {
                status: 404,
                content_type: "text/plain; charset=utf-8".into(),
                body: Bytes::from_static(b"404 page not found\n"),
                headers: Vec::new(),
            },
        }
    }
}

impl HttpHandler for Endpoints {
    fn handle(self: Rc<Self>, request: HttpRequest) -> LocalBoxFuture<'static, HttpResponse> {
        let response = self.respond(&request);
        Box::pin(async move { response })
    }
}
