//! Per-request signatures (`X-Starfish-Sig`): the canonical input, signing,
//! verification and the timestamp checks.
//!
//! ```
//! use starfish::proto::request_sig::{sign_request, verify_request, RequestToSign, public_key_hex};
//! let seed = [1u8; 32];
//! let req = RequestToSign { method: "GET", path_and_query: "/v1/pull/notes", host: "127.0.0.1:8787",
//!     body: b"", ts: 1_700_000_000_000.0, nonce_b64: "AQEBAQEBAQEBAQEBAQEBAQ==" };
//! let sig = sign_request(&req, &seed);
//! assert!(verify_request(&req, &sig, &public_key_hex(&seed)));
//! ```

use super::canonical::{js_number, write_quoted};
use super::encoding::{b64_decode, b64_encode, hex_decode_array, hex_encode};
use super::hash::sha256_hex;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};

/// Domain tag of the request signing input.
pub const REQUEST_SIG_DOMAIN: &str = "starfish-req-v1\n";
/// Default allowed distance between `X-Starfish-Ts` and the server clock, ms.
pub const DEFAULT_MAX_SKEW_MS: i64 = 300_000;

/// What a request signature covers.
#[derive(Clone, Copy, Debug)]
pub struct RequestToSign<'a> {
    /// Upper-case HTTP method.
    pub method: &'a str,
    /// Path plus `?query` (when the query is non-empty).
    pub path_and_query: &'a str,
    /// Normalised host (`""` when unknown).
    pub host: &'a str,
    /// The signed body bytes (see [`signed_body`]).
    pub body: &'a [u8],
    /// `X-Starfish-Ts`, Unix milliseconds (printed as a JavaScript number).
    pub ts: f64,
    /// `X-Starfish-Nonce`, exactly as sent.
    pub nonce_b64: &'a str,
}

/// The exact request signing input: the domain tag and the canonical JSON
/// of `{b, h, m, nonce, p, ts}`.
pub fn canonical_input(req: &RequestToSign<'_>) -> String {
    canonical_input_with_body_hash(req, &sha256_hex(req.body))
}

/// [`canonical_input`] with the body hash supplied by the caller.
pub fn canonical_input_with_body_hash(req: &RequestToSign<'_>, body_sha256_hex: &str) -> String {
    let mut out = Vec::with_capacity(160 + req.path_and_query.len());
    out.extend_from_slice(REQUEST_SIG_DOMAIN.as_bytes());
    out.extend_from_slice(b"{\"b\":");
    write_quoted(&mut out, body_sha256_hex.as_bytes());
    out.extend_from_slice(b",\"h\":");
    write_quoted(&mut out, req.host.as_bytes());
    out.extend_from_slice(b",\"m\":");
    write_quoted(&mut out, req.method.as_bytes());
    out.extend_from_slice(b",\"nonce\":");
    write_quoted(&mut out, req.nonce_b64.as_bytes());
    out.extend_from_slice(b",\"p\":");
    write_quoted(&mut out, req.path_and_query.as_bytes());
    out.extend_from_slice(b",\"ts\":");
    out.extend_from_slice(js_number(req.ts).as_bytes());
    out.push(b'}');
    // Only valid UTF-8 went in, and `write_quoted` keeps it valid.
    String::from_utf8(out).unwrap_or_default()
}

/// Whether the body of a request with this method and content type is signed
/// (otherwise the empty body is): write methods sign their body unless the
/// media type is present and not `application/json`.
pub fn body_is_signed(method: &str, content_type: Option<&str>) -> bool {
    if !matches!(method, "POST" | "PUT" | "PATCH" | "DELETE") {
        return false;
    }
    let media = content_type
        .map(|ct| {
            ct.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
        .unwrap_or_default();
    media.is_empty() || media == "application/json"
}

/// The body bytes a signature covers, per [`body_is_signed`].
pub fn signed_body<'a>(method: &str, content_type: Option<&str>, body: &'a [u8]) -> &'a [u8] {
    if body_is_signed(method, content_type) {
        body
    } else {
        &[]
    }
}

/// Sign a request with a 32-byte Ed25519 seed; base64 of the signature.
pub fn sign_request(req: &RequestToSign<'_>, seed: &[u8; 32]) -> String {
    let sig = SigningKey::from_bytes(seed).sign(canonical_input(req).as_bytes());
    b64_encode(&sig.to_bytes())
}

/// An Ed25519 signature of `msg` by a 32-byte seed.
pub fn sign_bytes(seed: &[u8; 32], msg: &[u8]) -> [u8; 64] {
    SigningKey::from_bytes(seed).sign(msg).to_bytes()
}

/// Verify a base64 request signature against a hex public key. Any decoding
/// problem is a plain `false`.
pub fn verify_request(req: &RequestToSign<'_>, sig_b64: &str, pub_hex: &str) -> bool {
    verify_ed25519(pub_hex, sig_b64, canonical_input(req).as_bytes())
}

/// Ed25519 verification with `verify_strict` (canonical encodings only, no
/// small-order keys): hex key of exactly 32 bytes, base64 signature of
/// exactly 64 bytes.
pub fn verify_ed25519(pub_hex: &str, sig_b64: &str, msg: &[u8]) -> bool {
    let Some(key) = hex_decode_array::<32>(pub_hex) else {
        return false;
    };
    let Some(sig) = b64_decode(sig_b64).and_then(|b| <[u8; 64]>::try_from(b).ok()) else {
        return false;
    };
    let Ok(vk) = VerifyingKey::from_bytes(&key) else {
        return false;
    };
    vk.verify_strict(msg, &Signature::from_bytes(&sig)).is_ok()
}

/// The Ed25519 public key of a seed, lowercase hex.
pub fn public_key_hex(seed: &[u8; 32]) -> String {
    hex_encode(&SigningKey::from_bytes(seed).verifying_key().to_bytes())
}

/// Parse `X-Starfish-Ts` as the server does: `^-?\d+$`, then a JavaScript
/// number; `None` when the text does not match or the number is not finite.
pub fn parse_ts_header(value: &str) -> Option<f64> {
    let digits = value.strip_prefix('-').unwrap_or(value);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    value.parse::<f64>().ok().filter(|n| n.is_finite())
}

/// `isWithinClockSkew`: `|ts - now| <= max_skew`.
pub fn within_clock_skew(ts_ms: f64, now_ms: i64, max_skew_ms: i64) -> bool {
    (ts_ms - now_ms as f64).abs() <= max_skew_ms as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ts_header_rules() {
        assert_eq!(parse_ts_header("0017"), Some(17.0));
        assert_eq!(parse_ts_header("-5"), Some(-5.0));
        for bad in ["", "-", "1e3", "0x10", " 1", "1.5", "+1"] {
            assert_eq!(parse_ts_header(bad), None, "{bad:?}");
        }
        assert_eq!(
            parse_ts_header(&"9".repeat(400)),
            None,
            "overflows to infinity"
        );
    }

    #[test]
    fn signed_body_rules() {
        assert!(!body_is_signed("GET", None));
        assert!(body_is_signed("POST", None));
        assert!(body_is_signed(
            "POST",
            Some(" Application/JSON ; charset=utf-8")
        ));
        assert!(!body_is_signed("POST", Some("image/png")));
        assert!(body_is_signed("PUT", Some("")));
    }

    #[test]
    fn skew_is_inclusive() {
        assert!(within_clock_skew(1_000_000.0, 1_300_000, 300_000));
        assert!(!within_clock_skew(1_000_000.0, 1_300_001, 300_000));
    }
}
