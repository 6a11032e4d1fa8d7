//! The key files of `--auth-token jwt,...`, read as golang-jwt v3 reads them
//! (`ParseRSAPrivateKeyFromPEM`, `ParseRSAPublicKeyFromPEM` in `rsa_utils.go`,
//! `ParseECPrivateKeyFromPEM`, `ParseECPublicKeyFromPEM` in `ecdsa_utils.go`), into the
//! DER forms ring (under jsonwebtoken) signs and verifies with.
//!
//! The PEM block is read by the `pem` crate, the key structures by RustCrypto's `pkcs1`,
//! `pkcs8`, `sec1` and `spki`, certificates by `x509-parser`. Errors are golang-jwt's
//! texts ([`ERR_KEY_MUST_BE_PEM`], [`ERR_NOT_RSA_PRIVATE_KEY`], ...).

use pkcs8::der::asn1::AnyRef;
use pkcs8::der::{Decode, Encode};
use pkcs8::PrivateKeyInfo;
use spki::{AlgorithmIdentifierRef, ObjectIdentifier, SubjectPublicKeyInfoRef};

use super::{
    ERR_KEY_MUST_BE_PEM, ERR_NOT_EC_PRIVATE_KEY, ERR_NOT_EC_PUBLIC_KEY, ERR_NOT_RSA_PRIVATE_KEY,
    ERR_NOT_RSA_PUBLIC_KEY,
};

/// `rsaEncryption` (RFC 8017 A.1).
const OID_RSA_ENCRYPTION: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
/// `id-ecPublicKey` (RFC 5480 2.1.1).
const OID_EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
/// `secp256r1` (RFC 5480 2.1.1.1).
const OID_P256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
/// `secp384r1`.
const OID_P384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.34");
/// `secp521r1`.
const OID_P521: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.35");

/// An elliptic curve of golang-jwt's ECDSA methods.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Curve {
    P256,
    P384,
    P521,
}

impl Curve {
    fn from_oid(oid: ObjectIdentifier) -> Option<Curve> {
        match oid {
            OID_P256 => Some(Curve::P256),
            OID_P384 => Some(Curve::P384),
            OID_P521 => Some(Curve::P521),
            _ => None,
        }
    }

    fn oid(self) -> ObjectIdentifier {
        match self {
            Curve::P256 => OID_P256,
            Curve::P384 => OID_P384,
            Curve::P521 => OID_P521,
        }
    }

    /// The NIST name, for error texts.
    pub(super) fn name(self) -> &'static str {
        match self {
            Curve::P256 => "P-256",
            Curve::P384 => "P-384",
            Curve::P521 => "P-521",
        }
    }
}

/// An RSA public key as PKCS#1 `RSAPublicKey` DER, the form ring verifies with. It is
/// re-encoded from the parsed modulus and exponent, so equal keys compare equal whatever
/// file they came from.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct RsaPublic {
    pub(super) pkcs1: Vec<u8>,
}

/// An RSA private key and its public half.
pub(super) struct RsaPrivate {
    /// PKCS#1 `RSAPrivateKey` DER, the form ring signs with.
    pub(super) pkcs1: Vec<u8>,
    pub(super) public: RsaPublic,
}

/// An EC public key: its curve and uncompressed SEC1 point (the form ring verifies with).
#[derive(Debug, PartialEq, Eq)]
pub(super) struct EcPublic {
    pub(super) curve: Curve,
    pub(super) point: Vec<u8>,
}

/// An EC private key and its public half.
pub(super) struct EcPrivate {
    /// PKCS#8 v1 `PrivateKeyInfo` DER wrapping the SEC1 key, the form ring signs with.
    pub(super) pkcs8: Vec<u8>,
    pub(super) public: EcPublic,
}

/// golang-jwt `ParseRSAPrivateKeyFromPEM`: PKCS#1 `RSAPrivateKey` or PKCS#8 of an RSA
/// key, whatever the PEM label. A non-RSA or unreadable key is
/// [`ERR_NOT_RSA_PRIVATE_KEY`].
pub(super) fn rsa_private_key(pem: &[u8]) -> Result<RsaPrivate, String> {
    let der = pem_block(pem)?;
    let invalid = || ERR_NOT_RSA_PRIVATE_KEY.to_string();
    let pkcs1_der = match pkcs1::RsaPrivateKey::from_der(&der) {
        Ok(_) => &der[..],
        Err(_) => {
            let info = PrivateKeyInfo::from_der(&der).map_err(|_| invalid())?;
            if info.algorithm.oid != OID_RSA_ENCRYPTION {
                return Err(invalid());
            }
            info.private_key
        }
    };
    let key = pkcs1::RsaPrivateKey::from_der(pkcs1_der).map_err(|_| invalid())?;
    Ok(RsaPrivate {
        pkcs1: pkcs1_der.to_vec(),
        public: rsa_public(key.public_key()).ok_or_else(invalid)?,
    })
}

