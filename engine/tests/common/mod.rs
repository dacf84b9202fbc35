//! Shared pieces of the integration tests: a scriptable handler, engine start-up, and clients
//! that read framed SIP messages.
#![allow(dead_code)]

use std::any::Any;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant};

use mgw_core::sip::framing::{frame, Frame, FrameError};
use mgw_engine::{
    Backend, ConnId, Engine, EngineConfig, EngineHandle, Handler, ListenAddr, Outbox, Peer,
};

/// Generous: only reached when something is broken (then the test fails instead of hanging).
pub const PATIENCE: Duration = Duration::from_secs(10);

#[derive(Debug)]
pub enum Event {
    Msg {
        bytes: Vec<u8>,
        peer: Peer,
        worker: usize,
    },
    StreamError {
        head: Vec<u8>,
        err: FrameError,
        peer: Peer,
    },
    Mail {
        text: String,
        worker: usize,
    },
    Timer {
        worker: usize,
    },
    Closed {
        conn: ConnId,
        peer: Peer,
    },
}

/// Echoes messages, except for a few commands at the start of a message:
/// `PANIC` panics, `TIMER` answers "TIMER-FIRED" from `on_timer` ~20 ms later,
/// `CONNECT <addr>` sends a SIP message over TCP to <addr> (connect on demand),
/// `CLOSE` answers then closes the connection, `QUIET` is not answered.
pub struct TestHandler {
    worker: usize,
    events: Sender<Event>,
    timer: Option<(Instant, Peer)>,
}

pub const HELLO: &[u8] = b"HELLO sip:x SIP/2.0\r\nContent-Length: 0\r\n\r\n";
pub const CLOSING: &[u8] = b"SIP/2.0 200 Closing\r\nContent-Length: 0\r\n\r\n";

impl TestHandler {
    /// A handler whose events nobody reads.
    pub fn detached(worker: usize) -> TestHandler {
        TestHandler {
            worker,
            events: channel().0,
            timer: None,
        }
    }
}

impl Handler for TestHandler {
    fn on_message(&mut self, msg: &[u8], peer: Peer, now: Instant, out: &mut Outbox) {
        let _ = self.events.send(Event::Msg {
            bytes: msg.to_vec(),
            peer,
            worker: self.worker,
        });
        if msg.starts_with(b"PANIC") {
            out.send(peer, b"half an answer");
            panic!("test handler asked to panic");
        } else if msg.starts_with(b"TIMER") {
            self.timer = Some((now + Duration::from_millis(20), peer));
        } else if let Some(rest) = msg.strip_prefix(b"CONNECT ") {
            let addr = std::str::from_utf8(rest)
                .ok()
                .and_then(|s| s.trim().parse::<SocketAddr>().ok());
            if let Some(addr) = addr {
                out.send(Peer::tcp(addr), HELLO);
            }
        } else if msg.starts_with(b"CLOSE") {
            out.send(peer, CLOSING);
            if let Some(c) = peer.conn {
                out.close(c);
            }
        } else if !msg.starts_with(b"QUIET") {
            out.send(peer, msg);
        }
    }

    fn on_stream_error(
        &mut self,
        head: &[u8],
        err: FrameError,
        peer: Peer,
        _: Instant,
        out: &mut Outbox,
    ) {
        let _ = self.events.send(Event::StreamError {
            head: head.to_vec(),
            err,
            peer,
        });
        out.send_with(peer, |b| {
            b.extend_from_slice(
                format!(
                    "SIP/2.0 {} {}\r\nContent-Length: 0\r\n\r\n",
                    err.status(),
                    err.reason()
                )
                .as_bytes(),
            )
        });
    }

    fn next_deadline(&self) -> Option<Instant> {
        self.timer.map(|(d, _)| d)
    }

    fn on_timer(&mut self, now: Instant, out: &mut Outbox) {
        if let Some((d, peer)) = self.timer {
            if d <= now {
                self.timer = None;
                out.send(peer, b"TIMER-FIRED");
                let _ = self.events.send(Event::Timer {
                    worker: self.worker,
                });
            }
        }
    }

    fn on_mail(&mut self, mail: Box<dyn Any + Send>, _: Instant, out: &mut Outbox) {
        if let Ok(m) = mail.downcast::<(Peer, String)>() {
            out.send(m.0, m.1.as_bytes());
            let _ = self.events.send(Event::Mail {
                text: m.1,
                worker: self.worker,
            });
        }
    }

    fn on_connection_closed(&mut self, conn: ConnId, peer: Peer, _: Instant, _: &mut Outbox) {
        let _ = self.events.send(Event::Closed { conn, peer });
    }
}

