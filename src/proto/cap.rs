//! Capability certificates (cap-certs): decoding the `Authorization: Cap`
//! header, well-formedness with the official reason codes, the validity
//! window, the issuer signature, and minting device caps.
//!
//! A cap-cert is kept as the JSON object it arrived as ([`CapCert`]), because
//! its signature covers every field, unknown ones included, re-printed in
//! canonical form.
//!
//! ```
//! use starfish::proto::cap::{mint_device_cap, root_all_scope, verify_cap_cert, MintOptions};
//! let seed = [7u8; 32];
//! let pub_hex = starfish::proto::request_sig::public_key_hex(&seed);
//! let cap = mint_device_cap(&seed, &pub_hex, &pub_hex, &"00".repeat(32), root_all_scope(),
//!     MintOptions { nbf: 1_700_000_000, ttl_sec: 3600, nonce: [0; 16] }).unwrap();
//! assert!(verify_cap_cert(&cap, 1_700_000_100, 300).is_ok());
//! assert!(cap.is_root_device_cap());
//! ```

use super::canonical::stable_stringify;
use super::encoding::{b64_decode, b64_encode, hex_decode, hex_decode_array};
use super::identity::user_id_from_pub_hex;
use super::json::{parse_with_depth, JsString, Object, Value};
use ed25519_dalek::{Signer, SigningKey};
use std::fmt;

/// Domain tag of the cap-cert signing input.
pub const CAP_CERT_DOMAIN: &str = "starfish-capcert-v1\n";
/// Default clock skew allowed around `nbf`/`exp`, seconds.
pub const DEFAULT_CAP_SKEW_SEC: i64 = 300;
/// Default lifetime of a minted device cap: 30 days.
pub const DEFAULT_CAP_TTL_SEC: i64 = 2_592_000;
/// Most entries an audience cap's `aud` list may have.
pub const MAX_AUDIENCE: usize = 64;
/// Decoded length of a cap nonce.
pub const CAP_NONCE_LEN: usize = 16;

/// Why `verifyCapCert` refused a cert. `Display` gives the official reason
/// code (used in logs; the wire answer is always a bare 401).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CapReason {
    MalformedShape,
    AudienceHasSub,
    NonAudienceHasAud,
    AudienceAudBadEntry,
    AudienceEmptyAud,
    AudienceAudTooLarge,
    AudienceAudDup,
    IssUserIdMismatch,
    SubUserIdMismatch,
    /// A hex decoding error while deriving a userId.
    Malformed,
    InvertedWindow,
    NotYetValid,
    Expired,
    BadSignature,
}

impl CapReason {
    pub fn code(self) -> &'static str {
        match self {
            CapReason::MalformedShape => "malformed-shape",
            CapReason::AudienceHasSub => "audience-has-sub",
            CapReason::NonAudienceHasAud => "non-audience-has-aud",
            CapReason::AudienceAudBadEntry => "audience-aud-bad-entry",
            CapReason::AudienceEmptyAud => "audience-empty-aud",
            CapReason::AudienceAudTooLarge => "audience-aud-too-large",
            CapReason::AudienceAudDup => "audience-aud-dup",
            CapReason::IssUserIdMismatch => "iss-userid-mismatch",
            CapReason::SubUserIdMismatch => "sub-userid-mismatch",
            CapReason::Malformed => "malformed",
            CapReason::InvertedWindow => "inverted-window",
            CapReason::NotYetValid => "not-yet-valid",
            CapReason::Expired => "expired",
            CapReason::BadSignature => "bad-signature",
        }
    }
}

impl fmt::Display for CapReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl std::error::Error for CapReason {}

/// The cap kinds the protocol knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CapKind {
    Device,
    Member,
    Audience,
}

/// A cap-cert as received: the parsed JSON value, any shape. Accessors
/// return `None` for missing or mistyped fields; [`assert_well_formed`]
/// decides whether the shape is acceptable.
#[derive(Clone, Debug, PartialEq)]
pub struct CapCert {
    value: Value,
}

