//! The CSeq header field (RFC 3261 section 20.16).

use super::lex::{self, class};
use super::method::Method;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CSeq<'a> {
    /// Less than 2^31 by RFC 3261 section 8.1.1.5; larger values are refused.
    pub seq: u32,
    pub method: Method<'a>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CSeqError;

impl<'a> CSeq<'a> {
    #[inline]
    pub fn parse(value: &'a str) -> Result<CSeq<'a>, CSeqError> {
        let s = lex::trim(value);
        let b = s.as_bytes();
        // Digits, then LWS (so the trimmed value has a method after it).
        let mut seq = 0u64;
        let mut end = 0;
        while let Some(&d) = b.get(end) {
            let digit = d.wrapping_sub(b'0');
            if digit > 9 {
                break;
            }
            seq = seq * 10 + u64::from(digit);
            if seq >= 1 << 31 {
                return Err(CSeqError);
            }
            end += 1;
        }
        if end == 0 || !b.get(end).is_some_and(|&c| lex::is_lws(c)) {
            return Err(CSeqError);
        }
        let method = &s[end + lex::run(&b[end..], class::LWS)..];
        if !lex::is_token_str(method) {
            return Err(CSeqError);
        }
        Ok(CSeq {
            // Below 2^31, checked above.
            seq: seq as u32,
            method: Method::from_token(method),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_folded_and_rejects_overlarge() {
        let c = CSeq::parse("0009\r\n  INVITE").unwrap();
        assert_eq!(c.seq, 9);
        assert_eq!(c.method, Method::Invite);
        assert!(CSeq::parse("36893488147419103232 REGISTER").is_err());
        assert!(CSeq::parse("8").is_err());
    }
}
