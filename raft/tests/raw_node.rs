//! The RawNode/Ready contract the server relies on, through the public API only.

use bytes::Bytes;
use raft::{
    ConfChange, ConfChangeType, ConfState, Config, Entry, EntryType, Error, HardState, MemStorage,
    Message, MessageType, RawNode, ReadState, Ready, SoftState, StateRole, Storage,
};

fn single_voter() -> RawNode<MemStorage> {
    let store = MemStorage::new_with_conf_state(ConfState {
        voters: vec![1],
        learners: vec![],
    });
    RawNode::new(&Config::new(1), store).unwrap()
}

/// Steps 1 and 4 of the Ready contract for a single node (no peers to send to).
fn persist_and_advance(node: &mut RawNode<MemStorage>, rd: Ready) {
    let store = node.mut_store();
    if let Some(s) = &rd.snapshot {
        store.apply_snapshot(s.clone()).unwrap();
    }
    store.append(&rd.entries).unwrap();
    if let Some(hs) = rd.hard_state {
        store.set_hard_state(hs);
    }
    node.advance(rd);
}

/// Handles Readys until there is nothing left to do (a leader's entries commit only
/// at the `advance` that reports them persisted, so their commit comes in the next
/// Ready).
fn drain(node: &mut RawNode<MemStorage>) {
    while node.has_ready() {
        let rd = node.ready();
        persist_and_advance(node, rd);
    }
}

fn entry(index: u64, term: u64, data: &'static [u8]) -> Entry {
    Entry {
        index,
        term,
        entry_type: EntryType::Normal,
        data: Bytes::from_static(data),
    }
}

#[test]
fn single_voter_write_path() {
    let mut node = single_voter();
    assert!(!node.has_ready());
    assert_eq!(
        node.propose(Bytes::new(), Bytes::from_static(b"early")),
        Err(Error::ProposalDropped)
    );

    node.campaign().unwrap();
    assert!(node.has_ready());
    let rd = node.ready();
    assert_eq!(
        rd.soft_state,
        Some(SoftState {
            leader_id: 1,
            raft_state: StateRole::Leader
        })
    );
    // The entry commits only once persisted: at advance, not on append.
    let hs = HardState {
        term: 1,
        vote: 1,
        commit: 0,
    };
    assert_eq!(rd.hard_state, Some(hs));
    assert_eq!(rd.entries, vec![entry(1, 1, b"")]);
    assert!(rd.committed_entries.is_empty());
    assert!(rd.messages.is_empty());
    assert!(rd.must_sync);
    persist_and_advance(&mut node, rd);
    assert!(node.has_ready());
    let rd = node.ready();
    assert_eq!(rd.hard_state, Some(HardState { commit: 1, ..hs }));
    assert!(rd.entries.is_empty());
    assert_eq!(rd.committed_entries, vec![entry(1, 1, b"")]);
    assert!(!rd.must_sync, "a commit index change alone needs no fsync");
    persist_and_advance(&mut node, rd);
    assert!(!node.has_ready());

    // Group commit: proposals made before ready() come out in one Ready, appended
    // (one fsync) together, and committed together at its advance.
    node.propose(Bytes::new(), Bytes::from_static(b"a"))
        .unwrap();
    node.propose(Bytes::new(), Bytes::from_static(b"b"))
        .unwrap();
    let rd = node.ready();
    let want = vec![entry(2, 1, b"a"), entry(3, 1, b"b")];
    assert_eq!(rd.soft_state, None);
    assert_eq!(rd.hard_state, None);
    assert_eq!(rd.entries, want);
    assert!(rd.committed_entries.is_empty());
    assert!(rd.must_sync);
    persist_and_advance(&mut node, rd);
    let rd = node.ready();
    assert_eq!(rd.hard_state, Some(HardState { commit: 3, ..hs }));
    assert_eq!(rd.committed_entries, want);
    assert!(!rd.must_sync);
    persist_and_advance(&mut node, rd);
    assert!(!node.has_ready());
    assert_eq!(node.status().applied, 3);
    assert_eq!(node.store().last_index(), Ok(3));

    // ReadIndex on a single voter: answered in the next Ready with the commit index.
    node.read_index(Bytes::from_static(b"r1"));
    let rd = node.ready();
    assert_eq!(
        rd.read_states,
        vec![ReadState {
            index: 3,
            request_ctx: Bytes::from_static(b"r1")
        }]
    );
    assert!(rd.entries.is_empty());
    assert!(rd.hard_state.is_none());
    assert!(!rd.must_sync);
    persist_and_advance(&mut node, rd);
    assert!(!node.has_ready());
}

