//! Document hashes: lowercase hex SHA-256 of the canonical JSON bytes.

use super::canonical::{write_canonical, write_object, KeyOrder};
use super::encoding::hex_encode;
use super::json::{Object, Value};
use sha2::{Digest, Sha256};

/// SHA-256 of `bytes`.
pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// Lowercase hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex_encode(&sha256(bytes))
}

/// `computeHash(data)`: the document hash stored and returned by the server.
///
/// ```
/// use starfish::proto::{hash::document_hash, json::parse};
/// let h = document_hash(&parse(b"{}").unwrap());
/// assert_eq!(h, "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a");
/// ```
pub fn document_hash(data: &Value) -> String {
    let mut buf = Vec::new();
    write_canonical(&mut buf, data);
    sha256_hex(&buf)
}

/// [`document_hash`] of an object, without copying it into a [`Value`].
pub fn object_hash(data: &Object) -> String {
    let mut buf = Vec::new();
    write_object(&mut buf, data, KeyOrder::Sorted);
    sha256_hex(&buf)
}
