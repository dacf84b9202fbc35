//! The simulated PSTN exchange in virtual time: every behaviour's actions and their timing,
//! the parties' audio, inward calls, scripts, seeding, and robustness.

use std::time::{Duration, Instant};

use mgw_drivers::pstn::{
    Behaviour, CallAudio, CallPhase, Congestion, Exchange, ExchangeAction, ExchangeConfig,
    NumberRule, Script, FRAME_SAMPLES, INWARD_CALL_BIT, TONE_AMPLITUDE,
};
use proptest::prelude::*;

use ExchangeAction::{Alerting, Connect, Disconnect, Incoming, Proceeding, Progress};

/// The demo numbers with a fixed routing delay, so timelines can be written down.
fn fixed() -> ExchangeConfig {
    ExchangeConfig {
        alert_min_ms: 200,
        alert_max_ms: 200,
        ..ExchangeConfig::demo()
    }
}

/// An exchange, a virtual clock, and everything the exchange did, stamped in ms from the start.
struct Sim {
    ex: Exchange,
    start: Instant,
    now: Instant,
    log: Vec<(u64, ExchangeAction)>,
}

impl Sim {
    fn new(config: ExchangeConfig, seed: u64) -> Sim {
        let start = Instant::now();
        Sim::with(Exchange::new(config, seed), start)
    }

    fn with(ex: Exchange, start: Instant) -> Sim {
        Sim {
            ex,
            start,
            now: start,
            log: Vec::new(),
        }
    }

    fn ms(&self) -> u64 {
        self.now.duration_since(self.start).as_millis() as u64
    }

    fn drain(&mut self) {
        while let Some(action) = self.ex.poll_action() {
            let at = self.ms();
            self.log.push((at, action));
        }
    }

    /// Runs every timer up to `ms`, each at its own instant.
    fn run_to(&mut self, ms: u64) {
        let target = self.start + Duration::from_millis(ms);
        self.drain();
        while let Some(due) = self.ex.poll_timeout().filter(|t| *t <= target) {
            assert!(due >= self.now, "a timeout in the past");
            self.now = due;
            self.ex.handle_timeout(due);
            self.drain();
        }
        self.now = target;
    }

    fn offer(&mut self, call: u32, called: &str) {
        self.ex.offer(call, "0401", called, self.now);
        self.drain();
    }

    fn take_log(&mut self) -> Vec<(u64, ExchangeAction)> {
        std::mem::take(&mut self.log)
    }
}

fn timeline(sim: &mut Sim, called: &str, until_ms: u64) -> Vec<(u64, ExchangeAction)> {
    sim.offer(7, called);
    sim.run_to(until_ms);
    sim.take_log()
}

