//! Append-only collections (`appendOnly`, type `by_timestamp`), as the
//! official server runs them (`runPush`'s append branch, `appendItem` in
//! `protocol/push.js`, `handleAppendOnlyPull` in `router/helpers.js`).
//!
//! * **Push** appends one element `{ts, data[, authorPubkey,
//!   authorSignature]}` to the array `data[field]` (default `items`) of the
//!   document. There is no `baseHash` check: an authorized append is always
//!   accepted, serialised per key by the caller's lock. The stored and
//!   answered hash is `hash({n, last})` (`n` elements, `last` the new
//!   element's `data`). `ts` is the client's (a non-negative integer above
//!   the last element's, at most 5 minutes ahead of the clock) or
//!   `max(now, last ts + 1)`. `maxItems` caps the count (`409
//!   {"error":"append_limit_exceeded","limit":N}`); `requireAuthorSignature`
//!   (on unless `false`) demands an Ed25519 author proof over
//!   `"starfish-append-author-v1\n" + stableStringify({d: data, k: key})`
//!   signed by the request presenter.
//! * **`persist: false`** stores nothing: the push answers
//!   `{hash: hash(data), timestamp}` (the official server only emits a write
//!   event for plugins, which starfish-rs does not have).
//! * **Pull** must be bounded: `?checkpoint=` (elements with a larger `ts`),
//!   `?limit=` / `?last=` (the newest K; `limit` wins), or `?full=true`
//!   (everything, unless `allowFull: false`). `maxPullLimit` clamps K,
//!   `maxCheckpointAgeMs` refuses old checkpoints.
//! * **Layouts**: one document holding the whole array, or, with
//!   `chunkSize`, a small head plus sealed chunks ([`super::append_seg`]), so
//!   an append costs O(chunkSize) instead of O(log length). A segmented log
//!   stays segmented even if `chunkSize` is later removed from the config.
//!   The wire format is the same for both.
//!
//! `ttlMs` applies as upstream: an expired log (its last append older than
//! the TTL) pulls as the empty answer (the `ETag` of the stored hash kept)
//! and its batch entries have no elements ([`LogRead::expired`]). Field
//! read permissions can filter each element's `data` through
//! [`element_data_mut`]; rate limits and write-side checks run before the
//! append branch, on the parsed body, like for any push.

use super::push::Written;
use super::{append_seg, append_splice, SyncError};
use crate::config::CollectionConfig;
use crate::proto::{
    canonical::{js_number, write_canonical},
    hash::sha256_hex,
    json::{self, JsString, Object, Value},
    request_sig,
    sanitize::deep_sanitize,
};
use crate::store::{Store, StoreError};
use std::fmt;

/// The array field when the config names none.
pub const DEFAULT_FIELD: &str = "items";
/// How far ahead of the server clock a client `ts` may be (ms).
pub const MAX_FUTURE_TS_SKEW_MS: i64 = 300_000;
/// Chunk size of a segmented head that records none.
pub const DEFAULT_CHUNK_SIZE: f64 = 10_000.0;
/// Domain tag of an append element's author proof.
pub const AUTHOR_DOMAIN: &str = "starfish-append-author-v1\n";

/// A collection's `appendOnly` settings, typed from the raw config value
/// (which the config loader has already validated with the official rules).
#[derive(Clone, Debug, PartialEq)]
pub struct AppendSettings {
    /// `field` (`String(field)`, default `items`).
    pub field: String,
    /// `persist` (only a literal `false` turns storage off).
    pub persist: bool,
    /// `maxItems`.
    pub max_items: Option<f64>,
    /// `chunkSize`: the segmented layout.
    pub chunk_size: Option<f64>,
    /// `requireAuthorSignature` (only a literal `false` turns it off).
    pub require_author_signature: bool,
    /// Pull bounds.
    pub limits: PullLimits,
}

/// The pull-side limits of a collection.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PullLimits {
    /// `allowFull` (only a literal `false` forbids `?full=true`).
    pub allow_full: bool,
    /// `maxPullLimit`: larger `limit`/`last` values are clamped to it.
    pub max_pull_limit: Option<f64>,
    /// `maxCheckpointAgeMs`: older checkpoints are refused.
    pub max_checkpoint_age_ms: Option<f64>,
}

impl Default for PullLimits {
    fn default() -> Self {
        PullLimits {
            allow_full: true,
            max_pull_limit: None,
            max_checkpoint_age_ms: None,
        }
    }
}

impl AppendSettings {
    /// The settings of an append-only collection, `None` for any other.
    pub fn of(col: &CollectionConfig) -> Option<AppendSettings> {
        Self::from_value(col.extended.append_only.as_ref()?)
    }

