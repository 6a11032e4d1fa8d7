//! Thread-per-core runtime (DESIGN.md §2): one pinned glommio executor per core, each
//! listening on every client address with `SO_REUSEPORT`; core 0 also runs the raft core
//! in a latency-sensitive task queue. Cross-core traffic uses bounded channels created here.

use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use futures::channel::oneshot;
use glommio::{Latency, LocalExecutorBuilder, Placement, Shares};
use tracing::{error, info, warn};

use crate::cluster::{
    self, Membership, RaftPeerHandler, RaftRequest, RaftSettings, Shared, TransportPeers,
};
use crate::config::{ListenAddr, ServerConfig};
use crate::http::{CoreProbes, Endpoints, Surface};
use crate::member;
use crate::service::{EtcdService, ServiceConfig};
use crate::tls::TlsSetup;
use net::peer::{PeerIdentity, PeerLimits, PeerTransport};

/// Capacity of the channel every core sends writes and read barriers on.
pub const RAFT_QUEUE_CAPACITY: usize = 8_192;
/// Bytes of io_uring registered buffers per executor (Cairn reads and writes through the
/// page cache, so a small pool suffices and keeps under low RLIMIT_MEMLOCK limits).
pub const IO_MEMORY_BYTES: usize = 512 * 1024;

/// How long a task queue runs before the executor looks at its rings again, when no
/// latency-sensitive queue is active (glommio's default is 100 ms). A put forwarded from
/// another core wakes the raft core through the executor's eventfd, which only a
/// preemption or an idle executor notices: with 100 ms, a long Range or HashKV being
/// served on core 0 (they yield whenever `yield_if_needed` says so) held writes back by
/// up to that long. 1 ms bounds that wait; the timer costs nothing on an idle core.
const PREEMPT_TIMER: Duration = Duration::from_millis(1);

/// Fails with a message naming the cause and the fix when io_uring cannot be used.
pub fn check_io_uring() -> Result<(), String> {
    if let Ok(v) = std::fs::read_to_string("/proc/sys/kernel/io_uring_disabled") {
        if v.trim() != "0" {
            return Err(format!(
                "io_uring is disabled by the kernel (kernel.io_uring_disabled = {}); Cairn runs on io_uring: enable it with `sysctl -w kernel.io_uring_disabled=0`",
                v.trim()
            ));
        }
    }
    let mut params = [0u8; 120]; // struct io_uring_params
                                 // SAFETY: io_uring_setup reads and writes `params`, a buffer of the struct's size.
    let fd = unsafe { libc::syscall(libc::SYS_io_uring_setup, 4u32, params.as_mut_ptr()) };
    if fd < 0 {
        let err = std::io::Error::last_os_error();
        let fix = match err.raw_os_error() {
            Some(libc::ENOSYS) => "the kernel has no io_uring: use Linux 5.8 or newer built with CONFIG_IO_URING",
            Some(libc::EPERM) | Some(libc::EACCES) => {
                "a seccomp profile or sysctl blocks io_uring: allow io_uring_setup/io_uring_enter/io_uring_register (e.g. docker --security-opt seccomp=unconfined) or set kernel.io_uring_disabled=0"
            }
            Some(libc::ENOMEM) => "RLIMIT_MEMLOCK is too low: raise it (ulimit -l, or LimitMEMLOCK= in systemd)",
            _ => "check the kernel's io_uring support and the process limits",
        };
        return Err(format!("io_uring is unavailable ({err}); {fix}"));
    }
    // SAFETY: fd is a file descriptor this function just opened.
    unsafe { libc::close(fd as i32) };
    Ok(())
}

