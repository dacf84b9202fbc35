//! Sans-IO media core of mgw: SDP offer/answer (RFC 4566/3264), RTP/RTCP (RFC 3550) header
//! handling for the relay, codecs and transcoding, RFC 4733 DTMF.
//!
//! Like `mgw-core`, nothing here touches a socket or a clock: packets come in as byte slices
//! with an explicit `now`, and what to send goes out as actions. The engine's media workers own
//! the sockets.

pub mod bridge;
pub mod codec;
pub mod dtmf;
pub mod ng;
pub mod relay;
pub mod rtp;
pub mod sdp;
pub mod session;
pub mod transcode;
