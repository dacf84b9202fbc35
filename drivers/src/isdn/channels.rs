//! Interface types and B-channel allocation.
//!
//! The channel numbers used throughout are the ones the channel identification element carries:
//! timeslot numbers on a primary rate interface (E1: 1-15 and 17-31, timeslot 16 being the D
//! channel; T1: 1-23, channel 24 being the D channel), 1 and 2 for B1 and B2 of a basic rate
//! interface.
//!
//! Both sides of an interface allocate channels for the calls they place, so two SETUPs may
//! cross naming the same channel (glare). Hunting from opposite ends (the user side from the
//! highest channel, the network side from the lowest) makes that rare; when it happens the
//! network side wins (Q.931 §5.1.2/§5.2.3), which is why a channel the user side has only
//! proposed is [`ChannelState::Reserved`] rather than in use.

use std::collections::BTreeMap;

use mgw_media::codec::g711;

use crate::line::{AudioCodec, Cause, FRAME_MS};

use super::q931::ie::Layer1Protocol;

/// Samples (and G.711 bytes) in one 20 ms frame of a B channel.
pub const FRAME_SAMPLES: usize = (8 * FRAME_MS) as usize;

/// The physical interface a trunk runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum InterfaceKind {
    /// Primary rate on E1: 30 B channels, D on timeslot 16, A-law.
    E1,
    /// Primary rate on T1: 23 B channels, D on channel 24, u-law.
    T1,
    /// Basic rate: 2 B channels and a 16 kbit/s D channel, A-law (as in Europe).
    Bri,
}

impl InterfaceKind {
    /// The B channels, by the numbers the channel identification element uses, lowest first.
    pub fn b_channels(self) -> Vec<u8> {
        match self {
            InterfaceKind::E1 => (1..=31).filter(|&c| c != 16).collect(),
            InterfaceKind::T1 => (1..=23).collect(),
            InterfaceKind::Bri => vec![1, 2],
        }
    }

    pub fn has_channel(self, channel: u8) -> bool {
        match self {
            InterfaceKind::E1 => (1..=31).contains(&channel) && channel != 16,
            InterfaceKind::T1 => (1..=23).contains(&channel),
            InterfaceKind::Bri => channel == 1 || channel == 2,
        }
    }

    /// The timeslot of the D channel; a basic rate interface has a D channel of its own.
    pub fn d_timeslot(self) -> Option<u8> {
        match self {
            InterfaceKind::E1 => Some(16),
            InterfaceKind::T1 => Some(24),
            InterfaceKind::Bri => None,
        }
    }

    pub fn law(self) -> Law {
        match self {
            InterfaceKind::T1 => Law::Mu,
            InterfaceKind::E1 | InterfaceKind::Bri => Law::A,
        }
    }

    pub fn is_primary(self) -> bool {
        self != InterfaceKind::Bri
    }

    /// Octets of the call reference value: Q.931 §4.3 uses one on a basic rate interface and
    /// two on a primary rate one.
    pub fn call_ref_len(self) -> u8 {
        if self.is_primary() {
            2
        } else {
            1
        }
    }

    /// The driver kind reported in [`crate::line::DriverStatus`].
    pub fn driver_kind(self) -> &'static str {
        match self {
            InterfaceKind::E1 => "isdn-e1",
            InterfaceKind::T1 => "isdn-t1",
            InterfaceKind::Bri => "isdn-bri",
        }
    }
}

/// The G.711 companding law of an interface's B channels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Law {
    A,
    Mu,
}

impl Law {
    pub fn codec(self) -> AudioCodec {
        match self {
            Law::A => AudioCodec::Pcma,
            Law::Mu => AudioCodec::Pcmu,
        }
    }

    /// The code of a zero sample, what an idle or starved channel carries.
    pub fn silence(self) -> u8 {
        match self {
            Law::A => 0xD5,
            Law::Mu => 0xFF,
        }
    }

    /// The user information layer 1 protocol of the bearer capability element.
    pub fn layer1(self) -> Layer1Protocol {
        match self {
            Law::A => Layer1Protocol::ALaw,
            Law::Mu => Layer1Protocol::MuLaw,
        }
    }

