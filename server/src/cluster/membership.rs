//! The cluster's members: who they are (ID, name, peer and client URLs), which are
//! learners, and which were removed. Plain state, replicated through the Raft log.
//!
//! Shapes follow etcd's `membership.RaftCluster` (`server/etcdserver/api/membership`):
//! members join with a ConfChange entry whose context is the new member (here its
//! `membershippb.Member` protobuf, etcd uses JSON), leave with a RemoveNode ConfChange, are
//! promoted with an AddNode ConfChange naming an existing learner, and publish their name
//! and client URLs with a `ClusterMemberAttrSetRequest` entry once they serve clients.

use std::collections::{BTreeMap, BTreeSet};

use bytes::{Buf, BufMut};
use net::pb::etcdserverpb::Member as PbMember;
use net::pb::membershippb;
use prost::Message as _;

/// Members a cluster may have (etcd has no hard limit; a Raft group beyond a few dozen
/// voters is not useful, and the bound keeps a decoded table bounded).
pub const MEMBERS_MAX: usize = 1_024;

/// One member as the cluster knows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberInfo {
    /// Member ID (etcd's: SHA-1 of peer URLs and cluster token, plus a timestamp for
    /// members added at runtime).
    pub id: u64,
    /// Name given with `--name`; empty until the member published its attributes.
    pub name: String,
    /// Peer URLs (Raft traffic).
    pub peer_urls: Vec<String>,
    /// Client URLs; empty until the member published its attributes.
    pub client_urls: Vec<String>,
    /// A learner receives the log but does not vote.
    pub is_learner: bool,
}

impl MemberInfo {
    /// As the Cluster service reports it.
    pub fn to_pb(&self) -> PbMember {
        PbMember {
            id: self.id,
            name: self.name.clone(),
            peer_ur_ls: self.peer_urls.clone(),
            client_ur_ls: self.client_urls.clone(),
            is_learner: self.is_learner,
        }
    }

    /// From the Cluster service's shape.
    pub fn from_pb(m: PbMember) -> MemberInfo {
        MemberInfo {
            id: m.id,
            name: m.name,
            peer_urls: m.peer_ur_ls,
            client_urls: m.client_ur_ls,
            is_learner: m.is_learner,
        }
    }

    /// As carried in a ConfChange context (etcd's `membershippb.Member` shape).
    pub fn to_raft_context(&self) -> Vec<u8> {
        membershippb::Member {
            id: self.id,
            raft_attributes: Some(membershippb::RaftAttributes {
                peer_urls: self.peer_urls.clone(),
                is_learner: self.is_learner,
            }),
            member_attributes: Some(membershippb::Attributes {
                name: self.name.clone(),
                client_urls: self.client_urls.clone(),
            }),
        }
        .encode_to_vec()
    }

    /// Parses a ConfChange context. Errors: not a `membershippb.Member`.
    pub fn from_raft_context(bytes: &[u8]) -> Result<MemberInfo, String> {
        let m = membershippb::Member::decode(bytes)
            .map_err(|e| format!("conf change context is not a member: {e}"))?;
        let raft = m.raft_attributes.unwrap_or_default();
        let attrs = m.member_attributes.unwrap_or_default();
        Ok(MemberInfo {
            id: m.id,
            name: attrs.name,
            peer_urls: raft.peer_urls,
            client_urls: attrs.client_urls,
            is_learner: raft.is_learner,
        })
    }
}

/// The member table, as of some applied index.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Membership {
    members: BTreeMap<u64, MemberInfo>,
    removed: BTreeSet<u64>,
}

/// Version byte of [`Membership::encode`].
const ENCODING_VERSION: u8 = 1;

impl Membership {
    /// A table holding `members`.
    pub fn new(members: impl IntoIterator<Item = MemberInfo>) -> Membership {
        Membership {
            members: members.into_iter().map(|m| (m.id, m)).collect(),
            removed: BTreeSet::new(),
        }
    }

    /// Every member, by ID.
    pub fn members(&self) -> impl Iterator<Item = &MemberInfo> {
        self.members.values()
    }

    /// One member.
    pub fn get(&self, id: u64) -> Option<&MemberInfo> {
        self.members.get(&id)
    }

    /// Whether `id` was a member and was removed (etcd refuses such IDs for ever).
    pub fn is_removed(&self, id: u64) -> bool {
        self.removed.contains(&id)
    }

    /// Voting members' IDs.
    pub fn voters(&self) -> Vec<u64> {
        self.members
            .values()
            .filter(|m| !m.is_learner)
            .map(|m| m.id)
            .collect()
    }

    /// Learners' IDs.
    pub fn learners(&self) -> Vec<u64> {
        self.members
            .values()
            .filter(|m| m.is_learner)
            .map(|m| m.id)
            .collect()
    }