/// Runs the server until SIGTERM/SIGINT; returns once everything is durable.
pub fn run(config: ServerConfig) -> Result<(), String> {
    let metrics_level = crate::metrics::MetricsLevel::parse(&config.metrics)?;
    // Held until the process ends: no second process uses this data dir meanwhile.
    let (_data_dir_lock, member_initialized) = member::prepare_data_dir(&config.data_dir)?;
    // Every core binds the client and metrics URLs with SO_REUSEPORT, which would share
    // them with another server already there: refuse instead, as etcd does.
    for ListenAddr { addr, .. } in config
        .listen_client_addrs
        .iter()
        .chain(&config.listen_metrics_addrs)
    {
        net::ensure_port_free(*addr).map_err(|e| format!("listen tcp {addr}: {e}"))?;
    }
    let (config_name, config_data_dir) = (config.name.clone(), config.data_dir.clone());
    log_start(&config, member_initialized);
    let tls = Arc::new(crate::tls::prepare(&config)?);
    let identity = member::load_or_bootstrap(&config, tls.peer_client.as_ref())?;
    crate::metrics::get().set_member(
        identity.member_id,
        config.quota_backend_bytes as u64,
        metrics_level,
    );
    info!(
        "local-member-id" = %format!("{:x}", identity.member_id),
        "cluster-id" = %format!("{:x}", identity.cluster_id),
        "starting local member"
    );
    let (raft_tx, raft_rx) = flume::bounded::<RaftRequest>(RAFT_QUEUE_CAPACITY);
    let service_config = Arc::new(ServiceConfig {
        max_request_bytes: config.max_request_bytes,
        txn_ops_max: config.txn_ops_max,
        quota_backend_bytes: config.quota_backend_bytes,
        name: config.name.clone(),
        client_urls: config.advertise_client_urls.clone(),
        election_timeout: Duration::from_millis(
            config.heartbeat_interval_ms * config.election_ticks as u64,
        ),
        watch_progress_notify_interval: config.watch_progress_notify_interval,
        auto_compaction: config.auto_compaction,
        member_dir: identity.member_dir.clone(),
        client_cert_auth: config.client_tls.client_cert_auth,
        bcrypt_cost: config.bcrypt_cost,
    });
    let tokens =
        crate::auth::token::TokenConfig::parse(&config.auth_token, config.auth_token_ttl.as_secs())
            .and_then(|c| crate::auth::token::Tokens::new(&c))
            .map(Arc::new)?;
    info!(
        "auth-token" = tokens.kind(),
        "bcrypt-cost" = config.bcrypt_cost,
        "set up the auth token provider"
    );
    crate::api::maintenance::remove_leftovers(&identity.member_dir)?;
    let connections_max = connections_per_core_max(config.cores);
    let limits = net::ServerLimits {
        connections_max,
        stream_window_bytes: net::stream_window_for_messages(config.max_recv_message_bytes),
        max_recv_message_bytes: config.max_recv_message_bytes,
        max_send_message_bytes: crate::range::MAX_SEND_MESSAGE_BYTES,
        max_concurrent_streams: config.max_concurrent_streams,
        http1_max_body_bytes: config.max_recv_message_bytes,
        // grpc-go raises a server keepalive time under 1 s to 1 s (`internal/transport`).
        keepalive_interval: match config.grpc_keepalive_interval {
            d if d.is_zero() => d,
            d => d.max(Duration::from_secs(1)),
        },
        keepalive_timeout: config.grpc_keepalive_timeout,
        ..net::ServerLimits::default()
    };
    let boot_id = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let boot_nonce = (boot_id & 0xffff) as u16;

    // Shutdown plumbing: the signal thread tells every core to stop serving; once every
    // core has stopped, core 0 stops the raft core.
    let (stop_senders, stop_receivers): (Vec<_>, Vec<_>) =
        (0..config.cores).map(|_| flume::bounded::<()>(1)).unzip();
    let stopper = crate::supervise::Stopper::new(stop_senders);
    let (raft_stop_tx, raft_stop_rx) = flume::bounded::<()>(1);
    let (shared_tx, shared_rx) = std::sync::mpsc::channel::<Result<Arc<Shared>, String>>();
    let (probes, probe_receivers) = CoreProbes::new(config.cores);
    // The raft core's answers to each core's proposals and reads (cluster::deliver).
    let (reply_lines, reply_receivers): (Vec<_>, Vec<_>) =
        (0..config.cores).map(|_| flume::unbounded()).unzip();

    let mut handles = Vec::new();
    let mut shared0: Option<Arc<Shared>> = None;
    for (core, stop_rx) in stop_receivers.iter().cloned().enumerate() {
        let raft_tx = raft_tx.clone();
        let service_config = service_config.clone();
        let limits = limits.clone();
        let addrs: Vec<ListenAddr> = config.listen_client_addrs.clone();
        let tls = tls.clone();
        let http = CoreHttp {
            probes: probes.clone(),
            probe_rx: probe_receivers[core].clone(),
            metrics_addrs: match core {
                0 => config.listen_metrics_addrs.clone(),
                _ => Vec::new(),
            },
        };
        let replies = reply_receivers[core].clone();
        let raft_start = (core == 0).then(|| RaftStart {
            reply_lines: reply_lines.clone(),
            member_dir: identity.member_dir.clone(),
            member_id: identity.member_id,
            cluster_id: identity.cluster_id,
            initial: identity.initial.clone(),
            join: identity.join,
            bootstrap_peers: identity.bootstrap_peers.clone(),
            settings: RaftSettings {
                election_ticks: config.election_ticks,
                tick: Duration::from_millis(config.heartbeat_interval_ms),
                snapshot_count: config.snapshot_count,
                name: config.name.clone(),
                client_urls: config.advertise_client_urls.clone(),
                strict_reconfig_check: config.strict_reconfig_check,
                auto_promote_learners: config.auto_promote_learners,
                learners_max: config.learners_max,
                stop_serving: {
                    let stopper = stopper.clone();
                    Box::new(move || stopper.stop())
                },
                on_ready: {
                    let listeners = config.listen_client_addrs.clone();
                    Some(Box::new(move || log_ready_to_serve(&listeners)))
                },
                warning_apply_duration: config.warning_apply_duration,
                lease_checkpoint_interval: config
                    .lease_checkpoint
                    .then(crate::lease::checkpoint_interval),
                tokens: tokens.clone(),
            },
            boot_id,
            corrupt_check: (config.initial_corrupt_check && member_initialized).then(|| {
                cluster::request_timeout(Duration::from_millis(
                    config.heartbeat_interval_ms * config.election_ticks as u64,
                ))
            }),
            corrupt_check_time: config.corrupt_check_time,
            requests: raft_rx.clone(),
            sender: raft_tx.clone(),
            peer_addrs: config.listen_peer_addrs.clone(),
            tls: tls.clone(),
        });
        let raft_stop_rx = raft_stop_rx.clone();
        let shared_tx = shared_tx.clone();
        let shared_for_core = shared0.clone();
        let handle = LocalExecutorBuilder::new(Placement::Fixed(core))
            .name(&format!("cairn-core-{core}"))
            .io_memory(IO_MEMORY_BYTES)
            .preempt_timer(PREEMPT_TIMER)
            .spawn(move || async move {
                let shared = match raft_start {
                    Some(start) => {
                        let (shared, raft_task, peer_stop) = match start_raft_core(start).await {
                            Ok(started) => started,
                            Err(e) => {
                                let _ = shared_tx.send(Err(e));
                                return;
                            }
                        };
                        let _ = shared_tx.send(Ok(shared.clone()));
                        serve_core(
                            core,
                            shared.clone(),
                            service_config,
                            raft_tx.clone(),
                            limits,
                            addrs,
                            &tls,
                            stop_rx,
                            replies,
                            boot_nonce,
                            http,
                        )
                        .await;
                        // Every other core has stopped serving: stop the raft core.
                        let _ = raft_stop_rx.recv_async().await;
                        let (done_tx, done_rx) = oneshot::channel();
                        if raft_tx
                            .send_async(RaftRequest::Shutdown(done_tx))
                            .await
                            .is_ok()
                        {
                            let _ = done_rx.await;
                        }
                        drop(raft_task);
                        peer_stop.trigger();
                        return;
                    }
                    None => shared_for_core.expect("shared state for every other core"),
                };
                serve_core(
                    core,
                    shared,
                    service_config,
                    raft_tx,
                    limits,
                    addrs,
                    &tls,
                    stop_rx,
                    replies,
                    boot_nonce,
                    http,
                )
                .await;
            })
            .map_err(|e| format!("cannot start executor for core {core}: {e}"))?;
        handles.push(handle);
        if core == 0 {
            // Wait for core 0 to open the storage before starting the others.
            match shared_rx.recv() {
                Ok(Ok(shared)) => shared0 = Some(shared),
                Ok(Err(e)) => {
                    let _ = handles.pop().map(|h| h.join());
                    return Err(e);
                }
                Err(_) => return Err("core 0 stopped during start-up".into()),
            }
        }
    }
    drop(raft_tx);
    // Only the raft core receives: if it dies, senders see the channel closed.
    drop(raft_rx);

    let mut signals = signal_hook::iterator::Signals::new([
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGINT,
    ])
    .map_err(|e| format!("cannot install signal handlers: {e}"))?;
    let signal_stopper = stopper.clone();
    std::thread::Builder::new()
        .name("cairn-signals".into())
        .spawn(move || {
            let mut seen = 0;
            for signal in signals.forever() {
                seen += 1;
                if seen > 1 {
                    eprintln!("cairn: second signal {signal}: exiting now");
                    std::process::exit(130);
                }
                // etcd pkg/osutil/interrupt_unix.go, with Go's signal names.
                let name = match signal {
                    signal_hook::consts::SIGTERM => "terminated",
                    signal_hook::consts::SIGINT => "interrupt",
                    _ => "unknown",
                };
                info!(signal = name, "received signal; shutting down");
                signal_stopper.stop();
            }
        })
        .map_err(|e| format!("cannot start the signal thread: {e}"))?;

    // Core 0 stops the raft core once every other core has stopped; a core that dies
    // stops the process (server/src/supervise.rs).
    if let Err(reason) = crate::supervise::supervise(handles, &stopper, &probes, || {
        let _ = raft_stop_tx.send(());
    }) {
        crate::logging::fatal("a core stopped abnormally; stopping the member", &reason);
    }
    info!(
        name = %config_name,
        "data-dir" = %config_data_dir.display(),
        "closed etcd server"
    );
    Ok(())
}

