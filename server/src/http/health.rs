//! `/health`, `/livez`, `/readyz` as etcd 3.5/3.6 (`etcdserver/api/etcdhttp/health.go`).
//!
//! - `/health`: alarms (`?exclude=NOSPACE` ignores one), then a leader unless
//!   `?serializable=true`, then a read: linearizable through the raft core (ReadIndex, then
//!   the apply loop reaching the read index, as etcd's Range), or with `serializable=true`
//!   a local read on every core. Answers `{"health":"true","reason":""}` (200) or
//!   `{"health":"false","reason":"RAFT NO LEADER"}` (503).
//! - `/livez`: `serializable_read`. `/readyz`: `data_corruption`, `serializable_read`,
//!   `linearizable_read`, `non_learner`. Each check also at `/livez/<name>`,
//!   `/readyz/<name>`; `?exclude=<name>` skips one; `?verbose` lists `[+]name ok` lines;
//!   a failure always lists them, `[-]name failed: <error>`, with 503.
//!
//! Cairn's `serializable_read` asks every core (each runs a serializable Range on its own
//! executor) and fails when one does not answer within [`CORE_PROBE_TIMEOUT_MS`]: a stuck
//! core fails liveness. Checks run only when asked; nothing polls.

// etcd checkV3Health treats auth refusals as healthy: its probe reads as the server.
use crate::auth::AuthInfo;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::channel::oneshot;
use futures::future::{select, Either};
use net::pb::etcdserverpb::RangeRequest;
use net::HttpResponse;

use crate::cluster::Shared;
use crate::service::EtcdService;

/// Most probes queued for one core; a full queue fails the check at once.
pub const CORE_PROBE_QUEUE_MAX: usize = 64;
/// How long a core has to answer a probe before the check fails, in milliseconds.
pub const CORE_PROBE_TIMEOUT_MS: u64 = 1_000;

/// Where a core sends the outcome of its serializable read.
type ProbeReply = oneshot::Sender<Result<(), String>>;

/// The probe queue of every core, created at start-up (bounded, [`CORE_PROBE_QUEUE_MAX`]).
pub struct CoreProbes {
    senders: Vec<flume::Sender<ProbeReply>>,
    /// Set once a core failed (`supervise`): every check fails with it from then on.
    failed: std::sync::OnceLock<String>,
}

impl CoreProbes {
    /// Queues for `cores` cores; receiver `i` goes to core `i` ([`serve_core_probes`]).
    pub fn new(cores: usize) -> (Arc<CoreProbes>, Vec<flume::Receiver<ProbeReply>>) {
        let (senders, receivers) = (0..cores)
            .map(|_| flume::bounded(CORE_PROBE_QUEUE_MAX))
            .unzip();
        let probes = CoreProbes {
            senders,
            failed: std::sync::OnceLock::new(),
        };
        (Arc::new(probes), receivers)
    }

    /// Marks the member failed: a core died (`reason` names it). From then on `/health`,
    /// `/livez` and `/readyz` report false with `reason`, whatever else they find, while
    /// the process stops. The first reason is kept.
    pub fn fail(&self, reason: String) {
        let _ = self.failed.set(reason);
    }

    /// The reason given to [`CoreProbes::fail`], if a core failed.
    fn failure(&self) -> Option<&str> {
        self.failed.get().map(String::as_str)
    }

    /// Asks every core for a serializable read; the first failure, in core order, as
    /// `core N: <reason>`.
    async fn ask_all(&self) -> Result<(), String> {
        if let Some(reason) = self.failure() {
            return Err(reason.to_string());
        }
        let mut waiting = Vec::with_capacity(self.senders.len());
        for (core, sender) in self.senders.iter().enumerate() {
            let (reply, answer) = oneshot::channel();
            match sender.try_send(reply) {
                Ok(()) => waiting.push((core, answer)),
                Err(flume::TrySendError::Full(_)) => {
                    return Err(format!("core {core}: too many health probes queued"))
                }
                Err(flume::TrySendError::Disconnected(_)) => {
                    return Err(format!("core {core}: stopped"))
                }
            }
        }
        let bound = Duration::from_millis(CORE_PROBE_TIMEOUT_MS);
        for (core, answer) in waiting {
            match within(bound, crate::service::await_reply(answer)).await {
                Some(Ok(Ok(()))) => {}
                Some(Ok(Err(reason))) => return Err(format!("core {core}: {reason}")),
                Some(Err(_)) => return Err(format!("core {core}: stopped")),
                None => {
                    return Err(format!(
                        "core {core}: no answer within {CORE_PROBE_TIMEOUT_MS} ms"
                    ))
                }
            }
        }
        Ok(())
    }
}

