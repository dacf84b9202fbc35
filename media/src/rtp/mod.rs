//! RTP (RFC 3550): the fixed header read and rewritten in place.

pub mod header;
