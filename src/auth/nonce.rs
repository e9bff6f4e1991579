//! The nonce replay cache: each `(signer, nonce)` pair is accepted once per
//! window.
//!
//! Bounded in memory: at most `per_signer_limit` live nonces per signing key
//! and `max_entries` in total. When a bound is reached new nonces are
//! *rejected*; a nonce still inside its window is never evicted (evicting it
//! would reopen a replay). Expiry is amortised O(1): entries sit in a queue in
//! insertion order and are dropped from its front as they expire, with no
//! full scans. Entries are keyed by a 128-bit digest of `(signer, nonce)`, so
//! an entry costs a few dozen bytes whatever the header sizes.

use crate::proto::hash::sha256;
use crate::timer_wheel::TimerWheel;
use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// A replay ledger shared by several nodes (the PostgreSQL store's
/// `starfish_nonces` table): a request replayed to another node is refused
/// as a replay to the same node is. Consulted after the node's own
/// [`NonceCache`], whose bounds (per signer and in total) keep the shared
/// ledger bounded too: each node admits at most `max_entries` live nonces.
///
/// Both calls are futures: a database round trip is awaited on the
/// connection's task, never run on (and blocking) an executor thread.
pub trait NonceLedger: Send + Sync {
    /// Remember `(signer, nonce)` until `expires_ms`; `Ok(false)` if it is
    /// already remembered and not yet expired (a replay).
    fn check_and_remember<'a>(
        &'a self,
        signer: &'a str,
        nonce: &'a str,
        now_ms: i64,
        expires_ms: i64,
    ) -> LedgerFuture<'a, bool>;

    /// Forget every entry that expired before `now_ms`; how many were.
    fn sweep(&self, now_ms: i64) -> LedgerFuture<'_, u64>;
}

/// What a [`NonceLedger`] call returns.
pub type LedgerFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, LedgerError>> + Send + 'a>>;

/// A signed request's nonce still to be checked against the shared ledger:
/// the resolver accepted everything else; [`crate::auth::Resolver::confirm`]
/// awaits the ledger before the request is let in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SharedNonceCheck {
    pub signer: String,
    pub nonce: String,
    pub now_ms: i64,
    pub expires_ms: i64,
}

/// How often expired rows of a shared ledger are swept ([`sweep_shared`]).
pub const SHARED_SWEEP_EVERY: Duration = Duration::from_secs(60);

/// Sweep `ledger`'s expired entries every `every`, on a [`TimerWheel`]
/// (the first sweep one interval after start). Runs until dropped; a
/// failed sweep is logged and tried again at the next tick.
pub async fn sweep_shared(ledger: Arc<dyn NonceLedger>, every: Duration) {
    let origin = Instant::now();
    let mono = move || origin.elapsed().as_millis() as u64;
    let every_ms = (every.as_millis().min(u128::from(u64::MAX)) as u64).max(1);
    let mut wheel: TimerWheel<()> = TimerWheel::new(mono());
    wheel.insert(mono() + every_ms, ());
    let mut due = Vec::new();
    loop {
        if let Some(at) = wheel.next_wake() {
            let wait = at.saturating_sub(mono());
            if wait > 0 {
                async_io::Timer::after(Duration::from_millis(wait)).await;
            }
        }
        wheel.advance(mono(), &mut due);
        if due.drain(..).count() > 0 {
            let now_ms = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as i64);
            match ledger.sweep(now_ms).await {
                Ok(n) if n > 0 => log::debug!("swept {n} expired shared nonce(s)"),
                Ok(_) => {}
                Err(e) => log::warn!("sweeping expired shared nonces: {e}"),
            }
            wheel.insert(mono() + every_ms, ());
        }
    }
}

/// The shared ledger could not be consulted (the request is refused: fail
/// closed).
#[derive(Debug)]
pub struct LedgerError(pub String);

impl fmt::Display for LedgerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "shared nonce ledger: {}", self.0)
    }
}

impl std::error::Error for LedgerError {}

/// Limits of the nonce cache. The defaults are the official server's.
#[derive(Clone, Copy, Debug)]
pub struct NonceCacheConfig {
    /// How long an accepted nonce is remembered, ms (default 600 000: twice the clock skew).
    pub window_ms: i64,
    /// Live nonces allowed per signing key (default 4096).
    pub per_signer_limit: usize,
    /// Live nonces allowed in total (default 100 000).
    pub max_entries: usize,
}

impl Default for NonceCacheConfig {
    fn default() -> Self {
        NonceCacheConfig {
            window_ms: 600_000,
            per_signer_limit: 4096,
            max_entries: 100_000,
        }
    }
}

type Key = [u8; 16];

#[derive(Default)]
struct Inner {
    /// digest(signer, nonce) -> expiry
    live: HashMap<Key, i64>,
    /// digest(signer) -> live count
    per_signer: HashMap<Key, usize>,
    /// (expiry, entry key, signer key) in insertion order
    queue: VecDeque<(i64, Key, Key)>,
}

/// The in-memory nonce cache.
pub struct NonceCache {
    config: NonceCacheConfig,
    inner: Mutex<Inner>,
}

fn digest(parts: &[&str]) -> Key {
    let mut buf = Vec::with_capacity(128);
    for p in parts {
        buf.extend_from_slice(&(p.len() as u64).to_le_bytes());
        buf.extend_from_slice(p.as_bytes());
    }
    let h = sha256(&buf);
    let mut k = [0u8; 16];
    k.copy_from_slice(&h[..16]);
    k
}

