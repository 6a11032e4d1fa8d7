//! Membership changes requested through the Cluster service: how each becomes a Raft
//! ConfChange, and the checks etcd makes before proposing it (`--strict-reconfig-check`)
//! and when applying it (`RaftCluster.ValidateConfigurationChange`), with etcd's errors.
//!
//! Source: etcd 3.4 `etcdserver/server.go` (AddMember, RemoveMember, PromoteMember,
//! UpdateMember, mayAddMember, mayRemoveMember, isLearnerReady) and
//! `etcdserver/api/membership/cluster.go`.

use bytes::Bytes;
use net::Status;
use raft::{ConfChange, ConfChangeType};

use super::membership::{MemberInfo, Membership};
use crate::errors;
use crate::ids;

/// Learners a cluster may have at once (etcd's `maxLearners`).
pub const LEARNERS_MAX: usize = 1;
/// A learner may be promoted once its match index is at least this share of the leader's
/// (etcd's `readyPercent`).
pub const LEARNER_READY_PERCENT: f64 = 0.9;

/// A change of the member table a client asked for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MemberChange {
    /// MemberAdd: a new voter or learner with these peer URLs.
    Add {
        /// Peer URLs of the new member.
        peer_urls: Vec<String>,
        /// Whether it joins as a learner.
        is_learner: bool,
    },
    /// MemberRemove.
    Remove(u64),
    /// MemberUpdate: new peer URLs for a member.
    Update {
        /// The member.
        id: u64,
        /// Its new peer URLs.
        peer_urls: Vec<String>,
    },
    /// MemberPromote: a learner becomes a voter.
    Promote(u64),
}

/// What a member change returns once applied: the member it added (MemberAdd) and the
/// member table after it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberChangeResult {
    /// The added member (MemberAdd only).
    pub member: Option<MemberInfo>,
    /// Every member after the change.
    pub members: Vec<MemberInfo>,
}

/// Builds the ConfChange for `change` (etcd: AddMember, RemoveMember, UpdateMember,
/// promoteMember). A promotion is an AddNode with an empty context; every other AddNode
/// carries the new member. `now_unix_seconds` goes into a new member's ID, as etcd's
/// `NewMember(…, &now)`.
pub fn conf_change(
    change: &MemberChange,
    table: &Membership,
    now_unix_seconds: u64,
) -> Result<(ConfChange, Option<MemberInfo>), Status> {
    Ok(match change {
        MemberChange::Add {
            peer_urls,
            is_learner,
        } => {
            let member = MemberInfo {
                id: ids::member_id_at(peer_urls, "", Some(now_unix_seconds)),
                name: String::new(),
                peer_urls: peer_urls.clone(),
                client_urls: Vec::new(),
                is_learner: *is_learner,
            };
            let cc = ConfChange {
                change_type: if *is_learner {
                    ConfChangeType::AddLearnerNode
                } else {
                    ConfChangeType::AddNode
                },
                node_id: member.id,
                context: Bytes::from(member.to_raft_context()),
            };
            (cc, Some(member))
        }
        MemberChange::Remove(id) => (
            ConfChange {
                change_type: ConfChangeType::RemoveNode,
                node_id: *id,
                context: Bytes::new(),
            },
            None,
        ),
        MemberChange::Update { id, peer_urls } => {
            let mut member = table
                .get(*id)
                .cloned()
                .ok_or_else(errors::member_not_found)?;
            member.peer_urls = peer_urls.clone();
            let cc = ConfChange {
                change_type: ConfChangeType::UpdateNode,
                node_id: *id,
                context: Bytes::from(member.to_raft_context()),
            };
            (cc, None)
        }
        MemberChange::Promote(id) => (
            ConfChange {
                change_type: ConfChangeType::AddNode,
                node_id: *id,
                context: Bytes::new(),
            },
            None,
        ),
    })
}

/// Whether a ConfChange is a promotion (see [`conf_change`]).
pub fn is_promote(cc: &ConfChange) -> bool {
    cc.change_type == ConfChangeType::AddNode && cc.context.is_empty()
}

/// Votes a quorum of `members` voters needs.
fn quorum(members: usize) -> usize {
    members / 2 + 1
}

/// Voting members that have started (published their name), and all voting members.
fn started_voters(table: &Membership, skip: Option<u64>) -> (usize, usize) {
    let voters = table
        .members()
        .filter(|m| !m.is_learner && Some(m.id) != skip);
    voters.fold((0, 0), |(started, all), m| {
        (started + usize::from(!m.name.is_empty()), all + 1)
    })
}