/// What core 0 needs to start the raft core.
struct RaftStart {
    member_dir: std::path::PathBuf,
    member_id: u64,
    cluster_id: u64,
    initial: Membership,
    join: bool,
    bootstrap_peers: Vec<(u64, Vec<String>)>,
    settings: RaftSettings,
    boot_id: u64,
    /// `--experimental-initial-corrupt-check` on a member with data: the timeout of each
    /// peer's HashKV.
    corrupt_check: Option<Duration>,
    /// `--corrupt-check-time`: the periodic check's interval (zero: off).
    corrupt_check_time: Duration,
    requests: flume::Receiver<RaftRequest>,
    /// For the peer handler, which feeds peers' messages to the raft core.
    sender: flume::Sender<RaftRequest>,
    /// `--listen-peer-urls`.
    peer_addrs: Vec<ListenAddr>,
    /// Peer TLS (listeners and dialer).
    tls: Arc<TlsSetup>,
    /// Each core's reply line (`cluster::CorePeers::reply_lines`).
    reply_lines: Vec<flume::Sender<Vec<cluster::Delivery>>>,
}

/// Recovers the member's storage, starts the peer transport and its listeners, and spawns
/// the raft core in its latency-sensitive task queue on the current executor. Returns the
/// shared state, the raft core's task and the peer listeners' shutdown.
async fn start_raft_core(
    start: RaftStart,
) -> Result<(Arc<Shared>, glommio::task::JoinHandle<()>, net::Shutdown), String> {
    let identity = PeerIdentity {
        member_id: start.member_id,
        cluster_id: start.cluster_id,
    };
    let peer_acceptor = start.tls.peer_acceptor()?;
    let mut listeners = Vec::new();
    for ListenAddr { addr, tls } in &start.peer_addrs {
        let listener = glommio::net::TcpListener::bind(addr)
            .map_err(|e| format!("cannot listen for peers on {addr}: {e}"))?;
        let acceptor = if *tls {
            let acceptor = peer_acceptor.clone();
            assert!(acceptor.is_some(), "config checks https peer URLs have TLS");
            acceptor
        } else {
            None
        };
        listeners.push((*addr, listener, acceptor));
    }
    let transport =
        PeerTransport::with_tls(identity, PeerLimits::default(), start.tls.peer_connector()?);
    let peer_metrics = Rc::new(crate::metrics::PeerMetrics::default());
    let recovered = cluster::recover(&start.member_dir, start.initial, start.join)?;
    if let Some(timeout) = start.corrupt_check {
        let peers = recovered
            .membership
            .members()
            .filter(|m| m.id != start.member_id)
            .map(|m| (m.id, m.peer_urls.clone()))
            .collect();
        let reader = recovered.mvcc.reader();
        if let Err(e) = member::check_initial_corrupt(&reader, identity, peers, timeout).await {
            // etcd's etcdmain fails start-up errors with this message.
            crate::logging::fatal("discovery failed", &e);
        }
    }
    let core = cluster::open(
        recovered,
        cluster::CoreIdentity {
            member_id: start.member_id,
            cluster_id: start.cluster_id,
            boot_id: start.boot_id,
        },
        start.settings,
        cluster::CorePeers {
            sender: Rc::new(TransportPeers::new(transport.clone(), peer_metrics.clone())),
            bootstrap_peers: start.bootstrap_peers,
            inbox: start.sender.clone(),
            reply_lines: start.reply_lines,
        },
    )?;
    let shared = core.shared();
    crate::metrics::get().count_keys(&shared.reader);
    if !start.corrupt_check_time.is_zero() {
        glommio::spawn_local(cluster::monitor_kv_hash(
            shared.clone(),
            transport.clone(),
            start.sender.clone(),
            0,
            start.corrupt_check_time,
        ))
        .detach();
    }
    let handler = Rc::new(RaftPeerHandler::new(
        shared.clone(),
        start.sender,
        start.member_dir.clone(),
        peer_metrics,
    ));
    let shutdown = net::Shutdown::new();
    for (addr, listener, acceptor) in listeners {
        info!(address = %addr, tls = acceptor.is_some(), "serving peer traffic");
        let server = net::peer::PeerServer::new(
            identity,
            handler.clone(),
            PeerLimits::default(),
            shutdown.clone(),
        )
        .with_tls(acceptor);
        glommio::spawn_local(async move {
            if let Err(e) = server.serve(listener).await {
                error!(%addr, "peer listener failed: {e}");
            }
        })
        .detach();
    }
    let stop = shutdown.clone();
    glommio::spawn_local(async move {
        stop.wait().await;
        transport.shutdown();
    })
    .detach();
    let tq = glommio::executor().create_task_queue(
        Shares::Static(1000),
        Latency::Matters(Duration::from_micros(500)),
        "raft",
    );
    let task = glommio::spawn_local_into(core.run(start.requests), tq)
        .expect("raft task queue exists")
        .detach();
    Ok((shared, task, shutdown))
}

