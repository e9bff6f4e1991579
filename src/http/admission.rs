//! # Admission: who gets a connection slot
//!
//! Owns the open-connection registry and the two limits on it: the
//! connection cap ([`ServerConfig::max_connections`](super::ServerConfig))
//! and the per-peer-address limit
//! ([`ServerConfig::max_connections_per_ip`](super::ServerConfig)).
//!
//! When a limit is reached, a new connection is not refused if room can be
//! made: the connection that has waited longest *without a complete request
//! head* (a slow or trickling head, a TLS handshake that has not finished, or
//! an idle keep-alive connection) is closed instead, and the new one is
//! accepted. For the per-address limit, only that address's connections are
//! candidates. A connection that is mid-request (its head is complete: the
//! body is being read, the handler runs or the answer is being written) is
//! never a victim; only when every connection is mid-request is the new one
//! refused.
//!
//! So a few hundred sockets that trickle one byte of a head every few
//! seconds cannot keep real clients out: each real connection pushes out
//! the oldest waiting one, and real requests complete their heads at once.
//!
//! Addresses in [`ServerConfig::per_ip_exempt`](super::ServerConfig) (and
//! the server's `--trusted-proxy` blocks, added by `server.rs`) have no
//! per-address limit: every client behind a reverse proxy shares its address.
//!
//! The registry is a slab under one mutex, touched twice per request (head
//! started, head complete) and once per accept; choosing a victim scans it,
//! which only happens when a limit is reached. Each connection's entry is
//! one small shared allocation that also carries its waker while it waits
//! for a head, so eviction and shutdown wake it without a waiter list (an
//! idle keep-alive connection costs about 110 bytes here, issue 13).
//!
//! Shutdown ([`Admission::shut_down`]) ends the connections that wait for a
//! head with nothing received (they wait in [`Slot::closed`] with
//! `shutdown` set).

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use super::client_ip::{canonical, Cidr};

/// The limits a registry enforces.
#[derive(Clone, Debug)]
pub(crate) struct Limits {
    /// Open connections in total.
    pub cap: usize,
    /// Open connections per peer address.
    pub per_ip: usize,
    /// Addresses with no per-address limit.
    pub exempt: Vec<Cidr>,
}

/// Why a new connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// The cap is reached and every open connection is mid-request.
    Cap(usize),
    /// The peer's address has its limit of connections, all mid-request.
    PerIp(usize),
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::Cap(n) => write!(f, "connection cap reached ({n} open, all mid-request)"),
            Refusal::PerIp(n) => write!(
                f,
                "per-address connection limit reached ({n} open, all mid-request)"
            ),
        }
    }
}

/// Why a connection was closed to make room (for the defense log).
struct Eviction {
    limit: &'static str,
    open: usize,
    waited_ms: u128,
}

impl fmt::Display for Eviction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "closed to make room ({} reached, {} open): waited {} ms without a complete request head",
            self.limit, self.open, self.waited_ms
        )
    }
}

/// One admitted connection, shared by the registry and the connection's
/// [`Slot`] (about 100 bytes: what an idle connection costs here).
struct Place {
    peer: SocketAddr,
    /// Since when the connection waits for a request head, as nanoseconds
    /// since the registry's epoch plus one; 0 while a request is in
    /// progress. Written only under the registry's lock.
    waiting_since: AtomicU64,
    /// Chosen to make room.
    evicted: AtomicBool,
    /// The connection's task while it waits for a head (see [`Closed`]).
    waker: Mutex<Option<Waker>>,
}

impl Place {
    fn wake(&self) {
        let waker = self.waker.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(w) = waker {
            w.wake();
        }
    }
}

/// The registry: the open connections in a slab (index = slot id), free
/// indexes reused.
#[derive(Default)]
struct Registry {
    places: Vec<Option<Arc<Place>>>,
    free: Vec<usize>,
    open: usize,
    per_ip: HashMap<IpAddr, usize>,
}

