//! Whole calls through the sans-IO control and relay: offer from A, answer from B, then audio
//! and DTMF both ways, checked by decoding what comes out.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::*;
use crate::codec::test_signal::{dominant_hz, tone_snr};
use crate::dtmf::detect::{Detector, Dtmf};
use crate::dtmf::event::Event;
use crate::dtmf::tone::ToneGenerator;
use crate::relay::{DropReason, RelayConfig, Verdict};
use crate::rtp::header::{write_header, RtpPacket};
use crate::transcode::{audio_rate, Decoder, Encoder, MAX_FRAME};

const A: &str = "192.0.2.10:4000";
const B: &str = "198.51.100.20:5000";

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// An SDP offering `codecs` (name, payload type) and optionally telephone-event.
fn sdp(at: &str, codecs: &[(CodecName, u8)], te: Option<(u8, u32)>, ptime: u32) -> String {
    let a = addr(at);
    let mut fmts: Vec<String> = codecs.iter().map(|c| c.1.to_string()).collect();
    let mut attrs = String::new();
    for &(c, pt) in codecs {
        attrs += &format!(
            "a=rtpmap:{pt} {}/{}{}\r\n",
            c.encoding(),
            c.rtp_clock(),
            if c.rtp_channels() == 2 { "/2" } else { "" }
        );
    }
    if let Some((pt, clock)) = te {
        fmts.push(pt.to_string());
        attrs += &format!("a=rtpmap:{pt} telephone-event/{clock}\r\na=fmtp:{pt} 0-16\r\n");
    }
    format!(
        "v=0\r\no=- 1 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\nm=audio {port} RTP/AVP {}\r\n{attrs}a=ptime:{ptime}\r\n",
        fmts.join(" "),
        ip = a.ip(),
        port = a.port()
    )
}

fn pt_of(c: CodecName) -> u8 {
    c.static_payload_type().unwrap_or(match c {
        CodecName::Opus => 111,
        _ => 98,
    })
}

struct Call {
    relay: Relay,
    ports: PortPool,
    sessions: Sessions,
    /// mgw's ports towards A and B.
    port_a: u16,
    port_b: u16,
    /// Payload types each side ended up with (audio, events).
    a_pts: (u8, Option<u8>),
    b_pts: (u8, Option<u8>),
    now: Instant,
}

fn media_port(sdp: &str) -> (u16, SessionDescription) {
    let s = SessionDescription::parse(sdp.as_bytes()).unwrap();
    (s.media[0].port, s)
}

/// A offers `a` (with events at 8 kHz if `a_te`), asking mgw to add `b`; B answers `b`.
fn call(a: CodecName, a_te: bool, b: CodecName, b_te: bool, b_ptime: u32) -> Call {
    let now = Instant::now();
    let mut relay = Relay::new(RelayConfig::default(), now);
    let mut ports = PortPool::new(30000, 30099);
    let mut sessions = Sessions::new("203.0.113.1".parse().unwrap(), 5);
    let options = MediaOptions {
        transcode: vec![b],
        trust_address: true,
        ..MediaOptions::default()
    };
    let offer = sdp(A, &[(a, pt_of(a))], a_te.then_some((101, 8000)), 20);
    let onward = sessions
        .offer("c1", "ta", &offer, &options, &mut relay, &mut ports, now)
        .unwrap();
    let (port_b, onward) = media_port(&onward);
    let b_pt = Codec::list(&onward.media[0])
        .iter()
        .find(|c| c.name == b)
        .expect("the codec to transcode to is offered onward")
        .payload_type;
    let b_clock = b.rtp_clock();
    let answer = sdp(B, &[(b, b_pt)], b_te.then_some((110, b_clock)), b_ptime);
    let back = sessions
        .answer("c1", Some("tb"), &answer, &options, &mut relay, now)
        .unwrap();
    let (port_a, back) = media_port(&back);
    let codecs = Codec::list(&back.media[0]);
    assert_eq!(
        codecs[0].name, a,
        "A is answered with its own codec: {back}"
    );
    Call {
        relay,
        ports,
        sessions,
        port_a,
        port_b,
        a_pts: (pt_of(a), a_te.then_some(101)),
        b_pts: (b_pt, b_te.then_some(110)),
        now,
    }
}

