//! Writing messages: responses built from a request (RFC 3261 section 8.2.6), new requests, and
//! the ACK and CANCEL that copy fields from an INVITE (sections 17.1.1.3 and 9.1).
//!
//! Builders append to a caller-owned `Vec<u8>`, so a worker can reuse one buffer for every
//! message it sends.

use std::io::Write as _;
use std::net::SocketAddr;

use super::header::HeaderName;
use super::message::{Message, StartLine};
use super::{lex, Via};

/// Writes a response to `req`. Via fields, From, To, Call-ID and CSeq are copied; the top Via
/// gets `received`/`rport` for the address the request really came from.
pub struct ResponseBuilder<'b> {
    buf: &'b mut Vec<u8>,
}

/// What the transport layer knows about the request's origin and the dialog.
#[derive(Clone, Copy, Debug, Default)]
pub struct ReplyContext<'a> {
    /// Where the request came from; fills `received` and `rport` (RFC 3261 18.2.1, RFC 3581).
    pub source: Option<SocketAddr>,
    /// The To-tag to add when the request's To has none (ignored for 100 Trying).
    pub to_tag: Option<&'a str>,
}

impl<'b> ResponseBuilder<'b> {
    pub fn new(
        buf: &'b mut Vec<u8>,
        req: &Message<'_>,
        code: u16,
        reason: &str,
        ctx: ReplyContext<'_>,
    ) -> ResponseBuilder<'b> {
        buf.clear();
        let _ = write!(buf, "SIP/2.0 {code} {reason}\r\n");
        let mut first_via = true;
        for via in req.list(HeaderName::Via) {
            buf.extend_from_slice(b"Via: ");
            if first_via {
                write_top_via(buf, via, ctx.source);
                first_via = false;
            } else {
                buf.extend_from_slice(via.as_bytes());
            }
            buf.extend_from_slice(b"\r\n");
        }
        for h in req.headers() {
            match h.name {
                HeaderName::From | HeaderName::CallId | HeaderName::CSeq => {
                    push_header(buf, h.name.as_str(), lex::trim(h.value));
                }
                // A dialog-creating response carries the request's Record-Route, so the
                // caller routes its ACK and BYE through the proxies (RFC 3261 12.1.1).
                HeaderName::RecordRoute if code > 100 && code < 300 => {
                    push_header(buf, h.name.as_str(), lex::trim(h.value));
                }
                HeaderName::To => {
                    let value = lex::trim(h.value);
                    buf.extend_from_slice(b"To: ");
                    buf.extend_from_slice(value.as_bytes());
                    let has_tag = super::NameAddr::parse(value)
                        .map(|n| n.tag().is_some())
                        .unwrap_or(true);
                    if let (false, Some(tag), true) = (has_tag, ctx.to_tag, code > 100) {
                        buf.extend_from_slice(b";tag=");
                        buf.extend_from_slice(tag.as_bytes());
                    }
                    buf.extend_from_slice(b"\r\n");
                }
                _ => {}
            }
        }
        ResponseBuilder { buf }
    }

    pub fn header(self, name: &str, value: &str) -> Self {
        push_header(self.buf, name, value);
        self
    }

    /// Adds Content-Length (and the body) and ends the message.
    pub fn finish(self, content_type: Option<&str>, body: &[u8]) {
        finish(self.buf, content_type, body);
    }
}

fn push_header(buf: &mut Vec<u8>, name: &str, value: &str) {
    buf.extend_from_slice(name.as_bytes());
    buf.extend_from_slice(b": ");
    buf.extend_from_slice(value.as_bytes());
    buf.extend_from_slice(b"\r\n");
}

fn finish(buf: &mut Vec<u8>, content_type: Option<&str>, body: &[u8]) {
    if let Some(ct) = content_type {
        push_header(buf, "Content-Type", ct);
    }
    let _ = write!(buf, "Content-Length: {}\r\n\r\n", body.len());
    buf.extend_from_slice(body);
}

fn write_top_via(buf: &mut Vec<u8>, via: &str, source: Option<SocketAddr>) {
    let (Some(src), Ok(parsed)) = (source, Via::parse(via)) else {
        buf.extend_from_slice(via.as_bytes());
        return;
    };
    let src_ip = src.ip().to_string();
    let host = parsed.host.trim_start_matches('[').trim_end_matches(']');
    let wants_rport = matches!(parsed.rport(), Some(None));
    // Rebuild the param list so an empty `rport` gets its value in place.
    let head_end = via.len() - parsed.params.as_str().len();
    buf.extend_from_slice(lex::trim(&via[..head_end]).as_bytes());
    for p in parsed.params.iter() {
        if p.name.eq_ignore_ascii_case("received") {
            continue;
        }
        buf.push(b';');
        buf.extend_from_slice(p.name.as_bytes());
        if p.name.eq_ignore_ascii_case("rport") && p.value.is_none() {
            let _ = write!(buf, "={}", src.port());
        } else if let Some(v) = p.value {
            buf.push(b'=');
            buf.extend_from_slice(v.as_bytes());
        }
    }
    if host != src_ip || wants_rport {
        let _ = write!(buf, ";received={src_ip}");
    }
}

/// Writes a new request. Mandatory fields are the caller's to add, in the order it prefers.
pub struct RequestBuilder<'b> {
    buf: &'b mut Vec<u8>,
}

