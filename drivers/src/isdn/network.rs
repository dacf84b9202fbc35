//! The network side of the simulated line: the exchange's D channel (Q.931 network-side call
//! control over Q.921) and its B channels, driven by a model of the subscribers behind it.
//!
//! The subscriber model is a [`FarEnd`]: it is told of the calls the gateway places and decides
//! what happens to them (ringing, answer, busy, ...), places calls of its own towards the
//! gateway's numbers, and produces and consumes their audio as linear PCM. The trunk uses the
//! PSTN exchange model of [`crate::pstn`]; tests may script their own.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use crate::line::Cause;

use super::call::{CallEvent, CallId, CallTimers, SetupRequest};
use super::channels::{HuntOrder, InterfaceKind, Law};
use super::dchannel::DChannel;
use super::q921::LinkConfig;
use super::q931::PartyNumber;
use super::Side;

/// What the subscriber model does next to one of its calls.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FarEndAction {
    /// The called number exists and the call goes on.
    Proceeding { call: u32 },
    /// The called party rings.
    Alerting { call: u32 },
    /// Tones or an announcement play on the call's audio before any answer.
    Progress { call: u32 },
    /// The called party answered.
    Connect { call: u32 },
    /// The call ends (or is refused) with this Q.850 cause.
    Disconnect { call: u32, cause: u8 },
    /// A subscriber calls one of the gateway's numbers.
    Incoming {
        call: u32,
        calling: String,
        called: String,
    },
}

/// The subscribers behind the exchange. Call ids of calls the gateway places are chosen by the
/// network side (from [`OFFERED_CALL_IDS`] up); those of the model's own calls by the model.
pub trait FarEnd: Send {
    /// The gateway calls `called`.
    fn offer(&mut self, call: u32, calling: &str, called: &str, now: Instant);
    /// The gateway answered one of the model's calls.
    fn answered(&mut self, call: u32, now: Instant);
    /// The gateway opened in-band information (early media) on one of the model's calls that
    /// it has not answered. Models without callers who listen ignore it.
    fn inband(&mut self, _call: u32, _now: Instant) {}
    /// The gateway's side ended a call (any direction, any state).
    fn released(&mut self, call: u32, cause: u8, now: Instant);
    fn poll_action(&mut self) -> Option<FarEndAction>;
    /// One 20 ms frame of 8 kHz audio from the gateway.
    fn audio_in(&mut self, call: u32, pcm: &[i16], now: Instant);
    /// One 20 ms frame of 8 kHz audio towards the gateway, if the call has any.
    fn audio_out(&mut self, call: u32, now: Instant) -> Option<Vec<i16>>;
    fn poll_timeout(&self) -> Option<Instant>;
    fn handle_timeout(&mut self, now: Instant);
    /// A subscriber dials one of the gateway's numbers; returns the model's call id.
    fn dial_in(&mut self, from: &str, to: &str, now: Instant) -> u32;
    /// The far party of a call (by call id or number) answers / hangs up.
    fn answer(&mut self, call_or_party: &str, now: Instant) -> Result<(), String>;
    fn hangup(&mut self, call_or_party: &str, now: Instant) -> Result<(), String>;
}

