//! Cluster membership through the real `etcdctl` (and the `etcd-client` crate where
//! etcdctl hides the RPC): member list / add / add --learner + promote / remove / update,
//! move-leader, `endpoint status|health|hashkv --cluster`, reads of one member's writes on
//! every other, and members that must not join (data dir of another cluster, wrong
//! `--initial-cluster-token`). Three members unless a test says otherwise. Expected texts
//! are etcd 3.4's (etcdctl printer_simple.go, rpctypes/error.go); the tests pass against
//! `CAIRN_TEST_TARGET=etcd`.

mod common;

use common::cluster::{copy_dir, env_line, wait_until, Cluster, LEADER_TIMEOUT_MS};
use common::{code, grpc_status, is_healthy, runtime, text};
use std::collections::BTreeSet;
use std::process::Output;

/// How long a learner may take to catch up until `member promote` succeeds.
const PROMOTE_TIMEOUT_MS: u64 = 30_000;
/// Keys written before comparing `endpoint hashkv --cluster`.
const HASHKV_KEYS_COUNT: usize = 20;

/// Asserts that etcdctl exited 0 and returns its stdout.
fn ok(output: Output) -> String {
    let (code, stdout, stderr) = text(&output);
    assert_eq!(
        code, 0,
        "etcdctl failed: stdout {stdout:?} stderr {stderr:?}"
    );
    stdout
}

/// Asserts that etcdctl failed and returns its stderr's last line (`Error: ...`).
fn fails(output: Output) -> String {
    let (code, stdout, stderr) = text(&output);
    assert_ne!(
        code, 0,
        "etcdctl should have failed: stdout {stdout:?} stderr {stderr:?}"
    );
    stderr.lines().last().unwrap_or_default().to_string()
}

/// `member list -w json` through member `via`: the parsed JSON.
fn member_list_json(cluster: &Cluster, via: usize) -> serde_json::Value {
    let stdout = ok(cluster.etcdctl(via, &["member", "list", "-w", "json"]));
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("member list JSON {stdout:?}: {e}"))
}

/// The `members` array of `member list -w json` through `via`.
fn members_json(cluster: &Cluster, via: usize) -> Vec<serde_json::Value> {
    member_list_json(cluster, via)["members"]
        .as_array()
        .expect("members array")
        .clone()
}

/// The line `member list` prints for member `i` (printer_simple.go: `%x, status, name,
/// peer URLs, client URLs, is learner`).
fn member_line(cluster: &Cluster, i: usize, learner: bool) -> String {
    let m = cluster.member(i);
    format!(
        "{:x}, started, {}, {}, {}, {learner}",
        cluster.member_id(i),
        m.name,
        m.peer_url(),
        m.endpoint()
    )
}

/// `member list` lines for the given (member, is learner) pairs, sorted by member id as
/// etcd sorts them.
fn expected_member_list(cluster: &Cluster, members: &[(usize, bool)]) -> String {
    let mut sorted = members.to_vec();
    sorted.sort_by_key(|&(i, _)| cluster.member_id(i));
    sorted
        .iter()
        .map(|&(i, learner)| member_line(cluster, i, learner) + "\n")
        .collect()
}

/// The cluster id as etcdctl's member commands print it: `%16x` (hex, padded on the left
/// with spaces to 16 characters; etcdctl printer_simple.go).
fn cluster_id_hex(cluster: &Cluster, via: usize) -> String {
    let status = cluster.status(via).expect("status");
    format!("{:16x}", status.cluster_id)
}

/// Parses `Member %16x added to cluster %16x` (the first line of `member add`) into the
/// member id.
fn added_member_id(stdout: &str, cluster_hex: &str) -> u64 {
    let first = stdout.lines().next().unwrap_or_default();
    let rest = first
        .strip_prefix("Member ")
        .unwrap_or_else(|| panic!("unexpected member add output {stdout:?}"));
    assert_eq!(
        rest.find(" added").expect("` added` in output"),
        16,
        "%16x in {stdout:?}"
    );
    let (id, tail) = rest.trim_start().split_once(' ').expect("id then text");
    assert_eq!(
        tail,
        format!("added to cluster {cluster_hex}"),
        "in {stdout:?}"
    );
    u64::from_str_radix(id, 16).expect("hex member id")
}

fn get_value(cluster: &Cluster, via: usize, key: &str, serializable: bool) -> String {
    let mut args = vec!["get", key, "--print-value-only"];
    if serializable {
        args.push("--consistency=s");
    }
    ok(cluster.etcdctl(via, &args))
}

