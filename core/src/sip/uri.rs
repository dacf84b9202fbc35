//! SIP, SIPS and tel URIs (RFC 3261 section 19.1, RFC 3966), borrowed from the message.

use std::net::IpAddr;

use super::lex::{self, class};
use super::params::Params;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scheme<'a> {
    Sip,
    Sips,
    Tel,
    /// Any other absoluteURI scheme; its content is kept opaque.
    Other(&'a str),
}

impl<'a> Scheme<'a> {
    pub fn as_str(&self) -> &'a str {
        match self {
            Scheme::Sip => "sip",
            Scheme::Sips => "sips",
            Scheme::Tel => "tel",
            Scheme::Other(s) => s,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Host<'a> {
    Name(&'a str),
    Ip(IpAddr),
    /// A bracketed reference that is not a valid IPv6 address, such as the historic
    /// three-colon form of RFC 5118 section 4.10; kept without brackets.
    Ipv6Literal(&'a str),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Uri<'a> {
    pub scheme: Scheme<'a>,
    /// The user part (still %-escaped). For tel URIs, the number.
    pub user: Option<&'a str>,
    pub password: Option<&'a str>,
    /// The host as written (with brackets for IPv6); empty for tel and opaque URIs.
    pub host: &'a str,
    pub port: Option<u16>,
    pub params: Params<'a>,
    /// `?hdr=val&...` after the URI, without the `?`.
    pub headers: Option<&'a str>,
    /// For [`Scheme::Other`], everything after the colon.
    pub opaque: &'a str,
    pub raw: &'a str,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UriError {
    NoScheme,
    BadUser,
    BadHost,
    BadPort,
    BadParams,
    BadHeaders,
}

/// RFC 3261 25.1: `user` allows what `password` does plus `;`, `?` and `/`.
const fn is_user_char(b: u8) -> bool {
    is_password_char(b) || matches!(b, b';' | b'?' | b'/')
}

const fn is_password_char(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'-' | b'_'
                | b'.'
                | b'!'
                | b'~'
                | b'*'
                | b'\''
                | b'('
                | b')'
                | b'%'
                | b'&'
                | b'='
                | b'+'
                | b'$'
                | b','
        )
}

const fn is_param_char(b: u8) -> bool {
    // paramchar = param-unreserved / unreserved / escaped, plus the separators of the list.
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'[' | b']'
                | b'/'
                | b':'
                | b'&'
                | b'+'
                | b'$'
                | b'-'
                | b'_'
                | b'.'
                | b'!'
                | b'~'
                | b'*'
                | b'\''
                | b'('
                | b')'
                | b'%'
                | b';'
                | b'='
        )
}

const fn is_header_char(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'[' | b']'
                | b'/'
                | b'?'
                | b':'
                | b'+'
                | b'$'
                | b'-'
                | b'_'
                | b'.'
                | b'!'
                | b'~'
                | b'*'
                | b'\''
                | b'('
                | b')'
                | b'%'
                | b'&'
                | b'='
        )
}

impl<'a> Uri<'a> {
    #[inline]
    pub fn parse(s: &'a str) -> Result<Uri<'a>, UriError> {
        // `sip:` and `sips:` in any case, without the general scheme scan.
        let b = s.as_bytes();
        let folded = |i: usize, c: u8| b.get(i).is_some_and(|&x| x | 0x20 == c);
        if folded(0, b's') && folded(1, b'i') && folded(2, b'p') {
            if b.get(3) == Some(&b':') {
                return Self::parse_sip(s, Scheme::Sip, 4);
            }
            if folded(3, b's') && b.get(4) == Some(&b':') {
                return Self::parse_sip(s, Scheme::Sips, 5);
            }
        }
        Self::parse_any(s)
    }

    fn parse_any(s: &'a str) -> Result<Uri<'a>, UriError> {
        let colon = lex::find(s, b':').ok_or(UriError::NoScheme)?;
        let scheme_str = &s[..colon];
        let valid_scheme = scheme_str
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphabetic())
            && scheme_str
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'));
        if !valid_scheme {
            return Err(UriError::NoScheme);
        }
        let rest = &s[colon + 1..];
        let scheme = if scheme_str.eq_ignore_ascii_case("sip") {
            Scheme::Sip
        } else if scheme_str.eq_ignore_ascii_case("sips") {
            Scheme::Sips
        } else if scheme_str.eq_ignore_ascii_case("tel") {
            Scheme::Tel
        } else {
            if rest.is_empty()
                || rest
                    .bytes()
                    .any(|b| lex::is_lws(b) || b == b'<' || b == b'>')
            {
                return Err(UriError::BadHost);
            }
            return Ok(Uri {
                scheme: Scheme::Other(scheme_str),
                user: None,
                password: None,
                host: "",
                port: None,
                params: Params(""),
                headers: None,
                opaque: rest,
                raw: s,
            });
        };
        if scheme == Scheme::Tel {
            let (number, params) = match lex::find(rest, b';') {
                Some(i) => (&rest[..i], &rest[i..]),
                None => (rest, ""),
            };
            let valid_number = !number.is_empty()
                && number.bytes().all(|b| {
                    b.is_ascii_hexdigit()
                        || matches!(b, b'+' | b'-' | b'.' | b'(' | b')' | b'*' | b'#')
                });
            if !valid_number {
                return Err(UriError::BadUser);
            }
            return Ok(Uri {
                scheme,
                user: Some(number),
                password: None,
                host: "",
                port: None,
                params: Params(params),
                headers: None,
                opaque: "",
                raw: s,
            });
        }

        Self::parse_sip(s, scheme, colon + 1)
    }

    /// The part of a SIP or SIPS URI after `scheme:`, which starts at `at`.
    #[inline]
    fn parse_sip(s: &'a str, scheme: Scheme<'a>, at: usize) -> Result<Uri<'a>, UriError> {
        let rest = &s[at..];
        // '@' cannot appear unescaped after the userinfo, while the user part may hold '?' and
        // ';' (RFC 4475 section 3.1.1.2), so the userinfo is split off first.
        // The user part may hold ';' (RFC 4475 3.1.1.9) but the password starts at the first
        // ':' before the '@'; a ':' without an '@' after it belongs to the host part.
        let (user, password, after_user) = match lex::find_either(rest.as_bytes(), b'@', b':') {
            None => (None, None, rest),
            Some(at) if rest.as_bytes()[at] == b'@' => (Some(&rest[..at]), None, &rest[at + 1..]),
            Some(colon) => match lex::find(&rest[colon + 1..], b'@') {
                Some(i) => {
                    let at = colon + 1 + i;
                    (
                        Some(&rest[..colon]),
                        Some(&rest[colon + 1..at]),
                        &rest[at + 1..],
                    )
                }
                None => (None, None, rest),
            },
        };
        if user == Some("") {
            return Err(UriError::BadUser);
        }
        // `?headers` end the host part, but no host, IPv6 or port octet is a '?', so the host
        // and port are scanned first and only what follows them is searched for it.
        let hb = after_user.as_bytes();
        let host_end = if hb.first() == Some(&b'[') {
            // The first octet that cannot be inside the brackets must be the closing one.
            let close = 1 + lex::run(&hb[1..], class::IPV6);
            if close == 1 || hb.get(close) != Some(&b']') {
                return Err(UriError::BadHost);
            }
            close + 1
        } else {
            // The host runs to the first ':', ';' or '?', and every octet before it must be a
            // host octet.
            let end = lex::run(hb, class::HOST);
            if end == 0 || !matches!(hb.get(end), None | Some(b':' | b';' | b'?')) {
                return Err(UriError::BadHost);
            }
            if matches!(hb[0], b'-' | b'.') {
                return Err(UriError::BadHost);
            }
            end
        };
        let (host, after_host) = after_user.split_at(host_end);
        let (port, rest) = if let Some(p) = after_host.strip_prefix(':') {
            // Digits up to the parameters or headers.
            let digits = lex::run(p.as_bytes(), class::DIGIT);
            if !matches!(p.as_bytes().get(digits), None | Some(b';' | b'?')) {
                return Err(UriError::BadPort);
            }
            let port = lex::parse_u32_bytes(&p.as_bytes()[..digits])
                .filter(|&n| n <= 65535)
                .ok_or(UriError::BadPort)?;
            (Some(port as u16), &p[digits..])
        } else {
            (None, after_host)
        };
        let (params, headers) = match lex::find(rest, b'?') {
            Some(i) => (&rest[..i], Some(&rest[i + 1..])),
            None => (rest, None),
        };
        if !params.is_empty() && !params.starts_with(';') {
            return Err(UriError::BadHost);
        }
        Ok(Uri {
            scheme,
            user,
            password,
            host,
            port,
            params: Params(params),
            headers,
            opaque: "",
            raw: s,
        })
    }

