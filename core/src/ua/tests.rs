//! The user agent against scripted peers, in virtual time: the test plays the registrar or the
//! other party, writing its messages by hand and reading what the user agent sends.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::*;
use crate::auth::{digest::verify, Algorithm, Credentials as Creds};
use crate::registrar::Transport;
use crate::sip::{HeaderName, Message};

const SERVER: &str = "192.0.2.1:5060";
const SDP_A: &str = "v=0\r\no=- 1 1 IN IP4 192.0.2.5\r\ns=-\r\nc=IN IP4 192.0.2.5\r\nt=0 0\r\n\
                     m=audio 4000 RTP/AVP 8\r\n";
const SDP_B: &str = "v=0\r\no=- 2 2 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n\
                     m=audio 5000 RTP/AVP 8\r\n";

fn server() -> SocketAddr {
    SERVER.parse().unwrap()
}

struct H {
    ua: UserAgent<SocketAddr>,
    now: Instant,
    t0: Instant,
    sent: Vec<(SocketAddr, String, Instant)>,
    events: Vec<Event>,
}

impl H {
    fn new() -> H {
        let t0 = Instant::now();
        H {
            ua: UserAgent::new(UaConfig {
                local: "192.0.2.5:5060".into(),
                user_agent: "test-ua".into(),
                seed: 99,
                timers: TimerConfig::default(),
            }),
            now: t0,
            t0,
            sent: Vec::new(),
            events: Vec::new(),
        }
    }

    fn pump(&mut self) {
        while let Some(t) = self.ua.poll_transmit() {
            let text = String::from_utf8_lossy(&t.bytes).into_owned();
            self.sent.push((t.to, text, self.now));
        }
        while let Some(e) = self.ua.poll_event() {
            self.events.push(e);
        }
    }

    /// Moves time on, firing every deadline on the way.
    fn advance(&mut self, d: Duration) {
        let target = self.now + d;
        while let Some(at) = self.ua.poll_timeout().filter(|at| *at <= target) {
            self.now = at.max(self.now);
            self.ua.handle_timeout(self.now);
            self.pump();
        }
        self.now = target;
        self.ua.handle_timeout(self.now);
        self.pump();
    }

    fn recv(&mut self, raw: &str) {
        let origin = Origin {
            reply_to: server(),
            source: server(),
            reliable: false,
        };
        self.ua.on_message(raw.as_bytes(), origin, self.now);
        self.pump();
    }

    fn take(&mut self) -> Vec<String> {
        self.sent.drain(..).map(|(_, m, _)| m).collect()
    }

    /// The only message sent since the last take, which starts with `start`.
    fn one(&mut self, start: &str) -> String {
        let all = self.take();
        assert_eq!(all.len(), 1, "expected one {start:?}, got {all:#?}");
        assert!(
            all[0].starts_with(start),
            "expected {start:?}, got {all:#?}"
        );
        all[0].clone()
    }

    fn find(&mut self, start: &str) -> String {
        let all = self.take();
        all.iter()
            .find(|m| m.starts_with(start))
            .cloned()
            .unwrap_or_else(|| panic!("no {start:?} in {all:#?}"))
    }

    fn events(&mut self) -> Vec<Event> {
        std::mem::take(&mut self.events)
    }

    fn reg(&self, id: RegistrationId) -> &Registration<SocketAddr> {
        self.ua.registration(id).unwrap()
    }

    fn secs(&self) -> f64 {
        (self.now - self.t0).as_secs_f64()
    }
}

fn header(m: &str, name: HeaderName) -> &str {
    Message::parse(m.as_bytes())
        .unwrap()
        .header(name)
        .unwrap_or("")
}

/// A response to `req` as a peer writes it: Via, From, Call-ID and CSeq copied, To tagged.
fn reply(req: &str, status: u16, reason: &str, extra: &str, body: &str) -> String {
    let m = Message::parse(req.as_bytes()).unwrap();
    let vias: String = m
        .all(HeaderName::Via)
        .map(|v| format!("Via: {v}\r\n"))
        .collect();
    let to = m.header(HeaderName::To).unwrap();
    let to = if to.contains("tag=") || status == 100 {
        to.to_string()
    } else {
        format!("{to};tag=peer")
    };
    let ct = if body.is_empty() {
        ""
    } else {
        "Content-Type: application/sdp\r\n"
    };
    format!(
        "SIP/2.0 {status} {reason}\r\n{vias}From: {}\r\nTo: {to}\r\nCall-ID: {}\r\nCSeq: {}\r\n\
         {extra}{ct}Content-Length: {}\r\n\r\n{body}",
        m.header(HeaderName::From).unwrap(),
        m.call_id().unwrap(),
        m.header(HeaderName::CSeq).unwrap(),
        body.len()
    )
}

fn account() -> RegistrationConfig<SocketAddr> {
    let mut c = RegistrationConfig::new(
        "sip:upstream.test",
        "sip:gw@upstream.test",
        "gw",
        "192.0.2.5:5060",
        "gw",
        "secret",
        server(),
    );
    c.expires = 600;
    c
}

const CHALLENGE: &str = "WWW-Authenticate: Digest realm=\"upstream.test\", nonce=\"n1\", \
                         algorithm=MD5, qop=\"auth\"\r\n\
                         WWW-Authenticate: Digest realm=\"upstream.test\", nonce=\"n1\", \
                         algorithm=SHA-256, qop=\"auth\"\r\n";

fn registered(h: &mut H) -> RegistrationId {
    let id = h.ua.add_registration(account());
    h.ua.connect(id, h.now).unwrap();
    h.pump();
    let r1 = h.one("REGISTER sip:upstream.test SIP/2.0");
    h.recv(&reply(&r1, 401, "Unauthorized", CHALLENGE, ""));
    let r2 = h.one("REGISTER ");
    h.recv(&reply(
        &r2,
        200,
        "OK",
        "Contact: <sip:gw@192.0.2.5:5060>;expires=600\r\n",
        "",
    ));
    id
}

