//! Header field names (RFC 3261 section 20, compact forms in section 7.3.3) and raw fields.

/// A header field name, recognised case-insensitively, compact forms included.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum HeaderName {
    Via,
    From,
    To,
    CallId,
    CSeq,
    Contact,
    MaxForwards,
    ContentLength,
    ContentType,
    Expires,
    Authorization,
    UserAgent,
    Route,
    RecordRoute,
    Allow,
    Supported,
    Require,
    ProxyRequire,
    Accept,
    ProxyAuthorization,
    WwwAuthenticate,
    ProxyAuthenticate,
    AuthenticationInfo,
    MinExpires,
    Unsupported,
    Server,
    Path,
    Event,
    Subject,
    ReferTo,
    ContentEncoding,
    ContentDisposition,
    AcceptEncoding,
    AcceptLanguage,
    RSeq,
    RAck,
    SessionExpires,
    MinSe,
    Reason,
    PAssertedIdentity,
    Date,
    Timestamp,
    Warning,
    RetryAfter,
    Organization,
    InReplyTo,
    ReplyTo,
    Priority,
    MimeVersion,
    AlertInfo,
    CallInfo,
    ErrorInfo,
    ContentLanguage,
    ReferredBy,
    AllowEvents,
    SubscriptionState,
    /// Any header this gateway does not interpret; the raw name is kept in [`Header`].
    Other,
}

/// Every known full name, lower case. `from_bytes` finds a name's candidate by hashing and
/// confirms it with one compare.
const KNOWN: [(&[u8], HeaderName); 56] = [
    (b"via", HeaderName::Via),
    (b"from", HeaderName::From),
    (b"to", HeaderName::To),
    (b"call-id", HeaderName::CallId),
    (b"cseq", HeaderName::CSeq),
    (b"contact", HeaderName::Contact),
    (b"max-forwards", HeaderName::MaxForwards),
    (b"content-length", HeaderName::ContentLength),
    (b"content-type", HeaderName::ContentType),
    (b"expires", HeaderName::Expires),
    (b"authorization", HeaderName::Authorization),
    (b"user-agent", HeaderName::UserAgent),
    (b"route", HeaderName::Route),
    (b"record-route", HeaderName::RecordRoute),
    (b"allow", HeaderName::Allow),
    (b"supported", HeaderName::Supported),
    (b"require", HeaderName::Require),
    (b"proxy-require", HeaderName::ProxyRequire),
    (b"accept", HeaderName::Accept),
    (b"proxy-authorization", HeaderName::ProxyAuthorization),
    (b"www-authenticate", HeaderName::WwwAuthenticate),
    (b"proxy-authenticate", HeaderName::ProxyAuthenticate),
    (b"authentication-info", HeaderName::AuthenticationInfo),
    (b"min-expires", HeaderName::MinExpires),
    (b"unsupported", HeaderName::Unsupported),
    (b"server", HeaderName::Server),
    (b"path", HeaderName::Path),
    (b"event", HeaderName::Event),
    (b"subject", HeaderName::Subject),
    (b"refer-to", HeaderName::ReferTo),
    (b"content-encoding", HeaderName::ContentEncoding),
    (b"content-disposition", HeaderName::ContentDisposition),
    (b"accept-encoding", HeaderName::AcceptEncoding),
    (b"accept-language", HeaderName::AcceptLanguage),
    (b"rseq", HeaderName::RSeq),
    (b"rack", HeaderName::RAck),
    (b"session-expires", HeaderName::SessionExpires),
    (b"min-se", HeaderName::MinSe),
    (b"reason", HeaderName::Reason),
    (b"p-asserted-identity", HeaderName::PAssertedIdentity),
    (b"date", HeaderName::Date),
    (b"timestamp", HeaderName::Timestamp),
    (b"warning", HeaderName::Warning),
    (b"retry-after", HeaderName::RetryAfter),
    (b"organization", HeaderName::Organization),
    (b"in-reply-to", HeaderName::InReplyTo),
    (b"reply-to", HeaderName::ReplyTo),
    (b"priority", HeaderName::Priority),
    (b"mime-version", HeaderName::MimeVersion),
    (b"alert-info", HeaderName::AlertInfo),
    (b"call-info", HeaderName::CallInfo),
    (b"error-info", HeaderName::ErrorInfo),
    (b"content-language", HeaderName::ContentLanguage),
    (b"referred-by", HeaderName::ReferredBy),
    (b"allow-events", HeaderName::AllowEvents),
    (b"subscription-state", HeaderName::SubscriptionState),
];

