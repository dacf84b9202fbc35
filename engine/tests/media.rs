//! The zero-copy media engine on both backends, with real loopback sockets: a relay-like
//! handler forwards between two ports it opened at runtime, rewriting each packet in place.

use std::any::Any;
use std::collections::HashMap;
use std::io::ErrorKind;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::mpsc::{channel, Sender};
use std::time::{Duration, Instant};

use mgw_engine::{
    Backend, Forward, MediaConfig, MediaEngine, MediaHandle, MediaHandler, PortControl,
};

const PATIENCE: Duration = Duration::from_secs(10);
const LOOPBACK: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

/// A packet starting with this byte makes the handler panic.
const PANIC: u8 = 0xEE;
/// A packet starting with this byte is answered twice as long, after a further datagram
/// `b"first"` (as a transcoder's output can be longer than its input, or more than one packet).
const GROW: u8 = 0xE0;

enum Cmd {
    /// Open these ports (0 = any); the ports (or the error kind) go back.
    Open(Vec<u16>, Sender<Result<Vec<u16>, ErrorKind>>),
    /// Packets on `.0` go out from `.1` to `.2`.
    Route(u16, u16, SocketAddr, Sender<()>),
    Close(u16, Sender<bool>),
}

/// Like a relay: per incoming port, the port to send from and the peer to send to. Increments
/// the first byte of every packet in the receive buffer.
#[derive(Default)]
struct TestRelay {
    routes: HashMap<u16, (u16, SocketAddr)>,
    extra: Option<Forward>,
}

impl MediaHandler for TestRelay {
    fn on_packet(
        &mut self,
        local_port: u16,
        from: SocketAddr,
        buf: &mut [u8],
        len: usize,
        _now: Instant,
    ) -> Option<Forward> {
        if let SocketAddr::V6(a) = from {
            assert!(
                a.ip().to_ipv4_mapped().is_none(),
                "IPv4 peers are shown as IPv4, not {from}"
            );
        }
        let first = buf.first_mut()?;
        if *first == PANIC {
            panic!("test relay asked to panic");
        }
        let grow = *first == GROW;
        *first = first.wrapping_add(1);
        let &(from_port, to) = self.routes.get(&local_port)?;
        if grow {
            buf.copy_within(..len, len);
            self.extra = Some(Forward {
                from_port,
                to,
                len: 5,
            });
            return Some(Forward {
                from_port,
                to,
                len: 2 * len,
            });
        }
        Some(Forward { from_port, to, len })
    }

    fn poll_extra(&mut self, buf: &mut [u8]) -> Option<Forward> {
        let f = self.extra.take()?;
        buf[..5].copy_from_slice(b"first");
        Some(f)
    }

    fn on_control(
        &mut self,
        datagram: &[u8],
        _from: SocketAddr,
        _now: Instant,
        ports: &mut PortControl,
    ) -> Option<Vec<u8>> {
        if datagram == b"open" {
            let p = ports.open(0).ok()?;
            return Some(format!("opened {p}").into_bytes());
        }
        let mut r = b"pong:".to_vec();
        r.extend_from_slice(datagram);
        Some(r)
    }

    fn on_command(&mut self, cmd: Box<dyn Any + Send>, _now: Instant, ports: &mut PortControl) {
        let Ok(cmd) = cmd.downcast::<Cmd>() else {
            return;
        };
        match *cmd {
            Cmd::Open(want, reply) => {
                let got: Result<Vec<u16>, _> = want.iter().map(|&p| ports.open(p)).collect();
                let _ = reply.send(got.map_err(|e| e.kind()));
            }
            Cmd::Route(port, from_port, to, reply) => {
                self.routes.insert(port, (from_port, to));
                let _ = reply.send(());
            }
            Cmd::Close(port, reply) => {
                self.routes.remove(&port);
                let _ = reply.send(ports.close(port));
            }
        }
    }
}

fn start(backend: Backend, workers: usize, recv_buffers: u16) -> MediaHandle {
    start_on(backend, workers, recv_buffers, LOOPBACK)
}

fn start_on(backend: Backend, workers: usize, recv_buffers: u16, bind_ip: IpAddr) -> MediaHandle {
    let config = MediaConfig {
        workers,
        backend,
        bind_ip,
        control: Some(SocketAddr::new(LOOPBACK, 0)),
        recv_buffers,
        pin_workers: false,
    };
    let engine = MediaEngine::start(config, |_| TestRelay::default())
        .unwrap_or_else(|e| panic!("media engine on {backend} did not start: {e}"));
    assert_eq!(engine.backend(), backend);
    engine
}

