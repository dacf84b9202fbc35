//! The epoll media worker: level-triggered readiness per port, recvmmsg into a batch of
//! worker-owned buffers, the handler called on each buffer in place, and the forwards sent with
//! one sendmmsg per run of packets leaving by the same socket, from the same buffers, before the
//! next recvmmsg reuses them.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use socket2::{SockAddr, Socket};

use super::config::MEDIA_MAX_PACKET;
use super::ports::{self, PortOp, Sock, SockTable, Token};
use super::stats::MediaCounters;
use super::worker::MediaCore;
use super::MediaHandler;
use crate::epoll::batch::RecvBatch;

/// Datagrams per recvmmsg (and at most per sendmmsg), bounded by the configured buffer count.
const BATCH: usize = 64;
/// recvmmsg calls per socket and turn: a flood on one port must not starve the others.
const RECV_ROUNDS: usize = 8;
const EVENTS: usize = 256;

const IN: u32 = libc::EPOLLIN as u32;

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

/// A forward waiting for the batch's sendmmsg: datagram `idx` of the receive batch.
struct Out {
    idx: usize,
    fd: RawFd,
    len: usize,
}

/// The send side of a batch: headers, iovecs and destinations reused for every call.
struct SendBatch {
    outs: Vec<Out>,
    addrs: Vec<SockAddr>,
    hdrs: Vec<libc::mmsghdr>,
    iovs: Vec<libc::iovec>,
}

impl SendBatch {
    fn new(n: usize) -> SendBatch {
        SendBatch {
            outs: Vec::with_capacity(n),
            addrs: Vec::with_capacity(n),
            // SAFETY: mmsghdr and iovec are C structs for which all-zero is valid.
            hdrs: (0..n).map(|_| unsafe { std::mem::zeroed() }).collect(),
            // SAFETY: as above.
            iovs: (0..n).map(|_| unsafe { std::mem::zeroed() }).collect(),
        }
    }

    fn push(&mut self, idx: usize, fd: RawFd, to: SockAddr, len: usize) {
        self.outs.push(Out { idx, fd, len });
        self.addrs.push(to);
    }

    /// Sends every queued forward from its receive buffer: one sendmmsg per run of forwards
    /// on the same socket (normally the whole batch).
    fn flush(&mut self, rx: &mut RecvBatch, stats: &MediaCounters) {
        let n = self.outs.len().min(self.hdrs.len());
        let mut start = 0;
        while start < n {
            let fd = self.outs[start].fd;
            let mut end = start + 1;
            while end < n && self.outs[end].fd == fd {
                end += 1;
            }
            for i in start..end {
                let o = &self.outs[i];
                let data = rx.buffer_mut(o.idx);
                let len = o.len.min(data.len());
                self.iovs[i].iov_base = data.as_mut_ptr().cast();
                self.iovs[i].iov_len = len;
                let h = &mut self.hdrs[i];
                h.msg_hdr.msg_name = self.addrs[i].as_ptr().cast_mut().cast();
                h.msg_hdr.msg_namelen = self.addrs[i].len();
                h.msg_hdr.msg_iov = &mut self.iovs[i];
                h.msg_hdr.msg_iovlen = 1;
                h.msg_hdr.msg_control = std::ptr::null_mut();
                h.msg_hdr.msg_controllen = 0;
                h.msg_hdr.msg_flags = 0;
                h.msg_len = 0;
            }
            send_run(fd, &mut self.hdrs[start..end], stats);
            start = end;
        }
        self.outs.clear();
        self.addrs.clear();
    }
}

