//! Byte-level fast paths for appends: find where a stored log's array ends,
//! how many elements it has and its last element, without building the
//! document, then write the new version by splicing the new element in.
//!
//! An append to a single-document log would otherwise parse and re-print
//! the whole log (the official server does `JSON.parse` + `JSON.stringify`).
//! Splicing gives a document that parses to exactly the values the slow path
//! would write: the envelope is rebuilt (`{"v":1,"data":…,"ts":…,"hash":…}`),
//! only the bytes of `data` are reused, and they are validated while being
//! walked. Whenever the layout is not the plain one (a duplicate `data` or
//! field key, a `seg` head, a missing field, anything invalid) the walker
//! answers `None`; the caller then parses the log and prints it plainly.

use crate::proto::json::{self, scan_value, Value};

fn ws(s: &[u8], mut i: usize) -> usize {
    while i < s.len() && matches!(s[i], b' ' | b'\t' | b'\n' | b'\r') {
        i += 1;
    }
    i
}

/// A member key as JavaScript reads it: the raw bytes between the quotes
/// when they are plain UTF-8, else the parsed string.
fn key_text(quoted: &[u8]) -> Option<std::borrow::Cow<'_, str>> {
    let inner = &quoted[1..quoted.len() - 1];
    match std::str::from_utf8(inner) {
        Ok(t) if !t.contains('\\') => Some(t.into()),
        _ => match json::parse(quoted) {
            Ok(Value::String(s)) => Some(s.to_string_lossy().into()),
            _ => None,
        },
    }
}

/// Walk the object at `i` (after optional whitespace): `visit(key, value
/// start)` scans each member's value and returns its end; the offset past
/// `}`. `None` if it is not a valid object or `visit` gives up.
fn object_members(
    s: &[u8],
    i: usize,
    mut visit: impl FnMut(&str, usize) -> Option<usize>,
) -> Option<usize> {
    let mut i = ws(s, i);
    if s.get(i) != Some(&b'{') {
        return None;
    }
    i = ws(s, i + 1);
    if s.get(i) == Some(&b'}') {
        return Some(i + 1);
    }
    loop {
        if s.get(i) != Some(&b'"') {
            return None;
        }
        let key_end = scan_value(s, i).ok()?;
        let key = key_text(&s[i..key_end])?;
        i = ws(s, key_end);
        if s.get(i) != Some(&b':') {
            return None;
        }
        let end = visit(&key, ws(s, i + 1))?;
        i = ws(s, end);
        match s.get(i) {
            Some(b',') => i = ws(s, i + 1),
            Some(b'}') => return Some(i + 1),
            _ => return None,
        }
    }
}

fn skip(s: &[u8], i: usize) -> Option<usize> {
    scan_value(s, i).ok()
}

/// Where an array's elements end.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct ArrayTail {
    /// Elements in the array.
    pub count: usize,
    /// Span of the last element.
    pub last: Option<(usize, usize)>,
    /// Offset of the closing `]`.
    pub close: usize,
}

/// Walk the array at `i` (after optional whitespace).
pub(crate) fn array_tail(s: &[u8], i: usize) -> Option<ArrayTail> {
    let mut i = ws(s, i);
    if s.get(i) != Some(&b'[') {
        return None;
    }
    i = ws(s, i + 1);
    if s.get(i) == Some(&b']') {
        return Some(ArrayTail {
            count: 0,
            last: None,
            close: i,
        });
    }
    let mut count = 0;
    loop {
        let end = scan_value(s, i).ok()?;
        count += 1;
        let last = Some((i, end));
        i = ws(s, end);
        match s.get(i) {
            Some(b',') => i = ws(s, i + 1),
            Some(b']') => {
                return Some(ArrayTail {
                    count,
                    last,
                    close: i,
                })
            }
            _ => return None,
        }
    }
}

/// `raw` (an array) with `element` appended: the bytes up to the closing
/// `]`, the element, `]` (trailing whitespace dropped).
pub(crate) fn append_to_array(raw: &[u8], tail: &ArrayTail, element: &Value) -> Vec<u8> {
    let mut out = Vec::with_capacity(tail.close + 256);
    out.extend_from_slice(&raw[..tail.close]);
    if tail.count > 0 {
        out.push(b',');
    }
    json::write_js_json(&mut out, element);
    out.push(b']');
    out
}

/// A single-document log located in its stored bytes.
#[derive(Debug)]
pub(crate) struct SingleDoc<'a> {
    raw: &'a [u8],
    /// Span of `data`.
    data: (usize, usize),
    /// The field's array, offsets into `raw`.
    array: ArrayTail,
}

/// Locate `data[field]` in a stored single-document log: one `data` object
/// holding `field` once, as an array, no `seg` key, everything valid.
pub(crate) fn locate_single<'a>(raw: &'a [u8], field: &str) -> Option<SingleDoc<'a>> {
    let mut data = None;
    let mut data_seen = 0;
    let mut array = None;
    let mut array_seen = 0;
    let mut seg = false;
    // Every byte is scanned once: `data` and the field's array are walked
    // in place of being skipped.
    let end = object_members(raw, 0, |k, start| match k {
        "data" => {
            data_seen += 1;
            let end = object_members(raw, start, |k, v| {
                if k != field {
                    return skip(raw, v);
                }
                array_seen += 1;
                let t = array_tail(raw, v)?;
                array = Some(t);
                Some(t.close + 1)
            })?;
            data = Some((start, end));
            Some(end)
        }
        "seg" => {
            seg = true;
            skip(raw, start)
        }
        _ => skip(raw, start),
    })?;
    if ws(raw, end) != raw.len() || seg || data_seen != 1 || array_seen != 1 {
        return None;
    }
    Some(SingleDoc {
        raw,
        data: data?,
        array: array?,
    })
}

