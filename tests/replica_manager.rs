//! The replica engine against a fake primary: the sync algorithm of
//! replica.md §7, the write modes, the push-through proxy of §8, `on_pull`
//! cooldowns and the scheduler's retries.

use futures_lite::future::block_on;
use starfish::http::BoxFuture;
use starfish::proto::hash::document_hash;
use starfish::proto::json::{self, Value};
use starfish::replica::config::{self, RemoteConfig};
use starfish::replica::{
    Primary, PrimaryResponse, ReplicaError, ReplicaManager, SchedulerOptions, SyncOutcome,
};
use starfish::store::{MemoryStore, Store};
use starfish::sync::doc;
use starfish::sync::locks::KeyLocks;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One recorded request: method, URL, headers, body.
type Seen = (String, String, Vec<(String, String)>, Vec<u8>);

/// A scripted primary: answers from a queue (repeating the last answer) and
/// records every request.
#[derive(Default)]
struct FakePrimary {
    answers: Mutex<Vec<Result<PrimaryResponse, String>>>,
    seen: Mutex<Vec<Seen>>,
}

impl FakePrimary {
    fn answer(&self, status: u16, body: &str) {
        self.answers.lock().unwrap().push(Ok(PrimaryResponse {
            status,
            body: body.as_bytes().to_vec(),
        }));
    }
    fn fail(&self) {
        self.answers
            .lock()
            .unwrap()
            .push(Err("connection refused".into()));
    }
    fn requests(&self) -> usize {
        self.seen.lock().unwrap().len()
    }
}

impl Primary for FakePrimary {
    fn request<'a>(
        &'a self,
        method: &'a str,
        url: &'a str,
        headers: &'a [(String, String)],
        body: &'a [u8],
    ) -> BoxFuture<'a, Result<PrimaryResponse, String>> {
        self.seen.lock().unwrap().push((
            method.to_owned(),
            url.to_owned(),
            headers.to_vec(),
            body.to_vec(),
        ));
        let mut a = self.answers.lock().unwrap();
        let r = if a.len() > 1 {
            a.remove(0)
        } else {
            a.first()
                .cloned()
                .unwrap_or(Err("no answer scripted".into()))
        };
        Box::pin(async move { r })
    }
}

fn remote(mode: &str, extra: &str) -> RemoteConfig {
    let text = format!(
        r#"{{"collections":{{"news":{{"url":"http://primary.test/v1/","pullPath":"/pull/primary/news","pushPath":"/push/primary/news","headers":{{"Authorization":"Bearer t","Accept":"x/y"}},"writeMode":"{mode}"{extra}}}}}}}"#
    );
    config::parse(text.as_bytes())
        .unwrap()
        .collections
        .remove(0)
}

fn manager(mode: &str, extra: &str) -> (Arc<ReplicaManager>, Arc<FakePrimary>, Arc<dyn Store>) {
    let primary = Arc::new(FakePrimary::default());
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let m = ReplicaManager::new(
        vec![(remote(mode, extra), "local/news".to_owned())],
        store.clone(),
        Arc::new(KeyLocks::new()),
        false,
        primary.clone(),
    );
    (Arc::new(m), primary, store)
}

fn doc_answer(data: &str) -> String {
    let v = json::parse(data.as_bytes()).unwrap();
    format!(
        r#"{{"data":{data},"hash":"{}","timestamp":1}}"#,
        document_hash(&v)
    )
}

fn local(store: &Arc<dyn Store>) -> Option<doc::StoredDoc> {
    match doc::read(&**store, "local/news").unwrap() {
        doc::Read::Doc(d) => Some(d),
        _ => None,
    }
}