impl Registry {
    /// Remove the place at `id` if it is `place`.
    fn remove(&mut self, id: usize, place: &Arc<Place>) -> bool {
        match self.places.get_mut(id) {
            Some(at) if at.as_ref().is_some_and(|p| Arc::ptr_eq(p, place)) => *at = None,
            _ => return false,
        }
        self.free.push(id);
        self.open -= 1;
        let ip = canonical(place.peer.ip());
        if let Some(n) = self.per_ip.get_mut(&ip) {
            *n -= 1;
            if *n == 0 {
                self.per_ip.remove(&ip);
            }
        }
        true
    }

    /// The connection waiting longest for a head (of `ip` only, if given):
    /// its id and since when (as stored).
    fn oldest_waiting(&self, ip: Option<IpAddr>) -> Option<(usize, u64)> {
        self.places
            .iter()
            .enumerate()
            .filter_map(|(id, p)| p.as_ref().map(|p| (id, p)))
            .filter(|(_, p)| ip.is_none_or(|ip| canonical(p.peer.ip()) == ip))
            .map(|(id, p)| (id, p.waiting_since.load(Ordering::Relaxed)))
            .filter(|(_, since)| *since != 0)
            .min_by_key(|(_, since)| *since)
    }

    /// Close the oldest waiting connection (of `ip`, if given); false if
    /// there is none.
    fn evict_oldest(&mut self, ip: Option<IpAddr>, limit: &'static str, now: u64) -> bool {
        let Some((id, since)) = self.oldest_waiting(ip) else {
            return false;
        };
        let open = self.open;
        let Some(victim) = self.places[id].clone() else {
            return false;
        };
        self.remove(id, &victim);
        victim.evicted.store(true, Ordering::SeqCst);
        victim.wake();
        super::defense_log::connection_evicted(
            &victim.peer,
            &Eviction {
                limit,
                open,
                waited_ms: u128::from(now.saturating_sub(since) / 1_000_000),
            },
        );
        true
    }
}

/// The registry of open connections (see the module docs).
pub(crate) struct Admission {
    limits: Limits,
    /// What `Place::waiting_since` counts from.
    epoch: Instant,
    /// Raised by [`Admission::shut_down`].
    shutdown: AtomicBool,
    registry: Mutex<Registry>,
}

