//! The cap-cert resolver: `Authorization: Cap …` plus a signed request.
//!
//! Follows the official verification order (auth.md §8) step by step, so
//! that the same request fails with the same status. Two additions:
//!
//! * **Verified-cap cache.** A request carries two signatures: the cap's and
//!   the request's. A cap header that verified once (well-formed, issuer
//!   signature good) is remembered by the SHA-256 of the header value, so a
//!   repeat costs one hash and the validity-window check instead of an
//!   Ed25519 verification. Bounded, FIFO eviction.
//! * **Revocation.** With a [`RevocationStore`] (`--revocations FILE`), a
//!   cap its issuer revoked is refused with 401 after the replay check, as
//!   the official resolver does; the lookup runs on every request, after the
//!   cache.
//! * **Mounts.** With a mount prefix (`/v1`), a request signature over the
//!   path with the prefix stripped is also accepted (the official client
//!   signs only what follows its `baseUrl`), and `/<mount>/<ns>/batch/pull`
//!   is recognised as a batch path (COMPATIBILITY.md).

use super::nonce::{NonceCache, NonceCacheConfig, NonceLedger, SharedNonceCheck};
use super::revocation::RevocationStore;
use super::{Auth, AuthError, AuthRequest, Confirming, Resolver, ROLE_ROOT_DEVICE};
use crate::proto::cap::{self as capcert, CapCert, CapHeaderError, CapKind};
use crate::proto::hash::sha256;
use crate::proto::request_sig::{self, RequestToSign};
use crate::proto::scope;
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};

/// Options of the cap-cert resolver; the defaults are the official ones.
#[derive(Clone, Debug)]
pub struct CapResolverConfig {
    /// Requests without a `Cap` header are anonymous (`true`) or 401.
    pub allow_anonymous: bool,
    /// Bound on the `Authorization` value, bytes (8192).
    pub max_cap_header_bytes: usize,
    /// Bound on a signed write's `Content-Length` (65536).
    pub max_body_bytes: u64,
    /// Request timestamp skew, ms (300 000).
    pub max_skew_ms: i64,
    /// Cap validity-window skew, s (300).
    pub cap_skew_s: i64,
    pub nonce: NonceCacheConfig,
    /// Verified caps remembered (0 disables the cache).
    pub verified_cap_cache: usize,
}

impl Default for CapResolverConfig {
    fn default() -> Self {
        CapResolverConfig {
            allow_anonymous: true,
            max_cap_header_bytes: capcert::DEFAULT_MAX_CAP_HEADER_BYTES,
            max_body_bytes: 65_536,
            max_skew_ms: request_sig::DEFAULT_MAX_SKEW_MS,
            cap_skew_s: capcert::DEFAULT_CAP_SKEW_SEC,
            nonce: NonceCacheConfig::default(),
            verified_cap_cache: 1024,
        }
    }
}

/// The cap-cert resolver.
pub struct CapResolver {
    config: CapResolverConfig,
    nonces: NonceCache,
    verified: Mutex<VerifiedCaps>,
    revocations: Option<Arc<RevocationStore>>,
    /// Nonces shared with other nodes (the PostgreSQL store), if any.
    shared_nonces: Option<Arc<dyn NonceLedger>>,
}

#[derive(Default)]
struct VerifiedCaps {
    map: HashMap<[u8; 32], Arc<CapCert>>,
    order: VecDeque<[u8; 32]>,
}

fn unauthorized(reason: impl Into<String>) -> AuthError {
    AuthError::Unauthorized(reason.into())
}

fn forbidden(reason: impl Into<String>) -> AuthError {
    AuthError::Forbidden(reason.into())
}

/// `^-?\d+$` then a JavaScript number (the official `parseIntegerHeader`).
fn parse_integer_header(v: &str) -> Option<f64> {
    request_sig::parse_ts_header(v)
}

impl CapResolver {
    pub fn new(config: CapResolverConfig) -> Self {
        CapResolver {
            nonces: NonceCache::new(config.nonce),
            config,
            verified: Mutex::new(VerifiedCaps::default()),
            revocations: None,
            shared_nonces: None,
        }
    }

    /// Also check every signed request's nonce against `ledger`, shared
    /// with the other nodes on the same database (awaited in `confirm`).
    pub fn with_shared_nonces(mut self, ledger: Arc<dyn NonceLedger>) -> Self {
        self.shared_nonces = Some(ledger);
        self
    }

