//! The replica engine: one sync (replica.md §7), the `on_pull` trigger with
//! its cooldown, the push-through proxy (§8), and the scheduler that runs
//! periodic syncs from a [`TimerWheel`] with jitter and capped exponential
//! back-off after failures.
//!
//! Talking to the primary goes through the [`Primary`] trait, so the rules
//! here are tested against a fake primary; `replica::http` implements it
//! over HTTP with a signing client.

use super::config::{RemoteConfig, WriteMode};
use crate::http::BoxFuture;
use crate::metrics::{Metrics, SyncResult};
use crate::proto::json::{self, Object, Value};
use crate::proto::merge::deep_merge;
use crate::proto::sanitize::deep_sanitize;
use crate::store::Store;
use crate::sync::locks::KeyLocks;
use crate::sync::{doc, push, SyncError};
use crate::timer_wheel::TimerWheel;
use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A primary's answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PrimaryResponse {
    pub status: u16,
    pub body: Vec<u8>,
}

/// How the replica reaches its primary.
pub trait Primary: Send + Sync + 'static {
    /// Send one request to an absolute URL; `Err` for transport failures.
    fn request<'a>(
        &'a self,
        method: &'a str,
        url: &'a str,
        headers: &'a [(String, String)],
        body: &'a [u8],
    ) -> BoxFuture<'a, Result<PrimaryResponse, String>>;

    /// Renew credentials now if they are due (e.g. re-mint a cap near its
    /// expiry) and say when to call again; `None` (the default) when there
    /// is nothing to renew.
    fn renew(&self) -> Option<Duration> {
        None
    }
}

/// Why a sync failed (reported to the log, never to clients).
#[derive(Debug)]
pub enum ReplicaError {
    UnknownCollection(String),
    /// Network or transport failure.
    Transport(String),
    /// A non-2xx answer from the primary.
    Status(u16),
    /// The primary's answer was not the expected JSON.
    BadResponse,
    /// A local client wrote between our read and our write; retried later.
    Conflict(String),
    Store(String),
}

impl fmt::Display for ReplicaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReplicaError::UnknownCollection(n) => {
                write!(f, "[ReplicaManager] Unknown remote collection: \"{n}\"")
            }
            ReplicaError::Transport(e) => write!(f, "cannot reach the primary: {e}"),
            ReplicaError::Status(s) => write!(f, "Primary returned {s}"),
            ReplicaError::BadResponse => f.write_str("Primary returned an unexpected response"),
            ReplicaError::Conflict(n) => write!(
                f,
                "[ReplicaManager] Concurrent write on \"{n}\" — will retry"
            ),
            ReplicaError::Store(e) => write!(f, "local store: {e}"),
        }
    }
}

impl std::error::Error for ReplicaError {}

/// What one sync did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SyncOutcome {
    /// `push_only`: nothing to do.
    Skipped,
    /// The primary has no document; the local copy is untouched.
    PrimaryEmpty,
    /// Nothing new since the last sync (or the local hash already matches).
    Unchanged,
    /// The primary answered `304 Not Modified` to our `If-None-Match`.
    NotModified,
    /// The local document was written; its new hash.
    Written(String),
}

/// Scheduler settings.
#[derive(Clone, Debug)]
pub struct SchedulerOptions {
    /// First retry delay after a failure (doubles per failure).
    pub backoff_base: Duration,
    /// Upper bound on the retry delay (also never more than the interval).
    pub backoff_max: Duration,
    /// Upper bound on the random delay added to each scheduled run.
    pub jitter_max: Duration,
    /// How long shutdown waits for syncs in flight.
    pub shutdown_grace: Duration,
}

