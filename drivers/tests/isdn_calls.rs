//! Whole calls over an ISDN trunk: the gateway's user side, the simulated line and the
//! simulated exchange, in virtual time (a base `Instant` plus offsets).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use mgw_drivers::isdn::line::Direction;
use mgw_drivers::isdn::{HuntOrder, InterfaceKind, IsdnTrunk, IsdnTrunkConfig};
use mgw_drivers::pstn::{Behaviour, CallAudio, Congestion, ExchangeConfig, NumberRule};
use mgw_drivers::{
    AudioCodec, CallRef, Cause, Driver, Fault, LineEvent, Party, Progress, Setup, SimCommand,
};
use mgw_media::codec::g711;

const STEP: Duration = Duration::from_millis(20);

fn exchange() -> ExchangeConfig {
    ExchangeConfig {
        numbers: vec![
            NumberRule::exact("100", Behaviour::answer(1000, CallAudio::echo())),
            NumberRule::exact("101", Behaviour::answer(500, CallAudio::Tone { hz: 1004 })),
            NumberRule::exact("102", Behaviour::RingOut),
            NumberRule::exact("17", Behaviour::Busy),
            NumberRule::exact(
                "42",
                Behaviour::Congested {
                    cause: Congestion::Switching,
                },
            ),
            NumberRule::exact(
                "34",
                Behaviour::Congested {
                    cause: Congestion::NoCircuit,
                },
            ),
            NumberRule::exact("21", Behaviour::Reject { cause: 21 }),
            NumberRule::exact(
                "222",
                Behaviour::Announcement {
                    hz: 950,
                    duration_ms: 2000,
                    cause: 1,
                },
            ),
            NumberRule::prefix(
                "0309",
                Behaviour::Weighted(vec![
                    (3, Behaviour::answer(2000, CallAudio::echo())),
                    (1, Behaviour::Busy),
                ]),
            ),
        ],
        ..ExchangeConfig::empty()
    }
}

fn config(kind: InterfaceKind) -> IsdnTrunkConfig {
    IsdnTrunkConfig::new("trunk", kind, exchange())
}

/// A continuous sine, framed for the line.
struct Tone {
    hz: f64,
    n: u64,
}

impl Tone {
    fn frame(&mut self, codec: AudioCodec) -> Vec<u8> {
        let pcm: Vec<i16> = (0..160)
            .map(|i| {
                let t = (self.n + i) as f64 / 8000.0;
                (10_000.0 * (2.0 * std::f64::consts::PI * self.hz * t).sin()) as i16
            })
            .collect();
        self.n += 160;
        let mut out = vec![0; 160];
        match codec {
            AudioCodec::Pcmu => g711::encode_ulaw(&pcm, &mut out),
            _ => g711::encode_alaw(&pcm, &mut out),
        }
        out
    }
}

/// The trunk with a switch in front of it that logs events and audio and talks on request.
struct Sim {
    trunk: IsdnTrunk,
    t0: Instant,
    now: Instant,
    log: Vec<(u64, LineEvent)>,
    talk: BTreeMap<CallRef, Tone>,
    heard: BTreeMap<CallRef, Vec<u8>>,
}

impl Sim {
    fn new(config: IsdnTrunkConfig) -> Sim {
        let mut sim = Sim::starting(config);
        sim.run(100);
        assert!(sim.saw(&LineEvent::Fault(Fault::SignallingUp)));
        sim
    }

    /// The trunk as it is created: layer 1 up, SABME sent, the data link not yet up.
    fn starting(config: IsdnTrunkConfig) -> Sim {
        let t0 = Instant::now();
        let trunk = IsdnTrunk::new(config, t0);
        Sim {
            trunk,
            t0,
            now: t0,
            log: Vec::new(),
            talk: BTreeMap::new(),
            heard: BTreeMap::new(),
        }
    }

    fn ms(&self) -> u64 {
        (self.now - self.t0).as_millis() as u64
    }

