//! The sync rules: pull, push (optimistic concurrency), bundles and batch
//! pull, as business rules over a [`Store`](crate::store::Store). No HTTP in
//! here: callers hand in parsed inputs and get JSON values or a
//! [`SyncError`] that names the official status and message.
//!
//! | module | owns |
//! |---|---|
//! | [`doc`] | the stored document envelope, reading it back, the pull answer |
//! | [`push`] | push body validation, sanitising, author proofs, the conditional write |
//! | [`fields`] | field permissions: per-field read filtering and write refusal |
//! | [`locks`] | per-key write serialisation |
//! | [`keys`] | path-parameter and document-key safety checks |
//! | [`schema`] | `objectSchema`: the JSON Schema subset Ajv accepts, Ajv's first error |
//! | [`batch`] | batch pull: query validation, per-entry resolution |
//! | [`append`] | append-only collections: settings, append pushes, bounded pulls |
//! | [`append_seg`] | the segmented (`chunkSize`) layout of append-only logs |
//! | [`append_batch`] | batch pull `appendParams`: parsing, budget, per-entry reads |
//! | `append_splice` | byte-level append fast paths (splicing an element into a stored array) |
//! | [`rate_limit`] | `rateLimit`: per-collection, per-action counters with bounded bucket tables |
//! | [`list`] | `listable`: the `GET /list/...` answer (prefix, paging) |
//! | [`ttl`] | `ttlMs`: expiry on read and the sweep that removes expired documents |
//! | [`config_endpoint`] | `GET /config`: the client view of the config |

pub mod append;
pub mod append_batch;
pub mod append_seg;
mod append_splice;
pub mod batch;
pub mod config_endpoint;
pub mod doc;
pub mod fields;
pub mod keys;
pub mod list;
pub mod locks;
pub mod push;
pub mod rate_limit;
#[cfg(feature = "object-schema")]
pub mod schema;
#[cfg(not(feature = "object-schema"))]
#[path = "schema_disabled.rs"]
pub mod schema;
pub mod ttl;

use crate::proto::{
    canonical::js_number,
    encoding::js_trim,
    json::{Object, Value},
};
use crate::store::{Store, StoreError};
use std::fmt;
use std::sync::Arc;

/// Run a store operation: on the `blocking` thread pool when the store
/// blocks (the filesystem store reads files and waits for its group
/// commits), inline otherwise (the memory store).
pub async fn store_call<T: Send + 'static>(
    store: &Arc<dyn Store>,
    blocking: bool,
    f: impl FnOnce(&dyn Store) -> T + Send + 'static,
) -> T {
    if blocking {
        let store = store.clone();
        blocking::unblock(move || f(&*store)).await
    } else {
        f(&**store)
    }
}

/// JavaScript `String(v)` for a JSON value (arrays join their elements
/// with `,`, `null` inside an array printing as nothing).
pub(crate) fn js_to_string(v: &Value) -> String {
    match v {
        Value::Null => "null".to_owned(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) if n.is_nan() => "NaN".to_owned(),
        Value::Number(n) if n.is_infinite() => {
            if *n > 0.0 { "Infinity" } else { "-Infinity" }.to_owned()
        }
        Value::Number(n) => js_number(*n),
        Value::String(s) => s.to_string_lossy(),
        Value::Array(a) => a
            .iter()
            .map(|e| match e {
                Value::Null => String::new(),
                e => js_to_string(e),
            })
            .collect::<Vec<_>>()
            .join(","),
        Value::Object(_) => "[object Object]".to_owned(),
    }
}

/// JavaScript `Number(v)` for a JSON value (config values the official
/// server uses without validating them, batch `appendParams` bounds).
pub(crate) fn js_to_number(v: &Value) -> f64 {
    match v {
        Value::Null => 0.0,
        Value::Bool(b) => f64::from(u8::from(*b)),
        Value::Number(n) => *n,
        Value::String(s) => string_to_number(&s.to_string_lossy()),
        Value::Array(_) => string_to_number(&js_to_string(v)),
        Value::Object(_) => f64::NAN,
    }
}

