//! gRPC message framing ("Length-Prefixed-Message", grpc doc/PROTOCOL-HTTP2.md):
//!
//! ```text
//! +------------------+-------------------------------+---------------------+
//! | compressed: u8   | length: u32, big-endian       | message: length B   |
//! +------------------+-------------------------------+---------------------+
//! ```
//!
//! HTTP/2 DATA frames do not align with messages: one frame may hold many messages, a part
//! of one, or a message's tail and the next one's head. [`MessageDecoder`] is a small state
//! machine over the received chunks that yields whole messages without copying when a
//! message lies within one chunk.

use std::collections::VecDeque;

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::status::{Code, Status};

/// Bytes of the prefix before every message: 1 flag byte + 4 length bytes.
pub const MESSAGE_HEADER_BYTES: usize = 5;

/// The 5-byte prefix of an uncompressed message of `len` bytes.
///
/// Panics if `len` does not fit the 32-bit length field (a programmer error: send limits
/// are far below 4 GiB).
pub fn encode_message_header(len: usize) -> [u8; MESSAGE_HEADER_BYTES] {
    let len = u32::try_from(len).expect("gRPC message longer than u32::MAX bytes");
    let be = len.to_be_bytes();
    [0, be[0], be[1], be[2], be[3]]
}

/// Prefix + message in one buffer (one copy of `message`).
pub fn encode_message(message: &[u8]) -> Bytes {
    let mut buf = BytesMut::with_capacity(MESSAGE_HEADER_BYTES + message.len());
    buf.put_slice(&encode_message_header(message.len()));
    buf.put_slice(message);
    buf.freeze()
}

/// What the decoder is waiting for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// The 5-byte prefix of the next message.
    Header,
    /// The body of a message of `len` bytes whose prefix was consumed.
    Body { len: usize },
}

/// Decodes length-prefixed gRPC messages from arbitrarily split chunks.
///
/// Errors (as grpc-go `rpc_util.go` `recvMsg`/`checkRecvPayload`, the receiver has no
/// decompressor configured and does not announce `grpc-encoding`):
/// - a message longer than `max_message_bytes` → RESOURCE_EXHAUSTED
///   "grpc: received message larger than max (N vs. M)", reported as soon as the prefix
///   arrived;
/// - the compressed flag set → INTERNAL "grpc: compressed flag set with identity or empty
///   encoding" (with an unknown `grpc-encoding`, UNIMPLEMENTED is given before any data: see
///   the server);
/// - a flag byte other than 0 or 1 → INTERNAL.
///
/// After an error the decoder yields that error again on every call.
#[derive(Debug)]
pub struct MessageDecoder {
    chunks: VecDeque<Bytes>,
    buffered_bytes: usize,
    state: State,
    max_message_bytes: usize,
    failed: Option<Status>,
}

impl MessageDecoder {
    /// A decoder that accepts messages up to `max_message_bytes` long.
    pub fn new(max_message_bytes: usize) -> MessageDecoder {
        MessageDecoder {
            chunks: VecDeque::new(),
            buffered_bytes: 0,
            state: State::Header,
            max_message_bytes,
            failed: None,
        }
    }

    /// Changes the largest message accepted, for messages whose prefix is decoded from now
    /// on (a stream whose messages differ in kind, e.g. a snapshot's meta and chunks).
    pub fn set_max_message_bytes(&mut self, max_message_bytes: usize) {
        self.max_message_bytes = max_message_bytes;
    }

    /// Adds received bytes (one DATA frame's payload, or any part of the stream).
    pub fn push(&mut self, chunk: Bytes) {
        if chunk.is_empty() {
            return;
        }
        self.buffered_bytes += chunk.len();
        self.chunks.push_back(chunk);
    }

    /// Bytes received but not yet returned as messages (prefixes of pending messages excluded
    /// once consumed).
    pub fn buffered_bytes(&self) -> usize {
        self.buffered_bytes
    }

    /// True when no partial message is pending: the stream may end here cleanly.
    pub fn is_idle(&self) -> bool {
        self.state == State::Header && self.buffered_bytes == 0
    }

