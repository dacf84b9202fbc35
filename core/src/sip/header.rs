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

/// Longest known header name; longer names are `Other` without further work.
const LONGEST: usize = 24;

/// A hash without collisions over the known names (parameters found by search), so one
/// fixed-size compare decides a name.
#[inline]
fn name_hash(len: usize, first: u8, last: u8, mid: u8) -> usize {
    (len + usize::from(first) * 2 + usize::from(last) * 38 + usize::from(mid)) % 256
}

#[rustfmt::skip]
static NAME_TABLE: [Option<([u8; LONGEST], HeaderName)>; 256] = [
    None,
    None,
    None,
    None,
    Some((pad(b"timestamp"), HeaderName::Timestamp)),
    None,
    None,
    None,
    Some((pad(b"retry-after"), HeaderName::RetryAfter)),
    None,
    None,
    Some((pad(b"min-se"), HeaderName::MinSe)),
    None,
    None,
    None,
    None,
    None,
    Some((pad(b"call-id"), HeaderName::CallId)),
    None,
    Some((pad(b"rseq"), HeaderName::RSeq)),
    None,
    None,
    None,
    None,
    None,
    None,
    None,
    Some((pad(b"record-route"), HeaderName::RecordRoute)),
    None,
    None,
    None,
    None,
    None,
    None,
    None,
    None,
    None,
    None,
    None,
    None,
    None,
    None,
    None,
    None,
    None,
    Some((pad(b"rack"), HeaderName::RAck)),
    None,
    None,
    None,
    None,
    None,
    None,
    Some((pad(b"session-expires"), HeaderName::SessionExpires)),
    None,
    Some((pad(b"supported"), HeaderName::Supported)),
    None,
    None,
    None,
    None,
    Some((pad(b"accept-language"), HeaderName::AcceptLanguage)),
    None,
    Some((pad(b"unsupported"), HeaderName::Unsupported)),
    Some((pad(b"date"), HeaderName::Date)),
    None,
    Some((pad(b"content-language"), HeaderName::ContentLanguage)),
    None,
    None,
    None,
    Some((pad(b"content-type"), HeaderName::ContentType)),
    Some((pad(b"allow-events"), HeaderName::AllowEvents)),
    None,
    None,
    None,
    None,
    None,
    None,
    Some((pad(b"expires"), HeaderName::Expires)),
    Some((pad(b"p-asserted-identity"), HeaderName::PAssertedIdentity)),
    Some((pad(b"server"), HeaderName::Server)),
    None,
    Some((pad(b"priority"), HeaderName::Priority)),
    None,
    None,
    None,
    None,
    None,
    None,
    Some((pad(b"referred-by"), HeaderName::ReferredBy)),
    Some((pad(b"proxy-authenticate"), HeaderName::ProxyAuthenticate)),
    None,
    None,
    None,
    Some((pad(b"route"), HeaderName::Route)),
    Some((pad(b"proxy-require"), HeaderName::ProxyRequire)),
    Some((pad(b"require"), HeaderName::Require)),
    Some((pad(b"subscription-state"), HeaderName::SubscriptionState)),
    None,
    Some((pad(b"www-authenticate"), HeaderName::WwwAuthenticate)),
    None,
    None,
    None,
    Some((pad(b"accept"), HeaderName::Accept)),
    None,
    None,
    None,
    None,
    Some((pad(b"max-forwards"), HeaderName::MaxForwards)),
    None,
    Some((pad(b"event"), HeaderName::Event)),
    Some((pad(b"from"), HeaderName::From)),
    None,
    Some((pad(b"min-expires"), HeaderName::MinExpires)),
    None,
    Some((pad(b"content-length"), HeaderName::ContentLength)),
    None,
    Some((pad(b"alert-info"), HeaderName::AlertInfo)),
    None,
    None,
    Some((pad(b"call-info"), HeaderName::CallInfo)),
    None,
    None,
    Some((pad(b"contact"), HeaderName::Contact)),
    None,
    Some((pad(b"error-info"), HeaderName::ErrorInfo)),
    None,
    None,
    None,
    None,
    Some((pad(b"accept-encoding"), HeaderName::AcceptEncoding)),
    None,
    None,
    None,
    None,
    Some((pad(b"content-encoding"), HeaderName::ContentEncoding)),
    None,
    None,
    None,
    None,
    None,
    None,
    Some((pad(b"authorization"), HeaderName::Authorization)),
    Some((pad(b"user-agent"), HeaderName::UserAgent)),
    None,
    Some((pad(b"subject"), HeaderName::Subject)),
    None,
    None,
    None,
    None,
    None,
    None,
    Some((pad(b"content-disposition"), HeaderName::ContentDisposition)),
    None,
    None,
    None,
    None,
    None,
    None,
    None,
    None,
    Some((pad(b"mime-version"), HeaderName::MimeVersion)),
    None,
    None,
    None,
    None,
    None,
    None,
    None,
    None,
    None,
    None,
    None,
    None,
    None,
    Some((pad(b"warning"), HeaderName::Warning)),
    None,
    Some((pad(b"proxy-authorization"), HeaderName::ProxyAuthorization)),
    Some((pad(b"authentication-info"), HeaderName::AuthenticationInfo)),
    Some((pad(b"reason"), HeaderName::Reason)),
    None,
    None,
    None,
    None,
    None,
    None,
    Some((pad(b"organization"), HeaderName::Organization)),
    None,
    None,
    None,
    None,
    None,
    Some((pad(b"via"), HeaderName::Via)),
    None,
    None,
    None,
    None,
    None,
    None,
    None,
    None,
    Some((pad(b"in-reply-to"), HeaderName::InReplyTo)),
    Some((pad(b"path"), HeaderName::Path)),
    None,
    None,
    None,
    None,
    None,
    None,
    None,
    None,
    None,
    None,
    Some((pad(b"to"), HeaderName::To)),
    None,
    None,
    None,
    None,
    Some((pad(b"refer-to"), HeaderName::ReferTo)),
    None,
    None,
    None,
    None,
    Some((pad(b"allow"), HeaderName::Allow)),
    None,
    Some((pad(b"reply-to"), HeaderName::ReplyTo)),
    None,
    None,
    None,
    None,
    None,
    None,
    None,
    None,
    None,
    None,
    None,
    None,
    None,
    None,
    None,
    None,
    None,
    None,
    None,
    None,
    None,
    Some((pad(b"cseq"), HeaderName::CSeq)),
    None,
    None,
    None,
    None,
    None,
    None,
    None,
    None,
    None,
    None,
];

