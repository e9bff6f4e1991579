//! # One connection
//!
//! The per-connection loop: one read buffer per connection
//! (surplus bytes after a request stay in it for the next one, so pipelined
//! requests are answered in order), keep-alive, `Expect: 100-continue`, the
//! head / body / write / keep-alive deadlines and the minimum receive rate,
//! calling the [`Handler`] and writing its response. Every framing decision
//! is delegated to [`framing`](super::framing).
//!
//! A connection's buffer holds only bytes received: each read lands in a
//! per-thread scratch buffer and what arrived is appended, and the buffer
//! is released when a request leaves nothing behind in it, so an idle
//! keep-alive connection holds no buffer at all.
//!
//! While it waits for a request head the connection may be chosen to make
//! room for a new one ([`admission`](super::admission)); it is then closed
//! silently.
//!
//! A response is written as one head buffer (status line, the handler's
//! fields as borrowed slices in name order, our framing fields; no
//! `http-types` header map is built and nothing is formatted) followed by
//! the body in the same vectored write. A [`Prepared`] answer's fields join
//! the handler's, and its body pieces are written from where they lie: a
//! stored document's bytes are never copied on their way to the socket.

use std::fmt;
use std::io::{self, IoSlice};
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_io::Timer;
use futures_lite::FutureExt;
use futures_lite::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use http_types::headers::{CONNECTION, CONTENT_LENGTH, CONTENT_TYPE, TRANSFER_ENCODING};
use http_types::{Body, Method, Request, Response, StatusCode, Version};

use super::admission::{Admission, Close, Slot};
use super::framing::{
    analyze, parse_head, request_url, ChunkedDecoder, Framing, FramingError, ParsedHead,
    RequestMeta,
};
use super::metrics::Observation;
use super::prepared::{Piece, Prepared};
use super::signal::Signal;
use super::{Handler, PeerAddr, RawTarget, ServerConfig};

/// Bytes asked of the socket per read.
const READ_CHUNK: usize = 8 * 1024;

/// Buffer capacity above which the buffer is shrunk between requests.
const SHRINK_ABOVE: usize = 64 * 1024;
/// How long, and how many bytes, we keep draining a connection we are closing
/// after an error, so the kernel does not reset it before the client has read
/// our answer.
const LINGER_TIME: Duration = Duration::from_secs(1);
const LINGER_BYTES: usize = 256 * 1024;

/// State shared by the accept loop and every connection.
pub(crate) struct Shared<H> {
    pub(crate) handler: Arc<H>,
    pub(crate) config: ServerConfig,
    pub(crate) local_addr: SocketAddr,
    /// `local_addr` as text, formatted once.
    pub(crate) local_text: String,
    /// Raised when the server stops accepting.
    pub(crate) shutdown: Signal,
    /// Raised when the last connection ends after `shutdown`.
    pub(crate) drained: Signal,
    /// Open connections.
    pub(crate) active: AtomicUsize,
    /// The connection cap and per-address limit.
    pub(crate) admission: Arc<Admission>,
}

thread_local! {
    /// Where reads land before their bytes are appended to a connection's
    /// buffer (one per executor thread, allocated on first use).
    static SCRATCH: std::cell::RefCell<Box<[u8]>> =
        std::cell::RefCell::new(vec![0u8; READ_CHUNK].into_boxed_slice());
}

/// One read from `stream`, its bytes appended to `buf` (so `buf` grows by
/// what arrived, not by a read-sized block). A read that is not ready
/// holds no buffer while it waits.
struct ReadAppend<'a, S> {
    stream: &'a mut S,
    buf: &'a mut Vec<u8>,
}

impl<S: AsyncRead + Unpin> std::future::Future for ReadAppend<'_, S> {
    type Output = io::Result<usize>;

    fn poll(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<io::Result<usize>> {
        let this = self.get_mut();
        SCRATCH.with(|scratch| {
            let mut scratch = scratch.borrow_mut();
            let polled = std::pin::Pin::new(&mut *this.stream).poll_read(cx, &mut scratch);
            if let std::task::Poll::Ready(Ok(n)) = polled {
                this.buf.extend_from_slice(&scratch[..n]);
            }
            polled
        })
    }
}

