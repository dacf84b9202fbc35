//! Differential test against `rsip` (the design card's parser, used here only as an oracle).
//! On every well-formed message of the corpus that rsip can parse, both parsers must agree on
//! start line, Call-ID, CSeq, top Via branch, header count and body. Where rsip cannot parse a
//! valid message, or disagrees, the file must be listed in `KNOWN` with the reason documented in
//! docs/decisions.md ("rsip as an oracle").

use std::convert::TryFrom;

use mgw_core::sip::{validate, Message, StartLine};
use rsip::prelude::*;

/// (file, what rsip does differently). Kept in step with docs/decisions.md.
const KNOWN: &[(&str, &str)] = &[
    (
        "wsinv.dat",
        "rsip: no header folding / LWS around ':' and '/'",
    ),
    (
        "intmeth.dat",
        "rsip: rejects the unusual-but-legal Request-URI user characters",
    ),
    ("esc01.dat", "rsip: no compact header forms (i:)"),
    (
        "esc02.dat",
        "rsip: rejects extension methods containing '%'",
    ),
    ("longreq.dat", "rsip: no compact header forms (v:, l:)"),
    ("dblreq.dat", "rsip: no compact header forms (I:)"),
    ("semiuri.dat", "rsip: no header folding (multi-line Accept)"),
    (
        "unkscm.dat",
        "rsip: no absoluteURI with unknown scheme in Request-URI",
    ),
    ("ipv6-good", "rsip: no IPv6 references"),
    ("port-ambiguous", "rsip: no IPv6 references"),
    ("port-unambiguous", "rsip: no IPv6 references"),
    ("via-received-param-with-delim", "rsip: no IPv6 references"),
    ("via-received-param-no-delim", "rsip: no IPv6 references"),
    ("ipv4-mapped-ipv6", "rsip: no IPv6 references"),
    ("mult-ip-in-header", "rsip: no IPv6 references"),
    ("mult-ip-in-sdp", "rsip: no IPv6 references"),
    ("ipv6-in-sdp", "rsip: no IPv6 references"),
    ("ipv6-bug-abnf-3-colons", "rsip: no IPv6 references"),
    ("ipv6-correct-abnf-2-colons", "rsip: no IPv6 references"),
];

fn corpus() -> Vec<(String, Vec<u8>)> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/torture");
    let table = include_str!("torture/verdicts.tsv");
    let mut out = Vec::new();
    for line in table.lines().skip(1) {
        let cols: Vec<&str> = line.split('\t').collect();
        if cols[2] == "invalid" {
            continue;
        }
        let file = cols[0];
        let p4475 = format!("{dir}/rfc4475/{file}");
        let path = if std::path::Path::new(&p4475).exists() {
            p4475
        } else {
            format!("{dir}/rfc5118/{file}")
        };
        let buf = std::fs::read(&path).expect("corpus file");
        // Messages that fail validation (insuf, multi01, mcl01) are not comparable.
        let valid = Message::parse(&buf).is_ok_and(|m| {
            if m.is_request() {
                validate::request(&m).is_ok()
            } else {
                validate::response(&m).is_ok()
            }
        });
        if valid {
            out.push((file.to_string(), buf));
        }
    }
    for name in ["register.sip", "invite.sip", "ok200.sip"] {
        let buf = std::fs::read(format!(
            "{}/tests/messages/{name}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .expect("message");
        out.push((name.to_string(), buf));
    }
    out
}

fn compare(buf: &[u8]) -> Result<(), String> {
    let ours = Message::parse(buf).map_err(|e| format!("ours failed: {e}"))?;
    let theirs = rsip::SipMessage::try_from(buf).map_err(|e| format!("rsip cannot parse: {e}"))?;
    match (&ours.start, &theirs) {
        (StartLine::Request(r), rsip::SipMessage::Request(t)) => {
            if r.method.as_str() != t.method.to_string() {
                return Err(format!("method {} vs {}", r.method, t.method));
            }
        }
        (StartLine::Response(s), rsip::SipMessage::Response(t)) => {
            if s.code != t.status_code.code() {
                return Err(format!("status {} vs {}", s.code, t.status_code.code()));
            }
        }
        _ => return Err("request/response disagree".into()),
    }
    let their_call_id = theirs
        .call_id_header()
        .map(|h| h.value().to_string())
        .map_err(|e| format!("rsip Call-ID: {e}"))?;
    if ours.call_id() != Some(their_call_id.trim()) {
        return Err(format!("Call-ID {:?} vs {their_call_id:?}", ours.call_id()));
    }
    let their_cseq = theirs
        .cseq_header()
        .and_then(|h| h.typed())
        .map_err(|e| format!("rsip CSeq: {e}"))?;
    if ours.cseq().map(|c| c.seq) != Some(their_cseq.seq) {
        return Err(format!("CSeq {:?} vs {}", ours.cseq(), their_cseq.seq));
    }
    let their_branch = theirs
        .via_header()
        .and_then(|h| h.typed())
        .map(|v| v.branch().map(|b| b.to_string()))
        .map_err(|e| format!("rsip Via: {e}"))?;
    let our_branch = ours.top_via().and_then(|v| v.branch()).map(str::to_string);
    if our_branch != their_branch {
        return Err(format!("branch {our_branch:?} vs {their_branch:?}"));
    }
    if ours.header_count() != theirs.headers().iter().count() {
        return Err(format!(
            "header count {} vs {}",
            ours.header_count(),
            theirs.headers().iter().count()
        ));
    }
    if ours.body != theirs.body().as_slice() {
        return Err(format!(
            "body {} vs {} octets",
            ours.body.len(),
            theirs.body().len()
        ));
    }
    Ok(())
}

#[test]
fn agrees_with_rsip_where_rsip_can_parse() {
    let mut differences = Vec::new();
    let mut agreed = 0;
    for (file, buf) in corpus() {
        match compare(&buf) {
            Ok(()) => agreed += 1,
            Err(why) => differences.push((file, why)),
        }
    }
    for (f, why) in &differences {
        println!("{f}: {why}");
    }
    let listed: Vec<&str> = KNOWN.iter().map(|k| k.0).collect();
    let found: Vec<&str> = differences.iter().map(|d| d.0.as_str()).collect();
    assert_eq!(
        found, listed,
        "differences changed; update KNOWN and docs/decisions.md"
    );
    assert!(agreed >= 20, "only {agreed} messages compared");
    println!(
        "{agreed} messages agree, {} differ as documented",
        differences.len()
    );
}