    /// One frame of linear samples to G.711, padded with silence or cut to a 20 ms frame.
    pub fn encode(self, pcm: &[i16]) -> Vec<u8> {
        let mut out = vec![self.silence(); FRAME_SAMPLES];
        match self {
            Law::A => g711::encode_alaw(pcm, &mut out),
            Law::Mu => g711::encode_ulaw(pcm, &mut out),
        }
        out
    }

    pub fn decode(self, codes: &[u8]) -> Vec<i16> {
        let mut out = vec![0; codes.len()];
        match self {
            Law::A => g711::decode_alaw(codes, &mut out),
            Law::Mu => g711::decode_ulaw(codes, &mut out),
        }
        out
    }
}

/// Where a side starts looking for a free channel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum HuntOrder {
    Highest,
    Lowest,
}

/// What a B channel is doing, as one side sees it. The owner is the side's own call id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChannelState {
    Idle,
    /// Proposed in this side's SETUP, not yet confirmed by the peer's answer: the peer may still
    /// give it to a call of its own or assign another one.
    Reserved(u32),
    InUse(u32),
    /// Named in a RESTART this side sent and not yet acknowledged.
    Restarting,
}

/// A side's view of which B channels are free.
#[derive(Clone, Debug)]
pub struct ChannelMap {
    kind: InterfaceKind,
    order: HuntOrder,
    states: BTreeMap<u8, ChannelState>,
}

impl ChannelMap {
    pub fn new(kind: InterfaceKind, order: HuntOrder) -> ChannelMap {
        ChannelMap {
            kind,
            order,
            states: kind
                .b_channels()
                .into_iter()
                .map(|c| (c, ChannelState::Idle))
                .collect(),
        }
    }

    pub fn kind(&self) -> InterfaceKind {
        self.kind
    }

    pub fn state(&self, channel: u8) -> Option<ChannelState> {
        self.states.get(&channel).copied()
    }

    pub fn is_idle(&self, channel: u8) -> bool {
        self.state(channel) == Some(ChannelState::Idle)
    }

    /// Whether a call of the peer may have `channel`: idle, or (when this side yields in a
    /// collision) only reserved by one of this side's own unconfirmed SETUPs.
    pub fn available(&self, channel: u8, yield_reserved: bool) -> bool {
        match self.state(channel) {
            Some(ChannelState::Idle) => true,
            Some(ChannelState::Reserved(_)) => yield_reserved,
            _ => false,
        }
    }

    /// The first idle channel in this side's hunting order.
    pub fn hunt(&self) -> Option<u8> {
        let idle = |(&c, s): (&u8, &ChannelState)| (*s == ChannelState::Idle).then_some(c);
        match self.order {
            HuntOrder::Lowest => self.states.iter().find_map(idle),
            HuntOrder::Highest => self.states.iter().rev().find_map(idle),
        }
    }

    /// The channel for a call the peer offers. `request` is what its channel identification
    /// asked for (`None` for any channel); `yield_reserved` lets it take a channel this side has
    /// only proposed (the user side yields to the network).
    pub fn select_for_peer(
        &self,
        request: Option<u8>,
        exclusive: bool,
        yield_reserved: bool,
    ) -> Result<u8, Cause> {
        match request {
            Some(c) if !self.kind.has_channel(c) => {
                if exclusive {
                    // Q.850 82: identified channel does not exist.
                    Err(Cause(82))
                } else {
                    self.hunt().ok_or(Cause::NO_CIRCUIT)
                }
            }
            Some(c) if self.available(c, yield_reserved) => Ok(c),
            Some(_) if exclusive => Err(if self.hunt().is_some() {
                Cause::REQUESTED_CHANNEL_UNAVAILABLE
            } else {
                Cause::NO_CIRCUIT
            }),
            _ => self.hunt().ok_or(Cause::NO_CIRCUIT),
        }
    }

    pub fn reserve(&mut self, channel: u8, call: u32) {
        if let Some(s) = self.states.get_mut(&channel) {
            *s = ChannelState::Reserved(call);
        }
    }

    pub fn assign(&mut self, channel: u8, call: u32) {
        if let Some(s) = self.states.get_mut(&channel) {
            *s = ChannelState::InUse(call);
        }
    }

