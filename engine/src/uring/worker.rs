//! The io_uring worker loop.
//!
//! One turn: reap every completion (handing messages to the handler straight from the provided
//! buffers, then giving the buffers back), run timers and the idle sweep, turn the outbox into
//! SQEs, re-arm multishot operations the kernel ended, and submit it all with a single
//! `io_uring_enter` that also waits for the next completion or the next deadline.
//!
//! Memory the kernel may touch lives in [`KernelMem`] and is freed only after every operation
//! has completed (see `Drop`); connection sockets stay open until the last operation on them
//! has completed, so a descriptor number is never reused under an operation still in flight.

use std::io;
use std::mem::ManuallyDrop;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, FromRawFd};
use std::time::{Duration, Instant};

use io_uring::{cqueue, opcode, squeue, types, IoUring};
use mgw_core::sip::MAX_MESSAGE_SIZE;
use socket2::{SockAddr, Socket};

use super::bufring::BufRing;
use super::ops::{self, Op, OpSlab};
use crate::handler::Handler;
use crate::peer::{ConnId, Peer};
use crate::sockaddr;
use crate::sockets::{self, WorkerSockets};
use crate::stats::Counters;
use crate::tcp::State;
use crate::token::Token;
use crate::worker::{Core, Route};

const BGID: u16 = 0;
const SQ_ENTRIES: u32 = 1024;
/// Multishot receives can post many completions between two turns; the kernel keeps overflow
/// (IORING_FEAT_NODROP) but a roomy CQ avoids that slow path.
const CQ_ENTRIES: u32 = 8192;
/// Per-buffer room: the largest SIP message plus what multishot recvmsg puts before the
/// payload (io_uring_recvmsg_out and the source address).
const BUF_SIZE: usize = MAX_MESSAGE_SIZE + 64;
/// Largest single TCP send: merges pipelined answers without building huge buffers.
const TCP_SEND_MAX: usize = 64 * 1024;
/// After an accept error (EMFILE, ENFILE, ENOMEM) the listener rests this long instead of
/// spinning on an error that repeats until something is closed.
const ACCEPT_RETRY: Duration = Duration::from_millis(100);
/// How long shutdown waits for cancelled operations to complete before leaking their memory.
const DRAIN_LIMIT: Duration = Duration::from_secs(2);

/// Memory the kernel reads or writes while operations are in flight.
struct KernelMem {
    bufs: BufRing,
    /// Template for every multishot recvmsg (name length, no control data).
    recv_hdr: Box<libc::msghdr>,
    /// Target of the mailbox eventfd read.
    wake_buf: Box<u64>,
    ops: OpSlab,
}

struct UdpSock {
    socket: Socket,
    local: SocketAddr,
    armed: bool,
}

struct Listener {
    socket: Socket,
    armed: bool,
    retry_at: Option<Instant>,
}

pub(crate) struct UringWorker<H: Handler> {
    ring: ManuallyDrop<IoUring>,
    kmem: ManuallyDrop<KernelMem>,
    core: Core<H>,
    udp: Vec<UdpSock>,
    listeners: Vec<Listener>,
    wake_armed: bool,
    /// Operations submitted whose terminal completion has not been reaped yet.
    inflight: usize,
    stopping: bool,
    cqes: Vec<cqueue::Entry>,
    dirty: Vec<ConnId>,
    rearm: Vec<ConnId>,
}

pub(crate) fn build_ring() -> io::Result<IoUring> {
    // Newest flags first: a single-issuer ring that runs completion work only when we enter
    // the kernel fits a thread-per-core loop best; older kernels get the plainer setups.
    let mut b = IoUring::builder();
    b.setup_cqsize(CQ_ENTRIES)
        .setup_single_issuer()
        .setup_defer_taskrun()
        .setup_submit_all();
    b.build(SQ_ENTRIES)
        .or_else(|_| {
            IoUring::builder()
                .setup_cqsize(CQ_ENTRIES)
                .setup_coop_taskrun()
                .build(SQ_ENTRIES)
        })
        .or_else(|_| {
            IoUring::builder()
                .setup_cqsize(CQ_ENTRIES)
                .build(SQ_ENTRIES)
        })
}

