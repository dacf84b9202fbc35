//! Q.931 messages (§4): protocol discriminator, call reference, message type and the
//! information elements call control uses.

use std::fmt;

use super::ie::{
    self, id, BearerCapability, CauseIe, ChannelId, ChannelSelection, IeError, PartyNumber,
    ProgressIndicator, RestartClass,
};

/// The protocol discriminator of Q.931 user-network call control messages.
pub const PROTOCOL_DISCRIMINATOR: u8 = 0x08;

/// Message types (Q.931 §4.4, table 4-2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MessageType {
    Alerting,
    CallProceeding,
    Progress,
    Setup,
    Connect,
    SetupAcknowledge,
    ConnectAcknowledge,
    Disconnect,
    Release,
    ReleaseComplete,
    Restart,
    RestartAcknowledge,
    Status,
    StatusEnquiry,
    Information,
    /// A type this implementation does not know (answered with STATUS, cause 97).
    Unknown(u8),
}

impl MessageType {
    pub fn code(self) -> u8 {
        match self {
            MessageType::Alerting => 0x01,
            MessageType::CallProceeding => 0x02,
            MessageType::Progress => 0x03,
            MessageType::Setup => 0x05,
            MessageType::Connect => 0x07,
            MessageType::SetupAcknowledge => 0x0D,
            MessageType::ConnectAcknowledge => 0x0F,
            MessageType::Disconnect => 0x45,
            MessageType::Restart => 0x46,
            MessageType::Release => 0x4D,
            MessageType::RestartAcknowledge => 0x4E,
            MessageType::ReleaseComplete => 0x5A,
            MessageType::StatusEnquiry => 0x75,
            MessageType::Information => 0x7B,
            MessageType::Status => 0x7D,
            MessageType::Unknown(c) => c & 0x7F,
        }
    }

    pub fn from_code(code: u8) -> MessageType {
        match code {
            0x01 => MessageType::Alerting,
            0x02 => MessageType::CallProceeding,
            0x03 => MessageType::Progress,
            0x05 => MessageType::Setup,
            0x07 => MessageType::Connect,
            0x0D => MessageType::SetupAcknowledge,
            0x0F => MessageType::ConnectAcknowledge,
            0x45 => MessageType::Disconnect,
            0x46 => MessageType::Restart,
            0x4D => MessageType::Release,
            0x4E => MessageType::RestartAcknowledge,
            0x5A => MessageType::ReleaseComplete,
            0x75 => MessageType::StatusEnquiry,
            0x7B => MessageType::Information,
            0x7D => MessageType::Status,
            c => MessageType::Unknown(c),
        }
    }
}

impl fmt::Display for MessageType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            MessageType::Alerting => "ALERTING",
            MessageType::CallProceeding => "CALL PROCEEDING",
            MessageType::Progress => "PROGRESS",
            MessageType::Setup => "SETUP",
            MessageType::Connect => "CONNECT",
            MessageType::SetupAcknowledge => "SETUP ACKNOWLEDGE",
            MessageType::ConnectAcknowledge => "CONNECT ACKNOWLEDGE",
            MessageType::Disconnect => "DISCONNECT",
            MessageType::Release => "RELEASE",
            MessageType::ReleaseComplete => "RELEASE COMPLETE",
            MessageType::Restart => "RESTART",
            MessageType::RestartAcknowledge => "RESTART ACKNOWLEDGE",
            MessageType::Status => "STATUS",
            MessageType::StatusEnquiry => "STATUS ENQUIRY",
            MessageType::Information => "INFORMATION",
            MessageType::Unknown(c) => return write!(f, "message type {c:#04x}"),
        };
        f.write_str(name)
    }
}

/// The call reference (Q.931 §4.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CallReference {
    /// Octets of the value: 0 (the dummy call reference), 1 (basic rate) or 2 (primary rate).
    pub len: u8,
    pub value: u16,
    /// The flag: false in messages from the side that allocated the value, true in messages to
    /// it. This is what lets both sides allocate values independently.
    pub flag: bool,
}

