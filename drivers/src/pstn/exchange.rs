//! The exchange: calls, their timelines, and the parties' audio.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use super::audio::{Echo, ToneGen};
use super::config::{sanitize_cause, Behaviour, CallAudio, ExchangeConfig};
use super::rng::SplitMix64;
use super::script::{Script, ScriptAction};
use crate::line::Cause;

/// Set in every id of an inward call ([`Exchange::dial_in`]). The gateway numbers the calls it
/// offers itself; keeping its ids below this bit means the two ranges never meet. The exchange
/// also skips any inward id that is in use, so an offer with the bit set is still safe.
pub const INWARD_CALL_BIT: u32 = 0x8000_0000;

/// What the exchange tells the gateway, in the order it happens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ExchangeAction {
    /// The exchange accepted an offered call and is routing it.
    Proceeding { call: u32 },
    /// The called party rings.
    Alerting { call: u32 },
    /// In-band information (an announcement) flows before any answer.
    Progress { call: u32 },
    /// The called party answered.
    Connect { call: u32 },
    /// The exchange clears the call (a refusal, the far party hanging up, a timeout). The call
    /// is gone from the exchange; the gateway's [`Exchange::released`] for it is not needed.
    Disconnect { call: u32, cause: u8 },
    /// A PSTN subscriber calls `called`, a number of the gateway.
    Incoming {
        call: u32,
        calling: String,
        called: String,
    },
}

impl ExchangeAction {
    /// The call the action is about.
    pub fn call(&self) -> u32 {
        match self {
            ExchangeAction::Proceeding { call }
            | ExchangeAction::Alerting { call }
            | ExchangeAction::Progress { call }
            | ExchangeAction::Connect { call }
            | ExchangeAction::Disconnect { call, .. }
            | ExchangeAction::Incoming { call, .. } => *call,
        }
    }
}

/// Where a call stands, as far as the exchange knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CallPhase {
    /// Offered by the gateway, not yet accepted.
    Offered,
    Proceeding,
    Alerting,
    /// An announcement plays.
    InbandInfo,
    /// An inward call waiting for the gateway's answer.
    Ringing,
    Connected,
}

/// A call as the exchange plans it, once a [`Behaviour::Weighted`] has been drawn.
#[derive(Clone, Debug)]
enum Plan {
    Answer {
        after_ms: u64,
        audio: CallAudio,
        hangup_after_ms: Option<u64>,
    },
    RingOut,
    Refuse {
        cause: u8,
        proceed: bool,
    },
    Announce {
        hz: u32,
        duration_ms: u64,
        cause: u8,
    },
    Inward,
}

