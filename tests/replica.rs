//! A replica server replicating from a primary server, both real servers on
//! loopback ports speaking HTTP: the four write modes with the official 405
//! bodies, scheduled and on-pull syncs, the push-through proxy, a primary
//! that goes away and comes back, and a signed replica identity.

mod common;

use common::{Setup, TestServer};
use std::time::{Duration, Instant};

const PRIMARY: &str = r#"{"version":1,"collections":[
 {"name":"news","storagePath":"primary/news","readRoles":["public"],"writeRoles":["public"],"encryption":"none","maxBodyBytes":65536},
 {"name":"wiki","storagePath":"primary/wiki","readRoles":["public"],"writeRoles":["public"],"encryption":"none","maxBodyBytes":65536},
 {"name":"feed","storagePath":"primary/feed","readRoles":["public"],"writeRoles":["public"],"encryption":"none","maxBodyBytes":65536},
 {"name":"notes","storagePath":"primary/notes","readRoles":["public"],"writeRoles":["public"],"encryption":"none","maxBodyBytes":65536},
 {"name":"drop","storagePath":"primary/drop","readRoles":["public"],"writeRoles":["public"],"encryption":"none","maxBodyBytes":65536},
 {"name":"secure","storagePath":"primary/secure","readRoles":["cap:read:*"],"writeRoles":["cap:write:*"],"encryption":"none","maxBodyBytes":65536}]}"#;

const REPLICA: &str = r#"{"version":1,"collections":[
 {"name":"news","storagePath":"replica/news","readRoles":["public"],"writeRoles":["public"],"encryption":"none","maxBodyBytes":65536},
 {"name":"wiki","storagePath":"replica/wiki","readRoles":["public"],"writeRoles":["public"],"encryption":"none","maxBodyBytes":65536},
 {"name":"feed","storagePath":"replica/feed","readRoles":["public"],"writeRoles":["public"],"encryption":"none","maxBodyBytes":65536},
 {"name":"notes","storagePath":"replica/notes","readRoles":["public"],"writeRoles":["public"],"encryption":"none","maxBodyBytes":65536},
 {"name":"drop","storagePath":"replica/drop","readRoles":["public"],"writeRoles":["public"],"encryption":"none","maxBodyBytes":65536},
 {"name":"secure","storagePath":"replica/secure","readRoles":["public"],"writeRoles":["public"],"encryption":"none","maxBodyBytes":65536},
 {"name":"local","storagePath":"replica/local/{id}","readRoles":["public"],"writeRoles":["public"],"encryption":"none"}]}"#;

fn settings(port: u16, auth: &str) -> String {
    settings_for(&format!("http://127.0.0.1:{port}/v1"), auth)
}

