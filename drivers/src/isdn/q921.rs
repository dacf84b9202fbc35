//! Q.921 (LAPD): the data link on the D channel that carries the Q.931 messages.
//!
//! A [`DataLink`] is one end of one point-to-point data link (one SAPI/TEI pair) in
//! multiple-frame (acknowledged) operation: establishment with SABME/UA, release with DISC,
//! I frames numbered modulo 128 with a window of k outstanding frames, acknowledgement by RR,
//! flow control by RNR, go-back-N recovery by REJ, and the two timers: T200 (no
//! acknowledgement: poll the peer, at most N200 times, then re-establish and finally give up)
//! and T203 (nothing heard for a while: poll the peer to find out whether it is still there).
//!
//! TEIs are fixed: 0 on a primary rate interface, a configured one on a point-to-point basic
//! rate interface; there is no TEI management.
//!
//! The simulated line carries whole frames, so the HDLC framing of a real D channel does not
//! exist here (no flags, no bit stuffing, no FCS): a frame that arrives is complete and was not
//! corrupted on the way, and losing frames is the only error the line makes.

use std::collections::VecDeque;
use std::fmt;
use std::time::{Duration, Instant};

use super::Side;

/// The SAPI of call control procedures (Q.931).
pub const SAPI_CALL_CONTROL: u8 = 0;
/// The TEI of a primary rate interface (always point-to-point).
pub const TEI_PRI: u8 = 0;
/// The group TEI, for broadcast UI frames.
pub const TEI_GROUP: u8 = 127;
/// The largest information field (N201).
pub const N201: usize = 260;

/// The address field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Address {
    pub sapi: u8,
    /// The C/R bit. Q.921 §3.3.2: 1 in commands from the network and in responses from the
    /// user, 0 otherwise.
    pub command_response: bool,
    pub tei: u8,
}

impl Address {
    pub fn command(from: Side, sapi: u8, tei: u8) -> Address {
        Address {
            sapi,
            command_response: from == Side::Network,
            tei,
        }
    }

    pub fn response(from: Side, sapi: u8, tei: u8) -> Address {
        Address {
            sapi,
            command_response: from == Side::User,
            tei,
        }
    }

    /// Whether a frame with this address, sent by `from`, is a command.
    pub fn is_command_from(&self, from: Side) -> bool {
        self.command_response == (from == Side::Network)
    }
}

/// The control field. Sequence numbers are modulo 128; `poll` is the P bit of commands, `fin`
/// the F bit of responses, `pf` either (supervisory frames are both).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Control {
    I { ns: u8, nr: u8, poll: bool },
    Rr { nr: u8, pf: bool },
    Rnr { nr: u8, pf: bool },
    Rej { nr: u8, pf: bool },
    Sabme { poll: bool },
    Ua { fin: bool },
    Dm { fin: bool },
    Disc { poll: bool },
    Ui { poll: bool },
}

/// A frame between the flags. `info` is carried by I and UI frames only.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    pub address: Address,
    pub control: Control,
    pub info: Vec<u8>,
}

/// Why bytes are not a frame. Q.921 §5.8.4 discards such frames without telling the sender.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameError {
    /// Fewer octets than the address and control fields need (the count).
    TooShort(usize),
    /// The address field's extension bits are wrong (the first octet must have EA = 0, the
    /// second EA = 1: a two-octet address).
    AddressExtension,
    /// A control field that is none of the frame types modelled here (its first octet).
    UnknownControl(u8),
    /// An information field on a frame type that has none.
    UnexpectedInfo,
    /// An information field longer than N201 (its length).
    TooLong(usize),
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameError::TooShort(n) => write!(f, "frame of {n} octets is too short"),
            FrameError::AddressExtension => write!(f, "address field is not two octets"),
            FrameError::UnknownControl(c) => write!(f, "unknown control field {c:#04x}"),
            FrameError::UnexpectedInfo => write!(f, "information field on a frame without one"),
            FrameError::TooLong(n) => write!(f, "information field of {n} octets exceeds N201"),
        }
    }
}

impl std::error::Error for FrameError {}

