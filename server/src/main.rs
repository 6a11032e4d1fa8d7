//! `cairn`: an etcd v3 compatible key-value store.
//!
//! Start-up: parse etcd's flags → check io_uring → open (or create) the member's data →
//! start one glommio executor per core. Core 0 also runs the raft core (Raft node, WAL,
//! apply loop); every core listens on the client URLs with `SO_REUSEPORT`. SIGTERM/SIGINT
//! stop accepting, let in-flight requests finish, sync the WAL and exit 0.

#![deny(missing_docs)]

mod alarm;
mod api;
mod auth;
mod cluster;
mod compactor;
mod config;
mod election;
mod gateway;
mod http;
mod kv;
mod lease;
mod lock;
mod logging;
mod member;
mod metrics;
mod nofile;
mod range;
mod runtime;
mod service;
mod supervise;
mod tls;
mod watch;

// etcd's error texts live in the library target (src/lib.rs), shared with the fuzzer;
// member and cluster IDs there too, shared with `cairnctl snapshot restore`.
use server::{errors, ids};

/// mimalloc's per-thread heaps suit thread-per-core: with `cairn-bench compare` (100
/// clients) server CPU per put went from ~45 µs to ~42 µs against glibc malloc.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let config = match config::load(std::env::args_os().collect()) {
        Ok(config::Loaded::Version) => {
            print!(
                "{}",
                config::version_text(service::CAIRN_VERSION, service::ETCD_API_VERSION)
            );
            return;
        }
        Ok(config::Loaded::Server(config)) => *config,
        Err(config::LoadError::Usage(e)) => e.exit(),
        Err(config::LoadError::Invalid(e)) => {
            eprintln!("cairn: error verifying flags, {e}. See 'cairn --help'.");
            std::process::exit(1);
        }
        Err(config::LoadError::Fatal(e)) => {
            eprintln!("cairn: {e}");
            std::process::exit(1);
        }
    };
    let log_settings = logging::LogSettings {
        logger: config.logger.clone(),
        log_outputs: config.log_outputs.clone(),
        log_level: config.log_level.clone(),
    };
    if let Err(e) = logging::init(&log_settings) {
        eprintln!("cairn: {e}");
        std::process::exit(1);
    }
    supervise::install_panic_hook();
    // Fail points for the containment tests, from FAILPOINTS; kept for the process's life.
    #[cfg(feature = "failpoints")]
    let _fail_points = fail::FailScenario::setup();
    config::log_given_config(&config);
    if let Err(e) = runtime::check_io_uring() {
        logging::fatal("io_uring is unavailable", &e);
    }
    if let Err(e) = runtime::run(config) {
        logging::fatal("cairn stopped", &e);
    }
}
