//! What can be wrong with a received message, and how the gateway answers it.

use std::fmt;

/// A fault in a received message. Each names the rule broken; [`ParseError::status`] is the
/// response a request with this fault gets (responses with faults are dropped).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParseError {
    Empty,
    TooLarge,
    /// The header section is not UTF-8 (RFC 3261 TEXT-UTF8).
    NotUtf8,
    BadRequestLine,
    BadStatusLine,
    /// A well-formed SIP-Version other than 2.0.
    UnsupportedVersion,
    /// A header line without a colon, or with a non-token name.
    BadHeaderLine,
    TooManyHeaders,
    BadContentLength,
    /// Content-Length announces more octets than the datagram holds.
    Truncated,
    /// A header field whose value does not match its grammar.
    BadHeader(super::HeaderName),
    MissingHeader(super::HeaderName),
    DuplicateHeader(super::HeaderName),
    BadRequestUri,
    /// The Request-URI carries `?headers`, which RFC 3261 section 19.1.5 forbids there.
    HeadersInRequestUri,
    CSeqMethodMismatch,
}

impl ParseError {
    pub fn status(self) -> u16 {
        match self {
            ParseError::TooLarge => 513,
            ParseError::UnsupportedVersion => 505,
            _ => 400,
        }
    }

    /// A reason phrase naming the fault, sent in the status line.
    pub fn reason(self) -> String {
        match self {
            ParseError::Empty => "Empty message".into(),
            ParseError::TooLarge => "Message Too Large".into(),
            ParseError::NotUtf8 => "Header section is not UTF-8".into(),
            ParseError::BadRequestLine => "Malformed Request-Line".into(),
            ParseError::BadStatusLine => "Malformed Status-Line".into(),
            ParseError::UnsupportedVersion => "Version Not Supported".into(),
            ParseError::BadHeaderLine => "Malformed header line".into(),
            ParseError::TooManyHeaders => "Too many header fields".into(),
            ParseError::BadContentLength => "Malformed Content-Length".into(),
            ParseError::Truncated => "Content-Length exceeds message".into(),
            ParseError::BadHeader(h) => format!("Malformed {} header", h.as_str()),
            ParseError::MissingHeader(h) => format!("Missing {} header", h.as_str()),
            ParseError::DuplicateHeader(h) => format!("Duplicate {} header", h.as_str()),
            ParseError::BadRequestUri => "Malformed Request-URI".into(),
            ParseError::HeadersInRequestUri => "Headers not allowed in Request-URI".into(),
            ParseError::CSeqMethodMismatch => "CSeq method does not match request".into(),
        }
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.status(), self.reason())
    }
}

impl std::error::Error for ParseError {}
