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
        let first = if first.is_ascii() {
            ascii_str(first)
        } else {
            std::str::from_utf8(first).map_err(|_| ParseError::NotUtf8)?
        };
        let start = parse_start_line(first)?;
        let head_start = (first_end + 1).min(buf.len());
        let bytes = &buf[head_start..];
        let mut slots: SmallVec<[Slot; INLINE_HEADERS]> = SmallVec::new();
        let mut content_length = None;
        // Every octet of every line's value is OR-ed in here by the line-end scan (with some
        // octets after it); names are tokens, so without a high bit the section is ASCII.
        let mut seen = 0u64;
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
            if bytes.get(colon) != Some(&b':') {
                while matches!(bytes.get(colon), Some(b' ' | b'\t')) {
                    colon += 1;
                }
                if bytes.get(colon) != Some(&b':') {
                    return Err(ParseError::BadHeaderLine);
                }
            }
            // The value runs until a line break that is not followed by whitespace (folding).
            let mut line_end = next_lf(bytes, colon + 1, &mut seen);
            while matches!(bytes.get(line_end + 1), Some(b' ' | b'\t')) {
                line_end = next_lf(bytes, line_end + 1, &mut seen);
            }
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
        let head = &bytes[..head_len];
        let head = if seen & HIGH_BITS == 0 {
            ascii_str(head)
        } else {
            std::str::from_utf8(head).map_err(|_| ParseError::NotUtf8)?
        };
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

    /// The reason phrase of a response.
    pub fn reason(&self) -> Option<&'a str> {
        match self.start {
            StartLine::Response(s) => Some(s.reason),
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

    #[inline(always)]
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
    #[inline]
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

    #[inline]
    pub fn call_id(&self) -> Option<&'a str> {
        self.header(HeaderName::CallId)
    }

    #[inline]
    pub fn cseq(&self) -> Option<super::CSeq<'a>> {
        super::CSeq::parse(self.header(HeaderName::CSeq)?).ok()
    }

    /// The topmost Via value.
    #[inline]
    pub fn top_via(&self) -> Option<super::Via<'a>> {
        super::Via::parse_first(self.header(HeaderName::Via)?).ok()
    }

    #[inline]
    pub fn from(&self) -> Option<super::NameAddr<'a>> {
        super::NameAddr::parse(self.header(HeaderName::From)?).ok()
    }

    #[inline]
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

const ONES: u64 = u64::from_le_bytes([1; 8]);
const HIGH_BITS: u64 = ONES << 7;

/// Position of the first LF in `b` from `from` on, or `b.len()`, OR-ing every octet read into
/// `seen` (whole blocks, so a few octets after the LF too). Header lines are short, so a loop
/// inlined here beats a call to memchr per line: 16 octets a step with SSE2 (part of the
/// x86_64 baseline), a word at a time elsewhere and for the last few octets.
#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
#[inline]
fn next_lf(b: &[u8], from: usize, seen: &mut u64) -> usize {
    use std::arch::x86_64::{
        __m128i, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_movemask_epi8, _mm_or_si128, _mm_set1_epi8,
        _mm_setzero_si128,
    };
    let mut i = from;
    // SAFETY: the cfg above guarantees SSE2, and each load reads the 16 octets of `block`, a
    // subslice of `b`; `_mm_loadu_si128` needs no alignment.
    unsafe {
        let lf = _mm_set1_epi8(b'\n' as i8);
        let mut all = _mm_setzero_si128();
        while let Some(block) = b.get(i..i + 16) {
            let v = _mm_loadu_si128(block.as_ptr().cast::<__m128i>());
            all = _mm_or_si128(all, v);
            let hits = _mm_movemask_epi8(_mm_cmpeq_epi8(v, lf));
            if hits != 0 {
                if _mm_movemask_epi8(all) != 0 {
                    *seen |= HIGH_BITS;
                }
                return i + hits.trailing_zeros() as usize;
            }
            i += 16;
        }
        if _mm_movemask_epi8(all) != 0 {
            *seen |= HIGH_BITS;
        }
    }
    next_lf_words(b, i, seen)
}

