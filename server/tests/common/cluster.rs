//! Multi-member clusters of the server under test (Cairn's `cairn` or upstream `etcd`, see
//! [`super::Target`]) on loopback, for membership and fault tests.
//!
//! A [`Cluster`] starts N members at once as a new cluster (`--initial-cluster` naming all
//! of them, `--initial-cluster-state new`, a token unique to the cluster), each on free
//! loopback client and peer ports with its own data dir under one temp dir. Optionally a
//! [`PeerProxy`] sits between the members' peer connections so that a test can cut links.
//! Helpers find the leader, kill -9 / SIGSTOP / SIGCONT / restart members, add and remove
//! members through the real `etcdctl member add|remove`, and wait (always with a bounded
//! deadline, panicking with what was awaited) until a condition holds.
//!
//! Every member's stdout and stderr go to `<root>/<name>/server-<spawn>.log`, beside its
//! data dir `<root>/<name>/data`; when a test panics the tail of every member's log is
//! printed. Every child is killed (SIGKILL) when the [`Cluster`] is dropped.
//!
//! Clusters in one test binary run one at a time (a process-wide lock is held by each
//! [`Cluster`]): on a 2-core machine concurrent clusters would starve each other's
//! heartbeats and turn fault tests into timing tests.

use super::proxy::PeerProxy;
use super::{etcdctl_at, free_port, is_healthy, run_to_exit, text, Target};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// `--heartbeat-interval` given to every member (etcd's default).
pub const HEARTBEAT_INTERVAL_MS: u64 = 100;
/// `--election-timeout` given to every member (etcd's default).
pub const ELECTION_TIMEOUT_MS: u64 = 1_000;
/// How long a whole new cluster may take until every member reports healthy.
pub const CLUSTER_STARTUP_TIMEOUT_MS: u64 = 60_000;
/// How long one (re)started or added member may take to report healthy.
pub const MEMBER_STARTUP_TIMEOUT_MS: u64 = 30_000;
/// How long the members may take to agree on a leader after a fault ("a few election
/// timeouts", generous because two cores are shared by several clusters' worth of work).
pub const LEADER_TIMEOUT_MS: u64 = 15 * ELECTION_TIMEOUT_MS;
/// How long members may take to converge (equal `endpoint hashkv`) after catching up.
pub const CONVERGE_TIMEOUT_MS: u64 = 60_000;
/// How long a member may take to exit by itself (e.g. after being removed).
pub const MEMBER_EXIT_TIMEOUT_MS: u64 = 20_000;
/// Interval between two polls of a condition.
pub const POLL_INTERVAL_MS: u64 = 50;
/// `--command-timeout` of the `etcdctl` calls that probe members (status, hashkv).
pub const PROBE_COMMAND_TIMEOUT_MS: u64 = 3_000;
/// `--command-timeout` of ordinary `etcdctl` calls made through the cluster.
pub const COMMAND_TIMEOUT_MS: u64 = 15_000;
/// How much of each member's log is printed when a test fails.
pub const LOG_TAIL_BYTES: usize = 6_000;
/// How long `member add|remove` is retried while the member that received it answers
/// `etcdserver: unhealthy cluster`: etcd (`--strict-reconfig-check`, on by default) only
/// reconfigures once it has been connected to every voting member (add) or to a quorum
/// after the change (remove) for `HealthInterval` = 5 s (etcdserver/server.go).
pub const RECONFIG_READY_TIMEOUT_MS: u64 = 20_000;
/// The error etcd gives while a reconfiguration would endanger quorum (rpctypes ErrUnhealthy).
pub const UNHEALTHY_CLUSTER_ERROR: &str = "etcdserver: unhealthy cluster";
/// How many times a new cluster is started again on fresh ports when a port was taken.
const PORT_RETRIES_MAX: u32 = 3;
/// Margin an `etcdctl` process gets beyond its own `--command-timeout` before it is killed.
const ETCDCTL_EXIT_MARGIN_MS: u64 = 10_000;

const _: () = assert!(HEARTBEAT_INTERVAL_MS * 5 <= ELECTION_TIMEOUT_MS);
const _: () = assert!(PROBE_COMMAND_TIMEOUT_MS < LEADER_TIMEOUT_MS);

/// Held by every live [`Cluster`]: clusters of one test binary run one at a time.
static SERIAL: Mutex<()> = Mutex::new(());
/// Makes initial-cluster tokens unique within the process.
static CLUSTER_COUNTER: AtomicU32 = AtomicU32::new(0);

