//! Membership changes that touch the leader itself (Cairn issue 6).

use super::*;
use crate::message::{ConfChange, ConfChangeType, EntryType};
use crate::StateRole;

fn remove(id: u64) -> ConfChange {
    ConfChange {
        change_type: ConfChangeType::RemoveNode,
        node_id: id,
        context: Bytes::new(),
    }
}

fn propose_cc(cc: &ConfChange) -> Message {
    Message {
        entries: vec![Entry {
            entry_type: EntryType::ConfChange,
            data: cc.encode(),
            ..Default::default()
        }],
        ..msg(MessageType::Propose, 1, 1, 0)
    }
}

fn with_pv_cq(id: u64) -> Config {
    Config {
        pre_vote: true,
        check_quorum: true,
        ..cfg(id)
    }
}

/// A leader that applies its own removal hands leadership to the most up-to-date
/// remaining voter with TimeoutNow and steps down (etcd 3.5 `StepDownOnRemoval`,
/// Raft thesis §4.2.2). It used to stay leader of a configuration it was not part
/// of, and with check-quorum its followers stayed in its lease for ever.
#[test]
fn leader_applying_its_own_removal_hands_over_and_steps_down() {
    let mut net = Network::with_config(&[1, 2, 3], with_pv_cq);
    net.campaign(1);
    // 3 misses the removal entry: 2 is the most up-to-date remaining voter.
    net.cut(1, 3);
    net.send(vec![propose_cc(&remove(1))]);
    let leader = net.peer(1);
    assert_eq!(leader.raft_log.committed, 2);
    persist_and_apply(leader);
    let cs = leader.apply_conf_change(&remove(1)).unwrap();
    assert_eq!(cs.voters, vec![2, 3]);
    assert_eq!(leader.state, StateRole::Follower);
    assert_eq!(leader.leader_id, 0);
    let out = take_msgs(leader);
    let timeout_now: Vec<u64> = out
        .iter()
        .filter(|m| m.msg_type == MessageType::TimeoutNow)
        .map(|m| m.to)
        .collect();
    assert_eq!(timeout_now, vec![2]);
    net.recover();
    // 2 knows the removal is committed but has not applied it: it may not campaign
    // yet, and does so as soon as it applied the change.
    assert_eq!(net.peer(2).raft_log.committed, 2);
    net.send(out);
    assert_eq!(net.peer(2).state, StateRole::Follower);
    let p2 = net.peer(2);
    persist_and_apply(p2);
    p2.apply_conf_change(&remove(1)).unwrap();
    p2.on_applied();
    let out = take_msgs(p2);
    net.send(out);
    assert_eq!(net.peer(2).state, StateRole::Leader);
    assert_eq!(net.peer(2).term, 2);
    assert_eq!(net.peer(3).leader_id, 2);
    // The removed node never campaigns again.
    for _ in 0..50 {
        let p = net.peer(1);
        p.tick();
        assert!(take_msgs(p).is_empty());
    }
    assert_eq!(net.peer(1).state, StateRole::Follower);
}

/// A leader removing itself from a cluster of one has no one to hand over to: it
/// steps down and the (now empty) cluster stays without a leader.
#[test]
fn sole_leader_removing_itself_steps_down() {
    let mut r = new_raft(1, &[1]);
    r.step(msg(MessageType::Hup, 1, 1, 0)).unwrap();
    assert_eq!(r.state, StateRole::Leader);
    persist_and_apply(&mut r);
    r.apply_conf_change(&remove(1)).unwrap();
    assert_eq!(r.state, StateRole::Follower);
    assert!(take_msgs(&mut r).is_empty());
}