impl Plan {
    fn rings(&self) -> bool {
        matches!(self, Plan::Answer { .. } | Plan::RingOut)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Step {
    Proceeding,
    Alerting,
    Progress,
    Connect,
    Disconnect(u8),
}

#[derive(Clone, Debug)]
enum Source {
    Echo(Echo),
    Tone(ToneGen),
    Silence,
}

impl Source {
    fn new(audio: &CallAudio) -> Source {
        match audio {
            CallAudio::Echo { delay_frames } => Source::Echo(Echo::new(*delay_frames)),
            CallAudio::Tone { hz } => Source::Tone(ToneGen::new(*hz)),
            CallAudio::Silence => Source::Silence,
        }
    }
}

#[derive(Clone, Debug)]
struct Call {
    /// Creation order, for picking among several calls of one party.
    seq: u64,
    inward: bool,
    calling: String,
    called: String,
    plan: Plan,
    phase: CallPhase,
    /// The single pending step: each call's timeline is a chain, one step at a time.
    next: Option<(Instant, Step)>,
    /// The routing delay drawn for this call.
    route_ms: u64,
    audio: Source,
    /// An inward call the gateway opened in-band before answering (ALERTING or PROGRESS with
    /// progress indicator 8): the caller hears the gateway's early media (and, being an
    /// echoing party, says it back).
    early: bool,
}

impl Call {
    /// The PSTN side's number: whom the gateway called, or who called the gateway.
    fn party(&self) -> &str {
        if self.inward {
            &self.calling
        } else {
            &self.called
        }
    }

    fn answerable(&self) -> bool {
        !self.inward
            && self.plan.rings()
            && matches!(
                self.phase,
                CallPhase::Offered | CallPhase::Proceeding | CallPhase::Alerting
            )
    }

    /// Whether the call is over at `now` although its clearing has not been run yet (the host
    /// has not called `handle_timeout`): no more audio then.
    fn cleared_by(&self, now: Instant) -> bool {
        matches!(self.next, Some((at, Step::Disconnect(_))) if at <= now)
    }
}

/// The simulated PSTN exchange behind a trunk. See the [module documentation](super).
#[derive(Clone, Debug)]
pub struct Exchange {
    config: ExchangeConfig,
    seed: u64,
    calls: BTreeMap<u32, Call>,
    actions: VecDeque<ExchangeAction>,
    next_seq: u64,
    /// The low 31 bits of the next inward id.
    next_inward: u32,
    script: VecDeque<(Instant, ScriptAction)>,
    script_errors: Vec<String>,
}

/// `at` plus `ms`, or `None` ("never") past what an `Instant` can hold.
fn after(at: Instant, ms: u64) -> Option<Instant> {
    at.checked_add(Duration::from_millis(ms))
}

impl Exchange {
    pub fn new(config: ExchangeConfig, seed: u64) -> Exchange {
        Exchange {
            config,
            seed,
            calls: BTreeMap::new(),
            actions: VecDeque::new(),
            next_seq: 0,
            next_inward: 1,
            script: VecDeque::new(),
            script_errors: Vec::new(),
        }
    }

    /// An exchange that also plays `script`, its times counted from `start`. Steps past what an
    /// `Instant` can hold never run.
    pub fn with_script(
        config: ExchangeConfig,
        seed: u64,
        script: Script,
        start: Instant,
    ) -> Exchange {
        let mut exchange = Exchange::new(config, seed);
        let mut steps: Vec<(Instant, ScriptAction)> = script
            .steps
            .into_iter()
            .filter_map(|s| after(start, s.at_ms).map(|at| (at, s.action)))
            .collect();
        // Stable: steps at one time keep the script's order.
        steps.sort_by_key(|(at, _)| *at);
        exchange.script = steps.into();
        exchange
    }

    pub fn config(&self) -> &ExchangeConfig {
        &self.config
    }

    /// A call from the gateway to `called` on the exchange: the exchange decides what happens.
    /// An id already in use is ignored (the first call keeps it).
    pub fn offer(&mut self, call: u32, calling: &str, called: &str, now: Instant) {
        self.run_due(now);
        if self.calls.contains_key(&call) {
            return;
        }
        let seq = self.take_seq();
        let mut rng = SplitMix64::stream(self.seed, seq);
        let plan = self.plan_for(called, &mut rng);
        let route_ms = rng.between(self.config.alert_min_ms, self.config.alert_max_ms);
        let first = match plan {
            Plan::Refuse {
                cause,
                proceed: false,
            } => Step::Disconnect(cause),
            _ => Step::Proceeding,
        };
        let next = after(now, self.config.proceeding_ms).map(|at| (at, first));
        self.calls.insert(
            call,
            Call {
                seq,
                inward: false,
                calling: calling.to_owned(),
                called: called.to_owned(),
                plan,
                phase: CallPhase::Offered,
                next,
                route_ms,
                early: false,
                audio: Source::Silence,
            },
        );
        self.run_due(now);
    }

    /// The gateway announced in-band information for an inward call that is still ringing
    /// (early media, Q.931 progress indicator 8): the caller is connected to the B channel.
    pub fn inband(&mut self, call: u32, now: Instant) {
        self.run_due(now);
        if let Some(c) = self.calls.get_mut(&call) {
            if c.inward && c.phase == CallPhase::Ringing && !c.early {
                c.early = true;
                c.audio = Source::new(&self.config.party_audio);
            }
        }
    }

    /// The gateway answered an inward call. Nothing follows from the exchange: the caller just
    /// starts talking. Ignored for other calls.
    pub fn answered(&mut self, call: u32, now: Instant) {
        self.run_due(now);
        if let Some(c) = self.calls.get_mut(&call) {
            if c.inward && c.phase == CallPhase::Ringing {
                c.phase = CallPhase::Connected;
                c.next = None;
                c.audio = Source::new(&self.config.party_audio);
            }
        }
    }

    /// The gateway ended a call, either way, in any state. The exchange forgets it without a
    /// word; unknown ids are ignored.
    pub fn released(&mut self, call: u32, cause: u8, now: Instant) {
        // Nothing the exchange does depends on why the gateway cleared.
        let _ = cause;
        self.run_due(now);
        self.calls.remove(&call);
    }

    /// What the exchange does next (poll until `None`).
    pub fn poll_action(&mut self) -> Option<ExchangeAction> {
        self.actions.pop_front()
    }

    /// One 20 ms frame (160 samples) of the gateway's audio for `call`. Heard only on a
    /// connected call; any length is taken.
    pub fn audio_in(&mut self, call: u32, pcm: &[i16], now: Instant) {
        if let Some(c) = self.calls.get_mut(&call) {
            if (c.phase == CallPhase::Connected || c.early) && !c.cleared_by(now) {
                if let Source::Echo(echo) = &mut c.audio {
                    echo.hear(pcm);
                }
            }
        }
    }

    /// One 20 ms frame (160 samples, 8 kHz) towards the gateway: the party once connected, an
    /// announcement while it plays. `None` when the exchange sends nothing: no such call, not
    /// connected (ringing, refused), or a silent party.
    pub fn audio_out(&mut self, call: u32, now: Instant) -> Option<Vec<i16>> {
        let c = self.calls.get_mut(&call)?;
        if c.cleared_by(now)
            || !(c.early || matches!(c.phase, CallPhase::Connected | CallPhase::InbandInfo))
        {
            return None;
        }
        match &mut c.audio {
            Source::Echo(echo) => Some(echo.frame()),
            Source::Tone(tone) => Some(tone.frame()),
            Source::Silence => None,
        }
    }

    /// When [`Exchange::handle_timeout`] is next due.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let calls = self.calls.values().filter_map(|c| c.next.map(|(at, _)| at));
        let script = self.script.front().map(|(at, _)| *at);
        calls.chain(script).min()
    }

    /// Runs everything due by `now`, each at its own time, so the outcome does not depend on
    /// how late or how often the host calls.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.run_due(now);
    }

