//! etcd's zap JSON logs: every line the server prints is one JSON object starting with
//! `level`, `ts`, `caller`, `msg`; the lines operators grep for are there with etcd's
//! field names; `--log-outputs` sends lines to files (appended) and stdout; `--log-level
//! warn` hides info lines. Against etcd 3.4 (`CAIRN_TEST_TARGET=etcd`) the tests pass
//! `--logger zap` (3.4's default is capnslog; 3.5+ and Cairn default to zap).

mod common;

use common::cluster::{wait_until, Cluster};
use common::{Target, TestServer};
use serde_json::Value;

/// How long the "serving client traffic" line may take to appear after `/health` is true.
const LOG_LINE_TIMEOUT_MS: u64 = 10_000;

/// The zap key order of every line.
const ZAP_KEYS: [&str; 4] = ["level", "ts", "caller", "msg"];

/// Parses every non-empty line as one zap JSON object and checks the first four keys, in
/// order; panics naming the line otherwise.
fn parse_lines(log: &str) -> Vec<Value> {
    log.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let value: Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("not a JSON line ({e}): {line:?}\nwhole log:\n{log}"));
            let mut at = 0;
            for key in ZAP_KEYS {
                let pos = line[at..]
                    .find(&format!("\"{key}\":"))
                    .unwrap_or_else(|| panic!("{key:?} missing or out of order in {line}"));
                at += pos + 1;
                assert!(value[key].is_string(), "{key} is not a string in {line}");
            }
            assert!(line.starts_with("{\"level\":"), "{line}");
            let ts = value["ts"].as_str().expect("ts");
            // zap ISO8601: 2006-01-02T15:04:05.000Z0700
            assert_eq!(&ts[4..5], "-", "{ts}");
            assert_eq!(&ts[10..11], "T", "{ts}");
            assert_eq!(&ts[19..20], ".", "{ts}");
            assert!(ts[20..23].chars().all(|c| c.is_ascii_digit()), "{ts}");
            let caller = value["caller"].as_str().expect("caller");
            let (file, line_no) = caller.rsplit_once(':').expect("file:line");
            assert!(file.contains('/'), "{caller}");
            line_no.parse::<u32>().expect("line number");
            value
        })
        .collect()
}

fn with_msg<'a>(lines: &'a [Value], msg: &str) -> Vec<&'a Value> {
    lines.iter().filter(|l| l["msg"] == msg).collect()
}

fn zap_server(args: &[&str]) -> TestServer {
    let mut all = vec!["--logger", "zap"];
    all.extend_from_slice(args);
    TestServer::builder().args(&all).start()
}

/// Waits until the server's log has a line with `msg`.
fn wait_for_msg(server: &TestServer, msg: &str) {
    wait_until(&format!("log line {msg:?}"), LOG_LINE_TIMEOUT_MS, || {
        let log = server.log();
        if log.contains(&format!("\"msg\":\"{msg}\"")) {
            Ok(())
        } else {
            Err(server.log_tail(2000))
        }
    });
}

