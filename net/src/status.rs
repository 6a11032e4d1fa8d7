//! gRPC status codes and statuses, and the percent-encoding of `grpc-message`.
//!
//! Codes as grpc `doc/statuscodes.md` (grpc-go `codes/codes.go`); the message encoding as
//! grpc `doc/PROTOCOL-HTTP2.md` ("Status-Message ... Percent-Encoded").

use percent_encoding::{percent_decode_str, AsciiSet, CONTROLS};

/// gRPC status codes (grpc/codes): `Ok` = 0 .. `Unauthenticated` = 16.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Code {
    /// 0: success.
    Ok,
    /// 1: the caller cancelled the call.
    Cancelled,
    /// 2: unknown error.
    Unknown,
    /// 3: the client sent an invalid argument.
    InvalidArgument,
    /// 4: the deadline passed before the call completed.
    DeadlineExceeded,
    /// 5: something requested was not found.
    NotFound,
    /// 6: something the client tried to create already exists.
    AlreadyExists,
    /// 7: the caller may not run this call.
    PermissionDenied,
    /// 8: a resource (quota, message size, ...) is exhausted.
    ResourceExhausted,
    /// 9: the system is not in the state the call needs.
    FailedPrecondition,
    /// 10: the call was aborted (concurrency conflict).
    Aborted,
    /// 11: out of the valid range.
    OutOfRange,
    /// 12: not implemented or not supported.
    Unimplemented,
    /// 13: internal error.
    Internal,
    /// 14: the service is unavailable right now; retrying may help.
    Unavailable,
    /// 15: unrecoverable data loss.
    DataLoss,
    /// 16: the call has no valid authentication credentials.
    Unauthenticated,
}

const ALL_CODES: [Code; 17] = [
    Code::Ok,
    Code::Cancelled,
    Code::Unknown,
    Code::InvalidArgument,
    Code::DeadlineExceeded,
    Code::NotFound,
    Code::AlreadyExists,
    Code::PermissionDenied,
    Code::ResourceExhausted,
    Code::FailedPrecondition,
    Code::Aborted,
    Code::OutOfRange,
    Code::Unimplemented,
    Code::Internal,
    Code::Unavailable,
    Code::DataLoss,
    Code::Unauthenticated,
];

impl Code {
    /// The numeric value sent in `grpc-status` (0..=16).
    pub fn as_u32(self) -> u32 {
        self as u32
    }

    /// The code for a numeric `grpc-status`; values above 16 map to `Unknown`, as grpc-go does.
    pub fn from_u32(value: u32) -> Code {
        ALL_CODES
            .get(value as usize)
            .copied()
            .unwrap_or(Code::Unknown)
    }

    /// The `grpc-status` header value of this code, e.g. `"13"` for `Internal`.
    pub(crate) fn header_value(self) -> http::HeaderValue {
        http::HeaderValue::from(self.as_u32())
    }
}

/// A gRPC call's outcome: a code and a human-readable message (sent percent-encoded in
/// `grpc-message`; etcd clients match on the exact text, e.g. "etcdserver: key not found").
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Status {
    /// The status code.
    pub code: Code,
    /// The message, unencoded.
    pub message: String,
}

impl Status {
    /// A status with `code` and `message`.
    pub fn new(code: Code, message: impl Into<String>) -> Status {
        Status {
            code,
            message: message.into(),
        }
    }

    /// The status grpc-go gives when a call's deadline passes: DEADLINE_EXCEEDED
    /// "context deadline exceeded" (Go's `context.DeadlineExceeded`).
    pub fn deadline_exceeded() -> Status {
        Status::new(Code::DeadlineExceeded, "context deadline exceeded")
    }

    /// The status grpc-go gives for a call whose client went away: CANCELLED
    /// "context canceled" (Go's `context.Canceled`).
    pub fn cancelled() -> Status {
        Status::new(Code::Cancelled, "context canceled")
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "rpc error: code = {:?} desc = {}",
            self.code, self.message
        )
    }
}

impl std::error::Error for Status {}

/// Bytes that `grpc-message` carries as-is: printable ASCII 0x20..=0x7E except `%`.
/// Everything else (controls, `%`, non-ASCII UTF-8 bytes) is sent as `%XX`.
const GRPC_MESSAGE_ESCAPES: &AsciiSet = &CONTROLS.add(b'%');

/// Percent-encodes a status message for the `grpc-message` header (grpc PROTOCOL-HTTP2.md):
/// bytes outside 0x20..=0x7E and `%` itself become `%XX` (upper-case hex).
/// Example: `"50% ok\n"` → `"50%25 ok%0A"`.
pub fn encode_grpc_message(message: &str) -> String {
    // CONTROLS covers 0x00..=0x1F and 0x7F; percent_encoding always escapes non-ASCII bytes.
    percent_encoding::utf8_percent_encode(message, GRPC_MESSAGE_ESCAPES).to_string()
}

/// Decodes a `grpc-message` header value: `%XX` sequences become bytes; an invalid sequence
/// is kept literally (as grpc-go does), and invalid UTF-8 is replaced with U+FFFD.
pub fn decode_grpc_message(value: &str) -> String {
    percent_decode_str(value).decode_utf8_lossy().into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_numbers_match_grpc() {
        assert_eq!(Code::Ok.as_u32(), 0);
        assert_eq!(Code::DeadlineExceeded.as_u32(), 4);
        assert_eq!(Code::ResourceExhausted.as_u32(), 8);
        assert_eq!(Code::Unimplemented.as_u32(), 12);
        assert_eq!(Code::Internal.as_u32(), 13);
        assert_eq!(Code::Unauthenticated.as_u32(), 16);
        for (i, code) in ALL_CODES.iter().enumerate() {
            assert_eq!(Code::from_u32(i as u32), *code);
        }
        assert_eq!(Code::from_u32(17), Code::Unknown);
        assert_eq!(Code::Unavailable.header_value(), "14");
    }

    #[test]
    fn grpc_message_percent_encoding() {
        assert_eq!(
            encode_grpc_message("etcdserver: key not found"),
            "etcdserver: key not found"
        );
        assert_eq!(encode_grpc_message("50% ok\n"), "50%25 ok%0A");
        assert_eq!(encode_grpc_message("a\tb\x7f"), "a%09b%7F");
        assert_eq!(encode_grpc_message("é"), "%C3%A9");
        assert_eq!(encode_grpc_message("~ \"quoted\" {}"), "~ \"quoted\" {}");
        assert_eq!(encode_grpc_message(""), "");
    }

    #[test]
    fn grpc_message_percent_decoding() {
        assert_eq!(decode_grpc_message("50%25 ok%0A"), "50% ok\n");
        assert_eq!(decode_grpc_message("%C3%A9"), "é");
        assert_eq!(decode_grpc_message("100%"), "100%");
        assert_eq!(decode_grpc_message("%zz"), "%zz");
        let original = "mvcc: required revision has been compacted\r\n%";
        assert_eq!(
            decode_grpc_message(&encode_grpc_message(original)),
            original
        );
    }
}
