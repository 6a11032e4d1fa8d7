//! `lock <name>` and `elect <name> [proposal] | -l`: etcdctl 3.4's `lock_command.go` and
//! `elect_command.go`. etcdctl runs clientv3's `concurrency` recipes; cairnctl asks the
//! server's Lock and Election services, which run the same recipes (etcd `v3lock`,
//! `v3election`): the keys are the same (`<name>/<lease ID in hex>`), and so is the
//! output (the key-value through the `get` printer). The session is a lease kept alive
//! every TTL/3 (`--ttl` for lock, default 10 s; 60 s for elect, clientv3's default).
//! SIGINT or SIGTERM ends the wait: the lock is released, the leadership resigned.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::future::{select, Either};
use net::pb::etcdserverpb::{
    LeaseGrantRequest, LeaseGrantResponse, LeaseKeepAliveRequest, LeaseKeepAliveResponse,
    RangeRequest, RangeResponse,
};
use net::pb::v3electionpb::{
    CampaignRequest, CampaignResponse, LeaderRequest, LeaderResponse, ResignRequest, ResignResponse,
};
use net::pb::v3lockpb::{LockRequest, LockResponse, UnlockRequest, UnlockResponse};

use super::kv::{render_get, write_out};
use super::{exit, status_text, CtlError, CtlResult, Session};

/// How often the interrupt flag is looked at, in milliseconds.
const SIGNAL_POLL_MS: u64 = 50;
/// clientv3 `concurrency.NewSession`'s default TTL, in seconds (elect uses it).
const SESSION_TTL_DEFAULT_S: i64 = 60;

/// A flag set by SIGINT or SIGTERM.
fn interrupt_flag() -> CtlResult<Arc<AtomicBool>> {
    let flag = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, flag.clone())
            .map_err(|e| CtlError::new(exit::ERROR, e.to_string()))?;
    }
    Ok(flag)
}

async fn interrupted(flag: &AtomicBool) {
    while !flag.load(Ordering::Relaxed) {
        glommio::timer::sleep(Duration::from_millis(SIGNAL_POLL_MS)).await;
    }
}

/// Grants the session lease and keeps it alive on a task of this executor.
async fn session_lease(s: &Session, ttl: i64) -> CtlResult<i64> {
    let r: LeaseGrantResponse = s
        .call(
            "/etcdserverpb.Lease/LeaseGrant",
            &LeaseGrantRequest { ttl, id: 0 },
        )
        .await?;
    let mut call = s
        .client()
        .await?
        .open("/etcdserverpb.Lease/LeaseKeepAlive", None)
        .await
        .map_err(CtlError::rpc)?;
    let id = r.id;
    let every = Duration::from_secs((ttl as u64 / 3).max(1));
    glommio::spawn_local(async move {
        loop {
            glommio::timer::sleep(every).await;
            if call.send(&LeaseKeepAliveRequest { id }).is_err() {
                return;
            }
            match call.message::<LeaseKeepAliveResponse>().await {
                Ok(Some(r)) if r.ttl > 0 => {}
                _ => return,
            }
        }
    })
    .detach();
    Ok(id)
}

/// Prints `key` through the `get` printer (etcdctl's `display.Get` of a Get of the key).
async fn print_key(s: &Session, key: &Bytes) -> CtlResult {
    let r: RangeResponse = s
        .call(
            "/etcdserverpb.KV/Range",
            &RangeRequest {
                key: key.clone(),
                ..Default::default()
            },
        )
        .await?;
    if r.kvs.is_empty() {
        return Err(CtlError::new(exit::ERROR, "lock lost on init"));
    }
    write_out(&render_get(s.format, s.hex, false, &r));
    Ok(())
}

/// Runs `call` unless SIGINT/SIGTERM comes first ("context canceled", as etcdctl's
/// cancelled context).
async fn unless_interrupted<T>(
    flag: &AtomicBool,
    call: impl std::future::Future<Output = Result<T, net::Status>>,
) -> CtlResult<T> {
    match select(std::pin::pin!(call), std::pin::pin!(interrupted(flag))).await {
        Either::Left((result, _)) => {
            result.map_err(|st| CtlError::new(exit::ERROR, status_text(&st)))
        }
        Either::Right(((), _)) => Err(CtlError::new(exit::ERROR, "context canceled")),
    }
}