/// Counts one open connection; dropping it (even by cancelling the task)
/// releases the slot.
pub(crate) struct ActiveGuard<H>(Arc<Shared<H>>);

impl<H> ActiveGuard<H> {
    pub(crate) fn new(shared: Arc<Shared<H>>) -> Self {
        shared.active.fetch_add(1, Ordering::SeqCst);
        if let Some(m) = &shared.config.metrics {
            m.http.connection_opened();
        }
        ActiveGuard(shared)
    }
}

impl<H> Drop for ActiveGuard<H> {
    fn drop(&mut self) {
        if let Some(m) = &self.0.config.metrics {
            m.http.connection_closed();
        }
        if self.0.active.fetch_sub(1, Ordering::SeqCst) == 1 && self.0.shutdown.is_set() {
            self.0.drained.set();
        }
    }
}

/// Why a connection ended (for the debug log).
#[derive(Debug)]
pub(crate) enum ConnEnd {
    /// The peer closed the connection.
    Eof,
    /// Idle keep-alive (or first-request) deadline passed with nothing received.
    Idle,
    /// The server is shutting down and the connection was idle.
    Shutdown,
    /// Our response said `Connection: close`.
    Closed,
    /// A socket error.
    Io(io::Error),
    /// Closed while waiting for a request head, to make room for a new
    /// connection.
    Evicted,
    /// The head or body did not arrive in time (answered 408).
    ReadTimeout,
    /// A response could not be written in time.
    WriteTimeout,
    /// The request was malformed (answered with the error's status).
    Framing(FramingError),
    /// The handler panicked (answered 500).
    HandlerPanic,
}

impl fmt::Display for ConnEnd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConnEnd::Eof => f.write_str("closed by peer"),
            ConnEnd::Idle => f.write_str("idle timeout"),
            ConnEnd::Shutdown => f.write_str("server shutdown"),
            ConnEnd::Closed => f.write_str("connection: close"),
            ConnEnd::Io(e) => write!(f, "I/O error: {e}"),
            ConnEnd::Evicted => f.write_str("closed to make room for a new connection"),
            ConnEnd::ReadTimeout => f.write_str("request read timeout"),
            ConnEnd::WriteTimeout => f.write_str("response write timeout"),
            ConnEnd::Framing(e) => write!(f, "bad request: {e}"),
            ConnEnd::HandlerPanic => f.write_str("handler panicked"),
        }
    }
}

/// What else than data and its deadline a read waits for.
#[derive(Clone, Copy)]
enum Watch {
    /// Nothing (a body is being read).
    Nothing,
    /// Being chosen to make room (part of a head has arrived).
    Eviction,
    /// That, or the server shutting down (nothing received yet).
    EvictionAndShutdown,
}

enum ReadOutcome {
    Data,
    Eof,
    Timeout,
    Shutdown,
    Evicted,
}

/// Serve one accepted connection (a TCP stream, or a TLS stream over one)
/// until it ends.
///
/// Not an `async fn`: its arguments would stay in the future beside the
/// connection built from them, for the life of the connection.
pub(crate) fn run<H: Handler, S: AsyncRead + AsyncWrite + Unpin>(
    shared: Arc<Shared<H>>,
    guard: ActiveGuard<H>,
    slot: Slot,
    stream: S,
) -> impl std::future::Future<Output = ()> {
    let mut conn = Conn {
        shared,
        stream,
        buf: Vec::new(),
        slot,
        waiting: true,
        received: 0,
    };
    async move {
        let end = conn.serve().await;
        log::debug!("connection from {} ended: {end}", conn.slot.peer());
        drop(guard);
    }
}