    /// Character-level grammar (RFC 3261 section 25.1: user, password, uri-parameter, header
    /// characters and escapes). [`Uri::parse`] only finds the parts; this runs once per message
    /// from [`super::validate`], not on every access.
    pub fn check(&self) -> Result<(), UriError> {
        match self.scheme {
            Scheme::Other(_) => return Ok(()),
            Scheme::Tel => {
                return if self.params.validate() {
                    Ok(())
                } else {
                    Err(UriError::BadParams)
                };
            }
            Scheme::Sip | Scheme::Sips => {}
        }
        if let Some(u) = self.user {
            if !u.bytes().all(is_user_char) || !lex::escapes_valid(u.as_bytes()) {
                return Err(UriError::BadUser);
            }
        }
        if let Some(p) = self.password {
            if !p.bytes().all(is_password_char) || !lex::escapes_valid(p.as_bytes()) {
                return Err(UriError::BadUser);
            }
        }
        if !self.params.0.bytes().all(is_param_char) || !self.params.validate_uri() {
            return Err(UriError::BadParams);
        }
        if let Some(h) = self.headers {
            if h.is_empty() || !h.bytes().all(is_header_char) || !lex::escapes_valid(h.as_bytes()) {
                return Err(UriError::BadHeaders);
            }
        }
        Ok(())
    }

