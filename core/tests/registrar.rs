//! The registrar through the sans-IO endpoint, in virtual time: digest flows (MD5 and SHA-256),
//! enumeration resistance, nonce replay, RFC 3261 10.3 rules, RFC 5626 flows, Path, expiry.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mgw_core::admission::{Admission, EmergencyNumbers, DEFAULT_EMERGENCY};
use mgw_core::auth::{Algorithm, NonceKey};
use mgw_core::directory::{Account, AccountState, Directory, LogOn};
use mgw_core::endpoint::{Endpoint, EndpointConfig, Origin};
use mgw_core::licence::LicencePool;
use mgw_core::registrar::{EventKind, ExpiryBounds, LocationTable, RegistrarConfig};
use mgw_core::sip::{HeaderName, Message};

const REALM: &str = "mgw.test";

struct Phone {
    ep: Endpoint<u32>,
    table: Arc<LocationTable>,
    directory: Arc<Directory>,
    licences: Arc<LicencePool>,
    source: SocketAddr,
    t0: Instant,
    now: Instant,
    branch: u32,
}

fn setup(cfg: RegistrarConfig) -> Phone {
    let directory = Arc::new(Directory::new());
    directory.put_account(Account::new(
        1,
        "line 200",
        "200",
        AccountState::Enabled,
        None,
        vec![],
    ));
    directory.insert(LogOn::new(1, "alice", "wonder", "200", 1, REALM));
    directory.insert(LogOn::new(2, "bob", "builder", "200", 1, REALM));
    let table = Arc::new(LocationTable::new());
    let licences = Arc::new(LicencePool::new(1));
    let t0 = Instant::now();
    let ep = Endpoint::new(EndpointConfig {
        domain: REALM.into(),
        server: "mgw-test".into(),
        nonce_lifetime: Duration::from_secs(30),
        nonce_key: NonceKey::new([9; 32]),
        sha256_first: false,
        md5_only_user_agents: vec!["baresip v1.".into()],
        epoch: t0,
        epoch_unix_ms: 1_700_000_000_000,
        timers: Default::default(),
        registrar: cfg,
        directory: directory.clone(),
        location: table.clone(),
        nonce_counts: Default::default(),
        admission: Admission::new(
            directory.clone(),
            licences.clone(),
            EmergencyNumbers::new(&DEFAULT_EMERGENCY),
        ),
        calls: Default::default(),
        worker: 0,
    });
    Phone {
        ep,
        table,
        directory,
        licences,
        source: src(),
        t0,
        now: t0,
        branch: 0,
    }
}

fn src() -> SocketAddr {
    SocketAddr::from(([192, 0, 2, 7], 5062))
}

struct Req<'a> {
    user: &'a str,
    call_id: &'a str,
    cseq: u32,
    contact: &'a str,
    expires: Option<u32>,
    extra: &'a str,
}

