//! Whole call flows through the sans-IO endpoint in virtual time: phones are addresses whose
//! messages the test writes and reads, media requests are served by the real sans-IO media
//! control (`mgw_media::session`), and time only moves when the test says. Timers that take
//! minutes on a wire (session expiry, no answer, a caller that never ACKs) run in microseconds.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mgw_core::admission::{Admission, EmergencyNumbers, DEFAULT_EMERGENCY};
use mgw_core::auth::{Algorithm, NonceKey};
use mgw_core::call::dialplan::{DialPlan, Rule, Target};
use mgw_core::call::peer::{Peer, Peers};
use mgw_core::call::{CallConfig, CallEvent, MediaOp, MediaResult, MediaTotals};
use mgw_core::directory::{Account, AccountState, Directory, LogOn};
use mgw_core::endpoint::{Endpoint, EndpointConfig, Origin};
use mgw_core::licence::LicencePool;
use mgw_core::registrar::{Binding, LocationTable, Record, Transport};
use mgw_core::sip::{HeaderName, Message};
use mgw_media::relay::{PortPool, Relay, RelayConfig};
use mgw_media::sdp::CodecName;
use mgw_media::session::{MediaOptions, Sessions};

const REALM: &str = "mgw.test";
const ALICE_SDP: &str =
    "v=0\r\no=- 1 1 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\n\
                         m=audio 4000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n";

fn addr(last: u8) -> SocketAddr {
    SocketAddr::from(([192, 0, 2, last], 5060))
}

const ALICE: u8 = 10;
const BOB: u8 = 20;
const BOB2: u8 = 21;
const PRI: u8 = 50;

struct Net {
    ep: Endpoint<SocketAddr>,
    now: Instant,
    relay: Relay,
    ports: PortPool,
    sessions: Sessions,
    inbox: HashMap<SocketAddr, VecDeque<Vec<u8>>>,
    events: Vec<CallEvent>,
    branch: u32,
    /// While set, the media engine is slow: requests wait in `held` until it is cleared.
    hold_media: bool,
    held: Vec<mgw_core::call::MediaRequest>,
}

fn binding(contact: &str, source: SocketAddr) -> Binding {
    Binding {
        contact: contact.into(),
        instance: None,
        reg_id: None,
        path: Box::new([]),
        q: 1000,
        call_id: format!("reg-{source}").into(),
        cseq: 1,
        expires_at_ms: u64::MAX / 2,
        updated_ms: 0,
        source,
        transport: Transport::Udp,
        user_agent: "sim".into(),
    }
}

impl Net {
    /// Alice (200) and Bob (201, two phones when `forks`) registered.
    fn new(forks: bool) -> Net {
        Net::build(
            forks,
            CallConfig {
                domain: REALM.into(),
                local: "192.0.2.1:5060".into(),
                ..CallConfig::default()
            },
        )
    }

    /// With a line driver `pri1` at .50 (one call at a time, dial 0 + number, serves 300).
    fn with_peer() -> Net {
        Net::with_peer_as(|_| {})
    }

    fn with_peer_as(shape: impl FnOnce(&mut Peer)) -> Net {
        let mut pri = Peer::new("pri1", addr(PRI), Some(1));
        pri.numbers.push("300".into());
        shape(&mut pri);
        let dial_plan = DialPlan {
            rules: vec![Rule {
                prefix: "0".into(),
                strip_prefix: true,
                target: Target::Trunk {
                    name: "pri1".into(),
                    prepend: String::new(),
                },
            }],
            ..DialPlan::default()
        };
        Net::build(
            false,
            CallConfig {
                domain: REALM.into(),
                local: "192.0.2.1:5060".into(),
                dial_plan,
                peers: Peers::new(vec![pri]),
                ..CallConfig::default()
            },
        )
    }