/// sendmmsg until the run is sent; what the socket cannot take now (EAGAIN) is dropped and
/// counted, as UDP may; an unsendable datagram (no route, wrong family) is skipped.
fn send_run(fd: RawFd, hdrs: &mut [libc::mmsghdr], stats: &MediaCounters) {
    let mut off = 0;
    while off < hdrs.len() {
        let rest = &mut hdrs[off..];
        // SAFETY: every header points at an iovec, a destination and a receive buffer owned by
        // the worker, all alive and unmoved during this synchronous call; the kernel only reads
        // them (and writes msg_len).
        let r = unsafe {
            libc::sendmmsg(
                fd,
                rest.as_mut_ptr(),
                rest.len() as u32,
                libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
            )
        };
        if r > 0 {
            let sent = r as usize;
            let bytes: u64 = rest[..sent].iter().map(|h| u64::from(h.msg_len)).sum();
            MediaCounters::add(&stats.tx_packets, sent as u64);
            MediaCounters::add(&stats.tx_bytes, bytes);
            off += sent;
            continue;
        }
        let e = io::Error::last_os_error();
        match e.kind() {
            io::ErrorKind::Interrupted => {}
            io::ErrorKind::WouldBlock => {
                MediaCounters::add(&stats.send_errors, (hdrs.len() - off) as u64);
                return;
            }
            _ => {
                MediaCounters::add(&stats.send_errors, 1);
                off += 1;
            }
        }
    }
}

pub(crate) struct EpollMediaWorker<H> {
    ep: OwnedFd,
    core: MediaCore<H>,
    socks: SockTable,
    batch: usize,
    rx: RecvBatch,
    tx: SendBatch,
    events: Vec<libc::epoll_event>,
}

impl<H: MediaHandler> EpollMediaWorker<H> {
    pub(crate) fn new(
        core: MediaCore<H>,
        control: Option<Socket>,
        recv_buffers: u16,
    ) -> io::Result<Self> {
        // SAFETY: no pointer arguments; the result is checked.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: a fresh descriptor owned by nobody else.
        let ep = unsafe { OwnedFd::from_raw_fd(fd) };
        ctl(
            ep.as_raw_fd(),
            libc::EPOLL_CTL_ADD,
            core.mail.eventfd(),
            IN,
            Token::Wake,
        )?;
        let batch = BATCH.min(usize::from(recv_buffers)).max(1);
        let mut w = EpollMediaWorker {
            ep,
            core,
            socks: SockTable::new(),
            batch,
            rx: RecvBatch::new(batch, MEDIA_MAX_PACKET),
            tx: SendBatch::new(batch),
            events: vec![libc::epoll_event { events: 0, u64: 0 }; EVENTS],
        };
        if let Some(c) = control {
            c.set_nonblocking(true)?;
            let local = c.local_addr()?.as_socket();
            let (port, v6) = local.map_or((0, false), |a| (a.port(), a.is_ipv6()));
            let fd = c.as_raw_fd();
            let (slot, gen) = w.socks.insert(Sock::new(c, port, v6, true));
            ctl(
                w.ep.as_raw_fd(),
                libc::EPOLL_CTL_ADD,
                fd,
                IN,
                Token::Recv(slot, gen),
            )?;
        }
        Ok(w)
    }

