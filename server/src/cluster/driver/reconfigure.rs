//! Membership changes on the raft core: proposing the Cluster service's changes after
//! etcd's checks, forwarding promotions to the leader, leader transfer, automatic learner
//! promotion, and applying committed ConfChanges (see `cluster::reconfig`).

use std::sync::atomic::Ordering;
use std::time::Instant;

use bytes::Bytes;
use net::Status;
use raft::{ConfChangeType, Entry};
use tracing::{debug, info, warn};

use super::RaftCore;
use crate::cluster::membership::MemberInfo;
use crate::cluster::peers;
use crate::cluster::pending::{request_timeout, MemberChangeReply, MoveLeaderReply};
use crate::cluster::reconfig::{self, MemberChange, MemberChangeResult};
use crate::errors;

impl RaftCore {
    /// Checks a membership change as etcd does before proposing it, then proposes its
    /// ConfChange; the reply waits for the apply.
    pub(super) fn propose_member_change(
        &mut self,
        change: MemberChange,
        reply: MemberChangeReply,
        now: Instant,
    ) {
        if let Err(status) = self.check_member_change(&change) {
            let _ = reply.send(Err(status));
            return;
        }
        let unix_seconds = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let (cc, added) = match reconfig::conf_change(&change, &self.membership, unix_seconds) {
            Ok(built) => built,
            Err(status) => {
                let _ = reply.send(Err(status));
                return;
            }
        };
        let data = cc.encode();
        match self.node.propose_conf_change(Bytes::new(), cc) {
            Ok(()) => self.pending.add_conf_change(data, added, reply, now),
            Err(e) => {
                debug!("conf change dropped: {e}");
                let status = if self.shared.leader.load(Ordering::Acquire) == 0 {
                    errors::no_leader()
                } else {
                    // Another membership change is still being applied.
                    errors::timeout()
                };
                let _ = reply.send(Err(status));
            }
        }
    }

    /// Asks the leader to promote learner `id` (etcd forwards over its peer port too).
    pub(super) fn forward_promote(&self, leader: u64, id: u64, reply: MemberChangeReply) {
        let (method, body) = peers::encode_promote(id);
        let call = self.peers.request(leader, method, body);
        glommio::spawn_local(async move {
            let _ = reply.send(call.await.and_then(peers::decode_promote_answer));
        })
        .detach();
    }

    pub(super) fn check_member_change(&self, change: &MemberChange) -> Result<(), Status> {
        if let MemberChange::Promote(id) = change {
            // Only the leader knows how far a learner is (etcd's isLearnerReady).
            let status = self.node.status();
            let Some(progress) = status.progress else {
                return Err(errors::not_leader());
            };
            if self.membership.get(*id).is_some_and(|m| m.is_learner) {
                reconfig::learner_ready(*id, self.shared.member_id, &progress)?;
            }
        }
        if self.settings.strict_reconfig_check {
            reconfig::strict_check(change, &self.membership)?;
        }
        Ok(())
    }

    /// Maintenance.MoveLeader on the leader (etcd `MoveLeader`): the transferee must be a
    /// voting member; the reply waits until it leads.
    pub(super) fn move_leader(&mut self, target: u64, reply: MoveLeaderReply, now: Instant) {
        let me = self.shared.member_id;
        if self.shared.leader.load(Ordering::Acquire) != me {
            let _ = reply.send(Err(errors::not_leader()));
            return;
        }
        if self.membership.get(target).is_none_or(|m| m.is_learner) {
            let _ = reply.send(Err(errors::bad_leader_transferee()));
            return;
        }
        if target == me {
            let _ = reply.send(Ok(()));
            return;
        }
        info!(
            transferee = format!("{target:x}"),
            "leadership transfer starting"
        );
        self.node.transfer_leader(target);
        self.pending.add_transfer(target, reply, now);
    }

    /// `--auto-promote-learners`: on the leader, proposes the promotion of the first
    /// learner that passes etcd's readiness and strict-reconfig checks, at most once per
    /// request timeout (Raft refuses it while another membership change is pending).
    pub(super) fn maybe_auto_promote(&mut self, now: Instant) {
        if !self.settings.auto_promote_learners {
            return;
        }
        let timeout = request_timeout(self.settings.election_timeout());
        if self
            .auto_promote_proposed_at
            .is_some_and(|at| now.duration_since(at) < timeout)
        {
            return;
        }
        let Some(progress) = self.node.status().progress else {
            return;
        };
        let me = self.shared.member_id;
        let ready = self.membership.learners().into_iter().find(|id| {
            let change = MemberChange::Promote(*id);
            reconfig::learner_ready(*id, me, &progress).is_ok()
                && reconfig::strict_check(&change, &self.membership).is_ok()
        });
        let Some(id) = ready else { return };
        let Ok((cc, _)) = reconfig::conf_change(&MemberChange::Promote(id), &self.membership, 0)
        else {
            return;
        };
        self.auto_promote_proposed_at = Some(now);
        match self.node.propose_conf_change(Bytes::new(), cc) {
            Ok(()) => info!(
                member = format!("{id:x}"),
                "proposed promoting a learner that caught up (--auto-promote-learners)"
            ),
            Err(e) => debug!("learner promotion not proposed: {e}"),
        }
    }

