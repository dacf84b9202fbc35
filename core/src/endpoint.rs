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

use crate::admission::Admission;
use crate::auth::{Challenge, ChallengeKind, NonceCounts, NonceKey, Verdict, Verifier};
use crate::call::{CallConfig, CallContext, CallEvent, Calls, MakeDest, MediaRequest, MediaResult};
use crate::directory::{AccountState, Directory, LogOn};
use crate::registrar::{
    Arrival, EventKind, LocationTable, RegisterOutcome, Registrar, RegistrarConfig,
    RegistrationEvent, Transport,
};
use crate::sip::{
    validate, HeaderName, Message, Method, ParseError, ReplyContext, ResponseBuilder,
};
use crate::transaction::{Action, Incoming, ServerTxId, TimerConfig, TransactionLayer, TxId};
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
    /// Offer the SHA-256 challenge before the MD5 one (see `auth::Challenge`).
    pub sha256_first: bool,
    /// User-Agent prefixes (case-insensitive) that get an MD5-only challenge because they fail
    /// on any challenge they cannot answer.
    pub md5_only_user_agents: Vec<String>,
    /// Shared by every worker so nonces issued by one verify on another.
    pub epoch: Instant,
    /// Wall-clock time at `epoch`, ms since the UNIX epoch: bindings carry absolute expiry
    /// times so they survive a restart.
    pub epoch_unix_ms: u64,
    pub timers: TimerConfig,
    pub registrar: RegistrarConfig,
    /// Shared by every worker: log-ons, bindings and used nonce-counts.
    pub directory: Arc<Directory>,
    pub location: Arc<LocationTable>,
    pub nonce_counts: Arc<NonceCounts>,
    /// Account and licence rules for calls; its licence pool is released when a log-on's
    /// last binding goes.
    pub admission: Arc<Admission>,
    /// The call switch's settings.
    pub calls: CallConfig,
    /// This endpoint's worker number: calls it creates carry it in their tags.
    pub worker: u16,
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
    /// REGISTERs answered 200 / refused with 403.
    pub registrations: u64,
    pub auth_failures: u64,
}

pub struct Endpoint<A> {
    cfg: EndpointConfig,
    tx: TransactionLayer<A>,
    verifier: Verifier,
    registrar: Registrar,
    events: VecDeque<RegistrationEvent>,
    /// When nonce-counts of expired nonces were last forgotten (ms on the nonce clock).
    last_sweep_ms: u64,
    out: VecDeque<Transmit<A>>,
    /// The `now` of the call being handled, so helpers need not thread it through.
    now: Instant,
    calls: Calls<A>,
    /// Messages for calls owned by another worker: (worker, bytes, origin).
    foreign: VecDeque<(u16, Vec<u8>, Origin<A>)>,
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
    /// An endpoint that registers and authenticates but switches no calls (admitted calls
    /// are answered 480): [`Endpoint::with_switch`] gives it the means to reach phones.
    pub fn new(cfg: EndpointConfig) -> Endpoint<A> {
        Self::build(cfg, None)
    }

    /// An endpoint that switches calls; `make_dest` turns a registered contact's address and
    /// transport into where the driver sends.
    pub fn with_switch(cfg: EndpointConfig, make_dest: MakeDest<A>) -> Endpoint<A> {
        Self::build(cfg, Some(make_dest))
    }

    fn build(cfg: EndpointConfig, make_dest: Option<MakeDest<A>>) -> Endpoint<A> {
        Endpoint {
            calls: Calls::new(cfg.calls.clone(), cfg.worker, make_dest),
            foreign: VecDeque::new(),
            tx: TransactionLayer::new(cfg.timers),
            verifier: Verifier {
                realm: cfg.domain.clone(),
                nonce_key: cfg.nonce_key.clone(),
                nonce_lifetime_ms: cfg.nonce_lifetime.as_millis() as u64,
                directory: cfg.directory.clone(),
                counts: cfg.nonce_counts.clone(),
            },
            registrar: Registrar::new(
                cfg.registrar.clone(),
                cfg.location.clone(),
                cfg.epoch_unix_ms,
            ),
            events: VecDeque::new(),
            last_sweep_ms: 0,
            now: cfg.epoch,
            cfg,
            out: VecDeque::new(),
            stats: EndpointStats::default(),
        }
    }

    /// Handles one received message (a datagram or a framed stream message).
    pub fn on_message(&mut self, bytes: &[u8], origin: Origin<A>, now: Instant) {
        self.receive(bytes, origin, now, true);
    }

