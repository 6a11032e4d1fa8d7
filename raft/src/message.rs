//! Raft's data types (etcd-io/raft `raftpb/raft.proto`) and their compact binary
//! encoding for the peer transport.
//!
//! # Wire format (version 1)
//!
//! All integers are unsigned LEB128 varints (`v`) unless noted; `bytes` is a varint
//! length followed by that many bytes.
//!
//! ```text
//! Message  := version:u8(=1) type:u8 to:v from:v term:v log_term:v index:v commit:v
//!             reject_hint:v flags:u8 context:bytes n_entries:v Entry*n [Snapshot]
//!             flags bit0 = reject, bit1 = a Snapshot follows; other bits must be 0
//! Entry    := term:v index:v type:u8(0 normal, 1 conf change) data:bytes
//! Snapshot := index:v term:v n_voters:v voter:v* n_learners:v learner:v* data:bytes
//! ConfChange := version:u8(=1) type:u8(0 add, 1 remove, 2 add learner, 3 update) node_id:v context:bytes
//! ```
//!
//! `type` codes are the order of [`MessageType`]'s variants (Hup = 0 ... ReadIndexResponse
//! = 18). Decoding rejects unknown versions and codes, varints longer than 10 bytes,
//! counts larger than the remaining bytes and trailing bytes, with [`Error::Decode`]
//! naming the field and byte offset.

use bytes::Bytes;

use crate::errors::{Error, Result};

/// Kind of a log entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum EntryType {
    /// Application data (possibly empty: the entry a new leader appends).
    #[default]
    Normal,
    /// An encoded [`ConfChange`].
    ConfChange,
}

/// One log entry: `index` is its position (from 1), `term` the leader's term that
/// created it.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Entry {
    /// Term of the leader that appended the entry.
    pub term: u64,
    /// Position in the log, from 1.
    pub index: u64,
    /// Normal or conf change.
    pub entry_type: EntryType,
    /// Payload; for [`EntryType::ConfChange`] an encoded [`ConfChange`].
    pub data: Bytes,
}

/// State that must be persisted before messages are sent: current term, the vote in
/// that term (0 = none) and the commit index.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct HardState {
    /// Current term.
    pub term: u64,
    /// Node voted for in `term`, 0 if none.
    pub vote: u64,
    /// Highest index known committed.
    pub commit: u64,
}

impl HardState {
    /// True for the zero state of a fresh node.
    pub fn is_empty(&self) -> bool {
        *self == HardState::default()
    }
}

/// Membership: voter ids and learner ids (disjoint, each sorted ascending).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct ConfState {
    /// Members that vote and count for quorum.
    pub voters: Vec<u64>,
    /// Members that receive the log but do not vote.
    pub learners: Vec<u64>,
}

/// Where a snapshot sits in the log and the membership at that point.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct SnapshotMetadata {
    /// Index of the last entry the snapshot includes.
    pub index: u64,
    /// Term of that entry.
    pub term: u64,
    /// Membership as of `index`.
    pub conf_state: ConfState,
}

impl SnapshotMetadata {
    /// Checks that the metadata can describe a real position and membership: index in
    /// `1..u64::MAX` (the log continues at `index + 1`), term ≥ 1, at least one voter,
    /// no id 0, no id listed twice or as both voter and learner. Returns a description
    /// of the first problem.
    pub(crate) fn check(&self) -> std::result::Result<(), String> {
        if self.index == 0 || self.index == u64::MAX {
            return Err(format!(
                "snapshot index must be in 1..{}, got {}",
                u64::MAX,
                self.index
            ));
        }
        if self.term == 0 {
            return Err(format!("snapshot at index {} has term 0", self.index));
        }
        let cs = &self.conf_state;
        if cs.voters.is_empty() {
            return Err(format!("snapshot at index {} has no voters", self.index));
        }
        let mut seen = std::collections::BTreeSet::new();
        for &id in cs.voters.iter().chain(&cs.learners) {
            if id == 0 {
                return Err("snapshot conf state names node 0".to_string());
            }
            if !seen.insert(id) {
                return Err(format!(
                    "snapshot conf state names node {id} twice (voters {:?}, learners {:?})",
                    cs.voters, cs.learners
                ));
            }
        }
        Ok(())
    }
}

/// A state machine image up to `metadata.index`; `data` is opaque to raft.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Snapshot {
    /// Position and membership.
    pub metadata: SnapshotMetadata,
    /// The application's image.
    pub data: Bytes,
}

impl Snapshot {
    /// True when this is the "no snapshot" value (index 0).
    pub fn is_empty(&self) -> bool {
        self.metadata.index == 0
    }
}

