//! Call legs of the user agent, both directions (RFC 3261 sections 12 to 15).
//!
//! Outgoing: INVITE (answered once more with digest credentials after a 401/407), provisional
//! responses with or without SDP, the ACK of a 2xx built here (the transaction acknowledges
//! failures itself), CANCEL before the answer, BYE. Incoming: INVITE, then 180/183/200 or a
//! failure at the host's command; the 2xx is retransmitted until its ACK; CANCEL, BYE,
//! re-INVITE and UPDATE are answered here. Reliable provisional responses (100rel) are neither
//! offered nor accepted: an INVITE that requires them gets 420.
//!
//! Every request of a dialog goes to the address the dialog was set up with (the host's next
//! hop: the switch, or an outbound proxy); a Record-Route set is honoured in Route headers.
//!
//! `Reason: Q.850;cause=N` (RFC 3326) travels both ways: the host's cause goes into BYE,
//! CANCEL and failure responses, and a received one comes out in [`super::Event::Ended`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::digest::{ChallengeVerdict, DigestClient};
use super::{Event, Owner, UaError, UserAgent, ALLOW};
use crate::call::cause;
use crate::call::dialog::Dialog;
use crate::endpoint::{Origin, Transmit};
use crate::registrar::Transport;
use crate::sip::via::split_host_port;
use crate::sip::{lex, HeaderName, Message, Method, NameAddr, RequestBuilder, Uri};
use crate::transaction::{ClientTxId, ServerTxId};

/// The host's handle of a call, unique within its [`UserAgent`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CallHandle(pub(crate) u64);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    Outgoing,
    Incoming,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CallState {
    /// Outgoing: INVITE sent, no provisional answer yet. Incoming: not yet rung.
    Calling,
    /// A provisional response was received (outgoing) or sent (incoming).
    Early,
    /// Incoming: answered, waiting for the ACK.
    Answering,
    Confirmed,
    /// Over for the host (an [`super::Event::Ended`] was reported); the protocol may still
    /// be finishing (a CANCEL, a BYE, absorbing retransmissions).
    Ended,
}

/// Digest credentials for calls through a server that challenges them.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

/// Without the password, which must not reach logs.
impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// An outgoing call.
#[derive(Clone, Debug)]
pub struct InviteParams<A> {
    /// The Request-URI.
    pub target: String,
    /// Our URI (From), e.g. `sip:300@mgw.test`; its user part is also the Contact's.
    pub from: String,
    pub from_display: Option<String>,
    /// The callee's URI (To); usually the target.
    pub to: String,
    /// The offer.
    pub sdp: String,
    pub credentials: Option<Credentials>,
    /// Where the INVITE and every later request of the call go.
    pub destination: A,
    pub transport: Transport,
    /// Further header fields, written as given (e.g. P-Asserted-Identity).
    pub headers: Vec<(String, String)>,
}

impl<A> InviteParams<A> {
    /// A call to `target` (also To) over UDP, without credentials.
    pub fn new(target: &str, from: &str, sdp: &str, destination: A) -> Self {
        InviteParams {
            target: target.to_string(),
            from: from.to_string(),
            from_display: None,
            to: target.to_string(),
            sdp: sdp.to_string(),
            credentials: None,
            destination,
            transport: Transport::Udp,
            headers: Vec::new(),
        }
    }
}

/// How a call ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ending {
    /// The host ended it: hangup, reject or shutdown.
    Local,
    /// The other side sent BYE.
    Bye,
    /// The caller cancelled before the answer.
    Cancelled,
    /// Our INVITE got this final failure (including 401/407 that could not be answered,
    /// whose reason then says why).
    Refused { status: u16, reason: String },
    /// No final response to our INVITE, ringing beyond Timer C, or no ACK for our answer.
    Timeout,
    /// The INVITE could not be sent.
    TransportError,
}

/// A 2xx of ours, sent again until its ACK (RFC 3261 section 13.3.1.4).
#[derive(Debug)]
struct Retransmit {
    /// The CSeq of the INVITE answered: only its ACK stops the retransmissions.
    cseq: u32,
    bytes: Arc<[u8]>,
    interval: Duration,
    next: Instant,
    give_up: Instant,
}

#[derive(Debug)]
pub(crate) struct Call<A> {
    direction: Direction,
    state: CallState,
    dialog: Dialog<A>,
    contact: String,
    local_sdp: Option<String>,
    /// The Q.850 cause the host gave, for a BYE or CANCEL still to be sent.
    cause: Option<u8>,
    /// Outgoing: the Request-URI, for a retry after a challenge.
    target: String,
    /// Outgoing: the last INVITE sent and its transaction.
    invite: Vec<u8>,
    invite_tx: Option<ClientTxId>,
    digest: Option<DigestClient>,
    /// The credentials of the last INVITE; its ACK carries the same (RFC 3261 22.1).
    auth: Vec<(&'static str, String)>,
    extra: Vec<(String, String)>,
    provisional: bool,
    /// Hung up before any provisional response: the CANCEL waits for one (RFC 3261 9.1).
    cancel_pending: bool,
    /// The ACK sent for each answering dialog (by To tag), sent again for each 2xx
    /// retransmission.
    acks: Vec<(String, Arc<[u8]>)>,
    /// Incoming: the INVITE while unanswered, its transaction and where it came from.
    request: Vec<u8>,
    server_tx: Option<ServerTxId>,
    source: Option<SocketAddr>,
    retransmit: Option<Retransmit>,
    /// Our 2xx carries an offer (the re-INVITE had none): the ACK brings the answer.
    offer_in_2xx: bool,
    /// Hung up while our 2xx was unacknowledged: BYE once the ACK comes (RFC 3261 15).
    bye_after_ack: bool,
    /// [`Event::Ended`] was reported.
    reported: bool,
    /// A BYE of ours went out (a challenge to it may be answered once).
    bye_sent: bool,
    /// Client transactions still alive.
    pub(crate) live: u32,
}

impl<A> Call<A> {
    pub(crate) fn is_over(&self) -> bool {
        self.reported
    }