    /// Settings from a coerced `appendOnly` value (an object; `None` otherwise).
    pub fn from_value(v: &Value) -> Option<AppendSettings> {
        let o = v.as_object()?;
        let num = |k: &str| o.get(k).and_then(Value::as_f64);
        let is_false = |k: &str| matches!(o.get(k), Some(Value::Bool(false)));
        Some(AppendSettings {
            field: match o.get("field") {
                None | Some(Value::Null) => DEFAULT_FIELD.to_owned(),
                Some(f) => super::js_to_string(f),
            },
            persist: !is_false("persist"),
            max_items: num("maxItems"),
            chunk_size: num("chunkSize"),
            require_author_signature: !is_false("requireAuthorSignature"),
            limits: PullLimits {
                allow_full: !is_false("allowFull"),
                max_pull_limit: num("maxPullLimit"),
                max_checkpoint_age_ms: num("maxCheckpointAgeMs"),
            },
        })
    }
}

/// The warning the official server logs at start-up for `persist: false`
/// collections when no plugin consumes write events (starfish-rs has no
/// such plugins), or `None` when there are none.
pub fn persist_false_warning(config: &crate::config::SyncConfig) -> Option<String> {
    let names: Vec<String> = config
        .all_collections()
        .filter(|(_, c)| AppendSettings::of(c).is_some_and(|s| !s.persist))
        .map(|(_, c)| format!("\"{}\"", c.name))
        .collect();
    (!names.is_empty()).then(|| {
        format!(
            "[Starfish] appendOnly.persist=false on collection(s) {} but no plugin with an afterWrite hook is registered; pushes will be neither stored nor published.",
            names.join(", ")
        )
    })
}

/// Why an append-only request was refused.
#[derive(Clone, Debug, PartialEq)]
pub enum AppendError {
    AuthorRequired,
    AuthorNotPresenter,
    AuthorBadSignature,
    TsInvalid,
    TsTooFarInFuture,
    LimitExceeded {
        limit: f64,
    },
    NonMonotonicTimestamp,
    InvalidCheckpoint,
    InvalidLimit,
    InvalidLast,
    PullBoundRequired,
    FullWithBounds,
    FullNotAllowed,
    CheckpointTooOld,
    /// A stored log this server cannot extend (an element without a
    /// non-negative integer `ts` cannot name a chunk; the official server
    /// throws): a plain 500.
    Internal,
}

impl AppendError {
    pub fn status(&self) -> u16 {
        use AppendError::*;
        match self {
            AuthorNotPresenter | AuthorBadSignature => 403,
            LimitExceeded { .. } | NonMonotonicTimestamp => 409,
            Internal => 500,
            _ => 400,
        }
    }

    /// The `error` string (`None` for the plain-text 500).
    pub fn message(&self) -> Option<&'static str> {
        use AppendError::*;
        Some(match self {
            AuthorRequired => "append requires authorPubkey and authorSignature",
            AuthorNotPresenter => "append author must be the request presenter",
            AuthorBadSignature => "invalid append author signature",
            TsInvalid => "ts must be a non-negative integer",
            TsTooFarInFuture => "ts is too far in the future",
            LimitExceeded { .. } => "append_limit_exceeded",
            NonMonotonicTimestamp => "non_monotonic_timestamp",
            InvalidCheckpoint => "Invalid checkpoint",
            InvalidLimit => "Invalid limit",
            InvalidLast => "Invalid last",
            PullBoundRequired => "pull_bound_required",
            FullWithBounds => "full_with_bounds",
            FullNotAllowed => "full_not_allowed",
            CheckpointTooOld => "checkpoint_too_old",
            Internal => return None,
        })
    }
}

impl fmt::Display for AppendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.message() {
            Some(m) => write!(f, "{} {m}", self.status()),
            None => f.write_str("a stored append-only log that cannot be extended"),
        }
    }
}

impl std::error::Error for AppendError {}

// ---------------------------------------------------------------- push

/// A validated append.
#[derive(Clone, Debug, PartialEq)]
pub struct AppendPush {
    /// The sanitised element payload.
    pub item: Object,
    /// `(authorPubkey, authorSignature)` as sent (verified unless the
    /// collection opted out), stored on the element.
    pub author: Option<(JsString, JsString)>,
    /// The client's `ts`.
    pub ts: Option<f64>,
}