impl Admission {
    pub(crate) fn new(limits: Limits) -> Arc<Admission> {
        Arc::new(Admission {
            limits,
            epoch: Instant::now(),
            shutdown: AtomicBool::new(false),
            registry: Mutex::new(Registry::default()),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Registry> {
        self.registry.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Now, as a `Place::waiting_since` (never 0).
    fn now(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_nanos())
            .unwrap_or(u64::MAX - 1)
            .saturating_add(1)
    }

    /// Admit a connection from `peer`, closing a waiting one if a limit is
    /// reached; the new connection starts out waiting for its first head.
    pub(crate) fn admit(self: &Arc<Self>, peer: SocketAddr) -> Result<Slot, Refusal> {
        let ip = canonical(peer.ip());
        let now = self.now();
        let mut reg = self.lock();
        let exempt = self.limits.exempt.iter().any(|c| c.contains(ip));
        let at_ip_limit =
            !exempt && reg.per_ip.get(&ip).copied().unwrap_or(0) >= self.limits.per_ip;
        if at_ip_limit && !reg.evict_oldest(Some(ip), "per-address limit", now) {
            return Err(Refusal::PerIp(self.limits.per_ip));
        }
        if reg.open >= self.limits.cap && !reg.evict_oldest(None, "connection cap", now) {
            return Err(Refusal::Cap(self.limits.cap));
        }
        let place = Arc::new(Place {
            peer,
            waiting_since: AtomicU64::new(now),
            evicted: AtomicBool::new(false),
            waker: Mutex::new(None),
        });
        let id = match reg.free.pop() {
            Some(id) => {
                reg.places[id] = Some(place.clone());
                id
            }
            None => {
                reg.places.push(Some(place.clone()));
                reg.places.len() - 1
            }
        };
        reg.open += 1;
        *reg.per_ip.entry(ip).or_insert(0) += 1;
        Ok(Slot {
            admission: self.clone(),
            id,
            place,
        })
    }

    /// The server is shutting down: every connection waiting in
    /// [`Slot::closed`] with `shutdown` set ends. (One flag and a pass over
    /// the registry, instead of a waiter per idle connection on a shared
    /// signal.)
    pub(crate) fn shut_down(&self) {
        self.shutdown.store(true, Ordering::SeqCst);
        let places: Vec<Arc<Place>> = self.lock().places.iter().flatten().cloned().collect();
        for p in places {
            p.wake();
        }
    }

    /// Connections in the registry.
    #[cfg(test)]
    fn open(&self) -> usize {
        self.lock().open
    }
}

/// One admitted connection's place in the registry; dropping it frees the
/// place (unless the connection was evicted, which freed it already).
pub(crate) struct Slot {
    admission: Arc<Admission>,
    id: usize,
    place: Arc<Place>,
}

/// Why [`Slot::closed`] resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Close {
    /// Chosen to make room for a new connection.
    Evicted,
    /// The server is shutting down.
    Shutdown,
}

impl Slot {
    /// The connection's peer (kept here, not in the connection's future).
    pub(crate) fn peer(&self) -> &SocketAddr {
        &self.place.peer
    }

    /// The connection now waits for a request head (it may be evicted).
    pub(crate) fn waiting(&self) {
        let now = self.admission.now();
        self.set_waiting(now);
    }

    /// The connection has a complete head: it is no longer a candidate.
    pub(crate) fn busy(&self) {
        self.set_waiting(0);
    }

    fn set_waiting(&self, since: u64) {
        // Under the lock, so a victim is chosen on what is true now.
        let _reg = self.admission.lock();
        self.place.waiting_since.store(since, Ordering::Relaxed);
    }

    /// Resolves once this connection has been chosen to make room, or,
    /// with `shutdown`, once the server shuts down.
    pub(crate) fn closed(&self, shutdown: bool) -> Closed<'_> {
        Closed {
            slot: self,
            shutdown,
        }
    }

    /// Resolves once this connection has been chosen to make room.
    #[cfg(test)]
    async fn evicted(&self) {
        self.closed(false).await;
    }
}

/// The future of [`Slot::closed`]. The connection's waker is kept in its
/// place, where eviction and shutdown find it.
pub(crate) struct Closed<'a> {
    slot: &'a Slot,
    shutdown: bool,
}

impl Closed<'_> {
    fn check(&self) -> Option<Close> {
        if self.slot.place.evicted.load(Ordering::SeqCst) {
            return Some(Close::Evicted);
        }
        if self.shutdown && self.slot.admission.shutdown.load(Ordering::SeqCst) {
            return Some(Close::Shutdown);
        }
        None
    }
}

