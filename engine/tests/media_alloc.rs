//! The media packet path allocates nothing: a counting global allocator counts what the media
//! worker threads allocate while 10 000 packets are relayed (after a warm-up), on both backends.
//!
//! Only the worker threads are counted (their factory marks them), so the test threads' own
//! allocations and the other test running in parallel do not disturb the count.

use std::alloc::{GlobalAlloc, Layout, System};
use std::any::Any;
use std::cell::Cell;
use std::io::ErrorKind;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{channel, Sender};
use std::time::{Duration, Instant};

use mgw_engine::{Backend, Forward, MediaConfig, MediaEngine, MediaHandler, PortControl};

struct Counting;

/// Allocations per counting slot (one slot per test).
static COUNTS: [AtomicU64; 3] = [AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0)];

thread_local! {
    /// The slot this thread counts into; `usize::MAX` = not counted. Const-initialised and
    /// without destructor, so reading it never allocates.
    static SLOT: Cell<usize> = const { Cell::new(usize::MAX) };
}

fn note() {
    let _ = SLOT.try_with(|s| {
        if let Some(c) = COUNTS.get(s.get()) {
            c.fetch_add(1, Ordering::Relaxed);
        }
    });
}

// SAFETY: every call is forwarded unchanged to the system allocator; counting touches only an
// atomic and a const thread-local, neither of which allocates.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note();
        // SAFETY: the caller's contract is passed on unchanged.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note();
        // SAFETY: as above.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note();
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
const PATIENCE: Duration = Duration::from_secs(10);

/// Opens two ports, relays the first to `peer` from the second.
struct Setup(SocketAddr, Sender<[u16; 2]>);

#[derive(Default)]
struct Relay {
    route: Option<(u16, u16, SocketAddr)>,
}

impl MediaHandler for Relay {
    fn on_packet(
        &mut self,
        local_port: u16,
        _: SocketAddr,
        buf: &mut [u8],
        len: usize,
        _: Instant,
    ) -> Option<Forward> {
        let (port, from_port, to) = self.route?;
        if local_port != port {
            return None;
        }
        // Rewrite in place, as the relay does with RTP headers.
        for b in buf.iter_mut().take(12) {
            *b ^= 0x5a;
        }
        Some(Forward { from_port, to, len })
    }

    fn on_command(&mut self, cmd: Box<dyn Any + Send>, _: Instant, ports: &mut PortControl) {
        if let Ok(s) = cmd.downcast::<Setup>() {
            let (Ok(a), Ok(b)) = (ports.open(0), ports.open(0)) else {
                return;
            };
            self.route = Some((a, b, s.0));
            let _ = s.1.send([a, b]);
        }
    }
}

fn recv(s: &UdpSocket, buf: &mut [u8]) -> usize {
    loop {
        match s.recv_from(buf) {
            Ok((n, _)) => return n,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => panic!("packet did not arrive: {e}"),
        }
    }
}

/// Relays `count` packets in windows of 64 and checks them.
fn pump(phone: &UdpSocket, trunk: &UdpSocket, to: SocketAddr, count: u32) {
    let mut pkt = [0u8; 172];
    let mut buf = [0u8; 2048];
    let mut seq = 0u32;
    while seq < count {
        let n = 64.min(count - seq);
        for i in 0..n {
            pkt[..4].copy_from_slice(&(seq + i).to_be_bytes());
            phone.send_to(&pkt, to).expect("send");
        }
        for i in 0..n {
            let len = recv(trunk, &mut buf);
            assert_eq!(len, 172);
            let got = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) ^ 0x5a5a_5a5a;
            assert_eq!(got, seq + i);
        }
        seq += n;
    }
}

fn no_allocation_per_packet(backend: Backend, slot: usize) {
    let config = MediaConfig {
        workers: 1,
        backend,
        bind_ip: LOOPBACK,
        control: None,
        recv_buffers: 256,
        pin_workers: false,
    };
    let engine = MediaEngine::start(config, move |_| {
        SLOT.with(|s| s.set(slot));
        Relay::default()
    })
    .unwrap_or_else(|e| panic!("{backend}: {e}"));
    let phone = UdpSocket::bind(SocketAddr::new(LOOPBACK, 0)).expect("bind");
    let trunk = UdpSocket::bind(SocketAddr::new(LOOPBACK, 0)).expect("bind");
    trunk.set_read_timeout(Some(PATIENCE)).expect("timeout");
    let (tx, rx) = channel();
    let trunk_addr = trunk.local_addr().expect("addr");
    engine
        .post(0, Box::new(Setup(trunk_addr, tx)))
        .expect("post");
    let [rtp, _] = rx.recv_timeout(PATIENCE).expect("ports opened");
    let to = SocketAddr::new(LOOPBACK, rtp);

    pump(&phone, &trunk, to, 2000);
    let before = COUNTS[slot].load(Ordering::Relaxed);
    pump(&phone, &trunk, to, 10_000);
    let during = COUNTS[slot].load(Ordering::Relaxed) - before;
    // The peer can see a packet before the worker has counted it (loopback delivers inside the
    // send call; io_uring counts when it reaps the completion).
    let deadline = Instant::now() + PATIENCE;
    while engine.stats()[0].tx_packets < 12_000 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
    let stats = engine.stats()[0].clone();
    engine.shutdown();
    assert_eq!(stats.tx_packets, 12_000);
    assert_eq!(
        during, 0,
        "{backend}: the media worker allocated {during} times during 10 000 relayed packets"
    );
}

#[test]
fn io_uring_relays_without_allocating() {
    no_allocation_per_packet(Backend::IoUring, 0);
}

#[test]
fn epoll_relays_without_allocating() {
    no_allocation_per_packet(Backend::Epoll, 1);
}

/// The counter does see the worker thread: the setup command allocates (it opens sockets).
#[test]
fn the_counter_counts_worker_allocations() {
    let config = MediaConfig {
        workers: 1,
        backend: Backend::Epoll,
        bind_ip: LOOPBACK,
        control: None,
        recv_buffers: 8,
        pin_workers: false,
    };
    static PROBE: AtomicU64 = AtomicU64::new(0);

    let engine = MediaEngine::start(config, |_| {
        SLOT.with(|s| s.set(2));
        PROBE.store(1, Ordering::Relaxed);
        Relay::default()
    })
    .expect("start");
    let (tx, rx) = channel();
    engine
        .post(0, Box::new(Setup(SocketAddr::new(LOOPBACK, 9), tx)))
        .expect("post");
    rx.recv_timeout(PATIENCE).expect("ports opened");
    engine.shutdown();
    assert_eq!(PROBE.load(Ordering::Relaxed), 1);
    assert!(COUNTS[2].load(Ordering::Relaxed) > 0);
}