struct Conn<H, S> {
    shared: Arc<Shared<H>>,
    stream: S,
    /// The one read buffer of this connection.
    buf: Vec<u8>,
    /// Our place in the admission registry.
    slot: Slot,
    /// Whether the registry knows us as waiting for a head.
    waiting: bool,
    /// Bytes received so far (for the minimum receive rate).
    received: u64,
}

impl<H: Handler, S: AsyncRead + AsyncWrite + Unpin> Conn<H, S> {
    fn config(&self) -> &ServerConfig {
        &self.shared.config
    }

    async fn serve(&mut self) -> ConnEnd {
        let mut served = 0usize;
        loop {
            let head = match self.read_head(served == 0).await {
                Ok(h) => h,
                Err(end) => return end,
            };
            served += 1;
            // The rest of the exchange runs in its own allocation: the
            // connection's future stays as small as its wait for a head,
            // which is all an idle connection holds.
            if let Some(end) = Box::pin(self.exchange(head, served)).await {
                return end;
            }
            // An idle connection holds no buffer; nor is a large body's
            // buffer kept for the life of the connection.
            if self.buf.is_empty() {
                self.buf = Vec::new();
            } else if self.buf.capacity() > SHRINK_ABOVE {
                self.buf.shrink_to(self.buf.len());
            }
        }
    }

    /// One request after its head arrived: body, handler, response. `Some`
    /// when the connection ends.
    async fn exchange(&mut self, head: ParsedHead, served: usize) -> Option<ConnEnd> {
        let meta = match analyze(&head) {
            Ok(m) => m,
            Err(e) => return Some(self.fail(e).await),
        };
        // Only a request without Host (HTTP/1.0) names the server by its
        // address: no formatting of it otherwise.
        let fallback = match meta.authority {
            Some(_) => String::new(),
            None => self.shared.local_addr.to_string(),
        };
        let url = match request_url(&meta, &fallback) {
            Ok(u) => u,
            Err(e) => return Some(self.fail(e).await),
        };
        let body = match self.read_body(&meta).await {
            Ok(b) => b,
            Err(end) => return Some(end),
        };
        let is_head = meta.method == Method::Head;
        let head_minor = head.minor_version;
        let observation =
            Observation::begin(self.shared.config.metrics.as_ref(), meta.method, url.path());
        let req = self.build_request(head, &meta, url, body);

        let handler = self.shared.handler.clone();
        let called = std::panic::catch_unwind(AssertUnwindSafe(|| handler.handle(req)));
        let res = match called {
            Ok(fut) => AssertUnwindSafe(fut).catch_unwind().await.ok(),
            Err(_) => None,
        };
        if let Some(o) = observation {
            o.end(res.as_ref().map_or(500, |r| u16::from(r.status())));
        }
        let Some(res) = res else {
            log::error!("handler panicked on a request from {}", self.slot.peer());
            let bytes = plain_response(
                StatusCode::InternalServerError,
                "text/plain; charset=UTF-8",
                "Internal Server Error",
            );
            let _ = self.write(&bytes).await;
            self.linger().await;
            return Some(ConnEnd::HandlerPanic);
        };

        let limit_reached = self
            .config()
            .max_requests_per_connection
            .is_some_and(|max| served >= max);
        let close =
            !meta.keep_alive || limit_reached || self.shared.shutdown.is_set() || asks_close(&res);
        let keep_alive_10 = !close && head_minor == 0;
        if let Err(end) = self
            .write_response(res, is_head, close, keep_alive_10)
            .await
        {
            return Some(end);
        }
        if close {
            self.linger().await;
            return Some(ConnEnd::Closed);
        }
        None
    }

