//! What a media worker does regardless of backend: handler calls (guarded against panics),
//! posted commands, timers.

use std::any::Any;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::ports::PortControl;
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
        now: Instant,
    ) -> Option<Forward> {
        let h = &mut self.handler;
        match catch_unwind(AssertUnwindSafe(|| h.on_packet(port, from, buf, now))) {
            Ok(f) => f,
            Err(p) => {
                self.panicked("on_packet", p.as_ref());
                None
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
