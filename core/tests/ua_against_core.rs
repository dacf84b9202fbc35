//! The user agent (`mgw_core::ua`) against core's own endpoint (registrar, digest verifier and
//! call switch), in virtual time: two user agents register with digest, one calls the other
//! through the B2BUA, and the call is answered and hung up. The media engine is a stand-in
//! that hands every SDP back unchanged.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mgw_core::admission::{Admission, EmergencyNumbers, DEFAULT_EMERGENCY};
use mgw_core::auth::NonceKey;
use mgw_core::call::{CallConfig, CallEvent, MediaOp, MediaResult, MediaTotals};
use mgw_core::directory::{Account, AccountState, Directory, LogOn};
use mgw_core::endpoint::{Endpoint, EndpointConfig, Origin};
use mgw_core::licence::LicencePool;
use mgw_core::registrar::LocationTable;
use mgw_core::ua::{
    CallHandle, CallState, Credentials, Ending, Event, InviteParams, RegistrationConfig,
    RegistrationId, RegistrationState, UaConfig, UserAgent,
};

const REALM: &str = "mgw.test";

fn addr(last: u8) -> SocketAddr {
    SocketAddr::from(([192, 0, 2, last], 5060))
}

const MGW: u8 = 1;
const ALICE: u8 = 10;
const BOB: u8 = 20;

fn sdp(last: u8) -> String {
    format!(
        "v=0\r\no=- 1 1 IN IP4 192.0.2.{last}\r\ns=-\r\nc=IN IP4 192.0.2.{last}\r\nt=0 0\r\n\
         m=audio 4000 RTP/AVP 8\r\na=rtpmap:8 PCMA/8000\r\n"
    )
}

struct Phone {
    at: SocketAddr,
    ua: UserAgent<SocketAddr>,
    events: Vec<Event>,
    reg: RegistrationId,
}

struct Net {
    ep: Endpoint<SocketAddr>,
    phones: Vec<Phone>,
    location: Arc<LocationTable>,
    now: Instant,
    calls: Vec<CallEvent>,
}

impl Net {
    fn new() -> Net {
        let directory = Arc::new(Directory::new());
        for (id, n) in [(1, "200"), (2, "201")] {
            directory.put_account(Account::new(id, n, n, AccountState::Enabled, None, vec![]));
        }
        directory.insert(LogOn::new(1, "alice", "wonder", "200", 1, REALM));
        directory.insert(LogOn::new(2, "bob", "builder", "201", 2, REALM));
        let location = Arc::new(LocationTable::new());
        location.set_number("alice", "200");
        location.set_number("bob", "201");
        let t0 = Instant::now();
        let ep = Endpoint::with_switch(
            EndpointConfig {
                domain: REALM.into(),
                server: "mgw-sim".into(),
                // Shorter than a registration, so refreshes meet stale nonces.
                nonce_lifetime: Duration::from_secs(300),
                nonce_key: NonceKey::new([5; 32]),
                sha256_first: false,
                md5_only_user_agents: vec![],
                epoch: t0,
                epoch_unix_ms: 1_700_000_000_000,
                timers: Default::default(),
                registrar: Default::default(),
                directory: directory.clone(),
                location: location.clone(),
                nonce_counts: Default::default(),
                admission: Admission::new(
                    directory,
                    Arc::new(LicencePool::new(10)),
                    EmergencyNumbers::new(&DEFAULT_EMERGENCY),
                ),
                calls: CallConfig {
                    domain: REALM.into(),
                    local: "192.0.2.1:5060".into(),
                    ..CallConfig::default()
                },
                worker: 0,
            },
            Box::new(|a, _| a),
        );
        let phones = [(ALICE, "alice", "wonder"), (BOB, "bob", "builder")]
            .into_iter()
            .map(|(last, user, password)| {
                let at = addr(last);
                let mut ua = UserAgent::new(UaConfig {
                    local: at.to_string(),
                    user_agent: format!("ua-{user}"),
                    seed: u64::from(last),
                    timers: Default::default(),
                });
                let reg = ua.add_registration(RegistrationConfig::new(
                    &format!("sip:{REALM}"),
                    &format!("sip:{user}@{REALM}"),
                    user,
                    &at.to_string(),
                    user,
                    password,
                    addr(MGW),
                ));
                Phone {
                    at,
                    ua,
                    events: Vec::new(),
                    reg,
                }
            })
            .collect();
        Net {
            ep,
            phones,
            location,
            now: t0,
            calls: Vec::new(),
        }
    }

    fn phone(&mut self, last: u8) -> &mut Phone {
        let at = addr(last);
        self.phones
            .iter_mut()
            .find(|p| p.at == at)
            .expect("a phone of the test")
    }

