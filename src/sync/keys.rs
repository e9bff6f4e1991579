//! Path-parameter and document-key checks (documents.md §4), and the
//! storability check that turns a key the store cannot hold (too long, a
//! segment too long) into the protocol's 400 before the store is called.

use super::SyncError;

/// A path parameter value (after percent-decoding) must match
/// `^[a-zA-Z0-9._:@-]+$`.
pub fn is_valid_param(value: &str) -> bool {
    !value.is_empty()
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'@' | b'-'))
}

/// An unsafe composed key: `..` anywhere, a C0 control character, or `//`.
pub fn is_unsafe_key(key: &str) -> bool {
    key.contains("..") || key.contains("//") || key.bytes().any(|b| b < 0x20)
}

/// Refuse a key the store cannot hold ([`crate::store::validate_key`]: over
/// [`crate::store::MAX_KEY_LEN`] bytes, a segment over
/// [`crate::store::MAX_SEGMENT_LEN`], ...) with `400 Invalid path
/// parameter`, logging one short line. The official filesystem store fails
/// such keys with a 500 (COMPATIBILITY.md).
pub fn check_storable(key: &str) -> Result<(), SyncError> {
    match crate::store::validate_key(key) {
        Ok(()) => Ok(()),
        Err(e) => {
            log::debug!("refused: {e}");
            Err(SyncError::InvalidPathParameter)
        }
    }
}

/// `resolveDocumentKey`: replace every `{name}` with its value.
pub fn resolve_key(storage_path: &str, params: &[(String, String)]) -> String {
    let mut key = storage_path.to_owned();
    for (name, value) in params {
        key = key.replace(&format!("{{{name}}}"), value);
    }
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_and_keys() {
        assert!(is_valid_param("a.b:c@d-e_f"));
        assert!(is_valid_param(".."), "caught later by the key check");
        assert!(!is_valid_param(""));
        assert!(!is_valid_param("a/b"));
        assert!(!is_valid_param("é"));
        assert!(is_unsafe_key("a/../b"));
        assert!(is_unsafe_key("a..b"));
        assert!(is_unsafe_key("a//b"));
        assert!(is_unsafe_key("a\nb"));
        assert!(!is_unsafe_key("users/u1/settings"));
        assert!(check_storable("users/u1/settings").is_ok());
        assert!(check_storable(&format!("a/{}", "b".repeat(200))).is_ok());
        assert!(matches!(
            check_storable(&format!("a/{}", "b".repeat(201))),
            Err(SyncError::InvalidPathParameter)
        ));
        let long = vec!["c".repeat(100); 11].join("/");
        assert!(long.len() > crate::store::MAX_KEY_LEN);
        assert!(check_storable(&long).is_err());
        let p = vec![("id".to_owned(), "x".to_owned())];
        assert_eq!(resolve_key("a/{id}/b/{id}", &p), "a/x/b/x");
    }
}
