//! cairn-bench: load generator and side-by-side harness for Cairn and etcd.
//!
//! ```text
//! cairn-bench put   --endpoints URL[,URL] --clients N --conns C (--total OPS | --duration S)
//!                   [--rate R] [--target-leader] [--user NAME:PW]
//!                   [--cacert CA --cert CERT --key KEY]   (https endpoints, as etcdctl)
//!                   --key-size 8 --val-size 256 --key-space-size K [--sequential-keys] [--json]
//! cairn-bench range ... [--consistency l|s] [--serializable]
//! cairn-bench txn-put ... [--txn-ops M]                   (`txn` too)
//! cairn-bench txn-mixed ... [--rw-ratio 1] [--limit 1] [--end-range KEY] [--consistency l|s]
//! cairn-bench lease-keepalive ...
//! cairn-bench stm ... [--keys-per-txn 1]   (--keys = --key-space-size)
//! cairn-bench kube ... [--kube-objects 1000] [--kube-page-size 500] [--kube-event-ttl-s 60]
//!                   [--kube-watchers 4] [--kube-compact-interval-s 10]
//!                   [--kube-mix update=50,get=20,list=10,event=20]
//! cairn-bench watch --endpoints URL --streams 10 --watch-per-stream 100
//!                   --watched-key-total 1 --put-total 1000 [--json]
//! cairn-bench compare --cairn-bin PATH --etcd-bin etcd [--clients 1,100] [--total N]
//! cairn-bench compare --cairn-bin PATH --etcd-bin etcd --workloads put,range,txn-put,...
//!                   [--rounds N] [--cluster] [--clients 100] [--total N | --duration S]
//!                   [--rate R] [--rw-ratio 1 --limit 1 --end-range KEY] [--out-dir DIR]
//!                   [--json [FILE]]
//! cairn-bench compare-cluster --cairn-bin PATH --etcd-bin etcd [--clients 1,100] [--json]
//! cairn-bench failover --target cairn|etcd --bin PATH [--kills 10] [--clients 10] [--json]
//! cairn-bench watch-latency --endpoints URL --watchers 1000 --streams 10 --puts 2000
//!                   [--prefix-mode shared|distinct|key] [--json]
//! cairn-bench watch-memory  --endpoints URL --pid PID --watchers 1000 --streams 10 [--json]
//! cairn-bench compare-watch --cairn-bin PATH --etcd-bin etcd [--watchers 1000] [--json]
//! cairn-bench mixed --endpoints URL --duration-s 60 --clients 100 [--conns 10]
//!                   [--mix put=45,range=45,lease=10] [--watchers 1000 --watch-streams 10]
//!                   [--max-p9999-ms 100] [--json]
//! cairn-bench scale [--cairn-bin target/release/cairn] [--etcd-bin etcd | --no-etcd]
//!                   [--keys 1000000] [--value-bytes 1024] [--clients 1000]
//!                   [--connections 100] [--json FILE]
//! ```
//!
//! The load subcommands follow etcd's `tools/benchmark` (flag names and semantics):
//! `--rate` limits requests/s over all clients (request n waits for `start + n/rate`),
//! `--duration` runs for that many seconds instead of `--total` requests,
//! `--target-leader` sends only to the endpoint whose Status names itself leader, the
//! older `--key-space` and `--seq` stay as aliases. Each prints throughput and
//! p50/p90/p99/p99.9/max (hdrhistogram), or one JSON object with `--json` (fields
//! `op`, `requests`, `ops`, `errors`, `throughput_ops_s`, `p*_ms`, `counters`), and its
//! own CPU share (getrusage over the run, % of one core and of all cores) with a warning
//! when it exceeds 90% of a core per tokio worker thread, i.e. the load generator is
//! the bottleneck. A progress bar is drawn on stderr when it is a terminal, the run
//! lasts over 2 s and `--json` is not given. `kube` is kube-apiserver's request pattern
//! (optimistic-concurrency Txns retried on conflict as `GuaranteedUpdate` does, paginated
//! lists at a revision, leased events, watchers
//! with prev_kv and progress notify, compaction through `compact_rev_key`); see the
//! library's `kube` module.
//!
//! `compare` with any of `--workloads`, `--rounds`, `--cluster`, `--out-dir` runs the
//! workload matrix: each round starts each target in turn (cairn, then etcd) on a fresh
//! data dir, one member or a 3-member loopback cluster, and runs the workloads in the
//! given order with identical flags; it prints a Markdown table of medians, min–max
//! and cairn/etcd ratios of ops/s, p50…max, server CPU µs per request and peak server
//! RSS (`watch` and `watch-latency` count events: events/s, watch creation or
//! put→event latency, server CPU µs per event), writes the report to `--json FILE`,
//! and `compare.md`, `latency.{png,svg}` and `throughput.{png,svg}` into `--out-dir`. Without those flags `compare` keeps its
//! put phases per client count.
//!
//! `scale` (issue 8) starts each server in turn (etcd only when a binary is found), loads
//! `--keys` keys, then measures anonymous RSS and disk use, 1-client put latency while a
//! linearizable range reads every key, and the restart time after kill -9 and SIGTERM.
//! It prints a markdown table with one column per server.
//!
//! `compare-cluster` starts a 3-member cluster of each server in turn and spreads the
//! clients over all three members' client URLs (as etcd's benchmark tool does when given
//! every endpoint). `failover` kills the leader of a 3-member cluster under load
//! `--kills` times and reads back every acknowledged put.
//!
//! Watch prefixes: by default (`--prefix-mode shared`) every watcher watches the
//! prefix the writer writes to, `/registry/pods/ns0/`, so each put fans out to all
//! watchers; `--prefix-mode distinct` gives watcher `w` its own `/registry/pods/ns{w}/`
//! and spreads the puts over them (one event per put); `--prefix-mode key` gives watcher
//! `w` the single key `/registry/pods/ns{w}/pod` (no prefix) and spreads the puts over
//! those keys (one event per put, single-key watchers).
//!
//! `mixed` runs puts, linearizable ranges and lease RPCs (grant, attached put, one
//! keep-alive, revoke) by weight for `--duration-s` while the watchers drain events,
//! prints a progress line to stderr every 10 s, and reports count, errors and
//! p50/p99/p99.9/p99.99/max per RPC type plus put→event latency. It exits non-zero if
//! any request failed, a watch event is missing, or a p99.99 exceeds `--max-p9999-ms`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

