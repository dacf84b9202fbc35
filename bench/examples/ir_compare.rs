//! Runs one side of the criterion comparison N times, for deterministic instruction counts:
//! `valgrind --tool=callgrind --toggle-collect='ir_compare::run' \
//!  target/release/examples/ir_compare mgw corpus-typed 100` (and the same with `rsip`).
//! Cases: corpus-split, corpus-typed, or a message name (register, invite, ok200).
//! `ir_compare ratio` instead times both sides on every case (best of several rounds) and prints
//! rsip's time over ours: a quick check between criterion runs.
#[path = "../benches/sides/mod.rs"]
mod sides;

use std::hint::black_box;

#[inline(never)]
fn run(f: fn(&[u8]) -> usize, msgs: &[&[u8]], n: usize) -> usize {
    let mut sink = 0;
    for _ in 0..n {
        for b in msgs {
            sink += f(black_box(b));
        }
    }
    sink
}

fn messages<'c>(corpus: &'c [(String, Vec<u8>)], case: &str) -> Vec<&'c [u8]> {
    let msgs: Vec<&[u8]> = match case {
        "corpus-split" | "corpus-typed" => sides::common_corpus(corpus),
        name => corpus
            .iter()
            .filter(|(n, _)| n.trim_end_matches(".sip") == name.trim_end_matches("-split"))
            .map(|(_, b)| b.as_slice())
            .collect(),
    };
    assert!(!msgs.is_empty(), "unknown case {case}");
    msgs
}

fn side(side: &str, case: &str) -> fn(&[u8]) -> usize {
    match (side, case) {
        ("mgw", c) if c.ends_with("-split") => sides::ours_split,
        ("rsip", c) if c.ends_with("-split") => sides::rsip_split,
        ("mgw", _) => sides::ours_typed,
        ("rsip", _) => sides::rsip_typed,
        _ => panic!("side is mgw or rsip"),
    }
}

/// Nanoseconds per pass over `msgs`, best of `rounds` rounds of about 50 ms.
fn time(f: fn(&[u8]) -> usize, msgs: &[&[u8]], rounds: usize) -> f64 {
    let start = std::time::Instant::now();
    let mut n = 1;
    while start.elapsed().as_millis() < 20 {
        black_box(run(f, msgs, n));
        n *= 2;
    }
    let per_round = (n as f64 * 50e6 / start.elapsed().as_nanos() as f64).max(1.0) as usize;
    (0..rounds)
        .map(|_| {
            let t = std::time::Instant::now();
            black_box(run(f, msgs, per_round));
            t.elapsed().as_nanos() as f64 / per_round as f64
        })
        .fold(f64::INFINITY, f64::min)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let which = args.next().unwrap_or_else(|| "mgw".into());
    let corpus = mgw_bench::sip_corpus();
    if which == "ratio" {
        let cases: Vec<String> = args.collect();
        let cases = if cases.is_empty() {
            [
                "corpus-split",
                "corpus-typed",
                "register",
                "invite",
                "ok200",
            ]
            .map(String::from)
            .to_vec()
        } else {
            cases
        };
        for case in &cases {
            let msgs = messages(&corpus, case);
            let (mut ours, mut theirs) = (f64::INFINITY, f64::INFINITY);
            for _ in 0..5 {
                ours = ours.min(time(side("mgw", case), &msgs, 3));
                theirs = theirs.min(time(side("rsip", case), &msgs, 3));
            }
            println!(
                "{case:13} mgw {ours:9.1} ns  rsip {theirs:9.1} ns  ratio {:5.2}",
                theirs / ours
            );
        }
        return;
    }
    let case = args.next().unwrap_or_else(|| "corpus-typed".into());
    let n: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(100);
    let msgs = messages(&corpus, &case);
    println!("{}", run(side(&which, &case), &msgs, n));
}