#[test]
fn member_list_reports_every_member() {
    let mut cluster = Cluster::start(3);
    let all: Vec<usize> = (0..3).collect();

    let simple = ok(cluster.etcdctl(0, &["member", "list"]));
    let expected: Vec<(usize, bool)> = all.iter().map(|&i| (i, false)).collect();
    assert_eq!(simple, expected_member_list(&cluster, &expected));

    let status = cluster.status(0).expect("status of m0");
    let json = member_list_json(&cluster, 0);
    assert_eq!(
        json["header"]["cluster_id"].as_u64(),
        Some(status.cluster_id)
    );
    assert_eq!(
        json["header"]["member_id"].as_u64(),
        Some(cluster.member_id(0))
    );
    let members = json["members"].as_array().expect("members");
    assert_eq!(members.len(), 3, "{json}");
    let ids: Vec<u64> = members
        .iter()
        .map(|m| m["ID"].as_u64().expect("ID"))
        .collect();
    let mut sorted = ids.clone();
    sorted.sort_unstable();
    assert_eq!(ids, sorted, "members are listed by ascending ID");
    for m in members {
        let index = cluster
            .index_of_id(m["ID"].as_u64().unwrap())
            .expect("a known member id");
        let member = cluster.member(index);
        assert_eq!(m["name"], member.name.as_str(), "{m}");
        assert_eq!(m["peerURLs"], serde_json::json!([member.peer_url()]), "{m}");
        assert_eq!(
            m["clientURLs"],
            serde_json::json!([member.endpoint()]),
            "{m}"
        );
        // protobuf JSON omits false booleans.
        assert!(m.get("isLearner").is_none(), "{m}");
    }

    let fields = ok(cluster.etcdctl(0, &["member", "list", "-w", "fields"]));
    assert_eq!(
        fields.matches("\"IsLearner\" : false").count(),
        3,
        "{fields}"
    );
    for &i in &all {
        assert!(
            fields.contains(&format!("\"ID\" : {}\n", cluster.member_id(i))),
            "{fields}"
        );
        assert!(
            fields.contains(&format!("\"Name\" : \"{}\"\n", cluster.member(i).name)),
            "{fields}"
        );
    }

    // Every member reports the same membership.
    for via in 1..3 {
        assert_eq!(
            members_json(&cluster, via),
            members.clone(),
            "member list via m{via}"
        );
    }
    assert_eq!(cluster.serving(), all);
}

#[test]
fn member_add_voter_starts_and_serves_reads() {
    let mut cluster = Cluster::start(3);
    ok(cluster.etcdctl(0, &["put", "add/before", "v1"]));
    let cluster_hex = cluster_id_hex(&cluster, 0);

    let (new, stdout) = cluster.member_add("m3", false);
    let id = added_member_id(&stdout, &cluster_hex);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 6, "{stdout:?}");
    assert_eq!(lines[1], "", "{stdout:?}");
    assert_eq!(lines[2], "ETCD_NAME=\"m3\"");
    let peer = cluster.member(new).peer_url();
    assert_eq!(
        lines[4],
        format!("ETCD_INITIAL_ADVERTISE_PEER_URLS=\"{peer}\"")
    );
    assert_eq!(lines[5], "ETCD_INITIAL_CLUSTER_STATE=\"existing\"");
    let initial: BTreeSet<String> = env_line(&stdout, "ETCD_INITIAL_CLUSTER")
        .expect("ETCD_INITIAL_CLUSTER")
        .split(',')
        .map(str::to_string)
        .collect();
    let expected: BTreeSet<String> = (0..4)
        .map(|i| {
            format!(
                "{}={}",
                cluster.member(i).name,
                cluster.member(i).peer_url()
            )
        })
        .collect();
    assert_eq!(initial, expected);

    // Added but not started: listed as unstarted, without name or client URLs.
    let listed = ok(cluster.etcdctl(0, &["member", "list"]));
    let unstarted = format!("{id:x}, unstarted, , {peer}, , false");
    assert!(listed.lines().any(|l| l == unstarted), "{listed}");

    cluster.start_member(new);
    assert_eq!(cluster.member_id(new), id);
    assert_eq!(get_value(&cluster, new, "add/before", true), "v1\n");
    assert_eq!(get_value(&cluster, new, "add/before", false), "v1\n");
    ok(cluster.etcdctl(new, &["put", "add/after", "v2"]));
    assert_eq!(get_value(&cluster, 0, "add/after", false), "v2\n");

    let expected: Vec<(usize, bool)> = (0..4).map(|i| (i, false)).collect();
    assert_eq!(
        ok(cluster.etcdctl(1, &["member", "list"])),
        expected_member_list(&cluster, &expected)
    );
    cluster.wait_hashkv_equal(&[0, 1, 2, 3]);
}

