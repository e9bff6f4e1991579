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
//! The registry is a map under one mutex, touched twice per request (head
//! started, head complete) and once per accept; choosing a victim scans it,
//! which only happens when a limit is reached.

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use super::client_ip::{canonical, Cidr};
use super::signal::Signal;

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

struct Entry {
    peer: SocketAddr,
    ip: IpAddr,
    /// Since when the connection waits for a request head; `None` while a
    /// request is in progress.
    waiting_since: Option<Instant>,
    evict: Arc<Signal>,
}

#[derive(Default)]
struct Registry {
    next_id: u64,
    conns: HashMap<u64, Entry>,
    per_ip: HashMap<IpAddr, usize>,
}

impl Registry {
    fn remove(&mut self, id: u64) -> Option<Entry> {
        let e = self.conns.remove(&id)?;
        if let Some(n) = self.per_ip.get_mut(&e.ip) {
            *n -= 1;
            if *n == 0 {
                self.per_ip.remove(&e.ip);
            }
        }
        Some(e)
    }

    /// The connection waiting longest for a head (of `ip` only, if given).
    fn oldest_waiting(&self, ip: Option<IpAddr>) -> Option<(u64, Instant)> {
        self.conns
            .iter()
            .filter(|(_, e)| ip.is_none_or(|ip| e.ip == ip))
            .filter_map(|(id, e)| e.waiting_since.map(|t| (*id, t)))
            .min_by_key(|(_, t)| *t)
    }

    /// Close the oldest waiting connection (of `ip`, if given); false if
    /// there is none.
    fn evict_oldest(&mut self, ip: Option<IpAddr>, limit: &'static str, now: Instant) -> bool {
        let Some((id, since)) = self.oldest_waiting(ip) else {
            return false;
        };
        let open = self.conns.len();
        if let Some(victim) = self.remove(id) {
            victim.evict.set();
            super::defense_log::connection_evicted(
                &victim.peer,
                &Eviction {
                    limit,
                    open,
                    waited_ms: now.saturating_duration_since(since).as_millis(),
                },
            );
        }
        true
    }
}

/// The registry of open connections (see the module docs).
pub(crate) struct Admission {
    limits: Limits,
    registry: Mutex<Registry>,
}

impl Admission {
    pub(crate) fn new(limits: Limits) -> Arc<Admission> {
        Arc::new(Admission {
            limits,
            registry: Mutex::new(Registry::default()),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Registry> {
        self.registry.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Admit a connection from `peer`, closing a waiting one if a limit is
    /// reached; the new connection starts out waiting for its first head.
    pub(crate) fn admit(self: &Arc<Self>, peer: SocketAddr) -> Result<Slot, Refusal> {
        let ip = canonical(peer.ip());
        let now = Instant::now();
        let mut reg = self.lock();
        let exempt = self.limits.exempt.iter().any(|c| c.contains(ip));
        let at_ip_limit =
            !exempt && reg.per_ip.get(&ip).copied().unwrap_or(0) >= self.limits.per_ip;
        if at_ip_limit && !reg.evict_oldest(Some(ip), "per-address limit", now) {
            return Err(Refusal::PerIp(self.limits.per_ip));
        }
        if reg.conns.len() >= self.limits.cap && !reg.evict_oldest(None, "connection cap", now) {
            return Err(Refusal::Cap(self.limits.cap));
        }
        let id = reg.next_id;
        reg.next_id += 1;
        let evict = Arc::new(Signal::default());
        reg.conns.insert(
            id,
            Entry {
                peer,
                ip,
                waiting_since: Some(now),
                evict: evict.clone(),
            },
        );
        *reg.per_ip.entry(ip).or_insert(0) += 1;
        Ok(Slot {
            admission: self.clone(),
            id,
            evict,
        })
    }

    /// Connections in the registry.
    #[cfg(test)]
    fn open(&self) -> usize {
        self.lock().conns.len()
    }
}

/// One admitted connection's place in the registry; dropping it frees the
/// place (unless the connection was evicted, which freed it already).
pub(crate) struct Slot {
    admission: Arc<Admission>,
    id: u64,
    evict: Arc<Signal>,
}

impl Slot {
    /// The connection now waits for a request head (it may be evicted).
    pub(crate) fn waiting(&self) {
        self.set_waiting(Some(Instant::now()));
    }

    /// The connection has a complete head: it is no longer a candidate.
    pub(crate) fn busy(&self) {
        self.set_waiting(None);
    }

    fn set_waiting(&self, since: Option<Instant>) {
        if let Some(e) = self.admission.lock().conns.get_mut(&self.id) {
            e.waiting_since = since;
        }
    }

    /// Resolves once this connection has been chosen to make room.
    pub(crate) async fn evicted(&self) {
        self.evict.wait().await
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.admission.lock().remove(self.id);
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
    fn exempt_addresses_have_no_per_address_limit() {
        let a = admission(10, 1, &["127.0.0.0/8"]);
        let slots: Vec<Slot> = (0..5)
            .map(|p| a.admit(addr("127.0.0.1", p)).unwrap())
            .collect();
        assert!(slots.iter().all(|s| !is_evicted(s)));
        assert_eq!(a.open(), 5);
    }
}
