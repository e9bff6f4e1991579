//! Batch pull (wire.md §7): many documents of one scope in one request,
//! with per-entry errors.

use super::append_batch::{self, AppendParams, AppendParamsError, EntryBounds};
use super::fields::FieldPermissions;
use super::{doc, keys, ttl};
use crate::auth::restrictions::{Action, Restrictions, RESTRICTED_MESSAGE};
use crate::auth::{roles::Access, Auth, ROLE_SELF};
use crate::config::{CollectionConfig, PerCollection};
use crate::proto::{
    canonical::js_number,
    encoding::js_trim,
    json::{self, Object, Value},
    scope, work,
};
use crate::store::Store;
use std::sync::Arc;

/// Default cap on distinct names and on total reads.
pub const DEFAULT_MAX_COLLECTIONS_PER_BATCH: usize = 100;
/// Keys a batch never serves, even from public collections.
pub const DEFAULT_DENY_SUFFIXES: [&str; 2] = ["_keyring", "_members"];

/// A request-level refusal (400 with this message).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BatchError {
    MissingCollections,
    TooManyCollections,
    InvalidParams,
    /// EXTENDED `appendParams` checks.
    AppendParams(AppendParamsError),
}

impl BatchError {
    pub fn message(&self) -> String {
        match self {
            BatchError::MissingCollections => "Missing collections parameter".to_owned(),
            BatchError::TooManyCollections => "Too many collections".to_owned(),
            BatchError::InvalidParams => "Invalid params parameter".to_owned(),
            BatchError::AppendParams(e) => e.message(),
        }
    }
}

impl std::fmt::Display for BatchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message())
    }
}

impl std::error::Error for BatchError {}

/// A validated batch query.
#[derive(Clone, Debug)]
pub struct BatchQuery {
    /// Distinct names in request order.
    pub names: Vec<String>,
    /// For each name present in `params`: its param-sets.
    pub params: Object,
    /// EXTENDED per-entry append bounds.
    pub append: AppendParams,
}

impl BatchQuery {
    /// The last request-level check: the append element budget over the
    /// scope's collections (`max_elements`: `maxBatchAppendElements`).
    pub fn check_append_budget(
        &self,
        collections: &[CollectionConfig],
        max_elements: f64,
    ) -> Result<(), BatchError> {
        self.append
            .check_budget(collections, max_elements)
            .map_err(BatchError::AppendParams)
    }

    fn param_sets(&self, name: &str) -> Vec<Object> {
        match self.params.get(name) {
            Some(Value::Array(sets)) => {
                sets.iter().filter_map(|s| s.as_object().cloned()).collect()
            }
            _ => vec![Object::new()],
        }
    }
}

/// Request-level validation, in the official order (§7.2), except the
/// append element budget ([`BatchQuery::check_append_budget`]).
pub fn parse_query(
    collections: Option<&str>,
    params: Option<&str>,
    append_params: Option<&str>,
    max: usize,
) -> Result<BatchQuery, BatchError> {
    let raw = collections
        .filter(|c| !c.is_empty())
        .ok_or(BatchError::MissingCollections)?;
    // Distinct names in order. More than `max` distinct names is the answer
    // whatever follows, so stop there (the work stays linear).
    let mut names: Vec<String> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for n in raw.split(',').map(js_trim).filter(|n| !n.is_empty()) {
        work::add(1);
        if seen.insert(n) {
            names.push(n.to_owned());
            if names.len() > max {
                return Err(BatchError::TooManyCollections);
            }
        }
    }
    let params = match params.filter(|p| !p.is_empty()) {
        None => Object::new(),
        Some(text) => match json::parse(text.as_bytes()) {
            Ok(Value::Object(o)) => {
                let valid = o.iter().all(|(_, v)| {
                    matches!(v, Value::Array(sets) if sets.iter().all(|s| matches!(s, Value::Object(_))))
                });
                if !valid {
                    return Err(BatchError::InvalidParams);
                }
                // Only the requested names' entries are ever read: keep
                // those (at most `max`), so lookups below stay small.
                o.into_entries()
                    .into_iter()
                    .filter(|(k, _)| k.as_str().is_some_and(|k| seen.contains(k)))
                    .collect()
            }
            _ => return Err(BatchError::InvalidParams),
        },
    };
    let append = AppendParams::parse(append_params, &params).map_err(BatchError::AppendParams)?;
    let total: usize = names
        .iter()
        .map(|n| match params.get(n) {
            Some(Value::Array(a)) => a.len(),
            _ => 1,
        })
        .sum();
    if total > max {
        return Err(BatchError::TooManyCollections);
    }
    Ok(BatchQuery {
        names,
        params,
        append,
    })
}

