//! The replica settings file (`starfish serve --replica FILE`) and its
//! validation against the sync config (replica.md §2-3).
//!
//! ```json
//! {"collections": {"news": {"url": "http://127.0.0.1:8787/v1", "pullPath": "/pull/primary/news",
//!   "intervalMs": 60000, "headers": {}, "writeMode": "pull_only", "syncTriggers": ["scheduled"]}},
//!  "auth": {"passphrase": "..."}}
//! ```
//! `auth` may instead be `{"passphraseFile": PATH}` or `{"credentialsFile": PATH}`,
//! and may add `"capTtlSec"` (lifetime of minted caps, default 30 days) and
//! `"refreshMarginSec"` (re-mint this long before expiry, default one day).
//! A top-level `"caFile": PATH` (PEM) makes `https://` primaries be verified
//! against those CA certificates instead of the bundled Mozilla roots.
//! Fields the official package requires but older docs give defaults for
//! get those defaults: `intervalMs` 60000, `headers` `{}`, `writeMode`
//! `pull_only`, `syncTriggers` `["scheduled"]`.

use crate::config::SyncConfig;
use crate::proto::json::{self, Value};
use std::fmt;
use std::path::PathBuf;

/// How local writes are handled (replica.md §5).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteMode {
    PullOnly,
    PushThrough,
    Bidirectional,
    PushOnly,
}

impl WriteMode {
    pub fn as_str(self) -> &'static str {
        match self {
            WriteMode::PullOnly => "pull_only",
            WriteMode::PushThrough => "push_through",
            WriteMode::Bidirectional => "bidirectional",
            WriteMode::PushOnly => "push_only",
        }
    }
}

/// One replicated root collection.
#[derive(Clone, Debug, PartialEq)]
pub struct RemoteConfig {
    /// The root collection name.
    pub name: String,
    /// Primary base URL, trailing `/` stripped.
    pub url: String,
    pub pull_path: String,
    pub push_path: Option<String>,
    pub interval_ms: u64,
    pub headers: Vec<(String, String)>,
    pub write_mode: WriteMode,
    pub scheduled: bool,
    pub on_pull: bool,
    pub on_pull_min_interval_ms: Option<u64>,
}

impl RemoteConfig {
    pub fn pull_url(&self) -> String {
        format!("{}{}", self.url, self.pull_path)
    }
    pub fn push_url(&self) -> Option<String> {
        self.push_path.as_ref().map(|p| format!("{}{p}", self.url))
    }
}

/// Where the replica's identity comes from.
#[derive(Clone, Debug, PartialEq)]
pub enum ReplicaAuth {
    None,
    Passphrase(String),
    PassphraseFile(PathBuf),
    CredentialsFile(PathBuf),
}

/// The parsed settings file.
#[derive(Clone, Debug, PartialEq)]
pub struct ReplicaConfig {
    pub collections: Vec<RemoteConfig>,
    pub auth: ReplicaAuth,
    /// Lifetime of caps minted from a passphrase (`auth.capTtlSec`,
    /// default 30 days).
    pub cap_ttl_sec: i64,
    /// Re-mint a self-signed cap this long before it expires
    /// (`auth.refreshMarginSec`, default one day).
    pub refresh_margin_sec: i64,
    /// `caFile`: PEM CA certificates that `https://` primaries are verified
    /// against instead of the bundled Mozilla roots.
    pub ca_file: Option<PathBuf>,
}

/// Why a settings file was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReplicaConfigError {
    /// Not JSON, or not the expected shape.
    Shape(String),
    /// The official validation errors.
    Invalid(Vec<String>),
}

impl fmt::Display for ReplicaConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReplicaConfigError::Shape(m) => {
                write!(f, "[starfish-replica] invalid configuration file: {m}")
            }
            ReplicaConfigError::Invalid(errors) => {
                write!(
                    f,
                    "[starfish-replica] invalid configuration:\n- {}",
                    errors.join("\n- ")
                )
            }
        }
    }
}

impl std::error::Error for ReplicaConfigError {}