#[test]
fn every_line_is_zap_json_with_etcds_start_up_lines() {
    let mut server = zap_server(&[]);
    wait_for_msg(
        &server,
        "serving client traffic insecurely; this is strongly discouraged!",
    );
    stop(&mut server);
    let log = server.log();
    let lines = parse_lines(&log);
    let address = format!("127.0.0.1:{}", server.client_port());

    let serving = with_msg(
        &lines,
        "serving client traffic insecurely; this is strongly discouraged!",
    );
    assert_eq!(serving.len(), 1, "{log}");
    assert_eq!(serving[0]["address"], address.as_str());
    assert_eq!(serving[0]["level"], "info");

    let start = with_msg(&lines, "starting an etcd server");
    assert_eq!(start.len(), 1, "{log}");
    assert_eq!(start[0]["name"], "node1");
    assert_eq!(start[0]["member-initialized"], false);
    assert_eq!(start[0]["heartbeat-interval"], "100ms");
    assert_eq!(start[0]["election-timeout"], "1s");
    assert_eq!(
        start[0]["advertise-client-urls"],
        serde_json::json!([server.endpoint()])
    );

    let published = with_msg(&lines, "published local member to cluster through raft");
    assert_eq!(published.len(), 1, "{log}");
    let id = published[0]["local-member-id"].as_str().expect("member id");
    assert_eq!(
        published[0]["local-member-attributes"],
        format!("{{Name:node1 ClientURLs:[{}]}}", server.endpoint()).as_str()
    );
    assert_eq!(
        published[0]["request-path"],
        format!("/0/members/{id}/attributes").as_str()
    );

    // etcd-io/raft node.go, through the raft logger.
    let leader = format!("raft.node: {id} elected leader {id} at term 2");
    assert_eq!(with_msg(&lines, &leader).len(), 1, "{log}");

    if server.target() == Target::Cairn {
        // etcd 3.5+ (3.4 prints it only with capnslog).
        let ready = with_msg(&lines, "ready to serve client requests");
        assert_eq!(ready.len(), 1, "{log}");
        assert_eq!(ready[0]["address"], address.as_str());
    }
}

#[test]
fn log_outputs_file_is_appended_and_stderr_stays_empty() {
    let logs = tempfile::tempdir().expect("tempdir");
    let file = logs.path().join("server.log");
    let file_arg = file.display().to_string();
    let mut server = zap_server(&["--log-outputs", &file_arg]);
    wait_for_msg_in_file(&file);
    stop(&mut server);
    let own = server.log();
    assert!(
        own.lines().all(|l| !l.starts_with('{')),
        "no JSON line on stdout/stderr: {own}"
    );
    let first = std::fs::read_to_string(&file).expect("log file");
    let lines = parse_lines(&first);
    assert_eq!(with_msg(&lines, "starting an etcd server").len(), 1);
    // A restart appends.
    server.restart();
    wait_for_msg_in_file_count(&file, 2);
    let second = std::fs::read_to_string(&file).expect("log file");
    assert!(second.starts_with(&first), "the file was not appended to");
    assert_eq!(
        with_msg(&parse_lines(&second), "starting an etcd server").len(),
        2
    );
}

fn wait_for_msg_in_file(file: &std::path::Path) {
    wait_for_msg_in_file_count(file, 1);
}

/// Waits until `file` holds `count` "serving client traffic" lines.
fn wait_for_msg_in_file_count(file: &std::path::Path, count: usize) {
    wait_until(
        "the serving line in the log file",
        LOG_LINE_TIMEOUT_MS,
        || {
            let text = std::fs::read_to_string(file).unwrap_or_default();
            let n = text
                .matches("serving client traffic insecurely; this is strongly discouraged!")
                .count();
            if n >= count {
                Ok(())
            } else {
                Err(format!("{n} lines so far"))
            }
        },
    );
}

#[test]
fn log_outputs_stdout_and_file_at_once() {
    let logs = tempfile::tempdir().expect("tempdir");
    let file = logs.path().join("both.log");
    let outputs = format!("stdout,{}", file.display());
    let mut server = zap_server(&["--log-outputs", &outputs]);
    wait_for_msg_in_file(&file);
    wait_for_msg(
        &server,
        "serving client traffic insecurely; this is strongly discouraged!",
    );
    stop(&mut server);
    let on_stdout = parse_lines(&server.log());
    let in_file = parse_lines(&std::fs::read_to_string(&file).expect("log file"));
    let msgs =
        |lines: &[Value]| -> Vec<String> { lines.iter().map(|l| l["msg"].to_string()).collect() };
    assert_eq!(msgs(&on_stdout), msgs(&in_file));
}

