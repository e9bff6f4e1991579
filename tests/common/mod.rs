//! Shared helpers of the HTTP integration tests: start the real library
//! server on an ephemeral loopback port, speak raw HTTP/1.1 over a
//! `std::net::TcpStream` (so the tests see exact bytes), and sign requests
//! with cap-certs.
#![allow(dead_code)]

pub mod bin;
pub mod certs;
#[cfg(feature = "postgres")]
pub mod pg;

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
use starfish::server::{ServeOptions, Server, StoreChoice, TlsFiles};

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
    /// Revocation file (`--revocations`).
    pub revocations: Option<PathBuf>,
    /// Serve HTTPS with this certificate and key file, and verify it with
    /// this CA (PEM) in the test's own requests.
    pub tls: Option<(PathBuf, PathBuf, String)>,
    /// Limits and deadlines of the HTTP layer.
    pub http: ServerConfig,
    /// Any other server option (`--trusted-proxy`, `--config-endpoint`, ...).
    pub tweak: fn(&mut ServeOptions),
    /// Keep documents in this directory (kept after the server stops, so a
    /// test can restart on it) instead of a fresh one removed on drop.
    pub data_dir: Option<PathBuf>,
}

/// A throw-away CA and a server certificate it signs, as PEM files in a
/// temp dir (removed on drop).
#[derive(Debug)]
pub struct TlsCerts {
    pub dir: PathBuf,
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
    pub ca_pem: String,
    /// The leaf certificate, DER.
    pub leaf_der: Vec<u8>,
}

impl TlsCerts {
    /// A new CA and a leaf for `names` with a `kind` key.
    pub fn new(names: &[&str], kind: certs::KeyKind, validity: certs::Validity) -> TlsCerts {
        let ca = certs::Ca::new("starfish test CA");
        let leaf = ca.leaf(names, kind, validity);
        TlsCerts::write(&ca, &leaf)
    }

    /// For 127.0.0.1 and localhost, ECDSA, currently valid.
    pub fn localhost() -> TlsCerts {
        TlsCerts::new(
            &["127.0.0.1", "localhost"],
            certs::KeyKind::EcdsaP256,
            certs::Validity::Current,
        )
    }

    /// Write `ca` and `leaf` to a fresh temp dir.
    pub fn write(ca: &certs::Ca, leaf: &certs::Leaf) -> TlsCerts {
        let dir = temp_dir("tls");
        certs::write_set(&dir, ca, leaf).expect("write certificates");
        TlsCerts {
            ca: dir.join("ca.pem"),
            cert: dir.join("cert.pem"),
            key: dir.join("key.pem"),
            dir,
            ca_pem: ca.pem.clone(),
            leaf_der: leaf.der.clone(),
        }
    }
}

impl Drop for TlsCerts {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Setup {
    pub fn new(config: &str) -> Self {
        Setup {
            config: config.to_owned(),
            base_path: "/v1".to_owned(),
            allow_anonymous: true,
            replica: None,
            port: 0,
            revocations: None,
            tls: None,
            http: ServerConfig {
                shutdown_grace: Duration::from_millis(200),
                ..ServerConfig::default()
            },
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
    pub fn tls(mut self, certs: &TlsCerts) -> Self {
        self.tls = Some((certs.cert.clone(), certs.key.clone(), certs.ca_pem.clone()));
        self
    }
    pub fn http(mut self, http: ServerConfig) -> Self {
        self.http = http;
        self
    }
    pub fn replica(mut self, settings: &str) -> Self {
        self.replica = Some(settings.to_owned());
        self
    }
    pub fn revocations(mut self, path: &std::path::Path) -> Self {
        self.revocations = Some(path.to_owned());
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
    /// Over HTTPS: how the test's requests verify the server.
    #[cfg(feature = "tls")]
    pub tls_client: Option<std::sync::Arc<starfish::tls::rustls::ClientConfig>>,
    /// Over HTTPS: the server's certificate state (reload it in tests).
    #[cfg(feature = "tls")]
    pub tls_state: Option<std::sync::Arc<starfish::tls::ServerTls>>,
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
            http: setup.http.clone(),
            threads: 2,
            replica,
            revocations: setup.revocations,
            tls: setup.tls.as_ref().map(|(cert, key, _)| TlsFiles {
                cert: cert.clone(),
                key: key.clone(),
            }),
            ..ServeOptions::default()
        };
        (setup.tweak)(&mut opts);
        let server = Server::bind(opts).expect("server binds");
        let addr = server.local_addr();
        #[cfg(feature = "tls")]
        let tls_state = server.tls();
        #[cfg(feature = "tls")]
        let tls_client = setup
            .tls
            .as_ref()
            .map(|(_, _, ca)| tls_io::client_config(ca));
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
            #[cfg(feature = "tls")]
            tls_client,
            #[cfg(feature = "tls")]
            tls_state,
        }
    }

