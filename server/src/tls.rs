//! From the TLS flags (`ServerConfig.client_tls`, `peer_tls`, `tls_common`) to `net`'s TLS
//! settings, and the self-signed certificates of `--auto-tls` / `--peer-auto-tls`.
//!
//! etcd's rules followed here (`embed/config.go`, `etcdmain/etcd.go`,
//! `pkg/transport/listener.go`):
//! - a trusted CA file alone already makes the server require client certificates;
//! - auto-TLS generates `cert.pem` and `key.pem` under `<data-dir>/fixtures/client` and
//!   `<data-dir>/fixtures/peer`, for the hosts of the listen URLs, and reuses them when both
//!   files exist; it is ignored (with a warning) when a certificate and key are given;
//! - with `--peer-auto-tls` the peer dialer does not verify the other member's certificate
//!   (`InsecureSkipVerify`), since no CA vouches for self-signed certificates.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use net::tls::{
    ClientTlsSettings, ServerTlsSettings, TlsAcceptor, TlsConnector, TlsParams, TlsVersion,
};
use tracing::{info, warn};

use crate::config::{ServerConfig, TlsCommon, TlsFlags};

/// Days per year of `--self-signed-cert-validity` (etcd: `365 * 24 * time.Hour` per year).
pub const SELF_SIGNED_DAYS_PER_YEAR: u64 = 365;
/// Longest `--self-signed-cert-validity` accepted, in years (keeps the expiry date far
/// below the year 9999 that X.509 GeneralizedTime can express).
pub const SELF_SIGNED_VALIDITY_YEARS_MAX: u32 = 1000;

/// The TLS settings of every listener and of the peer dialer. Plain data (`Send`): each
/// core builds its own [`TlsAcceptor`]/[`TlsConnector`] from it.
#[derive(Clone, Debug, Default)]
pub struct TlsSetup {
    /// `https://` client (and metrics) URLs; `None` when no certificate is configured.
    pub client: Option<ServerTlsSettings>,
    /// `https://` peer URLs.
    pub peer_server: Option<ServerTlsSettings>,
    /// Dialing `https://` peer URLs; `None` when neither a peer trusted CA nor peer
    /// auto-TLS is configured (then `https://` peer URLs are refused by the transport).
    pub peer_client: Option<ClientTlsSettings>,
}

impl TlsSetup {
    /// A client-URL acceptor for the current core. Errors name the file or setting.
    pub fn client_acceptor(&self) -> Result<Option<std::rc::Rc<TlsAcceptor>>, String> {
        acceptor(self.client.as_ref(), "client")
    }

    /// A peer-URL acceptor for the current core.
    pub fn peer_acceptor(&self) -> Result<Option<std::rc::Rc<TlsAcceptor>>, String> {
        acceptor(self.peer_server.as_ref(), "peer")
    }

    /// The peer dialer's TLS for the current core.
    pub fn peer_connector(&self) -> Result<Option<std::rc::Rc<TlsConnector>>, String> {
        self.peer_client
            .clone()
            .map(|settings| {
                TlsConnector::new(settings)
                    .map(std::rc::Rc::new)
                    .map_err(|e| format!("peer TLS: {e}"))
            })
            .transpose()
    }
}

fn acceptor(
    settings: Option<&ServerTlsSettings>,
    side: &str,
) -> Result<Option<std::rc::Rc<TlsAcceptor>>, String> {
    settings
        .cloned()
        .map(|settings| {
            TlsAcceptor::new(settings)
                .map(std::rc::Rc::new)
                .map_err(|e| format!("{side} TLS: {e}"))
        })
        .transpose()
}

