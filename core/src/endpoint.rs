//! The gateway's SIP endpoint, sans-IO: bytes and an explicit `now` in, datagrams to send out.
//!
//! It answers on its own what needs no service: malformed requests (400/505/513 with the fault in
//! the reason phrase), the screening of RFC 3261 section 8.2 (see [`crate::uas`]), OPTIONS, and
//! digest challenges for requests that need a log-on. Responses that match no transaction are
//! dropped (RFC 3261 section 18.1.2).

use std::collections::VecDeque;
use std::hash::{Hash, Hasher};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::auth::{Challenge, ChallengeKind, Credentials, CredentialsError, NonceCheck, NonceKey};
use crate::sip::{
    validate, HeaderName, Message, Method, ParseError, ReplyContext, ResponseBuilder,
};
use crate::transaction::{Action, Incoming, ServerTxId, TimerConfig, TransactionLayer};
use crate::uas;

/// Settings of one endpoint; every worker gets a clone.
#[derive(Clone)]
pub struct EndpointConfig {
    /// The home domain: digest realm.
    pub domain: String,
    /// `Server` / `User-Agent` value.
    pub server: String,
    /// How long a nonce is accepted before `stale=true`.
    pub nonce_lifetime: Duration,
    pub nonce_key: NonceKey,
    /// Shared by every worker so nonces issued by one verify on another.
    pub epoch: Instant,
    pub timers: TimerConfig,
}

/// A datagram or stream write the driver must perform. Shared bytes, because a transaction
/// keeps its last response for retransmission.
#[derive(Debug)]
pub struct Transmit<A> {
    pub to: A,
    pub bytes: Arc<[u8]>,
}

/// Counters the driver exports as metrics.
#[derive(Clone, Copy, Debug, Default)]
pub struct EndpointStats {
    pub requests: u64,
    pub responses_received: u64,
    pub malformed: u64,
    pub dropped: u64,
    pub sent: u64,
    /// Requests absorbed as retransmissions (answered from the transaction).
    pub retransmissions: u64,
    /// Server transactions that timed out waiting for an ACK (timer H).
    pub timeouts: u64,
}

pub struct Endpoint<A> {
    cfg: EndpointConfig,
    tx: TransactionLayer<A>,
    out: VecDeque<Transmit<A>>,
    /// The `now` of the call being handled, so helpers need not thread it through.
    now: Instant,
    pub stats: EndpointStats,
}

/// Where a message came from: the driver's reply address, the real source (for `received`)
/// and whether the transport is reliable (TCP: no retransmission timers).
#[derive(Clone, Copy, Debug)]
pub struct Origin<A> {
    pub reply_to: A,
    pub source: SocketAddr,
    pub reliable: bool,
}

/// How a response leaves: through its server transaction, or statelessly when the request
/// could not form one.
#[derive(Clone, Copy)]
enum Via<A> {
    Tx(ServerTxId),
    Stateless(A),
}

impl<A: Clone> Endpoint<A> {
    pub fn new(cfg: EndpointConfig) -> Endpoint<A> {
        Endpoint {
            tx: TransactionLayer::new(cfg.timers),
            now: cfg.epoch,
            cfg,
            out: VecDeque::new(),
            stats: EndpointStats::default(),
        }
    }

    /// Handles one received message (a datagram or a framed stream message).
    pub fn on_message(&mut self, bytes: &[u8], origin: Origin<A>, now: Instant) {
        self.now = now;
        let parsed = Message::parse(bytes);
        let msg = match parsed {
            Ok(m) => m,
            Err(e) => return self.refuse_unparsable(bytes, e, origin),
        };
        if !msg.is_request() {
            self.stats.responses_received += 1;
            if validate::response(&msg).is_err() || self.tx.on_response(&msg, now).is_none() {
                // Stray or broken: dropped (RFC 3261 section 17.1.3). Matched responses go to
                // the client transaction, whose TU is the registrar or call layer.
                self.stats.dropped += 1;
            }
            self.drain_actions();
            return;
        }
        self.stats.requests += 1;
        if let Err(e) = validate::request(&msg) {
            return self.refuse_unparsable(bytes, e, origin);
        }
        let via = if stateful(&msg) {
            match self
                .tx
                .on_request(&msg, origin.reply_to.clone(), origin.reliable, now)
            {
                Incoming::New(id) => Via::Tx(id),
                Incoming::Absorbed => {
                    self.stats.retransmissions += 1;
                    return self.drain_actions();
                }
                // An ACK for a 2xx, or for nothing we know: the dialog layer's, and there is none.
                Incoming::Ack => return,
                Incoming::Invalid(_) => Via::Stateless(origin.reply_to.clone()),
            }
        } else {
            Via::Stateless(origin.reply_to.clone())
        };
        self.on_request(&msg, via, origin, now);
        self.drain_actions();
    }

    pub fn poll_transmit(&mut self) -> Option<Transmit<A>> {
        self.out.pop_front()
    }