impl Call {
    /// Sends `packets` from A (or B), one every 20 ms; returns what leaves towards the other.
    fn send(&mut self, from_a: bool, packets: &[Vec<u8>]) -> Vec<Vec<u8>> {
        let (port, src, dst) = if from_a {
            (self.port_a, addr(A), addr(B))
        } else {
            (self.port_b, addr(B), addr(A))
        };
        let mut out = Vec::new();
        for p in packets {
            self.now += Duration::from_millis(20);
            let mut buf = vec![0u8; 2048];
            buf[..p.len()].copy_from_slice(p);
            let v = self
                .relay
                .on_datagram(port, src, &mut buf, p.len(), self.now);
            let mut extra = vec![0u8; 2048];
            while let Some((_, to, n)) = self.relay.poll_extra(&mut extra) {
                assert_eq!(to, dst);
                out.push(extra[..n].to_vec());
            }
            match v {
                Verdict::Forward { to, len, .. } => {
                    assert_eq!(to, dst);
                    out.push(buf[..len].to_vec());
                }
                Verdict::Drop(
                    r @ (DropReason::UnknownPort
                    | DropReason::NotFromPeer
                    | DropReason::NoDestination),
                ) => panic!("dropped: {r:?}"),
                // Buffered by re-framing, or a broken packet (the loss test sends some).
                Verdict::Drop(_) => {}
            }
        }
        out
    }
}

fn rtp(pt: u8, seq: u16, ts: u32, payload: &[u8]) -> Vec<u8> {
    let mut p = vec![0u8; 12 + payload.len()];
    write_header(&mut p, false, pt, seq, ts, 0x1234_5678);
    p[12..].copy_from_slice(payload);
    p
}

/// `pcm` (at `codec`'s rate) as 20 ms RTP packets of `codec`.
fn encode(codec: CodecName, pt: u8, pcm: &[i16]) -> Vec<Vec<u8>> {
    let mut enc = Encoder::new(codec, 20, 5).unwrap();
    let frame = (audio_rate(codec) / 50) as usize;
    let step = codec.rtp_clock() / 50;
    pcm.chunks_exact(frame)
        .enumerate()
        .map(|(i, f)| {
            let mut out = vec![0u8; 1500];
            let n = enc.encode(f, &mut out).unwrap();
            rtp(pt, 1000 + i as u16, 5000 + step * i as u32, &out[..n])
        })
        .collect()
}

/// Decodes packets of payload type `pt` in order; checks numbering on the way.
fn decode(codec: CodecName, pt: u8, packets: &[Vec<u8>]) -> Vec<i16> {
    let mut dec = Decoder::new(codec).unwrap();
    let mut out = Vec::new();
    let mut buf = vec![0i16; MAX_FRAME];
    let mut last: Option<(u16, u32, u32)> = None;
    for p in packets {
        let mut p = p.clone();
        let r = RtpPacket::parse(&mut p).unwrap();
        if r.payload_type() != pt {
            continue;
        }
        if let Some((seq, _, ssrc)) = last {
            assert_eq!(r.sequence(), seq.wrapping_add(1), "{codec:?}: sequence");
            assert_eq!(r.ssrc(), ssrc);
        }
        last = Some((r.sequence(), r.timestamp(), r.ssrc()));
        let n = dec.decode(Some(r.payload()), &mut buf).unwrap();
        out.extend_from_slice(&buf[..n]);
    }
    out
}

fn tone(hz: f64, rate: u32, n: usize) -> Vec<i16> {
    crate::codec::test_signal::tone(hz, 8000.0, n, f64::from(rate))
}

