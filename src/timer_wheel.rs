//! A hierarchical timing wheel as plain data: insert, cancel and advance in
//! amortised O(1), driven by whoever owns it (the replica runs it from one
//! task sleeping on an `async-io` timer until [`TimerWheel::next_wake`]).
//!
//! Six levels of 64 slots each, 1 ms per level-0 slot, place deadlines up to
//! 2^35 ms (about a year) ahead directly; later ones are parked in the top
//! level and re-placed as time moves on. Timers live in a slab with intrusive doubly-linked slot
//! lists, so inserting, cancelling and ticking never allocate once the slab
//! has grown to the number of live timers. Time is an argument everywhere
//! (milliseconds on any monotonic scale), so tests drive it with a fake clock.
//!
//! ```
//! use starfish::timer_wheel::TimerWheel;
//! let mut wheel = TimerWheel::new(0);
//! let a = wheel.insert(1_500, "sync news");
//! wheel.insert(70_000, "sync wiki");
//! let mut fired = Vec::new();
//! wheel.advance(2_000, &mut fired);
//! assert_eq!(fired, ["sync news"]);
//! assert_eq!(wheel.cancel(a), None, "already fired");
//! assert!(wheel.next_wake().unwrap() <= 70_000);
//! ```

const BITS: u32 = 6;
const SLOTS: usize = 1 << BITS;
const LEVELS: usize = 6;
const NIL: u32 = u32::MAX;
/// The furthest distance placed directly (half the top level's range, so a
/// parked timer never lands in the top level's current slot); later
/// deadlines are re-placed as time moves on.
const MAX_DISTANCE: u64 = 1 << (BITS as usize * LEVELS - 1);

/// A handle to a scheduled timer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TimerId {
    index: u32,
    generation: u32,
}

struct Entry<T> {
    deadline: u64,
    value: Option<T>,
    generation: u32,
    prev: u32,
    next: u32,
    /// (level, slot) while linked.
    home: (u8, u8),
}

/// The wheel. `T` is what a timer carries (e.g. which collection to sync).
pub struct TimerWheel<T> {
    /// Current time: everything with a deadline at or before it has fired.
    elapsed: u64,
    heads: [[u32; SLOTS]; LEVELS],
    occupied: [u64; LEVELS],
    entries: Vec<Entry<T>>,
    free: Vec<u32>,
    len: usize,
}

impl<T> TimerWheel<T> {
    /// An empty wheel whose clock reads `now`.
    pub fn new(now: u64) -> Self {
        TimerWheel {
            elapsed: now,
            heads: [[NIL; SLOTS]; LEVELS],
            occupied: [0; LEVELS],
            entries: Vec::new(),
            free: Vec::new(),
            len: 0,
        }
    }

    /// Live timers.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The wheel's current time.
    pub fn now(&self) -> u64 {
        self.elapsed
    }

    /// Schedule `value` for `deadline` (a deadline in the past fires at the
    /// next [`TimerWheel::advance`]).
    pub fn insert(&mut self, deadline: u64, value: T) -> TimerId {
        let index = match self.free.pop() {
            Some(i) => {
                let e = &mut self.entries[i as usize];
                e.deadline = deadline;
                e.value = Some(value);
                e.generation = e.generation.wrapping_add(1);
                i
            }
            None => {
                self.entries.push(Entry {
                    deadline,
                    value: Some(value),
                    generation: 0,
                    prev: NIL,
                    next: NIL,
                    home: (0, 0),
                });
                (self.entries.len() - 1) as u32
            }
        };
        self.len += 1;
        self.link(index);
        TimerId {
            index,
            generation: self.entries[index as usize].generation,
        }
    }

    /// Cancel a timer; its value if it had not fired yet.
    pub fn cancel(&mut self, id: TimerId) -> Option<T> {
        let e = self.entries.get(id.index as usize)?;
        if e.generation != id.generation || e.value.is_none() {
            return None;
        }
        self.unlink(id.index);
        self.release(id.index)
    }

    /// The deadline of a pending timer.
    pub fn deadline(&self, id: TimerId) -> Option<u64> {
        let e = self.entries.get(id.index as usize)?;
        (e.generation == id.generation && e.value.is_some()).then_some(e.deadline)
    }

    /// When the driver should next call [`TimerWheel::advance`]: at or
    /// before the earliest pending deadline (`None` when empty).
    pub fn next_wake(&self) -> Option<u64> {
        self.next_slot().map(|(_, _, t)| t)
    }

