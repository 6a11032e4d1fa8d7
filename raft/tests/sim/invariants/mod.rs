//! Safety properties checked after every simulation step, one file per property
//! (openraft `tests-turmoil/src/invariants/`): election safety, log matching, leader
//! completeness, state-machine safety (Raft paper figure 3) and read safety
//! (linearizable ReadIndex, Raft thesis §6.4). Some are also checked at the moment
//! of the event (an append, an apply, a read answer), which pins the failing step.

pub mod election_safety;
pub mod leader_completeness;
pub mod log_matching;
pub mod read_safety;
pub mod state_machine_safety;

use raft::{MemStorage, Status};

use super::kv::Kv;
use read_safety::WaitingRead;

/// What the checks see of one member after a step.
pub struct NodeView<'a> {
    /// Member id.
    pub id: u64,
    /// The log raft reads (running), or the durable log (crashed).
    pub store: &'a MemStorage,
    /// Raft's status when running (paused counts as running).
    pub status: Option<Status>,
    /// The applied state machine when running.
    pub kv: Option<&'a Kv>,
    /// Reads answered with a read index, waiting for the apply to reach it.
    pub waiting_reads: &'a [WaitingRead],
}

/// What is known about one committed index.
#[derive(Clone, Debug)]
pub struct CommitFact {
    /// Term of the committed entry, once seen.
    pub term: Option<u64>,
    /// Digest of its content (type and data), once seen.
    pub digest: Option<u64>,
    /// State machine hash after applying it, once some member applied it.
    pub sm_hash: Option<u64>,
    /// Highest term any member had when the commit was first observed: leaders of
    /// later terms must hold the entry.
    pub observed_term: u64,
}

/// Every index known committed, in order (index `i` at `facts[i - 1]`).
#[derive(Default)]
pub struct Commits {
    /// The facts.
    pub facts: Vec<CommitFact>,
    /// Highest term seen on any member so far.
    pub max_term: u64,
}

impl Commits {
    /// Marks every index up to `index` committed (placeholders for unseen content).
    pub fn ensure(&mut self, index: u64) {
        while (self.facts.len() as u64) < index {
            self.facts.push(CommitFact {
                term: None,
                digest: None,
                sm_hash: None,
                observed_term: self.max_term,
            });
        }
    }

    /// The fact for `index` (which must be ensured).
    pub fn fact(&mut self, index: u64) -> &mut CommitFact {
        &mut self.facts[(index - 1) as usize]
    }

    /// A member reports commit index `commit` with log `store`: records newly
    /// committed indexes, with their content when the log holds it.
    pub fn observe_commit(&mut self, commit: u64, store: &MemStorage) {
        use raft::Storage;
        let from = self.facts.len() as u64 + 1;
        self.ensure(commit);
        for i in from..=commit {
            let entry = store
                .entries(i, i + 1, None)
                .ok()
                .and_then(|v| v.into_iter().next());
            if let Some(e) = entry {
                let f = self.fact(i);
                f.term = Some(e.term);
                f.digest = Some(super::kv::digest(&e));
            }
        }
    }
}

/// All invariant state of one run.
#[derive(Default)]
pub struct Invariants {
    /// Leaders by term.
    pub election: election_safety::ElectionSafety,
    /// The (index, term) registry.
    pub log_matching: log_matching::LogMatching,
    /// Committed indexes.
    pub commits: Commits,
    /// Acknowledged writes.
    pub reads: read_safety::ReadSafety,
}

impl Invariants {
    /// Runs every check over the members' state after one step.
    pub fn after_step(&mut self, nodes: &[NodeView]) -> Result<(), String> {
        for n in nodes {
            if let Some(st) = &n.status {
                self.commits.max_term = self.commits.max_term.max(st.hard_state.term);
            }
        }
        for n in nodes {
            if let Some(st) = &n.status {
                self.commits.observe_commit(st.hard_state.commit, n.store);
            }
        }
        self.election.check(nodes)?;
        self.log_matching.check(nodes)?;
        leader_completeness::check(&self.commits, nodes)?;
        state_machine_safety::check(&self.commits, nodes)?;
        read_safety::check(nodes)
    }
}