fn open(engine: &MediaHandle, worker: usize, ports: Vec<u16>) -> Result<Vec<u16>, ErrorKind> {
    let (tx, rx) = channel();
    engine
        .post(worker, Box::new(Cmd::Open(ports, tx)))
        .expect("post");
    rx.recv_timeout(PATIENCE).expect("open answered")
}

fn route(engine: &MediaHandle, worker: usize, port: u16, from_port: u16, to: SocketAddr) {
    let (tx, rx) = channel();
    engine
        .post(worker, Box::new(Cmd::Route(port, from_port, to, tx)))
        .expect("post");
    rx.recv_timeout(PATIENCE).expect("route answered");
}

fn close(engine: &MediaHandle, worker: usize, port: u16) -> bool {
    let (tx, rx) = channel();
    engine
        .post(worker, Box::new(Cmd::Close(port, tx)))
        .expect("post");
    rx.recv_timeout(PATIENCE).expect("close answered")
}

fn client() -> UdpSocket {
    client_on(LOOPBACK)
}

fn client_on(ip: IpAddr) -> UdpSocket {
    let s = UdpSocket::bind(SocketAddr::new(ip, 0)).expect("bind");
    s.set_read_timeout(Some(PATIENCE)).expect("timeout");
    s
}

fn recv(s: &UdpSocket, buf: &mut [u8]) -> (usize, SocketAddr) {
    loop {
        match s.recv_from(buf) {
            Ok(r) => return r,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => panic!("datagram did not arrive: {e}"),
        }
    }
}

/// A distinct packet per sequence number, 172 bytes like a 20 ms G.711 RTP packet.
fn packet(seq: u32, dir: u8) -> [u8; 172] {
    let mut p = [0u8; 172];
    p[0] = dir;
    p[1..5].copy_from_slice(&seq.to_be_bytes());
    for (i, b) in p[5..].iter_mut().enumerate() {
        *b = (seq as usize * 7 + i) as u8;
    }
    p
}

/// Sends `count` packets from `src` to `dst_port` in windows of `window`, and checks each
/// arrives at `sink` from `via_port` with the first byte incremented and the rest unchanged.
fn pump(
    src: &UdpSocket,
    dst_port: u16,
    sink: &UdpSocket,
    via_port: u16,
    count: u32,
    window: u32,
    dir: u8,
) {
    let ip = src.local_addr().expect("addr").ip();
    let dst = SocketAddr::new(ip, dst_port);
    let mut buf = [0u8; 2048];
    let mut seq = 0;
    while seq < count {
        let n = window.min(count - seq);
        for i in 0..n {
            src.send_to(&packet(seq + i, dir), dst).expect("send");
        }
        // Loopback keeps the order within one socket pair.
        for i in 0..n {
            let (len, from) = recv(sink, &mut buf);
            let mut want = packet(seq + i, dir);
            want[0] += 1;
            assert_eq!(
                from,
                SocketAddr::new(ip, via_port),
                "sent from the other port"
            );
            assert_eq!(
                &buf[..len],
                &want[..],
                "packet {} rewritten in place",
                seq + i
            );
        }
        seq += n;
    }
}

macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod io_uring {
            $( #[test] fn $name() { super::$name(mgw_engine::Backend::IoUring) } )*
        }
        mod epoll {
            $( #[test] fn $name() { super::$name(mgw_engine::Backend::Epoll) } )*
        }
    };
}

on_both_backends!(
    relays_both_ways_and_closes_ports,
    control_socket_answers_and_opens_ports,
    buffer_exhaustion_rearms_receive,
    handler_panic_drops_one_packet,
    relays_over_ipv6,
    dual_stack_ports_serve_ipv4_peers,
    replies_longer_than_the_datagram_and_further_packets,
);

