//! Input-cost hunt (issue 17): server CPU time per request byte as each
//! input dimension an unauthenticated client controls doubles.
//!
//! ```text
//! cargo run --release --example input_cost                 # the whole table
//! cargo run --release --example input_cost -- --quick      # fewer repetitions
//! cargo run --release --example input_cost -- --only keys  # sections and rows whose name contains "keys"
//! cargo run --release --example input_cost -- --compare-only \
//!     --official http://127.0.0.1:PORT --official-pid PID  # the many-key body vs the official server
//! ```
//!
//! The real server (`starfish::server::Server`, memory store, one executor
//! thread, the default config plus a public `bench/{id}` collection with a
//! 1 MiB `maxBodyBytes`, the HTTP layer's own bound) runs in this process
//! on a loopback port; this thread is the client and speaks raw HTTP/1.1
//! over keep-alive connections. Server CPU time is the sum of
//! `/proc/self/task/*/schedstat` run time over every thread but this one
//! (Linux), so waiting and the client's own work are not counted. Each row
//! is the minimum over a few batches of the mean per request.
//!
//! Columns: `n` is the dimension's size, `bytes` the whole request on the
//! wire, `us/req` the server CPU per request, `ns/B` that per request byte,
//! `x prev` the `ns/B` ratio to the row above (the size doubles between
//! rows: about 1.0 or less is linear, 2.0 is quadratic), `marg ns/B` the
//! marginal cost of the added bytes, `status` the last answer's status.
//!
//! With `--official URL --official-pid PID`, the many-key comparison also
//! runs against another server (the official Node server started from
//! `tests/interop/official-server/server.mjs`), whose CPU time is read from
//! `/proc/PID/task/*/schedstat`.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use starfish::auth::cap::CapResolverConfig;
use starfish::auth::nonce::NonceCacheConfig;
use starfish::http::ServerConfig;
use starfish::proto::cap::{self, MintOptions};
use starfish::proto::json::{Object, Value};
use starfish::proto::request_sig::{self, RequestToSign};
use starfish::server::{ServeOptions, Server, StoreChoice};

// ---------------------------------------------------------------------------
// CPU clocks

fn schedstat_ns(path: &str) -> u64 {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// Run time of every thread of process `pid` ("self" for this process)
/// except `skip_tid`, in ns.
fn process_cpu_ns(pid: &str, skip_tid: Option<&str>) -> u64 {
    let Ok(rd) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    rd.filter_map(Result::ok)
        .filter(|e| Some(e.file_name().to_string_lossy().as_ref()) != skip_tid)
        .map(|e| schedstat_ns(&format!("{}/schedstat", e.path().display())))
        .sum()
}

fn own_tid() -> String {
    std::fs::read_link("/proc/thread-self")
        .ok()
        .and_then(|p| Some(p.file_name()?.to_string_lossy().into_owned()))
        .unwrap_or_default()
}

/// Whose CPU time is measured.
#[derive(Clone)]
enum Clock {
    /// This process minus the client thread.
    InProcess(String),
    /// Another process.
    Pid(String),
}

impl Clock {
    fn now(&self) -> u64 {
        match self {
            Clock::InProcess(tid) => process_cpu_ns("self", Some(tid)),
            Clock::Pid(pid) => process_cpu_ns(pid, None),
        }
    }
}

// ---------------------------------------------------------------------------
// A raw keep-alive HTTP/1.1 client

struct Client {
    addr: SocketAddr,
    host: String,
    conn: Option<TcpStream>,
}

impl Client {
    fn new(addr: SocketAddr) -> Self {
        Client {
            addr,
            host: format!("127.0.0.1:{}", addr.port()),
            conn: None,
        }
    }

    /// Send one request; the status and body of the answer.
    fn send(&mut self, req: &[u8]) -> (u16, Vec<u8>) {
        self.send_in(req, usize::MAX)
    }

    /// Send one request in writes of at most `piece` bytes (a short pause
    /// after each, so each piece arrives on its own).
    fn send_in(&mut self, req: &[u8], piece: usize) -> (u16, Vec<u8>) {
        for attempt in 0..2 {
            if self.conn.is_none() {
                let s = TcpStream::connect(self.addr).expect("connect");
                s.set_nodelay(true).ok();
                s.set_read_timeout(Some(Duration::from_secs(120))).ok();
                self.conn = Some(s);
            }
            let s = self.conn.as_mut().unwrap();
            let mut failed = false;
            for part in req.chunks(piece.max(1)) {
                if s.write_all(part).is_err() {
                    failed = true;
                    break;
                }
                if piece < req.len() {
                    std::thread::sleep(Duration::from_micros(30));
                }
            }
            if failed {
                self.conn = None;
                continue;
            }
            match read_response(s) {
                Some((status, body, close)) => {
                    if close {
                        self.conn = None;
                    }
                    return (status, body);
                }
                None => {
                    self.conn = None;
                    assert!(attempt == 0, "no answer");
                }
            }
        }
        panic!("no answer");
    }
}

fn read_response(s: &mut TcpStream) -> Option<(u16, Vec<u8>, bool)> {
    let mut buf = Vec::with_capacity(4096);
    let mut chunk = [0u8; 65536];
    let head_end = loop {
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break p + 4;
        }
        let n = s.read(&mut chunk).ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
    let status: u16 = head.split(' ').nth(1)?.parse().ok()?;
    let close = head.contains("\r\nconnection: close");
    let len = head
        .split("\r\n")
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok());
    let mut body = buf[head_end..].to_vec();
    match len {
        Some(n) => {
            while body.len() < n {
                let k = s.read(&mut chunk).ok()?;
                if k == 0 {
                    return None;
                }
                body.extend_from_slice(&chunk[..k]);
            }
            body.truncate(n);
        }
        None if close => {
            let _ = s.read_to_end(&mut body);
        }
        None => {}
    }
    Some((status, body, close))
}

