//! The running gateway over real sockets: every RFC 4475/5118 torture message gets its verdict's
//! handling, and OPTIONS is answered on UDP and TCP, IPv4 and IPv6, on both I/O backends.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use mgw_core::sip::{HeaderName, Message};

const MGW: &str = env!("CARGO_BIN_EXE_mgw");

struct Server {
    child: Child,
    port: u16,
    dir: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A port free for UDP and TCP on both loopback addresses (checked, then released).
fn free_port() -> u16 {
    loop {
        let probe = UdpSocket::bind("127.0.0.1:0").expect("bind probe");
        let port = probe.local_addr().expect("addr").port();
        let ok = TcpListener::bind(("127.0.0.1", port)).is_ok()
            && UdpSocket::bind(("::1", port)).is_ok()
            && TcpListener::bind(("::1", port)).is_ok();
        if ok {
            return port;
        }
    }
}

fn start(backend: &str) -> Server {
    let port = free_port();
    let admin = free_port();
    let dir = std::env::temp_dir().join(format!("mgw-sip-{backend}-{}-{port}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let cfg = dir.join("mgw.toml");
    std::fs::write(
        &cfg,
        format!(
            "[engine]\nbackend = \"{backend}\"\nworkers = 2\n\
             [sip]\nlisten = [\"udp:127.0.0.1:{port}\", \"tcp:127.0.0.1:{port}\", \"udp:[::1]:{port}\", \"tcp:[::1]:{port}\"]\n\
             domain = \"mgw.test\"\n[admin]\nlisten = \"127.0.0.1:{admin}\"\ntoken = \"t\"\n[store]\ndir = \"{}\"\n",
            dir.join("store").display()
        ),
    )
    .expect("config");
    let child = Command::new(MGW)
        .args(["serve", "--config"])
        .arg(&cfg)
        // The config names the backend; the environment override must not mask it here.
        .env_remove("MGW_IO_BACKEND")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn mgw");
    let server = Server { child, port, dir };
    // Ready when OPTIONS is answered.
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if udp_exchange(
            &options(1),
            SocketAddr::from(([127, 0, 0, 1], port)),
            Duration::from_millis(200),
        )
        .is_some()
        {
            return server;
        }
    }
    panic!("mgw ({backend}) did not answer OPTIONS within 20 s");
}

fn options(n: u32) -> Vec<u8> {
    format!(
        "OPTIONS sip:mgw.test SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.9:9;branch=z9hG4bK-opt{n}-{};rport\r\n\
         Max-Forwards: 70\r\nFrom: <sip:probe@mgw.test>;tag=p{n}\r\nTo: <sip:mgw.test>\r\n\
         Call-ID: opt{n}-{}\r\nCSeq: {n} OPTIONS\r\nContent-Length: 0\r\n\r\n",
        std::process::id(),
        std::process::id()
    )
    .into_bytes()
}

fn udp_exchange(msg: &[u8], to: SocketAddr, wait: Duration) -> Option<Vec<u8>> {
    let bind = if to.is_ipv6() {
        "[::1]:0"
    } else {
        "127.0.0.1:0"
    };
    let s = UdpSocket::bind(bind).ok()?;
    s.set_read_timeout(Some(wait)).ok()?;
    s.send_to(msg, to).ok()?;
    let mut buf = vec![0u8; 65536];
    let n = s.recv(&mut buf).ok()?;
    Some(buf[..n].to_vec())
}

fn status(bytes: &[u8]) -> u16 {
    Message::parse(bytes)
        .ok()
        .and_then(|m| m.status())
        .unwrap_or(0)
}

fn torture(file: &str) -> Vec<u8> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../core/tests/torture");
    std::fs::read(format!("{dir}/rfc4475/{file}"))
        .or_else(|_| std::fs::read(format!("{dir}/rfc5118/{file}")))
        .expect("torture file")
}

fn all_torture_verdicts(backend: &str) {
    let server = start(backend);
    let to = SocketAddr::from(([127, 0, 0, 1], server.port));
    let table = include_str!("../../core/tests/torture/expected.tsv");
    let mut checked = 0;
    for line in table.lines().skip(1) {
        let mut cols = line.split('\t');
        let file = cols.next().unwrap_or_default();
        let expected: Option<u16> = cols.next().and_then(|c| c.parse().ok());
        // Dropped messages are given a moment to prove no answer comes.
        let wait = if expected.is_some() {
            Duration::from_secs(5)
        } else {
            Duration::from_millis(700)
        };
        let answer = udp_exchange(&torture(file), to, wait);
        match (expected, answer) {
            (None, None) => {}
            (None, Some(a)) => panic!(
                "{backend}: {file}: expected no answer, got {}",
                String::from_utf8_lossy(&a)
            ),
            (Some(code), None) => panic!("{backend}: {file}: expected {code}, got no answer"),
            (Some(code), Some(a)) => {
                assert_eq!(
                    status(&a),
                    code,
                    "{backend}: {file}: {}",
                    String::from_utf8_lossy(&a)
                )
            }
        }
        checked += 1;
    }
    assert_eq!(checked, 61);
    // The server is still healthy after all of it.
    let a = udp_exchange(&options(99), to, Duration::from_secs(5)).expect("alive");
    assert_eq!(status(&a), 200);
}

fn options_on_every_transport(backend: &str) {
    let server = start(backend);
    for (k, host) in [(0u32, "127.0.0.1"), (10, "::1")] {
        let ip: std::net::IpAddr = host.parse().expect("ip");
        let to = SocketAddr::new(ip, server.port);
        let a = udp_exchange(&options(k + 2), to, Duration::from_secs(5))
            .unwrap_or_else(|| panic!("{backend}: no UDP answer from {to}"));
        let m = Message::parse(&a).expect("parses");
        assert_eq!(m.status(), Some(200), "udp {host}");
        assert!(m
            .header(HeaderName::Allow)
            .is_some_and(|v| v.contains("INVITE")));
        let via = m.top_via().expect("via");
        assert_eq!(via.received(), Some(host), "received names the real source");
        assert!(
            matches!(via.rport(), Some(Some(p)) if p != 9),
            "rport filled in"
        );

        // Two pipelined requests in one write, then one split across writes.
        let mut tcp = TcpStream::connect(to).expect("tcp connect");
        tcp.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        let (a1, a2) = (options(k + 3), options(k + 4));
        tcp.write_all(&[a1.clone(), a2].concat()).expect("write");
        let (half1, half2) = a1.split_at(40);
        let mut answers = read_responses(&mut tcp, 2);
        // The first request again, split: a retransmission, answered from its transaction.
        tcp.write_all(half1).expect("write");
        std::thread::sleep(Duration::from_millis(50));
        tcp.write_all(half2).expect("write");
        answers.extend(read_responses(&mut tcp, 1));
        assert_eq!(answers.len(), 3, "tcp {host}");
        for a in &answers {
            assert_eq!(status(a), 200, "tcp {host}");
        }
        // RFC 5626 keep-alive: a CRLFCRLF ping gets a CRLF pong.
        tcp.write_all(b"\r\n\r\n").expect("ping");
        let mut pong = [0u8; 2];
        tcp.read_exact(&mut pong).expect("pong");
        assert_eq!(&pong, b"\r\n");
    }
}

/// Reads `n` Content-Length-framed responses from a stream.
fn read_responses(s: &mut TcpStream, n: usize) -> Vec<Vec<u8>> {
    let mut buf = Vec::new();
    let mut out = Vec::new();
    let mut chunk = [0u8; 4096];
    while out.len() < n {
        match mgw_core::sip::framing::frame(&buf) {
            Ok(mgw_core::sip::framing::Frame::Message { len }) => {
                out.push(buf.drain(..len).collect());
                continue;
            }
            Ok(mgw_core::sip::framing::Frame::KeepAlive { len, .. }) => {
                buf.drain(..len);
                continue;
            }
            Ok(mgw_core::sip::framing::Frame::Incomplete) => {}
            Err(e) => panic!("server sent an unframeable stream: {e:?}"),
        }
        let k = s.read(&mut chunk).expect("read");
        assert!(k > 0, "connection closed");
        buf.extend_from_slice(&chunk[..k]);
    }
    out
}

fn oversize_and_garbage_do_not_hurt(backend: &str) {
    let server = start(backend);
    let to = SocketAddr::from(([127, 0, 0, 1], server.port));
    // Over 64 KiB on TCP: 513, then the connection is closed.
    let mut tcp = TcpStream::connect(to).expect("tcp");
    tcp.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let mut big = options(5);
    let pad = format!("X-Pad: {}\r\n", "a".repeat(70_000));
    let at = big.len() - 2;
    big.splice(at..at, pad.bytes());
    let _ = tcp.write_all(&big);
    let mut answer = Vec::new();
    let _ = tcp.read_to_end(&mut answer);
    assert_eq!(
        status(&answer),
        513,
        "{}",
        String::from_utf8_lossy(&answer[..answer.len().min(200)])
    );
    // Random bytes on UDP: no answer, no harm.
    for seed in 0u32..200 {
        let junk: Vec<u8> = (0..(seed * 7 % 900))
            .map(|i| (i.wrapping_mul(2654435761).wrapping_add(seed) >> 13) as u8)
            .collect();
        let s = UdpSocket::bind("127.0.0.1:0").expect("bind");
        let _ = s.send_to(&junk, to);
    }
    let a = udp_exchange(&options(6), to, Duration::from_secs(5)).expect("still answering");
    assert_eq!(status(&a), 200);
}

#[test]
fn torture_verdicts_io_uring() {
    if mgw_engine::io_uring_available().is_err() {
        eprintln!("io_uring unavailable here; the epoll run covers the verdicts");
        return;
    }
    all_torture_verdicts("io_uring");
}

#[test]
fn torture_verdicts_epoll() {
    all_torture_verdicts("epoll");
}

#[test]
fn options_io_uring() {
    if mgw_engine::io_uring_available().is_err() {
        return;
    }
    options_on_every_transport("io_uring");
}

#[test]
fn options_epoll() {
    options_on_every_transport("epoll");
}

#[test]
fn abuse_io_uring() {
    if mgw_engine::io_uring_available().is_err() {
        return;
    }
    oversize_and_garbage_do_not_hurt("io_uring");
}

#[test]
fn abuse_epoll() {
    oversize_and_garbage_do_not_hurt("epoll");
}