/// The append branch's body checks, in the official order: `data` an object
/// (sanitised), the author proof, `ts`. `presenter` is the request signer's
/// key when a cap authenticated the request.
pub fn validate_push(
    mut body: Object,
    settings: &AppendSettings,
    key: &str,
    presenter: Option<&str>,
    now_ms: i64,
) -> Result<AppendPush, SyncError> {
    let item = match body.remove("data") {
        Some(Value::Object(o)) => deep_sanitize(o),
        _ => return Err(SyncError::MissingData),
    };
    let string = |v: Option<Value>| match v {
        Some(Value::String(s)) => Some(s),
        _ => None,
    };
    let pubkey = string(body.remove("authorPubkey"));
    let signature = string(body.remove("authorSignature"));
    let author = pubkey.zip(signature);
    if settings.require_author_signature {
        let Some((p, s)) = &author else {
            return Err(AppendError::AuthorRequired.into());
        };
        let p = p.to_string_lossy();
        if presenter.is_some_and(|pr| pr != p) {
            return Err(AppendError::AuthorNotPresenter.into());
        }
        let input = super::push::author_input(AUTHOR_DOMAIN, &item, key);
        if !request_sig::verify_ed25519(&p, &s.to_string_lossy(), input.as_bytes()) {
            return Err(AppendError::AuthorBadSignature.into());
        }
    }
    let ts = match body.get("ts") {
        None | Some(Value::Null) => None,
        Some(v @ Value::Number(n)) if v.is_integer() && *n >= 0.0 => {
            if *n > (now_ms + MAX_FUTURE_TS_SKEW_MS) as f64 {
                return Err(AppendError::TsTooFarInFuture.into());
            }
            Some(*n)
        }
        Some(_) => return Err(AppendError::TsInvalid.into()),
    };
    Ok(AppendPush { item, author, ts })
}

/// The `persist: false` answer: `hash(data)` and the client's `ts` or now.
/// Nothing is stored.
pub fn unstored(push: &AppendPush, now_ms: i64) -> Written {
    let mut out = Vec::new();
    write_object_canonical(&mut out, &push.item);
    Written {
        hash: sha256_hex(&out),
        ts: push.ts.unwrap_or(now_ms as f64),
    }
}

/// Append one element to the log at `key` (`persist` collections). The
/// caller holds the key's write lock.
pub fn append(
    store: &dyn Store,
    key: &str,
    push: &AppendPush,
    settings: &AppendSettings,
    now_ms: i64,
) -> Result<Written, SyncError> {
    // A single-document log is written with a compare-and-swap from the
    // bytes read; losing the race to a writer on another node (a shared
    // database) means reading again. Within one node the key lock makes
    // the first try succeed. A chunked log is written in two steps (chunk,
    // then head), which one swap cannot guard: that runs under the store's
    // cross-process lock for the key instead.
    for _ in 0..APPEND_TRIES {
        match append_once(store, key, push, settings, now_ms, false) {
            Err(Step::Sync(SyncError::HashMismatch)) => continue,
            Err(Step::Sync(e)) => return Err(e),
            Err(Step::NeedsLock) => {
                let mut out = None;
                store.exclusive(key, &mut || {
                    out = Some(append_once(store, key, push, settings, now_ms, true));
                })?;
                return match out {
                    Some(Ok(w)) => Ok(w),
                    Some(Err(Step::Sync(e))) => Err(e),
                    Some(Err(Step::NeedsLock)) | None => Err(AppendError::Internal.into()),
                };
            }
            Ok(w) => return Ok(w),
        }
    }
    Err(SyncError::HashMismatch)
}

/// Why one attempt of [`append`] did not write.
enum Step {
    Sync(SyncError),
    /// The log is chunked: run again under [`Store::exclusive`].
    NeedsLock,
}

impl<E: Into<SyncError>> From<E> for Step {
    fn from(e: E) -> Self {
        Step::Sync(e.into())
    }
}

/// Attempts of [`append`] against concurrent writers on other nodes.
const APPEND_TRIES: usize = 16;

