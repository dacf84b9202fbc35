//! RFC 4475 and RFC 5118 torture messages against the message layer. Each row of
//! `torture/verdicts.tsv` is checked here at the parser level; the handling that needs the
//! gateway's policy (420, 415, 416, 401, 483...) is checked in `endpoint_torture.rs` and against the
//! running server in the mgw crate's tests.

use mgw_core::sip::{validate, HeaderName, Message, ParseError};

fn load(file: &str) -> Vec<u8> {
    let dir = env!("CARGO_MANIFEST_DIR");
    let rfc4475 = format!("{dir}/tests/torture/rfc4475/{file}");
    let path = if std::path::Path::new(&rfc4475).exists() {
        rfc4475
    } else {
        format!("{dir}/tests/torture/rfc5118/{file}")
    };
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn check(buf: &[u8]) -> Result<bool, ParseError> {
    let m = Message::parse(buf)?;
    if m.is_request() {
        validate::request(&m).map(|_| true)
    } else {
        validate::response(&m).map(|_| false)
    }
}

/// Every row of the verdict table: what the parser alone must conclude.
#[test]
fn every_verdict_row_is_honoured_by_the_parser() {
    let table = include_str!("torture/verdicts.tsv");
    let mut rows = 0;
    for line in table.lines().skip(1) {
        let cols: Vec<&str> = line.split('\t').collect();
        let (file, class, handling) = (cols[0], cols[2], cols[3]);
        let buf = load(file);
        let result = check(&buf);
        rows += 1;
        match (class, file) {
            // Semantic faults that are syntax faults too.
            ("semantic", "insuf.dat" | "multi01.dat" | "mcl01.dat") => {
                assert_eq!(
                    result.map_err(|e| e.status()),
                    Err(400),
                    "{file}: {handling}"
                )
            }
            // A broadcast Via is well-formed; the gateway discards it as an unmatched response.
            ("semantic", _) => assert!(result.is_ok(), "{file}: {handling}: {result:?}"),
            ("valid", _) => assert!(result.is_ok(), "{file}: {handling}: {result:?}"),
            ("invalid", "baddate.dat") => assert!(result.is_ok(), "{file}: Date is ignored"),
            ("invalid", "badvers.dat") => {
                assert_eq!(result, Err(ParseError::UnsupportedVersion))
            }
            ("invalid", "bigcode.dat" | "scalarlg.dat") => {
                assert!(result.is_err(), "{file}: response must be dropped");
                assert!(buf.starts_with(b"SIP/2.0"));
            }
            ("invalid", _) => {
                assert_eq!(
                    result.map_err(|e| e.status()),
                    Err(400),
                    "{file}: {handling}"
                )
            }
            _ => panic!("unknown class {class} for {file}"),
        }
    }
    assert_eq!(rows, 61, "the corpus has 49 + 12 messages");
}

/// The valid messages parse to the right values: start line, Call-ID, CSeq, top branch, Via
/// count and body length, checked by reading the files.
#[test]
fn valid_messages_parse_to_the_right_values() {
    #[rustfmt::skip]
    let expect: &[(&str, &str, &str, u32, &str, usize, usize)] = &[
        ("wsinv.dat", "INVITE chair-dnrc.example.com", "wsinv.ndaksdj@192.0.2.1", 9, "390skdjuw", 3, 150),
        ("intmeth.dat", "!interesting-Method0123456789_*+`.%indeed'~ example.com", "intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{", 139122385, "z9hG4bK-.!%66*_+`'~", 1, 0),
        ("esc01.dat", "INVITE example.net", "esc01.239409asdfakjkn23onasd0-3234", 234234, "z9hG4bKkdjuw", 1, 150),
        ("escnull.dat", "REGISTER example.com", "escnull.39203ndfvkjdasfkq3w4otrq0adsfdfnavd", 14398234, "z9hG4bKkdjuw", 1, 0),
        ("esc02.dat", "RE%47IST%45R registrar.example.com", "esc02.asdfnqwo34rq23i34jrjasdcnl23nrlknsdf", 29344, "z9hG4bK209%fzsnel234", 1, 0),
        ("lwsdisp.dat", "OPTIONS example.com", "lwsdisp.1234abcd@funky.example.com", 60, "z9hG4bKkdjuw", 1, 0),
        ("dblreq.dat", "REGISTER example.com", "dblreq.0ha0isndaksdj99sdfafnl3lk233412", 8, "z9hG4bKkdjuw23492", 1, 0),
        ("semiuri.dat", "OPTIONS example.com", "semiuri.0ha0isndaksdj", 8, "z9hG4bKkdjuw", 1, 0),
        ("transports.dat", "OPTIONS example.com", "transports.kijh4akdnaqjkwendsasfdj", 60, "z9hG4bKkdjuw", 5, 0),
        ("mpart01.dat", "MESSAGE example.org", "3d9485ad0c49859b@Zmx1ZmZ5LW1hYy0xNi5sb2NhbA..", 1, "z9hG4bK-d87543-4dade06d0bdb11ee-1--d87543-", 1, 553),
        ("unreason.dat", "200 = 2**3 * 5**2 но сто девяносто девять - простое", "unreason.1234ksdfak3j2erwedfsASdf", 35, "z9hG4bK1324923", 1, 154),
        ("noreason.dat", "100 ", "noreason.asndj203insdf99223ndf", 35, "z9hG4bK2398ndaoe", 1, 0),
        ("badbranch.dat", "OPTIONS example.com", "badbranch.sadonfo23i420jv0as0derf3j3n", 8, "z9hG4bK", 1, 0),
        ("inv2543.dat", "INVITE example.com", "inv2543.1717@ift.client.example.com", 56, "", 1, 105),
        ("ipv6-good", "REGISTER [2001:db8::10]", "SSG9559905523997077@hlau_4100", 98176, "z9hG4bKas3-111", 1, 0),
        ("port-ambiguous", "REGISTER [2001:db8::10:5070]", "SSG9559905523997077@hlau_4100", 98176, "z9hG4bKas3-111", 1, 0),
        ("port-unambiguous", "REGISTER [2001:db8::10]", "SSG9559905523997077@hlau_4100", 98176, "z9hG4bKas3-111", 1, 0),
        ("via-received-param-with-delim", "BYE [2001:db8::10]", "SSG9559905523997077@hlau_4100", 321, "z9hG4bKas3-111", 1, 0),
        ("via-received-param-no-delim", "OPTIONS [2001:db8::10]", "SSG95523997077@hlau_4100", 921, "z9hG4bKas3", 1, 0),
        ("ipv4-mapped-ipv6", "INVITE example.com", "SSG9559905523997077@hlau_4100", 612, "z9hG4bKbh19", 2, 236),
        ("mult-ip-in-header", "BYE host.example.net", "997077@lau_4100", 89187, "z9hG4bKas3-111", 3, 0),
        ("mult-ip-in-sdp", "INVITE [2001:db8::10]", "SSG9559905523997077@hlau_4100", 8912, "z9hG4bKas3-111", 1, 181),
        ("ipv6-in-sdp", "INVITE [2001:db8::10]", "SSG9559905523997077@hlau_4100", 8612, "z9hG4bKas3-111", 1, 241),
        ("ipv6-bug-abnf-3-colons", "OPTIONS [2001:db8:::192.0.2.1]", "G9559905523997077@hlau_4100", 689, "z9hG4bKas3-111", 1, 0),
        ("ipv6-correct-abnf-2-colons", "OPTIONS [2001:db8::192.0.2.1]", "G9559905523997077@hlau_4100", 689, "z9hG4bKas3-111", 1, 0),
    ];
    for &(file, start, call_id, cseq, branch, vias, body) in expect {
        let buf = load(file);
        let m = Message::parse(&buf).unwrap_or_else(|e| panic!("{file}: {e}"));
        let got_start = match m.start {
            mgw_core::sip::StartLine::Request(r) => {
                format!(
                    "{} {}",
                    r.method,
                    m.request_uri().map(|u| u.host).unwrap_or("?")
                )
            }
            mgw_core::sip::StartLine::Response(s) => format!("{} {}", s.code, s.reason),
        };
        assert_eq!(got_start, start, "{file}");
        assert_eq!(m.call_id(), Some(call_id), "{file}");
        assert_eq!(m.cseq().map(|c| c.seq), Some(cseq), "{file}");
        assert_eq!(
            m.top_via().and_then(|v| v.branch()).unwrap_or(""),
            branch,
            "{file}"
        );
        assert_eq!(m.list(HeaderName::Via).count(), vias, "{file}");
        assert_eq!(m.body.len(), body, "{file}");
    }
}

#[test]
fn wsinv_details() {
    let buf = load("wsinv.dat");
    let m = Message::parse(&buf).unwrap();
    assert_eq!(m.max_forwards(), Some(68));
    assert_eq!(m.to().unwrap().tag(), Some("1918181833n"));
    assert_eq!(m.from().unwrap().tag(), Some("98asjd8"));
    assert_eq!(m.from().unwrap().display, Some(r#""J Rosenberg \\\"""#));
    let c = mgw_core::sip::NameAddr::parse(m.header(HeaderName::Contact).unwrap()).unwrap();
    assert_eq!(c.params.get("q"), Some(Some("0.33")));
    assert_eq!(c.params.get("newparam"), Some(Some("newvalue")));
    assert_eq!(
        m.header_by_name("NewFangledHeader")
            .map(|v| v.starts_with("newfangled value")),
        Some(true)
    );
    let vias: Vec<_> = m
        .list(HeaderName::Via)
        .filter_map(|v| mgw_core::sip::Via::parse(v).ok())
        .collect();
    assert_eq!(vias[1].transport, "TCP");
    assert_eq!(vias[2].branch(), Some("z9hG4bK30239"));
}

#[test]
fn dblreq_ignores_the_second_request() {
    let buf = load("dblreq.dat");
    let m = Message::parse(&buf).unwrap();
    assert!(m.raw.len() < buf.len());
    assert!(m.body.is_empty());
}

#[test]
fn escapes_are_kept_raw_and_decodable() {
    let buf = load("escnull.dat");
    let m = Message::parse(&buf).unwrap();
    let to = m.to().unwrap();
    assert_eq!(to.uri.user, Some("null-%00-null"));
    assert_eq!(to.uri.user_decoded().unwrap(), "null-\0-null");
    let contacts: Vec<_> = m.list(HeaderName::Contact).collect();
    assert_eq!(contacts.len(), 2);
}

#[test]
fn ipv6_references() {
    use mgw_core::sip::Host;
    let buf = load("ipv4-mapped-ipv6");
    let m = Message::parse(&buf).unwrap();
    assert!(matches!(
        m.request_uri().unwrap().host(),
        Host::Name("example.com")
    ));
    let buf = load("port-unambiguous");
    let m = Message::parse(&buf).unwrap();
    let u = m.request_uri().unwrap();
    assert_eq!(u.port, Some(5070));
    assert!(matches!(u.host(), Host::Ip(_)));
    let buf = load("ipv6-bug-abnf-3-colons");
    let m = Message::parse(&buf).unwrap();
    assert!(matches!(
        m.request_uri().unwrap().host(),
        Host::Ipv6Literal("2001:db8:::192.0.2.1")
    ));
}
