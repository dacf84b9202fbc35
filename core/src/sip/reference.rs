//! The straightforward parsers the fast paths must agree with (tests only).
//!
//! These are the slice-and-trim parsers as they stood before the hot paths were rewritten to
//! scan octets once (and fall back to the general grammar on anything unusual). The rewrite's
//! only contract is to give exactly what these give. Property tests below compare the two on the torture corpus, on mutations of it and on
//! strings drawn from the octets the grammars care about.

use super::error::ParseError;
use super::header::HeaderName;
use super::message::{Message, RequestLine, StartLine, StatusLine};
use super::method::Method;
use super::name_addr::{NameAddr, NameAddrError};
use super::params::{Param, Params};
use super::uri::{Scheme, Uri, UriError};
use super::via::{Via, ViaError};
use super::{CSeq, MAX_MESSAGE_SIZE};

fn is_lws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

fn is_token(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'-' | b'.' | b'!' | b'%' | b'*' | b'_' | b'+' | b'`' | b'\'' | b'~'
        )
}

fn is_token_str(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(is_token)
}

fn trim(s: &str) -> &str {
    s.trim_matches(|c: char| c.is_ascii() && is_lws(c as u8))
}

fn find(s: &str, b: u8) -> Option<usize> {
    s.bytes().position(|c| c == b)
}

fn parse_u32(s: &str) -> Option<u32> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.bytes().try_fold(0u32, |acc, d| {
        acc.checked_mul(10)?.checked_add(u32::from(d - b'0'))
    })
}

fn quoted_len(s: &[u8]) -> Option<usize> {
    let mut i = 1;
    while i < s.len() {
        match s[i] {
            b'\\' => i += 2,
            b'"' => return Some(i + 1),
            _ => i += 1,
        }
    }
    None
}

pub fn split_outside(s: &str, sep: u8) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = s;
    'pieces: loop {
        let b = rest.as_bytes();
        let mut i = 0;
        while i < b.len() {
            match b[i] {
                b'"' => match quoted_len(&b[i..]) {
                    Some(n) => i += n,
                    None => break,
                },
                b'<' => match find(&rest[i..], b'>') {
                    Some(n) => i += n + 1,
                    None => break,
                },
                c if c == sep => {
                    out.push(trim(&rest[..i]));
                    rest = &rest[i + 1..];
                    continue 'pieces;
                }
                _ => i += 1,
            }
        }
        out.push(trim(rest));
        return out;
    }
}

pub fn header_name(name: &[u8]) -> HeaderName {
    let low = name.to_ascii_lowercase();
    let compact = [
        (b'v', HeaderName::Via),
        (b'f', HeaderName::From),
        (b't', HeaderName::To),
        (b'i', HeaderName::CallId),
        (b'm', HeaderName::Contact),
        (b'l', HeaderName::ContentLength),
        (b'c', HeaderName::ContentType),
        (b'k', HeaderName::Supported),
        (b'o', HeaderName::Event),
        (b's', HeaderName::Subject),
        (b'r', HeaderName::ReferTo),
        (b'e', HeaderName::ContentEncoding),
        (b'x', HeaderName::SessionExpires),
        (b'b', HeaderName::ReferredBy),
        (b'u', HeaderName::AllowEvents),
    ];
    if let [c] = low[..] {
        return compact
            .iter()
            .find(|k| k.0 == c)
            .map_or(HeaderName::Other, |k| k.1);
    }
    super::header::ALL
        .iter()
        .copied()
        .find(|h| h.as_str().to_ascii_lowercase().as_bytes() == low)
        .unwrap_or(HeaderName::Other)
}

/// A message as the plain parser sees it: every field as (name, raw name, raw value).
#[derive(Debug, PartialEq, Eq)]
pub struct RefMessage<'a> {
    pub start: StartLine<'a>,
    pub headers: Vec<(HeaderName, &'a str, &'a str)>,
    pub body: &'a [u8],
    pub raw: &'a [u8],
}

