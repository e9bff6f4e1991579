//! Entry points for fuzz targets and corpus replay tests.
//!
//! Each public function here takes arbitrary bytes, drives one part of the
//! library with them and **panics when a property is violated** (otherwise it
//! returns). The cargo-fuzz targets in `fuzz/fuzz_targets/` are one-liners
//! calling these functions, and `tests/fuzz_corpus.rs` replays every
//! committed corpus and regression file through them, so CI exercises the
//! same checks without a fuzzer.
//!
//! Structure-aware targets decode their bytes with a small [`Input`] reader
//! (no `arbitrary` dependency); the `encode_*` functions build such inputs
//! from readable parts, for seed corpora and regression tests.
//!
//! | function | drives | properties |
//! |---|---|---|
//! | [`http_head`] | `http::framing` | no panic; never an ambiguous frame; accepted heads re-serialise to an equivalent head; chunked decoding is split-independent |
//! | [`canonical_request`] | `request_sig::canonical_input` | injective on its fields; parses back as `{b,h,m,nonce,p,ts}` |
//! | [`verify_request`] | `auth::cap::CapResolver` | a signed request verifies; a mutated one never does; malformed headers are 401 |
//! | [`cap_cert`] | `proto::cap` | parse/verify never panic; minted caps verify; mutated caps fail with a reason |
//! | [`stable_stringify`] | `canonical::stable_stringify` | idempotent; agrees with [`reference_stable_stringify`] |
//! | [`config`] | `config::parse_config` | error or config, never a panic; an accepted config re-validates cleanly |
//! | [`push_body`] | `sync::push` (body checks, validate, write) | no panic; linear work; stored data sanitised, hashed and pulled back consistently |

use std::sync::OnceLock;

use crate::auth::cap::{CapResolver, CapResolverConfig};
use crate::auth::{AuthError, AuthRequest, Resolver};
use crate::http::framing::{self, ChunkedDecoder, Framing, ParsedHead};
use crate::proto::canonical::stable_stringify as canonical_stringify;
use crate::proto::cap::{self, CapCert, MintOptions};
use crate::proto::encoding::{b64_decode, b64_encode, hex_encode};
use crate::proto::hash::sha256_hex;
use crate::proto::json::{self, Object, Value};
use crate::proto::request_sig::{self, RequestToSign, REQUEST_SIG_DOMAIN};

/// A forgiving reader over fuzz bytes: past the end it yields zeros and
/// empty slices, so every input decodes to something.
#[derive(Clone, Debug)]
pub struct Input<'a> {
    data: &'a [u8],
}

impl<'a> Input<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Input { data }
    }
    /// One byte (0 past the end).
    pub fn byte(&mut self) -> u8 {
        match self.data.split_first() {
            Some((&b, rest)) => {
                self.data = rest;
                b
            }
            None => 0,
        }
    }
    /// Up to `n` bytes.
    pub fn take(&mut self, n: usize) -> &'a [u8] {
        let (a, b) = self.data.split_at(n.min(self.data.len()));
        self.data = b;
        a
    }
    /// `N` bytes, zero-padded.
    pub fn array<const N: usize>(&mut self) -> [u8; N] {
        let mut out = [0u8; N];
        let src = self.take(N);
        out[..src.len()].copy_from_slice(src);
        out
    }
    /// A little-endian `u64` (zero-padded).
    pub fn u64(&mut self) -> u64 {
        u64::from_le_bytes(self.array())
    }
    /// A little-endian `u16` (zero-padded).
    pub fn u16(&mut self) -> u16 {
        u16::from_le_bytes(self.array())
    }
    /// Bytes with a one-byte length prefix.
    pub fn bytes8(&mut self) -> &'a [u8] {
        let n = self.byte() as usize;
        self.take(n)
    }
    /// Bytes with a two-byte little-endian length prefix.
    pub fn bytes16(&mut self) -> &'a [u8] {
        let n = self.u16() as usize;
        self.take(n)
    }
    /// A string with a one-byte length prefix (invalid UTF-8 replaced).
    pub fn str8(&mut self) -> String {
        String::from_utf8_lossy(self.bytes8()).into_owned()
    }
    /// Whatever is left.
    pub fn rest(&mut self) -> &'a [u8] {
        self.take(self.data.len())
    }
}

/// Writer counterpart of [`Input`], for building seeds.
#[derive(Clone, Debug, Default)]
pub struct Encoder(pub Vec<u8>);

impl Encoder {
    pub fn byte(&mut self, b: u8) -> &mut Self {
        self.0.push(b);
        self
    }
    pub fn raw(&mut self, b: &[u8]) -> &mut Self {
        self.0.extend_from_slice(b);
        self
    }
    pub fn u64(&mut self, v: u64) -> &mut Self {
        self.raw(&v.to_le_bytes())
    }
    pub fn u16(&mut self, v: u16) -> &mut Self {
        self.raw(&v.to_le_bytes())
    }
    /// One-byte length prefix (truncated to 255 bytes).
    pub fn bytes8(&mut self, b: &[u8]) -> &mut Self {
        let b = &b[..b.len().min(255)];
        self.byte(b.len() as u8).raw(b)
    }
    /// Two-byte length prefix (truncated to 65535 bytes).
    pub fn bytes16(&mut self, b: &[u8]) -> &mut Self {
        let b = &b[..b.len().min(65535)];
        self.u16(b.len() as u16).raw(b)
    }
}

// ---------------------------------------------------------------------------
// 1. http_head
// ---------------------------------------------------------------------------

/// The head limit used by [`http_head`].
pub const FUZZ_MAX_HEAD: usize = 16 * 1024;

