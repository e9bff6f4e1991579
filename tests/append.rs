//! Append-only collections over HTTP (spec README, EXTENDED "Append-only
//! collections" and "Batch appendParams"; the official `runPush` append
//! branch, `appendItem` and `handleAppendOnlyPull` are the reference): the
//! real library server with the filesystem store on an ephemeral loopback
//! port, raw HTTP/1.1. Hashes are recomputed here independently
//! (`sha256(stableStringify({last, n}))`, written out by hand).

mod common;

use common::*;
use std::sync::{Arc, Barrier};

const CONFIG: &str = r#"{
  "version": 1,
  "collections": [
    {"name": "log", "storagePath": "logs/{id}", "readRoles": ["public"], "writeRoles": ["public"],
     "encryption": "none", "maxBodyBytes": 100000, "appendOnly": {"type": "by_timestamp", "requireAuthorSignature": false}},
    {"name": "capped", "storagePath": "capped/{id}", "readRoles": ["public"], "writeRoles": ["public"],
     "encryption": "none", "maxBodyBytes": 1000, "appendOnly": {"maxItems": 2, "field": "ev", "requireAuthorSignature": false}},
    {"name": "seg", "storagePath": "seg/{id}", "readRoles": ["public"], "writeRoles": ["public"],
     "encryption": "none", "maxBodyBytes": 1000, "appendOnly": {"chunkSize": 3, "requireAuthorSignature": false}},
    {"name": "strict", "storagePath": "strict/{id}", "readRoles": ["public"], "writeRoles": ["public"],
     "encryption": "none", "maxBodyBytes": 1000, "cacheDurationMs": 5000,
     "appendOnly": {"allowFull": false, "maxPullLimit": 2, "maxCheckpointAgeMs": 60000, "requireAuthorSignature": false}},
    {"name": "signed", "storagePath": "signed/{id}", "readRoles": ["public"], "writeRoles": ["public"],
     "encryption": "none", "maxBodyBytes": 1000, "appendOnly": true},
    {"name": "own", "storagePath": "own/{identity}", "readRoles": ["self"], "writeRoles": ["self"],
     "encryption": "none", "maxBodyBytes": 1000, "appendOnly": {}},
    {"name": "queue", "storagePath": "queue/{id}", "readRoles": ["public"], "writeRoles": ["public"],
     "encryption": "none", "maxBodyBytes": 1000, "appendOnly": {"persist": false, "requireAuthorSignature": false}},
    {"name": "plain", "storagePath": "plain/{id}", "readRoles": ["public"], "writeRoles": ["public"],
     "encryption": "none", "maxBodyBytes": 1000},
    {"name": "m1", "bundle": "b", "storagePath": "bun/{id}", "readRoles": ["public"], "writeRoles": ["public"],
     "encryption": "none", "maxBodyBytes": 1000, "appendOnly": {"persist": false, "requireAuthorSignature": false}},
    {"name": "m2", "bundle": "b", "storagePath": "bun/{id}", "readRoles": ["public"], "writeRoles": ["public"],
     "encryption": "none", "maxBodyBytes": 1000},
    {"name": "ttl", "storagePath": "ttl/{id}", "readRoles": ["public"], "writeRoles": ["public"],
     "encryption": "none", "maxBodyBytes": 1000, "cacheDurationMs": 2000, "ttlMs": 1,
     "appendOnly": {"chunkSize": 2, "requireAuthorSignature": false}}
  ]
}"#;

fn server() -> TestServer {
    Setup::new(CONFIG).start()
}

