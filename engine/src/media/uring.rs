//! The io_uring media worker: a multishot recvmsg per port into the worker's provided-buffer
//! ring, the handler called on the buffer in place, forwards sent with sendmsg from that same
//! buffer, which returns to the ring when the send completes (ownership: see `media/mod.rs`).
//!
//! One turn: reap every completion, run timers, arm receives that ended, publish recycled
//! buffers, then one `io_uring_enter` submits everything queued during the turn and waits.

use std::io;
use std::mem::ManuallyDrop;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use io_uring::{cqueue, opcode, squeue, types, IoUring};
use socket2::{SockAddr, Socket};

use super::config::MEDIA_BUFFER_SIZE;
use super::ports::{self, PortOp, Sock, SockTable, Token};
use super::stats::MediaCounters;
use super::worker::MediaCore;
use super::MediaHandler;
use crate::sockaddr;
use crate::uring::bufring::BufRing;

const BGID: u16 = 0;
/// How long shutdown waits for cancelled operations to complete before leaking their memory.
const DRAIN_LIMIT: Duration = Duration::from_secs(2);
/// Completions reaped per turn are bounded by the CQ ring (8192 for the rings `build_ring`
/// makes); the vector is that big from the start so reaping never allocates.
const CQE_BATCH: usize = 8192;

/// The kernel-visible state of a send from buffer `bid` (slot `bid`): a buffer is in at most
/// one send, so one slot per buffer never collides.
struct SendSlot {
    hdr: libc::msghdr,
    iov: libc::iovec,
    addr: SockAddr,
    /// The socket sent on (slot, generation): it stays open until this send completes.
    sock: (u32, u16),
    busy: bool,
}

/// Memory the kernel reads or writes while operations are in flight; freed only when none is.
struct KernelMem {
    bufs: BufRing,
    /// Template for every multishot recvmsg (source address room, no control data).
    recv_hdr: Box<libc::msghdr>,
    /// Target of the mailbox eventfd read.
    wake_buf: Box<u64>,
    sends: Box<[SendSlot]>,
}

pub(crate) struct UringMediaWorker<H> {
    ring: ManuallyDrop<IoUring>,
    kmem: ManuallyDrop<KernelMem>,
    core: MediaCore<H>,
    socks: SockTable,
    /// Sockets whose multishot receive must be (re-)armed.
    to_arm: Vec<(u32, u16)>,
    wake_armed: bool,
    /// Operations submitted whose terminal completion has not been reaped yet.
    inflight: usize,
    /// Buffers out in sends (not in the ring).
    held: usize,
    stopping: bool,
    cqes: Vec<cqueue::Entry>,
}

impl<H: MediaHandler> UringMediaWorker<H> {
    pub(crate) fn new(
        core: MediaCore<H>,
        control: Option<Socket>,
        recv_buffers: u16,
    ) -> io::Result<Self> {
        let ring = crate::uring::build_ring()?;
        // SAFETY: all-zero is a valid msghdr; only the name length is set.
        let mut recv_hdr: Box<libc::msghdr> = Box::new(unsafe { std::mem::zeroed() });
        recv_hdr.msg_namelen = sockaddr::NAME_LEN as u32;
        let nowhere = SockAddr::from(SocketAddr::from(([0, 0, 0, 0], 0)));
        let sends = (0..recv_buffers)
            .map(|_| SendSlot {
                // SAFETY: msghdr and iovec are C structs for which all-zero is valid.
                hdr: unsafe { std::mem::zeroed() },
                // SAFETY: as above.
                iov: unsafe { std::mem::zeroed() },
                addr: nowhere.clone(),
                sock: (0, 0),
                busy: false,
            })
            .collect();
        let kmem = KernelMem {
            bufs: BufRing::new(recv_buffers, MEDIA_BUFFER_SIZE, BGID)?,
            recv_hdr,
            wake_buf: Box::new(0),
            sends,
        };
        let mut w = UringMediaWorker {
            ring: ManuallyDrop::new(ring),
            kmem: ManuallyDrop::new(kmem),
            core,
            socks: SockTable::new(),
            to_arm: Vec::new(),
            wake_armed: false,
            inflight: 0,
            held: 0,
            stopping: false,
            cqes: Vec::with_capacity(CQE_BATCH),
        };
        // SAFETY: the buffer ring lives in `kmem`, which `Drop` frees only after the ring is
        // closed and no operation is in flight (else it is leaked).
        unsafe { w.kmem.bufs.register(&w.ring.submitter())? };
        if let Some(c) = control {
            let local = c.local_addr()?.as_socket();
            let (port, v6) = local.map_or((0, false), |a| (a.port(), a.is_ipv6()));
            let id = w.socks.insert(Sock::new(c, port, v6, true));
            w.to_arm.push(id);
        }
        w.arm_all();
        w.ring.submit()?;
        Ok(w)
    }

