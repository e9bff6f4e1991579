//! Shared helpers of the HTTP integration tests: start the real library
//! server on an ephemeral loopback port, speak raw HTTP/1.1 over a
//! `std::net::TcpStream` (so the tests see exact bytes), and sign requests
//! with cap-certs.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use starfish::auth::cap::CapResolverConfig;
use starfish::http::ServerConfig;
use starfish::proto::{
    cap::{self, CapCert, MintOptions},
    encoding::b64_encode,
    json::{Object, Value},
    request_sig::{self, RequestToSign},
};
use starfish::server::{ServeOptions, Server, StoreChoice};

pub use starfish::http::service::now_ms;

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A fresh, empty directory under the system temp dir (removed on drop of
/// the owning [`TestServer`]).
pub fn temp_dir(tag: &str) -> PathBuf {
    let n = COUNTER.fetch_add(1, Ordering::SeqCst);
    let dir = std::env::temp_dir().join(format!(
        "starfish-test-{tag}-{}-{n}-{}",
        std::process::id(),
        now_ms()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create temp dir");
    dir
}

/// How to start a test server.
#[derive(Clone, Debug)]
pub struct Setup {
    pub config: String,
    pub base_path: String,
    pub allow_anonymous: bool,
    /// Replica settings JSON (`--replica`).
    pub replica: Option<String>,
    /// Port to listen on (0: any).
    pub port: u16,
    /// Any other server option (`--trusted-proxy`, `--config-endpoint`, ...).
    pub tweak: fn(&mut ServeOptions),
    /// Keep documents in this directory (kept after the server stops, so a
    /// test can restart on it) instead of a fresh one removed on drop.
    pub data_dir: Option<PathBuf>,
}

impl Setup {
    pub fn new(config: &str) -> Self {
        Setup {
            config: config.to_owned(),
            base_path: "/v1".to_owned(),
            allow_anonymous: true,
            replica: None,
            port: 0,
            tweak: |_| {},
            data_dir: None,
        }
    }
    /// Store documents in `dir`, kept after the server stops.
    pub fn data_dir(mut self, dir: &std::path::Path) -> Self {
        self.data_dir = Some(dir.to_path_buf());
        self
    }
    /// Adjust the server options before start.
    pub fn tweak(mut self, f: fn(&mut ServeOptions)) -> Self {
        self.tweak = f;
        self
    }
    pub fn replica(mut self, settings: &str) -> Self {
        self.replica = Some(settings.to_owned());
        self
    }
    pub fn port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }
    pub fn base_path(mut self, p: &str) -> Self {
        self.base_path = p.to_owned();
        self
    }
    pub fn no_anonymous(mut self) -> Self {
        self.allow_anonymous = false;
        self
    }
    pub fn start(self) -> TestServer {
        TestServer::start(self)
    }
}

/// A running server; stopped and cleaned up on drop.
pub struct TestServer {
    pub addr: SocketAddr,
    /// The filesystem store's directory.
    pub data_dir: PathBuf,
    root: PathBuf,
    stop: Option<async_channel::Sender<()>>,
    handle: Option<JoinHandle<()>>,
}

impl TestServer {
    pub fn start(setup: Setup) -> TestServer {
        let root = temp_dir("srv");
        let config_path = root.join("config.json");
        std::fs::write(&config_path, &setup.config).expect("write config");
        let data_dir = setup.data_dir.clone().unwrap_or_else(|| root.join("data"));
        let replica = setup.replica.as_ref().map(|text| {
            let p = root.join("replica.json");
            std::fs::write(&p, text).expect("write replica settings");
            p
        });
        let mut opts = ServeOptions {
            config: Some(config_path),
            listen: SocketAddr::from(([127, 0, 0, 1], setup.port)),
            store: StoreChoice::Dir(data_dir.clone()),
            base_path: setup.base_path,
            auth: CapResolverConfig {
                allow_anonymous: setup.allow_anonymous,
                ..CapResolverConfig::default()
            },
            http: ServerConfig {
                shutdown_grace: Duration::from_millis(200),
                ..ServerConfig::default()
            },
            threads: 2,
            replica,
            ..ServeOptions::default()
        };
        (setup.tweak)(&mut opts);
        let server = Server::bind(opts).expect("server binds");
        let addr = server.local_addr();
        let (tx, rx) = async_channel::bounded::<()>(1);
        let handle = std::thread::spawn(move || {
            server
                .run_until(async move {
                    let _ = rx.recv().await;
                })
                .expect("server runs");
        });
        TestServer {
            addr,
            data_dir,
            root,
            stop: Some(tx),
            handle: Some(handle),
        }
    }

    /// The `Host` header value (and signed `h`).
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.addr.port())
    }

    pub fn get(&self, target: &str) -> Resp {
        Req::new("GET", target).send(self)
    }

    pub fn post_json(&self, target: &str, body: &str) -> Resp {
        Req::new("POST", target)
            .header("Content-Type", "application/json")
            .body(body.as_bytes())
            .send(self)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// A raw HTTP/1.1 request.
#[derive(Clone, Debug)]
pub struct Req {
    pub method: String,
    pub target: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Add `Content-Length` automatically (for a non-empty body or POST).
    pub auto_length: bool,
}

impl Req {
    pub fn new(method: &str, target: &str) -> Self {
        Req {
            method: method.to_owned(),
            target: target.to_owned(),
            headers: Vec::new(),
            body: Vec::new(),
            auto_length: true,
        }
    }
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }
    pub fn headers(mut self, hs: &[(String, String)]) -> Self {
        self.headers.extend(hs.iter().cloned());
        self
    }
    pub fn body(mut self, b: &[u8]) -> Self {
        self.body = b.to_vec();
        self
    }
    pub fn no_content_length(mut self) -> Self {
        self.auto_length = false;
        self
    }

    pub fn to_bytes(&self, host: &str) -> Vec<u8> {
        let mut head = format!(
            "{} {} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n",
            self.method, self.target
        );
        let has_len = self
            .headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case("content-length"));
        for (n, v) in &self.headers {
            head.push_str(&format!("{n}: {v}\r\n"));
        }
        if self.auto_length && !has_len && (!self.body.is_empty() || self.method == "POST") {
            head.push_str(&format!("Content-Length: {}\r\n", self.body.len()));
        }
        head.push_str("\r\n");
        let mut out = head.into_bytes();
        out.extend_from_slice(&self.body);
        out
    }

    pub fn send(&self, server: &TestServer) -> Resp {
        send_raw(server.addr, &self.to_bytes(&server.host()))
    }
}

