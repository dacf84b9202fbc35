//! TCP through both backends: framing, keep-alives, stream errors, connect on demand, limits.

mod common;

use std::io::Write;
use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

use common::*;
use mgw_core::sip::framing::FrameError;
use mgw_engine::{Backend, ListenAddr, Transport};

on_both_backends!(
    tcp_v4_pipelined_and_split,
    tcp_v6_pipelined_and_split,
    crlf_ping_gets_pong,
    stream_error_answers_then_closes,
    connect_on_demand,
    idle_connection_is_closed,
    connections_over_the_limit_are_closed,
    large_messages_survive_partial_writes,
    peer_eof_still_gets_answers,
    handler_close_flushes_first,
    oversized_stream_is_rejected,
    many_connections_interleaved,
    shutdown_with_output_in_flight,
);

fn pipelined_and_split(backend: Backend, listen: SocketAddr) {
    let (engine, rx) = start(config(backend, vec![ListenAddr::tcp(listen)]));
    let server = tcp_addr(&engine, listen.is_ipv6());
    let mut c = FramedReader::new(tcp_client(server));

    // Two messages in one write.
    let (a, b) = (sip("first"), sip("second"));
    c.write(&[a.clone(), b.clone()].concat());
    assert_eq!(c.message(), a);
    assert_eq!(c.message(), b);

    // One message split across writes, the split inside the header section and the body.
    let m = sip("split-message");
    for part in [&m[..7], &m[7..40], &m[40..m.len() - 3], &m[m.len() - 3..]] {
        c.write(part);
        c.stream.flush().expect("flush");
        std::thread::sleep(Duration::from_millis(2));
    }
    assert_eq!(c.message(), m);

    let peer = wait_for(&rx, |e| match e {
        Event::Msg { peer, .. } => Some(peer),
        _ => None,
    });
    assert_eq!(peer.transport, Transport::Tcp);
    assert_eq!(peer.remote, c.stream.local_addr().expect("addr"));
    assert_eq!(peer.local, server);
    assert!(peer.conn.is_some());
    let s = &engine.stats()[0];
    assert_eq!((s.tcp_accepted, s.tcp_rx_messages, s.tcp_open), (1, 3, 1));
    engine.shutdown();
}

fn tcp_v4_pipelined_and_split(backend: Backend) {
    pipelined_and_split(backend, v4());
}

fn tcp_v6_pipelined_and_split(backend: Backend) {
    pipelined_and_split(backend, v6());
}

fn crlf_ping_gets_pong(backend: Backend) {
    let (engine, _rx) = start(config(backend, vec![ListenAddr::tcp(v4())]));
    let mut c = FramedReader::new(tcp_client(tcp_addr(&engine, false)));
    c.write(b"\r\n\r\n");
    assert!(matches!(c.next(), Read1::Pong));
    // A ping split inside its last CRLF is still one ping (the framer waits for the "\n"), and
    // messages go on afterwards. (Split at "\r\n" | "\r\n" it would be two pongs by RFC 5626.)
    c.write(b"\r\n\r");
    c.stream.flush().expect("flush");
    std::thread::sleep(Duration::from_millis(2));
    c.write(b"\n");
    assert!(matches!(c.next(), Read1::Pong));
    let m = sip("after-ping");
    c.write(&m);
    assert_eq!(c.message(), m);
    engine.shutdown();
}

fn stream_error_answers_then_closes(backend: Backend) {
    let (engine, rx) = start(config(backend, vec![ListenAddr::tcp(v4())]));
    let mut c = FramedReader::new(tcp_client(tcp_addr(&engine, false)));
    c.write(b"OPTIONS sip:a SIP/2.0\r\nVia: SIP/2.0/TCP x\r\n\r\n");
    let answer = c.message();
    assert!(
        answer.starts_with(b"SIP/2.0 400 Missing Content-Length"),
        "{}",
        String::from_utf8_lossy(&answer)
    );
    assert!(
        matches!(c.next(), Read1::Eof),
        "connection must be closed after the answer"
    );
    let (head, err) = wait_for(&rx, |e| match e {
        Event::StreamError { head, err, .. } => Some((head, err)),
        _ => None,
    });
    assert_eq!(err, FrameError::MissingContentLength);
    assert!(head.starts_with(b"OPTIONS sip:a"));
    wait_for(&rx, |e| matches!(e, Event::Closed { .. }).then_some(()));
    let s = &engine.stats()[0];
    assert_eq!((s.tcp_stream_errors, s.tcp_closed, s.tcp_open), (1, 1, 0));
    engine.shutdown();
}