/// Polls `probe` every [`POLL_INTERVAL_MS`] until it returns `Ok`, at most `timeout_ms`;
/// panics naming `what` and the last `Err` description otherwise.
pub fn wait_until<T>(
    what: &str,
    timeout_ms: u64,
    mut probe: impl FnMut() -> Result<T, String>,
) -> T {
    let deadline = Instant::now() + Duration::from_millis(timeout_ms);
    loop {
        let last = match probe() {
            Ok(value) => return value,
            Err(why) => why,
        };
        if Instant::now() > deadline {
            panic!("timed out after {timeout_ms} ms waiting for {what}; last observation: {last}");
        }
        std::thread::sleep(Duration::from_millis(POLL_INTERVAL_MS));
    }
}

/// Runs `etcdctl` (v3 API) against `endpoints` (comma-joined) with `--command-timeout` of
/// `timeout_ms`; the process is killed if it has not exited [`ETCDCTL_EXIT_MARGIN_MS`]
/// after that.
pub fn etcdctl_timeout(endpoints: &[String], timeout_ms: u64, args: &[&str]) -> Output {
    let mut command = Command::new("etcdctl");
    command
        .env("ETCDCTL_API", "3")
        .env_remove("ETCDCTL_ENDPOINTS")
        .arg(format!("--endpoints={}", endpoints.join(",")))
        .arg(format!("--command-timeout={timeout_ms}ms"))
        .arg("--dial-timeout=2s")
        .args(args);
    run_to_exit(command, timeout_ms + ETCDCTL_EXIT_MARGIN_MS)
}

/// Copies directory `from` recursively into `to` (created; must not exist).
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap_or_else(|e| panic!("create {}: {e}", to.display()));
    for entry in std::fs::read_dir(from).unwrap_or_else(|e| panic!("read {}: {e}", from.display()))
    {
        let entry = entry.expect("dir entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("file type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target)
                .unwrap_or_else(|e| panic!("copy {}: {e}", entry.path().display()));
        }
    }
}

/// What `etcdctl endpoint status -w json` reports for one member (etcd `StatusResponse`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberStatus {
    /// `header.cluster_id`.
    pub cluster_id: u64,
    /// `header.member_id`: the answering member.
    pub member_id: u64,
    /// `header.revision`.
    pub revision: i64,
    /// `header.raft_term`.
    pub raft_term: u64,
    /// `leader`: the member id this member believes leads, 0 for none.
    pub leader: u64,
    /// `raftIndex`.
    pub raft_index: u64,
    /// `raftAppliedIndex`.
    pub raft_applied_index: u64,
    /// `isLearner` (omitted from the JSON when false).
    pub is_learner: bool,
}

impl MemberStatus {
    /// Parses one element of `etcdctl endpoint status -w json`'s array.
    pub fn from_json(entry: &serde_json::Value) -> Option<MemberStatus> {
        let status = entry.get("Status")?;
        let header = status.get("header")?;
        let u =
            |v: &serde_json::Value, name: &str| v.get(name).and_then(|x| x.as_u64()).unwrap_or(0);
        Some(MemberStatus {
            cluster_id: u(header, "cluster_id"),
            member_id: u(header, "member_id"),
            revision: header.get("revision").and_then(|x| x.as_i64()).unwrap_or(0),
            raft_term: u(header, "raft_term"),
            leader: u(status, "leader"),
            raft_index: u(status, "raftIndex"),
            raft_applied_index: u(status, "raftAppliedIndex"),
            is_learner: status
                .get("isLearner")
                .and_then(|x| x.as_bool())
                .unwrap_or(false),
        })
    }
}

/// What `etcdctl endpoint hashkv -w json` reports for one member (etcd `HashKVResponse`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemberHashKv {
    /// `hash`: the hash of the MVCC key-value store up to `revision`.
    pub hash: u64,
    /// `header.revision`: the member's current revision.
    pub revision: i64,
    /// `compact_revision`, -1 when never compacted.
    pub compact_revision: i64,
}

