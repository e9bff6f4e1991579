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

// The printer lives with the value type in `json`; canonical JSON is that
// printer with sorted keys. (This module uses `json`, never the reverse.)
use super::json::Value;
pub use super::json::{js_number, quote, write_object, write_quoted, write_value, KeyOrder};

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