/// Waits until worker `worker` has counted `n` sent packets: the peer can see a packet before
/// the worker has counted it (loopback delivers inside the send call; io_uring counts when it
/// reaps the completion).
fn wait_tx(engine: &MediaHandle, worker: usize, n: u64) {
    let deadline = Instant::now() + PATIENCE;
    while engine.stats()[worker].tx_packets < n {
        assert!(Instant::now() < deadline, "{:?}", engine.stats()[worker]);
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn relays_both_ways_and_closes_ports(backend: Backend) {
    let engine = start(backend, 2, 64);
    let (phone, trunk) = (client(), client());
    // On worker 1: the session is pinned to the worker that opened its ports.
    let ports = open(&engine, 1, vec![0, 0]).expect("ports open");
    let (p1, p2) = (ports[0], ports[1]);
    route(&engine, 1, p1, p2, trunk.local_addr().expect("addr"));
    route(&engine, 1, p2, p1, phone.local_addr().expect("addr"));

    pump(&phone, p1, &trunk, p2, 1000, 50, 0x10);
    pump(&trunk, p2, &phone, p1, 1000, 50, 0x20);
    wait_tx(&engine, 1, 2000);

    let s = &engine.stats()[1];
    assert_eq!(s.rx_packets, 2000);
    assert_eq!(s.tx_packets, 2000);
    assert_eq!(s.tx_bytes, 2000 * 172);
    assert_eq!(s.ports_open, 2);
    assert_eq!(s.send_errors + s.drops_no_port + s.handler_panics, 0);
    assert_eq!(
        engine.stats()[0].rx_packets,
        0,
        "worker 0 has no media ports"
    );

    // Opening a port that is open is refused.
    assert_eq!(open(&engine, 1, vec![p1]), Err(ErrorKind::AddrInUse));

    // Closing: the port stops receiving and is given back to the system.
    assert!(close(&engine, 1, p1));
    assert!(!close(&engine, 1, p1), "already closed");
    let rx_before = engine.stats()[1].rx_packets;
    phone
        .send_to(&packet(1, 0x30), SocketAddr::new(LOOPBACK, p1))
        .expect("send");
    let deadline = Instant::now() + PATIENCE;
    let rebound = loop {
        match UdpSocket::bind(SocketAddr::new(LOOPBACK, p1)) {
            Ok(s) => break s,
            Err(e) if Instant::now() < deadline => {
                assert_eq!(e.kind(), ErrorKind::AddrInUse);
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) => panic!("port {p1} still bound after close: {e}"),
        }
    };
    drop(rebound);
    phone
        .send_to(&packet(2, 0x30), SocketAddr::new(LOOPBACK, p1))
        .expect("send");
    trunk
        .set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    let mut buf = [0u8; 2048];
    assert!(
        trunk.recv_from(&mut buf).is_err(),
        "a closed port relays nothing"
    );
    assert_eq!(engine.stats()[1].rx_packets, rx_before);
    assert_eq!(engine.stats()[1].ports_open, 1);

    // The other direction still works, then p2 forwards from a closed port: dropped.
    trunk.set_read_timeout(Some(PATIENCE)).expect("timeout");
    trunk
        .send_to(&packet(3, 0x40), SocketAddr::new(LOOPBACK, p2))
        .expect("send");
    let deadline = Instant::now() + PATIENCE;
    while engine.stats()[1].drops_no_port == 0 {
        assert!(
            Instant::now() < deadline,
            "forward from a closed port not counted"
        );
        std::thread::sleep(Duration::from_millis(5));
    }

    // The port can be opened again (io_uring may need a turn to let the old socket go).
    let deadline = Instant::now() + PATIENCE;
    loop {
        match open(&engine, 1, vec![p1]) {
            Ok(p) => {
                assert_eq!(p, vec![p1]);
                break;
            }
            Err(ErrorKind::AddrInUse) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) => panic!("reopening {p1}: {e:?}"),
        }
    }
    route(&engine, 1, p1, p2, trunk.local_addr().expect("addr"));
    pump(&phone, p1, &trunk, p2, 10, 10, 0x50);
    engine.shutdown();
}

fn control_socket_answers_and_opens_ports(backend: Backend) {
    let engine = start(backend, 2, 64);
    let ctl = engine.control_addr().expect("control address");
    assert_ne!(ctl.port(), 0);
    let c = client();
    let mut buf = [0u8; 2048];
    c.send_to(b"ping", ctl).expect("send");
    let (n, from) = recv(&c, &mut buf);
    assert_eq!(&buf[..n], b"pong:ping");
    assert_eq!(from, ctl);

    // A port opened from the control socket is served by worker 0.
    c.send_to(b"open", ctl).expect("send");
    let (n, _) = recv(&c, &mut buf);
    let text = std::str::from_utf8(&buf[..n]).expect("text");
    let port: u16 = text
        .strip_prefix("opened ")
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("unexpected reply {text}"));
    let other = open(&engine, 0, vec![0]).expect("open")[0];
    route(&engine, 0, port, other, c.local_addr().expect("addr"));
    pump(&c, port, &c, other, 20, 5, 0x60);
    let s = &engine.stats()[0];
    assert_eq!(s.control_rx, 2);
    assert_eq!(s.ports_open, 2);
    assert_eq!(s.rx_packets, 20);
    engine.shutdown();
}

/// Four buffers for bursts of 200: io_uring's multishot receive runs out of buffers (some are
/// out in sends), ends, and is re-armed; nothing is lost, the datagrams wait in the socket.
fn buffer_exhaustion_rearms_receive(backend: Backend) {
    let engine = start(backend, 1, 4);
    let (phone, trunk) = (client(), client());
    let ports = open(&engine, 0, vec![0, 0]).expect("ports open");
    route(
        &engine,
        0,
        ports[0],
        ports[1],
        trunk.local_addr().expect("addr"),
    );
    pump(&phone, ports[0], &trunk, ports[1], 2000, 200, 0x70);
    wait_tx(&engine, 0, 2000);
    let s = &engine.stats()[0];
    assert_eq!(s.tx_packets, 2000);
    if backend == Backend::IoUring {
        assert!(s.drops_no_buffer > 0, "the ring never ran dry: {s:?}");
    }
    engine.shutdown();
}