/// Options of the per-entry resolution.
#[derive(Clone, Debug)]
pub struct BatchOptions {
    /// Keys equal to, or ending in `/` + one of these, are never served.
    pub deny_suffixes: Vec<String>,
    /// Read a bundle member's own document (`<base>/<member>`) instead of
    /// the official quirk of reading the bundle's base key.
    pub bundle_member_keys: bool,
    /// `maxBatchAppendElements`: the element budget of `appendParams`.
    pub max_append_elements: f64,
}

impl Default for BatchOptions {
    fn default() -> Self {
        BatchOptions {
            deny_suffixes: DEFAULT_DENY_SUFFIXES
                .iter()
                .map(|s| s.to_string())
                .collect(),
            bundle_member_keys: true,
            max_append_elements: append_batch::DEFAULT_MAX_ELEMENTS,
        }
    }
}

/// The EXTENDED rules a batch applies per entry.
#[derive(Clone, Debug, Default)]
pub struct BatchRules {
    /// The scope of the batch route (`None` = root).
    pub namespace: Option<String>,
    /// Identity restrictions: a restricted entry is `{"error":"identity restricted"}`.
    pub restrictions: Arc<Restrictions>,
    /// Field permissions: unreadable fields are stripped from each entry.
    pub fields: Arc<PerCollection<FieldPermissions>>,
}

fn error_entry(msg: &str) -> Value {
    let mut o = Object::with_capacity(1);
    o.insert("error", msg.into());
    Value::Object(o)
}

/// Resolve every entry (§7.4). `auth` is the resolver's result, or `None`
/// when it failed (the caller then has no identity and no roles).
pub fn run(
    store: &dyn Store,
    collections: &[CollectionConfig],
    query: &BatchQuery,
    auth: Option<&Auth>,
    options: &BatchOptions,
    rules: &BatchRules,
    now_ms: i64,
) -> Value {
    let mut out = Object::with_capacity(query.names.len());
    for name in &query.names {
        let sets = query.param_sets(name);
        let col = collections.iter().find(|c| &c.name == name);
        let entries = sets.iter().enumerate().map(|(i, p)| match col {
            None => error_entry("Collection not found"),
            Some(c) => {
                let append = query.append.entry(name, i);
                entry(store, c, p, append.as_ref(), auth, options, rules, now_ms)
            }
        });
        out.insert(name.as_str(), Value::Array(entries.collect()));
    }
    let mut body = Object::with_capacity(1);
    body.insert("collections", Value::Object(out));
    Value::Object(body)
}

