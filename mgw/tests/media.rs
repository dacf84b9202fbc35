//! The media relay of the running gateway: rtpengine ng control over UDP, then RTP both ways
//! between two real UDP endpoints through the ports the rewritten SDPs name.

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use common::{free_port, Server};
use mgw_media::ng::bencode::Value;
use mgw_media::rtp::header::{write_header, RtpPacket};
use mgw_media::sdp::{Codec, CodecName, SessionDescription};
use mgw_media::transcode::{audio_rate, Decoder, Encoder};

fn ng(ctl: &UdpSocket, to: SocketAddr, cookie: &str, cmd: &Value) -> Value {
    let mut d = format!("{cookie} ").into_bytes();
    cmd.encode(&mut d);
    ctl.send_to(&d, to).expect("send ng");
    let mut buf = vec![0u8; 65536];
    let n = ctl.recv(&mut buf).expect("ng reply within 5 s");
    let body = buf[..n]
        .strip_prefix(format!("{cookie} ").as_bytes())
        .expect("cookie echoed");
    Value::parse(body).expect("bencoded reply")
}

fn sdp(sock: &UdpSocket) -> String {
    let a = sock.local_addr().expect("addr");
    format!(
        "v=0\r\no=- 1 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\nm=audio {port} RTP/AVP 0\r\n\
         a=rtpmap:0 PCMU/8000\r\n",
        ip = a.ip(),
        port = a.port()
    )
}

fn target(reply: &Value) -> SocketAddr {
    assert_eq!(reply.str("result"), Some("ok"), "{reply:?}");
    let s = SessionDescription::parse(reply.str("sdp").expect("sdp").as_bytes()).expect("SDP");
    SocketAddr::new(s.media_address(0).expect("c="), s.media[0].port)
}

/// A gateway with ng on loopback and RTP ports `ports`, and a control socket towards it.
fn gateway_with_ng(name: &str, ports: &str) -> (Server, UdpSocket, SocketAddr) {
    let ng_port = free_port();
    let server = Server::configure(
        name,
        &format!(
            "[media]\nng_listen = \"127.0.0.1:{ng_port}\"\nbind = \"127.0.0.1\"\nrtp_ports = \"{ports}\"\n"
        ),
    )
    .start();
    let ctl = UdpSocket::bind("127.0.0.1:0").expect("bind");
    ctl.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    (server, ctl, SocketAddr::from(([127, 0, 0, 1], ng_port)))
}

#[test]
fn ng_call_relays_rtp_both_ways() {
    let (server, ctl, ng_addr) = gateway_with_ng("media", "41000-41999");
    let pong = ng(
        &ctl,
        ng_addr,
        "p",
        &Value::dict([("command", Value::text("ping"))]),
    );
    assert_eq!(pong.str("result"), Some("pong"));

    let caller = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let callee = UdpSocket::bind("127.0.0.1:0").expect("bind");
    for s in [&caller, &callee] {
        s.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
    }
    let offer = ng(
        &ctl,
        ng_addr,
        "o",
        &Value::dict([
            ("command", Value::text("offer")),
            ("call-id", Value::text("it-1")),
            ("from-tag", Value::text("a")),
            ("sdp", Value::text(&sdp(&caller))),
        ]),
    );
    let callee_sends_to = target(&offer);
    let answer = ng(
        &ctl,
        ng_addr,
        "a",
        &Value::dict([
            ("command", Value::text("answer")),
            ("call-id", Value::text("it-1")),
            ("from-tag", Value::text("a")),
            ("to-tag", Value::text("b")),
            ("sdp", Value::text(&sdp(&callee))),
        ]),
    );
    let caller_sends_to = target(&answer);
    assert!((41000..=41999).contains(&caller_sends_to.port()));

    let mut pkt = [0u8; 172];
    let mut buf = [0u8; 2048];
    for i in 0..50u16 {
        write_header(&mut pkt, false, 0, i, u32::from(i) * 160, 0xCAFE);
        pkt[12] = i as u8;
        caller.send_to(&pkt, caller_sends_to).expect("send");
        let (n, from) = callee.recv_from(&mut buf).expect("callee hears the caller");
        assert_eq!((n, from, buf[12]), (172, callee_sends_to, i as u8));
        callee.send_to(&pkt, callee_sends_to).expect("send");
        let (n, from) = caller.recv_from(&mut buf).expect("caller hears the callee");
        assert_eq!((n, from), (172, caller_sends_to));
    }
    let q = ng(
        &ctl,
        ng_addr,
        "q",
        &Value::dict([
            ("command", Value::text("query")),
            ("call-id", Value::text("it-1")),
        ]),
    );
    let rtp = q.get("totals").and_then(|t| t.get("RTP")).expect("totals");
    assert_eq!(rtp.get("packets"), Some(&Value::Int(50)));
    let metrics = server.get("/metrics").1;
    assert!(metrics.contains("mgw_media_sessions 1"), "{metrics}");
    let del = ng(
        &ctl,
        ng_addr,
        "d",
        &Value::dict([
            ("command", Value::text("delete")),
            ("call-id", Value::text("it-1")),
        ]),
    );
    assert_eq!(del.str("result"), Some("ok"));
    // Deleted: the port no longer relays.
    caller
        .set_read_timeout(Some(Duration::from_millis(300)))
        .expect("timeout");
    callee.send_to(&pkt, callee_sends_to).expect("send");
    assert!(caller.recv_from(&mut buf).is_err(), "nothing after delete");
}

