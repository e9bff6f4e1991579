//! [`CacheStore`]: a bounded cache of hot documents in front of a store
//! that one process owns (the filesystem store), sized in bytes
//! (`serve --cache-bytes N`, 0 turns it off).
//!
//! A pull of a cached document reads no file and, because
//! [`Store::peek`] answers a hit without blocking, is not handed to the
//! blocking thread pool either: the server answers it inline, from the
//! cached [`SharedDoc`] (whose memo keeps the checked envelope, so the
//! document is not scanned again either).
//!
//! ## What is cached
//!
//! Documents only (binary values pass through), filled by reads
//! ([`Store::get_shared`], [`Store::get`]) and by writes that complete
//! alone ([`Store::put`], [`Store::swap`]: appends; a push, a deferred
//! swap, drops the key and the next read fills it). Replacement is CLOCK
//! (second chance): a hit sets the entry's reference bit under a read
//! lock; an insert that goes over the budget sweeps the ring, clearing set
//! bits and evicting the first entry found clear. An entry counts its
//! bytes, its key and a fixed overhead ([`ENTRY_OVERHEAD`]) against the
//! budget; a document larger than an eighth of the budget is not cached.
//! Absent keys are not remembered.
//!
//! ## Coherence
//!
//! Every write goes through this wrapper ([`Store::put`], [`Store::swap`],
//! [`Store::put_bytes`], [`Store::delete`], so pushes, appends, TTL sweeps
//! and the replica alike), which must be the only writer of the store
//! below: that is why the server never puts it in front of a database that
//! several nodes write ([`postgres`](super)), nor needs it for the memory
//! store. Writes are not serialised here; instead each key hashes to one
//! of [`STRIPES`] stripes, each with a generation counter, bumped when a
//! write starts and when it ends, and a count of the writes in flight:
//!
//! * a read that missed inserts what it read only if no write of its
//!   stripe was in flight and the generation did not move while it read
//!   (no write started or ended in between), so a value read before a
//!   write landed is never cached after that write, and two reads on
//!   either side of the moment the store applies a write cannot cache the
//!   new value and then the old one;
//! * a write that ends caches its value only if the generation is still
//!   the one its start set (no other write of the stripe overlapped it, so
//!   its value is what the store holds); otherwise, and after any failed
//!   or refused write, the key is dropped from the cache and the next read
//!   fills it from the store.
//!
//! Every write therefore ends by leaving the cache either empty for its
//! key or holding the store's value; a stale read inserted while a write
//! was in flight is replaced or dropped when that write ends.
//!
//! A deferred swap ([`Store::swap_deferred`], a push on the filesystem
//! store) drops its key when it starts and ends when its [`Pending`]
//! resolves, not when the call returns: the store applies the write to
//! its files only then. Until that moment its stripe counts it in flight;
//! when it resolves the key is dropped again and the generation bumped,
//! so the next read fills the cache from the files that now hold the new
//! value. A `Pending` dropped unresolved (a cancelled push) is waited for
//! on a thread of its own, which ends the write when the store has it; a
//! write whose code unwinds ends as one that failed.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use std::sync::Mutex;
use std::task::{Context, Poll};

use super::{Completion, Pending, SharedDoc, Store, StoreError, StoreUsage};

/// Generation counters, by key hash (see the module docs).
pub const STRIPES: usize = 256;

/// Bytes counted per entry besides the document and the key: the ring
/// slot, the map entry, the shared value's header.
pub const ENTRY_OVERHEAD: usize = 96;

/// The default budget of `serve --cache-bytes` (4 MiB).
pub const DEFAULT_CACHE_BYTES: usize = 4 * 1024 * 1024;

/// A bounded document cache over `inner` (module docs).
pub struct CacheStore {
    inner: Arc<dyn Store>,
    budget: usize,
    /// Largest document cached.
    max_entry: usize,
    state: Arc<RwLock<Ring>>,
    stripes: Arc<[Stripe]>,
    hasher: std::collections::hash_map::RandomState,
    hits: AtomicU64,
    misses: AtomicU64,
}

/// The write bookkeeping of the keys that hash to one stripe (module docs).
#[derive(Default)]
struct Stripe {
    /// Bumped when a write starts and when it ends.
    generation: AtomicU64,
    /// Writes started and not yet ended.
    in_flight: AtomicU64,
}