/// Serialise a parsed head back to HTTP/1 text.
pub fn serialize_head(h: &ParsedHead) -> Vec<u8> {
    let mut out = format!("{} {} HTTP/1.{}\r\n", h.method, h.target, h.minor_version).into_bytes();
    for (n, v) in &h.headers {
        out.extend_from_slice(n.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(v.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out
}

/// Arbitrary bytes into `parse_head`, `analyze`, `request_url` and the
/// chunked decoder.
///
/// * never panics; a complete head never claims more bytes than given or
///   than the limit, and no strict prefix of it is complete;
/// * an accepted request is never ambiguous: with `Transfer-Encoding` there
///   is exactly one, it is `chunked`, there is no `Content-Length` and the
///   version is 1.1; otherwise at most one `Content-Length` of 1–19 digits;
///   at most one `Host` (exactly one on 1.1);
/// * a parsed head re-serialises to a head that parses to the same
///   [`ParsedHead`] and analyses the same way (round trip);
/// * the chunked decoder gives the same result fed at once or byte by byte.
pub fn http_head(data: &[u8]) {
    // A smaller limit exercises the 431 paths.
    let _ = framing::parse_head(data, data.len() / 2);
    let Ok(Some((head, len))) = framing::parse_head(data, FUZZ_MAX_HEAD) else {
        return;
    };
    assert!(
        len <= data.len() && len <= FUZZ_MAX_HEAD,
        "head length {len}"
    );
    if len > 0 {
        assert!(
            matches!(
                framing::parse_head(&data[..len - 1], FUZZ_MAX_HEAD),
                Ok(None)
            ),
            "a strict prefix of a complete head is complete"
        );
    }

    // Round trip.
    let text = serialize_head(&head);
    match framing::parse_head(&text, usize::MAX) {
        Ok(Some((again, n))) => {
            assert_eq!(again, head, "re-serialised head parses differently");
            assert_eq!(n, text.len(), "re-serialised head length");
        }
        other => panic!("re-serialised head refused: {other:?}"),
    }

    let meta = framing::analyze(&head);
    let count = |name: &str| head.values(name).count();
    if let Ok(m) = &meta {
        let te: Vec<&str> = head.values("transfer-encoding").collect();
        let cl: Vec<&str> = head.values("content-length").collect();
        match m.framing {
            Framing::Chunked => {
                assert_eq!(te.len(), 1, "chunked with {} TE fields", te.len());
                assert!(te[0].eq_ignore_ascii_case("chunked"));
                assert!(cl.is_empty(), "accepted both TE and CL");
                assert_eq!(head.minor_version, 1, "TE on HTTP/1.0");
            }
            Framing::Length(n) => {
                assert!(te.is_empty(), "CL framing with TE present");
                assert_eq!(cl.len(), 1, "accepted {} CL fields", cl.len());
                let v = cl[0];
                assert!(!v.is_empty() && v.len() <= 19 && v.bytes().all(|b| b.is_ascii_digit()));
                assert_eq!(v.parse::<u64>().ok(), Some(n));
            }
            Framing::None => assert!(te.is_empty() && cl.is_empty(), "body fields ignored"),
        }
        let hosts = count("host");
        assert!(hosts <= 1, "accepted {hosts} Host fields");
        assert!(
            head.minor_version == 0 || hosts == 1,
            "HTTP/1.1 without Host"
        );
        assert!(m.path_and_query.starts_with('/'));
        assert!(!m.path_and_query.contains('#'));
        assert!(m.path_and_query.bytes().all(|b| (b'!'..=b'~').contains(&b)));
        assert_eq!(m.method.to_string(), head.method, "method case");
        let _ = framing::request_url(m, "127.0.0.1:1");
        // The re-serialised head decides the same.
        let (again, _) = framing::parse_head(&text, usize::MAX)
            .ok()
            .flatten()
            .expect("checked above");
        assert_eq!(framing::analyze(&again).as_ref(), Ok(m));
    }

    // Chunked decoding of what follows the head, at once and byte by byte.
    let body = &data[len..];
    let limit = 4096;
    let mut whole = ChunkedDecoder::new(limit, limit);
    let at_once = whole.feed(body);
    let mut split = ChunkedDecoder::new(limit, limit);
    let mut used = 0;
    let mut err = None;
    for b in body {
        if split.is_done() {
            break;
        }
        match split.feed(std::slice::from_ref(b)) {
            Ok(n) => used += n,
            Err(e) => {
                err = Some(e);
                break;
            }
        }
    }
    match at_once {
        Ok(n) => {
            assert_eq!(err, None, "byte-wise decoding failed where whole succeeded");
            assert!(n <= body.len());
            assert_eq!(n, used, "consumed bytes differ");
            assert_eq!(whole.is_done(), split.is_done());
            assert_eq!(whole.into_body(), split.into_body());
        }
        Err(e) => assert_eq!(err, Some(e), "errors differ"),
    }
}

// ---------------------------------------------------------------------------
// 2. canonical_request
// ---------------------------------------------------------------------------

/// The fields of a request to sign, owned.
#[derive(Clone, Debug, PartialEq)]
pub struct OwnedRequest {
    pub method: String,
    pub path_and_query: String,
    pub host: String,
    pub body: Vec<u8>,
    pub ts: f64,
    pub nonce_b64: String,
}

impl OwnedRequest {
    pub fn as_to_sign(&self) -> RequestToSign<'_> {
        RequestToSign {
            method: &self.method,
            path_and_query: &self.path_and_query,
            host: &self.host,
            body: &self.body,
            ts: self.ts,
            nonce_b64: &self.nonce_b64,
        }
    }
}

fn read_ts(inp: &mut Input<'_>) -> f64 {
    let mode = inp.byte();
    let bits = inp.u64();
    let ts = if mode & 1 == 1 {
        f64::from_bits(bits)
    } else {
        bits as i64 as f64
    };
    // Timestamps come from `parse_ts_header`, which refuses non-finite ones.
    if ts.is_finite() {
        ts
    } else {
        0.0
    }
}

fn read_request(inp: &mut Input<'_>) -> OwnedRequest {
    OwnedRequest {
        method: inp.str8(),
        path_and_query: inp.str8(),
        host: inp.str8(),
        nonce_b64: inp.str8(),
        ts: read_ts(inp),
        body: inp.bytes16().to_vec(),
    }
}

/// Build a [`canonical_request`] input: request A, then which field of B
/// differs (`field` 0–5: method, path, host, nonce, ts, body) and its value
/// (`new_value` as the field's bytes; for ts, 8 little-endian bytes of an
/// `i64`).
pub fn encode_canonical_request(r: &OwnedRequest, field: u8, new_value: &[u8]) -> Vec<u8> {
    let mut e = Encoder::default();
    e.bytes8(r.method.as_bytes())
        .bytes8(r.path_and_query.as_bytes())
        .bytes8(r.host.as_bytes())
        .bytes8(r.nonce_b64.as_bytes());
    if r.ts.fract() == 0.0 && r.ts.abs() < 9.0e18 {
        e.byte(0).u64(r.ts as i64 as u64);
    } else {
        e.byte(1).u64(r.ts.to_bits());
    }
    e.bytes16(&r.body).byte(field);
    match field % 6 {
        4 => e.byte(0).raw(new_value),
        5 => e.bytes16(new_value),
        _ => e.bytes8(new_value),
    };
    e.0
}

/// Arbitrary requests into `canonical_input`: two requests that differ in
/// any field (ts compared as numbers, so `-0 == 0`) never give the same
/// input, equal ones always do; and the input is the domain tag followed by
/// canonical JSON with exactly `b` (SHA-256 hex of the body), `h`, `m`,
/// `nonce`, `p` and `ts`.
pub fn canonical_request(data: &[u8]) {
    let mut inp = Input::new(data);
    let a = read_request(&mut inp);
    let mut b = a.clone();
    match inp.byte() % 6 {
        0 => b.method = inp.str8(),
        1 => b.path_and_query = inp.str8(),
        2 => b.host = inp.str8(),
        3 => b.nonce_b64 = inp.str8(),
        4 => b.ts = read_ts(&mut inp),
        _ => b.body = inp.bytes16().to_vec(),
    }
    let ia = request_sig::canonical_input(&a.as_to_sign());
    let ib = request_sig::canonical_input(&b.as_to_sign());
    // `==` on the struct compares ts as numbers: -0 == 0, as printed.
    assert_eq!(
        a == b,
        ia == ib,
        "injectivity: {a:?} / {b:?} -> {ia:?} / {ib:?}"
    );
    check_canonical_input(&a, &ia);
}

fn check_canonical_input(r: &OwnedRequest, input: &str) {
    let json_text = input
        .strip_prefix(REQUEST_SIG_DOMAIN)
        .expect("domain tag first");
    let v = json::parse(json_text.as_bytes()).expect("canonical input is JSON");
    assert_eq!(
        canonical_stringify(&v),
        json_text,
        "canonical input is not in canonical form"
    );
    let o = v.as_object().expect("an object");
    let keys: Vec<String> = o.iter().map(|(k, _)| k.to_string_lossy()).collect();
    assert_eq!(keys, ["b", "h", "m", "nonce", "p", "ts"]);
    let s = |k: &str| o.get(k).and_then(Value::as_str).map(str::to_owned);
    assert_eq!(s("b"), Some(sha256_hex(&r.body)));
    assert_eq!(s("h").as_deref(), Some(r.host.as_str()));
    assert_eq!(s("m").as_deref(), Some(r.method.as_str()));
    assert_eq!(s("nonce").as_deref(), Some(r.nonce_b64.as_str()));
    assert_eq!(s("p").as_deref(), Some(r.path_and_query.as_str()));
    assert_eq!(o.get("ts").and_then(Value::as_f64), Some(r.ts));
}

// ---------------------------------------------------------------------------
// 3. verify_request
// ---------------------------------------------------------------------------

/// The fixed test key of [`verify_request`].
pub const TEST_SEED: [u8; 32] = [7; 32];
/// The server clock of [`verify_request`], ms.
pub const TEST_NOW_MS: i64 = 1_700_000_100_000;
const METHODS: [&str; 6] = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"];

fn test_cap() -> &'static CapCert {
    static CAP: OnceLock<CapCert> = OnceLock::new();
    CAP.get_or_init(|| {
        let pub_hex = request_sig::public_key_hex(&TEST_SEED);
        cap::mint_device_cap(
            &TEST_SEED,
            &pub_hex,
            &pub_hex,
            &"22".repeat(32),
            cap::root_all_scope(),
            MintOptions {
                nbf: 1_700_000_000,
                ttl_sec: 3600,
                nonce: [5; 16],
            },
        )
        .expect("test cap mints")
    })
}

/// A request as the resolver sees it.
#[derive(Clone, Debug)]
struct WireRequest {
    method: String,
    path: String,
    mount: &'static str,
    host: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl WireRequest {
    fn resolve(&self) -> Result<crate::auth::Auth, AuthError> {
        let resolver = CapResolver::new(CapResolverConfig {
            allow_anonymous: false,
            ..Default::default()
        });
        let pairs: Vec<(&str, &str)> = self
            .headers
            .iter()
            .map(|(a, b)| (a.as_str(), b.as_str()))
            .collect();
        resolver.resolve(&AuthRequest {
            method: &self.method,
            path_and_query: &self.path,
            mount: self.mount,
            host: &self.host,
            headers: &pairs,
            body: &self.body,
            identity_param: None,
            now_ms: TEST_NOW_MS,
        })
    }
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
    fn set_header(&mut self, name: &str, value: String) {
        if let Some(h) = self.headers.iter_mut().find(|(n, _)| n == name) {
            h.1 = value;
        }
    }
}

/// Build a [`verify_request`] input. `flags`: bit 0 mount `/v1`, bit 1 sign
/// the full mounted path, bits 2–3 content type (absent, JSON, JSON with
/// parameters, `text/plain`). `mutation` selects the check (0 none, 1
/// method, 2 path, 3 host, 4 body, 5 ts, 6 nonce, 7 signature, 8 cap, 9
/// drop a header, 10 malformed header) and `mutation_data` feeds it.
#[allow(clippy::too_many_arguments)]
pub fn encode_verify_request(
    method: u8,
    flags: u8,
    path: &str,
    host: &str,
    ts_delta_ms: i32,
    nonce: [u8; 16],
    body: &[u8],
    mutation: u8,
    mutation_data: &[u8],
) -> Vec<u8> {
    let mut e = Encoder::default();
    e.byte(method)
        .byte(flags)
        .bytes8(path.as_bytes())
        .bytes8(host.as_bytes())
        .raw(&ts_delta_ms.to_le_bytes())
        .raw(&nonce)
        .bytes16(body)
        .byte(mutation)
        .raw(mutation_data);
    e.0
}

/// Structure-aware signed requests against a `CapResolver` with a fixed
/// test key and cap:
///
/// * a correctly signed request always resolves;
/// * changing any one field the signature covers (method, path, host, a
///   signed body byte, ts, nonce, signature, cap) or dropping a header never
///   resolves; changing an unsigned body byte still resolves;
/// * replacing a signature header (`Authorization`, `X-Starfish-Sig`, `-Ts`,
///   `-Nonce`) with arbitrary text never panics and is 401, unless the text
///   means the same (same number, same signature bytes, same cap).
pub fn verify_request(data: &[u8]) {
    let mut inp = Input::new(data);
    let method = METHODS[inp.byte() as usize % METHODS.len()];
    let flags = inp.byte();
    let mount = if flags & 1 == 1 { "/v1" } else { "" };
    let path = format!("/pull/notes/{}", inp.str8());
    let host = inp.str8();
    let delta = i32::from_le_bytes(inp.array()) % 300_001;
    let ts = TEST_NOW_MS + i64::from(delta);
    let nonce_b64 = b64_encode(&inp.array::<16>());
    let body = inp.bytes16().to_vec();
    let content_type = match (flags >> 2) & 3 {
        0 => None,
        1 => Some("application/json"),
        2 => Some("Application/JSON; charset=utf-8"),
        _ => Some("text/plain"),
    };
    let is_write = matches!(method, "POST" | "PUT" | "PATCH" | "DELETE");
    let signed_body = request_sig::signed_body(method, content_type, &body);
    let signed_path = if mount.is_empty() || flags & 2 == 2 {
        format!("{mount}{path}")
    } else {
        path.clone()
    };
    let sig = request_sig::sign_request(
        &RequestToSign {
            method,
            path_and_query: &signed_path,
            host: &host,
            body: if is_write { signed_body } else { &[] },
            ts: ts as f64,
            nonce_b64: &nonce_b64,
        },
        &TEST_SEED,
    );
    let cert = test_cap();
    let mut headers = vec![
        ("authorization".to_owned(), cert.authorization_header()),
        ("x-starfish-sig".to_owned(), sig),
        ("x-starfish-ts".to_owned(), ts.to_string()),
        ("x-starfish-nonce".to_owned(), nonce_b64),
    ];
    if is_write {
        headers.push(("content-length".to_owned(), body.len().to_string()));
    }
    if let Some(ct) = content_type {
        headers.push(("content-type".to_owned(), ct.to_owned()));
    }
    let req = WireRequest {
        method: method.to_owned(),
        path: format!("{mount}{path}"),
        mount,
        host,
        headers,
        body,
    };
    if let Err(e) = req.resolve() {
        panic!("a correctly signed request failed: {e}: {req:?}");
    }

    let mut m = req.clone();
    // `None`: must fail; `Some(true)`: must still resolve.
    let expect_ok: Option<bool> = match inp.byte() % 11 {
        0 => return,
        1 => {
            let k = 1 + inp.byte() as usize % (METHODS.len() - 1);
            let i = METHODS.iter().position(|x| *x == method).unwrap_or(0);
            m.method = METHODS[(i + k) % METHODS.len()].to_owned();
            None
        }
        2 => {
            m.path = mutate_str(&m.path, &mut inp);
            (m.path == req.path).then_some(true)
        }
        3 => {
            m.host = mutate_str(&m.host, &mut inp);
            (m.host == req.host).then_some(true)
        }
        4 => {
            if m.body.is_empty() {
                return;
            }
            let i = inp.u16() as usize % m.body.len();
            m.body[i] ^= inp.byte().max(1);
            // Only a signed body is covered by the signature.
            Some(!(is_write && request_sig::body_is_signed(method, content_type)))
        }
        5 => {
            let d = i64::from(inp.u16()) + 1;
            let d = if inp.byte() & 1 == 1 { -d } else { d };
            m.set_header("x-starfish-ts", (ts + d).to_string());
            None
        }
        6 => {
            let n = mutate_str(req.header("x-starfish-nonce").unwrap_or(""), &mut inp);
            let same = Some(n.as_str()) == req.header("x-starfish-nonce");
            m.set_header("x-starfish-nonce", n);
            same.then_some(true)
        }
        7 => {
            let mut sig =
                b64_decode(req.header("x-starfish-sig").unwrap_or("")).unwrap_or_default();
            let i = inp.byte() as usize % sig.len().max(1);
            if let Some(b) = sig.get_mut(i) {
                *b ^= 1 << (inp.byte() % 8);
            }
            m.set_header("x-starfish-sig", b64_encode(&sig));
            None
        }
        8 => {
            let mutated = mutate_cert(cert, &mut inp);
            let same = cert_equivalent(cert, &mutated);
            m.set_header("authorization", mutated.authorization_header());
            same.then_some(true)
        }
        9 => {
            // Every header but Content-Type is required.
            let names: Vec<String> = m
                .headers
                .iter()
                .map(|(n, _)| n.clone())
                .filter(|n| n != "content-type")
                .collect();
            let drop = &names[inp.byte() as usize % names.len()];
            m.headers.retain(|(n, _)| n != drop);
            None
        }
        _ => {
            let names = [
                "authorization",
                "x-starfish-sig",
                "x-starfish-ts",
                "x-starfish-nonce",
            ];
            let name = names[inp.byte() as usize % names.len()];
            let value = String::from_utf8_lossy(inp.rest()).into_owned();
            let old = req.header(name).unwrap_or("");
            let same = match name {
                "authorization" => {
                    cap::parse_authorization(&value, cap::DEFAULT_MAX_CAP_HEADER_BYTES)
                        .is_ok_and(|c| cert_equivalent(cert, &c))
                }
                "x-starfish-sig" => {
                    !value.is_empty()
                        && b64_decode(&value).is_some()
                        && b64_decode(&value) == b64_decode(old)
                }
                "x-starfish-ts" => request_sig::parse_ts_header(&value) == Some(ts as f64),
                _ => value == old,
            };
            m.set_header(name, value);
            if !same {
                match m.resolve() {
                    Err(AuthError::Unauthorized(_)) => {}
                    other => panic!("malformed {name} answered {other:?}: {m:?}"),
                }
                return;
            }
            Some(true)
        }
    };
    match (expect_ok, m.resolve()) {
        (Some(true), Ok(_)) | (None | Some(false), Err(_)) => {}
        (Some(true), Err(e)) => panic!("an equivalent request failed: {e}: {m:?}"),
        (None | Some(false), Ok(_)) => panic!("a mutated request resolved: {m:?}"),
    }
}

/// Replace, insert or delete one character of `s`.
fn mutate_str(s: &str, inp: &mut Input<'_>) -> String {
    let mut chars: Vec<char> = s.chars().collect();
    let op = inp.byte();
    let i = inp.byte() as usize % (chars.len() + 1);
    let c = char::from_u32(u32::from(inp.u16())).unwrap_or('x');
    match op % 3 {
        0 if i < chars.len() => chars[i] = c,
        1 if i < chars.len() => {
            chars.remove(i);
        }
        _ => chars.insert(i, c),
    }
    chars.into_iter().collect()
}

/// Two certs verify the same way: same signing input, same signature bytes.
fn cert_equivalent(a: &CapCert, b: &CapCert) -> bool {
    let sig = |c: &CapCert| c.sig().and_then(b64_decode);
    a.signing_input() == b.signing_input() && sig(a).is_some() && sig(a) == sig(b)
}

/// Change one top-level field of a cert: a new value, a removal, an added
/// field, or one bit of the signature.
fn mutate_cert(cert: &CapCert, inp: &mut Input<'_>) -> CapCert {
    let mut o = cert.value().as_object().cloned().unwrap_or_default();
    let keys: Vec<String> = o.iter().map(|(k, _)| k.to_string_lossy()).collect();
    let op = inp.byte();
    let key = keys[inp.byte() as usize % keys.len()].clone();
    match op % 5 {
        0 => {
            o.remove(&key);
        }
        1 => o.insert(key.as_str(), Value::from(inp.str8())),
        2 => o.insert(key.as_str(), Value::Number(f64::from(inp.u16()))),
        3 => {
            let mut sig = cert.sig().and_then(b64_decode).unwrap_or_default();
            let i = inp.byte() as usize % sig.len().max(1);
            if let Some(b) = sig.get_mut(i) {
                *b ^= 1 << (inp.byte() % 8);
            }
            o.insert("sig", Value::from(b64_encode(&sig)));
        }
        _ => {
            let name = inp.str8();
            o.insert(name.as_str(), Value::Bool(inp.byte() & 1 == 1));
        }
    }
    CapCert::from_value(Value::Object(o))
}

// ---------------------------------------------------------------------------
// 4. cap_cert
// ---------------------------------------------------------------------------

/// Build the minting half of a [`cap_cert`] input.
#[allow(clippy::too_many_arguments)]
pub fn encode_cap_mint(
    iss_seed: [u8; 32],
    sub_seed: Option<[u8; 32]>,
    ops_mask: u8,
    collections: &[&str],
    paths: Option<&[&str]>,
    nbf: i64,
    ttl: i64,
    nonce: [u8; 16],
    mutation: &[u8],
) -> Vec<u8> {
    let mut e = Encoder::default();
    e.raw(&iss_seed);
    match sub_seed {
        Some(s) => e.byte(1).raw(&s),
        None => e.byte(0).raw(&[0; 32]),
    };
    e.raw(&[0x22; 32]).byte(ops_mask);
    e.byte(collections.len() as u8);
    for c in collections {
        e.bytes8(c.as_bytes());
    }
    match paths {
        Some(p) => {
            e.byte(p.len() as u8 | 0x80);
            for s in p {
                e.bytes8(s.as_bytes());
            }
        }
        None => {
            e.byte(0);
        }
    }
    e.u64(nbf as u64).u64(ttl as u64).raw(&nonce).raw(mutation);
    e.0
}

/// The cap-cert paths:
///
/// * the bytes as an `Authorization` value, and as `Cap <base64(bytes)>`:
///   parsing and verification never panic; a parsed cert survives its own
///   header round trip with the same canonical form and verdict;
/// * the bytes as minting parameters ([`encode_cap_mint`]): minting
///   either refuses or gives a cap that verifies at `nbf`, also after a
///   header round trip; any mutation of it that changes its signing input
///   or signature fails with a reason.
pub fn cap_cert(data: &[u8]) {
    let now_s = TEST_NOW_MS / 1000;
    let text = String::from_utf8_lossy(data);
    for value in [text.into_owned(), format!("Cap {}", b64_encode(data))] {
        let Ok(c) = cap::parse_authorization(&value, cap::DEFAULT_MAX_CAP_HEADER_BYTES) else {
            continue;
        };
        let verdict = cap::verify_cap_cert(&c, now_s, cap::DEFAULT_CAP_SKEW_SEC);
        if let Err(r) = verdict {
            assert!(!r.code().is_empty());
        }
        let _ = (c.is_root_device_cap(), c.scope_ops(), c.scope_paths());
        let Ok(again) = cap::parse_authorization(&c.authorization_header(), usize::MAX) else {
            // Only a non-finite number (printed `null`) can make it falsy.
            assert!(
                matches!(c.value(), Value::Number(n) if !n.is_finite()),
                "a parsed cert's own header does not parse: {c:?}"
            );
            continue;
        };
        assert_eq!(
            canonical_stringify(again.value()),
            canonical_stringify(c.value())
        );
        assert_eq!(again.signing_input(), c.signing_input());
        assert_eq!(
            cap::verify_cap_cert(&again, now_s, cap::DEFAULT_CAP_SKEW_SEC),
            verdict,
            "verdict changed by a header round trip"
        );
    }

    let mut inp = Input::new(data);
    let iss_seed: [u8; 32] = inp.array();
    let sub_flag = inp.byte();
    let sub_seed: [u8; 32] = inp.array();
    let sub_seed = if sub_flag & 1 == 1 {
        sub_seed
    } else {
        iss_seed
    };
    let kem = hex_encode(&inp.array::<32>());
    let ops_mask = inp.byte();
    let ops: Vec<Value> = ["read", "write", "list"]
        .iter()
        .enumerate()
        .filter(|(i, _)| ops_mask & (1 << i) != 0)
        .map(|(_, s)| Value::from(*s))
        .collect();
    let strings = |inp: &mut Input<'_>, n: u8| -> Value {
        Value::Array((0..n % 8).map(|_| Value::from(inp.str8())).collect())
    };
    let n = inp.byte();
    let collections = strings(&mut inp, n);
    let n = inp.byte();
    let paths = (n & 0x80 != 0).then(|| strings(&mut inp, n & 0x7f));
    let mut scope = Object::new();
    scope.insert("ops", Value::Array(ops));
    if let Some(p) = paths {
        scope.insert("paths", p);
    }
    scope.insert("collections", collections);
    let nbf = inp.u64() as i64;
    let ttl_sec = inp.u64() as i64;
    let nonce: [u8; 16] = inp.array();
    let iss_pub = request_sig::public_key_hex(&iss_seed);
    let sub_pub = request_sig::public_key_hex(&sub_seed);
    let minted = cap::mint_device_cap(
        &iss_seed,
        &iss_pub,
        &sub_pub,
        &kem,
        scope,
        MintOptions {
            nbf,
            ttl_sec,
            nonce,
        },
    );
    let Ok(c) = minted else {
        return;
    };
    let at = nbf;
    assert_eq!(
        cap::verify_cap_cert(&c, at, 0),
        Ok(()),
        "a minted cap does not verify: {c:?}"
    );
    let header = c.authorization_header();
    let parsed = cap::parse_authorization(&header, usize::MAX).expect("minted header parses");
    assert_eq!(cap::verify_cap_cert(&parsed, at, 0), Ok(()));

    let mutated = match inp.byte() % 2 {
        0 => mutate_cert(&c, &mut inp),
        _ => {
            // One byte of the header text.
            let mut bytes = header.into_bytes();
            let i = inp.u16() as usize % bytes.len();
            bytes[i] ^= inp.byte().max(1);
            let Ok(h) = String::from_utf8(bytes) else {
                return;
            };
            match cap::parse_authorization(&h, usize::MAX) {
                Ok(m) => m,
                Err(_) => return,
            }
        }
    };
    let verdict = cap::verify_cap_cert(&mutated, at, 0);
    if cert_equivalent(&c, &mutated) {
        assert_eq!(verdict, Ok(()), "an equivalent cap failed");
    } else {
        match verdict {
            Err(r) => assert!(!r.code().is_empty()),
            Ok(()) => panic!("a mutated cap verified: {mutated:?}"),
        }
    }
}

// ---------------------------------------------------------------------------
// 5. stable_stringify
// ---------------------------------------------------------------------------

/// A deliberately naive `stableStringify`, written from the spec rather
/// than from the library: strings are decoded to code points and escaped
/// one by one, keys are sorted as code-point sequences, and numbers follow
/// ECMA-262 `Number::toString` from the shortest round-trip digits Rust
/// prints.
pub fn reference_stable_stringify(v: &Value) -> String {
    match v {
        Value::Null => "null".to_owned(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => reference_number(*n),
        Value::String(s) => reference_quote(&wtf8_code_points(s.as_bytes())),
        Value::Array(a) => {
            let items: Vec<String> = a.iter().map(reference_stable_stringify).collect();
            format!("[{}]", items.join(","))
        }
        Value::Object(o) => {
            let mut entries: Vec<(Vec<u32>, &Value)> = o
                .iter()
                .map(|(k, v)| (wtf8_code_points(k.as_bytes()), v))
                .collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            let items: Vec<String> = entries
                .iter()
                .map(|(k, v)| format!("{}:{}", reference_quote(k), reference_stable_stringify(v)))
                .collect();
            format!("{{{}}}", items.join(","))
        }
    }
}

/// Decode WTF-8 (UTF-8 that may hold encoded surrogates) to code points.
fn wtf8_code_points(b: &[u8]) -> Vec<u32> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = u32::from(b[i]);
        let (cp, len) = if c < 0x80 {
            (c, 1)
        } else if c >= 0xF0 {
            let cont = |k: usize| u32::from(b.get(i + k).copied().unwrap_or(0x80) & 0x3F);
            (
                ((c & 0x07) << 18) | (cont(1) << 12) | (cont(2) << 6) | cont(3),
                4,
            )
        } else if c >= 0xE0 {
            let cont = |k: usize| u32::from(b.get(i + k).copied().unwrap_or(0x80) & 0x3F);
            (((c & 0x0F) << 12) | (cont(1) << 6) | cont(2), 3)
        } else {
            let cont = |k: usize| u32::from(b.get(i + k).copied().unwrap_or(0x80) & 0x3F);
            (((c & 0x1F) << 6) | cont(1), 2)
        };
        out.push(cp);
        i += len;
    }
    out
}