    fn unanswered_incoming(&self) -> bool {
        self.direction == Direction::Incoming
            && matches!(self.state, CallState::Calling | CallState::Early)
    }
}

/// The SDP of a message, if its body is one.
fn sdp_of(msg: &Message<'_>) -> Option<String> {
    if msg.body.is_empty() {
        return None;
    }
    let is_sdp = msg.header(HeaderName::ContentType).is_none_or(|ct| {
        ct.split(';')
            .next()
            .is_some_and(|t| lex::trim(t).eq_ignore_ascii_case("application/sdp"))
    });
    is_sdp.then(|| String::from_utf8_lossy(msg.body).into_owned())
}

fn q850_of(msg: &Message<'_>) -> Option<u8> {
    msg.all(HeaderName::Reason).find_map(cause::parse_reason)
}

fn quoted(s: &str) -> String {
    let escaped: String = s
        .chars()
        .flat_map(|c| match c {
            '"' | '\\' => vec!['\\', c],
            _ => vec![c],
        })
        .collect();
    format!("\"{escaped}\"")
}

impl<A: Clone> UserAgent<A> {
    fn via(&mut self, reliable: bool) -> String {
        let proto = if reliable { "TCP" } else { "UDP" };
        format!(
            "SIP/2.0/{proto} {};branch=z9hG4bK{};rport",
            self.cfg.local,
            self.rng.hex()
        )
    }

    fn contact_for(&self, user: Option<&str>, reliable: bool) -> String {
        let t = if reliable { ";transport=tcp" } else { "" };
        match user.filter(|u| !u.is_empty()) {
            Some(u) => format!("<sip:{u}@{}{t}>", self.cfg.local),
            None => format!("<sip:{}{t}>", self.cfg.local),
        }
    }

    fn new_handle(&mut self) -> CallHandle {
        let h = CallHandle(self.next_call);
        self.next_call += 1;
        h
    }

    /// The state of a call the host still holds.
    pub fn call_state(&self, call: CallHandle) -> Option<CallState> {
        self.calls.get(&call).map(|c| c.state)
    }

    /// Calls not yet ended.
    pub fn active_calls(&self) -> usize {
        self.calls.values().filter(|c| !c.reported).count()
    }

    fn live_call(&mut self, call: CallHandle) -> Result<&mut Call<A>, UaError> {
        self.calls
            .get_mut(&call)
            .filter(|c| !c.reported)
            .ok_or(UaError::UnknownCall(call))
    }

    /// The SDP used to answer later offers (re-INVITE, UPDATE) and in a 200 without one.
    pub fn set_local_sdp(&mut self, call: CallHandle, sdp: &str) -> Result<(), UaError> {
        self.live_call(call)?.local_sdp = Some(sdp.to_string());
        Ok(())
    }

    // ---- outgoing calls ----

    /// Places a call: sends the INVITE with the offer.
    pub fn invite(&mut self, p: InviteParams<A>, now: Instant) -> Result<CallHandle, UaError> {
        Uri::parse(&p.target).map_err(|_| UaError::BadUri(p.target.clone()))?;
        let from = Uri::parse(&p.from).map_err(|_| UaError::BadUri(p.from.clone()))?;
        Uri::parse(&p.to).map_err(|_| UaError::BadUri(p.to.clone()))?;
        let reliable = p.transport == Transport::Tcp;
        let host = split_host_port(&self.cfg.local).map_or("ua", |(h, _)| h);
        let call_id = format!("{}@{host}", self.rng.hex());
        let tag = self.rng.hex();
        let local_uri = match &p.from_display {
            Some(d) => format!("{} <{}>", quoted(d), p.from),
            None => format!("<{}>", p.from),
        };
        let contact = self.contact_for(from.user, reliable);
        let digest = p
            .credentials
            .as_ref()
            .map(|c| DigestClient::new(&c.username, &c.password, self.rng.next_u64()));
        let dialog = Dialog {
            call_id: call_id.clone(),
            local_tag: tag.clone(),
            remote_tag: String::new(),
            local_uri,
            remote_uri: format!("<{}>", p.to),
            remote_target: p.target.clone(),
            route_set: Vec::new(),
            local_cseq: 0,
            remote_cseq: None,
            peer: p.destination,
            reliable,
            // The UA's own Via and Contact come from its config, one address.
            v6: false,
        };
        let handle = self.new_handle();
        self.calls.insert(
            handle,
            Call {
                direction: Direction::Outgoing,
                state: CallState::Calling,
                dialog,
                contact,
                local_sdp: Some(p.sdp),
                cause: None,
                target: p.target,
                invite: Vec::new(),
                invite_tx: None,
                digest,
                auth: Vec::new(),
                extra: p.headers,
                provisional: false,
                cancel_pending: false,
                acks: Vec::new(),
                request: Vec::new(),
                server_tx: None,
                source: None,
                retransmit: None,
                offer_in_2xx: false,
                bye_after_ack: false,
                reported: false,
                bye_sent: false,
                live: 0,
            },
        );
        self.dialogs.insert((call_id, tag), handle);
        if let Err(e) = self.send_invite(handle, now) {
            self.forget(handle);
            return Err(UaError::Transaction(e));
        }
        self.drain(now);
        Ok(handle)
    }

