//! The HTTP API end to end: the real library server on an ephemeral
//! loopback port, spoken to in raw HTTP/1.1. Every expectation comes from
//! the spec (`wire.md`, `documents.md`, `auth.md`, README compatibility
//! policy), cited per test.

mod common;

use common::*;
use std::sync::{Arc, Barrier};

/// The config most tests run against (mounted at `/v1`).
const CONFIG: &str = r#"{
  "version": 1,
  "collections": [
    {"name": "pub", "storagePath": "pub/{id}", "readRoles": ["public"], "writeRoles": ["public"],
     "encryption": "none", "maxBodyBytes": 200, "cacheDurationMs": 60500},
    {"name": "ann", "storagePath": "announcements/global", "readRoles": ["public"], "writeRoles": ["public"],
     "encryption": "none", "maxBodyBytes": 100000},
    {"name": "settings", "storagePath": "users/{identity}/settings", "readRoles": ["self"], "writeRoles": ["self"],
     "encryption": "none", "maxBodyBytes": 200000, "cacheDurationMs": 2000},
    {"name": "caponly", "storagePath": "cap/{id}", "readRoles": ["cap:read:*"], "writeRoles": ["cap:write:*"],
     "encryption": "none", "maxBodyBytes": 10000},
    {"name": "ro", "storagePath": "ro/doc", "readRoles": ["public"], "writeRoles": ["public"],
     "encryption": "none", "maxBodyBytes": 1000, "pullOnly": true},
    {"name": "wo", "storagePath": "wo/doc", "readRoles": ["public"], "writeRoles": ["public"],
     "encryption": "none", "maxBodyBytes": 1000, "pushOnly": true},
    {"name": "kr", "storagePath": "kr/{id}", "readRoles": ["public"], "writeRoles": ["public"],
     "encryption": "none", "maxBodyBytes": 1000},
    {"name": "krw", "storagePath": "kr/{id}/_keyring", "readRoles": ["public"], "writeRoles": ["public"],
     "encryption": "none", "maxBodyBytes": 1000},
    {"name": "files", "storagePath": "files/{id}", "readRoles": ["public"], "writeRoles": ["public"],
     "encryption": "none", "maxBodyBytes": 1000, "cacheDurationMs": 1000,
     "allowedMimeTypes": ["text/plain", "image/*"]},
    {"name": "sfiles", "storagePath": "users/{identity}/files/{id}", "readRoles": ["self"], "writeRoles": ["self"],
     "encryption": "none", "maxBodyBytes": 1000, "allowedMimeTypes": ["*/*"]},
    {"name": "rootdoc", "storagePath": "root/doc", "readRoles": ["cap:read:*"], "writeRoles": ["cap:write:*"],
     "encryption": "none", "maxBodyBytes": 1000, "rootOnly": true},
    {"name": "prefs", "bundle": "userdata", "storagePath": "users/{identity}/data",
     "readRoles": ["self"], "writeRoles": ["self"], "encryption": "none", "maxBodyBytes": 1000},
    {"name": "profile", "bundle": "userdata", "storagePath": "users/{identity}/data",
     "readRoles": ["public"], "writeRoles": ["public"], "encryption": "none", "maxBodyBytes": 1000},
    {"name": "s1", "bundle": "vault", "storagePath": "vault/{identity}",
     "readRoles": ["self"], "writeRoles": ["self"], "encryption": "none", "maxBodyBytes": 1000},
    {"name": "s2", "bundle": "vault", "storagePath": "vault/{identity}",
     "readRoles": ["self"], "writeRoles": ["self"], "encryption": "none", "maxBodyBytes": 1000},
    {"name": "a", "bundle": "shared", "storagePath": "shared/data",
     "readRoles": ["public"], "writeRoles": ["public"], "encryption": "none", "maxBodyBytes": 1000},
    {"name": "b", "bundle": "shared", "storagePath": "shared/data",
     "readRoles": ["public"], "writeRoles": ["public"], "encryption": "none", "maxBodyBytes": 1000, "pushOnly": true},
    {"name": "c", "bundle": "shared", "storagePath": "shared/data",
     "readRoles": ["public"], "writeRoles": ["public"], "encryption": "none", "maxBodyBytes": 1000, "pullOnly": true}
  ],
  "namespaces": {
    "tenantA": {"collections": [
      {"name": "settings", "storagePath": "tenantA/users/{identity}/settings", "readRoles": ["self"], "writeRoles": ["self"],
       "encryption": "none", "maxBodyBytes": 1000},
      {"name": "notes", "storagePath": "tenantA/notes/{id}", "readRoles": ["public"], "writeRoles": ["public"],
       "encryption": "none", "maxBodyBytes": 1000}
    ]}
  }
}"#;

fn server() -> TestServer {
    Setup::new(CONFIG).start()
}

/// A server without the hot-document cache, for tests that change stored
/// files behind its back (which a running server with the cache does not
/// see until the document is written through it or evicted).
fn server_without_cache() -> TestServer {
    Setup::new(CONFIG).tweak(|o| o.cache_bytes = 0).start()
}

/// The empty pull answer.
const EMPTY: &str = r#"{"data":{},"hash":"","timestamp":{TS}}"#;
/// documents.md §2.5: sha256 of `{"theme":"dark"}`.
const DARK: &str = r#"{"theme":"dark"}"#;
const DARK_HASH: &str = "0f4f87db4567232a7f1756aa1534ec1314777b39c3bf5209f87cf9739321cddc";
/// documents.md §2.5: sha256 of `{}`.
const EMPTY_OBJ_HASH: &str = "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a";