    fn build(forks: bool, calls: CallConfig) -> Net {
        let directory = Arc::new(Directory::new());
        for (id, n) in [(1, "200"), (2, "201")] {
            directory.put_account(Account::new(id, n, n, AccountState::Enabled, None, vec![]));
        }
        directory.insert(LogOn::new(1, "alice", "wonder", "200", 1, REALM));
        directory.insert(LogOn::new(2, "bob", "builder", "201", 2, REALM));
        let location = Arc::new(LocationTable::new());
        location.set_number("alice", "200");
        location.set_number("bob", "201");
        let mut bob = vec![binding("sip:bob@192.0.2.20", addr(BOB))];
        if forks {
            bob.push(binding("sip:bob@192.0.2.21", addr(BOB2)));
        }
        location.update("bob", |_| Record {
            bindings: bob.clone(),
        });
        let t0 = Instant::now();
        let ep = Endpoint::with_switch(
            EndpointConfig {
                domain: REALM.into(),
                server: "mgw-sim".into(),
                nonce_lifetime: Duration::from_secs(3600),
                nonce_key: NonceKey::new([3; 32]),
                sha256_first: false,
                md5_only_user_agents: vec![],
                epoch: t0,
                epoch_unix_ms: 1_700_000_000_000,
                timers: Default::default(),
                registrar: Default::default(),
                directory: directory.clone(),
                location,
                nonce_counts: Default::default(),
                admission: Admission::new(
                    directory,
                    Arc::new(LicencePool::new(10)),
                    EmergencyNumbers::new(&DEFAULT_EMERGENCY),
                ),
                calls,
                worker: 0,
            },
            Box::new(|a, _| a),
        );
        Net {
            ep,
            now: t0,
            relay: Relay::new(RelayConfig::default(), t0),
            ports: PortPool::new(30000, 30999),
            sessions: Sessions::new("192.0.2.1".parse().expect("well-formed test input"), 5),
            inbox: HashMap::new(),
            events: Vec::new(),
            branch: 0,
            hold_media: false,
            held: Vec::new(),
        }
    }

    fn deliver(&mut self, from: SocketAddr, raw: &str) {
        let origin = Origin {
            reply_to: from,
            source: from,
            reliable: false,
        };
        self.ep.on_message(raw.as_bytes(), origin, self.now);
        self.pump();
    }

    /// Moves every message to its inbox and serves every media request, until quiet.
    fn pump(&mut self) {
        loop {
            let mut busy = false;
            while let Some(t) = self.ep.poll_transmit() {
                self.inbox
                    .entry(t.to)
                    .or_default()
                    .push_back(t.bytes.to_vec());
                busy = true;
            }
            while let Some(e) = self.ep.poll_call_event() {
                self.events.push(e);
            }
            if self.hold_media {
                while let Some(req) = self.ep.poll_media() {
                    self.held.push(req);
                }
            } else {
                let held = std::mem::take(&mut self.held);
                for req in held {
                    self.serve_media(req);
                    busy = true;
                }
            }
            while let Some(req) = self.ep.poll_media() {
                busy = true;
                self.serve_media(req);
            }
            if !busy {
                return;
            }
        }
    }

    fn serve_media(&mut self, req: mgw_core::call::MediaRequest) {
        {
            let (relay, ports) = (&mut self.relay, &mut self.ports);
            let result = match req.op {
                MediaOp::Offer {
                    from_tag,
                    sdp,
                    transcode,
                } => {
                    let options = MediaOptions {
                        transcode: if transcode {
                            vec![CodecName::Pcma, CodecName::Pcmu]
                        } else {
                            vec![]
                        },
                        ..MediaOptions::default()
                    };
                    self.sessions
                        .offer(&req.call, &from_tag, &sdp, &options, relay, ports, self.now)
                        .map(MediaResult::Sdp)
                }
                MediaOp::Answer { to_tag, sdp } => self
                    .sessions
                    .answer(
                        &req.call,
                        Some(&to_tag),
                        &sdp,
                        &MediaOptions::default(),
                        relay,
                        self.now,
                    )
                    .map(MediaResult::Sdp),
                MediaOp::Finish => self
                    .sessions
                    .delete(&req.call, relay, ports)
                    .map(|_| MediaResult::Finished(MediaTotals::default())),
            };
            let result = result.unwrap_or_else(|e| MediaResult::Failed(e.to_string()));
            self.ep.on_media(req.ticket, result, self.now);
        }
    }

    fn advance(&mut self, d: Duration) {
        let target = self.now + d;
        while let Some(dl) = self.ep.next_deadline().filter(|dl| *dl <= target) {
            self.now = dl.max(self.now);
            self.ep.on_timeout(self.now);
            self.pump();
        }
        self.now = target;
        self.ep.on_timeout(self.now);
        self.pump();
    }

    fn take(&mut self, who: u8) -> Vec<String> {
        self.inbox
            .remove(&addr(who))
            .unwrap_or_default()
            .into_iter()
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .collect()
    }

    /// The first message of `who`'s inbox starting with `start` (a status line or method).
    fn expect(&mut self, who: u8, start: &str) -> String {
        let all = self.take(who);
        all.iter()
            .find(|m| m.starts_with(start))
            .cloned()
            .unwrap_or_else(|| panic!("no {start:?} for .{who}; got {all:#?}"))
    }

    /// Alice's authenticated INVITE to `dialled` with `extra` headers and a PCMU offer.
    fn invite(&mut self, dialled: &str, extra: &str) -> String {
        self.invite_with(dialled, extra, ALICE_SDP)
    }

