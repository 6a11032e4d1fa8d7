//! The start-up probe that keeps a second server off a client or metrics URL in use, and
//! the wait for a listener that a killed process left behind.
//!
//! Listeners bound with [`crate::bind_reuseport`] share a port with any other
//! `SO_REUSEPORT` socket of the same user, so a second server on the same URL would
//! silently take part of the traffic; etcd fails with "bind: address already in use"
//! instead. [`ensure_port_free`] binds a probe socket without `SO_REUSEPORT` first.
//!
//! A process killed with SIGKILL leaves its listening sockets open for a while: the kernel
//! tears its io_uring instances down asynchronously (`io_ring_exit_work`), and the accept
//! requests still in flight there hold each listening socket's file until then. Such a
//! listener belongs to no live process (no `/proc/<pid>/fd` entry links to its inode) and
//! is closed by the kernel within moments; a listener a live process owns is never shared.

use std::collections::HashSet;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use procfs::net::{TcpNetEntry, TcpState};
use procfs::process::FDTarget;

/// Longest wait, in milliseconds, for the kernel to close the listeners on a probed
/// address that no live process owns (those of a process that exited) before
/// [`ensure_port_free`] gives up with `AddrInUse`.
pub const ORPHAN_LISTENER_WAIT_MS_MAX: u64 = 5_000;
/// Pause between probes while waiting for such listeners to close, in milliseconds.
const ORPHAN_LISTENER_POLL_MS: u64 = 10;
const _: () = assert!(ORPHAN_LISTENER_POLL_MS < ORPHAN_LISTENER_WAIT_MS_MAX);

/// What a probe bind found.
#[derive(Debug)]
enum Probe {
    /// Nobody listens on the address.
    Free,
    /// A live process listens on the address (or that could not be ruled out): the
    /// probe's `AddrInUse` error.
    InUse(io::Error),
    /// Only listeners that no live process owns hold the address: the probe's `AddrInUse`
    /// error.
    Orphaned(io::Error),
}

/// Fails with `AddrInUse` when a live process listens on `addr`; call before
/// [`crate::bind_reuseport`]. A probe socket without `SO_REUSEPORT` (with `SO_REUSEADDR`,
/// as Go's listeners) binds only where nobody listens; it is closed again at once.
///
/// When the probe fails but no live process owns a listener on `addr` (they belong to a
/// process that exited and the kernel is still closing them, see the module doc), logs a
/// warning once and probes again every 10 ms until the address is
/// free, for at most [`ORPHAN_LISTENER_WAIT_MS_MAX`] ms; then fails with `AddrInUse` too.
/// Blocks the calling thread meanwhile: start-up only, before the executors run.
pub fn ensure_port_free(addr: SocketAddr) -> io::Result<()> {
    let wait_max = Duration::from_millis(ORPHAN_LISTENER_WAIT_MS_MAX);
    let started = Instant::now();
    let mut warned = false;
    loop {
        let in_use = match probe(addr)? {
            Probe::Free => return Ok(()),
            Probe::InUse(error) => return Err(error),
            Probe::Orphaned(error) => error,
        };
        if started.elapsed() >= wait_max {
            return Err(in_use);
        }
        if !warned {
            warned = true;
            tracing::warn!(
                address = %addr,
                "wait-max" = ?wait_max,
                "waiting for the kernel to close a listener of an exited process on the address (its io_uring is being torn down)"
            );
        }
        std::thread::sleep(Duration::from_millis(ORPHAN_LISTENER_POLL_MS));
    }
}

/// Binds a probe socket on `addr` (closed again at once) and, when that fails with
/// `AddrInUse`, tells whether a live process owns a listener there. Other errors of the
/// socket calls are returned as they are.
fn probe(addr: SocketAddr) -> io::Result<Probe> {
    let error = match bind_probe(addr) {
        Ok(()) => return Ok(Probe::Free),
        Err(error) if error.kind() == io::ErrorKind::AddrInUse => error,
        Err(error) => return Err(error),
    };
    if live_process_may_listen(addr) {
        Ok(Probe::InUse(error))
    } else {
        Ok(Probe::Orphaned(error))
    }
}

/// One bind of a socket without `SO_REUSEPORT` on `addr`.
fn bind_probe(addr: SocketAddr) -> io::Result<()> {
    use socket2::{Domain, Protocol, Socket, Type};
    let probe = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    probe.set_reuse_address(true)?;
    probe.bind(&addr.into())
}

/// True unless every listener that keeps `addr` from being bound is known to belong to no
/// live process. Reading `/proc/net/tcp` failing counts as true (cannot tell: refuse, as
/// before the wait existed), and so does a listener of another user that no process this
/// one may inspect owns (another user's `/proc/<pid>/fd` is not readable without root).
/// No listener at all (it closed since the probe) is false: the next probe tells.
fn live_process_may_listen(addr: SocketAddr) -> bool {
    let Ok(listeners) = listeners_conflicting_with(addr) else {
        return true;
    };
    if listeners.is_empty() {
        return false;
    }
    let inodes: HashSet<u64> = listeners.iter().map(|l| l.inode).collect();
    let owned = socket_inodes_open_in_live_processes(&inodes);
    let uid = procfs::process::Process::myself().and_then(|p| p.uid());
    listeners.iter().any(|listener| {
        owned.contains(&listener.inode)
            || match uid {
                Ok(uid) => uid != 0 && listener.uid != uid,
                Err(_) => true,
            }
    })
}

