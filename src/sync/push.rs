//! Push: body checks in the official order, sanitising, the optional author
//! proof, and the optimistic-concurrency write (documents.md §5, wire.md §5).

use super::{doc, keys, SyncError};
use crate::proto::{
    canonical::stable_stringify,
    json::{self, Object, ParseError, Value},
    request_sig,
    sanitize::{deep_sanitize, sanitized, MAX_BODY_DEPTH},
};
use crate::store::{Pending, Store};

/// JavaScript `parseInt(value, 10)`: optional whitespace and sign, then the
/// leading digits; `None` for NaN.
pub fn parse_int_lenient(value: &str) -> Option<f64> {
    let t = crate::proto::encoding::js_trim(value);
    let (neg, digits) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let end = digits.bytes().take_while(u8::is_ascii_digit).count();
    if end == 0 {
        return None;
    }
    let n: f64 = digits[..end].parse().ok()?;
    Some(if neg { -n } else { n })
}

/// Step 6: the size check on the `Content-Length` header against the
/// collection's `maxBodyBytes` (no header, or no limit: no check).
pub fn check_content_length(
    header: Option<&str>,
    max_body_bytes: Option<f64>,
) -> Result<(), SyncError> {
    let Some(h) = header else { return Ok(()) };
    let n = match parse_int_lenient(h) {
        Some(n) if n >= 0.0 => n,
        _ => return Err(SyncError::InvalidContentLength),
    };
    match max_body_bytes {
        Some(max) if n > max => Err(SyncError::PayloadTooLarge),
        _ => Ok(()),
    }
}

/// Steps 8-10: content type, JSON object, nesting depth.
pub fn parse_json_body(content_type: Option<&str>, body: &[u8]) -> Result<Object, SyncError> {
    if !content_type.unwrap_or("").contains("application/json") {
        return Err(SyncError::JsonContentTypeRequired);
    }
    match json::parse_body(body, MAX_BODY_DEPTH) {
        Ok(Value::Object(o)) => Ok(o),
        Ok(_) | Err(ParseError::Syntax(_)) => Err(SyncError::BodyNotObject),
        Err(ParseError::TooDeep) => {
            // Valid JSON nested too deeply: still "not an object" first if
            // the top level is not an object.
            let text = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body);
            match text
                .iter()
                .find(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
            {
                Some(b'{') => Err(SyncError::BodyTooDeep),
                _ => Err(SyncError::BodyNotObject),
            }
        }
    }
}

/// A validated push.
#[derive(Clone, Debug)]
pub struct Push {
    /// The pushed data. It is sanitised here only when an author proof has
    /// to be verified over it; [`write`] stores it sanitised either way,
    /// after the `baseHash` check, so a stale push is refused before any
    /// sanitising, hashing or encoding.
    pub data: Object,
    /// `None` for `null` or absent: create only.
    pub base_hash: Option<String>,
    /// Verified `(authorPubkey, authorSignature)`.
    pub author: Option<(String, String)>,
}

/// Step 12.1-12.5: key safety, `data`, `baseHash`, sanitising, author proof;
/// then the key must be one the store can hold (the store would be next).
/// `presenter` is the request signer's key when a cap authenticated it.
///
/// Nothing after the `baseHash` type check can fail without an author
/// proof, so without one the data is left as it is (see [`Push::data`]).
pub fn validate(mut body: Object, key: &str, presenter: Option<&str>) -> Result<Push, SyncError> {
    if keys::is_unsafe_key(key) {
        return Err(SyncError::InvalidPathParameter);
    }
    let data = match body.remove("data") {
        Some(Value::Object(o)) => o,
        _ => return Err(SyncError::MissingData),
    };
    let base_hash = match body.get("baseHash") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.to_string_lossy()),
        Some(_) => return Err(SyncError::BadBaseHash),
    };
    let (data, author) = match (body.get("authorPubkey"), body.get("authorSignature")) {
        (None, None) => (data, None),
        (Some(Value::String(p)), Some(Value::String(s))) => {
            let data = deep_sanitize(data);
            let (p, s) = (p.to_string_lossy(), s.to_string_lossy());
            if presenter.is_some_and(|pr| pr != p) {
                return Err(SyncError::AuthorNotPresenter);
            }
            if !verify_author(&data, key, &p, &s) {
                return Err(SyncError::AuthorBadSignature);
            }
            (data, Some((p, s)))
        }
        _ => return Err(SyncError::AuthorProofIncomplete),
    };
    keys::check_storable(key)?;
    Ok(Push {
        data,
        base_hash,
        author,
    })
}

/// The domain tag of a document author proof.
pub const DOC_AUTHOR_DOMAIN: &str = "starfish-doc-author-v1\n";