    /// The host interpreted: an IP address (brackets removed) or a name.
    pub fn host(&self) -> Host<'a> {
        if let Some(inner) = self
            .host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
        {
            return match inner.parse() {
                Ok(ip) => Host::Ip(IpAddr::V6(ip)),
                Err(_) => Host::Ipv6Literal(inner),
            };
        }
        match self.host.parse() {
            Ok(ip) => Host::Ip(IpAddr::V4(ip)),
            Err(_) => Host::Name(self.host),
        }
    }

    pub fn param(&self, name: &str) -> Option<Option<&'a str>> {
        self.params.get(name)
    }

    /// The user part with %-escapes decoded; borrowed when there is nothing to decode.
    pub fn user_decoded(&self) -> Option<std::borrow::Cow<'a, str>> {
        self.user.map(percent_decode)
    }
}

impl Params<'_> {
    /// URI parameters: `;name[=value]`, no quoted strings, escapes well formed.
    fn validate_uri(&self) -> bool {
        self.iter().all(|p| {
            !p.name.is_empty()
                && lex::escapes_valid(p.name.as_bytes())
                && p.value
                    .is_none_or(|v| !v.is_empty() && lex::escapes_valid(v.as_bytes()))
        })
    }
}

/// Decodes %HH escapes; invalid UTF-8 after decoding is replaced, not trusted.
pub fn percent_decode(s: &str) -> std::borrow::Cow<'_, str> {
    if !s.contains('%') {
        return std::borrow::Cow::Borrowed(s);
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let (Some(h), Some(l)) = (lex::hex_val(b[i + 1]), lex::hex_val(b[i + 2])) {
                out.push(h << 4 | l);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    std::borrow::Cow::Owned(String::from_utf8_lossy(&out).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sip_uri_parts() {
        let u = Uri::parse("sip:alice:pw@[2001:db8::10]:5070;transport=tcp;lr?Subject=x").unwrap();
        assert_eq!(u.scheme, Scheme::Sip);
        assert_eq!(u.user, Some("alice"));
        assert_eq!(u.password, Some("pw"));
        assert_eq!(u.host, "[2001:db8::10]");
        assert_eq!(u.port, Some(5070));
        assert_eq!(u.param("transport"), Some(Some("tcp")));
        assert_eq!(u.param("lr"), Some(None));
        assert_eq!(u.headers, Some("Subject=x"));
        assert!(matches!(u.host(), Host::Ip(IpAddr::V6(_))));
    }

    #[test]
    fn user_with_semicolon_and_escapes() {
        let u = Uri::parse("sip:user;par=u%40example.net@example.com").unwrap();
        assert_eq!(u.user, Some("user;par=u%40example.net"));
        assert_eq!(u.host, "example.com");
        assert_eq!(u.user_decoded().unwrap(), "user;par=u@example.net");
    }

    #[test]
    fn rejects_unbracketed_ipv6_and_bad_ports() {
        assert_eq!(Uri::parse("sip:2001:db8::10"), Err(UriError::BadPort));
        assert_eq!(Uri::parse("sip:a@b:99999"), Err(UriError::BadPort));
        assert!(Uri::parse("sip:user@example.com; lr")
            .and_then(|u| u.check())
            .is_err());
        assert!(Uri::parse("sip:").is_err());
    }

    #[test]
    fn ambiguous_ipv6_port_is_part_of_the_host() {
        let u = Uri::parse("sip:[2001:db8::10:5070]").unwrap();
        assert_eq!(u.port, None);
        assert_eq!(u.host, "[2001:db8::10:5070]");
    }

    #[test]
    fn tel_and_opaque() {
        let t = Uri::parse("tel:+1-201-555-0123;phone-context=example.com").unwrap();
        assert_eq!(t.scheme, Scheme::Tel);
        assert_eq!(t.user, Some("+1-201-555-0123"));
        let o = Uri::parse("soap.beep://192.0.2.103:3002").unwrap();
        assert_eq!(o.scheme, Scheme::Other("soap.beep"));
    }
}
