//! cairnctl: etcdctl 3.4's commands for Cairn (and etcd), online and offline.
//!
//! Online (`tools::ctl`, gRPC through `net::Client`; etcdctl's global flags `--endpoints`,
//! `--dial-timeout`, `--command-timeout`, `--keepalive-time/--keepalive-timeout`,
//! `--cacert/--cert/--key`, `--insecure-transport`, `--insecure-skip-tls-verify`,
//! `-d/--discovery-srv`, `--discovery-srv-name`, `--insecure-discovery`,
//! `--user/--password` (a prompt for the password), `--debug`, `-w`, `--hex` and their
//! `ETCDCTL_*` variables):
//!
//! ```text
//! cairnctl put|get|del ...            cairnctl version
//! cairnctl endpoint health|status|hashkv [--cluster]
//! cairnctl member list|add|remove|update|promote ...
//! cairnctl compaction [--physical] REV    cairnctl defrag [--cluster]
//! cairnctl lease grant|revoke|timetolive|list|keep-alive ...
//! cairnctl alarm list|disarm          cairnctl txn [-i] < blocks
//! cairnctl user|role ...               cairnctl auth enable|disable
//! cairnctl move-leader ID               cairnctl snapshot save FILE
//! cairnctl watch [--prefix] [--rev N] [--prev-kv] [KEY [END]] [-- CMD ARGS...]
//! cairnctl watch -i  < "watch ..." / "progress" lines
//! cairnctl lock [--ttl N] NAME         cairnctl elect NAME PROPOSAL | elect -l NAME
//! cairnctl make-mirror [--prefix P] [--dest-prefix Q | --no-dest-prefix] [--dest-*] DEST
//! ```
//!
//! Offline:
//!
//! ```text
//! cairnctl snapshot status FILE [-w simple|table|json]
//! cairnctl snapshot restore FILE [--data-dir DIR] [--name NAME]
//!          [--initial-cluster NAME=URL,...] [--initial-cluster-token TOKEN]
//!          [--initial-advertise-peer-urls URL,...] [--skip-hash-check]
//! cairnctl check disk --data-dir DIR [--writes 1000] [--record-bytes 2048]
//!          [--writers 4] [--json]
//! cairnctl check perf [--load s|m|l|xl] [--prefix P] [--auto-compact] [--auto-defrag]
//!          [--duration-s 60]   (with the global --endpoints, TLS and --user flags)
//! cairnctl check datascale [--load s|m|l|xl] [--prefix P] [--auto-compact] [--auto-defrag]
//! ```
//!
//! The snapshot commands read the bbolt files `etcdctl snapshot save` writes, from Cairn or from etcd
//! (`tools::snapshot`); flags, defaults, output and error texts are etcdctl 3.4's.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use tools::ctl::kv::{DelArgs, GetArgs, PutArgs};
use tools::ctl::{self, exit, CtlError, CtlResult, Format, GlobalFlags, Session};
use tools::snapshot::{self, RestoreConfig, StatusFormat};