    /// Delivers every message and serves every media request until nothing moves.
    fn pump(&mut self) {
        let now = self.now;
        loop {
            let mut busy = false;
            while let Some(t) = self.ep.poll_transmit() {
                busy = true;
                let origin = Origin {
                    reply_to: addr(MGW),
                    source: addr(MGW),
                    reliable: false,
                };
                if let Some(p) = self.phones.iter_mut().find(|p| p.at == t.to) {
                    p.ua.on_message(&t.bytes, origin, now);
                }
            }
            for p in &mut self.phones {
                while let Some(t) = p.ua.poll_transmit() {
                    busy = true;
                    assert_eq!(t.to, addr(MGW), "every request goes to the switch");
                    let origin = Origin {
                        reply_to: p.at,
                        source: p.at,
                        reliable: false,
                    };
                    self.ep.on_message(&t.bytes, origin, now);
                }
                while let Some(e) = p.ua.poll_event() {
                    p.events.push(e);
                }
            }
            while let Some(req) = self.ep.poll_media() {
                busy = true;
                let result = match req.op {
                    MediaOp::Offer { sdp, .. } | MediaOp::Answer { sdp, .. } => {
                        MediaResult::Sdp(sdp)
                    }
                    MediaOp::Finish => MediaResult::Finished(MediaTotals::default()),
                };
                self.ep.on_media(req.ticket, result, now);
            }
            while let Some(e) = self.ep.poll_call_event() {
                self.calls.push(e);
            }
            if !busy {
                return;
            }
        }
    }

    fn deadline(&self) -> Option<Instant> {
        self.phones
            .iter()
            .filter_map(|p| p.ua.poll_timeout())
            .chain(self.ep.next_deadline())
            .min()
    }

    fn advance(&mut self, d: Duration) {
        let target = self.now + d;
        while let Some(at) = self.deadline().filter(|at| *at <= target) {
            self.now = at.max(self.now);
            let now = self.now;
            self.ep.on_timeout(now);
            for p in &mut self.phones {
                p.ua.handle_timeout(now);
            }
            self.pump();
        }
        self.now = target;
        let now = self.now;
        self.ep.on_timeout(now);
        for p in &mut self.phones {
            p.ua.handle_timeout(now);
        }
        self.pump();
    }

    fn events(&mut self, last: u8) -> Vec<Event> {
        std::mem::take(&mut self.phone(last).events)
    }

    fn state(&mut self, last: u8) -> RegistrationState {
        let p = self.phone(last);
        p.ua.registration(p.reg)
            .expect("registered account")
            .state()
    }

    fn failure(&mut self, last: u8) -> Option<String> {
        let p = self.phone(last);
        p.ua.registration(p.reg)
            .and_then(|r| r.last_failure().map(str::to_string))
    }

    fn register_both(&mut self) {
        let now = self.now;
        for p in &mut self.phones {
            p.ua.connect(p.reg, now).expect("known registration");
        }
        self.pump();
        for last in [ALICE, BOB] {
            let until = now + Duration::from_secs(1200);
            assert_eq!(
                self.state(last),
                RegistrationState::Registered { until },
                "{:?}",
                self.failure(last)
            );
        }
        for last in [ALICE, BOB] {
            let events = self.events(last);
            assert!(
                matches!(
                    &events[..],
                    [
                        Event::Registration {
                            state: RegistrationState::Registering,
                            ..
                        },
                        Event::Registration {
                            state: RegistrationState::Registered { .. },
                            ..
                        }
                    ]
                ),
                "{events:?}"
            );
        }
        let bob = self.location.get("bob").expect("bob's binding");
        assert_eq!(&*bob.bindings[0].contact, "sip:bob@192.0.2.20:5060");
    }

    /// Alice calls 201 with her credentials; returns her call and Bob's.
    fn call_bob(&mut self) -> (CallHandle, CallHandle) {
        let mut p = InviteParams::new(
            &format!("sip:201@{REALM}"),
            &format!("sip:200@{REALM}"),
            &sdp(ALICE),
            addr(MGW),
        );
        p.credentials = Some(Credentials {
            username: "alice".into(),
            password: "wonder".into(),
        });
        let now = self.now;
        let a = self.phone(ALICE).ua.invite(p, now).expect("INVITE sent");
        self.pump();
        let b = match &self.events(BOB)[..] {
            [Event::Incoming {
                call, to_user, sdp, ..
            }] => {
                assert_eq!(to_user.as_deref(), Some("201"));
                assert!(sdp.as_deref().is_some_and(|s| s.contains("192.0.2.10")));
                *call
            }
            other => panic!("bob got {other:?}"),
        };
        (a, b)
    }
}

