//! Device credentials: bootstrap from a passphrase, save and load as JSON,
//! and the request [`Signer`] built from them.
//!
//! The JSON file has exactly the shape of the official identities package's
//! `DeviceCredentials`:
//!
//! ```json
//! {"rootEdPub":"<hex>","userId":"<hex32>",
//!  "device":{"edPriv":"<hex>","edPub":"<hex>","kemPriv":"<hex>","kemPub":"<hex>"},
//!  "capCert":{...}}
//! ```
//!
//! so credentials made by `bootstrapRootIdentity` elsewhere (and written
//! with `JSON.stringify`) load here, and a small device can skip the 46 MiB
//! Argon2id derivation.

use crate::proto::cap::{
    mint_device_cap, root_all_scope, verify_cap_cert, CapCert, MintError, MintOptions,
    DEFAULT_CAP_TTL_SEC,
};
use crate::proto::encoding::{b64_encode, hex_decode_array};
use crate::proto::identity::{derive_root_identity, IdentityError, RootIdentity};
use crate::proto::json::{parse, to_js_json, Object, ParseError, Value};
use crate::proto::request_sig::public_key_hex;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

/// Why credentials could not be made, read or used.
#[derive(Debug)]
pub enum CredentialsError {
    /// Reading or writing the credentials file failed.
    Io(PathBuf, std::io::Error),
    /// The file is not JSON.
    Json(ParseError),
    /// A field is missing or has the wrong type / encoding.
    Field(&'static str),
    /// `device.edPriv` does not produce `device.edPub`.
    KeyMismatch,
    /// The cap-cert's subject is not this device's key.
    CapSubjectMismatch,
    /// Deriving the root identity failed.
    Identity(IdentityError),
    /// Minting the device cap failed.
    Mint(MintError),
    /// The system random source failed.
    Random(String),
}

impl fmt::Display for CredentialsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CredentialsError::Io(p, e) => write!(f, "{}: {e}", p.display()),
            CredentialsError::Json(e) => write!(f, "credentials are not JSON: {e}"),
            CredentialsError::Field(name) => {
                write!(f, "credentials: missing or invalid field {name}")
            }
            CredentialsError::KeyMismatch => {
                f.write_str("credentials: device.edPriv does not match device.edPub")
            }
            CredentialsError::CapSubjectMismatch => {
                f.write_str("credentials: capCert.sub is not the device key")
            }
            CredentialsError::Identity(e) => write!(f, "{e}"),
            CredentialsError::Mint(e) => write!(f, "{e}"),
            CredentialsError::Random(e) => write!(f, "random source failed: {e}"),
        }
    }
}

impl std::error::Error for CredentialsError {}

/// The device's keys, lowercase hex (`edPriv` is the 32-byte Ed25519 seed).
#[derive(Clone, PartialEq, Eq)]
pub struct DeviceKeys {
    pub ed_priv: String,
    pub ed_pub: String,
    pub kem_priv: String,
    pub kem_pub: String,
}

impl fmt::Debug for DeviceKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeviceKeys")
            .field("ed_pub", &self.ed_pub)
            .field("kem_pub", &self.kem_pub)
            .finish_non_exhaustive()
    }
}

/// `DeviceCredentials` of the official identities package.
#[derive(Clone, Debug, PartialEq)]
pub struct DeviceCredentials {
    /// The user's root Ed25519 public key, hex.
    pub root_ed_pub: String,
    /// `userId(rootEdPub)`.
    pub user_id: String,
    pub device: DeviceKeys,
    pub cap_cert: CapCert,
}

/// Current Unix time in milliseconds.
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// 16 random bytes from the system.
pub(crate) fn random16() -> Result<[u8; 16], CredentialsError> {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).map_err(|e| CredentialsError::Random(e.to_string()))?;
    Ok(b)
}

impl DeviceCredentials {
    /// `bootstrapRootIdentity(passphrase)`: derive the root identity
    /// (Argon2id, ~46 MiB, a second or so) and mint a self-signed full-scope
    /// device cap valid from now for 30 days.
    pub fn bootstrap(passphrase: &str) -> Result<DeviceCredentials, CredentialsError> {
        DeviceCredentials::bootstrap_with_ttl(passphrase, DEFAULT_CAP_TTL_SEC)
    }

    /// [`DeviceCredentials::bootstrap`] with a cap lifetime of `ttl_sec`.
    pub fn bootstrap_with_ttl(
        passphrase: &str,
        ttl_sec: i64,
    ) -> Result<DeviceCredentials, CredentialsError> {
        let root = derive_root_identity(passphrase).map_err(CredentialsError::Identity)?;
        let opts = MintOptions {
            nbf: (now_ms() / 1000) as i64,
            ttl_sec,
            nonce: random16()?,
        };
        DeviceCredentials::from_root_identity(&root, opts)
    }

