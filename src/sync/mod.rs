//! The sync rules: pull, push (optimistic concurrency), bundles and batch
//! pull, as business rules over a [`Store`](crate::store::Store). No HTTP in
//! here: callers hand in parsed inputs and get JSON values or a
//! [`SyncError`] that names the official status and message.
//!
//! | module | owns |
//! |---|---|
//! | [`doc`] | the stored document envelope, reading it back, the pull answer |
//! | [`push`] | push body validation, sanitising, author proofs, the conditional write |
//! | [`locks`] | per-key write serialisation |
//! | [`keys`] | path-parameter and document-key safety checks |
//! | [`batch`] | batch pull: query validation, per-entry resolution |
//! | [`rate_limit`] | `rateLimit`: per-collection, per-action counters with bounded bucket tables |
//! | [`list`] | `listable`: the `GET /list/...` answer (prefix, paging) |
//! | [`ttl`] | `ttlMs`: expiry on read and the sweep that removes expired documents |
//! | [`config_endpoint`] | `GET /config`: the client view of the config |

pub mod batch;
pub mod config_endpoint;
pub mod doc;
pub mod keys;
pub mod list;
pub mod locks;
pub mod push;
pub mod rate_limit;
pub mod ttl;

use crate::proto::json::Value;
use crate::store::{Store, StoreError};
use std::fmt;
use std::sync::Arc;

/// Run a store operation: on the `blocking` thread pool when the store
/// blocks (the filesystem store fsyncs), inline otherwise (the memory store).
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

/// JavaScript `Number(v)` for a config value the official server uses
/// without validating it (hexadecimal and binary string forms, which
/// configs never hold, read as NaN here).
pub(crate) fn js_to_number(v: &Value) -> f64 {
    match v {
        Value::Number(n) => *n,
        Value::Bool(b) => f64::from(u8::from(*b)),
        Value::Null => 0.0,
        Value::String(s) => {
            let s = s.to_string_lossy();
            match crate::proto::encoding::js_trim(&s) {
                "" => 0.0,
                "Infinity" | "+Infinity" => f64::INFINITY,
                "-Infinity" => f64::NEG_INFINITY,
                t if t
                    .bytes()
                    .all(|b| b.is_ascii_digit() || b".+-eE".contains(&b)) =>
                {
                    t.parse().unwrap_or(f64::NAN)
                }
                _ => f64::NAN,
            }
        }
        Value::Array(a) => match a.as_slice() {
            [] => 0.0,
            [one @ (Value::Number(_) | Value::String(_) | Value::Bool(_) | Value::Null)] => {
                match one {
                    // `[null]` and `[true]` stringify to "" and "true".
                    Value::Null => 0.0,
                    Value::Bool(_) => f64::NAN,
                    other => js_to_number(other),
                }
            }
            _ => f64::NAN,
        },
        Value::Object(_) => f64::NAN,
    }
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
            | InvalidListLimit => 400,
            AuthorNotPresenter | AuthorBadSignature | Forbidden => 403,
            HashMismatch => 409,
            RateLimited => 429,
            PayloadTooLarge => 413,
            JsonContentTypeRequired | MimeNotAllowed { .. } => 415,
            BinaryUnsupported => 501,
            Store(_) => 500,
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
                Store(_) => return None,
            }
            .to_owned(),
        )
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

impl From<rate_limit::RateLimited> for SyncError {
    fn from(_: rate_limit::RateLimited) -> Self {
        SyncError::RateLimited
    }
}

impl From<StoreError> for SyncError {
    fn from(e: StoreError) -> Self {
        SyncError::Store(e)
    }
}

#[cfg(test)]
mod tests {
    use super::js_to_number;
    use crate::proto::json::Value;

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
