//! Range responses encoded while the store is scanned (issue 8, "large responses without
//! blow-up").
//!
//! etcd's Range result is the key index's order whenever it is not sorted by anything
//! but the key ascending and not filtered by revisions (`applierV3backend.Range`). Such a
//! Range is served here straight from a [`ReadView`]: one pass counts the keys and sizes
//! their records (no value read), the response buffer is reserved once, and a second
//! pass encodes each `mvccpb.KeyValue` into it from the value segment's bytes — no
//! `KeyValue` copies, no `RangeResponse` message, no re-encoding. Both passes go
//! [`engine::SCAN_CHUNK_ENTRIES`] keys at a time and yield to the executor between
//! chunks, so a full-prefix Range on the raft core's thread neither stalls its core
//! nor, through the index lock, the writer. Sorted or filtered ranges keep the general
//! path (`kv::range`).
//!
//! The encoded response is bounded by grpc-go's send limit (etcd: `math.MaxInt32`,
//! [`MAX_SEND_MESSAGE_BYTES`]); beyond it the call fails with grpc-go's
//! RESOURCE_EXHAUSTED "grpc: trying to send message larger than max (N vs. M)" — the
//! bytes past the limit are measured, never buffered.

use bytes::{BufMut, Bytes, BytesMut};
use engine::{KvRef, ReadView};
use net::pb::etcdserverpb::range_request::{SortOrder, SortTarget};
use net::pb::etcdserverpb::{RangeRequest, ResponseHeader};
use net::{Code, Status};
use prost::encoding::{encode_key, encode_varint, encoded_len_varint, WireType};
use prost::Message;

use crate::errors;

/// The largest response message a client call may send, bytes: grpc-go's
/// `MaxSendMsgSize`, which etcd sets to `math.MaxInt32` (v3rpc/grpc.go `maxSendBytes`).
pub const MAX_SEND_MESSAGE_BYTES: usize = i32::MAX as usize;

/// Bytes a `mvccpb.KeyValue` (and its field tag and length) may take beyond its value
/// record's, for the reservation: tag and length prefixes of the kv, key and value (at
/// most 1 + 5 each) and three revision varints longer than their 8-byte slots.
const KV_OVERHEAD_BYTES: u64 = 48;

/// True when etcd's result for `r` is the index order (see the module doc).
pub fn streams(r: &RangeRequest) -> bool {
    let filtered = r.min_mod_revision != 0
        || r.max_mod_revision != 0
        || r.min_create_revision != 0
        || r.max_create_revision != 0;
    let by_key = r.sort_target() == SortTarget::Key;
    let order = r.sort_order();
    !filtered && by_key && matches!(order, SortOrder::None | SortOrder::Ascend)
}

fn int64_len(tag: u32, v: i64) -> usize {
    if v == 0 {
        0
    } else {
        1 + encoded_len_varint(v as u64) + usize::from(tag > 15)
    }
}

fn bytes_len(b: &[u8]) -> usize {
    if b.is_empty() {
        0
    } else {
        1 + encoded_len_varint(b.len() as u64) + b.len()
    }
}

/// Encoded length of `kv` as a `mvccpb.KeyValue` message body (prost's encoding: fields
/// in number order, zero values omitted).
fn kv_body_len(kv: &KvRef<'_>) -> usize {
    bytes_len(kv.key)
        + int64_len(2, kv.create_revision)
        + int64_len(3, kv.mod_revision)
        + int64_len(4, kv.version)
        + bytes_len(kv.value)
        + int64_len(6, kv.lease)
}

/// Encoded length of `kv` as field 2 (`kvs`) of a RangeResponse, tag and length included.
fn kv_field_len(kv: &KvRef<'_>) -> usize {
    let body = kv_body_len(kv);
    1 + encoded_len_varint(body as u64) + body
}

fn put_bytes(buf: &mut BytesMut, tag: u32, b: &[u8]) {
    if !b.is_empty() {
        encode_key(tag, WireType::LengthDelimited, buf);
        encode_varint(b.len() as u64, buf);
        buf.put_slice(b);
    }
}

