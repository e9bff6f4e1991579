//! Storage quotas end to end (`--max-store-bytes`, `--max-documents`,
//! `--min-free-bytes`): a push that would exceed them is answered
//! `507 {"error":"Insufficient storage"}` and changes nothing, on every
//! write path (JSON, binary, bundle member); pulls keep working; deletes
//! (the TTL sweep) and a restart with a raised quota make room again; the
//! accounting holds under concurrent pushes and across restarts. Last, the
//! real binary: the flags and the rate-limited log line of each refusal.

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

const CONFIG: &str = r#"{
  "version": 1,
  "collections": [
    {"name": "notes", "storagePath": "notes/{id}", "readRoles": ["public"], "writeRoles": ["public"]},
    {"name": "blob", "storagePath": "blob/{id}", "readRoles": ["public"], "writeRoles": ["public"],
     "allowedMimeTypes": ["text/plain"]},
    {"name": "eph", "storagePath": "eph/{id}", "readRoles": ["public"], "writeRoles": ["public"],
     "ttlMs": 300},
    {"name": "b1", "bundle": "bun", "storagePath": "bun/{id}", "readRoles": ["public"], "writeRoles": ["public"]},
    {"name": "b2", "bundle": "bun", "storagePath": "bun/{id}", "readRoles": ["public"], "writeRoles": ["public"]}
  ]
}"#;

const FULL: &str = r#"{"error":"Insufficient storage"}"#;

/// A push body creating a document whose `text` has `len` characters.
fn body(len: usize) -> String {
    format!(
        r#"{{"data":{{"text":"{}"}},"baseHash":null}}"#,
        "x".repeat(len)
    )
}

fn push(s: &TestServer, path: &str, len: usize) -> Resp {
    s.post_json(&format!("/v1/push/{path}"), &body(len))
}

fn push_ok(s: &TestServer, path: &str, len: usize) -> String {
    let r = push(s, path, len);
    assert_eq!(r.status, 200, "{path}: {}", r.text());
    r.json()["hash"].as_str().unwrap().to_owned()
}

fn push_binary(s: &TestServer, path: &str, bytes: &[u8]) -> Resp {
    Req::new("POST", &format!("/v1/push/{path}"))
        .header("Content-Type", "text/plain")
        .body(bytes)
        .send(s)
}

/// Every file under `dir` but the store's write-ahead log (`.~wal.<n>` in
/// `dir`): (relative path, size).
fn files(dir: &Path) -> Vec<(String, u64)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            } else {
                let rel = e.path().strip_prefix(dir).unwrap().display().to_string();
                if d == dir && rel.starts_with(".~wal.") {
                    continue;
                }
                out.push((rel, e.metadata().unwrap().len()));
            }
        }
    }
    out.sort();
    out
}

/// The value files under `dir`, and no temp file among them.
#[track_caller]
fn value_files(dir: &Path) -> Vec<(String, u64)> {
    let all = files(dir);
    assert!(
        all.iter()
            .all(|(p, _)| p.ends_with(".~doc") || p.ends_with(".~bin")),
        "nothing half-written: {all:?}"
    );
    all
}

#[track_caller]
fn assert_pull(s: &TestServer, path: &str, hash: &str, len: usize) {
    let r = s.get(&format!("/v1/pull/{path}"));
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(v["hash"], hash, "{path}");
    assert_eq!(
        v["data"]["text"].as_str().map(str::len),
        Some(len),
        "{path}"
    );
}

