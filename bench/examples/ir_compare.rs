//! Runs one side of the criterion comparison N times, for deterministic instruction counts:
//! `valgrind --tool=callgrind --toggle-collect='ir_compare::run' \
//!  target/release/examples/ir_compare mgw corpus-typed 100` (and the same with `rsip`).
//! Cases: corpus-split, corpus-typed, or a message name (register, invite, ok200).
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

fn main() {
    let mut args = std::env::args().skip(1);
    let side = args.next().unwrap_or_else(|| "mgw".into());
    let case = args.next().unwrap_or_else(|| "corpus-typed".into());
    let n: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(100);
    let corpus = mgw_bench::sip_corpus();
    let msgs: Vec<&[u8]> = match case.as_str() {
        "corpus-split" | "corpus-typed" => sides::common_corpus(&corpus),
        name => corpus
            .iter()
            .filter(|(n, _)| n.trim_end_matches(".sip") == name)
            .map(|(_, b)| b.as_slice())
            .collect(),
    };
    assert!(!msgs.is_empty(), "unknown case {case}");
    let f: fn(&[u8]) -> usize = match (side.as_str(), case.as_str()) {
        ("mgw", "corpus-split") => sides::ours_split,
        ("rsip", "corpus-split") => sides::rsip_split,
        ("mgw", _) => sides::ours_typed,
        ("rsip", _) => sides::rsip_typed,
        _ => panic!("side is mgw or rsip"),
    };
    println!("{}", run(f, &msgs, n));
}
