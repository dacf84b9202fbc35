//! [`IsdnTrunk`]: an ISDN trunk as a [`Driver`]. The gateway's card is the user side (Q.931
//! user-side call control over Q.921), the simulated line joins it to the network side, and
//! the network side is the exchange's call control driven by the PSTN model.
//!
//! Time is the host's: every entry point first runs whatever fell due up to its `now`, one
//! deadline at a time in order (line ticks, frame arrivals, timers), so a host that calls late
//! sees the same sequence of events as one that called on time.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use crate::line::{
    AudioCodec, CallRef, Cause, Driver, DriverStatus, Fault, LineEvent, Party, Progress, Setup,
    SimCommand,
};

use super::call::{CallEvent, CallState, CallTimers, SetupRequest};
use super::channels::{HuntOrder, InterfaceKind};
use super::dchannel::{DChannel, LinkChange};
use super::line::{Direction, Line, LineConfig, LineStats};
use super::network::{FarEnd, SimulatedNetwork};
use super::pstn::{Exchange, ExchangeConfig};
use super::q921::{Control, Frame, LinkConfig, LinkState};
use super::q931::{Message, NumberingPlan, PartyNumber, TypeOfNumber};
use super::Side;

/// D-channel frames kept for [`IsdnTrunk::trace`].
const TRACE_LEN: usize = 1000;
/// Audio frames kept for a host that does not poll (a second of a full E1).
const AUDIO_QUEUE: usize = 1500;
/// Deadlines one call runs at most before returning (a safety net, not a limit in practice).
const MAX_STEPS: usize = 200_000;

/// Q.921 and Q.931 timers and counters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timers {
    pub link: LinkConfig,
    pub call: CallTimers,
    /// How long the gateway waits before trying to bring a failed link up again.
    pub relink: Duration,
}

impl Default for Timers {
    fn default() -> Timers {
        Timers {
            link: LinkConfig::default(),
            call: CallTimers::default(),
            relink: Duration::from_secs(5),
        }
    }
}

/// How the gateway writes the numbers of its SETUPs. A number starting with `+` is sent
/// without it as an international number whatever this says.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Numbering {
    pub number_type: TypeOfNumber,
    pub plan: NumberingPlan,
}

/// An ISDN trunk's configuration.
#[derive(Clone, Debug)]
pub struct IsdnTrunkConfig {
    pub name: String,
    pub interface: InterfaceKind,
    /// Where the gateway hunts for a channel for its calls (default: from the highest).
    pub hunt: HuntOrder,
    /// Where the simulated exchange hunts (default: from the lowest).
    pub network_hunt: HuntOrder,
    /// Whether the gateway's SETUP insists on its channel (else it is only preferred and the
    /// network may give the call another).
    pub exclusive: bool,
    pub numbering: Numbering,
    pub timers: Timers,
    pub line: LineConfig,
    /// Seeds the exchange's subscriber behaviour.
    pub seed: u64,
    pub exchange: ExchangeConfig,
}

impl IsdnTrunkConfig {
    pub fn new(name: &str, interface: InterfaceKind, exchange: ExchangeConfig) -> IsdnTrunkConfig {
        IsdnTrunkConfig {
            name: name.to_owned(),
            interface,
            hunt: HuntOrder::Highest,
            network_hunt: HuntOrder::Lowest,
            exclusive: false,
            numbering: Numbering::default(),
            timers: Timers::default(),
            line: LineConfig::default(),
            seed: 0,
            exchange,
        }
    }
}

/// One D-channel frame as it went on the line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TraceEntry {
    pub at: Instant,
    pub direction: Direction,
    /// The frame and the Q.931 message in it, e.g. `I ns=0 nr=0 SETUP cr=1 ch=31? to=100`;
    /// `(lost)` when the line dropped it.
    pub text: String,
}

