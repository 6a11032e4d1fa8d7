//! gRPC length-prefixed message framing (`net::MessageDecoder`) and its receive limit.
//!
//! Input: `limit selector u8 | split seed u8 | stream bytes`. The stream is pushed in
//! chunks whose sizes follow the split seed, draining messages after every push, and
//! compared with a whole-buffer reference parse of the same bytes: the same messages in
//! the same order, then the same error (code and message) and nothing after it.

use bytes::Bytes;
use net::{encode_message, Code, MessageDecoder, Status, MESSAGE_HEADER_BYTES};

use crate::{Target, Verdict};

/// Receive limits tried: none, tiny, and etcd's default (`--max-request-bytes` 1.5 MiB +
/// 512 KiB, `net::ServerLimits::default`).
const LIMITS: [usize; 5] = [0, 1, 16, 4096, 1536 * 1024 + 512 * 1024];

pub(crate) struct Framing;

/// The reference: messages and the first error, from the whole stream at once.
fn reference(stream: &[u8], max: usize) -> (Vec<&[u8]>, Option<Status>) {
    let mut messages = Vec::new();
    let mut at = 0;
    while stream.len() - at >= MESSAGE_HEADER_BYTES {
        let flag = stream[at];
        let len = u32::from_be_bytes(stream[at + 1..at + 5].try_into().expect("4 bytes")) as usize;
        if len > max {
            let m = format!("grpc: received message larger than max ({len} vs. {max})");
            return (messages, Some(Status::new(Code::ResourceExhausted, m)));
        }
        match flag {
            0 => {}
            1 => {
                let m = "grpc: compressed flag set with identity or empty encoding";
                return (messages, Some(Status::new(Code::Internal, m)));
            }
            other => {
                let m = format!("grpc: received unexpected payload format {other}");
                return (messages, Some(Status::new(Code::Internal, m)));
            }
        }
        if stream.len() - at - MESSAGE_HEADER_BYTES < len {
            break;
        }
        messages.push(&stream[at + MESSAGE_HEADER_BYTES..at + MESSAGE_HEADER_BYTES + len]);
        at += MESSAGE_HEADER_BYTES + len;
    }
    (messages, None)
}

impl Target for Framing {
    fn name(&self) -> &'static str {
        "framing"
    }

    fn seeds(&mut self) -> Vec<Vec<u8>> {
        let mut seeds = Vec::new();
        for (limit, split) in [(4u8, 0u8), (3, 7), (2, 1), (4, 200)] {
            let mut s = vec![limit, split];
            for m in [&b""[..], b"a", b"hello, world", &[0u8; 300][..]] {
                s.extend_from_slice(&encode_message(m));
            }
            seeds.push(s);
        }
        seeds
    }

    fn execute(&mut self, input: &[u8]) -> Result<Verdict, String> {
        let [limit, split, stream @ ..] = input else {
            return Ok(Verdict::Rejected);
        };
        let max = LIMITS[*limit as usize % LIMITS.len()];
        let (want, want_err) = reference(stream, max);
        let mut decoder = MessageDecoder::new(max);
        let mut got: Vec<Bytes> = Vec::new();
        let mut got_err: Option<Status> = None;
        let whole = Bytes::copy_from_slice(stream);
        let mut at = 0;
        let mut step = u64::from(*split) + 1;
        while at < whole.len() && got_err.is_none() {
            step = step
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let n = 1 + (step >> 33) as usize % (2 * usize::from(*split) + 1);
            let end = (at + n).min(whole.len());
            decoder.push(whole.slice(at..end));
            at = end;
            loop {
                match decoder.next_message() {
                    Ok(Some(m)) => got.push(m),
                    Ok(None) => break,
                    Err(status) => {
                        got_err = Some(status);
                        break;
                    }
                }
            }
        }
        if got.len() != want.len() || got.iter().zip(&want).any(|(g, w)| g.as_ref() != *w) {
            return Err(format!(
                "decoded {} messages, the reference {}",
                got.len(),
                want.len()
            ));
        }
        if got_err != want_err {
            return Err(format!("error {got_err:?}, the reference {want_err:?}"));
        }
        if let Some(status) = &got_err {
            if decoder.next_message() != Err(status.clone()) {
                return Err("a failed decoder did not repeat its error".into());
            }
            return Ok(Verdict::Rejected);
        }
        let consumed: usize = got.iter().map(|m| MESSAGE_HEADER_BYTES + m.len()).sum();
        let reencoded: Vec<u8> = got
            .iter()
            .flat_map(|m| encode_message(m).to_vec())
            .collect();
        if reencoded[..] != stream[..consumed] {
            return Err("re-encoded messages differ from the stream".into());
        }
        let pending = stream.len() - consumed;
        let pending_body = if pending >= MESSAGE_HEADER_BYTES {
            pending - MESSAGE_HEADER_BYTES
        } else {
            pending
        };
        if decoder.buffered_bytes() != pending_body {
            return Err(format!(
                "buffered_bytes {} with {pending} bytes after the last message",
                decoder.buffered_bytes()
            ));
        }
        if decoder.is_idle() != (pending == 0) {
            return Err(format!(
                "is_idle {} with {pending} bytes pending",
                decoder.is_idle()
            ));
        }
        Ok(Verdict::Accepted)
    }
}
