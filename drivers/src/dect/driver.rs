//! The DECT driver: calls between the switch and simulated handsets through simulated base
//! stations, in virtual time.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use super::audio::CallAudio;
use super::clock::{BaseClock, Prng, AIR_FRAME_NS};
use super::config::{
    format_ipui, parse_ipui, parse_rfpi, BaseConfig, DectConfig, DectConfigError, HandsetConfig,
};
use crate::line::{
    AudioCodec, CallRef, Cause, Driver, DriverStatus, Fault, LineEvent, Party, Progress, Setup,
    SimCommand,
};

/// Shortest and longest time from `setup` to the handset ringing: paging on the broadcast
/// channel (the handset listens every 160 ms at worst when idle), bearer setup and the
/// CC-SETUP / CC-ALERTING exchange.
pub const PAGING_MIN_MS: u64 = 40;
pub const PAGING_MAX_MS: u64 = 200;

/// How long a call survives a handset out of range before the base gives it up. Real bases
/// try bearer handover and wait seconds; half a second keeps tests short and still lets a
/// brief fade pass without losing the call.
pub const LINK_TIMEOUT_MS: u64 = 500;

/// Air frames a late host may still catch up on; older ones are skipped, as a real base's
/// buffers would overflow and drop them.
pub const MAX_CATCHUP_AIR_FRAMES: u64 = 50;

/// Frames the driver keeps for a host that does not poll its audio: ten seconds of one call.
pub const MAX_QUEUED_FRAMES: usize = 500;

/// Largest initial phase of a base's air-frame clock: anything within one air frame.
const MAX_PHASE_NS: i64 = AIR_FRAME_NS as i64 - 1;

const MAX_DIALLED_DIGITS: usize = 32;

struct Base {
    config: BaseConfig,
    up: bool,
    clock: BaseClock,
}

struct Handset {
    config: HandsetConfig,
    ipui: u64,
    base: usize,
    in_range: bool,
}

enum CallState {
    /// Switch to handset: the base pages it; it rings at `until`.
    Paging {
        until: Instant,
    },
    /// Switch to handset: it rings, answering by itself at `answer_at`.
    Ringing {
        answer_at: Option<Instant>,
    },
    /// Handset to switch: dialled, the switch has not alerted yet.
    Dialled,
    /// Handset to switch: the switch alerted, the handset plays ringback.
    Ringback,
    Connected(Box<CallAudio>),
}

struct Call {
    handset: usize,
    base: usize,
    codec: AudioCodec,
    state: CallState,
    /// When the call is given up because its handset went out of range.
    link_lost_at: Option<Instant>,
}

/// DECT base stations with their subscribed handsets, simulated in virtual time.
pub struct DectDriver {
    name: String,
    bases: Vec<Base>,
    handsets: Vec<Handset>,
    calls: BTreeMap<CallRef, Call>,
    next_ref: CallRef,
    events: VecDeque<LineEvent>,
    audio: VecDeque<(CallRef, Vec<u8>)>,
    rng: Prng,
}

fn after(now: Instant, ms: u64) -> Instant {
    now.checked_add(Duration::from_millis(ms)).unwrap_or(now)
}

fn not_modelled() -> String {
    "not modelled by the DECT driver".to_owned()
}

fn base_clock(rng: &mut Prng, now: Instant, ppm: i32) -> BaseClock {
    let phase = rng.range(0, MAX_PHASE_NS).unsigned_abs();
    BaseClock::new(
        now.checked_add(Duration::from_nanos(phase)).unwrap_or(now),
        ppm,
    )
}

impl DectDriver {
    /// Builds the driver with all bases up and all handsets in range; base clocks start at
    /// `now` (each with a phase within one air frame drawn from the seed).
    pub fn new(config: DectConfig, now: Instant) -> Result<DectDriver, DectConfigError> {
        config.validate()?;
        let mut rng = Prng::new(config.seed);
        let mut bases = Vec::with_capacity(config.bases.len());
        for base in config.bases {
            let ppm = match base.clock_ppm {
                Some(ppm) => ppm,
                None => rng.range(-50, 50) as i32,
            };
            bases.push(Base {
                clock: base_clock(&mut rng, now, ppm),
                config: base,
                up: true,
            });
        }
        let mut handsets = Vec::with_capacity(config.handsets.len());
        for handset in config.handsets {
            // Validation guarantees both lookups; a failure would be a bug, so skip the
            // handset rather than panic.
            let (Some(ipui), Some(base)) = (
                parse_ipui(&handset.ipui),
                bases.iter().position(|b| b.config.name == handset.base),
            ) else {
                continue;
            };
            handsets.push(Handset {
                config: handset,
                ipui,
                base,
                in_range: true,
            });
        }
        Ok(DectDriver {
            name: config.name,
            bases,
            handsets,
            calls: BTreeMap::new(),
            next_ref: 1,
            events: VecDeque::new(),
            audio: VecDeque::new(),
            rng,
        })
    }