    pub fn next_deadline(&self) -> Option<Instant> {
        self.tx.next_deadline()
    }

    pub fn on_timeout(&mut self, now: Instant) {
        self.now = now;
        self.tx.on_timeout(now);
        self.drain_actions();
    }

    /// Live transactions, for metrics and tests.
    pub fn transactions(&self) -> usize {
        self.tx.len()
    }

    fn drain_actions(&mut self) {
        while let Some(a) = self.tx.poll_action() {
            match a {
                Action::Send { to, bytes, .. } => {
                    self.stats.sent += 1;
                    self.out.push_back(Transmit { to, bytes });
                }
                Action::Timeout { .. } => self.stats.timeouts += 1,
                Action::ProvisionalTimeout { .. }
                | Action::TransportError { .. }
                | Action::Terminated { .. } => {}
            }
        }
    }

    fn on_request(&mut self, msg: &Message<'_>, via: Via<A>, origin: Origin<A>, now: Instant) {
        let Some(method) = msg.method() else { return };
        if let Err(refusal) = uas::screen(msg) {
            let (code, reason) = refusal.status();
            let extra = refusal.extra_headers();
            let headers: Vec<(&str, &str)> = extra.iter().map(|(n, v)| (*n, v.as_str())).collect();
            return self.reply(msg, code, reason, &headers, via, origin);
        }
        let in_dialog = msg.to().is_some_and(|t| t.tag().is_some());
        match method {
            Method::Ack => {}
            Method::Options => self.answer_options(msg, via, origin),
            Method::Register => self.authenticate(msg, ChallengeKind::Www, via, origin, now),
            // No dialogs or pending INVITEs exist at this layer: RFC 3261 12.2.2 / 9.2.
            Method::Bye | Method::Cancel | Method::Prack | Method::Update | Method::Info => self
                .reply(
                    msg,
                    481,
                    "Call/Transaction Does Not Exist",
                    &[],
                    via,
                    origin,
                ),
            Method::Notify if !in_dialog => {
                self.reply(msg, 481, "Subscription Does Not Exist", &[], via, origin)
            }
            _ if in_dialog => self.reply(
                msg,
                481,
                "Call/Transaction Does Not Exist",
                &[],
                via,
                origin,
            ),
            _ => self.authenticate(msg, ChallengeKind::Proxy, via, origin, now),
        }
    }

    fn answer_options(&mut self, msg: &Message<'_>, via: Via<A>, origin: Origin<A>) {
        self.reply(
            msg,
            200,
            "OK",
            &[
                ("Allow", uas::ALLOW),
                ("Accept", uas::ACCEPT),
                ("Accept-Encoding", "identity"),
                ("Accept-Language", "en"),
                ("Supported", uas::SUPPORTED_HEADER),
            ],
            via,
            origin,
        );
    }

    /// Challenges, or checks the credentials a request carries. No log-on directory is attached
    /// at this layer, so valid-looking credentials are refused like wrong ones: 403, the same
    /// answer for an unknown user and a wrong password.
    fn authenticate(
        &mut self,
        msg: &Message<'_>,
        kind: ChallengeKind,
        via: Via<A>,
        origin: Origin<A>,
        now: Instant,
    ) {
        let header = match kind {
            ChallengeKind::Www => HeaderName::Authorization,
            ChallengeKind::Proxy => HeaderName::ProxyAuthorization,
        };
        let now_ms = self.now_ms(now);
        let mut stale = false;
        for value in msg.all(header) {
            match Credentials::parse(value) {
                Err(CredentialsError::NotDigest) => continue,
                Err(_) => return self.reply(msg, 400, "Malformed credentials", &[], via, origin),
                Ok(c) if c.realm != self.cfg.domain => continue,
                Ok(c) => {
                    match self.cfg.nonce_key.check(
                        c.nonce,
                        &self.cfg.domain,
                        now_ms,
                        self.cfg.nonce_lifetime.as_millis() as u64,
                    ) {
                        NonceCheck::Stale => stale = true,
                        NonceCheck::Forged => {}
                        NonceCheck::Valid => {
                            return self.reply(msg, 403, "Forbidden", &[], via, origin);
                        }
                    }
                }
            }
        }
        let nonce = self.cfg.nonce_key.issue(now_ms, &self.cfg.domain);
        let values = Challenge {
            realm: &self.cfg.domain,
            nonce: &nonce,
            stale,
        }
        .header_values();
        let (code, reason) = kind.status();
        self.reply(
            msg,
            code,
            reason,
            &[(kind.header(), &values[0]), (kind.header(), &values[1])],
            via,
            origin,
        );
    }

