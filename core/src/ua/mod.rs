//! A SIP user agent, sans-IO: registrations with a registrar and simple call legs in both
//! directions. The gateway uses it to register its trunks upstream, and the driver host to
//! present DECT handsets and ISDN lines to the switch as SIP phones.
//!
//! [`UserAgent`] owns one [`TransactionLayer`] for everything it sends and receives, so
//! requests are retransmitted and timed out as RFC 3261 section 17 says. Like the rest of core
//! it touches no socket and no clock: the host feeds it received messages
//! ([`UserAgent::on_message`]) and the passing of time ([`UserAgent::handle_timeout`]), calls
//! its commands, and drains [`UserAgent::poll_transmit`] and [`UserAgent::poll_event`].
//! `A` is the host's notion of a destination, as in [`TransactionLayer`].
//!
//! Randomness (tags, Call-IDs, branches, client nonces, backoff jitter) comes from a PRNG
//! seeded by [`UaConfig::seed`]: tests replay exactly, and the host passes OS randomness so
//! that identifiers differ between runs (a registrar refuses a reused Call-ID whose CSeq
//! starts again at 1).

pub mod call;
pub mod digest;
pub mod registration;

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::net::SocketAddr;
use std::time::Instant;

use crate::endpoint::{salvage_reply, Origin, Transmit};
use crate::sip::{validate, Message, ReplyContext, ResponseBuilder};
use crate::transaction::{
    Action, ClientTxId, Incoming, ServerTxId, TimerConfig, TransactionLayer, TxError, TxId,
};
use registration::Step;

pub use call::{CallHandle, CallState, Credentials, Direction, Ending, InviteParams};
pub use registration::{
    Registration, RegistrationConfig, RegistrationId, RegistrationState, DEFAULT_EXPIRES,
};

/// Methods this user agent answers; `Allow` lists them.
pub(crate) const ALLOW: &str = "INVITE, ACK, CANCEL, BYE, OPTIONS, UPDATE, INFO, NOTIFY";

#[derive(Clone, Debug)]
pub struct UaConfig {
    /// `host:port` written in Via and Contact of calls (registrations have their own).
    pub local: String,
    /// `User-Agent` / `Server` value.
    pub user_agent: String,
    /// Seeds every random choice (module docs).
    pub seed: u64,
    pub timers: TimerConfig,
}

impl Default for UaConfig {
    fn default() -> Self {
        UaConfig {
            local: "127.0.0.1:5060".into(),
            user_agent: "mgw-ua".into(),
            seed: 0,
            timers: TimerConfig::default(),
        }
    }
}

/// What the host learns, drained with [`UserAgent::poll_event`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// A registration changed state; [`Registration::last_failure`] says why it failed.
    Registration {
        id: RegistrationId,
        state: RegistrationState,
    },
    /// A new call for us: answer with [`UserAgent::ringing`], [`UserAgent::answer`] or
    /// [`UserAgent::reject`].
    Incoming {
        call: CallHandle,
        /// The caller's URI as written in From.
        from: String,
        from_user: Option<String>,
        from_display: Option<String>,
        /// The user part of To: the number called.
        to_user: Option<String>,
        sdp: Option<String>,
    },
    /// 180 (or 181, 182) for our INVITE, with early media if it carries SDP.
    Ringing {
        call: CallHandle,
        sdp: Option<String>,
    },
    /// 183 (or another provisional response) for our INVITE.
    Progress {
        call: CallHandle,
        status: u16,
        sdp: Option<String>,
    },
    /// Our INVITE was answered; the ACK is sent.
    Answered {
        call: CallHandle,
        sdp: Option<String>,
    },
    /// The ACK for our answer came: the call is up. `sdp` is the caller's answer when our
    /// 200 carried the offer.
    Confirmed {
        call: CallHandle,
        sdp: Option<String>,
    },
    /// The other side changed the session (re-INVITE or UPDATE, or the answer in an ACK);
    /// it was answered with the current local SDP ([`UserAgent::set_local_sdp`]).
    RemoteSdp { call: CallHandle, sdp: String },
    /// The call is over; its handle is no longer valid. `q850` is the cause from a received
    /// `Reason: Q.850;cause=N` header, or the one the host gave when it ended the call.
    Ended {
        call: CallHandle,
        ending: Ending,
        q850: Option<u8>,
    },
}

