//! # Framing: the one audited place
//!
//! Everything that decides how a request is delimited lives here, as pure
//! functions with no I/O, so it can be read in one sitting, unit-tested and
//! fuzzed:
//!
//! * [`parse_head`]: bytes → [`ParsedHead`] (or "need more bytes", or an error);
//! * [`analyze`]: [`ParsedHead`] → [`RequestMeta`] (body [`Framing`],
//!   keep-alive, `Expect`, `Host`, target), or a [`FramingError`];
//! * [`ChunkedDecoder`]: an incremental, bounded `Transfer-Encoding: chunked`
//!   decoder;
//! * [`request_url`]: the URL handed to the handler.
//!
//! Every [`FramingError`] is answered with its [`FramingError::status`] and the
//! connection is closed, because after a framing error the position of the
//! next request in the byte stream is unknown.
//!
//! ## Rules (RFC 9112, applied strictly)
//! * request line: `METHOD SP origin-form SP HTTP/1.x CRLF` (single spaces);
//!   absolute-form `http://authority/path` is accepted and reduced to its
//!   path; asterisk-form and authority-form are 400; a `#` or a non-ASCII byte
//!   in the target is 400;
//! * lines end in CRLF; a bare LF is 400; header continuation lines
//!   (obs-fold) are 400; header values must be visible ASCII, SP or HTAB;
//! * `Transfer-Encoding` must be exactly one field whose value is `chunked`
//!   (any case); anything else, TE on HTTP/1.0, and TE together with
//!   `Content-Length` are 400;
//! * `Content-Length` must be exactly one field of 1–19 ASCII digits (no
//!   sign, no list, no duplicates even when equal);
//! * HTTP/1.1 needs exactly one `Host` field; a Host with characters outside
//!   `uri-host [":" port]` is 400;
//! * a head above `max_head_bytes`, or with more than [`MAX_HEADERS`] fields,
//!   is 431; a body above `max_body_bytes` is 413;
//! * a method unknown to `http-types` is 501; methods are case-sensitive.

use std::fmt;

use http_types::{Method, StatusCode, Url};

/// Most header fields accepted in one request head (above it: 431).
pub const MAX_HEADERS: usize = 100;

/// Longest accepted chunk-size line (size + extensions), in bytes.
pub const MAX_CHUNK_LINE: usize = 4096;

/// A request head, as parsed by [`parse_head`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParsedHead {
    /// The method token, exactly as received (case-sensitive).
    pub method: String,
    /// The request-target, exactly as received.
    pub target: String,
    /// The minor version: `0` for HTTP/1.0, `1` for HTTP/1.1.
    pub minor_version: u8,
    /// Header fields in order of arrival: name as received, value with
    /// surrounding whitespace removed.
    pub headers: Vec<(String, String)>,
}

impl ParsedHead {
    /// Values of all fields named `name` (case-insensitive), in order.
    pub fn values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// How the body of a request is delimited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// No body (neither `Content-Length` nor `Transfer-Encoding`).
    None,
    /// Exactly this many bytes.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
}

/// Everything the connection loop needs to know about a request, decided from
/// its head.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestMeta {
    /// The parsed method.
    pub method: Method,
    /// How the body is delimited.
    pub framing: Framing,
    /// Whether the connection may stay open after this request (HTTP/1.1
    /// without `Connection: close`, or HTTP/1.0 with `Connection: keep-alive`).
    pub keep_alive: bool,
    /// `Expect: 100-continue` on HTTP/1.1.
    pub expect_continue: bool,
    /// The authority to build the URL from: the absolute-form target's, else
    /// the `Host` field (`None` if absent or empty).
    pub authority: Option<String>,
    /// The path and query (origin-form; for absolute-form, the part after the
    /// authority, `/` if empty).
    pub path_and_query: String,
}

