//! The Raft peer message codec (`raft::Message::decode`) and the validation behind
//! `RawNode::step` (`Error::MessageInvalid`), on a follower and on a leader.
//!
//! Input: the bytes of one message as a peer sends them. Properties: decoding never
//! panics; a decoded message encodes to bytes that decode to the same message; stepping
//! it (as sent, and re-addressed to the node from a member) into a follower and a leader
//! of a 3-voter group, then handling every Ready the way the server does (persist
//! entries, hard state and snapshot to the storage, advance), never panics — a message
//! that would break the log must be refused with an error.

use bytes::Bytes;
use raft::{
    ConfState, Config, Entry, HardState, MemStorage, Message, MessageType, RawNode, StateRole,
};

use crate::{Target, Verdict};

/// Ready rounds handled after a step (each either makes progress or ends the loop).
const READY_ROUNDS_MAX: usize = 16;
/// The node under test and its peers.
const VOTERS: [u64; 3] = [1, 2, 3];

pub(crate) struct RaftMessages;

/// A member with entries 1..=5 of term 1 (3 committed) and hard state term 1.
fn node() -> RawNode<MemStorage> {
    let mut store = MemStorage::new_with_conf_state(ConfState {
        voters: VOTERS.to_vec(),
        learners: vec![],
    });
    let entries: Vec<Entry> = (1..=5)
        .map(|index| Entry {
            term: 1,
            index,
            data: Bytes::from(format!("entry {index}")),
            ..Default::default()
        })
        .collect();
    store.append(&entries).expect("contiguous entries");
    store.set_hard_state(HardState {
        term: 1,
        vote: 0,
        commit: 3,
    });
    let config = Config {
        seed: 1,
        ..Config::new(1)
    };
    RawNode::new(&config, store).expect("a valid node")
}

/// Handles Readys as the server does; storage errors end the loop (the server would stop).
fn drive(node: &mut RawNode<MemStorage>) {
    for _ in 0..READY_ROUNDS_MAX {
        if !node.has_ready() {
            return;
        }
        let Ok(ready) = node.try_ready() else {
            return;
        };
        let store = node.mut_store();
        if let Some(snapshot) = &ready.snapshot {
            if store.apply_snapshot(snapshot.clone()).is_err() {
                return;
            }
        }
        if store.append(&ready.entries).is_err() {
            return;
        }
        if let Some(hs) = ready.hard_state {
            store.set_hard_state(hs);
        }
        node.advance(ready);
    }
}

fn leader() -> RawNode<MemStorage> {
    let mut n = node();
    n.campaign().expect("campaign");
    drive(&mut n);
    let term = n.status().hard_state.term;
    let grant = |msg_type| Message {
        to: 1,
        from: 2,
        term,
        ..Message::new(msg_type)
    };
    n.step(grant(MessageType::RequestPreVoteResponse))
        .expect("pre-vote granted");
    drive(&mut n);
    let term = n.status().hard_state.term;
    n.step(Message {
        term,
        ..grant(MessageType::RequestVoteResponse)
    })
    .expect("vote granted");
    drive(&mut n);
    assert_eq!(n.status().soft_state.raft_state, StateRole::Leader);
    n
}

/// Steps `m` into `node`; true if the node took it.
fn step(mut node: RawNode<MemStorage>, m: Message) -> bool {
    let ok = node.step(m).is_ok();
    drive(&mut node);
    ok
}

impl Target for RaftMessages {
    fn name(&self) -> &'static str {
        "raft"
    }

    fn seeds(&mut self) -> Vec<Vec<u8>> {
        let e = |index, term| Entry {
            term,
            index,
            data: Bytes::from_static(b"data"),
            ..Default::default()
        };
        let m = |msg_type| Message {
            to: 1,
            from: 2,
            term: 2,
            ..Message::new(msg_type)
        };
        let snapshot = raft::Snapshot {
            metadata: raft::SnapshotMetadata {
                index: 10,
                term: 2,
                conf_state: ConfState {
                    voters: VOTERS.to_vec(),
                    learners: vec![4],
                },
            },
            data: Bytes::from_static(b"snapshot"),
        };
        [
            Message {
                index: 5,
                log_term: 1,
                commit: 6,
                entries: vec![e(6, 2), e(7, 2)],
                ..m(MessageType::Append)
            },
            Message {
                index: 5,
                ..m(MessageType::AppendResponse)
            },
            Message {
                index: 4,
                reject: true,
                reject_hint: 2,
                log_term: 1,
                ..m(MessageType::AppendResponse)
            },
            Message {
                index: 5,
                log_term: 1,
                ..m(MessageType::RequestVote)
            },
            Message {
                index: 9,
                log_term: 2,
                term: 3,
                ..m(MessageType::RequestPreVote)
            },
            Message {
                commit: 4,
                context: Bytes::from_static(&[1, 0, 0, 0, 0, 0, 0, 0]),
                ..m(MessageType::Heartbeat)
            },
            Message {
                context: Bytes::from_static(&[1, 0, 0, 0, 0, 0, 0, 0]),
                ..m(MessageType::HeartbeatResponse)
            },
            Message {
                snapshot: Some(snapshot),
                ..m(MessageType::Snapshot)
            },
            Message {
                term: 0,
                entries: vec![e(0, 0)],
                ..m(MessageType::Propose)
            },
            Message {
                term: 0,
                entries: vec![e(0, 0)],
                context: Bytes::from_static(b"tag"),
                ..m(MessageType::ReadIndex)
            },
            m(MessageType::TimeoutNow),
            m(MessageType::TransferLeader),
        ]
        .iter()
        .map(Message::encode)
        .collect()
    }

    fn execute(&mut self, input: &[u8]) -> Result<Verdict, String> {
        let Ok(m) = Message::decode(input) else {
            return Ok(Verdict::Rejected);
        };
        match Message::decode(&m.encode()) {
            Ok(back) if back == m => {}
            Ok(_) => return Err("a decoded message re-encodes to a different message".into()),
            Err(e) => return Err(format!("a decoded message re-encodes undecodable: {e}")),
        }
        let addressed = Message {
            to: 1,
            from: VOTERS[1 + (m.from % 2) as usize],
            ..m.clone()
        };
        let mut took = false;
        for message in [m, addressed] {
            took |= step(node(), message.clone());
            took |= step(leader(), message);
        }
        Ok(if took {
            Verdict::Accepted
        } else {
            Verdict::Rejected
        })
    }
}
