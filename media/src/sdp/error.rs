//! What is wrong with an SDP body; each variant names the line, so a 488 can say why.

use std::fmt;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SdpError {
    /// Not `v=0` first.
    Version,
    /// A line that is not `x=value` with a lower-case type letter.
    Line {
        line: usize,
    },
    /// A line whose value does not fit its type's grammar.
    Field {
        line: usize,
        kind: char,
        why: &'static str,
    },
    /// A required line is absent.
    Missing(char),
    /// An `m=` line has no connection address, neither its own nor the session's.
    NoConnection {
        media: usize,
    },
    TooLarge,
}

impl fmt::Display for SdpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SdpError::Version => f.write_str("SDP must start with v=0"),
            SdpError::Line { line } => write!(f, "SDP line {line} is not type=value"),
            SdpError::Field { line, kind, why } => {
                write!(f, "SDP line {line} ({kind}=): {why}")
            }
            SdpError::Missing(k) => write!(f, "SDP has no {k}= line"),
            SdpError::NoConnection { media } => {
                write!(
                    f,
                    "SDP media {media} has no c= line (nor a session-level one)"
                )
            }
            SdpError::TooLarge => f.write_str("SDP body too large"),
        }
    }
}

impl std::error::Error for SdpError {}