    fn send_invite(
        &mut self,
        handle: CallHandle,
        now: Instant,
    ) -> Result<(), crate::transaction::TxError> {
        let Some(reliable) = self.calls.get(&handle).map(|c| c.dialog.reliable) else {
            return Ok(());
        };
        let via = self.via(reliable);
        let ua = self.cfg.user_agent.clone();
        let Some(call) = self.calls.get_mut(&handle) else {
            return Ok(());
        };
        let auth = match call.digest.as_mut() {
            Some(d) => d.headers("INVITE", &call.target),
            None => Vec::new(),
        };
        let mut extra: Vec<(&str, &str)> = vec![("Allow", ALLOW), ("User-Agent", &ua)];
        extra.extend(auth.iter().map(|(n, v)| (*n, v.as_str())));
        extra.extend(call.extra.iter().map(|(n, v)| (n.as_str(), v.as_str())));
        let sdp = call.local_sdp.clone().unwrap_or_default();
        let mut buf = Vec::with_capacity(1024);
        call.dialog.request(
            &mut buf,
            "INVITE",
            &via,
            &call.contact,
            &extra,
            Some(("application/sdp", sdp.as_bytes())),
        );
        call.invite = buf.clone();
        call.auth = auth;
        call.provisional = false;
        let to = call.dialog.peer.clone();
        let id = self.tx.send_request(buf, to, reliable, now)?;
        if let Some(call) = self.calls.get_mut(&handle) {
            call.invite_tx = Some(id);
            call.live += 1;
        }
        self.owners.insert(id, Owner::Invite(handle));
        Ok(())
    }

    pub(crate) fn invite_response(
        &mut self,
        handle: CallHandle,
        id: ClientTxId,
        msg: &Message<'_>,
        now: Instant,
    ) {
        let Some(status) = msg.status() else { return };
        let Some(call) = self.calls.get_mut(&handle) else {
            return;
        };
        match status {
            100..=199 => {
                if call.invite_tx != Some(id) {
                    return;
                }
                // Any provisional response, 100 included, lets a CANCEL through (RFC 3261 9.1).
                call.provisional = true;
                if call.cancel_pending {
                    call.cancel_pending = false;
                    return self.send_cancel(handle, now);
                }
                if status == 100 || call.reported || call.state == CallState::Confirmed {
                    return;
                }
                if msg.to().and_then(|t| t.tag()).is_some() {
                    call.dialog.confirm_as_uac(msg);
                }
                call.state = CallState::Early;
                let sdp = sdp_of(msg);
                self.events.push_back(match status {
                    180..=182 => Event::Ringing { call: handle, sdp },
                    _ => Event::Progress {
                        call: handle,
                        status,
                        sdp,
                    },
                });
            }
            200..=299 => self.invite_2xx(handle, msg, now),
            _ => {
                if call.invite_tx != Some(id) {
                    return;
                }
                call.invite_tx = None;
                let challenged = (status == 401 || status == 407)
                    && !call.reported
                    && !call.cancel_pending
                    && call.digest.is_some();
                if challenged {
                    let verdict = match call.digest.as_mut() {
                        Some(d) => d.on_challenge(msg),
                        None => return,
                    };
                    let reason = match verdict {
                        ChallengeVerdict::Retry => {
                            // A new attempt: the early dialog of a challenge is no dialog.
                            call.dialog.remote_tag.clear();
                            call.dialog.remote_target = call.target.clone();
                            call.dialog.route_set.clear();
                            if self.send_invite(handle, now).is_err() {
                                self.end(handle, Ending::TransportError, None);
                            }
                            return;
                        }
                        ChallengeVerdict::Rejected { .. } => "wrong password or user".to_string(),
                        ChallengeVerdict::Unusable(e) => e.to_string(),
                    };
                    return self.end(handle, Ending::Refused { status, reason }, q850_of(msg));
                }
                call.cancel_pending = false;
                let reason = msg.reason().unwrap_or("").to_string();
                self.end(handle, Ending::Refused { status, reason }, q850_of(msg));
            }
        }
    }