#[derive(Parser)]
#[command(
    name = "cairnctl",
    version,
    about = "etcdctl's commands for Cairn and etcd",
    // pflag semantics: a repeated flag's last value wins.
    args_override_self = true,
    // etcdctl's own help template and cobra's errors (`ctl::usage`).
    disable_version_flag = true
)]
struct Cli {
    #[command(flatten)]
    global: GlobalFlags,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Puts the given key into the store.
    Put(PutArgs),
    /// Gets the key or a range of keys.
    Get(GetArgs),
    /// Removes the specified key or range of keys [key, range_end).
    Del(DelArgs),
    /// Prints the version of etcdctl.
    Version,
    /// Endpoint related commands.
    #[command(subcommand)]
    Endpoint(EndpointCommand),
    /// Membership related commands.
    #[command(subcommand)]
    Member(MemberCommand),
    /// Compacts the event history in etcd.
    Compaction {
        /// The revision.
        args: Vec<String>,
        /// 'true' to wait for compaction to physically remove all old revisions
        #[arg(long)]
        physical: bool,
    },
    /// Defragments the storage of the etcd members with given endpoints.
    Defrag {
        /// use all endpoints from the cluster member list
        #[arg(long)]
        cluster: bool,
    },
    /// Lease related commands.
    #[command(subcommand)]
    Lease(LeaseCommand),
    /// Transfers leadership to another etcd cluster member.
    #[command(name = "move-leader")]
    MoveLeader {
        /// `<transferee-member-id>` in hexadecimal.
        args: Vec<String>,
    },
    /// Acquires a named lock.
    Lock {
        /// `<lockname>`.
        args: Vec<String>,
        /// timeout for session
        #[arg(long, default_value_t = 10)]
        ttl: i64,
    },
    /// Observes and participates in leader election.
    Elect {
        /// `<election-name> [proposal]`.
        args: Vec<String>,
        /// observation mode
        #[arg(short, long)]
        listen: bool,
    },
    /// Watches events stream on keys or prefixes.
    Watch(ctl::watch::WatchArgs),
    /// Makes a mirror at the destination etcd cluster.
    #[command(name = "make-mirror")]
    MakeMirror(ctl::mirror::MirrorArgs),
    /// User related commands.
    #[command(subcommand)]
    User(ctl::auth::UserCommand),
    /// Role related commands.
    #[command(subcommand)]
    Role(ctl::auth::RoleCommand),
    /// Enable or disable authentication.
    #[command(subcommand)]
    Auth(AuthCommand),
    /// Txn processes all the requests in one transaction (compares, success and failure
    /// requests from stdin, each block ended by an empty line).
    Txn {
        /// None accepted.
        args: Vec<String>,
        /// Input transaction in interactive mode
        #[arg(short, long, num_args = 0..=1, default_value_t = false, default_missing_value = "true", action = clap::ArgAction::Set)]
        interactive: bool,
    },
    /// Alarm related commands.
    #[command(subcommand)]
    Alarm(AlarmCommand),
    /// Manages etcd node snapshots.
    #[command(subcommand)]
    Snapshot(SnapshotCommand),
    /// Checks whether the environment suits a consensus store.
    #[command(subcommand)]
    Check(CheckCommand),
}

#[derive(Subcommand)]
enum EndpointCommand {
    /// Checks the healthiness of endpoints specified in `--endpoints` flag.
    Health {
        /// use all endpoints from the cluster member list
        #[arg(long)]
        cluster: bool,
    },
    /// Prints out the status of endpoints specified in `--endpoints` flag.
    Status {
        /// use all endpoints from the cluster member list
        #[arg(long)]
        cluster: bool,
    },
    /// Prints the KV history hash for each endpoint in --endpoints.
    Hashkv {
        /// use all endpoints from the cluster member list
        #[arg(long)]
        cluster: bool,
        /// maximum revision to hash (default: all revisions)
        #[arg(long, default_value_t = 0)]
        rev: i64,
    },
}

#[derive(Subcommand)]
enum MemberCommand {
    /// Adds a member into the cluster.
    Add {
        /// The new member's name.
        args: Vec<String>,
        /// comma separated peer URLs for the new member.
        #[arg(long, default_value = "")]
        peer_urls: String,
        /// indicates if the new member is raft learner
        #[arg(long)]
        learner: bool,
    },
    /// Removes a member from the cluster.
    Remove {
        /// The member ID in hexadecimal.
        args: Vec<String>,
    },
    /// Updates a member in the cluster.
    Update {
        /// The member ID in hexadecimal.
        args: Vec<String>,
        /// comma separated peer URLs for the updated member.
        #[arg(long, default_value = "")]
        peer_urls: String,
    },
    /// Lists all members in the cluster.
    List,
    /// Promotes a non-voting member in the cluster.
    Promote {
        /// The member ID in hexadecimal.
        args: Vec<String>,
    },
}

#[derive(Subcommand)]
enum LeaseCommand {
    /// Creates leases.
    Grant {
        /// The TTL in seconds.
        args: Vec<String>,
    },
    /// Revokes leases.
    Revoke {
        /// The lease ID in hexadecimal.
        args: Vec<String>,
    },
    /// Get lease information.
    Timetolive {
        /// The lease ID in hexadecimal.
        args: Vec<String>,
        /// Get keys attached to this lease
        #[arg(long)]
        keys: bool,
    },
    /// List all active leases.
    List,
    /// Keeps leases alive (renew).
    #[command(name = "keep-alive")]
    KeepAlive {
        /// The lease ID in hexadecimal.
        args: Vec<String>,
        /// Resets the keep-alive time to its original value and exits immediately
        #[arg(long)]
        once: bool,
    },
}