#[cfg(not(all(target_arch = "x86_64", target_feature = "sse2")))]
#[inline]
fn next_lf(b: &[u8], from: usize, seen: &mut u64) -> usize {
    next_lf_words(b, from, seen)
}

/// [`next_lf`] a word at a time.
#[inline]
fn next_lf_words(b: &[u8], from: usize, seen: &mut u64) -> usize {
    const LF: u64 = ONES * b'\n' as u64;
    let mut i = from;
    while i + 8 <= b.len() {
        let Some(word) = b[i..].first_chunk::<8>() else {
            break;
        };
        let w = u64::from_le_bytes(*word);
        *seen |= w;
        // A zero byte of `x` is an LF; the lowest flagged byte is exact (a borrow only runs
        // upwards from a real zero).
        let x = w ^ LF;
        let hit = x.wrapping_sub(ONES) & !x & HIGH_BITS;
        if hit != 0 {
            return i + (hit.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    while i < b.len() && b[i] != b'\n' {
        *seen |= u64::from(b[i]);
        i += 1;
    }
    i
}

/// ASCII octets as text, without validating them again.
#[inline]
fn ascii_str(b: &[u8]) -> &str {
    debug_assert!(b.is_ascii());
    // SAFETY: every caller has established that `b` is ASCII (the start line by `is_ascii`,
    // the header section by the high bits of every one of its octets: see `seen` in
    // `Message::parse`), and ASCII is valid UTF-8. The differential tests in `reference`
    // compare the NotUtf8 verdicts with a validating parser on mutated and random input.
    unsafe { std::str::from_utf8_unchecked(b) }
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
#[inline]
fn check_version(v: &str, malformed: ParseError) -> Result<(), ParseError> {
    if v == "2.0" {
        return Ok(());
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The line-end scan against a plain search, from every offset of buffers with LFs and
    /// non-ASCII octets at every position the block and word loops can meet them.
    #[test]
    fn next_lf_finds_the_first_lf_and_sees_every_high_bit() {
        for len in 0..70 {
            for lf in (0..len).map(Some).chain([None]) {
                for high in (0..len).map(Some).chain([None]) {
                    let mut b = vec![b'a'; len];
                    if let Some(h) = high {
                        b[h] = 0xc3;
                    }
                    if let Some(l) = lf {
                        b[l] = b'\n';
                    }
                    for from in 0..=len {
                        let want = b[from..]
                            .iter()
                            .position(|&c| c == b'\n')
                            .map_or(len, |p| from + p);
                        let mut seen = 0;
                        let got = next_lf(&b, from, &mut seen);
                        assert_eq!(got, want, "len {len} lf {lf:?} from {from}");
                        // Every octet before the LF was seen; more may have been.
                        if b[from..want].iter().any(|&c| c >= 0x80) {
                            assert_ne!(seen & HIGH_BITS, 0, "len {len} high {high:?} from {from}");
                        }
                        if !b[from..].iter().any(|&c| c >= 0x80) {
                            assert_eq!(seen & HIGH_BITS, 0);
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn non_ascii_header_values_are_validated() {
        let ok = "OPTIONS sip:a SIP/2.0\r\nSubject: caf\u{e9} \u{2603}\r\nl: 0\r\n\r\n";
        let m = Message::parse(ok.as_bytes()).expect("UTF-8 values parse");
        assert_eq!(m.header(HeaderName::Subject), Some("caf\u{e9} \u{2603}"));
        let mut bad = ok.as_bytes().to_vec();
        let at = ok.find('\u{e9}').expect("e-acute");
        bad[at + 1] = b'x';
        assert_eq!(Message::parse(&bad).err(), Some(ParseError::NotUtf8));
    }
}
