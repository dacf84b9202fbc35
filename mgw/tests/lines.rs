//! Calls between real SIP phones (scripted UAs over UDP) and the simulated line hardware of a
//! running gateway: DECT handsets on a simulated base station and a simulated PSTN behind a
//! simulated ISDN line. Audio is checked by frequency after every transcoding on the way.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::ua::{header, status, Leg, Ua};
use common::Server;
use mgw_media::rtp::header::{write_header, RtpPacket};
use mgw_media::sdp::CodecName;
use mgw_media::transcode::{audio_rate, Decoder, Encoder};
use serde_json::Value;

/// The first of 100 RTP ports of its own for each gateway this process starts: the tests run
/// in parallel, one slot per test of this file.
fn rtp_range() -> u32 {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % 16;
    46000 + ((std::process::id() % 4) * 16 + n) * 100
}

fn gateway(name: &str, lines: &str) -> Server {
    let server = Server::configure(name, "");
    let csv = server.dir.join("users.csv");
    std::fs::write(
        &csv,
        "user,password,number\nalice,wonder,200\nbob,builder,201\n",
    )
    .expect("csv");
    let text = std::fs::read_to_string(&server.config).expect("config");
    let ports = rtp_range();
    let text = format!(
        "{text}[licences]\ntotal = 10\n[accounts]\nimport_csv = \"{}\"\n\
         [media]\nbind = \"127.0.0.1\"\nrtp_ports = \"{ports}-{}\"\n{lines}",
        csv.display(),
        ports + 99
    );
    std::fs::write(&server.config, text).expect("config");
    server.start()
}

const DECT: &str = "[[dect]]\nname = \"base1\"\nsimulated = true\nchannels = 2\n\
    handsets = [{ ipui = \"00077A1B2C\", number = \"300\" }, \
    { ipui = \"00077A1B2D\", number = \"301\", audio = \"tone:1004\" }]\n";

fn sip(s: &Server) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], s.port))
}

fn simulate(s: &Server, driver: &str, body: &str) -> (u16, Value) {
    s.json(
        "t",
        "POST",
        &format!("/api/v1/drivers/{driver}/simulate"),
        body,
    )
}