fn reference_quote(cps: &[u32]) -> String {
    let mut s = String::from("\"");
    for &cp in cps {
        match cp {
            0x22 => s.push_str("\\\""),
            0x5C => s.push_str("\\\\"),
            0x08 => s.push_str("\\b"),
            0x09 => s.push_str("\\t"),
            0x0A => s.push_str("\\n"),
            0x0C => s.push_str("\\f"),
            0x0D => s.push_str("\\r"),
            0..=0x1F | 0xD800..=0xDFFF => s.push_str(&format!("\\u{cp:04x}")),
            _ => s.push(char::from_u32(cp).unwrap_or('\u{fffd}')),
        }
    }
    s.push('"');
    s
}

/// ECMA-262 `Number::toString(10)`; `null` for non-finite numbers.
fn reference_number(n: f64) -> String {
    if !n.is_finite() {
        return "null".to_owned();
    }
    if n == 0.0 {
        return "0".to_owned();
    }
    let sign = if n < 0.0 { "-" } else { "" };
    // `{:e}` prints the shortest digits that round-trip: d.ddde±x.
    let e = format!("{:e}", n.abs());
    let (mantissa, exp) = e.split_once('e').unwrap_or((&e, "0"));
    let mut digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    // Rust breaks a tie between two shortest candidates upwards; ECMA-262
    // takes the even one. A tie: the exact value is `L` followed by a single
    // `5` (`L` the first k exact digits), and both `L` and `L + 1` round-trip.
    let exact = format!("{:.799e}", n.abs());
    if let Some((x_mant, x_exp)) = exact.split_once('e') {
        let x: String = x_mant.chars().filter(|c| *c != '.').collect();
        let k = digits.len();
        let tie = x_exp == exp
            && x.as_bytes().get(k) == Some(&b'5')
            && x.bytes().skip(k + 1).all(|b| b == b'0');
        let round_trips =
            |d: &str| format!("{}.{}e{exp}", &d[..1], &d[1..]).parse::<f64>() == Ok(n.abs());
        let low = &x[..k];
        let low_is_even = low.bytes().last().is_some_and(|b| (b - b'0') % 2 == 0);
        if tie && low_is_even && digits != low && round_trips(low) {
            digits = low.to_owned();
        }
    }
    let k = digits.len() as i64;
    let point = exp.parse::<i64>().unwrap_or(0) + 1; // ECMA's n
    let body = if k <= point && point <= 21 {
        format!("{digits}{}", "0".repeat((point - k) as usize))
    } else if 0 < point && point <= 21 {
        format!(
            "{}.{}",
            &digits[..point as usize],
            &digits[point as usize..]
        )
    } else if -6 < point && point <= 0 {
        format!("0.{}{digits}", "0".repeat((-point) as usize))
    } else {
        let exp = point - 1;
        let sign = if exp < 0 { '-' } else { '+' };
        let mant = if k == 1 {
            digits.clone()
        } else {
            format!("{}.{}", &digits[..1], &digits[1..])
        };
        format!("{mant}e{sign}{}", exp.abs())
    };
    format!("{sign}{body}")
}

