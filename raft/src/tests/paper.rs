//! One test per rule of the Raft paper (§5), after etcd-io/raft `raft_paper_test.go`.

use std::collections::BTreeSet;

use super::*;
use crate::message::HardState;
use crate::StateRole;

fn leader_of(ids: &[u64]) -> Raft<MemStorage> {
    let mut r = new_raft(1, ids);
    r.become_candidate();
    r.become_leader();
    r
}

fn reply_accept(m: &Message) -> Message {
    Message {
        index: m.index + m.entries.len() as u64,
        ..msg(MessageType::AppendResponse, m.to, m.from, m.term)
    }
}

/// §5.1: a server that sees a larger term updates its term and reverts to follower.
#[test]
fn update_term_from_message() {
    for state in [StateRole::Follower, StateRole::Candidate, StateRole::Leader] {
        let mut r = new_raft(1, &[1, 2, 3]);
        match state {
            StateRole::Follower => r.become_follower(1, 2),
            StateRole::Candidate => r.become_candidate(),
            _ => {
                r.become_candidate();
                r.become_leader();
            }
        }
        r.step(msg(MessageType::Append, 2, 1, 2)).unwrap();
        assert_eq!(r.term, 2, "{state:?}");
        assert_eq!(r.state, StateRole::Follower, "{state:?}");
        assert_eq!(r.leader_id, 2, "{state:?}");
    }
}

/// §5.1: a request with a stale term is rejected (ignored).
#[test]
fn reject_stale_term_message() {
    let mut r = new_raft(1, &[1, 2, 3]);
    r.become_follower(2, 0);
    r.step(msg(MessageType::Append, 2, 1, 1)).unwrap();
    assert_eq!(r.term, 2);
    assert_eq!(r.leader_id, 0);
    assert!(take_msgs(&mut r).is_empty());
}

/// §5.2: servers start as followers.
#[test]
fn start_as_follower() {
    let r = new_raft(1, &[1, 2, 3]);
    assert_eq!(r.state, StateRole::Follower);
    assert_eq!(r.term, 0);
}

/// §5.2: the leader sends heartbeats (carrying commit) to all followers.
#[test]
fn leader_bcast_beat() {
    let mut r = leader_of(&[1, 2, 3]);
    for _ in 0..10 {
        r.append_entry(vec![Entry::default()]);
    }
    take_msgs(&mut r);
    r.tick();
    let got = take_msgs(&mut r);
    let want: Vec<Message> = [2, 3]
        .iter()
        .map(|&to| msg(MessageType::Heartbeat, 1, to, 1))
        .collect();
    assert_eq!(got, want);
}

/// §5.2: a follower or candidate that hears nothing for an election timeout starts an
/// election: new term, votes for itself, asks everyone for votes.
#[test]
fn nonleader_start_election() {
    for candidate_first in [false, true] {
        let mut r = new_raft(1, &[1, 2, 3]);
        if candidate_first {
            r.become_candidate();
        } else {
            r.become_follower(1, 2);
        }
        for _ in 1..2 * r.election_timeout {
            r.tick();
        }
        assert_eq!(r.term, 2);
        assert_eq!(r.state, StateRole::Candidate);
        assert_eq!(r.vote, 1);
        assert_eq!(r.prs.votes.get(&1), Some(&true));
        let want: Vec<Message> = [2, 3]
            .iter()
            .map(|&to| msg(MessageType::RequestVote, 1, to, 2))
            .collect();
        assert_eq!(take_msgs(&mut r), want);
    }
}