/// The cached entries: a map to ring slots, the CLOCK hand.
#[derive(Default)]
struct Ring {
    map: HashMap<Arc<str>, usize>,
    slots: Vec<Slot>,
    free: Vec<usize>,
    hand: usize,
    bytes: usize,
}

struct Slot {
    /// `None`: free.
    entry: Option<(Arc<str>, SharedDoc)>,
    referenced: AtomicBool,
    size: usize,
}

/// What a cache answered, for the counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Bytes counted against the budget.
    pub bytes: u64,
    /// Documents held.
    pub entries: u64,
    /// Reads answered from the cache.
    pub hits: u64,
    /// Reads that went to the store below.
    pub misses: u64,
}

impl CacheStore {
    /// Cache up to `budget` bytes of `inner`'s documents. `inner` must be
    /// written only through this wrapper.
    pub fn new(inner: Arc<dyn Store>, budget: usize) -> Self {
        CacheStore {
            inner,
            budget,
            max_entry: budget / 8,
            state: Arc::new(RwLock::new(Ring::default())),
            stripes: (0..STRIPES).map(|_| Stripe::default()).collect(),
            hasher: Default::default(),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    /// What the cache holds and has answered.
    pub fn stats(&self) -> CacheStats {
        let ring = self.read();
        CacheStats {
            bytes: ring.bytes as u64,
            entries: ring.map.len() as u64,
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
        }
    }

    // Every mutation of the ring completes before its lock is released or
    // cannot panic half-way: poisoning is ignored.
    fn read(&self) -> RwLockReadGuard<'_, Ring> {
        self.state.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, Ring> {
        self.state.write().unwrap_or_else(PoisonError::into_inner)
    }

    fn stripe(&self, key: &str) -> usize {
        (self.hasher.hash_one(key) % STRIPES as u64) as usize
    }

    /// A write of `key` starts: its stripe counts it in flight until its
    /// [`WriteEnd`] runs. Answers the generation the start set.
    fn begin(&self, key: &str) -> (WriteEnd, u64) {
        let stripe = self.stripe(key);
        let s = &self.stripes[stripe];
        s.in_flight.fetch_add(1, Ordering::AcqRel);
        let started = s.generation.fetch_add(1, Ordering::AcqRel) + 1;
        let end = WriteEnd {
            state: self.state.clone(),
            stripes: self.stripes.clone(),
            stripe,
            key: key.into(),
        };
        (end, started)
    }

    fn lookup(&self, key: &str) -> Option<SharedDoc> {
        let ring = self.read();
        let &i = ring.map.get(key)?;
        let slot = &ring.slots[i];
        slot.referenced.store(true, Ordering::Relaxed);
        slot.entry.as_ref().map(|(_, d)| d.clone())
    }

    /// A read: the cached value, or the store's, cached if no write of
    /// its stripe was in flight, started or ended meanwhile.
    fn read_through(&self, key: &str) -> Result<Option<SharedDoc>, StoreError> {
        if let Some(d) = self.lookup(key) {
            self.hits.fetch_add(1, Ordering::Relaxed);
            return Ok(Some(d));
        }
        self.misses.fetch_add(1, Ordering::Relaxed);
        let stripe = &self.stripes[self.stripe(key)];
        let before = stripe.generation.load(Ordering::Acquire);
        let got = self.inner.get_shared(key)?;
        if let Some(d) = &got {
            let mut ring = self.write();
            if stripe.generation.load(Ordering::Acquire) == before
                && stripe.in_flight.load(Ordering::Acquire) == 0
            {
                self.insert(&mut ring, key, d.clone());
            }
        }
        Ok(got)
    }

    /// A write: `work` writes `key` in the store below and answers what
    /// the key holds afterwards if it wrote a document (`Some(doc)`), or
    /// `None` when it wrote something else, nothing, or failed.
    fn write_through<T>(
        &self,
        key: &str,
        work: impl FnOnce(&dyn Store) -> Result<(T, Option<SharedDoc>), StoreError>,
    ) -> Result<T, StoreError> {
        let (end, started) = self.begin(key);
        // Should `work` panic, the write still ends (dropping the key).
        let end = EndOnUnwind(Some(end));
        let result = work(&*self.inner);
        let end = end.disarm();
        let mut ring = self.write();
        match &result {
            Ok((_, Some(doc)))
                if self.stripes[end.stripe].generation.load(Ordering::Acquire) == started =>
            {
                self.insert(&mut ring, key, doc.clone());
            }
            _ => Self::remove(&mut ring, key),
        }
        end.bump();
        drop(ring);
        result.map(|(t, _)| t)
    }

    fn insert(&self, ring: &mut Ring, key: &str, doc: SharedDoc) {
        let size = doc.footprint() + key.len() + ENTRY_OVERHEAD;
        if size > self.max_entry {
            Self::remove(ring, key);
            return;
        }
        if let Some(&i) = ring.map.get(key) {
            let slot = &mut ring.slots[i];
            let old = std::mem::replace(&mut slot.size, size);
            if let Some((_, d)) = slot.entry.as_mut() {
                *d = doc;
            }
            slot.referenced.store(true, Ordering::Relaxed);
            ring.bytes = ring.bytes - old + size;
        } else {
            let key: Arc<str> = Arc::from(key);
            let slot = Slot {
                entry: Some((key.clone(), doc)),
                referenced: AtomicBool::new(true),
                size,
            };
            let i = match ring.free.pop() {
                Some(i) => {
                    ring.slots[i] = slot;
                    i
                }
                None => {
                    ring.slots.push(slot);
                    ring.slots.len() - 1
                }
            };
            ring.map.insert(key, i);
            ring.bytes += size;
        }
        while ring.bytes > self.budget {
            Self::evict_one(ring);
        }
    }

    /// Advance the hand to the first entry without its reference bit
    /// (clearing the bits it passes) and evict it.
    fn evict_one(ring: &mut Ring) {
        if ring.map.is_empty() {
            ring.bytes = 0;
            return;
        }
        loop {
            let i = ring.hand;
            ring.hand = (ring.hand + 1) % ring.slots.len();
            let slot = &mut ring.slots[i];
            if slot.entry.is_none() {
                continue;
            }
            if slot.referenced.swap(false, Ordering::Relaxed) {
                continue;
            }
            if let Some((key, _)) = slot.entry.take() {
                ring.bytes -= slot.size;
                ring.map.remove(&key);
                ring.free.push(i);
            }
            return;
        }
    }

    fn remove(ring: &mut Ring, key: &str) {
        if let Some(i) = ring.map.remove(key) {
            let slot = &mut ring.slots[i];
            slot.entry = None;
            ring.bytes -= slot.size;
            ring.free.push(i);
        }
    }
}

impl Store for CacheStore {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.read_through(key)?.map(|d| d.bytes().to_vec()))
    }

