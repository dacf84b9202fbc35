//! Message framing on stream transports (RFC 3261 section 18.3).
//!
//! On TCP the Content-Length header is the only way to find where a message ends, so the engine
//! calls [`frame`] on its receive buffer until it returns `Incomplete`.

use super::MAX_MESSAGE_SIZE;

/// The result of looking for one message at the start of a stream buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frame {
    /// Leading CRLFs: an RFC 5626 keep-alive. `len` octets should be consumed.
    /// A double CRLF ("ping") should be answered with a single CRLF ("pong").
    KeepAlive { len: usize, ping: bool },
    /// A whole message occupies the first `len` octets.
    Message { len: usize },
    /// More octets are needed.
    Incomplete,
}

/// Why a stream cannot be framed; the connection must be closed after answering (if possible).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameError {
    /// The header section or the announced message exceeds [`MAX_MESSAGE_SIZE`]: answer 513.
    TooLarge,
    /// No Content-Length on a stream transport: answer 400.
    MissingContentLength,
    /// Content-Length is not a number: answer 400.
    BadContentLength,
}

impl FrameError {
    pub fn status(self) -> u16 {
        match self {
            FrameError::TooLarge => 513,
            _ => 400,
        }
    }
    pub fn reason(self) -> &'static str {
        match self {
            FrameError::TooLarge => "Message Too Large",
            FrameError::MissingContentLength => "Missing Content-Length on stream transport",
            FrameError::BadContentLength => "Malformed Content-Length",
        }
    }
}

/// Looks for the first message (or keep-alive) in `buf`.
pub fn frame(buf: &[u8]) -> Result<Frame, FrameError> {
    let crlfs = buf
        .iter()
        .take_while(|&&b| b == b'\r' || b == b'\n')
        .count();
    if crlfs > 0 {
        if crlfs == buf.len() && crlfs < 4 && buf.ends_with(b"\r") {
            // A CRLF split across reads: wait for the rest before deciding ping or pong.
            return Ok(Frame::Incomplete);
        }
        return Ok(Frame::KeepAlive {
            len: crlfs,
            ping: buf[..crlfs].windows(4).any(|w| w == b"\r\n\r\n"),
        });
    }
    let Some(head_end) = memchr::memmem::find(buf, b"\r\n\r\n") else {
        return if buf.len() > MAX_MESSAGE_SIZE {
            Err(FrameError::TooLarge)
        } else {
            Ok(Frame::Incomplete)
        };
    };
    let head = &buf[..head_end + 2];
    let body_len = content_length(head)?.ok_or(FrameError::MissingContentLength)?;
    let len = head_end + 4 + body_len;
    if len > MAX_MESSAGE_SIZE {
        return Err(FrameError::TooLarge);
    }
    if buf.len() < len {
        return Ok(Frame::Incomplete);
    }
    Ok(Frame::Message { len })
}

/// Scans a header section (ending in CRLF) for Content-Length / `l`, without a full parse.
fn content_length(head: &[u8]) -> Result<Option<usize>, FrameError> {
    let mut found = None;
    for line in head.split(|&b| b == b'\n').skip(1) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let name = line[..colon].trim_ascii();
        if name.eq_ignore_ascii_case(b"content-length") || name.eq_ignore_ascii_case(b"l") {
            let v = line[colon + 1..].trim_ascii();
            if v.is_empty() || v.len() > 9 || !v.iter().all(u8::is_ascii_digit) {
                return Err(FrameError::BadContentLength);
            }
            let n = v
                .iter()
                .fold(0usize, |acc, d| acc * 10 + usize::from(d - b'0'));
            if found.is_some_and(|f| f != n) {
                return Err(FrameError::BadContentLength);
            }
            found = Some(n);
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_two_pipelined_messages() {
        let m = b"OPTIONS sip:a SIP/2.0\r\nl: 3\r\n\r\nabcOPTIONS sip:b SIP/2.0\r\nContent-Length: 0\r\n\r\n";
        assert_eq!(frame(m), Ok(Frame::Message { len: 34 }));
        assert_eq!(frame(&m[34..]), Ok(Frame::Message { len: m.len() - 34 }));
    }

    #[test]
    fn waits_for_body_and_headers() {
        assert_eq!(
            frame(b"OPTIONS sip:a SIP/2.0\r\nl: 3\r\n\r\nab"),
            Ok(Frame::Incomplete)
        );
        assert_eq!(
            frame(b"OPTIONS sip:a SIP/2.0\r\nl: 3\r\n"),
            Ok(Frame::Incomplete)
        );
    }

    #[test]
    fn keepalives() {
        assert_eq!(
            frame(b"\r\n\r\n"),
            Ok(Frame::KeepAlive { len: 4, ping: true })
        );
        assert_eq!(
            frame(b"\r\n"),
            Ok(Frame::KeepAlive {
                len: 2,
                ping: false
            })
        );
        assert_eq!(frame(b"\r\n\r"), Ok(Frame::Incomplete));
    }

    #[test]
    fn rejects_missing_or_bad_length() {
        assert_eq!(
            frame(b"OPTIONS sip:a SIP/2.0\r\nVia: x\r\n\r\n"),
            Err(FrameError::MissingContentLength)
        );
        assert_eq!(
            frame(b"OPTIONS sip:a SIP/2.0\r\nl: -3\r\n\r\n"),
            Err(FrameError::BadContentLength)
        );
        assert_eq!(
            frame(b"OPTIONS sip:a SIP/2.0\r\nl: 999999\r\n\r\n"),
            Err(FrameError::TooLarge)
        );
    }
}