#[test]
fn learner_is_promoted_once_caught_up() {
    let mut cluster = Cluster::start(3);
    ok(cluster.etcdctl(0, &["put", "learner/key", "v1"]));
    let cluster_hex = cluster_id_hex(&cluster, 0);

    let (learner, stdout) = cluster.member_add("m3", true);
    let id = added_member_id(&stdout, &cluster_hex);
    let peer = cluster.member(learner).peer_url();
    let listed = ok(cluster.etcdctl(0, &["member", "list"]));
    assert!(
        listed
            .lines()
            .any(|l| l == format!("{id:x}, unstarted, , {peer}, , true")),
        "{listed}"
    );
    let json = members_json(&cluster, 0);
    let entry = json
        .iter()
        .find(|m| m["ID"].as_u64() == Some(id))
        .expect("learner listed");
    assert_eq!(entry["isLearner"], true, "{entry}");
    assert!(entry.get("name").is_none(), "{entry}");

    // Not started, so not in sync with the leader.
    let id_hex = format!("{id:x}");
    assert_eq!(
        fails(cluster.etcdctl(0, &["member", "promote", &id_hex])),
        "Error: etcdserver: can only promote a learner member which is in sync with leader"
    );

    cluster.start_member(learner);
    assert!(cluster.status(learner).expect("learner status").is_learner);
    // A learner serves serializable reads and rejects writes (etcd v3rpc interceptor).
    assert_eq!(get_value(&cluster, learner, "learner/key", true), "v1\n");
    assert_eq!(
        fails(cluster.etcdctl(learner, &["put", "learner/put", "x"])),
        "Error: etcdserver: rpc not supported for learner"
    );

    let promoted = format!("Member {id:16x} promoted in cluster {cluster_hex}\n");
    wait_until(
        "`member promote` of the started learner to succeed",
        PROMOTE_TIMEOUT_MS,
        || {
            let (code, stdout, stderr) = text(&cluster.etcdctl(0, &["member", "promote", &id_hex]));
            if code == 0 {
                assert_eq!(stdout, promoted);
                return Ok(());
            }
            assert!(
                stderr.contains("can only promote a learner member which is in sync with leader"),
                "promote failed otherwise: {stderr}"
            );
            Err(stderr)
        },
    );
    let expected: Vec<(usize, bool)> = (0..4).map(|i| (i, false)).collect();
    assert_eq!(
        ok(cluster.etcdctl(0, &["member", "list"])),
        expected_member_list(&cluster, &expected)
    );
    assert!(!cluster.status(learner).expect("status").is_learner);
    ok(cluster.etcdctl(learner, &["put", "learner/put", "after-promote"]));
    assert_eq!(
        get_value(&cluster, 1, "learner/put", false),
        "after-promote\n"
    );

    // Promoting a voter, or an unknown member.
    let voter_hex = format!("{:x}", cluster.member_id(1));
    assert_eq!(
        fails(cluster.etcdctl(0, &["member", "promote", &voter_hex])),
        "Error: etcdserver: can only promote a learner member"
    );
    assert_eq!(
        fails(cluster.etcdctl(0, &["member", "promote", "1234"])),
        "Error: etcdserver: member not found"
    );
}

