//! TLS with rustls (the `ring` provider) for client and peer listeners and for the peer
//! transport's dialer, following etcd's `pkg/transport` (`TLSInfo.ServerConfig`,
//! `TLSInfo.ClientConfig`, `listener_tls.go`):
//!
//! - Server side ([`TlsAcceptor`]): certificate + key, a trusted CA, client certificates
//!   required when a trusted CA is given or `client_cert_auth` is set (etcd:
//!   `tls.RequireAndVerifyClientCert`), a CRL whose revoked serials are refused, an allowed
//!   hostname (the client certificate must carry it as a SAN, Go's `VerifyHostname`) or an
//!   allowed CN (the client certificate's subject CN), cipher suites by Go/IANA name,
//!   TLS 1.2/1.3 bounds, ALPN `http/1.1` and `h2` (see `SERVER_ALPN` for the order).
//! - Client side ([`TlsConnector`]): certificate + key as client certificate, a trusted CA,
//!   or no verification of the server at all for self-signed (auto-TLS) peers as etcd does.
//! - Rotation: both re-read their files when a file's (mtime, length, inode) changes, checked
//!   with one `stat` per file on every new handshake (etcd re-reads cert and key on every
//!   handshake). New files that do not load are logged and the previous ones stay in use.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::pin::{pin, Pin};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::future::{select, Either};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{ring as provider, CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::WebPkiClientVerifier;
use rustls::{
    CipherSuite, DigitallySignedStruct, DistinguishedName, RootCertStore, SignatureScheme,
    SupportedCipherSuite, SupportedProtocolVersion,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{
    CertificateDer, CertificateRevocationListDer, PrivateKeyDer, ServerName, UnixTime,
};
use std::cell::RefCell;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::shutdown::Shutdown;

/// Longest a TLS handshake may take from the first byte, in milliseconds; a client that
/// connects and sends nothing is disconnected after it (grpc-go's server waits 120 s; a
/// silent connection should not hold a task that long).
pub const TLS_HANDSHAKE_TIMEOUT_MS: u64 = 10_000;
/// Largest certificate, key, CA or CRL file read, in bytes (a CRL of a large CA is a few
/// MiB; anything larger is refused with an error naming the file).
pub const TLS_FILE_BYTES_MAX: u64 = 16 * 1024 * 1024;

/// ALPN protocols of the server, in its order of preference (rustls picks the first one the
/// client offers). HTTP/1.1 comes first on purpose: Cairn serves gRPC on HTTP/2 and the
/// HTTP endpoints (`/health`, `/version`, `/metrics`, the JSON gateway) on HTTP/1.1, so a
/// client able to do both (curl, Go's `net/http`, Prometheus) gets HTTP/1.1, while gRPC
/// clients (grpc-go, tonic), which offer only `h2`, get HTTP/2.
const SERVER_ALPN: [&[u8]; 2] = [b"http/1.1", b"h2"];

/// A TLS setting or file that cannot be used. The text names the flag value or file and
/// the reason, e.g. `cannot load key file /etc/k.pem: no private key found`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct TlsError(pub String);

/// A TLS protocol version as etcd names it (`--tls-min-version`, `--tls-max-version`,
/// etcd 3.5 `tlsutil.GetTLSVersion`). TLS 1.0 and 1.1 are not offered (etcd's minimum
/// is TLS 1.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum TlsVersion {
    /// `TLS1.2`.
    Tls12,
    /// `TLS1.3`.
    Tls13,
}

impl TlsVersion {
    /// Parses etcd's names: `""` → `None` (the library's default), `TLS1.2`, `TLS1.3`.
    /// Errors: etcd's text `unexpected TLS version "X" (must be one of: TLS1.2, TLS1.3)`.
    pub fn parse(name: &str) -> Result<Option<TlsVersion>, TlsError> {
        match name {
            "" => Ok(None),
            "TLS1.2" => Ok(Some(TlsVersion::Tls12)),
            "TLS1.3" => Ok(Some(TlsVersion::Tls13)),
            other => Err(TlsError(format!(
                "unexpected TLS version {other:?} (must be one of: TLS1.2, TLS1.3)"
            ))),
        }
    }
}

