//! Parse throughput: mgw-core against rsip on the same messages, in the same run.
//!
//! Two levels are measured: `split` (start line, header fields, body: what every message needs)
//! and `typed` (plus Via, From, To, CSeq and Call-ID interpreted: what a registrar reads).

use std::convert::TryFrom;

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use mgw_bench::sip_corpus;
use mgw_core::sip::{validate, Message};

fn ours_validated(b: &[u8]) -> usize {
    Message::parse(b)
        .map(|m| usize::from(validate::request(&m).is_ok()))
        .unwrap_or(0)
}
use rsip::prelude::*;

fn ours_typed(b: &[u8]) -> usize {
    let Ok(m) = Message::parse(b) else { return 0 };
    m.top_via().map_or(0, |v| v.host.len())
        + m.from().map_or(0, |f| f.uri.host.len())
        + m.to().map_or(0, |t| t.uri.host.len())
        + m.cseq().map_or(0, |c| c.seq as usize)
        + m.call_id().map_or(0, str::len)
}

fn rsip_typed(b: &[u8]) -> usize {
    let Ok(m) = rsip::SipMessage::try_from(b) else {
        return 0;
    };
    let via = m
        .via_header()
        .ok()
        .and_then(|v| v.typed().ok())
        .map_or(0, |v| v.params.len());
    let from = m
        .from_header()
        .ok()
        .and_then(|f| f.typed().ok())
        .map_or(0, |f| f.params.len());
    let to = m
        .to_header()
        .ok()
        .and_then(|t| t.typed().ok())
        .map_or(0, |t| t.params.len());
    let cseq = m
        .cseq_header()
        .ok()
        .and_then(|c| c.typed().ok())
        .map_or(0, |c| c.seq as usize);
    let cid = m.call_id_header().map_or(0, |c| c.value().len());
    via + from + to + cseq + cid
}

fn bench(c: &mut Criterion) {
    let corpus = sip_corpus();
    // Only messages both parsers accept are compared, so neither side is timed on a fast reject.
    let common: Vec<&[u8]> = corpus
        .iter()
        .map(|(_, b)| b.as_slice())
        .filter(|b| Message::parse(b).is_ok() && rsip::SipMessage::try_from(*b).is_ok())
        .collect();
    let bytes: usize = common.iter().map(|b| b.len()).sum();

    let mut g = c.benchmark_group("corpus");
    g.throughput(Throughput::Bytes(bytes as u64));
    g.bench_function("mgw/split", |bn| {
        bn.iter(|| {
            for b in &common {
                black_box(
                    Message::parse(black_box(b))
                        .map(|m| m.header_count())
                        .unwrap_or(0),
                );
            }
        })
    });
    g.bench_function("rsip/split", |bn| {
        bn.iter(|| {
            for b in &common {
                black_box(
                    rsip::SipMessage::try_from(black_box(*b))
                        .map(|m| m.headers().iter().count())
                        .unwrap_or(0),
                );
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