fn append_once(
    store: &dyn Store,
    key: &str,
    push: &AppendPush,
    settings: &AppendSettings,
    now_ms: i64,
    locked: bool,
) -> Result<Written, Step> {
    if settings.chunk_size.is_some() && !locked {
        return Err(Step::NeedsLock);
    }
    let stored = store.get(key)?;
    let raw = stored.as_deref().filter(|r| !r.is_empty());
    let field = settings.field.as_str();
    if settings.chunk_size.is_none() {
        if let Some(doc) = raw.and_then(|r| append_splice::locate_single(r, field)) {
            return Ok(append_single(
                store,
                key,
                stored.as_deref(),
                &doc,
                push,
                settings,
                now_ms,
            )?);
        }
    }
    let head = raw.and_then(|r| decode_object(key, r));
    let is_seg = head
        .as_ref()
        .is_some_and(|h| matches!(h.get("seg"), Some(Value::Bool(true))));
    let count = match &head {
        Some(h) if is_seg => num(h, "n").unwrap_or(0.0),
        Some(h) => match h.get("data").and_then(|d| d.as_object()?.get(field)) {
            Some(Value::Array(a)) => a.len() as f64,
            _ => 0.0,
        },
        None => 0.0,
    };
    let chunk_size = settings.chunk_size.or_else(|| {
        is_seg.then(|| {
            head.as_ref()
                .and_then(|h| num(h, "chunkSize"))
                .filter(|n| *n != 0.0 && !n.is_nan())
                .unwrap_or(DEFAULT_CHUNK_SIZE)
        })
    });
    check_max_items(count, settings)?;
    if let Some(chunk_size) = chunk_size {
        if !locked {
            return Err(Step::NeedsLock);
        }
        return Ok(append_seg::append(
            store, key, head, is_seg, push, field, chunk_size, now_ms,
        )?);
    }
    // A single document in another layout (none yet, foreign formatting,
    // duplicate keys, ...): print its `data` plainly, with `data[field]` an
    // array, then splice as above.
    let mut data = match head.and_then(|mut h| h.remove("data")) {
        Some(Value::Object(o)) => o,
        _ => Object::new(),
    };
    if !matches!(data.get(field), Some(Value::Array(_))) {
        data.insert(field, Value::Array(Vec::new()));
    }
    let mut plain = Object::with_capacity(1);
    plain.insert("data", Value::Object(data));
    let plain = json::to_js_json(&Value::Object(plain));
    let doc = append_splice::locate_single(&plain, field).ok_or(AppendError::Internal)?;
    Ok(append_single(
        store,
        key,
        stored.as_deref(),
        &doc,
        push,
        settings,
        now_ms,
    )?)
}

fn check_max_items(count: f64, settings: &AppendSettings) -> Result<(), AppendError> {
    match settings.max_items {
        Some(limit) if count >= limit => Err(AppendError::LimitExceeded { limit }),
        _ => Ok(()),
    }
}

/// Append to a single-document log located in its stored bytes: the new
/// element is spliced in, the envelope rebuilt.
/// `stored` is the value read (the swap's expected value); a lost race
/// answers [`SyncError::HashMismatch`], which [`append`] retries.
fn append_single(
    store: &dyn Store,
    key: &str,
    stored: Option<&[u8]>,
    doc: &append_splice::SingleDoc<'_>,
    push: &AppendPush,
    settings: &AppendSettings,
    now_ms: i64,
) -> Result<Written, SyncError> {
    check_max_items(doc.count() as f64, settings)?;
    let latest = doc.last().map_or(-1.0, |el| element_ts(&el));
    let ts = resolve_ts(push.ts, latest, now_ms)?;
    let el = element(ts, push);
    let hash = n_last_hash(doc.count() + 1, &el);
    if !store.swap(key, stored, &doc.with_element(&el, ts, &hash))? {
        return Err(SyncError::HashMismatch);
    }
    Ok(Written { hash, ts })
}

/// The stored object at `key`: `None` when missing, empty, or not a JSON
/// object (logged).
pub(crate) fn read_object(store: &dyn Store, key: &str) -> Result<Option<Object>, StoreError> {
    Ok(store
        .get(key)?
        .filter(|r| !r.is_empty())
        .and_then(|r| decode_object(key, &r)))
}

/// Stored bytes as an object; `None` (logged) when they are not one.
fn decode_object(key: &str, raw: &[u8]) -> Option<Object> {
    match json::parse(raw) {
        Ok(Value::Object(o)) => Some(o),
        _ => {
            log::warn!(
                "stored append-only document at {key:?} is not a JSON object; read as empty"
            );
            None
        }
    }
}

/// A number field of a stored object.
pub(crate) fn num(o: &Object, k: &str) -> Option<f64> {
    o.get(k).and_then(Value::as_f64)
}

/// An element's `ts`, or -1 when it has none.
pub(crate) fn element_ts(el: &Value) -> f64 {
    el.as_object().and_then(|o| num(o, "ts")).unwrap_or(-1.0)
}

/// The new element's `ts`: the client's (strictly above `latest`) or
/// `max(now, latest + 1)`.
pub(crate) fn resolve_ts(
    provided: Option<f64>,
    latest: f64,
    now_ms: i64,
) -> Result<f64, AppendError> {
    match provided {
        // `!(p > latest)`, as written upstream (NaN never reaches here).
        Some(p) if p > latest => Ok(p),
        Some(_) => Err(AppendError::NonMonotonicTimestamp),
        None => Ok((now_ms as f64).max(latest + 1.0)),
    }
}

/// The stored element `{ts, data[, authorPubkey, authorSignature]}`.
pub(crate) fn element(ts: f64, push: &AppendPush) -> Value {
    let mut o = Object::with_capacity(4);
    o.insert("ts", Value::Number(ts));
    o.insert("data", Value::Object(push.item.clone()));
    if let Some((p, s)) = &push.author {
        o.insert("authorPubkey", Value::String(p.clone()));
        o.insert("authorSignature", Value::String(s.clone()));
    }
    Value::Object(o)
}

