//! Raw-socket tests of the HTTP/1 server layer (`starfish::http`): each test
//! starts `serve` on 127.0.0.1:0 with a tiny echo handler and talks bytes.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use starfish::http::{
    serve, take_body_bytes, BoxFuture, Handler, PeerAddr, Piece, Prepared, RawTarget, Request,
    Response, ServerConfig, StatusCode,
};
use starfish::store::SharedDoc;

#[derive(Default)]
struct Echo {
    smuggled: AtomicUsize,
}

impl Handler for Echo {
    fn handle(&self, mut req: Request) -> BoxFuture<'_, Response> {
        Box::pin(async move {
            let raw = req.ext().get::<RawTarget>().expect("RawTarget").0.clone();
            let peer = req.ext().get::<PeerAddr>().expect("PeerAddr").0;
            if raw.starts_with("/smuggled") {
                self.smuggled.fetch_add(1, Ordering::SeqCst);
            }
            let body = String::from_utf8(take_body_bytes(&mut req).await).unwrap();
            let mut res = Response::new(StatusCode::Ok);
            match raw.as_str() {
                "/slow" => {
                    async_io::Timer::after(Duration::from_millis(500)).await;
                }
                "/panic" => panic!("test handler panic"),
                "/204" => {
                    res.set_status(StatusCode::NoContent);
                    return res;
                }
                "/304" => {
                    res.set_status(StatusCode::NotModified);
                    return res;
                }
                "/headlen" if req.method() == http_types::Method::Head => {
                    res.insert_header("content-length", "1234");
                    return res;
                }
                "/close" => {
                    res.insert_header("connection", "close");
                }
                "/prepared" | "/prepared-big" => return prepared(&raw),
                _ => {}
            }
            let ct = req
                .header("content-type")
                .map(|v| v.as_str().to_string())
                .unwrap_or_else(|| "none".into());
            let dup = req
                .header("x-dup")
                .map(|v| v.iter().map(|v| v.as_str()).collect::<Vec<_>>().join("|"))
                .unwrap_or_default();
            let text = format!(
                "{} {} {} {:?} loopback={} ct={} dup={} body={}",
                req.method(),
                raw,
                req.url(),
                req.version(),
                peer.ip().is_loopback(),
                ct,
                dup,
                body
            );
            res.set_body(text);
            if raw == "/noct" {
                res.remove_header("content-type");
            } else {
                res.insert_header("content-type", "text/plain");
            }
            res
        })
    }
}

/// A `Prepared` answer: `<` + n bytes of a shared document + `>`, its
/// ETag a range of the same document, and headers put on the response
/// by "a wrapper" (one of them replacing the prepared ETag).
fn prepared(raw: &str) -> Response {
    let n = if raw == "/prepared" { 10 } else { 300_000 };
    let mut bytes = b"\"tag\"".to_vec();
    bytes.extend((0..n).map(|i| b'a' + (i % 26) as u8));
    let doc = SharedDoc::new(bytes);
    let mut p = Prepared::with_capacity(4, 3);
    p.header("content-type", Piece::Static(b"text/plain"))
        .header("etag", Piece::Shared(doc.clone(), 0..5))
        .header("content-length", Piece::Static(b"1"))
        .header("x-from", Piece::Owned(b"prepared".to_vec()));
    p.body(Piece::Static(b"<"))
        .body(Piece::Shared(doc, 5..5 + n))
        .body(Piece::Owned(b">".to_vec()));
    let mut res = p.into_response(StatusCode::Ok);
    res.insert_header("x-wrapper", "1");
    if raw == "/prepared" {
        res.insert_header("etag", "\"wrapper\"");
    }
    res
}

struct TestServer {
    addr: SocketAddr,
    handler: Arc<Echo>,
    stop: Option<smol::channel::Sender<()>>,
    thread: Option<JoinHandle<std::io::Result<()>>>,
}

