//! The protocol side of a worker, and the guard that keeps a panicking handler from taking the
//! worker down with it.

use std::any::Any;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::Instant;

use mgw_core::sip::framing::FrameError;

use crate::outbox::Outbox;
use crate::peer::{ConnId, Peer};
use crate::stats::Counters;

/// Per-worker protocol handler; created inside the worker thread by a factory, so it need not be
/// `Send`. Every call may queue messages on `out`; they are sent together at the end of the loop
/// turn.
pub trait Handler {
    /// One complete SIP message: a UDP datagram or a framed TCP message. `msg` borrows the
    /// receive buffer, valid only during the call. `now` is read once per loop turn.
    fn on_message(&mut self, msg: &[u8], peer: Peer, now: Instant, out: &mut Outbox);

    /// A TCP stream that cannot be framed. `head` is the unframed rest of the stream buffer. The
    /// engine closes the connection after `out` is flushed (so a 400/513 can still go out).
    fn on_stream_error(
        &mut self,
        head: &[u8],
        err: FrameError,
        peer: Peer,
        now: Instant,
        out: &mut Outbox,
    );

    /// Earliest instant `on_timer` is needed; the worker sleeps no longer than this.
    fn next_deadline(&self) -> Option<Instant>;

    fn on_timer(&mut self, now: Instant, out: &mut Outbox);

    /// A message posted to this worker through a [`Mailbox`](crate::Mailbox).
    fn on_mail(&mut self, mail: Box<dyn Any + Send>, now: Instant, out: &mut Outbox) {
        let _ = (mail, now, out);
    }

    /// A TCP connection went away (peer close, error, idle timeout, `Outbox::close`, failed
    /// connect). Sends to `conn` after this open a new connection to `peer.remote`.
    fn on_connection_closed(&mut self, conn: ConnId, peer: Peer, now: Instant, out: &mut Outbox) {
        let _ = (conn, peer, now, out);
    }
}

/// The handler with what every call needs: the outbox and the counters.
pub(crate) struct App<H> {
    handler: H,
    pub out: Outbox,
    pub stats: Arc<Counters>,
    worker: usize,
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

impl<H: Handler> App<H> {
    pub(crate) fn new(handler: H, stats: Arc<Counters>, worker: usize) -> Self {
        App {
            handler,
            out: Outbox::default(),
            stats,
            worker,
        }
    }

    /// Runs one handler call; a panic is logged, counted and its queued output discarded, and
    /// the worker goes on with the next event.
    fn guarded(&mut self, what: &str, peer: Option<&Peer>, f: impl FnOnce(&mut H, &mut Outbox)) {
        let mark = self.out.mark();
        let (handler, out) = (&mut self.handler, &mut self.out);
        if let Err(p) = catch_unwind(AssertUnwindSafe(|| f(handler, out))) {
            self.out.rollback(mark);
            Counters::add(&self.stats.handler_panics, 1);
            let from = peer.map(|p| format!(" from {}:{}", p.transport, p.remote));
            eprintln!(
                "mgw-engine: worker {}: handler panicked in {what}{}: {}; input dropped, worker continues",
                self.worker,
                from.unwrap_or_default(),
                panic_message(p.as_ref())
            );
        }
    }

    pub(crate) fn message(&mut self, msg: &[u8], peer: Peer, now: Instant) {
        self.guarded("on_message", Some(&peer), |h, out| {
            h.on_message(msg, peer, now, out)
        });
    }

    pub(crate) fn stream_error(&mut self, head: &[u8], err: FrameError, peer: Peer, now: Instant) {
        self.guarded("on_stream_error", Some(&peer), |h, out| {
            h.on_stream_error(head, err, peer, now, out)
        });
    }

    pub(crate) fn timer(&mut self, now: Instant) {
        self.guarded("on_timer", None, |h, out| h.on_timer(now, out));
    }

    pub(crate) fn mail(&mut self, mail: Box<dyn Any + Send>, now: Instant) {
        Counters::add(&self.stats.mail_received, 1);
        self.guarded("on_mail", None, |h, out| h.on_mail(mail, now, out));
    }

    pub(crate) fn connection_closed(&mut self, conn: ConnId, peer: Peer, now: Instant) {
        self.guarded("on_connection_closed", Some(&peer), |h, out| {
            h.on_connection_closed(conn, peer, now, out)
        });
    }

    #[cfg(test)]
    pub(crate) fn handler_ref(&self) -> &H {
        &self.handler
    }

    pub(crate) fn next_deadline(&mut self) -> Option<Instant> {
        let mut d = None;
        self.guarded("next_deadline", None, |h, _| d = h.next_deadline());
        d
    }
}