/// Payload type a side uses for `c` in this test's SDPs.
fn pt_of(c: CodecName) -> u8 {
    c.static_payload_type().unwrap_or(match c {
        CodecName::Opus => 111,
        _ => 98,
    })
}

fn sdp_with(sock: &UdpSocket, c: CodecName, pt: u8) -> String {
    let a = sock.local_addr().expect("addr");
    format!(
        "v=0\r\no=- 1 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\nm=audio {port} RTP/AVP {pt}\r\n\
         a=rtpmap:{pt} {}/{}{}\r\na=ptime:20\r\n",
        c.encoding(),
        c.rtp_clock(),
        if c.rtp_channels() == 2 { "/2" } else { "" },
        ip = a.ip(),
        port = a.port()
    )
}

/// One second of a 1004 Hz tone from `src` to `dst` in `codec`, paced a little; returns the
/// audio `sink` decodes from what arrives in `out_codec` with payload type `out_pt`.
#[allow(clippy::too_many_arguments)]
fn tone_through(
    src: &UdpSocket,
    dst: SocketAddr,
    codec: CodecName,
    pt: u8,
    sink: &UdpSocket,
    out_codec: CodecName,
    out_pt: u8,
) -> Vec<i16> {
    let rate = audio_rate(codec);
    let frame = (rate / 50) as usize;
    let mut enc = Encoder::new(codec, 20, 5).expect("encoder");
    let mut pkt = vec![0u8; 1500];
    for i in 0..50u32 {
        let pcm: Vec<i16> = (0..frame)
            .map(|k| {
                let t = (i as usize * frame + k) as f64 / f64::from(rate);
                (8000.0 * (std::f64::consts::TAU * 1004.0 * t).sin()) as i16
            })
            .collect();
        let n = enc.encode(&pcm, &mut pkt[12..]).expect("encode");
        write_header(
            &mut pkt,
            false,
            pt,
            i as u16,
            i * codec.rtp_clock() / 50,
            0xCAFE,
        );
        src.send_to(&pkt[..12 + n], dst).expect("send");
        std::thread::sleep(Duration::from_millis(2));
    }
    let mut dec = Decoder::new(out_codec).expect("decoder");
    let mut audio = Vec::new();
    let mut buf = [0u8; 2048];
    let mut pcm = vec![0i16; 5760];
    // The first packet may wait for a busy machine; once audio flows, a pause means the end.
    sink.set_read_timeout(Some(Duration::from_secs(3)))
        .expect("timeout");
    while let Ok(n) = sink.recv(&mut buf) {
        sink.set_read_timeout(Some(Duration::from_millis(300)))
            .expect("timeout");
        let mut p = buf[..n].to_vec();
        let r = RtpPacket::parse(&mut p).expect("RTP from mgw");
        assert_eq!(r.payload_type(), out_pt, "{codec:?} -> {out_codec:?}");
        let m = dec.decode(Some(r.payload()), &mut pcm).expect("decode");
        audio.extend_from_slice(&pcm[..m]);
    }
    audio
}