impl Phone {
    fn send(&mut self, raw: String) -> Message<'static> {
        self.ep.on_message(
            raw.as_bytes(),
            Origin {
                reply_to: 1,
                source: self.source,
                reliable: false,
            },
            self.now,
        );
        // The final answer: a call's 100 Trying comes first.
        let t = std::iter::from_fn(|| self.ep.poll_transmit())
            .last()
            .expect("an answer");
        let leaked: &'static [u8] = Box::leak(t.bytes.to_vec().into_boxed_slice());
        Message::parse(leaked).expect("answer parses")
    }

    fn request(&mut self, r: &Req<'_>, auth: &str) -> String {
        self.branch += 1;
        let expires = r
            .expires
            .map(|e| format!("Expires: {e}\r\n"))
            .unwrap_or_default();
        let contact = if r.contact.is_empty() {
            String::new()
        } else {
            format!("Contact: {}\r\n", r.contact)
        };
        format!(
            "REGISTER sip:{REALM} SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.7:5062;branch=z9hG4bKr{};rport\r\n\
             Max-Forwards: 70\r\nFrom: <sip:{u}@{REALM}>;tag=ft\r\nTo: <sip:{u}@{REALM}>\r\n\
             Call-ID: {}\r\nCSeq: {} REGISTER\r\n{contact}{expires}{}{auth}User-Agent: test-phone 1.0\r\n\
             Content-Length: 0\r\n\r\n",
            self.branch, r.call_id, r.cseq, r.extra, u = r.user
        )
    }

    /// REGISTER, answer the challenge with `password` (algorithm of the `which`th challenge),
    /// return the final answer.
    fn register_with(&mut self, r: &Req<'_>, password: &str, which: usize) -> Message<'static> {
        let raw = self.request(r, "");
        let challenge = self.send(raw);
        assert_eq!(challenge.status(), Some(401));
        let offers: Vec<&str> = challenge.all(HeaderName::WwwAuthenticate).collect();
        assert_eq!(offers.len(), 2);
        let offer = offers[which];
        let alg = if offer.contains("SHA-256") {
            Algorithm::Sha256
        } else {
            Algorithm::Md5
        };
        let nonce = nonce_of(offer);
        let auth = authorization(r.user, password, alg, nonce, 1);
        let second = Req {
            cseq: r.cseq + 1,
            ..*r
        };
        let raw = self.request(&second, &auth);
        self.send(raw)
    }

    /// INVITE `dialled` as `user`, answering the 407 with `password`; the final answer.
    fn invite(&mut self, user: &str, password: &str, dialled: &str) -> Message<'static> {
        let uri = format!("sip:{dialled}@{REALM}");
        let raw = |branch: u32, cseq: u32, auth: &str| {
            format!(
                "INVITE {uri} SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.7:5062;branch=z9hG4bKi{branch};rport\r\n\
                 Max-Forwards: 70\r\nFrom: <sip:{user}@{REALM}>;tag=fi\r\nTo: <{uri}>\r\n\
                 Call-ID: inv-{branch}\r\nCSeq: {cseq} INVITE\r\nContact: <sip:{user}@10.0.0.7:5062>\r\n\
                 {auth}Content-Length: 0\r\n\r\n"
            )
        };
        self.branch += 1;
        let challenge = self.send(raw(self.branch, 1, ""));
        assert_eq!(challenge.status(), Some(407));
        let offer = challenge
            .all(HeaderName::ProxyAuthenticate)
            .find(|o| o.contains("MD5"))
            .expect("an MD5 offer");
        let nonce = nonce_of(offer);
        let alg = Algorithm::Md5;
        let ha1 = alg.ha1(user, REALM, password);
        let ha2 = alg.hash_hex(&[b"INVITE", uri.as_bytes()]);
        let response = alg.hash_hex(&[ha1.as_bytes(), nonce.as_bytes(), ha2.as_bytes()]);
        let auth = format!(
            "Proxy-Authorization: Digest username=\"{user}\", realm=\"{REALM}\", nonce=\"{nonce}\", \
             uri=\"{uri}\", response=\"{response}\", algorithm=MD5\r\n"
        );
        self.branch += 1;
        self.send(raw(self.branch, 2, &auth))
    }

    fn advance(&mut self, d: Duration) {
        let target = self.now + d;
        while let Some(dl) = self.ep.next_deadline().filter(|dl| *dl <= target) {
            self.now = dl.max(self.now);
            self.ep.on_timeout(self.now);
        }
        self.now = target;
        self.ep.on_timeout(self.now);
    }

    fn events(&mut self) -> Vec<(EventKind, String, usize)> {
        std::iter::from_fn(|| self.ep.poll_event())
            .map(|e| (e.kind, e.binding.contact.to_string(), e.remaining))
            .collect()
    }
}

/// The nonce of a challenge (the test's own parsing; a missing nonce yields "" and fails later).
fn nonce_of(challenge: &str) -> &str {
    challenge
        .split("nonce=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap_or("")
}

fn authorization(user: &str, password: &str, alg: Algorithm, nonce: &str, nc: u32) -> String {
    let ha1 = alg.ha1(user, REALM, password);
    let uri = format!("sip:{REALM}");
    let ha2 = alg.hash_hex(&[b"REGISTER", uri.as_bytes()]);
    let nc = format!("{nc:08x}");
    let response = alg.hash_hex(&[
        ha1.as_bytes(),
        nonce.as_bytes(),
        nc.as_bytes(),
        b"c0ffee",
        b"auth",
        ha2.as_bytes(),
    ]);
    format!(
        "Authorization: Digest username=\"{user}\", realm=\"{REALM}\", nonce=\"{nonce}\", uri=\"{uri}\", \
         response=\"{response}\", algorithm={}, qop=auth, nc={nc}, cnonce=\"c0ffee\"\r\n",
        alg.as_str()
    )
}

fn alice<'a>(contact: &'a str, expires: Option<u32>) -> Req<'a> {
    Req {
        user: "alice",
        call_id: "call-a",
        cseq: 1,
        contact,
        expires,
        extra: "",
    }
}

