//! A per-thread count of work units, so tests can pin the complexity of the
//! loops whose cost depends on client input (object key lookups, glob
//! matching, batch names, role synthesis) by counting instead of timing.
//!
//! The instrumented loops call [`add`] once per scan with the number of
//! elements they examined; a test runs an operation under [`count`] for an
//! input of size n and 2n and compares the totals (linear work doubles,
//! quadratic work quadruples). Counting is a thread-local integer add and
//! has no observable effect on results.
//!
//! ```
//! use starfish::proto::{json, work};
//! let (_, units) = work::count(|| json::parse(br#"{"a":1,"b":2}"#).unwrap());
//! assert!(units > 0);
//! ```

use std::cell::Cell;

thread_local! {
    static UNITS: Cell<u64> = const { Cell::new(0) };
}

/// Record `n` units of work on this thread.
#[inline]
pub fn add(n: usize) {
    UNITS.with(|u| u.set(u.get().wrapping_add(n as u64)));
}

/// Run `f` and return its result with the units it recorded on this thread.
pub fn count<T>(f: impl FnOnce() -> T) -> (T, u64) {
    let before = UNITS.with(Cell::get);
    let out = f();
    let after = UNITS.with(Cell::get);
    (out, after.wrapping_sub(before))
}
