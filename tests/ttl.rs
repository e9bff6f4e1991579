//! `ttlMs` end to end: expired documents read as the official server reads
//! them (standalone pull, batch, bundle), and the sweep (ours) removes them
//! from disk. Expected answers: route-builder.js TTL checks and ttl.js
//! `isExpired`, 3.0.0-alpha.65.

mod common;

use common::*;
use std::time::{Duration, Instant};

const TTL_MS: u64 = 1000;

const CONFIG: &str = r#"{
  "version": 1,
  "collections": [
    {"name": "eph", "storagePath": "eph/{id}", "readRoles": ["public"], "writeRoles": ["public"],
     "ttlMs": 1000, "cacheDurationMs": 5000},
    {"name": "ephring", "storagePath": "eph/{id}/_keyring", "readRoles": ["public"], "writeRoles": ["public"]},
    {"name": "keep", "storagePath": "keep/{id}", "readRoles": ["public"], "writeRoles": ["public"]},
    {"name": "zero", "storagePath": "zero/{id}", "readRoles": ["public"], "writeRoles": ["public"], "ttlMs": 0},
    {"name": "words", "storagePath": "words/{id}", "readRoles": ["public"], "writeRoles": ["public"], "ttlMs": "soon"},
    {"name": "texty", "storagePath": "texty/{id}", "readRoles": ["public"], "writeRoles": ["public"], "ttlMs": "1000"},
    {"name": "blob", "storagePath": "blob/{id}", "readRoles": ["public"], "writeRoles": ["public"], "ttlMs": 1,
     "allowedMimeTypes": ["text/plain"]},
    {"name": "b1", "bundle": "bun", "storagePath": "bun/{id}", "readRoles": ["public"], "writeRoles": ["public"],
     "ttlMs": 1000},
    {"name": "b2", "bundle": "bun", "storagePath": "bun/{id}", "readRoles": ["public"], "writeRoles": ["public"]}
  ]
}"#;