/// Kind of a single-step membership change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConfChangeType {
    /// Add a voter, or promote an existing learner to voter.
    AddNode,
    /// Remove a voter or learner.
    RemoveNode,
    /// Add a learner (a voter cannot be demoted: [`Error::ConfChangeInvalid`]).
    AddLearnerNode,
    /// Change nothing in Raft's configuration; the application uses it to replicate a
    /// change of a member's attributes, such as its peer URLs (etcd `ConfChangeUpdateNode`).
    UpdateNode,
}

/// A single-step membership change, carried in an [`EntryType::ConfChange`] entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfChange {
    /// What to do.
    pub change_type: ConfChangeType,
    /// Which node; 0 is a no-op change.
    pub node_id: u64,
    /// Opaque to raft (etcd puts the member's URLs here).
    pub context: Bytes,
}

impl ConfChange {
    /// Encodes as described in the module docs (`ConfChange := ...`).
    pub fn encode(&self) -> Bytes {
        let mut out = Vec::with_capacity(12 + self.context.len());
        out.push(WIRE_VERSION);
        out.push(match self.change_type {
            ConfChangeType::AddNode => 0,
            ConfChangeType::RemoveNode => 1,
            ConfChangeType::AddLearnerNode => 2,
            ConfChangeType::UpdateNode => 3,
        });
        put_varint(&mut out, self.node_id);
        put_bytes(&mut out, &self.context);
        Bytes::from(out)
    }

    /// Decodes [`ConfChange::encode`]'s output.
    ///
    /// Errors: [`Error::Decode`] for a wrong version, unknown type, truncation or
    /// trailing bytes.
    pub fn decode(buf: &[u8]) -> Result<ConfChange> {
        let mut r = Reader { buf, pos: 0 };
        r.version()?;
        let change_type = match r.u8("conf change type")? {
            0 => ConfChangeType::AddNode,
            1 => ConfChangeType::RemoveNode,
            2 => ConfChangeType::AddLearnerNode,
            3 => ConfChangeType::UpdateNode,
            t => return Err(r.err(&format!("unknown conf change type {t}"))),
        };
        let node_id = r.varint("node_id")?;
        let context = r.bytes("context")?;
        r.finish()?;
        Ok(ConfChange {
            change_type,
            node_id,
            context,
        })
    }
}

/// Kind of a [`Message`]. Local kinds (Hup, Beat, Unreachable, SnapStatus,
/// CheckQuorum) are generated inside the node and never travel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MessageType {
    /// Local: start an election.
    Hup,
    /// Local: leader should send heartbeats.
    Beat,
    /// Propose entries (local, or a proposal stepped on the leader).
    Propose,
    /// Leader → follower: entries after (`index`, `log_term`) and the commit index.
    Append,
    /// Follower → leader: accepted up to `index`, or `reject` with `reject_hint`.
    AppendResponse,
    /// Candidate → all: vote for me at `term`; my last log is (`index`, `log_term`).
    RequestVote,
    /// Vote granted unless `reject`.
    RequestVoteResponse,
    /// Pre-candidate → all: would you vote for me at `term`?
    RequestPreVote,
    /// Pre-vote granted unless `reject`.
    RequestPreVoteResponse,
    /// Leader → follower: install `snapshot`.
    Snapshot,
    /// Leader → follower: I am alive; commit up to `commit`; `context` = the newest
    /// ReadIndex round of the leader (8 bytes LE) or empty.
    Heartbeat,
    /// Follower → leader: heartbeat answer, echoing `context`.
    HeartbeatResponse,
    /// Local: the transport could not reach `from`.
    Unreachable,
    /// Local: snapshot to `from` finished (`reject` = failed).
    SnapStatus,
    /// Local: leader checks that a quorum is still active.
    CheckQuorum,
    /// Ask the leader to hand leadership to `from`.
    TransferLeader,
    /// Leader → transferee: campaign now, ignoring leases.
    TimeoutNow,
    /// Request a read index; `entries[0].data` is the request context; when a
    /// follower forwards its own request, `context` is its start tag.
    ReadIndex,
    /// Leader → follower: read index `index` for context `entries[0].data`;
    /// `context` echoes the request's start tag.
    ReadIndexResponse,
}

