//! HTTPS end to end, with certificates made per test (rcgen, `common::certs`):
//!
//! * `serve --tls-cert/--tls-key` with RSA (PKCS#1), ECDSA and Ed25519 keys;
//! * hostile TLS input (garbage instead of a ClientHello, a stalled
//!   handshake, plain HTTP on the TLS port) is closed within the handshake
//!   deadline while other clients are served;
//! * SIGHUP re-reads the certificate without dropping open connections, a
//!   broken file keeps the old one, and SIGTERM still stops gracefully;
//! * the CLI pushes and pulls over https with `--ca-file` (anonymous and
//!   signed, by IP address and by name);
//! * an expired certificate, a wrong host name and an unknown issuer each
//!   give one clear error line naming the host and the reason, and no
//!   request reaches the server.

mod common;

use common::certs::{Ca, KeyKind, Validity};
use common::{tls_io, Setup, TlsCerts};
use starfish::http::{BoxFuture, Handler, Request, Response, ServerConfig, StatusCode};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const CONFIG: &str = r#"{"version":1,"collections":[
 {"name":"notes","storagePath":"public/notes/{id}","readRoles":["public"],"writeRoles":["public"],"encryption":"none","maxBodyBytes":65536},
 {"name":"settings","storagePath":"users/{identity}/settings","readRoles":["self"],"writeRoles":["self"],"encryption":"none","maxBodyBytes":65536}]}"#;

const HEALTH: &[u8] = b"GET /v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";

/// `GET /v1/health` answered 200 `{"ok":true,"ts":...}`.
trait Healthy {
    fn assert_healthy(&self);
}

impl Healthy for common::Resp {
    fn assert_healthy(&self) {
        assert_eq!(self.status, 200, "{}", self.text());
        assert_eq!(
            self.json()["ok"],
            serde_json::json!(true),
            "{}",
            self.text()
        );
    }
}

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_starfish"))
}

fn signal(pid: u32, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
}

#[test]
fn serves_https_with_rsa_ecdsa_and_ed25519_keys() {
    for kind in [KeyKind::Rsa2048, KeyKind::EcdsaP256, KeyKind::Ed25519] {
        let certs = TlsCerts::new(&["127.0.0.1", "localhost"], kind, Validity::Current);
        let key = std::fs::read_to_string(&certs.key).unwrap();
        let label = if kind == KeyKind::Rsa2048 {
            "-----BEGIN RSA PRIVATE KEY-----"
        } else {
            "-----BEGIN PRIVATE KEY-----"
        };
        assert!(key.starts_with(label), "{kind:?} key PEM: {key}");
        let srv = Setup::new(CONFIG).tls(&certs).start();
        srv.get("/v1/health").assert_healthy();
        let r = srv.post_json(
            "/v1/push/public/notes/a",
            r#"{"data":{"k":"v"},"baseHash":null}"#,
        );
        assert_eq!(r.status, 200, "{kind:?}: {}", r.text());
        let r = srv.get("/v1/pull/public/notes/a");
        assert_eq!(r.json()["data"], serde_json::json!({"k":"v"}), "{kind:?}");
        // Keep-alive over TLS, verified by name this time.
        let config = srv.tls_client.clone().unwrap();
        let mut s = tls_io::connect(srv.addr, &config, "localhost");
        assert_eq!(tls_io::peer_leaf(&s), certs.leaf_der);
        for _ in 0..3 {
            tls_io::exchange(&mut s, HEALTH).assert_healthy();
        }
    }
}

/// Connect, send `bytes`, and read until the server closes: how long that
/// took and what came back.
fn until_closed(addr: SocketAddr, bytes: &[u8]) -> (Duration, Vec<u8>) {
    let started = Instant::now();
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    if !bytes.is_empty() {
        s.write_all(bytes).unwrap();
    }
    let mut got = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match s.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) => panic!("connection not closed by the server: {e}"),
        }
    }
    (started.elapsed(), got)
}

