//! `cairnctl snapshot status|restore`: etcdctl's offline snapshot commands (etcd 3.4
//! `etcdctl/ctlv3/command/snapshot_command.go`, `clientv3/snapshot/v3_snapshot.go`) on the
//! bbolt files that `Maintenance.Snapshot` streams, from Cairn or from etcd.
//!
//! `restore` writes the layout Cairn imports on first start (`member/snap/db`, see the
//! server's `cluster/import.rs`): the snapshot's database with the hash trailer checked
//! and cut off, the new cluster's members in the `members` bucket (the old ones and
//! `members_removed` dropped) and the consistent index set to the number of members, as
//! etcdctl's restore sets it. `cairn` started on that data dir with the same
//! `--name`/`--initial-cluster`/`--initial-cluster-token`/`--initial-advertise-peer-urls`
//! derives the same member and cluster IDs and serves the snapshot's keys.

use std::path::{Path, PathBuf};

use engine::etcd_backend::{
    member_key, split_snapshot_file, BackendReader, BackendStatus, BackendWriter, StoredMember,
    BUCKETS, BUCKET_MEMBERS, BUCKET_MEMBERS_REMOVED, BUCKET_META, META_CONSISTENT_INDEX,
};

use crate::error::{BenchError as Error, Result};

/// `-w` of `snapshot status`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum StatusFormat {
    /// `hash, revision, total keys, total size`.
    Simple,
    /// An ASCII table as etcdctl's tablewriter draws it.
    Table,
    /// `{"hash":…,"revision":…,"totalKey":…,"totalSize":…}`.
    Json,
}

/// What `snapshot restore` needs (etcdctl's flags of the same names).
#[derive(Clone, Debug)]
pub struct RestoreConfig {
    /// The snapshot file.
    pub snapshot: PathBuf,
    /// `--data-dir` (default `<name>.etcd`); must not exist.
    pub data_dir: PathBuf,
    /// `--name`.
    pub name: String,
    /// `--initial-cluster`: `name=url[,url]` entries.
    pub initial_cluster: String,
    /// `--initial-cluster-token`.
    pub initial_cluster_token: String,
    /// `--initial-advertise-peer-urls`, comma-separated.
    pub initial_advertise_peer_urls: String,
    /// `--skip-hash-check`.
    pub skip_hash_check: bool,
}

/// What a restore wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Restored {
    /// This member's ID.
    pub member_id: u64,
    /// The new cluster's ID.
    pub cluster_id: u64,
    /// The database written (`<data-dir>/member/snap/db`).
    pub db: PathBuf,
}

/// etcdctl's `snapshot status` of `file`: the integrity check, then hash, revision, keys
/// and size. Errors: the file is missing, not a bbolt database, or fails the check.
pub fn status(file: &Path) -> Result<BackendStatus> {
    if let Err(e) = std::fs::metadata(file) {
        if e.kind() == std::io::ErrorKind::NotFound {
            // etcdctl's text (Go's os.Stat error).
            return Err(Error::Refused(format!(
                "stat {}: no such file or directory",
                file.display()
            )));
        }
    }
    Ok(BackendReader::open(file, |r| r.status())?)
}

/// `go-humanize`'s `Bytes` (SI units, as etcdctl prints sizes): `29 kB`, `1.1 GB`, `7 B`.
pub fn humanize_bytes(n: u64) -> String {
    const UNITS: [&str; 7] = ["B", "kB", "MB", "GB", "TB", "PB", "EB"];
    if n < 10 {
        return format!("{n} B");
    }
    let e = ((n as f64).ln() / 1000f64.ln()).floor() as usize;
    let val = ((n as f64) / 1000f64.powi(e as i32) * 10.0 + 0.5).floor() / 10.0;
    if val < 10.0 {
        format!("{val:.1} {}", UNITS[e])
    } else {
        format!("{val:.0} {}", UNITS[e])
    }
}

