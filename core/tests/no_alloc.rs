//! Parsing allocates nothing: a counting global allocator proves it for the whole valid torture
//! corpus plus typical PBX traffic, including the typed accessors the registrar uses.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

struct Counting;
static ALLOCS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: delegates every call to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as our caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: ptr came from System.alloc with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as our caller's.
        unsafe { System.realloc(ptr, layout, new) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

use mgw_core::sip::{validate, HeaderName, Message, NameAddr, Via};

const REGISTER: &[u8] = b"REGISTER sip:mgw.test SIP/2.0\r\n\
Via: SIP/2.0/UDP 192.168.1.20:5060;branch=z9hG4bK776asdhds;rport\r\n\
Max-Forwards: 70\r\nTo: \"Alice\" <sip:alice@mgw.test>\r\nFrom: \"Alice\" <sip:alice@mgw.test>;tag=456248\r\n\
Call-ID: 843817637684230@998sdasdh09\r\nCSeq: 1826 REGISTER\r\n\
Contact: <sip:alice@192.168.1.20:5060;transport=udp>;expires=3600;+sip.instance=\"<urn:uuid:00000000-0000-1000-8000-AABBCCDDEEFF>\";reg-id=1\r\n\
Authorization: Digest username=\"alice\", realm=\"mgw.test\", nonce=\"abc\", uri=\"sip:mgw.test\", response=\"0123\", algorithm=MD5, qop=auth, nc=00000001, cnonce=\"x\"\r\n\
User-Agent: baresip v3.10.0\r\nExpires: 3600\r\nContent-Length: 0\r\n\r\n";

fn exercise(buf: &[u8]) -> usize {
    let Ok(m) = Message::parse(buf) else { return 0 };
    let _ = if m.is_request() {
        validate::request(&m)
    } else {
        validate::response(&m)
    };
    let mut n = 0;
    n += m.call_id().map_or(0, str::len);
    n += m.cseq().map_or(0, |c| c.seq as usize);
    if let Some(v) = m.top_via() {
        n += v.branch().map_or(0, str::len) + v.rport().map_or(0, |p| p.unwrap_or(1) as usize);
    }
    n += m.from().and_then(|f| f.tag()).map_or(0, str::len);
    n += m.to().map_or(0, |t| t.uri.host.len());
    for c in m.list(HeaderName::Contact) {
        if let Ok(c) = NameAddr::parse(c) {
            n += c.params.get("expires").flatten().map_or(0, str::len);
        }
    }
    for v in m.list(HeaderName::Via) {
        n += Via::parse(v).map_or(0, |v| v.host.len());
    }
    n += m.request_uri().map_or(0, |u| u.host.len());
    n
}

#[test]
fn parsing_allocates_nothing() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/torture");
    let mut corpus: Vec<Vec<u8>> = vec![REGISTER.to_vec()];
    for sub in ["rfc4475", "rfc5118"] {
        for e in std::fs::read_dir(format!("{dir}/{sub}")).expect("corpus") {
            corpus.push(std::fs::read(e.expect("entry").path()).expect("file"));
        }
    }
    let before = ALLOCS.load(Ordering::SeqCst);
    let mut sink = 0;
    for buf in &corpus {
        sink += exercise(buf);
    }
    let after = ALLOCS.load(Ordering::SeqCst);
    assert!(sink > 0);
    assert_eq!(after - before, 0, "parsing and reading fields allocated");
}