    fn get_shared(&self, key: &str) -> Result<Option<SharedDoc>, StoreError> {
        self.read_through(key)
    }

    fn peek(&self, key: &str) -> Option<Result<Option<SharedDoc>, StoreError>> {
        let d = self.lookup(key)?;
        self.hits.fetch_add(1, Ordering::Relaxed);
        Some(Ok(Some(d)))
    }

    fn put(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        self.write_through(key, |s| {
            s.put(key, value)?;
            Ok(((), Some(SharedDoc::from(value))))
        })
    }

    fn swap(&self, key: &str, expected: Option<&[u8]>, value: &[u8]) -> Result<bool, StoreError> {
        self.write_through(key, |s| {
            let wrote = s.swap(key, expected, value)?;
            Ok((wrote, wrote.then(|| SharedDoc::from(value))))
        })
    }

    fn swap_deferred(
        &self,
        key: &str,
        expected: Option<&[u8]>,
        value: &[u8],
    ) -> Result<Option<Pending>, StoreError> {
        let (end, _) = self.begin(key);
        // The key leaves the cache now: should the write's end never run
        // (its `Pending` dropped and no thread to wait for it), the stripe
        // keeps counting it in flight and no read caches the key again.
        Self::remove(&mut self.write(), key);
        match self.inner.swap_deferred(key, expected, value) {
            Ok(Some(pending)) => Ok(Some(Pending::queued(Arc::new(Uncache {
                pending: Mutex::new(Some(pending)),
                end,
            })))),
            other => {
                end.finish();
                other
            }
        }
    }

