//! Three-member clusters of one target on loopback, and `compare-cluster`: the same put
//! phases against a Cairn cluster and an etcd cluster, one after the other.
//!
//! Members take etcd's clustering flags (etcd embed/config.go, etcd
//! Documentation/op-guide/clustering.md "Static"): `--initial-cluster
//! n1=http://127.0.0.1:P1,n2=…,n3=…`, `--initial-cluster-state new`,
//! `--initial-cluster-token`. A member restarted on its data dir gets the same flags;
//! both servers ignore the bootstrap flags once the data dir holds a WAL.
//!
//! Load is spread over all three members' client URLs: every connection is an
//! `etcd-client` `Client` given all endpoints, which balances requests over them
//! (tower's power-of-two-choices balancer), as etcd's own `tools/benchmark` does with
//! clientv3 and `--endpoints` listing every member. Puts that reach a follower are
//! forwarded to the leader, so the numbers include that hop, as a real client's would.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use etcd_client::{Client, ConnectOptions};
use serde::Serialize;

use crate::compare::{cpu_us_per_op, CompareConfig};
use crate::error::{BenchError, Result};
use crate::load::Bench;
use crate::procstat;
use crate::server::{free_port_list, probe_health, HEALTH_POLL_MS};
use crate::stats::us_to_ms;

/// Members of every cluster the harness starts (the smallest that survives one failure).
pub const CLUSTER_MEMBERS: usize = 3;
/// Deadline of one Maintenance `Status` call, including connecting, ms.
pub const STATUS_TIMEOUT_MS: u64 = 500;
/// Interval between rounds of `Status` calls while waiting for a leader, ms.
pub const STATUS_POLL_MS: u64 = 20;
/// Lines of a member's log quoted in an error.
const LOG_TAIL_LINES: usize = 15;
/// The `--initial-cluster-token` of every cluster the harness starts.
pub const CLUSTER_TOKEN: &str = "cairn-bench-cluster";

/// What one member says about itself in a Maintenance `Status` response
/// (etcd api/etcdserverpb/rpc.proto `StatusResponse`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct MemberStatus {
    /// The answering member's id (`header.member_id`).
    pub member_id: u64,
    /// The leader it knows of; 0 when it knows none.
    pub leader: u64,
    /// Its current Raft term.
    pub raft_term: u64,
    /// Its Raft committed index (`raft_index`).
    pub raft_index: u64,
}

/// The index of the member that is leader, from one status per member (`None` for a
/// member that did not answer).
///
/// A leader is a member whose status names itself as leader. Should two do so (a
/// deposed leader that has not heard of the new term yet), the higher term wins — Raft
/// allows at most one leader per term (Raft paper §5.2, Election Safety); two in the
/// same term are reported as no leader.
pub fn leader_index(statuses: &[Option<MemberStatus>]) -> Option<usize> {
    let mut best: Option<(usize, u64)> = None;
    let mut tie = false;
    for (index, status) in statuses.iter().enumerate() {
        let Some(status) = status else { continue };
        if status.leader == 0 || status.leader != status.member_id {
            continue;
        }
        match best {
            Some((_, term)) if term > status.raft_term => {}
            Some((_, term)) if term == status.raft_term => tie = true,
            _ => {
                best = Some((index, status.raft_term));
                tie = false;
            }
        }
    }
    if tie {
        return None;
    }
    best.map(|(index, _)| index)
}

/// The leader's index when every member answered and every one names that leader.
pub fn agreed_leader(statuses: &[Option<MemberStatus>]) -> Option<usize> {
    let leader = leader_index(statuses)?;
    let leader_id = statuses[leader]?.member_id;
    statuses
        .iter()
        .all(|s| s.is_some_and(|s| s.leader == leader_id))
        .then_some(leader)
}

