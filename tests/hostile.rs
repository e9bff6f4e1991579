//! Hostile load against the real binary (issue: hold up under hostile
//! load): hundreds or thousands of connections that each trickle a request
//! head one byte at a time, reconnecting when closed, while a legitimate
//! client makes 100 requests on fresh connections. At least 99 must be
//! answered `200`, each within 100 ms.
//!
//! The scenarios run one after the other (a lock), so their latencies are
//! not measured against each other's load.

mod common;

use common::bin::Bin;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Connections that send one byte of a request head every `every`, and
/// reconnect (sending a first byte again) when the server closes them.
struct Tricklers {
    stop: Arc<AtomicBool>,
    /// Connections opened so far (first ones and reconnections).
    opened: Arc<AtomicUsize>,
    /// Times a trickling connection was found closed by the server.
    closed: Arc<AtomicUsize>,
    thread: Option<JoinHandle<()>>,
}

impl Tricklers {
    /// Open `n` trickling connections; returns once all are open.
    fn start(addr: SocketAddr, n: usize, every: Duration) -> Tricklers {
        let stop = Arc::new(AtomicBool::new(false));
        let opened = Arc::new(AtomicUsize::new(0));
        let closed = Arc::new(AtomicUsize::new(0));
        let ready = Arc::new(AtomicBool::new(false));
        let (s, o, c, r) = (stop.clone(), opened.clone(), closed.clone(), ready.clone());
        let thread = std::thread::spawn(move || {
            const HEAD: &[u8] = b"GET /v1/health HTTP/1.1\r\nX-Slow: ";
            let open = |o: &AtomicUsize| -> Option<(TcpStream, usize)> {
                let mut t = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).ok()?;
                t.set_write_timeout(Some(Duration::from_millis(200))).ok()?;
                t.write_all(&HEAD[..1]).ok()?;
                o.fetch_add(1, Ordering::SeqCst);
                Some((t, 1))
            };
            let mut conns: Vec<Option<(TcpStream, usize)>> = Vec::with_capacity(n);
            for _ in 0..n {
                conns.push(open(&o));
            }
            r.store(true, Ordering::SeqCst);
            while !s.load(Ordering::SeqCst) {
                let round = Instant::now();
                for slot in conns.iter_mut() {
                    if s.load(Ordering::SeqCst) {
                        break;
                    }
                    let alive = match slot {
                        Some((t, sent)) => {
                            let byte = HEAD.get(*sent).copied().unwrap_or(b'a');
                            let ok = t.write_all(&[byte]).is_ok();
                            *sent += 1;
                            ok
                        }
                        None => false,
                    };
                    if !alive {
                        if slot.is_some() {
                            c.fetch_add(1, Ordering::SeqCst);
                        }
                        *slot = open(&o);
                    }
                }
                let left = every.saturating_sub(round.elapsed());
                let until = Instant::now() + left;
                while Instant::now() < until && !s.load(Ordering::SeqCst) {
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(60);
        while !ready.load(Ordering::SeqCst) {
            assert!(Instant::now() < deadline, "could not open {n} connections");
            std::thread::sleep(Duration::from_millis(20));
        }
        Tricklers {
            stop,
            opened,
            closed,
            thread: Some(thread),
        }
    }
}

impl Drop for Tricklers {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// One `GET /v1/health` on a fresh connection: its latency if answered 200.
fn legit_request(addr: SocketAddr) -> Result<Duration, String> {
    let t = Instant::now();
    let mut s =
        TcpStream::connect_timeout(&addr, Duration::from_secs(2)).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    s.write_all(
        format!("GET /v1/health HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    s.read_to_end(&mut out).map_err(|e| e.to_string())?;
    let took = t.elapsed();
    if out.starts_with(b"HTTP/1.1 200 ") {
        Ok(took)
    } else {
        Err(format!(
            "answer {:?}",
            String::from_utf8_lossy(&out[..out.len().min(80)])
        ))
    }
}

/// Start the binary with `args`, hold `n` trickling connections against it
/// and make 100 legitimate requests 50 ms apart; returns (answered within
/// 100 ms, slowest latency, failures, tricklers closed by the server).
fn under_attack(args: &[&str], n: usize) -> (usize, Duration, Vec<String>, usize) {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let srv = Bin::start(args);
    let attack = Tricklers::start(srv.addr, n, Duration::from_secs(1));
    // Let the attack settle: every trickler has sent a few bytes.
    std::thread::sleep(Duration::from_millis(1500));
    let mut fast = 0;
    let mut slowest = Duration::ZERO;
    let mut failures = Vec::new();
    for i in 0..100 {
        match legit_request(srv.addr) {
            Ok(took) => {
                slowest = slowest.max(took);
                if took <= Duration::from_millis(100) {
                    fast += 1;
                } else {
                    failures.push(format!("request {i}: {} ms", took.as_millis()));
                }
            }
            Err(e) => failures.push(format!("request {i}: {e}")),
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let closed = attack.closed.load(Ordering::SeqCst);
    assert!(
        attack.opened.load(Ordering::SeqCst) >= n,
        "the attack opened its connections"
    );
    drop(attack);
    eprintln!(
        "{n} trickling connections, {args:?}: {fast}/100 answered within 100 ms, slowest {} ms, \
         {closed} trickling connections closed by the server; failures: {failures:?}",
        slowest.as_millis()
    );
    (fast, slowest, failures, closed)
}

/// Opening thousands of sockets needs the descriptor limit to allow it
/// (`scripts/test` raises the soft limit to the hard one).
fn assert_fd_limit(needed: u64) {
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
    let soft = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(u64::MAX);
    assert!(
        soft >= needed,
        "open-file limit {soft} < {needed}: run `ulimit -n {needed}` first (scripts/test does)"
    );
}

#[test]
fn three_hundred_slow_heads_do_not_starve_real_clients() {
    let (fast, _, failures, closed) = under_attack(&[], 300);
    assert!(fast >= 99, "{failures:?}");
    // The attack itself was pushed back (evicted, or cut by the rate).
    assert!(closed > 0);
}

#[test]
fn two_thousand_slow_heads_do_not_starve_real_clients() {
    assert_fd_limit(2_500);
    let (fast, _, failures, _) = under_attack(&[], 2_000);
    assert!(fast >= 99, "{failures:?}");
}

#[test]
fn two_thousand_slow_heads_at_the_cap_do_not_starve_real_clients() {
    // Loopback exempt from the per-address limit: here the connection cap
    // (1024 by default) is what the attack fills.
    assert_fd_limit(2_500);
    let (fast, _, failures, _) = under_attack(&["--per-ip-exempt", "127.0.0.0/8"], 2_000);
    assert!(fast >= 99, "{failures:?}");
}

#[test]
fn one_address_with_a_per_address_limit_does_not_starve_real_clients() {
    let (fast, _, failures, closed) = under_attack(&["--max-connections-per-ip", "32"], 300);
    assert!(fast >= 99, "{failures:?}");
    // At most 32 of the 300 can be open at once: most were closed.
    assert!(closed >= 300 - 32, "{closed}");
}

#[test]
fn without_the_minimum_rate_eviction_alone_keeps_real_clients_served() {
    let (fast, _, failures, _) = under_attack(&["--min-receive-rate", "0"], 300);
    assert!(fast >= 99, "{failures:?}");
}
