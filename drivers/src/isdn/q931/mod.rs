//! Q.931 (DSS1) layer 3: the message codec. Call control, the procedures that use it, is in
//! [`crate::isdn::call`].

pub mod ie;
pub mod message;

pub use ie::{
    BearerCapability, CauseIe, ChannelId, ChannelSelection, IeError, Layer1Protocol, NumberingPlan,
    PartyNumber, ProgressIndicator, RestartClass, TransferCapability, TypeOfNumber,
};
pub use message::{
    CallReference, DecodeError, InvalidIe, Message, MessageType, PROTOCOL_DISCRIMINATOR,
};