#[test]
fn registers_with_digest_and_refreshes_before_expiry() {
    let mut h = H::new();
    let id = h.ua.add_registration(account());
    assert_eq!(h.reg(id).state(), RegistrationState::Unregistered);
    h.ua.connect(id, h.now).unwrap();
    h.pump();
    let r1 = h.one("REGISTER sip:upstream.test SIP/2.0");
    assert_eq!(h.reg(id).state(), RegistrationState::Registering);
    assert_eq!(header(&r1, HeaderName::Expires), "600");
    assert_eq!(header(&r1, HeaderName::Contact), "<sip:gw@192.0.2.5:5060>");
    assert!(header(&r1, HeaderName::Via).starts_with("SIP/2.0/UDP 192.0.2.5:5060;branch=z9hG4bK"));
    assert!(!r1.contains("Authorization"));
    h.recv(&reply(&r1, 401, "Unauthorized", CHALLENGE, ""));
    let r2 = h.one("REGISTER ");
    for name in [HeaderName::CallId, HeaderName::From] {
        assert_eq!(header(&r1, name), header(&r2, name), "{name:?} kept");
    }
    assert_eq!(header(&r2, HeaderName::CSeq), "2 REGISTER");
    assert_ne!(header(&r1, HeaderName::Via), header(&r2, HeaderName::Via));
    // SHA-256 was chosen over MD5, and core's server side verifies the answer.
    let auth = header(&r2, HeaderName::Authorization);
    let c = Creds::parse(auth).unwrap();
    assert_eq!(c.algorithm, Some("SHA-256"));
    let ha1 = Algorithm::Sha256.ha1("gw", "upstream.test", "secret");
    assert!(verify(&c, Algorithm::Sha256, &ha1, "REGISTER"));
    assert_eq!(c.uri, "sip:upstream.test");
    // The registrar lists another binding of the AOR first; ours is granted 600 s.
    h.recv(&reply(
        &r2,
        200,
        "OK",
        "Contact: <sip:gw@198.51.100.7>;expires=30, <sip:gw@192.0.2.5:5060>;expires=600\r\n",
        "",
    ));
    let until = h.now + Duration::from_secs(600);
    assert_eq!(h.reg(id).state(), RegistrationState::Registered { until });
    assert_eq!(h.reg(id).granted(), Some(600));
    assert!(h.events().contains(&Event::Registration {
        id,
        state: RegistrationState::Registered { until }
    }));
    // Refresh at 600 - 60 s, reusing the nonce with the next count.
    h.advance(Duration::from_secs(539));
    assert!(h.take().is_empty());
    h.advance(Duration::from_secs(1));
    let r3 = h.one("REGISTER ");
    assert_eq!(h.secs(), 540.0);
    assert_eq!(header(&r3, HeaderName::CSeq), "3 REGISTER");
    assert_eq!(
        header(&r3, HeaderName::CallId),
        header(&r1, HeaderName::CallId)
    );
    assert_eq!(header(&r3, HeaderName::From), header(&r1, HeaderName::From));
    let c = Creds::parse(header(&r3, HeaderName::Authorization)).unwrap();
    assert_eq!(c.nc, Some("00000002"));
    assert!(verify(&c, Algorithm::Sha256, &ha1, "REGISTER"));
    // The registrar shortens it to 120 s via the Expires header.
    h.recv(&reply(&r3, 200, "OK", "Expires: 120\r\n", ""));
    assert_eq!(h.reg(id).granted(), Some(120));
    h.advance(Duration::from_secs(87));
    assert!(h.take().is_empty());
    h.advance(Duration::from_secs(1));
    h.one("REGISTER ");
    // Refreshes only move the expiry on: never back through Registering.
    let events = h.events();
    assert_eq!(events.len(), 1, "{events:?}");
    assert!(matches!(
        events[0],
        Event::Registration {
            state: RegistrationState::Registered { .. },
            ..
        }
    ));
}

#[test]
fn wrong_credentials_fail_for_good() {
    let mut h = H::new();
    let id = h.ua.add_registration(account());
    h.ua.connect(id, h.now).unwrap();
    h.pump();
    let r1 = h.one("REGISTER ");
    h.recv(&reply(&r1, 401, "Unauthorized", CHALLENGE, ""));
    let r2 = h.one("REGISTER ");
    h.recv(&reply(&r2, 401, "Unauthorized", CHALLENGE, ""));
    assert_eq!(h.reg(id).state(), RegistrationState::Failed);
    assert_eq!(
        h.reg(id).last_failure(),
        Some("wrong password or user (401 twice)")
    );
    h.advance(Duration::from_secs(7200));
    assert!(h.take().is_empty(), "no retries after a refusal");
    // A fresh, non-stale nonce after credentials is a refusal too.
    h.ua.connect(id, h.now).unwrap();
    h.pump();
    let r3 = h.one("REGISTER ");
    let other = CHALLENGE.replace("n1", "n2");
    h.recv(&reply(&r3, 401, "Unauthorized", &other, ""));
    let r4 = h.one("REGISTER ");
    h.recv(&reply(
        &r4,
        401,
        "Unauthorized",
        &CHALLENGE.replace("n1", "n3"),
        "",
    ));
    assert_eq!(h.reg(id).state(), RegistrationState::Failed);
}

#[test]
fn stale_nonce_is_answered_again() {
    let mut h = H::new();
    let id = registered(&mut h);
    h.advance(Duration::from_secs(540));
    let r = h.one("REGISTER ");
    let stale = CHALLENGE
        .replace("n1", "n9")
        .replace("qop=\"auth\"", "qop=\"auth\", stale=true");
    h.recv(&reply(&r, 401, "Unauthorized", &stale, ""));
    let again = h.one("REGISTER ");
    assert!(again.contains("nonce=\"n9\""), "{again}");
    h.recv(&reply(&again, 200, "OK", "Expires: 600\r\n", ""));
    assert!(matches!(
        h.reg(id).state(),
        RegistrationState::Registered { .. }
    ));
}

#[test]
fn forbidden_stops_until_connected_by_hand() {
    let mut h = H::new();
    let id = h.ua.add_registration(account());
    h.ua.connect(id, h.now).unwrap();
    h.pump();
    let r = h.one("REGISTER ");
    h.recv(&reply(&r, 403, "Forbidden", "", ""));
    assert_eq!(h.reg(id).state(), RegistrationState::Failed);
    assert_eq!(
        h.reg(id).last_failure(),
        Some("403 Forbidden from 192.0.2.1:5060")
    );
    h.advance(Duration::from_secs(3 * 3600));
    assert!(h.take().is_empty());
    h.ua.connect(id, h.now).unwrap();
    h.pump();
    h.one("REGISTER ");
    assert_eq!(h.reg(id).state(), RegistrationState::Registering);
}

