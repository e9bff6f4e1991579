//! `listable` (EXTENDED): `GET /list/<storagePath without its last segment>`
//! answers the keys of the documents stored under that prefix, as the
//! official route does.
//!
//! * The route is the storage path with its last `/`-segment (the
//!   enumerated parameter) dropped: `days/{user}/{day}` lists at
//!   `/list/days/<user>`; a one-segment path lists at `/list/`.
//! * The prefix is that shorter template with its parameters substituted,
//!   plus `/` (or `""` when the template is empty).
//! * `limit`: default 100; must be the canonical decimal form of a positive
//!   integer (`parseInt(v, 10)` printed back must equal `v`), else
//!   `400 {"error":"Invalid limit parameter"}`; clamped to 1000.
//! * `after`: a cursor, the last item of the previous page; keys strictly
//!   greater than `prefix + after` are listed (not validated).
//! * Answer `{"items":[...],"hasMore":bool}`: the keys in ascending byte
//!   order with the prefix removed. Keys below the prefix at any depth are
//!   listed (`x/_keyring` too), as the official stores list them.
//!
//! Role checks are the collection's read check (`cap:list:` roles are
//! whatever the collection's `readRoles` name) and the `list` rate limit;
//! both are the caller's job (the service).

use super::SyncError;
use crate::config::{resolve_document_key, CollectionConfig};
use crate::proto::{
    canonical::js_number,
    json::{Object, Value},
};
use crate::store::{Store, StoreError};

/// Items per page when `limit` is absent.
pub const DEFAULT_LIMIT: usize = 100;
/// The largest page.
pub const MAX_LIMIT: usize = 1000;

/// Whether the collection has a list route (`listable` truthy; bundled
/// collections never do, the validator refuses that combination).
pub fn is_listable(col: &CollectionConfig) -> bool {
    let truthy = match &col.extended.listable {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(Value::Number(n)) => *n != 0.0 && !n.is_nan(),
        Some(Value::String(s)) => !s.as_bytes().is_empty(),
        Some(Value::Array(_) | Value::Object(_)) => true,
    };
    truthy && col.bundle.is_none()
}

/// The storage path without its last `/`-segment (`""` for one segment).
pub fn prefix_template(storage_path: &str) -> &str {
    match storage_path.rfind('/') {
        Some(i) => &storage_path[..i],
        None => "",
    }
}

/// The number of route segments of the list route (the storage path's
/// segments but the last).
pub fn route_len(col: &CollectionConfig) -> usize {
    col.route_segments().len().saturating_sub(1)
}

/// The store prefix for bound prefix parameters (`toListPrefix`).
pub fn list_prefix<N: AsRef<str>, V: AsRef<str>>(
    col: &CollectionConfig,
    params: &[(N, V)],
) -> String {
    let resolved = resolve_document_key(prefix_template(&col.storage_path), params);
    if resolved.is_empty() {
        resolved
    } else {
        resolved + "/"
    }
}

/// The `limit` query parameter (`None`: absent).
pub fn parse_limit(raw: Option<&str>) -> Result<usize, SyncError> {
    let Some(v) = raw else {
        return Ok(DEFAULT_LIMIT);
    };
    let canonical = !v.is_empty()
        && v.bytes().all(|b| b.is_ascii_digit())
        && !v.starts_with('0')
        && v.parse::<f64>().is_ok_and(|n| js_number(n) == v);
    if !canonical {
        return Err(SyncError::InvalidListLimit);
    }
    let n: f64 = v.parse().unwrap_or(f64::MAX);
    Ok(if n > MAX_LIMIT as f64 {
        MAX_LIMIT
    } else {
        n as usize
    })
}

/// One page of a list: `{"items","hasMore"}`.
pub fn run(
    store: &dyn Store,
    prefix: &str,
    after: Option<&str>,
    limit: usize,
) -> Result<Value, StoreError> {
    if prefix.is_empty() {
        // A one-segment storage path would list every key of the store
        // (other collections' included). The official filesystem store
        // refuses the empty prefix (a plain 500); so do we.
        return Err(StoreError::InvalidKey(String::new()));
    }
    let start_after = after.map(|a| format!("{prefix}{a}"));
    let mut keys = store.list_keys(prefix, start_after.as_deref(), limit + 1)?;
    let has_more = keys.len() > limit;
    keys.truncate(limit);
    let items = keys
        .into_iter()
        .map(|k| Value::from(k.get(prefix.len()..).unwrap_or_default()))
        .collect();
    let mut o = Object::with_capacity(2);
    o.insert("items", Value::Array(items));
    o.insert("hasMore", Value::Bool(has_more));
    Ok(Value::Object(o))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::json::to_js_json;
    use crate::store::MemoryStore;

    #[test]
    fn limits_are_parsed_like_the_official_route() {
        assert_eq!(parse_limit(None).unwrap(), 100);
        assert_eq!(parse_limit(Some("1")).unwrap(), 1);
        assert_eq!(parse_limit(Some("1000")).unwrap(), 1000);
        assert_eq!(parse_limit(Some("5000")).unwrap(), 1000);
        assert_eq!(parse_limit(Some("9007199254740991")).unwrap(), 1000);
        for bad in [
            "",
            "0",
            "-1",
            "010",
            "+5",
            " 5",
            "5 ",
            "5abc",
            "1e3",
            "1.0",
            "abc",
            "12345678901234567890",
            "9007199254740993",
        ] {
            assert!(
                matches!(parse_limit(Some(bad)), Err(SyncError::InvalidListLimit)),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn prefixes() {
        let col = |p: &str| CollectionConfig::new("c", p, vec![], vec![]);
        assert_eq!(prefix_template("days/{user}/{day}"), "days/{user}");
        assert_eq!(prefix_template("{day}"), "");
        assert_eq!(
            list_prefix(&col("days/{user}/{day}"), &[("user", "u1")]),
            "days/u1/"
        );
        assert_eq!(list_prefix::<&str, &str>(&col("{day}"), &[]), "");
        assert_eq!(route_len(&col("days/{user}/{day}")), 2);
        assert_eq!(route_len(&col("{day}")), 0);
    }

    #[test]
    fn pages() {
        let store = MemoryStore::new();
        for k in [
            "d/u/b",
            "d/u/a",
            "d/u/c",
            "d/u/c/_keyring",
            "d/v/z",
            "d/u2/x",
        ] {
            store.put(k, b"{}").unwrap();
        }
        let page = |after: Option<&str>, limit| {
            String::from_utf8(to_js_json(&run(&store, "d/u/", after, limit).unwrap())).unwrap()
        };
        assert_eq!(
            page(None, 100),
            r#"{"items":["a","b","c","c/_keyring"],"hasMore":false}"#
        );
        assert_eq!(page(None, 2), r#"{"items":["a","b"],"hasMore":true}"#);
        assert_eq!(
            page(Some("b"), 2),
            r#"{"items":["c","c/_keyring"],"hasMore":false}"#
        );
        assert_eq!(
            page(Some("c/_keyring"), 2),
            r#"{"items":[],"hasMore":false}"#
        );
        assert_eq!(page(Some("0"), 1), r#"{"items":["a"],"hasMore":true}"#);
        assert!(matches!(
            run(&store, "", None, 10),
            Err(StoreError::InvalidKey(_))
        ));
    }
}