/// Turns the flags into [`TlsSetup`], generating auto-TLS certificates when asked, and
/// loads every file once so that a bad certificate, key, CA or CRL stops the start with an
/// error naming the file (`client TLS: cannot load key file /k.pem: ...`).
pub fn prepare(config: &ServerConfig) -> Result<TlsSetup, String> {
    let params = params(&config.tls_common)?;
    let validity_years = config.tls_common.self_signed_cert_validity_years;
    let client_hosts: Vec<SocketAddr> = config.listen_client_addrs.iter().map(|l| l.addr).collect();
    let peer_hosts: Vec<SocketAddr> = config.listen_peer_addrs.iter().map(|l| l.addr).collect();
    let client_needed = config
        .listen_client_addrs
        .iter()
        .chain(&config.listen_metrics_addrs)
        .any(|l| l.tls);
    let mut setup = TlsSetup::default();
    if client_needed || config.client_tls.is_set() {
        let fixtures = config.data_dir.join("fixtures").join("client");
        let (cert, key, _) = files_or_self_cert(
            &config.client_tls,
            "client",
            &fixtures,
            &client_hosts,
            validity_years,
        )?;
        if let (Some(cert_file), Some(key_file)) = (cert, key) {
            setup.client = Some(server_settings(
                &config.client_tls,
                cert_file,
                key_file,
                &params,
            ));
        }
    }
    if config.peer_tls.is_set() {
        let fixtures = config.data_dir.join("fixtures").join("peer");
        let (cert, key, self_signed) = files_or_self_cert(
            &config.peer_tls,
            "peer",
            &fixtures,
            &peer_hosts,
            validity_years,
        )?;
        if let (Some(cert_file), Some(key_file)) = (cert, key) {
            let trusted_ca_file = non_empty(&config.peer_tls.trusted_ca_file);
            // etcdmain: `PeerTLSInfo.InsecureSkipVerify = PeerAutoTLS`; a self-signed
            // certificate also skips verification (`TLSInfo.ClientConfig`).
            let insecure_skip_verify = config.peer_tls.auto_tls || self_signed;
            if trusted_ca_file.is_some() || insecure_skip_verify {
                setup.peer_client = Some(ClientTlsSettings {
                    cert_file: Some(cert_file.clone()),
                    key_file: Some(key_file.clone()),
                    trusted_ca_file,
                    insecure_skip_verify,
                    system_roots: false,
                    params: params.clone(),
                });
            }
            setup.peer_server = Some(server_settings(
                &config.peer_tls,
                cert_file,
                key_file,
                &params,
            ));
        }
    }
    if setup.peer_client.is_none() && config.listen_peer_addrs.iter().any(|l| l.tls) {
        // etcd would fall back to the system's roots; Cairn has none to offer, and a
        // member that cannot dial its peers should not start silently.
        return Err(
            "https peer URLs need --peer-trusted-ca-file (or --peer-auto-tls) to verify the other members".into(),
        );
    }
    // Load everything once now: errors stop the start and name the file.
    setup.client_acceptor()?;
    setup.peer_acceptor()?;
    setup.peer_connector()?;
    Ok(setup)
}

fn non_empty(path: &str) -> Option<PathBuf> {
    (!path.is_empty()).then(|| PathBuf::from(path))
}

fn params(common: &TlsCommon) -> Result<TlsParams, String> {
    let params = TlsParams {
        cipher_suites: common.cipher_suites.clone(),
        min_version: TlsVersion::parse(&common.min_version).map_err(|e| e.to_string())?,
        max_version: TlsVersion::parse(&common.max_version).map_err(|e| e.to_string())?,
    };
    params.validate().map_err(|e| e.to_string())?;
    Ok(params)
}

fn server_settings(
    flags: &TlsFlags,
    cert_file: PathBuf,
    key_file: PathBuf,
    params: &TlsParams,
) -> ServerTlsSettings {
    ServerTlsSettings {
        cert_file,
        key_file,
        trusted_ca_file: non_empty(&flags.trusted_ca_file),
        client_cert_auth: flags.client_cert_auth,
        crl_file: non_empty(&flags.crl_file),
        allowed_hostname: (!flags.allowed_hostname.is_empty())
            .then(|| flags.allowed_hostname.clone()),
        allowed_cn: (!flags.allowed_cn.is_empty()).then(|| flags.allowed_cn.clone()),
        params: params.clone(),
    }
}

/// The given cert/key, or with auto-TLS the self-signed pair under `fixtures`. Returns
/// (cert, key, self-signed?); `(None, None, false)` when neither is configured.
fn files_or_self_cert(
    flags: &TlsFlags,
    side: &str,
    fixtures: &Path,
    hosts: &[SocketAddr],
    validity_years: u32,
) -> Result<(Option<PathBuf>, Option<PathBuf>, bool), String> {
    let given = !flags.cert_file.is_empty() && !flags.key_file.is_empty();
    if given {
        if flags.auto_tls {
            // etcd's warning text.
            warn!("ignoring {side} auto TLS since certs given");
        }
        return Ok((
            non_empty(&flags.cert_file),
            non_empty(&flags.key_file),
            false,
        ));
    }
    if !flags.auto_tls {
        return Ok((None, None, false));
    }
    let (cert, key) = self_cert(fixtures, hosts, validity_years, side == "peer")?;
    Ok((Some(cert), Some(key), true))
}