/// `computeHash({n, last})` where `last` is `element.data`, without
/// building the object: `stableStringify` orders `last` before `n`.
pub(crate) fn n_last_hash(n: usize, element: &Value) -> String {
    let mut out = Vec::with_capacity(128);
    out.extend_from_slice(b"{\"last\":");
    match element.as_object().and_then(|o| o.get("data")) {
        Some(d) => write_canonical(&mut out, d),
        None => out.extend_from_slice(b"{}"),
    }
    out.extend_from_slice(b",\"n\":");
    out.extend_from_slice(js_number(n as f64).as_bytes());
    out.push(b'}');
    sha256_hex(&out)
}

fn write_object_canonical(out: &mut Vec<u8>, o: &Object) {
    write_canonical(out, &Value::Object(o.clone()));
}

// ---------------------------------------------------------------- pull

/// The raw bound parameters of a pull (query values, or batch
/// `appendParams` entries converted with `String(n)`).
#[derive(Clone, Copy, Debug, Default)]
pub struct PullParams<'a> {
    pub checkpoint: Option<&'a str>,
    pub limit: Option<&'a str>,
    pub last: Option<&'a str>,
    pub full: Option<&'a str>,
}

/// Validated bounds: elements with `ts > checkpoint` (0: all), then the
/// newest `last`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Bounds {
    pub checkpoint: f64,
    pub last: Option<f64>,
}

/// `parseInt(s, 10)` that must print back as `s`: a canonical non-negative
/// decimal integer.
fn canonical_uint(s: &str) -> Option<f64> {
    let n = super::push::parse_int_lenient(s)?;
    (n >= 0.0 && js_number(n) == s).then_some(n)
}

/// The bound rules of `handleAppendOnlyPull`, in order.
pub fn parse_bounds(
    p: &PullParams<'_>,
    limits: &PullLimits,
    now_ms: i64,
) -> Result<Bounds, AppendError> {
    let checkpoint = match p.checkpoint {
        None => 0.0,
        Some(s) => canonical_uint(s).ok_or(AppendError::InvalidCheckpoint)?,
    };
    // `limit` is an alias of `last` and wins; `last` is then not looked at.
    let mut last = match (p.limit, p.last) {
        (Some(s), _) => Some(canonical_uint(s).ok_or(AppendError::InvalidLimit)?),
        (None, Some(s)) => Some(canonical_uint(s).ok_or(AppendError::InvalidLast)?),
        (None, None) => None,
    };
    let full = matches!(p.full, Some("true" | "1"));
    if p.checkpoint.is_none() && last.is_none() && !full {
        return Err(AppendError::PullBoundRequired);
    }
    if full && (p.checkpoint.is_some() || last.is_some()) {
        return Err(AppendError::FullWithBounds);
    }
    if full && !limits.allow_full {
        return Err(AppendError::FullNotAllowed);
    }
    if let Some(age) = limits.max_checkpoint_age_ms {
        if p.checkpoint.is_some() && checkpoint < now_ms as f64 - age {
            return Err(AppendError::CheckpointTooOld);
        }
    }
    if let (Some(l), Some(max)) = (last, limits.max_pull_limit) {
        if l > max {
            last = Some(max);
        }
    }
    Ok(Bounds { checkpoint, last })
}

/// What a bounded read found.
#[derive(Clone, Debug, PartialEq)]
pub struct LogRead {
    /// The stored `data` with `data[field]` replaced by the selected elements.
    pub data: Object,
    /// The stored hash (`""` when nothing is stored).
    pub hash: Value,
    /// Whether a document was stored (the official answer then carries
    /// `Cache-Control`; a missing one answers without headers).
    pub found: bool,
    /// The stored document-level `ts` (the last append's; for TTL checks).
    pub stored_ts: Option<f64>,
    /// The array field.
    pub field: String,
}

impl LogRead {
    /// The `ETag` value (`"<hash>"`) when the stored hash is a non-empty string.
    pub fn etag(&self) -> Option<String> {
        self.hash
            .as_str()
            .filter(|h| !h.is_empty())
            .map(|h| format!("\"{h}\""))
    }

    /// Whether the log is expired under `col`'s `ttlMs` (the official check
    /// on the stored `ts`, 0 when absent).
    pub fn expired(&self, col: &CollectionConfig, now_ms: i64) -> bool {
        super::ttl::ttl_ms(col)
            .is_some_and(|ttl| super::ttl::is_expired(self.stored_ts.unwrap_or(0.0), ttl, now_ms))
    }

    /// Empty the selected elements (a batch entry of an expired log keeps
    /// the rest of its answer).
    pub fn clear_elements(&mut self) {
        self.data
            .insert(self.field.as_str(), Value::Array(Vec::new()));
    }