/// Every pair of codecs, both directions of one call: a 1004 Hz tone comes out at 1 kHz with
/// the pair's SNR floor, in the other leg's codec and payload type.
#[test]
fn every_codec_pair_carries_a_tone_both_ways() {
    use CodecName::*;
    let codecs = [Pcmu, Pcma, G722, G726_32, Opus];
    for a in codecs {
        for b in codecs {
            let mut c = call(a, false, b, false, 20);
            for (from_a, (fc, fpt), (tc, tpt)) in [
                (true, (a, c.a_pts.0), (b, c.b_pts.0)),
                (false, (b, c.b_pts.0), (a, c.a_pts.0)),
            ] {
                let rate = audio_rate(fc);
                let input = encode(fc, fpt, &tone(1004.0, rate, rate as usize));
                let out = c.send(from_a, &input);
                assert!(
                    out.len() + 2 >= input.len(),
                    "{fc:?} -> {tc:?}: {} packets out of {}",
                    out.len(),
                    input.len()
                );
                let audio = decode(tc, tpt, &out);
                let orate = audio_rate(tc);
                let hz = dominant_hz(
                    &audio[audio.len() / 2..][..orate as usize / 20],
                    f64::from(orate),
                );
                assert!((hz - 1000.0).abs() <= 100.0, "{fc:?} -> {tc:?}: {hz} Hz");
                let snr = tone_snr(&audio, 1004.0, orate);
                let floor = if fc == Opus || tc == Opus { 25.0 } else { 28.0 };
                eprintln!("through the relay {fc:?} -> {tc:?}: {snr:.1} dB");
                assert!(snr > floor, "{fc:?} -> {tc:?}: SNR {snr:.1} dB");
            }
            let decodes = c.relay.decodes(SessionId(1), Side::A);
            let expect = !(a == b || matches!((a, b), (Pcmu, Pcma) | (Pcma, Pcmu)));
            assert_eq!(decodes, expect, "{a:?} -> {b:?} decodes");
            let info = c.sessions.query("c1", &c.relay, c.now).unwrap();
            assert_eq!(info.codecs, [Some(a), Some(b)]);
            c.sessions.delete("c1", &mut c.relay, &mut c.ports).unwrap();
        }
    }
}

/// 20 ms in, 30 ms out and back: re-framing through the further-packets queue.
#[test]
fn ptime_conversion_both_ways() {
    let mut c = call(CodecName::Pcmu, false, CodecName::G722, false, 30);
    let input = encode(CodecName::Pcmu, 0, &tone(1004.0, 8000, 8000));
    let out = c.send(true, &input);
    assert_eq!(out.len(), 33, "1 s of 30 ms packets");
    assert!(out.iter().all(|p| p.len() == 12 + 240));
    let audio = decode(CodecName::G722, c.b_pts.0, &out);
    assert!(tone_snr(&audio, 1004.0, 16000) > 28.0);
    // B sends 30 ms G.722; A gets 20 ms PCMU: some packets become two.
    let mut enc = Encoder::new(CodecName::G722, 30, 5).unwrap();
    let pcm = tone(1004.0, 16000, 16000);
    let packets: Vec<Vec<u8>> = pcm
        .chunks_exact(480)
        .enumerate()
        .map(|(i, f)| {
            let mut o = vec![0u8; 1500];
            let n = enc.encode(f, &mut o).unwrap();
            rtp(c.b_pts.0, i as u16, 240 * i as u32, &o[..n])
        })
        .collect();
    let out = c.send(false, &packets);
    assert!((49..=50).contains(&out.len()), "{} packets", out.len());
    let audio = decode(CodecName::Pcmu, 0, &out);
    assert!(tone_snr(&audio, 1004.0, 8000) > 28.0);
}

fn event_packets(pt: u8, event: u8, ts: u32, seq0: u16, step: u16, count: u16) -> Vec<Vec<u8>> {
    let mut v = Vec::new();
    for i in 0..count + 3 {
        let end = i >= count;
        let e = Event {
            event,
            end,
            volume: 10,
            duration: step * (i.min(count - 1) + 1),
        };
        let mut payload = [0u8; 4];
        e.write(&mut payload);
        v.push(rtp(pt, seq0 + i, ts, &payload));
    }
    v
}

/// Both legs do events, at different clocks: payload type and duration are translated.
#[test]
fn telephone_events_are_translated_between_clocks() {
    let mut c = call(CodecName::Pcmu, true, CodecName::Opus, true, 20);
    let out = c.send(true, &event_packets(101, 5, 8000, 50, 160, 5));
    let evs: Vec<(bool, u32, Event)> = out
        .iter()
        .map(|p| {
            let mut p = p.clone();
            let r = RtpPacket::parse(&mut p).unwrap();
            assert_eq!(r.payload_type(), 110);
            (
                r.marker(),
                r.timestamp(),
                Event::parse(r.payload()).unwrap(),
            )
        })
        .collect();
    assert_eq!(evs.len(), 8);
    assert!(evs[0].0 && !evs[1].0, "marker on the first packet only");
    assert!(evs.iter().all(|e| e.1 == evs[0].1 && e.2.event == 5));
    assert_eq!(
        evs[4].2.duration,
        5 * 960,
        "8 kHz durations scaled to 48 kHz"
    );
    assert!(evs[5..].iter().all(|e| e.2.end));
}

