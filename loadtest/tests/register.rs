//! `mgw-loadtest register` end to end against a tiny registrar stub on loopback: real sockets,
//! the real binary, and digests checked by mgw-core's server side.

use std::collections::{HashMap, HashSet};
use std::io::Write as _;
use std::net::UdpSocket;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use mgw_core::auth::{digest, Algorithm, Credentials};
use mgw_core::sip::{HeaderName, Message, ReplyContext, ResponseBuilder};
use serde_json::Value;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Challenges {
    /// What mgw's registrar sends: SHA-256 then MD5, qop=auth.
    Sha256ThenMd5,
    /// An old server: MD5 without qop (RFC 2069 answers).
    Md5NoQop,
}

#[derive(Clone, Copy)]
struct Behaviour {
    challenges: Challenges,
    /// Drop the first copy of every request, so each transaction needs one retransmission.
    drop_first: bool,
    /// Never answer at all.
    silent: bool,
}

impl Default for Behaviour {
    fn default() -> Self {
        Behaviour {
            challenges: Challenges::Sha256ThenMd5,
            drop_first: false,
            silent: false,
        }
    }
}

#[derive(Default)]
struct Seen {
    verified: HashMap<&'static str, u64>,
    refused: u64,
    expires: HashSet<u32>,
    user_agents: HashSet<String>,
    users: HashSet<String>,
}

struct Stub {
    addr: String,
    stop: Arc<AtomicBool>,
    seen: Arc<Mutex<Seen>>,
    thread: Option<JoinHandle<()>>,
}

const REALM: &str = "stub.test";

