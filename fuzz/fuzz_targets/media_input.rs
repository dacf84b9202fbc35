//! What reaches the media side from outside: SDP bodies, RTP/RTCP datagrams on relay ports,
//! and ng control datagrams. None may panic; a parsed SDP writes out as SDP that parses to
//! the same description; the relay never reports more bytes than it was given.
#![no_main]

use std::time::Instant;

use libfuzzer_sys::fuzz_target;
use mgw_media::ng::NgControl;
use mgw_media::relay::{LegSpec, PortPool, Relay, RelayConfig, Verdict};
use mgw_media::rtp::header::RtpPacket;
use mgw_media::rtp::rtcp::translate_ssrcs;
use mgw_media::sdp::SessionDescription;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = SessionDescription::parse(data) {
        let again = SessionDescription::parse(s.to_string().as_bytes()).expect("written SDP parses");
        assert_eq!(again, s);
    }
    let mut buf = data.to_vec();
    let _ = RtpPacket::parse(&mut buf);
    translate_ssrcs(&mut buf, (1, 2), (3, 4));

    let t0 = Instant::now();
    let mut relay = Relay::new(RelayConfig::default(), t0);
    let from = "192.0.2.1:4000".parse().expect("addr");
    relay.create(
        LegSpec { local_rtp: 30000, remote: Some(from), remote_rtcp: None, allow_nat: true },
        LegSpec { local_rtp: 30002, remote: Some(from), remote_rtcp: None, allow_nat: true },
        t0,
    );
    let mut pkt = data.to_vec();
    let n = pkt.len();
    if let Verdict::Forward { len, .. } = relay.on_packet(30000, from, &mut pkt, t0) {
        assert!(len <= n);
    }
    let mut ports = PortPool::new(31000, 31009);
    let _ = NgControl::new("203.0.113.1".parse().expect("ip"), 5).handle(data, &mut relay, &mut ports, t0);
});
