//! The epoll backend: the portable fallback where io_uring is unavailable (old kernels,
//! container seccomp profiles). Non-blocking sockets, level-triggered readiness, recvmmsg and
//! sendmmsg batches; the TCP behaviour is the same as io_uring's (shared in `tcp`).

pub(crate) mod batch;

use std::io::{self, IoSlice, Read};
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use socket2::{SockAddr, Socket};

use crate::config::RECV_BUFFER_SIZE;
use crate::handler::Handler;
use crate::peer::{ConnId, Peer};
use crate::sockets::{self, WorkerSockets};
use crate::stats::Counters;
use crate::tcp::State;
use crate::token::Token;
use crate::worker::{Core, Route};

use batch::{OutDatagram, RecvBatch};

/// Datagrams per recvmmsg call (bounded by the configured buffer count).
const RECV_BATCH: usize = 32;
/// recvmmsg calls per socket and turn: a flood on one socket must not starve the others.
const RECV_ROUNDS: usize = 8;
/// Reads per connection and turn, for the same reason.
const READ_ROUNDS: usize = 4;
const ACCEPTS_PER_TURN: usize = 64;
const ACCEPT_RETRY: Duration = Duration::from_millis(100);
const EVENTS: usize = 256;
const IOV_MAX: usize = 64;

const IN: u32 = (libc::EPOLLIN | libc::EPOLLRDHUP) as u32;
const OUT: u32 = libc::EPOLLOUT as u32;

struct UdpSock {
    socket: Socket,
    local: SocketAddr,
    out: Vec<OutDatagram>,
}

struct Listener {
    socket: Socket,
    retry_at: Option<Instant>,
}

pub(crate) struct EpollWorker<H: Handler> {
    ep: OwnedFd,
    core: Core<H>,
    udp: Vec<UdpSock>,
    listeners: Vec<Listener>,
    rx: RecvBatch,
    /// Landing area for TCP reads; the framer copies only incomplete tails out of it.
    scratch: Vec<u8>,
    events: Vec<libc::epoll_event>,
    dirty: Vec<ConnId>,
}