#[test]
fn member_remove_of_a_follower() {
    let mut cluster = Cluster::start(3);
    let leader = cluster.wait_leader();
    let follower = cluster.followers(leader)[0];
    let cluster_hex = cluster_id_hex(&cluster, leader);
    let removed_hex = format!("{:x}", cluster.member_id(follower));

    let stdout = ok(cluster.member_remove(follower));
    let removed_id = cluster.member_id(follower);
    assert_eq!(
        stdout,
        format!("Member {removed_id:16x} removed from cluster {cluster_hex}\n")
    );
    // The removed member learns it and stops (etcd: "the member has been permanently
    // removed from the cluster").
    // etcd logs "the member has been permanently removed from the cluster" and exits with
    // status 0, so a supervisor with Restart=on-failure leaves it down.
    let status = cluster.wait_exit(follower);
    assert!(status.success(), "the removed member exited with {status}");

    let rest = cluster.serving();
    assert_eq!(rest.len(), 2);
    let expected: Vec<(usize, bool)> = rest.iter().map(|&i| (i, false)).collect();
    assert_eq!(
        ok(cluster.etcdctl(rest[0], &["member", "list"])),
        expected_member_list(&cluster, &expected)
    );
    ok(cluster.etcdctl(rest[1], &["put", "remove/after", "v"]));
    assert_eq!(get_value(&cluster, rest[0], "remove/after", false), "v\n");
    assert_eq!(
        cluster.wait_leader(),
        leader,
        "removing a follower keeps the leader"
    );

    assert_eq!(
        fails(cluster.etcdctl(rest[0], &["member", "remove", &removed_hex])),
        "Error: etcdserver: member not found"
    );
    cluster.wait_hashkv_equal(&rest);
}

#[test]
fn member_remove_of_the_leader_elects_a_new_one() {
    let mut cluster = Cluster::start(3);
    ok(cluster.etcdctl(0, &["put", "remove/before", "v1"]));
    let leader = cluster.wait_leader();
    let others = cluster.followers(leader);

    let output = cluster.member_remove(leader);
    let stdout = ok(output);
    let removed = format!(
        "Member {:16x} removed from cluster ",
        cluster.member_id(leader)
    );
    assert!(stdout.starts_with(&removed), "{stdout}");

    let new_leader = cluster.wait_leader_among(&others);
    assert_ne!(new_leader, leader);
    let status = cluster.wait_exit(leader);
    assert!(status.success(), "the removed leader exited with {status}");
    assert!(
        !is_healthy(cluster.member(leader).client_port()),
        "the removed leader stopped serving"
    );

    ok(cluster.etcdctl(others[0], &["put", "remove/after", "v2"]));
    for &i in &others {
        assert_eq!(get_value(&cluster, i, "remove/after", false), "v2\n");
        assert_eq!(get_value(&cluster, i, "remove/before", false), "v1\n");
    }
    let json = members_json(&cluster, others[1]);
    let ids: BTreeSet<u64> = json.iter().map(|m| m["ID"].as_u64().unwrap()).collect();
    let expected: BTreeSet<u64> = others.iter().map(|&i| cluster.member_id(i)).collect();
    assert_eq!(ids, expected);
}

#[test]
fn member_update_changes_peer_urls() {
    let mut cluster = Cluster::start(3);
    let leader = cluster.wait_leader();
    let moved = cluster.followers(leader)[0];
    let cluster_hex = cluster_id_hex(&cluster, leader);
    let id_hex = format!("{:x}", cluster.member_id(moved));
    let old_url = cluster.member(moved).peer_url();

    let new_url = cluster.move_peer_port(moved);
    assert_ne!(new_url, old_url);
    let stdout = ok(cluster.etcdctl(
        leader,
        &[
            "member",
            "update",
            &id_hex,
            &format!("--peer-urls={new_url}"),
        ],
    ));
    let id = cluster.member_id(moved);
    assert_eq!(
        stdout,
        format!("Member {id:16x} updated in cluster {cluster_hex}\n")
    );
    let json = members_json(&cluster, leader);
    let entry = json
        .iter()
        .find(|m| m["ID"].as_u64() == Some(cluster.member_id(moved)))
        .expect("updated member listed");
    assert_eq!(entry["peerURLs"], serde_json::json!([new_url]), "{entry}");

    // Restarted listening on the new URL only, it is reached there by its peers.
    cluster.restart(moved);
    ok(cluster.etcdctl(leader, &["put", "update/key", "v"]));
    assert_eq!(get_value(&cluster, moved, "update/key", false), "v\n");
    let expected: Vec<(usize, bool)> = (0..3).map(|i| (i, false)).collect();
    assert_eq!(
        ok(cluster.etcdctl(moved, &["member", "list"])),
        expected_member_list(&cluster, &expected)
    );
    cluster.wait_hashkv_equal(&[0, 1, 2]);
}