#[test]
fn hostile_tls_input_is_closed_within_the_handshake_deadline() {
    let certs = TlsCerts::localhost();
    let deadline = Duration::from_millis(600);
    let srv = Setup::new(CONFIG)
        .tls(&certs)
        .http(ServerConfig {
            handshake_timeout: deadline,
            shutdown_grace: Duration::from_millis(200),
            ..ServerConfig::default()
        })
        .start();
    let addr = srv.addr;
    // Two stalled handshakes, pending while the others run: one silent,
    // one that sends a record header announcing a ClientHello and stops.
    let silent = std::thread::spawn(move || until_closed(addr, b""));
    let partial =
        std::thread::spawn(move || until_closed(addr, b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc"));
    std::thread::sleep(Duration::from_millis(100));

    // Garbage instead of a ClientHello, and plain HTTP on the TLS port: both
    // are refused at once (well before the deadline), with no HTTP answer.
    let (took, got) = until_closed(addr, b"\x00\xffthis is not a ClientHello at all\r\n\r\n");
    assert!(took < deadline, "garbage closed after {took:?}");
    assert!(!got.starts_with(b"HTTP/"), "{got:?}");
    let (took, got) = until_closed(addr, HEALTH);
    assert!(took < deadline, "plain HTTP closed after {took:?}");
    assert!(!got.starts_with(b"HTTP/"), "{got:?}");

    // Meanwhile real clients are served.
    srv.get("/v1/health").assert_healthy();

    for (what, t) in [("silent", silent), ("partial ClientHello", partial)] {
        let (took, got) = t.join().unwrap();
        assert!(
            took >= deadline - Duration::from_millis(50)
                && took < deadline + Duration::from_secs(3),
            "{what} handshake closed after {took:?}"
        );
        assert!(!got.starts_with(b"HTTP/"), "{what}: {got:?}");
    }
    // Nothing broke: the server keeps serving.
    srv.get("/v1/health").assert_healthy();
    let r = srv.post_json(
        "/v1/push/public/notes/after",
        r#"{"data":{"ok":1},"baseHash":null}"#,
    );
    assert_eq!(r.status, 200, "{}", r.text());
}

/// The server's stderr, collected by a thread.
struct Log(Arc<Mutex<String>>);

impl Log {
    fn new(stderr: std::process::ChildStderr) -> Log {
        let text = Arc::new(Mutex::new(String::new()));
        let t = text.clone();
        std::thread::spawn(move || {
            let mut r = BufReader::new(stderr);
            let mut line = String::new();
            while r.read_line(&mut line).unwrap_or(0) > 0 {
                t.lock().unwrap().push_str(&line);
                line.clear();
            }
        });
        Log(text)
    }

    fn text(&self) -> String {
        self.0.lock().unwrap().clone()
    }

    /// Wait until the log contains `what` `times` times in all.
    fn wait_for(&self, what: &str, times: usize) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let text = self.text();
            if text.matches(what).count() >= times {
                return text;
            }
            assert!(Instant::now() < deadline, "no {what:?} in the log:\n{text}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// A child process that is killed and reaped when dropped, so a failing
/// test leaves no server behind.
struct Running(std::process::Child);

impl std::ops::Deref for Running {
    type Target = std::process::Child;
    fn deref(&self) -> &std::process::Child {
        &self.0
    }
}

impl std::ops::DerefMut for Running {
    fn deref_mut(&mut self) -> &mut std::process::Child {
        &mut self.0
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `starfish serve` over TLS on an ephemeral port: the child, its port and log.
fn start_binary(certs: &TlsCerts, extra: &[&str]) -> (Running, u16, Log) {
    let child = bin()
        .args([
            "serve",
            "--memory",
            "--listen",
            "127.0.0.1:0",
            "--log-level",
            "info",
        ])
        .arg("--tls-cert")
        .arg(&certs.cert)
        .arg("--tls-key")
        .arg(&certs.key)
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut child = Running(child);
    let log = Log::new(child.stderr.take().unwrap());
    let text = log.wait_for("listening on https://127.0.0.1:", 1);
    let port = text
        .split("listening on https://127.0.0.1:")
        .nth(1)
        .and_then(|r| r.split('/').next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no port in {text}"));
    (child, port, log)
}

#[test]
fn sighup_reloads_the_certificate_without_dropping_connections() {
    let ca = Ca::new("reload test CA");
    let first = ca.leaf(&["127.0.0.1"], KeyKind::EcdsaP256, Validity::Current);
    let certs = TlsCerts::write(&ca, &first);
    let (mut child, port, log) = start_binary(&certs, &[]);
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let config = tls_io::client_config(&ca.pem);

    let mut old = tls_io::connect(addr, &config, "127.0.0.1");
    assert_eq!(tls_io::peer_leaf(&old), first.der);
    tls_io::exchange(&mut old, HEALTH).assert_healthy();

    // Renewal: a new key (another type, even) and certificate in the same files.
    let second = ca.leaf(&["127.0.0.1"], KeyKind::Ed25519, Validity::Current);
    std::fs::write(&certs.cert, &second.cert_pem).unwrap();
    std::fs::write(&certs.key, &second.key_pem).unwrap();
    signal(child.id(), "-HUP");
    log.wait_for("reloaded TLS certificate", 1);

    // A fresh client (no session to resume: a resumed TLS session would
    // not be shown a certificate at all).
    let mut new = tls_io::connect(addr, &tls_io::client_config(&ca.pem), "127.0.0.1");
    assert_eq!(
        tls_io::peer_leaf(&new),
        second.der,
        "new handshakes get the new certificate"
    );
    tls_io::exchange(&mut new, HEALTH).assert_healthy();
    // The connection made before the reload was not dropped.
    tls_io::exchange(&mut old, HEALTH).assert_healthy();
    assert_eq!(tls_io::peer_leaf(&old), first.der);

    // A broken certificate file: logged, and the current certificate stays.
    std::fs::write(&certs.cert, "not a certificate").unwrap();
    signal(child.id(), "-HUP");
    log.wait_for("keeping the current TLS certificate", 1);
    let s = tls_io::connect(addr, &tls_io::client_config(&ca.pem), "127.0.0.1");
    assert_eq!(tls_io::peer_leaf(&s), second.der);
    assert!(
        child.try_wait().unwrap().is_none(),
        "SIGHUP must not stop the server"
    );

    // SIGTERM with an idle TLS connection and a stalled handshake open: the
    // server stops at once (neither waits for the shutdown grace).
    let stalled = TcpStream::connect(addr).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    let started = Instant::now();
    signal(child.id(), "-TERM");
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "server did not stop"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status:?}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "stopped after {:?}",
        started.elapsed()
    );
    log.wait_for("stopped", 1);
    drop((stalled, old, new, s));
}

/// Run the CLI with `stdin`; (exit code, stdout, stderr).
fn cli(args: &[&str], stdin: &str) -> (i32, String, String) {
    let mut child = bin()
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[test]
fn the_cli_pushes_and_pulls_over_https_with_a_ca_file() {
    let certs = TlsCerts::localhost();
    let srv = Setup::new(CONFIG).tls(&certs).start();
    let port = srv.addr.port();
    let ca = certs.ca.to_str().unwrap();
    for host in ["127.0.0.1", "localhost"] {
        let server = format!("https://{host}:{port}/v1");
        let path = format!("/push/public/notes/cli-{host}");
        let (code, out, err) = cli(
            &[
                "push",
                &path,
                "--data",
                "-",
                "--server",
                &server,
                "--ca-file",
                ca,
            ],
            &format!(r#"{{"via":"{host}"}}"#),
        );
        assert_eq!(code, 0, "push via {host}: {err}");
        let pushed: serde_json::Value = serde_json::from_str(&out).unwrap();
        let path = format!("/pull/public/notes/cli-{host}");
        let (code, out, err) = cli(&["pull", &path, "--server", &server, "--ca-file", ca], "");
        assert_eq!(code, 0, "pull via {host}: {err}");
        let pulled: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(pulled["data"], serde_json::json!({"via": host}));
        assert_eq!(pulled["hash"], pushed["hash"]);
    }

    // Signed requests: the signature binds the host the server sees.
    let dir = common::temp_dir("tls-cli");
    let creds = dir.join("creds.json");
    let pass = dir.join("pass.txt");
    std::fs::write(&pass, "tls test passphrase\n").unwrap();
    let (code, _, err) = cli(
        &[
            "identity",
            "new",
            "--passphrase-file",
            pass.to_str().unwrap(),
            "--out",
            creds.to_str().unwrap(),
        ],
        "",
    );
    assert_eq!(code, 0, "{err}");
    let uid = serde_json::from_str::<serde_json::Value>(&std::fs::read_to_string(&creds).unwrap())
        .unwrap()["userId"]
        .as_str()
        .unwrap()
        .to_owned();
    let server = format!("https://localhost:{port}/v1");
    let creds = creds.to_str().unwrap();
    let (code, _, err) = cli(
        &[
            "push",
            &format!("/push/users/{uid}/settings"),
            "--data",
            "-",
            "--server",
            &server,
            "--ca-file",
            ca,
            "--credentials",
            creds,
        ],
        r#"{"theme":"dark"}"#,
    );
    assert_eq!(code, 0, "signed push: {err}");
    let (code, out, err) = cli(
        &[
            "pull",
            &format!("/pull/users/{uid}/settings"),
            "--server",
            &server,
            "--ca-file",
            ca,
            "--credentials",
            creds,
        ],
        "",
    );
    assert_eq!(code, 0, "signed pull: {err}");
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&out).unwrap()["data"],
        serde_json::json!({"theme":"dark"})
    );
    let _ = std::fs::remove_dir_all(dir);
}

/// Counts every request that reaches it.
#[derive(Default)]
struct Counting(AtomicUsize);

impl Handler for Counting {
    fn handle(&self, _req: Request) -> BoxFuture<'_, Response> {
        self.0.fetch_add(1, Ordering::SeqCst);
        Box::pin(async { Response::new(StatusCode::Ok) })
    }
}

#[test]
fn tls_failures_are_one_clear_line_and_send_nothing() {
    let trusted = Ca::new("trusted CA");
    let stranger = Ca::new("unknown CA");
    let good = trusted.leaf(&["127.0.0.1"], KeyKind::EcdsaP256, Validity::Current);
    let tls = Arc::new(
        starfish::tls::ServerTls::from_pem(good.cert_pem.as_bytes(), good.key_pem.as_bytes())
            .unwrap(),
    );
    let std_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = std_listener.local_addr().unwrap().port();
    let listener = async_net::TcpListener::try_from(std_listener).unwrap();
    let handler = Arc::new(Counting::default());
    let (stop, stopped) = smol::channel::bounded::<()>(1);
    let server = {
        let (handler, tls) = (handler.clone(), tls.clone());
        std::thread::spawn(move || {
            futures_lite::future::block_on(starfish::http::serve_tls(
                listener,
                handler,
                ServerConfig::default(),
                tls,
                async move {
                    let _ = stopped.recv().await;
                },
            ))
        })
    };
    let dir = common::temp_dir("tls-fail");
    let ca_file = dir.join("ca.pem");
    std::fs::write(&ca_file, &trusted.pem).unwrap();
    let ca = ca_file.to_str().unwrap();
    let server_url = format!("https://127.0.0.1:{port}/v1");
    let host = format!("127.0.0.1:{port}");

    // Sanity: the trusted certificate works and the request is counted.
    let (code, _, err) = cli(
        &["pull", "/pull/x", "--server", &server_url, "--ca-file", ca],
        "",
    );
    assert_eq!(code, 1, "{err}"); // the handler answers 200 with no JSON body
    assert_eq!(handler.0.load(Ordering::SeqCst), 1, "{err}");

    let expired = trusted.leaf(&["127.0.0.1"], KeyKind::EcdsaP256, Validity::Expired);
    let wrong_name = trusted.leaf(&["other.example"], KeyKind::EcdsaP256, Validity::Current);
    let unknown = stranger.leaf(&["127.0.0.1"], KeyKind::EcdsaP256, Validity::Current);
    let cases: [(&str, &common::certs::Leaf, Option<&str>, String); 4] = [
        (
            "expired",
            &expired,
            Some(ca),
            "certificate expired".to_owned(),
        ),
        (
            "wrong host name",
            &wrong_name,
            Some(ca),
            "name mismatch (the certificate is not valid for 127.0.0.1)".to_owned(),
        ),
        (
            "unknown issuer",
            &unknown,
            Some(ca),
            "unknown issuer (the certificate is not signed by a trusted CA)".to_owned(),
        ),
        (
            "private CA without --ca-file (Mozilla roots)",
            &good,
            None,
            "unknown issuer (the certificate is not signed by a trusted CA)".to_owned(),
        ),
    ];
    for (what, leaf, ca_arg, reason) in cases {
        tls.replace_pem(leaf.cert_pem.as_bytes(), leaf.key_pem.as_bytes())
            .unwrap();
        let mut args = vec!["pull", "/pull/x", "--server", &server_url];
        if let Some(ca) = ca_arg {
            args.extend(["--ca-file", ca]);
        }
        let (code, out, err) = cli(&args, "");
        assert_eq!(code, 1, "{what}: {err}");
        assert_eq!(out, "", "{what}");
        assert_eq!(
            err,
            format!("starfish pull: TLS handshake with {host} failed: {reason}\n"),
            "{what}"
        );
        let mut args = vec![
            "push",
            "/push/x",
            "--data",
            "-",
            "--base-hash",
            "",
            "--server",
            &server_url,
        ];
        if let Some(ca) = ca_arg {
            args.extend(["--ca-file", ca]);
        }
        let (code, _, err) = cli(&args, "{}");
        assert_eq!(code, 1, "{what}: {err}");
        assert!(err.contains(&reason), "{what}: {err}");
        assert_eq!(
            handler.0.load(Ordering::SeqCst),
            1,
            "{what}: a request got through"
        );
    }

    // The library reports the same as a matchable error.
    tls.replace_pem(expired.cert_pem.as_bytes(), expired.key_pem.as_bytes())
        .unwrap();
    let client = starfish::client::Client::with_options(
        &server_url,
        starfish::client::ClientOptions {
            ca_file: Some(ca_file.clone()),
            ..Default::default()
        },
    )
    .unwrap();
    match futures_lite::future::block_on(client.pull("/pull/x")) {
        Err(starfish::client::ClientError::Tls { host: h, reason }) => {
            assert_eq!(
                (h.as_str(), reason.as_str()),
                (host.as_str(), "certificate expired")
            );
        }
        other => panic!("expected a TLS error, got {other:?}"),
    }
    // A CA file that is not PEM is a configuration error up front.
    let bad = dir.join("bad.pem");
    std::fs::write(&bad, "nope").unwrap();
    let (code, _, err) = cli(
        &[
            "pull",
            "/pull/x",
            "--server",
            &server_url,
            "--ca-file",
            bad.to_str().unwrap(),
        ],
        "",
    );
    assert_eq!(code, 1);
    assert!(err.contains("no CERTIFICATE"), "{err}");
    assert_eq!(handler.0.load(Ordering::SeqCst), 1);

    drop(stop);
    server.join().unwrap().unwrap();
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn https_to_a_plain_http_port_says_so() {
    let srv = Setup::new(CONFIG).start();
    let server = format!("https://127.0.0.1:{}/v1", srv.addr.port());
    let (code, _, err) = cli(&["pull", "/pull/public/notes/a", "--server", &server], "");
    assert_eq!(code, 1);
    assert_eq!(
        err,
        format!(
            "starfish pull: TLS handshake with 127.0.0.1:{} failed: the server does not speak TLS on this port\n",
            srv.addr.port()
        )
    );
}
