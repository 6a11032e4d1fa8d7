//! Unit tests of the configuration: flags, environment, config file, validation.
use super::*;

fn parse(args: &[&str]) -> Result<ServerConfig, String> {
    let mut argv = vec!["cairn"];
    argv.extend_from_slice(args);
    Config::try_parse_from(argv)
        .map_err(|e| e.to_string())?
        .validate()
}

fn load_args(args: &[&str]) -> Result<ServerConfig, String> {
    let mut argv: Vec<OsString> = vec!["cairn".into()];
    argv.extend(args.iter().map(OsString::from));
    match load(argv) {
        Ok(Loaded::Server(c)) => Ok(*c),
        Ok(Loaded::Version) => Err("version".into()),
        Err(LoadError::Usage(e)) => Err(e.to_string()),
        Err(LoadError::Invalid(e) | LoadError::Fatal(e)) => Err(e),
    }
}

fn with_config_file(yaml: &str) -> Result<ServerConfig, String> {
    let dir = std::env::temp_dir().join(format!(
        "cairn-config-test-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("etcd.conf.yml");
    std::fs::write(&path, yaml).unwrap();
    let result = load_args(&["--config-file", path.to_str().unwrap(), "--name", "ignored"]);
    std::fs::remove_dir_all(&dir).unwrap();
    result
}

/// The parts of a ServerConfig a config file and flags must agree on (everything but
/// `config_file` and `ignored_flags`).
fn comparable(c: &ServerConfig) -> String {
    let mut c = c.clone();
    c.config_file = None;
    c.ignored_flags.clear();
    format!("{c:?}")
}

#[test]
fn config_file_equals_flags() {
    let yaml = "\
name: infra1
data-dir: /var/lib/etcd
listen-client-urls: http://127.0.0.1:12379
advertise-client-urls: http://127.0.0.1:12379
listen-peer-urls: https://127.0.0.1:12380
initial-advertise-peer-urls: https://127.0.0.1:12380
initial-cluster: infra1=https://127.0.0.1:12380
initial-cluster-token: tok
initial-cluster-state: new
snapshot-count: 10000
heartbeat-interval: 50
election-timeout: 500
max-request-bytes: 2097152
quota-backend-bytes: 4294967296
strict-reconfig-check: false
grpc-keepalive-min-time: 2000000000
grpc-keepalive-interval: 1h
experimental-watch-progress-notify-interval: 5000000000
experimental-initial-corrupt-check: true
auto-compaction-mode: revision
auto-compaction-retention: \"1000\"
max-concurrent-streams: 100
log-level: warn
log-outputs: [stderr]
metrics: extensive
listen-metrics-urls: http://127.0.0.1:12381
cipher-suites: [TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384]
client-transport-security:
  cert-file: /etc/etcd/server.crt
  key-file: /etc/etcd/server.key
  client-cert-auth: true
  trusted-ca-file: /etc/etcd/ca.crt
  auto-tls: false
peer-transport-security:
  cert-file: /etc/etcd/peer.crt
  key-file: /etc/etcd/peer.key
  client-cert-auth: true
  trusted-ca-file: /etc/etcd/ca.crt
  allowed-cn: member
  allowed-hostname: host1
";
    let from_file = with_config_file(yaml).unwrap();
    let from_flags = load_args(&[
        "--name=infra1",
        "--data-dir=/var/lib/etcd",
        "--listen-client-urls=http://127.0.0.1:12379",
        "--advertise-client-urls=http://127.0.0.1:12379",
        "--listen-peer-urls=https://127.0.0.1:12380",
        "--initial-advertise-peer-urls=https://127.0.0.1:12380",
        "--initial-cluster=infra1=https://127.0.0.1:12380",
        "--initial-cluster-token=tok",
        "--initial-cluster-state=new",
        "--snapshot-count=10000",
        "--heartbeat-interval=50",
        "--election-timeout=500",
        "--max-request-bytes=2097152",
        "--quota-backend-bytes=4294967296",
        "--strict-reconfig-check=false",
        "--grpc-keepalive-min-time=2s",
        "--grpc-keepalive-interval=1h",
        "--experimental-watch-progress-notify-interval=5s",
        "--experimental-initial-corrupt-check",
        "--auto-compaction-mode=revision",
        "--auto-compaction-retention=1000",
        "--max-concurrent-streams=100",
        "--log-level=warn",
        "--log-outputs=stderr",
        "--metrics=extensive",
        "--listen-metrics-urls=http://127.0.0.1:12381",
        "--cipher-suites=TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
        "--cert-file=/etc/etcd/server.crt",
        "--key-file=/etc/etcd/server.key",
        "--client-cert-auth",
        "--trusted-ca-file=/etc/etcd/ca.crt",
        "--auto-tls=false",
        "--peer-cert-file=/etc/etcd/peer.crt",
        "--peer-key-file=/etc/etcd/peer.key",
        "--peer-client-cert-auth=true",
        "--peer-trusted-ca-file=/etc/etcd/ca.crt",
        "--peer-cert-allowed-cn=member",
        "--peer-cert-allowed-hostname=host1",
    ])
    .unwrap();
    assert_eq!(comparable(&from_file), comparable(&from_flags));
    assert_eq!(
        from_file.name, "infra1",
        "--name on the command line is ignored"
    );
    assert_eq!(
        from_file
            .config_file
            .as_deref()
            .map(|p| p.ends_with("etcd.conf.yml")),
        Some(true)
    );
    assert!(from_file.peer_tls.client_cert_auth);
    assert_eq!(from_file.peer_tls.allowed_cn, "member");
    assert_eq!(from_file.grpc_keepalive_min_time, Duration::from_secs(2));
    assert_eq!(
        from_file.watch_progress_notify_interval,
        Duration::from_secs(5)
    );
    assert_eq!(from_file.auto_compaction, AutoCompaction::Revision(1000));
    assert_eq!(from_file.max_concurrent_streams, 100);
}

#[test]
fn config_file_unknown_keys_are_reported_not_refused() {
    let c = with_config_file("name: a\nno-such-key: 3\nwal-dir: /w\n").unwrap();
    assert_eq!(c.name, "a");
    assert_eq!(
        c.ignored_flags,
        vec![
            (
                "--wal-dir".to_string(),
                "Cairn keeps its WAL in member/wal under --data-dir".to_string()
            ),
            (
                "config-file key \"no-such-key\"".to_string(),
                "unknown key (etcd ignores unknown keys too)".to_string()
            ),
        ]
    );
}

#[test]
fn config_file_errors_are_fatal() {
    let e = with_config_file("heartbeat-interval: abc\n").unwrap_err();
    assert!(e.contains("heartbeat-interval"), "{e}");
    let e = load_args(&["--config-file", "/nonexistent/etcd.yml"]).unwrap_err();
    assert!(
        e.starts_with("cannot read --config-file /nonexistent/etcd.yml"),
        "{e}"
    );
}

#[test]
fn ignored_flags_warn_only_when_given() {
    assert_eq!(load_args(&[]).unwrap().ignored_flags, Vec::new());
    let c = load_args(&[
        "--wal-dir=/x",
        "--enable-v2",
        "--max-wals",
        "3",
        "--backend-batch-interval=10ms",
        "--peer-heartbeat-interval",
    ])
    .unwrap();
    let flags: Vec<&str> = c.ignored_flags.iter().map(|(f, _)| f.as_str()).collect();
    assert_eq!(
        flags,
        vec![
            "--wal-dir",
            "--max-wals",
            "--backend-batch-interval",
            "--enable-v2",
            "--peer-heartbeat-interval"
        ]
    );
}

#[test]
fn ignored_flags_still_check_their_values() {
    let e = load_args(&["--max-wals=abc"]).unwrap_err();
    assert!(e.contains("max-wals") && e.contains("abc"), "{e}");
    let e = load_args(&["--backend-batch-interval=5"]).unwrap_err();
    assert!(e.contains("missing unit"), "{e}");
    let e = load_args(&["--enable-v2=maybe"]).unwrap_err();
    assert!(e.contains("maybe"), "{e}");
}

#[test]
fn go_flag_syntax() {
    let c = load_args(&[
        "-name=gonode",
        "-initial-cluster",
        "gonode=http://localhost:2380",
        "--strict-reconfig-check=F",
        "--experimental-initial-corrupt-check",
        "--grpc-keepalive-timeout",
        "1m30s",
        "--name=gonode",
    ])
    .unwrap();
    assert_eq!(c.name, "gonode");
    assert!(!c.strict_reconfig_check);
    assert!(c.initial_corrupt_check);
    assert_eq!(c.grpc_keepalive_timeout, Duration::from_secs(90));
    // Repeating a flag: the last value wins, as Go's flag package.
    let c = load_args(&["--max-txn-ops=5", "--max-txn-ops=7"]).unwrap();
    assert_eq!(c.txn_ops_max, 7);
}

#[test]
fn deprecated_and_renamed_spellings() {
    let c = load_args(&["--debug", "--log-output=stdout"]).unwrap();
    assert_eq!(c.log_level, "debug");
    assert_eq!(c.log_outputs, vec!["stdout".to_string()]);
    let c = load_args(&[
        "--experimental-watch-progress-notify-interval=1m",
        "--watch-progress-notify-interval=2s",
        "--experimental-warning-apply-duration=1s",
    ])
    .unwrap();
    assert_eq!(c.watch_progress_notify_interval, Duration::from_secs(2));
    assert_eq!(c.warning_apply_duration, Duration::from_secs(1));
    let c = load_args(&["--experimental-watch-progress-notify-interval=0s"]).unwrap();
    assert_eq!(
        c.watch_progress_notify_interval,
        WATCH_PROGRESS_NOTIFY_INTERVAL_DEFAULT
    );
}

#[test]
fn listen_client_urls_need_advertise_client_urls() {
    let e = load_args(&["--listen-client-urls=http://127.0.0.1:2379"]).unwrap_err();
    assert_eq!(
        e,
        "--advertise-client-urls is required when --listen-client-urls is set explicitly"
    );
    assert!(load_args(&[
        "--listen-client-urls=http://127.0.0.1:2379",
        "--advertise-client-urls=http://127.0.0.1:2379"
    ])
    .is_ok());
    assert!(load_args(&["--listen-client-urls=http://127.0.0.1:2379", "--proxy=on"]).is_ok());
    let c = with_config_file("listen-client-urls: http://127.0.0.1:2379\n").unwrap();
    assert_eq!(
        c.advertise_client_urls,
        vec!["http://localhost:2379".to_string()]
    );
}

#[test]
fn max_learners_as_etcd() {
    assert_eq!(load_args(&[]).unwrap().learners_max, 1);
    assert_eq!(load_args(&["--max-learners=3"]).unwrap().learners_max, 3);
    assert_eq!(
        load_args(&["--max-learners", "-1"]).unwrap().learners_max,
        0
    );
}

#[test]
fn feature_gates_map_or_warn() {
    let c = load_args(&["--feature-gates=InitialCorruptCheck=true"]).unwrap();
    assert!(c.initial_corrupt_check);
    assert_eq!(c.ignored_flags, Vec::new());
    let c = load_args(&[
        "--experimental-initial-corrupt-check",
        "--feature-gates=InitialCorruptCheck=false,LeaseCheckpoint=true",
    ])
    .unwrap();
    assert!(!c.initial_corrupt_check, "the gate wins, as etcd 3.6");
    assert_eq!(
        c.ignored_flags,
        vec![(
            "--feature-gates LeaseCheckpoint=true".to_string(),
            "not implemented yet".to_string()
        )]
    );
    let e = load_args(&["--feature-gates=NoSuchGate=true"]).unwrap_err();
    assert_eq!(e, "--feature-gates: unrecognized feature gate: NoSuchGate");
}

#[test]
fn max_concurrent_streams_is_bounded_unless_given() {
    assert_eq!(
        load_args(&[]).unwrap().max_concurrent_streams,
        MAX_CONCURRENT_STREAMS_DEFAULT
    );
    assert_eq!(
        load_args(&["--max-concurrent-streams=4294967295"])
            .unwrap()
            .max_concurrent_streams,
        MAX_CONCURRENT_STREAMS_DEFAULT
    );
    assert_eq!(
        load_args(&["--max-concurrent-streams=20"])
            .unwrap()
            .max_concurrent_streams,
        20
    );
    assert!(load_args(&["--max-concurrent-streams=0"]).is_err());
}

#[test]
fn auto_compaction_parsed_as_etcd() {
    let c = load_args(&["--auto-compaction-retention=1"]).unwrap();
    assert_eq!(
        c.auto_compaction,
        AutoCompaction::Periodic(Duration::from_secs(3600))
    );
    assert_eq!(c.ignored_flags, Vec::new());
    let e = load_args(&[
        "--auto-compaction-mode=revision",
        "--auto-compaction-retention=1h",
    ])
    .unwrap_err();
    assert!(e.contains("auto-compaction-retention"), "{e}");
}

#[test]
fn version_spellings() {
    assert_eq!(load_args(&["--version"]).unwrap_err(), "version");
    let argv: Vec<OsString> = vec!["cairn".into(), "version".into()];
    assert!(matches!(load(argv), Ok(Loaded::Version)));
    let text = version_text("0.1.0", "3.6.0");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "cairn Version: 0.1.0");
    assert_eq!(lines[1], "etcd API Version: 3.6.0");
    assert!(lines[2].starts_with("Git SHA: "), "{text}");
    assert!(lines[3].starts_with("Rust Version: rustc "), "{text}");
    assert_eq!(
        lines[4],
        format!(
            "Rust OS/Arch: linux/{}",
            if cfg!(target_arch = "x86_64") {
                "amd64"
            } else {
                std::env::consts::ARCH
            }
        )
    );
    assert_eq!(lines.len(), 5);
}

#[test]
fn every_table_flag_is_an_argument_and_back() {
    let command = command();
    let longs: Vec<&str> = command
        .get_arguments()
        .filter_map(|a| a.get_long())
        .collect();
    for spec in table::FLAGS {
        assert!(
            longs.contains(&spec.name),
            "--{} has no argument",
            spec.name
        );
        let arg = command
            .get_arguments()
            .find(|a| a.get_long() == Some(spec.name))
            .unwrap();
        assert_eq!(
            arg.get_env().map(|e| e.to_string_lossy().into_owned()),
            Some(spec.env()),
            "--{} env",
            spec.name
        );
    }
    for long in longs {
        let cairn_own = ["auto-promote-learners", "cores", "version"];
        assert!(
            table::find(long).is_some() || cairn_own.contains(&long),
            "--{long} is missing from the flag table"
        );
    }
}

#[test]
fn docs_flags_md_is_current() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/flags.md");
    let expected = table::docs_markdown();
    if std::env::var_os("CAIRN_WRITE_DOCS").is_some() {
        std::fs::write(&path, &expected).unwrap();
    }
    let actual = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        actual == expected,
        "docs/flags.md is out of date: run `CAIRN_WRITE_DOCS=1 cargo test -p server --bin cairn docs_flags_md_is_current`"
    );
}