    /// A 2xx to our INVITE: acknowledged in any case; the first answer confirms the call, a
    /// second dialog (a forked answer) or an answer after our hangup is ended at once.
    fn invite_2xx(&mut self, handle: CallHandle, msg: &Message<'_>, now: Instant) {
        let to_tag = msg.to().and_then(|t| t.tag()).unwrap_or("").to_string();
        let Some(reliable) = self.calls.get(&handle).map(|c| c.dialog.reliable) else {
            return;
        };
        let via = self.via(reliable);
        let Some(call) = self.calls.get_mut(&handle) else {
            return;
        };
        if let Some((_, ack)) = call.acks.iter().find(|(t, _)| *t == to_tag) {
            let (to, bytes) = (call.dialog.peer.clone(), Arc::clone(ack));
            self.out.push_back(Transmit { to, bytes });
            return;
        }
        let first = call.acks.is_empty();
        let mut d = call.dialog.clone();
        d.confirm_as_uac(msg);
        if let Some(c) = msg.cseq() {
            d.local_cseq = c.seq;
        }
        let auth: Vec<(&str, &str)> = call.auth.iter().map(|(n, v)| (*n, v.as_str())).collect();
        let mut buf = Vec::with_capacity(512);
        d.request(&mut buf, "ACK", &via, "", &auth, None);
        let ack: Arc<[u8]> = buf.into();
        call.acks.push((to_tag, Arc::clone(&ack)));
        self.out.push_back(Transmit {
            to: d.peer.clone(),
            bytes: ack,
        });
        if !first {
            return self.send_bye_on(handle, d, Some(16), Owner::Other(handle), now);
        }
        call.dialog = d;
        call.cancel_pending = false;
        if call.reported {
            // We hung up before the answer crossed our CANCEL.
            let cause = call.cause;
            let d = call.dialog.clone();
            return self.send_bye_on(handle, d, cause, Owner::Bye(handle), now);
        }
        call.state = CallState::Confirmed;
        self.events.push_back(Event::Answered {
            call: handle,
            sdp: sdp_of(msg),
        });
    }

    pub(crate) fn invite_failed(&mut self, handle: CallHandle, id: ClientTxId, transport: bool) {
        let Some(call) = self.calls.get_mut(&handle) else {
            return;
        };
        if call.invite_tx != Some(id) {
            return;
        }
        call.invite_tx = None;
        call.cancel_pending = false;
        let ending = if transport {
            Ending::TransportError
        } else {
            Ending::Timeout
        };
        // A call that was answered does not depend on its INVITE transaction any more.
        if call.state != CallState::Confirmed {
            self.end(handle, ending, None);
        }
    }

    /// Timer C: ringing without an answer for too long.
    pub(crate) fn ringing_too_long(&mut self, handle: CallHandle, now: Instant) {
        if self.calls.get(&handle).is_some_and(|c| !c.reported) {
            self.send_cancel(handle, now);
            self.end(handle, Ending::Timeout, None);
        }
    }

    fn send_cancel(&mut self, handle: CallHandle, now: Instant) {
        let Some(call) = self.calls.get(&handle) else {
            return;
        };
        let Ok(inv) = Message::parse(&call.invite) else {
            return;
        };
        let (Some(line), Some(via), Some(from), Some(to), Some(call_id), Some(cseq)) = (
            inv.request_uri(),
            inv.list(HeaderName::Via).next(),
            inv.header(HeaderName::From),
            inv.header(HeaderName::To),
            inv.call_id(),
            inv.cseq(),
        ) else {
            return;
        };
        // RFC 3261 9.1: Request-URI, Call-ID, To, From, CSeq number and top Via as in the
        // INVITE; built here rather than with `cancel_for` to add the Reason.
        let mut buf = Vec::with_capacity(512);
        let mut b = RequestBuilder::new(&mut buf, "CANCEL", line.raw)
            .header("Via", via)
            .header("Max-Forwards", "70")
            .header("From", from)
            .header("To", to)
            .header("Call-ID", call_id)
            .header("CSeq", &format!("{} CANCEL", cseq.seq));
        for r in inv.all(HeaderName::Route) {
            b = b.header("Route", r);
        }
        let reason = call.cause.map(cause::reason_header);
        if let Some(r) = &reason {
            b = b.header("Reason", r);
        }
        b.finish(None, b"");
        let (to, reliable) = (call.dialog.peer.clone(), call.dialog.reliable);
        if let Ok(id) = self.tx.send_request(buf, to, reliable, now) {
            self.owners.insert(id, Owner::Other(handle));
            if let Some(c) = self.calls.get_mut(&handle) {
                c.live += 1;
            }
        }
    }

    // ---- ending ----

    /// Ends a call with an optional Q.850 cause: CANCEL or BYE for an outgoing call, a failure
    /// response (the cause's SIP status, RFC 3398) or BYE for an incoming one.
    pub fn hangup(
        &mut self,
        call: CallHandle,
        q850: Option<u8>,
        now: Instant,
    ) -> Result<(), UaError> {
        let c = self.live_call(call)?;
        c.cause = q850;
        match (c.direction, c.state) {
            (Direction::Incoming, CallState::Calling | CallState::Early) => {
                let (status, reason) = cause::status_of_q850(q850.unwrap_or(16));
                return self.reject(call, status, reason, q850, now);
            }
            (Direction::Outgoing, CallState::Calling | CallState::Early) => {
                if c.provisional {
                    self.send_cancel(call, now);
                } else {
                    c.cancel_pending = true;
                }
            }
            (_, CallState::Answering) => c.bye_after_ack = true,
            (_, CallState::Confirmed) => {
                let d = c.dialog.clone();
                self.send_bye_on(call, d, q850, Owner::Bye(call), now);
            }
            (_, CallState::Ended) => {}
        }
        self.end(call, Ending::Local, q850);
        self.drain(now);
        Ok(())
    }