/// One member of a [`Cluster`]: its ports, directories, flags and process.
#[derive(Debug)]
pub struct Member {
    /// `--name`.
    pub name: String,
    dir: PathBuf,
    data_dir: PathBuf,
    client_port: u16,
    listen_peer_port: u16,
    advertise_peer_port: u16,
    /// `--initial-cluster` (`name=peer-url,...`).
    pub initial_cluster: String,
    /// `--initial-cluster-state`: `new` or `existing`.
    pub initial_cluster_state: String,
    /// `--initial-cluster-token`.
    pub initial_cluster_token: String,
    /// Arguments appended after the standard ones (the cluster's common ones included).
    pub extra_args: Vec<String>,
    child: Option<Child>,
    spawns: u32,
    stopped: bool,
    removed: bool,
    id: Option<u64>,
}

impl Member {
    /// The client URL, `http://127.0.0.1:<port>`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.client_port)
    }

    /// The advertised peer URL (the proxy's front port when the cluster is proxied).
    pub fn peer_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.advertise_peer_port)
    }

    /// The URL given as `--listen-peer-urls`.
    pub fn listen_peer_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.listen_peer_port)
    }

    /// The client port.
    pub fn client_port(&self) -> u16 {
        self.client_port
    }

    /// The data directory, `<member dir>/data`.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The member's own directory (data dir and logs).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The member id learned from `endpoint status` once it served; None before.
    pub fn id(&self) -> Option<u64> {
        self.id
    }

    /// The command-line arguments the member is (re)started with.
    pub fn args(&self) -> Vec<String> {
        let client = self.endpoint();
        let mut args = vec![
            "--name".to_string(),
            self.name.clone(),
            "--data-dir".to_string(),
            self.data_dir.display().to_string(),
            "--listen-client-urls".to_string(),
            client.clone(),
            "--advertise-client-urls".to_string(),
            client,
            "--listen-peer-urls".to_string(),
            self.listen_peer_url(),
            "--initial-advertise-peer-urls".to_string(),
            self.peer_url(),
            "--initial-cluster".to_string(),
            self.initial_cluster.clone(),
            "--initial-cluster-state".to_string(),
            self.initial_cluster_state.clone(),
            "--initial-cluster-token".to_string(),
            self.initial_cluster_token.clone(),
            "--heartbeat-interval".to_string(),
            HEARTBEAT_INTERVAL_MS.to_string(),
            "--election-timeout".to_string(),
            ELECTION_TIMEOUT_MS.to_string(),
        ];
        args.extend(self.extra_args.iter().cloned());
        args
    }

    fn log_path(&self, spawn: u32) -> PathBuf {
        self.dir.join(format!("server-{spawn}.log"))
    }

    /// Output of the latest (re)start.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path(self.spawns)).unwrap_or_default()
    }

    /// Output of every start so far, oldest first.
    pub fn logs_all(&self) -> String {
        (1..=self.spawns)
            .map(|spawn| std::fs::read_to_string(self.log_path(spawn)).unwrap_or_default())
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The last `bytes_max` bytes (at most) of [`Member::log`].
    pub fn log_tail(&self, bytes_max: usize) -> String {
        let log = self.log();
        let mut start = log.len().saturating_sub(bytes_max);
        while !log.is_char_boundary(start) {
            start += 1;
        }
        log[start..].to_string()
    }

    /// True while the process has been spawned and has not exited (stopped counts).
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            None => false,
            Some(child) => child.try_wait().expect("try_wait").is_none(),
        }
    }

    /// The process id of the running child.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("member is not running").id()
    }
}

/// Options for starting a [`Cluster`].
#[derive(Clone, Debug)]
pub struct ClusterBuilder {
    size: usize,
    proxied: bool,
    args: Vec<String>,
}

impl ClusterBuilder {
    /// Number of members (default 3).
    pub fn size(mut self, size: usize) -> Self {
        assert!(size >= 1, "a cluster has at least one member");
        self.size = size;
        self
    }

    /// Whether peer traffic goes through a [`PeerProxy`] (default false).
    pub fn proxied(mut self, proxied: bool) -> Self {
        self.proxied = proxied;
        self
    }

    /// Extra arguments for every member (e.g. `--snapshot-count 1000`).
    pub fn args(mut self, args: &[&str]) -> Self {
        self.args.extend(args.iter().map(|a| a.to_string()));
        self
    }