/// A UDP command makes the handler send to a TCP address it has no connection to; the engine
/// connects. The answer on that connection comes back with the new connection's id.
fn connect_on_demand(backend: Backend) {
    let (engine, rx) = start(config(backend, vec![ListenAddr::udp(v4())]));
    let server = udp_addr(&engine, false);
    let listener = TcpListener::bind(v4()).expect("test listener");
    let target = listener.local_addr().expect("addr");
    let c = udp_client(server);
    c.send_to(format!("CONNECT {target}").as_bytes(), server)
        .expect("send");
    let (stream, _) = listener.accept().expect("engine connects");
    stream.set_read_timeout(Some(PATIENCE)).expect("timeout");
    let mut far = FramedReader::new(stream);
    assert_eq!(far.message(), HELLO);

    // A second send reuses the connection instead of opening another.
    c.send_to(format!("CONNECT {target}").as_bytes(), server)
        .expect("send");
    assert_eq!(far.message(), HELLO);
    listener.set_nonblocking(true).expect("nonblocking");
    assert!(listener.accept().is_err(), "no second connection");

    let m = sip("reply-on-connection");
    far.write(&m);
    assert_eq!(far.message(), m, "echo on the same connection");
    let peer = wait_for(&rx, |e| match e {
        Event::Msg { peer, .. } if peer.transport == Transport::Tcp => Some(peer),
        _ => None,
    });
    assert_eq!(peer.remote, target);
    assert_eq!(peer.local, far.stream.peer_addr().expect("addr"));
    assert!(peer.conn.is_some());
    let s = &engine.stats()[0];
    assert_eq!((s.tcp_connected, s.tcp_open), (1, 1));

    // To a port nobody listens on: the connect fails, counted, nothing hangs.
    let dead = TcpListener::bind(v4())
        .expect("bind")
        .local_addr()
        .expect("addr");
    c.send_to(format!("CONNECT {dead}").as_bytes(), server)
        .expect("send");
    wait_for(&rx, |e| {
        matches!(e, Event::Closed { peer, .. } if peer.remote == dead).then_some(())
    });
    assert!(engine.stats()[0].send_errors >= 1);
    engine.shutdown();
}

fn idle_connection_is_closed(backend: Backend) {
    let mut cfg = config(backend, vec![ListenAddr::tcp(v4())]);
    cfg.tcp_idle_timeout = Duration::from_millis(50);
    let (engine, rx) = start(cfg);
    let mut c = FramedReader::new(tcp_client(tcp_addr(&engine, false)));
    let m = sip("before-idle");
    c.write(&m);
    assert_eq!(c.message(), m);
    assert!(matches!(c.next(), Read1::Eof));
    wait_for(&rx, |e| matches!(e, Event::Closed { .. }).then_some(()));
    assert_eq!(engine.stats()[0].tcp_idle_closed, 1);
    engine.shutdown();
}

fn connections_over_the_limit_are_closed(backend: Backend) {
    let mut cfg = config(backend, vec![ListenAddr::tcp(v4())]);
    cfg.tcp_max_connections = 2;
    let (engine, _rx) = start(cfg);
    let server = tcp_addr(&engine, false);
    let mut kept: Vec<FramedReader> = (0..2)
        .map(|_| FramedReader::new(tcp_client(server)))
        .collect();
    for (i, c) in kept.iter_mut().enumerate() {
        let m = sip(&format!("kept{i}"));
        c.write(&m);
        assert_eq!(c.message(), m);
    }
    let mut extra = FramedReader::new(tcp_client(server));
    assert!(
        matches!(extra.next(), Read1::Eof | Read1::Reset),
        "third connection must be closed"
    );
    assert_eq!(engine.stats()[0].tcp_rejected, 1);
    // Closing one makes room again.
    drop(kept.pop());
    let mut retry = 0;
    loop {
        let mut c = FramedReader::new(tcp_client(server));
        let m = sip("room-again");
        let _ = c.stream.write_all(&m);
        match c.next() {
            Read1::Msg(got) => {
                assert_eq!(got, m);
                break;
            }
            // The close may not have been processed yet when we connected.
            _ if retry < 100 => {
                retry += 1;
                std::thread::sleep(Duration::from_millis(5));
            }
            _ => panic!("no room after closing a connection"),
        }
    }
    engine.shutdown();
}

