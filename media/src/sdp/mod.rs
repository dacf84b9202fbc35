//! SDP (RFC 4566) parsing and building, and the offer/answer model (RFC 3264) with codec
//! negotiation that prefers a codec both legs share, so audio is relayed untouched whenever it
//! can be.

mod description;
mod error;
mod negotiate;

pub use description::{Connection, Direction, Media, Origin, RtpMap, SessionDescription};
pub use error::SdpError;
pub use negotiate::{
    answer, needs_transcoding, offer_onward, Capabilities, Codec, CodecName, Negotiated,
};
