//! `mgw-loadtest call` end to end on loopback: the real binary places calls through a tiny
//! stateless proxy stub that challenges every INVITE (digests checked by mgw-core's server
//! side), record-routes, and relays the authenticated ones to the binary's own callee socket.

use std::collections::HashMap;
use std::io::Write as _;
use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use mgw_core::auth::{digest, Algorithm, Credentials};
use mgw_core::sip::{HeaderName, Message, Method, ReplyContext, ResponseBuilder};
use serde_json::Value;

const REALM: &str = "stub.test";

#[derive(Clone, Copy, PartialEq, Eq)]
enum Behaviour {
    /// Relay authenticated calls to the callee.
    Relay,
    /// Answer every authenticated INVITE 486 itself.
    Busy,
}

#[derive(Default)]
struct Seen {
    verified: u64,
    refused: u64,
    /// Requests relayed to the callee, per method.
    relayed: HashMap<String, u64>,
    /// Caller requests that carried our Route header (ACK and BYE after the 2xx).
    routed: u64,
}

struct Stub {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    seen: Arc<Mutex<Seen>>,
    thread: Option<JoinHandle<()>>,
}

impl Stub {
    fn start(b: Behaviour, callee: SocketAddr) -> Stub {
        let sock = UdpSocket::bind("127.0.0.1:0").expect("bind");
        sock.set_read_timeout(Some(Duration::from_millis(20)))
            .expect("timeout");
        let addr = sock.local_addr().expect("addr");
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(Mutex::new(Seen::default()));
        let (stop2, seen2) = (stop.clone(), seen.clone());
        let thread = std::thread::spawn(move || serve(&sock, b, callee, &stop2, &seen2));
        Stub {
            addr,
            stop,
            seen,
            thread: Some(thread),
        }
    }

    fn finish(mut self) -> Seen {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.join().expect("stub thread");
        }
        std::mem::take(&mut *self.seen.lock().expect("lock"))
    }
}

/// The datagram with a Via line of ours inserted after the start line (requests towards the
/// callee), or with its first Via line removed (responses back to the caller).
fn with_via(bytes: &[u8], via: &str) -> Vec<u8> {
    let end = bytes
        .windows(2)
        .position(|w| w == b"\r\n")
        .expect("start line")
        + 2;
    let mut out = bytes[..end].to_vec();
    out.extend_from_slice(format!("Via: {via}\r\n").as_bytes());
    out.extend_from_slice(&bytes[end..]);
    out
}

fn without_top_via(bytes: &[u8]) -> Vec<u8> {
    let text = std::str::from_utf8(bytes).expect("utf-8");
    let start = text.find("\r\nVia: ").expect("via") + 2;
    let end = start + text[start..].find("\r\n").expect("line end") + 2;
    [&bytes[..start], &bytes[end..]].concat()
}

fn serve(
    sock: &UdpSocket,
    b: Behaviour,
    callee: SocketAddr,
    stop: &AtomicBool,
    seen: &Mutex<Seen>,
) {
    let me = sock.local_addr().expect("addr");
    let mut buf = vec![0u8; 65536];
    let mut out = Vec::new();
    let mut callers: HashMap<String, SocketAddr> = HashMap::new();
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let Ok((len, from)) = sock.recv_from(&mut buf) else {
            continue;
        };
        n += 1;
        let bytes = &buf[..len];
        let msg = Message::parse(bytes).expect("parseable SIP");
        let call_id = msg.call_id().expect("Call-ID").to_string();
        let mut s = seen.lock().expect("lock");
        if from == callee {
            // The callee's answers go back to the caller, our Via taken off.
            assert!(!msg.is_request(), "the callee sends only responses");
            let caller = callers.get(&call_id).expect("a caller for the Call-ID");
            let _ = sock.send_to(&without_top_via(bytes), caller);
            continue;
        }
        let ctx = ReplyContext {
            source: Some(from),
            to_tag: Some("stub"),
        };
        let method = msg.method().expect("callers send requests");
        let initial = msg.to().is_some_and(|t| t.tag().is_none());
        if method == Method::Ack && msg.to().and_then(|t| t.tag()) == Some("stub") {
            continue; // the ACK of our own 407 or 486
        }
        if method == Method::Invite && initial {
            let Some(value) = msg.header(HeaderName::ProxyAuthorization) else {
                let challenge = format!(
                    "Digest realm=\"{REALM}\", nonce=\"n{n}\", algorithm=MD5, qop=\"auth\""
                );
                ResponseBuilder::new(&mut out, &msg, 407, "Proxy Authentication Required", ctx)
                    .header("Proxy-Authenticate", &challenge)
                    .finish(None, b"");
                let _ = sock.send_to(&out, from);
                continue;
            };
            let creds = Credentials::parse(value).expect("credentials parse");
            let ha1 = Algorithm::Md5.ha1(creds.username, REALM, "secret");
            let uri = msg.request_uri().map(|u| u.raw);
            if creds.realm != REALM
                || Some(creds.uri) != uri
                || !digest::verify(&creds, Algorithm::Md5, &ha1, "INVITE")
            {
                s.refused += 1;
                ResponseBuilder::new(&mut out, &msg, 403, "Forbidden", ctx).finish(None, b"");
                let _ = sock.send_to(&out, from);
                continue;
            }
            s.verified += 1;
            if b == Behaviour::Busy {
                ResponseBuilder::new(&mut out, &msg, 486, "Busy Here", ctx).finish(None, b"");
                let _ = sock.send_to(&out, from);
                continue;
            }
            callers.insert(call_id, from);
            // Record-Route, so the caller's ACK and BYE must come back with a Route to us.
            let rr = format!("Record-Route: <sip:{me};lr>\r\n");
            let relayed = with_via(bytes, &format!("SIP/2.0/UDP {me};branch=z9hG4bK-s{n}"));
            let at = relayed
                .windows(2)
                .position(|w| w == b"\r\n")
                .expect("start line")
                + 2;
            let relayed = [&relayed[..at], rr.as_bytes(), &relayed[at..]].concat();
            *s.relayed.entry("INVITE".into()).or_default() += 1;
            let _ = sock.send_to(&relayed, callee);
            continue;
        }
        if msg
            .all(HeaderName::Route)
            .any(|r| r.contains(&me.to_string()))
        {
            s.routed += 1;
        }
        *s.relayed.entry(method.as_str().to_string()).or_default() += 1;
        let branch = format!("SIP/2.0/UDP {me};branch=z9hG4bK-s{n}");
        let _ = sock.send_to(&with_via(bytes, &branch), callee);
    }
}