    /// Move the clock to `now` and append every timer due at or before it
    /// to `fired`, in deadline order (ties in insertion order within a slot).
    pub fn advance(&mut self, now: u64, fired: &mut Vec<T>) {
        while let Some((level, slot, start)) = self.next_slot() {
            if start > now {
                break;
            }
            self.elapsed = self.elapsed.max(start);
            let mut cur = self.heads[level][slot];
            self.heads[level][slot] = NIL;
            self.occupied[level] &= !(1u64 << slot);
            while cur != NIL {
                let next = self.entries[cur as usize].next;
                let deadline = self.entries[cur as usize].deadline;
                if deadline <= now && (level == 0 || deadline <= self.elapsed) {
                    if let Some(v) = self.release(cur) {
                        fired.push(v);
                    }
                } else {
                    self.link(cur);
                }
                cur = next;
            }
        }
        self.elapsed = self.elapsed.max(now);
    }

    /// The earliest occupied slot: (level, slot, start time).
    fn next_slot(&self) -> Option<(usize, usize, u64)> {
        for level in 0..LEVELS {
            let bits = self.occupied[level];
            if bits == 0 {
                continue;
            }
            let shift = BITS as usize * level;
            let slot_span = 1u64 << shift;
            let level_span = slot_span << BITS;
            let current = ((self.elapsed >> shift) as usize) & (SLOTS - 1);
            let rotated = bits.rotate_right(current as u32);
            let offset = rotated.trailing_zeros() as usize;
            let slot = (current + offset) & (SLOTS - 1);
            let base = self.elapsed & !(level_span - 1);
            let mut start = base + slot as u64 * slot_span;
            if slot < current {
                start += level_span;
            }
            return Some((level, slot, start));
        }
        None
    }

    fn link(&mut self, index: u32) {
        let deadline = self.entries[index as usize].deadline;
        let target = deadline
            .max(self.elapsed)
            .min(self.elapsed.saturating_add(MAX_DISTANCE));
        let diff = (target ^ self.elapsed) | (SLOTS as u64 - 1);
        let level = ((63 - diff.leading_zeros()) / BITS) as usize;
        let level = level.min(LEVELS - 1);
        let slot = ((target >> (BITS as usize * level)) as usize) & (SLOTS - 1);
        let head = self.heads[level][slot];
        {
            let e = &mut self.entries[index as usize];
            e.prev = NIL;
            e.next = head;
            e.home = (level as u8, slot as u8);
        }
        if head != NIL {
            self.entries[head as usize].prev = index;
        }
        self.heads[level][slot] = index;
        self.occupied[level] |= 1u64 << slot;
    }

    fn unlink(&mut self, index: u32) {
        let (prev, next, (level, slot)) = {
            let e = &self.entries[index as usize];
            (e.prev, e.next, e.home)
        };
        let (level, slot) = (level as usize, slot as usize);
        if prev != NIL {
            self.entries[prev as usize].next = next;
        } else if self.heads[level][slot] == index {
            self.heads[level][slot] = next;
            if next == NIL {
                self.occupied[level] &= !(1u64 << slot);
            }
        }
        if next != NIL {
            self.entries[next as usize].prev = prev;
        }
    }