    /// Sends a BYE in dialog `d` (the call's own, or a stray forked one), with the cause in a
    /// Reason header and credentials if the call has answered a challenge.
    fn send_bye_on(
        &mut self,
        handle: CallHandle,
        mut d: Dialog<A>,
        q850: Option<u8>,
        owner: Owner,
        now: Instant,
    ) {
        let via = self.via(d.reliable);
        let own = owner == Owner::Bye(handle);
        let auth = match self.calls.get_mut(&handle) {
            Some(c) if own => {
                let first = !std::mem::replace(&mut c.bye_sent, true);
                match c.digest.as_mut() {
                    Some(digest) => {
                        // The INVITE's challenges were used up in its own exchange.
                        if first {
                            digest.begin_exchange();
                        }
                        digest.headers("BYE", &d.remote_target)
                    }
                    None => Vec::new(),
                }
            }
            _ => Vec::new(),
        };
        let reason = q850.map(cause::reason_header);
        let mut extra: Vec<(&str, &str)> = auth.iter().map(|(n, v)| (*n, v.as_str())).collect();
        if let Some(r) = &reason {
            extra.push(("Reason", r));
        }
        let mut buf = Vec::with_capacity(512);
        d.request(&mut buf, "BYE", &via, "", &extra, None);
        let (to, reliable) = (d.peer.clone(), d.reliable);
        if let Some(c) = self.calls.get_mut(&handle) {
            if own {
                c.dialog.local_cseq = d.local_cseq;
            }
        }
        if let Ok(id) = self.tx.send_request(buf, to, reliable, now) {
            self.owners.insert(id, owner);
            if let Some(c) = self.calls.get_mut(&handle) {
                c.live += 1;
            }
        }
    }

    /// A BYE challenged by a server that authenticates in-dialog requests gets one retry.
    pub(crate) fn bye_response(&mut self, handle: CallHandle, msg: &Message<'_>, now: Instant) {
        if !matches!(msg.status(), Some(401 | 407)) {
            return;
        }
        let Some(call) = self.calls.get_mut(&handle) else {
            return;
        };
        let Some(digest) = call.digest.as_mut() else {
            return;
        };
        if digest.on_challenge(msg) == ChallengeVerdict::Retry {
            let (d, cause) = (call.dialog.clone(), call.cause);
            self.send_bye_on(handle, d, cause, Owner::Bye(handle), now);
        }
    }

    /// Reports the end once; the call lingers until its protocol work is done.
    fn end(&mut self, handle: CallHandle, ending: Ending, q850: Option<u8>) {
        let Some(call) = self.calls.get_mut(&handle) else {
            return;
        };
        if !call.reported {
            call.reported = true;
            call.state = CallState::Ended;
            self.events.push_back(Event::Ended {
                call: handle,
                ending,
                q850,
            });
        }
        self.touched.push(handle);
    }

    /// Forgets a call that is over and has nothing left to do.
    pub(crate) fn reap(&mut self, handle: CallHandle) {
        let done = self.calls.get(&handle).is_some_and(|c| {
            c.reported
                && c.live == 0
                && c.retransmit.is_none()
                && !c.cancel_pending
                && !c.bye_after_ack
        });
        if done {
            self.forget(handle);
        }
    }

    fn forget(&mut self, handle: CallHandle) {
        if let Some(c) = self.calls.remove(&handle) {
            self.dialogs
                .remove(&(c.dialog.call_id.clone(), c.dialog.local_tag.clone()));
            self.invites_in.retain(|_, h| *h != handle);
        }
    }

    // ---- incoming calls ----

    /// Rings: 180 Ringing.
    pub fn ringing(&mut self, call: CallHandle, now: Instant) -> Result<(), UaError> {
        self.provisional(call, 180, "Ringing", None, now)
    }

    /// Early media: 183 Session Progress with SDP.
    pub fn progress(&mut self, call: CallHandle, sdp: &str, now: Instant) -> Result<(), UaError> {
        self.provisional(call, 183, "Session Progress", Some(sdp), now)
    }

    fn provisional(
        &mut self,
        call: CallHandle,
        status: u16,
        reason: &str,
        sdp: Option<&str>,
        now: Instant,
    ) -> Result<(), UaError> {
        let c = self.live_call(call)?;
        if !c.unanswered_incoming() {
            return Err(UaError::WrongState {
                call,
                state: c.state,
            });
        }
        c.state = CallState::Early;
        if let Some(s) = sdp {
            c.local_sdp = Some(s.to_string());
        }
        self.answer_invite(call, status, reason, &[], sdp, now);
        self.drain(now);
        Ok(())
    }

