//! The open-file limit (`RLIMIT_NOFILE`) and the cap on client connections per core that
//! follows from it (`net::ServerLimits::connections_max`).
//!
//! Go programs, etcd included, raise their soft limit to the hard limit at start (Go 1.19
//! `os` package); Cairn does the same. Every client connection is a file descriptor; if
//! clients could take them all, the WAL could not open its next segment and the server
//! would stop. So each core accepts at most its share of the descriptors left after
//! [`NON_CLIENT_FDS`]; etcd has no such limit (its listeners keep accepting until `accept`
//! fails with EMFILE).

/// File descriptors kept back from client connections, for everything else the process
/// opens: WAL and value segments, checkpoints and snapshots, listeners, peer connections,
/// each core's io_uring rings and eventfds, log files.
pub const NON_CLIENT_FDS: u64 = 512;

/// The fewest client connections a core accepts, whatever the file limit, so that a
/// process started with a tiny limit still serves.
pub const CONNECTIONS_PER_CORE_MIN: usize = 64;

/// Raises the soft `RLIMIT_NOFILE` to the hard limit, as Go's runtime does, and returns the
/// soft limit now in effect. Errors: the `getrlimit`/`setrlimit` calls' (the caller goes on
/// with the limit it has).
pub fn raise_nofile_limit() -> std::io::Result<u64> {
    rlimit::utils::increase_nofile_limit(u64::MAX)
}

/// The soft `RLIMIT_NOFILE` in effect. Errors: `getrlimit`'s.
pub fn nofile_limit() -> std::io::Result<u64> {
    rlimit::Resource::NOFILE.get().map(|(soft, _hard)| soft)
}

/// The cap on open client connections per core for a process allowed `nofile` descriptors
/// and running `cores` cores: the descriptors beyond [`NON_CLIENT_FDS`] shared equally
/// among the cores, at least [`CONNECTIONS_PER_CORE_MIN`].
pub fn connections_per_core_max(nofile: u64, cores: usize) -> usize {
    let share = nofile.saturating_sub(NON_CLIENT_FDS) / (cores.max(1) as u64);
    usize::try_from(share)
        .unwrap_or(usize::MAX)
        .max(CONNECTIONS_PER_CORE_MIN)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cores_share_what_is_left_after_the_reserve() {
        assert_eq!(connections_per_core_max(20_000, 2), 9_744);
        assert_eq!(connections_per_core_max(1_048_576, 8), 131_008);
        assert_eq!(connections_per_core_max(4_096, 1), 3_584);
    }

    #[test]
    fn a_tiny_limit_still_leaves_the_minimum() {
        assert_eq!(
            connections_per_core_max(1_024, 16),
            CONNECTIONS_PER_CORE_MIN
        );
        assert_eq!(connections_per_core_max(100, 1), CONNECTIONS_PER_CORE_MIN);
        assert_eq!(connections_per_core_max(0, 0), CONNECTIONS_PER_CORE_MIN);
    }

    #[test]
    fn an_unlimited_hard_limit_does_not_overflow() {
        assert_eq!(
            connections_per_core_max(u64::MAX, 1),
            usize::try_from(u64::MAX - NON_CLIENT_FDS).unwrap()
        );
    }

    #[test]
    fn raising_reaches_the_hard_limit() {
        let (_, hard) = rlimit::Resource::NOFILE.get().unwrap();
        let soft = raise_nofile_limit().unwrap();
        assert_eq!(nofile_limit().unwrap(), soft);
        // The kernel caps NOFILE at fs.nr_open even when the hard limit says infinity.
        assert!(soft == hard || hard == rlimit::INFINITY);
    }
}