    /// Read until a whole head is in the buffer; consume it.
    async fn read_head(&mut self, first: bool) -> Result<ParsedHead, ConnEnd> {
        let now = Instant::now();
        let head_timeout = self.config().head_timeout;
        // The first request's head must arrive within head_timeout of the
        // accept; later ones within keep_alive_timeout (first byte) and then
        // head_timeout (whole head).
        let idle_deadline = after(
            now,
            if first {
                head_timeout
            } else {
                self.config().keep_alive_timeout
            },
        );
        // When the head started (the accept for the first request, its
        // first byte for later ones) and the byte count then: the fixed
        // deadline and the minimum rate run from there.
        let mut started = (first || !self.buf.is_empty()).then_some((now, self.received));
        loop {
            match parse_head(&self.buf, self.config().max_head_bytes) {
                Ok(Some((head, len))) => {
                    self.buf.drain(..len);
                    if self.waiting {
                        self.slot.busy();
                        self.waiting = false;
                    }
                    return Ok(head);
                }
                Ok(None) => {}
                // Boxed, here and below: the answer's write and linger
                // would otherwise sit in every waiting connection's future.
                Err(e) => return Err(Box::pin(self.fail(e)).await),
            }
            if !self.waiting {
                self.slot.waiting();
                self.waiting = true;
            }
            let idle = self.buf.is_empty();
            let outcome = match started {
                Some((at, base)) if !idle => {
                    let d = self.with_rate(after(at, head_timeout), at, base);
                    self.read_more(d, Watch::Eviction).await?
                }
                _ => {
                    self.read_more(idle_deadline, Watch::EvictionAndShutdown)
                        .await?
                }
            };
            match outcome {
                ReadOutcome::Data => {
                    if started.is_none() {
                        started = Some((Instant::now(), self.received));
                    }
                }
                ReadOutcome::Eof => return Err(ConnEnd::Eof),
                ReadOutcome::Shutdown => return Err(ConnEnd::Shutdown),
                ReadOutcome::Evicted => return Err(ConnEnd::Evicted),
                ReadOutcome::Timeout if idle => return Err(ConnEnd::Idle),
                ReadOutcome::Timeout => return Err(Box::pin(self.timeout()).await),
            }
        }
    }

    /// `deadline`, or earlier if the bytes received since `start` (`base`
    /// then) fall below the minimum receive rate after its grace period.
    fn with_rate(&self, deadline: Instant, start: Instant, base: u64) -> Instant {
        let rate = self.config().min_receive_rate;
        if rate == 0 {
            return deadline;
        }
        let got = self.received.saturating_sub(base);
        let earned = Duration::from_secs_f64(got as f64 / f64::from(rate));
        after(
            start,
            self.config().receive_rate_grace.saturating_add(earned),
        )
        .min(deadline)
    }

    /// Read the body as framed; consume exactly its bytes from the buffer.
    async fn read_body(&mut self, meta: &RequestMeta) -> Result<Vec<u8>, ConnEnd> {
        let max_body = self.config().max_body_bytes;
        let start = Instant::now();
        let base = self.received;
        let deadline = after(start, self.config().body_timeout);
        match meta.framing {
            Framing::None => Ok(Vec::new()),
            Framing::Length(n) => {
                if n > max_body as u64 {
                    return Err(self.fail(FramingError::BodyTooLarge).await);
                }
                let n = n as usize; // <= max_body_bytes
                if meta.expect_continue && n > 0 && self.buf.is_empty() {
                    self.send_continue().await?;
                }
                while self.buf.len() < n {
                    let d = self.with_rate(deadline, start, base);
                    match self.read_more(d, Watch::Nothing).await? {
                        ReadOutcome::Data => {}
                        ReadOutcome::Timeout => return Err(self.timeout().await),
                        ReadOutcome::Eof | ReadOutcome::Shutdown | ReadOutcome::Evicted => {
                            return Err(ConnEnd::Eof)
                        }
                    }
                }
                Ok(self.buf.drain(..n).collect())
            }
            Framing::Chunked => {
                if meta.expect_continue && self.buf.is_empty() {
                    self.send_continue().await?;
                }
                let mut dec = ChunkedDecoder::new(max_body, self.config().max_head_bytes);
                loop {
                    match dec.feed(&self.buf) {
                        Ok(used) => {
                            self.buf.drain(..used);
                        }
                        Err(e) => return Err(self.fail(e).await),
                    }
                    if dec.is_done() {
                        return Ok(dec.into_body());
                    }
                    let d = self.with_rate(deadline, start, base);
                    match self.read_more(d, Watch::Nothing).await? {
                        ReadOutcome::Data => {}
                        ReadOutcome::Timeout => return Err(self.timeout().await),
                        ReadOutcome::Eof | ReadOutcome::Shutdown | ReadOutcome::Evicted => {
                            return Err(ConnEnd::Eof)
                        }
                    }
                }
            }
        }
    }

