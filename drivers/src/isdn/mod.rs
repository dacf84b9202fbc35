//! ISDN trunks: a primary rate interface on E1 or T1, or a basic rate interface, between the
//! gateway's card (the user side) and a simulated exchange (the network side).
//!
//! The layers are separate, sans-IO and usable on their own:
//!
//! - [`q921`]: LAPD, the data link on the D channel (frames, multiple-frame operation, T200/T203);
//! - [`q931`]: the layer-3 message codec (messages and information elements);
//! - [`call`]: Q.931 call control, the call states and timers of either side;
//! - [`channels`]: interface types and B-channel selection;
//! - [`dchannel`]: one end of the D channel, call control over a data link;
//! - [`line`]: the simulated line, carrying D-channel frames with a delay and B-channel audio on
//!   its own 20 ms clock;
//! - [`network`]: the network side, an exchange's call control driven by a subscriber model;
//! - [`trunk`]: [`IsdnTrunk`], the [`crate::line::Driver`] that puts it all together.
//!
//! Nothing here reads a clock: every input carries its `now`, outputs are polled.

pub mod call;
pub mod channels;
pub mod dchannel;
pub mod line;
pub mod network;
pub mod q921;
pub mod q931;
pub mod trunk;

use crate::pstn;

pub use channels::{HuntOrder, InterfaceKind, Law};
pub use network::{FarEnd, FarEndAction};
pub use trunk::{IsdnTrunk, IsdnTrunkConfig, Numbering, Timers, TraceEntry};

/// Which end of the user-network interface an entity plays. The protocols are asymmetric in a
/// few places (the C/R bit of Q.921, the call states of Q.931, who wins a channel collision).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Side {
    /// The terminal equipment: the gateway's ISDN card.
    User,
    /// The exchange.
    Network,
}

impl Side {
    pub fn peer(self) -> Side {
        match self {
            Side::User => Side::Network,
            Side::Network => Side::User,
        }
    }
}