/// Only A does events: A's key becomes a tone in B's audio, and B's tone becomes events to A.
#[test]
fn events_become_tones_and_tones_become_events() {
    let mut c = call(CodecName::Pcmu, true, CodecName::Pcma, false, 20);
    let silence = encode(CodecName::Pcmu, 0, &vec![0i16; 1600]);
    let mut seq_audio = silence;
    for (i, p) in seq_audio.iter_mut().enumerate() {
        p[2..4].copy_from_slice(&(i as u16).to_be_bytes());
    }
    let mut packets = seq_audio[..5].to_vec();
    packets.extend(event_packets(101, 1, 800, 5, 160, 6));
    let mut rest = seq_audio[5..].to_vec();
    for (i, p) in rest.iter_mut().enumerate() {
        p[2..4].copy_from_slice(&(13 + i as u16).to_be_bytes());
    }
    packets.extend(rest);
    let out = c.send(true, &packets);
    let audio = decode(CodecName::Pcma, 8, &out);
    let mut det = Detector::new(8000);
    let mut keys = Vec::new();
    det.feed(&audio, |k| keys.push(k));
    assert_eq!(
        keys,
        [Dtmf::Pressed(1), Dtmf::Released(1)],
        "key 1 in B's audio"
    );

    // B plays key 9 in band for 120 ms between silences; A gets events.
    let mut pcm = vec![0i16; 8000 / 5];
    let mut g = ToneGenerator::new(9, 8000, -8.0).unwrap();
    g.fill(&mut pcm[400..1360]);
    let out = c.send(false, &encode(CodecName::Pcma, 8, &pcm));
    let events: Vec<Event> = out
        .iter()
        .filter_map(|p| {
            let mut p = p.clone();
            let r = RtpPacket::parse(&mut p).unwrap();
            (r.payload_type() == 101).then(|| Event::parse(r.payload()).unwrap())
        })
        .collect();
    assert!(events.len() >= 4, "{events:?}");
    assert!(events.iter().all(|e| e.event == 9));
    assert!(events.last().unwrap().end);
    assert!(events.iter().filter(|e| e.end).count() == 3);
}

#[test]
fn loss_reordering_and_garbage_do_not_break_a_transcoding_call() {
    let mut c = call(CodecName::Opus, false, CodecName::Pcmu, false, 20);
    let mut input = encode(CodecName::Opus, 111, &tone(1004.0, 48000, 48000));
    input.remove(10);
    input.swap(20, 21);
    input[30].truncate(14);
    input[31][12..].fill(0xFF);
    let out = c.send(true, &input);
    assert!(out.len() >= 45, "{} packets", out.len());
    let audio = decode(CodecName::Pcmu, 0, &out);
    let hz = dominant_hz(&audio[audio.len() - 800..][..400], 8000.0);
    assert!((hz - 1000.0).abs() <= 100.0, "{hz} Hz after the damage");
}

/// The fixed cost of a transcoding direction, measured rather than assumed: audio buffers of
/// the decoding path (codec state comes on top: a few hundred bytes for G.711 to G.726, the
/// Opus encoder's own).
#[test]
fn a_decoding_direction_holds_a_small_fixed_amount_of_memory() {
    use crate::relay::AudioPlan;
    for (from, to) in [
        (CodecName::Pcmu, CodecName::Opus),
        (CodecName::G722, CodecName::Pcma),
    ] {
        let p = crate::relay::audio::AudioPath::new(
            AudioPlan {
                from,
                in_pt: 0,
                to,
                out_pt: 8,
                ptime_ms: 20,
                events_in: None,
                events_out: None,
                opus_complexity: 5,
            },
            None,
        )
        .expect("path");
        let bytes = p.buffer_bytes();
        eprintln!("{from:?} -> {to:?}: {bytes} bytes of buffers");
        assert!(bytes < 100 * 1024, "{bytes}");
    }
}