/// Arbitrary JSON text: when it parses, `stable_stringify` agrees with
/// [`reference_stable_stringify`], its output parses back, and
/// re-canonicalising it changes nothing (idempotent).
pub fn stable_stringify(data: &[u8]) {
    let Ok(v) = json::parse(data) else {
        return;
    };
    let out = canonical_stringify(&v);
    assert_eq!(
        out,
        reference_stable_stringify(&v),
        "differs from the reference"
    );
    let again = json::parse(out.as_bytes()).expect("canonical output parses");
    assert_eq!(canonical_stringify(&again), out, "not idempotent");
}

// ---------------------------------------------------------------------------
// 6. config
// ---------------------------------------------------------------------------

/// Arbitrary config JSON: `parse_config` gives an error or a config, never a
/// panic; an accepted config re-validates without errors, gives the same
/// warnings again, and its routes can be used.
pub fn config(data: &[u8]) {
    let Ok(loaded) = crate::config::parse_config(data) else {
        return;
    };
    let c = &loaded.config;
    assert_eq!(crate::config::validate_config(c), Vec::<String>::new());
    assert_eq!(crate::config::config_warnings(c), loaded.warnings);
    for (ns, col) in c.all_collections() {
        let _ = (col.is_binary(), col.is_public(false), col.is_public(true));
        assert!(c.scope(ns).is_some(), "collection in an unknown scope");
        let params: Vec<(String, String)> = col
            .param_names()
            .iter()
            .map(|n| (n.to_string(), "v".to_owned()))
            .collect();
        let key = col.resolve_key(&params);
        let raw: Vec<&str> = key.split('/').collect();
        let _ = col.match_route(&raw);
        let _ = crate::sync::list::list_prefix(col, &params);
        let _ = crate::sync::config_endpoint::client_info(col);
    }
    let _ = crate::config::bundle_groups(&c.collections);
    // The EXTENDED interpreters accept whatever the validator accepted.
    let limits = crate::sync::rate_limit::RateLimits::from_config(c, 4);
    let caller = crate::sync::rate_limit::Caller::default();
    for (ns, col) in c.all_collections() {
        for action in [
            crate::sync::rate_limit::RateAction::Push,
            crate::sync::rate_limit::RateAction::Pull,
            crate::sync::rate_limit::RateAction::List,
        ] {
            let _ = limits.check(ns, &col.name, action, &caller, 0);
        }
    }
    let plan = crate::sync::ttl::SweepPlan::new(c);
    for (_, col) in c.all_collections() {
        let _ = plan.sweep_ttl(&col.storage_path);
    }
    // Restrictions, field permissions and object schemas compile from any
    // accepted config and answer without panicking.
    let restrictions = crate::auth::restrictions::Restrictions::from_config(c);
    let empty = crate::proto::json::Object::new();
    for (ns, col) in c.all_collections() {
        use crate::auth::restrictions::Action;
        for action in [Action::Pull, Action::Push, Action::List] {
            let _ = restrictions.check(Some("u"), action, ns, &col.name);
            let _ = restrictions.check(None, action, ns, &col.name);
        }
        let fields = col.extended.field_permissions.as_ref();
        if let Some(f) = crate::sync::fields::FieldPermissions::from_config(fields) {
            let _ = f.malformed_fields();
            let _ = f.check_write(&empty, &[]);
        }
        if let Some(raw) = col.extended.object_schema.as_ref() {
            let _ = crate::sync::schema::CollectionSchema::compile(raw).check(&empty);
        }
    }
}

