//! Fuzzed peer messages. Raft does not defend against a lying peer (a forged vote or
//! acknowledgement from a real member can break safety by design), so every message
//! built here is one a correct node must survive without panicking AND without
//! breaking an invariant: it has term 0 (peer messages always carry a term), a term
//! below the receiver's (stale), contents no correct peer can send (entries not
//! following `index`, indexes that overflow, a commit beyond the receiver's log, a
//! snapshot at `u64::MAX` or not naming the receiver), or it only affects liveness
//! (vote requests from unknown ids, rejections, leader-transfer nudges).

use bytes::Bytes;
use raft::{ConfState, Entry, EntryType, Message, MessageType, Snapshot, SnapshotMetadata};

use super::rng::Rng;

/// What the fuzzer knows of the receiving node.
pub struct Target {
    /// Receiver id.
    pub id: u64,
    /// Receiver's current term.
    pub term: u64,
    /// Receiver's last log index.
    pub last_index: u64,
    /// Receiver's commit index.
    pub commit: u64,
    /// Ids of real members (possible senders).
    pub peers: Vec<u64>,
    /// The receiver is a voter. A learner never gets a vote request from a correct
    /// peer, cannot campaign, and (without pre-vote or check-quorum) ignores a
    /// leader of a lower term forever: messages that raise its term are left out.
    pub voter: bool,
}

/// First id never used by a real member.
const FAKE_ID_MIN: u64 = 1000;

const PEER_TYPES: [MessageType; 14] = [
    MessageType::Append,
    MessageType::AppendResponse,
    MessageType::RequestVote,
    MessageType::RequestVoteResponse,
    MessageType::RequestPreVote,
    MessageType::RequestPreVoteResponse,
    MessageType::Snapshot,
    MessageType::Heartbeat,
    MessageType::HeartbeatResponse,
    MessageType::TransferLeader,
    MessageType::TimeoutNow,
    MessageType::ReadIndex,
    MessageType::ReadIndexResponse,
    MessageType::Propose,
];

fn extreme(rng: &mut Rng, t: &Target) -> u64 {
    match rng.below(9) {
        0 => 0,
        1 => 1,
        2 => t.last_index.saturating_sub(1),
        3 => t.last_index,
        4 => t.last_index.saturating_add(1),
        5 => u64::MAX,
        6 => u64::MAX - 1,
        7 => u64::MAX / 2,
        _ => rng.next(),
    }
}

/// A small read/heartbeat context, colliding with the members' own counters.
fn small_ctx(rng: &mut Rng) -> Bytes {
    Bytes::copy_from_slice(&rng.range(1, 8).to_le_bytes())
}

fn random_entries(rng: &mut Rng, t: &Target, after: u64, term_max: u64) -> Vec<Entry> {
    let n = rng.below(4);
    (0..n)
        .map(|i| Entry {
            term: if rng.chance(500) {
                term_max
            } else {
                extreme(rng, t)
            },
            index: if rng.chance(700) {
                after.wrapping_add(1 + i)
            } else {
                extreme(rng, t)
            },
            entry_type: if rng.chance(200) {
                EntryType::ConfChange
            } else {
                EntryType::Normal
            },
            data: Bytes::from(rng.next().to_le_bytes().to_vec()),
        })
        .collect()
}

fn bogus_snapshot(rng: &mut Rng, t: &Target, index: u64) -> Snapshot {
    let conf_state = match rng.below(3) {
        0 => ConfState {
            voters: vec![FAKE_ID_MIN + 1, FAKE_ID_MIN + 2],
            learners: vec![],
        },
        1 => ConfState::default(),
        _ => ConfState {
            voters: vec![t.id],
            learners: vec![t.id],
        },
    };
    Snapshot {
        metadata: SnapshotMetadata {
            index,
            term: extreme(rng, t),
            conf_state,
        },
        data: Bytes::from(rng.next().to_le_bytes().to_vec()),
    }
}

/// A random message with every field drawn from `extreme`: safe only when the
/// caller gives it term 0 or a stale term.
fn anything(rng: &mut Rng, t: &Target, term: u64) -> Message {
    let mut msg_type = rng.pick(&PEER_TYPES);
    if term == 0 && matches!(msg_type, MessageType::Propose | MessageType::ReadIndex) {
        // Forwarded requests legitimately carry term 0; one with a forged sender
        // could be answered to a real member as if it had asked.
        msg_type = MessageType::Append;
    }
    let from = if rng.chance(800) {
        rng.pick(&t.peers)
    } else {
        extreme(rng, t)
    };
    let index = extreme(rng, t);
    let mut m = Message {
        to: if rng.chance(900) {
            t.id
        } else {
            extreme(rng, t)
        },
        from,
        term,
        log_term: extreme(rng, t),
        index,
        entries: random_entries(rng, t, index, term),
        commit: extreme(rng, t),
        reject: rng.chance(500),
        reject_hint: extreme(rng, t),
        context: if rng.chance(500) {
            small_ctx(rng)
        } else {
            Bytes::new()
        },
        ..Message::new(msg_type)
    };
    if msg_type == MessageType::Snapshot || rng.chance(100) {
        let idx = extreme(rng, t);
        m.snapshot = Some(bogus_snapshot(rng, t, idx));
        if rng.chance(500) {
            // a well-formed snapshot naming the receiver, from a stale or term-0 peer
            let s = m.snapshot.as_mut().unwrap();
            s.metadata.conf_state = ConfState {
                voters: t.peers.clone(),
                learners: vec![],
            };
        }
    }
    m
}

