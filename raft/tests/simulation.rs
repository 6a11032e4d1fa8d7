//! Deterministic simulation of 3- and 5-node clusters (TigerBeetle VOPR style).
//!
//! Every source of non-determinism is drawn from one seed: message loss,
//! duplication, delay (hence reordering), partitions (symmetric and one-way),
//! crashes and restarts from persisted state, proposals, leader transfers and log
//! compaction with snapshots. After EVERY step the invariants are checked:
//! election safety, log matching, leader completeness and state-machine safety.
//! At the end the faults stop and the cluster must commit a final entry everywhere.
//!
//! Default run: a few seeds per size. `CAIRN_SIM_SEEDS=N` runs N seeds per size;
//! `SEED=S` runs only seed S (with both sizes). A failure prints
//! `reproduce with: SEED=...`.

use std::collections::{BTreeMap, BTreeSet};
use std::panic::{catch_unwind, AssertUnwindSafe};

use bytes::Bytes;
use raft::{
    ConfState, Config, Entry, MemStorage, Message, MessageType, RawNode, StateRole, Storage,
};

const STEPS: usize = 1500;
const LIVENESS_STEPS_MAX: usize = 600;
const DEFAULT_SEEDS: u64 = 4;

/// SplitMix64 (the same generator raft uses), so a seed means the same run forever.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    /// True with probability `per_mille` / 1000.
    fn chance(&mut self, per_mille: u64) -> bool {
        self.below(1000) < per_mille
    }
}

fn mix(hash: u64, e: &Entry) -> u64 {
    let mut h = hash ^ e.term.wrapping_mul(0x100_0000_01B3) ^ e.index.rotate_left(17);
    for b in e.data.iter() {
        h = (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01B3);
    }
    h
}

struct Faults {
    loss_per_mille: u64,
    dup_per_mille: u64,
    delay_max: u64,
    crash_per_mille: u64,
    partition_per_mille: u64,
}

struct Node {
    id: u64,
    raw: Option<RawNode<MemStorage>>,
    /// Durable state while crashed.
    disk: MemStorage,
    applied: u64,
    sm_hash: u64,
}

struct Committed {
    term: u64,
    data: Bytes,
    hash: u64,
    /// Highest term any node had when the commit was first observed: leaders of a
    /// later term must hold the entry.
    observed_term: u64,
}

struct Sim {
    seed: u64,
    rng: Rng,
    faults: Faults,
    pre_vote: bool,
    check_quorum: bool,
    nodes: Vec<Node>,
    in_flight: Vec<(u64, Message)>,
    blocked: BTreeSet<(u64, u64)>,
    now: u64,
    leaders: BTreeMap<u64, u64>,
    committed: BTreeMap<u64, Committed>,
    next_data: u64,
    stats: Stats,
    /// Read contexts issued, with the highest commit index any node knew then: a
    /// linearizable read index must not be below it.
    reads: BTreeMap<Bytes, u64>,
}

/// What a run exercised, printed per seed.
#[derive(Debug, Default)]
struct Stats {
    crashes: u64,
    snapshots_installed: u64,
    messages_delivered: u64,
    partitions: u64,
    reads_answered: u64,
}

impl Sim {
    fn new(seed: u64, size: u64) -> Sim {
        let mut rng = Rng(seed ^ (size << 56));
        let faults = Faults {
            loss_per_mille: rng.below(150),
            dup_per_mille: rng.below(80),
            delay_max: 1 + rng.below(4),
            crash_per_mille: rng.below(8),
            partition_per_mille: rng.below(15),
        };
        let (pre_vote, check_quorum) = (rng.chance(500), rng.chance(500));
        let voters: Vec<u64> = (1..=size).collect();
        let mut sim = Sim {
            seed,
            rng,
            faults,
            pre_vote,
            check_quorum,
            nodes: Vec::new(),
            in_flight: Vec::new(),
            blocked: BTreeSet::new(),
            now: 0,
            leaders: BTreeMap::new(),
            committed: BTreeMap::new(),
            next_data: 0,
            stats: Stats::default(),
            reads: BTreeMap::new(),
        };
        for &id in &voters {
            let disk = MemStorage::new_with_conf_state(ConfState {
                voters: voters.clone(),
                learners: vec![],
            });
            sim.nodes.push(Node {
                id,
                raw: None,
                disk,
                applied: 0,
                sm_hash: 0,
            });
            sim.restart(id);
        }
        sim
    }