    /// Consult this revocation store for every cap (step 14), cached or not.
    pub fn with_revocations(mut self, store: Arc<RevocationStore>) -> Self {
        self.revocations = Some(store);
        self
    }

    /// Well-formedness, window and signature, with the verified-cap cache in
    /// front of the time-independent parts.
    /// Steps 2-3: decode the header, unless the same header value verified
    /// before (then the cached cert comes back without decoding).
    fn decode_cert(&self, value: &str) -> Result<Decoded, CapHeaderError> {
        let payload = capcert::authorization_payload(value, self.config.max_cap_header_bytes)?;
        let key = sha256(value.as_bytes());
        if self.config.verified_cap_cache > 0 {
            let hit = self
                .verified
                .lock()
                .ok()
                .and_then(|v| v.map.get(&key).cloned());
            if let Some(cert) = hit {
                return Ok(Decoded::Verified(cert));
            }
        }
        Ok(Decoded::Fresh(key, capcert::decode_cap_payload(payload)?))
    }

    /// Step 7: well-formedness, window and signature for a fresh cert (then
    /// remembered); only the window for one verified before.
    fn verify_cert(&self, decoded: Decoded, now_ms: i64) -> Result<Arc<CapCert>, AuthError> {
        let now_s = now_ms.div_euclid(1000);
        let (key, cert) = match decoded {
            Decoded::Verified(cert) => {
                check_window(&cert, now_s, self.config.cap_skew_s)?;
                return Ok(cert);
            }
            Decoded::Fresh(key, cert) => (key, cert),
        };
        capcert::verify_cap_cert(&cert, now_s, self.config.cap_skew_s)
            .map_err(|r| unauthorized(format!("cap-cert {r}")))?;
        let cert = Arc::new(cert);
        if self.config.verified_cap_cache > 0 {
            if let Ok(mut v) = self.verified.lock() {
                if v.map.insert(key, cert.clone()).is_none() {
                    v.order.push_back(key);
                }
                while v.order.len() > self.config.verified_cap_cache {
                    if let Some(old) = v.order.pop_front() {
                        v.map.remove(&old);
                    }
                }
            }
        }
        Ok(cert)
    }

    /// Live nonces (for tests and metrics).
    pub fn nonce_count(&self) -> usize {
        self.nonces.len()
    }

    /// Verified cap-certs remembered (for tests and metrics).
    pub fn cap_cache_len(&self) -> usize {
        self.verified.lock().map(|v| v.map.len()).unwrap_or(0)
    }
}

/// A decoded `Authorization` header.
enum Decoded {
    /// Verified before (well-formed, good issuer signature).
    Verified(Arc<CapCert>),
    /// Not seen before: the digest of the header value and the cert.
    Fresh([u8; 32], CapCert),
}

/// The time checks of `verifyCapCert` for an already verified cert.
fn check_window(cert: &CapCert, now_s: i64, skew: i64) -> Result<(), AuthError> {
    let (nbf, exp) = (cert.nbf().unwrap_or(0.0), cert.exp().unwrap_or(0.0));
    let (now, skew) = (now_s as f64, skew as f64);
    if now < nbf - skew {
        return Err(unauthorized("cap-cert not-yet-valid"));
    }
    if now > exp + skew {
        return Err(unauthorized("cap-cert expired"));
    }
    Ok(())
}

/// `isBatchPullPath`, plus `/<mount>/<ns>/batch/pull` when a mount is set.
fn is_batch_path(p: &str, mount: &str) -> bool {
    scope::is_batch_pull_path(p, false)
        || (!mount.is_empty()
            && p.strip_prefix(mount)
                .is_some_and(|rest| scope::is_batch_pull_path(rest, false)))
}