/// Every known variant, in declaration order.
#[cfg(test)]
pub(crate) const ALL: [HeaderName; 56] = {
    let mut all = [HeaderName::Other; 56];
    let mut i = 0;
    while i < KNOWN.len() {
        all[KNOWN[i].1 as usize] = KNOWN[i].1;
        i += 1;
    }
    all
};

/// Longest known header name; longer names are `Other` without further work.
const LONGEST: usize = 24;

/// A hash without collisions over the known names (parameters found by search; `INDEX` fails
/// to compile if a name is added that collides), so one compare decides a name.
#[inline]
const fn name_hash(len: usize, first: u8, last: u8, mid: u8) -> usize {
    (len + first as usize * 2 + last as usize * 38 + mid as usize) % 256
}

/// `KNOWN` position plus one for each hash value; 0 where no known name hashes.
static INDEX: [u8; 256] = {
    let mut index = [0u8; 256];
    let mut i = 0;
    while i < KNOWN.len() {
        let n = KNOWN[i].0;
        assert!(n.len() > 1 && n.len() <= LONGEST);
        let h = name_hash(n.len(), n[0], n[n.len() - 1], n[n.len() / 2]);
        assert!(index[h] == 0, "header name hash collision");
        index[h] = i as u8 + 1;
        i += 1;
    }
    index
};

/// A known name laid out for comparing a word at a time: `fold` has the case bit (0x20) where
/// `lit` has a letter, so `octet | fold == lit` is a case-insensitive compare for letters and an
/// exact one for everything else.
struct Entry {
    lit: [u8; LONGEST],
    fold: [u8; LONGEST],
    name: HeaderName,
}

static ENTRIES: [Entry; KNOWN.len()] = {
    let mut out = [const {
        Entry {
            lit: [0; LONGEST],
            fold: [0; LONGEST],
            name: HeaderName::Other,
        }
    }; KNOWN.len()];
    let mut i = 0;
    while i < KNOWN.len() {
        let (lit, name) = KNOWN[i];
        let mut j = 0;
        while j < lit.len() {
            assert!(lit[j].is_ascii_lowercase() || lit[j] == b'-');
            out[i].lit[j] = lit[j];
            out[i].fold[j] = if lit[j].is_ascii_lowercase() { 0x20 } else { 0 };
            j += 1;
        }
        out[i].name = name;
        i += 1;
    }
    out
};

macro_rules! folded_eq_at {
    ($name:ident, $int:ty) => {
        /// Whether `name[at..]` matches `e` over one word of this width.
        #[inline(always)]
        fn $name(name: &[u8], e: &Entry, at: usize) -> bool {
            const W: usize = std::mem::size_of::<$int>();
            let (Some(a), Some(f), Some(l)) = (
                name[at..].first_chunk::<W>(),
                e.fold[at..].first_chunk::<W>(),
                e.lit[at..].first_chunk::<W>(),
            ) else {
                return false;
            };
            <$int>::from_le_bytes(*a) | <$int>::from_le_bytes(*f) == <$int>::from_le_bytes(*l)
        }
    };
}
folded_eq_at!(eq_at_16, u16);
folded_eq_at!(eq_at_32, u32);
folded_eq_at!(eq_at_64, u64);

/// Case-insensitive compare of `name` (2 to `LONGEST` octets) with a known name of the same
/// length (the caller checks `lit[len]` is past its end: names are zero-padded and never hold
/// NUL): two overlapping words cover any length from one word to two.
#[inline(always)]
fn folded_eq(name: &[u8], e: &Entry) -> bool {
    let n = name.len();
    if n < LONGEST && e.lit[n] != 0 || e.lit[n - 1] == 0 {
        return false;
    }
    match n {
        0..=1 => false,
        2..=3 => eq_at_16(name, e, 0) && eq_at_16(name, e, n - 2),
        4..=7 => eq_at_32(name, e, 0) && eq_at_32(name, e, n - 4),
        8..=16 => eq_at_64(name, e, 0) && eq_at_64(name, e, n - 8),
        _ => eq_at_64(name, e, 0) && eq_at_64(name, e, 8) && eq_at_64(name, e, n - 8),
    }
}

