//! Interop check: our replica replicating from the **official** Node server
//! (`@drakkar.software/starfish-server@3.0.0-alpha.65`) as primary, with
//! anonymous access off there, so every replica request must carry a cap
//! signature the official resolver accepts. Exits non-zero on any failure.
//!
//! Run through `tests/interop/official-server/run.sh`, which starts the
//! official server with `replica-primary.json`, then:
//!
//! ```text
//! cargo run --example replica_interop -- http://127.0.0.1:PORT
//! ```

use futures_lite::future::block_on;
use starfish::client::{Client, ClientOptions, DeviceCredentials, Signer};
use starfish::proto::json::{parse, Value};
use starfish::server::{ServeOptions, Server, StoreChoice};
use std::sync::Arc;
use std::time::{Duration, Instant};

const REPLICA_CONFIG: &str = r#"{"version":1,"collections":[
 {"name":"news","storagePath":"replica/news","readRoles":["public"],"writeRoles":["public"],"encryption":"none","maxBodyBytes":65536},
 {"name":"wiki","storagePath":"replica/wiki","readRoles":["public"],"writeRoles":["public"],"encryption":"none","maxBodyBytes":65536},
 {"name":"feed","storagePath":"replica/feed","readRoles":["public"],"writeRoles":["public"],"encryption":"none","maxBodyBytes":65536},
 {"name":"notes","storagePath":"replica/notes","readRoles":["public"],"writeRoles":["public"],"encryption":"none","maxBodyBytes":65536},
 {"name":"drop","storagePath":"replica/drop","readRoles":["public"],"writeRoles":["public"],"encryption":"none","maxBodyBytes":65536},
 {"name":"secure","storagePath":"replica/secure","readRoles":["public"],"writeRoles":["public"],"encryption":"none","maxBodyBytes":65536}]}"#;

const PASSPHRASE: &str = "starfish-rs replica interop";