impl FarEnd for super::pstn::Exchange {
    fn offer(&mut self, call: u32, calling: &str, called: &str, now: Instant) {
        super::pstn::Exchange::offer(self, call, calling, called, now)
    }
    fn answered(&mut self, call: u32, now: Instant) {
        super::pstn::Exchange::answered(self, call, now)
    }
    fn inband(&mut self, call: u32, now: Instant) {
        super::pstn::Exchange::inband(self, call, now)
    }
    fn released(&mut self, call: u32, cause: u8, now: Instant) {
        super::pstn::Exchange::released(self, call, cause, now)
    }
    fn poll_action(&mut self) -> Option<FarEndAction> {
        use super::pstn::ExchangeAction as A;
        super::pstn::Exchange::poll_action(self).map(|a| match a {
            A::Proceeding { call } => FarEndAction::Proceeding { call },
            A::Alerting { call } => FarEndAction::Alerting { call },
            A::Progress { call } => FarEndAction::Progress { call },
            A::Connect { call } => FarEndAction::Connect { call },
            A::Disconnect { call, cause } => FarEndAction::Disconnect { call, cause },
            A::Incoming {
                call,
                calling,
                called,
            } => FarEndAction::Incoming {
                call,
                calling,
                called,
            },
        })
    }
    fn audio_in(&mut self, call: u32, pcm: &[i16], now: Instant) {
        super::pstn::Exchange::audio_in(self, call, pcm, now)
    }
    fn audio_out(&mut self, call: u32, now: Instant) -> Option<Vec<i16>> {
        super::pstn::Exchange::audio_out(self, call, now)
    }
    fn poll_timeout(&self) -> Option<Instant> {
        super::pstn::Exchange::poll_timeout(self)
    }
    fn handle_timeout(&mut self, now: Instant) {
        super::pstn::Exchange::handle_timeout(self, now)
    }
    fn dial_in(&mut self, from: &str, to: &str, now: Instant) -> u32 {
        super::pstn::Exchange::dial_in(self, from, to, now)
    }
    fn answer(&mut self, call_or_party: &str, now: Instant) -> Result<(), String> {
        super::pstn::Exchange::answer(self, call_or_party, now)
    }
    fn hangup(&mut self, call_or_party: &str, now: Instant) -> Result<(), String> {
        super::pstn::Exchange::hangup(self, call_or_party, now)
    }
}

/// The first id the network side gives a call the gateway places, high enough to stay clear
/// of the ids a model numbers its own calls with.
pub const OFFERED_CALL_IDS: u32 = 0x4000_0000;

/// A B channel switched through (or released) at the network end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Switching {
    pub channel: u8,
    pub through: bool,
}

/// The exchange end of the line.
pub struct SimulatedNetwork {
    pub dchannel: DChannel,
    far: Box<dyn FarEnd>,
    law: Law,
    /// Call control's call -> the model's call, and back.
    to_far: BTreeMap<CallId, u32>,
    from_far: BTreeMap<u32, CallId>,
    /// Calls with audio through, by channel.
    through: BTreeMap<u8, CallId>,
    switching: VecDeque<Switching>,
    next_offer: u32,
    /// The model's call being dialled in, until its SETUP is placed.
    dialling: Option<u32>,
}

impl std::fmt::Debug for SimulatedNetwork {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimulatedNetwork")
            .field("dchannel", &self.dchannel)
            .field("calls", &self.to_far)
            .finish_non_exhaustive()
    }
}

impl SimulatedNetwork {
    pub fn new(
        kind: InterfaceKind,
        hunt: HuntOrder,
        link: LinkConfig,
        timers: CallTimers,
        far: Box<dyn FarEnd>,
    ) -> SimulatedNetwork {
        SimulatedNetwork {
            dchannel: DChannel::new(
                Side::Network,
                kind,
                hunt,
                link,
                timers,
                false,
                Duration::from_secs(5),
            ),
            far,
            law: kind.law(),
            to_far: BTreeMap::new(),
            from_far: BTreeMap::new(),
            through: BTreeMap::new(),
            switching: VecDeque::new(),
            next_offer: OFFERED_CALL_IDS,
            dialling: None,
        }
    }

    pub fn layer1(&mut self, up: bool, now: Instant) {
        self.dchannel.layer1(up, now);
        self.pump(now);
    }

    pub fn receive(&mut self, frame: &[u8], now: Instant) {
        self.dchannel.receive(frame, now);
        self.pump(now);
    }

    pub fn poll_frame(&mut self) -> Option<Vec<u8>> {
        self.dchannel.poll_frame()
    }