const MESSAGE_TYPES: [MessageType; 19] = [
    MessageType::Hup,
    MessageType::Beat,
    MessageType::Propose,
    MessageType::Append,
    MessageType::AppendResponse,
    MessageType::RequestVote,
    MessageType::RequestVoteResponse,
    MessageType::RequestPreVote,
    MessageType::RequestPreVoteResponse,
    MessageType::Snapshot,
    MessageType::Heartbeat,
    MessageType::HeartbeatResponse,
    MessageType::Unreachable,
    MessageType::SnapStatus,
    MessageType::CheckQuorum,
    MessageType::TransferLeader,
    MessageType::TimeoutNow,
    MessageType::ReadIndex,
    MessageType::ReadIndexResponse,
];

impl MessageType {
    fn code(self) -> u8 {
        MESSAGE_TYPES.iter().position(|t| *t == self).unwrap_or(0) as u8
    }

    /// True for kinds generated inside the node that [`crate::RawNode::step`] refuses.
    pub fn is_local(self) -> bool {
        matches!(
            self,
            MessageType::Hup
                | MessageType::Beat
                | MessageType::Unreachable
                | MessageType::SnapStatus
                | MessageType::CheckQuorum
        )
    }

    /// True for responses, which are only accepted from known peers.
    pub fn is_response(self) -> bool {
        matches!(
            self,
            MessageType::AppendResponse
                | MessageType::RequestVoteResponse
                | MessageType::HeartbeatResponse
                | MessageType::Unreachable
                | MessageType::RequestPreVoteResponse
        )
    }
}

/// One Raft message. Unused fields are zero/empty; which fields a kind uses is said on
/// [`MessageType`]. `term` 0 marks a local message; from a peer it is accepted only on
/// a forwarded Propose or ReadIndex ([`crate::RawNode::step`] refuses the rest with
/// [`Error::MessageInvalid`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// Kind.
    pub msg_type: MessageType,
    /// Receiver id.
    pub to: u64,
    /// Sender id.
    pub from: u64,
    /// Sender's term (0 for local messages and forwarded Propose/ReadIndex).
    pub term: u64,
    /// Term of the entry at `index` (Append: the entry before `entries`; votes: the
    /// candidate's last term; rejected AppendResponse: the hint's term).
    pub log_term: u64,
    /// Log index; meaning per kind.
    pub index: u64,
    /// Entries (Append, Propose; ReadIndex carries its context as `entries[0].data`).
    pub entries: Vec<Entry>,
    /// Leader's commit index (Append, Heartbeat).
    pub commit: u64,
    /// Snapshot to install (Snapshot).
    pub snapshot: Option<Snapshot>,
    /// Rejection flag on responses.
    pub reject: bool,
    /// On a rejected AppendResponse: the follower's suggested probe index.
    pub reject_hint: u64,
    /// Opaque context (heartbeat ReadIndex round, campaign-transfer marker).
    pub context: Bytes,
}

impl Message {
    /// An empty message of kind `msg_type`; set the other fields with struct update.
    pub fn new(msg_type: MessageType) -> Message {
        Message {
            msg_type,
            to: 0,
            from: 0,
            term: 0,
            log_term: 0,
            index: 0,
            entries: Vec::new(),
            commit: 0,
            snapshot: None,
            reject: false,
            reject_hint: 0,
            context: Bytes::new(),
        }
    }

    /// Encodes as described in the module docs (wire format version 1).
    pub fn encode(&self) -> Vec<u8> {
        let data: usize = self.entries.iter().map(|e| e.data.len() + 24).sum();
        let mut out = Vec::with_capacity(64 + data + self.context.len());
        out.push(WIRE_VERSION);
        out.push(self.msg_type.code());
        for v in [
            self.to,
            self.from,
            self.term,
            self.log_term,
            self.index,
            self.commit,
            self.reject_hint,
        ] {
            put_varint(&mut out, v);
        }
        let flags = u8::from(self.reject) | (u8::from(self.snapshot.is_some()) << 1);
        out.push(flags);
        put_bytes(&mut out, &self.context);
        put_varint(&mut out, self.entries.len() as u64);
        for e in &self.entries {
            put_varint(&mut out, e.term);
            put_varint(&mut out, e.index);
            out.push(match e.entry_type {
                EntryType::Normal => 0,
                EntryType::ConfChange => 1,
            });
            put_bytes(&mut out, &e.data);
        }
        if let Some(s) = &self.snapshot {
            put_varint(&mut out, s.metadata.index);
            put_varint(&mut out, s.metadata.term);
            for ids in [
                &s.metadata.conf_state.voters,
                &s.metadata.conf_state.learners,
            ] {
                put_varint(&mut out, ids.len() as u64);
                for id in ids {
                    put_varint(&mut out, *id);
                }
            }
            put_bytes(&mut out, &s.data);
        }
        out
    }