#[derive(Subcommand)]
enum AuthCommand {
    /// Enables authentication.
    Enable {
        /// None accepted.
        args: Vec<String>,
    },
    /// Disables authentication.
    Disable {
        /// None accepted.
        args: Vec<String>,
    },
}

#[derive(Subcommand)]
enum AlarmCommand {
    /// Disarms all alarms.
    Disarm {
        /// None accepted.
        args: Vec<String>,
    },
    /// Lists all alarms.
    List {
        /// None accepted.
        args: Vec<String>,
    },
}

#[derive(Subcommand)]
enum CheckCommand {
    /// Checks the performance of the etcd cluster (etcdctl's `check perf`: puts at the
    /// load's rate for 60 s, then PASS or FAIL; exit status 1 on FAIL).
    Perf {
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
    },
    /// Check the memory usage of holding data for different workloads on a given server
    /// endpoint (etcdctl's `check datascale`; the first endpoint's /metrics is read).
    Datascale {
        /// The datascale check's workload model. Accepted workloads: s(small), m(medium),
        /// l(large), xl(xLarge).
        #[arg(long, default_value = "s")]
        load: String,
        /// The prefix for writing the datascale check's keys.
        #[arg(long, default_value = tools::check_datascale::DATASCALE_PREFIX)]
        prefix: String,
        /// Compact storage with last revision after test is finished.
        #[arg(long)]
        auto_compact: bool,
        /// Defragment storage after test is finished.
        #[arg(long)]
        auto_defrag: bool,
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
    /// Stores an etcd node backend snapshot to a given file.
    Save {
        /// `<filename>`.
        args: Vec<String>,
    },
    /// Gets backend snapshot status of a given file.
    Status {
        /// The snapshot file (output format: the global `-w`, simple, table or json).
        file: PathBuf,
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
    for (name, zero) in ctl::unparsable_env() {
        // Before any other thread starts, so no one reads the environment meanwhile.
        std::env::set_var(name, zero);
    }
    // Parse as cobra/pflag would (Go bools take `=false`); errors and help as etcdctl.
    let command = ctl::usage::cobra_parsing(Cli::command());
    let parsed = command
        .clone()
        .try_get_matches()
        .and_then(|mut m| Cli::from_arg_matches_mut(&mut m));
    let cli = match parsed {
        Ok(cli) => cli,
        Err(e) => {
            let args: Vec<String> = std::env::args_os()
                .map(|a| a.to_string_lossy().into_owned())
                .collect();
            return ctl::usage::report(&command, &e, &args);
        }
    };
    let global = cli.global;
    let result = match cli.command {
        save @ Command::Snapshot(SnapshotCommand::Save { .. }) => prepare_online(global, &save)
            .and_then(|(global, _)| ctl::block_on(run_online(&global, save, None))),
        Command::Snapshot(command) => offline_snapshot(command, global.write_out),
        Command::Check(CheckCommand::Perf {
            load,
            prefix,
            auto_compact,
            auto_defrag,
            duration_s,
        }) => {
            let flags = check_flags(&global, load, prefix, (auto_compact, auto_defrag));
            let duration = std::time::Duration::from_secs(duration_s.max(1));
            tools::check_perf::check_perf_command(&flags, duration)
        }
        Command::Check(CheckCommand::Datascale {
            load,
            prefix,
            auto_compact,
            auto_defrag,
        }) => {
            let flags = check_flags(&global, load, prefix, (auto_compact, auto_defrag));
            tools::check_datascale::check_datascale_command(&flags)
        }
        Command::Check(command) => offline_check(command),
        Command::Version => {
            print!("{}", ctl::maintenance::version());
            Ok(())
        }
        online => prepare_online(global, &online)
            .and_then(|(global, password)| ctl::block_on(run_online(&global, online, password))),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // etcdctl's ExitWithError: "Error: <message>" on stderr; some commands exit
            // with a code and no message (endpoint status, defrag).
            if !e.message.is_empty() {
                eprintln!("Error: {}", e.message);
            }
            ExitCode::from(u8::try_from(e.code).unwrap_or(1))
        }
    }
}

/// What etcdctl reads before it dials, in its order: the password `user add|passwd`
/// asks for, then the global flags' `--debug` lines, discovery and `--user` prompt
/// ([`ctl::global::resolve`]).
fn prepare_online(
    global: GlobalFlags,
    command: &Command,
) -> CtlResult<(GlobalFlags, Option<String>)> {
    let password = match command {
        Command::User(c) => ctl::auth::user_password(c)?,
        _ => None,
    };
    Ok((ctl::global::resolve(global)?, password))
}

/// The online commands, on this thread's glommio executor; `password`: what
/// [`prepare_online`] asked for.
async fn run_online(global: &GlobalFlags, command: Command, password: Option<String>) -> CtlResult {
    match command {
        Command::Endpoint(EndpointCommand::Health { cluster }) => {
            ctl::maintenance::health(global, cluster).await
        }
        Command::Endpoint(EndpointCommand::Status { cluster }) => {
            ctl::maintenance::status(global, cluster).await
        }
        Command::Endpoint(EndpointCommand::Hashkv { cluster, rev }) => {
            ctl::maintenance::hashkv(global, cluster, rev).await
        }
        Command::Defrag { cluster } => ctl::maintenance::defrag(global, cluster).await,
        Command::MoveLeader { args } => ctl::maintenance::move_leader(global, &args).await,
        Command::Snapshot(SnapshotCommand::Save { args }) => {
            let s = Session::lazy(global);
            ctl::stream::snapshot_save(&s, &global.endpoints, &args).await
        }
        Command::MakeMirror(a) => ctl::mirror::make_mirror(global, &a).await,
        command => {
            let s = Session::lazy(global);
            run_with_session(&s, command, password).await
        }
    }
}

async fn run_with_session(s: &Session, command: Command, password: Option<String>) -> CtlResult {
    use ctl::{kv, lease, maintenance as m};
    match command {
        Command::Put(a) => kv::put(s, &a).await,
        Command::Get(a) => kv::get(s, &a).await,
        Command::Del(a) => kv::del(s, &a).await,
        Command::Member(MemberCommand::List) => m::member_list(s).await,
        Command::Member(MemberCommand::Add {
            args,
            peer_urls,
            learner,
        }) => m::member_add(s, &args, &peer_urls, learner).await,
        Command::Member(MemberCommand::Remove { args }) => {
            m::member_change(s, "remove", &args, "").await
        }
        Command::Member(MemberCommand::Update { args, peer_urls }) => {
            m::member_change(s, "update", &args, &peer_urls).await
        }
        Command::Member(MemberCommand::Promote { args }) => {
            m::member_change(s, "promote", &args, "").await
        }
        Command::Compaction { args, physical } => m::compaction(s, &args, physical).await,
        Command::Lease(LeaseCommand::Grant { args }) => lease::grant(s, &args).await,
        Command::Lease(LeaseCommand::Revoke { args }) => lease::revoke(s, &args).await,
        Command::Lease(LeaseCommand::Timetolive { args, keys }) => {
            lease::timetolive(s, &args, keys).await
        }
        Command::Lease(LeaseCommand::List) => lease::list(s).await,
        Command::Lease(LeaseCommand::KeepAlive { args, once }) => {
            lease::keep_alive(s, &args, once).await
        }
        Command::Alarm(AlarmCommand::List { args }) => m::alarm(s, false, &args).await,
        Command::User(c) => ctl::auth::user(s, &c, password).await,
        Command::Role(c) => ctl::auth::role(s, &c).await,
        Command::Auth(AuthCommand::Enable { args }) => ctl::auth::auth(s, true, &args).await,
        Command::Auth(AuthCommand::Disable { args }) => ctl::auth::auth(s, false, &args).await,
        Command::Watch(a) => {
            let os_args: Vec<String> = std::env::args().collect();
            ctl::watch::watch(s, &a, &os_args).await
        }
        Command::Lock { args, ttl } => ctl::concurrency::lock(s, &args, ttl).await,
        Command::Elect { args, listen } => ctl::concurrency::elect(s, &args, listen).await,
        Command::Txn { args, interactive } => ctl::txn::txn(s, &args, interactive).await,
        Command::Alarm(AlarmCommand::Disarm { args }) => m::alarm(s, true, &args).await,
        other => unreachable!("{} is not a session command", command_name(&other)),
    }
}

fn command_name(command: &Command) -> &'static str {
    match command {
        Command::Snapshot(_) => "snapshot",
        Command::Check(_) => "check",
        Command::Version => "version",
        Command::Endpoint(_) => "endpoint",
        Command::Defrag { .. } => "defrag",
        Command::MakeMirror(_) => "make-mirror",
        _ => "a session command",
    }
}