    /// A PSTN subscriber `from` dials `to` (a number of the gateway): an inward call. Returns
    /// its id, which has [`INWARD_CALL_BIT`] set. [`ExchangeAction::Incoming`] follows at once;
    /// the caller hangs up after [`ExchangeConfig::caller_patience_ms`] unanswered.
    pub fn dial_in(&mut self, from: &str, to: &str, now: Instant) -> u32 {
        self.run_due(now);
        let id = self.place_inward(from, to, now);
        self.run_due(now);
        id
    }

    /// The far party of an outward call answers it by hand (a ringing [`Behaviour::RingOut`] or
    /// [`Behaviour::Answer`] number). `call_or_party` is the party's number or the call's id in
    /// decimal; a number takes precedence over an id that reads the same, and of several calls
    /// of one party the oldest that can be answered is.
    pub fn answer(&mut self, call_or_party: &str, now: Instant) -> Result<(), String> {
        self.run_due(now);
        let result = self.answer_at(call_or_party, now);
        self.run_due(now);
        result
    }

    /// The far party hangs up: the exchange clears the call with cause 16, or 21 (call rejected)
    /// when an outward call had not been answered yet. Addressed as in [`Exchange::answer`].
    pub fn hangup(&mut self, call_or_party: &str, now: Instant) -> Result<(), String> {
        self.run_due(now);
        let result = self.hangup_at(call_or_party);
        self.run_due(now);
        result
    }

    /// Where `call` stands; `None` once it is gone (or never was).
    pub fn phase(&self, call: u32) -> Option<CallPhase> {
        self.calls.get(&call).map(|c| c.phase)
    }

