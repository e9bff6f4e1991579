//! `validateConfig` and `collectConfigWarnings`, with the official messages
//! in the official order (config.md §4, §5), EXTENDED rules included.

use super::{CollectionConfig, SyncConfig, ROLE_PUBLIC, ROLE_SELF};
use crate::proto::canonical::js_number;
use crate::proto::json::Value;

/// JavaScript truthiness.
pub(crate) fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => *n != 0.0 && !n.is_nan(),
        Value::String(s) => !s.as_bytes().is_empty(),
        Value::Array(_) | Value::Object(_) => true,
    }
}

/// `String.prototype.toLowerCase` (identical to Rust's for the comparisons
/// made here).
pub(crate) fn js_lower(s: &str) -> String {
    s.to_lowercase()
}

/// JavaScript `String(v)` for a present value.
fn js_string(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => js_number(*n),
        Value::String(s) => s.to_string_lossy(),
        Value::Array(a) => a
            .iter()
            .map(|e| {
                if e.is_null() {
                    String::new()
                } else {
                    js_string(e)
                }
            })
            .collect::<Vec<_>>()
            .join(","),
        Value::Object(_) => "[object Object]".into(),
    }
}

/// `String(obj.key)`, `"undefined"` when absent.
fn js_field_string(v: Option<&Value>) -> String {
    v.map_or_else(|| "undefined".into(), js_string)
}

/// `v[key]` when not nullish (non-objects have no fields we look at).
fn field<'a>(v: Option<&'a Value>, key: &str) -> Option<&'a Value> {
    v?.as_object()?.get(key).filter(|v| !v.is_null())
}

/// `n == null || (Number.isInteger(n) && n > 0)`.
fn pos_int_or_absent(n: Option<&Value>) -> bool {
    n.is_none_or(|n| n.is_integer() && n.as_f64().is_some_and(|x| x > 0.0))
}

pub(crate) fn non_empty_restrictions(r: Option<&Value>) -> bool {
    r.and_then(Value::as_array).is_some_and(|a| !a.is_empty())
}

fn validate_restrictions(restrictions: Option<&Value>, label: &str, errors: &mut Vec<String>) {
    let Some(list) = restrictions.and_then(Value::as_array) else {
        return;
    };
    for (i, r) in list.iter().enumerate() {
        let mode = field(Some(r), "mode");
        if !matches!(mode.and_then(Value::as_str), Some("deny" | "allow")) {
            errors.push(format!(
                "{label}restrictions[{i}]: mode must be \"deny\" or \"allow\", got \"{}\"",
                js_field_string(r.as_object().and_then(|o| o.get("mode")))
            ));
        }
        match field(Some(r), "identities").and_then(Value::as_array) {
            Some(ids) if !ids.is_empty() => {
                if !ids.iter().all(|id| matches!(id, Value::String(_))) {
                    errors.push(format!(
                        "{label}restrictions[{i}]: identities must contain only strings"
                    ));
                }
            }
            _ => errors.push(format!(
                "{label}restrictions[{i}]: identities must be a non-empty array"
            )),
        }
        match field(Some(r), "actions") {
            None => {}
            Some(Value::Array(actions)) => {
                for a in actions {
                    if !matches!(a.as_str(), Some("pull" | "push" | "list")) {
                        errors.push(format!(
                            "{label}restrictions[{i}]: unknown action \"{}\" (expected \"pull\", \"push\", or \"list\")",
                            js_string(a)
                        ));
                    }
                }
            }
            Some(_) => errors.push(format!(
                "{label}restrictions[{i}]: actions must be an array"
            )),
        }
    }
}

const BUCKETS: [&str; 3] = ["identity", "ip", "identity+ip"];

