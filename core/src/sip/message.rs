//! The message: start line, header fields and body, all borrowed from the received bytes.

use arrayvec::ArrayVec;

use super::error::ParseError;
use super::header::{Header, HeaderName};
use super::lex;
use super::method::Method;
use super::MAX_MESSAGE_SIZE;

/// Header fields kept per message. Fixed so that parsing never allocates; a message with more
/// fields is answered 400 "Too many header fields".
pub const MAX_HEADERS: usize = 128;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RequestLine<'a> {
    pub method: Method<'a>,
    /// The Request-URI as received; [`super::Uri::parse`] interprets it.
    pub uri: &'a str,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StatusLine<'a> {
    pub code: u16,
    pub reason: &'a str,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StartLine<'a> {
    Request(RequestLine<'a>),
    Response(StatusLine<'a>),
}

/// A parsed SIP message. Structure is checked here (start line, header lines, framing); header
/// values are interpreted on demand by the accessors and checked as a whole by
/// [`super::validate`].
#[derive(Clone, Debug)]
pub struct Message<'a> {
    pub start: StartLine<'a>,
    headers: ArrayVec<Header<'a>, MAX_HEADERS>,
    pub body: &'a [u8],
    /// The octets of this message; trailing octets of a datagram are not included.
    pub raw: &'a [u8],
}

impl<'a> Message<'a> {
    /// Parses one message. On a datagram, octets after the body announced by Content-Length are
    /// ignored (RFC 3261 section 18.3); without Content-Length the body runs to the end.
    pub fn parse(buf: &'a [u8]) -> Result<Message<'a>, ParseError> {
        if buf.len() > MAX_MESSAGE_SIZE {
            return Err(ParseError::TooLarge);
        }
        if buf.is_empty() {
            return Err(ParseError::Empty);
        }
        let (head, body_start) = match memchr::memmem::find(buf, b"\r\n\r\n") {
            Some(i) => (&buf[..i], i + 4),
            // A datagram without the empty line: the header section runs to its end.
            None => (buf, buf.len()),
        };
        let head = std::str::from_utf8(head).map_err(|_| ParseError::NotUtf8)?;
        let (first, mut rest) = match head.find("\r\n") {
            Some(i) => (&head[..i], &head[i + 2..]),
            None => (head, ""),
        };
        let start = parse_start_line(first)?;

        let mut headers = ArrayVec::new();
        let mut content_length = None;
        while !rest.is_empty() {
            // A header runs until a line break that is not followed by whitespace (folding).
            let mut end = 0;
            let bytes = rest.as_bytes();
            let line_end = loop {
                match memchr::memchr(b'\n', &bytes[end..]) {
                    Some(i) => {
                        let nl = end + i;
                        if matches!(bytes.get(nl + 1), Some(b' ' | b'\t')) {
                            end = nl + 1;
                            continue;
                        }
                        break nl;
                    }
                    None => break bytes.len(),
                }
            };
            let line = rest[..line_end].trim_end_matches('\r');
            rest = rest.get(line_end + 1..).unwrap_or("");
            let header = parse_header_line(line)?;
            if header.name == HeaderName::ContentLength {
                let n =
                    lex::parse_u32(lex::trim(header.value)).ok_or(ParseError::BadContentLength)?;
                if content_length.is_some_and(|c| c != n) {
                    return Err(ParseError::DuplicateHeader(HeaderName::ContentLength));
                }
                content_length = Some(n);
            }
            headers
                .try_push(header)
                .map_err(|_| ParseError::TooManyHeaders)?;
        }

        let available = buf.len().saturating_sub(body_start);
        let body_len = match content_length {
            Some(n) if n as usize > available => return Err(ParseError::Truncated),
            Some(n) => n as usize,
            None => available,
        };
        let end = body_start.min(buf.len()) + body_len;
        Ok(Message {
            start,
            headers,
            body: &buf[body_start.min(buf.len())..end],
            raw: &buf[..end],
        })
    }

    pub fn is_request(&self) -> bool {
        matches!(self.start, StartLine::Request(_))
    }

    pub fn method(&self) -> Option<Method<'a>> {
        match self.start {
            StartLine::Request(r) => Some(r.method),
            StartLine::Response(_) => None,
        }
    }

    pub fn status(&self) -> Option<u16> {
        match self.start {
            StartLine::Response(s) => Some(s.code),
            StartLine::Request(_) => None,
        }
    }

    pub fn headers(&self) -> &[Header<'a>] {
        &self.headers
    }

    /// The first value of a header, trimmed.
    pub fn header(&self, name: HeaderName) -> Option<&'a str> {
        self.headers
            .iter()
            .find(|h| h.name == name)
            .map(|h| lex::trim(h.value))
    }

    /// A header that is not in the known set, by case-insensitive name.
    pub fn header_by_name(&self, name: &str) -> Option<&'a str> {
        self.headers
            .iter()
            .find(|h| h.raw_name.eq_ignore_ascii_case(name))
            .map(|h| lex::trim(h.value))
    }

    /// Every field with this name, in order, each as received (not split at commas).
    pub fn all(&self, name: HeaderName) -> impl Iterator<Item = &'a str> + '_ {
        self.headers
            .iter()
            .filter(move |h| h.name == name)
            .map(|h| lex::trim(h.value))
    }

    /// Every element of a comma-list header, over all its fields, in order (RFC 3261 7.3.1).
    pub fn list(&self, name: HeaderName) -> impl Iterator<Item = &'a str> + '_ {
        self.all(name).flat_map(|v| lex::split_outside(v, b','))
    }

    pub fn call_id(&self) -> Option<&'a str> {
        self.header(HeaderName::CallId)
    }

    pub fn cseq(&self) -> Option<super::CSeq<'a>> {
        super::CSeq::parse(self.header(HeaderName::CSeq)?).ok()
    }

    /// The topmost Via value.
    pub fn top_via(&self) -> Option<super::Via<'a>> {
        super::Via::parse(self.list(HeaderName::Via).next()?).ok()
    }

    pub fn from(&self) -> Option<super::NameAddr<'a>> {
        super::NameAddr::parse(self.header(HeaderName::From)?).ok()
    }

    pub fn to(&self) -> Option<super::NameAddr<'a>> {
        super::NameAddr::parse(self.header(HeaderName::To)?).ok()
    }

    pub fn request_uri(&self) -> Option<super::Uri<'a>> {
        match self.start {
            StartLine::Request(r) => super::Uri::parse(r.uri).ok(),
            StartLine::Response(_) => None,
        }
    }

    pub fn max_forwards(&self) -> Option<u32> {
        lex::parse_u32(self.header(HeaderName::MaxForwards)?)
    }

    pub fn expires(&self) -> Option<u32> {
        lex::parse_delta_seconds(self.header(HeaderName::Expires)?)
    }
}

