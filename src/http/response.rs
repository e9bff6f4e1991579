//! The one table from failures to status + body, and the response shapes
//! the official server produces (JSON with `Content-Type:
//! application/json`, the framework's plain-text 404/500, the bare 304).

use super::{Response, StatusCode};
use crate::auth::AuthError;
use crate::proto::json::{to_js_json, Object, Value};
use crate::sync::SyncError;
use http_types::Body;

/// `{"error":"<message>"}`.
pub fn error_body(message: &str) -> Value {
    let mut o = Object::with_capacity(1);
    o.insert("error", message.into());
    Value::Object(o)
}

fn status(code: u16) -> StatusCode {
    StatusCode::try_from(code).unwrap_or(StatusCode::InternalServerError)
}

/// A JSON answer with any status.
pub fn json_status(code: u16, body: &Value) -> Response {
    bytes(status(code), to_js_json(body), "application/json")
}

/// A 200 JSON answer.
pub fn json_ok(body: &Value) -> Response {
    json_status(200, body)
}

/// A body with an explicit `Content-Type`.
pub fn bytes(code: StatusCode, body: Vec<u8>, content_type: &str) -> Response {
    let mut res = Response::new(code);
    res.set_body(Body::from_bytes(body));
    res.insert_header("Content-Type", content_type);
    res
}

fn text(code: StatusCode, body: &str) -> Response {
    bytes(code, body.as_bytes().to_vec(), "text/plain; charset=UTF-8")
}

/// The framework 404: `text/plain; charset=UTF-8`, `404 Not Found`.
pub fn not_found() -> Response {
    text(StatusCode::NotFound, "404 Not Found")
}

/// The framework 500: `text/plain; charset=UTF-8`, `Internal Server Error`.
pub fn internal_error() -> Response {
    text(StatusCode::InternalServerError, "Internal Server Error")
}

/// An empty answer without `Content-Type`.
pub fn empty(code: StatusCode) -> Response {
    let mut res = Response::new(code);
    res.remove_header("Content-Type");
    res
}

/// `304` with no headers at all.
pub fn not_modified() -> Response {
    empty(StatusCode::NotModified)
}

/// Why a request failed before producing its answer.
#[derive(Debug)]
pub enum Failure {
    Auth(AuthError),
    Forbidden,
    /// An identity restriction refused the caller.
    Restricted,
    Sync(SyncError),
}

impl From<SyncError> for Failure {
    fn from(e: SyncError) -> Self {
        Failure::Sync(e)
    }
}

/// Map a failure to the official answer.
pub fn from_error(f: Failure) -> Response {
    match f {
        Failure::Auth(AuthError::TooLarge(m)) => json_status(413, &error_body(m)),
        Failure::Auth(e @ AuthError::Forbidden(_)) => {
            log::debug!("auth: {e}");
            json_status(403, &error_body("Forbidden"))
        }
        Failure::Auth(e) => {
            log::debug!("auth: {e}");
            json_status(401, &error_body("Unauthorized"))
        }
        Failure::Forbidden => json_status(403, &error_body("Forbidden")),
        Failure::Restricted => json_status(
            crate::auth::restrictions::RESTRICTED_STATUS,
            &error_body(crate::auth::restrictions::RESTRICTED_MESSAGE),
        ),
        Failure::Sync(e) => match e.body() {
            Some(body) => json_status(e.status(), &body),
            None => {
                log::error!("{e}");
                internal_error()
            }
        },
    }
}