/// `--strict-reconfig-check`: refuses a change that would leave fewer started voters than
/// the new quorum (etcd `IsReadyToAddVotingMember`, `IsReadyToRemoveVotingMember`,
/// `IsReadyToPromoteMember`) with `etcdserver: re-configuration failed due to not enough
/// started members`.
pub fn strict_check(change: &MemberChange, table: &Membership) -> Result<(), Status> {
    let ready = match change {
        MemberChange::Add {
            is_learner: false, ..
        } => {
            let (started, voters) = started_voters(table, None);
            let members = voters + 1;
            (started == 1 && members == 2) || started >= quorum(members)
        }
        MemberChange::Remove(id) if table.get(*id).is_some_and(|m| !m.is_learner) => {
            let (started, members) = started_voters(table, Some(*id));
            started >= quorum(members)
        }
        MemberChange::Promote(_) => {
            let (started, voters) = started_voters(table, None);
            // The learner counts as started and as a member of the new quorum.
            started + 1 >= quorum(voters + 1)
        }
        _ => true,
    };
    if ready {
        Ok(())
    } else {
        Err(errors::member_not_enough_started())
    }
}

/// etcd's `isLearnerReady`: the learner's match index must reach
/// [`LEARNER_READY_PERCENT`] of the leader's. `progress` is the leader's view
/// (member → match index).
pub fn learner_ready(
    learner: u64,
    leader: u64,
    progress: &std::collections::BTreeMap<u64, raft::PeerProgress>,
) -> Result<(), Status> {
    let (Some(l), Some(me)) = (progress.get(&learner), progress.get(&leader)) else {
        return Ok(());
    };
    if (l.matched as f64) < (me.matched as f64) * LEARNER_READY_PERCENT {
        return Err(errors::learner_not_ready());
    }
    Ok(())
}

/// Checks a committed ConfChange against the table before applying it (etcd
/// `ValidateConfigurationChange`) with etcd's default learner limit [`LEARNERS_MAX`].
#[cfg(test)]
pub fn validate(cc: &ConfChange, table: &Membership) -> Result<(), Status> {
    validate_with(cc, table, LEARNERS_MAX)
}

/// [`validate`] with `--max-learners` = `learners_max`; every member reaches the same
/// verdict as long as every member has the same limit (etcd requires the same).
pub fn validate_with(
    cc: &ConfChange,
    table: &Membership,
    learners_max: usize,
) -> Result<(), Status> {
    if table.is_removed(cc.node_id) {
        return Err(errors::member_not_found());
    }
    let urls_taken = |urls: &[String], except: Option<u64>| {
        table
            .members()
            .filter(|m| Some(m.id) != except)
            .any(|m| m.peer_urls.iter().any(|u| urls.contains(u)))
    };
    match cc.change_type {
        ConfChangeType::AddNode if is_promote(cc) => match table.get(cc.node_id) {
            None => Err(errors::member_not_found()),
            Some(m) if !m.is_learner => Err(errors::member_not_learner()),
            Some(_) => Ok(()),
        },
        ConfChangeType::AddNode | ConfChangeType::AddLearnerNode => {
            let member = MemberInfo::from_raft_context(&cc.context)
                .map_err(|e| Status::new(net::Code::Internal, e))?;
            if table.get(cc.node_id).is_some() {
                return Err(errors::member_exist());
            }
            if urls_taken(&member.peer_urls, None) {
                return Err(errors::peer_url_exist());
            }
            if member.is_learner && table.learners().len() + 1 > learners_max {
                return Err(errors::too_many_learners());
            }
            Ok(())
        }
        ConfChangeType::RemoveNode => match table.get(cc.node_id) {
            None => Err(errors::member_not_found()),
            Some(_) => Ok(()),
        },
        ConfChangeType::UpdateNode => {
            if table.get(cc.node_id).is_none() {
                return Err(errors::member_not_found());
            }
            let member = MemberInfo::from_raft_context(&cc.context)
                .map_err(|e| Status::new(net::Code::Internal, e))?;
            if urls_taken(&member.peer_urls, Some(cc.node_id)) {
                return Err(errors::peer_url_exist());
            }
            Ok(())
        }
    }
}

