//! Every torture message through the sans-IO endpoint: the status each one gets (or that it is
//! dropped), plus the headers RFC 3261 requires with that status.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mgw_core::admission::{Admission, EmergencyNumbers};
use mgw_core::auth::NonceKey;
use mgw_core::endpoint::{Endpoint, EndpointConfig, Origin};
use mgw_core::licence::LicencePool;
use mgw_core::sip::{validate, HeaderName, Message};

/// What mgw answers to each torture message: a status, or `drop` (no answer). The running
/// server is checked against the same table in the mgw crate's tests.
fn expected() -> Vec<(String, Option<u16>)> {
    include_str!("torture/expected.tsv")
        .lines()
        .skip(1)
        .map(|l| {
            let mut cols = l.split('\t');
            let file = cols.next().unwrap_or_default().to_string();
            (file, cols.next().and_then(|c| c.parse().ok()))
        })
        .collect()
}

fn load(file: &str) -> Vec<u8> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/torture");
    let p = format!("{dir}/rfc4475/{file}");
    std::fs::read(&p)
        .or_else(|_| std::fs::read(format!("{dir}/rfc5118/{file}")))
        .expect("file")
}

fn endpoint() -> Endpoint<u32> {
    Endpoint::new(EndpointConfig {
        domain: "mgw.test".into(),
        server: "mgw-test".into(),
        nonce_lifetime: Duration::from_secs(30),
        nonce_key: NonceKey::new([3; 32]),
        sha256_first: false,
        md5_only_user_agents: vec!["baresip v1.".into()],
        epoch: Instant::now(),
        timers: Default::default(),
        epoch_unix_ms: 1_700_000_000_000,
        registrar: Default::default(),
        directory: Default::default(),
        location: Default::default(),
        nonce_counts: Default::default(),
        admission: Admission::new(
            Default::default(),
            Arc::new(LicencePool::new(1)),
            EmergencyNumbers::default(),
        ),
        calls: Default::default(),
        worker: 0,
    })
}

#[test]
fn every_torture_message_gets_its_verdict() {
    let table = include_str!("torture/verdicts.tsv");
    let expect = expected();
    assert_eq!(table.lines().skip(1).count(), expect.len());
    let src: SocketAddr = "192.0.2.99:5999".parse().unwrap();
    for line in table.lines().skip(1) {
        let file = line.split('\t').next().unwrap();
        let expected = expect
            .iter()
            .find(|e| e.0 == file)
            .unwrap_or_else(|| panic!("{file} not in EXPECTED"))
            .1;
        let mut ep = endpoint();
        ep.on_message(
            &load(file),
            Origin {
                reply_to: 7,
                source: src,
                reliable: false,
            },
            Instant::now(),
        );
        let out: Vec<_> = std::iter::from_fn(|| ep.poll_transmit()).collect();
        match expected {
            None => assert!(
                out.is_empty(),
                "{file}: expected no answer, got {:?}",
                out.first()
                    .map(|t| String::from_utf8_lossy(&t.bytes).into_owned())
            ),
            Some(code) => {
                assert_eq!(out.len(), 1, "{file}: expected exactly one answer");
                let resp = Message::parse(&out[0].bytes)
                    .unwrap_or_else(|e| panic!("{file}: our answer does not parse: {e}"));
                let text = String::from_utf8_lossy(&out[0].bytes).into_owned();
                assert_eq!(resp.status(), Some(code), "{file}: {text}");
                let reason = match resp.start {
                    mgw_core::sip::StartLine::Response(s) => s.reason,
                    _ => "",
                };
                assert!(!reason.is_empty(), "{file}: reason phrase names the fault");
                if code != 400 {
                    validate::response(&resp)
                        .unwrap_or_else(|e| panic!("{file}: our answer is invalid: {e}\n{text}"));
                    assert!(resp.to().and_then(|t| t.tag()).is_some(), "{file}: To-tag");
                }
                let has = |h| resp.header(h).is_some();
                match code {
                    401 => assert_eq!(resp.all(HeaderName::WwwAuthenticate).count(), 2, "{file}"),
                    407 => assert_eq!(resp.all(HeaderName::ProxyAuthenticate).count(), 2, "{file}"),
                    405 | 501 => assert!(has(HeaderName::Allow), "{file}"),
                    420 => assert!(has(HeaderName::Unsupported), "{file}"),
                    415 => assert!(has(HeaderName::Accept), "{file}"),
                    200 => assert!(
                        has(HeaderName::Allow)
                            && has(HeaderName::Accept)
                            && resp.all(HeaderName::Supported).next().is_some(),
                        "{file}"
                    ),
                    _ => {}
                }
            }
        }
    }
}

#[test]
fn unsupported_require_lists_every_tag() {
    let mut ep = endpoint();
    ep.on_message(
        &load("bext01.dat"),
        Origin {
            reply_to: 1,
            source: "192.0.2.1:5060".parse().unwrap(),
            reliable: false,
        },
        Instant::now(),
    );
    let t = ep.poll_transmit().unwrap();
    let resp = Message::parse(&t.bytes).unwrap();
    let tags: Vec<_> = resp.list(HeaderName::Unsupported).collect();
    assert_eq!(tags, ["nothingSupportsThis", "nothingSupportsThisEither"]);
}

