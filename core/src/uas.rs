//! The checks a UAS makes before it acts on a request (RFC 3261 section 8.2), in the RFC's order:
//! method inspection (501/405), Request-URI scheme (416), loop guard (483), Require (420),
//! content (415) and what the client can accept (406).

use crate::sip::{lex, HeaderName, Message, Method, Scheme};

/// Everything this gateway implements; `Allow` lists exactly these.
pub const ALLOWED: &[Method<'static>] = &[
    Method::Invite,
    Method::Ack,
    Method::Cancel,
    Method::Bye,
    Method::Options,
    Method::Register,
    Method::Prack,
    Method::Update,
    Method::Info,
    Method::Message,
    Method::Notify,
    Method::Subscribe,
    Method::Refer,
];

/// Methods known to SIP that this gateway does not serve: 405 with Allow, not 501.
const KNOWN_NOT_ALLOWED: &[Method<'static>] = &[Method::Publish];

/// Body types the gateway can process in INVITE, UPDATE and PRACK.
pub const ACCEPT: &str = "application/sdp, multipart/mixed";

/// Option tags of extensions the gateway implements (RFC 3261 section 19.2).
pub const SUPPORTED: &[&str] = &["path", "100rel", "timer"];

/// `Supported` as sent; a test keeps it equal to [`SUPPORTED`].
pub const SUPPORTED_HEADER: &str = "path, 100rel, timer";

/// `Allow` as sent; a test keeps it equal to [`ALLOWED`].
pub const ALLOW: &str =
    "INVITE, ACK, CANCEL, BYE, OPTIONS, REGISTER, PRACK, UPDATE, INFO, MESSAGE, NOTIFY, SUBSCRIBE, REFER";

/// Why a request is refused before any service sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    NotImplemented,
    MethodNotAllowed,
    UnsupportedScheme,
    TooManyHops,
    BadExtension(String),
    UnsupportedMediaType,
    NotAcceptable,
}

impl Refusal {
    pub fn status(&self) -> (u16, &'static str) {
        match self {
            Refusal::NotImplemented => (501, "Not Implemented"),
            Refusal::MethodNotAllowed => (405, "Method Not Allowed"),
            Refusal::UnsupportedScheme => (416, "Unsupported URI Scheme"),
            Refusal::TooManyHops => (483, "Too Many Hops"),
            Refusal::BadExtension(_) => (420, "Bad Extension"),
            Refusal::UnsupportedMediaType => (415, "Unsupported Media Type"),
            Refusal::NotAcceptable => (406, "Not Acceptable"),
        }
    }

    /// Headers the RFC requires with this status.
    pub fn extra_headers(&self) -> Vec<(&'static str, String)> {
        match self {
            Refusal::MethodNotAllowed | Refusal::NotImplemented => {
                vec![("Allow", ALLOW.to_string())]
            }
            Refusal::BadExtension(tags) => vec![("Unsupported", tags.clone())],
            Refusal::UnsupportedMediaType => vec![
                ("Accept", ACCEPT.to_string()),
                ("Accept-Encoding", "identity".to_string()),
            ],
            _ => vec![],
        }
    }
}

/// Screens a validated request. ACK is never refused: it gets no response (section 17).
pub fn screen(msg: &Message<'_>) -> Result<(), Refusal> {
    let Some(method) = msg.method() else {
        return Ok(());
    };
    if method == Method::Ack {
        return Ok(());
    }
    if !ALLOWED.contains(&method) {
        return Err(if KNOWN_NOT_ALLOWED.contains(&method) {
            Refusal::MethodNotAllowed
        } else {
            Refusal::NotImplemented
        });
    }
    let served = msg
        .request_uri()
        .is_some_and(|u| matches!(u.scheme, Scheme::Sip | Scheme::Sips | Scheme::Tel));
    if !served {
        return Err(Refusal::UnsupportedScheme);
    }
    if msg.max_forwards() == Some(0) {
        return Err(Refusal::TooManyHops);
    }
    // CANCEL must not carry Require (section 9.1) and is never refused for it.
    if method != Method::Cancel {
        let unsupported: Vec<&str> = msg
            .list(HeaderName::Require)
            .filter(|t| !t.is_empty() && !SUPPORTED.iter().any(|s| s.eq_ignore_ascii_case(t)))
            .collect();
        if !unsupported.is_empty() {
            return Err(Refusal::BadExtension(unsupported.join(", ")));
        }
    }
    if matches!(method, Method::Invite | Method::Update | Method::Prack) {
        if !msg.body.is_empty() {
            let ct = msg.header(HeaderName::ContentType).unwrap_or("");
            let media = lex::trim(ct.split(';').next().unwrap_or(""));
            let ok_type = ["application/sdp", "multipart/mixed"]
                .iter()
                .any(|t| media.eq_ignore_ascii_case(t));
            let ok_encoding = msg
                .list(HeaderName::ContentEncoding)
                .all(|e| e.eq_ignore_ascii_case("identity"));
            if !ok_type || !ok_encoding {
                return Err(Refusal::UnsupportedMediaType);
            }
        }
        // The answer to an INVITE carries SDP: a client that accepts no SDP cannot take it.
        let mut accepts = msg.list(HeaderName::Accept).peekable();
        if accepts.peek().is_some()
            && !accepts.any(|a| {
                let media = lex::trim(a.split(';').next().unwrap_or(""));
                ["application/sdp", "application/*", "*/*"]
                    .iter()
                    .any(|t| media.eq_ignore_ascii_case(t))
            })
        {
            return Err(Refusal::NotAcceptable);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(extra: &str, method: &str, uri: &str) -> Vec<u8> {
        format!(
            "{method} {uri} SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:a@h>;tag=1\r\n\
             To: <sip:b@h>\r\nCall-ID: c\r\nCSeq: 1 {method}\r\n{extra}Content-Length: 0\r\n\r\n"
        )
        .into_bytes()
    }

    fn run(extra: &str, method: &str, uri: &str) -> Result<(), Refusal> {
        let b = req(extra, method, uri);
        let m = Message::parse(&b).unwrap();
        screen(&m)
    }

    #[test]
    fn header_constants_match_the_lists() {
        let allow: Vec<&str> = ALLOWED.iter().map(|m| m.as_str()).collect();
        assert_eq!(ALLOW, allow.join(", "));
        assert_eq!(SUPPORTED_HEADER, SUPPORTED.join(", "));
    }

    #[test]
    fn order_of_checks() {
        assert_eq!(run("", "FOO", "sip:x"), Err(Refusal::NotImplemented));
        assert_eq!(run("", "PUBLISH", "sip:x"), Err(Refusal::MethodNotAllowed));
        assert_eq!(
            run("", "OPTIONS", "http:x"),
            Err(Refusal::UnsupportedScheme)
        );
        assert_eq!(
            run("Max-Forwards: 0\r\n", "OPTIONS", "sip:x"),
            Err(Refusal::TooManyHops)
        );
        assert_eq!(
            run("Require: foo, path\r\n", "OPTIONS", "sip:x"),
            Err(Refusal::BadExtension("foo".into()))
        );
        assert_eq!(
            run("Accept: text/plain\r\n", "INVITE", "sip:x"),
            Err(Refusal::NotAcceptable)
        );
        assert_eq!(
            run("Accept: application/sdp\r\n", "INVITE", "tel:+123"),
            Ok(())
        );
        assert_eq!(run("", "ACK", "foo:x"), Ok(()));
    }
}