fn put_int64(buf: &mut BytesMut, tag: u32, v: i64) {
    if v != 0 {
        encode_key(tag, WireType::Varint, buf);
        encode_varint(v as u64, buf);
    }
}

/// Appends `kv` as field 2 of a RangeResponse.
fn put_kv(buf: &mut BytesMut, kv: &KvRef<'_>) {
    encode_key(2, WireType::LengthDelimited, buf);
    encode_varint(kv_body_len(kv) as u64, buf);
    put_bytes(buf, 1, kv.key);
    put_int64(buf, 2, kv.create_revision);
    put_int64(buf, 3, kv.mod_revision);
    put_int64(buf, 4, kv.version);
    put_bytes(buf, 5, kv.value);
    put_int64(buf, 6, kv.lease);
}

/// Gives the executor a chance to run other tasks (the raft core on core 0).
async fn yield_between_chunks() {
    glommio::executor().yield_if_needed().await;
}

/// Serves `r` (which [`streams`]) from `view` as an encoded RangeResponse with `header`
/// (its revision replaced by the view's current revision, as etcd's `rr.Rev`).
/// `max_bytes` is the send limit. Errors: etcd's for a corrupt record; RESOURCE_EXHAUSTED
/// when the response exceeds `max_bytes`.
pub async fn encode_range(
    view: &ReadView,
    r: &RangeRequest,
    mut header: ResponseHeader,
    max_bytes: usize,
) -> Result<Bytes, Status> {
    let engine_err = |e: engine::Error| errors::from_engine(&e);
    let limit = if r.limit > 0 {
        r.limit as u64
    } else {
        u64::MAX
    };
    // Pass 1: the count (all keys, as etcd counts past the limit) and the size of the
    // records that will be encoded.
    let (mut count, mut reserve) = (0u64, 0u64);
    let mut after: Option<Bytes> = None;
    loop {
        let chunk = view
            .count_chunk(&r.key, &r.range_end, after.as_deref())
            .map_err(engine_err)?;
        if !r.count_only && count < limit {
            let extra = if r.keys_only { 0 } else { chunk.record_bytes };
            reserve += extra + chunk.keys * KV_OVERHEAD_BYTES;
        }
        count += chunk.keys;
        match chunk.resume {
            Some(resume) => after = Some(resume),
            None => break,
        }
        yield_between_chunks().await;
    }
    header.revision = view.current_revision();
    let header_len = header.encoded_len();
    let reserve = (reserve as usize + header_len + 32).min(max_bytes.saturating_add(1));
    let mut buf = BytesMut::with_capacity(reserve);
    prost::encoding::message::encode(1, &header, &mut buf);
    // Pass 2: the kvs, up to the limit. Past the send limit only lengths are added up.
    let mut measured_past = 0usize;
    if !r.count_only && count > 0 {
        let mut emitted = 0u64;
        let mut after: Option<Bytes> = None;
        loop {
            let resume = view
                .read_chunk(&r.key, &r.range_end, after.as_deref(), r.keys_only, |kv| {
                    if emitted == limit {
                        return;
                    }
                    emitted += 1;
                    if measured_past > 0 || buf.len() + kv_field_len(&kv) > max_bytes {
                        measured_past += kv_field_len(&kv);
                    } else {
                        put_kv(&mut buf, &kv);
                    }
                })
                .map_err(engine_err)?;
            match resume {
                Some(resume) if emitted < limit => after = Some(resume),
                _ => break,
            }
            yield_between_chunks().await;
        }
    }
    // etcd sets `more` when it truncated the kvs: never for count_only.
    if !r.count_only && r.limit > 0 && count > r.limit as u64 {
        encode_key(3, WireType::Varint, &mut buf);
        encode_varint(1, &mut buf);
    }
    put_int64(&mut buf, 4, count as i64);
    let total = buf.len() + measured_past;
    if total > max_bytes {
        return Err(Status::new(
            Code::ResourceExhausted,
            format!("grpc: trying to send message larger than max ({total} vs. {max_bytes})"),
        ));
    }
    Ok(buf.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;
    use engine::{Mvcc, MvccOptions};
    use net::pb::etcdserverpb::RangeResponse;

    fn store(n: usize) -> (tempfile::TempDir, Mvcc) {
        let dir = tempfile::tempdir().unwrap();
        let mut m = Mvcc::open(dir.path(), MvccOptions::default()).unwrap();
        for i in 0..n {
            let mut t = m.write();
            let value = vec![b'v'; i % 300];
            t.put(format!("k{i:05}").as_bytes(), &value, (i % 3) as i64);
            t.end();
        }
        let mut t = m.write();
        t.delete_range(b"k00010", b"k00020");
        t.end();
        (dir, m)
    }

    fn run<T, F>(f: impl FnOnce() -> F + Send + 'static) -> T
    where
        T: Send + 'static,
        F: std::future::Future<Output = T> + 'static,
    {
        glommio::LocalExecutorBuilder::default()
            .spawn(f)
            .unwrap()
            .join()
            .unwrap()
    }

    /// The streamed bytes decode to exactly what the general path answers, for limits,
    /// keys-only, count-only and historical revisions, over more keys than one chunk.
    #[test]
    fn streamed_range_equals_the_general_path() {
        let (_dir, m) = store(2 * engine::SCAN_CHUNK_ENTRIES + 50);
        let reader = m.reader();
        let cases = [
            RangeRequest {
                key: b"k".to_vec().into(),
                range_end: b"l".to_vec().into(),
                ..Default::default()
            },
            RangeRequest {
                key: b"\0".to_vec().into(),
                range_end: b"\0".to_vec().into(),
                limit: 1500,
                ..Default::default()
            },
            RangeRequest {
                key: b"k00005".to_vec().into(),
                range_end: b"k00030".to_vec().into(),
                keys_only: true,
                ..Default::default()
            },
            RangeRequest {
                key: b"k".to_vec().into(),
                range_end: b"l".to_vec().into(),
                count_only: true,
                ..Default::default()
            },
            RangeRequest {
                key: b"k".to_vec().into(),
                range_end: b"l".to_vec().into(),
                count_only: true,
                limit: 1,
                ..Default::default()
            },
            RangeRequest {
                key: b"k".to_vec().into(),
                range_end: b"l".to_vec().into(),
                revision: 500,
                limit: 3,
                sort_order: SortOrder::Ascend as i32,
                ..Default::default()
            },
            RangeRequest {
                key: b"k00001".to_vec().into(),
                ..Default::default()
            },
        ];
        for r in cases {
            assert!(streams(&r));
            let want = crate::kv::range(&crate::kv::Pinned::new(&reader), &r).unwrap();
            let reader = reader.clone();
            let r2 = r.clone();
            let got = run(move || async move {
                let view = reader.view(r2.revision).unwrap();
                encode_range(
                    &view,
                    &r2,
                    ResponseHeader::default(),
                    MAX_SEND_MESSAGE_BYTES,
                )
                .await
                .unwrap()
            });
            assert_eq!(RangeResponse::decode(got).unwrap(), want, "{r:?}");
        }
    }

    /// A response over the send limit is grpc-go's RESOURCE_EXHAUSTED with the whole size.
    #[test]
    fn response_over_the_send_limit_is_refused_with_its_size() {
        let (_dir, m) = store(3000);
        let reader = m.reader();
        let r = RangeRequest {
            key: b"\0".to_vec().into(),
            range_end: b"\0".to_vec().into(),
            ..Default::default()
        };
        let full = crate::kv::range(&crate::kv::Pinned::new(&reader), &r).unwrap();
        let mut want = full.clone();
        want.header = Some(ResponseHeader {
            revision: full.header.as_ref().unwrap().revision,
            ..Default::default()
        });
        let size = want.encoded_len();
        let status = run(move || async move {
            let view = reader.view(0).unwrap();
            encode_range(&view, &r, ResponseHeader::default(), 100_000)
                .await
                .unwrap_err()
        });
        assert_eq!(status.code, Code::ResourceExhausted);
        assert_eq!(
            status.message,
            format!("grpc: trying to send message larger than max ({size} vs. 100000)")
        );
    }
}