fn request(
    method: &str,
    target: &str,
    host: &str,
    headers: &[(String, String)],
    body: &[u8],
) -> Vec<u8> {
    let mut head = format!("{method} {target} HTTP/1.1\r\nHost: {host}\r\n");
    for (n, v) in headers {
        head.push_str(&format!("{n}: {v}\r\n"));
    }
    let chunked = headers
        .iter()
        .any(|(n, _)| n.eq_ignore_ascii_case("transfer-encoding"));
    if !chunked && (method == "POST" || !body.is_empty()) {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    let mut out = head.into_bytes();
    out.extend_from_slice(body);
    out
}

fn json_post(target: &str, host: &str, body: &[u8]) -> Vec<u8> {
    let h = [("Content-Type".to_owned(), "application/json".to_owned())];
    request("POST", target, host, &h, body)
}

fn hash_of(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    text.split("\"hash\":\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap_or_default()
        .to_owned()
}

// ---------------------------------------------------------------------------
// Bodies

/// `{"data":<data>,"baseHash":<base>}`.
fn push_body(data: impl AsRef<[u8]>, base: Option<&str>) -> Vec<u8> {
    let base = base.map_or("null".to_owned(), |b| format!("\"{b}\""));
    let mut out = b"{\"data\":".to_vec();
    out.extend_from_slice(data.as_ref());
    out.extend_from_slice(format!(",\"baseHash\":{base}}}").as_bytes());
    out
}

fn keys_data(n: usize) -> String {
    let mut s = String::with_capacity(n * 12 + 2);
    s.push('{');
    for i in 0..n {
        if i > 0 {
            s.push(',');
        }
        s.push_str(&format!("\"k{i}\":0"));
    }
    s.push('}');
    s
}

fn repeat_join(item: &str, n: usize, sep: &str) -> String {
    let mut s = String::with_capacity(n * (item.len() + sep.len()));
    for i in 0..n {
        if i > 0 {
            s.push_str(sep);
        }
        s.push_str(item);
    }
    s
}

fn chain(depth: usize, open: &str, leaf: &str, close: &str) -> String {
    format!("{}{leaf}{}", open.repeat(depth), close.repeat(depth))
}

/// The issue's body: `data` with 8,292 keys, 64,994 bytes in all once its
/// `baseHash` is a 64-digit hash, and a one-key body of exactly the same
/// length. Returned with `"baseHash":null` (62 bytes shorter).
fn issue_bodies() -> (Vec<u8>, Vec<u8>) {
    const ALPHA: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let key = |mut i: usize| {
        let mut len = 1;
        let mut span = ALPHA.len();
        while i >= span {
            i -= span;
            len += 1;
            span *= ALPHA.len();
        }
        let mut k = vec![b'x'; len];
        for slot in k.iter_mut().rev() {
            *slot = ALPHA[i % ALPHA.len()];
            i /= ALPHA.len();
        }
        String::from_utf8(k).unwrap()
    };
    let mut data = String::from("{");
    for i in 0..8292 {
        if i > 0 {
            data.push(',');
        }
        data.push_str(&format!("\"{}\":0", key(i)));
    }
    data.push('}');
    let mut many = push_body(&data, None);
    // Pad the last value to reach the issue's length exactly.
    const LEN: usize = 64_994 - 62;
    let short = LEN.saturating_sub(many.len());
    if short > 0 {
        data.truncate(data.len() - 2);
        data.push_str(&format!("{}}}", "1".repeat(short + 1)));
        many = push_body(&data, None);
    }
    let filler = LEN - push_body("{\"k\":\"\"}", None).len();
    let one = push_body(format!("{{\"k\":\"{}\"}}", "a".repeat(filler)), None);
    assert_eq!(one.len(), many.len());
    (many, one)
}

// ---------------------------------------------------------------------------
// Signed requests

const ROOT_SEED: [u8; 32] = [7; 32];

/// The identity the benchmark's caps are bound to (their own documents are
/// readable, so a request goes through every auth step).
fn root_user_id() -> String {
    starfish::proto::identity::user_id_from_pub_hex(&request_sig::public_key_hex(&ROOT_SEED))
        .expect("user id")
}

fn scope_object(ops: &[&str], collections: &[String], paths: Option<&[String]>) -> Object {
    let arr = |xs: &[String]| Value::Array(xs.iter().map(|s| Value::from(s.as_str())).collect());
    let mut o = Object::new();
    o.insert(
        "ops",
        Value::Array(ops.iter().map(|s| Value::from(*s)).collect()),
    );
    if let Some(p) = paths {
        o.insert("paths", arr(p));
    }
    o.insert("collections", arr(collections));
    o
}

fn now_ms() -> i64 {
    starfish::http::service::now_ms()
}

/// A signed GET of `target` with a fresh device cap of the given scope
/// (a fresh subject key and nonce each call, so neither the verified-cap
/// cache nor the nonce cache short-cuts the work).
struct Signer;

static SIGNED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

impl Signer {
    fn get(&mut self, host: &str, target: &str, scope: Object) -> Vec<u8> {
        let counter = SIGNED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut sub_seed = [0u8; 32];
        sub_seed[..8].copy_from_slice(&counter.to_le_bytes());
        sub_seed[31] = 1;
        let root_pub = request_sig::public_key_hex(&ROOT_SEED);
        let sub_pub = request_sig::public_key_hex(&sub_seed);
        let mut nonce = [0u8; 16];
        nonce[..8].copy_from_slice(&counter.to_le_bytes());
        let cert = cap::mint_device_cap(
            &ROOT_SEED,
            &root_pub,
            &sub_pub,
            &"22".repeat(32),
            scope,
            MintOptions {
                nbf: now_ms() / 1000 - 60,
                ttl_sec: 3600,
                nonce,
            },
        )
        .expect("mint");
        let req_nonce = starfish::proto::encoding::b64_encode(&nonce);
        let ts = now_ms();
        let sig = request_sig::sign_request(
            &RequestToSign {
                method: "GET",
                path_and_query: target,
                host,
                body: b"",
                ts: ts as f64,
                nonce_b64: &req_nonce,
            },
            &sub_seed,
        );
        let headers = vec![
            ("Authorization".to_owned(), cert.authorization_header()),
            ("X-Starfish-Sig".to_owned(), sig),
            ("X-Starfish-Ts".to_owned(), ts.to_string()),
            ("X-Starfish-Nonce".to_owned(), req_nonce),
        ];
        request("GET", target, host, &headers, b"")
    }
}

// ---------------------------------------------------------------------------
// Measuring

struct Opts {
    batches: usize,
    batch_ns: u64,
}

/// Mean server CPU ns per request (min over batches), the request length,
/// and the last status. `next` makes each request.
fn measure(
    client: &mut Client,
    clock: &Clock,
    opts: &Opts,
    mut next: impl FnMut() -> Vec<u8>,
) -> (f64, usize, u16) {
    // Warm up, and size the batches.
    let req = next();
    let len = req.len();
    let t0 = clock.now();
    let (mut status, _) = client.send(&req);
    let (s2, _) = client.send(&next());
    status = status.max(s2).min(s2.max(status));
    let one = ((clock.now() - t0) / 2).max(1);
    let per_batch = (opts.batch_ns / one).clamp(2, 2000) as usize;
    let reqs: Vec<Vec<u8>> = (0..per_batch).map(|_| next()).collect();
    let mut best = f64::INFINITY;
    for b in 0..opts.batches {
        let batch: Vec<Vec<u8>> = if b == 0 {
            reqs.clone()
        } else {
            (0..per_batch).map(|_| next()).collect()
        };
        let start = clock.now();
        for r in &batch {
            status = client.send(r).0;
        }
        let ns = (clock.now() - start) as f64 / per_batch as f64;
        best = best.min(ns);
    }
    (best, len, status)
}

/// Makes the next request of a row.
type Maker = Box<dyn FnMut() -> Vec<u8>>;
/// Sets up a row of size n (seeding documents on the server if needed).
type RowMaker<'a> = Box<dyn FnMut(&mut Client, usize) -> Maker + 'a>;

/// One dimension: a name and, per size, a request maker.
struct Dim<'a> {
    name: &'static str,
    sizes: Vec<usize>,
    /// The bytes a row is priced per, when not the request's (a pull is
    /// priced per stored byte).
    bytes_of: Option<fn(usize) -> usize>,
    make: RowMaker<'a>,
}

fn doublings(from: usize, to: usize) -> Vec<usize> {
    let mut v = Vec::new();
    let mut n = from;
    while n <= to {
        v.push(n);
        n *= 2;
    }
    v
}

fn run_dim(client: &mut Client, clock: &Clock, opts: &Opts, mut d: Dim<'_>) {
    let mut prev: Option<(f64, usize, f64)> = None; // (ns/B, bytes, ns/req)
    for &n in &d.sizes {
        let mut next = (d.make)(client, n);
        let (ns, len, status) = measure(client, clock, opts, &mut *next);
        let len = d.bytes_of.map_or(len, |f| f(n));
        let per_byte = ns / len as f64;
        let (ratio, marg) = match prev {
            Some((pb, pl, pns)) if len > pl => (
                format!("{:.2}", per_byte / pb),
                format!("{:.1}", (ns - pns) / (len - pl) as f64),
            ),
            Some((pb, _, _)) => (format!("{:.2}", per_byte / pb), "-".to_owned()),
            None => ("-".to_owned(), "-".to_owned()),
        };
        println!(
            "| {:<34} | {:>7} | {:>8} | {:>10.1} | {:>7.2} | {:>6} | {:>9} | {:>3} |",
            d.name,
            n,
            len,
            ns / 1000.0,
            per_byte,
            ratio,
            marg,
            status
        );
        prev = Some((per_byte, len, ns));
    }
}

/// Push `body` once with `baseHash: null` to `target`, then return a maker
/// of pushes of the same data with the stored hash (each succeeds and keeps
/// the hash), or with a stale hash when `stale`.
fn repeat_push(client: &mut Client, target: String, data: impl AsRef<[u8]>, stale: bool) -> Maker {
    let host = client.host.clone();
    let (status, body) = client.send(&json_post(&target, &host, &push_body(&data, None)));
    let hash = if stale {
        "0".repeat(64)
    } else {
        assert_eq!(
            status,
            200,
            "seed push {target}: {}",
            String::from_utf8_lossy(&body)
        );
        hash_of(&body)
    };
    let req = json_post(&target, &host, &push_body(&data, Some(&hash)));
    Box::new(move || req.clone())
}

fn fixed(req: Vec<u8>) -> Maker {
    Box::new(move || req.clone())
}

static KEYS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// A fresh document key under `bench/`.
fn fresh_target(tag: &str) -> String {
    let k = KEYS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("/v1/push/bench/{tag}-{k}")
}

/// Push dimension over generated `data`.
fn push_dim<'a>(
    name: &'static str,
    sizes: Vec<usize>,
    data: impl Fn(usize) -> String + 'a,
) -> Dim<'a> {
    Dim {
        name,
        sizes,
        bytes_of: None,
        make: Box::new(move |c, n| repeat_push(c, fresh_target("d"), data(n), false)),
    }
}