    /// The pull answer `{"data","hash","timestamp"}`.
    pub fn answer(self, now_ms: i64) -> Value {
        let mut o = Object::with_capacity(3);
        o.insert("data", Value::Object(self.data));
        o.insert("hash", self.hash);
        o.insert("timestamp", Value::Number(now_ms as f64));
        Value::Object(o)
    }
}

/// Read the log at `key` within `bounds`.
pub fn read(
    store: &dyn Store,
    key: &str,
    field: &str,
    bounds: &Bounds,
) -> Result<LogRead, StoreError> {
    let Some(mut stored) = read_object(store, key)? else {
        let mut data = Object::with_capacity(1);
        data.insert(field, Value::Array(Vec::new()));
        return Ok(LogRead {
            data,
            hash: "".into(),
            found: false,
            stored_ts: None,
            field: field.to_owned(),
        });
    };
    let mut data = match stored.remove("data") {
        Some(Value::Object(o)) => o,
        _ => Object::new(),
    };
    let hash = match stored.remove("hash") {
        None | Some(Value::Null) => Value::from(""),
        Some(h) => h,
    };
    let stored_ts = num(&stored, "ts");
    let items = if matches!(stored.get("seg"), Some(Value::Bool(true))) {
        let chunk_size = num(&stored, "chunkSize").unwrap_or(0.0);
        append_seg::read_chunks(store, key, bounds, chunk_size)?
    } else {
        match data.get_mut(field) {
            Some(Value::Array(a)) => std::mem::take(a),
            _ => Vec::new(),
        }
    };
    data.insert(field, Value::Array(select(items, bounds)));
    Ok(LogRead {
        data,
        hash,
        found: true,
        stored_ts,
        field: field.to_owned(),
    })
}

/// Apply the bounds to elements in `ts` order: those after the checkpoint
/// (binary search, elements without a numeric `ts` count as 0), then the
/// newest `last`.
pub(crate) fn select(mut items: Vec<Value>, bounds: &Bounds) -> Vec<Value> {
    if bounds.checkpoint > 0.0 {
        let ts0 = |el: &Value| el.as_object().and_then(|o| num(o, "ts")).unwrap_or(0.0);
        let start = items.partition_point(|el| ts0(el) <= bounds.checkpoint);
        items.drain(..start);
    }
    if let Some(last) = bounds.last {
        let keep = if last >= items.len() as f64 {
            items.len()
        } else {
            last as usize
        };
        items.drain(..items.len() - keep);
    }
    items
}

