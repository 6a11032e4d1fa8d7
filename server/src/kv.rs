//! The KV service's semantics: request validation, Range (filter, sort, limit), Put,
//! DeleteRange and Txn evaluation over an MVCC view.
//!
//! Source of every rule: etcd 3.4 `etcdserver/apply.go` (`applierV3backend.Range`, `Put`,
//! `DeleteRange`, `Txn`, `applyCompare`) and `etcdserver/api/v3rpc/key.go` (`check*Request`,
//! `checkIntervals`). Used by the apply loop (writes, with a [`engine::WriteTxn`]) and by
//! every core for serializable and read-only requests (with an [`engine::MvccReader`]).

use bytes::Bytes;
use engine::{KeyValue, MvccReader, RangeOptions, RangeResult, WriteTxn};
use net::pb::etcdserverpb::{
    compare, range_request, request_op, response_op, Compare, DeleteRangeRequest,
    DeleteRangeResponse, PutRequest, PutResponse, RangeRequest, RangeResponse, ResponseHeader,
    ResponseOp, TxnRequest, TxnResponse,
};
use net::pb::mvccpb;
use net::Status;

use crate::errors;

/// A view of the store at one revision that Range and compares read from.
pub trait KvView {
    /// Range over `[key, range_end)` with etcd's range_end forms (empty = one key, `"\0"` = all ≥ key).
    fn range(
        &self,
        key: &[u8],
        range_end: &[u8],
        options: &RangeOptions,
    ) -> engine::Result<RangeResult>;
    /// Revision a Range in this view reports in its header (`rr.Rev`).
    fn revision(&self) -> i64;
    /// Oldest readable revision (`FirstRev`): the compaction revision.
    fn compact_revision(&self) -> i64;
}

/// A read view pinned at the store revision current when it was made: every read of one
/// Range or read-only Txn sees the same store state, and the header reports that revision
/// (etcd serves each in one read txn, `rr.Rev`). Without the pin, a write applied between
/// two reads of one request (or between the read and the header) would make a response
/// report a revision newer than its data — found by the cluster linearizability test.
pub struct Pinned<'a> {
    reader: &'a MvccReader,
    revision: i64,
}

impl<'a> Pinned<'a> {
    /// Pins `reader` at its current revision.
    pub fn new(reader: &'a MvccReader) -> Pinned<'a> {
        Pinned {
            revision: reader.current_revision(),
            reader,
        }
    }
}

impl KvView for Pinned<'_> {
    fn range(
        &self,
        key: &[u8],
        range_end: &[u8],
        options: &RangeOptions,
    ) -> engine::Result<RangeResult> {
        let at = if options.revision > 0 {
            options.revision
        } else {
            self.revision
        };
        if at > self.revision {
            // A revision written after the pin is a future revision for this request.
            return Err(engine::Error::FutureRevision);
        }
        let options = RangeOptions {
            revision: at,
            ..options.clone()
        };
        self.reader.range(key, range_end, &options)
    }
    fn revision(&self) -> i64 {
        self.revision
    }
    fn compact_revision(&self) -> i64 {
        self.reader.compact_revision()
    }
}

impl KvView for MvccReader {
    fn range(
        &self,
        key: &[u8],
        range_end: &[u8],
        options: &RangeOptions,
    ) -> engine::Result<RangeResult> {
        MvccReader::range(self, key, range_end, options)
    }
    fn revision(&self) -> i64 {
        self.current_revision()
    }
    fn compact_revision(&self) -> i64 {
        MvccReader::compact_revision(self)
    }
}

/// A write transaction plus what etcd's `storeTxnWrite` tracks: the revision it began at
/// and whether it changed anything yet (reads see `begin + 1` once it has).
pub struct WriteView<'a> {
    txn: WriteTxn<'a>,
    begin_revision: i64,
    compact_revision: i64,
    changed: bool,
}

impl<'a> WriteView<'a> {
    /// Wraps `txn`, which began when the store was at `begin_revision`.
    pub fn new(txn: WriteTxn<'a>, begin_revision: i64, compact_revision: i64) -> Self {
        WriteView {
            txn,
            begin_revision,
            compact_revision,
            changed: false,
        }
    }