    /// Like `invite` with `sdp` as the body (empty: a delayed offer).
    fn invite_with(&mut self, dialled: &str, extra: &str, sdp: &str) -> String {
        let uri = format!("sip:{dialled}@{REALM}");
        let ct = if sdp.is_empty() {
            ""
        } else {
            "Content-Type: application/sdp\r\n"
        };
        let raw = |branch: u32, cseq: u32, auth: &str| {
            format!(
                "INVITE {uri} SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bKa{branch}\r\n\
                 Max-Forwards: 70\r\nFrom: <sip:alice@{REALM}>;tag=at\r\nTo: <{uri}>\r\n\
                 Call-ID: a-call\r\nCSeq: {cseq} INVITE\r\nContact: <sip:alice@192.0.2.10>\r\n\
                 {extra}{auth}{ct}Content-Length: {}\r\n\r\n{sdp}",
                sdp.len()
            )
        };
        self.branch += 1;
        self.deliver(addr(ALICE), &raw(self.branch, 1, ""));
        let challenge = self.expect(ALICE, "SIP/2.0 407");
        let m = Message::parse(challenge.as_bytes()).expect("well-formed test input");
        let offer = m
            .all(HeaderName::ProxyAuthenticate)
            .find(|o| o.contains("MD5"))
            .expect("well-formed test input")
            .to_string();
        let nonce = offer
            .split("nonce=\"")
            .nth(1)
            .expect("well-formed test input")
            .split('"')
            .next()
            .expect("well-formed test input")
            .to_string();
        let alg = Algorithm::Md5;
        let ha1 = alg.ha1("alice", REALM, "wonder");
        let ha2 = alg.hash_hex(&[b"INVITE", uri.as_bytes()]);
        let response = alg.hash_hex(&[ha1.as_bytes(), nonce.as_bytes(), ha2.as_bytes()]);
        let auth = format!(
            "Proxy-Authorization: Digest username=\"alice\", realm=\"{REALM}\", nonce=\"{nonce}\", \
             uri=\"{uri}\", response=\"{response}\", algorithm=MD5\r\n"
        );
        self.branch += 1;
        let invite = raw(self.branch, 2, &auth);
        self.deliver(addr(ALICE), &invite);
        invite
    }

    /// `who` answers the request `req` with `status` (an SDP for 2xx).
    fn answer(&mut self, who: u8, req: &str, status: u16) {
        let m = Message::parse(req.as_bytes()).expect("well-formed test input");
        let vias: String = m
            .all(HeaderName::Via)
            .map(|v| format!("Via: {v}\r\n"))
            .collect();
        let to = m.header(HeaderName::To).expect("well-formed test input");
        let to = if to.contains("tag=") {
            to.to_string()
        } else {
            format!("{to};tag=b{who}")
        };
        let sdp =
            if (200..300).contains(&status) && m.method().is_some_and(|x| x.as_str() == "INVITE") {
                format!(
                "v=0\r\no=- 1 1 IN IP4 192.0.2.{who}\r\ns=-\r\nc=IN IP4 192.0.2.{who}\r\nt=0 0\r\n\
                 m=audio 5000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
            )
            } else {
                String::new()
            };
        let ct = if sdp.is_empty() {
            ""
        } else {
            "Content-Type: application/sdp\r\n"
        };
        let raw = format!(
            "SIP/2.0 {status} X\r\n{vias}From: {}\r\nTo: {to}\r\nCall-ID: {}\r\nCSeq: {}\r\n\
             Contact: <sip:bob@192.0.2.{who}>\r\n{ct}Content-Length: {}\r\n\r\n{sdp}",
            m.header(HeaderName::From).expect("well-formed test input"),
            m.call_id().expect("well-formed test input"),
            m.header(HeaderName::CSeq).expect("well-formed test input"),
            sdp.len()
        );
        self.deliver(addr(who), &raw);
    }

    /// Alice ACKs the 2xx `ok` (to her INVITE or a re-INVITE: the CSeq is the 2xx's).
    fn ack(&mut self, ok: &str) {
        let m = Message::parse(ok.as_bytes()).expect("well-formed test input");
        let raw = format!(
            "ACK sip:mgw@192.0.2.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bKack{}\r\n\
             Max-Forwards: 70\r\nFrom: <sip:alice@{REALM}>;tag=at\r\nTo: {}\r\nCall-ID: a-call\r\n\
             CSeq: {} ACK\r\nContent-Length: 0\r\n\r\n",
            self.branch,
            m.header(HeaderName::To).expect("well-formed test input"),
            m.cseq().map_or(2, |c| c.seq)
        );
        self.deliver(addr(ALICE), &raw);
    }