    /// Send request bytes on a fresh connection (TLS when the server
    /// serves HTTPS) and read the whole response.
    pub fn send_bytes(&self, bytes: &[u8]) -> Resp {
        #[cfg(feature = "tls")]
        if let Some(config) = &self.tls_client {
            return tls_io::send(self.addr, config, "127.0.0.1", bytes);
        }
        send_raw(self.addr, bytes)
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
        server.send_bytes(&self.to_bytes(&server.host()))
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

/// Blocking TLS for the tests' own requests (rustls over std sockets).
#[cfg(feature = "tls")]
pub mod tls_io {
    use super::{parse_response, Resp};
    use starfish::tls::rustls;
    use std::io::{Read, Write};
    use std::net::{SocketAddr, TcpStream};
    use std::sync::Arc;
    use std::time::Duration;

    pub type TlsStream = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

    /// Trust only `ca_pem`.
    pub fn client_config(ca_pem: &str) -> Arc<rustls::ClientConfig> {
        let mut roots = rustls::RootCertStore::empty();
        for c in starfish::tls::parse_certificates(ca_pem.as_bytes(), "test CA").unwrap() {
            roots.add(c).unwrap();
        }
        Arc::new(
            rustls::ClientConfig::builder_with_provider(starfish::tls::provider())
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_root_certificates(roots)
                .with_no_client_auth(),
        )
    }

    /// A TLS connection to `addr`, verifying the certificate for `name`.
    /// The handshake completes here.
    pub fn connect(addr: SocketAddr, config: &Arc<rustls::ClientConfig>, name: &str) -> TlsStream {
        let tcp = TcpStream::connect(addr).expect("connect");
        tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let name = rustls::pki_types::ServerName::try_from(name.to_owned()).unwrap();
        let conn = rustls::ClientConnection::new(config.clone(), name).unwrap();
        let mut s = rustls::StreamOwned::new(conn, tcp);
        while s.conn.is_handshaking() {
            s.conn.complete_io(&mut s.sock).expect("TLS handshake");
        }
        s
    }

    /// The server's end-entity certificate on an open connection (DER).
    pub fn peer_leaf(s: &TlsStream) -> Vec<u8> {
        s.conn.peer_certificates().expect("peer certificates")[0].to_vec()
    }

    /// Send bytes on a fresh TLS connection and read the whole response.
    pub fn send(
        addr: SocketAddr,
        config: &Arc<rustls::ClientConfig>,
        name: &str,
        bytes: &[u8],
    ) -> Resp {
        let mut s = connect(addr, config, name);
        s.write_all(bytes).expect("write request");
        s.flush().unwrap();
        let mut buf = Vec::new();
        // A peer that closes without close_notify is an error for rustls;
        // what arrived before it still counts.
        let mut chunk = [0u8; 16384];
        loop {
            match s.read(&mut chunk) {
                Ok(0) | Err(_) => break,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        parse_response(&buf)
    }

    /// One request on an open keep-alive connection; reads exactly one
    /// response (framed by Content-Length).
    pub fn exchange(s: &mut TlsStream, bytes: &[u8]) -> Resp {
        s.write_all(bytes).expect("write request");
        s.flush().unwrap();
        let mut buf = Vec::new();
        let mut chunk = [0u8; 16384];
        loop {
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
                let len: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .map(|v| v.trim().parse().unwrap())
                    .unwrap_or(0);
                if buf.len() >= end + 4 + len {
                    return parse_response(&buf);
                }
            }
            let n = s.read(&mut chunk).expect("read response");
            assert!(n > 0, "connection closed before the response");
            buf.extend_from_slice(&chunk[..n]);
        }
    }
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
