//! Election safety (Raft §5.2, figure 3): at most one leader can be elected in a
//! given term. Every leader is recorded when its Ready reports the role change and
//! again after every step.

use std::collections::BTreeMap;

use raft::StateRole;

use super::NodeView;

/// The first leader seen for each term.
#[derive(Default)]
pub struct ElectionSafety {
    /// term -> leader id.
    pub leaders: BTreeMap<u64, u64>,
}

impl ElectionSafety {
    /// `id` is leader of `term`.
    pub fn on_leader(&mut self, term: u64, id: u64) -> Result<(), String> {
        let first = *self.leaders.entry(term).or_insert(id);
        if first != id {
            return Err(format!(
                "election safety: term {term} has two leaders, {first} and {id}"
            ));
        }
        Ok(())
    }

    /// Records every current leader.
    pub fn check(&mut self, nodes: &[NodeView]) -> Result<(), String> {
        for n in nodes {
            let Some(st) = &n.status else { continue };
            if st.soft_state.raft_state == StateRole::Leader {
                self.on_leader(st.hard_state.term, n.id)?;
            }
        }
        Ok(())
    }
}
