//! cairnctl: etcdctl's offline commands for Cairn and etcd data.
//!
//! ```text
//! cairnctl snapshot status FILE [-w simple|table|json]
//! cairnctl snapshot restore FILE [--data-dir DIR] [--name NAME]
//!          [--initial-cluster NAME=URL,...] [--initial-cluster-token TOKEN]
//!          [--initial-advertise-peer-urls URL,...] [--skip-hash-check]
//! cairnctl check disk --data-dir DIR [--writes 1000] [--record-bytes 2048]
//!          [--writers 4] [--json]
//! cairnctl check perf [--endpoints URL,...] [--load s|m|l|xl] [--prefix P]
//!          [--auto-compact] [--auto-defrag] [--duration-s 60] [TLS and --user flags]
//! ```
//!
//! Both read the bbolt files `etcdctl snapshot save` writes, from Cairn or from etcd
//! (`tools::snapshot`); flags, defaults, output and error texts are etcdctl 3.4's.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tools::snapshot::{self, RestoreConfig, StatusFormat};

#[derive(Parser)]
#[command(
    name = "cairnctl",
    version,
    about = "Offline tools for Cairn and etcd data"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Manages etcd node snapshots.
    #[command(subcommand)]
    Snapshot(SnapshotCommand),
    /// Checks whether the environment suits a consensus store.
    #[command(subcommand)]
    Check(CheckCommand),
}

