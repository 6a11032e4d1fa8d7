//! Scripted scenarios: pre-vote, check-quorum, stickiness, ReadIndex, leader
//! transfer, snapshots, membership changes (after etcd-io/raft `raft_test.go`).

use super::*;
use crate::message::{ConfChange, ConfChangeType, EntryType};
use crate::progress::ProgressState;
use crate::{Error, StateRole};

fn cfg_pv_cq(id: u64) -> Config {
    Config {
        pre_vote: true,
        check_quorum: true,
        ..cfg(id)
    }
}

impl Network {
    /// Ticks every node once, delivering what each tick produces.
    fn tick_all(&mut self) {
        let ids: Vec<u64> = self.peers.keys().copied().collect();
        for id in ids {
            let p = self.peer(id);
            p.tick();
            let out = take_msgs(p);
            self.send(out);
        }
    }

    fn leader(&self) -> Option<u64> {
        self.peers
            .values()
            .find(|r| r.state == StateRole::Leader)
            .map(|r| r.id)
    }
}

fn read_msg(from: u64, to: u64, ctx: &'static [u8]) -> Message {
    Message {
        entries: vec![Entry {
            data: Bytes::from_static(ctx),
            ..Default::default()
        }],
        ..msg(MessageType::ReadIndex, from, to, 0)
    }
}

/// A single voter leads at once and commits each entry as soon as it is persisted.
#[test]
fn single_voter_campaign_commits_once_persisted() {
    let mut r = new_raft(1, &[1]);
    r.step(msg(MessageType::Hup, 1, 1, 0)).unwrap();
    assert_eq!(r.state, StateRole::Leader);
    assert_eq!((r.term, r.vote, r.raft_log.committed), (1, 1, 0));
    persist(&mut r);
    assert_eq!(r.raft_log.committed, 1);
    r.step(propose_msg(1, b"x")).unwrap();
    assert_eq!(r.raft_log.committed, 1);
    persist(&mut r);
    assert_eq!(r.raft_log.committed, 2);
    assert!(take_msgs(&mut r).is_empty());
}

/// Without a known leader a proposal is dropped; a follower that knows the leader
/// forwards it instead (see `follower_forwards_proposals_to_the_leader`).
#[test]
fn proposals_dropped_without_leadership() {
    let mut net = Network::new(&[1, 2, 3]);
    assert_eq!(
        net.peer(1).step(propose_msg(1, b"x")),
        Err(Error::ProposalDropped)
    );
    net.campaign(1);
    assert_eq!(net.peer(2).step(propose_msg(2, b"x")), Ok(()));
    let forwarded = take_msgs(net.peer(2));
    assert_eq!(forwarded.len(), 1);
    assert_eq!(
        (forwarded[0].msg_type, forwarded[0].to),
        (MessageType::Propose, 1)
    );
    net.isolate(1);
    net.peer(2).step(msg(MessageType::Hup, 2, 2, 0)).unwrap();
    assert_eq!(net.peer(2).state, StateRole::Candidate);
    assert_eq!(
        net.peer(2).step(propose_msg(2, b"x")),
        Err(Error::ProposalDropped)
    );
}

/// Two candidates split the vote; the one with the longer log wins later, and the
/// other's uncommitted entry is overwritten (etcd TestDuelingCandidates).
#[test]
fn dueling_candidates() {
    let mut net = Network::new(&[1, 2, 3]);
    net.cut(1, 3);
    net.campaign(1);
    net.campaign(3);
    assert_eq!(net.peer(1).state, StateRole::Leader);
    assert_eq!(net.peer(3).state, StateRole::Candidate);
    net.recover();
    // 3 has a shorter log: it cannot win, and steps down on seeing term 2.
    net.campaign(3);
    assert_eq!(net.peer(3).state, StateRole::Follower);
    assert_eq!(net.peer(3).term, 2);
    assert_eq!(net.peer(1).state, StateRole::Follower);
    assert_eq!(net.log_of(1), vec![(1, 1)]);
    assert_eq!(net.log_of(2), vec![(1, 1)]);
    assert_eq!(net.log_of(3), vec![]);
}

