//! `mgw-loadtest rtp` through `mgw-loadtest floor` on loopback: both real binaries, the ng
//! set-up between them, media both ways, and the counters each reports. No timing assertions:
//! the machine running the tests may be busy.

use std::io::Read as _;
use std::net::UdpSocket;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_mgw-loadtest");

struct Floor {
    child: Child,
    ng: String,
}

impl Floor {
    fn start() -> Floor {
        // A free port for ng: bind, read it, release it.
        let ng = {
            let s = UdpSocket::bind("127.0.0.1:0").expect("bind");
            s.local_addr().expect("addr").to_string()
        };
        // Media ports below the ephemeral range, spread by pid so parallel runs rarely meet;
        // the floor skips any port it cannot bind anyway.
        // A hundred ports for four streams: some may be taken by whatever else runs.
        let first = 20_000 + (std::process::id() % 100) * 100;
        let child = Command::new(BIN)
            .args(["floor", "--ng", &ng, "--ports"])
            .arg(format!("{first}-{}", first + 99))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn floor");
        let f = Floor { child, ng };
        f.wait_for_pong();
        f
    }

    fn wait_for_pong(&self) {
        let s = UdpSocket::bind("127.0.0.1:0").expect("bind");
        s.set_read_timeout(Some(Duration::from_millis(100)))
            .expect("timeout");
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut buf = [0u8; 256];
        while Instant::now() < deadline {
            s.send_to(b"p1 d7:command4:pinge", &self.ng).expect("send");
            if let Ok(n) = s.recv(&mut buf) {
                assert_eq!(&buf[..n], b"p1 d6:result4:ponge");
                return;
            }
        }
        panic!("the floor relay never answered ping");
    }

    /// SIGTERM, then its JSON line.
    fn stop(mut self) -> Value {
        // SAFETY: kill only sends a signal to our own child, which is still running.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        let status = self.child.wait().expect("wait");
        let mut out = String::new();
        if let Some(mut o) = self.child.stdout.take() {
            o.read_to_string(&mut out).expect("read");
        }
        assert!(status.success(), "floor exited with {status}: {out}");
        serde_json::from_str(out.trim()).expect("floor JSON")
    }
}

fn rtp(floor: &Floor, extra: &[&str]) -> Output {
    Command::new(BIN)
        .args(["rtp", "--ng", &floor.ng, "--duration", "1"])
        .args(["--relay-pid", &floor.child.id().to_string()])
        .args(extra)
        .output()
        .expect("run rtp")
}

fn summary(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "rtp failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("rtp JSON")
}

fn num(v: &Value, key: &str) -> u64 {
    v[key]
        .as_u64()
        .unwrap_or_else(|| panic!("{key} missing in {v}"))
}

#[test]
fn media_flows_both_ways_through_the_floor_relay() {
    let floor = Floor::start();

    // Shared endpoint sockets (the default), one thread.
    let v = summary(&rtp(&floor, &["--streams", "4"]));
    assert_eq!(num(&v, "streams"), 4);
    assert_eq!(num(&v, "setup_failed"), 0);
    assert!(num(&v, "sent") > 0);
    assert!(num(&v, "received_a_to_b") > 0, "{v}");
    assert!(num(&v, "received_b_to_a") > 0, "{v}");
    assert!(num(&v, "latency_samples") > 0);
    assert!(v["latency_us_p50"].is_u64() && v["latency_us_p99"].is_u64());
    assert!(v["loss_pct"].is_f64());
    assert!(v["relay_cpu_s"].is_f64(), "{v}");
    assert_eq!(v["transcoding"], Value::Bool(false));

    // Every endpoint its own port, streams dealt to two threads.
    let v = summary(&rtp(
        &floor,
        &["--streams", "3", "--sockets", "0", "--threads", "2"],
    ));
    assert_eq!(num(&v, "streams"), 3);
    assert!(num(&v, "received_a_to_b") > 0 && num(&v, "received_b_to_a") > 0);

    // The floor relays codecs untouched: it offers B nothing to transcode to, and the
    // generator says so rather than sending.
    let out = rtp(&floor, &["--streams", "1", "--codec-b", "pcma"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("does not include PCMA"), "{err}");

    let f = floor.stop();
    assert!(num(&f, "forwarded") > 0, "{f}");
    // 4 + 3 calls with media, plus the refused transcoding one.
    assert_eq!(num(&f, "calls_created"), 8);
    assert_eq!(num(&f, "no_peer"), 0);
}
