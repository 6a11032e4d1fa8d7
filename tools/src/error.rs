//! The one error type of the `tools` crate.

use std::path::PathBuf;

/// Everything that can go wrong in cairn-bench and cairnctl.
///
/// Bad command-line input is [`BenchError::InvalidArg`] (it names the flag and the
/// allowed range); failures talking to a server or managing a server process carry the
/// underlying cause as text.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// A flag value is outside its allowed range or malformed.
    #[error("invalid --{flag}: {reason}")]
    InvalidArg {
        /// The flag's long name, without the leading dashes.
        flag: &'static str,
        /// Why the value is rejected, including the allowed range.
        reason: String,
    },
    /// Connecting to an endpoint failed.
    #[error("connect to {endpoints}: {source}")]
    Connect {
        /// The endpoints that were tried, comma separated.
        endpoints: String,
        /// The client library's error (boxed: it is large).
        source: Box<etcd_client::Error>,
    },
    /// Every request of a run failed, or the warm-up request failed.
    #[error("request failed: {0}")]
    Request(String),
    /// `/proc/<pid>/stat` or `/proc/<pid>/status` could not be parsed.
    #[error("parse {what}: {reason}")]
    ProcParse {
        /// Which file or field (e.g. `/proc/<pid>/stat`).
        what: &'static str,
        /// What was wrong with it.
        reason: String,
    },
    /// Starting a server process failed or it never became healthy.
    #[error("server {name}: {reason}")]
    Server {
        /// The target's name in the comparison ("cairn", "etcd").
        name: String,
        /// What went wrong, with the tail of its log when there is one.
        reason: String,
    },
    /// A file-system or process operation failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was attempted ("read", "spawn", "create temp dir", ...).
        op: &'static str,
        /// The path involved.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// `cairnctl`: refused input, with etcdctl's text where it has one.
    #[error("{0}")]
    Refused(String),
    /// `cairnctl snapshot`: the snapshot file cannot be read or written as an etcd backend.
    #[error("{0}")]
    Backend(#[from] engine::Error),
}

/// Result alias of the `tools` crate.
pub type Result<T> = std::result::Result<T, BenchError>;

/// Builds a [`BenchError::InvalidArg`].
pub(crate) fn invalid(flag: &'static str, reason: impl Into<String>) -> BenchError {
    BenchError::InvalidArg {
        flag,
        reason: reason.into(),
    }
}