fn reg_with(branch: u32, auth: &str) -> Vec<u8> {
    format!(
        "REGISTER sip:mgw.test SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK{branch}\r\n\
         From: <sip:u1@mgw.test>;tag=a\r\nTo: <sip:u1@mgw.test>\r\nCall-ID: c1\r\n\
         CSeq: {branch} REGISTER\r\n{auth}Content-Length: 0\r\n\r\n"
    )
    .into_bytes()
}

fn origin() -> Origin<u32> {
    Origin {
        reply_to: 1,
        source: SocketAddr::from(([192, 0, 2, 1], 5060)),
        reliable: false,
    }
}

fn status_of(ep: &mut Endpoint<u32>) -> Option<u16> {
    ep.poll_transmit()
        .and_then(|t| Message::parse(&t.bytes).ok().and_then(|m| m.status()))
}

#[test]
fn stale_nonce_is_flagged_and_unknown_credentials_get_403() {
    let mut ep = endpoint();
    let start = Instant::now();
    ep.on_message(&reg_with(1, ""), origin(), start);
    let t = ep.poll_transmit().unwrap();
    let r = Message::parse(&t.bytes).unwrap();
    let challenge = r.header(HeaderName::WwwAuthenticate).unwrap();
    assert!(challenge.contains("MD5"), "MD5 first by default");
    let nonce = challenge
        .split("nonce=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_string();
    let auth = format!(
        "Authorization: Digest username=\"u1\", realm=\"mgw.test\", nonce=\"{nonce}\", uri=\"sip:mgw.test\", response=\"00\"\r\n"
    );
    ep.on_message(
        &reg_with(2, &auth),
        origin(),
        start + Duration::from_secs(1),
    );
    assert_eq!(status_of(&mut ep), Some(403));
    ep.on_message(
        &reg_with(3, &auth),
        origin(),
        start + Duration::from_secs(60),
    );
    let t = ep.poll_transmit().unwrap();
    let r = Message::parse(&t.bytes).unwrap();
    assert_eq!(r.status(), Some(401));
    assert!(r
        .header(HeaderName::WwwAuthenticate)
        .unwrap()
        .contains("stale=true"));
}

#[test]
fn register_challenge_is_stateless_and_repeatable() {
    let mut ep = endpoint();
    let t0 = Instant::now();
    ep.on_message(&reg_with(7, ""), origin(), t0);
    let first = ep.poll_transmit().unwrap().bytes;
    ep.on_message(&reg_with(7, ""), origin(), t0 + Duration::from_millis(500));
    let again = ep.poll_transmit().unwrap().bytes;
    let parse = |b: &[u8]| {
        let m = Message::parse(b).unwrap();
        (m.status(), m.to().unwrap().tag().unwrap().to_string())
    };
    // A retransmitted REGISTER without credentials is challenged again, with the same To-tag
    // (a fresh nonce is as good as the first); nothing is kept for it.
    assert_eq!(parse(&first), parse(&again));
    assert_eq!(parse(&first).0, Some(401));
    assert_eq!(ep.transactions(), 0);
    assert_eq!(ep.next_deadline(), None);
}

#[test]
fn locally_answered_requests_leave_no_state() {
    let mut ep = endpoint();
    let t0 = Instant::now();
    let invite = load("esc01.dat");
    ep.on_message(&invite, origin(), t0);
    let first = ep.poll_transmit().unwrap().bytes;
    assert_eq!(Message::parse(&first).unwrap().status(), Some(407));
    // A retransmission is answered again, with the same To-tag; nothing is kept meanwhile.
    assert_eq!(ep.transactions(), 0);
    assert_eq!(ep.next_deadline(), None);
    ep.on_message(&invite, origin(), t0 + Duration::from_millis(500));
    let again = ep.poll_transmit().unwrap().bytes;
    let tag = |b: &[u8]| {
        Message::parse(b)
            .unwrap()
            .to()
            .unwrap()
            .tag()
            .unwrap()
            .to_string()
    };
    assert_eq!(tag(&first), tag(&again));
    // Its ACK matches nothing and is dropped quietly.
    let m = Message::parse(&invite).unwrap();
    let text = String::from_utf8_lossy(&invite).into_owned();
    let ack = format!(
        "ACK {} SIP/2.0\r\nVia: {}\r\nFrom: {}\r\nTo: {};tag={}\r\nCall-ID: {}\r\nCSeq: {} ACK\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
        text.split(' ').nth(1).unwrap(),
        m.header(HeaderName::Via).unwrap(),
        m.header(HeaderName::From).unwrap(),
        m.header(HeaderName::To).unwrap(),
        tag(&first),
        m.call_id().unwrap(),
        m.cseq().unwrap().seq,
    );
    ep.on_message(ack.as_bytes(), origin(), t0 + Duration::from_millis(600));
    assert!(ep.poll_transmit().is_none());
    for _ in 0..100 {
        ep.on_message(&options_n(7), origin(), t0);
        assert!(ep.poll_transmit().is_some());
    }
    assert_eq!(ep.transactions(), 0, "OPTIONS are answered statelessly");
}

fn options_n(n: u32) -> Vec<u8> {
    format!(
        "OPTIONS sip:mgw.test SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKo{n}\r\n\
         From: <sip:a@mgw.test>;tag=x\r\nTo: <sip:mgw.test>\r\nCall-ID: o{n}\r\nCSeq: 1 OPTIONS\r\n\
         Content-Length: 0\r\n\r\n"
    )
    .into_bytes()
}
