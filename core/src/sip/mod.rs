//! The SIP message layer (RFC 3261 sections 7, 8.2.6, 18, 19, 20, 25).

pub mod framing;

/// Largest message accepted on any transport; larger ones get 513 (stream) or are dropped (UDP
/// datagrams are bounded by the receive buffer of this size).
pub const MAX_MESSAGE_SIZE: usize = 65_536;
