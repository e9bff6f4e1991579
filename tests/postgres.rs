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