    /// Applies a membership change to Raft, the member table and the transport, after
    /// etcd's validation (an invalid change is skipped by every member alike, and its
    /// proposer gets etcd's error).
    pub(super) fn apply_conf_change(&mut self, entry: &Entry) {
        let cc = raft::ConfChange::decode(&entry.data)
            .unwrap_or_else(|e| panic!("entry {}: undecodable conf change: {e}", entry.index));
        let waiter = self.pending.take_conf_change(&entry.data);
        let replay = self.is_replayed_add(&cc);
        if !replay {
            let learners_max = self.settings.learners_max;
            if let Err(status) = reconfig::validate_with(&cc, &self.membership, learners_max) {
                info!(
                    index = entry.index,
                    "conf change refused: {}", status.message
                );
                if let Some((_, reply)) = waiter {
                    let _ = reply.send(Err(status));
                }
                return;
            }
        }
        match self.node.apply_conf_change(&cc) {
            Ok(conf_state) => self.node.mut_store().set_conf_state(conf_state),
            Err(e) => {
                warn!(index = entry.index, "conf change rejected by raft: {e}");
                if let Some((_, reply)) = waiter {
                    let _ = reply.send(Err(Status::new(net::Code::Internal, e.to_string())));
                }
                return;
            }
        }
        if !replay {
            let removed_urls = self
                .membership
                .get(cc.node_id)
                .map(|m| m.peer_urls.clone())
                .unwrap_or_default();
            reconfig::apply(&cc, &mut self.membership);
            self.membership_changed();
            self.log_member_change(&cc, removed_urls);
        }
        if let Some((added, reply)) = waiter {
            let _ = reply.send(Ok(MemberChangeResult {
                member: added,
                members: self.membership.members().cloned().collect(),
            }));
        }
        if cc.change_type == ConfChangeType::RemoveNode && cc.node_id == self.shared.member_id {
            self.removed = true;
        }
    }

    /// etcd `membership/cluster.go`'s lines for an applied change ("added member",
    /// "removed member", "promote member", "updated member") with etcd's field names.
    fn log_member_change(&self, cc: &raft::ConfChange, removed_urls: Vec<String>) {
        let cluster_id = format!("{:x}", self.shared.cluster_id);
        let local = format!("{:x}", self.shared.member_id);
        let peer = format!("{:x}", cc.node_id);
        let urls = |id: u64| {
            self.membership
                .get(id)
                .map(|m| m.peer_urls.clone())
                .unwrap_or_default()
        };
        match cc.change_type {
            ConfChangeType::AddNode if reconfig::is_promote(cc) => info!(
                "cluster-id" = %cluster_id,
                "local-member-id" = %local,
                "promoted-member-id" = %peer,
                "promote member"
            ),
            ConfChangeType::AddNode | ConfChangeType::AddLearnerNode => info!(
                "cluster-id" = %cluster_id,
                "local-member-id" = %local,
                "added-peer-id" = %peer,
                "added-peer-peer-urls" = %crate::logging::json(&urls(cc.node_id)),
                "added-peer-is-learner" = cc.change_type == ConfChangeType::AddLearnerNode,
                "added member"
            ),
            ConfChangeType::UpdateNode => info!(
                "cluster-id" = %cluster_id,
                "local-member-id" = %local,
                "updated-remote-peer-id" = %peer,
                "updated-remote-peer-urls" = %crate::logging::json(&urls(cc.node_id)),
                "updated member"
            ),
            ConfChangeType::RemoveNode => info!(
                "cluster-id" = %cluster_id,
                "local-member-id" = %local,
                "removed-remote-peer-id" = %peer,
                "removed-remote-peer-urls" = %crate::logging::json(&removed_urls),
                "removed member"
            ),
        }
    }

    /// A bootstrap AddNode re-applied at start for a member the table already holds with
    /// the same peer URLs (the table a member starts with already reflects it).
    pub(super) fn is_replayed_add(&self, cc: &raft::ConfChange) -> bool {
        if cc.change_type == ConfChangeType::RemoveNode || reconfig::is_promote(cc) {
            return false;
        }
        let Ok(member) = MemberInfo::from_raft_context(&cc.context) else {
            return false;
        };
        self.membership.get(member.id).is_some_and(|m| {
            m.peer_urls == member.peer_urls
                && m.is_learner == member.is_learner
                && cc.change_type != ConfChangeType::UpdateNode
        })
    }
}
