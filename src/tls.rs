//! # TLS (the `tls` feature)
//!
//! rustls, driven through `futures-rustls` on the same `async-net` sockets as
//! plain HTTP (no tokio). This module owns every rustls decision, for both
//! sides:
//!
//! * **The crypto provider**: `ring`. Chosen by measurement against
//!   `aws-lc-rs` (`bench/tls-provider/`): aws-lc-rs handshakes 1.4-1.7x
//!   faster, but adds about 2.4 MB to the stripped binary (the whole default
//!   budget is 2.5 MiB) and a long C build; see
//!   `bench/tls-provider/README.md` for the figures.
//! * **Server**: [`ServerTls`] holds a certificate chain and its private key
//!   (PEM; RSA, ECDSA or Ed25519 keys in PKCS#8, PKCS#1 or SEC1 form). The
//!   pair can be replaced while serving ([`ServerTls::reload`], done on
//!   SIGHUP by `starfish serve`): new handshakes get the new certificate,
//!   established connections keep theirs. TLS 1.2 and 1.3, ALPN `http/1.1`.
//! * **Client**: [`client_config`] trusts the bundled Mozilla roots
//!   (`webpki-roots`) or, instead, the CA certificates of one PEM file.
//!   Hostname verification and SNI are always on; there is no switch to turn
//!   verification off.
//! * **Failures**: [`failure_reason`] turns a handshake error into a few
//!   words a person can act on (unknown issuer, certificate expired, name
//!   mismatch, ...).

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock, RwLock};

pub use futures_rustls::rustls;
pub use futures_rustls::{TlsAcceptor, TlsConnector};

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

/// Why certificates, keys or a TLS configuration could not be set up.
#[derive(Debug)]
pub enum TlsError {
    /// A file could not be read.
    Read(PathBuf, io::Error),
    /// A PEM input holds nothing usable of the kind needed (what, where).
    Pem(String),
    /// rustls refused the material (a key that does not match the
    /// certificate, an unsupported key type, ...).
    Rustls(String),
}

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TlsError::Read(p, e) => write!(f, "cannot read {}: {e}", p.display()),
            TlsError::Pem(m) => f.write_str(m),
            TlsError::Rustls(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for TlsError {}

/// The one crypto provider of the crate (`ring`).
pub fn provider() -> Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    PROVIDER
        .get_or_init(|| Arc::new(rustls::crypto::ring::default_provider()))
        .clone()
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|e| TlsError::Read(path.to_path_buf(), e))
}

/// Every `CERTIFICATE` block of a PEM input, in order. `what` names the
/// input in errors.
pub fn parse_certificates(
    pem: &[u8],
    what: &str,
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Pem(format!("{what}: bad PEM: {e}")))?;
    if certs.is_empty() {
        return Err(TlsError::Pem(format!("{what}: no CERTIFICATE in the PEM")));
    }
    Ok(certs)
}

/// The first private key of a PEM input (`PRIVATE KEY`, `RSA PRIVATE KEY`
/// or `EC PRIVATE KEY`).
pub fn parse_private_key(pem: &[u8], what: &str) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_slice(pem).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => {
            TlsError::Pem(format!("{what}: no private key in the PEM"))
        }
        e => TlsError::Pem(format!("{what}: bad PEM: {e}")),
    })
}

/// A certificate chain (leaf first) and its key, checked to belong together.
fn certified_key(
    cert_pem: &[u8],
    key_pem: &[u8],
    cert_what: &str,
    key_what: &str,
) -> Result<Arc<CertifiedKey>, TlsError> {
    let chain = parse_certificates(cert_pem, cert_what)?;
    let key = parse_private_key(key_pem, key_what)?;
    let ck = CertifiedKey::from_der(chain, key, &provider())
        .map_err(|e| TlsError::Rustls(format!("{cert_what} / {key_what}: {e}")))?;
    Ok(Arc::new(ck))
}

/// The certificate handed to every new handshake; swapped on reload.
#[derive(Debug)]
struct CurrentCert(RwLock<Arc<CertifiedKey>>);

impl CurrentCert {
    fn get(&self) -> Arc<CertifiedKey> {
        self.0.read().unwrap_or_else(|p| p.into_inner()).clone()
    }
    fn set(&self, key: Arc<CertifiedKey>) {
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = key;
    }
}

impl ResolvesServerCert for CurrentCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.get())
    }
}

/// The server side: a rustls server configuration whose certificate can be
/// replaced while serving.
pub struct ServerTls {
    files: Option<(PathBuf, PathBuf)>,
    current: Arc<CurrentCert>,
    config: Arc<rustls::ServerConfig>,
}

impl fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerTls")
            .field("files", &self.files)
            .finish_non_exhaustive()
    }
}

