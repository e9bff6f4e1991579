//! Crash safety of the real binary over the filesystem store.
//!
//! * `acknowledged_pushes_survive_sigkill`: concurrent clients push while the
//!   server is SIGKILLed mid-load; after a restart on the same data directory
//!   every acknowledged push must be there (same-key chains at their last
//!   acknowledged version or a later in-flight one), every served document
//!   must be intact, and no temp file may survive. Three kill/restart cycles.
//! * `sixty_four_concurrent_writers_survive_sigkill`: the same with 64
//!   concurrent writers, so that the store's group commit has full batches
//!   (one log fsync covering many pushes) when the kill lands. Two cycles.
//! * `corrupt_document_files_read_as_missing`: garbage in a `.~doc` file is
//!   served as a missing document, logged, and can be overwritten with
//!   `baseHash: ""` (documents.md §5.2, §6).
//! * `acknowledged_appends_survive_sigkill`: concurrent writers append to
//!   shared append-only logs (single-document and chunked layouts) while the
//!   server is SIGKILLed; after each restart every acknowledged element is
//!   in its log exactly once, with the answered `ts`, in order, and nothing
//!   but at most one in-flight element per writer was added. Three cycles.
//! * `chunked_logs_read_back_across_restarts`: a chunked log reads back the
//!   same after restarts, stays chunked when `chunkSize` is removed from the
//!   config, and a single-document log is migrated into chunks when it is
//!   added.
//!
//! Talks raw HTTP/1.1 over `std::net::TcpStream`.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use starfish::proto::hash::document_hash;
use starfish::proto::json::{parse, Value};

// ---------------------------------------------------------------------------
// Temp directory

/// A unique directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        static N: AtomicU64 = AtomicU64::new(0);
        let p = std::env::temp_dir().join(format!(
            "starfish-crash-{tag}-{}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed),
            now_nanos()
        ));
        fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn now_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// xorshift64*: good enough for jittering delays and sizes.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

// ---------------------------------------------------------------------------
// The server process

struct Server {
    child: Child,
    port: u16,
    log: Arc<Mutex<Vec<String>>>,
    reader: Option<JoinHandle<()>>,
}

fn parse_port(line: &str) -> Option<u16> {
    let rest = &line[line.find("listening on http://127.0.0.1:")? + 30..];
    let end = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    rest[..end].parse().ok()
}

impl Server {
    /// Start `starfish serve` (embedded default config) on `dir` and wait
    /// for its "listening on" line.
    fn start(dir: &Path) -> Server {
        Server::start_with(dir, None)
    }

    /// Start `starfish serve` on `dir` with a config file (`None`: the
    /// embedded default config).
    fn start_with(dir: &Path, config: Option<&Path>) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_starfish"))
            .args(["serve", "--listen", "127.0.0.1:0", "--base-path", "/v1"])
            .args(["--log-level", "info"])
            .args(
                config
                    .map(|c| ["--config".as_ref(), c.as_os_str()])
                    .into_iter()
                    .flatten(),
            )
            .arg("--data-dir")
            .arg(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn starfish");
        let stderr = child.stderr.take().expect("stderr");
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel();
        let sink = Arc::clone(&log);
        let reader = thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some(port) = parse_port(&line) {
                    if let Some(tx) = tx.take() {
                        let _ = tx.send(port);
                    }
                }
                sink.lock().unwrap().push(line);
            }
        });
        match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(port) => Server {
                child,
                port,
                log,
                reader: Some(reader),
            },
            Err(_) => {
                let _ = child.kill();
                let status = child.wait();
                let _ = reader.join();
                panic!(
                    "server did not start ({status:?}); stderr:\n{}",
                    log.lock().unwrap().join("\n")
                );
            }
        }
    }

    fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// SIGKILL (what `Child::kill` sends on Unix), reap, and return the
    /// complete stderr.
    fn kill(mut self) -> Vec<String> {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
        self.log_lines()
    }

    fn log_lines(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    /// Wait (briefly) for a stderr line containing all of `needles`.
    fn wait_log(&self, needles: &[&str]) -> bool {
        let deadline = Instant::now() + Duration::from_secs(3);
        loop {
            if self
                .log_lines()
                .iter()
                .any(|l| needles.iter().all(|n| l.contains(n)))
            {
                return true;
            }
            if Instant::now() > deadline {
                return false;
            }
            thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Log lines that indicate a server-side failure.
fn bad_log_lines(log: &[String]) -> Vec<String> {
    log.iter()
        .filter(|l| l.starts_with("ERROR") || l.contains("panicked"))
        .cloned()
        .collect()
}

// ---------------------------------------------------------------------------
// A tiny HTTP/1.1 client

struct Resp {
    status: u16,
    body: Vec<u8>,
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn bad(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

/// One request on a fresh connection. Any transport failure or a response
/// cut short is an `Err` (the request may or may not have been processed).
fn http(port: u16, method: &str, path: &str, body: Option<&[u8]>) -> io::Result<Resp> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    s.set_write_timeout(Some(Duration::from_secs(10)))?;
    s.set_nodelay(true)?;
    let mut req =
        format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n");
    if let Some(b) = body {
        req.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            b.len()
        ));
    }
    req.push_str("\r\n");
    let mut out = req.into_bytes();
    out.extend_from_slice(body.unwrap_or_default());
    s.write_all(&out)?;

    let mut raw = Vec::new();
    let mut chunk = [0u8; 16384];
    let mut head_end = None;
    let mut content_length: Option<usize> = None;
    loop {
        if let Some(he) = head_end {
            if content_length.is_some_and(|cl| raw.len() >= he + cl) {
                break;
            }
        }
        let n = s.read(&mut chunk)?;
        if n == 0 {
            break;
        }
        raw.extend_from_slice(&chunk[..n]);
        if head_end.is_none() {
            if let Some(i) = find(&raw, b"\r\n\r\n") {
                head_end = Some(i + 4);
                let head = String::from_utf8_lossy(&raw[..i]).to_ascii_lowercase();
                if head.contains("transfer-encoding: chunked") {
                    return Err(bad("chunked responses are not handled by this client"));
                }
                content_length = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse().ok());
            }
        }
    }
    let he = head_end.ok_or_else(|| io::Error::from(io::ErrorKind::UnexpectedEof))?;
    let status_line = String::from_utf8_lossy(&raw[..he]);
    let status: u16 = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad(format!("bad status line {status_line:?}")))?;
    let body = match content_length {
        Some(cl) if raw.len() < he + cl => {
            return Err(io::Error::from(io::ErrorKind::UnexpectedEof))
        }
        Some(cl) => raw[he..he + cl].to_vec(),
        None => raw[he..].to_vec(),
    };
    Ok(Resp { status, body })
}