#[test]
fn no_answer_is_retransmitted_then_reported_and_retried() {
    let mut h = H::new();
    let id = h.ua.add_registration(account());
    h.ua.connect(id, h.now).unwrap();
    h.pump();
    h.advance(Duration::from_secs(32));
    let sent: Vec<f64> = h
        .sent
        .iter()
        .map(|(_, _, at)| (*at - h.t0).as_secs_f64())
        .collect();
    // Timer E: 0.5, 1, 2, 4, then every T2 = 4 s, until timer F at 32 s.
    assert_eq!(
        sent,
        [0.0, 0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5]
    );
    let first = h.take();
    assert!(
        first.windows(2).all(|w| w[0] == w[1]),
        "the same request again"
    );
    assert_eq!(h.reg(id).state(), RegistrationState::Unregistered);
    assert_eq!(h.reg(id).last_failure(), Some("no answer after 32 s"));
    // The retry comes 24 to 30 s later.
    h.advance(Duration::from_secs(23));
    assert!(h.take().is_empty());
    h.advance(Duration::from_secs(7));
    let retry = h.find("REGISTER ");
    assert!(retry.contains("CSeq: 2 REGISTER"), "{retry}");
    assert_eq!(h.reg(id).state(), RegistrationState::Registering);
}

#[test]
fn backoff_grows_with_jitter_up_to_half_an_hour() {
    let mut h = H::new();
    let id = h.ua.add_registration(account());
    h.ua.connect(id, h.now).unwrap();
    h.pump();
    let mut req = h.one("REGISTER ");
    let mut last = h.now;
    for n in 0..9u32 {
        h.recv(&reply(&req, 500, "Server Internal Error", "", ""));
        assert_eq!(
            h.reg(id).last_failure(),
            Some("500 Server Internal Error from 192.0.2.1:5060")
        );
        last = h.now.max(last);
        let at = h.reg(id).poll_timeout().unwrap();
        let delay = (at - h.now).as_secs_f64();
        let full = (30u64 << n).min(1800) as f64;
        assert!(
            delay <= full && delay >= 0.8 * full,
            "retry {n}: {delay} s, full {full}"
        );
        h.advance(at - h.now);
        req = h.one("REGISTER ");
    }
    // A success resets the backoff.
    h.recv(&reply(&req, 200, "OK", "Expires: 600\r\n", ""));
    assert_eq!(h.reg(id).last_failure(), None);
    h.advance(Duration::from_secs(540));
    let req = h.one("REGISTER ");
    h.recv(&reply(&req, 500, "Server Internal Error", "", ""));
    let delay = (h.reg(id).poll_timeout().unwrap() - h.now).as_secs_f64();
    assert!((24.0..=30.0).contains(&delay), "{delay}");
}

#[test]
fn retry_after_is_honoured() {
    let mut h = H::new();
    let id = h.ua.add_registration(account());
    h.ua.connect(id, h.now).unwrap();
    h.pump();
    let r = h.one("REGISTER ");
    h.recv(&reply(
        &r,
        503,
        "Service Unavailable",
        "Retry-After: 120 (maintenance)\r\n",
        "",
    ));
    assert_eq!(h.reg(id).state(), RegistrationState::Unregistered);
    h.advance(Duration::from_secs(119));
    assert!(h.take().is_empty());
    h.advance(Duration::from_secs(1));
    h.one("REGISTER ");
}

#[test]
fn interval_too_brief_is_retried_with_min_expires() {
    let mut h = H::new();
    let id = h.ua.add_registration(account());
    h.ua.connect(id, h.now).unwrap();
    h.pump();
    let r = h.one("REGISTER ");
    h.recv(&reply(
        &r,
        423,
        "Interval Too Brief",
        "Min-Expires: 1800\r\n",
        "",
    ));
    let r2 = h.one("REGISTER ");
    assert_eq!(header(&r2, HeaderName::Expires), "1800");
    assert_eq!(h.reg(id).expires(), 1800);
    // A Min-Expires that does not raise the interval would loop: it is a failure instead.
    h.recv(&reply(
        &r2,
        423,
        "Interval Too Brief",
        "Min-Expires: 60\r\n",
        "",
    ));
    assert!(h.take().is_empty());
    assert!(h.reg(id).last_failure().unwrap().contains("Min-Expires"));
}

#[test]
fn disconnect_unregisters_with_expires_zero() {
    let mut h = H::new();
    let id = registered(&mut h);
    h.events();
    h.ua.disconnect(id, h.now).unwrap();
    h.pump();
    let r = h.one("REGISTER ");
    assert_eq!(header(&r, HeaderName::Expires), "0");
    assert!(
        r.contains("Authorization: Digest"),
        "credentials reused: {r}"
    );
    assert_eq!(h.reg(id).state(), RegistrationState::Disabled);
    assert_eq!(
        h.events(),
        [Event::Registration {
            id,
            state: RegistrationState::Disabled
        }]
    );
    h.recv(&reply(&r, 200, "OK", "", ""));
    h.advance(Duration::from_secs(7200));
    assert!(h.take().is_empty());
    assert_eq!(h.reg(id).state(), RegistrationState::Disabled);
    // Shutdown of an idle user agent sends nothing more.
    h.ua.shutdown(h.now);
    h.pump();
    assert!(h.take().is_empty());
    h.advance(Duration::from_secs(40));
    assert!(h.ua.is_idle());
}

#[test]
fn shutdown_unregisters_and_answers_a_challenge_on_the_way() {
    let mut h = H::new();
    let id = registered(&mut h);
    h.ua.shutdown(h.now);
    h.pump();
    let r = h.one("REGISTER ");
    assert_eq!(header(&r, HeaderName::Expires), "0");
    h.recv(&reply(
        &r,
        401,
        "Unauthorized",
        &CHALLENGE.replace("n1", "n5"),
        "",
    ));
    let r2 = h.one("REGISTER ");
    assert_eq!(header(&r2, HeaderName::Expires), "0");
    h.recv(&reply(&r2, 200, "OK", "", ""));
    assert_eq!(h.reg(id).state(), RegistrationState::Disabled);
    h.advance(Duration::from_secs(40));
    assert!(h.ua.is_idle());
}

