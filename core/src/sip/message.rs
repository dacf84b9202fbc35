//! The message: start line, header fields and body, all borrowed from the received bytes.

use smallvec::SmallVec;

use super::error::ParseError;
use super::header::{Header, HeaderName};
use super::lex;
use super::method::Method;
use super::MAX_MESSAGE_SIZE;

/// Header fields kept inline per message: parsing allocates nothing up to this many (every
/// torture message and any phone's traffic fits); beyond it the index spills to the heap.
pub const INLINE_HEADERS: usize = 64;

/// A hard bound on fields per message, against memory exhaustion: 400 "Too many header fields".
pub const MAX_HEADERS: usize = 1024;

/// Where one header field lies in the header section. Offsets are u16: the header section
/// starts after the start line's LF, so it is shorter than [`MAX_MESSAGE_SIZE`] (checked below).
/// Eight octets a field keep the inline index at 512 octets, which `parse` moves when it returns.
#[derive(Clone, Copy, Debug)]
struct Slot {
    start: u16,
    colon: u16,
    /// Before the line's CRLF.
    end: u16,
    name: HeaderName,
}

const _: () = assert!(MAX_MESSAGE_SIZE <= u16::MAX as usize + 1);

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
    /// The header section, starting right after the start line's CRLF.
    head: &'a str,
    slots: SmallVec<[Slot; INLINE_HEADERS]>,
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
        // The start line ends at the first LF; the header section at the first empty line.
        let first_end = lex::find_byte(buf, b'\n').unwrap_or(buf.len());
        let first = &buf[..first_end];
        let first = first.strip_suffix(b"\r").unwrap_or(first);
        let first = std::str::from_utf8(first).map_err(|_| ParseError::NotUtf8)?;
        let start = parse_start_line(first)?;
        let head_start = (first_end + 1).min(buf.len());
        let bytes = &buf[head_start..];
        let mut slots: SmallVec<[Slot; INLINE_HEADERS]> = SmallVec::new();
        let mut content_length = None;
        let mut pos = 0;
        // Where the header section ends (at the empty line) and the body begins.
        let mut head_len = bytes.len();
        let mut body_start = buf.len();
        while pos < bytes.len() {
            // field-name: token octets, then optional SP/HT before the colon. A line starting
            // with anything else is the empty line or malformed.
            let line_start = pos;
            let name_end = line_start + lex::token_len(&bytes[line_start..]);
            if name_end == line_start {
                match bytes[pos..] {
                    [b'\n', ..] | [b'\r', b'\n', ..] => {
                        head_len = pos;
                        body_start = head_start + pos + if bytes[pos] == b'\n' { 1 } else { 2 };
                        break;
                    }
                    _ => return Err(ParseError::BadHeaderLine),
                }
            }
            let mut colon = name_end;
            while matches!(bytes.get(colon), Some(b' ' | b'\t')) {
                colon += 1;
            }
            if bytes.get(colon) != Some(&b':') {
                return Err(ParseError::BadHeaderLine);
            }
            // The value runs until a line break that is not followed by whitespace (folding).
            let mut scan = colon + 1;
            let line_end = loop {
                match lex::find_byte(&bytes[scan..], b'\n') {
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
            let end = if bytes[line_end - 1] == b'\r' {
                line_end - 1
            } else {
                line_end
            };
            let name = HeaderName::from_bytes(&bytes[line_start..name_end]);
            if name == HeaderName::ContentLength {
                let n = lex::parse_u32_bytes(lex::trim_bytes(&bytes[colon + 1..end]))
                    .ok_or(ParseError::BadContentLength)?;
                if content_length.is_some_and(|c| c != n) {
                    return Err(ParseError::DuplicateHeader(HeaderName::ContentLength));
                }
                content_length = Some(n);
            }
            if slots.len() == MAX_HEADERS {
                return Err(ParseError::TooManyHeaders);
            }
            // Offsets fit u16: `bytes` is shorter than MAX_MESSAGE_SIZE.
            slots.push(Slot {
                name,
                start: line_start as u16,
                colon: colon as u16,
                end: end as u16,
            });
        }

        // Validated once here, so every accessor can hand out &str without checks.
        let head = std::str::from_utf8(&bytes[..head_len]).map_err(|_| ParseError::NotUtf8)?;
        let available = buf.len().saturating_sub(body_start);
        let body_len = match content_length {
            Some(n) if n as usize > available => return Err(ParseError::Truncated),
            Some(n) => n as usize,
            None => available,
        };
        let end = body_start + body_len;
        Ok(Message {
            start,
            head,
            slots,
            body: &buf[body_start..end],
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

    fn header_at(&self, s: &Slot) -> Header<'a> {
        let head = self.head;
        let start = usize::from(s.start);
        // The name ends where the SP/HT before the colon begin.
        let mut name_end = usize::from(s.colon);
        while matches!(head.as_bytes()[name_end - 1], b' ' | b'\t') {
            name_end -= 1;
        }
        Header {
            name: s.name,
            raw_name: &head[start..name_end],
            value: &head[usize::from(s.colon) + 1..usize::from(s.end)],
        }
    }

    #[inline]
    fn value_at(&self, s: &Slot) -> &'a str {
        lex::trim(&self.head[usize::from(s.colon) + 1..usize::from(s.end)])
    }

    /// Every header field in order of appearance.
    pub fn headers(&self) -> impl Iterator<Item = Header<'a>> + '_ {
        self.slots.iter().map(|s| self.header_at(s))
    }

    pub fn header_count(&self) -> usize {
        self.slots.len()
    }

    /// The first value of a header, trimmed.
    pub fn header(&self, name: HeaderName) -> Option<&'a str> {
        self.slots
            .iter()
            .find(|s| s.name == name)
            .map(|s| self.value_at(s))
    }

    /// A header that is not in the known set, by case-insensitive name.
    pub fn header_by_name(&self, name: &str) -> Option<&'a str> {
        self.headers()
            .find(|h| h.raw_name.eq_ignore_ascii_case(name))
            .map(|h| lex::trim(h.value))
    }

    /// Every field with this name, in order, each as received (not split at commas).
    pub fn all(&self, name: HeaderName) -> impl Iterator<Item = &'a str> + '_ {
        self.slots
            .iter()
            .filter(move |s| s.name == name)
            .map(|s| self.value_at(s))
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
        super::Via::parse_first(self.header(HeaderName::Via)?).ok()
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
        let sp = lex::find(rest, b' ').ok_or(ParseError::BadStatusLine)?;
        check_version(&rest[..sp], ParseError::BadStatusLine)?;
        let rest = &rest[sp + 1..];
        let (code, reason) = match lex::find(rest, b' ') {
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => (rest, ""),
        };
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
    let b = line.as_bytes();
    let sp1 = lex::find_byte(b, b' ').ok_or(ParseError::BadRequestLine)?;
    let sp2 = sp1 + 1 + lex::find_byte(&b[sp1 + 1..], b' ').ok_or(ParseError::BadRequestLine)?;
    let (method, uri, version) = (&line[..sp1], &line[sp1 + 1..sp2], &line[sp2 + 1..]);
    if !lex::is_token_str(method) || uri.is_empty() || lex::find(version, b' ').is_some() {
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
    let dot = lex::find(v, b'.').ok_or(malformed)?;
    let (major, minor) = (&v[..dot], &v[dot + 1..]);
    if lex::parse_u32(major).is_none() || lex::parse_u32(minor).is_none() {
        return Err(malformed);
    }
    if v != "2.0" {
        return Err(ParseError::UnsupportedVersion);
    }
    Ok(())
}
