//! The sync configuration: the JSON `SyncConfig` of the official server,
//! its loader (`parseConfigJson`), validation (`validateConfig`) and
//! non-fatal warnings (`collectConfigWarnings`), per `spec/config.md`.
//!
//! ```
//! use starfish::config::parse_config;
//! let loaded = parse_config(br#"{"collections":[{"name":"s",
//!     "storagePath":"users/{identity}/s","readRoles":["self"],
//!     "writeRoles":["self"],"encryption":"none","maxBodyBytes":65536}]}"#).unwrap();
//! let col = &loaded.config.collections[0];
//! assert!(col.has_identity_param());
//! assert_eq!(col.resolve_key(&[("identity", "abc")]), "users/abc/s");
//! assert!(loaded.warnings.is_empty());
//! ```
//!
//! CORE fields are typed on [`CollectionConfig`]. EXTENDED fields
//! (`rateLimit`, `objectSchema`, `appendOnly`, `ttlMs`, `fieldPermissions`,
//! `listable`, `restrictions`, and the top-level / namespace `rateLimit` and
//! `restrictions`) are kept as raw [`Value`]s after the official coercions.
//! They are validated with the official EXTENDED rules (so exactly the
//! configs the official server accepts are accepted) and interpreted by the
//! module that implements the feature (`rateLimit`: `sync::rate_limit`,
//! `listable`: `sync::list`, `ttlMs`: `sync::ttl`, `appendOnly`:
//! `sync::append`, `objectSchema`: `sync::schema`, `fieldPermissions`:
//! `sync::fields`, `restrictions`: `auth::restrictions`). Each one that is
//! set and not implemented yet (not in [`IMPLEMENTED_EXTENDED`]) adds a warning
//! `<scope>Collection "<n>": <field> is not supported by starfish-rs and is ignored`.
//!
//! Where the official loader crashes with a JavaScript `TypeError` (a
//! missing `readRoles`, a non-string `name`, a collection that is not an
//! object, ...) this loader reports a validation error naming the
//! collection and field instead. It is also stricter in a few places the
//! official server would silently misbehave on (see [`parse_config`]).

mod loader;
mod route;
mod validate;

use std::fmt;

use crate::proto::json::Value;

pub use route::{resolve_document_key, route_segments, Segment};

/// The role that grants anyone access.
pub const ROLE_PUBLIC: &str = "public";
/// The role granted when the `{identity}` path param equals the caller.
pub const ROLE_SELF: &str = "self";
/// The MIME type whose presence in `allowedMimeTypes` makes a collection JSON.
pub const MIME_JSON: &str = "application/json";
/// The object-store key the official `loadConfig` reads the config from.
pub const DEFAULT_CONFIG_KEY: &str = "__sync__/config.json";

/// The configuration used when the server is started without one: a
/// public notes collection, a per-user settings document, a per-user
/// bundle and a `demo` namespace. Validates cleanly; the two public-write
/// collections produce the expected `writeRoles contains "public"` warnings.
///
/// Those public collections let any client write, so on a small device run
/// it with storage quotas (off by default; README, "Storage quotas"):
/// `starfish serve --max-store-bytes 268435456 --max-documents 100000
/// --min-free-bytes 67108864` (256 MiB of documents, at most 100 000 of
/// them, 64 MiB of the disk kept free); a push past them is answered
/// `507 {"error":"Insufficient storage"}` and changes nothing.
pub const DEFAULT_CONFIG_JSON: &str = include_str!("default_config.json");

/// A whole sync configuration.
#[derive(Clone, Debug, PartialEq)]
pub struct SyncConfig {
    /// `version`, carried through as given (never validated).
    pub version: Option<Value>,
    /// Root collections.
    pub collections: Vec<CollectionConfig>,
    /// Namespaces in JavaScript object order (array-index names first).
    /// An absent `namespaces` and `{}` both give an empty list.
    pub namespaces: Vec<(String, NamespaceConfig)>,
    /// Whether the file has a non-null `namespaces` key (even `{}`): the
    /// official `GET /config` answer then has a `namespaces` member.
    pub namespaces_declared: bool,
    /// EXTENDED global rate limit (absent when falsy): defaults for the
    /// collections' rate limits (see `sync::rate_limit`).
    pub rate_limit: Option<Value>,
    /// EXTENDED global restrictions (enforced by `auth::restrictions`).
    pub restrictions: Option<Value>,
}