#[test]
fn move_leader_to_a_named_follower() {
    let mut cluster = Cluster::start(3);
    let leader = cluster.wait_leader();
    let target = cluster.followers(leader)[1];
    let leader_hex = format!("{:x}", cluster.member_id(leader));
    let target_hex = format!("{:x}", cluster.member_id(target));

    let stdout = ok(cluster.etcdctl_serving(&["move-leader", &target_hex]));
    assert_eq!(
        stdout,
        format!("Leadership transferred from {leader_hex} to {target_hex}\n")
    );
    assert_eq!(cluster.wait_leader(), target);
    ok(cluster.etcdctl(leader, &["put", "moved/key", "v"]));

    // etcdctl needs the leader among its endpoints (checked on the client side).
    let follower = leader;
    assert_eq!(
        fails(cluster.etcdctl(follower, &["move-leader", &leader_hex])),
        format!(
            "Error: no leader endpoint given at [{}]",
            cluster.endpoint(follower)
        )
    );
    // Not a member.
    assert_eq!(
        fails(cluster.etcdctl_serving(&["move-leader", "1234"])),
        "Error: etcdserver: bad leader transferee"
    );
    // The RPC itself, sent to a follower.
    let target_id = cluster.member_id(target);
    let status = runtime().block_on(async {
        let mut client = cluster.client(follower, 15_000).await;
        grpc_status(
            client
                .move_leader(target_id)
                .await
                .expect_err("move-leader on a follower"),
        )
    });
    assert_eq!(status.code, code::FAILED_PRECONDITION);
    assert_eq!(status.message, "etcdserver: not leader");
    assert_eq!(cluster.wait_leader(), target);
}

