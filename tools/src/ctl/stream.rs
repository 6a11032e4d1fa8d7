//! The streaming commands: `watch` (etcdctl 3.4 `watch_command.go`, non-interactive,
//! without an exec command) and `snapshot save` (`snapshot_command.go` and clientv3
//! `snapshot.v3Manager.Save`).

use std::io::Write;

use bytes::Bytes;
use net::pb::etcdserverpb::{
    watch_request, SnapshotRequest, SnapshotResponse, WatchCreateRequest, WatchRequest,
    WatchResponse,
};
use net::pb::mvccpb::{event::EventType, Event};
use prost::Message;

use super::go::JsonObject;
use super::kv::{
    fields_header, fields_kv, json_header, json_kv, prefix_range_end, simple_kv, write_out,
};
use super::{exit, status_text, CtlError, CtlResult, Format, Session};

/// SHA-256 digest bytes etcd appends to a snapshot stream.
const SNAPSHOT_HASH_BYTES: u64 = 32;
/// The bbolt page size a snapshot file (without its hash) is a multiple of, in bytes
/// (clientv3 `hasChecksum`: `size % 512 == sha256.Size`).
const SNAPSHOT_PAGE_BYTES: u64 = 512;

/// `watch` flags and arguments.
#[derive(Clone, Debug, clap::Args)]
pub struct WatchArgs {
    /// `[key or prefix] [range_end]`.
    pub args: Vec<String>,
    /// Watch on a prefix if prefix is set
    #[arg(long)]
    pub prefix: bool,
    /// Revision to start watching
    #[arg(long, default_value_t = 0)]
    pub rev: i64,
    /// get the previous key-value pair before the event happens
    #[arg(long)]
    pub prev_kv: bool,
}

/// `watch`: prints each response's events until the server cancels the watch (then
/// "watch is canceled by the server", exit 5) or the process is interrupted.
pub async fn watch(s: &Session, a: &WatchArgs) -> CtlResult {
    let env_key = std::env::var("ETCDCTL_WATCH_KEY").unwrap_or_default();
    let env_range = std::env::var("ETCDCTL_WATCH_RANGE_END").unwrap_or_default();
    if env_key.is_empty() && !env_range.is_empty() {
        return Err(CtlError::new(
            exit::BAD_ARGS,
            format!(
                "ETCDCTL_WATCH_KEY is empty but got ETCDCTL_WATCH_RANGE_END={}",
                super::go::quote(env_range.as_bytes())
            ),
        ));
    }
    let mut args = a.args.clone();
    if args.is_empty() && !env_key.is_empty() {
        args.push(env_key);
        if !env_range.is_empty() {
            args.push(env_range);
        }
    }
    if args.is_empty() || args.len() > 2 {
        return Err(CtlError::new(exit::BAD_ARGS, "bad number of arguments"));
    }
    if a.prefix && args.len() > 1 {
        return Err(CtlError::new(
            exit::BAD_ARGS,
            "`range_end` and `--prefix` are mutually exclusive",
        ));
    }
    let key = args[0].as_bytes().to_vec();
    let range_end = if a.prefix {
        prefix_range_end(&key)
    } else {
        args.get(1)
            .map(|e| e.as_bytes().to_vec())
            .unwrap_or_default()
    };
    if s.format == Format::Table {
        return Err(CtlError::unsupported(s.format));
    }
    let failed = |st: net::Status| CtlError::new(exit::BAD_CONNECTION, status_text(&st));
    let mut call = s
        .client()
        .await?
        .open("/etcdserverpb.Watch/Watch", None)
        .await
        .map_err(failed)?;
    let create = WatchCreateRequest {
        key: Bytes::from(key),
        range_end: Bytes::from(range_end),
        start_revision: a.rev,
        prev_kv: a.prev_kv,
        ..Default::default()
    };
    call.send(&WatchRequest {
        request_union: Some(watch_request::RequestUnion::CreateRequest(create)),
    })
    .map_err(failed)?;
    loop {
        let Some(r) = call.message::<WatchResponse>().await.map_err(failed)? else {
            break;
        };
        if r.created && !r.canceled {
            // clientv3 keeps the creation answer to itself.
            continue;
        }
        if r.canceled {
            let why = if r.compact_revision != 0 {
                "etcdserver: mvcc: required revision has been compacted".to_string()
            } else {
                r.cancel_reason.clone()
            };
            eprintln!("watch was canceled ({why})");
        }
        let progress = r.events.is_empty()
            && !r.canceled
            && !r.created
            && r.compact_revision == 0
            && r.header.as_ref().is_some_and(|h| h.revision != 0);
        if progress {
            println!(
                "progress notify: {}",
                r.header.as_ref().map_or(0, |h| h.revision)
            );
        }
        write_out(&render_watch(s.format, s.hex, &r));
        if r.canceled {
            break;
        }
    }
    Err(CtlError::new(
        exit::INTERRUPTED,
        "watch is canceled by the server",
    ))
}

fn event_type(e: &Event) -> &'static str {
    if e.r#type == EventType::Delete as i32 {
        "DELETE"
    } else {
        "PUT"
    }
}

