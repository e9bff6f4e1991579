//! One log line per defensive action (a refused connection, a malformed or
//! too slow request, a rate limit, a full store), with the peer address,
//! rate-limited per kind of action so that an attacker cannot fill the disk
//! through the log either.
//!
//! Each [`Kind`] may log at most [`DefenseLog::lines_per_window`] lines per
//! [`DefenseLog::window`] (default [`DEFAULT_LINES`] per
//! [`DEFAULT_WINDOW`]); what is left out is counted, and the first line of
//! that kind in a later window says how many: `... (suppressed 41 similar
//! lines)`. At the defaults a sustained flood of one kind costs at most one
//! line every two seconds, whatever its rate.
//!
//! The server uses one process-wide instance through [`note`]; tests build
//! their own with [`DefenseLog::with_clock`] (clock and output injected).

use std::fmt;
use std::sync::{LazyLock, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Lines per kind per window, by default.
pub const DEFAULT_LINES: u32 = 5;
/// The default window.
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(10);

/// A kind of defensive action; each is rate-limited on its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A connection refused at the connection cap.
    ConnectionRefused,
    /// A connection closed to make room for another (eviction).
    ConnectionEvicted,
    /// A request head or body that broke the framing rules or a size
    /// limit (400, 413, 431, 501) and closed the connection.
    BadRequest,
    /// A request head or body that did not arrive in time (408).
    SlowRequest,
    /// A request refused by a collection's rate limit (429).
    RateLimited,
    /// A write refused by a storage quota or the free-disk floor (507).
    StorageFull,
}

/// Number of [`Kind`]s.
const KINDS: usize = 6;

impl Kind {
    fn index(self) -> usize {
        self as usize
    }

    /// The word the line starts with.
    pub fn name(self) -> &'static str {
        match self {
            Kind::ConnectionRefused => "connection refused",
            Kind::ConnectionEvicted => "connection evicted",
            Kind::BadRequest => "bad request",
            Kind::SlowRequest => "slow request",
            Kind::RateLimited => "rate limited",
            Kind::StorageFull => "storage full",
        }
    }
}

/// Where a line goes (the `log` facade at `warn` by default).
pub type Sink = Box<dyn Fn(Kind, &str) + Send + Sync>;
/// A monotonic clock: time since any fixed origin.
pub type Clock = Box<dyn Fn() -> Duration + Send + Sync>;

/// One kind's current window.
#[derive(Clone, Copy, Default)]
struct Window {
    start: Option<Duration>,
    lines: u32,
    suppressed: u64,
}

/// A rate-limited log of defensive actions (see the module docs).
pub struct DefenseLog {
    lines_per_window: u32,
    window: Duration,
    clock: Clock,
    sink: Sink,
    state: Mutex<[Window; KINDS]>,
}

impl Default for DefenseLog {
    fn default() -> Self {
        let origin = Instant::now();
        DefenseLog::with_clock(
            DEFAULT_LINES,
            DEFAULT_WINDOW,
            Box::new(move || origin.elapsed()),
            Box::new(|_, line| log::warn!("{line}")),
        )
    }
}

impl DefenseLog {
    /// A log allowing `lines_per_window` lines per kind per `window`,
    /// reading time from `clock` and writing lines to `sink`.
    pub fn with_clock(lines_per_window: u32, window: Duration, clock: Clock, sink: Sink) -> Self {
        DefenseLog {
            lines_per_window,
            window,
            clock,
            sink,
            state: Mutex::new([Window::default(); KINDS]),
        }
    }

    /// Lines per kind per window.
    pub fn lines_per_window(&self) -> u32 {
        self.lines_per_window
    }

    /// The window.
    pub fn window(&self) -> Duration {
        self.window
    }

    /// Log `<kind> from <peer>: <what>` unless this kind has used up its
    /// lines in the current window (then only count it).
    pub fn note(&self, kind: Kind, peer: &dyn fmt::Display, what: fmt::Arguments<'_>) {
        let now = (self.clock)();
        let suppressed = {
            let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
            let w = &mut state[kind.index()];
            if w.start.is_none_or(|s| now.saturating_sub(s) >= self.window) {
                w.start = Some(now);
                w.lines = 0;
            }
            if w.lines >= self.lines_per_window {
                w.suppressed += 1;
                return;
            }
            w.lines += 1;
            std::mem::take(&mut w.suppressed)
        };
        let line = if suppressed > 0 {
            format!(
                "{} from {peer}: {what} (suppressed {suppressed} similar lines)",
                kind.name()
            )
        } else {
            format!("{} from {peer}: {what}", kind.name())
        };
        (self.sink)(kind, &line);
    }
}

static GLOBAL: LazyLock<DefenseLog> = LazyLock::new(DefenseLog::default);

/// Log a defensive action through the process-wide [`DefenseLog`].
pub fn note(kind: Kind, peer: &dyn fmt::Display, what: fmt::Arguments<'_>) {
    GLOBAL.note(kind, peer, what);
}

