//! The member's identity on disk: `<data-dir>/member/meta.json` holds the member and
//! cluster IDs chosen at bootstrap, so that a restart with different flags keeps them
//! (etcd keeps them in its WAL metadata for the same reason).

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::config::ServerConfig;
use crate::ids;

/// Member identity as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberMeta {
    /// Member name at bootstrap.
    pub name: String,
    /// Member ID, hex.
    pub member_id: String,
    /// Cluster ID, hex.
    pub cluster_id: String,
    /// Every initial voter's member ID, hex.
    pub voters: Vec<String>,
}

/// Identity in numbers.
pub struct Identity {
    /// The `member/` folder inside the data dir.
    pub member_dir: PathBuf,
    /// This member.
    pub member_id: u64,
    /// The cluster.
    pub cluster_id: u64,
    /// Initial voters.
    pub voters: Vec<u64>,
}

fn hex(id: u64) -> String {
    format!("{id:x}")
}

fn parse_hex(what: &str, s: &str) -> Result<u64, String> {
    u64::from_str_radix(s, 16).map_err(|e| format!("meta.json: bad {what} {s:?}: {e}"))
}

/// Loads the identity, or derives and durably stores it on first start.
pub fn load_or_bootstrap(config: &ServerConfig) -> Result<Identity, String> {
    let member_dir = config.data_dir.join("member");
    let meta_path = member_dir.join("meta.json");
    if meta_path.exists() {
        let text = fs::read_to_string(&meta_path)
            .map_err(|e| format!("cannot read {}: {e}", meta_path.display()))?;
        let meta: MemberMeta = serde_json::from_str(&text)
            .map_err(|e| format!("{} is corrupt: {e}", meta_path.display()))?;
        let voters = meta
            .voters
            .iter()
            .map(|v| parse_hex("voter", v))
            .collect::<Result<_, _>>()?;
        return Ok(Identity {
            member_id: parse_hex("member_id", &meta.member_id)?,
            cluster_id: parse_hex("cluster_id", &meta.cluster_id)?,
            voters,
            member_dir,
        });
    }
    if config.initial_cluster.len() > 1 {
        return Err("a cluster of more than one member is not supported yet: --initial-cluster must name only this member".into());
    }
    let voters: Vec<u64> = config
        .initial_cluster
        .iter()
        .map(|(_, urls)| ids::member_id(urls, &config.initial_cluster_token))
        .collect();
    let member_id = ids::member_id(
        &config.initial_advertise_peer_urls,
        &config.initial_cluster_token,
    );
    let cluster_id = ids::cluster_id(&voters);
    let meta = MemberMeta {
        name: config.name.clone(),
        member_id: hex(member_id),
        cluster_id: hex(cluster_id),
        voters: voters.iter().copied().map(hex).collect(),
    };
    write_durably(
        &member_dir,
        &meta_path,
        &serde_json::to_vec_pretty(&meta).expect("serializable"),
    )?;
    Ok(Identity {
        member_dir,
        member_id,
        cluster_id,
        voters,
    })
}

/// Writes `path` via a temporary file, fsync, rename and a directory fsync.
fn write_durably(dir: &Path, path: &Path, bytes: &[u8]) -> Result<(), String> {
    let err = |e: std::io::Error| format!("cannot write {}: {e}", path.display());
    fs::create_dir_all(dir).map_err(err)?;
    let tmp = path.with_extension("tmp");
    let mut f = fs::File::create(&tmp).map_err(err)?;
    f.write_all(bytes).map_err(err)?;
    f.sync_all().map_err(err)?;
    fs::rename(&tmp, path).map_err(err)?;
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(err)?;
    Ok(())
}
