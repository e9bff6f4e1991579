//! # Metrics
//!
//! The server's counters and histograms, and their Prometheus text
//! exposition (format 0.0.4). Off by default: nothing here exists unless
//! `starfish serve --metrics` (or [`crate::server::MetricsOptions`]) asks for
//! it, so a server without metrics pays nothing.
//!
//! The hot path takes no lock: every counter and histogram bucket is an
//! [`AtomicU64`] updated with `Relaxed` ordering, and the label sets are fixed
//! when the registry is built (route classes and status codes for requests,
//! operations for the store, the replicated collections for replica syncs).
//! Locks are taken only by a scrape and by the rare replica sync. No label
//! ever carries a document key, a path parameter or an identity, so the
//! number of series is bounded by the config, not by traffic.
//!
//! | what | metric | labels |
//! |---|---|---|
//! | requests | `starfish_http_requests_total` | `route`, `status` |
//! | request latency | `starfish_http_request_duration_seconds` (histogram) | `route` |
//! | connections | `starfish_http_connections_open`, `starfish_http_connections_accepted_total`, `starfish_http_connections_rejected_total` | |
//! | auth caches | `starfish_auth_nonce_cache_entries`, `starfish_auth_cap_cache_entries` (read at scrape time) | |
//! | store | `starfish_store_operation_duration_seconds` (histogram), `starfish_store_operation_errors_total` | `op` |
//! | replica | `starfish_replica_syncs_total` | `collection`, `result` (`ok`, `failed`, `not_modified`) |
//!
//! Who records what: the HTTP connection loop counts requests and
//! connections (through [`crate::http::ServerConfig::metrics`]; see
//! [`crate::http::metrics`]), [`MeteredStore`] times store calls, and the
//! replica manager counts syncs.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

mod store;

pub use store::MeteredStore;

/// Upper bounds of the histogram buckets, in microseconds (10 µs .. 10 s);
/// a last, implicit bucket is `+Inf`.
const BOUNDS_US: [u64; 19] = [
    10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000,
    500_000, 1_000_000, 2_500_000, 5_000_000, 10_000_000,
];
/// The same bounds as Prometheus `le` label values (seconds).
const BOUNDS_LE: [&str; 19] = [
    "1e-05", "2.5e-05", "5e-05", "0.0001", "0.00025", "0.0005", "0.001", "0.0025", "0.005", "0.01",
    "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10",
];
const BUCKETS: usize = BOUNDS_US.len() + 1;

/// A latency histogram with fixed buckets: one atomic per bucket plus the
/// sum of observations (µs). Observing is two `fetch_add`s.
#[derive(Debug, Default)]
pub struct Histogram {
    buckets: [AtomicU64; BUCKETS],
    sum_us: AtomicU64,
}

impl Histogram {
    /// Record one observation.
    pub fn observe(&self, d: Duration) {
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        let i = BOUNDS_US.partition_point(|&b| b < us);
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
        self.sum_us.fetch_add(us, Ordering::Relaxed);
    }

    /// Observations so far.
    pub fn count(&self) -> u64 {
        self.buckets.iter().map(|b| b.load(Ordering::Relaxed)).sum()
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        let mut cumulative = 0u64;
        for (i, b) in self.buckets.iter().enumerate() {
            cumulative += b.load(Ordering::Relaxed);
            let le = BOUNDS_LE.get(i).copied().unwrap_or("+Inf");
            let _ = writeln!(
                out,
                "{name}_bucket{{{labels}{sep}le=\"{le}\"}} {cumulative}"
            );
        }
        // Seconds with six decimals, in integers (no float formatting code).
        let us = self.sum_us.load(Ordering::Relaxed);
        let sum = format!("{}.{:06}", us / 1_000_000, us % 1_000_000);
        let braces = if labels.is_empty() {
            String::new()
        } else {
            format!("{{{labels}}}")
        };
        let _ = writeln!(out, "{name}_sum{braces} {sum}");
        let _ = writeln!(out, "{name}_count{braces} {cumulative}");
    }
}

