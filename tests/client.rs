//! The Rust client against our server (embedded default config, memory
//! store, `/v1` mount): public and authenticated collections, namespaces,
//! conflicts, batch pull, `SyncManager`, keep-alive reuse, timeouts, cap
//! re-minting, credentials files and the CLI subcommands.

use futures_lite::future::block_on;
use starfish::client::{
    BatchEntry, Client, ClientError, ClientOptions, DeviceCredentials, PullOptions, Signer,
    SyncManager,
};
use starfish::proto::cap::{root_all_scope, MintOptions};
use starfish::proto::identity::identity_from_master;
use starfish::proto::json::{parse, Object, Value};
use starfish::server::{ServeOptions, Server, StoreChoice};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

struct TestServer {
    addr: SocketAddr,
    stop: async_channel::Sender<()>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TestServer {
    fn start() -> TestServer {
        TestServer::start_with(|_| {})
    }

    fn start_with(tweak: impl FnOnce(&mut ServeOptions)) -> TestServer {
        let mut opts = ServeOptions {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            store: StoreChoice::Memory,
            threads: 1,
            ..ServeOptions::default()
        };
        tweak(&mut opts);
        let server = Server::bind(opts).expect("bind");
        let addr = server.local_addr();
        let (stop, rx) = async_channel::bounded::<()>(1);
        let thread = std::thread::spawn(move || {
            server
                .run_until(async move {
                    let _ = rx.recv().await;
                })
                .expect("server run");
        });
        TestServer {
            addr,
            stop,
            thread: Some(thread),
        }
    }

    /// `http://addr/v1`.
    fn v1(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    fn origin(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop.close();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn now_s() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Credentials without the Argon2id cost: the identity from a fixed master.
fn creds(master: u8) -> DeviceCredentials {
    let root = identity_from_master(&[master; 32]);
    DeviceCredentials::from_root_identity(
        &root,
        MintOptions {
            nbf: now_s() - 60,
            ttl_sec: 3600,
            nonce: [master; 16],
        },
    )
    .unwrap()
}

fn signed(base: &str, namespace: Option<&str>, c: &DeviceCredentials) -> Client {
    Client::with_options(
        base,
        ClientOptions {
            namespace: namespace.map(str::to_owned),
            signer: Some(Arc::new(Signer::from_credentials(c).unwrap())),
            ..ClientOptions::default()
        },
    )
    .unwrap()
}

fn json(s: &str) -> Value {
    parse(s.as_bytes()).unwrap()
}

fn obj(s: &str) -> Object {
    json(s).as_object().unwrap().clone()
}

#[test]
fn public_collection_pull_push_conflict_and_etag() {
    let srv = TestServer::start();
    let c = Client::new(&srv.v1()).unwrap();
    block_on(async {
        let missing = c.pull("/pull/public/notes/n1").await.unwrap();
        assert_eq!(missing.data, json("{}"));
        assert_eq!(missing.hash, "");
        assert!(missing.timestamp > 0.0);

        let r = c
            .push("/push/public/notes/n1", &json(r#"{"text":"hi"}"#), Some(""))
            .await
            .unwrap();
        assert_eq!(r.hash.len(), 64);
        let got = c.pull("/pull/public/notes/n1").await.unwrap();
        assert_eq!(got.data, json(r#"{"text":"hi"}"#));
        assert_eq!(got.hash, r.hash);

        // If-None-Match: unchanged → None (304); other hash → the document.
        let same = PullOptions {
            if_none_match: Some(r.hash.clone()),
            ..PullOptions::default()
        };
        assert_eq!(
            c.pull_with("/pull/public/notes/n1", &same).await.unwrap(),
            None
        );
        let other = PullOptions {
            if_none_match: Some("00".repeat(32)),
            checkpoint: 5.0,
            ..PullOptions::default()
        };
        assert!(c
            .pull_with("/pull/public/notes/n1", &other)
            .await
            .unwrap()
            .is_some());

        // Stale base hash and create-only on an existing doc: 409.
        let stale = c
            .push("/push/public/notes/n1", &json(r#"{"text":"x"}"#), Some(""))
            .await
            .unwrap_err();
        assert!(stale.is_conflict(), "{stale}");
        let create = c
            .push("/push/public/notes/n1", &json(r#"{"text":"x"}"#), None)
            .await
            .unwrap_err();
        assert!(matches!(create, ClientError::Conflict { .. }), "{create}");
        assert_eq!(create.status(), Some(409));

        // Unknown route: 404 with the server's body.
        let nf = c.pull("/pull/nothing/here").await.unwrap_err();
        assert!(matches!(nf, ClientError::NotFound { .. }), "{nf}");

        // Too large: 413.
        let big = Value::Object({
            let mut o = Object::new();
            o.insert("x", Value::from("a".repeat(70_000)));
            o
        });
        let e = c
            .push("/push/public/notes/big", &big, Some(""))
            .await
            .unwrap_err();
        assert!(matches!(e, ClientError::PayloadTooLarge { .. }), "{e}");
    });
    // Keep-alive: the requests above shared pooled connections.
    assert!(c.idle_connections() >= 1);
}

#[test]
fn authenticated_self_collection() {
    let srv = TestServer::start();
    let alice = creds(1);
    let bob = creds(2);
    let path = format!("/users/{}/settings", alice.user_id);
    let anon = Client::new(&srv.v1()).unwrap();
    let a = signed(&srv.v1(), None, &alice);
    let b = signed(&srv.v1(), None, &bob);
    block_on(async {
        // Anonymous callers only have the `public` role: 403.
        let e = anon.pull(&format!("/pull{path}")).await.unwrap_err();
        assert!(matches!(e, ClientError::Forbidden { .. }), "{e}");
        // A garbage signature: 401.
        let forged = Client::with_options(
            &srv.v1(),
            ClientOptions {
                headers: vec![("Authorization".into(), "Cap e30=".into())],
                ..ClientOptions::default()
            },
        )
        .unwrap();
        let e = forged.pull(&format!("/pull{path}")).await.unwrap_err();
        assert!(matches!(e, ClientError::Unauthorized { .. }), "{e}");

        let first = a.pull(&format!("/pull{path}")).await.unwrap();
        assert_eq!(first.hash, "");
        let r = a
            .push(
                &format!("/push{path}"),
                &json(r#"{"theme":"dark"}"#),
                Some(""),
            )
            .await
            .unwrap();
        let got = a.pull(&format!("/pull{path}")).await.unwrap();
        assert_eq!(got.data, json(r#"{"theme":"dark"}"#));
        assert_eq!(got.hash, r.hash);

        // Bob's cap is bound to Bob's identity: 403 on Alice's document.
        let e = b.pull(&format!("/pull{path}")).await.unwrap_err();
        assert!(matches!(e, ClientError::Forbidden { .. }), "{e}");
    });
}

#[test]
fn namespaces_signed_over_the_wire_path() {
    let srv = TestServer::start();
    let alice = creds(3);
    let inbox = format!("demo/users/{}/inbox", alice.user_id);
    block_on(async {
        // The official rule: origin base URL + namespace → /v1/demo/...
        let ns = signed(&srv.origin(), Some("demo"), &alice);
        assert_eq!(
            ns.wire_path("/pull/demo/board/b1").unwrap(),
            "/v1/demo/pull/demo/board/b1"
        );
        ns.push("/push/demo/board/b1", &json(r#"{"n":1}"#), Some(""))
            .await
            .unwrap();
        let r = ns
            .push(
                &format!("/push/{inbox}"),
                &json(r#"{"m":["hi"]}"#),
                Some(""),
            )
            .await
            .unwrap();

        // Without the namespace option, a `/v1` base URL and a hand-prefixed
        // path: signed over the full wire path, so it verifies too.
        let plain = signed(&srv.v1(), None, &alice);
        let got = plain.pull(&format!("/demo/pull/{inbox}")).await.unwrap();
        assert_eq!(got.hash, r.hash);
        let board = Client::new(&srv.v1())
            .unwrap()
            .pull("/demo/pull/demo/board/b1")
            .await
            .unwrap();
        assert_eq!(board.data, json(r#"{"n":1}"#));

        // Namespaced batch pull, identity filled in by the server.
        let entries = ns.batch_pull_many("inbox", &[Object::new()]).await.unwrap();
        assert_eq!(
            entries,
            vec![BatchEntry::Document {
                data: json(r#"{"m":["hi"]}"#),
                hash: r.hash.clone(),
                timestamp: match &entries[0] {
                    BatchEntry::Document { timestamp, .. } => *timestamp,
                    _ => 0.0,
                },
            }]
        );
    });
}

#[test]
fn batch_pull() {
    let srv = TestServer::start();
    let alice = creds(4);
    let c = signed(&srv.v1(), None, &alice);
    block_on(async {
        c.push("/push/public/notes/a", &json(r#"{"v":"a"}"#), Some(""))
            .await
            .unwrap();
        c.push("/push/public/notes/b_c", &json(r#"{"v":"b"}"#), Some(""))
            .await
            .unwrap();
        c.push(
            &format!("/push/users/{}/settings", alice.user_id),
            &json(r#"{"s":1}"#),
            Some(""),
        )
        .await
        .unwrap();

        assert!(c.batch_pull_many("notes", &[]).await.unwrap().is_empty());
        let entries = c
            .batch_pull_many(
                "notes",
                &[
                    obj(r#"{"id":"a"}"#),
                    obj(r#"{"id":"b_c"}"#),
                    obj(r#"{"id":"zz"}"#),
                    Object::new(),
                ],
            )
            .await
            .unwrap();
        assert_eq!(entries.len(), 4);
        let data = |e: &BatchEntry| match e {
            BatchEntry::Document { data, hash, .. } => (data.clone(), hash.clone()),
            BatchEntry::Error(m) => (Value::from(m.as_str()), "error".into()),
        };
        assert_eq!(data(&entries[0]).0, json(r#"{"v":"a"}"#));
        assert_eq!(data(&entries[1]).0, json(r#"{"v":"b"}"#));
        assert_eq!(data(&entries[2]), (json("{}"), String::new()));
        assert!(
            matches!(&entries[3], BatchEntry::Error(m) if m == "Missing required path parameter")
        );

        let mut params = Object::new();
        params.insert("notes", json(r#"[{"id":"a"}]"#));
        params.insert("settings", json("[{}]"));
        let r = c
            .batch_pull(&["notes", "settings", "nope"], &params)
            .await
            .unwrap();
        let names: Vec<&str> = r.collections.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["notes", "settings", "nope"]);
        assert_eq!(data(&r.get("settings").unwrap()[0]).0, json(r#"{"s":1}"#));
        assert!(
            matches!(&r.get("nope").unwrap()[0], BatchEntry::Error(m) if m == "Collection not found")
        );
    });
}

#[test]
fn sync_manager_resolves_conflicts() {
    let srv = TestServer::start();
    let c = Client::new(&srv.v1()).unwrap();
    let fast = |m: SyncManager| m.with_backoff(Duration::from_millis(1), Duration::from_millis(5));
    block_on(async {
        let path = "/public/notes/sm";
        let mut m1 = fast(SyncManager::new(
            c.clone(),
            &format!("/pull{path}"),
            &format!("/push{path}"),
        ));
        let mut m2 = fast(SyncManager::new(
            c.clone(),
            &format!("/pull{path}"),
            &format!("/push{path}"),
        ));
        assert!(m1.pull().await.unwrap().is_empty());
        assert_eq!(m1.last_hash(), Some(""));
        m1.push(obj(r#"{"a":1,"shared":"m1"}"#)).await.unwrap();

        // m2 never pulled: lastHash null → 409, pull, deepMerge (remote
        // wins on shared keys), retry.
        assert_eq!(m2.last_hash(), None);
        let r = m2.push(obj(r#"{"b":2,"shared":"m2"}"#)).await.unwrap();
        assert_eq!(m2.data(), &obj(r#"{"b":2,"shared":"m1","a":1}"#));
        let server = c.pull(&format!("/pull{path}")).await.unwrap();
        assert_eq!(server.hash, r.hash);
        assert_eq!(server.data, Value::Object(m2.data().clone()));

        // A custom resolver: local wins.
        let mut m3 = fast(
            SyncManager::new(c.clone(), &format!("/pull{path}"), &format!("/push{path}"))
                .with_resolver(|local, remote| starfish::proto::merge::deep_merge(remote, local)),
        );
        m3.push(obj(r#"{"shared":"m3"}"#)).await.unwrap();
        assert_eq!(m3.data().get("shared"), Some(&Value::from("m3")));
        assert_eq!(m3.data().get("a"), Some(&Value::from(1.0)));

        // update(): pull, then push f(local).
        m1.update(|d| {
            let mut d = d.clone();
            d.insert("c", Value::from(3.0));
            d
        })
        .await
        .unwrap();
        assert_eq!(m1.data().get("shared"), Some(&Value::from("m3")));

        // No retries: the conflict is returned.
        let mut m4 = SyncManager::new(c.clone(), &format!("/pull{path}"), &format!("/push{path}"))
            .with_max_retries(0);
        let e = m4.push(obj("{}")).await.unwrap_err();
        assert!(e.is_conflict());
    });
}

#[test]
fn stale_pooled_connections_are_retried() {
    let srv = TestServer::start_with(|o| o.http.keep_alive_timeout = Duration::from_millis(100));
    let c = Client::with_options(
        &srv.v1(),
        ClientOptions {
            idle_timeout: Duration::from_secs(60),
            ..ClientOptions::default()
        },
    )
    .unwrap();
    block_on(async {
        c.pull("/pull/public/notes/x").await.unwrap();
        assert_eq!(c.idle_connections(), 1);
        async_io::Timer::after(Duration::from_millis(300)).await;
        // The server closed the idle connection; the client notices and
        // retries on a fresh one, for GET and POST alike.
        c.pull("/pull/public/notes/x").await.unwrap();
        async_io::Timer::after(Duration::from_millis(300)).await;
        c.push("/push/public/notes/x", &json("{}"), Some(""))
            .await
            .unwrap();
    });
}

#[test]
fn timeouts_and_connection_errors() {
    // A listener that accepts but never answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = silent.local_addr().unwrap();
    let c = Client::with_options(
        &format!("http://{addr}/v1"),
        ClientOptions {
            timeout: Duration::from_millis(200),
            ..ClientOptions::default()
        },
    )
    .unwrap();
    let e = block_on(c.pull("/pull/public/notes/x")).unwrap_err();
    assert!(matches!(e, ClientError::Timeout), "{e}");
    drop(silent);
    let e = block_on(c.pull("/pull/public/notes/x")).unwrap_err();
    assert!(matches!(e, ClientError::Io(_)), "{e}");
}

#[test]
fn expired_self_signed_caps_are_reminted() {
    let srv = TestServer::start();
    let root = identity_from_master(&[9; 32]);
    let old = DeviceCredentials::from_root_identity(
        &root,
        MintOptions {
            nbf: now_s() - 100_000,
            ttl_sec: 1000,
            nonce: [0; 16],
        },
    )
    .unwrap();
    let signer = Signer::from_credentials(&old).unwrap();
    let fresh = signer.cap().unwrap();
    assert!(fresh.exp().unwrap() as i64 >= now_s() + 999);
    assert_eq!(
        fresh.field("scope").and_then(Value::as_object),
        Some(&root_all_scope())
    );
    assert_eq!(fresh.sub_kem(), Some(root.kem_pub.as_str()));
    assert_eq!(
        signer.cap().unwrap(),
        fresh,
        "not re-minted again while fresh"
    );

    // And requests with the expired credentials succeed.
    let c = signed(&srv.v1(), None, &old);
    block_on(c.pull(&format!("/pull/users/{}/settings", old.user_id))).unwrap();

    // A cap issued by another key is never re-minted.
    let other = creds(10);
    let mut foreign = old.clone();
    foreign.cap_cert = starfish::proto::cap::mint_device_cap(
        &other.device_seed().unwrap(),
        &other.device.ed_pub,
        &old.device.ed_pub,
        &old.device.kem_pub,
        root_all_scope(),
        MintOptions {
            nbf: now_s() - 100_000,
            ttl_sec: 1000,
            nonce: [0; 16],
        },
    )
    .unwrap();
    let s = Signer::from_credentials(&foreign).unwrap();
    assert_eq!(s.cap().unwrap(), foreign.cap_cert);
    // A cap for another subject is refused.
    let mut wrong = old.clone();
    wrong.cap_cert = other.cap_cert.clone();
    assert!(Signer::from_credentials(&wrong).is_err());
}

#[test]
fn credentials_match_the_official_vector_and_round_trip() {
    // auth.md §7.5: "correct horse battery staple", nbf 1700000000, zero nonce.
    let root =
        starfish::proto::identity::derive_root_identity("correct horse battery staple").unwrap();
    let c = DeviceCredentials::from_root_identity(
        &root,
        MintOptions {
            nbf: 1_700_000_000,
            ttl_sec: 2_592_000,
            nonce: [0; 16],
        },
    )
    .unwrap();
    assert_eq!(c.user_id, "3a2587855944c8ebee1ad9e796d44149");
    assert_eq!(
        c.cap_cert.sig(),
        Some("BRYKzJze004ug/Uv3dqmclLytHEP5sx5+WMsVOzM6aZxXiu965kqpYW3ihJznHD/JDg1CI4IN0unoakLK3aqCw==")
    );
    let text = c.to_json();
    assert!(text.starts_with(&format!(
        "{{\"rootEdPub\":\"{}\",\"userId\":\"{}\",\"device\":{{\"edPriv\":\"{}\",\"edPub\"",
        root.ed_pub, root.user_id, root.ed_priv
    )));
    assert!(text.contains(",\"capCert\":{\"v\":1,\"kind\":\"device\","));
    assert_eq!(DeviceCredentials::from_json(text.as_bytes()).unwrap(), c);

    let dir = std::env::temp_dir().join(format!("starfish-creds-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let f = dir.join("creds.json");
    c.save(&f).unwrap();
    assert_eq!(DeviceCredentials::load(&f).unwrap(), c);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&f).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();

    // Mismatched keys are refused.
    let mut bad = c.clone();
    bad.device.ed_pub = "00".repeat(32);
    assert!(DeviceCredentials::from_json(bad.to_json().as_bytes()).is_err());
}

#[test]
fn cli_identity_push_pull() {
    use std::process::{Command, Stdio};
    let srv = TestServer::start();
    let bin = env!("CARGO_BIN_EXE_starfish");
    let dir = std::env::temp_dir().join(format!("starfish-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let pass = dir.join("pass.txt");
    std::fs::write(&pass, "correct horse battery staple\n").unwrap();
    let creds_file = dir.join("creds.json");
    let out = Command::new(bin)
        .args(["identity", "new", "--passphrase-file"])
        .arg(&pass)
        .arg("--out")
        .arg(&creds_file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let creds = DeviceCredentials::load(&creds_file).unwrap();
    assert_eq!(creds.user_id, "3a2587855944c8ebee1ad9e796d44149");

    let run = |args: &[&str], stdin: &str| {
        let mut child = Command::new(bin)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    };
    let server = srv.v1();
    let cf = creds_file.to_str().unwrap();
    let settings = format!("users/{}/settings", creds.user_id);
    let push = format!("/push/{settings}");
    let pull = format!("/pull/{settings}");
    let out = run(
        &[
            "push",
            &push,
            "--data",
            "-",
            "--server",
            &server,
            "--credentials",
            cf,
        ],
        r#"{"theme":"dark"}"#,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pushed = parse(&out.stdout).unwrap();
    let hash = pushed
        .as_object()
        .unwrap()
        .get("hash")
        .unwrap()
        .as_str()
        .unwrap()
        .to_owned();

    // Second push: the base hash is fetched first.
    let out = run(
        &[
            "push",
            &push,
            "--data",
            "-",
            "--server",
            &server,
            "--credentials",
            cf,
        ],
        r#"{"theme":"light"}"#,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A stale --base-hash: conflict, exit 1, human-readable message.
    let out = run(
        &[
            "push",
            &push,
            "--data",
            "-",
            "--server",
            &server,
            "--credentials",
            cf,
            "--base-hash",
            &hash,
        ],
        "{}",
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("conflict"));

    let out = run(
        &["pull", &pull, "--server", &server, "--credentials", cf],
        "",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got = parse(&out.stdout).unwrap();
    assert_eq!(
        got.as_object().unwrap().get("data"),
        Some(&json(r#"{"theme":"light"}"#))
    );

    // Namespace: --server .../v1 plus --namespace reaches /v1/demo/...
    let data_file = dir.join("board.json");
    std::fs::write(&data_file, r#"{"x":1}"#).unwrap();
    let out = run(
        &[
            "push",
            "/push/demo/board/b",
            "--data",
            data_file.to_str().unwrap(),
            "--server",
            &server,
            "--namespace",
            "demo",
        ],
        "",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = run(
        &[
            "pull",
            "/pull/demo/board/b",
            "--server",
            &server,
            "--namespace",
            "demo",
        ],
        "",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        parse(&out.stdout).unwrap().as_object().unwrap().get("data"),
        Some(&json(r#"{"x":1}"#))
    );

    // Errors: anonymous pull of a self collection → 403, exit 1; bad flag → 2.
    let out = run(&["pull", &pull, "--server", &server], "");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("forbidden (403)"));
    let out = run(&["pull", &pull, "--bogus"], "");
    assert_eq!(out.status.code(), Some(2));
    std::fs::remove_dir_all(&dir).unwrap();
}