fn parse_start_line(line: &str) -> Result<StartLine<'_>, ParseError> {
    if let Some(rest) = line.strip_prefix("SIP/") {
        let (version, rest) = rest.split_once(' ').ok_or(ParseError::BadStatusLine)?;
        check_version(version, ParseError::BadStatusLine)?;
        let (code, reason) = rest.split_once(' ').unwrap_or((rest, ""));
        if code.len() != 3 {
            return Err(ParseError::BadStatusLine);
        }
        let code = lex::parse_u32(code).ok_or(ParseError::BadStatusLine)?;
        if !(100..=699).contains(&code) {
            return Err(ParseError::BadStatusLine);
        }
        return Ok(StartLine::Response(StatusLine {
            code: code as u16,
            reason,
        }));
    }
    // Request-Line = Method SP Request-URI SP SIP-Version: exactly two single spaces.
    let mut parts = line.split(' ');
    let (Some(method), Some(uri), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(ParseError::BadRequestLine);
    };
    if !lex::is_token_str(method) || uri.is_empty() {
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

/// `1*DIGIT "." 1*DIGIT`: 2.0 is served, any other well-formed version gets 505.
fn check_version(v: &str, malformed: ParseError) -> Result<(), ParseError> {
    let (major, minor) = v.split_once('.').ok_or(malformed)?;
    if lex::parse_u32(major).is_none() || lex::parse_u32(minor).is_none() {
        return Err(malformed);
    }
    if v != "2.0" {
        return Err(ParseError::UnsupportedVersion);
    }
    Ok(())
}

fn parse_header_line(line: &str) -> Result<Header<'_>, ParseError> {
    let colon = line.find(':').ok_or(ParseError::BadHeaderLine)?;
    let raw_name = line[..colon].trim_end_matches([' ', '\t']);
    if !lex::is_token_str(raw_name) {
        return Err(ParseError::BadHeaderLine);
    }
    Ok(Header {
        name: HeaderName::from_bytes(raw_name.as_bytes()),
        raw_name,
        value: &line[colon + 1..],
    })
}
