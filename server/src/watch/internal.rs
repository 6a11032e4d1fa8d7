//! Watches opened by the server itself (Election and Lock): one watcher in this core's hub
//! delivering into a private [`StreamOut`], read by the owning task and removed on drop.

use std::rc::Rc;

use net::pb::etcdserverpb::{WatchCreateRequest, WatchResponse};
use net::Status;

use super::{StreamOut, WatchHub, HUB};
use crate::errors;

/// A server-internal watcher on this core; deregistered from the hub when dropped.
pub(crate) struct InternalWatch {
    hub: Rc<WatchHub>,
    out: Rc<StreamOut>,
}

impl InternalWatch {
    /// Watches `[key, range_end)` (etcd's range rules) from `start_revision` (0: from the
    /// next revision).
    pub(crate) fn new(
        key: Vec<u8>,
        range_end: Vec<u8>,
        start_revision: i64,
    ) -> Result<InternalWatch, Status> {
        let hub = HUB
            .with(|h| h.borrow().clone())
            .ok_or_else(errors::stopped)?;
        let out = Rc::new(StreamOut::default());
        hub.create(
            &out,
            WatchCreateRequest {
                key: key.into(),
                range_end: range_end.into(),
                start_revision,
                ..Default::default()
            },
        );
        Ok(InternalWatch { hub, out })
    }

    /// The next response carrying events, or the compaction cancel (`canceled` with
    /// `compact_revision`). `Err(stopped)` when the server shuts down.
    pub(crate) async fn next(&mut self) -> Result<WatchResponse, Status> {
        loop {
            if self.hub.shutdown.is_triggered() {
                return Err(errors::stopped());
            }
            let next = self.out.queue.borrow_mut().pop_front();
            match next {
                Some((response, _)) => {
                    self.out.room.notify();
                    if self.hub.has_unsynced() {
                        self.hub.kick.notify();
                    }
                    if response.canceled || !response.events.is_empty() {
                        return Ok(response);
                    }
                }
                None => {
                    let stopping = futures_lite::future::or(
                        async {
                            self.out.ready.wait().await;
                            false
                        },
                        async {
                            self.hub.shutdown.wait().await;
                            true
                        },
                    )
                    .await;
                    if stopping {
                        return Err(errors::stopped());
                    }
                }
            }
        }
    }
}

impl Drop for InternalWatch {
    fn drop(&mut self) {
        let keys: Vec<u64> = self.out.ids.borrow_mut().drain().map(|(_, k)| k).collect();
        for key in keys {
            self.hub.remove(key);
        }
        self.out.queue.borrow_mut().clear();
    }
}
