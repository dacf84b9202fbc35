//! Whole-system scenarios in virtual time: a SIP phone, the switch, the media engine and the
//! simulated line hardware, all sans-IO, reproducible by seed (tests/common).

mod common;

use std::time::{Duration, Instant};

use common::Sim;
use mgw_core::ua::{Ending, Event};
use mgw_drivers::dect::{BaseConfig, DectConfig, DectDriver, HandsetConfig};
use mgw_drivers::isdn::{InterfaceKind, IsdnTrunk, IsdnTrunkConfig};
use mgw_drivers::pstn::ExchangeConfig;
use mgw_drivers::{Driver, SimCommand};

fn dect(seed: u64, t0: Instant) -> Box<dyn Driver> {
    let mut c = DectConfig::new("base1");
    c.seed = seed;
    c.bases
        .push(BaseConfig::new("base1", "0001020304", 2, true));
    let mut h = HandsetConfig::new("00077A1B2C", "base1", "300", "Handset 300");
    h.auto_answer = Some(1000);
    c.handsets.push(h);
    c.handsets.push(HandsetConfig::new(
        "00077A1B2D",
        "base1",
        "301",
        "Handset 301",
    ));
    Box::new(DectDriver::new(c, t0).expect("valid DECT config"))
}

fn echo_call(seed: u64) -> (Vec<String>, f64, usize) {
    let t0 = Instant::now();
    let mut sim = Sim::new(vec![(dect(seed, t0), 2, None)], seed, t0);
    let call = sim.dial("300");
    sim.run(Duration::from_millis(1500));
    assert!(
        sim.answered(call),
        "the handset answers after one ring: {:#?}",
        sim.events
    );
    sim.audio.talking = true;
    sim.run(Duration::from_secs(2));
    let share = sim.tone_share_last(1000);
    let packets = sim.audio.packets_in;
    sim.hangup(call);
    sim.run(Duration::from_millis(500));
    (sim.trace, share, packets)
}

#[test]
fn phone_to_dect_handset_echo_in_virtual_time_is_reproducible() {
    let (trace_a, share, packets) = echo_call(7);
    assert!(packets > 90, "{packets} packets back in 2 s");
    assert!(share > 0.5, "the phone hears its tone echoed: {share:.3}");
    let (trace_b, share_b, _) = echo_call(7);
    assert_eq!(trace_a, trace_b, "the same seed replays the same run");
    assert!((share - share_b).abs() < 1e-12);
    let (trace_c, _, _) = echo_call(8);
    assert_ne!(trace_a, trace_c, "another seed, other timings");
}

#[test]
fn handset_out_of_range_and_busy_map_to_sip_answers() {
    let t0 = Instant::now();
    let mut sim = Sim::new(vec![(dect(1, t0), 2, None)], 1, t0);
    sim.act(
        0,
        SimCommand::InRange {
            handset: "301".into(),
            in_range: false,
        },
    )
    .expect("modelled");
    let call = sim.dial("301");
    sim.run(Duration::from_millis(500));
    match sim.ended(call) {
        Some(Event::Ended {
            ending: Ending::Refused { status, .. },
            q850,
            ..
        }) => {
            assert_eq!(*status, 480, "subscriber absent");
            assert_eq!(*q850, Some(20));
        }
        other => panic!("{other:?}"),
    }
    // A handset dialling out reaches the phone.
    sim.act(
        0,
        SimCommand::Dial {
            from: "300".into(),
            to: "200".into(),
        },
    )
    .expect("dial");
    sim.run(Duration::from_millis(200));
    let incoming = sim.incoming().expect("the phone rings");
    sim.answer_incoming(incoming);
    sim.run(Duration::from_millis(300));
    sim.act(
        0,
        SimCommand::Hangup {
            party: "300".into(),
        },
    )
    .expect("hangup");
    sim.run(Duration::from_millis(300));
    match sim.ended(incoming) {
        Some(Event::Ended { ending, q850, .. }) => {
            assert_eq!(*ending, Ending::Bye);
            assert_eq!(*q850, Some(16));
        }
        other => panic!("{other:?}"),
    }
}

fn pri(seed: u64, t0: Instant) -> Box<dyn Driver> {
    let mut c = IsdnTrunkConfig::new("pri1", InterfaceKind::E1, ExchangeConfig::demo());
    c.seed = seed;
    Box::new(IsdnTrunk::new(c, t0))
}

/// Everything a PRI call can do, in virtual time: the PSTN echo over A-law, busy, a PSTN
/// caller dialling a number nobody has (the switch's 404 goes back as cause 1 on the D
/// channel), a PSTN caller reaching the phone, and the D channel cut during that call
/// (cleared after T309 with a BYE to the phone). Two runs with one seed are identical.
fn pri_scenario(seed: u64) -> Vec<String> {
    let t0 = Instant::now();
    let mut sim = Sim::new(vec![(pri(seed, t0), 30, Some("0"))], seed, t0);
    // Q.921 comes up first.
    sim.run(Duration::from_millis(500));
    let call = sim.dial("05551000");
    sim.run(Duration::from_millis(2500));
    assert!(sim.answered(call), "{:#?}", sim.events);
    sim.audio.talking = true;
    sim.run(Duration::from_secs(2));
    let share = sim.tone_share_last(1000);
    assert!(share > 0.5, "the PSTN echo over A-law: {share:.3}");
    sim.hangup(call);
    sim.run(Duration::from_millis(500));
    sim.audio.talking = false;

    let busy = sim.dial("05551001");
    sim.run(Duration::from_secs(2));
    match sim.ended(busy) {
        Some(Event::Ended {
            ending: Ending::Refused { status, .. },
            q850,
            ..
        }) => assert_eq!((*status, *q850), (486, Some(17))),
        other => panic!("busy: {other:?}"),
    }

    sim.act(
        0,
        SimCommand::Dial {
            from: "0301234567".into(),
            to: "999".into(),
        },
    )
    .expect("dial in");
    sim.run(Duration::from_millis(500));
    let log = sim.signalling(0);
    assert!(
        log.iter()
            .any(|l| (l.contains("DISCONNECT") || l.contains("RELEASE")) && l.contains("cause=1")),
        "404 back to the PSTN as cause 1: {log:#?}"
    );

    sim.act(
        0,
        SimCommand::Dial {
            from: "0301234567".into(),
            to: "200".into(),
        },
    )
    .expect("dial in");
    sim.run(Duration::from_millis(500));
    let incoming = sim.incoming().expect("the phone rings");
    sim.answer_incoming(incoming);
    sim.run(Duration::from_secs(1));
    sim.act(0, SimCommand::Signalling { up: false })
        .expect("cut");
    // Q.921 notices the silent link within T203 + N200 * T200 (about 14 s); T309 (90 s)
    // keeps the call through the failure; then it is cleared.
    sim.run(Duration::from_secs(80));
    assert!(sim.ended(incoming).is_none(), "T309 holds the call");
    sim.run(Duration::from_secs(40));
    match sim.ended(incoming) {
        Some(Event::Ended { ending, q850, .. }) => {
            assert_eq!(*ending, Ending::Bye);
            assert!(
                matches!(q850, Some(41) | Some(38) | Some(27) | Some(102)),
                "{q850:?}"
            );
        }
        other => panic!("no BYE after the D channel went: {other:?}"),
    }
    sim.trace
}

#[test]
fn phone_and_pstn_over_a_simulated_e1_in_virtual_time() {
    let a = pri_scenario(11);
    let b = pri_scenario(11);
    assert_eq!(a, b, "the same seed replays the same run");
}
