//! `GET /config` (the official `configEndpoint`): what a client may learn
//! about the collections. Off unless `--config-endpoint` is given (then a
//! plain 404, like an unknown path).
//!
//! Body: `{"collections":[<info>...]}`, plus `"namespaces":{"<ns>":
//! {"collections":[...]}}` whenever the config has a `namespaces` key. Each
//! `<info>` is, in this order: `name`, `maxBodyBytes` and `encryption` (when
//! present), `allowedMimeTypes`, then `pullOnly: true`, `pushOnly: true`,
//! `appendOnly` (the normalised object), `ttlMs` (as configured) and
//! `forceFullFetch: true` when they apply.
//!
//! Modes: `public` lists every collection; `role-filtered` lists those
//! whose `readRoles` or `writeRoles` share a role with the caller's roles as
//! the resolver gives them (anonymous callers have `public`; no `self`, no
//! `rootOnly` check). A caller the resolver refuses sees empty lists, never
//! an error.

use crate::config::{CollectionConfig, SyncConfig};
use crate::proto::json::{Object, Value};
use std::fmt;
use std::str::FromStr;

/// Who sees which collections.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConfigEndpoint {
    /// Every collection.
    Public,
    /// Only collections sharing a read or write role with the caller.
    RoleFiltered,
}

impl FromStr for ConfigEndpoint {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "public" => Ok(ConfigEndpoint::Public),
            "role-filtered" => Ok(ConfigEndpoint::RoleFiltered),
            other => Err(format!(
                "expected \"public\" or \"role-filtered\", got {other:?}"
            )),
        }
    }
}

impl fmt::Display for ConfigEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ConfigEndpoint::Public => "public",
            ConfigEndpoint::RoleFiltered => "role-filtered",
        })
    }
}

/// `toCollectionClientInfo`.
pub fn client_info(col: &CollectionConfig) -> Value {
    let mut o = Object::with_capacity(9);
    o.insert("name", Value::from(col.name.as_str()));
    if let Some(n) = col.max_body_bytes {
        o.insert("maxBodyBytes", Value::Number(n));
    }
    if let Some(e) = &col.encryption {
        o.insert("encryption", Value::from(e.as_str()));
    }
    o.insert(
        "allowedMimeTypes",
        Value::Array(
            col.allowed_mime_types
                .iter()
                .map(|m| Value::from(m.as_str()))
                .collect(),
        ),
    );
    if col.pull_only {
        o.insert("pullOnly", Value::Bool(true));
    }
    if col.push_only {
        o.insert("pushOnly", Value::Bool(true));
    }
    if let Some(a) = &col.extended.append_only {
        o.insert("appendOnly", a.clone());
    }
    if let Some(t) = &col.extended.ttl_ms {
        o.insert("ttlMs", t.clone());
    }
    if col.force_full_fetch {
        o.insert("forceFullFetch", Value::Bool(true));
    }
    Value::Object(o)
}

