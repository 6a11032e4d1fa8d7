//! Auth on a three-member cluster: a token issued by one member is accepted by every
//! member (simple tokens are assigned when Authenticate applies, on each member; JWTs are
//! verified with the shared key), and a password change or a deleted user ends it
//! everywhere. Driven through the JSON gateway (`/v3/auth/authenticate`, then the token
//! in `Authorization`), so one token can be carried from member to member. Runs against
//! etcd too (`CAIRN_TEST_TARGET=etcd`).

mod common;

use std::process::Command;

use common::cluster::Cluster;
use serde_json::{json, Value};

fn ctl(cluster: &Cluster, i: usize, args: &[&str]) -> String {
    let out = common::cluster::etcdctl_timeout(&[cluster.endpoint(i)], 15_000, args);
    let (code, stdout, stderr) = common::text(&out);
    assert_eq!(code, 0, "etcdctl {args:?}: {stdout} {stderr}");
    stdout
}

/// POSTs `body` to the member's gateway at `/v3/<path>` with curl (etcd's gateway sends
/// errors chunked, with HTTP trailers), with `token` in `Authorization`; returns the HTTP
/// status and the JSON reply.
fn post(cluster: &Cluster, i: usize, path: &str, token: Option<&str>, body: Value) -> (u16, Value) {
    let url = format!("{}/v3/{path}", cluster.endpoint(i));
    let mut curl = Command::new("curl");
    curl.args([
        "-s",
        "-w",
        "\n%{http_code}",
        "-X",
        "POST",
        &url,
        "-d",
        &body.to_string(),
    ]);
    if let Some(token) = token {
        curl.args(["-H", &format!("Authorization: {token}")]);
    }
    let out = curl.output().expect("curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (reply, status) = text
        .rsplit_once('\n')
        .unwrap_or_else(|| panic!("{url}: {text}"));
    let json = serde_json::from_str(reply).unwrap_or_else(|e| panic!("{url}: {e}: {reply}"));
    (status.parse().expect("HTTP status"), json)
}

fn b64(s: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(s)
}

fn authenticate(cluster: &Cluster, i: usize, password: &str) -> String {
    let body = json!({"name": "alice", "password": password});
    let (status, reply) = post(cluster, i, "auth/authenticate", None, body);
    assert_eq!(status, 200, "{reply}");
    reply["token"].as_str().expect("token").to_string()
}

/// The gateway's error text, or `None` for a success.
fn range(cluster: &Cluster, i: usize, token: &str, key: &str) -> Result<Value, String> {
    let (status, reply) = post(
        cluster,
        i,
        "kv/range",
        Some(token),
        json!({"key": b64(key)}),
    );
    match status {
        200 => Ok(reply),
        _ => Err(reply["error"].as_str().unwrap_or_default().to_string()),
    }
}

/// root and alice (may read `pub/`), auth enabled, one readable and one secret key.
fn set_up(cluster: &Cluster) {
    ctl(cluster, 0, &["put", "pub/a", "1"]);
    ctl(cluster, 0, &["put", "secret", "s"]);
    for (user, password) in [("root", "rootpw"), ("alice", "alicepw")] {
        let flag = format!("--new-user-password={password}");
        ctl(
            cluster,
            0,
            &["user", "add", user, &flag, "--interactive=false"],
        );
    }
    ctl(cluster, 0, &["user", "grant-role", "root", "root"]);
    ctl(cluster, 0, &["role", "add", "reader"]);
    let grant = [
        "role",
        "grant-permission",
        "reader",
        "read",
        "pub/",
        "--prefix",
    ];
    ctl(cluster, 0, &grant);
    ctl(cluster, 0, &["user", "grant-role", "alice", "reader"]);
    ctl(cluster, 0, &["auth", "enable"]);
}

/// A token from member 0 reads on every member, and is refused past its permission.
fn assert_token_works_everywhere(cluster: &Cluster, token: &str) {
    for i in 0..cluster.len() {
        let reply = range(cluster, i, token, "pub/a").unwrap_or_else(|e| panic!("member {i}: {e}"));
        assert_eq!(reply["kvs"][0]["value"], b64("1"), "member {i}");
        assert_eq!(
            range(cluster, i, token, "secret").unwrap_err(),
            "etcdserver: permission denied",
            "member {i}"
        );
    }
}

#[test]
fn simple_tokens_work_on_every_member_until_the_password_changes() {
    let cluster = Cluster::start(3);
    set_up(&cluster);
    let token = authenticate(&cluster, 0, "alicepw");
    assert_token_works_everywhere(&cluster, &token);

    let root = ["--user", "root:rootpw"];
    let passwd = [
        &root[..],
        &["user", "passwd", "alice", "--interactive=false"],
    ]
    .concat();
    let out = common::cluster::etcdctl_timeout(&[cluster.endpoint(1)], 15_000, &passwd);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // etcdctl 3.4 reads the new password from stdin with --interactive=false; it got none
    // here, so the password is now empty: the old one no longer authenticates.
    for i in 0..cluster.len() {
        assert_eq!(
            range(&cluster, i, &token, "pub/a").unwrap_err(),
            "etcdserver: invalid auth token",
            "member {i}: the old token is gone after the password change"
        );
    }
    let body = json!({"name": "alice", "password": "alicepw"});
    let (status, reply) = post(&cluster, 2, "auth/authenticate", None, body);
    assert_ne!(status, 200, "{reply}");
    assert_eq!(
        reply["error"],
        "etcdserver: authentication failed, invalid user ID or password"
    );
}

#[test]
fn jwt_tokens_work_on_every_member_and_a_deleted_user_is_refused() {
    let keys = tempfile::tempdir().unwrap();
    let private = keys.path().join("jwt.key");
    let public = keys.path().join("jwt.pub");
    let openssl = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .output()
            .expect("openssl");
        assert!(out.status.success(), "openssl {args:?}: {out:?}");
    };
    let (k, p) = (private.display().to_string(), public.display().to_string());
    openssl(&["genrsa", "-out", &k, "2048"]);
    openssl(&["rsa", "-in", &k, "-pubout", "-out", &p]);
    let spec = format!("jwt,pub-key={p},priv-key={k},sign-method=RS256,ttl=10m");
    let cluster = Cluster::builder()
        .size(3)
        .args(&["--auth-token", &spec])
        .start();
    set_up(&cluster);
    let token = authenticate(&cluster, 0, "alicepw");
    assert_eq!(token.split('.').count(), 3, "a JWT: {token}");
    assert_token_works_everywhere(&cluster, &token);

    ctl(
        &cluster,
        1,
        &["--user", "root:rootpw", "user", "delete", "alice"],
    );
    for i in 0..cluster.len() {
        // The JWT names the auth revision it was issued at; the delete moved past it.
        assert_eq!(
            range(&cluster, i, &token, "pub/a").unwrap_err(),
            "etcdserver: revision of auth store is old",
            "member {i}: a deleted user's JWT"
        );
    }
}