    /// Ends the transaction: `(store revision after it, events it produced)`.
    pub fn end(self) -> (i64, Vec<engine::Event>) {
        self.txn.end()
    }

    fn put(&mut self, key: &[u8], value: &[u8], lease: i64) -> i64 {
        if let Err(e) = self.txn.try_put(key, value, lease) {
            crate::logging::fatal_storage("failed to write to a bucket", &e);
        }
        self.changed = true;
        self.begin_revision + 1
    }

    /// Deletes `[key, range_end)`: (keys deleted, revision reads now see).
    pub(crate) fn delete_range(&mut self, key: &[u8], range_end: &[u8]) -> (i64, i64) {
        let deleted = match self.txn.try_delete_range(key, range_end) {
            Ok(deleted) => deleted.len() as i64,
            Err(e) => crate::logging::fatal_storage("failed to write to a bucket", &e),
        };
        if deleted > 0 {
            self.changed = true;
        }
        (deleted, self.revision())
    }
}

impl KvView for WriteView<'_> {
    fn range(
        &self,
        key: &[u8],
        range_end: &[u8],
        options: &RangeOptions,
    ) -> engine::Result<RangeResult> {
        self.txn.range(key, range_end, options)
    }
    fn revision(&self) -> i64 {
        self.begin_revision + i64::from(self.changed)
    }
    fn compact_revision(&self) -> i64 {
        self.compact_revision
    }
}

/// Converts an engine key-value to its wire form.
pub fn to_pb(kv: KeyValue) -> mvccpb::KeyValue {
    mvccpb::KeyValue {
        key: kv.key,
        create_revision: kv.create_revision,
        mod_revision: kv.mod_revision,
        version: kv.version,
        value: kv.value,
        lease: kv.lease,
    }
}

fn header(revision: i64) -> Option<ResponseHeader> {
    Some(ResponseHeader {
        revision,
        ..Default::default()
    })
}

// ---------------------------------------------------------------- validation (v3rpc/key.go)

// The checks are pure functions of the request and live in the server's library target
// (`server::validate`), where the fuzzer runs them too.
pub use server::validate::{check_delete, check_put, check_range, check_txn};

// ---------------------------------------------------------------- Range (apply.go)

/// etcd's Range: fetch (one extra for `more`, or everything when sorting/filtering), filter
/// by min/max mod/create revision, sort, truncate to `limit`, strip values for keys_only.
pub fn range(view: &impl KvView, r: &RangeRequest) -> Result<RangeResponse, Status> {
    use range_request::{SortOrder, SortTarget};
    let filtered = r.min_mod_revision != 0
        || r.max_mod_revision != 0
        || r.min_create_revision != 0
        || r.max_create_revision != 0;
    let mut sort_order = r.sort_order();
    let sort_target = r.sort_target();
    let limit = if r.limit <= 0 || sort_order != SortOrder::None || filtered {
        0
    } else {
        r.limit as usize + 1
    };
    let options = RangeOptions {
        limit,
        revision: r.revision.max(0),
        // Values are needed to sort by value; etcd strips them after sorting.
        keys_only: r.keys_only && sort_target != SortTarget::Value,
        count_only: r.count_only,
    };
    let rr = view
        .range(&r.key, &r.range_end, &options)
        .map_err(|e| errors::from_engine(&e))?;
    let mut kvs = rr.kvs;
    if filtered {
        kvs.retain(|kv| {
            !(r.max_mod_revision != 0 && kv.mod_revision > r.max_mod_revision
                || r.min_mod_revision != 0 && kv.mod_revision < r.min_mod_revision
                || r.max_create_revision != 0 && kv.create_revision > r.max_create_revision
                || r.min_create_revision != 0 && kv.create_revision < r.min_create_revision)
        });
    }
    if sort_target != SortTarget::Key && sort_order == SortOrder::None {
        sort_order = SortOrder::Ascend;
    }
    if sort_order != SortOrder::None {
        // Stable, so equal elements keep key order (Go's sort.Sort on small inputs does too).
        match sort_target {
            SortTarget::Key => kvs.sort_by(|a, b| a.key.cmp(&b.key)),
            SortTarget::Version => kvs.sort_by_key(|kv| kv.version),
            SortTarget::Create => kvs.sort_by_key(|kv| kv.create_revision),
            SortTarget::Mod => kvs.sort_by_key(|kv| kv.mod_revision),
            SortTarget::Value => kvs.sort_by(|a, b| a.value.cmp(&b.value)),
        }
        if sort_order == SortOrder::Descend {
            kvs.reverse();
        }
    }
    let mut more = false;
    if r.limit > 0 && kvs.len() > r.limit as usize {
        kvs.truncate(r.limit as usize);
        more = true;
    }
    Ok(RangeResponse {
        header: header(view.revision()),
        kvs: kvs
            .into_iter()
            .map(|mut kv| {
                if r.keys_only {
                    kv.value = Bytes::new();
                }
                to_pb(kv)
            })
            .collect(),
        more,
        count: rr.count as i64,
    })
}