impl HeaderName {
    /// Classifies a name. Called once per header line: a hash of the length and three octets
    /// picks the only known name it can be, and one case-insensitive compare confirms it.
    /// Always inlined: out of line, the call costs about as much again as the work.
    #[inline(always)]
    pub fn from_bytes(name: &[u8]) -> HeaderName {
        let n = name.len();
        if n == 1 {
            return Self::compact(name[0]);
        }
        if n == 0 || n > LONGEST {
            return HeaderName::Other;
        }
        // The case bit forced on lower-cases letters and leaves '-' alone, so a known name
        // hashes the same in any case; for other octets the hash is only a guess that the
        // compare below refutes.
        let low = |i: usize| name[i] | 0x20;
        let at = INDEX[name_hash(n, low(0), low(n - 1), low(n / 2))];
        match ENTRIES.get(usize::from(at).wrapping_sub(1)) {
            Some(e) if folded_eq(name, e) => e.name,
            _ => HeaderName::Other,
        }
    }

    /// Compact forms (RFC 3261 section 7.3.3 and the extensions' own).
    fn compact(c: u8) -> HeaderName {
        match c.to_ascii_lowercase() {
            b'v' => HeaderName::Via,
            b'f' => HeaderName::From,
            b't' => HeaderName::To,
            b'i' => HeaderName::CallId,
            b'm' => HeaderName::Contact,
            b'l' => HeaderName::ContentLength,
            b'c' => HeaderName::ContentType,
            b'k' => HeaderName::Supported,
            b'o' => HeaderName::Event,
            b's' => HeaderName::Subject,
            b'r' => HeaderName::ReferTo,
            b'e' => HeaderName::ContentEncoding,
            b'x' => HeaderName::SessionExpires,
            b'b' => HeaderName::ReferredBy,
            b'u' => HeaderName::AllowEvents,
            _ => HeaderName::Other,
        }
    }

    /// The canonical spelling used when this gateway writes the header.
    pub fn as_str(self) -> &'static str {
        match self {
            HeaderName::Via => "Via",
            HeaderName::From => "From",
            HeaderName::To => "To",
            HeaderName::CallId => "Call-ID",
            HeaderName::CSeq => "CSeq",
            HeaderName::Contact => "Contact",
            HeaderName::MaxForwards => "Max-Forwards",
            HeaderName::ContentLength => "Content-Length",
            HeaderName::ContentType => "Content-Type",
            HeaderName::Expires => "Expires",
            HeaderName::Authorization => "Authorization",
            HeaderName::UserAgent => "User-Agent",
            HeaderName::Route => "Route",
            HeaderName::RecordRoute => "Record-Route",
            HeaderName::Allow => "Allow",
            HeaderName::Supported => "Supported",
            HeaderName::Require => "Require",
            HeaderName::ProxyRequire => "Proxy-Require",
            HeaderName::Accept => "Accept",
            HeaderName::ProxyAuthorization => "Proxy-Authorization",
            HeaderName::WwwAuthenticate => "WWW-Authenticate",
            HeaderName::ProxyAuthenticate => "Proxy-Authenticate",
            HeaderName::AuthenticationInfo => "Authentication-Info",
            HeaderName::MinExpires => "Min-Expires",
            HeaderName::Unsupported => "Unsupported",
            HeaderName::Server => "Server",
            HeaderName::Path => "Path",
            HeaderName::Event => "Event",
            HeaderName::Subject => "Subject",
            HeaderName::ReferTo => "Refer-To",
            HeaderName::ContentEncoding => "Content-Encoding",
            HeaderName::ContentDisposition => "Content-Disposition",
            HeaderName::AcceptEncoding => "Accept-Encoding",
            HeaderName::AcceptLanguage => "Accept-Language",
            HeaderName::RSeq => "RSeq",
            HeaderName::RAck => "RAck",
            HeaderName::SessionExpires => "Session-Expires",
            HeaderName::MinSe => "Min-SE",
            HeaderName::Reason => "Reason",
            HeaderName::PAssertedIdentity => "P-Asserted-Identity",
            HeaderName::Date => "Date",
            HeaderName::Timestamp => "Timestamp",
            HeaderName::Warning => "Warning",
            HeaderName::RetryAfter => "Retry-After",
            HeaderName::Organization => "Organization",
            HeaderName::InReplyTo => "In-Reply-To",
            HeaderName::ReplyTo => "Reply-To",
            HeaderName::Priority => "Priority",
            HeaderName::MimeVersion => "MIME-Version",
            HeaderName::AlertInfo => "Alert-Info",
            HeaderName::CallInfo => "Call-Info",
            HeaderName::ErrorInfo => "Error-Info",
            HeaderName::ContentLanguage => "Content-Language",
            HeaderName::ReferredBy => "Referred-By",
            HeaderName::AllowEvents => "Allow-Events",
            HeaderName::SubscriptionState => "Subscription-State",
            HeaderName::Other => "",
        }
    }
}