    /// Alice in a dialog: re-INVITE without a body (a session refresh).
    fn refresh(&mut self, ok: &str) {
        let m = Message::parse(ok.as_bytes()).expect("well-formed test input");
        self.branch += 1;
        let raw = format!(
            "INVITE sip:mgw@192.0.2.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bKr{}\r\n\
             Max-Forwards: 70\r\nFrom: <sip:alice@{REALM}>;tag=at\r\nTo: {}\r\nCall-ID: a-call\r\n\
             CSeq: {} INVITE\r\nContact: <sip:alice@192.0.2.10>\r\nContent-Length: 0\r\n\r\n",
            self.branch,
            m.header(HeaderName::To).expect("well-formed test input"),
            10 + self.branch
        );
        self.deliver(addr(ALICE), &raw);
    }

    /// Sets up an answered call Alice -> 201 with `extra` headers on the INVITE; returns
    /// Alice's 200.
    fn answered(&mut self, extra: &str) -> String {
        self.invite("201", extra);
        let inv = self.expect(BOB, "INVITE ");
        self.answer(BOB, &inv, 200);
        let _ack_to_bob = self.expect(BOB, "ACK ");
        let ok = self.expect(ALICE, "SIP/2.0 200");
        self.ack(&ok);
        ok
    }

    fn ended(&self) -> Vec<&mgw_core::call::CallRecord> {
        self.events
            .iter()
            .filter_map(|e| match e {
                CallEvent::Ended(r) => Some(r),
                _ => None,
            })
            .collect()
    }
}

#[test]
fn session_timer_granted_refreshed_and_enforced() {
    let mut n = Net::new(false);
    let ok = n.answered("Supported: timer\r\nSession-Expires: 120\r\n");
    assert!(ok.contains("Session-Expires: 120;refresher=uac"), "{ok}");
    assert!(ok.contains("Require: timer"));
    // Refreshed after 70 s: no BYE at the first expiry.
    n.advance(Duration::from_secs(70));
    n.refresh(&ok);
    let r = n.expect(ALICE, "SIP/2.0 200");
    assert!(r.contains("Session-Expires: 120"), "{r}");
    n.ack(&r);
    n.advance(Duration::from_secs(60));
    assert!(n.take(BOB).iter().all(|m| !m.starts_with("BYE")));
    // Then silence: BYE to both before the interval ends (RFC 4028 section 10).
    n.advance(Duration::from_secs(60));
    n.expect(BOB, "BYE ");
    n.expect(ALICE, "BYE ");
    assert_eq!(n.ended().len(), 1);
    assert_eq!(n.ended()[0].q850, 102);
}

#[test]
fn too_short_session_interval_is_refused() {
    let mut n = Net::new(false);
    n.invite("201", "Supported: timer\r\nSession-Expires: 30\r\n");
    let r = n.expect(ALICE, "SIP/2.0 422");
    assert!(r.contains("Min-SE: 90"), "{r}");
}

#[test]
fn caller_that_never_acks_is_hung_up_after_64_t1() {
    let mut n = Net::new(false);
    n.invite("201", "");
    let inv = n.expect(BOB, "INVITE ");
    n.answer(BOB, &inv, 200);
    n.take(ALICE);
    n.advance(Duration::from_secs(31));
    let again = n.take(ALICE);
    assert!(
        again
            .iter()
            .filter(|m| m.starts_with("SIP/2.0 200"))
            .count()
            >= 5,
        "the 200 is retransmitted: {}",
        again.len()
    );
    n.advance(Duration::from_secs(2));
    n.expect(BOB, "BYE ");
    assert_eq!(n.ended().len(), 1);
}

#[test]
fn unanswered_call_times_out_with_cancel() {
    let mut n = Net::new(true);
    n.invite("201", "");
    let inv1 = n.expect(BOB, "INVITE ");
    let inv2 = n.expect(BOB2, "INVITE ");
    n.answer(BOB, &inv1, 180);
    n.answer(BOB2, &inv2, 180);
    n.take(ALICE);
    n.advance(Duration::from_secs(121));
    let r = n.expect(ALICE, "SIP/2.0 480");
    assert!(r.contains("no answer"), "{r}");
    n.expect(BOB, "CANCEL ");
    n.expect(BOB2, "CANCEL ");
}

#[test]
fn a_second_answer_is_acked_and_hung_up() {
    let mut n = Net::new(true);
    n.invite("201", "");
    let inv1 = n.expect(BOB, "INVITE ");
    let inv2 = n.expect(BOB2, "INVITE ");
    n.answer(BOB, &inv1, 200);
    // The second phone answers before its CANCEL arrived.
    n.take(BOB2);
    n.answer(BOB2, &inv2, 200);
    let late = n.take(BOB2);
    assert!(late.iter().any(|m| m.starts_with("ACK ")), "{late:#?}");
    assert!(late.iter().any(|m| m.starts_with("BYE ")), "{late:#?}");
    let ok = n.expect(ALICE, "SIP/2.0 200");
    n.ack(&ok);
    assert!(n.ended().is_empty(), "the call itself goes on");
}

