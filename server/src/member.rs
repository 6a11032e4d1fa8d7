//! The member's identity on disk: `<data-dir>/member/meta.json` holds the member and
//! cluster IDs chosen at bootstrap, so that a restart with different flags keeps them
//! (etcd keeps them in its WAL metadata for the same reason).

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::cluster::{MemberInfo, Membership};
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
    /// Every initial member (from `--initial-cluster`); absent in files written before
    /// clusters of several members existed (then `voters` holds this member alone).
    #[serde(default)]
    pub members: Vec<InitialMember>,
}

/// One member of `--initial-cluster` as `meta.json` keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InitialMember {
    /// Member ID, hex.
    pub id: String,
    /// Name.
    pub name: String,
    /// Peer URLs.
    pub peer_urls: Vec<String>,
}

/// Identity in numbers.
pub struct Identity {
    /// The `member/` folder inside the data dir.
    pub member_dir: PathBuf,
    /// This member.
    pub member_id: u64,
    /// The cluster.
    pub cluster_id: u64,
    /// The member table a new member bootstraps with (`--initial-cluster`).
    pub initial: Membership,
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
        let member_id = parse_hex("member_id", &meta.member_id)?;
        let initial = if meta.members.is_empty() {
            // Written by a single-member Cairn before clusters existed.
            Membership::new([MemberInfo {
                id: member_id,
                name: meta.name.clone(),
                peer_urls: config.initial_advertise_peer_urls.clone(),
                client_urls: Vec::new(),
                is_learner: false,
            }])
        } else {
            let members: Result<Vec<MemberInfo>, String> = meta
                .members
                .iter()
                .map(|m| {
                    Ok(MemberInfo {
                        id: parse_hex("member id", &m.id)?,
                        name: m.name.clone(),
                        peer_urls: m.peer_urls.clone(),
                        client_urls: Vec::new(),
                        is_learner: false,
                    })
                })
                .collect();
            Membership::new(members?)
        };
        return Ok(Identity {
            member_id,
            cluster_id: parse_hex("cluster_id", &meta.cluster_id)?,
            initial,
            member_dir,
        });
    }
    if config.join_existing {
        return Err(
            "joining an existing cluster (--initial-cluster-state existing) is not supported yet"
                .into(),
        );
    }
    let members: Vec<MemberInfo> = config
        .initial_cluster
        .iter()
        .map(|(name, urls)| MemberInfo {
            id: ids::member_id(urls, &config.initial_cluster_token),
            name: name.clone(),
            peer_urls: urls.clone(),
            client_urls: Vec::new(),
            is_learner: false,
        })
        .collect();
    let voters: Vec<u64> = members.iter().map(|m| m.id).collect();
    let mut unique = voters.clone();
    unique.sort_unstable();
    unique.dedup();
    if unique.len() != voters.len() {
        return Err("--initial-cluster names the same peer URLs for two members".into());
    }
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
        members: members
            .iter()
            .map(|m| InitialMember {
                id: hex(m.id),
                name: m.name.clone(),
                peer_urls: m.peer_urls.clone(),
            })
            .collect(),
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
        initial: Membership::new(members),
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