#[test]
fn endpoint_status_health_and_hashkv_cover_the_cluster() {
    let cluster = Cluster::start(3);
    for k in 0..HASHKV_KEYS_COUNT {
        ok(cluster.etcdctl(
            k % 3,
            &["put", &format!("hash/{k:03}"), &format!("value-{k}")],
        ));
    }
    let endpoints: BTreeSet<String> = (0..3).map(|i| cluster.endpoint(i)).collect();
    let ids: BTreeSet<u64> = (0..3).map(|i| cluster.member_id(i)).collect();

    let stdout = ok(cluster.etcdctl(0, &["endpoint", "status", "--cluster", "-w", "json"]));
    let json: serde_json::Value = serde_json::from_str(&stdout).expect("status JSON");
    let entries = json.as_array().expect("array");
    assert_eq!(entries.len(), 3, "{stdout}");
    let listed: BTreeSet<String> = entries
        .iter()
        .map(|e| e["Endpoint"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(listed, endpoints);
    let statuses: Vec<_> = entries
        .iter()
        .map(|e| common::cluster::MemberStatus::from_json(e).expect("status entry"))
        .collect();
    let member_ids: BTreeSet<u64> = statuses.iter().map(|s| s.member_id).collect();
    assert_eq!(member_ids, ids);
    for s in &statuses {
        assert_eq!(s.cluster_id, statuses[0].cluster_id, "{statuses:?}");
        assert_eq!(s.leader, statuses[0].leader, "{statuses:?}");
        assert_eq!(s.raft_term, statuses[0].raft_term, "{statuses:?}");
        assert!(ids.contains(&s.leader), "{statuses:?}");
    }

    let (code, _, stderr) = text(&cluster.etcdctl(0, &["endpoint", "health", "--cluster"]));
    assert_eq!(code, 0, "{stderr}");
    for endpoint in &endpoints {
        let prefix = format!("{endpoint} is healthy: successfully committed proposal: took = ");
        assert!(stderr.lines().any(|l| l.starts_with(&prefix)), "{stderr}");
    }
    assert_eq!(stderr.lines().count(), 3, "{stderr}");
    let stdout = ok(cluster.etcdctl(0, &["endpoint", "health", "--cluster", "-w", "json"]));
    let json: serde_json::Value = serde_json::from_str(&stdout).expect("health JSON");
    let healthy: BTreeSet<String> = json
        .as_array()
        .expect("array")
        .iter()
        .map(|e| {
            assert_eq!(e["health"], true, "{e}");
            e["endpoint"].as_str().unwrap().to_string()
        })
        .collect();
    assert_eq!(healthy, endpoints);

    // Followers may still be applying the last writes: poll until the hashes agree.
    let hashes = wait_until(
        "equal hashes from `endpoint hashkv --cluster`",
        LEADER_TIMEOUT_MS,
        || {
            let stdout = ok(cluster.etcdctl(0, &["endpoint", "hashkv", "--cluster", "-w", "json"]));
            let json: serde_json::Value = serde_json::from_str(&stdout).expect("hashkv JSON");
            let entries: Vec<(String, u64, i64)> = json
                .as_array()
                .expect("array")
                .iter()
                .map(|e| {
                    (
                        e["Endpoint"].as_str().unwrap().to_string(),
                        e["HashKV"]["hash"].as_u64().unwrap_or(0),
                        e["HashKV"]["header"]["revision"].as_i64().unwrap_or(0),
                    )
                })
                .collect();
            let equal = entries
                .windows(2)
                .all(|w| w[0].1 == w[1].1 && w[0].2 == w[1].2);
            if equal {
                Ok(entries)
            } else {
                Err(format!("{entries:?}"))
            }
        },
    );
    assert_eq!(
        hashes.iter().map(|h| h.0.clone()).collect::<BTreeSet<_>>(),
        endpoints
    );
    assert_ne!(hashes[0].1, 0, "a store with keys hashes to something");
    assert_eq!(
        hashes[0].2,
        1 + HASHKV_KEYS_COUNT as i64,
        "one revision per put"
    );
}

#[test]
fn a_put_on_one_member_is_readable_on_every_other() {
    let cluster = Cluster::start(3);
    for writer in 0..3 {
        let key = format!("everywhere/{writer}");
        let value = format!("written-via-m{writer}");
        ok(cluster.etcdctl(writer, &["put", &key, &value]));
        for reader in (0..3).filter(|&r| r != writer) {
            // Linearizable: must see the acknowledged write at once, no polling.
            assert_eq!(
                get_value(&cluster, reader, &key, false),
                format!("{value}\n")
            );
            // Serializable after that linearizable read (which waited until applied).
            assert_eq!(
                get_value(&cluster, reader, &key, true),
                format!("{value}\n")
            );
        }
    }
    let json = ok(cluster.etcdctl(1, &["get", "everywhere/", "--prefix", "-w", "json"]));
    let json: serde_json::Value = serde_json::from_str(&json).expect("get JSON");
    assert_eq!(json["count"], 3, "{json}");
}

/// The `(ID, name, peerURLs)` of every member listed through `via`, sorted.
fn membership(cluster: &Cluster, via: usize) -> Vec<(u64, String, String)> {
    let mut list: Vec<_> = members_json(cluster, via)
        .iter()
        .map(|m| {
            (
                m["ID"].as_u64().unwrap(),
                m["name"].as_str().unwrap_or_default().to_string(),
                m["peerURLs"].to_string(),
            )
        })
        .collect();
    list.sort();
    list
}

/// Waits until some member's log reports the cluster ID mismatch (etcd rafthttp: "request
/// cluster ID mismatch" / "... due to cluster ID mismatch"), asserting on every poll
/// that member `rogue` never reports healthy as part of the cluster.
fn wait_cluster_id_mismatch(cluster: &Cluster, rogue: usize, rogue_may_serve_alone: bool) {
    wait_until(
        "a member's log to report `cluster ID mismatch`",
        LEADER_TIMEOUT_MS,
        || {
            if !rogue_may_serve_alone {
                assert!(
                    !is_healthy(cluster.member(rogue).client_port()),
                    "the rogue member became healthy"
                );
            }
            if (0..cluster.len()).any(|i| cluster.log_contains(i, "cluster ID mismatch")) {
                Ok(())
            } else {
                Err("no `cluster ID mismatch` in any log yet".to_string())
            }
        },
    );
}

/// Puts the rogue's data dir away and brings member `i` back with its own data and
/// flags; it must rejoin and converge.
fn restore_member(cluster: &mut Cluster, i: usize, saved: &std::path::Path) {
    cluster.kill9(i);
    let data_dir = cluster.member(i).data_dir().to_path_buf();
    std::fs::remove_dir_all(&data_dir).expect("remove rogue data dir");
    std::fs::rename(saved, &data_dir).expect("restore data dir");
    cluster.restart(i);
    cluster.wait_hashkv_equal(&[0, 1, 2]);
}

#[test]
fn a_member_with_the_data_dir_of_another_cluster_cannot_join() {
    let foreign = tempfile::tempdir().expect("temp dir");
    let foreign_data = foreign.path().join("data");
    {
        let mut other = Cluster::start(1);
        ok(other.etcdctl(0, &["put", "foreign/key", "other-cluster"]));
        other.kill9(0);
        copy_dir(other.member(0).data_dir(), &foreign_data);
    }

    let mut cluster = Cluster::start(3);
    ok(cluster.etcdctl(0, &["put", "home/key", "home"]));
    let home_status = cluster.status(0).expect("status");
    let before = membership(&cluster, 0);
    let rogue = 2;
    cluster.kill9(rogue);
    let saved = cluster.member(rogue).dir().join("data-saved");
    std::fs::rename(cluster.member(rogue).data_dir(), &saved).expect("save data dir");
    copy_dir(&foreign_data, cluster.member(rogue).data_dir());
    cluster.spawn(rogue);

    wait_cluster_id_mismatch(&cluster, rogue, true);
    // The rogue, if it serves at all, serves its own cluster, not this one.
    if let Ok(status) = cluster.status(rogue) {
        assert_ne!(status.cluster_id, home_status.cluster_id);
        let (_, stdout, _) = text(&cluster.etcdctl(rogue, &["get", "home/key", "--consistency=s"]));
        assert_eq!(stdout, "", "the rogue must not have this cluster's data");
    }
    // Nothing damaged: the others keep a leader, their membership and their data.
    cluster.wait_leader_among(&[0, 1]);
    assert_eq!(membership(&cluster, 0), before);
    assert_eq!(membership(&cluster, 1), before);
    ok(cluster.etcdctl(1, &["put", "home/after", "still-writable"]));
    assert_eq!(get_value(&cluster, 0, "home/key", false), "home\n");
    assert_eq!(get_value(&cluster, 0, "foreign/key", false), "");

    restore_member(&mut cluster, rogue, &saved);
    assert_eq!(
        get_value(&cluster, rogue, "home/after", false),
        "still-writable\n"
    );
}

#[test]
fn a_member_with_a_wrong_cluster_token_cannot_join() {
    let mut cluster = Cluster::start(3);
    ok(cluster.etcdctl(0, &["put", "token/key", "v"]));
    let before = membership(&cluster, 0);
    let rogue = 2;
    cluster.kill9(rogue);
    let saved = cluster.member(rogue).dir().join("data-saved");
    std::fs::rename(cluster.member(rogue).data_dir(), &saved).expect("save data dir");
    let token = cluster.member(rogue).initial_cluster_token.clone();
    cluster.member_mut(rogue).initial_cluster_token = "a-wrong-token".to_string();
    cluster.spawn(rogue);

    wait_cluster_id_mismatch(&cluster, rogue, false);
    assert!(!is_healthy(cluster.member(rogue).client_port()));
    cluster.wait_leader_among(&[0, 1]);
    assert_eq!(membership(&cluster, 0), before);
    assert_eq!(membership(&cluster, 1), before);
    ok(cluster.etcdctl(1, &["put", "token/after", "still-writable"]));

    cluster.member_mut(rogue).initial_cluster_token = token;
    restore_member(&mut cluster, rogue, &saved);
    assert_eq!(
        get_value(&cluster, rogue, "token/after", false),
        "still-writable\n"
    );
}

/// Cairn's `--auto-promote-learners` (etcd issue 15107): the leader promotes a learner on
/// its own once it has caught up; until it is started, it stays a learner.
#[test]
fn learners_are_promoted_automatically_when_asked() {
    if common::skip_unless_cairn("--auto-promote-learners is Cairn's own flag") {
        return;
    }
    let mut cluster = Cluster::builder()
        .args(&["--auto-promote-learners"])
        .start();
    ok(cluster.etcdctl(0, &["put", "auto/key", "v1"]));
    let cluster_hex = cluster_id_hex(&cluster, 0);
    let (learner, stdout) = cluster.member_add("m3", true);
    let id = added_member_id(&stdout, &cluster_hex);
    let is_learner = |cluster: &Cluster| {
        members_json(cluster, 0)
            .iter()
            .find(|m| m["ID"].as_u64() == Some(id))
            .map(|m| m["isLearner"] == true)
            .expect("member listed")
    };
    // Not started: it cannot catch up, so it is not promoted.
    assert!(is_learner(&cluster));
    cluster.start_member(learner);
    wait_until(
        "the leader to promote the caught-up learner",
        PROMOTE_TIMEOUT_MS,
        || {
            if is_learner(&cluster) {
                Err("still a learner".to_string())
            } else {
                Ok(())
            }
        },
    );
    assert_eq!(get_value(&cluster, learner, "auto/key", false), "v1\n");
}