/// A partitioned node with pre-vote does not raise its term, so it does not
/// depose the leader when it returns.
#[test]
fn pre_vote_keeps_partitioned_node_from_disrupting() {
    let mut net = Network::with_config(&[1, 2, 3], cfg_pv_cq);
    net.campaign(1);
    assert_eq!(net.leader(), Some(1));
    let term = net.peer(1).term;
    net.isolate(3);
    for _ in 0..100 {
        net.tick_all();
    }
    assert_eq!(net.peer(3).term, term);
    assert_eq!(net.peer(3).state, StateRole::PreCandidate);
    net.recover();
    for _ in 0..30 {
        net.tick_all();
    }
    assert_eq!(net.leader(), Some(1));
    assert_eq!(net.peer(1).term, term);
    assert_eq!(net.peer(3).state, StateRole::Follower);
    assert_eq!(net.peer(3).leader_id, 1);
}

/// Without pre-vote the same returning node forces a new election at a higher term.
#[test]
fn without_pre_vote_partitioned_node_raises_term() {
    let mut net = Network::new(&[1, 2, 3]);
    net.campaign(1);
    net.isolate(3);
    net.propose(1, b"a");
    for _ in 0..100 {
        net.tick_all();
    }
    let t3 = net.peer(3).term;
    assert!(t3 > 1);
    net.recover();
    net.campaign(3);
    // 1 and 2 moved to 3's higher term, but 3's log is behind so it lost.
    assert_eq!(net.peer(1).term, t3 + 1);
    assert_eq!(net.peer(1).state, StateRole::Follower);
    assert_eq!(net.peer(3).state, StateRole::Follower);
}

/// Check-quorum: a leader cut off from the majority steps down after an election
/// timeout.
#[test]
fn check_quorum_leader_steps_down() {
    let mut net = Network::with_config(&[1, 2, 3], cfg_pv_cq);
    net.campaign(1);
    net.isolate(1);
    // The first check still sees the answers to the no-op; the second fails.
    let et = net.peer(1).election_timeout;
    for _ in 0..et {
        let p = net.peer(1);
        p.tick();
        take_msgs(p);
    }
    assert_eq!(net.peer(1).state, StateRole::Leader);
    for _ in 0..et {
        let p = net.peer(1);
        p.tick();
        take_msgs(p);
    }
    assert_eq!(net.peer(1).state, StateRole::Follower);
    assert_eq!(net.peer(1).leader_id, 0);
}

/// Leader stickiness: a follower that heard from its leader within the election
/// timeout ignores a vote request of a higher term; a transfer vote is honoured.
#[test]
fn leader_stickiness_and_forced_transfer_vote() {
    let mut net = Network::with_config(&[1, 2, 3], cfg_pv_cq);
    net.campaign(1);
    let req = Message {
        index: 10,
        log_term: 10,
        ..msg(MessageType::RequestVote, 3, 2, 5)
    };
    net.peer(2).step(req.clone()).unwrap();
    assert_eq!(net.peer(2).term, 1);
    assert!(take_msgs(net.peer(2)).is_empty());
    let forced = Message {
        context: Bytes::from_static(crate::raft::CAMPAIGN_TRANSFER),
        ..req
    };
    net.peer(2).step(forced).unwrap();
    assert_eq!(net.peer(2).term, 5);
    assert_eq!(net.peer(2).vote, 3);
}

/// A stale leader learns the new term from the AppendResponse its Append provokes.
#[test]
fn stale_leader_steps_down_on_response() {
    let pv = |id| Config {
        pre_vote: true,
        ..cfg(id)
    };
    let mut net = Network::with_config(&[1, 2, 3], pv);
    net.campaign(1);
    net.isolate(1);
    net.campaign(2);
    assert_eq!(net.peer(2).state, StateRole::Leader);
    assert_eq!(net.peer(2).term, 2);
    net.recover();
    // 1 still thinks it leads term 1; its heartbeat is answered with term 2.
    net.send(vec![msg(MessageType::Beat, 1, 1, 0)]);
    assert_eq!(net.peer(1).state, StateRole::Follower);
    assert_eq!(net.peer(1).term, 2);
}

