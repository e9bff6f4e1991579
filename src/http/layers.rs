//! # Middleware
//!
//! The official server's optional middleware, as [`Handler`] wrappers:
//! [`cors`](super::cors) (outermost), [`headers`](super::headers) (security
//! headers) and [`timeout`](super::timeout) (innermost), in the official
//! order: a CORS preflight is answered before the security headers or the
//! timeout run, and a `408` still gets the security and CORS headers.
//!
//! Like the official middleware, which is registered on the sync router
//! (`app.use("*")`) and so only sees requests under the router's mount,
//! each wrapper acts only on paths equal to the mount or below it
//! ([`under_mount`]); other requests pass through untouched.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use super::cors::{Cors, CorsConfig};
use super::headers::{SecurityHeaders, WithSecurityHeaders};
use super::timeout::Timeout;
use super::{BoxFuture, Handler, Response};

/// Which middleware to put in front of the application. All off by
/// default, like the official server.
#[derive(Clone, Debug, Default)]
pub struct Middleware {
    /// CORS (`--cors-origin`, `--cors-credentials`, `--cors-max-age`).
    pub cors: Option<CorsConfig>,
    /// Security headers (`--security-headers`).
    pub security_headers: Option<SecurityHeaders>,
    /// Whole-request timeout (`--request-timeout-ms`): `408
    /// {"error":"Request timeout"}` when the application has not answered
    /// in time.
    pub request_timeout: Option<Duration>,
}

impl Middleware {
    /// Wrap `app` in the configured middleware; `mount` is the normalised
    /// mount prefix (`"/v1"`, or `""` for the root).
    pub fn wrap(&self, app: Arc<dyn Handler>, mount: &str) -> Arc<dyn Handler> {
        let mut h = app;
        if let Some(t) = self.request_timeout.filter(|t| !t.is_zero()) {
            h = Arc::new(Timeout::new(h, t, mount));
        }
        if let Some(s) = &self.security_headers {
            h = Arc::new(WithSecurityHeaders::new(h, s, mount));
        }
        if let Some(c) = &self.cors {
            h = Arc::new(Cors::new(h, c, mount));
        }
        h
    }
}

/// `fut`, then `f` on its response: how a wrapper post-processes the
/// application's answer. Unlike an `async` block around the inner call,
/// this does not move the request into a second, large future; the extra
/// allocation is a few words.
pub fn then<'a, F>(fut: BoxFuture<'a, Response>, f: F) -> BoxFuture<'a, Response>
where
    F: FnOnce(Response) -> Response + Send + Unpin + 'a,
{
    Box::pin(Then { fut, f: Some(f) })
}

struct Then<'a, F> {
    fut: BoxFuture<'a, Response>,
    f: Option<F>,
}

impl<F: FnOnce(Response) -> Response + Unpin> Future for Then<'_, F> {
    type Output = Response;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Response> {
        let this = self.get_mut();
        match this.fut.as_mut().poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(res) => match this.f.take() {
                Some(f) => Poll::Ready(f(res)),
                // Polled after completion: a caller bug; answer as is.
                None => Poll::Ready(res),
            },
        }
    }
}

/// Whether `path` is the mount itself or below it (`/v1`, `/v1/...`, but
/// not `/v1x`); every path when the mount is the root.
pub fn under_mount(path: &str, mount: &str) -> bool {
    match path.strip_prefix(mount) {
        Some(rest) => mount.is_empty() || rest.is_empty() || rest.starts_with('/'),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::under_mount;

    #[test]
    fn mount_scope() {
        assert!(under_mount("/v1", "/v1"));
        assert!(under_mount("/v1/", "/v1"));
        assert!(under_mount("/v1/pull/a", "/v1"));
        assert!(!under_mount("/v1x", "/v1"));
        assert!(!under_mount("/V1/health", "/v1"));
        assert!(!under_mount("/metrics", "/v1"));
        assert!(under_mount("/metrics", ""));
        assert!(under_mount("/", ""));
    }
}