#[test]
fn failing_refreshes_keep_the_binding_until_it_lapses() {
    let mut h = H::new();
    let id = registered(&mut h);
    let until = h.now + Duration::from_secs(600);
    h.advance(Duration::from_secs(540));
    let r = h.one("REGISTER ");
    h.recv(&reply(
        &r,
        503,
        "Service Unavailable",
        "Retry-After: 1000\r\n",
        "",
    ));
    assert_eq!(h.reg(id).state(), RegistrationState::Registered { until });
    h.events();
    h.advance(Duration::from_secs(60));
    assert_eq!(h.reg(id).state(), RegistrationState::Unregistered);
    assert_eq!(
        h.events(),
        [Event::Registration {
            id,
            state: RegistrationState::Unregistered
        }]
    );
}

#[test]
fn transport_errors_are_reported_in_the_hosts_words() {
    let mut h = H::new();
    let id = h.ua.add_registration(account());
    h.ua.connect(id, h.now).unwrap();
    h.pump();
    h.take();
    h.ua.on_transport_error(id, "DNS: no such host", h.now)
        .unwrap();
    h.pump();
    assert_eq!(h.reg(id).last_failure(), Some("DNS: no such host"));
    assert_eq!(h.reg(id).state(), RegistrationState::Unregistered);
    assert!(h.reg(id).poll_timeout().is_some());
    assert!(matches!(
        h.ua.connect(RegistrationId(7), h.now),
        Err(UaError::UnknownRegistration(_))
    ));
}

#[test]
fn tcp_and_outbound_proxy_only_change_transport_details() {
    let mut h = H::new();
    let proxy: SocketAddr = "203.0.113.9:5060".parse().unwrap();
    let mut cfg = account();
    cfg.transport = Transport::Tcp;
    cfg.outbound_proxy = Some(proxy);
    let id = h.ua.add_registration(cfg);
    h.ua.connect(id, h.now).unwrap();
    h.pump();
    let (to, r, _) = h.sent.remove(0);
    assert_eq!(to, proxy);
    assert!(r.starts_with("REGISTER sip:upstream.test SIP/2.0"));
    assert!(header(&r, HeaderName::Via).starts_with("SIP/2.0/TCP "));
    assert_eq!(
        header(&r, HeaderName::Contact),
        "<sip:gw@192.0.2.5:5060;transport=tcp>"
    );
    // No retransmissions over a reliable transport.
    h.advance(Duration::from_secs(31));
    assert!(h.take().is_empty());
    h.advance(Duration::from_secs(1));
    assert_eq!(h.reg(id).last_failure(), Some("no answer after 32 s"));
}

#[test]
fn reconfigure_starts_afresh() {
    let mut h = H::new();
    let id = registered(&mut h);
    let old = h.reg(id).call_id().to_string();
    let mut cfg = account();
    cfg.password = "new".into();
    h.ua.reconfigure(id, cfg, h.now).unwrap();
    h.pump();
    let r = h.one("REGISTER ");
    assert_ne!(header(&r, HeaderName::CallId), old);
    assert!(!r.contains("Authorization"), "old challenges are forgotten");
}

// ---- calls ----

fn invite_params() -> InviteParams<SocketAddr> {
    let mut p = InviteParams::new("sip:201@mgw.test", "sip:300@mgw.test", SDP_A, server());
    p.from_display = Some("Desk \"3\"".into());
    p.credentials = Some(Credentials {
        username: "dect300".into(),
        password: "pw".into(),
    });
    p
}

const PROXY_CHALLENGE: &str =
    "Proxy-Authenticate: Digest realm=\"mgw.test\", nonce=\"pn\", algorithm=MD5, qop=\"auth\"\r\n";

#[test]
fn outgoing_call_with_407_answer_ack_and_bye() {
    let mut h = H::new();
    let call = h.ua.invite(invite_params(), h.now).unwrap();
    h.pump();
    let inv = h.one("INVITE sip:201@mgw.test SIP/2.0");
    assert!(
        inv.contains("From: \"Desk \\\"3\\\"\" <sip:300@mgw.test>;tag="),
        "{inv}"
    );
    assert!(inv.contains("Contact: <sip:300@192.0.2.5:5060>"), "{inv}");
    assert!(!inv.contains("100rel"));
    assert!(inv.ends_with(SDP_A));
    assert_eq!(h.ua.call_state(call), Some(CallState::Calling));
    h.recv(&reply(&inv, 100, "Trying", "", ""));
    h.recv(&reply(
        &inv,
        407,
        "Proxy Authentication Required",
        PROXY_CHALLENGE,
        "",
    ));
    let out = h.take();
    assert_eq!(out.len(), 2, "{out:#?}");
    assert!(
        out[0].starts_with("ACK sip:201@mgw.test"),
        "the transaction ACKs the 407"
    );
    let inv2 = out[1].clone();
    assert!(inv2.starts_with("INVITE "));
    assert_eq!(header(&inv2, HeaderName::CSeq), "2 INVITE");
    assert_eq!(
        header(&inv2, HeaderName::CallId),
        header(&inv, HeaderName::CallId)
    );
    assert!(!header(&inv2, HeaderName::To).contains("tag="));
    let c = Creds::parse(header(&inv2, HeaderName::ProxyAuthorization)).unwrap();
    let ha1 = Algorithm::Md5.ha1("dect300", "mgw.test", "pw");
    assert!(verify(&c, Algorithm::Md5, &ha1, "INVITE"));
    h.recv(&reply(&inv2, 180, "Ringing", "", ""));
    assert_eq!(h.events(), [Event::Ringing { call, sdp: None }]);
    assert_eq!(h.ua.call_state(call), Some(CallState::Early));
    let ok = reply(
        &inv2,
        200,
        "OK",
        "Contact: <sip:b2bua@192.0.2.1:5060>\r\nRecord-Route: <sip:192.0.2.1;lr>\r\n",
        SDP_B,
    );
    h.recv(&ok);
    let ack = h.one("ACK sip:b2bua@192.0.2.1:5060 SIP/2.0");
    assert_eq!(header(&ack, HeaderName::CSeq), "2 ACK");
    assert!(header(&ack, HeaderName::To).ends_with(";tag=peer"));
    assert_eq!(header(&ack, HeaderName::Route), "<sip:192.0.2.1;lr>");
    assert!(ack.contains("Proxy-Authorization: Digest"), "{ack}");
    assert_eq!(
        h.events(),
        [Event::Answered {
            call,
            sdp: Some(SDP_B.into())
        }]
    );
    // A retransmitted 200 gets the same ACK again.
    h.recv(&ok);
    assert_eq!(h.one("ACK "), ack);
    h.ua.hangup(call, Some(16), h.now).unwrap();
    h.pump();
    let bye = h.one("BYE sip:b2bua@192.0.2.1:5060 SIP/2.0");
    assert_eq!(header(&bye, HeaderName::CSeq), "3 BYE");
    assert_eq!(
        header(&bye, HeaderName::Reason),
        "Q.850;cause=16;text=\"Normal call clearing\""
    );
    assert_eq!(
        h.events(),
        [Event::Ended {
            call,
            ending: Ending::Local,
            q850: Some(16)
        }]
    );
    assert!(
        h.ua.hangup(call, None, h.now).is_err(),
        "the handle is gone"
    );
    h.recv(&reply(&bye, 200, "OK", "", ""));
    h.advance(Duration::from_secs(40));
    assert!(h.ua.is_idle());
}