/// golang-jwt `ParseRSAPublicKeyFromPEM`: SubjectPublicKeyInfo or a certificate (and, as
/// a Cairn extra, PKCS#1 `RSA PUBLIC KEY`). A non-RSA or unreadable key is
/// [`ERR_NOT_RSA_PUBLIC_KEY`].
pub(super) fn rsa_public_key(pem: &[u8]) -> Result<RsaPublic, String> {
    let der = pem_block(pem)?;
    let invalid = || ERR_NOT_RSA_PUBLIC_KEY.to_string();
    let pkcs1_der = match spki_or_certificate(&der) {
        Some(info) if info.algorithm.oid == OID_RSA_ENCRYPTION => {
            info.subject_public_key.as_bytes().ok_or_else(invalid)?
        }
        Some(_) => return Err(invalid()),
        None => &der[..],
    };
    let key = pkcs1::RsaPublicKey::from_der(pkcs1_der).map_err(|_| invalid())?;
    rsa_public(key).ok_or_else(invalid)
}

fn rsa_public(key: pkcs1::RsaPublicKey<'_>) -> Option<RsaPublic> {
    Some(RsaPublic {
        pkcs1: key.to_der().ok()?,
    })
}

/// golang-jwt `ParseECPrivateKeyFromPEM`: SEC1 `ECPrivateKey` or PKCS#8 of an EC key,
/// on a named curve. The public point must be in the SEC1 key (OpenSSL always writes it;
/// ring needs it). Anything else is [`ERR_NOT_EC_PRIVATE_KEY`].
pub(super) fn ec_private_key(pem: &[u8]) -> Result<EcPrivate, String> {
    let der = pem_block(pem)?;
    let invalid = || ERR_NOT_EC_PRIVATE_KEY.to_string();
    let (pkcs8_curve, sec1_der) = match PrivateKeyInfo::from_der(&der) {
        Ok(info) => {
            if info.algorithm.oid != OID_EC_PUBLIC_KEY {
                return Err(invalid());
            }
            let curve = info.algorithm.parameters_oid().map_err(|_| invalid())?;
            (Some(curve), info.private_key)
        }
        Err(_) => (None, &der[..]),
    };
    let sec1 = sec1::EcPrivateKey::from_der(sec1_der).map_err(|_| invalid())?;
    let curve = pkcs8_curve
        .or_else(|| sec1.parameters.and_then(|p| p.named_curve()))
        .and_then(Curve::from_oid)
        .ok_or_else(invalid)?;
    let point = sec1.public_key.ok_or_else(invalid)?.to_vec();
    // PrivateKeyInfo { version 0, AlgorithmIdentifier { ecPublicKey, curve }, sec1 }
    let curve_oid = curve.oid();
    let algorithm = AlgorithmIdentifierRef {
        oid: OID_EC_PUBLIC_KEY,
        parameters: Some(AnyRef::from(&curve_oid)),
    };
    let pkcs8 = PrivateKeyInfo::new(algorithm, sec1_der)
        .to_der()
        .map_err(|_| invalid())?;
    Ok(EcPrivate {
        pkcs8,
        public: EcPublic { curve, point },
    })
}

/// golang-jwt `ParseECPublicKeyFromPEM`: SubjectPublicKeyInfo or a certificate, on a
/// named curve. Anything else is [`ERR_NOT_EC_PUBLIC_KEY`].
pub(super) fn ec_public_key(pem: &[u8]) -> Result<EcPublic, String> {
    let der = pem_block(pem)?;
    let invalid = || ERR_NOT_EC_PUBLIC_KEY.to_string();
    let info = spki_or_certificate(&der).ok_or_else(invalid)?;
    if info.algorithm.oid != OID_EC_PUBLIC_KEY {
        return Err(invalid());
    }
    let curve = info.algorithm.parameters_oid().map_err(|_| invalid())?;
    Ok(EcPublic {
        curve: Curve::from_oid(curve).ok_or_else(invalid)?,
        point: info
            .subject_public_key
            .as_bytes()
            .ok_or_else(invalid)?
            .to_vec(),
    })
}

/// `der` as a SubjectPublicKeyInfo, or the one of the X.509 certificate `der` is (Go
/// `x509.ParsePKIXPublicKey`, then `x509.ParseCertificate`).
fn spki_or_certificate(der: &[u8]) -> Option<SubjectPublicKeyInfoRef<'_>> {
    if let Ok(info) = SubjectPublicKeyInfoRef::from_der(der) {
        return Some(info);
    }
    let (_, certificate) = x509_parser::parse_x509_certificate(der).ok()?;
    let raw = certificate.tbs_certificate.subject_pki.raw;
    SubjectPublicKeyInfoRef::from_der(raw).ok()
}

/// The DER bytes of the first PEM block of `text` (Go `pem.Decode`: text around it is
/// skipped, any label is taken). A text without one is [`ERR_KEY_MUST_BE_PEM`], and so is
/// a block with headers (an encrypted key, which golang-jwt does not read either).
pub(super) fn pem_block(text: &[u8]) -> Result<Vec<u8>, String> {
    match pem::parse(text) {
        Ok(block) if block.headers().iter().next().is_none() => Ok(block.into_contents()),
        _ => Err(ERR_KEY_MUST_BE_PEM.to_string()),
    }
}
