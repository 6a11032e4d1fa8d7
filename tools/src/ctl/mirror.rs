//! `make-mirror [options] <destination>`: etcdctl 3.4's `make_mirror_command.go` with
//! clientv3's `mirror.Syncer`. Copies the keys under `--prefix` (all keys without it)
//! as of the source's current revision to the destination, in pages of
//! [`SYNC_PAGE_KEYS`], then follows a watch from the next revision, replaying each
//! revision's events as one Txn on the destination. Every 30 s it prints how many keys
//! and events it has copied. It runs until interrupted (or a failed call: exit 1).

use std::cell::Cell;
use std::path::PathBuf;
use std::rc::Rc;
use std::time::Duration;

use bytes::Bytes;
use net::pb::etcdserverpb::{
    request_op, watch_request, DeleteRangeRequest, PutRequest, PutResponse, RangeRequest,
    RangeResponse, RequestOp, TxnRequest, TxnResponse, WatchCreateRequest, WatchRequest,
    WatchResponse,
};
use net::pb::mvccpb::event::EventType;

use super::kv::prefix_range_end;
use super::{exit, CtlError, CtlResult, GlobalFlags, Session};

/// Keys per Range page of the initial copy (clientv3 `mirror.batchLimit`).
pub const SYNC_PAGE_KEYS: i64 = 1000;

/// How often the count of copied keys is printed, in seconds (etcdctl's `makeMirror`).
pub const PROGRESS_EVERY_S: u64 = 30;

/// etcdctl calls with `context.TODO()`, without a deadline; a day stands for none.
const NO_DEADLINE: Duration = Duration::from_secs(24 * 3600);

/// `make-mirror` flags and arguments.
#[derive(Clone, Debug, clap::Args)]
pub struct MirrorArgs {
    /// `<destination>`: one endpoint of the destination cluster.
    pub args: Vec<String>,
    /// Key-value prefix to mirror
    #[arg(long, default_value = "")]
    pub prefix: String,
    /// destination prefix to mirror a prefix to a different prefix in the destination cluster
    #[arg(long, default_value = "")]
    pub dest_prefix: String,
    /// mirror key-values to the root of the destination cluster
    #[arg(long)]
    pub no_dest_prefix: bool,
    /// Identify secure client using this TLS certificate file for the destination cluster
    #[arg(long, value_parser = clap::value_parser!(PathBuf))]
    pub dest_cert: Option<PathBuf>,
    /// Identify secure client using this TLS key file
    #[arg(long, value_parser = clap::value_parser!(PathBuf))]
    pub dest_key: Option<PathBuf>,
    /// Verify certificates of TLS enabled secure servers using this CA bundle
    #[arg(long, value_parser = clap::value_parser!(PathBuf))]
    pub dest_cacert: Option<PathBuf>,
    /// Disable transport security for client connections
    #[arg(long, num_args = 0..=1, require_equals = true, default_value = "true", default_missing_value = "true", value_parser = super::parse_go_bool, action = clap::ArgAction::Set)]
    pub dest_insecure_transport: bool,
}

/// The destination's client flags (etcdctl's `secureCfg` from the `--dest-*` flags, the
/// global dial and keepalive settings, no authentication).
fn destination(global: &GlobalFlags, a: &MirrorArgs) -> GlobalFlags {
    GlobalFlags {
        endpoints: a.args.clone(),
        cacert: a.dest_cacert.clone(),
        cert: a.dest_cert.clone(),
        key: a.dest_key.clone(),
        insecure_transport: a.dest_insecure_transport,
        insecure_skip_tls_verify: false,
        discovery_srv: String::new(),
        user: None,
        password: None,
        ..global.clone()
    }
}

/// `make-mirror`. Errors: not one destination, exit 128; `--dest-prefix` with
/// `--no-dest-prefix`, exit 128 (checked after the first read, as etcdctl); a failed
/// call, or a compacted watch (`etcdserver: mvcc: required revision has been
/// compacted`), exit 1.
pub async fn make_mirror(global: &GlobalFlags, a: &MirrorArgs) -> CtlResult {
    if a.args.len() != 1 {
        return Err(CtlError::new(
            exit::BAD_ARGS,
            "make-mirror takes one destination argument",
        ));
    }
    let dest = Session::connect(&destination(global, a)).await?;
    let source = Session::connect(global).await?;
    let total = Rc::new(Cell::new(0u64));
    let counted = total.clone();
    glommio::spawn_local(async move {
        loop {
            glommio::timer::sleep(Duration::from_secs(PROGRESS_EVERY_S)).await;
            println!("{}", counted.get());
        }
    })
    .detach();
    // mirror.Syncer.SyncBase: the revision to copy at, from a read of "foo".
    let first: Result<RangeResponse, CtlError> = call(
        &source,
        "/etcdserverpb.KV/Range",
        &range(b"foo".to_vec(), Vec::new(), 0, 0),
    )
    .await;
    if a.no_dest_prefix && !a.dest_prefix.is_empty() {
        return Err(CtlError::new(
            exit::BAD_ARGS,
            "`--dest-prefix` and `--no-dest-prefix` cannot be set at the same time, choose one",
        ));
    }
    let dest_prefix = if !a.no_dest_prefix && a.dest_prefix.is_empty() {
        &a.prefix
    } else {
        &a.dest_prefix
    };
    let rename = |key: &[u8]| replace_first(key, a.prefix.as_bytes(), dest_prefix.as_bytes());
    let rev = first?.header.map_or(0, |h| h.revision);
    copy_base(&source, &dest, &a.prefix, rev, &rename, &total).await?;
    follow(&source, &dest, &a.prefix, rev, &rename, &total).await
}