/// §5.2: a candidate wins with a majority, loses with a majority of denials, and
/// otherwise stays candidate.
#[test]
fn leader_election_in_one_round_rpc() {
    type Case<'a> = (u64, &'a [(u64, bool)], StateRole);
    let cases: &[Case] = &[
        (1, &[], StateRole::Leader),
        (3, &[(2, true), (3, true)], StateRole::Leader),
        (3, &[(2, true)], StateRole::Leader),
        (
            5,
            &[(2, true), (3, true), (4, true), (5, true)],
            StateRole::Leader,
        ),
        (5, &[(2, true), (3, true), (4, true)], StateRole::Leader),
        (5, &[(2, true), (3, true)], StateRole::Leader),
        (3, &[(2, false), (3, false)], StateRole::Follower),
        (
            5,
            &[(2, false), (3, false), (4, false), (5, false)],
            StateRole::Follower,
        ),
        (
            5,
            &[(2, true), (3, false), (4, false), (5, false)],
            StateRole::Follower,
        ),
        (3, &[], StateRole::Candidate),
        (5, &[(2, true)], StateRole::Candidate),
        (5, &[(2, false), (3, false)], StateRole::Candidate),
        (5, &[], StateRole::Candidate),
    ];
    for (i, (size, votes, want)) in cases.iter().enumerate() {
        let ids: Vec<u64> = (1..=*size).collect();
        let mut r = new_raft(1, &ids);
        r.step(msg(MessageType::Hup, 1, 1, 0)).unwrap();
        for &(from, granted) in *votes {
            let m = Message {
                reject: !granted,
                ..msg(MessageType::RequestVoteResponse, from, 1, r.term)
            };
            r.step(m).unwrap();
        }
        assert_eq!(r.state, *want, "case {i}");
        assert_eq!(r.term, 1, "case {i}");
    }
}

/// §5.2: each server votes for at most one candidate per term, first come first served.
#[test]
fn follower_vote() {
    for (vote, nvote, wreject) in [
        (0, 2, false),
        (0, 3, false),
        (2, 2, false),
        (3, 3, false),
        (2, 3, true),
        (3, 2, true),
    ] {
        let mut r = new_raft(1, &[1, 2, 3]);
        r.term = 1;
        r.vote = vote;
        r.step(msg(MessageType::RequestVote, nvote, 1, 1)).unwrap();
        let want = Message {
            reject: wreject,
            ..msg(MessageType::RequestVoteResponse, 1, nvote, 1)
        };
        assert_eq!(take_msgs(&mut r), vec![want], "vote {vote} nvote {nvote}");
    }
}

/// §5.2: a candidate that receives an Append from a leader with term ≥ its own
/// becomes follower.
#[test]
fn candidate_fallback() {
    for term in [1, 2] {
        let mut r = new_raft(1, &[1, 2, 3]);
        r.step(msg(MessageType::Hup, 1, 1, 0)).unwrap();
        assert_eq!(r.state, StateRole::Candidate);
        r.step(msg(MessageType::Append, 2, 1, term)).unwrap();
        assert_eq!(r.state, StateRole::Follower);
        assert_eq!(r.term, term);
    }
}

/// §5.2: election timeouts are randomized over [election_tick, 2 * election_tick).
#[test]
fn election_timeout_randomized() {
    for candidate in [false, true] {
        let mut r = new_raft(1, &[1, 2, 3]);
        let et = r.election_timeout;
        let mut seen = BTreeSet::new();
        for _ in 0..50 * et {
            if candidate {
                r.become_candidate();
            } else {
                let t = r.term + 1;
                r.become_follower(t, 2);
            }
            let mut time = 0;
            while take_msgs(&mut r).is_empty() {
                r.tick();
                time += 1;
            }
            seen.insert(time);
        }
        assert_eq!(seen, (et..2 * et).collect::<BTreeSet<_>>());
    }
}

/// §5.2: randomized timeouts make simultaneous timeouts rare (5 nodes).
#[test]
fn follower_election_timeout_nonconflict() {
    let ids = [1, 2, 3, 4, 5];
    let mut rs: Vec<_> = ids.iter().map(|&id| new_raft(id, &ids)).collect();
    let rounds = 1000;
    let mut conflicts = 0;
    for _ in 0..rounds {
        for r in rs.iter_mut() {
            let t = r.term + 1;
            r.become_follower(t, 0);
        }
        let mut fired = 0;
        while fired == 0 {
            for r in rs.iter_mut() {
                r.tick();
                if !take_msgs(r).is_empty() {
                    fired += 1;
                }
            }
        }
        if fired > 1 {
            conflicts += 1;
        }
    }
    assert!(
        conflicts * 10 < rounds * 3,
        "{conflicts} conflicts in {rounds} rounds"
    );
}