/// One core's HTTP side: the health probes every core answers, and (core 0 only) the
/// `--listen-metrics-urls` addresses.
struct CoreHttp {
    probes: Arc<CoreProbes>,
    probe_rx: flume::Receiver<futures::channel::oneshot::Sender<Result<(), String>>>,
    /// `--listen-metrics-urls` (core 0 only); `https://` ones use the client TLS settings.
    metrics_addrs: Vec<ListenAddr>,
}

/// The gRPC side of a metrics listener: it serves no method (etcd's metrics listener is
/// plain HTTP), so a gRPC call there ends UNIMPLEMENTED.
struct NoGrpc;

impl net::GrpcService for NoGrpc {
    fn method_kind(&self, _path: &str) -> Option<net::MethodKind> {
        None
    }

    fn unary(
        self: Rc<Self>,
        _ctx: net::CallContext,
        _request: bytes::Bytes,
    ) -> futures::future::LocalBoxFuture<'static, Result<bytes::Bytes, net::Status>> {
        unreachable!("NoGrpc serves no method")
    }

    fn streaming(
        self: Rc<Self>,
        _ctx: net::CallContext,
        _inbound: net::Inbound,
        _outbound: net::Outbound,
    ) -> futures::future::LocalBoxFuture<'static, Result<(), net::Status>> {
        unreachable!("NoGrpc serves no method")
    }
}