#[test]
fn an_expired_lease_is_revoked_while_auth_is_enabled() {
    let cluster = Cluster::start(1);
    set_up(&cluster);
    let root = ["--user", "root:rootpw"];
    let granted = ctl(&cluster, 0, &[&root[..], &["lease", "grant", "2"]].concat());
    let id = granted
        .split_whitespace()
        .nth(1)
        .expect("lease id")
        .to_string();
    ctl(
        &cluster,
        0,
        &[&root[..], &["put", "secret", "leased", "--lease", &id]].concat(),
    );
    // The leader revokes it on its own account: no user of the cluster could have.
    let get = [&root[..], &["get", "secret", "--print-value-only"]].concat();
    common::cluster::wait_until("the expired lease's key to go", 20_000, || {
        match ctl(&cluster, 0, &get) {
            out if out.is_empty() => Ok(()),
            out => Err(format!("secret = {out:?}")),
        }
    });
}

#[test]
fn lock_and_election_services_act_as_their_caller() {
    let cluster = Cluster::start(1);
    set_up(&cluster);
    let token = authenticate(&cluster, 0, "alicepw");
    // alice may only read pub/: the Lock service's put of `pub/l/<lease>` is refused, and
    // so is an election campaign there.
    let name = json!({"name": b64("pub/l")});
    let (status, reply) = post(&cluster, 0, "lock/lock", Some(&token), name);
    assert_ne!(status, 200, "{reply}");
    assert_eq!(reply["error"], "etcdserver: permission denied", "{reply}");
    let campaign = json!({"name": b64("pub/e"), "value": b64("v")});
    let (status, reply) = post(&cluster, 0, "election/campaign", Some(&token), campaign);
    assert_ne!(status, 200, "{reply}");
    assert_eq!(reply["error"], "etcdserver: permission denied", "{reply}");
    // Reading the election's leader is a read of pub/e/: allowed (and there is none).
    let (_, reply) = post(
        &cluster,
        0,
        "election/leader",
        Some(&token),
        json!({"name": b64("pub/e")}),
    );
    assert_eq!(reply["error"], "election: no leader", "{reply}");
    let keys = ctl(
        &cluster,
        0,
        &[
            "--user",
            "root:rootpw",
            "get",
            "pub/",
            "--prefix",
            "--keys-only",
        ],
    );
    assert_eq!(keys.trim(), "pub/a", "nothing was written");
}
