//! The information elements of Q.931 codeset 0 that call control here uses (Q.931 §4.5).
//!
//! Each element's `encode` writes its contents (the octets after the length) and `decode` reads
//! them back. Decoding is lenient where Q.931 lets a receiver be (optional trailing octets are
//! skipped) and strict where a wrong value would mislead call control (a channel map, a
//! non-B-channel type, characters outside IA5).

use std::fmt;

/// Information element identifiers.
pub mod id {
    pub const BEARER_CAPABILITY: u8 = 0x04;
    pub const CAUSE: u8 = 0x08;
    pub const CALL_STATE: u8 = 0x14;
    pub const CHANNEL_ID: u8 = 0x18;
    pub const PROGRESS_INDICATOR: u8 = 0x1E;
    pub const DISPLAY: u8 = 0x28;
    pub const CALLING_PARTY_NUMBER: u8 = 0x6C;
    pub const CALLED_PARTY_NUMBER: u8 = 0x70;
    pub const RESTART_INDICATOR: u8 = 0x79;
    /// Single-octet elements have bit 8 set; this one ends en-bloc dialling.
    pub const SENDING_COMPLETE: u8 = 0xA1;

    /// Q.931 §5.8.7.1: an unrecognised codeset-0 element whose identifier has bits 8-5 all zero
    /// must be understood, so the message is treated as missing a mandatory element.
    pub fn comprehension_required(id: u8) -> bool {
        id & 0xF0 == 0
    }
}

/// What is wrong with an element's contents. Q.931 §5.8.7.2 treats such an element as absent
/// (or, for a mandatory one, as a content error with cause 100).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IeError {
    /// The element's length runs past the end of the message.
    Truncated,
    /// Shorter than the element's fixed part.
    TooShort,
    /// A field holds a value Q.931 reserves or this implementation does not support (named).
    Unsupported(&'static str),
    /// A number or display holds a character outside what the element allows.
    BadCharacter(u8),
}

impl fmt::Display for IeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IeError::Truncated => write!(f, "runs past the end of the message"),
            IeError::TooShort => write!(f, "too short"),
            IeError::Unsupported(field) => write!(f, "unsupported {field}"),
            IeError::BadCharacter(c) => write!(f, "bad character {c:#04x}"),
        }
    }
}

/// The index after the octet group starting at `i`: a group goes on while bit 8 (ext) is 0.
fn after_group(c: &[u8], mut i: usize) -> usize {
    while let Some(&o) = c.get(i) {
        i += 1;
        if o & 0x80 != 0 {
            break;
        }
    }
    i
}

/// Information transfer capability (bearer capability octet 3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TransferCapability {
    Speech,
    UnrestrictedDigital,
    Audio3k1,
    /// Anything else (its 5-bit code), refused by voice trunks.
    Other(u8),
}

impl TransferCapability {
    pub fn bits(self) -> u8 {
        match self {
            TransferCapability::Speech => 0x00,
            TransferCapability::UnrestrictedDigital => 0x08,
            TransferCapability::Audio3k1 => 0x10,
            TransferCapability::Other(b) => b & 0x1F,
        }
    }

    pub fn from_bits(b: u8) -> TransferCapability {
        match b & 0x1F {
            0x00 => TransferCapability::Speech,
            0x08 => TransferCapability::UnrestrictedDigital,
            0x10 => TransferCapability::Audio3k1,
            b => TransferCapability::Other(b),
        }
    }

    /// Whether a voice B channel can carry it.
    pub fn is_voice(self) -> bool {
        matches!(
            self,
            TransferCapability::Speech | TransferCapability::Audio3k1
        )
    }
}

/// User information layer 1 protocol: the G.711 law of the B channel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layer1Protocol {
    MuLaw,
    ALaw,
}

/// Bearer capability: circuit mode, 64 kbit/s, and what the B channel carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BearerCapability {
    pub capability: TransferCapability,
    pub layer1: Option<Layer1Protocol>,
}

impl BearerCapability {
    pub fn speech(layer1: Layer1Protocol) -> BearerCapability {
        BearerCapability {
            capability: TransferCapability::Speech,
            layer1: Some(layer1),
        }
    }

