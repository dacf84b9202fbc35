//! Binding expiry: a hashed timer wheel per worker.
//!
//! A server with a million bindings sees hundreds of expiries and refreshes a second, and after
//! a restart or an outage many of them fall due together. A sorted structure would make each
//! schedule O(log n) and a burst of expiries one long pause of the worker. The wheel makes both
//! O(1): a deadline is rounded up to a tick and pushed onto that tick's slot; advancing the clock
//! drains whole slots, at most `budget` entries per call so that a burst is spread over several
//! turns of the worker loop instead of stalling it.
//!
//! Entries are never cancelled. A refresh schedules a new entry and leaves the old one to fall
//! due; the caller checks each popped entry against the location table
//! (`LocationTable::expire`), where a binding whose expiry moved no longer matches. That keeps the
//! wheel free of back-pointers into the table, and a refresh O(1) too.
//!
//! The wheel spans `slots` ticks (default 65 536: 18 h at one-second ticks, beyond any sane
//! registration interval). Deadlines further out wait in an overflow heap and move into the wheel
//! once they come within its span; that costs O(log n) for those few only, and each moves once.
//!
//! Sans-IO: the caller passes the time, in milliseconds since the UNIX epoch.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::sync::Arc;

/// One scheduled expiry of a binding, identified by user and contact.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExpiryEntry {
    pub user: Arc<str>,
    pub contact: Arc<str>,
    pub expires_at_ms: u64,
}

/// Default span of the wheel in ticks; a power of two.
pub const DEFAULT_SLOTS: usize = 1 << 16;

/// Entries a slot's chunk holds before the slot starts another. Growing one vector per slot
/// would copy the whole slot on each doubling: after a restart that reloads a million bindings
/// due in the same second, one `schedule` would copy tens of megabytes.
const CHUNK: usize = 256;

/// Emptied full-size chunks kept for reuse (2.5 MiB at most), and a slot keeps its (small) list
/// of chunks when drained, so that in the steady state (expiries and refreshes in balance)
/// `advance` neither allocates nor frees. Only a net shrink of the wheel hands chunks back.
/// That matters with glibc malloc, where one free can consolidate every small block freed since
/// the last consolidation: after a million bindings expired that took 0.6-1.8 s in one call
/// (bench/examples/expiry_stall.rs), wherever the triggering free happened.
const SPARE_CHUNKS: usize = 256;

pub struct ExpiryWheel {
    tick_ms: u64,
    /// The first tick whose slot may still hold entries: every tick before it has been drained.
    /// The wheel holds exactly the entries of ticks `cur .. cur + slots`, each in slot
    /// `tick & mask`.
    cur: u64,
    mask: u64,
    slots: Box<[Slot]>,
    /// One bit per non-empty slot, and one bit per non-zero word of that, so that finding the
    /// next due slot is a few word scans even in a sparse wheel.
    occupied: Box<[u64]>,
    summary: Box<[u64]>,
    /// Entries due at or after `cur + slots`; min-heap by tick.
    overflow: BinaryHeap<Far>,
    spare: Vec<Vec<ExpiryEntry>>,
    len: usize,
}

#[derive(Default)]
struct Slot {
    chunks: Vec<Vec<ExpiryEntry>>,
}

impl Slot {
    fn push(&mut self, e: ExpiryEntry, spare: &mut Vec<Vec<ExpiryEntry>>) {
        match self.chunks.last_mut() {
            Some(c) if c.len() < c.capacity() || c.capacity() < CHUNK => c.push(e),
            // A slot's first chunk starts small: most slots of a sparse wheel hold a few
            // entries, and a full chunk each would be 10 KiB times 65 536 slots.
            None => self.chunks.push(vec![e]),
            Some(_) => {
                let mut c = spare.pop().unwrap_or_else(|| Vec::with_capacity(CHUNK));
                c.push(e);
                self.chunks.push(c);
            }
        }
    }

