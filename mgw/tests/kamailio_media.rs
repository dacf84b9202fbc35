//! Kamailio's rtpengine module driving mgw's relay over the ng protocol: a real Kamailio proxy
//! (loadtest/kamailio/proxy-rtpengine.cfg) between a SIPp caller that plays G.711 RTP and a
//! SIPp callee that echoes it. The calls must succeed and the RTP must flow through mgw, as it
//! does through rtpengine. Skips (passes with a note) when kamailio or sipp is not installed.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::{free_port, Server};

fn have(cmd: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {cmd}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// A free port in 5200-9998: the anchor proxy answers its sipsak start-up probe there (on
/// ports from 15000 up the probe's OPTIONS was not taken as addressed to the proxy itself).
fn low_port() -> u16 {
    use std::sync::atomic::{AtomicU16, Ordering};
    static NEXT: AtomicU16 = AtomicU16::new(5200);
    (NEXT.fetch_add(7, Ordering::Relaxed)..9999)
        .find(|p| {
            std::net::UdpSocket::bind(("127.0.0.1", *p)).is_ok()
                && std::net::TcpListener::bind(("127.0.0.1", *p)).is_ok()
        })
        .expect("a free port in 5200-9998")
}

fn metric(server: &Server, name: &str) -> u64 {
    server
        .get("/metrics")
        .1
        .lines()
        .find_map(|l| {
            l.strip_prefix(&format!("{name} "))
                .and_then(|v| v.trim().parse().ok())
        })
        .unwrap_or(0)
}

#[test]
fn kamailio_with_mgw_carries_sipp_calls_with_rtp() {
    if !(have("kamailio") && have("sipp") && have("sipsak")) {
        eprintln!("skipped: kamailio, sipp or sipsak not installed (scripts/install-peers.sh)");
        return;
    }
    let loadtest = concat!(env!("CARGO_MANIFEST_DIR"), "/../loadtest");
    let ng = low_port();
    let server = Server::configure(
        "kamailio-media",
        &format!("[media]\nng_listen = \"127.0.0.1:{ng}\"\nbind = \"127.0.0.1\"\nrtp_ports = \"42000-42999\"\n"),
    )
    .start();
    let proxy_port = low_port();
    let out = Command::new(format!("{loadtest}/kamailio/start-proxy.sh"))
        .args([proxy_port.to_string(), ng.to_string()])
        .env("KAMAILIO_LOG", server.dir.join("kamailio.log"))
        .output()
        .expect("start kamailio");
    assert!(
        out.status.success(),
        "kamailio: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let kamailio: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(str::to_string)
        .collect();
    let uas_port = free_port();
    let media_port = free_port();
    let mut uas = Command::new("sipp")
        .args([
            "-sf",
            &format!("{loadtest}/sipp/uas_call.xml"),
            "-i",
            "127.0.0.1",
            "-mi",
            "127.0.0.1",
        ])
        .args([
            "-p",
            &uas_port.to_string(),
            "-mp",
            &media_port.to_string(),
            "-rtp_echo",
            "-nostdin",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("sipp uas");
    std::thread::sleep(Duration::from_millis(500));
    let uac = Command::new("sipp")
        .arg(format!("127.0.0.1:{uas_port}"))
        .args(["-rsa", &format!("127.0.0.1:{proxy_port}")])
        .args([
            "-sf",
            &format!("{loadtest}/sipp/uac_call_rtp.xml"),
            "-i",
            "127.0.0.1",
            "-mi",
            "127.0.0.1",
        ])
        .args([
            "-m", "2", "-r", "2", "-d", "3000", "-nostdin", "-timeout", "30s",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("sipp uac");
    let relayed = metric(&server, "mgw_media_rx_packets_total");
    let sessions_left = metric(&server, "mgw_media_sessions");
    let _ = uas.kill();
    let _ = uas.wait();
    for pid in &kamailio {
        let _ = Command::new("kill").arg(pid).status();
    }
    assert!(uac.success(), "SIPp calls through Kamailio + mgw failed");
    // Two calls of about 130 packets each way (SIPp's g711a.pcap, echoed back).
    assert!(relayed >= 400, "only {relayed} packets went through mgw");
    assert_eq!(
        sessions_left, 0,
        "Kamailio's rtpengine_delete freed every session"
    );
}
