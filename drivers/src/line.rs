//! The driver interface: one line technology (ISDN trunk, DECT base stations, ...) seen from the
//! call switch.
//!
//! A driver owns its calls, named by a [`CallRef`] it allocates. The switch places a call on the
//! line with [`Driver::setup`], follows it with [`Driver::alert`], [`Driver::answer`] and
//! [`Driver::release`], and feeds the far end's audio with [`Driver::send_audio`]. The line's
//! own calls, progress, answers, releases and faults come back from [`Driver::poll_event`]; its
//! audio, framed on the line's own clock, from [`Driver::poll_audio`]. Time is explicit: the host
//! calls [`Driver::handle_timeout`] at [`Driver::poll_timeout`] (or later), never a clock.

use std::fmt;
use std::time::Instant;

/// A driver's name for one of its calls, unique within that driver while the call exists.
pub type CallRef = u32;

/// Audio as a line carries it. Every codec here has 20 ms frames on the line side.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AudioCodec {
    /// G.711 A-law, 8 kHz (E1 B channels, Europe).
    Pcma,
    /// G.711 u-law, 8 kHz (T1 B channels, North America and Japan).
    Pcmu,
    /// G.726 at 32 kbit/s, 8 kHz (DECT narrowband, ADPCM).
    G726_32,
    /// G.722 at 64 kbit/s, 16 kHz audio (DECT wideband, CAT-iq).
    G722,
}

impl AudioCodec {
    /// The SDP encoding name (RFC 3551).
    pub fn rtp_name(self) -> &'static str {
        match self {
            AudioCodec::Pcma => "PCMA",
            AudioCodec::Pcmu => "PCMU",
            AudioCodec::G726_32 => "G726-32",
            AudioCodec::G722 => "G722",
        }
    }

    /// The RTP payload type: the static ones of RFC 3551, a dynamic one for G.726-32.
    pub fn payload_type(self) -> u8 {
        match self {
            AudioCodec::Pcma => 8,
            AudioCodec::Pcmu => 0,
            AudioCodec::G726_32 => 112,
            AudioCodec::G722 => 9,
        }
    }

    /// The RTP clock rate (8000 for G.722, by RFC 3551's historical error).
    pub fn clock_rate(self) -> u32 {
        8000
    }

    /// Audio samples per second.
    pub fn sample_rate(self) -> u32 {
        match self {
            AudioCodec::G722 => 16_000,
            _ => 8000,
        }
    }

    /// Bytes of one 20 ms frame.
    pub fn frame_bytes(self) -> usize {
        match self {
            AudioCodec::Pcma | AudioCodec::Pcmu | AudioCodec::G722 => 160,
            AudioCodec::G726_32 => 80,
        }
    }
}

/// One 20 ms frame's duration, the framing of every line's audio.
pub const FRAME_MS: u64 = 20;

/// A Q.850 cause value (1..=127): why a call was refused or ended, as ISDN says it. The SIP
/// status it maps to is the switch's business (RFC 3398, `mgw_core::call::cause`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Cause(pub u8);

impl Cause {
    pub const UNALLOCATED: Cause = Cause(1);
    pub const NO_ROUTE: Cause = Cause(3);
    pub const NORMAL: Cause = Cause(16);
    pub const USER_BUSY: Cause = Cause(17);
    pub const NO_USER_RESPONDING: Cause = Cause(18);
    pub const NO_ANSWER: Cause = Cause(19);
    pub const SUBSCRIBER_ABSENT: Cause = Cause(20);
    pub const CALL_REJECTED: Cause = Cause(21);
    pub const INVALID_NUMBER: Cause = Cause(28);
    pub const NORMAL_UNSPECIFIED: Cause = Cause(31);
    pub const NO_CIRCUIT: Cause = Cause(34);
    pub const NETWORK_OUT_OF_ORDER: Cause = Cause(38);
    pub const TEMPORARY_FAILURE: Cause = Cause(41);
    pub const SWITCHING_CONGESTION: Cause = Cause(42);
    pub const CHANNEL_UNACCEPTABLE: Cause = Cause(6);
    pub const REQUESTED_CHANNEL_UNAVAILABLE: Cause = Cause(44);
    pub const RESOURCE_UNAVAILABLE: Cause = Cause(47);
    pub const BEARER_NOT_AVAILABLE: Cause = Cause(58);
    pub const INVALID_CALL_REFERENCE: Cause = Cause(81);
    pub const INCOMPATIBLE_DESTINATION: Cause = Cause(88);
    pub const MANDATORY_IE_MISSING: Cause = Cause(96);
    pub const MESSAGE_TYPE_NONEXISTENT: Cause = Cause(97);
    pub const WRONG_STATE: Cause = Cause(101);
    pub const RECOVERY_ON_TIMER_EXPIRY: Cause = Cause(102);
    pub const PROTOCOL_ERROR: Cause = Cause(111);
    pub const INTERWORKING: Cause = Cause(127);
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Q.850 cause {}", self.0)
    }
}

/// A calling or called party.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Party {
    /// Digits only (the national or international form the line uses).
    pub number: String,
    /// A display name, when the technology carries one (DECT handsets do, ISDN display IE).
    pub name: Option<String>,
}

impl Party {
    pub fn number(number: &str) -> Party {
        Party {
            number: number.to_owned(),
            name: None,
        }
    }
}

/// A call the switch asks the driver to place on its line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Setup {
    pub calling: Party,
    pub called: Party,
    /// The codecs the switch can give this call, best first; the driver picks the line's own.
    pub codecs: Vec<AudioCodec>,
}

