//! Automatic compaction (`--auto-compaction-mode`, `--auto-compaction-retention`), as
//! etcd's `etcdserver/api/v3compactor`: it runs on the leader only (a follower's compactor
//! is paused) and proposes `Compact` through the same Raft path as the KV service.
//!
//! - **periodic** (etcd `periodic.go`): every `min(period, 1h) / 10` the current revision
//!   is recorded in a window of `period / interval + 1` revisions; once `period` has passed
//!   since the start (later: `min(period, 1h)` since the last success) the oldest recorded
//!   revision — the one current `period` ago — is compacted.
//! - **revision** (etcd `revision.go`): every 5 minutes, compact at
//!   `current revision - retention` unless that is ≤ 0 or was compacted last time.
//!
//! A compaction at an already compacted revision counts as done (etcd treats
//! `ErrCompacted` as success); other failures are retried at the next interval.
//! [`Compactor`] holds the decisions with the clock passed in; [`start`] drives it.

use std::collections::VecDeque;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use net::pb::etcdserverpb::{CompactionRequest, InternalRaftRequest};

use crate::config::AutoCompaction;
use crate::service::EtcdService;

/// etcd `v3compactor.revInterval`: how often revision mode checks.
pub const REVISION_CHECK_INTERVAL: Duration = Duration::from_secs(5 * 60);
/// etcd `periodic.go` `retryDivisor`: a periodic compactor records a revision every
/// `min(period, 1h) / RETRY_DIVISOR`.
pub const RETRY_DIVISOR: u32 = 10;
/// The longest interval between two periodic compactions (etcd: one hour).
pub const COMPACT_INTERVAL_MAX: Duration = Duration::from_secs(3600);

/// The compaction decisions, with time and the store's revision passed in.
#[derive(Debug)]
pub enum Compactor {
    /// `--auto-compaction-mode=periodic`.
    Periodic {
        /// The retention period.
        period: Duration,
        /// Revisions recorded every [`Compactor::interval`], oldest first; at most
        /// `period / interval + 1` (the front is the revision `period` ago).
        revisions: VecDeque<i64>,
        /// Capacity of `revisions`.
        revisions_max: usize,
        /// When the last compaction succeeded (or the compactor started).
        last_success: Instant,
        /// Time to wait after `last_success`: `period` at first, then `min(period, 1h)`.
        base_interval: Duration,
    },
    /// `--auto-compaction-mode=revision`.
    Revision {
        /// Revisions to keep.
        retention: i64,
        /// The revision compacted last (0: none).
        previous: i64,
    },
}

impl Compactor {
    /// A compactor for `policy` started at `now` with the store at `revision`; `None`
    /// when automatic compaction is off.
    pub fn new(policy: AutoCompaction, now: Instant, revision: i64) -> Option<Compactor> {
        match policy {
            AutoCompaction::Off => None,
            AutoCompaction::Periodic(period) => {
                let interval = periodic_interval(period);
                let revisions_max = (period.as_nanos() / interval.as_nanos().max(1)) as usize + 1;
                Some(Compactor::Periodic {
                    period,
                    revisions: VecDeque::from([revision]),
                    revisions_max,
                    last_success: now,
                    base_interval: period,
                })
            }
            AutoCompaction::Revision(retention) => Some(Compactor::Revision {
                retention: i64::try_from(retention).unwrap_or(i64::MAX),
                previous: 0,
            }),
        }
    }

    /// How long to wait between two calls of [`Compactor::tick`].
    pub fn interval(&self) -> Duration {
        match self {
            Compactor::Periodic { period, .. } => periodic_interval(*period),
            Compactor::Revision { .. } => REVISION_CHECK_INTERVAL,
        }
    }

    /// One interval has passed: `now`, the store's `revision`, and whether this member
    /// leads. Returns the revision to compact at, if it is time to.
    pub fn tick(&mut self, now: Instant, revision: i64, is_leader: bool) -> Option<i64> {
        match self {
            Compactor::Periodic {
                period,
                revisions,
                revisions_max,
                last_success,
                base_interval,
            } => {
                let due = is_leader && now.duration_since(*last_success) >= *base_interval;
                let target = due.then(|| revisions.front().copied()).flatten();
                if due {
                    *base_interval = (*period).min(COMPACT_INTERVAL_MAX);
                }
                revisions.push_back(revision);
                while revisions.len() > *revisions_max {
                    revisions.pop_front();
                }
                target
            }
            Compactor::Revision {
                retention,
                previous,
            } => {
                let target = revision.saturating_sub(*retention);
                (is_leader && target > 0 && target != *previous).then_some(target)
            }
        }
    }

    /// The compaction at `revision` finished at `now`: `done` when it succeeded or the
    /// revision was already compacted.
    pub fn compacted(&mut self, revision: i64, now: Instant, done: bool) {
        if !done {
            return;
        }
        match self {
            Compactor::Periodic { last_success, .. } => *last_success = now,
            Compactor::Revision { previous, .. } => *previous = revision,
        }
    }
}

fn periodic_interval(period: Duration) -> Duration {
    (period.min(COMPACT_INTERVAL_MAX) / RETRY_DIVISOR).max(Duration::from_millis(1))
}

/// Starts the compactor task on this core (core 0, beside the raft core) when `policy`
/// is not off; it ends when `shutdown` triggers.
pub fn start(service: Rc<EtcdService>, policy: AutoCompaction, shutdown: net::Shutdown) {
    let revision = service.shared().reader.current_revision();
    let Some(compactor) = Compactor::new(policy, Instant::now(), revision) else {
        return;
    };
    glommio::spawn_local(run(service, compactor, policy, shutdown)).detach();
}