/// ReadIndex on a multi-member leader: one heartbeat round answers every request
/// queued before the acknowledgement.
#[test]
fn read_index_batches_on_heartbeat_round() {
    let mut net = Network::new(&[1, 2, 3]);
    net.campaign(1);
    net.propose(1, b"a");
    let committed = net.peer(1).raft_log.committed;
    assert_eq!(committed, 2);
    let leader = net.peer(1);
    leader.step(read_msg(1, 1, b"r1")).unwrap();
    leader.step(read_msg(1, 1, b"r2")).unwrap();
    let hb = take_msgs(leader);
    assert_eq!(hb.len(), 4);
    assert!(hb.iter().all(|m| m.msg_type == MessageType::Heartbeat));
    assert!(net.peer(1).read_states.is_empty());
    // Deliver only the heartbeats of the second round.
    let round = |m: &Message| crate::read_only::ctx_round(&m.context).unwrap();
    let newest = hb.iter().map(round).max().unwrap();
    let second: Vec<Message> = hb.into_iter().filter(|m| round(m) == newest).collect();
    assert_eq!(second.len(), 2);
    net.send(second);
    let rs = std::mem::take(&mut net.peer(1).read_states);
    assert_eq!(
        rs,
        vec![
            ReadState {
                index: 2,
                request_ctx: Bytes::from_static(b"r1")
            },
            ReadState {
                index: 2,
                request_ctx: Bytes::from_static(b"r2")
            },
        ]
    );
}

/// A follower's read is forwarded to the leader and answered back.
#[test]
fn read_index_from_follower() {
    let mut net = Network::new(&[1, 2, 3]);
    net.campaign(1);
    net.propose(1, b"a");
    net.send(vec![read_msg(2, 2, b"f")]);
    assert_eq!(
        net.peer(2).read_states,
        vec![ReadState {
            index: 2,
            request_ctx: Bytes::from_static(b"f")
        }]
    );
}

/// A new leader holds reads until it commits an entry of its own term.
#[test]
fn read_index_waits_for_commit_in_term() {
    let mut net = Network::new(&[1, 2, 3]);
    net.ignore(MessageType::Append);
    net.campaign(1);
    assert_eq!(net.peer(1).state, StateRole::Leader);
    assert_eq!(net.peer(1).raft_log.committed, 0);
    net.send(vec![read_msg(1, 1, b"x")]);
    assert!(net.peer(1).read_states.is_empty());
    assert_eq!(net.peer(1).pending_read_index_messages.len(), 1);
    net.recover();
    net.send(vec![msg(MessageType::Beat, 1, 1, 0)]);
    assert_eq!(
        net.peer(1).read_states,
        vec![ReadState {
            index: 1,
            request_ctx: Bytes::from_static(b"x")
        }]
    );
}

/// Leader transfer: an up-to-date transferee gets TimeoutNow and wins at once; a
/// lagging one is caught up first, and proposals are dropped meanwhile.
#[test]
fn leader_transfer() {
    let mut net = Network::with_config(&[1, 2, 3], cfg_pv_cq);
    net.campaign(1);
    net.send(vec![msg(MessageType::TransferLeader, 2, 1, 0)]);
    assert_eq!(net.leader(), Some(2));
    assert_eq!(net.peer(2).term, 2);
    assert_eq!(net.peer(1).state, StateRole::Follower);

    net.isolate(3);
    net.propose(2, b"a");
    net.recover();
    net.ignore(MessageType::Append);
    net.send(vec![msg(MessageType::TransferLeader, 3, 2, 0)]);
    assert_eq!(net.peer(2).lead_transferee, Some(3));
    assert_eq!(
        net.peer(2).step(propose_msg(2, b"b")),
        Err(Error::ProposalDropped)
    );
    net.recover();
    // A heartbeat round lets 2 catch 3 up; then TimeoutNow elects 3.
    net.send(vec![msg(MessageType::Beat, 2, 2, 0)]);
    assert_eq!(net.leader(), Some(3));
    assert_eq!(net.log_of(3), net.log_of(2));
}