#[test]
fn challenged_bye_is_sent_again_with_credentials() {
    let mut h = H::new();
    let call = h.ua.invite(invite_params(), h.now).unwrap();
    h.pump();
    let inv = h.one("INVITE ");
    h.recv(&reply(
        &inv,
        407,
        "Proxy Authentication Required",
        PROXY_CHALLENGE,
        "",
    ));
    let inv2 = h.find("INVITE ");
    h.recv(&reply(
        &inv2,
        200,
        "OK",
        "Contact: <sip:b@192.0.2.1>\r\n",
        SDP_B,
    ));
    h.one("ACK ");
    h.ua.hangup(call, None, h.now).unwrap();
    h.pump();
    let bye = h.one("BYE ");
    assert!(bye.contains("nc=00000002"), "the nonce is reused: {bye}");
    let fresh = PROXY_CHALLENGE.replace("\"pn\"", "\"pn2\"");
    h.recv(&reply(
        &bye,
        407,
        "Proxy Authentication Required",
        &fresh,
        "",
    ));
    let bye2 = h.one("BYE ");
    assert_eq!(header(&bye2, HeaderName::CSeq), "4 BYE");
    let c = Creds::parse(header(&bye2, HeaderName::ProxyAuthorization)).unwrap();
    assert_eq!((c.nonce, c.nc), ("pn2", Some("00000001")));
    let ha1 = Algorithm::Md5.ha1("dect300", "mgw.test", "pw");
    assert!(verify(&c, Algorithm::Md5, &ha1, "BYE"));
    // Only once.
    h.recv(&reply(
        &bye2,
        407,
        "Proxy Authentication Required",
        &fresh,
        "",
    ));
    assert!(h.take().is_empty());
}

#[test]
fn outgoing_call_cancelled_after_ringing() {
    let mut h = H::new();
    let call = h.ua.invite(invite_params(), h.now).unwrap();
    h.pump();
    let inv = h.one("INVITE ");
    h.recv(&reply(&inv, 183, "Session Progress", "", SDP_B));
    assert_eq!(
        h.events(),
        [Event::Progress {
            call,
            status: 183,
            sdp: Some(SDP_B.into())
        }]
    );
    h.ua.hangup(call, Some(31), h.now).unwrap();
    h.pump();
    let cancel = h.one("CANCEL sip:201@mgw.test SIP/2.0");
    assert_eq!(
        header(&cancel, HeaderName::Via),
        header(&inv, HeaderName::Via)
    );
    assert_eq!(header(&cancel, HeaderName::CSeq), "1 CANCEL");
    assert_eq!(
        header(&cancel, HeaderName::To),
        header(&inv, HeaderName::To)
    );
    assert!(header(&cancel, HeaderName::Reason).starts_with("Q.850;cause=31"));
    h.recv(&reply(&cancel, 200, "OK", "", ""));
    h.recv(&reply(&inv, 487, "Request Terminated", "", ""));
    h.one("ACK ");
    assert_eq!(
        h.events(),
        [Event::Ended {
            call,
            ending: Ending::Local,
            q850: Some(31)
        }]
    );
    h.advance(Duration::from_secs(40));
    assert!(h.ua.is_idle());
}

#[test]
fn cancel_waits_for_a_provisional_and_a_crossing_answer_is_hung_up() {
    let mut h = H::new();
    let call = h.ua.invite(invite_params(), h.now).unwrap();
    h.pump();
    let inv = h.one("INVITE ");
    h.ua.hangup(call, None, h.now).unwrap();
    h.pump();
    // Retransmissions of the INVITE only: no CANCEL before a provisional response.
    h.advance(Duration::from_millis(600));
    assert!(h.take().iter().all(|m| m.starts_with("INVITE ")));
    h.recv(&reply(&inv, 100, "Trying", "", ""));
    let cancel = h.one("CANCEL ");
    // The callee answered before the CANCEL arrived: ACK, then BYE.
    h.recv(&reply(&cancel, 200, "OK", "", ""));
    h.recv(&reply(
        &inv,
        200,
        "OK",
        "Contact: <sip:b@192.0.2.1>\r\n",
        SDP_B,
    ));
    let out = h.take();
    assert!(out[0].starts_with("ACK sip:b@192.0.2.1"), "{out:#?}");
    assert!(out[1].starts_with("BYE sip:b@192.0.2.1"), "{out:#?}");
    let events = h.events();
    assert_eq!(events.len(), 1, "{events:?}");
    assert!(matches!(
        events[0],
        Event::Ended {
            ending: Ending::Local,
            ..
        }
    ));
}

#[test]
fn refusal_carries_status_and_q850_cause() {
    let mut h = H::new();
    let call = h.ua.invite(invite_params(), h.now).unwrap();
    h.pump();
    let inv = h.one("INVITE ");
    h.recv(&reply(
        &inv,
        486,
        "Busy Here",
        "Reason: Q.850;cause=17;text=\"User busy\"\r\n",
        "",
    ));
    h.one("ACK ");
    assert_eq!(
        h.events(),
        [Event::Ended {
            call,
            ending: Ending::Refused {
                status: 486,
                reason: "Busy Here".into()
            },
            q850: Some(17)
        }]
    );
}

