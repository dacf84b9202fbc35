//! Keeping one account registered at one registrar (RFC 3261 section 10.2): REGISTER,
//! answering digest challenges, refreshing before the binding lapses, backing off after
//! failures, and unregistering.
//!
//! [`Registration`] decides; the [`super::UserAgent`] that owns it sends its requests through
//! the transaction layer (so RFC 3261 timers E and F retransmit and bound them) and hands back
//! what came of them.
//!
//! Timing rules:
//! - **Refresh** at `granted - margin`, `margin = min(max(granted / 10, 32 s), granted / 2)`:
//!   32 s is how long a REGISTER transaction may take (64*T1), so a refresh that needs every
//!   retransmission still completes before the binding lapses; short bindings refresh half way.
//!   1200 s refreshes after 1080 s, 3600 s after 3240 s, 60 s after 30 s.
//! - **Retry** after a failure: 30 s, doubling with each consecutive failure up to 30 min, of
//!   which a random fifth is taken off (so the delay lies in `[0.8 d, d]`) so that accounts
//!   failing together do not retry together. A `Retry-After` in the failure response replaces
//!   the computed delay (at least 1 s, at most a day).
//! - A binding whose refresh keeps failing stays `Registered` until its granted time is up.

use std::fmt;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::digest::{ChallengeVerdict, DigestClient};
use super::Rng;
use crate::registrar::Transport;
use crate::sip::via::split_host_port;
use crate::sip::{lex, HeaderName, Message, NameAddr, RequestBuilder};

/// Asked for when the configuration says nothing.
pub const DEFAULT_EXPIRES: u32 = 1200;

const FIRST_RETRY: Duration = Duration::from_secs(30);
const MAX_RETRY: Duration = Duration::from_secs(30 * 60);
const MAX_RETRY_AFTER: u32 = 24 * 3600;
/// The longest a REGISTER transaction can take (64*T1 with the default T1).
const TRANSACTION_TIME: u32 = 32;

/// One account at one registrar.
#[derive(Clone)]
pub struct RegistrationConfig<A> {
    /// The Request-URI of REGISTER: the registrar's domain, e.g. `sip:upstream.test`.
    pub registrar: String,
    /// The address-of-record, in From and To: `sip:gw@upstream.test`.
    pub aor: String,
    /// The Contact registered: `sip:{contact_user}@{contact_host}`; `contact_host` is
    /// `host:port` as reachable by the registrar, and also the sent-by of Via.
    pub contact_user: String,
    pub contact_host: String,
    /// Digest credentials.
    pub username: String,
    pub password: String,
    /// Registration lifetime asked for, in seconds; the registrar may grant less.
    pub expires: u32,
    /// Only changes Via and Contact (`;transport=tcp`) and whether retransmission timers run;
    /// the host's address type `A` decides how bytes actually travel.
    pub transport: Transport,
    /// Where the registrar is reached.
    pub registrar_addr: A,
    /// When set, every REGISTER goes here instead of to `registrar_addr`.
    pub outbound_proxy: Option<A>,
    /// The sent-by of Via when REGISTER leaves from another socket than the one calls
    /// arrive at (the Contact); `None`: `contact_host`.
    pub via_host: Option<String>,
}

/// Without the password, which must not reach logs.
impl<A: fmt::Debug> fmt::Debug for RegistrationConfig<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RegistrationConfig")
            .field("registrar", &self.registrar)
            .field("aor", &self.aor)
            .field("contact_user", &self.contact_user)
            .field("contact_host", &self.contact_host)
            .field("username", &self.username)
            .field("expires", &self.expires)
            .field("transport", &self.transport)
            .field("registrar_addr", &self.registrar_addr)
            .field("outbound_proxy", &self.outbound_proxy)
            .finish_non_exhaustive()
    }
}