/// Why a command was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UaError {
    UnknownRegistration(RegistrationId),
    /// No such call, or it has ended.
    UnknownCall(CallHandle),
    /// The command does not fit the call (answering an outgoing call, ringing after the
    /// answer, ...).
    WrongState {
        call: CallHandle,
        state: CallState,
    },
    /// A URI given to [`UserAgent::invite`] does not parse.
    BadUri(String),
    /// A final status outside 300..=699 for [`UserAgent::reject`].
    BadStatus(u16),
    /// The transaction layer refused the request we built.
    Transaction(TxError),
}

impl fmt::Display for UaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UaError::UnknownRegistration(id) => write!(f, "no registration {id:?}"),
            UaError::UnknownCall(c) => write!(f, "no call {c:?}"),
            UaError::WrongState { call, state } => write!(f, "call {call:?} is {state:?}"),
            UaError::BadUri(u) => write!(f, "malformed URI {u:?}"),
            UaError::BadStatus(s) => write!(f, "{s} is not a final failure status"),
            UaError::Transaction(e) => write!(f, "cannot send: {e}"),
        }
    }
}

impl std::error::Error for UaError {}

/// Who waits for a client transaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Owner {
    Register(RegistrationId),
    Invite(CallHandle),
    Bye(CallHandle),
    /// CANCEL, or the BYE of a stray forked answer: nothing waits for the outcome.
    Other(CallHandle),
}

impl Owner {
    fn call(self) -> Option<CallHandle> {
        match self {
            Owner::Register(_) => None,
            Owner::Invite(c) | Owner::Bye(c) | Owner::Other(c) => Some(c),
        }
    }
}

/// A small PRNG (SplitMix64): enough for identifiers and jitter, which need to be distinct,
/// not secret (the host seeds it with OS randomness).
#[derive(Clone, Debug)]
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform enough in `0..n` (0 when `n` is 0).
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next_u64() % n
        }
    }

    pub(crate) fn hex(&mut self) -> String {
        format!("{:016x}", self.next_u64())
    }
}

/// Registrations and calls of one host, over one transaction layer.
pub struct UserAgent<A> {
    cfg: UaConfig,
    tx: TransactionLayer<A>,
    regs: Vec<Registration<A>>,
    calls: HashMap<CallHandle, call::Call<A>>,
    /// (Call-ID, our tag) -> call: matches in-dialog requests and ACKs.
    dialogs: HashMap<(String, String), CallHandle>,
    owners: HashMap<ClientTxId, Owner>,
    /// Received INVITEs -> call, for CANCEL.
    invites_in: HashMap<ServerTxId, CallHandle>,
    events: VecDeque<Event>,
    out: VecDeque<Transmit<A>>,
    /// Calls whose state changed so that they may be finished with.
    touched: Vec<CallHandle>,
    rng: Rng,
    next_call: u64,
}

impl<A: Clone> UserAgent<A> {
    pub fn new(cfg: UaConfig) -> UserAgent<A> {
        UserAgent {
            tx: TransactionLayer::new(cfg.timers),
            rng: Rng::new(cfg.seed),
            cfg,
            regs: Vec::new(),
            calls: HashMap::new(),
            dialogs: HashMap::new(),
            owners: HashMap::new(),
            invites_in: HashMap::new(),
            events: VecDeque::new(),
            out: VecDeque::new(),
            touched: Vec::new(),
            next_call: 1,
        }
    }

    pub fn config(&self) -> &UaConfig {
        &self.cfg
    }

    // ---- registrations ----

    /// Adds an account; it stays [`RegistrationState::Unregistered`] until
    /// [`UserAgent::connect`].
    pub fn add_registration(&mut self, cfg: RegistrationConfig<A>) -> RegistrationId {
        let id = RegistrationId(self.regs.len() as u32);
        let seed = self.rng.next_u64();
        self.regs.push(Registration::new(cfg, seed));
        id
    }

    pub fn registration(&self, id: RegistrationId) -> Option<&Registration<A>> {
        self.regs.get(id.0 as usize)
    }

    pub fn registrations(&self) -> impl Iterator<Item = (RegistrationId, &Registration<A>)> {
        self.regs
            .iter()
            .enumerate()
            .map(|(i, r)| (RegistrationId(i as u32), r))
    }

    /// Registers now: the start, or a restart after Failed or Disabled.
    pub fn connect(&mut self, id: RegistrationId, now: Instant) -> Result<(), UaError> {
        self.reg_step(id, now, |r| r.connect())
    }

    /// Removes the binding (REGISTER with expires 0) and stays Disabled until
    /// [`UserAgent::connect`].
    pub fn disconnect(&mut self, id: RegistrationId, now: Instant) -> Result<(), UaError> {
        self.reg_step(id, now, |r| r.disconnect(RegistrationState::Disabled))
    }

