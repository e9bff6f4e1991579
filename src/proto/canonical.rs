//! Canonical JSON (`stableStringify`): the text every Starfish hash and
//! signature is computed over.
//!
//! Objects print their keys sorted by Unicode code point (byte order of the
//! WTF-8 keys), numbers print as JavaScript's `Number.prototype.toString`,
//! strings are escaped as `JSON.stringify` escapes them, and there is no
//! whitespace.
//!
//! ```
//! use starfish::proto::{canonical::stable_stringify, json::parse};
//! let v = parse(br#"{"b":[1.0,1e21],"a":"\u00e9"}"#).unwrap();
//! assert_eq!(stable_stringify(&v), r#"{"a":"é","b":[1,1e+21]}"#);
//! ```

use super::json::{JsString, Object, Value};

/// `stableStringify(v)` as a UTF-8 string (lone surrogates are escaped, so
/// the output is always valid UTF-8).
pub fn stable_stringify(v: &Value) -> String {
    let mut out = Vec::new();
    write_canonical(&mut out, v);
    // Every byte written is either ASCII, copied from valid UTF-8 sequences
    // of a WTF-8 string, or an escape; lone surrogates are always escaped.
    String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// Append `stableStringify(v)` to `out`.
pub fn write_canonical(out: &mut Vec<u8>, v: &Value) {
    write_value(out, v, KeyOrder::Sorted);
}

/// How object keys are ordered on output.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyOrder {
    /// By code point (`stableStringify`).
    Sorted,
    /// JavaScript property order (`JSON.stringify`).
    JavaScript,
}

/// Append `v` as compact JSON with JavaScript scalars and the given key order.
pub fn write_value(out: &mut Vec<u8>, v: &Value, order: KeyOrder) {
    match v {
        Value::Object(o) => write_object(out, o, order),
        Value::Array(a) => {
            out.push(b'[');
            for (n, v) in a.iter().enumerate() {
                if n > 0 {
                    out.push(b',');
                }
                write_value(out, v, order);
            }
            out.push(b']');
        }
        scalar => write_scalar(out, scalar),
    }
}

/// Append an object as [`write_value`] would print it as a value (without
/// copying it into one). Sorting keys is O(k log k) per object.
pub fn write_object(out: &mut Vec<u8>, o: &Object, order: KeyOrder) {
    out.push(b'{');
    let mut member = |n: usize, k: &JsString, v: &Value| {
        if n > 0 {
            out.push(b',');
        }
        write_quoted(out, k.as_bytes());
        out.push(b':');
        write_value(out, v, order);
    };
    match order {
        KeyOrder::JavaScript => {
            for (n, (k, v)) in o.iter_js_order().into_iter().enumerate() {
                member(n, k, v);
            }
        }
        KeyOrder::Sorted => {
            for (n, (k, v)) in o.iter_sorted().enumerate() {
                member(n, k, v);
            }
        }
    }
    out.push(b'}');
}

/// Append a scalar (`null`, boolean, number, string). Containers are not
/// scalars; they print as `null` here and must go through a writer above.
pub(crate) fn write_scalar(out: &mut Vec<u8>, v: &Value) {
    match v {
        Value::Null | Value::Array(_) | Value::Object(_) => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Number(n) => push_js_number(out, *n),
        Value::String(s) => write_quoted(out, s.as_bytes()),
    }
}

/// A number as JSON text the way JavaScript prints it: `NaN` and infinities
/// are `null`, `-0` is `0`, otherwise `Number.prototype.toString()`.
pub fn js_number(n: f64) -> String {
    let mut out = Vec::with_capacity(24);
    push_js_number(&mut out, n);
    String::from_utf8(out).unwrap_or_default()
}

fn push_js_number(out: &mut Vec<u8>, n: f64) {
    if !n.is_finite() {
        out.extend_from_slice(b"null");
    } else if n == 0.0 {
        out.push(b'0');
    } else {
        let mut buf = ryu_js::Buffer::new();
        out.extend_from_slice(buf.format_finite(n).as_bytes());
    }
}