    /// The next whole message, `Ok(None)` if more bytes are needed, or the framing error.
    pub fn next_message(&mut self) -> Result<Option<Bytes>, Status> {
        if let Some(status) = &self.failed {
            return Err(status.clone());
        }
        if self.state == State::Header {
            if self.buffered_bytes < MESSAGE_HEADER_BYTES {
                return Ok(None);
            }
            let mut header = [0u8; MESSAGE_HEADER_BYTES];
            self.copy_out(&mut header);
            let len = u32::from_be_bytes([header[1], header[2], header[3], header[4]]) as usize;
            if let Err(status) = self.check_header(header[0], len) {
                self.failed = Some(status.clone());
                return Err(status);
            }
            self.state = State::Body { len };
        }
        let State::Body { len } = self.state else {
            unreachable!("decoder state is Body after the header was read");
        };
        if self.buffered_bytes < len {
            return Ok(None);
        }
        self.state = State::Header;
        Ok(Some(self.take(len)))
    }

    fn check_header(&self, flag: u8, len: usize) -> Result<(), Status> {
        if len > self.max_message_bytes {
            return Err(Status::new(
                Code::ResourceExhausted,
                format!(
                    "grpc: received message larger than max ({} vs. {})",
                    len, self.max_message_bytes
                ),
            ));
        }
        match flag {
            0 => Ok(()),
            1 => Err(Status::new(
                Code::Internal,
                "grpc: compressed flag set with identity or empty encoding",
            )),
            other => Err(Status::new(
                Code::Internal,
                format!("grpc: received unexpected payload format {other}"),
            )),
        }
    }

    /// Consumes exactly `out.len()` buffered bytes into `out` (caller checked availability).
    fn copy_out(&mut self, out: &mut [u8]) {
        let mut filled = 0;
        while filled < out.len() {
            let front = self.chunks.front_mut().expect("enough bytes were buffered");
            let n = front.len().min(out.len() - filled);
            out[filled..filled + n].copy_from_slice(&front[..n]);
            front.advance(n);
            filled += n;
            if front.is_empty() {
                self.chunks.pop_front();
            }
        }
        self.buffered_bytes -= out.len();
    }

    /// Consumes `len` buffered bytes (caller checked availability); zero-copy when they lie in
    /// the first chunk.
    fn take(&mut self, len: usize) -> Bytes {
        self.buffered_bytes -= len;
        if len == 0 {
            return Bytes::new();
        }
        let front = self.chunks.front_mut().expect("enough bytes were buffered");
        if front.len() >= len {
            let message = front.split_to(len);
            if front.is_empty() {
                self.chunks.pop_front();
            }
            return message;
        }
        let mut message = BytesMut::with_capacity(len);
        while message.len() < len {
            let front = self.chunks.front_mut().expect("enough bytes were buffered");
            let n = front.len().min(len - message.len());
            message.put_slice(&front[..n]);
            front.advance(n);
            if front.is_empty() {
                self.chunks.pop_front();
            }
        }
        message.freeze()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(message: &[u8]) -> Vec<u8> {
        encode_message(message).to_vec()
    }

    fn drain(decoder: &mut MessageDecoder) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        while let Some(message) = decoder.next_message().unwrap() {
            out.push(message.to_vec());
        }
        out
    }

    #[test]
    fn header_layout() {
        assert_eq!(encode_message_header(0), [0, 0, 0, 0, 0]);
        assert_eq!(encode_message_header(5), [0, 0, 0, 0, 5]);
        assert_eq!(encode_message_header(0x0102_0304), [0, 1, 2, 3, 4]);
        assert_eq!(&encode_message(b"hi")[..], &[0, 0, 0, 0, 2, b'h', b'i']);
    }

    #[test]
    fn one_message_in_one_chunk_is_zero_copy() {
        let mut decoder = MessageDecoder::new(1024);
        let chunk = Bytes::from(frame(b"hello"));
        let body_ptr = chunk[MESSAGE_HEADER_BYTES..].as_ptr();
        decoder.push(chunk);
        let message = decoder.next_message().unwrap().unwrap();
        assert_eq!(&message[..], b"hello");
        assert_eq!(message.as_ptr(), body_ptr);
        assert_eq!(decoder.next_message().unwrap(), None);
        assert!(decoder.is_idle());
    }