    fn exclusive(&self, key: &str, work: &mut dyn FnMut()) -> Result<(), StoreError> {
        self.inner.exclusive(key, work)
    }

    fn schedule_lease(&self) -> bool {
        self.inner.schedule_lease()
    }

    fn get_bytes(&self, key: &str) -> Result<Option<(Vec<u8>, String)>, StoreError> {
        self.inner.get_bytes(key)
    }

    fn put_bytes(&self, key: &str, bytes: &[u8], media_type: &str) -> Result<(), StoreError> {
        self.write_through(key, |s| Ok((s.put_bytes(key, bytes, media_type)?, None)))
    }

    fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.write_through(key, |s| Ok((s.delete(key)?, None)))
    }

    fn list_keys(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<String>, StoreError> {
        self.inner.list_keys(prefix, start_after, limit)
    }

    fn value_size(&self, key: &str) -> Result<Option<u64>, StoreError> {
        self.inner.value_size(key)
    }

    fn measure(&self) -> Result<StoreUsage, StoreError> {
        self.inner.measure()
    }
}

/// The end of a write ([`CacheStore::begin`]).
#[derive(Clone)]
struct WriteEnd {
    state: Arc<RwLock<Ring>>,
    stripes: Arc<[Stripe]>,
    stripe: usize,
    key: Box<str>,
}

impl WriteEnd {
    /// The end of a write whose value is not cached: the key is dropped
    /// and the stripe's generation bumped, under the ring's lock.
    fn finish(&self) {
        let mut ring = self.state.write().unwrap_or_else(PoisonError::into_inner);
        CacheStore::remove(&mut ring, &self.key);
        self.bump();
    }