    /// Starts every member at once and waits (at most [`CLUSTER_STARTUP_TIMEOUT_MS`])
    /// until each reports healthy; panics with their logs otherwise.
    pub fn start(self) -> Cluster {
        let serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        let root = tempfile::Builder::new()
            .prefix("cairn-cluster-")
            .tempdir()
            .expect("create cluster temp dir");
        let token = format!(
            "cairn-it-{}-{}",
            std::process::id(),
            CLUSTER_COUNTER.fetch_add(1, Ordering::SeqCst)
        );
        let mut cluster = Cluster {
            target: Target::from_env(),
            members: Vec::new(),
            proxy: None,
            token,
            common_args: self.args.clone(),
            root,
            _serial: serial,
        };
        let mut attempt = 0;
        loop {
            attempt += 1;
            cluster.create_initial_members(self.size, self.proxied);
            for i in 0..self.size {
                cluster.spawn(i);
            }
            match cluster.wait_members_healthy(
                &(0..self.size).collect::<Vec<_>>(),
                CLUSTER_STARTUP_TIMEOUT_MS,
            ) {
                Ok(()) => break,
                Err(why) => {
                    let port_taken = cluster
                        .members
                        .iter()
                        .any(|m| m.log().contains("address already in use"));
                    if attempt < PORT_RETRIES_MAX && port_taken {
                        cluster.discard_members();
                        continue;
                    }
                    panic!(
                        "{:?} cluster of {} did not start: {why}",
                        cluster.target, self.size
                    );
                }
            }
        }
        for i in 0..self.size {
            cluster.learn_id(i);
        }
        cluster
    }
}

/// A running cluster under test; see the module doc.
pub struct Cluster {
    target: Target,
    members: Vec<Member>,
    proxy: Option<PeerProxy>,
    token: String,
    common_args: Vec<String>,
    root: tempfile::TempDir,
    _serial: MutexGuard<'static, ()>,
}

impl Cluster {
    /// Starts a new cluster of `size` members without proxy and default flags.
    pub fn start(size: usize) -> Cluster {
        Cluster::builder().size(size).start()
    }

    /// A builder for non-default options.
    pub fn builder() -> ClusterBuilder {
        ClusterBuilder {
            size: 3,
            proxied: false,
            args: Vec::new(),
        }
    }

    /// The target under test.
    pub fn target(&self) -> Target {
        self.target
    }

    /// The `--initial-cluster-token` of the cluster.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// Number of members ever created (removed ones included; indexes stay stable).
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// Member `i`.
    pub fn member(&self, i: usize) -> &Member {
        &self.members[i]
    }

    /// Member `i`, to change its flags before a restart.
    pub fn member_mut(&mut self, i: usize) -> &mut Member {
        &mut self.members[i]
    }

    /// The proxy; panics if the cluster was not built with `proxied(true)`.
    pub fn proxy(&self) -> &PeerProxy {
        self.proxy
            .as_ref()
            .expect("cluster was started without a proxy")
    }

    /// The temp dir holding every member's directory.
    pub fn root(&self) -> &Path {
        self.root.path()
    }

    /// Indexes of members that run, are not SIGSTOPped and were not removed.
    pub fn serving(&mut self) -> Vec<usize> {
        (0..self.members.len())
            .filter(|&i| {
                let m = &mut self.members[i];
                !m.stopped && !m.removed && m.is_running()
            })
            .collect()
    }

    /// Client URL of member `i`.
    pub fn endpoint(&self, i: usize) -> String {
        self.members[i].endpoint()
    }

    /// Client URLs of the given members.
    pub fn endpoints_of(&self, members: &[usize]) -> Vec<String> {
        members
            .iter()
            .map(|&i| self.members[i].endpoint())
            .collect()
    }

    /// Client URLs of every serving member.
    pub fn endpoints(&mut self) -> Vec<String> {
        let serving = self.serving();
        self.endpoints_of(&serving)
    }

    /// The member id of member `i` (learned when it first served).
    pub fn member_id(&self, i: usize) -> u64 {
        self.members[i]
            .id
            .unwrap_or_else(|| panic!("member {} has not served yet", self.members[i].name))
    }

    /// The index of the member whose id is `id`.
    pub fn index_of_id(&self, id: u64) -> Option<usize> {
        self.members.iter().position(|m| m.id == Some(id))
    }

    fn create_initial_members(&mut self, size: usize, proxied: bool) {
        self.proxy = proxied.then(PeerProxy::new);
        let mut members = Vec::with_capacity(size);
        for i in 0..size {
            let name = format!("m{i}");
            let listen_peer_port = free_port();
            let advertise_peer_port = match self.proxy.as_mut() {
                Some(proxy) => {
                    let front = proxy.add_member(i);
                    proxy.set_target(i, listen_peer_port);
                    front
                }
                None => listen_peer_port,
            };
            members.push(self.new_member(name, listen_peer_port, advertise_peer_port));
        }
        let initial_cluster = members
            .iter()
            .map(|m| format!("{}={}", m.name, m.peer_url()))
            .collect::<Vec<_>>()
            .join(",");
        for member in &mut members {
            member.initial_cluster = initial_cluster.clone();
        }
        self.members = members;
    }