fn ctl(ep: RawFd, op: i32, fd: RawFd, events: u32, token: Token) -> io::Result<()> {
    let mut ev = libc::epoll_event {
        events,
        u64: token.encode(),
    };
    // SAFETY: `ev` is a live local the kernel copies from; epoll_ctl keeps no pointer to it.
    if unsafe { libc::epoll_ctl(ep, op, fd, &mut ev) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn timeout_ms(wait: Option<Duration>) -> i32 {
    match wait {
        None => -1,
        // Rounded up: waking before the deadline would only cost an extra turn.
        Some(d) => i32::try_from(d.as_nanos().div_ceil(1_000_000)).unwrap_or(i32::MAX),
    }
}

impl<H: Handler> EpollWorker<H> {
    pub(crate) fn new(
        core: Core<H>,
        sockets: WorkerSockets,
        recv_buffers: u16,
    ) -> io::Result<Self> {
        // SAFETY: no pointer arguments; the result is checked.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: a fresh descriptor owned by nobody else.
        let ep = unsafe { OwnedFd::from_raw_fd(fd) };
        let mut udp = Vec::new();
        for (i, b) in sockets.udp.into_iter().enumerate() {
            b.socket.set_nonblocking(true)?;
            ctl(
                ep.as_raw_fd(),
                libc::EPOLL_CTL_ADD,
                b.socket.as_raw_fd(),
                IN,
                Token::Udp(i as u32),
            )?;
            udp.push(UdpSock {
                socket: b.socket,
                local: b.local,
                out: Vec::new(),
            });
        }
        let mut listeners = Vec::new();
        for (i, b) in sockets.tcp.into_iter().enumerate() {
            b.socket.set_nonblocking(true)?;
            ctl(
                ep.as_raw_fd(),
                libc::EPOLL_CTL_ADD,
                b.socket.as_raw_fd(),
                IN,
                Token::Listener(i as u32),
            )?;
            listeners.push(Listener {
                socket: b.socket,
                retry_at: None,
            });
        }
        ctl(
            ep.as_raw_fd(),
            libc::EPOLL_CTL_ADD,
            core.mail.eventfd(),
            IN,
            Token::Wake,
        )?;
        Ok(EpollWorker {
            ep,
            core,
            udp,
            listeners,
            rx: RecvBatch::new(
                RECV_BATCH.min(usize::from(recv_buffers)).max(1),
                RECV_BUFFER_SIZE,
            ),
            scratch: vec![0; RECV_BUFFER_SIZE],
            events: vec![libc::epoll_event { events: 0, u64: 0 }; EVENTS],
            dirty: Vec::new(),
        })
    }

    pub(crate) fn run(mut self) {
        let mut ready = 0;
        loop {
            let now = Instant::now();
            Counters::add(&self.core.stats().loop_turns, 1);
            for i in 0..ready {
                let ev = self.events[i];
                if let Some(t) = Token::decode(ev.u64) {
                    self.dispatch(t, ev.events, now);
                }
            }
            if self.core.mail.stop_requested() {
                break;
            }
            self.core.run_timers(now);
            self.close_idle(now);
            self.retry_listeners(now);
            self.flush(now);
            let wait = self.core.wait_time(now);
            let retry = self
                .listeners
                .iter()
                .filter_map(|l| l.retry_at)
                .min()
                .map(|t| t.saturating_duration_since(now));
            let wait = retry.map_or(wait, |r| Some(wait.map_or(r, |w| w.min(r))));
            // SAFETY: `events` is a live buffer of EVENTS entries the kernel fills.
            let n = unsafe {
                libc::epoll_wait(
                    self.ep.as_raw_fd(),
                    self.events.as_mut_ptr(),
                    EVENTS as i32,
                    timeout_ms(wait),
                )
            };
            ready = if n < 0 {
                let e = io::Error::last_os_error();
                if e.kind() != io::ErrorKind::Interrupted {
                    eprintln!("mgw-engine: worker {}: epoll_wait: {e}", self.core.index);
                    std::thread::sleep(Duration::from_millis(10));
                }
                0
            } else {
                n as usize
            };
        }
        // Sockets close when dropped; nothing is in flight with epoll.
    }

    fn dispatch(&mut self, t: Token, events: u32, now: Instant) {
        match t {
            Token::Udp(i) => self.on_udp(i as usize, now),
            Token::Listener(i) => self.on_accept(i as usize, now),
            Token::Wake => {
                self.core.mail.reset_eventfd();
                self.core.deliver_mail(now);
            }
            Token::Conn(bits) => {
                let id = self.core.conns.id_from_local_bits(bits);
                self.on_conn(id, events, now);
            }
            Token::Op(_) | Token::Cancel => {}
        }
    }

    fn on_udp(&mut self, i: usize, now: Instant) {
        let Some(u) = self.udp.get(i) else {
            return;
        };
        let fd = u.socket.as_raw_fd();
        let local = u.local;
        for _ in 0..RECV_ROUNDS {
            let n = match self.rx.recv(fd) {
                Ok(n) => n,
                Err(_) => {
                    Counters::add(&self.core.stats().recv_errors, 1);
                    return;
                }
            };
            for k in 0..n {
                let d = self.rx.get(k);
                let stats = &self.core.app.stats;
                if d.truncated {
                    Counters::add(&stats.drops_truncated, 1);
                    continue;
                }
                let Some(from) = d.from else {
                    continue;
                };
                Counters::add(&stats.udp_rx_datagrams, 1);
                Counters::add(&stats.udp_rx_bytes, d.data.len() as u64);
                self.core.app.message(d.data, Peer::udp(from, local), now);
            }
            if n < RECV_BATCH {
                return;
            }
        }
    }

    fn on_accept(&mut self, i: usize, now: Instant) {
        for _ in 0..ACCEPTS_PER_TURN {
            let Some(l) = self.listeners.get(i) else {
                return;
            };
            let socket = match l.socket.accept() {
                Ok((s, _)) => s,
                Err(e) => match e.raw_os_error() {
                    Some(libc::EAGAIN | libc::EINTR | libc::ECONNABORTED) => return,
                    _ => {
                        // Out of descriptors or memory: stop polling the listener for a while
                        // instead of spinning on an error that stays until something closes.
                        Counters::add(&self.core.stats().recv_errors, 1);
                        let fd = l.socket.as_raw_fd();
                        let _ = ctl(
                            self.ep.as_raw_fd(),
                            libc::EPOLL_CTL_MOD,
                            fd,
                            0,
                            Token::Listener(i as u32),
                        );
                        if let Some(l) = self.listeners.get_mut(i) {
                            l.retry_at = Some(now + ACCEPT_RETRY);
                        }
                        return;
                    }
                },
            };
            if self.core.conns.is_full() {
                Counters::add(&self.core.stats().tcp_rejected, 1);
                continue;
            }
            let _ = socket.set_tcp_nodelay(true);
            let Some((local, remote)) = sockets::conn_addrs(&socket) else {
                continue;
            };
            if socket.set_nonblocking(true).is_err() {
                continue;
            }
            let fd = socket.as_raw_fd();
            if let Some(id) = self
                .core
                .conns
                .insert(socket, remote, local, State::Open, now)
            {
                if ctl(
                    self.ep.as_raw_fd(),
                    libc::EPOLL_CTL_ADD,
                    fd,
                    IN,
                    Token::Conn(id.local_bits()),
                )
                .is_err()
                {
                    self.core.conns.begin_close(id);
                    self.core.conns.release(id);
                    continue;
                }
                if let Some(c) = self.core.conns.get_mut(id) {
                    c.interest = IN;
                }
                Counters::add(&self.core.stats().tcp_accepted, 1);
                Counters::add(&self.core.stats().tcp_open, 1);
            }
        }
    }

    fn retry_listeners(&mut self, now: Instant) {
        for (i, l) in self.listeners.iter_mut().enumerate() {
            if l.retry_at.is_some_and(|t| t <= now) {
                l.retry_at = None;
                let _ = ctl(
                    self.ep.as_raw_fd(),
                    libc::EPOLL_CTL_MOD,
                    l.socket.as_raw_fd(),
                    IN,
                    Token::Listener(i as u32),
                );
            }
        }
    }

    fn on_conn(&mut self, id: ConnId, events: u32, now: Instant) {
        let Some(c) = self.core.conns.get_mut(id) else {
            return;
        };
        if c.state == State::Connecting {
            if events & (OUT | libc::EPOLLERR as u32 | libc::EPOLLHUP as u32) != 0 {
                self.on_connected(id, now);
            }
            return;
        }
        if events & OUT != 0 {
            self.write(id, now);
        }
        if events & (IN | libc::EPOLLERR as u32 | libc::EPOLLHUP as u32) != 0 {
            self.read(id, now);
        }
    }

    fn read(&mut self, id: ConnId, now: Instant) {
        for _ in 0..READ_ROUNDS {
            let Some(c) = self.core.conns.get_mut(id) else {
                return;
            };
            if c.state != State::Open || c.read_closed {
                return;
            }
            match (&c.socket).read(&mut self.scratch) {
                Ok(0) => {
                    // Peer closed its side: answer what is queued, then close.
                    c.read_closed = true;
                    c.close_when_flushed = true;
                    self.core.conns.mark_dirty(id);
                    return;
                }
                Ok(n) => {
                    c.receive(&self.scratch[..n], &mut self.core.app, now);
                    if c.has_output() || c.close_when_flushed {
                        self.core.conns.mark_dirty(id);
                    }
                    if n < self.scratch.len() {
                        return;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => {
                    self.close_conn(id, now);
                    return;
                }
            }
        }
    }

    fn on_connected(&mut self, id: ConnId, now: Instant) {
        let Some(c) = self.core.conns.get_mut(id) else {
            return;
        };
        match c.socket.take_error() {
            Ok(None) => {
                c.state = State::Open;
                c.last_active = now;
                if let Some((local, _)) = sockets::conn_addrs(&c.socket) {
                    c.peer.local = local;
                }
                Counters::add(&self.core.stats().tcp_connected, 1);
                self.core.conns.mark_dirty(id);
                self.update_interest(id);
            }
            _ => {
                let lost = c.wq.len() as u64;
                Counters::add(&self.core.stats().send_errors, lost.max(1));
                self.close_conn(id, now);
            }
        }
    }

    /// Writes as much of the queue as the socket takes, with one sendmsg per batch of buffers.
    fn write(&mut self, id: ConnId, now: Instant) {
        loop {
            let Some(c) = self.core.conns.get_mut(id) else {
                return;
            };
            if c.state != State::Open {
                return;
            }
            if !c.has_output() {
                if c.close_when_flushed {
                    self.close_conn(id, now);
                } else {
                    self.update_interest(id);
                }
                return;
            }
            let mut iov: [IoSlice<'_>; IOV_MAX] = [IoSlice::new(&[]); IOV_MAX];
            let mut n = 0;
            for (k, b) in c.wq.iter().take(IOV_MAX).enumerate() {
                iov[k] = IoSlice::new(if k == 0 { &b[c.wq_off..] } else { b });
                n = k + 1;
            }
            match c
                .socket
                .send_vectored_with_flags(&iov[..n], libc::MSG_NOSIGNAL)
            {
                // Nothing taken although bytes were offered: treat as a full buffer rather
                // than loop.
                Ok(0) => {
                    self.update_interest(id);
                    return;
                }
                Ok(written) => {
                    c.last_active = now;
                    let out = &mut self.core.app.out;
                    c.written(written, |b| out.recycle(b));
                    Counters::add(&self.core.app.stats.tcp_tx_bytes, written as u64);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.update_interest(id);
                    return;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => {
                    Counters::add(&self.core.stats().send_errors, 1);
                    self.close_conn(id, now);
                    return;
                }
            }
        }
    }

    /// Keeps the epoll interest in line with the connection: read while the peer may send,
    /// write while output waits (or the connect is pending).
    fn update_interest(&mut self, id: ConnId) {
        let Some(c) = self.core.conns.get_mut(id) else {
            return;
        };
        let mut want = 0;
        if !c.read_closed {
            want |= IN;
        }
        if c.state == State::Connecting || c.has_output() {
            want |= OUT;
        }
        if want != c.interest {
            let fd = c.socket.as_raw_fd();
            if ctl(
                self.ep.as_raw_fd(),
                libc::EPOLL_CTL_MOD,
                fd,
                want,
                Token::Conn(id.local_bits()),
            )
            .is_ok()
            {
                c.interest = want;
            }
        }
    }

    fn close_conn(&mut self, id: ConnId, now: Instant) {
        let Some(peer) = self.core.conns.begin_close(id) else {
            return;
        };
        Counters::sub(&self.core.stats().tcp_open, 1);
        Counters::add(&self.core.stats().tcp_closed, 1);
        if let Some(c) = self.core.conns.release(id) {
            let _ = ctl(
                self.ep.as_raw_fd(),
                libc::EPOLL_CTL_DEL,
                c.socket.as_raw_fd(),
                0,
                Token::Cancel,
            );
            for b in c.wq {
                self.core.app.out.recycle(b);
            }
        }
        self.core.app.connection_closed(id, peer, now);
    }

    fn close_idle(&mut self, now: Instant) {
        self.core.collect_idle(now);
        let idle = std::mem::take(&mut self.core.ids);
        for &id in &idle {
            Counters::add(&self.core.stats().tcp_idle_closed, 1);
            self.close_conn(id, now);
        }
        self.core.ids = idle;
    }

    fn flush(&mut self, now: Instant) {
        let mut msgs = std::mem::take(&mut self.core.msgs);
        self.core.app.out.take_msgs(&mut msgs);
        for m in msgs.drain(..) {
            match self.core.route(&m.to) {
                Route::Udp(i) => self.udp[i].out.push(OutDatagram {
                    to: SockAddr::from(m.to.remote),
                    buf: m.buf,
                }),
                Route::Conn(id) => self.core.queue_tcp(id, m.buf),
                Route::Connect => match self.connect(m.to.remote, now) {
                    Some(id) => self.core.queue_tcp(id, m.buf),
                    None => self.core.drop_unsendable(m.buf),
                },
                Route::Unroutable => self.core.drop_unsendable(m.buf),
            }
        }
        self.core.msgs = msgs;

        self.core.apply_closes();

        let mut dirty = std::mem::take(&mut self.dirty);
        self.core.conns.take_dirty(&mut dirty);
        for id in dirty.drain(..) {
            if self
                .core
                .conns
                .get_mut(id)
                .is_some_and(|c| c.state == State::Open)
            {
                self.write(id, now);
            }
        }
        self.dirty = dirty;

        for u in &mut self.udp {
            if u.out.is_empty() {
                continue;
            }
            let mut bytes = 0;
            let (sent, failed) = batch::send_all(u.socket.as_raw_fd(), &u.out, &mut bytes);
            let stats = &self.core.app.stats;
            Counters::add(&stats.udp_tx_datagrams, sent);
            Counters::add(&stats.udp_tx_bytes, bytes);
            Counters::add(&stats.send_errors, failed);
            for d in u.out.drain(..) {
                self.core.app.out.recycle(d.buf);
            }
        }
    }

    /// Opens a connection for a send without one (RFC 3261 18.2.2 / 18.1.1).
    fn connect(&mut self, remote: SocketAddr, now: Instant) -> Option<ConnId> {
        if self.core.conns.is_full() {
            return None;
        }
        let socket = sockets::connect_socket(&remote).ok()?;
        socket.set_nonblocking(true).ok()?;
        match socket.connect(&SockAddr::from(remote)) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
            Err(_) => return None,
        }
        let fd = socket.as_raw_fd();
        let unspecified = Peer::tcp(remote).local;
        let id = self
            .core
            .conns
            .insert(socket, remote, unspecified, State::Connecting, now)?;
        if ctl(
            self.ep.as_raw_fd(),
            libc::EPOLL_CTL_ADD,
            fd,
            IN | OUT,
            Token::Conn(id.local_bits()),
        )
        .is_err()
        {
            self.core.conns.begin_close(id);
            self.core.conns.release(id);
            return None;
        }
        if let Some(c) = self.core.conns.get_mut(id) {
            c.interest = IN | OUT;
        }
        Counters::add(&self.core.stats().tcp_open, 1);
        Some(id)
    }
}