/// Why a request cannot be served. Each variant maps to one status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FramingError {
    /// Malformed request line (method, target or version). 400.
    InvalidRequestLine,
    /// Malformed header field (name or value). 400.
    InvalidHeader,
    /// A header continuation line (obs-fold). 400.
    ObsFold,
    /// A line ending in a bare LF. 400.
    BareLf,
    /// Request-target not in origin-form or absolute-form, or holding a `#`
    /// or a non-ASCII byte. 400.
    InvalidTarget,
    /// A `Transfer-Encoding` other than exactly `chunked`. 400.
    UnsupportedTransferEncoding,
    /// `Transfer-Encoding` on an HTTP/1.0 request. 400.
    TransferEncodingOnHttp10,
    /// Both `Transfer-Encoding` and `Content-Length`. 400.
    TransferEncodingWithContentLength,
    /// More than one `Content-Length` field. 400.
    MultipleContentLength,
    /// A `Content-Length` that is not 1–19 ASCII digits. 400.
    InvalidContentLength,
    /// HTTP/1.1 request without `Host`. 400.
    MissingHost,
    /// More than one `Host` field. 400.
    MultipleHost,
    /// A `Host` that is not `uri-host [":" port]`. 400.
    InvalidHost,
    /// The URL built from Host and target does not parse. 400.
    InvalidUrl,
    /// Malformed chunked body. 400.
    InvalidChunkedBody,
    /// Head above `max_head_bytes`, or too many fields. 431.
    HeadTooLarge,
    /// Body above `max_body_bytes`. 413.
    BodyTooLarge,
    /// A syntactically valid method `http-types` does not know. 501.
    UnknownMethod,
}

impl FramingError {
    /// The status to answer with (the connection is then closed).
    pub fn status(self) -> StatusCode {
        match self {
            FramingError::HeadTooLarge => StatusCode::RequestHeaderFieldsTooLarge,
            FramingError::BodyTooLarge => StatusCode::PayloadTooLarge,
            FramingError::UnknownMethod => StatusCode::NotImplemented,
            _ => StatusCode::BadRequest,
        }
    }

    /// The JSON error body to answer with: `{"error":"..."}`.
    pub fn body(self) -> &'static str {
        match self {
            FramingError::HeadTooLarge => r#"{"error":"Request Header Fields Too Large"}"#,
            FramingError::BodyTooLarge => r#"{"error":"Payload too large"}"#,
            FramingError::UnknownMethod => r#"{"error":"Not Implemented"}"#,
            _ => r#"{"error":"Bad Request"}"#,
        }
    }
}

impl fmt::Display for FramingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            FramingError::InvalidRequestLine => "invalid request line",
            FramingError::InvalidHeader => "invalid header field",
            FramingError::ObsFold => "obsolete header line folding",
            FramingError::BareLf => "line ending in a bare LF",
            FramingError::InvalidTarget => "invalid request-target",
            FramingError::UnsupportedTransferEncoding => "unsupported Transfer-Encoding",
            FramingError::TransferEncodingOnHttp10 => "Transfer-Encoding on HTTP/1.0",
            FramingError::TransferEncodingWithContentLength => {
                "both Transfer-Encoding and Content-Length"
            }
            FramingError::MultipleContentLength => "more than one Content-Length",
            FramingError::InvalidContentLength => "invalid Content-Length",
            FramingError::MissingHost => "HTTP/1.1 request without Host",
            FramingError::MultipleHost => "more than one Host",
            FramingError::InvalidHost => "invalid Host",
            FramingError::InvalidUrl => "request URL does not parse",
            FramingError::InvalidChunkedBody => "invalid chunked body",
            FramingError::HeadTooLarge => "request head too large",
            FramingError::BodyTooLarge => "request body too large",
            FramingError::UnknownMethod => "unknown method",
        };
        f.write_str(s)
    }
}

impl std::error::Error for FramingError {}

fn has_bare_lf(bytes: &[u8]) -> bool {
    bytes
        .iter()
        .enumerate()
        .any(|(i, &b)| b == b'\n' && (i == 0 || bytes[i - 1] != b'\r'))
}