    /// Moves up to `n` entries into `out`; returns how many.
    fn drain_into(
        &mut self,
        n: usize,
        out: &mut Vec<ExpiryEntry>,
        spare: &mut Vec<Vec<ExpiryEntry>>,
    ) -> usize {
        let mut moved = 0;
        while moved < n {
            let Some(c) = self.chunks.last_mut() else {
                break;
            };
            let take = (n - moved).min(c.len());
            out.extend(c.drain(c.len() - take..));
            moved += take;
            if c.is_empty() {
                if let Some(c) = self.chunks.pop() {
                    if c.capacity() == CHUNK && spare.len() < SPARE_CHUNKS {
                        spare.push(c);
                    }
                }
            }
        }
        moved
    }

    fn is_empty(&self) -> bool {
        self.chunks.is_empty()
    }
}

struct Far {
    tick: u64,
    entry: ExpiryEntry,
}

impl PartialEq for Far {
    fn eq(&self, other: &Self) -> bool {
        self.tick == other.tick
    }
}
impl Eq for Far {}
impl PartialOrd for Far {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Far {
    /// Reversed, so that `BinaryHeap` (a max-heap) yields the earliest tick first.
    fn cmp(&self, other: &Self) -> Ordering {
        other.tick.cmp(&self.tick)
    }
}

impl ExpiryWheel {
    /// A wheel of `DEFAULT_SLOTS` ticks of `tick_ms` milliseconds (a zero tick counts as 1 ms).
    pub fn new(now_ms: u64, tick_ms: u64) -> Self {
        Self::with_slots(now_ms, tick_ms, DEFAULT_SLOTS)
    }

    /// A wheel spanning `slots` ticks, rounded up to a power of two and at least 64.
    pub fn with_slots(now_ms: u64, tick_ms: u64, slots: usize) -> Self {
        let tick_ms = tick_ms.max(1);
        let slots = slots.max(64).next_power_of_two();
        let words = slots / 64;
        ExpiryWheel {
            tick_ms,
            cur: now_ms / tick_ms,
            mask: slots as u64 - 1,
            slots: (0..slots).map(|_| Slot::default()).collect(),
            occupied: vec![0; words].into_boxed_slice(),
            summary: vec![0; words.div_ceil(64)].into_boxed_slice(),
            overflow: BinaryHeap::new(),
            // Sized once: growing it inside `advance` would be an allocation there.
            spare: Vec::with_capacity(SPARE_CHUNKS),
            len: 0,
        }
    }

    pub fn tick_ms(&self) -> u64 {
        self.tick_ms
    }

    /// Entries scheduled and not yet popped, stale ones included.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Schedules `entry`; it is popped by the first `advance` whose `now_ms` reaches the end of
    /// the tick holding `expires_at_ms` (never before `expires_at_ms`, at most one tick after).
    /// An entry already due is popped by the next `advance`. O(1) within the wheel's span.
    pub fn schedule(&mut self, entry: ExpiryEntry) {
        let tick = entry.expires_at_ms.div_ceil(self.tick_ms).max(self.cur);
        self.len += 1;
        if tick - self.cur <= self.mask {
            self.put(tick, entry);
        } else {
            self.overflow.push(Far { tick, entry });
        }
    }