#[test]
fn register_with_md5_and_sha256_lists_contacts() {
    let mut p = setup(RegistrarConfig::default());
    for (which, contact) in [
        (1, "<sip:alice@10.0.0.7:5062>"),
        (0, "<sip:alice@10.0.0.8:5062>"),
    ] {
        let ok = p.register_with(&alice(contact, Some(600)), "wonder", which);
        assert_eq!(ok.status(), Some(200), "algorithm offer {which}");
        p.ep.poll_event();
    }
    let ok = p.register_with(
        &Req {
            cseq: 10,
            ..alice("", None)
        },
        "wonder",
        1,
    );
    let contacts: Vec<&str> = ok.list(HeaderName::Contact).collect();
    assert_eq!(contacts.len(), 2, "a query lists every binding");
    assert!(contacts
        .iter()
        .all(|c| c.contains(";expires=600") || c.contains(";expires=599")));
    let rec = p.table.get("alice").unwrap();
    assert_eq!(rec.bindings[0].user_agent.as_ref(), "test-phone 1.0");
    assert_eq!(rec.bindings[0].source, src());
}

#[test]
fn unknown_users_and_wrong_passwords_look_the_same() {
    let mut p = setup(RegistrarConfig::default());
    let wrong = p.register_with(&alice("<sip:alice@h>", None), "nope", 0);
    let unknown = p.register_with(
        &Req {
            user: "mallory",
            ..alice("<sip:m@h>", None)
        },
        "x",
        0,
    );
    assert_eq!(wrong.status(), Some(403));
    assert_eq!(unknown.status(), Some(403));
    let reason = |m: &Message<'_>| match m.start {
        mgw_core::sip::StartLine::Response(s) => s.reason.to_string(),
        _ => String::new(),
    };
    assert_eq!(reason(&wrong), reason(&unknown));
    assert_eq!(wrong.header_count(), unknown.header_count());
    // The challenges differ only in their nonce.
    let r1 = p.request(&alice("<sip:alice@h>", None), "");
    let c1 = p.send(r1);
    let r2 = p.request(
        &Req {
            user: "mallory",
            ..alice("<sip:m@h>", None)
        },
        "",
    );
    let c2 = p.send(r2);
    let strip = |m: &Message<'_>| {
        m.all(HeaderName::WwwAuthenticate)
            .map(|v| {
                v.split("nonce=").next().unwrap().to_string() + v.split("algorithm").nth(1).unwrap()
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(strip(&c1), strip(&c2));
    assert!(p.table.get("alice").is_none());
}

#[test]
fn replayed_nonce_count_is_refused_and_a_log_on_registers_only_itself() {
    let mut p = setup(RegistrarConfig::default());
    let r = alice("<sip:alice@h>", None);
    let raw = p.request(&r, "");
    let ch = p.send(raw);
    let nonce = ch
        .header(HeaderName::WwwAuthenticate)
        .unwrap()
        .split("nonce=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_string();
    let auth = authorization("alice", "wonder", Algorithm::Sha256, &nonce, 1);
    let raw = p.request(
        &Req {
            cseq: 2,
            ..alice("<sip:alice@h>", None)
        },
        &auth,
    );
    assert_eq!(p.send(raw).status(), Some(200));
    // The same nonce-count again (a captured request replayed with a new branch): refused.
    let raw = p.request(
        &Req {
            cseq: 3,
            ..alice("<sip:alice@h>", None)
        },
        &auth,
    );
    let again = p.send(raw);
    assert_eq!(again.status(), Some(401));
    assert!(again
        .header(HeaderName::WwwAuthenticate)
        .unwrap()
        .contains("stale=true"));
    // alice's credentials for bob's address: 403.
    let auth2 = authorization("alice", "wonder", Algorithm::Sha256, &nonce, 2);
    let raw = p.request(
        &Req {
            user: "bob",
            cseq: 4,
            ..alice("<sip:bob@h>", None)
        },
        &auth2,
    );
    assert_eq!(p.send(raw).status(), Some(403));
}

#[test]
fn rfc3261_rules() {
    let mut p = setup(RegistrarConfig::default());
    assert_eq!(
        p.register_with(&alice("<sip:alice@h>", Some(30)), "wonder", 0)
            .status(),
        Some(423)
    );
    let r = p.register_with(&alice("<sip:alice@h>;expires=30", Some(600)), "wonder", 0);
    assert_eq!(r.status(), Some(423));
    assert_eq!(r.header(HeaderName::MinExpires), Some("60"));
    // Longer than max_expires is shortened.
    let r = p.register_with(&alice("<sip:alice@h>", Some(99_999)), "wonder", 0);
    assert!(r
        .header(HeaderName::Contact)
        .unwrap()
        .ends_with(";expires=3600"));
    // Same Call-ID, lower CSeq: refused, binding untouched.
    let r = p.register_with(
        &Req {
            cseq: 0,
            ..alice("<sip:alice@h>", Some(0))
        },
        "wonder",
        0,
    );
    assert_eq!(r.status(), Some(500));
    assert_eq!(p.table.get("alice").unwrap().bindings.len(), 1);
    // '*' needs Expires: 0.
    let r = p.register_with(
        &Req {
            cseq: 20,
            ..alice("*", Some(60))
        },
        "wonder",
        0,
    );
    assert_eq!(r.status(), Some(400));
    p.events();
    let r = p.register_with(
        &Req {
            cseq: 30,
            ..alice("*", Some(0))
        },
        "wonder",
        0,
    );
    assert_eq!(r.status(), Some(200));
    assert!(p.table.get("alice").is_none());
    assert_eq!(
        p.events(),
        vec![(EventKind::Removed, "sip:alice@h".to_string(), 0)]
    );
}

#[test]
fn expiry_removes_the_binding_and_raises_an_event() {
    let mut p = setup(RegistrarConfig::default());
    assert_eq!(
        p.register_with(&alice("<sip:alice@h>", Some(60)), "wonder", 0)
            .status(),
        Some(200)
    );
    assert_eq!(
        p.events(),
        vec![(EventKind::Added, "sip:alice@h".to_string(), 1)]
    );
    p.advance(Duration::from_secs(59));
    assert!(p.table.get("alice").is_some());
    assert!(p.events().is_empty());
    p.advance(Duration::from_secs(2));
    assert!(p.table.get("alice").is_none(), "expired on time");
    assert_eq!(
        p.events(),
        vec![(EventKind::Expired, "sip:alice@h".to_string(), 0)]
    );
    // A refresh pushes expiry out; the stale wheel entry does nothing.
    assert_eq!(
        p.register_with(
            &Req {
                cseq: 5,
                ..alice("<sip:alice@h>", Some(60))
            },
            "wonder",
            0
        )
        .status(),
        Some(200)
    );
    p.advance(Duration::from_secs(50));
    assert_eq!(
        p.register_with(
            &Req {
                cseq: 7,
                ..alice("<sip:alice@h>", Some(60))
            },
            "wonder",
            0
        )
        .status(),
        Some(200)
    );
    p.advance(Duration::from_secs(20));
    assert!(
        p.table.get("alice").is_some(),
        "refreshed binding outlives its first expiry"
    );
    p.advance(Duration::from_secs(45));
    assert!(p.table.get("alice").is_none());
    let _ = p.t0;
}

#[test]
fn outbound_flows_path_and_max_contacts() {
    let mut p = setup(RegistrarConfig {
        max_contacts: 2,
        ..Default::default()
    });
    let inst = "<sip:alice@10.0.0.7:1111>;+sip.instance=\"<urn:uuid:00000000-0000-1000-8000-000A95A0E128>\";reg-id=1";
    let path = "Path: <sip:edge.example.net;lr>\r\nSupported: path, outbound\r\n";
    let r = p.register_with(
        &Req {
            extra: path,
            ..alice(inst, Some(600))
        },
        "wonder",
        0,
    );
    assert_eq!(r.status(), Some(200));
    assert_eq!(
        r.header(HeaderName::Path),
        Some("<sip:edge.example.net;lr>")
    );
    assert_eq!(r.header(HeaderName::Require), Some("outbound"));
    assert!(r.header(HeaderName::Contact).unwrap().contains("reg-id=1"));
    // The same device from a new port (after a reboot): its flow is replaced, not added.
    let moved = inst.replace("1111", "2222");
    let r = p.register_with(
        &Req {
            call_id: "call-b",
            extra: path,
            ..alice(&moved, Some(600))
        },
        "wonder",
        0,
    );
    assert_eq!(r.list(HeaderName::Contact).count(), 1);
    let rec = p.table.get("alice").unwrap();
    assert_eq!(&*rec.bindings[0].contact, "sip:alice@10.0.0.7:2222");
    assert_eq!(&*rec.bindings[0].path[0], "<sip:edge.example.net;lr>");
    // Beyond max_contacts the least recently refreshed binding makes room.
    p.advance(Duration::from_secs(1));
    p.register_with(
        &Req {
            call_id: "c2",
            ..alice("<sip:alice@second>", Some(600))
        },
        "wonder",
        0,
    );
    p.advance(Duration::from_secs(1));
    let r = p.register_with(
        &Req {
            call_id: "c3",
            ..alice("<sip:alice@third>", Some(600))
        },
        "wonder",
        0,
    );
    let contacts: Vec<&str> = r.list(HeaderName::Contact).collect();
    assert_eq!(contacts.len(), 2);
    assert!(!contacts.iter().any(|c| c.contains("2222")), "{contacts:?}");
}

#[test]
fn retransmitted_register_is_absorbed_not_replayed() {
    let mut p = setup(RegistrarConfig::default());
    let r = alice("<sip:alice@h>", Some(600));
    let raw = p.request(&r, "");
    let ch = p.send(raw);
    let nonce = ch
        .header(HeaderName::WwwAuthenticate)
        .unwrap()
        .split("nonce=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_string();
    let auth = authorization("alice", "wonder", Algorithm::Md5, &nonce, 1);
    let raw = p.request(&Req { cseq: 2, ..r }, &auth);
    let first = p.send(raw.clone());
    assert_eq!(first.status(), Some(200));
    // Its response was lost; the phone retransmits the identical request.
    let again = p.send(raw);
    assert_eq!(
        again.status(),
        Some(200),
        "answered from the transaction, not as a replay"
    );
    assert_eq!(p.ep.stats.retransmissions, 1);
}

#[test]
fn expiry_spread_shortens_within_bounds() {
    let mut p = setup(RegistrarConfig {
        expiry_spread_pct: 20,
        ..Default::default()
    });
    let r = p.register_with(&alice("<sip:alice@h>", Some(1000)), "wonder", 0);
    let c = r.header(HeaderName::Contact).unwrap();
    let e: u32 = c.rsplit("expires=").next().unwrap().parse().unwrap();
    assert!((800..=1000).contains(&e), "{e}");
}

fn bob<'a>(contact: &'a str, expires: Option<u32>) -> Req<'a> {
    Req {
        user: "bob",
        call_id: "call-b",
        ..alice(contact, expires)
    }
}

/// Seeds 000/002: registering takes no licence; the first call does; log-off and a missed
/// keepalive free it at once; with none free only emergency calls go; bad credentials get
/// nothing, not even emergency.
#[test]
fn floating_licences_follow_the_seed() {
    let mut p = setup(RegistrarConfig::default());
    let ok = p.register_with(&alice("<sip:alice@10.0.0.7:5062>", Some(600)), "wonder", 1);
    assert_eq!(ok.status(), Some(200));
    let ok = p.register_with(&bob("<sip:bob@10.0.0.9:5062>", Some(120)), "builder", 1);
    assert_eq!(ok.status(), Some(200), "registration never needs a licence");
    assert_eq!(p.licences.in_use(), 0);

    // Alice calls: the single licence is hers (this endpoint switches no calls: 480).
    assert_eq!(p.invite("alice", "wonder", "201").status(), Some(480));
    assert!(p.licences.holds(1));
    // Bob: emergency only.
    let refused = p.invite("bob", "builder", "201");
    assert_eq!(refused.status(), Some(403));
    assert!(refused
        .reason()
        .unwrap_or("")
        .contains("emergency calls only"));
    assert_eq!(p.invite("bob", "builder", "112").status(), Some(480));
    assert!(!p.licences.holds(2));
    // Wrong password: not even an emergency call.
    assert_eq!(p.invite("bob", "wrong", "112").status(), Some(403));
    assert_eq!(p.invite("mallory", "x", "112").status(), Some(403));

    // Alice logs off: free at once, and Bob gets it.
    let off = p.register_with(
        &Req {
            cseq: 20,
            ..alice("<sip:alice@10.0.0.7:5062>", Some(0))
        },
        "wonder",
        1,
    );
    assert_eq!(off.status(), Some(200));
    assert_eq!(p.licences.in_use(), 0);
    assert_eq!(p.invite("bob", "builder", "201").status(), Some(480));
    assert!(p.licences.holds(2));

    // Bob's keepalive lapses: free at the expiry, not later.
    p.advance(Duration::from_secs(119));
    assert!(p.licences.holds(2));
    p.advance(Duration::from_secs(2));
    assert_eq!(p.licences.in_use(), 0);

    // Reset frees every licence; holders claim again on their next call.
    assert_eq!(p.invite("alice", "wonder", "201").status(), Some(480));
    assert_eq!(p.licences.reset(), [1]);
    assert_eq!(p.invite("bob", "builder", "201").status(), Some(480));
    assert!(p.licences.holds(2));
}

/// Seed 003: a disabled account cannot register; outside its networks every answer is the one
/// for a wrong password, to register and to call.
#[test]
fn account_state_and_allowed_networks() {
    let mut p = setup(RegistrarConfig::default());
    p.directory.put_account(Account::new(
        1,
        "line 200",
        "200",
        AccountState::Disabled,
        None,
        vec![],
    ));
    let r = p.register_with(&alice("<sip:alice@10.0.0.7:5062>", Some(600)), "wonder", 1);
    assert_eq!(r.status(), Some(403));
    assert_eq!(r.reason(), Some("Forbidden: account disabled"));

    p.directory.put_account(Account::new(
        1,
        "line 200",
        "200",
        AccountState::Pending,
        None,
        vec!["10.0.0.0/8".parse().expect("cidr")],
    ));
    let outside = p.register_with(&alice("<sip:alice@10.0.0.7:5062>", Some(600)), "wonder", 1);
    let wrong = p.register_with(&alice("<sip:alice@10.0.0.7:5062>", Some(600)), "nope", 1);
    assert_eq!(outside.status(), Some(403));
    assert_eq!(
        outside.reason(),
        wrong.reason(),
        "nothing tells the user exists"
    );
    assert_eq!(
        p.invite("alice", "wonder", "112").reason(),
        Some("Forbidden")
    );

    p.source = SocketAddr::from(([10, 1, 2, 3], 5062));
    let inside = p.register_with(&alice("<sip:alice@10.0.0.7:5062>", Some(600)), "wonder", 1);
    assert_eq!(inside.status(), Some(200), "a pending account may register");
    let pending = p.invite("alice", "wonder", "201");
    assert_eq!(pending.reason(), Some("Forbidden: account not yet enabled"));
    assert_eq!(p.licences.in_use(), 0, "a refused call claims nothing");
}

/// Seed 000: the keepalive (automatic log-out) interval comes from the device's profile.
#[test]
fn keepalive_profile_bounds_the_registration() {
    let mut p = setup(RegistrarConfig::default());
    let mut alice_lo = (*p.directory.get("alice").expect("alice")).clone();
    alice_lo.keepalive = Some(ExpiryBounds {
        min: 30,
        max: 90,
        default: 60,
    });
    p.directory.insert(alice_lo);
    let r = p.register_with(&alice("<sip:alice@10.0.0.7:5062>", Some(20)), "wonder", 1);
    assert_eq!(r.status(), Some(423));
    assert_eq!(r.header(HeaderName::MinExpires), Some("30"));
    let r = p.register_with(&alice("<sip:alice@10.0.0.7:5062>", Some(3600)), "wonder", 1);
    assert!(r
        .header(HeaderName::Contact)
        .unwrap_or("")
        .ends_with("expires=90"));
    let r = p.register_with(&alice("<sip:alice@10.0.0.8:5062>", None), "wonder", 1);
    assert!(r
        .all(HeaderName::Contact)
        .any(|c| c.contains("10.0.0.8") && c.ends_with("expires=60")));
    // Bob has no profile: the registrar's defaults.
    let r = p.register_with(&bob("<sip:bob@10.0.0.9:5062>", Some(40)), "builder", 1);
    assert_eq!(r.status(), Some(423));
    assert_eq!(r.header(HeaderName::MinExpires), Some("60"));
}
