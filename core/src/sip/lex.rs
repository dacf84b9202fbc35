//! Lexical rules shared by the header grammars (RFC 3261 section 25.1).
//!
//! Header values are slices of the received datagram, so a folded value still contains its CRLF;
//! every rule here therefore treats CR and LF as linear white space.

/// Octet classes as bit flags, one table lookup per octet on the hot paths.
pub(crate) mod class {
    /// `token` (RFC 3261 section 25.1).
    pub const TOKEN: u8 = 1;
    /// Linear white space, CR and LF included.
    pub const LWS: u8 = 2;
    /// hostname and IPv4address octets: alphanumerics, `-` and `.`.
    pub const HOST: u8 = 4;
    /// Inside an IPv6 reference's brackets: hex digits, `:` and `.`.
    pub const IPV6: u8 = 8;
    pub const DIGIT: u8 = 16;
}

const fn class_table() -> [u8; 256] {
    let mut t = [0u8; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        let mut f = 0;
        if c.is_ascii_alphanumeric()
            || matches!(
                c,
                b'-' | b'.' | b'!' | b'%' | b'*' | b'_' | b'+' | b'`' | b'\'' | b'~'
            )
        {
            f |= class::TOKEN;
        }
        if is_lws(c) {
            f |= class::LWS;
        }
        if c.is_ascii_alphanumeric() || c == b'-' || c == b'.' {
            f |= class::HOST;
        }
        if c.is_ascii_hexdigit() || c == b':' || c == b'.' {
            f |= class::IPV6;
        }
        if c.is_ascii_digit() {
            f |= class::DIGIT;
        }
        t[b] = f;
        b += 1;
    }
    t
}

static CLASS: [u8; 256] = class_table();

/// Whether `b` is in any of the `classes` (flags of [`class`]).
#[inline]
pub(crate) fn is(b: u8, classes: u8) -> bool {
    CLASS[usize::from(b)] & classes != 0
}

/// Length of the run of octets at the start of `b` that are in any of the `classes`.
#[inline]
pub(crate) fn run(b: &[u8], classes: u8) -> usize {
    b.iter().position(|&c| !is(c, classes)).unwrap_or(b.len())
}

/// `token` characters (RFC 3261 section 25.1).
#[inline]
pub fn is_token(b: u8) -> bool {
    is(b, class::TOKEN)
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

/// Haystacks at least this long go to `memchr`, whose vector loop then pays for its call and
/// dispatch; the values searched here are mostly shorter, and an inlined word loop wins there.
const MEMCHR_FROM: usize = 64;

/// Flags (in the high bit of each octet) the octets of `w` equal to the octet repeated in
/// `pattern`. Only the lowest flag is exact: a borrow runs upwards from a real match.
#[inline]
fn eq_flags(w: u64, pattern: u64) -> u64 {
    let x = w ^ pattern;
    x.wrapping_sub(ONES) & !x & HIGHS
}

/// Flags the octets of `w` below 0x21 (SP, HT, CR, LF and the other controls); only the lowest
/// flag is exact.
#[inline]
fn ctl_flags(w: u64) -> u64 {
    w.wrapping_sub(ONES * 0x21) & !w & HIGHS
}

/// The first position in `hay` (at least one word long) whose octet is flagged by `flags`,
/// word by word; the last word overlaps the one before, so no octet is left to a byte loop.
#[inline]
fn find_words(hay: &[u8], flags: impl Fn(u64) -> u64) -> Option<usize> {
    let word = |at: usize| match hay[at..].first_chunk::<8>() {
        Some(w) => u64::from_le_bytes(*w),
        None => 0,
    };
    let n = hay.len();
    let mut i = 0;
    while i + 8 <= n {
        let hit = flags(word(i));
        if hit != 0 {
            return Some(i + (hit.trailing_zeros() / 8) as usize);
        }
        i += 8;
    }
    if i < n && n >= 8 {
        let hit = flags(word(n - 8));
        if hit != 0 {
            return Some(n - 8 + (hit.trailing_zeros() / 8) as usize);
        }
    }
    None
}

/// Position of the first `needle` in `hay`. Always inlined: the callers are small parsers that
/// LLVM otherwise leaves calling it, at a cost close to the search's own on short values.
#[inline(always)]
pub fn find_byte(hay: &[u8], needle: u8) -> Option<usize> {
    if hay.len() >= MEMCHR_FROM {
        return memchr::memchr(needle, hay);
    }
    if hay.len() < 8 {
        return hay.iter().position(|&b| b == needle);
    }
    let pattern = ONES * u64::from(needle);
    find_words(hay, |w| eq_flags(w, pattern))
}

/// Position of the first `a` or `b` in `hay`.
#[inline]
pub fn find_either(hay: &[u8], a: u8, b: u8) -> Option<usize> {
    if hay.len() >= MEMCHR_FROM {
        return memchr::memchr2(a, b, hay);
    }
    if hay.len() < 8 {
        return hay.iter().position(|&c| c == a || c == b);
    }
    let (pa, pb) = (ONES * u64::from(a), ONES * u64::from(b));
    find_words(hay, |w| eq_flags(w, pa) | eq_flags(w, pb))
}

/// Position of the first `needle` or octet below 0x21 (LWS or another control) in `hay`, or
/// its length.
#[inline]
pub(crate) fn find_byte_or_ctl(hay: &[u8], needle: u8) -> usize {
    if hay.len() < 8 {
        return hay
            .iter()
            .position(|&b| b == needle || b < 0x21)
            .unwrap_or(hay.len());
    }
    let pattern = ONES * u64::from(needle);
    find_words(hay, |w| eq_flags(w, pattern) | ctl_flags(w)).unwrap_or(hay.len())
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
    run(b, class::TOKEN)
}

/// Length of the quoted string at the start of `s` (which must start with `"`), quotes included.
/// `None` if it is not terminated.
#[inline]
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
#[inline]
pub fn parse_u32(s: &str) -> Option<u32> {
    parse_u32_bytes(s.as_bytes())
}

/// Always inlined for the same reason as [`find_byte`].
#[inline(always)]
pub fn parse_u32_bytes(s: &[u8]) -> Option<u32> {
    if s.is_empty() {
        return None;
    }
    // Ten digits fit u64 without overflow; longer runs go through the checked fold.
    if s.len() <= 10 {
        let mut n = 0u64;
        for &d in s {
            let v = d.wrapping_sub(b'0');
            if v > 9 {
                return None;
            }
            n = n * 10 + u64::from(v);
        }
        return u32::try_from(n).ok();
    }
    if !s.iter().all(u8::is_ascii_digit) {
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
