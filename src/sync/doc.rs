//! The stored document envelope and the pull answer (documents.md §1, §6).
//!
//! Documents are stored as the official server stores them,
//! `{"v":1,"data":{…},"ts":<ms>,"hash":"<hex>"[,"authorPubkey","authorSignature"]}`,
//! so a data directory can move between implementations.

use crate::proto::json::{self, Object, Value};
use crate::store::{Store, StoreError};

/// A document as read back from the store.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredDoc {
    pub data: Value,
    /// `None` when the stored object has no `hash` field (foreign writers).
    pub hash: Option<Value>,
    pub ts: f64,
    pub author_pubkey: Option<Value>,
    pub author_signature: Option<Value>,
}

impl StoredDoc {
    /// The hash as a string (`""` when absent or not a string).
    pub fn hash_str(&self) -> &str {
        self.hash.as_ref().and_then(Value::as_str).unwrap_or("")
    }
}

/// How a stored value reads back.
#[derive(Debug)]
pub enum Read {
    Missing,
    /// Present but not a JSON object: pulls treat it as missing, pushes as
    /// present with hash `""`.
    Corrupt,
    Doc(StoredDoc),
}

/// Parse the raw stored text.
pub fn decode(raw: &[u8]) -> Read {
    if raw.is_empty() {
        return Read::Missing;
    }
    let Ok(Value::Object(mut o)) = json::parse(raw) else {
        return Read::Corrupt;
    };
    let non_empty =
        |v: Option<Value>| v.filter(|v| !matches!(v, Value::Null) && v.as_str() != Some(""));
    Read::Doc(StoredDoc {
        data: o.remove("data").unwrap_or(Value::Null),
        hash: o.remove("hash"),
        ts: o.get("ts").and_then(Value::as_f64).unwrap_or(0.0),
        author_pubkey: non_empty(o.remove("authorPubkey")),
        author_signature: non_empty(o.remove("authorSignature")),
    })
}

/// Read and decode the document at `key`. A corrupt value is logged.
pub fn read(store: &dyn Store, key: &str) -> Result<Read, StoreError> {
    let read = match store.get(key)? {
        None => Read::Missing,
        Some(raw) => decode(&raw),
    };
    if matches!(read, Read::Corrupt) {
        log::warn!("stored document at {key:?} is not valid JSON; served as missing");
    }
    Ok(read)
}

/// Encode the stored envelope.
pub fn encode(data: &Object, ts: f64, hash: &str, author: Option<(&str, &str)>) -> Vec<u8> {
    let mut o = Object::with_capacity(6);
    o.insert("v", Value::Number(1.0));
    o.insert("data", Value::Object(data.clone()));
    o.insert("ts", Value::Number(ts));
    o.insert("hash", hash.into());
    if let Some((pubkey, sig)) = author {
        o.insert("authorPubkey", pubkey.into());
        o.insert("authorSignature", sig.into());
    }
    json::to_js_json(&Value::Object(o))
}

fn empty_data() -> Value {
    Value::Object(Object::new())
}

/// The pull answer: `{"data","hash","timestamp"[,author fields][,"keyring"]}`.
/// `keyring` is `None` when the flag is off, `Some(None)` for
/// `"keyring":null`.
pub fn pull_answer(
    doc: Option<&StoredDoc>,
    now_ms: i64,
    keyring: Option<Option<&StoredDoc>>,
) -> Value {
    let mut o = Object::with_capacity(6);
    let now = Value::Number(now_ms as f64);
    match doc {
        None => {
            o.insert("data", empty_data());
            o.insert("hash", "".into());
            o.insert("timestamp", now.clone());
        }
        Some(d) => {
            o.insert("data", d.data.clone());
            if let Some(h) = &d.hash {
                o.insert("hash", h.clone());
            }
            o.insert("timestamp", now.clone());
            if let Some(p) = &d.author_pubkey {
                o.insert("authorPubkey", p.clone());
            }
            if let Some(s) = &d.author_signature {
                o.insert("authorSignature", s.clone());
            }
        }
    }
    if let Some(k) = keyring {
        let v = match k {
            None => Value::Null,
            Some(d) => {
                let mut ko = Object::with_capacity(3);
                ko.insert("data", d.data.clone());
                // A stored object without `hash` has none here either
                // (`parsed.hash` is `undefined` in the official server).
                if let Some(h) = &d.hash {
                    ko.insert("hash", h.clone());
                }
                ko.insert("timestamp", now);
                Value::Object(ko)
            }
        };
        o.insert("keyring", v);
    }
    Value::Object(o)
}

/// A bundle member or batch entry: `{"data","hash"}` plus `timestamp` when
/// given. A missing document has hash `""`; a stored object without a
/// `hash` field has no `hash` key (documents.md §1).
pub fn entry_answer(doc: Option<&StoredDoc>, timestamp: Option<i64>) -> Value {
    let mut o = Object::with_capacity(3);
    match doc {
        Some(d) => {
            o.insert("data", d.data.clone());
            if let Some(h) = &d.hash {
                o.insert("hash", h.clone());
            }
        }
        None => {
            o.insert("data", empty_data());
            o.insert("hash", "".into());
        }
    }
    if let Some(ts) = timestamp {
        o.insert("timestamp", Value::Number(ts as f64));
    }
    Value::Object(o)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_round_trip() {
        let Value::Object(data) = json::parse(br#"{"b":1,"2":1}"#).unwrap() else {
            unreachable!()
        };
        let raw = encode(&data, 5.0, "ab", None);
        assert_eq!(raw, br#"{"v":1,"data":{"2":1,"b":1},"ts":5,"hash":"ab"}"#);
        let Read::Doc(d) = decode(&raw) else { panic!() };
        assert_eq!(d.hash_str(), "ab");
        assert_eq!(
            json::to_js_json(&pull_answer(Some(&d), 9, None)),
            br#"{"data":{"2":1,"b":1},"hash":"ab","timestamp":9}"#
        );
    }

    #[test]
    fn missing_corrupt_and_hashless() {
        assert!(matches!(decode(b""), Read::Missing));
        assert!(matches!(decode(b"{nope"), Read::Corrupt));
        assert!(matches!(decode(b"[1]"), Read::Corrupt));
        let Read::Doc(d) = decode(br#"{"data":{"a":1}}"#) else {
            panic!()
        };
        assert_eq!(
            json::to_js_json(&pull_answer(Some(&d), 1, Some(None))),
            br#"{"data":{"a":1},"timestamp":1,"keyring":null}"#
        );
        assert_eq!(
            json::to_js_json(&pull_answer(None, 1, None)),
            br#"{"data":{},"hash":"","timestamp":1}"#
        );
    }
}