/// A namespace: collections mounted under `/<name>`.
#[derive(Clone, Debug, PartialEq)]
pub struct NamespaceConfig {
    pub collections: Vec<CollectionConfig>,
    /// EXTENDED namespace restrictions (enforced by `auth::restrictions`).
    pub restrictions: Option<Value>,
}

/// One collection (config.md §2).
#[derive(Clone, Debug, PartialEq)]
pub struct CollectionConfig {
    /// Unique within its scope.
    pub name: String,
    /// Document key template with `{param}` segments.
    pub storage_path: String,
    pub read_roles: Vec<String>,
    pub write_roles: Vec<String>,
    /// `"none"` / `"delegated"`, not validated nor interpreted (`None` when
    /// absent or `null`).
    pub encryption: Option<String>,
    /// Max push `Content-Length`; `None` = no limit. An explicit `null`
    /// becomes `Some(0.0)`: the official `length > null` compares with 0.
    pub max_body_bytes: Option<f64>,
    /// Defaults to `["application/json"]`.
    pub allowed_mime_types: Vec<String>,
    /// JavaScript truthiness of `pullOnly`.
    pub pull_only: bool,
    /// JavaScript truthiness of `pushOnly`.
    pub push_only: bool,
    /// Bundle group (`""` counts as no bundle, as in the official server).
    pub bundle: Option<String>,
    pub cache_duration_ms: Option<f64>,
    /// JavaScript truthiness of `rootOnly`.
    pub root_only: bool,
    /// Kept but unused (the keyring sibling is always `<key>/_keyring`).
    pub keyring_path: Option<String>,
    /// JavaScript truthiness of `forceFullFetch`.
    pub force_full_fetch: bool,
    /// EXTENDED fields, raw after the loader coercions.
    pub extended: ExtendedFields,
    segments: Vec<Segment>,
}

/// EXTENDED collection fields after the official coercions (`null` →
/// absent; `rateLimit: true` → `{}`, `false` → absent; `appendOnly: true` →
/// `{"type":"by_timestamp"}` and a missing `type` defaulted).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ExtendedFields {
    pub rate_limit: Option<Value>,
    pub object_schema: Option<Value>,
    pub append_only: Option<Value>,
    pub ttl_ms: Option<Value>,
    pub field_permissions: Option<Value>,
    pub listable: Option<Value>,
    pub restrictions: Option<Value>,
}

/// The EXTENDED collection fields starfish-rs implements (no "not
/// supported" warning): `rateLimit` (`sync::rate_limit`), `listable`
/// (`sync::list`), `ttlMs` (`sync::ttl`), `appendOnly` (`sync::append`),
/// `objectSchema` (`sync::schema`), `fieldPermissions` (`sync::fields`),
/// `restrictions` at every level (`auth::restrictions`).
pub const IMPLEMENTED_EXTENDED: &[&str] = &[
    "rateLimit",
    "listable",
    "ttlMs",
    "appendOnly",
    "objectSchema",
    "fieldPermissions",
    "restrictions",
];

impl ExtendedFields {
    /// The JSON names of the fields that are set and would have an effect
    /// on the official server (falsy `listable` and empty `restrictions`
    /// are inert there and are not listed).
    pub fn active(&self) -> Vec<&'static str> {
        let mut out = Vec::new();
        if self.rate_limit.is_some() {
            out.push("rateLimit");
        }
        if self.object_schema.is_some() {
            out.push("objectSchema");
        }
        if self.append_only.is_some() {
            out.push("appendOnly");
        }
        if self.ttl_ms.is_some() {
            out.push("ttlMs");
        }
        if self.field_permissions.is_some() {
            out.push("fieldPermissions");
        }
        if self.listable.as_ref().is_some_and(validate::truthy) {
            out.push("listable");
        }
        if validate::non_empty_restrictions(self.restrictions.as_ref()) {
            out.push("restrictions");
        }
        out
    }
}

impl CollectionConfig {
    /// A collection with the required fields and every optional one at its
    /// loader default.
    pub fn new(
        name: impl Into<String>,
        storage_path: impl Into<String>,
        read_roles: Vec<String>,
        write_roles: Vec<String>,
    ) -> Self {
        let storage_path = storage_path.into();
        CollectionConfig {
            name: name.into(),
            segments: route_segments(&storage_path),
            storage_path,
            read_roles,
            write_roles,
            encryption: None,
            max_body_bytes: None,
            allowed_mime_types: vec![MIME_JSON.to_owned()],
            pull_only: false,
            push_only: false,
            bundle: None,
            cache_duration_ms: None,
            root_only: false,
            keyring_path: None,
            force_full_fetch: false,
            extended: ExtendedFields::default(),
        }
    }