// ---------------------------------------------------------------- writes (apply.go)

/// Whether a lease ID names a live lease (the lessor's `Lookup`).
pub type LeaseLookup<'a> = &'a dyn Fn(i64) -> bool;

/// A standalone Put: the lease must exist, then `put_in_txn`.
pub fn put(
    view: &mut WriteView<'_>,
    p: &PutRequest,
    lease_exists: LeaseLookup<'_>,
) -> Result<PutResponse, Status> {
    if p.lease != 0 && !lease_exists(p.lease) {
        return Err(errors::lease_not_found());
    }
    put_in_txn(view, p)
}

fn get_one(view: &impl KvView, key: &[u8]) -> Result<Option<KeyValue>, Status> {
    let rr = view
        .range(key, &[], &RangeOptions::default())
        .map_err(|e| errors::from_engine(&e))?;
    Ok(rr.kvs.into_iter().next())
}

fn put_in_txn(view: &mut WriteView<'_>, p: &PutRequest) -> Result<PutResponse, Status> {
    let prev = if p.ignore_value || p.ignore_lease || p.prev_kv {
        get_one(view, &p.key)?
    } else {
        None
    };
    if (p.ignore_value || p.ignore_lease) && prev.is_none() {
        return Err(errors::key_not_found());
    }
    let value = match (&prev, p.ignore_value) {
        (Some(prev), true) => prev.value.clone(),
        _ => p.value.clone(),
    };
    let lease = match (&prev, p.ignore_lease) {
        (Some(prev), true) => prev.lease,
        _ => p.lease,
    };
    crate::supervise::panic_point!("apply-put", String::from_utf8_lossy(&p.key));
    let revision = view.put(&p.key, &value, lease);
    Ok(PutResponse {
        header: header(revision),
        prev_kv: if p.prev_kv { prev.map(to_pb) } else { None },
    })
}

/// DeleteRange: optional prev_kvs, then tombstones.
pub fn delete_range(
    view: &mut WriteView<'_>,
    d: &DeleteRangeRequest,
) -> Result<DeleteRangeResponse, Status> {
    let prev_kvs = if d.prev_kv {
        view.range(&d.key, &d.range_end, &RangeOptions::default())
            .map_err(|e| errors::from_engine(&e))?
            .kvs
            .into_iter()
            .map(to_pb)
            .collect()
    } else {
        Vec::new()
    };
    let (deleted, revision) = view.delete_range(&d.key, &d.range_end);
    Ok(DeleteRangeResponse {
        header: header(revision),
        deleted,
        prev_kvs,
    })
}

// ---------------------------------------------------------------- Txn (apply.go)

/// True when no branch of the Txn (nested ones included) writes (`isTxnReadonly`).
pub fn txn_is_read_only(r: &TxnRequest) -> bool {
    r.success
        .iter()
        .chain(r.failure.iter())
        .all(|op| match &op.request {
            Some(request_op::Request::RequestRange(_)) | None => true,
            Some(request_op::Request::RequestTxn(t)) => txn_is_read_only(t),
            _ => false,
        })
}

/// True when every Range of the Txn is serializable (`isTxnSerializable`).
pub fn txn_is_serializable(r: &TxnRequest) -> bool {
    r.success
        .iter()
        .chain(r.failure.iter())
        .all(|op| match &op.request {
            Some(request_op::Request::RequestRange(q)) => q.serializable,
            Some(request_op::Request::RequestTxn(t)) => txn_is_serializable(t),
            _ => true,
        })
}