    fn release(&mut self, index: u32) -> Option<T> {
        let e = &mut self.entries[index as usize];
        e.prev = NIL;
        e.next = NIL;
        let v = e.value.take();
        if v.is_some() {
            self.free.push(index);
            self.len -= 1;
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    /// Random operations against a naive model (a sorted map).
    #[test]
    fn agrees_with_a_sorted_map_model() {
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut rnd = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for round in 0..20 {
            let start = rnd() % (1 << 40);
            let mut w = TimerWheel::new(start);
            let mut model: BTreeMap<(u64, u64), u64> = BTreeMap::new();
            let mut ids = Vec::new();
            let mut now = start;
            for n in 0..3000u64 {
                match rnd() % 10 {
                    0..=4 => {
                        let dist = match rnd() % 4 {
                            0 => rnd() % 64,
                            1 => rnd() % 5000,
                            2 => rnd() % (1 << 24),
                            _ => rnd() % (1 << 38),
                        };
                        let d = (now + dist).saturating_sub(rnd() % 3);
                        let id = w.insert(d, n);
                        model.insert((d.max(now), n), n);
                        ids.push((id, d.max(now), n));
                    }
                    5 if !ids.is_empty() => {
                        let (id, d, v) = ids.swap_remove((rnd() as usize) % ids.len());
                        assert_eq!(w.cancel(id), model.remove(&(d, v)), "round {round}");
                    }
                    _ => {
                        now += match rnd() % 3 {
                            0 => rnd() % 10,
                            1 => rnd() % 10_000,
                            _ => rnd() % (1 << 30),
                        };
                        let mut fired = Vec::new();
                        w.advance(now, &mut fired);
                        let due: Vec<(u64, u64)> =
                            model.range(..(now + 1, 0)).map(|(k, _)| *k).collect();
                        let mut expected: Vec<u64> = Vec::new();
                        for k in due {
                            expected.push(model.remove(&k).unwrap());
                        }
                        let mut got = fired.clone();
                        got.sort_unstable();
                        expected.sort_unstable();
                        assert_eq!(got, expected, "round {round} at {now}");
                        // Deadline order.
                        let deadlines: Vec<u64> =
                            fired.iter().map(|v| ids_deadline(&ids, *v)).collect();
                        assert!(
                            deadlines.windows(2).all(|p| p[0] <= p[1]),
                            "fired out of order"
                        );
                        ids.retain(|(_, _, v)| !fired.contains(v));
                    }
                }
                assert_eq!(w.len(), model.len());
                if let (Some(wake), Some(((first, _), _))) = (w.next_wake(), model.iter().next()) {
                    assert!(
                        wake <= *first,
                        "next_wake {wake} after the earliest deadline {first}"
                    );
                }
            }
        }
    }

    fn ids_deadline(ids: &[(TimerId, u64, u64)], v: u64) -> u64 {
        ids.iter()
            .find(|(_, _, x)| *x == v)
            .map(|(_, d, _)| *d)
            .unwrap_or(0)
    }

    #[test]
    fn cancellation_before_and_after_firing() {
        let mut w = TimerWheel::new(0);
        let a = w.insert(100, 'a');
        let b = w.insert(100, 'b');
        let c = w.insert(5_000, 'c');
        assert_eq!(w.cancel(b), Some('b'));
        assert_eq!(w.cancel(b), None, "twice");
        assert_eq!(w.deadline(c), Some(5_000));
        let mut out = Vec::new();
        w.advance(200, &mut out);
        assert_eq!(out, ['a']);
        assert_eq!(w.cancel(a), None, "already fired");
        // A recycled slab slot does not answer to the old handle.
        let d = w.insert(300, 'd');
        assert_ne!(d, a);
        assert_eq!(w.cancel(a), None);
        assert_eq!(w.cancel(c), Some('c'));
        assert_eq!(w.len(), 1);
    }

    #[test]
    fn timers_cascade_down_the_levels_in_order() {
        let mut w = TimerWheel::new(0);
        // One timer per level: 64^k ms apart.
        let deadlines = [3u64, 70, 4_100, 262_200, 16_777_300, 1_073_741_900];
        for (i, d) in deadlines.iter().enumerate().rev() {
            w.insert(*d, i);
        }
        let mut fired = Vec::new();
        let mut wakes = 0;
        while let Some(t) = w.next_wake() {
            w.advance(t, &mut fired);
            wakes += 1;
            assert!(wakes < 100, "the wheel must converge");
        }
        assert_eq!(fired, [0, 1, 2, 3, 4, 5]);
        assert_eq!(w.now(), 1_073_741_900);
    }

    #[test]
    fn far_future_deadlines_are_parked_and_replaced() {
        let mut w = TimerWheel::new(1_000);
        let far = 1_000 + (1u64 << 40);
        w.insert(far, "far");
        w.insert(u64::MAX, "never");
        let mut out = Vec::new();
        w.advance(far - 1, &mut out);
        assert!(out.is_empty());
        w.advance(far, &mut out);
        assert_eq!(out, ["far"]);
        assert_eq!(w.len(), 1);
    }

    #[test]
    fn ticking_does_not_allocate_after_warm_up() {
        let mut w = TimerWheel::new(0);
        let mut fired = Vec::with_capacity(16);
        for i in 0..16 {
            w.insert(i * 1000, i);
        }
        let cap = w.entries.capacity();
        for t in 0..100_000u64 {
            fired.clear();
            w.advance(t * 7, &mut fired);
            for v in fired.drain(..) {
                w.insert(t * 7 + 1000 + v, v);
            }
        }
        assert_eq!(w.entries.capacity(), cap, "the slab did not grow");
        assert_eq!(w.len(), 16);
    }

    #[test]
    fn fires_in_order_with_a_fake_clock() {
        let mut w = TimerWheel::new(1_000);
        for (d, v) in [
            (1_005, 'a'),
            (1_064, 'b'),
            (5_000, 'c'),
            (1_000 + (1 << 20), 'd'),
            (999, 'z'),
        ] {
            w.insert(d, v);
        }
        let mut out = Vec::new();
        w.advance(1_000, &mut out);
        assert_eq!(out, ['z'], "past deadlines fire at once");
        out.clear();
        w.advance(1_004, &mut out);
        assert!(out.is_empty());
        w.advance(1_100, &mut out);
        assert_eq!(out, ['a', 'b']);
        out.clear();
        w.advance(4_999, &mut out);
        assert!(out.is_empty());
        w.advance(5_000, &mut out);
        assert_eq!(out, ['c']);
        out.clear();
        w.advance(u64::MAX / 2, &mut out);
        assert_eq!(out, ['d']);
        assert!(w.is_empty());
    }
}
