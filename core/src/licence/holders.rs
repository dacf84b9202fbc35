//! The two shared pieces the licence pool is built from, as traits so the same algorithm runs
//! on production types (papaya's lock-free map, `std` atomics) and on loom's model-checked
//! stand-ins (`core/tests/licence_loom.rs`).

use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::OnceLock;

/// Who holds a licence, since when. Every operation must be linearizable (papaya's are).
pub trait HolderMap: Send + Sync {
    /// The claim time of `id`'s licence.
    fn get(&self, id: u32) -> Option<u32>;
    /// Inserts unless `id` is present; whether it inserted.
    fn try_insert(&self, id: u32, since: u32) -> bool;
    /// Removes `id`; whether it was present.
    fn remove(&self, id: u32) -> bool;
    fn snapshot(&self) -> Vec<(u32, u32)>;
    /// The highest id the map can hold.
    fn max_id(&self) -> u32 {
        u32::MAX
    }
}

/// The number of licences taken.
pub trait Counter: Send + Sync {
    fn load(&self) -> usize;
    /// Adds one if the count is below `limit`; whether it did.
    fn try_increment(&self, limit: usize) -> bool;
    fn decrement(&self);
}

impl Counter for AtomicUsize {
    fn load(&self) -> usize {
        AtomicUsize::load(self, Ordering::Acquire)
    }

    fn try_increment(&self, limit: usize) -> bool {
        self.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
            (n < limit).then_some(n + 1)
        })
        .is_ok()
    }

    fn decrement(&self) {
        self.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Log-on ids the dense holder table can hold: ids are the store's row ids, dense from 1.
pub const MAX_LOG_ON_ID: u32 = (PAGES * PAGE) as u32 - 1;

const PAGE: usize = 4096;
const PAGES: usize = 4096;

/// The production holder map: one atomic word per log-on id (0 = no licence, else the claim
/// time), in pages allocated on first use. Every operation is a single atomic instruction on
/// one word, so each is linearizable and none allocates after the page exists; measured
/// against papaya's map and a mutex-guarded `HashMap` in `bench/benches/licences.rs`.
pub struct DenseHolders {
    pages: Box<[OnceLock<Box<[AtomicU32]>>]>,
}

impl Default for DenseHolders {
    fn default() -> Self {
        DenseHolders {
            pages: (0..PAGES).map(|_| OnceLock::new()).collect(),
        }
    }
}

impl DenseHolders {
    fn cell(&self, id: u32) -> Option<&AtomicU32> {
        let (page, slot) = (id as usize / PAGE, id as usize % PAGE);
        self.pages.get(page)?.get().map(|p| &p[slot])
    }

    fn cell_or_create(&self, id: u32) -> Option<&AtomicU32> {
        let (page, slot) = (id as usize / PAGE, id as usize % PAGE);
        let p = self
            .pages
            .get(page)?
            .get_or_init(|| (0..PAGE).map(|_| AtomicU32::new(0)).collect());
        Some(&p[slot])
    }
}

impl HolderMap for DenseHolders {
    fn max_id(&self) -> u32 {
        MAX_LOG_ON_ID
    }

    fn get(&self, id: u32) -> Option<u32> {
        match self.cell(id)?.load(Ordering::Acquire) {
            0 => None,
            since => Some(since),
        }
    }

    fn try_insert(&self, id: u32, since: u32) -> bool {
        // An id beyond the table never holds a licence: refused like a full pool.
        self.cell_or_create(id).is_some_and(|c| {
            c.compare_exchange(0, since.max(1), Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        })
    }

    fn remove(&self, id: u32) -> bool {
        self.cell(id)
            .is_some_and(|c| c.swap(0, Ordering::AcqRel) != 0)
    }

    fn snapshot(&self) -> Vec<(u32, u32)> {
        let mut out = Vec::new();
        for (p, page) in self.pages.iter().enumerate() {
            let Some(page) = page.get() else { continue };
            for (s, c) in page.iter().enumerate() {
                let since = c.load(Ordering::Acquire);
                if since != 0 {
                    out.push(((p * PAGE + s) as u32, since));
                }
            }
        }
        out
    }
}
