//! # CORS
//!
//! Cross-origin resource sharing, off unless configured, with the official
//! `corsMiddleware` behaviour on the wire:
//!
//! * every `OPTIONS` request under the mount is a preflight: `204` with
//!   `Access-Control-Allow-Origin`, `-Allow-Methods`, `-Allow-Headers`,
//!   `-Max-Age` (default `86400`) and, with credentials,
//!   `Access-Control-Allow-Credentials: true`; the application never sees it;
//! * every other response under the mount gets `Access-Control-Allow-Origin`,
//!   `Access-Control-Expose-Headers` (when the list is not empty) and, with
//!   credentials, `Access-Control-Allow-Credentials: true`;
//! * the allowed origin is `*`, or, for a list, the request's `Origin` when
//!   it is in the list and otherwise the list's first entry (so a browser on
//!   an unlisted origin fails the check);
//! * credentials with the wildcard origin are refused when the server is
//!   set up ([`CorsConfig::check`], the official message).
//!
//! Deliberate differences, in `COMPATIBILITY.md`: the default
//! `Access-Control-Allow-Headers` lists every header the official client
//! sends (the official default, `Content-Type, Authorization, Accept`, lacks
//! the request-signature headers, so signed browser requests fail their
//! preflight); `ETag` and `Retry-After`, which the official client reads,
//! are exposed; with a list of origins, responses carry `Vary: Origin`
//! (the answer depends on the request's `Origin`, and a shared cache must
//! not hand one origin's answer to another); origins are checked at start.

use std::fmt;
use std::sync::Arc;

use http_types::Method;

use super::layers::{then, under_mount};
use super::{response, BoxFuture, Handler, Request, Response, StatusCode};

/// The official default `Access-Control-Allow-Methods`.
pub const DEFAULT_ALLOW_METHODS: [&str; 6] = ["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"];

/// The official default `Access-Control-Allow-Headers`.
pub const OFFICIAL_ALLOW_HEADERS: [&str; 3] = ["Content-Type", "Authorization", "Accept"];

/// Our default `Access-Control-Allow-Headers`: the official default plus
/// every other request header the official client sends (the signature
/// headers, the audience-cap presenter key, `X-Requested-With`; the
/// protocol package's `CORS_ALLOW_HEADERS`) and `If-None-Match` for
/// conditional pulls.
pub const DEFAULT_ALLOW_HEADERS: [&str; 9] = [
    "Content-Type",
    "Authorization",
    "Accept",
    "X-Starfish-Sig",
    "X-Starfish-Ts",
    "X-Starfish-Nonce",
    "X-Starfish-Pub",
    "X-Requested-With",
    "If-None-Match",
];

/// Our default `Access-Control-Expose-Headers`: the response headers the
/// official client reads that are not CORS-safelisted (the official default
/// exposes none).
pub const DEFAULT_EXPOSE_HEADERS: [&str; 2] = ["ETag", "Retry-After"];

/// The official default `Access-Control-Max-Age` (seconds).
pub const DEFAULT_MAX_AGE: u64 = 86_400;

/// Which origins may read responses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AllowOrigin {
    /// `*`: any origin (no credentials).
    Any,
    /// These origins (`scheme://host[:port]`); the first is answered to
    /// requests from anywhere else.
    List(Vec<String>),
}

/// CORS settings (the official `CorsConfig`).
#[derive(Clone, Debug)]
pub struct CorsConfig {
    pub origin: AllowOrigin,
    pub allow_methods: Vec<String>,
    pub allow_headers: Vec<String>,
    pub expose_headers: Vec<String>,
    /// `Access-Control-Max-Age`, seconds.
    pub max_age: u64,
    /// Send `Access-Control-Allow-Credentials: true` (not with
    /// [`AllowOrigin::Any`]).
    pub credentials: bool,
}

fn strings(xs: &[&str]) -> Vec<String> {
    xs.iter().map(|s| s.to_string()).collect()
}

impl Default for CorsConfig {
    /// Any origin, the official methods and max-age, our allow and expose
    /// lists, no credentials.
    fn default() -> Self {
        CorsConfig {
            origin: AllowOrigin::Any,
            allow_methods: strings(&DEFAULT_ALLOW_METHODS),
            allow_headers: strings(&DEFAULT_ALLOW_HEADERS),
            expose_headers: strings(&DEFAULT_EXPOSE_HEADERS),
            max_age: DEFAULT_MAX_AGE,
            credentials: false,
        }
    }
}

