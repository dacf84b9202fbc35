//! The DECT driver under arbitrary sequences of switch calls, simulated events and time steps:
//! it must never panic, never report more busy channels than it has, never ask to be woken in
//! the past, and only produce frames of its calls' codec sizes.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use mgw_drivers::dect::{BaseConfig, DectConfig, DectDriver, HandsetAudio, HandsetConfig};
use mgw_drivers::{AudioCodec, CallRef, Cause, Driver, LineEvent, Party, Setup, SimCommand};
use proptest::prelude::*;

#[derive(Clone, Debug)]
enum Op {
    Setup { number: u8, wideband: bool },
    Alert(u8),
    Answer(u8),
    Release(u8),
    Audio { call: u8, len: u8 },
    Dial { from: u8 },
    HandsetAnswer(u8),
    Hangup(u8),
    Unit { base: u8, up: bool },
    InRange { handset: u8, in_range: bool },
    Wait(u16),
    Late(u16),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0u8..6, any::<bool>()).prop_map(|(number, wideband)| Op::Setup { number, wideband }),
        (0u8..8).prop_map(Op::Alert),
        (0u8..8).prop_map(Op::Answer),
        (0u8..8).prop_map(Op::Release),
        (0u8..8, 0u8..4).prop_map(|(call, len)| Op::Audio { call, len }),
        (0u8..6).prop_map(|from| Op::Dial { from }),
        (0u8..6).prop_map(Op::HandsetAnswer),
        (0u8..6).prop_map(Op::Hangup),
        (0u8..3, any::<bool>()).prop_map(|(base, up)| Op::Unit { base, up }),
        (0u8..6, any::<bool>()).prop_map(|(handset, in_range)| Op::InRange { handset, in_range }),
        (0u16..400).prop_map(Op::Wait),
        (0u16..3000).prop_map(Op::Late),
    ]
}

fn config(seed: u64) -> DectConfig {
    let mut c = DectConfig::new("fuzz");
    c.seed = seed;
    c.bases.push(BaseConfig::new("b1", "0000000001", 2, true));
    c.bases.push(BaseConfig::new("b2", "0000000002", 1, false));
    let audios = [
        HandsetAudio::Echo,
        HandsetAudio::Tone { hz: 440 },
        HandsetAudio::Silence,
    ];
    for i in 0..5u8 {
        c.handsets.push(HandsetConfig {
            auto_answer: (i % 2 == 0).then_some(u32::from(i) * 50),
            audio: audios[usize::from(i) % 3],
            wideband: i != 1,
            ..HandsetConfig::new(
                &format!("00000000A{i}"),
                if i < 3 { "b1" } else { "b2" },
                &format!("30{i}"),
                "",
            )
        });
    }
    c
}

/// Runs every timer due up to `until`, at its deadline, and checks what comes out.
fn run_to(
    driver: &mut DectDriver,
    now: &mut Instant,
    until: Instant,
    codecs: &mut HashMap<CallRef, AudioCodec>,
) -> Result<(), TestCaseError> {
    for _ in 0..100_000 {
        match driver.poll_timeout() {
            Some(t) if t <= until => {
                *now = (*now).max(t);
                driver.handle_timeout(*now);
                drain(driver, codecs)?;
                if let Some(next) = driver.poll_timeout() {
                    prop_assert!(next > *now, "woken again for the past");
                }
            }
            _ => break,
        }
    }
    *now = until;
    Ok(())
}

fn drain(
    driver: &mut DectDriver,
    codecs: &mut HashMap<CallRef, AudioCodec>,
) -> Result<(), TestCaseError> {
    while let Some(event) = driver.poll_event() {
        match event {
            LineEvent::Incoming { call, codec, .. } | LineEvent::Answered { call, codec } => {
                codecs.insert(call, codec);
            }
            _ => {}
        }
    }
    while let Some((call, frame)) = driver.poll_audio() {
        let codec = codecs.get(&call).copied();
        prop_assert!(codec.is_some(), "frame for unknown call {}", call);
        prop_assert_eq!(frame.len(), codec.map_or(0, |c| c.frame_bytes()));
    }
    let status = driver.status();
    prop_assert!(status.channels_busy <= status.channels_total);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn any_sequence_is_handled(seed in any::<u64>(), ops in proptest::collection::vec(op(), 1..60)) {
        let start = Instant::now();
        let mut now = start;
        let mut driver = DectDriver::new(config(seed), now).expect("valid configuration");
        let mut refs: Vec<CallRef> = vec![0, 1, 2, 3];
        let mut codecs = HashMap::new();
        let handset = |i: u8| format!("30{i}");
        for op in ops {
            match op {
                Op::Setup { number, wideband } => {
                    let codecs_offered = if wideband {
                        vec![AudioCodec::G722, AudioCodec::Pcma]
                    } else {
                        vec![AudioCodec::Pcmu]
                    };
                    let setup = Setup {
                        calling: Party::number("100"),
                        called: Party::number(&handset(number)),
                        codecs: codecs_offered,
                    };
                    if let Ok(call) = driver.setup(setup, now) {
                        refs.push(call);
                    }
                }
                Op::Alert(i) => driver.alert(refs[usize::from(i) % refs.len()], now),
                Op::Answer(i) => {
                    let call = refs[usize::from(i) % refs.len()];
                    driver.answer(call, now);
                }
                Op::Release(i) => {
                    driver.release(refs[usize::from(i) % refs.len()], Cause::NORMAL, now)
                }
                Op::Audio { call, len } => {
                    let call = refs[usize::from(call) % refs.len()];
                    let frame = vec![0x5Au8; [0, 80, 160, 7][usize::from(len)]];
                    driver.send_audio(call, &frame, now);
                }
                Op::Dial { from } => {
                    let _ = driver.simulate(
                        SimCommand::Dial { from: handset(from), to: "200".into() },
                        now,
                    );
                    drain(&mut driver, &mut codecs)?;
                    // The switch learns the refs of incoming calls from their events.
                    refs.extend(codecs.keys().copied());
                }
                Op::HandsetAnswer(i) => {
                    let _ = driver.simulate(SimCommand::Answer { party: handset(i) }, now);
                }
                Op::Hangup(i) => {
                    let _ = driver.simulate(SimCommand::Hangup { party: handset(i) }, now);
                }
                Op::Unit { base, up } => {
                    let _ = driver.simulate(
                        SimCommand::Unit { name: format!("b{base}"), up },
                        now,
                    );
                }
                Op::InRange { handset: i, in_range } => {
                    let _ = driver.simulate(
                        SimCommand::InRange { handset: handset(i), in_range },
                        now,
                    );
                }
                Op::Wait(ms) => {
                    let until = now + Duration::from_millis(u64::from(ms));
                    run_to(&mut driver, &mut now, until, &mut codecs)?;
                }
                Op::Late(ms) => {
                    now += Duration::from_millis(u64::from(ms));
                    driver.handle_timeout(now);
                }
            }
            drain(&mut driver, &mut codecs)?;
            if let Some(next) = driver.poll_timeout() {
                prop_assert!(next >= now, "deadline before now");
            }
        }
        // Driven at its deadlines, it settles: a few seconds later nothing but frames.
        let until = now + Duration::from_secs(3);
        run_to(&mut driver, &mut now, until, &mut codecs)?;
    }
}
