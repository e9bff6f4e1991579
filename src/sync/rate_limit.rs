//! Rate limits (the official `rateLimit`, EXTENDED): which requests are
//! counted, in which buckets, and when one is refused with
//! `429 {"error":"Rate limit exceeded"}` (no other header, as the official
//! server answers).
//!
//! ## Rules, as the official router builds them
//!
//! A collection's `rateLimit` (`true` means `{}`) gives each action (`push`,
//! `pull`, `list`) at most one rule:
//!
//! * an explicit `push` / `pull` / `list` entry (any non-null value; fields
//!   of a non-object are absent);
//! * otherwise, for `push` only and only when the top-level `rateLimit` is
//!   set, the implicit rule `{windowMs, maxRequests, bucket}` of the
//!   collection's flat fields.
//!
//! A rule is either one counter (`bucket`: `identity`, the default, `ip` or
//! `identity+ip`) or the two-dimension form (`identity` and/or `ip`
//! sub-limits, each its own counter; a request over either is refused, and
//! every counter is incremented either way). `windowMs` and `maxRequests`
//! are taken from the dimension, then the rule, then the collection's flat
//! fields, then the top-level `rateLimit`; a counter whose pair does not
//! resolve does not exist. The top-level `rateLimit` alone limits nothing: it
//! only supplies defaults and enables the implicit push rule. Bundle pulls
//! and batch pulls are never counted; a bundle member's pushes are counted
//! with its own push rule.
//!
//! Counters are fixed windows: the first request in a bucket opens a window
//! of `windowMs`; every request in it increments the count (refused ones
//! too); a request that makes the count exceed `maxRequests` is refused.
//! Collection-level numbers are validated positive integers; top-level ones
//! are not validated by the official loader and are read as JavaScript
//! `Number()` would (a non-numeric value becomes NaN: a NaN window never
//! closes, a NaN maximum never refuses).
//!
//! ## Buckets
//!
//! * `identity`: the authenticated caller; a caller without an identity (a
//!   public collection's fast path, or the empty anonymous identity) falls
//!   back to the client address;
//! * `ip`: the client address only;
//! * `identity+ip`: the pair.
//!
//! The client address is decided by the HTTP layer
//! (`http::client_ip`: the TCP peer, `X-Forwarded-For` only from
//! `--trusted-proxy` addresses). The official TypeScript server has no peer
//! address and lumps such callers into one shared `"anonymous"` bucket; here
//! `None` (no address known, e.g. an embedder calling the service directly)
//! is that shared bucket.
//!
//! ## Bounded memory
//!
//! Each counter (one per rule dimension) keeps at most `max_buckets`
//! buckets (`--rate-limit-buckets`, default 10 000, the official
//! `maxBuckets`). A bucket is a 64-bit keyed hash of its key (SipHash with a
//! per-process random key, so a bucket's size does not depend on the
//! identity's length and collisions cannot be aimed at), a 32-bit count, a
//! generation and its window end: 24 bytes in the map plus 16 in the
//! creation-order queue. With the hash map's growth under churn the
//! allocated size stays below [`BYTES_PER_BUCKET`] (140) bytes per bucket of
//! the bound — measured about 110, i.e. about 1.1 MB per counter at the
//! default — however many identities or addresses an attacker rotates
//! through. Buckets whose window has ended are reclaimed first; when the
//! table is still full, the bucket whose window opened first is dropped (its
//! count restarts), as the official in-memory store does. A new bucket is
//! therefore always admitted: the bound can weaken a limit under a flood of
//! fresh keys, never lock a caller out.

use super::js_to_number;
use crate::config::SyncConfig;
use crate::proto::json::Value;
use std::collections::hash_map::RandomState;
use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasher, BuildHasherDefault, Hasher};
use std::net::IpAddr;
use std::sync::Mutex;

/// The official default `maxBuckets`.
pub const DEFAULT_MAX_BUCKETS: usize = 10_000;
/// Upper bound of a counter's heap use per bucket of its limit (the table's
/// allocated capacity, pinned by a test under rotating keys).
pub const BYTES_PER_BUCKET: usize = 140;