    fn new_member(&self, name: String, listen_peer_port: u16, advertise_peer_port: u16) -> Member {
        let dir = self.root.path().join(&name);
        std::fs::create_dir_all(&dir).expect("create member dir");
        Member {
            data_dir: dir.join("data"),
            dir,
            name,
            client_port: free_port(),
            listen_peer_port,
            advertise_peer_port,
            initial_cluster: String::new(),
            initial_cluster_state: "new".to_string(),
            initial_cluster_token: self.token.clone(),
            extra_args: self.common_args.clone(),
            child: None,
            spawns: 0,
            stopped: false,
            removed: false,
            id: None,
        }
    }

    /// Kills every member and deletes their directories (start-up retry on fresh ports).
    fn discard_members(&mut self) {
        for i in 0..self.members.len() {
            self.kill9(i);
        }
        for member in self.members.drain(..) {
            let _ = std::fs::remove_dir_all(&member.dir);
        }
        self.proxy = None;
    }

    /// Spawns member `i` with its current flags; does not wait for anything.
    pub fn spawn(&mut self, i: usize) {
        let target = self.target;
        let member = &mut self.members[i];
        assert!(
            member.child.is_none(),
            "member {} is already running",
            member.name
        );
        member.spawns += 1;
        member.stopped = false;
        let log = File::create(member.log_path(member.spawns)).expect("create member log");
        let child = target
            .command()
            .args(member.args())
            .current_dir(&member.dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone log handle"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {:?}: {e}", target.program()));
        let pid = child.id();
        member.child = Some(child);
        if let Some(proxy) = &self.proxy {
            proxy.set_pid(i, Some(pid));
        }
    }

    /// Waits until every member in `members` answers `GET /health` with healthy; `Err`
    /// names the first one that exited or was still unhealthy at the deadline.
    fn wait_members_healthy(&mut self, members: &[usize], timeout_ms: u64) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_millis(timeout_ms);
        let mut pending: Vec<usize> = members.to_vec();
        loop {
            pending.retain(|&i| !is_healthy(self.members[i].client_port));
            if pending.is_empty() {
                return Ok(());
            }
            for &i in &pending {
                let member = &mut self.members[i];
                if let Some(status) = member
                    .child
                    .as_mut()
                    .and_then(|c| c.try_wait().expect("try_wait"))
                {
                    member.child = None;
                    return Err(format!(
                        "member {} exited with {status} before it was healthy; its output:\n{}",
                        member.name,
                        member.log_tail(LOG_TAIL_BYTES)
                    ));
                }
            }
            if Instant::now() > deadline {
                let names: Vec<&str> = pending
                    .iter()
                    .map(|&i| self.members[i].name.as_str())
                    .collect();
                return Err(format!(
                    "members {names:?} not healthy within {timeout_ms} ms"
                ));
            }
            std::thread::sleep(Duration::from_millis(POLL_INTERVAL_MS));
        }
    }

    /// Waits (at most [`MEMBER_STARTUP_TIMEOUT_MS`]) until member `i` reports healthy.
    pub fn wait_healthy(&mut self, i: usize) {
        if let Err(why) = self.wait_members_healthy(&[i], MEMBER_STARTUP_TIMEOUT_MS) {
            panic!("{why}");
        }
    }

    /// Waits (at most [`MEMBER_STARTUP_TIMEOUT_MS`]) until every serving member reports
    /// healthy.
    pub fn wait_all_healthy(&mut self) {
        let serving = self.serving();
        if let Err(why) = self.wait_members_healthy(&serving, MEMBER_STARTUP_TIMEOUT_MS) {
            panic!("{why}");
        }
    }

    fn learn_id(&mut self, i: usize) {
        let status = wait_until(
            &format!("`endpoint status` of member {}", self.members[i].name),
            MEMBER_STARTUP_TIMEOUT_MS,
            || self.status(i),
        );
        self.members[i].id = Some(status.member_id);
    }

    /// `etcdctl endpoint status -w json` of member `i` alone.
    pub fn status(&self, i: usize) -> Result<MemberStatus, String> {
        let output = etcdctl_timeout(
            &[self.endpoint(i)],
            PROBE_COMMAND_TIMEOUT_MS,
            &["endpoint", "status", "-w", "json"],
        );
        let (code, stdout, stderr) = text(&output);
        if code != 0 {
            return Err(format!(
                "status of {} failed ({code}): {stderr}",
                self.members[i].name
            ));
        }
        let json: serde_json::Value =
            serde_json::from_str(&stdout).map_err(|e| format!("status JSON {stdout:?}: {e}"))?;
        json.as_array()
            .and_then(|a| a.first())
            .and_then(MemberStatus::from_json)
            .ok_or_else(|| format!("unexpected status JSON {stdout}"))
    }

    /// The leader as seen by `members` right now: `Ok(index)` when every one of them
    /// answers `endpoint status` naming the same leader and that leader is one of them.
    pub fn leader_among(&self, members: &[usize]) -> Result<usize, String> {
        let mut leader = None;
        for &i in members {
            let status = self.status(i)?;
            if status.leader == 0 {
                return Err(format!("{} has no leader", self.members[i].name));
            }
            match leader {
                None => leader = Some(status.leader),
                Some(l) if l == status.leader => {}
                Some(l) => {
                    return Err(format!(
                        "{} sees leader {:x}, another member {l:x}",
                        self.members[i].name, status.leader
                    ))
                }
            }
        }
        let leader = leader.ok_or("no members asked")?;
        match self.index_of_id(leader) {
            Some(index) if members.contains(&index) => Ok(index),
            _ => Err(format!("leader {leader:x} is not among the members asked")),
        }
    }

    /// Waits (at most [`LEADER_TIMEOUT_MS`]) until `members` agree on a leader among them.
    pub fn wait_leader_among(&self, members: &[usize]) -> usize {
        let names: Vec<&str> = members
            .iter()
            .map(|&i| self.members[i].name.as_str())
            .collect();
        wait_until(
            &format!("members {names:?} to agree on a leader among them"),
            LEADER_TIMEOUT_MS,
            || self.leader_among(members),
        )
    }

    /// Waits (at most [`LEADER_TIMEOUT_MS`]) until every serving member agrees on a leader.
    pub fn wait_leader(&mut self) -> usize {
        let serving = self.serving();
        self.wait_leader_among(&serving)
    }

    /// Serving members other than `leader`.
    pub fn followers(&mut self, leader: usize) -> Vec<usize> {
        self.serving()
            .into_iter()
            .filter(|&i| i != leader)
            .collect()
    }

    /// SIGKILLs member `i` and reaps it. No-op if it is not running.
    pub fn kill9(&mut self, i: usize) {
        let member = &mut self.members[i];
        if let Some(mut child) = member.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        member.stopped = false;
        if let Some(proxy) = &self.proxy {
            proxy.set_pid(i, None);
        }
    }

    fn signal(&mut self, i: usize, signal: i32) {
        let pid = i32::try_from(self.members[i].pid()).expect("pid fits i32");
        // SAFETY: plain kill(2) on our own child, which has not been reaped yet.
        let rc = unsafe { libc::kill(pid, signal) };
        assert_eq!(
            rc, 0,
            "kill({signal}) of member {} failed",
            self.members[i].name
        );
    }

    /// SIGSTOPs member `i` (it keeps its sockets but does nothing).
    pub fn stop(&mut self, i: usize) {
        self.signal(i, libc::SIGSTOP);
        self.members[i].stopped = true;
    }

    /// SIGCONTs member `i` after [`Cluster::stop`].
    pub fn cont(&mut self, i: usize) {
        self.signal(i, libc::SIGCONT);
        self.members[i].stopped = false;
    }

    /// SIGKILLs member `i` if it runs, starts it again with the same data dir and flags
    /// and waits until it is healthy.
    pub fn restart(&mut self, i: usize) {
        self.kill9(i);
        self.start_member(i);
    }

    /// Spawns member `i` and waits until it is healthy; learns its id.
    pub fn start_member(&mut self, i: usize) {
        self.spawn(i);
        self.wait_healthy(i);
        self.learn_id(i);
    }

    /// Waits (at most [`MEMBER_EXIT_TIMEOUT_MS`]) until member `i` exits by itself and
    /// returns its status; panics with its log otherwise.
    pub fn wait_exit(&mut self, i: usize) -> ExitStatus {
        let name = self.members[i].name.clone();
        let status = wait_until(
            &format!("member {name} to exit"),
            MEMBER_EXIT_TIMEOUT_MS,
            || {
                let child = self.members[i].child.as_mut().ok_or("it is not running")?;
                match child.try_wait().expect("try_wait") {
                    Some(status) => Ok(status),
                    None => Err("still running".to_string()),
                }
            },
        );
        self.members[i].child = None;
        if let Some(proxy) = &self.proxy {
            proxy.set_pid(i, None);
        }
        status
    }

    /// Allocates ports (and a proxy front port) for a new member called `name` and runs
    /// `etcdctl member add <name> --peer-urls=<url> [--learner]` through the serving
    /// members. On success the member is recorded (index returned, not started) with the
    /// `ETCD_INITIAL_CLUSTER` that etcdctl printed and state `existing`; the second value
    /// is etcdctl's stdout. Panics with etcdctl's output on failure.
    pub fn member_add(&mut self, name: &str, learner: bool) -> (usize, String) {
        let index = self.members.len();
        let listen_peer_port = free_port();
        let advertise_peer_port = match self.proxy.as_mut() {
            Some(proxy) => {
                let front = proxy.add_member(index);
                proxy.set_target(index, listen_peer_port);
                front
            }
            None => listen_peer_port,
        };
        let mut member = self.new_member(name.to_string(), listen_peer_port, advertise_peer_port);
        let peer_urls = format!("--peer-urls={}", member.peer_url());
        let mut args = vec!["member", "add", name, peer_urls.as_str()];
        if learner {
            args.push("--learner");
        }
        let endpoints = self.endpoints();
        let output = etcdctl_until_reconfig_ready(&endpoints, &args);
        let (code, stdout, stderr) = text(&output);
        assert_eq!(code, 0, "member add {name} failed: {stdout}{stderr}");
        member.initial_cluster = env_line(&stdout, "ETCD_INITIAL_CLUSTER")
            .unwrap_or_else(|| panic!("no ETCD_INITIAL_CLUSTER in member add output {stdout:?}"));
        member.initial_cluster_state = "existing".to_string();
        self.members.push(member);
        (index, stdout)
    }

    /// [`Cluster::member_add`] then [`Cluster::start_member`]; returns the new index.
    pub fn add_member(&mut self, name: &str, learner: bool) -> usize {
        let (index, _) = self.member_add(name, learner);
        self.start_member(index);
        index
    }

    /// Runs `etcdctl member remove <id hex>` for member `i` through the other serving
    /// members and returns its output; on success the member counts as removed (it is no
    /// longer among [`Cluster::serving`]; its process is left to exit by itself).
    pub fn member_remove(&mut self, i: usize) -> Output {
        let id = format!("{:x}", self.member_id(i));
        let others: Vec<usize> = self.serving().into_iter().filter(|&m| m != i).collect();
        let endpoints = self.endpoints_of(&others);
        let output = etcdctl_until_reconfig_ready(&endpoints, &["member", "remove", &id]);
        if output.status.success() {
            self.members[i].removed = true;
        }
        output
    }

    /// Gives member `i` a new (free) peer port, listened on and advertised, and returns its
    /// URL; the caller runs `member update` and restarts the member. Unproxied clusters only.
    pub fn move_peer_port(&mut self, i: usize) -> String {
        assert!(
            self.proxy.is_none(),
            "move_peer_port needs an unproxied cluster"
        );
        let port = free_port();
        let member = &mut self.members[i];
        member.listen_peer_port = port;
        member.advertise_peer_port = port;
        member.peer_url()
    }

    /// `etcdctl <args>` against member `i` (command timeout [`super::ETCDCTL_COMMAND_TIMEOUT`]).
    pub fn etcdctl(&self, i: usize, args: &[&str]) -> Output {
        etcdctl_at(&self.endpoint(i), args, "")
    }

    /// `etcdctl <args>` against every serving member (comma-joined endpoints).
    pub fn etcdctl_serving(&mut self, args: &[&str]) -> Output {
        let endpoints = self.endpoints();
        etcdctl_timeout(&endpoints, COMMAND_TIMEOUT_MS, args)
    }

    /// `etcdctl endpoint hashkv -w json` of member `i` alone.
    pub fn hashkv(&self, i: usize) -> Result<MemberHashKv, String> {
        let output = etcdctl_timeout(
            &[self.endpoint(i)],
            PROBE_COMMAND_TIMEOUT_MS,
            &["endpoint", "hashkv", "-w", "json"],
        );
        let (code, stdout, stderr) = text(&output);
        if code != 0 {
            return Err(format!(
                "hashkv of {} failed ({code}): {stderr}",
                self.members[i].name
            ));
        }
        let json: serde_json::Value =
            serde_json::from_str(&stdout).map_err(|e| format!("hashkv JSON {stdout:?}: {e}"))?;
        let entry = json
            .as_array()
            .and_then(|a| a.first())
            .and_then(|e| e.get("HashKV"))
            .ok_or_else(|| format!("unexpected hashkv JSON {stdout}"))?;
        Ok(MemberHashKv {
            hash: entry.get("hash").and_then(|x| x.as_u64()).unwrap_or(0),
            revision: entry
                .get("header")
                .and_then(|h| h.get("revision"))
                .and_then(|x| x.as_i64())
                .unwrap_or(0),
            compact_revision: entry
                .get("compact_revision")
                .and_then(|x| x.as_i64())
                .unwrap_or(0),
        })
    }

    /// Waits (at most [`CONVERGE_TIMEOUT_MS`]) until every member in `members` reports the
    /// same revision and hash from `endpoint hashkv`; returns that.
    pub fn wait_hashkv_equal(&self, members: &[usize]) -> MemberHashKv {
        let names: Vec<&str> = members
            .iter()
            .map(|&i| self.members[i].name.as_str())
            .collect();
        wait_until(
            &format!("equal `endpoint hashkv` (hash and revision) on {names:?}"),
            CONVERGE_TIMEOUT_MS,
            || {
                let all = members
                    .iter()
                    .map(|&i| self.hashkv(i))
                    .collect::<Result<Vec<_>, _>>()?;
                if all
                    .windows(2)
                    .all(|w| w[0].hash == w[1].hash && w[0].revision == w[1].revision)
                {
                    Ok(all[0])
                } else {
                    Err(format!("{all:?}"))
                }
            },
        )
    }

    /// A connected `etcd_client::Client` for member `i` alone (per-request timeout
    /// `timeout_ms`).
    pub async fn client(&self, i: usize, timeout_ms: u64) -> etcd_client::Client {
        let options = etcd_client::ConnectOptions::new()
            .with_timeout(Duration::from_millis(timeout_ms))
            .with_connect_timeout(Duration::from_secs(5));
        etcd_client::Client::connect([self.endpoint(i)], Some(options))
            .await
            .unwrap_or_else(|e| panic!("connect etcd_client to {}: {e}", self.members[i].name))
    }

    /// Whether any start of member `i` wrote `needle` to its log.
    pub fn log_contains(&self, i: usize, needle: &str) -> bool {
        self.members[i].logs_all().contains(needle)
    }
}

