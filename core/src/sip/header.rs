//! Header field names (RFC 3261 section 20, compact forms in section 7.3.3) and raw fields.

macro_rules! header_names {
    ($( $variant:ident = $canon:literal $(, $compact:literal)? ; )*) => {
        /// A header field name, recognised case-insensitively, compact forms included.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum HeaderName {
            $( $variant, )*
            /// Any header this gateway does not interpret; the raw name is kept in [`Header`].
            Other,
        }

        impl HeaderName {
            pub fn from_bytes(name: &[u8]) -> HeaderName {
                $(
                    if name.eq_ignore_ascii_case($canon.as_bytes()) {
                        return HeaderName::$variant;
                    }
                    $( if name.len() == 1 && name[0].eq_ignore_ascii_case(&$compact) {
                        return HeaderName::$variant;
                    } )?
                )*
                HeaderName::Other
            }

            /// The canonical spelling used when this gateway writes the header.
            pub fn as_str(self) -> &'static str {
                match self {
                    $( HeaderName::$variant => $canon, )*
                    HeaderName::Other => "",
                }
            }
        }
    };
}

// Ordered by how often a PBX sees them, because recognition tries them in this order.
header_names! {
    Via = "Via", b'v';
    From = "From", b'f';
    To = "To", b't';
    CallId = "Call-ID", b'i';
    CSeq = "CSeq";
    Contact = "Contact", b'm';
    MaxForwards = "Max-Forwards";
    ContentLength = "Content-Length", b'l';
    ContentType = "Content-Type", b'c';
    Expires = "Expires";
    Authorization = "Authorization";
    UserAgent = "User-Agent";
    Route = "Route";
    RecordRoute = "Record-Route";
    Allow = "Allow";
    Supported = "Supported", b'k';
    Require = "Require";
    ProxyRequire = "Proxy-Require";
    Accept = "Accept";
    ProxyAuthorization = "Proxy-Authorization";
    WwwAuthenticate = "WWW-Authenticate";
    ProxyAuthenticate = "Proxy-Authenticate";
    AuthenticationInfo = "Authentication-Info";
    MinExpires = "Min-Expires";
    Unsupported = "Unsupported";
    Server = "Server";
    Path = "Path";
    Event = "Event", b'o';
    Subject = "Subject", b's';
    ReferTo = "Refer-To", b'r';
    ContentEncoding = "Content-Encoding", b'e';
    ContentDisposition = "Content-Disposition";
    AcceptEncoding = "Accept-Encoding";
    AcceptLanguage = "Accept-Language";
    RSeq = "RSeq";
    RAck = "RAck";
    SessionExpires = "Session-Expires", b'x';
    MinSe = "Min-SE";
    Reason = "Reason";
    PAssertedIdentity = "P-Asserted-Identity";
    Date = "Date";
    Timestamp = "Timestamp";
    Warning = "Warning";
    RetryAfter = "Retry-After";
    Organization = "Organization";
    InReplyTo = "In-Reply-To";
    ReplyTo = "Reply-To";
    Priority = "Priority";
    MimeVersion = "MIME-Version";
    AlertInfo = "Alert-Info";
    CallInfo = "Call-Info";
    ErrorInfo = "Error-Info";
    ContentLanguage = "Content-Language";
    ReferredBy = "Referred-By", b'b';
    AllowEvents = "Allow-Events", b'u';
    SubscriptionState = "Subscription-State";
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
#[derive(Clone, Copy, Debug)]
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
}