#[test]
fn the_document_quota_refuses_every_write_path_with_507_and_changes_nothing() {
    let s = Setup::new(CONFIG)
        .tweak(|o| o.quota.max_documents = Some(3))
        .start();
    let a = push_ok(&s, "notes/a", 10);
    let r = push_binary(&s, "blob/c", b"hello");
    assert_eq!(r.status, 200, "{}", r.text());
    let m = push_ok(&s, "bun/x/b1", 5);
    let before = value_files(&s.data_dir);
    assert_eq!(before.len(), 3);

    // The first refused push of each kind: 507, the official error shape.
    push(&s, "notes/d", 10).assert_json(507, FULL);
    push_binary(&s, "blob/e", b"hi").assert_json(507, FULL);
    push(&s, "bun/x/b2", 5).assert_json(507, FULL);
    assert_eq!(value_files(&s.data_dir), before, "nothing changed on disk");

    // Stored documents are intact and readable; the refused ones are absent.
    assert_pull(&s, "notes/a", &a, 10);
    let r = s.get("/v1/pull/blob/c");
    assert_eq!((r.status, r.body.as_slice()), (200, &b"hello"[..]));
    let r = s.get("/v1/pull/notes/d");
    assert_eq!((r.status, r.json()["hash"].as_str()), (200, Some("")));
    assert_eq!(s.get("/v1/pull/blob/e").status, 404);
    let bundle = s.get("/v1/pull/bun/x").json();
    assert_eq!(bundle["collections"]["b1"]["hash"], m.as_str());
    assert_eq!(bundle["collections"]["b2"]["hash"], "");

    // Replacing a stored document adds no document: it still passes.
    let r = s.post_json(
        "/v1/push/notes/a",
        &format!(r#"{{"data":{{"text":"changed"}},"baseHash":"{a}"}}"#),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let r = push_binary(&s, "blob/c", b"a longer text");
    assert_eq!(r.status, 200, "{}", r.text());
    // Optimistic concurrency still answers first for a stale base.
    s.post_json("/v1/push/notes/a", &body(1))
        .assert_error(409, "hash_mismatch");
    assert_eq!(value_files(&s.data_dir).len(), 3);
}

#[test]
fn the_byte_quota_counts_stored_bytes_and_refuses_what_would_exceed_it() {
    // Each document below is stored as the same number of bytes (same
    // text length; the envelope's hash and ms timestamp have fixed widths).
    let s = Setup::new(CONFIG)
        .tweak(|o| o.quota.max_bytes = Some(1000))
        .start();
    let h1 = push_ok(&s, "notes/one", 300);
    let size = value_files(&s.data_dir)[0].1;
    assert!(size > 300 && size < 450, "{size}");
    let h2 = push_ok(&s, "notes/two", 300);
    // 1000 bytes: a third document of this size does not fit.
    push(&s, "notes/three", 300).assert_json(507, FULL);
    // A binary value counts its bytes too.
    push_binary(&s, "blob/big", &[b'b'; 400]).assert_json(507, FULL);
    let stored = value_files(&s.data_dir);
    assert_eq!(stored.len(), 2);
    let total: u64 = stored.iter().map(|(_, n)| n).sum();
    assert!(total <= 1000, "{total}");
    // What is left still takes a document that fits in it.
    let left = 1000 - total;
    let small = push_ok(&s, "notes/small", 10);
    let total: u64 = value_files(&s.data_dir).iter().map(|(_, n)| n).sum();
    assert!(total <= 1000 && 1000 - total < left, "{total}");
    // Growing a stored document past the quota is refused, shrinking passes.
    let r = s.post_json(
        "/v1/push/notes/small",
        &format!(
            r#"{{"data":{{"text":"{}"}},"baseHash":"{small}"}}"#,
            "y".repeat(300)
        ),
    );
    r.assert_json(507, FULL);
    assert_pull(&s, "notes/small", &small, 10);
    let r = s.post_json(
        "/v1/push/notes/one",
        &format!(r#"{{"data":{{"text":""}},"baseHash":"{h1}"}}"#),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    // The freed bytes take a new document.
    push_ok(&s, "notes/three", 200);
    assert_pull(&s, "notes/two", &h2, 300);
    let total: u64 = value_files(&s.data_dir).iter().map(|(_, n)| n).sum();
    assert!(total <= 1000, "{total}");
}

/// Poll until `f` is true (the TTL sweep runs on its own timer).
#[track_caller]
fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting: {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn documents_removed_by_the_ttl_sweep_free_their_quota() {
    let s = Setup::new(CONFIG)
        .tweak(|o| {
            o.quota.max_documents = Some(2);
            o.ttl_sweep = Some(Duration::from_millis(100));
        })
        .start();
    let keep = push_ok(&s, "notes/keep", 10);
    push_ok(&s, "eph/gone", 10);
    push(&s, "notes/later", 10).assert_json(507, FULL);
    // Once the sweep has removed the expired document, the push fits.
    eventually("the sweep frees a document", || {
        let r = push(&s, "notes/later", 10);
        assert!(r.status == 200 || r.status == 507, "{}", r.text());
        r.status == 200
    });
    assert_eq!(value_files(&s.data_dir).len(), 2);
    assert_pull(&s, "notes/keep", &keep, 10);
    push(&s, "notes/more", 10).assert_json(507, FULL);
}

fn fresh_dir(tag: &str) -> PathBuf {
    temp_dir(tag).join("data")
}

#[test]
fn usage_is_measured_again_after_a_restart_and_a_raised_quota_makes_room() {
    let dir = fresh_dir("restart");
    let two = |o: &mut starfish::server::ServeOptions| o.quota.max_documents = Some(2);
    let (a, b) = {
        let s = Setup::new(CONFIG).data_dir(&dir).tweak(two).start();
        let a = push_ok(&s, "notes/a", 10);
        let b = push_ok(&s, "notes/b", 20);
        push(&s, "notes/c", 10).assert_json(507, FULL);
        (a, b)
    };
    {
        // Same limit after a restart: the stored documents are counted.
        let s = Setup::new(CONFIG).data_dir(&dir).tweak(two).start();
        push(&s, "notes/c", 10).assert_json(507, FULL);
        assert_pull(&s, "notes/a", &a, 10);
    }
    {
        // A raised quota: one more fits, then the next is refused.
        let s = Setup::new(CONFIG)
            .data_dir(&dir)
            .tweak(|o| o.quota.max_documents = Some(3))
            .start();
        push_ok(&s, "notes/c", 10);
        push(&s, "notes/d", 10).assert_json(507, FULL);
        assert_pull(&s, "notes/b", &b, 20);
    }
    {
        // Bytes too: the three stored documents exceed a 100-byte quota; a
        // new one is refused but pulls work.
        let s = Setup::new(CONFIG)
            .data_dir(&dir)
            .tweak(|o| o.quota.max_bytes = Some(100))
            .start();
        push(&s, "notes/d", 1).assert_json(507, FULL);
        assert_pull(&s, "notes/a", &a, 10);
    }
    assert_eq!(value_files(&dir).len(), 3);
    let _ = std::fs::remove_dir_all(dir.parent().unwrap());
}

/// The stored size of one document (for a `tweak`, which cannot capture).
static DOC_SIZE: AtomicU64 = AtomicU64::new(0);

/// Many concurrent pushes of new documents near the limit: exactly as many
/// succeed as fit, the others get 507, and what is stored never exceeds
/// the quota.
#[test]
fn concurrent_pushes_never_exceed_the_quota() {
    const PUSHES: usize = 40;
    let run = |s: &TestServer, prefix: &str| -> (usize, usize) {
        let statuses: Vec<u16> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..PUSHES)
                .map(|i| scope.spawn(move || push(s, &format!("notes/{prefix}{i}"), 100).status))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let ok = statuses.iter().filter(|&&c| c == 200).count();
        let full = statuses.iter().filter(|&&c| c == 507).count();
        assert_eq!(ok + full, PUSHES, "{statuses:?}");
        (ok, full)
    };

    // Documents: 7 of 40 fit.
    let s = Setup::new(CONFIG)
        .tweak(|o| o.quota.max_documents = Some(7))
        .start();
    assert_eq!(run(&s, "d"), (7, PUSHES - 7));
    assert_eq!(value_files(&s.data_dir).len(), 7);
    drop(s);

    // Bytes: every document has the same size; 5.5 of them fit.
    let dir = fresh_dir("concurrent");
    let size = {
        let s = Setup::new(CONFIG).data_dir(&dir).start();
        push_ok(&s, "notes/probe", 100);
        value_files(&dir)[0].1
    };
    std::fs::remove_dir_all(&dir).unwrap();
    DOC_SIZE.store(size, Ordering::SeqCst);
    let s = Setup::new(CONFIG)
        .data_dir(&dir)
        .tweak(|o| {
            let size = DOC_SIZE.load(Ordering::SeqCst);
            o.quota.max_bytes = Some(size * 5 + size / 2);
        })
        .start();
    assert_eq!(run(&s, "b"), (5, PUSHES - 5));
    let stored = value_files(&dir);
    assert_eq!(stored.len(), 5);
    assert!(stored.iter().map(|(_, n)| n).sum::<u64>() <= size * 5 + size / 2);
    drop(s);
    let _ = std::fs::remove_dir_all(dir.parent().unwrap());
}

#[test]
fn below_the_free_space_floor_pushes_get_507_and_pulls_work() {
    let dir = fresh_dir("minfree");
    let a = {
        let s = Setup::new(CONFIG).data_dir(&dir).start();
        push_ok(&s, "notes/a", 10)
    };
    // A floor above any disk's free space.
    let s = Setup::new(CONFIG)
        .data_dir(&dir)
        .tweak(|o| o.quota.min_free_bytes = Some(u64::MAX / 2))
        .start();
    push(&s, "notes/b", 10).assert_json(507, FULL);
    let r = s.post_json(
        "/v1/push/notes/a",
        &format!(r#"{{"data":{{"text":"x"}},"baseHash":"{a}"}}"#),
    );
    r.assert_json(507, FULL);
    push_binary(&s, "blob/c", b"x").assert_json(507, FULL);
    assert_pull(&s, "notes/a", &a, 10);
    assert_eq!(s.get("/v1/health").status, 200);
    assert_eq!(value_files(&dir).len(), 1);
    drop(s);
    // A floor of one byte: pushes pass.
    let s = Setup::new(CONFIG)
        .data_dir(&dir)
        .tweak(|o| o.quota.min_free_bytes = Some(1))
        .start();
    push_ok(&s, "notes/b", 10);
    drop(s);
    let _ = std::fs::remove_dir_all(dir.parent().unwrap());
}

/// The binary: the flags are in `--help`, the start-up log reports the free
/// space and the limits, and refusals are logged with the peer address,
/// at most five lines per ten seconds.
#[test]
fn the_binary_logs_free_space_and_rate_limited_refusals() {
    use std::io::{BufRead, BufReader, Read};
    use std::process::{Command, Stdio};

    let help = Command::new(env!("CARGO_BIN_EXE_starfish"))
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8(help.stdout).unwrap();
    for flag in [
        "--max-store-bytes N",
        "--max-documents N",
        "--min-free-bytes N",
    ] {
        assert!(help.contains(flag), "--help lists {flag}");
    }

    let root = temp_dir("bin");
    let config = root.join("config.json");
    std::fs::write(&config, CONFIG).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_starfish"))
        .args(["serve", "--listen", "127.0.0.1:0", "--log-level", "info"])
        .arg("--config")
        .arg(&config)
        .arg("--data-dir")
        .arg(root.join("data"))
        .args(["--max-documents", "1", "--min-free-bytes", "1"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let mut start_log = String::new();
    let port = loop {
        let mut line = String::new();
        assert!(err.read_line(&mut line).unwrap() > 0, "server exited early");
        start_log.push_str(&line);
        if let Some(rest) = line.split("listening on http://127.0.0.1:").nth(1) {
            break rest.split('/').next().unwrap().parse::<u16>().unwrap();
        }
    };
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let send = |path: &str| {
        let b = body(5);
        let req = format!(
            "POST /v1/push/{path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{b}",
            b.len()
        );
        send_raw(addr, req.as_bytes()).status
    };
    let started = Instant::now();
    assert_eq!(send("notes/a"), 200);
    for i in 0..30 {
        assert_eq!(send(&format!("notes/n{i}")), 507);
    }
    let elapsed = started.elapsed();
    // Stop it (SIGTERM by its pid) and read the rest of the log.
    let ok = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
    let mut rest = String::new();
    err.read_to_string(&mut rest).unwrap();
    assert!(child.wait().unwrap().success());
    let _ = std::fs::remove_dir_all(&root);

    assert!(
        start_log.contains(" free of ") && start_log.contains("data directory"),
        "{start_log}"
    );
    assert!(
        start_log.contains("storage limits: 0 documents stored (--max-documents 1)"),
        "{start_log}"
    );
    let refusals: Vec<&str> = rest
        .lines()
        .filter(|l| l.contains("storage full from 127.0.0.1: store quota: --max-documents 1"))
        .collect();
    let windows = elapsed.as_secs() / 10 + 1;
    assert!(
        !refusals.is_empty() && refusals.len() as u64 <= 5 * windows,
        "30 refusals in {elapsed:?} logged as {refusals:?}\n{rest}"
    );
    assert!(refusals[0].starts_with("WARN "), "{}", refusals[0]);
}

/// The real binary (`starfish serve`) on an ephemeral loopback port, its
/// log in a file; killed by its pid and waited for on drop, so it never
/// outlives the test.
struct Binary {
    child: std::process::Child,
    addr: std::net::SocketAddr,
    log: PathBuf,
}

impl Binary {
    /// Start `starfish serve --config <config> <args>` and wait for its
    /// `listening on` line.
    fn start(root: &Path, config: &str, args: &[&str]) -> Binary {
        use std::process::{Command, Stdio};
        let config_path = root.join("config.json");
        std::fs::write(&config_path, config).unwrap();
        let log = root.join(format!("server-{}.log", now_ms()));
        let child = Command::new(env!("CARGO_BIN_EXE_starfish"))
            .args(["serve", "--listen", "127.0.0.1:0", "--log-level", "info"])
            .arg("--config")
            .arg(&config_path)
            .args(args)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let mut b = Binary {
            child,
            addr: ([127, 0, 0, 1], 0).into(),
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let text = b.log_text();
            if let Some(rest) = text.split("listening on http://127.0.0.1:").nth(1) {
                b.addr
                    .set_port(rest.split('/').next().unwrap().parse().unwrap());
                return b;
            }
            assert!(
                b.child.try_wait().unwrap().is_none(),
                "the server exited: {text}"
            );
            assert!(Instant::now() < deadline, "no listening line: {text}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn request(&self, method: &str, path: &str, body: &str) -> Resp {
        let req = format!(
            "{method} /v1/{path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        send_raw(self.addr, req.as_bytes())
    }

    fn push(&self, path: &str, len: usize) -> Resp {
        self.request("POST", &format!("push/{path}"), &body(len))
    }

    fn pull(&self, path: &str) -> Resp {
        self.request("GET", &format!("pull/{path}"), "")
    }

    /// The ids `GET /v1/list/notes` shows.
    fn listed(&self) -> Vec<String> {
        let r = self.request("GET", "list/notes?limit=1000", "");
        assert_eq!(r.status, 200, "{}", r.text());
        let v = r.json();
        v["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k.as_str().unwrap().to_owned())
            .collect()
    }
}

impl Drop for Binary {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The issue's test, on the real binary over HTTP, once per store: fill a
/// small `--max-store-bytes` quota; the first refused push gets 507, the
/// stored documents are intact and readable, nothing half-written exists
/// (no temp file, no extra key, the refused key reads as missing); after
/// the TTL sweep removes a document the refused push fits; on the
/// filesystem store, a restart with the quota raised makes room too.
#[test]
fn the_binary_fills_a_small_quota_on_the_memory_and_fs_stores() {
    // `notes` listable (so the stored keys can be seen on the memory store
    // too), `eph` documents expire after 4 s.
    const CONFIG: &str = r#"{
      "version": 1,
      "collections": [
        {"name": "notes", "storagePath": "notes/{id}", "readRoles": ["public"],
         "writeRoles": ["public"], "listable": true},
        {"name": "eph", "storagePath": "eph/{id}", "readRoles": ["public"],
         "writeRoles": ["public"], "ttlMs": 4000}
      ]
    }"#;
    // Each document is stored as 300 characters of text plus an envelope
    // of fixed width (about 120 bytes: the hash and the ms timestamp have
    // fixed widths): three fit in 1500 bytes, a fourth does not, nor one
    // with 200 characters.
    const QUOTA: &str = "1500";
    const TEXT: usize = 300;

    for store in ["memory", "fs"] {
        let root = temp_dir(&format!("bin-fill-{store}"));
        let data = root.join("data");
        let data_s = data.to_str().unwrap();
        let store_args: Vec<&str> = if store == "memory" {
            vec!["--memory"]
        } else {
            vec!["--data-dir", data_s]
        };
        let args = |quota: &'static str| -> Vec<&str> {
            let mut a = store_args.clone();
            a.extend(["--max-store-bytes", quota, "--ttl-sweep-ms", "100"]);
            a
        };
        let s = Binary::start(&root, CONFIG, &args(QUOTA));
        assert!(
            s.log_text().contains(&format!(
                "storage limits: 0 documents stored (--max-documents no limit), 0 bytes \
                 (--max-store-bytes {QUOTA})"
            )),
            "{store}: {}",
            s.log_text()
        );

        // Fill: one expiring document, then notes until the first refusal.
        let r = s.push("eph/t", TEXT);
        assert_eq!(r.status, 200, "{store}: {}", r.text());
        let mut stored: Vec<(String, String)> = Vec::new();
        let refused = loop {
            let key = format!("n{}", stored.len());
            let r = s.push(&format!("notes/{key}"), TEXT);
            if r.status != 200 {
                // The first refused push: 507, the official error shape.
                r.assert_json(507, FULL);
                break key;
            }
            stored.push((key, r.json()["hash"].as_str().unwrap().to_owned()));
            assert!(stored.len() < 10, "{store}: the quota never refused");
        };
        assert_eq!(
            stored.len(),
            2,
            "{store}: three documents fit in {QUOTA} bytes"
        );
        // Refused again, and a smaller document that still does not fit too.
        s.push(&format!("notes/{refused}"), TEXT)
            .assert_json(507, FULL);
        s.push("notes/other", 200).assert_json(507, FULL);

        // The stored documents are intact and readable.
        for (key, hash) in &stored {
            let r = s.pull(&format!("notes/{key}"));
            assert_eq!(r.status, 200, "{store}: {}", r.text());
            let v = r.json();
            assert_eq!(v["hash"], hash.as_str(), "{store} {key}");
            assert_eq!(v["data"]["text"].as_str().map(str::len), Some(TEXT));
        }
        // Nothing half-written: the refused keys hold nothing.
        let r = s.pull(&format!("notes/{refused}"));
        assert_eq!(
            (r.status, r.json()["hash"].as_str()),
            (200, Some("")),
            "{store}: {}",
            r.text()
        );
        let keys: Vec<String> = stored.iter().map(|(k, _)| k.clone()).collect();
        assert_eq!(s.listed(), keys, "{store}");
        if store == "fs" {
            // No temp file, exactly the stored values on disk.
            assert_eq!(value_files(&data).len(), stored.len() + 1);
        }
        assert_eq!(s.request("GET", "health", "").status, 200);

        // The sweep removes the expired document: the refused push fits.
        eventually("the sweep frees room", || {
            let r = s.push(&format!("notes/{refused}"), TEXT);
            assert!(r.status == 200 || r.status == 507, "{}", r.text());
            r.status == 200
        });
        let r = s.pull("eph/t");
        assert_eq!(r.json()["hash"], "", "{store}: swept");
        // Full again.
        s.push("notes/other", TEXT).assert_json(507, FULL);
        let mut keys = keys;
        keys.push(refused.clone());
        assert_eq!(s.listed(), keys, "{store}");
        if store == "fs" {
            assert_eq!(value_files(&data).len(), 3);
        }
        let log = s.log_text();
        assert!(
            log.contains("storage full from 127.0.0.1: store quota:"),
            "{store}: {log}"
        );
        drop(s);

        if store == "fs" {
            // A restart with the quota raised: what is stored was kept,
            // the refused push now fits.
            let s = Binary::start(&root, CONFIG, &args("3000"));
            assert!(
                s.log_text().contains("storage limits: 3 documents stored"),
                "{}",
                s.log_text()
            );
            let r = s.push("notes/other", TEXT);
            assert_eq!(r.status, 200, "{}", r.text());
            for (key, hash) in &stored {
                assert_eq!(
                    s.pull(&format!("notes/{key}")).json()["hash"],
                    hash.as_str()
                );
            }
            assert_eq!(value_files(&data).len(), 4);
        }
        let _ = std::fs::remove_dir_all(&root);
    }
}
