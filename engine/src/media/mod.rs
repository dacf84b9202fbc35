//! Zero-copy media (RTP/RTCP) I/O: worker threads that receive datagrams on the UDP ports their
//! [`MediaHandler`] opened, let it rewrite each packet in the receive buffer, and send the very
//! same buffer on. No copy and no allocation per packet, on either backend.
//!
//! Each worker owns its sockets, its io_uring ring (or epoll instance) and its handler; a
//! session lives on the worker whose handler opened its ports ([`PortControl`]), so a packet
//! never crosses threads. Work from other threads (the SIP side's offer/answer/delete) arrives
//! through [`MediaHandle::post`]; worker 0 also serves an optional control socket (rtpengine's
//! ng protocol).
//!
//! # Buffer ownership (io_uring)
//!
//! Packets land in the worker's provided-buffer ring (`uring::bufring`), `recv_buffers` buffers
//! of [`MEDIA_BUFFER_SIZE`] bytes. A buffer is owned by exactly one party at a time:
//!
//! 1. **Kernel, for receiving**: from the moment its ring entry is published until a multishot
//!    recvmsg completion names its buffer id. The kernel may write it; we never touch it.
//! 2. **The worker, during the handler call**: the completion hands the buffer to us and the
//!    kernel forgets it (it is no longer in the ring). [`MediaHandler::on_packet`] gets the
//!    payload as `&mut [u8]`, the only reference, for the duration of the call.
//! 3. **Kernel, for sending** (on [`Forward`]): a sendmsg reads the first `len` payload bytes
//!    straight from the buffer. Its msghdr, iovec and destination address live in a send slot
//!    indexed by the buffer id (one buffer is in at most one send, so slots never collide) and
//!    the completion's user_data carries the buffer id. Until that completion arrives nobody
//!    writes the buffer: it is not in the ring (the kernel cannot receive into it) and no
//!    handler call can see it (each call gets only the buffer its completion named).
//! 4. Back to 1: the buffer is written back into the ring when the send completes, or at once
//!    after the handler call when there is nothing to send (drop, control datagram, error).
//!
//! So the kernel never reads a buffer we write, never writes one we read, and a buffer is never
//! in the ring twice. The ring, the send slots and the receive msghdr are freed only after every
//! operation has completed (shutdown cancels and reaps everything; if that times out the memory
//! is leaked rather than freed under the kernel). A socket is closed only when its receive and
//! every send from it have completed, so a descriptor number is never reused under an operation.
//!
//! While buffers are out in sends the ring has fewer to receive into; when it runs dry the
//! multishot receive ends with ENOBUFS (counted in `drops_no_buffer`; the datagrams wait in the
//! socket queue) and is re-armed on the next loop turn once a buffer is free.
//!
//! # epoll
//!
//! recvmmsg fills a batch of worker-owned buffers from one ready socket; each packet goes to the
//! handler in place, forwards are collected and sent with one sendmmsg per run of packets leaving
//! by the same socket, from the same buffers, before the next recvmmsg reuses them. Everything is
//! synchronous, so ownership is simply the worker's.

mod config;
mod engine;
mod epoll;
mod ports;
mod stats;
mod uring;
mod worker;

use std::any::Any;
use std::net::SocketAddr;
use std::time::Instant;

pub use config::{MediaConfig, MEDIA_BUFFER_SIZE, MEDIA_MAX_PACKET};
pub use engine::{MediaEngine, MediaError, MediaHandle};
pub use ports::PortControl;
pub use stats::MediaStats;

/// Send the first `len` bytes of the packet's own buffer from local UDP port `from_port` (a port
/// open on the same worker) to `to`. `len` is capped at the buffer's size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Forward {
    pub from_port: u16,
    pub to: SocketAddr,
    pub len: usize,
}

/// Per-worker media logic (e.g. the relay of `mgw-media`). Created on its worker thread by the
/// factory given to [`MediaEngine::start`]. A panic in any call is caught, counted
/// (`handler_panics`) and logged; the worker goes on (a packet being handled is dropped).
///
/// `now` is read once per loop turn.
pub trait MediaHandler: 'static {
    /// A datagram on one of this worker's media ports, in the receive buffer itself: the
    /// datagram is `buf[..len]`, and the whole of `buf` (at least [`MEDIA_MAX_PACKET`] bytes)
    /// is writable, so a reply longer than the datagram (a transcoded payload) is built in
    /// place too. Return where to send a prefix of `buf`, or `None` to send nothing.
    fn on_packet(
        &mut self,
        local_port: u16,
        from: SocketAddr,
        buf: &mut [u8],
        len: usize,
        now: Instant,
    ) -> Option<Forward>;

    /// A further datagram to send, beyond the one `on_packet` returned (a transcoder turning
    /// one 30 ms packet into a 20 ms one and a half): written into `buf` (a scratch buffer of
    /// [`MEDIA_MAX_PACKET`] bytes) and sent with a plain `sendto`, a copy the plain relay path
    /// never takes. Called after every `on_packet`, `on_command` and `on_timer` until `None`.
    fn poll_extra(&mut self, buf: &mut [u8]) -> Option<Forward> {
        let _ = buf;
        None
    }

    /// A datagram on the control socket (worker 0 only); the returned reply goes back to `from`.
    fn on_control(
        &mut self,
        datagram: &[u8],
        from: SocketAddr,
        now: Instant,
        ports: &mut PortControl,
    ) -> Option<Vec<u8>> {
        let _ = (datagram, from, now, ports);
        None
    }

    /// Work posted from another thread with [`MediaHandle::post`].
    fn on_command(&mut self, cmd: Box<dyn Any + Send>, now: Instant, ports: &mut PortControl) {
        let _ = (cmd, now, ports);
    }

    /// Earliest instant `on_timer` is needed; the worker sleeps no longer than this.
    fn next_deadline(&self) -> Option<Instant> {
        None
    }

    fn on_timer(&mut self, now: Instant, ports: &mut PortControl) {
        let _ = (now, ports);
    }
}