    pub fn encode(&self, out: &mut Vec<u8>) {
        out.push(0x80 | self.capability.bits());
        // Circuit mode, 64 kbit/s.
        out.push(0x90);
        match self.layer1 {
            Some(Layer1Protocol::MuLaw) => out.push(0xA2),
            Some(Layer1Protocol::ALaw) => out.push(0xA3),
            None => {}
        }
    }

    pub fn decode(c: &[u8]) -> Result<BearerCapability, IeError> {
        let &[o3, o4, ..] = c else {
            return Err(IeError::TooShort);
        };
        if o3 & 0x60 != 0 {
            return Err(IeError::Unsupported("coding standard"));
        }
        if o3 & 0x80 == 0 {
            return Err(IeError::Unsupported("octet 3 extension"));
        }
        if o4 & 0x7F != 0x10 {
            return Err(IeError::Unsupported("transfer mode or rate"));
        }
        let i = after_group(c, 1);
        let layer1 = match c.get(i) {
            // Layer 1 identification (bits 7-6 = 01) with the G.711 protocols.
            Some(&o5) if o5 & 0x60 == 0x20 => match o5 & 0x1F {
                0x02 => Some(Layer1Protocol::MuLaw),
                0x03 => Some(Layer1Protocol::ALaw),
                _ => None,
            },
            _ => None,
        };
        Ok(BearerCapability {
            capability: TransferCapability::from_bits(o3),
            layer1,
        })
    }
}

/// Which channel a channel identification names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChannelSelection {
    /// No channel (a call offered without a B channel, e.g. call waiting).
    NoChannel,
    /// Any channel.
    Any,
    /// One B channel: a timeslot number on a primary rate interface, 1 or 2 on a basic one.
    Channel(u8),
}

/// Channel identification.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChannelId {
    /// Interface type: primary rate (true) or basic.
    pub primary: bool,
    /// Only the indicated channel is acceptable (else it is preferred).
    pub exclusive: bool,
    /// The D-channel indicator.
    pub d_channel: bool,
    pub selection: ChannelSelection,
}

impl ChannelId {
    pub fn channel(primary: bool, exclusive: bool, channel: u8) -> ChannelId {
        ChannelId {
            primary,
            exclusive,
            d_channel: false,
            selection: ChannelSelection::Channel(channel),
        }
    }

    pub fn encode(&self, out: &mut Vec<u8>) {
        let flags = 0x80
            | u8::from(self.primary) << 5
            | u8::from(self.exclusive) << 3
            | u8::from(self.d_channel) << 2;
        match (self.primary, self.selection) {
            (_, ChannelSelection::NoChannel) => out.push(flags),
            (_, ChannelSelection::Any) => out.push(flags | 3),
            (true, ChannelSelection::Channel(n)) => {
                // As indicated in the following octets: ITU coding, a channel number, B units.
                out.extend([flags | 1, 0x83, 0x80 | (n & 0x7F)]);
            }
            (false, ChannelSelection::Channel(n)) => out.push(flags | (n & 3)),
        }
    }

    pub fn decode(c: &[u8]) -> Result<ChannelId, IeError> {
        let &o3 = c.first().ok_or(IeError::TooShort)?;
        if o3 & 0x80 == 0 || o3 & 0x40 != 0 {
            // An explicit interface identifier only matters to NFAS, which is not modelled.
            return Err(IeError::Unsupported("interface identifier"));
        }
        let primary = o3 & 0x20 != 0;
        let selection = match (primary, o3 & 3) {
            (_, 0) => ChannelSelection::NoChannel,
            (_, 3) => ChannelSelection::Any,
            (false, n) => ChannelSelection::Channel(n),
            (true, 2) => return Err(IeError::Unsupported("information channel selection")),
            (true, _) => {
                let &o32 = c.get(1).ok_or(IeError::TooShort)?;
                if o32 & 0x60 != 0 {
                    return Err(IeError::Unsupported("coding standard"));
                }
                if o32 & 0x10 != 0 {
                    return Err(IeError::Unsupported("channel map"));
                }
                if o32 & 0x0F != 3 {
                    return Err(IeError::Unsupported("channel type"));
                }
                let &o33 = c.get(2).ok_or(IeError::TooShort)?;
                match o33 & 0x7F {
                    0 => return Err(IeError::Unsupported("channel number")),
                    n => ChannelSelection::Channel(n),
                }
            }
        };
        Ok(ChannelId {
            primary,
            exclusive: o3 & 0x08 != 0,
            d_channel: o3 & 0x04 != 0,
            selection,
        })
    }
}