    fn build_request(
        &self,
        head: ParsedHead,
        meta: &RequestMeta,
        url: http_types::Url,
        body: Vec<u8>,
    ) -> Request {
        let mut req = Request::new(meta.method, url);
        // `set_body` copies the body's mime into Content-Type: undo that, the
        // handler must see only the headers that were sent. (A new request's
        // body is already empty.)
        if !body.is_empty() {
            req.set_body(Body::from_bytes(body));
            req.remove_header(CONTENT_TYPE);
        }
        for (name, value) in &head.headers {
            // Names are tokens and values visible ASCII (checked by
            // parse_head), so these conversions cannot fail.
            if let (Ok(n), Ok(v)) = (
                http_types::headers::HeaderName::from_string(name.clone()),
                value.parse::<http_types::headers::HeaderValue>(),
            ) {
                req.append_header(n, v);
            }
        }
        req.set_version(Some(if head.minor_version == 0 {
            Version::Http1_0
        } else {
            Version::Http1_1
        }));
        // http-types keeps both as text: ours, without `fmt` (a cost seen
        // in profiles of small pulls).
        let mut text = AddrText::default();
        req.set_peer_addr(Some(text.of(*self.slot.peer())));
        req.set_local_addr(Some(self.shared.local_text.as_str()));
        req.ext_mut().insert(RawTarget(meta.path_and_query.clone()));
        req.ext_mut().insert(PeerAddr(*self.slot.peer()));
        req
    }

    /// Read more bytes into the buffer, until `deadline` (and, as `watch`
    /// says, until this connection is chosen to make room or the server
    /// shuts down).
    async fn read_more(&mut self, deadline: Instant, watch: Watch) -> Result<ReadOutcome, ConnEnd> {
        let old = self.buf.len();
        let Conn {
            stream, buf, slot, ..
        } = self;
        let read = async {
            match (ReadAppend { stream, buf }).await {
                Ok(0) => Ok((ReadOutcome::Eof, 0)),
                Ok(n) => Ok((ReadOutcome::Data, n)),
                Err(e) => Err(e),
            }
        };
        let timer = async {
            Timer::at(deadline).await;
            Ok((ReadOutcome::Timeout, 0))
        };
        // One waker in the connection's admission slot for both: no
        // waiter on a shared shutdown signal per idle connection.
        let closed = async {
            let shutdown = match watch {
                Watch::Nothing => return futures_lite::future::pending().await,
                Watch::Eviction => false,
                Watch::EvictionAndShutdown => true,
            };
            match slot.closed(shutdown).await {
                Close::Evicted => Ok((ReadOutcome::Evicted, 0)),
                Close::Shutdown => Ok((ReadOutcome::Shutdown, 0)),
            }
        };
        let result = read.or(timer).or(closed).await;
        match result {
            Ok((outcome, n)) => {
                debug_assert_eq!(self.buf.len(), old + n);
                self.received += n as u64;
                Ok(outcome)
            }
            Err(e) => {
                self.buf.truncate(old);
                Err(ConnEnd::Io(e))
            }
        }
    }

