//! Throw-away certificates for TLS tests and scripts: a CA made on the spot
//! (rcgen) and leaf certificates it signs, for given names, key types and
//! validity. Nothing here is meant to protect anything.
//!
//! Shared by the integration tests (`common::certs`) and by
//! `examples/tls_certs.rs`, which `scripts/tls-certs` runs to write PEM
//! files for the interop suites and the benchmark.
#![allow(dead_code)]

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use std::path::Path;

/// The private key type of a leaf certificate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyKind {
    /// ECDSA P-256, PKCS#8 PEM (`PRIVATE KEY`).
    EcdsaP256,
    /// Ed25519, PKCS#8 PEM.
    Ed25519,
    /// RSA 2048, PKCS#1 PEM (`RSA PRIVATE KEY`, what `openssl genrsa` writes).
    Rsa2048,
}

impl KeyKind {
    pub fn parse(s: &str) -> Option<KeyKind> {
        match s {
            "ecdsa" => Some(KeyKind::EcdsaP256),
            "ed25519" => Some(KeyKind::Ed25519),
            "rsa" => Some(KeyKind::Rsa2048),
            _ => None,
        }
    }
}

/// When a leaf certificate is valid.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Validity {
    /// From yesterday for a year.
    Current,
    /// Ended yesterday.
    Expired,
}

/// A certificate authority.
pub struct Ca {
    issuer: Issuer<'static, KeyPair>,
    /// The CA certificate, PEM.
    pub pem: String,
}

/// A leaf certificate and its key.
pub struct Leaf {
    /// The leaf certificate, PEM.
    pub cert_pem: String,
    /// Its private key, PEM.
    pub key_pem: String,
    /// The leaf certificate, DER.
    pub der: Vec<u8>,
}

fn days_from_now(days: i64) -> time::OffsetDateTime {
    time::OffsetDateTime::now_utc() + time::Duration::days(days)
}

fn name(cn: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, cn);
    dn
}

impl Ca {
    /// A new self-signed ECDSA P-256 CA called `cn`, valid for ten years.
    pub fn new(cn: &str) -> Ca {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("CA key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.distinguished_name = name(cn);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params.not_before = days_from_now(-1);
        params.not_after = days_from_now(3650);
        let pem = params.self_signed(&key).expect("CA certificate").pem();
        Ca {
            issuer: Issuer::new(params, key),
            pem,
        }
    }

    /// A leaf certificate for `names` (DNS names or IP addresses).
    pub fn leaf(&self, names: &[&str], kind: KeyKind, validity: Validity) -> Leaf {
        let (key, key_pem) = match kind {
            KeyKind::EcdsaP256 => {
                let k = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("key");
                let pem = k.serialize_pem();
                (k, pem)
            }
            KeyKind::Ed25519 => {
                let k = KeyPair::generate_for(&rcgen::PKCS_ED25519).expect("key");
                let pem = k.serialize_pem();
                (k, pem)
            }
            KeyKind::Rsa2048 => rsa_key(),
        };
        let mut params =
            CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .expect("leaf params");
        params.distinguished_name = name(names.first().copied().unwrap_or("leaf"));
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        if kind == KeyKind::Rsa2048 {
            params.key_usages.push(KeyUsagePurpose::KeyEncipherment);
        }
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let (from, to) = match validity {
            Validity::Current => (-1, 365),
            Validity::Expired => (-30, -1),
        };
        params.not_before = days_from_now(from);
        params.not_after = days_from_now(to);
        let cert = params
            .signed_by(&key, &self.issuer)
            .expect("leaf certificate");
        Leaf {
            cert_pem: cert.pem(),
            key_pem,
            der: cert.der().to_vec(),
        }
    }
}

/// A fresh RSA 2048 key: rcgen's key pair (for signing the certificate)
/// and the PKCS#1 PEM a server is given.
fn rsa_key() -> (KeyPair, String) {
    use rsa::pkcs1::EncodeRsaPrivateKey;
    use rsa::pkcs8::EncodePrivateKey;
    let mut rng = rsa::rand_core::OsRng;
    let key = rsa::RsaPrivateKey::new(&mut rng, 2048).expect("RSA key");
    let pkcs8 = key.to_pkcs8_der().expect("PKCS#8");
    let pair = KeyPair::from_pkcs8_der_and_sign_algo(
        &rustls_pki_types::PrivatePkcs8KeyDer::from(pkcs8.as_bytes().to_vec()),
        &rcgen::PKCS_RSA_SHA256,
    )
    .expect("rcgen RSA key");
    let pem = key
        .to_pkcs1_pem(rsa::pkcs1::LineEnding::LF)
        .expect("PKCS#1 PEM")
        .to_string();
    (pair, pem)
}

/// Write `ca.pem`, `cert.pem` (the leaf) and `key.pem` into `dir`.
pub fn write_set(dir: &Path, ca: &Ca, leaf: &Leaf) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join("ca.pem"), &ca.pem)?;
    std::fs::write(dir.join("cert.pem"), &leaf.cert_pem)?;
    std::fs::write(dir.join("key.pem"), &leaf.key_pem)?;
    Ok(())
}