/// An author proof input: `domain + stableStringify({"d":data,"k":key})`
/// (the append-only element proof uses the same shape under its own tag).
pub fn author_input(domain: &str, data: &Object, key: &str) -> String {
    let mut o = Object::with_capacity(2);
    o.insert("d", Value::Object(data.clone()));
    o.insert("k", key.into());
    format!("{domain}{}", stable_stringify(&Value::Object(o)))
}

/// The document author proof input: `"starfish-doc-author-v1\n" + stableStringify({"d":data,"k":key})`.
pub fn author_signing_input(data: &Object, key: &str) -> String {
    author_input(DOC_AUTHOR_DOMAIN, data, key)
}

fn verify_author(data: &Object, key: &str, pubkey: &str, sig: &str) -> bool {
    request_sig::verify_ed25519(pubkey, sig, author_signing_input(data, key).as_bytes())
}

/// A successful write.
#[derive(Clone, Debug, PartialEq)]
pub struct Written {
    pub hash: String,
    /// Milliseconds (an append's element `ts`, which a client may choose).
    pub ts: f64,
}

/// Step 12.6: compare `baseHash` with the stored hash and write. The caller
/// holds the key's lock; the write itself is a [`Store::swap`] from the
/// value read, so a writer elsewhere (another node on a shared database)
/// that wrote in between makes this push a `hash_mismatch`, never a lost
/// update.
pub fn write(store: &dyn Store, key: &str, push: &Push, now_ms: i64) -> Result<Written, SyncError> {
    let (written, pending) = write_deferred(store, key, push, now_ms)?;
    pending.wait()?;
    Ok(written)
}

/// [`write`] through [`Store::swap_deferred`]: answers before the write is
/// durable, with the [`Pending`] to await (still holding the key's lock)
/// before acknowledging it.
pub fn write_deferred(
    store: &dyn Store,
    key: &str,
    push: &Push,
    now_ms: i64,
) -> Result<(Written, Pending), SyncError> {
    let raw = store.get_shared(key)?;
    let current = doc::hash_of_shared(key, raw.as_ref());
    let ok = match (&push.base_hash, &current) {
        (None, None) => true,
        (None, Some(_)) => false,
        (Some(b), None) => b.is_empty(),
        (Some(b), Some(c)) => b == c,
    };
    if !ok {
        return Err(SyncError::HashMismatch);
    }
    let data = sanitized(&push.data);
    let author = push.author.as_ref().map(|(p, s)| (p.as_str(), s.as_str()));
    let (bytes, hash) = doc::encode_hashed(&data, now_ms as f64, author);
    let Some(pending) = store.swap_deferred(key, raw.as_deref(), &bytes)? else {
        return Err(SyncError::HashMismatch);
    };
    let written = Written {
        hash,
        ts: now_ms as f64,
    };
    Ok((written, pending))
}

/// A validated write of either kind, so that one store call runs both.
#[derive(Clone, Debug)]
pub enum Write {
    /// A document push.
    Document(Push),
    /// An append to an append-only log (`persist` collections).
    Append(Box<(super::append::AppendPush, super::append::AppendSettings)>),
}

impl Write {
    /// Run the write at `key`; the caller holds the key's lock.
    pub fn run(&self, store: &dyn Store, key: &str, now_ms: i64) -> Result<Written, SyncError> {
        match self {
            Write::Document(p) => write(store, key, p, now_ms),
            Write::Append(a) => super::append::append(store, key, &a.0, &a.1, now_ms),
        }
    }

    /// [`Write::run`], answering before a document push is durable: await
    /// the [`Pending`] (still holding the key's lock) before acknowledging.
    /// An append is durable when this returns.
    pub fn run_deferred(
        &self,
        store: &dyn Store,
        key: &str,
        now_ms: i64,
    ) -> Result<(Written, Option<Pending>), SyncError> {
        match self {
            Write::Document(p) => write_deferred(store, key, p, now_ms).map(|(w, p)| (w, Some(p))),
            Write::Append(_) => self.run(store, key, now_ms).map(|w| (w, None)),
        }
    }
}

/// What a push of a JSON body to `col` asks for.
#[derive(Debug)]
pub enum Plan {
    /// A write to run under the key's lock.
    Write(Write),
    /// Already answered: an append to a `persist: false` collection, which
    /// stores nothing.
    Done(Written),
}

/// Validate a push body for `col` at `key`: a document push or, for an
/// append-only collection, an append.
pub fn plan(
    col: &crate::config::CollectionConfig,
    body: Object,
    key: &str,
    presenter: Option<&str>,
    now_ms: i64,
) -> Result<Plan, SyncError> {
    use super::append;
    let Some(settings) = append::AppendSettings::of(col) else {
        return Ok(Plan::Write(Write::Document(validate(
            body, key, presenter,
        )?)));
    };
    let push = append::validate_push(body, &settings, key, presenter, now_ms)?;
    Ok(if settings.persist {
        Plan::Write(Write::Append(Box::new((push, settings))))
    } else {
        Plan::Done(append::unstored(&push, now_ms))
    })
}

