//! A controllable TCP proxy between the members of a test cluster (std threads, Linux only).
//!
//! Every member gets a *front* port: it advertises `http://127.0.0.1:<front>` as its peer URL
//! (`--initial-advertise-peer-urls`, `--initial-cluster`), and the proxy forwards whatever
//! arrives there to the member's real `--listen-peer-urls` port (its *target*). The test
//! can then cut the link between two members, isolate one member, or split the members
//! into partitions, and heal again.
//!
//! Links are undirected. etcd's peer transport (rafthttp) carries messages in both
//! directions over one connection: member A dials B's stream endpoint and B then writes
//! its messages *to A* on that connection's response. So a "link" A–B is every connection
//! from A to B's front port and from B to A's front port; blocking it closes the live
//! ones and refuses (accepts and closes at once) new ones until it is unblocked.
//!
//! Which member opened a connection is not visible on the wire in a portable way, so the
//! proxy looks it up: the accepted socket's remote port is the connecting socket's local
//! port; `/proc/net/tcp{,6}` gives that socket's inode and `/proc/<pid>/fd` of each member
//! process (pids are kept up to date by the cluster harness) tells whose it is. A
//! connection whose owner is not found (not a member process, or gone already) is refused
//! while its destination has any blocked link, and allowed otherwise.

use std::collections::HashSet;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

/// How long the proxy waits for a member's real peer port to accept a forwarded connection.
pub const UPSTREAM_CONNECT_TIMEOUT_MS: u64 = 2_000;
/// Size of the buffer each forwarding thread copies through.
pub const COPY_BUFFER_BYTES: usize = 64 * 1024;
/// Upper bound on simultaneously forwarded connections (each costs two threads).
pub const CONNECTIONS_MAX: usize = 1_000;

/// One proxied member: where it is reached and which process it is.
#[derive(Debug, Clone)]
struct ProxyMember {
    /// The port the proxy listens on (the member's advertised peer port).
    front_port: u16,
    /// The member's real `--listen-peer-urls` port, once known.
    target_port: Option<u16>,
    /// The running member process, if any.
    pid: Option<u32>,
}

/// A forwarded connection: both sockets and the two members it joins.
struct Connection {
    id: u64,
    /// The member that connected, if identified.
    source: Option<usize>,
    /// The member whose front port was dialled.
    destination: usize,
    /// The accepted socket (towards `source`).
    downstream: TcpStream,
    /// The socket to `destination`'s real peer port.
    upstream: TcpStream,
}

impl Connection {
    fn close(&self) {
        let _ = self.downstream.shutdown(Shutdown::Both);
        let _ = self.upstream.shutdown(Shutdown::Both);
    }
}

#[derive(Default)]
struct State {
    members: Vec<ProxyMember>,
    /// Blocked undirected links, stored as `(min, max)` member indexes.
    blocked: HashSet<(usize, usize)>,
    connections: Vec<Connection>,
    next_connection_id: u64,
}

impl State {
    /// Whether a connection from `source` (if known) to `destination` may pass.
    fn allows(&self, source: Option<usize>, destination: usize) -> bool {
        match source {
            Some(source) => !self.blocked.contains(&link(source, destination)),
            None => !self
                .blocked
                .iter()
                .any(|&(a, b)| a == destination || b == destination),
        }
    }

    /// Closes (and forgets) every live connection that the blocked set no longer allows.
    fn close_disallowed(&mut self) {
        let mut kept = Vec::with_capacity(self.connections.len());
        for connection in std::mem::take(&mut self.connections) {
            if self.allows(connection.source, connection.destination) {
                kept.push(connection);
            } else {
                connection.close();
            }
        }
        self.connections = kept;
    }
}

fn link(a: usize, b: usize) -> (usize, usize) {
    (a.min(b), a.max(b))
}

struct Shared {
    state: Mutex<State>,
    stopping: AtomicBool,
    /// Live forwarding threads, to bound them (see [`CONNECTIONS_MAX`]).
    live_connections: AtomicUsize,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The proxy: one listening thread per member plus two copying threads per connection.
/// Dropping it closes every listener and connection.
pub struct PeerProxy {
    shared: Arc<Shared>,
    listeners: Vec<JoinHandle<()>>,
}

impl Default for PeerProxy {
    fn default() -> Self {
        Self::new()
    }
}

impl PeerProxy {
    /// A proxy with no members yet.
    pub fn new() -> PeerProxy {
        PeerProxy {
            shared: Arc::new(Shared {
                state: Mutex::new(State::default()),
                stopping: AtomicBool::new(false),
                live_connections: AtomicUsize::new(0),
            }),
            listeners: Vec::new(),
        }
    }

