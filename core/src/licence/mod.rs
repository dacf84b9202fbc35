//! Floating licences (seeds 000/002): a fixed number of licences shared by every SIP log-on.
//!
//! The rules this module keeps, in the seed's words: "Only every new SIP log-on occupies a new
//! licence. The technical log-on process of a SIP subscriber with a valid user name and correct
//! password is always successful. Only when a connection is established is there an attempt made
//! to occupy a licence under the SIP log-on. If all licences are occupied currently, the SIP
//! subscriber can only make emergency calls." and "When a SIP subscriber logs off [...] the
//! associated licence will become available immediately. A licence is also made available when a
//! SIP subscriber's regular status query is not conducted."
//!
//! So registration never touches the pool; the call path claims (see [`crate::admission`]), and
//! the registrar's last-binding-gone events release. [`LicencePool::reset`] is the status page's
//! "Reset licences".

mod slots;

pub use slots::{Claimed, SlotCell, SlotTable};

use std::sync::atomic::{AtomicUsize, Ordering};

/// Most licences a pool can be configured with; also its fixed allocation (8 bytes each, and
/// pages never written are never touched), so the total can be raised at run time without
/// moving the table.
pub const MAX_LICENCES: usize = 65_536;

/// A log-on that holds a licence, and since when (seconds since the UNIX epoch).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Holder {
    pub log_on: u32,
    pub since_unix_s: u32,
}

/// The pool. Every operation is lock-free: claims and releases run on the SIP workers, status
/// and reset on the admin threads.
pub struct LicencePool {
    table: SlotTable<std::sync::atomic::AtomicU64>,
    total: AtomicUsize,
    /// The highest total ever set: holders above a lowered total are still found here.
    scan: AtomicUsize,
}

impl LicencePool {
    pub fn new(total: u32) -> LicencePool {
        let total = (total as usize).min(MAX_LICENCES);
        LicencePool {
            table: SlotTable::new(MAX_LICENCES),
            total: AtomicUsize::new(total),
            scan: AtomicUsize::new(total),
        }
    }

    pub fn total(&self) -> u32 {
        self.total.load(Ordering::Acquire) as u32
    }

    /// Changes the number of licences. Lowering it takes no licence away: holders above the
    /// new total keep theirs until they release, and no new claim succeeds meanwhile.
    pub fn set_total(&self, total: u32) -> Result<(), TooMany> {
        let total = total as usize;
        if total > MAX_LICENCES {
            return Err(TooMany(total));
        }
        self.scan.fetch_max(total, Ordering::AcqRel);
        self.total.store(total, Ordering::Release);
        Ok(())
    }

    /// The log-on `id` (non-zero) establishes a connection: it keeps the licence it holds, or
    /// takes a free one.
    pub fn claim(&self, id: u32, now_unix_s: u32) -> Claimed {
        if id == 0 {
            return Claimed::Exhausted;
        }
        let total = self.total.load(Ordering::Acquire);
        if total == 0 {
            return match self.holds(id) {
                true => Claimed::Held,
                false => Claimed::Exhausted,
            };
        }
        // Spread the first probe so two workers claiming at once rarely race for one cell.
        let start = (id as usize).wrapping_mul(0x9E37_79B9) % total;
        self.table
            .claim(id, now_unix_s.max(1), start, total, self.scan())
    }

    /// Whether `id` holds a licence.
    pub fn holds(&self, id: u32) -> bool {
        id != 0 && self.table.find(id, self.scan()).is_some()
    }

    /// The log-on logged off or missed its keepalive: its licence is free at once.
    pub fn release(&self, id: u32) -> bool {
        id != 0 && self.table.release(id, self.scan())
    }

    /// Frees every licence; holders claim again on their next call. Returns who held one.
    pub fn reset(&self) -> Vec<u32> {
        self.table.clear(self.scan())
    }

    pub fn in_use(&self) -> usize {
        self.table.in_use(self.scan())
    }

    pub fn holders(&self) -> Vec<Holder> {
        self.table
            .holders(self.scan())
            .into_iter()
            .map(|(log_on, since_unix_s)| Holder {
                log_on,
                since_unix_s,
            })
            .collect()
    }

    fn scan(&self) -> usize {
        self.scan.load(Ordering::Acquire)
    }
}

/// A total above [`MAX_LICENCES`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TooMany(pub usize);

impl std::fmt::Display for TooMany {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} licences is more than the {MAX_LICENCES} a pool can hold",
            self.0
        )
    }
}

impl std::error::Error for TooMany {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claim_hold_release() {
        let p = LicencePool::new(2);
        assert_eq!(p.claim(1, 100), Claimed::Granted);
        assert_eq!(p.claim(1, 200), Claimed::Held);
        assert_eq!(p.claim(2, 100), Claimed::Granted);
        assert_eq!(p.claim(3, 100), Claimed::Exhausted);
        assert_eq!(p.in_use(), 2);
        assert!(p.release(1));
        assert!(!p.release(1));
        assert_eq!(p.claim(3, 300), Claimed::Granted);
        let mut h = p.holders();
        h.sort_by_key(|h| h.log_on);
        assert_eq!(
            h,
            [
                Holder {
                    log_on: 2,
                    since_unix_s: 100
                },
                Holder {
                    log_on: 3,
                    since_unix_s: 300
                }
            ]
        );
        let mut freed = p.reset();
        freed.sort_unstable();
        assert_eq!(freed, [2, 3]);
        assert_eq!(p.in_use(), 0);
        assert_eq!(p.claim(0, 1), Claimed::Exhausted, "id 0 is never a log-on");
    }

    #[test]
    fn lowering_the_total_keeps_holders_until_they_release() {
        let p = LicencePool::new(3);
        for id in 1..=3 {
            assert_eq!(p.claim(id, 1), Claimed::Granted);
        }
        p.set_total(1).unwrap();
        assert_eq!(p.in_use(), 3);
        assert_eq!(p.claim(3, 2), Claimed::Held);
        assert_eq!(p.claim(4, 2), Claimed::Exhausted);
        p.release(1);
        p.release(2);
        p.release(3);
        assert_eq!(p.claim(4, 2), Claimed::Granted);
        assert_eq!(p.claim(5, 2), Claimed::Exhausted);
        assert!(p.set_total(MAX_LICENCES as u32 + 1).is_err());
        p.set_total(0).unwrap();
        assert_eq!(p.claim(4, 3), Claimed::Held);
        assert_eq!(p.claim(6, 3), Claimed::Exhausted);
    }

    #[test]
    fn threads_never_exceed_the_total() {
        let p = std::sync::Arc::new(LicencePool::new(8));
        let threads: Vec<_> = (0..4u32)
            .map(|t| {
                let p = p.clone();
                std::thread::spawn(move || {
                    for round in 0..2000u32 {
                        let id = 1 + (round + t) % 12;
                        if p.claim(id, round) != Claimed::Exhausted {
                            assert!(p.in_use() <= 8);
                        }
                        if round % 3 == 0 {
                            p.release(id);
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert!(p.in_use() <= 8);
        let mut ids: Vec<u32> = p.holders().iter().map(|h| h.log_on).collect();
        let n = ids.len();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), n, "a log-on holds at most one licence");
    }
}
