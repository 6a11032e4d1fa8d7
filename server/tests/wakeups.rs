//! Cross-executor wake-ups under load, with no timer armed anywhere (issue 9, item 1).
//!
//! The shape is the server's write path: a "raft" task in a latency-sensitive task queue
//! on core 0 drains a bounded flume channel in batches and answers each request through a
//! oneshot; client tasks on core 0 and core 1 send a request and wait for its reply, over
//! and over. Nothing in the test sleeps or re-polls, so every step depends on a wake-up
//! reaching the right executor. A watchdog thread fails the test when no request completes
//! for [`STALL_MAX`]; with glommio 0.9.0 as released this happens within seconds, because an
//! executor whose preempt timer fired just before it ran its task queues parked with a
//! runnable queue (see `third_party/README.md`, glommio/glommio#53).
//!
//! `CAIRN_WAKEUP_STRESS_SECS` sets how long the load runs (default
//! [`DEFAULT_RUN_SECS`]); longer runs make a regression more certain to show.

use futures::channel::oneshot;
use glommio::{Latency, LocalExecutorBuilder, Placement, Shares};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Longest time without any completed request before the test calls it a lost wake-up.
/// A healthy run completes a request every few microseconds.
const STALL_MAX: Duration = Duration::from_secs(2);
/// Default length of the load, in seconds.
const DEFAULT_RUN_SECS: u64 = 6;
/// Client tasks per executor.
const CLIENTS_PER_CORE: usize = 64;
/// Requests the "raft" task takes from its channel per batch (the server's
/// `BATCH_REQUESTS_MAX` plays the same role).
const BATCH_MAX: usize = 256;
/// The server's raft task queue latency (`runtime::start_raft_core`).
const RAFT_QUEUE_LATENCY: Duration = Duration::from_micros(50);

type Request = oneshot::Sender<u64>;

struct Progress {
    completed: AtomicU64,
    stop: AtomicBool,
}

async fn client(requests: flume::Sender<Request>, progress: Arc<Progress>) {
    while !progress.stop.load(Ordering::Relaxed) {
        let (reply_tx, reply_rx) = oneshot::channel();
        if requests.send_async(reply_tx).await.is_err() {
            return;
        }
        if reply_rx.await.is_err() {
            return;
        }
        progress.completed.fetch_add(1, Ordering::Relaxed);
    }
}

async fn raft_like(requests: flume::Receiver<Request>) {
    let mut answered = 0u64;
    while let Ok(first) = requests.recv_async().await {
        let mut batch = vec![first];
        while batch.len() < BATCH_MAX {
            match requests.try_recv() {
                Ok(r) => batch.push(r),
                Err(_) => break,
            }
        }
        for reply in batch {
            answered += 1;
            let _ = reply.send(answered);
        }
    }
}

fn placement(core: usize) -> Placement {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    if cores >= 2 {
        Placement::Fixed(core)
    } else {
        Placement::Unbound
    }
}

#[test]
fn replies_between_executors_are_never_lost_without_timers() {
    let run_for = Duration::from_secs(
        std::env::var("CAIRN_WAKEUP_STRESS_SECS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(DEFAULT_RUN_SECS),
    );
    let progress = Arc::new(Progress {
        completed: AtomicU64::new(0),
        stop: AtomicBool::new(false),
    });
    let (tx, rx) = flume::bounded::<Request>(1024);

    let mut executors = Vec::new();
    for core in 0..2 {
        let tx = tx.clone();
        let rx = rx.clone();
        let progress = progress.clone();
        let handle = LocalExecutorBuilder::new(placement(core))
            .name(&format!("wakeups-{core}"))
            .spawn(move || async move {
                let raft = (core == 0).then(|| {
                    let tq = glommio::executor().create_task_queue(
                        Shares::Static(1000),
                        Latency::Matters(RAFT_QUEUE_LATENCY),
                        "raft",
                    );
                    glommio::spawn_local_into(raft_like(rx), tq).expect("task queue exists")
                });
                let clients: Vec<_> = (0..CLIENTS_PER_CORE)
                    .map(|_| glommio::spawn_local(client(tx.clone(), progress.clone())))
                    .collect();
                drop(tx);
                for c in clients {
                    c.await;
                }
                if let Some(raft) = raft {
                    raft.await;
                }
            })
            .expect("executor starts");
        executors.push(handle);
    }
    drop((tx, rx));

    let started = Instant::now();
    let mut last = 0;
    let mut last_change = Instant::now();
    while started.elapsed() < run_for {
        std::thread::sleep(Duration::from_millis(50));
        let done = progress.completed.load(Ordering::Relaxed);
        if done != last {
            last = done;
            last_change = Instant::now();
        }
        assert!(
            last_change.elapsed() < STALL_MAX,
            "lost wake-up: no request completed for {STALL_MAX:?} after {done} requests \
             (every executor is asleep with work pending)"
        );
    }
    progress.stop.store(true, Ordering::Relaxed);
    for e in executors {
        e.join().expect("executor exits cleanly");
    }
    assert!(last > 0, "no request completed at all");
}
