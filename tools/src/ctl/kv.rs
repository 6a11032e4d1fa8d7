//! `put`, `get`, `del`: etcdctl 3.4's `put_command.go`, `get_command.go`,
//! `del_command.go`, with the printers of `printer_simple.go`, `printer_fields.go`,
//! `printer_json.go` and `printer_protobuf.go` for their responses.

use std::io::Read;

use bytes::Bytes;
use net::pb::etcdserverpb::{
    range_request, DeleteRangeRequest, DeleteRangeResponse, PutRequest, PutResponse, RangeRequest,
    RangeResponse, ResponseHeader,
};
use net::pb::mvccpb::KeyValue;
use prost::Message;

use super::go::{self, JsonObject};
use super::{exit, CtlError, CtlResult, Format, Session};

/// `put [options] <key> <value>` (value from stdin when missing).
#[derive(Clone, Debug, clap::Args)]
pub struct PutArgs {
    /// Key, then value.
    #[arg(allow_hyphen_values = false)]
    pub args: Vec<String>,
    /// lease ID (in hexadecimal) to attach to the key
    #[arg(long, default_value = "0")]
    pub lease: String,
    /// return the previous key-value pair before modification
    #[arg(long)]
    pub prev_kv: bool,
    /// updates the key using its current value
    #[arg(long)]
    pub ignore_value: bool,
    /// updates the key using its current lease
    #[arg(long)]
    pub ignore_lease: bool,
}

/// `get [options] <key> [range_end]`.
#[derive(Clone, Debug, clap::Args)]
pub struct GetArgs {
    /// Key, then optional range end.
    pub args: Vec<String>,
    /// Linearizable(l) or Serializable(s)
    #[arg(long, default_value = "l")]
    pub consistency: String,
    /// Order of results; ASCEND or DESCEND (ASCEND by default)
    #[arg(long, default_value = "")]
    pub order: String,
    /// Sort target; CREATE, KEY, MODIFY, VALUE, or VERSION
    #[arg(long, default_value = "")]
    pub sort_by: String,
    /// Maximum number of results
    #[arg(long, default_value_t = 0)]
    pub limit: i64,
    /// Get keys with matching prefix
    #[arg(long)]
    pub prefix: bool,
    /// Get keys that are greater than or equal to the given key using byte compare
    #[arg(long)]
    pub from_key: bool,
    /// Specify the kv revision
    #[arg(long, default_value_t = 0)]
    pub rev: i64,
    /// Get only the keys
    #[arg(long)]
    pub keys_only: bool,
    /// Only write values when using the "simple" output format
    #[arg(long)]
    pub print_value_only: bool,
}

/// `del [options] <key> [range_end]`.
#[derive(Clone, Debug, clap::Args)]
pub struct DelArgs {
    /// Key, then optional range end.
    pub args: Vec<String>,
    /// delete keys with matching prefix
    #[arg(long)]
    pub prefix: bool,
    /// return deleted key-value pairs
    #[arg(long)]
    pub prev_kv: bool,
    /// delete keys that are greater than or equal to the given key using byte compare
    #[arg(long)]
    pub from_key: bool,
}

