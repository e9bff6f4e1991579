//! Batch pull `appendParams` (EXTENDED): bounded reads of append-only logs
//! inside `/batch/pull`, as the official `createBatchPullHandler` runs them.
//!
//! `appendParams` is URL-encoded JSON `{"<collection>":[{since?,last?,limit?}
//! | null, ...]}`, aligned index for index with `params[<collection>]`. The
//! request-level checks (all `400`): `Invalid appendParams parameter`,
//! `appendParams["<col>"]: full is not allowed in batch pull`, `appendParams
//! length mismatch: ...`, and the element budget (`Batch append element
//! budget exceeded`, default 5000: each entry counts `min(last ?? limit ??
//! M, M)`, `M` the collection's `maxPullLimit` or 1000). Per entry, `since`
//! is the checkpoint; the bounds are then checked like a standalone pull
//! (without `full`), and a failure is the entry's `{"error": ...}`.

use super::append::{self, AppendSettings, LogRead, PullParams};
use super::js_to_number;
use crate::config::CollectionConfig;
use crate::proto::canonical::js_number;
use crate::proto::json::{self, Object, Value};
use crate::store::Store;
use std::fmt;

/// Default `maxBatchAppendElements`.
pub const DEFAULT_MAX_ELEMENTS: f64 = 5000.0;
/// The per-entry ceiling of the budget for collections without `maxPullLimit`.
const FALLBACK_PULL_LIMIT: f64 = 1000.0;

/// One entry's bounds, as `Number(v)` gave them.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct EntryBounds {
    pub since: Option<f64>,
    pub last: Option<f64>,
    pub limit: Option<f64>,
}

/// A parsed `appendParams`: per collection, one optional entry per param-set.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AppendParams {
    by_collection: Vec<(String, Vec<Option<EntryBounds>>)>,
}

/// A request-level refusal (400 with [`AppendParamsError::message`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AppendParamsError {
    Invalid,
    /// `full` in an entry of this collection.
    Full(String),
    LengthMismatch,
    BudgetExceeded,
}

impl AppendParamsError {
    pub fn message(&self) -> String {
        match self {
            AppendParamsError::Invalid => "Invalid appendParams parameter".to_owned(),
            AppendParamsError::Full(col) => {
                format!("appendParams[\"{col}\"]: full is not allowed in batch pull")
            }
            AppendParamsError::LengthMismatch => {
                "appendParams length mismatch: must equal params length for each collection"
                    .to_owned()
            }
            AppendParamsError::BudgetExceeded => "Batch append element budget exceeded".to_owned(),
        }
    }
}

impl fmt::Display for AppendParamsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message())
    }
}

impl std::error::Error for AppendParamsError {}

/// `Number(v)` as a non-negative integer bound: absent for `null`,
/// `Err` when not one.
fn int_bound(v: Option<&Value>) -> Result<Option<f64>, AppendParamsError> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(v) => {
            let n = js_to_number(v);
            if n.is_finite() && n.trunc() == n && n >= 0.0 {
                Ok(Some(n))
            } else {
                Err(AppendParamsError::Invalid)
            }
        }
    }
}

fn is_full(v: Option<&Value>) -> bool {
    match v {
        Some(Value::Bool(true)) => true,
        Some(Value::Number(n)) => *n == 1.0,
        Some(Value::String(s)) => matches!(s.as_str(), Some("true" | "1")),
        _ => false,
    }
}

impl AppendParams {
    /// Parse the query value (absent or empty: none) and check it against
    /// the parsed `params`, in the official order.
    pub fn parse(text: Option<&str>, params: &Object) -> Result<AppendParams, AppendParamsError> {
        let Some(text) = text.filter(|t| !t.is_empty()) else {
            return Ok(AppendParams::default());
        };
        let Ok(Value::Object(parsed)) = json::parse(text.as_bytes()) else {
            return Err(AppendParamsError::Invalid);
        };
        let mut by_collection = Vec::new();
        for (col, v) in parsed.iter_js_order() {
            let Value::Array(entries) = v else {
                return Err(AppendParamsError::Invalid);
            };
            let col = col.to_string_lossy();
            let mut out = Vec::with_capacity(entries.len());
            for e in entries {
                let e = match e {
                    Value::Null => {
                        out.push(None);
                        continue;
                    }
                    Value::Object(o) => o,
                    _ => return Err(AppendParamsError::Invalid),
                };
                if is_full(e.get("full")) {
                    return Err(AppendParamsError::Full(col));
                }
                out.push(Some(EntryBounds {
                    since: int_bound(e.get("since"))?,
                    last: int_bound(e.get("last"))?,
                    limit: int_bound(e.get("limit"))?,
                }));
            }
            by_collection.push((col, out));
        }
        for (col, entries) in &by_collection {
            if let Some(Value::Array(sets)) = params.get(col) {
                if sets.len() != entries.len() {
                    return Err(AppendParamsError::LengthMismatch);
                }
            }
        }
        Ok(AppendParams { by_collection })
    }

    pub fn is_empty(&self) -> bool {
        self.by_collection.is_empty()
    }

    /// The element budget: `Σ min(last ?? limit ?? M, M)` over every
    /// non-null entry of every listed collection (requested or not), `M` the
    /// scope collection's `maxPullLimit` or 1000.
    pub fn check_budget(
        &self,
        collections: &[CollectionConfig],
        max_total: f64,
    ) -> Result<(), AppendParamsError> {
        if self.by_collection.is_empty() {
            return Ok(());
        }
        let mut total = 0.0;
        for (col, entries) in &self.by_collection {
            let col_max = collections
                .iter()
                .find(|c| &c.name == col)
                .and_then(AppendSettings::of)
                .and_then(|s| s.limits.max_pull_limit)
                .unwrap_or(FALLBACK_PULL_LIMIT);
            for b in entries.iter().flatten() {
                total += b.last.or(b.limit).unwrap_or(col_max).min(col_max);
            }
        }
        if total > max_total {
            return Err(AppendParamsError::BudgetExceeded);
        }
        Ok(())
    }