    /// Answers: 200 OK with `sdp`, sent again until the ACK comes.
    pub fn answer(&mut self, call: CallHandle, sdp: &str, now: Instant) -> Result<(), UaError> {
        let t1 = self.tx.config().t1;
        let c = self.live_call(call)?;
        if !c.unanswered_incoming() {
            return Err(UaError::WrongState {
                call,
                state: c.state,
            });
        }
        c.local_sdp = Some(sdp.to_string());
        c.state = CallState::Answering;
        let Some(bytes) = self.answer_invite(call, 200, "OK", &[], Some(sdp), now) else {
            return Ok(());
        };
        if let Some(c) = self.calls.get_mut(&call) {
            c.retransmit = Some(Retransmit {
                cseq: c.dialog.remote_cseq.unwrap_or(0),
                bytes: bytes.into(),
                interval: t1,
                next: now + t1,
                give_up: now + t1 * 64,
            });
            c.request = Vec::new();
            c.server_tx = None;
        }
        self.drain(now);
        Ok(())
    }

    /// Refuses an incoming call with a final status (300 to 699) and an optional cause.
    pub fn reject(
        &mut self,
        call: CallHandle,
        status: u16,
        reason: &str,
        q850: Option<u8>,
        now: Instant,
    ) -> Result<(), UaError> {
        if !(300..=699).contains(&status) {
            return Err(UaError::BadStatus(status));
        }
        let c = self.live_call(call)?;
        if !c.unanswered_incoming() {
            return Err(UaError::WrongState {
                call,
                state: c.state,
            });
        }
        let header = q850.map(cause::reason_header);
        let headers: Vec<(&str, &str)> = header.iter().map(|r| ("Reason", r.as_str())).collect();
        let reason = if reason.is_empty() {
            "Rejected"
        } else {
            reason
        };
        self.answer_invite(call, status, reason, &headers, None, now);
        if let Some(c) = self.calls.get_mut(&call) {
            c.server_tx = None;
        }
        self.end(call, Ending::Local, q850);
        self.drain(now);
        Ok(())
    }

    /// A response to the pending incoming INVITE; returns its bytes.
    fn answer_invite(
        &mut self,
        call: CallHandle,
        status: u16,
        reason: &str,
        headers: &[(&str, &str)],
        sdp: Option<&str>,
        now: Instant,
    ) -> Option<Vec<u8>> {
        let c = self.calls.get(&call)?;
        let (tx, source) = (c.server_tx?, c.source?);
        let request = c.request.clone();
        let (tag, contact) = (c.dialog.local_tag.clone(), c.contact.clone());
        let msg = Message::parse(&request).ok()?;
        let mut all: Vec<(&str, &str)> = Vec::new();
        if status < 300 {
            all.push(("Contact", &contact));
            all.push(("Allow", ALLOW));
        }
        all.extend_from_slice(headers);
        Some(self.respond(tx, &msg, source, status, reason, Some(&tag), &all, sdp, now))
    }

    pub(crate) fn on_new_request(
        &mut self,
        id: ServerTxId,
        msg: &Message<'_>,
        origin: Origin<A>,
        now: Instant,
    ) {
        let Some(method) = msg.method() else { return };
        let src = origin.source;
        let to_tag = msg.to().and_then(|t| t.tag());
        if let Some(tag) = to_tag {
            let key = (msg.call_id().unwrap_or("").to_string(), tag.to_string());
            return match self.dialogs.get(&key).copied() {
                Some(h) => self.in_dialog(h, id, method, msg, src, now),
                None => {
                    self.respond_plain(id, msg, src, 481, "Call/Transaction Does Not Exist", now)
                }
            };
        }
        match method {
            Method::Invite => self.incoming_invite(id, msg, origin, now),
            Method::Cancel => self.incoming_cancel(id, msg, src, now),
            Method::Options => {
                self.respond(
                    id,
                    msg,
                    src,
                    200,
                    "OK",
                    None,
                    &[("Allow", ALLOW)],
                    None,
                    now,
                );
            }
            Method::Bye => {
                self.respond_plain(id, msg, src, 481, "Call/Transaction Does Not Exist", now)
            }
            _ => {
                self.respond(
                    id,
                    msg,
                    src,
                    405,
                    "Method Not Allowed",
                    None,
                    &[("Allow", ALLOW)],
                    None,
                    now,
                );
            }
        }
    }

    fn respond_plain(
        &mut self,
        id: ServerTxId,
        msg: &Message<'_>,
        src: SocketAddr,
        status: u16,
        reason: &str,
        now: Instant,
    ) {
        self.respond(id, msg, src, status, reason, None, &[], None, now);
    }