/// The end of the range of keys with prefix `key` (clientv3 `GetPrefixRangeEnd`): the
/// key with its last byte below 0xff incremented and the rest cut; `\0` (every key from
/// `key` on) when all bytes are 0xff.
pub fn prefix_range_end(key: &[u8]) -> Vec<u8> {
    let mut end = key.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

/// Key and range end of `get`/`del`'s arguments and `--prefix`/`--from-key`.
fn key_range(args: &[String], prefix: bool, from_key: bool) -> CtlResult<(Vec<u8>, Vec<u8>)> {
    if prefix && from_key {
        return Err(CtlError::new(
            exit::BAD_ARGS,
            "`--prefix` and `--from-key` cannot be set at the same time, choose one",
        ));
    }
    let mut key = args[0].as_bytes().to_vec();
    let mut end = Vec::new();
    if args.len() > 1 {
        if prefix || from_key {
            return Err(CtlError::new(
                exit::BAD_ARGS,
                "too many arguments, only accept one argument when `--prefix` or `--from-key` is set",
            ));
        }
        end = args[1].as_bytes().to_vec();
    }
    if prefix {
        if key.is_empty() {
            key = vec![0];
            end = vec![0];
        } else {
            end = prefix_range_end(&key);
        }
    }
    if from_key {
        if key.is_empty() {
            key = vec![0];
        }
        end = vec![0];
    }
    Ok((key, end))
}

/// `put`.
pub async fn put(s: &Session, a: &PutArgs) -> CtlResult {
    let request = put_request(a)?;
    check_format(s.format)?;
    let r: PutResponse = s.call("/etcdserverpb.KV/Put", &request).await?;
    write_out(&render_put(s.format, s.hex, &r));
    Ok(())
}

/// The request of `put`'s arguments (etcdctl `getPutOp`); the value is read from stdin
/// when not given.
pub fn put_request(a: &PutArgs) -> CtlResult<PutRequest> {
    let usage = "put command needs 1 argument and input from stdin or 2 arguments";
    if a.args.is_empty() {
        return Err(CtlError::new(exit::BAD_ARGS, usage));
    }
    if a.ignore_value && a.args.len() > 1 {
        return Err(CtlError::new(
            exit::BAD_ARGS,
            "put command needs only 1 argument when 'ignore-value' is set",
        ));
    }
    let value = if a.ignore_value {
        String::new()
    } else if let Some(v) = a.args.get(1) {
        v.clone()
    } else {
        let mut input = String::new();
        match std::io::stdin().read_to_string(&mut input) {
            Ok(_) if !input.is_empty() => input,
            _ => return Err(CtlError::new(exit::BAD_ARGS, usage)),
        }
    };
    let lease = i64::from_str_radix(&a.lease, 16).map_err(|e| {
        CtlError::new(
            exit::BAD_ARGS,
            format!(
                "bad lease ID (strconv.ParseInt: parsing {}: {}), expecting ID in Hex",
                go::string(&a.lease),
                go_parse_error(&e)
            ),
        )
    })?;
    let request = PutRequest {
        key: Bytes::from(a.args[0].clone()),
        value: Bytes::from(value),
        lease,
        prev_kv: a.prev_kv,
        ignore_value: a.ignore_value,
        ignore_lease: a.ignore_lease,
    };
    Ok(request)
}

/// Go's `strconv` error texts for a refused integer.
fn go_parse_error(e: &std::num::ParseIntError) -> &'static str {
    match e.kind() {
        std::num::IntErrorKind::PosOverflow | std::num::IntErrorKind::NegOverflow => {
            "value out of range"
        }
        _ => "invalid syntax",
    }
}

/// `get`.
pub async fn get(s: &Session, a: &GetArgs) -> CtlResult {
    let request = range_request(a)?;
    check_format(s.format)?;
    let r: RangeResponse = s.call("/etcdserverpb.KV/Range", &request).await?;
    if a.print_value_only && s.format != Format::Simple {
        return Err(CtlError::new(
            exit::BAD_ARGS,
            "print-value-only is only for `--write-out=simple`",
        ));
    }
    write_out(&render_get(s.format, s.hex, a.print_value_only, &r));
    Ok(())
}

/// The request of `get`'s arguments (etcdctl `getGetOp`).
pub fn range_request(a: &GetArgs) -> CtlResult<RangeRequest> {
    if a.args.is_empty() {
        return Err(CtlError::new(
            exit::BAD_ARGS,
            "get command needs one argument as key and an optional argument as range_end",
        ));
    }
    if a.prefix && a.from_key {
        return Err(CtlError::new(
            exit::BAD_ARGS,
            "`--prefix` and `--from-key` cannot be set at the same time, choose one",
        ));
    }
    let serializable = match a.consistency.as_str() {
        "s" => true,
        "l" => false,
        other => {
            return Err(CtlError::new(
                exit::BAD_FEATURE,
                format!("unknown consistency flag {}", go::quote(other.as_bytes())),
            ))
        }
    };
    let (key, range_end) = key_range(&a.args, a.prefix, a.from_key)?;
    let sort_order = match a.order.to_uppercase().as_str() {
        "ASCEND" => range_request::SortOrder::Ascend,
        "DESCEND" => range_request::SortOrder::Descend,
        "" => range_request::SortOrder::None,
        _ => {
            return Err(CtlError::new(
                exit::BAD_FEATURE,
                format!("bad sort order {}", a.order),
            ))
        }
    };
    let sort_target = match a.sort_by.to_uppercase().as_str() {
        "CREATE" => range_request::SortTarget::Create,
        "KEY" | "" => range_request::SortTarget::Key,
        "MODIFY" => range_request::SortTarget::Mod,
        "VALUE" => range_request::SortTarget::Value,
        "VERSION" => range_request::SortTarget::Version,
        _ => {
            return Err(CtlError::new(
                exit::BAD_FEATURE,
                format!("bad sort target {}", a.sort_by),
            ))
        }
    };
    // clientv3 `WithSort`: ascending by key is the server's order, sent as none.
    let sort_order = if sort_target == range_request::SortTarget::Key
        && sort_order == range_request::SortOrder::Ascend
    {
        range_request::SortOrder::None
    } else {
        sort_order
    };
    let request = RangeRequest {
        key: key.into(),
        range_end: range_end.into(),
        limit: a.limit,
        revision: a.rev.max(0),
        sort_order: sort_order as i32,
        sort_target: sort_target as i32,
        serializable,
        keys_only: a.keys_only,
        ..Default::default()
    };
    Ok(request)
}

