//! The SIP signalling worker: one sans-IO [`Endpoint`] per engine worker, fed by the engine's
//! sockets. This module only translates between the engine's types and the core's; protocol
//! decisions live in `mgw_core`.

use std::any::Any;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use mgw_core::call::{MediaOp, MediaRequest, MediaResult, MediaTotals};
use mgw_core::endpoint::{salvage_reply, Endpoint, EndpointConfig, EndpointStats, Origin};
use mgw_core::registrar::{Binding, Transport as BindingTransport};
use mgw_media::sdp::CodecName;
use mgw_media::session::MediaOptions;

use crate::media::MediaControl;
use crate::store::calls::CallLog;
use crate::store::journal::{JournalOp, JournalSender};
use mgw_core::sip::framing::FrameError;
use mgw_engine::{Handler, Mailbox, Outbox, Peer, Transport};

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

/// Mail between SIP workers and from the media engine.
enum SipMail {
    /// A message for a call this worker owns, received by another worker.
    Foreign { bytes: Vec<u8>, peer: Peer },
    /// The media engine's answer to a call's request.
    Media { ticket: u64, result: MediaResult },
    /// The media engine saw no RTP on the call for `media.inactivity_s`.
    MediaInactive { call: String },
}

/// Tells the SIP worker owning media call `call` (its id names the worker) that the media
/// died; it ends the call with BYE to both sides.
pub fn media_inactive(mailboxes: &OnceLock<Vec<Mailbox>>, call: &str) {
    let worker = call
        .strip_prefix('c')
        .and_then(|r| r.split_once('w'))
        .and_then(|(w, _)| usize::from_str_radix(w, 16).ok());
    if let Some(mb) = worker.and_then(|w| mailboxes.get()?.get(w)) {
        let _ = mb.post(Box::new(SipMail::MediaInactive {
            call: call.to_string(),
        }));
    }
}

/// What a SIP worker shares with the rest of the gateway for switching calls.
#[derive(Clone)]
pub struct SwitchLinks {
    pub media: MediaControl,
    /// Every SIP worker's mailbox, filled once the engine has started.
    pub mailboxes: Arc<OnceLock<Vec<Mailbox>>>,
    pub calls: CallLog,
    /// Local addresses UDP requests to phones leave from (IPv4, IPv6).
    pub udp_v4: Option<SocketAddr>,
    pub udp_v6: Option<SocketAddr>,
}

pub struct SipWorker {
    endpoint: Endpoint<Peer>,
    server: String,
    counters: Arc<SipCounters>,
    journal: JournalSender,
    worker: usize,
    links: Option<SwitchLinks>,
}

/// What mgw offers a callee on top of the caller's codecs, so it can transcode if the callee
/// has none of them.
const TRANSCODE_TO: [CodecName; 5] = [
    CodecName::Pcma,
    CodecName::Pcmu,
    CodecName::G722,
    CodecName::Opus,
    CodecName::G726_32,
];

impl SipWorker {
    pub fn new(
        cfg: EndpointConfig,
        counters: Arc<SipCounters>,
        journal: JournalSender,
    ) -> SipWorker {
        SipWorker {
            server: cfg.server.clone(),
            worker: usize::from(cfg.worker),
            endpoint: Endpoint::new(cfg),
            counters,
            journal,
            links: None,
        }
    }

    /// A worker that switches calls.
    pub fn switching(
        cfg: EndpointConfig,
        counters: Arc<SipCounters>,
        journal: JournalSender,
        links: SwitchLinks,
    ) -> SipWorker {
        let (v4, v6) = (links.udp_v4, links.udp_v6);
        let make_dest = Box::new(move |to: SocketAddr, t: BindingTransport| match t {
            BindingTransport::Tcp => Peer::tcp(to),
            BindingTransport::Udp => {
                let local = if to.is_ipv6() { v6.or(v4) } else { v4.or(v6) };
                Peer::udp(to, local.unwrap_or(SocketAddr::from(([0, 0, 0, 0], 0))))
            }
        });
        SipWorker {
            server: cfg.server.clone(),
            worker: usize::from(cfg.worker),
            endpoint: Endpoint::with_switch(cfg, make_dest),
            counters,
            journal,
            links: Some(links),
        }
    }

