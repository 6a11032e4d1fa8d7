//! ReadIndex safety: heartbeat rounds are matched by the leader's own sequence
//! number, never by the application's context bytes (Cairn issue 6).

use super::*;
use crate::read_only::ReadState;

fn read_msg(from: u64, to: u64, ctx: &'static [u8]) -> Message {
    Message {
        entries: vec![Entry {
            data: Bytes::from_static(ctx),
            ..Default::default()
        }],
        ..msg(MessageType::ReadIndex, from, to, 0)
    }
}

fn rs(index: u64, ctx: &'static [u8]) -> ReadState {
    ReadState {
        index,
        request_ctx: Bytes::from_static(ctx),
    }
}

/// Two followers whose servers both number their reads from 1 send the same context
/// at once: each must get its own answer (the second used to be dropped as a
/// duplicate, and its read never finished).
#[test]
fn colliding_contexts_from_two_followers_are_both_answered() {
    let mut net = Network::new(&[1, 2, 3]);
    net.campaign(1);
    net.propose(1, b"a");
    let commit = net.peer(1).raft_log.committed;
    net.send(vec![read_msg(2, 2, b"1"), read_msg(3, 3, b"1")]);
    assert_eq!(net.peer(2).read_states, vec![rs(commit, b"1")]);
    assert_eq!(net.peer(3).read_states, vec![rs(commit, b"1")]);
    assert!(net.peer(1).read_states.is_empty());
}

/// Feeds `msgs` to their receivers and returns what those produce.
fn deliver(peers: &mut BTreeMap<u64, Raft<MemStorage>>, msgs: Vec<Message>) -> Vec<Message> {
    let mut out = Vec::new();
    for m in msgs {
        let p = peers.get_mut(&m.to).unwrap();
        p.step(m).unwrap();
        out.extend(take_msgs(p));
    }
    out
}

/// A heartbeat acknowledgement answers the round it was sent for. An ack of an
/// earlier round that arrives late must not confirm a read that began after that
/// round was sent, even when both reads carry the same context bytes (a restarted
/// server reuses its counter): the leader may have been deposed meanwhile, and
/// answering would be a stale read.
#[test]
fn delayed_ack_of_an_earlier_round_does_not_release_a_later_read() {
    let mut net = Network::new(&[1, 2, 3, 4, 5]);
    net.campaign(1);
    let commit = net.peer(1).raft_log.committed;
    let mut peers = std::mem::take(&mut net.peers);

    // Round 1: read "x" of the leader itself; 2 and 3 answer promptly.
    let leader = peers.get_mut(&1).unwrap();
    leader.step(read_msg(1, 1, b"x")).unwrap();
    let round1 = take_msgs(leader);
    assert_eq!(round1.len(), 4);
    let (prompt, late): (Vec<Message>, Vec<Message>) =
        round1.into_iter().partition(|m| m.to == 2 || m.to == 3);
    let acks = deliver(&mut peers, prompt);
    deliver(&mut peers, acks);
    assert_eq!(peers[&1].read_states, vec![rs(commit, b"x")]);
    // 4 and 5 answer round 1 too, but their acks are delayed in the network.
    let late_acks = deliver(&mut peers, late);
    assert_eq!(late_acks.len(), 2);

    // Round 2: follower 2 asks with the same context bytes.
    let leader = peers.get_mut(&1).unwrap();
    leader.read_states.clear();
    leader.step(read_msg(2, 1, b"x")).unwrap();
    let round2 = take_msgs(leader);
    assert_eq!(round2.len(), 4, "round 2 heartbeats");

    // The delayed round-1 acks arrive: with the leader's own vote that is three of
    // five, but none of them answers round 2.
    let out = deliver(&mut peers, late_acks);
    assert!(
        out.iter()
            .all(|m| m.msg_type != MessageType::ReadIndexResponse),
        "released by acks of an earlier round: {out:?}"
    );
    assert!(peers[&1].read_states.is_empty());

    // Acks of round 2 from 2 and 3 confirm it.
    let round2_to_2_3: Vec<Message> = round2
        .into_iter()
        .filter(|m| m.to == 2 || m.to == 3)
        .collect();
    let acks = deliver(&mut peers, round2_to_2_3);
    let out = deliver(&mut peers, acks);
    let resp: Vec<&Message> = out
        .iter()
        .filter(|m| m.msg_type == MessageType::ReadIndexResponse)
        .collect();
    assert_eq!(resp.len(), 1);
    assert_eq!((resp[0].to, resp[0].index), (2, commit));
    assert_eq!(resp[0].entries[0].data.as_ref(), b"x");
}

/// A follower that forwards a read it received from another member (that member
/// thought it was the leader) keeps the original sender, so the answer goes back
/// to the member that asked.
#[test]
fn re_forwarded_read_keeps_its_sender() {
    let mut net = Network::new(&[1, 2, 3]);
    net.campaign(1);
    net.propose(1, b"a");
    let commit = net.peer(1).raft_log.committed;
    // 2 sends its read to 3 (stale leader knowledge); 3 forwards it to 1.
    let node2 = net.peer(2);
    node2.leader_id = 3;
    node2.step(read_msg(2, 2, b"r")).unwrap();
    let forwarded = take_msgs(node2);
    assert_eq!(forwarded[0].to, 3);
    net.send(forwarded);
    assert_eq!(net.peer(2).read_states, vec![rs(commit, b"r")]);
    assert!(net.peer(3).read_states.is_empty());
}

/// Heartbeats sent on a tick while reads are pending carry the newest round, so a
/// lost round is retried and still answers the reads.
#[test]
fn tick_heartbeat_retries_the_pending_round() {
    let mut net = Network::new(&[1, 2, 3]);
    net.campaign(1);
    let commit = net.peer(1).raft_log.committed;
    let leader = net.peer(1);
    leader.step(read_msg(1, 1, b"a")).unwrap();
    leader.step(read_msg(1, 1, b"b")).unwrap();
    take_msgs(leader); // both rounds lost
    net.send(vec![msg(MessageType::Beat, 1, 1, 0)]);
    assert_eq!(
        net.peer(1).read_states,
        vec![rs(commit, b"a"), rs(commit, b"b")]
    );
}