/// `--initial-cluster` for members `(name, peer_port)`: `n1=http://127.0.0.1:P1,...`.
pub fn initial_cluster(members: &[(String, u16)]) -> String {
    members
        .iter()
        .map(|(name, port)| format!("{name}=http://127.0.0.1:{port}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// The etcd-style command line of one member of a new cluster on loopback.
pub fn cluster_member_args(
    name: &str,
    data_dir: &Path,
    client_port: u16,
    peer_port: u16,
    initial_cluster: &str,
) -> Vec<String> {
    let client_url = format!("http://127.0.0.1:{client_port}");
    let peer_url = format!("http://127.0.0.1:{peer_port}");
    [
        "--name",
        name,
        "--data-dir",
        &data_dir.display().to_string(),
        "--listen-client-urls",
        &client_url,
        "--advertise-client-urls",
        &client_url,
        "--listen-peer-urls",
        &peer_url,
        "--initial-advertise-peer-urls",
        &peer_url,
        "--initial-cluster",
        initial_cluster,
        "--initial-cluster-state",
        "new",
        "--initial-cluster-token",
        CLUSTER_TOKEN,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// One member process (running or killed) and what it takes to start it again.
struct Member {
    name: String,
    client_port: u16,
    args: Vec<String>,
    log_path: PathBuf,
    child: Option<Child>,
}

/// A running cluster of [`CLUSTER_MEMBERS`] members of one target, named `n1`, `n2`,
/// `n3`, each with its data dir and log in one temporary directory. Dropping it kills
/// every member (SIGKILL), reaps them and removes the directory.
pub struct Cluster {
    target: String,
    bin: PathBuf,
    members: Vec<Member>,
    // Declared last: removed after the children are dead.
    dir: tempfile::TempDir,
}

impl Cluster {
    /// Starts all members of a new cluster of `bin` on free loopback ports, then waits
    /// until each answers `/health` as healthy and all agree on a leader.
    ///
    /// Errors: [`BenchError::Io`] (temp dir, ports, spawn); [`BenchError::Server`] with
    /// the member's log tail if a member exits or the cluster is not ready within
    /// `startup_timeout`.
    pub async fn start(target: &str, bin: &Path, startup_timeout: Duration) -> Result<Cluster> {
        let dir = crate::server::temp_dir(&format!("cairn-bench-cluster-{target}-"))?;
        let ports = free_port_list(2 * CLUSTER_MEMBERS)?;
        let names: Vec<String> = (1..=CLUSTER_MEMBERS).map(|i| format!("n{i}")).collect();
        let peers: Vec<(String, u16)> = names
            .iter()
            .enumerate()
            .map(|(i, name)| (name.clone(), ports[2 * i + 1]))
            .collect();
        let initial = initial_cluster(&peers);
        let members = names
            .iter()
            .enumerate()
            .map(|(i, name)| {
                let data_dir = dir.path().join(name).join("data");
                Member {
                    name: name.clone(),
                    client_port: ports[2 * i],
                    args: cluster_member_args(
                        name,
                        &data_dir,
                        ports[2 * i],
                        ports[2 * i + 1],
                        &initial,
                    ),
                    log_path: dir.path().join(format!("{name}.log")),
                    child: None,
                }
            })
            .collect();
        let mut cluster = Cluster {
            target: target.to_string(),
            bin: bin.to_path_buf(),
            members,
            dir,
        };
        for index in 0..CLUSTER_MEMBERS {
            cluster.spawn(index)?;
        }
        let deadline = Instant::now() + startup_timeout;
        for index in 0..CLUSTER_MEMBERS {
            cluster.wait_healthy(index, deadline).await?;
        }
        cluster.wait_agreed_leader(deadline).await?;
        Ok(cluster)
    }

    fn spawn(&mut self, index: usize) -> Result<()> {
        let member = &self.members[index];
        std::fs::create_dir_all(self.dir.path().join(&member.name)).map_err(|source| {
            BenchError::Io {
                op: "create dir",
                path: self.dir.path().join(&member.name),
                source,
            }
        })?;
        let open_log = || -> Result<File> {
            OpenOptions::new()
                .create(true)
                .append(true)
                .open(&member.log_path)
                .map_err(|source| BenchError::Io {
                    op: "open",
                    path: member.log_path.clone(),
                    source,
                })
        };
        let child = Command::new(&self.bin)
            .args(&member.args)
            .stdin(Stdio::null())
            .stdout(open_log()?)
            .stderr(open_log()?)
            .spawn()
            .map_err(|source| BenchError::Io {
                op: "spawn",
                path: self.bin.clone(),
                source,
            })?;
        self.members[index].child = Some(child);
        Ok(())
    }

    /// Polls member `index`'s `/health` every [`HEALTH_POLL_MS`] ms until healthy.
    async fn wait_healthy(&mut self, index: usize, deadline: Instant) -> Result<()> {
        let poll = Duration::from_millis(HEALTH_POLL_MS);
        // Bounded by the deadline: each round sleeps at least `poll`.
        loop {
            if !self.is_running(index) {
                return Err(self.error(index, "exited during start-up".into()));
            }
            if probe_health(self.members[index].client_port, poll * 10).await {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(self.error(index, "not healthy before the deadline".into()));
            }
            tokio::time::sleep(poll).await;
        }
    }

    /// Waits until every member answers `Status` naming the same leader; returns it.
    async fn wait_agreed_leader(&mut self, deadline: Instant) -> Result<usize> {
        // Bounded by the deadline: each round sleeps STATUS_POLL_MS.
        loop {
            if let Some(leader) = agreed_leader(&self.statuses().await) {
                return Ok(leader);
            }
            if Instant::now() >= deadline {
                return Err(BenchError::Server {
                    name: self.target.clone(),
                    reason: "members did not agree on a leader before the deadline".into(),
                });
            }
            tokio::time::sleep(Duration::from_millis(STATUS_POLL_MS)).await;
        }
    }

    fn error(&self, index: usize, reason: String) -> BenchError {
        let member = &self.members[index];
        let log = std::fs::read_to_string(&member.log_path).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        let tail = lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n");
        BenchError::Server {
            name: format!("{} {}", self.target, member.name),
            reason: format!("{reason}; log tail:\n{tail}"),
        }
    }

    /// Number of members.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// Always false: a cluster has [`CLUSTER_MEMBERS`] members.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Member `index`'s name (`n1`…).
    pub fn member_name(&self, index: usize) -> &str {
        &self.members[index].name
    }

    /// Member `index`'s client URL, `http://127.0.0.1:<port>`.
    pub fn client_url(&self, index: usize) -> String {
        format!("http://127.0.0.1:{}", self.members[index].client_port)
    }

    /// Every member's client URL, in member order.
    pub fn client_urls(&self) -> Vec<String> {
        (0..self.len()).map(|i| self.client_url(i)).collect()
    }

    /// Member `index`'s process id, `None` while it is killed.
    pub fn pid(&self, index: usize) -> Option<u32> {
        self.members[index].child.as_ref().map(Child::id)
    }

    /// Whether member `index`'s process is running.
    pub fn is_running(&mut self, index: usize) -> bool {
        match self.members[index].child.as_mut() {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Member `index`'s `Status`, or `None` if it does not answer within
    /// [`STATUS_TIMEOUT_MS`] (killed, starting, or overloaded).
    pub async fn status(&self, index: usize) -> Option<MemberStatus> {
        member_status(&self.client_url(index)).await
    }

    /// Every member's `Status`, one after another, in member order.
    pub async fn statuses(&self) -> Vec<Option<MemberStatus>> {
        let mut statuses = Vec::with_capacity(self.len());
        for index in 0..self.len() {
            statuses.push(self.status(index).await);
        }
        statuses
    }

    /// Kills member `index` with SIGKILL and reaps it (its data dir stays).
    ///
    /// Errors: [`BenchError::Server`] if the member is not running.
    pub fn kill(&mut self, index: usize) -> Result<()> {
        let Some(mut child) = self.members[index].child.take() else {
            return Err(self.error(index, "kill: not running".into()));
        };
        // An error means the process already exited; the wait reaps it either way.
        let _ = child.kill();
        let _ = child.wait();
        Ok(())
    }

    /// Starts killed member `index` again on its data dir with the same flags, then
    /// waits until its `/health` is healthy or `timeout` passes.
    ///
    /// Errors: as [`Cluster::start`].
    pub async fn restart(&mut self, index: usize, timeout: Duration) -> Result<()> {
        if self.members[index].child.is_some() {
            return Err(self.error(index, "restart: still running".into()));
        }
        self.spawn(index)?;
        self.wait_healthy(index, Instant::now() + timeout).await
    }

    /// The target's name ("cairn", "etcd").
    pub fn target(&self) -> &str {
        &self.target
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for member in &mut self.members {
            if let Some(child) = member.child.as_mut() {
                // Errors mean the process is already gone; nothing else to do.
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

/// One Maintenance `Status` call on `url` with a fresh connection, bounded by
/// [`STATUS_TIMEOUT_MS`]; `None` on any failure.
pub async fn member_status(url: &str) -> Option<MemberStatus> {
    let timeout = Duration::from_millis(STATUS_TIMEOUT_MS);
    let call = async {
        let options = ConnectOptions::new()
            .with_connect_timeout(timeout)
            .with_timeout(timeout);
        let client = Client::connect([url], Some(options)).await.ok()?;
        let response = client.maintenance_client().status().await.ok()?;
        Some(MemberStatus {
            member_id: response.header()?.member_id(),
            leader: response.leader(),
            raft_term: response.raft_term(),
            raft_index: response.raft_index(),
        })
    };
    tokio::time::timeout(timeout, call).await.ok().flatten()
}

/// One line of the `compare-cluster` table.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClusterRow {
    /// Target name.
    pub target: String,
    /// Concurrent clients of the phase, spread over all members.
    pub clients: u32,
    /// Successful puts per second.
    pub ops_s: f64,
    /// Median put latency, ms.
    pub p50_ms: f64,
    /// 99th percentile put latency, ms.
    pub p99_ms: f64,
    /// CPU time (utime + stime) of all members together during the phase divided by
    /// successful puts, µs.
    pub server_cpu_us_per_op: f64,
    /// Each member's resident set size at the end of the phase, MiB, in member order.
    pub rss_mib: Vec<f64>,
    /// The leader's name at the start of the phase.
    pub leader: String,
    /// Failed puts.
    pub errors: u64,
}

/// The markdown table of `compare-cluster`: `target | clients | ops/s | p50 ms | p99 ms
/// | CPU µs/put (3 members) | RSS MiB n1/n2/n3 | leader`, one row per phase, then a
/// warning line per phase that had errors.
pub fn render_cluster_markdown(rows: &[ClusterRow]) -> String {
    let mut out = String::from(
        "| target | clients | ops/s | p50 ms | p99 ms | CPU µs/put (3 members) | RSS MiB n1/n2/n3 | leader |\n\
         |---|---:|---:|---:|---:|---:|---:|---|\n",
    );
    for row in rows {
        let rss: Vec<String> = row.rss_mib.iter().map(|m| format!("{m:.1}")).collect();
        out.push_str(&format!(
            "| {} | {} | {:.0} | {:.3} | {:.3} | {:.0} | {} | {} |\n",
            row.target,
            row.clients,
            row.ops_s,
            row.p50_ms,
            row.p99_ms,
            row.server_cpu_us_per_op,
            rss.join(" / "),
            row.leader,
        ));
    }
    for row in rows.iter().filter(|row| row.errors > 0) {
        out.push_str(&format!(
            "\nwarning: {} with {} clients had {} failed puts\n",
            row.target, row.clients, row.errors
        ));
    }
    out
}

/// CPU µs used so far by every member, summed; errors if a member is not running.
fn cluster_cpu_us(cluster: &Cluster) -> Result<u64> {
    let mut total = 0;
    for index in 0..cluster.len() {
        let pid = cluster.pid(index).ok_or_else(|| BenchError::Server {
            name: format!("{} {}", cluster.target(), cluster.member_name(index)),
            reason: "not running".into(),
        })?;
        total += procstat::sample(pid)?.cpu_us;
    }
    Ok(total)
}

/// Runs every target of `config` in turn as a [`CLUSTER_MEMBERS`]-member cluster: start
/// it, wait for health and a leader, run each put phase with the load spread over all
/// members, sample every member's CPU just before and after the phase's timed part,
/// then kill the cluster. `config.conns` and the sizes apply as in `compare`.
/// `progress` receives one line per step (for stderr).
///
/// Errors: invalid config, a cluster that does not start, a connection that fails, or
/// a member that dies during a phase.
pub async fn run_compare_cluster(
    config: &CompareConfig,
    mut progress: impl FnMut(&str),
) -> Result<Vec<ClusterRow>> {
    config.validate()?;
    let startup = Duration::from_millis(config.startup_timeout_ms);
    let mut rows = Vec::new();
    for target in &config.targets {
        progress(&format!(
            "{}: starting a {CLUSTER_MEMBERS}-member cluster of {}",
            target.name,
            target.bin.display()
        ));
        let mut cluster = Cluster::start(&target.name, &target.bin, startup).await?;
        for &clients in &config.clients {
            let leader = leader_index(&cluster.statuses().await)
                .map(|i| cluster.member_name(i).to_string())
                .unwrap_or_else(|| "none".into());
            let mut load = config.phase(cluster.client_url(0), clients);
            load.endpoints = cluster.client_urls();
            progress(&format!(
                "{}: {} puts, {} clients, {} conns over {} members (leader {leader})",
                target.name,
                load.total,
                load.clients,
                load.conns,
                cluster.len()
            ));
            let bench = Bench::connect(load).await?;
            let before = cluster_cpu_us(&cluster)?;
            let summary = bench.run().await;
            let after = cluster_cpu_us(&cluster)?;
            let mut rss_mib = Vec::with_capacity(cluster.len());
            for index in 0..cluster.len() {
                if !cluster.is_running(index) {
                    return Err(cluster.error(index, "exited during the run".into()));
                }
                let pid = cluster.pid(index).expect("running member has a pid");
                rss_mib.push(procstat::sample(pid)?.rss_bytes as f64 / (1024.0 * 1024.0));
            }
            rows.push(ClusterRow {
                target: target.name.clone(),
                clients,
                ops_s: summary.throughput_ops_s(),
                p50_ms: us_to_ms(summary.p50_us),
                p99_ms: us_to_ms(summary.p99_us),
                server_cpu_us_per_op: cpu_us_per_op(before, after, summary.ops),
                rss_mib,
                leader,
                errors: summary.errors,
            });
            progress(&format!(
                "{}: {}",
                target.name,
                summary.to_text().trim_end()
            ));
        }
        drop(cluster);
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(member_id: u64, leader: u64, raft_term: u64) -> Option<MemberStatus> {
        Some(MemberStatus {
            member_id,
            leader,
            raft_term,
            raft_index: 10,
        })
    }

    #[test]
    fn leader_is_the_member_naming_itself() {
        let statuses = [status(11, 22, 3), status(22, 22, 3), status(33, 22, 3)];
        assert_eq!(leader_index(&statuses), Some(1));
        assert_eq!(agreed_leader(&statuses), Some(1));
    }

    #[test]
    fn followers_alone_are_no_leader() {
        // The leader (22) did not answer: the others still name it, but it cannot be
        // located among the answers.
        let statuses = [status(11, 22, 3), None, status(33, 22, 3)];
        assert_eq!(leader_index(&statuses), None);
        assert_eq!(agreed_leader(&statuses), None);
        assert_eq!(leader_index(&[status(11, 0, 3), status(22, 0, 3)]), None);
        assert_eq!(leader_index(&[]), None);
    }

    #[test]
    fn higher_term_wins_over_a_deposed_leader() {
        // 11 was leader in term 3 and has not heard of term 4 yet; 33 leads term 4.
        let statuses = [status(11, 11, 3), status(22, 33, 4), status(33, 33, 4)];
        assert_eq!(leader_index(&statuses), Some(2));
        assert_eq!(agreed_leader(&statuses), None, "11 still names itself");
        let reversed = [status(33, 33, 4), status(22, 33, 4), status(11, 11, 3)];
        assert_eq!(leader_index(&reversed), Some(0));
    }

    #[test]
    fn two_leaders_in_one_term_are_no_leader() {
        let statuses = [status(11, 11, 5), status(22, 22, 5), status(33, 22, 5)];
        assert_eq!(leader_index(&statuses), None);
        // A higher term after the tie still decides.
        let statuses = [status(11, 11, 5), status(22, 22, 5), status(33, 33, 6)];
        assert_eq!(leader_index(&statuses), Some(2));
    }

    #[test]
    fn agreement_needs_every_member() {
        let statuses = [status(11, 22, 3), status(22, 22, 3), None];
        assert_eq!(leader_index(&statuses), Some(1));
        assert_eq!(agreed_leader(&statuses), None);
    }

    #[test]
    fn member_args_bootstrap_a_static_cluster() {
        let initial = initial_cluster(&[("n1".into(), 7001), ("n2".into(), 7003)]);
        assert_eq!(initial, "n1=http://127.0.0.1:7001,n2=http://127.0.0.1:7003");
        let args = cluster_member_args("n2", Path::new("/tmp/n2"), 7002, 7003, &initial);
        assert_eq!(
            args,
            vec![
                "--name",
                "n2",
                "--data-dir",
                "/tmp/n2",
                "--listen-client-urls",
                "http://127.0.0.1:7002",
                "--advertise-client-urls",
                "http://127.0.0.1:7002",
                "--listen-peer-urls",
                "http://127.0.0.1:7003",
                "--initial-advertise-peer-urls",
                "http://127.0.0.1:7003",
                "--initial-cluster",
                "n1=http://127.0.0.1:7001,n2=http://127.0.0.1:7003",
                "--initial-cluster-state",
                "new",
                "--initial-cluster-token",
                "cairn-bench-cluster",
            ]
        );
    }

    #[test]
    fn cluster_markdown_table() {
        let rows = vec![
            ClusterRow {
                target: "cairn".into(),
                clients: 1,
                ops_s: 812.4,
                p50_ms: 1.25,
                p99_ms: 3.0,
                server_cpu_us_per_op: 420.6,
                rss_mib: vec![20.0, 21.25, 19.5],
                leader: "n2".into(),
                errors: 0,
            },
            ClusterRow {
                target: "etcd".into(),
                clients: 100,
                ops_s: 5000.0,
                p50_ms: 18.0,
                p99_ms: 40.5,
                server_cpu_us_per_op: 300.0,
                rss_mib: vec![40.0, 41.0, 42.0],
                leader: "n1".into(),
                errors: 2,
            },
        ];
        assert_eq!(
            render_cluster_markdown(&rows),
            "| target | clients | ops/s | p50 ms | p99 ms | CPU µs/put (3 members) | RSS MiB n1/n2/n3 | leader |\n\
             |---|---:|---:|---:|---:|---:|---:|---|\n\
             | cairn | 1 | 812 | 1.250 | 3.000 | 421 | 20.0 / 21.2 / 19.5 | n2 |\n\
             | etcd | 100 | 5000 | 18.000 | 40.500 | 300 | 40.0 / 41.0 / 42.0 | n1 |\n\
             \nwarning: etcd with 100 clients had 2 failed puts\n"
        );
    }

    #[tokio::test]
    async fn missing_binary_is_an_io_error() {
        let err = Cluster::start(
            "none",
            Path::new("/nonexistent/cairn"),
            Duration::from_secs(1),
        )
        .await
        .err()
        .expect("binary does not exist");
        assert!(matches!(err, BenchError::Io { op: "spawn", .. }), "{err}");
    }

    #[tokio::test]
    async fn member_exiting_at_start_is_reported() {
        let err = Cluster::start("f", Path::new("false"), Duration::from_secs(5))
            .await
            .err()
            .expect("false exits");
        let text = err.to_string();
        assert!(
            text.starts_with("server f n1: exited during start-up"),
            "{text}"
        );
    }
}
