//! etcd's protobuf types, generated at build time by prost from `net/proto/*.proto` (the
//! project's own descriptions of etcd 3.6's API: same packages, message names, field names
//! and numbers, so the encoding is byte-identical). `bytes` fields are [`bytes::Bytes`].
//!
//! Also [`METHODS`] / [`method_kind`]: every gRPC method of the services in those files,
//! with its streaming kind, generated from the same descriptors.
#![allow(missing_docs)]
#![allow(clippy::all)]

/// `etcdserverpb`: KV, Watch, Lease, Cluster, Maintenance and Auth services' messages
/// (rpc.proto) and the Raft request envelope (raft_internal.proto).
pub mod etcdserverpb {
    include!(concat!(env!("OUT_DIR"), "/etcdserverpb.rs"));
}

/// `mvccpb`: `KeyValue` and `Event`.
pub mod mvccpb {
    include!(concat!(env!("OUT_DIR"), "/mvccpb.rs"));
}

/// `authpb`: `User`, `Permission`, `Role`, `UserAddOptions`.
pub mod authpb {
    include!(concat!(env!("OUT_DIR"), "/authpb.rs"));
}

/// `membershippb`: membership requests carried in `InternalRaftRequest` (etcd 3.5+).
pub mod membershippb {
    include!(concat!(env!("OUT_DIR"), "/membershippb.rs"));
}

/// `v3electionpb`: the Election service's messages.
pub mod v3electionpb {
    include!(concat!(env!("OUT_DIR"), "/v3electionpb.rs"));
}

/// `v3lockpb`: the Lock service's messages.
pub mod v3lockpb {
    include!(concat!(env!("OUT_DIR"), "/v3lockpb.rs"));
}

include!(concat!(env!("OUT_DIR"), "/grpc_methods.rs"));

/// The encoded `google.protobuf.FileDescriptorSet` of every `.proto` file above (with
/// field names and JSON names as written there): what the JSON gateway maps JSON to
/// protobuf with.
pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/descriptors.bin"));

#[cfg(test)]
mod tests {
    use super::etcdserverpb::*;
    use super::{authpb, mvccpb, v3electionpb, v3lockpb};
    use bytes::Bytes;
    use prost::Message;

    fn b(s: &'static str) -> Bytes {
        Bytes::from_static(s.as_bytes())
    }

    #[test]
    fn put_request_bytes() {
        let put = PutRequest {
            key: b("foo"),
            value: b("bar"),
            lease: 1,
            prev_kv: true,
            ignore_value: false,
            ignore_lease: true,
        };
        // field 1 (LEN) "foo", field 2 (LEN) "bar", field 3 varint 1, field 4 varint 1,
        // field 6 varint 1.
        let expected = [
            0x0a, 3, b'f', b'o', b'o', 0x12, 3, b'b', b'a', b'r', 0x18, 1, 0x20, 1, 0x30, 1,
        ];
        assert_eq!(put.encode_to_vec(), expected);
        assert_eq!(PutRequest::decode(&expected[..]).unwrap(), put);
    }

    #[test]
    fn range_request_enums_and_high_fields() {
        let range = RangeRequest {
            key: b("a"),
            range_end: Bytes::from_static(&[0]),
            limit: 300,
            sort_order: range_request::SortOrder::Descend as i32,
            sort_target: range_request::SortTarget::Mod as i32,
            max_create_revision: 5,
            ..Default::default()
        };
        // limit 300 = varint ac 02; sort_order (5) = 2; sort_target (6) = MOD = 3;
        // max_create_revision (13) tag = 13<<3 = 0x68.
        let expected = [
            0x0a, 1, b'a', 0x12, 1, 0, 0x18, 0xac, 0x02, 0x28, 2, 0x30, 3, 0x68, 5,
        ];
        assert_eq!(range.encode_to_vec(), expected);
    }

    #[test]
    fn compare_range_end_is_field_64() {
        let compare = Compare {
            result: compare::CompareResult::NotEqual as i32,
            target: compare::CompareTarget::Lease as i32,
            key: b("k"),
            range_end: b("l"),
            target_union: Some(compare::TargetUnion::Lease(7)),
        };
        // result (1) = 3, target (2) = 4, key (3), lease (8) = 7, range_end (64): tag
        // 64<<3|2 = 514 = varint 82 04.
        let expected = [
            0x08, 3, 0x10, 4, 0x1a, 1, b'k', 0x40, 7, 0x82, 0x04, 1, b'l',
        ];
        assert_eq!(compare.encode_to_vec(), expected);
        assert_eq!(Compare::decode(&expected[..]).unwrap(), compare);
    }

    #[test]
    fn txn_with_nested_ops() {
        let txn = TxnRequest {
            compare: vec![],
            success: vec![RequestOp {
                request: Some(request_op::Request::RequestPut(PutRequest {
                    key: b("x"),
                    ..Default::default()
                })),
            }],
            failure: vec![RequestOp {
                request: Some(request_op::Request::RequestDeleteRange(
                    DeleteRangeRequest {
                        key: b("y"),
                        ..Default::default()
                    },
                )),
            }],
        };
        // success (2) { request_put (2) { key "x" } }, failure (3) { request_delete_range (3) { key "y" } }
        let expected = [
            0x12, 5, 0x12, 3, 0x0a, 1, b'x', 0x1a, 5, 0x1a, 3, 0x0a, 1, b'y',
        ];
        assert_eq!(txn.encode_to_vec(), expected);
    }

