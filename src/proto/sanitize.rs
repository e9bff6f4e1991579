//! Unsafe-key stripping (`deepSanitize`) and the push nesting limit.

use super::json::{Object, Value};
use std::borrow::Cow;

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
///
/// Linear in the size of the object: its keys are already unique, so the
/// survivors are appended without any lookup.
pub fn deep_sanitize(obj: Object) -> Object {
    let entries = obj.into_entries();
    let mut out = Object::with_capacity(entries.len());
    for (k, v) in entries {
        if is_unsafe_key(k.as_bytes()) {
            continue;
        }
        let v = match v {
            Value::Object(inner) => Value::Object(deep_sanitize(inner)),
            other => other,
        };
        out.push_unique(k, v);
    }
    out
}

/// Whether [`deep_sanitize`] would change `obj` (a read-only walk).
pub fn needs_sanitize(obj: &Object) -> bool {
    obj.iter().any(|(k, v)| {
        is_unsafe_key(k.as_bytes()) || matches!(v, Value::Object(inner) if needs_sanitize(inner))
    })
}

/// `obj` sanitised: borrowed when there is nothing to strip (the usual
/// case), so the caller copies nothing.
pub fn sanitized(obj: &Object) -> Cow<'_, Object> {
    if needs_sanitize(obj) {
        Cow::Owned(deep_sanitize(obj.clone()))
    } else {
        Cow::Borrowed(obj)
    }
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
    fn borrowed_when_clean_and_equal_to_deep_sanitize() {
        for t in [
            r#"{"a":{"b":[{"__proto__":1}]}}"#,
            r#"{"a":{"b":{"__dict__":1}},"c":2}"#,
        ] {
            let Value::Object(o) = parse(t.as_bytes()).unwrap() else {
                panic!()
            };
            let view = sanitized(&o);
            assert_eq!(matches!(view, Cow::Borrowed(_)), !needs_sanitize(&o), "{t}");
            assert_eq!(*view, deep_sanitize(o.clone()));
        }
    }

    #[test]
    fn does_not_look_inside_arrays() {
        let t = r#"{"a":[{"__proto__":1,"constructor":2}]}"#;
        assert_eq!(sanitize_text(t), t);
    }
}
