//! Crate-internal tests: a message-passing network of `Raft` values (etcd-io/raft
//! `raft_test.go` `network`), one test per rule of the Raft paper, and scenarios.

mod durability;
mod limits;
mod membership;
mod paper;
mod read_index;
mod read_restart;
mod scenarios;
mod stale_vote;
mod validation;

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use bytes::Bytes;

use crate::message::{ConfState, Entry, Message, MessageType};
use crate::raft::Raft;
use crate::storage::MemStorage;
use crate::Config;

/// Config as etcd's tests use it: election 10, heartbeat 1, no pre-vote/check-quorum.
pub(crate) fn cfg(id: u64) -> Config {
    Config {
        id,
        election_tick: 10,
        heartbeat_tick: 1,
        pre_vote: false,
        check_quorum: false,
        seed: 7,
        ..Config::default()
    }
}

pub(crate) fn store_with(voters: &[u64]) -> MemStorage {
    MemStorage::new_with_conf_state(ConfState {
        voters: voters.to_vec(),
        learners: vec![],
    })
}

pub(crate) fn new_raft(id: u64, voters: &[u64]) -> Raft<MemStorage> {
    Raft::new(&cfg(id), &crate::Limits::default(), store_with(voters)).unwrap()
}

pub(crate) fn raft_with(c: Config, store: MemStorage) -> Raft<MemStorage> {
    Raft::new(&c, &crate::Limits::default(), store).unwrap()
}

pub(crate) fn ent(index: u64, term: u64) -> Entry {
    Entry {
        index,
        term,
        ..Default::default()
    }
}

pub(crate) fn data_ent(index: u64, term: u64, data: &'static [u8]) -> Entry {
    Entry {
        index,
        term,
        data: Bytes::from_static(data),
        ..Default::default()
    }
}

pub(crate) fn take_msgs(r: &mut Raft<MemStorage>) -> Vec<Message> {
    let mut m = std::mem::take(&mut r.msgs);
    m.sort_by_key(|m| m.to);
    m
}

pub(crate) fn msg(t: MessageType, from: u64, to: u64, term: u64) -> Message {
    Message {
        from,
        to,
        term,
        ..Message::new(t)
    }
}

pub(crate) fn propose_msg(id: u64, data: &'static [u8]) -> Message {
    Message {
        entries: vec![Entry {
            data: Bytes::from_static(data),
            ..Default::default()
        }],
        ..msg(MessageType::Propose, id, id, 0)
    }
}

/// Moves unstable entries to storage and reports them persisted, as the application
/// would after a Ready (a leader then counts them toward the commit quorum). A node
/// with a pending snapshot is left alone.
pub(crate) fn persist(r: &mut Raft<MemStorage>) {
    if r.raft_log.unstable.snapshot.is_some() {
        return;
    }
    let ents = r.raft_log.unstable_entries().to_vec();
    r.raft_log.store.append(&ents).unwrap();
    if let Some(e) = ents.last() {
        r.raft_log.stable_to(e.index, e.term);
    }
    r.on_persisted();
}

/// [`persist`], then applies everything committed.
pub(crate) fn persist_and_apply(r: &mut Raft<MemStorage>) {
    persist(r);
    let committed = r.raft_log.committed;
    r.raft_log.applied_to(committed);
}

/// etcd `commitNoopEntry`: the new leader's empty entry is acknowledged by all voters.
pub(crate) fn commit_noop_entry(r: &mut Raft<MemStorage>) {
    assert_eq!(r.state, crate::StateRole::Leader);
    persist(r);
    r.bcast_append();
    let last = r.raft_log.last_index();
    let peers: Vec<u64> = r
        .prs
        .voters
        .iter()
        .copied()
        .filter(|p| *p != r.id)
        .collect();
    for p in peers {
        let m = Message {
            index: last,
            ..msg(MessageType::AppendResponse, p, r.id, r.term)
        };
        r.step(m).unwrap();
    }
    take_msgs(r);
    persist_and_apply(r);
}