fn has_obs_fold(bytes: &[u8]) -> bool {
    bytes
        .windows(3)
        .any(|w| w[0] == b'\r' && w[1] == b'\n' && (w[2] == b' ' || w[2] == b'\t'))
}

fn trim_ows(s: &str) -> &str {
    s.trim_matches(|c| c == ' ' || c == '\t')
}

/// Parse a request head from the start of `buf`.
///
/// * `Ok(None)`: the head is not complete yet (read more bytes);
/// * `Ok(Some((head, len)))`: the head occupies `buf[..len]`; body bytes and
///   pipelined requests start at `len`;
/// * `Err(e)`: answer `e.status()` and close.
///
/// Leading empty lines before the request line are skipped (RFC 9112 §2.2).
/// Never panics, whatever `buf` holds.
pub fn parse_head(
    buf: &[u8],
    max_head_bytes: usize,
) -> Result<Option<(ParsedHead, usize)>, FramingError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let len = match req.parse(buf) {
        Ok(httparse::Status::Partial) => {
            // Look at what we have so far: fail early on bad line endings.
            if has_bare_lf(buf) {
                return Err(FramingError::BareLf);
            }
            if buf.len() > max_head_bytes {
                return Err(FramingError::HeadTooLarge);
            }
            return Ok(None);
        }
        Ok(httparse::Status::Complete(len)) => len,
        Err(e) => {
            let seen = &buf[..buf.len().min(max_head_bytes.saturating_add(1))];
            return Err(match e {
                httparse::Error::TooManyHeaders => FramingError::HeadTooLarge,
                _ if has_bare_lf(seen) => FramingError::BareLf,
                _ if has_obs_fold(seen) => FramingError::ObsFold,
                _ if buf.len() > max_head_bytes => FramingError::HeadTooLarge,
                httparse::Error::HeaderName | httparse::Error::HeaderValue => {
                    FramingError::InvalidHeader
                }
                _ => FramingError::InvalidRequestLine,
            });
        }
    };
    if len > max_head_bytes {
        return Err(FramingError::HeadTooLarge);
    }
    if has_bare_lf(&buf[..len]) {
        return Err(FramingError::BareLf);
    }
    let (Some(method), Some(target), Some(minor_version)) = (req.method, req.path, req.version)
    else {
        return Err(FramingError::InvalidRequestLine);
    };
    let mut out = Vec::with_capacity(req.headers.len());
    for h in req.headers.iter() {
        if h.name.is_empty() {
            return Err(FramingError::InvalidHeader);
        }
        if !h
            .value
            .iter()
            .all(|&b| b == b'\t' || (b' '..=b'~').contains(&b))
        {
            return Err(FramingError::InvalidHeader);
        }
        let value = std::str::from_utf8(h.value).map_err(|_| FramingError::InvalidHeader)?;
        out.push((h.name.to_string(), trim_ows(value).to_string()));
    }
    Ok(Some((
        ParsedHead {
            method: method.to_string(),
            target: target.to_string(),
            minor_version,
            headers: out,
        },
        len,
    )))
}

fn is_host_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~:[]!$&'()*+,;=%".contains(&b)
}

/// Split a request-target into (authority from absolute-form, path-and-query).
fn split_target(target: &str) -> Result<(Option<&str>, String), FramingError> {
    if target.is_empty() || !target.bytes().all(|b| (b'!'..=b'~').contains(&b)) {
        return Err(FramingError::InvalidTarget);
    }
    if target.contains('#') {
        return Err(FramingError::InvalidTarget);
    }
    if target.starts_with('/') {
        return Ok((None, target.to_string()));
    }
    let lower = target.get(..8).unwrap_or(target).to_ascii_lowercase();
    let rest = if lower.starts_with("http://") {
        &target[7..]
    } else if lower.starts_with("https://") {
        &target[8..]
    } else {
        return Err(FramingError::InvalidTarget);
    };
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(end);
    if authority.is_empty() || !authority.bytes().all(is_host_byte) {
        return Err(FramingError::InvalidTarget);
    }
    let path = if path.starts_with('/') {
        path.to_string()
    } else {
        format!("/{path}")
    };
    Ok((Some(authority), path))
}