#[path = "../cli/load_args.rs"]
mod load_args;
use load_args::{LoadCommand, MatrixArgs, TlsArgs};
use tools::{
    default_conns, parse_clients_list, render_cluster_markdown, render_markdown,
    render_scale_markdown, render_watch_markdown, run_compare, run_compare_cluster,
    run_compare_watch, run_failover, run_load_report, run_mixed, run_scale, run_watch_latency,
    run_watch_memory, CompareConfig, FailoverConfig, Mix, MixedConfig, PrefixMode, ScaleConfig,
    Target, WatchConfig, CLIENTS_MAX,
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
    #[command(flatten)]
    Load(LoadCommand),
    /// Starts each server in turn and compares put throughput, latency, CPU and RSS.
    Compare(CompareArgs),
    /// Starts a 3-member cluster of each server in turn and compares put throughput,
    /// latency, CPU of all members and each member's RSS; clients spread over all members.
    CompareCluster(CompareArgs),
    /// Kills the leader of a 3-member cluster under put load, --kills times; reports
    /// failover times and checks that every acknowledged put can be read back.
    Failover(FailoverArgs),
    /// Put→event latency: many watchers on a few streams, one sequential writer.
    WatchLatency {
        #[command(flatten)]
        watch: WatchArgs,
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Server RSS growth per 1,000 idle watchers (the server's pid is sampled).
    WatchMemory {
        #[command(flatten)]
        watch: WatchArgs,
        /// Process id of the server behind --endpoints.
        #[arg(long)]
        pid: u32,
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Starts each server in turn and runs watch-memory then watch-latency on it.
    CompareWatch {
        /// Cairn server binary (e.g. target/release/cairn).
        #[arg(long)]
        cairn_bin: PathBuf,
        /// Upstream etcd binary.
        #[arg(long, default_value = "etcd")]
        etcd_bin: PathBuf,
        #[command(flatten)]
        watch: WatchArgs,
        /// How long a server may take to become healthy, ms.
        #[arg(long, default_value_t = 20_000)]
        startup_timeout_ms: u64,
        /// Print the rows as a JSON array instead of a markdown table.
        #[arg(long)]
        json: bool,
    },
    /// Mixed load for a long latency run: puts, linearizable ranges and lease RPCs by
    /// weight while watchers drain events; p50…p99.99 per RPC type and put→event.
    Mixed(MixedArgs),
    /// Issue 8's scale benchmark, each server in turn: load N keys (p99/p99.9/max),
    /// anonymous RSS and disk use, 1-client put latency during a full-prefix range,
    /// restart time after kill -9 and SIGTERM.
    Scale(ScaleArgs),
}

#[derive(Args, Debug)]
struct ScaleArgs {
    /// Cairn server binary.
    #[arg(long, default_value = "target/release/cairn")]
    cairn_bin: PathBuf,
    /// Upstream etcd binary, a path or a name on PATH (default: `etcd` on PATH, left
    /// out with a note when there is none).
    #[arg(long)]
    etcd_bin: Option<PathBuf>,
    /// Measure Cairn only.
    #[arg(long, conflicts_with = "etcd_bin")]
    no_etcd: bool,
    /// Keys loaded, `/scale/%012d` (1..=100000000).
    #[arg(long, default_value_t = 1_000_000)]
    keys: u64,
    /// Random bytes per value.
    #[arg(long, default_value_t = 1024)]
    value_bytes: u32,
    /// Concurrent load clients, one put in flight each.
    #[arg(long, default_value_t = 1_000)]
    clients: u32,
    /// gRPC connections shared by the load clients (1..=clients).
    #[arg(long, default_value_t = 100)]
    connections: u32,
    /// --quota-backend-bytes of every server (8 GiB: room for the load in etcd).
    #[arg(long, default_value_t = tools::QUOTA_BACKEND_BYTES_DEFAULT)]
    quota_backend_bytes: u64,
    /// --snapshot-count of every server (etcd 3.4's default).
    #[arg(long, default_value_t = tools::SNAPSHOT_COUNT_DEFAULT)]
    snapshot_count: u64,
    /// Sequential 1-client puts of the baseline (no range running).
    #[arg(long, default_value_t = 1_000)]
    baseline_puts: u64,
    /// Skip the restart after kill -9.
    #[arg(long)]
    no_kill9: bool,
    /// How long a fresh server may take to become healthy, ms.
    #[arg(long, default_value_t = 60_000)]
    startup_timeout_ms: u64,
    /// Deadline of one put, ms.
    #[arg(long, default_value_t = 10_000)]
    request_timeout_ms: u64,
    /// Limit on the load, s; unsent puts are reported as skipped.
    #[arg(long, default_value_t = 3_600)]
    load_duration_max_s: u64,
    /// Deadline of the full-prefix range, ms.
    #[arg(long, default_value_t = 600_000)]
    range_timeout_ms: u64,
    /// Longest wait from a restart's spawn to its first answered read, ms.
    #[arg(long, default_value_t = 600_000)]
    restart_timeout_ms: u64,
    /// Also write the report as JSON to FILE.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
}

impl ScaleArgs {
    /// The run's parameters for `targets` (see [`ScaleArgs::targets`]).
    fn config(&self, targets: Vec<Target>) -> tools::Result<ScaleConfig> {
        let mut config = ScaleConfig::new(targets);
        config.keys = self.keys;
        config.value_bytes = self.value_bytes;
        config.clients = self.clients;
        config.connections = self.connections;
        config.quota_backend_bytes = self.quota_backend_bytes;
        config.snapshot_count = self.snapshot_count;
        config.baseline_puts = self.baseline_puts;
        config.kill9 = !self.no_kill9;
        config.startup_timeout_ms = self.startup_timeout_ms;
        config.request_timeout_ms = self.request_timeout_ms;
        config.load_duration_max_s = self.load_duration_max_s;
        config.range_timeout_ms = self.range_timeout_ms;
        config.restart_timeout_ms = self.restart_timeout_ms;
        config.validate()?;
        Ok(config)
    }

    /// Cairn, then etcd when found: the targets, and the servers left out with why.
    ///
    /// Errors: no Cairn binary at --cairn-bin, or no etcd binary at an --etcd-bin given.
    fn targets(&self) -> tools::Result<(Vec<Target>, Vec<String>)> {
        let invalid = |flag: &'static str, path: &std::path::Path, hint: &str| {
            tools::BenchError::InvalidArg {
                flag,
                reason: format!("{} is not a file{hint}", path.display()),
            }
        };
        let cairn = tools::find_binary(&self.cairn_bin).ok_or_else(|| {
            invalid(
                "cairn-bin",
                &self.cairn_bin,
                " (cargo build --release -p server)",
            )
        })?;
        let mut targets = vec![Target {
            name: "cairn".into(),
            bin: cairn,
        }];
        let mut skipped = Vec::new();
        match (&self.etcd_bin, self.no_etcd) {
            (_, true) => skipped.push("etcd: --no-etcd".to_string()),
            (Some(bin), false) => {
                let etcd = tools::find_binary(bin).ok_or_else(|| invalid("etcd-bin", bin, ""))?;
                targets.push(Target {
                    name: "etcd".into(),
                    bin: etcd,
                });
            }
            (None, false) => match tools::find_binary(std::path::Path::new("etcd")) {
                Some(etcd) => targets.push(Target {
                    name: "etcd".into(),
                    bin: etcd,
                }),
                None => skipped.push(
                    "etcd: no etcd binary on PATH (apt-get install etcd-server, or --etcd-bin)"
                        .to_string(),
                ),
            },
        }
        Ok((targets, skipped))
    }
}

#[derive(Args, Debug)]
struct MixedArgs {
    /// Client URLs, comma separated.
    #[arg(long, value_delimiter = ',', default_value = "http://127.0.0.1:2379")]
    endpoints: Vec<String>,
    /// Length of the load, s (the issue 9 acceptance run uses 1800).
    #[arg(long, default_value_t = 60)]
    duration_s: u64,
    /// Concurrent clients, one request in flight each (1..=10000).
    #[arg(long, default_value_t = 100)]
    clients: u32,
    /// gRPC connections shared by the clients (default: one per 10 clients).
    #[arg(long)]
    conns: Option<u32>,
    /// Number of distinct keys.
    #[arg(long, default_value_t = 10_000)]
    key_space: u64,
    /// Value size in bytes (at least 16: each value starts with its send time).
    #[arg(long, default_value_t = 256)]
    val_size: u32,
    /// Operation weights: put (Put), range (linearizable Range), lease (LeaseGrant,
    /// Put with the lease, LeaseKeepAlive once, LeaseRevoke); left-out names weigh 0.
    #[arg(long, default_value = "put=45,range=45,lease=10")]
    mix: String,
    /// Watchers held for the whole run (0: none).
    #[arg(long, default_value_t = 1_000)]
    watchers: u32,
    /// gRPC watch streams holding them; watcher w is on stream w % streams.
    #[arg(long, default_value_t = 10)]
    watch_streams: u32,
    /// distinct: watcher w watches namespace w and key i lies in namespace
    /// i % watchers (one event per put); shared: everything in one namespace (each put
    /// reaches every watcher).
    #[arg(long, default_value = "distinct")]
    prefix_mode: String,
    /// Deadline of one request, ms; a late request counts as an error.
    #[arg(long, default_value_t = 10_000)]
    request_timeout_ms: u64,
    /// Fail if any RPC type's p99.99 latency exceeds this, ms.
    #[arg(long)]
    max_p9999_ms: Option<f64>,
    /// Print one JSON object instead of the markdown report.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    tls: TlsArgs,
}

impl MixedArgs {
    fn config(&self) -> tools::Result<MixedConfig> {
        let config = MixedConfig {
            endpoints: self.endpoints.clone(),
            clients: self.clients,
            conns: self.conns.unwrap_or_else(|| default_conns(self.clients)),
            duration_s: self.duration_s,
            key_space: self.key_space,
            val_size: self.val_size,
            mix: Mix::parse(&self.mix)?,
            watchers: self.watchers,
            watch_streams: self.watch_streams,
            prefix_mode: PrefixMode::parse(&self.prefix_mode)?,
            request_timeout_ms: self.request_timeout_ms,
            max_p9999_ms: self.max_p9999_ms,
            tls: self.tls.client_tls(),
        };
        config.validate()?;
        Ok(config)
    }
}

#[derive(Args, Debug)]
struct WatchArgs {
    /// Client URLs, comma separated (ignored by compare-watch).
    #[arg(long, value_delimiter = ',', default_value = "http://127.0.0.1:2379")]
    endpoints: Vec<String>,
    /// Watchers in all (1..=100000).
    #[arg(long, default_value_t = 1_000)]
    watchers: u32,
    /// gRPC watch streams holding them (1..=watchers); watcher w is on stream w % streams.
    #[arg(long, default_value_t = 10)]
    streams: u32,
    /// Sequential puts of the latency run.
    #[arg(long, default_value_t = 2_000)]
    puts: u64,
    /// shared: every watcher watches the writer's prefix (each put fans out to all
    /// watchers); distinct: one prefix per watcher, each put reaches one watcher; key:
    /// one single key per watcher, each put reaches one watcher.
    #[arg(long, default_value = "shared")]
    prefix_mode: String,
    /// Value size of each put, bytes.
    #[arg(long, default_value_t = 256)]
    val_size: u32,
    /// Deadline of one put, ms.
    #[arg(long, default_value_t = 10_000)]
    request_timeout_ms: u64,
    /// Deadline for every watcher's `created` reply, ms.
    #[arg(long, default_value_t = 60_000)]
    create_timeout_ms: u64,
    /// Wait after the last put for outstanding events, ms.
    #[arg(long, default_value_t = 30_000)]
    drain_timeout_ms: u64,
    /// Limit on the writer, s; unsent puts are reported as skipped.
    #[arg(long, default_value_t = 300)]
    duration_max_s: u64,
    /// Pause after the last `created` reply before the second RSS sample, ms.
    #[arg(long, default_value_t = 2_000)]
    settle_ms: u64,
}

impl WatchArgs {
    fn config(&self) -> tools::Result<WatchConfig> {
        let config = WatchConfig {
            endpoints: self.endpoints.clone(),
            watchers: self.watchers,
            streams: self.streams,
            puts: self.puts,
            mode: PrefixMode::parse(&self.prefix_mode)?,
            val_size: self.val_size,
            request_timeout_ms: self.request_timeout_ms,
            create_timeout_ms: self.create_timeout_ms,
            drain_timeout_ms: self.drain_timeout_ms,
            duration_max_s: self.duration_max_s,
            settle_ms: self.settle_ms,
        };
        config.validate()?;
        Ok(config)
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
    /// Client counts, one put phase each, comma separated (default 1,100); with the
    /// workload matrix one count (default 100).
    #[arg(long)]
    clients: Option<String>,
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
    #[arg(long, visible_alias = "key-space-size", default_value_t = 100_000)]
    key_space: u64,
    /// How long a server may take to become healthy, ms.
    #[arg(long, default_value_t = 20_000)]
    startup_timeout_ms: u64,
    #[command(flatten)]
    matrix: MatrixArgs,
    /// Limit on one phase, s.
    #[arg(long, default_value_t = 120)]
    phase_duration_max_s: u64,
    /// Print the rows as a JSON array instead of a markdown table; with the workload
    /// matrix, `--json FILE` writes the whole report to FILE as well.
    #[arg(long, num_args = 0..=1, value_name = "FILE")]
    json: Option<Option<PathBuf>>,
    /// Idle window before the put phases, s: server CPU with no client (0 skips it).
    #[arg(long, default_value_t = 10)]
    idle_s: u64,
}

#[derive(Args, Debug)]
struct FailoverArgs {
    /// Which server: cairn or etcd (its name in the report).
    #[arg(long, value_parser = ["cairn", "etcd"])]
    target: String,
    /// Server binary (default: target/release/cairn for cairn, etcd on PATH for etcd).
    #[arg(long)]
    bin: Option<PathBuf>,
    /// Leader kills (1..=1000).
    #[arg(long, default_value_t = 10)]
    kills: u32,
    /// Concurrent put clients (1..=1000).
    #[arg(long, default_value_t = 10)]
    clients: u32,
    /// Value size in bytes.
    #[arg(long, default_value_t = 256)]
    val_size: u32,
    /// Deadline of one put, ms; failover ms is at most new-leader ms plus this.
    #[arg(long, default_value_t = 500)]
    request_timeout_ms: u64,
    /// Steady load before each kill, ms.
    #[arg(long, default_value_t = 1_000)]
    steady_ms: u64,
    /// Longest wait after a kill for a new leader and an acknowledged put, ms.
    #[arg(long, default_value_t = 30_000)]
    failover_timeout_ms: u64,
    /// Longest wait for the restarted member to be healthy and caught up, ms.
    #[arg(long, default_value_t = 60_000)]
    catch_up_timeout_ms: u64,
    /// Caught up: Raft index at most this many entries behind the leader's.
    #[arg(long, default_value_t = 100)]
    catch_up_entries_max: u64,
    /// How long the cluster may take to become healthy, ms.
    #[arg(long, default_value_t = 20_000)]
    startup_timeout_ms: u64,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

impl FailoverArgs {
    fn config(&self) -> tools::Result<FailoverConfig> {
        let bin = self
            .bin
            .clone()
            .unwrap_or_else(|| match self.target.as_str() {
                "cairn" => PathBuf::from("target/release/cairn"),
                _ => PathBuf::from("etcd"),
            });
        let mut config = FailoverConfig::new(Target {
            name: self.target.clone(),
            bin,
        });
        config.kills = self.kills;
        config.clients = self.clients;
        config.val_size = self.val_size;
        config.request_timeout_ms = self.request_timeout_ms;
        config.steady_ms = self.steady_ms;
        config.failover_timeout_ms = self.failover_timeout_ms;
        config.catch_up_timeout_ms = self.catch_up_timeout_ms;
        config.catch_up_entries_max = self.catch_up_entries_max;
        config.startup_timeout_ms = self.startup_timeout_ms;
        config.validate()?;
        Ok(config)
    }
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
        config.clients =
            parse_clients_list(self.clients.as_deref().unwrap_or("1,100"), CLIENTS_MAX)?;
        config.total = self.total;
        config.conns = self.conns;
        config.key_size = self.key_size;
        config.val_size = self.val_size;
        config.key_space = self.key_space;
        config.startup_timeout_ms = self.startup_timeout_ms;
        config.phase_duration_max_s = self.phase_duration_max_s;
        config.idle_s = self.idle_s;
        config.validate()?;
        Ok(config)
    }
}

async fn load(command: &LoadCommand) -> tools::Result<ExitCode> {
    if let LoadCommand::Watch(args) = command {
        let report = tools::run_watch_bench(&args.config()).await?;
        if args.json {
            println!("{}", report.to_json());
        } else {
            print!("{}", report.to_text());
        }
        return Ok(if report.is_complete() {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        });
    }
    let (args, config) = command.config()?;
    let report = run_load_report(config).await?;
    if args.json {
        println!("{}", report.to_json());
    } else {
        print!("{}", report.to_text());
    }
    if report.cpu.saturated() {
        eprintln!("{}", report.cpu.warning());
    }
    Ok(if report.summary.ops == 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// The workload matrix of `compare` and `compare-cluster`: the targets, the load flags
/// of every run, then the report as a table (or JSON), `--json FILE` and charts.
async fn compare_matrix(args: &CompareArgs, cluster: bool) -> tools::Result<ExitCode> {
    let targets = vec![
        Target {
            name: "cairn".into(),
            bin: args.cairn_bin.clone(),
        },
        Target {
            name: "etcd".into(),
            bin: args.etcd_bin.clone(),
        },
    ];
    let clients = parse_clients_list(args.clients.as_deref().unwrap_or("100"), CLIENTS_MAX)?;
    let [clients] = clients[..] else {
        return Err(tools::BenchError::InvalidArg {
            flag: "clients",
            reason: "the workload matrix takes one client count".into(),
        });
    };
    let mut load =
        tools::LoadConfig::new(vec!["http://127.0.0.1:2379".into()], tools::Workload::Put);
    load.clients = clients;
    load.conns = args
        .conns
        .unwrap_or_else(|| default_conns(clients))
        .min(clients);
    load.total = args.total;
    load.key_size = args.key_size;
    load.val_size = args.val_size;
    load.key_space = args.key_space;
    load.duration_max_s = args.phase_duration_max_s;
    args.matrix.apply(&mut load);
    let config = tools::MatrixConfig {
        targets,
        workloads: args.matrix.workloads()?,
        rounds: args.matrix.rounds.unwrap_or(1),
        cluster: cluster || args.matrix.cluster,
        load,
        startup_timeout_ms: args.startup_timeout_ms,
    };
    let report = tools::run_matrix(&config, |line| eprintln!("{line}")).await?;
    // Charts first: they create --out-dir, where --json FILE often points.
    if let Some(dir) = &args.matrix.out_dir {
        for file in tools::write_charts(&report, dir)? {
            eprintln!("chart: {}", file.display());
        }
        let table = dir.join("compare.md");
        std::fs::write(&table, report.to_markdown()).map_err(|source| tools::BenchError::Io {
            op: "write",
            path: table.clone(),
            source,
        })?;
        eprintln!("table: {}", table.display());
    }
    let json = serde_json::to_string_pretty(&report).expect("report serializes");
    match &args.json {
        Some(None) => println!("{json}"),
        Some(Some(path)) => {
            std::fs::write(path, json + "\n").map_err(|source| tools::BenchError::Io {
                op: "write",
                path: path.clone(),
                source,
            })?;
            print!("{}", report.to_markdown());
        }
        None => print!("{}", report.to_markdown()),
    }
    let errors: u64 = report.runs.iter().map(|r| r.errors).sum();
    Ok(if errors == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

async fn compare(args: &CompareArgs) -> tools::Result<ExitCode> {
    if args.matrix.is_requested() {
        return compare_matrix(args, false).await;
    }
    let config = args.config()?;
    let rows = run_compare(&config, |line| eprintln!("{line}")).await?;
    if args.json.is_some() {
        println!("{}", serde_json::to_string(&rows).expect("rows serialize"));
    } else {
        print!("{}", render_markdown(&rows));
    }
    Ok(ExitCode::SUCCESS)
}

async fn compare_cluster(args: &CompareArgs) -> tools::Result<ExitCode> {
    if args.matrix.is_requested() {
        return compare_matrix(args, true).await;
    }
    let config = args.config()?;
    let rows = run_compare_cluster(&config, |line| eprintln!("{line}")).await?;
    if args.json.is_some() {
        println!("{}", serde_json::to_string(&rows).expect("rows serialize"));
    } else {
        print!("{}", render_cluster_markdown(&rows));
    }
    Ok(ExitCode::SUCCESS)
}

async fn failover(args: &FailoverArgs) -> tools::Result<ExitCode> {
    let report = run_failover(&args.config()?, |line| eprintln!("{line}")).await?;
    if args.json {
        println!(
            "{}",
            serde_json::to_string(&report).expect("report serializes")
        );
    } else {
        print!("{}", report.to_text());
    }
    Ok(if report.lost_writes == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

async fn watch_latency(args: &WatchArgs, json: bool) -> tools::Result<ExitCode> {
    let report = run_watch_latency(&args.config()?, |line| eprintln!("{line}")).await?;
    if json {
        println!(
            "{}",
            serde_json::to_string(&report).expect("report serializes")
        );
    } else {
        print!("{}", report.to_text());
    }
    Ok(if report.is_complete() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

async fn watch_memory(args: &WatchArgs, pid: u32, json: bool) -> tools::Result<ExitCode> {
    let report = run_watch_memory(&args.config()?, pid).await?;
    if json {
        println!(
            "{}",
            serde_json::to_string(&report).expect("report serializes")
        );
    } else {
        print!("{}", report.to_text());
    }
    Ok(ExitCode::SUCCESS)
}

async fn compare_watch(
    cairn_bin: &std::path::Path,
    etcd_bin: &std::path::Path,
    args: &WatchArgs,
    startup_timeout_ms: u64,
    json: bool,
) -> tools::Result<ExitCode> {
    let config = args.config()?;
    let targets = [
        Target {
            name: "cairn".into(),
            bin: cairn_bin.to_path_buf(),
        },
        Target {
            name: "etcd".into(),
            bin: etcd_bin.to_path_buf(),
        },
    ];
    let startup = std::time::Duration::from_millis(startup_timeout_ms);
    let rows = run_compare_watch(&targets, &config, startup, |line| eprintln!("{line}")).await?;
    if json {
        println!("{}", serde_json::to_string(&rows).expect("rows serialize"));
    } else {
        print!("{}", render_watch_markdown(&rows));
    }
    Ok(ExitCode::SUCCESS)
}

async fn mixed(args: &MixedArgs) -> tools::Result<ExitCode> {
    let report = run_mixed(&args.config()?, |line| eprintln!("{line}")).await?;
    if args.json {
        println!("{}", report.to_json());
    } else {
        print!("{}", report.to_markdown());
    }
    Ok(if report.failures().is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

async fn scale(args: &ScaleArgs) -> tools::Result<ExitCode> {
    let (targets, skipped) = args.targets()?;
    let config = args.config(targets)?;
    for reason in &skipped {
        eprintln!("not measured: {reason}");
    }
    let report = run_scale(&config, skipped, |line| eprintln!("{line}")).await?;
    print!("{}", render_scale_markdown(&report));
    if let Some(path) = &args.json {
        let json = serde_json::to_string_pretty(&report).expect("report serializes");
        std::fs::write(path, json + "\n").map_err(|source| tools::BenchError::Io {
            op: "write",
            path: path.clone(),
            source,
        })?;
    }
    let complete = report
        .servers
        .iter()
        .all(|s| s.load_errors == 0 && s.load_skipped == 0 && s.range.error.is_none());
    Ok(if complete {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
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
            Command::Load(command) => load(command).await,
            Command::Compare(args) => compare(args).await,
            Command::CompareCluster(args) => compare_cluster(args).await,
            Command::Failover(args) => failover(args).await,
            Command::WatchLatency { watch, json } => watch_latency(watch, *json).await,
            Command::WatchMemory { watch, pid, json } => watch_memory(watch, *pid, *json).await,
            Command::CompareWatch {
                cairn_bin,
                etcd_bin,
                watch,
                startup_timeout_ms,
                json,
            } => compare_watch(cairn_bin, etcd_bin, watch, *startup_timeout_ms, *json).await,
            Command::Mixed(args) => mixed(args).await,
            Command::Scale(args) => scale(args).await,
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

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("cairn-bench").chain(args.iter().copied()))
    }

    #[test]
    fn compare_cluster_flags() {
        let cli = parse(&[
            "compare-cluster",
            "--cairn-bin",
            "target/release/cairn",
            "--clients",
            "1,50",
            "--total",
            "300",
            "--json",
        ])
        .unwrap();
        let Command::CompareCluster(args) = cli.command else {
            panic!("not compare-cluster: {:?}", cli.command);
        };
        assert_eq!(args.json, Some(None));
        assert!(!args.matrix.is_requested());
        let config = args.config().unwrap();
        assert_eq!(config.clients, vec![1, 50]);
        assert_eq!(config.total, 300);
        assert_eq!(config.targets[0].name, "cairn");
        assert_eq!(config.targets[1].bin, PathBuf::from("etcd"));
        assert!(
            parse(&["compare-cluster"]).is_err(),
            "--cairn-bin is required"
        );
    }

    #[test]
    fn load_flags_etcd_names_and_old_aliases() {
        let load = |args: &[&str]| {
            let Command::Load(command) = parse(args).unwrap().command else {
                panic!("not a load command: {args:?}");
            };
            command.config().unwrap().1
        };
        let old = load(&["put", "--key-space", "5", "--seq"]);
        let new = load(&["put", "--key-space-size", "5", "--sequential-keys"]);
        assert_eq!(old, new);
        assert_eq!((new.key_space, new.seq), (5, true));
        let range = load(&[
            "range",
            "--consistency",
            "s",
            "--rate",
            "100",
            "--target-leader",
        ]);
        assert_eq!(
            range.workload,
            tools::Workload::Range { serializable: true }
        );
        assert_eq!((range.rate, range.target_leader), (100, true));
        let mixed = load(&["txn-mixed", "--rw-ratio", "3", "--duration", "5"]);
        assert_eq!(
            mixed.workload,
            tools::Workload::TxnMixed {
                read_per_mille: 750,
                serializable: false
            }
        );
        assert_eq!(mixed.duration_s, Some(5));
        assert_eq!(
            load(&["txn", "--txn-ops", "3"]).workload,
            tools::Workload::Txn { ops: 3 }
        );
        assert!(parse(&["range", "--consistency", "x"]).is_err());
        let Command::Compare(args) = parse(&[
            "compare",
            "--cairn-bin",
            "cairn",
            "--workloads",
            "put,kube",
            "--rounds",
            "3",
            "--json",
            "out.json",
        ])
        .unwrap()
        .command
        else {
            panic!("not compare");
        };
        assert!(args.matrix.is_requested());
        assert_eq!(args.matrix.rounds, Some(3));
        assert_eq!(args.json, Some(Some(PathBuf::from("out.json"))));
    }

    #[test]
    fn compare_sets_txn_mixed_and_takes_watch_workloads() {
        let compare = |extra: &[&str]| {
            let mut argv = vec!["compare", "--cairn-bin", "cairn"];
            argv.extend(extra);
            match parse(&argv).map(|cli| cli.command) {
                Ok(Command::Compare(args)) => Ok(args),
                Ok(_) => panic!("not compare"),
                Err(e) => Err(e),
            }
        };
        let args = compare(&[
            "--workloads",
            "txn-mixed,watch,watch-latency",
            "--rw-ratio",
            "3",
            "--limit",
            "5",
            "--end-range",
            "zz",
        ])
        .unwrap();
        assert_eq!(
            args.matrix.workloads().unwrap(),
            [
                tools::MatrixWorkload::Load(tools::Workload::TxnMixed {
                    read_per_mille: 750,
                    serializable: false,
                }),
                tools::MatrixWorkload::Watch,
                tools::MatrixWorkload::WatchLatency,
            ]
        );
        let mut load = tools::LoadConfig::new(vec![], tools::Workload::Put);
        args.matrix.apply(&mut load);
        assert_eq!(load.limit, 5);
        assert_eq!(load.end_range, Some(b"zz".to_vec()));
        let defaults = compare(&["--workloads", "txn-mixed"]).unwrap();
        assert_eq!(
            defaults.matrix.workloads().unwrap(),
            [tools::MatrixWorkload::Load(tools::Workload::TxnMixed {
                read_per_mille: 500,
                serializable: false,
            })]
        );
        let bad = compare(&["--workloads", "txn-mixed", "--rw-ratio=-1"]).unwrap();
        assert!(bad.matrix.workloads().is_err());
    }

    #[test]
    fn failover_flags_and_defaults() {
        let cli = parse(&["failover", "--target", "cairn"]).unwrap();
        let Command::Failover(args) = cli.command else {
            panic!("not failover: {:?}", cli.command);
        };
        let config = args.config().unwrap();
        assert_eq!(config.kills, 10);
        assert_eq!(config.clients, 10);
        assert_eq!(config.target.bin, PathBuf::from("target/release/cairn"));
        let cli = parse(&[
            "failover",
            "--target",
            "etcd",
            "--kills",
            "2",
            "--clients",
            "3",
        ])
        .unwrap();
        let Command::Failover(args) = cli.command else {
            panic!("not failover: {:?}", cli.command);
        };
        let config = args.config().unwrap();
        assert_eq!(config.target.name, "etcd");
        assert_eq!(config.target.bin, PathBuf::from("etcd"));
        assert_eq!(config.kills, 2);
        assert_eq!(config.clients, 3);
    }

    #[test]
    fn failover_rejects_bad_flags() {
        assert!(parse(&["failover", "--target", "zookeeper"]).is_err());
        assert!(parse(&["failover"]).is_err(), "--target is required");
        let cli = parse(&["failover", "--target", "cairn", "--kills", "0"]).unwrap();
        let Command::Failover(args) = cli.command else {
            panic!("not failover");
        };
        assert_eq!(
            args.config().unwrap_err().to_string(),
            "invalid --kills: 0 is outside 1..=1000"
        );
    }

    #[test]
    fn mixed_flags_and_defaults() {
        let cli = parse(&["mixed"]).unwrap();
        let Command::Mixed(args) = cli.command else {
            panic!("not mixed: {:?}", cli.command);
        };
        let config = args.config().unwrap();
        assert_eq!(config.endpoints, vec!["http://127.0.0.1:2379".to_string()]);
        assert_eq!(config.duration_s, 60);
        assert_eq!(config.clients, 100);
        assert_eq!(config.conns, 10);
        assert_eq!(config.key_space, 10_000);
        assert_eq!(config.mix, Mix::default());
        assert_eq!(config.watchers, 1_000);
        assert_eq!(config.watch_streams, 10);
        assert_eq!(config.prefix_mode, PrefixMode::Distinct);
        assert_eq!(config.max_p9999_ms, None);
        let cli = parse(&[
            "mixed",
            "--duration-s",
            "1800",
            "--clients",
            "25",
            "--mix",
            "put=1,lease=1",
            "--max-p9999-ms",
            "100",
            "--json",
        ])
        .unwrap();
        let Command::Mixed(args) = cli.command else {
            panic!("not mixed");
        };
        assert!(args.json);
        let config = args.config().unwrap();
        assert_eq!(config.duration_s, 1800);
        assert_eq!(config.conns, 3);
        assert_eq!(config.mix.weights, [1, 0, 1]);
        assert_eq!(config.max_p9999_ms, Some(100.0));
    }

    #[test]
    fn scale_flags_and_defaults() {
        let scale_args = |args: &[&str]| {
            let cli = parse(args).unwrap();
            let Command::Scale(args) = cli.command else {
                panic!("not scale: {:?}", cli.command);
            };
            args
        };
        let args = scale_args(&["scale"]);
        assert_eq!(args.cairn_bin, PathBuf::from("target/release/cairn"));
        assert_eq!(args.etcd_bin, None);
        assert_eq!(args.json, None);
        let config = args.config(vec![]).err().map(|e| e.to_string());
        assert_eq!(
            config.as_deref(),
            Some("invalid --cairn-bin: no target to measure")
        );
        let target = Target {
            name: "cairn".into(),
            bin: PathBuf::from("cairn"),
        };
        let config = args.config(vec![target.clone()]).unwrap();
        assert_eq!(config, ScaleConfig::new(vec![target.clone()]));
        let args = scale_args(&[
            "scale",
            "--keys",
            "2000",
            "--clients",
            "20",
            "--connections",
            "4",
            "--value-bytes",
            "100",
            "--no-kill9",
            "--json",
            "/tmp/scale.json",
        ]);
        let config = args.config(vec![target.clone()]).unwrap();
        assert_eq!(
            (config.keys, config.clients, config.connections),
            (2000, 20, 4)
        );
        assert_eq!(config.value_bytes, 100);
        assert!(!config.kill9);
        assert_eq!(args.json, Some(PathBuf::from("/tmp/scale.json")));
        let args = scale_args(&["scale", "--clients", "5", "--connections", "6"]);
        assert_eq!(
            args.config(vec![target]).unwrap_err().to_string(),
            "invalid --connections: 6 is outside 1..=clients (5)"
        );
        assert!(parse(&["scale", "--no-etcd", "--etcd-bin", "etcd"]).is_err());
        assert!(parse(&["scale", "--keys", "many"]).is_err());
    }

    #[test]
    fn scale_targets() {
        let cli = parse(&["scale", "--cairn-bin", "/nonexistent/cairn"]).unwrap();
        let Command::Scale(args) = cli.command else {
            panic!("not scale");
        };
        assert_eq!(
            args.targets().unwrap_err().to_string(),
            "invalid --cairn-bin: /nonexistent/cairn is not a file \
             (cargo build --release -p server)"
        );
        let cli = parse(&["scale", "--cairn-bin", "/bin/sh", "--no-etcd"]).unwrap();
        let Command::Scale(args) = cli.command else {
            panic!("not scale");
        };
        let (targets, skipped) = args.targets().unwrap();
        assert_eq!(targets.len(), 1);
        assert_eq!(skipped, vec!["etcd: --no-etcd".to_string()]);
        let cli = parse(&[
            "scale",
            "--cairn-bin",
            "/bin/sh",
            "--etcd-bin",
            "/nonexistent/etcd",
        ])
        .unwrap();
        let Command::Scale(args) = cli.command else {
            panic!("not scale");
        };
        assert_eq!(
            args.targets().unwrap_err().to_string(),
            "invalid --etcd-bin: /nonexistent/etcd is not a file"
        );
    }

    #[test]
    fn mixed_rejects_bad_flags() {
        let config_error = |args: &[&str]| {
            let cli = parse(args).unwrap();
            let Command::Mixed(args) = cli.command else {
                panic!("not mixed");
            };
            args.config().unwrap_err().to_string()
        };
        assert_eq!(
            config_error(&["mixed", "--mix", "put=1,delete=1"]),
            "invalid --mix: unknown operation \"delete\" (put, range, lease)"
        );
        assert_eq!(
            config_error(&["mixed", "--clients", "5", "--conns", "6"]),
            "invalid --conns: 6 is outside 1..=clients (5)"
        );
        assert_eq!(
            config_error(&["mixed", "--max-p9999-ms", "0"]),
            "invalid --max-p9999-ms: 0 is not above 0"
        );
    }
}