#[allow(clippy::too_many_arguments)]
async fn serve_core(
    core: usize,
    shared: Arc<Shared>,
    service_config: Arc<ServiceConfig>,
    raft_tx: flume::Sender<RaftRequest>,
    limits: net::ServerLimits,
    addrs: Vec<ListenAddr>,
    tls: &TlsSetup,
    stop_rx: flume::Receiver<()>,
    replies: flume::Receiver<Vec<cluster::Delivery>>,
    boot_nonce: u16,
    http: CoreHttp,
) {
    glommio::spawn_local(cluster::deliver(replies)).detach();
    let shared_for_watch = shared.clone();
    let max_request_bytes = service_config.max_request_bytes;
    let progress_notify_interval = service_config.watch_progress_notify_interval;
    let auto_compaction = service_config.auto_compaction;
    let service = Rc::new(EtcdService::new(
        shared.clone(),
        service_config,
        raft_tx,
        core,
        boot_nonce,
    ));
    crate::http::serve_core_probes(core, http.probe_rx, service.clone());
    let endpoints = Rc::new(Endpoints::new(
        shared.clone(),
        service.clone(),
        http.probes.clone(),
        Surface::Client,
    ));
    let metrics_endpoints = Rc::new(Endpoints::new(
        shared,
        service.clone(),
        http.probes,
        Surface::Metrics,
    ));
    let shutdown = net::Shutdown::new();
    if core == 0 {
        crate::compactor::start(service.clone(), auto_compaction, shutdown.clone());
    }
    crate::watch::start_hub(
        shared_for_watch,
        shutdown.clone(),
        max_request_bytes,
        progress_notify_interval,
    );
    let client_acceptor = match tls.client_acceptor() {
        Ok(acceptor) => acceptor,
        Err(e) => crate::logging::fatal("cannot set up client TLS", &e),
    };
    let mut servers = Vec::new();
    for ListenAddr { addr, tls } in addrs {
        // `https://` listeners complete the TLS handshake first (one acceptor per core,
        // shared by its listeners); `http://` ones serve plaintext.
        let acceptor = if tls { client_acceptor.clone() } else { None };
        assert!(
            !tls || acceptor.is_some(),
            "config checks https client URLs have TLS"
        );
        let listener = match net::bind_reuseport(addr) {
            Ok(l) => l,
            Err(e) => crate::logging::fatal(
                "cannot listen for client traffic",
                &format!("listen tcp {addr}: {e}"),
            ),
        };
        let task = glommio::spawn_local(net::serve_with_tls(
            listener,
            acceptor,
            service.clone(),
            endpoints.clone(),
            limits.clone(),
            shutdown.clone(),
        ));
        servers.push(task);
    }
    for ListenAddr { addr, tls } in http.metrics_addrs {
        let acceptor = if tls { client_acceptor.clone() } else { None };
        assert!(
            !tls || acceptor.is_some(),
            "config checks https metrics URLs have client TLS"
        );
        let listener = match net::bind_reuseport(addr) {
            Ok(l) => l,
            Err(e) => crate::logging::fatal(
                "cannot listen for metrics",
                &format!("listen tcp {addr}: {e}"),
            ),
        };
        info!(address = %addr, tls, "serving metrics and health endpoints");
        servers.push(glommio::spawn_local(net::serve_with_tls(
            listener,
            acceptor,
            Rc::new(NoGrpc),
            metrics_endpoints.clone(),
            limits.clone(),
            shutdown.clone(),
        )));
    }
    let trigger = shutdown.clone();
    glommio::spawn_local(async move {
        let _ = stop_rx.recv_async().await;
        trigger.trigger();
    })
    .detach();
    for server in servers {
        if let Err(e) = server.await {
            error!(core, "client listener failed: {e}");
        }
    }
}

