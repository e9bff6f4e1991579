//! The segmented layout of append-only logs (`appendOnly.chunkSize`), as the
//! official server stores it, so a data directory moves between the two:
//!
//! * the **head** at the document key:
//!   `{"v":1,"seg":true,"data":{…other fields…},"n":N,"sealedN":S,"ts":T,
//!   "hash":"…","chunkSize":C,"tailKey":"<key>__seg/<16-digit first ts>"}`;
//! * **chunks** at `<key>__seg/<first element ts, zero-padded to 16 digits>`,
//!   each a JSON array of at most `chunkSize` elements; the last one (the
//!   head's `tailKey`) is open, the others sealed.
//!
//! An append reads the head and the open tail chunk, writes the tail (or a
//! new chunk when it is full), then the head: O(chunkSize), whatever the log
//! length. The chunk is written first, so a crash between the two writes
//! leaves the head one element behind but loses nothing written; the count
//! is re-derived from `sealedN` and the tail on the next append. Each write
//! is durable before the next starts, so an acknowledged append survives a
//! crash. A single-document log is migrated into chunks on its first append
//! after `chunkSize` is configured.
//!
//! A pull lists the chunk keys once (they sort by first `ts`) and reads only
//! the chunks a checkpoint or a `last` bound needs.

use super::append::{
    element, element_ts, n_last_hash, num, resolve_ts, AppendError, AppendPush, Bounds,
};
use super::append_splice::{append_to_array, array_tail, ArrayTail};
use super::push::Written;
use super::SyncError;
use crate::proto::canonical::js_number;
use crate::proto::json::{self, Object, Value};
use crate::store::{Store, StoreError};

/// Suffix of a document key that names its chunk prefix (a sibling of the
/// head key, not a child).
pub const SEG_SUFFIX: &str = "__seg/";
/// Zero-padding width of the first `ts` in a chunk key.
pub const TS_WIDTH: usize = 16;

/// The key prefix of `key`'s chunks.
pub fn seg_prefix(key: &str) -> String {
    format!("{key}{SEG_SUFFIX}")
}

/// The key of the chunk whose first element has `first_ts`; `None` unless
/// `first_ts` is a non-negative integer (the official server throws).
pub fn chunk_key(key: &str, first_ts: f64) -> Option<String> {
    if !(first_ts.is_finite() && first_ts.trunc() == first_ts && first_ts >= 0.0) {
        return None;
    }
    Some(format!(
        "{}{:0>width$}",
        seg_prefix(key),
        js_number(first_ts),
        width = TS_WIDTH
    ))
}

fn array_json(items: &[Value]) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 * items.len() + 2);
    out.push(b'[');
    for (i, v) in items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        json::write_js_json(&mut out, v);
    }
    out.push(b']');
    out
}

/// A stored chunk's elements (`[]` when missing, empty or not an array).
fn read_chunk(store: &dyn Store, key: &str, prefix: &str) -> Result<Vec<Value>, StoreError> {
    let Some(raw) = store.get(key)? else {
        return Ok(Vec::new());
    };
    if raw.is_empty() {
        return Ok(Vec::new());
    }
    match json::parse(&raw) {
        Ok(Value::Array(a)) => Ok(a),
        Ok(_) => Ok(Vec::new()),
        Err(_) => {
            log::error!("corrupt append-only chunk {key:?} under {prefix:?}; skipped");
            Ok(Vec::new())
        }
    }
}

/// The open tail chunk as stored bytes and where its array ends, so an
/// append splices the new element in instead of re-printing the chunk.
struct Tail {
    raw: Vec<u8>,
    at: ArrayTail,
}

impl Tail {
    fn empty() -> Tail {
        Tail::of(b"[]".to_vec()).expect("[] is an array")
    }

