//! DECT driver calls end to end in virtual time: the test plays the switch (setup, alert,
//! answer, release, 20 ms frames encoded as the gateway would) against simulated bases and
//! handsets, and measures what comes back.

use std::time::{Duration, Instant};

use mgw_drivers::dect::{
    BaseConfig, DectConfig, DectDriver, HandsetAudio, HandsetConfig, LINK_TIMEOUT_MS,
    MAX_CATCHUP_AIR_FRAMES, PAGING_MAX_MS, PAGING_MIN_MS,
};
use mgw_drivers::{
    AudioCodec, CallRef, Cause, Driver, Fault, LineEvent, Party, Progress, Setup, SimCommand,
};
use mgw_media::codec::g722::{G722Decoder, G722Encoder};
use mgw_media::codec::g726::{G726Decoder, G726Encoder};

const MS: Duration = Duration::from_millis(1);

/// The switch's side of the test: the driver, virtual time, and what came out, stamped with
/// the virtual time it was polled at.
struct Switch {
    driver: DectDriver,
    t0: Instant,
    now: Instant,
    events: Vec<(Duration, LineEvent)>,
    frames: Vec<(Duration, CallRef, Vec<u8>)>,
}

impl Switch {
    fn new(config: DectConfig) -> Switch {
        let t0 = Instant::now();
        Switch {
            driver: DectDriver::new(config, t0).expect("valid configuration"),
            t0,
            now: t0,
            events: Vec::new(),
            frames: Vec::new(),
        }
    }

    fn drain(&mut self) {
        let at = self.now - self.t0;
        while let Some(e) = self.driver.poll_event() {
            self.events.push((at, e));
        }
        while let Some((call, frame)) = self.driver.poll_audio() {
            self.frames.push((at, call, frame));
        }
    }

    /// Runs the driver's timers up to `now + d`, handling each at its exact deadline.
    fn run(&mut self, d: Duration) {
        let until = self.now + d;
        for _ in 0..1_000_000 {
            match self.driver.poll_timeout() {
                Some(t) if t <= until => {
                    self.now = self.now.max(t);
                    self.driver.handle_timeout(self.now);
                    self.drain();
                }
                _ => break,
            }
        }
        self.now = until;
        self.drain();
    }

    /// Runs for `d` while sending `call` one frame from `source` every 20 ms of the switch's
    /// own clock.
    fn run_sending(&mut self, call: CallRef, d: Duration, source: &mut dyn FnMut() -> Vec<u8>) {
        let steps = d.as_millis() / 20;
        for _ in 0..steps {
            self.run(20 * MS);
            let frame = source();
            self.driver.send_audio(call, &frame, self.now);
            self.drain();
        }
    }

    fn setup(&mut self, number: &str, codecs: &[AudioCodec]) -> Result<CallRef, Cause> {
        let r = self.driver.setup(
            Setup {
                calling: Party::number("100"),
                called: Party::number(number),
                codecs: codecs.to_vec(),
            },
            self.now,
        );
        self.drain();
        r
    }

    fn simulate(&mut self, command: SimCommand) -> Result<(), String> {
        let r = self.driver.simulate(command, self.now);
        self.drain();
        r
    }

    fn take_events(&mut self) -> Vec<(Duration, LineEvent)> {
        std::mem::take(&mut self.events)
    }

    fn frames_of(&self, call: CallRef) -> Vec<&Vec<u8>> {
        self.frames
            .iter()
            .filter(|(_, c, _)| *c == call)
            .map(|(_, _, f)| f)
            .collect()
    }
}

fn base(name: &str, rfpi: &str, channels: u32, wideband: bool, ppm: i32) -> BaseConfig {
    BaseConfig {
        clock_ppm: Some(ppm),
        ..BaseConfig::new(name, rfpi, channels, wideband)
    }
}

fn handset(ipui: &str, base: &str, number: &str, audio: HandsetAudio) -> HandsetConfig {
    HandsetConfig {
        auto_answer: Some(300),
        audio,
        ..HandsetConfig::new(ipui, base, number, &format!("Handset {number}"))
    }
}

