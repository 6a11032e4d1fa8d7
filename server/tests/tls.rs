//! TLS on client and peer URLs, driven by the real `etcdctl` (and `openssl s_client` /
//! `curl` where a raw TLS client is needed). Certificates are generated per test with rcgen.
//!
//! Every test also runs against Debian's etcd 3.4 (`CAIRN_TEST_TARGET=etcd`); the few
//! Cairn-only checks say so.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::Target;
use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyIdMethod, KeyPair, KeyUsagePurpose, RevocationReason,
    RevokedCertParams, SerialNumber,
};

/// How long a member may take to answer `endpoint health` after spawn.
const STARTUP_TIMEOUT_MS: u64 = 30_000;

/// A certificate authority that issues test certificates.
struct Ca {
    cert: rcgen::Certificate,
    key: KeyPair,
}

impl Ca {
    fn new(name: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        Ca { cert, key }
    }

    /// A leaf certificate: `(cert PEM, key PEM)`. `server`: serverAuth + clientAuth (peer
    /// certificates are both, as kubeadm's); else clientAuth only.
    fn issue(&self, cn: &str, serial: u64, server: bool, expired: bool) -> (String, String) {
        let sans = if server {
            vec!["127.0.0.1".to_string(), "localhost".to_string()]
        } else {
            Vec::new()
        };
        let mut params = CertificateParams::new(sans).unwrap();
        params.distinguished_name.push(DnType::CommonName, cn);
        params.serial_number = Some(SerialNumber::from(serial));
        params.extended_key_usages = if server {
            vec![
                ExtendedKeyUsagePurpose::ServerAuth,
                ExtendedKeyUsagePurpose::ClientAuth,
            ]
        } else {
            vec![ExtendedKeyUsagePurpose::ClientAuth]
        };
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        if expired {
            params.not_before = rcgen::date_time_ymd(2020, 1, 1);
            params.not_after = rcgen::date_time_ymd(2021, 1, 1);
        } else {
            params.not_before = rcgen::date_time_ymd(2024, 1, 1);
            params.not_after = rcgen::date_time_ymd(2124, 1, 1);
        }
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.cert, &self.key).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    /// A PEM CRL revoking `serials`.
    fn crl(&self, serials: &[u64]) -> String {
        let params = CertificateRevocationListParams {
            this_update: rcgen::date_time_ymd(2024, 1, 1),
            next_update: rcgen::date_time_ymd(2124, 1, 1),
            crl_number: SerialNumber::from(1u64),
            issuing_distribution_point: None,
            revoked_certs: serials
                .iter()
                .map(|s| RevokedCertParams {
                    serial_number: SerialNumber::from(*s),
                    revocation_time: rcgen::date_time_ymd(2024, 6, 1),
                    reason_code: Some(RevocationReason::KeyCompromise),
                    invalidity_date: None,
                })
                .collect(),
            key_identifier_method: KeyIdMethod::Sha256,
        };
        params
            .signed_by(&self.cert, &self.key)
            .unwrap()
            .pem()
            .unwrap()
    }
}

/// The files of one test: CA, server/peer pair, client pairs.
struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn arg(&self, name: &str) -> String {
        self.path(name).display().to_string()
    }

    fn write(&self, name: &str, text: &str) {
        std::fs::write(self.path(name), text).unwrap();
    }

    fn write_pair(&self, stem: &str, pair: (String, String)) {
        self.write(&format!("{stem}.crt"), &pair.0);
        self.write(&format!("{stem}.key"), &pair.1);
    }

    /// ca.crt; server.{crt,key} (serial 2); client (10); other-CA client (11); expired
    /// (12); revoked (13, listed in crl.pem).
    fn new() -> (Pki, Ca) {
        let pki = Pki {
            dir: tempfile::tempdir().unwrap(),
        };
        let ca = Ca::new("cairn-test-ca");
        let other = Ca::new("other-ca");
        pki.write("ca.crt", &ca.cert.pem());
        pki.write_pair("server", ca.issue("server-1", 2, true, false));
        pki.write_pair("client", ca.issue("client", 10, false, false));
        pki.write_pair("other", other.issue("client", 11, false, false));
        pki.write_pair("expired", ca.issue("client", 12, false, true));
        pki.write_pair("revoked", ca.issue("client", 13, false, false));
        pki.write("crl.pem", &ca.crl(&[13]));
        (pki, ca)
    }

    /// etcdctl's TLS flags with client pair `stem`.
    fn etcdctl_tls(&self, stem: &str) -> Vec<String> {
        vec![
            format!("--cacert={}", self.arg("ca.crt")),
            format!("--cert={}", self.arg(&format!("{stem}.crt"))),
            format!("--key={}", self.arg(&format!("{stem}.key"))),
        ]
    }
}