/// What kind of request a request was, by its path: the `route` label.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RouteClass {
    Health,
    /// `GET /config`.
    Config,
    /// `/pull/...` (documents and bundles), also under a namespace.
    Pull,
    /// `/push/...` (documents and bundle members), also under a namespace.
    Push,
    /// `/batch/pull`, also under a namespace.
    Batch,
    /// `/list/...`, also under a namespace.
    List,
    /// Any `OPTIONS` request (CORS preflights).
    Options,
    /// The metrics endpoint itself.
    Metrics,
    /// Anything else (answered 404).
    Other,
}

impl RouteClass {
    const ALL: [RouteClass; 9] = [
        RouteClass::Health,
        RouteClass::Config,
        RouteClass::Pull,
        RouteClass::Push,
        RouteClass::Batch,
        RouteClass::List,
        RouteClass::Options,
        RouteClass::Metrics,
        RouteClass::Other,
    ];

    /// The label value.
    pub fn label(self) -> &'static str {
        match self {
            RouteClass::Health => "health",
            RouteClass::Config => "config",
            RouteClass::Pull => "pull",
            RouteClass::Push => "push",
            RouteClass::Batch => "batch",
            RouteClass::List => "list",
            RouteClass::Options => "options",
            RouteClass::Metrics => "metrics",
            RouteClass::Other => "other",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// The status codes counted one by one; anything else is `status="other"`.
const STATUSES: [u16; 30] = [
    200, 201, 204, 206, 301, 302, 304, 307, 308, 400, 401, 403, 404, 405, 408, 409, 411, 413, 414,
    415, 417, 429, 431, 500, 501, 502, 503, 504, 505, 0,
];

fn status_index(code: u16) -> usize {
    // The table is sorted but for the final `0` ("other").
    STATUSES[..STATUSES.len() - 1]
        .binary_search(&code)
        .unwrap_or(STATUSES.len() - 1)
}

const CLASSES: usize = RouteClass::ALL.len();

/// Request counters and latency per route class.
#[derive(Debug, Default)]
pub struct HttpMetrics {
    requests: [[AtomicU64; STATUSES.len()]; CLASSES],
    latency: [Histogram; CLASSES],
    /// Connections being served now.
    pub connections_open: AtomicI64,
    /// Connections accepted (and served) so far.
    pub connections_accepted: AtomicU64,
    /// Connections closed at once because the connection cap was reached.
    pub connections_rejected: AtomicU64,
}

impl HttpMetrics {
    /// Count one answered request.
    pub fn record(&self, class: RouteClass, status: u16, elapsed: Duration) {
        self.requests[class.index()][status_index(status)].fetch_add(1, Ordering::Relaxed);
        self.latency[class.index()].observe(elapsed);
    }

    /// A connection was accepted and is being served.
    pub fn connection_opened(&self) {
        self.connections_open.fetch_add(1, Ordering::Relaxed);
        self.connections_accepted.fetch_add(1, Ordering::Relaxed);
    }

    /// A served connection ended.
    pub fn connection_closed(&self) {
        self.connections_open.fetch_sub(1, Ordering::Relaxed);
    }

    /// A connection was refused at the connection cap.
    pub fn connection_rejected(&self) {
        self.connections_rejected.fetch_add(1, Ordering::Relaxed);
    }

    /// Requests of `class` answered with `status` so far.
    pub fn requests(&self, class: RouteClass, status: u16) -> u64 {
        self.requests[class.index()][status_index(status)].load(Ordering::Relaxed)
    }
}

/// A store operation: the `op` label.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreOp {
    Get,
    Put,
    GetBytes,
    PutBytes,
    Delete,
    ListKeys,
}

impl StoreOp {
    const ALL: [StoreOp; 6] = [
        StoreOp::Get,
        StoreOp::Put,
        StoreOp::GetBytes,
        StoreOp::PutBytes,
        StoreOp::Delete,
        StoreOp::ListKeys,
    ];