impl<A> RegistrationConfig<A> {
    /// A configuration over UDP with the default lifetime and no outbound proxy.
    pub fn new(
        registrar: &str,
        aor: &str,
        contact_user: &str,
        contact_host: &str,
        username: &str,
        password: &str,
        registrar_addr: A,
    ) -> Self {
        RegistrationConfig {
            registrar: registrar.to_string(),
            aor: aor.to_string(),
            contact_user: contact_user.to_string(),
            contact_host: contact_host.to_string(),
            username: username.to_string(),
            password: password.to_string(),
            expires: DEFAULT_EXPIRES,
            transport: Transport::Udp,
            registrar_addr,
            outbound_proxy: None,
            via_host: None,
        }
    }

    /// Where REGISTERs are sent.
    pub fn destination(&self) -> &A {
        self.outbound_proxy.as_ref().unwrap_or(&self.registrar_addr)
    }
}

/// The handle of a registration within its [`super::UserAgent`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RegistrationId(pub(crate) u32);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RegistrationState {
    /// Not registered: not started yet, or waiting to retry after a failure.
    Unregistered,
    /// The first REGISTER (or one after a lapse) is under way.
    Registering,
    /// The registrar holds the binding until `until`; refreshes keep this state.
    Registered { until: Instant },
    /// Refused for good (403, wrong credentials, a challenge that cannot be answered): no
    /// more attempts until [`super::UserAgent::connect`] or a new configuration.
    Failed,
    /// Switched off by hand or at shutdown.
    Disabled,
}

/// Whether the owner must send a REGISTER now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Step {
    Idle,
    Send,
}

/// Where the registration is heading.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Want {
    Registered,
    /// Remove the binding, then stay in this state.
    Unregistered(RegistrationState),
}

/// One account's registration: state, identifiers kept across refreshes, and timers.
#[derive(Debug)]
pub struct Registration<A> {
    cfg: RegistrationConfig<A>,
    state: RegistrationState,
    last_failure: Option<String>,
    want: Want,
    /// Constant across refreshes, so the registrar sees one registration (RFC 3261 10.2.4).
    call_id: String,
    from_tag: String,
    cseq: u32,
    /// The lifetime asked for: the configured one, raised by a 423's Min-Expires.
    expires: u32,
    granted: Option<u32>,
    digest: DigestClient,
    /// The REGISTER in flight, and whether it removes the binding. Answers to older ones
    /// (abandoned by a disconnect or a new configuration) are ignored.
    pub(crate) pending: Option<(crate::transaction::ClientTxId, bool)>,
    /// When to send the next REGISTER (refresh or retry).
    next_send: Option<Instant>,
    /// Consecutive failures, for the backoff.
    failures: u32,
    rng: Rng,
}

impl<A: Clone> Registration<A> {
    pub(crate) fn new(cfg: RegistrationConfig<A>, seed: u64) -> Self {
        let mut rng = Rng::new(seed);
        let host = split_host_port(&cfg.contact_host).map_or("ua", |(h, _)| h);
        let call_id = format!("{}@{host}", rng.hex());
        let from_tag = rng.hex();
        let digest = DigestClient::new(&cfg.username, &cfg.password, rng.next_u64());
        let expires = if cfg.expires == 0 {
            DEFAULT_EXPIRES
        } else {
            cfg.expires
        };
        Registration {
            cfg,
            state: RegistrationState::Unregistered,
            last_failure: None,
            want: Want::Unregistered(RegistrationState::Unregistered),
            call_id,
            from_tag,
            cseq: 0,
            expires,
            granted: None,
            digest,
            pending: None,
            next_send: None,
            failures: 0,
            rng,
        }
    }

    pub fn state(&self) -> RegistrationState {
        self.state
    }

    /// Why the last attempt failed, in words ("403 Forbidden from 192.0.2.1:5060", "no answer
    /// after 32 s"); cleared by a success.
    pub fn last_failure(&self) -> Option<&str> {
        self.last_failure.as_deref()
    }

    pub fn config(&self) -> &RegistrationConfig<A> {
        &self.cfg
    }

    pub fn call_id(&self) -> &str {
        &self.call_id
    }

    /// The lifetime the registrar granted last.
    pub fn granted(&self) -> Option<u32> {
        self.granted
    }

