//! The plain relay path allocates nothing per packet: a counting global allocator watches
//! thousands of packets through a warmed-up relay, with and without G.711 transcoding.

use std::alloc::{GlobalAlloc, Layout, System};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use mgw_media::relay::{FlowSpec, LegSpec, Relay, RelayConfig, Side, Transcode, Verdict};
use mgw_media::rtp::header::write_header;

struct Counting;

std::thread_local! {
    /// Allocations of this thread only: the test harness's own threads (printing results of
    /// the other test) must not count.
    static ALLOCATIONS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

fn count() {
    // `try_with`: a thread being torn down has no thread-locals left to count in.
    let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
}

fn allocations() -> usize {
    ALLOCATIONS.with(|c| c.get())
}

// SAFETY: delegates to the system allocator unchanged; only counts calls.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System.alloc` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn relaying_allocates_nothing_per_packet() {
    let phone: SocketAddr = "192.0.2.10:4000".parse().unwrap();
    let trunk: SocketAddr = "198.51.100.20:6000".parse().unwrap();
    let t0 = Instant::now();
    let mut relay = Relay::new(RelayConfig::default(), t0);
    let id = relay.create(
        LegSpec {
            local_rtp: 30000,
            remote: Some(phone),
            remote_rtcp: None,
            allow_nat: false,
        },
        LegSpec {
            local_rtp: 30002,
            remote: Some(trunk),
            remote_rtcp: None,
            allow_nat: false,
        },
        t0,
    );
    relay.set_flow(
        id,
        Side::B,
        FlowSpec::mapped(&[(8, 0)], Transcode::AlawToUlaw, 8000),
    );
    // The "receive buffer": reused for every packet as the engine's provided buffers are.
    let mut buf = [0u8; 1500];
    let mut send = |relay: &mut Relay, port: u16, from: SocketAddr, pt: u8, i: u16| {
        write_header(&mut buf[..12], false, pt, i, u32::from(i) * 160, 77);
        let now = t0 + Duration::from_millis(u64::from(i) * 20);
        let v = relay.on_packet(port, from, &mut buf[..172], now);
        assert!(matches!(v, Verdict::Forward { .. }));
    };
    for i in 0..10 {
        send(&mut relay, 30000, phone, 0, i);
        send(&mut relay, 30002, trunk, 8, i);
    }
    let before = allocations();
    for i in 10..5010 {
        send(&mut relay, 30000, phone, 0, i);
        send(&mut relay, 30002, trunk, 8, i);
    }
    let after = allocations();
    assert_eq!(
        after - before,
        0,
        "allocations while relaying 10 000 packets"
    );
}

/// The decoding path (here PCMU <-> G.722, with resampling and RFC 4733 events on one side
/// turned into tones) allocates only when it is built, never per packet. Opus is the exception
/// documented in docs/decisions.md: its encoder allocates per frame.
#[test]
fn transcoding_allocates_nothing_per_packet() {
    use mgw_media::relay::{AudioPlan, DirectionPlan, EventFormat};
    use mgw_media::sdp::CodecName;
    let phone: SocketAddr = "192.0.2.10:4000".parse().unwrap();
    let dect: SocketAddr = "198.51.100.20:6000".parse().unwrap();
    let t0 = Instant::now();
    let mut relay = Relay::new(RelayConfig::default(), t0);
    let leg = |port, remote| LegSpec {
        local_rtp: port,
        remote: Some(remote),
        remote_rtcp: None,
        allow_nat: false,
    };
    let id = relay.create(leg(30000, phone), leg(30002, dect), t0);
    let plan = |from, in_pt, to, out_pt, events_in| AudioPlan {
        from,
        in_pt,
        to,
        out_pt,
        ptime_ms: 20,
        events_in,
        events_out: None,
        opus_complexity: 5,
    };
    let te = Some(EventFormat {
        payload_type: 101,
        clock_rate: 8000,
    });
    for (side, p) in [
        (Side::A, plan(CodecName::Pcmu, 0, CodecName::G722, 9, te)),
        (Side::B, plan(CodecName::G722, 9, CodecName::Pcmu, 0, None)),
    ] {
        relay
            .set_direction(id, side, DirectionPlan::Audio(p), t0)
            .expect("plan");
    }
    let mut buf = [0u8; 2048];
    let mut extra = [0u8; 2048];
    let mut run = |relay: &mut Relay, range: std::ops::Range<u16>| {
        for i in range {
            let now = t0 + Duration::from_millis(u64::from(i) * 20);
            for (port, from, pt) in [(30000, phone, 0u8), (30002, dect, 9)] {
                // Every 50th packet from the phone is a key press event.
                let (pt, len) = if port == 30000 && i % 50 == 0 {
                    buf[12..16].copy_from_slice(&[5, 0x80, 0, 160]);
                    (101, 16)
                } else {
                    (pt, 172)
                };
                write_header(&mut buf[..12], false, pt, i, u32::from(i) * 160, 77);
                let v = relay.on_datagram(port, from, &mut buf, len, now);
                assert!(
                    matches!(v, Verdict::Forward { .. } | Verdict::Drop(_)),
                    "{v:?}"
                );
                while relay.poll_extra(&mut extra).is_some() {}
            }
        }
    };
    run(&mut relay, 0..20);
    let before = allocations();
    run(&mut relay, 20..2020);
    let after = allocations();
    assert_eq!(
        after - before,
        0,
        "the transcoding path allocated per packet"
    );
}