    fn incoming_invite(
        &mut self,
        id: ServerTxId,
        msg: &Message<'_>,
        origin: Origin<A>,
        now: Instant,
    ) {
        let src = origin.source;
        let required: Vec<&str> = msg
            .list(HeaderName::Require)
            .map(lex::trim)
            .filter(|t| !t.is_empty())
            .collect();
        if !required.is_empty() {
            let list = required.join(", ");
            self.respond(
                id,
                msg,
                src,
                420,
                "Bad Extension",
                None,
                &[("Unsupported", &list)],
                None,
                now,
            );
            return;
        }
        if !msg.body.is_empty() && sdp_of(msg).is_none() {
            self.respond(
                id,
                msg,
                src,
                415,
                "Unsupported Media Type",
                None,
                &[("Accept", "application/sdp")],
                None,
                now,
            );
            return;
        }
        let tag = self.rng.hex();
        let Some(dialog) = Dialog::as_uas(msg, &tag, origin.reply_to.clone(), origin.reliable)
        else {
            self.respond(id, msg, src, 400, "Missing From tag", None, &[], None, now);
            return;
        };
        let (from, to) = (msg.from(), msg.to());
        let to_user = to
            .and_then(|t| t.uri.user_decoded())
            .or_else(|| msg.request_uri().and_then(|u| u.user_decoded()))
            .map(|u| u.into_owned());
        let contact = self.contact_for(to.and_then(|t| t.uri.user), origin.reliable);
        let handle = self.new_handle();
        let key = (dialog.call_id.clone(), tag.clone());
        self.calls.insert(
            handle,
            Call {
                direction: Direction::Incoming,
                state: CallState::Calling,
                dialog,
                contact,
                local_sdp: None,
                cause: None,
                target: String::new(),
                invite: Vec::new(),
                invite_tx: None,
                digest: None,
                auth: Vec::new(),
                extra: Vec::new(),
                provisional: false,
                cancel_pending: false,
                acks: Vec::new(),
                request: msg.raw.to_vec(),
                server_tx: Some(id),
                source: Some(src),
                retransmit: None,
                offer_in_2xx: false,
                bye_after_ack: false,
                reported: false,
                bye_sent: false,
                live: 0,
            },
        );
        self.dialogs.insert(key, handle);
        self.invites_in.insert(id, handle);
        // At once: the host may take a while to ring, and 100 stops the retransmissions.
        self.respond(id, msg, src, 100, "Trying", None, &[], None, now);
        self.events.push_back(Event::Incoming {
            call: handle,
            from: from.map(|f| f.uri.raw.to_string()).unwrap_or_default(),
            from_user: from
                .and_then(|f| f.uri.user_decoded())
                .map(|u| u.into_owned()),
            from_display: from.and_then(|f| f.display_unquoted()).map(str::to_string),
            to_user,
            sdp: sdp_of(msg),
        });
    }

    fn incoming_cancel(
        &mut self,
        id: ServerTxId,
        msg: &Message<'_>,
        src: SocketAddr,
        now: Instant,
    ) {
        let Some(invite) = self.tx.invite_for_cancel(msg) else {
            self.respond(
                id,
                msg,
                src,
                481,
                "Call/Transaction Does Not Exist",
                None,
                &[],
                None,
                now,
            );
            return;
        };
        self.respond(id, msg, src, 200, "OK", None, &[], None, now);
        let Some(handle) = self.invites_in.get(&invite).copied() else {
            return;
        };
        if self
            .calls
            .get(&handle)
            .is_some_and(|c| c.unanswered_incoming() && !c.reported)
        {
            self.answer_invite(handle, 487, "Request Terminated", &[], None, now);
            if let Some(c) = self.calls.get_mut(&handle) {
                c.server_tx = None;
            }
            self.end(handle, Ending::Cancelled, q850_of(msg));
        }
    }

    fn in_dialog(
        &mut self,
        handle: CallHandle,
        id: ServerTxId,
        method: Method<'_>,
        msg: &Message<'_>,
        src: SocketAddr,
        now: Instant,
    ) {
        let Some(call) = self.calls.get_mut(&handle) else {
            return;
        };
        let cseq = msg.cseq().map_or(0, |c| c.seq);
        if call.dialog.remote_cseq.is_some_and(|r| cseq <= r) {
            self.respond(id, msg, src, 500, "CSeq Out of Order", None, &[], None, now);
            return;
        }
        call.dialog.remote_cseq = Some(cseq);
        let tag = call.dialog.local_tag.clone();
        match method {
            Method::Bye => {
                self.respond(id, msg, src, 200, "OK", Some(&tag), &[], None, now);
                if self
                    .calls
                    .get(&handle)
                    .is_some_and(Call::unanswered_incoming)
                {
                    self.answer_invite(handle, 487, "Request Terminated", &[], None, now);
                }
                if let Some(c) = self.calls.get_mut(&handle) {
                    c.retransmit = None;
                    c.bye_after_ack = false;
                    c.cancel_pending = false;
                }
                self.end(handle, Ending::Bye, q850_of(msg));
            }
            Method::Invite | Method::Update => self.reoffer(handle, id, method, msg, src, now),
            Method::Info | Method::Options | Method::Notify | Method::Prack => {
                self.respond(id, msg, src, 200, "OK", Some(&tag), &[], None, now);
            }
            _ => {
                self.respond(
                    id,
                    msg,
                    src,
                    405,
                    "Method Not Allowed",
                    Some(&tag),
                    &[("Allow", ALLOW)],
                    None,
                    now,
                );
            }
        }
    }