    #[test]
    fn watch_response_events_are_field_11() {
        let response = WatchResponse {
            header: Some(ResponseHeader {
                cluster_id: 1,
                member_id: 2,
                revision: 3,
                raft_term: 4,
            }),
            watch_id: 0,
            created: true,
            events: vec![mvccpb::Event {
                r#type: mvccpb::event::EventType::Delete as i32,
                kv: Some(mvccpb::KeyValue {
                    key: b("k"),
                    mod_revision: 9,
                    ..Default::default()
                }),
                prev_kv: None,
            }],
            ..Default::default()
        };
        // header (1) {1, 2, 3, 4}; created (3); events (11) = tag 0x5a { type (1) = DELETE,
        // kv (2) { key (1) "k", mod_revision (3) = 9 } }.
        let expected = [
            0x0a, 8, 0x08, 1, 0x10, 2, 0x18, 3, 0x20, 4, 0x18, 1, 0x5a, 9, 0x08, 1, 0x12, 5, 0x0a,
            1, b'k', 0x18, 9,
        ];
        assert_eq!(response.encode_to_vec(), expected);
    }

    #[test]
    fn lease_and_status_fields() {
        let grant = LeaseGrantRequest { ttl: 60, id: 0x10 };
        assert_eq!(grant.encode_to_vec(), [0x08, 60, 0x10, 0x10]);
        let status = StatusResponse {
            storage_version: "3.6.0".into(),
            db_size_quota: 2,
            downgrade_info: Some(DowngradeInfo {
                enabled: true,
                target_version: "3.5.0".into(),
            }),
            ..Default::default()
        };
        // storageVersion (11) = 0x5a, dbSizeQuota (12) = 0x60, downgradeInfo (13) = 0x6a.
        let mut expected = vec![0x5a, 5];
        expected.extend(b"3.6.0");
        expected.extend([0x60, 2, 0x6a, 9, 0x08, 1, 0x12, 5]);
        expected.extend(b"3.5.0");
        assert_eq!(status.encode_to_vec(), expected);
        assert_eq!(AlarmType::Corrupt as i32, 2);
        assert_eq!(downgrade_request::DowngradeAction::Cancel as i32, 2);
    }

    #[test]
    fn internal_raft_request_high_tags() {
        let request = InternalRaftRequest {
            header: Some(RequestHeader {
                id: 5,
                username: "root".into(),
                auth_revision: 0,
            }),
            auth_status: Some(AuthStatusRequest {}),
            ..Default::default()
        };
        // auth_status (1013): tag 1013<<3|2 = 8106 = varint aa 3f; header (100): 802 = a2 06.
        let mut expected = vec![0xaa, 0x3f, 0, 0xa2, 0x06, 8, 0x08, 5, 0x12, 4];
        expected.extend(b"root");
        let encoded = request.encode_to_vec();
        assert_eq!(encoded.len(), expected.len());
        assert_eq!(InternalRaftRequest::decode(&encoded[..]).unwrap(), request);
        assert_eq!(InternalRaftRequest::decode(&expected[..]).unwrap(), request);
    }

    #[test]
    fn auth_election_lock_types() {
        let perm = authpb::Permission {
            perm_type: authpb::permission::Type::Readwrite as i32,
            key: b("a"),
            range_end: b("b"),
        };
        assert_eq!(
            perm.encode_to_vec(),
            [0x08, 2, 0x12, 1, b'a', 0x1a, 1, b'b']
        );
        let leader = v3electionpb::LeaderKey {
            name: b("e"),
            key: b("e/1"),
            rev: 2,
            lease: 3,
        };
        let mut expected = vec![0x0a, 1, b'e', 0x12, 3];
        expected.extend(b"e/1");
        expected.extend([0x18, 2, 0x20, 3]);
        assert_eq!(leader.encode_to_vec(), expected);
        let lock = v3lockpb::LockRequest {
            name: b("l"),
            lease: 1,
        };
        assert_eq!(lock.encode_to_vec(), [0x0a, 1, b'l', 0x10, 1]);
    }

    #[test]
    fn method_table() {
        use crate::MethodKind;
        assert_eq!(
            super::method_kind("/etcdserverpb.KV/Range"),
            Some(MethodKind::Unary)
        );
        assert_eq!(
            super::method_kind("/etcdserverpb.Watch/Watch"),
            Some(MethodKind::Streaming)
        );
        assert_eq!(
            super::method_kind("/etcdserverpb.Maintenance/Snapshot"),
            Some(MethodKind::Streaming)
        );
        assert_eq!(
            super::method_kind("/v3electionpb.Election/Observe"),
            Some(MethodKind::Streaming)
        );
        assert_eq!(
            super::method_kind("/v3lockpb.Lock/Unlock"),
            Some(MethodKind::Unary)
        );
        assert_eq!(
            super::method_kind("/etcdserverpb.Auth/AuthStatus"),
            Some(MethodKind::Unary)
        );
        assert_eq!(super::method_kind("/etcdserverpb.KV/Nope"), None);
        assert_eq!(super::METHODS.len(), 5 + 1 + 5 + 5 + 8 + 17 + 5 + 2);
        assert_eq!(super::SERVICES.len(), 8);
    }
}