/// The status as etcdctl prints it with `-w simple|table|json`.
pub fn render_status(s: &BackendStatus, format: StatusFormat) -> String {
    let row = [
        format!("{:x}", s.hash),
        s.revision.to_string(),
        s.total_key.to_string(),
        humanize_bytes(s.total_size),
    ];
    match format {
        StatusFormat::Simple => format!("{}\n", row.join(", ")),
        StatusFormat::Json => format!(
            "{{\"hash\":{},\"revision\":{},\"totalKey\":{},\"totalSize\":{}}}\n",
            s.hash, s.revision, s.total_key, s.total_size
        ),
        StatusFormat::Table => {
            let header = ["HASH", "REVISION", "TOTAL KEYS", "TOTAL SIZE"];
            let widths: Vec<usize> = header
                .iter()
                .zip(&row)
                .map(|(h, v)| h.len().max(v.len()))
                .collect();
            let line = widths
                .iter()
                .map(|w| "-".repeat(w + 2))
                .collect::<Vec<_>>()
                .join("+");
            let line = format!("+{line}+\n");
            // tablewriter centres headers (the extra space goes right) and right-aligns
            // the cells etcdctl's table printer sets ALIGN_RIGHT for.
            let head = header
                .iter()
                .zip(&widths)
                .map(|(h, w)| {
                    let pad = w - h.len();
                    let left = pad / 2;
                    format!(" {}{h}{} ", " ".repeat(left), " ".repeat(pad - left))
                })
                .collect::<Vec<_>>()
                .join("|");
            let cells = row
                .iter()
                .zip(&widths)
                .map(|(v, w)| format!(" {v:>w$} "))
                .collect::<Vec<_>>()
                .join("|");
            format!("{line}|{head}|\n{line}|{cells}|\n{line}")
        }
    }
}

/// `name=url,name=url2,other=url3` → members with their peer URLs, in order of first
/// appearance. Errors: an entry without `=`.
fn parse_initial_cluster(s: &str) -> Result<Vec<(String, Vec<String>)>> {
    let mut out: Vec<(String, Vec<String>)> = Vec::new();
    for entry in s.split(',').filter(|e| !e.is_empty()) {
        let (name, url) = entry.split_once('=').ok_or_else(|| {
            Error::Refused(format!("--initial-cluster entry {entry:?} has no '='"))
        })?;
        match out.iter_mut().find(|(n, _)| n == name) {
            Some((_, urls)) => urls.push(url.to_string()),
            None => out.push((name.to_string(), vec![url.to_string()])),
        }
    }
    Ok(out)
}

/// etcdctl's `snapshot restore` for Cairn (see the module doc). Errors: etcd's texts for
/// an existing data dir (`data-dir "…" exists`), a hash mismatch or a missing hash;
/// `--initial-advertise-peer-urls` not among `--name`'s URLs in `--initial-cluster`; a
/// damaged database. Nothing is left behind on error.
pub fn restore(c: &RestoreConfig) -> Result<Restored> {
    if c.data_dir.exists() {
        return Err(Error::Refused(format!(
            "data-dir {:?} exists",
            c.data_dir.display().to_string()
        )));
    }
    let cluster = parse_initial_cluster(&c.initial_cluster)?;
    let own: Vec<String> = c
        .initial_advertise_peer_urls
        .split(',')
        .filter(|u| !u.is_empty())
        .map(str::to_string)
        .collect();
    let listed = cluster.iter().find(|(n, _)| *n == c.name).map(|(_, u)| {
        let mut u = u.clone();
        u.sort();
        u
    });
    let mut own_sorted = own.clone();
    own_sorted.sort();
    if listed.as_ref() != Some(&own_sorted) {
        return Err(Error::Refused(format!(
            "--initial-cluster has {}={} but missing from --initial-advertise-peer-urls={}",
            c.name,
            listed.unwrap_or_default().join(","),
            own.join(",")
        )));
    }
    let members: Vec<StoredMember> = cluster
        .iter()
        .map(|(name, urls)| StoredMember {
            id: ::server::ids::member_id(urls, &c.initial_cluster_token),
            peer_urls: urls.clone(),
            is_learner: false,
            name: name.clone(),
            client_urls: Vec::new(),
        })
        .collect();
    let member_id = ::server::ids::member_id(&own, &c.initial_cluster_token);
    let ids: Vec<u64> = members.iter().map(|m| m.id).collect();
    let cluster_id = ::server::ids::cluster_id(&ids);

    let db_len = split_snapshot_file(&c.snapshot, c.skip_hash_check)?;
    let work = tempfile::tempdir().map_err(|source| Error::Io {
        op: "create temp dir",
        path: std::env::temp_dir(),
        source,
    })?;
    let source = work.path().join("snapshot.db");
    copy_prefix(&c.snapshot, &source, db_len)?;
    let snap_dir = c.data_dir.join("member").join("snap");
    let written = (|| -> Result<PathBuf> {
        std::fs::create_dir_all(&snap_dir).map_err(|source| Error::Io {
            op: "create",
            path: snap_dir.clone(),
            source,
        })?;
        let db = snap_dir.join("db");
        rewrite(&source, &db, &members)?;
        Ok(db)
    })();
    match written {
        Ok(db) => Ok(Restored {
            member_id,
            cluster_id,
            db,
        }),
        Err(e) => {
            let _ = std::fs::remove_dir_all(&c.data_dir);
            Err(e)
        }
    }
}