pub fn parse_message(buf: &[u8]) -> Result<RefMessage<'_>, ParseError> {
    if buf.len() > MAX_MESSAGE_SIZE {
        return Err(ParseError::TooLarge);
    }
    if buf.is_empty() {
        return Err(ParseError::Empty);
    }
    let first_end = find_b(buf, b'\n').unwrap_or(buf.len());
    let first = &buf[..first_end];
    let first = first.strip_suffix(b"\r").unwrap_or(first);
    let first = std::str::from_utf8(first).map_err(|_| ParseError::NotUtf8)?;
    let start = parse_start_line(first)?;
    let head_start = (first_end + 1).min(buf.len());
    let bytes = &buf[head_start..];
    let mut lines = Vec::new();
    let mut content_length = None;
    let mut pos = 0;
    let mut head_len = bytes.len();
    let mut body_start = buf.len();
    while pos < bytes.len() {
        if bytes[pos] == b'\n' || bytes[pos..].starts_with(b"\r\n") {
            head_len = pos;
            body_start = head_start + pos + if bytes[pos] == b'\n' { 1 } else { 2 };
            break;
        }
        let line_start = pos;
        let mut scan = pos;
        let line_end = loop {
            match find_b(&bytes[scan..], b'\n') {
                Some(i) => {
                    let nl = scan + i;
                    if matches!(bytes.get(nl + 1), Some(b' ' | b'\t')) {
                        scan = nl + 1;
                        continue;
                    }
                    break nl;
                }
                None => break bytes.len(),
            }
        };
        pos = line_end + 1;
        let end = if line_end > line_start && bytes[line_end - 1] == b'\r' {
            line_end - 1
        } else {
            line_end
        };
        let line = &bytes[line_start..end];
        let colon = find_b(line, b':').ok_or(ParseError::BadHeaderLine)?;
        let mut name_end = colon;
        while name_end > 0 && matches!(line[name_end - 1], b' ' | b'\t') {
            name_end -= 1;
        }
        let raw_name = &line[..name_end];
        if raw_name.is_empty() || !raw_name.iter().all(|&b| is_token(b)) {
            return Err(ParseError::BadHeaderLine);
        }
        let name = header_name(raw_name);
        if name == HeaderName::ContentLength {
            let v = std::str::from_utf8(&line[colon + 1..]).ok().map(trim);
            let n = v.and_then(parse_u32).ok_or(ParseError::BadContentLength)?;
            if content_length.is_some_and(|c| c != n) {
                return Err(ParseError::DuplicateHeader(HeaderName::ContentLength));
            }
            content_length = Some(n);
        }
        if lines.len() == super::message::MAX_HEADERS {
            return Err(ParseError::TooManyHeaders);
        }
        lines.push((name, line_start, name_end, colon + 1, end));
    }
    let head = std::str::from_utf8(&bytes[..head_len]).map_err(|_| ParseError::NotUtf8)?;
    let available = buf.len().saturating_sub(body_start);
    let body_len = match content_length {
        Some(n) if n as usize > available => return Err(ParseError::Truncated),
        Some(n) => n as usize,
        None => available,
    };
    let end = body_start + body_len;
    Ok(RefMessage {
        start,
        headers: lines
            .into_iter()
            .map(|(n, s, ne, vo, e)| (n, &head[s..s + ne], &head[s + vo..e]))
            .collect(),
        body: &buf[body_start..end],
        raw: &buf[..end],
    })
}

fn find_b(s: &[u8], b: u8) -> Option<usize> {
    s.iter().position(|&c| c == b)
}

fn parse_start_line(line: &str) -> Result<StartLine<'_>, ParseError> {
    if let Some(rest) = line.strip_prefix("SIP/") {
        let sp = find(rest, b' ').ok_or(ParseError::BadStatusLine)?;
        check_version(&rest[..sp], ParseError::BadStatusLine)?;
        let rest = &rest[sp + 1..];
        let (code, reason) = match find(rest, b' ') {
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => (rest, ""),
        };
        if code.len() != 3 {
            return Err(ParseError::BadStatusLine);
        }
        let code = parse_u32(code).ok_or(ParseError::BadStatusLine)?;
        if !(100..=699).contains(&code) {
            return Err(ParseError::BadStatusLine);
        }
        return Ok(StartLine::Response(StatusLine {
            code: code as u16,
            reason,
        }));
    }
    let b = line.as_bytes();
    let sp1 = find_b(b, b' ').ok_or(ParseError::BadRequestLine)?;
    let sp2 = sp1 + 1 + find_b(&b[sp1 + 1..], b' ').ok_or(ParseError::BadRequestLine)?;
    let (method, uri, version) = (&line[..sp1], &line[sp1 + 1..sp2], &line[sp2 + 1..]);
    if !is_token_str(method) || uri.is_empty() || find(version, b' ').is_some() {
        return Err(ParseError::BadRequestLine);
    }
    let version = version
        .strip_prefix("SIP/")
        .or_else(|| version.strip_prefix("sip/"))
        .ok_or(ParseError::BadRequestLine)?;
    check_version(version, ParseError::BadRequestLine)?;
    Ok(StartLine::Request(RequestLine {
        method: Method::from_token(method),
        uri,
    }))
}