    /// The lifetime asked for in the next REGISTER.
    pub fn expires(&self) -> u32 {
        self.expires
    }

    /// When [`Registration::handle_timeout`] has something to do.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let lapse = match self.state {
            RegistrationState::Registered { until } => Some(until),
            _ => None,
        };
        [self.next_send, lapse].into_iter().flatten().min()
    }

    /// Start (or restart after Failed / Disabled): register now.
    pub(crate) fn connect(&mut self) -> Step {
        self.want = Want::Registered;
        self.failures = 0;
        self.next_send = None;
        if !matches!(self.state, RegistrationState::Registered { .. }) {
            self.state = RegistrationState::Registering;
        }
        self.digest.begin_exchange();
        Step::Send
    }

    /// Remove the binding (REGISTER with expires 0) and end in `end` (Disabled). Without a
    /// binding, or one being made, nothing is sent.
    pub(crate) fn disconnect(&mut self, end: RegistrationState) -> Step {
        let bound = matches!(
            self.state,
            RegistrationState::Registered { .. } | RegistrationState::Registering
        ) || self.pending.is_some_and(|(_, unregister)| !unregister);
        self.state = end;
        self.next_send = None;
        self.granted = None;
        if !bound {
            self.want = Want::Unregistered(end);
            self.pending = None;
            return Step::Idle;
        }
        self.want = Want::Unregistered(end);
        self.digest.begin_exchange();
        Step::Send
    }

    /// A new configuration: new identifiers, credentials forgotten, and registering again
    /// unless switched off by hand.
    pub(crate) fn reconfigure(&mut self, cfg: RegistrationConfig<A>) -> Step {
        let seed = self.rng.next_u64();
        let disabled = self.state == RegistrationState::Disabled;
        *self = Registration::new(cfg, seed);
        if disabled {
            self.state = RegistrationState::Disabled;
            self.want = Want::Unregistered(RegistrationState::Disabled);
            return Step::Idle;
        }
        self.connect()
    }

    /// The next REGISTER: its bytes, destination and whether the transport is reliable.
    pub(crate) fn build(&mut self, user_agent: &str) -> (Vec<u8>, A, bool) {
        self.cseq += 1;
        let unregister = matches!(self.want, Want::Unregistered(_));
        let expires = if unregister { 0 } else { self.expires };
        let (proto, tparam) = match self.cfg.transport {
            Transport::Udp => ("UDP", ""),
            Transport::Tcp => ("TCP", ";transport=tcp"),
        };
        let via = format!(
            "SIP/2.0/{proto} {};branch=z9hG4bK{};rport",
            self.cfg
                .via_host
                .as_deref()
                .unwrap_or(&self.cfg.contact_host),
            self.rng.hex()
        );
        let contact = format!(
            "<sip:{}@{}{tparam}>",
            self.cfg.contact_user, self.cfg.contact_host
        );
        let auth = self.digest.headers("REGISTER", &self.cfg.registrar);
        let mut buf = Vec::with_capacity(768);
        let mut b = RequestBuilder::new(&mut buf, "REGISTER", &self.cfg.registrar)
            .header("Via", &via)
            .header("Max-Forwards", "70")
            .header("From", &format!("<{}>;tag={}", self.cfg.aor, self.from_tag))
            .header("To", &format!("<{}>", self.cfg.aor))
            .header("Call-ID", &self.call_id)
            .header("CSeq", &format!("{} REGISTER", self.cseq))
            .header("Contact", &contact)
            .header("Expires", &expires.to_string());
        for (name, value) in &auth {
            b = b.header(name, value);
        }
        b.header("Allow", super::ALLOW)
            .header("User-Agent", user_agent)
            .finish(None, b"");
        (
            buf,
            self.cfg.destination().clone(),
            self.cfg.transport == Transport::Tcp,
        )
    }

    pub(crate) fn is_unregistering(&self) -> bool {
        self.unregistering().is_some()
    }

    fn unregistering(&self) -> Option<RegistrationState> {
        match self.want {
            Want::Unregistered(end) => Some(end),
            Want::Registered => None,
        }
    }

    /// The final response to the pending REGISTER, received from `source`.
    pub(crate) fn on_response(
        &mut self,
        msg: &Message<'_>,
        source: SocketAddr,
        now: Instant,
    ) -> Step {
        let Some(status) = msg.status() else {
            return Step::Idle;
        };
        if status < 200 {
            return Step::Idle;
        }
        self.pending = None;
        let reason = msg.reason().unwrap_or("");
        let said = format!("{status} {reason} from {source}");
        if let Some(end) = self.unregistering() {
            return match status {
                200..=299 => {
                    self.state = end;
                    Step::Idle
                }
                401 | 407 => match self.digest.on_challenge(msg) {
                    ChallengeVerdict::Retry => Step::Send,
                    _ => self.unregister_failed(said),
                },
                _ => self.unregister_failed(said),
            };
        }
        match status {
            200..=299 => self.on_success(msg, now),
            401 | 407 => match self.digest.on_challenge(msg) {
                ChallengeVerdict::Retry => Step::Send,
                ChallengeVerdict::Rejected { status } => {
                    self.stop(format!("wrong password or user ({status} twice)"))
                }
                ChallengeVerdict::Unusable(e) => {
                    self.stop(format!("cannot answer the challenge of {source}: {e}"))
                }
            },
            423 => {
                let min = msg
                    .header(HeaderName::MinExpires)
                    .and_then(lex::parse_delta_seconds);
                match min {
                    // Only upwards, so a confused registrar cannot make us loop.
                    Some(m) if m > self.expires && m <= MAX_RETRY_AFTER => {
                        self.expires = m;
                        Step::Send
                    }
                    _ => {
                        self.retry_later(format!("{said} without a usable Min-Expires"), None, now)
                    }
                }
            }
            403 => self.stop(said),
            _ => {
                let retry_after = msg
                    .header(HeaderName::RetryAfter)
                    .and_then(|v| v.split([';', '(']).next())
                    .and_then(|v| lex::parse_delta_seconds(lex::trim(v)));
                self.retry_later(said, retry_after, now)
            }
        }
    }

    fn on_success(&mut self, msg: &Message<'_>, now: Instant) -> Step {
        let granted = self.granted_by(msg).unwrap_or(self.expires);
        if granted == 0 {
            return self.retry_later("registrar granted no time".to_string(), None, now);
        }
        self.granted = Some(granted);
        self.failures = 0;
        self.last_failure = None;
        self.state = RegistrationState::Registered {
            until: now + Duration::from_secs(u64::from(granted)),
        };
        self.next_send = Some(now + Duration::from_secs(u64::from(refresh_after(granted))));
        Step::Idle
    }

    /// Our Contact's `expires` parameter in the 200 (which lists every binding of the AOR),
    /// else its Expires header.
    fn granted_by(&self, msg: &Message<'_>) -> Option<u32> {
        let (host, port) = split_host_port(&self.cfg.contact_host)?;
        let ours = msg.list(HeaderName::Contact).find_map(|c| {
            let na = NameAddr::parse(c).ok()?;
            let u = na.uri;
            let same = u.user == Some(self.cfg.contact_user.as_str())
                && u.host.eq_ignore_ascii_case(host)
                && u.port.unwrap_or(5060) == port.unwrap_or(5060);
            same.then_some(na.params)
        });
        if let Some(Some(e)) = ours.and_then(|p| p.get("expires")) {
            if let Some(e) = lex::parse_delta_seconds(e) {
                return Some(e);
            }
        }
        msg.expires()
    }

    /// No final response came (timer F).
    pub(crate) fn on_no_answer(&mut self, after: Duration, now: Instant) -> Step {
        self.pending = None;
        let why = format!("no answer after {} s", after.as_secs());
        if self.unregistering().is_some() {
            return self.unregister_failed(why);
        }
        self.retry_later(why, None, now)
    }

    /// The host could not send (or resolve the destination): `reason` in its words.
    pub(crate) fn on_transport_error(&mut self, reason: &str, now: Instant) -> Step {
        let in_flight = self.pending.take().is_some();
        match self.unregistering() {
            Some(_) if in_flight => self.unregister_failed(reason.to_string()),
            // Nothing under way that the failure could concern.
            Some(_) => Step::Idle,
            None => self.retry_later(reason.to_string(), None, now),
        }
    }

    /// Time passed: the binding may have lapsed, a refresh or retry may be due.
    pub(crate) fn handle_timeout(&mut self, now: Instant) -> Step {
        if let RegistrationState::Registered { until } = self.state {
            if now >= until {
                self.state = RegistrationState::Unregistered;
                self.granted = None;
            }
        }
        match self.next_send {
            Some(at) if at <= now => {
                self.next_send = None;
                // The answer to the REGISTER in flight schedules the next one.
                if self.pending.is_some() {
                    return Step::Idle;
                }
                if self.state == RegistrationState::Unregistered {
                    self.state = RegistrationState::Registering;
                }
                self.digest.begin_exchange();
                Step::Send
            }
            _ => Step::Idle,
        }
    }

    /// Sending could not even start (the transaction layer refused the request).
    pub(crate) fn on_send_failed(&mut self, why: String, now: Instant) {
        self.pending = None;
        if self.unregistering().is_some() {
            self.unregister_failed(why);
        } else {
            self.retry_later(why, None, now);
        }
    }

    fn unregister_failed(&mut self, why: String) -> Step {
        self.last_failure = Some(format!("unregistering: {why}"));
        Step::Idle
    }

    fn stop(&mut self, why: String) -> Step {
        self.last_failure = Some(why);
        self.state = RegistrationState::Failed;
        self.want = Want::Unregistered(RegistrationState::Failed);
        self.next_send = None;
        self.granted = None;
        Step::Idle
    }

    fn retry_later(&mut self, why: String, retry_after: Option<u32>, now: Instant) -> Step {
        self.failures = self.failures.saturating_add(1);
        let delay = match retry_after {
            Some(s) => Duration::from_secs(u64::from(s.clamp(1, MAX_RETRY_AFTER))),
            None => backoff(self.failures, &mut self.rng),
        };
        self.last_failure = Some(why);
        self.next_send = Some(now + delay);
        match self.state {
            RegistrationState::Registered { until } if until > now => {}
            _ => {
                self.state = RegistrationState::Unregistered;
                self.granted = None;
            }
        }
        Step::Idle
    }
}

