//! Property tests of the DNS codec and the lookup: no datagram makes either panic; queries and
//! the responses built for tests parse back to what was encoded.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use mgw_core::dns::{
    Lookup, Message, RData, Rcode, Record, RecordType, ResolverConfig, Srv, Transport,
};
use proptest::prelude::*;

fn label() -> impl Strategy<Value = String> {
    "[a-z0-9_][a-z0-9_-]{0,20}"
}

fn name() -> impl Strategy<Value = String> {
    proptest::collection::vec(label(), 1..6).prop_map(|v| v.join("."))
}

fn qtype() -> impl Strategy<Value = RecordType> {
    prop_oneof![
        Just(RecordType::A),
        Just(RecordType::Aaaa),
        Just(RecordType::Srv),
        Just(RecordType::Cname),
        any::<u16>().prop_map(RecordType::from_code),
    ]
}

fn rdata() -> impl Strategy<Value = RData> {
    prop_oneof![
        any::<[u8; 4]>().prop_map(|o| RData::A(o.into())),
        any::<[u8; 16]>().prop_map(|o| RData::Aaaa(o.into())),
        name().prop_map(RData::Cname),
        (any::<u16>(), any::<u16>(), any::<u16>(), name()).prop_map(|(p, w, port, t)| {
            RData::Srv(Srv {
                priority: p,
                weight: w,
                port,
                target: t,
            })
        }),
    ]
}

fn record() -> impl Strategy<Value = Record> {
    (name(), any::<u32>(), rdata()).prop_map(|(n, ttl, d)| Record::new(&n, ttl, d))
}

/// A well-formed SRV response with compression, to mutate.
fn sample_response() -> Vec<u8> {
    let mut m = Vec::new();
    m.extend_from_slice(&[0x12, 0x34, 0x81, 0x80, 0, 1, 0, 2, 0, 0, 0, 1]);
    m.extend_from_slice(b"\x04_sip\x04_udp\x07example\x03com\x00\x00\x21\x00\x01");
    for (prio, port, host) in [(10u8, [0x13, 0xc4], b"sip1"), (20, [0x13, 0xc5], b"sip2")] {
        m.extend_from_slice(b"\xc0\x0c\x00\x21\x00\x01\x00\x00\x0e\x10\x00\x0d\x00");
        m.push(prio);
        m.extend_from_slice(&[0, 1]);
        m.extend_from_slice(&port);
        m.push(4);
        m.extend_from_slice(host);
        m.extend_from_slice(b"\xc0\x16");
    }
    m.extend_from_slice(
        b"\x04sip1\xc0\x16\x00\x01\x00\x01\x00\x00\x00\x3c\x00\x04\xc0\x00\x02\x01",
    );
    m
}

const NS: &str = "127.0.0.53:53";

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_bytes_never_panic(buf in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = Message::parse(&buf);
    }

    #[test]
    fn mutated_responses_never_panic(
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut buf = sample_response();
        prop_assert!(Message::parse(&buf).is_ok());
        for (at, byte) in edits {
            let i = at.index(buf.len());
            buf[i] = byte;
        }
        let keep = cut.index(buf.len() + 1);
        let _ = Message::parse(&buf);
        let _ = Message::parse(&buf[..keep]);
    }

    #[test]
    fn queries_round_trip(id in any::<u16>(), name in name(), qtype in qtype(), dot in any::<bool>()) {
        let written = if dot { format!("{name}.") } else { name.clone() };
        let bytes = mgw_core::dns::message::build_query(id, &written, qtype).unwrap();
        let back = Message::parse(&bytes).unwrap();
        prop_assert_eq!(&back, &Message::query(id, &name, qtype));
        prop_assert!(back.header.recursion_desired && !back.header.response);
    }

    #[test]
    fn responses_round_trip(
        id in any::<u16>(),
        answers in proptest::collection::vec(record(), 0..5),
        additional in proptest::collection::vec(record(), 0..3),
        rcode in 0u8..16,
    ) {
        let q = Message::query(id, "example.com", RecordType::Srv);
        let mut r = Message::response_to(&q, Rcode::from_code(rcode));
        r.answers = answers;
        r.additional = additional;
        let back = Message::parse(&r.encode().unwrap()).unwrap();
        prop_assert_eq!(back, r);
    }

    /// Whatever the "nameserver" sends with the right ID and source, the lookup neither panics
    /// nor hangs: it ends by the time every server has had its timeout.
    #[test]
    fn the_lookup_survives_any_answer(
        replies in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..200), 1..6),
        mutate_sample in any::<bool>(),
    ) {
        let ns: SocketAddr = NS.parse().unwrap();
        let start = Instant::now();
        let cfg = ResolverConfig::new(vec![ns], 5);
        let mut lookup = Lookup::new("example.com", None, Transport::Udp, cfg, start);
        let mut now = start;
        let mut replies = replies.into_iter();
        for _ in 0..200 {
            let mut sent = Vec::new();
            while let Some((_, bytes)) = lookup.poll_transmit() {
                sent.push(bytes);
            }
            for q in &sent {
                if let Some(mut reply) = replies.next() {
                    if mutate_sample {
                        let mut base = sample_response();
                        for (i, b) in reply.iter().enumerate() {
                            let at = usize::from(*b) % base.len();
                            base[at] ^= (i as u8) | 1;
                        }
                        reply = base;
                    }
                    if reply.len() >= 2 {
                        reply[..2].copy_from_slice(&q[..2]);
                    }
                    lookup.on_datagram(&reply, ns, now);
                }
            }
            match lookup.poll_timeout() {
                None => break,
                Some(t) => {
                    now = t;
                    lookup.handle_timeout(now);
                }
            }
        }
        prop_assert!(lookup.is_done());
        prop_assert!(now - start <= Duration::from_secs(15));
    }
}