    /// Adds member number `index` (must equal the number of members added so far): binds
    /// its front port on 127.0.0.1 and returns it. Connections arriving before
    /// [`PeerProxy::set_target`] are refused.
    pub fn add_member(&mut self, index: usize) -> u16 {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy front port");
        let front_port = listener.local_addr().expect("proxy local_addr").port();
        {
            let mut state = self.shared.lock();
            assert_eq!(
                state.members.len(),
                index,
                "proxy members are added in order"
            );
            state.members.push(ProxyMember {
                front_port,
                target_port: None,
                pid: None,
            });
        }
        let shared = Arc::clone(&self.shared);
        let handle = std::thread::Builder::new()
            .name(format!("proxy-accept-{index}"))
            .spawn(move || accept_loop(shared, listener, index))
            .expect("spawn proxy accept thread");
        self.listeners.push(handle);
        front_port
    }

    /// The front (advertised) port of `member`.
    pub fn front_port(&self, member: usize) -> u16 {
        self.shared.lock().members[member].front_port
    }

    /// Sets the real peer port that `member`'s front port forwards to.
    pub fn set_target(&self, member: usize, port: u16) {
        self.shared.lock().members[member].target_port = Some(port);
    }

    /// Records the process id of `member` (None while it is not running), used to tell
    /// which member opened a connection.
    pub fn set_pid(&self, member: usize, pid: Option<u32>) {
        self.shared.lock().members[member].pid = pid;
    }

    /// Cuts the link between members `a` and `b` (both directions): closes live
    /// connections between them and refuses new ones.
    pub fn block_link(&self, a: usize, b: usize) {
        assert_ne!(a, b, "a link joins two different members");
        let mut state = self.shared.lock();
        state.blocked.insert(link(a, b));
        state.close_disallowed();
    }

    /// Restores the link between members `a` and `b`.
    pub fn unblock_link(&self, a: usize, b: usize) {
        self.shared.lock().blocked.remove(&link(a, b));
    }

    /// Cuts every link of `member` (to every other member known to the proxy).
    pub fn isolate(&self, member: usize) {
        let mut state = self.shared.lock();
        for other in 0..state.members.len() {
            if other != member {
                state.blocked.insert(link(member, other));
            }
        }
        state.close_disallowed();
    }

    /// Splits the members into `groups`: every link between members of different groups
    /// is cut; links inside a group are left as they are. Members in no group are not
    /// touched.
    pub fn partition(&self, groups: &[&[usize]]) {
        let mut state = self.shared.lock();
        for (g, group) in groups.iter().enumerate() {
            for other_group in &groups[g + 1..] {
                for &a in group.iter() {
                    for &b in other_group.iter() {
                        state.blocked.insert(link(a, b));
                    }
                }
            }
        }
        state.close_disallowed();
    }

    /// Restores every link.
    pub fn heal(&self) {
        self.shared.lock().blocked.clear();
    }