fn check_version(v: &str, malformed: ParseError) -> Result<(), ParseError> {
    let dot = find(v, b'.').ok_or(malformed)?;
    let (major, minor) = (&v[..dot], &v[dot + 1..]);
    if parse_u32(major).is_none() || parse_u32(minor).is_none() {
        return Err(malformed);
    }
    if v != "2.0" {
        return Err(ParseError::UnsupportedVersion);
    }
    Ok(())
}

pub fn params(p: &str) -> Vec<Param<'_>> {
    let s = p.trim_start_matches(|c: char| c.is_ascii() && is_lws(c as u8));
    let s = s.strip_prefix(';').unwrap_or(s);
    if trim(s).is_empty() {
        return Vec::new();
    }
    split_outside(s, b';')
        .into_iter()
        .map(|p| match find(p, b'=') {
            Some(eq) => Param {
                name: trim(&p[..eq]),
                value: Some(trim(&p[eq + 1..])),
            },
            None => Param {
                name: p,
                value: None,
            },
        })
        .collect()
}

pub fn param_get<'a>(p: &'a str, name: &str) -> Option<Option<&'a str>> {
    params(p)
        .into_iter()
        .find(|p| p.name.eq_ignore_ascii_case(name))
        .map(|p| p.value)
}

pub fn via(value: &str) -> Result<Via<'_>, ViaError> {
    let s = trim(value);
    let mut parts = s.splitn(3, '/');
    let protocol = trim(parts.next().ok_or(ViaError::BadProtocol)?);
    let version = trim(parts.next().ok_or(ViaError::BadProtocol)?);
    let rest = trim(parts.next().ok_or(ViaError::BadProtocol)?);
    let t_end = rest.bytes().position(is_lws).ok_or(ViaError::BadSentBy)?;
    let transport = &rest[..t_end];
    if !is_token_str(protocol) || !is_token_str(version) || !is_token_str(transport) {
        return Err(ViaError::BadProtocol);
    }
    let rest = trim(&rest[t_end..]);
    let sent_by_end = find(rest, b';').unwrap_or(rest.len());
    let sent_by = trim(&rest[..sent_by_end]);
    let (host, port) = split_host_port(sent_by).ok_or(ViaError::BadSentBy)?;
    Ok(Via {
        protocol,
        version,
        transport,
        host,
        port,
        params: Params(&rest[sent_by_end..]),
    })
}

pub fn split_host_port(s: &str) -> Option<(&str, Option<u16>)> {
    let (host, port) = if s.starts_with('[') {
        let close = find(s, b']')?;
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
        let end = find(s, b':').unwrap_or(s.len());
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
        Some(p) => Some(u16::try_from(parse_u32(trim(p))?).ok()?),
        None if port.is_empty() => None,
        None => return None,
    };
    Some((host, port))
}

pub fn cseq(value: &str) -> Option<CSeq<'_>> {
    let s = trim(value);
    let end = s.bytes().position(is_lws)?;
    let seq = parse_u32(&s[..end]).filter(|&n| n < 1 << 31)?;
    let method = trim(&s[end..]);
    if !is_token_str(method) {
        return None;
    }
    Some(CSeq {
        seq,
        method: Method::from_token(method),
    })
}

