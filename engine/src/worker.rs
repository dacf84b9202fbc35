//! What every worker does regardless of backend: mail, handler timers, the TCP idle sweep,
//! and deciding where an outgoing message goes.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::config::Transport;
use crate::handler::{App, Handler};
use crate::mailbox::{self, Mail};
use crate::outbox::OutMsg;
use crate::peer::{ConnId, Peer};
use crate::stats::Counters;
use crate::tcp::ConnTable;

/// The idle sweep runs this often at most (and at least every quarter of the idle timeout).
const SWEEP_MAX: Duration = Duration::from_secs(1);
const SWEEP_MIN: Duration = Duration::from_millis(10);

/// Where an outgoing message goes.
pub(crate) enum Route {
    /// The UDP socket with this index.
    Udp(usize),
    /// An existing connection.
    Conn(ConnId),
    /// No connection to the remote yet: open one.
    Connect,
    /// No socket can carry it (e.g. an IPv6 destination without an IPv6 UDP socket).
    Unroutable,
}

pub(crate) struct Limits {
    pub idle_timeout: Duration,
    pub max_connections: usize,
}

pub(crate) struct Core<H> {
    pub index: usize,
    pub app: App<H>,
    pub conns: ConnTable,
    pub mail: Arc<mailbox::Shared>,
    mailq: VecDeque<Mail>,
    idle_timeout: Duration,
    sweep_every: Duration,
    next_sweep: Instant,
    udp_locals: Vec<SocketAddr>,
    /// Scratch vectors kept to avoid allocating every turn.
    pub msgs: Vec<OutMsg>,
    pub closes: Vec<ConnId>,
    pub ids: Vec<ConnId>,
}

impl<H: Handler> Core<H> {
    pub(crate) fn new(
        index: usize,
        handler: H,
        stats: Arc<Counters>,
        mail: Arc<mailbox::Shared>,
        limits: &Limits,
        udp_locals: Vec<SocketAddr>,
    ) -> Self {
        let sweep_every = (limits.idle_timeout / 4).clamp(SWEEP_MIN, SWEEP_MAX);
        Core {
            index,
            app: App::new(handler, stats, index),
            conns: ConnTable::new(index, limits.max_connections),
            mail,
            mailq: VecDeque::new(),
            idle_timeout: limits.idle_timeout,
            sweep_every,
            next_sweep: Instant::now() + sweep_every,
            udp_locals,
            msgs: Vec::new(),
            closes: Vec::new(),
            ids: Vec::new(),
        }
    }

    /// Connections the handler asked to close are closed once their queued output is written.
    pub(crate) fn apply_closes(&mut self) {
        let mut closes = std::mem::take(&mut self.closes);
        self.app.out.take_closes(&mut closes);
        for id in closes.drain(..) {
            if let Some(c) = self.conns.get_mut(id) {
                c.close_when_flushed = true;
                self.conns.mark_dirty(id);
            }
        }
        self.closes = closes;
    }

    /// Queues a message on a connection, which the backend then writes when it flushes.
    pub(crate) fn queue_tcp(&mut self, id: ConnId, buf: Vec<u8>) {
        let Some(c) = self.conns.get_mut(id) else {
            return;
        };
        if buf.is_empty() {
            // A zero-length send would complete with 0, which reads as a dead connection.
            self.app.out.recycle(buf);
            return;
        }
        match c.enqueue(buf) {
            Ok(()) => {
                Counters::add(&self.stats().tcp_tx_messages, 1);
                self.conns.mark_dirty(id);
            }
            Err(buf) => self.drop_unsendable(buf),
        }
    }

    /// A message that cannot be sent (no route, connect failed): counted, its buffer reused.
    pub(crate) fn drop_unsendable(&mut self, buf: Vec<u8>) {
        Counters::add(&self.stats().send_errors, 1);
        self.app.out.recycle(buf);
    }

    pub(crate) fn stats(&self) -> &Counters {
        &self.app.stats
    }

    /// Hands every posted mail to the handler.
    pub(crate) fn deliver_mail(&mut self, now: Instant) {
        self.mail.drain(&mut self.mailq);
        while let Some(m) = self.mailq.pop_front() {
            self.app.mail(m, now);
        }
    }

    /// Calls `on_timer` if the handler's deadline has passed.
    pub(crate) fn run_timers(&mut self, now: Instant) {
        if self.app.next_deadline().is_some_and(|d| d <= now) {
            self.app.timer(now);
        }
    }

    /// Connections idle past the timeout, into `self.ids` (the backend closes them).
    pub(crate) fn collect_idle(&mut self, now: Instant) {
        self.ids.clear();
        if now < self.next_sweep {
            return;
        }
        self.next_sweep = now + self.sweep_every;
        self.conns.idle(now, self.idle_timeout, &mut self.ids);
    }

    /// How long the worker may sleep: until the handler's deadline or the next idle sweep,
    /// `None` for "until something happens".
    pub(crate) fn wait_time(&mut self, now: Instant) -> Option<Duration> {
        if !self.app.out.is_empty() {
            // Output queued by a late callback (e.g. a close notification) must not wait.
            return Some(Duration::ZERO);
        }
        let mut until = self.app.next_deadline();
        if self.conns.live() > 0 {
            until = Some(until.map_or(self.next_sweep, |d| d.min(self.next_sweep)));
        }
        until.map(|u| u.saturating_duration_since(now))
    }

    pub(crate) fn route(&mut self, to: &Peer) -> Route {
        match to.transport {
            Transport::Udp => self
                .udp_socket_for(to)
                .map_or(Route::Unroutable, Route::Udp),
            Transport::Tcp => self.conns.route(to).map_or(Route::Connect, Route::Conn),
        }
    }

    /// The socket bound to `to.local`, else the first of the destination's address family.
    fn udp_socket_for(&self, to: &Peer) -> Option<usize> {
        self.udp_locals
            .iter()
            .position(|l| *l == to.local)
            .or_else(|| {
                self.udp_locals
                    .iter()
                    .position(|l| l.is_ipv6() == to.remote.is_ipv6())
            })
    }
}