    /// The deterministic half of [`DeviceCredentials::bootstrap`]: the root
    /// keys are the device keys, and the cap is self-signed with scope
    /// `rootAll()`.
    pub fn from_root_identity(
        root: &RootIdentity,
        opts: MintOptions,
    ) -> Result<DeviceCredentials, CredentialsError> {
        let seed = hex_decode_array::<32>(&root.ed_priv).ok_or(CredentialsError::KeyMismatch)?;
        let cap = mint_device_cap(
            &seed,
            &root.ed_pub,
            &root.ed_pub,
            &root.kem_pub,
            root_all_scope(),
            opts,
        )
        .map_err(CredentialsError::Mint)?;
        Ok(DeviceCredentials {
            root_ed_pub: root.ed_pub.clone(),
            user_id: root.user_id.clone(),
            device: DeviceKeys {
                ed_priv: root.ed_priv.clone(),
                ed_pub: root.ed_pub.clone(),
                kem_priv: root.kem_priv.clone(),
                kem_pub: root.kem_pub.clone(),
            },
            cap_cert: cap,
        })
    }

    /// The device's Ed25519 seed, checked against `device.edPub`.
    pub fn device_seed(&self) -> Result<[u8; 32], CredentialsError> {
        let seed = hex_decode_array::<32>(&self.device.ed_priv)
            .ok_or(CredentialsError::Field("device.edPriv"))?;
        if !public_key_hex(&seed).eq_ignore_ascii_case(&self.device.ed_pub) {
            return Err(CredentialsError::KeyMismatch);
        }
        Ok(seed)
    }

    /// The credentials as a JSON value, fields in the official order.
    pub fn to_value(&self) -> Value {
        let mut device = Object::new();
        device.insert("edPriv", self.device.ed_priv.as_str().into());
        device.insert("edPub", self.device.ed_pub.as_str().into());
        device.insert("kemPriv", self.device.kem_priv.as_str().into());
        device.insert("kemPub", self.device.kem_pub.as_str().into());
        let mut o = Object::new();
        o.insert("rootEdPub", self.root_ed_pub.as_str().into());
        o.insert("userId", self.user_id.as_str().into());
        o.insert("device", Value::Object(device));
        o.insert("capCert", self.cap_cert.value().clone());
        Value::Object(o)
    }

    /// `JSON.stringify(credentials)`.
    pub fn to_json(&self) -> String {
        String::from_utf8(to_js_json(&self.to_value())).unwrap_or_default()
    }

    /// Parse credentials JSON and check that the device keys agree.
    pub fn from_json(text: &[u8]) -> Result<DeviceCredentials, CredentialsError> {
        let v = parse(text).map_err(CredentialsError::Json)?;
        let o = v
            .as_object()
            .ok_or(CredentialsError::Field("(root object)"))?;
        let s = |o: &Object, name: &'static str| {
            o.get(name)
                .and_then(Value::as_str)
                .map(str::to_owned)
                .ok_or(CredentialsError::Field(name))
        };
        let device = o
            .get("device")
            .and_then(Value::as_object)
            .ok_or(CredentialsError::Field("device"))?;
        let cap = o
            .get("capCert")
            .filter(|c| c.as_object().is_some())
            .ok_or(CredentialsError::Field("capCert"))?;
        let creds = DeviceCredentials {
            root_ed_pub: s(o, "rootEdPub")?,
            user_id: s(o, "userId")?,
            device: DeviceKeys {
                ed_priv: s(device, "edPriv")?,
                ed_pub: s(device, "edPub")?,
                kem_priv: s(device, "kemPriv")?,
                kem_pub: s(device, "kemPub")?,
            },
            cap_cert: CapCert::from_value(cap.clone()),
        };
        creds.device_seed()?;
        Ok(creds)
    }

    /// Read a credentials file.
    pub fn load(path: impl AsRef<Path>) -> Result<DeviceCredentials, CredentialsError> {
        let path = path.as_ref();
        let text = std::fs::read(path).map_err(|e| CredentialsError::Io(path.into(), e))?;
        DeviceCredentials::from_json(&text)
    }

    /// Write a credentials file (JSON plus a newline). On Unix the file is
    /// created with mode 0600: it holds private keys.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<(), CredentialsError> {
        use std::io::Write;
        let path = path.as_ref();
        let io = |e| CredentialsError::Io(path.into(), e);
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut f = opts.open(path).map_err(io)?;
        f.write_all(self.to_json().as_bytes()).map_err(io)?;
        f.write_all(b"\n").map_err(io)?;
        f.sync_all().map_err(io)
    }
}