/// `snapshot status|restore` (offline).
fn offline_snapshot(command: SnapshotCommand, format: Format) -> CtlResult {
    let result = match command {
        SnapshotCommand::Status { file } => {
            let format = match format {
                Format::Simple => Some(StatusFormat::Simple),
                Format::Table => Some(StatusFormat::Table),
                Format::Json => Some(StatusFormat::Json),
                Format::Fields => None,
                other => return Err(CtlError::unsupported(other)),
            };
            snapshot::status(&file).map(|s| match format {
                Some(format) => print!("{}", snapshot::render_status(&s, format)),
                // etcdctl's fields printer of `DBStatus`.
                None => print!(
                    "\"Hash\" : {}\n\"Revision\" : {}\n\"Keys\" : {}\n\"Size\" : {}\n",
                    s.hash, s.revision, s.total_key, s.total_size
                ),
            })
        }
        SnapshotCommand::Save { .. } => unreachable!("snapshot save is an online command"),
        SnapshotCommand::Restore {
            file,
            data_dir,
            name,
            initial_cluster,
            initial_cluster_token,
            initial_advertise_peer_urls,
            skip_hash_check,
        } => {
            let config = RestoreConfig {
                snapshot: file,
                data_dir: data_dir.unwrap_or_else(|| PathBuf::from(format!("{name}.etcd"))),
                name,
                initial_cluster,
                initial_cluster_token,
                initial_advertise_peer_urls,
                skip_hash_check,
            };
            snapshot::restore(&config).map(|r| restored(&config, &r))
        }
    };
    result.map_err(|e| CtlError::new(exit::ERROR, e.to_string()))
}