    /// Pops into `out` entries due at or before `now_ms`, at most `budget` of them, earlier ticks
    /// first (entries of one tick in no particular order). When `budget` entries were popped
    /// there may be more due: call again on the next turn of the loop, or when
    /// `next_deadline_ms` is at or before `now_ms`.
    pub fn advance(&mut self, now_ms: u64, budget: usize, out: &mut Vec<ExpiryEntry>) {
        let due = now_ms / self.tick_ms;
        let mut left = budget;
        // Moving entries out of the overflow heap is bounded separately: it pops nothing for
        // the caller but costs a heap operation each.
        let mut moves = budget;
        while left > 0 {
            if !self.migrate(&mut moves) || self.cur > due {
                break;
            }
            match self.next_occupied() {
                Some(tick) if tick <= due => {
                    self.cur = tick;
                    let slot = (tick & self.mask) as usize;
                    let popped = self.slots[slot].drain_into(left, out, &mut self.spare);
                    left -= popped;
                    self.len -= popped;
                    if !self.slots[slot].is_empty() {
                        break;
                    }
                    self.clear_bit(slot);
                    self.cur = tick + 1;
                }
                // Nothing in the wheel is due: skip the empty ticks, but not past an overflow
                // entry, which must enter the wheel before its tick is passed.
                _ => {
                    let mut next = due + 1;
                    if let Some(far) = self.overflow.peek() {
                        next = next.min(far.tick);
                    }
                    self.cur = next.max(self.cur);
                    if self.cur > due {
                        // Entries that came within the span by this jump move in now, so the
                        // next `next_deadline_ms` sees them.
                        self.migrate(&mut moves);
                        break;
                    }
                }
            }
        }
    }

    /// When the next entry falls due (the end of its tick), `None` when the wheel is empty. At
    /// or before the current time when `advance` stopped at its budget.
    pub fn next_deadline_ms(&self) -> Option<u64> {
        let wheel = self.next_occupied();
        let far = self.overflow.peek().map(|f| f.tick);
        let tick = match (wheel, far) {
            (Some(w), Some(f)) => w.min(f),
            (w, f) => w.or(f)?,
        };
        Some(tick.saturating_mul(self.tick_ms))
    }

    fn put(&mut self, tick: u64, entry: ExpiryEntry) {
        let slot = (tick & self.mask) as usize;
        self.slots[slot].push(entry, &mut self.spare);
        self.occupied[slot / 64] |= 1 << (slot % 64);
        self.summary[slot / 4096] |= 1 << ((slot / 64) % 64);
    }

    fn clear_bit(&mut self, slot: usize) {
        let w = slot / 64;
        self.occupied[w] &= !(1 << (slot % 64));
        if self.occupied[w] == 0 {
            self.summary[w / 64] &= !(1 << (w % 64));
        }
    }

    /// Moves overflow entries that are now within the wheel's span into it, at most `moves`.
    /// Returns false when some are left (the budget ran out), in which case `cur` must not move:
    /// an entry left in the heap could be passed over.
    fn migrate(&mut self, moves: &mut usize) -> bool {
        while let Some(far) = self.overflow.peek() {
            if far.tick.saturating_sub(self.cur) > self.mask {
                return true;
            }
            if *moves == 0 {
                return false;
            }
            *moves -= 1;
            if let Some(Far { tick, entry }) = self.overflow.pop() {
                self.put(tick.max(self.cur), entry);
            }
        }
        true
    }

    /// The earliest tick with a non-empty slot: the first set bit at or after `cur`'s slot,
    /// wrapping around the ring.
    fn next_occupied(&self) -> Option<u64> {
        let start = (self.cur & self.mask) as usize;
        let slot = self
            .first_set_from(start)
            .or_else(|| self.first_set_from(0).filter(|&s| s < start))?;
        let ahead = (slot as u64).wrapping_sub(start as u64) & self.mask;
        Some(self.cur + ahead)
    }

    /// The first non-empty slot at index `from` or later, without wrapping.
    fn first_set_from(&self, from: usize) -> Option<usize> {
        let w = from / 64;
        let bits = self.occupied[w] & (u64::MAX << (from % 64));
        if bits != 0 {
            return Some(w * 64 + bits.trailing_zeros() as usize);
        }
        // Words after `w` that have a bit set, from the summary.
        let next_word = w + 1;
        let mut s = next_word / 64;
        if s >= self.summary.len() {
            return None;
        }
        let mut bits = self.summary[s] & (u64::MAX << (next_word % 64));
        loop {
            if bits != 0 {
                let word = s * 64 + bits.trailing_zeros() as usize;
                return Some(word * 64 + self.occupied[word].trailing_zeros() as usize);
            }
            s += 1;
            if s >= self.summary.len() {
                return None;
            }
            bits = self.summary[s];
        }
    }
}

impl std::fmt::Debug for ExpiryWheel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExpiryWheel")
            .field("tick_ms", &self.tick_ms)
            .field("slots", &self.slots.len())
            .field("len", &self.len)
            .field("overflow", &self.overflow.len())
            .field("next_deadline_ms", &self.next_deadline_ms())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(user: &str, expires_at_ms: u64) -> ExpiryEntry {
        ExpiryEntry {
            user: user.into(),
            contact: format!("sip:{user}@host").into(),
            expires_at_ms,
        }
    }