    /// Adds (or replaces) a member.
    pub fn add(&mut self, member: MemberInfo) {
        self.members.insert(member.id, member);
    }

    /// Removes a member and remembers its ID; false if it was not a member.
    pub fn remove(&mut self, id: u64) -> bool {
        self.removed.insert(id);
        self.members.remove(&id).is_some()
    }

    /// Makes a learner a voter; false if it is not a member.
    pub fn promote(&mut self, id: u64) -> bool {
        match self.members.get_mut(&id) {
            Some(m) => {
                m.is_learner = false;
                true
            }
            None => false,
        }
    }

    /// Sets a member's peer URLs (MemberUpdate); false if it is not a member.
    pub fn update_peer_urls(&mut self, id: u64, peer_urls: Vec<String>) -> bool {
        match self.members.get_mut(&id) {
            Some(m) => {
                m.peer_urls = peer_urls;
                true
            }
            None => false,
        }
    }

    /// Sets a member's published name and client URLs; false if it is not a member.
    pub fn set_attributes(&mut self, id: u64, name: String, client_urls: Vec<String>) -> bool {
        match self.members.get_mut(&id) {
            Some(m) => {
                m.name = name;
                m.client_urls = client_urls;
                true
            }
            None => false,
        }
    }

    /// The table as bytes: `version u8 | members u32 | (len u32 | Member protobuf)* |
    /// removed u32 | id u64*`, little-endian. Kept in the MVCC checkpoint's meta.
    pub fn encode(&self) -> Vec<u8> {
        let mut buf = Vec::new();
        buf.put_u8(ENCODING_VERSION);
        buf.put_u32_le(self.members.len() as u32);
        for m in self.members.values() {
            let bytes = m.to_raft_context();
            buf.put_u32_le(bytes.len() as u32);
            buf.extend_from_slice(&bytes);
        }
        buf.put_u32_le(self.removed.len() as u32);
        for id in &self.removed {
            buf.put_u64_le(*id);
        }
        buf
    }

    /// Parses [`Membership::encode`]'s bytes. Errors name what is wrong.
    pub fn decode(mut buf: &[u8]) -> Result<Membership, String> {
        let short = || "membership table is truncated".to_string();
        if buf.remaining() < 5 {
            return Err(short());
        }
        let version = buf.get_u8();
        if version != ENCODING_VERSION {
            return Err(format!(
                "membership table has version {version}, want {ENCODING_VERSION}"
            ));
        }
        let count = buf.get_u32_le() as usize;
        if count > MEMBERS_MAX {
            return Err(format!(
                "membership table holds {count} members, more than {MEMBERS_MAX}"
            ));
        }
        let mut table = Membership::default();
        for _ in 0..count {
            if buf.remaining() < 4 {
                return Err(short());
            }
            let len = buf.get_u32_le() as usize;
            if buf.remaining() < len {
                return Err(short());
            }
            table.add(MemberInfo::from_raft_context(&buf[..len])?);
            buf.advance(len);
        }
        if buf.remaining() < 4 {
            return Err(short());
        }
        let removed = buf.get_u32_le() as usize;
        if buf.remaining() != removed * 8 {
            return Err(format!(
                "membership table declares {removed} removed members but holds {} bytes",
                buf.remaining()
            ));
        }
        for _ in 0..removed {
            table.removed.insert(buf.get_u64_le());
        }
        Ok(table)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(id: u64, learner: bool) -> MemberInfo {
        MemberInfo {
            id,
            name: format!("m{id}"),
            peer_urls: vec![format!("http://127.0.0.1:{}", 2380 + id)],
            client_urls: vec![],
            is_learner: learner,
        }
    }

    #[test]
    fn encode_decode_round_trip() {
        let mut t = Membership::new([member(1, false), member(2, false), member(3, true)]);
        t.remove(2);
        t.set_attributes(1, "one".into(), vec!["http://127.0.0.1:2379".into()]);
        let back = Membership::decode(&t.encode()).unwrap();
        assert_eq!(back, t);
        assert_eq!(back.voters(), vec![1]);
        assert_eq!(back.learners(), vec![3]);
        assert!(back.is_removed(2));
        assert_eq!(back.get(1).unwrap().client_urls, ["http://127.0.0.1:2379"]);
    }

    #[test]
    fn decode_rejects_truncation_and_versions() {
        let bytes = Membership::new([member(1, false)]).encode();
        for cut in 0..bytes.len() {
            assert!(Membership::decode(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut wrong = bytes.clone();
        wrong[0] = 9;
        assert_eq!(
            Membership::decode(&wrong).unwrap_err(),
            "membership table has version 9, want 1"
        );
    }

    #[test]
    fn promote_turns_learner_into_voter() {
        let mut t = Membership::new([member(1, false), member(2, true)]);
        assert!(t.promote(2));
        assert_eq!(t.voters(), vec![1, 2]);
        assert!(!t.promote(7));
    }
}
