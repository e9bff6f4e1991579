//! HTTP/1.1 transport: the base URL, a small pool of keep-alive
//! connections (TCP, or TLS over TCP for `https://` with the `tls` feature),
//! and one request/response exchange over `async-h1`'s client on
//! `async-net` streams.
//!
//! TLS: the server's certificate is verified against the configured roots
//! (see [`crate::tls::client_config`]) and the base URL's host name (SNI is
//! sent for names, not for IP addresses). A failed handshake is
//! [`ClientError::Tls`], naming the host and the reason; no request has
//! been sent then.
//!
//! A connection goes back to the pool only when its response was framed
//! (`Content-Length`, chunked, or a bodiless status), read to the end, and
//! did not say `Connection: close`. A request that fails before any response
//! arrived on a *reused* connection (the server may have closed it while it
//! sat idle) is retried once on a fresh connection.

use super::error::ClientError;
use async_net::TcpStream;
use futures_lite::{AsyncRead, AsyncReadExt, AsyncWrite};
use http_types::{Method, Request, Url};
use std::io;
use std::pin::Pin;
use std::sync::Mutex;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

/// A parsed `http://` or `https://` base URL.
#[derive(Clone, Debug)]
pub(crate) struct BaseUrl {
    /// `https://`.
    pub tls: bool,
    /// `scheme://host[:port]`.
    origin: String,
    /// `new URL(baseUrl).host`: the host, plus `:port` unless it is the
    /// scheme's default. Sent as `Host` and signed as `h`.
    pub host: String,
    /// Host name or IP literal to connect to (no brackets).
    connect_host: String,
    port: u16,
    /// The path inside the base URL, without a trailing `/` (`""` or `/v1`).
    pub path: String,
}

impl BaseUrl {
    /// Parse a base URL. One trailing `/` is removed first, as the official
    /// client does. `http` or `https`.
    pub fn parse(base: &str) -> Result<BaseUrl, ClientError> {
        let bad = |m: &str| ClientError::Config(format!("base URL {base:?}: {m}"));
        let trimmed = base.strip_suffix('/').unwrap_or(base);
        let url = Url::parse(trimmed).map_err(|e| bad(&e.to_string()))?;
        let tls = match url.scheme() {
            "http" => false,
            "https" => true,
            _ => return Err(bad("must be http:// or https://")),
        };
        if url.query().is_some() || url.fragment().is_some() {
            return Err(bad("must not have a query or fragment"));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(bad("must not carry credentials"));
        }
        let connect_host = match url.host() {
            Some(http_types::url::Host::Domain(d)) => d.to_owned(),
            Some(http_types::url::Host::Ipv4(a)) => a.to_string(),
            Some(http_types::url::Host::Ipv6(a)) => a.to_string(),
            None => return Err(bad("has no host")),
        };
        // `url` leaves out a port that is the scheme's default (80, 443),
        // as `new URL(baseUrl).host` does.
        let host_str = url.host_str().unwrap_or_default();
        let host = match url.port() {
            Some(p) => format!("{host_str}:{p}"),
            None => host_str.to_owned(),
        };
        let path = match url.path() {
            "/" => String::new(),
            p => p.to_owned(),
        };
        Ok(BaseUrl {
            tls,
            origin: format!("{}://{host}", url.scheme()),
            host,
            connect_host,
            port: url.port_or_known_default().unwrap_or(80),
            path,
        })
    }

    /// The full URL for a path-and-query relative to the base, and the
    /// path-and-query exactly as it will appear on the request line.
    pub fn resolve(&self, rel: &str) -> Result<(Url, String), ClientError> {
        if !rel.starts_with('/') {
            return Err(ClientError::Config(format!(
                "path {rel:?} must start with '/'"
            )));
        }
        let full = format!("{}{}{}", self.origin, self.path, rel);
        let url = Url::parse(&full)
            .map_err(|e| ClientError::Config(format!("bad request URL {full:?}: {e}")))?;
        if url.fragment().is_some() {
            return Err(ClientError::Config(format!(
                "path {rel:?} must not contain '#'"
            )));
        }
        let wire = match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_owned(),
        };
        Ok((url, wire))
    }
}

/// One connection: plain TCP or TLS over TCP. Clones share the connection
/// (async-h1 takes a stream by value; the pool keeps a clone).
#[derive(Clone)]
pub(crate) enum Stream {
    Plain(TcpStream),
    #[cfg(feature = "tls")]
    Tls(std::sync::Arc<Mutex<futures_rustls::client::TlsStream<TcpStream>>>),
}