fn has_token(value: &str, token: &str) -> bool {
    value
        .split(',')
        .any(|t| trim_ows(t).eq_ignore_ascii_case(token))
}

/// Decide framing, keep-alive, `Expect` and the target of a parsed head.
pub fn analyze(head: &ParsedHead) -> Result<RequestMeta, FramingError> {
    let method: Method = head
        .method
        .parse()
        .map_err(|_| FramingError::UnknownMethod)?;
    // http-types parses methods case-insensitively; HTTP does not.
    if method.to_string() != head.method {
        return Err(FramingError::UnknownMethod);
    }
    let (abs_authority, path_and_query) = split_target(&head.target)?;

    // Body framing.
    let te: Vec<&str> = head.values("transfer-encoding").collect();
    let cl: Vec<&str> = head.values("content-length").collect();
    let framing = if !te.is_empty() {
        if head.minor_version == 0 {
            return Err(FramingError::TransferEncodingOnHttp10);
        }
        if !cl.is_empty() {
            return Err(FramingError::TransferEncodingWithContentLength);
        }
        if te.len() != 1 || !te[0].eq_ignore_ascii_case("chunked") {
            return Err(FramingError::UnsupportedTransferEncoding);
        }
        Framing::Chunked
    } else {
        match cl.as_slice() {
            [] => Framing::None,
            [v] => {
                if v.is_empty() || v.len() > 19 || !v.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(FramingError::InvalidContentLength);
                }
                Framing::Length(v.parse().map_err(|_| FramingError::InvalidContentLength)?)
            }
            _ => return Err(FramingError::MultipleContentLength),
        }
    };

    // Host.
    let hosts: Vec<&str> = head.values("host").collect();
    let host = match hosts.as_slice() {
        [] if head.minor_version >= 1 => return Err(FramingError::MissingHost),
        [] => None,
        [h] => {
            if !h.bytes().all(is_host_byte) {
                return Err(FramingError::InvalidHost);
            }
            Some(*h).filter(|h| !h.is_empty())
        }
        _ => return Err(FramingError::MultipleHost),
    };

    // Connection options.
    let mut close = false;
    let mut keep = false;
    for v in head.values("connection") {
        close |= has_token(v, "close");
        keep |= has_token(v, "keep-alive");
    }
    let keep_alive = !close && (head.minor_version >= 1 || keep);
    let expect_continue =
        head.minor_version >= 1 && head.values("expect").any(|v| has_token(v, "100-continue"));

    Ok(RequestMeta {
        method,
        framing,
        keep_alive,
        expect_continue,
        authority: abs_authority.or(host).map(str::to_string),
        path_and_query,
    })
}