#[derive(Clone, Copy, Debug)]
struct TrunkCall {
    outgoing: bool,
    /// The channel whose audio this call sends and receives, once switched through.
    through: Option<u8>,
    inband: bool,
}

/// An ISDN PRI or BRI trunk on a simulated line to a simulated exchange.
pub struct IsdnTrunk {
    name: String,
    kind: InterfaceKind,
    codec: AudioCodec,
    exclusive: bool,
    numbering: Numbering,
    user: DChannel,
    network: SimulatedNetwork,
    line: Line,
    calls: BTreeMap<CallRef, TrunkCall>,
    events: VecDeque<LineEvent>,
    audio: VecDeque<(CallRef, Vec<u8>)>,
    trace: VecDeque<TraceEntry>,
    last_fault: Option<String>,
}

impl std::fmt::Debug for IsdnTrunk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IsdnTrunk")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("calls", &self.calls.len())
            .finish_non_exhaustive()
    }
}

impl IsdnTrunk {
    /// A trunk to the PSTN model configured by `config.exchange`. The line starts at `now`
    /// (its 20 ms clock counts from there) and the gateway starts bringing the link up.
    pub fn new(config: IsdnTrunkConfig, now: Instant) -> IsdnTrunk {
        let exchange = Exchange::new(config.exchange.clone(), config.seed);
        IsdnTrunk::with_far_end(config, Box::new(exchange), now)
    }

    /// A trunk to another subscriber model (`config.exchange` is not used).
    pub fn with_far_end(config: IsdnTrunkConfig, far: Box<dyn FarEnd>, now: Instant) -> IsdnTrunk {
        let kind = config.interface;
        let mut trunk = IsdnTrunk {
            name: config.name,
            kind,
            codec: kind.law().codec(),
            exclusive: config.exclusive,
            numbering: config.numbering,
            user: DChannel::new(
                Side::User,
                kind,
                config.hunt,
                config.timers.link,
                config.timers.call,
                true,
                config.timers.relink,
            ),
            network: SimulatedNetwork::new(
                kind,
                config.network_hunt,
                config.timers.link,
                config.timers.call,
                far,
            ),
            line: Line::new(kind, config.line, now),
            calls: BTreeMap::new(),
            events: VecDeque::new(),
            audio: VecDeque::new(),
            trace: VecDeque::new(),
            last_fault: None,
        };
        trunk.user.start(now);
        trunk.pump(now);
        trunk
    }

    pub fn interface(&self) -> InterfaceKind {
        self.kind
    }

    /// The B channel of a call (once it has one).
    pub fn channel(&self, call: CallRef) -> Option<u8> {
        self.user.calls.channel(call)
    }

    /// The gateway's data link state.
    pub fn link_state(&self) -> LinkState {
        self.user.link.state()
    }

    pub fn line_stats(&self) -> LineStats {
        self.line.stats()
    }

    /// The last D-channel frames, oldest first.
    pub fn trace(&self) -> impl Iterator<Item = &TraceEntry> {
        self.trace.iter()
    }

    /// RESTART of the whole interface from the gateway (an operator's reset): its calls are
    /// released (cause 41) and the exchange clears its side.
    pub fn restart(&mut self, now: Instant) {
        self.advance(now);
        self.user.calls.restart(None, now);
        self.pump(now);
    }

    /// RESTART of the whole interface from the exchange.
    pub fn restart_from_network(&mut self, now: Instant) {
        self.advance(now);
        self.network.restart(now);
        self.pump(now);
    }

    /// STATUS ENQUIRY from the gateway about `call`.
    pub fn status_enquiry(&mut self, call: CallRef, now: Instant) {
        self.advance(now);
        self.user.calls.status_enquiry(call, now);
        self.pump(now);
    }

    /// STATUS ENQUIRY from the exchange about the call on `call`'s channel.
    pub fn status_enquiry_from_network(&mut self, call: CallRef, now: Instant) {
        self.advance(now);
        if let Some(channel) = self.user.calls.channel(call) {
            self.network.status_enquiry(channel, now);
        }
        self.pump(now);
    }