/// A follower that lags behind the leader's compaction point is sent a snapshot,
/// installs it and then receives the rest of the log.
#[test]
fn snapshot_to_lagging_follower() {
    let mut net = Network::new(&[1, 2, 3]);
    net.campaign(1);
    net.isolate(3);
    for _ in 0..5 {
        net.propose(1, b"x");
    }
    let leader = net.peer(1);
    assert_eq!(leader.raft_log.committed, 6);
    persist_and_apply(leader);
    let cs = leader.prs.conf_state();
    leader
        .raft_log
        .store
        .create_snapshot(5, cs, Bytes::from_static(b"img"))
        .unwrap();
    leader.raft_log.store.compact(5).unwrap();
    net.recover();
    net.send(vec![msg(MessageType::Beat, 1, 1, 0)]);
    let f = net.peer(3);
    assert_eq!(
        f.raft_log
            .unstable
            .snapshot
            .as_ref()
            .map(|s| s.metadata.index),
        Some(5)
    );
    assert_eq!(f.raft_log.committed, 6);
    assert_eq!(f.raft_log.last_index(), 6);
    assert_eq!(f.raft_log.first_index(), 6);
    let pr = &net.peer(1).prs.progress[&3];
    assert_eq!((pr.matched, pr.state), (6, ProgressState::Replicate));
}

fn cc_entry(t: ConfChangeType, id: u64) -> Message {
    let cc = ConfChange {
        change_type: t,
        node_id: id,
        context: Bytes::new(),
    };
    Message {
        entries: vec![Entry {
            entry_type: EntryType::ConfChange,
            data: cc.encode(),
            ..Default::default()
        }],
        ..msg(MessageType::Propose, 1, 1, 0)
    }
}

/// Only one conf change may be pending; a learner replicates without counting for
/// quorum; promotion makes it a voter; removal shrinks the quorum.
#[test]
fn membership_changes() {
    let mut net = Network::new(&[1, 2, 3]);
    net.campaign(1);
    net.send(vec![cc_entry(ConfChangeType::AddLearnerNode, 4)]);
    let leader = net.peer(1);
    assert_eq!(leader.raft_log.committed, 2);
    assert_eq!(
        leader.step(cc_entry(ConfChangeType::AddNode, 5)),
        Err(Error::ProposalDropped),
        "a conf change is pending until applied"
    );
    persist_and_apply(leader);
    let add4 = ConfChange {
        change_type: ConfChangeType::AddLearnerNode,
        node_id: 4,
        context: Bytes::new(),
    };
    let cs = leader.apply_conf_change(&add4).unwrap();
    assert_eq!((cs.voters, cs.learners), (vec![1, 2, 3], vec![4]));
    let mut s4 = store_with(&[]);
    s4.set_conf_state(ConfState {
        voters: vec![1, 2, 3],
        learners: vec![4],
    });
    let learner = raft_with(cfg(4), s4);
    assert!(!learner.promotable());
    net.peers.insert(4, learner);
    net.propose(1, b"a");
    assert_eq!(net.log_of(4), net.log_of(1));
    // Learner is not a voter: with 2 and 3 cut off nothing commits.
    net.cut(1, 2);
    net.cut(1, 3);
    net.propose(1, b"b");
    assert_eq!(net.peer(1).raft_log.committed, 3);
    net.recover();
    // Promote 4, then remove 3.
    let leader = net.peer(1);
    let promote = ConfChange {
        change_type: ConfChangeType::AddNode,
        node_id: 4,
        context: Bytes::new(),
    };
    let cs = leader.apply_conf_change(&promote).unwrap();
    assert_eq!((cs.voters, cs.learners), (vec![1, 2, 3, 4], vec![]));
    let demote = ConfChange {
        change_type: ConfChangeType::AddLearnerNode,
        node_id: 4,
        context: Bytes::new(),
    };
    assert!(matches!(
        leader.apply_conf_change(&demote),
        Err(Error::ConfChangeInvalid(_))
    ));
    let remove = ConfChange {
        change_type: ConfChangeType::RemoveNode,
        node_id: 3,
        context: Bytes::new(),
    };
    let cs = leader.apply_conf_change(&remove).unwrap();
    assert_eq!(cs.voters, vec![1, 2, 4]);
    net.peer(4).apply_conf_change(&promote).unwrap();
    net.peers.remove(&3);
    net.propose(1, b"c");
    assert_eq!(net.peer(1).raft_log.committed, 5);
    assert_eq!(net.log_of(4), net.log_of(1));
}