    /// `None` unless `raw` is exactly one JSON array (surrounding
    /// whitespace allowed).
    fn of(raw: Vec<u8>) -> Option<Tail> {
        let at = array_tail(&raw, 0)?;
        let end = raw[at.close + 1..]
            .iter()
            .all(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r'));
        end.then_some(Tail { raw, at })
    }

    /// Read the chunk at `key`: missing, empty, corrupt or not an array
    /// reads as empty (as upstream: `JSON.parse` failures give `[]`).
    fn read(store: &dyn Store, key: &str) -> Result<Tail, StoreError> {
        let Some(raw) = store.get(key)?.filter(|r| !r.is_empty()) else {
            return Ok(Tail::empty());
        };
        Ok(Tail::of(raw).unwrap_or_else(|| {
            log::warn!("append-only tail chunk {key:?} is not a JSON array; read as empty");
            Tail::empty()
        }))
    }

    fn len(&self) -> usize {
        self.at.count
    }

    /// The last element's `ts` (`None` when empty).
    fn latest(&self) -> Option<f64> {
        let (a, b) = self.at.last?;
        Some(json::parse(&self.raw[a..b]).map_or(-1.0, |el| element_ts(&el)))
    }
}

/// Append in the segmented layout. `head` is the already-read document
/// (`None`: missing or unreadable); `is_seg` whether it is a segmented head.
#[allow(clippy::too_many_arguments)]
pub(crate) fn append(
    store: &dyn Store,
    key: &str,
    head: Option<Object>,
    is_seg: bool,
    push: &AppendPush,
    field: &str,
    chunk_size: f64,
    now_ms: i64,
) -> Result<Written, SyncError> {
    let data;
    let mut sealed_n = 0.0;
    let mut tail_key: Option<String> = None;
    let mut tail = Tail::empty();
    let latest;
    match head {
        Some(mut h) if is_seg => {
            data = take_data(&mut h);
            tail_key = h
                .get("tailKey")
                .and_then(Value::as_str)
                .filter(|k| !k.is_empty())
                .map(str::to_owned);
            if let Some(tk) = &tail_key {
                tail = Tail::read(store, tk)?;
            }
            let len = tail.len() as f64;
            sealed_n =
                num(&h, "sealedN").unwrap_or_else(|| (num(&h, "n").unwrap_or(len) - len).max(0.0));
            latest = tail
                .latest()
                .unwrap_or_else(|| num(&h, "ts").unwrap_or(-1.0));
        }
        Some(mut h) if has_array(&h, field) => {
            // Lazy migration of a single-document log into sealed chunks.
            let mut d = take_data(&mut h);
            let Some(Value::Array(legacy)) = d.remove(field) else {
                unreachable!("checked by has_array")
            };
            data = d;
            let per_chunk = (chunk_size as usize).max(1); // saturating
            let num_full = legacy.len() / per_chunk;
            for chunk in legacy.chunks(per_chunk).take(num_full) {
                let ck = chunk_key(key, element_ts(&chunk[0])).ok_or(AppendError::Internal)?;
                store.put(&ck, &array_json(chunk))?;
            }
            latest = legacy.last().map_or(-1.0, element_ts);
            let sealed = num_full * per_chunk;
            sealed_n = sealed as f64;
            let rest = &legacy[sealed..];
            if let Some(first) = rest.first() {
                tail_key = Some(chunk_key(key, element_ts(first)).ok_or(AppendError::Internal)?);
                tail = Tail::of(array_json(rest)).expect("printed as an array");
            }
        }
        Some(mut h) => {
            data = take_data(&mut h);
            latest = -1.0;
        }
        None => {
            data = Object::new();
            latest = -1.0;
        }
    }
    let ts = resolve_ts(push.ts, latest, now_ms)?;
    let el = element(ts, push);
    let (write_key, bytes, new_sealed, new_n) = match tail_key {
        Some(tk) if (tail.len() as f64) < chunk_size => {
            let bytes = append_to_array(&tail.raw, &tail.at, &el);
            (tk, bytes, sealed_n, sealed_n + tail.len() as f64 + 1.0)
        }
        _ => {
            let sealed = sealed_n + tail.len() as f64;
            let bytes = array_json(std::slice::from_ref(&el));
            let ck = chunk_key(key, ts).ok_or(AppendError::Internal)?;
            (ck, bytes, sealed, sealed + 1.0)
        }
    };
    let hash = n_last_hash(new_n as usize, &el);
    store.put(&write_key, &bytes)?;
    let mut h = Object::with_capacity(9);
    h.insert("v", Value::Number(1.0));
    h.insert("seg", Value::Bool(true));
    h.insert("data", Value::Object(data));
    h.insert("n", Value::Number(new_n));
    h.insert("sealedN", Value::Number(new_sealed));
    h.insert("ts", Value::Number(ts));
    h.insert("hash", hash.as_str().into());
    h.insert("chunkSize", Value::Number(chunk_size));
    h.insert("tailKey", write_key.as_str().into());
    store.put(key, &json::to_js_json(&Value::Object(h)))?;
    Ok(Written { hash, ts })
}

fn take_data(h: &mut Object) -> Object {
    match h.remove("data") {
        Some(Value::Object(o)) => o,
        _ => Object::new(),
    }
}

fn has_array(h: &Object, field: &str) -> bool {
    matches!(
        h.get("data").and_then(|d| d.as_object()?.get(field)),
        Some(Value::Array(_))
    )
}

/// The elements of a segmented log that `bounds` can need, in order: the
/// chunks from the one holding the checkpoint on (the key list tells each
/// chunk's first `ts`), at most `ceil(last / chunkSize) + 1` of them from
/// the end. The caller trims precisely.
pub(crate) fn read_chunks(
    store: &dyn Store,
    key: &str,
    bounds: &Bounds,
    chunk_size: f64,
) -> Result<Vec<Value>, StoreError> {
    if bounds.last == Some(0.0) {
        return Ok(Vec::new());
    }
    let prefix = seg_prefix(key);
    let keys = store.list_keys(&prefix, None, usize::MAX)?;
    let mut start = 0;
    if bounds.checkpoint > 0.0 {
        if let Some(cp) = chunk_key(key, bounds.checkpoint) {
            start = keys
                .partition_point(|k| k.as_str() <= cp.as_str())
                .saturating_sub(1);
        }
    }
    let mut needed = &keys[start..];
    if let Some(last) = bounds.last {
        if last > 0.0 && chunk_size > 0.0 {
            let max_chunks = (last / chunk_size).ceil() + 1.0;
            if (needed.len() as f64) > max_chunks {
                needed = &needed[needed.len() - max_chunks as usize..];
            }
        }
    }
    let mut items = Vec::new();
    for k in needed {
        items.extend(read_chunk(store, k, &prefix)?);
    }
    Ok(items)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemoryStore;
    use crate::sync::append::{self, AppendSettings};

    fn settings(chunk: Option<f64>) -> AppendSettings {
        let mut s = AppendSettings::from_value(&json::parse(b"{}").unwrap()).unwrap();
        s.chunk_size = chunk;
        s.require_author_signature = false;
        s
    }

    fn push(i: usize) -> AppendPush {
        let Value::Object(item) = json::parse(format!(r#"{{"i":{i}}}"#).as_bytes()).unwrap() else {
            unreachable!()
        };
        AppendPush {
            item,
            author: None,
            ts: None,
        }
    }

    fn all(store: &dyn Store, key: &str) -> Vec<Value> {
        let b = Bounds {
            checkpoint: 0.0,
            last: None,
        };
        let r = append::read(store, key, "items", &b).unwrap();
        r.data.get("items").unwrap().as_array().unwrap().to_vec()
    }

    #[test]
    fn chunk_keys() {
        assert_eq!(
            chunk_key("ev/x", 1_700_000_000_000.0).as_deref(),
            Some("ev/x__seg/0001700000000000")
        );
        assert_eq!(
            chunk_key("k", -0.0).as_deref(),
            Some("k__seg/0000000000000000")
        );
        assert_eq!(chunk_key("k", -1.0), None);
        assert_eq!(chunk_key("k", 1.5), None);
    }

    #[test]
    fn segmented_appends_match_single_document_answers() {
        let seg = MemoryStore::new();
        let single = MemoryStore::new();
        for i in 0..23 {
            let a =
                append::append(&seg, "k", &push(i), &settings(Some(5.0)), 1000 + i as i64).unwrap();
            let b =
                append::append(&single, "k", &push(i), &settings(None), 1000 + i as i64).unwrap();
            assert_eq!(a, b, "same hash and ts at element {i}");
        }
        assert_eq!(all(&seg, "k"), all(&single, "k"));
        let keys = seg.list_keys("k__seg/", None, 100).unwrap();
        assert_eq!(keys.len(), 5, "{keys:?}");
        assert_eq!(keys[0], "k__seg/0000000000001000");
        let Value::Object(head) = json::parse(&seg.get("k").unwrap().unwrap()).unwrap() else {
            panic!()
        };
        assert_eq!(num(&head, "n"), Some(23.0));
        assert_eq!(num(&head, "sealedN"), Some(20.0));
        assert_eq!(
            head.get("tailKey").and_then(Value::as_str),
            Some("k__seg/0000000000001020")
        );
        // Bounded reads touch only what they need and trim exactly.
        for (cp, last) in [
            (1003.0, None),
            (1010.0, Some(2.0)),
            (0.0, Some(7.0)),
            (1022.0, None),
            (5.0, Some(0.0)),
        ] {
            let b = Bounds {
                checkpoint: cp,
                last,
            };
            assert_eq!(
                append::read(&seg, "k", "items", &b).unwrap().data,
                append::read(&single, "k", "items", &b).unwrap().data,
                "{cp} {last:?}"
            );
        }
    }

    #[test]
    fn a_single_document_log_migrates_and_a_segmented_one_stays_segmented() {
        let store = MemoryStore::new();
        for i in 0..7 {
            append::append(&store, "k", &push(i), &settings(None), 10 + i as i64).unwrap();
        }
        let before = all(&store, "k");
        append::append(&store, "k", &push(7), &settings(Some(3.0)), 100).unwrap();
        let keys = store.list_keys("k__seg/", None, 100).unwrap();
        assert_eq!(
            keys,
            [
                "k__seg/0000000000000010",
                "k__seg/0000000000000013",
                "k__seg/0000000000000016"
            ]
        );
        let after = all(&store, "k");
        assert_eq!(&after[..7], &before[..]);
        assert_eq!(after.len(), 8);
        // chunkSize removed from the config: still segmented (no orphaned chunks).
        append::append(&store, "k", &push(8), &settings(None), 101).unwrap();
        assert_eq!(all(&store, "k").len(), 9);
        assert!(store.get("k__seg/0000000000000016").unwrap().is_some());
    }

    #[test]
    fn a_tail_chunk_that_is_not_an_array_reads_as_empty() {
        // Only a foreign writer leaves such a chunk; the official server
        // throws (a 500) on its next append.
        let store = MemoryStore::new();
        append::append(&store, "k", &push(0), &settings(Some(3.0)), 10).unwrap();
        store
            .put("k__seg/0000000000000010", br#"{"not":"an array"}"#)
            .unwrap();
        let a = append::append(&store, "k", &push(1), &settings(Some(3.0)), 20).unwrap();
        assert_eq!(a.ts, 20.0, "latest falls back to the head's ts");
        assert_eq!(
            store.get("k__seg/0000000000000010").unwrap().unwrap(),
            br#"[{"ts":20,"data":{"i":1}}]"#
        );
        assert_eq!(all(&store, "k").len(), 1);
    }

    #[test]
    fn a_head_one_element_behind_self_corrects() {
        let store = MemoryStore::new();
        for i in 0..4 {
            append::append(&store, "k", &push(i), &settings(Some(10.0)), 10 + i as i64).unwrap();
        }
        let head_before = store.get("k").unwrap().unwrap();
        append::append(&store, "k", &push(4), &settings(Some(10.0)), 20).unwrap();
        // Simulate a crash between the chunk write and the head write.
        store.put("k", &head_before).unwrap();
        let a = append::append(&store, "k", &push(5), &settings(Some(10.0)), 30).unwrap();
        let Value::Object(head) = json::parse(&store.get("k").unwrap().unwrap()).unwrap() else {
            panic!()
        };
        assert_eq!(num(&head, "n"), Some(6.0), "count re-derived from the tail");
        assert_eq!(all(&store, "k").len(), 6);
        assert_eq!(a.ts, 30.0);
    }
}
