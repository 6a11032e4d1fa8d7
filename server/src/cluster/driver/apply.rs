//! Applying committed entries to the state machine (etcd `apply.go`): configuration
//! changes, then each normal entry's request — auth requests and checks
//! (`driver/auth.rs`), alarms, KV writes, leases, compaction — answered to the member's
//! waiting client, if any.

use std::time::Instant;

use bytes::Buf;
use net::pb::etcdserverpb::{CompactionResponse, InternalRaftRequest, ResponseHeader};
use net::Status;
use prost::Message as _;
use raft::{Entry, EntryType};
use tracing::{debug, info};

use super::{request_timeout, slow_apply, Applied, RaftCore, ENTRY_DATA_HEADER_BYTES};
use crate::errors;
use crate::kv::{self, WriteView};
use crate::logging::fatal_storage;

impl RaftCore {
    pub(super) fn apply_entry(&mut self, entry: &Entry) {
        let started = Instant::now();
        assert!(
            entry.index == self.applied + 1,
            "applying entry {} after {}",
            entry.index,
            self.applied
        );
        match entry.entry_type {
            EntryType::ConfChange => self.apply_conf_change(entry),
            EntryType::Normal if entry.data.is_empty() => {}
            EntryType::Normal => {
                let mut data = entry.data.clone();
                assert!(
                    data.len() >= ENTRY_DATA_HEADER_BYTES,
                    "entry {}: data shorter than its origin and request id",
                    entry.index
                );
                let origin = data.get_u64_le();
                let id = data.get_u64_le();
                let mine = origin == self.shared.member_id && id != 0;
                let (request, reply) = match mine.then(|| self.pending.take_proposal(id)) {
                    Some(Some((request, reply))) => (request, Some(reply)),
                    _ => {
                        let request = InternalRaftRequest::decode(data).unwrap_or_else(|e| {
                            panic!("entry {}: undecodable request: {e}", entry.index)
                        });
                        (request, None)
                    }
                };
                let started = Instant::now();
                let result = self.apply_request(&request, entry.index);
                let took = started.elapsed();
                if took > self.settings.warning_apply_duration {
                    slow_apply::warn_slow_apply(
                        took,
                        self.settings.warning_apply_duration,
                        &request,
                        &result,
                    );
                }
                if let Some(reply) = reply {
                    self.pending.answer(reply, result);
                }
            }
        }
        if started.elapsed() > self.settings.warning_apply_duration {
            crate::metrics::get().slow_apply_total.inc();
        }
        self.applied = entry.index;
    }

    fn apply_request(
        &mut self,
        request: &InternalRaftRequest,
        index: u64,
    ) -> Result<Applied, Status> {
        // etcd's appliers nest as capped(auth(quota(backend))): auth requests pass the
        // alarms; other requests meet the alarms first, then the permission checks.
        if let Some(answered) = self.apply_auth(request, index) {
            return answered;
        }
        if let Some(answered) = self.apply_alarms(request) {
            return answered;
        }
        if let Some(refused) = self.auth_refuses(request) {
            return Err(refused);
        }
        let lease_exists = |id: i64| self.lessor.contains(id);
        if let Some(attrs) = &request.cluster_member_attr_set {
            let a = attrs.member_attributes.clone().unwrap_or_default();
            if self.membership.set_attributes(
                attrs.member_id,
                a.name.clone(),
                a.client_urls.clone(),
            ) {
                if attrs.member_id == self.shared.member_id {
                    // etcd server.go publish: logged by the member that published.
                    let id = format!("{:x}", attrs.member_id);
                    info!(
                        "local-member-id" = %id,
                        "local-member-attributes" = %format!(
                            "{{Name:{} ClientURLs:[{}]}}",
                            a.name,
                            a.client_urls.join(" ")
                        ),
                        "request-path" = %format!("/0/members/{id}/attributes"),
                        "cluster-id" = %format!("{:x}", self.shared.cluster_id),
                        "publish-timeout" = %crate::logging::go_duration(request_timeout(
                            self.settings.election_timeout()
                        )),
                        "published local member to cluster through raft"
                    );
                } else {
                    info!(
                        member = format!("{:x}", attrs.member_id),
                        "published member attributes to the cluster through raft"
                    );
                }
                self.membership_changed();
            }
            return Ok(Applied::MemberAttributes);
        }
        let begin = self.shared.reader.current_revision();
        let compact = self.shared.reader.compact_revision();
        let metrics = crate::metrics::get();
        if let Some(put) = &request.put {
            metrics.put_total.inc();
            metrics.debugging_put_total.inc();
            let mut view = WriteView::new(self.mvcc.write(), begin, compact);
            let result = kv::put(&mut view, put, &lease_exists);
            let (_, events) = view.end();
            self.lessor.apply_events(&events);
            self.shared.watch.publish(events);
            return result.map(Applied::Put);
        }
        if let Some(delete) = &request.delete_range {
            metrics.delete_total.inc();
            metrics.debugging_delete_total.inc();
            let mut view = WriteView::new(self.mvcc.write(), begin, compact);
            let result = kv::delete_range(&mut view, delete);
            let (_, events) = view.end();
            self.lessor.apply_events(&events);
            self.shared.watch.publish(events);
            return result.map(Applied::DeleteRange);
        }
        if let Some(txn) = &request.txn {
            metrics.txn_total.inc();
            metrics.debugging_txn_total.inc();
            let mut view = WriteView::new(self.mvcc.write(), begin, compact);
            let result = kv::txn_write(&mut view, txn, &lease_exists);
            let (_, events) = view.end();
            self.lessor.apply_events(&events);
            self.shared.watch.publish(events);
            return result.map(Applied::Txn);
        }
        if let Some(grant) = &request.lease_grant {
            let granted = self.lessor.apply_grant(grant, begin);
            if granted.is_ok() {
                metrics.lease_granted_total.inc();
            }
            return granted.map(Applied::LeaseGrant);
        }
        if let Some(checkpoint) = &request.lease_checkpoint {
            self.lessor.apply_checkpoint(checkpoint);
            debug!(
                leases = checkpoint.checkpoints.len(),
                "applied lease checkpoint"
            );
            return Ok(Applied::LeaseCheckpoint);
        }
        if let Some(revoke) = &request.lease_revoke {
            let view = WriteView::new(self.mvcc.write(), begin, compact);
            let (resp, events) = self.lessor.apply_revoke(revoke, view)?;
            metrics.lease_revoked_total.inc();
            self.shared.watch.publish(events);
            return Ok(Applied::LeaseRevoke(resp));
        }
        if let Some(compaction) = &request.compaction {
            // The physical part runs in steps between later requests (`maintain_store`).
            return match self.mvcc.schedule_compaction(compaction.revision) {
                Ok(()) => Ok(Applied::Compaction(CompactionResponse {
                    header: Some(ResponseHeader {
                        revision: self.shared.reader.current_revision(),
                        ..Default::default()
                    }),
                })),
                // A failed write while compaction rewrites values is fatal, as any write.
                Err(e @ (engine::Error::Io { .. } | engine::Error::Corruption { .. })) => {
                    fatal_storage("failed to write to a bucket", &e)
                }
                Err(e) => Err(errors::from_engine(&e)),
            };
        }
        Err(Status::new(
            net::Code::Internal,
            "etcdserver: unsupported request in the Raft log",
        ))
    }
}