    fn config(&self, id: u64, applied: u64) -> Config {
        Config {
            id,
            election_tick: 10,
            heartbeat_tick: 1,
            max_size_per_msg: 256,
            max_inflight_msgs: 8,
            pre_vote: self.pre_vote,
            check_quorum: self.check_quorum,
            applied,
            seed: self.seed.wrapping_add(self.now),
        }
    }

    fn node(&mut self, id: u64) -> &mut Node {
        &mut self.nodes[(id - 1) as usize]
    }

    fn crash(&mut self, id: u64) {
        let n = self.node(id);
        if let Some(raw) = n.raw.take() {
            n.disk = raw.store().clone();
            self.stats.crashes += 1;
        }
    }

    /// Restarts from disk: the state machine is rebuilt from the stored snapshot.
    fn restart(&mut self, id: u64) {
        let disk = self.node(id).disk.clone();
        let snap = disk.snapshot(0).ok();
        let (applied, hash) = snap.map_or((0, 0), |s| (s.metadata.index, decode_hash(&s.data)));
        let cfg = self.config(id, applied);
        let raw = RawNode::new(&cfg, disk).expect("restart from persisted state");
        let n = self.node(id);
        n.raw = Some(raw);
        n.applied = applied;
        n.sm_hash = hash;
    }

    fn max_commit(&self) -> u64 {
        self.nodes
            .iter()
            .map(|n| match &n.raw {
                Some(r) => r.status().hard_state.commit,
                None => n.disk.hard_state().commit,
            })
            .max()
            .unwrap_or(0)
    }

    fn max_term(&self) -> u64 {
        self.nodes
            .iter()
            .map(|n| match &n.raw {
                Some(r) => r.status().hard_state.term,
                None => n.disk.hard_state().term,
            })
            .max()
            .unwrap_or(0)
    }

    fn send(&mut self, m: Message) {
        // Through the codec, as a real transport would.
        let m = Message::decode(&m.encode()).expect("codec round trip");
        if self.rng.chance(self.faults.loss_per_mille) {
            if m.msg_type == MessageType::Snapshot {
                if let Some(r) = self.node(m.from).raw.as_mut() {
                    r.report_snapshot(m.to, true);
                }
            }
            return;
        }
        let copies = if self.rng.chance(self.faults.dup_per_mille) {
            2
        } else {
            1
        };
        for _ in 0..copies {
            let at = self.now + self.rng.below(self.faults.delay_max + 1);
            self.in_flight.push((at, m.clone()));
        }
    }

    /// Runs the Ready loop of node `id` (persist, send, apply, advance).
    fn handle_ready(&mut self, id: u64) -> Result<(), String> {
        loop {
            let Some(raw) = self.node(id).raw.as_mut() else {
                return Ok(());
            };
            if !raw.has_ready() {
                return Ok(());
            }
            let mut rd = raw.ready();
            let msgs = std::mem::take(&mut rd.messages);
            let store = raw.mut_store();
            if let Some(s) = &rd.snapshot {
                store
                    .apply_snapshot(s.clone())
                    .map_err(|e| format!("apply_snapshot: {e}"))?;
            }
            store
                .append(&rd.entries)
                .map_err(|e| format!("append: {e}"))?;
            if let Some(hs) = rd.hard_state {
                store.set_hard_state(hs);
            }
            let soft = rd.soft_state;
            for m in msgs {
                self.send(m);
            }
            if let Some(s) = &rd.snapshot {
                self.apply_snapshot(id, s.metadata.index, decode_hash(&s.data))?;
                self.stats.snapshots_installed += 1;
            }
            for e in &rd.committed_entries {
                self.apply(id, e)?;
            }
            for rs in &rd.read_states {
                let Some(&floor) = self.reads.get(&rs.request_ctx) else {
                    return Err(format!("node {id} got a read state for an unknown context"));
                };
                if rs.index < floor {
                    return Err(format!(
                        "linearizable read: node {id} got read index {} below commit {floor} known when the read began",
                        rs.index
                    ));
                }
                self.stats.reads_answered += 1;
            }
            let raw = self.node(id).raw.as_mut().expect("alive");
            raw.advance(rd);
            if let Some(ss) = soft {
                if ss.raft_state == StateRole::Leader {
                    let term = raw.status().hard_state.term;
                    self.record_leader(term, id)?;
                }
            }
        }
    }