    /// A message another worker passed on because a call of this worker owns it.
    pub fn on_forwarded(&mut self, bytes: &[u8], origin: Origin<A>, now: Instant) {
        self.receive(bytes, origin, now, false);
    }

    fn receive(&mut self, bytes: &[u8], origin: Origin<A>, now: Instant, may_forward: bool) {
        self.now = now;
        let parsed = Message::parse(bytes);
        let msg = match parsed {
            Ok(m) => m,
            Err(e) => return self.refuse_unparsable(bytes, e, origin),
        };
        if may_forward {
            if let Some(w) = self.foreign_owner(&msg) {
                self.foreign.push_back((w, bytes.to_vec(), origin));
                return;
            }
        }
        if !msg.is_request() {
            self.stats.responses_received += 1;
            let id = match validate::response(&msg) {
                Ok(()) => self.tx.on_response(&msg, now),
                Err(_) => None,
            };
            match id {
                Some(id) => {
                    let wall = self.wall_ms(now);
                    self.calls.on_response(&mut self.tx, id, &msg, wall, now);
                }
                // Stray or broken: dropped (RFC 3261 section 17.1.3); absorbed retransmissions
                // land here too.
                None => self.stats.dropped += 1,
            }
            return self.flush_calls();
        }
        self.stats.requests += 1;
        if let Err(e) = validate::request(&msg) {
            return self.refuse_unparsable(bytes, e, origin);
        }
        let via = if self.stateful(&msg, origin.source, origin.reliable) {
            match self
                .tx
                .on_request(&msg, origin.reply_to.clone(), origin.reliable, now)
            {
                Incoming::New(id) => Via::Tx(id),
                Incoming::Absorbed => {
                    self.stats.retransmissions += 1;
                    return self.flush_calls();
                }
                // An ACK for a 2xx: the call's.
                Incoming::Ack => {
                    self.calls.on_ack(&mut self.tx, &msg, now);
                    return self.flush_calls();
                }
                Incoming::Invalid(_) => Via::Stateless(origin.reply_to.clone()),
            }
        } else {
            Via::Stateless(origin.reply_to.clone())
        };
        self.on_request(&msg, via, origin, now);
        self.flush_calls();
    }

    /// The worker owning the call a message belongs to, when that is another worker: mgw's
    /// tag is in To of requests (in a dialog) and in From of responses.
    fn foreign_owner(&self, msg: &Message<'_>) -> Option<u16> {
        let tag = if msg.is_request() {
            msg.to()?.tag()?
        } else {
            msg.from()?.tag()?
        };
        crate::call::owner_of(tag).filter(|&w| w != self.cfg.worker)
    }

    /// Messages for calls of other workers, to be handed to them ([`Endpoint::on_forwarded`]).
    pub fn poll_foreign(&mut self) -> Option<(u16, Vec<u8>, Origin<A>)> {
        self.foreign.pop_front()
    }

    /// What the call switch asks of the media engine.
    pub fn poll_media(&mut self) -> Option<MediaRequest> {
        self.calls.poll_media()
    }

    /// Call starts, answers and ends, for the call list and the call records.
    pub fn poll_call_event(&mut self) -> Option<CallEvent> {
        self.calls.poll_event()
    }

    /// The media engine's answer to a [`MediaRequest`].
    pub fn on_media(&mut self, ticket: u64, result: MediaResult, now: Instant) {
        self.now = now;
        let wall = self.wall_ms(now);
        self.calls.on_media(&mut self.tx, ticket, result, wall, now);
        self.flush_calls();
    }

    /// The media engine reported the call's media dead (no RTP for its inactivity time).
    pub fn on_media_inactive(&mut self, call: &str, now: Instant) {
        self.now = now;
        self.calls.media_dead(&mut self.tx, call, now);
        self.flush_calls();
    }

    /// Calls in progress on this endpoint.
    pub fn calls(&self) -> usize {
        self.calls.len()
    }

    /// Transaction actions, then what the call layer sends outside transactions.
    fn flush_calls(&mut self) {
        self.drain_actions();
        while let Some((to, bytes)) = self.calls.poll_direct() {
            self.push(to, bytes);
        }
    }