    /// The stripe's bookkeeping of the end (the caller holds the ring's
    /// lock and has settled the key's entry).
    fn bump(&self) {
        let s = &self.stripes[self.stripe];
        s.generation.fetch_add(1, Ordering::AcqRel);
        s.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Ends a write if the code between its start and its end unwinds.
struct EndOnUnwind(Option<WriteEnd>);

impl EndOnUnwind {
    fn disarm(mut self) -> WriteEnd {
        self.0.take().expect("armed once")
    }
}

impl Drop for EndOnUnwind {
    fn drop(&mut self) {
        if let Some(end) = self.0.take() {
            end.finish();
        }
    }
}

/// A deferred write seen through the cache: the store's [`Pending`], and
/// the write's end once it resolves (module docs).
struct Uncache {
    pending: Mutex<Option<Pending>>,
    end: WriteEnd,
}

impl Uncache {
    fn take(&self) -> Option<Pending> {
        self.pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }
}

/// A deferred write dropped before it resolved (its push was cancelled)
/// still lands in the store below: a thread waits for it and ends it
/// there, so the key is cached again only after the store holds the new
/// value.
impl Drop for Uncache {
    fn drop(&mut self) {
        let Some(pending) = self.take() else {
            return;
        };
        let end = self.end.clone();
        let waiter = std::thread::Builder::new()
            .name("starfish-uncache".into())
            .spawn(move || {
                let _ = pending.wait();
                end.finish();
            });
        if let Err(e) = waiter {
            log::warn!("cache: cannot wait for a dropped write ({e}); its key is not cached again");
        }
    }
}

impl Completion for Uncache {
    fn poll_done(&self, cx: &mut Context<'_>) -> Poll<Result<(), StoreError>> {
        let mut slot = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(pending) = slot.as_mut() else {
            return Poll::Ready(Err(super::polled_twice()));
        };
        let outcome = std::future::Future::poll(std::pin::Pin::new(pending), cx);
        if outcome.is_ready() {
            *slot = None;
            drop(slot);
            self.end.finish();
        }
        outcome
    }

    fn wait_done(&self) -> Result<(), StoreError> {
        let Some(pending) = self.take() else {
            return Err(super::polled_twice());
        };
        let outcome = pending.wait();
        self.end.finish();
        outcome
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemoryStore;

    fn doc(n: usize, b: u8) -> Vec<u8> {
        vec![b; n]
    }

    #[test]
    fn reads_fill_writes_replace_and_deletes_drop() {
        let below = Arc::new(MemoryStore::new());
        let c = CacheStore::new(below.clone(), 1 << 20);
        below.put("a", b"1").unwrap();
        assert!(c.peek("a").is_none(), "not cached yet");
        assert_eq!(c.get("a").unwrap().as_deref(), Some(&b"1"[..]));
        let hit = c.peek("a").unwrap().unwrap().unwrap();
        assert_eq!(hit.bytes(), b"1");
        assert_eq!(c.stats().hits, 1);
        assert_eq!(c.stats().misses, 1);
        // The same value each time (its memo lasts).
        let again = c.get_shared("a").unwrap().unwrap();
        assert!(SharedDoc::ptr_eq(&hit, &again));

        c.put("a", b"2").unwrap();
        assert_eq!(c.peek("a").unwrap().unwrap().unwrap().bytes(), b"2");
        assert!(!c.swap("a", Some(b"1"), b"3").unwrap());
        assert_eq!(c.get("a").unwrap().as_deref(), Some(&b"2"[..]));
        assert!(c.swap("a", Some(b"2"), b"3").unwrap());
        assert_eq!(c.peek("a").unwrap().unwrap().unwrap().bytes(), b"3");
        c.put_bytes("a", b"xx", "image/png").unwrap();
        assert!(c.peek("a").is_none());
        assert_eq!(c.get("a").unwrap(), None);
        assert_eq!(
            c.get_bytes("a").unwrap(),
            Some((b"xx".to_vec(), "image/png".into()))
        );
        c.put("a", b"4").unwrap();
        c.delete("a").unwrap();
        assert!(c.peek("a").is_none());
        assert_eq!(c.get("a").unwrap(), None);
        assert_eq!(c.stats().entries, 0);
        assert_eq!(c.stats().bytes, 0);
    }

    #[test]
    fn the_budget_holds_and_hot_entries_stay() {
        let below = Arc::new(MemoryStore::new());
        let budget = 64 * 1024;
        let c = CacheStore::new(below.clone(), budget);
        for i in 0..200 {
            c.put(&format!("k{i}"), &doc(1000, b'x')).unwrap();
            // k0 is read between every write: always referenced.
            assert!(c.get_shared("k0").unwrap().is_some());
            assert!(c.stats().bytes as usize <= budget);
        }
        assert!(c.peek("k0").is_some(), "the hot entry survived");
        assert!(c.peek("k1").is_none(), "a cold one was evicted");
        let s = c.stats();
        assert!(s.entries > 10 && (s.bytes as usize) > budget / 2, "{s:?}");
        // Too large for a slot: passes through, never cached.
        c.put("big", &doc(budget / 4, b'y')).unwrap();
        assert!(c.peek("big").is_none());
        assert_eq!(c.get("big").unwrap().unwrap().len(), budget / 4);
        assert!(c.peek("big").is_none());
    }

    type Hook = std::sync::Mutex<Option<Box<dyn FnOnce() + Send>>>;

    /// A store whose `put` runs a hook in the middle of the write, and
    /// whose `get` runs one after reading (before answering).
    struct Racy {
        inner: MemoryStore,
        during_put: Hook,
        after_get: Hook,
    }

    impl Store for Racy {
        fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
            let got = self.inner.get(key);
            let hook = self.after_get.lock().unwrap().take();
            if let Some(h) = hook {
                h();
            }
            got
        }
        fn put(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
            let hook = self.during_put.lock().unwrap().take();
            if let Some(h) = hook {
                h();
            }
            self.inner.put(key, value)
        }
        fn get_bytes(&self, key: &str) -> Result<Option<(Vec<u8>, String)>, StoreError> {
            self.inner.get_bytes(key)
        }
        fn put_bytes(&self, key: &str, b: &[u8], m: &str) -> Result<(), StoreError> {
            self.inner.put_bytes(key, b, m)
        }
        fn delete(&self, key: &str) -> Result<(), StoreError> {
            self.inner.delete(key)
        }
        fn list_keys(&self, p: &str, a: Option<&str>, l: usize) -> Result<Vec<String>, StoreError> {
            self.inner.list_keys(p, a, l)
        }
    }

    #[test]
    fn a_read_during_a_write_never_leaves_the_old_value_cached() {
        let racy = Arc::new(Racy {
            inner: MemoryStore::new(),
            during_put: Default::default(),
            after_get: Default::default(),
        });
        racy.inner.put("k", b"old").unwrap();
        let c = Arc::new(CacheStore::new(racy.clone(), 1 << 20));
        // While the write is in flight, a reader reads (and may cache) the
        // old value; when the write ends the cache holds the new one.
        let reader = c.clone();
        *racy.during_put.lock().unwrap() = Some(Box::new(move || {
            assert_eq!(reader.get("k").unwrap().as_deref(), Some(&b"old"[..]));
        }));
        c.put("k", b"new").unwrap();
        assert_eq!(c.peek("k").unwrap().unwrap().unwrap().bytes(), b"new");

        // Two overlapping writes: neither may cache its value.
        let inner_writer = c.clone();
        *racy.during_put.lock().unwrap() = Some(Box::new(move || {
            inner_writer.put("k", b"second").unwrap();
        }));
        c.put("k", b"first").unwrap();
        assert!(c.peek("k").is_none(), "overlapping writes cache nothing");
        assert_eq!(c.get("k").unwrap().as_deref(), Some(&b"first"[..]));

        // A read that missed, read the old value, and lost the race to a
        // whole write: what it read is not cached.
        c.delete("k").unwrap();
        racy.inner.put("k", b"old").unwrap();
        let writer = c.clone();
        *racy.after_get.lock().unwrap() = Some(Box::new(move || {
            writer.put("k", b"new").unwrap();
        }));
        assert_eq!(c.get("k").unwrap().as_deref(), Some(&b"old"[..]));
        assert_eq!(c.get("k").unwrap().as_deref(), Some(&b"new"[..]));
    }

    /// A store whose deferred swaps apply only when the test releases
    /// them (as the filesystem store applies a batch after its log sync).
    struct Gated {
        inner: Arc<MemoryStore>,
        gate: Arc<Gate>,
    }

    struct Gate {
        store: Arc<MemoryStore>,
        queued: Mutex<Option<(String, Vec<u8>)>>,
        released: std::sync::atomic::AtomicBool,
    }

    impl Completion for Gate {
        fn poll_done(&self, _cx: &mut Context<'_>) -> Poll<Result<(), StoreError>> {
            if !self.released.load(Ordering::SeqCst) {
                return Poll::Pending;
            }
            if let Some((k, v)) = self.queued.lock().unwrap().take() {
                self.store.put(&k, &v)?;
            }
            Poll::Ready(Ok(()))
        }
        fn wait_done(&self) -> Result<(), StoreError> {
            let waker = std::task::Waker::noop();
            match self.poll_done(&mut Context::from_waker(waker)) {
                Poll::Ready(r) => r,
                Poll::Pending => panic!("waited before the release"),
            }
        }
    }

    impl Store for Gated {
        fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
            self.inner.get(key)
        }
        fn put(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
            self.inner.put(key, value)
        }
        fn swap_deferred(
            &self,
            key: &str,
            expected: Option<&[u8]>,
            value: &[u8],
        ) -> Result<Option<Pending>, StoreError> {
            if self.inner.get(key)?.as_deref() != expected {
                return Ok(None);
            }
            *self.gate.queued.lock().unwrap() = Some((key.into(), value.to_vec()));
            Ok(Some(Pending::queued(self.gate.clone())))
        }
        fn get_bytes(&self, key: &str) -> Result<Option<(Vec<u8>, String)>, StoreError> {
            self.inner.get_bytes(key)
        }
        fn put_bytes(&self, key: &str, b: &[u8], m: &str) -> Result<(), StoreError> {
            self.inner.put_bytes(key, b, m)
        }
        fn delete(&self, key: &str) -> Result<(), StoreError> {
            self.inner.delete(key)
        }
        fn list_keys(&self, p: &str, a: Option<&str>, l: usize) -> Result<Vec<String>, StoreError> {
            self.inner.list_keys(p, a, l)
        }
    }

    /// A cache over a [`Gated`] memory store holding `k` = `old`: the
    /// store below, its gate, the cache.
    fn gated() -> (Arc<MemoryStore>, Arc<Gate>, CacheStore) {
        let mem = Arc::new(MemoryStore::new());
        let gate = Arc::new(Gate {
            store: mem.clone(),
            queued: Mutex::new(None),
            released: Default::default(),
        });
        let below = Arc::new(Gated {
            inner: mem.clone(),
            gate: gate.clone(),
        });
        mem.put("k", b"old").unwrap();
        (mem, gate, CacheStore::new(below, 1 << 20))
    }

    #[test]
    fn a_deferred_swap_leaves_no_stale_value_once_it_resolves() {
        for awaited in [false, true] {
            let (mem, gate, c) = gated();
            assert_eq!(c.get("k").unwrap().as_deref(), Some(&b"old"[..]));
            assert!(c.peek("k").is_some());
            // A refused swap drops nothing the store does not hold.
            assert!(c
                .swap_deferred("k", Some(b"other"), b"x")
                .unwrap()
                .is_none());
            assert_eq!(c.get("k").unwrap().as_deref(), Some(&b"old"[..]));

            let pending = c.swap_deferred("k", Some(b"old"), b"new").unwrap().unwrap();
            // Until it resolves the store holds the old value: a read gets
            // it, and nothing is cached while the write is in flight (a read
            // after the store applied it and before it resolved would
            // otherwise cache the new value, and an older read the old one).
            assert!(c.peek("k").is_none(), "dropped when the write started");
            assert_eq!(c.get("k").unwrap().as_deref(), Some(&b"old"[..]));
            assert!(c.peek("k").is_none(), "not cached while in flight");
            mem.put("k", b"applied early").unwrap();
            assert_eq!(c.get("k").unwrap().as_deref(), Some(&b"applied early"[..]));
            assert!(c.peek("k").is_none(), "not cached while in flight");
            gate.released.store(true, Ordering::SeqCst);
            if awaited {
                futures_lite::future::block_on(pending).unwrap();
            } else {
                pending.wait().unwrap();
            }
            // ... but once it resolved, the cache answers the new value.
            assert!(c.peek("k").is_none(), "the old value was dropped");
            assert_eq!(c.get("k").unwrap().as_deref(), Some(&b"new"[..]));
            assert_eq!(c.peek("k").unwrap().unwrap().unwrap().bytes(), b"new");
        }
    }

    #[test]
    fn a_dropped_deferred_swap_still_ends_once_the_store_applies_it() {
        let (_, gate, c) = gated();
        assert_eq!(c.get("k").unwrap().as_deref(), Some(&b"old"[..]));
        let pending = c.swap_deferred("k", Some(b"old"), b"new").unwrap().unwrap();
        assert_eq!(c.get("k").unwrap().as_deref(), Some(&b"old"[..]));
        // The push is cancelled: its Pending is dropped, never polled. The
        // write still lands below, and the key is cached again after it.
        gate.released.store(true, Ordering::SeqCst);
        drop(pending);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while c.get("k").unwrap().as_deref() != Some(&b"new"[..]) {
            assert!(
                std::time::Instant::now() < deadline,
                "the dropped write never landed"
            );
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        while c.peek("k").is_none() {
            assert!(
                std::time::Instant::now() < deadline,
                "the key is never cached again"
            );
            c.get("k").unwrap();
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert_eq!(c.peek("k").unwrap().unwrap().unwrap().bytes(), b"new");
    }

    #[test]
    fn a_write_that_panics_still_ends() {
        let c = CacheStore::new(Arc::new(MemoryStore::new()), 1 << 20);
        c.put("k", b"old").unwrap();
        assert!(c.peek("k").is_some());
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            c.write_through::<()>("k", |s| {
                s.put("k", b"new").unwrap();
                panic!("store bug after the write");
            })
        }));
        assert!(r.is_err());
        // The old value is not served, and the stripe fills again.
        assert!(c.peek("k").is_none());
        assert_eq!(c.get("k").unwrap().as_deref(), Some(&b"new"[..]));
        assert_eq!(c.peek("k").unwrap().unwrap().unwrap().bytes(), b"new");
    }
}