pub fn config(backend: Backend, listen: Vec<ListenAddr>) -> EngineConfig {
    EngineConfig {
        workers: 1,
        backend,
        listen,
        recv_buffers: 64,
        ..EngineConfig::default()
    }
}

/// Starts an engine with [`TestHandler`]s; the receiver sees what the handlers saw.
pub fn start(cfg: EngineConfig) -> (EngineHandle, Receiver<Event>) {
    let backend = cfg.backend;
    let (tx, rx) = channel();
    let engine = Engine::start(cfg, move |worker| TestHandler {
        worker,
        events: tx.clone(),
        timer: None,
    })
    .unwrap_or_else(|e| panic!("engine with {backend:?} did not start: {e}"));
    if backend != Backend::Auto {
        assert_eq!(engine.backend(), backend);
    }
    (engine, rx)
}

pub fn v4() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

pub fn v6() -> SocketAddr {
    "[::1]:0".parse().expect("v6 loopback")
}

pub fn udp_addr(engine: &EngineHandle, v6: bool) -> SocketAddr {
    engine
        .local_addrs()
        .into_iter()
        .find(|l| l.transport == mgw_engine::Transport::Udp && l.addr.is_ipv6() == v6)
        .expect("udp listen address")
        .addr
}

pub fn tcp_addr(engine: &EngineHandle, v6: bool) -> SocketAddr {
    engine
        .local_addrs()
        .into_iter()
        .find(|l| l.transport == mgw_engine::Transport::Tcp && l.addr.is_ipv6() == v6)
        .expect("tcp listen address")
        .addr
}

pub fn udp_client(near: SocketAddr) -> UdpSocket {
    let bind = if near.is_ipv6() { v6() } else { v4() };
    let s = UdpSocket::bind(bind).expect("client socket");
    s.set_read_timeout(Some(PATIENCE)).expect("timeout");
    s
}

pub fn udp_recv(s: &UdpSocket) -> Vec<u8> {
    let mut buf = vec![0; 70_000];
    loop {
        match s.recv_from(&mut buf) {
            Ok((n, _)) => {
                buf.truncate(n);
                return buf;
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => panic!("no answer within the patience limit: {e}"),
        }
    }
}

pub fn tcp_client(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(PATIENCE)).expect("timeout");
    s.set_nodelay(true).expect("nodelay");
    s
}

/// Reads framed messages from a stream, keeping what follows for the next call.
pub struct FramedReader {
    pub stream: TcpStream,
    buf: Vec<u8>,
}

pub enum Read1 {
    Msg(Vec<u8>),
    Pong,
    Eof,
    /// The engine closed with unread data (e.g. a rejected connection).
    Reset,
}

impl FramedReader {
    pub fn new(stream: TcpStream) -> Self {
        FramedReader {
            stream,
            buf: Vec::new(),
        }
    }

    pub fn next(&mut self) -> Read1 {
        loop {
            match frame(&self.buf) {
                Ok(Frame::Message { len }) => {
                    let m = self.buf[..len].to_vec();
                    self.buf.drain(..len);
                    return Read1::Msg(m);
                }
                Ok(Frame::KeepAlive { len, .. }) => {
                    self.buf.drain(..len);
                    return Read1::Pong;
                }
                Ok(Frame::Incomplete) => {}
                Err(e) => panic!("engine sent an unframable stream: {e:?}"),
            }
            let mut chunk = [0u8; 16 * 1024];
            let n = match self.stream.read(&mut chunk) {
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return Read1::Reset,
                Err(e) => panic!("no data within the patience limit: {e}"),
            };
            if n == 0 {
                return Read1::Eof;
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    pub fn message(&mut self) -> Vec<u8> {
        match self.next() {
            Read1::Msg(m) => m,
            Read1::Pong => panic!("expected a message, got a pong"),
            Read1::Eof | Read1::Reset => panic!("expected a message, got EOF"),
        }
    }

    pub fn write(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("write");
    }
}

/// A SIP request whose body makes it `tag`-identifiable.
pub fn sip(tag: &str) -> Vec<u8> {
    format!("OPTIONS sip:{tag}@example.com SIP/2.0\r\nCall-ID: {tag}\r\nContent-Length: {}\r\n\r\n{tag}", tag.len()).into_bytes()
}

/// Waits for the first event matching `pred`, skipping others.
pub fn wait_for<T>(rx: &Receiver<Event>, mut pred: impl FnMut(Event) -> Option<T>) -> T {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(e) => {
                if let Some(t) = pred(e) {
                    return t;
                }
            }
            Err(RecvTimeoutError::Timeout) => panic!("expected handler event did not come"),
            Err(RecvTimeoutError::Disconnected) => panic!("all handlers gone"),
        }
    }
}

/// Generates `io_uring::name` and `epoll::name` tests calling `name(Backend)`.
#[macro_export]
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