    /// The bounds of entry `i` of `collection` (`None`: a regular read).
    pub fn entry(&self, collection: &str, i: usize) -> Option<EntryBounds> {
        self.by_collection
            .iter()
            .find(|(c, _)| c == collection)
            .and_then(|(_, entries)| entries.get(i).copied().flatten())
    }
}

/// Read one batch entry with append bounds. `Err` is the entry's error
/// string: `append_params_not_supported` for a collection that stores no
/// log, a bound error, or `Internal error`. The caller has done the access,
/// key and scope checks, and builds the entry with [`LogRead::answer`]
/// (field read permissions and TTL apply to the read in between).
pub fn read_entry(
    store: &dyn Store,
    col: &CollectionConfig,
    key: &str,
    b: &EntryBounds,
    now_ms: i64,
) -> Result<LogRead, &'static str> {
    let Some(settings) = AppendSettings::of(col).filter(|s| s.persist) else {
        return Err("append_params_not_supported");
    };
    // The handler passes `String(n)` on, where it is parsed again.
    let since = b.since.map(js_number);
    let last = b.last.map(js_number);
    let limit = b.limit.map(js_number);
    let params = PullParams {
        checkpoint: since.as_deref(),
        limit: limit.as_deref(),
        last: last.as_deref(),
        full: None,
    };
    let bounds = append::parse_bounds(&params, &settings.limits, now_ms)
        .map_err(|e| e.message().unwrap_or("Internal error"))?;
    append::read(store, key, &settings.field, &bounds).map_err(|e| {
        log::error!("batch append read of {key:?} failed: {e}");
        "Internal error"
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(t: &str) -> Object {
        match json::parse(t.as_bytes()).unwrap() {
            Value::Object(o) => o,
            _ => panic!(),
        }
    }

    #[test]
    fn parse_rules_in_order() {
        let none = Object::new();
        let p = |t: &str| AppendParams::parse(Some(t), &none);
        assert!(AppendParams::parse(None, &none).unwrap().is_empty());
        assert!(AppendParams::parse(Some(""), &none).unwrap().is_empty());
        for bad in [
            "x",
            "[]",
            "null",
            r#"{"a":{}}"#,
            r#"{"a":[1]}"#,
            r#"{"a":[[]]}"#,
            r#"{"a":[{"since":-1}]}"#,
            r#"{"a":[{"last":1.5}]}"#,
            r#"{"a":[{"limit":"x"}]}"#,
            r#"{"a":[{"since":{}}]}"#,
        ] {
            assert_eq!(p(bad), Err(AppendParamsError::Invalid), "{bad}");
        }
        for full in [r#"true"#, "1", r#""true""#, r#""1""#] {
            assert_eq!(
                p(&format!(r#"{{"a":[null,{{"full":{full}}}]}}"#)),
                Err(AppendParamsError::Full("a".into()))
            );
        }
        assert!(p(r#"{"a":[{"full":false},{"full":"yes"}]}"#).is_ok());
        // JavaScript property order: "1" is looked at before "b".
        assert_eq!(
            p(r#"{"b":[{"full":true}],"1":[{"last":-1}]}"#),
            Err(AppendParamsError::Invalid)
        );
        let ok = p(r#"{"a":[{"since":"5","last":true,"limit":[3]},null]}"#).unwrap();
        assert_eq!(
            ok.entry("a", 0),
            Some(EntryBounds {
                since: Some(5.0),
                last: Some(1.0),
                limit: Some(3.0)
            })
        );
        assert_eq!(ok.entry("a", 1), None);
        assert_eq!(ok.entry("a", 2), None);
        let with = params(r#"{"a":[{},{}],"b":[{}]}"#);
        assert_eq!(
            AppendParams::parse(Some(r#"{"a":[{}]}"#), &with),
            Err(AppendParamsError::LengthMismatch)
        );
        assert!(AppendParams::parse(Some(r#"{"a":[{},null],"c":[{}]}"#), &with).is_ok());
    }

    #[test]
    fn budget() {
        let cfg = crate::config::parse_config(
            br#"{"collections":[
              {"name":"a","storagePath":"a/{id}","readRoles":["public"],"writeRoles":["public"],
               "appendOnly":{"maxPullLimit":2000}},
              {"name":"b","storagePath":"b/{id}","readRoles":["public"],"writeRoles":["public"]}]}"#,
        )
        .unwrap()
        .config;
        let p = |t: &str| AppendParams::parse(Some(t), &Object::new()).unwrap();
        let cols = &cfg.collections;
        assert!(p(r#"{"a":[{},{}],"b":[{}]}"#)
            .check_budget(cols, 5000.0)
            .is_ok());
        assert_eq!(
            p(r#"{"a":[{},{},{"limit":1001}]}"#).check_budget(cols, 5000.0),
            Err(AppendParamsError::BudgetExceeded)
        );
        assert!(p(r#"{"a":[{},{},{"last":1000,"limit":9999}]}"#)
            .check_budget(cols, 5000.0)
            .is_ok());
        assert_eq!(
            p(r#"{"zz":[{},{},{},{},{},{}]}"#).check_budget(cols, 5000.0),
            Err(AppendParamsError::BudgetExceeded),
            "unknown collections count 1000 each"
        );
        assert!(p(r#"{"b":[null,null,null,null,null,null]}"#)
            .check_budget(cols, 5000.0)
            .is_ok());
    }
}