impl HeaderName {
    /// Headers that may occur at most once (RFC 3261 section 7.3.1: not a comma list).
    pub fn is_single(self) -> bool {
        matches!(
            self,
            HeaderName::From
                | HeaderName::To
                | HeaderName::CallId
                | HeaderName::CSeq
                | HeaderName::MaxForwards
                | HeaderName::ContentLength
                | HeaderName::ContentType
                | HeaderName::Expires
                | HeaderName::MinExpires
                | HeaderName::RSeq
                | HeaderName::RAck
                | HeaderName::SessionExpires
                | HeaderName::MinSe
        )
    }

    /// Headers whose value is a comma-separated list that may also be split over several lines.
    pub fn is_list(self) -> bool {
        matches!(
            self,
            HeaderName::Via
                | HeaderName::Contact
                | HeaderName::Route
                | HeaderName::RecordRoute
                | HeaderName::Allow
                | HeaderName::Supported
                | HeaderName::Require
                | HeaderName::ProxyRequire
                | HeaderName::Unsupported
                | HeaderName::Accept
                | HeaderName::AcceptEncoding
                | HeaderName::AcceptLanguage
                | HeaderName::Path
                | HeaderName::ContentEncoding
                | HeaderName::ContentLanguage
                | HeaderName::AllowEvents
                | HeaderName::PAssertedIdentity
                | HeaderName::Reason
                | HeaderName::Warning
        )
    }
}

/// One header field as received: both slices borrow from the message bytes. A folded value keeps
/// its inner CRLF-whitespace, which every value grammar treats as LWS.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header<'a> {
    pub name: HeaderName,
    pub raw_name: &'a str,
    pub value: &'a str,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_case_insensitive_with_compact_forms() {
        assert_eq!(
            HeaderName::from_bytes(b"MaX-fOrWaRdS"),
            HeaderName::MaxForwards
        );
        assert_eq!(HeaderName::from_bytes(b"v"), HeaderName::Via);
        assert_eq!(HeaderName::from_bytes(b"L"), HeaderName::ContentLength);
        assert_eq!(HeaderName::from_bytes(b"i"), HeaderName::CallId);
        assert_eq!(HeaderName::from_bytes(b"C%6Fntact"), HeaderName::Other);
        assert_eq!(HeaderName::CallId.as_str(), "Call-ID");
    }

    #[test]
    fn every_known_name_round_trips_in_any_case() {
        for (i, name) in ALL.iter().copied().enumerate() {
            assert_eq!(name as usize, i);
            let canon = name.as_str();
            assert_eq!(HeaderName::from_bytes(canon.as_bytes()), name);
            assert_eq!(
                HeaderName::from_bytes(canon.to_ascii_uppercase().as_bytes()),
                name
            );
            assert_eq!(
                HeaderName::from_bytes(format!("{canon}x").as_bytes()),
                HeaderName::Other
            );
        }
        assert_eq!(HeaderName::from_bytes(b""), HeaderName::Other);
        assert_eq!(
            HeaderName::from_bytes(b"Content\rLength"),
            HeaderName::Other
        );
        assert_eq!(HeaderName::from_bytes(b"X-Unknown"), HeaderName::Other);
        assert_eq!(
            HeaderName::from_bytes(b"averyveryverylongheadername-beyond"),
            HeaderName::Other
        );
    }

    #[test]
    fn any_other_octet_breaks_the_match() {
        for name in ALL {
            let canon = name.as_str().as_bytes();
            for i in 0..canon.len() {
                for b in 0..=255u8 {
                    let mut v = canon.to_vec();
                    v[i] = b;
                    let same = b.eq_ignore_ascii_case(&canon[i]);
                    assert_eq!(HeaderName::from_bytes(&v) == name, same, "{v:?}");
                }
            }
        }
    }
}