/// `sha256(stableStringify({n, last}))` for a canonical `last`.
fn n_last(n: usize, last: &str) -> String {
    sha256_hex(format!(r#"{{"last":{last},"n":{n}}}"#).as_bytes())
}

/// Push an append and expect 200 `{"hash","timestamp"}`; the timestamp.
#[track_caller]
fn append_ok(s: &TestServer, target: &str, body: &str, hash: &str) -> i64 {
    let r = s.post_json(target, body);
    assert_eq!(r.status, 200, "{target} {body}: {}", r.text());
    let ts = r.json()["timestamp"].as_i64().expect("integer timestamp");
    r.assert_json(200, &format!(r#"{{"hash":"{hash}","timestamp":{ts}}}"#));
    ts
}

/// GET and expect 200; the body with `"timestamp":<now>` checked and
/// replaced by `{TS}`.
#[track_caller]
fn pull_text(s: &TestServer, target: &str) -> String {
    let t0 = now_ms();
    let r = s.get(target);
    assert_eq!(r.status, 200, "{target}: {}", r.text());
    let ts = r.json()["timestamp"].as_i64().unwrap();
    assert!(ts >= t0 && ts <= now_ms());
    r.text()
        .replace(&format!(r#""timestamp":{ts}"#), r#""timestamp":{TS}"#)
}

fn items_json(elements: &[(i64, &str)]) -> String {
    let parts: Vec<String> = elements
        .iter()
        .map(|(ts, d)| format!(r#"{{"ts":{ts},"data":{d}}}"#))
        .collect();
    format!("[{}]", parts.join(","))
}

// ---------------------------------------------------------------- push

#[test]
fn append_body_checks_in_order() {
    let s = server();
    let t = "/v1/push/logs/a";
    let bad = |body: &str, status: u16, msg: &str| s.post_json(t, body).assert_error(status, msg);
    bad("{}", 400, "Missing or invalid data");
    bad(r#"{"data":[1]}"#, 400, "Missing or invalid data");
    bad(r#"{"data":null}"#, 400, "Missing or invalid data");
    bad(r#"{"data":"x"}"#, 400, "Missing or invalid data");
    for ts in ["-1", "1.5", "\"5\"", "true", "{}", "1e400"] {
        bad(
            &format!(r#"{{"data":{{}},"ts":{ts}}}"#),
            400,
            "ts must be a non-negative integer",
        );
    }
    let future = now_ms() + 400_000;
    bad(
        &format!(r#"{{"data":{{}},"ts":{future}}}"#),
        400,
        "ts is too far in the future",
    );
    // Generic push checks still come first.
    bad("[]", 400, "Body must be a JSON object");
    Req::new("POST", t)
        .header("Content-Type", "text/plain")
        .body(b"{}")
        .send(&s)
        .assert_error(415, "Content-Type must be application/json");
    s.get("/v1/pull/logs/a?full=true").assert_json_ts(
        200,
        r#"{"data":{"items":[]},"hash":"","timestamp":{TS}}"#,
        0,
    );
}

#[test]
fn appends_get_increasing_timestamps_and_the_n_last_hash() {
    let s = server();
    let t = "/v1/push/logs/a";
    // Unsafe keys are dropped from the element; baseHash is ignored.
    append_ok(
        &s,
        t,
        r#"{"data":{"a":1,"constructor":2,"o":{"__proto__":{}}},"ts":10,"baseHash":"nope"}"#,
        &n_last(1, r#"{"a":1,"o":{}}"#),
    );
    for ts in ["10", "9"] {
        s.post_json(t, &format!(r#"{{"data":{{}},"ts":{ts}}}"#))
            .assert_error(409, "non_monotonic_timestamp");
    }
    let t0 = now_ms();
    let server_ts = append_ok(
        &s,
        t,
        r#"{"data":{"b":2},"ts":null}"#,
        &n_last(2, r#"{"b":2}"#),
    );
    assert!(server_ts >= t0 && server_ts <= now_ms());
    // A client ts just above the server's is still accepted; the server's
    // own next ts stays strictly above it.
    append_ok(
        &s,
        t,
        &format!(r#"{{"data":{{}},"ts":{}}}"#, server_ts + 200_000),
        &n_last(3, "{}"),
    );
    let next = append_ok(&s, t, r#"{"data":{"c":3}}"#, &n_last(4, r#"{"c":3}"#));
    assert_eq!(next, server_ts + 200_001);
    let expected = format!(
        r#"{{"data":{{"items":{}}},"hash":"{}","timestamp":{{TS}}}}"#,
        items_json(&[
            (10, r#"{"a":1,"o":{}}"#),
            (server_ts, r#"{"b":2}"#),
            (server_ts + 200_000, "{}"),
            (next, r#"{"c":3}"#)
        ]),
        n_last(4, r#"{"c":3}"#)
    );
    assert_eq!(pull_text(&s, "/v1/pull/logs/a?full=true"), expected);
    // `-0` is a non-negative integer and prints as 0.
    append_ok(
        &s,
        "/v1/push/logs/z",
        r#"{"data":{},"ts":-0}"#,
        &n_last(1, "{}"),
    );
    assert_eq!(
        pull_text(&s, "/v1/pull/logs/z?full=1"),
        format!(
            r#"{{"data":{{"items":[{{"ts":0,"data":{{}}}}]}},"hash":"{}","timestamp":{{TS}}}}"#,
            n_last(1, "{}")
        )
    );
}

#[test]
fn appends_keep_other_data_of_an_existing_document() {
    let s = server();
    // A regular document already stored under the log's key (e.g. written
    // before `appendOnly` was configured).
    std::fs::create_dir_all(s.data_dir.join("logs")).unwrap();
    std::fs::write(
        s.data_dir.join("logs/k.~doc"),
        br#"{"v":1,"data":{"title":"t","items":"not an array"},"ts":1,"hash":"h"}"#,
    )
    .unwrap();
    append_ok(
        &s,
        "/v1/push/logs/k",
        r#"{"data":{"x":1},"ts":5}"#,
        &n_last(1, r#"{"x":1}"#),
    );
    assert_eq!(
        pull_text(&s, "/v1/pull/logs/k?last=5"),
        format!(
            r#"{{"data":{{"title":"t","items":[{{"ts":5,"data":{{"x":1}}}}]}},"hash":"{}","timestamp":{{TS}}}}"#,
            n_last(1, r#"{"x":1}"#)
        )
    );
}

#[test]
fn max_items_caps_the_log_with_409_and_the_limit() {
    let s = server();
    let t = "/v1/push/capped/c";
    append_ok(
        &s,
        t,
        r#"{"data":{"i":0},"ts":1}"#,
        &n_last(1, r#"{"i":0}"#),
    );
    append_ok(
        &s,
        t,
        r#"{"data":{"i":1},"ts":2}"#,
        &n_last(2, r#"{"i":1}"#),
    );
    s.post_json(t, r#"{"data":{"i":2},"ts":3}"#)
        .assert_json(409, r#"{"error":"append_limit_exceeded","limit":2}"#);
    // The cap is checked before the timestamp.
    s.post_json(t, r#"{"data":{},"ts":1}"#)
        .assert_json(409, r#"{"error":"append_limit_exceeded","limit":2}"#);
    assert_eq!(
        pull_text(&s, "/v1/pull/capped/c?full=true"),
        format!(
            r#"{{"data":{{"ev":{}}},"hash":"{}","timestamp":{{TS}}}}"#,
            items_json(&[(1, r#"{"i":0}"#), (2, r#"{"i":1}"#)]),
            n_last(2, r#"{"i":1}"#)
        )
    );
}

#[test]
fn concurrent_appends_to_one_log_lose_nothing() {
    let s = server();
    let threads = 8;
    let per = 10;
    let barrier = Arc::new(Barrier::new(threads));
    std::thread::scope(|scope| {
        for t in 0..threads {
            let (s, barrier) = (&s, barrier.clone());
            scope.spawn(move || {
                barrier.wait();
                for i in 0..per {
                    let r = s.post_json(
                        "/v1/push/seg/c",
                        &format!(r#"{{"data":{{"t":{t},"i":{i}}}}}"#),
                    );
                    assert_eq!(r.status, 200, "{}", r.text());
                }
            });
        }
    });
    let v = s.get("/v1/pull/seg/c?full=1").json();
    let items = v["data"]["items"].as_array().unwrap();
    assert_eq!(items.len(), threads * per);
    let ts: Vec<i64> = items.iter().map(|e| e["ts"].as_i64().unwrap()).collect();
    assert!(
        ts.windows(2).all(|w| w[0] < w[1]),
        "strictly increasing: {ts:?}"
    );
    for t in 0..threads {
        let mine: Vec<i64> = items
            .iter()
            .filter(|e| e["data"]["t"] == t)
            .map(|e| e["data"]["i"].as_i64().unwrap())
            .collect();
        assert_eq!(
            mine,
            (0..per as i64).collect::<Vec<_>>(),
            "writer {t} in order"
        );
    }
    let last = items.last().unwrap()["data"].to_string();
    assert_eq!(v["hash"], n_last(threads * per, &last));
}

// ---------------------------------------------------------------- pull

#[test]
fn pulls_must_be_bounded_and_bounds_are_validated() {
    let s = server();
    for (i, ts) in [10, 20, 30].iter().enumerate() {
        append_ok(
            &s,
            "/v1/push/logs/p",
            &format!(r#"{{"data":{{"i":{i}}},"ts":{ts}}}"#),
            &n_last(i + 1, &format!(r#"{{"i":{i}}}"#)),
        );
    }
    let hash = n_last(3, r#"{"i":2}"#);
    let err = |q: &str, msg: &str| s.get(&format!("/v1/pull/logs/p{q}")).assert_error(400, msg);
    err("", "pull_bound_required");
    err("?full=false", "pull_bound_required");
    err("?withKeyring=1", "pull_bound_required");
    err("?full=true&checkpoint=0", "full_with_bounds");
    err("?full=1&last=1", "full_with_bounds");
    err("?full=1&limit=1", "full_with_bounds");
    for cp in [
        "",
        "-1",
        "01",
        "1e1",
        "abc",
        "+5",
        "-0",
        "99999999999999999999",
        "1.0",
    ] {
        err(&format!("?checkpoint={cp}"), "Invalid checkpoint");
    }
    err("?limit=x&last=1", "Invalid limit");
    err("?limit=", "Invalid limit");
    err("?last=x", "Invalid last");
    err("?last=-1", "Invalid last");
    let ok = |q: &str, els: &[(i64, &str)]| {
        assert_eq!(
            pull_text(&s, &format!("/v1/pull/logs/p{q}")),
            format!(
                r#"{{"data":{{"items":{}}},"hash":"{hash}","timestamp":{{TS}}}}"#,
                items_json(els)
            ),
            "{q}"
        );
    };
    let all = [(10, r#"{"i":0}"#), (20, r#"{"i":1}"#), (30, r#"{"i":2}"#)];
    ok("?full=true", &all);
    ok("?full=1", &all);
    ok("?checkpoint=0", &all);
    ok("?checkpoint=9", &all);
    ok("?checkpoint=10", &all[1..]);
    ok("?checkpoint=25", &all[2..]);
    ok("?checkpoint=30", &[]);
    ok("?last=1", &all[2..]);
    ok("?last=0", &[]);
    ok("?last=100", &all);
    ok("?limit=2", &all[1..]);
    ok("?limit=1&last=x", &all[2..]); // limit wins; last is not looked at
    ok("?checkpoint=10&last=1", &all[2..]);
    ok("?checkpoint=0&limit=0", &[]);
    ok("?last=1&last=2", &all[2..]); // the first occurrence of a name counts
                                     // A missing log: empty, no ETag.
    let r = s.get("/v1/pull/logs/none?full=1");
    r.assert_json_ts(
        200,
        r#"{"data":{"items":[]},"hash":"","timestamp":{TS}}"#,
        0,
    );
    assert_eq!(r.header("etag"), None);
}

#[test]
fn append_pulls_have_etag_and_answer_304() {
    let s = server();
    append_ok(
        &s,
        "/v1/push/logs/e",
        r#"{"data":{},"ts":1}"#,
        &n_last(1, "{}"),
    );
    let etag = format!("\"{}\"", n_last(1, "{}"));
    let r = s.get("/v1/pull/logs/e?last=1");
    assert_eq!(r.header("etag"), Some(etag.as_str()));
    assert_eq!(r.header("cache-control"), None);
    // The ETag is the log's hash, whatever the bounds.
    let r = Req::new("GET", "/v1/pull/logs/e?checkpoint=5")
        .header("If-None-Match", &etag)
        .send(&s);
    assert_eq!((r.status, r.body.len(), r.header("etag")), (304, 0, None));
    let r = Req::new("GET", "/v1/pull/logs/e?checkpoint=5")
        .header("If-None-Match", "\"other\"")
        .send(&s);
    assert_eq!(r.status, 200);
    // Bound errors come first.
    Req::new("GET", "/v1/pull/logs/e")
        .header("If-None-Match", &etag)
        .send(&s)
        .assert_error(400, "pull_bound_required");
}

#[test]
fn allow_full_max_pull_limit_and_max_checkpoint_age() {
    let s = server();
    let now = now_ms();
    // No document yet: the answer has no Cache-Control.
    let r = s.get(&format!("/v1/pull/strict/t?checkpoint={}", now - 1000));
    r.assert_json_ts(
        200,
        r#"{"data":{"items":[]},"hash":"","timestamp":{TS}}"#,
        now,
    );
    assert_eq!(r.header("cache-control"), None);
    for (i, dt) in [500, 400, 300].iter().enumerate() {
        append_ok(
            &s,
            "/v1/push/strict/t",
            &format!(r#"{{"data":{{"x":{i}}},"ts":{}}}"#, now - dt),
            &n_last(i + 1, &format!(r#"{{"x":{i}}}"#)),
        );
    }
    s.get("/v1/pull/strict/t?full=true")
        .assert_error(400, "full_not_allowed");
    s.get(&format!("/v1/pull/strict/t?checkpoint={}", now - 120_000))
        .assert_error(400, "checkpoint_too_old");
    s.get("/v1/pull/strict/t?checkpoint=0")
        .assert_error(400, "checkpoint_too_old");
    let r = s.get("/v1/pull/strict/t?last=50");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("cache-control"), Some("max-age=5"));
    let v = r.json();
    let xs: Vec<i64> = v["data"]["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["data"]["x"].as_i64().unwrap())
        .collect();
    assert_eq!(xs, [1, 2], "last clamped to maxPullLimit");
    let v = s
        .get(&format!("/v1/pull/strict/t?checkpoint={}", now - 1000))
        .json();
    assert_eq!(
        v["data"]["items"].as_array().unwrap().len(),
        3,
        "checkpoint pulls are not clamped"
    );
}

// ---------------------------------------------------------------- chunks

#[test]
fn chunked_logs_store_chunks_and_read_like_single_documents() {
    let s = server();
    let mut expected = Vec::new();
    for i in 0..8i64 {
        let data = format!(r#"{{"i":{i}}}"#);
        append_ok(
            &s,
            "/v1/push/seg/s",
            &format!(r#"{{"data":{data},"ts":{}}}"#, 1000 + i * 10),
            &n_last(i as usize + 1, &data),
        );
        append_ok(
            &s,
            "/v1/push/logs/s",
            &format!(r#"{{"data":{data},"ts":{}}}"#, 1000 + i * 10),
            &n_last(i as usize + 1, &data),
        );
        expected.push(1000 + i * 10);
    }
    s.post_json("/v1/push/seg/s", r#"{"data":{},"ts":1070}"#)
        .assert_error(409, "non_monotonic_timestamp");
    // On disk: a head and chunks of 3 under `<key>__seg/`, named by first ts.
    let mut chunks: Vec<String> = std::fs::read_dir(s.data_dir.join("seg/s__seg"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    chunks.sort();
    assert_eq!(
        chunks,
        [
            "0000000000001000.~doc",
            "0000000000001030.~doc",
            "0000000000001060.~doc"
        ]
    );
    let head = std::fs::read_to_string(s.data_dir.join("seg/s.~doc")).unwrap();
    assert_eq!(
        head,
        format!(
            r#"{{"v":1,"seg":true,"data":{{}},"n":8,"sealedN":6,"ts":1070,"hash":"{}","chunkSize":3,"tailKey":"seg/s__seg/0000000000001060"}}"#,
            n_last(8, r#"{"i":7}"#)
        )
    );
    let tail =
        std::fs::read_to_string(s.data_dir.join("seg/s__seg/0000000000001060.~doc")).unwrap();
    assert_eq!(
        tail,
        items_json(&[(1060, r#"{"i":6}"#), (1070, r#"{"i":7}"#)])
    );
    for q in [
        "full=1",
        "checkpoint=1015",
        "checkpoint=1030&last=2",
        "checkpoint=1029",
        "last=4",
        "limit=1",
        "checkpoint=2000",
        "last=0",
        "checkpoint=1070",
        "last=1000",
    ] {
        assert_eq!(
            pull_text(&s, &format!("/v1/pull/seg/s?{q}")),
            pull_text(&s, &format!("/v1/pull/logs/s?{q}")),
            "{q}"
        );
    }
    // A regular batch read of a segmented head shows its other data only.
    let r = s.get(
        r#"/v1/batch/pull?collections=seg&params=%7B%22seg%22%3A%5B%7B%22id%22%3A%22s%22%7D%5D%7D"#,
    );
    let v = r.json();
    assert_eq!(v["collections"]["seg"][0]["data"], serde_json::json!({}));
    assert_eq!(v["collections"]["seg"][0]["hash"], n_last(8, r#"{"i":7}"#));
}

// ---------------------------------------------------------------- author proofs

/// An append author proof: `"starfish-append-author-v1\n" + {"d":data,"k":key}`.
fn append_sig(seed: &[u8; 32], data_canonical: &str, key: &str) -> String {
    use ed25519_dalek::Signer;
    let input = format!("starfish-append-author-v1\n{{\"d\":{data_canonical},\"k\":\"{key}\"}}");
    let sig = ed25519_dalek::SigningKey::from_bytes(seed).sign(input.as_bytes());
    starfish::proto::encoding::b64_encode(&sig.to_bytes())
}

fn proof_body(data: &str, ts: i64, pk: &str, sig: &str) -> String {
    format!(r#"{{"data":{data},"ts":{ts},"authorPubkey":"{pk}","authorSignature":"{sig}"}}"#)
}

#[test]
fn author_proofs_are_required_verified_and_stored() {
    let s = server();
    let t = "/v1/push/signed/s1";
    let pk = pub_hex(&OTHER_SEED);
    let sig = append_sig(&OTHER_SEED, r#"{"m":1}"#, "signed/s1");
    let need = "append requires authorPubkey and authorSignature";
    s.post_json(t, r#"{"data":{"m":1}}"#)
        .assert_error(400, need);
    s.post_json(t, &format!(r#"{{"data":{{"m":1}},"authorPubkey":"{pk}"}}"#))
        .assert_error(400, need);
    s.post_json(
        t,
        &format!(r#"{{"data":{{"m":1}},"authorPubkey":"{pk}","authorSignature":5}}"#),
    )
    .assert_error(400, need);
    // Wrong data, other key (the proof binds the document key), a document
    // proof instead of an append proof, garbage.
    let bad = "invalid append author signature";
    s.post_json(t, &proof_body(r#"{"m":2}"#, 5, &pk, &sig))
        .assert_error(403, bad);
    s.post_json(
        "/v1/push/signed/s2",
        &proof_body(r#"{"m":1}"#, 5, &pk, &sig),
    )
    .assert_error(403, bad);
    s.post_json(t, &proof_body(r#"{"m":1}"#, 5, &pk, "!!!"))
        .assert_error(403, bad);
    s.post_json(t, &proof_body(r#"{"m":1}"#, 5, &pub_hex(&ROOT_SEED), &sig))
        .assert_error(403, bad);
    // Anonymous public write: no presenter to bind, the proof alone counts.
    append_ok(
        &s,
        t,
        &proof_body(r#"{"m":1}"#, 5, &pk, &sig),
        &n_last(1, r#"{"m":1}"#),
    );
    // The proof is over the sanitised data.
    append_ok(
        &s,
        t,
        &proof_body(r#"{"m":1,"constructor":1}"#, 6, &pk, &sig),
        &n_last(2, r#"{"m":1}"#),
    );
    let r = s.get("/v1/pull/signed/s1?last=1");
    assert_eq!(
        r.json()["data"]["items"][0],
        serde_json::json!({"ts": 6, "data": {"m": 1}, "authorPubkey": pk, "authorSignature": sig})
    );
    // requireAuthorSignature: false stores whatever proof is sent, unchecked.
    append_ok(
        &s,
        "/v1/push/logs/u",
        r#"{"data":{},"ts":1,"authorPubkey":"ab","authorSignature":"cd"}"#,
        &n_last(1, "{}"),
    );
    append_ok(
        &s,
        "/v1/push/logs/u",
        r#"{"data":{},"ts":2,"authorPubkey":"ab"}"#,
        &n_last(2, "{}"),
    );
    assert_eq!(
        pull_text(&s, "/v1/pull/logs/u?full=1"),
        format!(
            r#"{{"data":{{"items":[{{"ts":1,"data":{{}},"authorPubkey":"ab","authorSignature":"cd"}},{{"ts":2,"data":{{}}}}]}},"hash":"{}","timestamp":{{TS}}}}"#,
            n_last(2, "{}")
        )
    );
}

#[test]
fn a_signed_append_must_be_authored_by_the_presenter() {
    let s = server();
    let cert = device_cap(&ROOT_SEED, scope(&["read", "write"], None));
    let uid = user_id(&ROOT_SEED);
    let target = format!("/v1/push/own/{uid}");
    let key = format!("own/{uid}");
    let mine = proof_body(
        r#"{"n":1}"#,
        50,
        &pub_hex(&ROOT_SEED),
        &append_sig(&ROOT_SEED, r#"{"n":1}"#, &key),
    );
    let theirs = proof_body(
        r#"{"n":1}"#,
        50,
        &pub_hex(&OTHER_SEED),
        &append_sig(&OTHER_SEED, r#"{"n":1}"#, &key),
    );
    signed_post(&s, &ROOT_SEED, &cert, &target, &theirs)
        .send(&s)
        .assert_error(403, "append author must be the request presenter");
    let r = signed_post(&s, &ROOT_SEED, &cert, &target, &mine).send(&s);
    r.assert_json(
        200,
        &format!(r#"{{"hash":"{}","timestamp":50}}"#, n_last(1, r#"{"n":1}"#)),
    );
    // Anonymous requests have no roles on a self collection.
    s.post_json(&target, &mine).assert_error(403, "Forbidden");
    let pull = format!("/v1/pull/own/{uid}?checkpoint=0");
    let r = signed_get(&s, &ROOT_SEED, &cert, &pull).send(&s);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.json()["data"]["items"][0]["authorPubkey"],
        pub_hex(&ROOT_SEED)
    );
}

// ---------------------------------------------------------------- persist: false

#[test]
fn persist_false_answers_the_data_hash_and_stores_nothing() {
    let s = server();
    let r = s.post_json("/v1/push/queue/q", r#"{"data":{"b":1,"a":2},"ts":77}"#);
    r.assert_json(
        200,
        &format!(
            r#"{{"hash":"{}","timestamp":77}}"#,
            sha256_hex(br#"{"a":2,"b":1}"#)
        ),
    );
    let t0 = now_ms();
    let r = s.post_json("/v1/push/queue/q", r#"{"data":{}}"#);
    r.assert_json_ts(
        200,
        &format!(r#"{{"hash":"{}","timestamp":{{TS}}}}"#, sha256_hex(b"{}")),
        t0,
    );
    s.post_json("/v1/push/queue/q", r#"{"data":1}"#)
        .assert_error(400, "Missing or invalid data");
    // Pulls read it like a regular (here: missing) document; no bound needed.
    s.get("/v1/pull/queue/q")
        .assert_json_ts(200, r#"{"data":{},"hash":"","timestamp":{TS}}"#, t0);
    assert!(!s.data_dir.join("queue").exists(), "nothing stored");
    // A persist=false collection may be a bundle member.
    s.post_json("/v1/push/bun/x/m1", r#"{"data":{"a":1},"ts":5}"#)
        .assert_json(
            200,
            &format!(
                r#"{{"hash":"{}","timestamp":5}}"#,
                sha256_hex(br#"{"a":1}"#)
            ),
        );
    s.get("/v1/pull/bun/x").assert_json_ts(
        200,
        r#"{"collections":{"m1":{"data":{},"hash":""},"m2":{"data":{},"hash":""}},"timestamp":{TS}}"#,
        t0,
    );
}

#[test]
fn an_expired_log_pulls_empty_with_the_stored_etag() {
    // ttlMs on an append-only log, as the official route applies it after
    // the bounded read: the whole answer becomes the empty one, while the
    // read's ETag (the stored hash) stays and no 304 is given; batch
    // entries keep everything but the elements.
    let s = server();
    append_ok(
        &s,
        "/v1/push/ttl/t",
        r#"{"data":{"a":1},"ts":5}"#,
        &n_last(1, r#"{"a":1}"#),
    );
    append_ok(
        &s,
        "/v1/push/ttl/t",
        r#"{"data":{"a":2},"ts":6}"#,
        &n_last(2, r#"{"a":2}"#),
    );
    let hash = n_last(2, r#"{"a":2}"#);
    let etag = format!("\"{hash}\"");
    for inm in ["\"x\"", etag.as_str()] {
        let r = Req::new("GET", "/v1/pull/ttl/t?full=1")
            .header("If-None-Match", inm)
            .send(&s);
        r.assert_json_ts(200, r#"{"data":{},"hash":"","timestamp":{TS}}"#, 0);
        assert_eq!(r.header("etag"), Some(etag.as_str()));
        assert_eq!(r.header("cache-control"), Some("max-age=2"));
    }
    s.get("/v1/pull/ttl/none?full=1").assert_json_ts(
        200,
        r#"{"data":{"items":[]},"hash":"","timestamp":{TS}}"#,
        0,
    );
    let v = batch(
        &s,
        "ttl",
        r#"{"ttl":[{"id":"t"}]}"#,
        r#"{"ttl":[{"last":1}]}"#,
    )
    .json();
    assert_eq!(
        v["collections"]["ttl"][0]["data"],
        serde_json::json!({"items": []})
    );
    assert_eq!(v["collections"]["ttl"][0]["hash"], hash);
}

// ---------------------------------------------------------------- batch

fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn batch(s: &TestServer, cols: &str, params: &str, append: &str) -> Resp {
    let mut q = format!("/v1/batch/pull?collections={}", enc(cols));
    if !params.is_empty() {
        q.push_str(&format!("&params={}", enc(params)));
    }
    q.push_str(&format!("&appendParams={}", enc(append)));
    s.get(&q)
}

#[test]
fn batch_append_params_request_checks() {
    let s = server();
    let p = r#"{"seg":[{"id":"s"}]}"#;
    let err = |ap: &str, msg: &str| batch(&s, "seg", p, ap).assert_error(400, msg);
    let invalid = "Invalid appendParams parameter";
    for ap in [
        "x",
        "[]",
        "null",
        r#"{"seg":{}}"#,
        r#"{"seg":[1]}"#,
        r#"{"seg":[[]]}"#,
        r#"{"seg":[{"since":-1}]}"#,
        r#"{"seg":[{"last":1.5}]}"#,
        r#"{"seg":[{"limit":"x"}]}"#,
        r#"{"b":[{"full":true}],"1":[{"last":-1}]}"#,
    ] {
        err(ap, invalid);
    }
    for full in ["true", "1", r#""true""#, r#""1""#] {
        err(
            &format!(r#"{{"seg":[{{"full":{full}}}]}}"#),
            r#"appendParams["seg"]: full is not allowed in batch pull"#,
        );
    }
    err(
        r#"{"seg":[{},{}]}"#,
        "appendParams length mismatch: must equal params length for each collection",
    );
    // 6 entries of a collection without maxPullLimit count 1000 each.
    err(
        r#"{"zz":[{},{},{},{},{},{}]}"#,
        "Batch append element budget exceeded",
    );
    // maxPullLimit 2 (strict) bounds its entries' share; 5000 in all fits.
    let r = batch(
        &s,
        "strict",
        r#"{"strict":[{"id":"t"},{"id":"t"},{"id":"t"}]}"#,
        r#"{"strict":[{"limit":9999},{},{}],"zz":[{},{},{},{}]}"#,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    // Checked after the params and the read count.
    batch(&s, "seg", "[]", r#"{"seg":[{"full":true}]}"#)
        .assert_error(400, "Invalid params parameter");
}

#[test]
fn batch_append_params_names_are_plain_names() {
    // COMPATIBILITY.md: the official handler looks `params[<name>]` up with
    // inherited `Object.prototype` members (`constructor` has a `length`).
    let s = server();
    batch(&s, "constructor", "", r#"{"constructor":[]}"#).assert_json(
        200,
        r#"{"collections":{"constructor":[{"error":"Collection not found"}]}}"#,
    );
}

#[test]
fn batch_append_params_read_bounded_tails() {
    let s = server();
    for i in 0..5i64 {
        let data = format!(r#"{{"i":{i}}}"#);
        append_ok(
            &s,
            "/v1/push/seg/b",
            &format!(r#"{{"data":{data},"ts":{}}}"#, 100 + i),
            &n_last(i as usize + 1, &data),
        );
    }
    let hash = n_last(5, r#"{"i":4}"#);
    let t0 = now_ms();
    let r = batch(
        &s,
        "seg,plain,queue,log",
        r#"{"seg":[{"id":"b"},{"id":"b"},{"id":"b"},{"id":"b"},{"id":"b"},{"id":"b"}],"plain":[{"id":"p"}],"queue":[{"id":"q"}],"log":[{"id":"none"}]}"#,
        r#"{"seg":[{"since":102},{"last":2,"limit":1},null,{},{"since":"103","last":true},{"since":1e21,"last":1}],"plain":[{"last":1}],"queue":[{"last":1}],"log":[{"since":0}]}"#,
    );
    let v = r.json();
    let now = v["collections"]["seg"][0]["timestamp"].as_i64().unwrap();
    assert!(now >= t0);
    let entry = |els: &[(i64, &str)]| {
        format!(
            r#"{{"data":{{"items":{}}},"hash":"{hash}","timestamp":{now}}}"#,
            items_json(els)
        )
    };
    let regular = format!(r#"{{"data":{{}},"hash":"{hash}","timestamp":{now}}}"#);
    let missing = format!(r#"{{"data":{{"items":[]}},"hash":"","timestamp":{now}}}"#);
    let expected = format!(
        r#"{{"collections":{{"seg":[{},{},{},{},{},{}],"plain":[{}],"queue":[{}],"log":[{}]}}}}"#,
        entry(&[(103, r#"{"i":3}"#), (104, r#"{"i":4}"#)]),
        entry(&[(104, r#"{"i":4}"#)]),
        regular,
        r#"{"error":"pull_bound_required"}"#,
        entry(&[(104, r#"{"i":4}"#)]),
        r#"{"error":"Invalid checkpoint"}"#,
        r#"{"error":"append_params_not_supported"}"#,
        r#"{"error":"append_params_not_supported"}"#,
        missing,
    );
    r.assert_json(200, &expected);
    // maxCheckpointAgeMs and maxPullLimit apply per entry.
    let old = now_ms() - 120_000;
    let r = batch(
        &s,
        "strict",
        r#"{"strict":[{"id":"t"}]}"#,
        &format!(r#"{{"strict":[{{"since":{old}}}]}}"#),
    );
    r.assert_json(
        200,
        r#"{"collections":{"strict":[{"error":"checkpoint_too_old"}]}}"#,
    );
}

// ---------------------------------------------------------------- replicas

const REPLICA_CONFIG: &str = r#"{"collections":[
  {"name":"ev","storagePath":"ev/all","readRoles":["public"],"writeRoles":["public"],
   "appendOnly":{"requireAuthorSignature":false}},
  {"name":"news","storagePath":"news/doc","readRoles":["public"],"writeRoles":["public"]}]}"#;

#[test]
fn append_only_collections_cannot_be_replicated() {
    // replica.md §3 rule 2, as the official replica plugin validates it.
    let dir = temp_dir("append-replica");
    let cfg = dir.join("config.json");
    std::fs::write(&cfg, REPLICA_CONFIG).unwrap();
    let rep = dir.join("replica.json");
    std::fs::write(
        &rep,
        r#"{"collections":{"ev":{"url":"http://127.0.0.1:9/v1","pullPath":"/pull/ev/all"}}}"#,
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_starfish"))
        .args(["serve", "--memory", "--listen", "127.0.0.1:0", "--config"])
        .arg(&cfg)
        .arg("--replica")
        .arg(&rep)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("[starfish-replica] invalid configuration:\n- Collection \"ev\": appendOnly cannot be used with remote replication"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_replica_serves_its_local_append_only_collections() {
    // The replica plugin only acts on replicated collections (here `news`,
    // whose primary is unreachable); a local log works as anywhere else.
    let s = Setup::new(REPLICA_CONFIG)
        .replica(r#"{"collections":{"news":{"url":"http://127.0.0.1:9/v1","pullPath":"/pull/news/doc","intervalMs":60000,"headers":{},"writeMode":"pull_only","syncTriggers":["scheduled"]}}}"#)
        .start();
    append_ok(
        &s,
        "/v1/push/ev/all",
        r#"{"data":{"a":1},"ts":3}"#,
        &n_last(1, r#"{"a":1}"#),
    );
    assert_eq!(
        pull_text(&s, "/v1/pull/ev/all?last=1"),
        format!(
            r#"{{"data":{{"items":[{{"ts":3,"data":{{"a":1}}}}]}},"hash":"{}","timestamp":{{TS}}}}"#,
            n_last(1, r#"{"a":1}"#)
        )
    );
    s.post_json("/v1/push/news/doc", r#"{"data":{}}"#)
        .assert_error(405, "This collection is read-only on this server");
}
