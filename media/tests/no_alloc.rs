//! The plain relay path allocates nothing per packet: a counting global allocator watches
//! thousands of packets through a warmed-up relay, with and without G.711 transcoding.

use std::alloc::{GlobalAlloc, Layout, System};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use mgw_media::relay::{FlowSpec, LegSpec, Relay, RelayConfig, Side, Transcode, Verdict};
use mgw_media::rtp::header::write_header;

struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: delegates to the system allocator unchanged; only counts calls.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System.alloc` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
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
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    for i in 10..5010 {
        send(&mut relay, 30000, phone, 0, i);
        send(&mut relay, 30002, trunk, 8, i);
    }
    let after = ALLOCATIONS.load(Ordering::Relaxed);
    assert_eq!(
        after - before,
        0,
        "allocations while relaying 10 000 packets"
    );
}