/// A CORS setting the server refuses to start with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CorsError {
    /// Credentials with the wildcard origin (the official check).
    CredentialsWithWildcard,
    /// An empty origin list.
    NoOrigins,
    /// `*` given together with explicit origins.
    WildcardInList,
    /// Not `scheme://host[:port]`.
    BadOrigin(String),
}

impl fmt::Display for CorsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            // The official message, word for word.
            CorsError::CredentialsWithWildcard => f.write_str(
                "CORS misconfiguration: credentials cannot be used with wildcard origin '*'. Specify explicit origins.",
            ),
            CorsError::NoOrigins => f.write_str("CORS misconfiguration: no origin given"),
            CorsError::WildcardInList => f.write_str(
                "CORS misconfiguration: '*' cannot be combined with explicit origins",
            ),
            CorsError::BadOrigin(o) => write!(
                f,
                "CORS misconfiguration: {o:?} is not an origin (scheme://host[:port], no path)"
            ),
        }
    }
}

impl std::error::Error for CorsError {}

/// Whether `s` looks like a serialised origin: `scheme://host[:port]`,
/// no path, query, fragment, user info, space or comma.
fn is_origin(s: &str) -> bool {
    let Some((scheme, rest)) = s.split_once("://") else {
        return false;
    };
    let scheme_ok = scheme
        .bytes()
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic())
        && scheme
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b));
    scheme_ok
        && !rest.is_empty()
        && rest
            .bytes()
            .all(|b| b.is_ascii_graphic() && !b"/?#@,\"\\".contains(&b))
}

impl CorsConfig {
    /// CORS for these origins (`["*"]` for any), other settings default.
    pub fn for_origins(origins: &[String]) -> Self {
        let origin = if origins.len() == 1 && origins[0] == "*" {
            AllowOrigin::Any
        } else {
            AllowOrigin::List(origins.to_vec())
        };
        CorsConfig {
            origin,
            ..CorsConfig::default()
        }
    }

    /// Refuse settings that cannot work: credentials with `*` (the
    /// official check), an empty list, `*` inside a list, a malformed
    /// origin.
    pub fn check(&self) -> Result<(), CorsError> {
        match &self.origin {
            AllowOrigin::Any if self.credentials => Err(CorsError::CredentialsWithWildcard),
            AllowOrigin::Any => Ok(()),
            AllowOrigin::List(list) if list.is_empty() => Err(CorsError::NoOrigins),
            AllowOrigin::List(list) => {
                for o in list {
                    if o == "*" {
                        return Err(CorsError::WildcardInList);
                    }
                    if !is_origin(o) {
                        return Err(CorsError::BadOrigin(o.clone()));
                    }
                }
                Ok(())
            }
        }
    }

    /// The `Access-Control-Allow-Origin` value for a request from
    /// `request_origin` (the official `resolveOrigin`).
    pub fn allowed_origin<'a>(&'a self, request_origin: Option<&'a str>) -> &'a str {
        match &self.origin {
            AllowOrigin::Any => "*",
            AllowOrigin::List(list) => match request_origin {
                Some(o) if list.iter().any(|x| x == o) => o,
                _ => list.first().map(String::as_str).unwrap_or(""),
            },
        }
    }
}

/// The CORS wrapper around an application.
pub struct Cors {
    inner: Arc<dyn Handler>,
    mount: String,
    config: CorsConfig,
    allow_methods: String,
    allow_headers: String,
    expose_headers: String,
    max_age: String,
    vary: bool,
}

impl Cors {
    /// Wrap `inner`; `config` should have passed [`CorsConfig::check`].
    pub fn new(inner: Arc<dyn Handler>, config: &CorsConfig, mount: &str) -> Self {
        Cors {
            inner,
            mount: mount.to_owned(),
            allow_methods: config.allow_methods.join(", "),
            allow_headers: config.allow_headers.join(", "),
            expose_headers: config.expose_headers.join(", "),
            max_age: config.max_age.to_string(),
            vary: matches!(config.origin, AllowOrigin::List(_)),
            config: config.clone(),
        }
    }