/// Creates (or reuses) a self-signed certificate for `hosts` in `dir`: `cert.pem` and
/// `key.pem` (mode 0600), as etcd's `transport.SelfCert`. etcd uses an ECDSA P-521 key;
/// rustls (ring) does not sign with P-521, so Cairn uses P-256 (ECDSA with SHA-256).
/// Subject O=etcd, key usages digital signature + key encipherment, extended key usage
/// server auth (and client auth for peers, which present it when dialing), SANs: the
/// hosts' IPs. Valid from today (00:00 UTC) for `validity_years` × 365 days.
pub fn self_cert(
    dir: &Path,
    hosts: &[SocketAddr],
    validity_years: u32,
    client_auth: bool,
) -> Result<(PathBuf, PathBuf), String> {
    let cert_path = dir.join("cert.pem");
    let key_path = dir.join("key.pem");
    if cert_path.is_file() && key_path.is_file() {
        return Ok((cert_path, key_path));
    }
    if validity_years == 0 || validity_years > SELF_SIGNED_VALIDITY_YEARS_MAX {
        return Err(format!(
            "--self-signed-cert-validity {validity_years} is out of range (1 to {SELF_SIGNED_VALIDITY_YEARS_MAX} years)"
        ));
    }
    {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| format!("cannot create cert directory {}: {e}", dir.display()))?;
    }
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
        .map_err(|e| format!("cannot generate ECDSA key: {e}"))?;
    let mut params = rcgen::CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::OrganizationName, "etcd");
    let today = days_since_epoch(std::time::SystemTime::now());
    let (y, m, d) = civil_from_days(today);
    params.not_before = rcgen::date_time_ymd(y, m, d);
    let (y, m, d) =
        civil_from_days(today + validity_years as i64 * SELF_SIGNED_DAYS_PER_YEAR as i64);
    params.not_after = rcgen::date_time_ymd(y, m, d);
    params.key_usages = vec![
        rcgen::KeyUsagePurpose::DigitalSignature,
        rcgen::KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    if client_auth {
        params
            .extended_key_usages
            .push(rcgen::ExtendedKeyUsagePurpose::ClientAuth);
    }
    params.is_ca = rcgen::IsCa::ExplicitNoCa;
    let mut ips: Vec<IpAddr> = hosts.iter().map(|h| h.ip()).collect();
    ips.sort();
    ips.dedup();
    params.subject_alt_names = ips.into_iter().map(rcgen::SanType::IpAddress).collect();
    let cert = params
        .self_signed(&key)
        .map_err(|e| format!("cannot generate x509 certificate: {e}"))?;
    write_file(&cert_path, cert.pem().as_bytes(), 0o644)?;
    info!(path = %cert_path.display(), "created cert file");
    write_file(&key_path, key.serialize_pem().as_bytes(), 0o600)?;
    info!(path = %key_path.display(), "created key file");
    Ok((cert_path, key_path))
}

/// Writes `bytes` to `path` with `mode` through a temporary file, synced and renamed, so
/// a crash never leaves half a certificate behind.
fn write_file(path: &Path, bytes: &[u8], mode: u32) -> Result<(), String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("pem.tmp");
    let fail = |e: std::io::Error| format!("cannot write {}: {e}", path.display());
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)
        .map_err(fail)?;
    file.write_all(bytes).map_err(fail)?;
    file.sync_all().map_err(fail)?;
    std::fs::rename(&tmp, path).map_err(fail)
}

fn days_since_epoch(now: std::time::SystemTime) -> i64 {
    now.duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| (d.as_secs() / 86_400) as i64)
}

/// (year, month 1..=12, day 1..=31) of a day count since 1970-01-01, in rcgen's types
/// (the calendar arithmetic is the log timestamps' [`crate::logging::civil_from_days`]).
fn civil_from_days(days: i64) -> (i32, u8, u8) {
    let (year, month, day) = crate::logging::civil_from_days(days);
    (year as i32, month as u8, day as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(59), (1970, 3, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(civil_from_days(20_423), (2025, 12, 1));
    }

    #[test]
    fn self_cert_is_created_once_and_loads() {
        let dir = tempfile::tempdir().unwrap();
        let fixtures = dir.path().join("fixtures").join("peer");
        let hosts = ["127.0.0.1:2380".parse().unwrap()];
        let (cert, key) = self_cert(&fixtures, &hosts, 2, true).unwrap();
        assert_eq!(cert, fixtures.join("cert.pem"));
        assert_eq!(key, fixtures.join("key.pem"));
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let first = std::fs::read(&cert).unwrap();
        self_cert(&fixtures, &hosts, 2, true).unwrap();
        assert_eq!(
            std::fs::read(&cert).unwrap(),
            first,
            "reused, not regenerated"
        );
        let settings = ServerTlsSettings {
            cert_file: cert,
            key_file: key,
            ..ServerTlsSettings::default()
        };
        TlsAcceptor::new(settings).unwrap();
        assert!(self_cert(&dir.path().join("x"), &hosts, 0, false)
            .unwrap_err()
            .contains("out of range"));
    }
}