fn users_file(name: &str, n: usize, password: &str) -> PathBuf {
    let path = std::env::temp_dir().join(format!(
        "mgw-loadtest-call-{}-{name}.csv",
        std::process::id()
    ));
    let mut f = std::fs::File::create(&path).expect("users file");
    writeln!(f, "user,password,number").expect("write");
    for i in 0..n {
        writeln!(f, "c{i},{password},{}", 2000 + i).expect("write");
    }
    path
}

/// A port free right now for the callee's socket.
fn free_port() -> SocketAddr {
    UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .expect("free port")
}

fn run(stub: SocketAddr, callee: SocketAddr, users: &PathBuf, extra: &[&str]) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_mgw-loadtest"))
        .args(["call", "--target", &stub.to_string(), "--users"])
        .arg(users)
        .args(["--domain", REALM, "--uas-port", &callee.port().to_string()])
        .args(extra)
        .output()
        .expect("runs");
    assert!(
        out.status.success(),
        "status {:?}, stderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).expect("utf-8");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "one JSON line: {stdout}");
    serde_json::from_str(lines[0]).expect("JSON")
}

#[test]
fn whole_calls_through_a_challenging_proxy() {
    let callee = free_port();
    let stub = Stub::start(Behaviour::Relay, callee);
    let users = users_file("ok", 3, "secret");
    let j = run(
        stub.addr,
        callee,
        &users,
        &[
            "--rate",
            "200",
            "--count",
            "40",
            "--hold-ms",
            "50",
            "--sockets",
            "2",
        ],
    );
    let seen = stub.finish();
    assert_eq!(
        (j["ok"].as_u64(), j["failed"].as_u64()),
        (Some(40), Some(0)),
        "{j}"
    );
    assert_eq!(j["answered"], 40);
    assert_eq!(j["offered"], 40);
    assert_eq!(j["retransmissions"], 0, "{j}");
    assert_eq!(j["failed_by_status"], serde_json::json!({}));
    for k in [
        "setup_p50_ms",
        "setup_p99_ms",
        "calls_per_s",
        "cpu_us_per_call",
    ] {
        assert!(j[k].is_number(), "{k} in {j}");
    }
    assert_eq!(j["uas"]["invites"], 40, "{j}");
    assert_eq!(j["uas"]["acks"], 40, "{j}");
    assert_eq!(j["uas"]["byes"], 40, "{j}");
    assert_eq!(j["uas_live_at_end"], 0);
    assert_eq!(seen.verified, 40);
    assert_eq!(seen.refused, 0);
    assert_eq!(seen.relayed.get("ACK"), Some(&40));
    assert_eq!(seen.relayed.get("BYE"), Some(&40));
    assert_eq!(seen.routed, 80, "ACK and BYE follow the Record-Route");
}

#[test]
fn busy_and_wrong_password_fail_by_status() {
    let callee = free_port();
    let stub = Stub::start(Behaviour::Busy, callee);
    let users = users_file("busy", 2, "secret");
    let j = run(
        stub.addr,
        callee,
        &users,
        &["--rate", "200", "--count", "10"],
    );
    let users = users_file("wrong", 2, "wrong");
    let k = run(
        stub.addr,
        callee,
        &users,
        &["--rate", "200", "--count", "10"],
    );
    let seen = stub.finish();
    assert_eq!(
        j["failed_by_status"],
        serde_json::json!({"INVITE 486": 10}),
        "{j}"
    );
    assert_eq!(
        k["failed_by_status"],
        serde_json::json!({"INVITE 403": 10}),
        "{k}"
    );
    assert_eq!((j["ok"].as_u64(), k["ok"].as_u64()), (Some(0), Some(0)));
    assert_eq!((seen.verified, seen.refused), (10, 10));
}

#[test]
fn silent_server_times_the_invites_out() {
    let silent = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let callee = free_port();
    let users = users_file("silent", 1, "secret");
    let j = run(
        silent.local_addr().expect("addr"),
        callee,
        &users,
        &[
            "--rate",
            "100",
            "--count",
            "5",
            "--t1-ms",
            "20",
            "--timeout",
            "0.25",
        ],
    );
    assert_eq!((j["ok"].as_u64(), j["failed"].as_u64()), (Some(0), Some(5)));
    assert_eq!(
        j["failed_by_reason"],
        serde_json::json!({"invite_timeout": 5})
    );
    // Timer A at 20, 60 and 140 ms before the 250 ms deadline.
    assert_eq!(j["retransmissions"], 15, "{j}");
}