    /// A handset by its number or its IPUI (either spelling).
    fn find_handset(&self, party: &str) -> Option<usize> {
        if let Some(i) = self.handsets.iter().position(|h| h.config.number == party) {
            return Some(i);
        }
        let ipui = parse_ipui(party)?;
        self.handsets.iter().position(|h| h.ipui == ipui)
    }

    fn find_base(&self, name: &str) -> Option<usize> {
        if let Some(i) = self.bases.iter().position(|b| b.config.name == name) {
            return Some(i);
        }
        let rfpi = parse_rfpi(name)?;
        self.bases
            .iter()
            .position(|b| parse_rfpi(&b.config.rfpi) == Some(rfpi))
    }

    fn call_of(&self, handset: usize) -> Option<CallRef> {
        self.calls
            .iter()
            .find(|(_, c)| c.handset == handset)
            .map(|(r, _)| *r)
    }

    fn busy_channels(&self, base: usize) -> u32 {
        self.calls.values().filter(|c| c.base == base).count() as u32
    }

    fn allocate_ref(&mut self) -> CallRef {
        // Refs move on rather than being reused at once, so that a late frame or event of an
        // ended call cannot be mistaken for the next one's. Calls are bounded by the
        // channels, so a free ref is always found.
        loop {
            let r = self.next_ref;
            self.next_ref = self.next_ref.checked_add(1).unwrap_or(1);
            if !self.calls.contains_key(&r) {
                return r;
            }
        }
    }

    /// The call is over on the line's side: tell the switch.
    fn end_call(&mut self, call: CallRef, cause: Cause) {
        self.drop_call(call);
        self.events.push_back(LineEvent::Released { call, cause });
    }

    fn drop_call(&mut self, call: CallRef) {
        if self.calls.remove(&call).is_some() {
            self.audio.retain(|(r, _)| *r != call);
        }
    }

    fn connect(&mut self, call: CallRef, at: Instant) {
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        let Some(base) = self.bases.get(c.base) else {
            return;
        };
        let Some(handset) = self.handsets.get(c.handset) else {
            return;
        };
        let next_air = base.clock.frame_after(at);
        c.state = CallState::Connected(Box::new(CallAudio::new(
            c.codec,
            handset.config.audio,
            next_air,
        )));
    }

    /// Brings every call up to `now`: timers, then the air frames due.
    fn advance(&mut self, now: Instant) {
        let refs: Vec<CallRef> = self.calls.keys().copied().collect();
        for call in refs {
            self.advance_call(call, now);
        }
    }

    fn advance_call(&mut self, call: CallRef, now: Instant) {
        // Each pass moves the call at most one state on; a handful of passes covers paging,
        // ringing and the answer falling due in one late step.
        for _ in 0..4 {
            let Some(c) = self.calls.get_mut(&call) else {
                return;
            };
            let Some(handset) = self.handsets.get(c.handset) else {
                return;
            };
            if c.link_lost_at.is_some_and(|t| t <= now) {
                self.end_call(call, Cause::TEMPORARY_FAILURE);
                return;
            }
            match &mut c.state {
                CallState::Paging { until } if *until <= now => {
                    if !handset.in_range {
                        // No answer to the paging: the handset left while it was paged.
                        self.end_call(call, Cause::SUBSCRIBER_ABSENT);
                        return;
                    }
                    let rang = *until;
                    c.state = CallState::Ringing {
                        answer_at: handset
                            .config
                            .auto_answer
                            .map(|ms| after(rang, u64::from(ms))),
                    };
                    self.events.push_back(LineEvent::Progress {
                        call,
                        progress: Progress::Alerting,
                    });
                }
                CallState::Ringing {
                    answer_at: Some(at),
                } if *at <= now && handset.in_range => {
                    let (at, codec) = (*at, c.codec);
                    self.connect(call, at);
                    self.events.push_back(LineEvent::Answered { call, codec });
                }
                CallState::Connected(audio) => {
                    let Some(base) = self.bases.get(c.base) else {
                        return;
                    };
                    let due = base.clock.frame_after(now);
                    if due > audio.next_air.saturating_add(MAX_CATCHUP_AIR_FRAMES) {
                        audio.next_air = due - MAX_CATCHUP_AIR_FRAMES;
                    }
                    while audio.next_air < due {
                        audio.next_air += 1;
                        if let Some(frame) = audio.air_frame(handset.in_range) {
                            if self.audio.len() >= MAX_QUEUED_FRAMES {
                                self.audio.pop_front();
                            }
                            self.audio.push_back((call, frame));
                        }
                    }
                    return;
                }
                _ => return,
            }
        }
    }