#[test]
fn responses_for_another_workers_call_are_passed_on() {
    let mut n = Net::new(false);
    let raw = "SIP/2.0 180 Ringing\r\nVia: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKx\r\n\
               From: <sip:200@mgw.test>;tag=f3w1234\r\nTo: <sip:201@mgw.test>;tag=b\r\n\
               Call-ID: b3w99@mgw\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n";
    n.deliver(addr(BOB), raw);
    let (w, bytes, origin) = n.ep.poll_foreign().expect("passed on");
    assert_eq!((w, origin.source), (3, addr(BOB)));
    assert_eq!(bytes, raw.as_bytes());
}

/// RFC 3262 end to end: the callee's reliable 183 is PRACKed by mgw, and passed to the caller
/// as mgw's own reliable 183, retransmitted until the caller's PRACK.
#[test]
fn reliable_provisionals_pass_through() {
    let mut n = Net::new(false);
    n.invite("201", "Supported: 100rel\r\n");
    let inv = n.expect(BOB, "INVITE ");
    assert!(inv.contains("Supported: 100rel"), "{inv}");
    let m = Message::parse(inv.as_bytes()).expect("well-formed test input");
    let vias: String = m
        .all(HeaderName::Via)
        .map(|v| format!("Via: {v}\r\n"))
        .collect();
    let sdp = "v=0\r\no=- 1 1 IN IP4 192.0.2.20\r\ns=-\r\nc=IN IP4 192.0.2.20\r\nt=0 0\r\n\
               m=audio 5000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n";
    let ringing = format!(
        "SIP/2.0 183 Session Progress\r\n{vias}From: {}\r\nTo: {};tag=b20\r\nCall-ID: {}\r\n\
         CSeq: {}\r\nContact: <sip:bob@192.0.2.20>\r\nRequire: 100rel\r\nRSeq: 7\r\n\
         Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
        m.header(HeaderName::From).expect("well-formed test input"),
        m.header(HeaderName::To).expect("well-formed test input"),
        m.call_id().expect("well-formed test input"),
        m.header(HeaderName::CSeq).expect("well-formed test input"),
        sdp.len()
    );
    n.deliver(addr(BOB), &ringing);
    let prack = n.expect(BOB, "PRACK ");
    assert!(prack.contains("RAck: 7 1 INVITE"), "{prack}");
    let early = n.expect(ALICE, "SIP/2.0 183");
    assert!(
        early.contains("Require: 100rel") && early.contains("RSeq: 1"),
        "{early}"
    );
    assert!(early.contains("m=audio"), "early media SDP passed on");
    // No PRACK from Alice yet: the 183 comes again.
    n.advance(Duration::from_millis(600));
    n.expect(ALICE, "SIP/2.0 183");
    let to = Message::parse(early.as_bytes())
        .expect("well-formed test input")
        .header(HeaderName::To)
        .expect("well-formed test input")
        .to_string();
    let prack_a = format!(
        "PRACK sip:mgw@192.0.2.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bKp1\r\n\
         Max-Forwards: 70\r\nFrom: <sip:alice@{REALM}>;tag=at\r\nTo: {to}\r\nCall-ID: a-call\r\n\
         CSeq: 3 PRACK\r\nRAck: 1 2 INVITE\r\nContent-Length: 0\r\n\r\n"
    );
    n.deliver(addr(ALICE), &prack_a);
    n.expect(ALICE, "SIP/2.0 200");
    n.advance(Duration::from_secs(2));
    assert!(
        n.take(ALICE).iter().all(|m| !m.starts_with("SIP/2.0 183")),
        "no retransmission after the PRACK"
    );
}

#[test]
fn calls_reach_a_line_driver_by_prefix_and_by_served_number_within_its_limit() {
    let mut n = Net::with_peer();
    n.invite("05551000", "");
    n.expect(ALICE, "SIP/2.0 100");
    let out = n.expect(PRI, "INVITE sip:5551000@192.0.2.50:5060 SIP/2.0");
    assert!(out.contains("To: <sip:5551000@192.0.2.50:5060>"), "{out}");
    assert!(
        out.contains("sip:200@"),
        "caller ID is Alice's number: {out}"
    );
    // The driver's one channel is taken: the next call to it is refused.
    n.invite("300", "");
    let refused = n.expect(ALICE, "SIP/2.0 503");
    assert!(
        refused.contains("every channel of pri1 is in use"),
        "{refused}"
    );
    n.answer(PRI, &out, 486);
    n.expect(ALICE, "SIP/2.0 486");
    n.invite("300", "");
    n.expect(PRI, "INVITE sip:300@192.0.2.50:5060 SIP/2.0");
}

