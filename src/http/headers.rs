//! # Security headers
//!
//! The official `securityHeadersMiddleware`: after the application has
//! answered, set five response headers (replacing any of the same name) on
//! every response under the mount. Each has the official default and can be
//! changed or switched off on its own.
//!
//! | header | official option | default |
//! |---|---|---|
//! | `X-Content-Type-Options` | `contentTypeOptions` | `nosniff` |
//! | `X-Frame-Options` | `frameOptions` | `DENY` |
//! | `Strict-Transport-Security` | `strictTransportSecurity` | `max-age=31536000; includeSubDomains` |
//! | `X-XSS-Protection` | `xssProtection` | `1; mode=block` |
//! | `Referrer-Policy` | `referrerPolicy` | `strict-origin-when-cross-origin` |

use std::fmt;
use std::sync::Arc;

use super::layers::{then, under_mount};
use super::{BoxFuture, Handler, Request, Response};

/// The five headers: (official option name, header name, default value).
pub const SECURITY_HEADERS: [(&str, &str, &str); 5] = [
    ("contentTypeOptions", "X-Content-Type-Options", "nosniff"),
    ("frameOptions", "X-Frame-Options", "DENY"),
    (
        "strictTransportSecurity",
        "Strict-Transport-Security",
        "max-age=31536000; includeSubDomains",
    ),
    ("xssProtection", "X-XSS-Protection", "1; mode=block"),
    (
        "referrerPolicy",
        "Referrer-Policy",
        "strict-origin-when-cross-origin",
    ),
];

/// The security headers to send, in the table's order; `None` = off.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecurityHeaders {
    values: [Option<String>; 5],
}

impl Default for SecurityHeaders {
    /// All five with the official defaults.
    fn default() -> Self {
        SecurityHeaders {
            values: SECURITY_HEADERS.map(|(_, _, v)| Some(v.to_owned())),
        }
    }
}

/// An unknown header name or a value that cannot be sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SecurityHeaderError {
    UnknownName(String),
    BadValue(String),
}

impl fmt::Display for SecurityHeaderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecurityHeaderError::UnknownName(n) => {
                let names: Vec<String> = SECURITY_HEADERS
                    .iter()
                    .map(|(o, h, _)| format!("{h} ({o})"))
                    .collect();
                write!(
                    f,
                    "unknown security header {n:?}; one of: {}",
                    names.join(", ")
                )
            }
            SecurityHeaderError::BadValue(v) => {
                write!(
                    f,
                    "security header value {v:?} is empty or not printable ASCII"
                )
            }
        }
    }
}

impl std::error::Error for SecurityHeaderError {}

impl SecurityHeaders {
    /// The table index of a header, by header name (any case) or official
    /// option name.
    fn index(name: &str) -> Result<usize, SecurityHeaderError> {
        SECURITY_HEADERS
            .iter()
            .position(|(option, header, _)| *option == name || header.eq_ignore_ascii_case(name))
            .ok_or_else(|| SecurityHeaderError::UnknownName(name.to_owned()))
    }

    /// Set one header's value (`name`: header or official option name).
    pub fn set(&mut self, name: &str, value: &str) -> Result<(), SecurityHeaderError> {
        let i = Self::index(name)?;
        if value.is_empty() || !value.bytes().all(|b| (b' '..=b'~').contains(&b)) {
            return Err(SecurityHeaderError::BadValue(value.to_owned()));
        }
        self.values[i] = Some(value.to_owned());
        Ok(())
    }

    /// Switch one header off (the official `false`).
    pub fn disable(&mut self, name: &str) -> Result<(), SecurityHeaderError> {
        let i = Self::index(name)?;
        self.values[i] = None;
        Ok(())
    }

    /// The headers that are on, as (header name, value).
    pub fn enabled(&self) -> impl Iterator<Item = (&'static str, &str)> {
        SECURITY_HEADERS
            .iter()
            .zip(&self.values)
            .filter_map(|((_, h, _), v)| v.as_deref().map(|v| (*h, v)))
    }
}

/// The security-headers wrapper around an application.
pub struct WithSecurityHeaders {
    inner: Arc<dyn Handler>,
    mount: String,
    headers: Vec<(&'static str, String)>,
}

impl WithSecurityHeaders {
    pub fn new(inner: Arc<dyn Handler>, headers: &SecurityHeaders, mount: &str) -> Self {
        WithSecurityHeaders {
            inner,
            mount: mount.to_owned(),
            headers: headers.enabled().map(|(h, v)| (h, v.to_owned())).collect(),
        }
    }
}

impl Handler for WithSecurityHeaders {
    fn handle(&self, req: Request) -> BoxFuture<'_, Response> {
        if !under_mount(req.url().path(), &self.mount) {
            return self.inner.handle(req);
        }
        then(self.inner.handle(req), move |mut res| {
            for (name, value) in &self.headers {
                res.insert_header(*name, value.as_str());
            }
            res
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_switches() {
        let mut s = SecurityHeaders::default();
        assert_eq!(s.enabled().count(), 5);
        s.disable("X-Frame-Options").unwrap();
        s.disable("strictTransportSecurity").unwrap();
        s.set("referrer-policy", "no-referrer").unwrap();
        let on: Vec<_> = s.enabled().collect();
        assert_eq!(
            on,
            [
                ("X-Content-Type-Options", "nosniff"),
                ("X-XSS-Protection", "1; mode=block"),
                ("Referrer-Policy", "no-referrer"),
            ]
        );
        assert!(matches!(
            s.set("X-Powered-By", "x"),
            Err(SecurityHeaderError::UnknownName(_))
        ));
        assert!(matches!(
            s.set("frameOptions", "a\r\nb"),
            Err(SecurityHeaderError::BadValue(_))
        ));
        assert!(matches!(
            s.set("frameOptions", ""),
            Err(SecurityHeaderError::BadValue(_))
        ));
    }
}