#[test]
fn register_call_answer_and_hang_up_through_the_switch() {
    let mut n = Net::new();
    n.register_both();
    let (a, b) = n.call_bob();
    let now = n.now;
    n.phone(BOB).ua.ringing(b, now).expect("ringing");
    n.pump();
    assert_eq!(n.events(ALICE), [Event::Ringing { call: a, sdp: None }]);
    n.phone(BOB).ua.answer(b, &sdp(BOB), now).expect("answer");
    n.pump();
    assert_eq!(
        n.events(ALICE),
        [Event::Answered {
            call: a,
            sdp: Some(sdp(BOB))
        }]
    );
    assert_eq!(n.events(BOB), [Event::Confirmed { call: b, sdp: None }]);
    assert_eq!(n.phone(ALICE).ua.call_state(a), Some(CallState::Confirmed));
    assert_eq!(n.ep.calls(), 1);
    // Talk for a while: nothing is retransmitted, nothing times out.
    n.advance(Duration::from_secs(60));
    assert!(n.events(ALICE).is_empty() && n.events(BOB).is_empty());
    n.phone(ALICE).ua.hangup(a, Some(16), now).expect("hang up");
    n.pump();
    assert_eq!(
        n.events(BOB),
        [Event::Ended {
            call: b,
            ending: Ending::Bye,
            q850: Some(16)
        }]
    );
    assert!(matches!(n.calls.last(), Some(CallEvent::Ended(r)) if r.q850 == 16));
    assert_eq!(n.ep.calls(), 0);
    n.advance(Duration::from_secs(40));
    assert!(n.phone(ALICE).ua.call_state(a).is_none());
    assert!(n.phone(BOB).ua.call_state(b).is_none());
}

#[test]
fn busy_callee_reaches_the_caller_with_its_cause() {
    let mut n = Net::new();
    n.register_both();
    let (a, b) = n.call_bob();
    let now = n.now;
    n.phone(BOB)
        .ua
        .reject(b, 486, "Busy Here", Some(17), now)
        .expect("reject");
    n.pump();
    assert_eq!(
        n.events(ALICE),
        [Event::Ended {
            call: a,
            ending: Ending::Refused {
                status: 486,
                reason: "Busy Here".into()
            },
            q850: Some(17)
        }]
    );
}

#[test]
fn caller_cancels_while_it_rings() {
    let mut n = Net::new();
    n.register_both();
    let (a, b) = n.call_bob();
    let now = n.now;
    n.phone(BOB).ua.ringing(b, now).expect("ringing");
    n.pump();
    assert_eq!(n.events(ALICE), [Event::Ringing { call: a, sdp: None }]);
    n.phone(ALICE).ua.hangup(a, None, now).expect("hang up");
    n.pump();
    let bob = n.events(BOB);
    assert!(
        matches!(&bob[..], [Event::Ended { call, ending: Ending::Cancelled, .. }] if *call == b),
        "{bob:?}"
    );
    assert_eq!(
        n.events(ALICE),
        [Event::Ended {
            call: a,
            ending: Ending::Local,
            q850: None
        }]
    );
    n.advance(Duration::from_secs(40));
    assert_eq!(n.ep.calls(), 0);
    for last in [ALICE, BOB] {
        assert_eq!(n.phone(last).ua.active_calls(), 0);
        assert!(n.events(last).is_empty());
    }
}

#[test]
fn registrations_are_refreshed_across_stale_nonces_and_removed_at_shutdown() {
    let mut n = Net::new();
    n.register_both();
    n.events(ALICE);
    // 1080 s later the refresh reuses a nonce the switch considers stale (300 s): it is
    // challenged with stale=true and answered without a failure.
    n.advance(Duration::from_secs(1080));
    let until = n.now + Duration::from_secs(1200);
    assert_eq!(n.state(ALICE), RegistrationState::Registered { until });
    assert_eq!(n.failure(ALICE), None);
    let now = n.now;
    n.phone(ALICE).ua.shutdown(now);
    n.pump();
    assert_eq!(n.state(ALICE), RegistrationState::Disabled);
    assert!(n
        .location
        .get("alice")
        .is_none_or(|r| r.bindings.is_empty()));
    assert!(n
        .location
        .get("bob")
        .is_some_and(|r| !r.bindings.is_empty()));
    n.advance(Duration::from_secs(40));
    assert!(n.phone(ALICE).ua.is_idle());
}

#[test]
fn a_wrong_password_is_refused_for_good() {
    let mut n = Net::new();
    let now = n.now;
    let p = n.phone(BOB);
    let mut cfg = p.ua.registration(p.reg).expect("account").config().clone();
    cfg.password = "wrong".into();
    let reg = p.reg;
    p.ua.reconfigure(reg, cfg, now).expect("reconfigured");
    n.pump();
    assert_eq!(n.state(BOB), RegistrationState::Failed);
    // Core answers wrong credentials with 403 (it never tells a wrong password apart).
    assert_eq!(
        n.failure(BOB).as_deref(),
        Some("403 Forbidden from 192.0.2.1:5060")
    );
}