/// TLS parameters shared by the server and client sides: `--cipher-suites`,
/// `--tls-min-version`, `--tls-max-version`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TlsParams {
    /// Go/IANA names of the TLS 1.2 cipher suites to offer, in preference order (empty:
    /// rustls's defaults). As in Go, TLS 1.3 suites are not configurable: TLS 1.3 names are
    /// accepted and TLS 1.3 keeps all its suites.
    pub cipher_suites: Vec<String>,
    /// Lowest version accepted (`None`: TLS 1.2).
    pub min_version: Option<TlsVersion>,
    /// Highest version accepted (`None`: TLS 1.3).
    pub max_version: Option<TlsVersion>,
}

impl TlsParams {
    /// Checks the names and bounds without loading any file. Errors (etcd's texts where it
    /// has one): `unexpected TLS cipher suite "X"`, a Go suite rustls does not implement,
    /// `min version (TLS1.3) is greater than max version (TLS1.2)`, `cipher suites cannot
    /// be configured when only TLS1.3 is enabled`.
    pub fn validate(&self) -> Result<(), TlsError> {
        self.provider().map(|_| ())
    }

    /// The crypto provider with the configured suites, and the protocol versions.
    fn provider(
        &self,
    ) -> Result<(CryptoProvider, Vec<&'static SupportedProtocolVersion>), TlsError> {
        let min = self.min_version.unwrap_or(TlsVersion::Tls12);
        let max = self.max_version.unwrap_or(TlsVersion::Tls13);
        if min > max {
            return Err(TlsError(format!(
                "min version ({}) is greater than max version ({})",
                version_name(min),
                version_name(max)
            )));
        }
        if min == TlsVersion::Tls13 && !self.cipher_suites.is_empty() {
            return Err(TlsError(
                "cipher suites cannot be configured when only TLS1.3 is enabled".into(),
            ));
        }
        let mut provider = provider::default_provider();
        if !self.cipher_suites.is_empty() {
            let mut tls12 = Vec::new();
            for name in &self.cipher_suites {
                if let Some(suite) = cipher_suite(name)? {
                    if !tls12
                        .iter()
                        .any(|s: &SupportedCipherSuite| s.suite() == suite.suite())
                    {
                        tls12.push(suite);
                    }
                }
            }
            let mut suites: Vec<SupportedCipherSuite> = provider
                .cipher_suites
                .iter()
                .copied()
                .filter(|s| matches!(s, SupportedCipherSuite::Tls13(_)))
                .collect();
            suites.extend(tls12);
            provider.cipher_suites = suites;
        }
        let versions = [
            (TlsVersion::Tls12, &rustls::version::TLS12),
            (TlsVersion::Tls13, &rustls::version::TLS13),
        ]
        .into_iter()
        .filter(|(v, _)| *v >= min && *v <= max)
        .map(|(_, p)| p)
        .collect();
        Ok((provider, versions))
    }
}

fn version_name(version: TlsVersion) -> &'static str {
    match version {
        TlsVersion::Tls12 => "TLS1.2",
        TlsVersion::Tls13 => "TLS1.3",
    }
}

/// Go's cipher suite names (`crypto/tls` `CipherSuites()` and `InsecureCipherSuites()`,
/// plus the two CHACHA20 aliases etcd's `tlsutil.GetCipherSuite` accepts) that rustls does
/// not implement (CBC, RC4, 3DES, static RSA key exchange).
const GO_SUITES_UNSUPPORTED: [&str; 16] = [
    "TLS_RSA_WITH_RC4_128_SHA",
    "TLS_RSA_WITH_3DES_EDE_CBC_SHA",
    "TLS_RSA_WITH_AES_128_CBC_SHA",
    "TLS_RSA_WITH_AES_256_CBC_SHA",
    "TLS_RSA_WITH_AES_128_CBC_SHA256",
    "TLS_RSA_WITH_AES_128_GCM_SHA256",
    "TLS_RSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_ECDSA_WITH_RC4_128_SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA",
    "TLS_ECDHE_RSA_WITH_RC4_128_SHA",
    "TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256",
];