impl Frame {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(4 + self.info.len());
        out.push((self.address.sapi & 0x3F) << 2 | u8::from(self.address.command_response) << 1);
        out.push((self.address.tei & 0x7F) << 1 | 1);
        let bit = |b: bool| u8::from(b);
        match self.control {
            Control::I { ns, nr, poll } => {
                out.push((ns & 0x7F) << 1);
                out.push((nr & 0x7F) << 1 | bit(poll));
            }
            Control::Rr { nr, pf } => out.extend([0x01, (nr & 0x7F) << 1 | bit(pf)]),
            Control::Rnr { nr, pf } => out.extend([0x05, (nr & 0x7F) << 1 | bit(pf)]),
            Control::Rej { nr, pf } => out.extend([0x09, (nr & 0x7F) << 1 | bit(pf)]),
            Control::Sabme { poll } => out.push(0x6F | bit(poll) << 4),
            Control::Ua { fin } => out.push(0x63 | bit(fin) << 4),
            Control::Dm { fin } => out.push(0x0F | bit(fin) << 4),
            Control::Disc { poll } => out.push(0x43 | bit(poll) << 4),
            Control::Ui { poll } => out.push(0x03 | bit(poll) << 4),
        }
        if matches!(self.control, Control::I { .. } | Control::Ui { .. }) {
            out.extend_from_slice(&self.info);
        }
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Frame, FrameError> {
        let &[a0, a1, c0, ..] = bytes else {
            return Err(FrameError::TooShort(bytes.len()));
        };
        if a0 & 1 != 0 || a1 & 1 != 1 {
            return Err(FrameError::AddressExtension);
        }
        let address = Address {
            sapi: a0 >> 2,
            command_response: a0 & 2 != 0,
            tei: a1 >> 1,
        };
        let second = || {
            bytes
                .get(3)
                .copied()
                .ok_or(FrameError::TooShort(bytes.len()))
        };
        let (control, rest) = if c0 & 1 == 0 {
            let c1 = second()?;
            let control = Control::I {
                ns: c0 >> 1,
                nr: c1 >> 1,
                poll: c1 & 1 != 0,
            };
            (control, &bytes[4..])
        } else if c0 & 3 == 1 {
            let c1 = second()?;
            let (nr, pf) = (c1 >> 1, c1 & 1 != 0);
            let control = match c0 {
                0x01 => Control::Rr { nr, pf },
                0x05 => Control::Rnr { nr, pf },
                0x09 => Control::Rej { nr, pf },
                _ => return Err(FrameError::UnknownControl(c0)),
            };
            (control, &bytes[4..])
        } else {
            let pf = c0 & 0x10 != 0;
            let control = match c0 & !0x10 {
                0x6F => Control::Sabme { poll: pf },
                0x63 => Control::Ua { fin: pf },
                0x0F => Control::Dm { fin: pf },
                0x43 => Control::Disc { poll: pf },
                0x03 => Control::Ui { poll: pf },
                _ => return Err(FrameError::UnknownControl(c0)),
            };
            (control, &bytes[3..])
        };
        match control {
            Control::I { .. } | Control::Ui { .. } if rest.len() > N201 => {
                Err(FrameError::TooLong(rest.len()))
            }
            Control::I { .. } | Control::Ui { .. } => Ok(Frame {
                address,
                control,
                info: rest.to_vec(),
            }),
            _ if !rest.is_empty() => Err(FrameError::UnexpectedInfo),
            _ => Ok(Frame {
                address,
                control,
                info: Vec::new(),
            }),
        }
    }
}

impl fmt::Display for Frame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = |b: bool| if b { " P/F" } else { "" };
        match self.control {
            Control::I { ns, nr, poll } => write!(f, "I ns={ns} nr={nr}{}", p(poll)),
            Control::Rr { nr, pf } => write!(f, "RR nr={nr}{}", p(pf)),
            Control::Rnr { nr, pf } => write!(f, "RNR nr={nr}{}", p(pf)),
            Control::Rej { nr, pf } => write!(f, "REJ nr={nr}{}", p(pf)),
            Control::Sabme { poll } => write!(f, "SABME{}", p(poll)),
            Control::Ua { fin } => write!(f, "UA{}", p(fin)),
            Control::Dm { fin } => write!(f, "DM{}", p(fin)),
            Control::Disc { poll } => write!(f, "DISC{}", p(poll)),
            Control::Ui { poll } => write!(f, "UI{}", p(poll)),
        }
    }
}

/// The data link's parameters (Q.921 §5.9).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LinkConfig {
    /// Time to wait for an acknowledgement.
    pub t200: Duration,
    /// Retransmissions before giving up.
    pub n200: u8,
    /// Longest time without frames before the link is polled.
    pub t203: Duration,
    /// Outstanding I frames (the window).
    pub k: u8,
}

impl Default for LinkConfig {
    fn default() -> LinkConfig {
        LinkConfig {
            t200: Duration::from_secs(1),
            n200: 3,
            t203: Duration::from_secs(10),
            k: 7,
        }
    }
}

/// The states of Q.921 Annex B that a fixed TEI leaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkState {
    /// State 4: TEI assigned, no multiple-frame operation.
    Released,
    /// State 5: SABME sent.
    AwaitingEstablishment,
    /// State 6: DISC sent.
    AwaitingRelease,
    /// State 7.
    Established,
    /// State 8: T200 expired, polling the peer.
    TimerRecovery,
}

impl LinkState {
    pub fn number(self) -> u8 {
        match self {
            LinkState::Released => 4,
            LinkState::AwaitingEstablishment => 5,
            LinkState::AwaitingRelease => 6,
            LinkState::Established => 7,
            LinkState::TimerRecovery => 8,
        }
    }
}