// ---------------------------------------------------------------------------
// 7. push_body
// ---------------------------------------------------------------------------

/// Work units ([`crate::proto::work`]) a push body of `len` bytes may cost
/// in [`push_body`]: linear, with room for the per-entry constants.
pub const PUSH_WORK_PER_BYTE: u64 = 16;

/// An arbitrary push body through what a push does with it: the body checks
/// (`parse_json_body`), `validate`, and the write (optimistic-concurrency
/// check, sanitising, hashing, the stored envelope) into a memory store.
/// Properties: no panic; the work counted is linear in the body
/// ([`PUSH_WORK_PER_BYTE`], so a quadratic step fails here even on inputs
/// too small to time out); a push that may create the document does, and
/// what is stored decodes to sanitised data whose hash is the stored hash,
/// and pulls back the same through the splicing fast path as through
/// parsing; any other `baseHash` is a conflict. Run with libFuzzer's
/// `-timeout` so a slow input becomes an artifact too.
pub fn push_body(data: &[u8]) {
    use crate::store::{MemoryStore, Store};
    use crate::sync::{doc, push, SyncError};
    let store = MemoryStore::new();
    let key = "notes/fuzz";
    let (outcome, units) = crate::proto::work::count(|| {
        let body = push::parse_json_body(Some("application/json"), data)?;
        let p = push::validate(body, key, None)?;
        let w = push::write(&store, key, &p, 1_700_000_000_000);
        Ok::<_, SyncError>((p, w))
    });
    assert!(
        units <= PUSH_WORK_PER_BYTE * data.len() as u64 + 256,
        "{units} work units for a {}-byte body",
        data.len()
    );
    let Ok((p, written)) = outcome else {
        return;
    };
    match p.base_hash.as_deref() {
        None | Some("") => {
            let w = written.expect("an empty store takes a create");
            let raw = store.get(key).unwrap().expect("stored");
            let doc::Read::Doc(d) = doc::decode(&raw) else {
                panic!("stored envelope does not decode");
            };
            let Value::Object(stored) = &d.data else {
                panic!("stored data is not an object");
            };
            assert!(
                !crate::proto::sanitize::needs_sanitize(stored),
                "stored data was not sanitised"
            );
            assert_eq!(d.hash_str(), w.hash);
            assert_eq!(crate::proto::hash::object_hash(stored), w.hash);
            let slow = json::to_js_json(&doc::pull_answer(Some(&d), 5, None));
            let (fast, hash) = doc::splice_pull_answer(&raw, 5).expect("our envelope splices");
            assert_eq!(fast, slow, "spliced pull differs from the parsed one");
            assert_eq!(hash, w.hash);
        }
        Some(_) => assert!(
            matches!(written, Err(SyncError::HashMismatch)),
            "a baseHash on an empty store must conflict"
        ),
    }
}
