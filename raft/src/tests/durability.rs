//! Commit counts durable copies only: the leader's own entries count toward the
//! quorum once the application persisted them (etcd-io/raft self-ack after
//! persistence, `raft.go` `appendEntry`; Cairn issue 6).

use super::*;
use crate::raw_node::RawNode;
use crate::StateRole;

fn leader_of_3() -> RawNode<MemStorage> {
    let mut n = RawNode::new(&cfg(1), store_with(&[1, 2, 3])).unwrap();
    n.campaign().unwrap();
    n.step(msg(MessageType::RequestVoteResponse, 2, 1, 1))
        .unwrap();
    assert_eq!(n.status().soft_state.raft_state, StateRole::Leader);
    n
}

fn ack(from: u64, index: u64) -> Message {
    Message {
        index,
        ..msg(MessageType::AppendResponse, from, 1, 1)
    }
}

/// In a 3-node cluster one follower's acknowledgement plus the leader's copy is a
/// quorum only once the leader's copy is durable. Counting the leader's entries as
/// matched when appended let an entry commit, and be applied and answered, with one
/// durable copy: a crash of the leader before its fsync and of the follower then
/// loses a committed entry.
#[test]
fn leader_does_not_count_its_unpersisted_entries() {
    let mut n = leader_of_3();
    let rd = n.ready();
    assert_eq!(rd.entries.len(), 1, "the new leader's empty entry");
    // Follower 2 persisted the entry and acknowledges it before the leader's own
    // write finished (a leader may replicate in parallel with its disk write, Raft
    // thesis §10.2.1).
    n.step(ack(2, 1)).unwrap();
    assert_eq!(n.status().hard_state.commit, 0, "one durable copy of three");
    assert_eq!(n.status().progress.unwrap()[&1].matched, 0);
    // The application persists the Ready and advances: now two copies are durable.
    n.mut_store().append(&rd.entries).unwrap();
    assert!(rd.committed_entries.is_empty());
    n.advance(rd);
    assert_eq!(n.status().progress.unwrap()[&1].matched, 1);
    assert_eq!(n.status().hard_state.commit, 1);
    let rd = n.ready();
    assert_eq!(rd.committed_entries.len(), 1);
    n.advance(rd);
}

/// Without any follower, the leader's own persisted copy is still one of three.
#[test]
fn leader_alone_commits_nothing_in_three_nodes() {
    let mut n = leader_of_3();
    let rd = n.ready();
    n.mut_store().append(&rd.entries).unwrap();
    n.advance(rd);
    assert_eq!(n.status().progress.unwrap()[&1].matched, 1);
    assert_eq!(n.status().hard_state.commit, 0);
    n.step(ack(3, 1)).unwrap();
    assert_eq!(n.status().hard_state.commit, 1);
}

/// A single voter commits its entries once they are persisted: the commit index
/// moves at `advance`, and the committed entries come in the next Ready.
#[test]
fn single_voter_commits_after_persisting() {
    let mut n = RawNode::new(&cfg(1), store_with(&[1])).unwrap();
    n.campaign().unwrap();
    let rd = n.ready();
    assert_eq!(rd.entries.len(), 1);
    assert!(rd.committed_entries.is_empty());
    assert_eq!(rd.hard_state.map(|h| h.commit), Some(0));
    n.mut_store().append(&rd.entries).unwrap();
    n.advance(rd);
    assert!(n.has_ready());
    let rd = n.ready();
    assert_eq!(rd.hard_state.map(|h| h.commit), Some(1));
    assert_eq!(rd.committed_entries.len(), 1);
    assert!(!rd.must_sync);
    n.advance(rd);
    assert!(!n.has_ready());
}