/// Type of number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum TypeOfNumber {
    #[default]
    Unknown,
    International,
    National,
    NetworkSpecific,
    Subscriber,
    Abbreviated,
    Reserved(u8),
}

impl TypeOfNumber {
    pub fn bits(self) -> u8 {
        match self {
            TypeOfNumber::Unknown => 0,
            TypeOfNumber::International => 1,
            TypeOfNumber::National => 2,
            TypeOfNumber::NetworkSpecific => 3,
            TypeOfNumber::Subscriber => 4,
            TypeOfNumber::Abbreviated => 6,
            TypeOfNumber::Reserved(b) => b & 7,
        }
    }

    pub fn from_bits(b: u8) -> TypeOfNumber {
        match b & 7 {
            0 => TypeOfNumber::Unknown,
            1 => TypeOfNumber::International,
            2 => TypeOfNumber::National,
            3 => TypeOfNumber::NetworkSpecific,
            4 => TypeOfNumber::Subscriber,
            6 => TypeOfNumber::Abbreviated,
            b => TypeOfNumber::Reserved(b),
        }
    }
}

/// Numbering plan identification.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum NumberingPlan {
    Unknown,
    /// ISDN/telephony, E.164.
    #[default]
    Isdn,
    Data,
    Telex,
    National,
    Private,
    Reserved(u8),
}

impl NumberingPlan {
    pub fn bits(self) -> u8 {
        match self {
            NumberingPlan::Unknown => 0,
            NumberingPlan::Isdn => 1,
            NumberingPlan::Data => 3,
            NumberingPlan::Telex => 4,
            NumberingPlan::National => 8,
            NumberingPlan::Private => 9,
            NumberingPlan::Reserved(b) => b & 0x0F,
        }
    }

    pub fn from_bits(b: u8) -> NumberingPlan {
        match b & 0x0F {
            0 => NumberingPlan::Unknown,
            1 => NumberingPlan::Isdn,
            3 => NumberingPlan::Data,
            4 => NumberingPlan::Telex,
            8 => NumberingPlan::National,
            9 => NumberingPlan::Private,
            b => NumberingPlan::Reserved(b),
        }
    }
}

/// Presentation and screening indicators (calling party number octet 3a).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Presentation {
    /// 0 allowed, 1 restricted, 2 not available.
    pub indicator: u8,
    /// 0 user-provided not screened ... 3 network provided.
    pub screening: u8,
}

/// Calling or called party number.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct PartyNumber {
    pub number_type: TypeOfNumber,
    pub plan: NumberingPlan,
    /// Only in a calling party number.
    pub presentation: Option<Presentation>,
    /// IA5 digits (0-9, * and #).
    pub digits: String,
}

impl PartyNumber {
    /// A number of unknown type in the E.164 plan.
    pub fn new(digits: &str) -> PartyNumber {
        PartyNumber {
            digits: digits.to_owned(),
            ..PartyNumber::default()
        }
    }

    pub fn encode(&self, out: &mut Vec<u8>) {
        let o3 = self.number_type.bits() << 4 | self.plan.bits();
        match self.presentation {
            Some(p) => out.extend([o3, 0x80 | (p.indicator & 3) << 5 | (p.screening & 3)]),
            None => out.push(0x80 | o3),
        }
        out.extend(self.digits.bytes().filter(|b| is_digit(*b)));
    }

    pub fn decode(c: &[u8]) -> Result<PartyNumber, IeError> {
        let &o3 = c.first().ok_or(IeError::TooShort)?;
        let (presentation, start) = if o3 & 0x80 == 0 {
            let &o3a = c.get(1).ok_or(IeError::TooShort)?;
            let p = Presentation {
                indicator: (o3a >> 5) & 3,
                screening: o3a & 3,
            };
            (Some(p), 2)
        } else {
            (None, 1)
        };
        let digits = c.get(start..).unwrap_or_default();
        if let Some(&bad) = digits.iter().find(|b| !is_digit(**b)) {
            return Err(IeError::BadCharacter(bad));
        }
        Ok(PartyNumber {
            number_type: TypeOfNumber::from_bits(o3 >> 4),
            plan: NumberingPlan::from_bits(o3),
            presentation,
            digits: digits.iter().map(|&b| char::from(b)).collect(),
        })
    }
}