/// `lock <name> [--ttl N]`: acquires, prints the lock key, holds it until interrupted.
pub async fn lock(s: &Session, args: &[String], ttl: i64) -> CtlResult {
    if args.is_empty() {
        return Err(CtlError::new(
            exit::BAD_ARGS,
            "lock takes a lock name argument and an optional command to execute",
        ));
    }
    let flag = interrupt_flag()?;
    let lease = session_lease(s, ttl).await?;
    let request = LockRequest {
        name: Bytes::from(args[0].clone()),
        lease,
    };
    let held: LockResponse = unless_interrupted(
        &flag,
        s.client().await?.unary(
            "/v3lockpb.Lock/Lock",
            &request,
            Duration::from_secs(u32::MAX as u64),
        ),
    )
    .await?;
    if args.len() > 1 {
        return run_locked(s, &args[1..], held).await;
    }
    print_key(s, &held.key).await?;
    interrupted(&flag).await;
    let _: UnlockResponse = s
        .call("/v3lockpb.Lock/Unlock", &UnlockRequest { key: held.key })
        .await?;
    Ok(())
}

/// `lock <name> <command> [args...]`: runs the command while the lock is held, with
/// `ETCD_LOCK_KEY` and `ETCD_LOCK_REV` in its environment and this process's stdout and
/// stderr, then unlocks (etcdctl `lockUntilSignal`). The child is waited for on glommio's
/// blocking thread, so the session's keep-alives go on. A command that fails is etcdctl's
/// `Error: exit status N` (exit 1), after the unlock.
async fn run_locked(s: &Session, command: &[String], held: LockResponse) -> CtlResult {
    let revision = held.header.as_ref().map_or(0, |h| h.revision);
    let mut child = std::process::Command::new(&command[0]);
    child
        .args(&command[1..])
        .env(
            "ETCD_LOCK_KEY",
            String::from_utf8_lossy(&held.key).into_owned(),
        )
        .env("ETCD_LOCK_REV", revision.to_string());
    let status = glommio::executor()
        .spawn_blocking(move || child.status())
        .await;
    let _: UnlockResponse = s
        .call("/v3lockpb.Lock/Unlock", &UnlockRequest { key: held.key })
        .await?;
    match super::go::exec_error(&command[0], &status) {
        None => Ok(()),
        Some(text) => Err(CtlError::new(exit::ERROR, text)),
    }
}

/// `elect <name> <proposal>` (campaign, print the leader key, hold until interrupted,
/// resign) or `elect -l <name>` (print each leader until interrupted).
pub async fn elect(s: &Session, args: &[String], listen: bool) -> CtlResult {
    if args.is_empty() || args.len() > 2 {
        return Err(CtlError::new(
            exit::BAD_ARGS,
            "elect takes one election name argument and an optional proposal argument",
        ));
    }
    if args.len() == 1 && !listen {
        return Err(CtlError::new(
            exit::BAD_ARGS,
            "no proposal argument but -l not set",
        ));
    }
    if args.len() == 2 && listen {
        return Err(CtlError::new(
            exit::BAD_ARGS,
            "proposal given but -l is set",
        ));
    }
    let flag = interrupt_flag()?;
    let name = Bytes::from(args[0].clone());
    if listen {
        let _lease = session_lease(s, SESSION_TTL_DEFAULT_S).await?;
        let mut call = s
            .client()
            .await?
            .open("/v3electionpb.Election/Observe", None)
            .await
            .map_err(CtlError::rpc)?;
        call.send(&LeaderRequest { name })
            .and_then(|()| call.close_send())
            .map_err(CtlError::rpc)?;
        loop {
            let next = unless_interrupted(&flag, call.message::<LeaderResponse>()).await;
            match next {
                Ok(Some(r)) => {
                    let get = RangeResponse {
                        header: r.header,
                        kvs: r.kv.into_iter().collect(),
                        count: 1,
                        more: false,
                    };
                    write_out(&render_get(s.format, s.hex, false, &get));
                }
                Ok(None) => return Err(CtlError::new(exit::ERROR, "elect: observer lost")),
                Err(e) if e.message == "context canceled" => return Ok(()),
                Err(e) => return Err(e),
            }
        }
    }
    let lease = session_lease(s, SESSION_TTL_DEFAULT_S).await?;
    let request = CampaignRequest {
        name,
        lease,
        value: Bytes::from(args[1].clone()),
    };
    let won: CampaignResponse = unless_interrupted(
        &flag,
        s.client().await?.unary(
            "/v3electionpb.Election/Campaign",
            &request,
            Duration::from_secs(u32::MAX as u64),
        ),
    )
    .await?;
    let leader = won.leader.unwrap_or_default();
    print_key(s, &leader.key).await?;
    interrupted(&flag).await;
    let _: ResignResponse = s
        .call(
            "/v3electionpb.Election/Resign",
            &ResignRequest {
                leader: Some(leader),
            },
        )
        .await?;
    Ok(())
}