fn push_body(data: &str, base: Option<&str>) -> String {
    match base {
        None => format!(r#"{{"data":{data}}}"#),
        Some(b) => format!(r#"{{"data":{data},"baseHash":{}}}"#, serde_json::json!(b)),
    }
}

/// Push and expect 200 `{"hash":<h>,"timestamp":<now>}`; returns the hash.
#[track_caller]
fn push_ok(s: &TestServer, target: &str, body: &str) -> String {
    let t0 = now_ms();
    let r = s.post_json(target, body);
    assert_eq!(r.status, 200, "push {target}: {}", r.text());
    let hash = r.json()["hash"].as_str().unwrap().to_owned();
    r.assert_json_ts(
        200,
        &format!(r#"{{"hash":"{hash}","timestamp":{{TS}}}}"#),
        t0,
    );
    hash
}

// ---------------------------------------------------------------------------
// Routing (wire.md §0, §1.2, §1.3, §1.7, §2, §8)

#[test]
fn health_answers_ok_and_server_time() {
    let s = server();
    let t0 = now_ms();
    s.get("/v1/health")
        .assert_json_ts(200, r#"{"ok":true,"ts":{TS}}"#, t0);
}

#[test]
fn percent_encoded_host_headers_are_served_not_crashed() {
    // Found by the http_head fuzz target: the URL parser's IDNA step once
    // asserted on upper-case letters decoded from a Host like this one.
    let s = server();
    for host in ["a%43b", "12CCC%43CC:8787", "%41"] {
        let raw = format!("GET /v1/health HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
        let r = common::send_raw(s.addr, raw.as_bytes());
        assert!(
            r.status == 200 || r.status == 400,
            "Host {host}: {}",
            r.status
        );
    }
}

#[test]
fn unknown_paths_wrong_methods_and_trailing_slashes_are_plain_404() {
    let s = server();
    for (m, p) in [
        ("GET", "/v1/nope"),
        ("GET", "/v1/health/"),
        ("GET", "/v1//health"),
        ("GET", "/v1/pull/pub/a/"),
        ("GET", "/v1/pull/pub/"),
        ("GET", "/v1/pull/pub//a"),
        ("GET", "/v1/pull/pub"),
        ("GET", "/v1/pull/pub/a/b"),
        ("GET", "/v1/push/pub/a"),
        ("POST", "/v1/pull/pub/a"),
        ("PUT", "/v1/pull/pub/a"),
        ("DELETE", "/v1/pull/pub/a"),
        ("OPTIONS", "/v1/pull/pub/a"),
        ("POST", "/v1/health"),
        ("POST", "/v1/batch/pull"),
        ("GET", "/v1/batch/pull/"),
        ("GET", "/v1/config"),
        // §1.3: dot segments are removed by URL normalisation first.
        ("GET", "/v1/pull/pub/.."),
        ("GET", "/v1/pull/pub/%2E%2E"),
        ("POST", "/v1/push/pub/%2e%2e"),
    ] {
        let r = Req::new(m, p).send(&s);
        assert_eq!(r.status, 404, "{m} {p}");
        r.assert_not_found();
    }
}

#[test]
fn pull_only_and_push_only_register_no_route() {
    let s = server();
    // pullOnly: no push route.
    s.post_json("/v1/push/ro/doc", &push_body("{}", None))
        .assert_not_found();
    s.get("/v1/pull/ro/doc")
        .assert_json_ts(200, EMPTY, now_ms() - 1000);
    // pushOnly: no pull route.
    s.get("/v1/pull/wo/doc").assert_not_found();
    push_ok(&s, "/v1/push/wo/doc", &push_body("{}", None));
}

#[test]
fn requests_outside_the_mount_are_404() {
    let s = server();
    for p in [
        "/health",
        "/pull/pub/a",
        "/batch/pull?collections=pub",
        "/v1health",
        "/v2/health",
        "/V1/health",
    ] {
        s.get(p).assert_not_found();
    }
    s.post_json("/push/pub/a", &push_body("{}", None))
        .assert_not_found();
}

#[test]
fn root_mount_serves_at_the_root() {
    let s = Setup::new(CONFIG).base_path("/").start();
    let t0 = now_ms();
    s.get("/health")
        .assert_json_ts(200, r#"{"ok":true,"ts":{TS}}"#, t0);
    s.get("/v1/health").assert_not_found();
    let h = push_ok(&s, "/push/pub/a", &push_body(DARK, None));
    assert_eq!(h, DARK_HASH);
    s.get("/pull/pub/a").assert_json_ts(
        200,
        &format!(r#"{{"data":{DARK},"hash":"{DARK_HASH}","timestamp":{{TS}}}}"#),
        t0,
    );
    s.get("/v1/pull/pub/a").assert_not_found();
}

#[test]
fn head_on_a_get_route_has_the_headers_and_no_body() {
    let s = server();
    push_ok(&s, "/v1/push/pub/a", &push_body(DARK, None));
    let get = s.get("/v1/pull/pub/a");
    let head = Req::new("HEAD", "/v1/pull/pub/a").send(&s);
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
    assert_eq!(head.header("content-type"), Some("application/json"));
    assert_eq!(
        head.header("etag"),
        Some(format!("\"{DARK_HASH}\"").as_str())
    );
    assert_eq!(head.header("cache-control"), Some("max-age=60"));
    assert_eq!(
        head.header("content-length"),
        Some(get.body.len().to_string().as_str()),
        "same-length timestamps: HEAD reports the GET body length"
    );
    let h = Req::new("HEAD", "/v1/health").send(&s);
    assert_eq!((h.status, h.body.len()), (200, 0));
    assert_eq!(h.header("content-type"), Some("application/json"));
    // HEAD on a push route: no GET route there.
    let r = Req::new("HEAD", "/v1/push/pub/a").send(&s);
    assert_eq!((r.status, r.body.len()), (404, 0));
}

#[test]
fn namespaces_are_url_prefixes_with_their_own_batch() {
    let s = server();
    let t0 = now_ms();
    s.get("/v1/tenantA/pull/tenantA/notes/n1")
        .assert_json_ts(200, EMPTY, t0);
    push_ok(
        &s,
        "/v1/tenantA/push/tenantA/notes/n1",
        &push_body(DARK, None),
    );
    s.get("/v1/tenantA/pull/tenantA/notes/n1").assert_json_ts(
        200,
        &format!(r#"{{"data":{DARK},"hash":"{DARK_HASH}","timestamp":{{TS}}}}"#),
        t0,
    );
    // Not at the root, no health under a namespace, unknown namespace.
    s.get("/v1/pull/tenantA/notes/n1").assert_not_found();
    s.get("/v1/tenantA/health").assert_not_found();
    s.get("/v1/tenantB/pull/tenantA/notes/n1")
        .assert_not_found();
    s.get("/v1/tenantA/pull/pub/a").assert_not_found();
    // Namespaced batch sees only its own collections (§2.3).
    let r = s.get("/v1/tenantA/batch/pull?collections=notes,pub&params=%7B%22notes%22%3A%5B%7B%22id%22%3A%22n1%22%7D%5D%7D");
    let ts = r.json()["collections"]["notes"][0]["timestamp"]
        .as_i64()
        .unwrap();
    r.assert_json(
        200,
        &format!(
            r#"{{"collections":{{"notes":[{{"data":{DARK},"hash":"{DARK_HASH}","timestamp":{ts}}}],"pub":[{{"error":"Collection not found"}}]}}}}"#
        ),
    );
    // The root batch does not see namespaced collections.
    s.get("/v1/batch/pull?collections=notes").assert_json(
        200,
        r#"{"collections":{"notes":[{"error":"Collection not found"}]}}"#,
    );
}

#[test]
fn path_params_are_percent_decoded_then_validated() {
    let s = server();
    let t0 = now_ms();
    // `%40` decodes to `@`, which is allowed.
    s.get("/v1/pull/pub/a%40b").assert_json_ts(200, EMPTY, t0);
    // An encoded `/` stays in one segment and then fails the charset.
    s.get("/v1/pull/pub/a%2Fb")
        .assert_error(400, "Invalid path parameter");
    s.get("/v1/pull/pub/a%20b")
        .assert_error(400, "Invalid path parameter");
    // `..` inside a value passes the charset but makes the key unsafe.
    s.get("/v1/pull/pub/a..b")
        .assert_error(400, "Invalid path parameter");
    s.get("/v1/pull/pub/%2E%2Ex")
        .assert_error(400, "Invalid path parameter");
}

#[test]
fn ids_the_store_cannot_hold_are_400_before_the_store() {
    // A segment over 200 bytes is client input the store refuses: the
    // protocol's 400 for a bad path parameter, in every route that reads or
    // writes (the official filesystem store answers 500; COMPATIBILITY.md).
    let s = server();
    let t0 = now_ms();
    let long = "a".repeat(201);
    let at_limit = "b".repeat(200);
    s.get(&format!("/v1/pull/pub/{long}"))
        .assert_error(400, "Invalid path parameter");
    s.post_json(&format!("/v1/push/pub/{long}"), &push_body("{}", None))
        .assert_error(400, "Invalid path parameter");
    // The body checks keep their official place before it.
    s.post_json(&format!("/v1/push/pub/{long}"), r#"{"data":[]}"#)
        .assert_error(400, "Missing or invalid data");
    // Bundle pull and member push.
    s.get(&format!("/v1/pull/users/{long}/data"))
        .assert_error(400, "Invalid path parameter");
    // Binary collections.
    s.get(&format!("/v1/pull/files/{long}"))
        .assert_error(400, "Invalid path parameter");
    Req::new("POST", &format!("/v1/push/files/{long}"))
        .header("Content-Type", "text/plain")
        .body(b"hi")
        .send(&s)
        .assert_error(400, "Invalid path parameter");
    // A batch entry, next to a good one.
    let params = format!(r#"{{"pub":[{{"id":"{long}"}},{{"id":"x"}}]}}"#);
    let r = s.get(&batch_url("/v1", "pub", Some(&params)));
    assert_eq!(
        batch_shape(&r, t0),
        r#"{"collections":{"pub":[{"error":"Invalid path parameter"},{"data":{},"hash":"","timestamp":{TS}}]}}"#
    );
    // At the limit everything works.
    push_ok(
        &s,
        &format!("/v1/push/pub/{at_limit}"),
        &push_body(DARK, None),
    );
    s.get(&format!("/v1/pull/pub/{at_limit}")).assert_json_ts(
        200,
        &format!(r#"{{"data":{DARK},"hash":"{DARK_HASH}","timestamp":{{TS}}}}"#),
        t0,
    );
    // Nothing with the long id reached the disk.
    fn names(dir: &std::path::Path, out: &mut Vec<String>) {
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            out.push(e.file_name().to_string_lossy().into_owned());
            if e.path().is_dir() {
                names(&e.path(), out);
            }
        }
    }
    let mut all = Vec::new();
    names(&s.data_dir, &mut all);
    assert!(all.iter().any(|n| n.contains(&at_limit)), "{all:?}");
    assert!(!all.iter().any(|n| n.contains(&long)), "{all:?}");
}

// ---------------------------------------------------------------------------
// Pull (wire.md §4, documents.md §6)

#[test]
fn pull_of_a_missing_document_is_an_empty_200_without_etag() {
    let s = server();
    let t0 = now_ms();
    let r = s.get("/v1/pull/pub/missing");
    r.assert_json_ts(200, EMPTY, t0);
    assert_eq!(r.header("etag"), None);
    // cacheDurationMs 60500 on a public collection: floor(60.5).
    assert_eq!(r.header("cache-control"), Some("max-age=60"));
    // No cacheDurationMs: no Cache-Control.
    let r = s.get("/v1/pull/ann");
    assert_eq!(r.status, 404, "ann is at announcements/global");
    let r = s.get("/v1/pull/announcements/global");
    r.assert_json_ts(200, EMPTY, t0);
    assert_eq!(r.header("cache-control"), None);
}

#[test]
fn pull_etag_and_if_none_match() {
    let s = server();
    push_ok(&s, "/v1/push/pub/e", &push_body(DARK, None));
    let t0 = now_ms();
    let r = s.get("/v1/pull/pub/e");
    r.assert_json_ts(
        200,
        &format!(r#"{{"data":{DARK},"hash":"{DARK_HASH}","timestamp":{{TS}}}}"#),
        t0,
    );
    let etag = format!("\"{DARK_HASH}\"");
    assert_eq!(r.header("etag"), Some(etag.as_str()));

    // Byte-equal If-None-Match: 304, empty, none of the entity headers.
    let r = Req::new("GET", "/v1/pull/pub/e")
        .header("If-None-Match", &etag)
        .send(&s);
    assert_eq!(r.status, 304);
    assert!(r.body.is_empty());
    // The status line carries the standard reason phrase.
    let raw = Req::new("GET", "/v1/pull/pub/e")
        .header("If-None-Match", &etag)
        .to_bytes(&s.host());
    let mut conn = std::net::TcpStream::connect(s.addr).unwrap();
    std::io::Write::write_all(&mut conn, &raw).unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(conn), &mut line).unwrap();
    assert_eq!(line, "HTTP/1.1 304 Not Modified\r\n");
    for h in ["etag", "content-type", "cache-control", "content-length"] {
        assert_eq!(r.header(h), None, "304 carries no {h}: {:?}", r.headers);
    }

    // Weak, list, unquoted and other forms never match.
    for inm in [
        format!("W/{etag}"),
        format!("{etag}, \"x\""),
        format!("\"x\", {etag}"),
        DARK_HASH.to_owned(),
        "*".to_owned(),
    ] {
        let r = Req::new("GET", "/v1/pull/pub/e")
            .header("If-None-Match", &inm)
            .send(&s);
        assert_eq!(r.status, 200, "If-None-Match {inm:?}");
        assert_eq!(r.header("etag"), Some(etag.as_str()));
    }

    // An empty document has no ETag, so nothing can match.
    let r = Req::new("GET", "/v1/pull/pub/none")
        .header("If-None-Match", "\"\"")
        .send(&s);
    assert_eq!(r.status, 200);
}

#[test]
fn pull_with_keyring() {
    let s = server();
    push_ok(&s, "/v1/push/kr/a", &push_body(r#"{"doc":1}"#, None));
    let doc_hash = sha256_hex(br#"{"doc":1}"#);
    let t0 = now_ms();
    // Active flag, no keyring stored: "keyring":null appended last.
    for q in [
        "withKeyring=1",
        "withKeyring=true",
        "withKeyring=TRUE",
        "x=1&withKeyring=1",
    ] {
        s.get(&format!("/v1/pull/kr/a?{q}")).assert_json_ts(
            200,
            &format!(
                r#"{{"data":{{"doc":1}},"hash":"{doc_hash}","timestamp":{{TS}},"keyring":null}}"#
            ),
            t0,
        );
    }
    // Inactive values: no keyring field at all.
    for q in [
        "withKeyring=0",
        "withKeyring=yes",
        "withKeyring=",
        "withkeyring=1",
        "checkpoint=5",
    ] {
        s.get(&format!("/v1/pull/kr/a?{q}")).assert_json_ts(
            200,
            &format!(r#"{{"data":{{"doc":1}},"hash":"{doc_hash}","timestamp":{{TS}}}}"#),
            t0,
        );
    }
    // The keyring sibling lives at <documentKey>/_keyring.
    let kh = push_ok(
        &s,
        "/v1/push/kr/a/_keyring",
        &push_body(r#"{"k":"v"}"#, None),
    );
    let r = s.get("/v1/pull/kr/a?withKeyring=1");
    let ts = r.json()["timestamp"].as_i64().unwrap();
    r.assert_json(
        200,
        &format!(
            r#"{{"data":{{"doc":1}},"hash":"{doc_hash}","timestamp":{ts},"keyring":{{"data":{{"k":"v"}},"hash":"{kh}","timestamp":{ts}}}}}"#
        ),
    );
    // A missing document still gets the keyring field.
    push_ok(&s, "/v1/push/kr/b/_keyring", &push_body("{}", None));
    s.get("/v1/pull/kr/b?withKeyring=1").assert_json_ts(
        200,
        &format!(
            r#"{{"data":{{}},"hash":"","timestamp":{{TS}},"keyring":{{"data":{{}},"hash":"{EMPTY_OBJ_HASH}","timestamp":{{TS}}}}}}"#
        ),
        t0,
    );
}

/// Sign an author proof (documents.md §5.4) with a raw Ed25519 key.
fn author_sig(seed: &[u8; 32], data_canonical: &str, key: &str) -> String {
    use ed25519_dalek::Signer;
    let input = format!("starfish-doc-author-v1\n{{\"d\":{data_canonical},\"k\":\"{key}\"}}");
    let sig = ed25519_dalek::SigningKey::from_bytes(seed).sign(input.as_bytes());
    starfish::proto::encoding::b64_encode(&sig.to_bytes())
}

#[test]
fn author_proofs_are_stored_and_returned_by_pull() {
    let s = server();
    let pk = pub_hex(&OTHER_SEED);
    let sig = author_sig(&OTHER_SEED, r#"{"a":1}"#, "kr/au");
    let body = format!(r#"{{"data":{{"a":1}},"authorPubkey":"{pk}","authorSignature":"{sig}"}}"#);
    let h = push_ok(&s, "/v1/push/kr/au", &body);
    s.get("/v1/pull/kr/au").assert_json_ts(
        200,
        &format!(
            r#"{{"data":{{"a":1}},"hash":"{h}","timestamp":{{TS}},"authorPubkey":"{pk}","authorSignature":"{sig}"}}"#
        ),
        now_ms() - 5000,
    );
    // Signed over another key: 403.
    let bad = author_sig(&OTHER_SEED, r#"{"a":1}"#, "kr/other");
    let body = format!(r#"{{"data":{{"a":1}},"authorPubkey":"{pk}","authorSignature":"{bad}"}}"#);
    s.post_json("/v1/push/kr/au2", &body)
        .assert_error(403, "invalid document author signature");
    // Only one of the two fields: 400.
    let body = format!(r#"{{"data":{{"a":1}},"authorPubkey":"{pk}"}}"#);
    s.post_json("/v1/push/kr/au2", &body).assert_error(
        400,
        "author proof requires authorPubkey and authorSignature",
    );
    // Batch entries carry no author fields (§7.4 step 12).
    let r = s.get(
        "/v1/batch/pull?collections=kr&params=%7B%22kr%22%3A%5B%7B%22id%22%3A%22au%22%7D%5D%7D",
    );
    let ts = r.json()["collections"]["kr"][0]["timestamp"]
        .as_i64()
        .unwrap();
    r.assert_json(
        200,
        &format!(
            r#"{{"collections":{{"kr":[{{"data":{{"a":1}},"hash":"{h}","timestamp":{ts}}}]}}}}"#
        ),
    );
}

// ---------------------------------------------------------------------------
// Push pipeline order (wire.md §5.1)

#[test]
fn push_param_check_comes_first() {
    let s = server();
    // Invalid param beats a bad content type and a too-large body.
    Req::new("POST", "/v1/push/pub/a%20b")
        .header("Content-Type", "text/plain")
        .body(&[b'x'; 300])
        .send(&s)
        .assert_error(400, "Invalid path parameter");
}

#[test]
fn push_auth_comes_before_key_size_and_body_checks() {
    let s = server();
    // Anonymous on a self collection: 403 even with every other check failing.
    Req::new("POST", "/v1/push/users/u1/settings")
        .header("Content-Type", "text/plain")
        .body(b"nope")
        .send(&s)
        .assert_error(403, "Forbidden");
    // A malformed cap: 401.
    Req::new("POST", "/v1/push/users/u1/settings")
        .header("Authorization", "Cap !!!notbase64")
        .header("Content-Type", "text/plain")
        .body(b"nope")
        .send(&s)
        .assert_error(401, "Unauthorized");
    // Auth before the unsafe-key check.
    Req::new("POST", "/v1/push/users/a..b/settings")
        .header("Content-Type", "application/json")
        .body(b"{}")
        .send(&s)
        .assert_error(403, "Forbidden");
}

#[test]
fn push_unsafe_key_comes_before_size_and_content_type() {
    let s = server();
    Req::new("POST", "/v1/push/pub/a..b")
        .header("Content-Type", "text/plain")
        .body(&[b'x'; 300])
        .send(&s)
        .assert_error(400, "Invalid path parameter");
    Req::new("POST", "/v1/push/pub/%2E%2Ex")
        .header("Content-Type", "application/json")
        .body(b"{\"data\":{}}")
        .send(&s)
        .assert_error(400, "Invalid path parameter");
}

#[test]
fn push_content_length_checks() {
    let s = server();
    // maxBodyBytes 200: Content-Length 201 → 413, before the content type.
    Req::new("POST", "/v1/push/pub/big")
        .header("Content-Type", "text/plain")
        .body(&[b' '; 201])
        .send(&s)
        .assert_error(413, "Payload too large");
    // Exactly 200 passes the size check (and then fails later).
    let mut body = br#"{"data":{}}"#.to_vec();
    body.resize(200, b' ');
    push_ok(&s, "/v1/push/pub/big", std::str::from_utf8(&body).unwrap());
    // No Content-Length (and no body): no size check at all (quirk), so the
    // body check answers.
    Req::new("POST", "/v1/push/pub/nolen")
        .header("Content-Type", "application/json")
        .no_content_length()
        .send(&s)
        .assert_error(400, "Body must be a JSON object");
    // A non-numeric Content-Length never reaches the route (the HTTP layer,
    // like Node's parser, rejects it with 400), so the route's
    // `Invalid Content-Length` is not observable over HTTP/1.1.
    let r = Req::new("POST", "/v1/push/pub/x")
        .header("Content-Type", "application/json")
        .header("Content-Length", "12abc")
        .body(b"{\"data\":{}}")
        .send(&s);
    assert_eq!(r.status, 400);
}

#[test]
fn push_content_type_must_contain_application_json() {
    let s = server();
    let body = push_body("{}", None);
    for ct in [
        Some("text/plain"),
        Some("APPLICATION/JSON"),
        Some("application/jso"),
        None,
    ] {
        let mut req = Req::new("POST", "/v1/push/pub/ct").body(body.as_bytes());
        if let Some(ct) = ct {
            req = req.header("Content-Type", ct);
        }
        req.send(&s)
            .assert_error(415, "Content-Type must be application/json");
    }
    for (i, ct) in [
        "application/json; charset=utf-8",
        "application/jsonx",
        "text/application/json",
    ]
    .iter()
    .enumerate()
    {
        let r = Req::new("POST", &format!("/v1/push/pub/ct{i}"))
            .header("Content-Type", ct)
            .body(body.as_bytes())
            .send(&s);
        assert_eq!(r.status, 200, "{ct}: {}", r.text());
    }
}

#[test]
fn push_body_must_be_a_json_object() {
    let s = server();
    for body in [
        "",
        "[]",
        "null",
        "1",
        "\"x\"",
        "{",
        "{\"data\":{}} x",
        "{'data':{}}",
    ] {
        s.post_json("/v1/push/pub/b", body)
            .assert_error(400, "Body must be a JSON object");
    }
    // A leading BOM is allowed.
    let mut bom = b"\xEF\xBB\xBF".to_vec();
    bom.extend_from_slice(br#"{"data":{}}"#);
    let r = Req::new("POST", "/v1/push/pub/bom")
        .header("Content-Type", "application/json")
        .body(&bom)
        .send(&s);
    assert_eq!(r.status, 200, "{}", r.text());
}

/// A body `{"data":{"a":…}}` whose object depth (body = 1) is `depth`.
fn nested_body(depth: usize) -> String {
    let inner = depth - 1;
    format!(
        "{{\"data\":{}1{}}}",
        "{\"a\":".repeat(inner - 1) + "{\"a\":",
        "}".repeat(inner)
    )
}

#[test]
fn push_nesting_depth_64_is_fine_65_is_too_deep() {
    let s = server();
    let ok = nested_body(64);
    assert_eq!(ok.matches('{').count(), 64);
    push_ok(&s, "/v1/push/announcements/global", &ok);
    s.post_json("/v1/push/announcements/global", &nested_body(65))
        .assert_error(400, "Body nesting too deep");
    // Arrays count too.
    let arr = format!(
        "{{\"data\":{{\"a\":{}1{}}}}}",
        "[".repeat(62),
        "]".repeat(62)
    );
    let r = s.post_json("/v1/push/announcements/global", &arr);
    assert_eq!(
        r.status,
        409,
        "depth 64 passes; create-only conflicts: {}",
        r.text()
    );
    let arr = format!(
        "{{\"data\":{{\"a\":{}1{}}}}}",
        "[".repeat(63),
        "]".repeat(63)
    );
    s.post_json("/v1/push/announcements/global", &arr)
        .assert_error(400, "Body nesting too deep");
}

#[test]
fn push_data_and_base_hash_validation() {
    let s = server();
    for body in [
        "{}",
        r#"{"data":[]}"#,
        r#"{"data":null}"#,
        r#"{"data":"x"}"#,
        r#"{"data":1,"baseHash":1}"#,
    ] {
        s.post_json("/v1/push/pub/d", body)
            .assert_error(400, "Missing or invalid data");
    }
    for body in [
        r#"{"data":{},"baseHash":1}"#,
        r#"{"data":{},"baseHash":false}"#,
        r#"{"data":{},"baseHash":{}}"#,
        r#"{"data":{},"baseHash":[]}"#,
    ] {
        s.post_json("/v1/push/pub/d", body)
            .assert_error(400, "baseHash must be a string or null");
    }
    // Other top-level fields are ignored.
    push_ok(&s, "/v1/push/pub/d", r#"{"data":{},"ts":5,"extra":[1]}"#);
}

// ---------------------------------------------------------------------------
// Optimistic concurrency (documents.md §5.2, §5.3)

#[test]
fn optimistic_concurrency_table() {
    let s = server();
    let conflict = |target: &str, body: &str| {
        s.post_json(target, body).assert_error(409, "hash_mismatch");
    };
    // none stored
    push_ok(&s, "/v1/push/pub/n1", &push_body(DARK, None));
    push_ok(
        &s,
        "/v1/push/pub/n2",
        r#"{"data":{"theme":"dark"},"baseHash":null}"#,
    );
    push_ok(&s, "/v1/push/pub/n3", &push_body(DARK, Some("")));
    conflict("/v1/push/pub/n4", &push_body(DARK, Some(DARK_HASH)));
    s.get("/v1/pull/pub/n4")
        .assert_json_ts(200, EMPTY, now_ms() - 5000);
    // valid doc with hash H
    conflict("/v1/push/pub/n1", &push_body("{}", None));
    conflict("/v1/push/pub/n1", r#"{"data":{},"baseHash":null}"#);
    conflict("/v1/push/pub/n1", &push_body("{}", Some("")));
    conflict("/v1/push/pub/n1", &push_body("{}", Some(EMPTY_OBJ_HASH)));
    conflict(
        "/v1/push/pub/n1",
        &push_body("{}", Some(&DARK_HASH.to_uppercase())),
    );
    // The right base hash writes; identical data rewrites with the same hash.
    let h = push_ok(&s, "/v1/push/pub/n1", &push_body(DARK, Some(DARK_HASH)));
    assert_eq!(h, DARK_HASH);
    let h = push_ok(&s, "/v1/push/pub/n1", &push_body("{}", Some(DARK_HASH)));
    assert_eq!(h, EMPTY_OBJ_HASH);
    s.get("/v1/pull/pub/n1").assert_json_ts(
        200,
        &format!(r#"{{"data":{{}},"hash":"{EMPTY_OBJ_HASH}","timestamp":{{TS}}}}"#),
        now_ms() - 5000,
    );
}

#[test]
fn a_corrupt_stored_document_reads_as_missing_and_is_overwritten_only_with_empty_base_hash() {
    let s = server_without_cache();
    // Lay a corrupt value at key pub/bad in the filesystem store.
    push_ok(&s, "/v1/push/pub/bad", &push_body("{}", None));
    let file = s.data_dir.join("pub").join("bad.~doc");
    assert!(file.exists(), "store layout: {}", file.display());
    std::fs::write(&file, b"{not json").unwrap();

    s.get("/v1/pull/pub/bad")
        .assert_json_ts(200, EMPTY, now_ms() - 5000);
    let r = s.get("/v1/pull/pub/bad");
    assert_eq!(r.header("etag"), None);
    s.post_json("/v1/push/pub/bad", &push_body(DARK, None))
        .assert_error(409, "hash_mismatch");
    s.post_json("/v1/push/pub/bad", r#"{"data":{},"baseHash":null}"#)
        .assert_error(409, "hash_mismatch");
    s.post_json("/v1/push/pub/bad", &push_body(DARK, Some(DARK_HASH)))
        .assert_error(409, "hash_mismatch");
    assert_eq!(
        push_ok(&s, "/v1/push/pub/bad", &push_body(DARK, Some(""))),
        DARK_HASH
    );
    s.get("/v1/pull/pub/bad").assert_json_ts(
        200,
        &format!(r#"{{"data":{DARK},"hash":"{DARK_HASH}","timestamp":{{TS}}}}"#),
        now_ms() - 5000,
    );
}

#[test]
fn push_sanitises_objects_but_not_arrays_and_hashes_the_sanitised_data() {
    let s = server();
    let data = r#"{"__proto__":{"x":1},"constructor":1,"k":{"prototype":2,"z":3,"__class__":4,"__dict__":5},"a":[{"__proto__":1,"constructor":2}]}"#;
    let h = push_ok(&s, "/v1/push/announcements/global", &push_body(data, None));
    // stableStringify of the sanitised object (keys sorted).
    let expected = sha256_hex(br#"{"a":[{"__proto__":1,"constructor":2}],"k":{"z":3}}"#);
    assert_eq!(h, expected);
    s.get("/v1/pull/announcements/global").assert_json_ts(
        200,
        &format!(
            r#"{{"data":{{"k":{{"z":3}},"a":[{{"__proto__":1,"constructor":2}}]}},"hash":"{expected}","timestamp":{{TS}}}}"#
        ),
        now_ms() - 5000,
    );
}

#[test]
fn numbers_are_hashed_and_served_as_javascript_prints_them() {
    let s = server();
    // documents.md §2.5 vector.
    let data = r#"{"n":[0,-0,1e21,1e-7,5e-7,0.000001,123456789012345680000,1.5,-2.5e-10,9007199254740993]}"#;
    let h = push_ok(&s, "/v1/push/announcements/global", &push_body(data, None));
    assert_eq!(
        h,
        "7fc28d06b96cf3b6c944cf6a4b82c1981bf4ec57ce1a181b28ac501ddd029b88"
    );
    // documents.md §2.6: array-index keys first.
    let h2 = push_ok(
        &s,
        "/v1/push/pub/order",
        &push_body(r#"{"b":1,"2":1,"a":[],"1":-0}"#, None),
    );
    s.get("/v1/pull/pub/order").assert_json_ts(
        200,
        &format!(r#"{{"data":{{"1":0,"2":1,"b":1,"a":[]}},"hash":"{h2}","timestamp":{{TS}}}}"#),
        now_ms() - 5000,
    );
}

#[test]
fn concurrent_pushes_with_the_same_base_hash_one_wins() {
    let s = server();
    for round in 0..4 {
        let target = format!("/v1/push/pub/race{round}");
        push_ok(&s, &target, &push_body("{}", None));
        let barrier = Arc::new(Barrier::new(2));
        let reqs: Vec<Vec<u8>> = (0..2)
            .map(|i| {
                Req::new("POST", &target)
                    .header("Content-Type", "application/json")
                    .body(push_body(&format!(r#"{{"w":{i}}}"#), Some(EMPTY_OBJ_HASH)).as_bytes())
                    .to_bytes(&s.host())
            })
            .collect();
        let handles: Vec<_> = reqs
            .into_iter()
            .map(|bytes| {
                let b = barrier.clone();
                let addr = s.addr;
                std::thread::spawn(move || {
                    b.wait();
                    send_raw(addr, &bytes)
                })
            })
            .collect();
        let mut statuses: Vec<u16> = Vec::new();
        for h in handles {
            let r = h.join().unwrap();
            if r.status == 409 {
                r.assert_error(409, "hash_mismatch");
            }
            statuses.push(r.status);
        }
        statuses.sort();
        assert_eq!(statuses, [200, 409], "round {round}");
    }
}

// ---------------------------------------------------------------------------
// Bundles (wire.md §6)

#[test]
fn bundle_pull_returns_members_without_per_member_timestamps() {
    let s = server();
    let t0 = now_ms();
    // Empty shared bundle: every member (the pushOnly `b` too, quirk).
    s.get("/v1/pull/shared/data").assert_json_ts(
        200,
        r#"{"collections":{"a":{"data":{},"hash":""},"b":{"data":{},"hash":""},"c":{"data":{},"hash":""}},"timestamp":{TS}}"#,
        t0,
    );
    let ha = push_ok(&s, "/v1/push/shared/data/a", &push_body(DARK, None));
    let hb = push_ok(&s, "/v1/push/shared/data/b", &push_body("{}", None));
    assert_eq!((ha.as_str(), hb.as_str()), (DARK_HASH, EMPTY_OBJ_HASH));
    s.get("/v1/pull/shared/data").assert_json_ts(
        200,
        &format!(
            r#"{{"collections":{{"a":{{"data":{DARK},"hash":"{DARK_HASH}"}},"b":{{"data":{{}},"hash":"{EMPTY_OBJ_HASH}"}},"c":{{"data":{{}},"hash":""}}}},"timestamp":{{TS}}}}"#
        ),
        t0,
    );
    // Members are stored at <base>/<member>; the base key holds nothing.
    assert!(s.data_dir.join("shared/data/a.~doc").exists());
    // Member push follows the push rules (409, 400 …).
    s.post_json("/v1/push/shared/data/a", &push_body("{}", None))
        .assert_error(409, "hash_mismatch");
    s.post_json("/v1/push/shared/data/a", r#"{"data":[]}"#)
        .assert_error(400, "Missing or invalid data");
    // pullOnly member: no push route. No standalone member pull.
    s.post_json("/v1/push/shared/data/c", &push_body("{}", None))
        .assert_not_found();
    s.get("/v1/pull/shared/data/a").assert_not_found();
    s.post_json("/v1/push/shared/data", &push_body("{}", None))
        .assert_not_found();
    s.post_json("/v1/push/shared/data/zz", &push_body("{}", None))
        .assert_not_found();
    // No ETag, no Cache-Control, no 304.
    let r = Req::new("GET", "/v1/pull/shared/data")
        .header("If-None-Match", &format!("\"{DARK_HASH}\""))
        .send(&s);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("etag"), None);
    assert_eq!(r.header("cache-control"), None);
}

#[test]
fn bundle_pull_skips_members_the_caller_may_not_read() {
    let s = server();
    let t0 = now_ms();
    push_ok(&s, "/v1/push/users/u1/data/profile", &push_body(DARK, None));
    // Anonymous: `prefs` (self) is skipped silently.
    s.get("/v1/pull/users/u1/data").assert_json_ts(
        200,
        &format!(
            r#"{{"collections":{{"profile":{{"data":{DARK},"hash":"{DARK_HASH}"}}}},"timestamp":{{TS}}}}"#
        ),
        t0,
    );
    // All skipped: still 200, timestamp 0.
    s.get("/v1/pull/vault/u1")
        .assert_json(200, r#"{"collections":{},"timestamp":0}"#);
    // A self member push without auth: 403.
    s.post_json("/v1/push/users/u1/data/prefs", &push_body("{}", None))
        .assert_error(403, "Forbidden");
    // Bundle pull with a bad cap: 401 (unlike batch).
    Req::new("GET", "/v1/pull/users/u1/data")
        .header("Authorization", "Cap !!!")
        .send(&s)
        .assert_error(401, "Unauthorized");
    // An all-public bundle runs no auth at all.
    Req::new("GET", "/v1/pull/shared/data")
        .header("Authorization", "Cap !!!")
        .send(&s)
        .assert_json_ts(
            200,
            r#"{"collections":{"a":{"data":{},"hash":""},"b":{"data":{},"hash":""},"c":{"data":{},"hash":""}},"timestamp":{TS}}"#,
            t0,
        );
}

#[test]
fn signed_bundle_pull_and_member_push() {
    let s = server();
    let uid = user_id(&ROOT_SEED);
    let cert = device_cap(&ROOT_SEED, starfish::proto::cap::root_all_scope());
    let t0 = now_ms();
    let push = format!("/v1/push/users/{uid}/data/prefs");
    let r = signed_post(&s, &ROOT_SEED, &cert, &push, &push_body(DARK, None)).send(&s);
    r.assert_json_ts(
        200,
        &format!(r#"{{"hash":"{DARK_HASH}","timestamp":{{TS}}}}"#),
        t0,
    );
    let pull = format!("/v1/pull/users/{uid}/data");
    signed_get(&s, &ROOT_SEED, &cert, &pull).send(&s).assert_json_ts(
        200,
        &format!(
            r#"{{"collections":{{"prefs":{{"data":{DARK},"hash":"{DARK_HASH}"}},"profile":{{"data":{{}},"hash":""}}}},"timestamp":{{TS}}}}"#
        ),
        t0,
    );
    // Another user's bundle: the resolver's identity check refuses (403).
    signed_get(&s, &ROOT_SEED, &cert, "/v1/pull/users/bob/data")
        .send(&s)
        .assert_error(403, "Forbidden");
    // A cap scoped only to the member path is refused for the bundle pull.
    let member_only = device_cap(
        &ROOT_SEED,
        scope(&["read", "write"], Some(&["users/{identity}/data/prefs"])),
    );
    signed_get(&s, &ROOT_SEED, &member_only, &pull)
        .send(&s)
        .assert_error(403, "Forbidden");
}

// ---------------------------------------------------------------------------
// Batch pull (wire.md §7)

fn enc(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn batch_url(prefix: &str, collections: &str, params: Option<&str>) -> String {
    let mut u = format!("{prefix}/batch/pull?collections={}", enc(collections));
    if let Some(p) = params {
        u.push_str(&format!("&params={}", enc(p)));
    }
    u
}

/// Replace every entry `timestamp` (checked to be recent) by `{TS}`.
#[track_caller]
fn batch_shape(r: &Resp, since: i64) -> String {
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("content-type"), Some("application/json"));
    let v = r.json();
    let mut text = r.text();
    for (_, entries) in v["collections"].as_object().unwrap() {
        for e in entries.as_array().unwrap() {
            if let Some(ts) = e.get("timestamp") {
                let ts = ts.as_i64().unwrap();
                assert!(ts >= since && ts <= now_ms());
                text = text.replace(&format!("\"timestamp\":{ts}"), "\"timestamp\":{TS}");
            }
        }
    }
    text
}

#[test]
fn batch_request_errors_in_order() {
    let s = server();
    let many: Vec<String> = (0..101).map(|i| format!("c{i}")).collect();
    let many = many.join(",");
    let hundred: Vec<String> = (0..100).map(|i| format!("c{i}")).collect();
    let hundred = hundred.join(",");
    let cases: Vec<(String, &str)> = vec![
        ("/v1/batch/pull".into(), "Missing collections parameter"),
        (
            "/v1/batch/pull?collections=".into(),
            "Missing collections parameter",
        ),
        (
            "/v1/batch/pull?collections".into(),
            "Missing collections parameter",
        ),
        (
            "/v1/batch/pull?Collections=pub".into(),
            "Missing collections parameter",
        ),
        (
            "/v1/batch/pull?params=nope".into(),
            "Missing collections parameter",
        ),
        (
            batch_url("/v1", &many, Some("nope")),
            "Too many collections",
        ),
        (
            batch_url("/v1", "pub", Some("nope")),
            "Invalid params parameter",
        ),
        (
            batch_url("/v1", "pub", Some("[]")),
            "Invalid params parameter",
        ),
        (
            batch_url("/v1", "pub", Some("null")),
            "Invalid params parameter",
        ),
        (
            batch_url("/v1", "pub", Some(r#"{"pub":{}}"#)),
            "Invalid params parameter",
        ),
        (
            batch_url("/v1", "pub", Some(r#"{"other":{}}"#)),
            "Invalid params parameter",
        ),
        (
            batch_url("/v1", "pub", Some(r#"{"pub":[null]}"#)),
            "Invalid params parameter",
        ),
        (
            batch_url("/v1", "pub", Some(r#"{"pub":[[]]}"#)),
            "Invalid params parameter",
        ),
        (
            batch_url("/v1", "pub", Some(r#"{"pub":[1]}"#)),
            "Invalid params parameter",
        ),
        (
            batch_url(
                "/v1",
                "pub,ann",
                Some(&format!(r#"{{"pub":[{}]}}"#, vec!["{}"; 100].join(","))),
            ),
            "Too many collections",
        ),
        (
            batch_url("/v1", &format!("{hundred},extra"), None),
            "Too many collections",
        ),
    ];
    for (url, msg) in cases {
        s.get(&url).assert_error(400, msg);
    }
    // Validation happens before auth: a bad cap does not change it.
    Req::new("GET", "/v1/batch/pull")
        .header("Authorization", "Cap !!!")
        .send(&s)
        .assert_error(400, "Missing collections parameter");
    // Exactly 100 reads is fine; duplicates count once.
    let r = s.get(&batch_url("/v1", &format!("{hundred},c0,c1"), None));
    assert_eq!(r.status, 200);
    let r = s.get(&batch_url(
        "/v1",
        "pub,ann",
        Some(&format!(r#"{{"pub":[{}]}}"#, vec!["{}"; 99].join(","))),
    ));
    assert_eq!(r.status, 200);
    // No names at all, empty params: 200.
    s.get("/v1/batch/pull?collections=,,")
        .assert_json(200, r#"{"collections":{}}"#);
    s.get("/v1/batch/pull?collections=%2C%20%2C&params=")
        .assert_json(200, r#"{"collections":{}}"#);
}

#[test]
fn batch_anonymous_example_of_the_spec() {
    let s = server();
    let t0 = now_ms();
    let r = s.get("/v1/batch/pull?collections=pub,ann,settings,nope,,");
    assert_eq!(
        batch_shape(&r, t0),
        r#"{"collections":{"pub":[{"error":"Missing required path parameter"}],"ann":[{"data":{},"hash":"","timestamp":{TS}}],"settings":[{"error":"Missing required path parameter"}],"nope":[{"error":"Collection not found"}]}}"#
    );
    // Names are trimmed and deduplicated; the client's encoding is accepted.
    let r = s.get("/v1/batch/pull?collections=+ann%2Cann%2C+nope+,ann");
    assert_eq!(
        batch_shape(&r, t0),
        r#"{"collections":{"ann":[{"data":{},"hash":"","timestamp":{TS}}],"nope":[{"error":"Collection not found"}]}}"#
    );
}

#[test]
fn batch_per_entry_resolution() {
    let s = server();
    let ha = push_ok(&s, "/v1/push/pub/a", &push_body(r#"{"b":1,"a":"x"}"#, None));
    assert_eq!(ha, sha256_hex(br#"{"a":"x","b":1}"#));
    let h12 = push_ok(&s, "/v1/push/pub/12", &push_body(DARK, None));
    let h15 = push_ok(&s, "/v1/push/pub/1.5", &push_body("{}", None));
    let t0 = now_ms();
    let params = r#"{"pub":[{"id":"a"},{"id":"zz"},{},{"id":12},{"id":1.5},{"id":1e21},{"id":true},{"id":null},{"id":"a b"},{"id":".."},{"id":"a","x":1}],"settings":[{"identity":"bob"}],"nope":[{},{}]}"#;
    let r = s.get(&batch_url("/v1", "pub,settings,nope,ann", Some(params)));
    assert_eq!(
        batch_shape(&r, t0),
        format!(
            concat!(
                r#"{{"collections":{{"pub":["#,
                r#"{{"data":{{"b":1,"a":"x"}},"hash":"{ha}","timestamp":{{TS}}}},"#,
                r#"{{"data":{{}},"hash":"","timestamp":{{TS}}}},"#,
                r#"{{"error":"Missing required path parameter"}},"#,
                r#"{{"data":{dark},"hash":"{h12}","timestamp":{{TS}}}},"#,
                r#"{{"data":{{}},"hash":"{h15}","timestamp":{{TS}}}},"#,
                r#"{{"error":"Invalid path parameter"}},"#,
                r#"{{"error":"Missing required path parameter"}},"#,
                r#"{{"error":"Missing required path parameter"}},"#,
                r#"{{"error":"Invalid path parameter"}},"#,
                r#"{{"error":"Invalid path parameter"}},"#,
                r#"{{"data":{{"b":1,"a":"x"}},"hash":"{ha}","timestamp":{{TS}}}}],"#,
                r#""settings":[{{"error":"Forbidden"}}],"#,
                r#""nope":[{{"error":"Collection not found"}},{{"error":"Collection not found"}}],"#,
                r#""ann":[{{"data":{{}},"hash":"","timestamp":{{TS}}}}]}}}}"#
            ),
            ha = ha,
            h12 = h12,
            h15 = h15,
            dark = DARK
        )
    );
    // params[name] = [] yields an empty array.
    s.get(&batch_url("/v1", "pub", Some(r#"{"pub":[]}"#)))
        .assert_json(200, r#"{"collections":{"pub":[]}}"#);
}

#[test]
fn batch_denies_keyring_and_members_keys_even_when_public() {
    let s = server();
    push_ok(&s, "/v1/push/kr/a/_keyring", &push_body("{}", None));
    s.get(&batch_url("/v1", "krw", Some(r#"{"krw":[{"id":"a"}]}"#)))
        .assert_json(200, r#"{"collections":{"krw":[{"error":"Forbidden"}]}}"#);
    // A param value `_keyring` / `_members` makes the key end that way.
    let t0 = now_ms();
    let r = s.get(&batch_url(
        "/v1",
        "pub",
        Some(r#"{"pub":[{"id":"_keyring"},{"id":"_members"},{"id":"x_keyring"}]}"#),
    ));
    assert_eq!(
        batch_shape(&r, t0),
        r#"{"collections":{"pub":[{"error":"Forbidden"},{"error":"Forbidden"},{"data":{},"hash":"","timestamp":{TS}}]}}"#
    );
}

#[test]
fn batch_bad_auth_degrades_to_anonymous() {
    let s = server();
    let t0 = now_ms();
    let r = Req::new("GET", "/v1/batch/pull?collections=settings,ann")
        .header("Authorization", "Cap !!!")
        .send(&s);
    assert_eq!(
        batch_shape(&r, t0),
        r#"{"collections":{"settings":[{"error":"Missing required path parameter"}],"ann":[{"data":{},"hash":"","timestamp":{TS}}]}}"#
    );
    // An expired cap: same, and explicit identities get Forbidden.
    let uid = user_id(&ROOT_SEED);
    let expired = device_cap_at(
        &ROOT_SEED,
        starfish::proto::cap::root_all_scope(),
        now_ms() / 1000 - 10_000,
        100,
    );
    let url = batch_url(
        "/v1",
        "settings",
        Some(&format!(r#"{{"settings":[{{"identity":"{uid}"}},{{}}]}}"#)),
    );
    signed_get(&s, &ROOT_SEED, &expired, &url).send(&s).assert_json(
        200,
        r#"{"collections":{"settings":[{"error":"Forbidden"},{"error":"Missing required path parameter"}]}}"#,
    );
}

#[test]
fn batch_identity_auto_fill_with_a_signed_cap() {
    let s = server();
    let uid = user_id(&ROOT_SEED);
    let cert = device_cap(&ROOT_SEED, starfish::proto::cap::root_all_scope());
    let target = format!("/v1/push/users/{uid}/settings");
    signed_post(&s, &ROOT_SEED, &cert, &target, &push_body(DARK, None))
        .send(&s)
        .assert_json_ts(
            200,
            &format!(r#"{{"hash":"{DARK_HASH}","timestamp":{{TS}}}}"#),
            now_ms() - 5000,
        );
    let t0 = now_ms();
    // Missing identity is filled in; an explicit one is never overwritten.
    let url = batch_url(
        "/v1",
        "settings",
        Some(&format!(
            r#"{{"settings":[{{}},{{"identity":"bob"}},{{"identity":"{uid}"}},{{"identity":7}}]}}"#
        )),
    );
    let r = signed_get(&s, &ROOT_SEED, &cert, &url).send(&s);
    assert_eq!(
        batch_shape(&r, t0),
        format!(
            r#"{{"collections":{{"settings":[{{"data":{DARK},"hash":"{DARK_HASH}","timestamp":{{TS}}}},{{"error":"Forbidden"}},{{"data":{DARK},"hash":"{DARK_HASH}","timestamp":{{TS}}}},{{"error":"Forbidden"}}]}}}}"#
        )
    );
}

#[test]
fn batch_scope_paths_apply_per_entry() {
    let s = server();
    let uid = user_id(&ROOT_SEED);
    let cert = device_cap(
        &ROOT_SEED,
        scope(
            &["read", "write"],
            Some(&["users/{identity}/**", "pub/**", "!pub/secret"]),
        ),
    );
    let t0 = now_ms();
    let url = batch_url(
        "/v1",
        "settings,pub",
        Some(r#"{"pub":[{"id":"ok"},{"id":"secret"}]}"#),
    );
    let r = signed_get(&s, &ROOT_SEED, &cert, &url).send(&s);
    assert_eq!(
        batch_shape(&r, t0),
        r#"{"collections":{"settings":[{"data":{},"hash":"","timestamp":{TS}}],"pub":[{"data":{},"hash":"","timestamp":{TS}},{"error":"Forbidden"}]}}"#
    );
    let _ = uid;
}

#[test]
fn batch_under_the_mount_recognises_namespaced_batch_paths() {
    // README policy, quirk 15 fixed: /v1/<ns>/batch/pull is a batch path, so
    // a cap with narrow paths is not refused and then degraded.
    let s = server();
    let uid = user_id(&ROOT_SEED);
    let cert = device_cap(
        &ROOT_SEED,
        scope(&["read", "write"], Some(&["tenantA/users/{identity}/**"])),
    );
    let push = format!("/v1/tenantA/push/tenantA/users/{uid}/settings");
    signed_post(&s, &ROOT_SEED, &cert, &push, &push_body(DARK, None))
        .send(&s)
        .assert_json_ts(
            200,
            &format!(r#"{{"hash":"{DARK_HASH}","timestamp":{{TS}}}}"#),
            now_ms() - 5000,
        );
    let t0 = now_ms();
    let url = "/v1/tenantA/batch/pull?collections=settings";
    let r = signed_get(&s, &ROOT_SEED, &cert, url).send(&s);
    assert_eq!(
        batch_shape(&r, t0),
        format!(
            r#"{{"collections":{{"settings":[{{"data":{DARK},"hash":"{DARK_HASH}","timestamp":{{TS}}}}]}}}}"#
        )
    );
}

#[test]
fn batch_reads_of_a_bundle_member_read_the_member_document() {
    // README policy, quirk 14 fixed: read `<base>/<member>`.
    let s = server();
    push_ok(&s, "/v1/push/users/u1/data/profile", &push_body(DARK, None));
    push_ok(&s, "/v1/push/shared/data/a", &push_body("{}", None));
    let t0 = now_ms();
    let r = s.get(&batch_url(
        "/v1",
        "profile,a,prefs",
        Some(r#"{"profile":[{"identity":"u1"}],"prefs":[{"identity":"u1"}]}"#),
    ));
    assert_eq!(
        batch_shape(&r, t0),
        format!(
            r#"{{"collections":{{"profile":[{{"data":{DARK},"hash":"{DARK_HASH}","timestamp":{{TS}}}}],"a":[{{"data":{{}},"hash":"{EMPTY_OBJ_HASH}","timestamp":{{TS}}}}],"prefs":[{{"error":"Forbidden"}}]}}}}"#
        )
    );
}

// ---------------------------------------------------------------------------
// Binary collections (wire.md §4.4, §5.4)

const MIME_415_JSON: &str =
    r#"Content-Type 'application/json' is not allowed. Allowed: ["text/plain","image/*"]"#;

#[test]
fn binary_push_and_pull() {
    let s = server();
    // Nothing stored: 404, empty body, no Content-Type.
    let r = s.get("/v1/pull/files/f1");
    assert_eq!((r.status, r.body.len()), (404, 0));
    assert_eq!(r.header("content-type"), None, "{:?}", r.headers);

    let bytes: Vec<u8> = (0u8..=255).collect();
    let sha = sha256_hex(&bytes);
    let r = Req::new("POST", "/v1/push/files/f1")
        .header("Content-Type", "Image/PNG; q=1")
        .body(&bytes)
        .send(&s);
    r.assert_json(200, &format!(r#"{{"hash":"{sha}"}}"#));

    let r = s.get("/v1/pull/files/f1?withKeyring=1");
    assert_eq!(r.status, 200);
    assert_eq!(r.body, bytes);
    assert_eq!(r.header("content-type"), Some("Image/PNG"));
    assert_eq!(r.header("etag"), Some(format!("\"{sha}\"").as_str()));
    assert_eq!(r.header("cache-control"), Some("max-age=1"));

    let r = Req::new("GET", "/v1/pull/files/f1")
        .header("If-None-Match", &format!("\"{sha}\""))
        .send(&s);
    assert_eq!((r.status, r.body.len()), (304, 0));
    assert_eq!(r.header("etag"), None);
    assert_eq!(r.header("content-type"), None);
    let r = Req::new("GET", "/v1/pull/files/f1")
        .header("If-None-Match", &format!("W/\"{sha}\""))
        .send(&s);
    assert_eq!(r.status, 200);

    // Last write wins, no baseHash, JSON-looking text is just bytes.
    let r = Req::new("POST", "/v1/push/files/f1")
        .header("Content-Type", "text/plain;charset=utf-8")
        .body(b"{\"data\":{}}")
        .send(&s);
    r.assert_json(
        200,
        &format!(r#"{{"hash":"{}"}}"#, sha256_hex(b"{\"data\":{}}")),
    );
    let r = s.get("/v1/pull/files/f1");
    assert_eq!(r.body, b"{\"data\":{}}");
    assert_eq!(r.header("content-type"), Some("text/plain"));
    // An empty body is a value too.
    let r = Req::new("POST", "/v1/push/files/empty")
        .header("Content-Type", "text/plain")
        .send(&s);
    r.assert_json(200, &format!(r#"{{"hash":"{}"}}"#, sha256_hex(b"")));
}

#[test]
fn binary_push_mime_and_size_checks() {
    let s = server();
    Req::new("POST", "/v1/push/files/f")
        .header("Content-Type", "application/json")
        .body(b"{}")
        .send(&s)
        .assert_error(415, MIME_415_JSON);
    // The header as received goes into the message; absent = ''.
    Req::new("POST", "/v1/push/files/f")
        .header("Content-Type", "IMAGE ; x=1")
        .body(b"x")
        .send(&s)
        .assert_error(
            415,
            r#"Content-Type 'IMAGE ; x=1' is not allowed. Allowed: ["text/plain","image/*"]"#,
        );
    Req::new("POST", "/v1/push/files/f")
        .body(b"x")
        .send(&s)
        .assert_error(
            415,
            r#"Content-Type '' is not allowed. Allowed: ["text/plain","image/*"]"#,
        );
    Req::new("POST", "/v1/push/files/f")
        .header("Content-Type", "image/")
        .body(b"x")
        .send(&s)
        .assert_error(
            415,
            r#"Content-Type 'image/' is not allowed. Allowed: ["text/plain","image/*"]"#,
        );
    // Size (maxBodyBytes 1000) before the MIME check.
    Req::new("POST", "/v1/push/files/f")
        .header("Content-Type", "application/json")
        .body(&[0u8; 1001])
        .send(&s)
        .assert_error(413, "Payload too large");
    // Unsafe key before everything else.
    Req::new("POST", "/v1/push/files/a..b")
        .header("Content-Type", "application/json")
        .body(&[0u8; 1001])
        .send(&s)
        .assert_error(400, "Invalid path parameter");
    s.get("/v1/pull/files/a..b")
        .assert_error(400, "Invalid path parameter");
    // Nothing was stored.
    let r = s.get("/v1/pull/files/f");
    assert_eq!((r.status, r.body.len()), (404, 0));
}

// ---------------------------------------------------------------------------
// Cap-cert auth (auth.md §8-11, wire.md §3)

#[test]
fn signed_pull_and_push_on_a_self_collection() {
    let s = server();
    let uid = user_id(&ROOT_SEED);
    let cert = device_cap(&ROOT_SEED, starfish::proto::cap::root_all_scope());
    let pull = format!("/v1/pull/users/{uid}/settings");
    let push = format!("/v1/push/users/{uid}/settings");
    let t0 = now_ms();
    let r = signed_get(&s, &ROOT_SEED, &cert, &pull).send(&s);
    r.assert_json_ts(200, EMPTY, t0);
    assert_eq!(r.header("cache-control"), Some("private, max-age=2"));
    signed_post(&s, &ROOT_SEED, &cert, &push, &push_body(DARK, None))
        .send(&s)
        .assert_json_ts(
            200,
            &format!(r#"{{"hash":"{DARK_HASH}","timestamp":{{TS}}}}"#),
            t0,
        );
    let r = signed_get(&s, &ROOT_SEED, &cert, &pull).send(&s);
    r.assert_json_ts(
        200,
        &format!(r#"{{"data":{DARK},"hash":"{DARK_HASH}","timestamp":{{TS}}}}"#),
        t0,
    );
    assert_eq!(r.header("etag"), Some(format!("\"{DARK_HASH}\"").as_str()));
    // With a query, the query is part of the signed path.
    let q = format!("{pull}?checkpoint=5&withKeyring=1");
    signed_get(&s, &ROOT_SEED, &cert, &q)
        .send(&s)
        .assert_json_ts(
            200,
            &format!(r#"{{"data":{DARK},"hash":"{DARK_HASH}","timestamp":{{TS}},"keyring":null}}"#),
            t0,
        );
    // Unsigned: anonymous, not self → 403.
    s.get(&pull).assert_error(403, "Forbidden");
    // The cap:<op>:* roles open a collection that names them.
    signed_post(
        &s,
        &ROOT_SEED,
        &cert,
        "/v1/push/cap/x",
        &push_body("{}", None),
    )
    .send(&s)
    .assert_json_ts(
        200,
        &format!(r#"{{"hash":"{EMPTY_OBJ_HASH}","timestamp":{{TS}}}}"#),
        t0,
    );
    s.get("/v1/pull/cap/x").assert_error(403, "Forbidden");
}

#[test]
fn a_signature_over_the_path_without_the_mount_is_accepted() {
    // README policy, quirk 2: accept both the full and the mount-stripped path.
    let s = server();
    let uid = user_id(&ROOT_SEED);
    let cert = device_cap(&ROOT_SEED, starfish::proto::cap::root_all_scope());
    let full = format!("/v1/pull/users/{uid}/settings");
    let stripped = format!("/pull/users/{uid}/settings");
    let h = sign_with(
        &ROOT_SEED,
        &cert,
        "GET",
        &stripped,
        &s.host(),
        None,
        b"",
        &fresh_nonce(),
        now_ms(),
    );
    let r = Req::new("GET", &full).headers(&h).send(&s);
    assert_eq!(r.status, 200, "{}", r.text());
}

#[test]
fn auth_failures_are_401() {
    let s = server();
    let uid = user_id(&ROOT_SEED);
    let cert = device_cap(&ROOT_SEED, starfish::proto::cap::root_all_scope());
    let pull = format!("/v1/pull/users/{uid}/settings");
    let host = s.host();
    let unauthorized = |r: Resp| r.assert_error(401, "Unauthorized");

    // Bad signature: signed for another path.
    let h = sign_with(
        &ROOT_SEED,
        &cert,
        "GET",
        "/v1/pull/x",
        &host,
        None,
        b"",
        &fresh_nonce(),
        now_ms(),
    );
    unauthorized(Req::new("GET", &pull).headers(&h).send(&s));
    // Signed by another key than the cap's subject.
    let h = sign_with(
        &OTHER_SEED,
        &cert,
        "GET",
        &pull,
        &host,
        None,
        b"",
        &fresh_nonce(),
        now_ms(),
    );
    unauthorized(Req::new("GET", &pull).headers(&h).send(&s));
    // Signed for another host.
    let h = sign_with(
        &ROOT_SEED,
        &cert,
        "GET",
        &pull,
        "example.com",
        None,
        b"",
        &fresh_nonce(),
        now_ms(),
    );
    unauthorized(Req::new("GET", &pull).headers(&h).send(&s));
    // Timestamp outside the 5-minute skew.
    let h = sign_with(
        &ROOT_SEED,
        &cert,
        "GET",
        &pull,
        &host,
        None,
        b"",
        &fresh_nonce(),
        now_ms() - 301_000,
    );
    unauthorized(Req::new("GET", &pull).headers(&h).send(&s));
    // Missing signature headers.
    unauthorized(
        Req::new("GET", &pull)
            .header("Authorization", &cert.authorization_header())
            .send(&s),
    );
    // Replay: the same request twice.
    let h = sign_with(
        &ROOT_SEED,
        &cert,
        "GET",
        &pull,
        &host,
        None,
        b"",
        &fresh_nonce(),
        now_ms(),
    );
    assert_eq!(Req::new("GET", &pull).headers(&h).send(&s).status, 200);
    unauthorized(Req::new("GET", &pull).headers(&h).send(&s));
    // Expired cap.
    let expired = device_cap_at(
        &ROOT_SEED,
        starfish::proto::cap::root_all_scope(),
        now_ms() / 1000 - 10_000,
        100,
    );
    unauthorized(signed_get(&s, &ROOT_SEED, &expired, &pull).send(&s));
    // Not yet valid.
    let future = device_cap_at(
        &ROOT_SEED,
        starfish::proto::cap::root_all_scope(),
        now_ms() / 1000 + 10_000,
        100,
    );
    unauthorized(signed_get(&s, &ROOT_SEED, &future, &pull).send(&s));
    // A non-Cap scheme is anonymous (403 here, not 401).
    Req::new("GET", &pull)
        .header("Authorization", "Bearer x")
        .send(&s)
        .assert_error(403, "Forbidden");
}

#[test]
fn auth_forbidden_is_403() {
    let s = server();
    let cert = device_cap(&ROOT_SEED, starfish::proto::cap::root_all_scope());
    // Identity mismatch (step 18).
    signed_get(&s, &ROOT_SEED, &cert, "/v1/pull/users/bob/settings")
        .send(&s)
        .assert_error(403, "Forbidden");
    // Path outside the cap's scope.paths (step 17).
    let uid = user_id(&ROOT_SEED);
    let narrow = device_cap(&ROOT_SEED, scope(&["read", "write"], Some(&["notes/**"])));
    signed_get(
        &s,
        &ROOT_SEED,
        &narrow,
        &format!("/v1/pull/users/{uid}/settings"),
    )
    .send(&s)
    .assert_error(403, "Forbidden");
    // Denied by a `!` entry.
    let deny = device_cap(
        &ROOT_SEED,
        scope(
            &["read", "write"],
            Some(&["**", "!users/{identity}/settings"]),
        ),
    );
    signed_get(
        &s,
        &ROOT_SEED,
        &deny,
        &format!("/v1/pull/users/{uid}/settings"),
    )
    .send(&s)
    .assert_error(403, "Forbidden");
    // withKeyring silently dropped when the keyring sibling is out of scope.
    let no_kr = device_cap(
        &ROOT_SEED,
        scope(&["read", "write"], Some(&["users/{identity}/settings"])),
    );
    let r = signed_get(
        &s,
        &ROOT_SEED,
        &no_kr,
        &format!("/v1/pull/users/{uid}/settings?withKeyring=1"),
    )
    .send(&s);
    r.assert_json_ts(200, EMPTY, now_ms() - 5000);
}

#[test]
fn auth_body_bound_on_signed_writes() {
    let s = server();
    let uid = user_id(&ROOT_SEED);
    let cert = device_cap(&ROOT_SEED, starfish::proto::cap::root_all_scope());
    let push = format!("/v1/push/users/{uid}/settings");
    // Missing Content-Length → 413 from the resolver.
    let h = sign_with(
        &ROOT_SEED,
        &cert,
        "POST",
        &push,
        &s.host(),
        Some("application/json"),
        b"",
        &fresh_nonce(),
        now_ms(),
    );
    Req::new("POST", &push)
        .header("Content-Type", "application/json")
        .headers(&h)
        .no_content_length()
        .send(&s)
        .assert_error(413, "missing Content-Length on write");
    // Above the resolver's 64 KiB (the collection allows 200000).
    let big = format!(r#"{{"data":{{"x":"{}"}}}}"#, "a".repeat(70_000));
    signed_post(&s, &ROOT_SEED, &cert, &push, &big)
        .send(&s)
        .assert_error(413, "request body too large");
    // An expired cap wins over the missing Content-Length (401 first).
    let expired = device_cap_at(
        &ROOT_SEED,
        starfish::proto::cap::root_all_scope(),
        now_ms() / 1000 - 10_000,
        100,
    );
    let h = sign_with(
        &ROOT_SEED,
        &expired,
        "POST",
        &push,
        &s.host(),
        Some("application/json"),
        b"",
        &fresh_nonce(),
        now_ms(),
    );
    Req::new("POST", &push)
        .header("Content-Type", "application/json")
        .headers(&h)
        .no_content_length()
        .send(&s)
        .assert_error(401, "Unauthorized");
}

#[test]
fn public_fast_path_ignores_auth_headers_and_consumes_no_nonce() {
    let s = server();
    let uid = user_id(&ROOT_SEED);
    let cert = device_cap(&ROOT_SEED, starfish::proto::cap::root_all_scope());
    let t0 = now_ms();
    // Garbage auth on a public pull and push: ignored.
    Req::new("GET", "/v1/pull/pub/p")
        .header("Authorization", "Cap !!!")
        .header("X-Starfish-Sig", "nope")
        .send(&s)
        .assert_json_ts(200, EMPTY, t0);
    Req::new("POST", "/v1/push/pub/p")
        .header("Authorization", "Cap !!!")
        .header("Content-Type", "application/json")
        .body(push_body("{}", None).as_bytes())
        .send(&s)
        .assert_json_ts(
            200,
            &format!(r#"{{"hash":"{EMPTY_OBJ_HASH}","timestamp":{{TS}}}}"#),
            t0,
        );
    // An expired cap on a public route: ignored.
    let expired = device_cap_at(
        &ROOT_SEED,
        starfish::proto::cap::root_all_scope(),
        now_ms() / 1000 - 10_000,
        100,
    );
    assert_eq!(
        signed_get(&s, &ROOT_SEED, &expired, "/v1/pull/pub/p")
            .send(&s)
            .status,
        200
    );
    // A valid signature used on a public route does not spend its nonce:
    // the same headers then authenticate the self pull they were made for.
    let pull = format!("/v1/pull/users/{uid}/settings");
    let h = sign_with(
        &ROOT_SEED,
        &cert,
        "GET",
        &pull,
        &s.host(),
        None,
        b"",
        &fresh_nonce(),
        now_ms(),
    );
    assert_eq!(
        Req::new("GET", "/v1/pull/pub/p")
            .headers(&h)
            .send(&s)
            .status,
        200
    );
    assert_eq!(
        Req::new("GET", "/v1/pull/pub/p")
            .headers(&h)
            .send(&s)
            .status,
        200
    );
    let r = Req::new("GET", &pull).headers(&h).send(&s);
    assert_eq!(r.status, 200, "{}", r.text());
}

#[test]
fn without_anonymous_mode_unsigned_non_public_requests_are_401() {
    let s = Setup::new(CONFIG).no_anonymous().start();
    let t0 = now_ms();
    s.get("/v1/pull/users/u1/settings")
        .assert_error(401, "Unauthorized");
    s.post_json("/v1/push/users/u1/settings", &push_body("{}", None))
        .assert_error(401, "Unauthorized");
    s.get("/v1/pull/users/u1/data")
        .assert_error(401, "Unauthorized");
    // Public routes never ask the resolver.
    s.get("/v1/pull/pub/a").assert_json_ts(200, EMPTY, t0);
    push_ok(&s, "/v1/push/pub/a", &push_body("{}", None));
    s.get("/v1/pull/shared/data").assert_json_ts(
        200,
        r#"{"collections":{"a":{"data":{},"hash":""},"b":{"data":{},"hash":""},"c":{"data":{},"hash":""}},"timestamp":{TS}}"#,
        t0,
    );
    // Batch never fails on auth.
    let r = s.get("/v1/batch/pull?collections=ann,settings");
    assert_eq!(
        batch_shape(&r, t0),
        r#"{"collections":{"ann":[{"data":{},"hash":"","timestamp":{TS}}],"settings":[{"error":"Missing required path parameter"}]}}"#
    );
    // Signed requests still work.
    let uid = user_id(&ROOT_SEED);
    let cert = device_cap(&ROOT_SEED, starfish::proto::cap::root_all_scope());
    let r = signed_get(
        &s,
        &ROOT_SEED,
        &cert,
        &format!("/v1/pull/users/{uid}/settings"),
    )
    .send(&s);
    r.assert_json_ts(200, EMPTY, t0);
}

#[test]
fn a_read_only_cap_cannot_push_to_a_self_collection() {
    // README policy, quirk 12 fixed: scope.ops without `write` cannot push.
    let s = server();
    let uid = user_id(&ROOT_SEED);
    let ro = device_cap(&ROOT_SEED, scope(&["read"], Some(&["**"])));
    let push = format!("/v1/push/users/{uid}/settings");
    signed_post(&s, &ROOT_SEED, &ro, &push, &push_body("{}", None))
        .send(&s)
        .assert_error(403, "Forbidden");
    let bundle = format!("/v1/push/users/{uid}/data/prefs");
    signed_post(&s, &ROOT_SEED, &ro, &bundle, &push_body("{}", None))
        .send(&s)
        .assert_error(403, "Forbidden");
    // It can still read.
    let r = signed_get(
        &s,
        &ROOT_SEED,
        &ro,
        &format!("/v1/pull/users/{uid}/settings"),
    )
    .send(&s);
    r.assert_json_ts(200, EMPTY, now_ms() - 5000);
    // Nothing was written.
    let rw = device_cap(&ROOT_SEED, starfish::proto::cap::root_all_scope());
    signed_post(&s, &ROOT_SEED, &rw, &push, &push_body(DARK, None))
        .send(&s)
        .assert_json_ts(
            200,
            &format!(r#"{{"hash":"{DARK_HASH}","timestamp":{{TS}}}}"#),
            now_ms() - 5000,
        );
}

// ---------------------------------------------------------------------------
// More pinned details

#[test]
fn store_failures_are_plain_500_and_batch_internal_error() {
    // wire.md §1.2 (unhandled error → text 500) and §7.4 step 13.
    let s = server();
    // A directory where the document file should be makes the read fail.
    std::fs::create_dir_all(s.data_dir.join("pub").join("broken.~doc")).unwrap();
    let r = s.get("/v1/pull/pub/broken");
    assert_eq!(
        (r.status, r.text().as_str()),
        (500, "Internal Server Error")
    );
    assert_eq!(r.header("content-type"), Some("text/plain; charset=UTF-8"));
    let r = s.post_json("/v1/push/pub/broken", &push_body("{}", None));
    assert_eq!(
        (r.status, r.text().as_str()),
        (500, "Internal Server Error")
    );
    s.get(&batch_url(
        "/v1",
        "pub",
        Some(r#"{"pub":[{"id":"broken"}]}"#),
    ))
    .assert_json(
        200,
        r#"{"collections":{"pub":[{"error":"Internal error"}]}}"#,
    );
}

#[test]
fn documents_from_foreign_writers_without_hash() {
    // documents.md §1: a stored object without `hash` is returned with no
    // `hash` key at all (the JS value is `undefined`). The same holds for
    // batch entries, bundle members and the keyring sibling, which all copy
    // `parsed.hash` (official route-builder.js / helpers.js).
    let s = server_without_cache();
    let foreign = br#"{"v":1,"data":{"a":1},"ts":5}"#;
    push_ok(&s, "/v1/push/kr/foreign", &push_body("{}", None));
    push_ok(&s, "/v1/push/kr/foreign/_keyring", &push_body("{}", None));
    push_ok(&s, "/v1/push/shared/data/a", &push_body("{}", None));
    for f in [
        "kr/foreign.~doc",
        "kr/foreign/_keyring.~doc",
        "shared/data/a.~doc",
    ] {
        let path = s.data_dir.join(f);
        assert!(path.exists(), "{}", path.display());
        std::fs::write(path, foreign).unwrap();
    }
    let t0 = now_ms();
    let r = s.get("/v1/pull/kr/foreign");
    r.assert_json_ts(200, r#"{"data":{"a":1},"timestamp":{TS}}"#, t0);
    assert_eq!(r.header("etag"), None);
    s.get("/v1/pull/kr/foreign?withKeyring=1").assert_json_ts(
        200,
        r#"{"data":{"a":1},"timestamp":{TS},"keyring":{"data":{"a":1},"timestamp":{TS}}}"#,
        t0,
    );
    let r = s.get(&batch_url(
        "/v1",
        "kr",
        Some(r#"{"kr":[{"id":"foreign"}]}"#),
    ));
    assert_eq!(
        batch_shape(&r, t0),
        r#"{"collections":{"kr":[{"data":{"a":1},"timestamp":{TS}}]}}"#
    );
    s.get("/v1/pull/shared/data").assert_json_ts(
        200,
        r#"{"collections":{"a":{"data":{"a":1}},"b":{"data":{},"hash":""},"c":{"data":{},"hash":""}},"timestamp":{TS}}"#,
        t0,
    );
}

#[test]
fn bundle_member_push_has_no_early_unsafe_key_check() {
    // wire.md §6.3: the key check happens inside the document push, after
    // the size and content-type checks.
    let s = server();
    Req::new("POST", "/v1/push/users/a..b/data/profile")
        .header("Content-Type", "text/plain")
        .body(b"x")
        .send(&s)
        .assert_error(415, "Content-Type must be application/json");
    Req::new("POST", "/v1/push/users/a..b/data/profile")
        .header("Content-Type", "application/json")
        .body(&[b' '; 1001])
        .send(&s)
        .assert_error(413, "Payload too large");
    s.post_json("/v1/push/users/a..b/data/profile", "[]")
        .assert_error(400, "Body must be a JSON object");
    s.post_json("/v1/push/users/a..b/data/profile", &push_body("{}", None))
        .assert_error(400, "Invalid path parameter");
    // The bundle pull checks the base key.
    s.get("/v1/pull/users/a..b/data")
        .assert_error(400, "Invalid path parameter");
}

#[test]
fn json_parse_details() {
    // documents.md §2.4: duplicate keys, last wins; Python-style bodies.
    let s = server();
    let h = push_ok(
        &s,
        "/v1/push/kr/dup",
        r#"{"data":{"a":1},"data":{"theme":"x","theme":"dark"}}"#,
    );
    assert_eq!(h, DARK_HASH);
    let h = push_ok(
        &s,
        "/v1/push/kr/py",
        "{\"data\": {\"k\": \"\\u00e9\", \"n\": 1.0}, \"baseHash\": null}",
    );
    assert_eq!(h, sha256_hex("{\"k\":\"é\",\"n\":1}".as_bytes()));
    s.get("/v1/pull/kr/py").assert_json_ts(
        200,
        &format!("{{\"data\":{{\"k\":\"é\",\"n\":1}},\"hash\":\"{h}\",\"timestamp\":{{TS}}}}"),
        now_ms() - 5000,
    );
    // A numeric overflow is Infinity, hashed and stored as null, as in JS
    // (documents.md §2.2; COMPATIBILITY.md keeps the JS behaviour).
    let h = push_ok(&s, "/v1/push/kr/inf", r#"{"data":{"x":1e400}}"#);
    assert_eq!(h, sha256_hex(br#"{"x":null}"#));
    s.get("/v1/pull/kr/inf").assert_json_ts(
        200,
        &format!(r#"{{"data":{{"x":null}},"hash":"{h}","timestamp":{{TS}}}}"#),
        now_ms() - 5000,
    );
    // A non-ASCII param value fails the charset.
    s.get("/v1/pull/kr/%C3%A9")
        .assert_error(400, "Invalid path parameter");
}

#[test]
fn batch_names_that_are_array_indices_come_first() {
    // wire.md §7.5: JS object order.
    let s = server();
    s.get("/v1/batch/pull?collections=nope,123,7")
        .assert_json(
            200,
            r#"{"collections":{"7":[{"error":"Collection not found"}],"123":[{"error":"Collection not found"}],"nope":[{"error":"Collection not found"}]}}"#,
        );
}

#[test]
fn a_signed_batch_spends_its_nonce_once() {
    // wire.md §7.3: a replayed batch degrades to anonymous.
    let s = server();
    let uid = user_id(&ROOT_SEED);
    let cert = device_cap(&ROOT_SEED, starfish::proto::cap::root_all_scope());
    let target = format!("/v1/push/users/{uid}/settings");
    signed_post(&s, &ROOT_SEED, &cert, &target, &push_body(DARK, None)).send(&s);
    let req = signed_get(&s, &ROOT_SEED, &cert, "/v1/batch/pull?collections=settings");
    let t0 = now_ms();
    assert_eq!(
        batch_shape(&req.send(&s), t0),
        format!(
            r#"{{"collections":{{"settings":[{{"data":{DARK},"hash":"{DARK_HASH}","timestamp":{{TS}}}}]}}}}"#
        )
    );
    req.send(&s).assert_json(
        200,
        r#"{"collections":{"settings":[{"error":"Missing required path parameter"}]}}"#,
    );
}

#[test]
fn signed_head_is_verified_with_method_head() {
    // wire.md §1.2: the auth layer sees HEAD.
    let s = server();
    let uid = user_id(&ROOT_SEED);
    let cert = device_cap(&ROOT_SEED, starfish::proto::cap::root_all_scope());
    let pull = format!("/v1/pull/users/{uid}/settings");
    let sign = |m: &str| {
        sign_with(
            &ROOT_SEED,
            &cert,
            m,
            &pull,
            &s.host(),
            None,
            b"",
            &fresh_nonce(),
            now_ms(),
        )
    };
    let r = Req::new("HEAD", &pull).headers(&sign("HEAD")).send(&s);
    assert_eq!((r.status, r.body.len()), (200, 0));
    assert_eq!(r.header("cache-control"), Some("private, max-age=2"));
    let r = Req::new("HEAD", &pull).headers(&sign("GET")).send(&s);
    assert_eq!((r.status, r.body.len()), (401, 0));
}

#[test]
fn signed_binary_push_signs_an_empty_body() {
    // wire.md §5.4 / auth.md §7.1: non-JSON media types sign the empty body.
    let s = server();
    let uid = user_id(&ROOT_SEED);
    let cert = device_cap(&ROOT_SEED, starfish::proto::cap::root_all_scope());
    let push = format!("/v1/push/users/{uid}/files/pic");
    let bytes = b"\x89PNG....";
    let h = sign_with(
        &ROOT_SEED,
        &cert,
        "POST",
        &push,
        &s.host(),
        None,
        b"",
        &fresh_nonce(),
        now_ms(),
    );
    Req::new("POST", &push)
        .header("Content-Type", "image/png")
        .headers(&h)
        .body(bytes)
        .send(&s)
        .assert_json(200, &format!(r#"{{"hash":"{}"}}"#, sha256_hex(bytes)));
    // Signing the bytes instead does not verify.
    let h = sign_with(
        &ROOT_SEED,
        &cert,
        "POST",
        &push,
        &s.host(),
        Some("application/json"),
        bytes,
        &fresh_nonce(),
        now_ms(),
    );
    Req::new("POST", &push)
        .header("Content-Type", "image/png")
        .headers(&h)
        .body(bytes)
        .send(&s)
        .assert_error(401, "Unauthorized");
    let r = signed_get(
        &s,
        &ROOT_SEED,
        &cert,
        &format!("/v1/pull/users/{uid}/files/pic"),
    )
    .send(&s);
    assert_eq!((r.status, r.body.as_slice()), (200, &bytes[..]));
    assert_eq!(r.header("content-type"), Some("image/png"));
    // Anonymous: 403 for the self binary collection.
    s.get(&format!("/v1/pull/users/{uid}/files/pic"))
        .assert_error(403, "Forbidden");
}

#[test]
fn root_only_needs_a_self_signed_root_device_cap() {
    // wire.md §3 step 4, auth.md §10.
    let s = server();
    let root = device_cap(&ROOT_SEED, starfish::proto::cap::root_all_scope());
    let r = signed_get(&s, &ROOT_SEED, &root, "/v1/pull/root/doc").send(&s);
    r.assert_json_ts(200, EMPTY, now_ms() - 5000);
    // A paired device: cap issued by the root key for another subject.
    let paired = starfish::proto::cap::mint_device_cap(
        &ROOT_SEED,
        &pub_hex(&ROOT_SEED),
        &pub_hex(&OTHER_SEED),
        &"22".repeat(32),
        starfish::proto::cap::root_all_scope(),
        starfish::proto::cap::MintOptions {
            nbf: now_ms() / 1000 - 60,
            ttl_sec: 3600,
            nonce: [3; 16],
        },
    )
    .unwrap();
    signed_get(&s, &OTHER_SEED, &paired, "/v1/pull/root/doc")
        .send(&s)
        .assert_error(403, "Forbidden");
    // …which otherwise acts as the root user.
    let uid = user_id(&ROOT_SEED);
    let r = signed_get(
        &s,
        &OTHER_SEED,
        &paired,
        &format!("/v1/pull/users/{uid}/settings"),
    )
    .send(&s);
    r.assert_json_ts(200, EMPTY, now_ms() - 5000);
}

#[test]
fn the_document_cache_serves_pulls_and_follows_every_write() {
    // The test servers run the filesystem store with the default
    // --cache-bytes: a pulled (or pushed) document is answered from memory.
    let s = Setup::new(CONFIG)
        .tweak(|o| o.metrics.enabled = true)
        .start();
    push_ok(&s, "/v1/push/pub/hot", &push_body(DARK, None));
    let t0 = now_ms();
    let first = s.get("/v1/pull/pub/hot");
    first.assert_json_ts(
        200,
        &format!(r#"{{"data":{DARK},"hash":"{DARK_HASH}","timestamp":{{TS}}}}"#),
        t0,
    );
    // Changed behind the server's back: the cached value is still served,
    // so the pull read no file.
    std::fs::write(s.data_dir.join("pub/hot.~doc"), b"{not json").unwrap();
    let cached = s.get("/v1/pull/pub/hot");
    assert_eq!(cached.header("etag"), first.header("etag"));
    assert!(cached.text().contains(DARK));
    // A write through the server replaces it (the push compares with the
    // cached value, and the store's swap with the file: the corrupt file
    // hashes to "", so only an empty base hash matches it now).
    s.post_json("/v1/push/pub/hot", &push_body("{}", Some(DARK_HASH)))
        .assert_error(409, "hash_mismatch");
    push_ok(&s, "/v1/push/pub/hot", &push_body("{}", Some("")));
    s.get("/v1/pull/pub/hot").assert_json_ts(
        200,
        &format!(r#"{{"data":{{}},"hash":"{EMPTY_OBJ_HASH}","timestamp":{{TS}}}}"#),
        t0,
    );
    let metrics = s.get("/metrics").text();
    let figure = |name: &str| -> u64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("{name} in {metrics}"))
    };
    assert!(figure("starfish_store_cache_hits") >= 2, "{metrics}");
    assert_eq!(figure("starfish_store_cache_entries"), 1, "{metrics}");
    assert!(figure("starfish_store_cache_bytes") > 0, "{metrics}");
}