impl CallReference {
    /// The global call reference (value 0), for RESTART and its acknowledgement.
    pub fn global(len: u8, flag: bool) -> CallReference {
        CallReference {
            len,
            value: 0,
            flag,
        }
    }

    pub fn is_global(&self) -> bool {
        self.len > 0 && self.value == 0
    }

    /// The largest value `len` octets hold.
    pub fn max_value(len: u8) -> u16 {
        if len >= 2 {
            0x7FFF
        } else {
            0x7F
        }
    }

    /// The reference the answer to a message with this one carries.
    pub fn reply(self) -> CallReference {
        CallReference {
            flag: !self.flag,
            ..self
        }
    }
}

impl fmt::Display for CallReference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.value, if self.flag { "'" } else { "" })
    }
}

/// Why bytes are not a Q.931 message. Q.931 §5.8.1-§5.8.3.1 ignores such messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// The message ends before its message type (the octets there were).
    TooShort(usize),
    /// Not 0x08: another protocol (the discriminator found).
    ProtocolDiscriminator(u8),
    /// The call reference length octet has spare bits set or a length above 2.
    CallReferenceLength(u8),
    /// Bit 8 of the message type is set (the octet).
    MessageTypeExtension(u8),
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::TooShort(n) => write!(f, "message of {n} octets ends before its type"),
            DecodeError::ProtocolDiscriminator(p) => {
                write!(f, "protocol discriminator {p:#04x} is not Q.931")
            }
            DecodeError::CallReferenceLength(o) => {
                write!(f, "call reference length octet {o:#04x} is invalid")
            }
            DecodeError::MessageTypeExtension(t) => {
                write!(f, "message type {t:#04x} has bit 8 set")
            }
        }
    }
}

impl std::error::Error for DecodeError {}

/// An element that was present but could not be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InvalidIe {
    pub id: u8,
    pub error: IeError,
}

/// A message with the elements call control understands. Elements of other codesets and
/// unknown ones are skipped (their codeset-0 identifiers kept in `unrecognized`); unreadable
/// ones are listed in `invalid`; a repeated element keeps its first occurrence.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    pub call_ref: CallReference,
    pub kind: MessageType,
    pub bearer: Option<BearerCapability>,
    pub cause: Option<CauseIe>,
    pub call_state: Option<u8>,
    pub channel: Option<ChannelId>,
    pub progress: Option<ProgressIndicator>,
    pub display: Option<String>,
    pub calling: Option<PartyNumber>,
    pub called: Option<PartyNumber>,
    pub restart: Option<RestartClass>,
    pub sending_complete: bool,
    pub unrecognized: Vec<u8>,
    pub invalid: Vec<InvalidIe>,
}

fn store<T>(slot: &mut Option<T>, invalid: &mut Vec<InvalidIe>, id: u8, r: Result<T, IeError>) {
    if slot.is_some() {
        return;
    }
    match r {
        Ok(v) => *slot = Some(v),
        Err(error) => invalid.push(InvalidIe { id, error }),
    }
}

/// Writes one variable-length element; contents beyond 255 octets are cut (nothing here makes
/// elements that long).
fn put(out: &mut Vec<u8>, id: u8, write: impl FnOnce(&mut Vec<u8>)) {
    out.push(id);
    let at = out.len();
    out.push(0);
    write(out);
    let len = out.len() - at - 1;
    if len > 255 {
        out.truncate(at + 1 + 255);
    }
    out[at] = len.min(255) as u8;
}

impl Message {
    pub fn new(kind: MessageType, call_ref: CallReference) -> Message {
        Message {
            call_ref,
            kind,
            bearer: None,
            cause: None,
            call_state: None,
            channel: None,
            progress: None,
            display: None,
            calling: None,
            called: None,
            restart: None,
            sending_complete: false,
            unrecognized: Vec::new(),
            invalid: Vec::new(),
        }
    }