/// Applies a validated ConfChange to the table.
pub fn apply(cc: &ConfChange, table: &mut Membership) {
    match cc.change_type {
        ConfChangeType::AddNode if is_promote(cc) => {
            table.promote(cc.node_id);
        }
        ConfChangeType::AddNode | ConfChangeType::AddLearnerNode | ConfChangeType::UpdateNode => {
            let member = MemberInfo::from_raft_context(&cc.context)
                .expect("validated conf change carries a member");
            match table.get(member.id) {
                // An update keeps the published name and client URLs.
                Some(old) if cc.change_type == ConfChangeType::UpdateNode => {
                    let (name, client_urls) = (old.name.clone(), old.client_urls.clone());
                    table.update_peer_urls(member.id, member.peer_urls);
                    table.set_attributes(member.id, name, client_urls);
                }
                _ => table.add(member),
            }
        }
        ConfChangeType::RemoveNode => {
            table.remove(cc.node_id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(id: u64, name: &str, learner: bool) -> MemberInfo {
        MemberInfo {
            id,
            name: name.into(),
            peer_urls: vec![format!("http://127.0.0.1:{}", 2000 + id)],
            client_urls: vec![],
            is_learner: learner,
        }
    }

    fn add(urls: &[&str], learner: bool) -> MemberChange {
        MemberChange::Add {
            peer_urls: urls.iter().map(|u| u.to_string()).collect(),
            is_learner: learner,
        }
    }

    #[test]
    fn add_then_validate_and_apply() {
        let mut t = Membership::new([member(1, "a", false), member(2, "b", false)]);
        let (cc, m) = conf_change(&add(&["http://127.0.0.1:9"], false), &t, 1_700_000_000).unwrap();
        let m = m.unwrap();
        assert_eq!(cc.node_id, m.id);
        assert!(!is_promote(&cc));
        validate(&cc, &t).unwrap();
        apply(&cc, &mut t);
        assert_eq!(t.voters().len(), 3);
        assert_eq!(validate(&cc, &t), Err(errors::member_exist()));
        let (dup, _) = conf_change(&add(&["http://127.0.0.1:9"], false), &t, 1).unwrap();
        assert_eq!(validate(&dup, &t), Err(errors::peer_url_exist()));
    }

    #[test]
    fn learners_promote_and_limits() {
        let mut t = Membership::new([member(1, "a", false)]);
        let (cc, m) = conf_change(&add(&["http://h:1"], true), &t, 5).unwrap();
        validate(&cc, &t).unwrap();
        apply(&cc, &mut t);
        let learner = m.unwrap().id;
        let (second, _) = conf_change(&add(&["http://h:2"], true), &t, 5).unwrap();
        assert_eq!(validate(&second, &t), Err(errors::too_many_learners()));
        validate_with(&second, &t, 2).expect("--max-learners=2 allows a second learner");
        assert_eq!(
            validate_with(&second, &t, 0),
            Err(errors::too_many_learners())
        );
        let (promote_voter, _) = conf_change(&MemberChange::Promote(1), &t, 5).unwrap();
        assert_eq!(
            validate(&promote_voter, &t),
            Err(errors::member_not_learner())
        );
        let (promote, _) = conf_change(&MemberChange::Promote(learner), &t, 5).unwrap();
        assert!(is_promote(&promote));
        validate(&promote, &t).unwrap();
        apply(&promote, &mut t);
        assert_eq!(t.learners(), Vec::<u64>::new());
        let (missing, _) = conf_change(&MemberChange::Promote(77), &t, 5).unwrap();
        assert_eq!(validate(&missing, &t), Err(errors::member_not_found()));
    }

    #[test]
    fn removed_ids_are_gone_for_ever() {
        let mut t = Membership::new([member(1, "a", false), member(2, "b", false)]);
        let (rm, _) = conf_change(&MemberChange::Remove(2), &t, 0).unwrap();
        validate(&rm, &t).unwrap();
        apply(&rm, &mut t);
        assert_eq!(validate(&rm, &t), Err(errors::member_not_found()));
        assert_eq!(
            conf_change(
                &MemberChange::Update {
                    id: 2,
                    peer_urls: vec![]
                },
                &t,
                0
            )
            .unwrap_err(),
            errors::member_not_found()
        );
    }

    #[test]
    fn update_keeps_attributes_and_checks_urls() {
        let mut t = Membership::new([member(1, "a", false), member(2, "b", false)]);
        t.set_attributes(2, "b".into(), vec!["http://c:1".into()]);
        let taken = MemberChange::Update {
            id: 2,
            peer_urls: vec!["http://127.0.0.1:2001".into()],
        };
        let (cc, _) = conf_change(&taken, &t, 0).unwrap();
        assert_eq!(validate(&cc, &t), Err(errors::peer_url_exist()));
        let fine = MemberChange::Update {
            id: 2,
            peer_urls: vec!["http://new:1".into()],
        };
        let (cc, _) = conf_change(&fine, &t, 0).unwrap();
        validate(&cc, &t).unwrap();
        apply(&cc, &mut t);
        let m = t.get(2).unwrap();
        assert_eq!(m.peer_urls, ["http://new:1"]);
        assert_eq!(m.client_urls, ["http://c:1"]);
    }

    #[test]
    fn strict_check_counts_started_voters_as_etcd() {
        // 3 voters, only one started: adding a voter would leave 1 of 4 started.
        let t = Membership::new([
            member(1, "a", false),
            member(2, "", false),
            member(3, "", false),
        ]);
        assert_eq!(
            strict_check(&add(&["http://x:1"], false), &t),
            Err(errors::member_not_enough_started())
        );
        // learners never need a quorum of started members
        strict_check(&add(&["http://x:1"], true), &t).unwrap();
        // a one-member cluster may always grow to two (etcd's restore case)
        let one = Membership::new([member(1, "a", false)]);
        strict_check(&add(&["http://x:1"], false), &one).unwrap();
        // removing a started voter of 3 with one other started leaves 1 of 2: refused
        let t = Membership::new([
            member(1, "a", false),
            member(2, "b", false),
            member(3, "", false),
        ]);
        assert_eq!(
            strict_check(&MemberChange::Remove(1), &t),
            Err(errors::member_not_enough_started())
        );
        strict_check(&MemberChange::Remove(3), &t).unwrap();
    }
}
