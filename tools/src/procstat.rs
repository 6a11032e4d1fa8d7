//! Server-process accounting from `/proc`: CPU time (utime + stime) and resident memory.
//!
//! Formats are those of proc(5): `/proc/<pid>/stat` is one line whose second field,
//! `comm`, is parenthesised and may itself contain spaces and parentheses, so fields are
//! counted from the *last* `)`; utime and stime are fields 14 and 15 (1-based), in clock
//! ticks of `sysconf(_SC_CLK_TCK)`, and cover every thread of the process.
//! `/proc/<pid>/status` has lines `VmRSS:   12345 kB` and `RssAnon:   6789 kB`.

use std::path::PathBuf;

use crate::error::{BenchError, Result};

/// CPU time of a process in clock ticks, as read from `/proc/<pid>/stat`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuTicks {
    /// User-mode time, ticks (field 14).
    pub utime: u64,
    /// Kernel-mode time, ticks (field 15).
    pub stime: u64,
}

impl CpuTicks {
    /// utime + stime converted to µs at `ticks_per_s` ticks per second.
    pub fn total_us(&self, ticks_per_s: u64) -> u64 {
        ticks_to_us(self.utime + self.stime, ticks_per_s)
    }
}

/// One sample of a process: CPU time used so far and current resident set size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcSample {
    /// utime + stime since the process started, µs.
    pub cpu_us: u64,
    /// Resident set size (VmRSS), bytes.
    pub rss_bytes: u64,
}

fn stat_error(reason: impl Into<String>) -> BenchError {
    BenchError::ProcParse {
        what: "/proc/<pid>/stat",
        reason: reason.into(),
    }
}

/// Parses the text of `/proc/<pid>/stat` into its utime and stime.
///
/// Errors: [`BenchError::ProcParse`] when there is no `)` or fewer than 15 fields, or
/// a field is not a number.
pub fn parse_stat(text: &str) -> Result<CpuTicks> {
    let close = text
        .rfind(')')
        .ok_or_else(|| stat_error("no ')' closing the comm field"))?;
    // After "pid (comm)" come fields 3.. : state, ppid, ... utime is field 14.
    let fields: Vec<&str> = text[close + 1..].split_whitespace().collect();
    const UTIME_AFTER_COMM: usize = 14 - 3;
    const STIME_AFTER_COMM: usize = 15 - 3;
    let field = |index: usize, name: &str| -> Result<u64> {
        let raw = fields
            .get(index)
            .ok_or_else(|| stat_error(format!("only {} fields after comm", fields.len())))?;
        raw.parse()
            .map_err(|_| stat_error(format!("{name} {raw:?} is not a number")))
    };
    Ok(CpuTicks {
        utime: field(UTIME_AFTER_COMM, "utime")?,
        stime: field(STIME_AFTER_COMM, "stime")?,
    })
}

/// Parses the `VmRSS:` line of `/proc/<pid>/status` and returns bytes.
///
/// Errors: [`BenchError::ProcParse`] when the line is missing, is not in kB, or is not a
/// number. (A kernel thread or zombie has no VmRSS line.)
pub fn parse_status_rss_bytes(text: &str) -> Result<u64> {
    parse_status_kib_line(text, "VmRSS:", "/proc/<pid>/status VmRSS")
}

/// Parses the `RssAnon:` line of `/proc/<pid>/status` (resident anonymous memory:
/// heap and stacks, not the page cache of mapped files) and returns bytes.
///
/// Errors: as [`parse_status_rss_bytes`], for the `RssAnon` line.
pub fn parse_status_rss_anon_bytes(text: &str) -> Result<u64> {
    parse_status_kib_line(text, "RssAnon:", "/proc/<pid>/status RssAnon")
}

/// The value of the `<field> <n> kB` line of `/proc/<pid>/status`, in bytes.
fn parse_status_kib_line(text: &str, field: &str, what: &'static str) -> Result<u64> {
    let error = |reason: String| BenchError::ProcParse { what, reason };
    let name = field.trim_end_matches(':');
    let line = text
        .lines()
        .find(|line| line.starts_with(field))
        .ok_or_else(|| error(format!("no {name} line")))?;
    let mut parts = line[field.len()..].split_whitespace();
    let value = parts.next().unwrap_or("");
    let unit = parts.next().unwrap_or("");
    if unit != "kB" {
        return Err(error(format!("unit {unit:?} is not kB")));
    }
    let kib: u64 = value
        .parse()
        .map_err(|_| error(format!("{value:?} is not a number")))?;
    Ok(kib * 1024)
}

/// Converts clock ticks to µs; `ticks_per_s` must be positive.
pub fn ticks_to_us(ticks: u64, ticks_per_s: u64) -> u64 {
    assert!(ticks_per_s > 0);
    // u128 so that a long-lived process cannot overflow the multiplication.
    (ticks as u128 * 1_000_000 / ticks_per_s as u128) as u64
}

/// Clock ticks per second, `sysconf(_SC_CLK_TCK)` (100 on Linux in practice).
///
/// Errors: [`BenchError::ProcParse`] if sysconf reports no positive value.
pub fn clock_ticks_per_s() -> Result<u64> {
    // SAFETY: sysconf has no preconditions and touches no memory of ours.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks <= 0 {
        return Err(BenchError::ProcParse {
            what: "sysconf(_SC_CLK_TCK)",
            reason: format!("returned {ticks}"),
        });
    }
    Ok(ticks as u64)
}

