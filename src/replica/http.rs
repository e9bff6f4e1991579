//! The replica's way to its primary over HTTP: the Rust [`Client`] with a
//! signer built from the settings file's `auth` (a passphrase, a passphrase
//! file, or saved device credentials), signing the full URL path (mount
//! included) and host of every request, as `createReplicaAuth` does, and
//! re-minting a self-signed cap a day before it expires (replica.md §10).
//! `https://` primaries are verified against the bundled Mozilla roots or
//! the settings' `caFile`; a TLS failure is a failed sync like an
//! unreachable primary (logged, retried with back-off, local data served).

use super::config::{ReplicaAuth, ReplicaConfig};
use super::manager::{Primary, PrimaryResponse};
use crate::client::identity::{DeviceCredentials, Signer};
use crate::client::{Client, ClientOptions};
use crate::http::BoxFuture;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// Why the replica's identity or clients could not be set up.
#[derive(Debug)]
pub enum PrimarySetupError {
    ReadFile(std::path::PathBuf, std::io::Error),
    Credentials(String),
    Client(String),
}

impl fmt::Display for PrimarySetupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PrimarySetupError::ReadFile(p, e) => {
                write!(f, "[starfish-replica] cannot read {}: {e}", p.display())
            }
            PrimarySetupError::Credentials(e) => {
                write!(f, "[starfish-replica] replica identity: {e}")
            }
            PrimarySetupError::Client(e) => write!(f, "[starfish-replica] primary URL: {e}"),
        }
    }
}

impl std::error::Error for PrimarySetupError {}

/// The signer for `auth`, if any. A passphrase costs one Argon2id
/// derivation (about 46 MiB for a moment); saved credentials cost nothing.
pub fn signer_for(config: &ReplicaConfig) -> Result<Option<Arc<Signer>>, PrimarySetupError> {
    let ttl = config.cap_ttl_sec;
    let creds = match &config.auth {
        ReplicaAuth::None => return Ok(None),
        ReplicaAuth::Passphrase(p) => DeviceCredentials::bootstrap_with_ttl(p, ttl),
        ReplicaAuth::PassphraseFile(f) => {
            let text = std::fs::read_to_string(f)
                .map_err(|e| PrimarySetupError::ReadFile(f.clone(), e))?;
            let pass = text
                .strip_suffix('\n')
                .map(|t| t.strip_suffix('\r').unwrap_or(t))
                .unwrap_or(&text);
            DeviceCredentials::bootstrap_with_ttl(pass, ttl)
        }
        ReplicaAuth::CredentialsFile(f) => DeviceCredentials::load(f),
    }
    .map_err(|e| PrimarySetupError::Credentials(e.to_string()))?;
    let signer = Signer::from_credentials(&creds)
        .map_err(|e| PrimarySetupError::Credentials(e.to_string()))?
        .with_remint_margin(config.refresh_margin_sec);
    log::info!(
        "[starfish-replica] signing requests to the primary as user {}",
        creds.user_id
    );
    Ok(Some(Arc::new(signer)))
}

/// One client per primary base URL.
pub struct HttpPrimary {
    clients: Vec<(String, Client)>,
    signer: Option<Arc<Signer>>,
    refresh_margin_sec: i64,
}

impl HttpPrimary {
    /// Clients for every primary URL of `config`, signing with `signer`.
    pub fn new(
        config: &ReplicaConfig,
        signer: Option<Arc<Signer>>,
    ) -> Result<HttpPrimary, PrimarySetupError> {
        let mut clients: Vec<(String, Client)> = Vec::new();
        for r in &config.collections {
            if clients.iter().any(|(u, _)| *u == r.url) {
                continue;
            }
            let opts = ClientOptions {
                signer: signer.clone(),
                timeout: Duration::from_secs(30),
                ca_file: config.ca_file.clone(),
                ..ClientOptions::default()
            };
            let c = Client::with_options(&r.url, opts)
                .map_err(|e| PrimarySetupError::Client(format!("{}: {e}", r.url)))?;
            clients.push((r.url.clone(), c));
        }
        Ok(HttpPrimary {
            clients,
            signer,
            refresh_margin_sec: config.refresh_margin_sec,
        })
    }
}

impl Primary for HttpPrimary {
    fn request<'a>(
        &'a self,
        method: &'a str,
        url: &'a str,
        headers: &'a [(String, String)],
        body: &'a [u8],
    ) -> BoxFuture<'a, Result<PrimaryResponse, String>> {
        Box::pin(async move {
            let (base, client) = self
                .clients
                .iter()
                .find(|(b, _)| url.starts_with(b.as_str()))
                .ok_or_else(|| format!("no client for {url}"))?;
            let rel = &url[base.len()..];
            let body = (!body.is_empty()).then(|| body.to_vec());
            let (status, body) = client
                .send_raw(method, rel, headers, body)
                .await
                .map_err(|e| e.to_string())?;
            Ok(PrimaryResponse { status, body })
        })
    }

    fn renew(&self) -> Option<Duration> {
        let signer = self.signer.as_ref()?;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        match signer.cap_at(now) {
            Ok(cap) => {
                let exp = cap.exp().unwrap_or(0.0) as i64;
                let due = exp - self.refresh_margin_sec - now;
                Some(Duration::from_secs(due.clamp(60, 86_400) as u64))
            }
            Err(e) => {
                log::warn!("[starfish-replica] cap renewal failed: {e}");
                Some(Duration::from_secs(60))
            }
        }
    }
}