/// The action a request performs, for choosing its rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RateAction {
    Push,
    Pull,
    List,
}

impl RateAction {
    const ALL: [RateAction; 3] = [RateAction::Push, RateAction::Pull, RateAction::List];

    /// The config key of the action's rule.
    pub fn name(self) -> &'static str {
        match self {
            RateAction::Push => "push",
            RateAction::Pull => "pull",
            RateAction::List => "list",
        }
    }
}

/// How requests are grouped into one counter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bucket {
    Identity,
    Ip,
    IdentityIp,
}

impl Bucket {
    fn parse(v: Option<&Value>) -> Bucket {
        match v.and_then(Value::as_str) {
            Some("ip") => Bucket::Ip,
            Some("identity+ip") => Bucket::IdentityIp,
            _ => Bucket::Identity,
        }
    }
}

/// Who is asking: the inputs of a bucket key.
#[derive(Clone, Copy, Debug, Default)]
pub struct Caller<'a> {
    /// The authenticated identity (`None` or `""`: anonymous).
    pub identity: Option<&'a str>,
    /// The client address (`None`: unknown, one shared bucket).
    pub ip: Option<IpAddr>,
}

/// One fixed-window counter with its own bounded bucket table.
#[derive(Debug)]
pub struct Limiter {
    window_ms: f64,
    max_requests: f64,
    bucket: Bucket,
    table: Mutex<Table>,
}

impl Limiter {
    pub fn new(window_ms: f64, max_requests: f64, bucket: Bucket, max_buckets: usize) -> Self {
        Limiter {
            window_ms,
            max_requests,
            bucket,
            table: Mutex::new(Table::new(max_buckets)),
        }
    }

    pub fn window_ms(&self) -> f64 {
        self.window_ms
    }

    pub fn max_requests(&self) -> f64 {
        self.max_requests
    }

    pub fn bucket(&self) -> Bucket {
        self.bucket
    }

    /// Count one request; `false` when it is over the limit.
    pub fn hit(&self, caller: &Caller<'_>, now_ms: f64) -> bool {
        let identity = caller.identity.filter(|i| !i.is_empty());
        let mut table = self.table.lock().unwrap_or_else(|e| e.into_inner());
        // (kind, identity, address): one tuple type, so one hash function.
        let parts = match (self.bucket, identity) {
            (Bucket::Identity, Some(id)) => (0u8, Some(id), None),
            (Bucket::Identity | Bucket::Ip, _) => (1u8, None, caller.ip),
            (Bucket::IdentityIp, id) => (2u8, id, caller.ip),
        };
        let key = table.hasher.hash_one(parts);
        let count = table.increment(key, now_ms, self.window_ms);
        !over_limit(count, self.max_requests)
    }

    /// Buckets currently held (for tests and diagnostics).
    pub fn buckets(&self) -> usize {
        self.table.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Heap bytes the bucket table holds now (allocated capacity).
    pub fn heap_bytes(&self) -> usize {
        self.table
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .heap_bytes()
    }
}

/// A hasher for keys that are hashes already (the bucket table's `u64`s).
#[derive(Default)]
struct PassThrough(u64);

impl Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// The official `entry.expiresAt <= t` (false for a NaN window end: such a
/// window never ends).
fn window_ended(expires_at: f64, now: f64) -> bool {
    expires_at <= now
}

/// The official `count > maxRequests` (false for a NaN maximum: it never
/// refuses).
fn over_limit(count: u32, max_requests: f64) -> bool {
    f64::from(count) > max_requests
}

/// 16 bytes: a bucket's count (saturating), its window end and the
/// generation that tells its current `order` item from stale ones.
#[derive(Debug)]
struct Counter {
    count: u32,
    generation: u32,
    expires_at: f64,
}

/// Buckets by hashed key, plus their creation order (which, for one window
/// length and a monotonic clock, is expiry order).
#[derive(Debug)]
struct Table {
    hasher: RandomState,
    /// Keys are already keyed SipHash values: the map does not hash again.
    map: HashMap<u64, Counter, BuildHasherDefault<PassThrough>>,
    /// (key, generation), oldest first. An item whose generation no longer
    /// matches the map's is stale and skipped.
    order: VecDeque<(u64, u32)>,
    max: usize,
    next_generation: u32,
}

impl Table {
    fn new(max: usize) -> Self {
        Table {
            hasher: RandomState::new(),
            map: HashMap::default(),
            order: VecDeque::new(),
            max: max.max(1),
            next_generation: 0,
        }
    }