    fn collect(&mut self) {
        let ms = self.ms();
        while let Some(e) = self.trunk.poll_event() {
            self.log.push((ms, e));
        }
        while let Some((call, frame)) = self.trunk.poll_audio() {
            assert_eq!(frame.len(), 160);
            self.heard.entry(call).or_default().extend(frame);
        }
    }

    /// Runs `ms` of virtual time in 20 ms steps, the switch sending its tones each step.
    fn run(&mut self, ms: u64) {
        let end = self.now + Duration::from_millis(ms);
        let codec = self.codec();
        while self.now < end {
            self.now = (self.now + STEP).min(end);
            for (&call, tone) in &mut self.talk {
                let frame = tone.frame(codec);
                self.trunk.send_audio(call, &frame, self.now);
            }
            self.trunk.handle_timeout(self.now);
            self.collect();
        }
    }

    /// Runs until `pred` matches a new event or `max_ms` pass; returns it.
    fn wait(&mut self, max_ms: u64, pred: impl Fn(&LineEvent) -> bool) -> Option<LineEvent> {
        let from = self.log.len();
        let end = self.ms() + max_ms;
        while self.ms() < end {
            self.run(20);
            if let Some((_, e)) = self.log[from..].iter().find(|(_, e)| pred(e)) {
                return Some(e.clone());
            }
        }
        None
    }

    fn codec(&self) -> AudioCodec {
        match self.trunk.interface() {
            InterfaceKind::T1 => AudioCodec::Pcmu,
            _ => AudioCodec::Pcma,
        }
    }

    fn saw(&self, e: &LineEvent) -> bool {
        self.log.iter().any(|(_, x)| x == e)
    }

    fn setup(&mut self, called: &str) -> Result<CallRef, Cause> {
        let codec = self.codec();
        let r = self.trunk.setup(
            Setup {
                calling: Party::number("3012345"),
                called: Party::number(called),
                codecs: vec![codec],
            },
            self.now,
        );
        self.collect();
        r
    }

    fn simulate(&mut self, command: SimCommand) {
        self.trunk
            .simulate(command, self.now)
            .expect("the trunk models the command");
        self.collect();
    }

    /// Places a call and waits for its answer.
    fn call(&mut self, called: &str) -> CallRef {
        let call = self.setup(called).expect("a channel");
        let answered = self.wait(
            10_000,
            |e| matches!(e, LineEvent::Answered { call: c, .. } if *c == call),
        );
        assert!(answered.is_some(), "{called} not answered: {:?}", self.log);
        call
    }

    fn released(&mut self, call: CallRef, max_ms: u64) -> Option<(u64, Cause)> {
        self.wait(
            max_ms,
            |e| matches!(e, LineEvent::Released { call: c, .. } if *c == call),
        )?;
        self.log.iter().find_map(|(ms, e)| match e {
            LineEvent::Released { call: c, cause } if *c == call => Some((*ms, *cause)),
            _ => None,
        })
    }

    fn events_of(&self, call: CallRef) -> Vec<LineEvent> {
        self.log
            .iter()
            .filter(|(_, e)| match e {
                LineEvent::Incoming { call: c, .. }
                | LineEvent::Progress { call: c, .. }
                | LineEvent::Answered { call: c, .. }
                | LineEvent::Released { call: c, .. } => *c == call,
                LineEvent::Fault(_) => false,
            })
            .map(|(_, e)| e.clone())
            .collect()
    }

    fn trace_has(&self, direction: Direction, text: &str) -> bool {
        self.trunk
            .trace()
            .any(|t| t.direction == direction && t.text.contains(text))
    }
}

