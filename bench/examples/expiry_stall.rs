//! How long does expiry hold up a worker? A worker's timer part, simulated: a million bindings
//! expiring uniformly over a minute, one `ExpiryWheel`, and a loop that advances the (simulated)
//! clock 1 ms per turn, pops at most BUDGET due entries and removes each from the shared
//! `LocationTable` (`LocationTable::expire`, the lazy check the registrar does). The wall time of
//! each turn's advance + removals goes into a histogram; the goal is a maximum under 1 ms.
//!
//! `cargo run --release -p mgw-bench --example expiry_stall [-- --users N --spread-ms MS
//!  --tick-ms MS --budget N --readers N]`
//!
//! `--readers` adds threads that look users up meanwhile, as the other workers do.

#[path = "../benches/registrar_maps/mod.rs"]
mod registrar_maps;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use mgw_core::registrar::binding::Record;
use mgw_core::registrar::expiry::{ExpiryEntry, ExpiryWheel};
use mgw_core::registrar::location::LocationTable;
use registrar_maps::{realistic_binding, user_name, Rng};

const T0: u64 = 1_700_000_000_000;

struct Args {
    users: usize,
    spread_ms: u64,
    tick_ms: u64,
    budget: usize,
    readers: usize,
}

fn args() -> Args {
    let mut a = Args {
        users: 1_000_000,
        spread_ms: 60_000,
        tick_ms: 1000,
        budget: 2_000,
        readers: 0,
    };
    let v: Vec<String> = std::env::args().skip(1).collect();
    for pair in v.chunks(2) {
        let n = pair.get(1).and_then(|s| s.parse::<u64>().ok());
        let Some(n) = n else {
            eprintln!("usage: expiry_stall [--users N] [--spread-ms MS] [--tick-ms MS] [--budget N] [--readers N]");
            std::process::exit(2);
        };
        match pair[0].as_str() {
            "--users" => a.users = n as usize,
            "--spread-ms" => a.spread_ms = n.max(1),
            "--tick-ms" => a.tick_ms = n,
            "--budget" => a.budget = n as usize,
            "--readers" => a.readers = n as usize,
            other => {
                eprintln!("unknown option {other}");
                std::process::exit(2);
            }
        }
    }
    a
}

/// Turn durations in microsecond buckets up to 100 ms (one more for anything longer); exact
/// enough for p99.9 and simpler than a dependency.
struct Histogram {
    buckets: Vec<u64>,
    count: u64,
    max_ns: u64,
    sum_ns: u64,
}

impl Histogram {
    fn new() -> Self {
        Histogram {
            buckets: vec![0; 100_001],
            count: 0,
            max_ns: 0,
            sum_ns: 0,
        }
    }

    fn record(&mut self, d: Duration) {
        let ns = d.as_nanos() as u64;
        let i = ((ns / 1000) as usize).min(self.buckets.len() - 1);
        self.buckets[i] += 1;
        self.count += 1;
        self.max_ns = self.max_ns.max(ns);
        self.sum_ns += ns;
    }

    /// The upper edge, in microseconds, of the bucket holding quantile `q`.
    fn quantile_us(&self, q: f64) -> u64 {
        let rank = ((self.count as f64) * q).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, n) in self.buckets.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return i as u64 + 1;
            }
        }
        self.buckets.len() as u64
    }

    fn report(&self, what: &str) {
        if self.count == 0 {
            println!("{what}: none");
            return;
        }
        println!(
            "{what}: n={} mean={:.1}us p50<={}us p99<={}us p99.9<={}us max={:.1}us",
            self.count,
            self.sum_ns as f64 / self.count as f64 / 1000.0,
            self.quantile_us(0.5),
            self.quantile_us(0.99),
            self.quantile_us(0.999),
            self.max_ns as f64 / 1000.0
        );
    }
}

/// The kernel's CPU pressure (share of time some runnable task waited for a core, last 10 s):
/// on a shared machine, turns are also long because another process held the core.
/// This thread's involuntary context switches so far (/proc/thread-self/status): a turn during
/// which it grew was preempted, and its wall time includes another task's slice.
struct Preemptions(std::fs::File);

impl Preemptions {
    fn open() -> Option<Self> {
        std::fs::File::open("/proc/thread-self/status")
            .ok()
            .map(Preemptions)
    }