#[test]
fn a_peer_calls_a_subscriber_without_digest() {
    let mut n = Net::with_peer();
    let uri = format!("sip:201@{REALM}");
    let sdp = "v=0\r\no=- 1 1 IN IP4 192.0.2.50\r\ns=-\r\nc=IN IP4 192.0.2.50\r\nt=0 0\r\n\
               m=audio 4000 RTP/AVP 8\r\na=rtpmap:8 PCMA/8000\r\n";
    let invite = format!(
        "INVITE {uri} SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.50:5060;branch=z9hG4bKp1\r\n\
         Max-Forwards: 70\r\nFrom: <sip:0301234567@192.0.2.50>;tag=pt\r\nTo: <{uri}>\r\n\
         Call-ID: p-call\r\nCSeq: 1 INVITE\r\nContact: <sip:pri1@192.0.2.50>\r\n\
         Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
        sdp.len()
    );
    n.deliver(addr(PRI), &invite);
    n.expect(PRI, "SIP/2.0 100");
    let to_bob = n.expect(BOB, "INVITE ");
    assert!(
        to_bob.contains("sip:0301234567@"),
        "the PSTN caller's number: {to_bob}"
    );
    n.answer(BOB, &to_bob, 200);
    let ok = n.expect(PRI, "SIP/2.0 200");
    assert!(ok.contains("m=audio"), "{ok}");
    // From anywhere else the same INVITE is challenged.
    n.deliver(addr(ALICE), &invite.replace("p-call", "x-call"));
    n.expect(ALICE, "SIP/2.0 407");
}

#[test]
fn a_trunk_challenge_is_answered_with_its_credentials() {
    let mut n = Net::with_peer_as(|p| {
        p.credentials = Some(("gw".into(), "secret".into()));
        p.from = Some("sip:gw@upstream.test".into());
        p.domain = "upstream.test".into();
    });
    n.invite("0123", "");
    let first = n.expect(PRI, "INVITE sip:123@upstream.test SIP/2.0");
    assert!(
        first.contains("<sip:gw@upstream.test>;tag="),
        "From is the trunk's AOR: {first}"
    );
    let m = Message::parse(first.as_bytes()).expect("well-formed");
    let vias: String = m
        .all(HeaderName::Via)
        .map(|v| format!("Via: {v}\r\n"))
        .collect();
    let challenge = format!(
        "SIP/2.0 407 Proxy Authentication Required\r\n{vias}From: {}\r\nTo: {};tag=up1\r\n\
         Call-ID: {}\r\nCSeq: {}\r\nProxy-Authenticate: Digest realm=\"upstream.test\", \
         nonce=\"abc123\", qop=\"auth\", algorithm=MD5\r\nContent-Length: 0\r\n\r\n",
        m.header(HeaderName::From).expect("from"),
        m.header(HeaderName::To).expect("to"),
        m.call_id().expect("call-id"),
        m.header(HeaderName::CSeq).expect("cseq"),
    );
    n.deliver(addr(PRI), &challenge);
    let all = n.take(PRI);
    assert!(
        all.iter().any(|x| x.starts_with("ACK ")),
        "the 407 is ACKed: {all:#?}"
    );
    let second = all
        .iter()
        .find(|x| x.starts_with("INVITE "))
        .unwrap_or_else(|| panic!("INVITE again: {all:#?}"));
    assert!(
        second.contains("Proxy-Authorization: Digest username=\"gw\""),
        "{second}"
    );
    assert!(second.contains("CSeq: 2 INVITE"), "{second}");
    assert!(!second.contains("tag=up1"), "{second}");
    n.answer(PRI, second, 200);
    let ok = n.expect(ALICE, "SIP/2.0 200");
    n.ack(&ok);
    // Alice hangs up: the BYE to the trunk answers the provider's challenge pre-emptively.
    let m = Message::parse(ok.as_bytes()).expect("well-formed test input");
    n.branch += 1;
    let bye = format!(
        "BYE sip:mgw@192.0.2.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bKb{}\r\n\
         Max-Forwards: 70\r\nFrom: <sip:alice@{REALM}>;tag=at\r\nTo: {}\r\nCall-ID: a-call\r\n\
         CSeq: 30 BYE\r\nContent-Length: 0\r\n\r\n",
        n.branch,
        m.header(HeaderName::To).expect("well-formed test input"),
    );
    n.deliver(addr(ALICE), &bye);
    let to_trunk = n.expect(PRI, "BYE ");
    assert!(
        to_trunk.contains("Proxy-Authorization: Digest username=\"gw\"")
            && to_trunk.contains("nc=00000002"),
        "{to_trunk}"
    );
}

