//! cairn-bench: load generator and side-by-side harness for Cairn and etcd.
//!
//! ```text
//! cairn-bench put   --endpoints URL[,URL] --clients N --conns C --total OPS
//!                   --key-size 8 --val-size 256 --key-space K [--seq] [--json]
//! cairn-bench range ... [--serializable]
//! cairn-bench txn   ... [--txn-ops M]
//! cairn-bench compare --cairn-bin PATH --etcd-bin etcd [--clients 1,100] [--total N]
//! ```

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use tools::{
    parse_clients_list, render_markdown, run_compare, run_load, CompareConfig, LoadConfig, Target,
    Workload, CLIENTS_MAX,
};

#[derive(Parser, Debug)]
#[command(
    name = "cairn-bench",
    version,
    about = "Load generator for etcd-API servers (Cairn, etcd)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Puts of `--val-size` byte values.
    Put(LoadArgs),
    /// Gets of single keys (linearizable unless --serializable).
    Range {
        #[command(flatten)]
        load: LoadArgs,
        /// Serializable reads (served by the receiving member without consensus).
        #[arg(long)]
        serializable: bool,
    },
    /// Txns with no compares and --txn-ops puts each.
    Txn {
        #[command(flatten)]
        load: LoadArgs,
        /// Puts per Txn (1..=128).
        #[arg(long, default_value_t = 1)]
        txn_ops: u32,
    },
    /// Starts each server in turn and compares put throughput, latency, CPU and RSS.
    Compare(CompareArgs),
}

#[derive(Args, Debug)]
struct LoadArgs {
    /// Client URLs, comma separated.
    #[arg(long, value_delimiter = ',', default_value = "http://127.0.0.1:2379")]
    endpoints: Vec<String>,
    /// Concurrent clients (1..=10000).
    #[arg(long, default_value_t = 1)]
    clients: u32,
    /// gRPC connections shared by the clients (1..=clients).
    #[arg(long, default_value_t = 1)]
    conns: u32,
    /// Requests in all.
    #[arg(long, default_value_t = 10_000)]
    total: u64,
    /// Key size in bytes.
    #[arg(long, default_value_t = 8)]
    key_size: u32,
    /// Value size in bytes.
    #[arg(long, default_value_t = 256)]
    val_size: u32,
    /// Number of distinct keys.
    #[arg(long, default_value_t = 100_000)]
    key_space: u64,
    /// Sequential keys instead of uniformly random ones.
    #[arg(long)]
    seq: bool,
    /// Deadline of one request, ms.
    #[arg(long, default_value_t = 10_000)]
    request_timeout_ms: u64,
    /// Limit on the whole run, s; unsent requests are reported as skipped.
    #[arg(long, default_value_t = 600)]
    duration_max_s: u64,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

impl LoadArgs {
    fn config(&self, workload: Workload) -> LoadConfig {
        LoadConfig {
            endpoints: self.endpoints.clone(),
            clients: self.clients,
            conns: self.conns,
            total: self.total,
            key_size: self.key_size,
            val_size: self.val_size,
            key_space: self.key_space,
            seq: self.seq,
            workload,
            request_timeout_ms: self.request_timeout_ms,
            duration_max_s: self.duration_max_s,
        }
    }
}

#[derive(Args, Debug)]
struct CompareArgs {
    /// Cairn server binary (e.g. target/release/cairn).
    #[arg(long)]
    cairn_bin: PathBuf,
    /// Upstream etcd binary.
    #[arg(long, default_value = "etcd")]
    etcd_bin: PathBuf,
    /// Client counts, one put phase each, comma separated.
    #[arg(long, default_value = "1,100")]
    clients: String,
    /// Puts per phase.
    #[arg(long, default_value_t = 20_000)]
    total: u64,
    /// Connections per phase (default: one per 10 clients).
    #[arg(long)]
    conns: Option<u32>,
    /// Key size in bytes.
    #[arg(long, default_value_t = 8)]
    key_size: u32,
    /// Value size in bytes.
    #[arg(long, default_value_t = 256)]
    val_size: u32,
    /// Number of distinct keys.
    #[arg(long, default_value_t = 100_000)]
    key_space: u64,
    /// How long a server may take to become healthy, ms.
    #[arg(long, default_value_t = 20_000)]
    startup_timeout_ms: u64,
    /// Limit on one phase, s.
    #[arg(long, default_value_t = 120)]
    phase_duration_max_s: u64,
    /// Print the rows as a JSON array instead of a markdown table.
    #[arg(long)]
    json: bool,
}

impl CompareArgs {
    fn config(&self) -> tools::Result<CompareConfig> {
        let targets = vec![
            Target {
                name: "cairn".into(),
                bin: self.cairn_bin.clone(),
            },
            Target {
                name: "etcd".into(),
                bin: self.etcd_bin.clone(),
            },
        ];
        let mut config = CompareConfig::new(targets);
        config.clients = parse_clients_list(&self.clients, CLIENTS_MAX)?;
        config.total = self.total;
        config.conns = self.conns;
        config.key_size = self.key_size;
        config.val_size = self.val_size;
        config.key_space = self.key_space;
        config.startup_timeout_ms = self.startup_timeout_ms;
        config.phase_duration_max_s = self.phase_duration_max_s;
        config.validate()?;
        Ok(config)
    }
}

async fn load(args: &LoadArgs, workload: Workload) -> tools::Result<ExitCode> {
    let summary = run_load(args.config(workload)).await?;
    if args.json {
        println!("{}", summary.to_json());
    } else {
        print!("{}", summary.to_text());
    }
    Ok(if summary.ops == 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

async fn compare(args: &CompareArgs) -> tools::Result<ExitCode> {
    let config = args.config()?;
    let rows = run_compare(&config, |line| eprintln!("{line}")).await?;
    if args.json {
        println!("{}", serde_json::to_string(&rows).expect("rows serialize"));
    } else {
        print!("{}", render_markdown(&rows));
    }
    Ok(ExitCode::SUCCESS)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("cairn-bench: tokio runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(async {
        match &cli.command {
            Command::Put(args) => load(args, Workload::Put).await,
            Command::Range {
                load: args,
                serializable,
            } => {
                load(
                    args,
                    Workload::Range {
                        serializable: *serializable,
                    },
                )
                .await
            }
            Command::Txn {
                load: args,
                txn_ops,
            } => load(args, Workload::Txn { ops: *txn_ops }).await,
            Command::Compare(args) => compare(args).await,
        }
    });
    match outcome {
        Ok(code) => code,
        Err(e) => {
            eprintln!("cairn-bench: {e}");
            ExitCode::FAILURE
        }
    }
}