    fn now_ms(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.cfg.epoch).as_millis() as u64
    }

    fn reply(
        &mut self,
        req: &Message<'_>,
        code: u16,
        reason: &str,
        headers: &[(&str, &str)],
        via: Via<A>,
        origin: Origin<A>,
    ) {
        let tag = to_tag(req);
        // Hex digits only, so always valid UTF-8.
        let tag = std::str::from_utf8(&tag).unwrap_or("0");
        let mut bytes = Vec::with_capacity(512);
        let mut b = ResponseBuilder::new(
            &mut bytes,
            req,
            code,
            reason,
            ReplyContext {
                source: Some(origin.source),
                to_tag: Some(tag),
            },
        );
        for (n, v) in headers {
            b = b.header(n, v);
        }
        b.header("Server", &self.cfg.server).finish(None, b"");
        match via {
            Via::Tx(id) => {
                if self.tx.respond(id, code, bytes, self.now).is_err() {
                    self.stats.dropped += 1;
                }
            }
            Via::Stateless(to) => self.push(to, bytes),
        }
    }

    fn push(&mut self, to: A, bytes: Vec<u8>) {
        self.stats.sent += 1;
        self.out.push_back(Transmit {
            to,
            bytes: bytes.into(),
        });
    }

    /// Answers a request that failed parsing or validation, copying what can be found of its
    /// Via, From, To, Call-ID and CSeq. Responses and messages without a Via are dropped: there
    /// is nobody to answer (RFC 3261 section 18.1.2 / 18.2.1).
    fn refuse_unparsable(&mut self, bytes: &[u8], err: ParseError, origin: Origin<A>) {
        self.stats.malformed += 1;
        if bytes.starts_with(b"SIP/") {
            self.stats.dropped += 1;
            return;
        }
        let Some(reply) = salvage_reply(bytes, err.status(), &err.reason(), &self.cfg.server)
        else {
            self.stats.dropped += 1;
            return;
        };
        self.push(origin.reply_to, reply);
    }
}

/// Whether a request needs a server transaction. What the endpoint answers at once, from the
/// request alone, is answered statelessly (RFC 3261 section 8.2.7), as Kamailio's `sl` does: a
/// retransmission simply gets the same answer again (the To-tag is derived from the request),
/// and no state is held for 64*T1. REGISTER keeps its transaction so that a retransmitted
/// REGISTER is absorbed rather than seen as a replayed nonce-count.
fn stateful(msg: &Message<'_>) -> bool {
    matches!(msg.method(), Some(Method::Register))
}

/// A To-tag derived from the request, so that a retransmitted request answered without a
/// transaction still gets the same tag.
fn to_tag(req: &Message<'_>) -> [u8; 16] {
    // Raw field values identify the request as well as parsed ones, without parsing again.
    let mut h = std::collections::hash_map::DefaultHasher::new();
    req.call_id().hash(&mut h);
    req.header(HeaderName::From).hash(&mut h);
    req.list(HeaderName::Via).next().hash(&mut h);
    req.header(HeaderName::CSeq).hash(&mut h);
    let v = h.finish();
    let mut out = [0u8; 16];
    for (i, o) in out.iter_mut().enumerate() {
        *o = b"0123456789abcdef"[((v >> (60 - 4 * i)) & 15) as usize];
    }
    out
}

/// Builds an error response from the raw lines of a message that could not be parsed.
pub fn salvage_reply(bytes: &[u8], code: u16, reason: &str, server: &str) -> Option<Vec<u8>> {
    let head_end = memchr::memmem::find(bytes, b"\r\n\r\n").unwrap_or(bytes.len());
    let head = String::from_utf8_lossy(&bytes[..head_end]);
    let mut out = format!("SIP/2.0 {code} {reason}\r\n");
    let mut have_via = false;
    let mut lines = head.split("\r\n").skip(1).peekable();
    while let Some(line) = lines.next() {
        let mut full = line.to_string();
        while lines.peek().is_some_and(|l| l.starts_with([' ', '\t'])) {
            full.push_str(lines.next().unwrap_or(""));
        }
        let Some((name, value)) = full.split_once(':') else {
            continue;
        };
        let name = HeaderName::from_bytes(name.trim().as_bytes());
        let keep = matches!(
            name,
            HeaderName::Via
                | HeaderName::From
                | HeaderName::To
                | HeaderName::CallId
                | HeaderName::CSeq
        );
        if keep && !value.contains(['\r', '\n']) {
            have_via |= name == HeaderName::Via;
            out.push_str(name.as_str());
            out.push_str(": ");
            out.push_str(value.trim());
            if name == HeaderName::To && !value.to_ascii_lowercase().contains(";tag=") {
                // Derived from the message so a retransmission gets the same tag.
                let mut h = std::collections::hash_map::DefaultHasher::new();
                bytes[..head_end].hash(&mut h);
                out.push_str(&format!(";tag={:016x}", h.finish()));
            }
            out.push_str("\r\n");
        }
    }
    if !have_via {
        return None;
    }
    out.push_str("Server: ");
    out.push_str(server);
    out.push_str("\r\nContent-Length: 0\r\n\r\n");
    Some(out.into_bytes())
}