/// base1: narrowband, 2 channels, +50 ppm; base2: wideband, 4 channels, -50 ppm.
fn config() -> DectConfig {
    let mut c = DectConfig::new("dect1");
    c.seed = 42;
    c.bases.push(base("base1", "0012345678", 2, false, 50));
    c.bases.push(base("base2", "00123456AB", 4, true, -50));
    c.handsets.push(handset(
        "IPUI-00A1B2C3D4",
        "base1",
        "300",
        HandsetAudio::Echo,
    ));
    c.handsets.push(handset(
        "IPUI-00A1B2C3D5",
        "base1",
        "301",
        HandsetAudio::Tone { hz: 1000 },
    ));
    c.handsets.push(handset(
        "IPUI-00A1B2C3D6",
        "base1",
        "302",
        HandsetAudio::Silence,
    ));
    c.handsets.push(handset(
        "IPUI-00A1B2C3D7",
        "base2",
        "310",
        HandsetAudio::Echo,
    ));
    c.handsets.push(HandsetConfig {
        auto_answer: None,
        ..handset("IPUI-00A1B2C3D8", "base2", "311", HandsetAudio::Echo)
    });
    c
}

fn tone(hz: f64, rate: f64, start: usize, n: usize) -> Vec<i16> {
    (start..start + n)
        .map(|i| (8000.0 * (std::f64::consts::TAU * hz * i as f64 / rate).sin()) as i16)
        .collect()
}

/// A G.726-32 1 kHz tone, 20 ms a frame, as the switch encodes it.
fn g726_tone_source(hz: f64) -> impl FnMut() -> Vec<u8> {
    let mut encoder = G726Encoder::new();
    let mut n = 0;
    move || {
        let pcm = tone(hz, 8000.0, n, 160);
        n += 160;
        let mut out = vec![0u8; 80];
        encoder.encode(&pcm, &mut out);
        out
    }
}

fn g722_tone_source(hz: f64) -> impl FnMut() -> Vec<u8> {
    let mut encoder = G722Encoder::new();
    let mut n = 0;
    move || {
        let pcm = tone(hz, 16_000.0, n, 320);
        n += 320;
        let mut out = vec![0u8; 160];
        encoder.encode(&pcm, &mut out);
        out
    }
}

fn decode_g726(frames: &[&Vec<u8>]) -> Vec<i16> {
    let mut decoder = G726Decoder::new();
    let mut pcm = Vec::new();
    for f in frames {
        let mut out = vec![0i16; f.len() * 2];
        decoder.decode(f, &mut out);
        pcm.extend(out);
    }
    pcm
}

fn decode_g722(frames: &[&Vec<u8>]) -> Vec<i16> {
    let mut decoder = G722Decoder::new();
    let mut pcm = Vec::new();
    for f in frames {
        let mut out = vec![0i16; f.len() * 2];
        decoder.decode(f, &mut out);
        pcm.extend(out);
    }
    pcm
}

