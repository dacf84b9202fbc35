//! The interworking function: a driver's calls as SIP dialogs and RTP streams towards the call
//! switch, the way a media gateway card's line side meets its softswitch.

pub mod gateway;
pub mod media;