#[test]
fn single_voter_elects_itself_by_ticks() {
    let mut node = single_voter();
    let mut ticks = 0;
    while node.status().soft_state.raft_state != StateRole::Leader {
        node.tick();
        ticks += 1;
        assert!(ticks < 20, "no election after {ticks} ticks");
    }
    assert!(
        ticks >= 10,
        "elected after {ticks} ticks, before election_tick"
    );
    assert_eq!(node.status().hard_state.term, 1);
}

#[test]
fn restart_from_persisted_state() {
    let mut node = single_voter();
    node.campaign().unwrap();
    drain(&mut node);
    node.propose(Bytes::new(), Bytes::from_static(b"a"))
        .unwrap();
    drain(&mut node);
    let store = node.mut_store().clone();
    assert_eq!(
        store.hard_state(),
        HardState {
            term: 1,
            vote: 1,
            commit: 2
        }
    );

    let cfg = Config {
        applied: 2,
        ..Config::new(1)
    };
    let mut node = RawNode::new(&cfg, store).unwrap();
    assert!(!node.has_ready(), "nothing new after a clean restart");
    node.campaign().unwrap();
    let rd = node.ready();
    assert_eq!(
        rd.hard_state,
        Some(HardState {
            term: 2,
            vote: 1,
            commit: 2
        })
    );
    assert_eq!(rd.entries, vec![entry(3, 2, b"")]);
    persist_and_advance(&mut node, rd);
    let rd = node.ready();
    assert_eq!(rd.hard_state.map(|h| h.commit), Some(3));
    assert_eq!(rd.committed_entries, vec![entry(3, 2, b"")]);
    persist_and_advance(&mut node, rd);

    // Without `applied`, committed entries are handed out again for re-apply.
    let store = node.mut_store().clone();
    let mut node = RawNode::new(&Config::new(1), store).unwrap();
    let rd = node.ready();
    assert_eq!(rd.committed_entries.len(), 3);
    assert!(!rd.must_sync);
    persist_and_advance(&mut node, rd);
}

#[test]
fn commit_only_change_does_not_sync() {
    // A follower that learns a higher commit from a heartbeat persists it lazily.
    let store = MemStorage::new_with_conf_state(ConfState {
        voters: vec![1, 2],
        learners: vec![],
    });
    let mut node = RawNode::new(&Config::new(2), store).unwrap();
    let app = Message {
        from: 1,
        to: 2,
        term: 1,
        entries: vec![entry(1, 1, b"")],
        ..Message::new(MessageType::Append)
    };
    node.step(app).unwrap();
    let rd = node.ready();
    assert!(rd.must_sync, "term and entries changed");
    assert_eq!(rd.messages.len(), 1);
    assert_eq!(rd.messages[0].msg_type, MessageType::AppendResponse);
    assert_eq!(rd.messages[0].index, 1);
    persist_and_advance(&mut node, rd);
    let hb = Message {
        from: 1,
        to: 2,
        term: 1,
        commit: 1,
        ..Message::new(MessageType::Heartbeat)
    };
    node.step(hb).unwrap();
    let rd = node.ready();
    assert_eq!(
        rd.hard_state,
        Some(HardState {
            term: 1,
            vote: 0,
            commit: 1
        })
    );
    assert_eq!(rd.committed_entries, vec![entry(1, 1, b"")]);
    assert!(!rd.must_sync);
    persist_and_advance(&mut node, rd);
}

