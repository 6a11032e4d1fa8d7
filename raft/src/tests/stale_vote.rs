//! A vote request from an older term is answered with the current term (Raft §5.1,
//! figure 2: RequestVote replies `term`, "currentTerm, for candidate to update
//! itself"). Found by the simulation (`raft/tests/simulation.rs`, 3-node seed 1215
//! with pre-vote and check-quorum off): member 3 kept campaigning in a stale
//! configuration it could not win in, always a term ahead of member 4, which could
//! win but whose vote requests member 3 ignored as stale; neither learned the other
//! was ahead and no leader was elected for 400 calm ticks.

use super::*;
use crate::StateRole;

/// Member 3 (term 10, a candidate in the configuration {1, 3} whose member 1 is
/// gone) is asked for a vote at term 9 by member 4 (configuration {3, 4}, the longer
/// log): it refuses with its own term, member 4 adopts term 10, and its next campaign
/// (term 11) wins member 3's vote.
#[test]
fn stale_vote_request_is_answered_with_the_current_term() {
    let mut stuck = raft_with(cfg(3), store_with(&[1, 3]));
    stuck.become_follower(9, 0);
    stuck.become_candidate(); // term 10, votes for itself; 1 never answers
    take_msgs(&mut stuck);
    let mut able = raft_with(cfg(4), store_with(&[3, 4]));
    able.raft_log.append(&[ent(1, 1)]);
    persist(&mut able);
    able.become_follower(8, 0);

    able.step(msg(MessageType::Hup, 4, 4, 0)).unwrap();
    assert_eq!((able.state, able.term), (StateRole::Candidate, 9));
    let request = take_msgs(&mut able);
    assert_eq!(request.len(), 1);
    stuck.step(request[0].clone()).unwrap();
    let answer = take_msgs(&mut stuck);
    assert_eq!(answer.len(), 1, "a stale vote request must be answered");
    assert_eq!(answer[0].msg_type, MessageType::RequestVoteResponse);
    assert!(answer[0].reject);
    assert_eq!(answer[0].term, 10);

    able.step(answer[0].clone()).unwrap();
    assert_eq!((able.state, able.term), (StateRole::Follower, 10));
    able.step(msg(MessageType::Hup, 4, 4, 0)).unwrap();
    let request = take_msgs(&mut able);
    assert_eq!(request[0].term, 11);
    stuck.step(request[0].clone()).unwrap();
    let answer = take_msgs(&mut stuck);
    assert!(
        !answer[0].reject,
        "the longer log at the newer term gets the vote"
    );
    able.step(answer[0].clone()).unwrap();
    assert_eq!(able.state, StateRole::Leader);
}