    fn len(&self) -> usize {
        self.map.len()
    }

    /// Heap bytes held by the table (allocated capacity, not live entries).
    fn heap_bytes(&self) -> usize {
        // hashbrown: one control byte per bucket, buckets = capacity * 8 / 7.
        let buckets = (self.map.capacity() * 8).div_ceil(7).next_power_of_two();
        buckets * (std::mem::size_of::<(u64, Counter)>() + 1)
            + self.order.capacity() * std::mem::size_of::<(u64, u32)>()
    }

    /// The official `increment(key, windowMs)`: the count in the current
    /// window, after this request.
    fn increment(&mut self, key: u64, now: f64, window: f64) -> u32 {
        if let Some(c) = self.map.get_mut(&key) {
            if !window_ended(c.expires_at, now) {
                c.count = c.count.saturating_add(1);
                return c.count;
            }
        }
        self.reclaim_expired(now);
        self.map.remove(&key);
        while self.map.len() >= self.max {
            self.evict_oldest();
        }
        let generation = self.next_generation;
        self.next_generation = self.next_generation.wrapping_add(1);
        self.map.insert(
            key,
            Counter {
                count: 1,
                generation,
                expires_at: now + window,
            },
        );
        self.order.push_back((key, generation));
        if self.order.len() > 2 * self.max {
            // Stale items pile up only when the clock jumps back; drop them.
            let map = &self.map;
            self.order
                .retain(|(k, g)| map.get(k).is_some_and(|c| c.generation == *g));
        }
        1
    }

    /// Drop buckets whose window has ended, oldest first, stopping at the
    /// first live one.
    fn reclaim_expired(&mut self, now: f64) {
        while let Some(&(key, generation)) = self.order.front() {
            match self.map.get(&key) {
                Some(c) if c.generation == generation => {
                    if !window_ended(c.expires_at, now) {
                        break;
                    }
                    self.map.remove(&key);
                }
                _ => {} // stale item
            }
            self.order.pop_front();
        }
    }

    fn evict_oldest(&mut self) {
        while let Some((key, generation)) = self.order.pop_front() {
            if self.remove_if_current(key, generation) {
                return;
            }
        }
        // Unreachable while map and order agree; never loop forever.
        self.map.clear();
    }

    fn remove_if_current(&mut self, key: u64, generation: u32) -> bool {
        if self
            .map
            .get(&key)
            .is_some_and(|c| c.generation == generation)
        {
            self.map.remove(&key);
            true
        } else {
            false
        }
    }
}

/// A request refused by a rate limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimited;

impl RateLimited {
    pub const STATUS: u16 = 429;
    pub const MESSAGE: &'static str = "Rate limit exceeded";
}

impl std::fmt::Display for RateLimited {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(Self::MESSAGE)
    }
}

impl std::error::Error for RateLimited {}

/// The counters of one collection, per action.
#[derive(Debug, Default)]
pub struct CollectionLimits {
    pub push: Vec<Limiter>,
    pub pull: Vec<Limiter>,
    pub list: Vec<Limiter>,
}

impl CollectionLimits {
    fn for_action(&self, action: RateAction) -> &[Limiter] {
        match action {
            RateAction::Push => &self.push,
            RateAction::Pull => &self.pull,
            RateAction::List => &self.list,
        }
    }

    fn is_empty(&self) -> bool {
        self.push.is_empty() && self.pull.is_empty() && self.list.is_empty()
    }
}

/// The limited collections of one scope, by name (few: a list is smaller
/// and as fast as a map here).
type ScopeLimits = Vec<(String, CollectionLimits)>;

