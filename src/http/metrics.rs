//! # Request metrics and the `/metrics` endpoint
//!
//! [`Observed`] is the outermost wrapper when metrics are on: it classifies
//! each request by its path ([`classify`]: a few string comparisons, no
//! routing), times the application, and counts the answer by route class
//! and status into [`crate::metrics::Metrics`] (atomics only). When the
//! endpoint is served on the main listener, `GET /metrics` (at the root,
//! outside the mount) is answered here; [`MetricsEndpoint`] is the whole
//! application of a separate `--metrics-listen` listener.

use std::sync::Arc;
use std::time::Instant;

use http_types::Method;

use super::{response, BoxFuture, Handler, Request, Response, StatusCode};
use crate::metrics::{Metrics, RouteClass, CONTENT_TYPE};

/// The path of the metrics endpoint.
pub const METRICS_PATH: &str = "/metrics";

/// The route class of a request, by method and path alone (`mount` is the
/// normalised mount prefix). A path that looks like a route but is not one
/// keeps its class; its `404` shows in the status label.
pub fn classify(method: &Method, path: &str, mount: &str) -> RouteClass {
    if *method == Method::Options {
        return RouteClass::Options;
    }
    let Some(rest) = path.strip_prefix(mount).and_then(|r| r.strip_prefix('/')) else {
        return RouteClass::Other;
    };
    let mut segs = rest.splitn(3, '/');
    let (a, b, c) = (segs.next().unwrap_or(""), segs.next(), segs.next());
    match (a, b, c) {
        ("health", None, _) => RouteClass::Health,
        ("pull", Some(_), _) => RouteClass::Pull,
        ("push", Some(_), _) => RouteClass::Push,
        ("batch", Some("pull"), None) => RouteClass::Batch,
        (_, Some("pull"), Some(_)) => RouteClass::Pull,
        (_, Some("push"), Some(_)) => RouteClass::Push,
        (_, Some("batch"), Some("pull")) => RouteClass::Batch,
        _ => RouteClass::Other,
    }
}

fn is_scrape(req: &Request) -> bool {
    matches!(req.method(), Method::Get | Method::Head) && req.url().path() == METRICS_PATH
}

/// The exposition as a `200` response.
pub fn scrape(metrics: &Metrics) -> Response {
    response::bytes(StatusCode::Ok, metrics.render().into_bytes(), CONTENT_TYPE)
}

/// Counts every request of the application it wraps.
pub struct Observed {
    inner: Arc<dyn Handler>,
    metrics: Arc<Metrics>,
    mount: String,
    endpoint: bool,
}

impl Observed {
    /// Wrap `inner`; with `endpoint`, also answer `GET /metrics`.
    pub fn new(
        inner: Arc<dyn Handler>,
        metrics: Arc<Metrics>,
        mount: &str,
        endpoint: bool,
    ) -> Self {
        Observed {
            inner,
            metrics,
            mount: mount.to_owned(),
            endpoint,
        }
    }

    async fn serve(&self, req: Request) -> Response {
        let start = Instant::now();
        let (class, res) = if self.endpoint && is_scrape(&req) {
            (RouteClass::Metrics, scrape(&self.metrics))
        } else {
            let class = classify(&req.method(), req.url().path(), &self.mount);
            (class, self.inner.handle(req).await)
        };
        self.metrics
            .http
            .record(class, u16::from(res.status()), start.elapsed());
        res
    }
}

impl Handler for Observed {
    fn handle(&self, req: Request) -> BoxFuture<'_, Response> {
        Box::pin(self.serve(req))
    }
}

/// The application of a metrics-only listener: `GET /metrics`, else 404.
pub struct MetricsEndpoint {
    metrics: Arc<Metrics>,
}

impl MetricsEndpoint {
    pub fn new(metrics: Arc<Metrics>) -> Self {
        MetricsEndpoint { metrics }
    }
}

impl Handler for MetricsEndpoint {
    fn handle(&self, req: Request) -> BoxFuture<'_, Response> {
        let res = if is_scrape(&req) {
            scrape(&self.metrics)
        } else {
            response::not_found()
        };
        Box::pin(async move { res })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_classes() {
        let get = Method::Get;
        let c = |p: &str| classify(&get, p, "/v1");
        assert_eq!(c("/v1/health"), RouteClass::Health);
        assert_eq!(c("/v1/pull/public/notes/a"), RouteClass::Pull);
        assert_eq!(c("/v1/push/users/u/settings"), RouteClass::Push);
        assert_eq!(c("/v1/batch/pull"), RouteClass::Batch);
        assert_eq!(c("/v1/demo/pull/demo/board/main"), RouteClass::Pull);
        assert_eq!(c("/v1/demo/push/demo/board/main"), RouteClass::Push);
        assert_eq!(c("/v1/demo/batch/pull"), RouteClass::Batch);
        assert_eq!(c("/v1/health/x"), RouteClass::Other);
        assert_eq!(c("/v1/pull"), RouteClass::Other);
        assert_eq!(c("/v1"), RouteClass::Other);
        assert_eq!(c("/health"), RouteClass::Other);
        assert_eq!(c("/v1x/health"), RouteClass::Other);
        assert_eq!(c("/metrics"), RouteClass::Other);
        assert_eq!(classify(&get, "/health", ""), RouteClass::Health);
        assert_eq!(
            classify(&Method::Options, "/v1/pull/x", "/v1"),
            RouteClass::Options
        );
    }
}