#[derive(Subcommand)]
enum CheckCommand {
    /// Checks the performance of the etcd cluster (etcdctl's `check perf`: puts at the
    /// load's rate for 60 s, then PASS or FAIL; exit status 1 on FAIL).
    Perf {
        /// gRPC endpoints.
        #[arg(long, value_delimiter = ',', default_value = "127.0.0.1:2379")]
        endpoints: Vec<String>,
        /// The performance check's workload model. Accepted workloads: s(small), m(medium),
        /// l(large), xl(xLarge).
        #[arg(long, default_value = "s")]
        load: String,
        /// The prefix for writing the performance check's keys.
        #[arg(long, default_value = tools::check_perf::CHECK_PERF_PREFIX)]
        prefix: String,
        /// Compact storage with last revision after test is finished.
        #[arg(long)]
        auto_compact: bool,
        /// Defragment storage after test is finished.
        #[arg(long)]
        auto_defrag: bool,
        /// How long puts are sent, s (Cairn's own; etcdctl always runs 60 s).
        #[arg(long, default_value_t = 60)]
        duration_s: u64,
        /// Verify certificates of TLS-enabled secure servers using this CA bundle.
        #[arg(long)]
        cacert: Option<PathBuf>,
        /// Identify secure client using this TLS certificate file.
        #[arg(long)]
        cert: Option<PathBuf>,
        /// Identify secure client using this TLS key file.
        #[arg(long)]
        key: Option<PathBuf>,
        /// username:password for authentication.
        #[arg(long)]
        user: Option<String>,
    },
    /// Measures WAL-style appends + fdatasync on a disk (exit status 1 when it fails
    /// etcd's guidance: p99 under 10 ms).
    Disk {
        /// An empty (or missing) directory on the disk to measure.
        #[arg(long)]
        data_dir: PathBuf,
        /// Appends per writer and mode.
        #[arg(long, default_value_t = 1000)]
        writes: usize,
        /// Bytes per append.
        #[arg(long, default_value_t = 2048)]
        record_bytes: usize,
        /// Concurrent writers of the N-writer runs.
        #[arg(long, default_value_t = 4)]
        writers: usize,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum SnapshotCommand {
    /// Gets backend snapshot status of a given file.
    Status {
        /// The snapshot file.
        file: PathBuf,
        /// Output format (etcdctl's `-w`).
        #[arg(short = 'w', long = "write-out", value_enum, default_value = "simple")]
        write_out: StatusFormat,
    },
    /// Restores a member's data directory from a snapshot file.
    Restore {
        /// The snapshot file.
        file: PathBuf,
        /// Path to the data directory (default `<name>.etcd`).
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Human-readable name for this member.
        #[arg(long, default_value = "default")]
        name: String,
        /// Initial cluster configuration for restore bootstrap.
        #[arg(long, default_value = "default=http://localhost:2380")]
        initial_cluster: String,
        /// Initial cluster token for the etcd cluster during restore bootstrap.
        #[arg(long, default_value = "etcd-cluster")]
        initial_cluster_token: String,
        /// List of this member's peer URLs to advertise to the rest of the cluster.
        #[arg(long, default_value = "http://localhost:2380")]
        initial_advertise_peer_urls: String,
        /// Ignore snapshot integrity hash value (required if copied from data directory).
        #[arg(long)]
        skip_hash_check: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Ok(Some(true)): a check that ran and failed its verdict (exit status 1).
    let result = match cli.command {
        Command::Snapshot(SnapshotCommand::Status { file, write_out }) => snapshot::status(&file)
            .map(|s| print!("{}", snapshot::render_status(&s, write_out)))
            .map(|()| None),
        Command::Check(CheckCommand::Perf {
            endpoints,
            load,
            prefix,
            auto_compact,
            auto_defrag,
            duration_s,
            cacert,
            cert,
            key,
            user,
        }) => {
            return check_perf(
                endpoints,
                &load,
                prefix,
                (auto_compact, auto_defrag),
                duration_s,
                tools::ClientTls {
                    user,
                    cacert,
                    cert,
                    key,
                },
            )
        }
        Command::Check(CheckCommand::Disk {
            data_dir,
            writes,
            record_bytes,
            writers,
            json,
        }) => {
            let config = tools::disk_check::CheckDiskConfig {
                data_dir,
                writes,
                record_bytes,
                writers,
            };
            tools::disk_check::check_disk(&config).map(|r| {
                if json {
                    println!("{}", serde_json::to_string(&r).expect("report serializes"));
                } else {
                    print!("{}", tools::disk_check::render_text(&r));
                }
                Some(!r.pass)
            })
        }
        Command::Snapshot(SnapshotCommand::Restore {
            file,
            data_dir,
            name,
            initial_cluster,
            initial_cluster_token,
            initial_advertise_peer_urls,
            skip_hash_check,
        }) => {
            let config = RestoreConfig {
                snapshot: file,
                data_dir: data_dir.unwrap_or_else(|| PathBuf::from(format!("{name}.etcd"))),
                name,
                initial_cluster,
                initial_cluster_token,
                initial_advertise_peer_urls,
                skip_hash_check,
            };
            snapshot::restore(&config).map(|r| {
                restored(&config, &r);
                None
            })
        }
    };
    match result {
        Ok(Some(true)) => ExitCode::FAILURE,
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            // etcdctl's ExitWithError: "Error: <message>" on stderr, exit status 1.
            eprintln!("Error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// etcdctl's exit statuses (`ctlv3/command/error.go`).
const EXIT_INVALID_INPUT: u8 = 3;
/// See [`EXIT_INVALID_INPUT`].
const EXIT_BAD_FEATURE: u8 = 4;

/// `check perf`: etcdctl's progress-free output (the verdict lines, then `PASS`/`FAIL`),
/// its errors and exit statuses.
fn check_perf(
    endpoints: Vec<String>,
    load: &str,
    prefix: String,
    (auto_compact, auto_defrag): (bool, bool),
    duration_s: u64,
    tls: tools::ClientTls,
) -> ExitCode {
    let mut load = match tools::check_perf::PerfLoad::named(load) {
        Ok(load) => load,
        Err(e) => {
            eprintln!("Error: {e}");
            return ExitCode::from(EXIT_BAD_FEATURE);
        }
    };
    load.duration = std::time::Duration::from_secs(duration_s.max(1));
    let config = tools::check_perf::PerfConfig {
        endpoints,
        tls,
        load,
        prefix,
        auto_compact,
        auto_defrag,
        // etcdctl sends the puts without a deadline; a minute stands for none.
        request_timeout_ms: 60_000,
    };
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    match runtime.block_on(tools::check_perf::run_check_perf(&config)) {
        Ok(report) => {
            let (lines, ok) = report.verdict(&load);
            for line in lines {
                println!("{line}");
            }
            println!("{}", if ok { "PASS" } else { "FAIL" });
            if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(tools::BenchError::Refused(why)) => {
            eprintln!("Error: {why}");
            ExitCode::from(EXIT_INVALID_INPUT)
        }
        Err(e) => {
            eprintln!("Error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// What `snapshot restore` prints once done.
fn restored(config: &RestoreConfig, r: &snapshot::Restored) {
    println!(
        "restored snapshot {} into {} (member {:x}, cluster {:x}); start cairn with the same --name, --initial-cluster, --initial-cluster-token and --initial-advertise-peer-urls",
        config.snapshot.display(),
        r.db.display(),
        r.member_id,
        r.cluster_id
    );
}
