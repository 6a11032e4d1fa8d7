//! cairnctl: etcdctl's offline commands for Cairn and etcd data.
//!
//! ```text
//! cairnctl snapshot status FILE [-w simple|table|json]
//! cairnctl snapshot restore FILE [--data-dir DIR] [--name NAME]
//!          [--initial-cluster NAME=URL,...] [--initial-cluster-token TOKEN]
//!          [--initial-advertise-peer-urls URL,...] [--skip-hash-check]
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
    let result = match cli.command {
        Command::Snapshot(SnapshotCommand::Status { file, write_out }) => {
            snapshot::status(&file).map(|s| print!("{}", snapshot::render_status(&s, write_out)))
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
                println!(
                    "restored snapshot {} into {} (member {:x}, cluster {:x}); start cairn with the same --name, --initial-cluster, --initial-cluster-token and --initial-advertise-peer-urls",
                    config.snapshot.display(),
                    r.db.display(),
                    r.member_id,
                    r.cluster_id
                )
            })
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // etcdctl's ExitWithError: "Error: <message>" on stderr, exit status 1.
            eprintln!("Error: {e}");
            ExitCode::FAILURE
        }
    }
}