    /// The calls the exchange holds.
    pub fn call_count(&self) -> usize {
        self.calls.len()
    }

    /// Script steps that could not be carried out (a party with no call, say), in words.
    pub fn script_errors(&self) -> &[String] {
        &self.script_errors
    }

    fn take_seq(&mut self) -> u64 {
        let seq = self.next_seq;
        self.next_seq = self.next_seq.wrapping_add(1);
        seq
    }

    fn plan_for(&self, called: &str, rng: &mut SplitMix64) -> Plan {
        let mut behaviour = self.config.lookup(called);
        // A loop, not recursion: nested weights cannot grow the stack.
        while let Behaviour::Weighted(options) = behaviour {
            let total: u64 = options.iter().map(|(w, _)| u64::from(*w)).sum();
            if total == 0 {
                behaviour = &Behaviour::Unallocated;
                continue;
            }
            let mut pick = rng.between(0, total - 1);
            // `total` is the sum of the weights, so some option always takes `pick`.
            behaviour = &Behaviour::Unallocated;
            for (weight, option) in options {
                if pick < u64::from(*weight) {
                    behaviour = option;
                    break;
                }
                pick -= u64::from(*weight);
            }
        }
        match behaviour {
            Behaviour::Answer {
                after_ms,
                audio,
                hangup_after_ms,
            } => Plan::Answer {
                after_ms: *after_ms,
                audio: audio.clone(),
                hangup_after_ms: *hangup_after_ms,
            },
            Behaviour::RingOut => Plan::RingOut,
            Behaviour::Busy => Plan::Refuse {
                cause: Cause::USER_BUSY.0,
                proceed: true,
            },
            Behaviour::Unallocated | Behaviour::Weighted(_) => Plan::Refuse {
                cause: Cause::UNALLOCATED.0,
                proceed: true,
            },
            Behaviour::Congested { cause } => Plan::Refuse {
                cause: cause.cause(),
                proceed: true,
            },
            Behaviour::NoCircuit => Plan::Refuse {
                cause: Cause::NO_CIRCUIT.0,
                proceed: false,
            },
            Behaviour::Reject { cause } => Plan::Refuse {
                cause: sanitize_cause(*cause),
                proceed: false,
            },
            Behaviour::Announcement {
                hz,
                duration_ms,
                cause,
            } => Plan::Announce {
                hz: *hz,
                duration_ms: *duration_ms,
                cause: sanitize_cause(*cause),
            },
        }
    }

    fn place_inward(&mut self, from: &str, to: &str, now: Instant) -> u32 {
        let mut id = INWARD_CALL_BIT | self.next_inward;
        // At most as many ids are taken as there are calls, so this ends.
        while self.calls.contains_key(&id) {
            self.next_inward = (self.next_inward + 1) & !INWARD_CALL_BIT;
            id = INWARD_CALL_BIT | self.next_inward;
        }
        self.next_inward = (self.next_inward + 1) & !INWARD_CALL_BIT;
        let seq = self.take_seq();
        let next = after(now, self.config.caller_patience_ms)
            .map(|at| (at, Step::Disconnect(Cause::NORMAL.0)));
        self.calls.insert(
            id,
            Call {
                seq,
                inward: true,
                calling: from.to_owned(),
                called: to.to_owned(),
                plan: Plan::Inward,
                phase: CallPhase::Ringing,
                next,
                route_ms: 0,
                audio: Source::Silence,
                early: false,
            },
        );
        self.actions.push_back(ExchangeAction::Incoming {
            call: id,
            calling: from.to_owned(),
            called: to.to_owned(),
        });
        id
    }

    /// The call `call_or_party` names: of a party's calls, the oldest `preferred` one, else the
    /// oldest.
    fn find(&self, call_or_party: &str, preferred: fn(&Call) -> bool) -> Result<u32, String> {
        let key = call_or_party.trim();
        let by_party = self
            .calls
            .iter()
            .filter(|(_, c)| c.party() == key)
            .min_by_key(|(_, c)| (!preferred(c), c.seq))
            .map(|(id, _)| *id);
        if let Some(id) = by_party {
            return Ok(id);
        }
        match key.parse::<u32>() {
            Ok(id) if self.calls.contains_key(&id) => Ok(id),
            _ => Err(format!("no call of or with id {key:?}")),
        }
    }