/// Power of `hz` in `pcm` (Goertzel), normalised by the length.
fn goertzel(pcm: &[i16], hz: f64) -> f64 {
    let w = 2.0 * std::f64::consts::PI * hz / 8000.0;
    let coeff = 2.0 * w.cos();
    let (mut s1, mut s2) = (0.0, 0.0);
    for &x in pcm {
        let s0 = f64::from(x) + coeff * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    (s1 * s1 + s2 * s2 - coeff * s1 * s2) / (pcm.len() as f64).powi(2)
}

/// The frequency of a tone from its rising zero crossings.
fn zero_crossing_hz(pcm: &[i16]) -> f64 {
    let rising = pcm.windows(2).filter(|w| w[0] < 0 && w[1] >= 0).count();
    rising as f64 * 8000.0 / pcm.len() as f64
}

fn assert_tone(pcm: &[i16], hz: f64) {
    let measured = zero_crossing_hz(pcm);
    assert!((measured - hz).abs() <= 2.0, "{measured} Hz, not {hz}");
    let at = goertzel(pcm, hz);
    for off in [hz * 0.9, hz * 1.1, hz / 2.0, hz * 2.0] {
        assert!(
            at > 100.0 * goertzel(pcm, off),
            "{hz} Hz does not dominate {off} Hz"
        );
    }
    let peak = pcm.iter().map(|s| s.unsigned_abs()).max().unwrap_or(0);
    assert!(peak <= TONE_AMPLITUDE as u16 && peak > TONE_AMPLITUDE as u16 - 50);
}

fn frames(sim: &mut Sim, call: u32, n: usize) -> Vec<i16> {
    let mut pcm = Vec::new();
    for _ in 0..n {
        let frame = sim.ex.audio_out(call, sim.now).expect("a frame");
        assert_eq!(frame.len(), FRAME_SAMPLES);
        pcm.extend(frame);
        sim.now += Duration::from_millis(20);
    }
    pcm
}

#[test]
fn answering_number_rings_answers_and_echoes() {
    let mut sim = Sim::new(fixed(), 1);
    sim.offer(7, "0300000000");
    assert_eq!(sim.ex.phase(7), Some(CallPhase::Offered));
    assert_eq!(
        sim.ex.poll_timeout(),
        Some(sim.start + Duration::from_millis(10))
    );
    assert_eq!(sim.ex.audio_out(7, sim.now), None);
    sim.run_to(3209);
    assert_eq!(sim.ex.phase(7), Some(CallPhase::Alerting));
    assert_eq!(sim.ex.audio_out(7, sim.now), None);
    sim.run_to(60_000);
    assert_eq!(
        sim.take_log(),
        vec![
            (10, Proceeding { call: 7 }),
            (210, Alerting { call: 7 }),
            (3210, Connect { call: 7 }),
        ]
    );
    assert_eq!(sim.ex.phase(7), Some(CallPhase::Connected));
    assert_eq!(sim.ex.poll_timeout(), None);

    // One frame of delay: each frame comes back on the next fetch.
    let sent: Vec<Vec<i16>> = (0..5)
        .map(|k| (0..160).map(|i| (k * 1000 + i) as i16).collect())
        .collect();
    let mut heard = Vec::new();
    for frame in &sent {
        sim.ex.audio_in(7, frame, sim.now);
        heard.push(sim.ex.audio_out(7, sim.now).expect("echo"));
    }
    assert_eq!(heard[0], vec![0; 160]);
    assert_eq!(heard[1..], sent[..4]);
    assert_eq!(sim.ex.audio_out(7, sim.now), Some(sent[4].clone()));

    sim.ex.released(7, 16, sim.now);
    assert_eq!(sim.ex.phase(7), None);
    assert_eq!(sim.ex.audio_out(7, sim.now), None);
    sim.run_to(1_000_000);
    assert!(sim.take_log().is_empty());
}

#[test]
fn echo_delay_is_configurable() {
    let mut config = fixed();
    config.numbers = vec![NumberRule::exact(
        "1",
        Behaviour::answer(0, CallAudio::Echo { delay_frames: 3 }),
    )];
    let mut sim = Sim::new(config, 1);
    assert_eq!(
        timeline(&mut sim, "1", 1000),
        vec![
            (10, Proceeding { call: 7 }),
            (210, Alerting { call: 7 }),
            (210, Connect { call: 7 }),
        ]
    );
    let ramp: Vec<i16> = (1..=160).collect();
    let mut heard = Vec::new();
    for _ in 0..4 {
        sim.ex.audio_in(7, &ramp, sim.now);
        heard.push(sim.ex.audio_out(7, sim.now).expect("echo"));
    }
    assert_eq!(heard[..3], vec![vec![0; 160]; 3]);
    assert_eq!(heard[3], ramp);
}

#[test]
fn tone_number_plays_1004_hz() {
    let mut sim = Sim::new(fixed(), 1);
    timeline(&mut sim, "0301000000", 5000);
    assert_eq!(sim.ex.phase(7), Some(CallPhase::Connected));
    // What the gateway sends does not disturb a tone.
    sim.ex.audio_in(7, &[12_000; 160], sim.now);
    let pcm = frames(&mut sim, 7, 50);
    assert_tone(&pcm, 1004.0);
}

#[test]
fn busy_unallocated_and_congested_proceed_then_clear() {
    for (called, cause) in [("0302000000", 17), ("0304000000", 42), ("0999", 1), ("", 1)] {
        let mut sim = Sim::new(fixed(), 1);
        assert_eq!(
            timeline(&mut sim, called, 10_000),
            vec![
                (10, Proceeding { call: 7 }),
                (210, Disconnect { call: 7, cause }),
            ],
            "{called}"
        );
        assert_eq!(sim.ex.phase(7), None);
        assert_eq!(sim.ex.call_count(), 0);
        assert_eq!(sim.ex.poll_timeout(), None);
    }
    let mut config = fixed();
    config.numbers = vec![NumberRule::exact(
        "5",
        Behaviour::Congested {
            cause: Congestion::NoCircuit,
        },
    )];
    let mut sim = Sim::new(config, 1);
    assert_eq!(
        timeline(&mut sim, "5", 10_000),
        vec![
            (10, Proceeding { call: 7 }),
            (210, Disconnect { call: 7, cause: 34 }),
        ]
    );
}

#[test]
fn no_circuit_and_reject_refuse_without_proceeding() {
    for (called, cause) in [("0305000000", 34), ("0308000000", 21)] {
        let mut sim = Sim::new(fixed(), 1);
        assert_eq!(
            timeline(&mut sim, called, 10_000),
            vec![(10, Disconnect { call: 7, cause })]
        );
    }
    let mut config = fixed();
    config.proceeding_ms = 0;
    config.numbers = vec![
        NumberRule::exact("1", Behaviour::Reject { cause: 0 }),
        NumberRule::exact("2", Behaviour::Reject { cause: 200 }),
        NumberRule::exact("3", Behaviour::Reject { cause: 88 }),
    ];
    let mut sim = Sim::new(config, 1);
    // With no proceeding delay the refusal is there as soon as the offer returns.
    for (call, called) in [(1, "1"), (2, "2"), (3, "3")] {
        sim.ex.offer(call, "0401", called, sim.now);
    }
    sim.drain();
    assert_eq!(
        sim.take_log(),
        vec![
            (0, Disconnect { call: 1, cause: 31 }),
            (0, Disconnect { call: 2, cause: 31 }),
            (0, Disconnect { call: 3, cause: 88 }),
        ]
    );
}

#[test]
fn ring_out_number_rings_until_the_exchange_gives_up() {
    let mut sim = Sim::new(fixed(), 1);
    assert_eq!(
        timeline(&mut sim, "0303000000", 400_000),
        vec![
            (10, Proceeding { call: 7 }),
            (210, Alerting { call: 7 }),
            (180_210, Disconnect { call: 7, cause: 19 }),
        ]
    );

    // The gateway's own timer ends it first: silence from the exchange.
    let mut sim = Sim::new(fixed(), 1);
    sim.offer(7, "0303000000");
    sim.run_to(30_000);
    sim.ex.released(7, 102, sim.now);
    assert_eq!(sim.ex.poll_timeout(), None);
    sim.run_to(400_000);
    assert_eq!(
        sim.take_log(),
        vec![(10, Proceeding { call: 7 }), (210, Alerting { call: 7 })]
    );
}

#[test]
fn an_answer_later_than_the_no_answer_time_never_comes() {
    let mut config = fixed();
    config.no_answer_ms = 5000;
    config.numbers = vec![
        NumberRule::exact("1", Behaviour::answer(5000, CallAudio::Silence)),
        NumberRule::exact("2", Behaviour::answer(4999, CallAudio::Silence)),
    ];
    let mut sim = Sim::new(config.clone(), 1);
    assert_eq!(
        timeline(&mut sim, "1", 60_000),
        vec![
            (10, Proceeding { call: 7 }),
            (210, Alerting { call: 7 }),
            (5210, Disconnect { call: 7, cause: 19 }),
        ]
    );
    let mut sim = Sim::new(config, 1);
    assert_eq!(
        timeline(&mut sim, "2", 60_000)[2],
        (5209, Connect { call: 7 })
    );
}

#[test]
fn announcement_plays_in_band_then_clears() {
    let mut sim = Sim::new(fixed(), 1);
    sim.offer(7, "0306000000");
    sim.run_to(209);
    assert_eq!(sim.ex.audio_out(7, sim.now), None);
    sim.run_to(210);
    assert_eq!(sim.ex.phase(7), Some(CallPhase::InbandInfo));
    let pcm = frames(&mut sim, 7, 50);
    assert_tone(&pcm, 950.0);
    sim.run_to(60_000);
    assert_eq!(
        sim.take_log(),
        vec![
            (10, Proceeding { call: 7 }),
            (210, Progress { call: 7 }),
            (8210, Disconnect { call: 7, cause: 1 }),
        ]
    );
}

#[test]
fn silent_party_answers_and_hangs_up_itself() {
    let mut sim = Sim::new(fixed(), 1);
    sim.offer(7, "0307000000");
    sim.run_to(5000);
    assert_eq!(sim.ex.phase(7), Some(CallPhase::Connected));
    sim.ex.audio_in(7, &[100; 160], sim.now);
    assert_eq!(sim.ex.audio_out(7, sim.now), None);
    sim.run_to(60_000);
    assert_eq!(
        sim.take_log(),
        vec![
            (10, Proceeding { call: 7 }),
            (210, Alerting { call: 7 }),
            (1210, Connect { call: 7 }),
            (11_210, Disconnect { call: 7, cause: 16 }),
        ]
    );
}

#[test]
fn audio_stops_when_the_clearing_is_due_even_before_it_runs() {
    let mut config = fixed();
    config.numbers = vec![NumberRule::exact(
        "1",
        Behaviour::Answer {
            after_ms: 0,
            audio: CallAudio::Tone { hz: 400 },
            hangup_after_ms: Some(1000),
        },
    )];
    let mut sim = Sim::new(config, 1);
    sim.offer(7, "1");
    sim.run_to(1209);
    assert!(sim.ex.audio_out(7, sim.now).is_some());
    sim.now += Duration::from_millis(1);
    assert_eq!(sim.ex.audio_out(7, sim.now), None);
}

#[test]
fn far_party_answers_and_hangs_up_by_hand() {
    let mut sim = Sim::new(fixed(), 1);
    sim.offer(7, "0303000000");
    sim.offer(8, "0302000000");
    sim.run_to(100);
    assert!(sim.ex.answer("0302000000", sim.now).is_err(), "busy");
    assert!(sim.ex.answer("0399", sim.now).is_err(), "no such party");
    assert!(sim.ex.answer("12345", sim.now).is_err(), "no such id");
    sim.run_to(1000);
    sim.ex.answer("0303000000", sim.now).expect("rings");
    sim.drain();
    assert_eq!(sim.ex.phase(7), Some(CallPhase::Connected));
    assert!(sim.ex.answer("7", sim.now).is_err(), "already answered");
    // A person, not a machine: the configured party audio (an echo).
    sim.ex.audio_in(7, &[5; 160], sim.now);
    assert_eq!(sim.ex.audio_out(7, sim.now), Some(vec![0; 160]));
    assert_eq!(sim.ex.audio_out(7, sim.now), Some(vec![5; 160]));
    sim.run_to(2000);
    sim.ex.hangup("7", sim.now).expect("by id");
    sim.drain();
    assert!(sim.ex.hangup("7", sim.now).is_err(), "gone");
    assert_eq!(
        sim.take_log(),
        vec![
            (10, Proceeding { call: 7 }),
            (10, Proceeding { call: 8 }),
            (210, Alerting { call: 7 }),
            (210, Disconnect { call: 8, cause: 17 }),
            (1000, Connect { call: 7 }),
            (2000, Disconnect { call: 7, cause: 16 }),
        ]
    );

    // Hanging up before the answer rejects the call.
    sim.offer(9, "0300000000");
    sim.run_to(3000);
    sim.ex.hangup(" 0300000000 ", sim.now).expect("rings");
    sim.drain();
    assert_eq!(
        sim.take_log()[2..],
        [(3000, Disconnect { call: 9, cause: 21 })]
    );
}

#[test]
fn the_oldest_ringing_call_of_a_party_is_answered_first() {
    let mut sim = Sim::new(fixed(), 1);
    sim.offer(3, "0303000000");
    sim.run_to(1000);
    sim.offer(2, "0303000000");
    sim.run_to(2000);
    sim.ex.answer("0303000000", sim.now).expect("rings");
    sim.ex
        .answer("0303000000", sim.now)
        .expect("the second one");
    assert!(sim.ex.answer("0303000000", sim.now).is_err());
    sim.drain();
    let connects: Vec<u32> = sim
        .take_log()
        .into_iter()
        .filter(|(_, a)| matches!(a, Connect { .. }))
        .map(|(_, a)| a.call())
        .collect();
    assert_eq!(connects, vec![3, 2]);
}

#[test]
fn inward_call_is_answered_by_the_gateway_and_hung_up_by_the_caller() {
    let mut sim = Sim::new(fixed(), 1);
    sim.run_to(500);
    let id = sim.ex.dial_in("0301234567", "0401", sim.now);
    sim.drain();
    assert_ne!(id & INWARD_CALL_BIT, 0);
    assert_eq!(sim.ex.phase(id), Some(CallPhase::Ringing));
    assert!(
        sim.ex.answer("0301234567", sim.now).is_err(),
        "the gateway answers"
    );
    assert_eq!(sim.ex.audio_out(id, sim.now), None);
    sim.run_to(2500);
    sim.ex.answered(id, sim.now);
    assert_eq!(sim.ex.phase(id), Some(CallPhase::Connected));
    // The caller is a person: heard as the configured party audio, an echo.
    sim.ex.audio_in(id, &[9; 160], sim.now);
    assert_eq!(sim.ex.audio_out(id, sim.now), Some(vec![0; 160]));
    assert_eq!(sim.ex.audio_out(id, sim.now), Some(vec![9; 160]));
    // Connected, the caller's patience no longer matters.
    sim.run_to(100_000);
    sim.ex.hangup("0301234567", sim.now).expect("connected");
    sim.drain();
    assert_eq!(
        sim.take_log(),
        vec![
            (
                500,
                Incoming {
                    call: id,
                    calling: "0301234567".into(),
                    called: "0401".into(),
                }
            ),
            (
                100_000,
                Disconnect {
                    call: id,
                    cause: 16
                }
            ),
        ]
    );
    assert_eq!(sim.ex.call_count(), 0);
}

#[test]
fn unanswered_inward_caller_gives_up_and_ids_stay_distinct() {
    let mut sim = Sim::new(fixed(), 1);
    let a = sim.ex.dial_in("0301", "0401", sim.now);
    sim.run_to(1000);
    let b = sim.ex.dial_in("0302", "0402", sim.now);
    assert_ne!(a, b);
    assert!(a & b & INWARD_CALL_BIT != 0);
    sim.run_to(20_000);
    sim.ex.released(b, 21, sim.now);
    sim.run_to(1_000_000);
    let log = sim.take_log();
    assert_eq!(log.len(), 3);
    assert_eq!(log[2], (60_000, Disconnect { call: a, cause: 16 }));
    // The gateway's answer after the caller left changes nothing.
    sim.ex.answered(a, sim.now);
    assert_eq!(sim.ex.phase(a), None);
}

#[test]
fn an_inward_call_can_be_named_by_its_id() {
    let mut sim = Sim::new(fixed(), 1);
    let id = sim.ex.dial_in("0301", "0401", sim.now);
    sim.ex.hangup(&id.to_string(), sim.now).expect("by id");
    sim.drain();
    assert_eq!(
        sim.log[1],
        (
            0,
            Disconnect {
                call: id,
                cause: 16
            }
        )
    );
}

#[test]
fn script_plays_a_scenario_through_the_timeouts() {
    let script = Script::parse(
        "# a caller the gateway answers, who hangs up 3 s later\n\
         1000 dial 0301234567 0401\n\
         5000 hangup 0301234567\n\
         # a caller nobody answers, who gives up\n\
         6000 dial 0307654321 0402\n\
         8000 hangup 0307654321\n\
         # by then there is no such call\n\
         9000 hangup 0307654321\n",
    )
    .expect("parses");
    let start = Instant::now();
    let ex = Exchange::with_script(fixed(), 1, script, start);
    let mut sim = Sim::with(ex, start);
    assert_eq!(sim.ex.poll_timeout(), Some(start + Duration::from_secs(1)));
    sim.run_to(2000);
    let first = sim.log[0].1.call();
    sim.ex.answered(first, sim.now);
    sim.run_to(100_000);
    let log = sim.take_log();
    let second = log[2].1.call();
    assert_eq!(
        log,
        vec![
            (
                1000,
                Incoming {
                    call: first,
                    calling: "0301234567".into(),
                    called: "0401".into(),
                }
            ),
            (
                5000,
                Disconnect {
                    call: first,
                    cause: 16
                }
            ),
            (
                6000,
                Incoming {
                    call: second,
                    calling: "0307654321".into(),
                    called: "0402".into(),
                }
            ),
            (
                8000,
                Disconnect {
                    call: second,
                    cause: 16
                }
            ),
        ]
    );
    assert_eq!(sim.ex.script_errors().len(), 1);
    assert!(sim.ex.script_errors()[0].contains("0307654321"));
    assert_eq!(sim.ex.poll_timeout(), None);
}

#[test]
fn script_far_party_answers_an_outward_call() {
    let start = Instant::now();
    let script = Script::new()
        .answer(1000, "0303000000")
        .hangup(4000, "0303000000");
    let mut sim = Sim::with(Exchange::with_script(fixed(), 1, script, start), start);
    sim.offer(7, "0303000000");
    sim.run_to(10_000);
    assert_eq!(
        sim.take_log(),
        vec![
            (10, Proceeding { call: 7 }),
            (210, Alerting { call: 7 }),
            (1000, Connect { call: 7 }),
            (4000, Disconnect { call: 7, cause: 16 }),
        ]
    );
    assert!(sim.ex.script_errors().is_empty());
}

/// A busy afternoon on the demo exchange: outward calls to every demo number (the 0309 ones
/// drawn from the seed), inward calls, answers and hang-ups.
fn afternoon(seed: u64, step_ms: Option<u64>) -> Vec<(u64, ExchangeAction)> {
    let start = Instant::now();
    let script = Script::new()
        .dial_in(700, "0301111111", "0401")
        .dial_in(900, "0302222222", "0402")
        .hangup(4_000, "0302222222")
        .answer(2_000, "0303000000");
    let ex = Exchange::with_script(ExchangeConfig::demo(), seed, script, start);
    let mut sim = Sim::with(ex, start);
    let numbers = [
        "0300000000",
        "0301000000",
        "0302000000",
        "0303000000",
        "0304000000",
        "0305000000",
        "0306000000",
        "0307000000",
        "0308000000",
        "0309000001",
        "0309000002",
        "0309000003",
        "0309000004",
        "0309000005",
        "0309000006",
        "0399000000",
    ];
    for (i, number) in numbers.iter().enumerate() {
        sim.offer(i as u32 + 1, number);
        match step_ms {
            // Exactly at every deadline.
            None => sim.run_to(sim.ms() + 37),
            // Coarsely: late and in bulk, as a busy host might.
            Some(step) => {
                sim.now += Duration::from_millis(37);
                if sim.ms() % step < 37 {
                    sim.ex.handle_timeout(sim.now);
                }
            }
        }
    }
    match step_ms {
        None => sim.run_to(400_000),
        Some(step) => {
            while sim.ms() < 400_000 {
                sim.now += Duration::from_millis(step);
                sim.ex.handle_timeout(sim.now);
                sim.drain();
            }
        }
    }
    sim.take_log()
}

#[test]
fn same_seed_same_story_other_seeds_other_timing() {
    let one = afternoon(1, None);
    assert_eq!(one, afternoon(1, None));
    assert!(one.len() > 40);
    for seed in [2, 3, u64::MAX] {
        let other = afternoon(seed, None);
        assert_ne!(one, other, "seed {seed}");
        let times =
            |log: &[(u64, ExchangeAction)]| -> Vec<u64> { log.iter().map(|(t, _)| *t).collect() };
        assert_ne!(times(&one), times(&other), "seed {seed}");
        // Only the timing and the weighted draws differ: every call is still answered or
        // cleared.
        for call in 1..=16 {
            assert!(
                other
                    .iter()
                    .any(|(_, a)| a.call() == call
                        && matches!(a, Connect { .. } | Disconnect { .. })),
                "seed {seed}, call {call}"
            );
        }
    }
}

#[test]
fn the_story_does_not_depend_on_how_the_host_polls() {
    let exact: Vec<ExchangeAction> = afternoon(5, None).into_iter().map(|(_, a)| a).collect();
    let coarse: Vec<ExchangeAction> = afternoon(5, Some(1000))
        .into_iter()
        .map(|(_, a)| a)
        .collect();
    assert_eq!(exact, coarse);
}

#[test]
fn routing_delays_spread_over_the_configured_range() {
    let mut sim = Sim::new(ExchangeConfig::demo(), 99);
    for call in 1..=200 {
        sim.offer(call, "0302000000");
    }
    sim.run_to(10_000);
    let delays: Vec<u64> = sim
        .take_log()
        .into_iter()
        .filter(|(_, a)| matches!(a, Disconnect { .. }))
        .map(|(t, _)| t - 10)
        .collect();
    assert_eq!(delays.len(), 200);
    assert!(delays.iter().all(|d| (100..=600).contains(d)));
    assert!(delays.iter().any(|d| *d < 200) && delays.iter().any(|d| *d > 500));
}

#[test]
fn weighted_numbers_draw_in_proportion() {
    let mut sim = Sim::new(fixed(), 4);
    for call in 1..=400 {
        sim.offer(call, "03095");
    }
    sim.run_to(1000);
    let log = sim.take_log();
    let answered = log
        .iter()
        .filter(|(_, a)| matches!(a, Alerting { .. }))
        .count();
    let busy = log
        .iter()
        .filter(|(_, a)| matches!(a, Disconnect { cause: 17, .. }))
        .count();
    assert_eq!(answered + busy, 400);
    assert!((250..350).contains(&answered), "{answered} of 400");
}

#[test]
fn unknown_ids_and_odd_input_are_ignored() {
    let mut sim = Sim::new(fixed(), 1);
    sim.ex.answered(42, sim.now);
    sim.ex.released(42, 0, sim.now);
    sim.ex.audio_in(42, &[1; 160], sim.now);
    assert_eq!(sim.ex.audio_out(42, sim.now), None);
    assert!(sim.ex.answer("", sim.now).is_err());
    assert!(sim.ex.hangup("-1", sim.now).is_err());
    assert!(sim.ex.hangup("4294967296", sim.now).is_err());
    sim.ex.handle_timeout(sim.now);
    assert_eq!(sim.ex.poll_action(), None);

    // A second offer with a live id does not disturb the first call.
    sim.offer(7, "0300000000");
    sim.offer(7, "0302000000");
    sim.run_to(60_000);
    assert_eq!(sim.take_log().len(), 3);
    // Any length of audio is taken.
    sim.ex.audio_in(7, &[], sim.now);
    sim.ex.audio_in(7, &[3; 1000], sim.now);
    assert_eq!(sim.ex.audio_out(7, sim.now).map(|f| f.len()), Some(160));
    // The gateway's answer to its own outward call means nothing.
    sim.ex.answered(7, sim.now);
    assert_eq!(sim.ex.phase(7), Some(CallPhase::Connected));
}

#[test]
fn huge_times_mean_never() {
    let mut config = ExchangeConfig::empty();
    config.proceeding_ms = u64::MAX;
    config.caller_patience_ms = u64::MAX;
    let mut sim = Sim::new(config, 1);
    sim.offer(1, "1");
    sim.ex.dial_in("2", "3", sim.now);
    // Beyond what an `Instant` holds there is no deadline at all; within it, a distant one.
    let distant = sim.now + Duration::from_secs(1 << 40);
    assert!(sim.ex.poll_timeout().is_none_or(|t| t > distant));
    let script = Script::new().dial_in(u64::MAX, "1", "2");
    let ex = Exchange::with_script(ExchangeConfig::demo(), 0, script, sim.now);
    assert!(ex.poll_timeout().is_none_or(|t| t > distant));

    let mut config = fixed();
    config.alert_min_ms = u64::MAX;
    config.alert_max_ms = 0;
    config.no_answer_ms = u64::MAX;
    config.numbers = vec![NumberRule::exact(
        "1",
        Behaviour::Answer {
            after_ms: u64::MAX,
            audio: CallAudio::Echo {
                delay_frames: u32::MAX,
            },
            hangup_after_ms: Some(u64::MAX),
        },
    )];
    let mut sim = Sim::new(config, 1);
    sim.offer(1, "1");
    sim.run_to(1000);
    assert!(sim.ex.poll_timeout().is_none_or(|t| t > distant));
    assert_eq!(sim.ex.answer("1", sim.now), Ok(()));
    assert_eq!(sim.ex.audio_out(1, sim.now), Some(vec![0; 160]));
}

#[derive(Clone, Debug)]
enum Op {
    Offer(u32, u8),
    Answered(u32),
    Released(u32, u8),
    DialIn(u8),
    Answer(String),
    Hangup(String),
    AudioIn(u32, usize),
    AudioOut(u32),
    Wait(u16),
}

fn op() -> impl Strategy<Value = Op> {
    let id = prop_oneof![
        0..4u32,
        Just(INWARD_CALL_BIT | 1),
        Just(INWARD_CALL_BIT | 2),
        any::<u32>()
    ];
    let party = prop_oneof![
        "030[0-9]000000",
        "[0-9]{1,3}",
        Just("2147483649".to_owned()),
        ".{0,6}",
    ];
    prop_oneof![
        (id.clone(), 0..12u8).prop_map(|(c, n)| Op::Offer(c, n)),
        id.clone().prop_map(Op::Answered),
        (id.clone(), any::<u8>()).prop_map(|(c, k)| Op::Released(c, k)),
        (0..4u8).prop_map(Op::DialIn),
        party.clone().prop_map(Op::Answer),
        party.prop_map(Op::Hangup),
        (id.clone(), 0..400usize).prop_map(|(c, n)| Op::AudioIn(c, n)),
        id.prop_map(Op::AudioOut),
        any::<u16>().prop_map(Op::Wait),
    ]
}

proptest! {
    /// Whatever the gateway and the parties do, the exchange does not panic, inward ids carry
    /// their bit, deadlines lie ahead, and in the end nothing is left pending.
    #[test]
    fn never_panics_and_stays_consistent(seed: u64, ops in prop::collection::vec(op(), 0..80)) {
        let mut sim = Sim::new(ExchangeConfig::demo(), seed);
        for op in ops {
            match op {
                Op::Offer(call, n) => sim.ex.offer(call, "0401", &format!("030{n}000000"), sim.now),
                Op::Answered(call) => sim.ex.answered(call, sim.now),
                Op::Released(call, cause) => sim.ex.released(call, cause, sim.now),
                Op::DialIn(n) => {
                    let id = sim.ex.dial_in(&format!("07{n}"), "0401", sim.now);
                    prop_assert_ne!(id & INWARD_CALL_BIT, 0);
                }
                Op::Answer(p) => { let _ = sim.ex.answer(&p, sim.now); }
                Op::Hangup(p) => { let _ = sim.ex.hangup(&p, sim.now); }
                Op::AudioIn(call, n) => sim.ex.audio_in(call, &vec![1; n], sim.now),
                Op::AudioOut(call) => {
                    if let Some(frame) = sim.ex.audio_out(call, sim.now) {
                        prop_assert_eq!(frame.len(), FRAME_SAMPLES);
                    }
                }
                Op::Wait(ms) => {
                    let to = sim.ms() + u64::from(ms) * 10;
                    sim.run_to(to);
                }
            }
            sim.drain();
            // Every command runs what is due by its instant, so a deadline always lies ahead.
            if let Some(due) = sim.ex.poll_timeout() {
                prop_assert!(due > sim.now);
            }
        }
        sim.run_to(sim.ms() + 1_000_000);
        prop_assert_eq!(sim.ex.poll_timeout(), None);
        let log = sim.take_log();
        for (_, action) in &log {
            if let Incoming { call, .. } = action {
                prop_assert_ne!(call & INWARD_CALL_BIT, 0);
            }
        }
    }
}
