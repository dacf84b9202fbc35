//! Resident memory of the location table with a million registered users, one realistic binding
//! each (contact ~40 characters, Call-ID ~30, User-Agent ~25, no Path), for each candidate map.
//!
//! `cargo run --release -p mgw-bench --example location_memory [-- NAME [USERS [REFRESHES]]]`
//!
//! NAME is one of the candidates below, or `all` (the default), which runs each in a fresh
//! process so that one's freed memory does not hide another's. The figure is the growth of the
//! resident set (/proc/self/statm) from before the first insertion to after the last, i.e.
//! above the empty server.

#[path = "../benches/registrar_maps/mod.rs"]
mod registrar_maps;

use std::process::Command;
use std::sync::Arc;

#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use mgw_core::registrar::binding::{Binding, Record, RecordRef};
use registrar_maps::{
    realistic_binding, realistic_record, refreshed, user_name, Candidate, Dash, Papaya, SccIndex,
    SccMap, Skip, Table,
};

const NAMES: [&str; 10] = [
    "vec",
    "compact-vec",
    "compact-papaya",
    "papaya",
    "scc-map",
    "scc-index",
    "dashmap",
    "skiplist",
    "table",
    "table-grow",
];

fn resident_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("/proc/self/statm");
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .expect("statm resident field");
    // x86-64 and aarch64 Linux as deployed use 4 KiB pages.
    pages * 4096
}

/// The expiry is spread over an hour so that no two records are alike in anything but size.
fn record(i: usize) -> RecordRef {
    Arc::new(realistic_record(
        i,
        1_700_000_000_000 + (i as u64 % 3_600_000),
    ))
}

/// A few dozen distinct User-Agent strings, as a real population of phones has.
fn agents() -> Vec<Arc<str>> {
    (0..40)
        .map(|i| Arc::from(format!("Yealink SIP-T46S 66.86.0.{i:02}")))
        .collect()
}

/// A proposed layout for `Binding`, to measure what it would save (not used by the server):
/// the per-binding strings in one allocation with their ends as offsets, the User-Agent shared
/// with every phone of the same make, and a record's first binding inline in its `Arc`.
mod compact {
    use std::net::SocketAddr;
    use std::sync::Arc;

    use mgw_core::registrar::binding::Transport;
    use smallvec::SmallVec;

    #[allow(dead_code)] // only built and measured
    pub struct Binding {
        /// contact, Call-ID, `+sip.instance`, Path values, one after the other.
        text: Box<str>,
        ends: [u16; 3],
        user_agent: Arc<str>,
        expires_at_ms: u64,
        updated_ms: u64,
        source: SocketAddr,
        cseq: u32,
        reg_id: Option<u32>,
        q: u16,
        transport: Transport,
    }

    pub struct Record {
        #[allow(dead_code)]
        bindings: SmallVec<[Binding; 1]>,
    }

    pub fn record(i: usize, agents: &[Arc<str>]) -> Arc<Record> {
        let b = super::realistic_binding(i, 1_700_000_000_000 + (i as u64 % 3_600_000));
        let text = format!("{}{}", b.contact, b.call_id);
        let c = b.contact.len() as u16;
        let mut bindings = SmallVec::new();
        bindings.push(Binding {
            ends: [c, text.len() as u16, text.len() as u16],
            text: text.into(),
            user_agent: Arc::clone(&agents[i % agents.len()]),
            expires_at_ms: b.expires_at_ms,
            updated_ms: b.updated_ms,
            source: b.source,
            cseq: b.cseq,
            reg_id: b.reg_id,
            q: b.q,
            transport: b.transport,
        });
        Arc::new(Record { bindings })
    }

    pub fn sizes() -> (usize, usize) {
        (
            std::mem::size_of::<Binding>(),
            std::mem::size_of::<Record>(),
        )
    }
}