impl SingleDoc<'_> {
    /// Elements in the log.
    pub fn count(&self) -> usize {
        self.array.count
    }

    /// The last element, parsed.
    pub fn last(&self) -> Option<Value> {
        let (a, b) = self.array.last?;
        json::parse(&self.raw[a..b]).ok()
    }

    /// The new document: `{"v":1,"data":<data with element appended>,
    /// "ts":<ts>,"hash":"<hash>"}`.
    pub fn with_element(&self, element: &Value, ts: f64, hash: &str) -> Vec<u8> {
        let (a, b) = self.data;
        let close = self.array.close;
        let mut out = Vec::with_capacity(self.raw.len() + 256);
        out.extend_from_slice(br#"{"v":1,"data":"#);
        out.extend_from_slice(&self.raw[a..close]);
        if self.array.count > 0 {
            out.push(b',');
        }
        json::write_js_json(&mut out, element);
        out.extend_from_slice(&self.raw[close..b]);
        out.extend_from_slice(br#","ts":"#);
        json::write_js_json(&mut out, &Value::Number(ts));
        out.extend_from_slice(br#","hash":"#);
        json::write_js_json(&mut out, &Value::from(hash));
        out.push(b'}');
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn el(t: &str) -> Value {
        json::parse(t.as_bytes()).unwrap()
    }

    #[test]
    fn arrays() {
        let t = array_tail(b" [ ] ", 0).unwrap();
        assert_eq!((t.count, t.last, t.close), (0, None, 3));
        let raw = br#"[1, {"a":[2,3]} ,"x]"]"#;
        let t = array_tail(raw, 0).unwrap();
        assert_eq!(t.count, 3);
        let (a, b) = t.last.unwrap();
        assert_eq!(&raw[a..b], br#""x]""#);
        assert_eq!(
            append_to_array(raw, &t, &el("4")),
            br#"[1, {"a":[2,3]} ,"x]",4]"#
        );
        assert_eq!(
            append_to_array(b"[]", &array_tail(b"[]", 0).unwrap(), &el("{}")),
            b"[{}]"
        );
        for bad in [&b"[1,]"[..], b"[1", b"{}", b"[01]", b"[1 2]"] {
            assert_eq!(
                array_tail(bad, 0),
                None,
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn single_documents() {
        let raw = br#"{"v":1,"data":{"a":{"items":[0]},"items":[{"ts":1},{"ts":2}],"z":true},"ts":2,"hash":"h","x":null}"#;
        let d = locate_single(raw, "items").unwrap();
        assert_eq!(d.count(), 2);
        assert_eq!(d.last(), Some(el(r#"{"ts":2}"#)));
        assert_eq!(
            String::from_utf8(d.with_element(&el(r#"{"ts":3}"#), 3.0, "k")).unwrap(),
            r#"{"v":1,"data":{"a":{"items":[0]},"items":[{"ts":1},{"ts":2},{"ts":3}],"z":true},"ts":3,"hash":"k"}"#
        );
        // Whitespace (foreign writers) is kept inside data, dropped outside.
        let raw = b" { \"data\" : { \"items\" : [ ] } } ";
        let d = locate_single(raw, "items").unwrap();
        assert_eq!(
            String::from_utf8(d.with_element(&el("5"), 1.0, "h")).unwrap(),
            r#"{"v":1,"data":{ "items" : [ 5] },"ts":1,"hash":"h"}"#
        );
        // Anything else: the slow path.
        for raw in [
            &br#"{"data":{"items":[],"items":[]}}"#[..],
            br#"{"data":{},"data":{"items":[]}}"#,
            br#"{"seg":false,"data":{"items":[]}}"#,
            br#"{"data":{"items":{}}}"#,
            br#"{"data":{"other":[]}}"#,
            br#"{"data":[]}"#,
            br#"{"data":{"items":[]}} x"#,
            br#"{"data":{"items":[1,]}}"#,
            br#"[]"#,
        ] {
            assert!(
                locate_single(raw, "items").is_none(),
                "{}",
                String::from_utf8_lossy(raw)
            );
        }
        // Keys are compared as JavaScript reads them.
        for raw in [
            &br#"{"d\u0061ta":{"it\u0065ms":[1]}}"#[..],
            br#"{"data":{"a\"b":[1]}}"#,
        ] {
            let field = if raw.starts_with(br#"{"d\"#) {
                "items"
            } else {
                "a\"b"
            };
            assert_eq!(locate_single(raw, field).map(|d| d.count()), Some(1));
        }
        assert!(locate_single(br#"{"data":{"items":[],"it\u0065ms":[]}}"#, "items").is_none());
    }
}