/// Rafts connected by a lossless, synchronous network with cuttable links.
pub(crate) struct Network {
    pub(crate) peers: BTreeMap<u64, Raft<MemStorage>>,
    dropped: BTreeSet<(u64, u64)>,
    ignored: BTreeSet<MessageTypeKey>,
}

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct MessageTypeKey(u8);

fn key(t: MessageType) -> MessageTypeKey {
    MessageTypeKey(t as u8)
}

impl Network {
    /// Nodes `ids` (all voters) with [`cfg`].
    pub(crate) fn new(ids: &[u64]) -> Self {
        Self::with_config(ids, cfg)
    }

    pub(crate) fn with_config(ids: &[u64], mk: impl Fn(u64) -> Config) -> Self {
        let peers = ids
            .iter()
            .map(|&id| (id, raft_with(mk(id), store_with(ids))))
            .collect();
        Network {
            peers,
            dropped: BTreeSet::new(),
            ignored: BTreeSet::new(),
        }
    }

    pub(crate) fn from_rafts(rafts: Vec<Raft<MemStorage>>) -> Self {
        Network {
            peers: rafts.into_iter().map(|r| (r.id, r)).collect(),
            dropped: BTreeSet::new(),
            ignored: BTreeSet::new(),
        }
    }

    pub(crate) fn peer(&mut self, id: u64) -> &mut Raft<MemStorage> {
        self.peers.get_mut(&id).unwrap()
    }

    /// Delivers `msgs` and everything they cause until the network is quiet. A
    /// leader persists its new entries after each step (as its application would
    /// before sending), so that they count toward the commit quorum; followers'
    /// entries stay unstable.
    pub(crate) fn send(&mut self, msgs: Vec<Message>) {
        let mut queue: VecDeque<Message> = self.filter(msgs).into();
        while let Some(m) = queue.pop_front() {
            let Some(p) = self.peers.get_mut(&m.to) else {
                continue;
            };
            let _ = p.step(m);
            if p.state == crate::StateRole::Leader {
                persist(p);
            }
            let out = take_msgs(p);
            queue.extend(self.filter(out));
        }
    }

    fn filter(&self, msgs: Vec<Message>) -> Vec<Message> {
        msgs.into_iter()
            .filter(|m| !self.dropped.contains(&(m.from, m.to)))
            .filter(|m| !self.ignored.contains(&key(m.msg_type)))
            .collect()
    }

    pub(crate) fn campaign(&mut self, id: u64) {
        self.send(vec![msg(MessageType::Hup, id, id, 0)]);
    }

    pub(crate) fn propose(&mut self, id: u64, data: &'static [u8]) {
        self.send(vec![propose_msg(id, data)]);
    }

    pub(crate) fn cut(&mut self, a: u64, b: u64) {
        self.dropped.insert((a, b));
        self.dropped.insert((b, a));
    }

    pub(crate) fn isolate(&mut self, id: u64) {
        let ids: Vec<u64> = self.peers.keys().copied().collect();
        for other in ids.into_iter().filter(|o| *o != id) {
            self.cut(id, other);
        }
    }

    pub(crate) fn ignore(&mut self, t: MessageType) {
        self.ignored.insert(key(t));
    }

    pub(crate) fn recover(&mut self) {
        self.dropped.clear();
        self.ignored.clear();
    }

    /// Every node's full log (stable + unstable) as (index, term) pairs.
    pub(crate) fn log_of(&mut self, id: u64) -> Vec<(u64, u64)> {
        let r = self.peer(id);
        let first = r.raft_log.first_index();
        let last = r.raft_log.last_index();
        r.raft_log
            .slice(first, last + 1, None)
            .unwrap()
            .iter()
            .map(|e| (e.index, e.term))
            .collect()
    }
}
