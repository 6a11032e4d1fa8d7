//! cairnctl: etcdctl's offline commands for Cairn and etcd data.
//!
//! ```text
//! cairnctl snapshot status FILE [-w simple|table|json]
//! cairnctl snapshot restore FILE [--data-dir DIR] [--name NAME]
//!          [--initial-cluster NAME=URL,...] [--initial-cluster-token TOKEN]
//!          [--initial-advertise-peer-urls URL,...] [--skip-hash-check]
//! cairnctl check disk --data-dir DIR [--writes 1000] [--record-bytes 2048]
//!          [--writers 4] [--json]
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