impl<H: Handler> UringWorker<H> {
    pub(crate) fn new(
        core: Core<H>,
        sockets: WorkerSockets,
        recv_buffers: u16,
    ) -> io::Result<Self> {
        let ring = build_ring()?;
        // SAFETY: all-zero is a valid msghdr; only the name length is set.
        let mut recv_hdr: Box<libc::msghdr> = Box::new(unsafe { std::mem::zeroed() });
        recv_hdr.msg_namelen = sockaddr::NAME_LEN as u32;
        let kmem = KernelMem {
            bufs: BufRing::new(recv_buffers, BUF_SIZE, BGID)?,
            recv_hdr,
            wake_buf: Box::new(0),
            ops: OpSlab::default(),
        };
        let mut w = UringWorker {
            ring: ManuallyDrop::new(ring),
            kmem: ManuallyDrop::new(kmem),
            core,
            udp: sockets
                .udp
                .into_iter()
                .map(|b| UdpSock {
                    socket: b.socket,
                    local: b.local,
                    armed: false,
                })
                .collect(),
            listeners: sockets
                .tcp
                .into_iter()
                .map(|b| Listener {
                    socket: b.socket,
                    armed: false,
                    retry_at: None,
                })
                .collect(),
            wake_armed: false,
            inflight: 0,
            stopping: false,
            cqes: Vec::with_capacity(CQ_ENTRIES as usize),
            dirty: Vec::new(),
            rearm: Vec::new(),
        };
        // SAFETY: the buffer ring lives in `kmem`, which `Drop` frees only after the ring is
        // closed and no operation is in flight (else it is leaked).
        unsafe { w.kmem.bufs.register(&w.ring.submitter())? };
        w.arm_all(Instant::now());
        w.ring.submit()?;
        Ok(w)
    }