#[test]
fn challenge_without_credentials_or_twice_ends_the_call() {
    let mut h = H::new();
    let mut p = invite_params();
    p.credentials = None;
    let call = h.ua.invite(p, h.now).unwrap();
    h.pump();
    let inv = h.one("INVITE ");
    h.recv(&reply(
        &inv,
        407,
        "Proxy Authentication Required",
        PROXY_CHALLENGE,
        "",
    ));
    assert!(matches!(
        &h.events()[..],
        [Event::Ended { call: c, ending: Ending::Refused { status: 407, .. }, .. }] if *c == call
    ));
    let call = h.ua.invite(invite_params(), h.now).unwrap();
    h.pump();
    let inv = h.find("INVITE ");
    h.recv(&reply(
        &inv,
        407,
        "Proxy Authentication Required",
        PROXY_CHALLENGE,
        "",
    ));
    let inv2 = h.find("INVITE ");
    h.recv(&reply(
        &inv2,
        407,
        "Proxy Authentication Required",
        PROXY_CHALLENGE,
        "",
    ));
    assert_eq!(
        h.events(),
        [Event::Ended {
            call,
            ending: Ending::Refused {
                status: 407,
                reason: "wrong password or user".into()
            },
            q850: None
        }]
    );
}

#[test]
fn unanswered_invite_times_out() {
    let mut h = H::new();
    let call = h.ua.invite(invite_params(), h.now).unwrap();
    h.pump();
    h.advance(Duration::from_secs(32));
    assert_eq!(
        h.events(),
        [Event::Ended {
            call,
            ending: Ending::Timeout,
            q850: None
        }]
    );
    assert!(matches!(
        h.ua.invite(
            InviteParams::new("not a uri", "sip:a@b", "", server()),
            h.now
        ),
        Err(UaError::BadUri(_))
    ));
}

