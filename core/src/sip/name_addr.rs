//! name-addr / addr-spec with header parameters: From, To, Contact, Route, Record-Route, Path
//! (RFC 3261 section 20.10 and 25.1).

use super::lex::{self, class};
use super::params::Params;
use super::uri::Uri;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NameAddr<'a> {
    /// The display name as written: quotes kept for a quoted-string.
    pub display: Option<&'a str>,
    pub uri: Uri<'a>,
    /// Header parameters after the address (`;tag=...`, `;expires=...`).
    pub params: Params<'a>,
    /// Whether the URI was enclosed in `<>`.
    pub bracketed: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NameAddrError {
    UnterminatedQuote,
    BadDisplayName,
    MissingAngle,
    /// Whitespace inside `<>` around the URI (RFC 4475 section 3.1.2.14).
    SpaceInAddrSpec,
    /// An addr-spec outside `<>` holding `?` or `,` (RFC 3261 section 20.10).
    UnbracketedUriWithHeaders,
    BadUri,
    BadParams,
}

impl<'a> NameAddr<'a> {
    #[inline]
    pub fn parse(value: &'a str) -> Result<NameAddr<'a>, NameAddrError> {
        let s = lex::trim(value);
        let b = s.as_bytes();
        let (display, after_display) = match b.first() {
            Some(b'"') => {
                let n = lex::quoted_len(b).ok_or(NameAddrError::UnterminatedQuote)?;
                (Some(&s[..n]), lex::trim(&s[n..]))
            }
            _ => {
                // An unquoted display name is tokens and LWS up to the first '<'; any other
                // octet first means an addr-spec, unless a '<' follows somewhere after all.
                let d_end = lex::run(b, class::TOKEN | class::LWS);
                if b.get(d_end) == Some(&b'<') {
                    let d = lex::trim(&s[..d_end]);
                    ((!d.is_empty()).then_some(d), &s[d_end..])
                } else if lex::find(&s[d_end..], b'<').is_some() {
                    return Err(NameAddrError::BadDisplayName);
                } else {
                    (None, s)
                }
            }
        };

        if let Some(inner) = after_display.strip_prefix('<') {
            let ib = inner.as_bytes();
            // The URI ends at the first '>' and holds no LWS; a missing '>' is reported first.
            let mut from = 0;
            let gt = loop {
                let stop = from + lex::find_byte_or_ctl(&ib[from..], b'>');
                match ib.get(stop) {
                    Some(b'>') => break stop,
                    Some(&c) if lex::is_lws(c) => {
                        return Err(match lex::find(&inner[stop..], b'>') {
                            None => NameAddrError::MissingAngle,
                            Some(_) => NameAddrError::SpaceInAddrSpec,
                        })
                    }
                    Some(_) => from = stop + 1,
                    None => return Err(NameAddrError::MissingAngle),
                }
            };
            let uri = Uri::parse(&inner[..gt]).map_err(|_| NameAddrError::BadUri)?;
            let params = Params(&inner[gt + 1..]);
            check_header_params(params)?;
            return Ok(NameAddr {
                display,
                uri,
                params,
                bracketed: true,
            });
        }
        if display.is_some() {
            return Err(NameAddrError::MissingAngle);
        }
        // addr-spec: its own ';' starts header parameters, so the URI ends there.
        let end = lex::find(s, b';').unwrap_or(s.len());
        let uri_str = lex::trim(&s[..end]);
        if uri_str.contains(['?', ',']) {
            return Err(NameAddrError::UnbracketedUriWithHeaders);
        }
        if uri_str.bytes().any(lex::is_lws) {
            return Err(NameAddrError::SpaceInAddrSpec);
        }
        let uri = Uri::parse(uri_str).map_err(|_| NameAddrError::BadUri)?;
        let params = Params(&s[end..]);
        check_header_params(params)?;
        Ok(NameAddr {
            display,
            uri,
            params,
            bracketed: false,
        })
    }

    /// Character-level grammar of the URI and parameters, checked once by [`super::validate`].
    pub fn check(&self) -> Result<(), NameAddrError> {
        self.uri.check().map_err(|_| NameAddrError::BadUri)?;
        if !self.params.validate() {
            return Err(NameAddrError::BadParams);
        }
        Ok(())
    }

    pub fn tag(&self) -> Option<&'a str> {
        self.params.get("tag").flatten()
    }

    /// The display name without quotes or escapes' backslashes kept (as written inside).
    pub fn display_unquoted(&self) -> Option<&'a str> {
        self.display.map(|d| {
            d.strip_prefix('"')
                .and_then(|d| d.strip_suffix('"'))
                .unwrap_or(d)
        })
    }
}

/// After the address only LWS and then `;params` may follow.
#[inline]
fn check_header_params(p: Params<'_>) -> Result<(), NameAddrError> {
    let b = p.as_str().as_bytes();
    match b.get(lex::run(b, class::LWS)) {
        None | Some(b';') => Ok(()),
        Some(_) => Err(NameAddrError::BadParams),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms() {
        let n = NameAddr::parse(
            r#""J Rosenberg \\\""       <sip:jdrosen@example.com>  ;  tag = 98asjd8"#,
        )
        .unwrap();
        assert_eq!(n.display, Some(r#""J Rosenberg \\\"""#));
        assert_eq!(n.tag(), Some("98asjd8"));
        let a = NameAddr::parse("sip:caller@example.net;tag=134161461246").unwrap();
        assert!(!a.bracketed);
        assert_eq!(a.uri.user, Some("caller"));
        assert_eq!(a.tag(), Some("134161461246"));
        let d = NameAddr::parse("Bob Smith<sip:bob@x>").unwrap();
        assert_eq!(d.display, Some("Bob Smith"));
        let q = NameAddr::parse(r#""caller"<sip:caller@example.com>;tag=323"#).unwrap();
        assert_eq!(q.display_unquoted(), Some("caller"));
    }

    #[test]
    fn invalid_forms() {
        assert_eq!(
            NameAddr::parse("\"Mr. J. User <sip:j.user@example.com>"),
            Err(NameAddrError::UnterminatedQuote)
        );
        assert_eq!(
            NameAddr::parse("Bell, Alexander <sip:a.g.bell@example.com>;tag=43"),
            Err(NameAddrError::BadDisplayName)
        );
        assert_eq!(
            NameAddr::parse("\"Watson, Thomas\" < sip:t.watson@example.org >"),
            Err(NameAddrError::SpaceInAddrSpec)
        );
        assert_eq!(
            NameAddr::parse("sip:user@example.com?Route=%3Csip:sip.example.com%3E"),
            Err(NameAddrError::UnbracketedUriWithHeaders)
        );
        assert_eq!(
            NameAddr::parse("\"Joe\" <sip:joe@example.org>;;;;").and_then(|n| n.check()),
            Err(NameAddrError::BadParams)
        );
    }
}