/// The rustls suite for a Go/IANA name: `Ok(Some)` for a TLS 1.2 suite, `Ok(None)` for a
/// TLS 1.3 suite (always enabled, as in Go). Errors: a name Go knows but rustls does not
/// implement (named, with the supported ones), or etcd's `unexpected TLS cipher suite "X"`.
pub fn cipher_suite(name: &str) -> Result<Option<SupportedCipherSuite>, TlsError> {
    use provider::cipher_suite as cs;
    let suite = match name {
        "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256" => cs::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
        "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384" => cs::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
        "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256" | "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305" => {
            cs::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256
        }
        "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256" => cs::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
        "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384" => cs::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
        "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256" | "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305" => {
            cs::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256
        }
        "TLS_AES_128_GCM_SHA256" | "TLS_AES_256_GCM_SHA384" | "TLS_CHACHA20_POLY1305_SHA256" => {
            return Ok(None)
        }
        other if GO_SUITES_UNSUPPORTED.contains(&other) => {
            return Err(TlsError(format!(
                "TLS cipher suite {other:?} is not supported (rustls implements only AEAD suites with ECDHE: TLS_ECDHE_{{ECDSA,RSA}}_WITH_{{AES_128_GCM_SHA256,AES_256_GCM_SHA384,CHACHA20_POLY1305_SHA256}})"
            )))
        }
        other => return Err(TlsError(format!("unexpected TLS cipher suite {other:?}"))),
    };
    debug_assert!(suite.suite() != CipherSuite::Unknown(0));
    Ok(Some(suite))
}

/// The server side of one listener (etcd `TLSInfo.ServerConfig` + `NewTLSListener`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServerTlsSettings {
    /// PEM certificate chain presented to clients (`--cert-file`, `--peer-cert-file`).
    pub cert_file: PathBuf,
    /// PEM private key of the certificate (PKCS#8, PKCS#1 or SEC1; `--key-file`).
    pub key_file: PathBuf,
    /// PEM CA certificates that client certificates must chain to (`--trusted-ca-file`).
    /// When set, every client must present a certificate (etcd: a trusted CA alone already
    /// turns on `RequireAndVerifyClientCert`).
    pub trusted_ca_file: Option<PathBuf>,
    /// Require a client certificate (`--client-cert-auth`); needs `trusted_ca_file`.
    pub client_cert_auth: bool,
    /// PEM or DER certificate revocation list(s) (`--client-crl-file`, `--peer-crl-file`):
    /// a client certificate whose serial it lists is refused.
    pub crl_file: Option<PathBuf>,
    /// A host name or IP the client certificate must carry as a SAN
    /// (`--client-cert-allowed-hostname`, `--peer-cert-allowed-hostname`).
    pub allowed_hostname: Option<String>,
    /// The subject CN the client certificate must have (`--peer-cert-allowed-cn`).
    pub allowed_cn: Option<String>,
    /// Cipher suites and versions.
    pub params: TlsParams,
}

impl ServerTlsSettings {
    fn files(&self) -> Vec<PathBuf> {
        let mut files = vec![self.cert_file.clone(), self.key_file.clone()];
        files.extend(self.trusted_ca_file.clone());
        files.extend(self.crl_file.clone());
        files
    }

    /// Loads every file and builds the rustls configuration. Errors name the file.
    fn build(&self) -> Result<Arc<rustls::ServerConfig>, TlsError> {
        if self.allowed_cn.is_some() && self.allowed_hostname.is_some() {
            return Err(TlsError(format!(
                "AllowedCN and AllowedHostname are mutually exclusive (cn={:?}, hostname={:?})",
                self.allowed_cn.as_deref().unwrap_or_default(),
                self.allowed_hostname.as_deref().unwrap_or_default()
            )));
        }
        let (provider, versions) = self.params.provider()?;
        let provider = Arc::new(provider);
        let certs = load_certs(&self.cert_file, "cert")?;
        let key = load_key(&self.key_file)?;
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&versions)
            .map_err(|e| TlsError(format!("invalid TLS versions or cipher suites: {e}")))?;
        let builder = match &self.trusted_ca_file {
            None if self.client_cert_auth => {
                return Err(TlsError(
                    "client certificate authentication needs a trusted CA file (--trusted-ca-file / --peer-trusted-ca-file)".into(),
                ))
            }
            None => builder.with_no_client_auth(),
            Some(ca_file) => {
                let roots = load_roots(ca_file)?;
                let mut verifier = WebPkiClientVerifier::builder_with_provider(
                    Arc::new(roots),
                    provider.clone(),
                );
                if let Some(crl_file) = &self.crl_file {
                    // etcd checks every certificate the client sent against the CRL
                    // file and refuses a listed serial; issuers without a CRL pass.
                    verifier = verifier
                        .with_crls(load_crls(crl_file)?)
                        .allow_unknown_revocation_status();
                }
                let inner = verifier
                    .build()
                    .map_err(|e| TlsError(format!("cannot use CA file {}: {e}", ca_file.display())))?;
                let rule = match (&self.allowed_hostname, &self.allowed_cn) {
                    (Some(host), _) => Some(NameRule::Hostname(host.clone())),
                    (None, Some(cn)) => Some(NameRule::CommonName(cn.clone())),
                    (None, None) => None,
                };
                match rule {
                    None => builder.with_client_cert_verifier(inner),
                    Some(rule) => builder
                        .with_client_cert_verifier(Arc::new(NameCheckingVerifier { inner, rule })),
                }
            }
        };
        let mut config = builder.with_single_cert(certs, key).map_err(|e| {
            TlsError(format!(
                "cert file {} and key file {} do not form a usable pair: {e}",
                self.cert_file.display(),
                self.key_file.display()
            ))
        })?;
        config.alpn_protocols = SERVER_ALPN.iter().map(|p| p.to_vec()).collect();
        Ok(Arc::new(config))
    }
}