/// A request that broke the framing rules or a size limit ([`Kind::BadRequest`]).
pub fn bad_request(peer: &dyn fmt::Display, error: &dyn fmt::Display) {
    note(Kind::BadRequest, peer, format_args!("{error}"));
}

/// A request head or body that did not arrive in time ([`Kind::SlowRequest`]).
pub fn slow_request(peer: &dyn fmt::Display) {
    note(Kind::SlowRequest, peer, format_args!("408 Request Timeout"));
}

/// A connection refused at the cap or the per-address limit
/// ([`Kind::ConnectionRefused`]).
pub fn connection_refused(peer: &dyn fmt::Display, why: &dyn fmt::Display) {
    note(Kind::ConnectionRefused, peer, format_args!("{why}"));
}

/// A connection closed to make room ([`Kind::ConnectionEvicted`]).
pub fn connection_evicted(peer: &dyn fmt::Display, why: &dyn fmt::Display) {
    note(Kind::ConnectionEvicted, peer, format_args!("{why}"));
}

/// Log a refused request whose refusal is a defensive action (a rate limit,
/// a full store); other failures are not logged here.
pub fn refused(peer: &dyn fmt::Display, error: &crate::sync::SyncError) {
    use crate::sync::SyncError;
    match error {
        SyncError::RateLimited => note(Kind::RateLimited, peer, format_args!("429")),
        SyncError::InsufficientStorage(r) => note(Kind::StorageFull, peer, format_args!("{r}")),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;

    /// A log with a hand-moved clock (milliseconds) and a captured output.
    fn test_log(lines: u32) -> (DefenseLog, Arc<AtomicU64>, Arc<Mutex<Vec<String>>>) {
        let ms = Arc::new(AtomicU64::new(1_000_000));
        let out = Arc::new(Mutex::new(Vec::new()));
        let log = DefenseLog::with_clock(
            lines,
            Duration::from_secs(1),
            {
                let ms = ms.clone();
                Box::new(move || Duration::from_millis(ms.load(Ordering::SeqCst)))
            },
            {
                let out = out.clone();
                Box::new(move |_, line| out.lock().unwrap().push(line.to_owned()))
            },
        );
        (log, ms, out)
    }

    fn peer(n: u32) -> String {
        format!("10.0.0.{n}")
    }

    #[test]
    fn at_most_n_lines_per_kind_per_window_then_a_summary() {
        let (log, ms, out) = test_log(3);
        for i in 0..1000 {
            log.note(Kind::BadRequest, &peer(i % 7), format_args!("431"));
        }
        assert_eq!(
            *out.lock().unwrap(),
            [
                "bad request from 10.0.0.0: 431",
                "bad request from 10.0.0.1: 431",
                "bad request from 10.0.0.2: 431"
            ]
        );
        // Still the same window 999 ms later: nothing more.
        ms.fetch_add(999, Ordering::SeqCst);
        log.note(Kind::BadRequest, &peer(1), format_args!("400"));
        assert_eq!(out.lock().unwrap().len(), 3);
        // The next window: the first line carries the count left out.
        ms.fetch_add(1, Ordering::SeqCst);
        log.note(Kind::BadRequest, &peer(9), format_args!("413"));
        log.note(Kind::BadRequest, &peer(9), format_args!("413"));
        assert_eq!(
            out.lock().unwrap()[3..],
            [
                "bad request from 10.0.0.9: 413 (suppressed 998 similar lines)",
                "bad request from 10.0.0.9: 413"
            ]
        );
    }

    #[test]
    fn kinds_are_limited_separately() {
        let (log, ms, out) = test_log(1);
        for _ in 0..50 {
            log.note(Kind::ConnectionRefused, &peer(1), format_args!("cap 256"));
            log.note(Kind::StorageFull, &peer(2), format_args!("quota"));
        }
        assert_eq!(
            *out.lock().unwrap(),
            [
                "connection refused from 10.0.0.1: cap 256",
                "storage full from 10.0.0.2: quota"
            ]
        );
        ms.fetch_add(5000, Ordering::SeqCst);
        log.note(Kind::StorageFull, &peer(2), format_args!("quota"));
        assert_eq!(
            out.lock().unwrap()[2],
            "storage full from 10.0.0.2: quota (suppressed 49 similar lines)"
        );
    }

    #[test]
    fn a_flood_costs_a_bounded_number_of_lines() {
        let (log, ms, out) = test_log(5);
        // 100 000 actions over 100 simulated seconds, 1 000 per second.
        for i in 0..100_000u64 {
            ms.store(1_000_000 + i, Ordering::SeqCst);
            log.note(Kind::SlowRequest, &peer(3), format_args!("408"));
        }
        let out = out.lock().unwrap();
        assert_eq!(out.len(), 100 * 5);
        let suppressed: u64 = out
            .iter()
            .filter_map(|l| l.split("(suppressed ").nth(1))
            .map(|n| n.split(' ').next().unwrap().parse::<u64>().unwrap())
            .sum();
        // Everything is either logged or counted, except the last window's
        // suppressed actions (reported by the next line of that kind).
        assert_eq!(500 + suppressed + 995, 100_000);
    }
}