/// The answer for a caller with `roles` (ignored in [`ConfigEndpoint::Public`]).
pub fn answer(config: &SyncConfig, mode: ConfigEndpoint, roles: &[String]) -> Value {
    let visible = |c: &&CollectionConfig| match mode {
        ConfigEndpoint::Public => true,
        ConfigEndpoint::RoleFiltered => c
            .read_roles
            .iter()
            .chain(&c.write_roles)
            .any(|r| roles.contains(r)),
    };
    let list = |cols: &[CollectionConfig]| {
        Value::Array(cols.iter().filter(visible).map(client_info).collect())
    };
    let mut o = Object::with_capacity(2);
    o.insert("collections", list(&config.collections));
    if config.namespaces_declared {
        let mut ns = Object::with_capacity(config.namespaces.len());
        for (name, n) in &config.namespaces {
            let mut inner = Object::with_capacity(1);
            inner.insert("collections", list(&n.collections));
            ns.insert(name.as_str(), Value::Object(inner));
        }
        o.insert("namespaces", Value::Object(ns));
    }
    Value::Object(o)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse_config;
    use crate::proto::json::to_js_json;

    fn body(json: &str, mode: ConfigEndpoint, roles: &[&str]) -> String {
        let cfg = parse_config(json.as_bytes()).unwrap().config;
        let roles: Vec<String> = roles.iter().map(|r| r.to_string()).collect();
        String::from_utf8(to_js_json(&answer(&cfg, mode, &roles))).unwrap()
    }

    const CFG: &str = r#"{"collections":[
      {"name":"a","storagePath":"a/{id}","readRoles":["public"],"writeRoles":["admin"],
       "encryption":"none","maxBodyBytes":1e3,"pullOnly":1,"forceFullFetch":true,"ttlMs":5e2},
      {"name":"b","storagePath":"b/{id}","readRoles":["self"],"writeRoles":["self"],
       "appendOnly":{"field":"ev"},"allowedMimeTypes":["application/json"],"pushOnly":false}
    ]}"#;

    #[test]
    fn public_lists_everything_in_the_official_shape() {
        assert_eq!(
            body(CFG, ConfigEndpoint::Public, &[]),
            r#"{"collections":[{"name":"a","maxBodyBytes":1000,"encryption":"none","allowedMimeTypes":["application/json"],"pullOnly":true,"ttlMs":500,"forceFullFetch":true},{"name":"b","allowedMimeTypes":["application/json"],"appendOnly":{"field":"ev","type":"by_timestamp"}}]}"#
        );
    }

    #[test]
    fn role_filtering() {
        assert_eq!(
            body(CFG, ConfigEndpoint::RoleFiltered, &["public"]),
            r#"{"collections":[{"name":"a","maxBodyBytes":1000,"encryption":"none","allowedMimeTypes":["application/json"],"pullOnly":true,"ttlMs":500,"forceFullFetch":true}]}"#
        );
        assert_eq!(
            body(CFG, ConfigEndpoint::RoleFiltered, &[]),
            r#"{"collections":[]}"#
        );
        assert!(body(CFG, ConfigEndpoint::RoleFiltered, &["self"]).contains(r#""name":"b""#));
        assert!(body(CFG, ConfigEndpoint::RoleFiltered, &["admin"]).contains(r#""name":"a""#));
    }

    #[test]
    fn namespaces_key_follows_the_config() {
        let with = r#"{"collections":[],"namespaces":{}}"#;
        assert_eq!(
            body(with, ConfigEndpoint::Public, &[]),
            r#"{"collections":[],"namespaces":{}}"#
        );
        let ns = r#"{"collections":[],"namespaces":{"n":{"collections":[
            {"name":"x","storagePath":"x","readRoles":["r"],"writeRoles":["w"]}]}}}"#;
        assert_eq!(
            body(ns, ConfigEndpoint::RoleFiltered, &["w"]),
            r#"{"collections":[],"namespaces":{"n":{"collections":[{"name":"x","allowedMimeTypes":["application/json"]}]}}}"#
        );
        assert_eq!(
            body(ns, ConfigEndpoint::RoleFiltered, &[]),
            r#"{"collections":[],"namespaces":{"n":{"collections":[]}}}"#
        );
        assert_eq!(
            body(
                r#"{"collections":[],"namespaces":null}"#,
                ConfigEndpoint::Public,
                &[]
            ),
            r#"{"collections":[]}"#
        );
    }

    #[test]
    fn explicit_nulls() {
        // Official: "maxBodyBytes":null,"encryption":null (COMPATIBILITY.md).
        let cfg = r#"{"collections":[{"name":"n","storagePath":"n","readRoles":["r"],
            "writeRoles":["w"],"maxBodyBytes":null,"encryption":null}]}"#;
        assert_eq!(
            body(cfg, ConfigEndpoint::Public, &[]),
            r#"{"collections":[{"name":"n","maxBodyBytes":0,"allowedMimeTypes":["application/json"]}]}"#
        );
    }

    #[test]
    fn modes_parse() {
        assert_eq!("public".parse(), Ok(ConfigEndpoint::Public));
        assert_eq!("role-filtered".parse(), Ok(ConfigEndpoint::RoleFiltered));
        assert!("Public".parse::<ConfigEndpoint>().is_err());
        assert_eq!(ConfigEndpoint::RoleFiltered.to_string(), "role-filtered");
    }
}