impl NonceCache {
    pub fn new(config: NonceCacheConfig) -> Self {
        NonceCache {
            config,
            inner: Mutex::new(Inner::default()),
        }
    }

    /// `checkAndRemember`: `true` (and remembered) when the nonce is fresh
    /// for this signer and the bounds allow it; `false` for a replay or when
    /// full.
    pub fn check_and_remember(&self, signer: &str, nonce: &str, now_ms: i64) -> bool {
        let key = digest(&[signer, nonce]);
        let signer_key = digest(&[signer]);
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let inner = &mut *inner;
        // Drop expired entries from the front of the queue.
        while let Some(&(expiry, k, s)) = inner.queue.front() {
            if expiry >= now_ms {
                break;
            }
            inner.queue.pop_front();
            if inner.live.get(&k) == Some(&expiry) {
                inner.live.remove(&k);
                if let Some(n) = inner.per_signer.get_mut(&s) {
                    *n -= 1;
                    if *n == 0 {
                        inner.per_signer.remove(&s);
                    }
                }
            }
        }
        if let Some(&expiry) = inner.live.get(&key) {
            if expiry >= now_ms {
                return false;
            }
        }
        if inner.per_signer.get(&signer_key).copied().unwrap_or(0) >= self.config.per_signer_limit {
            return false;
        }
        if inner.live.len() >= self.config.max_entries {
            return false;
        }
        let expiry = now_ms + self.config.window_ms;
        // An expired entry still in the map (clock went backwards) is replaced.
        if inner.live.insert(key, expiry).is_none() {
            *inner.per_signer.entry(signer_key).or_insert(0) += 1;
        }
        inner.queue.push_back((expiry, key, signer_key));
        true
    }

    /// Live entries (for tests and metrics).
    pub fn len(&self) -> usize {
        self.inner.lock().map(|i| i.live.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache(per_signer: usize, total: usize) -> NonceCache {
        NonceCache::new(NonceCacheConfig {
            window_ms: 1000,
            per_signer_limit: per_signer,
            max_entries: total,
        })
    }

    #[test]
    fn replay_is_rejected_inside_the_window_and_accepted_after() {
        let c = cache(10, 10);
        assert!(c.check_and_remember("k", "n1", 0));
        assert!(!c.check_and_remember("k", "n1", 500));
        assert!(
            !c.check_and_remember("k", "n1", 1000),
            "expiry is inclusive"
        );
        assert!(c.check_and_remember("k", "n1", 1001));
    }

    #[test]
    fn nonces_are_per_signer() {
        let c = cache(10, 10);
        assert!(c.check_and_remember("a", "n", 0));
        assert!(c.check_and_remember("b", "n", 0));
    }

    #[test]
    fn full_signer_is_rejected_not_evicted() {
        let c = cache(3, 100);
        for n in ["1", "2", "3"] {
            assert!(c.check_and_remember("k", n, 0));
        }
        assert!(!c.check_and_remember("k", "4", 10), "per-signer bound");
        assert!(
            !c.check_and_remember("k", "1", 10),
            "old nonces still remembered"
        );
        assert!(c.check_and_remember("other", "4", 10));
        assert!(
            c.check_and_remember("k", "4", 1001),
            "room again after expiry"
        );
    }

    #[test]
    fn global_bound_rejects() {
        let c = cache(100, 2);
        assert!(c.check_and_remember("a", "1", 0));
        assert!(c.check_and_remember("b", "1", 0));
        assert!(!c.check_and_remember("c", "1", 0));
        assert_eq!(c.len(), 2);
        assert!(c.check_and_remember("c", "1", 2000));
        assert_eq!(c.len(), 1, "expired entries were dropped");
    }

    #[test]
    fn separator_ambiguity_cannot_collide() {
        let c = cache(10, 10);
        assert!(c.check_and_remember("a|b", "c", 0));
        assert!(c.check_and_remember("a", "b|c", 0));
    }

    /// Counts sweeps.
    struct Counting(std::sync::atomic::AtomicU64);

    impl NonceLedger for Counting {
        fn check_and_remember<'a>(
            &'a self,
            _: &'a str,
            _: &'a str,
            _: i64,
            _: i64,
        ) -> LedgerFuture<'a, bool> {
            Box::pin(std::future::ready(Ok(true)))
        }
        fn sweep(&self, now_ms: i64) -> LedgerFuture<'_, u64> {
            assert!(now_ms > 1_600_000_000_000, "wall-clock milliseconds");
            self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Box::pin(std::future::ready(Ok(0)))
        }
    }

    #[test]
    fn the_shared_ledger_is_swept_on_the_timer_wheel() {
        let ledger = Arc::new(Counting(Default::default()));
        let run = sweep_shared(ledger.clone(), Duration::from_millis(40));
        futures_lite::future::block_on(futures_lite::future::or(run, async {
            async_io::Timer::after(Duration::from_millis(230)).await;
        }));
        let n = ledger.0.load(std::sync::atomic::Ordering::SeqCst);
        assert!(
            (2..=6).contains(&n),
            "{n} sweeps in 230 ms at one per 40 ms"
        );
    }
}