/// §5.3: the leader appends a proposal to its log and sends it to all followers.
#[test]
fn leader_start_replication() {
    let mut r = leader_of(&[1, 2, 3]);
    commit_noop_entry(&mut r);
    let li = r.raft_log.last_index();
    r.step(propose_msg(1, b"some data")).unwrap();
    assert_eq!(r.raft_log.last_index(), li + 1);
    assert_eq!(r.raft_log.committed, li);
    let want_ents = vec![data_ent(li + 1, 1, b"some data")];
    let want: Vec<Message> = [2, 3]
        .iter()
        .map(|&to| Message {
            index: li,
            log_term: 1,
            entries: want_ents.clone(),
            commit: li,
            ..msg(MessageType::Append, 1, to, 1)
        })
        .collect();
    assert_eq!(take_msgs(&mut r), want);
    assert_eq!(r.raft_log.unstable_entries(), want_ents.as_slice());
}

/// §5.3: an entry is committed once a majority stores it; the leader then tells the
/// followers the new commit index.
#[test]
fn leader_commit_entry() {
    let mut r = leader_of(&[1, 2, 3]);
    commit_noop_entry(&mut r);
    let li = r.raft_log.last_index();
    r.step(propose_msg(1, b"some data")).unwrap();
    for m in take_msgs(&mut r) {
        r.step(reply_accept(&m)).unwrap();
    }
    assert_eq!(r.raft_log.committed, li + 1);
    assert_eq!(
        r.raft_log.next_entries(None).unwrap(),
        vec![data_ent(li + 1, 1, b"some data")]
    );
    let msgs = take_msgs(&mut r);
    assert_eq!(msgs.len(), 2);
    for (m, to) in msgs.iter().zip([2, 3]) {
        assert_eq!(
            (m.to, m.msg_type, m.commit),
            (to, MessageType::Append, li + 1)
        );
    }
}

/// §5.3: the leader commits when a majority (itself included) acknowledges.
#[test]
fn leader_acknowledge_commit() {
    let cases: &[(u64, &[u64], bool)] = &[
        (1, &[], true),
        (3, &[], false),
        (3, &[2], true),
        (3, &[2, 3], true),
        (5, &[], false),
        (5, &[2], false),
        (5, &[2, 3], true),
        (5, &[2, 3, 4], true),
        (5, &[2, 3, 4, 5], true),
    ];
    for (size, acceptors, want) in cases {
        let ids: Vec<u64> = (1..=*size).collect();
        let mut r = leader_of(&ids);
        commit_noop_entry(&mut r);
        let li = r.raft_log.last_index();
        r.step(propose_msg(1, b"some data")).unwrap();
        persist(&mut r);
        for m in take_msgs(&mut r) {
            if acceptors.contains(&m.to) {
                r.step(reply_accept(&m)).unwrap();
            }
        }
        assert_eq!(
            r.raft_log.committed > li,
            *want,
            "size {size} acceptors {acceptors:?}"
        );
    }
}

/// §5.3: committing an entry also commits all preceding entries, including those
/// of earlier leaders.
#[test]
fn leader_commit_preceding_entries() {
    let cases: Vec<Vec<Entry>> = vec![
        vec![],
        vec![ent(1, 2)],
        vec![ent(1, 1), ent(2, 2)],
        vec![ent(1, 1)],
    ];
    for tt in cases {
        let mut store = store_with(&[1, 2, 3]);
        store.append(&tt).unwrap();
        store.set_hard_state(HardState {
            term: 2,
            ..Default::default()
        });
        let mut r = raft_with(cfg(1), store);
        r.become_candidate();
        r.become_leader();
        r.step(propose_msg(1, b"some data")).unwrap();
        for m in take_msgs(&mut r) {
            r.step(reply_accept(&m)).unwrap();
        }
        let li = tt.len() as u64;
        let mut want = tt.clone();
        want.push(ent(li + 1, 3));
        want.push(data_ent(li + 2, 3, b"some data"));
        assert_eq!(r.raft_log.next_entries(None).unwrap(), want);
    }
}

/// §5.3: a follower applies entries up to the leader's commit index.
#[test]
fn follower_commit_entry() {
    let a = data_ent(1, 1, b"some data");
    let b = data_ent(2, 1, b"some data2");
    let cases = vec![
        (vec![a.clone()], 1),
        (vec![a.clone(), b.clone()], 2),
        (
            vec![data_ent(1, 1, b"some data2"), data_ent(2, 1, b"some data")],
            2,
        ),
        (vec![a.clone(), b.clone()], 1),
    ];
    for (ents, commit) in cases {
        let mut r = new_raft(1, &[1, 2, 3]);
        r.become_follower(1, 2);
        let m = Message {
            entries: ents.clone(),
            commit,
            ..msg(MessageType::Append, 2, 1, 1)
        };
        r.step(m).unwrap();
        assert_eq!(r.raft_log.committed, commit);
        assert_eq!(
            r.raft_log.next_entries(None).unwrap(),
            ents[..commit as usize].to_vec()
        );
    }
}