const fn pad(lit: &[u8]) -> [u8; LONGEST] {
    let mut out = [0u8; LONGEST];
    let mut i = 0;
    while i < lit.len() {
        out[i] = lit[i];
        i += 1;
    }
    out
}

impl HeaderName {
    /// Classifies a name. Called once per header line, so it lower-cases into a stack buffer
    /// and lets the compiler build a decision tree over the literals (length first).
    pub fn from_bytes(name: &[u8]) -> HeaderName {
        if name.len() == 1 {
            return match name[0].to_ascii_lowercase() {
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
            };
        }
        if name.len() > LONGEST {
            return HeaderName::Other;
        }
        // Zero-padded, so comparing whole arrays compares lengths too (tokens never hold NUL),
        // and a fixed-size compare inlines instead of calling memcmp.
        let mut low = [0u8; LONGEST];
        for (d, s) in low.iter_mut().zip(name) {
            *d = s.to_ascii_lowercase();
        }
        let n = name.len();
        match &NAME_TABLE[name_hash(n, low[0], low[n - 1], low[n / 2])] {
            Some((lit, known)) if *lit == low => *known,
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
        for i in 0..HeaderName::Other as u8 {
            let name = NAME_TABLE
                .iter()
                .flatten()
                .map(|(_, n)| *n)
                .find(|n| *n as u8 == i)
                .expect("every variant is in the table");
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
        assert_eq!(HeaderName::from_bytes(b"X-Unknown"), HeaderName::Other);
        assert_eq!(
            HeaderName::from_bytes(b"averyveryverylongheadername-beyond"),
            HeaderName::Other
        );
    }
}
