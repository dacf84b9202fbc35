//! Parse throughput: mgw-core against rsip on the same messages, in the same run.
//!
//! Two levels are measured: `split` (start line, header fields, body: what every message needs)
//! and `typed` (plus Via, From, To, CSeq and Call-ID interpreted: what a registrar reads). The
//! work per side lives in `sides`, shared with the `ir_compare` example.

mod sides;

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use mgw_bench::sip_corpus;
use sides::{ours_split, ours_typed, ours_validated, rsip_split, rsip_typed};

fn bench(c: &mut Criterion) {
    let corpus = sip_corpus();
    let common = sides::common_corpus(&corpus);
    let bytes: usize = common.iter().map(|b| b.len()).sum();

    let mut g = c.benchmark_group("corpus");
    g.throughput(Throughput::Bytes(bytes as u64));
    g.bench_function("mgw/split", |bn| {
        bn.iter(|| {
            for b in &common {
                black_box(ours_split(black_box(b)));
            }
        })
    });
    g.bench_function("rsip/split", |bn| {
        bn.iter(|| {
            for b in &common {
                black_box(rsip_split(black_box(b)));
            }
        })
    });
    g.bench_function("mgw/validated", |bn| {
        bn.iter(|| {
            common
                .iter()
                .map(|b| ours_validated(black_box(b)))
                .sum::<usize>()
        })
    });
    g.bench_function("mgw/typed", |bn| {
        bn.iter(|| {
            common
                .iter()
                .map(|b| ours_typed(black_box(b)))
                .sum::<usize>()
        })
    });
    g.bench_function("rsip/typed", |bn| {
        bn.iter(|| {
            common
                .iter()
                .map(|b| rsip_typed(black_box(b)))
                .sum::<usize>()
        })
    });
    g.finish();

    for (name, b) in corpus.iter().filter(|(n, _)| n.ends_with(".sip")) {
        let mut g = c.benchmark_group(name.trim_end_matches(".sip"));
        g.throughput(Throughput::Elements(1));
        g.bench_function("mgw/typed", |bn| bn.iter(|| ours_typed(black_box(b))));
        g.bench_function("rsip/typed", |bn| bn.iter(|| rsip_typed(black_box(b))));
        g.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