    /// Decodes [`Message::encode`]'s output.
    ///
    /// Errors: [`Error::Decode`] naming the field and offset for an unknown version or
    /// code, a truncated buffer, an overlong varint, unknown flag bits or trailing bytes.
    pub fn decode(buf: &[u8]) -> Result<Message> {
        let mut r = Reader { buf, pos: 0 };
        r.version()?;
        let code = r.u8("message type")?;
        let msg_type = *MESSAGE_TYPES
            .get(code as usize)
            .ok_or_else(|| r.err(&format!("unknown message type {code}")))?;
        let mut m = Message::new(msg_type);
        m.to = r.varint("to")?;
        m.from = r.varint("from")?;
        m.term = r.varint("term")?;
        m.log_term = r.varint("log_term")?;
        m.index = r.varint("index")?;
        m.commit = r.varint("commit")?;
        m.reject_hint = r.varint("reject_hint")?;
        let flags = r.u8("flags")?;
        if flags & !0b11 != 0 {
            return Err(r.err(&format!("unknown flag bits {flags:#04x}")));
        }
        m.reject = flags & 1 != 0;
        m.context = r.bytes("context")?;
        let n = r.count("entry count", 4)?;
        m.entries.reserve(n);
        for _ in 0..n {
            let term = r.varint("entry term")?;
            let index = r.varint("entry index")?;
            let entry_type = match r.u8("entry type")? {
                0 => EntryType::Normal,
                1 => EntryType::ConfChange,
                t => return Err(r.err(&format!("unknown entry type {t}"))),
            };
            let data = r.bytes("entry data")?;
            m.entries.push(Entry {
                term,
                index,
                entry_type,
                data,
            });
        }
        if flags & 2 != 0 {
            let index = r.varint("snapshot index")?;
            let term = r.varint("snapshot term")?;
            let voters = r.ids("snapshot voters")?;
            let learners = r.ids("snapshot learners")?;
            let data = r.bytes("snapshot data")?;
            m.snapshot = Some(Snapshot {
                metadata: SnapshotMetadata {
                    index,
                    term,
                    conf_state: ConfState { voters, learners },
                },
                data,
            });
        }
        r.finish()?;
        Ok(m)
    }
}

