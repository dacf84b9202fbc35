//! The licence pool's claim/release throughput, on one and on two threads, side by side with
//! the obvious locked design (a `Mutex<HashMap>` of holders with a count), which is what the
//! lock-free slot table has to beat to be worth its subtlety.
//!
//! Run: `cargo bench -p mgw-bench --bench licences`.

use std::collections::HashMap;
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use mgw_core::licence::{Claimed, HolderMap, LicencePool, Pool};

/// The same pool algorithm with papaya's lock-free hash map as the holder table: the first
/// design, kept here to show why the dense table replaced it.
#[derive(Default)]
struct PapayaHolders(papaya::HashMap<u32, u32>);

impl HolderMap for PapayaHolders {
    fn get(&self, id: u32) -> Option<u32> {
        self.0.pin().get(&id).copied()
    }
    fn try_insert(&self, id: u32, since: u32) -> bool {
        self.0.pin().try_insert(id, since).is_ok()
    }
    fn remove(&self, id: u32) -> bool {
        self.0.pin().remove(&id).is_some()
    }
    fn snapshot(&self) -> Vec<(u32, u32)> {
        self.0.pin().iter().map(|(k, v)| (*k, *v)).collect()
    }
}

type PapayaPool = Pool<PapayaHolders, std::sync::atomic::AtomicUsize>;

/// The locked baseline: same rules (claim keeps a held licence, refuses beyond the total).
struct LockedPool {
    total: usize,
    holders: Mutex<HashMap<u32, u32>>,
}

impl LockedPool {
    fn new(total: usize) -> LockedPool {
        LockedPool {
            total,
            holders: Mutex::new(HashMap::new()),
        }
    }

    fn claim(&self, id: u32, now: u32) -> Claimed {
        let mut h = self
            .holders
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if h.contains_key(&id) {
            return Claimed::Held;
        }
        if h.len() >= self.total {
            return Claimed::Exhausted;
        }
        h.insert(id, now);
        Claimed::Granted
    }

    fn release(&self, id: u32) -> bool {
        self.holders
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&id)
            .is_some()
    }
}

trait Bench: Send + Sync + 'static {
    fn claim(&self, id: u32) -> Claimed;
    fn release(&self, id: u32) -> bool;
}

impl<H: HolderMap + 'static, C: mgw_core::licence::Counter + 'static> Bench for Pool<H, C> {
    fn claim(&self, id: u32) -> Claimed {
        Pool::claim(self, id, 1)
    }
    fn release(&self, id: u32) -> bool {
        Pool::release(self, id)
    }
}

impl Bench for LockedPool {
    fn claim(&self, id: u32) -> Claimed {
        LockedPool::claim(self, id, 1)
    }
    fn release(&self, id: u32) -> bool {
        LockedPool::release(self, id)
    }
}

/// `iters` claim+release pairs on each of `threads` threads, each thread its own log-ons,
/// with `background` other log-ons holding licences throughout (a busy pool).
fn run<P: Bench>(pool: Arc<P>, threads: u32, iters: u64) -> Duration {
    let barrier = Arc::new(Barrier::new(threads as usize + 1));
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let (pool, barrier) = (pool.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                let start = Instant::now();
                for i in 0..iters {
                    let id = 1_000_000 + t * 1000 + (i % 8) as u32;
                    std::hint::black_box(pool.claim(id));
                    std::hint::black_box(pool.release(id));
                }
                start.elapsed()
            })
        })
        .collect();
    barrier.wait();
    handles
        .into_iter()
        .map(|h| h.join().expect("bench thread"))
        .max()
        .unwrap_or_default()
}

fn claim_release(c: &mut Criterion) {
    let mut g = c.benchmark_group("licence_claim_release");
    for (total, busy) in [(64u32, 48u32), (1024, 768)] {
        for threads in [1u32, 2] {
            let label = format!("{threads}t_total{total}");
            g.bench_function(BenchmarkId::new("dense_table", &label), |b| {
                let pool = Arc::new(LicencePool::new(total));
                for id in 1..=busy {
                    pool.claim(id, 1);
                }
                b.iter_custom(|iters| run(pool.clone(), threads, iters));
            });
            g.bench_function(BenchmarkId::new("papaya_map", &label), |b| {
                let pool = Arc::new(PapayaPool::new(total));
                for id in 1..=busy {
                    pool.claim(id, 1);
                }
                b.iter_custom(|iters| run(pool.clone(), threads, iters));
            });
            g.bench_function(BenchmarkId::new("mutex_hashmap", &label), |b| {
                let pool = Arc::new(LockedPool::new(total as usize));
                for id in 1..=busy {
                    pool.claim(id, 1);
                }
                b.iter_custom(|iters| run(pool.clone(), threads, iters));
            });
        }
    }
    g.finish();
}

/// The call path's common case: a log-on that already holds its licence calls again.
fn claim_held(c: &mut Criterion) {
    let mut g = c.benchmark_group("licence_claim_held");
    for total in [64u32, 1024] {
        let pool = LicencePool::new(total);
        for id in 1..=total {
            pool.claim(id, 1);
        }
        g.bench_function(BenchmarkId::new("dense_table", total), |b| {
            b.iter(|| pool.claim(std::hint::black_box(total / 2), 2))
        });
        let locked = LockedPool::new(total as usize);
        for id in 1..=total {
            locked.claim(id, 1);
        }
        g.bench_function(BenchmarkId::new("mutex_hashmap", total), |b| {
            b.iter(|| locked.claim(std::hint::black_box(total / 2), 2))
        });
    }
    g.finish();
}

criterion_group!(benches, claim_release, claim_held);
criterion_main!(benches);