impl<'b> RequestBuilder<'b> {
    pub fn new(buf: &'b mut Vec<u8>, method: &str, uri: &str) -> RequestBuilder<'b> {
        buf.clear();
        let _ = write!(buf, "{method} {uri} SIP/2.0\r\n");
        RequestBuilder { buf }
    }

    pub fn header(self, name: &str, value: &str) -> Self {
        push_header(self.buf, name, value);
        self
    }

    pub fn finish(self, content_type: Option<&str>, body: &[u8]) {
        finish(self.buf, content_type, body);
    }
}

/// The ACK a client INVITE transaction sends for a non-2xx final response: same Request-URI,
/// top Via, From, Call-ID, CSeq number and Route as the INVITE, To from the response.
pub fn ack_for_non2xx(buf: &mut Vec<u8>, invite: &Message<'_>, response: &Message<'_>) -> bool {
    derived_request(buf, invite, "ACK", response.header(HeaderName::To))
}

/// A CANCEL for a pending request (RFC 3261 section 9.1).
pub fn cancel_for(buf: &mut Vec<u8>, request: &Message<'_>) -> bool {
    derived_request(buf, request, "CANCEL", None)
}

fn derived_request(buf: &mut Vec<u8>, req: &Message<'_>, method: &str, to: Option<&str>) -> bool {
    let (StartLine::Request(line), Some(via), Some(from), Some(call_id), Some(cseq)) = (
        req.start,
        req.list(HeaderName::Via).next(),
        req.header(HeaderName::From),
        req.call_id(),
        req.cseq(),
    ) else {
        return false;
    };
    let Some(to) = to.or(req.header(HeaderName::To)) else {
        return false;
    };
    buf.clear();
    let _ = write!(
        buf,
        "{method} {} SIP/2.0\r\nVia: {via}\r\nMax-Forwards: 70\r\nFrom: {from}\r\nTo: {to}\r\n\
         Call-ID: {call_id}\r\nCSeq: {} {method}\r\n",
        line.uri, cseq.seq
    );
    for r in req.all(HeaderName::Route) {
        push_header(buf, "Route", r);
    }
    finish(buf, None, b"");
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    const REQ: &[u8] = b"OPTIONS sip:gw@192.0.2.1 SIP/2.0\r\n\
Via: SIP/2.0/UDP 10.0.0.5:5062;branch=z9hG4bK1;rport\r\n\
Via: SIP/2.0/UDP 10.0.0.9;branch=z9hG4bK0\r\n\
From: <sip:a@x>;tag=1\r\nTo: <sip:gw@x>\r\nCall-ID: c1\r\nCSeq: 7 OPTIONS\r\nMax-Forwards: 70\r\n\
Content-Length: 0\r\n\r\n";

    #[test]
    fn response_copies_fields_and_fills_rport() {
        let req = Message::parse(REQ).unwrap();
        let mut buf = Vec::new();
        let src: SocketAddr = "203.0.113.7:40000".parse().unwrap();
        ResponseBuilder::new(
            &mut buf,
            &req,
            200,
            "OK",
            ReplyContext {
                source: Some(src),
                to_tag: Some("t1"),
            },
        )
        .header("Allow", "INVITE, ACK")
        .finish(None, b"");
        let text = std::str::from_utf8(&buf).unwrap();
        assert!(text.starts_with("SIP/2.0 200 OK\r\n"));
        assert!(text.contains(
            "Via: SIP/2.0/UDP 10.0.0.5:5062;branch=z9hG4bK1;rport=40000;received=203.0.113.7\r\n"
        ));
        assert!(text.contains("Via: SIP/2.0/UDP 10.0.0.9;branch=z9hG4bK0\r\n"));
        assert!(text.contains("To: <sip:gw@x>;tag=t1\r\n"));
        assert!(text.ends_with("Content-Length: 0\r\n\r\n"));
        let resp = Message::parse(&buf).unwrap();
        super::super::validate::response(&resp).unwrap();
    }

    #[test]
    fn ack_for_non2xx_copies_the_invite() {
        let invite = Message::parse(
            b"INVITE sip:b@x SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bKa\r\nRoute: <sip:p;lr>\r\n\
From: <sip:a@x>;tag=1\r\nTo: <sip:b@x>\r\nCall-ID: c\r\nCSeq: 4 INVITE\r\nContent-Length: 0\r\n\r\n",
        )
        .unwrap();
        let resp = Message::parse(
            b"SIP/2.0 486 Busy Here\r\nVia: SIP/2.0/UDP h;branch=z9hG4bKa\r\n\
From: <sip:a@x>;tag=1\r\nTo: <sip:b@x>;tag=9\r\nCall-ID: c\r\nCSeq: 4 INVITE\r\nContent-Length: 0\r\n\r\n",
        )
        .unwrap();
        let mut buf = Vec::new();
        assert!(ack_for_non2xx(&mut buf, &invite, &resp));
        let ack = Message::parse(&buf).unwrap();
        super::super::validate::request(&ack).unwrap();
        assert_eq!(ack.to().unwrap().tag(), Some("9"));
        assert_eq!(ack.header(HeaderName::Route), Some("<sip:p;lr>"));
        assert_eq!(ack.cseq().unwrap().seq, 4);
    }
}
