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
pub fn load_or_bootstrap(
    config: &ServerConfig,
    peer_tls: Option<&net::tls::ClientTlsSettings>,
) -> Result<Identity, String> {
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
        return join(config, peer_tls, member_dir, &meta_path);
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
/// `https://` peer URLs are read with the peer TLS settings (`--peer-cert-file` as client
/// certificate, `--peer-trusted-ca-file`), as the peer transport dials them.
fn fetch_cluster(
    config: &ServerConfig,
    peer_tls: Option<&net::tls::ClientTlsSettings>,
) -> Result<(u64, Vec<PeerMember>), String> {
    let mut own = config.initial_advertise_peer_urls.clone();
    own.sort();
    let mut agent = ureq::AgentBuilder::new().timeout(JOIN_FETCH_TIMEOUT);
    if let Some(settings) = peer_tls {
        let mut tls = (*settings.build().map_err(|e| format!("peer TLS: {e}"))?).clone();
        // `/members` is an HTTP/1.1 endpoint of the peer port.
        tls.alpn_protocols = vec![b"http/1.1".to_vec()];
        agent = agent.tls_config(std::sync::Arc::new(tls));
    }
    let agent = agent.build();
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
fn join(
    config: &ServerConfig,
    peer_tls: Option<&net::tls::ClientTlsSettings>,
    member_dir: PathBuf,
    meta_path: &Path,
) -> Result<Identity, String> {
    let (cluster_id, members) = fetch_cluster(config, peer_tls)?;
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
    use std::os::unix::fs::DirBuilderExt;
    let err = |e: std::io::Error| format!("cannot write {}: {e}", path.display());
    fs::DirBuilder::new()
        .recursive(true)
        .mode(PRIVATE_DIR_MODE)
        .create(dir)
        .map_err(err)?;
    let tmp = path.with_extension("tmp");
    // Fail point `meta-write` (server/src/supervise.rs): `return` fails this write with EIO.
    #[cfg(feature = "failpoints")]
    if fail::eval("meta-write", |_| ()).is_some() {
        return Err(err(std::io::Error::from_raw_os_error(libc::EIO)));
    }
    let mut f = fs::File::create(&tmp).map_err(err)?;
    f.write_all(bytes).map_err(err)?;
    f.sync_all().map_err(err)?;
    fs::rename(&tmp, path).map_err(err)?;
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(err)?;
    Ok(())
}

/// Permission bits of a data dir and the folders Cairn creates in it (etcd
/// `fileutil.PrivateDirMode`).
pub const PRIVATE_DIR_MODE: u32 = 0o700;

/// The lock file inside the data dir, held with `flock(LOCK_EX)` for the process's life;
/// it holds the owner's process ID (text) for the error a second process prints.
pub const LOCK_FILE_NAME: &str = "cairn.lock";

/// The data dir's exclusive lock; released when dropped (or when the process ends).
#[derive(Debug)]
pub struct DataDirLock {
    _file: fs::File,
}

/// Go's `os.FileMode.String` of a directory's mode (`drwxr-xr-x`), or of plain
/// permission bits with `dir == false` (`-rwx------`).
fn go_file_mode(mode: u32, dir: bool) -> String {
    let mut s = String::from(if dir { "d" } else { "-" });
    for (bit, c) in [
        (0o400, 'r'),
        (0o200, 'w'),
        (0o100, 'x'),
        (0o040, 'r'),
        (0o020, 'w'),
        (0o010, 'x'),
        (0o004, 'r'),
        (0o002, 'w'),
        (0o001, 'x'),
    ] {
        s.push(if mode & bit != 0 { c } else { '-' });
    }
    s
}

/// etcd's start-up checks of the data dir, before anything reads or writes it:
///
/// - a missing data dir is created with [`PRIVATE_DIR_MODE`] (etcd `fileutil.TouchDirAll`);
/// - an existing one with other permissions is used, after etcd's warning
///   "check file permission" (`fileutil.CheckDirPermission`'s text in `error`);
/// - it must be writable (etcd: `cannot access data directory: ...`);
/// - [`LOCK_FILE_NAME`] is locked exclusively without waiting: a data dir another
///   running process holds is refused with an error naming it and that process.
///
/// Returns the lock, to be kept for the life of the process, and whether the member was
/// already initialized (`member/meta.json` exists), as etcd's `member-initialized`.
pub fn prepare_data_dir(data_dir: &Path) -> Result<(DataDirLock, bool), String> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
    let access = |e: std::io::Error| format!("cannot access data directory: {e}");
    match fs::metadata(data_dir) {
        Ok(meta) if !meta.is_dir() => {
            return Err(format!(
                "cannot access data directory: {} is not a directory",
                data_dir.display()
            ))
        }
        Ok(meta) => {
            let mode = meta.mode() & 0o777;
            if mode != PRIVATE_DIR_MODE {
                tracing::warn!(
                    error = format!(
                        "directory {:?} exist, but the permission is {:?}. The recommended permission is {:?} to prevent possible unprivileged access to the data.",
                        data_dir.display().to_string(),
                        go_file_mode(mode, true),
                        go_file_mode(PRIVATE_DIR_MODE, false)
                    ),
                    "check file permission"
                );
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => fs::DirBuilder::new()
            .recursive(true)
            .mode(PRIVATE_DIR_MODE)
            .create(data_dir)
            .map_err(access)?,
        Err(e) => return Err(access(e)),
    }
    let lock_path = data_dir.join(LOCK_FILE_NAME);
    let mut file = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(&lock_path)
        .map_err(access)?;
    // SAFETY: flock on a file descriptor this function owns.
    let rc = unsafe {
        libc::flock(
            std::os::fd::AsRawFd::as_raw_fd(&file),
            libc::LOCK_EX | libc::LOCK_NB,
        )
    };
    if rc != 0 {
        let err = std::io::Error::last_os_error();
        if err.raw_os_error() == Some(libc::EWOULDBLOCK) {
            let owner = fs::read_to_string(&lock_path).unwrap_or_default();
            let owner = owner.trim();
            return Err(format!(
                "data dir {} is in use by another process{}: a data dir serves one member at a time (lock file {})",
                data_dir.display(),
                if owner.is_empty() {
                    String::new()
                } else {
                    format!(" (pid {owner})")
                },
                lock_path.display()
            ));
        }
        return Err(format!("cannot lock {}: {err}", lock_path.display()));
    }
    file.set_len(0).map_err(access)?;
    file.write_all(format!("{}\n", std::process::id()).as_bytes())
        .map_err(access)?;
    let initialized = data_dir.join("member").join("meta.json").exists();
    Ok((DataDirLock { _file: file }, initialized))
}

/// One peer to compare with in [`check_initial_corrupt`]: its member ID and peer URLs.
pub type CorruptCheckPeer = (u64, Vec<String>);

/// etcd's `--experimental-initial-corrupt-check` (`etcdserver/corrupt.go`
/// `CheckInitialHashKV`), run by a member that already has data, before it starts Raft
/// or serves clients: computes this member's HashKV at its current revision, asks every
/// other member (`peers`) for its HashKV at that revision over the peer transport
/// ([`crate::cluster::METHOD_HASH_KV`]), each within `request_timeout`, and compares.
///
/// - equal hashes, or a peer with a different compact revision ("found different compact
///   revision values from remote peer"), pass;
/// - a peer that cannot answer is skipped with etcd's "failed hash kv request" warning
///   (and "cannot fetch hash from slow remote peer" / "... local member is behind" for
///   etcd's future-revision and compacted errors);
/// - a different hash at the same compact revision is logged ("found different hash
///   values from remote peer") and fails the check with etcd's error text
///   `<id> found data inconsistency with peers`.
pub async fn check_initial_corrupt(
    local: &engine::MvccReader,
    identity: net::peer::PeerIdentity,
    peers: Vec<CorruptCheckPeer>,
    request_timeout: std::time::Duration,
) -> Result<(), String> {
    use net::pb::etcdserverpb::{HashKvRequest, HashKvResponse};
    use prost::Message as _;
    use tracing::{info, warn};
    let me = format!("{:x}", identity.member_id);
    info!(
        "local-member-id" = %me,
        timeout = %crate::logging::go_duration(request_timeout),
        "starting initial corruption check"
    );
    let (hash, compact, revision) = local
        .hash_kv(0)
        .map_err(|e| format!("{me} failed to fetch hash ({e})"))?;
    let compact = if compact == 0 { -1 } else { compact };
    let limits = net::peer::PeerLimits {
        request_timeout,
        ..net::peer::PeerLimits::default()
    };
    let transport = net::peer::PeerTransport::new(identity, limits);
    let mut mismatch = 0;
    for (id, urls) in peers {
        if urls.is_empty() || id == identity.member_id {
            continue;
        }
        let peer = format!("{id:x}");
        let endpoints = crate::logging::json(&urls);
        let answer = match transport.add_peer(id, urls.clone()) {
            Ok(()) => {
                let body = bytes::Bytes::from(HashKvRequest { revision }.encode_to_vec());
                let answer = transport
                    .request(id, crate::cluster::METHOD_HASH_KV, body)
                    .await
                    .and_then(|b| {
                        HashKvResponse::decode(b)
                            .map_err(|e| net::Status::new(net::Code::Internal, e.to_string()))
                    });
                transport.remove_peer(id);
                answer
            }
            Err(e) => Err(net::Status::new(net::Code::Unavailable, e.to_string())),
        };
        let resp = match answer {
            Ok(resp) => resp,
            Err(status) => {
                warn!(
                    "local-member-id" = %me,
                    "requested-revision" = revision,
                    "remote-peer-endpoint" = %urls.join(","),
                    error = %status.message,
                    "failed hash kv request"
                );
                let lagging = if status.message == crate::errors::future_rev().message {
                    Some("cannot fetch hash from slow remote peer")
                } else if status.message == crate::errors::compacted().message {
                    Some("cannot fetch hash from remote peer; local member is behind")
                } else {
                    None
                };
                if let Some(message) = lagging {
                    warn!(
                        "local-member-id" = %me,
                        "local-member-revision" = revision,
                        "local-member-compact-revision" = compact,
                        "local-member-hash" = hash,
                        "remote-peer-id" = %peer,
                        "remote-peer-endpoints" = %endpoints,
                        error = %status.message,
                        "{message}"
                    );
                }
                continue;
            }
        };
        if resp.hash == hash {
            continue;
        }
        let message = if resp.compact_revision == compact {
            mismatch += 1;
            "found different hash values from remote peer"
        } else {
            "found different compact revision values from remote peer"
        };
        warn!(
            "local-member-id" = %me,
            "local-member-revision" = revision,
            "local-member-compact-revision" = compact,
            "local-member-hash" = hash,
            "remote-peer-id" = %peer,
            "remote-peer-endpoints" = %endpoints,
            "remote-peer-revision" = resp.header.map_or(0, |h| h.revision),
            "remote-peer-compact-revision" = resp.compact_revision,
            "remote-peer-hash" = resp.hash,
            "{message}"
        );
    }
    transport.shutdown();
    if mismatch > 0 {
        return Err(format!("{me} found data inconsistency with peers"));
    }
    info!(
        "local-member-id" = %me,
        "initial corruption checking passed; no corruption"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn go_file_modes() {
        assert_eq!(go_file_mode(0o755, true), "drwxr-xr-x");
        assert_eq!(go_file_mode(0o700, false), "-rwx------");
        assert_eq!(go_file_mode(0o640, false), "-rw-r-----");
    }

    #[test]
    fn data_dir_created_private_and_locked_once() {
        let root = tempfile::tempdir().expect("tempdir");
        let dir = root.path().join("a").join("data");
        let (lock, initialized) = prepare_data_dir(&dir).expect("prepared");
        assert!(!initialized);
        let mode = fs::metadata(&dir).expect("exists").permissions().mode() & 0o777;
        assert_eq!(mode, PRIVATE_DIR_MODE);
        let err = prepare_data_dir(&dir).expect_err("locked");
        assert!(err.contains("is in use by another process"), "{err}");
        assert!(
            err.contains(&format!("(pid {})", std::process::id())),
            "{err}"
        );
        drop(lock);
        prepare_data_dir(&dir).expect("free again");
    }
}