/// A parsed response.
#[derive(Clone, Debug)]
pub struct Resp {
    pub status: u16,
    /// Header names lower-cased, in wire order.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {:?}", self.text()))
    }

    /// Status, `Content-Type: application/json` and exact body bytes.
    #[track_caller]
    pub fn assert_json(&self, status: u16, body: &str) {
        assert_eq!(
            (self.status, self.text().as_str()),
            (status, body),
            "headers: {:?}",
            self.headers
        );
        assert_eq!(self.header("content-type"), Some("application/json"));
    }

    /// `{"error":"<msg>"}` with this status.
    #[track_caller]
    pub fn assert_error(&self, status: u16, msg: &str) {
        self.assert_json(status, &format!("{{\"error\":{}}}", serde_json::json!(msg)));
    }

    /// The framework 404.
    #[track_caller]
    pub fn assert_not_found(&self) {
        assert_eq!(
            (self.status, self.text().as_str()),
            (404, "404 Not Found"),
            "headers: {:?}",
            self.headers
        );
        assert_eq!(
            self.header("content-type"),
            Some("text/plain; charset=UTF-8")
        );
    }

    /// Exact JSON bytes where `{TS}` stands for a timestamp taken at or
    /// after `since` ms (and not in the future). The timestamp is read from
    /// the body's top-level `timestamp` field (or `ts`).
    #[track_caller]
    pub fn assert_json_ts(&self, status: u16, template: &str, since: i64) {
        let v = self.json();
        let ts = v
            .get("timestamp")
            .or_else(|| v.get("ts"))
            .and_then(serde_json::Value::as_i64)
            .unwrap_or_else(|| panic!("no timestamp in {}", self.text()));
        assert!(
            ts >= since && ts <= now_ms(),
            "timestamp {ts} not in [{since}, now]"
        );
        self.assert_json(status, &template.replace("{TS}", &ts.to_string()));
    }
}

/// Send bytes on a fresh connection and read the whole response (the
/// request asks for `Connection: close`).
pub fn send_raw(addr: SocketAddr, bytes: &[u8]) -> Resp {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(bytes).expect("write request");
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    parse_response(&buf)
}

pub fn parse_response(buf: &[u8]) -> Resp {
    let end = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no response head in {:?}", String::from_utf8_lossy(buf)));
    let head = std::str::from_utf8(&buf[..end]).expect("ASCII head");
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap();
    let status: u16 = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let headers: Vec<(String, String)> = lines
        .map(|l| {
            let (n, v) = l.split_once(':').expect("header line");
            (n.trim().to_ascii_lowercase(), v.trim().to_owned())
        })
        .collect();
    let rest = &buf[end + 4..];
    let body = match headers.iter().find(|(n, _)| n == "content-length") {
        Some((_, v)) => {
            let n: usize = v.parse().expect("numeric content-length");
            rest[..n.min(rest.len())].to_vec()
        }
        None => rest.to_vec(),
    };
    Resp {
        status,
        headers,
        body,
    }
}

