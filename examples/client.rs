//! A short tour of the Starfish client.
//!
//! Without an argument it starts our own server in-process (embedded
//! default config, memory store, `/v1` mount) on a free port; with one it
//! talks to the server at that origin (mounted at `/v1`, with the default
//! config's collections).
//!
//! ```text
//! cargo run --example client
//! cargo run --example client -- http://127.0.0.1:8787
//! ```

use futures_lite::future::block_on;
use starfish::client::{
    BatchEntry, Client, ClientError, ClientOptions, DeviceCredentials, Signer, SyncManager,
};
use starfish::proto::json::{parse, to_js_json, Object, Value};
use std::sync::Arc;

fn show(label: &str, v: &Value) {
    println!("{label:<28} {}", String::from_utf8_lossy(&to_js_json(v)));
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // A server: the one given, or our own on a free port.
    let (origin, _server) = match std::env::args().nth(1) {
        Some(url) => (url.trim_end_matches('/').to_owned(), None),
        None => {
            let server = starfish::server::Server::bind(starfish::server::ServeOptions {
                listen: "127.0.0.1:0".parse()?,
                store: starfish::server::StoreChoice::Memory,
                threads: 1,
                ..Default::default()
            })?;
            let origin = format!("http://{}", server.local_addr());
            let (stop, rx) = async_channel::bounded::<()>(1);
            let t = std::thread::spawn(move || {
                let _ = server.run_until(async move {
                    let _ = rx.recv().await;
                });
            });
            (origin, Some((stop, t)))
        }
    };
    let result = block_on(tour(&origin));
    if let Some((stop, t)) = _server {
        stop.close();
        let _ = t.join();
    }
    result
}

async fn tour(origin: &str) -> Result<(), Box<dyn std::error::Error>> {
    let v1 = format!("{origin}/v1");

    // 1. Public collection, no credentials.
    let public = Client::new(&v1)?;
    let note = public.pull("/pull/public/notes/tour").await?;
    let r = public
        .push(
            "/push/public/notes/tour",
            &parse(br#"{"text":"hello from Rust"}"#)?,
            Some(&note.hash),
        )
        .await?;
    println!("pushed note, hash {}", r.hash);

    // A stale base hash is a typed conflict.
    match public
        .push("/push/public/notes/tour", &parse(b"{}")?, Some(&note.hash))
        .await
    {
        Err(ClientError::Conflict { .. }) => println!("stale push: conflict, as expected"),
        other => println!("unexpected: {other:?}"),
    }

    // 2. An identity: derive from a passphrase (Argon2id, ~46 MiB) and mint
    //    the self-signed device cap. Save it once, load it on small devices.
    let creds = DeviceCredentials::bootstrap("correct horse battery staple")?;
    println!("userId {}", creds.user_id);
    let signer = Arc::new(Signer::from_credentials(&creds)?);
    let me = Client::with_options(
        &v1,
        ClientOptions {
            signer: Some(signer.clone()),
            ..Default::default()
        },
    )?;

    // 3. A SyncManager on the caller's own settings document.
    let settings = format!("users/{}/settings", creds.user_id);
    let mut sync = SyncManager::new(
        me.clone(),
        &format!("/pull/{settings}"),
        &format!("/push/{settings}"),
    );
    sync.update(|d| {
        let mut d = d.clone();
        d.insert("theme", Value::from("dark"));
        d
    })
    .await?;
    show("settings", &Value::Object(sync.data().clone()));

    // 4. A namespace: the base URL is the origin, the client adds /v1/demo.
    let demo = Client::with_options(
        origin,
        ClientOptions {
            namespace: Some("demo".into()),
            signer: Some(signer),
            ..Default::default()
        },
    )?;
    let board = demo.pull("/pull/demo/board/main").await?;
    demo.push(
        "/push/demo/board/main",
        &parse(br#"{"pinned":["welcome"]}"#)?,
        Some(&board.hash),
    )
    .await?;
    println!(
        "namespaced request line: GET {}",
        demo.wire_path("/pull/demo/board/main")?
    );

    // 5. Batch pull: many documents of one collection in one round-trip.
    let ids = ["tour", "missing"].map(|id| {
        let mut o = Object::new();
        o.insert("id", Value::from(id));
        o
    });
    for (id, e) in ids.iter().zip(public.batch_pull_many("notes", &ids).await?) {
        match e {
            BatchEntry::Document { data, hash, .. } => show(
                &format!(
                    "notes/{} ({})",
                    id.get("id").and_then(Value::as_str).unwrap_or(""),
                    if hash.is_empty() { "missing" } else { "found" }
                ),
                &data,
            ),
            BatchEntry::Error(m) => println!("error: {m}"),
        }
    }

    Ok(())
}