/// Removing a node lowers the quorum, which can commit pending entries at once
/// (etcd TestCommitAfterRemoveNode).
#[test]
fn commit_after_remove_node() {
    let mut r = new_raft(1, &[1, 2]);
    r.become_candidate();
    r.become_leader();
    commit_noop_entry(&mut r);
    r.step(propose_msg(1, b"x")).unwrap();
    persist(&mut r);
    assert_eq!(r.raft_log.committed, 1);
    let remove = ConfChange {
        change_type: ConfChangeType::RemoveNode,
        node_id: 2,
        context: Bytes::new(),
    };
    r.apply_conf_change(&remove).unwrap();
    assert_eq!(r.raft_log.committed, 2);
}

/// Figure 8 of the paper: an entry from an old term replicated on a majority is not
/// committed by counting; it commits only with an entry of the leader's term.
#[test]
fn figure_8_old_term_entries_not_committed_by_counting() {
    let mut net = Network::new(&[1, 2, 3, 4, 5]);
    net.campaign(1);
    // 1 (term 1) replicates entry 2 only to 2.
    net.dropped_retain_only_between(&[1, 2]);
    net.propose(1, b"old");
    assert_eq!(net.log_of(2), vec![(1, 1), (2, 1)]);
    assert_eq!(net.peer(1).raft_log.committed, 1);
    // 5 becomes leader in term 2 with the votes of 3 and 4; its entry goes nowhere.
    net.recover();
    net.isolate(1);
    net.isolate(2);
    net.ignore(MessageType::Append);
    net.campaign(5);
    assert_eq!(net.peer(5).state, StateRole::Leader);
    assert_eq!(net.log_of(5), vec![(1, 1), (2, 2)]);
    // 1 returns; in term 2 node 3 already voted for 5, so 1 needs term 3.
    net.recover();
    net.isolate(5);
    net.isolate(4);
    // 1 restarts (still term 1) and campaigns.
    net.peer(1).become_follower(1, 0);
    net.campaign(1);
    assert_eq!(net.peer(1).state, StateRole::Candidate);
    assert_eq!(net.peer(1).raft_log.committed, 1);
    net.campaign(1);
    assert_eq!(net.peer(1).state, StateRole::Leader);
    assert_eq!(net.peer(1).term, 3);
    // Entry (2, 1) sits on a majority (1, 2, 3) only now, and commits only together
    // with the term-3 no-op.
    assert_eq!(net.log_of(1), vec![(1, 1), (2, 1), (3, 3)]);
    assert_eq!(net.log_of(3), vec![(1, 1), (2, 1), (3, 3)]);
    assert_eq!(net.peer(1).raft_log.committed, 3);
}

impl Network {
    /// Restores only the links among `ids` (others stay as they are).
    fn dropped_retain_only_between(&mut self, ids: &[u64]) {
        let all: Vec<u64> = self.peers.keys().copied().collect();
        self.dropped.clear();
        for &a in &all {
            for &b in &all {
                if a != b && !(ids.contains(&a) && ids.contains(&b)) {
                    self.dropped.insert((a, b));
                }
            }
        }
    }
}

use crate::read_only::ReadState;

/// A follower forwards a proposal to the leader (etcd `stepFollower` MsgProp), which
/// appends and replicates it; with no leader known the proposal is dropped.
#[test]
fn follower_forwards_proposals_to_the_leader() {
    let mut net = Network::new(&[1, 2, 3]);
    assert_eq!(
        net.peer(2).step(propose_msg(2, b"early")),
        Err(Error::ProposalDropped),
        "no leader yet"
    );
    net.campaign(1);
    let before = net.peer(1).raft_log.last_index();
    net.send(vec![propose_msg(2, b"via-2")]);
    for id in [1, 2, 3] {
        let r = net.peer(id);
        assert_eq!(r.raft_log.last_index(), before + 1, "node {id}");
        let e = r.raft_log.slice(before + 1, before + 2, None).unwrap();
        assert_eq!(e[0].data.as_ref(), b"via-2", "node {id}");
        assert_eq!(r.raft_log.committed, before + 1, "node {id}");
    }
}