/// One fuzzed message for `t` (see the module docs for why each kind is harmless to a
/// correct node).
pub fn message(rng: &mut Rng, t: &Target) -> Message {
    let now = t.term.max(1);
    let peer = rng.pick(&t.peers);
    let current_or_newer = now + rng.below(3);
    let raising = if t.voter { current_or_newer } else { now };
    match rng.below(10) {
        0 | 1 => anything(rng, t, 0),
        2 if t.term > 1 => {
            let stale = rng.range(1, t.term - 1);
            anything(rng, t, stale)
        }
        2 | 3 => {
            // Append whose entries cannot follow `index`, or whose indexes overflow.
            let index = if rng.chance(500) {
                u64::MAX - rng.below(3)
            } else {
                t.last_index
            };
            let mut entries = random_entries(rng, t, index, current_or_newer + 1);
            if entries.is_empty() || rng.chance(300) {
                entries.push(Entry {
                    term: current_or_newer + 5,
                    index: index.wrapping_add(1),
                    ..Default::default()
                });
            }
            if index != t.last_index {
                // overflow: at least two entries past u64::MAX - 2
                while entries.len() < 3 {
                    entries.push(Entry::default());
                }
            } else if let Some(e) = entries.last_mut() {
                // a gap or a term above the message's term
                e.index = e.index.wrapping_add(2);
            }
            Message {
                to: t.id,
                from: peer,
                term: current_or_newer,
                log_term: extreme(rng, t),
                index,
                entries,
                commit: extreme(rng, t),
                ..Message::new(MessageType::Append)
            }
        }
        4 => {
            // Append that cannot match (past the receiver's log): rejected with a hint.
            Message {
                to: t.id,
                from: peer,
                term: now,
                log_term: extreme(rng, t),
                index: t
                    .last_index
                    .saturating_add(1 + rng.below(3))
                    .max(t.last_index + 1),
                commit: extreme(rng, t),
                ..Message::new(MessageType::Append)
            }
        }
        5 => {
            // Heartbeat committing beyond the receiver's log.
            Message {
                to: t.id,
                from: peer,
                term: current_or_newer,
                commit: if rng.chance(500) {
                    u64::MAX
                } else {
                    t.last_index + 1 + rng.below(5)
                },
                context: small_ctx(rng),
                ..Message::new(MessageType::Heartbeat)
            }
        }
        6 => {
            // Bogus snapshots: not naming the receiver, at u64::MAX, or older than the
            // receiver's commit index.
            let index = match rng.below(3) {
                0 => u64::MAX - rng.below(2),
                1 => t.commit.saturating_sub(rng.below(3)),
                _ => t.last_index + 1 + rng.below(5),
            };
            let mut snap = bogus_snapshot(rng, t, index);
            if index > t.commit && index < u64::MAX - 1 {
                // only "not naming the receiver" is harmless here
                snap.metadata.conf_state = ConfState {
                    voters: vec![FAKE_ID_MIN + 1],
                    learners: vec![FAKE_ID_MIN + 2],
                };
            }
            if index >= u64::MAX - 1 {
                snap.metadata.term = raising;
            }
            Message {
                to: t.id,
                // Not a real member: the receiver acknowledges a snapshot to its
                // sender, and a real member would rightly refuse an acknowledgement
                // beyond its log.
                from: FAKE_ID_MIN + rng.below(5),
                term: raising,
                snapshot: Some(snap),
                ..Message::new(MessageType::Snapshot)
            }
        }
        7 => {
            // Rejections and acknowledgements no follower can send.
            let msg_type = rng.pick(&[
                MessageType::AppendResponse,
                MessageType::RequestVoteResponse,
                MessageType::RequestPreVoteResponse,
            ]);
            let accept_beyond = msg_type == MessageType::AppendResponse && rng.chance(400);
            Message {
                to: t.id,
                from: peer,
                term: now,
                index: if accept_beyond {
                    t.last_index + 1 + rng.below(3)
                } else {
                    extreme(rng, t)
                },
                log_term: extreme(rng, t),
                reject: !accept_beyond,
                reject_hint: extreme(rng, t),
                ..Message::new(msg_type)
            }
        }
        8 => {
            // Vote requests from ids that are not members.
            Message {
                to: t.id,
                from: FAKE_ID_MIN + rng.below(5),
                term: raising,
                log_term: extreme(rng, t),
                index: extreme(rng, t),
                context: if rng.chance(200) {
                    Bytes::from_static(b"CampaignTransfer")
                } else {
                    Bytes::new()
                },
                ..Message::new(rng.pick(&[MessageType::RequestVote, MessageType::RequestPreVote]))
            }
        }
        _ => {
            // Leader-transfer nudges.
            let msg_type = rng.pick(&[MessageType::TimeoutNow, MessageType::TransferLeader]);
            Message {
                to: t.id,
                from: if rng.chance(700) {
                    peer
                } else {
                    extreme(rng, t)
                },
                term: now,
                ..Message::new(msg_type)
            }
        }
    }
}

/// Random bytes or a bit-flipped encoding, for the decoder alone (a flipped message
/// that still decodes may be a forgery, so it is not stepped).
pub fn garbage(rng: &mut Rng, real: Option<&Message>) -> Vec<u8> {
    match real {
        Some(m) if rng.chance(700) => {
            let mut b = m.encode();
            for _ in 0..rng.range(1, 4) {
                let i = rng.below(b.len() as u64) as usize;
                b[i] ^= 1 << rng.below(8);
            }
            if rng.chance(200) {
                b.truncate(rng.below(b.len() as u64) as usize);
            }
            b
        }
        _ => (0..rng.below(64)).map(|_| rng.next() as u8).collect(),
    }
}