    pub(crate) fn run(mut self) {
        loop {
            let now = Instant::now();
            MediaCounters::add(&self.core.stats.loop_turns, 1);
            self.reap(now);
            if self.core.mail.stop_requested() {
                break;
            }
            self.core.run_timers(now);
            self.apply_ports();
            self.send_extras();
            self.arm_all();
            self.kmem.bufs.publish();
            let wait = self.core.wait_time(now);
            if let Err(e) = self.enter(wait) {
                eprintln!(
                    "mgw-engine: media worker {}: io_uring_enter: {e}",
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
    /// queued: the caller still owns whatever the SQE points to.
    fn push(&mut self, sqe: &squeue::Entry) -> bool {
        for _ in 0..2 {
            // SAFETY: SQEs are built only from memory in `kmem` (buffer ring, recv template,
            // wake buffer, send slots of buffers we hold) or from nothing; `kmem` outlives every
            // operation, and a send slot is reused only after its send's completion.
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

    fn arm_all(&mut self) {
        if !self.wake_armed && !self.stopping {
            let buf: *mut u64 = &mut *self.kmem.wake_buf;
            let sqe = opcode::Read::new(types::Fd(self.core.mail.eventfd()), buf.cast(), 8)
                .build()
                .user_data(Token::Wake.encode());
            self.wake_armed = self.push(&sqe);
        }
        // With every buffer out in sends a receive would end at once with ENOBUFS: wait for a
        // send to complete.
        if self.to_arm.is_empty() || self.held >= usize::from(self.kmem.bufs.entries()) {
            return;
        }
        let mut list = std::mem::take(&mut self.to_arm);
        list.retain(|&(slot, gen)| !self.arm_recv(slot, gen));
        self.to_arm = list;
    }

    /// `false` if the receive should be tried again next turn.
    fn arm_recv(&mut self, slot: u32, gen: u16) -> bool {
        if self.stopping {
            return true;
        }
        let fd = match self.socks.get(slot, gen) {
            Some(s) if !s.armed && !s.closing => s.socket.as_raw_fd(),
            _ => return true,
        };
        let hdr: *const libc::msghdr = &*self.kmem.recv_hdr;
        let sqe = opcode::RecvMsgMulti::new(types::Fd(fd), hdr, BGID)
            .build()
            .user_data(Token::Recv(slot, gen).encode());
        if !self.push(&sqe) {
            return false;
        }
        if let Some(s) = self.socks.get(slot, gen) {
            s.armed = true;
            s.ops += 1;
        }
        true
    }

    fn reap(&mut self, now: Instant) {
        let mut cqes = std::mem::take(&mut self.cqes);
        cqes.extend(self.ring.completion());
        for cqe in cqes.drain(..) {
            if !cqueue::more(cqe.flags()) {
                self.inflight = self.inflight.saturating_sub(1);
            }
            match Token::decode(cqe.user_data()) {
                Some(Token::Recv(slot, gen)) => self.on_recv(slot, gen, &cqe, now),
                Some(Token::Send(bid)) => self.on_sent(bid, cqe.result()),
                Some(Token::Wake) => self.on_wake(cqe.result(), now),
                Some(Token::Cancel(slot, gen)) => self.on_cancelled(slot, gen, cqe.result()),
                Some(Token::CancelAll) | None => {}
            }
        }
        self.cqes = cqes;
        self.kmem.bufs.publish();
    }

    fn on_recv(&mut self, slot: u32, gen: u16, cqe: &cqueue::Entry, now: Instant) {
        let more = cqueue::more(cqe.flags());
        let bid = cqueue::buffer_select(cqe.flags());
        let res = cqe.result();
        let mut in_send = false;
        let sock = self.socks.get(slot, gen).map(|s| {
            if !more {
                s.armed = false;
                s.ops = s.ops.saturating_sub(1);
            }
            (s.closing, s.control, s.port)
        });
        if let Some((closing, control, port)) = sock {
            let live = !closing && !self.stopping;
            if !more && live {
                // Ended by the kernel (no buffer, error): armed again this turn.
                self.to_arm.push((slot, gen));
            }
            if res < 0 {
                let stats = &self.core.stats;
                if res == -libc::ENOBUFS {
                    MediaCounters::add(&stats.drops_no_buffer, 1);
                } else if res != -libc::ECANCELED {
                    MediaCounters::add(&stats.recv_errors, 1);
                }
            } else if let (Some(bid), true) = (bid, live) {
                in_send = self.on_datagram(slot, gen, bid, res as usize, control, port, now);
            }
            if closing && more {
                // Still receiving although closed (a cancel that missed): cancel again.
                self.cancel_recv(slot, gen);
            }
            if !more {
                self.release_if_done(slot, gen);
            }
        }
        if let (Some(bid), false) = (bid, in_send) {
            self.kmem.bufs.recycle(bid);
        }
    }

    /// Handles one received datagram in buffer `bid`; `true` if the buffer went into a send
    /// (it comes back when the send completes), else the caller recycles it.
    #[allow(clippy::too_many_arguments)]
    fn on_datagram(
        &mut self,
        slot: u32,
        gen: u16,
        bid: u16,
        len: usize,
        control: bool,
        port: u16,
        now: Instant,
    ) -> bool {
        let stats = &self.core.stats;
        let (from, off, plen) = {
            // SAFETY: this completion handed us `bid` and `len` is its result; the buffer is
            // neither recycled nor in a send while this borrow lives.
            let data = unsafe { self.kmem.bufs.data(bid, len) };
            let Ok(msg) = types::RecvMsgOut::parse(data, &self.kmem.recv_hdr) else {
                MediaCounters::add(&stats.recv_errors, 1);
                return false;
            };
            if msg.is_payload_truncated() {
                MediaCounters::add(&stats.drops_truncated, 1);
                return false;
            }
            let Some(from) = sockaddr::from_raw(msg.name_data()) else {
                MediaCounters::add(&stats.recv_errors, 1);
                return false;
            };
            let payload = msg.payload_data();
            let off = payload.as_ptr() as usize - data.as_ptr() as usize;
            (ports::canonical(from), off, payload.len())
        };
        if control {
            // SAFETY: as above.
            let data = unsafe { self.kmem.bufs.data(bid, len) };
            let Some(datagram) = data.get(off..off + plen) else {
                return false;
            };
            let reply = self.core.control(datagram, from, now);
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
            return false;
        }
        MediaCounters::add(&stats.rx_packets, 1);
        MediaCounters::add(&stats.rx_bytes, plen as u64);
        // SAFETY: as above; besides, no send from `bid` is in flight (it would be in one only
        // after this function returns true), so the kernel does not read it either. The whole
        // buffer is ours, not only the received bytes: a transcoded reply may be longer.
        let buf = unsafe { self.kmem.bufs.data_mut(bid, MEDIA_BUFFER_SIZE) };
        let Some(room) = buf.get_mut(off..) else {
            return false;
        };
        let cap = room.len();
        let fwd = self.core.packet(port, from, room, plen, now);
        self.send_extras();
        let Some(fwd) = fwd else {
            return false;
        };
        let Some((oslot, ogen, out)) = self.socks.by_port(fwd.from_port) else {
            MediaCounters::add(&self.core.stats.drops_no_port, 1);
            return false;
        };
        let (fd, v6) = (out.socket.as_raw_fd(), out.v6);
        let start = self.kmem.bufs.addr(bid).wrapping_add(off);
        let Some(ss) = self.kmem.sends.get_mut(usize::from(bid)) else {
            return false;
        };
        debug_assert!(!ss.busy, "buffer {bid} is in two sends");
        ss.addr = ports::target(v6, fwd.to);
        ss.iov.iov_base = start.cast();
        ss.iov.iov_len = fwd.len.min(cap);
        ss.hdr.msg_name = ss.addr.as_ptr().cast_mut().cast();
        ss.hdr.msg_namelen = ss.addr.len();
        ss.hdr.msg_iov = &mut ss.iov;
        ss.hdr.msg_iovlen = 1;
        ss.sock = (oslot, ogen);
        let hdr: *const libc::msghdr = &ss.hdr;
        let sqe = opcode::SendMsg::new(types::Fd(fd), hdr)
            .flags(libc::MSG_NOSIGNAL as u32)
            .build()
            .user_data(Token::Send(bid).encode());
        if !self.push(&sqe) {
            MediaCounters::add(&self.core.stats.send_errors, 1);
            return false;
        }
        if let Some(ss) = self.kmem.sends.get_mut(usize::from(bid)) {
            ss.busy = true;
        }
        if let Some(out) = self.socks.get(oslot, ogen) {
            out.ops += 1;
        }
        self.held += 1;
        true
    }

    fn on_sent(&mut self, bid: u16, res: i32) {
        let Some(ss) = self.kmem.sends.get_mut(usize::from(bid)) else {
            return;
        };
        if !ss.busy {
            return;
        }
        ss.busy = false;
        let (slot, gen) = ss.sock;
        let stats = &self.core.stats;
        if res < 0 {
            MediaCounters::add(&stats.send_errors, 1);
        } else {
            MediaCounters::add(&stats.tx_packets, 1);
            MediaCounters::add(&stats.tx_bytes, res as u64);
        }
        self.held = self.held.saturating_sub(1);
        self.kmem.bufs.recycle(bid);
        if let Some(s) = self.socks.get(slot, gen) {
            s.ops = s.ops.saturating_sub(1);
        }
        self.release_if_done(slot, gen);
    }

    fn on_wake(&mut self, res: i32, now: Instant) {
        self.wake_armed = false;
        if res < 0 && res != -libc::ECANCELED {
            MediaCounters::add(&self.core.stats.recv_errors, 1);
        }
        if !self.stopping {
            self.core.deliver_mail(now);
            self.apply_ports();
            self.send_extras();
        }
    }

    /// Sends what the handler queued beyond its in-place replies, at once: a handler puts the
    /// earlier packets of a burst there and the last in place, so they leave in order.
    fn send_extras(&mut self) {
        self.core.send_extras(&mut self.socks);
    }

    fn on_cancelled(&mut self, slot: u32, gen: u16, res: i32) {
        let again = match self.socks.get(slot, gen) {
            Some(s) => {
                s.cancelling = false;
                // Not found although still armed: the receive had not been issued yet.
                res == -libc::ENOENT && s.armed && s.closing
            }
            None => false,
        };
        if again {
            self.cancel_recv(slot, gen);
        }
    }

    fn cancel_recv(&mut self, slot: u32, gen: u16) {
        match self.socks.get(slot, gen) {
            Some(s) if s.armed && !s.cancelling => {}
            _ => return,
        }
        let sqe = opcode::AsyncCancel::new(Token::Recv(slot, gen).encode())
            .build()
            .user_data(Token::Cancel(slot, gen).encode());
        if self.push(&sqe) {
            if let Some(s) = self.socks.get(slot, gen) {
                s.cancelling = true;
            }
        }
    }

    /// Closes a closed port's socket once no operation on it is in flight.
    fn release_if_done(&mut self, slot: u32, gen: u16) {
        if self
            .socks
            .get(slot, gen)
            .is_some_and(|s| s.closing && s.ops == 0)
        {
            self.socks.remove(slot);
        }
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
                    let id = self.socks.insert(Sock::new(socket, port, v6, false));
                    self.to_arm.push(id);
                    MediaCounters::add(&self.core.stats.ports_open, 1);
                }
                PortOp::Close(port) => {
                    let Some((slot, gen, s)) = self.socks.by_port(port) else {
                        continue;
                    };
                    s.closing = true;
                    self.socks.unmap(port);
                    MediaCounters::sub(&self.core.stats.ports_open, 1);
                    self.cancel_recv(slot, gen);
                    self.release_if_done(slot, gen);
                }
            }
        }
        self.core.ports.ops = ops;
    }

    /// Cancels everything and reaps until no operation is in flight, so `Drop` may free the
    /// memory the kernel used.
    fn teardown(&mut self) {
        self.stopping = true;
        let sqe = opcode::AsyncCancel2::new(types::CancelBuilder::any())
            .build()
            .user_data(Token::CancelAll.encode());
        self.push(&sqe);
        let deadline = Instant::now() + DRAIN_LIMIT;
        while self.inflight > 0 && Instant::now() < deadline {
            let _ = self.enter(Some(Duration::from_millis(50)));
            self.reap(Instant::now());
        }
        if self.inflight > 0 {
            eprintln!(
                "mgw-engine: media worker {}: {} io_uring operations ({} sends) still in flight at shutdown; their memory is leaked, not freed",
                self.core.index, self.inflight, self.held
            );
        } else {
            let _ = self.ring.submitter().unregister_buf_ring(BGID);
        }
    }
}

impl<H> Drop for UringMediaWorker<H> {
    fn drop(&mut self) {
        // SAFETY: each ManuallyDrop is dropped exactly once, here. The ring goes first; the
        // memory it may have used is freed only if nothing is in flight (after `teardown`, or
        // when `new` failed after submitting only what `inflight` counts). Otherwise it is
        // leaked: a late kernel write must not hit reused memory.
        unsafe {
            ManuallyDrop::drop(&mut self.ring);
            if self.inflight == 0 {
                ManuallyDrop::drop(&mut self.kmem);
            }
        }
    }
}
