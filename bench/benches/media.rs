//! The media path's steps, each alone: the plain relay and the in-place G.711 conversion per
//! packet, every codec's encode and decode of a 20 ms frame, resampling, and whole transcoding
//! directions through the relay (`Relay::on_datagram`, as the engine calls it).
//!
//! These give the codec-only bound of transcoded calls per core that `docs/performance.md`
//! compares the measured relay against: a PCMU <-> Opus call costs 50 packets a second each
//! way, so calls per core <= 1 s / (50 x (PCMU->Opus + Opus->PCMU)).
//!
//! Run: `cargo bench -p mgw-bench --bench media`.

use std::hint::black_box;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use mgw_media::codec::resample::Resampler;
use mgw_media::relay::{
    AudioPlan, DirectionPlan, FlowSpec, LegSpec, Relay, RelayConfig, Side, Transcode,
};
use mgw_media::rtp::header::write_header;
use mgw_media::sdp::CodecName;
use mgw_media::transcode::{audio_rate, Decoder, Encoder, MAX_FRAME};

const CODECS: [CodecName; 5] = [
    CodecName::Pcmu,
    CodecName::Pcma,
    CodecName::G722,
    CodecName::G726_32,
    CodecName::Opus,
];

/// 20 ms of speech-like audio (two tones and a little noise) at `rate`.
fn frame(rate: u32, offset: usize) -> Vec<i16> {
    let n = (rate / 50) as usize;
    let mut seed = 0x2545_F491_4F6C_DD1Du64 ^ offset as u64;
    (0..n)
        .map(|i| {
            let t = (offset + i) as f64 / f64::from(rate);
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let noise = (seed >> 54) as f64 - 512.0;
            (4000.0 * (std::f64::consts::TAU * 440.0 * t).sin()
                + 2000.0 * (std::f64::consts::TAU * 1330.0 * t).sin()
                + noise) as i16
        })
        .collect()
}

fn codecs(c: &mut Criterion) {
    let mut g = c.benchmark_group("codec_20ms");
    for codec in CODECS {
        let rate = audio_rate(codec);
        let frames: Vec<Vec<i16>> = (0..50)
            .map(|k| frame(rate, k * rate as usize / 50))
            .collect();
        let mut enc = Encoder::new(codec, 20, 5).expect("encoder");
        let mut out = vec![0u8; 1500];
        let mut k = 0;
        g.bench_function(BenchmarkId::new("encode", codec.encoding()), |b| {
            b.iter(|| {
                k = (k + 1) % frames.len();
                black_box(enc.encode(&frames[k], &mut out).expect("encode"))
            })
        });
        let mut enc = Encoder::new(codec, 20, 5).expect("encoder");
        let payloads: Vec<Vec<u8>> = frames
            .iter()
            .map(|f| {
                let n = enc.encode(f, &mut out).expect("encode");
                out[..n].to_vec()
            })
            .collect();
        let mut dec = Decoder::new(codec).expect("decoder");
        let mut pcm = vec![0i16; MAX_FRAME];
        g.bench_function(BenchmarkId::new("decode", codec.encoding()), |b| {
            b.iter(|| {
                k = (k + 1) % payloads.len();
                black_box(dec.decode(Some(&payloads[k]), &mut pcm).expect("decode"))
            })
        });
    }
    // Opus as a transcoding direction runs it: at the other side's rate (8 kHz against
    // G.711), decoding a peer's fullband packets to 8 kHz.
    {
        let frames: Vec<Vec<i16>> = (0..50).map(|k| frame(8000, k * 160)).collect();
        let mut enc = Encoder::at_rate(CodecName::Opus, 8000, 20, 5).expect("encoder");
        let mut out = vec![0u8; 1500];
        let mut k = 0;
        g.bench_function(BenchmarkId::new("encode", "opus-8k"), |b| {
            b.iter(|| {
                k = (k + 1) % frames.len();
                black_box(enc.encode(&frames[k], &mut out).expect("encode"))
            })
        });
        let mut enc48 = Encoder::new(CodecName::Opus, 20, 5).expect("encoder");
        let payloads: Vec<Vec<u8>> = (0..50)
            .map(|k| {
                let n = enc48
                    .encode(&frame(48000, k * 960), &mut out)
                    .expect("encode");
                out[..n].to_vec()
            })
            .collect();
        let mut dec = Decoder::at_rate(CodecName::Opus, 8000).expect("decoder");
        let mut pcm = vec![0i16; MAX_FRAME];
        g.bench_function(BenchmarkId::new("decode", "opus-48k-to-8k"), |b| {
            b.iter(|| {
                k = (k + 1) % payloads.len();
                black_box(dec.decode(Some(&payloads[k]), &mut pcm).expect("decode"))
            })
        });
    }
    for (from, to) in [(8000, 48000), (48000, 8000), (8000, 16000), (16000, 8000)] {
        let mut r = Resampler::new(from, to).expect("resampler");
        let input = frame(from, 0);
        let mut out = vec![0i16; MAX_FRAME * 6];
        g.bench_function(BenchmarkId::new("resample", format!("{from}-{to}")), |b| {
            b.iter(|| black_box(r.process(&input, &mut out).expect("resample")))
        });
    }
    g.finish();
}

