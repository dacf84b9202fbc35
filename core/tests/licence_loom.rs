//! Model check of the licence pool under loom: every interleaving (within loom's preemption
//! bound) of concurrent claims, releases and resets. The pool must never have more holders
//! than licences, never count more than its total, and once quiet its count must equal its
//! holders, with each log-on holding at most one licence.
//!
//! The holder table and the counter are the production algorithms (one atomic word per log-on;
//! a compare-and-swap counter) on loom's atomics, so every ordering they rely on is checked.

use loom::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use loom::sync::Arc;
use loom::thread;
use mgw_core::licence::{Claimed, Counter, HolderMap, Pool};

/// The production holder table's algorithm on loom atomics: one word per log-on id.
struct LoomHolders([AtomicU32; 4]);

impl Default for LoomHolders {
    fn default() -> Self {
        LoomHolders(std::array::from_fn(|_| AtomicU32::new(0)))
    }
}

impl HolderMap for LoomHolders {
    fn get(&self, id: u32) -> Option<u32> {
        match self.0[id as usize].load(Ordering::Acquire) {
            0 => None,
            s => Some(s),
        }
    }
    fn try_insert(&self, id: u32, since: u32) -> bool {
        self.0[id as usize]
            .compare_exchange(0, since.max(1), Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }
    fn remove(&self, id: u32) -> bool {
        self.0[id as usize].swap(0, Ordering::AcqRel) != 0
    }
    fn snapshot(&self) -> Vec<(u32, u32)> {
        (0..4u32)
            .filter_map(|id| self.get(id).map(|s| (id, s)))
            .collect()
    }
    fn max_id(&self) -> u32 {
        3
    }
}

#[derive(Default)]
struct LoomCounter(AtomicUsize);

impl Counter for LoomCounter {
    fn load(&self) -> usize {
        self.0.load(Ordering::Acquire)
    }
    fn try_increment(&self, limit: usize) -> bool {
        let mut cur = self.0.load(Ordering::Acquire);
        loop {
            if cur >= limit {
                return false;
            }
            match self
                .0
                .compare_exchange(cur, cur + 1, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return true,
                Err(seen) => cur = seen,
            }
        }
    }
    fn decrement(&self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

type ModelPool = Pool<LoomHolders, LoomCounter>;

/// Loom's exploration, bounded to 3 preemptions per execution unless `LOOM_MAX_PREEMPTIONS`
/// says otherwise.
fn model<F: Fn() + Sync + Send + 'static>(f: F) {
    let mut b = loom::model::Builder::new();
    if b.preemption_bound.is_none() {
        b.preemption_bound = Some(3);
    }
    b.check(f);
}

fn quiet_and_consistent(p: &ModelPool, total: usize) -> Vec<u32> {
    let mut ids: Vec<u32> = p.holders().iter().map(|h| h.log_on).collect();
    ids.sort_unstable();
    assert!(ids.len() <= total);
    assert_eq!(p.in_use(), ids.len(), "count and holders agree once quiet");
    ids
}

/// Three log-ons race for two licences: at most two are granted, and the holders are exactly
/// those granted.
#[test]
fn never_more_than_the_total() {
    model(|| {
        let p = Arc::new(ModelPool::new(2));
        let handles: Vec<_> = (1..=3u32)
            .map(|id| {
                let p = p.clone();
                thread::spawn(move || {
                    let r = p.claim(id, 7);
                    assert!(p.in_use() <= 2);
                    r
                })
            })
            .collect();
        let results: Vec<Claimed> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        let granted: Vec<u32> = (1..=3)
            .zip(&results)
            .filter(|(_, r)| **r == Claimed::Granted)
            .map(|(id, _)| id)
            .collect();
        assert_eq!(granted.len(), 2, "two licences, three claimants: two win");
        assert_eq!(quiet_and_consistent(&p, 2), granted);
    });
}

/// One log-on claims on two workers at once (two phones, one log-on) while the pool has one
/// licence: it ends with exactly one and nothing leaks. The second claim normally reports it
/// held; if it finds the pool full before the first has recorded itself, it is refused as if
/// no licence were free (documented in `Pool`): never both granted.
#[test]
fn one_log_on_claiming_twice_holds_one() {
    model(|| {
        let p = Arc::new(ModelPool::new(1));
        let a = {
            let p = p.clone();
            thread::spawn(move || p.claim(1, 1))
        };
        let b = {
            let p = p.clone();
            thread::spawn(move || p.claim(1, 2))
        };
        let (ra, rb) = (a.join().unwrap(), b.join().unwrap());
        let mut r = [ra, rb];
        r.sort_by_key(|c| *c as u8);
        assert!(
            r == [Claimed::Held, Claimed::Granted] || r == [Claimed::Granted, Claimed::Exhausted],
            "{r:?}"
        );
        assert_eq!(quiet_and_consistent(&p, 1), [1]);
        p.release(1);
        assert_eq!(p.claim(2, 3), Claimed::Granted, "no unit leaked");
    });
}

/// A release and a reset race a claim of another log-on for the only licence: never two
/// holders, and the count matches the holders at the end.
#[test]
fn release_and_reset_race_claims() {
    model(|| {
        let p = Arc::new(ModelPool::new(1));
        assert_eq!(p.claim(1, 1), Claimed::Granted);
        let rel = {
            let p = p.clone();
            thread::spawn(move || p.release(1))
        };
        let other = {
            let p = p.clone();
            thread::spawn(move || p.claim(2, 2))
        };
        let reset = {
            let p = p.clone();
            thread::spawn(move || p.reset())
        };
        rel.join().unwrap();
        let r = other.join().unwrap();
        reset.join().unwrap();
        let held = quiet_and_consistent(&p, 1);
        assert_ne!(r, Claimed::Held, "log-on 2 never held a licence before");
        assert!(held.is_empty() || held == [2]);
    });
}
