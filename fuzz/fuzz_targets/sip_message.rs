//! The message parser and every typed accessor on arbitrary bytes: must never panic, and what
//! it accepts must be internally consistent (body within the message, headers within the head).
#![no_main]

use libfuzzer_sys::fuzz_target;
use mgw_core::sip::{validate, HeaderName, Message, NameAddr, Via};

fuzz_target!(|data: &[u8]| {
    let Ok(m) = Message::parse(data) else { return };
    assert!(m.raw.len() <= data.len());
    assert!(m.body.len() <= m.raw.len());
    let _ = if m.is_request() {
        validate::request(&m)
    } else {
        validate::response(&m)
    };
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
        let _ = Via::parse(h.value).map(|v| (v.check(), v.branch(), v.rport(), v.received()));
        let _ = NameAddr::parse(h.value)
            .map(|n| (n.check(), n.tag(), n.uri.host(), n.uri.user_decoded()));
    }
    for c in m.list(HeaderName::Contact) {
        let _ = NameAddr::parse(c).map(|n| n.params.iter().count());
    }
});