    /// A re-INVITE or UPDATE: answered at once with the current local SDP. The media address
    /// of this side does not move, so the host only learns the other side's new SDP.
    fn reoffer(
        &mut self,
        handle: CallHandle,
        id: ServerTxId,
        method: Method<'_>,
        msg: &Message<'_>,
        src: SocketAddr,
        now: Instant,
    ) {
        let t1 = self.tx.config().t1;
        let Some(call) = self.calls.get_mut(&handle) else {
            return;
        };
        let tag = call.dialog.local_tag.clone();
        let settled = call.state == CallState::Confirmed && call.retransmit.is_none();
        if method == Method::Invite && !settled {
            // Our own answer is not acknowledged yet (RFC 3261 14.2).
            self.respond(
                id,
                msg,
                src,
                500,
                "Server Internal Error",
                Some(&tag),
                &[("Retry-After", "1")],
                None,
                now,
            );
            return;
        }
        if let Some(c) = msg
            .header(HeaderName::Contact)
            .and_then(|c| NameAddr::parse(c).ok())
        {
            call.dialog.remote_target = c.uri.raw.to_string();
        }
        let offer = sdp_of(msg);
        let local = call.local_sdp.clone();
        let contact = call.contact.clone();
        if offer.is_some() && local.is_none() {
            self.respond(
                id,
                msg,
                src,
                488,
                "Not Acceptable Here",
                Some(&tag),
                &[],
                None,
                now,
            );
            return;
        }
        let body = match (method, &offer) {
            (Method::Update, None) => None,
            _ => local.as_deref(),
        };
        let headers = [("Contact", contact.as_str()), ("Allow", ALLOW)];
        let bytes = self.respond(id, msg, src, 200, "OK", Some(&tag), &headers, body, now);
        if let Some(sdp) = offer {
            self.events
                .push_back(Event::RemoteSdp { call: handle, sdp });
        }
        if method == Method::Invite {
            if let Some(c) = self.calls.get_mut(&handle) {
                c.offer_in_2xx = sdp_of(msg).is_none();
                c.retransmit = Some(Retransmit {
                    cseq: msg.cseq().map_or(0, |c| c.seq),
                    bytes: bytes.into(),
                    interval: t1,
                    next: now + t1,
                    give_up: now + t1 * 64,
                });
            }
        }
    }

    /// The ACK of a 2xx of ours.
    pub(crate) fn on_ack(&mut self, msg: &Message<'_>, now: Instant) {
        let (Some(call_id), Some(tag)) = (msg.call_id(), msg.to().and_then(|t| t.tag())) else {
            return;
        };
        let Some(handle) = self
            .dialogs
            .get(&(call_id.to_string(), tag.to_string()))
            .copied()
        else {
            return;
        };
        let Some(call) = self.calls.get_mut(&handle) else {
            return;
        };
        let acked = msg.cseq().map(|c| c.seq);
        if call.retransmit.as_ref().map(|r| r.cseq) != acked {
            // A retransmitted ACK, or a late one of an earlier INVITE.
            return;
        }
        call.retransmit = None;
        let sdp = sdp_of(msg);
        if call.bye_after_ack {
            call.bye_after_ack = false;
            let (d, cause) = (call.dialog.clone(), call.cause);
            self.send_bye_on(handle, d, cause, Owner::Bye(handle), now);
            self.touched.push(handle);
        } else if call.state == CallState::Answering {
            call.state = CallState::Confirmed;
            self.events
                .push_back(Event::Confirmed { call: handle, sdp });
        } else if std::mem::take(&mut call.offer_in_2xx) {
            if let Some(sdp) = sdp {
                self.events
                    .push_back(Event::RemoteSdp { call: handle, sdp });
            }
        }
    }

    // ---- timers ----

    pub(crate) fn call_deadline(&self) -> Option<Instant> {
        self.calls
            .values()
            .filter_map(|c| c.retransmit.as_ref().map(|r| r.next.min(r.give_up)))
            .min()
    }

    /// Retransmits unacknowledged 2xx responses; gives up after 64*T1 with a BYE.
    pub(crate) fn call_timers(&mut self, now: Instant) {
        let t2 = self.tx.config().t2;
        let due: Vec<CallHandle> = self
            .calls
            .iter()
            .filter(|(_, c)| {
                c.retransmit
                    .as_ref()
                    .is_some_and(|r| r.next.min(r.give_up) <= now)
            })
            .map(|(h, _)| *h)
            .collect();
        for h in due {
            let Some(call) = self.calls.get_mut(&h) else {
                continue;
            };
            let Some(r) = call.retransmit.as_mut() else {
                continue;
            };
            if now >= r.give_up {
                call.retransmit = None;
                call.bye_after_ack = false;
                let (d, cause) = (call.dialog.clone(), call.cause.or(Some(102)));
                let reported = call.reported;
                self.send_bye_on(h, d, cause, Owner::Bye(h), now);
                if !reported {
                    self.end(h, Ending::Timeout, None);
                }
                self.touched.push(h);
                continue;
            }
            r.interval = (r.interval * 2).min(t2);
            r.next = now + r.interval;
            let bytes = Arc::clone(&r.bytes);
            let to = call.dialog.peer.clone();
            self.out.push_back(Transmit { to, bytes });
        }
    }
}
