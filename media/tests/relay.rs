//! The relay in virtual time: latching, forwarding both ways, payload-type mapping, G.711
//! transcoding in place, SSRC/sequence/timestamp continuity across a sender restart, RTCP SSRC
//! translation, inactivity events and every drop reason.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use mgw_media::codec::g711;
use mgw_media::relay::{
    DropReason, FlowSpec, LegSpec, MediaEvent, Relay, RelayConfig, Side, Transcode, Verdict,
};
use mgw_media::rtp::header::{write_header, RtpPacket};

fn a(s: &str) -> SocketAddr {
    s.parse().expect("address")
}

fn rtp(pt: u8, seq: u16, ts: u32, ssrc: u32, payload: &[u8]) -> Vec<u8> {
    let mut p = vec![0u8; 12];
    write_header(&mut p, false, pt, seq, ts, ssrc);
    p.extend_from_slice(payload);
    p
}

const PHONE: &str = "192.0.2.10:4000";
const TRUNK: &str = "198.51.100.20:6000";

fn setup() -> (Relay, mgw_media::relay::SessionId, Instant) {
    let t0 = Instant::now();
    let mut r = Relay::new(RelayConfig::default(), t0);
    let id = r.create(
        LegSpec {
            local_rtp: 30000,
            remote: Some(a(PHONE)),
            remote_rtcp: None,
            allow_nat: false,
        },
        LegSpec {
            local_rtp: 30002,
            remote: Some(a(TRUNK)),
            remote_rtcp: None,
            allow_nat: false,
        },
        t0,
    );
    (r, id, t0)
}

#[test]
fn relays_both_ways_rewriting_only_the_header() {
    let (mut r, id, t0) = setup();
    let mut p = rtp(0, 100, 8000, 0xAAAA, &[0x55; 160]);
    let v = r.on_packet(30000, a(PHONE), &mut p, t0);
    assert_eq!(
        v,
        Verdict::Forward {
            from_port: 30002,
            to: a(TRUNK),
            len: 172
        }
    );
    let out = RtpPacket::parse(&mut p).unwrap();
    assert_eq!(
        (out.payload_type(), out.sequence(), out.timestamp()),
        (0, 100, 8000)
    );
    assert_ne!(out.ssrc(), 0xAAAA, "mgw's own SSRC towards the trunk");
    assert_eq!(out.payload(), &[0x55; 160][..]);
    let mut back = rtp(0, 7, 1, 0xBBBB, &[1; 160]);
    assert!(matches!(
        r.on_packet(30002, a(TRUNK), &mut back, t0),
        Verdict::Forward {
            from_port: 30000,
            ..
        }
    ));
    let q = r.query(id).unwrap();
    assert_eq!((q.a_to_b.packets, q.b_to_a.packets), (1, 1));
    assert_eq!(q.a_to_b.bytes, 172);
}

#[test]
fn transcodes_ulaw_to_alaw_in_place_and_maps_payload_types() {
    let (mut r, id, t0) = setup();
    r.set_flow(
        id,
        Side::A,
        FlowSpec::mapped(&[(0, 8), (101, 96)], Transcode::UlawToAlaw, 8000),
    );
    let pcm: Vec<i16> = (0..160)
        .map(|i| ((i as f64 / 8.0).sin() * 8000.0) as i16)
        .collect();
    let mut ulaw = vec![0u8; 160];
    g711::encode_ulaw(&pcm, &mut ulaw);
    let mut p = rtp(0, 1, 0, 9, &ulaw);
    assert!(matches!(
        r.on_packet(30000, a(PHONE), &mut p, t0),
        Verdict::Forward { .. }
    ));
    let out = RtpPacket::parse(&mut p).unwrap();
    assert_eq!(out.payload_type(), 8);
    let mut decoded = vec![0i16; 160];
    g711::decode_alaw(out.payload(), &mut decoded);
    for (x, y) in pcm.iter().zip(&decoded) {
        assert!((i32::from(*x) - i32::from(*y)).abs() < 300, "{x} vs {y}");
    }
    // telephone-event renumbered, untouched; anything else dropped.
    let mut ev = rtp(101, 2, 160, 9, &[1, 0x8A, 0, 160]);
    assert!(matches!(
        r.on_packet(30000, a(PHONE), &mut ev, t0),
        Verdict::Forward { .. }
    ));
    let out = RtpPacket::parse(&mut ev).unwrap();
    assert_eq!(
        (out.payload_type(), out.payload()),
        (96, &[1, 0x8A, 0, 160][..])
    );
    let mut g729 = rtp(18, 3, 320, 9, &[0; 20]);
    assert_eq!(
        r.on_packet(30000, a(PHONE), &mut g729, t0),
        Verdict::Drop(DropReason::PayloadType)
    );
}

