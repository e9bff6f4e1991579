//! The stored document envelope and the pull answer (documents.md §1, §6).
//!
//! Documents are stored as the official server stores them,
//! `{"v":1,"data":{…},"ts":<ms>,"hash":"<hex>"[,"authorPubkey","authorSignature"]}`,
//! so a data directory can move between implementations.
//!
//! A pull of such an envelope is not parsed: [`Envelope`] checks the stored
//! bytes once (valid JSON data, integer `ts`, 64-hex hash) and remembers
//! where `data` and the hash are in the stored value's memo
//! ([`SharedDoc::memo`]), so the answer is spliced from the stored bytes
//! ([`PULL_ANSWER_HEAD`], the data, [`pull_answer_tail`]) with the same bytes
//! the parse-and-print path ([`pull_answer`]) gives.

use crate::proto::json::{self, Object, Value};
use crate::store::{SharedDoc, Store, StoreError};
use std::ops::Range;

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
    Ok(decode_stored(key, store.get_shared(key)?.as_deref()))
}

/// Decode what the store returned for `key` (`None`: nothing stored),
/// logging a corrupt value.
pub fn decode_stored(key: &str, raw: Option<&[u8]>) -> Read {
    let read = raw.map_or(Read::Missing, decode);
    if matches!(read, Read::Corrupt) {
        log::warn!("stored document at {key:?} is not valid JSON; served as missing");
    }
    read
}

