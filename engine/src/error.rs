//! The engine's single error type.

use std::path::PathBuf;

/// Result alias used by every fallible engine call.
pub type Result<T> = std::result::Result<T, Error>;

/// Every error the engine returns. Messages of the MVCC errors are etcd's own
/// (etcd mvcc/kvstore.go), because clients match on the text.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An operating-system I/O call failed on `path`.
    #[error("io error on {}: {source}", path.display())]
    Io {
        /// File or directory the call was made on.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// Stored bytes failed verification (magic, version, length or CRC). `offset` is the
    /// byte offset inside `file` of the first bad byte range (record or header start).
    #[error("corruption in {} at offset {offset}: {reason}", file.display())]
    Corruption {
        /// File holding the bad bytes.
        file: PathBuf,
        /// Byte offset of the bad record or header inside `file`.
        offset: u64,
        /// What failed (e.g. "crc mismatch").
        reason: String,
    },
    /// The requested revision is at or below the compaction point (etcd `ErrCompacted`).
    #[error("mvcc: required revision has been compacted")]
    Compacted,
    /// The requested revision is above the current revision (etcd `ErrFutureRev`).
    #[error("mvcc: required revision is a future revision")]
    FutureRevision,
    /// A WAL record does not fit in one segment: `bytes` encoded bytes versus `limit`.
    #[error("record of {bytes} bytes exceeds the limit of {limit} bytes")]
    RecordTooLarge {
        /// Encoded size of the record, header and padding included.
        bytes: u64,
        /// Largest encoded record a segment can hold.
        limit: u64,
    },
    /// An option is out of its allowed range; the message names the option and the range.
    #[error("invalid option: {0}")]
    InvalidOptions(String),
    /// An etcd backend file (bbolt, `engine::etcd_backend`) that cannot be read or written:
    /// not a bbolt file, a failed integrity check, a missing bucket, a bad record.
    #[error("etcd backend {}: {reason}", path.display())]
    Backend {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

impl Error {
    /// The file or directory the error is about (`Io`, `Corruption`), for logs that name
    /// the file.
    pub fn path(&self) -> Option<&std::path::Path> {
        match self {
            Error::Io { path, .. } => Some(path),
            Error::Corruption { file, .. } => Some(file),
            Error::Backend { path, .. } => Some(path),
            _ => None,
        }
    }

    /// Wraps an `io::Error` with the path it happened on.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Error {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    /// Builds a `Corruption` error.
    pub(crate) fn corruption(
        file: impl Into<PathBuf>,
        offset: u64,
        reason: impl Into<String>,
    ) -> Error {
        Error::Corruption {
            file: file.into(),
            offset,
            reason: reason.into(),
        }
    }
}