fn goertzel(x: &[i16], hz: f64, rate: f64) -> f64 {
    let coeff = 2.0 * (std::f64::consts::TAU * hz / rate).cos();
    let (mut s1, mut s2) = (0f64, 0f64);
    for v in x {
        let s0 = f64::from(*v) + coeff * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    s1 * s1 + s2 * s2 - coeff * s1 * s2
}

/// Asserts `pcm` carries a tone at `hz` well above every other probe frequency.
fn assert_tone(pcm: &[i16], hz: f64, rate: f64) {
    assert!(pcm.len() > 4000, "too little audio: {} samples", pcm.len());
    let target = goertzel(pcm, hz, rate);
    for other in [300.0, 700.0, 1500.0, 2500.0, 3300.0, 6000.0] {
        if (other - hz).abs() < 100.0 || other >= rate / 2.0 {
            continue;
        }
        let p = goertzel(pcm, other, rate);
        assert!(
            target > 100.0 * p,
            "{hz} Hz ({target:e}) not dominant over {other} Hz ({p:e})"
        );
    }
    let rms = (pcm.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / pcm.len() as f64).sqrt();
    assert!(rms > 2000.0, "tone too quiet: rms {rms}");
    // Zero crossings agree with the frequency: two per period. Only where a period has
    // enough samples that codec noise cannot flip the sign of one next to a crossing.
    if rate / hz < 8.0 {
        return;
    }
    let crossings = pcm.windows(2).filter(|w| (w[0] < 0) != (w[1] < 0)).count() as f64;
    let measured = crossings / 2.0 / (pcm.len() as f64 / rate);
    assert!(
        (measured - hz).abs() < hz * 0.02,
        "zero crossings say {measured} Hz, expected {hz}"
    );
}

fn events_only(events: &[(Duration, LineEvent)]) -> Vec<LineEvent> {
    events.iter().map(|(_, e)| e.clone()).collect()
}

#[test]
fn switch_calls_a_handset_which_rings_answers_and_echoes_a_tone() {
    let mut sw = Switch::new(config());
    let call = sw
        .setup("300", &[AudioCodec::Pcma, AudioCodec::G726_32])
        .unwrap();
    sw.run(Duration::from_secs(1));
    let events = sw.take_events();
    assert_eq!(
        events_only(&events),
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
                codec: AudioCodec::G726_32
            },
        ]
    );
    let rang = events[1].0;
    assert!(
        rang >= Duration::from_millis(PAGING_MIN_MS)
            && rang <= Duration::from_millis(PAGING_MAX_MS),
        "paging took {rang:?}"
    );
    assert_eq!(
        events[2].0,
        rang + 300 * MS,
        "auto-answer 300 ms after ringing"
    );

    sw.frames.clear();
    sw.run_sending(call, Duration::from_secs(2), &mut g726_tone_source(1000.0));
    let frames = sw.frames_of(call);
    assert!(frames.iter().all(|f| f.len() == 80));
    let pcm = decode_g726(&frames);
    // The echo starts once the jitter buffer has filled; judge the steady part.
    assert_tone(&pcm[4000..], 1000.0, 8000.0);

    sw.driver.release(call, Cause::NORMAL, sw.now);
    sw.run(Duration::from_secs(1));
    assert!(
        sw.take_events().is_empty(),
        "no Released after the switch's release"
    );
    assert_eq!(sw.driver.status().channels_busy, 0);
}

#[test]
fn a_tone_handset_answered_by_hand_sends_its_tone() {
    let mut config = config();
    config.handsets[1].auto_answer = None;
    let mut sw = Switch::new(config);
    let call = sw.setup("301", &[AudioCodec::G726_32]).unwrap();
    assert!(
        sw.simulate(SimCommand::Answer {
            party: "301".into()
        })
        .is_err(),
        "still paging"
    );
    sw.run(Duration::from_secs(2));
    assert_eq!(
        events_only(&sw.take_events()).last(),
        Some(&LineEvent::Progress {
            call,
            progress: Progress::Alerting
        }),
        "rings until answered"
    );
    assert!(sw.frames.is_empty(), "no audio before the answer");
    sw.simulate(SimCommand::Answer {
        party: "IPUI-00A1B2C3D5".into(),
    })
    .unwrap();
    assert_eq!(
        events_only(&sw.take_events()),
        vec![LineEvent::Answered {
            call,
            codec: AudioCodec::G726_32
        }]
    );
    // The switch sends silence; the handset's own tone comes back.
    let mut silence = || vec![0u8; 80];
    sw.run_sending(call, Duration::from_secs(1), &mut silence);
    let pcm = decode_g726(&sw.frames_of(call));
    assert_tone(&pcm[800..], 1000.0, 8000.0);
}