    pub fn poll_switching(&mut self) -> Option<Switching> {
        self.switching.pop_front()
    }

    /// The model's id of a call control call (for tests and traces).
    pub fn far_call(&self, call: CallId) -> Option<u32> {
        self.to_far.get(&call).copied()
    }

    /// A subscriber dials `to`; the exchange offers the call to the gateway.
    pub fn dial_in(&mut self, from: &str, to: &str, now: Instant) -> u32 {
        let far = self.far.dial_in(from, to, now);
        self.dialling = Some(far);
        self.pump(now);
        // A model that does not announce its own call with an Incoming action gets it placed
        // all the same.
        if self.dialling.take() == Some(far) && !self.from_far.contains_key(&far) {
            self.place(far, from, to, now);
            self.pump(now);
        }
        far
    }

    pub fn answer(&mut self, party: &str, now: Instant) -> Result<(), String> {
        let r = self.far.answer(party, now);
        self.pump(now);
        r
    }

    pub fn hangup(&mut self, party: &str, now: Instant) -> Result<(), String> {
        let r = self.far.hangup(party, now);
        self.pump(now);
        r
    }

    /// RESTART of the whole interface from the exchange.
    pub fn restart(&mut self, now: Instant) {
        self.dchannel.calls.restart(None, now);
        self.pump(now);
    }

    /// STATUS ENQUIRY from the exchange about the call on `channel`.
    pub fn status_enquiry(&mut self, channel: u8, now: Instant) {
        let call = self
            .dchannel
            .calls
            .calls()
            .find(|&(id, _)| self.dchannel.calls.channel(id) == Some(channel))
            .map(|(id, _)| id);
        if let Some(call) = call {
            self.dchannel.calls.status_enquiry(call, now);
            self.pump(now);
        }
    }

    /// The audio of every through-connected call for the tick at `now`, encoded for the line.
    pub fn produce_audio(&mut self, now: Instant) -> Vec<(u8, Vec<u8>)> {
        let mut out = Vec::new();
        for (&channel, call) in &self.through {
            if let Some(&far) = self.to_far.get(call) {
                if let Some(pcm) = self.far.audio_out(far, now) {
                    out.push((channel, self.law.encode(&pcm)));
                }
            }
        }
        out
    }

    /// A frame the line delivered from the gateway on `channel`.
    pub fn b_frame(&mut self, channel: u8, frame: &[u8], now: Instant) {
        let Some(far) = self.through.get(&channel).and_then(|c| self.to_far.get(c)) else {
            return;
        };
        let pcm = self.law.decode(frame);
        self.far.audio_in(*far, &pcm, now);
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        [self.dchannel.poll_timeout(), self.far.poll_timeout()]
            .into_iter()
            .flatten()
            .min()
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        self.dchannel.handle_timeout(now);
        self.pump(now);
        if self.far.poll_timeout().is_some_and(|t| t <= now) {
            self.far.handle_timeout(now);
        }
        self.pump(now);
    }

    /// Runs call control's events and the model's actions into each other until both are
    /// quiet. Returns whether anything happened.
    pub fn pump(&mut self, now: Instant) -> bool {
        let mut any = false;
        loop {
            self.dchannel.pump(now);
            let mut round = false;
            while let Some(e) = self.dchannel.calls.poll_event() {
                round = true;
                self.on_call_event(e, now);
            }
            while let Some(a) = self.far.poll_action() {
                round = true;
                self.on_action(a, now);
            }
            if !round {
                return any;
            }
            any = true;
        }
    }