pub fn name_addr(value: &str) -> Result<NameAddr<'_>, NameAddrError> {
    let s = trim(value);
    let b = s.as_bytes();
    let (display, after_display) = if b.first() == Some(&b'"') {
        let n = quoted_len(b).ok_or(NameAddrError::UnterminatedQuote)?;
        (Some(&s[..n]), trim(&s[n..]))
    } else if let Some(lt) = find(s, b'<') {
        let d = trim(&s[..lt]);
        if !d.bytes().all(|c| is_token(c) || is_lws(c)) {
            return Err(NameAddrError::BadDisplayName);
        }
        ((!d.is_empty()).then_some(d), &s[lt..])
    } else {
        (None, s)
    };
    let header_params = |p: &str| {
        let rest = trim(p);
        if !rest.is_empty() && !rest.starts_with(';') {
            return Err(NameAddrError::BadParams);
        }
        Ok(())
    };
    if let Some(inner) = after_display.strip_prefix('<') {
        let gt = find(inner, b'>').ok_or(NameAddrError::MissingAngle)?;
        let uri_str = &inner[..gt];
        if uri_str.bytes().any(is_lws) {
            return Err(NameAddrError::SpaceInAddrSpec);
        }
        let uri = uri(uri_str).map_err(|_| NameAddrError::BadUri)?;
        let params = &inner[gt + 1..];
        header_params(params)?;
        return Ok(NameAddr {
            display,
            uri,
            params: Params(params),
            bracketed: true,
        });
    }
    if display.is_some() {
        return Err(NameAddrError::MissingAngle);
    }
    let end = find(s, b';').unwrap_or(s.len());
    let uri_str = trim(&s[..end]);
    if uri_str.contains(['?', ',']) {
        return Err(NameAddrError::UnbracketedUriWithHeaders);
    }
    if uri_str.bytes().any(is_lws) {
        return Err(NameAddrError::SpaceInAddrSpec);
    }
    let uri = uri(uri_str).map_err(|_| NameAddrError::BadUri)?;
    header_params(&s[end..])?;
    Ok(NameAddr {
        display,
        uri,
        params: Params(&s[end..]),
        bracketed: false,
    })
}

pub fn uri(s: &str) -> Result<Uri<'_>, UriError> {
    let colon = find(s, b':').ok_or(UriError::NoScheme)?;
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
    let empty = Uri {
        scheme: Scheme::Sip,
        user: None,
        password: None,
        host: "",
        port: None,
        params: Params(""),
        headers: None,
        opaque: "",
        raw: s,
    };
    let scheme = if scheme_str.eq_ignore_ascii_case("sip") {
        Scheme::Sip
    } else if scheme_str.eq_ignore_ascii_case("sips") {
        Scheme::Sips
    } else if scheme_str.eq_ignore_ascii_case("tel") {
        Scheme::Tel
    } else {
        if rest.is_empty() || rest.bytes().any(|b| is_lws(b) || b == b'<' || b == b'>') {
            return Err(UriError::BadHost);
        }
        return Ok(Uri {
            scheme: Scheme::Other(scheme_str),
            opaque: rest,
            ..empty
        });
    };
    if scheme == Scheme::Tel {
        let (number, params) = match find(rest, b';') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        let valid_number = !number.is_empty()
            && number.bytes().all(|b| {
                b.is_ascii_hexdigit() || matches!(b, b'+' | b'-' | b'.' | b'(' | b')' | b'*' | b'#')
            });
        if !valid_number {
            return Err(UriError::BadUser);
        }
        return Ok(Uri {
            scheme,
            user: Some(number),
            params: Params(params),
            ..empty
        });
    }
    let (userinfo, after_user) = match find(rest, b'@') {
        Some(i) => (Some(&rest[..i]), &rest[i + 1..]),
        None => (None, rest),
    };
    let (hostpart, headers) = match find(after_user, b'?') {
        Some(i) => (&after_user[..i], Some(&after_user[i + 1..])),
        None => (after_user, None),
    };
    let (user, password) = match userinfo {
        None => (None, None),
        Some(ui) => {
            let (u, p) = match find(ui, b':') {
                Some(i) => (&ui[..i], Some(&ui[i + 1..])),
                None => (ui, None),
            };
            if u.is_empty() {
                return Err(UriError::BadUser);
            }
            (Some(u), p)
        }
    };
    let (host, after_host) = if hostpart.starts_with('[') {
        let close = find(hostpart, b']').ok_or(UriError::BadHost)?;
        let inner = &hostpart[1..close];
        if inner.is_empty()
            || !inner
                .bytes()
                .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
        {
            return Err(UriError::BadHost);
        }
        (&hostpart[..=close], &hostpart[close + 1..])
    } else {
        let end = hostpart
            .bytes()
            .position(|b| b == b':' || b == b';')
            .unwrap_or(hostpart.len());
        let h = &hostpart[..end];
        if h.is_empty()
            || !h
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
            || h.starts_with(['-', '.'])
        {
            return Err(UriError::BadHost);
        }
        (h, &hostpart[end..])
    };
    let (port, params) = if let Some(p) = after_host.strip_prefix(':') {
        let end = find(p, b';').unwrap_or(p.len());
        let port = parse_u32(&p[..end])
            .filter(|&n| n <= 65535)
            .ok_or(UriError::BadPort)?;
        (Some(port as u16), &p[end..])
    } else {
        (None, after_host)
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
        raw: s,
        ..empty
    })
}