    fn preflight(&self, origin: &str) -> Response {
        let mut res = response::empty(StatusCode::NoContent);
        res.insert_header("Access-Control-Allow-Origin", origin);
        res.insert_header("Access-Control-Allow-Methods", self.allow_methods.as_str());
        res.insert_header("Access-Control-Allow-Headers", self.allow_headers.as_str());
        res.insert_header("Access-Control-Max-Age", self.max_age.as_str());
        if self.config.credentials {
            res.insert_header("Access-Control-Allow-Credentials", "true");
        }
        if self.vary {
            res.append_header("Vary", "Origin");
        }
        res
    }

    /// The headers every non-preflight answer gets.
    fn decorate(&self, res: &mut Response, origin: String) {
        res.insert_header("Access-Control-Allow-Origin", origin);
        if !self.expose_headers.is_empty() {
            res.insert_header(
                "Access-Control-Expose-Headers",
                self.expose_headers.as_str(),
            );
        }
        if self.config.credentials {
            res.insert_header("Access-Control-Allow-Credentials", "true");
        }
        if self.vary {
            res.append_header("Vary", "Origin");
        }
    }
}

impl Handler for Cors {
    fn handle(&self, req: Request) -> BoxFuture<'_, Response> {
        if !under_mount(req.url().path(), &self.mount) {
            return self.inner.handle(req);
        }
        // One Origin field as sent; several fields never match a list entry.
        let request_origin = req
            .header("origin")
            .filter(|v| v.iter().count() == 1)
            .map(|v| v.last().as_str());
        let origin = self.config.allowed_origin(request_origin).to_owned();
        if req.method() == Method::Options {
            return Box::pin(std::future::ready(self.preflight(&origin)));
        }
        then(self.inner.handle(req), move |mut res| {
            self.decorate(&mut res, origin);
            res
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(xs: &[&str]) -> CorsConfig {
        CorsConfig::for_origins(&strings(xs))
    }

    #[test]
    fn origin_resolution_follows_the_official_rule() {
        let any = list(&["*"]);
        assert_eq!(any.origin, AllowOrigin::Any);
        assert_eq!(any.allowed_origin(Some("http://x.test")), "*");
        assert_eq!(any.allowed_origin(None), "*");
        let two = list(&["http://a.test", "http://b.test:8080"]);
        assert_eq!(
            two.allowed_origin(Some("http://b.test:8080")),
            "http://b.test:8080"
        );
        assert_eq!(two.allowed_origin(Some("http://c.test")), "http://a.test");
        assert_eq!(
            two.allowed_origin(Some("http://B.test:8080")),
            "http://a.test"
        );
        assert_eq!(two.allowed_origin(None), "http://a.test");
    }

    #[test]
    fn start_up_checks() {
        let mut c = list(&["*"]);
        assert_eq!(c.check(), Ok(()));
        c.credentials = true;
        assert_eq!(c.check(), Err(CorsError::CredentialsWithWildcard));
        assert_eq!(
            c.check().unwrap_err().to_string(),
            "CORS misconfiguration: credentials cannot be used with wildcard origin '*'. Specify explicit origins."
        );
        let mut c = list(&["http://a.test"]);
        c.credentials = true;
        assert_eq!(c.check(), Ok(()));
        assert_eq!(
            list(&["http://a.test", "*"]).check(),
            Err(CorsError::WildcardInList)
        );
        assert_eq!(list(&[]).check(), Err(CorsError::NoOrigins));
        for bad in [
            "a.test",
            "http://a.test/",
            "http://a.test/x",
            "http://",
            "http://a.test,http://b.test",
            "http://u@a.test",
            "1http://a.test",
            "http://a .test",
            "null",
        ] {
            assert!(
                matches!(list(&[bad]).check(), Err(CorsError::BadOrigin(_))),
                "{bad}"
            );
        }
        for good in [
            "http://127.0.0.1:8080",
            "https://app.example.com",
            "http://[::1]:3000",
            "app+x://local",
        ] {
            assert_eq!(list(&[good]).check(), Ok(()), "{good}");
        }
    }

    #[test]
    fn default_allow_headers_cover_the_official_list_and_the_client() {
        for h in OFFICIAL_ALLOW_HEADERS {
            assert!(DEFAULT_ALLOW_HEADERS.contains(&h));
        }
        // The official protocol package's CORS_ALLOW_HEADERS.
        for h in [
            "Authorization",
            "Content-Type",
            "X-Starfish-Sig",
            "X-Starfish-Ts",
            "X-Starfish-Nonce",
            "X-Starfish-Pub",
            "X-Requested-With",
        ] {
            assert!(DEFAULT_ALLOW_HEADERS.contains(&h), "{h}");
        }
    }
}