/// Replica settings with every collection's primary at `url`; `extra` is
/// appended to the top-level object (`,"auth":...`, `,"caFile":...`).
fn settings_for(url: &str, auth: &str) -> String {
    format!(
        r#"{{"collections":{{
 "news":{{"url":"{url}","pullPath":"/pull/primary/news","intervalMs":200,"headers":{{}},"writeMode":"pull_only","syncTriggers":["scheduled"]}},
 "wiki":{{"url":"{url}","pullPath":"/pull/primary/wiki","pushPath":"/push/primary/wiki","intervalMs":3600000,"headers":{{}},"writeMode":"push_through","syncTriggers":["scheduled","on_pull"],"onPullMinIntervalMs":0}},
 "feed":{{"url":"{url}","pullPath":"/pull/primary/feed","intervalMs":3600000,"headers":{{}},"writeMode":"pull_only","syncTriggers":["on_pull"]}},
 "notes":{{"url":"{url}","pullPath":"/pull/primary/notes","pushPath":"/push/primary/notes","intervalMs":200,"headers":{{}},"writeMode":"bidirectional","syncTriggers":["scheduled"]}},
 "drop":{{"url":"{url}","pullPath":"/pull/primary/drop","intervalMs":200,"headers":{{}},"writeMode":"push_only","syncTriggers":["scheduled"]}},
 "secure":{{"url":"{url}","pullPath":"/pull/primary/secure","intervalMs":200,"headers":{{}},"writeMode":"pull_only","syncTriggers":["scheduled"]}}
 }}{auth}}}"#
    )
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn push(server: &TestServer, path: &str, data: &str, base: Option<&str>) -> common::Resp {
    let base = base
        .map(|b| format!("\"{b}\""))
        .unwrap_or_else(|| "null".into());
    server.post_json(
        &format!("/v1/push/{path}"),
        &format!(r#"{{"data":{data},"baseHash":{base}}}"#),
    )
}

fn hash_of(resp: &common::Resp) -> String {
    resp.json()["hash"].as_str().unwrap_or_default().to_owned()
}

/// Poll until `f` holds (the scheduler runs every 200 ms in these tests).
fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn replica_write_modes_against_a_live_primary() {
    let port = free_port();
    let primary = Setup::new(PRIMARY).port(port).start();
    let replica = Setup::new(REPLICA).replica(&settings(port, "")).start();
    write_modes(&primary, &replica);
}

/// The same over `https://`: the primary serves TLS with a private CA's
/// certificate, the replica trusts that CA through `caFile` and reaches
/// the primary by name (SNI and hostname verification on).
#[cfg(feature = "tls")]
#[test]
fn replica_write_modes_against_an_https_primary() {
    let certs = common::TlsCerts::localhost();
    let port = free_port();
    let primary = Setup::new(PRIMARY).port(port).tls(&certs).start();
    let ca = serde_json::to_string(certs.ca.to_str().unwrap()).unwrap();
    let replica = Setup::new(REPLICA)
        .replica(&settings_for(
            &format!("https://localhost:{port}/v1"),
            &format!(r#","caFile":{ca}"#),
        ))
        .start();
    write_modes(&primary, &replica);
}

/// A primary whose certificate the replica does not trust is an unreachable
/// primary: nothing replicates, push-through answers 502, local data is
/// still served.
#[cfg(feature = "tls")]
#[test]
fn an_untrusted_https_primary_is_treated_as_unreachable() {
    let certs = common::TlsCerts::localhost();
    let other = common::TlsCerts::localhost(); // another CA
    let port = free_port();
    let primary = Setup::new(PRIMARY).port(port).tls(&certs).start();
    let h = hash_of(&push(&primary, "primary/news", r#"{"v":1}"#, None));
    assert!(!h.is_empty());
    let ca = serde_json::to_string(other.ca.to_str().unwrap()).unwrap();
    let replica = Setup::new(REPLICA)
        .replica(&settings_for(
            &format!("https://localhost:{port}/v1"),
            &format!(r#","caFile":{ca}"#),
        ))
        .start();
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(hash_of(&replica.get("/v1/pull/replica/news")), "");
    assert_eq!(replica.get("/v1/pull/replica/feed").status, 200);
    push(&replica, "replica/wiki", r#"{"a":1}"#, None).assert_error(502, "Failed to reach primary");
    assert_eq!(
        push(&replica, "replica/local/a", r#"{"l":1}"#, None).status,
        200
    );
    assert_eq!(
        hash_of(&primary.get("/v1/pull/primary/wiki")),
        "",
        "nothing reached the primary"
    );
}

/// Every write mode of a replica against its primary.
fn write_modes(primary: &TestServer, replica: &TestServer) {
    // pull_only + scheduled: the replica follows the primary.
    let h1 = hash_of(&push(primary, "primary/news", r#"{"title":"first"}"#, None));
    eventually("news replicated", || {
        hash_of(&replica.get("/v1/pull/replica/news")) == h1
    });
    assert_eq!(
        replica.get("/v1/pull/replica/news").json()["data"],
        serde_json::json!({"title":"first"})
    );
    let h2 = hash_of(&push(
        primary,
        "primary/news",
        r#"{"title":"second"}"#,
        Some(&h1),
    ));
    eventually("news update replicated", || {
        hash_of(&replica.get("/v1/pull/replica/news")) == h2
    });
    push(replica, "replica/news", r#"{"x":1}"#, Some(&h2))
        .assert_error(405, "This collection is read-only on this server");

    // push_through: the push is relayed to the primary, its answer relayed back.
    let r = push(replica, "replica/wiki", r#"{"page":"home"}"#, None);
    assert_eq!(r.status, 200, "{}", r.text());
    let wh = hash_of(&r);
    assert_eq!(
        hash_of(&primary.get("/v1/pull/primary/wiki")),
        wh,
        "the primary has the write"
    );
    eventually("background resync after push-through", || {
        hash_of(&replica.get("/v1/pull/replica/wiki")) == wh
    });
    push(replica, "replica/wiki", r#"{"page":"stale"}"#, Some("nope"))
        .assert_json(409, r#"{"error":"hash_mismatch"}"#);
    // The primary's validation errors come back as "Primary returned <status>".
    let bad = replica.post_json("/v1/push/replica/wiki", "not json");
    bad.assert_error(400, "Primary returned 400");

    // on_pull: a client pull syncs first.
    let fh = hash_of(&push(primary, "primary/feed", r#"{"item":1}"#, None));
    assert_eq!(
        hash_of(&replica.get("/v1/pull/replica/feed")),
        fh,
        "synced before answering"
    );

    // bidirectional: local writes stay local; primary changes merge in, primary wins.
    let nh = hash_of(&push(primary, "primary/notes", r#"{"shared":"p1"}"#, None));
    eventually("notes replicated", || {
        hash_of(&replica.get("/v1/pull/replica/notes")) == nh
    });
    let local = push(
        replica,
        "replica/notes",
        r#"{"shared":"local","mine":true}"#,
        Some(&nh),
    );
    assert_eq!(local.status, 200);
    assert_eq!(
        hash_of(&primary.get("/v1/pull/primary/notes")),
        nh,
        "local writes are never forwarded"
    );
    push(
        primary,
        "primary/notes",
        r#"{"shared":"p2","extra":1}"#,
        Some(&nh),
    );
    eventually("primary change merged", || {
        replica.get("/v1/pull/replica/notes").json()["data"]
            == serde_json::json!({"shared":"p2","mine":true,"extra":1})
    });

    // push_only: pulls are refused, pushes stay local.
    replica
        .get("/v1/pull/replica/drop")
        .assert_error(405, "This collection is write-only on this server");
    assert_eq!(
        push(replica, "replica/drop", r#"{"d":1}"#, None).status,
        200
    );
    assert_eq!(hash_of(&primary.get("/v1/pull/primary/drop")), "");

    // A collection without remote settings is an ordinary local collection.
    assert_eq!(
        push(replica, "replica/local/a", r#"{"l":1}"#, None).status,
        200
    );

    // The secure collection needs cap:read:* on the primary: an anonymous replica never gets it.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(hash_of(&replica.get("/v1/pull/replica/secure")), "");
}

#[test]
fn local_reads_survive_a_primary_outage_and_sync_resumes() {
    let port = free_port();
    let primary = Setup::new(PRIMARY).port(port).start();
    let replica = Setup::new(REPLICA).replica(&settings(port, "")).start();
    let h1 = hash_of(&push(&primary, "primary/news", r#"{"v":1}"#, None));
    eventually("replicated", || {
        hash_of(&replica.get("/v1/pull/replica/news")) == h1
    });
    drop(primary);
    // The primary is gone: local reads keep working, push-through answers 502.
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(hash_of(&replica.get("/v1/pull/replica/news")), h1);
    assert_eq!(
        replica.get("/v1/pull/replica/feed").status,
        200,
        "on_pull errors never reach the reader"
    );
    push(&replica, "replica/wiki", r#"{"a":1}"#, None).assert_error(502, "Failed to reach primary");
    // It comes back (same port, empty store): new data replicates again.
    let primary = Setup::new(PRIMARY).port(port).start();
    let h2 = hash_of(&push(&primary, "primary/news", r#"{"v":2}"#, None));
    eventually("sync resumed after the outage", || {
        hash_of(&replica.get("/v1/pull/replica/news")) == h2
    });
}

#[test]
fn a_signed_replica_reads_cap_protected_collections() {
    let port = free_port();
    // The primary refuses unsigned requests to non-public collections (401).
    let primary = Setup::new(PRIMARY).port(port).no_anonymous().start();
    primary
        .get("/v1/pull/primary/secure")
        .assert_error(401, "Unauthorized");
    // The primary's secure collection needs cap:write:* to push: use a root cap.
    let seed = [9u8; 32];
    let pub_hex = common::pub_hex(&seed);
    let now_s = starfish::http::service::now_ms() / 1000;
    let cap = starfish::proto::cap::mint_device_cap(
        &seed,
        &pub_hex,
        &pub_hex,
        &"00".repeat(32),
        starfish::proto::cap::root_all_scope(),
        starfish::proto::cap::MintOptions {
            nbf: now_s,
            ttl_sec: 3600,
            nonce: [3; 16],
        },
    )
    .unwrap();
    let body = br#"{"data":{"secret":42},"baseHash":null}"#;
    let target = "/v1/push/primary/secure";
    let nonce = starfish::proto::encoding::b64_encode(&[4; 16]);
    let ts = starfish::http::service::now_ms();
    let host = primary.host();
    let sig = starfish::proto::request_sig::sign_request(
        &starfish::proto::request_sig::RequestToSign {
            method: "POST",
            path_and_query: target,
            host: &host,
            body,
            ts: ts as f64,
            nonce_b64: &nonce,
        },
        &seed,
    );
    let r = common::Req::new("POST", target)
        .header("Content-Type", "application/json")
        .header("Authorization", &cap.authorization_header())
        .header("X-Starfish-Sig", &sig)
        .header("X-Starfish-Ts", &ts.to_string())
        .header("X-Starfish-Nonce", &nonce)
        .body(body)
        .send(&primary);
    assert_eq!(r.status, 200, "{}", r.text());
    let sh = hash_of(&r);
    // The replica signs with an identity derived from its passphrase (a root cap: cap:read:*).
    let replica = Setup::new(REPLICA)
        .replica(&settings(
            port,
            r#","auth":{"passphrase":"replica test passphrase"}"#,
        ))
        .start();
    eventually("secure replicated with a signed request", || {
        hash_of(&replica.get("/v1/pull/replica/secure")) == sh
    });
}

#[test]
fn a_bad_replica_file_stops_start_up_with_the_official_message() {
    let port = free_port();
    let dir = common::temp_dir("badreplica");
    let cfg = dir.join("config.json");
    std::fs::write(&cfg, REPLICA).unwrap();
    let rep = dir.join("replica.json");
    std::fs::write(
        &rep,
        format!(r#"{{"collections":{{"local":{{"url":"http://127.0.0.1:{port}/v1","pullPath":"/p"}},"ghost":{{"url":"http://x/v1","pullPath":"/p"}}}}}}"#),
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
        err.contains("[starfish-replica] invalid configuration:"),
        "{err}"
    );
    assert!(err.contains("- Collection \"local\": remote collections must have a static storagePath with no template variables (found \"replica/local/{id}\")"), "{err}");
    assert!(
        err.contains(
            "- Collection \"ghost\": remote replication configured for an unknown root collection"
        ),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(dir);
}
