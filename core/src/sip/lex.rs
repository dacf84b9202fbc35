//! Lexical rules shared by the header grammars (RFC 3261 section 25.1).
//!
//! Header values are slices of the received datagram, so a folded value still contains its CRLF;
//! every rule here therefore treats CR and LF as linear white space.

const fn token_table() -> [bool; 256] {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        t[b] = c.is_ascii_alphanumeric()
            || matches!(
                c,
                b'-' | b'.' | b'!' | b'%' | b'*' | b'_' | b'+' | b'`' | b'\'' | b'~'
            );
        b += 1;
    }
    t
}

static TOKEN: [bool; 256] = token_table();

/// `token` characters (RFC 3261 section 25.1).
#[inline]
pub fn is_token(b: u8) -> bool {
    TOKEN[usize::from(b)]
}

/// Linear white space, including the CRLF of a folded line.
#[inline]
pub const fn is_lws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

#[inline]
pub fn trim(s: &str) -> &str {
    let b = s.as_bytes();
    let mut i = 0;
    let mut j = b.len();
    while i < j && is_lws(b[i]) {
        i += 1;
    }
    while j > i && is_lws(b[j - 1]) {
        j -= 1;
    }
    // Only ASCII whitespace was skipped, so both ends are char boundaries.
    &s[i..j]
}

#[inline]
pub fn trim_bytes(b: &[u8]) -> &[u8] {
    let mut i = 0;
    let mut j = b.len();
    while i < j && is_lws(b[i]) {
        i += 1;
    }
    while j > i && is_lws(b[j - 1]) {
        j -= 1;
    }
    &b[i..j]
}

const ONES: u64 = u64::from_le_bytes([1; 8]);
const HIGHS: u64 = ONES << 7;

/// How far `find_byte` looks word by word before handing the rest to `memchr`: most header
/// values end sooner, and for them an inlined loop beats memchr's call, dispatch and setup.
const WORDS_FIRST: usize = 64;

/// Position of the first `needle` in `hay`.
#[inline]
pub fn find_byte(hay: &[u8], needle: u8) -> Option<usize> {
    let pattern = ONES * u64::from(needle);
    let near = &hay[..hay.len().min(WORDS_FIRST)];
    let mut i = 0;
    while let Some(word) = near[i..].first_chunk::<8>() {
        // A zero byte in `x` is a match; the lowest flagged byte is exact (borrows only run
        // upwards from a real zero).
        let x = u64::from_le_bytes(*word) ^ pattern;
        let hit = x.wrapping_sub(ONES) & !x & HIGHS;
        if hit != 0 {
            return Some(i + (hit.trailing_zeros() / 8) as usize);
        }
        i += 8;
    }
    if i < near.len() {
        if let Some(p) = near[i..].iter().position(|&b| b == needle) {
            return Some(i + p);
        }
    }
    let far = near.len();
    memchr::memchr(needle, &hay[far..]).map(|p| far + p)
}

/// Position of the first `b` in `s` (ASCII only, so the position is a char boundary).
#[inline]
pub fn find(s: &str, b: u8) -> Option<usize> {
    find_byte(s.as_bytes(), b)
}

/// Position of the first LWS octet in `s`.
#[inline]
pub fn find_lws(s: &str) -> Option<usize> {
    s.bytes().position(is_lws)
}

#[inline]
pub fn is_token_str(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(is_token)
}

/// Length of the run of token octets at the start of `b`.
#[inline]
pub fn token_len(b: &[u8]) -> usize {
    b.iter().position(|&c| !is_token(c)).unwrap_or(b.len())
}

/// Length of the quoted string at the start of `s` (which must start with `"`), quotes included.
/// `None` if it is not terminated.
pub fn quoted_len(s: &[u8]) -> Option<usize> {
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

/// Splits `s` at every `sep` that is outside a quoted string and outside `<...>`.
///
/// Yields each piece trimmed of LWS; an unterminated quote or angle bracket yields the rest as
/// one piece, which the element grammar then rejects.
pub fn split_outside(s: &str, sep: u8) -> SplitOutside<'_> {
    SplitOutside { rest: Some(s), sep }
}

#[derive(Clone)]
pub struct SplitOutside<'a> {
    rest: Option<&'a str>,
    sep: u8,
}

impl<'a> Iterator for SplitOutside<'a> {
    type Item = &'a str;
    #[inline]
    fn next(&mut self) -> Option<&'a str> {
        let s = self.rest?;
        match find_outside(s, self.sep) {
            Some(at) => {
                self.rest = Some(&s[at + 1..]);
                Some(trim(&s[..at]))
            }
            None => {
                self.rest = None;
                Some(trim(s))
            }
        }
    }
}

/// Position of the first `sep` outside quoted strings and `<...>`; `None` also when a quote or
/// angle bracket is left open before one is found.
#[inline]
pub fn find_outside(s: &str, sep: u8) -> Option<usize> {
    let b = s.as_bytes();
    let mut i = 0;
    // Jump between the only octets that matter: the separator, quotes and '<'.
    while let Some(off) = memchr::memchr3(sep, b'"', b'<', &b[i..]) {
        let at = i + off;
        match b[at] {
            b'"' => i = at + quoted_len(&b[at..])?,
            b'<' => i = at + find_byte(&b[at..], b'>')? + 1,
            _ => return Some(at),
        }
    }
    None
}

pub fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Checks that every `%` in `s` starts a two-digit hex escape.
pub fn escapes_valid(s: &[u8]) -> bool {
    let mut i = 0;
    while i < s.len() {
        if s[i] == b'%' {
            if i + 2 >= s.len() {
                return false;
            }
            if hex_val(s[i + 1]).is_none() || hex_val(s[i + 2]).is_none() {
                return false;
            }
            i += 3;
        } else {
            i += 1;
        }
    }
    true
}

/// Parses a run of ASCII digits as u32; `None` on empty, non-digit or overflow.
pub fn parse_u32(s: &str) -> Option<u32> {
    parse_u32_bytes(s.as_bytes())
}

pub fn parse_u32_bytes(s: &[u8]) -> Option<u32> {
    if s.is_empty() || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    s.iter().try_fold(0u32, |acc, d| {
        acc.checked_mul(10)?.checked_add(u32::from(d - b'0'))
    })
}

/// delta-seconds: values above 2^32-1 are taken as 2^32-1 (RFC 3261 section 20.19 / 20.10).
pub fn parse_delta_seconds(s: &str) -> Option<u32> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(parse_u32(s).unwrap_or(u32::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_respects_quotes_and_brackets() {
        let v: Vec<_> = split_outside(r#""a,b" <sip:x;p=1,2>, <sip:y> ,z"#, b',').collect();
        assert_eq!(v, [r#""a,b" <sip:x;p=1,2>"#, "<sip:y>", "z"]);
    }

    #[test]
    fn escapes() {
        assert!(escapes_valid(b"null-%00-null"));
        assert!(!escapes_valid(b"%Z4"));
        assert!(!escapes_valid(b"ab%4"));
        assert!(!escapes_valid(b"ab%"));
    }

    #[test]
    fn numbers() {
        assert_eq!(parse_u32("0068"), Some(68));
        assert_eq!(parse_u32("36893488147419103232"), None);
        assert_eq!(parse_delta_seconds("99999999999999"), Some(u32::MAX));
        assert_eq!(parse_delta_seconds("-1"), None);
    }
}