/// Raises the open-file limit to the hard limit (as Go does) and derives the cap on client
/// connections per core from it (`nofile.rs`); logs both.
fn connections_per_core_max(cores: usize) -> usize {
    let nofile = crate::nofile::raise_nofile_limit().or_else(|e| {
        tracing::warn!(error = %e, "cannot raise the open-file limit (RLIMIT_NOFILE)");
        crate::nofile::nofile_limit()
    });
    let nofile = nofile.unwrap_or(crate::nofile::NON_CLIENT_FDS);
    let connections_max = crate::nofile::connections_per_core_max(nofile, cores);
    info!(
        "open-file-limit" = nofile,
        "connections-per-core-max" = connections_max as u64,
        "client connections per core are capped by the open-file limit"
    );
    connections_max
}

/// etcd `embed/serve.go`: once the member has published itself through Raft (etcd waits
/// for `ReadyNotify`), logs "ready to serve client requests" and, for a plain-HTTP
/// listener, "serving client traffic insecurely; this is strongly discouraged!" with the
/// listener's address. Called once by the raft core.
fn log_ready_to_serve(listeners: &[crate::config::ListenAddr]) {
    for listener in listeners {
        info!(address = %listener.addr, "ready to serve client requests");
        if listener.tls {
            info!(address = %listener.addr, "serving client traffic securely");
        } else {
            info!(
                address = %listener.addr,
                "serving client traffic insecurely; this is strongly discouraged!"
            );
        }
    }
}