    fn answer_at(&mut self, call_or_party: &str, now: Instant) -> Result<(), String> {
        let id = self.find(call_or_party, Call::answerable)?;
        let Some(call) = self.calls.get(&id) else {
            return Err(format!("no call {id}"));
        };
        if call.inward {
            return Err(format!(
                "call {id} is an inward call: the gateway answers it, not the caller"
            ));
        }
        if !call.answerable() {
            return Err(format!(
                "call {id} to {} is not ringing ({:?}, {})",
                call.called,
                call.phase,
                self.config.lookup(&call.called)
            ));
        }
        self.connect(id, now);
        Ok(())
    }

    fn hangup_at(&mut self, call_or_party: &str) -> Result<(), String> {
        let id = self.find(call_or_party, |_| true)?;
        let Some(call) = self.calls.remove(&id) else {
            return Err(format!("no call {id}"));
        };
        let cause = if !call.inward && call.phase != CallPhase::Connected {
            Cause::CALL_REJECTED.0
        } else {
            Cause::NORMAL.0
        };
        self.actions
            .push_back(ExchangeAction::Disconnect { call: id, cause });
        Ok(())
    }

    /// The far party of an outward call answers at `at`.
    fn connect(&mut self, id: u32, at: Instant) {
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        let (audio, hangup_after_ms) = match &call.plan {
            Plan::Answer {
                audio,
                hangup_after_ms,
                ..
            } => (audio, *hangup_after_ms),
            _ => (&self.config.party_audio, None),
        };
        call.audio = Source::new(audio);
        call.phase = CallPhase::Connected;
        call.next = hangup_after_ms
            .and_then(|ms| after(at, ms))
            .map(|t| (t, Step::Disconnect(Cause::NORMAL.0)));
        self.actions.push_back(ExchangeAction::Connect { call: id });
    }

    fn run_due(&mut self, now: Instant) {
        // Every step moves its call along a finite chain or ends it, and every script step is
        // consumed, so this loop ends.
        loop {
            let call_due = self
                .calls
                .iter()
                .filter_map(|(id, c)| c.next.map(|(at, _)| (at, *id)))
                .filter(|(at, _)| *at <= now)
                .min();
            let script_due = self
                .script
                .front()
                .map(|(at, _)| *at)
                .filter(|at| *at <= now);
            match (call_due, script_due) {
                (Some((call_at, id)), Some(script_at)) if call_at < script_at => self.fire(id),
                (_, Some(_)) => self.run_script_step(),
                (Some((_, id)), None) => self.fire(id),
                (None, None) => break,
            }
        }
    }

    fn run_script_step(&mut self) {
        let Some((at, action)) = self.script.pop_front() else {
            return;
        };
        let outcome = match &action {
            ScriptAction::DialIn { from, to } => {
                self.place_inward(from, to, at);
                Ok(())
            }
            ScriptAction::Answer { party } => self.answer_at(party, at),
            ScriptAction::Hangup { party } => self.hangup_at(party),
        };
        if let Err(why) = outcome {
            self.script_errors.push(format!("{action:?}: {why}"));
        }
    }