/// 40 messages of 60 KB written while the client does not read: the engine's writes hit a full
/// socket buffer and must continue where they stopped.
fn large_messages_survive_partial_writes(backend: Backend) {
    let (engine, _rx) = start(config(backend, vec![ListenAddr::tcp(v4())]));
    let c = tcp_client(tcp_addr(&engine, false));
    let body = "b".repeat(60_000);
    let msgs: Vec<Vec<u8>> = (0..40)
        .map(|i| {
            format!(
                "MESSAGE sip:{i}@x SIP/2.0\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            )
            .into_bytes()
        })
        .collect();
    let mut writer = c.try_clone().expect("clone");
    let all = msgs.concat();
    let w = std::thread::spawn(move || writer.write_all(&all).is_ok());
    std::thread::sleep(Duration::from_millis(20));
    let mut r = FramedReader::new(c);
    for m in &msgs {
        assert!(r.message() == *m, "echo differs");
    }
    assert!(w.join().expect("writer"));
    assert_eq!(engine.stats()[0].send_errors, 0);
    engine.shutdown();
}

/// A client that half-closes after its request still gets the answer, then the close.
fn peer_eof_still_gets_answers(backend: Backend) {
    let (engine, rx) = start(config(backend, vec![ListenAddr::tcp(v4())]));
    let mut c = FramedReader::new(tcp_client(tcp_addr(&engine, false)));
    let m = sip("then-eof");
    c.write(&m);
    c.stream
        .shutdown(std::net::Shutdown::Write)
        .expect("half close");
    assert_eq!(c.message(), m);
    assert!(matches!(c.next(), Read1::Eof));
    wait_for(&rx, |e| matches!(e, Event::Closed { .. }).then_some(()));
    assert_eq!(engine.stats()[0].tcp_open, 0);
    engine.shutdown();
}

fn handler_close_flushes_first(backend: Backend) {
    let (engine, _rx) = start(config(backend, vec![ListenAddr::tcp(v4())]));
    let mut c = FramedReader::new(tcp_client(tcp_addr(&engine, false)));
    let m = sip("before-close");
    c.write(
        &[
            m.clone(),
            b"CLOSE sip:x SIP/2.0\r\nContent-Length: 0\r\n\r\n".to_vec(),
        ]
        .concat(),
    );
    assert_eq!(c.message(), m);
    assert_eq!(c.message(), CLOSING);
    assert!(matches!(c.next(), Read1::Eof));
    engine.shutdown();
}

/// 70 KB without the end of a header section can never be a message: 513, then close.
fn oversized_stream_is_rejected(backend: Backend) {
    let (engine, rx) = start(config(backend, vec![ListenAddr::tcp(v4())]));
    let mut c = FramedReader::new(tcp_client(tcp_addr(&engine, false)));
    let junk = vec![b'a'; 70_000];
    let _ = c.stream.write_all(&junk);
    let answer = c.message();
    assert!(
        answer.starts_with(b"SIP/2.0 513"),
        "{}",
        String::from_utf8_lossy(&answer)
    );
    let err = wait_for(&rx, |e| match e {
        Event::StreamError { err, .. } => Some(err),
        _ => None,
    });
    assert_eq!(err, FrameError::TooLarge);
    assert!(matches!(c.next(), Read1::Eof | Read1::Reset));
    engine.shutdown();
}

/// 32 clients on 2 workers, each pipelining 20 requests: every answer on its own connection,
/// in order.
fn many_connections_interleaved(backend: Backend) {
    let mut cfg = config(backend, vec![ListenAddr::tcp(v4())]);
    cfg.workers = 2;
    let (engine, _rx) = start(cfg);
    let server = tcp_addr(&engine, false);
    let clients: Vec<_> = (0..32)
        .map(|k| {
            std::thread::spawn(move || {
                let mut c = FramedReader::new(tcp_client(server));
                let msgs: Vec<Vec<u8>> = (0..20).map(|i| sip(&format!("c{k}m{i}"))).collect();
                c.write(&msgs.concat());
                msgs.iter().all(|m| c.message() == *m)
            })
        })
        .collect();
    for t in clients {
        assert!(
            t.join().expect("client thread"),
            "answers out of order or wrong"
        );
    }
    let total: u64 = engine.stats().iter().map(|s| s.tcp_rx_messages).sum();
    assert_eq!(total, 32 * 20);
    engine.shutdown();
}

/// Shutdown while sends are blocked on a client that does not read: the workers must cancel
/// them and return.
fn shutdown_with_output_in_flight(backend: Backend) {
    let (engine, _rx) = start(config(backend, vec![ListenAddr::tcp(v4())]));
    let c = tcp_client(tcp_addr(&engine, false));
    let body = "b".repeat(60_000);
    let m = format!(
        "MESSAGE sip:x SIP/2.0\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let mut w = c.try_clone().expect("clone");
    let writer = std::thread::spawn(move || {
        for _ in 0..60 {
            if w.write_all(m.as_bytes()).is_err() {
                break;
            }
        }
    });
    // Wait until the engine has answered (and so has output queued), without reading it.
    let deadline = std::time::Instant::now() + PATIENCE;
    while engine.stats()[0].tcp_tx_bytes == 0 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(2));
    }
    engine.shutdown();
    let _ = c.shutdown(std::net::Shutdown::Both);
    let _ = writer.join();
}