/// `del`.
pub async fn del(s: &Session, a: &DelArgs) -> CtlResult {
    let request = delete_request(a)?;
    check_format(s.format)?;
    let r: DeleteRangeResponse = s.call("/etcdserverpb.KV/DeleteRange", &request).await?;
    write_out(&render_del(s.format, s.hex, &r));
    Ok(())
}

/// The request of `del`'s arguments (etcdctl `getDelOp`).
pub fn delete_request(a: &DelArgs) -> CtlResult<DeleteRangeRequest> {
    if a.args.is_empty() || a.args.len() > 2 {
        return Err(CtlError::new(
            exit::BAD_ARGS,
            "del command needs one argument as key and an optional argument as range_end",
        ));
    }
    let (key, range_end) = key_range(&a.args, a.prefix, a.from_key)?;
    let request = DeleteRangeRequest {
        key: key.into(),
        range_end: range_end.into(),
        prev_kv: a.prev_kv,
    };
    Ok(request)
}

/// The KV printers have no table form; etcdctl fails after the call, cairnctl before it
/// (same output, exit 4, but the request is not sent).
fn check_format(format: Format) -> CtlResult {
    if format == Format::Table {
        return Err(CtlError::unsupported(format));
    }
    Ok(())
}

/// etcdctl's `printKV`: key line (unless value-only), value line, raw bytes as Go's
/// `fmt.Println(string(b))` writes them; `--hex` escapes both.
pub fn simple_kv(hex: bool, value_only: bool, kv: &KeyValue) -> Vec<u8> {
    let text = |b: &[u8]| {
        if hex {
            go::hex_escaped(b).into_bytes()
        } else {
            b.to_vec()
        }
    };
    let mut out = Vec::new();
    if !value_only {
        out.extend(text(&kv.key));
        out.push(b'\n');
    }
    out.extend(text(&kv.value));
    out.push(b'\n');
    out
}

/// `fields` lines of a key-value, names prefixed with `prefix` (`Prev` for previous ones).
pub fn fields_kv(prefix: &str, kv: &KeyValue) -> String {
    format!(
        "\"{prefix}Key\" : {}\n\"{prefix}CreateRevision\" : {}\n\"{prefix}ModRevision\" : {}\n\"{prefix}Version\" : {}\n\"{prefix}Value\" : {}\n\"{prefix}Lease\" : {}\n",
        go::quote(&kv.key),
        kv.create_revision,
        kv.mod_revision,
        kv.version,
        go::quote(&kv.value),
        kv.lease
    )
}

/// `fields` lines of a response header.
pub fn fields_header(h: Option<&ResponseHeader>) -> String {
    let h = h.cloned().unwrap_or_default();
    format!(
        "\"ClusterID\" : {}\n\"MemberID\" : {}\n\"Revision\" : {}\n\"RaftTerm\" : {}\n",
        h.cluster_id, h.member_id, h.revision, h.raft_term
    )
}

/// Go JSON of a `ResponseHeader`.
pub fn json_header(h: Option<&ResponseHeader>) -> Option<JsonObject> {
    h.map(|h| {
        JsonObject::new()
            .num("cluster_id", h.cluster_id)
            .num("member_id", h.member_id)
            .num("revision", h.revision)
            .num("raft_term", h.raft_term)
    })
}

/// Go JSON of a `mvccpb.KeyValue`.
pub fn json_kv(kv: &KeyValue) -> JsonObject {
    JsonObject::new()
        .bytes("key", &kv.key)
        .num("create_revision", kv.create_revision)
        .num("mod_revision", kv.mod_revision)
        .num("version", kv.version)
        .bytes("value", &kv.value)
        .num("lease", kv.lease)
}

fn json_kvs(kvs: &[KeyValue]) -> Vec<String> {
    kvs.iter().map(|kv| json_kv(kv).encode()).collect()
}

/// Go JSON of a `PutResponse`.
pub fn json_put(r: &PutResponse) -> JsonObject {
    JsonObject::new()
        .object("header", json_header(r.header.as_ref()))
        .object("prev_kv", r.prev_kv.as_ref().map(json_kv))
}

/// Go JSON of a `RangeResponse`.
pub fn json_range(r: &RangeResponse) -> JsonObject {
    JsonObject::new()
        .object("header", json_header(r.header.as_ref()))
        .array("kvs", json_kvs(&r.kvs))
        .flag("more", r.more)
        .num("count", r.count)
}