    /// Frees `channel` if `call` holds it; a channel since given to another call stays theirs.
    pub fn free(&mut self, channel: u8, call: u32) {
        if let Some(s) = self.states.get_mut(&channel) {
            if matches!(*s, ChannelState::Reserved(c) | ChannelState::InUse(c) if c == call) {
                *s = ChannelState::Idle;
            }
        }
    }

    pub fn set_restarting(&mut self, channel: u8) {
        if let Some(s) = self.states.get_mut(&channel) {
            *s = ChannelState::Restarting;
        }
    }

    pub fn force_idle(&mut self, channel: u8) {
        if let Some(s) = self.states.get_mut(&channel) {
            *s = ChannelState::Idle;
        }
    }

    /// Channels not idle (reserved, in use or restarting).
    pub fn busy(&self) -> u32 {
        self.states
            .values()
            .filter(|s| **s != ChannelState::Idle)
            .count() as u32
    }

    pub fn total(&self) -> u32 {
        self.states.len() as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interface_layouts() {
        let e1 = InterfaceKind::E1.b_channels();
        assert_eq!(e1.len(), 30);
        assert!(!e1.contains(&16));
        assert_eq!((e1[0], e1[29]), (1, 31));
        assert_eq!(InterfaceKind::T1.b_channels().len(), 23);
        assert!(!InterfaceKind::T1.has_channel(24));
        assert_eq!(InterfaceKind::Bri.b_channels(), vec![1, 2]);
        assert_eq!(InterfaceKind::E1.d_timeslot(), Some(16));
        assert_eq!(InterfaceKind::T1.law(), Law::Mu);
        assert_eq!(InterfaceKind::Bri.call_ref_len(), 1);
        assert_eq!(InterfaceKind::E1.call_ref_len(), 2);
    }

    #[test]
    fn sides_hunt_from_opposite_ends() {
        let user = ChannelMap::new(InterfaceKind::E1, HuntOrder::Highest);
        let network = ChannelMap::new(InterfaceKind::E1, HuntOrder::Lowest);
        assert_eq!(user.hunt(), Some(31));
        assert_eq!(network.hunt(), Some(1));
        let mut t1 = ChannelMap::new(InterfaceKind::T1, HuntOrder::Highest);
        t1.assign(23, 1);
        assert_eq!(t1.hunt(), Some(22));
    }

    #[test]
    fn preferred_and_exclusive_selection() {
        let mut m = ChannelMap::new(InterfaceKind::Bri, HuntOrder::Lowest);
        assert_eq!(m.select_for_peer(Some(2), true, false), Ok(2));
        m.assign(2, 7);
        assert_eq!(m.select_for_peer(Some(2), false, false), Ok(1));
        assert_eq!(
            m.select_for_peer(Some(2), true, false),
            Err(Cause::REQUESTED_CHANNEL_UNAVAILABLE)
        );
        m.assign(1, 8);
        assert_eq!(
            m.select_for_peer(Some(2), true, false),
            Err(Cause::NO_CIRCUIT)
        );
        assert_eq!(
            m.select_for_peer(None, false, false),
            Err(Cause::NO_CIRCUIT)
        );
        assert_eq!(m.select_for_peer(Some(5), true, false), Err(Cause(82)));
        assert_eq!(m.busy(), 2);
        m.free(1, 9);
        assert_eq!(m.busy(), 2, "only the owner frees a channel");
        m.free(1, 8);
        assert_eq!(m.hunt(), Some(1));
    }

    #[test]
    fn reserved_channels_yield_only_when_told() {
        let mut m = ChannelMap::new(InterfaceKind::E1, HuntOrder::Highest);
        m.reserve(31, 1);
        assert_eq!(m.hunt(), Some(30));
        assert!(m.available(31, true));
        assert!(!m.available(31, false));
        assert_eq!(m.select_for_peer(Some(31), true, true), Ok(31));
    }

    #[test]
    fn g711_frames_are_padded_to_20ms() {
        assert_eq!(Law::A.encode(&[]), vec![0xD5; FRAME_SAMPLES]);
        assert_eq!(Law::Mu.encode(&[0; 10]), vec![0xFF; FRAME_SAMPLES]);
        assert_eq!(Law::A.decode(&[0xD5; 4]), vec![8; 4]);
    }
}
