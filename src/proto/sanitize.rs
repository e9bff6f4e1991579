//! Unsafe-key stripping (`deepSanitize`) and the push nesting limit.

use super::json::{Object, Value};

/// Keys dropped from pushed documents and merges at every object level.
pub const UNSAFE_KEYS: [&str; 5] = [
    "__proto__",
    "constructor",
    "prototype",
    "__class__",
    "__dict__",
];

/// The deepest nesting a push body may have (the body object is level 1).
pub const MAX_BODY_DEPTH: usize = 64;

/// Whether `key` (WTF-8 bytes) is one of [`UNSAFE_KEYS`].
pub fn is_unsafe_key(key: &[u8]) -> bool {
    UNSAFE_KEYS.iter().any(|k| k.as_bytes() == key)
}

/// `deepSanitize`: drop [`UNSAFE_KEYS`] from this object and every object
/// nested in it through objects. Arrays are copied as they are, without
/// looking inside them (an official quirk that stored hashes depend on).
pub fn deep_sanitize(obj: Object) -> Object {
    obj.into_entries()
        .into_iter()
        .filter(|(k, _)| !is_unsafe_key(k.as_bytes()))
        .map(|(k, v)| match v {
            Value::Object(inner) => (k, Value::Object(deep_sanitize(inner))),
            other => (k, other),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::{canonical::stable_stringify, json::parse};

    fn sanitize_text(t: &str) -> String {
        let Value::Object(o) = parse(t.as_bytes()).unwrap() else {
            panic!("not an object")
        };
        stable_stringify(&Value::Object(deep_sanitize(o)))
    }

    #[test]
    fn strips_at_every_object_level() {
        assert_eq!(
            sanitize_text(r#"{"__proto__":{"x":1},"constructor":1,"k":{"prototype":2,"z":3}}"#),
            r#"{"k":{"z":3}}"#
        );
    }

    #[test]
    fn does_not_look_inside_arrays() {
        let t = r#"{"a":[{"__proto__":1,"constructor":2}]}"#;
        assert_eq!(sanitize_text(t), t);
    }
}
