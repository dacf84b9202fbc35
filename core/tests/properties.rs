//! Property tests: no input makes the parser panic; what the builders write parses back to the
//! same values; framing a stream does not depend on how it was split into reads.

use mgw_core::sip::framing::{frame, Frame};
use mgw_core::sip::{validate, HeaderName, Message, NameAddr, RequestBuilder, Uri, Via};
use proptest::prelude::*;

fn corpus() -> Vec<Vec<u8>> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests");
    let mut v = Vec::new();
    for sub in ["torture/rfc4475", "torture/rfc5118", "messages"] {
        for e in std::fs::read_dir(format!("{dir}/{sub}"))
            .expect("dir")
            .flatten()
        {
            v.push(std::fs::read(e.path()).expect("file"));
        }
    }
    v
}

fn touch_everything(buf: &[u8]) {
    if let Ok(m) = Message::parse(buf) {
        let _ = validate::request(&m);
        let _ = validate::response(&m);
        let _ = (
            m.cseq(),
            m.top_via(),
            m.from(),
            m.to(),
            m.request_uri(),
            m.max_forwards(),
            m.expires(),
        );
        for h in m.headers() {
            let _ = Via::parse(h.value);
            let _ = NameAddr::parse(h.value);
            let _ = Uri::parse(h.value);
        }
        for c in m.list(HeaderName::Contact) {
            let _ = NameAddr::parse(c).map(|n| (n.tag(), n.uri.host(), n.uri.user_decoded()));
        }
    }
    let _ = frame(buf);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_bytes_never_panic(buf in proptest::collection::vec(any::<u8>(), 0..2048)) {
        touch_everything(&buf);
    }

    #[test]
    fn mutated_corpus_never_panics(idx in 0usize..64, edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8), cut in any::<prop::sample::Index>()) {
        let corpus = corpus();
        let mut buf = corpus[idx % corpus.len()].clone();
        for (at, byte) in edits {
            let i = at.index(buf.len().max(1));
            if i < buf.len() { buf[i] = byte; }
        }
        let end = cut.index(buf.len() + 1);
        touch_everything(&buf[..end]);
    }

    #[test]
    fn built_requests_parse_back(
        user in "[a-z][a-z0-9._-]{0,15}",
        host in "[a-z][a-z0-9-]{0,10}(\\.[a-z]{2,5}){0,2}",
        port in proptest::option::of(1u16..),
        tag in "[A-Za-z0-9]{1,20}",
        call_id in "[A-Za-z0-9.@-]{1,40}",
        seq in 0u32..(1 << 31),
        branch in "[A-Za-z0-9]{1,24}",
        body in proptest::collection::vec(any::<u8>(), 0..300),
    ) {
        let uri = match port { Some(p) => format!("sip:{user}@{host}:{p}"), None => format!("sip:{user}@{host}") };
        let mut buf = Vec::new();
        RequestBuilder::new(&mut buf, "INVITE", &uri)
            .header("Via", &format!("SIP/2.0/UDP {host};branch=z9hG4bK{branch};rport"))
            .header("From", &format!("<sip:caller@{host}>;tag={tag}"))
            .header("To", &format!("<{uri}>"))
            .header("Call-ID", &call_id)
            .header("CSeq", &format!("{seq} INVITE"))
            .header("Max-Forwards", "70")
            .finish(Some("application/sdp"), &body);
        let m = Message::parse(&buf).expect("built message parses");
        validate::request(&m).expect("built message is valid");
        let ruri = m.request_uri().expect("uri");
        prop_assert_eq!(ruri.user, Some(user.as_str()));
        prop_assert_eq!(ruri.host, host.as_str());
        prop_assert_eq!(ruri.port, port);
        prop_assert_eq!(m.from().and_then(|f| f.tag()), Some(tag.as_str()));
        prop_assert_eq!(m.call_id(), Some(call_id.as_str()));
        prop_assert_eq!(m.cseq().map(|c| c.seq), Some(seq));
        let expected_branch = format!("z9hG4bK{branch}");
        prop_assert_eq!(m.top_via().and_then(|v| v.branch()), Some(expected_branch.as_str()));
        prop_assert_eq!(m.body, &body[..]);
        prop_assert_eq!(frame(&buf), Ok(Frame::Message { len: buf.len() }));
    }

    #[test]
    fn framing_is_independent_of_read_boundaries(splits in proptest::collection::vec(any::<prop::sample::Index>(), 0..6)) {
        let msgs = ["register.sip", "invite.sip", "ok200.sip"].map(|n| {
            std::fs::read(format!("{}/tests/messages/{n}", env!("CARGO_MANIFEST_DIR"))).expect("message")
        });
        let stream: Vec<u8> = msgs.iter().flat_map(|m| {
            let mut v = b"\r\n\r\n".to_vec();
            v.extend_from_slice(m);
            v
        }).collect();
        let mut cuts: Vec<usize> = splits.iter().map(|s| s.index(stream.len())).collect();
        cuts.sort_unstable();
        cuts.push(stream.len());
        // Feed the stream in chunks, framing as the engine does.
        let mut buf = Vec::new();
        let mut got = Vec::new();
        let mut pos = 0;
        for cut in cuts {
            buf.extend_from_slice(&stream[pos..cut]);
            pos = cut;
            loop {
                match frame(&buf) {
                    Ok(Frame::Message { len }) => { got.push(buf[..len].to_vec()); buf.drain(..len); }
                    Ok(Frame::KeepAlive { len, .. }) => { buf.drain(..len); }
                    Ok(Frame::Incomplete) => break,
                    Err(e) => panic!("{e:?}"),
                }
            }
        }
        prop_assert_eq!(got, msgs.to_vec());
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// Any IPv4 or IPv6 network prints and parses back to itself, contains its own address and
    /// every address that shares its prefix.
    #[test]
    fn cidr_roundtrip_and_containment(bits in any::<u128>(), prefix in 0u8..=128, v4 in any::<bool>(), host in any::<u128>()) {
        use mgw_core::cidr::Cidr;
        use std::net::IpAddr;
        let (addr, max, host_bits): (IpAddr, u8, u128) = if v4 {
            let p = prefix % 33;
            let mask = if p == 0 { 0 } else { u32::MAX << (32 - u32::from(p)) };
            let net = (bits as u32) & mask;
            let inside = net | ((host as u32) & !mask);
            (IpAddr::V4(net.into()), p, u128::from(inside))
        } else {
            let mask = if prefix == 0 { 0 } else { u128::MAX << (128 - u32::from(prefix)) };
            let net = bits & mask;
            (IpAddr::V6(net.into()), prefix, net | (host & !mask))
        };
        let text = format!("{addr}/{max}");
        let c: Cidr = text.parse().expect("a masked network parses");
        prop_assert_eq!(c.to_string(), text.clone());
        prop_assert_eq!(c.to_string().parse::<Cidr>().expect("again"), c);
        prop_assert!(c.contains(addr));
        let inside: IpAddr = if v4 {
            IpAddr::V4((host_bits as u32).into())
        } else {
            IpAddr::V6(host_bits.into())
        };
        prop_assert!(c.contains(inside));
    }

    /// The accounts CSV parser never panics, and every row it accepts is usable.
    #[test]
    fn csv_rows_accepted_are_valid(text in "(user,password,number\n)?([a-z0-9,#+*. ]{0,20}\n){0,5}") {
        use mgw_core::directory::{parse_csv, valid_number, valid_user};
        if let Ok(rows) = parse_csv(&text) {
            for r in rows {
                prop_assert!(valid_user(&r.user));
                prop_assert!(valid_number(&r.number));
                prop_assert!(!r.password.is_empty());
            }
        }
    }
}