#[test]
fn a_wideband_base_and_handset_carry_g722() {
    let mut sw = Switch::new(config());
    // A 5 kHz tone only survives a wideband path.
    let call = sw
        .setup("310", &[AudioCodec::G722, AudioCodec::Pcma])
        .unwrap();
    sw.run(Duration::from_secs(1));
    assert!(
        events_only(&sw.take_events()).contains(&LineEvent::Answered {
            call,
            codec: AudioCodec::G722
        })
    );
    sw.frames.clear();
    sw.run_sending(call, Duration::from_secs(2), &mut g722_tone_source(5000.0));
    let frames = sw.frames_of(call);
    assert!(frames.iter().all(|f| f.len() == 160));
    let pcm = decode_g722(&frames);
    assert_tone(&pcm[8000..], 5000.0, 16_000.0);
}

#[test]
fn narrowband_is_used_unless_everyone_can_do_wideband() {
    let mut config = config();
    config.handsets[4].wideband = false;
    config.handsets[4].auto_answer = Some(0);
    let mut sw = Switch::new(config);
    // The switch does not offer G.722; none of its list is a DECT codec either: G.726-32,
    // and the gateway transcodes.
    let a = sw.setup("310", &[AudioCodec::Pcma]).unwrap();
    // A narrowband handset on a wideband base.
    let b = sw.setup("311", &[AudioCodec::G722]).unwrap();
    // A narrowband base.
    let c = sw.setup("300", &[AudioCodec::G722]).unwrap();
    sw.run(Duration::from_secs(1));
    let answered: Vec<_> = events_only(&sw.take_events())
        .into_iter()
        .filter_map(|e| match e {
            LineEvent::Answered { call, codec } => Some((call, codec)),
            _ => None,
        })
        .collect();
    assert_eq!(answered.len(), 3);
    for call in [a, b, c] {
        assert!(answered.contains(&(call, AudioCodec::G726_32)), "{call}");
    }
}

#[test]
fn a_handset_calls_the_switch() {
    let mut sw = Switch::new(config());
    sw.simulate(SimCommand::Dial {
        from: "IPUI-00A1B2C3D7".into(),
        to: "200".into(),
    })
    .unwrap();
    let events = events_only(&sw.take_events());
    let [LineEvent::Incoming {
        call,
        calling,
        called,
        codec,
        via,
    }] = events.as_slice()
    else {
        panic!("expected one Incoming, got {events:?}");
    };
    let call = *call;
    assert_eq!(calling.number, "310");
    assert_eq!(calling.name.as_deref(), Some("Handset 310"));
    assert_eq!(called.number, "200");
    assert_eq!(*codec, AudioCodec::G722);
    assert_eq!(via.as_deref(), Some("310"));
    assert_eq!(sw.driver.status().channels_busy, 1);

    sw.driver.alert(call, sw.now);
    sw.run(Duration::from_secs(1));
    assert!(sw.frames.is_empty(), "ringback is the handset's own");
    sw.driver.answer(call, sw.now);
    sw.run_sending(call, Duration::from_secs(2), &mut g722_tone_source(1000.0));
    let pcm = decode_g722(&sw.frames_of(call));
    assert_tone(&pcm[8000..], 1000.0, 16_000.0);

    sw.simulate(SimCommand::Hangup {
        party: "310".into(),
    })
    .unwrap();
    assert_eq!(
        events_only(&sw.take_events()),
        vec![LineEvent::Released {
            call,
            cause: Cause::NORMAL
        }]
    );
    assert_eq!(sw.driver.status().channels_busy, 0);
    assert!(sw
        .simulate(SimCommand::Hangup {
            party: "310".into()
        })
        .is_err());
}

#[test]
fn dialling_needs_a_handset_that_can_reach_its_base() {
    let mut sw = Switch::new(config());
    let dial = |from: &str| SimCommand::Dial {
        from: from.into(),
        to: "200".into(),
    };
    assert!(sw.simulate(dial("999")).is_err(), "unknown handset");
    assert!(sw
        .simulate(SimCommand::Dial {
            from: "300".into(),
            to: "".into()
        })
        .is_err());
    sw.simulate(SimCommand::InRange {
        handset: "300".into(),
        in_range: false,
    })
    .unwrap();
    assert!(sw.simulate(dial("300")).is_err(), "out of range");
    sw.simulate(SimCommand::Unit {
        name: "base1".into(),
        up: false,
    })
    .unwrap();
    assert!(sw.simulate(dial("301")).is_err(), "base down");
    assert!(sw.simulate(dial("310")).is_ok(), "the other base is up");
    assert!(sw.simulate(dial("310")).is_err(), "already in a call");
}

