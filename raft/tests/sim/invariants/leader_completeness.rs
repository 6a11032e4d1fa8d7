//! Leader completeness (Raft §5.4, figure 3): if an entry is committed in a given
//! term, it is present in the logs of the leaders of all higher terms. After every
//! step, each leader must hold the newest entry committed before its term began (by
//! log matching it then holds every earlier one too); entries it compacted into its
//! snapshot are covered by state-machine safety.

use raft::{StateRole, Storage};

use super::{Commits, NodeView};

/// Checks every current leader against the committed entries.
pub fn check(commits: &Commits, nodes: &[NodeView]) -> Result<(), String> {
    for n in nodes {
        let Some(st) = &n.status else { continue };
        if st.soft_state.raft_state != StateRole::Leader {
            continue;
        }
        let term = st.hard_state.term;
        // observed_term is non-decreasing in the index, so the entries committed
        // before this term are a prefix.
        let end = commits.facts.partition_point(|f| f.observed_term < term);
        let known = commits.facts[..end]
            .iter()
            .enumerate()
            .rev()
            .find_map(|(i, f)| Some((i as u64 + 1, f.term?)));
        let Some((index, committed_term)) = known else {
            continue;
        };
        if index + 1 < n.store.first_index().unwrap() {
            continue;
        }
        let held = n.store.term(index).ok();
        if held != Some(committed_term) {
            return Err(format!(
                "leader completeness: leader {} of term {term} holds term {held:?} at index {index}, \
                 committed with term {committed_term} before its term",
                n.id
            ));
        }
    }
    Ok(())
}