/// The client side of the peer transport (etcd `TLSInfo.ClientConfig`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClientTlsSettings {
    /// PEM certificate chain presented as client certificate (`--peer-cert-file`); `None`:
    /// no client certificate.
    pub cert_file: Option<PathBuf>,
    /// PEM key of `cert_file` (`--peer-key-file`).
    pub key_file: Option<PathBuf>,
    /// PEM CA certificates the server's certificate must chain to (`--peer-trusted-ca-file`).
    pub trusted_ca_file: Option<PathBuf>,
    /// Do not verify the server's certificate at all. etcd sets `InsecureSkipVerify` for
    /// self-signed (auto-TLS) certificates (`TLSInfo.ClientConfig`: `if info.selfCert`),
    /// because no CA can vouch for them: the connection is encrypted but the peer is not
    /// authenticated. Cairn does the same for `--peer-auto-tls`.
    pub insecure_skip_verify: bool,
    /// Without `trusted_ca_file`, verify the server against the system's root
    /// certificates (rustls-native-certs: `SSL_CERT_FILE`/`SSL_CERT_DIR` or the OS store),
    /// as Go's `crypto/tls` does for a client with no `RootCAs` (etcdctl's `https://`
    /// endpoints without `--cacert`). `false`: a CA file is required (the peer transport).
    pub system_roots: bool,
    /// Cipher suites and versions.
    pub params: TlsParams,
}

impl ClientTlsSettings {
    fn files(&self) -> Vec<PathBuf> {
        let mut files = Vec::new();
        files.extend(self.cert_file.clone());
        files.extend(self.key_file.clone());
        files.extend(self.trusted_ca_file.clone());
        files
    }

    /// The rustls client configuration these settings describe (files read now), for
    /// clients other than the peer transport, e.g. the blocking `GET /members` of a joining
    /// member. Errors name the file or setting.
    pub fn build(&self) -> Result<Arc<rustls::ClientConfig>, TlsError> {
        let (provider, versions) = self.params.provider()?;
        let provider = Arc::new(provider);
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&versions)
            .map_err(|e| TlsError(format!("invalid TLS versions or cipher suites: {e}")))?;
        let builder = if self.insecure_skip_verify {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(NoServerVerification {
                    algorithms: provider.signature_verification_algorithms,
                }))
        } else {
            let roots = match &self.trusted_ca_file {
                Some(ca_file) => load_roots(ca_file)?,
                None if self.system_roots => system_roots(),
                None => return Err(TlsError(
                    "https peer URLs need a trusted CA file (--peer-trusted-ca-file) or --peer-auto-tls".into(),
                )),
            };
            builder.with_root_certificates(roots)
        };
        let mut config = match (&self.cert_file, &self.key_file) {
            (Some(cert_file), Some(key_file)) => {
                let certs = load_certs(cert_file, "cert")?;
                let key = load_key(key_file)?;
                builder.with_client_auth_cert(certs, key).map_err(|e| {
                    TlsError(format!(
                        "cert file {} and key file {} do not form a usable pair: {e}",
                        cert_file.display(),
                        key_file.display()
                    ))
                })?
            }
            _ => builder.with_no_client_auth(),
        };
        config.alpn_protocols = vec![b"h2".to_vec()];
        Ok(Arc::new(config))
    }
}