/// etcd `embed/etcd.go` `print`: the start-up summary "starting an etcd server" with
/// etcd's field names, plus Cairn's version.
fn log_start(config: &ServerConfig, member_initialized: bool) {
    use crate::logging::{go_duration, json};
    let urls = |addrs: &[crate::config::ListenAddr]| -> Vec<String> {
        addrs
            .iter()
            .map(|l| format!("{}://{}", if l.tls { "https" } else { "http" }, l.addr))
            .collect()
    };
    let initial_cluster: Vec<String> = config
        .initial_cluster
        .iter()
        .flat_map(|(name, urls)| urls.iter().map(move |u| format!("{name}={u}")))
        .collect();
    let tick = Duration::from_millis(config.heartbeat_interval_ms);
    info!(
        "etcd-version" = crate::service::ETCD_API_VERSION,
        "cairn-version" = crate::service::CAIRN_VERSION,
        "os" = std::env::consts::OS,
        "arch" = std::env::consts::ARCH,
        "max-cpu-set" = config.cores as u64,
        "max-cpu-available" = std::thread::available_parallelism().map_or(0, |n| n.get()) as u64,
        "member-initialized" = member_initialized,
        name = %config.name,
        "data-dir" = %config.data_dir.display(),
        "member-dir" = %config.data_dir.join("member").display(),
        "heartbeat-interval" = %go_duration(tick),
        "election-timeout" = %go_duration(tick * config.election_ticks as u32),
        "snapshot-count" = config.snapshot_count,
        "initial-advertise-peer-urls" = %json(&config.initial_advertise_peer_urls),
        "listen-peer-urls" = %json(&urls(&config.listen_peer_addrs)),
        "advertise-client-urls" = %json(&config.advertise_client_urls),
        "listen-client-urls" = %json(&urls(&config.listen_client_addrs)),
        "listen-metrics-urls" = %json(&urls(&config.listen_metrics_addrs)),
        "initial-cluster" = %initial_cluster.join(","),
        "initial-cluster-state" = if config.join_existing { "existing" } else { "new" },
        "initial-cluster-token" = %config.initial_cluster_token,
        "quota-backend-bytes" = config.quota_backend_bytes,
        "max-request-bytes" = config.max_request_bytes as u64,
        "max-concurrent-streams" = config.max_concurrent_streams,
        "grpc-keepalive-min-time" = %go_duration(config.grpc_keepalive_min_time),
        "grpc-keepalive-interval" = %go_duration(config.grpc_keepalive_interval),
        "grpc-keepalive-timeout" = %go_duration(config.grpc_keepalive_timeout),
        "initial-corrupt-check" = config.initial_corrupt_check,
        logger = %config.logger,
        "log-outputs" = %json(&config.log_outputs),
        "log-level" = %config.log_level,
        "log-format" = %config.log_format,
        "starting an etcd server"
    );
    log_quota(config.quota_backend_bytes);
}