impl Resolver for CapResolver {
    fn resolve(&self, req: &AuthRequest<'_>) -> Result<Auth, AuthError> {
        let header = |name: &str| req.headers.header(name);
        // 1-3: the Authorization header.
        let Some(value) = header("authorization") else {
            return self.anonymous_or_401();
        };
        let decoded = match self.decode_cert(value) {
            Ok(d) => d,
            Err(CapHeaderError::NotCap) => return self.anonymous_or_401(),
            Err(e) => return Err(unauthorized(e.to_string())),
        };
        // 4-6: signature headers and timestamp.
        let non_empty = |n: &str| header(n).filter(|v| !v.is_empty());
        let (Some(sig), Some(ts_text), Some(nonce)) = (
            non_empty("x-starfish-sig"),
            non_empty("x-starfish-ts"),
            non_empty("x-starfish-nonce"),
        ) else {
            return Err(unauthorized("missing request signature headers"));
        };
        let ts =
            parse_integer_header(ts_text).ok_or_else(|| unauthorized("invalid X-Starfish-Ts"))?;
        if !request_sig::within_clock_skew(ts, req.now_ms, self.config.max_skew_ms) {
            return Err(unauthorized("request timestamp outside clock skew"));
        }
        // 7: the cap itself.
        let cert = self.verify_cert(decoded, req.now_ms)?;
        // 8: kind dispatch (only device caps have a validator here).
        let kind = cert.kind();
        if kind != Some(CapKind::Device) {
            let k = cert
                .field("kind")
                .map(|v| v.as_str().unwrap_or("?").to_owned())
                .unwrap_or_default();
            return Err(unauthorized(format!(
                "cap-cert kind \"{k}\" has no registered validator"
            )));
        }
        // 9: body bound for write methods.
        let method = req.method.to_ascii_uppercase();
        let is_write = matches!(method.as_str(), "POST" | "PUT" | "PATCH" | "DELETE");
        if is_write {
            let cl = header("content-length")
                .ok_or(AuthError::TooLarge("missing Content-Length on write"))?;
            let n = parse_integer_header(cl)
                .filter(|n| *n >= 0.0)
                .ok_or(AuthError::TooLarge("invalid Content-Length"))?;
            if n > self.config.max_body_bytes as f64 {
                return Err(AuthError::TooLarge("request body too large"));
            }
        }
        let body = if is_write { req.body } else { &[] };
        let body = request_sig::signed_body(&method, header("content-type"), body);
        // 10-11: the request signature, by the cap's subject.
        let sub = cert
            .sub()
            .ok_or_else(|| unauthorized("cap-cert missing subject"))?;
        let p = req.path_and_query;
        let body_hash = crate::proto::hash::sha256_hex(body);
        let verifies = |p: &str| {
            let to_sign = RequestToSign {
                method: &method,
                path_and_query: p,
                host: req.host,
                body,
                ts,
                nonce_b64: nonce,
            };
            let input = request_sig::canonical_input_with_body_hash(&to_sign, &body_hash);
            request_sig::verify_ed25519(sub, sig, input.as_bytes())
        };
        let stripped = (!req.mount.is_empty())
            .then(|| p.strip_prefix(req.mount))
            .flatten()
            .filter(|rest| rest.starts_with('/'));
        if !verifies(p) && !stripped.is_some_and(verifies) {
            return Err(unauthorized("bad request signature"));
        }
        // 13: replay.
        if !self.nonces.check_and_remember(sub, nonce, req.now_ms) {
            return Err(unauthorized("nonce replay"));
        }
        // 14: revocation, by issuer, subject and the cap's own nonce. After
        // the cache, so a cap verified before its revocation is refused too.
        if let Some(store) = &self.revocations {
            let iss = cert.iss().unwrap_or_default();
            if store.is_revoked(iss, sub, cert.nonce().unwrap_or_default()) {
                return Err(unauthorized("cap-cert revoked"));
            }
        }
        // 15-16: identity and scope paths.
        let identity = cert.iss_user_id().unwrap_or_default().to_owned();
        let expanded = cert
            .scope_paths()
            .map(|p| scope::expand_identity(&p, &identity));
        // 17: the URL path must be inside the cap's scope (batch paths are
        // checked per entry instead).
        if !is_batch_path(p, req.mount)
            && !scope::match_scope_path(scope::strip_action_prefix(p), expanded.as_deref())
        {
            return Err(forbidden("request path is outside cap scope"));
        }
        // 18: an {identity} route must name the caller.
        if let Some(id) = req.identity_param {
            if id != identity {
                return Err(forbidden(
                    "request identity does not match cap-bound identity",
                ));
            }
        }
        Ok(Auth {
            roles: synthesize_roles(&cert),
            identity,
            scope_paths: expanded,
            scope_ops: Some(cert.scope_ops()),
            presenter: Some(sub.to_owned()),
            // 13, across nodes: awaited by `confirm`, off this thread.
            shared_nonce: self.shared_nonces.as_ref().map(|_| SharedNonceCheck {
                signer: sub.to_owned(),
                nonce: nonce.to_owned(),
                now_ms: req.now_ms,
                expires_ms: req.now_ms + self.config.nonce.window_ms,
            }),
        })
    }