    /// Write all of `bytes` within the write deadline.
    async fn write(&mut self, bytes: &[u8]) -> Result<(), ConnEnd> {
        let timeout = self.config().write_timeout;
        let stream = &mut self.stream;
        let write = async {
            stream.write_all(bytes).await?;
            stream.flush().await?;
            Ok(true)
        };
        let timer = async {
            Timer::after(timeout).await;
            Ok(false)
        };
        match write.or(timer).await {
            Ok(true) => Ok(()),
            Ok(false) => Err(ConnEnd::WriteTimeout),
            Err(e) => Err(ConnEnd::Io(e)),
        }
    }

    /// Write all of `parts`, in order, with vectored writes, within the
    /// write deadline. No part may be empty.
    async fn write_parts(&mut self, parts: &[&[u8]]) -> Result<(), ConnEnd> {
        /// Slices per write.
        const BATCH: usize = 8;
        let timeout = self.config().write_timeout;
        let stream = &mut self.stream;
        let write = async {
            // The first part not yet written in full, and how much of it was.
            let (mut at, mut done) = (0, 0);
            while at < parts.len() {
                let mut slices = [IoSlice::new(&[]); BATCH];
                let mut n = 0;
                for (i, part) in parts[at..].iter().take(BATCH).enumerate() {
                    slices[i] = IoSlice::new(if i == 0 { &part[done..] } else { part });
                    n += 1;
                }
                let mut written = stream.write_vectored(&slices[..n]).await?;
                if written == 0 {
                    return Err(io::ErrorKind::WriteZero.into());
                }
                while written > 0 {
                    let left = parts[at].len() - done;
                    if written < left {
                        done += written;
                        break;
                    }
                    written -= left;
                    at += 1;
                    done = 0;
                }
            }
            stream.flush().await?;
            Ok(true)
        };
        let timer = async {
            Timer::after(timeout).await;
            Ok(false)
        };
        match write.or(timer).await {
            Ok(true) => Ok(()),
            Ok(false) => Err(ConnEnd::WriteTimeout),
            Err(e) => Err(ConnEnd::Io(e)),
        }
    }

    async fn send_continue(&mut self) -> Result<(), ConnEnd> {
        self.write(b"HTTP/1.1 100 Continue\r\n\r\n").await
    }

    /// Answer a framing error and close.
    async fn fail(&mut self, e: FramingError) -> ConnEnd {
        super::defense_log::bad_request(self.slot.peer(), &e);
        let bytes = plain_response(e.status(), "application/json", e.body());
        if self.write(&bytes).await.is_ok() {
            self.linger().await;
        }
        ConnEnd::Framing(e)
    }

    /// Answer a read timeout with 408 and close.
    async fn timeout(&mut self) -> ConnEnd {
        super::defense_log::slow_request(self.slot.peer());
        let bytes = plain_response(
            StatusCode::RequestTimeout,
            "application/json",
            r#"{"error":"Request Timeout"}"#,
        );
        let _ = self.write(&bytes).await;
        ConnEnd::ReadTimeout
    }