fn is_digit(b: u8) -> bool {
    b.is_ascii_digit() || b == b'*' || b == b'#'
}

/// Cause location (Q.850 §2.2.5).
pub mod location {
    pub const USER: u8 = 0;
    pub const PRIVATE_LOCAL: u8 = 1;
    pub const PUBLIC_LOCAL: u8 = 2;
    pub const TRANSIT: u8 = 3;
    pub const PUBLIC_REMOTE: u8 = 4;
    pub const PRIVATE_REMOTE: u8 = 5;
    pub const INTERNATIONAL: u8 = 7;
    pub const BEYOND_INTERWORKING: u8 = 10;
}

/// Cause (Q.850): where and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CauseIe {
    pub location: u8,
    pub value: u8,
    /// For cause 96 the missing elements' identifiers, for 97/98/101 the message type.
    pub diagnostics: Vec<u8>,
}

impl CauseIe {
    pub fn new(location: u8, value: u8) -> CauseIe {
        CauseIe {
            location,
            value,
            diagnostics: Vec::new(),
        }
    }

    pub fn encode(&self, out: &mut Vec<u8>) {
        out.push(0x80 | (self.location & 0x0F));
        out.push(0x80 | (self.value & 0x7F));
        out.extend_from_slice(&self.diagnostics);
    }

    pub fn decode(c: &[u8]) -> Result<CauseIe, IeError> {
        let &o3 = c.first().ok_or(IeError::TooShort)?;
        // Octet 3a (the recommendation) is optional and of no use here.
        let i = after_group(c, 0);
        let &o4 = c.get(i).ok_or(IeError::TooShort)?;
        Ok(CauseIe {
            location: o3 & 0x0F,
            value: o4 & 0x7F,
            diagnostics: c.get(i + 1..).unwrap_or_default().to_vec(),
        })
    }
}

/// Progress descriptions (Q.931 §4.5.23).
pub mod progress {
    /// Call is not end-to-end ISDN; further progress information may be available in-band.
    pub const NOT_END_TO_END_ISDN: u8 = 1;
    pub const DESTINATION_NOT_ISDN: u8 = 2;
    pub const ORIGIN_NOT_ISDN: u8 = 3;
    pub const RETURNED_TO_ISDN: u8 = 4;
    /// In-band information or an appropriate pattern is now available.
    pub const INBAND_AVAILABLE: u8 = 8;
}

/// Progress indicator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProgressIndicator {
    pub location: u8,
    pub description: u8,
}

impl ProgressIndicator {
    /// Whether the far end sends tones or announcements on the B channel.
    pub fn inband(&self) -> bool {
        matches!(
            self.description,
            progress::NOT_END_TO_END_ISDN | progress::INBAND_AVAILABLE
        )
    }

    pub fn encode(&self, out: &mut Vec<u8>) {
        out.push(0x80 | (self.location & 0x0F));
        out.push(0x80 | (self.description & 0x7F));
    }

    pub fn decode(c: &[u8]) -> Result<ProgressIndicator, IeError> {
        let &[o3, o4, ..] = c else {
            return Err(IeError::TooShort);
        };
        Ok(ProgressIndicator {
            location: o3 & 0x0F,
            description: o4 & 0x7F,
        })
    }
}

/// Call state: a Q.931 state number (0-63).
pub fn decode_call_state(c: &[u8]) -> Result<u8, IeError> {
    let &o3 = c.first().ok_or(IeError::TooShort)?;
    if o3 & 0xC0 != 0 {
        return Err(IeError::Unsupported("coding standard"));
    }
    Ok(o3 & 0x3F)
}

/// What a RESTART restarts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RestartClass {
    /// The channels in the channel identification element.
    Channels,
    /// The single interface the D channel controls.
    Interface,
    /// Every interface the D channel controls.
    AllInterfaces,
}

impl RestartClass {
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.push(match self {
            RestartClass::Channels => 0x80,
            RestartClass::Interface => 0x86,
            RestartClass::AllInterfaces => 0x87,
        });
    }

    pub fn decode(c: &[u8]) -> Result<RestartClass, IeError> {
        match c.first().map(|o| o & 7) {
            None => Err(IeError::TooShort),
            Some(0) => Ok(RestartClass::Channels),
            Some(6) => Ok(RestartClass::Interface),
            Some(7) => Ok(RestartClass::AllInterfaces),
            Some(_) => Err(IeError::Unsupported("restart class")),
        }
    }
}

