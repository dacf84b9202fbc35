//! The work timed on each side, shared by the criterion bench and the `ir_compare` example so
//! instruction counts and wall-clock numbers measure the same thing.

use std::convert::TryFrom;

use mgw_core::sip::{validate, Message};
use rsip::prelude::*;

pub fn ours_split(b: &[u8]) -> usize {
    Message::parse(b).map(|m| m.header_count()).unwrap_or(0)
}

pub fn rsip_split(b: &[u8]) -> usize {
    rsip::SipMessage::try_from(b)
        .map(|m| m.headers().iter().count())
        .unwrap_or(0)
}

#[allow(dead_code)]
pub fn ours_validated(b: &[u8]) -> usize {
    Message::parse(b)
        .map(|m| usize::from(validate::request(&m).is_ok()))
        .unwrap_or(0)
}

pub fn ours_typed(b: &[u8]) -> usize {
    let Ok(m) = Message::parse(b) else { return 0 };
    m.top_via().map_or(0, |v| v.host.len())
        + m.from().map_or(0, |f| f.uri.host.len())
        + m.to().map_or(0, |t| t.uri.host.len())
        + m.cseq().map_or(0, |c| c.seq as usize)
        + m.call_id().map_or(0, str::len)
}

pub fn rsip_typed(b: &[u8]) -> usize {
    let Ok(m) = rsip::SipMessage::try_from(b) else {
        return 0;
    };
    let via = m
        .via_header()
        .ok()
        .and_then(|v| v.typed().ok())
        .map_or(0, |v| v.params.len());
    let from = m
        .from_header()
        .ok()
        .and_then(|f| f.typed().ok())
        .map_or(0, |f| f.params.len());
    let to = m
        .to_header()
        .ok()
        .and_then(|t| t.typed().ok())
        .map_or(0, |t| t.params.len());
    let cseq = m
        .cseq_header()
        .ok()
        .and_then(|c| c.typed().ok())
        .map_or(0, |c| c.seq as usize);
    let cid = m.call_id_header().map_or(0, |c| c.value().len());
    via + from + to + cseq + cid
}

/// Only messages both parsers accept are compared, so neither side is timed on a fast reject.
pub fn common_corpus(corpus: &[(String, Vec<u8>)]) -> Vec<&[u8]> {
    corpus
        .iter()
        .map(|(_, b)| b.as_slice())
        .filter(|b| Message::parse(b).is_ok() && rsip::SipMessage::try_from(*b).is_ok())
        .collect()
}
