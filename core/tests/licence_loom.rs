//! Model check of the licence pool's slot table under loom: every interleaving (within loom's
//! bounds) of concurrent claims and releases. The pool must never hand out more licences than
//! it has, and once every claim has returned a log-on holds at most one.

use loom::sync::atomic::{AtomicU64, Ordering};
use loom::sync::Arc;
use loom::thread;
use mgw_core::licence::{Claimed, SlotCell, SlotTable};

struct LoomCell(AtomicU64);

impl SlotCell for LoomCell {
    fn empty() -> Self {
        LoomCell(AtomicU64::new(0))
    }
    fn load(&self) -> u64 {
        self.0.load(Ordering::Acquire)
    }
    fn compare_exchange(&self, current: u64, new: u64) -> Result<u64, u64> {
        self.0
            .compare_exchange(current, new, Ordering::AcqRel, Ordering::Acquire)
    }
    fn swap(&self, new: u64) -> u64 {
        self.0.swap(new, Ordering::AcqRel)
    }
    fn read_latest(&self) -> u64 {
        self.0.fetch_add(0, Ordering::AcqRel)
    }
}

/// Loom's exploration, bounded to 2 preemptions per execution unless `LOOM_MAX_PREEMPTIONS`
/// says otherwise: bound 2 keeps the suite fast in debug builds; the release run with bound 3
/// (`LOOM_MAX_PREEMPTIONS=3 cargo test --release -p mgw-core --test licence_loom`, about 90 s)
/// is in docs/licences.md.
fn model<F: Fn() + Sync + Send + 'static>(f: F) {
    let mut b = loom::model::Builder::new();
    if b.preemption_bound.is_none() {
        b.preemption_bound = Some(2);
    }
    b.check(f);
}

fn ids(t: &SlotTable<LoomCell>, n: usize) -> Vec<u32> {
    let mut v: Vec<u32> = t.holders(n).into_iter().map(|(id, _)| id).collect();
    v.sort_unstable();
    v
}

/// Three log-ons race for two licences: at most two are granted, and the table says who.
#[test]
fn never_more_than_the_total() {
    model(|| {
        let t = Arc::new(SlotTable::<LoomCell>::new(2));
        let handles: Vec<_> = (1..=3u32)
            .map(|id| {
                let t = t.clone();
                thread::spawn(move || t.claim(id, 7, id as usize, 2, 2))
            })
            .collect();
        let results: Vec<Claimed> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        let granted: Vec<u32> = (1..=3)
            .zip(&results)
            .filter(|(_, r)| **r == Claimed::Granted)
            .map(|(id, _)| id)
            .collect();
        assert!(granted.len() <= 2);
        assert_eq!(ids(&t, 2), granted);
    });
}

/// The same log-on claims on two workers at once (two phones, one log-on), while another
/// log-on claims too: the first ends with exactly one licence, and the other is not refused
/// because of a duplicate left behind.
#[test]
fn one_log_on_claiming_twice_holds_one() {
    model(|| {
        let t = Arc::new(SlotTable::<LoomCell>::new(3));
        let a = {
            let t = t.clone();
            thread::spawn(move || t.claim(1, 1, 0, 3, 3))
        };
        let b = {
            let t = t.clone();
            thread::spawn(move || t.claim(1, 2, 1, 3, 3))
        };
        let ra = a.join().unwrap();
        let rb = b.join().unwrap();
        assert!(ra != Claimed::Exhausted && rb != Claimed::Exhausted);
        assert_eq!(ids(&t, 3), [1]);
        assert!(matches!(t.claim(2, 3, 0, 3, 3), Claimed::Granted));
    });
}

/// A release racing a claim of the same log-on and a claim of another: the table never holds
/// more than its limit, never holds a log-on twice, and a licence released is reusable.
#[test]
fn release_races_claims() {
    model(|| {
        let t = Arc::new(SlotTable::<LoomCell>::new(1));
        assert_eq!(t.claim(1, 1, 0, 1, 1), Claimed::Granted);
        let rel = {
            let t = t.clone();
            thread::spawn(move || t.release(1, 1))
        };
        let other = {
            let t = t.clone();
            thread::spawn(move || t.claim(2, 2, 0, 1, 1))
        };
        assert!(rel.join().unwrap());
        let r = other.join().unwrap();
        let held = ids(&t, 1);
        match r {
            Claimed::Granted => assert_eq!(held, [2]),
            Claimed::Exhausted => assert!(held.is_empty()),
            Claimed::Held => panic!("log-on 2 never held a licence"),
        }
    });
}