/// JavaScript `StringToNumber`: trimmed; empty is 0; `0x`/`0o`/`0b`
/// integers (unsigned); a signed decimal literal or `Infinity`; else NaN.
fn string_to_number(s: &str) -> f64 {
    let t = js_trim(s);
    if t.is_empty() {
        return 0.0;
    }
    let radix = match t.get(..2) {
        Some("0x" | "0X") => Some(16),
        Some("0o" | "0O") => Some(8),
        Some("0b" | "0B") => Some(2),
        _ => None,
    };
    if let Some(radix) = radix {
        let digits = &t[2..];
        if digits.is_empty() {
            return f64::NAN;
        }
        let mut n = 0.0f64;
        for c in digits.chars() {
            match c.to_digit(radix) {
                Some(d) => n = n * f64::from(radix) + f64::from(d),
                None => return f64::NAN,
            }
        }
        return n;
    }
    let (sign, body) = match t.as_bytes()[0] {
        b'-' => (-1.0, &t[1..]),
        b'+' => (1.0, &t[1..]),
        _ => (1.0, t),
    };
    if body == "Infinity" {
        return sign * f64::INFINITY;
    }
    let b = body.as_bytes();
    let mut i = 0;
    let int_digits = b.iter().take_while(|c| c.is_ascii_digit()).count();
    i += int_digits;
    let mut frac_digits = 0;
    if b.get(i) == Some(&b'.') {
        i += 1;
        frac_digits = b[i..].iter().take_while(|c| c.is_ascii_digit()).count();
        i += frac_digits;
    }
    if int_digits + frac_digits == 0 {
        return f64::NAN;
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        let exp_digits = b[i..].iter().take_while(|c| c.is_ascii_digit()).count();
        if exp_digits == 0 {
            return f64::NAN;
        }
        i += exp_digits;
    }
    if i != b.len() {
        return f64::NAN;
    }
    // Rust's float grammar accepts every literal that passed the check above.
    body.parse::<f64>().map_or(f64::NAN, |n| sign * n)
}

/// A failed sync operation. [`SyncError::status`] and
/// [`SyncError::message`] are what the official server answers.
#[derive(Debug)]
pub enum SyncError {
    InvalidPathParameter,
    InvalidContentLength,
    PayloadTooLarge,
    JsonContentTypeRequired,
    /// Binary push with a media type outside the allow-list: the header as
    /// received and the configured list as compact JSON.
    MimeNotAllowed {
        header: String,
        allowed_json: String,
    },
    BodyNotObject,
    BodyTooDeep,
    MissingData,
    BadBaseHash,
    AuthorProofIncomplete,
    AuthorNotPresenter,
    AuthorBadSignature,
    HashMismatch,
    Forbidden,
    /// A rate limit refused the request (429).
    RateLimited,
    /// `GET /list/...` with a `limit` that is not a positive integer.
    InvalidListLimit,
    BinaryUnsupported,
    /// `fieldPermissions`: the caller may not write this field.
    FieldNotWritable(String),
    /// `objectSchema` refused the data: Ajv's first error.
    SchemaInvalid {
        message: String,
        /// `instancePath` split on `/` (escapes kept, empty parts dropped).
        path: Vec<crate::proto::json::JsString>,
        keyword: String,
    },
    /// `objectSchema` could not be compiled (the official answer when Ajv
    /// throws): a JSON 500.
    SchemaUnusable,
    /// An append-only rule refused the request.
    Append(append::AppendError),
    /// A storage quota or the free-disk floor refused the write before
    /// anything was written (`507`; see [`crate::store::quota`]).
    InsufficientStorage(crate::store::Refusal),
    /// The store failed: a plain-text 500.
    Store(StoreError),
}

impl SyncError {
    pub fn status(&self) -> u16 {
        use SyncError::*;
        match self {
            InvalidPathParameter
            | InvalidContentLength
            | BodyNotObject
            | BodyTooDeep
            | MissingData
            | BadBaseHash
            | AuthorProofIncomplete
            | InvalidListLimit
            | SchemaInvalid { .. } => 400,
            AuthorNotPresenter | AuthorBadSignature | Forbidden | FieldNotWritable(_) => 403,
            HashMismatch => 409,
            RateLimited => 429,
            PayloadTooLarge => 413,
            JsonContentTypeRequired | MimeNotAllowed { .. } => 415,
            BinaryUnsupported => 501,
            Append(e) => e.status(),
            InsufficientStorage(_) => 507,
            Store(_) | SchemaUnusable => 500,
        }
    }

    /// The `error` string of the JSON body (`None` for the plain-text 500).
    pub fn message(&self) -> Option<String> {
        use SyncError::*;
        Some(
            match self {
                InvalidPathParameter => "Invalid path parameter",
                InvalidContentLength => "Invalid Content-Length",
                PayloadTooLarge => "Payload too large",
                JsonContentTypeRequired => "Content-Type must be application/json",
                MimeNotAllowed {
                    header,
                    allowed_json,
                } => {
                    return Some(format!(
                        "Content-Type '{header}' is not allowed. Allowed: {allowed_json}"
                    ))
                }
                BodyNotObject => "Body must be a JSON object",
                BodyTooDeep => "Body nesting too deep",
                MissingData => "Missing or invalid data",
                BadBaseHash => "baseHash must be a string or null",
                AuthorProofIncomplete => "author proof requires authorPubkey and authorSignature",
                AuthorNotPresenter => "document author must be the request presenter",
                AuthorBadSignature => "invalid document author signature",
                HashMismatch => "hash_mismatch",
                Forbidden => "Forbidden",
                RateLimited => rate_limit::RateLimited::MESSAGE,
                InvalidListLimit => "Invalid limit parameter",
                BinaryUnsupported => "Store does not support binary operations",
                FieldNotWritable(field) => {
                    return Some(fields::NotWritable(field.clone()).message())
                }
                SchemaInvalid { message, .. } => {
                    return Some(format!("Schema validation failed: {message}"))
                }
                SchemaUnusable => "Internal schema validation error",
                Append(e) => return e.message().map(str::to_owned),
                InsufficientStorage(_) => "Insufficient storage",
                Store(_) => return None,
            }
            .to_owned(),
        )
    }
}

