//! The rtpengine ng protocol against the sans-IO relay: an offer/answer exchange as Kamailio's
//! rtpengine module sends it, media flowing through the ports the rewritten SDPs name, query,
//! re-offer and delete, and the errors a peer gets.

use std::net::SocketAddr;
use std::time::Instant;

use mgw_media::ng::bencode::Value;
use mgw_media::ng::NgControl;
use mgw_media::relay::{PortPool, Relay, RelayConfig, Verdict};
use mgw_media::rtp::header::write_header;
use mgw_media::sdp::SessionDescription;

struct Rig {
    ng: NgControl,
    relay: Relay,
    ports: PortPool,
    t0: Instant,
}

impl Rig {
    fn new() -> Rig {
        let t0 = Instant::now();
        Rig {
            ng: NgControl::new("203.0.113.1".parse().expect("ip"), 5),
            relay: Relay::new(RelayConfig::default(), t0),
            ports: PortPool::new(30000, 30099),
            t0,
        }
    }

    fn send(&mut self, cookie: &str, cmd: &Value) -> Value {
        let mut d = format!("{cookie} ").into_bytes();
        cmd.encode(&mut d);
        let reply = self
            .ng
            .handle(&d, &mut self.relay, &mut self.ports, self.t0)
            .expect("a reply");
        let prefix = format!("{cookie} ");
        assert!(reply.starts_with(prefix.as_bytes()), "cookie echoed");
        Value::parse(&reply[prefix.len()..]).expect("bencoded reply")
    }
}

fn sdp(ip: &str, port: u16) -> String {
    format!(
        "v=0\r\no=- 1 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\nm=audio {port} RTP/AVP 0 101\r\n\
         a=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\na=candidate:1 1 UDP 1 {ip} {port} typ host\r\n\
         a=sendrecv\r\n"
    )
}

