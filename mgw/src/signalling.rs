//! The SIP signalling worker: one sans-IO [`Endpoint`] per engine worker, fed by the engine's
//! sockets. This module only translates between the engine's types and the core's; protocol
//! decisions live in `mgw_core`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use mgw_core::endpoint::{salvage_reply, Endpoint, EndpointConfig, EndpointStats, Origin};
use mgw_core::registrar::Binding;

use crate::store::journal::{JournalOp, JournalSender};
use mgw_core::sip::framing::FrameError;
use mgw_engine::{Handler, Outbox, Peer, Transport};

/// Endpoint counters of one worker, readable from the metrics thread.
#[derive(Default)]
pub struct SipCounters {
    pub requests: AtomicU64,
    pub responses_received: AtomicU64,
    pub malformed: AtomicU64,
    pub dropped: AtomicU64,
    pub sent: AtomicU64,
    pub retransmissions: AtomicU64,
    pub timeouts: AtomicU64,
    pub transactions: AtomicU64,
}

impl SipCounters {
    fn publish(&self, s: &EndpointStats, transactions: usize) {
        // Single writer (the worker): plain stores, no read-modify-write.
        self.requests.store(s.requests, Ordering::Relaxed);
        self.responses_received
            .store(s.responses_received, Ordering::Relaxed);
        self.malformed.store(s.malformed, Ordering::Relaxed);
        self.dropped.store(s.dropped, Ordering::Relaxed);
        self.sent.store(s.sent, Ordering::Relaxed);
        self.retransmissions
            .store(s.retransmissions, Ordering::Relaxed);
        self.timeouts.store(s.timeouts, Ordering::Relaxed);
        self.transactions
            .store(transactions as u64, Ordering::Relaxed);
    }
}

pub struct SipWorker {
    endpoint: Endpoint<Peer>,
    server: String,
    counters: Arc<SipCounters>,
    journal: JournalSender,
}

impl SipWorker {
    pub fn new(
        cfg: EndpointConfig,
        counters: Arc<SipCounters>,
        journal: JournalSender,
    ) -> SipWorker {
        SipWorker {
            server: cfg.server.clone(),
            endpoint: Endpoint::new(cfg),
            counters,
            journal,
        }
    }

    /// Expiry of a binding restored from the store is watched by this worker.
    pub fn watch_binding(&mut self, user: &str, binding: &Binding) {
        self.endpoint.watch_binding(user, binding);
    }

    fn flush(&mut self, out: &mut Outbox) {
        while let Some(t) = self.endpoint.poll_transmit() {
            out.send(t.to, &t.bytes);
        }
        while let Some(e) = self.endpoint.poll_event() {
            self.journal.send(JournalOp::from_event(e));
        }
        self.counters
            .publish(&self.endpoint.stats, self.endpoint.transactions());
    }
}

impl Handler for SipWorker {
    fn on_message(&mut self, msg: &[u8], peer: Peer, now: Instant, out: &mut Outbox) {
        let origin = Origin {
            reply_to: peer,
            source: peer.remote,
            reliable: peer.transport == Transport::Tcp,
        };
        self.endpoint.on_message(msg, origin, now);
        self.flush(out);
    }

    /// A stream that cannot be framed gets its 400/513 if a Via can be found; the engine then
    /// closes the connection, since the next message's start is unknown.
    fn on_stream_error(
        &mut self,
        head: &[u8],
        err: FrameError,
        peer: Peer,
        _now: Instant,
        out: &mut Outbox,
    ) {
        if let Some(reply) = salvage_reply(head, err.status(), err.reason(), &self.server) {
            out.send(peer, &reply);
        }
    }

    fn next_deadline(&self) -> Option<Instant> {
        self.endpoint.next_deadline()
    }

    fn on_timer(&mut self, now: Instant, out: &mut Outbox) {
        self.endpoint.on_timeout(now);
        self.flush(out);
    }
}