/// Encode the stored envelope: `JSON.stringify({v:1,data,ts,hash,...})`,
/// written straight out (the data is not copied).
pub fn encode(data: &Object, ts: f64, hash: &str, author: Option<(&str, &str)>) -> Vec<u8> {
    use crate::proto::canonical::{write_object, KeyOrder};
    let mut out = Vec::with_capacity(128);
    out.extend_from_slice(br#"{"v":1,"data":"#);
    write_object(&mut out, data, KeyOrder::JavaScript);
    finish_envelope(out, ts, hash, author)
}

/// [`encode`] of a new version together with its document hash
/// ([`crate::proto::hash::object_hash`]), printing the data once for both
/// (see [`crate::proto::json::write_object_both_orders`]).
pub fn encode_hashed(data: &Object, ts: f64, author: Option<(&str, &str)>) -> (Vec<u8>, String) {
    let mut canonical = Vec::new();
    let mut out = Vec::with_capacity(128);
    out.extend_from_slice(br#"{"v":1,"data":"#);
    crate::proto::json::write_object_both_orders(&mut canonical, &mut out, data);
    let hash = crate::proto::hash::sha256_hex(&canonical);
    drop(canonical);
    (finish_envelope(out, ts, &hash, author), hash)
}

/// The envelope after `data`: `ts`, `hash` and the author fields.
fn finish_envelope(mut out: Vec<u8>, ts: f64, hash: &str, author: Option<(&str, &str)>) -> Vec<u8> {
    use crate::proto::canonical::write_quoted;
    out.extend_from_slice(br#","ts":"#);
    out.extend_from_slice(crate::proto::canonical::js_number(ts).as_bytes());
    out.extend_from_slice(br#","hash":"#);
    write_quoted(&mut out, hash.as_bytes());
    if let Some((pubkey, sig)) = author {
        out.extend_from_slice(br#","authorPubkey":"#);
        write_quoted(&mut out, pubkey.as_bytes());
        out.extend_from_slice(br#","authorSignature":"#);
        write_quoted(&mut out, sig.as_bytes());
    }
    out.push(b'}');
    out
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

/// Where the parts of an envelope written exactly as this server (and the
/// official one) writes it, `{"v":1,"data":<object>,"ts":<int>,"hash":"<64
/// hex>"}`, sit in its bytes: the `data` text and the hash. Found by
/// [`Envelope::find`], which checks the data to be valid JSON (without
/// building it) and `ts` to be a JSON integer, so the whole text is JSON and
/// reads back the same through [`decode`]; anything else (author fields,
/// foreign formats) has none.
///
/// A stored [`SharedDoc`] is checked once ([`Envelope::of`] keeps the
/// answer in the value's memo): every later pull of the same stored value
/// splices the answer from these offsets without reading the bytes again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Envelope {
    data_start: usize,
    data_end: usize,
    hash_start: usize,
}

/// Hex digits of our hashes.
const HASH_LEN: usize = 64;

impl Envelope {
    /// Check `raw` (one validating scan) and locate its parts.
    pub fn find(raw: &[u8]) -> Option<Envelope> {
        const PREFIX: &[u8] = br#"{"v":1,"data":"#;
        const HASH_KEY: &[u8] = br#","hash":""#;
        const TS_KEY: &[u8] = br#","ts":"#;
        let rest = raw.strip_prefix(PREFIX)?.strip_suffix(b"\"}")?;
        let (before_hash, hash) = rest.split_at(rest.len().checked_sub(HASH_LEN)?);
        if !hash.iter().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return None;
        }
        let before_hash = before_hash.strip_suffix(HASH_KEY)?;
        let ts_at = before_hash
            .windows(TS_KEY.len())
            .rposition(|w| w == TS_KEY)?;
        let digits = &before_hash[ts_at + TS_KEY.len()..];
        if digits.is_empty()
            || !digits.iter().all(u8::is_ascii_digit)
            || (digits.len() > 1 && digits[0] == b'0')
        {
            return None;
        }
        let data = &before_hash[..ts_at];
        if data.first() != Some(&b'{') || !json::is_valid(data) {
            return None;
        }
        Some(Envelope {
            data_start: PREFIX.len(),
            data_end: PREFIX.len() + ts_at,
            hash_start: raw.len() - 2 - HASH_LEN,
        })
    }

    /// [`Envelope::find`] of a stored value, computed on its first call
    /// and remembered with the value ([`SharedDoc::memo`]).
    pub fn of(doc: &SharedDoc) -> Option<Envelope> {
        let to_u32 = |n: usize| u32::try_from(n).ok();
        let [data_start, data_end, hash_start, _] = doc.memo(|raw| {
            let e = Envelope::find(raw)?;
            Some([
                to_u32(e.data_start)?,
                to_u32(e.data_end)?,
                to_u32(e.hash_start)?,
                0,
            ])
        })?;
        Some(Envelope {
            data_start: data_start as usize,
            data_end: data_end as usize,
            hash_start: hash_start as usize,
        })
    }

    /// The `data` text (a JSON object, as `JSON.stringify` printed it).
    pub fn data(&self) -> Range<usize> {
        self.data_start..self.data_end
    }

    /// The hash (64 lowercase hex digits).
    pub fn hash(&self) -> Range<usize> {
        self.hash_start..self.hash_start + HASH_LEN
    }

    /// The hash in double quotes, as it stands in the envelope: the pull's
    /// `ETag` value.
    pub fn etag(&self) -> Range<usize> {
        self.hash_start - 1..self.hash_start + HASH_LEN + 1
    }
}

/// What a spliced pull answer starts with; the stored `data` text follows,
/// then [`pull_answer_tail`].
pub const PULL_ANSWER_HEAD: &[u8] = br#"{"data":"#;

/// The end of a spliced pull answer: `,"hash":"<hash>","timestamp":<now>}`.
pub fn pull_answer_tail(hash: &[u8], now_ms: i64) -> Vec<u8> {
    let mut out = Vec::with_capacity(hash.len() + 40);
    out.extend_from_slice(br#","hash":""#);
    out.extend_from_slice(hash);
    out.extend_from_slice(br#"","timestamp":"#);
    push_int(&mut out, now_ms);
    out.push(b'}');
    out
}

/// The decimal digits of `n` (what `n.to_string()` gives), without a
/// `String`.
fn push_int(out: &mut Vec<u8>, n: i64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    let mut v = n.unsigned_abs();
    loop {
        i -= 1;
        digits[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    if n < 0 {
        out.push(b'-');
    }
    out.extend_from_slice(&digits[i..]);
}

/// The pull answer straight from the stored bytes, without parsing and
/// re-printing the document, when the envelope is exactly the one this
/// server (and the official one) writes ([`Envelope`]). The stored `data`
/// text is already `JSON.stringify` output, so splicing it gives the same
/// bytes as the slow path: [`PULL_ANSWER_HEAD`], the data,
/// [`pull_answer_tail`]. Returns the body and the hash; `None` means "use
/// [`decode`]" (author fields, foreign formats, anything unexpected). The
/// server writes the same pieces without joining them (the stored data
/// straight from the store's memory); this joined form is the reference.
pub fn splice_pull_answer(raw: &[u8], now_ms: i64) -> Option<(Vec<u8>, String)> {
    let e = Envelope::find(raw)?;
    let hash = &raw[e.hash()];
    let mut out = Vec::with_capacity(e.data().len() + 120);
    out.extend_from_slice(PULL_ANSWER_HEAD);
    out.extend_from_slice(&raw[e.data()]);
    out.extend_from_slice(&pull_answer_tail(hash, now_ms));
    Some((out, String::from_utf8_lossy(hash).into_owned()))
}

/// The stored hash at `key` as a push's `baseHash` check sees it: `None`
/// when nothing is stored, `""` for a corrupt value or one without a string
/// hash, else the hash; the same answer as [`read`] and
/// [`StoredDoc::hash_str`]. Our own envelope is not parsed into a document
/// ([`Envelope`]: one validating scan, none when the stored value was
/// checked before), so the check costs a fraction of the push it may
/// refuse.
pub fn read_hash(store: &dyn Store, key: &str) -> Result<Option<String>, StoreError> {
    Ok(hash_of_shared(key, store.get_shared(key)?.as_ref()))
}

/// The hash a push compares `baseHash` with, of the raw stored value
/// (as [`read_hash`]).
pub fn hash_of(key: &str, raw: Option<&[u8]>) -> Option<String> {
    let raw = raw?;
    if let Some(e) = Envelope::find(raw) {
        return Some(String::from_utf8_lossy(&raw[e.hash()]).into_owned());
    }
    hash_of_other(key, raw)
}

/// [`hash_of`] of a stored value, checked once ([`Envelope::of`]).
pub fn hash_of_shared(key: &str, doc: Option<&SharedDoc>) -> Option<String> {
    let doc = doc?;
    if let Some(e) = Envelope::of(doc) {
        return Some(String::from_utf8_lossy(&doc[e.hash()]).into_owned());
    }
    hash_of_other(key, doc)
}

/// [`hash_of`] of a value that is not our own envelope.
fn hash_of_other(key: &str, raw: &[u8]) -> Option<String> {
    match decode_stored(key, Some(raw)) {
        Read::Missing => None,
        Read::Corrupt => Some(String::new()),
        Read::Doc(d) => Some(d.hash_str().to_owned()),
    }
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
        // The same bytes as JSON.stringify of the envelope object.
        let mut o = Object::new();
        o.insert("v", Value::Number(1.0));
        o.insert("data", Value::Object(data.clone()));
        o.insert("ts", Value::Number(1.5e21));
        o.insert("hash", "h\"".into());
        o.insert("authorPubkey", "p".into());
        o.insert("authorSignature", "s\u{1}".into());
        assert_eq!(
            encode(&data, 1.5e21, "h\"", Some(("p", "s\u{1}"))),
            json::to_js_json(&Value::Object(o))
        );
        let Read::Doc(d) = decode(&raw) else { panic!() };
        assert_eq!(d.hash_str(), "ab");
        assert_eq!(
            json::to_js_json(&pull_answer(Some(&d), 9, None)),
            br#"{"data":{"2":1,"b":1},"hash":"ab","timestamp":9}"#
        );
    }

    #[test]
    fn splicing_gives_the_same_bytes_as_parsing() {
        let data_texts = [
            r#"{}"#,
            r#"{"b":1,"2":[1.5,"x\u0001"],"a":{"ts":1,"hash":"x"}}"#,
            r#"{"s":"\ud800 é"}"#,
        ];
        for t in data_texts {
            let Value::Object(data) = json::parse(t.as_bytes()).unwrap() else {
                unreachable!()
            };
            let hash = crate::proto::hash::document_hash(&Value::Object(data.clone()));
            let raw = encode(&data, 17.0, &hash, None);
            let Read::Doc(d) = decode(&raw) else { panic!() };
            let slow = json::to_js_json(&pull_answer(Some(&d), 99, None));
            let (fast, h) = splice_pull_answer(&raw, 99).expect("our own envelope splices");
            assert_eq!(
                String::from_utf8(fast).unwrap(),
                String::from_utf8(slow).unwrap()
            );
            assert_eq!(h, hash);
        }
        let Value::Object(data) = json::parse(br#"{"a":1}"#).unwrap() else {
            unreachable!()
        };
        let with_author = encode(&data, 1.0, &"a".repeat(64), Some(("pk", "sig")));
        assert!(
            splice_pull_answer(&with_author, 1).is_none(),
            "author fields take the slow path"
        );
        let torn = br#"{"v":1,"data":{"a":[1,},"ts":5,"hash":"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"}"#;
        assert!(
            splice_pull_answer(torn, 1).is_none(),
            "invalid data is never served raw"
        );
        assert!(splice_pull_answer(b"{}", 1).is_none());
    }

    #[test]
    fn integers_print_as_to_string_does() {
        for n in [
            0,
            7,
            9,
            10,
            99,
            100,
            -1,
            -10,
            1_733_300_000_123,
            i64::MIN,
            i64::MAX,
        ] {
            let mut out = Vec::new();
            push_int(&mut out, n);
            assert_eq!(String::from_utf8(out).unwrap(), n.to_string());
        }
    }

    #[test]
    fn a_stored_envelope_is_checked_once() {
        let Value::Object(data) = json::parse(br#"{"a":[1,{"ts":2}]}"#).unwrap() else {
            unreachable!()
        };
        let hash = crate::proto::hash::object_hash(&data);
        let raw = encode(&data, 5.0, &hash, None);
        let shared = SharedDoc::new(raw.clone());
        let e = Envelope::of(&shared).expect("our own envelope");
        assert_eq!(Some(e), Envelope::find(&raw));
        assert_eq!(&raw[e.data()], br#"{"a":[1,{"ts":2}]}"#);
        assert_eq!(&raw[e.hash()], hash.as_bytes());
        assert_eq!(raw[e.etag()], *format!("\"{hash}\"").as_bytes());
        // The memo answers from now on (a second scan would give the same).
        assert_eq!(
            shared.memo(|_| unreachable!()).map(|m| m[0] as usize),
            Some(e.data().start)
        );
        let foreign = SharedDoc::new(br#"{"data":{"a":1},"hash":"x"}"#.to_vec());
        assert_eq!(Envelope::of(&foreign), None);
        assert_eq!(Envelope::of(&foreign), None);
        assert_eq!(hash_of_shared("k", Some(&foreign)).as_deref(), Some("x"));
        assert_eq!(hash_of_shared("k", Some(&shared)), Some(hash));
    }

    #[test]
    fn encode_hashed_is_encode_with_the_object_hash() {
        let texts: [&[u8]; 5] = [
            br#"{}"#,
            br#"{"b":1,"a":"x","10":true,"2":null,"__z":-0.5}"#,
            br#"{"z":{"y":1,"x":[{"d":1,"c":2}],"1":0},"a":[3,{"q":{"p":1,"o":2}}],"m":"\u00e9\n"}"#,
            br#"{"dup":1,"k":2,"dup":3}"#,
            br#"{"k0":0,"k1":1,"k2":2,"k3":3,"k4":4,"k5":5,"k6":6,"k7":7,"k8":8,"k9":9,"ka":10,"kb":{"y":1,"x":2},"kc":12,"kd":13,"ke":14,"kf":15,"kg":16,"3":17}"#,
        ];
        for text in texts {
            let Value::Object(data) = json::parse(text).unwrap() else {
                unreachable!()
            };
            for author in [None, Some(("pk", "sig"))] {
                let (bytes, hash) = encode_hashed(&data, 7.0, author);
                assert_eq!(hash, crate::proto::hash::object_hash(&data));
                assert_eq!(bytes, encode(&data, 7.0, &hash, author));
            }
        }
    }

    #[test]
    fn read_hash_answers_like_a_full_read() {
        use crate::store::MemoryStore;
        let h = "a".repeat(64);
        let Value::Object(data) = json::parse(br#"{"a":[1,{"ts":2}]}"#).unwrap() else {
            unreachable!()
        };
        let stored: Vec<Vec<u8>> = vec![
            encode(&data, 5.0, &h, None),
            encode(&data, 1.5e21, &h, None),
            encode(&data, 5.0, &h, Some(("pk", "sig"))),
            encode(&data, 5.0, "short", None),
            format!(r#"{{"v":1,"data":{{"a":1}},"ts":05,"hash":"{h}"}}"#).into_bytes(),
            format!(r#"{{"v":1,"data":{{"a":[1,}},"ts":5,"hash":"{h}"}}"#).into_bytes(),
            br#"{"data":{"a":1},"hash":7}"#.to_vec(),
            br#"{"data":{"a":1}}"#.to_vec(),
            b"[1]".to_vec(),
            b"{nope".to_vec(),
            Vec::new(),
        ];
        let store = MemoryStore::new();
        assert_eq!(read_hash(&store, "k").unwrap(), None);
        for raw in stored {
            store.put("k", &raw).unwrap();
            let full = match read(&store, "k").unwrap() {
                Read::Missing => None,
                Read::Corrupt => Some(String::new()),
                Read::Doc(d) => Some(d.hash_str().to_owned()),
            };
            assert_eq!(
                read_hash(&store, "k").unwrap(),
                full,
                "{}",
                String::from_utf8_lossy(&raw)
            );
        }
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
