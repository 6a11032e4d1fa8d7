//! `snapshot save` (etcdctl 3.4 `snapshot_command.go` and clientv3
//! `snapshot.v3Manager.Save`): the Maintenance.Snapshot stream into a file. (`watch` is
//! in [`super::watch`].)

use std::io::Write;

use net::pb::etcdserverpb::{SnapshotRequest, SnapshotResponse};

use super::{exit, status_text, CtlError, CtlResult, Session};

/// SHA-256 digest bytes etcd appends to a snapshot stream.
const SNAPSHOT_HASH_BYTES: u64 = 32;
/// The bbolt page size a snapshot file (without its hash) is a multiple of, in bytes
/// (clientv3 `hasChecksum`: `size % 512 == sha256.Size`).
const SNAPSHOT_PAGE_BYTES: u64 = 512;

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