fn shape(m: impl Into<String>) -> ReplicaConfigError {
    ReplicaConfigError::Shape(m.into())
}

fn non_negative(v: &Value, what: &str) -> Result<u64, ReplicaConfigError> {
    match v {
        Value::Number(n) if n.is_finite() && *n >= 0.0 => Ok(*n as u64),
        _ => Err(shape(format!("{what} must be a non-negative number"))),
    }
}

/// Parse the settings file (shape only; see [`validate`]).
pub fn parse(text: &[u8]) -> Result<ReplicaConfig, ReplicaConfigError> {
    let text = text.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(text);
    let root = match json::parse(text) {
        Ok(Value::Object(o)) => o,
        Ok(_) => return Err(shape("the top level must be an object")),
        Err(e) => return Err(shape(format!("not JSON: {e}"))),
    };
    let cols = match root.get("collections") {
        Some(Value::Object(o)) => o,
        _ => {
            return Err(shape(
                "\"collections\" must be an object keyed by root collection name",
            ))
        }
    };
    let mut collections = Vec::new();
    for (name, v) in cols.iter_js_order() {
        let name = name.to_string_lossy();
        let Value::Object(r) = v else {
            return Err(shape(format!("collections.{name} must be an object")));
        };
        let field = |k: &str| format!("collections.{name}.{k}");
        let string = |k: &str| -> Result<Option<String>, ReplicaConfigError> {
            match r.get(k) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.to_string_lossy())),
                Some(_) => Err(shape(format!("{} must be a string", field(k)))),
            }
        };
        let url = string("url")?.ok_or_else(|| shape(format!("{} is required", field("url"))))?;
        let pull_path = string("pullPath")?
            .ok_or_else(|| shape(format!("{} is required", field("pullPath"))))?;
        let push_path = string("pushPath")?.filter(|p| !p.is_empty());
        let interval_ms = match r.get("intervalMs") {
            None | Some(Value::Null) => 60_000,
            Some(v) => non_negative(v, &field("intervalMs"))?,
        };
        let headers = match r.get("headers") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Object(h)) => h
                .iter()
                .map(|(k, v)| match v {
                    Value::String(s) => Ok((k.to_string_lossy(), s.to_string_lossy())),
                    _ => Err(shape(format!(
                        "{} values must be strings",
                        field("headers")
                    ))),
                })
                .collect::<Result<_, _>>()?,
            Some(_) => return Err(shape(format!("{} must be an object", field("headers")))),
        };
        let write_mode = match string("writeMode")?.as_deref() {
            None | Some("pull_only") => WriteMode::PullOnly,
            Some("push_through") => WriteMode::PushThrough,
            Some("bidirectional") => WriteMode::Bidirectional,
            Some("push_only") => WriteMode::PushOnly,
            Some(other) => {
                return Err(shape(format!(
                    "{} must be one of pull_only, push_through, bidirectional, push_only (got \"{other}\")",
                    field("writeMode")
                )))
            }
        };
        let (mut scheduled, mut on_pull) = (false, false);
        match r.get("syncTriggers") {
            None | Some(Value::Null) => scheduled = true,
            Some(Value::Array(ts)) => {
                for t in ts {
                    match t.as_str() {
                        Some("scheduled") => scheduled = true,
                        Some("on_pull") => on_pull = true,
                        _ => {
                            return Err(shape(format!(
                                "{} entries must be \"scheduled\" or \"on_pull\"",
                                field("syncTriggers")
                            )))
                        }
                    }
                }
            }
            Some(_) => return Err(shape(format!("{} must be an array", field("syncTriggers")))),
        }
        let on_pull_min_interval_ms = match r.get("onPullMinIntervalMs") {
            None | Some(Value::Null) => None,
            Some(v) => Some(non_negative(v, &field("onPullMinIntervalMs"))?),
        };
        if scheduled && interval_ms == 0 {
            return Err(shape(format!(
                "{} must be positive for the scheduled trigger",
                field("intervalMs")
            )));
        }
        collections.push(RemoteConfig {
            name,
            url: url.trim_end_matches('/').to_owned(),
            pull_path,
            push_path,
            interval_ms,
            headers,
            write_mode,
            scheduled,
            on_pull,
            on_pull_min_interval_ms,
        });
    }
    let mut cap_ttl_sec = crate::proto::cap::DEFAULT_CAP_TTL_SEC;
    let mut refresh_margin_sec = 86_400;
    let auth = match root.get("auth") {
        None | Some(Value::Null) => ReplicaAuth::None,
        Some(Value::Object(a)) => {
            if let Some(v) = a.get("capTtlSec") {
                cap_ttl_sec = non_negative(v, "auth.capTtlSec")?.max(60) as i64;
            }
            if let Some(v) = a.get("refreshMarginSec") {
                refresh_margin_sec = non_negative(v, "auth.refreshMarginSec")? as i64;
            }
            let s = |k: &str| a.get(k).and_then(Value::as_str).map(str::to_owned);
            match (s("passphrase"), s("passphraseFile"), s("credentialsFile")) {
                (Some(p), None, None) => ReplicaAuth::Passphrase(p),
                (None, Some(f), None) => ReplicaAuth::PassphraseFile(f.into()),
                (None, None, Some(f)) => ReplicaAuth::CredentialsFile(f.into()),
                _ => return Err(shape(
                    "\"auth\" needs exactly one of passphrase, passphraseFile or credentialsFile",
                )),
            }
        }
        Some(_) => return Err(shape("\"auth\" must be an object")),
    };
    let ca_file = match root.get("caFile") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if !s.to_string_lossy().is_empty() => {
            Some(PathBuf::from(s.to_string_lossy()))
        }
        Some(_) => return Err(shape("\"caFile\" must be a non-empty string (a PEM file)")),
    };
    Ok(ReplicaConfig {
        collections,
        auth,
        cap_ttl_sec,
        refresh_margin_sec,
        ca_file,
    })
}

