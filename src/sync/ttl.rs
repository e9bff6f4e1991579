//! `ttlMs` (EXTENDED): documents that expire.
//!
//! ## On read (as the official server)
//!
//! A document is expired when it has a write time (`ts` of the stored
//! envelope, not 0), the collection's `ttlMs` is positive, and
//! `now - ts > ttlMs` ([`is_expired`]). `ttlMs` is not validated by the
//! official loader; it is read as JavaScript `Number()` would, so a
//! non-numeric value never expires anything.
//!
//! * standalone pull of a JSON collection: the whole answer becomes
//!   `{"data":{},"hash":"","timestamp":<now>}` (no `ETag`, no keyring, no
//!   author fields; `Cache-Control` stays);
//! * batch pull: the entry keeps its `hash` and `timestamp` but its `data`
//!   becomes `{}`;
//! * bundle pull: not checked (the official bundle handler has no TTL check);
//! * binary collections: never expire (they have no write time).
//!
//! ## The sweep (starfish-rs only)
//!
//! The official server keeps expired documents forever ("expired data
//! remains in storage until overwritten"). Here a [`Sweeper`] removes them:
//! every TTL collection has a timer on a [`TimerWheel`]; when it fires, the
//! collection's keys are listed page by page under the storage path's
//! literal prefix, the ones matching its template are read, and each expired
//! one is deleted under the document's write lock after a re-check (so a
//! push that lands meanwhile is never deleted). A key that also matches the
//! template of a collection without a TTL (or of an append-only or binary
//! one) is never deleted; when several TTL collections match, the longest
//! TTL decides. After a sweep, an expired document reads as a missing one,
//! which differs from the official answers in three small ways (see
//! `COMPATIBILITY.md`): a push with `baseHash: null` succeeds instead of
//! 409, a batch entry's `hash` is `""`, and a bundle pull no longer shows it.

use super::doc::{self, StoredDoc};
use super::locks::KeyLocks;
use super::{js_to_number, store_call};
use crate::config::{CollectionConfig, SyncConfig};
use crate::store::{Store, StoreError};
use crate::timer_wheel::TimerWheel;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The official default has no sweep; ours runs every minute.
pub const DEFAULT_SWEEP_INTERVAL: Duration = Duration::from_secs(60);
/// Keys listed (and documents read) per store call of a sweep.
pub const SWEEP_PAGE: usize = 256;

/// Milliseconds since the Unix epoch.
fn wall_clock_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// The collection's `ttlMs` as a number (`None` when absent).
pub fn ttl_ms(col: &CollectionConfig) -> Option<f64> {
    col.extended.ttl_ms.as_ref().map(js_to_number)
}

/// The official `isExpired(timestamp, ttlMs)` at `now_ms`.
pub fn is_expired(stored_ts: f64, ttl_ms: f64, now_ms: i64) -> bool {
    if stored_ts == 0.0 || ttl_ms <= 0.0 {
        return false;
    }
    now_ms as f64 - stored_ts > ttl_ms
}

/// Whether a stored document of `col` is expired at `now_ms`.
pub fn doc_expired(col: &CollectionConfig, doc: &StoredDoc, now_ms: i64) -> bool {
    ttl_ms(col).is_some_and(|ttl| is_expired(doc.ts, ttl, now_ms))
}

/// The standalone pull answer when `doc` (the stored document of `col`)
/// is expired: the official empty answer, without keyring or author fields
/// (the caller keeps `Cache-Control` and sends no `ETag`). `None`: not
/// expired, answer as usual. Append-only pulls use it too.
pub fn expired_pull_answer(
    col: &CollectionConfig,
    doc: Option<&StoredDoc>,
    now_ms: i64,
) -> Option<crate::proto::json::Value> {
    doc.filter(|d| doc_expired(col, d, now_ms))
        .map(|_| doc::pull_answer(None, now_ms, None))
}