impl CapCert {
    /// Wrap a parsed JSON value.
    pub fn from_value(value: Value) -> Self {
        CapCert { value }
    }
    /// The JSON value.
    pub fn value(&self) -> &Value {
        &self.value
    }
    fn obj(&self) -> Option<&Object> {
        self.value.as_object()
    }
    /// A field of the cert, if the cert is an object and has it.
    pub fn field(&self, name: &str) -> Option<&Value> {
        self.obj()?.get(name)
    }
    fn str_field(&self, name: &str) -> Option<&str> {
        self.field(name)?.as_str()
    }
    pub fn kind(&self) -> Option<CapKind> {
        match self.str_field("kind")? {
            "device" => Some(CapKind::Device),
            "member" => Some(CapKind::Member),
            "audience" => Some(CapKind::Audience),
            _ => None,
        }
    }
    pub fn iss(&self) -> Option<&str> {
        self.str_field("iss")
    }
    pub fn iss_user_id(&self) -> Option<&str> {
        self.str_field("issUserId")
    }
    pub fn sub(&self) -> Option<&str> {
        self.str_field("sub")
    }
    pub fn sub_kem(&self) -> Option<&str> {
        self.str_field("subKem")
    }
    pub fn sub_user_id(&self) -> Option<&str> {
        self.str_field("subUserId")
    }
    pub fn nonce(&self) -> Option<&str> {
        self.str_field("nonce")
    }
    pub fn sig(&self) -> Option<&str> {
        self.str_field("sig")
    }
    /// `nbf`, when it is a JavaScript integer.
    pub fn nbf(&self) -> Option<f64> {
        self.field("nbf").filter(|v| v.is_integer())?.as_f64()
    }
    /// `exp`, when it is a JavaScript integer.
    pub fn exp(&self) -> Option<f64> {
        self.field("exp").filter(|v| v.is_integer())?.as_f64()
    }
    fn scope_strings(&self, name: &str) -> Option<Vec<String>> {
        let arr = self.field("scope")?.as_object()?.get(name)?.as_array()?;
        arr.iter()
            .map(|v| v.as_js_string().map(JsString::to_string_lossy))
            .collect()
    }
    /// `scope.ops`.
    pub fn scope_ops(&self) -> Vec<String> {
        self.scope_strings("ops").unwrap_or_default()
    }
    /// `scope.collections`.
    pub fn scope_collections(&self) -> Vec<String> {
        self.scope_strings("collections").unwrap_or_default()
    }
    /// `scope.paths`; `None` when absent (unrestricted).
    pub fn scope_paths(&self) -> Option<Vec<String>> {
        self.scope_strings("paths")
    }
    /// `isRootDeviceCap`: a self-signed device cap (`iss == sub`).
    pub fn is_root_device_cap(&self) -> bool {
        self.kind() == Some(CapKind::Device)
            && matches!((self.field("iss"), self.field("sub")), (Some(a), Some(b)) if a == b)
    }
    /// The canonical signing input: the domain tag and the canonical JSON of
    /// the cert without `sig`.
    pub fn signing_input(&self) -> String {
        let unsigned = match self.obj() {
            Some(o) => Value::Object(
                o.iter()
                    .filter(|(k, _)| *k != "sig")
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
            ),
            None => self.value.clone(),
        };
        format!("{CAP_CERT_DOMAIN}{}", stable_stringify(&unsigned))
    }
    /// `Cap <base64(stableStringify(cert))>`, the `Authorization` header value.
    pub fn authorization_header(&self) -> String {
        format!(
            "Cap {}",
            b64_encode(stable_stringify(&self.value).as_bytes())
        )
    }
}

fn fail(r: CapReason) -> Result<(), CapReason> {
    Err(r)
}