    /// Step 13 across nodes: the nonce must be new to the shared ledger
    /// too (a database round trip, awaited).
    fn confirm(&self, mut auth: Auth) -> Confirming<'_> {
        let check = auth.shared_nonce.take();
        Box::pin(async move {
            let (Some(ledger), Some(c)) = (&self.shared_nonces, check) else {
                return Ok(auth);
            };
            match ledger
                .check_and_remember(&c.signer, &c.nonce, c.now_ms, c.expires_ms)
                .await
            {
                Ok(true) => Ok(auth),
                Ok(false) => Err(unauthorized("nonce replay (seen by another node)")),
                Err(e) => Err(unauthorized(e.to_string())),
            }
        })
    }
}

impl CapResolver {
    fn anonymous_or_401(&self) -> Result<Auth, AuthError> {
        if self.config.allow_anonymous {
            Ok(Auth::anonymous())
        } else {
            Err(unauthorized("missing Authorization: Cap header"))
        }
    }
}

/// `synthesizeRoles`: `cap:<op>:<collection>` for every pair (taken
/// literally, `*` included), plus `device:root` for a self-signed device cap.
///
/// Repeated ops and collections add nothing, so they are dropped first
/// (keeping first occurrences, which gives the same roles in the same order
/// as the official nested loop) and the work is linear in the cap.
pub fn synthesize_roles(cert: &CapCert) -> Vec<String> {
    fn distinct(v: Vec<String>) -> Vec<String> {
        let mut seen = HashSet::new();
        v.into_iter().filter(|x| seen.insert(x.clone())).collect()
    }
    let ops = distinct(cert.scope_ops());
    let collections = distinct(cert.scope_collections());
    let mut seen = HashSet::new();
    let mut roles: Vec<String> = Vec::new();
    for op in &ops {
        for col in &collections {
            let r = format!("cap:{op}:{col}");
            if seen.insert(r.clone()) {
                roles.push(r);
            }
        }
    }
    crate::proto::work::add(ops.len() * collections.len());
    if cert.is_root_device_cap() {
        roles.push(ROLE_ROOT_DEVICE.to_owned());
    }
    roles
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::json::{Object, Value};

    fn cert(ops: &[&str], cols: &[String]) -> CapCert {
        let arr = |xs: Vec<Value>| Value::Array(xs);
        let mut scope = Object::new();
        scope.insert("ops", arr(ops.iter().map(|s| Value::from(*s)).collect()));
        scope.insert(
            "collections",
            arr(cols.iter().map(|s| Value::from(s.as_str())).collect()),
        );
        let mut o = Object::new();
        o.insert("kind", "device".into());
        o.insert("scope", Value::Object(scope));
        CapCert::from_value(Value::Object(o))
    }

    /// The official nested loop, as it reads.
    fn naive(ops: &[&str], cols: &[String]) -> Vec<String> {
        let mut roles: Vec<String> = Vec::new();
        for op in ops {
            for col in cols {
                let r = format!("cap:{op}:{col}");
                if !roles.contains(&r) {
                    roles.push(r);
                }
            }
        }
        roles
    }

    #[test]
    fn roles_match_the_nested_loop_in_order() {
        let cols: Vec<String> = ["b", "*", "a", "b", "a:x"].map(String::from).to_vec();
        let ops = ["write", "read", "write", "list", "read"];
        assert_eq!(synthesize_roles(&cert(&ops, &cols)), naive(&ops, &cols));
    }

    #[test]
    fn repeated_ops_and_collections_cost_linear_work() {
        let work = |n: usize| {
            let cols: Vec<String> = (0..n).map(|i| format!("c{}", i % 7)).collect();
            let ops: Vec<&str> = ["read", "write"].iter().copied().cycle().take(n).collect();
            let c = cert(&ops, &cols);
            let (roles, units) = crate::proto::work::count(|| synthesize_roles(&c));
            assert_eq!(roles.len(), 14);
            units
        };
        let (a, b) = (work(1000), work(2000));
        assert!(b <= 2 * a + 64, "{a} -> {b}");
    }
}
