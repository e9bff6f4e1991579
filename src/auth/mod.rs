//! Authentication: who is calling, and with which roles.
//!
//! The server asks a [`Resolver`] once per request (only when the
//! collection is not public for the operation) and gets an [`Auth`] or an
//! [`AuthError`]. Two resolvers exist: [`Anonymous`] (every caller is
//! `public`) and [`cap::CapResolver`] (cap-certs with signed requests, the
//! official scheme). The per-collection access decision lives in [`roles`].
//!
//! | module | owns |
//! |---|---|
//! | [`cap`] | the cap-cert resolver: verification order, verified-cap cache |
//! | [`nonce`] | the bounded nonce replay cache |
//! | [`revocation`] | the revocation store (signed lists by issuer) and the `--revocations` file |
//! | [`restrictions`] | identity restrictions (`restrictions` at every config level) |
//! | [`roles`] | the access decision (`checkAuth` step 4), `self` folding |

pub mod cap;
pub mod nonce;
pub mod restrictions;
pub mod revocation;
pub mod revocation_shared;
pub mod roles;

use std::fmt;

/// The role granted to anonymous callers.
pub const ROLE_PUBLIC: &str = "public";
/// The role granted when the path's `{identity}` is the caller.
pub const ROLE_SELF: &str = "self";
/// The role of a self-signed device cap.
pub const ROLE_ROOT_DEVICE: &str = "device:root";

/// A resolved caller.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Auth {
    /// The caller's user id; `""` for anonymous callers.
    pub identity: String,
    pub roles: Vec<String>,
    /// The cap's `scope.paths` after `{identity}` substitution; `None` means
    /// unrestricted.
    pub scope_paths: Option<Vec<String>>,
    /// The cap's `scope.ops`; `None` for callers without a cap.
    pub scope_ops: Option<Vec<String>>,
    /// The request signer's Ed25519 public key (hex), for author proofs.
    pub presenter: Option<String>,
    /// A replay check left for [`Resolver::confirm`] (the ledger shared by
    /// several nodes); `None` once confirmed, or when there is none.
    pub shared_nonce: Option<nonce::SharedNonceCheck>,
}

impl Auth {
    /// The anonymous result: identity `""`, role `public`.
    pub fn anonymous() -> Self {
        Auth {
            roles: vec![ROLE_PUBLIC.to_owned()],
            ..Auth::default()
        }
    }
}

/// Why authentication failed. Only the status reaches the wire (as
/// `{"error":"Unauthorized"}` or `{"error":"Forbidden"}`), except for
/// [`AuthError::TooLarge`] whose message is sent; the reason is logged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AuthError {
    /// 401 with an internal reason.
    Unauthorized(String),
    /// 403 with an internal reason.
    Forbidden(String),
    /// 413 with the message sent to the client.
    TooLarge(&'static str),
}

impl AuthError {
    pub fn status(&self) -> u16 {
        match self {
            AuthError::Unauthorized(_) => 401,
            AuthError::Forbidden(_) => 403,
            AuthError::TooLarge(_) => 413,
        }
    }
}

impl fmt::Display for AuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AuthError::Unauthorized(r) => write!(f, "unauthorized: {r}"),
            AuthError::Forbidden(r) => write!(f, "forbidden: {r}"),
            AuthError::TooLarge(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for AuthError {}

/// Request headers by lower-case name (the first value when repeated).
pub trait HeaderLookup {
    fn header(&self, lower_name: &str) -> Option<&str>;
}

impl HeaderLookup for Vec<(&str, &str)> {
    fn header(&self, lower_name: &str) -> Option<&str> {
        self.iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(lower_name))
            .map(|(_, v)| *v)
    }
}

/// What a resolver may look at.
#[derive(Clone, Copy)]
pub struct AuthRequest<'a> {
    /// Upper-case method as received (`HEAD` stays `HEAD`).
    pub method: &'a str,
    /// Path and query as received, mount included (`/v1/pull/...?x=1`).
    pub path_and_query: &'a str,
    /// The mount prefix the router stripped (`""` or e.g. `/v1`).
    pub mount: &'a str,
    /// Normalised host (`Host` header, lower-case, default port dropped).
    pub host: &'a str,
    /// A request header by (lower-case) name.
    pub headers: &'a dyn HeaderLookup,
    /// The full request body.
    pub body: &'a [u8],
    /// The decoded `{identity}` path parameter of the matched route, if any.
    pub identity_param: Option<&'a str>,
    /// Server clock, ms.
    pub now_ms: i64,
}

/// Turns a request into a caller.
pub trait Resolver: Send + Sync + 'static {
    fn resolve(&self, req: &AuthRequest<'_>) -> Result<Auth, AuthError>;

    /// Finish what [`Resolver::resolve`] left to a round trip: an
    /// [`Auth`] with a [`Auth::shared_nonce`] is only a caller once the
    /// shared replay ledger accepts it. Callers await this whenever that
    /// field is set; the default has nothing to check.
    fn confirm(&self, mut auth: Auth) -> Confirming<'_> {
        auth.shared_nonce = None;
        Box::pin(std::future::ready(Ok(auth)))
    }
}

/// What [`Resolver::confirm`] returns.
pub type Confirming<'a> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<Auth, AuthError>> + Send + 'a>>;

/// Every caller is anonymous and `public` (the resolver for servers without
/// cap-cert auth).
#[derive(Clone, Copy, Debug, Default)]
pub struct Anonymous;

impl Resolver for Anonymous {
    fn resolve(&self, _req: &AuthRequest<'_>) -> Result<Auth, AuthError> {
        Ok(Auth::anonymous())
    }
}

/// Normalise a `Host` header value as the WHATWG URL parser does for
/// `http://<host>`: lower-case, default port (80 for http, 443 for https)
/// dropped. An empty or unparseable host gives `""`.
pub fn normalize_host(host: &str, https: bool) -> String {
    let host = host.trim();
    if host.is_empty() || host.contains(['/', '?', '#', '@', ' ']) {
        return String::new();
    }
    let lower = host.to_ascii_lowercase();
    let (name, port) = match lower.rfind(':') {
        Some(i) if !lower[i..].contains(']') => (&lower[..i], Some(&lower[i + 1..])),
        _ => (&lower[..], None),
    };
    match port {
        None | Some("") => name.to_owned(),
        Some(p) => match p.parse::<u16>() {
            Ok(n) if (n == 80 && !https) || (n == 443 && https) => name.to_owned(),
            Ok(n) => format!("{name}:{n}"),
            Err(_) => String::new(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::normalize_host;

    #[test]
    fn hosts_normalise_like_whatwg_urls() {
        assert_eq!(normalize_host("LocalHost:8080", false), "localhost:8080");
        assert_eq!(normalize_host("example.com:80", false), "example.com");
        assert_eq!(normalize_host("example.com:443", false), "example.com:443");
        assert_eq!(normalize_host("example.com:443", true), "example.com");
        assert_eq!(normalize_host("127.0.0.1:08787", false), "127.0.0.1:8787");
        assert_eq!(normalize_host("[::1]:8787", false), "[::1]:8787");
        assert_eq!(normalize_host("[::1]", false), "[::1]");
        assert_eq!(normalize_host("host:", false), "host");
        assert_eq!(normalize_host("", false), "");
    }
}
