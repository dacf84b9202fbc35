//! The lock-free heart of the licence pool: a fixed row of cells, each empty (0) or holding the
//! id of the log-on that occupies it together with when it claimed it (one word, so the holder
//! and its time can never be seen torn apart). A licence is a cell, so the pool can never hand out more
//! licences than it has cells below the limit, whatever the interleaving: a cell changes hands
//! only by a compare-and-swap from empty.
//!
//! Generic over the cell type so the same code runs on `std` atomics in production and on
//! loom's model-checked atomics in `core/tests/licence_loom.rs`.

use std::sync::atomic::{AtomicU64, Ordering};

/// An atomic 64-bit cell. Implemented for `std`'s `AtomicU64` here and for loom's in the tests.
pub trait SlotCell: Send + Sync {
    fn empty() -> Self;
    fn load(&self) -> u64;
    /// Stores `new` if the cell holds `current`; returns what it held.
    fn compare_exchange(&self, current: u64, new: u64) -> Result<u64, u64>;
    fn swap(&self, new: u64) -> u64;
    /// A read-modify-write that changes nothing: unlike a plain load it always reads the
    /// latest value in the cell's modification order.
    fn read_latest(&self) -> u64;
}

impl SlotCell for AtomicU64 {
    fn empty() -> Self {
        AtomicU64::new(0)
    }
    fn load(&self) -> u64 {
        AtomicU64::load(self, Ordering::Acquire)
    }
    fn compare_exchange(&self, current: u64, new: u64) -> Result<u64, u64> {
        AtomicU64::compare_exchange(self, current, new, Ordering::AcqRel, Ordering::Acquire)
    }
    fn swap(&self, new: u64) -> u64 {
        AtomicU64::swap(self, new, Ordering::AcqRel)
    }
    fn read_latest(&self) -> u64 {
        self.fetch_add(0, Ordering::AcqRel)
    }
}

/// What a claim found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Claimed {
    /// The log-on already held a licence.
    Held,
    /// A free licence was taken.
    Granted,
    /// Every licence below the limit is taken.
    Exhausted,
}

/// A cell's word: log-on id in the high half, claim time (seconds) in the low half.
fn pack(id: u32, stamp: u32) -> u64 {
    (u64::from(id) << 32) | u64::from(stamp)
}

fn id_of(word: u64) -> u32 {
    (word >> 32) as u32
}

/// `capacity` cells. Claims use only cells below `limit`; lookups and releases look up to
/// `scan` (the highest limit ever set, so holders left above a lowered limit are still found).
pub struct SlotTable<C> {
    cells: Box<[C]>,
}

impl<C: SlotCell> SlotTable<C> {
    pub fn new(capacity: usize) -> SlotTable<C> {
        SlotTable {
            cells: (0..capacity).map(|_| C::empty()).collect(),
        }
    }

    pub fn capacity(&self) -> usize {
        self.cells.len()
    }

    fn upto(&self, scan: usize) -> &[C] {
        &self.cells[..scan.min(self.cells.len())]
    }

    /// The claim time of `id`'s licence, if it holds one.
    pub fn find(&self, id: u32, scan: usize) -> Option<u32> {
        self.upto(scan)
            .iter()
            .map(C::load)
            .find(|&w| w != 0 && id_of(w) == id)
            .map(|w| w as u32)
    }

    /// Gives log-on `id` (non-zero) a cell below `limit`, stamped `stamp`, probing from
    /// `start` so that concurrent claimants mostly try different cells.
    pub fn claim(&self, id: u32, stamp: u32, start: usize, limit: usize, scan: usize) -> Claimed {
        debug_assert_ne!(id, 0, "id 0 would be an empty cell");
        if self.find(id, scan).is_some() {
            return Claimed::Held;
        }
        let limit = limit.min(self.cells.len());
        let word = pack(id, stamp);
        for probe in 0..limit {
            let i = (start + probe) % limit;
            if self.cells[i].load() != 0 || self.cells[i].compare_exchange(0, word).is_err() {
                continue;
            }
            return self.settle(id, i, word, scan.max(limit));
        }
        Claimed::Exhausted
    }

    /// A concurrent claim for the same log-on may have taken another cell. Of any two such
    /// cells the higher one is emptied, by whichever claimant sees the pair (both may; one
    /// compare-and-swap then fails harmlessly), so once every claim has returned the log-on
    /// holds exactly one cell.
    ///
    /// Each claimant writes its own cell, then reads the others': the store-buffering
    /// pattern, where plain acquire loads may both read stale and both claimants keep a cell
    /// (loom finds that interleaving). Reading with a read-modify-write closes it: of two RMWs
    /// on one cell one reads the other's write, which orders the claimant's own earlier write
    /// before the other's reads.
    fn settle(&self, id: u32, mine: usize, word: u64, scan: usize) -> Claimed {
        let mut kept = true;
        for (j, c) in self.upto(scan).iter().enumerate() {
            let other = c.read_latest();
            if j == mine || other == 0 || id_of(other) != id {
                continue;
            }
            if j > mine {
                let _ = c.compare_exchange(other, 0);
            } else if kept {
                // Fails only if a release already emptied our cell: nothing left to undo.
                let _ = self.cells[mine].compare_exchange(word, 0);
                kept = false;
            }
        }
        if kept {
            Claimed::Granted
        } else {
            Claimed::Held
        }
    }

    /// Frees every cell `id` holds; whether it held one.
    pub fn release(&self, id: u32, scan: usize) -> bool {
        let mut freed = false;
        for c in self.upto(scan) {
            let w = c.load();
            if w != 0 && id_of(w) == id && c.compare_exchange(w, 0).is_ok() {
                freed = true;
            }
        }
        freed
    }

    /// Empties every cell; the ids that held one.
    pub fn clear(&self, scan: usize) -> Vec<u32> {
        self.upto(scan)
            .iter()
            .map(|c| c.swap(0))
            .filter(|&w| w != 0)
            .map(id_of)
            .collect()
    }

    /// Every holder as `(id, stamp)`, in cell order.
    pub fn holders(&self, scan: usize) -> Vec<(u32, u32)> {
        self.upto(scan)
            .iter()
            .map(C::load)
            .filter(|&w| w != 0)
            .map(|w| (id_of(w), w as u32))
            .collect()
    }

    /// Occupied cells below `scan`.
    pub fn in_use(&self, scan: usize) -> usize {
        self.upto(scan).iter().filter(|c| c.load() != 0).count()
    }
}