/// Go JSON of a `DeleteRangeResponse`.
pub fn json_delete(r: &DeleteRangeResponse) -> JsonObject {
    JsonObject::new()
        .object("header", json_header(r.header.as_ref()))
        .num("deleted", r.deleted)
        .array("prev_kvs", json_kvs(&r.prev_kvs))
}

/// Writes rendered output to stdout as raw bytes.
pub fn write_out(bytes: &[u8]) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(bytes);
    let _ = out.flush();
}

/// Output of `put`.
pub fn render_put(format: Format, hex: bool, r: &PutResponse) -> Vec<u8> {
    match format {
        Format::Simple => {
            let mut out = b"OK\n".to_vec();
            if let Some(kv) = &r.prev_kv {
                out.extend(simple_kv(hex, false, kv));
            }
            out
        }
        Format::Fields => {
            let mut out = fields_header(r.header.as_ref());
            if let Some(kv) = &r.prev_kv {
                out.push_str(&fields_kv("Prev", kv));
            }
            out.into_bytes()
        }
        Format::Json => json_put(r).line(),
        Format::Protobuf | Format::Table => r.encode_to_vec(),
    }
}

/// Output of `get`.
pub fn render_get(format: Format, hex: bool, value_only: bool, r: &RangeResponse) -> Vec<u8> {
    match format {
        Format::Simple => r
            .kvs
            .iter()
            .flat_map(|kv| simple_kv(hex, value_only, kv))
            .collect(),
        Format::Fields => {
            let mut out = fields_header(r.header.as_ref());
            for kv in &r.kvs {
                out.push_str(&fields_kv("", kv));
            }
            (out + &format!("\"More\" : {}\n\"Count\" : {}\n", r.more, r.count)).into_bytes()
        }
        Format::Json => json_range(r).line(),
        Format::Protobuf | Format::Table => r.encode_to_vec(),
    }
}

/// Output of `del`.
pub fn render_del(format: Format, hex: bool, r: &DeleteRangeResponse) -> Vec<u8> {
    match format {
        Format::Simple => {
            let mut out = format!("{}\n", r.deleted).into_bytes();
            for kv in &r.prev_kvs {
                out.extend(simple_kv(hex, false, kv));
            }
            out
        }
        Format::Fields => {
            let mut out = fields_header(r.header.as_ref());
            out.push_str(&format!("\"Deleted\" : {}\n", r.deleted));
            for kv in &r.prev_kvs {
                out.push_str(&fields_kv("Prev", kv));
            }
            out.into_bytes()
        }
        Format::Json => json_delete(r).line(),
        Format::Protobuf | Format::Table => r.encode_to_vec(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_ends() {
        assert_eq!(prefix_range_end(b"a"), b"b");
        assert_eq!(prefix_range_end(b"a\xff"), b"b");
        assert_eq!(prefix_range_end(b"\xff\xff"), b"\0");
    }

    #[test]
    fn key_ranges_as_etcdctl() {
        let args = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            key_range(&args(&["a", "c"]), false, false).unwrap(),
            (b"a".to_vec(), b"c".to_vec())
        );
        assert_eq!(
            key_range(&args(&[""]), true, false).unwrap(),
            (vec![0], vec![0])
        );
        assert_eq!(
            key_range(&args(&["k"]), false, true).unwrap(),
            (b"k".to_vec(), vec![0])
        );
        assert_eq!(
            key_range(&args(&["a", "b"]), true, false).unwrap_err().code,
            exit::BAD_ARGS
        );
    }

    #[test]
    fn printers() {
        let kv = KeyValue {
            key: Bytes::from_static(b"foo"),
            value: Bytes::from_static(b"bar"),
            create_revision: 2,
            mod_revision: 3,
            version: 2,
            lease: 0,
        };
        let r = RangeResponse {
            header: Some(ResponseHeader {
                cluster_id: 1,
                member_id: 2,
                revision: 3,
                raft_term: 4,
            }),
            kvs: vec![kv.clone()],
            count: 1,
            more: false,
        };
        assert_eq!(render_get(Format::Simple, false, false, &r), b"foo\nbar\n");
        assert_eq!(
            render_get(Format::Simple, true, true, &r),
            b"\\x62\\x61\\x72\n"
        );
        assert_eq!(
            String::from_utf8(render_get(Format::Json, false, false, &r)).unwrap(),
            "{\"header\":{\"cluster_id\":1,\"member_id\":2,\"revision\":3,\"raft_term\":4},\"kvs\":[{\"key\":\"Zm9v\",\"create_revision\":2,\"mod_revision\":3,\"version\":2,\"value\":\"YmFy\"}],\"count\":1}\n"
        );
        assert!(
            String::from_utf8(render_get(Format::Fields, false, false, &r))
                .unwrap()
                .ends_with("\"Lease\" : 0\n\"More\" : false\n\"Count\" : 1\n")
        );
    }
}
