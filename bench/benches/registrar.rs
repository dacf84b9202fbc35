//! The registrar's shared structures under load.
//!
//! `location/*`: the candidate concurrent maps for the location table, on the workloads the
//! workers put on it, with 100 000 registered users:
//! - `get_1t`: one thread looking users up (routing a call);
//! - `mixed_2t`: two threads, 90 % lookups and 10 % refreshes (a normal day);
//! - `update_2t`: two threads refreshing only (a registration storm after an outage);
//! - `insert_2t`: two threads registering users the table has never seen (the storm after a
//!   restart, including the map's growth).
//!
//! In the two-thread groups one iteration is one operation on each thread, so the time shown is
//! the wall time of a pair of concurrent operations.
//!
//! `expiry/*`: the timer wheel's cost per schedule and per pop.
//!
//! Memory is measured separately (`examples/location_memory.rs`): criterion cannot see RSS.
//!
//! The allocator weighs heavily here (a refresh allocates a record and frees the old one, and
//! the lock-free maps free it later, from another thread's cache): `--features mimalloc` runs
//! the same benches on mimalloc instead of glibc malloc.

mod registrar_maps;

#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use criterion::{black_box, criterion_group, criterion_main, BenchmarkGroup, Criterion};
use criterion::{measurement::WallTime, Throughput};
use mgw_core::registrar::expiry::{ExpiryEntry, ExpiryWheel};
use registrar_maps::{
    realistic_record, refreshed, user_name, Candidate, Dash, Papaya, Rng, SccIndex, SccMap, Skip,
    Table,
};

const USERS: usize = 100_000;
const THREADS: usize = 2;

fn filled<C: Candidate>(keys: &[String]) -> C {
    let m = C::with_capacity(keys.len());
    for (i, k) in keys.iter().enumerate() {
        m.insert(k, Arc::new(realistic_record(i, 0)));
    }
    m
}

/// Runs `op` `iters` times on each of `THREADS` threads started together; returns the wall time
/// of the slowest.
fn on_threads(iters: u64, op: impl Fn(usize, u64) + Sync) -> Duration {
    let barrier = Barrier::new(THREADS);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..THREADS)
            .map(|t| {
                let (barrier, op) = (&barrier, &op);
                s.spawn(move || {
                    barrier.wait();
                    let start = Instant::now();
                    for i in 0..iters {
                        op(t, i);
                    }
                    start.elapsed()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("bench thread"))
            .max()
            .unwrap_or_default()
    })
}

fn location_candidate<C: Candidate>(c: &mut Criterion, keys: &[String]) {
    let map: C = filled(keys);
    let n = keys.len();
    let mut g = c.benchmark_group("location");
    configure(&mut g);

    g.throughput(Throughput::Elements(1));
    g.bench_function(format!("get_1t/{}", C::NAME), |b| {
        let mut rng = Rng(0x1234_5678_9abc_def1);
        b.iter(|| black_box(map.get(&keys[rng.below(n)])))
    });

    g.throughput(Throughput::Elements(THREADS as u64));
    for (name, reads_per_10) in [("mixed_2t", 9), ("update_2t", 0)] {
        g.bench_function(format!("{name}/{}", C::NAME), |b| {
            b.iter_custom(|iters| {
                on_threads(iters, |t, i| {
                    // Per-thread streams that differ but repeat between samples.
                    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ ((t as u64) << 32) ^ i);
                    let k = rng.below(n);
                    if i % 10 < reads_per_10 {
                        black_box(map.get(&keys[k]));
                    } else {
                        map.update(&keys[k], &mut |cur| refreshed(cur, k));
                    }
                })
            })
        });
    }

    // Fresh users on a table that starts empty each sample: growth included.
    g.bench_function(format!("insert_2t/{}", C::NAME), |b| {
        let next = AtomicUsize::new(0);
        b.iter_custom(|iters| {
            let map = C::with_capacity(0);
            let base = next.fetch_add(iters as usize * THREADS, Ordering::Relaxed);
            let keys: Vec<String> = (0..iters as usize * THREADS)
                .map(|i| user_name(base + i))
                .collect();
            let d = on_threads(iters, |t, i| {
                let k = t * iters as usize + i as usize;
                map.update(&keys[k], &mut |cur| refreshed(cur, k));
            });
            drop(map);
            d
        })
    });
    g.finish();
}

fn configure(g: &mut BenchmarkGroup<'_, WallTime>) {
    g.sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
}

fn location(c: &mut Criterion) {
    let keys: Vec<String> = (0..USERS).map(user_name).collect();
    location_candidate::<Papaya>(c, &keys);
    location_candidate::<SccMap>(c, &keys);
    location_candidate::<SccIndex>(c, &keys);
    location_candidate::<Dash>(c, &keys);
    location_candidate::<Skip>(c, &keys);
    location_candidate::<Table>(c, &keys);
}

const T0: u64 = 1_700_000_000_000;

fn expiry_entries(n: usize, spread_ms: u64) -> Vec<ExpiryEntry> {
    let mut rng = Rng(42);
    (0..n)
        .map(|i| {
            let user: Arc<str> = user_name(i).into();
            ExpiryEntry {
                contact: format!("sip:{user}@192.168.1.1:5060").into(),
                user,
                expires_at_ms: T0 + 1 + rng.below(spread_ms as usize) as u64,
            }
        })
        .collect()
}

fn expiry(c: &mut Criterion) {
    let mut g = c.benchmark_group("expiry");
    configure(&mut g);
    g.throughput(Throughput::Elements(1));
    // Registrations spread over an hour, the usual interval; entries are cloned in advance so
    // only the wheel is timed.
    let pool = expiry_entries(1 << 16, 3_600_000);
    for (name, tick_ms) in [("schedule/1s", 1000), ("schedule/100ms", 100)] {
        g.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let mut w = ExpiryWheel::new(T0, tick_ms);
                let batch: Vec<ExpiryEntry> = (0..iters as usize)
                    .map(|i| pool[i % pool.len()].clone())
                    .collect();
                let start = Instant::now();
                for e in batch {
                    w.schedule(e);
                }
                let d = start.elapsed();
                black_box(&w);
                d
            })
        });
    }
    // Beyond the 18 h span: the overflow heap.
    let far = expiry_entries(1 << 16, 7 * 86_400_000);
    g.bench_function("schedule/1s_over_a_week", |b| {
        b.iter_custom(|iters| {
            let mut w = ExpiryWheel::new(T0, 1000);
            let batch: Vec<ExpiryEntry> = (0..iters as usize)
                .map(|i| far[i % far.len()].clone())
                .collect();
            let start = Instant::now();
            for e in batch {
                w.schedule(e);
            }
            start.elapsed()
        })
    });
    // Popped as a worker does, in batches of at most 2 000, jumping from deadline to deadline;
    // the entries are dropped outside the timed part.
    g.bench_function("pop/1s", |b| {
        b.iter_custom(|iters| {
            let mut w = ExpiryWheel::new(T0, 1000);
            for i in 0..iters as usize {
                w.schedule(pool[i % pool.len()].clone());
            }
            let mut out = Vec::with_capacity(2_000);
            let mut spent = Duration::ZERO;
            while let Some(due) = w.next_deadline_ms() {
                let start = Instant::now();
                w.advance(due, 2_000, &mut out);
                spent += start.elapsed();
                out.clear();
            }
            spent
        })
    });
    g.finish();
}

criterion_group!(benches, location, expiry);
criterion_main!(benches);