    /// The label value.
    pub fn label(self) -> &'static str {
        match self {
            StoreOp::Get => "get",
            StoreOp::Put => "put",
            StoreOp::GetBytes => "get_bytes",
            StoreOp::PutBytes => "put_bytes",
            StoreOp::Delete => "delete",
            StoreOp::ListKeys => "list_keys",
        }
    }
}

const OPS: usize = StoreOp::ALL.len();

/// Store operation latency and errors per operation.
#[derive(Debug, Default)]
pub struct StoreMetrics {
    latency: [Histogram; OPS],
    errors: [AtomicU64; OPS],
}

impl StoreMetrics {
    /// Count one store call.
    pub fn record(&self, op: StoreOp, elapsed: Duration, failed: bool) {
        self.latency[op as usize].observe(elapsed);
        if failed {
            self.errors[op as usize].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Calls of `op` so far.
    pub fn calls(&self, op: StoreOp) -> u64 {
        self.latency[op as usize].count()
    }
}

/// How a replica sync ended: the `result` label.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyncResult {
    /// The sync completed (whether or not it wrote).
    Ok,
    /// The sync failed (transport, status, body, store or conflict).
    Failed,
    /// The primary answered `304 Not Modified`.
    NotModified,
}

impl SyncResult {
    const ALL: [SyncResult; 3] = [SyncResult::Ok, SyncResult::Failed, SyncResult::NotModified];

    /// The label value.
    pub fn label(self) -> &'static str {
        match self {
            SyncResult::Ok => "ok",
            SyncResult::Failed => "failed",
            SyncResult::NotModified => "not_modified",
        }
    }
}

/// A value read at scrape time (cache sizes).
struct GaugeFn {
    name: &'static str,
    help: &'static str,
    read: Box<dyn Fn() -> u64 + Send + Sync>,
}

/// The registry: everything one server records. Shared as an
/// `Arc<Metrics>` by whoever records into it.
#[derive(Default)]
pub struct Metrics {
    /// The mount prefix under which request paths are classified.
    mount: String,
    /// Requests and connections.
    pub http: HttpMetrics,
    /// Store calls.
    pub store: StoreMetrics,
    /// Replica syncs per collection (collections in registration order).
    replica: Mutex<Vec<(String, [u64; 3])>>,
    gauges: Mutex<Vec<GaugeFn>>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Metrics {
    /// A registry for a server mounted at the root.
    pub fn new() -> Self {
        Metrics::default()
    }

    /// A registry for a server mounted at `mount` (normalised, e.g. `/v1`),
    /// which request paths are classified under.
    pub fn with_mount(mount: &str) -> Self {
        Metrics {
            mount: mount.to_owned(),
            ..Metrics::default()
        }
    }

    /// The mount prefix request paths are classified under.
    pub fn mount(&self) -> &str {
        &self.mount
    }

    /// Register a gauge read at scrape time (e.g. a cache size). `name`
    /// must be a valid metric name; `help` one line.
    pub fn gauge_fn(
        &self,
        name: &'static str,
        help: &'static str,
        read: impl Fn() -> u64 + Send + Sync + 'static,
    ) {
        lock(&self.gauges).push(GaugeFn {
            name,
            help,
            read: Box::new(read),
        });
    }

    /// Declare the replicated collections, so their series exist (at 0)
    /// before the first sync.
    pub fn register_replica_collections<'a>(&self, names: impl IntoIterator<Item = &'a str>) {
        let mut r = lock(&self.replica);
        for name in names {
            if !r.iter().any(|(n, _)| n == name) {
                r.push((name.to_owned(), [0; 3]));
            }
        }
    }

    /// Count one replica sync of `collection`.
    pub fn replica_sync(&self, collection: &str, result: SyncResult) {
        let mut r = lock(&self.replica);
        let i = match r.iter().position(|(n, _)| n == collection) {
            Some(i) => i,
            None => {
                r.push((collection.to_owned(), [0; 3]));
                r.len() - 1
            }
        };
        r[i].1[result as usize] += 1;
    }

