//! JSON → [`SyncConfig`]: the official `parseConfigJson` field copying and
//! coercions, with type errors reported instead of crashing.

use super::route::route_segments;
use super::validate::truthy;
use super::{
    CollectionConfig, ConfigError, ExtendedFields, NamespaceConfig, SyncConfig, MIME_JSON,
};
use crate::proto::json::{parse_body, Object, Value, DEFAULT_MAX_DEPTH};

/// `raw[key]` with `null` folded into "absent" (the loader's `?? undefined`).
fn present<'a>(o: &'a Object, key: &str) -> Option<&'a Value> {
    o.get(key).filter(|v| !v.is_null())
}

/// JavaScript `typeof` as used in the namespace error message.
fn type_of(v: &Value) -> &'static str {
    match v {
        Value::Null | Value::Array(_) | Value::Object(_) => "object",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
    }
}

pub(super) fn load(text: &[u8]) -> Result<SyncConfig, ConfigError> {
    let parsed =
        parse_body(text, DEFAULT_MAX_DEPTH).map_err(|e| ConfigError::Json(e.to_string()))?;
    let Value::Object(top) = parsed else {
        return Err(ConfigError::Shape(
            "Invalid sync config: the top level must be a JSON object".into(),
        ));
    };
    let mut errors = Vec::new();

    // Namespaces are read first, as in the official loader.
    let mut namespaces = Vec::new();
    let namespaces_declared = present(&top, "namespaces").is_some();
    if let Some(raw) = present(&top, "namespaces") {
        let Value::Object(map) = raw else {
            return Err(ConfigError::Shape(
                "Invalid sync config: \"namespaces\" must be an object".into(),
            ));
        };
        for (name, ns) in map.iter_js_order() {
            let name = name.to_string_lossy();
            let Value::Object(ns) = ns else {
                let got = if ns.is_null() { "null" } else { type_of(ns) };
                return Err(ConfigError::Shape(format!(
                    "Invalid sync config: namespace \"{name}\" must be an object, got {got}"
                )));
            };
            let scope = format!("Namespace \"{name}\": ");
            let collections = collections(present(ns, "collections"), &scope, &mut errors);
            let restrictions = restrictions(present(ns, "restrictions"), &scope, &mut errors);
            namespaces.push((
                name,
                NamespaceConfig {
                    collections,
                    restrictions,
                },
            ));
        }
    }

    let collections = collections(present(&top, "collections"), "", &mut errors);
    let restrictions = restrictions(present(&top, "restrictions"), "", &mut errors);
    if !errors.is_empty() {
        return Err(ConfigError::Invalid(errors));
    }
    Ok(SyncConfig {
        version: top.get("version").cloned(),
        collections,
        namespaces,
        namespaces_declared,
        rate_limit: top.get("rateLimit").filter(|v| truthy(v)).cloned(),
        restrictions,
    })
}

fn restrictions(raw: Option<&Value>, scope: &str, errors: &mut Vec<String>) -> Option<Value> {
    match raw {
        Some(Value::Array(_)) => raw.cloned(),
        Some(_) => {
            errors.push(format!("{scope}restrictions must be an array"));
            None
        }
        None => None,
    }
}

fn collections(
    raw: Option<&Value>,
    scope: &str,
    errors: &mut Vec<String>,
) -> Vec<CollectionConfig> {
    let items = match raw {
        None => return Vec::new(),
        Some(Value::Array(items)) => items,
        Some(_) => {
            errors.push(format!("{scope}collections must be an array"));
            return Vec::new();
        }
    };
    items
        .iter()
        .enumerate()
        .filter_map(|(i, raw)| collection(raw, scope, i, errors))
        .collect()
}

fn string_list(v: Option<&Value>) -> Option<Vec<String>> {
    v?.as_array()?
        .iter()
        .map(|e| e.as_js_string().map(|s| s.to_string_lossy()))
        .collect()
}

