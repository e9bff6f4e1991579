//! # Request metrics and the `/metrics` endpoint
//!
//! The connection loop times every request it hands to the application
//! ([`Observation`], when [`ServerConfig::metrics`](super::ServerConfig) is
//! set): the route class from the path ([`classify`]: a few byte
//! comparisons, no routing), the status, and the time the application took,
//! recorded into [`crate::metrics::Metrics`] with relaxed atomic adds and no
//! allocation. [`MetricsEndpoint`] answers `GET /metrics` (at the root,
//! outside the mount), either in front of the application on the main
//! listener or alone on a `--metrics-listen` listener.

use std::sync::Arc;
use std::time::Instant;

use http_types::Method;

use super::{response, BoxFuture, Handler, Request, Response, StatusCode};
use crate::metrics::{Metrics, RouteClass, CONTENT_TYPE};

/// The path of the metrics endpoint.
pub const METRICS_PATH: &str = "/metrics";

/// The route class of a request, by method and path alone (`mount` is the
/// normalised mount prefix). A path that looks like a route but is not one
/// keeps its class; its `404` shows in the status label (so does a
/// `/metrics` request to a listener that does not serve metrics).
pub fn classify(method: Method, path: &str, mount: &str) -> RouteClass {
    if method == Method::Options {
        return RouteClass::Options;
    }
    if path == METRICS_PATH && matches!(method, Method::Get | Method::Head) {
        return RouteClass::Metrics;
    }
    let Some(rest) = path.strip_prefix(mount).and_then(|r| r.strip_prefix('/')) else {
        return RouteClass::Other;
    };
    let (a, rest) = segment(rest);
    let (b, rest) = match rest {
        Some(r) => {
            let (b, r) = segment(r);
            (Some(b), r)
        }
        None => (None, None),
    };
    match (a, b, rest) {
        ("health", None, _) => RouteClass::Health,
        ("config", None, _) => RouteClass::Config,
        ("list", Some(_), _) => RouteClass::List,
        ("pull", Some(_), _) => RouteClass::Pull,
        ("push", Some(_), _) => RouteClass::Push,
        ("batch", Some("pull"), None) => RouteClass::Batch,
        (_, Some("pull"), Some(_)) => RouteClass::Pull,
        (_, Some("push"), Some(_)) => RouteClass::Push,
        (_, Some("batch"), Some("pull")) => RouteClass::Batch,
        (_, Some("list"), Some(_)) => RouteClass::List,
        _ => RouteClass::Other,
    }
}

/// The first `/`-separated segment of `s` and what follows the `/`.
fn segment(s: &str) -> (&str, Option<&str>) {
    match s.bytes().position(|b| b == b'/') {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    }
}

fn is_scrape(req: &Request) -> bool {
    matches!(req.method(), Method::Get | Method::Head) && req.url().path() == METRICS_PATH
}

/// The exposition as a `200` response.
pub fn scrape(metrics: &Metrics) -> Response {
    response::bytes(StatusCode::Ok, metrics.render().into_bytes(), CONTENT_TYPE)
}

/// One request being timed by the connection loop.
pub(crate) struct Observation<'a> {
    metrics: &'a Metrics,
    class: RouteClass,
    start: Instant,
}

impl<'a> Observation<'a> {
    /// Start timing a request (nothing when metrics are off).
    pub(crate) fn begin(
        metrics: Option<&'a Arc<Metrics>>,
        method: Method,
        path: &str,
    ) -> Option<Self> {
        let metrics = metrics?;
        Some(Observation {
            class: classify(method, path, metrics.mount()),
            metrics,
            start: Instant::now(),
        })
    }

    /// The application answered with `status` (500 if it panicked).
    pub(crate) fn end(self, status: u16) {
        self.metrics
            .http
            .record(self.class, status, self.start.elapsed());
    }
}

/// Answers `GET /metrics`; every other request goes to the application it
/// stands in front of (main listener) or gets a 404 (alone, on a metrics
/// listener). Passing a request on costs a path comparison.
pub struct MetricsEndpoint {
    metrics: Arc<Metrics>,
    inner: Option<Arc<dyn Handler>>,
}

impl MetricsEndpoint {
    /// The whole application of a metrics-only listener.
    pub fn alone(metrics: Arc<Metrics>) -> Self {
        MetricsEndpoint {
            metrics,
            inner: None,
        }
    }

    /// `/metrics` in front of `inner`.
    pub fn in_front_of(inner: Arc<dyn Handler>, metrics: Arc<Metrics>) -> Self {
        MetricsEndpoint {
            metrics,
            inner: Some(inner),
        }
    }
}

impl Handler for MetricsEndpoint {
    fn handle(&self, req: Request) -> BoxFuture<'_, Response> {
        if is_scrape(&req) {
            return Box::pin(std::future::ready(scrape(&self.metrics)));
        }
        match &self.inner {
            Some(inner) => inner.handle(req),
            None => Box::pin(std::future::ready(response::not_found())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_classes() {
        let c = |p: &str| classify(Method::Get, p, "/v1");
        assert_eq!(c("/v1/health"), RouteClass::Health);
        assert_eq!(c("/v1/pull/public/notes/a"), RouteClass::Pull);
        assert_eq!(c("/v1/push/users/u/settings"), RouteClass::Push);
        assert_eq!(c("/v1/batch/pull"), RouteClass::Batch);
        assert_eq!(c("/v1/demo/pull/demo/board/main"), RouteClass::Pull);
        assert_eq!(c("/v1/demo/push/demo/board/main"), RouteClass::Push);
        assert_eq!(c("/v1/demo/batch/pull"), RouteClass::Batch);
        assert_eq!(c("/v1/health/x"), RouteClass::Other);
        assert_eq!(c("/v1/config"), RouteClass::Config);
        assert_eq!(c("/v1/list/"), RouteClass::List);
        assert_eq!(c("/v1/list/public/notes"), RouteClass::List);
        assert_eq!(c("/v1/demo/list/demo/board"), RouteClass::List);
        assert_eq!(c("/v1/pull"), RouteClass::Other);
        assert_eq!(c("/v1"), RouteClass::Other);
        assert_eq!(c("/health"), RouteClass::Other);
        assert_eq!(c("/v1x/health"), RouteClass::Other);
        assert_eq!(c("/metrics"), RouteClass::Metrics);
        assert_eq!(classify(Method::Post, "/metrics", "/v1"), RouteClass::Other);
        assert_eq!(c("/v1/metrics"), RouteClass::Other);
        assert_eq!(classify(Method::Get, "/health", ""), RouteClass::Health);
        assert_eq!(
            classify(Method::Options, "/v1/pull/x", "/v1"),
            RouteClass::Options
        );
    }
}