    /// Replica syncs of `collection` that ended with `result`.
    pub fn replica_syncs(&self, collection: &str, result: SyncResult) -> u64 {
        lock(&self.replica)
            .iter()
            .find(|(n, _)| n == collection)
            .map_or(0, |(_, c)| c[result as usize])
    }

    /// The Prometheus text exposition (format 0.0.4) of everything.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(16 * 1024);
        let h = &self.http;

        header(
            &mut out,
            "starfish_http_requests_total",
            "counter",
            "HTTP requests answered, by route class and status code.",
        );
        for class in RouteClass::ALL {
            for (i, code) in STATUSES.iter().enumerate() {
                let n = h.requests[class.index()][i].load(Ordering::Relaxed);
                if n == 0 {
                    continue;
                }
                let status = if *code == 0 {
                    "other".to_owned()
                } else {
                    code.to_string()
                };
                let _ = writeln!(
                    out,
                    "starfish_http_requests_total{{route=\"{}\",status=\"{status}\"}} {n}",
                    class.label()
                );
            }
        }

        header(
            &mut out,
            "starfish_http_request_duration_seconds",
            "histogram",
            "Time from a request reaching the application to its response, by route class.",
        );
        for class in RouteClass::ALL {
            h.latency[class.index()].render(
                &mut out,
                "starfish_http_request_duration_seconds",
                &format!("route=\"{}\"", class.label()),
            );
        }

        header(
            &mut out,
            "starfish_http_connections_open",
            "gauge",
            "Connections being served now.",
        );
        let _ = writeln!(
            out,
            "starfish_http_connections_open {}",
            h.connections_open.load(Ordering::Relaxed)
        );
        header(
            &mut out,
            "starfish_http_connections_accepted_total",
            "counter",
            "Connections accepted and served.",
        );
        let _ = writeln!(
            out,
            "starfish_http_connections_accepted_total {}",
            h.connections_accepted.load(Ordering::Relaxed)
        );
        header(
            &mut out,
            "starfish_http_connections_rejected_total",
            "counter",
            "Connections closed at once because the connection cap was reached.",
        );
        let _ = writeln!(
            out,
            "starfish_http_connections_rejected_total {}",
            h.connections_rejected.load(Ordering::Relaxed)
        );

        for g in lock(&self.gauges).iter() {
            header(&mut out, g.name, "gauge", g.help);
            let _ = writeln!(out, "{} {}", g.name, (g.read)());
        }

        header(
            &mut out,
            "starfish_store_operation_duration_seconds",
            "histogram",
            "Time spent in store operations, by operation.",
        );
        for op in StoreOp::ALL {
            self.store.latency[op as usize].render(
                &mut out,
                "starfish_store_operation_duration_seconds",
                &format!("op=\"{}\"", op.label()),
            );
        }
        header(
            &mut out,
            "starfish_store_operation_errors_total",
            "counter",
            "Store operations that failed, by operation.",
        );
        for op in StoreOp::ALL {
            let _ = writeln!(
                out,
                "starfish_store_operation_errors_total{{op=\"{}\"}} {}",
                op.label(),
                self.store.errors[op as usize].load(Ordering::Relaxed)
            );
        }

        let replica = lock(&self.replica);
        if !replica.is_empty() {
            header(
                &mut out,
                "starfish_replica_syncs_total",
                "counter",
                "Replica syncs from the primary, by collection and result.",
            );
            for (name, counts) in replica.iter() {
                for result in SyncResult::ALL {
                    let _ = writeln!(
                        out,
                        "starfish_replica_syncs_total{{collection=\"{}\",result=\"{}\"}} {}",
                        escape_label(name),
                        result.label(),
                        counts[result as usize]
                    );
                }
            }
        }
        out
    }
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// A label value as the text format wants it: `\`, `"` and newline escaped.
pub fn escape_label(v: &str) -> String {
    let mut s = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => s.push_str("\\\\"),
            '"' => s.push_str("\\\""),
            '\n' => s.push_str("\\n"),
            c => s.push(c),
        }
    }
    s
}