    fn record_leader(&mut self, term: u64, id: u64) -> Result<(), String> {
        let first = *self.leaders.entry(term).or_insert(id);
        if first != id {
            return Err(format!(
                "election safety: term {term} has leaders {first} and {id}"
            ));
        }
        Ok(())
    }

    fn apply_snapshot(&mut self, id: u64, index: u64, hash: u64) -> Result<(), String> {
        match self.committed.get(&index) {
            Some(c) if c.hash != hash => {
                return Err(format!(
                    "state machine safety: node {id} snapshot at {index} differs"
                ))
            }
            None => {
                return Err(format!(
                    "node {id} got a snapshot at {index}, never committed"
                ))
            }
            _ => {}
        }
        let n = self.node(id);
        n.applied = index;
        n.sm_hash = hash;
        Ok(())
    }

    fn apply(&mut self, id: u64, e: &Entry) -> Result<(), String> {
        let n = self.node(id);
        if e.index != n.applied + 1 {
            return Err(format!("node {id} applied {} after {}", e.index, n.applied));
        }
        n.applied = e.index;
        n.sm_hash = mix(n.sm_hash, e);
        let hash = n.sm_hash;
        let observed_term = self.max_term();
        let c = self.committed.entry(e.index).or_insert(Committed {
            term: e.term,
            data: e.data.clone(),
            hash,
            observed_term,
        });
        if c.term != e.term || c.data != e.data || c.hash != hash {
            return Err(format!(
                "state machine safety: node {id} applied index {} term {} but term {} was applied before",
                e.index, e.term, c.term
            ));
        }
        Ok(())
    }

    fn log_of(n: &Node) -> (u64, Vec<Entry>) {
        let store = match &n.raw {
            Some(r) => r.store(),
            None => &n.disk,
        };
        let first = store.first_index().unwrap();
        let last = store.last_index().unwrap();
        (first, store.entries(first, last + 1, None).unwrap())
    }

    fn check_invariants(&self) -> Result<(), String> {
        let logs: Vec<(u64, Vec<Entry>)> = self.nodes.iter().map(Self::log_of).collect();
        // Log matching: same (index, term) implies identical prefixes.
        for a in 0..logs.len() {
            for b in a + 1..logs.len() {
                let (fa, la) = (&logs[a].0, &logs[a].1);
                let (fb, lb) = (&logs[b].0, &logs[b].1);
                let lo = *fa.max(fb);
                let hi = (fa + la.len() as u64).min(fb + lb.len() as u64);
                let at = |f: u64, l: &Vec<Entry>, i: u64| l[(i - f) as usize].clone();
                let top = (lo..hi)
                    .rev()
                    .find(|&i| at(*fa, la, i).term == at(*fb, lb, i).term);
                if let Some(top) = top {
                    for i in lo..=top {
                        if at(*fa, la, i) != at(*fb, lb, i) {
                            return Err(format!(
                                "log matching: nodes {} and {} agree at {top} but differ at {i}",
                                a + 1,
                                b + 1
                            ));
                        }
                    }
                }
            }
        }
        // Leader completeness: a leader of a term after a commit holds the entry.
        for (n, (first, log)) in self.nodes.iter().zip(&logs) {
            let Some(raw) = &n.raw else { continue };
            let st = raw.status();
            if st.soft_state.raft_state != StateRole::Leader {
                continue;
            }
            for (&i, c) in self.committed.range(*first..) {
                if c.observed_term >= st.hard_state.term {
                    continue;
                }
                let held = log.get((i - first) as usize);
                if held.map(|e| (e.term, &e.data)) != Some((c.term, &c.data)) {
                    return Err(format!(
                        "leader completeness: leader {} of term {} lacks committed entry {i}",
                        n.id, st.hard_state.term
                    ));
                }
            }
        }
        Ok(())
    }