impl Default for SchedulerOptions {
    fn default() -> Self {
        SchedulerOptions {
            backoff_base: Duration::from_secs(1),
            backoff_max: Duration::from_secs(300),
            jitter_max: Duration::from_secs(1),
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

#[derive(Default)]
struct State {
    last_hash: Option<String>,
    /// The primary's hash at the last sync that handled it (sent back as
    /// `If-None-Match`, so an unchanged primary answers 304).
    last_primary_hash: Option<String>,
    last_sync_at: Option<Instant>,
    failures: u32,
    running: bool,
}

/// The replica manager.
pub struct ReplicaManager {
    remotes: Vec<RemoteConfig>,
    store: Arc<dyn Store>,
    locks: Arc<KeyLocks>,
    blocking_store: bool,
    primary: Arc<dyn Primary>,
    state: Mutex<HashMap<String, State>>,
    /// Local document keys by collection name (the static storage paths).
    keys: HashMap<String, String>,
    clock: fn() -> i64,
    kick: async_channel::Sender<String>,
    kicks: async_channel::Receiver<String>,
    metrics: Option<Arc<Metrics>>,
}

impl ReplicaManager {
    /// `remotes` with the local document key of each (its static storage path).
    pub fn new(
        remotes: Vec<(RemoteConfig, String)>,
        store: Arc<dyn Store>,
        locks: Arc<KeyLocks>,
        blocking_store: bool,
        primary: Arc<dyn Primary>,
    ) -> Self {
        let keys = remotes
            .iter()
            .map(|(r, k)| (r.name.clone(), k.clone()))
            .collect();
        let (kick, kicks) = async_channel::unbounded();
        ReplicaManager {
            remotes: remotes.into_iter().map(|(r, _)| r).collect(),
            store,
            locks,
            blocking_store,
            primary,
            state: Mutex::new(HashMap::new()),
            keys,
            clock: crate::http::service::now_ms,
            kick,
            kicks,
            metrics: None,
        }
    }

    /// Count every sync (ok / failed / not modified) per collection into
    /// `metrics`.
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Self {
        metrics.register_replica_collections(self.remotes.iter().map(|r| r.name.as_str()));
        self.metrics = Some(metrics);
        self
    }

    /// The replicated collection `name`, if any.
    pub fn remote(&self, name: &str) -> Option<&RemoteConfig> {
        self.remotes.iter().find(|r| r.name == name)
    }

    fn with_state<T>(&self, name: &str, f: impl FnOnce(&mut State) -> T) -> T {
        let mut map = self.state.lock().unwrap_or_else(|e| e.into_inner());
        f(map.entry(name.to_owned()).or_default())
    }

    async fn store_op<T: Send + 'static>(
        &self,
        f: impl FnOnce(&dyn Store) -> T + Send + 'static,
    ) -> T {
        crate::sync::store_call(&self.store, self.blocking_store, f).await
    }

    fn request_headers(remote: &RemoteConfig, base: &[(&str, &str)]) -> Vec<(String, String)> {
        let mut h: Vec<(String, String)> = base
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        for (k, v) in &remote.headers {
            h.retain(|(n, _)| !n.eq_ignore_ascii_case(k));
            h.push((k.clone(), v.clone()));
        }
        h
    }

    /// `syncNow`: one sync, errors returned.
    pub async fn sync_now(&self, name: &str) -> Result<SyncOutcome, ReplicaError> {
        let result = self.sync_once(name).await;
        if let Some(m) = &self.metrics {
            match &result {
                Ok(SyncOutcome::Skipped) | Err(ReplicaError::UnknownCollection(_)) => {}
                Ok(SyncOutcome::NotModified) => m.replica_sync(name, SyncResult::NotModified),
                Ok(_) => m.replica_sync(name, SyncResult::Ok),
                Err(_) => m.replica_sync(name, SyncResult::Failed),
            }
        }
        result
    }

    async fn sync_once(&self, name: &str) -> Result<SyncOutcome, ReplicaError> {
        let remote = self
            .remote(name)
            .ok_or_else(|| ReplicaError::UnknownCollection(name.to_owned()))?;
        if remote.write_mode == WriteMode::PushOnly {
            return Ok(SyncOutcome::Skipped);
        }
        let key = self.keys.get(name).cloned().unwrap_or_default();
        let mut headers = Self::request_headers(remote, &[("Accept", "application/json")]);
        if let Some(h) = self.with_state(name, |s| s.last_primary_hash.clone()) {
            headers.retain(|(n, _)| !n.eq_ignore_ascii_case("if-none-match"));
            headers.push(("If-None-Match".to_owned(), format!("\"{h}\"")));
        }
        let resp = self
            .primary
            .request("GET", &remote.pull_url(), &headers, b"")
            .await
            .map_err(ReplicaError::Transport)?;
        if resp.status == 304 {
            return Ok(SyncOutcome::NotModified);
        }
        if !(200..300).contains(&resp.status) {
            return Err(ReplicaError::Status(resp.status));
        }
        let Ok(Value::Object(mut body)) = json::parse(&resp.body) else {
            return Err(ReplicaError::BadResponse);
        };
        let primary_hash = body
            .get("hash")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        let primary_data = match body.remove("data") {
            Some(Value::Object(o)) => o,
            _ => Object::new(),
        };
        if primary_hash.is_empty() {
            return Ok(SyncOutcome::PrimaryEmpty);
        }
        if self.with_state(name, |s| {
            s.last_hash.as_deref() == Some(primary_hash.as_str())
        }) {
            return Ok(SyncOutcome::Unchanged);
        }
        let _guard = self.locks.lock(&key).await;
        let read_key = key.clone();
        let local = self
            .store_op(move |s| doc::read(s, &read_key))
            .await
            .map_err(|e| ReplicaError::Store(e.to_string()))?;
        let (local_hash, local_data) = match local {
            doc::Read::Doc(d) => (
                d.hash_str().to_owned(),
                d.data.as_object().cloned().unwrap_or_default(),
            ),
            doc::Read::Corrupt => {
                log::warn!(
                    "[ReplicaManager] Corrupt local document at \"{key}\" — treating as empty"
                );
                (String::new(), Object::new())
            }
            doc::Read::Missing => (String::new(), Object::new()),
        };
        if local_hash == primary_hash {
            self.with_state(name, |s| {
                s.last_hash = Some(primary_hash.clone());
                s.last_primary_hash = Some(primary_hash);
            });
            return Ok(SyncOutcome::Unchanged);
        }
        let data = if remote.write_mode == WriteMode::Bidirectional && !local_data.is_empty() {
            deep_merge(&local_data, &primary_data)
        } else {
            primary_data
        };
        let p = push::Push {
            data: deep_sanitize(data),
            base_hash: Some(local_hash),
            author: None,
        };
        let now = (self.clock)();
        let written = self
            .store_op(move |s| push::write(s, &key, &p, now))
            .await
            .map_err(|e| match e {
                SyncError::HashMismatch => ReplicaError::Conflict(name.to_owned()),
                other => ReplicaError::Store(other.to_string()),
            })?;
        self.with_state(name, |s| {
            s.last_hash = Some(written.hash.clone());
            s.last_primary_hash = Some(primary_hash);
            s.last_sync_at = Some(Instant::now());
        });
        Ok(SyncOutcome::Written(written.hash))
    }

    /// `syncSafe`: a sync whose errors are logged, never returned.
    pub async fn sync_safe(&self, name: &str) -> bool {
        match self.sync_now(name).await {
            Ok(o) => {
                log::debug!("[ReplicaManager] {name}: {o:?}");
                true
            }
            Err(e) => {
                log::warn!("[ReplicaManager] {name}: {e}");
                false
            }
        }
    }

    /// The `on_pull` trigger: sync unless the cooldown since the last sync
    /// that wrote is still running.
    pub async fn on_pull(&self, name: &str) {
        let Some(remote) = self.remote(name) else {
            return;
        };
        if let Some(min) = remote.on_pull_min_interval_ms {
            let fresh = self.with_state(name, |s| {
                s.last_sync_at
                    .is_some_and(|t| t.elapsed() < Duration::from_millis(min))
            });
            if fresh {
                return;
            }
        }
        self.sync_safe(name).await;
    }

    /// `proxyPush`: forward the client's exact body to the primary and relay
    /// its answer; a success also queues a background resync.
    pub async fn proxy_push(&self, name: &str, raw_body: &[u8]) -> (u16, Value) {
        let err = |status: u16, msg: String| {
            let mut o = Object::new();
            o.insert("error", msg.into());
            (status, Value::Object(o))
        };
        let Some(remote) = self.remote(name) else {
            return err(404, format!("Unknown remote collection: \"{name}\""));
        };
        let Some(url) = remote.push_url() else {
            return err(502, "Failed to reach primary".to_owned());
        };
        let headers = Self::request_headers(
            remote,
            &[
                ("Content-Type", "application/json"),
                ("Accept", "application/json"),
            ],
        );
        let resp = match self.primary.request("POST", &url, &headers, raw_body).await {
            Ok(r) => r,
            Err(e) => {
                log::warn!("[ReplicaManager] {name}: push-through failed: {e}");
                return err(502, "Failed to reach primary".to_owned());
            }
        };
        if resp.status == 409 {
            return err(409, "hash_mismatch".to_owned());
        }
        if !(200..300).contains(&resp.status) {
            return err(resp.status, format!("Primary returned {}", resp.status));
        }
        match json::parse(&resp.body) {
            Ok(Value::Object(o)) if matches!(o.get("hash"), Some(Value::String(_))) => {
                let _ = self.kick.try_send(name.to_owned());
                (resp.status, Value::Object(o))
            }
            Ok(_) => err(502, "Primary returned an unexpected response".to_owned()),
            Err(_) => err(502, "Failed to reach primary".to_owned()),
        }
    }

    /// Run the scheduler until `shutdown` resolves: one sync of every
    /// collection at start, then every `intervalMs` (plus jitter) for
    /// `scheduled` collections, retries with capped exponential back-off
    /// after failures, and the background resyncs queued by push-through.
    /// Syncs of different collections run concurrently; a collection never
    /// has two syncs at once.
    pub async fn run(
        self: Arc<Self>,
        options: SchedulerOptions,
        shutdown: impl Future<Output = ()>,
    ) {
        let ex = async_executor::Executor::new();
        let origin = Instant::now();
        let mono = move || origin.elapsed().as_millis() as u64;
        let wheel: Arc<Mutex<TimerWheel<Job>>> = Arc::new(Mutex::new(TimerWheel::new(mono())));
        let (wake_tx, wake_rx) = async_channel::unbounded::<()>();
        let mut rng = Jitter::new();
        {
            let mut w = wheel.lock().unwrap_or_else(|e| e.into_inner());
            for r in &self.remotes {
                w.insert(
                    mono() + rng.below(options.jitter_max.as_millis() as u64 / 4 + 1),
                    Job::Sync(r.name.clone()),
                );
            }
            if let Some(next) = self.primary.renew() {
                w.insert(mono() + next.as_millis() as u64, Job::Renew);
            }
        }
        let run = async {
            loop {
                let next = wheel.lock().unwrap_or_else(|e| e.into_inner()).next_wake();
                let sleep = async {
                    match next {
                        Some(t) => {
                            let now = mono();
                            async_io::Timer::after(Duration::from_millis(t.saturating_sub(now)))
                                .await;
                        }
                        None => futures_lite::future::pending::<()>().await,
                    }
                };
                let kicked = async {
                    futures_lite::future::or(
                        async {
                            if let Ok(name) = self.kicks.recv().await {
                                wheel
                                    .lock()
                                    .unwrap_or_else(|e| e.into_inner())
                                    .insert(mono(), Job::Sync(name));
                            }
                        },
                        async {
                            let _ = wake_rx.recv().await;
                        },
                    )
                    .await
                };
                futures_lite::future::or(sleep, kicked).await;
                let mut due = Vec::new();
                wheel
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .advance(mono(), &mut due);
                for job in due {
                    let name = match job {
                        Job::Sync(name) => name,
                        Job::Renew => {
                            if let Some(next) = self.primary.renew() {
                                wheel
                                    .lock()
                                    .unwrap_or_else(|e| e.into_inner())
                                    .insert(mono() + next.as_millis() as u64, Job::Renew);
                            }
                            continue;
                        }
                    };
                    if self.with_state(&name, |s| std::mem::replace(&mut s.running, true)) {
                        continue;
                    }
                    let me = self.clone();
                    let wheel = wheel.clone();
                    let wake = wake_tx.clone();
                    let opts = options.clone();
                    let jitter = rng.below(opts.jitter_max.as_millis() as u64 + 1);
                    ex.spawn(async move {
                        // On a store shared by several nodes, one of them
                        // runs the scheduled syncs; the others only keep
                        // their schedule, ready to take over.
                        let ok = if me.store_op(|s| s.schedule_lease()).await {
                            me.sync_safe(&name).await
                        } else {
                            true
                        };
                        let remote = me.remote(&name).cloned();
                        let failures = me.with_state(&name, |s| {
                            s.running = false;
                            s.failures = if ok { 0 } else { s.failures.saturating_add(1) };
                            s.failures
                        });
                        let Some(remote) = remote else { return };
                        let delay = if ok {
                            if !remote.scheduled {
                                return;
                            }
                            remote.interval_ms + jitter
                        } else {
                            backoff_ms(&opts, failures, remote.interval_ms, remote.scheduled)
                                + jitter
                        };
                        wheel
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .insert(mono() + delay, Job::Sync(name));
                        let _ = wake.try_send(());
                    })
                    .detach();
                }
            }
        };
        ex.run(futures_lite::future::or(run, shutdown)).await;
        // Shutdown: no new syncs start; wait (bounded) for those in flight.
        let deadline = Instant::now() + options.shutdown_grace;
        ex.run(async {
            while self.syncs_in_flight() > 0 && Instant::now() < deadline {
                async_io::Timer::after(Duration::from_millis(10)).await;
            }
        })
        .await;
    }

    /// Syncs started by the scheduler and not finished yet.
    pub fn syncs_in_flight(&self) -> usize {
        let map = self.state.lock().unwrap_or_else(|e| e.into_inner());
        map.values().filter(|s| s.running).count()
    }
}

/// What a scheduler timer stands for.
enum Job {
    Sync(String),
    Renew,
}

/// The retry delay after `failures` consecutive failures: base · 2^(n-1),
/// capped by `backoff_max` and, for scheduled collections, by the interval.
pub fn backoff_ms(o: &SchedulerOptions, failures: u32, interval_ms: u64, scheduled: bool) -> u64 {
    let base = o.backoff_base.as_millis() as u64;
    let exp = base.saturating_mul(1u64 << failures.saturating_sub(1).min(30));
    let mut cap = o.backoff_max.as_millis() as u64;
    if scheduled {
        cap = cap.min(interval_ms.max(base));
    }
    exp.min(cap)
}

/// A small xorshift generator for jitter, seeded from the OS.
struct Jitter(u64);

impl Jitter {
    fn new() -> Self {
        let mut seed = [0u8; 8];
        let _ = getrandom::fill(&mut seed);
        Jitter(u64::from_le_bytes(seed) | 1)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        if n == 0 {
            0
        } else {
            self.0 % n
        }
    }
}