fn collection(
    raw: &Value,
    scope: &str,
    index: usize,
    errors: &mut Vec<String>,
) -> Option<CollectionConfig> {
    let Value::Object(o) = raw else {
        errors.push(format!("{scope}collections[{index}] must be an object"));
        return None;
    };
    let before = errors.len();
    let name = o
        .get("name")
        .and_then(Value::as_js_string)
        .map(|s| s.to_string_lossy());
    let who = match &name {
        Some(n) => format!("{scope}Collection \"{n}\""),
        None => {
            errors.push(format!(
                "{scope}collections[{index}]: name must be a string"
            ));
            format!("{scope}collections[{index}]")
        }
    };
    let mut err = |field: &str, what: &str| errors.push(format!("{who}: {field} must be {what}"));

    let storage_path = o
        .get("storagePath")
        .and_then(Value::as_js_string)
        .map(|s| s.to_string_lossy());
    if storage_path.is_none() {
        err("storagePath", "a string");
    }
    let read_roles = string_list(o.get("readRoles"));
    if read_roles.is_none() {
        err("readRoles", "an array of strings");
    }
    let write_roles = string_list(o.get("writeRoles"));
    if write_roles.is_none() {
        err("writeRoles", "an array of strings");
    }
    let allowed_mime_types = match present(o, "allowedMimeTypes") {
        None => Some(vec![MIME_JSON.to_owned()]),
        v => string_list(v),
    };
    if allowed_mime_types.is_none() {
        err("allowedMimeTypes", "an array of strings");
    }
    let mut opt_string = |field: &str| match present(o, field) {
        None => None,
        Some(Value::String(s)) => Some(s.to_string_lossy()),
        Some(_) => {
            err(field, "a string");
            None
        }
    };
    let encryption = opt_string("encryption");
    let bundle = opt_string("bundle").filter(|b| !b.is_empty());
    let keyring_path = opt_string("keyringPath");
    let max_body_bytes = match o.get("maxBodyBytes") {
        None => None,
        // The official loader keeps `null`, and `length > null` compares with 0.
        Some(Value::Null) => Some(0.0),
        Some(Value::Number(n)) => Some(*n),
        Some(_) => {
            err("maxBodyBytes", "a number");
            None
        }
    };
    let cache_duration_ms = match present(o, "cacheDurationMs") {
        None => None,
        Some(Value::Number(n)) => Some(*n),
        Some(_) => {
            err("cacheDurationMs", "a number");
            None
        }
    };
    let restrictions = restrictions(present(o, "restrictions"), &format!("{who}: "), errors);
    if errors.len() > before {
        return None;
    }
    let flag = |field: &str| present(o, field).is_some_and(truthy);
    let storage_path = storage_path?;
    Some(CollectionConfig {
        name: name?,
        segments: route_segments(&storage_path),
        storage_path,
        read_roles: read_roles?,
        write_roles: write_roles?,
        encryption,
        max_body_bytes,
        allowed_mime_types: allowed_mime_types?,
        pull_only: flag("pullOnly"),
        push_only: flag("pushOnly"),
        bundle,
        cache_duration_ms,
        root_only: flag("rootOnly"),
        keyring_path,
        force_full_fetch: flag("forceFullFetch"),
        extended: ExtendedFields {
            rate_limit: match o.get("rateLimit") {
                Some(Value::Bool(true)) => Some(Value::Object(Object::new())),
                Some(Value::Bool(false) | Value::Null) | None => None,
                Some(v) => Some(v.clone()),
            },
            object_schema: present(o, "objectSchema").cloned(),
            append_only: append_only(o.get("appendOnly")),
            ttl_ms: present(o, "ttlMs").cloned(),
            field_permissions: present(o, "fieldPermissions").cloned(),
            listable: present(o, "listable").cloned(),
            restrictions,
        },
    })
}

/// `coerceAppendOnly`: `true` → `{type:"by_timestamp"}`, `false`/`null` →
/// absent, otherwise the object spread with `type` defaulted (a non-object
/// spreads to nothing useful, so it becomes `{type:"by_timestamp"}` too).
fn append_only(v: Option<&Value>) -> Option<Value> {
    let mut obj = match v? {
        Value::Bool(false) | Value::Null => return None,
        Value::Object(o) => o.clone(),
        _ => Object::new(),
    };
    if obj.get("type").is_none_or(Value::is_null) {
        obj.insert("type", Value::from("by_timestamp"));
    }
    Some(Value::Object(obj))
}