/// Power of `x` at `hz` relative to its total energy (1.0: a pure tone there).
fn tone_share(x: &[i16], hz: f64, rate: f64) -> f64 {
    let coeff = 2.0 * (std::f64::consts::TAU * hz / rate).cos();
    let (mut s1, mut s2, mut e) = (0f64, 0f64, 0f64);
    for v in x {
        let v = f64::from(*v);
        e += v * v;
        let s0 = v + coeff * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    let p = s1 * s1 + s2 * s2 - coeff * s1 * s2;
    2.0 * p / (x.len() as f64 * e.max(1.0))
}

/// Two RTP endpoints through the running mgw, driven by ng with rtpengine's `codec`
/// `transcode` flag, for every codec pair: audio both ways, a 1004 Hz tone in each codec
/// arriving as a 1004 Hz tone in the other.
#[test]
fn ng_transcodes_every_codec_pair_between_real_endpoints() {
    use CodecName::*;
    let (_server, ctl, ng_addr) = gateway_with_ng("media-pairs", "42000-42999");
    let codecs = [Pcmu, Pcma, G722, G726_32, Opus];
    let mut n = 0;
    for a in codecs {
        for b in codecs {
            n += 1;
            let call_id = format!("pair-{n}");
            let (caller, callee) = (
                UdpSocket::bind("127.0.0.1:0").expect("bind"),
                UdpSocket::bind("127.0.0.1:0").expect("bind"),
            );
            let offer = ng(
                &ctl,
                ng_addr,
                "o",
                &Value::dict([
                    ("command", Value::text("offer")),
                    ("call-id", Value::text(&call_id)),
                    ("from-tag", Value::text("a")),
                    ("sdp", Value::text(&sdp_with(&caller, a, pt_of(a)))),
                    (
                        "codec",
                        Value::dict([("transcode", Value::List(vec![Value::text(b.encoding())]))]),
                    ),
                ]),
            );
            let callee_sends_to = target(&offer);
            let onward =
                SessionDescription::parse(offer.str("sdp").expect("sdp").as_bytes()).expect("SDP");
            let b_pt = Codec::list(&onward.media[0])
                .iter()
                .find(|c| c.name == b)
                .unwrap_or_else(|| panic!("{b:?} offered onward: {onward}"))
                .payload_type;
            let answer = ng(
                &ctl,
                ng_addr,
                "a",
                &Value::dict([
                    ("command", Value::text("answer")),
                    ("call-id", Value::text(&call_id)),
                    ("from-tag", Value::text("a")),
                    ("to-tag", Value::text("b")),
                    ("sdp", Value::text(&sdp_with(&callee, b, b_pt))),
                ]),
            );
            let caller_sends_to = target(&answer);
            for (src, dst, c, pt, sink, oc, opt) in [
                (&caller, caller_sends_to, a, pt_of(a), &callee, b, b_pt),
                (&callee, callee_sends_to, b, b_pt, &caller, a, pt_of(a)),
            ] {
                let audio = tone_through(src, dst, c, pt, sink, oc, opt);
                let rate = f64::from(audio_rate(oc));
                assert!(
                    audio.len() as f64 > 0.9 * rate,
                    "{c:?} -> {oc:?}: {} samples of 1 s",
                    audio.len()
                );
                let tail = &audio[audio.len() / 2..][..(rate / 10.0) as usize];
                let share = tone_share(tail, 1004.0, rate);
                assert!(
                    share > 0.9,
                    "{c:?} -> {oc:?}: 1004 Hz carries {share:.2} of the energy"
                );
            }
            let del = ng(
                &ctl,
                ng_addr,
                "d",
                &Value::dict([
                    ("command", Value::text("delete")),
                    ("call-id", Value::text(&call_id)),
                ]),
            );
            assert_eq!(del.str("result"), Some("ok"));
        }
    }
}
