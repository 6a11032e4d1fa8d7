//! The alarm store (etcd `etcdserver/api/v3alarm/alarms.go`) and what a raised alarm does
//! to the state machine (etcd `apply.go` `applierV3Capped`, `applierV3Corrupt`): plain
//! state the raft core applies `AlarmRequest`s to, kept in the checkpoint's meta and in a
//! snapshot's `alarm` bucket.
//!
//! - NOSPACE (raised by a member whose store outgrew `--quota-backend-bytes`): Put, a Txn
//!   with a put, and LeaseGrant fail with `etcdserver: mvcc: database space exceeded`;
//!   reads, deletes, compactions and revokes go on, so that an operator can make room.
//! - CORRUPT (raised by the corruption check): every KV and lease request fails with
//!   `etcdserver: corrupt cluster`.

use std::collections::BTreeSet;

use bytes::{Buf, BufMut};
use net::pb::etcdserverpb::{AlarmMember, AlarmRequest, AlarmResponse};
use net::Status;
use tracing::warn;

/// `AlarmType_NONE`: in a GET, every alarm.
pub const ALARM_NONE: i32 = 0;
/// `AlarmType_NOSPACE`.
pub const ALARM_NOSPACE: i32 = 1;
/// `AlarmType_CORRUPT`.
pub const ALARM_CORRUPT: i32 = 2;
/// `AlarmRequest_GET`.
pub const ACTION_GET: i32 = 0;
/// `AlarmRequest_ACTIVATE`.
pub const ACTION_ACTIVATE: i32 = 1;
/// `AlarmRequest_DEACTIVATE`.
pub const ACTION_DEACTIVATE: i32 = 2;

/// etcd's name of an alarm type (`AlarmType.String()`).
pub fn alarm_name(alarm: i32) -> &'static str {
    match alarm {
        ALARM_NOSPACE => "NOSPACE",
        ALARM_CORRUPT => "CORRUPT",
        _ => "NONE",
    }
}

/// An alarm as `Status.errors` and `etcdctl alarm list` print it (the protobuf text form
/// of `AlarmMember`, zero fields left out): `memberID:10276657743932975437 alarm:NOSPACE `,
/// `alarm:CORRUPT ` for the corruption check's member ID 0.
pub fn alarm_text(m: &AlarmMember) -> String {
    let mut text = String::new();
    if m.member_id != 0 {
        text.push_str(&format!("memberID:{} ", m.member_id));
    }
    if m.alarm != ALARM_NONE {
        text.push_str(&format!("alarm:{} ", alarm_name(m.alarm)));
    }
    text
}

/// Whether a Txn puts in either branch (etcd's quota cost of a Txn is above 0).
pub fn txn_puts(t: &net::pb::etcdserverpb::TxnRequest) -> bool {
    use net::pb::etcdserverpb::request_op::Request;
    t.success
        .iter()
        .chain(&t.failure)
        .any(|op| matches!(op.request, Some(Request::RequestPut(_))))
}

/// The raised alarms: `(member ID, alarm type)` pairs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AlarmStore {
    raised: BTreeSet<(u64, i32)>,
}

impl AlarmStore {
    /// Every raised alarm, by member then type.
    pub fn list(&self) -> Vec<AlarmMember> {
        self.raised
            .iter()
            .map(|&(member_id, alarm)| AlarmMember { member_id, alarm })
            .collect()
    }

    fn of_type(&self, alarm: i32) -> usize {
        self.raised.iter().filter(|(_, a)| *a == alarm).count()
    }

    /// Whether NOSPACE is raised by any member.
    pub fn nospace(&self) -> bool {
        self.of_type(ALARM_NOSPACE) > 0
    }

    /// Whether CORRUPT is raised by any member.
    pub fn corrupt(&self) -> bool {
        self.of_type(ALARM_CORRUPT) > 0
    }