/// The `Content-Type` of [`Metrics::render`]'s output.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_upper_bounds_and_cumulative() {
        let h = Histogram::default();
        h.observe(Duration::from_micros(10)); // le 1e-05 (bound inclusive)
        h.observe(Duration::from_micros(11)); // le 2.5e-05
        h.observe(Duration::from_secs(60)); // +Inf
        let mut out = String::new();
        h.render(&mut out, "x", "a=\"b\"");
        assert!(out.contains("x_bucket{a=\"b\",le=\"1e-05\"} 1\n"), "{out}");
        assert!(
            out.contains("x_bucket{a=\"b\",le=\"2.5e-05\"} 2\n"),
            "{out}"
        );
        assert!(out.contains("x_bucket{a=\"b\",le=\"10\"} 2\n"), "{out}");
        assert!(out.contains("x_bucket{a=\"b\",le=\"+Inf\"} 3\n"), "{out}");
        assert!(out.contains("x_sum{a=\"b\"} 60.000021\n"), "{out}");
        assert!(out.contains("x_count{a=\"b\"} 3\n"), "{out}");
        assert_eq!(h.count(), 3);

        let h = Histogram::default();
        h.observe(Duration::from_micros(1_250));
        let mut out = String::new();
        h.render(&mut out, "y", "");
        assert!(out.contains("y_sum 0.001250\n"), "{out}");
        assert!(out.contains("y_bucket{le=\"0.001\"} 0\n"), "{out}");
        assert!(out.contains("y_bucket{le=\"0.0025\"} 1\n"), "{out}");
    }

    #[test]
    fn bucket_labels_match_the_bounds() {
        for (us, le) in BOUNDS_US.iter().zip(BOUNDS_LE) {
            assert_eq!(le.parse::<f64>().unwrap(), *us as f64 / 1e6);
        }
    }

    #[test]
    fn statuses_outside_the_table_are_other() {
        let m = Metrics::new();
        m.http.record(RouteClass::Pull, 200, Duration::ZERO);
        m.http.record(RouteClass::Pull, 599, Duration::ZERO);
        m.http.record(RouteClass::Pull, 0, Duration::ZERO);
        let text = m.render();
        assert!(text.contains("starfish_http_requests_total{route=\"pull\",status=\"200\"} 1\n"));
        assert!(text.contains("starfish_http_requests_total{route=\"pull\",status=\"other\"} 2\n"));
        assert_eq!(m.http.requests(RouteClass::Pull, 200), 1);
    }

    #[test]
    fn replica_series_exist_from_registration_and_labels_are_escaped() {
        let m = Metrics::new();
        m.register_replica_collections(["news", "we\"ird"]);
        m.replica_sync("news", SyncResult::NotModified);
        let text = m.render();
        assert!(text.contains(
            "starfish_replica_syncs_total{collection=\"news\",result=\"not_modified\"} 1\n"
        ));
        assert!(text
            .contains("starfish_replica_syncs_total{collection=\"we\\\"ird\",result=\"ok\"} 0\n"));
        assert_eq!(m.replica_syncs("news", SyncResult::NotModified), 1);
    }

    #[test]
    fn gauges_are_read_at_scrape_time() {
        let m = Metrics::new();
        let v = std::sync::Arc::new(AtomicU64::new(3));
        let r = v.clone();
        m.gauge_fn("g_entries", "a gauge", move || r.load(Ordering::Relaxed));
        assert!(m.render().contains("# TYPE g_entries gauge\ng_entries 3\n"));
        v.store(5, Ordering::Relaxed);
        assert!(m.render().contains("g_entries 5\n"));
    }
}