    pub(crate) fn run(mut self) {
        loop {
            let now = Instant::now();
            Counters::add(&self.core.stats().loop_turns, 1);
            self.reap(now);
            if self.core.mail.stop_requested() {
                break;
            }
            self.core.run_timers(now);
            self.close_idle(now);
            self.flush(now);
            self.arm_all(now);
            self.kmem.bufs.publish();
            let wait = self.core.wait_time(now);
            let wait = self
                .listener_retry(now)
                .map_or(wait, |r| Some(wait.map_or(r, |w| w.min(r))));
            if let Err(e) = self.enter(wait) {
                eprintln!(
                    "mgw-engine: worker {}: io_uring_enter: {e}",
                    self.core.index
                );
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        self.teardown();
    }

    fn enter(&mut self, wait: Option<Duration>) -> io::Result<()> {
        crate::uring::enter(&mut self.ring, wait)
    }

    /// Queues one SQE, submitting first if the queue is full. `false` if it could not be
    /// queued: the caller still owns (and must release) whatever the SQE points to.
    fn push(&mut self, sqe: &squeue::Entry) -> bool {
        for _ in 0..2 {
            // SAFETY: callers build SQEs only from memory in `kmem` (buffer ring, recv
            // template, wake buffer, op slab boxes) or from nothing; `kmem` outlives every
            // operation and op boxes stay in the slab until the operation's terminal CQE.
            if unsafe { self.ring.submission().push(sqe) }.is_ok() {
                self.inflight += 1;
                return true;
            }
            if self.ring.submit().is_err() {
                return false;
            }
        }
        false
    }

    fn arm_all(&mut self, now: Instant) {
        if !self.wake_armed {
            let buf: *mut u64 = &mut *self.kmem.wake_buf;
            let sqe = opcode::Read::new(types::Fd(self.core.mail.eventfd()), buf.cast(), 8)
                .build()
                .user_data(Token::Wake.encode());
            self.wake_armed = self.push(&sqe);
        }
        for i in 0..self.udp.len() {
            if !self.udp[i].armed {
                let hdr: *const libc::msghdr = &*self.kmem.recv_hdr;
                let sqe =
                    opcode::RecvMsgMulti::new(types::Fd(self.udp[i].socket.as_raw_fd()), hdr, BGID)
                        .build()
                        .user_data(Token::Udp(i as u32).encode());
                self.udp[i].armed = self.push(&sqe);
            }
        }
        for i in 0..self.listeners.len() {
            let l = &self.listeners[i];
            if !l.armed && l.retry_at.filter(|&t| t > now).is_none() {
                let sqe = opcode::AcceptMulti::new(types::Fd(l.socket.as_raw_fd()))
                    .flags(libc::SOCK_CLOEXEC)
                    .build()
                    .user_data(Token::Listener(i as u32).encode());
                let armed = self.push(&sqe);
                let l = &mut self.listeners[i];
                l.armed = armed;
                l.retry_at = None;
            }
        }
        let mut rearm = std::mem::take(&mut self.rearm);
        for id in rearm.drain(..) {
            self.arm_conn_recv(id);
        }
        self.rearm = rearm;
    }

    fn arm_conn_recv(&mut self, id: ConnId) {
        let Some(c) = self.core.conns.get_mut(id) else {
            return;
        };
        if c.state != State::Open || c.recv_armed || c.read_closed || c.close_when_flushed {
            return;
        }
        let sqe = opcode::RecvMulti::new(types::Fd(c.socket.as_raw_fd()), BGID)
            .build()
            .user_data(Token::Conn(id.local_bits()).encode());
        if self.push(&sqe) {
            if let Some(c) = self.core.conns.get_mut(id) {
                c.recv_armed = true;
                c.ops += 1;
            }
        } else {
            self.rearm.push(id);
        }
    }

    fn listener_retry(&self, now: Instant) -> Option<Duration> {
        self.listeners
            .iter()
            .filter_map(|l| l.retry_at)
            .min()
            .map(|t| t.saturating_duration_since(now))
    }

    fn reap(&mut self, now: Instant) {
        let mut cqes = std::mem::take(&mut self.cqes);
        cqes.extend(self.ring.completion());
        for cqe in cqes.drain(..) {
            if !cqueue::more(cqe.flags()) {
                self.inflight = self.inflight.saturating_sub(1);
            }
            match Token::decode(cqe.user_data()) {
                Some(Token::Udp(i)) => self.on_udp(i as usize, &cqe, now),
                Some(Token::Listener(i)) => self.on_accept(i as usize, &cqe, now),
                Some(Token::Wake) => self.on_wake(&cqe, now),
                Some(Token::Conn(bits)) => self.on_conn_recv(bits, &cqe, now),
                Some(Token::Op(key)) => self.on_op(key, &cqe, now),
                Some(Token::Cancel) | None => {}
            }
        }
        self.cqes = cqes;
        self.kmem.bufs.publish();
    }

    fn on_udp(&mut self, i: usize, cqe: &cqueue::Entry, now: Instant) {
        if !cqueue::more(cqe.flags()) {
            // The kernel ended the multishot (no buffer, error, cancel): re-armed this turn.
            if let Some(u) = self.udp.get_mut(i) {
                u.armed = false;
            }
        }
        let res = cqe.result();
        let bid = cqueue::buffer_select(cqe.flags());
        if res < 0 {
            let c = if -res == libc::ENOBUFS {
                &self.core.stats().drops_no_buffer
            } else {
                &self.core.stats().recv_errors
            };
            if -res != libc::ECANCELED {
                Counters::add(c, 1);
            }
        } else if let (Some(bid), Some(u)) = (bid, self.udp.get(i)) {
            // SAFETY: `bid` was just handed to us by this CQE and is recycled below, after the
            // borrow ends; `res` is the number of bytes the kernel wrote.
            let data = unsafe { self.kmem.bufs.data(bid, res as usize) };
            match io_uring::types::RecvMsgOut::parse(data, &self.kmem.recv_hdr) {
                Ok(msg) if !msg.is_payload_truncated() && !self.stopping => {
                    if let Some(remote) = sockaddr::from_raw(msg.name_data()) {
                        let payload = msg.payload_data();
                        let stats = &self.core.app.stats;
                        Counters::add(&stats.udp_rx_datagrams, 1);
                        Counters::add(&stats.udp_rx_bytes, payload.len() as u64);
                        self.core
                            .app
                            .message(payload, Peer::udp(remote, u.local), now);
                    }
                }
                Ok(msg) if msg.is_payload_truncated() => {
                    Counters::add(&self.core.stats().drops_truncated, 1);
                }
                _ => {}
            }
        }
        if let Some(bid) = bid {
            self.kmem.bufs.recycle(bid);
        }
    }

    fn on_accept(&mut self, i: usize, cqe: &cqueue::Entry, now: Instant) {
        let res = cqe.result();
        if !cqueue::more(cqe.flags()) {
            if let Some(l) = self.listeners.get_mut(i) {
                l.armed = false;
                if res < 0 && res != -libc::ECANCELED {
                    l.retry_at = Some(now + ACCEPT_RETRY);
                }
            }
        }
        if res < 0 {
            if res != -libc::ECANCELED {
                Counters::add(&self.core.stats().recv_errors, 1);
            }
            return;
        }
        // SAFETY: a non-negative accept result is a new descriptor nobody else owns.
        let socket = unsafe { Socket::from_raw_fd(res) };
        let stats = self.core.app.stats.clone();
        if self.stopping || self.core.conns.is_full() {
            Counters::add(&stats.tcp_rejected, 1);
            return;
        }
        let _ = socket.set_tcp_nodelay(true);
        let Some((local, remote)) = sockets::conn_addrs(&socket) else {
            return;
        };
        if let Some(id) = self
            .core
            .conns
            .insert(socket, remote, local, State::Open, now)
        {
            Counters::add(&stats.tcp_accepted, 1);
            Counters::add(&stats.tcp_open, 1);
            self.rearm.push(id);
        }
    }

    fn on_wake(&mut self, cqe: &cqueue::Entry, now: Instant) {
        self.wake_armed = false;
        if cqe.result() < 0 && cqe.result() != -libc::ECANCELED {
            Counters::add(&self.core.stats().recv_errors, 1);
        }
        if !self.stopping {
            self.core.deliver_mail(now);
        }
    }

    fn on_conn_recv(&mut self, bits: u64, cqe: &cqueue::Entry, now: Instant) {
        let id = self.core.conns.id_from_local_bits(bits);
        let res = cqe.result();
        let bid = cqueue::buffer_select(cqe.flags());
        let more = cqueue::more(cqe.flags());
        if let Some(c) = self.core.conns.get_mut(id) {
            if !more {
                c.recv_armed = false;
                c.ops -= 1;
            }
            match (res, bid) {
                (n, Some(bid)) if n > 0 && c.state == State::Open && !self.stopping => {
                    // SAFETY: `bid` comes from this CQE and is recycled below, after the borrow.
                    let data = unsafe { self.kmem.bufs.data(bid, n as usize) };
                    c.receive(data, &mut self.core.app, now);
                    if c.has_output() || c.close_when_flushed {
                        self.core.conns.mark_dirty(id);
                    }
                }
                (0, _) => {
                    // Peer closed its side: answer what is queued, then close.
                    c.read_closed = true;
                    c.close_when_flushed = true;
                    self.core.conns.mark_dirty(id);
                }
                (n, _) if n < 0 && n != -libc::ENOBUFS && n != -libc::ECANCELED => {
                    self.close_conn(id, now);
                }
                _ => {}
            }
            if !more {
                self.rearm.push(id);
                self.release_if_drained(id);
            }
        }
        if let Some(bid) = bid {
            self.kmem.bufs.recycle(bid);
        }
    }

    fn on_op(&mut self, key: u32, cqe: &cqueue::Entry, now: Instant) {
        let Some(mut op) = self.kmem.ops.remove(key) else {
            return;
        };
        let res = cqe.result();
        let stats = self.core.app.stats.clone();
        match std::mem::replace(&mut *op, Op::Idle) {
            Op::UdpSend { buf, .. } => {
                if res < 0 {
                    Counters::add(&stats.send_errors, 1);
                } else {
                    Counters::add(&stats.udp_tx_datagrams, 1);
                    Counters::add(&stats.udp_tx_bytes, res as u64);
                }
                self.core.app.out.recycle(buf);
            }
            Op::TcpSend { conn, buf, off } => {
                self.on_tcp_sent(conn, buf, off, res, op, now);
                return;
            }
            Op::Connect { conn, .. } => self.on_connected(conn, res, now),
            Op::Idle => {}
        }
        self.kmem.ops.recycle(op);
    }

    fn on_tcp_sent(
        &mut self,
        id: ConnId,
        buf: Vec<u8>,
        off: usize,
        res: i32,
        op: Box<Op>,
        now: Instant,
    ) {
        self.kmem.ops.recycle(op);
        let Some(c) = self.core.conns.get_mut(id) else {
            self.core.app.out.recycle(buf);
            return;
        };
        c.ops -= 1;
        c.sending = false;
        if res <= 0 || c.state != State::Open {
            self.core.app.out.recycle(buf);
            if c.state == State::Open {
                Counters::add(&self.core.stats().send_errors, 1);
                self.close_conn(id, now);
            }
            self.release_if_drained(id);
            return;
        }
        c.last_active = now;
        Counters::add(&self.core.stats().tcp_tx_bytes, res as u64);
        let off = off + res as usize;
        if off < buf.len() {
            // Partial write: the rest goes first, before anything queued after it.
            self.submit_tcp_send(id, buf, off);
        } else {
            self.core.app.out.recycle(buf);
            self.core.conns.mark_dirty(id);
        }
    }

    fn on_connected(&mut self, id: ConnId, res: i32, now: Instant) {
        let Some(c) = self.core.conns.get_mut(id) else {
            return;
        };
        c.ops -= 1;
        if c.state != State::Connecting {
            self.release_if_drained(id);
            return;
        }
        if res < 0 {
            let lost = c.wq.len() as u64;
            Counters::add(&self.core.stats().send_errors, lost.max(1));
            self.close_conn(id, now);
            return;
        }
        c.state = State::Open;
        c.last_active = now;
        if let Some((local, _)) = sockets::conn_addrs(&c.socket) {
            c.peer.local = local;
        }
        Counters::add(&self.core.stats().tcp_connected, 1);
        self.rearm.push(id);
        self.core.conns.mark_dirty(id);
    }

    /// Takes a connection out of service. The kernel's operations on it are cancelled (and
    /// the socket shut down, which ends a pending receive at once); the socket is closed when
    /// the last of them has completed.
    fn close_conn(&mut self, id: ConnId, now: Instant) {
        let Some(peer) = self.core.conns.begin_close(id) else {
            return;
        };
        Counters::sub(&self.core.stats().tcp_open, 1);
        Counters::add(&self.core.stats().tcp_closed, 1);
        let Some(c) = self.core.conns.get_mut(id) else {
            return;
        };
        let fd = c.socket.as_raw_fd();
        let pending = c.ops > 0;
        let _ = c.socket.shutdown(std::net::Shutdown::Both);
        let lost: Vec<Vec<u8>> = c.wq.drain(..).collect();
        for b in lost {
            self.core.app.out.recycle(b);
        }
        if pending {
            // The descriptor stays open until the cancel and the cancelled operations complete,
            // so it cannot name another socket by then.
            let sqe = opcode::AsyncCancel2::new(types::CancelBuilder::fd(types::Fd(fd)).all())
                .build()
                .user_data(Token::Cancel.encode());
            self.push(&sqe);
        }
        self.release_if_drained(id);
        if !self.stopping {
            self.core.app.connection_closed(id, peer, now);
        }
    }

    fn release_if_drained(&mut self, id: ConnId) {
        if self
            .core
            .conns
            .get_mut(id)
            .is_some_and(|c| c.state == State::Draining && c.ops == 0)
        {
            self.core.conns.release(id);
        }
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

    /// Turns this turn's outbox into SQEs.
    fn flush(&mut self, now: Instant) {
        let mut msgs = std::mem::take(&mut self.core.msgs);
        self.core.app.out.take_msgs(&mut msgs);
        for m in msgs.drain(..) {
            match self.core.route(&m.to) {
                Route::Udp(i) => self.submit_udp_send(i, m.to.remote, m.buf),
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
            let Some(c) = self.core.conns.get_mut(id) else {
                continue;
            };
            if c.state != State::Open || c.sending {
                continue;
            }
            if let Some(buf) = c.next_write(TCP_SEND_MAX) {
                self.submit_tcp_send(id, buf, 0);
            } else if c.close_when_flushed {
                self.close_conn(id, now);
            }
        }
        self.dirty = dirty;
    }

    fn submit_udp_send(&mut self, i: usize, remote: SocketAddr, buf: Vec<u8>) {
        let fd = self.udp[i].socket.as_raw_fd();
        let (key, op) = self.kmem.ops.insert(ops::udp_send(remote, buf));
        let Some(hdr) = ops::link_udp_send(op) else {
            return;
        };
        let sqe = opcode::SendMsg::new(types::Fd(fd), hdr)
            .flags(libc::MSG_NOSIGNAL as u32)
            .build()
            .user_data(Token::Op(key).encode());
        if !self.push(&sqe) {
            self.drop_unsubmitted(key);
        }
    }

    fn submit_tcp_send(&mut self, id: ConnId, buf: Vec<u8>, off: usize) {
        let Some(c) = self.core.conns.get_mut(id) else {
            self.core.app.out.recycle(buf);
            return;
        };
        let fd = c.socket.as_raw_fd();
        let (key, op) = self.kmem.ops.insert(Op::TcpSend { conn: id, buf, off });
        let Op::TcpSend { buf, off, .. } = op else {
            return;
        };
        let rest = &buf[*off..];
        let sqe = opcode::Send::new(types::Fd(fd), rest.as_ptr(), rest.len() as u32)
            .flags(libc::MSG_NOSIGNAL)
            .build()
            .user_data(Token::Op(key).encode());
        if self.push(&sqe) {
            if let Some(c) = self.core.conns.get_mut(id) {
                c.sending = true;
                c.ops += 1;
            }
        } else {
            self.drop_unsubmitted(key);
            self.close_conn(id, Instant::now());
        }
    }

    /// Opens a connection for a send without one (RFC 3261 18.2.2 / 18.1.1).
    fn connect(&mut self, remote: SocketAddr, now: Instant) -> Option<ConnId> {
        if self.stopping || self.core.conns.is_full() {
            return None;
        }
        let socket = sockets::connect_socket(&remote).ok()?;
        let fd = socket.as_raw_fd();
        let unspecified = Peer::tcp(remote).local;
        let id = self
            .core
            .conns
            .insert(socket, remote, unspecified, State::Connecting, now)?;
        Counters::add(&self.core.stats().tcp_open, 1);
        let (key, op) = self.kmem.ops.insert(Op::Connect {
            conn: id,
            addr: SockAddr::from(remote),
        });
        let Op::Connect { addr, .. } = op else {
            return None;
        };
        let sqe = opcode::Connect::new(types::Fd(fd), addr.as_ptr().cast(), addr.len())
            .build()
            .user_data(Token::Op(key).encode());
        if self.push(&sqe) {
            if let Some(c) = self.core.conns.get_mut(id) {
                c.ops += 1;
            }
            Some(id)
        } else {
            self.drop_unsubmitted(key);
            self.close_conn(id, now);
            None
        }
    }

    /// Releases an op that never reached the kernel.
    fn drop_unsubmitted(&mut self, key: u32) {
        Counters::add(&self.core.stats().send_errors, 1);
        if let Some(mut op) = self.kmem.ops.remove(key) {
            if let Op::UdpSend { buf, .. } | Op::TcpSend { buf, .. } =
                std::mem::replace(&mut *op, Op::Idle)
            {
                self.core.app.out.recycle(buf);
            }
            self.kmem.ops.recycle(op);
        }
    }

    /// Cancels everything and reaps until no operation is in flight, so `Drop` may free the
    /// memory the kernel used.
    fn teardown(&mut self) {
        self.stopping = true;
        let now = Instant::now();
        for id in self.core.conns.all() {
            self.close_conn(id, now);
        }
        let sqe = opcode::AsyncCancel2::new(types::CancelBuilder::any())
            .build()
            .user_data(Token::Cancel.encode());
        self.push(&sqe);
        let deadline = Instant::now() + DRAIN_LIMIT;
        while self.inflight > 0 && Instant::now() < deadline {
            let _ = self.enter(Some(Duration::from_millis(50)));
            self.reap(Instant::now());
        }
        if self.inflight > 0 {
            eprintln!(
                "mgw-engine: worker {}: {} io_uring operations ({} with send buffers) still in flight at shutdown; their memory is leaked, not freed",
                self.core.index,
                self.inflight,
                self.kmem.ops.len()
            );
        } else {
            let _ = self.ring.submitter().unregister_buf_ring(BGID);
        }
    }
}

impl<H: Handler> Drop for UringWorker<H> {
    fn drop(&mut self) {
        // SAFETY: each ManuallyDrop is dropped exactly once, here. The ring goes first; the
        // memory it may have used is freed only if nothing is in flight (after `teardown`, or
        // when `new` failed before submitting anything but the initial arms, which `inflight`
        // counts). Otherwise it is leaked: a late kernel write must not hit reused memory.
        unsafe {
            ManuallyDrop::drop(&mut self.ring);
            if self.inflight == 0 {
                ManuallyDrop::drop(&mut self.kmem);
            }
        }
    }
}