    fn count(&self) -> u64 {
        use std::os::unix::fs::FileExt;
        let mut buf = [0u8; 4096];
        let n = self.0.read_at(&mut buf, 0).unwrap_or(0);
        String::from_utf8_lossy(&buf[..n])
            .lines()
            .find_map(|l| l.strip_prefix("nonvoluntary_ctxt_switches:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    }
}

fn cpu_pressure() -> String {
    std::fs::read_to_string("/proc/pressure/cpu")
        .ok()
        .and_then(|t| t.lines().next().map(str::to_string))
        .unwrap_or_else(|| "unknown".into())
}

fn resident_mib() -> f64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    (pages * 4096) as f64 / (1024.0 * 1024.0)
}

fn main() {
    let a = args();
    println!(
        "allocator: {}",
        if cfg!(feature = "mimalloc") {
            "mimalloc"
        } else {
            "system (glibc: GLIBC_TUNABLES applies)"
        }
    );
    println!(
        "{} bindings due over {} ms, tick {} ms, budget {} per 1 ms turn, {} reader thread(s)",
        a.users, a.spread_ms, a.tick_ms, a.budget, a.readers
    );
    let table = Arc::new(LocationTable::with_capacity(a.users));
    let mut rng = Rng(0x5eed);
    for i in 0..a.users {
        let b = realistic_binding(i, T0 + 1 + rng.below(a.spread_ms as usize) as u64);
        let mut b = Some(b);
        table.update(&user_name(i), |_| Record {
            bindings: b.take().into_iter().collect(),
        });
    }
    assert_eq!(table.bindings(), a.users);

    // What the registrar would schedule: one entry per binding, with its own copies of the
    // user and contact strings.
    let rss = resident_mib();
    let mut entries = Vec::with_capacity(a.users);
    table.for_each(|user, r| {
        let user: Arc<str> = user.into();
        for b in &r.bindings {
            entries.push(ExpiryEntry {
                user: Arc::clone(&user),
                contact: Arc::from(&*b.contact),
                expires_at_ms: b.expires_at_ms,
            });
        }
    });
    let mut wheel = ExpiryWheel::new(T0, a.tick_ms);
    let start = Instant::now();
    for e in entries {
        wheel.schedule(e);
    }
    let schedule = start.elapsed();
    println!(
        "schedule: {:.1} ns each; wheel resident {:.1} MiB (entries with their user and contact strings)",
        schedule.as_nanos() as f64 / a.users as f64,
        resident_mib() - rss
    );

    let stop = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..a.readers)
        .map(|r| {
            let (table, stop) = (Arc::clone(&table), Arc::clone(&stop));
            let users = a.users;
            std::thread::spawn(move || {
                let mut rng = Rng(0xabcd + r as u64);
                let mut hits = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    hits += u64::from(table.get(&user_name(rng.below(users))).is_some());
                }
                hits
            })
        })
        .collect();

    let pressure_before = cpu_pressure();
    let preemptions = Preemptions::open();
    let mut calm = Histogram::new();
    let mut preempted_turns = 0u64;
    let mut busy = Histogram::new();
    let mut idle = Histogram::new();
    let mut wheel_only = Histogram::new();
    let mut out = Vec::with_capacity(a.budget.min(1 << 20));
    let (mut expired, mut stale) = (0usize, 0usize);
    let mut popped_total = 0usize;
    // (duration, ms into the run, entries popped) of the slowest turns, to tell a one-off from
    // a pattern.
    let mut slowest: Vec<(Duration, u64, usize)> = Vec::new();
    let mut now = T0;
    let end = T0 + a.spread_ms + 2 * a.tick_ms.max(1);
    while now <= end || !wheel.is_empty() {
        // Read outside the timed part, and only when there is work (it costs microseconds).
        let has_work = wheel.next_deadline_ms().is_some_and(|d| d <= now);
        let switches_before = match (&preemptions, has_work) {
            (Some(p), true) => Some(p.count()),
            _ => None,
        };
        let start = Instant::now();
        wheel.advance(now, a.budget, &mut out);
        let advanced = start.elapsed();
        let popped = out.len();
        for e in out.drain(..) {
            match table.expire(&e.user, &e.contact, e.expires_at_ms) {
                Ok(_) => expired += 1,
                Err(_) => stale += 1,
            }
        }
        let d = start.elapsed();
        slowest.push((d, now - T0, popped));
        if slowest.len() > 64 {
            slowest.sort_unstable_by(|a, b| b.cmp(a));
            slowest.truncate(5);
        }
        if let (Some(p), Some(before)) = (&preemptions, switches_before) {
            if p.count() > before {
                preempted_turns += 1;
            } else if popped > 0 {
                calm.record(d);
            }
        }
        if popped > 0 {
            busy.record(d);
            wheel_only.record(advanced);
        } else {
            idle.record(d);
        }
        popped_total += popped;
        now += 1;
    }
    stop.store(true, Ordering::Relaxed);
    let lookups: u64 = readers.into_iter().map(|h| h.join().unwrap_or(0)).sum();

    println!(
        "popped {popped_total}, expired {expired}, stale {stale}; table left with {} bindings; {lookups} concurrent lookups",
        table.bindings()
    );
    busy.report("turns that expired something (advance + removals)");
    wheel_only.report("  of which the wheel's advance alone");
    calm.report("  the same, without the turns that were preempted");
    println!("  turns preempted (involuntary context switch during the turn): {preempted_turns}");
    slowest.sort_unstable_by(|a, b| b.cmp(a));
    slowest.truncate(5);
    let slowest: Vec<String> = slowest
        .iter()
        .map(|(d, at, n)| format!("{:.1}us@{at}ms/{n}", d.as_nanos() as f64 / 1000.0))
        .collect();
    println!(
        "slowest turns (time@ms into run/popped): {}",
        slowest.join(" ")
    );
    println!(
        "cpu pressure before: {pressure_before}\ncpu pressure after:  {}",
        cpu_pressure()
    );
    idle.report("turns with nothing due");
    assert_eq!(expired, a.users);
    assert_eq!(table.bindings(), 0);
}