/// The listening sockets in `/proc/net/tcp` and `/proc/net/tcp6` (when IPv6 is there)
/// whose local address keeps a socket without `SO_REUSEPORT` from binding `addr`.
fn listeners_conflicting_with(addr: SocketAddr) -> procfs::ProcResult<Vec<TcpNetEntry>> {
    let mut entries = procfs::net::tcp()?;
    match procfs::net::tcp6() {
        Ok(v6) => entries.extend(v6),
        Err(procfs::ProcError::NotFound(_)) => {}
        Err(error) => return Err(error),
    }
    entries.retain(|e| e.state == TcpState::Listen && addresses_conflict(addr, e.local_address));
    Ok(entries)
}

/// Whether a listener on `listener` keeps `probe` from being bound: same port, and the
/// same address (an IPv4-mapped IPv6 address counts as its IPv4 one) or either side the
/// unspecified address of either family. `[::]` takes the IPv4 port too unless
/// `IPV6_V6ONLY` is set, which `/proc/net/tcp6` does not show: counted as conflicting.
fn addresses_conflict(probe: SocketAddr, listener: SocketAddr) -> bool {
    if probe.port() != listener.port() {
        return false;
    }
    let (probe_ip, listener_ip) = (canonical_ip(probe.ip()), canonical_ip(listener.ip()));
    probe_ip == listener_ip || probe_ip.is_unspecified() || listener_ip.is_unspecified()
}

/// `ip` with an IPv4-mapped IPv6 address (`::ffff:a.b.c.d`) turned into its IPv4 one.
fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        IpAddr::V4(_) => ip,
    }
}

/// Those of `inodes` that some live process has open as a socket (`/proc/<pid>/fd/N` →
/// `socket:[inode]`). Processes that exit meanwhile, or whose descriptors this process may
/// not read, are skipped.
fn socket_inodes_open_in_live_processes(inodes: &HashSet<u64>) -> HashSet<u64> {
    let mut open = HashSet::new();
    let Ok(processes) = procfs::process::all_processes() else {
        return open;
    };
    for process in processes.flatten() {
        let Ok(fds) = process.fd() else { continue };
        for fd in fds.flatten() {
            if let FDTarget::Socket(inode) = fd.target {
                if inodes.contains(&inode) {
                    open.insert(inode);
                }
            }
        }
    }
    open
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(text: &str) -> SocketAddr {
        text.parse().expect("socket address")
    }

    #[test]
    fn a_port_held_by_a_live_listener_is_in_use_without_waiting() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let held = listener.local_addr().expect("local_addr");
        // The decision, not a clock: a live owner means no wait at all.
        match probe(held).expect("probe") {
            Probe::InUse(error) => assert_eq!(error.kind(), io::ErrorKind::AddrInUse),
            other => panic!("expected InUse, got {other:?}"),
        }
        let error = ensure_port_free(held).expect_err("a live listener holds the port");
        assert_eq!(error.kind(), io::ErrorKind::AddrInUse);
        // The text the server's fatal "listen tcp ADDR: …" line carries, as before.
        assert!(
            error.to_string().starts_with("Address already in use"),
            "{error}"
        );
    }

    #[test]
    fn a_wildcard_live_listener_holds_the_loopback_address() {
        let listener = std::net::TcpListener::bind("0.0.0.0:0").expect("bind");
        let port = listener.local_addr().expect("local_addr").port();
        let loopback = SocketAddr::from(([127, 0, 0, 1], port));
        assert!(matches!(probe(loopback).expect("probe"), Probe::InUse(_)));
    }

    #[test]
    fn a_free_port_is_free() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let free = listener.local_addr().expect("local_addr");
        drop(listener);
        assert!(matches!(probe(free).expect("probe"), Probe::Free));
        ensure_port_free(free).expect("free");
    }

    #[test]
    fn conflicting_addresses() {
        let probe = addr("127.0.0.1:2379");
        assert!(addresses_conflict(probe, addr("127.0.0.1:2379")));
        assert!(addresses_conflict(probe, addr("0.0.0.0:2379")));
        assert!(addresses_conflict(probe, addr("[::]:2379")));
        assert!(addresses_conflict(probe, addr("[::ffff:127.0.0.1]:2379")));
        assert!(!addresses_conflict(probe, addr("127.0.0.1:2380")));
        assert!(!addresses_conflict(probe, addr("127.0.0.2:2379")));
        assert!(!addresses_conflict(probe, addr("[::1]:2379")));
        let wildcard = addr("0.0.0.0:2379");
        assert!(addresses_conflict(wildcard, addr("10.0.0.1:2379")));
        assert!(!addresses_conflict(wildcard, addr("10.0.0.1:2380")));
    }
}