#[test]
fn a_full_base_refuses_with_no_circuit() {
    let mut sw = Switch::new(config());
    let a = sw.setup("300", &[]).unwrap();
    sw.simulate(SimCommand::Dial {
        from: "301".into(),
        to: "200".into(),
    })
    .unwrap();
    assert_eq!(sw.setup("302", &[]), Err(Cause::NO_CIRCUIT));
    assert!(sw
        .simulate(SimCommand::Dial {
            from: "302".into(),
            to: "200".into()
        })
        .is_err());
    let status = sw.driver.status();
    assert_eq!((status.channels_busy, status.channels_total), (2, 6));
    assert!(status.detail.contains("base1 up 2/2"), "{}", status.detail);
    // The other base still has room.
    assert!(sw.setup("310", &[]).is_ok());
    sw.driver.release(a, Cause::NORMAL, sw.now);
    assert!(sw.setup("302", &[]).is_ok());
}

#[test]
fn unknown_busy_and_absent_handsets_are_refused() {
    let mut sw = Switch::new(config());
    assert_eq!(sw.setup("399", &[]), Err(Cause::UNALLOCATED));
    assert_eq!(sw.setup("", &[]), Err(Cause::UNALLOCATED));
    sw.setup("310", &[]).unwrap();
    assert_eq!(sw.setup("310", &[]), Err(Cause::USER_BUSY));
    sw.simulate(SimCommand::InRange {
        handset: "IPUI-00A1B2C3D4".into(),
        in_range: false,
    })
    .unwrap();
    assert_eq!(sw.setup("300", &[]), Err(Cause::SUBSCRIBER_ABSENT));
    assert!(sw
        .driver
        .status()
        .detail
        .contains("300 IPUI-00A1B2C3D4 on base1 out of range"));
    sw.simulate(SimCommand::InRange {
        handset: "300".into(),
        in_range: true,
    })
    .unwrap();
    assert!(sw.setup("300", &[]).is_ok());
}

#[test]
fn a_handset_leaving_range_mid_call_is_released_after_the_link_timeout() {
    let mut sw = Switch::new(config());
    let call = sw.setup("300", &[]).unwrap();
    sw.run(Duration::from_secs(1));
    sw.take_events();

    // A short fade: the call survives it.
    sw.simulate(SimCommand::InRange {
        handset: "300".into(),
        in_range: false,
    })
    .unwrap();
    sw.run(Duration::from_millis(LINK_TIMEOUT_MS - 100));
    sw.simulate(SimCommand::InRange {
        handset: "300".into(),
        in_range: true,
    })
    .unwrap();
    sw.run(Duration::from_secs(2));
    assert!(sw.take_events().is_empty());

    let left = sw.now - sw.t0;
    sw.simulate(SimCommand::InRange {
        handset: "300".into(),
        in_range: false,
    })
    .unwrap();
    sw.run(Duration::from_secs(2));
    let events = sw.take_events();
    assert_eq!(
        events_only(&events),
        vec![LineEvent::Released {
            call,
            cause: Cause::TEMPORARY_FAILURE
        }]
    );
    assert_eq!(events[0].0, left + Duration::from_millis(LINK_TIMEOUT_MS));
    let last_frame = sw.frames.last().map(|f| f.0).unwrap_or_default();
    assert!(
        last_frame <= left + Duration::from_millis(LINK_TIMEOUT_MS),
        "no frames after the release"
    );
}

