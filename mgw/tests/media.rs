//! The media relay of the running gateway: rtpengine ng control over UDP, then RTP both ways
//! between two real UDP endpoints through the ports the rewritten SDPs name.

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use common::{free_port, Server};
use mgw_media::ng::bencode::Value;
use mgw_media::rtp::header::write_header;
use mgw_media::sdp::SessionDescription;

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

#[test]
fn ng_call_relays_rtp_both_ways() {
    let ng_port = free_port();
    let server = Server::configure(
        "media",
        &format!(
            "[media]\nng_listen = \"127.0.0.1:{ng_port}\"\nbind = \"127.0.0.1\"\nrtp_ports = \"41000-41999\"\n"
        ),
    )
    .start();
    let ng_addr = SocketAddr::from(([127, 0, 0, 1], ng_port));
    let ctl = UdpSocket::bind("127.0.0.1:0").expect("bind");
    ctl.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
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