    /// Advances to `now` with an unlimited budget.
    fn pop(w: &mut ExpiryWheel, now: u64) -> Vec<ExpiryEntry> {
        let mut out = Vec::new();
        w.advance(now, usize::MAX, &mut out);
        out
    }

    const T0: u64 = 1_700_000_000_000;

    #[test]
    fn pops_in_tick_order_never_early() {
        let mut w = ExpiryWheel::new(T0, 1000);
        for (u, at) in [("c", 3_500), ("a", 1_000), ("b", 2_001), ("d", 10_000)] {
            w.schedule(entry(u, T0 + at));
        }
        assert_eq!(w.len(), 4);
        assert_eq!(w.next_deadline_ms(), Some(T0 + 1_000));
        assert!(pop(&mut w, T0 + 999).is_empty());
        assert_eq!(pop(&mut w, T0 + 1_000), vec![entry("a", T0 + 1_000)]);
        // 2 001 rounds up to the end of its tick.
        assert_eq!(w.next_deadline_ms(), Some(T0 + 3_000));
        assert!(pop(&mut w, T0 + 2_999).is_empty());
        let got: Vec<_> = pop(&mut w, T0 + 5_000)
            .into_iter()
            .map(|e| e.user.to_string())
            .collect();
        assert_eq!(got, ["b", "c"]);
        assert_eq!(w.len(), 1);
        assert_eq!(w.next_deadline_ms(), Some(T0 + 10_000));
        assert_eq!(pop(&mut w, T0 + 60_000), vec![entry("d", T0 + 10_000)]);
        assert!(w.is_empty());
        assert_eq!(w.next_deadline_ms(), None);
    }

    #[test]
    fn past_deadlines_pop_on_the_next_advance() {
        let mut w = ExpiryWheel::new(T0, 1000);
        w.schedule(entry("old", T0 - 50_000));
        assert_eq!(w.next_deadline_ms(), Some(T0));
        assert_eq!(pop(&mut w, T0), vec![entry("old", T0 - 50_000)]);
    }

    #[test]
    fn far_future_entries_cascade_in_order() {
        // 64 one-second slots: everything past a minute goes through the overflow heap.
        let mut w = ExpiryWheel::with_slots(T0, 1000, 64);
        let days = [
            3 * 86_400_000,
            86_400_000,
            90_000,
            63_000,
            64_000,
            65_000,
            7 * 86_400_000,
        ];
        for (i, at) in days.iter().enumerate() {
            w.schedule(entry(&format!("u{i}"), T0 + at));
        }
        w.schedule(entry("near", T0 + 5_000));
        let mut sorted: Vec<u64> = days.iter().map(|d| T0 + d).collect();
        sorted.push(T0 + 5_000);
        sorted.sort();
        let mut seen = Vec::new();
        // Stepping a tick at a time across a week would be 600 000 calls; jump from deadline
        // to deadline instead, as a worker does, checking that nothing pops a millisecond early.
        while let Some(next) = w.next_deadline_ms() {
            assert!(pop(&mut w, next - 1).is_empty(), "popped early");
            let got = pop(&mut w, next);
            assert!(!got.is_empty(), "deadline with nothing due");
            for e in got {
                assert!(e.expires_at_ms <= next && next - e.expires_at_ms < 1000);
                seen.push(e.expires_at_ms);
            }
        }
        assert_eq!(seen, sorted);
        assert!(w.is_empty());
    }

