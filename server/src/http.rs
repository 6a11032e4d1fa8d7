//! HTTP/1.1 endpoints: `/metrics`, `/health`, `/livez`, `/readyz` (and their per-check
//! subpaths) and `/version` on the client URLs; `/metrics` and the health endpoints only on
//! `--listen-metrics-urls` (etcd 3.5 `embed/etcd.go serveMetrics`); the JSON gateway
//! (`/v3/…`, `crate::gateway`) on the client URLs. Bodies, statuses and
//! headers as etcd 3.5/3.6 `etcdserver/api/etcdhttp/health.go`, `metrics.go` and `base.go`.

mod health;

use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::Bytes;
use futures::future::LocalBoxFuture;
use net::{HttpHandler, HttpReply, HttpRequest, HttpResponse};

use crate::cluster::Shared;
use crate::service::{EtcdService, CAIRN_VERSION, ETCD_API_VERSION, ETCD_CLUSTER_VERSION};

pub use health::{serve_core_probes, CoreProbes};

/// Which endpoints a listener serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Surface {
    /// A client URL: every endpoint.
    Client,
    /// A `--listen-metrics-urls` listener: `/metrics` and the health endpoints only.
    Metrics,
}

/// Serves the HTTP/1.1 endpoints of one core.
pub struct Endpoints {
    shared: Arc<Shared>,
    health: health::Checks,
    surface: Surface,
    /// The JSON gateway (client URLs only).
    gateway: Option<crate::gateway::Gateway>,
}

/// The body of `GET /version` (client and peer ports), etcd's shape plus Cairn's version.
pub fn version_json() -> String {
    format!(
        r#"{{"etcdserver":"{ETCD_API_VERSION}","etcdcluster":"{ETCD_CLUSTER_VERSION}","cairn":"{CAIRN_VERSION}"}}"#
    )
}

/// Splits a request target into its path and its query pairs (percent-decoded).
fn split_target(target: &str) -> (&str, Vec<(String, String)>) {
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let pairs = url::form_urlencoded::parse(query.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    (path, pairs)
}

fn method_not_allowed() -> HttpResponse {
    HttpResponse {
        status: 405,
        content_type: "text/plain; charset=utf-8".into(),
        body: Bytes::from_static(b"Method Not Allowed\n"),
        headers: vec![
            ("Allow".into(), "GET".into()),
            ("X-Content-Type-Options".into(), "nosniff".into()),
        ],
    }
}

fn not_found() -> HttpResponse {
    HttpResponse {
        status: 404,
        content_type: "text/plain; charset=utf-8".into(),
        body: Bytes::from_static(b"404 page not found\n"),
        headers: vec![("X-Content-Type-Options".into(), "nosniff".into())],
    }
}

impl Endpoints {
    /// Endpoints of one core reading `shared`; health checks read through `service` and ask
    /// every core through `probes`.
    pub fn new(
        shared: Arc<Shared>,
        service: Rc<EtcdService>,
        probes: Arc<CoreProbes>,
        surface: Surface,
    ) -> Self {
        let gateway =
            (surface == Surface::Client).then(|| crate::gateway::Gateway::new(service.clone()));
        Endpoints {
            gateway,
            health: health::Checks::new(shared.clone(), service, probes),
            shared,
            surface,
        }
    }

    /// Sets the gauges mirroring the server's state, then renders every metric.
    fn scrape(&self) -> String {
        let shared = &self.shared;
        let metrics = crate::metrics::get();
        metrics.set_state(&crate::metrics::StateSample {
            member_id: shared.member_id,
            leader: shared.leader.load(Ordering::Acquire),
            is_learner: shared.is_learner.load(Ordering::Acquire),
            commit_index: shared.commit_index.load(Ordering::Acquire),
            applied_index: shared.applied_index.load(Ordering::Acquire),
            db_size_bytes: shared.reader.size_bytes(),
            db_size_in_use_bytes: shared.reader.size_in_use_bytes(),
            current_revision: shared.reader.current_revision(),
            compact_revision: shared.reader.compact_revision(),
        });
        metrics.render()
    }

    async fn respond(self: Rc<Self>, request: HttpRequest) -> HttpResponse {
        let (path, query) = split_target(&request.path);
        // promhttp serves /metrics for any method; etcd's other handlers want GET.
        let allowed = request.method == "GET" || path == "/metrics";
        let known = matches!(path, "/metrics" | "/health")
            || health::is_health_path(path)
            || (path == "/version" && self.surface == Surface::Client);
        if !known {
            return not_found();
        }
        if !allowed {
            return method_not_allowed();
        }
        match path {
            "/metrics" => HttpResponse {
                status: 200,
                content_type: crate::metrics::TEXT_CONTENT_TYPE.into(),
                body: Bytes::from(self.scrape()),
                headers: Vec::new(),
            },
            "/version" => HttpResponse {
                status: 200,
                content_type: "application/json".into(),
                body: Bytes::from(version_json()),
                headers: Vec::new(),
            },
            "/health" => self.health.health(&query).await,
            _ => match self.health.probe_endpoint(path, &query).await {
                Some(response) => response,
                None => not_found(),
            },
        }
    }
}

impl HttpHandler for Endpoints {
    fn handle(self: Rc<Self>, request: HttpRequest) -> LocalBoxFuture<'static, HttpResponse> {
        Box::pin(self.respond(request))
    }

    fn reply(self: Rc<Self>, request: HttpRequest) -> LocalBoxFuture<'static, HttpReply> {
        Box::pin(async move {
            let (path, _) = split_target(&request.path);
            match &self.gateway {
                Some(gateway) if crate::gateway::is_gateway_path(path) => {
                    gateway.reply(request).await
                }
                _ => HttpReply::Full(self.respond(request).await),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_split_into_path_and_query() {
        let (path, query) = split_target("/readyz?verbose&exclude=linearizable_read");
        assert_eq!(path, "/readyz");
        assert_eq!(
            query,
            vec![
                ("verbose".to_string(), String::new()),
                ("exclude".to_string(), "linearizable_read".to_string())
            ]
        );
        let (path, query) = split_target("/health");
        assert_eq!(path, "/health");
        assert!(query.is_empty());
    }
}