/// `compareToPath`: the branch taken by this Txn and by every nested Txn along it, in order.
fn compare_to_path(view: &impl KvView, r: &TxnRequest, path: &mut Vec<bool>) {
    let ok = r.compare.iter().all(|c| apply_compare(view, c));
    path.push(ok);
    for op in if ok { &r.success } else { &r.failure } {
        if let Some(request_op::Request::RequestTxn(t)) = &op.request {
            compare_to_path(view, t, path);
        }
    }
}

/// `applyCompare`: every key in the compare's range must satisfy it; a missing key compares
/// as a zero KeyValue, except a VALUE compare, which then fails.
fn apply_compare(view: &impl KvView, c: &Compare) -> bool {
    let Ok(rr) = view.range(&c.key, &c.range_end, &RangeOptions::default()) else {
        return false;
    };
    if rr.kvs.is_empty() {
        if c.target() == compare::CompareTarget::Value {
            return false;
        }
        return compare_kv(c, &KeyValue::default());
    }
    rr.kvs.iter().all(|kv| compare_kv(c, kv))
}

fn compare_kv(c: &Compare, kv: &KeyValue) -> bool {
    use compare::{CompareResult, CompareTarget, TargetUnion};
    let ordering = match c.target() {
        CompareTarget::Value => {
            let v = match &c.target_union {
                Some(TargetUnion::Value(v)) => v.as_ref(),
                _ => &[],
            };
            kv.value.as_ref().cmp(v)
        }
        target => {
            let want = match (&c.target_union, target) {
                (Some(TargetUnion::CreateRevision(v)), CompareTarget::Create) => *v,
                (Some(TargetUnion::ModRevision(v)), CompareTarget::Mod) => *v,
                (Some(TargetUnion::Version(v)), CompareTarget::Version) => *v,
                (Some(TargetUnion::Lease(v)), CompareTarget::Lease) => *v,
                _ => 0,
            };
            let have = match target {
                CompareTarget::Create => kv.create_revision,
                CompareTarget::Mod => kv.mod_revision,
                CompareTarget::Version => kv.version,
                CompareTarget::Lease => kv.lease,
                CompareTarget::Value => unreachable!("handled above"),
            };
            have.cmp(&want)
        }
    };
    match c.result() {
        CompareResult::Equal => ordering.is_eq(),
        CompareResult::NotEqual => ordering.is_ne(),
        CompareResult::Greater => ordering.is_gt(),
        CompareResult::Less => ordering.is_lt(),
    }
}

/// `checkRequests` along the taken path: puts that need their key or a lease, ranges at a
/// compacted or future revision. Runs before any write so a failing Txn changes nothing.
fn check_path(
    view: &impl KvView,
    r: &TxnRequest,
    path: &[bool],
    lease_exists: LeaseLookup<'_>,
) -> Result<usize, Status> {
    let mut used = 1;
    let ops = if path[0] { &r.success } else { &r.failure };
    for op in ops {
        match &op.request {
            Some(request_op::Request::RequestPut(p)) => {
                if (p.ignore_value || p.ignore_lease) && get_one(view, &p.key)?.is_none() {
                    return Err(errors::key_not_found());
                }
                if p.lease != 0 && !lease_exists(p.lease) {
                    return Err(errors::lease_not_found());
                }
            }
            Some(request_op::Request::RequestRange(q)) if q.revision != 0 => {
                if q.revision > view.revision() {
                    return Err(errors::future_rev());
                }
                if q.revision < view.compact_revision() {
                    return Err(errors::compacted());
                }
            }
            Some(request_op::Request::RequestTxn(t)) => {
                used += check_path(view, t, &path[used..], lease_exists)?;
            }
            _ => {}
        }
    }
    Ok(used)
}

/// Evaluates a read-only Txn on a read view (served by any core, no Raft entry).
pub fn txn_read_only(view: &impl KvView, r: &TxnRequest) -> Result<TxnResponse, Status> {
    let mut path = Vec::new();
    compare_to_path(view, r, &mut path);
    check_path(view, r, &path, &|_| false)?;
    let (mut resp, _) = exec_read_only(view, r, &path)?;
    resp.header = header(view.revision());
    Ok(resp)
}