/// Seconds after a success with `granted` seconds when the refresh is sent (module docs).
pub fn refresh_after(granted: u32) -> u32 {
    let margin = (granted / 10).max(TRANSACTION_TIME).min(granted / 2);
    granted - margin
}

/// The delay before retry number `failures` (1 for the first), jitter included.
fn backoff(failures: u32, rng: &mut Rng) -> Duration {
    let doublings = failures.saturating_sub(1).min(16);
    let full = FIRST_RETRY.saturating_mul(1 << doublings).min(MAX_RETRY);
    let ms = full.as_millis() as u64;
    Duration::from_millis(ms - rng.below(ms / 5 + 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refresh_rule() {
        assert_eq!(refresh_after(1200), 1080);
        assert_eq!(refresh_after(3600), 3240);
        assert_eq!(refresh_after(60), 30);
        assert_eq!(refresh_after(100), 68);
        assert_eq!(refresh_after(1), 1);
        assert_eq!(refresh_after(0), 0);
    }

    #[test]
    fn backoff_doubles_to_the_cap_within_the_jitter() {
        let mut rng = Rng::new(42);
        for n in 1..=12u32 {
            let full = (30u64 << (n - 1).min(16)).min(1800);
            for _ in 0..50 {
                let d = backoff(n, &mut rng).as_millis() as u64;
                assert!(d <= full * 1000 && d >= full * 800, "retry {n}: {d} ms");
            }
        }
        assert!(backoff(u32::MAX, &mut rng) <= MAX_RETRY);
    }
}