/// Display: IA5 text. Some networks put a character-set octet (bit 8 set) first; it is skipped.
pub fn decode_display(c: &[u8]) -> Result<String, IeError> {
    let text = match c.first() {
        Some(&o) if o & 0x80 != 0 => &c[1..],
        _ => c,
    };
    if let Some(&bad) = text.iter().find(|b| !(0x20..0x7F).contains(*b)) {
        return Err(IeError::BadCharacter(bad));
    }
    Ok(text.iter().map(|&b| char::from(b)).collect())
}

pub fn encode_display(text: &str, out: &mut Vec<u8>) {
    out.extend(text.bytes().filter(|b| (0x20..0x7F).contains(b)));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(f: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
        let mut v = Vec::new();
        f(&mut v);
        v
    }

    #[test]
    fn bearer_capability_speech_alaw() {
        let b = BearerCapability::speech(Layer1Protocol::ALaw);
        assert_eq!(enc(|o| b.encode(o)), vec![0x80, 0x90, 0xA3]);
        assert_eq!(
            BearerCapability::decode(&[0x90, 0x90, 0xA2])
                .unwrap()
                .layer1,
            Some(Layer1Protocol::MuLaw)
        );
        assert_eq!(
            BearerCapability::decode(&[0x90, 0x90]).unwrap().capability,
            TransferCapability::Audio3k1
        );
        assert_eq!(BearerCapability::decode(&[0x80]), Err(IeError::TooShort));
        assert!(BearerCapability::decode(&[0xC0, 0x90]).is_err());
    }

    #[test]
    fn channel_identification_layouts() {
        let pri = ChannelId::channel(true, true, 5);
        assert_eq!(enc(|o| pri.encode(o)), vec![0xA9, 0x83, 0x85]);
        let bri = ChannelId::channel(false, false, 2);
        assert_eq!(enc(|o| bri.encode(o)), vec![0x82]);
        assert_eq!(ChannelId::decode(&[0xA9, 0x83, 0x85]), Ok(pri));
        assert_eq!(
            ChannelId::decode(&[0xA3]).unwrap().selection,
            ChannelSelection::Any
        );
        assert_eq!(
            ChannelId::decode(&[0xA9, 0x93, 0x85]),
            Err(IeError::Unsupported("channel map"))
        );
        assert_eq!(ChannelId::decode(&[0xA9, 0x83]), Err(IeError::TooShort));
        assert!(ChannelId::decode(&[0xE9, 0x81, 0x83, 0x85]).is_err());
    }

    #[test]
    fn party_numbers() {
        let n = PartyNumber {
            number_type: TypeOfNumber::National,
            plan: NumberingPlan::Isdn,
            presentation: Some(Presentation {
                indicator: 0,
                screening: 3,
            }),
            digits: "301234567".into(),
        };
        let e = enc(|o| n.encode(o));
        assert_eq!(&e[..2], &[0x21, 0x83]);
        assert_eq!(PartyNumber::decode(&e), Ok(n));
        assert_eq!(
            PartyNumber::decode(&[0x81, b'1', b'x']),
            Err(IeError::BadCharacter(b'x'))
        );
        assert_eq!(PartyNumber::decode(&[0x01]), Err(IeError::TooShort));
    }

    #[test]
    fn cause_with_recommendation_and_diagnostics() {
        let c = CauseIe::decode(&[0x02, 0x80, 0x91]).unwrap();
        assert_eq!((c.location, c.value), (2, 17));
        let c = CauseIe::decode(&[0x80, 0xE0, 0x04]).unwrap();
        assert_eq!((c.value, c.diagnostics), (96, vec![0x04]));
        assert_eq!(CauseIe::decode(&[0x80]), Err(IeError::TooShort));
    }

    #[test]
    fn display_skips_the_charset_octet() {
        assert_eq!(decode_display(&[0xB1, b'H', b'i']), Ok("Hi".into()));
        assert_eq!(decode_display(&[b'H', 0x07]), Err(IeError::BadCharacter(7)));
    }
}