fn settings(primary: &str) -> String {
    let c = |name: &str, mode: &str, triggers: &str, push: bool| {
        let push = if push {
            format!(r#","pushPath":"/push/primary/{name}""#)
        } else {
            String::new()
        };
        format!(
            r#""{name}":{{"url":"{primary}","pullPath":"/pull/primary/{name}"{push},"intervalMs":300,"headers":{{}},"writeMode":"{mode}","syncTriggers":{triggers}}}"#
        )
    };
    format!(
        r#"{{"collections":{{{},{},{},{},{},{}}},"auth":{{"passphrase":"{PASSPHRASE}"}}}}"#,
        c("news", "pull_only", r#"["scheduled"]"#, false),
        c("wiki", "push_through", r#"["scheduled"]"#, true),
        c("feed", "pull_only", r#"["on_pull"]"#, false),
        c("notes", "bidirectional", r#"["scheduled"]"#, true),
        c("drop", "push_only", r#"["scheduled"]"#, false),
        c("secure", "pull_only", r#"["scheduled"]"#, false),
    )
}

struct Checks {
    passed: usize,
    failed: usize,
}

impl Checks {
    fn check(&mut self, ok: bool, what: &str) {
        if ok {
            self.passed += 1;
        } else {
            self.failed += 1;
            eprintln!("FAIL: {what}");
        }
    }
}

fn eventually(mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

fn main() {
    let primary_url = std::env::args()
        .nth(1)
        .expect("usage: replica_interop PRIMARY_URL (http://127.0.0.1:PORT/v1)");
    let mut checks = Checks {
        passed: 0,
        failed: 0,
    };
    // The primary: an anonymous client for public collections, a signed one
    // (the same identity the replica derives) for the protected one.
    let anon = Client::new(&primary_url).expect("primary URL");
    let creds = DeviceCredentials::bootstrap(PASSPHRASE).expect("identity");
    let signer = Arc::new(Signer::from_credentials(&creds).expect("signer"));
    let signed = Client::with_options(
        &primary_url,
        ClientOptions {
            signer: Some(signer),
            ..ClientOptions::default()
        },
    )
    .expect("client");
    let doc = |s: &str| parse(s.as_bytes()).expect("literal JSON");
    let news = block_on(anon.push(
        "/push/primary/news",
        &doc(r#"{"title":"from the official primary"}"#),
        None,
    ))
    .expect("seed news");
    let notes = block_on(anon.push("/push/primary/notes", &doc(r#"{"shared":"p1"}"#), None))
        .expect("seed notes");
    let secure = block_on(signed.push("/push/primary/secure", &doc(r#"{"secret":42}"#), None))
        .expect("seed secure (signed)");
    checks.check(
        block_on(anon.pull("/pull/primary/secure")).is_err(),
        "the primary refuses anonymous reads of secure",
    );

    // Our replica.
    let dir = std::env::temp_dir().join(format!("starfish-replica-interop-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    std::fs::write(dir.join("config.json"), REPLICA_CONFIG).expect("config");
    std::fs::write(dir.join("replica.json"), settings(&primary_url)).expect("settings");
    let server = Server::bind(ServeOptions {
        config: Some(dir.join("config.json")),
        listen: "127.0.0.1:0".parse().expect("addr"),
        store: StoreChoice::Memory,
        replica: Some(dir.join("replica.json")),
        threads: 1,
        ..ServeOptions::default()
    })
    .expect("replica binds");
    let replica_url = format!("http://{}/v1", server.local_addr());
    let (stop_tx, stop_rx) = async_channel::bounded::<()>(1);
    let handle = std::thread::spawn(move || {
        server
            .run_until(async move {
                let _ = stop_rx.recv().await;
            })
            .expect("replica runs")
    });
    let replica = Client::new(&replica_url).expect("replica URL");
    let hash_at = |path: &str| {
        block_on(replica.pull(path))
            .map(|r| r.hash)
            .unwrap_or_default()
    };

    checks.check(
        eventually(|| hash_at("/pull/replica/news") == news.hash),
        "pull_only: the replica follows the official primary",
    );
    checks.check(
        eventually(|| hash_at("/pull/replica/secure") == secure.hash),
        "signed replica requests pass the official cap resolver",
    );
    let wiki = block_on(replica.push("/push/replica/wiki", &doc(r#"{"page":"home"}"#), None));
    let wiki_hash = wiki.as_ref().map(|w| w.hash.clone()).unwrap_or_default();
    checks.check(
        wiki.is_ok(),
        "push_through: relayed to the official primary",
    );
    checks.check(
        block_on(anon.pull("/pull/primary/wiki"))
            .map(|r| r.hash)
            .ok()
            == Some(wiki_hash.clone()),
        "push_through: the primary has the write",
    );
    let conflict =
        block_on(replica.push("/push/replica/wiki", &doc(r#"{"page":"x"}"#), Some("stale")));
    checks.check(
        conflict.as_ref().is_err_and(|e| e.is_conflict()),
        "push_through: the primary's 409 comes back as hash_mismatch",
    );
    checks.check(
        eventually(|| hash_at("/pull/replica/wiki") == wiki_hash),
        "push_through: background resync",
    );
    let feed =
        block_on(anon.push("/push/primary/feed", &doc(r#"{"item":1}"#), None)).expect("seed feed");
    checks.check(
        hash_at("/pull/replica/feed") == feed.hash,
        "on_pull: synced before answering",
    );
    checks.check(
        eventually(|| hash_at("/pull/replica/notes") == notes.hash),
        "bidirectional: replicated",
    );
    let local = block_on(replica.push(
        "/push/replica/notes",
        &doc(r#"{"shared":"local","mine":true}"#),
        Some(&notes.hash),
    ));
    checks.check(local.is_ok(), "bidirectional: local write accepted");
    block_on(anon.push(
        "/push/primary/notes",
        &doc(r#"{"shared":"p2"}"#),
        Some(&notes.hash),
    ))
    .expect("primary update");
    let merged = doc(r#"{"shared":"p2","mine":true}"#);
    checks.check(
        eventually(|| {
            block_on(replica.pull("/pull/replica/notes"))
                .map(|r| r.data == merged)
                .unwrap_or(false)
        }),
        "bidirectional: the primary's change merged, remote wins",
    );
    let drop_pull = block_on(replica.pull("/pull/replica/drop"));
    checks.check(
        drop_pull.as_ref().is_err_and(|e| e.status() == Some(405)),
        "push_only: pull is 405",
    );
    let ro = block_on(replica.push("/push/replica/news", &doc(r#"{"x":1}"#), Some(&news.hash)));
    checks.check(
        ro.as_ref().is_err_and(|e| {
            e.status() == Some(405) && e.body().is_some_and(|b| b.contains("read-only"))
        }),
        "pull_only: push is 405 read-only",
    );
    let _ = Value::Null;

    stop_tx.close();
    let _ = handle.join();
    let _ = std::fs::remove_dir_all(&dir);
    println!(
        "replica-interop: {} passed, {} failed",
        checks.passed, checks.failed
    );
    if checks.failed > 0 {
        std::process::exit(1);
    }
}