    /// Half-close and drain what the peer still sends for a short while, so
    /// our last answer is not lost to a TCP reset.
    async fn linger(&mut self) {
        let stream = &mut self.stream;
        let drain = async {
            // Half-close: FIN on TCP (close_notify first on TLS).
            let _ = stream.close().await;
            // On the heap: an array here would sit in every connection's
            // future, lingering or not.
            let mut scratch = vec![0u8; 4096];
            let mut total = 0;
            while total < LINGER_BYTES {
                match stream.read(&mut scratch).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => total += n,
                }
            }
        };
        drain
            .or(async {
                Timer::after(LINGER_TIME).await;
            })
            .await;
    }

    /// Write a handler's response: its own headers (and those of a
    /// [`Prepared`] answer it carries), our framing headers, and the body
    /// unless HEAD / 204 / 304. The head is built in one buffer without
    /// `http-types` allocations; the body follows in the same vectored
    /// write, a prepared answer's shared pieces straight from where they
    /// lie.
    async fn write_response(
        &mut self,
        mut res: Response,
        is_head: bool,
        close: bool,
        keep_alive_10: bool,
    ) -> Result<(), ConnEnd> {
        let code = res.status() as u16;
        let bodiless = code == 204 || code == 304 || (100..200).contains(&code);
        let prepared = Prepared::take(&mut res);
        let body = match &prepared {
            Some(_) => Vec::new(),
            None => {
                // `take_body` invents a Content-Type from the (empty)
                // replacement body when there was none: undo that.
                let had_content_type = res.header(CONTENT_TYPE).is_some();
                let body = res.take_body();
                if !had_content_type {
                    res.remove_header(CONTENT_TYPE);
                }
                match body.into_bytes().await {
                    Ok(b) => b,
                    Err(e) => {
                        log::error!("could not read response body: {e}");
                        return Err(ConnEnd::Io(io::Error::other(e.to_string())));
                    }
                }
            }
        };
        let body_len = prepared.as_ref().map_or(body.len(), Prepared::body_len);
        let mut out = Vec::with_capacity(256);
        out.extend_from_slice(b"HTTP/1.1 ");
        push_decimal(&mut out, u64::from(code));
        out.push(b' ');
        out.extend_from_slice(reason_phrase(code).as_bytes());
        out.extend_from_slice(b"\r\n");
        // A HEAD handler may state the length of the body it did not build.
        let stated_length = res
            .header(CONTENT_LENGTH)
            .map(|v| v.last().as_str())
            .filter(|v| !v.is_empty() && v.len() <= 19 && v.bytes().all(|b| b.is_ascii_digit()));
        let mut fields: Vec<(&str, &[u8])> =
            Vec::with_capacity(8 + prepared.as_ref().map_or(0, |p| p.headers().len()));
        for (name, values) in res.iter() {
            let n = name.as_str();
            if is_framing_field(n) {
                continue;
            }
            if !is_token(n) {
                log::warn!("dropping response header with invalid name {n:?}");
                continue;
            }
            for v in values.iter() {
                if !is_field_value(v.as_str().as_bytes()) {
                    log::warn!("dropping invalid value of response header {n}");
                    continue;
                }
                fields.push((n, v.as_str().as_bytes()));
            }
        }
        if let Some(p) = &prepared {
            let from_handler = fields.len();
            for (n, v) in p.headers() {
                // A wrapper's header replaces a prepared one (insert_header);
                // the framing fields are ours.
                if is_framing_field(n) || fields[..from_handler].iter().any(|(f, _)| f == n) {
                    continue;
                }
                if !is_token(n) || !is_field_value(v.bytes()) {
                    log::warn!("dropping invalid prepared response header {n:?}");
                    continue;
                }
                fields.push((n, v.bytes()));
            }
        }
        fields.sort_by(|a, b| a.0.cmp(b.0));
        for (n, v) in &fields {
            out.extend_from_slice(n.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(v);
            out.extend_from_slice(b"\r\n");
        }
        if !bodiless {
            out.extend_from_slice(b"content-length: ");
            match stated_length {
                Some(stated) if is_head && body_len == 0 => {
                    out.extend_from_slice(stated.as_bytes())
                }
                _ => push_decimal(&mut out, body_len as u64),
            }
            out.extend_from_slice(b"\r\n");
        }
        if close {
            out.extend_from_slice(b"connection: close\r\n");
        } else if keep_alive_10 {
            // HTTP/1.0 clients assume close unless told otherwise.
            out.extend_from_slice(b"connection: keep-alive\r\n");
        }
        out.extend_from_slice(b"\r\n");
        drop(fields);
        if bodiless || is_head {
            return self.write(&out).await;
        }
        let Some(p) = &prepared else {
            if body.is_empty() {
                return self.write(&out).await;
            }
            return self.write_parts(&[&out, &body]).await;
        };
        // The pieces before the first shared one go into the head's
        // buffer; the rest are written from where they are.
        let mut parts: Vec<&[u8]> = Vec::with_capacity(p.body_pieces().len() + 1);
        let mut pieces = p.body_pieces().iter().peekable();
        while let Some(piece) = pieces.next_if(|x| !x.is_shared()) {
            out.extend_from_slice(piece.bytes());
        }
        parts.push(&out);
        parts.extend(pieces.map(Piece::bytes).filter(|b| !b.is_empty()));
        self.write_parts(&parts).await
    }
}