impl ServerTls {
    /// Load a PEM certificate chain (leaf first) and a PEM private key.
    /// [`ServerTls::reload`] reads the same two files again.
    pub fn from_pem_files(cert: &Path, key: &Path) -> Result<ServerTls, TlsError> {
        let ck = certified_key(
            &read(cert)?,
            &read(key)?,
            &cert.display().to_string(),
            &key.display().to_string(),
        )?;
        ServerTls::new(ck, Some((cert.to_path_buf(), key.to_path_buf())))
    }

    /// From PEM text in memory (no files to reload from).
    pub fn from_pem(cert_pem: &[u8], key_pem: &[u8]) -> Result<ServerTls, TlsError> {
        let ck = certified_key(cert_pem, key_pem, "certificate", "private key")?;
        ServerTls::new(ck, None)
    }

    fn new(
        ck: Arc<CertifiedKey>,
        files: Option<(PathBuf, PathBuf)>,
    ) -> Result<ServerTls, TlsError> {
        let current = Arc::new(CurrentCert(RwLock::new(ck)));
        let mut config = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Rustls(e.to_string()))?
            .with_no_client_auth()
            .with_cert_resolver(current.clone());
        config.alpn_protocols = vec![b"http/1.1".to_vec(), b"http/1.0".to_vec()];
        Ok(ServerTls {
            files,
            current,
            config: Arc::new(config),
        })
    }

    /// The certificate and key files, when loaded from files.
    pub fn files(&self) -> Option<(&Path, &Path)> {
        self.files.as_ref().map(|(c, k)| (c.as_path(), k.as_path()))
    }

    /// Read the certificate and key files again and use them for every new
    /// handshake. On any error the current certificate stays in use.
    pub fn reload(&self) -> Result<(), TlsError> {
        let Some((cert, key)) = &self.files else {
            return Err(TlsError::Pem(
                "no certificate files to reload from".to_owned(),
            ));
        };
        let ck = certified_key(
            &read(cert)?,
            &read(key)?,
            &cert.display().to_string(),
            &key.display().to_string(),
        )?;
        self.current.set(ck);
        Ok(())
    }

    /// Use this PEM certificate chain and key for every new handshake.
    pub fn replace_pem(&self, cert_pem: &[u8], key_pem: &[u8]) -> Result<(), TlsError> {
        self.current.set(certified_key(
            cert_pem,
            key_pem,
            "certificate",
            "private key",
        )?);
        Ok(())
    }

    /// The end-entity certificate new handshakes present (DER).
    pub fn certificate(&self) -> CertificateDer<'static> {
        self.current.get().cert[0].clone()
    }

    /// An acceptor for one connection.
    pub fn acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(self.config.clone())
    }
}

/// A client configuration: the bundled Mozilla roots, or instead only the CA
/// certificates in `ca_file` (PEM). Hostname verification is rustls's
/// WebPKI verifier and cannot be switched off.
pub fn client_config(ca_file: Option<&Path>) -> Result<Arc<rustls::ClientConfig>, TlsError> {
    let mut roots = rustls::RootCertStore::empty();
    match ca_file {
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        Some(path) => {
            let what = path.display().to_string();
            for cert in parse_certificates(&read(path)?, &what)? {
                roots.add(cert).map_err(|e| {
                    TlsError::Pem(format!("{what}: not a usable CA certificate: {e}"))
                })?;
            }
        }
    }
    let mut config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Rustls(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// If `e` is a TLS failure, what went wrong in a few words; `name` is the
/// host name or address the certificate was checked against. `None` for
/// plain I/O errors.
pub fn failure_reason(e: &io::Error, name: &str) -> Option<String> {
    let tls = e.get_ref()?.downcast_ref::<rustls::Error>()?;
    Some(describe(tls, name))
}

fn describe(e: &rustls::Error, name: &str) -> String {
    use rustls::CertificateError as C;
    use rustls::Error as E;
    match e {
        E::InvalidCertificate(c) => match c {
            C::UnknownIssuer => {
                "unknown issuer (the certificate is not signed by a trusted CA)".to_owned()
            }
            C::Expired | C::ExpiredContext { .. } => "certificate expired".to_owned(),
            C::NotValidYet | C::NotValidYetContext { .. } => "certificate not valid yet".to_owned(),
            C::NotValidForName | C::NotValidForNameContext { .. } => {
                format!("name mismatch (the certificate is not valid for {name})")
            }
            C::Revoked => "certificate revoked".to_owned(),
            other => format!("invalid certificate ({other:?})"),
        },
        E::AlertReceived(alert) => format!("the server refused the handshake ({alert:?})"),
        E::InvalidMessage(_) => "the server does not speak TLS on this port".to_owned(),
        E::PeerIncompatible(_) => "no TLS version or cipher suite in common".to_owned(),
        other => other.to_string(),
    }
}