#[allow(clippy::too_many_arguments)] // the per-request context, passed down once
fn entry(
    store: &dyn Store,
    col: &CollectionConfig,
    set: &Object,
    append: Option<&EntryBounds>,
    auth: Option<&Auth>,
    options: &BatchOptions,
    rules: &BatchRules,
    now_ms: i64,
) -> Value {
    let caller = auth.map(|a| a.identity.as_str()).unwrap_or("");
    let mut params: Vec<(String, String)> = Vec::new();
    for name in col.param_names() {
        let v = match set.get(name) {
            Some(Value::String(s)) => Some(s.to_string_lossy()),
            Some(Value::Number(n)) => Some(js_number(*n)),
            _ => None,
        };
        let v = match v {
            None if name == "identity" && !caller.is_empty() => Some(caller.to_owned()),
            v => v,
        };
        match v {
            Some(v) => params.push((name.to_owned(), v)),
            None => return error_entry("Missing required path parameter"),
        }
    }
    if !params.iter().all(|(_, v)| keys::is_valid_param(v)) {
        return error_entry("Invalid path parameter");
    }
    let mut roles: Vec<String> = Vec::new();
    if let Some(a) = auth {
        roles.extend(a.roles.iter().cloned());
        let id = params
            .iter()
            .find(|(n, _)| n == "identity")
            .map(|(_, v)| v.as_str());
        if col.has_identity_param() && !a.identity.is_empty() && id == Some(a.identity.as_str()) {
            roles.push(ROLE_SELF.to_owned());
        }
    }
    let access = Access {
        required: &col.read_roles,
        root_only: col.root_only,
    };
    if !access.allows(&roles) {
        return error_entry("Forbidden");
    }
    let ns = rules.namespace.as_deref();
    if rules
        .restrictions
        .check(Some(caller), Action::Pull, ns, &col.name)
        .is_err()
    {
        return error_entry(RESTRICTED_MESSAGE);
    }
    let mut key = col.resolve_key(&params);
    if keys::is_unsafe_key(&key) {
        return error_entry("Invalid path parameter");
    }
    if options.bundle_member_keys && col.bundle.is_some() {
        key = format!("{key}/{}", col.name);
    }
    if let Some(paths) = auth.and_then(|a| a.scope_paths.as_deref()) {
        if !scope::match_scope_path(&key, Some(paths)) {
            return error_entry("Forbidden");
        }
    }
    let denied = options.deny_suffixes.iter().any(|s| {
        key == *s
            || (key.len() > s.len()
                && key.ends_with(s.as_str())
                && key[..key.len() - s.len()].ends_with('/'))
    });
    if denied {
        return error_entry("Forbidden");
    }
    if keys::check_storable(&key).is_err() {
        return error_entry("Invalid path parameter");
    }
    if let Some(b) = append {
        return match append_batch::read_entry(store, col, &key, b, now_ms) {
            Ok(mut read) => {
                if read.expired(col, now_ms) {
                    read.clear_elements();
                }
                if let Some(f) = rules.fields.get(ns, &col.name) {
                    f.filter_read_object(&mut read.data, &roles, Some(&read.field));
                }
                read.answer(now_ms)
            }
            Err(e) => error_entry(e),
        };
    }
    match doc::read(store, &key) {
        Ok(doc::Read::Doc(mut d)) => {
            if ttl::doc_expired(col, &d, now_ms) {
                // As the official batch: empty data, the stored hash kept.
                d.data = Value::Object(Object::new());
            }
            if let Some(f) = rules.fields.get(ns, &col.name) {
                f.filter_read(&mut d.data, &roles, None);
            }
            doc::entry_answer(Some(&d), Some(now_ms))
        }
        Ok(_) => doc::entry_answer(None, Some(now_ms)),
        Err(e) => {
            log::error!("batch read of {key:?} failed: {e}");
            error_entry("Internal error")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_validation_order() {
        assert_eq!(
            parse_query(None, None, None, 100).unwrap_err(),
            BatchError::MissingCollections
        );
        assert_eq!(
            parse_query(Some(""), None, None, 100).unwrap_err(),
            BatchError::MissingCollections
        );
        assert!(parse_query(Some(",,"), None, None, 100)
            .unwrap()
            .names
            .is_empty());
        assert_eq!(
            parse_query(Some("a, b ,a,,c"), None, None, 100)
                .unwrap()
                .names,
            ["a", "b", "c"]
        );
        assert_eq!(
            parse_query(Some("a,b,c"), Some("nope"), None, 2).unwrap_err(),
            BatchError::TooManyCollections
        );
        assert_eq!(
            parse_query(Some("a"), Some("[]"), None, 2).unwrap_err(),
            BatchError::InvalidParams
        );
        assert_eq!(
            parse_query(Some("a"), Some(r#"{"z":{}}"#), None, 2).unwrap_err(),
            BatchError::InvalidParams
        );
        assert_eq!(
            parse_query(Some("a"), Some(r#"{"a":[null]}"#), None, 2).unwrap_err(),
            BatchError::InvalidParams
        );
        assert!(parse_query(Some("a"), Some(""), None, 2).is_ok());
        assert_eq!(
            parse_query(Some("a,b"), Some(r#"{"a":[{},{}]}"#), None, 2).unwrap_err(),
            BatchError::TooManyCollections,
            "2 reads for a, 1 for b"
        );
        assert!(parse_query(Some("a,b"), Some(r#"{"a":[]}"#), None, 2).is_ok());
        let q = parse_query(
            Some("a,b"),
            Some(r#"{"z":[],"b":[{"id":1}],"a":[]}"#),
            None,
            2,
        )
        .unwrap();
        assert_eq!(
            json::to_js_json(&Value::Object(q.params)),
            br#"{"b":[{"id":1}],"a":[]}"#,
            "entries of names not asked for are dropped"
        );
    }

    #[test]
    fn query_work_is_linear_in_the_names() {
        let work_for = |n: usize| {
            let names: Vec<String> = (0..n).map(|i| format!("c{i}")).collect();
            let q = names.join(",");
            let (r, units) = work::count(|| parse_query(Some(&q), None, None, 100));
            assert_eq!(r.unwrap_err(), BatchError::TooManyCollections);
            let repeated = vec!["c"; n].join(",");
            let (r, more) = work::count(|| parse_query(Some(&repeated), None, None, 100));
            assert!(r.is_ok());
            units + more
        };
        let (a, b) = (work_for(2000), work_for(4000));
        assert!(b <= 2 * a + 16, "{a} -> {b}");
    }
}