const A: &str = "192.0.2.10:4000";
const B: &str = "198.51.100.20:6000";

fn relay_with(a_to_b: DirectionPlan) -> Relay {
    let t0 = Instant::now();
    let mut relay = Relay::new(RelayConfig::default(), t0);
    let leg = |port, remote: &str| LegSpec {
        local_rtp: port,
        remote: Some(remote.parse().expect("addr")),
        remote_rtcp: None,
        allow_nat: false,
    };
    let id = relay.create(leg(30000, A), leg(30002, B), t0);
    relay.set_direction(id, Side::A, a_to_b, t0).expect("plan");
    relay
}

/// Packets of `codec` as a sender would send them, 20 ms each.
fn packets(codec: CodecName, pt: u8) -> Vec<Vec<u8>> {
    let rate = audio_rate(codec);
    let mut enc = Encoder::new(codec, 20, 5).expect("encoder");
    let mut out = vec![0u8; 1500];
    (0..50)
        .map(|k| {
            let n = enc
                .encode(&frame(rate, k * rate as usize / 50), &mut out)
                .expect("encode");
            let mut p = vec![0u8; 12 + n];
            p[12..].copy_from_slice(&out[..n]);
            p
        })
        .map(|mut p| {
            write_header(&mut p, false, pt, 0, 0, 99);
            p
        })
        .collect()
}

/// One packet from A through the relay per iteration, with sequence and timestamp advancing
/// as a real sender's do.
fn relay_path(c: &mut Criterion) {
    let mut g = c.benchmark_group("relay_packet");
    let audio = |from, in_pt, to, out_pt| {
        DirectionPlan::Audio(AudioPlan {
            from,
            in_pt,
            to,
            out_pt,
            ptime_ms: 20,
            events_in: None,
            events_out: None,
            opus_complexity: 5,
        })
    };
    let cases: [(&str, DirectionPlan, CodecName, u8); 6] = [
        (
            "plain",
            DirectionPlan::Relay(FlowSpec::mapped(&[(0, 0)], Transcode::None, 8000)),
            CodecName::Pcmu,
            0,
        ),
        (
            "ulaw-alaw",
            DirectionPlan::Relay(FlowSpec::mapped(&[(0, 8)], Transcode::UlawToAlaw, 8000)),
            CodecName::Pcmu,
            0,
        ),
        (
            "pcmu-opus",
            audio(CodecName::Pcmu, 0, CodecName::Opus, 111),
            CodecName::Pcmu,
            0,
        ),
        (
            "opus-pcmu",
            audio(CodecName::Opus, 111, CodecName::Pcmu, 0),
            CodecName::Opus,
            111,
        ),
        (
            "pcmu-g722",
            audio(CodecName::Pcmu, 0, CodecName::G722, 9),
            CodecName::Pcmu,
            0,
        ),
        (
            "g726-pcma",
            audio(CodecName::G726_32, 98, CodecName::Pcma, 8),
            CodecName::G726_32,
            98,
        ),
    ];
    let from: SocketAddr = A.parse().expect("addr");
    for (name, plan, codec, pt) in cases {
        let mut relay = relay_with(plan);
        let input = packets(codec, pt);
        let step = codec.rtp_clock() / 50;
        let mut buf = vec![0u8; 2048];
        let mut extra = vec![0u8; 2048];
        let t0 = Instant::now();
        let mut i: u32 = 0;
        g.bench_function(name, |b| {
            b.iter(|| {
                let p = &input[i as usize % input.len()];
                buf[..p.len()].copy_from_slice(p);
                buf[2..4].copy_from_slice(&(i as u16).to_be_bytes());
                buf[4..8].copy_from_slice(&(i.wrapping_mul(step)).to_be_bytes());
                let now = t0 + Duration::from_millis(u64::from(i) * 20);
                i = i.wrapping_add(1);
                let v = relay.on_datagram(30000, from, &mut buf, p.len(), now);
                while relay.poll_extra(&mut extra).is_some() {}
                black_box(v)
            })
        });
    }
    g.finish();
}

criterion_group!(
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = codecs, relay_path
);
criterion_main!(benches);
