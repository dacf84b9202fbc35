//! The Authorization / Proxy-Authorization header (RFC 7616 section 3.4, RFC 3261 25.1).

use crate::sip::lex;

/// Digest credentials as received; every field borrows from the message.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Credentials<'a> {
    pub username: &'a str,
    pub realm: &'a str,
    pub nonce: &'a str,
    pub uri: &'a str,
    pub response: &'a str,
    pub algorithm: Option<&'a str>,
    pub cnonce: Option<&'a str>,
    pub opaque: Option<&'a str>,
    pub qop: Option<&'a str>,
    pub nc: Option<&'a str>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CredentialsError {
    /// Another scheme than Digest: answered with a fresh challenge (RFC 4475 section 3.3.7).
    NotDigest,
    Malformed,
    MissingField(&'static str),
}

impl<'a> Credentials<'a> {
    pub fn parse(value: &'a str) -> Result<Credentials<'a>, CredentialsError> {
        let v = lex::trim(value);
        let split = v
            .find(|c: char| c.is_ascii() && lex::is_lws(c as u8))
            .ok_or(CredentialsError::NotDigest)?;
        if !v[..split].eq_ignore_ascii_case("Digest") {
            return Err(CredentialsError::NotDigest);
        }
        let mut c = Credentials::default();
        for item in lex::split_outside(&v[split..], b',') {
            let (name, value) = item.split_once('=').ok_or(CredentialsError::Malformed)?;
            let name = lex::trim(name);
            let value = lex::trim(value);
            let value = if value.starts_with('"') {
                if lex::quoted_len(value.as_bytes()) != Some(value.len()) {
                    return Err(CredentialsError::Malformed);
                }
                &value[1..value.len() - 1]
            } else {
                value
            };
            match name.to_ascii_lowercase().as_str() {
                "username" => c.username = value,
                "realm" => c.realm = value,
                "nonce" => c.nonce = value,
                "uri" => c.uri = value,
                "response" => c.response = value,
                "algorithm" => c.algorithm = Some(value),
                "cnonce" => c.cnonce = Some(value),
                "opaque" => c.opaque = Some(value),
                "qop" => c.qop = Some(value),
                "nc" => c.nc = Some(value),
                _ => {}
            }
        }
        for (field, v) in [
            ("username", c.username),
            ("realm", c.realm),
            ("nonce", c.nonce),
            ("uri", c.uri),
            ("response", c.response),
        ] {
            if v.is_empty() {
                return Err(CredentialsError::MissingField(field));
            }
        }
        if c.qop.is_some() && (c.cnonce.is_none() || c.nc.is_none()) {
            return Err(CredentialsError::MissingField("cnonce/nc"));
        }
        Ok(c)
    }

    /// The nonce-count as a number (8 hex digits).
    pub fn nonce_count(&self) -> Option<u32> {
        u32::from_str_radix(self.nc?, 16).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_quoted_and_bare_fields() {
        let c = Credentials::parse(
            "Digest username=\"alice\", realm=\"mgw.test\",\r\n nonce=\"abc\", uri=\"sip:mgw.test\", \
             response=\"0123\", algorithm=SHA-256, qop=auth, nc=0000000a, cnonce=\"x,y\"",
        )
        .unwrap();
        assert_eq!(c.username, "alice");
        assert_eq!(c.algorithm, Some("SHA-256"));
        assert_eq!(c.cnonce, Some("x,y"));
        assert_eq!(c.nonce_count(), Some(10));
    }

    #[test]
    fn rejects_other_schemes_and_gaps() {
        assert_eq!(
            Credentials::parse("NoOneKnowsThisScheme opaque-data=here"),
            Err(CredentialsError::NotDigest)
        );
        assert_eq!(
            Credentials::parse("Digest username=\"a\""),
            Err(CredentialsError::MissingField("realm"))
        );
        assert_eq!(
            Credentials::parse("Digest username=\"a"),
            Err(CredentialsError::Malformed)
        );
    }
}