/// One `/`-segment of a storage-path template, for matching stored keys.
#[derive(Clone, Debug, PartialEq)]
enum SegPattern {
    /// No `{name}` in it: the key segment is exactly this.
    Exact(String),
    /// Literal pieces around `{name}` holes, each hole non-empty
    /// (`{id}` is `["", ""]`, `file-{id}.json` is `["file-", ".json"]`).
    Holes(Vec<String>),
}

impl SegPattern {
    fn parse(seg: &str) -> SegPattern {
        let mut pieces = Vec::new();
        let mut rest = seg;
        let mut current = String::new();
        while let Some(open) = rest.find('{') {
            let after = &rest[open + 1..];
            let len = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(after.len());
            if len > 0 && after[len..].starts_with('}') {
                current.push_str(&rest[..open]);
                pieces.push(std::mem::take(&mut current));
                rest = &after[len + 1..];
            } else {
                current.push_str(&rest[..open + 1]);
                rest = after;
            }
        }
        current.push_str(rest);
        if pieces.is_empty() {
            SegPattern::Exact(current)
        } else {
            pieces.push(current);
            SegPattern::Holes(pieces)
        }
    }

    fn matches(&self, seg: &str) -> bool {
        match self {
            SegPattern::Exact(s) => s == seg,
            SegPattern::Holes(pieces) => {
                let (first, last) = (&pieces[0], &pieces[pieces.len() - 1]);
                let Some(mut rest) = seg.strip_prefix(first.as_str()) else {
                    return false;
                };
                for mid in &pieces[1..pieces.len() - 1] {
                    // Each hole takes at least one character.
                    let Some(at) = rest.get(1..).and_then(|r| r.find(mid.as_str())) else {
                        return false;
                    };
                    rest = &rest[1 + at + mid.len()..];
                }
                rest.len() > last.len() && rest.ends_with(last.as_str())
            }
        }
    }
}

/// A storage-path template (with a bundle member's `/<name>` appended).
#[derive(Clone, Debug)]
struct Template {
    name: String,
    segs: Vec<SegPattern>,
    /// The TTL that may delete this template's documents; `None` when it
    /// has none, or its documents must never be swept (binary, append-only).
    sweep_ttl: Option<f64>,
}

impl Template {
    fn new(scope: Option<&str>, col: &CollectionConfig) -> Template {
        let path = match &col.bundle {
            Some(_) => format!("{}/{}", col.storage_path, col.name),
            None => col.storage_path.clone(),
        };
        let sweepable = !col.is_binary() && col.extended.append_only.is_none();
        Template {
            name: match scope {
                Some(ns) => format!("{ns}/{}", col.name),
                None => col.name.clone(),
            },
            segs: path.split('/').map(SegPattern::parse).collect(),
            sweep_ttl: ttl_ms(col).filter(|t| sweepable && *t > 0.0),
        }
    }

    fn matches(&self, key: &str) -> bool {
        let mut n = 0;
        for (i, seg) in key.split('/').enumerate() {
            match self.segs.get(i) {
                Some(p) if p.matches(seg) => n += 1,
                _ => return false,
            }
        }
        n == self.segs.len()
    }

    /// The literal segments before the first hole (never the last
    /// segment, which is the document itself), as a list prefix.
    fn list_prefix(&self) -> String {
        let mut out = String::new();
        for s in &self.segs[..self.segs.len().saturating_sub(1)] {
            match s {
                SegPattern::Exact(e) if !e.is_empty() => {
                    out.push_str(e);
                    out.push('/');
                }
                _ => break,
            }
        }
        out
    }
}

/// What a sweep looks at: every collection's template, and which of them
/// have a TTL to sweep.
#[derive(Clone, Debug)]
pub struct SweepPlan {
    templates: Vec<Template>,
    /// Indexes into `templates` of the ones to sweep.
    targets: Vec<usize>,
}

