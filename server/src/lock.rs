//! etcd's Lock service (`v3lockpb`): Lock and Unlock.
//!
//! etcd serves it with `clientv3/concurrency.Mutex` against itself
//! (`etcdserver/api/v3lock/lock.go`); this module runs the same algorithm against the
//! local KV paths of [`EtcdService`], sharing the session and wait helpers of
//! [`crate::election`].

use std::rc::Rc;

use bytes::Bytes;
use net::pb::etcdserverpb::{request_op, DeleteRangeRequest, TxnRequest};
use net::pb::v3lockpb::{LockRequest, LockResponse, UnlockRequest, UnlockResponse};
use net::{Code, Status};

use crate::election::{
    by_create, client_error, create_revision_is, delete, get, header_of, key_prefix, lease_key, op,
    put, range_kvs, session_lease, wait_deletes, CleanupOnDrop,
};
use crate::service::{decode, encode, Client};

/// The unary methods of the Lock service, by gRPC path.
pub const UNARY_METHODS: &[&str] = &["/v3lockpb.Lock/Lock", "/v3lockpb.Lock/Unlock"];

/// Serves one unary Lock method (`path` is one of [`UNARY_METHODS`]).
pub async fn unary(svc: Rc<Client>, path: String, body: Bytes) -> Result<Bytes, Status> {
    match path.as_str() {
        "/v3lockpb.Lock/Lock" => {
            let r = decode(body)?;
            Ok(encode(&lock(&svc, r).await.map_err(client_error)?))
        }
        "/v3lockpb.Lock/Unlock" => {
            let r = decode(body)?;
            Ok(encode(&unlock(&svc, r).await.map_err(client_error)?))
        }
        _ => Err(Status::new(
            Code::Unimplemented,
            format!("unknown method {path}"),
        )),
    }
}

/// Lock: etcd `Mutex.Lock` with the request's session; waits until every key of the
/// lock's prefix created before this one is deleted. A failed or canceled wait deletes
/// this request's key, as etcd's `Unlock` after a failed wait does.
async fn lock(svc: &Rc<Client>, r: LockRequest) -> Result<LockResponse, Status> {
    let lease = session_lease(svc, r.lease).await?;
    let prefix = key_prefix(&r.name);
    let key = lease_key(&prefix, lease);
    let owner = || {
        op(request_op::Request::RequestRange(by_create(
            &prefix, true, 0,
        )))
    };
    let resp = svc
        .txn(TxnRequest {
            compare: vec![create_revision_is(&key, 0)],
            success: vec![op(put(&key, Bytes::new(), lease)), owner()],
            failure: vec![op(get(&key)), owner()],
        })
        .await?;
    let mut my_rev = header_of(&resp.header);
    if !resp.succeeded {
        my_rev = range_kvs(&resp, 0)
            .first()
            .map(|kv| kv.create_revision)
            .ok_or_else(|| Status::new(Code::Internal, "lock key vanished"))?;
    }
    let owner_kvs = range_kvs(&resp, 1);
    if owner_kvs
        .first()
        .is_none_or(|kv| kv.create_revision == my_rev)
    {
        return Ok(LockResponse {
            header: resp.header,
            key: key.into(),
        });
    }
    let unlock = TxnRequest {
        success: vec![op(delete(&key))],
        ..Default::default()
    };
    let cleanup = CleanupOnDrop::new(svc.clone(), unlock);
    match wait_deletes(svc, &prefix, my_rev - 1).await {
        Ok(header) => {
            cleanup.disarm();
            Ok(LockResponse {
                header: Some(header),
                key: key.into(),
            })
        }
        Err(e) => {
            cleanup.run_now().await;
            Err(e)
        }
    }
}

/// Unlock: deletes the lock's key (etcd's `Delete(key)`).
async fn unlock(svc: &Client, r: UnlockRequest) -> Result<UnlockResponse, Status> {
    let resp = svc
        .delete_range(DeleteRangeRequest {
            key: r.key,
            ..Default::default()
        })
        .await?;
    Ok(UnlockResponse {
        header: resp.header,
    })
}