impl Stub {
    fn start(b: Behaviour) -> Stub {
        let sock = UdpSocket::bind("127.0.0.1:0").expect("bind");
        sock.set_read_timeout(Some(Duration::from_millis(20)))
            .expect("timeout");
        let addr = sock.local_addr().expect("addr").to_string();
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(Mutex::new(Seen::default()));
        let (stop2, seen2) = (stop.clone(), seen.clone());
        let thread = std::thread::spawn(move || serve(&sock, b, &stop2, &seen2));
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

fn serve(sock: &UdpSocket, b: Behaviour, stop: &AtomicBool, seen: &Mutex<Seen>) {
    let mut buf = vec![0u8; 65536];
    let mut out = Vec::new();
    let mut dropped = HashSet::new();
    while !stop.load(Ordering::Relaxed) {
        let Ok((n, from)) = sock.recv_from(&mut buf) else {
            continue;
        };
        if b.silent {
            continue;
        }
        let req = Message::parse(&buf[..n]).expect("the generator sends parseable requests");
        let branch = req
            .top_via()
            .and_then(|v| v.branch())
            .expect("branch")
            .to_string();
        if b.drop_first && dropped.insert(branch) {
            continue;
        }
        let mut s = seen.lock().expect("lock");
        s.expires.extend(req.expires());
        s.user_agents
            .extend(req.header(HeaderName::UserAgent).map(str::to_string));
        let ctx = ReplyContext {
            source: Some(from),
            to_tag: Some("stub"),
        };
        match req.header(HeaderName::Authorization) {
            None => {
                let nonce = format!("n-{n}-{}", from.port());
                let values: Vec<String> = match b.challenges {
                    Challenges::Sha256ThenMd5 => [Algorithm::Sha256, Algorithm::Md5]
                        .map(|alg| {
                            format!(
                                "Digest realm=\"{REALM}\", nonce=\"{nonce}\", \
                                 algorithm={}, qop=\"auth\"",
                                alg.as_str()
                            )
                        })
                        .to_vec(),
                    Challenges::Md5NoQop => {
                        vec![format!("Digest realm=\"{REALM}\", nonce=\"{nonce}\"")]
                    }
                };
                let mut r = ResponseBuilder::new(&mut out, &req, 401, "Unauthorized", ctx);
                for v in &values {
                    r = r.header("WWW-Authenticate", v);
                }
                r.finish(None, b"");
            }
            Some(value) => {
                let creds = Credentials::parse(value).expect("credentials parse");
                let alg = Algorithm::from_param(creds.algorithm).expect("known algorithm");
                let ha1 = alg.ha1(creds.username, REALM, "secret");
                let ok = creds.realm == REALM
                    && creds.uri == "sip:stub.test"
                    && (creds.qop.is_some() == (b.challenges == Challenges::Sha256ThenMd5))
                    && digest::verify(&creds, alg, &ha1, "REGISTER");
                s.users.insert(creds.username.to_string());
                if ok {
                    *s.verified.entry(alg.as_str()).or_default() += 1;
                    ResponseBuilder::new(&mut out, &req, 200, "OK", ctx).finish(None, b"");
                } else {
                    s.refused += 1;
                    ResponseBuilder::new(&mut out, &req, 403, "Forbidden", ctx).finish(None, b"");
                }
            }
        }
        drop(s);
        let _ = sock.send_to(&out, from);
    }
}

fn users_file(name: &str, n: usize, password: &str) -> PathBuf {
    let path = std::env::temp_dir().join(format!("mgw-loadtest-{}-{name}.csv", std::process::id()));
    let mut f = std::fs::File::create(&path).expect("users file");
    writeln!(f, "user,password,number,channels").expect("write");
    for i in 0..n {
        writeln!(f, "u{i},{password},{},1", 1000 + i).expect("write");
    }
    path
}

fn run(target: &str, users: &PathBuf, extra: &[&str]) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_mgw-loadtest"))
        .args(["register", "--target", target, "--users"])
        .arg(users)
        .args(["--domain", "stub.test", "--json-only"])
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
fn digest_flows_succeed_round_robin_over_users() {
    let stub = Stub::start(Behaviour::default());
    let users = users_file("ok", 7, "secret");
    let j = run(
        &stub.addr,
        &users,
        &["--rate", "2000", "--count", "200", "--sockets", "3"],
    );
    let seen = stub.finish();
    assert_eq!(j["ok"], 200, "{j}");
    assert_eq!(j["failed"], 0);
    assert_eq!(j["offered"], 200);
    assert_eq!(j["retransmissions"], 0);
    assert_eq!(j["users"], 7);
    assert!(j["target"].is_string());
    assert_eq!(j["failed_by_status"], serde_json::json!({}));
    for k in ["elapsed_s", "rate", "p50_ms", "p90_ms", "p99_ms", "max_ms"] {
        assert!(j[k].is_number(), "{k} in {j}");
    }
    assert!(j["p50_ms"].as_f64() <= j["max_ms"].as_f64());
    // The first challenge (SHA-256) is the one answered.
    assert_eq!(seen.verified.get("SHA-256"), Some(&200));
    assert_eq!(seen.users.len(), 7);
    assert_eq!(seen.expires, HashSet::from([3600]));
    let ua = format!("mgw-loadtest/{}", env!("CARGO_PKG_VERSION"));
    assert_eq!(seen.user_agents, HashSet::from([ua]));
}

#[test]
fn md5_without_qop_and_unregister() {
    let stub = Stub::start(Behaviour {
        challenges: Challenges::Md5NoQop,
        ..Behaviour::default()
    });
    let users = users_file("md5", 3, "secret");
    let j = run(
        &stub.addr,
        &users,
        &["--rate", "500", "--count", "30", "--unregister"],
    );
    let seen = stub.finish();
    assert_eq!(
        (j["ok"].as_u64(), j["failed"].as_u64()),
        (Some(30), Some(0))
    );
    assert_eq!(j["mode"], "unregister");
    assert_eq!(seen.verified.get("MD5"), Some(&30));
    assert_eq!(seen.expires, HashSet::from([0]));
}

#[test]
fn lost_requests_are_retransmitted() {
    let stub = Stub::start(Behaviour {
        drop_first: true,
        ..Behaviour::default()
    });
    let users = users_file("retrans", 2, "secret");
    let j = run(
        &stub.addr,
        &users,
        &["--rate", "200", "--count", "20", "--t1-ms", "20"],
    );
    stub.finish();
    assert_eq!(
        (j["ok"].as_u64(), j["failed"].as_u64()),
        (Some(20), Some(0))
    );
    // Each of the two transactions of each flow lost its first copy.
    assert_eq!(j["retransmissions"], 40, "{j}");
    assert!(j["p50_ms"].as_f64().is_some_and(|ms| ms >= 40.0), "{j}");
}

#[test]
fn wrong_password_fails_by_status() {
    let stub = Stub::start(Behaviour::default());
    let users = users_file("wrong", 2, "not-the-password");
    let j = run(&stub.addr, &users, &["--rate", "500", "--count", "10"]);
    let seen = stub.finish();
    assert_eq!(
        (j["ok"].as_u64(), j["failed"].as_u64()),
        (Some(0), Some(10))
    );
    assert_eq!(j["failed_by_status"], serde_json::json!({"403": 10}));
    assert_eq!(seen.refused, 10);
}

#[test]
fn silent_server_times_out_every_flow() {
    let stub = Stub::start(Behaviour {
        silent: true,
        ..Behaviour::default()
    });
    let users = users_file("silent", 2, "secret");
    let j = run(
        &stub.addr,
        &users,
        &[
            "--rate",
            "100",
            "--count",
            "10",
            "--t1-ms",
            "20",
            "--timeout",
            "0.25",
        ],
    );
    stub.finish();
    assert_eq!(
        (j["ok"].as_u64(), j["failed"].as_u64()),
        (Some(0), Some(10))
    );
    assert_eq!(j["timeouts"], 10);
    assert_eq!(j["failed_by_reason"], serde_json::json!({"timeout": 10}));
    // Timer E fires at 20, 60 and 140 ms, the next one would be at 300: 3 retransmissions
    // before the 250 ms deadline.
    assert_eq!(j["retransmissions"], 30, "{j}");
    assert!(j["elapsed_s"].as_f64().is_some_and(|s| s < 2.0), "{j}");
}

#[test]
fn bad_input_exits_with_status_2() {
    let out = Command::new(env!("CARGO_BIN_EXE_mgw-loadtest"))
        .args([
            "register",
            "--target",
            "127.0.0.1",
            "--users",
            "/nonexistent",
        ])
        .args(["--rate", "1", "--count", "1"])
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
}
