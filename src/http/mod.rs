//! # The HTTP/1 server layer
//!
//! Our own small HTTP/1.0 + HTTP/1.1 server, written for this crate instead of
//! using `async-h1` on the server side (see `DESIGN.md`, "HTTP/1 server layer").
//! It is the only place in the crate that knows HTTP/1 bytes.
//!
//! | module | owns |
//! |---|---|
//! | [`framing`] | the pure, audited part: parsing a request head ([`parse_head`]), every framing decision (400 / 413 / 431 / 501), chunked decoding, the request URL. No I/O. |
//! | `conn` | the per-connection loop: one read buffer per connection (pipelining), keep-alive, `Expect: 100-continue`, deadlines, response writing. |
//! | `admission` | the open-connection registry: the connection cap and the per-address limit, making room by closing the connection waiting longest for a request head |
//! | `server` | the listener: accept loop, connection cap, `TCP_NODELAY`, graceful shutdown ([`serve`], [`serve_on`]); with the `tls` feature the TLS handshake before the connection loop (`serve_tls`, `serve_tls_on`). |
//! | [`layers`] | the optional middleware in front of the application ([`Middleware`]): [`cors`], security [`headers`], request [`timeout`] |
//! | [`metrics`] | request counting and the `/metrics` endpoint |
//! | [`prepared`] | answers whose headers and body are pieces, some shared with the store ([`Prepared`]): written without `http-types` allocations, the stored bytes uncopied, with one vectored write |
//! | [`client_ip`] | CIDR blocks, trusted proxies, and the client address of a request (peer, or `X-Forwarded-For` from a trusted proxy). |
//! | [`defense_log`] | one line per defensive action (refused or evicted connection, bad or slow request, 429, 507) with the peer address, rate-limited per kind |
//!
//! ## Threads and executors
//!
//! No threads are started here. [`serve`] creates an internal
//! [`async_executor::Executor`], spawns one task per connection on it and
//! drives it itself, so `futures_lite::future::block_on(serve(..))` (or
//! spawning the future on any runtime) is all an embedder needs; timers and
//! sockets are `async-io`'s, whose reactor thread is started lazily by
//! `async-io` itself. [`serve_on`] spawns the connection tasks on an executor
//! you own instead, so you can run it from several threads, each with
//! `async_io::block_on(run_polling(&ex, ..))`: [`run_polling`] is
//! `Executor::run` that lets the thread poll I/O every few tasks, which
//! keeps async-io's helper thread from taking the reactor over under load
//! (see its docs; it is what the `starfish` binary runs).
//!
//! ## What a [`Handler`] sees
//!
//! One call per request, with the body fully buffered (at most
//! [`ServerConfig::max_body_bytes`]). The [`Request`] carries the method, a URL
//! built as `http://{Host}{target}`, the HTTP version, every header line as
//! received (duplicates appended, no `Content-Type` invented), the body bytes,
//! and two extensions: [`RawTarget`] and [`PeerAddr`]. Read the body with
//! [`take_body_bytes`]: `http-types`' own body accessors invent a
//! `Content-Type` header on a request that had none.
//!
//! ## What is written back
//!
//! Exactly the headers present on the [`Response`], plus a `Content-Length`
//! computed from the buffered body (none for 204 and 304, which never carry a
//! body), `Connection: close` when the connection is closing and
//! `Connection: keep-alive` when an HTTP/1.0 connection stays open. A `HEAD`
//! response gets its headers and `Content-Length` but no body (if a HEAD
//! handler returns an empty body and a numeric `Content-Length`, that length is
//! sent). Otherwise any `Content-Length`, `Transfer-Encoding` or `Connection`
//! header set by the handler is replaced by ours (`Connection: close` from a
//! handler closes the connection). Headers are written in name order.
//!
//! A handler may instead return a bare `Response` carrying a [`Prepared`]
//! answer (its fields and body as pieces, some shared with the store): the
//! same rules apply, the prepared fields written together with the
//! response's own, a response field replacing a prepared one of the same
//! name. [`Prepared::materialize`] gives the plain `Response` for callers of
//! a handler outside this layer.
//!
//! Note that `http_types::Response::set_body` copies the body's mime into
//! `Content-Type` when none is set: a handler that wants no `Content-Type`
//! must remove it after setting the body. The server itself never adds one to
//! handler responses.

mod admission;
pub mod client_ip;
pub mod cors;
pub mod defense_log;
pub mod framing;
pub mod headers;
pub mod layers;
pub mod metrics;
pub mod prepared;
pub mod response;
pub mod router;
pub mod service;
pub mod timeout;

mod conn;
mod server;
mod signal;

use std::time::Duration;

pub use conn::reason_phrase;
pub use framing::{parse_head, FramingError, ParsedHead};
pub use http_types::{Request, Response, StatusCode};
pub use layers::Middleware;
pub use prepared::{Piece, Prepared};
pub use server::{run_polling, serve, serve_on};
#[cfg(feature = "tls")]
pub use server::{serve_tls, serve_tls_on};

/// A boxed, `Send` future, the return type of [`Handler::handle`].
pub type BoxFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;

/// The application side of the server.
///
/// Called once per request, with the body fully buffered (bounded by
/// [`ServerConfig::max_body_bytes`]). A panic inside `handle` is caught and
/// answered with a plain-text `500 Internal Server Error`, and the connection
/// is closed.
pub trait Handler: Send + Sync + 'static {
    /// Answer one request.
    fn handle(&self, req: Request) -> BoxFuture<'_, Response>;
}

/// A stack of wrappers built at run time ([`Middleware::wrap`]) is served
/// as an `Arc<dyn Handler>`.
impl Handler for std::sync::Arc<dyn Handler> {
    fn handle(&self, req: Request) -> BoxFuture<'_, Response> {
        (**self).handle(req)
    }
}