    /// Whether a request needs a server transaction. What the endpoint answers at once, from
    /// the request alone, is answered statelessly (RFC 3261 section 8.2.7), as Kamailio's `sl`
    /// does: a retransmission simply gets the same answer again (the To-tag is derived from the
    /// request), and no state is held for 64*T1. That includes the digest challenges. A REGISTER
    /// with credentials keeps its transaction so that its retransmission is absorbed rather than
    /// seen as a replayed nonce-count; an INVITE with credentials becomes a call, and requests
    /// inside a call, CANCEL and the ACK of a 2xx belong to it.
    fn stateful(&self, msg: &Message<'_>, source: SocketAddr, reliable: bool) -> bool {
        match msg.method() {
            Some(Method::Register) => msg.header(HeaderName::Authorization).is_some(),
            Some(Method::Invite) if msg.to().is_some_and(|t| t.tag().is_none()) => {
                msg.header(HeaderName::ProxyAuthorization).is_some()
                    || self.cfg.calls.peers.by_source(source, reliable).is_some()
            }
            Some(Method::Cancel) => true,
            Some(_) => self.calls.knows(msg),
            None => false,
        }
    }

    pub fn poll_transmit(&mut self) -> Option<Transmit<A>> {
        self.out.pop_front()
    }

    pub fn next_deadline(&self) -> Option<Instant> {
        let expiry = self.registrar.next_deadline_ms().map(|ms| {
            self.cfg.epoch + Duration::from_millis(ms.saturating_sub(self.cfg.epoch_unix_ms))
        });
        // Only while there are nonce-counts to forget: an idle endpoint has no deadline.
        let sweep = (!self.verifier.counts.is_empty()).then(|| {
            self.cfg.epoch
                + Duration::from_millis(self.last_sweep_ms + self.verifier.nonce_lifetime_ms)
        });
        [
            self.tx.next_deadline(),
            expiry,
            sweep,
            self.calls.next_deadline(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    pub fn on_timeout(&mut self, now: Instant) {
        self.now = now;
        self.tx.on_timeout(now);
        self.calls.on_timeout(&mut self.tx, now);
        self.registrar.expire(self.wall_ms(now));
        self.collect_events();
        let mono = self.now_ms(now);
        if mono >= self.last_sweep_ms + self.verifier.nonce_lifetime_ms {
            self.verifier
                .counts
                .sweep(mono.saturating_sub(self.verifier.nonce_lifetime_ms));
            self.last_sweep_ms = mono;
        }
        self.flush_calls();
    }

    /// Registration changes (added, refreshed, removed, expired) for subscribers.
    pub fn poll_event(&mut self) -> Option<RegistrationEvent> {
        self.events.pop_front()
    }

    /// Takes over expiry of a binding loaded from the store.
    pub fn watch_binding(&mut self, user: &str, binding: &crate::registrar::Binding) {
        self.registrar.watch(user, binding);
    }

    /// Takes the registrar's events. A log-on whose last binding went (log-off, or keepalive
    /// missed) gives its licence back at once (seed 000).
    fn collect_events(&mut self) {
        for e in self.registrar.drain_events() {
            if e.remaining == 0 && matches!(e.kind, EventKind::Removed | EventKind::Expired) {
                if let Some(l) = self.cfg.directory.get(&e.user) {
                    self.cfg.admission.licences.release(l.id);
                }
            }
            self.events.push_back(e);
        }
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
                Action::Timeout { id } => {
                    self.stats.timeouts += 1;
                    if let TxId::Client(c) = id {
                        self.calls.on_client_timeout(&mut self.tx, c, self.now);
                    }
                }
                Action::TransportError {
                    id: TxId::Client(c),
                } => {
                    self.calls.on_client_timeout(&mut self.tx, c, self.now);
                }
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
        if in_dialog && method != Method::Ack && self.calls.knows(msg) {
            if let Via::Tx(id) = via {
                let wall = self.wall_ms(now);
                self.calls
                    .on_request(&mut self.tx, id, msg, origin.source, wall, now);
                return;
            }
        }
        if method == Method::Cancel {
            if let (Via::Tx(_), Some(invite)) = (&via, self.tx.invite_for_cancel(msg)) {
                self.reply(msg, 200, "OK", &[], via, origin);
                self.calls.on_cancel(&mut self.tx, invite, now);
                return;
            }
        }
        if method == Method::Invite && !in_dialog {
            if let Some(peer) = self
                .cfg
                .calls
                .peers
                .by_source(origin.source, origin.reliable)
            {
                let name = peer.name.clone();
                return self.admit_peer_call(msg, &name, via, origin, now);
            }
        }
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
        match self.verifier.verify(msg, header, now_ms) {
            Verdict::Authenticated(log_on) => {
                let account = self.cfg.directory.account(log_on.account);
                // Outside the allowed networks the answer is the one for a wrong password, so
                // it tells nobody that the user exists.
                if !account
                    .as_ref()
                    .is_some_and(|a| a.admits(origin.source.ip()))
                {
                    self.stats.auth_failures += 1;
                    return self.reply(msg, 403, "Forbidden", &[], via, origin);
                }
                match kind {
                    ChallengeKind::Www => {
                        if account.is_some_and(|a| a.state == AccountState::Disabled) {
                            return self.reply(
                                msg,
                                403,
                                "Forbidden: account disabled",
                                &[],
                                via,
                                origin,
                            );
                        }
                        self.register(msg, &log_on, via, origin, now)
                    }
                    ChallengeKind::Proxy => self.admit_call(msg, &log_on, via, origin, now),
                }
            }
            Verdict::Forbidden => {
                self.stats.auth_failures += 1;
                self.reply(msg, 403, "Forbidden", &[], via, origin)
            }
            Verdict::Malformed => self.reply(msg, 400, "Malformed credentials", &[], via, origin),
            Verdict::Challenge { stale } => {
                let nonce = self.verifier.issue_nonce(now_ms);
                let user_agent = msg.header(HeaderName::UserAgent).unwrap_or("");
                let md5_only = self.cfg.md5_only_user_agents.iter().any(|p| {
                    user_agent
                        .get(..p.len())
                        .is_some_and(|head| head.eq_ignore_ascii_case(p))
                });
                let values = Challenge {
                    realm: &self.cfg.domain,
                    nonce: &nonce,
                    stale,
                    sha256_first: self.cfg.sha256_first,
                    md5_only,
                }
                .header_values();
                let (code, reason) = kind.status();
                let headers: Vec<(&str, &str)> =
                    values.iter().map(|v| (kind.header(), v.as_str())).collect();
                self.reply(msg, code, reason, &headers, via, origin);
            }
        }
    }

    /// An authenticated request other than REGISTER. An INVITE is a connection: it passes
    /// admission (account, licence, voice channel) first. Switching calls comes with the call
    /// layer; until then an admitted call finds nobody to reach.
    fn admit_call(
        &mut self,
        msg: &Message<'_>,
        log_on: &LogOn,
        via: Via<A>,
        origin: Origin<A>,
        now: Instant,
    ) {
        if msg.method() == Some(Method::Invite) {
            let dialled = msg
                .request_uri()
                .and_then(|u| u.user_decoded())
                .unwrap_or_default();
            let now_s = (self.wall_ms(now) / 1000) as u32;
            match self
                .cfg
                .admission
                .outgoing(log_on, &dialled, origin.source.ip(), now_s)
            {
                Err(refusal) => return self.refuse_call(msg, refusal, via, origin),
                Ok(permit) => {
                    if let Via::Tx(id) = via {
                        let ctx = CallContext {
                            admission: &self.cfg.admission,
                            location: &self.cfg.location,
                            wall_ms: self.wall_ms(now),
                            dialled: None,
                        };
                        return self.calls.start(
                            &mut self.tx,
                            id,
                            msg,
                            origin.source,
                            origin.reply_to,
                            origin.reliable,
                            log_on,
                            permit,
                            &ctx,
                            now,
                        );
                    }
                    drop(permit);
                }
            }
        }
        self.reply(msg, 480, "Temporarily Unavailable", &[], via, origin)
    }

    /// An INVITE from a peer (a line driver, a trunk's server): trusted by its address, placed
    /// under the calling number, with no licence to claim.
    fn admit_peer_call(
        &mut self,
        msg: &Message<'_>,
        peer: &str,
        via: Via<A>,
        origin: Origin<A>,
        now: Instant,
    ) {
        let dialled = msg
            .request_uri()
            .and_then(|u| u.user_decoded())
            .unwrap_or_default();
        let mut dialled = crate::call::dialplan::clean(&dialled);
        // A provider may address mgw's registered Contact and name the DID in To only.
        if !crate::directory::valid_number(&dialled) {
            if let Some(to) = msg.to().and_then(|t| t.uri.user_decoded()) {
                dialled = crate::call::dialplan::clean(&to);
            }
        }
        // What a line or trunk sends ends up in URIs and headers of the other leg: numbers
        // only. A caller ID that is not a number is withheld rather than passed on.
        if !crate::directory::valid_number(&dialled) {
            return self.reply(
                msg,
                484,
                "Address Incomplete: the called number must be digits, '+', '*' or '#'",
                &[],
                via,
                origin,
            );
        }
        let calling = msg
            .from()
            .and_then(|f| f.uri.user_decoded())
            .map(|c| crate::call::dialplan::clean(&c))
            .filter(|c| crate::directory::valid_number(c))
            .unwrap_or_default();
        let Some(peer_ref) = self.cfg.calls.peers.by_name(peer) else {
            return self.reply(msg, 503, "Service Unavailable", &[], via, origin);
        };
        // Calls from a trunk count against its limit like calls to it.
        let Some(slot) = peer_ref.claim() else {
            let reason = format!("Service Unavailable: every channel of {peer} is in use");
            return self.reply(msg, 503, &reason, &[], via, origin);
        };
        // Only a number the peer serves itself (a DECT handset) stands for an account; a
        // trunk's caller ID is whatever the far end claims.
        let own = peer_ref.numbers.contains(&calling);
        let (log_on, mut permit) = match self.cfg.admission.from_peer(peer, &calling, &dialled, own)
        {
            Ok(p) => p,
            Err(refusal) => return self.refuse_call(msg, refusal, via, origin),
        };
        permit.peer_slot = Some(slot);
        let Via::Tx(id) = via else {
            return self.reply(msg, 500, "Server Internal Error", &[], via, origin);
        };
        let ctx = CallContext {
            admission: &self.cfg.admission,
            location: &self.cfg.location,
            wall_ms: self.wall_ms(now),
            dialled: Some(dialled),
        };
        self.calls.start(
            &mut self.tx,
            id,
            msg,
            origin.source,
            origin.reply_to,
            origin.reliable,
            &log_on,
            permit,
            &ctx,
            now,
        );
    }

    /// An authenticated REGISTER: a log-on may only register its own address of record.
    fn register(
        &mut self,
        msg: &Message<'_>,
        log_on: &LogOn,
        via: Via<A>,
        origin: Origin<A>,
        now: Instant,
    ) {
        let user = &*log_on.user;
        let to_user = msg.to().and_then(|t| t.uri.user_decoded());
        if to_user.as_deref() != Some(user) {
            self.stats.auth_failures += 1;
            return self.reply(
                msg,
                403,
                "Forbidden: credentials are not for this address",
                &[],
                via,
                origin,
            );
        }
        let arrival = Arrival {
            source: origin.source,
            transport: if origin.reliable {
                Transport::Tcp
            } else {
                Transport::Udp
            },
            now_ms: self.wall_ms(now),
        };
        let bounds = log_on
            .keepalive
            .unwrap_or_else(|| self.cfg.registrar.bounds());
        let outcome = self.registrar.register_within(user, msg, arrival, bounds);
        self.collect_events();
        match outcome {
            RegisterOutcome::Ok { contacts, path } => {
                self.stats.registrations += 1;
                let mut headers: Vec<(&str, String)> = contacts
                    .iter()
                    .map(|c| {
                        let mut v = format!("<{}>;expires={}", c.contact, c.expires_in);
                        if let Some(i) = &c.instance {
                            v.push_str(";+sip.instance=");
                            v.push_str(i);
                        }
                        if let Some(r) = c.reg_id {
                            v.push_str(&format!(";reg-id={r}"));
                        }
                        ("Contact", v)
                    })
                    .collect();
                headers.extend(path.iter().map(|p| ("Path", p.to_string())));
                if contacts.iter().any(|c| c.reg_id.is_some()) {
                    headers.push(("Require", "outbound".into()));
                }
                let refs: Vec<(&str, &str)> =
                    headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
                self.reply(msg, 200, "OK", &refs, via, origin);
            }
            RegisterOutcome::IntervalTooBrief(min) => {
                let min = min.to_string();
                self.reply(
                    msg,
                    423,
                    "Interval Too Brief",
                    &[("Min-Expires", &min)],
                    via,
                    origin,
                )
            }
            RegisterOutcome::Invalid(why) => self.reply(msg, 400, why, &[], via, origin),
            RegisterOutcome::OutOfOrder => self.reply(
                msg,
                500,
                "Stale CSeq for this Call-ID",
                &[("Retry-After", "1")],
                via,
                origin,
            ),
        }
    }

    /// Milliseconds since the UNIX epoch at `now`.
    fn wall_ms(&self, now: Instant) -> u64 {
        self.cfg.epoch_unix_ms + now.saturating_duration_since(self.cfg.epoch).as_millis() as u64
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
    /// An INVITE admission refused: the status names the cause, and a Q.850 `Reason` tells
    /// a gateway behind the caller what to signal on its side.
    fn refuse_call(
        &mut self,
        msg: &Message<'_>,
        refusal: crate::admission::Refusal,
        via: Via<A>,
        origin: Origin<A>,
    ) {
        let (code, reason) = refusal.status();
        let header = refusal.q850().map(crate::call::cause::reason_header);
        let headers: Vec<(&str, &str)> = header.iter().map(|h| ("Reason", h.as_str())).collect();
        self.reply(msg, code, reason, &headers, via, origin)
    }

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