/// The push answer `{"hash","timestamp"}`.
pub fn answer(w: &Written) -> Value {
    let mut o = Object::with_capacity(2);
    o.insert("hash", w.hash.as_str().into());
    o.insert("timestamp", Value::Number(w.ts));
    Value::Object(o)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemoryStore;

    fn obj(t: &str) -> Object {
        match json::parse(t.as_bytes()).unwrap() {
            Value::Object(o) => o,
            _ => panic!(),
        }
    }

    #[test]
    fn lenient_content_length() {
        assert_eq!(parse_int_lenient("12abc"), Some(12.0));
        assert_eq!(parse_int_lenient(" +5"), Some(5.0));
        assert_eq!(parse_int_lenient("-1"), Some(-1.0));
        assert_eq!(parse_int_lenient("abc"), None);
        assert!(matches!(
            check_content_length(Some("x"), Some(5.0)),
            Err(SyncError::InvalidContentLength)
        ));
        assert!(matches!(
            check_content_length(Some("6"), Some(5.0)),
            Err(SyncError::PayloadTooLarge)
        ));
        assert!(check_content_length(Some("6"), None).is_ok());
        assert!(check_content_length(None, Some(1.0)).is_ok());
    }

    #[test]
    fn body_checks_in_order() {
        assert!(matches!(
            parse_json_body(Some("text/plain"), b"{}"),
            Err(SyncError::JsonContentTypeRequired)
        ));
        assert!(matches!(
            parse_json_body(Some("APPLICATION/JSON"), b"{}"),
            Err(SyncError::JsonContentTypeRequired)
        ));
        assert!(parse_json_body(Some("application/jsonx"), b"{}").is_ok());
        assert!(parse_json_body(Some("application/json"), b"\xEF\xBB\xBF{}").is_ok());
        assert!(matches!(
            parse_json_body(Some("application/json"), b"[]"),
            Err(SyncError::BodyNotObject)
        ));
        let deep = "{\"a\":".repeat(64) + "1" + &"}".repeat(64);
        assert!(parse_json_body(Some("application/json"), deep.as_bytes()).is_ok());
        let deeper = "{\"a\":".repeat(65) + "1" + &"}".repeat(65);
        assert!(matches!(
            parse_json_body(Some("application/json"), deeper.as_bytes()),
            Err(SyncError::BodyTooDeep)
        ));
        let deep_array = "[".repeat(70) + &"]".repeat(70);
        assert!(matches!(
            parse_json_body(Some("application/json"), deep_array.as_bytes()),
            Err(SyncError::BodyNotObject)
        ));
    }

    #[test]
    fn validation() {
        assert!(matches!(
            validate(obj(r#"{"data":[]}"#), "k", None),
            Err(SyncError::MissingData)
        ));
        assert!(matches!(
            validate(obj(r#"{"data":{},"baseHash":1}"#), "k", None),
            Err(SyncError::BadBaseHash)
        ));
        assert!(matches!(
            validate(obj(r#"{"data":{},"authorPubkey":"x"}"#), "k", None),
            Err(SyncError::AuthorProofIncomplete)
        ));
        assert!(matches!(
            validate(obj(r#"{"data":{}}"#), "a//b", None),
            Err(SyncError::InvalidPathParameter)
        ));
        let p = validate(
            obj(r#"{"data":{"__proto__":1,"x":{"constructor":2}},"baseHash":null}"#),
            "k",
            None,
        )
        .unwrap();
        // Stored sanitised, and hashed as stored.
        let store = MemoryStore::new();
        let w = write(&store, "k", &p, 7).unwrap();
        let stored = store.get("k").unwrap().unwrap();
        assert_eq!(
            String::from_utf8(stored).unwrap(),
            format!(
                r#"{{"v":1,"data":{{"x":{{}}}},"ts":7,"hash":"{}"}}"#,
                w.hash
            )
        );
        assert_eq!(
            w.hash,
            crate::proto::hash::document_hash(&json::parse(br#"{"x":{}}"#).unwrap())
        );
        // An unstorable key is the protocol's 400, after the body checks.
        let long = format!("notes/{}", "a".repeat(201));
        assert!(matches!(
            validate(obj(r#"{"data":[]}"#), &long, None),
            Err(SyncError::MissingData)
        ));
        assert!(matches!(
            validate(obj(r#"{"data":{}}"#), &long, None),
            Err(SyncError::InvalidPathParameter)
        ));
    }

    #[test]
    fn work_is_linear_in_the_number_of_keys() {
        // parse + validate + write (sanitise, hash, encode) of n and 2n keys,
        // counted in key lookups and index operations: linear work doubles.
        let work = |n: usize, stale: bool| {
            let mut data = String::from("{");
            for i in 0..n {
                data.push_str(&format!("\"k{i}\":{{\"__proto__\":0,\"v\":{i}}},"));
            }
            data.push_str("\"__proto__\":1}");
            let base = if stale { "\"nope\"" } else { "null" };
            let body = format!(r#"{{"data":{data},"baseHash":{base}}}"#);
            let store = MemoryStore::new();
            let (result, units) = crate::proto::work::count(|| {
                let body = parse_json_body(Some("application/json"), body.as_bytes())?;
                let p = validate(body, "k", None)?;
                write(&store, "k", &p, 1)
            });
            assert_eq!(result.is_ok(), !stale);
            units
        };
        for stale in [false, true] {
            let (a, b) = (work(4096, stale), work(8192, stale));
            assert!(b <= 2 * a + 64, "stale {stale}: {a} -> {b} units");
        }
    }

    #[test]
    fn the_base_hash_check_does_not_parse_the_stored_document() {
        // An update's baseHash check reads the stored hash without building
        // the stored document: no work per stored key (parsing it would
        // count one unit per key while deduplicating).
        let store = MemoryStore::new();
        let keys: Vec<String> = (0..4096).map(|i| format!("\"k{i}\":{i}")).collect();
        let body = |base: &str| format!(r#"{{"data":{{{}}},"baseHash":{base}}}"#, keys.join(","));
        let create = validate(obj(&body("null")), "k", None).unwrap();
        let w = write(&store, "k", &create, 1).unwrap();
        let stale = validate(obj(&body(&format!("\"{}\"", "0".repeat(64)))), "k", None).unwrap();
        let (r, units) = crate::proto::work::count(|| write(&store, "k", &stale, 2));
        assert!(matches!(r, Err(SyncError::HashMismatch)));
        assert!(units < 64, "{units} units to refuse a stale baseHash");
        let update = validate(obj(&body(&format!("\"{}\"", w.hash))), "k", None).unwrap();
        assert_eq!(write(&store, "k", &update, 3).unwrap().hash, w.hash);
    }

    #[test]
    fn author_proofs() {
        let seed = [4u8; 32];
        let pubkey = request_sig::public_key_hex(&seed);
        let data = obj(r#"{"a":1}"#);
        let input = author_signing_input(&data, "users/u/doc");
        assert_eq!(
            input,
            "starfish-doc-author-v1\n{\"d\":{\"a\":1},\"k\":\"users/u/doc\"}"
        );
        use ed25519_dalek::Signer;
        let sig = crate::proto::encoding::b64_encode(
            &ed25519_dalek::SigningKey::from_bytes(&seed)
                .sign(input.as_bytes())
                .to_bytes(),
        );
        let body =
            format!(r#"{{"data":{{"a":1}},"authorPubkey":"{pubkey}","authorSignature":"{sig}"}}"#);
        assert!(validate(obj(&body), "users/u/doc", Some(&pubkey)).is_ok());
        assert!(
            validate(obj(&body), "users/u/doc", None).is_ok(),
            "public requests have no presenter"
        );
        assert!(matches!(
            validate(obj(&body), "users/u/doc", Some("ff")),
            Err(SyncError::AuthorNotPresenter)
        ));
        assert!(matches!(
            validate(obj(&body), "users/u/other", None),
            Err(SyncError::AuthorBadSignature)
        ));
    }

    #[test]
    fn optimistic_concurrency_table() {
        let store = MemoryStore::new();
        let push = |base: Option<&str>| Push {
            data: obj(r#"{"a":1}"#),
            base_hash: base.map(str::to_owned),
            author: None,
        };
        // none stored
        assert!(matches!(
            write(&store, "k1", &push(Some("x")), 1),
            Err(SyncError::HashMismatch)
        ));
        assert!(write(&store, "k1", &push(Some("")), 1).is_ok());
        let w = write(&store, "k2", &push(None), 1).unwrap();
        // stored with hash H
        assert!(matches!(
            write(&store, "k2", &push(None), 2),
            Err(SyncError::HashMismatch)
        ));
        assert!(matches!(
            write(&store, "k2", &push(Some("")), 2),
            Err(SyncError::HashMismatch)
        ));
        assert_eq!(
            write(&store, "k2", &push(Some(&w.hash)), 3).unwrap(),
            Written {
                hash: w.hash.clone(),
                ts: 3.0
            }
        );
        // unparseable
        store.put("k3", b"garbage").unwrap();
        assert!(matches!(
            write(&store, "k3", &push(None), 1),
            Err(SyncError::HashMismatch)
        ));
        assert!(write(&store, "k3", &push(Some("")), 1).is_ok());
    }
}