#[test]
fn a_trunk_that_is_unavailable_fails_over_to_its_next_address() {
    let mut n = Net::with_peer_as(|p| {
        *p.resolved.write().expect("lock") = vec![addr(PRI), addr(PRI + 1)];
    });
    n.invite("0123", "");
    let first = n.expect(PRI, "INVITE sip:123@");
    n.answer(PRI, &first, 503);
    let second = n.expect(PRI + 1, "INVITE sip:123@");
    assert!(second.contains("CSeq: 2 INVITE"), "{second}");
    n.answer(PRI + 1, &second, 200);
    n.expect(ALICE, "SIP/2.0 200");
}

#[test]
fn a_trunk_call_reaches_subscribers_only_and_a_challenge_never_reaches_the_caller() {
    let mut n = Net::with_peer_as(|p| p.local_only = true);
    // From the trunk, "0123" would be the trunk's own prefix route: not for outsiders.
    let sdp = "v=0\r\no=- 1 1 IN IP4 192.0.2.50\r\ns=-\r\nc=IN IP4 192.0.2.50\r\nt=0 0\r\n\
               m=audio 4000 RTP/AVP 8\r\na=rtpmap:8 PCMA/8000\r\n";
    let invite = |uri: &str, call: &str| {
        format!(
            "INVITE {uri} SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.50:5060;branch=z9hG4bK{call}\r\n\
             Max-Forwards: 70\r\nFrom: <sip:0301234567@192.0.2.50>;tag=pt\r\nTo: <{uri}>\r\n\
             Call-ID: {call}\r\nCSeq: 1 INVITE\r\nContact: <sip:up@192.0.2.50>\r\n\
             Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
            sdp.len()
        )
    };
    n.deliver(addr(PRI), &invite(&format!("sip:0123@{REALM}"), "t1"));
    n.expect(PRI, "SIP/2.0 404");
    // A provider that addresses mgw's Contact and names the DID in To only.
    let raw = invite("sip:gw@192.0.2.1:5060", "t2").replace(
        "To: <sip:gw@192.0.2.1:5060>",
        &format!("To: <sip:201@{REALM}>"),
    );
    n.deliver(addr(PRI), &raw);
    n.expect(BOB, "INVITE ");

    // Alice's call to a callee that challenges mgw: the caller gets 403, not the challenge.
    let mut n = Net::new(false);
    n.invite("201", "");
    let to_bob = n.expect(BOB, "INVITE ");
    n.answer(BOB, &to_bob, 407);
    let r = n.expect(ALICE, "SIP/2.0 403");
    assert!(r.contains("Reason: Q.850;cause=21"), "{r}");
}

#[test]
fn a_delayed_offer_takes_the_offer_from_the_answer_and_the_answer_from_the_ack() {
    let mut n = Net::new(false);
    n.invite_with("201", "", "");
    let to_bob = n.expect(BOB, "INVITE ");
    assert!(
        to_bob.ends_with("\r\n\r\n"),
        "no SDP to the callee: {to_bob}"
    );
    n.answer(BOB, &to_bob, 200);
    assert!(
        n.take(BOB).iter().all(|m| !m.starts_with("ACK")),
        "the callee's ACK waits for the caller's answer"
    );
    let ok = n.expect(ALICE, "SIP/2.0 200");
    assert!(
        ok.contains("m=audio") && ok.contains("c=IN IP4 192.0.2.1"),
        "mgw's offer: {ok}"
    );
    let m = Message::parse(ok.as_bytes()).expect("well-formed test input");
    let ack = format!(
        "ACK sip:mgw@192.0.2.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bKack9\r\n\
         Max-Forwards: 70\r\nFrom: <sip:alice@{REALM}>;tag=at\r\nTo: {}\r\nCall-ID: a-call\r\n\
         CSeq: 2 ACK\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{ALICE_SDP}",
        m.header(HeaderName::To).expect("well-formed test input"),
        ALICE_SDP.len()
    );
    n.deliver(addr(ALICE), &ack);
    let acks: Vec<String> = n
        .take(BOB)
        .into_iter()
        .filter(|m| m.starts_with("ACK"))
        .collect();
    assert_eq!(acks.len(), 1, "{acks:#?}");
    assert!(
        acks[0].contains("m=audio") && acks[0].contains("c=IN IP4 192.0.2.1"),
        "{}",
        acks[0]
    );
    n.advance(Duration::from_secs(5));
    assert!(
        n.take(ALICE).iter().all(|m| !m.starts_with("SIP/2.0 200")),
        "the caller's ACK stopped the 200's retransmissions"
    );
    // The callee's retransmitted 2xx gets the same ACK again.
    n.answer(BOB, &to_bob, 200);
    let again: Vec<String> = n
        .take(BOB)
        .into_iter()
        .filter(|m| m.starts_with("ACK"))
        .collect();
    assert_eq!(again, acks);
}