/// `assertCapCertWellFormed`: structural checks in the official order.
pub fn assert_well_formed(cert: &CapCert) -> Result<(), CapReason> {
    use CapReason::*;
    let kind = cert.kind().ok_or(MalformedShape)?;
    let is_str = |name: &str| matches!(cert.field(name), Some(Value::String(_)));
    if !is_str("iss") || !is_str("issUserId") || !is_str("nonce") {
        return fail(MalformedShape);
    }
    if kind == CapKind::Audience {
        if cert.field("sub").is_some()
            || cert.field("subKem").is_some()
            || cert.field("subUserId").is_some()
        {
            return fail(AudienceHasSub);
        }
    } else if !is_str("sub") || !is_str("subKem") {
        return fail(MalformedShape);
    }
    if cert.nbf().is_none() || cert.exp().is_none() {
        return fail(MalformedShape);
    }
    if cert.field("subUserId").is_some() && !is_str("subUserId") {
        return fail(MalformedShape);
    }
    let nonce = cert
        .field("nonce")
        .and_then(Value::as_js_string)
        .map(JsString::to_string_lossy);
    match nonce.as_deref().and_then(b64_decode) {
        Some(b) if b.len() == CAP_NONCE_LEN => {}
        _ => return fail(MalformedShape),
    }
    let scope = match cert.field("scope") {
        Some(Value::Object(o)) => o,
        _ => return fail(MalformedShape),
    };
    let ops_ok = match scope.get("ops") {
        Some(Value::Array(a)) => a
            .iter()
            .all(|op| matches!(op.as_str(), Some("read" | "write" | "list"))),
        _ => false,
    };
    let strings = |v: Option<&Value>| matches!(v, Some(Value::Array(a)) if a.iter().all(|x| matches!(x, Value::String(_))));
    if !ops_ok || !strings(scope.get("collections")) {
        return fail(MalformedShape);
    }
    if scope.get("paths").is_some() && !strings(scope.get("paths")) {
        return fail(MalformedShape);
    }
    match (kind, cert.field("aud")) {
        (CapKind::Audience, Some(aud)) => check_aud(aud)?,
        (CapKind::Audience, None) => {}
        (_, Some(_)) => return fail(NonAudienceHasAud),
        (_, None) => {}
    }
    let iss = cert
        .field("iss")
        .and_then(Value::as_js_string)
        .map(JsString::to_string_lossy)
        .unwrap_or_default();
    let iss_uid = user_id_from_pub_hex(&iss).map_err(|_| Malformed)?;
    if cert.field("issUserId") != Some(&Value::from(iss_uid)) {
        return fail(IssUserIdMismatch);
    }
    if let Some(sub_uid) = cert.field("subUserId") {
        let sub = cert.sub().ok_or(SubUserIdMismatch)?;
        let uid = user_id_from_pub_hex(sub).map_err(|_| Malformed)?;
        if *sub_uid != Value::from(uid) {
            return fail(SubUserIdMismatch);
        }
    }
    Ok(())
}

fn check_aud(aud: &Value) -> Result<(), CapReason> {
    use CapReason::*;
    let Value::Array(list) = aud else {
        return fail(AudienceAudBadEntry);
    };
    if list.is_empty() {
        return fail(AudienceEmptyAud);
    }
    if list.len() > MAX_AUDIENCE {
        return fail(AudienceAudTooLarge);
    }
    let mut seen: Vec<&str> = Vec::with_capacity(list.len());
    for e in list {
        match e.as_str() {
            Some(s) if is_lower_hex_key(s) => seen.push(s),
            _ => return fail(AudienceAudBadEntry),
        }
    }
    seen.sort_unstable();
    if seen.windows(2).any(|w| w[0] == w[1]) {
        return fail(AudienceAudDup);
    }
    Ok(())
}

/// `^[0-9a-f]{64}$`: a lowercase-hex Ed25519 public key.
pub fn is_lower_hex_key(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// `verifyCapCertSignature`: does `sig` verify under `iss` over the signing
/// input? Any decoding problem is a plain `false`.
pub fn verify_cap_signature(cert: &CapCert) -> bool {
    let (Some(sig), Some(iss)) = (cert.sig(), cert.iss()) else {
        return false;
    };
    super::request_sig::verify_ed25519(iss, sig, cert.signing_input().as_bytes())
}

/// `verifyCapCert(cert, {now, clockSkewSec})`: well-formedness, the validity
/// window (`now_s` in seconds, with `skew_s` slack on both ends), then the
/// signature.
pub fn verify_cap_cert(cert: &CapCert, now_s: i64, skew_s: i64) -> Result<(), CapReason> {
    assert_well_formed(cert)?;
    let (nbf, exp) = (cert.nbf().unwrap_or(0.0), cert.exp().unwrap_or(0.0));
    let (now, skew) = (now_s as f64, skew_s as f64);
    if exp <= nbf {
        return fail(CapReason::InvertedWindow);
    }
    if now < nbf - skew {
        return fail(CapReason::NotYetValid);
    }
    if now > exp + skew {
        return fail(CapReason::Expired);
    }
    if !verify_cap_signature(cert) {
        return fail(CapReason::BadSignature);
    }
    Ok(())
}

/// Why an `Authorization` header did not yield a cap-cert.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CapHeaderError {
    /// No `Cap ` prefix (case-sensitive): the request is anonymous.
    NotCap,
    /// Longer than the allowed header size.
    TooLarge,
    /// Empty payload, bad base64, or not JSON (or JSON `null`/`false`...).
    Malformed,
}

impl fmt::Display for CapHeaderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CapHeaderError::NotCap => "missing Authorization: Cap header",
            CapHeaderError::TooLarge => "cap-too-large",
            CapHeaderError::Malformed => "malformed cap-cert in Authorization header",
        })
    }
}