    /// The next instant a call needs the driver, if any.
    fn call_deadline(&self, call: &Call) -> Option<Instant> {
        let in_range = self.handsets.get(call.handset).is_some_and(|h| h.in_range);
        let state = match &call.state {
            CallState::Paging { until } => Some(*until),
            // An out-of-range handset cannot answer; its deadline waits for it to return.
            CallState::Ringing { answer_at } if in_range => *answer_at,
            CallState::Connected(audio) => self
                .bases
                .get(call.base)
                .and_then(|b| b.clock.frame_time(audio.next_air)),
            _ => None,
        };
        match (state, call.link_lost_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn dial(&mut self, from: &str, to: &str) -> Result<(), String> {
        let h = self
            .find_handset(from)
            .ok_or_else(|| format!("no DECT handset {from:?}"))?;
        if to.is_empty()
            || to.len() > MAX_DIALLED_DIGITS
            || !to
                .bytes()
                .all(|b| b.is_ascii_digit() || matches!(b, b'*' | b'#' | b'+'))
        {
            return Err(format!("cannot dial {to:?}: digits, '*', '#' or '+' only"));
        }
        let (base_index, handset_number, handset_name, handset_wideband, in_range) = {
            let handset = &self.handsets[h];
            (
                handset.base,
                handset.config.number.clone(),
                handset.config.name.clone(),
                handset.config.wideband,
                handset.in_range,
            )
        };
        let Some(base) = self.bases.get(base_index) else {
            return Err(format!("no base for handset {from:?}"));
        };
        if !base.up {
            return Err(format!(
                "handset {handset_number}: its base {} is down",
                base.config.name
            ));
        }
        if !in_range {
            return Err(format!("handset {handset_number} is out of range"));
        }
        if self.call_of(h).is_some() {
            return Err(format!("handset {handset_number} is already in a call"));
        }
        if self.busy_channels(base_index) >= base.config.channels {
            return Err(format!(
                "base {}: all {} voice channels busy",
                base.config.name, base.config.channels
            ));
        }
        let codec = if base.config.wideband && handset_wideband {
            AudioCodec::G722
        } else {
            AudioCodec::G726_32
        };
        let call = self.allocate_ref();
        self.calls.insert(
            call,
            Call {
                handset: h,
                base: base_index,
                codec,
                state: CallState::Dialled,
                link_lost_at: None,
            },
        );
        self.events.push_back(LineEvent::Incoming {
            call,
            calling: Party {
                number: handset_number.clone(),
                name: (!handset_name.is_empty()).then_some(handset_name),
            },
            called: Party::number(to),
            codec,
            via: Some(handset_number),
        });
        Ok(())
    }

    fn handset_answers(&mut self, party: &str, now: Instant) -> Result<(), String> {
        let h = self
            .find_handset(party)
            .ok_or_else(|| format!("no DECT handset {party:?}"))?;
        if !self.handsets[h].in_range {
            return Err(format!("handset {party} is out of range"));
        }
        let call = self
            .call_of(h)
            .ok_or_else(|| format!("handset {party} has no call"))?;
        let Some(c) = self.calls.get(&call) else {
            return Err(format!("handset {party} has no call"));
        };
        if !matches!(c.state, CallState::Ringing { .. }) {
            return Err(format!("handset {party} is not ringing"));
        }
        let codec = c.codec;
        self.connect(call, now);
        self.events.push_back(LineEvent::Answered { call, codec });
        Ok(())
    }

    fn handset_hangs_up(&mut self, party: &str) -> Result<(), String> {
        let h = self
            .find_handset(party)
            .ok_or_else(|| format!("no DECT handset {party:?}"))?;
        if !self.handsets[h].in_range {
            // Its release cannot reach the base; the radio link timeout ends the call.
            return Err(format!("handset {party} is out of range"));
        }
        let call = self
            .call_of(h)
            .ok_or_else(|| format!("handset {party} has no call"))?;
        let cause = match self.calls.get(&call).map(|c| &c.state) {
            Some(CallState::Paging { .. }) | None => {
                return Err(format!("handset {party} has not been reached yet"));
            }
            // Declining a ringing call is a rejection, not the end of a conversation.
            Some(CallState::Ringing { .. }) => Cause::CALL_REJECTED,
            Some(_) => Cause::NORMAL,
        };
        self.end_call(call, cause);
        Ok(())
    }

    fn set_unit(&mut self, name: &str, up: bool, now: Instant) -> Result<(), String> {
        let b = self
            .find_base(name)
            .ok_or_else(|| format!("no DECT base {name:?}"))?;
        if self.bases[b].up == up {
            return Ok(());
        }
        let unit = self.bases[b].config.name.clone();
        if up {
            // A restarted base starts a new frame clock, with a new phase.
            let ppm = self.bases[b].clock.ppm();
            self.bases[b].clock = base_clock(&mut self.rng, now, ppm);
            self.bases[b].up = true;
            self.events.push_back(LineEvent::Fault(Fault::UnitUp(unit)));
        } else {
            self.bases[b].up = false;
            self.events
                .push_back(LineEvent::Fault(Fault::UnitDown(unit)));
            let gone: Vec<CallRef> = self
                .calls
                .iter()
                .filter(|(_, c)| c.base == b)
                .map(|(r, _)| *r)
                .collect();
            for call in gone {
                self.end_call(call, Cause::NETWORK_OUT_OF_ORDER);
            }
        }
        Ok(())
    }

    fn set_in_range(&mut self, party: &str, in_range: bool, now: Instant) -> Result<(), String> {
        let h = self
            .find_handset(party)
            .ok_or_else(|| format!("no DECT handset {party:?}"))?;
        self.handsets[h].in_range = in_range;
        if let Some(call) = self.call_of(h) {
            if let Some(c) = self.calls.get_mut(&call) {
                // An auto-answer that fell due while the handset was away happens now that
                // it is back, not in the past.
                if let CallState::Ringing {
                    answer_at: Some(at),
                } = &mut c.state
                {
                    if in_range && *at < now {
                        *at = now;
                    }
                }
                c.link_lost_at = match (&c.state, in_range) {
                    (_, true) => None,
                    // Paging has no link yet; its end finds the handset gone (cause 20).
                    (CallState::Paging { .. }, false) => None,
                    (_, false) => c.link_lost_at.or_else(|| Some(after(now, LINK_TIMEOUT_MS))),
                };
            }
        }
        Ok(())
    }

    /// Frames from the switch waiting in a call's jitter buffer (tests and diagnostics).
    pub fn jitter_depth(&self, call: CallRef) -> Option<usize> {
        match &self.calls.get(&call)?.state {
            CallState::Connected(audio) => Some(audio.jitter_len()),
            _ => None,
        }
    }

    /// A base's clock error in ppm, as configured or drawn from the seed.
    pub fn base_clock_ppm(&self, base: &str) -> Option<i32> {
        let b = self.find_base(base)?;
        Some(self.bases[b].clock.ppm())
    }
}

impl Driver for DectDriver {
    fn name(&self) -> &str {
        &self.name
    }

    fn numbers(&self) -> Vec<String> {
        self.handsets
            .iter()
            .map(|h| h.config.number.clone())
            .collect()
    }

    fn setup(&mut self, setup: Setup, now: Instant) -> Result<CallRef, Cause> {
        self.advance(now);
        let h = self
            .handsets
            .iter()
            .position(|h| h.config.number == setup.called.number)
            .ok_or(Cause::UNALLOCATED)?;
        let handset = &self.handsets[h];
        let base_index = handset.base;
        let base = self.bases.get(base_index).ok_or(Cause::UNALLOCATED)?;
        if !base.up {
            return Err(Cause::NETWORK_OUT_OF_ORDER);
        }
        // The base knows which of its handsets are locked to it; one that is not would never
        // answer the paging, so the call is refused at once rather than after a timeout.
        if !handset.in_range {
            return Err(Cause::SUBSCRIBER_ABSENT);
        }
        // One call per handset: no call waiting. The base knows at once.
        if self.call_of(h).is_some() {
            return Err(Cause::USER_BUSY);
        }
        if self.busy_channels(base_index) >= base.config.channels {
            return Err(Cause::NO_CIRCUIT);
        }
        // The switch can always take either DECT codec (the gateway transcodes), so its list
        // only decides whether wideband is wanted; without G.722 in it the call is
        // narrowband, whatever else the list holds.
        let codec = if base.config.wideband
            && handset.config.wideband
            && setup.codecs.contains(&AudioCodec::G722)
        {
            AudioCodec::G722
        } else {
            AudioCodec::G726_32
        };
        let paging = self.rng.range(PAGING_MIN_MS as i64, PAGING_MAX_MS as i64);
        let call = self.allocate_ref();
        self.calls.insert(
            call,
            Call {
                handset: h,
                base: base_index,
                codec,
                state: CallState::Paging {
                    until: after(now, paging.unsigned_abs()),
                },
                link_lost_at: None,
            },
        );
        self.events.push_back(LineEvent::Progress {
            call,
            progress: Progress::Proceeding,
        });
        Ok(call)
    }

    fn alert(&mut self, call: CallRef, now: Instant) {
        self.advance(now);
        if let Some(c) = self.calls.get_mut(&call) {
            if matches!(c.state, CallState::Dialled) {
                c.state = CallState::Ringback;
            }
        }
    }

    fn answer(&mut self, call: CallRef, now: Instant) {
        self.advance(now);
        if let Some(c) = self.calls.get(&call) {
            if matches!(c.state, CallState::Dialled | CallState::Ringback) {
                self.connect(call, now);
            }
        }
    }

    fn release(&mut self, call: CallRef, _cause: Cause, now: Instant) {
        self.advance(now);
        self.drop_call(call);
    }

    fn send_audio(&mut self, call: CallRef, frame: &[u8], now: Instant) {
        // Frames due before this one must have drawn on the jitter buffer first.
        self.advance_call(call, now);
        if let Some(Call {
            state: CallState::Connected(audio),
            ..
        }) = self.calls.get_mut(&call)
        {
            audio.push_downlink(frame);
        }
    }

    fn poll_event(&mut self) -> Option<LineEvent> {
        self.events.pop_front()
    }

    fn poll_audio(&mut self) -> Option<(CallRef, Vec<u8>)> {
        self.audio.pop_front()
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.calls
            .values()
            .filter_map(|c| self.call_deadline(c))
            .min()
    }

    fn handle_timeout(&mut self, now: Instant) {
        self.advance(now);
    }

    fn status(&self) -> DriverStatus {
        let mut busy = 0;
        let mut total = 0;
        let mut bases = Vec::with_capacity(self.bases.len());
        for (i, base) in self.bases.iter().enumerate() {
            let b = self.busy_channels(i);
            busy += b;
            total += base.config.channels;
            bases.push(format!(
                "{} {} {}/{}{}",
                base.config.name,
                if base.up { "up" } else { "down" },
                b,
                base.config.channels,
                if base.config.wideband {
                    " wideband"
                } else {
                    ""
                },
            ));
        }
        let handsets: Vec<String> = self
            .handsets
            .iter()
            .enumerate()
            .map(|(i, h)| {
                format!(
                    "{} {} on {} {}{}",
                    h.config.number,
                    format_ipui(h.ipui),
                    self.bases
                        .get(h.base)
                        .map_or("?", |b| b.config.name.as_str()),
                    if h.in_range {
                        "in range"
                    } else {
                        "out of range"
                    },
                    if self.call_of(i).is_some() {
                        " busy"
                    } else {
                        ""
                    },
                )
            })
            .collect();
        DriverStatus {
            kind: "dect",
            up: self.bases.iter().any(|b| b.up),
            channels_busy: busy,
            channels_total: total,
            detail: format!(
                "bases: {}; handsets: {}",
                bases.join(", "),
                if handsets.is_empty() {
                    "none".to_owned()
                } else {
                    handsets.join(", ")
                }
            ),
        }
    }

    fn simulate(&mut self, command: SimCommand, now: Instant) -> Result<(), String> {
        self.advance(now);
        match command {
            SimCommand::Dial { from, to } => self.dial(&from, &to),
            SimCommand::Answer { party } => self.handset_answers(&party, now),
            SimCommand::Hangup { party } => self.handset_hangs_up(&party),
            SimCommand::Unit { name, up } => self.set_unit(&name, up, now),
            SimCommand::InRange { handset, in_range } => self.set_in_range(&handset, in_range, now),
            SimCommand::Layer1 { .. } | SimCommand::Signalling { .. } => Err(not_modelled()),
        }
    }
}