/// Every element's `data` object in `data[field]`, for per-element
/// filtering (field read permissions).
pub fn element_data_mut<'a>(
    data: &'a mut Object,
    field: &str,
) -> impl Iterator<Item = &'a mut Object> + 'a {
    let elements = match data.get_mut(field) {
        Some(Value::Array(a)) => a.as_mut_slice(),
        _ => &mut [],
    };
    elements.iter_mut().filter_map(|el| {
        el.as_object_mut()
            .and_then(|o| o.get_mut("data"))
            .and_then(Value::as_object_mut)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::hash::document_hash;
    use crate::store::MemoryStore;

    fn obj(t: &str) -> Object {
        match json::parse(t.as_bytes()).unwrap() {
            Value::Object(o) => o,
            _ => panic!("not an object: {t}"),
        }
    }

    fn settings(t: &str) -> AppendSettings {
        AppendSettings::from_value(&Value::Object(obj(t))).unwrap()
    }

    #[test]
    fn settings_from_raw_values() {
        let s = settings(r#"{"type":"by_timestamp"}"#);
        assert_eq!(s.field, "items");
        assert!(s.persist && s.require_author_signature && s.limits.allow_full);
        assert_eq!((s.max_items, s.chunk_size), (None, None));
        let s = settings(
            r#"{"type":"by_timestamp","field":"ev","persist":0,"maxItems":3,"chunkSize":null,
                "requireAuthorSignature":false,"allowFull":false,"maxPullLimit":7,"maxCheckpointAgeMs":9}"#,
        );
        assert_eq!(s.field, "ev");
        assert!(s.persist, "only a literal false turns persist off");
        assert!(!s.require_author_signature && !s.limits.allow_full);
        assert_eq!(
            (s.max_items, s.chunk_size, s.limits.max_pull_limit),
            (Some(3.0), None, Some(7.0))
        );
        assert_eq!(s.limits.max_checkpoint_age_ms, Some(9.0));
        assert_eq!(settings(r#"{"field":5}"#).field, "5");
        assert_eq!(settings(r#"{"field":[1,null,"a"]}"#).field, "1,,a");
        assert!(!settings(r#"{"persist":false}"#).persist);
    }

    #[test]
    fn n_last_hash_matches_compute_hash() {
        let push = AppendPush {
            item: obj(r#"{"b":1,"a":[2,{"z":1,"y":2}]}"#),
            author: None,
            ts: None,
        };
        let el = element(5.0, &push);
        let mut o = Object::new();
        o.insert("n", Value::Number(12.0));
        o.insert("last", Value::Object(push.item.clone()));
        assert_eq!(n_last_hash(12, &el), document_hash(&Value::Object(o)));
        assert_eq!(
            unstored(&push, 1).hash,
            document_hash(&Value::Object(push.item.clone()))
        );
    }

    #[test]
    fn bound_rules_in_order() {
        let p = |c: Option<&'static str>,
                 l: Option<&'static str>,
                 la: Option<&'static str>,
                 f: Option<&'static str>| {
            PullParams {
                checkpoint: c,
                limit: l,
                last: la,
                full: f,
            }
        };
        let lim = PullLimits::default();
        let b = |q: PullParams<'_>, lim: &PullLimits| parse_bounds(&q, lim, 1_000_000);
        assert_eq!(
            b(p(None, None, None, None), &lim),
            Err(AppendError::PullBoundRequired)
        );
        assert_eq!(
            b(p(None, None, None, Some("false")), &lim),
            Err(AppendError::PullBoundRequired)
        );
        for bad in [
            "",
            "-1",
            "007",
            "1e3",
            "-0",
            " 5",
            "12345678901234567890",
            "x",
        ] {
            assert_eq!(
                b(p(Some(bad), None, None, None), &lim),
                Err(AppendError::InvalidCheckpoint),
                "{bad}"
            );
        }
        assert_eq!(
            b(p(None, Some("x"), Some("3"), None), &lim),
            Err(AppendError::InvalidLimit)
        );
        assert_eq!(
            b(p(None, Some("2"), Some("x"), None), &lim),
            Ok(Bounds {
                checkpoint: 0.0,
                last: Some(2.0)
            }),
            "limit wins and last is not looked at"
        );
        assert_eq!(
            b(p(None, None, Some("x"), None), &lim),
            Err(AppendError::InvalidLast)
        );
        assert_eq!(
            b(p(Some("0"), None, None, None), &lim),
            Ok(Bounds {
                checkpoint: 0.0,
                last: None
            })
        );
        assert_eq!(
            b(p(None, None, None, Some("1")), &lim),
            Ok(Bounds {
                checkpoint: 0.0,
                last: None
            })
        );
        assert_eq!(
            b(p(Some("0"), None, None, Some("true")), &lim),
            Err(AppendError::FullWithBounds)
        );
        let strict = PullLimits {
            allow_full: false,
            max_pull_limit: Some(5.0),
            max_checkpoint_age_ms: Some(1000.0),
        };
        assert_eq!(
            b(p(None, None, None, Some("true")), &strict),
            Err(AppendError::FullNotAllowed)
        );
        assert_eq!(
            b(p(Some("998999"), None, None, None), &strict),
            Err(AppendError::CheckpointTooOld)
        );
        assert_eq!(
            b(p(Some("999000"), Some("50"), None, None), &strict),
            Ok(Bounds {
                checkpoint: 999000.0,
                last: Some(5.0)
            })
        );
    }

    #[test]
    fn selection() {
        let items: Vec<Value> = (1..=5)
            .map(|i| Value::Object(obj(&format!(r#"{{"ts":{},"data":{{}}}}"#, i * 10))))
            .collect();
        let ts = |v: Vec<Value>| v.iter().map(element_ts).collect::<Vec<_>>();
        let b = |c: f64, l: Option<f64>| Bounds {
            checkpoint: c,
            last: l,
        };
        assert_eq!(
            ts(select(items.clone(), &b(25.0, None))),
            [30.0, 40.0, 50.0]
        );
        assert_eq!(ts(select(items.clone(), &b(30.0, Some(1.0)))), [50.0]);
        assert_eq!(
            ts(select(items.clone(), &b(0.0, Some(0.0)))),
            Vec::<f64>::new()
        );
        assert_eq!(ts(select(items.clone(), &b(0.0, Some(1e300)))).len(), 5);
        assert_eq!(ts(select(items, &b(60.0, None))), Vec::<f64>::new());
    }

    #[test]
    fn single_document_appends() {
        let store = MemoryStore::new();
        let s = settings(r#"{"maxItems":2,"requireAuthorSignature":false}"#);
        let push = |t: &str, ts: Option<f64>| AppendPush {
            item: obj(t),
            author: None,
            ts,
        };
        let a = append(&store, "k", &push(r#"{"x":1}"#, None), &s, 100).unwrap();
        assert_eq!(a.ts, 100.0);
        let b = append(&store, "k", &push(r#"{"x":2}"#, None), &s, 50).unwrap();
        assert_eq!(b.ts, 101.0, "server ts stays strictly increasing");
        assert!(matches!(
            append(&store, "k", &push("{}", None), &s, 200),
            Err(SyncError::Append(AppendError::LimitExceeded { limit: 2.0 }))
        ));
        let raw = store.get("k").unwrap().unwrap();
        assert_eq!(
            String::from_utf8(raw).unwrap(),
            format!(
                r#"{{"v":1,"data":{{"items":[{{"ts":100,"data":{{"x":1}}}},{{"ts":101,"data":{{"x":2}}}}]}},"ts":101,"hash":"{}"}}"#,
                b.hash
            )
        );
        // A client ts must exceed the last one.
        let s = settings("{}");
        store
            .put(
                "m",
                br#"{"v":1,"data":{"keep":true,"items":[{"ts":7,"data":{}}]},"ts":7,"hash":"h"}"#,
            )
            .unwrap();
        assert!(matches!(
            append(&store, "m", &push("{}", Some(7.0)), &s, 1),
            Err(SyncError::Append(AppendError::NonMonotonicTimestamp))
        ));
        let c = append(&store, "m", &push("{}", Some(8.0)), &s, 1).unwrap();
        assert_eq!(c.ts, 8.0);
        let read = read(
            &store,
            "m",
            "items",
            &Bounds {
                checkpoint: 7.0,
                last: None,
            },
        )
        .unwrap();
        assert_eq!(
            json::to_js_json(&read.answer(9)),
            format!(r#"{{"data":{{"keep":true,"items":[{{"ts":8,"data":{{}}}}]}},"hash":"{}","timestamp":9}}"#, c.hash).as_bytes()
        );
    }

    #[test]
    fn appends_store_what_parsing_and_pushing_would() {
        let s = settings(r#"{"requireAuthorSignature":false,"field":"ev"}"#);
        let push = AppendPush {
            item: obj(r#"{"é":"\ud83d\ude00","n":[1.5e300,-0]}"#),
            author: Some(("pk".into(), "sig".into())),
            ts: Some(1e15),
        };
        // (stored document, whether it is spliced as stored)
        for (raw, as_stored) in [
            (r#"{"v":1,"data":{"ev":[]},"ts":1,"hash":"h"}"#, true),
            (
                r#"{"v":1,"data":{"b":1,"ev":[{"ts":3,"data":{}}],"2":{"ev":[9]}},"ts":3,"hash":"h","extra":[1]}"#,
                true,
            ),
            (
                " {\n \"data\" : { \"ev\" : [ {\"ts\" : 2.0e0 , \"data\":{\"x\":1E2}} ] , \"u\":\"\\u00e9\" } , \"v\":7 }\n",
                true,
            ),
            (r#"{"data":{"\u0065v":[{"no ts":1}]}}"#, true),
            (r#"{"data":{"ev":[5]}}"#, true),
            (r#"{"data":{"ev":[1],"ev":[2,3]}}"#, false),
            (r#"{"data":{"ev":{"not":"an array"},"z":0}}"#, false),
            (r#"{"data":{"x":1}}"#, false),
            (r#"{"data":[1],"data":{"ev":[]}}"#, false),
            (r#"{"seg":false,"data":{"ev":[7]}}"#, false),
            (r#"{"data":"nope"}"#, false),
        ] {
            assert_eq!(
                append_splice::locate_single(raw.as_bytes(), "ev").is_some(),
                as_stored,
                "{raw}"
            );
            let store = MemoryStore::new();
            store.put("k", raw.as_bytes()).unwrap();
            let w = append(&store, "k", &push, &s, 10).unwrap();
            // The oracle: parse, push, rebuild the envelope, print.
            let Value::Object(mut doc) = json::parse(raw.as_bytes()).unwrap() else {
                panic!()
            };
            let mut data = match doc.remove("data") {
                Some(Value::Object(o)) => o,
                _ => Object::new(),
            };
            let mut items = match data.get("ev") {
                Some(Value::Array(a)) => a.clone(),
                _ => Vec::new(),
            };
            items.push(element(1e15, &push));
            let hash = n_last_hash(items.len(), items.last().unwrap());
            data.insert("ev", Value::Array(items));
            let mut expected = Object::new();
            expected.insert("v", Value::Number(1.0));
            expected.insert("data", Value::Object(data));
            expected.insert("ts", Value::Number(1e15));
            expected.insert("hash", hash.as_str().into());
            assert_eq!(w, Written { hash, ts: 1e15 }, "{raw}");
            // Equal as JavaScript reads them (its key order included).
            let stored = json::parse(&store.get("k").unwrap().unwrap()).unwrap();
            assert_eq!(
                String::from_utf8(json::to_js_json(&stored)).unwrap(),
                String::from_utf8(json::to_js_json(&Value::Object(expected))).unwrap(),
                "{raw}"
            );
        }
    }
}