#[test]
fn a_handset_leaving_range_while_paged_is_absent() {
    let mut sw = Switch::new(config());
    let call = sw.setup("300", &[]).unwrap();
    sw.simulate(SimCommand::InRange {
        handset: "300".into(),
        in_range: false,
    })
    .unwrap();
    sw.run(Duration::from_secs(1));
    assert_eq!(
        events_only(&sw.take_events()),
        vec![
            LineEvent::Progress {
                call,
                progress: Progress::Proceeding
            },
            LineEvent::Released {
                call,
                cause: Cause::SUBSCRIBER_ABSENT
            }
        ]
    );
}

#[test]
fn a_base_going_down_releases_its_calls_and_reports_the_fault() {
    let mut sw = Switch::new(config());
    let a = sw.setup("300", &[]).unwrap();
    let other = sw.setup("310", &[]).unwrap();
    sw.run(Duration::from_secs(1));
    sw.take_events();
    sw.simulate(SimCommand::Unit {
        name: "base1".into(),
        up: false,
    })
    .unwrap();
    assert_eq!(
        events_only(&sw.take_events()),
        vec![
            LineEvent::Fault(Fault::UnitDown("base1".into())),
            LineEvent::Released {
                call: a,
                cause: Cause::NETWORK_OUT_OF_ORDER
            },
        ]
    );
    assert_eq!(sw.setup("301", &[]), Err(Cause::NETWORK_OUT_OF_ORDER));
    let status = sw.driver.status();
    assert!(status.up, "base2 is still up");
    assert!(
        status.detail.contains("base1 down 0/2"),
        "{}",
        status.detail
    );
    assert_eq!(status.channels_busy, 1, "base2's call goes on");
    sw.frames.clear();
    sw.run(Duration::from_secs(1));
    assert!(sw.frames.iter().all(|(_, c, _)| *c == other));
    assert!(!sw.frames.is_empty());

    // Down twice is no news; by RFPI works as well as by name.
    sw.simulate(SimCommand::Unit {
        name: "0012345678".into(),
        up: false,
    })
    .unwrap();
    assert!(sw.take_events().is_empty());
    sw.simulate(SimCommand::Unit {
        name: "base1".into(),
        up: true,
    })
    .unwrap();
    assert_eq!(
        events_only(&sw.take_events()),
        vec![LineEvent::Fault(Fault::UnitUp("base1".into()))]
    );
    assert!(sw.setup("301", &[]).is_ok());
    assert!(sw
        .simulate(SimCommand::Unit {
            name: "base9".into(),
            up: false
        })
        .is_err());
}

#[test]
fn all_bases_down_is_driver_down() {
    let mut sw = Switch::new(config());
    for name in ["base1", "base2"] {
        sw.simulate(SimCommand::Unit {
            name: name.into(),
            up: false,
        })
        .unwrap();
    }
    assert!(!sw.driver.status().up);
}

#[test]
fn rejecting_a_ringing_call_is_cause_21() {
    let mut sw = Switch::new(config());
    let call = sw.setup("311", &[]).unwrap();
    sw.run(Duration::from_secs(1));
    sw.take_events();
    sw.simulate(SimCommand::Hangup {
        party: "311".into(),
    })
    .unwrap();
    assert_eq!(
        events_only(&sw.take_events()),
        vec![LineEvent::Released {
            call,
            cause: Cause::CALL_REJECTED
        }]
    );
}

#[test]
fn frames_come_fifty_a_second_on_each_base_clock() {
    let mut sw = Switch::new(config());
    let narrow = sw.setup("302", &[]).unwrap();
    let wide = sw.setup("310", &[AudioCodec::G722]).unwrap();
    sw.run(Duration::from_secs(1));
    sw.frames.clear();
    sw.run(Duration::from_secs(20));
    for (call, ppm) in [(narrow, 50.0), (wide, -50.0)] {
        let times: Vec<Duration> = sw
            .frames
            .iter()
            .filter(|(_, c, _)| *c == call)
            .map(|(t, _, _)| *t)
            .collect();
        let n = times.len() as i64;
        assert!((n - 1000).abs() <= 1, "{n} frames in 20 s");
        // Each frame left at its base's instant: 20 ms of the base's clock apart.
        let expected = 20e-3 / (1.0 + ppm * 1e-6);
        for w in times.windows(2) {
            let gap = (w[1] - w[0]).as_secs_f64();
            assert!((gap - expected).abs() < 1e-8, "gap {gap} vs {expected}");
        }
        let span = (times[times.len() - 1] - times[0]).as_secs_f64();
        let per = span / (times.len() - 1) as f64;
        assert!((per - expected).abs() < 1e-9, "mean period {per}");
    }
    assert_eq!(sw.driver.base_clock_ppm("base1"), Some(50));
}