/// Re-mint a self-signed cap this many seconds before it expires.
pub const DEFAULT_REMINT_MARGIN_SEC: i64 = 3600;

/// Signs requests for one device: its Ed25519 seed and its cap-cert.
///
/// When the cap is a self-signed root device cap issued by this very key
/// (`iss == sub == device key`, as `bootstrapRootIdentity` makes), the
/// signer mints a fresh one (same scope, same lifetime, new nonce, `nbf` =
/// now) once the current one is within the re-mint margin of `exp` (the
/// smaller of [`DEFAULT_REMINT_MARGIN_SEC`] and a quarter of the lifetime). Caps
/// issued by another key are used as they are.
pub struct Signer {
    seed: [u8; 32],
    pub_hex: String,
    cap: Mutex<CapCert>,
    remint_margin_sec: i64,
}

impl fmt::Debug for Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Signer")
            .field("pub_hex", &self.pub_hex)
            .finish_non_exhaustive()
    }
}

impl Signer {
    /// A signer for a device seed and a cap whose subject is that device.
    pub fn new(seed: [u8; 32], cap: CapCert) -> Result<Signer, CredentialsError> {
        let pub_hex = public_key_hex(&seed);
        if !cap.sub().is_some_and(|s| s.eq_ignore_ascii_case(&pub_hex)) {
            return Err(CredentialsError::CapSubjectMismatch);
        }
        Ok(Signer {
            seed,
            pub_hex,
            cap: Mutex::new(cap),
            remint_margin_sec: DEFAULT_REMINT_MARGIN_SEC,
        })
    }

    /// A signer from device credentials.
    pub fn from_credentials(creds: &DeviceCredentials) -> Result<Signer, CredentialsError> {
        Signer::new(creds.device_seed()?, creds.cap_cert.clone())
    }

    /// Change the re-mint margin (seconds before `exp`).
    pub fn with_remint_margin(mut self, seconds: i64) -> Signer {
        self.remint_margin_sec = seconds;
        self
    }

    /// The device public key, hex.
    pub fn public_key_hex(&self) -> &str {
        &self.pub_hex
    }

    pub(crate) fn seed(&self) -> &[u8; 32] {
        &self.seed
    }

    /// Whether this signer can re-mint its own cap.
    fn can_remint(&self, cap: &CapCert) -> bool {
        cap.is_root_device_cap()
            && cap
                .iss()
                .is_some_and(|i| i.eq_ignore_ascii_case(&self.pub_hex))
    }

    /// The cap to present at `now_sec`, re-minted first if it is a
    /// self-signed root cap close to expiry (or past it).
    pub fn cap_at(&self, now_sec: i64) -> Result<CapCert, CredentialsError> {
        let mut cap = self.cap.lock().unwrap_or_else(|p| p.into_inner());
        let exp = cap.exp().unwrap_or(0.0) as i64;
        let nbf = cap.nbf().unwrap_or(0.0) as i64;
        let ttl = if exp > nbf {
            exp - nbf
        } else {
            DEFAULT_CAP_TTL_SEC
        };
        let margin = self.remint_margin_sec.min(ttl / 4);
        if self.can_remint(&cap) && now_sec + margin >= exp {
            let scope = cap
                .field("scope")
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_else(root_all_scope);
            let kem = cap.sub_kem().unwrap_or_default().to_owned();
            let fresh = mint_device_cap(
                &self.seed,
                &self.pub_hex,
                &self.pub_hex,
                &kem,
                scope,
                MintOptions {
                    nbf: now_sec,
                    ttl_sec: ttl,
                    nonce: random16()?,
                },
            )
            .map_err(CredentialsError::Mint)?;
            debug_assert!(verify_cap_cert(&fresh, now_sec, 0).is_ok());
            log::debug!(
                "re-minted self-signed cap (nonce {})",
                fresh.nonce().unwrap_or("")
            );
            *cap = fresh;
        }
        Ok(cap.clone())
    }

    /// The cap to present now.
    pub fn cap(&self) -> Result<CapCert, CredentialsError> {
        self.cap_at((now_ms() / 1000) as i64)
    }
}

/// A random base64 request nonce (16 bytes).
pub(crate) fn request_nonce() -> Result<String, CredentialsError> {
    Ok(b64_encode(&random16()?))
}