impl TestServer {
    fn start(config: ServerConfig) -> TestServer {
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = std_listener.local_addr().unwrap();
        let listener = async_net::TcpListener::try_from(std_listener).unwrap();
        let handler = Arc::new(Echo::default());
        let (tx, rx) = smol::channel::bounded::<()>(1);
        let h = handler.clone();
        let thread = std::thread::spawn(move || {
            futures_lite::future::block_on(serve(listener, h, config, async move {
                let _ = rx.recv().await;
            }))
        });
        TestServer {
            addr,
            handler,
            stop: Some(tx),
            thread: Some(thread),
        }
    }

    fn connect(&self) -> Client {
        let s = TcpStream::connect(self.addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        Client { s, buf: Vec::new() }
    }

    fn stop(&mut self) -> std::io::Result<()> {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send_blocking(());
        }
        match self.thread.take() {
            Some(t) => t.join().unwrap(),
            None => Ok(()),
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

fn small_config() -> ServerConfig {
    ServerConfig {
        max_head_bytes: 1024,
        max_body_bytes: 64,
        shutdown_grace: Duration::from_secs(2),
        ..ServerConfig::default()
    }
}

#[derive(Debug)]
struct Resp {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Resp {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    fn closes(&self) -> bool {
        self.header("connection") == Some("close")
    }
}

struct Client {
    s: TcpStream,
    buf: Vec<u8>,
}

impl Client {
    fn send(&mut self, bytes: &[u8]) {
        self.s.write_all(bytes).unwrap();
    }

    fn fill(&mut self) -> usize {
        let mut chunk = [0u8; 4096];
        let n = self.s.read(&mut chunk).unwrap_or(0);
        self.buf.extend_from_slice(&chunk[..n]);
        n
    }

    fn read_exact_buf(&mut self, n: usize) -> Vec<u8> {
        while self.buf.len() < n {
            assert!(
                self.fill() > 0,
                "EOF while reading {n} bytes: {:?}",
                self.buf
            );
        }
        self.buf.drain(..n).collect()
    }

    /// Read one response; `head` = the request was HEAD (no body follows).
    fn response(&mut self, head: bool) -> Resp {
        let end = loop {
            if let Some(p) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break p + 4;
            }
            assert!(self.fill() > 0, "EOF before response head: {:?}", self.buf);
        };
        let head_bytes: Vec<u8> = self.buf.drain(..end).collect();
        let text = String::from_utf8(head_bytes).unwrap();
        let mut lines = text.split("\r\n");
        let status_line = lines.next().unwrap();
        assert!(status_line.starts_with("HTTP/1.1 "), "{status_line}");
        let status: u16 = status_line[9..12].parse().unwrap();
        let headers: Vec<(String, String)> = lines
            .filter(|l| !l.is_empty())
            .map(|l| {
                let (n, v) = l.split_once(": ").unwrap();
                (n.to_string(), v.to_string())
            })
            .collect();
        let mut r = Resp {
            status,
            headers,
            body: String::new(),
        };
        if !head {
            if let Some(len) = r.header("content-length") {
                let len: usize = len.parse().unwrap();
                r.body = String::from_utf8(self.read_exact_buf(len)).unwrap();
            }
        }
        r
    }

    /// True if the server closed the connection (EOF or reset) with no more
    /// bytes pending.
    fn is_closed(&mut self) -> bool {
        self.buf.is_empty() && self.fill() == 0
    }
}

fn get(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: example.test\r\n\r\n")
}

#[test]
fn keep_alive_and_connection_close() {
    let srv = TestServer::start(small_config());
    let mut c = srv.connect();
    c.send(get("/one").as_bytes());
    let r = c.response(false);
    assert_eq!(r.status, 200);
    assert!(!r.closes());
    assert!(r
        .body
        .starts_with("GET /one http://example.test/one Some(Http1_1)"));
    c.send(b"GET /two HTTP/1.1\r\nHost: example.test\r\nConnection: close\r\n\r\n");
    let r = c.response(false);
    assert!(r.body.starts_with("GET /two "));
    assert!(r.closes());
    assert!(c.is_closed());
    // A handler's own `Connection: close` closes too.
    let mut c = srv.connect();
    c.send(get("/close").as_bytes());
    assert!(c.response(false).closes());
    assert!(c.is_closed());
}

#[test]
fn pipelined_requests_answered_in_order() {
    let srv = TestServer::start(small_config());
    let mut c = srv.connect();
    let mut all = Vec::new();
    all.extend_from_slice(get("/a").as_bytes());
    all.extend_from_slice(
        b"POST /b HTTP/1.1\r\nHost: example.test\r\nContent-Length: 5\r\n\r\nhello",
    );
    all.extend_from_slice(get("/c").as_bytes());
    c.send(&all);
    let bodies: Vec<String> = (0..3).map(|_| c.response(false).body).collect();
    assert!(bodies[0].starts_with("GET /a "), "{bodies:?}");
    assert!(bodies[1].starts_with("POST /b ") && bodies[1].ends_with("body=hello"));
    assert!(bodies[2].starts_with("GET /c "), "{bodies:?}");
    // Byte-by-byte delivery of two pipelined requests works the same.
    let mut c = srv.connect();
    let two = format!("{}{}", get("/x"), get("/y"));
    for b in two.as_bytes() {
        c.send(std::slice::from_ref(b));
    }
    assert!(c.response(false).body.starts_with("GET /x "));
    assert!(c.response(false).body.starts_with("GET /y "));
}

#[test]
fn http10_served_and_closed_unless_keep_alive() {
    let srv = TestServer::start(small_config());
    let mut c = srv.connect();
    c.send(b"GET /old HTTP/1.0\r\n\r\n");
    let r = c.response(false);
    assert_eq!(r.status, 200);
    // No Host: the URL falls back to the listener's address.
    let expected = format!("GET /old http://{}/old Some(Http1_0)", srv.addr);
    assert!(r.body.starts_with(&expected), "{}", r.body);
    assert!(r.closes());
    assert!(c.is_closed());

    let mut c = srv.connect();
    c.send(b"GET /ka HTTP/1.0\r\nConnection: keep-alive\r\nHost: h\r\n\r\n");
    let r = c.response(false);
    assert_eq!(r.header("connection"), Some("keep-alive"));
    c.send(b"GET /ka2 HTTP/1.0\r\nHost: h\r\n\r\n");
    let r = c.response(false);
    assert!(r.body.starts_with("GET /ka2 http://h/ka2"));
    assert!(r.closes());
    assert!(c.is_closed());
}

#[test]
fn head_gets_headers_and_length_but_no_body() {
    let srv = TestServer::start(small_config());
    let mut c = srv.connect();
    c.send(get("/h").as_bytes());
    let get_len: usize = c.response(false).body.replace("GET", "HEAD").len();
    c.send(b"HEAD /h HTTP/1.1\r\nHost: example.test\r\n\r\n");
    let r = c.response(true);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/plain"));
    assert_eq!(
        r.header("content-length"),
        Some(get_len.to_string().as_str())
    );
    // A HEAD handler may state the length of a body it did not build.
    c.send(b"HEAD /headlen HTTP/1.1\r\nHost: example.test\r\n\r\n");
    assert_eq!(c.response(true).header("content-length"), Some("1234"));
    // The next response starts right away: no body bytes were sent.
    c.send(get("/after").as_bytes());
    assert!(c.response(false).body.starts_with("GET /after "));
}

#[test]
fn strict_framing_rejects_with_400_and_close() {
    let srv = TestServer::start(small_config());
    let cases: &[&str] = &[
        "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello",
        "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
        "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: +5\r\n\r\nhello",
        "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: -1\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5, 5\r\n\r\nhello",
        "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 0x5\r\n\r\nhello",
        "GET / HTTP/1.1\r\nHost: h\r\nX-Folded: a\r\n  b\r\n\r\n",
        "GET / HTTP/1.1\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a/b?\r\n\r\n",
        "GET /  HTTP/1.1\r\nHost: h\r\n\r\n",
        "GET / HTTP/1.1 extra\r\nHost: h\r\n\r\n",
        "GET\r\n\r\n",
        "GET * HTTP/1.1\r\nHost: h\r\n\r\n",
        "OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n",
        "CONNECT h:443 HTTP/1.1\r\nHost: h\r\n\r\n",
        "GET relative HTTP/1.1\r\nHost: h\r\n\r\n",
        "GET /a#frag HTTP/1.1\r\nHost: h\r\n\r\n",
        "GET / HTTP/2.0\r\nHost: h\r\n\r\n",
        "GET / HTTP/1.1\nHost: h\n\n",
        "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcd\r\n0\r\n\r\n",
    ];
    for case in cases {
        let mut c = srv.connect();
        c.send(case.as_bytes());
        let r = c.response(false);
        assert_eq!(r.status, 400, "{case:?}");
        assert_eq!(r.body, r#"{"error":"Bad Request"}"#, "{case:?}");
        assert_eq!(r.header("content-type"), Some("application/json"));
        assert!(r.closes(), "{case:?}");
        assert!(c.is_closed(), "{case:?}");
    }
    // Methods are case-sensitive; unknown ones are 501.
    for case in [
        "get / HTTP/1.1\r\nHost: h\r\n\r\n",
        "BREW / HTTP/1.1\r\nHost: h\r\n\r\n",
    ] {
        let mut c = srv.connect();
        c.send(case.as_bytes());
        let r = c.response(false);
        assert_eq!(r.status, 501, "{case:?}");
        assert!(c.is_closed());
    }
}

#[test]
fn chunked_bodies_decoded_and_bounded() {
    let srv = TestServer::start(small_config());
    let mut c = srv.connect();
    c.send(
        b"POST /ch HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: Chunked\r\n\r\n\
          5;name=val\r\nhello\r\n1\r\n \r\nA\r\n0123456789\r\n0\r\nX-Trailer: yes\r\n\r\n",
    );
    c.send(get("/next").as_bytes());
    let r = c.response(false);
    assert!(r.body.ends_with("body=hello 0123456789"), "{}", r.body);
    assert!(c.response(false).body.starts_with("GET /next "));

    // 40 + 40 bytes > max_body_bytes (64): 413 and close.
    let mut c = srv.connect();
    let chunk = "x".repeat(40);
    c.send(
        format!(
            "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n28\r\n{chunk}\r\n28\r\n{chunk}\r\n0\r\n\r\n"
        )
        .as_bytes(),
    );
    let r = c.response(false);
    assert_eq!(r.status, 413);
    assert_eq!(r.body, r#"{"error":"Payload too large"}"#);
    assert!(c.is_closed());
}

#[test]
fn oversized_head_is_431() {
    let srv = TestServer::start(small_config());
    let mut c = srv.connect();
    let big = "a".repeat(2000);
    c.send(format!("GET / HTTP/1.1\r\nHost: h\r\nX-Big: {big}\r\n\r\n").as_bytes());
    let r = c.response(false);
    assert_eq!(r.status, 431);
    assert_eq!(r.body, r#"{"error":"Request Header Fields Too Large"}"#);
    assert!(r.closes());
    assert!(c.is_closed());
}

#[test]
fn oversized_body_is_413_before_reading_it() {
    let srv = TestServer::start(small_config());
    let mut c = srv.connect();
    // Only the head is sent: the answer must come without the body.
    c.send(b"POST /big HTTP/1.1\r\nHost: h\r\nContent-Length: 65\r\n\r\n");
    let r = c.response(false);
    assert_eq!(r.status, 413);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.body, r#"{"error":"Payload too large"}"#);
    assert!(r.closes());
    assert!(c.is_closed());
    // Exactly at the limit is fine.
    let mut c = srv.connect();
    let body = "y".repeat(64);
    c.send(format!("POST /ok HTTP/1.1\r\nHost: h\r\nContent-Length: 64\r\n\r\n{body}").as_bytes());
    assert_eq!(c.response(false).status, 200);
}

#[test]
fn expect_100_continue() {
    let srv = TestServer::start(small_config());
    let mut c = srv.connect();
    c.send(b"POST /e HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n");
    let interim = c.read_exact_buf(25);
    assert_eq!(interim, b"HTTP/1.1 100 Continue\r\n\r\n");
    c.send(b"data");
    let r = c.response(false);
    assert_eq!(r.status, 200);
    assert!(r.body.ends_with("body=data"));
    // Too large: the final 413 comes instead of 100.
    let mut c = srv.connect();
    c.send(b"POST /e HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 1000\r\n\r\n");
    assert_eq!(c.response(false).status, 413);
}

#[test]
fn request_smuggled_in_body_is_never_executed() {
    let srv = TestServer::start(small_config());
    let mut c = srv.connect();
    let inner = "GET /smuggled HTTP/1.1\r\nHost: h\r\n\r\n";
    c.send(
        format!(
            "POST /outer HTTP/1.1\r\nHost: h\r\nContent-Length: {}\r\n\r\n{inner}",
            inner.len()
        )
        .as_bytes(),
    );
    let r = c.response(false);
    assert!(r.body.starts_with("POST /outer "));
    c.send(get("/after").as_bytes());
    assert!(c.response(false).body.starts_with("GET /after "));
    // Inside a chunked body too.
    let mut c = srv.connect();
    c.send(
        format!(
            "POST /outer HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{inner}\r\n0\r\n\r\n",
            inner.len()
        )
        .as_bytes(),
    );
    assert!(c.response(false).body.starts_with("POST /outer "));
    // TE + CL (the classic desync) is refused outright.
    let mut c = srv.connect();
    c.send(
        format!("POST /outer HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n{inner}").as_bytes(),
    );
    assert_eq!(c.response(false).status, 400);
    assert!(c.is_closed());
    assert_eq!(srv.handler.smuggled.load(Ordering::SeqCst), 0);
}

#[test]
fn response_headers_are_exactly_the_handlers() {
    let srv = TestServer::start(small_config());
    let mut c = srv.connect();
    c.send(get("/noct").as_bytes());
    let r = c.response(false);
    assert_eq!(r.header("content-type"), None, "{r:?}");
    assert_eq!(
        r.header("content-length"),
        Some(r.body.len().to_string().as_str())
    );
    c.send(get("/204").as_bytes());
    let r = c.response(true);
    assert_eq!(r.status, 204);
    assert_eq!(r.header("content-length"), None);
    c.send(get("/304").as_bytes());
    let r = c.response(true);
    assert_eq!(r.status, 304);
    assert_eq!(r.header("content-length"), None);
    // No body bytes leaked after the 204/304: the next response parses.
    c.send(get("/last").as_bytes());
    assert!(c.response(false).body.starts_with("GET /last "));
}

#[test]
fn request_seen_by_handler() {
    let srv = TestServer::start(small_config());
    let mut c = srv.connect();
    c.send(b"POST /p/a%2Fb?x=1&y HTTP/1.1\r\nHost: example.test:8080\r\nX-Dup: 1\r\nX-Dup: 2\r\nContent-Length: 2\r\n\r\nhi");
    let r = c.response(false);
    assert_eq!(
        r.body,
        "POST /p/a%2Fb?x=1&y http://example.test:8080/p/a%2Fb?x=1&y Some(Http1_1) loopback=true ct=none dup=1|2 body=hi"
    );
    // Absolute-form: the path is taken, the authority comes from the target.
    c.send(b"GET http://other.test/abs?q HTTP/1.1\r\nHost: example.test\r\nContent-Type: application/json\r\n\r\n");
    let r = c.response(false);
    assert!(
        r.body.starts_with(
            "GET /abs?q http://other.test/abs?q Some(Http1_1) loopback=true ct=application/json"
        ),
        "{}",
        r.body
    );
}

#[test]
fn deadlines_head_and_keep_alive() {
    let srv = TestServer::start(ServerConfig {
        head_timeout: Duration::from_millis(300),
        body_timeout: Duration::from_millis(300),
        keep_alive_timeout: Duration::from_millis(300),
        ..small_config()
    });
    // Partial head: 408 then close.
    let mut c = srv.connect();
    c.send(b"GET / HTTP/1.1\r\nHost");
    let t = Instant::now();
    let r = c.response(false);
    assert_eq!(r.status, 408);
    assert!(c.is_closed());
    assert!(t.elapsed() < Duration::from_secs(3));
    // Partial body: 408 then close.
    let mut c = srv.connect();
    c.send(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\nabc");
    assert_eq!(c.response(false).status, 408);
    assert!(c.is_closed());
    // Idle keep-alive: silent close.
    let mut c = srv.connect();
    c.send(get("/").as_bytes());
    assert_eq!(c.response(false).status, 200);
    let t = Instant::now();
    assert!(c.is_closed());
    assert!(t.elapsed() < Duration::from_secs(3));
    // A connection that never sends: closed after head_timeout.
    let mut c = srv.connect();
    assert!(c.is_closed());
}

#[test]
fn at_the_cap_an_idle_keep_alive_connection_makes_room() {
    let srv = TestServer::start(ServerConfig {
        max_connections: 1,
        ..small_config()
    });
    let mut a = srv.connect();
    a.send(get("/a").as_bytes());
    assert_eq!(a.response(false).status, 200);
    // `a` now waits for its next head: the new connection takes its place.
    let mut b = srv.connect();
    b.send(get("/b").as_bytes());
    assert_eq!(b.response(false).status, 200);
    assert!(a.is_closed(), "the idle connection was closed to make room");
}

#[test]
fn at_the_cap_a_connection_mid_request_is_kept_and_the_new_one_refused() {
    let srv = TestServer::start(ServerConfig {
        max_connections: 1,
        ..small_config()
    });
    // `a` is mid-request: its head is complete, its body not yet.
    let mut a = srv.connect();
    a.send(b"POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\n\r\nab");
    std::thread::sleep(Duration::from_millis(100));
    let mut b = srv.connect();
    b.s.write_all(get("/b").as_bytes()).ok();
    assert!(b.is_closed(), "no waiting connection to close: refused");
    a.send(b"cd");
    let r = a.response(false);
    assert_eq!(r.status, 200);
    assert!(r.body.ends_with("body=abcd"), "{}", r.body);
    // Once `a` waits again, a new connection is served.
    let mut c = srv.connect();
    c.send(get("/c").as_bytes());
    assert_eq!(c.response(false).status, 200);
}

#[test]
fn the_slowest_head_makes_room_not_the_newest() {
    let srv = TestServer::start(ServerConfig {
        max_connections: 3,
        max_connections_per_ip: Some(3),
        ..small_config()
    });
    let mut slow: Vec<Client> = (0..3)
        .map(|_| {
            let mut c = srv.connect();
            c.send(b"GET /slowhead HTTP/1.1\r\n");
            std::thread::sleep(Duration::from_millis(20));
            c
        })
        .collect();
    let mut fresh = srv.connect();
    fresh.send(get("/fresh").as_bytes());
    assert_eq!(fresh.response(false).status, 200);
    assert!(slow[0].is_closed(), "the oldest slow head was closed");
    // The others are still open: they can complete their requests.
    slow[2].send(b"Host: h\r\n\r\n");
    assert_eq!(slow[2].response(false).status, 200);
}

#[test]
fn one_address_cannot_take_more_than_its_share() {
    let srv = TestServer::start(ServerConfig {
        max_connections: 100,
        max_connections_per_ip: Some(2),
        ..small_config()
    });
    // Two connections of 127.0.0.1 mid-request: a third from it is refused,
    // though the cap is far away.
    let mut held: Vec<Client> = (0..2)
        .map(|_| {
            let mut c = srv.connect();
            c.send(b"POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\n");
            c
        })
        .collect();
    std::thread::sleep(Duration::from_millis(100));
    let mut third = srv.connect();
    third.s.write_all(get("/b").as_bytes()).ok();
    assert!(third.is_closed());
    for c in &mut held {
        c.send(b"ok");
        assert_eq!(c.response(false).status, 200);
    }
    // Now they wait for a next head: the newcomer replaces the older one.
    let mut fourth = srv.connect();
    fourth.send(get("/c").as_bytes());
    assert_eq!(fourth.response(false).status, 200);
    assert!(held[0].is_closed());
}

#[test]
fn exempt_addresses_have_no_per_address_limit() {
    let srv = TestServer::start(ServerConfig {
        max_connections: 100,
        max_connections_per_ip: Some(1),
        per_ip_exempt: vec!["127.0.0.0/8".parse().unwrap()],
        ..small_config()
    });
    let mut a = srv.connect();
    a.send(b"POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\n");
    std::thread::sleep(Duration::from_millis(100));
    let mut b = srv.connect();
    b.send(get("/b").as_bytes());
    assert_eq!(b.response(false).status, 200);
    a.send(b"ok");
    assert_eq!(a.response(false).status, 200);
}

#[test]
fn a_head_below_the_minimum_rate_gets_408_before_the_deadline() {
    let srv = TestServer::start(ServerConfig {
        head_timeout: Duration::from_secs(30),
        min_receive_rate: 100,
        receive_rate_grace: Duration::from_millis(300),
        ..small_config()
    });
    let mut c = srv.connect();
    let t = std::time::Instant::now();
    c.send(b"GET /trickle HTTP/1.1\r\n");
    // 25 bytes earn 250 ms over the 300 ms grace: cut off near 550 ms.
    let r = c.response(false);
    let took = t.elapsed();
    assert_eq!(r.status, 408);
    assert!(
        took < Duration::from_secs(5),
        "cut off by the rate, not the 30 s deadline: {took:?}"
    );
    assert!(
        took >= Duration::from_millis(300),
        "not before the grace: {took:?}"
    );
}

#[test]
fn a_body_below_the_minimum_rate_gets_408() {
    let srv = TestServer::start(ServerConfig {
        body_timeout: Duration::from_secs(30),
        min_receive_rate: 100,
        receive_rate_grace: Duration::from_millis(300),
        ..small_config()
    });
    let mut c = srv.connect();
    c.send(b"POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: 60\r\n\r\nx");
    let t = std::time::Instant::now();
    let r = c.response(false);
    assert_eq!(r.status, 408);
    assert!(t.elapsed() < Duration::from_secs(5));
}

#[test]
fn a_steady_sender_above_the_rate_is_served() {
    let srv = TestServer::start(ServerConfig {
        min_receive_rate: 100,
        receive_rate_grace: Duration::from_millis(200),
        ..small_config()
    });
    let mut c = srv.connect();
    // 10 bytes every 50 ms: 200 bytes/s, for about 600 ms.
    let req =
        b"POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: 30\r\n\r\n012345678901234567890123456789";
    for chunk in req.chunks(10) {
        c.send(chunk);
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(c.response(false).status, 200);
}

#[test]
fn handler_panic_is_500() {
    let srv = TestServer::start(small_config());
    let mut c = srv.connect();
    c.send(get("/panic").as_bytes());
    let r = c.response(false);
    assert_eq!(r.status, 500);
    assert_eq!(r.body, "Internal Server Error");
    assert!(c.is_closed());
    // The server survives.
    let mut c = srv.connect();
    c.send(get("/ok").as_bytes());
    assert_eq!(c.response(false).status, 200);
}

#[test]
fn graceful_shutdown_finishes_in_flight_requests() {
    let mut srv = TestServer::start(small_config());
    let mut idle = srv.connect();
    idle.send(get("/warm").as_bytes());
    assert_eq!(idle.response(false).status, 200);
    let mut c = srv.connect();
    c.send(get("/slow").as_bytes());
    std::thread::sleep(Duration::from_millis(150));
    let t = Instant::now();
    srv.stop().unwrap(); // returns once the in-flight request is done
    assert!(t.elapsed() < Duration::from_secs(2));
    let r = c.response(false);
    assert_eq!(r.status, 200);
    assert!(r.body.starts_with("GET /slow "));
    assert!(r.closes());
    assert!(c.is_closed());
    // The idle keep-alive connection was closed, and new ones are refused.
    assert!(idle.is_closed());
    assert!(TcpStream::connect(srv.addr).is_err());
}

#[test]
fn at_shutdown_a_head_under_way_is_still_answered() {
    let mut srv = TestServer::start(small_config());
    let mut idle = srv.connect();
    idle.send(get("/warm").as_bytes());
    assert_eq!(idle.response(false).status, 200);
    let mut c = srv.connect();
    c.send(b"GET /late HTTP/1.1\r\nHo");
    std::thread::sleep(Duration::from_millis(100));
    // Shutdown starts: the idle connection ends, the one mid-head does not.
    let _ = srv.stop.take().unwrap().send_blocking(());
    assert!(idle.is_closed());
    c.send(b"st: h\r\n\r\n");
    let r = c.response(false);
    assert_eq!(r.status, 200);
    assert!(r.body.starts_with("GET /late "), "{}", r.body);
    assert!(r.closes());
    srv.stop().unwrap();
}

#[test]
fn serve_on_an_executor_run_by_two_threads() {
    let std_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = std_listener.local_addr().unwrap();
    let listener = async_net::TcpListener::try_from(std_listener).unwrap();
    let ex = Arc::new(async_executor::Executor::new());
    let (stop_tx, stop_rx) = smol::channel::bounded::<()>(1);
    let (end_tx, end_rx) = smol::channel::bounded::<()>(1);
    let worker = {
        let ex = ex.clone();
        std::thread::spawn(move || futures_lite::future::block_on(ex.run(end_rx.recv())))
    };
    let server = {
        let ex = ex.clone();
        std::thread::spawn(move || {
            let fut = starfish::http::serve_on(
                &ex,
                listener,
                Arc::new(Echo::default()),
                small_config(),
                async move {
                    let _ = stop_rx.recv().await;
                },
            );
            futures_lite::future::block_on(ex.run(fut))
        })
    };
    let mut clients: Vec<Client> = (0..4)
        .map(|_| {
            let s = TcpStream::connect(addr).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            Client { s, buf: Vec::new() }
        })
        .collect();
    for c in &mut clients {
        c.send(get("/slow").as_bytes());
    }
    let t = Instant::now();
    for c in &mut clients {
        assert_eq!(c.response(false).status, 200);
    }
    assert!(t.elapsed() < Duration::from_millis(1500));
    stop_tx.send_blocking(()).unwrap();
    server.join().unwrap().unwrap();
    end_tx.send_blocking(()).unwrap();
    let _ = worker.join().unwrap();
}

#[test]
fn max_requests_per_connection_closes_after_the_last() {
    let srv = TestServer::start(ServerConfig {
        max_requests_per_connection: Some(2),
        ..small_config()
    });
    let mut c = srv.connect();
    c.send(format!("{}{}{}", get("/1"), get("/2"), get("/3")).as_bytes());
    assert!(!c.response(false).closes());
    let r = c.response(false);
    assert!(r.body.starts_with("GET /2 "));
    assert!(r.closes());
    // The third pipelined request is not answered.
    assert!(c.is_closed());
}

#[test]
fn prepared_answers_are_written_from_their_pieces() {
    let srv = TestServer::start(small_config());
    let mut c = srv.connect();
    // Pipelined: GET, HEAD and a large one (written in several vectored
    // writes), answered in order.
    let mut reqs = get("/prepared");
    reqs.push_str("HEAD /prepared HTTP/1.1\r\nHost: example.test\r\n\r\n");
    reqs.push_str(&get("/prepared-big"));
    c.send(reqs.as_bytes());
    let head = "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\netag: \"wrapper\"\r\nx-from: prepared\r\nx-wrapper: 1\r\ncontent-length: 12\r\n\r\n";
    let got = c.read_exact_buf(head.len() + 12);
    assert_eq!(
        String::from_utf8(got).unwrap(),
        format!("{head}<abcdefghij>"),
        "head fields in name order, the wrapper's ETag, ours for the length"
    );
    let got = c.read_exact_buf(head.len());
    assert_eq!(String::from_utf8(got).unwrap(), head, "HEAD: no body");
    let r = c.response(false);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("etag"), Some("\"tag\""));
    assert_eq!(r.body.len(), 300_002);
    let expected: String = (0..300_000)
        .map(|i| (b'a' + (i % 26) as u8) as char)
        .collect();
    assert_eq!(r.body, format!("<{expected}>"));
    assert!(!r.closes());
    // A materialised copy carries the same headers and body.
    let res = Prepared::materialize(prepared("/prepared"));
    assert_eq!(res["etag"].as_str(), "\"wrapper\"");
    assert_eq!(res["x-from"].as_str(), "prepared");
    assert!(res.header("content-length").is_none());
    let body = futures_lite::future::block_on(async move {
        let mut res = res;
        res.body_string().await.unwrap()
    });
    assert_eq!(body, "<abcdefghij>");
}
