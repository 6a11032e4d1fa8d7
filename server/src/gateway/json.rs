//! JSON ⇄ protobuf for the gateway, through `prost-reflect` over the descriptors of Cairn's
//! own `.proto` files ([`net::pb::FILE_DESCRIPTOR_SET`]), as etcd's grpc-gateway marshals
//! with `runtime.JSONPb{OrigName: true}` (etcd 3.4 `embed/serve.go`):
//!
//! - field names as written in the `.proto` (`cluster_id`, `prev_kv`, `ID`, `TTL`,
//!   `dbSize`); requests accept those and the lowerCamelCase JSON names;
//! - 64-bit integers as strings (`"revision":"2"`), 32-bit ones as numbers (`"hash":17`);
//! - `bytes` as standard base64; enums by name (`"type":"DELETE"`);
//! - fields at their default value left out (`{"header":{…}}` for an empty Range);
//! - unknown request fields refused.
//!
//! Error bodies follow grpc-gateway v1 `runtime/errors.go` (`DefaultHTTPError`) and
//! `runtime/handler.go` (`streamChunk`).

use std::sync::OnceLock;

use bytes::Bytes;
use net::{Code, Status};
use prost::Message;
use prost_reflect::{
    DescriptorPool, DeserializeOptions, DynamicMessage, MessageDescriptor, MethodDescriptor,
    SerializeOptions,
};

/// The descriptors of etcd's API as Cairn's `.proto` files describe it (decoded once).
fn pool() -> &'static DescriptorPool {
    static POOL: OnceLock<DescriptorPool> = OnceLock::new();
    POOL.get_or_init(|| {
        DescriptorPool::decode(net::pb::FILE_DESCRIPTOR_SET)
            .expect("net's FILE_DESCRIPTOR_SET is the build's own descriptor set")
    })
}

/// The descriptor of the gRPC method at `path` (e.g. `/etcdserverpb.KV/Put`); `None` when
/// the `.proto` files have no such method.
pub fn method(path: &str) -> Option<MethodDescriptor> {
    let (service, method) = path.strip_prefix('/')?.split_once('/')?;
    pool()
        .get_service_by_name(service)?
        .methods()
        .find(|m| m.name() == method)
}

/// grpc-gateway's serializer options: proto field names, 64-bit integers as strings,
/// enums by name, default values left out.
fn serialize_options() -> SerializeOptions {
    SerializeOptions::new()
        .use_proto_field_name(true)
        .stringify_64_bit_integers(true)
        .use_enum_numbers(false)
        .skip_default_fields(true)
}

/// Every JSON value in `body` (whitespace between them allowed), each encoded as a
/// `desc` message in protobuf; an empty body gives none. grpc-gateway's streaming
/// handlers decode the body this way (one request message per JSON value); its unary
/// ones take the first value only. Errors: the JSON or mapping error's text.
pub fn requests_from_json(desc: &MessageDescriptor, body: &[u8]) -> Result<Vec<Bytes>, String> {
    let options = DeserializeOptions::new().deny_unknown_fields(true);
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let mut messages = Vec::new();
    loop {
        // serde_json's `end` fails unless only whitespace is left.
        if deserializer.end().is_ok() {
            return Ok(messages);
        }
        let message =
            DynamicMessage::deserialize_with_options(desc.clone(), &mut deserializer, &options)
                .map_err(|e| e.to_string())?;
        messages.push(Bytes::from(message.encode_to_vec()));
    }
}

/// The request of a unary call: the first JSON value of `body` as a `desc` message, or
/// the empty message for an empty body (grpc-gateway ignores `io.EOF` there).
pub fn request_from_json(desc: &MessageDescriptor, body: &[u8]) -> Result<Bytes, String> {
    let options = DeserializeOptions::new().deny_unknown_fields(true);
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    if deserializer.end().is_ok() {
        return Ok(Bytes::new());
    }
    let message =
        DynamicMessage::deserialize_with_options(desc.clone(), &mut deserializer, &options)
            .map_err(|e| e.to_string())?;
    Ok(Bytes::from(message.encode_to_vec()))
}

/// A response message (protobuf bytes of a `desc` message) as grpc-gateway's JSON.
/// Errors: INTERNAL when the bytes do not decode (the service answered with something
/// else than its method's response type: a bug).
pub fn response_to_json(desc: &MessageDescriptor, message: Bytes) -> Result<Vec<u8>, Status> {
    let message = DynamicMessage::decode(desc.clone(), message).map_err(|e| {
        Status::new(
            Code::Internal,
            format!("gateway: response is not a {}: {e}", desc.full_name()),
        )
    })?;
    let mut json = Vec::new();
    let mut serializer = serde_json::Serializer::new(&mut json);
    message
        .serialize_with_options(&mut serializer, &serialize_options())
        .map_err(|e| Status::new(Code::Internal, format!("gateway: {e}")))?;
    Ok(json)
}

/// One line of a streamed response: `{"result":<message>}` (grpc-gateway `streamChunk`).
pub fn stream_result(message_json: &[u8]) -> Vec<u8> {
    let mut chunk = Vec::with_capacity(message_json.len() + 12);
    chunk.extend_from_slice(b"{\"result\":");
    chunk.extend_from_slice(message_json);
    chunk.extend_from_slice(b"}\n");
    chunk
}

/// The HTTP status for a gRPC code (grpc-gateway v1 `runtime.HTTPStatusFromCode`).
pub fn http_status(code: Code) -> u16 {
    match code {
        Code::Ok => 200,
        Code::Cancelled => 408,
        Code::Unknown => 500,
        Code::InvalidArgument => 400,
        Code::DeadlineExceeded => 504,
        Code::NotFound => 404,
        Code::AlreadyExists => 409,
        Code::PermissionDenied => 403,
        Code::Unauthenticated => 401,
        Code::ResourceExhausted => 429,
        Code::FailedPrecondition => 412,
        Code::Aborted => 409,
        Code::OutOfRange => 400,
        Code::Unimplemented => 501,
        Code::Internal => 500,
        Code::Unavailable => 503,
        Code::DataLoss => 500,
    }
}

