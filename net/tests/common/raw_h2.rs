//! A raw HTTP/2 client on a blocking socket (RFC 9113): it writes and reads frames itself,
//! so a test sees exactly the SETTINGS, WINDOW_UPDATE and RST_STREAM frames a server sends,
//! and can do what a conforming client library would not (open more streams than allowed).
//! SETTINGS and PINGs from the server are acknowledged as they are read; the client's own
//! receive windows stay at the defaults (tests read little).
#![allow(dead_code)]

use std::collections::{HashMap, VecDeque};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};

pub const DATA: u8 = 0x0;
pub const HEADERS: u8 = 0x1;
pub const RST_STREAM: u8 = 0x3;
pub const SETTINGS: u8 = 0x4;
pub const PING: u8 = 0x6;
pub const GOAWAY: u8 = 0x7;
pub const WINDOW_UPDATE: u8 = 0x8;

pub const END_STREAM: u8 = 0x1;
pub const ACK: u8 = 0x1;
pub const END_HEADERS: u8 = 0x4;

pub const SETTINGS_MAX_CONCURRENT_STREAMS: u16 = 0x3;
pub const SETTINGS_INITIAL_WINDOW_SIZE: u16 = 0x4;

/// RST_STREAM error code REFUSED_STREAM (RFC 9113 §7).
pub const REFUSED_STREAM: u32 = 0x7;
/// Flow-control window of a new stream and of the connection before SETTINGS say otherwise.
pub const DEFAULT_WINDOW_BYTES: i64 = 65_535;
/// SETTINGS_MAX_FRAME_SIZE's default: the largest DATA payload a client may send.
pub const FRAME_BYTES_MAX: usize = 16_384;

pub const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

#[derive(Clone, Debug)]
pub struct Frame {
    pub kind: u8,
    pub flags: u8,
    pub stream: u32,
    pub payload: Vec<u8>,
}

impl Frame {
    /// The (identifier, value) pairs of a SETTINGS frame.
    pub fn settings(&self) -> Vec<(u16, u32)> {
        self.payload
            .chunks_exact(6)
            .map(|s| {
                (
                    u16::from_be_bytes([s[0], s[1]]),
                    u32::from_be_bytes([s[2], s[3], s[4], s[5]]),
                )
            })
            .collect()
    }

    /// The error code of a RST_STREAM or the increment of a WINDOW_UPDATE.
    pub fn u32_at(&self, offset: usize) -> u32 {
        let p = &self.payload[offset..offset + 4];
        u32::from_be_bytes([p[0], p[1], p[2], p[3]]) & 0x7fff_ffff
    }

    pub fn ends_stream(&self) -> bool {
        matches!(self.kind, DATA | HEADERS) && self.flags & END_STREAM != 0
    }
}

pub struct RawH2 {
    pub socket: TcpStream,
    /// Every SETTINGS parameter the server sent, in order.
    pub server_settings: Vec<(u16, u32)>,
    /// Frames read while waiting for flow-control credit, returned by `read_frame` first.
    pending: VecDeque<Frame>,
    connection_window: i64,
    /// Per stream: bytes of DATA sent and credit received in WINDOW_UPDATEs.
    sent: HashMap<u32, u64>,
    credited: HashMap<u32, u64>,
}

impl RawH2 {
    /// Connects and sends the preface with an empty SETTINGS frame.
    pub fn connect(addr: SocketAddr) -> RawH2 {
        let mut socket = TcpStream::connect(addr).unwrap();
        socket.set_nodelay(true).unwrap();
        socket.write_all(PREFACE).unwrap();
        let mut client = RawH2 {
            socket,
            server_settings: Vec::new(),
            pending: VecDeque::new(),
            connection_window: DEFAULT_WINDOW_BYTES,
            sent: HashMap::new(),
            credited: HashMap::new(),
        };
        client.write_frame(SETTINGS, 0, 0, &[]);
        client
    }

    /// [`RawH2::connect`], then reads until the server's first SETTINGS frame.
    pub fn handshake(addr: SocketAddr) -> RawH2 {
        let mut client = RawH2::connect(addr);
        while client.server_settings.is_empty() {
            let frame = client.read_any().expect("server SETTINGS");
            if !client.absorb(&frame) {
                client.pending.push_back(frame);
            }
        }
        client
    }

    /// The last value the server gave for a SETTINGS parameter.
    pub fn setting(&self, id: u16) -> Option<u32> {
        self.server_settings
            .iter()
            .rev()
            .find(|(i, _)| *i == id)
            .map(|(_, v)| *v)
    }

    pub fn write_frame(&mut self, kind: u8, flags: u8, stream: u32, payload: &[u8]) {
        let len = payload.len() as u32;
        let mut frame = Vec::with_capacity(9 + payload.len());
        frame.extend_from_slice(&len.to_be_bytes()[1..]);
        frame.push(kind);
        frame.push(flags);
        frame.extend_from_slice(&stream.to_be_bytes());
        frame.extend_from_slice(payload);
        self.socket.write_all(&frame).unwrap();
    }

    /// The next frame that is not a SETTINGS, PING or WINDOW_UPDATE (those are
    /// acknowledged or counted here); `None` when the server closed the connection.
    pub fn read_frame(&mut self) -> Option<Frame> {
        if let Some(frame) = self.pending.pop_front() {
            return Some(frame);
        }
        loop {
            let frame = self.read_any()?;
            if !self.absorb(&frame) {
                return Some(frame);
            }
        }
    }