fn notes_path(verb: &str, key: &str) -> String {
    format!("/v1/{verb}/public/notes/{key}")
}

enum Push {
    Ok(String),
    Conflict,
    /// No (complete) answer: the server is gone.
    Dead,
    Other(u16, String),
}

fn push(port: u16, key: &str, data: &str, base: Option<&str>) -> Push {
    let base = match base {
        Some(b) => format!("\"{b}\""),
        None => "null".to_owned(),
    };
    let body = format!(r#"{{"data":{data},"baseHash":{base}}}"#);
    match http(
        port,
        "POST",
        &notes_path("push", key),
        Some(body.as_bytes()),
    ) {
        Err(_) => Push::Dead,
        Ok(r) if r.status == 200 => {
            let hash = parse(&r.body)
                .ok()
                .and_then(|v| Some(v.as_object()?.get("hash")?.as_str()?.to_owned()));
            match hash {
                Some(h) => Push::Ok(h),
                None => Push::Other(200, String::from_utf8_lossy(&r.body).into_owned()),
            }
        }
        Ok(r) if r.status == 409 => Push::Conflict,
        Ok(r) => Push::Other(r.status, String::from_utf8_lossy(&r.body).into_owned()),
    }
}

/// A pull answer: `data` and `hash`.
struct Pulled {
    data: Value,
    hash: String,
}

fn pull(port: u16, key: &str) -> Result<Pulled, String> {
    let r = http(port, "GET", &notes_path("pull", key), None)
        .map_err(|e| format!("pull {key}: transport: {e}"))?;
    let text = String::from_utf8_lossy(&r.body).into_owned();
    if r.status != 200 {
        return Err(format!("pull {key}: status {} {text}", r.status));
    }
    let v = parse(&r.body).map_err(|e| format!("pull {key}: {e}: {text}"))?;
    let o = v
        .as_object()
        .ok_or_else(|| format!("pull {key}: not an object: {text}"))?;
    let hash = o
        .get("hash")
        .and_then(Value::as_str)
        .ok_or_else(|| format!("pull {key}: no string hash: {text}"))?
        .to_owned();
    let data = o
        .get("data")
        .cloned()
        .ok_or_else(|| format!("pull {key}: no data: {text}"))?;
    if data.as_object().is_none() {
        return Err(format!("pull {key}: data is not an object: {text}"));
    }
    if o.get("timestamp").and_then(Value::as_f64).is_none() {
        return Err(format!("pull {key}: no timestamp: {text}"));
    }
    Ok(Pulled { data, hash })
}

// ---------------------------------------------------------------------------
// Load generation

/// One push a client sent. `hash` is computed locally from the data, so it
/// is known even when no answer came.
struct Attempt {
    key: String,
    base: Option<String>,
    hash: String,
    acked: bool,
    /// Answered 409: must never be stored.
    rejected: bool,
}

#[derive(Default)]
struct Outcome {
    attempts: Vec<Attempt>,
    problems: Vec<String>,
}

/// A unique document body (unique per writer, cycle and sequence number,
/// so every attempt has its own hash) with a size between ~200 B and ~12 KB.
fn make_data(writer: &str, cycle: u32, n: u64, pad: usize) -> String {
    format!(
        r#"{{"w":"{writer}","c":{cycle},"n":{n},"f":{f},"neg":-{n}.25,"s":"é😀\"q\\ \u0001","nested":{{"arr":[1,"x",null,true,{{"z":{n}}}],"b":false,"e":{{}}}},"pad":"{p}"}}"#,
        f = n as f64 / 10.0,
        p = "x".repeat(pad),
    )
}

fn local_hash(data: &str) -> String {
    document_hash(&parse(data.as_bytes()).expect("test data is JSON"))
}

/// Upper bound on pushes per thread per cycle (keeps verification bounded).
const MAX_PUSHES: u64 = 3000;

/// Create-only pushes of fresh keys `c<cycle>-<writer>-<n>`.
fn create_worker(
    port: u16,
    writer: String,
    cycle: u32,
    seed: u64,
    stop: Arc<AtomicBool>,
    acks: Arc<AtomicUsize>,
) -> Outcome {
    let mut rng = Rng(seed | 1);
    let mut out = Outcome::default();
    for n in 0..MAX_PUSHES {
        if stop.load(Ordering::SeqCst) {
            break;
        }
        let key = format!("c{cycle}-{writer}-{n}");
        let data = make_data(&writer, cycle, n, rng.below(12_000) as usize);
        let hash = local_hash(&data);
        out.attempts.push(Attempt {
            key: key.clone(),
            base: None,
            hash: hash.clone(),
            acked: false,
            rejected: false,
        });
        match push(port, &key, &data, None) {
            Push::Ok(h) => {
                if h != hash {
                    out.problems
                        .push(format!("{key}: server hash {h} != local hash {hash}"));
                }
                out.attempts.last_mut().unwrap().acked = true;
                acks.fetch_add(1, Ordering::SeqCst);
            }
            Push::Dead => break,
            Push::Conflict => {
                out.problems
                    .push(format!("{key}: unexpected 409 on create"));
                break;
            }
            Push::Other(s, b) => {
                out.problems.push(format!("{key}: unexpected {s} {b}"));
                break;
            }
        }
    }
    out
}

/// Updates of one key, each push based on the last hash this writer saw.
/// With `shared`, other writers update the same key: a 409 means "pull and
/// retry"; without, a 409 is a bug. Starts from the key's current state so
/// chains continue across restarts.
#[allow(clippy::too_many_arguments)]
fn chain_worker(
    port: u16,
    key: String,
    writer: String,
    cycle: u32,
    shared: bool,
    seed: u64,
    stop: Arc<AtomicBool>,
    acks: Arc<AtomicUsize>,
) -> Outcome {
    let mut rng = Rng(seed | 1);
    let mut out = Outcome::default();
    let current = |out: &mut Outcome| -> Option<Option<String>> {
        match pull(port, &key) {
            Ok(p) if p.hash.is_empty() => Some(None),
            Ok(p) => Some(Some(p.hash)),
            Err(e) => {
                // A transport error means the server is gone (killed); an
                // answer that is not a good pull is a bug.
                if !e.contains(": transport: ") {
                    out.problems.push(e);
                }
                None
            }
        }
    };
    let Some(mut base) = current(&mut out) else {
        return out;
    };
    for n in 0..MAX_PUSHES {
        if stop.load(Ordering::SeqCst) {
            break;
        }
        let data = make_data(&writer, cycle, n, rng.below(12_000) as usize);
        let hash = local_hash(&data);
        out.attempts.push(Attempt {
            key: key.clone(),
            base: base.clone(),
            hash: hash.clone(),
            acked: false,
            rejected: false,
        });
        match push(port, &key, &data, base.as_deref()) {
            Push::Ok(h) => {
                if h != hash {
                    out.problems
                        .push(format!("{key}: server hash {h} != local hash {hash}"));
                }
                out.attempts.last_mut().unwrap().acked = true;
                acks.fetch_add(1, Ordering::SeqCst);
                base = Some(h);
            }
            Push::Dead => break,
            Push::Conflict if shared => {
                out.attempts.last_mut().unwrap().rejected = true;
                match current(&mut out) {
                    Some(b) => base = b,
                    None => break,
                }
            }
            Push::Conflict => {
                out.problems
                    .push(format!("{key}: unexpected 409 on a single-writer chain"));
                break;
            }
            Push::Other(s, b) => {
                out.problems.push(format!("{key}: unexpected {s} {b}"));
                break;
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------
// The model of what may be stored

/// Every version ever pushed to a key (`parent[hash]` = the `baseHash` it
/// was pushed on, `None` for a create) and which of them were acknowledged.
#[derive(Default)]
struct KeyModel {
    parent: HashMap<String, Option<String>>,
    acked: HashSet<String>,
}

#[derive(Default)]
struct CycleStats {
    attempts: usize,
    acked: usize,
    rejected: usize,
    unanswered: usize,
}

fn absorb(model: &mut HashMap<String, KeyModel>, out: Outcome, stats: &mut CycleStats) {
    for a in out.attempts {
        stats.attempts += 1;
        if a.rejected {
            // Not in the model: a rejected version showing up is an error.
            stats.rejected += 1;
            continue;
        }
        let m = model.entry(a.key).or_default();
        let base = a.base.filter(|b| !b.is_empty());
        let prev = m.parent.insert(a.hash.clone(), base);
        assert!(prev.is_none(), "test bug: two attempts with one hash");
        if a.acked {
            stats.acked += 1;
            m.acked.insert(a.hash);
        } else {
            stats.unanswered += 1;
        }
    }
}

/// Check every modelled key through pulls. Returns how many keys hold a
/// version that was never acknowledged (an in-flight write that landed).
fn verify_pulls(port: u16, model: &HashMap<String, KeyModel>, problems: &mut Vec<String>) -> usize {
    let mut landed_unacked = 0;
    let mut keys: Vec<&String> = model.keys().collect();
    keys.sort();
    for key in keys {
        let m = &model[key];
        let p = match pull(port, key) {
            Ok(p) => p,
            Err(e) => {
                problems.push(e);
                continue;
            }
        };
        if p.hash.is_empty() {
            if !p.data.as_object().is_some_and(|o| o.is_empty()) {
                problems.push(format!("{key}: hash \"\" with non-empty data"));
            }
            if !m.acked.is_empty() {
                problems.push(format!(
                    "{key}: missing, but {} acknowledged version(s) were pushed",
                    m.acked.len()
                ));
            }
            continue;
        }
        let recomputed = document_hash(&p.data);
        if recomputed != p.hash {
            problems.push(format!(
                "{key}: served hash {} but data hashes to {recomputed}",
                p.hash
            ));
        }
        if !m.parent.contains_key(&p.hash) {
            problems.push(format!("{key}: served version {} was never pushed", p.hash));
            continue;
        }
        // The write history of a key is a chain; the stored version must
        // have every acknowledged version among its ancestors.
        let mut ancestry = HashSet::new();
        let mut cur = Some(p.hash.clone());
        while let Some(h) = cur {
            if !ancestry.insert(h.clone()) {
                break;
            }
            cur = m.parent.get(&h).cloned().flatten();
        }
        for a in &m.acked {
            if !ancestry.contains(a) {
                problems.push(format!(
                    "{key}: acknowledged version {a} lost (stored {}, not a descendant)",
                    p.hash
                ));
            }
        }
        if !m.acked.contains(&p.hash) {
            landed_unacked += 1;
        }
    }
    landed_unacked
}

/// Every regular file under `dir`, relative.
fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap().flatten() {
            let ft = e.file_type().unwrap();
            if ft.is_dir() {
                stack.push(e.path());
            } else {
                out.push(e.path().strip_prefix(dir).unwrap().to_path_buf());
            }
        }
    }
    out
}

fn temp_files(dir: &Path) -> Vec<PathBuf> {
    walk(dir)
        .into_iter()
        .filter(|p| p.to_string_lossy().contains(".~tmp."))
        .collect()
}

/// The store's write-ahead log files (`<data>/.~wal.<generation>`).
fn is_log_file(rel: &Path) -> bool {
    rel.parent() == Some(Path::new(""))
        && rel
            .to_string_lossy()
            .strip_prefix(".~wal.")
            .is_some_and(|g| g.parse::<u64>().is_ok())
}

/// The data directory itself: only `.~doc` files of modelled keys, each an
/// intact envelope whose hash matches its data, and the write-ahead log;
/// no temp files.
fn verify_disk(dir: &Path, model: &HashMap<String, KeyModel>, problems: &mut Vec<String>) {
    for rel in walk(dir) {
        if is_log_file(&rel) {
            continue;
        }
        let name = rel.to_string_lossy().into_owned();
        let Some(key) = name
            .strip_prefix("public/notes/")
            .and_then(|n| n.strip_suffix(".~doc"))
        else {
            problems.push(format!("unexpected file in data dir: {name}"));
            continue;
        };
        if !model.contains_key(key) {
            problems.push(format!("document file for unknown key: {name}"));
        }
        let raw = fs::read(dir.join(&rel)).unwrap();
        let env = match parse(&raw) {
            Ok(Value::Object(o)) => o,
            _ => {
                problems.push(format!("{name}: not a JSON object on disk"));
                continue;
            }
        };
        let data = env.get("data").cloned().unwrap_or(Value::Null);
        let hash = env.get("hash").and_then(Value::as_str).unwrap_or("");
        if env.get("v").and_then(Value::as_f64) != Some(1.0)
            || env.get("ts").and_then(Value::as_f64).is_none()
            || data.as_object().is_none()
            || document_hash(&data) != hash
        {
            problems.push(format!("{name}: damaged envelope on disk"));
        }
    }
}

// ---------------------------------------------------------------------------
// Tests

/// Kill/restart cycles of the append test.
const CYCLES: u32 = 3;

/// How many clients of each kind push during a kill cycle.
struct Load {
    /// Create-only pushes of fresh keys.
    creators: usize,
    /// Update chains, one key each.
    chains: usize,
    /// Update chains all on the one key `shared` (409 means retry).
    shared: usize,
    /// Acknowledgements to wait for before the kill.
    min_acks: usize,
}

/// `cycles` rounds of: `load` pushes against the real binary, SIGKILL after
/// a random 200-500 ms (and once `load.min_acks` pushes were acknowledged),
/// restart on the same data directory, then check every key ever pushed
/// through pulls and on disk.
fn kill_cycles(tag: &str, cycles: u32, load: Load) {
    let started = Instant::now();
    let seed = now_nanos() | 1;
    eprintln!("{tag} crash test seed {seed:#x}");
    let mut rng = Rng(seed);
    let dir = TempDir::new(tag);
    let mut model: HashMap<String, KeyModel> = HashMap::new();
    let mut server = Server::start(dir.path());

    for cycle in 1..=cycles {
        let port = server.port;
        let stop = Arc::new(AtomicBool::new(false));
        let acks = Arc::new(AtomicUsize::new(0));
        let mut handles = Vec::new();
        for t in 0..load.creators {
            let (stop, acks, s) = (Arc::clone(&stop), Arc::clone(&acks), rng.next());
            handles.push(thread::spawn(move || {
                create_worker(port, format!("t{t}"), cycle, s, stop, acks)
            }));
        }
        for t in 0..load.chains {
            let (stop, acks, s) = (Arc::clone(&stop), Arc::clone(&acks), rng.next());
            handles.push(thread::spawn(move || {
                chain_worker(
                    port,
                    format!("chain-{t}"),
                    format!("u{t}"),
                    cycle,
                    false,
                    s,
                    stop,
                    acks,
                )
            }));
        }
        for t in 0..load.shared {
            let (stop, acks, s) = (Arc::clone(&stop), Arc::clone(&acks), rng.next());
            handles.push(thread::spawn(move || {
                chain_worker(
                    port,
                    "shared".into(),
                    format!("s{t}"),
                    cycle,
                    true,
                    s,
                    stop,
                    acks,
                )
            }));
        }

        let delay = Duration::from_millis(200 + rng.below(301));
        thread::sleep(delay);
        // On a loaded machine the acknowledgements can take longer than the
        // delay: kill only once enough were acknowledged (or give up after
        // 30 s, which the `acked > 0` check below reports).
        let waiting = Instant::now();
        while acks.load(Ordering::SeqCst) < load.min_acks.max(1)
            && waiting.elapsed() < Duration::from_secs(30)
        {
            thread::sleep(Duration::from_millis(10));
        }
        let alive_before_kill = server.alive();
        let old_log = server.kill();
        stop.store(true, Ordering::SeqCst);

        let mut problems = Vec::new();
        if !alive_before_kill {
            problems.push("server died on its own under load".to_owned());
        }
        for l in bad_log_lines(&old_log) {
            problems.push(format!("killed server logged: {l}"));
        }
        let mut stats = CycleStats::default();
        for h in handles {
            let out = h.join().expect("client thread panicked");
            problems.extend(out.problems.iter().cloned());
            absorb(&mut model, out, &mut stats);
        }
        let temps_after_kill = temp_files(dir.path()).len();

        server = Server::start(dir.path());
        let landed = verify_pulls(server.port, &model, &mut problems);
        let leftover_temps = temp_files(dir.path());
        if !leftover_temps.is_empty() {
            problems.push(format!("temp files survive restart: {leftover_temps:?}"));
        }
        verify_disk(dir.path(), &model, &mut problems);
        for l in bad_log_lines(&server.log_lines()) {
            problems.push(format!("restarted server logged: {l}"));
        }
        if !server.alive() {
            problems.push("restarted server exited".to_owned());
        }

        eprintln!(
            "{tag} cycle {cycle}: killed after {delay:?}; {} pushes sent: {} acknowledged, {} \
             rejected (409), {} unanswered; {temps_after_kill} temp file(s) left by the kill; \
             {landed} key(s) (all cycles) hold an unacknowledged in-flight version; {} keys \
             verified",
            stats.attempts,
            stats.acked,
            stats.rejected,
            stats.unanswered,
            model.len()
        );
        assert!(
            problems.is_empty(),
            "{tag} cycle {cycle} (seed {seed:#x}): {} problem(s):\n{}",
            problems.len(),
            problems.join("\n")
        );
        assert!(stats.acked > 0, "cycle {cycle}: no push was acknowledged");
    }
    drop(server);
    eprintln!("{tag} crash test took {:?}", started.elapsed());
}

#[test]
fn acknowledged_pushes_survive_sigkill() {
    let load = Load {
        creators: 5,
        chains: 3,
        shared: 2,
        min_acks: 1,
    };
    kill_cycles("kill", 3, load);
}

#[test]
fn sixty_four_concurrent_writers_survive_sigkill() {
    let load = Load {
        creators: 52,
        chains: 8,
        shared: 4,
        // Ten per writer: the kill lands in steady full batches.
        min_acks: 640,
    };
    kill_cycles("kill64", 2, load);
}

#[test]
fn corrupt_document_files_read_as_missing() {
    let dir = TempDir::new("corrupt");
    let notes = dir.path().join("public/notes");
    fs::create_dir_all(&notes).unwrap();
    // Before start: garbage (not UTF-8), a truncated envelope (what a
    // non-atomic writer would leave), an empty file, and a stale temp file.
    fs::write(
        notes.join("garbage.~doc"),
        b"\xff\xfe\x00garbage\x9c{\"v\":",
    )
    .unwrap();
    fs::write(notes.join("truncated.~doc"), br#"{"v":1,"data":{"a":"#).unwrap();
    fs::write(notes.join("empty.~doc"), b"").unwrap();
    let stale = notes.join("garbage.~tmp.999999.7");
    fs::write(
        &stale,
        br#"{"v":1,"data":{"stale":true},"ts":1,"hash":"x"}"#,
    )
    .unwrap();

    let mut server = Server::start(dir.path());
    let port = server.port;
    assert!(!stale.exists(), "stale temp file not removed at startup");

    // A live document, then corrupted behind the running server's back.
    let Push::Ok(old_hash) = push(port, "live", r#"{"x":1}"#, None) else {
        panic!("initial push failed");
    };
    fs::write(notes.join("live.~doc"), b"\x00\x01not json at all").unwrap();

    for key in ["garbage", "truncated", "live"] {
        let p = pull(port, key).unwrap();
        assert_eq!(p.hash, "", "{key}: corrupt doc must pull as missing");
        assert!(
            p.data.as_object().unwrap().is_empty(),
            "{key}: data must be {{}}"
        );
        assert!(
            server.wait_log(&["WARN", "not valid JSON", &format!("public/notes/{key}")]),
            "{key}: corrupt read not logged; log:\n{}",
            server.log_lines().join("\n")
        );

        // §5.2: a corrupt doc is present with hash "": null and any real
        // hash conflict, "" overwrites.
        assert!(
            matches!(push(port, key, r#"{"y":1}"#, None), Push::Conflict),
            "{key}: null"
        );
        assert!(
            matches!(
                push(port, key, r#"{"y":1}"#, Some(&old_hash)),
                Push::Conflict
            ),
            "{key}: stale hash"
        );
        let data = format!(r#"{{"fixed":"{key}","n":[1,2.5]}}"#);
        let Push::Ok(h) = push(port, key, &data, Some("")) else {
            panic!("{key}: baseHash \"\" must overwrite a corrupt document");
        };
        assert_eq!(h, local_hash(&data));
        let p = pull(port, key).unwrap();
        assert_eq!(p.hash, h);
        assert_eq!(document_hash(&p.data), h);
        assert_eq!(
            p.data
                .as_object()
                .unwrap()
                .get("fixed")
                .and_then(Value::as_str),
            Some(key)
        );
        // The file is an intact envelope again; a second "" now conflicts.
        assert!(matches!(
            parse(&fs::read(notes.join(format!("{key}.~doc"))).unwrap()),
            Ok(Value::Object(_))
        ));
        assert!(
            matches!(push(port, key, &data, Some("")), Push::Conflict),
            "{key}: second \"\""
        );
    }

    // An empty file is no document at all: missing on pull, created by a
    // plain create.
    let p = pull(port, "empty").unwrap();
    assert_eq!(p.hash, "");
    assert!(matches!(
        push(port, "empty", r#"{"e":1}"#, None),
        Push::Ok(_)
    ));

    assert!(server.alive(), "server exited");
    let health = http(port, "GET", "/v1/health", None).unwrap();
    assert_eq!(health.status, 200);
    let bad = bad_log_lines(&server.log_lines());
    assert!(bad.is_empty(), "server logged errors: {bad:?}");
}

// ---------------------------------------------------------------------------
// Append-only logs

/// Two public append-only collections: one single-document log, one in
/// chunks of 7 (so kills land on both tail appends and chunk rolls).
const APPEND_CONFIG: &str = r#"{"version":1,"collections":[
  {"name":"single","storagePath":"single/{id}","readRoles":["public"],"writeRoles":["public"],
   "encryption":"none","maxBodyBytes":100000,"appendOnly":{"requireAuthorSignature":false}},
  {"name":"chunked","storagePath":"chunked/{id}","readRoles":["public"],"writeRoles":["public"],
   "encryption":"none","maxBodyBytes":100000,"appendOnly":{"chunkSize":7,"requireAuthorSignature":false}}]}"#;

/// The logs the writers share: (collection, key).
const LOGS: [(&str, &str); 4] = [
    ("single", "a"),
    ("single", "b"),
    ("chunked", "a"),
    ("chunked", "b"),
];

/// One append a writer sent: its log, sequence number, and the answered
/// `ts` if it was acknowledged.
struct Sent {
    log: usize,
    n: u64,
    acked_ts: Option<f64>,
}

/// Sequential appends of one writer (`w`) to the shared logs until `stop`.
fn append_worker(
    port: u16,
    w: usize,
    cycle: u32,
    seed: u64,
    stop: Arc<AtomicBool>,
    acks: Arc<AtomicUsize>,
) -> Vec<Sent> {
    let mut rng = Rng(seed | 1);
    let mut sent = Vec::new();
    for n in 0..MAX_PUSHES {
        if stop.load(Ordering::SeqCst) {
            break;
        }
        let log = rng.below(LOGS.len() as u64) as usize;
        let (col, key) = LOGS[log];
        let body = format!(
            r#"{{"data":{{"w":{w},"c":{cycle},"n":{n},"pad":"{}"}}}}"#,
            "x".repeat(rng.below(2000) as usize)
        );
        let path = format!("/v1/push/{col}/{key}");
        let acked_ts = match http(port, "POST", &path, Some(body.as_bytes())) {
            Ok(r) if r.status == 200 => parse(&r.body)
                .ok()
                .and_then(|v| v.as_object()?.get("timestamp")?.as_f64()),
            Ok(r) => panic!(
                "append {path}: {} {}",
                r.status,
                String::from_utf8_lossy(&r.body)
            ),
            Err(_) => None,
        };
        let dead = acked_ts.is_none();
        if !dead {
            acks.fetch_add(1, Ordering::SeqCst);
        }
        sent.push(Sent { log, n, acked_ts });
        if dead {
            break; // the server is gone; this one is in flight
        }
    }
    sent
}

/// The elements of a log as (writer, cycle, n, ts).
fn read_log(port: u16, col: &str, key: &str) -> Result<Vec<(u64, u64, u64, f64)>, String> {
    let r = http(
        port,
        "GET",
        &format!("/v1/pull/{col}/{key}?full=true"),
        None,
    )
    .map_err(|e| format!("pull {col}/{key}: {e}"))?;
    let text = String::from_utf8_lossy(&r.body).into_owned();
    if r.status != 200 {
        return Err(format!("pull {col}/{key}: {} {text}", r.status));
    }
    let v = parse(&r.body).map_err(|e| format!("pull {col}/{key}: {e}"))?;
    let items = v
        .as_object()
        .and_then(|o| o.get("data")?.as_object()?.get("items")?.as_array())
        .ok_or_else(|| format!("pull {col}/{key}: no items array: {text}"))?;
    items
        .iter()
        .map(|el| {
            let o = el.as_object().ok_or("element is not an object")?;
            let d = o.get("data").and_then(Value::as_object).ok_or("no data")?;
            let f = |k: &str| d.get(k).and_then(Value::as_f64).ok_or(format!("no {k}"));
            let ts = o.get("ts").and_then(Value::as_f64).ok_or("no ts")?;
            Ok((f("w")? as u64, f("c")? as u64, f("n")? as u64, ts))
        })
        .collect::<Result<_, String>>()
        .map_err(|e| format!("{col}/{key}: {e}"))
}

#[test]
fn acknowledged_appends_survive_sigkill() {
    const WRITERS: usize = 6;
    let seed = now_nanos() | 1;
    eprintln!("append crash test seed {seed:#x}");
    let mut rng = Rng(seed);
    let dir = TempDir::new("append-kill");
    let config = dir.path().join("config.json");
    fs::write(&config, APPEND_CONFIG).unwrap();
    let data = dir.path().join("data");
    // (writer, cycle, n) -> (log, acked ts)
    let mut sent_all: HashMap<(u64, u64, u64), (usize, Option<f64>)> = HashMap::new();
    let mut server = Server::start_with(&data, Some(&config));
    for cycle in 1..=CYCLES {
        let port = server.port;
        let stop = Arc::new(AtomicBool::new(false));
        let acks = Arc::new(AtomicUsize::new(0));
        let handles: Vec<_> = (0..WRITERS)
            .map(|w| {
                let (stop, acks, s) = (Arc::clone(&stop), Arc::clone(&acks), rng.next());
                thread::spawn(move || (w, append_worker(port, w, cycle, s, stop, acks)))
            })
            .collect();
        let delay = Duration::from_millis(200 + rng.below(301));
        thread::sleep(delay);
        // On a loaded machine the first acknowledgement can take longer than the
        // delay: kill only once something was acknowledged (or give up after 30 s,
        // which the `acked > 0` check below reports).
        let started = Instant::now();
        while acks.load(Ordering::SeqCst) == 0 && started.elapsed() < Duration::from_secs(30) {
            thread::sleep(Duration::from_millis(10));
        }
        let alive_before_kill = server.alive();
        let old_log = server.kill();
        stop.store(true, Ordering::SeqCst);
        let mut problems = Vec::new();
        if !alive_before_kill {
            problems.push("server died on its own under load".to_owned());
        }
        for l in bad_log_lines(&old_log) {
            problems.push(format!("killed server logged: {l}"));
        }
        let (mut acked, mut unanswered) = (0, 0);
        for h in handles {
            let (w, sent) = h.join().expect("writer panicked");
            for s in sent {
                acked += usize::from(s.acked_ts.is_some());
                unanswered += usize::from(s.acked_ts.is_none());
                sent_all.insert((w as u64, u64::from(cycle), s.n), (s.log, s.acked_ts));
            }
        }

        server = Server::start_with(&data, Some(&config));
        let mut seen = HashSet::new();
        for (i, (col, key)) in LOGS.iter().enumerate() {
            let elements = match read_log(server.port, col, key) {
                Ok(e) => e,
                Err(e) => {
                    problems.push(e);
                    continue;
                }
            };
            if !elements.windows(2).all(|p| p[0].3 < p[1].3) {
                problems.push(format!("{col}/{key}: ts not strictly increasing"));
            }
            let mut last_n: HashMap<(u64, u64), u64> = HashMap::new();
            for &(w, c, n, ts) in &elements {
                if !seen.insert((w, c, n)) {
                    problems.push(format!("{col}/{key}: element {w}/{c}/{n} twice"));
                }
                match sent_all.get(&(w, c, n)) {
                    None => problems.push(format!("{col}/{key}: element {w}/{c}/{n} never sent")),
                    Some((log, _)) if *log != i => {
                        problems.push(format!("{col}/{key}: element {w}/{c}/{n} in the wrong log"))
                    }
                    Some((_, Some(t))) if *t != ts => problems.push(format!(
                        "{col}/{key}: element {w}/{c}/{n} has ts {ts}, acknowledged {t}"
                    )),
                    _ => {}
                }
                if last_n.insert((w, c), n).is_some_and(|prev| prev >= n) {
                    problems.push(format!("{col}/{key}: writer {w} out of order at {n}"));
                }
            }
        }
        for (k, (log, ts)) in &sent_all {
            if ts.is_some() && !seen.contains(k) {
                let (col, key) = LOGS[*log];
                problems.push(format!(
                    "acknowledged element {k:?} missing from {col}/{key}"
                ));
            }
        }
        let in_flight = seen
            .iter()
            .filter(|k| sent_all.get(k).is_some_and(|(_, t)| t.is_none()))
            .count();
        let temps = temp_files(&data);
        if !temps.is_empty() {
            problems.push(format!("temp files survive restart: {temps:?}"));
        }
        for l in bad_log_lines(&server.log_lines()) {
            problems.push(format!("restarted server logged: {l}"));
        }
        eprintln!(
            "append cycle {cycle}: killed after {delay:?}; {acked} appends acknowledged, \
             {unanswered} unanswered ({in_flight} of all cycles' unanswered ones landed)"
        );
        assert!(
            problems.is_empty(),
            "append cycle {cycle} (seed {seed:#x}): {} problem(s):\n{}",
            problems.len(),
            problems.join("\n")
        );
        assert!(acked > 0, "append cycle {cycle}: nothing acknowledged");
    }
}

/// `sha256(stableStringify({n, last}))`.
fn n_last_hash(n: usize, last: &Value) -> String {
    let mut o = starfish::proto::json::Object::new();
    o.insert("n", Value::Number(n as f64));
    o.insert("last", last.clone());
    document_hash(&Value::Object(o))
}

/// Pull `?<query>` of an append log: the elements' `data.i` and the hash.
fn log_is(port: u16, path: &str, query: &str) -> (Vec<u64>, String) {
    let r = http(port, "GET", &format!("/v1/pull/{path}?{query}"), None).expect("pull");
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    let is = v["data"]["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["data"]["i"].as_u64().unwrap())
        .collect();
    (is, v["hash"].as_str().unwrap().to_owned())
}

fn append_i(port: u16, path: &str, i: u64) -> String {
    let body = format!(r#"{{"data":{{"i":{i}}}}}"#);
    let r = http(
        port,
        "POST",
        &format!("/v1/push/{path}"),
        Some(body.as_bytes()),
    )
    .expect("append");
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    let hash = v["hash"].as_str().unwrap().to_owned();
    assert_eq!(
        hash,
        n_last_hash(
            i as usize + 1,
            &parse(format!(r#"{{"i":{i}}}"#).as_bytes()).unwrap()
        ),
        "element {i} is number {}",
        i + 1
    );
    hash
}

fn chunk_files(data: &Path, path: &str) -> usize {
    fs::read_dir(data.join(format!("{path}__seg")))
        .map(|rd| rd.count())
        .unwrap_or(0)
}

#[test]
fn chunked_logs_read_back_across_restarts() {
    let dir = TempDir::new("append-restart");
    let data = dir.path().join("data");
    let config = dir.path().join("config.json");
    let with_chunks = |chunk: Option<u32>| {
        let extra = chunk
            .map(|c| format!(r#","chunkSize":{c}"#))
            .unwrap_or_default();
        fs::write(
            &config,
            format!(
                r#"{{"collections":[{{"name":"ev","storagePath":"ev/{{id}}","readRoles":["public"],
                   "writeRoles":["public"],"appendOnly":{{"requireAuthorSignature":false{extra}}}}}]}}"#
            ),
        )
        .unwrap();
    };
    let all: Vec<u64> = (0..10).collect();

    // A chunked log: 10 elements in chunks of 4.
    with_chunks(Some(4));
    let server = Server::start_with(&data, Some(&config));
    let mut hash = String::new();
    for i in 0..10 {
        hash = append_i(server.port, "ev/a", i);
    }
    assert_eq!(chunk_files(&data, "ev/a"), 3);
    let before = log_is(server.port, "ev/a", "full=true");
    assert_eq!(before, (all.clone(), hash.clone()));
    drop(server);

    // Restarted: the same log, bounded reads included.
    let server = Server::start_with(&data, Some(&config));
    assert_eq!(log_is(server.port, "ev/a", "full=true"), before);
    assert_eq!(log_is(server.port, "ev/a", "last=5").0, &all[5..]);
    assert_eq!(log_is(server.port, "ev/a", "limit=1").0, [9]);
    append_i(server.port, "ev/a", 10);
    // Meanwhile a single-document log on another key.
    drop(server);
    with_chunks(None);
    let server = Server::start_with(&data, Some(&config));
    for i in 0..6 {
        append_i(server.port, "ev/b", i);
    }
    assert_eq!(chunk_files(&data, "ev/b"), 0);
    // chunkSize removed: ev/a stays chunked (its chunks are not orphaned).
    append_i(server.port, "ev/a", 11);
    assert_eq!(
        log_is(server.port, "ev/a", "full=1").0,
        (0..12).collect::<Vec<_>>()
    );
    assert_eq!(chunk_files(&data, "ev/a"), 3);
    drop(server);

    // chunkSize added: ev/b is migrated into chunks on its next append.
    with_chunks(Some(4));
    let server = Server::start_with(&data, Some(&config));
    let hash = append_i(server.port, "ev/b", 6);
    assert_eq!(chunk_files(&data, "ev/b"), 2);
    drop(server);
    let server = Server::start_with(&data, Some(&config));
    assert_eq!(
        log_is(server.port, "ev/b", "full=1"),
        ((0..7).collect::<Vec<_>>(), hash)
    );
    let cp = {
        let r = http(server.port, "GET", "/v1/pull/ev/b?last=3", None).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        v["data"]["items"][0]["ts"].as_u64().unwrap()
    };
    assert_eq!(
        log_is(server.port, "ev/b", &format!("checkpoint={cp}")).0,
        [5, 6]
    );
    assert!(bad_log_lines(&server.log_lines()).is_empty());
}