/// Everything the accessors of `m` give, against the plain parsers over the plain split.
fn compare_message(buf: &[u8]) {
    let ours = Message::parse(buf);
    let plain = parse_message(buf);
    let (m, r) = match (ours, plain) {
        (Ok(m), Ok(r)) => (m, r),
        (Err(a), Err(b)) => return assert_eq!(a, b, "{:?}", String::from_utf8_lossy(buf)),
        (a, b) => panic!(
            "parse differs: {:?} vs {:?} on {:?}",
            a.map(|m| m.header_count()),
            b.map(|r| r.headers.len()),
            String::from_utf8_lossy(buf)
        ),
    };
    assert_eq!(m.start, r.start);
    assert_eq!(m.body, r.body);
    assert_eq!(m.raw, r.raw);
    let fields: Vec<_> = m.headers().map(|h| (h.name, h.raw_name, h.value)).collect();
    assert_eq!(fields, r.headers);
    assert_eq!(m.header_count(), r.headers.len());
    for name in super::header::ALL.iter().copied() {
        let first = r.headers.iter().find(|h| h.0 == name).map(|h| trim(h.2));
        assert_eq!(m.header(name), first, "{name:?}");
        let all: Vec<_> = r
            .headers
            .iter()
            .filter(|h| h.0 == name)
            .map(|h| trim(h.2))
            .collect();
        assert_eq!(m.all(name).collect::<Vec<_>>(), all);
        let list: Vec<_> = all.iter().flat_map(|v| split_outside(v, b',')).collect();
        assert_eq!(m.list(name).collect::<Vec<_>>(), list);
    }
    let first = |n| r.headers.iter().find(|h| h.0 == n).map(|h| trim(h.2));
    let top = first(HeaderName::Via).map(|v| split_outside(v, b',')[0]);
    assert_eq!(m.top_via(), top.and_then(|v| via(v).ok()));
    assert_eq!(
        m.from(),
        first(HeaderName::From).and_then(|v| name_addr(v).ok())
    );
    assert_eq!(
        m.to(),
        first(HeaderName::To).and_then(|v| name_addr(v).ok())
    );
    assert_eq!(m.cseq(), first(HeaderName::CSeq).and_then(cseq));
    assert_eq!(m.call_id(), first(HeaderName::CallId));
    if let StartLine::Request(l) = r.start {
        assert_eq!(m.request_uri(), uri(l.uri).ok());
    }
    for h in &r.headers {
        compare_value(h.2);
        for e in split_outside(trim(h.2), b',') {
            compare_value(e);
        }
    }
}

/// Every value parser on one string.
fn compare_value(v: &str) {
    assert_eq!(Via::parse(v), via(v), "Via {v:?}");
    assert_eq!(NameAddr::parse(v), name_addr(v), "NameAddr {v:?}");
    assert_eq!(Uri::parse(v), uri(v), "Uri {v:?}");
    assert_eq!(CSeq::parse(v).ok(), cseq(v), "CSeq {v:?}");
    assert_eq!(
        super::lex::split_outside(v, b',').collect::<Vec<_>>(),
        split_outside(v, b','),
        "split {v:?}"
    );
    compare_params(v);
    if let Ok(via) = Via::parse(v) {
        compare_params(via.params.as_str());
    }
    if let Ok(n) = NameAddr::parse(v) {
        compare_params(n.params.as_str());
        compare_params(n.uri.params.as_str());
    }
}