impl SyncError {
    /// The JSON body of the answer (`None` for the plain-text 500):
    /// `{"error":<message>}`, plus `path` and `validator` for a schema
    /// refusal, `limit` for `append_limit_exceeded`.
    pub fn body(&self) -> Option<Value> {
        let mut o = Object::with_capacity(3);
        o.insert("error", self.message()?.into());
        if let SyncError::SchemaInvalid { path, keyword, .. } = self {
            o.insert(
                "path",
                Value::Array(path.iter().map(|p| Value::String(p.clone())).collect()),
            );
            o.insert("validator", keyword.as_str().into());
        }
        if let SyncError::Append(append::AppendError::LimitExceeded { limit }) = self {
            o.insert("limit", Value::Number(*limit));
        }
        Some(Value::Object(o))
    }
}

impl fmt::Display for SyncError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self, self.message()) {
            (SyncError::Store(e), _) => write!(f, "store error: {e}"),
            (_, Some(m)) => write!(f, "{} {m}", self.status()),
            (_, None) => write!(f, "{}", self.status()),
        }
    }
}

impl std::error::Error for SyncError {}

impl From<append::AppendError> for SyncError {
    fn from(e: append::AppendError) -> Self {
        SyncError::Append(e)
    }
}

impl From<rate_limit::RateLimited> for SyncError {
    fn from(_: rate_limit::RateLimited) -> Self {
        SyncError::RateLimited
    }
}

impl From<StoreError> for SyncError {
    /// A key the store refuses is client input (the callers check keys with
    /// [`keys::check_storable`] first; this is the backstop): 400, not 500.
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::InvalidKey(_) => {
                log::debug!("refused: {e}");
                SyncError::InvalidPathParameter
            }
            StoreError::Full(r) => SyncError::InsufficientStorage(r),
            e => SyncError::Store(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{js_to_number, js_to_string};
    use crate::proto::json::{self, Value};

    #[test]
    fn more_numbers_read_like_javascript() {
        let n = |t: &str| js_to_number(&json::parse(t.as_bytes()).unwrap());
        assert_eq!(n("true"), 1.0);
        assert_eq!(n(r#""""#), 0.0);
        assert_eq!(n(r#"" 12 ""#), 12.0);
        assert_eq!(n(r#""0x10""#), 16.0);
        assert_eq!(n(r#""1e3""#), 1000.0);
        assert_eq!(n(r#"".5""#), 0.5);
        assert_eq!(n(r#""5.""#), 5.0);
        assert_eq!(n(r#""-0""#), 0.0);
        assert!(n(r#""-0""#).is_sign_negative());
        assert_eq!(n(r#""-Infinity""#), f64::NEG_INFINITY);
        assert_eq!(n("[7]"), 7.0);
        assert_eq!(n("[]"), 0.0);
        assert_eq!(n("[[3]]"), 3.0);
        for nan in [
            r#""inf""#,
            r#""1e""#,
            r#""-0x1""#,
            r#""1_0""#,
            "{}",
            "[1,2]",
            r#""nan""#,
            r#""." "#,
            r#""0x""#,
        ] {
            assert!(n(nan).is_nan(), "{nan}");
        }
        let s = |t: &str| js_to_string(&json::parse(t.as_bytes()).unwrap());
        assert_eq!(s("[1,null,[2,3],true]"), "1,,2,3,true");
        assert_eq!(s(r#"{"a":1}"#), "[object Object]");
        assert_eq!(s("1e21"), "1e+21");
    }

    #[test]
    fn numbers_read_like_javascript() {
        assert_eq!(js_to_number(&Value::from("250")), 250.0);
        assert_eq!(js_to_number(&Value::from(" 1e3 ")), 1000.0);
        assert_eq!(js_to_number(&Value::from("")), 0.0);
        assert_eq!(js_to_number(&Value::from("-5")), -5.0);
        assert!(js_to_number(&Value::from("ten")).is_nan());
        assert!(js_to_number(&Value::from("inf")).is_nan());
        assert_eq!(js_to_number(&Value::Bool(true)), 1.0);
        assert_eq!(js_to_number(&Value::Array(vec![Value::from("7")])), 7.0);
        assert_eq!(js_to_number(&Value::Array(vec![])), 0.0);
        assert!(js_to_number(&Value::Array(vec![Value::Number(1.0), Value::Number(2.0)])).is_nan());
        assert!(js_to_number(&Value::Object(Default::default())).is_nan());
    }
}
