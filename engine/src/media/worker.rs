//! What a media worker does regardless of backend: handler calls (guarded against panics),
//! posted commands, timers.

use std::any::Any;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::ports::{self, PortControl, SockTable};
use super::stats::MediaCounters;
use super::{Forward, MediaHandler};
use crate::mailbox::{self, Mail};

pub(crate) struct MediaCore<H> {
    pub index: usize,
    handler: H,
    pub ports: PortControl,
    pub stats: Arc<MediaCounters>,
    pub mail: Arc<mailbox::Shared>,
    mailq: VecDeque<Mail>,
    /// Where [`MediaHandler::poll_extra`] writes a further datagram before it is sent.
    scratch: Box<[u8]>,
}

fn panic_message(p: &(dyn Any + Send)) -> &str {
    if let Some(s) = p.downcast_ref::<&str>() {
        s
    } else if let Some(s) = p.downcast_ref::<String>() {
        s
    } else {
        "(non-string panic payload)"
    }
}

impl<H: MediaHandler> MediaCore<H> {
    pub(crate) fn new(
        index: usize,
        handler: H,
        ports: PortControl,
        stats: Arc<MediaCounters>,
        mail: Arc<mailbox::Shared>,
    ) -> Self {
        MediaCore {
            index,
            handler,
            ports,
            stats,
            mail,
            mailq: VecDeque::new(),
            scratch: vec![0; super::MEDIA_MAX_PACKET].into_boxed_slice(),
        }
    }

    fn panicked(&self, what: &str, p: &(dyn Any + Send)) {
        MediaCounters::add(&self.stats.handler_panics, 1);
        eprintln!(
            "mgw-engine: media worker {}: handler panicked in {what}: {}; input dropped, worker continues",
            self.index,
            panic_message(p)
        );
    }

    /// `on_packet`; a panic drops the packet.
    #[inline]
    pub(crate) fn packet(
        &mut self,
        port: u16,
        from: SocketAddr,
        buf: &mut [u8],
        len: usize,
        now: Instant,
    ) -> Option<Forward> {
        let h = &mut self.handler;
        let cap = buf.len();
        match catch_unwind(AssertUnwindSafe(|| h.on_packet(port, from, buf, len, now))) {
            Ok(f) => f.map(|f| Forward {
                len: f.len.min(cap),
                ..f
            }),
            Err(p) => {
                self.panicked("on_packet", p.as_ref());
                None
            }
        }
    }

    /// Sends the further datagrams the handler queued (`poll_extra`) with a plain `sendto`
    /// from the worker's scratch buffer; `socks` finds the socket of a local port.
    pub(crate) fn send_extras(&mut self, socks: &mut SockTable) {
        loop {
            let (h, scratch) = (&mut self.handler, &mut self.scratch);
            let fwd = match catch_unwind(AssertUnwindSafe(|| h.poll_extra(scratch))) {
                Ok(Some(f)) => f,
                Ok(None) => return,
                Err(p) => {
                    self.panicked("poll_extra", p.as_ref());
                    return;
                }
            };
            let data = &self.scratch[..fwd.len.min(self.scratch.len())];
            MediaCounters::add(&self.stats.extra_packets, 1);
            let Some((_, _, out)) = socks.by_port(fwd.from_port) else {
                MediaCounters::add(&self.stats.drops_no_port, 1);
                continue;
            };
            let to = ports::target(out.v6, fwd.to);
            match out.socket.send_to_with_flags(data, &to, libc::MSG_DONTWAIT) {
                Ok(_) => {
                    MediaCounters::add(&self.stats.tx_packets, 1);
                    MediaCounters::add(&self.stats.tx_bytes, data.len() as u64);
                }
                Err(_) => MediaCounters::add(&self.stats.send_errors, 1),
            }
        }
    }

    /// `on_control`; the backend applies `ports.ops` afterwards.
    pub(crate) fn control(
        &mut self,
        datagram: &[u8],
        from: SocketAddr,
        now: Instant,
    ) -> Option<Vec<u8>> {
        MediaCounters::add(&self.stats.control_rx, 1);
        let (h, ports) = (&mut self.handler, &mut self.ports);
        match catch_unwind(AssertUnwindSafe(|| {
            h.on_control(datagram, from, now, ports)
        })) {
            Ok(r) => r,
            Err(p) => {
                self.panicked("on_control", p.as_ref());
                None
            }
        }
    }

    /// Hands every posted command to the handler; the backend applies `ports.ops` afterwards.
    pub(crate) fn deliver_mail(&mut self, now: Instant) {
        self.mail.drain(&mut self.mailq);
        while let Some(m) = self.mailq.pop_front() {
            MediaCounters::add(&self.stats.commands, 1);
            let (h, ports) = (&mut self.handler, &mut self.ports);
            if let Err(p) = catch_unwind(AssertUnwindSafe(|| h.on_command(m, now, ports))) {
                self.panicked("on_command", p.as_ref());
            }
        }
    }

    fn deadline(&mut self) -> Option<Instant> {
        let h = &self.handler;
        match catch_unwind(AssertUnwindSafe(|| h.next_deadline())) {
            Ok(d) => d,
            Err(p) => {
                self.panicked("next_deadline", p.as_ref());
                None
            }
        }
    }

    /// Calls `on_timer` if the handler's deadline has passed; the backend applies `ports.ops`
    /// afterwards.
    pub(crate) fn run_timers(&mut self, now: Instant) {
        if self.deadline().is_some_and(|d| d <= now) {
            let (h, ports) = (&mut self.handler, &mut self.ports);
            if let Err(p) = catch_unwind(AssertUnwindSafe(|| h.on_timer(now, ports))) {
                self.panicked("on_timer", p.as_ref());
            }
        }
    }

    /// How long the worker may sleep; `None` for "until something happens".
    pub(crate) fn wait_time(&mut self, now: Instant) -> Option<Duration> {
        self.deadline().map(|d| d.saturating_duration_since(now))
    }
}