    fn party(&self, number: &str) -> PartyNumber {
        match number.strip_prefix('+') {
            Some(rest) => PartyNumber {
                number_type: TypeOfNumber::International,
                plan: NumberingPlan::Isdn,
                ..PartyNumber::new(rest)
            },
            None => PartyNumber {
                number_type: self.numbering.number_type,
                plan: self.numbering.plan,
                ..PartyNumber::new(number)
            },
        }
    }

    fn next_deadline(&self) -> Option<Instant> {
        [
            self.user.poll_timeout(),
            self.network.poll_timeout(),
            self.line.poll_timeout(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Runs every deadline up to `now`, each at its own instant.
    fn advance(&mut self, now: Instant) {
        for _ in 0..MAX_STEPS {
            match self.next_deadline() {
                Some(t) if t <= now => self.step(t),
                _ => break,
            }
        }
        self.pump(now);
    }

    fn step(&mut self, t: Instant) {
        if self.line.next_tick().is_some_and(|at| at <= t) {
            for (channel, frame) in self.network.produce_audio(t) {
                self.line.write_b(Direction::ToUser, channel, &frame);
            }
            self.line.tick(t);
            while let Some((direction, channel, frame)) = self.line.poll_b() {
                match direction {
                    Direction::ToUser => {
                        if let Some(call) = self.call_through(channel) {
                            if self.audio.len() >= AUDIO_QUEUE {
                                self.audio.pop_front();
                            }
                            self.audio.push_back((call, frame));
                        }
                    }
                    Direction::ToNetwork => self.network.b_frame(channel, &frame, t),
                }
            }
        }
        self.pump(t);
        if self.user.poll_timeout().is_some_and(|d| d <= t) {
            self.user.handle_timeout(t);
        }
        if self.network.poll_timeout().is_some_and(|d| d <= t) {
            self.network.handle_timeout(t);
        }
        self.pump(t);
    }

    /// Moves frames, messages and events between the layers and the line until all are quiet.
    fn pump(&mut self, now: Instant) {
        loop {
            let mut any = false;
            self.user.pump(now);
            while let Some(f) = self.user.poll_frame() {
                any = true;
                self.record(now, Direction::ToNetwork, &f);
                self.line.send_d(Direction::ToNetwork, f, now);
            }
            while let Some(f) = self.network.poll_frame() {
                any = true;
                self.record(now, Direction::ToUser, &f);
                self.line.send_d(Direction::ToUser, f, now);
            }
            while let Some((direction, f)) = self.line.poll_d(now) {
                any = true;
                match direction {
                    Direction::ToNetwork => self.network.receive(&f, now),
                    Direction::ToUser => self.user.receive(&f, now),
                }
            }
            while let Some(change) = self.user.poll_change() {
                any = true;
                let fault = match change {
                    LinkChange::Up => Fault::SignallingUp,
                    LinkChange::Down => {
                        self.last_fault = Some("signalling link lost".into());
                        Fault::SignallingDown
                    }
                };
                self.events.push_back(LineEvent::Fault(fault));
            }
            while let Some(e) = self.user.calls.poll_event() {
                any = true;
                self.on_call_event(e, now);
            }
            while let Some(s) = self.network.poll_switching() {
                any = true;
                self.line.switch(Side::Network, s.channel, s.through, now);
            }
            any |= self.network.pump(now);
            if !any {
                return;
            }
        }
    }

    fn record(&mut self, at: Instant, direction: Direction, bytes: &[u8]) {
        let mut text = match Frame::decode(bytes) {
            Ok(frame) => {
                let mut text = frame.to_string();
                if matches!(frame.control, Control::I { .. } | Control::Ui { .. }) {
                    match Message::decode(&frame.info) {
                        Ok(m) => text = format!("{text} {m}"),
                        Err(e) => text = format!("{text} ({e})"),
                    }
                }
                text
            }
            Err(e) => format!("({e})"),
        };
        if !self.line.layer1_up() || !self.line.d_channel_up() {
            text.push_str(" (lost)");
        }
        if self.trace.len() >= TRACE_LEN {
            self.trace.pop_front();
        }
        self.trace.push_back(TraceEntry {
            at,
            direction,
            text,
        });
    }

    fn call_through(&self, channel: u8) -> Option<CallRef> {
        self.calls
            .iter()
            .find(|(_, c)| c.through == Some(channel))
            .map(|(&id, _)| id)
    }

    fn switch_through(&mut self, call: CallRef, now: Instant) {
        let Some(channel) = self.user.calls.channel(call) else {
            return;
        };
        if let Some(c) = self.calls.get_mut(&call) {
            if c.through.is_none() {
                c.through = Some(channel);
                self.line.switch(Side::User, channel, true, now);
            }
        }
    }

    fn forget(&mut self, call: CallRef, now: Instant) -> bool {
        match self.calls.remove(&call) {
            Some(c) => {
                if let Some(channel) = c.through {
                    self.line.switch(Side::User, channel, false, now);
                }
                self.audio.retain(|(id, _)| *id != call);
                true
            }
            None => false,
        }
    }

    fn inband(&mut self, call: CallRef, now: Instant) {
        self.switch_through(call, now);
        if let Some(c) = self.calls.get_mut(&call) {
            if !c.inband {
                c.inband = true;
                self.events.push_back(LineEvent::Progress {
                    call,
                    progress: Progress::InbandInfo,
                });
            }
        }
    }

    fn on_call_event(&mut self, event: CallEvent, now: Instant) {
        let known = |trunk: &IsdnTrunk, call| trunk.calls.contains_key(&call);
        match event {
            CallEvent::Incoming {
                call,
                calling,
                called,
                display,
                ..
            } => {
                self.calls.insert(
                    call,
                    TrunkCall {
                        outgoing: false,
                        through: None,
                        inband: false,
                    },
                );
                // The SETUP was complete: tell the exchange so before the switch decides.
                self.user.calls.proceeding(call, now);
                self.events.push_back(LineEvent::Incoming {
                    call,
                    calling: Party {
                        number: calling.map(|n| n.digits).unwrap_or_default(),
                        name: display,
                    },
                    called: Party::number(&called.map(|n| n.digits).unwrap_or_default()),
                    codec: self.codec,
                    via: None,
                });
            }
            CallEvent::Proceeding { call } if known(self, call) => {
                self.events.push_back(LineEvent::Progress {
                    call,
                    progress: Progress::Proceeding,
                });
            }
            CallEvent::Alerting { call, inband } if known(self, call) => {
                self.events.push_back(LineEvent::Progress {
                    call,
                    progress: Progress::Alerting,
                });
                if inband {
                    self.inband(call, now);
                }
            }
            CallEvent::Progress { call, inband: true } if known(self, call) => {
                self.inband(call, now);
            }
            CallEvent::Connected { call } if self.calls.get(&call).is_some_and(|c| c.outgoing) => {
                self.switch_through(call, now);
                self.events.push_back(LineEvent::Answered {
                    call,
                    codec: self.codec,
                });
            }
            CallEvent::Released { call, cause } => {
                let known = self.forget(call, now);
                if known {
                    self.events.push_back(LineEvent::Released { call, cause });
                }
            }
            CallEvent::Restarted { channels } => {
                self.last_fault =
                    Some(format!("the network restarted {} channels", channels.len()));
            }
            CallEvent::RestartFailed => {
                self.last_fault = Some("RESTART not acknowledged".into());
            }
            _ => {}
        }
    }
}

impl Driver for IsdnTrunk {
    fn signalling_log(&self, last: usize) -> Vec<String> {
        let skip = self.trace.len().saturating_sub(last);
        self.trace
            .iter()
            .skip(skip)
            .map(|e| format!("{:?} {}", e.direction, e.text))
            .collect()
    }

    fn name(&self) -> &str {
        &self.name
    }

    fn numbers(&self) -> Vec<String> {
        Vec::new()
    }

    fn setup(&mut self, setup: Setup, now: Instant) -> Result<CallRef, Cause> {
        self.advance(now);
        if !self.line.layer1_up() || !(self.user.is_up() || self.user.is_establishing()) {
            return Err(Cause::NETWORK_OUT_OF_ORDER);
        }
        let req = SetupRequest {
            calling: (!setup.calling.number.is_empty()).then(|| self.party(&setup.calling.number)),
            called: self.party(&setup.called.number),
            channel: None,
            exclusive: self.exclusive,
            display: None,
        };
        let call = self.user.calls.setup(req, now)?;
        self.calls.insert(
            call,
            TrunkCall {
                outgoing: true,
                through: None,
                inband: false,
            },
        );
        self.pump(now);
        Ok(call)
    }

    fn alert(&mut self, call: CallRef, now: Instant) {
        self.advance(now);
        self.user.calls.alerting(call, false, now);
        self.pump(now);
    }

    fn early_media(&mut self, call: CallRef, now: Instant) {
        self.advance(now);
        if self.calls.get(&call).is_some_and(|c| !c.outgoing) {
            // ALERTING with progress indicator 8 if the call has not rung yet, else PROGRESS
            // with it (Q.931 5.2.6); the B channel is switched through both ways.
            match self.user.calls.state(call) {
                Some(CallState::CallReceived) => self.user.calls.progress(call, now),
                _ => self.user.calls.alerting(call, true, now),
            }
            self.switch_through(call, now);
        }
        self.pump(now);
    }

    fn answer(&mut self, call: CallRef, now: Instant) {
        self.advance(now);
        if self.calls.get(&call).is_some_and(|c| !c.outgoing) {
            self.user.calls.connect(call, now);
            self.switch_through(call, now);
        }
        self.pump(now);
    }

    fn release(&mut self, call: CallRef, cause: Cause, now: Instant) {
        self.advance(now);
        self.forget(call, now);
        self.user.calls.disconnect(call, cause, now);
        self.pump(now);
    }

    fn send_audio(&mut self, call: CallRef, frame: &[u8], now: Instant) {
        self.advance(now);
        if let Some(channel) = self.calls.get(&call).and_then(|c| c.through) {
            self.line.write_b(Direction::ToNetwork, channel, frame);
        }
    }

    fn poll_event(&mut self) -> Option<LineEvent> {
        self.events.pop_front()
    }

    fn poll_audio(&mut self) -> Option<(CallRef, Vec<u8>)> {
        self.audio.pop_front()
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.next_deadline()
    }

    fn handle_timeout(&mut self, now: Instant) {
        self.advance(now);
    }

    fn status(&self) -> DriverStatus {
        let channels = self.user.calls.channels();
        let mut detail = format!(
            "layer 1 {}, D channel {}, Q.921 {} (TEI {}), {} calls",
            if self.line.layer1_up() { "up" } else { "down" },
            if self.line.d_channel_up() {
                "connected"
            } else {
                "cut"
            },
            self.user.link.state(),
            self.user.link.tei(),
            self.calls.len(),
        );
        if let Some(fault) = &self.last_fault {
            detail.push_str(&format!(", last fault: {fault}"));
        }
        DriverStatus {
            kind: self.kind.driver_kind(),
            up: self.line.layer1_up() && self.user.is_up(),
            channels_busy: channels.busy(),
            channels_total: channels.total(),
            detail,
        }
    }

    fn simulate(&mut self, command: SimCommand, now: Instant) -> Result<(), String> {
        self.advance(now);
        let result = match command {
            SimCommand::Dial { from, to } => {
                self.network.dial_in(&from, &to, now);
                Ok(())
            }
            SimCommand::Answer { party } => self.network.answer(&party, now),
            SimCommand::Hangup { party } => self.network.hangup(&party, now),
            SimCommand::Layer1 { up } => {
                if self.line.layer1_up() != up {
                    self.line.set_layer1(up, now);
                    if !up {
                        self.last_fault = Some("layer 1 lost".into());
                    }
                    self.events.push_back(LineEvent::Fault(if up {
                        Fault::Layer1Up
                    } else {
                        Fault::Layer1Down
                    }));
                    self.user.layer1(up, now);
                    self.network.layer1(up, now);
                }
                Ok(())
            }
            SimCommand::Signalling { up } => {
                self.line.set_d_channel(up);
                if !up {
                    self.last_fault = Some("D channel cut".into());
                }
                Ok(())
            }
            SimCommand::Unit { .. } | SimCommand::InRange { .. } => {
                Err("an ISDN trunk has no units or handsets".into())
            }
        };
        self.pump(now);
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::isdn::network::FarEndAction;
    use std::sync::{Arc, Mutex};

    /// A subscriber model that answers "100" at once with a 1 kHz tone, is busy on "17",
    /// and records what it hears.
    #[derive(Default)]
    struct Scripted {
        actions: VecDeque<FarEndAction>,
        heard: Arc<Mutex<Vec<i16>>>,
        phase: u32,
        next: u32,
    }

    impl FarEnd for Scripted {
        fn offer(&mut self, call: u32, _calling: &str, called: &str, _now: Instant) {
            self.actions.push_back(FarEndAction::Proceeding { call });
            match called {
                "17" => self
                    .actions
                    .push_back(FarEndAction::Disconnect { call, cause: 17 }),
                _ => {
                    self.actions.push_back(FarEndAction::Alerting { call });
                    self.actions.push_back(FarEndAction::Connect { call });
                }
            }
        }
        fn answered(&mut self, _call: u32, _now: Instant) {}
        fn released(&mut self, _call: u32, _cause: u8, _now: Instant) {}
        fn poll_action(&mut self) -> Option<FarEndAction> {
            self.actions.pop_front()
        }
        fn audio_in(&mut self, _call: u32, pcm: &[i16], _now: Instant) {
            self.heard.lock().unwrap().extend_from_slice(pcm);
        }
        fn audio_out(&mut self, _call: u32, _now: Instant) -> Option<Vec<i16>> {
            let frame = (0..160)
                .map(|i| {
                    let n = f64::from(self.phase + i);
                    (8000.0 * (2.0 * std::f64::consts::PI * 1000.0 * n / 8000.0).sin()) as i16
                })
                .collect();
            self.phase += 160;
            Some(frame)
        }
        fn poll_timeout(&self) -> Option<Instant> {
            None
        }
        fn handle_timeout(&mut self, _now: Instant) {}
        fn dial_in(&mut self, from: &str, to: &str, _now: Instant) -> u32 {
            self.next += 1;
            self.actions.push_back(FarEndAction::Incoming {
                call: self.next,
                calling: from.into(),
                called: to.into(),
            });
            self.next
        }
        fn answer(&mut self, _party: &str, _now: Instant) -> Result<(), String> {
            Ok(())
        }
        fn hangup(&mut self, party: &str, _now: Instant) -> Result<(), String> {
            let call = party.parse().map_err(|_| "no such call".to_string())?;
            self.actions
                .push_back(FarEndAction::Disconnect { call, cause: 16 });
            Ok(())
        }
    }

    fn trunk(kind: InterfaceKind) -> (IsdnTrunk, Arc<Mutex<Vec<i16>>>, Instant) {
        let t0 = Instant::now();
        let far = Scripted::default();
        let heard = far.heard.clone();
        let config = IsdnTrunkConfig::new("pri", kind, ExchangeConfig::default());
        let mut trunk = IsdnTrunk::with_far_end(config, Box::new(far), t0);
        trunk.handle_timeout(t0 + Duration::from_millis(50));
        (trunk, heard, t0)
    }

    fn events(t: &mut IsdnTrunk) -> Vec<LineEvent> {
        std::iter::from_fn(|| t.poll_event()).collect()
    }

    fn setup(called: &str) -> Setup {
        Setup {
            calling: Party::number("301"),
            called: Party::number(called),
            codecs: vec![AudioCodec::Pcma],
        }
    }

    #[test]
    fn link_comes_up_and_a_call_is_answered_with_audio() {
        let (mut t, heard, t0) = trunk(InterfaceKind::E1);
        assert_eq!(events(&mut t), vec![LineEvent::Fault(Fault::SignallingUp)]);
        assert!(t.status().up);
        let now = t0 + Duration::from_millis(100);
        let call = t.setup(setup("100"), now).unwrap();
        t.handle_timeout(now + Duration::from_millis(100));
        assert_eq!(
            events(&mut t),
            vec![
                LineEvent::Progress {
                    call,
                    progress: Progress::Proceeding
                },
                LineEvent::Progress {
                    call,
                    progress: Progress::Alerting
                },
                LineEvent::Answered {
                    call,
                    codec: AudioCodec::Pcma
                },
            ]
        );
        assert_eq!(t.channel(call), Some(31));
        let mut now = now + Duration::from_millis(100);
        for _ in 0..10 {
            t.send_audio(call, &[0x2A; 160], now);
            now += Duration::from_millis(20);
            t.handle_timeout(now);
        }
        let frames: Vec<_> = std::iter::from_fn(|| t.poll_audio()).collect();
        assert!(frames.len() >= 10, "{}", frames.len());
        assert!(frames.iter().all(|(c, f)| *c == call && f.len() == 160));
        assert!(heard.lock().unwrap().len() >= 1600);
        t.release(call, Cause::NORMAL, now);
        t.handle_timeout(now + Duration::from_millis(100));
        assert!(events(&mut t).is_empty());
        assert_eq!(t.status().channels_busy, 0);
    }

    #[test]
    fn busy_and_inward_calls() {
        let (mut t, _heard, t0) = trunk(InterfaceKind::Bri);
        events(&mut t);
        let now = t0 + Duration::from_millis(100);
        let call = t.setup(setup("17"), now).unwrap();
        t.handle_timeout(now + Duration::from_millis(100));
        let ev = events(&mut t);
        assert_eq!(
            ev.last(),
            Some(&LineEvent::Released {
                call,
                cause: Cause::USER_BUSY
            })
        );
        t.simulate(
            SimCommand::Dial {
                from: "555".into(),
                to: "20".into(),
            },
            now + Duration::from_millis(200),
        )
        .unwrap();
        t.handle_timeout(now + Duration::from_millis(300));
        let ev = events(&mut t);
        let LineEvent::Incoming {
            call,
            calling,
            called,
            codec,
            via,
        } = &ev[0]
        else {
            panic!("{ev:?}");
        };
        assert_eq!(
            (calling.number.as_str(), called.number.as_str(), *codec, via),
            ("555", "20", AudioCodec::Pcma, &None)
        );
        let call = *call;
        t.alert(call, now + Duration::from_millis(300));
        t.answer(call, now + Duration::from_millis(400));
        t.handle_timeout(now + Duration::from_millis(500));
        assert!(events(&mut t).is_empty());
        t.simulate(
            SimCommand::Hangup { party: "1".into() },
            now + Duration::from_millis(600),
        )
        .unwrap();
        t.handle_timeout(now + Duration::from_millis(700));
        assert_eq!(
            events(&mut t),
            vec![LineEvent::Released {
                call,
                cause: Cause::NORMAL
            }]
        );
    }
}