    /// Applies an `AlarmRequest` (etcd `applierV3backend.Alarm`): GET lists the alarms of
    /// the type (all for NONE); ACTIVATE raises one (NONE is ignored), DEACTIVATE clears
    /// one; both answer with the alarm when it changed and log etcd's "alarm raised" /
    /// "alarm disarmed" when the type's first one is raised or its last one cleared.
    pub fn apply(&mut self, r: &AlarmRequest) -> AlarmResponse {
        let mut resp = AlarmResponse::default();
        let before = self.of_type(r.alarm);
        let changed = AlarmMember {
            member_id: r.member_id,
            alarm: r.alarm,
        };
        match r.action {
            ACTION_ACTIVATE
                if r.alarm != ALARM_NONE && self.raised.insert((r.member_id, r.alarm)) =>
            {
                resp.alarms.push(changed);
                if before == 0 {
                    warn!(alarm = alarm_name(r.alarm), from = %format!("{:x}", r.member_id), "alarm raised");
                }
            }
            ACTION_DEACTIVATE if self.raised.remove(&(r.member_id, r.alarm)) => {
                resp.alarms.push(changed);
                if before == 1 {
                    warn!(alarm = alarm_name(r.alarm), from = %format!("{:x}", r.member_id), "alarm disarmed");
                }
            }
            ACTION_GET => {
                resp.alarms = self
                    .list()
                    .into_iter()
                    .filter(|m| r.alarm == ALARM_NONE || m.alarm == r.alarm)
                    .collect();
            }
            _ => {}
        }
        resp
    }

    /// Whether the raised alarms refuse a request (etcd's capped and corrupt appliers):
    /// `Some(error)` for a request that writes (`writes`: Put, a Txn with a put,
    /// LeaseGrant) under NOSPACE, and for every KV and lease request under CORRUPT.
    pub fn refuses(&self, writes: bool) -> Option<Status> {
        if self.corrupt() {
            return Some(crate::errors::corrupt());
        }
        (writes && self.nospace()).then(crate::errors::no_space)
    }

    /// `count u32 LE | count × (member u64 LE | alarm i32 LE)`.
    pub fn encode(&self) -> Vec<u8> {
        let mut buf = Vec::with_capacity(4 + 12 * self.raised.len());
        buf.put_u32_le(self.raised.len() as u32);
        for &(member, alarm) in &self.raised {
            buf.put_u64_le(member);
            buf.put_i32_le(alarm);
        }
        buf
    }

    /// Parses [`AlarmStore::encode`]'s bytes. Errors: a truncated or oversized table.
    pub fn decode(mut buf: &[u8]) -> Result<AlarmStore, String> {
        if buf.remaining() < 4 {
            return Err("alarm table is truncated".into());
        }
        let count = buf.get_u32_le() as usize;
        if buf.remaining() != count * 12 {
            return Err(format!(
                "alarm table declares {count} alarms but holds {} bytes",
                buf.remaining()
            ));
        }
        let mut store = AlarmStore::default();
        for _ in 0..count {
            let member = buf.get_u64_le();
            let alarm = buf.get_i32_le();
            store.raised.insert((member, alarm));
        }
        Ok(store)
    }

    /// A store holding `alarms` (an imported snapshot's `alarm` bucket).
    pub fn from_list(alarms: impl IntoIterator<Item = (u64, i32)>) -> AlarmStore {
        AlarmStore {
            raised: alarms.into_iter().collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(action: i32, member_id: u64, alarm: i32) -> AlarmRequest {
        AlarmRequest {
            action,
            member_id,
            alarm,
        }
    }

    #[test]
    fn activate_get_deactivate_as_etcd() {
        let mut s = AlarmStore::default();
        assert!(s
            .apply(&req(ACTION_ACTIVATE, 7, ALARM_NONE))
            .alarms
            .is_empty());
        assert_eq!(
            s.apply(&req(ACTION_ACTIVATE, 7, ALARM_NOSPACE))
                .alarms
                .len(),
            1
        );
        assert!(s
            .apply(&req(ACTION_ACTIVATE, 7, ALARM_NOSPACE))
            .alarms
            .is_empty());
        s.apply(&req(ACTION_ACTIVATE, 9, ALARM_CORRUPT));
        assert_eq!(s.apply(&req(ACTION_GET, 0, ALARM_NONE)).alarms.len(), 2);
        assert_eq!(s.apply(&req(ACTION_GET, 0, ALARM_CORRUPT)).alarms.len(), 1);
        assert!(s.nospace() && s.corrupt());
        assert_eq!(
            s.refuses(false).unwrap().message,
            "etcdserver: corrupt cluster"
        );
        s.apply(&req(ACTION_DEACTIVATE, 9, ALARM_CORRUPT));
        assert!(s.refuses(false).is_none());
        assert_eq!(
            s.refuses(true).unwrap().message,
            "etcdserver: mvcc: database space exceeded"
        );
        assert_eq!(AlarmStore::decode(&s.encode()).unwrap(), s);
        assert!(AlarmStore::decode(&s.encode()[..5]).is_err());
        assert_eq!(alarm_text(&s.list()[0]), "memberID:7 alarm:NOSPACE ");
        s.apply(&req(ACTION_DEACTIVATE, 7, ALARM_NOSPACE));
        assert!(s.refuses(true).is_none());
    }
}
