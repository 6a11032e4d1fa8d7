//! A follower's forwarded reads across a restart (found by the simulation,
//! `raft/tests/simulation.rs`, with members that number their reads from 1 again
//! after a restart, as the server does).

use super::*;
use crate::read_only::ReadState;

fn read_msg(id: u64, ctx: &'static [u8]) -> Message {
    Message {
        entries: vec![Entry {
            data: Bytes::from_static(ctx),
            ..Default::default()
        }],
        ..msg(MessageType::ReadIndex, id, id, 0)
    }
}

/// Node 2 forwards read "1" and crashes before the answer arrives; restarted (new
/// seed) it asks read "1" again after more writes were acknowledged. The late
/// answer to the first read carries an older read index: taking it for the second
/// read's answer would serve a stale read. Only the second read's own answer counts.
#[test]
fn answer_to_a_read_from_before_a_restart_is_dropped() {
    let mut net = Network::new(&[1, 2, 3]);
    net.campaign(1);
    net.propose(1, b"a");
    let old_commit = net.peer(1).raft_log.committed;

    // First read: forwarded by 2, answered by 1; the answer is held in flight.
    let node2 = net.peer(2);
    node2.step(read_msg(2, b"1")).unwrap();
    let forwarded = take_msgs(node2);
    assert_eq!(forwarded.len(), 1);
    let leader = net.peer(1);
    leader.step(forwarded[0].clone()).unwrap();
    let round = take_msgs(leader);
    let mut late_answer = Vec::new();
    let mut queue: VecDeque<Message> = round.into();
    while let Some(m) = queue.pop_front() {
        if m.msg_type == MessageType::ReadIndexResponse {
            late_answer.push(m);
            continue;
        }
        let p = net.peer(m.to);
        let _ = p.step(m);
        queue.extend(take_msgs(p));
    }
    assert_eq!(late_answer.len(), 1);
    assert_eq!(late_answer[0].index, old_commit);

    // More writes are acknowledged, then 2 restarts from its storage with a new seed.
    net.propose(1, b"b");
    let new_commit = net.peer(1).raft_log.committed;
    assert!(new_commit > old_commit);
    let node2 = net.peer(2);
    persist_and_apply(node2);
    let mut store = node2.raft_log.store.clone();
    store.set_hard_state(node2.hard_state());
    let restarted = raft_with(Config { seed: 8, ..cfg(2) }, store);
    net.peers.insert(2, restarted);
    let term = net.peer(1).term;
    net.send(vec![msg(MessageType::Heartbeat, 1, 2, term)]);
    assert_eq!(net.peer(2).leader_id, 1);

    // Second read "1" is forwarded; the late answer to the first arrives first.
    let node2 = net.peer(2);
    node2.step(read_msg(2, b"1")).unwrap();
    let second = take_msgs(node2);
    node2.step(late_answer[0].clone()).unwrap();
    assert!(
        node2.read_states.is_empty(),
        "the answer to the read from before the restart was taken: {:?}",
        node2.read_states
    );
    net.send(second);
    assert_eq!(
        net.peer(2).read_states,
        vec![ReadState {
            index: new_commit,
            request_ctx: Bytes::from_static(b"1"),
        }]
    );
}