/// Go's `http.StatusText` for the statuses [`http_status`] gives.
fn status_text(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        408 => "Request Timeout",
        409 => "Conflict",
        412 => "Precondition Failed",
        429 => "Too Many Requests",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Internal Server Error",
    }
}

/// The body of a failed call: `{"error":M,"message":M,"code":C}` (grpc-gateway v1
/// `DefaultHTTPError`; e.g. `{"error":"etcdserver: key is not provided","message":
/// "etcdserver: key is not provided","code":3}`, sent with HTTP 400).
pub fn error_body(status: &Status) -> Vec<u8> {
    let message = json_string(&status.message);
    format!(
        r#"{{"error":{message},"message":{message},"code":{}}}"#,
        status.code.as_u32()
    )
    .into_bytes()
}

/// A stream's failure as its last chunk: `{"error":{"grpc_code":C,"http_code":H,
/// "message":M,"http_status":T}}` (grpc-gateway v1 `streamChunk`, `internal.StreamError`
/// with OrigName; an empty message left out). No newline follows it.
pub fn stream_error(status: &Status) -> Vec<u8> {
    let http = http_status(status.code);
    let message = if status.message.is_empty() {
        String::new()
    } else {
        format!(r#""message":{},"#, json_string(&status.message))
    };
    format!(
        r#"{{"error":{{"grpc_code":{},"http_code":{http},{message}"http_status":{}}}}}"#,
        status.code.as_u32(),
        json_string(status_text(http)),
    )
    .into_bytes()
}

/// `text` as a JSON string literal.
fn json_string(text: &str) -> String {
    serde_json::Value::from(text).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use net::pb::etcdserverpb::{PutRequest, RangeResponse, ResponseHeader};
    use net::pb::mvccpb::KeyValue;

    fn put_desc() -> MessageDescriptor {
        method("/etcdserverpb.KV/Put").unwrap().input()
    }

    #[test]
    fn request_accepts_proto_and_json_names_and_both_integer_forms() {
        let bytes = request_from_json(
            &put_desc(),
            br#"{"key":"Zm9v","value":"YmFy","lease":"7","prevKv":true} trailing"#,
        )
        .unwrap();
        let put = PutRequest::decode(bytes).unwrap();
        assert_eq!(&put.key[..], b"foo");
        assert_eq!(&put.value[..], b"bar");
        assert_eq!(put.lease, 7);
        assert!(put.prev_kv);
        let bytes = request_from_json(&put_desc(), br#"{"lease":8,"prev_kv":true}"#).unwrap();
        let put = PutRequest::decode(bytes).unwrap();
        assert_eq!(put.lease, 8);
        assert!(put.prev_kv);
    }

    #[test]
    fn empty_body_is_the_empty_request_and_errors_are_text() {
        assert_eq!(request_from_json(&put_desc(), b"").unwrap(), Bytes::new());
        assert_eq!(
            request_from_json(&put_desc(), b" \n").unwrap(),
            Bytes::new()
        );
        assert!(request_from_json(&put_desc(), b"{bad").is_err());
        assert!(request_from_json(&put_desc(), br#"{"nope":1}"#).is_err());
        let watch = method("/etcdserverpb.Watch/Watch").unwrap().input();
        let two = requests_from_json(
            &watch,
            br#"{"create_request":{"key":"YQ=="}} {"progress_request":{}}"#,
        )
        .unwrap();
        assert_eq!(two.len(), 2);
        assert!(requests_from_json(&watch, b"").unwrap().is_empty());
    }

    #[test]
    fn response_as_etcd_gateway_prints_it() {
        let resp = RangeResponse {
            header: Some(ResponseHeader {
                cluster_id: 14841639068965178418,
                member_id: 10276657743932975437,
                revision: 2,
                raft_term: 2,
            }),
            kvs: vec![KeyValue {
                key: Bytes::from_static(b"foo"),
                create_revision: 2,
                mod_revision: 2,
                version: 1,
                value: Bytes::from_static(b"bar"),
                lease: 0,
            }],
            more: false,
            count: 1,
        };
        let desc = method("/etcdserverpb.KV/Range").unwrap().output();
        let json = response_to_json(&desc, Bytes::from(resp.encode_to_vec())).unwrap();
        // etcd 3.4.23's gateway, byte for byte.
        assert_eq!(
            String::from_utf8(json).unwrap(),
            r#"{"header":{"cluster_id":"14841639068965178418","member_id":"10276657743932975437","revision":"2","raft_term":"2"},"kvs":[{"key":"Zm9v","create_revision":"2","mod_revision":"2","version":"1","value":"YmFy"}],"count":"1"}"#
        );
    }

    #[test]
    fn error_bodies() {
        let status = Status::new(Code::InvalidArgument, "etcdserver: key is not provided");
        assert_eq!(
            String::from_utf8(error_body(&status)).unwrap(),
            r#"{"error":"etcdserver: key is not provided","message":"etcdserver: key is not provided","code":3}"#
        );
        assert_eq!(http_status(status.code), 400);
        let status = Status::new(Code::Unavailable, "etcdserver: server stopped");
        assert_eq!(
            String::from_utf8(stream_error(&status)).unwrap(),
            r#"{"error":{"grpc_code":14,"http_code":503,"message":"etcdserver: server stopped","http_status":"Service Unavailable"}}"#
        );
    }
}