#[test]
fn step_rejects_bad_input() {
    let mut node = single_voter();
    assert_eq!(
        node.step(Message::new(MessageType::Hup)),
        Err(Error::StepLocalMsg)
    );
    let resp = Message {
        from: 9,
        term: 1,
        ..Message::new(MessageType::AppendResponse)
    };
    assert_eq!(node.step(resp), Err(Error::StepPeerNotFound));
    let gap = Message {
        from: 2,
        to: 1,
        term: 1,
        index: 0,
        entries: vec![entry(2, 1, b"")],
        ..Message::new(MessageType::Append)
    };
    assert_eq!(
        node.step(gap),
        Err(Error::MessageInvalid(
            "append entry 0 has index 2, expected 1".into()
        ))
    );
    let future = Message {
        from: 2,
        to: 1,
        term: 1,
        entries: vec![entry(1, 5, b"")],
        ..Message::new(MessageType::Append)
    };
    assert_eq!(
        node.step(future),
        Err(Error::MessageInvalid(
            "append entry 1 has term 5, outside [0, 1]".into()
        ))
    );
    // Contradicting the local log: committing beyond it, acknowledging the unknown.
    let hb = Message {
        from: 2,
        to: 1,
        term: 1,
        commit: 7,
        ..Message::new(MessageType::Heartbeat)
    };
    assert_eq!(
        node.step(hb),
        Err(Error::MessageInvalid(
            "heartbeat from 2 commits 7 beyond last index 0 (log lost or corrupted?)".into()
        ))
    );
    assert_eq!(
        node.status().hard_state.term,
        0,
        "refused message had no effect"
    );
    assert!(matches!(
        RawNode::new(&Config::default(), MemStorage::new()),
        Err(Error::ConfigInvalid(_))
    ));
    let mut bad = MemStorage::new();
    bad.set_hard_state(HardState {
        term: 1,
        vote: 0,
        commit: 5,
    });
    assert_eq!(
        RawNode::new(&Config::new(1), bad).err(),
        Some(Error::Storage(
            "hard state commit 5 is out of range [0, 0]".into()
        ))
    );
}

#[test]
fn append_overwriting_committed_entry_is_refused() {
    let store = MemStorage::new_with_conf_state(ConfState {
        voters: vec![1, 2],
        learners: vec![],
    });
    let mut node = RawNode::new(&Config::new(2), store).unwrap();
    let app = Message {
        from: 1,
        to: 2,
        term: 1,
        entries: vec![entry(1, 1, b"a")],
        commit: 1,
        ..Message::new(MessageType::Append)
    };
    node.step(app).unwrap();
    let rd = node.ready();
    persist_and_advance(&mut node, rd);
    let evil = Message {
        from: 1,
        to: 2,
        term: 2,
        entries: vec![entry(1, 2, b"b")],
        ..Message::new(MessageType::Append)
    };
    assert_eq!(
        node.step(evil),
        Err(Error::MessageInvalid(
            "append from 1 would overwrite committed entry 1 (committed 1)".into()
        ))
    );
    let ack = Message {
        from: 1,
        to: 2,
        term: 1,
        index: 5,
        ..Message::new(MessageType::AppendResponse)
    };
    assert_eq!(
        node.step(ack),
        Err(Error::MessageInvalid(
            "append response from 1 acknowledges 5 beyond last index 1".into()
        ))
    );
}

#[test]
fn conf_change_through_raw_node() {
    let mut node = single_voter();
    node.campaign().unwrap();
    drain(&mut node);
    let cc = ConfChange {
        change_type: ConfChangeType::AddLearnerNode,
        node_id: 2,
        context: Bytes::from_static(b"peer-url"),
    };
    node.propose_conf_change(Bytes::new(), cc.clone()).unwrap();
    let rd = node.ready();
    persist_and_advance(&mut node, rd);
    let rd = node.ready();
    assert_eq!(rd.committed_entries.len(), 1);
    let e = &rd.committed_entries[0];
    assert_eq!(e.entry_type, EntryType::ConfChange);
    let decoded = ConfChange::decode(&e.data).unwrap();
    assert_eq!(decoded, cc);
    let cs = node.apply_conf_change(&decoded).unwrap();
    assert_eq!(
        cs,
        ConfState {
            voters: vec![1],
            learners: vec![2]
        }
    );
    node.mut_store().set_conf_state(cs.clone());
    persist_and_advance(&mut node, rd);
    // The leader now replicates to the learner.
    node.propose(Bytes::new(), Bytes::from_static(b"x"))
        .unwrap();
    let rd = node.ready();
    assert_eq!(rd.entries, vec![entry(3, 1, b"x")]);
    assert_eq!(rd.messages.len(), 1);
    assert_eq!(rd.messages[0].to, 2);
    assert_eq!(rd.messages[0].msg_type, MessageType::Append);
    let st = node.status();
    assert_eq!(st.conf_state, cs);
    let progress = st.progress.unwrap();
    assert!(progress[&2].is_learner);
    assert_eq!(progress[&1].matched, 2, "entry 3 is not persisted yet");
    persist_and_advance(&mut node, rd);
    let rd = node.ready();
    assert_eq!(rd.committed_entries, vec![entry(3, 1, b"x")]);
    assert_eq!(node.status().progress.unwrap()[&1].matched, 3);
    persist_and_advance(&mut node, rd);
}