fn validate_rate_limit(
    col: &CollectionConfig,
    scope: &str,
    global: Option<&Value>,
    errors: &mut Vec<String>,
) {
    let Some(rl) = col.extended.rate_limit.as_ref() else {
        return;
    };
    let rl = Some(rl);
    let who = format!("{scope}Collection \"{}\"", col.name);
    let check_bucket = |b: Option<&Value>, at: &str, errors: &mut Vec<String>| {
        if let Some(b) = b {
            if !matches!(b.as_str(), Some(s) if BUCKETS.contains(&s)) {
                errors.push(format!(
                    "{who}: rateLimit.{at}bucket must be \"identity\", \"ip\", or \"identity+ip\", got \"{}\"",
                    js_string(b)
                ));
            }
        }
    };
    if !pos_int_or_absent(field(rl, "windowMs")) {
        errors.push(format!(
            "{who}: rateLimit.windowMs must be a positive integer"
        ));
    }
    if !pos_int_or_absent(field(rl, "maxRequests")) {
        errors.push(format!(
            "{who}: rateLimit.maxRequests must be a positive integer"
        ));
    }
    check_bucket(field(rl, "bucket"), "", errors);
    for action in ["push", "pull", "list"] {
        let Some(rule) = field(rl, action) else {
            continue;
        };
        let rule = Some(rule);
        for f in ["windowMs", "maxRequests"] {
            if !pos_int_or_absent(field(rule, f)) {
                errors.push(format!(
                    "{who}: rateLimit.{action}.{f} must be a positive integer"
                ));
            }
        }
        check_bucket(field(rule, "bucket"), &format!("{action}."), errors);
        let two = field(rule, "identity").is_some() || field(rule, "ip").is_some();
        if two && field(rule, "bucket").is_some() {
            errors.push(format!(
                "{who}: rateLimit.{action} cannot set both \"bucket\" and an \"identity\"/\"ip\" sub-limit — use one form or the other"
            ));
        }
        let resolve = |f: &str, dim: Option<&Value>| {
            field(dim, f)
                .or(field(rule, f))
                .or(field(rl, f))
                .or(field(global, f))
                .is_some()
        };
        if two {
            for dim_name in ["identity", "ip"] {
                let Some(dim) = field(rule, dim_name) else {
                    continue;
                };
                let dim = Some(dim);
                for f in ["windowMs", "maxRequests"] {
                    if !pos_int_or_absent(field(dim, f)) {
                        errors.push(format!(
                            "{who}: rateLimit.{action}.{dim_name}.{f} must be a positive integer"
                        ));
                    }
                }
                if !(resolve("windowMs", dim) && resolve("maxRequests", dim)) {
                    errors.push(format!(
                        "{who}: rateLimit.{action}.{dim_name} must resolve both windowMs and maxRequests — set them on the dimension, the rule, the collection's rateLimit, or the global rateLimit"
                    ));
                }
            }
        } else if !(resolve("windowMs", None) && resolve("maxRequests", None)) {
            errors.push(format!(
                "{who}: rateLimit.{action} must resolve both windowMs and maxRequests — set them on the rule, on the collection's rateLimit, or on the global rateLimit"
            ));
        }
    }
}

const APPEND_LIMITS: [&str; 4] = [
    "maxItems",
    "chunkSize",
    "maxPullLimit",
    "maxCheckpointAgeMs",
];