    /// Binary iff no `allowedMimeTypes` entry equals `application/json`
    /// (ASCII case-insensitively, like `toLowerCase()` on these strings).
    pub fn is_binary(&self) -> bool {
        !self
            .allowed_mime_types
            .iter()
            .any(|m| validate::js_lower(m) == MIME_JSON)
    }

    /// The route segments of `storage_path` (see [`Segment`]).
    pub fn route_segments(&self) -> &[Segment] {
        &self.segments
    }

    /// The whole-segment `{name}` parameters, in order, without duplicates.
    pub fn param_names(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        for seg in &self.segments {
            if let Segment::Param(p) = seg {
                if !out.contains(&p.as_str()) {
                    out.push(p);
                }
            }
        }
        out
    }

    /// Whether `{identity}` is a whole-segment parameter, i.e. whether the
    /// `self` role can ever be granted on this collection.
    pub fn has_identity_param(&self) -> bool {
        self.segments
            .iter()
            .any(|s| matches!(s, Segment::Param(p) if p == "identity"))
    }

    /// The document key for bound params (see [`resolve_document_key`]).
    pub fn resolve_key<N: AsRef<str>, V: AsRef<str>>(&self, params: &[(N, V)]) -> String {
        resolve_document_key(&self.storage_path, params)
    }

    /// Match raw request path segments (already split on `/`, relative to
    /// `/pull/` or `/push/`) against this collection's route; on success
    /// the `{param}` bindings in route order, values still percent-encoded.
    pub fn match_route<'a>(&self, raw: &[&'a str]) -> Option<Vec<(&str, &'a str)>> {
        if raw.len() != self.segments.len() {
            return None;
        }
        let mut out = Vec::new();
        for (seg, r) in self.segments.iter().zip(raw) {
            if !seg.matches(r) {
                return None;
            }
            if let Segment::Param(name) = seg {
                out.push((name.as_str(), *r));
            }
        }
        Some(out)
    }

    /// Whether `roles` (the read or write list) contains `public`.
    pub fn is_public(&self, write: bool) -> bool {
        let roles = if write {
            &self.write_roles
        } else {
            &self.read_roles
        };
        roles.iter().any(|r| r == ROLE_PUBLIC)
    }
}

impl SyncConfig {
    /// Every collection with its namespace (`None` for root), root first,
    /// then namespaces in order.
    pub fn all_collections(&self) -> impl Iterator<Item = (Option<&str>, &CollectionConfig)> {
        self.collections.iter().map(|c| (None, c)).chain(
            self.namespaces
                .iter()
                .flat_map(|(n, ns)| ns.collections.iter().map(move |c| (Some(n.as_str()), c))),
        )
    }

    /// The collections of one scope (`None` = root).
    pub fn scope(&self, namespace: Option<&str>) -> Option<&[CollectionConfig]> {
        match namespace {
            None => Some(&self.collections),
            Some(n) => self
                .namespaces
                .iter()
                .find(|(name, _)| name == n)
                .map(|(_, ns)| ns.collections.as_slice()),
        }
    }
}

/// The bundles of one scope in registration order (order of each bundle's
/// first member), each with its members in config order.
pub fn bundle_groups(collections: &[CollectionConfig]) -> Vec<(&str, Vec<&CollectionConfig>)> {
    let mut out: Vec<(&str, Vec<&CollectionConfig>)> = Vec::new();
    for col in collections {
        if let Some(b) = col.bundle.as_deref() {
            match out.iter_mut().find(|(name, _)| *name == b) {
                Some((_, members)) => members.push(col),
                None => out.push((b, vec![col])),
            }
        }
    }
    out
}

/// Values compiled per collection (field permissions, schemas, ...), looked
/// up by scope (`None` = root) and collection name. Built once from a
/// config; an empty map costs one branch per lookup. A plain list: configs
/// have few collections, and it keeps the binary small.
#[derive(Clone, Debug)]
pub struct PerCollection<T> {
    entries: Vec<(Option<String>, String, T)>,
}

impl<T> Default for PerCollection<T> {
    fn default() -> Self {
        PerCollection {
            entries: Vec::new(),
        }
    }
}

impl<T> PerCollection<T> {
    /// Keep `f(namespace, collection)` for every collection where it is `Some`.
    pub fn build(
        config: &SyncConfig,
        mut f: impl FnMut(Option<&str>, &CollectionConfig) -> Option<T>,
    ) -> Self {
        let entries = config
            .all_collections()
            .filter_map(|(ns, col)| {
                f(ns, col).map(|v| (ns.map(str::to_owned), col.name.clone(), v))
            })
            .collect();
        PerCollection { entries }
    }