    #[test]
    fn jump_over_span_keeps_overflow_order() {
        let mut w = ExpiryWheel::with_slots(T0, 1000, 64);
        w.schedule(entry("far", T0 + 500_000));
        w.schedule(entry("farther", T0 + 900_000));
        // One call, far past both: nothing is lost even though the wheel turned many times.
        let got: Vec<_> = pop(&mut w, T0 + 10_000_000)
            .into_iter()
            .map(|e| e.user.to_string())
            .collect();
        assert_eq!(got, ["far", "farther"]);
    }

    #[test]
    fn budget_is_respected() {
        let mut w = ExpiryWheel::new(T0, 1000);
        for i in 0..10_000u64 {
            w.schedule(entry(&format!("u{i}"), T0 + 1 + i % 3_000));
        }
        let mut out = Vec::new();
        let mut calls = 0;
        let mut last_tick_end = 0;
        loop {
            out.clear();
            w.advance(T0 + 3_000, 700, &mut out);
            assert!(out.len() <= 700);
            if out.is_empty() {
                break;
            }
            calls += 1;
            // Still tick order across calls.
            let end = out
                .iter()
                .map(|e| e.expires_at_ms.div_ceil(1000))
                .max()
                .unwrap_or(0);
            let start = out
                .iter()
                .map(|e| e.expires_at_ms.div_ceil(1000))
                .min()
                .unwrap_or(0);
            assert!(start >= last_tick_end);
            last_tick_end = end;
        }
        assert_eq!(calls, 10_000usize.div_ceil(700));
        assert!(w.is_empty());
        // A zero budget pops nothing.
        w.schedule(entry("x", T0));
        w.advance(T0 + 5_000, 0, &mut out);
        assert!(out.is_empty());
        assert_eq!(w.len(), 1);
    }

    #[test]
    fn overflow_migration_is_budgeted_without_losing_entries() {
        let mut w = ExpiryWheel::with_slots(T0, 1000, 64);
        for i in 0..1_000u64 {
            w.schedule(entry(&format!("u{i}"), T0 + 100_000 + i));
        }
        let mut out = Vec::new();
        let mut now = T0;
        let mut count = 0;
        while count < 1_000 {
            now += 500;
            out.clear();
            w.advance(now, 10, &mut out);
            assert!(out.len() <= 10);
            for e in &out {
                assert!(e.expires_at_ms <= now);
            }
            count += out.len();
            assert!(now < T0 + 1_000_000, "stuck");
        }
        assert!(w.is_empty());
    }

    /// A million entries over a minute, advanced one millisecond at a time: each pops exactly
    /// once, never early, and at most one tick late.
    #[test]
    fn million_entries_tick_by_tick() {
        const N: u64 = 1_000_000;
        let mut w = ExpiryWheel::new(T0, 1000);
        let user: Arc<str> = "u".into();
        let mut x = 0x2545_f491_4f6c_dd1du64;
        for i in 0..N {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let at = T0 + 1 + x % 60_000;
            // The contact carries the index so that each pop can be counted.
            w.schedule(ExpiryEntry {
                user: Arc::clone(&user),
                contact: i.to_string().into(),
                expires_at_ms: at,
            });
        }
        let mut seen = vec![false; N as usize];
        let mut out = Vec::new();
        let mut popped = 0;
        for now in T0..=T0 + 61_000 {
            out.clear();
            w.advance(now, usize::MAX, &mut out);
            for e in &out {
                assert!(e.expires_at_ms <= now && now - e.expires_at_ms < 1000);
                let i: usize = e.contact.parse().expect("index");
                assert!(!seen[i], "popped twice");
                seen[i] = true;
            }
            popped += out.len();
        }
        assert_eq!(popped, N as usize);
        assert!(w.is_empty());
    }
}