/// `check disk` (offline): exit status 1 when the disk fails etcd's guidance.
fn offline_check(command: CheckCommand) -> CtlResult {
    let CheckCommand::Disk {
        data_dir,
        writes,
        record_bytes,
        writers,
        json,
    } = command
    else {
        unreachable!("check perf and datascale are handled in main");
    };
    let config = tools::disk_check::CheckDiskConfig {
        data_dir,
        writes,
        record_bytes,
        writers,
    };
    let r = tools::disk_check::check_disk(&config)
        .map_err(|e| CtlError::new(exit::ERROR, e.to_string()))?;
    if json {
        println!("{}", serde_json::to_string(&r).expect("report serializes"));
    } else {
        print!("{}", tools::disk_check::render_text(&r));
    }
    if r.pass {
        Ok(())
    } else {
        Err(CtlError::new(exit::ERROR, String::new()))
    }
}

/// The flags of `check perf` and `check datascale` with the global ones they use
/// (endpoints, TLS files, `--user`/`--password`).
fn check_flags(
    global: &GlobalFlags,
    load: String,
    prefix: String,
    (auto_compact, auto_defrag): (bool, bool),
) -> tools::check_perf::CheckFlags {
    let user = match (&global.user, &global.password) {
        (Some(user), Some(password)) => Some(format!("{user}:{password}")),
        (user, _) => user.clone(),
    };
    tools::check_perf::CheckFlags {
        endpoints: global.endpoints.clone(),
        tls: tools::ClientTls {
            user,
            cacert: global.cacert.clone(),
            cert: global.cert.clone(),
            key: global.key.clone(),
        },
        insecure_skip_tls_verify: global.insecure_skip_tls_verify,
        load,
        prefix,
        auto_compact,
        auto_defrag,
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Every command and flag has etcdctl's text and Go type (`ctl::usage`), except
    /// cairnctl's own commands.
    #[test]
    fn every_command_and_flag_has_etcdctl_text() {
        let command = ctl::usage::cobra_parsing(Cli::command());
        let own = ["check disk", "check perf --duration-s"];
        let problems = ctl::usage::tree_problems(&command, &own);
        assert!(problems.is_empty(), "{problems:#?}");
    }
}