/// One page of a sweep scan.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Page {
    /// Keys that were expired when read.
    pub expired: Vec<String>,
    /// Where the next page starts (`None`: the scan is complete).
    pub next: Option<String>,
    /// Keys listed on this page.
    pub listed: usize,
}

impl SweepPlan {
    pub fn new(config: &SyncConfig) -> SweepPlan {
        let templates: Vec<Template> = config
            .all_collections()
            .map(|(ns, c)| Template::new(ns, c))
            .collect();
        let targets = (0..templates.len())
            .filter(|&i| templates[i].sweep_ttl.is_some())
            .collect();
        SweepPlan { templates, targets }
    }

    /// The number of collections to sweep.
    pub fn len(&self) -> usize {
        self.targets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.targets.is_empty()
    }

    /// The `ns/name` of sweep target `t`.
    pub fn target_name(&self, t: usize) -> &str {
        &self.templates[self.targets[t]].name
    }

    /// The TTL that applies to `key` for the sweep: `None` if some
    /// collection without a sweepable TTL also owns the key, else the
    /// longest TTL of the collections that own it.
    pub fn sweep_ttl(&self, key: &str) -> Option<f64> {
        let mut ttl: Option<f64> = None;
        for t in self.templates.iter().filter(|t| t.matches(key)) {
            let own = t.sweep_ttl?;
            ttl = Some(ttl.map_or(own, |x| x.max(own)));
        }
        ttl
    }

    /// List and read one page of target `t`'s keys after `after`; the
    /// expired ones are returned, nothing is deleted.
    pub fn scan_page(
        &self,
        store: &dyn Store,
        t: usize,
        after: Option<&str>,
        now_ms: i64,
    ) -> Result<Page, StoreError> {
        let template = &self.templates[self.targets[t]];
        let prefix = template.list_prefix();
        let keys = store.list_keys(&prefix, after, SWEEP_PAGE)?;
        let mut page = Page {
            listed: keys.len(),
            next: (keys.len() == SWEEP_PAGE)
                .then(|| keys.last().cloned())
                .flatten(),
            ..Page::default()
        };
        for key in keys {
            if !template.matches(&key) {
                continue;
            }
            if self.expired_now(store, &key, now_ms)? {
                page.expired.push(key);
            }
        }
        Ok(page)
    }

    fn expired_now(&self, store: &dyn Store, key: &str, now_ms: i64) -> Result<bool, StoreError> {
        let Some(ttl) = self.sweep_ttl(key) else {
            return Ok(false);
        };
        Ok(match doc::read(store, key)? {
            doc::Read::Doc(d) => is_expired(d.ts, ttl, now_ms),
            _ => false,
        })
    }

    /// Delete `key` if it is (still) an expired document. The caller holds
    /// the key's write lock.
    pub fn remove_if_expired(
        &self,
        store: &dyn Store,
        key: &str,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        if self.expired_now(store, key, now_ms)? {
            store.delete(key)?;
            Ok(true)
        } else {
            Ok(false)
        }
    }
}

/// One blocking step of a sweep: list and read a page after a key, or
/// remove the keys found expired (the caller holds their write locks).
enum Step {
    Scan(Option<String>),
    Remove(Vec<String>),
}

enum StepOut {
    Page(Page),
    Removed(usize),
}

/// Runs the sweep of every TTL collection on a timer wheel.
pub struct Sweeper {
    plan: Arc<SweepPlan>,
    store: Arc<dyn Store>,
    blocking: bool,
    locks: Arc<KeyLocks>,
    interval: Duration,
    clock: fn() -> i64,
}

impl Sweeper {
    /// `blocking`: run store calls on the blocking pool (filesystem store).
    /// `locks`: the service's per-key write locks.
    pub fn new(
        plan: SweepPlan,
        store: Arc<dyn Store>,
        blocking: bool,
        locks: Arc<KeyLocks>,
        interval: Duration,
    ) -> Self {
        Sweeper {
            plan: Arc::new(plan),
            store,
            blocking,
            locks,
            interval: interval.max(Duration::from_millis(1)),
            clock: wall_clock_ms,
        }
    }