fn validate_collections(
    cols: &[CollectionConfig],
    scope: &str,
    global: Option<&Value>,
) -> Vec<String> {
    let mut errors = Vec::new();
    let mut names: Vec<&str> = Vec::new();
    for col in cols {
        let who = format!("{scope}Collection \"{}\"", col.name);
        if names.contains(&col.name.as_str()) {
            errors.push(format!(
                "{scope}Duplicate collection name: \"{}\"",
                col.name
            ));
        } else {
            names.push(&col.name);
        }
        if col.storage_path.starts_with('/') {
            errors.push(format!("{who}: storagePath must not start with /"));
        }
        if col.pull_only && col.push_only {
            errors.push(format!("{who}: cannot be both pullOnly and pushOnly"));
        }
        let append = col.extended.append_only.as_ref();
        let persist_false = matches!(field(append, "persist"), Some(Value::Bool(false)));
        if let Some(ao) = append {
            let ty = ao.as_object().and_then(|o| o.get("type"));
            if ty.and_then(Value::as_str) != Some("by_timestamp") {
                errors.push(format!(
                    "{who}: appendOnly.type \"{}\" is not supported (expected \"by_timestamp\")",
                    js_field_string(ty)
                ));
            }
            if col.is_binary() {
                errors.push(format!(
                    "{who}: appendOnly cannot be used with binary collections"
                ));
            }
            if col.pull_only {
                errors.push(format!(
                    "{who}: appendOnly cannot be used with pullOnly (push routes are disabled)"
                ));
            }
            if !persist_false && col.bundle.is_some() {
                errors.push(format!(
                    "{who}: appendOnly with persist=true cannot be used with bundle"
                ));
            }
            for f in APPEND_LIMITS {
                if !pos_int_or_absent(field(append, f)) {
                    errors.push(format!("{who}: appendOnly.{f} must be a positive integer"));
                }
            }
            if persist_false {
                for f in APPEND_LIMITS {
                    if field(append, f).is_some() {
                        errors.push(format!(
                            "{who}: appendOnly.{f} requires persist=true (nothing is stored when persist=false)"
                        ));
                    }
                }
            }
        }
        if col.extended.listable.as_ref().is_some_and(truthy) {
            if super::route::template_params(&col.storage_path).is_empty() {
                errors.push(format!(
                    "{who}: listable requires at least one path parameter in storagePath"
                ));
            } else {
                let trimmed = col.storage_path.trim_end_matches('/');
                let last = trimmed.rsplit('/').next().unwrap_or("");
                let is_param = last.len() > 2
                    && last.starts_with('{')
                    && last.ends_with('}')
                    && !last[1..last.len() - 1].contains('}');
                if !is_param {
                    errors.push(format!(
                        "{who}: listable requires the last storagePath segment to be a path parameter (e.g. {{day}}), got \"{last}\""
                    ));
                }
            }
            if append.is_some() && persist_false {
                errors.push(format!(
                    "{who}: listable cannot be used with appendOnly+persist=false (no documents are stored)"
                ));
            }
            if col.bundle.is_some() {
                errors.push(format!(
                    "{who}: listable cannot be used with bundle (bundled collections share storage paths)"
                ));
            }
        }
        if col.root_only && (col.is_public(false) || col.is_public(true)) {
            errors.push(format!(
                "{who}: rootOnly cannot be combined with the \"{ROLE_PUBLIC}\" role in readRoles/writeRoles (a root-only collection is never public)"
            ));
        }
        if !col.pull_only && col.read_roles.is_empty() {
            errors.push(format!(
                "{who}: readRoles must not be empty (use [\"{ROLE_PUBLIC}\"] for public access)"
            ));
        }
        if col.is_binary() {
            if col.extended.object_schema.is_some() {
                errors.push(format!(
                    "{who}: binary collections cannot have objectSchema"
                ));
            }
            if col.bundle.is_some() {
                errors.push(format!(
                    "{who}: binary collections cannot be part of a bundle"
                ));
            }
        }
        if col.allowed_mime_types.is_empty() {
            errors.push(format!(
                "{who}: allowedMimeTypes must contain at least one pattern"
            ));
        }
        validate_rate_limit(col, scope, global, &mut errors);
        validate_restrictions(
            col.extended.restrictions.as_ref(),
            &format!("{who}: "),
            &mut errors,
        );
    }
    let mut bundles: Vec<(&str, &str)> = Vec::new();
    for col in cols {
        let Some(b) = col.bundle.as_deref() else {
            continue;
        };
        match bundles.iter_mut().find(|(name, _)| *name == b) {
            Some(entry) => {
                if entry.1 != col.storage_path {
                    errors.push(format!(
                        "{scope}Bundle \"{b}\": all collections must share the same storagePath (found \"{}\" and \"{}\")",
                        entry.1, col.storage_path
                    ));
                }
                entry.1 = &col.storage_path;
            }
            None => bundles.push((b, &col.storage_path)),
        }
    }
    errors
}

fn is_namespace_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

const RESERVED_NAMESPACES: [&str; 5] = ["pull", "push", "list", "health", "batch"];

pub(crate) fn validate(config: &SyncConfig) -> Vec<String> {
    let global = config.rate_limit.as_ref();
    let mut errors = validate_collections(&config.collections, "", global);
    validate_restrictions(config.restrictions.as_ref(), "", &mut errors);
    for (name, ns) in &config.namespaces {
        let scope = format!("Namespace \"{name}\": ");
        validate_restrictions(ns.restrictions.as_ref(), &scope, &mut errors);
        if !is_namespace_name(name) {
            errors.push(format!(
                "{scope}name must only contain letters, digits, hyphens, and underscores"
            ));
        }
        if RESERVED_NAMESPACES.contains(&name.as_str()) {
            errors.push(format!(
                "{scope}name is reserved and cannot be used as a namespace"
            ));
        }
        if ns.collections.is_empty() {
            errors.push(format!("{scope}must contain at least one collection"));
        }
        errors.extend(validate_collections(&ns.collections, &scope, global));
    }
    errors
}