    pub(crate) fn run(mut self) {
        let mut ready = 0;
        loop {
            let now = Instant::now();
            MediaCounters::add(&self.core.stats.loop_turns, 1);
            for i in 0..ready {
                let ev = self.events[i];
                match Token::decode(ev.u64) {
                    Some(Token::Recv(slot, gen)) => self.on_readable(slot, gen, now),
                    Some(Token::Wake) => {
                        self.core.mail.reset_eventfd();
                        self.core.deliver_mail(now);
                        self.apply_ports();
                        self.send_extras();
                    }
                    _ => {}
                }
            }
            if self.core.mail.stop_requested() {
                break;
            }
            self.core.run_timers(now);
            self.apply_ports();
            self.send_extras();
            let wait = self.core.wait_time(now);
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
                    eprintln!(
                        "mgw-engine: media worker {}: epoll_wait: {e}",
                        self.core.index
                    );
                    std::thread::sleep(Duration::from_millis(10));
                }
                0
            } else {
                n as usize
            };
        }
        // Sockets close when dropped; nothing is in flight with epoll.
    }

    fn on_readable(&mut self, slot: u32, gen: u16, now: Instant) {
        for _ in 0..RECV_ROUNDS {
            let Some(s) = self.socks.get(slot, gen) else {
                return;
            };
            let (fd, port, control) = (s.socket.as_raw_fd(), s.port, s.control);
            let n = match self.rx.recv(fd) {
                Ok(n) => n,
                Err(_) => {
                    MediaCounters::add(&self.core.stats.recv_errors, 1);
                    return;
                }
            };
            for k in 0..n {
                let d = self.rx.get(k);
                if d.truncated {
                    MediaCounters::add(&self.core.stats.drops_truncated, 1);
                    continue;
                }
                let Some(from) = d.from.map(ports::canonical) else {
                    MediaCounters::add(&self.core.stats.recv_errors, 1);
                    continue;
                };
                if control {
                    let reply = self.core.control(d.data, from, now);
                    if let (Some(r), Some(s)) = (reply, self.socks.get(slot, gen)) {
                        let to = ports::target(s.v6, from);
                        if s.socket
                            .send_to_with_flags(&r, &to, libc::MSG_DONTWAIT)
                            .is_err()
                        {
                            MediaCounters::add(&self.core.stats.send_errors, 1);
                        }
                    }
                    self.apply_ports();
                    continue;
                }
                let stats = &self.core.stats;
                MediaCounters::add(&stats.rx_packets, 1);
                MediaCounters::add(&stats.rx_bytes, d.data.len() as u64);
                let len = d.data.len();
                let buf = self.rx.buffer_mut(k);
                let cap = buf.len();
                let fwd = self.core.packet(port, from, buf, len, now);
                if let Some(fwd) = fwd {
                    match self.socks.by_port(fwd.from_port) {
                        Some((_, _, out)) => {
                            let to = ports::target(out.v6, fwd.to);
                            self.tx
                                .push(k, out.socket.as_raw_fd(), to, fwd.len.min(cap));
                        }
                        None => MediaCounters::add(&self.core.stats.drops_no_port, 1),
                    }
                }
                self.send_extras();
            }
            // Before the next recvmmsg overwrites the buffers.
            self.tx.flush(&mut self.rx, &self.core.stats);
            if n < self.batch {
                return;
            }
        }
    }

    /// Sends what the handler queued beyond its in-place replies.
    fn send_extras(&mut self) {
        self.core.send_extras(&mut self.socks);
    }

    /// Puts the handler's port changes into effect, in the order it made them.
    fn apply_ports(&mut self) {
        if self.core.ports.ops.is_empty() {
            return;
        }
        let mut ops = std::mem::take(&mut self.core.ports.ops);
        for op in ops.drain(..) {
            match op {
                PortOp::Open(port, socket) => {
                    let v6 = self.core.ports.bind_ip().is_ipv6();
                    let fd = socket.as_raw_fd();
                    let (slot, gen) = self.socks.insert(Sock::new(socket, port, v6, false));
                    let ep = self.ep.as_raw_fd();
                    match ctl(ep, libc::EPOLL_CTL_ADD, fd, IN, Token::Recv(slot, gen)) {
                        Ok(()) => MediaCounters::add(&self.core.stats.ports_open, 1),
                        Err(e) => {
                            eprintln!(
                                "mgw-engine: media worker {}: port {port} not served: epoll_ctl: {e}",
                                self.core.index
                            );
                            MediaCounters::add(&self.core.stats.recv_errors, 1);
                            self.socks.remove(slot);
                            self.core.ports.forget(port);
                        }
                    }
                }
                PortOp::Close(port) => {
                    let Some((slot, _, s)) = self.socks.by_port(port) else {
                        continue;
                    };
                    let fd = s.socket.as_raw_fd();
                    let _ = ctl(
                        self.ep.as_raw_fd(),
                        libc::EPOLL_CTL_DEL,
                        fd,
                        0,
                        Token::CancelAll,
                    );
                    // Closed at once: nothing is in flight with epoll.
                    self.socks.remove(slot);
                    MediaCounters::sub(&self.core.stats.ports_open, 1);
                }
            }
        }
        self.core.ports.ops = ops;
    }
}