    /// Replaces the account's configuration and registers afresh (unless Disabled). The old
    /// binding is left to lapse; [`UserAgent::disconnect`] first removes it.
    pub fn reconfigure(
        &mut self,
        id: RegistrationId,
        cfg: RegistrationConfig<A>,
        now: Instant,
    ) -> Result<(), UaError> {
        self.reg_step(id, now, |r| r.reconfigure(cfg))
    }

    /// The host could not reach the registrar (`reason` in its words, e.g. "DNS: no such
    /// host"): counted as a failed attempt.
    pub fn on_transport_error(
        &mut self,
        id: RegistrationId,
        reason: &str,
        now: Instant,
    ) -> Result<(), UaError> {
        self.reg_step(id, now, |r| r.on_transport_error(reason, now))
    }

    /// Runs `f` on a registration, sends what it asks for and reports a change of state.
    fn reg_step(
        &mut self,
        id: RegistrationId,
        now: Instant,
        f: impl FnOnce(&mut Registration<A>) -> Step,
    ) -> Result<(), UaError> {
        let reg = self
            .regs
            .get_mut(id.0 as usize)
            .ok_or(UaError::UnknownRegistration(id))?;
        let before = reg.state();
        if f(reg) == Step::Send {
            self.send_register(id, now);
        }
        if let Some(reg) = self.regs.get(id.0 as usize) {
            if reg.state() != before {
                self.events.push_back(Event::Registration {
                    id,
                    state: reg.state(),
                });
            }
        }
        self.drain(now);
        Ok(())
    }

    fn send_register(&mut self, id: RegistrationId, now: Instant) {
        let Some(reg) = self.regs.get_mut(id.0 as usize) else {
            return;
        };
        let (bytes, to, reliable) = reg.build(&self.cfg.user_agent);
        let unregister = reg.is_unregistering();
        match self.tx.send_request(bytes, to, reliable, now) {
            Ok(tx) => {
                reg.pending = Some((tx, unregister));
                self.owners.insert(tx, Owner::Register(id));
            }
            Err(e) => reg.on_send_failed(format!("cannot send REGISTER: {e}"), now),
        }
    }

    // ---- input ----

    /// One received message (a datagram, or one framed from a stream). Malformed requests
    /// get a stateless 400; malformed responses are dropped.
    pub fn on_message(&mut self, bytes: &[u8], origin: Origin<A>, now: Instant) {
        let msg = match Message::parse(bytes) {
            Ok(m) => m,
            Err(e) => return self.refuse(bytes, &e.reason(), e.status(), origin),
        };
        if msg.is_request() {
            if let Err(e) = validate::request(&msg) {
                return self.refuse(bytes, &e.reason(), e.status(), origin);
            }
            match self
                .tx
                .on_request(&msg, origin.reply_to.clone(), origin.reliable, now)
            {
                Incoming::New(id) => self.on_new_request(id, &msg, origin, now),
                Incoming::Ack => self.on_ack(&msg, now),
                Incoming::Absorbed | Incoming::Invalid(_) => {}
            }
        } else if validate::response(&msg).is_ok() {
            if let Some(id) = self.tx.on_response(&msg, now) {
                self.on_client_response(id, &msg, origin.source, now);
            }
        }
        self.drain(now);
    }

    fn refuse(&mut self, bytes: &[u8], reason: &str, status: u16, origin: Origin<A>) {
        if bytes.starts_with(b"SIP/") {
            return;
        }
        if let Some(reply) = salvage_reply(bytes, status, reason, &self.cfg.user_agent) {
            self.out.push_back(Transmit {
                to: origin.reply_to,
                bytes: reply.into(),
            });
        }
    }

    fn on_client_response(
        &mut self,
        id: ClientTxId,
        msg: &Message<'_>,
        source: SocketAddr,
        now: Instant,
    ) {
        let Some(owner) = self.owners.get(&id).copied() else {
            return;
        };
        match owner {
            Owner::Register(r) => {
                let _ = self.reg_step(r, now, |reg| {
                    if reg.pending.map(|p| p.0) == Some(id) {
                        reg.on_response(msg, source, now)
                    } else {
                        Step::Idle
                    }
                });
            }
            Owner::Invite(c) => self.invite_response(c, id, msg, now),
            Owner::Bye(c) => self.bye_response(c, msg, now),
            Owner::Other(_) => {}
        }
    }