/// Reads a file of at most [`TLS_FILE_BYTES_MAX`] bytes; errors name the file.
fn read_file(path: &Path, what: &str) -> Result<Vec<u8>, TlsError> {
    let fail =
        |e: &dyn fmt::Display| TlsError(format!("cannot read {what} file {}: {e}", path.display()));
    let len = std::fs::metadata(path).map_err(|e| fail(&e))?.len();
    if len > TLS_FILE_BYTES_MAX {
        return Err(fail(&format_args!(
            "{len} bytes is more than the {TLS_FILE_BYTES_MAX} bytes allowed"
        )));
    }
    std::fs::read(path).map_err(|e| fail(&e))
}

fn load_certs(path: &Path, what: &str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bytes = read_file(path, what)?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError(format!("cannot load {what} file {}: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(TlsError(format!(
            "cannot load {what} file {}: no PEM CERTIFICATE block found",
            path.display()
        )));
    }
    for cert in &certs {
        x509_parser::parse_x509_certificate(cert).map_err(|e| {
            TlsError(format!(
                "cannot load {what} file {}: bad certificate: {e}",
                path.display()
            ))
        })?;
    }
    Ok(certs)
}

fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let bytes = read_file(path, "key")?;
    let key = PrivateKeyDer::from_pem_slice(&bytes)
        .map_err(|e| TlsError(format!("cannot load key file {}: {e}", path.display())))?;
    provider::default_provider()
        .key_provider
        .load_private_key(key.clone_key())
        .map_err(|e| TlsError(format!("cannot load key file {}: {e}", path.display())))?;
    Ok(key)
}

fn load_roots(path: &Path) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in load_certs(path, "trusted CA")? {
        roots.add(cert).map_err(|e| {
            TlsError(format!(
                "cannot load trusted CA file {}: {e}",
                path.display()
            ))
        })?;
    }
    Ok(roots)
}

/// The system's root certificates (rustls-native-certs). Certificates the store holds
/// but webpki cannot parse are skipped, as Go's `SystemCertPool` skips them; with none
/// found the store is empty and every server fails verification at the handshake, as
/// in Go.
fn system_roots() -> RootCertStore {
    let mut roots = RootCertStore::empty();
    roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
    roots
}

fn load_crls(path: &Path) -> Result<Vec<CertificateRevocationListDer<'static>>, TlsError> {
    let bytes = read_file(path, "CRL")?;
    let fail =
        |e: &dyn fmt::Display| TlsError(format!("cannot load CRL file {}: {e}", path.display()));
    let crls = if bytes.starts_with(b"-----BEGIN") || bytes.windows(10).any(|w| w == b"-----BEGIN")
    {
        CertificateRevocationListDer::pem_slice_iter(&bytes)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| fail(&e))?
    } else {
        vec![CertificateRevocationListDer::from(bytes)]
    };
    if crls.is_empty() {
        return Err(fail(&"no X509 CRL block found"));
    }
    for crl in &crls {
        x509_parser::parse_x509_crl(crl).map_err(|e| fail(&format_args!("bad CRL: {e}")))?;
    }
    Ok(crls)
}

/// What a verified client certificate must also carry (etcd `baseConfig`'s
/// `VerifyPeerCertificate`).
#[derive(Clone, Debug)]
enum NameRule {
    /// A SAN matching this host name or IP (Go `x509.Certificate.VerifyHostname`).
    Hostname(String),
    /// This exact subject CN.
    CommonName(String),
}

impl NameRule {
    fn check(&self, der: &[u8]) -> Result<(), rustls::Error> {
        let (_, cert) = x509_parser::parse_x509_certificate(der).map_err(|_| {
            rustls::Error::InvalidCertificate(rustls::CertificateError::BadEncoding)
        })?;
        let ok = match self {
            NameRule::CommonName(want) => {
                cert.subject()
                    .iter_common_name()
                    .next()
                    .and_then(|cn| cn.as_str().ok())
                    == Some(want.as_str())
            }
            NameRule::Hostname(want) => certificate_has_host(&cert, want),
        };
        if ok {
            Ok(())
        } else {
            // etcd's text for this refusal.
            Err(rustls::Error::General(
                "client certificate authentication failed".into(),
            ))
        }
    }
}

