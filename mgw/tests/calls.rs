//! Calls through the running gateway between scripted SIP phones over real UDP: forking to
//! every phone of a number, caller ID, media anchored and transcoded (PCMU on one side, PCMA
//! on the other), CANCEL, busy, hang-up from either side, call list and call records.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::ua::{header, status, Ua};
use common::Server;
use mgw_media::codec::g711;
use mgw_media::rtp::header::{write_header, RtpPacket};
use serde_json::Value;

fn gateway(name: &str) -> Server {
    gateway_with(name, "", 60)
}

/// `alice_channels`: the voice channel limit of Alice's account (empty: none).
fn gateway_with(name: &str, alice_channels: &str, inactivity_s: u32) -> Server {
    let server = Server::configure(name, "");
    let csv = server.dir.join("users.csv");
    std::fs::write(
        &csv,
        format!(
            "user,password,number,channels\nalice,wonder,200,{alice_channels}\nbob,builder,201,\n\
             carol,sing,201,\ndave,dig,202,\n"
        ),
    )
    .expect("csv");
    let text = std::fs::read_to_string(&server.config).expect("config");
    // Each gateway of this process (the tests run in parallel) gets its own RTP ports.
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % 8;
    let ports = 44000 + ((std::process::id() % 4) * 8 + n) * 100;
    let text = format!(
        "{text}[licences]\ntotal = 10\n[accounts]\nimport_csv = \"{}\"\n\
         [media]\nbind = \"127.0.0.1\"\nrtp_ports = \"{ports}-{}\"\ninactivity_s = {inactivity_s}\n",
        csv.display(),
        ports + 99
    );
    std::fs::write(&server.config, text).expect("config");
    server.start()
}

fn get(s: &Server, path: &str) -> Value {
    let (status, v) = s.json("t", "GET", path, "");
    assert_eq!(status, 200, "{v}");
    v
}

/// One 20 ms RTP packet of a constant-ish signal in `pt` (0 PCMU, 8 PCMA).
fn rtp(pt: u8, seq: u16) -> Vec<u8> {
    let pcm: Vec<i16> = (0..160).map(|i| ((i * 37) % 2000) as i16 - 1000).collect();
    let mut p = vec![0u8; 172];
    write_header(&mut p, false, pt, seq, u32::from(seq) * 160, 0xABCD);
    if pt == 0 {
        g711::encode_ulaw(&pcm, &mut p[12..]);
    } else {
        g711::encode_alaw(&pcm, &mut p[12..]);
    }
    p
}

fn recv_rtp(ua: &Ua) -> (u8, Vec<u8>) {
    let mut buf = [0u8; 2048];
    let n = ua.rtp.recv(&mut buf).expect("RTP within 5 s");
    let mut p = buf[..n].to_vec();
    let pt = RtpPacket::parse(&mut p).expect("RTP").payload_type();
    (pt, p)
}