fn handler_panic_drops_one_packet(backend: Backend) {
    let engine = start(backend, 1, 64);
    let (phone, trunk) = (client(), client());
    let ports = open(&engine, 0, vec![0, 0]).expect("ports open");
    route(
        &engine,
        0,
        ports[0],
        ports[1],
        trunk.local_addr().expect("addr"),
    );
    let dst = SocketAddr::new(LOOPBACK, ports[0]);
    phone.send_to(&[PANIC, 1, 2, 3], dst).expect("send");
    pump(&phone, ports[0], &trunk, ports[1], 5, 5, 0x01);
    assert_eq!(engine.stats()[0].handler_panics, 1);
    engine.shutdown();
}

/// Posting to a stopped engine hands the command back; ports of a stopped engine are free.
#[test]
fn shutdown_releases_everything() {
    for backend in [Backend::IoUring, Backend::Epoll] {
        let engine = start(backend, 1, 64);
        let port = open(&engine, 0, vec![0]).expect("open")[0];
        let mailbox = engine.mailbox(0);
        engine.shutdown();
        assert!(mailbox.post(Box::new(1u8)).is_err());
        UdpSocket::bind(SocketAddr::new(LOOPBACK, port)).expect("port released at shutdown");
    }
}

fn relays_over_ipv6(backend: Backend) {
    let v6: IpAddr = "::1".parse().expect("v6");
    let engine = start_on(backend, 1, 64, v6);
    let (phone, trunk) = (client_on(v6), client_on(v6));
    let ports = open(&engine, 0, vec![0, 0]).expect("ports open");
    route(
        &engine,
        0,
        ports[0],
        ports[1],
        trunk.local_addr().expect("addr"),
    );
    route(
        &engine,
        0,
        ports[1],
        ports[0],
        phone.local_addr().expect("addr"),
    );
    pump(&phone, ports[0], &trunk, ports[1], 100, 20, 0x11);
    pump(&trunk, ports[1], &phone, ports[0], 100, 20, 0x22);
    engine.shutdown();
}

/// Ports bound to `::` take IPv4 peers: the handler sees (and names) them as IPv4 addresses,
/// the engine maps them for the IPv6 socket.
fn dual_stack_ports_serve_ipv4_peers(backend: Backend) {
    let any6: IpAddr = "::".parse().expect("v6");
    let engine = start_on(backend, 1, 64, any6);
    let (phone, trunk) = (client(), client());
    let ports = open(&engine, 0, vec![0, 0]).expect("ports open");
    route(
        &engine,
        0,
        ports[0],
        ports[1],
        trunk.local_addr().expect("addr"),
    );
    pump(&phone, ports[0], &trunk, ports[1], 100, 20, 0x33);
    let s = &engine.stats()[0];
    assert_eq!(s.handler_panics + s.send_errors, 0, "{s:?}");
    engine.shutdown();
}

/// A handler may answer with more bytes than it received (up to the buffer) and queue further
/// datagrams, which leave before the in-place one.
fn replies_longer_than_the_datagram_and_further_packets(backend: Backend) {
    let engine = start(backend, 1, 64);
    let (phone, trunk) = (client(), client());
    let ports = open(&engine, 0, vec![0, 0]).expect("ports open");
    route(
        &engine,
        0,
        ports[0],
        ports[1],
        trunk.local_addr().expect("addr"),
    );
    let p = packet(7, GROW);
    let big = mgw_engine::MEDIA_MAX_PACKET / 2;
    let mut long = vec![0u8; big];
    long[..172].copy_from_slice(&p);
    for datagram in [&p[..], &long[..]] {
        phone
            .send_to(datagram, SocketAddr::new(LOOPBACK, ports[0]))
            .expect("send");
        let mut buf = [0u8; 4096];
        let (n, _) = recv(&trunk, &mut buf);
        assert_eq!(&buf[..n], b"first", "the further datagram comes first");
        let (n, _) = recv(&trunk, &mut buf);
        assert_eq!(n, 2 * datagram.len());
        let mut want = datagram.to_vec();
        want[0] += 1;
        assert_eq!(&buf[..datagram.len()], &want[..]);
        assert_eq!(&buf[datagram.len()..n], &want[..]);
    }
    wait_tx(&engine, 0, 4);
    assert_eq!(engine.stats()[0].extra_packets, 2);
}