async fn call<Req, Resp>(s: &Session, path: &str, request: &Req) -> CtlResult<Resp>
where
    Req: prost::Message,
    Resp: prost::Message + Default,
{
    s.client()
        .await?
        .unary(path, request, NO_DEADLINE)
        .await
        .map_err(CtlError::rpc)
}

/// A Range of `[key, range_end)` at `revision` (0: the current one), at most `limit`
/// keys (0: all).
fn range(key: Vec<u8>, range_end: Vec<u8>, revision: i64, limit: i64) -> RangeRequest {
    RangeRequest {
        key: Bytes::from(key),
        range_end: Bytes::from(range_end),
        revision,
        limit,
        ..Default::default()
    }
}

/// `strings.Replace(key, old, new, 1)`: the first `old` in `key` replaced by `new`; an
/// empty `old` puts `new` in front.
fn replace_first(key: &[u8], old: &[u8], new: &[u8]) -> Vec<u8> {
    let at = if old.is_empty() {
        Some(0)
    } else {
        key.windows(old.len()).position(|w| w == old)
    };
    match at {
        Some(at) => [&key[..at], new, &key[at + old.len()..]].concat(),
        None => key.to_vec(),
    }
}

/// `[key, range_end)` of every key under `prefix`: clientv3 `WithPrefix`, where the
/// empty prefix means every key (`\0` with end `\0`).
fn prefix_interval(prefix: &[u8]) -> (Vec<u8>, Vec<u8>) {
    match prefix {
        [] => (vec![0u8], vec![0u8]),
        p => (p.to_vec(), prefix_range_end(p)),
    }
}

/// The keys under `prefix` at `rev`, page by page (from `\0` with no end for all keys),
/// each Put on the destination.
async fn copy_base(
    source: &Session,
    dest: &Session,
    prefix: &str,
    rev: i64,
    rename: &impl Fn(&[u8]) -> Vec<u8>,
    total: &Cell<u64>,
) -> CtlResult {
    let (mut key, end) = prefix_interval(prefix.as_bytes());
    loop {
        let page: RangeResponse = call(
            source,
            "/etcdserverpb.KV/Range",
            &range(key, end.clone(), rev, SYNC_PAGE_KEYS),
        )
        .await?;
        for kv in &page.kvs {
            let put = PutRequest {
                key: Bytes::from(rename(&kv.key)),
                value: kv.value.clone(),
                ..Default::default()
            };
            let _: PutResponse = call(dest, "/etcdserverpb.KV/Put", &put).await?;
            total.set(total.get() + 1);
        }
        let Some(last) = page.kvs.last().filter(|_| page.more) else {
            return Ok(());
        };
        key = [last.key.as_ref(), &[0u8]].concat();
    }
}

/// Watches `prefix` from `rev + 1` and replays each revision's events on the
/// destination as one Txn. Ends only with an error.
async fn follow(
    source: &Session,
    dest: &Session,
    prefix: &str,
    rev: i64,
    rename: &impl Fn(&[u8]) -> Vec<u8>,
    total: &Cell<u64>,
) -> CtlResult {
    let mut watch = source
        .client()
        .await?
        .open("/etcdserverpb.Watch/Watch", None)
        .await
        .map_err(CtlError::rpc)?;
    let (key, range_end) = prefix_interval(prefix.as_bytes());
    let create = WatchCreateRequest {
        key: Bytes::from(key),
        range_end: Bytes::from(range_end),
        start_revision: rev + 1,
        ..Default::default()
    };
    watch
        .send(&WatchRequest {
            request_union: Some(watch_request::RequestUnion::CreateRequest(create)),
        })
        .map_err(CtlError::rpc)?;
    while let Some(r) = watch
        .message::<WatchResponse>()
        .await
        .map_err(CtlError::rpc)?
    {
        if r.compact_revision != 0 {
            return Err(CtlError::new(
                exit::ERROR,
                "etcdserver: mvcc: required revision has been compacted",
            ));
        }
        let mut ops = Vec::new();
        let mut last_rev = 0;
        for event in &r.events {
            let kv = event.kv.clone().unwrap_or_default();
            if last_rev != 0 && kv.mod_revision > last_rev {
                commit(dest, std::mem::take(&mut ops)).await?;
            }
            last_rev = kv.mod_revision;
            let key = Bytes::from(rename(&kv.key));
            let op = if event.r#type == EventType::Delete as i32 {
                request_op::Request::RequestDeleteRange(DeleteRangeRequest {
                    key,
                    ..Default::default()
                })
            } else {
                request_op::Request::RequestPut(PutRequest {
                    key,
                    value: kv.value,
                    ..Default::default()
                })
            };
            ops.push(RequestOp { request: Some(op) });
            total.set(total.get() + 1);
        }
        if !ops.is_empty() {
            commit(dest, ops).await?;
        }
        if r.canceled {
            break;
        }
    }
    // clientv3's watch channel closed: etcdctl's `ExitWithError(ExitError, nil)`.
    Err(CtlError::new(exit::ERROR, "<nil>"))
}

async fn commit(dest: &Session, ops: Vec<RequestOp>) -> CtlResult {
    let txn = TxnRequest {
        success: ops,
        ..Default::default()
    };
    let _: TxnResponse = call(dest, "/etcdserverpb.KV/Txn", &txn).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_renamed_as_go_strings_replace() {
        assert_eq!(replace_first(b"a/x", b"a/", b"b/"), b"b/x");
        assert_eq!(replace_first(b"x/a/y", b"a/", b"b/"), b"x/b/y");
        assert_eq!(replace_first(b"a/a/", b"a/", b""), b"a/");
        assert_eq!(replace_first(b"key", b"", b"p/"), b"p/key");
        assert_eq!(replace_first(b"key", b"", b""), b"key");
        assert_eq!(replace_first(b"key", b"zz", b"y"), b"key");
    }
}
