//! Prints what the parser makes of SIP messages in files: `cargo run --example probe -- FILE...`.
use mgw_core::sip::{validate, HeaderName, Message, StartLine};
fn main() {
    for path in std::env::args().skip(1) {
        let Ok(b) = std::fs::read(&path) else {
            eprintln!("{path}: unreadable");
            continue;
        };
        let name = path.rsplit('/').next().unwrap_or(&path);
        match Message::parse(&b) {
            Err(e) => println!("{name}: {e}"),
            Ok(m) => {
                let v = if m.is_request() {
                    validate::request(&m)
                } else {
                    validate::response(&m)
                };
                let start = match m.start {
                    StartLine::Request(r) => format!(
                        "{} {}",
                        r.method,
                        m.request_uri().map(|u| u.host).unwrap_or("?")
                    ),
                    StartLine::Response(s) => format!("{} {:?}", s.code, s.reason),
                };
                println!(
                    "(\"{name}\", \"{start}\", {:?}, {:?}, {:?}, {}, {}),  // {:?}",
                    m.call_id().unwrap_or(""),
                    m.cseq().map(|c| c.seq).unwrap_or(0),
                    m.top_via().and_then(|v| v.branch()).unwrap_or(""),
                    m.list(HeaderName::Via).count(),
                    m.body.len(),
                    v
                );
            }
        };
    }
}