    /// Whether element `id` was present but unreadable.
    pub fn is_invalid(&self, id: u8) -> bool {
        self.invalid.iter().any(|e| e.id == id)
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![PROTOCOL_DISCRIMINATOR];
        let CallReference { len, value, flag } = self.call_ref;
        let flag = u8::from(flag) << 7;
        match len {
            0 => out.push(0),
            1 => out.extend([1, flag | (value & 0x7F) as u8]),
            _ => out.extend([2, flag | ((value >> 8) & 0x7F) as u8, value as u8]),
        }
        out.push(self.kind.code());
        // Q.931 §4.5.1: codeset-0 elements in ascending order of identifier.
        if let Some(b) = &self.bearer {
            put(&mut out, id::BEARER_CAPABILITY, |o| b.encode(o));
        }
        if let Some(c) = &self.cause {
            put(&mut out, id::CAUSE, |o| c.encode(o));
        }
        if let Some(s) = self.call_state {
            put(&mut out, id::CALL_STATE, |o| o.push(s & 0x3F));
        }
        if let Some(c) = &self.channel {
            put(&mut out, id::CHANNEL_ID, |o| c.encode(o));
        }
        if let Some(p) = &self.progress {
            put(&mut out, id::PROGRESS_INDICATOR, |o| p.encode(o));
        }
        if let Some(d) = &self.display {
            put(&mut out, id::DISPLAY, |o| ie::encode_display(d, o));
        }
        if let Some(n) = &self.calling {
            put(&mut out, id::CALLING_PARTY_NUMBER, |o| n.encode(o));
        }
        if let Some(n) = &self.called {
            put(&mut out, id::CALLED_PARTY_NUMBER, |o| n.encode(o));
        }
        if let Some(r) = &self.restart {
            put(&mut out, id::RESTART_INDICATOR, |o| r.encode(o));
        }
        if self.sending_complete {
            out.push(id::SENDING_COMPLETE);
        }
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Message, DecodeError> {
        let too_short = DecodeError::TooShort(bytes.len());
        let (&pd, rest) = bytes.split_first().ok_or(too_short)?;
        if pd != PROTOCOL_DISCRIMINATOR {
            return Err(DecodeError::ProtocolDiscriminator(pd));
        }
        let (&crl, rest) = rest.split_first().ok_or(too_short)?;
        if crl & 0xF0 != 0 || crl & 0x0F > 2 {
            return Err(DecodeError::CallReferenceLength(crl));
        }
        let len = crl & 0x0F;
        if rest.len() < usize::from(len) {
            return Err(too_short);
        }
        let (cr, rest) = rest.split_at(usize::from(len));
        let call_ref = match *cr {
            [a] => CallReference {
                len,
                value: u16::from(a & 0x7F),
                flag: a & 0x80 != 0,
            },
            [a, b] => CallReference {
                len,
                value: u16::from(a & 0x7F) << 8 | u16::from(b),
                flag: a & 0x80 != 0,
            },
            _ => CallReference {
                len: 0,
                value: 0,
                flag: false,
            },
        };
        let (&mt, mut ies) = rest.split_first().ok_or(too_short)?;
        if mt & 0x80 != 0 {
            return Err(DecodeError::MessageTypeExtension(mt));
        }
        let mut msg = Message::new(MessageType::from_code(mt), call_ref);
        let mut locked = 0u8;
        let mut once: Option<u8> = None;
        while let Some((&ie_id, rest)) = ies.split_first() {
            if ie_id & 0x80 != 0 {
                ies = rest;
                if ie_id & 0xF0 == 0x90 {
                    // Shift: bit 4 set shifts for the next element only.
                    if ie_id & 0x08 != 0 {
                        once = Some(ie_id & 0x07);
                    } else {
                        locked = ie_id & 0x07;
                    }
                    continue;
                }
                let codeset = once.take().unwrap_or(locked);
                if codeset == 0 && ie_id == id::SENDING_COMPLETE {
                    msg.sending_complete = true;
                }
                continue;
            }
            let Some((&len, rest)) = rest.split_first() else {
                msg.invalid.push(InvalidIe {
                    id: ie_id,
                    error: IeError::Truncated,
                });
                break;
            };
            let Some(contents) = rest.get(..usize::from(len)) else {
                msg.invalid.push(InvalidIe {
                    id: ie_id,
                    error: IeError::Truncated,
                });
                break;
            };
            ies = &rest[usize::from(len)..];
            let codeset = once.take().unwrap_or(locked);
            if codeset == 0 {
                msg.decode_ie(ie_id, contents);
            }
        }
        Ok(msg)
    }

    fn decode_ie(&mut self, ie_id: u8, c: &[u8]) {
        let inv = &mut self.invalid;
        match ie_id {
            id::BEARER_CAPABILITY => {
                store(&mut self.bearer, inv, ie_id, BearerCapability::decode(c))
            }
            id::CAUSE => store(&mut self.cause, inv, ie_id, CauseIe::decode(c)),
            id::CALL_STATE => store(&mut self.call_state, inv, ie_id, ie::decode_call_state(c)),
            id::CHANNEL_ID => store(&mut self.channel, inv, ie_id, ChannelId::decode(c)),
            id::PROGRESS_INDICATOR => {
                store(&mut self.progress, inv, ie_id, ProgressIndicator::decode(c))
            }
            id::DISPLAY => store(&mut self.display, inv, ie_id, ie::decode_display(c)),
            id::CALLING_PARTY_NUMBER => {
                store(&mut self.calling, inv, ie_id, PartyNumber::decode(c))
            }
            id::CALLED_PARTY_NUMBER => store(&mut self.called, inv, ie_id, PartyNumber::decode(c)),
            id::RESTART_INDICATOR => store(&mut self.restart, inv, ie_id, RestartClass::decode(c)),
            _ => {
                if !self.unrecognized.contains(&ie_id) {
                    self.unrecognized.push(ie_id);
                }
            }
        }
    }
}

impl fmt::Display for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} cr={}", self.kind, self.call_ref)?;
        if let Some(c) = &self.channel {
            match c.selection {
                ChannelSelection::Channel(n) => {
                    write!(f, " ch={n}{}", if c.exclusive { "!" } else { "?" })?
                }
                ChannelSelection::Any => write!(f, " ch=any")?,
                ChannelSelection::NoChannel => write!(f, " ch=none")?,
            }
        }
        if let Some(n) = &self.calling {
            write!(f, " from={}", n.digits)?;
        }
        if let Some(n) = &self.called {
            write!(f, " to={}", n.digits)?;
        }
        if let Some(p) = &self.progress {
            write!(f, " pi={}", p.description)?;
        }
        if let Some(c) = &self.cause {
            write!(f, " cause={}", c.value)?;
        }
        if let Some(s) = self.call_state {
            write!(f, " state={s}")?;
        }
        if let Some(r) = &self.restart {
            write!(f, " restart={r:?}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::isdn::q931::ie::{
        Layer1Protocol, NumberingPlan, Presentation, TransferCapability, TypeOfNumber,
    };
    use proptest::prelude::*;

    fn setup() -> Message {
        let mut m = Message::new(
            MessageType::Setup,
            CallReference {
                len: 2,
                value: 0x1234,
                flag: false,
            },
        );
        m.bearer = Some(BearerCapability::speech(Layer1Protocol::ALaw));
        m.channel = Some(ChannelId::channel(true, false, 31));
        m.calling = Some(PartyNumber::new("3012345"));
        m.called = Some(PartyNumber::new("100"));
        m.sending_complete = true;
        m
    }

    #[test]
    fn setup_wire_format() {
        let bytes = setup().encode();
        assert_eq!(
            bytes,
            vec![
                0x08, 0x02, 0x12, 0x34, 0x05, // header
                0x04, 0x03, 0x80, 0x90, 0xA3, // bearer: speech, 64k, A-law
                0x18, 0x03, 0xA1, 0x83, 0x9F, // channel 31 preferred
                0x6C, 0x08, 0x81, b'3', b'0', b'1', b'2', b'3', b'4', b'5', // calling
                0x70, 0x04, 0x81, b'1', b'0', b'0', // called
                0xA1, // sending complete
            ]
        );
        assert_eq!(Message::decode(&bytes), Ok(setup()));
    }

    #[test]
    fn one_octet_call_reference_and_flag() {
        let m = Message::new(
            MessageType::Connect,
            CallReference {
                len: 1,
                value: 5,
                flag: true,
            },
        );
        assert_eq!(m.encode(), vec![0x08, 0x01, 0x85, 0x07]);
        let global = Message::decode(&[0x08, 0x02, 0x00, 0x00, 0x46]).unwrap();
        assert!(global.call_ref.is_global());
        assert_eq!(global.kind, MessageType::Restart);
        let dummy = Message::decode(&[0x08, 0x00, 0x7B]).unwrap();
        assert_eq!(dummy.call_ref.len, 0);
    }

    #[test]
    fn header_errors() {
        assert_eq!(Message::decode(&[]), Err(DecodeError::TooShort(0)));
        assert_eq!(
            Message::decode(&[0x09, 0, 5]),
            Err(DecodeError::ProtocolDiscriminator(9))
        );
        assert_eq!(
            Message::decode(&[0x08, 0x03, 0, 0, 0, 5]),
            Err(DecodeError::CallReferenceLength(3))
        );
        assert_eq!(
            Message::decode(&[0x08, 0x12, 0, 0, 5]),
            Err(DecodeError::CallReferenceLength(0x12))
        );
        assert_eq!(
            Message::decode(&[0x08, 0x02, 0x00]),
            Err(DecodeError::TooShort(3))
        );
        assert_eq!(
            Message::decode(&[0x08, 0x01, 0x01]),
            Err(DecodeError::TooShort(3))
        );
        assert_eq!(
            Message::decode(&[0x08, 0x01, 0x01, 0x85]),
            Err(DecodeError::MessageTypeExtension(0x85))
        );
    }

    #[test]
    fn unknown_and_bad_elements_are_reported_not_fatal() {
        let bytes = [
            0x08, 0x01, 0x01, 0x45, // DISCONNECT
            0x02, 0x01, 0xFF, // unknown, comprehension required
            0x08, 0x01, 0x80, // cause too short
            0x08, 0x02, 0x80, 0x90, // a repeated cause, read since the first was unreadable
            0x96, 0x7F, 0x02, 0x00, 0x00, // locking shift to codeset 6 and an element there
            0x18, 0x09, 0x00, // a channel id whose length runs past the end
        ];
        let m = Message::decode(&bytes).unwrap();
        assert_eq!(m.kind, MessageType::Disconnect);
        assert_eq!(m.unrecognized, vec![0x02]);
        assert!(m.is_invalid(id::CAUSE));
        assert_eq!(m.cause.as_ref().map(|c| c.value), Some(16));
        assert!(
            !m.unrecognized.contains(&0x7F),
            "codeset 6 elements are not codeset 0's"
        );
        assert_eq!(
            m.invalid[1],
            InvalidIe {
                id: 0x18,
                error: IeError::Truncated
            }
        );
    }

    #[test]
    fn unknown_message_type_decodes() {
        let m = Message::decode(&[0x08, 0x01, 0x01, 0x62]).unwrap();
        assert_eq!(m.kind, MessageType::Unknown(0x62));
        assert_eq!(m.encode(), vec![0x08, 0x01, 0x01, 0x62]);
    }

    fn kind() -> impl Strategy<Value = MessageType> {
        (0u8..0x80).prop_map(MessageType::from_code)
    }

    fn party() -> impl Strategy<Value = PartyNumber> {
        (
            0u8..8,
            0u8..16,
            proptest::option::of((0u8..4, 0u8..4)),
            "[0-9*#]{0,20}",
        )
            .prop_map(|(t, p, pres, digits)| PartyNumber {
                number_type: TypeOfNumber::from_bits(t),
                plan: NumberingPlan::from_bits(p),
                presentation: pres.map(|(indicator, screening)| Presentation {
                    indicator,
                    screening,
                }),
                digits,
            })
    }

    fn channel(primary: bool) -> impl Strategy<Value = ChannelId> {
        let selection = if primary {
            prop_oneof![
                Just(ChannelSelection::NoChannel),
                Just(ChannelSelection::Any),
                (1u8..128).prop_map(ChannelSelection::Channel)
            ]
            .boxed()
        } else {
            prop_oneof![
                Just(ChannelSelection::NoChannel),
                Just(ChannelSelection::Any),
                (1u8..3).prop_map(ChannelSelection::Channel)
            ]
            .boxed()
        };
        (any::<bool>(), any::<bool>(), selection).prop_map(
            move |(exclusive, d_channel, selection)| ChannelId {
                primary,
                exclusive,
                d_channel,
                selection,
            },
        )
    }

    prop_compose! {
        fn message()(
            len in 1u8..3,
            value in 0u16..0x8000,
            flag in any::<bool>(),
            kind in kind(),
            bearer in proptest::option::of((0u8..32, proptest::option::of(any::<bool>()))),
            cause in proptest::option::of(
                (0u8..16, 0u8..128, proptest::collection::vec(any::<u8>(), 0..4)),
            ),
            call_state in proptest::option::of(0u8..64),
            channel in proptest::option::of(any::<bool>().prop_flat_map(channel)),
            progress in proptest::option::of((0u8..16, 0u8..128)),
            display in proptest::option::of("[ -~]{0,30}"),
            calling in proptest::option::of(party()),
            called in proptest::option::of(party()),
            restart in proptest::option::of(prop_oneof![
                Just(RestartClass::Channels),
                Just(RestartClass::Interface),
                Just(RestartClass::AllInterfaces),
            ]),
            sending_complete in any::<bool>(),
        ) -> Message {
            let value = value & CallReference::max_value(len);
            let mut m = Message::new(kind, CallReference { len, value, flag });
            m.bearer = bearer.map(|(cap, law)| BearerCapability {
                capability: TransferCapability::from_bits(cap),
                layer1: law.map(|a| if a { Layer1Protocol::ALaw } else { Layer1Protocol::MuLaw }),
            });
            m.cause = cause.map(|(location, value, diagnostics)| CauseIe {
                location,
                value,
                diagnostics,
            });
            m.call_state = call_state;
            m.channel = channel;
            m.progress = progress.map(|(location, description)| ProgressIndicator {
                location,
                description,
            });
            m.display = display;
            m.calling = calling;
            m.called = called.map(|n| PartyNumber { presentation: None, ..n });
            m.restart = restart;
            m.sending_complete = sending_complete;
            m
        }
    }

    proptest! {
        #[test]
        fn messages_round_trip(m in message()) {
            let bytes = m.encode();
            let back = Message::decode(&bytes);
            prop_assert_eq!(back.as_ref(), Ok(&m));
            prop_assert_eq!(back.map(|b| b.encode()), Ok(bytes));
        }

        #[test]
        fn decoded_messages_survive_a_round_trip(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            if let Ok(m) = Message::decode(&bytes) {
                let again = Message::decode(&m.encode());
                let expected = Message { unrecognized: vec![], invalid: vec![], ..m };
                prop_assert_eq!(again, Ok(expected));
            }
        }

        #[test]
        fn decode_never_panics_on_mutated_messages(
            m in message(),
            at in any::<usize>(),
            byte in any::<u8>(),
            cut in any::<usize>(),
        ) {
            let mut bytes = m.encode();
            let i = at % bytes.len();
            bytes[i] = byte;
            bytes.truncate(cut % (bytes.len() + 1));
            if let Ok(m) = Message::decode(&bytes) {
                let _ = m.encode();
                let _ = m.to_string();
            }
        }
    }
}