    /// The currently blocked links as `(min, max)` member index pairs, sorted.
    pub fn blocked_links(&self) -> Vec<(usize, usize)> {
        let mut links: Vec<_> = self.shared.lock().blocked.iter().copied().collect();
        links.sort_unstable();
        links
    }
}

impl Drop for PeerProxy {
    fn drop(&mut self) {
        self.shared.stopping.store(true, Ordering::SeqCst);
        let fronts: Vec<u16> = {
            let mut state = self.shared.lock();
            for connection in state.connections.drain(..) {
                connection.close();
            }
            state.members.iter().map(|m| m.front_port).collect()
        };
        // Wake every blocking accept() so that its loop sees `stopping`.
        for port in fronts {
            let _ = TcpStream::connect_timeout(
                &SocketAddr::from(([127, 0, 0, 1], port)),
                Duration::from_millis(500),
            );
        }
        for handle in self.listeners.drain(..) {
            let _ = handle.join();
        }
    }
}

fn accept_loop(shared: Arc<Shared>, listener: TcpListener, destination: usize) {
    for incoming in listener.incoming() {
        if shared.stopping.load(Ordering::SeqCst) {
            return;
        }
        let Ok(downstream) = incoming else { continue };
        // Each connection is handled on its own thread: identifying the source reads /proc.
        let shared = Arc::clone(&shared);
        let _ = std::thread::Builder::new()
            .name(format!("proxy-conn-{destination}"))
            .spawn(move || handle_connection(shared, downstream, destination));
    }
}

fn handle_connection(shared: Arc<Shared>, downstream: TcpStream, destination: usize) {
    let (front_port, target_port, pids) = {
        let state = shared.lock();
        let member = &state.members[destination];
        let pids: Vec<(usize, u32)> = state
            .members
            .iter()
            .enumerate()
            .filter_map(|(i, m)| m.pid.map(|pid| (i, pid)))
            .collect();
        (member.front_port, member.target_port, pids)
    };
    let Some(target_port) = target_port else {
        return; // Not wired yet: dropping `downstream` refuses the connection.
    };
    if shared.live_connections.load(Ordering::SeqCst) >= CONNECTIONS_MAX {
        return;
    }
    let source = downstream
        .peer_addr()
        .ok()
        .and_then(|addr| socket_inode(addr.port(), front_port))
        .and_then(|inode| owner(inode, &pids));
    if !shared.lock().allows(source, destination) {
        return;
    }
    let Ok(upstream) = TcpStream::connect_timeout(
        &SocketAddr::from(([127, 0, 0, 1], target_port)),
        Duration::from_millis(UPSTREAM_CONNECT_TIMEOUT_MS),
    ) else {
        return;
    };
    let _ = downstream.set_nodelay(true);
    let _ = upstream.set_nodelay(true);
    let (Ok(down_read), Ok(up_read)) = (downstream.try_clone(), upstream.try_clone()) else {
        return;
    };
    let (Ok(down_keep), Ok(up_keep)) = (downstream.try_clone(), upstream.try_clone()) else {
        return;
    };
    let id = {
        let mut state = shared.lock();
        // Re-check under the lock that registers it: a block may have come meanwhile.
        if shared.stopping.load(Ordering::SeqCst) || !state.allows(source, destination) {
            return;
        }
        let id = state.next_connection_id;
        state.next_connection_id += 1;
        state.connections.push(Connection {
            id,
            source,
            destination,
            downstream: down_keep,
            upstream: up_keep,
        });
        id
    };
    shared.live_connections.fetch_add(1, Ordering::SeqCst);
    let halves_left = Arc::new(AtomicUsize::new(2));
    let spawn_half = |from: TcpStream, to: TcpStream| {
        let shared = Arc::clone(&shared);
        let halves_left = Arc::clone(&halves_left);
        std::thread::Builder::new()
            .name("proxy-copy".to_string())
            .spawn(move || {
                copy_until_closed(from, to);
                if halves_left.fetch_sub(1, Ordering::SeqCst) == 1 {
                    let mut state = shared.lock();
                    if let Some(at) = state.connections.iter().position(|c| c.id == id) {
                        state.connections.swap_remove(at).close();
                    }
                    shared.live_connections.fetch_sub(1, Ordering::SeqCst);
                }
            })
    };
    let forward = spawn_half(down_read, upstream);
    let backward = spawn_half(up_read, downstream);
    if forward.is_err() || backward.is_err() {
        // A half that did start exits once the sockets are closed, without reaching the
        // last-half cleanup, so the cleanup happens here.
        let mut state = shared.lock();
        if let Some(at) = state.connections.iter().position(|c| c.id == id) {
            state.connections.swap_remove(at).close();
        }
        shared.live_connections.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Copies `from` → `to` until EOF (then half-closes `to`) or an error (then closes both).
fn copy_until_closed(mut from: TcpStream, mut to: TcpStream) {
    let mut buffer = vec![0u8; COPY_BUFFER_BYTES];
    loop {
        match from.read(&mut buffer) {
            Ok(0) => {
                let _ = to.shutdown(Shutdown::Write);
                return;
            }
            Ok(n) => {
                if to.write_all(&buffer[..n]).is_err() {
                    break;
                }
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(_) => break,
        }
    }
    let _ = from.shutdown(Shutdown::Both);
    let _ = to.shutdown(Shutdown::Both);
}

/// The inode of the TCP socket whose local port is `local_port` and remote port is
/// `remote_port`, from `/proc/net/tcp` and `/proc/net/tcp6` (hex `ADDR:PORT` columns 2
/// and 3, inode column 10; see proc(5)).
fn socket_inode(local_port: u16, remote_port: u16) -> Option<u64> {
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.len() < 10 {
                continue;
            }
            let port = |field: &str| {
                field
                    .rsplit_once(':')
                    .and_then(|(_, p)| u16::from_str_radix(p, 16).ok())
            };
            if port(fields[1]) == Some(local_port) && port(fields[2]) == Some(remote_port) {
                return fields[9].parse().ok().filter(|&inode| inode != 0);
            }
        }
    }
    None
}

/// Which of `pids` (member index, pid) holds socket `inode` open.
fn owner(inode: u64, pids: &[(usize, u32)]) -> Option<usize> {
    let wanted = format!("socket:[{inode}]");
    pids.iter().find_map(|&(member, pid)| {
        let entries = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?;
        entries
            .flatten()
            .any(|entry| {
                std::fs::read_link(entry.path())
                    .map(|target| target.as_os_str() == wanted.as_str())
                    .unwrap_or(false)
            })
            .then_some(member)
    })
}