    fn deliver_due(&mut self) -> Result<(), String> {
        let mut due = Vec::new();
        let now = self.now;
        self.in_flight.retain(|(at, m)| {
            if *at <= now {
                due.push(m.clone());
                false
            } else {
                true
            }
        });
        // Shuffle: same-step messages arrive in any order.
        for i in (1..due.len()).rev() {
            let j = self.rng.below(i as u64 + 1) as usize;
            due.swap(i, j);
        }
        for m in due {
            let (from, to) = (m.from, m.to);
            if self.blocked.contains(&(from, to)) {
                continue;
            }
            let is_snap = m.msg_type == MessageType::Snapshot;
            self.stats.messages_delivered += 1;
            let Some(raw) = self.node(to).raw.as_mut() else {
                continue;
            };
            match raw.step(m) {
                Ok(()) | Err(raft::Error::ProposalDropped) => {}
                Err(e) => return Err(format!("step on {to} from {from}: {e}")),
            }
            self.handle_ready(to)?;
            if is_snap {
                if let Some(r) = self.node(from).raw.as_mut() {
                    r.report_snapshot(to, false);
                }
                self.handle_ready(from)?;
            }
        }
        Ok(())
    }

    fn random_event(&mut self, faults: bool) -> Result<(), String> {
        let size = self.nodes.len() as u64;
        let id = 1 + self.rng.below(size);
        if faults && self.rng.chance(self.faults.crash_per_mille) {
            self.crash(id);
        }
        if self.node(id).raw.is_none() && self.rng.chance(if faults { 30 } else { 1000 }) {
            self.restart(id);
        }
        if faults && self.rng.chance(self.faults.partition_per_mille) {
            self.blocked.clear();
            self.stats.partitions += 1;
            let cut = 1 + self.rng.below(size);
            let one_way = self.rng.chance(300);
            for other in (1..=size).filter(|o| *o != cut) {
                self.blocked.insert((cut, other));
                if !one_way {
                    self.blocked.insert((other, cut));
                }
            }
        }
        if faults && self.rng.chance(20) {
            self.blocked.clear();
        }
        if self.rng.chance(300) {
            let leader = self.nodes.iter().find_map(|n| {
                let r = n.raw.as_ref()?;
                (r.status().soft_state.raft_state == StateRole::Leader).then_some(n.id)
            });
            let target = leader.unwrap_or(id);
            self.next_data += 1;
            let data = Bytes::from(format!("v{}", self.next_data));
            if let Some(r) = self.node(target).raw.as_mut() {
                let _ = r.propose(Bytes::new(), data);
            }
            self.handle_ready(target)?;
        }
        if faults && self.rng.chance(5) {
            let to = 1 + self.rng.below(size);
            if let Some(r) = self.node(id).raw.as_mut() {
                r.transfer_leader(to);
            }
            self.handle_ready(id)?;
        }
        if self.rng.chance(10) {
            self.compact(id)?;
        }
        if self.rng.chance(100) {
            let ctx = Bytes::from(format!("read-{}", self.reads.len()));
            let floor = self.max_commit();
            self.reads.insert(ctx.clone(), floor);
            if let Some(r) = self.node(id).raw.as_mut() {
                r.read_index(ctx);
            }
            self.handle_ready(id)?;
        }
        Ok(())
    }

    /// Snapshot at the applied index and drop most of the log before it.
    fn compact(&mut self, id: u64) -> Result<(), String> {
        let keep = self.rng.below(4);
        let n = self.node(id);
        let (applied, hash) = (n.applied, n.sm_hash);
        let Some(raw) = n.raw.as_mut() else {
            return Ok(());
        };
        let store = raw.mut_store();
        let snap_index = store.snapshot(0).map_or(0, |s| s.metadata.index);
        if applied <= snap_index + 3 {
            return Ok(());
        }
        let cs = store.conf_state().clone();
        store
            .create_snapshot(applied, cs, Bytes::from(hash.to_le_bytes().to_vec()))
            .map_err(|e| format!("create_snapshot: {e}"))?;
        let first = store.first_index().unwrap();
        let upto = applied - keep;
        if upto >= first {
            store.compact(upto).map_err(|e| format!("compact: {e}"))?;
        }
        Ok(())
    }

    fn step(&mut self, faults: bool) -> Result<(), String> {
        self.now += 1;
        let ids: Vec<u64> = self.nodes.iter().map(|n| n.id).collect();
        for id in ids {
            if let Some(r) = self.node(id).raw.as_mut() {
                r.tick();
            }
            self.handle_ready(id)?;
        }
        self.deliver_due()?;
        self.random_event(faults)?;
        self.check_invariants()
    }