#[test]
fn a_restarted_sender_continues_the_outgoing_stream() {
    let (mut r, _id, t0) = setup();
    let mut seen = Vec::new();
    for i in 0..5u16 {
        let mut p = rtp(0, 1000 + i, 50_000 + u32::from(i) * 160, 1, &[0; 160]);
        r.on_packet(
            30000,
            a(PHONE),
            &mut p,
            t0 + Duration::from_millis(20 * u64::from(i)),
        );
        let o = RtpPacket::parse(&mut p).unwrap();
        seen.push((o.ssrc(), o.sequence(), o.timestamp(), o.marker()));
    }
    // Re-INVITE: the phone restarts with a new SSRC, sequence and timestamp 100 ms later.
    let mut p = rtp(0, 7, 999, 2, &[0; 160]);
    r.on_packet(30000, a(PHONE), &mut p, t0 + Duration::from_millis(180));
    let o = RtpPacket::parse(&mut p).unwrap();
    let last = seen[4];
    assert_eq!(o.ssrc(), last.0, "same outgoing SSRC");
    assert_eq!(o.sequence(), last.1.wrapping_add(1), "sequence continues");
    assert_eq!(
        o.timestamp(),
        last.2 + 800,
        "timestamp advances by the 100 ms gap"
    );
    assert!(o.marker(), "marker flags the discontinuity");
}

#[test]
fn latching_and_drop_reasons() {
    let (mut r, id, t0) = setup();
    let mut p = rtp(0, 1, 0, 1, &[0; 10]);
    assert_eq!(
        r.on_packet(30000, a("203.0.113.66:4000"), &mut p, t0),
        Verdict::Drop(DropReason::NotFromPeer),
        "only the signalled address without NAT allowance"
    );
    assert_eq!(
        r.query(id).map(|q| q.dropped),
        Some(1),
        "counted on its session"
    );
    assert_eq!(
        r.on_packet(31000, a(PHONE), &mut p, t0),
        Verdict::Drop(DropReason::UnknownPort)
    );
    let mut junk = vec![0x40, 0, 0];
    assert_eq!(
        r.on_packet(30000, a(PHONE), &mut junk, t0),
        Verdict::Drop(DropReason::Malformed)
    );
    // A leg whose address is unknown yet (before the answer) cannot be sent to.
    let mut r2 = Relay::new(RelayConfig::default(), t0);
    r2.create(
        LegSpec {
            local_rtp: 40000,
            remote: None,
            remote_rtcp: None,
            allow_nat: true,
        },
        LegSpec {
            local_rtp: 40002,
            remote: None,
            remote_rtcp: None,
            allow_nat: true,
        },
        t0,
    );
    let mut p = rtp(0, 1, 0, 1, &[0; 10]);
    assert_eq!(
        r2.on_packet(40000, a("203.0.113.5:7000"), &mut p, t0),
        Verdict::Drop(DropReason::NoDestination)
    );
    // The other side's first packet (NAT: learned) makes both directions flow.
    let mut q = rtp(0, 1, 0, 2, &[0; 10]);
    assert_eq!(
        r2.on_packet(40002, a("198.51.100.7:9000"), &mut q, t0),
        Verdict::Forward {
            from_port: 40000,
            to: a("203.0.113.5:7000"),
            len: 22
        }
    );
}

#[test]
fn rtcp_is_relayed_with_ssrcs_translated() {
    let (mut r, id, t0) = setup();
    let mut p = rtp(0, 1, 0, 0xAAAA, &[0; 10]);
    r.on_packet(30000, a(PHONE), &mut p, t0);
    let mgw_to_trunk = RtpPacket::parse(&mut p).unwrap().ssrc();
    let mut back = rtp(0, 1, 0, 0xBBBB, &[0; 10]);
    r.on_packet(30002, a(TRUNK), &mut back, t0);
    // The trunk's RR (from 0xBBBB) reports on mgw's SSRC; the phone must see its own.
    let mut rr = vec![0x81, 201, 0, 7];
    rr.extend_from_slice(&0xBBBBu32.to_be_bytes());
    rr.extend_from_slice(&mgw_to_trunk.to_be_bytes());
    rr.extend_from_slice(&[0; 20]);
    let v = r.on_packet(30003, a("198.51.100.20:6001"), &mut rr, t0);
    assert_eq!(
        v,
        Verdict::Forward {
            from_port: 30001,
            to: a("192.0.2.10:4001"),
            len: 32
        }
    );
    assert_eq!(&rr[8..12], &0xAAAAu32.to_be_bytes());
    assert_ne!(&rr[4..8], &0xBBBBu32.to_be_bytes());
    assert_eq!(r.query(id).unwrap().rtcp_packets, 1);
}

#[test]
fn silence_raises_one_inactivity_event() {
    let t0 = Instant::now();
    let mut r = Relay::new(
        RelayConfig {
            inactivity: Duration::from_secs(5),
            ..RelayConfig::default()
        },
        t0,
    );
    let id = r.create(
        LegSpec {
            local_rtp: 30000,
            remote: Some(a(PHONE)),
            remote_rtcp: None,
            allow_nat: false,
        },
        LegSpec {
            local_rtp: 30002,
            remote: Some(a(TRUNK)),
            remote_rtcp: None,
            allow_nat: false,
        },
        t0,
    );
    r.on_timeout(t0 + Duration::from_secs(4));
    assert_eq!(r.poll_event(), None);
    r.on_timeout(t0 + Duration::from_secs(6));
    assert!(matches!(r.poll_event(), Some(MediaEvent::Inactive { session, .. }) if session == id));
    r.on_timeout(t0 + Duration::from_secs(7));
    assert_eq!(r.poll_event(), None, "reported once per silence");
    assert!(r.delete(id).is_some());
    assert_eq!(r.sessions(), 0);
    let mut p = rtp(0, 1, 0, 1, &[0; 10]);
    assert_eq!(
        r.on_packet(30000, a(PHONE), &mut p, t0),
        Verdict::Drop(DropReason::UnknownPort)
    );
}
