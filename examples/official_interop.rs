//! Interop check: the Rust client against the **official** Node server
//! (`@drakkar.software/starfish-server@3.0.0-alpha.65`, mounted at `/v1`,
//! cap-cert resolver, our default config). Exits non-zero on any failure.
//!
//! Run it through `tests/interop/official-server/run.sh`, which installs the
//! pinned server, starts it, runs this with its origin, and stops it:
//!
//! ```text
//! tests/interop/official-server/run.sh
//! cargo run --example official_interop -- http://127.0.0.1:PORT   # server already running
//! ```
//!
//! Every authenticated request here is verified by the official cap-cert
//! resolver, so passing proves the request signing (wire path with the `/v1`
//! mount, host, body hash, cap header) from the other side.

use futures_lite::future::block_on;
use starfish::client::{
    BatchEntry, Client, ClientError, ClientOptions, DeviceCredentials, PullOptions, Signer,
    SyncManager,
};
use starfish::proto::json::{parse, Object, Value};
use std::sync::Arc;
use std::time::Duration;

type Check = Result<(), String>;

fn json(s: &str) -> Value {
    parse(s.as_bytes()).expect("literal JSON")
}

fn obj(s: &str) -> Object {
    json(s).as_object().cloned().unwrap_or_default()
}

fn ensure(cond: bool, what: impl Into<String>) -> Check {
    if cond {
        Ok(())
    } else {
        Err(what.into())
    }
}

fn e(err: ClientError) -> String {
    format!("{err} ({err:?})")
}

struct Ctx {
    v1: String,
    origin: String,
    creds: DeviceCredentials,
    signer: Arc<Signer>,
    run: String,
}

impl Ctx {
    fn client(&self, base: &str, namespace: Option<&str>, signed: bool) -> Client {
        Client::with_options(
            base,
            ClientOptions {
                namespace: namespace.map(str::to_owned),
                signer: signed.then(|| self.signer.clone()),
                timeout: Duration::from_secs(10),
                ..ClientOptions::default()
            },
        )
        .expect("client")
    }
}

