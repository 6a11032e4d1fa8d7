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
        n.step(Message {
            to: 1,
            ..propose_msg(2, b"x")
        }),
        Err(Error::ProposalDropped),
        "a forwarded proposal reaches the proposal logic"
    );
    let read = Message {
        entries: vec![ent(0, 0)],
        ..msg(MessageType::ReadIndex, 2, 1, 0)
    };
    assert!(!is_invalid(n.step(read)));
}

/// Node 1 as leader of {1, 2, 3} in term 1 (vote from 2), messages drained.
fn leader_1_of_3() -> RawNode<MemStorage> {
    let mut n = raw(1, &[1, 2, 3]);
    n.campaign().unwrap();
    n.step(msg(MessageType::RequestVoteResponse, 2, 1, 1))
        .unwrap();
    assert_eq!(n.status().soft_state.raft_state, StateRole::Leader);
    let _ = n.ready();
    n
}

fn snapshot(index: u64, term: u64, voters: &[u64], learners: &[u64]) -> crate::Snapshot {
    crate::Snapshot {
        metadata: crate::SnapshotMetadata {
            index,
            term,
            conf_state: ConfState {
                voters: voters.to_vec(),
                learners: learners.to_vec(),
            },
        },
        data: Bytes::new(),
    }
}

fn snap_msg(s: crate::Snapshot, term: u64) -> Message {
    Message {
        snapshot: Some(s),
        ..msg(MessageType::Snapshot, 2, 1, term)
    }
}

/// `reject_hint` is the follower's guess at a matching index, never above the
/// rejected index; `u64::MAX` overflowed `match_hint + 1` in the probe logic.
#[test]
fn reject_hint_above_rejected_index_is_refused() {
    let mut n = leader_1_of_3();
    let last = n.status().progress.unwrap()[&2].next_index - 1;
    let rej = Message {
        index: last,
        reject: true,
        reject_hint: u64::MAX,
        ..msg(MessageType::AppendResponse, 2, 1, 1)
    };
    assert!(is_invalid(n.step(rej)));
    // A hint within range is still used.
    let rej = Message {
        index: last,
        reject: true,
        reject_hint: 0,
        ..msg(MessageType::AppendResponse, 2, 1, 1)
    };
    n.step(rej).unwrap();
}

/// Entry indexes after `index = u64::MAX` cannot exist; checking contiguity
/// overflowed.
#[test]
fn append_at_max_index_is_refused() {
    let mut n = raw(1, &[1, 2, 3]);
    let app = Message {
        index: u64::MAX,
        log_term: 1,
        entries: vec![ent(0, 1)],
        ..msg(MessageType::Append, 2, 1, 1)
    };
    assert!(is_invalid(n.step(app)));
    let app = Message {
        index: u64::MAX - 1,
        log_term: 1,
        entries: vec![ent(u64::MAX, 1)],
        ..msg(MessageType::Append, 2, 1, 1)
    };
    assert!(
        is_invalid(n.step(app)),
        "an entry at u64::MAX has no next index"
    );
}

/// A snapshot at `u64::MAX` overflowed the first index (`index + 1`).
#[test]
fn snapshot_at_max_index_is_refused() {
    let mut n = raw(1, &[1, 2, 3]);
    let m = snap_msg(snapshot(u64::MAX, 1, &[1, 2, 3], &[]), 1);
    assert!(is_invalid(n.step(m)));
    assert_eq!(n.status().hard_state.commit, 0);
}

/// Snapshot metadata that cannot describe a real log position or membership.
#[test]
fn snapshot_metadata_is_validated() {
    let cases = [
        ("term 0", snapshot(5, 0, &[1, 2, 3], &[]), 1),
        ("index 0", snapshot(0, 1, &[1, 2, 3], &[]), 1),
        (
            "term above message term",
            snapshot(5, 3, &[1, 2, 3], &[]),
            2,
        ),
        ("no voters", snapshot(5, 1, &[], &[1, 2, 3]), 1),
        ("voter and learner", snapshot(5, 1, &[1, 2], &[2]), 1),
        ("duplicate voter", snapshot(5, 1, &[1, 2, 2], &[]), 1),
        ("voter 0", snapshot(5, 1, &[0, 1, 2], &[]), 1),
    ];
    for (what, s, term) in cases {
        let mut n = raw(1, &[1, 2, 3]);
        assert!(is_invalid(n.step(snap_msg(s, term))), "{what}");
        let st = n.status();
        assert_eq!(st.hard_state.commit, 0, "{what}");
        assert!(!n.has_ready() || n.ready().snapshot.is_none(), "{what}");
    }
}

