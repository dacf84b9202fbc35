//! RTP and RTCP (RFC 3550): the fixed header read and rewritten in place, and reception
//! statistics.

pub mod header;
pub mod rtcp;
pub mod stats;