    #[test]
    fn many_messages_in_one_chunk() {
        let mut wire = Vec::new();
        wire.extend(frame(b"a"));
        wire.extend(frame(b""));
        wire.extend(frame(b"bcd"));
        wire.extend(frame(&[7u8; 300]));
        let mut decoder = MessageDecoder::new(1024);
        decoder.push(Bytes::from(wire));
        let got = drain(&mut decoder);
        assert_eq!(
            got,
            vec![b"a".to_vec(), vec![], b"bcd".to_vec(), vec![7u8; 300]]
        );
        assert!(decoder.is_idle());
    }

    #[test]
    fn every_split_point_of_two_messages() {
        let mut wire = Vec::new();
        wire.extend(frame(b"first message"));
        wire.extend(frame(b"second"));
        for cut in 0..=wire.len() {
            let mut decoder = MessageDecoder::new(64);
            decoder.push(Bytes::copy_from_slice(&wire[..cut]));
            let mut got = drain(&mut decoder);
            decoder.push(Bytes::copy_from_slice(&wire[cut..]));
            got.extend(drain(&mut decoder));
            assert_eq!(
                got,
                vec![b"first message".to_vec(), b"second".to_vec()],
                "cut {cut}"
            );
            assert!(decoder.is_idle());
        }
    }

    #[test]
    fn byte_by_byte() {
        let mut wire = frame(b"xyz");
        wire.extend(frame(b""));
        let mut decoder = MessageDecoder::new(64);
        let mut got = Vec::new();
        for (i, byte) in wire.iter().enumerate() {
            decoder.push(Bytes::copy_from_slice(&[*byte]));
            if i < 7 {
                assert!(!decoder.is_idle());
            }
            got.extend(drain(&mut decoder));
        }
        assert_eq!(got, vec![b"xyz".to_vec(), vec![]]);
        assert!(decoder.is_idle());
    }

    #[test]
    fn zero_length_message() {
        let mut decoder = MessageDecoder::new(0);
        decoder.push(Bytes::from_static(&[0, 0, 0, 0, 0]));
        assert_eq!(decoder.next_message().unwrap(), Some(Bytes::new()));
        assert_eq!(decoder.next_message().unwrap(), None);
    }

    #[test]
    fn partial_message_is_not_idle() {
        let mut decoder = MessageDecoder::new(64);
        decoder.push(Bytes::from_static(&[0, 0, 0, 0, 3, b'a']));
        assert_eq!(decoder.next_message().unwrap(), None);
        assert!(!decoder.is_idle());
        assert_eq!(decoder.buffered_bytes(), 1);
    }

    #[test]
    fn oversize_is_reported_at_the_header() {
        let mut decoder = MessageDecoder::new(10);
        decoder.push(Bytes::from_static(&[0, 0, 0, 0, 11]));
        let err = decoder.next_message().unwrap_err();
        assert_eq!(err.code, Code::ResourceExhausted);
        assert_eq!(
            err.message,
            "grpc: received message larger than max (11 vs. 10)"
        );
        assert_eq!(decoder.next_message().unwrap_err(), err);
        let mut exact = MessageDecoder::new(10);
        exact.push(encode_message(&[1u8; 10]));
        assert_eq!(exact.next_message().unwrap().unwrap().len(), 10);
    }

    #[test]
    fn compressed_flag_is_rejected() {
        let mut decoder = MessageDecoder::new(10);
        decoder.push(Bytes::from_static(&[1, 0, 0, 0, 1, 9]));
        let err = decoder.next_message().unwrap_err();
        assert_eq!(err.code, Code::Internal);
        assert_eq!(
            err.message,
            "grpc: compressed flag set with identity or empty encoding"
        );
        let mut bad_flag = MessageDecoder::new(10);
        bad_flag.push(Bytes::from_static(&[2, 0, 0, 0, 0]));
        assert_eq!(
            bad_flag.next_message().unwrap_err(),
            Status::new(Code::Internal, "grpc: received unexpected payload format 2")
        );
    }
}