const MIB: usize = 1 << 20;

fn bench_config() -> String {
    let default = include_str!("../src/config/default_config.json");
    let bench = r#""collections": [
    {
      "name": "bench",
      "storagePath": "bench/{id}",
      "readRoles": ["public"],
      "writeRoles": ["public"],
      "encryption": "none",
      "maxBodyBytes": 1048576
    },"#;
    default.replacen("\"collections\": [", bench, 1)
}

fn start_server() -> (
    SocketAddr,
    async_channel::Sender<()>,
    std::thread::JoinHandle<()>,
) {
    let dir = std::env::temp_dir().join(format!("starfish-input-cost-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("config.json");
    std::fs::write(&config, bench_config()).unwrap();
    let opts = ServeOptions {
        config: Some(config),
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        store: StoreChoice::Memory,
        auth: CapResolverConfig {
            nonce: NonceCacheConfig {
                per_signer_limit: 10_000_000,
                max_entries: 10_000_000,
                ..NonceCacheConfig::default()
            },
            ..CapResolverConfig::default()
        },
        http: ServerConfig::default(),
        threads: 1,
        ..ServeOptions::default()
    };
    let server = Server::bind(opts).expect("bind");
    let addr = server.local_addr();
    let (tx, rx) = async_channel::bounded::<()>(1);
    let handle = std::thread::spawn(move || {
        server
            .run_until(async move {
                let _ = rx.recv().await;
            })
            .expect("server runs");
        let _ = std::fs::remove_dir_all(&dir);
    });
    (addr, tx, handle)
}

/// The many-key body against a one-key body of the same size.
fn compare(client: &mut Client, clock: &Clock, opts: &Opts, label: &str, prefix: &str) {
    let (many, one) = issue_bodies();
    let strip = |b: &[u8]| {
        let t = String::from_utf8_lossy(b).into_owned();
        t.strip_prefix("{\"data\":")
            .and_then(|r| r.strip_suffix(",\"baseHash\":null}"))
            .unwrap()
            .to_owned()
    };
    let stamp = now_ms();
    let mut row = |name: &str, data: String, stale: bool| {
        let slug: String = name.chars().filter(char::is_ascii_alphanumeric).collect();
        let target = format!("{prefix}/push/public/notes/cmp-{stamp}-{slug}");
        let mut next = repeat_push(client, target, data, stale);
        let (ns, len, status) = measure(client, clock, opts, &mut *next);
        // Round-trip time as the client sees it (median of a few).
        let mut rtt: Vec<f64> = (0..31)
            .map(|_| {
                let req = next();
                let t = std::time::Instant::now();
                client.send(&req);
                t.elapsed().as_secs_f64() * 1e6
            })
            .collect();
        rtt.sort_by(f64::total_cmp);
        println!(
            "| {label:<8} | {name:<22} | {len:>6} | {:>9.1} | {:>9.1} | {status:>3} |",
            ns / 1000.0,
            rtt[rtt.len() / 2]
        );
        (ns, rtt[rtt.len() / 2])
    };
    let m = row("8292 keys", strip(&many), false);
    let o = row("1 key", strip(&one), false);
    row("8292 keys, stale hash", strip(&many), true);
    println!(
        "| {label:<8} | 8292 keys / 1 key | | {:.2}x | {:.2}x | |",
        m.0 / o.0,
        m.1 / o.1
    );
}

/// A request head delivered in 64-byte pieces (a slow client): every piece
/// wakes the server, which must not re-parse the whole head each time.
fn trickled_head(client: &mut Client, clock: &Clock) {
    println!();
    println!("## Request head delivered in 64-byte pieces");
    println!();
    println!("| head bytes | pieces | server us/req | ns/B | x prev | st |");
    println!("|---|---|---|---|---|---|");
    let mut prev: Option<f64> = None;
    for n in [1024, 2048, 4096, 8192, 15800] {
        let hs = vec![("X-Slow".to_owned(), "v".repeat(n))];
        let req = request("GET", "/v1/pull/bench/slow", &client.host.clone(), &hs, b"");
        let mut best = f64::INFINITY;
        let mut status = 0;
        for _ in 0..3 {
            let start = clock.now();
            status = client.send_in(&req, 64).0;
            best = best.min((clock.now() - start) as f64);
        }
        let per_byte = best / req.len() as f64;
        let ratio = prev.map_or("-".to_owned(), |p| format!("{:.2}", per_byte / p));
        println!(
            "| {} | {} | {:.1} | {:.1} | {} | {} |",
            req.len(),
            req.len().div_ceil(64),
            best / 1000.0,
            per_byte,
            ratio,
            status
        );
        prev = Some(per_byte);
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let flag = |f: &str| args.iter().any(|a| a == f);
    let value = |f: &str| {
        args.iter()
            .position(|a| a == f)
            .and_then(|i| args.get(i + 1).cloned())
    };
    let opts = if flag("--quick") {
        Opts {
            batches: 3,
            batch_ns: 15_000_000,
        }
    } else {
        Opts {
            batches: 5,
            batch_ns: 40_000_000,
        }
    };
    let only = value("--only");

    let (addr, stop, handle) = start_server();
    let clock = Clock::InProcess(own_tid());
    let mut client = Client::new(addr);

    let selected = |name: &str| only.as_deref().is_none_or(|o| name.contains(o));
    if selected("many-key compare") {
        println!("## Many-key push (issue 17): server CPU per push");
        println!();
        println!("| server   | body                   | bytes  | CPU us    | RTT us    | st  |");
        println!("|---|---|---|---|---|---|");
        compare(&mut client, &clock, &opts, "ours", "/v1");
        if let (Some(url), Some(pid)) = (value("--official"), value("--official-pid")) {
            let official: SocketAddr = url
                .trim_start_matches("http://")
                .trim_end_matches('/')
                .parse()
                .expect("--official http://127.0.0.1:PORT");
            let mut oc = Client::new(official);
            compare(&mut oc, &Clock::Pid(pid), &opts, "official", "/v1");
        }
    }
    if flag("--compare-only") {
        drop(stop);
        let _ = handle.join();
        return;
    }

    let dims: Vec<Dim<'_>> = vec![
        push_dim("push: data keys", doublings(1024, 65536), keys_data),
        Dim {
            name: "push: data keys, stale baseHash",
            sizes: doublings(1024, 65536),
            bytes_of: None,
            make: Box::new(|c, n| repeat_push(c, fresh_target("stale"), keys_data(n), true)),
        },
        push_dim("push: duplicate data keys", doublings(1024, 65536), |n| {
            format!("{{{}}}", repeat_join("\"k\":0", n, ","))
        }),
        push_dim("push: nested object keys", doublings(1024, 65536), |n| {
            format!("{{\"o\":{}}}", keys_data(n))
        }),
        Dim {
            name: "push: top-level body keys",
            sizes: doublings(1024, 65536),
            bytes_of: None,
            make: Box::new(|c, n| {
                let mut extra = String::new();
                for i in 0..n {
                    extra.push_str(&format!(",\"x{i}\":0"));
                }
                let body =
                    |base: &str| format!("{{\"data\":{{\"a\":1}},\"baseHash\":{base}{extra}}}");
                let target = fresh_target("top");
                let host = c.host.clone();
                let (status, answer) = c.send(&json_post(&target, &host, body("null").as_bytes()));
                assert_eq!(status, 200);
                let hash = format!("\"{}\"", hash_of(&answer));
                fixed(json_post(&target, &host, body(&hash).as_bytes()))
            }),
        },
        push_dim("push: array length", doublings(4096, 262144), |n| {
            format!("{{\"a\":[{}]}}", repeat_join("0", n, ","))
        }),
        // Depth doubles at a fixed body size (~128 KiB of chains).
        push_dim("push: depth, object chains", vec![4, 8, 16, 32, 60], |d| {
            let c = chain(d, "{\"a\":", "1", "}");
            format!(
                "{{\"a\":[{}]}}",
                repeat_join(&c, 131072 / (c.len() + 1), ",")
            )
        }),
        push_dim("push: depth, array chains", vec![4, 8, 16, 32, 60], |d| {
            let c = chain(d, "[", "1", "]");
            format!(
                "{{\"a\":[{}]}}",
                repeat_join(&c, 131072 / (c.len() + 1), ",")
            )
        }),
        push_dim("push: string length", doublings(16384, MIB - 64), |n| {
            format!("{{\"s\":\"{}\"}}", "a".repeat(n))
        }),
        push_dim("push: escapes \\n", doublings(8192, MIB / 2 - 64), |n| {
            format!("{{\"s\":\"{}\"}}", "\\n".repeat(n))
        }),
        push_dim(
            "push: escapes \\u00e9",
            doublings(2048, MIB / 6 - 64),
            |n| format!("{{\"s\":\"{}\"}}", "\\u00e9".repeat(n)),
        ),
        push_dim(
            "push: lone surrogates",
            doublings(2048, MIB / 6 - 64),
            |n| format!("{{\"s\":\"{}\"}}", "\\ud800".repeat(n)),
        ),
        push_dim(
            "push: surrogate pairs",
            doublings(1024, MIB / 12 - 64),
            |n| format!("{{\"s\":\"{}\"}}", "\\ud83d\\ude00".repeat(n)),
        ),
        push_dim(
            "push: 2-byte UTF-8 chars",
            doublings(8192, MIB / 2 - 64),
            |n| format!("{{\"s\":\"{}\"}}", "é".repeat(n)),
        ),
        Dim {
            name: "push: invalid UTF-8 bytes",
            sizes: doublings(16384, MIB - 64),
            bytes_of: None,
            make: Box::new(|c, n| {
                let mut data = b"{\"s\":\"".to_vec();
                data.extend(std::iter::repeat_n(0xFFu8, n));
                data.extend_from_slice(b"\"}");
                repeat_push(c, fresh_target("utf8"), data, false)
            }),
        },
        push_dim("push: integer digits", doublings(1024, MIB - 64), |n| {
            format!("{{\"n\":{}}}", "7".repeat(n))
        }),
        push_dim("push: fraction digits", doublings(1024, MIB - 64), |n| {
            format!("{{\"n\":0.{}1}}", "0".repeat(n))
        }),
        push_dim("push: exponent digits", doublings(1024, MIB - 64), |n| {
            format!("{{\"n\":1e{}1}}", "0".repeat(n))
        }),
        push_dim("push: many numbers", doublings(4096, 32768), |n| {
            format!(
                "{{\"a\":[{}]}}",
                repeat_join("1.2345678901234567e-300", n, ",")
            )
        }),
        Dim {
            name: "pull: stored data keys (per stored B)",
            sizes: doublings(1024, 65536),
            bytes_of: Some(|n| keys_data(n).len()),
            make: Box::new(|c, n| {
                let target = format!("/v1/push/bench/pullkeys-{n}");
                let host = c.host.clone();
                let (s, _) = c.send(&json_post(&target, &host, &push_body(keys_data(n), None)));
                assert_eq!(s, 200);
                fixed(request(
                    "GET",
                    &target.replace("/push/", "/pull/"),
                    &host,
                    &[],
                    b"",
                ))
            }),
        },
        Dim {
            name: "headers: count",
            sizes: vec![12, 24, 48, 96],
            bytes_of: None,
            make: Box::new(|c, n| {
                let hs: Vec<(String, String)> = (0..n)
                    .map(|i| (format!("X-H{i}"), "v".repeat(100)))
                    .collect();
                fixed(request(
                    "GET",
                    "/v1/pull/bench/h",
                    &c.host.clone(),
                    &hs,
                    b"",
                ))
            }),
        },
        Dim {
            name: "headers: one value's size",
            sizes: doublings(512, 15000),
            bytes_of: None,
            make: Box::new(|c, n| {
                let hs = vec![("X-Big".to_owned(), "v".repeat(n))];
                fixed(request(
                    "GET",
                    "/v1/pull/bench/h",
                    &c.host.clone(),
                    &hs,
                    b"",
                ))
            }),
        },
        Dim {
            name: "headers: If-None-Match size",
            sizes: doublings(512, 15000),
            bytes_of: None,
            make: Box::new(|c, n| {
                let hs = vec![("If-None-Match".to_owned(), "v".repeat(n))];
                fixed(request(
                    "GET",
                    "/v1/pull/bench/h",
                    &c.host.clone(),
                    &hs,
                    b"",
                ))
            }),
        },
        Dim {
            name: "query: parameter count",
            sizes: doublings(128, 3000),
            bytes_of: None,
            make: Box::new(|c, n| {
                let q = repeat_join("a=1", n, "&");
                fixed(request(
                    "GET",
                    &format!("/v1/pull/bench/q?{q}&withKeyring=1"),
                    &c.host.clone(),
                    &[],
                    b"",
                ))
            }),
        },
        Dim {
            name: "query: escaped value size",
            sizes: doublings(512, 5000),
            bytes_of: None,
            make: Box::new(|c, n| {
                let q = "%41".repeat(n);
                fixed(request(
                    "GET",
                    &format!("/v1/pull/bench/q?withKeyring={q}"),
                    &c.host.clone(),
                    &[],
                    b"",
                ))
            }),
        },
        Dim {
            name: "batch: collections (distinct)",
            sizes: doublings(64, 2048),
            bytes_of: None,
            make: Box::new(|c, n| {
                let names: Vec<String> = (0..n).map(|i| format!("c{i}")).collect();
                fixed(request(
                    "GET",
                    &format!("/v1/batch/pull?collections={}", names.join(",")),
                    &c.host.clone(),
                    &[],
                    b"",
                ))
            }),
        },
        Dim {
            name: "batch: collections (repeated)",
            sizes: doublings(256, 7000),
            bytes_of: None,
            make: Box::new(|c, n| {
                fixed(request(
                    "GET",
                    &format!(
                        "/v1/batch/pull?collections={}",
                        repeat_join("bench", n, ",")
                    ),
                    &c.host.clone(),
                    &[],
                    b"",
                ))
            }),
        },
        Dim {
            name: "batch: params keys",
            sizes: doublings(64, 1500),
            bytes_of: None,
            make: Box::new(|c, n| {
                let mut p = String::from("{");
                for i in 0..n {
                    p.push_str(&format!("%22k{i}%22:[],"));
                }
                p.push_str("%22bench%22:[{%22id%22:%22x%22}]}");
                fixed(request(
                    "GET",
                    &format!("/v1/batch/pull?collections=bench&params={p}"),
                    &c.host.clone(),
                    &[],
                    b"",
                ))
            }),
        },
        Dim {
            name: "batch: params set size",
            sizes: doublings(64, 1500),
            bytes_of: None,
            make: Box::new(|c, n| {
                let mut p = String::from("{%22bench%22:[{%22id%22:%22x%22");
                for i in 0..n {
                    p.push_str(&format!(",%22k{i}%22:1"));
                }
                p.push_str("}]}");
                fixed(request(
                    "GET",
                    &format!("/v1/batch/pull?collections=bench&params={p}"),
                    &c.host.clone(),
                    &[],
                    b"",
                ))
            }),
        },
        Dim {
            name: "path: id segment length",
            sizes: doublings(256, 15000),
            bytes_of: None,
            make: Box::new(|c, n| {
                fixed(request(
                    "GET",
                    &format!("/v1/pull/bench/{}", "a".repeat(n)),
                    &c.host.clone(),
                    &[],
                    b"",
                ))
            }),
        },
        Dim {
            name: "path: id length, push",
            sizes: doublings(256, 15000),
            bytes_of: None,
            make: Box::new(|c, n| {
                let host = c.host.clone();
                fixed(json_post(
                    &format!("/v1/push/bench/{}", "a".repeat(n)),
                    &host,
                    b"{\"data\":{}}",
                ))
            }),
        },
        Dim {
            name: "path: escaped id (%41)",
            sizes: doublings(128, 5000),
            bytes_of: None,
            make: Box::new(|c, n| {
                fixed(request(
                    "GET",
                    &format!("/v1/pull/bench/{}", "%41".repeat(n)),
                    &c.host.clone(),
                    &[],
                    b"",
                ))
            }),
        },
        Dim {
            name: "path: segment count",
            sizes: doublings(128, 7000),
            bytes_of: None,
            make: Box::new(|c, n| {
                fixed(request(
                    "GET",
                    &format!("/v1/pull/{}", repeat_join("a", n, "/")),
                    &c.host.clone(),
                    &[],
                    b"",
                ))
            }),
        },
        Dim {
            name: "bundle: identity length",
            sizes: doublings(256, 15000),
            bytes_of: None,
            make: Box::new(|c, n| {
                fixed(request(
                    "GET",
                    &format!("/v1/pull/users/{}/profile", "a".repeat(n)),
                    &c.host.clone(),
                    &[],
                    b"",
                ))
            }),
        },
        Dim {
            name: "cap: scope collections",
            sizes: doublings(32, 600),
            bytes_of: None,
            make: Box::new(|c, n| {
                let host = c.host.clone();
                let cols: Vec<String> = (0..n).map(|i| format!("c{i}")).collect();
                let scope = scope_object(&["read", "write", "list"], &cols, None);
                let mut s = Signer;
                let target = format!("/v1/pull/users/{}/settings", root_user_id());
                Box::new(move || s.get(&host, &target, scope.clone()))
            }),
        },
        Dim {
            name: "cap: ops x collections",
            sizes: doublings(16, 400),
            bytes_of: None,
            make: Box::new(|c, n| {
                let host = c.host.clone();
                let cols: Vec<String> = (0..n).map(|i| format!("c{i}")).collect();
                let ops: Vec<&str> = std::iter::repeat_n("read", n).collect();
                let scope = scope_object(&ops, &cols, None);
                let mut s = Signer;
                let target = format!("/v1/pull/users/{}/settings", root_user_id());
                Box::new(move || s.get(&host, &target, scope.clone()))
            }),
        },
        Dim {
            name: "cap: scope glob vs path (backtrack)",
            sizes: doublings(64, 2800),
            bytes_of: None,
            make: Box::new(|c, n| {
                let host = c.host.clone();
                let pattern = format!("users/**{}b", "a".repeat(n));
                let scope = scope_object(&["read"], &["*".to_owned()], Some(&[pattern]));
                let mut s = Signer;
                let target = format!("/v1/pull/users/{}/settings", "a".repeat(2 * n));
                Box::new(move || s.get(&host, &target, scope.clone()))
            }),
        },
        Dim {
            name: "cap: many scope paths",
            sizes: doublings(16, 600),
            bytes_of: None,
            make: Box::new(|c, n| {
                let host = c.host.clone();
                let paths: Vec<String> = (0..n).map(|i| format!("**x{i}")).collect();
                let scope = scope_object(&["read"], &["*".to_owned()], Some(&paths));
                let mut s = Signer;
                let target = format!("/v1/pull/users/{}/settings", "a".repeat(8 * n));
                Box::new(move || s.get(&host, &target, scope.clone()))
            }),
        },
        Dim {
            name: "cap: scope paths x 50 batch entries",
            sizes: doublings(16, 512),
            bytes_of: None,
            make: Box::new(|c, n| {
                let host = c.host.clone();
                let paths: Vec<String> = (0..n).map(|i| format!("**x{i}**")).collect();
                let scope = scope_object(&["read"], &["*".to_owned()], Some(&paths));
                let sets: Vec<String> = (0..50)
                    .map(|i| format!("{{%22id%22:%22{i}{}%22}}", "a".repeat(100)))
                    .collect();
                let target = format!(
                    "/v1/batch/pull?collections=bench&params={{%22bench%22:[{}]}}",
                    sets.join(",")
                );
                let mut s = Signer;
                Box::new(move || s.get(&host, &target, scope.clone()))
            }),
        },
        Dim {
            name: "chunked: 1-byte chunks",
            sizes: doublings(1024, 65536),
            bytes_of: None,
            make: Box::new(|c, n| {
                let data = format!("{{\"s\":\"{}\"}}", "a".repeat(n));
                let body = push_body(&data, None);
                let mut chunked = Vec::new();
                for b in &body {
                    chunked.extend_from_slice(b"1\r\n");
                    chunked.push(*b);
                    chunked.extend_from_slice(b"\r\n");
                }
                chunked.extend_from_slice(b"0\r\n\r\n");
                let hs = vec![
                    ("Content-Type".to_owned(), "application/json".to_owned()),
                    ("Transfer-Encoding".to_owned(), "chunked".to_owned()),
                ];
                fixed(request(
                    "POST",
                    &fresh_target("chunked"),
                    &c.host.clone(),
                    &hs,
                    &chunked,
                ))
            }),
        },
        Dim {
            name: "chunked: extensions and trailers",
            sizes: doublings(256, 15000),
            bytes_of: None,
            make: Box::new(|c, n| {
                let body = push_body("{}", None);
                let mut chunked =
                    format!("{:x};{}\r\n", body.len(), "e".repeat(n.min(4000))).into_bytes();
                chunked.extend_from_slice(&body);
                chunked.extend_from_slice(
                    format!("\r\n0\r\nX-T: {}\r\n\r\n", "t".repeat(n)).as_bytes(),
                );
                let hs = vec![
                    ("Content-Type".to_owned(), "application/json".to_owned()),
                    ("Transfer-Encoding".to_owned(), "chunked".to_owned()),
                ];
                fixed(request(
                    "POST",
                    &fresh_target("trail"),
                    &c.host.clone(),
                    &hs,
                    &chunked,
                ))
            }),
        },
    ];

    if selected("head: trickled") {
        trickled_head(&mut client, &clock);
    }

    println!();
    println!("## Server CPU per request byte as each dimension doubles");
    println!();
    println!("| dimension                          |       n |    bytes |     us/req |    ns/B | x prev | marg ns/B | st  |");
    println!("|---|---|---|---|---|---|---|---|");
    for d in dims {
        if !selected(d.name) {
            continue;
        }
        run_dim(&mut client, &clock, &opts, d);
    }
    drop(stop);
    let _ = handle.join();
}