impl std::error::Error for CapHeaderError {}

/// Default bound on the `Authorization` header value, bytes.
pub const DEFAULT_MAX_CAP_HEADER_BYTES: usize = 8192;

/// Decode an `Authorization` header value as the official resolver does:
/// `Cap ` prefix, size bound on the whole value, trimmed payload, forgiving
/// base64, lossy UTF-8 without BOM, JSON. A falsy JSON result (`null`,
/// `false`, `0`, `""`) counts as malformed.
pub fn parse_authorization(value: &str, max_bytes: usize) -> Result<CapCert, CapHeaderError> {
    decode_cap_payload(authorization_payload(value, max_bytes)?)
}

/// The first two steps of [`parse_authorization`]: the `Cap ` prefix and the
/// size bound on the whole value; the payload after the prefix.
pub fn authorization_payload(value: &str, max_bytes: usize) -> Result<&str, CapHeaderError> {
    let Some(rest) = value.strip_prefix("Cap ") else {
        return Err(CapHeaderError::NotCap);
    };
    if value.len() > max_bytes {
        return Err(CapHeaderError::TooLarge);
    }
    Ok(rest)
}

/// The rest of [`parse_authorization`]: decode the payload after `Cap `.
pub fn decode_cap_payload(rest: &str) -> Result<CapCert, CapHeaderError> {
    let payload = super::encoding::js_trim(rest);
    if payload.is_empty() {
        return Err(CapHeaderError::Malformed);
    }
    let bytes = b64_decode(payload).ok_or(CapHeaderError::Malformed)?;
    let text = String::from_utf8_lossy(&bytes);
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    let v = parse_with_depth(text.as_bytes(), 64).map_err(|_| CapHeaderError::Malformed)?;
    let falsy = match &v {
        Value::Null | Value::Bool(false) => true,
        Value::Number(n) => *n == 0.0 || n.is_nan(),
        Value::String(s) => s.as_bytes().is_empty(),
        _ => false,
    };
    if falsy {
        return Err(CapHeaderError::Malformed);
    }
    Ok(CapCert::from_value(v))
}

/// `scopes.rootAll()`: every op, every path, the literal `*` collection.
pub fn root_all_scope() -> Object {
    let strs = |xs: &[&str]| Value::Array(xs.iter().map(|s| Value::from(*s)).collect());
    let mut o = Object::new();
    o.insert("ops", strs(&["read", "list", "write"]));
    o.insert("paths", strs(&["**"]));
    o.insert("collections", strs(&["*"]));
    o
}

/// Explicit inputs of [`mint_device_cap`] (time and randomness are the
/// caller's, so minting is deterministic).
#[derive(Clone, Copy, Debug)]
pub struct MintOptions {
    /// Not-before, Unix seconds.
    pub nbf: i64,
    /// Lifetime in seconds ([`DEFAULT_CAP_TTL_SEC`] is the official default).
    pub ttl_sec: i64,
    /// 16 random bytes.
    pub nonce: [u8; 16],
}

/// Why minting failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MintError {
    /// The issuer seed does not match the issuer public key given.
    KeyMismatch,
    /// The resulting cert is not well-formed (bad hex, bad scope, ...).
    NotWellFormed(CapReason),
    /// `ttl_sec` is not positive, or `nbf` or `nbf + ttl_sec` is not a
    /// JavaScript safe integer: such a cap could never verify.
    InvalidWindow,
}

impl fmt::Display for MintError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MintError::KeyMismatch => {
                f.write_str("issuer private key does not match issuer public key")
            }
            MintError::NotWellFormed(r) => write!(f, "minted cap-cert is not well-formed: {r}"),
            MintError::InvalidWindow => {
                f.write_str("cap-cert validity window must be nbf < nbf + ttl, both safe integers")
            }
        }
    }
}

impl std::error::Error for MintError {}