/// Take a request's body as bytes without the `http-types` side effect.
///
/// `http_types::Request::take_body` (and so `body_bytes`, `body_string`,
/// `body_json`) sets a `Content-Type: application/octet-stream` header on the
/// request when it had none, which would make a later `Content-Type` check
/// see a header the client never sent. This helper takes the body and removes
/// such an invented header again.
pub async fn take_body_bytes(req: &mut Request) -> Vec<u8> {
    let had_content_type = req.header(http_types::headers::CONTENT_TYPE).is_some();
    let body = req.take_body();
    if !had_content_type {
        req.remove_header(http_types::headers::CONTENT_TYPE);
    }
    // The server always hands over an in-memory body, so this cannot fail.
    body.into_bytes().await.unwrap_or_default()
}

/// The exact request-target as received (path + optional `?query`), stored in
/// `req.ext()`. For an absolute-form target (`http://host/p?q`) it is the
/// path-and-query part (`/p?q`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawTarget(pub String);

/// The peer's socket address, stored in `req.ext()`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeerAddr(pub std::net::SocketAddr);

/// Limits and deadlines of the HTTP/1 server. Every field is public; the
/// [`Default`] values are sized for small edge devices.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// Largest accepted request head (request line + headers, including the
    /// final empty line), and also the bound on chunked-body trailers.
    /// Above it: `431 Request Header Fields Too Large` and close.
    /// Default: 16 KiB.
    pub max_head_bytes: usize,
    /// Largest accepted request body. A `Content-Length` above it is answered
    /// `413` (`{"error":"Payload too large"}`) *before* any body byte is read,
    /// then the connection is closed; a chunked body is cut off with the same
    /// answer as soon as it grows past it. Default: 1 MiB.
    pub max_body_bytes: usize,
    /// Time allowed to receive a whole request head, counted from its first
    /// byte (from the accept for the first request). On expiry with a partial
    /// head: `408` and close; with nothing received: silent close.
    /// Default: 10 s.
    pub head_timeout: Duration,
    /// Time allowed to receive a whole request body, counted from the end of
    /// its head. On expiry: `408` and close. Default: 30 s.
    pub body_timeout: Duration,
    /// Time allowed to write one response (or a `100 Continue`). On expiry the
    /// connection is dropped. Default: 30 s.
    pub write_timeout: Duration,
    /// How long an idle keep-alive connection waits for the first byte of its
    /// next request before it is closed silently. Default: 5 s (Node's
    /// default).
    pub keep_alive_timeout: Duration,
    /// Cap on open connections. When the cap is reached, the connection that
    /// has waited longest without a complete request head (a slow head, an
    /// unfinished TLS handshake, an idle keep-alive connection) is closed to
    /// make room; only if every open connection is mid-request is the new
    /// one accepted and closed at once (the client sees an immediate
    /// EOF/reset rather than hanging in the kernel backlog). Default: 1024
    /// (about 2.7 MiB of server memory when all are idle, see the README).
    pub max_connections: usize,
    /// Cap on open connections from one peer address, enforced the same way
    /// (that address's longest-waiting connection makes room). `None` (the
    /// default): a quarter of [`max_connections`](Self::max_connections).
    pub max_connections_per_ip: Option<usize>,
    /// Addresses without a per-address limit (e.g. a reverse proxy, through
    /// which every client arrives from one address). Default: none.
    pub per_ip_exempt: Vec<client_ip::Cidr>,
    /// Minimum receive rate, in bytes per second, for a request head (from
    /// the accept for the first request, from its first byte after that)
    /// and a request body, once [`receive_rate_grace`](Self::receive_rate_grace)
    /// has passed: a slower sender is answered `408` and closed, before the
    /// fixed deadlines. 0 turns it off. Default: 256.
    pub min_receive_rate: u32,
    /// Time before [`min_receive_rate`](Self::min_receive_rate) applies.
    /// Default: 2 s.
    pub receive_rate_grace: Duration,
    /// Close a connection (with `Connection: close`) after this many
    /// requests; `None` for no limit. Default: `None`.
    pub max_requests_per_connection: Option<usize>,
    /// After shutdown is signalled, how long in-flight requests may take to
    /// finish before their connections are dropped. Default: 10 s.
    pub shutdown_grace: Duration,
    /// TLS only: time allowed for the whole handshake, counted from the
    /// accept. On expiry the connection is closed silently (no HTTP answer
    /// is possible before the handshake). Default: 10 s.
    pub handshake_timeout: Duration,
    /// Where to count connections (open, accepted, rejected at the cap);
    /// `None` (the default) counts nothing.
    pub metrics: Option<std::sync::Arc<crate::metrics::Metrics>>,
}

impl ServerConfig {
    /// The per-address limit in force: [`max_connections_per_ip`](Self::max_connections_per_ip)
    /// or a quarter of the cap (at least 1).
    pub fn per_ip_limit(&self) -> usize {
        self.max_connections_per_ip
            .unwrap_or(self.max_connections / 4)
            .max(1)
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            max_head_bytes: 16 * 1024,
            max_body_bytes: 1024 * 1024,
            head_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            write_timeout: Duration::from_secs(30),
            keep_alive_timeout: Duration::from_secs(5),
            max_connections: 1024,
            max_connections_per_ip: None,
            per_ip_exempt: Vec::new(),
            min_receive_rate: 256,
            receive_rate_grace: Duration::from_secs(2),
            max_requests_per_connection: None,
            shutdown_grace: Duration::from_secs(10),
            handshake_timeout: Duration::from_secs(10),
            metrics: None,
        }
    }
}