async fn run(
    service: Rc<EtcdService>,
    mut compactor: Compactor,
    policy: AutoCompaction,
    shutdown: net::Shutdown,
) {
    loop {
        let interval = compactor.interval();
        let stopped = futures_lite::future::or(
            async {
                glommio::timer::sleep(interval).await;
                false
            },
            async {
                shutdown.wait().await;
                true
            },
        )
        .await;
        if stopped {
            return;
        }
        let shared = service.shared();
        let is_leader = shared.leader.load(Ordering::Acquire) == shared.member_id;
        let revision = shared.reader.current_revision();
        let Some(target) = compactor.tick(Instant::now(), revision, is_leader) else {
            continue;
        };
        let started = Instant::now();
        tracing::info!(revision = target, ?policy, "starting auto compaction");
        let compaction = InternalRaftRequest {
            compaction: Some(CompactionRequest {
                revision: target,
                physical: false,
            }),
            ..Default::default()
        };
        let internal = crate::auth::AuthInfo::internal();
        let result = service.propose_as(&internal, compaction).await;
        let done = match &result {
            Ok(_) => true,
            Err(status) => status.message == crate::errors::compacted().message,
        };
        if done {
            tracing::info!(revision = target, took = ?started.elapsed(), "completed auto compaction");
        } else if let Err(status) = &result {
            tracing::warn!(revision = target, retry_interval = ?interval, error = %status.message, "failed auto compaction");
        }
        compactor.compacted(target, Instant::now(), done);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn off_builds_nothing() {
        assert!(Compactor::new(AutoCompaction::Off, Instant::now(), 1).is_none());
    }

    #[test]
    fn periodic_one_hour_compacts_the_revision_of_an_hour_ago() {
        let t0 = Instant::now();
        let mut c = Compactor::new(AutoCompaction::Periodic(secs(3600)), t0, 10).unwrap();
        assert_eq!(c.interval(), secs(360));
        // Revisions 10 (start), 20, 30, ... recorded every 6 minutes; nothing for an hour.
        for i in 1..10u64 {
            assert_eq!(
                c.tick(t0 + secs(360 * i), 10 + 10 * i as i64, true),
                None,
                "tick {i}"
            );
        }
        // At 60 minutes: the oldest of the window, the revision at the start (10).
        assert_eq!(c.tick(t0 + secs(3600), 110, true), Some(10));
        c.compacted(10, t0 + secs(3600), true);
        // Then the window (11 samples, as etcd's) slides: the next is due an hour after
        // the success, at the oldest sample, recorded at 54 minutes (100).
        for i in 11..20u64 {
            assert_eq!(
                c.tick(t0 + secs(360 * i), 10 + 10 * i as i64, true),
                None,
                "tick {i}"
            );
        }
        assert_eq!(c.tick(t0 + secs(7200), 210, true), Some(100));
    }

    #[test]
    fn periodic_longer_than_an_hour_compacts_hourly_after_the_first() {
        let t0 = Instant::now();
        let mut c = Compactor::new(AutoCompaction::Periodic(secs(2 * 3600)), t0, 1).unwrap();
        assert_eq!(c.interval(), secs(360));
        let mut first = None;
        for i in 1..=20u64 {
            if let Some(rev) = c.tick(t0 + secs(360 * i), 1 + i as i64, true) {
                first = Some((i, rev));
                break;
            }
        }
        // Two hours in (tick 20): the revision at the start.
        assert_eq!(first, Some((20, 1)));
        c.compacted(1, t0 + secs(7200), true);
        let mut next = None;
        for i in 21..=40u64 {
            if let Some(rev) = c.tick(t0 + secs(360 * i), 1 + i as i64, true) {
                next = Some((i, rev));
                break;
            }
        }
        // One hour later (tick 30): the oldest of the 21 samples, recorded at tick 9.
        assert_eq!(next, Some((30, 10)));
    }

    #[test]
    fn periodic_retries_after_failure_and_pauses_on_followers() {
        let t0 = Instant::now();
        let mut c = Compactor::new(AutoCompaction::Periodic(secs(10)), t0, 5).unwrap();
        assert_eq!(c.interval(), secs(1));
        for i in 1..10u64 {
            assert_eq!(c.tick(t0 + secs(i), 5 + i as i64, true), None);
        }
        // Due, but not the leader: nothing; the window keeps moving.
        assert_eq!(c.tick(t0 + secs(10), 15, false), None);
        assert_eq!(c.tick(t0 + secs(11), 16, true), Some(5));
        c.compacted(5, t0 + secs(11), false);
        // A failure is retried at the next interval with the window's new front.
        assert_eq!(c.tick(t0 + secs(12), 17, true), Some(6));
    }

    #[test]
    fn revision_mode_keeps_retention_revisions() {
        let t0 = Instant::now();
        let mut c = Compactor::new(AutoCompaction::Revision(100), t0, 1).unwrap();
        assert_eq!(c.interval(), REVISION_CHECK_INTERVAL);
        assert_eq!(c.tick(t0, 50, true), None, "nothing below revision 1");
        assert_eq!(c.tick(t0, 100, true), None, "revision 0 is not compacted");
        assert_eq!(c.tick(t0, 350, false), None, "followers do not compact");
        assert_eq!(c.tick(t0, 350, true), Some(250));
        c.compacted(250, t0, true);
        assert_eq!(c.tick(t0, 350, true), None, "already compacted there");
        assert_eq!(c.tick(t0, 351, true), Some(251));
        c.compacted(251, t0, false);
        assert_eq!(c.tick(t0, 351, true), Some(251), "retried after a failure");
    }
}
