//! Digest authentication costs per REGISTER: issuing and checking a nonce, verifying an MD5
//! and a SHA-256 response, and recording a nonce-count.

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use mgw_core::auth::digest::{self, Algorithm};
use mgw_core::auth::{Credentials, NonceCounts, NonceKey};

fn bench(c: &mut Criterion) {
    let key = NonceKey::new([5; 32]);
    let nonce = key.issue(1_000, "mgw.test");
    let mut g = c.benchmark_group("digest");
    g.bench_function("nonce_issue", |b| {
        b.iter(|| key.issue(black_box(1_000), "mgw.test"))
    });
    g.bench_function("nonce_check", |b| {
        b.iter(|| key.check(black_box(&nonce), "mgw.test", 2_000, 300_000))
    });
    for alg in [Algorithm::Md5, Algorithm::Sha256] {
        let ha1 = alg.ha1("alice", "mgw.test", "wonder");
        let uri = "sip:mgw.test";
        let ha2 = alg.hash_hex(&[b"REGISTER", uri.as_bytes()]);
        let response = alg.hash_hex(&[
            ha1.as_bytes(),
            nonce.as_bytes(),
            b"00000001",
            b"c0ffee",
            b"auth",
            ha2.as_bytes(),
        ]);
        let header = format!(
            "Digest username=\"alice\", realm=\"mgw.test\", nonce=\"{nonce}\", uri=\"{uri}\", \
             response=\"{response}\", algorithm={}, qop=auth, nc=00000001, cnonce=\"c0ffee\"",
            alg.as_str()
        );
        g.bench_function(format!("parse_and_verify/{}", alg.as_str()), |b| {
            b.iter(|| {
                let creds = Credentials::parse(black_box(&header)).map_err(|_| ());
                creds.map(|c| digest::verify(&c, alg, &ha1, "REGISTER"))
            })
        });
    }
    let counts = NonceCounts::new();
    let mut nc = 0u32;
    g.bench_function("nonce_count_record", |b| {
        b.iter(|| {
            nc = nc.wrapping_add(1);
            counts.record(black_box(&nonce), nc)
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