fn command(name: &str, extra: Vec<(&'static str, Value)>) -> Value {
    let mut entries = vec![("command", Value::text(name))];
    entries.extend(extra);
    Value::dict(entries)
}

fn port_of(sdp_text: &str) -> (String, u16) {
    let s = SessionDescription::parse(sdp_text.as_bytes()).expect("rewritten SDP parses");
    (
        s.media_address(0).expect("address").to_string(),
        s.media[0].port,
    )
}

#[test]
fn offer_answer_media_query_delete() {
    let mut rig = Rig::new();
    assert_eq!(
        rig.send("1_ping", &command("ping", vec![])).str("result"),
        Some("pong")
    );
    let offer = rig.send(
        "2_offer",
        &command(
            "offer",
            vec![
                ("call-id", Value::text("c1")),
                ("from-tag", Value::text("ft")),
                ("sdp", Value::text(&sdp("192.0.2.10", 4000))),
                ("flags", Value::List(vec![Value::text("trust-address")])),
                ("replace", Value::List(vec![Value::text("origin")])),
                ("ICE", Value::text("remove")),
            ],
        ),
    );
    assert_eq!(offer.str("result"), Some("ok"), "{offer:?}");
    let offered = offer.str("sdp").expect("sdp");
    assert!(!offered.contains("candidate"), "ICE removed");
    assert!(offered.contains("o=- 1 2 IN IP4 203.0.113.1"), "{offered}");
    let (ip, to_callee_port) = port_of(offered);
    assert_eq!(ip, "203.0.113.1");

    let answer = rig.send(
        "3_answer",
        &command(
            "answer",
            vec![
                ("call-id", Value::text("c1")),
                ("from-tag", Value::text("ft")),
                ("to-tag", Value::text("tt")),
                ("sdp", Value::text(&sdp("198.51.100.20", 6000))),
            ],
        ),
    );
    let (_, to_caller_port) = port_of(answer.str("sdp").expect("sdp"));
    assert_ne!(to_caller_port, to_callee_port);

    // The caller sends to the port in the answer; mgw sends it on to the callee.
    let mut p = vec![0u8; 172];
    write_header(&mut p, false, 0, 1, 0, 5);
    let caller: SocketAddr = "192.0.2.10:4000".parse().expect("addr");
    assert_eq!(
        rig.relay.on_packet(to_caller_port, caller, &mut p, rig.t0),
        Verdict::Forward {
            from_port: to_callee_port,
            to: "198.51.100.20:6000".parse().expect("addr"),
            len: 172
        }
    );
    let q = rig.send(
        "4_query",
        &command("query", vec![("call-id", Value::text("c1"))]),
    );
    let totals = q.get("totals").expect("totals");
    assert_eq!(
        totals.get("RTP").and_then(|r| r.get("packets")),
        Some(&Value::Int(1))
    );

    // A re-offer from the caller keeps the ports.
    let again = rig.send(
        "5_offer",
        &command(
            "offer",
            vec![
                ("call-id", Value::text("c1")),
                ("from-tag", Value::text("ft")),
                ("sdp", Value::text(&sdp("192.0.2.10", 4100))),
            ],
        ),
    );
    assert_eq!(port_of(again.str("sdp").expect("sdp")).1, to_callee_port);

    let del = rig.send(
        "6_delete",
        &command("delete", vec![("call-id", Value::text("c1"))]),
    );
    assert_eq!(del.str("result"), Some("ok"));
    assert_eq!(rig.ng.calls(), 0);
    assert_eq!(rig.relay.sessions(), 0);
    assert_eq!(rig.ports.in_use(), 0);
}

#[test]
fn errors_name_the_problem() {
    let mut rig = Rig::new();
    let e = rig.send(
        "a",
        &command("delete", vec![("call-id", Value::text("nope"))]),
    );
    assert_eq!(
        (e.str("result"), e.str("error-reason")),
        (Some("error"), Some("Unknown call-id"))
    );
    let e = rig.send("b", &command("offer", vec![("call-id", Value::text("x"))]));
    assert!(e.str("error-reason").unwrap_or("").contains("from-tag"));
    let e = rig.send(
        "c",
        &command(
            "offer",
            vec![
                ("call-id", Value::text("x")),
                ("from-tag", Value::text("f")),
                ("sdp", Value::text("v=9")),
            ],
        ),
    );
    assert!(e.str("error-reason").unwrap_or("").contains("SDP"));
    let e = rig.send("d", &command("teleport", vec![]));
    assert!(e.str("error-reason").unwrap_or("").contains("teleport"));
    let garbage = rig
        .ng
        .handle(b"e not-bencode", &mut rig.relay, &mut rig.ports, rig.t0)
        .expect("reply");
    assert!(garbage.starts_with(b"e d6:result5:error"));
    assert!(rig
        .ng
        .handle(b"nocookie", &mut rig.relay, &mut rig.ports, rig.t0)
        .is_none());
}

#[test]
fn silent_calls_are_expired() {
    let mut rig = Rig::new();
    let offer = rig.send(
        "o",
        &command(
            "offer",
            vec![
                ("call-id", Value::text("quiet")),
                ("from-tag", Value::text("ft")),
                ("sdp", Value::text(&sdp("192.0.2.10", 4000))),
            ],
        ),
    );
    assert_eq!(offer.str("result"), Some("ok"));
    rig.relay
        .on_timeout(rig.t0 + std::time::Duration::from_secs(61));
    let Some(mgw_media::relay::MediaEvent::Inactive { session, .. }) = rig.relay.poll_event()
    else {
        panic!("an inactivity event");
    };
    let id = rig.ng.expire(session, &mut rig.relay, &mut rig.ports);
    assert_eq!(id.as_deref(), Some("quiet"));
    assert_eq!(
        (rig.ng.calls(), rig.relay.sessions(), rig.ports.in_use()),
        (0, 0, 0)
    );
}