impl fmt::Display for LinkState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            LinkState::Released => "released",
            LinkState::AwaitingEstablishment => "awaiting establishment",
            LinkState::AwaitingRelease => "awaiting release",
            LinkState::Established => "established",
            LinkState::TimerRecovery => "timer recovery",
        };
        write!(f, "{name} ({})", self.number())
    }
}

/// What the data link tells layer 3 (the DL- primitives).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LinkEvent {
    /// DL-ESTABLISH indication or confirm: multiple-frame operation started, or was reset by
    /// the peer or by recovery (in which case unacknowledged messages may have been lost).
    Established,
    /// DL-RELEASE indication or confirm: no multiple-frame operation (released by either side,
    /// establishment failed, recovery failed, layer 1 lost).
    Released,
    /// DL-DATA indication: a layer-3 message, in order, once.
    Data(Vec<u8>),
    /// DL-UNIT-DATA indication: a layer-3 message in a UI frame.
    UnitData(Vec<u8>),
}

/// Counters for the operator.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LinkStats {
    pub frames_in: u64,
    pub frames_out: u64,
    /// Frames discarded: undecodable, for another SAPI/TEI, or with a wrong C/R bit.
    pub discarded: u64,
    pub retransmissions: u64,
    pub establishments: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Supervisory {
    Rr,
    Rnr,
    Rej,
}

/// One end of a LAPD data link.
#[derive(Debug)]
pub struct DataLink {
    side: Side,
    sapi: u8,
    tei: u8,
    config: LinkConfig,
    state: LinkState,
    layer1: bool,
    vs: u8,
    va: u8,
    vr: u8,
    rc: u8,
    t200: Option<Instant>,
    t203: Option<Instant>,
    peer_busy: bool,
    reject_sent: bool,
    ack_pending: bool,
    /// Messages waiting for the window to open.
    queue: VecDeque<Vec<u8>>,
    /// Sent I frames from V(A) up to V(S), kept for retransmission.
    unacked: VecDeque<Vec<u8>>,
    tx: VecDeque<Vec<u8>>,
    events: VecDeque<LinkEvent>,
    stats: LinkStats,
}

fn inc(v: u8) -> u8 {
    (v + 1) % 128
}

fn distance(from: u8, to: u8) -> u8 {
    (to + 128 - from) % 128
}

impl DataLink {
    pub fn new(side: Side, tei: u8, config: LinkConfig) -> DataLink {
        DataLink {
            side,
            sapi: SAPI_CALL_CONTROL,
            tei,
            config,
            state: LinkState::Released,
            layer1: true,
            vs: 0,
            va: 0,
            vr: 0,
            rc: 0,
            t200: None,
            t203: None,
            peer_busy: false,
            reject_sent: false,
            ack_pending: false,
            queue: VecDeque::new(),
            unacked: VecDeque::new(),
            tx: VecDeque::new(),
            events: VecDeque::new(),
            stats: LinkStats::default(),
        }
    }

    pub fn state(&self) -> LinkState {
        self.state
    }

    pub fn tei(&self) -> u8 {
        self.tei
    }

    pub fn stats(&self) -> LinkStats {
        self.stats
    }

    /// Whether layer-3 messages can be sent.
    pub fn is_established(&self) -> bool {
        matches!(
            self.state,
            LinkState::Established | LinkState::TimerRecovery
        )
    }

    /// DL-ESTABLISH request.
    pub fn establish(&mut self, now: Instant) {
        if self.layer1 && self.state != LinkState::AwaitingEstablishment {
            self.start_establishment(now);
        }
    }

    /// DL-RELEASE request.
    pub fn release(&mut self, now: Instant) {
        match self.state {
            LinkState::Established | LinkState::TimerRecovery => {
                self.discard_queues();
                self.rc = 0;
                self.push(true, Control::Disc { poll: true }, Vec::new());
                self.t200 = Some(now + self.config.t200);
                self.t203 = None;
                self.state = LinkState::AwaitingRelease;
            }
            LinkState::AwaitingEstablishment | LinkState::Released => {
                self.t200 = None;
                self.state = LinkState::Released;
                self.events.push_back(LinkEvent::Released);
            }
            LinkState::AwaitingRelease => {}
        }
    }

    /// DL-DATA request. A message offered while the link is not established is dropped
    /// (returns false): layer 3 only sends on an established link and recovers by its timers.
    pub fn send(&mut self, message: Vec<u8>, now: Instant) -> bool {
        if !self.is_established() {
            return false;
        }
        self.queue.push_back(message);
        self.pump(now);
        true
    }

    /// DL-UNIT-DATA request.
    pub fn send_unit(&mut self, message: Vec<u8>) {
        if self.layer1 {
            self.push(true, Control::Ui { poll: false }, message);
        }
    }

