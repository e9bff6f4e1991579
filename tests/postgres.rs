//! Several `starfish serve` nodes on one PostgreSQL database (feature
//! `postgres`; `tests/postgres/run.sh` starts a throw-away server and sets
//! `STARFISH_PG_URL`): a push is a compare-and-swap across nodes, and an
//! acknowledged push survives a node killed with SIGKILL.
#![cfg(feature = "postgres")]

mod common;

use common::bin::Bin;
use common::{pg, Req};

fn push(node: &Bin, id: &str, data: &str, base: Option<&str>) -> (u16, String) {
    let base = base.map_or("null".to_owned(), |h| format!("\"{h}\""));
    let r = node.send(
        &Req::new("POST", &format!("/v1/push/public/notes/{id}"))
            .header("Content-Type", "application/json")
            .body(format!(r#"{{"data":{data},"baseHash":{base}}}"#).as_bytes()),
    );
    (r.status, r.text())
}

fn hash_of(answer: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(answer).unwrap();
    v["hash"].as_str().unwrap().to_owned()
}

fn nodes(url: &str, n: usize) -> Vec<Bin> {
    (0..n).map(|_| Bin::start(&["--store", url])).collect()
}

#[test]
fn thirty_two_pushes_from_one_base_across_three_nodes_have_one_winner() {
    let url = pg::fresh_url("race");
    let nodes = nodes(&url, 3);
    let (st, body) = push(&nodes[0], "race", r#"{"v":0}"#, None);
    assert_eq!(st, 200, "{body}");
    let base = hash_of(&body);
    let answers: Vec<(u16, String)> = std::thread::scope(|sc| {
        let hs: Vec<_> = (0..32)
            .map(|i| {
                let (node, base) = (&nodes[i % 3], base.as_str());
                sc.spawn(move || push(node, "race", &format!(r#"{{"v":{}}}"#, i + 1), Some(base)))
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let won: Vec<&(u16, String)> = answers.iter().filter(|(s, _)| *s == 200).collect();
    let lost = answers
        .iter()
        .filter(|(s, b)| *s == 409 && b.contains("hash_mismatch"))
        .count();
    assert_eq!((won.len(), lost), (1, 31), "{answers:?}");
    // Every node reads the winner.
    let winner = hash_of(&won[0].1);
    for n in &nodes {
        let r = n.get("/v1/pull/public/notes/race");
        assert_eq!(hash_of(&r.text()), winner);
    }
}

#[test]
fn a_node_killed_mid_pushes_loses_no_acknowledged_write() {
    let url = pg::fresh_url("kill");
    let mut nodes = nodes(&url, 2);
    let acked: Vec<(String, String)> = std::thread::scope(|sc| {
        let writer = sc.spawn(|| {
            let mut acked = Vec::new();
            for i in 0..10_000 {
                let id = format!("k{i}");
                match std::panic::catch_unwind(|| {
                    push(&nodes[0], &id, &format!(r#"{{"i":{i}}}"#), None)
                }) {
                    Ok((200, body)) => acked.push((id, hash_of(&body))),
                    _ => break,
                }
            }
            acked
        });
        std::thread::sleep(std::time::Duration::from_millis(700));
        let pid = nodes[0].child.id();
        // SIGKILL, not the Drop's kill-and-wait: no chance to flush anything.
        let _ = std::process::Command::new("kill")
            .args(["-9", &pid.to_string()])
            .status();
        writer.join().unwrap()
    });
    assert!(acked.len() > 10, "the writer got going: {}", acked.len());
    let survivor = nodes.pop().unwrap();
    for (id, hash) in &acked {
        let r = survivor.get(&format!("/v1/pull/public/notes/{id}"));
        assert_eq!(r.status, 200);
        assert_eq!(&hash_of(&r.text()), hash, "{id}");
    }
    eprintln!(
        "{} acknowledged pushes, all read back from the other node",
        acked.len()
    );
}

/// A signed pull of ROOT_SEED's settings document, signed for `host`.
fn signed_pull(host: &str) -> Req {
    use common::{device_cap, fresh_nonce, now_ms, scope, sign_with, user_id, ROOT_SEED};
    let cert = device_cap(&ROOT_SEED, scope(&["read", "write"], None));
    let target = format!("/v1/pull/users/{}/settings", user_id(&ROOT_SEED));
    let h = sign_with(
        &ROOT_SEED,
        &cert,
        "GET",
        &target,
        host,
        None,
        b"",
        &fresh_nonce(),
        now_ms(),
    );
    Req::new("GET", &target).headers(&h)
}

#[test]
fn a_request_replayed_to_another_node_is_refused() {
    use common::send_raw;
    let url = pg::fresh_url("replay");
    let nodes = nodes(&url, 2);
    let (a, b) = (&nodes[0], &nodes[1]);
    // Both nodes verify requests signed for A's host (the Host header sent).
    let host = a.host();
    let fresh_on_b = send_raw(b.addr, &signed_pull(&host).to_bytes(&host));
    assert_eq!(
        fresh_on_b.status,
        200,
        "a fresh request is served by B: {}",
        fresh_on_b.text()
    );
    let req = signed_pull(&host).to_bytes(&host);
    let first = send_raw(a.addr, &req);
    assert_eq!(first.status, 200, "{}", first.text());
    let replayed = send_raw(b.addr, &req);
    assert_eq!(replayed.status, 401, "the replay to B: {}", replayed.text());
    assert_eq!(send_raw(a.addr, &req).status, 401, "and to A");
}

#[test]
fn without_a_shared_database_a_replay_to_another_node_passes() {
    // The control: two nodes on their own memory stores do not share nonces,
    // so the test above would fail without the shared ledger.
    use common::send_raw;
    let (a, b) = (Bin::start(&[]), Bin::start(&[]));
    let host = a.host();
    let req = signed_pull(&host).to_bytes(&host);
    assert_eq!(send_raw(a.addr, &req).status, 200);
    assert_eq!(send_raw(b.addr, &req).status, 200);
}

/// Replica syncs counted by a node's /metrics (every result).
fn replica_syncs(node: &Bin) -> f64 {
    let m = node.metrics.expect("--metrics-listen");
    let r = common::send_raw(m, &Req::new("GET", "/metrics").to_bytes(&m.to_string()));
    r.text()
        .lines()
        .filter(|l| l.starts_with("starfish_replica_syncs_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[test]
fn one_node_runs_the_replica_schedule_and_another_takes_over_when_it_dies() {
    let url = pg::fresh_url("lease");
    let primary = Bin::start(&[]);
    let dir = std::env::temp_dir().join(format!("starfish-lease-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("config.json");
    std::fs::write(
        &config,
        r#"{"version":1,"collections":[{"name":"news","storagePath":"replica/news",
            "readRoles":["public"],"writeRoles":["public"],"encryption":"none","maxBodyBytes":65536}]}"#,
    )
    .unwrap();
    let replica = dir.join("replica.json");
    std::fs::write(
        &replica,
        format!(
            r#"{{"collections":{{"news":{{"url":"http://{}/v1","pullPath":"/pull/public/notes/first","intervalMs":200}}}}}}"#,
            primary.host()
        ),
    )
    .unwrap();
    let args = [
        "--store",
        url.as_str(),
        "--config",
        config.to_str().unwrap(),
        "--replica",
        replica.to_str().unwrap(),
        "--metrics-listen",
        "127.0.0.1:0",
    ];
    let until = |what: &str, node: &Bin, n: f64| {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while replica_syncs(node) < n {
            assert!(std::time::Instant::now() < deadline, "{what}");
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    };
    let first = Bin::start(&args);
    until("the first node syncs", &first, 1.0);
    let second = Bin::start(&args);
    // The second node's schedule (every 200 ms) comes due many times while
    // the first keeps syncing; it never syncs.
    let a0 = replica_syncs(&first);
    until("the first node keeps syncing on schedule", &first, a0 + 5.0);
    assert_eq!(replica_syncs(&second), 0.0, "the second node waits");
    // SIGKILL: the lock goes with the first node's database connection.
    let _ = std::process::Command::new("kill")
        .args(["-9", &first.child.id().to_string()])
        .status();
    until("the second node takes over", &second, 3.0);
    drop(first);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A collection whose append-only log is chunked (a chunk, then the head,
/// per append).
const CHUNKED: &str = r#"{"version":1,"collections":[{"name":"seg","storagePath":"seg/{id}",
  "readRoles":["public"],"writeRoles":["public"],"encryption":"none","maxBodyBytes":1000,
  "appendOnly":{"chunkSize":3,"requireAuthorSignature":false}}]}"#;

#[test]
fn chunked_appends_spread_over_three_nodes_lose_nothing() {
    let url = pg::fresh_url("chunked");
    let dir = std::env::temp_dir().join(format!("starfish-chunked-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("config.json");
    std::fs::write(&config, CHUNKED).unwrap();
    let nodes: Vec<Bin> = (0..3)
        .map(|_| Bin::start(&["--store", &url, "--config", config.to_str().unwrap()]))
        .collect();
    let (writers, per) = (12, 8);
    let barrier = std::sync::Barrier::new(writers);
    std::thread::scope(|sc| {
        for t in 0..writers {
            let (node, barrier) = (&nodes[t % 3], &barrier);
            sc.spawn(move || {
                barrier.wait();
                for i in 0..per {
                    let r = node.send(
                        &Req::new("POST", "/v1/push/seg/c")
                            .header("Content-Type", "application/json")
                            .body(format!(r#"{{"data":{{"t":{t},"i":{i}}}}}"#).as_bytes()),
                    );
                    assert_eq!(r.status, 200, "{}", r.text());
                }
            });
        }
    });
    // Every node reads every acknowledged element, each writer's in order,
    // under strictly increasing timestamps, and the head counts them all.
    for node in &nodes {
        let v: serde_json::Value =
            serde_json::from_str(&node.get("/v1/pull/seg/c?full=1").text()).unwrap();
        let items = v["data"]["items"].as_array().unwrap();
        assert_eq!(items.len(), writers * per, "{v}");
        let ts: Vec<i64> = items.iter().map(|e| e["ts"].as_i64().unwrap()).collect();
        assert!(ts.windows(2).all(|w| w[0] < w[1]), "{ts:?}");
        for t in 0..writers {
            let mine: Vec<i64> = items
                .iter()
                .filter(|e| e["data"]["t"] == t)
                .map(|e| e["data"]["i"].as_i64().unwrap())
                .collect();
            assert_eq!(mine, (0..per as i64).collect::<Vec<_>>(), "writer {t}");
        }
        let last = items.last().unwrap()["data"].to_string();
        let want = starfish::proto::hash::sha256_hex(
            format!(r#"{{"last":{last},"n":{}}}"#, writers * per).as_bytes(),
        );
        assert_eq!(v["hash"], want.as_str());
    }
    drop(nodes);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A signed pull of ROOT_SEED's settings with `cap`, signed for `host`.
fn signed_pull_with(cap: &starfish::proto::cap::CapCert, host: &str) -> Vec<u8> {
    use common::{fresh_nonce, now_ms, sign_with, user_id, ROOT_SEED};
    let target = format!("/v1/pull/users/{}/settings", user_id(&ROOT_SEED));
    let h = sign_with(
        &ROOT_SEED,
        cap,
        "GET",
        &target,
        host,
        None,
        b"",
        &fresh_nonce(),
        now_ms(),
    );
    Req::new("GET", &target).headers(&h).to_bytes(host)
}

fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    while !f() {
        assert!(std::time::Instant::now() < deadline, "timed out: {what}");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

#[test]
fn a_revocation_loaded_on_one_node_is_enforced_by_every_node() {
    use common::{device_cap, pub_hex, scope, send_raw, ROOT_SEED};
    use starfish::proto::json::{to_js_json, Value};
    use starfish::proto::revocation::build_list;
    let url = pg::fresh_url("revoke");
    let b = Bin::start(&["--store", &url]);
    let cap = device_cap(&ROOT_SEED, scope(&["read", "write"], None));
    let spare = device_cap(&ROOT_SEED, scope(&["read", "write"], None));
    let status = |node: &Bin, cap| send_raw(node.addr, &signed_pull_with(cap, &node.host())).status;
    assert_eq!(status(&b, &cap), 200, "served before the revocation");
    // Node A holds a list revoking `cap` in its --revocations file; B has
    // no file and learns it through the database.
    let dir = std::env::temp_dir().join(format!("starfish-revoke-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("revoked.json");
    let list = build_list(
        &ROOT_SEED,
        1.0,
        &[(&pub_hex(&ROOT_SEED), cap.nonce().unwrap(), 2e9)],
        None,
    );
    std::fs::write(&file, to_js_json(&Value::Array(vec![list]))).unwrap();
    let a = Bin::start(&["--store", &url, "--revocations", file.to_str().unwrap()]);
    assert_eq!(status(&a, &cap), 401, "A enforces its own file");
    eventually("B refuses the revoked cap", || status(&b, &cap) == 401);
    assert_eq!(
        status(&b, &spare),
        200,
        "another cap of the subject still works"
    );
    // A node started later takes the list from the database too.
    let c = Bin::start(&["--store", &url]);
    eventually("C refuses the revoked cap", || status(&c, &cap) == 401);
    assert_eq!(status(&c, &spare), 200);
    // A row forged in the database (a list for the spare cap with a
    // broken signature, at a higher generation) revokes nothing.
    let mut forged = build_list(
        &ROOT_SEED,
        9.0,
        &[(&pub_hex(&ROOT_SEED), spare.nonce().unwrap(), 2e9)],
        None,
    );
    if let Value::Object(o) = &mut forged {
        o.insert("generation", Value::Number(10.0));
    }
    async_io::block_on(async {
        use sqlx::Connection;
        let mut db = sqlx::PgConnection::connect(&url).await.unwrap();
        sqlx::query("UPDATE starfish_revocations SET generation = 10, list = $1")
            .bind(String::from_utf8(to_js_json(&forged)).unwrap())
            .execute(&mut db)
            .await
            .unwrap();
    });
    std::thread::sleep(std::time::Duration::from_millis(2500));
    assert_eq!(status(&b, &spare), 200, "a forged list is refused");
    assert_eq!(status(&b, &cap), 401, "and the real one stays in force");
    drop((a, b, c));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_shared_ledger_refuses_live_nonces_and_sweeps_expired_ones() {
    use starfish::auth::nonce::NonceLedger;
    let store = pg::fresh("ledger");
    let now = 1_000_000;
    assert!(async_io::block_on(store.check_and_remember("s", "old", now - 10, now - 1)).unwrap());
    assert!(async_io::block_on(store.check_and_remember("s", "live", now, now + 600_000)).unwrap());
    assert!(
        !async_io::block_on(store.check_and_remember("s", "live", now + 1, now + 600_001)).unwrap()
    );
    // An expired entry may be used again (it is renewed), then swept later.
    assert!(async_io::block_on(store.check_and_remember("s", "old", now, now + 5)).unwrap());
    assert_eq!(
        async_io::block_on(store.sweep(now + 10)).unwrap(),
        1,
        "the renewed one expired"
    );
    assert_eq!(async_io::block_on(store.sweep(now + 10)).unwrap(), 0);
    assert!(
        !async_io::block_on(store.check_and_remember("s", "live", now + 20, now + 600_020))
            .unwrap()
    );
}

#[test]
fn a_node_reaches_the_database_over_verified_tls_and_refuses_another_ca() {
    let ca =
        std::env::var("STARFISH_PG_TLS_CA").expect("tests/postgres/run.sh sets STARFISH_PG_TLS_CA");
    let other = std::env::var("STARFISH_PG_OTHER_CA").expect("and STARFISH_PG_OTHER_CA");
    let url = pg::fresh_url("tls");
    let db = url.rsplit_once('/').unwrap().1.to_owned();
    let tls_url = format!("{url}?sslmode=verify-full&sslrootcert={ca}");
    let node = Bin::start(&["--store", &tls_url]);
    let (st, body) = push(&node, "over-tls", r#"{"v":1}"#, None);
    assert_eq!(st, 200, "{body}");
    assert_eq!(
        hash_of(&node.get("/v1/pull/public/notes/over-tls").text()),
        hash_of(&body)
    );
    // The node's connections to its database are encrypted.
    let encrypted: i64 = async_io::block_on(async {
        use sqlx::Connection;
        let mut c = sqlx::PgConnection::connect(&pg::url()).await.unwrap();
        sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid)
             WHERE a.datname = $1 AND s.ssl",
        )
        .bind(&db)
        .fetch_one(&mut c)
        .await
        .unwrap()
    });
    assert!(encrypted >= 1, "no TLS connection from the node to {db}");
    drop(node);
    // A CA the database's certificate does not chain to (another throw-away
    // CA of the same name: rustls reports its signature as bad): the node
    // does not start, and says why.
    let out = common::bin::bin()
        .args(["serve", "--listen", "127.0.0.1:0", "--store"])
        .arg(format!("{url}?sslmode=verify-full&sslrootcert={other}"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "started with an unknown issuer: {err}"
    );
    assert!(
        err.contains("cannot open store") && err.contains("invalid peer certificate"),
        "{err}"
    );
}