/// §5.3 log matching: a follower rejects an Append whose previous (index, term) it
/// does not hold, hinting where to retry.
#[test]
fn follower_check_append() {
    // (log_term, index, want index, want reject, want hint, want hint term)
    let cases = [
        (0, 0, 1, false, 0, 0),
        (1, 1, 1, false, 0, 0),
        (2, 2, 2, false, 0, 0),
        (1, 2, 2, true, 1, 1),
        (3, 3, 3, true, 2, 2),
    ];
    for (log_term, index, windex, wreject, whint, whint_term) in cases {
        let mut store = store_with(&[1, 2, 3]);
        store.append(&[ent(1, 1), ent(2, 2)]).unwrap();
        store.set_hard_state(HardState {
            commit: 1,
            ..Default::default()
        });
        let mut r = raft_with(cfg(1), store);
        r.become_follower(2, 2);
        let m = Message {
            log_term,
            index,
            ..msg(MessageType::Append, 2, 1, 2)
        };
        r.step(m).unwrap();
        let want = Message {
            index: windex,
            reject: wreject,
            reject_hint: whint,
            log_term: whint_term,
            ..msg(MessageType::AppendResponse, 1, 2, 2)
        };
        assert_eq!(take_msgs(&mut r), vec![want], "({log_term}, {index})");
    }
}

/// §5.3: a follower deletes conflicting entries and appends new ones.
#[test]
fn follower_append_entries() {
    let cases = vec![
        (
            2,
            2,
            vec![ent(3, 3)],
            vec![(1, 1), (2, 2), (3, 3)],
            vec![ent(3, 3)],
        ),
        (
            1,
            1,
            vec![ent(2, 3), ent(3, 4)],
            vec![(1, 1), (2, 3), (3, 4)],
            vec![ent(2, 3), ent(3, 4)],
        ),
        (0, 0, vec![ent(1, 1)], vec![(1, 1), (2, 2)], vec![]),
        (0, 0, vec![ent(1, 3)], vec![(1, 3)], vec![ent(1, 3)]),
    ];
    for (index, log_term, ents, want, want_unstable) in cases {
        let mut store = store_with(&[1, 2, 3]);
        store.append(&[ent(1, 1), ent(2, 2)]).unwrap();
        let mut net = Network::from_rafts(vec![raft_with(cfg(1), store)]);
        let r = net.peer(1);
        r.become_follower(2, 2);
        let m = Message {
            log_term,
            index,
            entries: ents,
            ..msg(MessageType::Append, 2, 1, 2)
        };
        r.step(m).unwrap();
        assert_eq!(r.raft_log.unstable_entries(), want_unstable.as_slice());
        assert_eq!(net.log_of(1), want);
    }
}

/// §5.3 (figure 7): the leader brings every kind of divergent follower log into
/// agreement with its own.
#[test]
fn leader_sync_follower_log() {
    let lead_log = [
        (1, 1),
        (2, 1),
        (3, 1),
        (4, 4),
        (5, 4),
        (6, 5),
        (7, 5),
        (8, 6),
        (9, 6),
        (10, 6),
    ];
    let term = 8;
    let ents =
        |pairs: &[(u64, u64)]| -> Vec<Entry> { pairs.iter().map(|&(i, t)| ent(i, t)).collect() };
    let followers: Vec<Vec<(u64, u64)>> = vec![
        lead_log[..9].to_vec(),
        lead_log[..4].to_vec(),
        [&lead_log[..], &[(11, 6), (12, 6)]].concat(),
        [&lead_log[..], &[(11, 7), (12, 7)]].concat(),
        [&lead_log[..5], &[(6, 4), (7, 4)]].concat(),
        vec![
            (1, 1),
            (2, 1),
            (3, 1),
            (4, 2),
            (5, 2),
            (6, 2),
            (7, 3),
            (8, 3),
            (9, 3),
            (10, 3),
            (11, 3),
        ],
    ];
    for (case, flog) in followers.into_iter().enumerate() {
        let mut ls = store_with(&[1, 2, 3]);
        ls.append(&ents(&lead_log)).unwrap();
        ls.set_hard_state(HardState {
            term,
            vote: 0,
            commit: 10,
        });
        let mut fs = store_with(&[1, 2, 3]);
        fs.append(&ents(&flog)).unwrap();
        fs.set_hard_state(HardState {
            term: term - 1,
            ..Default::default()
        });
        // Node 3 exists only as a voter that drops everything.
        let mut net = Network::from_rafts(vec![raft_with(cfg(1), ls), raft_with(cfg(2), fs)]);
        net.campaign(1);
        net.send(vec![msg(MessageType::RequestVoteResponse, 3, 1, term + 1)]);
        assert_eq!(net.peer(1).state, StateRole::Leader, "case {case}");
        net.propose(1, b"");
        assert_eq!(net.log_of(1), net.log_of(2), "case {case}");
        let (c1, c2) = (
            net.peer(1).raft_log.committed,
            net.peer(2).raft_log.committed,
        );
        assert_eq!((c1, c2), (12, 12), "case {case}");
    }
}