    /// Runs `id`'s pending step at its own time and chains the next one.
    fn fire(&mut self, id: u32) {
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        let Some((at, step)) = call.next.take() else {
            return;
        };
        let no_answer =
            after(at, self.config.no_answer_ms).map(|t| (t, Step::Disconnect(Cause::NO_ANSWER.0)));
        match step {
            Step::Proceeding => {
                call.phase = CallPhase::Proceeding;
                let then = match call.plan {
                    Plan::Answer { .. } | Plan::RingOut => Some(Step::Alerting),
                    Plan::Refuse { cause, .. } => Some(Step::Disconnect(cause)),
                    Plan::Announce { .. } => Some(Step::Progress),
                    Plan::Inward => None,
                };
                call.next = then.and_then(|s| after(at, call.route_ms).map(|t| (t, s)));
                self.actions
                    .push_back(ExchangeAction::Proceeding { call: id });
            }
            Step::Alerting => {
                call.phase = CallPhase::Alerting;
                call.next = match call.plan {
                    Plan::Answer { after_ms, .. } if after_ms < self.config.no_answer_ms => {
                        after(at, after_ms).map(|t| (t, Step::Connect))
                    }
                    _ => no_answer,
                };
                self.actions
                    .push_back(ExchangeAction::Alerting { call: id });
            }
            Step::Progress => {
                call.phase = CallPhase::InbandInfo;
                if let Plan::Announce {
                    hz,
                    duration_ms,
                    cause,
                } = call.plan
                {
                    call.audio = Source::Tone(ToneGen::new(hz));
                    call.next = after(at, duration_ms).map(|t| (t, Step::Disconnect(cause)));
                }
                self.actions
                    .push_back(ExchangeAction::Progress { call: id });
            }
            Step::Connect => self.connect(id, at),
            Step::Disconnect(cause) => {
                self.calls.remove(&id);
                self.actions
                    .push_back(ExchangeAction::Disconnect { call: id, cause });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixed() -> ExchangeConfig {
        ExchangeConfig {
            alert_min_ms: 200,
            alert_max_ms: 200,
            ..ExchangeConfig::demo()
        }
    }

    #[test]
    fn inward_ids_wrap_within_their_range_and_skip_ids_in_use() {
        let now = Instant::now();
        let mut ex = Exchange::new(fixed(), 0);
        ex.next_inward = !INWARD_CALL_BIT;
        let a = ex.dial_in("1", "2", now);
        assert_eq!(a, u32::MAX);
        // The counter wraps to 0 (id 2^31), which a gateway offer has taken.
        ex.offer(INWARD_CALL_BIT, "9", "0303000000", now);
        let b = ex.dial_in("1", "2", now);
        assert_eq!(b, INWARD_CALL_BIT | 1);
        assert_eq!(ex.call_count(), 3);
    }

    #[test]
    fn a_script_step_runs_before_a_call_step_due_at_the_same_time() {
        let start = Instant::now();
        // The answer is due at 10 + 200 + 3000 ms; the script hangs up at that very instant,
        // and a party hanging up on a ringing call rejects it.
        let script = Script::new().hangup(3210, "0300000000");
        let mut ex = Exchange::with_script(fixed(), 0, script, start);
        ex.offer(1, "0401", "0300000000", start);
        ex.handle_timeout(start + Duration::from_secs(10));
        let actions: Vec<ExchangeAction> = std::iter::from_fn(|| ex.poll_action()).collect();
        assert_eq!(
            actions,
            vec![
                ExchangeAction::Proceeding { call: 1 },
                ExchangeAction::Alerting { call: 1 },
                ExchangeAction::Disconnect { call: 1, cause: 21 },
            ]
        );
        assert!(ex.script_errors().is_empty());
    }

    #[test]
    fn zero_weights_and_nested_weights_resolve() {
        let mut config = ExchangeConfig::empty();
        config.numbers = vec![
            NumberRule::exact("1", Behaviour::Weighted(vec![(0, Behaviour::Busy)])),
            NumberRule::exact("2", Behaviour::Weighted(Vec::new())),
            NumberRule::exact(
                "3",
                Behaviour::Weighted(vec![(
                    1,
                    Behaviour::Weighted(vec![(0, Behaviour::Busy), (5, Behaviour::RingOut)]),
                )]),
            ),
        ];
        let ex = Exchange::new(config, 3);
        let mut rng = SplitMix64::new(1);
        assert!(matches!(
            ex.plan_for("1", &mut rng),
            Plan::Refuse {
                cause: 1,
                proceed: true
            }
        ));
        assert!(matches!(
            ex.plan_for("2", &mut rng),
            Plan::Refuse {
                cause: 1,
                proceed: true
            }
        ));
        assert!(matches!(ex.plan_for("3", &mut rng), Plan::RingOut));
    }

    use super::super::config::NumberRule;
}