    /// PH-ACTIVATE / PH-DEACTIVATE indication.
    pub fn layer1(&mut self, up: bool, _now: Instant) {
        if self.layer1 == up {
            return;
        }
        self.layer1 = up;
        if !up {
            let was = self.state;
            self.discard_queues();
            self.tx.clear();
            self.t200 = None;
            self.t203 = None;
            self.state = LinkState::Released;
            if was != LinkState::Released {
                self.events.push_back(LinkEvent::Released);
            }
        }
    }

    /// A frame from the peer.
    pub fn receive(&mut self, bytes: &[u8], now: Instant) {
        let Ok(frame) = Frame::decode(bytes) else {
            self.stats.discarded += 1;
            return;
        };
        if !self.layer1
            || frame.address.sapi != self.sapi
            || (frame.address.tei != self.tei && frame.address.tei != TEI_GROUP)
        {
            self.stats.discarded += 1;
            return;
        }
        self.stats.frames_in += 1;
        let command = frame.address.is_command_from(self.side.peer());
        match frame.control {
            Control::Ui { .. } => self.events.push_back(LinkEvent::UnitData(frame.info)),
            Control::Sabme { poll } if command => self.on_sabme(poll, now),
            Control::Disc { poll } if command => self.on_disc(poll),
            Control::Ua { fin } if !command => self.on_ua(fin, now),
            Control::Dm { fin } if !command => self.on_dm(fin, now),
            Control::I { ns, nr, poll } if command => self.on_i(ns, nr, poll, frame.info, now),
            Control::Rr { nr, pf } => self.on_supervisory(Supervisory::Rr, nr, pf, command, now),
            Control::Rnr { nr, pf } => self.on_supervisory(Supervisory::Rnr, nr, pf, command, now),
            Control::Rej { nr, pf } => self.on_supervisory(Supervisory::Rej, nr, pf, command, now),
            _ => self.stats.discarded += 1,
        }
        self.pump(now);
        if self.ack_pending && self.is_established() {
            self.ack_pending = false;
            let nr = self.vr;
            self.push(false, Control::Rr { nr, pf: false }, Vec::new());
        }
    }

