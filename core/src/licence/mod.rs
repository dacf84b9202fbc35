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

mod holders;

pub use holders::{Counter, DenseHolders, HolderMap, MAX_LOG_ON_ID};

use std::sync::atomic::{AtomicUsize, Ordering};

/// Most licences a pool can be configured with.
pub const MAX_LICENCES: usize = 65_536;

/// What a claim found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Claimed {
    /// The log-on already held a licence.
    Held,
    /// A free licence was taken.
    Granted,
    /// Every licence is taken.
    Exhausted,
}

/// A log-on that holds a licence, and since when (seconds since the UNIX epoch).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Holder {
    pub log_on: u32,
    pub since_unix_s: u32,
}

/// The pool on production types. Every operation is lock-free: claims and releases run on the
/// SIP workers, status and reset on the admin threads.
pub type LicencePool = Pool<DenseHolders, AtomicUsize>;

/// The algorithm. The count is the only gate: a claim first takes a unit of it with a
/// compare-and-swap that never passes the total, then records itself as a holder; a release
/// removes the holder, then gives the unit back. So holders never outnumber the count, and
/// the count never passes the total, whatever the interleaving. Two claims of one log-on
/// racing each take a unit, one of them finds the holder recorded by the other and gives its
/// unit back. One corner is left as it is: if the second claim finds the pool full in the
/// instant before the first has recorded itself, it is refused as if no licence were free
/// (a log-on placing two calls at once, as its first calls, with every other licence taken).
/// Closing it would make claims wait on each other, and the pool is never over-committed.
pub struct Pool<H, C> {
    holders: H,
    used: C,
    total: AtomicUsize,
}

impl<H: HolderMap + Default, C: Counter + Default> Pool<H, C> {
    pub fn new(total: u32) -> Pool<H, C> {
        Pool {
            holders: H::default(),
            used: C::default(),
            total: AtomicUsize::new((total as usize).min(MAX_LICENCES)),
        }
    }
}

impl<H: HolderMap, C: Counter> Pool<H, C> {
    pub fn total(&self) -> u32 {
        self.total.load(Ordering::Acquire) as u32
    }

    /// Changes the number of licences. Lowering it takes no licence away: holders beyond the
    /// new total keep theirs until they release, and no new claim succeeds meanwhile.
    pub fn set_total(&self, total: u32) -> Result<(), TooMany> {
        if total as usize > MAX_LICENCES {
            return Err(TooMany(total as usize));
        }
        self.total.store(total as usize, Ordering::Release);
        Ok(())
    }

    /// The log-on `id` (non-zero) establishes a connection: it keeps the licence it holds, or
    /// takes a free one.
    pub fn claim(&self, id: u32, now_unix_s: u32) -> Claimed {
        if id == 0 || id > self.holders.max_id() {
            return Claimed::Exhausted;
        }
        if self.holders.get(id).is_some() {
            return Claimed::Held;
        }
        if !self.used.try_increment(self.total.load(Ordering::Acquire)) {
            // Full, unless a concurrent claim of this same log-on just got in.
            return match self.holders.get(id) {
                Some(_) => Claimed::Held,
                None => Claimed::Exhausted,
            };
        }
        if self.holders.try_insert(id, now_unix_s.max(1)) {
            Claimed::Granted
        } else {
            self.used.decrement();
            Claimed::Held
        }
    }

    /// Whether `id` holds a licence.
    pub fn holds(&self, id: u32) -> bool {
        id != 0 && self.holders.get(id).is_some()
    }

    /// The log-on logged off or missed its keepalive: its licence is free at once.
    pub fn release(&self, id: u32) -> bool {
        if id != 0 && self.holders.remove(id) {
            self.used.decrement();
            true
        } else {
            false
        }
    }

    /// Frees every licence; holders claim again on their next call. Returns who held one.
    pub fn reset(&self) -> Vec<u32> {
        self.holders
            .snapshot()
            .into_iter()
            .filter(|&(id, _)| self.release(id))
            .map(|(id, _)| id)
            .collect()
    }

    /// Licences taken (claims in flight included).
    pub fn in_use(&self) -> usize {
        self.used.load()
    }

    /// Who holds a licence. Taken while claims and releases go on, the listing is not one
    /// instant's picture (a holder removed and another added during it may both appear); the
    /// count [`Pool::in_use`] is exact.
    pub fn holders(&self) -> Vec<Holder> {
        self.holders
            .snapshot()
            .into_iter()
            .map(|(log_on, since_unix_s)| Holder {
                log_on,
                since_unix_s,
            })
            .collect()
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
                        p.claim(id, round);
                        // The count is the gate; a listing taken during changes is not an
                        // atomic snapshot, so only the count is checked mid-flight.
                        assert!(p.in_use() <= 8);
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
        assert_eq!(p.in_use(), p.holders().len(), "quiescent: count = holders");
        let mut ids: Vec<u32> = p.holders().iter().map(|h| h.log_on).collect();
        let n = ids.len();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), n, "a log-on holds at most one licence");
    }
}