    /// Hands a call's media request to the media engine; the answer comes back as mail.
    fn ask_media(&self, req: MediaRequest) {
        let Some(links) = &self.links else {
            return;
        };
        let Some(me) = links
            .mailboxes
            .get()
            .and_then(|m| m.get(self.worker))
            .cloned()
        else {
            return;
        };
        let ticket = req.ticket;
        let back = move |result: MediaResult| {
            let _ = me.post(Box::new(SipMail::Media { ticket, result }));
        };
        let sdp_reply = move |r: Result<String, crate::media::MediaError>| {
            back(match r {
                Ok(s) => MediaResult::Sdp(s),
                Err(e) => MediaResult::Failed(e.to_string()),
            })
        };
        match req.op {
            MediaOp::Offer {
                from_tag,
                sdp,
                transcode,
            } => {
                let options = MediaOptions {
                    transcode: if transcode {
                        TRANSCODE_TO.to_vec()
                    } else {
                        Vec::new()
                    },
                    ..MediaOptions::default()
                };
                links
                    .media
                    .offer(&req.call, &from_tag, &sdp, options, Box::new(sdp_reply));
            }
            MediaOp::Answer { to_tag, sdp } => links.media.answer(
                &req.call,
                Some(&to_tag),
                &sdp,
                MediaOptions::default(),
                Box::new(sdp_reply),
            ),
            MediaOp::Finish => {
                let me = links
                    .mailboxes
                    .get()
                    .and_then(|m| m.get(self.worker))
                    .cloned();
                links.media.finish(
                    &req.call,
                    Box::new(move |r| {
                        let totals = match r {
                            Ok(info) => MediaTotals {
                                packets_a_to_b: info.stats.a_to_b.packets,
                                packets_b_to_a: info.stats.b_to_a.packets,
                                codec_a: info.codecs[0].map(|c| c.encoding().to_string()),
                                codec_b: info.codecs[1].map(|c| c.encoding().to_string()),
                            },
                            Err(_) => MediaTotals::default(),
                        };
                        if let Some(me) = me {
                            let _ = me.post(Box::new(SipMail::Media {
                                ticket,
                                result: MediaResult::Finished(totals),
                            }));
                        }
                    }),
                );
            }
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
        while let Some(req) = self.endpoint.poll_media() {
            self.ask_media(req);
        }
        while let Some((w, bytes, origin)) = self.endpoint.poll_foreign() {
            let mb = self
                .links
                .as_ref()
                .and_then(|l| l.mailboxes.get())
                .and_then(|m| m.get(usize::from(w)));
            match mb {
                Some(mb) => {
                    let _ = mb.post(Box::new(SipMail::Foreign {
                        bytes,
                        peer: origin.reply_to,
                    }));
                }
                // No such worker (a tag from before a restart with more workers): handle here.
                None => self.endpoint.on_forwarded(&bytes, origin, Instant::now()),
            }
        }
        while let Some(e) = self.endpoint.poll_call_event() {
            if let Some(l) = &self.links {
                l.calls.record(e);
            }
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

    fn on_mail(&mut self, mail: Box<dyn Any + Send>, now: Instant, out: &mut Outbox) {
        let Ok(mail) = mail.downcast::<SipMail>() else {
            return;
        };
        match *mail {
            SipMail::Foreign { bytes, peer } => {
                let origin = Origin {
                    reply_to: peer,
                    source: peer.remote,
                    reliable: peer.transport == Transport::Tcp,
                };
                self.endpoint.on_forwarded(&bytes, origin, now);
            }
            SipMail::Media { ticket, result } => self.endpoint.on_media(ticket, result, now),
            SipMail::MediaInactive { call } => self.endpoint.on_media_inactive(&call, now),
        }
        self.flush(out);
    }
}