/// Whether `cert` names `host` in its SANs: an IP compares with the IP SANs, a name with
/// the DNS SANs case-insensitively, `*.` matching one leftmost label (RFC 6125 §6.4.3).
fn certificate_has_host(cert: &x509_parser::certificate::X509Certificate<'_>, host: &str) -> bool {
    use x509_parser::extensions::GeneralName;
    let Ok(Some(san)) = cert.subject_alternative_name() else {
        return false;
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let ip: Option<std::net::IpAddr> = host.parse().ok();
    san.value.general_names.iter().any(|name| match (name, ip) {
        (GeneralName::IPAddress(bytes), Some(ip)) => match ip {
            std::net::IpAddr::V4(v4) => *bytes == v4.octets(),
            std::net::IpAddr::V6(v6) => *bytes == v6.octets(),
        },
        (GeneralName::DNSName(name), None) => dns_name_matches(name, host),
        _ => false,
    })
}

fn dns_name_matches(pattern: &str, host: &str) -> bool {
    let pattern = pattern.trim_end_matches('.');
    let host = host.trim_end_matches('.');
    if let Some(suffix) = pattern.strip_prefix("*.") {
        return match host.split_once('.') {
            Some((label, rest)) => !label.is_empty() && rest.eq_ignore_ascii_case(suffix),
            None => false,
        };
    }
    pattern.eq_ignore_ascii_case(host)
}

/// The WebPKI client verifier plus a [`NameRule`] on the end-entity certificate.
#[derive(Debug)]
struct NameCheckingVerifier {
    inner: Arc<dyn ClientCertVerifier>,
    rule: NameRule,
}

impl ClientCertVerifier for NameCheckingVerifier {
    fn offer_client_auth(&self) -> bool {
        self.inner.offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.inner.client_auth_mandatory()
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let verified = self
            .inner
            .verify_client_cert(end_entity, intermediates, now)?;
        self.rule.check(end_entity)?;
        Ok(verified)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// Accepts any server certificate (etcd's `InsecureSkipVerify` for self-signed peers); the
/// handshake signatures are still checked, so the peer holds the key of what it presented.
#[derive(Debug)]
struct NoServerVerification {
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for NoServerVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// What identifies one version of a file: modification time, length, inode.
type FileStamp = Option<(std::time::SystemTime, u64, u64)>;

fn stamp(path: &Path) -> FileStamp {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len(), meta.ino()))
}

/// A configuration rebuilt from its files when one of them changes.
struct Reloading<T> {
    files: Vec<PathBuf>,
    stamps: Vec<FileStamp>,
    current: Arc<T>,
}

impl<T> Reloading<T> {
    fn new(
        files: Vec<PathBuf>,
        build: impl Fn() -> Result<Arc<T>, TlsError>,
    ) -> Result<Self, TlsError> {
        let stamps = files.iter().map(|f| stamp(f)).collect();
        Ok(Reloading {
            files,
            stamps,
            current: build()?,
        })
    }

    /// The configuration to use now: rebuilt first if a file changed since the last check;
    /// on a build error the previous one (the error is logged once per change).
    fn current(&mut self, side: &str, build: impl Fn() -> Result<Arc<T>, TlsError>) -> Arc<T> {
        let stamps: Vec<FileStamp> = self.files.iter().map(|f| stamp(f)).collect();
        if stamps != self.stamps {
            self.stamps = stamps;
            match build() {
                Ok(config) => {
                    tracing::info!(side, files = ?self.files, "tls: reloaded certificates");
                    self.current = config;
                }
                Err(error) => tracing::error!(
                    side,
                    %error,
                    "tls: changed certificate files cannot be used; keeping the previous ones"
                ),
            }
        }
        self.current.clone()
    }
}

/// The server side of a TLS listener, one per core (`Rc`). Files are re-read when they
/// change (see the module docs).
pub struct TlsAcceptor {
    settings: ServerTlsSettings,
    config: RefCell<Reloading<rustls::ServerConfig>>,
}

impl fmt::Debug for TlsAcceptor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsAcceptor")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl TlsAcceptor {
    /// Loads the files and checks the settings. Errors name the file or setting, e.g.
    /// `cannot load key file /k.pem: ...`, `unexpected TLS cipher suite "X"`.
    pub fn new(settings: ServerTlsSettings) -> Result<TlsAcceptor, TlsError> {
        let config = Reloading::new(settings.files(), || settings.build())?;
        Ok(TlsAcceptor {
            settings,
            config: RefCell::new(config),
        })
    }

    /// The settings this acceptor was built from.
    pub fn settings(&self) -> &ServerTlsSettings {
        &self.settings
    }

    /// Runs the server handshake on `io` within [`TLS_HANDSHAKE_TIMEOUT_MS`]. Errors: the
    /// handshake failed (plaintext, a refused client certificate, no common version or
    /// suite), timed out (`TimedOut`), or `shutdown` came first (`Interrupted`).
    pub async fn accept<T>(
        &self,
        io: T,
        shutdown: &Shutdown,
    ) -> io::Result<tokio_rustls::server::TlsStream<T>>
    where
        T: AsyncRead + AsyncWrite + Unpin,
    {
        let config = self
            .config
            .borrow_mut()
            .current("server", || self.settings.build());
        let handshake = tokio_rustls::TlsAcceptor::from(config).accept(io);
        with_deadline(handshake, shutdown).await
    }
}

/// The subject CommonName of the client certificate a finished server handshake verified
/// (the first certificate of the chain, as etcd's `AuthInfoFromTLS` takes
/// `VerifiedChains[0].Subject.CommonName`); `None` without a client certificate or a CN.
pub fn peer_common_name<T>(io: &tokio_rustls::server::TlsStream<T>) -> Option<std::sync::Arc<str>> {
    let der = io.get_ref().1.peer_certificates()?.first()?;
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let cn = cert.subject().iter_common_name().next()?.as_str().ok()?;
    Some(std::sync::Arc::from(cn))
}

/// The client side of the peer transport's TLS, one per core. Files are re-read when they
/// change.
pub struct TlsConnector {
    settings: ClientTlsSettings,
    config: RefCell<Reloading<rustls::ClientConfig>>,
}

impl fmt::Debug for TlsConnector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsConnector")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl TlsConnector {
    /// Loads the files and checks the settings; errors name the file or setting.
    pub fn new(settings: ClientTlsSettings) -> Result<TlsConnector, TlsError> {
        let config = Reloading::new(settings.files(), || settings.build())?;
        Ok(TlsConnector {
            settings,
            config: RefCell::new(config),
        })
    }

    /// Runs the client handshake with server `host` (an IP literal or DNS name, checked
    /// against the server certificate's SANs unless verification is off) within
    /// [`TLS_HANDSHAKE_TIMEOUT_MS`].
    pub async fn connect<T>(
        &self,
        host: &str,
        io: T,
    ) -> io::Result<tokio_rustls::client::TlsStream<T>>
    where
        T: AsyncRead + AsyncWrite + Unpin,
    {
        let name = ServerName::try_from(host.to_string()).map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("invalid TLS server name {host:?}: {e}"),
            )
        })?;
        let config = self
            .config
            .borrow_mut()
            .current("client", || self.settings.build());
        let handshake = tokio_rustls::TlsConnector::from(config).connect(name, io);
        with_deadline(handshake, &Shutdown::new()).await
    }
}