#[test]
fn the_jitter_buffer_stays_small_when_the_switch_runs_fast() {
    let mut sw = Switch::new(config());
    let call = sw.setup("300", &[]).unwrap();
    sw.run(Duration::from_secs(1));
    // Two frames every 20 ms: twice the base's pace.
    let mut source = g726_tone_source(1000.0);
    for _ in 0..100 {
        sw.run(20 * MS);
        for _ in 0..2 {
            let f = source();
            sw.driver.send_audio(call, &f, sw.now);
        }
    }
    let depth = sw.driver.jitter_depth(call).unwrap();
    assert!(depth <= mgw_drivers::dect::JITTER_CAPACITY, "{depth}");
    // Wrong-sized frames are ignored.
    sw.driver.send_audio(call, &[1, 2, 3], sw.now);
    sw.driver.send_audio(call, &[], sw.now);
    sw.driver.send_audio(9999, &[0; 80], sw.now);
}

#[test]
fn a_late_host_gets_a_bounded_catch_up() {
    let mut sw = Switch::new(config());
    let call = sw.setup("301", &[]).unwrap();
    sw.run(Duration::from_secs(1));
    sw.frames.clear();
    sw.now += Duration::from_secs(30);
    sw.driver.handle_timeout(sw.now);
    sw.drain();
    let n = sw.frames_of(call).len() as u64;
    assert!(n <= MAX_CATCHUP_AIR_FRAMES / 2 + 1, "{n} frames");
    assert!(sw.driver.poll_timeout().unwrap() > sw.now);
}

#[test]
fn unmodelled_commands_are_refused_and_status_lists_everything() {
    let mut sw = Switch::new(config());
    let err = sw.simulate(SimCommand::Layer1 { up: false }).unwrap_err();
    assert!(err.contains("not modelled by the DECT driver"), "{err}");
    assert!(sw.simulate(SimCommand::Signalling { up: false }).is_err());
    assert!(sw
        .simulate(SimCommand::InRange {
            handset: "nobody".into(),
            in_range: false
        })
        .is_err());
    assert_eq!(sw.driver.name(), "dect1");
    assert_eq!(sw.driver.numbers(), ["300", "301", "302", "310", "311"]);
    let status = sw.driver.status();
    assert_eq!(status.kind, "dect");
    assert!(status.up);
    assert_eq!((status.channels_busy, status.channels_total), (0, 6));
    assert!(
        status.detail.contains("base2 up 0/4 wideband"),
        "{}",
        status.detail
    );
    assert!(status
        .detail
        .contains("311 IPUI-00A1B2C3D8 on base2 in range"));
    assert_eq!(sw.driver.poll_timeout(), None, "idle: nothing to do");
}

#[test]
fn the_same_seed_replays_the_same_run() {
    let run = || {
        let mut sw = Switch::new(config());
        let a = sw.setup("300", &[]).unwrap();
        let b = sw.setup("310", &[AudioCodec::G722]).unwrap();
        sw.run_sending(a, Duration::from_secs(1), &mut g726_tone_source(700.0));
        sw.simulate(SimCommand::Hangup {
            party: "310".into(),
        })
        .unwrap();
        let _ = b;
        let events: Vec<(Duration, LineEvent)> = sw.events.clone();
        let frames: Vec<(Duration, CallRef, Vec<u8>)> = sw.frames.clone();
        (events, frames)
    };
    assert_eq!(run(), run());
}