/// The dominant frequency of the last `frames` frames heard on `call`, by zero crossings.
fn frequency(sim: &Sim, call: CallRef, frames: usize) -> f64 {
    let codes = &sim.heard[&call];
    assert!(
        codes.len() >= frames * 160,
        "only {} samples heard",
        codes.len()
    );
    let tail = &codes[codes.len() - frames * 160..];
    let mut pcm = vec![0i16; tail.len()];
    match sim.codec() {
        AudioCodec::Pcmu => g711::decode_ulaw(tail, &mut pcm),
        _ => g711::decode_alaw(tail, &mut pcm),
    }
    let loud = pcm.iter().map(|s| i32::from(*s).abs()).max().unwrap_or(0);
    assert!(loud > 3000, "silence on call {call} (peak {loud})");
    let crossings = pcm.windows(2).filter(|w| (w[0] < 0) != (w[1] < 0)).count();
    crossings as f64 * 8000.0 / (2.0 * pcm.len() as f64)
}

fn near(f: f64, target: f64) -> bool {
    (f - target).abs() < target * 0.01
}

#[test]
fn outgoing_call_answered_with_audio_both_ways() {
    let mut sim = Sim::new(config(InterfaceKind::E1));
    let call = sim.setup("100").unwrap();
    // The switch talks a 1 kHz tone from the start; the far party echoes what it hears.
    sim.talk.insert(call, Tone { hz: 1000.0, n: 0 });
    sim.wait(10_000, |e| matches!(e, LineEvent::Answered { .. }))
        .unwrap();
    assert_eq!(
        sim.events_of(call),
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
    assert_eq!(
        sim.trunk.channel(call),
        Some(31),
        "the user side hunts from the top"
    );
    sim.run(1000);
    let f = frequency(&sim, call, 25);
    assert!(near(f, 1000.0), "echo came back at {f} Hz");
    // A second call hears the exchange's own 1004 Hz tone (no echo involved).
    let other = sim.call("101");
    assert_eq!(sim.trunk.channel(other), Some(30));
    sim.run(500);
    let f = frequency(&sim, other, 20);
    assert!(near(f, 1004.0), "tone came at {f} Hz");
    let status = sim.trunk.status();
    assert_eq!(
        (
            status.kind,
            status.up,
            status.channels_busy,
            status.channels_total
        ),
        ("isdn-e1", true, 2, 30)
    );
    // The frames arrive on the line's clock: 50 a second per call, whatever the switch does.
    let before = sim.heard[&call].len();
    sim.talk.clear();
    sim.run(1000);
    assert_eq!(sim.heard[&call].len() - before, 50 * 160);
    sim.trunk.release(call, Cause::NORMAL, sim.now);
    sim.trunk.release(other, Cause::NORMAL, sim.now);
    sim.run(200);
    assert_eq!(sim.trunk.status().channels_busy, 0);
    assert!(!sim
        .log
        .iter()
        .any(|(_, e)| matches!(e, LineEvent::Released { .. })));
}

/// A call placed the moment the trunk starts, before its data link is up, waits for the link
/// and goes through; one placed while establishment is failing is cleared when it fails.
#[test]
fn a_call_placed_while_the_link_comes_up_waits_for_it() {
    let mut sim = Sim::starting(config(InterfaceKind::E1));
    assert!(!sim.trunk.status().up);
    let call = sim.setup("100").expect("held for the link");
    sim.wait(
        10_000,
        |e| matches!(e, LineEvent::Answered { call: c, .. } if *c == call),
    )
    .expect("answered once the link is up");
    assert!(sim.saw(&LineEvent::Fault(Fault::SignallingUp)));

    let mut sim = Sim::starting(config(InterfaceKind::E1));
    sim.simulate(SimCommand::Signalling { up: false });
    let call2 = sim.setup("100").expect("held for the link");
    let (_, cause) = sim.released(call2, 10_000).expect("cleared with the link");
    assert_ne!(cause, Cause::NORMAL, "{:?}", sim.log);
    assert!(!sim.trunk.status().up);
}

#[test]
fn t1_carries_ulaw() {
    let mut sim = Sim::new(config(InterfaceKind::T1));
    let call = sim.setup("100").unwrap();
    sim.talk.insert(call, Tone { hz: 600.0, n: 0 });
    let answered = sim.wait(10_000, |e| matches!(e, LineEvent::Answered { .. }));
    assert_eq!(
        answered,
        Some(LineEvent::Answered {
            call,
            codec: AudioCodec::Pcmu
        })
    );
    assert_eq!(sim.trunk.channel(call), Some(23));
    sim.run(1000);
    assert!(near(frequency(&sim, call, 25), 600.0));
    assert_eq!(sim.trunk.status().kind, "isdn-t1");
}

#[test]
fn refusals_carry_the_exchange_cause() {
    let mut sim = Sim::new(config(InterfaceKind::E1));
    for (number, cause) in [
        ("17", Cause::USER_BUSY),
        ("999", Cause::UNALLOCATED),
        ("42", Cause::SWITCHING_CONGESTION),
        ("34", Cause::NO_CIRCUIT),
        ("21", Cause::CALL_REJECTED),
    ] {
        let call = sim.setup(number).unwrap();
        let (_, got) = sim.released(call, 5000).expect("released");
        assert_eq!(got, cause, "calling {number}");
        let events = sim.events_of(call);
        if number == "21" {
            // Refused at once, without proceeding.
            assert_eq!(events, vec![LineEvent::Released { call, cause }]);
        } else {
            assert_eq!(
                events[0],
                LineEvent::Progress {
                    call,
                    progress: Progress::Proceeding
                }
            );
        }
    }
    assert_eq!(sim.trunk.status().channels_busy, 0);
}

#[test]
fn announcement_plays_in_band_before_the_refusal() {
    let mut sim = Sim::new(config(InterfaceKind::E1));
    let call = sim.setup("222").unwrap();
    let inband = LineEvent::Progress {
        call,
        progress: Progress::InbandInfo,
    };
    sim.wait(2000, |e| *e == inband)
        .expect("in-band information");
    sim.run(1000);
    assert!(near(frequency(&sim, call, 25), 950.0));
    let (_, cause) = sim.released(call, 5000).unwrap();
    assert_eq!(cause, Cause::UNALLOCATED);
    assert!(sim.trace_has(Direction::ToUser, "PROGRESS cr=1' pi=8"));
    assert_eq!(sim.trunk.status().channels_busy, 0);
}

#[test]
fn inward_call_answered_and_hung_up_by_the_caller() {
    let mut sim = Sim::new(config(InterfaceKind::Bri));
    sim.simulate(SimCommand::Dial {
        from: "0301234".into(),
        to: "20".into(),
    });
    let incoming = sim
        .wait(1000, |e| matches!(e, LineEvent::Incoming { .. }))
        .expect("an incoming call");
    let LineEvent::Incoming {
        call,
        calling,
        called,
        codec,
        via,
    } = incoming
    else {
        unreachable!()
    };
    assert_eq!(
        (calling.number.as_str(), called.number.as_str(), codec, via),
        ("0301234", "20", AudioCodec::Pcma, None)
    );
    assert_eq!(
        sim.trunk.channel(call),
        Some(1),
        "the network hunts from the bottom"
    );
    sim.trunk.alert(call, sim.now);
    sim.run(500);
    sim.trunk.answer(call, sim.now);
    sim.talk.insert(call, Tone { hz: 800.0, n: 0 });
    sim.run(1000);
    // The caller is a person, heard as an echo of what the switch says.
    assert!(near(frequency(&sim, call, 25), 800.0));
    sim.simulate(SimCommand::Hangup {
        party: "0301234".into(),
    });
    let (_, cause) = sim.released(call, 1000).unwrap();
    assert_eq!(cause, Cause::NORMAL);
    assert_eq!(sim.trunk.status().kind, "isdn-bri");
}

/// Early media to a PSTN caller: before answering, the switch's side sends in-band
/// information (a 183 with SDP on the SIP side). The gateway sends ALERTING with progress
/// indicator 8 and switches the B channel through, so the waiting caller hears it (and, as an
/// echoing party, says it back); after a plain ALERTING, PROGRESS carries the indicator.
#[test]
fn early_media_reaches_a_waiting_pstn_caller() {
    for ring_first in [false, true] {
        let mut sim = Sim::new(config(InterfaceKind::E1));
        sim.simulate(SimCommand::Dial {
            from: "0301234".into(),
            to: "20".into(),
        });
        let Some(LineEvent::Incoming { call, .. }) =
            sim.wait(1000, |e| matches!(e, LineEvent::Incoming { .. }))
        else {
            panic!("an incoming call: {:?}", sim.log)
        };
        if ring_first {
            sim.trunk.alert(call, sim.now);
            sim.run(200);
        }
        sim.trunk.early_media(call, sim.now);
        sim.talk.insert(call, Tone { hz: 700.0, n: 0 });
        sim.run(1000);
        assert!(
            near(frequency(&sim, call, 25), 700.0),
            "ring first {ring_first}: the caller hears the early media"
        );
        let indicator = if ring_first { "PROGRESS" } else { "ALERTING" };
        assert!(
            sim.trunk
                .trace()
                .any(|t| t.text.contains(indicator) && t.text.contains("pi=8")),
            "{indicator} with a progress indicator: {:?}",
            sim.trunk
                .trace()
                .map(|t| t.text.clone())
                .collect::<Vec<_>>()
        );
        sim.trunk.answer(call, sim.now);
        sim.run(500);
        assert!(near(frequency(&sim, call, 20), 700.0));
    }
}

#[test]
fn all_channels_busy_on_e1() {
    let mut sim = Sim::new(config(InterfaceKind::E1));
    let calls: Vec<CallRef> = (0..30).map(|_| sim.setup("100").unwrap()).collect();
    sim.run(5000);
    for &call in &calls {
        assert!(sim.saw(&LineEvent::Answered {
            call,
            codec: AudioCodec::Pcma
        }));
    }
    let mut channels: Vec<u8> = calls
        .iter()
        .map(|&c| sim.trunk.channel(c).unwrap())
        .collect();
    channels.sort_unstable();
    assert_eq!(channels, InterfaceKind::E1.b_channels());
    assert_eq!(sim.setup("100"), Err(Cause::NO_CIRCUIT));
    // An inward call finds no channel either: the exchange's caller is refused, the switch
    // hears nothing.
    let before = sim.log.len();
    sim.simulate(SimCommand::Dial {
        from: "555".into(),
        to: "20".into(),
    });
    sim.run(200);
    assert_eq!(sim.log.len(), before);
    // One call ends, and there is room again.
    sim.trunk.release(calls[0], Cause::NORMAL, sim.now);
    sim.run(200);
    assert!(sim.setup("100").is_ok());
}

#[test]
fn bri_has_two_channels() {
    let mut sim = Sim::new(config(InterfaceKind::Bri));
    let a = sim.call("100");
    let b = sim.call("100");
    assert_eq!(
        (sim.trunk.channel(a), sim.trunk.channel(b)),
        (Some(2), Some(1))
    );
    assert_eq!(sim.setup("100"), Err(Cause::NO_CIRCUIT));
}

#[test]
fn glare_on_the_same_channel_moves_the_preferred_call() {
    let mut c = config(InterfaceKind::E1);
    c.hunt = HuntOrder::Lowest;
    let mut sim = Sim::new(c);
    // Both sides pick channel 1 at the same instant.
    let out = sim.setup("100").unwrap();
    assert_eq!(sim.trunk.channel(out), Some(1));
    sim.simulate(SimCommand::Dial {
        from: "555".into(),
        to: "20".into(),
    });
    let Some(LineEvent::Incoming { call: inward, .. }) =
        sim.wait(1000, |e| matches!(e, LineEvent::Incoming { .. }))
    else {
        panic!("no incoming call: {:?}", sim.log);
    };
    sim.wait(10_000, |e| matches!(e, LineEvent::Answered { .. }))
        .unwrap();
    assert_eq!(
        sim.trunk.channel(inward),
        Some(1),
        "the network wins the channel"
    );
    assert_eq!(
        sim.trunk.channel(out),
        Some(2),
        "our call moved to the next one"
    );
    assert!(sim.trace_has(Direction::ToUser, "CALL PROCEEDING cr=1' ch=2!"));
}

#[test]
fn glare_with_an_exclusive_channel_clears_our_call() {
    let mut c = config(InterfaceKind::E1);
    c.hunt = HuntOrder::Lowest;
    c.exclusive = true;
    let mut sim = Sim::new(c);
    let out = sim.setup("100").unwrap();
    sim.simulate(SimCommand::Dial {
        from: "555".into(),
        to: "20".into(),
    });
    let (_, cause) = sim.released(out, 1000).unwrap();
    assert_eq!(cause, Cause::REQUESTED_CHANNEL_UNAVAILABLE);
    assert!(sim
        .log
        .iter()
        .any(|(_, e)| matches!(e, LineEvent::Incoming { .. })));
}

#[test]
fn t303_expires_when_the_setup_gets_no_answer() {
    let mut sim = Sim::new(config(InterfaceKind::E1));
    sim.simulate(SimCommand::Signalling { up: false });
    let start = sim.ms();
    let call = sim.setup("100").unwrap();
    let (at, cause) = sim.released(call, 20_000).unwrap();
    assert_eq!(cause, Cause::RECOVERY_ON_TIMER_EXPIRY);
    assert_eq!(at - start, 8000, "two T303 periods");
    let setups = sim
        .trunk
        .trace()
        .filter(|t| t.text.contains("SETUP cr=1 ") && t.text.contains("(lost)"))
        .count();
    assert_eq!(
        setups, 1,
        "the repeated SETUP waits behind the unacknowledged one"
    );
    // Q.921 gives up on the link at the same time.
    sim.run(100);
    assert!(sim.saw(&LineEvent::Fault(Fault::SignallingDown)));
    assert!(!sim.trunk.status().up);
    assert_eq!(sim.setup("100"), Err(Cause::NETWORK_OUT_OF_ORDER));
    // Restored, the gateway brings the link back on its next attempt.
    sim.simulate(SimCommand::Signalling { up: true });
    sim.run(10_000);
    assert_eq!(
        sim.log
            .iter()
            .filter(|(_, e)| *e == LineEvent::Fault(Fault::SignallingUp))
            .count(),
        2
    );
    sim.call("100");
}

#[test]
fn layer1_loss_during_a_call() {
    let mut sim = Sim::new(config(InterfaceKind::E1));
    let call = sim.call("100");
    sim.run(1000);
    let lost_at = sim.ms();
    sim.simulate(SimCommand::Layer1 { up: false });
    assert_eq!(
        sim.log[sim.log.len() - 2..]
            .iter()
            .map(|(_, e)| e.clone())
            .collect::<Vec<_>>(),
        vec![
            LineEvent::Fault(Fault::Layer1Down),
            LineEvent::Fault(Fault::SignallingDown)
        ]
    );
    assert!(!sim.trunk.status().up);
    // The active call waits T309 for the link, then goes with cause 38.
    let (at, cause) = sim.released(call, 100_000).unwrap();
    assert_eq!(cause, Cause::NETWORK_OUT_OF_ORDER);
    assert_eq!(at - lost_at, 90_000);
    assert_eq!(sim.trunk.status().channels_busy, 0);
    sim.simulate(SimCommand::Layer1 { up: true });
    sim.run(100);
    assert!(sim.saw(&LineEvent::Fault(Fault::Layer1Up)));
    assert!(sim.trunk.status().up);
    sim.call("100");
}

#[test]
fn short_layer1_loss_keeps_an_active_call() {
    let mut sim = Sim::new(config(InterfaceKind::E1));
    let call = sim.call("100");
    let ringing = sim.setup("102").unwrap();
    let alerting = LineEvent::Progress {
        call: ringing,
        progress: Progress::Alerting,
    };
    sim.wait(5000, |e| *e == alerting);
    sim.simulate(SimCommand::Layer1 { up: false });
    // A call not yet answered is cleared at once.
    assert!(sim.saw(&LineEvent::Released {
        call: ringing,
        cause: Cause::NETWORK_OUT_OF_ORDER
    }));
    sim.run(5000);
    sim.simulate(SimCommand::Layer1 { up: true });
    sim.talk.insert(call, Tone { hz: 1000.0, n: 0 });
    sim.run(2000);
    assert!(!sim
        .log
        .iter()
        .any(|(_, e)| matches!(e, LineEvent::Released { call: c, .. } if *c == call)));
    assert!(sim.trace_has(Direction::ToNetwork, "STATUS cr=1 cause=31 state=10"));
    assert!(near(frequency(&sim, call, 25), 1000.0));
}

#[test]
fn d_channel_cut_during_a_call() {
    let mut sim = Sim::new(config(InterfaceKind::E1));
    let call = sim.call("100");
    sim.talk.insert(call, Tone { hz: 1000.0, n: 0 });
    sim.run(1000);
    let cut_at = sim.ms();
    sim.simulate(SimCommand::Signalling { up: false });
    sim.wait(30_000, |e| *e == LineEvent::Fault(Fault::SignallingDown))
        .expect("Q.921 notices");
    let down_at = sim.log.last().unwrap().0;
    // T203 (10 s after the last frame), N200 polls and N200+1 SABMEs one T200 apart.
    assert!(
        (15_000..=18_000).contains(&(down_at - cut_at)),
        "{}",
        down_at - cut_at
    );
    // Layer 1 is fine: the audio still flows while T309 runs.
    let heard = sim.heard[&call].len();
    sim.run(1000);
    assert_eq!(sim.heard[&call].len() - heard, 50 * 160);
    let (at, cause) = sim.released(call, 100_000).unwrap();
    assert_eq!(cause, Cause::TEMPORARY_FAILURE);
    assert_eq!(at - down_at, 90_000);
}

#[test]
fn d_channel_cut_without_t309_clears_at_once() {
    let mut c = config(InterfaceKind::E1);
    c.timers.call.t309 = None;
    let mut sim = Sim::new(c);
    let call = sim.call("100");
    sim.simulate(SimCommand::Signalling { up: false });
    let (at, cause) = sim.released(call, 30_000).unwrap();
    assert_eq!(cause, Cause::TEMPORARY_FAILURE);
    let down = sim
        .log
        .iter()
        .find(|(_, e)| *e == LineEvent::Fault(Fault::SignallingDown))
        .unwrap()
        .0;
    assert_eq!(at, down);
}

#[test]
fn restart_from_either_side_clears_the_calls() {
    let mut sim = Sim::new(config(InterfaceKind::E1));
    let a = sim.call("100");
    let b = sim.call("100");
    sim.trunk.restart(sim.now);
    sim.collect();
    assert!(sim.saw(&LineEvent::Released {
        call: a,
        cause: Cause::TEMPORARY_FAILURE
    }));
    assert!(sim.saw(&LineEvent::Released {
        call: b,
        cause: Cause::TEMPORARY_FAILURE
    }));
    assert_eq!(
        sim.trunk.status().channels_busy,
        30,
        "restarting until acknowledged"
    );
    sim.run(100);
    assert!(sim.trace_has(Direction::ToNetwork, "RESTART cr=0 restart=Interface"));
    assert!(sim.trace_has(Direction::ToUser, "RESTART ACKNOWLEDGE cr=0'"));
    assert_eq!(sim.trunk.status().channels_busy, 0);
    let c = sim.call("100");
    sim.trunk.restart_from_network(sim.now);
    sim.run(100);
    assert!(sim.saw(&LineEvent::Released {
        call: c,
        cause: Cause::TEMPORARY_FAILURE
    }));
    assert!(sim.trace_has(Direction::ToNetwork, "RESTART ACKNOWLEDGE"));
    sim.call("100");
}

#[test]
fn status_enquiry_both_ways() {
    let mut sim = Sim::new(config(InterfaceKind::E1));
    let call = sim.call("100");
    sim.trunk.status_enquiry(call, sim.now);
    sim.run(100);
    assert!(sim.trace_has(Direction::ToNetwork, "STATUS ENQUIRY cr=1"));
    assert!(sim.trace_has(Direction::ToUser, "STATUS cr=1' cause=30 state=10"));
    sim.trunk.status_enquiry_from_network(call, sim.now);
    sim.run(100);
    assert!(sim.trace_has(Direction::ToUser, "STATUS ENQUIRY cr=1'"));
    assert!(sim.trace_has(Direction::ToNetwork, "STATUS cr=1 cause=30 state=10"));
    sim.run(10_000);
    assert_eq!(sim.events_of(call).len(), 3, "the call is untouched");
}

#[test]
fn far_end_rings_out_and_the_switch_gives_up() {
    let mut sim = Sim::new(config(InterfaceKind::E1));
    let call = sim.setup("102").unwrap();
    sim.run(40_000);
    assert_eq!(
        sim.events_of(call).last(),
        Some(&LineEvent::Progress {
            call,
            progress: Progress::Alerting
        }),
        "ALERTING stops T310"
    );
    sim.trunk.release(call, Cause::NORMAL, sim.now);
    sim.run(200);
    assert_eq!(sim.trunk.status().channels_busy, 0);
    assert!(sim.trace_has(Direction::ToUser, "RELEASE cr=1'"));
    assert!(sim.trace_has(Direction::ToNetwork, "RELEASE COMPLETE cr=1"));
}

#[test]
fn unknown_sim_commands_are_refused() {
    let mut sim = Sim::new(config(InterfaceKind::E1));
    assert!(sim
        .trunk
        .simulate(
            SimCommand::Unit {
                name: "x".into(),
                up: false
            },
            sim.now
        )
        .is_err());
    assert_eq!(sim.trunk.name(), "trunk");
    assert!(sim.trunk.numbers().is_empty());
}

/// One busy hour in miniature: calls to numbers whose outcome and timing come from the seed.
fn scenario(seed: u64) -> Vec<(u64, LineEvent)> {
    let mut c = config(InterfaceKind::E1);
    c.seed = seed;
    let mut sim = Sim::new(c);
    let mut calls = Vec::new();
    for i in 0..12u32 {
        calls.push(sim.setup(&format!("0309{i:04}")).expect("a channel"));
        sim.run(150);
        if i % 4 == 3 {
            sim.simulate(SimCommand::Dial {
                from: format!("07{i}"),
                to: "20".into(),
            });
        }
    }
    sim.run(5000);
    let incoming: Vec<CallRef> = sim
        .log
        .iter()
        .filter_map(|(_, e)| match e {
            LineEvent::Incoming { call, .. } => Some(*call),
            _ => None,
        })
        .collect();
    for call in incoming {
        sim.trunk.answer(call, sim.now);
        sim.run(100);
    }
    for call in calls {
        sim.trunk.release(call, Cause::NORMAL, sim.now);
        sim.run(60);
    }
    sim.run(2000);
    sim.log
}

#[test]
fn same_seed_same_event_sequence() {
    let a = scenario(7);
    let b = scenario(7);
    assert_eq!(a, b);
    assert!(a.iter().any(|(_, e)| matches!(
        e,
        LineEvent::Released {
            cause: Cause::USER_BUSY,
            ..
        }
    )));
    assert!(a
        .iter()
        .any(|(_, e)| matches!(e, LineEvent::Answered { .. })));
    assert_ne!(a, scenario(8), "the seed drives the exchange");
}
