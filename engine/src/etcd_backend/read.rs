//! Reading an etcd backend file (a snapshot, an etcd member's `member/snap/db`).

use std::io::Read;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use bbolt_rs::{BoltOptions, BucketApi, DbApi, TxApi, TxCheck, TxRef};
use sha2::{Digest, Sha256};

use super::{parse_revision_key, BUCKET_KEY, SHA256_TRAILER_BYTES};
use crate::error::{Error, Result};

/// What `etcdctl snapshot status` prints (etcd 3.4 `snapshot.Status`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackendStatus {
    /// CRC-32C over every bucket name, then its keys and values, buckets and keys in order.
    pub hash: u32,
    /// Main revision of the last key of the `key` bucket (0 when empty).
    pub revision: i64,
    /// Entries in all buckets.
    pub total_key: u64,
    /// The database's size in bytes (bbolt `tx.Size()`: pages in use × page size).
    pub total_size: u64,
}

/// One read-only transaction on a backend file; see [`BackendReader::open`].
pub struct BackendReader<'tx> {
    path: PathBuf,
    tx: TxRef<'tx>,
}

fn backend_err(path: &Path, reason: impl Into<String>) -> Error {
    Error::Backend {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

impl<'tx> BackendReader<'tx> {
    /// Opens `path` read-only and runs `f` in one read transaction. Errors: `Backend` when
    /// the file is missing or not a bbolt database (bbolt's panic on a damaged page is
    /// caught and reported as such), and whatever `f` returns.
    pub fn open<T>(path: &Path, f: impl FnOnce(&BackendReader<'_>) -> Result<T>) -> Result<T> {
        if !path.is_file() {
            return Err(backend_err(path, "no such file"));
        }
        let mut f = Some(f);
        let mut out = None;
        let run = || -> Result<()> {
            let db = BoltOptions::default()
                .open_ro(path)
                .map_err(|e| backend_err(path, format!("not a bbolt database: {e}")))?;
            db.view(|tx| {
                let reader = BackendReader {
                    path: path.to_path_buf(),
                    tx,
                };
                let f = f.take().expect("view runs its closure once");
                out = Some(f(&reader));
                Ok(())
            })
            .map_err(|e| backend_err(path, format!("cannot read: {e}")))
        };
        match catch_unwind(AssertUnwindSafe(run)) {
            Ok(r) => r?,
            Err(panic) => {
                let msg = panic
                    .downcast_ref::<String>()
                    .map(String::as_str)
                    .or_else(|| panic.downcast_ref::<&str>().copied())
                    .unwrap_or("a damaged page");
                return Err(backend_err(
                    path,
                    format!("not a valid bbolt database: {msg}"),
                ));
            }
        }
        out.expect("the closure ran")
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the root bucket `name` exists.
    pub fn has_bucket(&self, name: &[u8]) -> bool {
        self.tx.bucket(name).is_some()
    }

    /// The value of `key` in `bucket`; `None` when either is missing.
    pub fn get(&self, bucket: &[u8], key: &[u8]) -> Option<Vec<u8>> {
        self.tx.bucket(bucket)?.get(key).map(<[u8]>::to_vec)
    }

    /// Calls `f(key, value)` for every entry of `bucket` in key order (a missing bucket
    /// has none; nested buckets are skipped). Stops at `f`'s first error.
    pub fn for_each(
        &self,
        bucket: &[u8],
        mut f: impl FnMut(&[u8], &[u8]) -> Result<()>,
    ) -> Result<()> {
        let Some(b) = self.tx.bucket(bucket) else {
            return Ok(());
        };
        for (k, v) in b.iter_entries() {
            f(k, v)?;
        }
        Ok(())
    }

    /// bbolt's consistency check (`tx.Check`): every page reachable once, freelist and
    /// tree consistent. Errors: `Backend` "snapshot file integrity check failed. N errors
    /// found." with the errors, etcd's text.
    pub fn check(&self) -> Result<()> {
        let errors = self.tx.check();
        if errors.is_empty() {
            return Ok(());
        }
        Err(backend_err(
            &self.path,
            format!(
                "snapshot file integrity check failed. {} errors found.\n{}",
                errors.len(),
                errors.join("\n")
            ),
        ))
    }

    /// etcdctl's `snapshot status` (etcd 3.4 `clientv3/snapshot` `Status`): integrity
    /// check, then the hash, revision, key count and size of [`BackendStatus`].
    pub fn status(&self) -> Result<BackendStatus> {
        self.check()?;
        let names: Vec<Vec<u8>> = self.tx.iter_buckets().map(|(n, _)| n.to_vec()).collect();
        let mut hash = crc32c::crc32c(b"");
        let (mut revision, mut total_key) = (0, 0);
        for name in names {
            hash = crc32c::crc32c_append(hash, &name);
            let is_key = name == BUCKET_KEY;
            self.for_each(&name, |k, v| {
                hash = crc32c::crc32c_append(hash, k);
                hash = crc32c::crc32c_append(hash, v);
                if is_key {
                    revision = parse_revision_key(k).map_or(revision, |r| r.0);
                }
                total_key += 1;
                Ok(())
            })?;
        }
        Ok(BackendStatus {
            hash,
            revision,
            total_key,
            total_size: self.tx.size(),
        })
    }
}

/// Checks a snapshot file's SHA-256 trailer as `etcdctl snapshot restore` does (etcd 3.4
/// `v3Manager.saveDB`): a file whose size modulo 512 is 32 ends with the SHA-256 of the
/// bytes before it, which must match; a file without one is refused unless
/// `skip_hash_check`. Returns the length of the database part in bytes.
///
/// Errors: `Io`; `Backend` "expected sha256 [..], got [..]" (etcd's text, Go's byte-slice
/// notation) on a mismatch; `Backend` "snapshot missing hash but --skip-hash-check=false".
pub fn split_snapshot_file(path: &Path, skip_hash_check: bool) -> Result<u64> {
    let mut file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let size = file.metadata().map_err(|e| Error::io(path, e))?.len();
    let has_hash = size % 512 == SHA256_TRAILER_BYTES as u64;
    if !has_hash {
        if !skip_hash_check {
            return Err(backend_err(
                path,
                "snapshot missing hash but --skip-hash-check=false",
            ));
        }
        return Ok(size);
    }
    let db_len = size - SHA256_TRAILER_BYTES as u64;
    if skip_hash_check {
        return Ok(db_len);
    }
    let mut hasher = Sha256::new();
    let mut left = db_len;
    let mut buf = vec![0u8; 1 << 20];
    while left > 0 {
        let n = buf.len().min(left as usize);
        file.read_exact(&mut buf[..n])
            .map_err(|e| Error::io(path, e))?;
        hasher.update(&buf[..n]);
        left -= n as u64;
    }
    let mut trailer = [0u8; SHA256_TRAILER_BYTES];
    file.read_exact(&mut trailer)
        .map_err(|e| Error::io(path, e))?;
    let got = hasher.finalize();
    if got.as_slice() != trailer {
        let go = |b: &[u8]| {
            let parts: Vec<String> = b.iter().map(u8::to_string).collect();
            format!("[{}]", parts.join(" "))
        };
        return Err(backend_err(
            path,
            format!("expected sha256 {}, got {}", go(&trailer), go(&got)),
        ));
    }
    Ok(db_len)
}

#[cfg(test)]
mod tests {
    use super::super::*;
    use super::*;

    fn sample(path: &Path) -> u64 {
        let mut w = BackendWriter::create(path).unwrap();
        for rev in 2..1002i64 {
            let kv = StoredKeyValue {
                key: format!("k{rev:05}").into_bytes(),
                create_revision: rev,
                mod_revision: rev,
                version: 1,
                value: vec![b'v'; 100],
                lease: 0,
            };
            w.put(
                BUCKET_KEY,
                &revision_key(rev, 0, false),
                &prost::Message::encode_to_vec(&kv),
            )
            .unwrap();
        }
        w.put(BUCKET_META, META_CONSISTENT_INDEX, &7u64.to_be_bytes())
            .unwrap();
        w.finish().unwrap()
    }

    #[test]
    fn written_backend_reads_back_with_etcdctl_status_numbers() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let size = sample(&path);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), size);
        assert!(BackendWriter::create(&path).is_err(), "never written over");
        let status = BackendReader::open(&path, |r| {
            assert!(r.has_bucket(BUCKET_AUTH_ROLES));
            assert_eq!(
                r.get(BUCKET_META, META_CONSISTENT_INDEX),
                Some(7u64.to_be_bytes().to_vec())
            );
            let mut revs = Vec::new();
            r.for_each(BUCKET_KEY, |k, _| {
                revs.push(parse_revision_key(k).unwrap().0);
                Ok(())
            })?;
            assert_eq!(revs, (2..1002).collect::<Vec<_>>());
            r.status()
        })
        .unwrap();
        assert_eq!(status.revision, 1001);
        assert_eq!(status.total_key, 1001);
        assert_eq!(status.total_size, size);
    }

    #[test]
    fn trailer_is_checked_as_etcdctl_restore_does() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let size = sample(&path);
        assert!(split_snapshot_file(&path, false)
            .unwrap_err()
            .to_string()
            .contains("snapshot missing hash but --skip-hash-check=false"));
        assert_eq!(split_snapshot_file(&path, true).unwrap(), size);
        let mut bytes = std::fs::read(&path).unwrap();
        let sha = Sha256::digest(&bytes);
        bytes.extend_from_slice(&sha);
        std::fs::write(&path, &bytes).unwrap();
        assert_eq!(split_snapshot_file(&path, false).unwrap(), size);
        bytes[5000] ^= 1;
        std::fs::write(&path, &bytes).unwrap();
        let err = split_snapshot_file(&path, false).unwrap_err().to_string();
        assert!(err.contains("expected sha256 ["), "{err}");
    }

    #[test]
    fn garbage_is_refused_without_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        std::fs::write(&path, vec![7u8; 8192]).unwrap();
        let err = BackendReader::open(&path, |r| r.status()).unwrap_err();
        assert!(matches!(err, Error::Backend { .. }), "{err}");
        let missing = dir.path().join("missing");
        assert!(BackendReader::open(&missing, |r| r.status()).is_err());
        assert!(!missing.exists(), "reading never creates a file");
    }
}
