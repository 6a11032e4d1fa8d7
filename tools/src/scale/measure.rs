//! Sizes the benchmark reports: disk use of a data dir, encoded sizes of a Range response.

use super::*;

/// Disk use of a directory tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DiskUse {
    /// 512-byte blocks allocated to every file and directory, in bytes (`du -s`).
    pub allocated_bytes: u64,
    /// Sum of the sizes of every file and directory (`du -s --apparent-size`).
    pub apparent_bytes: u64,
}

/// Disk use of everything under `dir`, `dir` included, each inode counted once (as
/// `du`). Symbolic links are not followed. Entries that vanish during the walk are
/// skipped (the server may delete files while it runs).
///
/// Errors: [`BenchError::Io`] naming a directory that cannot be read.
pub fn disk_use(dir: &Path) -> Result<DiskUse> {
    let mut total = DiskUse {
        allocated_bytes: 0,
        apparent_bytes: 0,
    };
    let mut seen = HashSet::new();
    let mut pending = vec![dir.to_path_buf()];
    let io = |op: &'static str, path: &Path| {
        let path = path.to_path_buf();
        move |source| BenchError::Io { op, path, source }
    };
    // Bounded: every inode is visited once (the `seen` set) and the tree is finite.
    while let Some(path) = pending.pop() {
        let meta = match std::fs::symlink_metadata(&path) {
            Ok(meta) => meta,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(io("stat", &path)(e)),
        };
        if !seen.insert((meta.dev(), meta.ino())) {
            continue;
        }
        total.allocated_bytes += meta.blocks() * 512;
        total.apparent_bytes += meta.len();
        if meta.is_dir() {
            for entry in std::fs::read_dir(&path).map_err(io("read dir", &path))? {
                pending.push(entry.map_err(io("read dir", &path))?.path());
            }
        }
    }
    Ok(total)
}

/// Length of `value` as a protobuf varint, bytes.
pub fn varint_bytes(value: u64) -> u64 {
    u64::from((64 - (value | 1).leading_zeros()).div_ceil(7))
}

/// Bytes of an integer field (tag < 16) holding `value`; 0 when `value` is 0 (proto3
/// leaves defaults out). Negative numbers take 10 bytes, as protobuf int64.
pub(super) fn int_field_bytes(value: i64) -> u64 {
    if value == 0 {
        0
    } else {
        1 + varint_bytes(value as u64)
    }
}

/// Bytes of a length-delimited field (tag < 16) of `len` bytes; 0 when empty.
fn bytes_field_bytes(len: u64) -> u64 {
    if len == 0 {
        0
    } else {
        1 + varint_bytes(len) + len
    }
}

/// Encoded size of an etcd `mvccpb.KeyValue` with these fields, bytes.
pub fn key_value_bytes(
    key_len: u64,
    create_revision: i64,
    mod_revision: i64,
    version: i64,
    value_len: u64,
    lease: i64,
) -> u64 {
    bytes_field_bytes(key_len)
        + int_field_bytes(create_revision)
        + int_field_bytes(mod_revision)
        + int_field_bytes(version)
        + bytes_field_bytes(value_len)
        + int_field_bytes(lease)
}

/// Encoded size of the `etcdserverpb.RangeResponse` behind `response`, bytes (header,
/// kvs, more, count), as the server put it on the wire before gRPC framing.
pub fn range_response_bytes(response: &GetResponse) -> u64 {
    let header = response.header().map_or(0, |h| {
        let len = int_field_bytes(h.cluster_id() as i64)
            + int_field_bytes(h.member_id() as i64)
            + int_field_bytes(h.revision())
            + int_field_bytes(h.raft_term() as i64);
        // An empty message is still sent when present.
        1 + varint_bytes(len) + len
    });
    let kvs: u64 = response
        .kvs()
        .iter()
        .map(|kv| {
            let len = key_value_bytes(
                kv.key().len() as u64,
                kv.create_revision(),
                kv.mod_revision(),
                kv.version(),
                kv.value().len() as u64,
                kv.lease(),
            );
            1 + varint_bytes(len) + len
        })
        .sum();
    let more = if response.more() { 2 } else { 0 };
    header + kvs + more + int_field_bytes(response.count())
}
