//! The SIP message layer (RFC 3261 sections 7, 8.2.6, 18, 19, 20, 25).
//!
//! Parsing borrows from the received bytes and allocates nothing: [`Message::parse`] splits the
//! start line, header fields and body; the typed accessors ([`Via`], [`NameAddr`], [`Uri`],
//! [`CSeq`]) interpret a field when asked; [`validate`] checks a whole message once.

pub mod builder;
pub mod cseq;
pub mod error;
pub mod framing;
pub mod header;
pub mod lex;
pub mod message;
pub mod method;
pub mod name_addr;
pub mod params;
#[cfg(test)]
mod reference;
pub mod uri;
pub mod validate;
pub mod via;

pub use builder::{ReplyContext, RequestBuilder, ResponseBuilder};
pub use cseq::CSeq;
pub use error::ParseError;
pub use header::{Header, HeaderName};
pub use message::{Message, RequestLine, StartLine, StatusLine};
pub use method::Method;
pub use name_addr::NameAddr;
pub use params::{Param, Params};
pub use uri::{Host, Scheme, Uri};
pub use via::Via;

/// Largest message accepted on any transport; larger ones get 513 (stream) or are dropped (UDP
/// datagrams are bounded by the receive buffer of this size).
pub const MAX_MESSAGE_SIZE: usize = 65_536;