#[test]
fn defaults_match_etcd() {
    let c = parse(&[]).unwrap();
    assert_eq!(c.name, "default");
    assert_eq!(c.data_dir, PathBuf::from("default.etcd"));
    assert_eq!(
        c.listen_client_addrs,
        vec![ListenAddr {
            addr: "127.0.0.1:2379".parse().unwrap(),
            tls: false
        }]
    );
    assert_eq!(c.max_request_bytes, 1_572_864);
    assert_eq!(c.max_recv_message_bytes, 1_572_864 + 524_288);
    assert_eq!(c.txn_ops_max, 128);
    assert_eq!(c.quota_backend_bytes, 2_147_483_648);
    assert_eq!(c.election_ticks, 10);
    assert_eq!(
        c.initial_cluster,
        vec![(
            "default".to_string(),
            vec!["http://localhost:2380".to_string()]
        )]
    );
}

#[test]
fn data_dir_follows_name() {
    assert_eq!(
        parse(&[
            "--name",
            "n1",
            "--initial-cluster",
            "n1=http://localhost:2380"
        ])
        .unwrap()
        .data_dir,
        PathBuf::from("n1.etcd")
    );
}

#[test]
fn election_timeout_must_be_five_heartbeats() {
    let e = parse(&["--heartbeat-interval", "300", "--election-timeout", "1000"]).unwrap_err();
    assert_eq!(
        e,
        "--election-timeout[1000ms] should be at least as 5 times as --heartbeat-interval[300ms]"
    );
}

#[test]
fn unknown_flag_is_an_error() {
    let e = parse(&["--no-such-flag"]).unwrap_err();
    assert!(e.contains("--no-such-flag"), "{e}");
}

#[test]
fn bad_url_is_named() {
    let e = parse(&["--listen-client-urls", "127.0.0.1:2379"]).unwrap_err();
    assert_eq!(
        e,
        "--listen-client-urls: URL scheme must be http, https, unix or unixs: 127.0.0.1:2379"
    );
}

#[test]
fn local_member_must_be_in_initial_cluster() {
    let e = parse(&["--initial-cluster", "other=http://localhost:2380"])
        .unwrap()
        .check_initial_cluster()
        .unwrap_err();
    assert_eq!(
        e,
        "couldn't find local name \"default\" in the initial cluster configuration"
    );
}

/// etcd allows a quota above its 8 GiB `MaxQuotaBytes` with a warning; negative is refused.
#[test]
fn quota_above_the_recommended_maximum_is_allowed() {
    let c = parse(&["--quota-backend-bytes=17179869184"]).unwrap();
    assert_eq!(c.quota_backend_bytes, 17_179_869_184);
    assert!(parse(&["--quota-backend-bytes=-1"]).is_err());
}