impl Future for Closed<'_> {
    type Output = Close;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Close> {
        if let Some(c) = self.check() {
            return Poll::Ready(c);
        }
        {
            let mut w = self
                .slot
                .place
                .waker
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            match &*w {
                Some(old) if old.will_wake(cx.waker()) => {}
                _ => *w = Some(cx.waker().clone()),
            }
        }
        // Again after registering: eviction and shutdown raise their flag
        // before they take the waker.
        match self.check() {
            Some(c) => Poll::Ready(c),
            None => Poll::Pending,
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.admission.lock().remove(self.id, &self.place);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_lite::future::{block_on, poll_once};

    fn addr(ip: &str, port: u16) -> SocketAddr {
        SocketAddr::new(ip.parse().unwrap(), port)
    }

    fn admission(cap: usize, per_ip: usize, exempt: &[&str]) -> Arc<Admission> {
        Admission::new(Limits {
            cap,
            per_ip,
            exempt: exempt.iter().map(|c| c.parse().unwrap()).collect(),
        })
    }

    fn is_evicted(slot: &Slot) -> bool {
        block_on(poll_once(slot.evicted())).is_some()
    }

    #[test]
    fn at_the_cap_the_longest_waiting_connection_makes_room() {
        let a = admission(3, 3, &[]);
        let first = a.admit(addr("10.0.0.1", 1)).unwrap();
        let second = a.admit(addr("10.0.0.2", 1)).unwrap();
        let third = a.admit(addr("10.0.0.3", 1)).unwrap();
        let fourth = a.admit(addr("10.0.0.4", 1)).unwrap();
        assert!(is_evicted(&first));
        assert!(!is_evicted(&second) && !is_evicted(&third) && !is_evicted(&fourth));
        assert_eq!(a.open(), 3);
        // Dropping the evicted slot does not free a second place.
        drop(first);
        assert_eq!(a.open(), 3);
    }

    #[test]
    fn a_connection_mid_request_is_never_a_victim() {
        let a = admission(2, 2, &[]);
        let first = a.admit(addr("10.0.0.1", 1)).unwrap();
        first.busy();
        let second = a.admit(addr("10.0.0.2", 1)).unwrap();
        let third = a.admit(addr("10.0.0.3", 1)).unwrap();
        assert!(!is_evicted(&first));
        assert!(is_evicted(&second));
        third.busy();
        // Every connection is mid-request: refused.
        assert_eq!(a.admit(addr("10.0.0.4", 1)).err(), Some(Refusal::Cap(2)));
        // A connection back to waiting (keep-alive) is a candidate again.
        first.waiting();
        let fifth = a.admit(addr("10.0.0.5", 1)).unwrap();
        assert!(is_evicted(&first));
        drop(fifth);
        assert_eq!(a.open(), 1);
    }

    #[test]
    fn the_per_address_limit_evicts_only_that_address() {
        let a = admission(100, 2, &[]);
        let other = a.admit(addr("10.0.0.9", 1)).unwrap();
        let one = a.admit(addr("10.0.0.1", 1)).unwrap();
        let two = a.admit(addr("10.0.0.1", 2)).unwrap();
        let three = a.admit(addr("10.0.0.1", 3)).unwrap();
        assert!(!is_evicted(&other), "another address is untouched");
        assert!(is_evicted(&one));
        two.busy();
        three.busy();
        assert_eq!(a.admit(addr("10.0.0.1", 4)).err(), Some(Refusal::PerIp(2)));
        // IPv4-mapped IPv6 is the same address.
        assert_eq!(
            a.admit(addr("::ffff:10.0.0.1", 5)).err(),
            Some(Refusal::PerIp(2))
        );
        assert!(a.admit(addr("10.0.0.2", 1)).is_ok());
    }

    #[test]
    fn shutdown_ends_only_the_waits_that_watch_it() {
        let a = admission(10, 10, &[]);
        let idle = a.admit(addr("10.0.0.1", 1)).unwrap();
        let mid_head = a.admit(addr("10.0.0.1", 2)).unwrap();
        let mut idle_wait = Box::pin(idle.closed(true));
        let mut head_wait = Box::pin(mid_head.closed(false));
        assert_eq!(block_on(poll_once(&mut idle_wait)), None);
        assert_eq!(block_on(poll_once(&mut head_wait)), None);
        a.shut_down();
        assert_eq!(block_on(poll_once(&mut idle_wait)), Some(Close::Shutdown));
        assert_eq!(block_on(poll_once(&mut head_wait)), None);
        // Still evictable after shutdown woke it.
        a.lock().evict_oldest(None, "test", a.now());
        assert!(is_evicted(&idle) || is_evicted(&mid_head));
    }

    #[test]
    fn a_reused_place_is_not_freed_by_the_evicted_slot() {
        let a = admission(1, 1, &[]);
        let first = a.admit(addr("10.0.0.1", 1)).unwrap();
        let second = a.admit(addr("10.0.0.1", 2)).unwrap();
        assert!(is_evicted(&first));
        drop(first);
        assert_eq!(a.open(), 1);
        second.busy();
        assert_eq!(a.admit(addr("10.0.0.1", 3)).err(), Some(Refusal::PerIp(1)));
    }

    #[test]
    fn exempt_addresses_have_no_per_address_limit() {
        let a = admission(10, 1, &["127.0.0.0/8"]);
        let slots: Vec<Slot> = (0..5)
            .map(|p| a.admit(addr("127.0.0.1", p)).unwrap())
            .collect();
        assert!(slots.iter().all(|s| !is_evicted(s)));
        assert_eq!(a.open(), 5);
    }
}