fn exec_read_only(
    view: &impl KvView,
    r: &TxnRequest,
    path: &[bool],
) -> Result<(TxnResponse, usize), Status> {
    let mut used = 1;
    let ops = if path[0] { &r.success } else { &r.failure };
    let mut responses = Vec::with_capacity(ops.len());
    for op in ops {
        let response = match &op.request {
            Some(request_op::Request::RequestRange(q)) => {
                Some(response_op::Response::ResponseRange(range(view, q)?))
            }
            Some(request_op::Request::RequestTxn(t)) => {
                let (sub, n) = exec_read_only(view, t, &path[used..])?;
                used += n;
                Some(response_op::Response::ResponseTxn(sub))
            }
            _ => None,
        };
        responses.push(ResponseOp { response });
    }
    Ok((
        TxnResponse {
            header: Some(ResponseHeader::default()),
            succeeded: path[0],
            responses,
        },
        used,
    ))
}

/// Evaluates a Txn that writes, as one revision. On error nothing has been written.
pub fn txn_write(
    view: &mut WriteView<'_>,
    r: &TxnRequest,
    lease_exists: LeaseLookup<'_>,
) -> Result<TxnResponse, Status> {
    let mut path = Vec::new();
    compare_to_path(view, r, &mut path);
    check_path(view, r, &path, lease_exists)?;
    let (mut resp, _) = exec_write(view, r, &path)?;
    resp.header = header(view.revision());
    Ok(resp)
}

fn exec_write(
    view: &mut WriteView<'_>,
    r: &TxnRequest,
    path: &[bool],
) -> Result<(TxnResponse, usize), Status> {
    let mut used = 1;
    let ops = if path[0] { &r.success } else { &r.failure };
    let mut responses = Vec::with_capacity(ops.len());
    for op in ops {
        let response = match &op.request {
            Some(request_op::Request::RequestRange(q)) => {
                Some(response_op::Response::ResponseRange(range(view, q)?))
            }
            Some(request_op::Request::RequestPut(p)) => {
                Some(response_op::Response::ResponsePut(put_in_txn(view, p)?))
            }
            Some(request_op::Request::RequestDeleteRange(d)) => Some(
                response_op::Response::ResponseDeleteRange(delete_range(view, d)?),
            ),
            Some(request_op::Request::RequestTxn(t)) => {
                let (sub, n) = exec_write(view, t, &path[used..])?;
                used += n;
                Some(response_op::Response::ResponseTxn(sub))
            }
            None => None,
        };
        responses.push(ResponseOp { response });
    }
    Ok((
        TxnResponse {
            header: Some(ResponseHeader::default()),
            succeeded: path[0],
            responses,
        },
        used,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use engine::{Mvcc, MvccOptions};

    fn put(m: &mut Mvcc, key: &str, value: &str) {
        let mut t = m.write();
        t.put(key.as_bytes(), value.as_bytes(), 0);
        t.end();
    }

    /// A write applied after a read is pinned changes neither its data nor its header.
    #[test]
    fn a_pinned_read_reports_the_revision_of_its_data() {
        let tmp = tempfile::tempdir().unwrap();
        let mut m = Mvcc::open(tmp.path(), MvccOptions::default()).unwrap();
        put(&mut m, "k", "old");
        let reader = m.reader();
        let pinned = Pinned::new(&reader);
        put(&mut m, "k", "new");
        let get = RangeRequest {
            key: Bytes::from_static(b"k"),
            ..Default::default()
        };
        let resp = range(&pinned, &get).unwrap();
        assert_eq!(resp.kvs[0].value.as_ref(), b"old");
        assert_eq!(resp.header.unwrap().revision, 2);
        assert_eq!(resp.kvs[0].mod_revision, 2);
        let future = RangeRequest {
            revision: 3,
            ..get.clone()
        };
        assert_eq!(range(&pinned, &future).unwrap_err(), errors::future_rev());
        let fresh = range(&Pinned::new(&reader), &get).unwrap();
        assert_eq!(fresh.kvs[0].value.as_ref(), b"new");
        assert_eq!(fresh.header.unwrap().revision, 3);
    }
}
