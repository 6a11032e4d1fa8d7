//! The crate's error type.

/// Errors of the `net` crate that are not gRPC statuses (those are [`crate::Status`]).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A socket operation failed.
    #[error("net: i/o error: {0}")]
    Io(#[from] std::io::Error),
    /// The HTTP/2 layer failed (protocol error, GOAWAY, reset).
    #[error("net: http/2 error: {0}")]
    H2(#[from] h2::Error),
    /// An HTTP/1.1 request could not be parsed or exceeded a limit.
    #[error("net: bad http/1.1 request: {0}")]
    Http1(String),
}

impl From<Error> for std::io::Error {
    fn from(error: Error) -> std::io::Error {
        match error {
            Error::Io(e) => e,
            Error::H2(e) if e.is_io() => e
                .into_io()
                .unwrap_or_else(|| std::io::Error::other("h2 i/o error")),
            other => std::io::Error::other(other),
        }
    }
}

/// `Result` with the crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;