/// A snapshot older than what the follower already holds is not installed (it is
/// answered with the commit index, so the leader resumes from there).
#[test]
fn snapshot_below_first_index_is_not_installed() {
    let mut store = store_with(&[1, 2, 3]);
    store
        .apply_snapshot(snapshot(10, 2, &[1, 2, 3], &[]))
        .unwrap();
    let mut n = RawNode::new(&cfg(1), store).unwrap();
    n.step(snap_msg(snapshot(4, 1, &[1, 2, 3], &[]), 2))
        .unwrap();
    let rd = n.ready();
    assert!(rd.snapshot.is_none());
    assert_eq!(rd.messages.len(), 1);
    assert_eq!(
        (rd.messages[0].msg_type, rd.messages[0].index),
        (MessageType::AppendResponse, 10)
    );
}

/// MemStorage refuses a snapshot at or below its compaction point (it would
/// roll the log back) and metadata that names no position or membership.
#[test]
fn mem_storage_apply_snapshot_validates() {
    let mut s = store_with(&[1, 2, 3]);
    s.append(&[ent(1, 1), ent(2, 1), ent(3, 1), ent(4, 1)])
        .unwrap();
    s.compact(3).unwrap();
    assert_eq!(
        s.apply_snapshot(snapshot(2, 1, &[1, 2, 3], &[])),
        Err(Error::SnapshotOutOfDate)
    );
    assert_eq!(crate::Storage::first_index(&s), Ok(4));
    for bad in [
        snapshot(9, 0, &[1, 2, 3], &[]),
        snapshot(9, 1, &[], &[]),
        snapshot(9, 1, &[1, 2], &[1]),
        snapshot(u64::MAX, 1, &[1, 2, 3], &[]),
    ] {
        assert!(
            matches!(s.apply_snapshot(bad.clone()), Err(Error::Storage(_))),
            "{bad:?}"
        );
    }
    assert_eq!(crate::Storage::last_index(&s), Ok(4));
}

/// Committed entries compacted away before they were applied cannot be handed out:
/// skipping them silently would leave a hole in the state machine.
#[test]
#[should_panic(expected = "compacted before they were applied")]
fn ready_refuses_to_skip_compacted_unapplied_entries() {
    let mut store = store_with(&[1, 2, 3]);
    store
        .append(&[ent(1, 1), ent(2, 1), ent(3, 1), ent(4, 1), ent(5, 1)])
        .unwrap();
    store.set_hard_state(crate::HardState {
        term: 1,
        vote: 0,
        commit: 5,
    });
    let mut n = RawNode::new(&cfg(1), store).unwrap();
    // The application compacts entries it has not applied.
    n.mut_store().compact(3).unwrap();
    let rd = n.ready();
    panic!("handed out {:?} after applied 0", rd.committed_entries);
}

#[test]
fn try_ready_reports_compacted_unapplied_entries() {
    let mut store = store_with(&[1, 2, 3]);
    store.append(&[ent(1, 1), ent(2, 1), ent(3, 1)]).unwrap();
    store.set_hard_state(crate::HardState {
        term: 1,
        vote: 0,
        commit: 3,
    });
    let mut n = RawNode::new(&cfg(1), store).unwrap();
    n.mut_store().compact(2).unwrap();
    assert!(n.has_ready());
    assert_eq!(
        n.try_ready().err(),
        Some(Error::Storage(
            "committed entries 1..3 were compacted before they were applied \
             (applied 0, commit 3): compact only applied entries"
                .into()
        ))
    );
}

/// A term of `u64::MAX` leaves no next term: a node that adopted it overflowed on
/// its next campaign (`term + 1`).
#[test]
fn max_term_is_refused() {
    let mut n = raw(1, &[1, 2, 3]);
    let vote = Message {
        index: 9,
        log_term: 9,
        ..msg(MessageType::RequestVote, 2, 1, u64::MAX)
    };
    assert!(is_invalid(n.step(vote)));
    assert_eq!(n.status().hard_state.term, 0);
    for _ in 0..30 {
        n.tick();
    }
    assert_eq!(n.status().soft_state.raft_state, StateRole::Candidate);
}

/// A message addressed to another member is a routing bug, not input for this node.
#[test]
fn message_for_another_member_is_refused() {
    let mut n = raw(1, &[1, 2, 3]);
    let hb = msg(MessageType::Heartbeat, 2, 3, 1);
    assert!(is_invalid(n.step(hb)));
    assert_eq!(n.status().hard_state.term, 0);
}