#[cfg(feature = "tls")]
fn locked<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            #[cfg(feature = "tls")]
            Stream::Tls(s) => Pin::new(&mut *locked(s)).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            #[cfg(feature = "tls")]
            Stream::Tls(s) => Pin::new(&mut *locked(s)).poll_write(cx, buf),
        }
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            #[cfg(feature = "tls")]
            Stream::Tls(s) => Pin::new(&mut *locked(s)).poll_flush(cx),
        }
    }
    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_close(cx),
            #[cfg(feature = "tls")]
            Stream::Tls(s) => Pin::new(&mut *locked(s)).poll_close(cx),
        }
    }
}

/// Opens connections to the base URL's host: TCP, plus the TLS handshake
/// for `https://`.
pub(crate) struct Connector {
    #[cfg(feature = "tls")]
    tls: Option<(
        futures_rustls::TlsConnector,
        futures_rustls::rustls::pki_types::ServerName<'static>,
    )>,
}

impl Connector {
    /// For `base`; `ca_file` replaces the bundled Mozilla roots with the CA
    /// certificates of a PEM file (ignored for `http://`).
    pub fn new(
        base: &BaseUrl,
        ca_file: Option<&std::path::Path>,
    ) -> Result<Connector, ClientError> {
        #[cfg(feature = "tls")]
        {
            if !base.tls {
                return Ok(Connector { tls: None });
            }
            let config = crate::tls::client_config(ca_file)
                .map_err(|e| ClientError::Config(format!("TLS: {e}")))?;
            let name =
                futures_rustls::rustls::pki_types::ServerName::try_from(base.connect_host.clone())
                    .map_err(|e| {
                        ClientError::Config(format!(
                            "TLS: {:?} is not a valid server name: {e}",
                            base.connect_host
                        ))
                    })?;
            Ok(Connector {
                tls: Some((futures_rustls::TlsConnector::from(config), name)),
            })
        }
        #[cfg(not(feature = "tls"))]
        {
            let _ = ca_file;
            if base.tls {
                return Err(ClientError::Config(
                    "https:// needs a build with the `tls` feature".to_owned(),
                ));
            }
            Ok(Connector {})
        }
    }

    async fn connect(&self, base: &BaseUrl) -> Result<Stream, ClientError> {
        let tcp = TcpStream::connect((base.connect_host.as_str(), base.port)).await?;
        let _ = tcp.set_nodelay(true);
        #[cfg(feature = "tls")]
        if let Some((connector, name)) = &self.tls {
            let tls = connector.connect(name.clone(), tcp).await.map_err(|e| {
                let reason = crate::tls::failure_reason(&e, &base.connect_host);
                match reason {
                    Some(reason) => ClientError::Tls {
                        host: base.host.clone(),
                        reason,
                    },
                    None if matches!(
                        e.kind(),
                        io::ErrorKind::UnexpectedEof
                            | io::ErrorKind::ConnectionReset
                            | io::ErrorKind::ConnectionAborted
                    ) =>
                    {
                        ClientError::Tls {
                            host: base.host.clone(),
                            reason: format!("connection closed during the handshake ({e})"),
                        }
                    }
                    None => ClientError::from(e),
                }
            })?;
            return Ok(Stream::Tls(std::sync::Arc::new(Mutex::new(tls))));
        }
        Ok(Stream::Plain(tcp))
    }
}

/// Idle keep-alive connections, most recently used last.
pub(crate) struct Pool {
    idle: Mutex<Vec<(Stream, Instant)>>,
    max_idle: usize,
    idle_timeout: Duration,
}

impl Pool {
    pub fn new(max_idle: usize, idle_timeout: Duration) -> Pool {
        Pool {
            idle: Mutex::new(Vec::new()),
            max_idle,
            idle_timeout,
        }
    }

    fn take(&self) -> Option<Stream> {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        idle.retain(|(_, t)| now.duration_since(*t) < self.idle_timeout);
        idle.pop().map(|(s, _)| s)
    }