/// The URL handed to the handler: `http://{authority}{path_and_query}`, with
/// `fallback_authority` (the listener's local address) when the request named
/// none (HTTP/1.0 without `Host`).
pub fn request_url(meta: &RequestMeta, fallback_authority: &str) -> Result<Url, FramingError> {
    let authority = meta.authority.as_deref().unwrap_or(fallback_authority);
    Url::parse(&format!("http://{authority}{}", meta.path_and_query))
        .map_err(|_| FramingError::InvalidUrl)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ChunkState {
    /// Reading a chunk-size line (into `line`).
    Size,
    /// Reading chunk data: this many bytes left.
    Data(u64),
    /// Expecting the CR after chunk data.
    DataCr,
    /// Expecting the LF after chunk data.
    DataLf,
    /// Reading trailer lines (into `line`), until an empty one.
    Trailers,
    /// The last chunk and trailer section have been read.
    Done,
}

/// An incremental `Transfer-Encoding: chunked` decoder, bounded by a body
/// limit (413) and a trailer limit (431). Trailers are read and discarded;
/// chunk extensions are skipped.
#[derive(Debug)]
pub struct ChunkedDecoder {
    state: ChunkState,
    line: Vec<u8>,
    trailer_bytes: usize,
    max_body: u64,
    max_trailers: usize,
    body: Vec<u8>,
}

impl ChunkedDecoder {
    /// A decoder accepting at most `max_body` body bytes and `max_trailers`
    /// bytes of trailer section.
    pub fn new(max_body: usize, max_trailers: usize) -> Self {
        ChunkedDecoder {
            state: ChunkState::Size,
            line: Vec::new(),
            trailer_bytes: 0,
            max_body: max_body as u64,
            max_trailers,
            body: Vec::new(),
        }
    }

    /// Whether the whole chunked body has been read.
    pub fn is_done(&self) -> bool {
        self.state == ChunkState::Done
    }

    /// The decoded body (complete once [`is_done`](Self::is_done)).
    pub fn into_body(self) -> Vec<u8> {
        self.body
    }

    /// Feed bytes; returns how many were consumed. Stops consuming at the end
    /// of the chunked body, so the rest of `input` belongs to the next request.
    pub fn feed(&mut self, input: &[u8]) -> Result<usize, FramingError> {
        let mut i = 0;
        while i < input.len() {
            match self.state {
                ChunkState::Done => break,
                ChunkState::Data(left) => {
                    let take = (input.len() - i).min(usize::try_from(left).unwrap_or(usize::MAX));
                    self.body.extend_from_slice(&input[i..i + take]);
                    i += take;
                    let left = left - take as u64;
                    self.state = if left == 0 {
                        ChunkState::DataCr
                    } else {
                        ChunkState::Data(left)
                    };
                }
                ChunkState::DataCr | ChunkState::DataLf => {
                    let want = if self.state == ChunkState::DataCr {
                        b'\r'
                    } else {
                        b'\n'
                    };
                    if input[i] != want {
                        return Err(FramingError::InvalidChunkedBody);
                    }
                    i += 1;
                    self.state = if want == b'\r' {
                        ChunkState::DataLf
                    } else {
                        ChunkState::Size
                    };
                }
                ChunkState::Size | ChunkState::Trailers => {
                    let b = input[i];
                    i += 1;
                    if b == b'\n' {
                        if self.line.last() != Some(&b'\r') {
                            return Err(FramingError::BareLf);
                        }
                        self.line.pop();
                        self.end_line()?;
                        self.line.clear();
                        continue;
                    }
                    if self.line.last() == Some(&b'\r') {
                        return Err(FramingError::InvalidChunkedBody);
                    }
                    self.line.push(b);
                    if self.state == ChunkState::Size {
                        if self.line.len() > MAX_CHUNK_LINE {
                            return Err(FramingError::InvalidChunkedBody);
                        }
                    } else {
                        self.trailer_bytes += 1;
                        if self.trailer_bytes > self.max_trailers {
                            return Err(FramingError::HeadTooLarge);
                        }
                    }
                }
            }
        }
        Ok(i)
    }

    fn end_line(&mut self) -> Result<(), FramingError> {
        if self.state == ChunkState::Trailers {
            if self.line.is_empty() {
                self.state = ChunkState::Done;
            } else if matches!(self.line[0], b' ' | b'\t') {
                return Err(FramingError::ObsFold);
            }
            return Ok(());
        }
        let line = &self.line[..];
        let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
        if digits == 0 || digits > 16 {
            return Err(FramingError::InvalidChunkedBody);
        }
        let ext = &line[digits..];
        let ext_start = ext.iter().position(|&b| b != b' ' && b != b'\t');
        if let Some(p) = ext_start {
            if ext[p] != b';' {
                return Err(FramingError::InvalidChunkedBody);
            }
        }
        if !ext
            .iter()
            .all(|&b| b == b'\t' || (b' '..=b'~').contains(&b))
        {
            return Err(FramingError::InvalidChunkedBody);
        }
        let hex =
            std::str::from_utf8(&line[..digits]).map_err(|_| FramingError::InvalidChunkedBody)?;
        let size = u64::from_str_radix(hex, 16).map_err(|_| FramingError::InvalidChunkedBody)?;
        if size > self.max_body.saturating_sub(self.body.len() as u64) {
            return Err(FramingError::BodyTooLarge);
        }
        self.state = if size == 0 {
            ChunkState::Trailers
        } else {
            ChunkState::Data(size)
        };
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(s: &str) -> Result<Option<(ParsedHead, usize)>, FramingError> {
        parse_head(s.as_bytes(), 16 * 1024)
    }

    fn meta(s: &str) -> Result<RequestMeta, FramingError> {
        let (h, _) = head(s)?.expect("complete head");
        analyze(&h)
    }

    #[test]
    fn parses_and_keeps_surplus() {
        let s = "GET /a?b=1 HTTP/1.1\r\nHost: x\r\nX-A:  v \r\n\r\nNEXT";
        let (h, len) = head(s).unwrap().unwrap();
        assert_eq!(&s[len..], "NEXT");
        assert_eq!(h.method, "GET");
        assert_eq!(h.target, "/a?b=1");
        assert_eq!(h.headers[1], ("X-A".into(), "v".into()));
        assert_eq!(head("GET / HTTP/1.1\r\nHost: x\r\n").unwrap(), None);
    }

    #[test]
    fn framing_rules() {
        let base = "POST / HTTP/1.1\r\nHost: x\r\n";
        let m = |extra: &str| meta(&format!("{base}{extra}\r\n"));
        assert_eq!(m("").unwrap().framing, Framing::None);
        assert_eq!(
            m("Content-Length: 5\r\n").unwrap().framing,
            Framing::Length(5)
        );
        assert_eq!(
            m("Transfer-Encoding: ChUnKeD\r\n").unwrap().framing,
            Framing::Chunked
        );
        for (extra, err) in [
            ("Content-Length: +5\r\n", FramingError::InvalidContentLength),
            ("Content-Length: -1\r\n", FramingError::InvalidContentLength),
            (
                "Content-Length: 5, 5\r\n",
                FramingError::InvalidContentLength,
            ),
            ("Content-Length: \r\n", FramingError::InvalidContentLength),
            (
                "Content-Length: 99999999999999999999\r\n",
                FramingError::InvalidContentLength,
            ),
            (
                "Content-Length: 5\r\nContent-Length: 5\r\n",
                FramingError::MultipleContentLength,
            ),
            (
                "Transfer-Encoding: gzip, chunked\r\n",
                FramingError::UnsupportedTransferEncoding,
            ),
            (
                "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n",
                FramingError::UnsupportedTransferEncoding,
            ),
            (
                "Transfer-Encoding: chunked\r\nContent-Length: 3\r\n",
                FramingError::TransferEncodingWithContentLength,
            ),
            ("Host: y\r\n", FramingError::MultipleHost),
        ] {
            assert_eq!(m(extra), Err(err), "{extra:?}");
        }
        assert_eq!(
            meta("GET / HTTP/1.1\r\n\r\n"),
            Err(FramingError::MissingHost)
        );
        assert_eq!(
            meta("GET / HTTP/1.1\r\nHost: a/b\r\n\r\n"),
            Err(FramingError::InvalidHost)
        );
        assert_eq!(
            meta("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n"),
            Err(FramingError::TransferEncodingOnHttp10)
        );
    }

    #[test]
    fn head_errors() {
        assert_eq!(
            head("GET / HTTP/1.1\r\nHost: x\r\nX: a\r\n b\r\n\r\n"),
            Err(FramingError::ObsFold)
        );
        assert_eq!(
            head("GET / HTTP/1.1\nHost: x\n\n"),
            Err(FramingError::BareLf)
        );
        assert_eq!(
            head("GET  / HTTP/1.1\r\n\r\n"),
            Err(FramingError::InvalidRequestLine)
        );
        assert_eq!(
            head("GET / HTTP/2.0\r\n\r\n"),
            Err(FramingError::InvalidRequestLine)
        );
        assert_eq!(
            parse_head(&[b'a'; 100], 50),
            Err(FramingError::HeadTooLarge)
        );
        assert_eq!(
            meta("GET * HTTP/1.1\r\nHost: x\r\n\r\n"),
            Err(FramingError::InvalidTarget)
        );
        assert_eq!(
            meta("get / HTTP/1.1\r\nHost: x\r\n\r\n"),
            Err(FramingError::UnknownMethod)
        );
        let m = meta("GET http://h:1/p?q HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        assert_eq!(m.authority.as_deref(), Some("h:1"));
        assert_eq!(m.path_and_query, "/p?q");
    }

    #[test]
    fn connection_semantics() {
        assert!(
            meta("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                .unwrap()
                .keep_alive
        );
        assert!(
            !meta("GET / HTTP/1.1\r\nHost: x\r\nConnection: Close\r\n\r\n")
                .unwrap()
                .keep_alive
        );
        assert!(!meta("GET / HTTP/1.0\r\n\r\n").unwrap().keep_alive);
        assert!(
            meta("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
                .unwrap()
                .keep_alive
        );
    }

    #[test]
    fn chunked_decoding() {
        let mut d = ChunkedDecoder::new(100, 100);
        let input = b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-T: 1\r\n\r\nNEXT";
        // Feed one byte at a time to exercise every state boundary.
        let mut used = 0;
        for b in input.iter() {
            if d.is_done() {
                break;
            }
            used += d.feed(std::slice::from_ref(b)).unwrap();
        }
        assert!(d.is_done());
        assert_eq!(&input[used..], b"NEXT");
        assert_eq!(d.into_body(), b"hello world");

        let mut d = ChunkedDecoder::new(4, 100);
        assert_eq!(d.feed(b"5\r\n"), Err(FramingError::BodyTooLarge));
        let mut d = ChunkedDecoder::new(100, 100);
        assert_eq!(d.feed(b"x\r\n"), Err(FramingError::InvalidChunkedBody));
        let mut d = ChunkedDecoder::new(100, 100);
        assert_eq!(
            d.feed(b"1\r\nab\r\n"),
            Err(FramingError::InvalidChunkedBody)
        );
        let mut d = ChunkedDecoder::new(100, 100);
        assert_eq!(d.feed(b"1\n"), Err(FramingError::BareLf));
    }

    #[test]
    fn never_panics_on_prefixes() {
        let s = b"POST http://a/b HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\nx";
        for i in 0..=s.len() {
            for max in [0, 5, 1000] {
                if let Ok(Some((h, _))) = parse_head(&s[..i], max) {
                    let _ = analyze(&h);
                }
            }
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::test_runner::Config::with_cases(512))]

        /// The fuzz contract: arbitrary bytes never panic, and a complete head
        /// never claims more bytes than it was given.
        #[test]
        fn arbitrary_bytes_never_panic(
            prefix in proptest::sample::select(vec![
                "", "GET / HTTP/1.1\r\n", "POST /x HTTP/1.0\r\nHost: h\r\n",
            ]),
            bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300),
            max in 0usize..400,
        ) {
            let mut buf = prefix.as_bytes().to_vec();
            buf.extend_from_slice(&bytes);
            if let Ok(Some((h, len))) = parse_head(&buf, max) {
                proptest::prop_assert!(len <= buf.len() && len <= max);
                if let Ok(m) = analyze(&h) {
                    let _ = request_url(&m, "127.0.0.1:1");
                }
            }
            let mut d = ChunkedDecoder::new(max, max);
            if let Ok(used) = d.feed(&bytes) {
                proptest::prop_assert!(used <= bytes.len());
            }
        }
    }
}