/// Every rate limit of a config, by scope and collection name.
#[derive(Debug, Default)]
pub struct RateLimits {
    /// (namespace, collection name → limits); only collections with at
    /// least one counter are present.
    scopes: Vec<(Option<String>, ScopeLimits)>,
}

/// `v[key]` when not nullish.
fn field<'a>(v: Option<&'a Value>, key: &str) -> Option<&'a Value> {
    v?.as_object()?.get(key).filter(|v| !v.is_null())
}

/// `dim?.x ?? rule.x ?? col.x ?? global?.x` for windowMs and maxRequests.
fn resolve_window_max(
    dim: Option<&Value>,
    rule: Option<&Value>,
    col: Option<&Value>,
    global: Option<&Value>,
) -> Option<(f64, f64)> {
    let pick = |name: &str| {
        field(dim, name)
            .or_else(|| field(rule, name))
            .or_else(|| field(col, name))
            .or_else(|| field(global, name))
            .map(js_to_number)
    };
    Some((pick("windowMs")?, pick("maxRequests")?))
}

fn rule_limiters(
    rule: Option<&Value>,
    col: Option<&Value>,
    global: Option<&Value>,
    max_buckets: usize,
) -> Vec<Limiter> {
    let identity = field(rule, "identity");
    let ip = field(rule, "ip");
    let mut out = Vec::new();
    if identity.is_some() || ip.is_some() {
        for (dim, bucket) in [(identity, Bucket::Identity), (ip, Bucket::Ip)] {
            if dim.is_some() {
                if let Some((w, m)) = resolve_window_max(dim, rule, col, global) {
                    out.push(Limiter::new(w, m, bucket, max_buckets));
                }
            }
        }
    } else if let Some((w, m)) = resolve_window_max(None, rule, col, global) {
        out.push(Limiter::new(
            w,
            m,
            Bucket::parse(field(rule, "bucket")),
            max_buckets,
        ));
    }
    out
}

/// The counters of one collection's `rateLimit` (`raw`), as
/// `buildActionRateLimiters` builds them. `bundled`: a bundle member, whose
/// only route that counts is its push.
pub fn collection_limits(
    raw: Option<&Value>,
    global: Option<&Value>,
    bundled: bool,
    max_buckets: usize,
) -> CollectionLimits {
    let mut out = CollectionLimits::default();
    let Some(col) = raw else {
        return out;
    };
    for action in RateAction::ALL {
        if bundled && action != RateAction::Push {
            continue;
        }
        let explicit = col.as_object().and_then(|o| o.get(action.name()));
        let explicit = explicit.filter(|v| !v.is_null());
        let implicit;
        let rule = match explicit {
            Some(r) => r,
            None if action == RateAction::Push && global.is_some() => {
                let mut o = crate::proto::json::Object::new();
                for k in ["windowMs", "maxRequests", "bucket"] {
                    if let Some(v) = field(Some(col), k) {
                        o.insert(k, v.clone());
                    }
                }
                implicit = Value::Object(o);
                &implicit
            }
            None => continue,
        };
        let limiters = rule_limiters(Some(rule), Some(col), global, max_buckets);
        match action {
            RateAction::Push => out.push = limiters,
            RateAction::Pull => out.pull = limiters,
            RateAction::List => out.list = limiters,
        }
    }
    out
}

impl RateLimits {
    /// Every collection's counters. `max_buckets` bounds each counter's
    /// table (see the module docs).
    pub fn from_config(config: &SyncConfig, max_buckets: usize) -> Self {
        let global = config.rate_limit.as_ref();
        let scope = |cols: &[crate::config::CollectionConfig]| {
            cols.iter()
                .filter_map(|c| {
                    let limits = collection_limits(
                        c.extended.rate_limit.as_ref(),
                        global,
                        c.bundle.is_some(),
                        max_buckets,
                    );
                    (!limits.is_empty()).then(|| (c.name.clone(), limits))
                })
                .collect::<Vec<_>>()
        };
        let mut scopes = vec![(None, scope(&config.collections))];
        for (name, ns) in &config.namespaces {
            scopes.push((Some(name.clone()), scope(&ns.collections)));
        }
        scopes.retain(|(_, m)| !m.is_empty());
        RateLimits { scopes }
    }

