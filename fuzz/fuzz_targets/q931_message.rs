//! What arrives on an ISDN D channel: Q.921 frames and the Q.931 messages inside them. No
//! bytes may panic a decoder or the state machines behind them; a decoded frame encodes back
//! to the same bytes; a decoded message encodes to one that decodes to the same elements.
#![no_main]

use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use mgw_drivers::isdn::call::{CallControl, CallTimers};
use mgw_drivers::isdn::q921::{DataLink, Frame, LinkConfig, TEI_PRI};
use mgw_drivers::isdn::q931::Message;
use mgw_drivers::isdn::{HuntOrder, InterfaceKind, Side};

fuzz_target!(|data: &[u8]| {
    if let Ok(frame) = Frame::decode(data) {
        assert_eq!(frame.encode(), data, "a decoded frame re-encodes exactly");
    }
    if let Ok(m) = Message::decode(data) {
        let again = Message::decode(&m.encode()).expect("an encoded message decodes");
        let expected = Message {
            unrecognized: Vec::new(),
            invalid: Vec::new(),
            ..m
        };
        assert_eq!(again, expected);
    }

    // The same bytes, split at 0xFF, as a stream of frames and messages into both sides.
    let t0 = Instant::now();
    for (i, kind) in [InterfaceKind::E1, InterfaceKind::Bri]
        .into_iter()
        .enumerate()
    {
        let side = if i == 0 { Side::User } else { Side::Network };
        let mut link = DataLink::new(side, TEI_PRI, LinkConfig::default());
        let mut calls = CallControl::new(side, kind, HuntOrder::Highest, CallTimers::default());
        calls.link_established(t0);
        for (n, chunk) in data.split(|&b| b == 0xFF).enumerate() {
            let now = t0 + Duration::from_millis(n as u64 * 700);
            link.receive(chunk, now);
            link.handle_timeout(now);
            while link.poll_transmit().is_some() {}
            while link.poll_event().is_some() {}
            calls.receive(chunk, now);
            calls.handle_timeout(now);
            while calls.poll_transmit().is_some() {}
            while calls.poll_event().is_some() {}
        }
    }
});