fn incoming_invite(extra: &str, body: &str) -> String {
    let ct = if body.is_empty() {
        ""
    } else {
        "Content-Type: application/sdp\r\n"
    };
    format!(
        "INVITE sip:300@192.0.2.5:5060 SIP/2.0\r\n\
         Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKin1;rport\r\nMax-Forwards: 70\r\n\
         From: \"Alice\" <sip:200@mgw.test>;tag=sw1\r\nTo: <sip:300@mgw.test>\r\n\
         Call-ID: in-1@mgw\r\nCSeq: 10 INVITE\r\nContact: <sip:mgw@192.0.2.1:5060>\r\n\
         {extra}{ct}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

/// A request from the switch in the dialog of response `resp` (our To-tag).
fn in_dialog(method: &str, resp: &str, cseq: u32, extra: &str, body: &str) -> String {
    let ct = if body.is_empty() {
        ""
    } else {
        "Content-Type: application/sdp\r\n"
    };
    format!(
        "{method} sip:300@192.0.2.5:5060 SIP/2.0\r\n\
         Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK{method}{cseq}\r\nMax-Forwards: 70\r\n\
         From: \"Alice\" <sip:200@mgw.test>;tag=sw1\r\nTo: {}\r\nCall-ID: in-1@mgw\r\n\
         CSeq: {cseq} {method}\r\n{extra}{ct}Content-Length: {}\r\n\r\n{body}",
        header(resp, HeaderName::To),
        body.len()
    )
}

fn incoming(h: &mut H) -> CallHandle {
    h.recv(&incoming_invite("", SDP_B));
    h.one("SIP/2.0 100 Trying");
    match &h.events()[..] {
        [Event::Incoming {
            call,
            from,
            from_user,
            from_display,
            to_user,
            sdp,
        }] => {
            assert_eq!(from, "sip:200@mgw.test");
            assert_eq!(from_user.as_deref(), Some("200"));
            assert_eq!(from_display.as_deref(), Some("Alice"));
            assert_eq!(to_user.as_deref(), Some("300"));
            assert_eq!(sdp.as_deref(), Some(SDP_B));
            *call
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn incoming_call_rung_answered_acked_and_hung_up_remotely() {
    let mut h = H::new();
    let call = incoming(&mut h);
    h.ua.ringing(call, h.now).unwrap();
    h.pump();
    let ringing = h.one("SIP/2.0 180 Ringing");
    assert!(header(&ringing, HeaderName::To).contains(";tag="));
    assert_eq!(
        header(&ringing, HeaderName::Contact),
        "<sip:300@192.0.2.5:5060>"
    );
    h.ua.answer(call, SDP_A, h.now).unwrap();
    h.pump();
    let ok = h.one("SIP/2.0 200 OK");
    assert!(ok.ends_with(SDP_A));
    assert_eq!(
        header(&ok, HeaderName::To),
        header(&ringing, HeaderName::To)
    );
    assert!(matches!(
        h.ua.ringing(call, h.now),
        Err(UaError::WrongState { .. })
    ));
    // Retransmitted until the ACK.
    h.advance(Duration::from_millis(1600));
    assert_eq!(h.take(), [ok.clone(), ok.clone()]);
    let ack = in_dialog("ACK", &ok, 10, "", "");
    h.recv(&ack);
    assert_eq!(h.events(), [Event::Confirmed { call, sdp: None }]);
    assert_eq!(h.ua.call_state(call), Some(CallState::Confirmed));
    h.advance(Duration::from_secs(10));
    assert!(h.take().is_empty(), "no more retransmissions");
    // A retransmitted ACK changes nothing.
    h.recv(&ack);
    assert!(h.events().is_empty());
    h.recv(&in_dialog(
        "BYE",
        &ok,
        11,
        "Reason: Q.850;cause=16;text=\"Normal call clearing\"\r\n",
        "",
    ));
    h.one("SIP/2.0 200 OK");
    assert_eq!(
        h.events(),
        [Event::Ended {
            call,
            ending: Ending::Bye,
            q850: Some(16)
        }]
    );
    assert_eq!(h.ua.call_state(call), None, "nothing left to do");
    // A BYE for the gone dialog.
    h.recv(&in_dialog("BYE", &ok, 12, "", ""));
    h.one("SIP/2.0 481");
}

#[test]
fn incoming_call_rejected_with_cause() {
    let mut h = H::new();
    let call = incoming(&mut h);
    assert_eq!(
        h.ua.reject(call, 200, "OK", None, h.now),
        Err(UaError::BadStatus(200))
    );
    h.ua.reject(call, 486, "Busy Here", Some(17), h.now)
        .unwrap();
    h.pump();
    let busy = h.one("SIP/2.0 486 Busy Here");
    assert_eq!(
        header(&busy, HeaderName::Reason),
        "Q.850;cause=17;text=\"User busy\""
    );
    assert_eq!(
        h.events(),
        [Event::Ended {
            call,
            ending: Ending::Local,
            q850: Some(17)
        }]
    );
    // The ACK of the failure is the transaction's; retransmissions of the 486 stop.
    let mut ack = incoming_invite("", "").replacen("INVITE sip", "ACK sip", 1);
    ack = ack.replace("10 INVITE", "10 ACK").replace(
        "To: <sip:300@mgw.test>",
        &format!("To: {}", header(&busy, HeaderName::To)),
    );
    h.recv(&ack);
    h.advance(Duration::from_secs(40));
    assert!(h.take().is_empty());
    assert!(h.ua.is_idle());
}

#[test]
fn hangup_before_answer_maps_the_cause_to_a_status() {
    let mut h = H::new();
    let call = incoming(&mut h);
    h.ua.hangup(call, Some(17), h.now).unwrap();
    h.pump();
    let r = h.one("SIP/2.0 486 Busy Here");
    assert!(header(&r, HeaderName::Reason).contains("cause=17"));
}

#[test]
fn incoming_call_cancelled() {
    let mut h = H::new();
    let call = incoming(&mut h);
    h.ua.ringing(call, h.now).unwrap();
    h.pump();
    h.take();
    let cancel = incoming_invite("Reason: Q.850;cause=19\r\n", "")
        .replacen("INVITE sip", "CANCEL sip", 1)
        .replace("10 INVITE", "10 CANCEL");
    h.recv(&cancel);
    let out = h.take();
    assert!(out[0].starts_with("SIP/2.0 200 OK") && out[0].contains("CSeq: 10 CANCEL"));
    assert!(out[1].starts_with("SIP/2.0 487") && out[1].contains("CSeq: 10 INVITE"));
    assert_eq!(
        h.events(),
        [Event::Ended {
            call,
            ending: Ending::Cancelled,
            q850: Some(19)
        }]
    );
    assert!(h.ua.answer(call, SDP_A, h.now).is_err());
    // A CANCEL that matches nothing.
    h.recv(&cancel.replace("z9hG4bKin1", "z9hG4bKother"));
    h.one("SIP/2.0 481");
}

fn answered_incoming(h: &mut H) -> (CallHandle, String) {
    let call = incoming(h);
    h.ua.answer(call, SDP_A, h.now).unwrap();
    h.pump();
    let ok = h.one("SIP/2.0 200 OK");
    h.recv(&in_dialog("ACK", &ok, 10, "", ""));
    h.events();
    (call, ok)
}

#[test]
fn reinvite_is_answered_with_the_current_sdp() {
    let mut h = H::new();
    let (call, ok) = answered_incoming(&mut h);
    let held = SDP_B.replace(
        "m=audio 5000 RTP/AVP 8\r\n",
        "m=audio 5000 RTP/AVP 8\r\na=sendonly\r\n",
    );
    h.recv(&in_dialog(
        "INVITE",
        &ok,
        11,
        "Contact: <sip:mgw@192.0.2.1:5060>\r\n",
        &held,
    ));
    let r = h.one("SIP/2.0 200 OK");
    assert!(r.contains("CSeq: 11 INVITE") && r.ends_with(SDP_A), "{r}");
    assert_eq!(h.events(), [Event::RemoteSdp { call, sdp: held }]);
    h.recv(&in_dialog("ACK", &ok, 11, "", ""));
    // A re-INVITE without SDP gets our offer; the ACK brings the answer.
    h.ua.set_local_sdp(call, &SDP_A.replace("4000", "4002"))
        .unwrap();
    h.recv(&in_dialog("INVITE", &ok, 12, "", ""));
    let r = h.one("SIP/2.0 200 OK");
    assert!(r.contains("m=audio 4002"), "{r}");
    h.recv(&in_dialog("ACK", &ok, 12, "", SDP_B));
    assert_eq!(
        h.events(),
        [Event::RemoteSdp {
            call,
            sdp: SDP_B.into()
        }]
    );
    // An old CSeq is refused.
    h.recv(&in_dialog("INFO", &ok, 5, "", ""));
    h.one("SIP/2.0 500");
    // Our hangup: BYE with the cause.
    h.ua.hangup(call, Some(16), h.now).unwrap();
    h.pump();
    let bye = h.one("BYE sip:mgw@192.0.2.1:5060 SIP/2.0");
    assert!(bye.contains("Reason: Q.850;cause=16"), "{bye}");
    assert_eq!(header(&bye, HeaderName::From), header(&ok, HeaderName::To));
}

#[test]
fn missing_ack_ends_the_call_with_bye() {
    let mut h = H::new();
    let call = incoming(&mut h);
    h.ua.answer(call, SDP_A, h.now).unwrap();
    h.pump();
    h.advance(Duration::from_secs(31));
    let n = h.take().len();
    assert!(n >= 8, "the 200 is retransmitted: {n}");
    h.advance(Duration::from_secs(1));
    h.find("BYE ");
    assert_eq!(
        h.events(),
        [Event::Ended {
            call,
            ending: Ending::Timeout,
            q850: None
        }]
    );
}

#[test]
fn hangup_while_unacknowledged_waits_for_the_ack() {
    let mut h = H::new();
    let call = incoming(&mut h);
    h.ua.answer(call, SDP_A, h.now).unwrap();
    h.pump();
    let ok = h.one("SIP/2.0 200");
    h.ua.hangup(call, None, h.now).unwrap();
    h.pump();
    assert!(h.take().is_empty(), "no BYE before the ACK");
    h.recv(&in_dialog("ACK", &ok, 10, "", ""));
    h.one("BYE ");
}

#[test]
fn required_extensions_and_foreign_bodies_are_refused() {
    let mut h = H::new();
    h.recv(&incoming_invite("Require: 100rel\r\n", SDP_B));
    let r = h.one("SIP/2.0 420 Bad Extension");
    assert_eq!(header(&r, HeaderName::Unsupported), "100rel");
    let inv = incoming_invite("", "hello")
        .replace("z9hG4bKin1", "z9hG4bKin2")
        .replace("application/sdp", "text/plain");
    h.recv(&inv);
    h.one("SIP/2.0 415");
    assert!(h.events().is_empty());
}

#[test]
fn several_calls_at_once() {
    let mut h = H::new();
    let a = h.ua.invite(invite_params(), h.now).unwrap();
    let b = h.ua.invite(invite_params(), h.now).unwrap();
    h.pump();
    let invs = h.take();
    assert_eq!(invs.len(), 2);
    assert_ne!(
        header(&invs[0], HeaderName::CallId),
        header(&invs[1], HeaderName::CallId)
    );
    let c = incoming(&mut h);
    assert!(a != b && b != c);
    h.recv(&reply(&invs[1], 180, "Ringing", "", ""));
    assert_eq!(h.events(), [Event::Ringing { call: b, sdp: None }]);
    assert_eq!(h.ua.active_calls(), 3);
    h.ua.shutdown(h.now);
    h.pump();
    let out = h.take();
    assert!(out.iter().any(|m| m.starts_with("CANCEL ")), "{out:#?}");
    assert!(out.iter().any(|m| m.starts_with("SIP/2.0 480")), "{out:#?}");
    assert_eq!(h.ua.active_calls(), 0);
}

#[test]
fn out_of_dialog_requests() {
    let mut h = H::new();
    let options =
        "OPTIONS sip:300@192.0.2.5 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKo\r\n\
                   From: <sip:mgw@mgw.test>;tag=1\r\nTo: <sip:300@192.0.2.5>\r\nCall-ID: o\r\n\
                   CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n";
    h.recv(options);
    let r = h.one("SIP/2.0 200 OK");
    assert!(r.contains("Allow: INVITE"));
    h.recv(
        &options
            .replace("OPTIONS", "MESSAGE")
            .replace("z9hG4bKo", "z9hG4bKm"),
    );
    h.one("SIP/2.0 405");
}

/// Nothing a peer sends makes the user agent panic: every prefix of real messages, and
/// octets flipped at every position.
#[test]
fn bad_input_never_panics() {
    let mut h = H::new();
    let id = h.ua.add_registration(account());
    h.ua.connect(id, h.now).unwrap();
    let call = h.ua.invite(invite_params(), h.now).unwrap();
    h.pump();
    let sent = h.take();
    let mut samples = vec![
        incoming_invite("", SDP_B),
        reply(&sent[0], 401, "Unauthorized", CHALLENGE, ""),
        reply(
            &sent[1],
            200,
            "OK",
            "Contact: <sip:b@x>;expires=x\r\n",
            SDP_B,
        ),
        reply(
            &sent[0],
            423,
            "Interval Too Brief",
            "Min-Expires: 99999999999999\r\n",
            "",
        ),
        reply(
            &sent[0],
            200,
            "OK",
            "Contact: <sip:gw@192.0.2.5:5060>;expires=0\r\n",
            "",
        ),
        reply(
            &sent[1],
            407,
            "X",
            "Proxy-Authenticate: Digest realm=\"a, nonce=\r\n",
            "",
        ),
        reply(&sent[1], 183, "X", "Reason: Q.850;cause=999\r\n", SDP_B),
    ];
    samples.push("\u{0}\u{1}garbage".into());
    for s in &samples {
        let b = s.as_bytes();
        for cut in 0..b.len() {
            h.ua.on_message(
                &b[..cut],
                Origin {
                    reply_to: server(),
                    source: server(),
                    reliable: false,
                },
                h.now,
            );
        }
        for i in (0..b.len()).step_by(3) {
            let mut m = b.to_vec();
            m[i] = m[i].wrapping_add(17);
            h.ua.on_message(
                &m,
                Origin {
                    reply_to: server(),
                    source: server(),
                    reliable: true,
                },
                h.now,
            );
        }
        h.ua.on_message(
            b,
            Origin {
                reply_to: server(),
                source: server(),
                reliable: false,
            },
            h.now,
        );
        h.pump();
    }
    h.advance(Duration::from_secs(3600));
    let _ = h.ua.hangup(call, None, h.now);
    h.advance(Duration::from_secs(3600));
}

/// The whole server side of core: its challenge header, parsed and answered here, passes its
/// verifier (nonce MAC, nonce-count, HA1 from the directory), for both algorithms.
#[test]
fn core_verifier_accepts_what_the_client_signs() {
    use crate::auth::{Challenge as ServerChallenge, NonceCounts, NonceKey, Verdict, Verifier};
    use crate::directory::{Directory, LogOn};
    use std::sync::Arc;

    let directory = Arc::new(Directory::new());
    directory.insert(LogOn::new(1, "gw", "secret", "200", 1, "upstream.test"));
    let verifier = Verifier {
        realm: "upstream.test".into(),
        nonce_key: NonceKey::new([9; 32]),
        nonce_lifetime_ms: 60_000,
        directory,
        counts: Arc::new(NonceCounts::new()),
    };
    for (sha256_first, md5_only, want) in [(false, false, "SHA-256"), (true, true, "MD5")] {
        let nonce = verifier.issue_nonce(1_000);
        let values = ServerChallenge {
            realm: "upstream.test",
            nonce: &nonce,
            stale: false,
            sha256_first,
            md5_only,
        }
        .header_values();
        let extra: String = values
            .iter()
            .map(|v| format!("WWW-Authenticate: {v}\r\n"))
            .collect();
        let mut h = H::new();
        let id = h.ua.add_registration(account());
        h.ua.connect(id, h.now).unwrap();
        h.pump();
        let r1 = h.one("REGISTER ");
        h.recv(&reply(&r1, 401, "Unauthorized", &extra, ""));
        let r2 = h.one("REGISTER ");
        assert!(r2.contains(&format!("algorithm={want}")), "{r2}");
        let m = Message::parse(r2.as_bytes()).unwrap();
        assert!(matches!(
            verifier.verify(&m, HeaderName::Authorization, 2_000),
            Verdict::Authenticated(_)
        ));
        // The same request again is a replayed nonce-count.
        assert!(matches!(
            verifier.verify(&m, HeaderName::Authorization, 2_000),
            Verdict::Challenge { stale: true }
        ));
    }
}
