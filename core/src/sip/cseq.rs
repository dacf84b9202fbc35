//! The CSeq header field (RFC 3261 section 20.16).

use super::lex;
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
    pub fn parse(value: &'a str) -> Result<CSeq<'a>, CSeqError> {
        let s = lex::trim(value);
        let end = lex::find_lws(s).ok_or(CSeqError)?;
        let seq = lex::parse_u32(&s[..end])
            .filter(|&n| n < 1 << 31)
            .ok_or(CSeqError)?;
        let method = lex::trim(&s[end..]);
        if !lex::is_token_str(method) {
            return Err(CSeqError);
        }
        Ok(CSeq {
            seq,
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