    fn put(&self, s: Stream) {
        if self.max_idle == 0 {
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() >= self.max_idle {
            idle.remove(0);
        }
        idle.push((s, Instant::now()));
    }

    /// Number of idle connections (for tests and diagnostics).
    pub fn idle_len(&self) -> usize {
        self.idle.lock().map(|v| v.len()).unwrap_or(0)
    }
}

/// A response: status and the whole body.
#[derive(Debug)]
pub(crate) struct RawResponse {
    pub status: u16,
    pub body: Vec<u8>,
}

/// What one exchange attempt failed with, and whether it failed before any
/// response head arrived (then a reused connection may be retried).
struct Failure {
    error: ClientError,
    before_response: bool,
}

fn http_err(e: http_types::Error) -> ClientError {
    match e.downcast::<std::io::Error>() {
        Ok(io) => ClientError::from(io),
        Err(e) => ClientError::Protocol(e.to_string()),
    }
}

/// Send a request built by `build` (called once per attempt so every attempt
/// gets a fresh signature) and read the response.
pub(crate) async fn send(
    base: &BaseUrl,
    connector: &Connector,
    pool: &Pool,
    max_response_bytes: usize,
    mut build: impl FnMut() -> Result<Request, ClientError>,
) -> Result<RawResponse, ClientError> {
    loop {
        let (stream, reused) = match pool.take() {
            Some(s) => (s, true),
            None => (connector.connect(base).await?, false),
        };
        let req = build()?;
        match exchange(stream.clone(), req, max_response_bytes).await {
            Ok((resp, reusable)) => {
                if reusable {
                    pool.put(stream);
                }
                return Ok(resp);
            }
            Err(f) if reused && f.before_response => {
                log::debug!("stale pooled connection ({}), retrying", f.error);
                continue;
            }
            Err(f) => return Err(f.error),
        }
    }
}

async fn exchange(
    stream: Stream,
    req: Request,
    max_response_bytes: usize,
) -> Result<(RawResponse, bool), Failure> {
    let head_only = req.method() == Method::Head;
    let mut res = async_h1::connect(stream, req).await.map_err(|e| Failure {
        error: http_err(e),
        before_response: true,
    })?;
    let after = |error| Failure {
        error,
        before_response: false,
    };
    let status: u16 = res.status().into();
    let header = |name: &str| res.header(name).map(|v| v.last().as_str().to_owned());
    let close = header("connection")
        .is_some_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case("close")));
    let framed = header("content-length").is_some()
        || header("transfer-encoding").is_some()
        || head_only
        || matches!(status, 100..=199 | 204 | 304);
    let mut body = Vec::new();
    let reader = res.take_body();
    let limit = max_response_bytes as u64;
    reader
        .take(limit + 1)
        .read_to_end(&mut body)
        .await
        .map_err(|e| after(ClientError::from(e)))?;
    if body.len() as u64 > limit {
        return Err(after(ClientError::Protocol(format!(
            "response body larger than {max_response_bytes} bytes"
        ))));
    }
    Ok((RawResponse { status, body }, framed && !close))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls() {
        let b = BaseUrl::parse("http://127.0.0.1:8787/v1/").unwrap();
        assert_eq!(
            (b.host.as_str(), b.path.as_str()),
            ("127.0.0.1:8787", "/v1")
        );
        let b = BaseUrl::parse("http://Example.COM:80").unwrap();
        assert_eq!((b.host.as_str(), b.path.as_str()), ("example.com", ""));
        assert_eq!(b.port, 80);
        let b = BaseUrl::parse("http://[::1]:9/").unwrap();
        assert_eq!(
            (b.host.as_str(), b.connect_host.as_str()),
            ("[::1]:9", "::1")
        );
        let b = BaseUrl::parse("https://Example.com:443/v1").unwrap();
        assert_eq!((b.host.as_str(), b.port, b.tls), ("example.com", 443, true));
        let b = BaseUrl::parse("https://example.com:8443").unwrap();
        assert_eq!((b.host.as_str(), b.port), ("example.com:8443", 8443));
        assert_eq!(b.origin, "https://example.com:8443");
        let b = BaseUrl::parse("http://example.com:443").unwrap();
        assert_eq!((b.host.as_str(), b.tls), ("example.com:443", false));
        assert!(BaseUrl::parse("ftp://example.com").is_err());
        assert!(BaseUrl::parse("example.com").is_err());
        assert!(BaseUrl::parse("http://h/v1?x=1").is_err());
    }

    #[test]
    fn wire_paths_are_what_the_url_serialises() {
        let b = BaseUrl::parse("http://h:1/v1").unwrap();
        let (_, wire) = b.resolve("/pull/notes/a?checkpoint=5").unwrap();
        assert_eq!(wire, "/v1/pull/notes/a?checkpoint=5");
        let (_, wire) = b.resolve("/pull/notes/a b").unwrap();
        assert_eq!(wire, "/v1/pull/notes/a%20b");
        assert!(b.resolve("pull/x").is_err());
    }
}