const DATA: &str = r#"{"data":{"v":1},"baseHash":null}"#;
/// sha256 of `{"v":1}`.
fn v1_hash() -> String {
    sha256_hex(br#"{"v":1}"#)
}

fn push(s: &TestServer, path: &str) {
    let r = s.post_json(&format!("/v1/push/{path}"), DATA);
    assert_eq!(r.status, 200, "{path}: {}", r.text());
}

/// A batch pull target with the `params` JSON percent-encoded.
fn batch(collections: &str, params: &str) -> String {
    let enc: String = params
        .bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect();
    format!("/v1/batch/pull?collections={collections}&params={enc}")
}

fn wait_past_ttl() {
    std::thread::sleep(Duration::from_millis(TTL_MS + 150));
}

/// A server without the sweep: reads behave exactly as the official's.
fn unswept() -> TestServer {
    Setup::new(CONFIG).tweak(|o| o.ttl_sweep = None).start()
}

#[test]
fn expired_documents_pull_as_the_official_empty_answer() {
    let s = unswept();
    let since = now_ms();
    push(&s, "eph/a");
    push(&s, "eph/a/_keyring");
    let fresh = s.get("/v1/pull/eph/a");
    fresh.assert_json_ts(
        200,
        &format!(
            r#"{{"data":{{"v":1}},"hash":"{}","timestamp":{{TS}}}}"#,
            v1_hash()
        ),
        since,
    );
    assert_eq!(
        fresh.header("etag"),
        Some(format!("\"{}\"", v1_hash()).as_str())
    );
    wait_past_ttl();
    let since = now_ms();
    let r = s.get("/v1/pull/eph/a");
    r.assert_json_ts(200, r#"{"data":{},"hash":"","timestamp":{TS}}"#, since);
    assert_eq!(r.header("etag"), None, "no ETag for the empty answer");
    assert_eq!(
        r.header("cache-control"),
        Some("max-age=5"),
        "Cache-Control stays"
    );
    // If-None-Match with the old hash no longer matches.
    let r = Req::new("GET", "/v1/pull/eph/a")
        .header("If-None-Match", &format!("\"{}\"", v1_hash()))
        .send(&s);
    assert_eq!(r.status, 200);
    // ?withKeyring=1: the whole answer is replaced, keyring included.
    s.get("/v1/pull/eph/a?withKeyring=1").assert_json_ts(
        200,
        r#"{"data":{},"hash":"","timestamp":{TS}}"#,
        since,
    );
    // A collection without ttlMs: the keyring document itself never expires.
    let r = s.get("/v1/pull/eph/a/_keyring");
    assert_eq!(r.json()["hash"], v1_hash());
    // The stored document is still there: a blind create is a conflict,
    // exactly as on the official server (which never removes it).
    s.post_json("/v1/push/eph/a", DATA)
        .assert_error(409, "hash_mismatch");
    // ... and a push with the stored hash renews it.
    let r = s.post_json(
        "/v1/push/eph/a",
        &format!(r#"{{"data":{{"v":2}},"baseHash":"{}"}}"#, v1_hash()),
    );
    assert_eq!(r.status, 200);
    assert_eq!(s.get("/v1/pull/eph/a").json()["data"]["v"], 2);
}

#[test]
fn batch_keeps_the_hash_and_bundles_ignore_the_ttl() {
    let s = unswept();
    push(&s, "eph/a");
    push(&s, "bun/x/b1");
    push(&s, "bun/x/b2");
    wait_past_ttl();
    let since = now_ms();
    let r = s.get(&batch(
        "eph,keep",
        r#"{"eph":[{"id":"a"},{"id":"none"}],"keep":[{"id":"a"}]}"#,
    ));
    assert_eq!(r.status, 200);
    let v = r.json();
    let eph = &v["collections"]["eph"];
    assert_eq!(eph[0]["data"], serde_json::json!({}));
    assert_eq!(
        eph[0]["hash"],
        v1_hash(),
        "the official batch keeps the stored hash"
    );
    assert!(eph[0]["timestamp"].as_i64().unwrap() >= since);
    assert_eq!(
        eph[1],
        serde_json::json!({"data":{},"hash":"","timestamp":eph[1]["timestamp"]})
    );
    // The official bundle pull has no TTL check.
    let r = s.get("/v1/pull/bun/x");
    let v = r.json();
    assert_eq!(v["collections"]["b1"]["data"], serde_json::json!({"v":1}));
    assert_eq!(v["collections"]["b1"]["hash"], v1_hash());
    // A batch read of the bundle member does apply it.
    let r = s.get(&batch("b1", r#"{"b1":[{"id":"x"}]}"#));
    assert_eq!(
        r.json()["collections"]["b1"][0]["data"],
        serde_json::json!({})
    );
}

#[test]
fn ttl_values_are_read_like_javascript_numbers() {
    let s = unswept();
    for c in ["zero", "words", "texty", "keep"] {
        push(&s, &format!("{c}/a"));
    }
    let r = Req::new("POST", "/v1/push/blob/a")
        .header("Content-Type", "text/plain")
        .body(b"bytes")
        .send(&s);
    assert_eq!(r.status, 200);
    wait_past_ttl();
    for c in ["zero", "words", "keep"] {
        assert_eq!(
            s.get(&format!("/v1/pull/{c}/a")).json()["data"],
            serde_json::json!({"v":1}),
            "{c} never expires"
        );
    }
    assert_eq!(
        s.get("/v1/pull/texty/a").json()["data"],
        serde_json::json!({}),
        "\"1000\" is 1000"
    );
    let r = s.get("/v1/pull/blob/a");
    assert_eq!(
        (r.status, r.text().as_str()),
        (200, "bytes"),
        "binary values never expire"
    );
}

fn doc_file(s: &TestServer, key: &str) -> std::path::PathBuf {
    s.data_dir.join(format!("{key}.~doc"))
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "timed out: {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn the_sweep_removes_expired_documents_from_disk() {
    let s = Setup::new(CONFIG)
        .tweak(|o| o.ttl_sweep = Some(Duration::from_millis(100)))
        .start();
    push(&s, "eph/gone");
    push(&s, "eph/gone/_keyring");
    push(&s, "keep/stays");
    push(&s, "bun/x/b1");
    push(&s, "bun/x/b2");
    push(&s, "words/w");
    assert!(doc_file(&s, "eph/gone").exists());
    wait_until("eph/gone removed", || !doc_file(&s, "eph/gone").exists());
    wait_until("bun/x/b1 removed", || !doc_file(&s, "bun/x/b1").exists());
    for kept in ["eph/gone/_keyring", "keep/stays", "bun/x/b2", "words/w"] {
        assert!(doc_file(&s, kept).exists(), "{kept} must stay");
    }
    // A document written after the last sweep is not touched before it expires.
    push(&s, "eph/new");
    std::thread::sleep(Duration::from_millis(150));
    assert!(doc_file(&s, "eph/new").exists(), "fresh documents stay");
    // After the sweep an expired document reads as a missing one: batch
    // hash "" (the official keeps the stored hash), a blind create succeeds
    // (the official answers 409), and the bundle no longer shows it.
    let r = s.get(&batch("eph", r#"{"eph":[{"id":"gone"}]}"#));
    assert_eq!(r.json()["collections"]["eph"][0]["hash"], "");
    assert_eq!(
        s.get("/v1/pull/bun/x").json()["collections"]["b1"],
        serde_json::json!({"data":{},"hash":""})
    );
    push(&s, "eph/gone");
    assert_eq!(s.get("/v1/pull/eph/gone").json()["data"]["v"], 1);
}