    /// The next frame to put on the line.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.tx.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<LinkEvent> {
        self.events.pop_front()
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        match (self.t200, self.t203) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        if self.t200.is_some_and(|t| t <= now) {
            self.t200 = None;
            self.on_t200(now);
        }
        if self.t203.is_some_and(|t| t <= now) {
            self.t203 = None;
            if self.state == LinkState::Established {
                self.rc = 0;
                self.enquiry(now);
                self.state = LinkState::TimerRecovery;
            }
        }
    }

    fn push(&mut self, command: bool, control: Control, info: Vec<u8>) {
        let address = if command {
            Address::command(self.side, self.sapi, self.tei)
        } else {
            Address::response(self.side, self.sapi, self.tei)
        };
        self.stats.frames_out += 1;
        self.tx.push_back(
            Frame {
                address,
                control,
                info,
            }
            .encode(),
        );
    }

    fn discard_queues(&mut self) {
        self.queue.clear();
        self.unacked.clear();
    }

    fn reset_variables(&mut self) {
        self.vs = 0;
        self.va = 0;
        self.vr = 0;
        self.rc = 0;
        self.peer_busy = false;
        self.reject_sent = false;
        self.ack_pending = false;
    }

    fn start_establishment(&mut self, now: Instant) {
        self.discard_queues();
        self.reset_variables();
        self.push(true, Control::Sabme { poll: true }, Vec::new());
        self.t200 = Some(now + self.config.t200);
        self.t203 = None;
        self.state = LinkState::AwaitingEstablishment;
    }

    fn established(&mut self, now: Instant) {
        self.reset_variables();
        self.t200 = None;
        self.t203 = Some(now + self.config.t203);
        self.state = LinkState::Established;
        self.stats.establishments += 1;
        self.events.push_back(LinkEvent::Established);
    }

    fn released(&mut self) {
        self.discard_queues();
        self.t200 = None;
        self.t203 = None;
        self.state = LinkState::Released;
        self.events.push_back(LinkEvent::Released);
    }

    fn on_sabme(&mut self, poll: bool, now: Instant) {
        match self.state {
            LinkState::Released | LinkState::Established | LinkState::TimerRecovery => {
                self.push(false, Control::Ua { fin: poll }, Vec::new());
                self.discard_queues();
                self.established(now);
            }
            // Both ends sent SABME at once: each acknowledges the other's and still waits
            // for the UA to its own (Q.921 §5.5.1.3).
            LinkState::AwaitingEstablishment => {
                self.push(false, Control::Ua { fin: poll }, Vec::new())
            }
            LinkState::AwaitingRelease => self.push(false, Control::Dm { fin: poll }, Vec::new()),
        }
    }

    fn on_disc(&mut self, poll: bool) {
        match self.state {
            LinkState::Released | LinkState::AwaitingEstablishment => {
                self.push(false, Control::Dm { fin: poll }, Vec::new())
            }
            LinkState::AwaitingRelease => self.push(false, Control::Ua { fin: poll }, Vec::new()),
            LinkState::Established | LinkState::TimerRecovery => {
                self.push(false, Control::Ua { fin: poll }, Vec::new());
                self.released();
            }
        }
    }

    fn on_ua(&mut self, fin: bool, now: Instant) {
        match self.state {
            LinkState::AwaitingEstablishment if fin => self.established(now),
            LinkState::AwaitingRelease if fin => self.released(),
            // An unsolicited UA (MDL-ERROR C/D) changes nothing.
            _ => {}
        }
    }

    fn on_dm(&mut self, fin: bool, now: Instant) {
        match self.state {
            LinkState::AwaitingEstablishment | LinkState::AwaitingRelease if fin => self.released(),
            // The peer says it has no multiple-frame operation while we think we have one:
            // start again (MDL-ERROR E/F).
            LinkState::Established | LinkState::TimerRecovery => self.start_establishment(now),
            _ => {}
        }
    }

    /// Answers a command that needs the link when there is none (Q.921 state 4: DM F=1 to a
    /// command with P=1). Returns whether the link can take the frame.
    fn link_for_command(&mut self, poll: bool) -> bool {
        match self.state {
            LinkState::Established | LinkState::TimerRecovery => true,
            LinkState::Released => {
                if poll {
                    self.push(false, Control::Dm { fin: true }, Vec::new());
                }
                false
            }
            _ => false,
        }
    }

    fn on_i(&mut self, ns: u8, nr: u8, poll: bool, info: Vec<u8>, now: Instant) {
        if !self.link_for_command(poll) {
            return;
        }
        if ns == self.vr {
            self.vr = inc(self.vr);
            self.reject_sent = false;
            self.events.push_back(LinkEvent::Data(info));
            if poll {
                let nr = self.vr;
                self.push(false, Control::Rr { nr, pf: true }, Vec::new());
                self.ack_pending = false;
            } else {
                self.ack_pending = true;
            }
        } else if !self.reject_sent {
            // Out of sequence: ask once for a retransmission from V(R) (go-back-N).
            self.reject_sent = true;
            let nr = self.vr;
            self.push(false, Control::Rej { nr, pf: poll }, Vec::new());
            self.ack_pending = false;
        } else if poll {
            let nr = self.vr;
            self.push(false, Control::Rr { nr, pf: true }, Vec::new());
        }
        self.acknowledge(nr, now);
    }

    fn on_supervisory(&mut self, kind: Supervisory, nr: u8, pf: bool, command: bool, now: Instant) {
        if !self.link_for_command(command && pf) {
            return;
        }
        self.peer_busy = kind == Supervisory::Rnr;
        if command && pf {
            // The peer's enquiry: tell it where we are.
            let nr = self.vr;
            self.push(false, Control::Rr { nr, pf: true }, Vec::new());
            self.ack_pending = false;
        }
        if !self.nr_valid(nr) {
            self.nr_error(now);
            return;
        }
        if self.state == LinkState::TimerRecovery && !command && pf {
            // The answer to our poll: the peer has everything before N(R); send the rest again.
            self.acknowledge_to(nr);
            self.t200 = None;
            self.t203 = Some(now + self.config.t203);
            self.state = LinkState::Established;
            self.retransmit();
            return;
        }
        match kind {
            Supervisory::Rej if self.state == LinkState::Established => {
                self.acknowledge_to(nr);
                self.t200 = None;
                self.t203 = Some(now + self.config.t203);
                self.retransmit();
            }
            _ => self.acknowledge(nr, now),
        }
    }

    fn nr_valid(&self, nr: u8) -> bool {
        distance(self.va, nr) <= distance(self.va, self.vs)
    }

    /// An N(R) outside V(A)..=V(S): the two ends disagree on what was sent; only a reset
    /// brings them back in step (MDL-ERROR J).
    fn nr_error(&mut self, now: Instant) {
        self.start_establishment(now);
    }

    /// Processes the N(R) of a frame outside the poll/final exchange.
    fn acknowledge(&mut self, nr: u8, now: Instant) {
        if !self.nr_valid(nr) {
            self.nr_error(now);
            return;
        }
        let advanced = nr != self.va;
        self.acknowledge_to(nr);
        if self.state == LinkState::Established {
            if nr == self.vs {
                self.t200 = None;
                self.t203 = Some(now + self.config.t203);
            } else if advanced {
                self.t200 = Some(now + self.config.t200);
            }
        }
    }

    fn acknowledge_to(&mut self, nr: u8) {
        for _ in 0..distance(self.va, nr) {
            self.unacked.pop_front();
        }
        self.va = nr;
    }

    /// Puts every unacknowledged frame back in front of the queue, to be sent again with the
    /// same sequence numbers from V(A).
    fn retransmit(&mut self) {
        self.stats.retransmissions += self.unacked.len() as u64;
        while let Some(m) = self.unacked.pop_back() {
            self.queue.push_front(m);
        }
        self.vs = self.va;
    }

    /// Sends queued messages while the window allows.
    fn pump(&mut self, now: Instant) {
        while self.state == LinkState::Established
            && !self.peer_busy
            && self.unacked.len() < usize::from(self.config.k)
        {
            let Some(message) = self.queue.pop_front() else {
                break;
            };
            let (ns, nr) = (self.vs, self.vr);
            self.push(
                true,
                Control::I {
                    ns,
                    nr,
                    poll: false,
                },
                message.clone(),
            );
            self.vs = inc(self.vs);
            self.unacked.push_back(message);
            self.ack_pending = false;
            if self.t200.is_none() {
                self.t200 = Some(now + self.config.t200);
            }
            self.t203 = None;
        }
    }

    /// Polls the peer (RR command with P=1) and waits T200 for its answer.
    fn enquiry(&mut self, now: Instant) {
        let nr = self.vr;
        self.push(true, Control::Rr { nr, pf: true }, Vec::new());
        self.ack_pending = false;
        self.rc += 1;
        self.t200 = Some(now + self.config.t200);
    }

    fn on_t200(&mut self, now: Instant) {
        match self.state {
            LinkState::AwaitingEstablishment => {
                if self.rc >= self.config.n200 {
                    self.released();
                } else {
                    self.rc += 1;
                    self.push(true, Control::Sabme { poll: true }, Vec::new());
                    self.t200 = Some(now + self.config.t200);
                }
            }
            LinkState::AwaitingRelease => {
                if self.rc >= self.config.n200 {
                    self.released();
                } else {
                    self.rc += 1;
                    self.push(true, Control::Disc { poll: true }, Vec::new());
                    self.t200 = Some(now + self.config.t200);
                }
            }
            LinkState::Established => {
                // Q.921 also allows sending the last I frame again with P=1; an RR poll
                // recovers the same way and keeps the retransmission in one place.
                self.rc = 0;
                self.enquiry(now);
                self.state = LinkState::TimerRecovery;
            }
            LinkState::TimerRecovery => {
                if self.rc >= self.config.n200 {
                    self.start_establishment(now);
                } else {
                    self.enquiry(now);
                }
            }
            LinkState::Released => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::collection::vec;
    use proptest::prelude::*;

    fn pair() -> (DataLink, DataLink) {
        (
            DataLink::new(Side::User, TEI_PRI, LinkConfig::default()),
            DataLink::new(Side::Network, TEI_PRI, LinkConfig::default()),
        )
    }

    /// Moves frames both ways until neither end has anything to send; `drop` loses them.
    fn shuttle(u: &mut DataLink, n: &mut DataLink, now: Instant, drop: bool) -> usize {
        let mut moved = 0;
        loop {
            let mut any = false;
            while let Some(f) = u.poll_transmit() {
                any = true;
                moved += 1;
                if !drop {
                    n.receive(&f, now);
                }
            }
            while let Some(f) = n.poll_transmit() {
                any = true;
                moved += 1;
                if !drop {
                    u.receive(&f, now);
                }
            }
            if !any {
                return moved;
            }
        }
    }

    fn events(l: &mut DataLink) -> Vec<LinkEvent> {
        std::iter::from_fn(|| l.poll_event()).collect()
    }

    fn established_pair(now: Instant) -> (DataLink, DataLink) {
        let (mut u, mut n) = pair();
        u.establish(now);
        shuttle(&mut u, &mut n, now, false);
        assert_eq!(events(&mut u), vec![LinkEvent::Established]);
        assert_eq!(events(&mut n), vec![LinkEvent::Established]);
        (u, n)
    }

    #[test]
    fn encodes_known_frames() {
        let sabme = Frame {
            address: Address::command(Side::User, 0, 0),
            control: Control::Sabme { poll: true },
            info: vec![],
        };
        assert_eq!(sabme.encode(), vec![0x00, 0x01, 0x7F]);
        let ua = Frame {
            address: Address::response(Side::Network, 0, 0),
            control: Control::Ua { fin: true },
            info: vec![],
        };
        assert_eq!(ua.encode(), vec![0x00, 0x01, 0x73]);
        let i = Frame {
            address: Address::command(Side::Network, 0, 0),
            control: Control::I {
                ns: 3,
                nr: 5,
                poll: false,
            },
            info: vec![0x08],
        };
        assert_eq!(i.encode(), vec![0x02, 0x01, 0x06, 0x0A, 0x08]);
        assert!(i.address.is_command_from(Side::Network));
        assert!(!ua.address.is_command_from(Side::Network));
    }

    #[test]
    fn rejects_malformed_frames() {
        assert_eq!(Frame::decode(&[0, 1]), Err(FrameError::TooShort(2)));
        assert_eq!(Frame::decode(&[1, 1, 3]), Err(FrameError::AddressExtension));
        assert_eq!(Frame::decode(&[0, 0, 3]), Err(FrameError::AddressExtension));
        assert_eq!(
            Frame::decode(&[0, 1, 0x0D, 0]),
            Err(FrameError::UnknownControl(0x0D))
        );
        assert_eq!(
            Frame::decode(&[0, 1, 0x87]),
            Err(FrameError::UnknownControl(0x87))
        );
        assert_eq!(
            Frame::decode(&[0, 1, 0x73, 9]),
            Err(FrameError::UnexpectedInfo)
        );
        assert_eq!(Frame::decode(&[0, 1, 0x00]), Err(FrameError::TooShort(3)));
        let long = [&[0u8, 1, 0, 0][..], &[0; N201 + 1]].concat();
        assert_eq!(Frame::decode(&long), Err(FrameError::TooLong(N201 + 1)));
    }

    #[test]
    fn establishes_and_carries_data_both_ways() {
        let t0 = Instant::now();
        let (mut u, mut n) = established_pair(t0);
        for i in 0..3u8 {
            assert!(u.send(vec![i], t0));
            assert!(n.send(vec![100 + i], t0));
        }
        shuttle(&mut u, &mut n, t0, false);
        assert_eq!(
            events(&mut n),
            (0..3).map(|i| LinkEvent::Data(vec![i])).collect::<Vec<_>>()
        );
        assert_eq!(
            events(&mut u),
            (100..103)
                .map(|i| LinkEvent::Data(vec![i]))
                .collect::<Vec<_>>()
        );
        assert!(u.unacked.is_empty() && n.unacked.is_empty());
        assert_eq!(u.t200, None);
        assert_eq!(u.t203, Some(t0 + Duration::from_secs(10)));
    }

    #[test]
    fn window_holds_at_most_k_frames() {
        let t0 = Instant::now();
        let (mut u, mut n) = established_pair(t0);
        for i in 0..10u8 {
            u.send(vec![i], t0);
        }
        let sent: Vec<_> = std::iter::from_fn(|| u.poll_transmit()).collect();
        assert_eq!(sent.len(), 7);
        for f in &sent {
            n.receive(f, t0);
        }
        shuttle(&mut u, &mut n, t0, false);
        assert_eq!(events(&mut n).len(), 10);
        assert_eq!(u.vs, 10);
        assert_eq!(u.va, 10);
    }

    #[test]
    fn sequence_numbers_wrap() {
        let t0 = Instant::now();
        let (mut u, mut n) = established_pair(t0);
        for i in 0..300u32 {
            u.send(i.to_be_bytes().to_vec(), t0);
            shuttle(&mut u, &mut n, t0, false);
        }
        let got = events(&mut n);
        assert_eq!(got.len(), 300);
        assert_eq!(got[299], LinkEvent::Data(299u32.to_be_bytes().to_vec()));
    }

    #[test]
    fn lost_i_frame_is_recovered_by_t200() {
        let t0 = Instant::now();
        let (mut u, mut n) = established_pair(t0);
        u.send(vec![1], t0);
        shuttle(&mut u, &mut n, t0, true);
        assert_eq!(u.poll_timeout(), Some(t0 + Duration::from_secs(1)));
        let t1 = t0 + Duration::from_secs(1);
        u.handle_timeout(t1);
        assert_eq!(u.state(), LinkState::TimerRecovery);
        shuttle(&mut u, &mut n, t1, false);
        assert_eq!(u.state(), LinkState::Established);
        assert_eq!(events(&mut n), vec![LinkEvent::Data(vec![1])]);
        assert_eq!(u.stats().retransmissions, 1);
    }

    #[test]
    fn out_of_sequence_frame_draws_a_reject() {
        let t0 = Instant::now();
        let (mut u, mut n) = established_pair(t0);
        u.send(vec![1], t0);
        u.send(vec![2], t0);
        let first = u.poll_transmit().unwrap();
        let second = u.poll_transmit().unwrap();
        drop(first);
        n.receive(&second, t0);
        let rej = Frame::decode(&n.poll_transmit().unwrap()).unwrap();
        assert_eq!(rej.control, Control::Rej { nr: 0, pf: false });
        u.receive(&rej.encode(), t0);
        shuttle(&mut u, &mut n, t0, false);
        assert_eq!(
            events(&mut n),
            vec![LinkEvent::Data(vec![1]), LinkEvent::Data(vec![2])]
        );
    }

    #[test]
    fn idle_link_is_polled_after_t203() {
        let t0 = Instant::now();
        let (mut u, mut n) = established_pair(t0);
        let t1 = t0 + Duration::from_secs(10);
        u.handle_timeout(t1);
        n.handle_timeout(t1);
        assert_eq!(u.state(), LinkState::TimerRecovery);
        assert!(shuttle(&mut u, &mut n, t1, false) >= 2);
        assert_eq!(u.state(), LinkState::Established);
        assert_eq!(n.state(), LinkState::Established);
        assert!(events(&mut u).is_empty());
    }

    #[test]
    fn silent_peer_brings_the_link_down() {
        let t0 = Instant::now();
        let (mut u, mut n) = established_pair(t0);
        let mut now = t0;
        let mut rounds = 0;
        while u.state() != LinkState::Released {
            now = u.poll_timeout().expect("a timer runs while the link is up");
            u.handle_timeout(now);
            shuttle(&mut u, &mut n, now, true);
            rounds += 1;
            assert!(rounds < 20);
        }
        // T203, then N200 polls and N200+1 SABMEs one T200 apart.
        assert_eq!(now - t0, Duration::from_secs(10 + 3 + 4));
        assert_eq!(events(&mut u), vec![LinkEvent::Released]);
    }

    #[test]
    fn establishment_collision_and_release() {
        let t0 = Instant::now();
        let (mut u, mut n) = pair();
        u.establish(t0);
        n.establish(t0);
        shuttle(&mut u, &mut n, t0, false);
        assert!(u.is_established() && n.is_established());
        events(&mut u);
        events(&mut n);
        u.release(t0);
        shuttle(&mut u, &mut n, t0, false);
        assert_eq!(events(&mut u), vec![LinkEvent::Released]);
        assert_eq!(events(&mut n), vec![LinkEvent::Released]);
        // A released link answers a polled command with DM, which makes the peer start over.
        let (mut u, mut n) = established_pair(t0);
        n.layer1(false, t0);
        n.layer1(true, t0);
        u.send(vec![1], t0);
        let t1 = t0 + Duration::from_secs(1);
        u.handle_timeout(t1);
        shuttle(&mut u, &mut n, t1, false);
        assert!(u.is_established() && n.is_established());
    }

    #[test]
    fn layer1_loss_releases_the_link() {
        let t0 = Instant::now();
        let (mut u, _n) = established_pair(t0);
        u.layer1(false, t0);
        assert_eq!(events(&mut u), vec![LinkEvent::Released]);
        assert!(!u.send(vec![1], t0));
        assert_eq!(u.poll_timeout(), None);
    }

    #[test]
    fn frames_for_other_addresses_are_ignored() {
        let t0 = Instant::now();
        let (mut u, _n) = pair();
        let sabme = Frame {
            address: Address::command(Side::Network, 0, 5),
            control: Control::Sabme { poll: true },
            info: vec![],
        };
        u.receive(&sabme.encode(), t0);
        assert_eq!(u.state(), LinkState::Released);
        assert_eq!(u.stats().discarded, 1);
    }

    fn control() -> impl Strategy<Value = Control> {
        let n = 0u8..128;
        prop_oneof![
            (n.clone(), n.clone(), any::<bool>()).prop_map(|(ns, nr, poll)| Control::I {
                ns,
                nr,
                poll
            }),
            (n.clone(), any::<bool>()).prop_map(|(nr, pf)| Control::Rr { nr, pf }),
            (n.clone(), any::<bool>()).prop_map(|(nr, pf)| Control::Rnr { nr, pf }),
            (n, any::<bool>()).prop_map(|(nr, pf)| Control::Rej { nr, pf }),
            any::<bool>().prop_map(|poll| Control::Sabme { poll }),
            any::<bool>().prop_map(|fin| Control::Ua { fin }),
            any::<bool>().prop_map(|fin| Control::Dm { fin }),
            any::<bool>().prop_map(|poll| Control::Disc { poll }),
            any::<bool>().prop_map(|poll| Control::Ui { poll }),
        ]
    }

    proptest! {
        #[test]
        fn frames_round_trip(
            sapi in 0u8..64,
            cr in any::<bool>(),
            tei in 0u8..128,
            control in control(),
            info in vec(any::<u8>(), 0..N201),
        ) {
            let info = match control {
                Control::I { .. } | Control::Ui { .. } => info,
                _ => vec![],
            };
            let address = Address { sapi, command_response: cr, tei };
            let frame = Frame { address, control, info };
            prop_assert_eq!(Frame::decode(&frame.encode()), Ok(frame));
        }

        #[test]
        fn decode_never_panics(bytes in vec(any::<u8>(), 0..300)) {
            if let Ok(frame) = Frame::decode(&bytes) {
                prop_assert_eq!(frame.encode(), bytes);
            }
        }

        #[test]
        fn link_survives_arbitrary_frames(
            frames in vec(vec(any::<u8>(), 0..8), 0..40),
        ) {
            let t0 = Instant::now();
            let (mut u, mut n) = established_pair(t0);
            for (i, f) in frames.iter().enumerate() {
                let now = t0 + Duration::from_millis(i as u64 * 300);
                u.receive(f, now);
                u.handle_timeout(now);
                shuttle(&mut u, &mut n, now, false);
            }
            prop_assert!(u.vs < 128 && u.va < 128 && u.vr < 128);
        }
    }
}