    fn run(&mut self) -> Result<(), String> {
        for _ in 0..STEPS {
            self.step(true)?;
        }
        // Heal everything: the cluster must make progress again.
        self.blocked.clear();
        self.faults.loss_per_mille = 0;
        self.faults.dup_per_mille = 0;
        for id in 1..=self.nodes.len() as u64 {
            if self.node(id).raw.is_none() {
                self.restart(id);
            }
        }
        // Propose a marker on the leader; a marker lost to a leader change is
        // proposed again (under a new name) after a while.
        let mut markers: Vec<Bytes> = Vec::new();
        let mut last_proposal = 0;
        for step in 0..LIVENESS_STEPS_MAX {
            self.step(false)?;
            let leader = self.nodes.iter().find_map(|n| {
                let r = n.raw.as_ref()?;
                (r.status().soft_state.raft_state == StateRole::Leader).then_some(n.id)
            });
            if let Some(l) = leader {
                if markers.is_empty() || step - last_proposal >= 50 {
                    let data = Bytes::from(format!("final-{}-{step}", self.seed));
                    let raw = self.node(l).raw.as_mut().expect("leader is alive");
                    if raw.propose(Bytes::new(), data.clone()).is_ok() {
                        markers.push(data);
                        last_proposal = step;
                    }
                    self.handle_ready(l)?;
                }
            }
            let done = self
                .committed
                .iter()
                .filter(|(_, c)| markers.contains(&c.data))
                .any(|(i, _)| self.nodes.iter().all(|n| n.applied >= *i));
            if done {
                return Ok(());
            }
        }
        let states: Vec<String> = self
            .nodes
            .iter()
            .map(|n| {
                let r = n.raw.as_ref().expect("all restarted");
                let st = r.status();
                let (first, log) = Self::log_of(n);
                format!(
                    "node {}: {:?} term {} commit {} applied {} log [{first}, {}] progress {:?}",
                    n.id,
                    st.soft_state,
                    st.hard_state.term,
                    st.hard_state.commit,
                    n.applied,
                    first + log.len() as u64 - 1,
                    st.progress
                )
            })
            .collect();
        Err(format!(
            "liveness: after healing, no entry committed on every node within {LIVENESS_STEPS_MAX} steps ({} markers proposed)\n{}",
            markers.len(),
            states.join("\n")
        ))
    }
}

fn decode_hash(data: &[u8]) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&data[..8]);
    u64::from_le_bytes(b)
}

fn run_seed(seed: u64, size: u64) -> Result<(usize, u64, Stats), String> {
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        let mut sim = Sim::new(seed, size);
        sim.run().map(|_| {
            (
                sim.committed.len(),
                sim.leaders.len() as u64,
                std::mem::take(&mut sim.stats),
            )
        })
    }));
    match outcome {
        Ok(r) => r,
        Err(p) => {
            let msg = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            Err(format!("panic: {msg}"))
        }
    }
}

fn seeds() -> Vec<u64> {
    if let Ok(s) = std::env::var("SEED") {
        return vec![s.parse().expect("SEED must be a u64")];
    }
    let n = std::env::var("CAIRN_SIM_SEEDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_SEEDS);
    (0..n).map(|i| 0x5EED_0000 + i).collect()
}

fn simulate(size: u64) {
    let mut failures = Vec::new();
    for seed in seeds() {
        match run_seed(seed, size) {
            Ok((committed, terms, stats)) => {
                assert!(committed > 0, "seed {seed}: nothing committed");
                eprintln!(
                    "size {size} seed {seed}: {committed} entries committed, {terms} terms with leaders, {stats:?}"
                );
            }
            Err(e) => {
                eprintln!("{size}-node cluster failed: {e}\nreproduce with: SEED={seed} cargo test -p raft --test simulation");
                failures.push(seed);
            }
        }
    }
    assert!(failures.is_empty(), "failing seeds: {failures:?}");
}

#[test]
fn simulate_three_nodes() {
    simulate(3);
}

#[test]
fn simulate_five_nodes() {
    simulate(5);
}

#[test]
fn same_seed_same_run() {
    let run = || {
        let mut sim = Sim::new(42, 3);
        for _ in 0..400 {
            sim.step(true).unwrap();
        }
        let hashes: Vec<(u64, u64)> = sim.nodes.iter().map(|n| (n.applied, n.sm_hash)).collect();
        (sim.leaders.clone(), hashes, sim.stats.messages_delivered)
    };
    assert_eq!(run(), run());
}