#[test]
fn pull_only_replaces_and_then_skips_unchanged() {
    let (m, p, store) = manager("pull_only", "");
    p.answer(200, &doc_answer(r#"{"title":"hi","n":1}"#));
    let hash = document_hash(&json::parse(br#"{"title":"hi","n":1}"#).unwrap());
    assert_eq!(
        block_on(m.sync_now("news")).unwrap(),
        SyncOutcome::Written(hash.clone())
    );
    let d = local(&store).unwrap();
    assert_eq!(
        d.hash_str(),
        hash,
        "replace mode: the local hash equals the primary's"
    );
    // The request: GET of url + pullPath, Accept first then the static headers overriding.
    let seen = p.seen.lock().unwrap()[0].clone();
    assert_eq!(
        (seen.0.as_str(), seen.1.as_str()),
        ("GET", "http://primary.test/v1/pull/primary/news")
    );
    assert!(seen
        .2
        .contains(&("Authorization".into(), "Bearer t".into())));
    assert!(
        seen.2.contains(&("Accept".into(), "x/y".into())),
        "static headers overwrite same-named ones"
    );
    assert_eq!(
        seen.2
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case("accept"))
            .count(),
        1
    );
    // Same hash again: nothing written.
    assert_eq!(
        block_on(m.sync_now("news")).unwrap(),
        SyncOutcome::Unchanged
    );
    assert_eq!(local(&store).unwrap().ts, d.ts);
}

#[test]
fn primary_empty_failures_and_bad_bodies_leave_the_local_copy_alone() {
    let (m, p, store) = manager("pull_only", "");
    p.answer(200, r#"{"data":{},"hash":"","timestamp":1}"#);
    assert_eq!(
        block_on(m.sync_now("news")).unwrap(),
        SyncOutcome::PrimaryEmpty
    );
    assert!(local(&store).is_none());
    let (m, p, store) = manager("pull_only", "");
    store
        .put(
            "local/news",
            br#"{"v":1,"data":{"keep":true},"ts":1,"hash":"abc"}"#,
        )
        .unwrap();
    p.answer(503, "down");
    assert!(matches!(
        block_on(m.sync_now("news")),
        Err(ReplicaError::Status(503))
    ));
    p.answers.lock().unwrap().clear();
    p.answer(200, "not json");
    assert!(matches!(
        block_on(m.sync_now("news")),
        Err(ReplicaError::BadResponse)
    ));
    p.answers.lock().unwrap().clear();
    p.fail();
    assert!(matches!(
        block_on(m.sync_now("news")),
        Err(ReplicaError::Transport(_))
    ));
    assert_eq!(local(&store).unwrap().hash_str(), "abc");
    assert!(matches!(
        block_on(m.sync_now("other")),
        Err(ReplicaError::UnknownCollection(_))
    ));
}

#[test]
fn a_corrupt_local_copy_is_replaced() {
    let (m, p, store) = manager("pull_only", "");
    store.put("local/news", b"{broken").unwrap();
    p.answer(200, &doc_answer(r#"{"a":1}"#));
    assert!(matches!(
        block_on(m.sync_now("news")).unwrap(),
        SyncOutcome::Written(_)
    ));
    assert_eq!(
        local(&store).unwrap().data,
        json::parse(br#"{"a":1}"#).unwrap()
    );
}

#[test]
fn bidirectional_merges_remote_wins_and_sanitises() {
    let (m, p, store) = manager("bidirectional", "");
    store
        .put(
            "local/news",
            br#"{"v":1,"data":{"local":1,"both":{"x":1,"y":1}},"ts":1,"hash":"h0"}"#,
        )
        .unwrap();
    p.answer(
        200,
        &doc_answer(r#"{"both":{"y":2},"remote":true,"constructor":1}"#),
    );
    assert!(matches!(
        block_on(m.sync_now("news")).unwrap(),
        SyncOutcome::Written(_)
    ));
    let d = local(&store).unwrap();
    assert_eq!(
        json::to_js_json(&d.data),
        br#"{"local":1,"both":{"x":1,"y":2},"remote":true}"#
    );
    assert_eq!(d.hash_str(), document_hash(&d.data));
}

#[test]
fn push_only_never_syncs() {
    let (m, p, _) = manager("push_only", "");
    assert_eq!(block_on(m.sync_now("news")).unwrap(), SyncOutcome::Skipped);
    assert_eq!(p.requests(), 0);
}

#[test]
fn push_through_relays_the_primary() {
    let (m, p, _) = manager("push_through", "");
    let body = br#"{"data":{"a":1},"baseHash":null}"#;
    p.answer(200, r#"{"hash":"h1","timestamp":5}"#);
    let (status, v) = block_on(m.proxy_push("news", body));
    assert_eq!(
        (status, json::to_js_json(&v)),
        (200, br#"{"hash":"h1","timestamp":5}"#.to_vec())
    );
    let seen = p.seen.lock().unwrap()[0].clone();
    assert_eq!(
        (seen.0.as_str(), seen.1.as_str(), seen.3.as_slice()),
        (
            "POST",
            "http://primary.test/v1/push/primary/news",
            &body[..]
        )
    );
    assert!(seen
        .2
        .contains(&("Content-Type".into(), "application/json".into())));
    for (answer, want_status, want_body) in [
        (
            (409, "{\"error\":\"hash_mismatch\"}"),
            409,
            r#"{"error":"hash_mismatch"}"#,
        ),
        (
            (400, "{\"error\":\"Body must be a JSON object\"}"),
            400,
            r#"{"error":"Primary returned 400"}"#,
        ),
        ((403, "{}"), 403, r#"{"error":"Primary returned 403"}"#),
        (
            (200, "[1]"),
            502,
            r#"{"error":"Primary returned an unexpected response"}"#,
        ),
        (
            (200, "{\"hash\":5}"),
            502,
            r#"{"error":"Primary returned an unexpected response"}"#,
        ),
        ((200, "nope"), 502, r#"{"error":"Failed to reach primary"}"#),
    ] {
        p.answers.lock().unwrap().clear();
        p.answer(answer.0, answer.1);
        let (s, v) = block_on(m.proxy_push("news", body));
        assert_eq!(
            (s, String::from_utf8(json::to_js_json(&v)).unwrap()),
            (want_status, want_body.to_owned())
        );
    }
    p.answers.lock().unwrap().clear();
    p.fail();
    let (s, v) = block_on(m.proxy_push("news", body));
    assert_eq!(
        (s, json::to_js_json(&v)),
        (502, br#"{"error":"Failed to reach primary"}"#.to_vec())
    );
}

#[test]
fn on_pull_cooldown_starts_only_after_a_write() {
    let (m, p, _) = manager(
        "pull_only",
        r#","syncTriggers":["on_pull"],"onPullMinIntervalMs":60000"#,
    );
    p.answer(200, r#"{"data":{},"hash":"","timestamp":1}"#);
    block_on(m.on_pull("news"));
    block_on(m.on_pull("news"));
    assert_eq!(
        p.requests(),
        2,
        "no write yet, so no cooldown (official quirk)"
    );
    p.answers.lock().unwrap().clear();
    p.answer(200, &doc_answer(r#"{"a":1}"#));
    block_on(m.on_pull("news"));
    block_on(m.on_pull("news"));
    assert_eq!(p.requests(), 3, "the cooldown started with the write");
}

#[test]
fn scheduler_syncs_at_start_and_retries_with_backoff() {
    let (m, p, store) = manager("pull_only", r#","intervalMs":100000"#);
    p.fail();
    p.fail();
    p.answer(200, &doc_answer(r#"{"ok":1}"#));
    let opts = SchedulerOptions {
        backoff_base: Duration::from_millis(20),
        backoff_max: Duration::from_secs(1),
        jitter_max: Duration::from_millis(5),
        ..SchedulerOptions::default()
    };
    let (stop_tx, stop_rx) = async_channel::bounded::<()>(1);
    let runner = std::thread::spawn({
        let m = m.clone();
        move || {
            block_on(m.run(opts, async move {
                let _ = stop_rx.recv().await;
            }))
        }
    });
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while local(&store).is_none() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(
        local(&store).unwrap().data,
        json::parse(br#"{"ok":1}"#).unwrap(),
        "synced after two failed attempts"
    );
    assert_eq!(p.requests(), 3);
    // After success the next run is an interval (100 s) away: no more requests.
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(p.requests(), 3);
    stop_tx.close();
    runner.join().unwrap();
}

#[test]
fn backoff_doubles_and_is_capped() {
    let o = SchedulerOptions {
        backoff_base: Duration::from_secs(1),
        backoff_max: Duration::from_secs(300),
        jitter_max: Duration::ZERO,
        ..SchedulerOptions::default()
    };
    let d: Vec<u64> = (1..=12)
        .map(|n| starfish::replica::manager::backoff_ms(&o, n, 60_000, true))
        .collect();
    assert_eq!(&d[..7], [1000, 2000, 4000, 8000, 16000, 32000, 60000]);
    assert!(
        d.iter().all(|&x| x <= 60_000),
        "never more than the interval"
    );
    assert_eq!(
        starfish::replica::manager::backoff_ms(&o, 20, 60_000, false),
        300_000
    );
    let _ = Value::Null;
}

#[test]
fn unchanged_primary_answers_304_to_if_none_match() {
    let (m, p, store) = manager("bidirectional", "");
    let body = doc_answer(r#"{"a":1}"#);
    p.answer(200, &body);
    assert!(matches!(
        block_on(m.sync_now("news")).unwrap(),
        SyncOutcome::Written(_)
    ));
    let primary_hash = json::parse(body.as_bytes())
        .unwrap()
        .as_object()
        .unwrap()
        .get("hash")
        .unwrap()
        .as_str()
        .unwrap()
        .to_owned();
    let first = p.seen.lock().unwrap()[0].2.clone();
    assert!(
        !first.iter().any(|(n, _)| n == "If-None-Match"),
        "nothing to validate against yet"
    );
    p.answers.lock().unwrap().clear();
    p.answer(304, "");
    let before = local(&store).unwrap();
    assert_eq!(
        block_on(m.sync_now("news")).unwrap(),
        SyncOutcome::NotModified
    );
    let second = p.seen.lock().unwrap()[1].2.clone();
    assert!(
        second.contains(&("If-None-Match".to_owned(), format!("\"{primary_hash}\""))),
        "{second:?}"
    );
    assert_eq!(
        local(&store).unwrap(),
        before,
        "a 304 writes nothing (the official replica re-merges every time)"
    );
}

/// A primary that takes a while to answer.
struct SlowPrimary(Duration, Arc<std::sync::atomic::AtomicUsize>);

impl Primary for SlowPrimary {
    fn request<'a>(
        &'a self,
        _m: &'a str,
        _u: &'a str,
        _h: &'a [(String, String)],
        _b: &'a [u8],
    ) -> BoxFuture<'a, Result<PrimaryResponse, String>> {
        Box::pin(async move {
            async_io::Timer::after(self.0).await;
            self.1.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Ok(PrimaryResponse {
                status: 200,
                body: doc_answer(r#"{"slow":true}"#).into_bytes(),
            })
        })
    }
}

#[test]
fn shutdown_waits_for_the_sync_in_flight() {
    let done = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let primary = Arc::new(SlowPrimary(Duration::from_millis(300), done.clone()));
    let m = Arc::new(ReplicaManager::new(
        vec![(remote("pull_only", ""), "local/news".to_owned())],
        store.clone(),
        Arc::new(KeyLocks::new()),
        false,
        primary,
    ));
    let opts = SchedulerOptions {
        jitter_max: Duration::ZERO,
        ..SchedulerOptions::default()
    };
    // Shut down 50 ms in, while the first sync waits for the primary.
    let started = std::time::Instant::now();
    let stop = async {
        async_io::Timer::after(Duration::from_millis(50)).await;
    };
    block_on(m.clone().run(opts, stop));
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "run returned before the sync finished"
    );
    assert_eq!(done.load(std::sync::atomic::Ordering::SeqCst), 1);
    assert!(
        local(&store).is_some(),
        "the in-flight sync completed its write"
    );
    assert_eq!(m.syncs_in_flight(), 0);
}