/// `^cap:(read|write|list):(.+)$`: the op and the collection part.
fn cap_role(role: &str) -> Option<(&str, &str)> {
    let rest = role.strip_prefix("cap:")?;
    let (op, target) = rest.split_once(':')?;
    let line_break = |c: char| matches!(c, '\n' | '\r' | '\u{2028}' | '\u{2029}');
    (matches!(op, "read" | "write" | "list") && !target.is_empty() && !target.contains(line_break))
        .then_some((op, target))
}

fn uses_ip(rule: Option<&Value>) -> bool {
    rule.is_some()
        && (matches!(
            field(rule, "bucket").and_then(Value::as_str),
            Some("ip" | "identity+ip")
        ) || field(rule, "ip").is_some())
}

fn collection_warnings(cols: &[CollectionConfig], scope: &str, out: &mut Vec<String>) {
    for col in cols {
        let who = format!("{scope}Collection \"{}\"", col.name);
        if col.is_public(true) {
            out.push(format!(
                "{who}: writeRoles contains \"{ROLE_PUBLIC}\" — anonymous clients can WRITE this collection. Remove it unless public writes are intended."
            ));
        }
        for (label, roles) in [
            ("readRoles", &col.read_roles),
            ("writeRoles", &col.write_roles),
        ] {
            for r in roles {
                if let Some((op, target)) = cap_role(r) {
                    if target != col.name && target != "*" {
                        out.push(format!(
                            "{who}: {label} references \"{r}\", a cap role scoped to a different collection (\"{target}\"). A cap-cert for \"{target}\" would gain access here — did you mean \"cap:{op}:{}\"?",
                            col.name
                        ));
                    }
                }
            }
        }
        let uses_self = col
            .read_roles
            .iter()
            .chain(&col.write_roles)
            .any(|r| r == ROLE_SELF);
        if uses_self && !col.storage_path.contains("{identity}") {
            out.push(format!(
                "{who}: uses the \"{ROLE_SELF}\" role but its storagePath has no \"{{identity}}\" segment. \"{ROLE_SELF}\" is granted only when the \"{{identity}}\" path param equals the caller, so it can never be granted here — did you mean to use \"{{identity}}\" instead of another param name?"
            ));
        }
        let rl = col.extended.rate_limit.as_ref();
        if rl.is_some()
            && (matches!(
                field(rl, "bucket").and_then(Value::as_str),
                Some("ip" | "identity+ip")
            ) || ["push", "pull", "list"]
                .iter()
                .any(|a| uses_ip(field(rl, a))))
        {
            // The official text says the TypeScript server has no socket IP;
            // we key on the TCP peer, so the caveat that still holds is the
            // reverse proxy's (see COMPATIBILITY.md).
            out.push(format!(
                "{who}: rateLimit uses IP-based bucketing (bucket \"ip\"/\"identity+ip\" or an \"ip\" sub-limit). starfish-rs keys the ip part on the TCP peer address — behind a reverse proxy every client shares the proxy's address unless the proxy is listed with --trusted-proxy (X-Forwarded-For is believed only from those addresses)."
            ));
        }
    }
}

fn unsupported_warnings(cols: &[CollectionConfig], scope: &str, out: &mut Vec<String>) {
    for col in cols {
        for f in col
            .extended
            .active()
            .into_iter()
            .filter(|f| !super::IMPLEMENTED_EXTENDED.contains(f))
        {
            out.push(format!(
                "{scope}Collection \"{}\": {f} is not supported by starfish-rs and is ignored",
                col.name
            ));
        }
    }
}

pub(crate) fn warnings(config: &SyncConfig) -> Vec<String> {
    let mut out = Vec::new();
    collection_warnings(&config.collections, "", &mut out);
    for (name, ns) in &config.namespaces {
        collection_warnings(
            &ns.collections,
            &format!("Namespace \"{name}\": "),
            &mut out,
        );
    }
    // starfish-rs additions, after the official list.
    unsupported_warnings(&config.collections, "", &mut out);
    for (name, ns) in &config.namespaces {
        let scope = format!("Namespace \"{name}\": ");
        unsupported_warnings(&ns.collections, &scope, &mut out);
    }
    out
}