    /// Replace the wall clock that decides expiry (tests).
    pub fn with_clock(mut self, clock: fn() -> i64) -> Self {
        self.clock = clock;
        self
    }

    pub fn plan(&self) -> &SweepPlan {
        &self.plan
    }

    /// Sweep target `t` once: the number of documents deleted. Store errors
    /// end this sweep (logged); the next one starts over.
    pub async fn sweep(&self, t: usize) -> usize {
        let mut after: Option<String> = None;
        let mut deleted = 0;
        loop {
            let page = match self.step(t, Step::Scan(after.take())).await {
                Ok(StepOut::Page(p)) => p,
                Ok(StepOut::Removed(_)) => return deleted,
                Err(e) => {
                    log::error!("ttl sweep of {}: {e}", self.plan.target_name(t));
                    return deleted;
                }
            };
            if !page.expired.is_empty() {
                // Keys come sorted from the listing: a consistent lock order.
                let mut guards = Vec::with_capacity(page.expired.len());
                for key in &page.expired {
                    guards.push(self.locks.lock(key).await);
                }
                if let Ok(StepOut::Removed(n)) = self.step(t, Step::Remove(page.expired)).await {
                    deleted += n;
                }
            }
            match page.next {
                Some(n) => after = Some(n),
                None => break,
            }
        }
        if deleted > 0 {
            log::info!(
                "ttl sweep of {}: removed {deleted} expired document(s)",
                self.plan.target_name(t)
            );
        }
        deleted
    }

    /// Run one step on the store (one closure type for both steps, so one
    /// blocking-pool instantiation).
    async fn step(&self, t: usize, step: Step) -> Result<StepOut, StoreError> {
        let plan = self.plan.clone();
        let now = (self.clock)();
        store_call(&self.store, self.blocking, move |s| match step {
            Step::Scan(after) => plan
                .scan_page(s, t, after.as_deref(), now)
                .map(StepOut::Page),
            Step::Remove(keys) => {
                let mut n = 0;
                for key in keys {
                    match plan.remove_if_expired(s, &key, now) {
                        Ok(true) => n += 1,
                        Ok(false) => {}
                        Err(e) => log::error!("ttl sweep: cannot remove {key:?}: {e}"),
                    }
                }
                Ok(StepOut::Removed(n))
            }
        })
        .await
    }