/// `mintDeviceCap`: build and sign a device cap for subject `sub_ed_pub_hex`
/// / `sub_kem_pub_hex`, issued by the holder of `iss_seed`.
pub fn mint_device_cap(
    iss_seed: &[u8; 32],
    iss_pub_hex: &str,
    sub_ed_pub_hex: &str,
    sub_kem_pub_hex: &str,
    scope: Object,
    opts: MintOptions,
) -> Result<CapCert, MintError> {
    const MAX_SAFE_INTEGER: i64 = (1 << 53) - 1;
    let safe = |n: i64| (-MAX_SAFE_INTEGER..=MAX_SAFE_INTEGER).contains(&n);
    let exp = opts.nbf.checked_add(opts.ttl_sec);
    if opts.ttl_sec <= 0 || !safe(opts.nbf) || !exp.is_some_and(safe) {
        return Err(MintError::InvalidWindow);
    }
    let key = SigningKey::from_bytes(iss_seed);
    if hex_decode_array::<32>(iss_pub_hex) != Some(key.verifying_key().to_bytes()) {
        return Err(MintError::KeyMismatch);
    }
    let iss_uid = user_id_from_pub_hex(iss_pub_hex)
        .map_err(|_| MintError::NotWellFormed(CapReason::Malformed))?;
    let mut o = Object::new();
    o.insert("v", Value::Number(1.0));
    o.insert("kind", "device".into());
    o.insert("iss", iss_pub_hex.into());
    o.insert("issUserId", iss_uid.into());
    o.insert("sub", sub_ed_pub_hex.into());
    o.insert("subKem", sub_kem_pub_hex.into());
    o.insert("scope", Value::Object(scope));
    o.insert("nbf", Value::Number(opts.nbf as f64));
    o.insert("exp", Value::Number(exp.unwrap_or_default() as f64));
    o.insert("nonce", b64_encode(&opts.nonce).into());
    let unsigned = CapCert::from_value(Value::Object(o));
    assert_well_formed(&unsigned).map_err(MintError::NotWellFormed)?;
    Ok(sign_cap_cert(unsigned, iss_seed))
}

/// `signCapCert`: set `sig` to the issuer's signature over the signing input.
pub fn sign_cap_cert(cert: CapCert, iss_seed: &[u8; 32]) -> CapCert {
    let sig = SigningKey::from_bytes(iss_seed).sign(cert.signing_input().as_bytes());
    let mut o = match cert.value {
        Value::Object(o) => o,
        _ => Object::new(),
    };
    o.insert("sig", b64_encode(&sig.to_bytes()).into());
    CapCert::from_value(Value::Object(o))
}

/// Whether a hex string decodes (used by callers that need to tell a bad
/// key from a bad signature).
pub fn is_hex(s: &str) -> bool {
    hex_decode(s).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by the `cap_cert` fuzz target: `nbf + ttl_sec` overflowed (a
    /// panic in debug builds, a wrapped `exp` in release), and windows a
    /// cap could never verify in were minted without complaint.
    #[test]
    fn mint_refuses_windows_that_cannot_verify() {
        let seed = [7u8; 32];
        let pub_hex = super::super::request_sig::public_key_hex(&seed);
        let mint = |nbf: i64, ttl_sec: i64| {
            mint_device_cap(
                &seed,
                &pub_hex,
                &pub_hex,
                &"22".repeat(32),
                root_all_scope(),
                MintOptions {
                    nbf,
                    ttl_sec,
                    nonce: [0; 16],
                },
            )
        };
        for (nbf, ttl) in [
            (i64::MAX, 1),
            (1, i64::MAX),
            (0, 0),
            (100, -1),
            (1 << 53, 1),
            (-(1 << 53), 1),
        ] {
            assert_eq!(mint(nbf, ttl), Err(MintError::InvalidWindow), "{nbf} {ttl}");
        }
        let max = (1i64 << 53) - 1;
        let c = mint(max - 1, 1).unwrap();
        assert_eq!(verify_cap_cert(&c, max - 1, 0), Ok(()));
        assert!(verify_cap_cert(&mint(-max, 1).unwrap(), -max, 0).is_ok());
    }

    #[test]
    fn header_decoding_edge_cases() {
        assert_eq!(
            parse_authorization("Bearer x", 8192),
            Err(CapHeaderError::NotCap)
        );
        assert_eq!(
            parse_authorization("cap eyJ9", 8192),
            Err(CapHeaderError::NotCap)
        );
        assert_eq!(
            parse_authorization("Cap ", 8192),
            Err(CapHeaderError::Malformed)
        );
        assert_eq!(
            parse_authorization("Cap bnVsbA==", 8192),
            Err(CapHeaderError::Malformed),
            "null"
        );
        assert_eq!(
            parse_authorization("Cap e30=", 3),
            Err(CapHeaderError::TooLarge)
        );
        assert!(
            parse_authorization("Cap  e30= ", 8192).is_ok(),
            "payload is trimmed"
        );
        assert!(
            parse_authorization("Cap 77u/e30=", 8192).is_ok(),
            "BOM dropped"
        );
    }
}