/// Runs a reconfiguration (`member add|remove`) through `endpoints`, again while it fails
/// with [`UNHEALTHY_CLUSTER_ERROR`] (at most [`RECONFIG_READY_TIMEOUT_MS`]); returns the
/// first other outcome.
fn etcdctl_until_reconfig_ready(endpoints: &[String], args: &[&str]) -> Output {
    wait_until(
        &format!(
            "`etcdctl {}` to stop answering `{UNHEALTHY_CLUSTER_ERROR}`",
            args.join(" ")
        ),
        RECONFIG_READY_TIMEOUT_MS,
        || {
            let output = etcdctl_timeout(endpoints, COMMAND_TIMEOUT_MS, args);
            let (_, _, stderr) = text(&output);
            if stderr.contains(UNHEALTHY_CLUSTER_ERROR) {
                Err(stderr)
            } else {
                Ok(output)
            }
        },
    )
}

/// The unquoted value of `NAME="value"` in `member add`'s output.
pub fn env_line(stdout: &str, name: &str) -> Option<String> {
    let prefix = format!("{name}=\"");
    stdout
        .lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .and_then(|rest| rest.strip_suffix('"'))
        .map(str::to_string)
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            for member in &self.members {
                eprintln!(
                    "===== member {} ({}, data dir {}), output of start {} (last {} bytes) =====\n{}",
                    member.name,
                    member.endpoint(),
                    member.data_dir.display(),
                    member.spawns,
                    LOG_TAIL_BYTES,
                    member.log_tail(LOG_TAIL_BYTES)
                );
            }
        }
        for i in 0..self.members.len() {
            self.kill9(i);
        }
    }
}