/// `validateReplicaConfig`: the official checks against the sync config's
/// root collections, in the official order, all errors collected.
pub fn validate(sync: &SyncConfig, replica: &ReplicaConfig) -> Vec<String> {
    let mut errors = Vec::new();
    for r in &replica.collections {
        let name = &r.name;
        let Some(col) = sync.collections.iter().find(|c| &c.name == name) else {
            errors.push(format!("Collection \"{name}\": remote replication configured for an unknown root collection"));
            continue;
        };
        if col.extended.append_only.is_some() {
            errors.push(format!(
                "Collection \"{name}\": appendOnly cannot be used with remote replication"
            ));
        }
        if col.is_binary() {
            errors.push(format!(
                "Collection \"{name}\": binary collections cannot have remote replication"
            ));
        }
        if has_template(&col.storage_path) {
            errors.push(format!(
                "Collection \"{name}\": remote collections must have a static storagePath with no template variables (found \"{}\")",
                col.storage_path
            ));
        }
        if col.push_only {
            errors.push(format!(
                "Collection \"{name}\": remote collections cannot be pushOnly"
            ));
        }
        if col.bundle.is_some() {
            errors.push(format!(
                "Collection \"{name}\": remote collections cannot be part of a bundle"
            ));
        }
        if col.encryption.as_deref() == Some("delegated") {
            errors.push(format!(
                "Collection \"{name}\": remote collections cannot use \"delegated\" encryption (server cannot replicate opaque client-encrypted blobs)"
            ));
        }
        if matches!(
            r.write_mode,
            WriteMode::PushThrough | WriteMode::Bidirectional
        ) && r.push_path.is_none()
        {
            errors.push(format!(
                "Collection \"{name}\": write_mode \"{}\" requires remote.pushPath to be set",
                r.write_mode.as_str()
            ));
        }
    }
    errors
}

/// `/\{[^}]+\}/`: a `{…}` with at least one character inside.
fn has_template(path: &str) -> bool {
    let mut rest = path;
    while let Some(i) = rest.find('{') {
        let after = &rest[i + 1..];
        match after.find('}') {
            Some(j) if j > 0 => return true,
            Some(_) => rest = &after[1..],
            None => return false,
        }
    }
    false
}