/// Output of one watch response (printers' `Watch`).
pub fn render_watch(format: Format, hex: bool, r: &WatchResponse) -> Vec<u8> {
    match format {
        Format::Simple => {
            let mut out = Vec::new();
            for e in &r.events {
                out.extend(format!("{}\n", event_type(e)).into_bytes());
                if let Some(prev) = &e.prev_kv {
                    out.extend(simple_kv(hex, false, prev));
                }
                out.extend(simple_kv(hex, false, &e.kv.clone().unwrap_or_default()));
            }
            out
        }
        Format::Fields => {
            let mut out = fields_header(r.header.as_ref());
            for e in &r.events {
                out.push_str(&format!("\"Type\" : {}\n", event_type(e)));
                if let Some(prev) = &e.prev_kv {
                    out.push_str(&fields_kv("Prev", prev));
                }
                out.push_str(&fields_kv("", &e.kv.clone().unwrap_or_default()));
            }
            out.into_bytes()
        }
        Format::Json => {
            // clientv3's WatchResponse struct: Go field names, no omitempty; its events
            // are never nil.
            let events = {
                let items: Vec<String> = r
                    .events
                    .iter()
                    .map(|e| {
                        JsonObject::new()
                            .num("type", e.r#type)
                            .object("kv", e.kv.as_ref().map(json_kv))
                            .object("prev_kv", e.prev_kv.as_ref().map(json_kv))
                            .encode()
                    })
                    .collect();
                format!("[{}]", items.join(","))
            };
            let header = json_header(r.header.as_ref()).unwrap_or_default();
            JsonObject::new()
                .raw("Header", header.encode())
                .raw("Events", events)
                .raw("CompactRevision", r.compact_revision.to_string())
                .raw("Canceled", r.canceled.to_string())
                .raw("Created", r.created.to_string())
                .line()
        }
        _ => WatchResponse {
            header: r.header,
            events: r.events.clone(),
            compact_revision: r.compact_revision,
            canceled: r.canceled,
            created: r.created,
            ..Default::default()
        }
        .encode_to_vec(),
    }
}

/// Go's `*os.PathError` text: `<op> <path>: <errno text>`, the errno text as Go's
/// `syscall.Errno` gives it (the C library's, first letter in lower case).
fn go_path_error(op: &str, path: &str, e: &std::io::Error) -> String {
    let text = match e.raw_os_error() {
        Some(code) => {
            let c = std::io::Error::from_raw_os_error(code).to_string();
            let plain = c.split(" (os error").next().unwrap_or(&c).to_string();
            let mut chars = plain.chars();
            match chars.next() {
                Some(first) => first.to_lowercase().chain(chars).collect(),
                None => plain,
            }
        }
        None => e.to_string(),
    };
    format!("{op} {path}: {text}")
}

/// `snapshot save <file>`: streams Maintenance.Snapshot into `<file>.part` (mode 0600),
/// checks the trailing hash is there, syncs, renames. Errors exit 5 as etcdctl's.
pub async fn snapshot_save(s: &Session, endpoints: &[String], args: &[String]) -> CtlResult {
    if args.len() != 1 {
        return Err(CtlError::new(
            exit::BAD_ARGS,
            "snapshot save expects one argument",
        ));
    }
    if endpoints.len() != 1 {
        return Err(CtlError::new(
            exit::INTERRUPTED,
            format!(
                "snapshot must be requested to one selected node, not multiple [{}]",
                endpoints.join(" ")
            ),
        ));
    }
    let interrupted = |m: String| CtlError::new(exit::INTERRUPTED, m);
    let path = &args[0];
    let part = format!("{path}.part");
    let result = async {
        let mut file = {
            use std::os::unix::fs::OpenOptionsExt;
            std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&part)
                .map_err(|e| {
                    interrupted(format!(
                        "could not open {part} ({})",
                        go_path_error("open", &part, &e)
                    ))
                })?
        };
        let mut call = s
            .client()
            .await?
            .open("/etcdserverpb.Maintenance/Snapshot", None)
            .await
            .map_err(|st| interrupted(status_text(&st)))?;
        call.send(&SnapshotRequest {})
            .and_then(|()| call.close_send())
            .map_err(|st| interrupted(status_text(&st)))?;
        let mut size = 0u64;
        while let Some(r) = call
            .message::<SnapshotResponse>()
            .await
            .map_err(|st| interrupted(status_text(&st)))?
        {
            file.write_all(&r.blob)
                .map_err(|e| interrupted(e.to_string()))?;
            size += r.blob.len() as u64;
        }
        call.finish()
            .await
            .map_err(|st| interrupted(status_text(&st)))?;
        if size % SNAPSHOT_PAGE_BYTES != SNAPSHOT_HASH_BYTES {
            return Err(interrupted(format!(
                "sha256 checksum not found [bytes: {size}]"
            )));
        }
        file.sync_all().map_err(|e| interrupted(e.to_string()))?;
        drop(file);
        std::fs::rename(&part, path)
            .map_err(|e| interrupted(format!("could not rename {part} to {path} ({e})")))?;
        Ok(())
    }
    .await;
    let _ = std::fs::remove_file(&part);
    result?;
    println!("Snapshot saved at {path}");
    Ok(())
}
