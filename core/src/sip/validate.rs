//! Whole-message checks that go beyond structure: the header grammars of the fields this
//! gateway relies on, the mandatory fields (RFC 3261 section 8.1.1) and their consistency.
//!
//! Run once per received message after [`Message::parse`], so later code can use the accessors
//! knowing the fields are well formed.

use super::error::ParseError;
use super::header::HeaderName;
use super::message::{Message, StartLine};
use super::{lex, CSeq, NameAddr, Uri, Via};

/// Checks a request. The first fault found is returned, in the order a reader would notice it.
pub fn request(msg: &Message<'_>) -> Result<(), ParseError> {
    let StartLine::Request(line) = msg.start else {
        return Err(ParseError::BadRequestLine);
    };
    let uri = Uri::parse(line.uri).map_err(|_| ParseError::BadRequestUri)?;
    uri.check().map_err(|_| ParseError::BadRequestUri)?;
    if uri.headers.is_some() {
        return Err(ParseError::HeadersInRequestUri);
    }
    common(msg)?;
    let cseq = msg.cseq().ok_or(ParseError::BadHeader(HeaderName::CSeq))?;
    if cseq.method != line.method {
        return Err(ParseError::CSeqMethodMismatch);
    }
    if let Some(mf) = msg.header(HeaderName::MaxForwards) {
        if lex::parse_u32(mf).is_none_or(|n| n > 255) {
            return Err(ParseError::BadHeader(HeaderName::MaxForwards));
        }
    }
    if let Some(e) = msg.header(HeaderName::Expires) {
        if lex::parse_delta_seconds(e).is_none() {
            return Err(ParseError::BadHeader(HeaderName::Expires));
        }
    }
    for c in msg.list(HeaderName::Contact) {
        if c != "*" {
            NameAddr::parse(c)
                .and_then(|n| n.check())
                .map_err(|_| ParseError::BadHeader(HeaderName::Contact))?;
        }
    }
    for name in [HeaderName::Route, HeaderName::RecordRoute, HeaderName::Path] {
        for r in msg.list(name) {
            NameAddr::parse(r)
                .and_then(|n| n.check())
                .map_err(|_| ParseError::BadHeader(name))?;
        }
    }
    Ok(())
}

/// Checks a response; faulty responses are dropped, never answered.
pub fn response(msg: &Message<'_>) -> Result<(), ParseError> {
    if msg.is_request() {
        return Err(ParseError::BadStatusLine);
    }
    common(msg)?;
    if msg.cseq().is_none() {
        return Err(ParseError::BadHeader(HeaderName::CSeq));
    }
    Ok(())
}

fn common(msg: &Message<'_>) -> Result<(), ParseError> {
    for name in [
        HeaderName::Via,
        HeaderName::From,
        HeaderName::To,
        HeaderName::CallId,
        HeaderName::CSeq,
    ] {
        if msg.all(name).next().is_none() {
            return Err(ParseError::MissingHeader(name));
        }
    }
    let mut seen = [false; HeaderName::Other as usize];
    for h in msg.headers() {
        if h.name.is_single() {
            let slot = &mut seen[h.name as usize];
            if *slot {
                return Err(ParseError::DuplicateHeader(h.name));
            }
            *slot = true;
        }
    }
    for v in msg.list(HeaderName::Via) {
        Via::parse(v)
            .and_then(|v| v.check())
            .map_err(|_| ParseError::BadHeader(HeaderName::Via))?;
    }
    for name in [HeaderName::From, HeaderName::To] {
        let v = msg.header(name).ok_or(ParseError::MissingHeader(name))?;
        NameAddr::parse(v)
            .and_then(|n| n.check())
            .map_err(|_| ParseError::BadHeader(name))?;
    }
    let call_id = msg.call_id().unwrap_or("");
    if call_id.is_empty() || call_id.bytes().any(lex::is_lws) {
        return Err(ParseError::BadHeader(HeaderName::CallId));
    }
    CSeq::parse(msg.header(HeaderName::CSeq).unwrap_or(""))
        .map_err(|_| ParseError::BadHeader(HeaderName::CSeq))?;
    Ok(())
}