/// How far a call has got on its way to an answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Progress {
    /// The line took the call (CALL PROCEEDING, SETUP ACK).
    Proceeding,
    /// The far end rings (ALERTING).
    Alerting,
    /// The far end sends in-band audio before the answer (PROGRESS with indicator 1 or 8).
    InbandInfo,
}

/// Something that happened on the line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LineEvent {
    /// A call from the line: a PSTN caller dialling a DID, a handset dialling out. `via` names
    /// the line-side endpoint that placed it when the switch must know it (a DECT handset's
    /// log-on), `None` for a trunk.
    Incoming {
        call: CallRef,
        calling: Party,
        called: Party,
        codec: AudioCodec,
        via: Option<String>,
    },
    /// A call placed with `setup` progressed.
    Progress { call: CallRef, progress: Progress },
    /// The far end answered; audio flows both ways in `codec`.
    Answered { call: CallRef, codec: AudioCodec },
    /// The call is over (refused, hung up, or torn down by a fault). The ref is free again.
    Released { call: CallRef, cause: Cause },
    /// The line itself changed: a layer-1 loss, a D channel down, a base station gone.
    Fault(Fault),
}

/// A fault (or its clearing) of the line, reported to the switch and the operator.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Layer 1 lost (no signal, loss of frame alignment).
    Layer1Down,
    Layer1Up,
    /// The signalling link (Q.921 on the D channel) is down: no calls until it is back.
    SignallingDown,
    SignallingUp,
    /// One unit of the driver (a base station) is gone or back.
    UnitDown(String),
    UnitUp(String),
}

/// What a driver reports of itself (`GET /api/v1/drivers`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DriverStatus {
    /// "isdn-e1", "isdn-t1", "isdn-bri", "dect".
    pub kind: &'static str,
    /// Whether the line can carry calls now.
    pub up: bool,
    /// Voice channels in use and in all.
    pub channels_busy: u32,
    pub channels_total: u32,
    /// Free-form details: link states, units, the last fault in words.
    pub detail: String,
}

/// A command to the simulated hardware, for tests and demonstrations: what a person at the far
/// end or a technician would do. A driver answers `Err` to the ones it does not model. The
/// admin API takes it as JSON: `{"action": "dial", "from": "...", "to": "..."}`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(tag = "action", rename_all = "snake_case", deny_unknown_fields)]
pub enum SimCommand {
    /// A far-end party (a PSTN subscriber, a handset by its number or IPUI) dials `to`.
    Dial {
        from: String,
        to: String,
    },
    /// The far-end party of the call answers / hangs up.
    Answer {
        party: String,
    },
    Hangup {
        party: String,
    },
    /// Cut or restore the physical line (layer 1) or the signalling link.
    Layer1 {
        up: bool,
    },
    Signalling {
        up: bool,
    },
    /// Take a unit (a base station) down or up; move a handset out of or into range.
    Unit {
        name: String,
        up: bool,
    },
    InRange {
        handset: String,
        in_range: bool,
    },
}

/// A line technology, as the call switch sees it.
pub trait Driver: Send {
    /// The configured name (`[[isdn]]` / `[[dect]]` `name`), the peer name dial-plan rules use.
    fn name(&self) -> &str;

    /// The numbers this driver terminates itself (DECT handsets); empty for a trunk, which is
    /// reached through dial-plan rules instead.
    fn numbers(&self) -> Vec<String>;

    /// Place a call on the line. `Err` refuses it at once (no free channel: cause 34; the line
    /// down: cause 38; an unknown handset: cause 1).
    fn setup(&mut self, setup: Setup, now: Instant) -> Result<CallRef, Cause>;

    /// The switch's side of an incoming call rings.
    fn alert(&mut self, call: CallRef, now: Instant);

    /// The switch's side of an incoming call sends early media (a 183 or 180 with SDP:
    /// ringback or an announcement from further on) before it answers: the line lets the
    /// caller hear it. A technology without in-band information before the answer just rings.
    fn early_media(&mut self, call: CallRef, now: Instant) {
        self.alert(call, now);
    }

    /// The switch's side answered an incoming call.
    fn answer(&mut self, call: CallRef, now: Instant);

    /// End a call (either direction, any state). No `Released` event follows for it.
    fn release(&mut self, call: CallRef, cause: Cause, now: Instant);

    /// One frame of the far end's audio towards the line, in the call's codec.
    fn send_audio(&mut self, call: CallRef, frame: &[u8], now: Instant);

    fn poll_event(&mut self) -> Option<LineEvent>;

    /// The next frame the line produced, in the call's codec, on the line's clock.
    fn poll_audio(&mut self) -> Option<(CallRef, Vec<u8>)>;

    /// When `handle_timeout` is next due.
    fn poll_timeout(&self) -> Option<Instant>;

    fn handle_timeout(&mut self, now: Instant);

    fn status(&self) -> DriverStatus;

    /// The line's recent signalling in words, oldest first (an ISDN line's D-channel frames
    /// with their Q.931 messages), for the operator and for tests. Empty where the
    /// technology has none worth showing.
    fn signalling_log(&self, _last: usize) -> Vec<String> {
        Vec::new()
    }

    /// The codec a call carries, once the driver has chosen it (for early media before the
    /// answer names it). `None`: not known yet, or no such call.
    fn codec_of(&self, _call: CallRef) -> Option<AudioCodec> {
        None
    }

    /// Act on the simulated hardware (see [`SimCommand`]).
    fn simulate(&mut self, command: SimCommand, now: Instant) -> Result<(), String>;
}
