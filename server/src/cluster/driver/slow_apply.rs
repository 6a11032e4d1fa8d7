//! etcd's warning for an applied request slower than `--warning-apply-duration`
//! (`warnOfExpensiveGenericRequest`).

use std::time::Duration;

use net::pb::etcdserverpb::InternalRaftRequest;
use net::Status;
use tracing::warn;

use super::Applied;

/// Most bytes of the request text in "apply request took too long".
pub(super) const SLOW_APPLY_REQUEST_BYTES_MAX: usize = 1024;

/// etcd `warnOfExpensiveGenericRequest`'s warning for one applied request.
pub(super) fn warn_slow_apply(
    took: Duration,
    expected: Duration,
    request: &InternalRaftRequest,
    result: &Result<Applied, Status>,
) {
    let mut text = format!("{request:?}");
    if text.len() > SLOW_APPLY_REQUEST_BYTES_MAX {
        let mut cut = SLOW_APPLY_REQUEST_BYTES_MAX;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
        text.push_str("...");
    }
    let error = match result {
        Ok(_) => String::new(),
        Err(status) => status.message.clone(),
    };
    warn!(
        took = %crate::logging::go_duration(took),
        "expected-duration" = %crate::logging::go_duration(expected),
        prefix = "",
        request = %text,
        response = "",
        error = %error,
        "apply request took too long"
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::errors;
    use bytes::Bytes;
    use net::pb::etcdserverpb::PutRequest;

    #[test]
    fn slow_apply_warning_has_etcds_fields_and_a_bounded_request() {
        let request = InternalRaftRequest {
            put: Some(PutRequest {
                key: Bytes::from_static(b"k"),
                value: Bytes::from(vec![b'v'; 4 * SLOW_APPLY_REQUEST_BYTES_MAX]),
                ..Default::default()
            }),
            ..Default::default()
        };
        let lines = crate::logging::tests::capture(|| {
            warn_slow_apply(
                Duration::from_millis(150),
                Duration::from_millis(100),
                &request,
                &Err(errors::compacted()),
            );
        });
        assert_eq!(lines.len(), 1);
        let line = &lines[0].1;
        assert_eq!(line["level"], "warn");
        assert_eq!(line["msg"], "apply request took too long");
        assert_eq!(line["took"], "150ms");
        assert_eq!(line["expected-duration"], "100ms");
        assert_eq!(
            line["error"],
            "etcdserver: mvcc: required revision has been compacted"
        );
        let text = line["request"].as_str().expect("request");
        assert!(text.ends_with("..."), "{text}");
        assert!(text.len() <= SLOW_APPLY_REQUEST_BYTES_MAX + 3);
    }
}