/// Append a WTF-8 string quoted as `JSON.stringify` quotes it: `"` and `\`
/// escaped, control characters as `\b \t \n \f \r` or `\u00xx`, lone
/// surrogates as `\udxxx`, everything else raw.
pub fn write_quoted(out: &mut Vec<u8>, s: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.reserve(s.len() + 2);
    out.push(b'"');
    let mut run = 0;
    let mut i = 0;
    while i < s.len() {
        // Skip the bytes that are copied as they are (the common case).
        while i < s.len() && !NEEDS_CARE[s[i] as usize] {
            i += 1;
        }
        if i == s.len() {
            break;
        }
        let b = s[i];
        let esc: Option<&[u8]> = match b {
            b'"' => Some(b"\\\""),
            b'\\' => Some(b"\\\\"),
            0x08 => Some(b"\\b"),
            b'\t' => Some(b"\\t"),
            b'\n' => Some(b"\\n"),
            0x0c => Some(b"\\f"),
            b'\r' => Some(b"\\r"),
            _ => None,
        };
        if let Some(e) = esc {
            out.extend_from_slice(&s[run..i]);
            out.extend_from_slice(e);
            i += 1;
            run = i;
        } else if b < 0x20 {
            out.extend_from_slice(&s[run..i]);
            out.extend_from_slice(b"\\u00");
            out.push(HEX[(b >> 4) as usize]);
            out.push(HEX[(b & 15) as usize]);
            i += 1;
            run = i;
        } else if b == 0xED && i + 2 < s.len() && s[i + 1] >= 0xA0 {
            // A WTF-8 encoded surrogate, U+D800..U+DFFF.
            let cp = 0xD000 | (u32::from(s[i + 1] & 0x3F) << 6) | u32::from(s[i + 2] & 0x3F);
            out.extend_from_slice(&s[run..i]);
            out.extend_from_slice(b"\\u");
            for shift in [12, 8, 4, 0] {
                out.push(HEX[((cp >> shift) & 15) as usize]);
            }
            i += 3;
            run = i;
        } else {
            i += 1;
        }
    }
    out.extend_from_slice(&s[run..]);
    out.push(b'"');
}

/// Bytes that may need escaping: the ones that end a plain run inside a JSON
/// string (controls, `"`, `\\`) and 0xED, the lead byte of a possibly lone
/// surrogate.
static NEEDS_CARE: [bool; 256] = {
    let mut t = super::json::STRING_SPECIAL;
    t[0xED] = true;
    t
};

/// Quote a `&str` as `JSON.stringify` does.
pub fn quote(s: &str) -> String {
    let mut out = Vec::with_capacity(s.len() + 2);
    write_quoted(&mut out, s.as_bytes());
    String::from_utf8(out).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::json::parse;

    #[test]
    fn keys_sort_by_bytes_past_a_shared_prefix() {
        // Keys equal in their first 8 bytes, a key and its NUL extension,
        // multi-byte and surrogate keys, array-index keys.
        let keys = [
            "prefix--b",
            "prefix--a",
            "prefix--",
            "prefix--ab",
            "a\\u0000",
            "a",
            "b",
            "\\u00ff",
            "\\ud800",
            "\\ud83d\\ude00",
            "10",
            "9",
        ];
        let text = format!(
            "{{{}}}",
            keys.iter()
                .map(|k| format!("\"{k}\":1"))
                .collect::<Vec<_>>()
                .join(",")
        );
        let v = parse(text.as_bytes()).unwrap();
        let Value::Object(o) = &v else { panic!() };
        let mut expected: Vec<&[u8]> = o.iter().map(|(k, _)| k.as_bytes()).collect();
        expected.sort();
        let got: Vec<&[u8]> = o.iter_sorted().map(|(k, _)| k.as_bytes()).collect();
        assert_eq!(got, expected);
        // (tests/fuzz_corpus.rs checks the printed text of the same keys
        // against the reference stableStringify.)
    }
}