/// One spawned member; killed (SIGKILL) when dropped.
struct Member {
    child: Child,
    log: PathBuf,
    client_url: String,
    data_dir: PathBuf,
    args: Vec<String>,
}

impl Member {
    fn spawn(args: Vec<String>, log: PathBuf, client_url: String, data_dir: PathBuf) -> Member {
        let child = spawn_target(&args, &log);
        Member {
            child,
            log,
            client_url,
            data_dir,
            args,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn restart(&mut self) {
        self.kill();
        self.child = spawn_target(&self.args, &self.log);
    }

    /// Waits until `etcdctl endpoint health` with `tls` flags succeeds.
    fn wait_healthy(&mut self, tls: &[String]) {
        let deadline = Instant::now() + Duration::from_millis(STARTUP_TIMEOUT_MS);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "member exited during start-up ({status}); log:\n{}",
                    self.log()
                );
            }
            let out = etcdctl(&self.client_url, tls, &["endpoint", "health"]);
            if out.status.success() {
                return;
            }
            if Instant::now() > deadline {
                panic!(
                    "member not healthy within {STARTUP_TIMEOUT_MS} ms: {}\nlog:\n{}",
                    String::from_utf8_lossy(&out.stderr),
                    self.log()
                );
            }
        }
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        self.kill();
    }
}

fn spawn_target(args: &[String], log: &Path) -> Child {
    let log_file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    Target::from_env()
        .command()
        .args(args)
        .stdout(log_file.try_clone().unwrap())
        .stderr(log_file)
        .spawn()
        .expect("spawn the server under test")
}