/// etcd's quota lines (etcdserver/quota.go `NewBackendQuota`): a warning when the quota
/// exceeds `MaxQuotaBytes` (8 GiB; allowed, not refused), then "enabled backend quota".
fn log_quota(quota: i64) {
    use crate::config::MAX_QUOTA_BACKEND_BYTES;
    let bytes = quota as u64;
    if quota > MAX_QUOTA_BACKEND_BYTES {
        warn!(
            "quota-name" = "v3-applier",
            "quota-size-bytes" = quota,
            "quota-size" = %go_humanize_bytes(bytes),
            "quota-maximum-size-bytes" = MAX_QUOTA_BACKEND_BYTES,
            "quota-maximum-size" = %go_humanize_bytes(MAX_QUOTA_BACKEND_BYTES as u64),
            "quota exceeds the maximum value"
        );
    }
    info!(
        "quota-name" = "v3-applier",
        "quota-size-bytes" = quota,
        "quota-size" = %go_humanize_bytes(bytes),
        "enabled backend quota"
    );
}

/// go-humanize's `Bytes` (SI units, one decimal below 10): "8.6 GB", "17 GB", "2.1 GB".
fn go_humanize_bytes(n: u64) -> String {
    const UNITS: [&str; 7] = ["B", "kB", "MB", "GB", "TB", "PB", "EB"];
    if n < 10 {
        return format!("{n} B");
    }
    let e = ((n as f64).ln() / 1000f64.ln()).floor() as usize;
    let value = (n as f64 / 1000f64.powi(e as i32) * 10.0 + 0.5).floor() / 10.0;
    if value < 10.0 {
        format!("{value:.1} {}", UNITS[e])
    } else {
        format!("{value:.0} {}", UNITS[e])
    }
}

#[cfg(test)]
mod quota_tests {
    /// The sizes etcd logs (go-humanize `Bytes` on etcd's quota values).
    #[test]
    fn humanized_like_go() {
        assert_eq!(super::go_humanize_bytes(8 * 1024 * 1024 * 1024), "8.6 GB");
        assert_eq!(super::go_humanize_bytes(2 * 1024 * 1024 * 1024), "2.1 GB");
        assert_eq!(super::go_humanize_bytes(16 * 1024 * 1024 * 1024), "17 GB");
        assert_eq!(super::go_humanize_bytes(5), "5 B");
        assert_eq!(super::go_humanize_bytes(1500), "1.5 kB");
    }
}