/// Parse and validate against the sync config.
pub fn load(text: &[u8], sync: &SyncConfig) -> Result<ReplicaConfig, ReplicaConfigError> {
    let cfg = parse(text)?;
    let errors = validate(sync, &cfg);
    if errors.is_empty() {
        Ok(cfg)
    } else {
        Err(ReplicaConfigError::Invalid(errors))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse_config;

    fn sync() -> SyncConfig {
        parse_config(
            br#"{"collections":[
            {"name":"news","storagePath":"primary/news","readRoles":["public"],"writeRoles":["public"],"encryption":"none","maxBodyBytes":65536},
            {"name":"tmpl","storagePath":"x/{id}","readRoles":["public"],"writeRoles":["public"],"encryption":"delegated"},
            {"name":"bin","storagePath":"b","readRoles":["public"],"writeRoles":["public"],"allowedMimeTypes":["image/*"],"pushOnly":true},
            {"name":"m1","storagePath":"bb","readRoles":["public"],"writeRoles":["public"],"bundle":"g"}]}"#,
        )
        .unwrap()
        .config
    }

    #[test]
    fn defaults_and_shape() {
        let c = parse(
            br#"{"collections":{"news":{"url":"http://h/v1/","pullPath":"/pull/primary/news"}}}"#,
        )
        .unwrap();
        let r = &c.collections[0];
        assert_eq!(r.url, "http://h/v1");
        assert_eq!(r.pull_url(), "http://h/v1/pull/primary/news");
        assert_eq!(
            (r.interval_ms, r.write_mode, r.scheduled, r.on_pull),
            (60_000, WriteMode::PullOnly, true, false)
        );
        assert_eq!(c.auth, ReplicaAuth::None);
        assert_eq!(c.ca_file, None);
        let c = parse(br#"{"collections":{},"caFile":"/etc/ca.pem"}"#).unwrap();
        assert_eq!(c.ca_file, Some(PathBuf::from("/etc/ca.pem")));
        assert!(matches!(
            parse(br#"{"collections":{},"caFile":1}"#),
            Err(ReplicaConfigError::Shape(_))
        ));
        assert!(matches!(parse(b"[]"), Err(ReplicaConfigError::Shape(_))));
        assert!(matches!(
            parse(br#"{"collections":{"n":{"url":"u","pullPath":"/p","writeMode":"nope"}}}"#),
            Err(ReplicaConfigError::Shape(_))
        ));
        assert!(matches!(
            parse(br#"{"collections":{},"auth":{"passphrase":"a","credentialsFile":"b"}}"#),
            Err(ReplicaConfigError::Shape(_))
        ));
    }

    #[test]
    fn official_validation_messages_in_order() {
        let cfg = parse(
            br#"{"collections":{
            "nope":{"url":"u","pullPath":"/p"},
            "tmpl":{"url":"u","pullPath":"/p","writeMode":"push_through"},
            "bin":{"url":"u","pullPath":"/p","writeMode":"bidirectional","pushPath":"/x"},
            "m1":{"url":"u","pullPath":"/p"},
            "news":{"url":"u","pullPath":"/p"}}}"#,
        )
        .unwrap();
        let e = validate(&sync(), &cfg);
        assert_eq!(
            e,
            [
                "Collection \"nope\": remote replication configured for an unknown root collection",
                "Collection \"tmpl\": remote collections must have a static storagePath with no template variables (found \"x/{id}\")",
                "Collection \"tmpl\": remote collections cannot use \"delegated\" encryption (server cannot replicate opaque client-encrypted blobs)",
                "Collection \"tmpl\": write_mode \"push_through\" requires remote.pushPath to be set",
                "Collection \"bin\": binary collections cannot have remote replication",
                "Collection \"bin\": remote collections cannot be pushOnly",
                "Collection \"m1\": remote collections cannot be part of a bundle",
            ]
        );
        let err = ReplicaConfigError::Invalid(e[..1].to_vec());
        assert_eq!(
            err.to_string(),
            "[starfish-replica] invalid configuration:\n- Collection \"nope\": remote replication configured for an unknown root collection"
        );
    }
}