// ---------------------------------------------------------------------------
// Cap-certs and signed requests

/// The root identity's Ed25519 seed used by the tests.
pub const ROOT_SEED: [u8; 32] = [7; 32];
/// Another identity.
pub const OTHER_SEED: [u8; 32] = [9; 32];

pub fn pub_hex(seed: &[u8; 32]) -> String {
    request_sig::public_key_hex(seed)
}

/// The user id of a seed's identity.
pub fn user_id(seed: &[u8; 32]) -> String {
    starfish::proto::identity::user_id_from_pub_hex(&pub_hex(seed)).unwrap()
}

/// A `scope` object: `ops`, optional `paths`, `collections: ["*"]`.
pub fn scope(ops: &[&str], paths: Option<&[&str]>) -> Object {
    let arr = |xs: &[&str]| Value::Array(xs.iter().map(|s| Value::from(*s)).collect());
    let mut o = Object::new();
    o.insert("ops", arr(ops));
    if let Some(p) = paths {
        o.insert("paths", arr(p));
    }
    o.insert("collections", arr(&["*"]));
    o
}

/// A self-signed device cap of `seed`, valid from `nbf_s` for `ttl_s`.
pub fn device_cap_at(seed: &[u8; 32], scope: Object, nbf_s: i64, ttl_s: i64) -> CapCert {
    let pk = pub_hex(seed);
    let n = COUNTER.fetch_add(1, Ordering::SeqCst) as u8;
    cap::mint_device_cap(
        seed,
        &pk,
        &pk,
        &"22".repeat(32),
        scope,
        MintOptions {
            nbf: nbf_s,
            ttl_sec: ttl_s,
            nonce: [n; 16],
        },
    )
    .expect("mint")
}

/// A currently valid self-signed device cap.
pub fn device_cap(seed: &[u8; 32], scope: Object) -> CapCert {
    device_cap_at(seed, scope, now_ms() / 1000 - 60, 3600)
}

static NONCE: AtomicUsize = AtomicUsize::new(1);

/// A fresh, unique nonce (base64 of 16 bytes).
pub fn fresh_nonce() -> String {
    let n = NONCE.fetch_add(1, Ordering::SeqCst) as u64;
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&n.to_le_bytes());
    b[8..].copy_from_slice(&(std::process::id() as u64).to_le_bytes());
    b64_encode(&b)
}

/// The four auth headers of a request signed by `seed` with `cert`.
/// `signed_path` is the `p` that is signed (path + query as sent, unless a
/// test wants otherwise); the body is signed unless the content type is a
/// non-JSON media type.
#[allow(clippy::too_many_arguments)]
pub fn sign_with(
    seed: &[u8; 32],
    cert: &CapCert,
    method: &str,
    signed_path: &str,
    host: &str,
    content_type: Option<&str>,
    body: &[u8],
    nonce: &str,
    ts: i64,
) -> Vec<(String, String)> {
    let body = request_sig::signed_body(method, content_type, body);
    let req = RequestToSign {
        method,
        path_and_query: signed_path,
        host,
        body,
        ts: ts as f64,
        nonce_b64: nonce,
    };
    let sig = request_sig::sign_request(&req, seed);
    vec![
        ("Authorization".to_owned(), cert.authorization_header()),
        ("X-Starfish-Sig".to_owned(), sig),
        ("X-Starfish-Ts".to_owned(), ts.to_string()),
        ("X-Starfish-Nonce".to_owned(), nonce.to_owned()),
    ]
}

/// A signed GET of `target`.
pub fn signed_get(server: &TestServer, seed: &[u8; 32], cert: &CapCert, target: &str) -> Req {
    let h = sign_with(
        seed,
        cert,
        "GET",
        target,
        &server.host(),
        None,
        b"",
        &fresh_nonce(),
        now_ms(),
    );
    Req::new("GET", target).headers(&h)
}

/// A signed JSON POST of `target`.
pub fn signed_post(
    server: &TestServer,
    seed: &[u8; 32],
    cert: &CapCert,
    target: &str,
    body: &str,
) -> Req {
    let h = sign_with(
        seed,
        cert,
        "POST",
        target,
        &server.host(),
        Some("application/json"),
        body.as_bytes(),
        &fresh_nonce(),
        now_ms(),
    );
    Req::new("POST", target)
        .header("Content-Type", "application/json")
        .headers(&h)
        .body(body.as_bytes())
}

/// Lowercase hex SHA-256 computed independently of the library.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
