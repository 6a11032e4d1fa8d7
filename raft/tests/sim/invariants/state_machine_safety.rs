//! State-machine safety (Raft §5.4.3, figure 3): if a member has applied an entry
//! at a given index, no other member ever applies a different entry for that index.
//! Checked as: every applied prefix (hash chained over the applied entries) agrees
//! with the first one applied at that index, at each apply, at each snapshot
//! install, and for every member after every step.

use raft::Entry;

use super::super::kv::{digest, Kv};
use super::{Commits, NodeView};

/// Member `id` applied `e`, reaching state `kv`.
pub fn on_apply(commits: &mut Commits, id: u64, e: &Entry, kv: &Kv) -> Result<(), String> {
    commits.ensure(e.index);
    let f = commits.fact(e.index);
    if f.term.is_some_and(|t| t != e.term) || f.digest.is_some_and(|d| d != digest(e)) {
        return Err(format!(
            "state machine safety: node {id} applied entry {} of term {}, but index {} was committed with term {:?}",
            e.index, e.term, e.index, f.term
        ));
    }
    f.term = Some(e.term);
    f.digest = Some(digest(e));
    check_hash(commits, id, e.index, kv.hash)
}

/// Member `id` installed a snapshot at `index` (term `term`) with state `kv`.
pub fn on_snapshot(
    commits: &mut Commits,
    id: u64,
    index: u64,
    term: u64,
    kv: &Kv,
) -> Result<(), String> {
    commits.ensure(index);
    let f = commits.fact(index);
    if f.term.is_some_and(|t| t != term) {
        return Err(format!(
            "state machine safety: node {id} installed a snapshot at {index} of term {term}, committed with term {:?}",
            f.term
        ));
    }
    f.term = Some(term);
    check_hash(commits, id, index, kv.hash)
}

fn check_hash(commits: &mut Commits, id: u64, index: u64, hash: u64) -> Result<(), String> {
    let f = commits.fact(index);
    match f.sm_hash {
        Some(h) if h != hash => Err(format!(
            "state machine safety: node {id}'s applied prefix up to {index} differs from another member's"
        )),
        Some(_) => Ok(()),
        None => {
            f.sm_hash = Some(hash);
            Ok(())
        }
    }
}

/// Every running member's applied state agrees with the committed prefix and with
/// raft's own applied index.
pub fn check(commits: &Commits, nodes: &[NodeView]) -> Result<(), String> {
    for n in nodes {
        let (Some(st), Some(kv)) = (&n.status, n.kv) else {
            continue;
        };
        if kv.applied != st.applied {
            return Err(format!(
                "node {}: state machine applied {} but raft reports applied {}",
                n.id, kv.applied, st.applied
            ));
        }
        if kv.applied > st.hard_state.commit {
            return Err(format!(
                "node {}: applied {} beyond commit {}",
                n.id, kv.applied, st.hard_state.commit
            ));
        }
        if kv.applied == 0 {
            continue;
        }
        let f = commits.facts.get((kv.applied - 1) as usize);
        if f.and_then(|f| f.sm_hash).is_some_and(|h| h != kv.hash) {
            return Err(format!(
                "state machine safety: node {}'s applied prefix up to {} differs from another member's",
                n.id, kv.applied
            ));
        }
    }
    Ok(())
}