/// RFC 4028 with real refreshes: a caller's re-INVITE with a new offer keeps its timer (the
/// 2xx carries Session-Expires); a re-INVITE without an offer gets mgw's offer in the 2xx
/// (RFC 3261 14.2), retransmitted until the ACK; a caller without `timer` gets no timer.
#[test]
fn refreshes_with_and_without_an_offer() {
    let mut n = Net::new(false);
    let ok = n.answered("Supported: timer\r\nSession-Expires: 120\r\n");
    let offered = ok.split("\r\n\r\n").nth(1).unwrap_or("").to_string();
    assert!(offered.starts_with("v=0"), "{ok}");

    // A re-INVITE without SDP: mgw's last SDP to Alice, retransmitted until her ACK.
    n.advance(Duration::from_secs(10));
    n.refresh(&ok);
    let r = n.expect(ALICE, "SIP/2.0 200");
    assert!(r.contains("Session-Expires: 120"), "{r}");
    assert!(r.ends_with(&offered), "the same session offered again: {r}");
    n.advance(Duration::from_millis(600));
    n.expect(ALICE, "SIP/2.0 200");
    n.ack(&r);
    n.advance(Duration::from_secs(5));
    assert!(n.take(ALICE).is_empty(), "no retransmission after the ACK");

    // A re-INVITE with a new offer (hold): relayed to Bob, and the 2xx keeps the timer.
    let m = Message::parse(ok.as_bytes()).expect("well-formed test input");
    n.branch += 1;
    let hold = format!("{}a=sendonly\r\n", ALICE_SDP.replace("o=- 1 1", "o=- 1 2"));
    let raw = format!(
        "INVITE sip:mgw@192.0.2.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bKh{}\r\n\
         Max-Forwards: 70\r\nFrom: <sip:alice@{REALM}>;tag=at\r\nTo: {}\r\nCall-ID: a-call\r\n\
         CSeq: 40 INVITE\r\nContact: <sip:alice@192.0.2.10>\r\nSupported: timer\r\n\
         Session-Expires: 120\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{hold}",
        n.branch,
        m.header(HeaderName::To).expect("well-formed test input"),
        hold.len()
    );
    n.deliver(addr(ALICE), &raw);
    let to_bob = n.expect(BOB, "INVITE ");
    n.answer(BOB, &to_bob, 200);
    let r = n.expect(ALICE, "SIP/2.0 200");
    assert!(r.contains("Session-Expires: 120;refresher=uac"), "{r}");
    assert!(r.contains("CSeq: 40 INVITE"), "{r}");
    n.ack(&r);
    // Refreshed at 10 s and at the hold: no BYE before the interval from the hold runs out.
    n.advance(Duration::from_secs(90));
    assert!(n.take(BOB).iter().all(|m| !m.starts_with("BYE")));

    // Without `Supported: timer` there is no timer to enforce.
    let mut n = Net::new(false);
    let ok = n.answered("Session-Expires: 120\r\n");
    assert!(!ok.contains("Session-Expires"), "{ok}");
    n.advance(Duration::from_secs(600));
    assert!(n.take(BOB).iter().all(|m| !m.starts_with("BYE")));
}

/// The caller cancels in the moment between the callee's 200 and the media answer: the
/// caller gets 487, and the callee, already in the call, a BYE.
#[test]
fn cancel_while_the_answer_is_anchored_hangs_up_the_callee() {
    let mut n = Net::new(false);
    let invite = n.invite("201", "");
    let inv = n.expect(BOB, "INVITE ");
    n.hold_media = true;
    n.answer(BOB, &inv, 200);
    n.take(BOB);
    let m = Message::parse(invite.as_bytes()).expect("well-formed test input");
    let mut cancel = Vec::new();
    assert!(mgw_core::sip::builder::cancel_for(&mut cancel, &m));
    n.deliver(addr(ALICE), &String::from_utf8_lossy(&cancel));
    let replies = n.take(ALICE);
    assert!(
        replies.iter().any(|r| r.starts_with("SIP/2.0 487")),
        "{replies:#?}"
    );
    n.expect(BOB, "BYE ");
    n.hold_media = false;
    n.pump();
    let late = n.take(ALICE);
    assert!(
        late.iter().all(|r| !r.starts_with("SIP/2.0 200")),
        "no 200 to the INVITE after its 487: {late:#?}"
    );
    assert_eq!(n.ended().len(), 1);
}