/// §5.4.1: a candidate's vote request carries its last log index and term.
#[test]
fn vote_request() {
    for (ents, wterm) in [(vec![ent(1, 1)], 2), (vec![ent(1, 1), ent(2, 2)], 3)] {
        let mut r = new_raft(1, &[1, 2, 3]);
        let m = Message {
            entries: ents.clone(),
            ..msg(MessageType::Append, 2, 1, wterm - 1)
        };
        r.step(m).unwrap();
        take_msgs(&mut r);
        for _ in 1..2 * r.election_timeout {
            r.tick();
        }
        let last = ents.last().unwrap();
        let want: Vec<Message> = [2, 3]
            .iter()
            .map(|&to| Message {
                index: last.index,
                log_term: last.term,
                ..msg(MessageType::RequestVote, 1, to, wterm)
            })
            .collect();
        assert_eq!(take_msgs(&mut r), want);
    }
}

/// §5.4.1: a voter denies its vote to a candidate whose log is less up-to-date.
#[test]
fn voter_up_to_date_check() {
    let cases = [
        (vec![ent(1, 1)], 1, 1, false),
        (vec![ent(1, 1)], 1, 2, false),
        (vec![ent(1, 1), ent(2, 1)], 1, 1, true),
        (vec![ent(1, 1)], 2, 1, false),
        (vec![ent(1, 1)], 2, 2, false),
        (vec![ent(1, 1), ent(2, 1)], 2, 1, false),
        (vec![ent(1, 2)], 1, 1, true),
        (vec![ent(1, 2)], 1, 2, true),
        (vec![ent(1, 2), ent(2, 1)], 1, 1, true),
    ];
    for (i, (ents, log_term, index, wreject)) in cases.into_iter().enumerate() {
        let mut store = store_with(&[1, 2]);
        store.append(&ents).unwrap();
        let mut r = raft_with(cfg(1), store);
        let m = Message {
            log_term,
            index,
            ..msg(MessageType::RequestVote, 2, 1, 3)
        };
        r.step(m).unwrap();
        let msgs = take_msgs(&mut r);
        assert_eq!(msgs.len(), 1, "case {i}");
        assert_eq!(
            msgs[0].msg_type,
            MessageType::RequestVoteResponse,
            "case {i}"
        );
        assert_eq!(msgs[0].reject, wreject, "case {i}");
    }
}

/// §5.4.2: a leader only commits entries of its current term by counting replicas.
#[test]
fn leader_only_commits_log_from_current_term() {
    for (index, wcommit) in [(1, 0), (2, 0), (3, 3)] {
        let mut store = store_with(&[1, 2]);
        store.append(&[ent(1, 1), ent(2, 2)]).unwrap();
        store.set_hard_state(HardState {
            term: 2,
            ..Default::default()
        });
        let mut r = raft_with(cfg(1), store);
        r.become_candidate();
        r.become_leader();
        take_msgs(&mut r);
        r.step(propose_msg(1, b"")).unwrap();
        persist(&mut r);
        let m = Message {
            index,
            ..msg(MessageType::AppendResponse, 2, 1, r.term)
        };
        r.step(m).unwrap();
        assert_eq!(r.raft_log.committed, wcommit, "ack {index}");
    }
}