#[test]
fn default_output_cannot_be_mixed() {
    let output = Target::from_env()
        .command()
        .args(["--logger", "zap", "--log-outputs", "default,stdout"])
        .args(["--data-dir", "/nonexistent/never-created"])
        .output()
        .expect("run");
    assert!(!output.status.success());
    let text = String::from_utf8_lossy(&output.stderr);
    assert!(
        text.contains("multi logoutput for \"default\" is not supported yet"),
        "{text}"
    );
}

#[test]
fn log_level_warn_hides_info_lines() {
    let mut server = zap_server(&["--log-level", "warn"]);
    stop(&mut server);
    // etcd 3.4 prints the data-dir permission warning through capnslog, not zap.
    let zap_permission_warning = server.target() == Target::Cairn;
    if zap_permission_warning {
        // A warning to see: etcd's data-dir permission check on restart.
        let data_dir = server.data_dir().to_path_buf();
        set_mode(&data_dir, 0o755);
    }
    server.restart();
    stop(&mut server);
    let log = server.log();
    let lines = parse_lines(&log);
    assert!(
        lines
            .iter()
            .all(|l| l["level"] != "info" && l["level"] != "debug"),
        "{log}"
    );
    if zap_permission_warning {
        let warned = with_msg(&lines, "check file permission");
        assert_eq!(warned.len(), 1, "{log}");
    }
}

fn set_mode(path: &std::path::Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

fn stop(server: &mut TestServer) {
    common::stop_cleanly(server);
}

#[test]
fn checkpoints_log_saved_snapshot() {
    let server = zap_server(&["--snapshot-count", "5"]);
    for i in 0..12 {
        let out = server.etcdctl(&["put", &format!("k{i}"), "v"]);
        assert!(out.status.success(), "{out:?}");
    }
    wait_for_msg(&server, "saved snapshot");
    let lines = parse_lines(&server.log());
    let saved = with_msg(&lines, "saved snapshot");
    assert!(
        saved.iter().all(|l| l["snapshot-index"].as_u64().is_some()),
        "{saved:?}"
    );
}

#[test]
fn member_add_and_remove_are_logged_with_etcds_fields() {
    let mut cluster = Cluster::builder()
        .size(1)
        .args(&["--logger", "zap"])
        .start();
    let learner = cluster.add_member("learner", true);
    let id = format!("{:x}", cluster.member_id(learner));
    let peer_url = cluster.member(learner).peer_url();
    let out = cluster.member_remove(learner);
    assert!(out.status.success(), "{out:?}");
    wait_until("the removal in the log", LOG_LINE_TIMEOUT_MS, || {
        let log = cluster.member(0).log();
        if log.contains("\"msg\":\"removed member\"") {
            Ok(())
        } else {
            Err(log)
        }
    });
    let lines = parse_lines(&cluster.member(0).log());
    let cluster_id = with_msg(&lines, "added member")
        .iter()
        .find(|l| l["added-peer-id"] == id.as_str())
        .map(|l| {
            assert_eq!(l["added-peer-peer-urls"], serde_json::json!([peer_url]));
            l["cluster-id"].clone()
        })
        .unwrap_or_else(|| panic!("no added member line for {id}: {lines:?}"));
    let removed = with_msg(&lines, "removed member");
    assert_eq!(removed.len(), 1, "{removed:?}");
    assert_eq!(removed[0]["removed-remote-peer-id"], id.as_str());
    assert_eq!(
        removed[0]["removed-remote-peer-urls"],
        serde_json::json!([peer_url])
    );
    assert_eq!(removed[0]["cluster-id"], cluster_id);
}

#[test]
fn capnslog_is_accepted_and_logs_as_zap() {
    if common::skip_unless_cairn("etcd 3.4 prints capnslog's own format") {
        return;
    }
    let mut server = TestServer::builder()
        .args(&["--logger", "capnslog"])
        .start();
    stop(&mut server);
    let lines = parse_lines(&server.log());
    let warned: Vec<_> = lines
        .iter()
        .filter(|l| l["level"] == "warn" && l["logger"] == "capnslog")
        .collect();
    assert_eq!(warned.len(), 1, "{lines:?}");
}
