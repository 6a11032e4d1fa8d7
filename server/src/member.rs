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
    /// This member joined a running cluster (`--initial-cluster-state existing`): it starts
    /// with an empty member table and log, and `members` are the peers it first talks to.
    #[serde(default)]
    pub join: bool,
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
    /// The member table a new member bootstraps with (`--initial-cluster`); empty for a
    /// member that joined a running cluster.
    pub initial: Membership,
    /// Whether this member joined a running cluster.
    pub join: bool,
    /// The peers a joining member talks to until its member table names it.
    pub bootstrap_peers: Vec<(u64, Vec<String>)>,
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
        let listed: Vec<(u64, Vec<String>)> = meta
            .members
            .iter()
            .map(|m| Ok((parse_hex("member id", &m.id)?, m.peer_urls.clone())))
            .collect::<Result<_, String>>()?;
        if meta.join {
            return Ok(Identity {
                member_id,
                cluster_id: parse_hex("cluster_id", &meta.cluster_id)?,
                initial: Membership::default(),
                join: true,
                bootstrap_peers: listed,
                member_dir,
            });
        }
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
            join: false,
            bootstrap_peers: Vec::new(),
            member_dir,
        });
    }
    config.check_initial_cluster()?;
    if config.join_existing {
        return join(config, member_dir, &meta_path);
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
        join: false,
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
        join: false,
        bootstrap_peers: Vec::new(),
    })
}

/// How long a joining member waits for one peer's `/members` answer.
pub const JOIN_FETCH_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// One member as a peer's `/members` lists it (etcd `membership.Member` JSON: the ID as a
/// JSON number).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerMember {
    /// Member ID.
    pub id: u64,
    /// Peer URLs.
    #[serde(rename = "peerURLs")]
    pub peer_urls: Vec<String>,
    /// Name, once published.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// Client URLs, once published.
    #[serde(rename = "clientURLs", default, skip_serializing_if = "Vec::is_empty")]
    pub client_urls: Vec<String>,
    /// Learner flag.
    #[serde(
        rename = "isLearner",
        default,
        skip_serializing_if = "std::ops::Not::not"
    )]
    pub is_learner: bool,
}

/// The running cluster's ID and members, read from the first peer of `--initial-cluster`
/// (other than this member) that answers `GET /members` (etcd `GetClusterFromRemotePeers`).
fn fetch_cluster(config: &ServerConfig) -> Result<(u64, Vec<PeerMember>), String> {
    let mut own = config.initial_advertise_peer_urls.clone();
    own.sort();
    let agent = ureq::AgentBuilder::new()
        .timeout(JOIN_FETCH_TIMEOUT)
        .build();
    let mut failures = Vec::new();
    for (_, urls) in &config.initial_cluster {
        let mut sorted = urls.clone();
        sorted.sort();
        if sorted == own {
            continue;
        }
        for url in urls {
            let target = format!("{}/members", url.trim_end_matches('/'));
            let answer = agent.get(&target).call().map_err(|e| e.to_string());
            let parsed = answer.and_then(|r| {
                let cluster = r
                    .header("X-Etcd-Cluster-ID")
                    .ok_or("no X-Etcd-Cluster-ID header")?
                    .to_string();
                let cluster = u64::from_str_radix(&cluster, 16)
                    .map_err(|e| format!("bad cluster ID {cluster:?}: {e}"))?;
                let members: Vec<PeerMember> = r.into_json().map_err(|e| e.to_string())?;
                Ok((cluster, members))
            });
            match parsed {
                Ok(found) => return Ok(found),
                Err(e) => failures.push(format!("{target}: {e}")),
            }
        }
    }
    Err(format!(
        "could not retrieve cluster information from the given URLs ({})",
        if failures.is_empty() {
            "--initial-cluster names no other member".to_string()
        } else {
            failures.join("; ")
        }
    ))
}

/// Joins a running cluster (`--initial-cluster-state existing`): reads the cluster's
/// members from a peer, finds this member among them by its peer URLs (added before with
/// MemberAdd), and stores the identity.
fn join(config: &ServerConfig, member_dir: PathBuf, meta_path: &Path) -> Result<Identity, String> {
    let (cluster_id, members) = fetch_cluster(config)?;
    let mut own = config.initial_advertise_peer_urls.clone();
    own.sort();
    let me = members
        .iter()
        .find(|m| {
            let mut urls = m.peer_urls.clone();
            urls.sort();
            urls == own
        })
        .ok_or_else(|| {
            format!(
                "no member of cluster {cluster_id:x} has the peer URLs {}: add this member first (etcdctl member add {} --peer-urls={})",
                own.join(","),
                config.name,
                own.join(",")
            )
        })?;
    if !me.name.is_empty() {
        return Err(format!(
            "member {:x} has already been bootstrapped (it published the name {:?}); start it with its own data dir",
            me.id, me.name
        ));
    }
    let member_id = me.id;
    let bootstrap_peers: Vec<(u64, Vec<String>)> = members
        .iter()
        .filter(|m| m.id != member_id)
        .map(|m| (m.id, m.peer_urls.clone()))
        .collect();
    let meta = MemberMeta {
        name: config.name.clone(),
        member_id: hex(member_id),
        cluster_id: hex(cluster_id),
        voters: Vec::new(),
        members: bootstrap_peers
            .iter()
            .map(|(id, urls)| InitialMember {
                id: hex(*id),
                name: String::new(),
                peer_urls: urls.clone(),
            })
            .collect(),
        join: true,
    };
    write_durably(
        &member_dir,
        meta_path,
        &serde_json::to_vec_pretty(&meta).expect("serializable"),
    )?;
    Ok(Identity {
        member_dir,
        member_id,
        cluster_id,
        initial: Membership::default(),
        join: true,
        bootstrap_peers,
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