#[test]
fn a_call_forks_rings_answers_transcodes_and_hangs_up() {
    let s = gateway("calls-basic");
    let mut alice = Ua::new(s.sip(), "alice", "wonder");
    let mut bob = Ua::new(s.sip(), "bob", "builder");
    let mut carol = Ua::new(s.sip(), "carol", "sing");
    for u in [&mut alice, &mut bob, &mut carol] {
        u.register();
    }

    let offer = alice.sdp(&[(0, "PCMU/8000")]);
    let (mut a_leg, _) = alice.call("201", &offer);
    // Both phones of 201 ring: one INVITE each, from mgw, with its own Call-ID.
    let inv_b = bob.request("INVITE");
    let inv_c = carol.request("INVITE");
    for inv in [&inv_b, &inv_c] {
        let from = header(inv, "From").expect("From");
        assert!(
            from.contains("sip:200@"),
            "caller ID is the main number: {from}"
        );
        assert!(header(inv, "P-Asserted-Identity").is_some_and(|p| p.contains("200@")));
        assert_ne!(
            header(inv, "Call-ID"),
            Some(a_leg.call_id.clone()),
            "topology hidden"
        );
        let sdp = String::from_utf8_lossy(inv);
        assert!(
            sdp.contains("PCMU/8000") && sdp.contains("PCMA/8000"),
            "{sdp}"
        );
    }
    assert_eq!(header(&inv_b, "Call-ID"), header(&inv_c, "Call-ID"));

    bob.reply(&inv_b, 180, "Ringing", None);
    let ringing = alice.response("INVITE", 180);
    assert_eq!(status(&ringing), 180);

    // Bob answers with PCMA only; Carol's phone is cancelled.
    let answer = bob.sdp(&[(8, "PCMA/8000")]);
    let mut b_leg = bob.reply(&inv_b, 200, "OK", Some(&answer));
    let cancel = carol.request("CANCEL");
    carol.ok(&cancel, None);
    carol.reply(&inv_c, 487, "Request Terminated", None);
    let ok = alice.response("INVITE", 200);
    assert_eq!(status(&ok), 200, "{}", String::from_utf8_lossy(&ok));
    assert!(
        String::from_utf8_lossy(&ok).contains("PCMU/8000"),
        "Alice keeps PCMU"
    );
    alice.confirm(&mut a_leg, &ok);
    let _ack = bob.request("ACK");

    // Media: PCMU from Alice arrives at Bob as PCMA, and back.
    let to_mgw_a = a_leg.media.expect("SDP in the 200");
    let inv_sdp_b = common::ua::media_of(&inv_b).expect("SDP in the INVITE");
    for seq in 0..5u16 {
        alice.rtp.send_to(&rtp(0, seq), to_mgw_a).expect("send");
        let (pt, _) = recv_rtp(&bob);
        assert_eq!(pt, 8, "transcoded to PCMA for Bob");
        bob.rtp.send_to(&rtp(8, seq), inv_sdp_b).expect("send");
        let (pt, _) = recv_rtp(&alice);
        assert_eq!(pt, 0, "transcoded to PCMU for Alice");
    }

    let calls = get(&s, "/api/v1/calls");
    assert_eq!(calls.as_array().map(Vec::len), Some(1), "{calls}");
    assert_eq!(calls[0]["state"], "answered");
    assert_eq!(calls[0]["caller"], "200");

    // Alice hangs up; Bob gets the BYE with a Q.850 reason.
    alice.in_dialog(&mut a_leg, "BYE", None);
    let bye_ok = alice.response("BYE", 200);
    assert_eq!(status(&bye_ok), 200);
    let bye = bob.request("BYE");
    assert!(header(&bye, "Reason").is_some_and(|r| r.contains("cause=16")));
    bob.ok(&bye, None);
    b_leg.cseq += 0;

    let mut records = Value::Null;
    for _ in 0..50 {
        records = get(&s, "/api/v1/cdrs");
        if records.as_array().is_some_and(|r| !r.is_empty()) {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let r = &records[0];
    assert_eq!(r["status"], 200, "{records}");
    assert_eq!(r["caller"], "200");
    assert_eq!(r["callee"], "201");
    assert_eq!(r["callee_user"], "bob");
    assert_eq!(r["codec_caller"], "PCMU");
    assert_eq!(r["codec_callee"], "PCMA");
    assert!(r["packets_from_caller"].as_i64().unwrap_or(0) >= 5, "{r}");
    assert!(r["answered_at"].is_string());
    assert!(get(&s, "/api/v1/calls")
        .as_array()
        .is_some_and(Vec::is_empty));
}

#[test]
fn busy_unknown_unregistered_and_cancel() {
    let s = gateway("calls-fail");
    let mut alice = Ua::new(s.sip(), "alice", "wonder");
    let mut bob = Ua::new(s.sip(), "bob", "builder");
    alice.register();
    bob.register();
    let offer = alice.sdp(&[(0, "PCMU/8000")]);

    let (mut leg, _) = alice.call("299", &offer);
    let r = alice.response("INVITE", 300);
    assert_eq!(status(&r), 404, "{}", String::from_utf8_lossy(&r));
    alice.confirm(&mut leg, &r);

    let (mut leg, _) = alice.call("202", &offer);
    let r = alice.response("INVITE", 300);
    assert_eq!(status(&r), 480, "nobody registered on 202");
    alice.confirm(&mut leg, &r);

    // Busy.
    let (mut leg, _) = alice.call("201", &offer);
    let inv = bob.request("INVITE");
    bob.reply(&inv, 486, "Busy Here", None);
    let r = alice.response("INVITE", 300);
    assert_eq!(status(&r), 486);
    assert!(header(&r, "Reason").is_some_and(|v| v.contains("cause=17")));
    alice.confirm(&mut leg, &r);

    // CANCEL while ringing: 200 for the CANCEL, 487 for the INVITE, CANCEL to Bob.
    let (mut leg, invite) = alice.call("201", &offer);
    let inv = bob.request("INVITE");
    bob.reply(&inv, 180, "Ringing", None);
    let _ = alice.response("INVITE", 180);
    let via = invite
        .lines()
        .find(|l| l.starts_with("Via:"))
        .unwrap_or("")
        .to_string();
    alice.send(&format!(
        "CANCEL {} SIP/2.0\r\n{via}\r\nMax-Forwards: 70\r\nFrom: {}\r\nTo: {}\r\nCall-ID: {}\r\n\
         CSeq: {} CANCEL\r\nContent-Length: 0\r\n\r\n",
        leg.target, leg.local, leg.remote, leg.call_id, leg.cseq
    ));
    let c = alice.response("CANCEL", 200);
    assert_eq!(status(&c), 200);
    let r = alice.response("INVITE", 300);
    assert_eq!(status(&r), 487);
    alice.confirm(&mut leg, &r);
    let cancel = bob.request("CANCEL");
    bob.ok(&cancel, None);
    bob.reply(&inv, 487, "Request Terminated", None);
    let _ = SocketAddr::from(([127, 0, 0, 1], 0));
}

/// Places an answered call from `a` to `b` (number `dialled`, `b` alone registered on it).
fn answered_call(a: &mut Ua, b: &Ua, dialled: &str) -> (common::ua::Leg, common::ua::Leg) {
    let offer = a.sdp(&[(0, "PCMU/8000")]);
    let (mut a_leg, _) = a.call(dialled, &offer);
    let inv = b.request("INVITE");
    let answer = b.sdp(&[(0, "PCMU/8000")]);
    let b_leg = b.reply(&inv, 200, "OK", Some(&answer));
    let ok = a.response("INVITE", 200);
    assert_eq!(status(&ok), 200, "{}", String::from_utf8_lossy(&ok));
    a.confirm(&mut a_leg, &ok);
    let _ = b.request("ACK");
    (a_leg, b_leg)
}

/// Hold by re-INVITE passes through with a new anchored offer; then silence ends the call
/// with a BYE to both sides.
#[test]
fn reinvite_hold_then_media_timeout() {
    let s = gateway_with("calls-hold", "", 2);
    let mut alice = Ua::new(s.sip(), "alice", "wonder");
    let mut dave = Ua::new(s.sip(), "dave", "dig");
    alice.register();
    dave.register();
    let (mut a_leg, _) = answered_call(&mut alice, &dave, "202");
    let hold = alice
        .sdp(&[(0, "PCMU/8000")])
        .replace("a=sendrecv", "a=sendonly");
    alice.in_dialog(&mut a_leg, "INVITE", Some(&hold));
    let reinv = dave.request("INVITE");
    assert!(
        String::from_utf8_lossy(&reinv).contains("a=sendonly"),
        "hold passed on"
    );
    let held = dave
        .sdp(&[(0, "PCMU/8000")])
        .replace("a=sendrecv", "a=recvonly");
    dave.ok(&reinv, Some(&held));
    let ok = alice.response("INVITE", 200);
    assert!(
        String::from_utf8_lossy(&ok).contains("a=recvonly"),
        "{}",
        String::from_utf8_lossy(&ok)
    );
    alice.confirm(&mut a_leg, &ok);
    // No RTP at all: after media.inactivity_s (2 s) both phones get a BYE.
    let bye_a = alice.request("BYE");
    alice.ok(&bye_a, None);
    let bye_d = dave.request("BYE");
    dave.ok(&bye_d, None);
    assert!(header(&bye_a, "Reason").is_some_and(|r| r.contains("Q.850")));
}

/// Seed 003: an account's calls, inbound and outbound together, never exceed its voice
/// channels.
#[test]
fn voice_channel_limit_counts_both_directions() {
    let s = gateway_with("calls-channels", "1", 60);
    let mut alice = Ua::new(s.sip(), "alice", "wonder");
    let mut dave = Ua::new(s.sip(), "dave", "dig");
    let mut bob = Ua::new(s.sip(), "bob", "builder");
    alice.register();
    dave.register();
    bob.register();
    let (mut a_leg, _) = answered_call(&mut alice, &dave, "202");
    // A second outgoing call from Alice's account: no channel.
    let offer = alice.sdp(&[(0, "PCMU/8000")]);
    let (mut leg, _) = alice.call("201", &offer);
    let r = alice.response("INVITE", 300);
    assert_eq!(status(&r), 486, "{}", String::from_utf8_lossy(&r));
    assert!(
        header(&r, "Reason").is_some_and(|v| v.contains("cause=17")),
        "{}",
        String::from_utf8_lossy(&r)
    );
    alice.confirm(&mut leg, &r);
    // Incoming to Alice's number while she talks: no channel either.
    let offer = bob.sdp(&[(0, "PCMU/8000")]);
    let (mut leg, _) = bob.call("200", &offer);
    let r = bob.response("INVITE", 300);
    assert_eq!(status(&r), 486, "{}", String::from_utf8_lossy(&r));
    assert!(String::from_utf8_lossy(&r).contains("voice channel"));
    bob.confirm(&mut leg, &r);
    // Hang up: the channel is free again.
    alice.in_dialog(&mut a_leg, "BYE", None);
    let _ = alice.response("BYE", 200);
    let bye = dave.request("BYE");
    dave.ok(&bye, None);
    let (mut leg, _) = bob.call("200", &offer);
    let inv = alice.request("INVITE");
    alice.reply(&inv, 486, "Busy Here", None);
    let r = bob.response("INVITE", 300);
    assert_eq!(
        status(&r),
        486,
        "rung this time, and Alice's phone said busy"
    );
    bob.confirm(&mut leg, &r);
}

/// Seeds 000/002 and `[emergency] route`: with the only licence held, another subscriber's
/// ordinary call is refused but an emergency number goes through to the configured route
/// (anchored, with the caller's main number as caller ID), without claiming a licence.
#[test]
fn emergency_call_without_a_licence_reaches_the_route() {
    let server = Server::configure("calls-emergency", "");
    let psap = Ua::new(server.sip(), "psap", "");
    let csv = server.dir.join("users.csv");
    std::fs::write(
        &csv,
        "user,password,number\nalice,wonder,200\nbob,builder,201\n",
    )
    .expect("csv");
    let text = std::fs::read_to_string(&server.config).expect("config");
    let ports = 43000 + (std::process::id() % 8) * 100;
    let text = format!(
        "{text}[licences]\ntotal = 1\n[accounts]\nimport_csv = \"{}\"\n\
         [emergency]\nnumbers = [\"110\", \"112\"]\nroute = \"sip:112@127.0.0.1:{}\"\n\
         [media]\nbind = \"127.0.0.1\"\nrtp_ports = \"{ports}-{}\"\n",
        csv.display(),
        psap.port(),
        ports + 99
    );
    std::fs::write(&server.config, text).expect("config");
    let s = server.start();
    let mut alice = Ua::new(s.sip(), "alice", "wonder");
    let mut bob = Ua::new(s.sip(), "bob", "builder");
    alice.register();
    bob.register();

    // Alice's call takes the only licence.
    let (mut a_leg, _) = answered_call(&mut alice, &bob, "201");
    alice.in_dialog(&mut a_leg, "BYE", None);
    assert_eq!(status(&alice.response("BYE", 200)), 200);
    let bye = bob.request("BYE");
    bob.ok(&bye, None);
    assert_eq!(get(&s, "/api/v1/licences")["in_use"], 1);

    // Bob has none: an ordinary call is refused and says why.
    let offer = bob.sdp(&[(0, "PCMU/8000")]);
    let (mut leg, _) = bob.call("200", &offer);
    let r = bob.response("INVITE", 300);
    assert_eq!(status(&r), 403, "{}", String::from_utf8_lossy(&r));
    assert!(
        String::from_utf8_lossy(&r).contains("no licence free"),
        "{}",
        String::from_utf8_lossy(&r)
    );
    assert!(header(&r, "Reason").is_some_and(|v| v.contains("cause=21")));
    bob.confirm(&mut leg, &r);

    // 112 goes to the route, anchored on mgw's media.
    let (mut leg, _) = bob.call("112", &offer);
    let inv = psap.request("INVITE");
    let text = String::from_utf8_lossy(&inv).to_string();
    assert!(
        text.starts_with(&format!("INVITE sip:112@127.0.0.1:{} ", psap.port())),
        "{text}"
    );
    assert!(
        header(&inv, "P-Asserted-Identity").is_some_and(|p| p.contains("201")),
        "{text}"
    );
    let anchored = common::ua::media_of(&inv).expect("SDP in the INVITE");
    assert!(
        (ports..ports + 100).contains(&u32::from(anchored.port())),
        "{text}"
    );
    let answer = psap.sdp(&[(0, "PCMU/8000")]);
    let mut p_leg = psap.reply(&inv, 200, "OK", Some(&answer));
    let ok = bob.response("INVITE", 200);
    assert_eq!(status(&ok), 200, "{}", String::from_utf8_lossy(&ok));
    bob.confirm(&mut leg, &ok);
    let _ = psap.request("ACK");
    let calls = get(&s, "/api/v1/calls");
    assert_eq!(calls[0]["callee"], "112", "{calls}");
    let l = get(&s, "/api/v1/licences");
    assert_eq!(l["in_use"], 1, "{l}");
    assert_eq!(l["holders"][0]["user"], "alice", "{l}");

    // The emergency side hangs up.
    psap.in_dialog(&mut p_leg, "BYE", None);
    assert_eq!(status(&psap.response("BYE", 200)), 200);
    let bye = bob.request("BYE");
    bob.ok(&bye, None);
}

/// Seed 003: the main number is every outgoing call's caller ID unless a caller-ID rule of
/// the account presents another of its numbers; a rule added through the API applies to the
/// next call.
#[test]
fn caller_id_rule_presents_another_number_of_the_account() {
    let s = gateway("calls-callerid");
    let accounts = get(&s, "/api/v1/accounts");
    let id = accounts
        .as_array()
        .into_iter()
        .flatten()
        .find(|a| a["main_number"] == "200")
        .and_then(|a| a["id"].as_u64())
        .unwrap_or_else(|| panic!("alice's account: {accounts}"));
    let (code, v) = s.json(
        "t",
        "POST",
        &format!("/api/v1/accounts/{id}/numbers"),
        r#"{"number":"210"}"#,
    );
    assert_eq!(code, 200, "{v}");
    let (code, v) = s.json(
        "t",
        "POST",
        &format!("/api/v1/accounts/{id}/caller-id-rules"),
        r#"{"prefix":"201","present":"210"}"#,
    );
    assert_eq!(code, 200, "{v}");

    // The same phones before and after the restart: their bindings outlive it.
    let mut alice = Ua::new(s.sip(), "alice", "wonder");
    let mut bob = Ua::new(s.sip(), "bob", "builder");
    let mut dave = Ua::new(s.sip(), "dave", "dig");
    bob.register();
    dave.register();
    let mut check = || {
        for (callee, dialled, shown) in [(&bob, "201", "210"), (&dave, "202", "200")] {
            let offer = alice.sdp(&[(0, "PCMU/8000")]);
            let (mut leg, _) = alice.call(dialled, &offer);
            let inv = callee.request("INVITE");
            let text = String::from_utf8_lossy(&inv).to_string();
            let pai = header(&inv, "P-Asserted-Identity").unwrap_or_default();
            let from = header(&inv, "From").unwrap_or_default();
            assert!(pai.contains(&format!("sip:{shown}@")), "{dialled}: {text}");
            assert!(from.contains(&format!("sip:{shown}@")), "{dialled}: {text}");
            callee.reply(&inv, 486, "Busy Here", None);
            let r = alice.response("INVITE", 300);
            assert_eq!(status(&r), 486);
            alice.confirm(&mut leg, &r);
        }
    };
    check();
    // The rules are read back from the store at start.
    let mut s = s;
    s.stop();
    s.spawn();
    check();
}

/// Phones over IPv6 (mgw listens on both families): mgw's Via and Contact towards them are
/// its IPv6 listener, so the callee's and the caller's in-dialog requests reach it; media
/// stays on IPv4.
#[test]
fn phones_over_ipv6_get_mgws_ipv6_contact() {
    let s = gateway("calls-ipv6");
    let v6 = SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, s.port));
    let mut alice = Ua::new(v6, "alice", "wonder");
    let mut bob = Ua::new(v6, "bob", "builder");
    alice.register();
    bob.register();
    let offer = alice.sdp(&[(0, "PCMU/8000")]);
    let (mut a_leg, _) = alice.call("201", &offer);
    let inv = bob.request("INVITE");
    let text = String::from_utf8_lossy(&inv).to_string();
    let via = header(&inv, "Via").unwrap_or_default();
    let contact = header(&inv, "Contact").unwrap_or_default();
    assert!(via.contains("[::1]:"), "{text}");
    assert!(contact.contains("@[::1]:"), "{text}");
    let answer = bob.sdp(&[(0, "PCMU/8000")]);
    let mut b_leg = bob.reply(&inv, 200, "OK", Some(&answer));
    let ok = alice.response("INVITE", 200);
    assert_eq!(status(&ok), 200, "{}", String::from_utf8_lossy(&ok));
    assert!(
        header(&ok, "Contact").is_some_and(|c| c.contains("@[::1]:")),
        "{}",
        String::from_utf8_lossy(&ok)
    );
    alice.confirm(&mut a_leg, &ok);
    let _ = bob.request("ACK");
    // Bob hangs up: his BYE goes to mgw's IPv6 Contact, Alice gets hers at [::1].
    bob.in_dialog(&mut b_leg, "BYE", None);
    assert_eq!(status(&bob.response("BYE", 200)), 200);
    let bye = alice.request("BYE");
    alice.ok(&bye, None);
}
