//! The client's error type: one enum a caller can match on.

use std::fmt;

/// Why a client operation failed.
///
/// HTTP statuses the protocol gives a meaning to have their own variant and
/// keep the server's body text; any other non-2xx status is
/// [`ClientError::Status`].
#[derive(Debug)]
pub enum ClientError {
    /// 409 on a push: the document changed since `baseHash`. `current_hash`
    /// is the body's `currentHash` field when present, else `""` (the
    /// official server never sends it).
    Conflict { current_hash: String, body: String },
    /// 401: no cap-cert where one is needed, or a bad signature, cap or nonce.
    Unauthorized { body: String },
    /// 403: the caller's roles or cap scope do not allow the request.
    Forbidden { body: String },
    /// 404: no such route (or, for binary pulls, no such object).
    NotFound { body: String },
    /// 413: the request body is larger than the server accepts.
    PayloadTooLarge { body: String },
    /// Any other non-2xx status.
    Status { status: u16, body: String },
    /// A socket error (connect, read, write).
    Io(std::io::Error),
    /// The request did not complete within the per-request timeout.
    Timeout,
    /// The TLS handshake failed (unknown issuer, expired certificate, name
    /// mismatch, ...); nothing was sent. `host` is the base URL's host.
    Tls { host: String, reason: String },
    /// The server answered something that is not the protocol: bad HTTP,
    /// bad JSON, or JSON of the wrong shape.
    Protocol(String),
    /// The client was configured wrongly (bad base URL, bad path, bad
    /// credentials).
    Config(String),
}

impl ClientError {
    /// The HTTP status for the status-carrying variants.
    pub fn status(&self) -> Option<u16> {
        Some(match self {
            ClientError::Conflict { .. } => 409,
            ClientError::Unauthorized { .. } => 401,
            ClientError::Forbidden { .. } => 403,
            ClientError::NotFound { .. } => 404,
            ClientError::PayloadTooLarge { .. } => 413,
            ClientError::Status { status, .. } => *status,
            _ => return None,
        })
    }

    /// The server's body text for the status-carrying variants.
    pub fn body(&self) -> Option<&str> {
        match self {
            ClientError::Conflict { body, .. }
            | ClientError::Unauthorized { body }
            | ClientError::Forbidden { body }
            | ClientError::NotFound { body }
            | ClientError::PayloadTooLarge { body }
            | ClientError::Status { body, .. } => Some(body),
            _ => None,
        }
    }

    /// Whether this is a 409 conflict.
    pub fn is_conflict(&self) -> bool {
        matches!(self, ClientError::Conflict { .. })
    }

    /// Map a non-2xx status and its body text to the matching variant.
    pub(crate) fn from_status(status: u16, body: String) -> ClientError {
        match status {
            401 => ClientError::Unauthorized { body },
            403 => ClientError::Forbidden { body },
            404 => ClientError::NotFound { body },
            409 => {
                let current_hash = crate::proto::json::parse(body.as_bytes())
                    .ok()
                    .and_then(|v| {
                        v.as_object()?
                            .get("currentHash")?
                            .as_str()
                            .map(str::to_owned)
                    })
                    .unwrap_or_default();
                ClientError::Conflict { current_hash, body }
            }
            413 => ClientError::PayloadTooLarge { body },
            status => ClientError::Status { status, body },
        }
    }
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::Conflict { .. } => {
                f.write_str("conflict (409): the document changed on the server (hash_mismatch)")
            }
            ClientError::Unauthorized { body } => write!(f, "unauthorized (401): {body}"),
            ClientError::Forbidden { body } => write!(f, "forbidden (403): {body}"),
            ClientError::NotFound { body } => write!(f, "not found (404): {body}"),
            ClientError::PayloadTooLarge { body } => write!(f, "payload too large (413): {body}"),
            ClientError::Status { status, body } => write!(f, "HTTP {status}: {body}"),
            ClientError::Io(e) => write!(f, "I/O error: {e}"),
            ClientError::Timeout => f.write_str("request timed out"),
            ClientError::Tls { host, reason } => {
                write!(f, "TLS handshake with {host} failed: {reason}")
            }
            ClientError::Protocol(m) => write!(f, "protocol error: {m}"),
            ClientError::Config(m) => write!(f, "client configuration error: {m}"),
        }
    }
}

impl std::error::Error for ClientError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ClientError::Io(e) => Some(e),
            _ => None,
        }
    }
}

impl From<std::io::Error> for ClientError {
    fn from(e: std::io::Error) -> Self {
        if e.kind() == std::io::ErrorKind::TimedOut {
            ClientError::Timeout
        } else {
            ClientError::Io(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_to_variants() {
        assert!(matches!(
            ClientError::from_status(401, "x".into()),
            ClientError::Unauthorized { .. }
        ));
        let c = ClientError::from_status(409, r#"{"currentHash":"ab"}"#.into());
        assert!(matches!(&c, ClientError::Conflict { current_hash, .. } if current_hash == "ab"));
        let c = ClientError::from_status(409, r#"{"error":"hash_mismatch"}"#.into());
        assert!(
            matches!(&c, ClientError::Conflict { current_hash, .. } if current_hash.is_empty())
        );
        let e = ClientError::from_status(418, "teapot".into());
        assert_eq!(e.status(), Some(418));
        assert_eq!(e.to_string(), "HTTP 418: teapot");
    }
}