/// Runs `etcdctl` (v3) against `endpoint` with short timeouts: a refused handshake fails
/// within the dial timeout.
fn etcdctl(endpoint: &str, tls: &[String], args: &[&str]) -> Output {
    Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .env_remove("ETCDCTL_ENDPOINTS")
        .arg(format!("--endpoints={endpoint}"))
        .arg("--dial-timeout=2s")
        .arg("--command-timeout=5s")
        .args(tls)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("spawn etcdctl (Debian package etcd-client)")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The kubeadm-style flags of member `name` (mutual TLS on client and peer URLs).
fn kubeadm_args(
    pki: &Pki,
    name: &str,
    data_dir: &Path,
    client_port: u16,
    peer_port: u16,
    initial_cluster: &str,
) -> Vec<String> {
    let mut args = vec![
        "--advertise-client-urls".to_string(),
        format!("https://127.0.0.1:{client_port}"),
        format!("--cert-file={}", pki.arg("server.crt")),
        "--client-cert-auth=true".to_string(),
        format!("--data-dir={}", data_dir.display()),
        "--experimental-initial-corrupt-check=true".to_string(),
        format!("--initial-advertise-peer-urls=https://127.0.0.1:{peer_port}"),
        format!("--initial-cluster={initial_cluster}"),
        "--initial-cluster-token=tls-test".to_string(),
        format!("--key-file={}", pki.arg("server.key")),
        format!("--listen-client-urls=https://127.0.0.1:{client_port}"),
        format!("--listen-peer-urls=https://127.0.0.1:{peer_port}"),
        format!("--name={name}"),
        format!("--peer-cert-file={}", pki.arg("server.crt")),
        "--peer-client-cert-auth=true".to_string(),
        format!("--peer-key-file={}", pki.arg("server.key")),
        format!("--peer-trusted-ca-file={}", pki.arg("ca.crt")),
        "--snapshot-count=10000".to_string(),
        format!("--trusted-ca-file={}", pki.arg("ca.crt")),
    ];
    if Target::from_env() == Target::Cairn {
        // Two cores on a shared two-core machine: one executor per member is plenty.
        args.push("--cores=1".to_string());
    }
    args
}

fn start_single(pki: &Pki, extra: &[String]) -> (Member, tempfile::TempDir) {
    let work = tempfile::tempdir().unwrap();
    let (client_port, peer_port) = (common::free_port(), common::free_port());
    let data_dir = work.path().join("data");
    let mut args = kubeadm_args(
        pki,
        "m1",
        &data_dir,
        client_port,
        peer_port,
        &format!("m1=https://127.0.0.1:{peer_port}"),
    );
    args.extend_from_slice(extra);
    let member = Member::spawn(
        args,
        work.path().join("log"),
        format!("https://127.0.0.1:{client_port}"),
        data_dir,
    );
    (member, work)
}

/// Free `(client, peer)` ports for members m1..m3 and their `--initial-cluster` with
/// `https://` peer URLs.
fn three_members_on_https_peer_urls() -> (Vec<(u16, u16)>, String) {
    let ports: Vec<(u16, u16)> = (0..3)
        .map(|_| (common::free_port(), common::free_port()))
        .collect();
    let initial = ports
        .iter()
        .enumerate()
        .map(|(i, (_, p))| format!("m{}=https://127.0.0.1:{p}", i + 1))
        .collect::<Vec<_>>()
        .join(",");
    (ports, initial)
}

fn port_of(url: &str) -> u16 {
    url.rsplit(':').next().unwrap().parse().unwrap()
}

#[test]
fn kubeadm_single_member_serves_etcdctl_over_mutual_tls_and_refuses_bad_clients() {
    let (pki, _ca) = Pki::new();
    let crl = format!("--client-crl-file={}", pki.arg("crl.pem"));
    let (mut member, _work) = start_single(&pki, &[crl]);
    let good = pki.etcdctl_tls("client");
    member.wait_healthy(&good);
    let url = member.client_url.clone();

    let put = etcdctl(&url, &good, &["put", "k", "v"]);
    assert!(put.status.success(), "put: {put:?}");
    assert_eq!(stdout(&put), "OK\n");
    let get = etcdctl(&url, &good, &["get", "k"]);
    assert_eq!(stdout(&get), "k\nv\n");
    let health = etcdctl(&url, &good, &["endpoint", "health"]);
    assert!(
        String::from_utf8_lossy(&health.stderr).contains(&format!("{url} is healthy")),
        "{health:?}"
    );

    for (stem, why) in [
        ("other", "a client certificate from another CA"),
        ("expired", "an expired client certificate"),
        ("revoked", "a client certificate the CRL revokes"),
    ] {
        let out = etcdctl(&url, &pki.etcdctl_tls(stem), &["get", "k"]);
        assert!(!out.status.success(), "{why} was accepted: {out:?}");
        assert_eq!(stdout(&out), "", "{why} read data");
    }
    let no_cert = etcdctl(
        &url,
        &[format!("--cacert={}", pki.arg("ca.crt"))],
        &["get", "k"],
    );
    assert!(
        !no_cert.status.success(),
        "no client cert was accepted: {no_cert:?}"
    );

    // Plaintext on the TLS port: no HTTP answer, the connection is closed.
    let mut plain = TcpStream::connect(("127.0.0.1", port_of(&url))).unwrap();
    plain
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    plain
        .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut answer = Vec::new();
    let _ = plain.read_to_end(&mut answer);
    assert!(
        !String::from_utf8_lossy(&answer).contains("\"health\""),
        "plaintext got an answer: {:?}",
        String::from_utf8_lossy(&answer)
    );
}

/// `GET /members` on the peer port `port` with client pair `stem` (curl, HTTP/1.1).
fn peer_members(pki: &Pki, port: u16, stem: &str) -> Output {
    Command::new("curl")
        .args(["-sS", "--http1.1", "--max-time", "10"])
        .args(["--cacert", &pki.arg("ca.crt")])
        .args(["--cert", &pki.arg(&format!("{stem}.crt"))])
        .args(["--key", &pki.arg(&format!("{stem}.key"))])
        .arg(format!("https://127.0.0.1:{port}/members"))
        .output()
        .expect("curl")
}

#[test]
fn allowed_client_hostname_and_peer_cn_refuse_other_certificates() {
    let (pki, _ca) = Pki::new();
    // "server" carries SANs 127.0.0.1 and localhost and CN server-1; "client" has no SAN
    // and CN client. Both chain to the trusted CA.
    let (mut member, _work) = start_single(
        &pki,
        &[
            "--client-cert-allowed-hostname=localhost".to_string(),
            "--peer-cert-allowed-cn=server-1".to_string(),
        ],
    );
    let allowed = pki.etcdctl_tls("server");
    member.wait_healthy(&allowed);
    let url = member.client_url.clone();
    let put = etcdctl(&url, &allowed, &["put", "k", "v"]);
    assert_eq!(stdout(&put), "OK\n", "{put:?}");
    let refused = etcdctl(&url, &pki.etcdctl_tls("client"), &["get", "k"]);
    assert!(
        !refused.status.success(),
        "a client certificate without the allowed hostname was accepted: {refused:?}"
    );
    assert_eq!(stdout(&refused), "");

    let peer_port = member
        .args
        .iter()
        .find_map(|a| a.strip_prefix("--listen-peer-urls="))
        .map(port_of)
        .expect("--listen-peer-urls");
    let peer = peer_members(&pki, peer_port, "server");
    assert!(peer.status.success(), "{peer:?}");
    assert!(stdout(&peer).contains("peerURLs"), "{peer:?}");
    let wrong_cn = peer_members(&pki, peer_port, "client");
    assert!(
        !wrong_cn.status.success(),
        "a peer certificate with another CN was accepted: {wrong_cn:?}"
    );
}

/// `openssl s_client` connecting with the test client certificate: its output (the server
/// certificate's subject among it).
fn s_client(pki: &Pki, port: u16) -> String {
    let out = Command::new("openssl")
        .args(["s_client", "-connect", &format!("127.0.0.1:{port}")])
        .args(["-CAfile", &pki.arg("ca.crt")])
        .args([
            "-cert",
            &pki.arg("client.crt"),
            "-key",
            &pki.arg("client.key"),
        ])
        .stdin(Stdio::null())
        .output()
        .expect("openssl");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn rotated_certificate_is_served_to_new_connections_without_restart() {
    let (pki, ca) = Pki::new();
    let (mut member, _work) = start_single(&pki, &[]);
    let good = pki.etcdctl_tls("client");
    member.wait_healthy(&good);
    let port = port_of(&member.client_url);
    let before = s_client(&pki, port);
    assert!(
        before.contains("CN = server-1") || before.contains("CN=server-1"),
        "{before}"
    );

    // Replace the files as cert-manager or kubeadm renewal does: new pair, same paths.
    let (cert, key) = ca.issue("server-2", 3, true, false);
    let tmp = pki.path("server.new");
    std::fs::write(&tmp, &key).unwrap();
    std::fs::rename(&tmp, pki.path("server.key")).unwrap();
    std::fs::write(&tmp, &cert).unwrap();
    std::fs::rename(&tmp, pki.path("server.crt")).unwrap();

    let after = s_client(&pki, port);
    assert!(
        after.contains("CN = server-2") || after.contains("CN=server-2"),
        "{after}"
    );
    let put = etcdctl(&member.client_url, &good, &["put", "k", "rotated"]);
    assert!(put.status.success(), "{put:?}");

    if common::skip_unless_cairn("etcd fails handshakes while the key file is bad") {
        return;
    }
    // A bad replacement is refused; the last good certificate stays in use.
    std::fs::write(pki.path("server.key"), "not a key").unwrap();
    let kept = s_client(&pki, port);
    assert!(
        kept.contains("CN = server-2") || kept.contains("CN=server-2"),
        "{kept}"
    );
    let get = etcdctl(
        &member.client_url,
        &good,
        &["get", "k", "--print-value-only"],
    );
    assert_eq!(stdout(&get), "rotated\n");
    assert!(
        member
            .log()
            .contains("changed certificate files cannot be used"),
        "{}",
        member.log()
    );
}

#[test]
fn bad_key_file_stops_the_start_with_an_error_naming_it() {
    let (pki, _ca) = Pki::new();
    pki.write(
        "bad.key",
        "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
    );
    let work = tempfile::tempdir().unwrap();
    let (client_port, peer_port) = (common::free_port(), common::free_port());
    let mut args = kubeadm_args(
        &pki,
        "m1",
        &work.path().join("data"),
        client_port,
        peer_port,
        &format!("m1=https://127.0.0.1:{peer_port}"),
    );
    for arg in &mut args {
        if arg.starts_with("--key-file=") {
            *arg = format!("--key-file={}", pki.arg("bad.key"));
        }
    }
    let mut command = Target::from_env().command();
    command.args(&args);
    let out = common::run_to_exit(command, 30_000);
    assert!(!out.status.success(), "started with a bad key: {out:?}");
    if Target::from_env() == Target::Cairn {
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(&pki.arg("bad.key")), "{stderr}");
        assert!(stderr.contains("key file"), "{stderr}");
    }
}

#[test]
fn auto_tls_serves_etcdctl_with_insecure_skip_verify_and_reuses_its_certificate() {
    let work = tempfile::tempdir().unwrap();
    let (client_port, peer_port) = (common::free_port(), common::free_port());
    let data_dir = work.path().join("data");
    let mut args = vec![
        "--name=m1".to_string(),
        format!("--data-dir={}", data_dir.display()),
        format!("--listen-client-urls=https://127.0.0.1:{client_port}"),
        format!("--advertise-client-urls=https://127.0.0.1:{client_port}"),
        format!("--listen-peer-urls=http://127.0.0.1:{peer_port}"),
        format!("--initial-advertise-peer-urls=http://127.0.0.1:{peer_port}"),
        format!("--initial-cluster=m1=http://127.0.0.1:{peer_port}"),
        "--auto-tls".to_string(),
    ];
    if Target::from_env() == Target::Cairn {
        args.push("--cores=1".to_string());
    }
    let mut member = Member::spawn(
        args,
        work.path().join("log"),
        format!("https://127.0.0.1:{client_port}"),
        data_dir.clone(),
    );
    // etcdctl 3.4 applies --insecure-skip-tls-verify only to a TLS config it built, and
    // builds none without --cacert/--cert/--key unless --insecure-transport=false
    // (etcdctl/ctlv3/command/global.go); the same holds against etcd.
    let insecure = vec![
        "--insecure-transport=false".to_string(),
        "--insecure-skip-tls-verify".to_string(),
    ];
    member.wait_healthy(&insecure);
    let put = etcdctl(&member.client_url, &insecure, &["put", "a", "1"]);
    assert_eq!(stdout(&put), "OK\n", "{put:?}");
    // Without skipping verification the self-signed certificate is refused by etcdctl.
    let verified = etcdctl(
        &member.client_url,
        &["--insecure-transport=false".to_string()],
        &["get", "a"],
    );
    assert!(!verified.status.success(), "{verified:?}");

    let cert = member.data_dir.join("fixtures/client/cert.pem");
    let key = member.data_dir.join("fixtures/client/key.pem");
    let first = std::fs::read(&cert).expect("fixtures/client/cert.pem");
    assert!(key.is_file());
    member.restart();
    member.wait_healthy(&insecure);
    assert_eq!(
        std::fs::read(&cert).unwrap(),
        first,
        "regenerated on restart"
    );
    let get = etcdctl(
        &member.client_url,
        &insecure,
        &["get", "a", "--print-value-only"],
    );
    assert_eq!(stdout(&get), "1\n");
}

#[test]
fn three_members_replicate_over_mutual_tls_and_refuse_a_peer_from_another_ca() {
    let (pki, _ca) = Pki::new();
    let work = tempfile::tempdir().unwrap();
    let (ports, initial) = three_members_on_https_peer_urls();
    let mut members: Vec<Member> = ports
        .iter()
        .enumerate()
        .map(|(i, (c, p))| {
            let name = format!("m{}", i + 1);
            let data_dir = work.path().join(&name);
            Member::spawn(
                kubeadm_args(&pki, &name, &data_dir, *c, *p, &initial),
                work.path().join(format!("{name}.log")),
                format!("https://127.0.0.1:{c}"),
                data_dir,
            )
        })
        .collect();
    let good = pki.etcdctl_tls("client");
    for member in &mut members {
        member.wait_healthy(&good);
    }
    let put = etcdctl(&members[0].client_url, &good, &["put", "replicated", "yes"]);
    assert_eq!(stdout(&put), "OK\n", "{put:?}");
    for member in &members[1..] {
        let get = etcdctl(
            &member.client_url,
            &good,
            &["get", "replicated", "--print-value-only"],
        );
        assert_eq!(stdout(&get), "yes\n", "{get:?}");
    }
    let list = etcdctl(&members[2].client_url, &good, &["member", "list"]);
    assert_eq!(
        stdout(&list).matches("https://127.0.0.1:").count(),
        6,
        "{list:?}"
    );

    // The peer port: a client certificate from another CA is refused in the handshake;
    // one from the cluster's CA gets the member list (etcd serves /members there).
    let refused = peer_members(&pki, ports[0].1, "other");
    assert!(!refused.status.success(), "{refused:?}");
    let accepted = peer_members(&pki, ports[0].1, "server");
    assert!(accepted.status.success(), "{accepted:?}");
    assert!(stdout(&accepted).contains("peerURLs"), "{accepted:?}");

    // A fourth member joins over https peer URLs: it reads the running cluster's members
    // from a peer's `/members` with its peer certificate, then catches up.
    let (client_port, peer_port) = (common::free_port(), common::free_port());
    let peer_url = format!("https://127.0.0.1:{peer_port}");
    // etcd (strict reconfig check) refuses to add a member until it has been connected to
    // every voter for 5 s (`etcdserver: unhealthy cluster`); Cairn accepts at once.
    let deadline =
        Instant::now() + Duration::from_millis(common::cluster::RECONFIG_READY_TIMEOUT_MS);
    let add = loop {
        let add = etcdctl(
            &members[0].client_url,
            &good,
            &["member", "add", "m4", &format!("--peer-urls={peer_url}")],
        );
        let unhealthy =
            String::from_utf8_lossy(&add.stderr).contains(common::cluster::UNHEALTHY_CLUSTER_ERROR);
        if !unhealthy || Instant::now() > deadline {
            break add;
        }
        std::thread::sleep(Duration::from_millis(common::cluster::POLL_INTERVAL_MS));
    };
    assert!(add.status.success(), "{add:?}");
    let data_dir = work.path().join("m4");
    let mut args = kubeadm_args(
        &pki,
        "m4",
        &data_dir,
        client_port,
        peer_port,
        &format!("{initial},m4={peer_url}"),
    );
    args.push("--initial-cluster-state=existing".to_string());
    let mut joined = Member::spawn(
        args,
        work.path().join("m4.log"),
        format!("https://127.0.0.1:{client_port}"),
        data_dir,
    );
    joined.wait_healthy(&good);
    let get = etcdctl(
        &joined.client_url,
        &good,
        &["get", "replicated", "--print-value-only"],
    );
    assert_eq!(stdout(&get), "yes\n", "{get:?}");
}

#[test]
fn unknown_cipher_suite_stops_the_start_naming_it() {
    let (pki, _ca) = Pki::new();
    let work = tempfile::tempdir().unwrap();
    let (client_port, peer_port) = (common::free_port(), common::free_port());
    let mut args = kubeadm_args(
        &pki,
        "m1",
        &work.path().join("data"),
        client_port,
        peer_port,
        &format!("m1=https://127.0.0.1:{peer_port}"),
    );
    args.push("--cipher-suites=TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,TLS_BOGUS".to_string());
    let mut command = Target::from_env().command();
    command.args(&args);
    let out = common::run_to_exit(command, 30_000);
    assert!(!out.status.success(), "started with a bogus suite: {out:?}");
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(all.contains("TLS_BOGUS"), "{all}");
    if Target::from_env() == Target::Cairn {
        // The fatal log line is JSON: the quotes around the name are escaped.
        assert!(
            all.contains(r#"unexpected TLS cipher suite \"TLS_BOGUS\""#),
            "{all}"
        );
    }
}

#[test]
fn three_members_replicate_over_peer_auto_tls() {
    let work = tempfile::tempdir().unwrap();
    let (ports, initial) = three_members_on_https_peer_urls();
    let mut members: Vec<Member> = ports
        .iter()
        .enumerate()
        .map(|(i, (c, p))| {
            let name = format!("m{}", i + 1);
            let data_dir = work.path().join(&name);
            let mut args = vec![
                format!("--name={name}"),
                format!("--data-dir={}", data_dir.display()),
                format!("--listen-client-urls=http://127.0.0.1:{c}"),
                format!("--advertise-client-urls=http://127.0.0.1:{c}"),
                format!("--listen-peer-urls=https://127.0.0.1:{p}"),
                format!("--initial-advertise-peer-urls=https://127.0.0.1:{p}"),
                format!("--initial-cluster={initial}"),
                "--initial-cluster-token=peer-auto-tls".to_string(),
                "--peer-auto-tls".to_string(),
            ];
            if Target::from_env() == Target::Cairn {
                args.push("--cores=1".to_string());
            }
            Member::spawn(
                args,
                work.path().join(format!("{name}.log")),
                format!("http://127.0.0.1:{c}"),
                data_dir,
            )
        })
        .collect();
    for member in &mut members {
        member.wait_healthy(&[]);
    }
    let put = etcdctl(&members[0].client_url, &[], &["put", "over-auto-tls", "1"]);
    assert_eq!(stdout(&put), "OK\n", "{put:?}");
    let get = etcdctl(
        &members[2].client_url,
        &[],
        &["get", "over-auto-tls", "--print-value-only"],
    );
    assert_eq!(stdout(&get), "1\n", "{get:?}");
    for member in &members {
        assert!(member.data_dir.join("fixtures/peer/cert.pem").is_file());
        assert!(member.data_dir.join("fixtures/peer/key.pem").is_file());
    }
}