    /// Reads one frame of any kind; `None` at EOF or a reset connection.
    fn read_any(&mut self) -> Option<Frame> {
        let mut head = [0u8; 9];
        if self.socket.read_exact(&mut head).is_err() {
            return None;
        }
        let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
        let mut payload = vec![0u8; len];
        self.socket.read_exact(&mut payload).ok()?;
        Some(Frame {
            kind: head[3],
            flags: head[4],
            stream: u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff,
            payload,
        })
    }

    /// Handles connection-level frames; true when `frame` needs nothing more.
    fn absorb(&mut self, frame: &Frame) -> bool {
        match frame.kind {
            SETTINGS if frame.flags & ACK == 0 => {
                self.server_settings.extend(frame.settings());
                self.write_frame(SETTINGS, ACK, 0, &[]);
                true
            }
            SETTINGS => true,
            PING if frame.flags & ACK == 0 => {
                let payload = frame.payload.clone();
                self.write_frame(PING, ACK, 0, &payload);
                true
            }
            WINDOW_UPDATE => {
                let increment = u64::from(frame.u32_at(0));
                if frame.stream == 0 {
                    self.connection_window += increment as i64;
                } else {
                    *self.credited.entry(frame.stream).or_default() += increment;
                }
                true
            }
            _ => false,
        }
    }

    /// Credit the server returned on `stream` in WINDOW_UPDATE frames so far, in bytes.
    pub fn credited(&self, stream: u32) -> u64 {
        self.credited.get(&stream).copied().unwrap_or(0)
    }

    /// DATA bytes sent on `stream` so far.
    pub fn sent(&self, stream: u32) -> u64 {
        self.sent.get(&stream).copied().unwrap_or(0)
    }

    fn stream_window(&self, stream: u32) -> i64 {
        let initial = self
            .setting(SETTINGS_INITIAL_WINDOW_SIZE)
            .map_or(DEFAULT_WINDOW_BYTES, i64::from);
        initial + self.credited(stream) as i64 - self.sent(stream) as i64
    }

    /// Opens `stream` as a gRPC call to `path` (HPACK literals without indexing).
    pub fn open_grpc(&mut self, stream: u32, path: &str, end_stream: bool) {
        let headers = [
            (":method", "POST"),
            (":scheme", "http"),
            (":path", path),
            (":authority", "127.0.0.1"),
            ("content-type", "application/grpc"),
            ("te", "trailers"),
        ];
        let mut block = Vec::new();
        for (name, value) in headers {
            assert!(name.len() < 127 && value.len() < 127);
            block.push(0x00);
            block.push(name.len() as u8);
            block.extend_from_slice(name.as_bytes());
            block.push(value.len() as u8);
            block.extend_from_slice(value.as_bytes());
        }
        let flags = END_HEADERS | if end_stream { END_STREAM } else { 0 };
        self.write_frame(HEADERS, flags, stream, &block);
    }

    /// Sends `data` on `stream` in DATA frames, as flow control allows: waits for
    /// WINDOW_UPDATEs when out of credit (other frames read meanwhile are kept for
    /// `read_frame`). Panics if the server closes the connection first.
    pub fn send_data(&mut self, stream: u32, mut data: &[u8], end_stream: bool) {
        if data.is_empty() && end_stream {
            self.write_frame(DATA, END_STREAM, stream, &[]);
        }
        while !data.is_empty() {
            let credit = self.stream_window(stream).min(self.connection_window);
            if credit <= 0 {
                let frame = self
                    .read_any()
                    .expect("server closed while waiting for credit");
                if !self.absorb(&frame) {
                    self.pending.push_back(frame);
                }
                continue;
            }
            let n = data.len().min(FRAME_BYTES_MAX).min(credit as usize);
            let last = n == data.len();
            let flags = if last && end_stream { END_STREAM } else { 0 };
            self.write_frame(DATA, flags, stream, &data[..n]);
            *self.sent.entry(stream).or_default() += n as u64;
            self.connection_window -= n as i64;
            data = &data[n..];
        }
    }

    /// Sends as much of `data` on `stream` as the credit known now allows, without waiting;
    /// returns how many bytes went out.
    pub fn send_within_credit(&mut self, stream: u32, data: &[u8]) -> usize {
        let mut sent = 0;
        loop {
            let credit = self.stream_window(stream).min(self.connection_window);
            if credit <= 0 || sent == data.len() {
                return sent;
            }
            let n = (data.len() - sent)
                .min(FRAME_BYTES_MAX)
                .min(credit as usize);
            self.write_frame(DATA, 0, stream, &data[sent..sent + n]);
            *self.sent.entry(stream).or_default() += n as u64;
            self.connection_window -= n as i64;
            sent += n;
        }
    }

    /// Sends a PING and reads until its ACK; returns the other frames read meanwhile. The
    /// server handles frames in order, so everything it sent before answering is counted.
    pub fn ping(&mut self, opaque: u64) -> Vec<Frame> {
        self.write_frame(PING, 0, 0, &opaque.to_be_bytes());
        let mut frames: Vec<Frame> = self.pending.drain(..).collect();
        loop {
            let frame = self
                .read_any()
                .expect("server closed before answering a PING");
            if frame.kind == PING && frame.flags & ACK != 0 && frame.payload == opaque.to_be_bytes()
            {
                return frames;
            }
            if !self.absorb(&frame) {
                frames.push(frame);
            }
        }
    }
}