    /// A response to a request received, built from it; `to_tag` is ours.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn respond(
        &mut self,
        tx: ServerTxId,
        req: &Message<'_>,
        source: SocketAddr,
        status: u16,
        reason: &str,
        to_tag: Option<&str>,
        headers: &[(&str, &str)],
        sdp: Option<&str>,
        now: Instant,
    ) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(768);
        let mut b = ResponseBuilder::new(
            &mut bytes,
            req,
            status,
            reason,
            ReplyContext {
                source: Some(source),
                to_tag,
            },
        );
        for (n, v) in headers {
            b = b.header(n, v);
        }
        b = b.header("Server", &self.cfg.user_agent);
        match sdp {
            Some(s) => b.finish(Some("application/sdp"), s.as_bytes()),
            None => b.finish(None, b""),
        }
        // Fails only when the transaction is gone (it timed out): nothing left to answer.
        let _ = self.tx.respond(tx, status, bytes.clone(), now);
        bytes
    }

    // ---- output and time ----

    pub fn poll_transmit(&mut self) -> Option<Transmit<A>> {
        self.out.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`UserAgent::handle_timeout`] should be called next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let regs = self.regs.iter().filter_map(|r| r.poll_timeout()).min();
        [self.tx.next_deadline(), regs, self.call_deadline()]
            .into_iter()
            .flatten()
            .min()
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        self.tx.on_timeout(now);
        self.drain(now);
        for i in 0..self.regs.len() {
            if self.regs[i].poll_timeout().is_some_and(|t| t <= now) {
                let _ = self.reg_step(RegistrationId(i as u32), now, |r| r.handle_timeout(now));
            }
        }
        self.call_timers(now);
        self.drain(now);
    }

    /// Unregisters every account and ends every call (cause 16, normal clearing). The host
    /// keeps pumping until [`UserAgent::is_idle`] or its own grace time runs out.
    pub fn shutdown(&mut self, now: Instant) {
        for i in 0..self.regs.len() {
            let _ = self.reg_step(RegistrationId(i as u32), now, |r| {
                r.disconnect(RegistrationState::Disabled)
            });
        }
        let live: Vec<CallHandle> = self
            .calls
            .iter()
            .filter(|(_, c)| !c.is_over())
            .map(|(h, _)| *h)
            .collect();
        for h in live {
            let _ = self.hangup(h, Some(16), now);
        }
        self.drain(now);
    }

    /// Nothing left in flight: no transaction, no call, nothing to send.
    pub fn is_idle(&self) -> bool {
        self.tx.is_empty() && self.calls.is_empty() && self.out.is_empty()
    }

    /// Handles what the transaction layer reported, and finishes calls that are done.
    fn drain(&mut self, now: Instant) {
        while let Some(a) = self.tx.poll_action() {
            match a {
                Action::Send { to, bytes, .. } => self.out.push_back(Transmit { to, bytes }),
                Action::Timeout {
                    id: TxId::Client(id),
                } => self.client_failed(id, false, now),
                Action::TransportError {
                    id: TxId::Client(id),
                } => self.client_failed(id, true, now),
                Action::ProvisionalTimeout { id } => {
                    if let Some(Owner::Invite(c)) = self.owners.get(&id).copied() {
                        self.ringing_too_long(c, now);
                    }
                }
                Action::Terminated {
                    id: TxId::Client(id),
                } => {
                    if let Some(c) = self.owners.remove(&id).and_then(Owner::call) {
                        if let Some(call) = self.calls.get_mut(&c) {
                            call.live = call.live.saturating_sub(1);
                        }
                        self.touched.push(c);
                    }
                }
                Action::Terminated {
                    id: TxId::Server(id),
                } => {
                    self.invites_in.remove(&id);
                }
                // Timer H: the caller never acknowledged our failure response; the call has
                // ended already.
                Action::Timeout { .. } | Action::TransportError { .. } => {}
            }
        }
        for h in std::mem::take(&mut self.touched) {
            self.reap(h);
        }
    }

    fn client_failed(&mut self, id: ClientTxId, transport: bool, now: Instant) {
        let Some(owner) = self.owners.get(&id).copied() else {
            return;
        };
        match owner {
            Owner::Register(r) => {
                let after = self.tx.config().transaction_timeout();
                let _ = self.reg_step(r, now, |reg| {
                    if reg.pending.map(|p| p.0) != Some(id) {
                        Step::Idle
                    } else if transport {
                        reg.on_transport_error("cannot send REGISTER", now)
                    } else {
                        reg.on_no_answer(after, now)
                    }
                });
            }
            Owner::Invite(c) => self.invite_failed(c, id, transport),
            Owner::Bye(_) | Owner::Other(_) => {}
        }
    }
}

#[cfg(test)]
mod tests;