    pub fn get(&self, namespace: Option<&str>, name: &str) -> Option<&T> {
        self.entries
            .iter()
            .find(|(ns, n, _)| n == name && ns.as_deref() == namespace)
            .map(|(_, _, v)| v)
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Every value with its scope and collection name.
    pub fn iter(&self) -> impl Iterator<Item = (Option<&str>, &str, &T)> {
        self.entries
            .iter()
            .map(|(ns, n, v)| (ns.as_deref(), n.as_str(), v))
    }
}

/// A parsed, validated configuration and its non-fatal warnings (to be
/// logged as `[Starfish] config warning: <w>`).
#[derive(Clone, Debug, PartialEq)]
pub struct LoadedConfig {
    pub config: SyncConfig,
    pub warnings: Vec<String>,
}

/// Why a configuration was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConfigError {
    /// Not JSON; the parser's message.
    Json(String),
    /// A loader shape error, the whole message (e.g.
    /// `Invalid sync config: "namespaces" must be an object`).
    Shape(String),
    /// Validation errors, in the official order.
    Invalid(Vec<String>),
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::Json(m) => write!(f, "Failed to parse sync config as JSON: {m}"),
            ConfigError::Shape(m) => f.write_str(m),
            ConfigError::Invalid(errors) => {
                write!(f, "Invalid sync config:\n{}", errors.join("\n"))
            }
        }
    }
}

impl std::error::Error for ConfigError {}

/// Parse, validate and lint a JSON config (`parseConfigJson`).
///
/// Loader behaviour (config.md §6): a leading UTF-8 BOM is skipped; invalid
/// JSON gives [`ConfigError::Json`]; a non-object `namespaces` or namespace
/// gives [`ConfigError::Shape`] with the official message; then the field
/// coercions, then validation, then warnings.
///
/// Stricter than the official loader (which crashes or misbehaves): the top
/// level must be an object; `collections` must be an array of objects;
/// `name`, `storagePath` must be strings; `readRoles`, `writeRoles` and
/// `allowedMimeTypes` arrays of strings; `maxBodyBytes`,
/// `cacheDurationMs` numbers; `encryption`, `bundle`, `keyringPath`
/// strings; `restrictions` arrays. These report
/// `<scope>Collection "<name>": <field> must be ...` (or
/// `<scope>collections[<i>]: ...` when the name is unusable) as
/// [`ConfigError::Invalid`], before any other validation.
pub fn parse_config(text: &[u8]) -> Result<LoadedConfig, ConfigError> {
    let config = loader::load(text)?;
    let errors = validate::validate(&config);
    if !errors.is_empty() {
        return Err(ConfigError::Invalid(errors));
    }
    let errors = build_refusals(&config);
    if !errors.is_empty() {
        return Err(ConfigError::Invalid(errors));
    }
    let warnings = validate::warnings(&config);
    Ok(LoadedConfig { config, warnings })
}

/// Security keys this build cannot enforce: a config using them is refused
/// (never served with the key ignored). Only `objectSchema` without the
/// `object-schema` cargo feature.
#[cfg(feature = "object-schema")]
fn build_refusals(_config: &SyncConfig) -> Vec<String> {
    Vec::new()
}
#[cfg(not(feature = "object-schema"))]
fn build_refusals(config: &SyncConfig) -> Vec<String> {
    config
        .all_collections()
        .filter(|(_, col)| col.extended.object_schema.is_some())
        .map(|(ns, col)| {
            format!(
                "{}Collection \"{}\": objectSchema needs the `object-schema` cargo feature, which this build of starfish-rs does not have (it would accept unvalidated data); use a default build",
                ns.map(|n| format!("Namespace \"{n}\": ")).unwrap_or_default(),
                col.name
            )
        })
        .collect()
}

/// Validate an already-built config (`validateConfig`): the errors in the
/// official order, empty when valid.
pub fn validate_config(config: &SyncConfig) -> Vec<String> {
    validate::validate(config)
}

/// The non-fatal warnings for a config (`collectConfigWarnings`, then the
/// starfish-rs "not supported" warnings).
pub fn config_warnings(config: &SyncConfig) -> Vec<String> {
    validate::warnings(config)
}

/// The built-in default configuration ([`DEFAULT_CONFIG_JSON`]).
pub fn default_config() -> LoadedConfig {
    parse_config(DEFAULT_CONFIG_JSON.as_bytes()).expect("the embedded default config is valid")
}