async fn with_deadline<F, T>(handshake: F, shutdown: &Shutdown) -> io::Result<T>
where
    F: std::future::Future<Output = io::Result<T>>,
{
    let timeout = glommio::timer::sleep(Duration::from_millis(TLS_HANDSHAKE_TIMEOUT_MS));
    let stop = shutdown.wait();
    match select(pin!(handshake), select(pin!(timeout), pin!(stop))).await {
        Either::Left((done, _)) => done,
        Either::Right((Either::Left(_), _)) => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("TLS handshake not finished within {TLS_HANDSHAKE_TIMEOUT_MS} ms"),
        )),
        Either::Right((Either::Right(_), _)) => Err(io::Error::new(
            io::ErrorKind::Interrupted,
            "shutdown during the TLS handshake",
        )),
    }
}

/// A plain or TLS client stream (the peer transport dials both `http://` and `https://`).
pub(crate) enum MaybeTls<T> {
    /// Plain TCP.
    Plain(T),
    /// TLS over TCP.
    Tls(Box<tokio_rustls::client::TlsStream<T>>),
}

impl<T: AsyncRead + AsyncWrite + Unpin> AsyncRead for MaybeTls<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            MaybeTls::Plain(io) => Pin::new(io).poll_read(cx, buf),
            MaybeTls::Tls(io) => Pin::new(io.as_mut()).poll_read(cx, buf),
        }
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin> AsyncWrite for MaybeTls<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            MaybeTls::Plain(io) => Pin::new(io).poll_write(cx, buf),
            MaybeTls::Tls(io) => Pin::new(io.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            MaybeTls::Plain(io) => Pin::new(io).poll_flush(cx),
            MaybeTls::Tls(io) => Pin::new(io.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            MaybeTls::Plain(io) => Pin::new(io).poll_shutdown(cx),
            MaybeTls::Tls(io) => Pin::new(io.as_mut()).poll_shutdown(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_parse_as_etcd() {
        assert_eq!(TlsVersion::parse(""), Ok(None));
        assert_eq!(TlsVersion::parse("TLS1.2"), Ok(Some(TlsVersion::Tls12)));
        assert_eq!(TlsVersion::parse("TLS1.3"), Ok(Some(TlsVersion::Tls13)));
        assert_eq!(
            TlsVersion::parse("TLS1.1").unwrap_err().0,
            "unexpected TLS version \"TLS1.1\" (must be one of: TLS1.2, TLS1.3)"
        );
    }

    #[test]
    fn cipher_suite_names() {
        let suite = cipher_suite("TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256")
            .unwrap()
            .unwrap();
        assert_eq!(
            suite.suite(),
            CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256
        );
        let alias = cipher_suite("TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305")
            .unwrap()
            .unwrap();
        assert_eq!(
            alias.suite(),
            CipherSuite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256
        );
        assert_eq!(cipher_suite("TLS_AES_128_GCM_SHA256").unwrap(), None);
        let unsupported = cipher_suite("TLS_RSA_WITH_AES_128_CBC_SHA").unwrap_err().0;
        assert!(
            unsupported.contains("\"TLS_RSA_WITH_AES_128_CBC_SHA\" is not supported"),
            "{unsupported}"
        );
        assert_eq!(
            cipher_suite("TLS_BOGUS").unwrap_err().0,
            "unexpected TLS cipher suite \"TLS_BOGUS\""
        );
    }

    #[test]
    fn params_validate_bounds_and_suites() {
        let params = TlsParams {
            cipher_suites: vec!["TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384".into()],
            ..TlsParams::default()
        };
        let (provider, versions) = params.provider().unwrap();
        assert_eq!(versions.len(), 2);
        let tls12: Vec<_> = provider
            .cipher_suites
            .iter()
            .filter(|s| matches!(s, SupportedCipherSuite::Tls12(_)))
            .map(|s| s.suite())
            .collect();
        assert_eq!(
            tls12,
            vec![CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384]
        );
        let inverted = TlsParams {
            min_version: Some(TlsVersion::Tls13),
            max_version: Some(TlsVersion::Tls12),
            ..TlsParams::default()
        };
        assert_eq!(
            inverted.validate().unwrap_err().0,
            "min version (TLS1.3) is greater than max version (TLS1.2)"
        );
        let only13 = TlsParams {
            cipher_suites: vec!["TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256".into()],
            min_version: Some(TlsVersion::Tls13),
            max_version: None,
        };
        assert_eq!(
            only13.validate().unwrap_err().0,
            "cipher suites cannot be configured when only TLS1.3 is enabled"
        );
    }

    fn leaf(cn: &str, sans: &[&str]) -> Vec<u8> {
        let sans: Vec<String> = sans.iter().map(|s| s.to_string()).collect();
        let mut params = rcgen::CertificateParams::new(sans).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
        let key = rcgen::KeyPair::generate().unwrap();
        params.self_signed(&key).unwrap().der().to_vec()
    }

    #[test]
    fn name_rules_check_san_and_cn() {
        let cert = leaf("etcd-peer", &["10.0.0.1", "etcd-0.example.com"]);
        let host = |h: &str| NameRule::Hostname(h.into()).check(&cert);
        assert!(host("10.0.0.1").is_ok());
        assert!(host("etcd-0.example.com").is_ok());
        assert!(host("10.0.0.2").is_err());
        assert!(host("etcd-1.example.com").is_err());
        // The CN is not a host name (Go 1.15+ VerifyHostname ignores it).
        assert!(host("etcd-peer").is_err());
        assert!(NameRule::CommonName("etcd-peer".into())
            .check(&cert)
            .is_ok());
        let refused = NameRule::CommonName("other".into())
            .check(&cert)
            .unwrap_err();
        assert_eq!(
            refused.to_string(),
            rustls::Error::General("client certificate authentication failed".into()).to_string()
        );
    }

    #[test]
    fn dns_names_match_like_go() {
        assert!(dns_name_matches("etcd.example.com", "ETCD.example.com"));
        assert!(dns_name_matches("*.example.com", "a.example.com"));
        assert!(!dns_name_matches("*.example.com", "a.b.example.com"));
        assert!(!dns_name_matches("*.example.com", "example.com"));
        assert!(!dns_name_matches("other.com", "example.com"));
    }
}