const WIRE_VERSION: u8 = 1;
const VARINT_BYTES_MAX: usize = 10;

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    put_varint(out, b.len() as u64);
    out.extend_from_slice(b);
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn err(&self, what: &str) -> Error {
        Error::Decode(format!("{what} at byte {}", self.pos))
    }

    fn version(&mut self) -> Result<()> {
        let v = self.u8("version")?;
        if v != WIRE_VERSION {
            return Err(Error::Decode(format!(
                "unsupported version {v} at byte 0 (expected {WIRE_VERSION})"
            )));
        }
        Ok(())
    }

    fn u8(&mut self, field: &str) -> Result<u8> {
        let b = *self
            .buf
            .get(self.pos)
            .ok_or_else(|| self.err(&format!("truncated {field}")))?;
        self.pos += 1;
        Ok(b)
    }

    fn varint(&mut self, field: &str) -> Result<u64> {
        let start = self.pos;
        let mut v: u64 = 0;
        for i in 0..VARINT_BYTES_MAX {
            let b = self.u8(field)?;
            let bits = u64::from(b & 0x7f);
            if i == 9 && bits > 1 {
                self.pos = start;
                return Err(self.err(&format!("{field} overflows u64")));
            }
            v |= bits << (7 * i);
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        self.pos = start;
        Err(self.err(&format!(
            "{field} varint longer than {VARINT_BYTES_MAX} bytes"
        )))
    }

    /// A count of items each at least `min_item_bytes` long; bounded by what is left.
    fn count(&mut self, field: &str, min_item_bytes: usize) -> Result<usize> {
        let n = self.varint(field)?;
        let left = (self.buf.len() - self.pos) as u64;
        if n > left / min_item_bytes as u64 {
            return Err(self.err(&format!("{field} {n} exceeds remaining {left} bytes")));
        }
        Ok(n as usize)
    }

    fn bytes(&mut self, field: &str) -> Result<Bytes> {
        let n = self.count(field, 1)?;
        let b = Bytes::copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(b)
    }

    fn ids(&mut self, field: &str) -> Result<Vec<u64>> {
        let n = self.count(field, 1)?;
        (0..n).map(|_| self.varint(field)).collect()
    }

    fn finish(&self) -> Result<()> {
        if self.pos != self.buf.len() {
            return Err(self.err(&format!("{} trailing bytes", self.buf.len() - self.pos)));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn full_message() -> Message {
        Message {
            msg_type: MessageType::Snapshot,
            to: 2,
            from: 1,
            term: 300,
            log_term: 7,
            index: u64::MAX,
            entries: vec![
                Entry {
                    term: 3,
                    index: 4,
                    entry_type: EntryType::ConfChange,
                    data: Bytes::from_static(b"cc"),
                },
                Entry::default(),
            ],
            commit: 128,
            snapshot: Some(Snapshot {
                metadata: SnapshotMetadata {
                    index: 10,
                    term: 2,
                    conf_state: ConfState {
                        voters: vec![1, 2, 3],
                        learners: vec![4],
                    },
                },
                data: Bytes::from_static(b"image"),
            }),
            reject: true,
            reject_hint: 9,
            context: Bytes::from_static(b"ctx"),
        }
    }

    #[test]
    fn message_round_trip_and_exact_bytes() {
        let m = Message {
            to: 2,
            from: 1,
            term: 300,
            ..Message::new(MessageType::Heartbeat)
        };
        // version, type 10, to, from, term 300 = [0xac, 0x02], four zero varints, flags, ctx len, n entries
        assert_eq!(
            m.encode(),
            vec![1, 10, 2, 1, 0xac, 0x02, 0, 0, 0, 0, 0, 0, 0]
        );
        assert_eq!(Message::decode(&m.encode()), Ok(m));
        let full = full_message();
        assert_eq!(Message::decode(&full.encode()), Ok(full));
    }

    #[test]
    fn decode_rejects_bad_input() {
        assert_eq!(
            Message::decode(&[]),
            Err(Error::Decode("truncated version at byte 0".into()))
        );
        assert_eq!(
            Message::decode(&[2]),
            Err(Error::Decode(
                "unsupported version 2 at byte 0 (expected 1)".into()
            ))
        );
        assert_eq!(
            Message::decode(&[1, 19]),
            Err(Error::Decode("unknown message type 19 at byte 2".into()))
        );
        let mut b = full_message().encode();
        b.push(0);
        let at = b.len() - 1;
        assert_eq!(
            Message::decode(&b),
            Err(Error::Decode(format!("1 trailing bytes at byte {at}")))
        );
        // every strict prefix fails cleanly
        let b = full_message().encode();
        for cut in 0..b.len() {
            assert!(Message::decode(&b[..cut]).is_err(), "prefix {cut}");
        }
        // huge entry count is refused without allocating
        let mut b = vec![1, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        b.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0x0f]);
        assert!(
            matches!(Message::decode(&b), Err(Error::Decode(s)) if s.starts_with("entry count 4294967295 exceeds remaining 0 bytes"))
        );
        // a 10th varint byte above 1 overflows u64
        let b = [
            1, 3, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02,
        ];
        assert_eq!(
            Message::decode(&b),
            Err(Error::Decode("to overflows u64 at byte 2".into()))
        );
    }

    #[test]
    fn conf_change_round_trip() {
        let cc = ConfChange {
            change_type: ConfChangeType::AddLearnerNode,
            node_id: 300,
            context: Bytes::from_static(b"http://a"),
        };
        let b = cc.encode();
        assert_eq!(&b[..4], &[1, 2, 0xac, 0x02]);
        assert_eq!(ConfChange::decode(&b), Ok(cc));
        let update = ConfChange {
            change_type: ConfChangeType::UpdateNode,
            node_id: 5,
            context: Bytes::new(),
        };
        assert_eq!(ConfChange::decode(&update.encode()), Ok(update));
        assert_eq!(
            ConfChange::decode(&[1, 4, 1, 0]),
            Err(Error::Decode("unknown conf change type 4 at byte 2".into()))
        );
    }

    proptest! {
        #[test]
        fn any_message_round_trips(
            code in 0usize..19, to: u64, from: u64, term: u64, index: u64, reject: bool,
            data in proptest::collection::vec(any::<u8>(), 0..40),
            n in 0usize..4, snap: bool,
        ) {
            let entries = (0..n).map(|i| Entry {
                term, index: index.wrapping_add(i as u64), entry_type: EntryType::Normal,
                data: Bytes::from(data.clone()),
            }).collect();
            let m = Message {
                msg_type: MESSAGE_TYPES[code], to, from, term, log_term: term / 2, index,
                entries, commit: index / 3, reject, reject_hint: to ^ from,
                snapshot: snap.then(|| Snapshot { data: Bytes::from(data.clone()), ..Default::default() }),
                context: Bytes::from(data.clone()),
            };
            prop_assert_eq!(Message::decode(&m.encode()), Ok(m));
        }

        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = Message::decode(&bytes);
            let _ = ConfChange::decode(&bytes);
        }
    }
}