/// Answers the probes of the current core, number `core`: each one runs a serializable
/// Range here.
pub fn serve_core_probes(
    // Read only by the `core-probe` fail point.
    #[cfg_attr(not(feature = "failpoints"), allow(unused_variables))] core: usize,
    probes: flume::Receiver<ProbeReply>,
    service: Rc<EtcdService>,
) {
    #[cfg(feature = "failpoints")]
    let core = core.to_string();
    glommio::spawn_local(async move {
        while let Ok(reply) = probes.recv_async().await {
            crate::supervise::panic_point!("core-probe", core);
            let result = service
                .range_as(&AuthInfo::internal(), health_range(true))
                .await
                .map(|_| ())
                .map_err(|status| status.message);
            let _ = reply.send(result);
        }
    })
    .detach();
}

/// `future`'s output, or `None` once `bound` passed.
async fn within<T>(bound: Duration, future: impl std::future::Future<Output = T>) -> Option<T> {
    let timer = std::pin::pin!(glommio::timer::sleep(bound));
    match select(std::pin::pin!(future), timer).await {
        Either::Left((value, _)) => Some(value),
        Either::Right(_) => None,
    }
}

/// etcd's health read: `RangeRequest{KeysOnly: true, Limit: 1}` (Cairn names a key, as its
/// Range refuses an empty one).
fn health_range(serializable: bool) -> RangeRequest {
    RangeRequest {
        key: Bytes::from_static(b"health"),
        keys_only: true,
        limit: 1,
        serializable,
        ..Default::default()
    }
}

/// The checks of `/livez`, in the order they run and print.
const LIVEZ_CHECKS: &[&str] = &["serializable_read"];
/// The checks of `/readyz`, in the order they run and print.
const READYZ_CHECKS: &[&str] = &[
    "data_corruption",
    "serializable_read",
    "linearizable_read",
    "non_learner",
];

/// Whether `path` is `/livez`, `/readyz` or below them.
pub(super) fn is_health_path(path: &str) -> bool {
    path == "/livez"
        || path == "/readyz"
        || path.starts_with("/livez/")
        || path.starts_with("/readyz/")
}

/// The health checks of one core.
pub(super) struct Checks {
    shared: Arc<Shared>,
    service: Rc<EtcdService>,
    probes: Arc<CoreProbes>,
}

fn text(status: u16, body: String) -> HttpResponse {
    HttpResponse {
        status,
        content_type: "text/plain; charset=utf-8".into(),
        body: Bytes::from(body),
        headers: vec![("X-Content-Type-Options".into(), "nosniff".into())],
    }
}

fn has_key(query: &[(String, String)], key: &str) -> bool {
    query.iter().any(|(k, _)| k == key)
}

fn values<'a>(query: &'a [(String, String)], key: &'a str) -> impl Iterator<Item = &'a str> {
    query
        .iter()
        .filter(move |(k, v)| k == key && !v.is_empty())
        .map(|(_, v)| v.as_str())
}

impl Checks {
    pub(super) fn new(
        shared: Arc<Shared>,
        service: Rc<EtcdService>,
        probes: Arc<CoreProbes>,
    ) -> Checks {
        Checks {
            shared,
            service,
            probes,
        }
    }

