//! The Via header field (RFC 3261 section 20.42, RFC 3581 rport, RFC 5118 IPv6).

use super::lex::{self, class};
use super::params::Params;

/// The magic cookie that marks an RFC 3261 branch (section 8.1.1.7).
pub const BRANCH_COOKIE: &str = "z9hG4bK";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Via<'a> {
    /// `SIP`, `2.0`, `UDP` in `SIP/2.0/UDP`.
    pub protocol: &'a str,
    pub version: &'a str,
    pub transport: &'a str,
    /// sent-by host as written (IPv6 with brackets).
    pub host: &'a str,
    pub port: Option<u16>,
    pub params: Params<'a>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ViaError {
    BadProtocol,
    BadSentBy,
    BadParams,
}

impl<'a> Via<'a> {
    /// Parses one Via value (one element of the comma list).
    pub fn parse(value: &'a str) -> Result<Via<'a>, ViaError> {
        match Self::parse_plain(lex::trim(value), false) {
            Some(via) => Ok(via),
            None => Self::parse_general(value),
        }
    }

    /// Parses the first element of a Via field value (a comma list): the same as
    /// `Via::parse(lex::split_outside(value, b',').next())`, without splitting first.
    pub fn parse_first(value: &'a str) -> Result<Via<'a>, ViaError> {
        match Self::parse_plain(lex::trim(value), true) {
            Some(via) => Ok(via),
            None => Self::parse_general(lex::split_outside(value, b',').next().unwrap_or("")),
        }
    }

    /// The shape nearly every Via has, `token/token/token LWS host[:port][;params]`, in one
    /// pass. `None` means "not this shape" (not "invalid"): the general grammar decides then.
    /// With `list`, the element ends at the first comma outside quotes and `<...>`.
    #[inline]
    fn parse_plain(s: &'a str, list: bool) -> Option<Via<'a>> {
        let b = s.as_bytes();
        // Nearly always literally `SIP/2.0/`: one compare instead of two token runs.
        let (p_end, v_start, v_end) = if b.starts_with(b"SIP/2.0/") {
            (3, 4, 7)
        } else {
            let p_end = lex::token_len(b);
            if p_end == 0 || b.get(p_end) != Some(&b'/') {
                return None;
            }
            let v_end = p_end + 1 + lex::token_len(&b[p_end + 1..]);
            if v_end == p_end + 1 || b.get(v_end) != Some(&b'/') {
                return None;
            }
            (p_end, p_end + 1, v_end)
        };
        let t_start = v_end + 1;
        let t_end = t_start + lex::token_len(&b[t_start..]);
        let mut h = t_end;
        while h < b.len() && lex::is_lws(b[h]) {
            h += 1;
        }
        if t_end == t_start || h == t_end || h == b.len() {
            return None;
        }
        let host_end = if b[h] == b'[' {
            let inner = h + 1 + lex::run(&b[h + 1..], class::IPV6);
            if inner == h + 1 || b.get(inner) != Some(&b']') {
                return None;
            }
            inner + 1
        } else {
            let end = h + lex::run(&b[h..], class::HOST);
            if end == h {
                return None;
            }
            end
        };
        let mut port = None;
        let mut sent_by_end = host_end;
        if b.get(host_end) == Some(&b':') {
            let digits = lex::run(&b[host_end + 1..], class::DIGIT);
            if digits == 0 || digits > 5 {
                return None;
            }
            sent_by_end = host_end + 1 + digits;
            let value = lex::parse_u32_bytes(&b[host_end + 1..sent_by_end])?;
            port = Some(u16::try_from(value).ok()?);
        }
        let params = match b.get(sent_by_end) {
            None => "",
            Some(b';') if !list => &s[sent_by_end..],
            Some(b';') => {
                let rest = &s[sent_by_end..];
                lex::trim(&rest[..lex::find_outside(rest, b',').unwrap_or(rest.len())])
            }
            Some(b',') if list => "",
            _ => return None,
        };
        Some(Via {
            protocol: &s[..p_end],
            version: &s[v_start..v_end],
            transport: &s[t_start..t_end],
            host: &s[h..host_end],
            port,
            params: Params(params),
        })
    }

    fn parse_general(value: &'a str) -> Result<Via<'a>, ViaError> {
        let s = lex::trim(value);
        let mut parts = s.splitn(3, '/');
        let protocol = lex::trim(parts.next().ok_or(ViaError::BadProtocol)?);
        let version = lex::trim(parts.next().ok_or(ViaError::BadProtocol)?);
        let rest = lex::trim(parts.next().ok_or(ViaError::BadProtocol)?);
        let t_end = lex::find_lws(rest).ok_or(ViaError::BadSentBy)?;
        let transport = &rest[..t_end];
        if !lex::is_token_str(protocol)
            || !lex::is_token_str(version)
            || !lex::is_token_str(transport)
        {
            return Err(ViaError::BadProtocol);
        }
        let rest = lex::trim(&rest[t_end..]);
        let sent_by_end = lex::find(rest, b';').unwrap_or(rest.len());
        let sent_by = lex::trim(&rest[..sent_by_end]);
        let (host, port) = split_host_port(sent_by).ok_or(ViaError::BadSentBy)?;
        let params = Params(&rest[sent_by_end..]);
        Ok(Via {
            protocol,
            version,
            transport,
            host,
            port,
            params,
        })
    }

    /// The parameter grammar, checked once by [`super::validate`] rather than on every parse.
    pub fn check(&self) -> Result<(), ViaError> {
        if self.params.validate() {
            Ok(())
        } else {
            Err(ViaError::BadParams)
        }
    }

    pub fn branch(&self) -> Option<&'a str> {
        self.params.get("branch").flatten()
    }

    pub fn received(&self) -> Option<&'a str> {
        self.params.get("received").flatten()
    }

    /// `Some(None)` when the client asked for rport (RFC 3581) without a value yet.
    pub fn rport(&self) -> Option<Option<u16>> {
        self.params
            .get("rport")
            .map(|v| v.and_then(|p| p.parse().ok()))
    }

    pub fn maddr(&self) -> Option<&'a str> {
        self.params.get("maddr").flatten()
    }

    pub fn ttl(&self) -> Option<u8> {
        self.params
            .get("ttl")
            .flatten()
            .and_then(|t| t.parse().ok())
    }

    /// Whether the branch follows RFC 3261 (so it alone identifies the transaction).
    pub fn has_rfc3261_branch(&self) -> bool {
        self.branch().is_some_and(|b| b.starts_with(BRANCH_COOKIE))
    }
}

/// Splits `host[:port]` with IPv6 references in brackets.
pub fn split_host_port(s: &str) -> Option<(&str, Option<u16>)> {
    let (host, port) = if s.starts_with('[') {
        let close = lex::find(s, b']')?;
        let inner = &s[1..close];
        if inner.is_empty()
            || !inner
                .bytes()
                .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
        {
            return None;
        }
        (&s[..=close], &s[close + 1..])
    } else {
        let end = lex::find(s, b':').unwrap_or(s.len());
        (&s[..end], &s[end..])
    };
    if !s.starts_with('[')
        && (host.is_empty()
            || !host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.'))
    {
        return None;
    }
    let port = match port.strip_prefix(':') {
        Some(p) => Some(u16::try_from(lex::parse_u32(lex::trim(p))?).ok()?),
        None if port.is_empty() => None,
        None => return None,
    };
    Some((host, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folded_and_spaced() {
        let v = Via::parse("SIP  /   2.0\r\n /UDP\r\n    192.0.2.2;branch=390skdjuw").unwrap();
        assert_eq!((v.protocol, v.version, v.transport), ("SIP", "2.0", "UDP"));
        assert_eq!(v.host, "192.0.2.2");
        assert_eq!(v.branch(), Some("390skdjuw"));
        assert!(!v.has_rfc3261_branch());
        let v = Via::parse(" SIP  /    2.0   / UDP  192.168.255.111   ; branch=\r\n z9hG4bK30239")
            .unwrap();
        assert_eq!(v.branch(), Some("z9hG4bK30239"));
    }

    #[test]
    fn ipv6_received_rport() {
        let v = Via::parse(
            "SIP/2.0/UDP [2001:db8::9:1]:5070;received=2001:db8::9:255;branch=z9hG4bKas3;rport",
        )
        .unwrap();
        assert_eq!(v.host, "[2001:db8::9:1]");
        assert_eq!(v.port, Some(5070));
        assert_eq!(v.received(), Some("2001:db8::9:255"));
        assert_eq!(v.rport(), Some(None));
    }

    #[test]
    fn rejects_empty_params() {
        assert_eq!(
            Via::parse("SIP/2.0/UDP 192.0.2.15;;").and_then(|v| v.check()),
            Err(ViaError::BadParams)
        );
        assert!(Via::parse("SIP/2.0/UDP").is_err());
    }
}