/// Fills a candidate, then refreshes every user `refreshes` times: lock-free maps free replaced
/// entries late (after an epoch), and one that let garbage pile up under a registration storm
/// would show it in the second figure.
fn fill<C: Candidate>(users: usize, capacity: usize, refreshes: usize) -> (u64, u64, usize) {
    let before = resident_bytes();
    let map = C::with_capacity(capacity);
    for i in 0..users {
        map.insert(&user_name(i), record(i));
    }
    let grew = resident_bytes() - before;
    for _ in 0..refreshes {
        for i in 0..users {
            map.update(&user_name(i), &mut |cur| refreshed(cur, i));
        }
    }
    let after_refresh = resident_bytes() - before;
    let len = map.len();
    // Dropping a million records is not what is measured.
    std::mem::forget(map);
    (grew, after_refresh, len)
}

fn measure(name: &str, users: usize, refreshes: usize) -> Option<(u64, u64, usize)> {
    Some(match name {
        // The data alone: keys and records in a vector, no map. The floor any map adds to.
        "vec" => {
            let before = resident_bytes();
            let mut v: Vec<(Box<str>, RecordRef)> = Vec::with_capacity(users);
            for i in 0..users {
                v.push((user_name(i).into(), record(i)));
            }
            let grew = resident_bytes() - before;
            let len = v.len();
            std::mem::forget(v);
            (grew, grew, len)
        }
        "papaya" => fill::<Papaya>(users, users, refreshes),
        "scc-map" => fill::<SccMap>(users, users, refreshes),
        "scc-index" => fill::<SccIndex>(users, users, refreshes),
        "dashmap" => fill::<Dash>(users, users, refreshes),
        "skiplist" => fill::<Skip>(users, users, refreshes),
        "table" => fill::<Table>(users, users, refreshes),
        "table-grow" => fill::<Table>(users, 0, refreshes),
        "compact-vec" => {
            let before = resident_bytes();
            let agents = agents();
            let mut v: Vec<(Box<str>, Arc<compact::Record>)> = Vec::with_capacity(users);
            for i in 0..users {
                v.push((user_name(i).into(), compact::record(i, &agents)));
            }
            let grew = resident_bytes() - before;
            let len = v.len();
            std::mem::forget(v);
            (grew, grew, len)
        }
        "compact-papaya" => {
            let before = resident_bytes();
            let agents = agents();
            let map = papaya::HashMap::with_capacity(users);
            for i in 0..users {
                map.pin()
                    .insert(Box::<str>::from(user_name(i)), compact::record(i, &agents));
            }
            let grew = resident_bytes() - before;
            let len = map.len();
            std::mem::forget(map);
            (grew, grew, len)
        }
        _ => return None,
    })
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let name = args.first().map_or("all", String::as_str);
    let users: usize = args
        .get(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(1_000_000);
    let refreshes: usize = args.get(2).and_then(|n| n.parse().ok()).unwrap_or(3);

    if name == "all" {
        println!(
            "size_of: Binding {} B, Record {} B, RecordRef {} B; {users} users, one binding each",
            std::mem::size_of::<Binding>(),
            std::mem::size_of::<Record>(),
            std::mem::size_of::<RecordRef>(),
        );
        let (cb, cr) = compact::sizes();
        println!("proposed compact layout: Binding {cb} B, Record (one binding inline) {cr} B");
        println!(
            "{:<15} {:>10} {:>14} {:>22}",
            "map",
            "RSS MiB",
            "bytes/binding",
            format!("MiB after {refreshes} refreshes")
        );
        let exe = std::env::current_exe().expect("own path");
        for n in NAMES {
            let out = Command::new(&exe)
                .args([n, &users.to_string(), &refreshes.to_string()])
                .output()
                .expect("run child");
            print!("{}", String::from_utf8_lossy(&out.stdout));
        }
        return;
    }
    let Some((grew, after_refreshes, len)) = measure(name, users, refreshes) else {
        eprintln!("unknown map {name}; one of all, {}", NAMES.join(", "));
        std::process::exit(2);
    };
    assert_eq!(len, users);
    let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
    println!(
        "{name:<15} {:>10.1} {:>14} {:>22.1}",
        mib(grew),
        grew / users as u64,
        mib(after_refreshes)
    );
}
