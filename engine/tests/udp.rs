//! UDP through both backends, on real loopback sockets.

mod common;

use std::time::Duration;

use common::*;
use mgw_engine::{Backend, ListenAddr, Peer, Transport};

on_both_backends!(
    udp_v4_echo,
    udp_v6_echo,
    handler_panic_keeps_worker_running,
    timer_fires,
    mailbox_delivers_to_worker,
    buffer_exhaustion_rearms_receive,
    oversized_datagram_is_handled,
    workers_share_the_port,
    shutdown_releases_port,
);

fn echo(backend: Backend, addr: std::net::SocketAddr) {
    let (engine, rx) = start(config(backend, vec![ListenAddr::udp(addr)]));
    let server = udp_addr(&engine, addr.is_ipv6());
    assert_ne!(server.port(), 0, "port 0 must be resolved");
    let c = udp_client(server);
    for i in 0..3 {
        let m = sip(&format!("udp{i}"));
        c.send_to(&m, server).expect("send");
        assert_eq!(udp_recv(&c), m);
    }
    let peer = wait_for(&rx, |e| match e {
        Event::Msg { peer, .. } => Some(peer),
        _ => None,
    });
    assert_eq!(peer.transport, Transport::Udp);
    assert_eq!(peer.remote, c.local_addr().expect("addr"));
    assert_eq!(peer.local, server);
    assert_eq!(peer.conn, None);
    let s = &engine.stats()[0];
    assert_eq!(s.udp_rx_datagrams, 3);
    engine.shutdown();
}

fn udp_v4_echo(backend: Backend) {
    echo(backend, v4());
}

fn udp_v6_echo(backend: Backend) {
    echo(backend, v6());
}

fn handler_panic_keeps_worker_running(backend: Backend) {
    let (engine, _rx) = start(config(backend, vec![ListenAddr::udp(v4())]));
    let server = udp_addr(&engine, false);
    let c = udp_client(server);
    c.send_to(b"PANIC now", server).expect("send");
    c.send_to(b"after", server).expect("send");
    // The panicking call's half answer is discarded; the next message is served.
    assert_eq!(udp_recv(&c), b"after");
    assert_eq!(engine.stats()[0].handler_panics, 1);
    engine.shutdown();
}

fn timer_fires(backend: Backend) {
    let (engine, rx) = start(config(backend, vec![ListenAddr::udp(v4())]));
    let server = udp_addr(&engine, false);
    let c = udp_client(server);
    c.send_to(b"TIMER", server).expect("send");
    assert_eq!(udp_recv(&c), b"TIMER-FIRED");
    wait_for(&rx, |e| matches!(e, Event::Timer { .. }).then_some(()));
    engine.shutdown();
}

fn mailbox_delivers_to_worker(backend: Backend) {
    let mut cfg = config(backend, vec![ListenAddr::udp(v4())]);
    cfg.workers = 2;
    let (engine, rx) = start(cfg);
    let server = udp_addr(&engine, false);
    let c = udp_client(server);
    let to = Peer::udp(c.local_addr().expect("addr"), server);
    for w in 0..2 {
        let mb = engine.mailbox(w);
        assert_eq!(mb.worker(), w);
        let posted =
            std::thread::spawn(move || mb.post(Box::new((to, format!("mail{w}")))).is_ok());
        assert!(posted.join().expect("poster thread"));
        assert_eq!(udp_recv(&c), format!("mail{w}").as_bytes());
        let got = wait_for(&rx, |e| match e {
            Event::Mail { text, worker } => Some((text, worker)),
            _ => None,
        });
        assert_eq!(got, (format!("mail{w}"), w));
    }
    let mb = engine.mailbox(0);
    engine.shutdown();
    assert!(
        mb.post(Box::new(1u8)).is_err(),
        "posting after shutdown must fail"
    );
}

/// With two provided buffers, a burst ends the multishot receive (ENOBUFS) again and again;
/// every datagram must still arrive (they wait in the socket until the receive is re-armed).
fn buffer_exhaustion_rearms_receive(backend: Backend) {
    let mut cfg = config(backend, vec![ListenAddr::udp(v4())]);
    cfg.recv_buffers = 2;
    let (engine, _rx) = start(cfg);
    let server = udp_addr(&engine, false);
    let c = udp_client(server);
    const N: usize = 200;
    for i in 0..N {
        c.send_to(format!("QUIET {i}").as_bytes(), server)
            .expect("send");
    }
    c.send_to(b"last", server).expect("send");
    assert_eq!(udp_recv(&c), b"last");
    let s = &engine.stats()[0];
    assert_eq!(s.udp_rx_datagrams, N as u64 + 1);
    if backend == Backend::IoUring {
        eprintln!("multishot ends for lack of buffers: {}", s.drops_no_buffer);
    }
    engine.shutdown();
}

/// A 65000-byte datagram fits a receive buffer and is echoed whole.
fn oversized_datagram_is_handled(backend: Backend) {
    let (engine, _rx) = start(config(backend, vec![ListenAddr::udp(v4())]));
    let server = udp_addr(&engine, false);
    let c = udp_client(server);
    let big = vec![b'x'; 65_000];
    c.send_to(&big, server).expect("send");
    assert_eq!(udp_recv(&c).len(), big.len());
    assert_eq!(engine.stats()[0].drops_truncated, 0);
    engine.shutdown();
}

/// Every worker binds the same port (SO_REUSEPORT); all answer, whichever gets the datagram.
fn workers_share_the_port(backend: Backend) {
    let mut cfg = config(backend, vec![ListenAddr::udp(v4())]);
    cfg.workers = 2;
    cfg.pin_workers = true;
    let (engine, _rx) = start(cfg);
    let server = udp_addr(&engine, false);
    for i in 0..16 {
        let c = udp_client(server);
        c.send_to(format!("from {i}").as_bytes(), server)
            .expect("send");
        assert_eq!(udp_recv(&c), format!("from {i}").as_bytes());
    }
    let total: u64 = engine.stats().iter().map(|s| s.udp_rx_datagrams).sum();
    assert_eq!(total, 16);
    engine.shutdown();
}

fn shutdown_releases_port(backend: Backend) {
    let (engine, _rx) = start(config(
        backend,
        vec![ListenAddr::udp(v4()), ListenAddr::tcp(v4())],
    ));
    let u = udp_addr(&engine, false);
    let t = tcp_addr(&engine, false);
    let c = udp_client(u);
    c.send_to(b"x", u).expect("send");
    assert_eq!(udp_recv(&c), b"x");
    let _open = tcp_client(t);
    engine.shutdown();
    // Only a plain (non-REUSEPORT) bind proves nobody holds the ports any more.
    std::net::UdpSocket::bind(u).expect("udp port released");
    std::net::TcpListener::bind(t).expect("tcp port released");
    let _ = Duration::ZERO;
}