/// Polls `path` of the admin API until `done` holds (call records are written in batches,
/// line states refresh every 100 ms); the last answer, or a panic naming `what` after
/// `within_s` seconds.
fn poll(s: &Server, path: &str, within_s: u64, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(within_s);
    loop {
        let v = s.json("t", "GET", path, "").1;
        if done(&v) {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "no {what} within {within_s} s: {v}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The final response to the INVITE, ACKed; provisional ones are skipped.
fn final_response(ua: &Ua, leg: &mut Leg) -> Vec<u8> {
    let resp = response_for(ua, leg, 200);
    ua.confirm(leg, &resp);
    resp
}

/// The next response of `leg`'s INVITE with a status >= `min`: a retransmitted answer of an
/// earlier call is skipped.
fn response_for(ua: &Ua, leg: &Leg, min: u16) -> Vec<u8> {
    loop {
        let resp = ua.response("INVITE", min);
        if header(&resp, "Call-ID").as_deref() == Some(leg.call_id.as_str()) {
            return resp;
        }
    }
}

/// Sends one second of a 1004 Hz tone in `codec` (payload type `pt`) to `to` while taking in
/// what comes back on the same socket; returns the share of the received audio's energy at
/// 1004 Hz (1.0: a pure tone) and how many packets came.
fn tone_exchange(ua: &Ua, to: SocketAddr, codec: CodecName, pt: u8, send: bool) -> (f64, usize) {
    tone_exchange_at(ua, to, codec, pt, send, 1004.0)
}

/// Like [`tone_exchange`], measuring the received audio at `hz`.
fn tone_exchange_at(
    ua: &Ua,
    to: SocketAddr,
    codec: CodecName,
    pt: u8,
    send: bool,
    hz: f64,
) -> (f64, usize) {
    let rate = audio_rate(codec);
    let frame = (rate / 50) as usize;
    let mut enc = Encoder::new(codec, 20, 5).expect("encoder");
    let mut dec = Decoder::new(codec).expect("decoder");
    let mut pkt = vec![0u8; 1500];
    let mut pcm = vec![0i16; 5760];
    let mut got = Vec::new();
    let mut packets = 0;
    let mut buf = [0u8; 2048];
    ua.rtp
        .set_read_timeout(Some(Duration::from_millis(5)))
        .expect("timeout");
    let start = Instant::now();
    let mut i = 0u32;
    while start.elapsed() < Duration::from_millis(1600) {
        if i < 60 && start.elapsed() >= Duration::from_millis(u64::from(i) * 20) {
            let samples: Vec<i16> = (0..frame)
                .map(|k| {
                    let t = (i as usize * frame + k) as f64 / f64::from(rate);
                    if send {
                        (8000.0 * (std::f64::consts::TAU * 1004.0 * t).sin()) as i16
                    } else {
                        0
                    }
                })
                .collect();
            let n = enc.encode(&samples, &mut pkt[12..]).expect("encode");
            write_header(
                &mut pkt,
                i == 0,
                pt,
                i as u16,
                i * codec.rtp_clock() / 50,
                0x5150,
            );
            ua.rtp.send_to(&pkt[..12 + n], to).expect("send");
            i += 1;
        }
        if let Ok(n) = ua.rtp.recv(&mut buf) {
            let mut p = buf[..n].to_vec();
            let Ok(r) = RtpPacket::parse(&mut p) else {
                continue;
            };
            if r.payload_type() != pt {
                continue;
            }
            packets += 1;
            let m = dec.decode(Some(r.payload()), &mut pcm).expect("decode");
            got.extend_from_slice(&pcm[..m]);
        }
    }
    // The first packets carry the jitter buffers' fill and the line's start: skip 200 ms.
    let skip = (rate as usize / 5).min(got.len());
    (tone_share(&got[skip..], hz, f64::from(rate)), packets)
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

const PCMU: (u8, &str) = (0, "PCMU/8000");
const OPUS: (u8, &str) = (111, "opus/48000/2");

/// A SIP phone calls a DECT handset that answers after one ring and echoes: the phone's tone
/// comes back through G.722 on the air interface, for a PCMU phone and an Opus phone.
#[test]
fn phone_calls_a_dect_handset_and_hears_its_echo() {
    let s = gateway("lines-dect-echo", DECT);
    for (codec, name) in [(CodecName::Pcmu, PCMU), (CodecName::Opus, OPUS)] {
        let mut alice = Ua::new(sip(&s), "alice", "wonder");
        let offer = alice.sdp(&[name]);
        let (mut leg, _) = alice.call("300", &offer);
        let ok = final_response(&alice, &mut leg);
        assert_eq!(status(&ok), 200, "{}", String::from_utf8_lossy(&ok));
        let to = leg.media.expect("media address in the 200");
        let (share, packets) = tone_exchange(&alice, to, codec, name.0, true);
        assert!(packets > 40, "{codec:?}: {packets} packets back");
        assert!(
            share > 0.5,
            "{codec:?}: echo at 1004 Hz carries {share:.3} of the energy"
        );
        alice.in_dialog(&mut leg, "BYE", None);
        assert_eq!(status(&alice.response("BYE", 200)), 200);
    }
    // Call records are written in batches: wait for both.
    let cdrs = poll(&s, "/api/v1/cdrs?callee=300", 5, "both call records", |v| {
        v.as_array().is_some_and(|a| a.len() == 2)
    });
    let rows = cdrs.as_array().cloned().unwrap_or_default();
    assert!(rows.iter().all(|r| r["codec_callee"] == "G722"), "{cdrs}");
    assert!(rows.iter().all(|r| r["trunk"] == "base1"), "{cdrs}");
}

/// A delayed offer (INVITE without SDP) to a DECT handset: mgw's 200 carries the offer, the
/// phone's ACK the answer, and the echo comes back.
#[test]
fn delayed_offer_to_a_dect_handset() {
    let s = gateway("lines-delayed", DECT);
    let alice = Ua::new(sip(&s), "alice", "wonder");
    let mut alice = alice;
    let (mut leg, _) = alice.call("300", "");
    let ok = response_for(&alice, &leg, 200);
    assert_eq!(status(&ok), 200, "{}", String::from_utf8_lossy(&ok));
    let body = String::from_utf8_lossy(&ok).into_owned();
    assert!(
        body.contains("PCMU/8000"),
        "mgw offers what it can transcode to: {body}"
    );
    alice.confirm_with(&mut leg, &ok, &alice.sdp(&[PCMU]));
    let to = leg.media.expect("media address in the 200");
    let (share, packets) = tone_exchange(&alice, to, CodecName::Pcmu, 0, true);
    assert!(packets > 40 && share > 0.5, "{packets} packets, {share:.3}");
    alice.in_dialog(&mut leg, "BYE", None);
    assert_eq!(status(&alice.response("BYE", 200)), 200);
}

/// A handset calls a SIP phone; the phone hears the handset's tone. Then a busy handset and
/// a full base station give the right SIP answers.
#[test]
fn dect_handset_calls_a_phone_and_failures_map_to_sip() {
    let s = gateway("lines-dect-out", DECT);
    let mut alice = Ua::new(sip(&s), "alice", "wonder");
    alice.register();
    let (code, v) = simulate(&s, "base1", r#"{"action":"dial","from":"301","to":"200"}"#);
    assert_eq!(code, 200, "{v}");
    let invite = alice.request("INVITE");
    let from = header(&invite, "From").unwrap_or_default();
    assert!(from.contains("301"), "the handset's number: {from}");
    let offer_to = common::ua::media_of(&invite).expect("SDP offer");
    let answer = alice.sdp(&[PCMU]);
    let mut leg = alice.reply(&invite, 200, "OK", Some(&answer));
    let _ack = alice.request("ACK");
    let (share, packets) = tone_exchange(&alice, offer_to, CodecName::Pcmu, 0, false);
    assert!(packets > 40, "{packets} packets from the handset");
    assert!(share > 0.5, "the handset's 1004 Hz tone: {share:.3}");
    // Handset 301 is busy with this call: a second call to it is refused as busy.
    let mut bob = Ua::new(sip(&s), "bob", "builder");
    let (mut bleg, _) = bob.call("301", &bob.sdp(&[PCMU]));
    let busy = final_response(&bob, &mut bleg);
    assert_eq!(status(&busy), 486, "{}", String::from_utf8_lossy(&busy));
    let reason = header(&busy, "Reason").unwrap_or_default();
    assert!(reason.contains("cause=17"), "{reason}");
    alice.in_dialog(&mut leg, "BYE", None);
    let bye = alice.response("BYE", 200);
    assert_eq!(status(&bye), 200, "{}", String::from_utf8_lossy(&bye));
}

const ISDN: &str =
    "[[isdn]]\nname = \"pri1\"\nkind = \"e1-pri\"\nsimulated = true\nprefix = \"0\"\nt309_s = 1\n\
    [[isdn]]\nname = \"bri1\"\nkind = \"bri\"\nsimulated = true\nprefix = \"8\"\n";

/// A call over the simulated E1 to the PSTN echo number, answered after a ring: the phone's
/// tone crosses A-law on the B channel both ways, for a PCMU phone and an Opus phone; the test
/// number 5551004 plays 1000 Hz.
#[test]
fn phone_calls_the_pstn_over_a_simulated_e1() {
    let s = gateway("lines-pstn", ISDN);
    for (codec, name) in [(CodecName::Pcmu, PCMU), (CodecName::Opus, OPUS)] {
        let mut alice = Ua::new(sip(&s), "alice", "wonder");
        let (mut leg, _) = alice.call("05551000", &alice.sdp(&[name]));
        let ok = final_response(&alice, &mut leg);
        assert_eq!(status(&ok), 200, "{}", String::from_utf8_lossy(&ok));
        let to = leg.media.expect("media address in the 200");
        let (share, packets) = tone_exchange(&alice, to, codec, name.0, true);
        assert!(packets > 40, "{codec:?}: {packets} packets back");
        assert!(share > 0.5, "{codec:?}: PSTN echo at 1004 Hz: {share:.3}");
        alice.in_dialog(&mut leg, "BYE", None);
        assert_eq!(status(&alice.response("BYE", 200)), 200);
    }
    let mut alice = Ua::new(sip(&s), "alice", "wonder");
    let (mut leg, _) = alice.call("05551004", &alice.sdp(&[PCMU]));
    let ok = final_response(&alice, &mut leg);
    assert_eq!(status(&ok), 200);
    let to = leg.media.expect("media");
    let (share, _) = tone_exchange_at(&alice, to, CodecName::Pcmu, 0, false, 1000.0);
    assert!(share > 0.5, "the 1 kHz test tone: {share:.3}");
    alice.in_dialog(&mut leg, "BYE", None);
    assert_eq!(status(&alice.response("BYE", 200)), 200);
    let lines = s.json("t", "GET", "/api/v1/drivers", "").1;
    assert!(lines.to_string().contains("isdn-e1"), "{lines}");
}

/// `[emergency] trunk`: 112 leaves by the PRI as dialled (no line prefix), the exchange's
/// emergency desk answers and echoes; the active call and its record name the line.
#[test]
fn emergency_call_leaves_by_the_pri() {
    let s = gateway(
        "lines-emergency",
        &format!("{ISDN}[emergency]\ntrunk = \"pri1\"\n"),
    );
    let mut alice = Ua::new(sip(&s), "alice", "wonder");
    let (mut leg, _) = alice.call("112", &alice.sdp(&[PCMU]));
    let ok = final_response(&alice, &mut leg);
    assert_eq!(status(&ok), 200, "{}", String::from_utf8_lossy(&ok));
    let to = leg.media.expect("media address in the 200");
    let (share, packets) = tone_exchange(&alice, to, CodecName::Pcmu, PCMU.0, true);
    assert!(packets > 40, "{packets} packets back");
    assert!(share > 0.5, "the desk's echo at 1004 Hz: {share:.3}");
    let calls = s.json("t", "GET", "/api/v1/calls", "").1;
    assert_eq!(calls[0]["trunk"], "pri1", "{calls}");
    alice.in_dialog(&mut leg, "BYE", None);
    assert_eq!(status(&alice.response("BYE", 200)), 200);
    let cdrs = poll(&s, "/api/v1/cdrs?callee=112", 10, "a call record", |v| {
        v[0]["status"] == 200
    });
    assert_eq!(cdrs[0]["trunk"], "pri1", "{cdrs}");
    assert_eq!(cdrs[0]["emergency"], true, "{cdrs}");
    assert_eq!(cdrs[0]["direction"], "outbound", "{cdrs}");
}

/// PSTN failures reach the SIP caller as the right status with the line's Q.850 cause, and
/// all channels of a BRI busy gives 503 with cause 34.
#[test]
fn pstn_failures_map_to_sip_statuses_with_their_causes() {
    let s = gateway("lines-pstn-fail", ISDN);
    let mut alice = Ua::new(sip(&s), "alice", "wonder");
    for (dialled, want, cause) in [
        ("05551001", 486, 17),
        ("05551003", 404, 1),
        ("05551005", 503, 42),
    ] {
        let (mut leg, _) = alice.call(dialled, &alice.sdp(&[PCMU]));
        let r = final_response(&alice, &mut leg);
        assert_eq!(
            status(&r),
            want,
            "{dialled}: {}",
            String::from_utf8_lossy(&r)
        );
        let reason = header(&r, "Reason").unwrap_or_default();
        assert!(
            reason.contains(&format!("cause={cause}")),
            "{dialled}: {reason}"
        );
    }
    // The BRI has two B channels: two ringing calls take them, a third finds none.
    let mut legs = Vec::new();
    for _ in 0..2 {
        let (leg, _) = alice.call("85551002", &alice.sdp(&[PCMU]));
        let ringing = response_for(&alice, &leg, 180);
        assert_eq!(status(&ringing), 180);
        legs.push(leg);
    }
    let (mut leg, _) = alice.call("85551002", &alice.sdp(&[PCMU]));
    let r = final_response(&alice, &mut leg);
    assert_eq!(status(&r), 503, "{}", String::from_utf8_lossy(&r));
    let reason = header(&r, "Reason").unwrap_or_default();
    assert!(reason.contains("cause=34"), "{reason}");
}

/// A gateway with the ISDN lines, Alice registered on 200, and the INVITE of a PSTN caller
/// (0301234567) who dialled her number.
fn did_call(name: &str) -> (Server, Ua, Vec<u8>) {
    let s = gateway(name, ISDN);
    let mut alice = Ua::new(sip(&s), "alice", "wonder");
    alice.register();
    let (code, v) = simulate(
        &s,
        "pri1",
        r#"{"action":"dial","from":"0301234567","to":"200"}"#,
    );
    assert_eq!(code, 200, "{v}");
    let invite = alice.request("INVITE");
    (s, alice, invite)
}

/// A PSTN caller dials the phone's number (a DID) and hears the phone; the PSTN side hangs up
/// and the phone gets a BYE. Then a call in progress loses layer 1 and the phone is told.
#[test]
fn pstn_calls_a_phone_and_line_loss_tears_calls_down() {
    let (s, mut alice, invite) = did_call("lines-did");
    let from = header(&invite, "From").unwrap_or_default();
    assert!(
        from.contains("0301234567"),
        "the PSTN caller's number: {from}"
    );
    let to = common::ua::media_of(&invite).expect("SDP offer");
    let answer = alice.sdp(&[PCMU]);
    let _leg = alice.reply(&invite, 200, "OK", Some(&answer));
    let _ack = alice.request("ACK");
    // The PSTN party echoes: the phone hears its own tone back over the line.
    let (share, packets) = tone_exchange(&alice, to, CodecName::Pcmu, 0, true);
    assert!(packets > 40 && share > 0.5, "{packets} packets, {share:.3}");
    let (code, v) = simulate(&s, "pri1", r#"{"action":"hangup","party":"0301234567"}"#);
    assert_eq!(code, 200, "{v}");
    let bye = alice.request("BYE");
    alice.ok(&bye, None);
    let reason = header(&bye, "Reason").unwrap_or_default();
    assert!(reason.contains("cause=16"), "{reason}");
    // The DID call is in the traffic detail of the account that received it.
    let accounts = s.json("t", "GET", "/api/v1/accounts", "").1;
    let id = accounts
        .as_array()
        .into_iter()
        .flatten()
        .find(|a| a["main_number"] == "200")
        .and_then(|a| a["id"].as_u64())
        .expect("alice's account");
    let path = format!("/api/v1/accounts/{id}/cdrs");
    let cdrs = poll(&s, &path, 10, "a record of the DID call", |v| {
        v[0]["caller"] == "0301234567"
    });
    assert_eq!(cdrs[0]["direction"], "inbound", "{cdrs}");
    assert_eq!(cdrs[0]["trunk"], "pri1", "{cdrs}");

    let (mut leg, _) = alice.call("05551000", &alice.sdp(&[PCMU]));
    let ok = final_response(&alice, &mut leg);
    assert_eq!(status(&ok), 200);
    let (code, v) = simulate(&s, "pri1", r#"{"action":"layer1","up":false}"#);
    assert_eq!(code, 200, "{v}");
    let bye = alice.request("BYE");
    alice.ok(&bye, None);
    let reason = header(&bye, "Reason").unwrap_or_default();
    assert!(
        reason.contains("cause=38") || reason.contains("cause=41") || reason.contains("cause=27"),
        "{reason}"
    );
    let lines = s.json("t", "GET", "/api/v1/drivers/pri1", "").1;
    assert_eq!(lines["up"], false, "{lines}");
}

/// A narrowband base (G.726-32 on the air) against an Opus phone, and a handset calling the
/// PSTN: DECT -> switch -> E1 -> the echo number, answered, with a call record of both lines.
#[test]
fn narrowband_handset_with_opus_and_dect_to_pstn() {
    let lines = format!(
        "{ISDN}[[dect]]\nname = \"base2\"\nsimulated = true\nwideband = false\n\
         handsets = [{{ ipui = \"00077A1B30\", number = \"310\" }}]\n"
    );
    let s = gateway("lines-dect-nb", &lines);
    let mut alice = Ua::new(sip(&s), "alice", "wonder");
    let (mut leg, _) = alice.call("310", &alice.sdp(&[OPUS]));
    let ok = final_response(&alice, &mut leg);
    assert_eq!(status(&ok), 200, "{}", String::from_utf8_lossy(&ok));
    let to = leg.media.expect("media");
    let (share, packets) = tone_exchange(&alice, to, CodecName::Opus, OPUS.0, true);
    assert!(
        packets > 40 && share > 0.5,
        "G.726 <-> Opus echo: {packets} packets, {share:.3}"
    );
    alice.in_dialog(&mut leg, "BYE", None);
    assert_eq!(status(&alice.response("BYE", 200)), 200);

    let (code, v) = simulate(
        &s,
        "base2",
        r#"{"action":"dial","from":"310","to":"05551000"}"#,
    );
    assert_eq!(code, 200, "{v}");
    // The PSTN number answers after a ring; the call is then up on both lines.
    poll(&s, "/api/v1/calls", 10, "DECT -> PSTN answered", |calls| {
        calls
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| c["caller"] == "310" && c["state"] == "answered")
    });
    let busy = s.json("t", "GET", "/api/v1/drivers/pri1", "").1;
    assert_eq!(busy["channels_busy"], 1, "{busy}");
    let (code, v) = simulate(&s, "base2", r#"{"action":"hangup","party":"310"}"#);
    assert_eq!(code, 200, "{v}");
    poll(&s, "/api/v1/cdrs?caller=310", 5, "a call record", |cdrs| {
        cdrs.as_array().into_iter().flatten().any(|c| {
            // DECT to PSTN: the record names the line it came in from.
            c["status"] == 200
                && c["callee_user"] == "pri1"
                && c["trunk"] == "base2"
                && c["direction"] == "inbound"
        })
    });
}

/// Listeners on all addresses (as in the embedded default): Via, Contact and SDP carry the
/// host's primary address, which a phone on the host reaches too; the call to a DECT handset
/// is answered, echoes, and the BYE sent to the Contact ends it.
#[test]
fn wildcard_listeners_advertise_a_reachable_address() {
    let mut s = Server::configure("lines-wildcard", "");
    let csv = s.dir.join("users.csv");
    std::fs::write(&csv, "user,password,number\nalice,wonder,200\n").expect("csv");
    let ports = rtp_range();
    std::fs::write(
        &s.config,
        format!(
            "[sip]\nlisten = [\"udp:0.0.0.0:{port}\"]\ndomain = \"mgw.test\"\n\
             [admin]\nlisten = \"127.0.0.1:{admin}\"\ntoken = \"t\"\n[store]\ndir = \"{store}\"\n\
             [licences]\ntotal = 10\n[accounts]\nimport_csv = \"{csv}\"\n\
             [media]\nrtp_ports = \"{ports}-{}\"\n{DECT}",
            ports + 99,
            port = s.port,
            admin = s.admin,
            store = s.dir.join("store").display(),
            csv = csv.display(),
        ),
    )
    .expect("config");
    s.spawn();
    let mut alice = Ua::new(sip(&s), "alice", "wonder");
    let (mut leg, _) = alice.call("300", &alice.sdp(&[PCMU]));
    let ok = final_response(&alice, &mut leg);
    assert_eq!(status(&ok), 200, "{}", String::from_utf8_lossy(&ok));
    let contact = header(&ok, "Contact").unwrap_or_default();
    assert!(!contact.contains("@0.0.0.0"), "{contact}");
    let to = leg.media.expect("media address in the 200");
    assert!(!to.ip().is_unspecified(), "{to}");
    let (share, packets) = tone_exchange(&alice, to, CodecName::Pcmu, PCMU.0, true);
    assert!(packets > 40 && share > 0.5, "{packets} packets, {share:.3}");
    alice.in_dialog(&mut leg, "BYE", None);
    assert_eq!(status(&alice.response("BYE", 200)), 200);
}

/// Issue 7: the D channel is cut during a call (layer 1 stays up). The call survives T309
/// (1 s here) waiting for the link; the link does not come back in time, so the call is
/// cleared and the phone gets a BYE with the line's cause. The line comes back afterwards.
#[test]
fn d_channel_cut_during_a_call_tears_it_down_on_the_sip_side() {
    let s = gateway("lines-dchannel", ISDN);
    let mut alice = Ua::new(sip(&s), "alice", "wonder");
    let (mut leg, _) = alice.call("05551000", &alice.sdp(&[PCMU]));
    let ok = final_response(&alice, &mut leg);
    assert_eq!(status(&ok), 200, "{}", String::from_utf8_lossy(&ok));
    let (code, v) = simulate(&s, "pri1", r#"{"action":"signalling","up":false}"#);
    assert_eq!(code, 200, "{v}");
    // Q.921 notices within T200 x N200 plus T203; then T309 runs: well under 40 s.
    let deadline = Instant::now() + Duration::from_secs(40);
    let bye = loop {
        if let Some(m) = alice.recv_within(Duration::from_secs(1)) {
            if m.starts_with(b"BYE ") {
                break m;
            }
        }
        assert!(
            Instant::now() < deadline,
            "no BYE after the D channel was cut"
        );
    };
    alice.ok(&bye, None);
    let reason = header(&bye, "Reason").unwrap_or_default();
    assert!(
        reason.contains("cause=41") || reason.contains("cause=38") || reason.contains("cause=27"),
        "{reason}"
    );
    let (code, v) = simulate(&s, "pri1", r#"{"action":"signalling","up":true}"#);
    assert_eq!(code, 200, "{v}");
    poll(&s, "/api/v1/drivers/pri1", 30, "the link back up", |line| {
        line["up"] == true
    });
}

/// Early media from a SIP phone to a PSTN caller: the phone answers the DID call with 183 and
/// SDP first; the line opens the B channel (ALERTING with progress indicator 8), so the waiting
/// caller hears the phone (and, echoing, says it back) before the answer.
#[test]
fn early_media_from_a_phone_reaches_the_pstn_caller() {
    let (s, alice, invite) = did_call("lines-early");
    let to = common::ua::media_of(&invite).expect("SDP offer");
    let answer = alice.sdp(&[PCMU]);
    let _early = alice.reply(&invite, 183, "Session Progress", Some(&answer));
    let (share, packets) = tone_exchange(&alice, to, CodecName::Pcmu, 0, true);
    assert!(
        packets > 40 && share > 0.5,
        "early media heard by the caller: {packets} packets, {share:.3}"
    );
    let log = s.json("t", "GET", "/api/v1/drivers/pri1", "").1["signalling"].clone();
    assert!(log.to_string().contains("pi=8"), "{log}");
    let _leg = alice.reply(&invite, 200, "OK", Some(&answer));
    let _ack = alice.request("ACK");
    let (code, v) = simulate(&s, "pri1", r#"{"action":"hangup","party":"0301234567"}"#);
    assert_eq!(code, 200, "{v}");
    let bye = alice.request("BYE");
    alice.ok(&bye, None);
}
