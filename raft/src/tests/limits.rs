//! Resource limits ([`crate::Limits`]): uncommitted bytes on the leader, committed
//! bytes per Ready, pending ReadIndex requests (etcd `MaxUncommittedEntriesSize`,
//! `MaxCommittedSizePerReady`; Cairn issue 6).

use super::*;
use crate::raw_node::RawNode;
use crate::{Error, Limits, StateRole};

fn leader_of_3(limits: Limits) -> RawNode<MemStorage> {
    let mut n = RawNode::new_with_limits(&cfg(1), &limits, store_with(&[1, 2, 3])).unwrap();
    n.campaign().unwrap();
    n.step(msg(MessageType::RequestVoteResponse, 2, 1, 1))
        .unwrap();
    assert_eq!(n.status().soft_state.raft_state, StateRole::Leader);
    n
}

/// Persists and advances every pending Ready; returns the committed entries.
fn drain(n: &mut RawNode<MemStorage>) -> Vec<Entry> {
    let mut applied = Vec::new();
    while n.has_ready() {
        let rd = n.ready();
        n.mut_store().append(&rd.entries).unwrap();
        if let Some(hs) = rd.hard_state {
            n.mut_store().set_hard_state(hs);
        }
        applied.extend(rd.committed_entries.iter().cloned());
        n.advance(rd);
    }
    applied
}

fn data(n: usize) -> Bytes {
    Bytes::from(vec![7u8; n])
}

#[test]
fn uncommitted_bytes_cap_drops_proposals_until_entries_apply() {
    let limits = Limits {
        max_uncommitted_entries_bytes: 100,
        ..Limits::default()
    };
    let mut n = leader_of_3(limits);
    drain(&mut n);
    // The first proposal is accepted whatever its size while nothing is uncommitted.
    n.propose(Bytes::new(), data(60)).unwrap();
    n.propose(Bytes::new(), data(40)).unwrap();
    assert_eq!(
        n.propose(Bytes::new(), data(1)),
        Err(Error::ProposalDropped),
        "101 bytes uncommitted"
    );
    n.propose(Bytes::new(), Bytes::new())
        .expect("an empty entry is never refused");
    drain(&mut n);
    // Follower 2 acknowledges everything: the entries commit and apply.
    let last = n.status().progress.unwrap()[&1].next_index - 1;
    n.step(Message {
        index: last,
        ..msg(MessageType::AppendResponse, 2, 1, 1)
    })
    .unwrap();
    let applied = drain(&mut n);
    assert_eq!(applied.last().map(|e| e.index), Some(last));
    n.propose(Bytes::new(), data(100)).unwrap();
}

#[test]
fn committed_bytes_per_ready_cap_splits_apply_batches() {
    let limits = Limits {
        // 100 data + 16 header bytes per entry: two entries per Ready.
        max_committed_entries_bytes_per_ready: 250,
        ..Limits::default()
    };
    let mut n = RawNode::new_with_limits(&cfg(2), &limits, store_with(&[1, 2, 3])).unwrap();
    let entries: Vec<Entry> = (1..=5)
        .map(|i| Entry {
            index: i,
            term: 1,
            data: data(100),
            ..Default::default()
        })
        .collect();
    n.step(Message {
        entries,
        commit: 5,
        ..msg(MessageType::Append, 1, 2, 1)
    })
    .unwrap();
    let mut batches = Vec::new();
    while n.has_ready() {
        let rd = n.ready();
        n.mut_store().append(&rd.entries).unwrap();
        batches.push(
            rd.committed_entries
                .iter()
                .map(|e| e.index)
                .collect::<Vec<_>>(),
        );
        n.advance(rd);
    }
    assert_eq!(batches, vec![vec![1, 2], vec![3, 4], vec![5]]);
}

#[test]
fn pending_read_index_requests_are_bounded() {
    let limits = Limits {
        max_pending_read_index_requests: 2,
        ..Limits::default()
    };
    let mut n = leader_of_3(limits);
    // Before the leader commits an entry of its term, reads wait in one queue...
    n.try_read_index(Bytes::from_static(b"a")).unwrap();
    n.try_read_index(Bytes::from_static(b"b")).unwrap();
    assert_eq!(
        n.try_read_index(Bytes::from_static(b"c")),
        Err(Error::ReadIndexQueueFull {
            max_pending_read_index_requests: 2
        })
    );
    // ...and after it, in the heartbeat rounds; the limit covers both.
    drain(&mut n);
    n.step(Message {
        index: 1,
        ..msg(MessageType::AppendResponse, 2, 1, 1)
    })
    .unwrap();
    assert_eq!(n.status().hard_state.commit, 1);
    // The queued reads moved to heartbeat rounds; the newest confirms both.
    let rd = n.ready();
    let hb = rd
        .messages
        .iter()
        .rev()
        .find(|m| m.msg_type == MessageType::Heartbeat && m.to == 2)
        .expect("heartbeat of the pending round")
        .clone();
    n.mut_store().append(&rd.entries).unwrap();
    n.advance(rd);
    let fwd = Message {
        entries: vec![Entry {
            data: Bytes::from_static(b"f"),
            ..Default::default()
        }],
        ..msg(MessageType::ReadIndex, 3, 1, 0)
    };
    assert_eq!(
        n.step(fwd),
        Err(Error::ReadIndexQueueFull {
            max_pending_read_index_requests: 2
        }),
        "a forwarded read counts too"
    );
    // A quorum acknowledges the round: the reads are answered and room frees up.
    n.step(Message {
        context: hb.context,
        ..msg(MessageType::HeartbeatResponse, 2, 1, 1)
    })
    .unwrap();
    let rd = n.ready();
    assert_eq!(rd.read_states.len(), 2);
    n.advance(rd);
    n.try_read_index(Bytes::from_static(b"d")).unwrap();
}

#[test]
fn read_index_without_leader_is_reported() {
    let mut n = RawNode::new(&cfg(2), store_with(&[1, 2, 3])).unwrap();
    assert_eq!(
        n.try_read_index(Bytes::from_static(b"a")),
        Err(Error::ReadIndexNoLeader)
    );
}

#[test]
fn limits_validate_names_field_and_range() {
    assert_eq!(Limits::default().validate(), Ok(()));
    let bad = Limits {
        max_pending_read_index_requests: 0,
        ..Limits::default()
    };
    assert_eq!(
        bad.validate().unwrap_err().to_string(),
        "raft config invalid: max_pending_read_index_requests must be in 1..=1048576, got 0"
    );
    assert!(matches!(
        RawNode::new_with_limits(&cfg(1), &bad, store_with(&[1])),
        Err(Error::ConfigInvalid(_))
    ));
}