    /// The raised alarms by etcd name (`NOSPACE`, `CORRUPT`), as of the applied index.
    fn alarms(&self) -> Vec<&'static str> {
        let raised = self.shared.alarms.read().expect("alarms lock").clone();
        raised
            .iter()
            .map(|a| crate::alarm::alarm_name(a.alarm))
            .collect()
    }

    async fn linearizable_read(&self) -> Result<(), String> {
        let bound = crate::cluster::request_timeout(self.service.config().election_timeout);
        match within(
            bound,
            self.service
                .range_as(&AuthInfo::internal(), health_range(false)),
        )
        .await
        {
            Some(Ok(_)) => Ok(()),
            Some(Err(status)) => Err(status.message),
            None => Err(crate::errors::timeout().message),
        }
    }

    async fn run(&self, name: &str) -> Result<(), String> {
        match name {
            "data_corruption" => match self.alarms().contains(&"CORRUPT") {
                true => Err("alarm activated: CORRUPT".into()),
                false => Ok(()),
            },
            "serializable_read" => self.probes.ask_all().await,
            "linearizable_read" => self.linearizable_read().await,
            "non_learner" => match self.shared.is_learner.load(Ordering::Acquire) {
                true => Err("not supported for learner".into()),
                false => Ok(()),
            },
            other => unreachable!("no health check named {other}"),
        }
    }

    /// `GET /health` (etcd 3.5 `HandleHealth`).
    pub(super) async fn health(&self, query: &[(String, String)]) -> HttpResponse {
        let excluded: Vec<&str> = values(query, "exclude").collect();
        let serializable = query
            .iter()
            .rev()
            .find(|(k, _)| k == "serializable")
            .is_some_and(|(_, v)| v == "true");
        let verdict = self.health_verdict(&excluded, serializable).await;
        let metrics = crate::metrics::get();
        match verdict {
            Ok(()) => {
                metrics.health_success.inc();
                let mut response = text(200, r#"{"health":"true","reason":""}"#.into());
                response.headers.clear();
                response
            }
            Err(reason) => {
                metrics.health_failures.inc();
                let body = serde_json::json!({"health": "false", "reason": reason});
                text(503, format!("{body}\n"))
            }
        }
    }

    async fn health_verdict(&self, excluded: &[&str], serializable: bool) -> Result<(), String> {
        if let Some(reason) = self.probes.failure() {
            return Err(reason.to_string());
        }
        if let Some(alarm) = self.alarms().into_iter().find(|a| !excluded.contains(a)) {
            return Err(match alarm {
                "NOSPACE" => "ALARM NOSPACE".into(),
                "CORRUPT" => "ALARM CORRUPT".into(),
                _ => "ALARM UNKNOWN".into(),
            });
        }
        if !serializable && self.shared.leader.load(Ordering::Acquire) == 0 {
            return Err("RAFT NO LEADER".into());
        }
        if !self.shared.published.load(Ordering::Acquire) {
            // etcd serves no client request before publishing its member attributes.
            return Err("RANGE ERROR:etcdserver: member not yet published to the cluster".into());
        }
        let read = if serializable {
            self.probes.ask_all().await
        } else {
            self.linearizable_read().await
        };
        read.map_err(|e| format!("RANGE ERROR:{e}"))
    }

    /// `/livez`, `/readyz` and their per-check subpaths; `None` for an unknown subpath.
    pub(super) async fn probe_endpoint(
        &self,
        path: &str,
        query: &[(String, String)],
    ) -> Option<HttpResponse> {
        let (root, single) = match path.split_once('/').map(|(_, rest)| rest.split_once('/')) {
            Some(Some((root, name))) => (root, Some(name)),
            _ => (path.trim_start_matches('/'), None),
        };
        let all = match root {
            "livez" => LIVEZ_CHECKS,
            "readyz" => READYZ_CHECKS,
            _ => return None,
        };
        let names: Vec<&str> = match single {
            Some(name) => vec![*all.iter().find(|n| **n == name)?],
            None => {
                let excluded: Vec<&str> = values(query, "exclude").collect();
                let unknown: Vec<&&str> = excluded.iter().filter(|e| !all.contains(e)).collect();
                if !unknown.is_empty() {
                    tracing::warn!(
                        missing_health_checks = ?unknown,
                        "some health checks cannot be excluded"
                    );
                }
                all.iter()
                    .copied()
                    .filter(|n| !excluded.contains(n))
                    .collect()
            }
        };
        let mut reason = String::new();
        let mut failed = false;
        for name in names {
            match self.run(name).await {
                Ok(()) => reason.push_str(&format!("[+]{name} ok\n")),
                Err(e) => {
                    failed = true;
                    reason.push_str(&format!("[-]{name} failed: {e}\n"));
                }
            }
        }
        Some(if failed {
            tracing::error!(path, %reason, "Health check error");
            text(503, format!("{reason}\n"))
        } else if has_key(query, "verbose") {
            text(200, format!("{reason}ok\n"))
        } else {
            text(200, "ok\n".into())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run<F: std::future::Future<Output = ()>>(test: F) {
        glommio::LocalExecutorBuilder::default()
            .make()
            .expect("glommio executor")
            .run(test);
    }

    /// Answers every probe of `receiver` with `answer`, on the current executor.
    fn answer_probes(receiver: flume::Receiver<ProbeReply>, answer: Result<(), String>) {
        glommio::spawn_local(async move {
            while let Ok(reply) = receiver.recv_async().await {
                let _ = reply.send(answer.clone());
            }
        })
        .detach();
    }

    #[test]
    fn every_core_answering_passes() {
        run(async {
            let (probes, receivers) = CoreProbes::new(3);
            for receiver in receivers {
                answer_probes(receiver, Ok(()));
            }
            assert_eq!(probes.ask_all().await, Ok(()));
        });
    }

    #[test]
    fn a_silent_core_fails_within_the_bound() {
        run(async {
            let (probes, receivers) = CoreProbes::new(2);
            answer_probes(receivers[0].clone(), Ok(()));
            let started = std::time::Instant::now();
            assert_eq!(
                probes.ask_all().await,
                Err(format!(
                    "core 1: no answer within {CORE_PROBE_TIMEOUT_MS} ms"
                ))
            );
            assert!(started.elapsed() >= Duration::from_millis(CORE_PROBE_TIMEOUT_MS));
            drop(receivers);
        });
    }

    #[test]
    fn a_failing_read_names_its_core() {
        run(async {
            let (probes, receivers) = CoreProbes::new(2);
            answer_probes(receivers[0].clone(), Ok(()));
            answer_probes(receivers[1].clone(), Err("etcdserver: no space".into()));
            assert_eq!(
                probes.ask_all().await,
                Err("core 1: etcdserver: no space".into())
            );
        });
    }

    #[test]
    fn full_or_closed_queues_fail_at_once() {
        run(async {
            let (probes, receivers) = CoreProbes::new(1);
            let mut held = Vec::new();
            for _ in 0..CORE_PROBE_QUEUE_MAX {
                let (reply, answer) = oneshot::channel();
                probes.senders[0].try_send(reply).expect("room");
                held.push(answer);
            }
            assert_eq!(
                probes.ask_all().await,
                Err("core 0: too many health probes queued".into())
            );
            drop(receivers);
            assert_eq!(probes.ask_all().await, Err("core 0: stopped".into()));
        });
    }

    #[test]
    fn a_failed_member_fails_every_probe_with_the_reason() {
        run(async {
            let (probes, receivers) = CoreProbes::new(1);
            answer_probes(receivers[0].clone(), Ok(()));
            assert_eq!(probes.ask_all().await, Ok(()));
            probes.fail("core 1 panicked: boom".into());
            probes.fail("a later reason is not kept".into());
            assert_eq!(probes.ask_all().await, Err("core 1 panicked: boom".into()));
        });
    }

    #[test]
    fn health_paths() {
        assert!(is_health_path("/livez"));
        assert!(is_health_path("/readyz/linearizable_read"));
        assert!(!is_health_path("/health"));
        assert!(!is_health_path("/readyzz"));
    }
}
