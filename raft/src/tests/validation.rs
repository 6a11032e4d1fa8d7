//! Peer input that must be refused by [`crate::RawNode::step`] with
//! [`Error::MessageInvalid`] instead of corrupting state or panicking (Cairn issue 6).

use super::*;
use crate::raw_node::RawNode;
use crate::{Error, StateRole};

fn raw(id: u64, voters: &[u64]) -> RawNode<MemStorage> {
    RawNode::new(&cfg(id), store_with(voters)).unwrap()
}

/// Node 1 of {1, 2, 3} as a candidate of term 2 (it voted for itself twice).
fn candidate_at_term_2() -> RawNode<MemStorage> {
    let mut n = raw(1, &[1, 2, 3]);
    n.campaign().unwrap();
    n.campaign().unwrap();
    let st = n.status();
    assert_eq!(st.soft_state.raft_state, StateRole::Candidate);
    assert_eq!((st.hard_state.term, st.hard_state.vote), (2, 1));
    n
}

fn is_invalid(r: crate::Result<()>) -> bool {
    matches!(r, Err(Error::MessageInvalid(_)))
}

/// A term-0 Heartbeat used to skip the term check: the candidate stepped down to
/// term 0, forgot its vote and could vote again in term 2.
#[test]
fn term_zero_heartbeat_does_not_depose_candidate() {
    let mut n = candidate_at_term_2();
    let hb = msg(MessageType::Heartbeat, 2, 1, 0);
    assert!(is_invalid(n.step(hb)));
    let st = n.status();
    assert_eq!(st.soft_state.raft_state, StateRole::Candidate);
    assert_eq!((st.hard_state.term, st.hard_state.vote), (2, 1));
}

/// A term-0 Append used to be appended and committed although no leader of any
/// term sent it.
#[test]
fn term_zero_append_commits_nothing() {
    let mut n = raw(2, &[1, 2, 3]);
    let app = Message {
        entries: vec![ent(1, 0)],
        commit: 1,
        ..msg(MessageType::Append, 1, 2, 0)
    };
    assert!(is_invalid(n.step(app)));
    assert_eq!(n.status().hard_state.commit, 0);
    assert!(!n.has_ready());
}

/// A term-0 Heartbeat committing beyond the last index skipped the log check and hit
/// the commit assertion.
#[test]
fn term_zero_heartbeat_beyond_log_is_an_error_not_a_panic() {
    let mut n = candidate_at_term_2();
    let hb = Message {
        commit: 50,
        ..msg(MessageType::Heartbeat, 2, 1, 0)
    };
    assert!(is_invalid(n.step(hb)));
}

/// A term-0 vote request was answered with a term-0 response, which panicked in
/// `send`.
#[test]
fn term_zero_vote_request_is_an_error_not_a_panic() {
    for t in [MessageType::RequestVote, MessageType::RequestPreVote] {
        let mut n = raw(1, &[1, 2, 3]);
        assert!(is_invalid(n.step(msg(t, 2, 1, 0))), "{t:?}");
        assert_eq!(n.status().hard_state.vote, 0);
    }
}

/// Every peer message kind but the forwarded Propose and ReadIndex must carry a term.
#[test]
fn term_zero_refused_for_every_peer_kind() {
    use MessageType::*;
    for t in [
        Append,
        AppendResponse,
        RequestVote,
        RequestVoteResponse,
        RequestPreVote,
        RequestPreVoteResponse,
        Snapshot,
        Heartbeat,
        HeartbeatResponse,
        TransferLeader,
        TimeoutNow,
        ReadIndexResponse,
    ] {
        let mut n = raw(1, &[1, 2, 3]);
        let mut m = msg(t, 2, 1, 0);
        if t == Snapshot {
            m.snapshot = Some(crate::message::Snapshot {
                metadata: crate::message::SnapshotMetadata {
                    index: 5,
                    term: 1,
                    conf_state: ConfState {
                        voters: vec![1, 2, 3],
                        learners: vec![],
                    },
                },
                data: Bytes::new(),
            });
        }
        assert!(is_invalid(n.step(m)), "{t:?} with term 0 was accepted");
    }
    // Forwarded requests travel without a term (etcd `send`).
    let mut n = raw(1, &[1, 2, 3]);
    assert_eq!(
        n.step(propose_msg(2, b"x")),
        Err(Error::ProposalDropped),
        "a forwarded proposal reaches the proposal logic"
    );
    let read = Message {
        entries: vec![ent(0, 0)],
        ..msg(MessageType::ReadIndex, 2, 1, 0)
    };
    assert!(!is_invalid(n.step(read)));
}