fn compare_params(p: &str) {
    let params = Params(p);
    assert_eq!(params.iter().collect::<Vec<_>>(), self::params(p), "{p:?}");
    for name in [
        "tag", "branch", "rport", "received", "expires", "lr", "TAG", "x",
    ] {
        assert_eq!(params.get(name), param_get(p, name), "{name} in {p:?}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn corpus() -> Vec<Vec<u8>> {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests");
        let mut v = Vec::new();
        for sub in ["torture/rfc4475", "torture/rfc5118", "messages"] {
            for e in std::fs::read_dir(format!("{dir}/{sub}"))
                .expect("dir")
                .flatten()
            {
                v.push(std::fs::read(e.path()).expect("file"));
            }
        }
        v.sort();
        v
    }

    /// Octets the grammars branch on, so random strings reach the unusual paths often.
    const ALPHABET: &[u8] = b"sSiIpP:@;=<>\" ,/\t\r\n\\[]?%&aAzZ059.-_+~*!'`()#$\x7f\xc3\xa9";

    fn sip_string() -> impl Strategy<Value = String> {
        proptest::collection::vec(proptest::sample::select(ALPHABET), 0..48)
            .prop_map(|v| String::from_utf8_lossy(&v).into_owned())
    }

    #[test]
    fn corpus_agrees() {
        for buf in corpus() {
            compare_message(&buf);
        }
    }

    #[test]
    fn known_shapes_agree() {
        for v in [
            "SIP/2.0/UDP 192.168.1.20:5060;branch=z9hG4bKnashds8;rport",
            "SIP/2.0/UDP [2001:db8::9:1]:6050;branch=z9hG4bKas3-111",
            "SIP/2.0/UDP a.b , SIP/2.0/TCP c",
            "SIP/2.0/UDP a.b;x=\"a,b\", SIP/2.0/TCP c",
            "SIP/2.0/UDP a.b:0065536",
            "SIP/2.0/UDP a.b:00065535;lr",
            "SIP/2.0/UDP a.b:",
            "SIP/2.0/UDP a.b: 5",
            "SIP/2.0/UDP  a.b ;x",
            "SIP/2.0/UDP\ta.b\t;x",
            "\"Alice\" <sip:alice@mgw.test>;tag=1928301774",
            "<sip:301@mgw.test>",
            "caller<sip:caller@example.com>;tag=323",
            "sip:+16505552222@ss1.example.net;user=phone",
            "sip:user@example.com;tag=81x2",
            "Bob Smith <sip:bob@x> ; tag = 1",
            "<sip:a@b>x",
            "<sip:a@b> ;tag",
            "<sip:a@b:5060;transport=udp>;expires=3600",
            "<sips:a:pw@[::1]:5061;lr?h=v>",
            "<SIP:a@B>",
            "<sip:a@-b>",
            "<sip:a@b?>",
            "<tel:+1-201-555-0123;phone-context=example.com>",
            "<urn:uuid:00000000-0000-1000-8000-AABBCCDDEEFF>",
            "sip:a@b?x",
            "sip:a@b, sip:c@d",
            "\"x\" sip:a@b",
            "314159 INVITE",
            "0009\r\n  INVITE",
            "1 ",
            " ;tag=1;x=\"a;b\";lr",
        ] {
            compare_value(v);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4000))]

        /// Behind the usual prefixes, so the deeper branches are reached too.
        #[test]
        fn values_agree(
            prefix in proptest::sample::select(&["", "SIP/2.0/UDP ", "sip:", "<sip:", "\"a\" <sip:", "a@", "1 ", ";"][..]),
            s in sip_string(),
        ) {
            compare_value(&format!("{prefix}{s}"));
        }

        #[test]
        fn mutated_corpus_agrees(
            idx in 0usize..64,
            edits in proptest::collection::vec((any::<prop::sample::Index>(), proptest::sample::select(ALPHABET)), 1..8),
            cut in any::<prop::sample::Index>(),
        ) {
            let corpus = corpus();
            let mut buf = corpus[idx % corpus.len()].clone();
            for (at, byte) in edits {
                let i = at.index(buf.len().max(1));
                if i < buf.len() { buf[i] = byte; }
            }
            let end = cut.index(buf.len() + 1);
            compare_message(&buf[..end]);
        }

        #[test]
        fn arbitrary_bytes_agree(buf in proptest::collection::vec(any::<u8>(), 0..600)) {
            compare_message(&buf);
        }
    }
}