    /// Run forever (stop it by dropping the future or its task): each TTL
    /// collection is swept at start (staggered over the first interval),
    /// then once per interval after its previous sweep ended. A deletion
    /// in flight when it is dropped still completes (it runs on the
    /// blocking pool); the rest of that sweep is simply not done.
    pub async fn run(self) {
        if self.plan.is_empty() {
            return;
        }
        let origin = Instant::now();
        let mono = move || origin.elapsed().as_millis() as u64;
        let interval = self.interval.as_millis().min(u128::from(u64::MAX)) as u64;
        let mut wheel: TimerWheel<usize> = TimerWheel::new(mono());
        let n = self.plan.len() as u64;
        for t in 0..self.plan.len() {
            wheel.insert(mono() + interval / n * t as u64, t);
        }
        let mut due = Vec::new();
        loop {
            if let Some(at) = wheel.next_wake() {
                let wait = at.saturating_sub(mono());
                if wait > 0 {
                    async_io::Timer::after(Duration::from_millis(wait)).await;
                }
            }
            wheel.advance(mono(), &mut due);
            for t in due.drain(..) {
                self.sweep(t).await;
                wheel.insert(mono() + interval, t);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse_config;
    use crate::store::MemoryStore;

    fn plan(json: &str) -> SweepPlan {
        SweepPlan::new(&parse_config(json.as_bytes()).unwrap().config)
    }

    fn put_doc(store: &dyn Store, key: &str, ts: f64) {
        let data = crate::proto::json::Object::new();
        store.put(key, &doc::encode(&data, ts, "h", None)).unwrap();
    }

    #[test]
    fn expiry_rule_is_the_official_one() {
        assert!(!is_expired(0.0, 10.0, 1_000), "never written");
        assert!(!is_expired(100.0, 0.0, 1_000), "ttl 0 never expires");
        assert!(!is_expired(100.0, -5.0, 1_000));
        assert!(!is_expired(100.0, f64::NAN, 1_000), "NaN never expires");
        assert!(!is_expired(100.0, 900.0, 1_000), "exactly ttl old: not yet");
        assert!(is_expired(100.0, 899.0, 1_000));
    }

    #[test]
    fn segment_patterns() {
        let p = SegPattern::parse("{id}");
        assert!(p.matches("x") && !p.matches(""));
        let p = SegPattern::parse("file-{id}.json");
        assert!(p.matches("file-1.json"));
        assert!(!p.matches("file-.json") && !p.matches("file-1.txt") && !p.matches("x-1.json"));
        let p = SegPattern::parse("{a}-{b}");
        assert!(p.matches("1-2") && p.matches("1--2") && !p.matches("1-") && !p.matches("-2"));
        assert_eq!(
            SegPattern::parse("{a-b}"),
            SegPattern::Exact("{a-b}".into())
        );
        assert_eq!(
            SegPattern::parse("plain"),
            SegPattern::Exact("plain".into())
        );
    }

    const TTL_CONFIG: &str = r#"{"collections":[
        {"name":"t","storagePath":"notes/{id}","readRoles":["public"],"writeRoles":["public"],"ttlMs":1000},
        {"name":"pinned","storagePath":"notes/pinned","readRoles":["public"],"writeRoles":["public"]},
        {"name":"long","storagePath":"notes/long","readRoles":["public"],"writeRoles":["public"],"ttlMs":5000},
        {"name":"deep","storagePath":"notes/{id}/sub","readRoles":["public"],"writeRoles":["public"]},
        {"name":"bin","storagePath":"bin/{id}","readRoles":["public"],"writeRoles":["public"],"ttlMs":1,
         "allowedMimeTypes":["image/*"]},
        {"name":"m","bundle":"b","storagePath":"b/{id}","readRoles":["public"],"writeRoles":["public"],"ttlMs":1000},
        {"name":"off","storagePath":"off/{id}","readRoles":["public"],"writeRoles":["public"],"ttlMs":"soon"}
      ]}"#;

    #[test]
    fn the_plan_knows_who_owns_a_key() {
        let p = plan(TTL_CONFIG);
        let names: Vec<&str> = (0..p.len()).map(|t| p.target_name(t)).collect();
        assert_eq!(
            names,
            ["t", "long", "m"],
            "binary and non-numeric TTLs are not swept"
        );
        assert_eq!(p.sweep_ttl("notes/a"), Some(1000.0));
        assert_eq!(
            p.sweep_ttl("notes/pinned"),
            None,
            "a TTL-less collection owns it too"
        );
        assert_eq!(
            p.sweep_ttl("notes/long"),
            Some(5000.0),
            "the longest TTL decides"
        );
        assert_eq!(p.sweep_ttl("notes/a/sub"), None);
        assert_eq!(p.sweep_ttl("notes/a/_keyring"), None);
        assert_eq!(p.sweep_ttl("b/x/m"), Some(1000.0));
        assert_eq!(p.sweep_ttl("b/x"), None);
    }

    #[test]
    fn a_sweep_page_finds_exactly_the_expired_documents() {
        let p = plan(TTL_CONFIG);
        let store = MemoryStore::new();
        put_doc(&store, "notes/old", 1_000.0);
        put_doc(&store, "notes/fresh", 9_500.0);
        put_doc(&store, "notes/pinned", 1.0);
        put_doc(&store, "notes/long", 1_000.0);
        put_doc(&store, "notes/old/sub", 1.0);
        put_doc(&store, "notes/old/_keyring", 1.0);
        put_doc(&store, "notes/never", 0.0);
        store.put("notes/corrupt", b"{nope").unwrap();
        store.put_bytes("notes/blob", b"xx", "image/png").unwrap();
        put_doc(&store, "b/x/m", 1.0);
        let page = p.scan_page(&store, 0, None, 10_000).unwrap();
        // notes/long is owned by "t" (1 s) and "long" (5 s): 9 s old either way.
        assert_eq!(page.expired, ["notes/long", "notes/old"]);
        assert_eq!(page.next, None);
        let page = p.scan_page(&store, 1, None, 10_000).unwrap();
        assert_eq!(page.expired, ["notes/long"]);
        assert!(p
            .scan_page(&store, 1, None, 5_999)
            .unwrap()
            .expired
            .is_empty());
        let page = p.scan_page(&store, 2, None, 10_000).unwrap();
        assert_eq!(page.expired, ["b/x/m"]);
        // The re-check under the lock: a document rewritten since the scan stays.
        put_doc(&store, "notes/old", 9_999.0);
        assert!(!p.remove_if_expired(&store, "notes/old", 10_000).unwrap());
        assert!(store.get("notes/old").unwrap().is_some());
        assert!(p.remove_if_expired(&store, "notes/long", 10_000).unwrap());
        assert!(store.get("notes/long").unwrap().is_none());
    }

    #[test]
    fn sweeps_page_through_many_keys() {
        let p = plan(TTL_CONFIG);
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let total = SWEEP_PAGE * 2 + 17;
        for i in 0..total {
            put_doc(
                &*store,
                &format!("notes/k{i:05}"),
                if i % 3 == 0 { 9_999.0 } else { 5.0 },
            );
        }
        fn clock() -> i64 {
            10_000
        }
        let sweeper = Sweeper::new(
            p,
            store.clone(),
            false,
            Arc::new(KeyLocks::new()),
            DEFAULT_SWEEP_INTERVAL,
        )
        .with_clock(clock);
        let deleted = futures_lite::future::block_on(sweeper.sweep(0));
        let expected = (0..total).filter(|i| i % 3 != 0).count();
        assert_eq!(deleted, expected);
        let left = store.list_keys("notes/", None, usize::MAX).unwrap();
        assert_eq!(left.len(), total - expected);
        assert!(left.iter().all(|k| {
            let i: usize = k["notes/k".len()..].parse().unwrap();
            i % 3 == 0
        }));
        // A second sweep finds nothing.
        assert_eq!(futures_lite::future::block_on(sweeper.sweep(0)), 0);
    }

    #[test]
    fn the_timer_wheel_drives_repeated_sweeps() {
        let p = plan(TTL_CONFIG);
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        put_doc(&*store, "notes/a", 1.0);
        let sweeper = Sweeper::new(
            p,
            store.clone(),
            false,
            Arc::new(KeyLocks::new()),
            Duration::from_millis(20),
        );
        let s2 = store.clone();
        futures_lite::future::block_on(futures_lite::future::or(sweeper.run(), async move {
            // First sweep at start removes notes/a; a later write that is
            // already expired is removed by a later sweep.
            for _ in 0..200 {
                async_io::Timer::after(Duration::from_millis(5)).await;
                if s2.get("notes/a").unwrap().is_none() {
                    break;
                }
            }
            assert!(s2.get("notes/a").unwrap().is_none(), "first sweep ran");
            put_doc(&*s2, "notes/b", 1.0);
            for _ in 0..200 {
                async_io::Timer::after(Duration::from_millis(5)).await;
                if s2.get("notes/b").unwrap().is_none() {
                    break;
                }
            }
            assert!(s2.get("notes/b").unwrap().is_none(), "a later sweep ran");
        }));
    }
}