fn read_proc(pid: u32, file: &str) -> Result<String> {
    let path = PathBuf::from(format!("/proc/{pid}/{file}"));
    std::fs::read_to_string(&path).map_err(|source| BenchError::Io {
        op: "read",
        path,
        source,
    })
}

/// Samples process `pid`: CPU µs from `/proc/<pid>/stat`, RSS from `/proc/<pid>/status`.
///
/// Errors: [`BenchError::Io`] if the process is gone, [`BenchError::ProcParse`] if a
/// file does not parse.
pub fn sample(pid: u32) -> Result<ProcSample> {
    let ticks_per_s = clock_ticks_per_s()?;
    let cpu = parse_stat(&read_proc(pid, "stat")?)?;
    let rss_bytes = parse_status_rss_bytes(&read_proc(pid, "status")?)?;
    Ok(ProcSample {
        cpu_us: cpu.total_us(ticks_per_s),
        rss_bytes,
    })
}

/// Resident anonymous memory of process `pid` (`RssAnon` of `/proc/<pid>/status`),
/// bytes.
///
/// Errors: [`BenchError::Io`] if the process is gone, [`BenchError::ProcParse`] if the
/// line does not parse.
pub fn rss_anon_bytes(pid: u32) -> Result<u64> {
    parse_status_rss_anon_bytes(&read_proc(pid, "status")?)
}

#[cfg(test)]
mod tests {
    use super::*;

    const STAT: &str = "4242 (etcd) S 1 4242 4242 0 -1 4194560 12000 0 3 0 \
        1500 250 0 0 20 0 12 0 98765 11811160064 9000 18446744073709551615 \
        1 1 0 0 0 0 0 0 2143420159 0 0 0 17 1 0 0 0 0 0\n";

    #[test]
    fn parses_utime_and_stime() {
        let ticks = parse_stat(STAT).unwrap();
        assert_eq!(
            ticks,
            CpuTicks {
                utime: 1500,
                stime: 250
            }
        );
        assert_eq!(ticks.total_us(100), 17_500_000);
    }

    #[test]
    fn comm_with_spaces_and_parens() {
        let text = STAT.replace("(etcd)", "(a b) (c))");
        assert_eq!(
            parse_stat(&text).unwrap(),
            CpuTicks {
                utime: 1500,
                stime: 250
            }
        );
    }

    #[test]
    fn bad_stat_is_an_error() {
        assert_eq!(
            parse_stat("12 etcd S 1").unwrap_err().to_string(),
            "parse /proc/<pid>/stat: no ')' closing the comm field"
        );
        assert_eq!(
            parse_stat("12 (etcd) S 1 2 3").unwrap_err().to_string(),
            "parse /proc/<pid>/stat: only 4 fields after comm"
        );
        let text = STAT.replace(" 1500 ", " x ");
        assert_eq!(
            parse_stat(&text).unwrap_err().to_string(),
            "parse /proc/<pid>/stat: utime \"x\" is not a number"
        );
    }

    #[test]
    fn parses_vmrss() {
        let status = "Name:\tetcd\nVmPeak:\t  999 kB\nVmRSS:\t   20480 kB\nThreads:\t12\n";
        assert_eq!(parse_status_rss_bytes(status).unwrap(), 20 * 1024 * 1024);
        assert_eq!(
            parse_status_rss_bytes("Name:\tx\n")
                .unwrap_err()
                .to_string(),
            "parse /proc/<pid>/status VmRSS: no VmRSS line"
        );
        assert!(parse_status_rss_bytes("VmRSS:\t12 MB\n").is_err());
        assert!(parse_status_rss_bytes("VmRSS:\tlots kB\n").is_err());
    }

    #[test]
    fn parses_rss_anon() {
        let status = "Name:\tcairn\nVmRSS:\t   20480 kB\nRssAnon:\t    8192 kB\n\
                      RssFile:\t   12288 kB\n";
        assert_eq!(
            parse_status_rss_anon_bytes(status).unwrap(),
            8 * 1024 * 1024
        );
        assert_eq!(
            parse_status_rss_anon_bytes("VmRSS:\t1 kB\n")
                .unwrap_err()
                .to_string(),
            "parse /proc/<pid>/status RssAnon: no RssAnon line"
        );
        assert!(parse_status_rss_anon_bytes("RssAnon:\t1 MB\n").is_err());
    }

    #[test]
    fn ticks_convert_exactly() {
        assert_eq!(ticks_to_us(1, 100), 10_000);
        assert_eq!(ticks_to_us(3, 1000), 3_000);
        assert_eq!(ticks_to_us(1_000_000_000_000, 100), 10_000_000_000_000_000);
        assert_eq!(ticks_to_us(7, 3), 2_333_333);
    }

    #[test]
    fn samples_own_process() {
        let sample = sample(std::process::id()).unwrap();
        assert!(sample.rss_bytes > 0);
        assert!(rss_anon_bytes(std::process::id()).unwrap() > 0);
        assert!(clock_ticks_per_s().unwrap() > 0);
    }
}