fn copy_prefix(from: &Path, to: &Path, len: u64) -> Result<()> {
    let io = |op: &'static str, path: &Path| {
        let path = path.to_path_buf();
        move |source| Error::Io { op, path, source }
    };
    let mut src = std::fs::File::open(from).map_err(io("read", from))?;
    let mut dst = std::fs::File::create(to).map_err(io("create", to))?;
    let copied = std::io::copy(&mut std::io::Read::take(&mut src, len), &mut dst)
        .map_err(io("copy", from))?;
    if copied != len {
        return Err(Error::Refused(format!(
            "{}: {copied} of {len} bytes read",
            from.display()
        )));
    }
    Ok(())
}

/// Copies every etcd bucket of `from` into a new file `to`, replacing the member table
/// and the consistent index (etcd `v3Manager.saveDB`).
fn rewrite(from: &Path, to: &Path, members: &[StoredMember]) -> Result<()> {
    let mut w = BackendWriter::create(to)?;
    BackendReader::open(from, |r| {
        r.check()?;
        for bucket in BUCKETS {
            if bucket == BUCKET_MEMBERS || bucket == BUCKET_MEMBERS_REMOVED {
                continue;
            }
            r.for_each(bucket, |k, v| {
                if bucket == BUCKET_META && k == META_CONSISTENT_INDEX {
                    return Ok(());
                }
                w.put(bucket, k, v)
            })?;
        }
        Ok(())
    })?;
    for m in members {
        let json = serde_json::to_vec(m).expect("a member serializes");
        w.put(BUCKET_MEMBERS, &member_key(m.id), &json)?;
    }
    w.put(
        BUCKET_META,
        META_CONSISTENT_INDEX,
        &(members.len() as u64).to_be_bytes(),
    )?;
    w.finish()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_print_as_go_humanize() {
        assert_eq!(humanize_bytes(7), "7 B");
        assert_eq!(humanize_bytes(20480), "20 kB");
        assert_eq!(humanize_bytes(28672), "29 kB");
        assert_eq!(humanize_bytes(1_100_000_000), "1.1 GB");
        assert_eq!(humanize_bytes(4096), "4.1 kB");
    }

    #[test]
    fn table_is_etcdctls() {
        let s = BackendStatus {
            hash: 0xf57fa193,
            revision: 54,
            total_key: 58,
            total_size: 28672,
        };
        // Printed by Debian's etcdctl 3.4 for a file with these numbers.
        let want = "\
+----------+----------+------------+------------+
|   HASH   | REVISION | TOTAL KEYS | TOTAL SIZE |
+----------+----------+------------+------------+
| f57fa193 |       54 |         58 |      29 kB |
+----------+----------+------------+------------+
";
        assert_eq!(render_status(&s, StatusFormat::Table), want);
        assert_eq!(
            render_status(&s, StatusFormat::Simple),
            "f57fa193, 54, 58, 29 kB\n"
        );
        assert_eq!(
            render_status(&s, StatusFormat::Json),
            "{\"hash\":4118782355,\"revision\":54,\"totalKey\":58,\"totalSize\":28672}\n"
        );
    }

    #[test]
    fn initial_cluster_groups_urls_by_name() {
        let c = parse_initial_cluster("a=http://1:2380,b=http://2:2380,a=http://3:2380").unwrap();
        assert_eq!(c[0].1, vec!["http://1:2380", "http://3:2380"]);
        assert_eq!(c[1].0, "b");
        assert!(parse_initial_cluster("nourl").is_err());
    }
}