    fn on_call_event(&mut self, event: CallEvent, now: Instant) {
        match event {
            CallEvent::Incoming {
                call,
                calling,
                called,
                ..
            } => {
                let far = self.next_offer;
                // Kept below 2^31, where the PSTN model's own ids start.
                self.next_offer = match far + 1 {
                    0x8000_0000.. => OFFERED_CALL_IDS,
                    next => next,
                };
                self.to_far.insert(call, far);
                self.from_far.insert(far, call);
                let digits = |n: Option<PartyNumber>| n.map(|n| n.digits).unwrap_or_default();
                self.far.offer(far, &digits(calling), &digits(called), now);
            }
            CallEvent::Connected { call } => {
                if let Some(&far) = self.to_far.get(&call) {
                    self.switch(call, true);
                    self.far.answered(far, now);
                }
            }
            CallEvent::Released { call, cause } => {
                self.switch(call, false);
                if let Some(far) = self.to_far.remove(&call) {
                    self.from_far.remove(&far);
                    self.far.released(far, cause.0, now);
                }
            }
            // The gateway opens the B channel before answering (early media): the exchange
            // connects the waiting caller to it, as a real one does on progress indicator 8.
            CallEvent::Alerting { call, inband: true }
            | CallEvent::Progress { call, inband: true } => {
                if let Some(&far) = self.to_far.get(&call) {
                    self.switch(call, true);
                    self.far.inband(far, now);
                }
            }
            CallEvent::Proceeding { .. }
            | CallEvent::Alerting { .. }
            | CallEvent::Progress { .. }
            | CallEvent::Restarted { .. }
            | CallEvent::RestartAcknowledged { .. }
            | CallEvent::RestartFailed => {}
        }
    }

    fn on_action(&mut self, action: FarEndAction, now: Instant) {
        let calls = &mut self.dchannel.calls;
        match action {
            FarEndAction::Incoming {
                call,
                calling,
                called,
            } => {
                if self.dialling == Some(call) {
                    self.dialling = None;
                }
                if !self.from_far.contains_key(&call) {
                    self.place(call, &calling, &called, now);
                }
            }
            FarEndAction::Proceeding { call } => {
                if let Some(&c) = self.from_far.get(&call) {
                    calls.proceeding(c, now);
                }
            }
            FarEndAction::Alerting { call } => {
                if let Some(&c) = self.from_far.get(&call) {
                    calls.alerting(c, false, now);
                }
            }
            FarEndAction::Progress { call } => {
                if let Some(&c) = self.from_far.get(&call) {
                    calls.progress(c, now);
                    self.switch(c, true);
                }
            }
            FarEndAction::Connect { call } => {
                if let Some(&c) = self.from_far.get(&call) {
                    calls.connect(c, now);
                    self.switch(c, true);
                }
            }
            FarEndAction::Disconnect { call, cause } => {
                if let Some(c) = self.from_far.remove(&call) {
                    self.to_far.remove(&c);
                    self.switch(c, false);
                    self.dchannel.calls.disconnect(c, Cause(cause), now);
                }
            }
        }
    }

    /// Offers the model's call to the gateway; refused at once when the interface is full or
    /// the link is down.
    fn place(&mut self, far: u32, calling: &str, called: &str, now: Instant) {
        let req = SetupRequest {
            calling: Some(PartyNumber::new(calling)),
            called: PartyNumber::new(called),
            channel: None,
            exclusive: true,
            display: None,
        };
        match self.dchannel.calls.setup(req, now) {
            Ok(call) => {
                self.to_far.insert(call, far);
                self.from_far.insert(far, call);
            }
            Err(cause) => self.far.released(far, cause.0, now),
        }
    }

    fn switch(&mut self, call: CallId, through: bool) {
        let Some(channel) = self.dchannel.calls.channel(call).or_else(|| {
            self.through
                .iter()
                .find(|(_, &c)| c == call)
                .map(|(&ch, _)| ch)
        }) else {
            return;
        };
        let was = self.through.get(&channel) == Some(&call);
        if through && !was {
            self.through.insert(channel, call);
            self.switching.push_back(Switching {
                channel,
                through: true,
            });
        } else if !through && was {
            self.through.remove(&channel);
            self.switching.push_back(Switching {
                channel,
                through: false,
            });
        }
    }
}