/// The decimal digits of `n`.
fn push_decimal(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

/// A socket address as text (what `SocketAddr`'s `Display` prints), built
/// in place: IPv4 by hand on the stack, IPv6 through `fmt`.
#[derive(Default)]
struct AddrText {
    /// The longest IPv4 text: `255.255.255.255:65535`.
    short: [u8; 21],
    long: String,
}

impl AddrText {
    fn of(&mut self, addr: SocketAddr) -> &str {
        let SocketAddr::V4(a) = addr else {
            self.long = addr.to_string();
            return &self.long;
        };
        let mut at = 0;
        for (i, octet) in a.ip().octets().iter().enumerate() {
            if i > 0 {
                self.short[at] = b'.';
                at += 1;
            }
            at = put_decimal(&mut self.short, at, u16::from(*octet));
        }
        self.short[at] = b':';
        at = put_decimal(&mut self.short, at + 1, a.port());
        std::str::from_utf8(&self.short[..at]).unwrap_or_default()
    }
}

/// Write the digits of `n` at `buf[at..]`; the index after them.
fn put_decimal(buf: &mut [u8], at: usize, n: u16) -> usize {
    let len = match n {
        0..=9 => 1,
        10..=99 => 2,
        100..=999 => 3,
        1000..=9999 => 4,
        _ => 5,
    };
    let mut v = n;
    for i in (at..at + len).rev() {
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
    }
    at + len
}

/// `now + d`, saturating far in the future for huge configured durations.
fn after(now: Instant, d: Duration) -> Instant {
    now.checked_add(d)
        .or_else(|| now.checked_add(Duration::from_secs(100 * 365 * 24 * 3600)))
        .unwrap_or(now)
}

/// Whether the handler asked to close the connection.
fn asks_close(res: &Response) -> bool {
    res.header(CONNECTION).is_some_and(|values| {
        values.iter().any(|v| {
            v.as_str()
                .split(',')
                .any(|t| t.trim().eq_ignore_ascii_case("close"))
        })
    })
}

/// The fields the connection writes itself (a handler's are dropped).
fn is_framing_field(lower_name: &str) -> bool {
    lower_name == CONTENT_LENGTH.as_str()
        || lower_name == TRANSFER_ENCODING.as_str()
        || lower_name == CONNECTION.as_str()
}

fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

fn is_field_value(s: &[u8]) -> bool {
    s.iter().all(|&b| b == b'\t' || (b' '..=b'~').contains(&b))
}

/// The reason phrase Node's `http` module sends for a status code. Ours,
/// because `http-types` gets some wrong (it answers "Modified" for 304).
pub fn reason_phrase(code: u16) -> &'static str {
    match code {
        100 => "Continue",
        101 => "Switching Protocols",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        206 => "Partial Content",
        301 => "Moved Permanently",
        302 => "Found",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        411 => "Length Required",
        413 => "Payload Too Large",
        414 => "URI Too Long",
        415 => "Unsupported Media Type",
        417 => "Expectation Failed",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        _ => "Unknown",
    }
}

/// A complete framework-level response that closes the connection.
fn plain_response(status: StatusCode, content_type: &str, body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 {} {}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        status as u16,
        reason_phrase(status as u16),
        body.len()
    )
    .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_print_as_display_does() {
        let mut t = AddrText::default();
        for a in [
            "127.0.0.1:8787",
            "0.0.0.0:0",
            "255.255.255.255:65535",
            "10.20.3.40:443",
            "[::1]:80",
            "[fd00::1:2]:65535",
        ] {
            let addr: SocketAddr = a.parse().unwrap();
            assert_eq!(t.of(addr), addr.to_string());
        }
    }
}