    /// No counter anywhere.
    pub fn is_empty(&self) -> bool {
        self.scopes.is_empty()
    }

    /// The counters of one collection, if it has any.
    pub fn collection(&self, namespace: Option<&str>, name: &str) -> Option<&CollectionLimits> {
        self.scopes
            .iter()
            .find(|(ns, _)| ns.as_deref() == namespace)
            .and_then(|(_, m)| m.iter().find(|(n, _)| n == name).map(|(_, l)| l))
    }

    /// Whether this collection's `action` has any counter (so the caller
    /// knows whether to work out the client address at all).
    pub fn applies(&self, namespace: Option<&str>, name: &str, action: RateAction) -> bool {
        self.collection(namespace, name)
            .is_some_and(|l| !l.for_action(action).is_empty())
    }

    /// Count a request against every counter of the collection's action
    /// (`checkRateLimiters`: all are incremented, then the verdict).
    pub fn check(
        &self,
        namespace: Option<&str>,
        name: &str,
        action: RateAction,
        caller: &Caller<'_>,
        now_ms: i64,
    ) -> Result<(), RateLimited> {
        let Some(limits) = self.collection(namespace, name) else {
            return Ok(());
        };
        let mut ok = true;
        for l in limits.for_action(action) {
            ok &= l.hit(caller, now_ms as f64);
        }
        if ok {
            Ok(())
        } else {
            Err(RateLimited)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse_config;

    fn limits(json: &str) -> RateLimits {
        RateLimits::from_config(&parse_config(json.as_bytes()).unwrap().config, 100)
    }

    fn who(id: Option<&'static str>, ip: &str) -> Caller<'static> {
        Caller {
            identity: id,
            ip: Some(ip.parse().unwrap()),
        }
    }

    fn run(
        l: &RateLimits,
        ns: Option<&str>,
        col: &str,
        a: RateAction,
        c: &Caller,
        n: usize,
    ) -> Vec<bool> {
        (0..n)
            .map(|_| l.check(ns, col, a, c, 1_000).is_ok())
            .collect()
    }

    const COL: &str = r#""storagePath":"p/{id}","readRoles":["public"],"writeRoles":["public"]"#;

    #[test]
    fn rule_resolution_follows_the_official_router() {
        // Flat fields alone: no global, so no implicit push rule.
        let l = limits(&format!(
            r#"{{"collections":[{{"name":"c",{COL},"rateLimit":{{"windowMs":1000,"maxRequests":1}}}}]}}"#
        ));
        assert!(l.is_empty());
        // With a global rateLimit the flat fields become the push rule.
        let l = limits(&format!(
            r#"{{"rateLimit":{{"windowMs":9,"maxRequests":9}},"collections":[{{"name":"c",{COL},"rateLimit":{{"maxRequests":2}}}}]}}"#
        ));
        let c = l.collection(None, "c").unwrap();
        assert_eq!((c.push.len(), c.pull.len(), c.list.len()), (1, 0, 0));
        assert_eq!(
            (c.push[0].window_ms(), c.push[0].max_requests()),
            (9.0, 2.0)
        );
        // `rateLimit: true` with a global: the global numbers.
        let l = limits(&format!(
            r#"{{"rateLimit":{{"windowMs":7,"maxRequests":3}},"collections":[{{"name":"c",{COL},"rateLimit":true}}]}}"#
        ));
        let c = l.collection(None, "c").unwrap();
        assert_eq!(
            (c.push[0].window_ms(), c.push[0].max_requests()),
            (7.0, 3.0)
        );
        // Explicit per-action rules: dim -> rule -> flat -> global.
        let l = limits(&format!(
            r#"{{"rateLimit":{{"windowMs":5,"maxRequests":5}},"collections":[{{"name":"c",{COL},
              "rateLimit":{{"windowMs":100,"pull":{{"maxRequests":2,"bucket":"ip"}},
                "list":{{"identity":{{"maxRequests":4}},"ip":{{"windowMs":50}}}}}}}}]}}"#
        ));
        let c = l.collection(None, "c").unwrap();
        assert_eq!(c.pull.len(), 1);
        assert_eq!(c.pull[0].bucket(), Bucket::Ip);
        assert_eq!(
            (c.pull[0].window_ms(), c.pull[0].max_requests()),
            (100.0, 2.0)
        );
        assert_eq!(c.list.len(), 2);
        assert_eq!(c.list[0].bucket(), Bucket::Identity);
        assert_eq!(
            (c.list[0].window_ms(), c.list[0].max_requests()),
            (100.0, 4.0)
        );
        assert_eq!(c.list[1].bucket(), Bucket::Ip);
        assert_eq!(
            (c.list[1].window_ms(), c.list[1].max_requests()),
            (50.0, 5.0)
        );
        assert_eq!(c.push.len(), 1, "implicit push rule from flat + global");
        // Bundle members: push only.
        let l = limits(&format!(
            r#"{{"collections":[{{"name":"m","bundle":"b",{COL},"rateLimit":{{"pull":{{"windowMs":1,"maxRequests":1}},"push":{{"windowMs":1,"maxRequests":1}}}}}}]}}"#
        ));
        let c = l.collection(None, "m").unwrap();
        assert_eq!((c.push.len(), c.pull.len()), (1, 0));
        // Namespaced collections have their own counters.
        let l = limits(&format!(
            r#"{{"collections":[{{"name":"c",{COL}}}],"namespaces":{{"n":{{"collections":[{{"name":"c",{COL},"rateLimit":{{"pull":{{"windowMs":1,"maxRequests":1}}}}}}]}}}}}}"#
        ));
        assert!(l.collection(None, "c").is_none());
        assert!(l.applies(Some("n"), "c", RateAction::Pull));
        assert!(!l.applies(Some("n"), "c", RateAction::Push));
    }

    #[test]
    fn buckets_and_two_dimensions() {
        let l = limits(&format!(
            r#"{{"collections":[{{"name":"c",{COL},"rateLimit":{{"windowMs":60000,
              "pull":{{"maxRequests":2}},
              "push":{{"maxRequests":2,"bucket":"ip"}},
              "list":{{"identity":{{"maxRequests":2}},"ip":{{"maxRequests":3}}}}}}}}]}}"#
        ));
        let a = who(Some("alice"), "10.0.0.1");
        let b = who(Some("bob"), "10.0.0.1");
        let anon1 = who(None, "10.0.0.1");
        let anon2 = who(Some(""), "10.0.0.2");
        // identity: one budget per identity; anonymous callers by address.
        assert_eq!(
            run(&l, None, "c", RateAction::Pull, &a, 3),
            [true, true, false]
        );
        assert_eq!(run(&l, None, "c", RateAction::Pull, &b, 2), [true, true]);
        assert_eq!(
            run(&l, None, "c", RateAction::Pull, &anon1, 3),
            [true, true, false]
        );
        assert_eq!(
            run(&l, None, "c", RateAction::Pull, &anon2, 2),
            [true, true]
        );
        // ip: identities share their address's budget.
        assert_eq!(run(&l, None, "c", RateAction::Push, &a, 2), [true, true]);
        assert_eq!(run(&l, None, "c", RateAction::Push, &b, 1), [false]);
        // two dimensions: 2 per identity AND 3 per address.
        assert_eq!(
            run(&l, None, "c", RateAction::List, &a, 3),
            [true, true, false]
        );
        assert_eq!(
            run(&l, None, "c", RateAction::List, &b, 1),
            [false],
            "4th from the address"
        );
        let c = who(Some("carol"), "10.0.0.9");
        assert_eq!(run(&l, None, "c", RateAction::List, &c, 2), [true, true]);
    }

    #[test]
    fn identity_plus_ip_is_per_pair() {
        let lim = Limiter::new(1000.0, 1.0, Bucket::IdentityIp, 100);
        assert!(lim.hit(&who(Some("a"), "10.0.0.1"), 0.0));
        assert!(lim.hit(&who(Some("a"), "10.0.0.2"), 0.0));
        assert!(lim.hit(&who(Some("b"), "10.0.0.1"), 0.0));
        assert!(lim.hit(&who(None, "10.0.0.1"), 0.0));
        assert!(!lim.hit(&who(Some("a"), "10.0.0.1"), 0.0));
        assert!(!lim.hit(&who(Some(""), "10.0.0.1"), 0.0), "'' is anonymous");
    }

    #[test]
    fn fixed_windows() {
        let lim = Limiter::new(1000.0, 2.0, Bucket::Identity, 100);
        let a = who(Some("a"), "10.0.0.1");
        assert!(lim.hit(&a, 0.0));
        assert!(lim.hit(&a, 500.0));
        assert!(!lim.hit(&a, 999.0));
        assert!(!lim.hit(&a, 999.0), "refused requests count too");
        assert!(lim.hit(&a, 1000.0), "the window opened at 0 ends at 1000");
        assert!(lim.hit(&a, 1500.0));
        assert!(!lim.hit(&a, 1999.0));
        // NaN maximum never refuses; NaN window never ends.
        let nan_max = Limiter::new(1000.0, f64::NAN, Bucket::Identity, 10);
        assert!((0..50).all(|_| nan_max.hit(&a, 0.0)));
        let nan_window = Limiter::new(f64::NAN, 1.0, Bucket::Identity, 10);
        assert!(nan_window.hit(&a, 0.0));
        assert!(!nan_window.hit(&a, 1e15));
    }

    #[test]
    fn rotating_callers_cannot_grow_the_table() {
        let max = 1_000;
        let lim = Limiter::new(60_000.0, 5.0, Bucket::IdentityIp, max);
        let mut peak_bytes = 0;
        for i in 0..50_000u32 {
            let id = format!("attacker-{i}-{}", "x".repeat((i % 97) as usize));
            let ip = IpAddr::from(i.to_be_bytes());
            let caller = Caller {
                identity: Some(&id),
                ip: Some(ip),
            };
            assert!(lim.hit(&caller, f64::from(i)), "a fresh bucket admits");
            let t = lim.table.lock().unwrap();
            assert!(t.map.len() <= max);
            assert!(t.order.len() <= 2 * max);
            peak_bytes = peak_bytes.max(t.heap_bytes());
        }
        assert_eq!(lim.buckets(), max);
        // The documented bound: at most BYTES_PER_BUCKET per bucket of the limit.
        assert!(
            peak_bytes <= BYTES_PER_BUCKET * max,
            "{peak_bytes} bytes for {max} buckets"
        );
        // A legitimate bucket created before the flood was dropped (its
        // count restarted), never the other way round: a fresh caller is
        // always admitted, so the bound cannot lock anyone out.
        let late = who(Some("late"), "192.0.2.1");
        assert!(lim.hit(&late, 50_000.0));
    }

    #[test]
    fn expired_buckets_are_reclaimed_before_evicting() {
        let lim = Limiter::new(100.0, 1.0, Bucket::Identity, 3);
        let ids = ["a", "b", "c"];
        for id in ids {
            assert!(lim.hit(&who(Some(id), "10.0.0.1"), 0.0));
        }
        // "b" and "c" over budget at t=50.
        assert!(!lim.hit(&who(Some("b"), "10.0.0.1"), 50.0));
        // At t=100 every window has ended: a new caller reclaims all of them.
        assert!(lim.hit(&who(Some("d"), "10.0.0.1"), 100.0));
        assert_eq!(lim.buckets(), 1);
        // Clock going backwards: stale order items never break the bound.
        for t in (0..200).rev() {
            lim.hit(
                &who(Some(["x", "y", "z", "w"][t % 4]), "10.0.0.1"),
                t as f64 * 1000.0,
            );
            let tb = lim.table.lock().unwrap();
            assert!(tb.map.len() <= 3 && tb.order.len() <= 6);
        }
    }
}