async fn public_docs(cx: &Ctx) -> Check {
    let c = cx.client(&cx.v1, None, false);
    let path = format!("public/notes/{}", cx.run);
    let missing = c.pull(&format!("/pull/{path}")).await.map_err(e)?;
    ensure(
        missing.hash.is_empty() && missing.data == json("{}"),
        "missing doc is {} with hash \"\"",
    )?;
    let r = c
        .push(
            &format!("/push/{path}"),
            &json(r#"{"text":"from rust"}"#),
            Some(""),
        )
        .await
        .map_err(e)?;
    let got = c.pull(&format!("/pull/{path}")).await.map_err(e)?;
    ensure(
        got.hash == r.hash,
        format!("hash after push {} != {}", got.hash, r.hash),
    )?;
    ensure(
        got.data == json(r#"{"text":"from rust"}"#),
        "data round-trips",
    )?;
    let nm = c
        .pull_with(
            &format!("/pull/{path}"),
            &PullOptions {
                if_none_match: Some(r.hash.clone()),
                ..PullOptions::default()
            },
        )
        .await
        .map_err(e)?;
    ensure(
        nm.is_none(),
        "If-None-Match with the current hash gives 304",
    )
}

async fn authenticated_pull_push_conflict(cx: &Ctx) -> Check {
    let c = cx.client(&cx.v1, None, true);
    let path = format!("users/{}/settings", cx.creds.user_id);
    let first = c.pull(&format!("/pull/{path}")).await.map_err(e)?;
    let r = c
        .push(
            &format!("/push/{path}"),
            &json(r#"{"theme":"dark"}"#),
            Some(&first.hash),
        )
        .await
        .map_err(e)?;
    let got = c.pull(&format!("/pull/{path}")).await.map_err(e)?;
    ensure(
        got.hash == r.hash && got.data == json(r#"{"theme":"dark"}"#),
        "signed push/pull round-trip",
    )?;
    match c
        .push(&format!("/push/{path}"), &json("{}"), Some(&first.hash))
        .await
    {
        Err(ClientError::Conflict { .. }) => {}
        other => return Err(format!("stale push should be a conflict, got {other:?}")),
    }
    // Anonymous on a self collection: 403 (anonymous callers are `public`).
    let anon = cx.client(&cx.v1, None, false);
    match anon.pull(&format!("/pull/{path}")).await {
        Err(ClientError::Forbidden { .. }) => Ok(()),
        other => Err(format!(
            "anonymous pull of settings should be 403, got {other:?}"
        )),
    }
}

async fn sync_manager(cx: &Ctx) -> Check {
    let c = cx.client(&cx.v1, None, true);
    let path = format!("users/{}/settings", cx.creds.user_id);
    let current = c.pull(&format!("/pull/{path}")).await.map_err(e)?;
    let mut m = SyncManager::new(
        c.clone(),
        &format!("/pull/{path}"),
        &format!("/push/{path}"),
    )
    .with_backoff(Duration::from_millis(5), Duration::from_millis(20));
    // Never pulled: baseHash null → 409 → pull, merge, retry.
    m.push(obj(r#"{"lang":"fr","theme":"light"}"#))
        .await
        .map_err(e)?;
    let mut expected = current.data.as_object().cloned().unwrap_or_default();
    expected =
        starfish::proto::merge::deep_merge(&obj(r#"{"lang":"fr","theme":"light"}"#), &expected);
    let got = c.pull(&format!("/pull/{path}")).await.map_err(e)?;
    ensure(
        got.data == Value::Object(expected.clone()) && m.data() == &expected,
        format!("merged document, got {:?}", got.data),
    )
}

async fn namespace(cx: &Ctx) -> Check {
    let ns = cx.client(&cx.origin, Some("demo"), true);
    let board = format!("demo/board/{}", cx.run);
    let b = ns
        .push(
            &format!("/push/{board}"),
            &json(r#"{"pinned":[1]}"#),
            Some(""),
        )
        .await
        .map_err(e)?;
    let inbox = format!("demo/users/{}/inbox", cx.creds.user_id);
    let r = ns
        .push(
            &format!("/push/{inbox}"),
            &json(r#"{"m":["hi"]}"#),
            Some(""),
        )
        .await
        .map_err(e)?;
    let got = ns.pull(&format!("/pull/{inbox}")).await.map_err(e)?;
    ensure(got.hash == r.hash, "namespaced signed round-trip")?;
    // Without the namespace option: `/v1` base URL and a hand-prefixed path.
    // The official client's signature (over the path after baseUrl) fails
    // here; ours covers the wire path and verifies.
    let plain = cx.client(&cx.v1, None, true);
    let got = plain
        .pull(&format!("/demo/pull/{inbox}"))
        .await
        .map_err(e)?;
    ensure(got.hash == r.hash, "hand-prefixed namespaced pull")?;
    let got = cx
        .client(&cx.v1, None, false)
        .pull(&format!("/demo/pull/{board}"))
        .await
        .map_err(e)?;
    ensure(got.hash == b.hash, "public namespaced pull")
}

async fn batch(cx: &Ctx) -> Check {
    let c = cx.client(&cx.v1, None, true);
    let entries = c
        .batch_pull_many(
            "notes",
            &[
                obj(&format!(r#"{{"id":"{}"}}"#, cx.run)),
                obj(r#"{"id":"does-not-exist"}"#),
                Object::new(),
            ],
        )
        .await
        .map_err(e)?;
    ensure(entries.len() == 3, "three entries")?;
    ensure(
        matches!(&entries[0], BatchEntry::Document { data, .. } if *data == json(r#"{"text":"from rust"}"#)),
        format!("first entry {:?}", entries[0]),
    )?;
    ensure(
        matches!(&entries[1], BatchEntry::Document { hash, .. } if hash.is_empty()),
        format!("second entry {:?}", entries[1]),
    )?;
    ensure(
        matches!(&entries[2], BatchEntry::Error(m) if m == "Missing required path parameter"),
        format!("third entry {:?}", entries[2]),
    )?;
    // Signed batch: the identity is filled in for {identity} collections.
    let r = c
        .batch_pull(&["settings", "nope"], &{
            let mut p = Object::new();
            p.insert("settings", json("[{}]"));
            p
        })
        .await
        .map_err(e)?;
    ensure(
        matches!(r.get("settings"), Some([BatchEntry::Document { hash, .. }]) if !hash.is_empty()),
        format!("settings via batch: {:?}", r.get("settings")),
    )?;
    ensure(
        matches!(r.get("nope"), Some([BatchEntry::Error(m)]) if m == "Collection not found"),
        format!("unknown collection: {:?}", r.get("nope")),
    )?;
    // Namespaced batch through the namespace option.
    let ns = cx.client(&cx.origin, Some("demo"), true);
    let inbox = ns
        .batch_pull_many("inbox", &[Object::new()])
        .await
        .map_err(e)?;
    ensure(
        matches!(inbox.as_slice(), [BatchEntry::Document { data, .. }] if *data == json(r#"{"m":["hi"]}"#)),
        format!("namespaced batch: {inbox:?}"),
    )
}

fn main() {
    let Some(origin) = std::env::args().nth(1) else {
        eprintln!(
            "usage: official_interop http://127.0.0.1:PORT   (official server mounted at /v1)"
        );
        std::process::exit(2);
    };
    let origin = origin.trim_end_matches('/').to_owned();
    let creds = match DeviceCredentials::bootstrap("starfish-rs interop passphrase") {
        Ok(c) => c,
        Err(err) => {
            eprintln!("FAIL credentials: {err}");
            std::process::exit(1);
        }
    };
    let signer = Arc::new(Signer::from_credentials(&creds).expect("signer"));
    let run = format!(
        "rs-{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or(0)
    );
    let cx = Ctx {
        v1: format!("{origin}/v1"),
        origin,
        creds,
        signer,
        run,
    };
    let mut failed = 0;
    for (name, result) in [
        ("public pull/push/ETag", block_on(public_docs(&cx))),
        (
            "authenticated pull/push/conflict",
            block_on(authenticated_pull_push_conflict(&cx)),
        ),
        (
            "SyncManager conflict resolution",
            block_on(sync_manager(&cx)),
        ),
        ("namespace", block_on(namespace(&cx))),
        ("batch pull", block_on(batch(&cx))),
    ] {
        match result {
            Ok(()) => println!("ok    {name}"),
            Err(m) => {
                failed += 1;
                println!("FAIL  {name}: {m}");
            }
        }
    }
    if failed > 0 {
        eprintln!("{failed} interop check(s) failed");
        std::process::exit(1);
    }
    println!("all interop checks passed against {}", cx.v1);
}
