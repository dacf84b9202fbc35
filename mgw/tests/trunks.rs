//! Upstream trunks against a real provider: Kamailio as registrar/proxy with digest auth
//! (tests/upstream/), SIPp as the PSTN behind it and as a remote caller. mgw registers,
//! refreshes, shows why it cannot, unregisters by hand and at shutdown, places calls by
//! prefix and by phone book, and takes calls for its DIDs. Skipped when Kamailio or SIPp is
//! not installed (scripts/install-peers.sh installs them).

mod common;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::ua::{header, status, Ua};
use common::Server;
use serde_json::Value;

fn have(tool: &str) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool}"))
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn upstream_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/upstream")
}

/// A running provider on `port` (udp+tcp, 127.0.0.1 and [::1]); stopped when dropped.
struct Provider {
    pid: u32,
    port: u16,
    log: PathBuf,
}

impl Provider {
    fn start(port: u16) -> Option<Provider> {
        if !have("kamailio") || !have("sipp") {
            eprintln!("kamailio or sipp not installed: skipped");
            return None;
        }
        let rundir =
            std::env::temp_dir().join(format!("mgw-upstream-{port}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&rundir);
        let log = rundir.join("kamailio.log");
        let out = Command::new(upstream_dir().join("start.sh"))
            .arg(port.to_string())
            .env("UPSTREAM_RUNDIR", &rundir)
            .env("KAMAILIO_LOG", &log)
            .output()
            .expect("start.sh runs");
        assert!(
            out.status.success(),
            "the provider did not start: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let pid = String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .expect("pid");
        Some(Provider { pid, port, log })
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until the log has `n` lines containing `what`.
    fn wait_log(&self, what: &str, n: usize, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if self.log().matches(what).count() >= n {
                return true;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        false
    }
}

impl Drop for Provider {
    fn drop(&mut self) {
        // SAFETY: plain kill(2) of the provider's main process, which stops its children.
        unsafe {
            libc::kill(self.pid as i32, libc::SIGTERM);
        }
    }
}

fn gateway(name: &str, trunk: &str, extra: &str) -> Server {
    let server = Server::configure(name, "");
    let csv = server.dir.join("users.csv");
    std::fs::write(
        &csv,
        "user,password,number\nalice,wonder,200\nbob,builder,493012345\n",
    )
    .expect("csv");
    let text = std::fs::read_to_string(&server.config).expect("config");
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % 8;
    let ports = 47000 + ((std::process::id() % 4) * 8 + n) * 100;
    let text = format!(
        "{text}[licences]\ntotal = 10\n[accounts]\nimport_csv = \"{}\"\n\
         [media]\nbind = \"127.0.0.1\"\nrtp_ports = \"{ports}-{}\"\n{trunk}{extra}",
        csv.display(),
        ports + 99
    );
    std::fs::write(&server.config, text).expect("config");
    server.start()
}

fn trunk(server: &str, password: &str, transport: &str) -> String {
    format!(
        "[[trunk]]\nname = \"up1\"\nserver = \"{server}\"\ntransport = \"{transport}\"\n\
         register = true\naddress = \"sip:gw@upstream.test\"\nuser = \"gw\"\n\
         password = \"{password}\"\nexpires = 60\nprefix = \"2#\"\n"
    )
}

fn trunk_state(s: &Server) -> Value {
    let (code, v) = s.json("t", "GET", "/api/v1/trunks", "");
    assert_eq!(code, 200, "{v}");
    v.as_array()
        .and_then(|a| a.first().cloned())
        .unwrap_or(Value::Null)
}

/// Waits until the trunk's state is `want`; returns the last status seen.
fn wait_state(s: &Server, want: &str, within: Duration) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let t = trunk_state(s);
        if t["state"] == want || Instant::now() > deadline {
            return t;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn sip(s: &Server) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], s.port))
}

/// SIPp answering calls on `port` (the PSTN behind the provider).
fn sipp_uas(port: u16, calls: u32) -> Child {
    Command::new("sipp")
        .args(["-sf"])
        .arg(upstream_dir().join("sipp/uas.xml"))
        .args([
            "-i",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-m",
            &calls.to_string(),
        ])
        .args(["-nostdin"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("sipp")
}

#[test]
fn registers_refreshes_disconnects_and_unregisters_at_shutdown() {
    let Some(p) = Provider::start(25170) else {
        return;
    };
    let mut s = gateway(
        "trunk-reg",
        &trunk(&format!("127.0.0.1:{}", p.port), "secret", "udp"),
        "",
    );
    let t = wait_state(&s, "registered", Duration::from_secs(10));
    assert_eq!(t["state"], "registered", "{t}");
    assert!(t["reason"].is_null(), "{t}");
    assert!(t["expires_in"].as_u64().is_some_and(|e| e <= 60), "{t}");
    assert!(
        p.wait_log("REGISTER from gw: 200 OK", 1, Duration::from_secs(2)),
        "{}",
        p.log()
    );
    // The CLI shows the same.
    let out = Command::new(env!("CARGO_BIN_EXE_mgw"))
        .args([
            "trunk",
            "list",
            "--api",
            &format!("http://127.0.0.1:{}", s.admin),
        ])
        .args(["--token", "t"])
        .env_remove("MGW_API")
        .env_remove("MGW_TOKEN")
        .output()
        .expect("mgw trunk list");
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.contains("up1") && table.contains("registered"),
        "{table}"
    );
    // Granted 60 s: refreshed about half way.
    assert!(
        p.wait_log("REGISTER from gw: 200 OK", 2, Duration::from_secs(40)),
        "no refresh: {}",
        p.log()
    );
    // Disconnect by hand: REGISTER with expires=0.
    let (code, v) = s.json("t", "POST", "/api/v1/trunks/up1/disconnect", "");
    assert_eq!(code, 200, "{v}");
    assert!(
        p.wait_log("REGISTER binding removed: gw", 1, Duration::from_secs(5)),
        "{}",
        p.log()
    );
    let t = wait_state(&s, "disabled", Duration::from_secs(5));
    assert_eq!(t["state"], "disabled", "{t}");
    // Connected again by its entry number (seed 004), which the status shows.
    assert_eq!(trunk_state(&s)["entry"], 1);
    let (code, v) = s.json("t", "POST", "/api/v1/trunks/1/connect", "");
    assert_eq!(code, 200, "{v}");
    let t = wait_state(&s, "registered", Duration::from_secs(10));
    assert_eq!(t["state"], "registered", "{t}");
    // SIGTERM: the binding is removed before mgw exits.
    s.stop();
    assert!(
        p.wait_log("REGISTER binding removed: gw", 2, Duration::from_secs(5)),
        "{}",
        p.log()
    );
}

#[test]
fn failures_are_shown_in_words() {
    let Some(p) = Provider::start(25270) else {
        return;
    };
    let s = gateway(
        "trunk-pw",
        &trunk(&format!("127.0.0.1:{}", p.port), "wrong", "udp"),
        "",
    );
    let t = wait_state(&s, "failed", Duration::from_secs(10));
    assert_eq!(t["state"], "failed", "{t}");
    let reason = t["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("403"), "{t}");
    // Nothing listens on the server's port: the ICMP error says so at once.
    let refused = gateway(
        "trunk-refused",
        &trunk("127.0.0.1:25298", "secret", "udp"),
        "",
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    let reason = loop {
        let t = trunk_state(&refused);
        if let Some(r) = t["reason"].as_str() {
            break r.to_string();
        }
        assert!(Instant::now() < deadline, "no reason: {t}");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(reason.contains("ICMP port unreachable"), "{reason}");
    drop(refused);
    // A server that does not answer at all (a black hole, no ICMP either): the reason says
    // so once Timer F (64*T1) runs out.
    let _hole = std::net::UdpSocket::bind("127.0.0.1:25299").expect("black hole");
    let dead = gateway("trunk-dead", &trunk("127.0.0.1:25299", "secret", "udp"), "");
    let t = wait_state(&dead, "unregistered", Duration::from_secs(2));
    let _ = t;
    let deadline = Instant::now() + Duration::from_secs(40);
    let reason = loop {
        let t = trunk_state(&dead);
        if let Some(r) = t["reason"].as_str() {
            break r.to_string();
        }
        assert!(Instant::now() < deadline, "no reason: {t}");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(reason.contains("no answer"), "{reason}");
    // A name that does not resolve.
    let nx = gateway(
        "trunk-dns",
        &trunk("sip.no-such-provider.invalid", "secret", "udp"),
        "",
    );
    let t = wait_state(&nx, "failed", Duration::from_secs(15));
    assert_eq!(t["state"], "failed", "{t}");
    assert!(
        t["reason"].as_str().is_some_and(|r| r.starts_with("DNS")),
        "{t}"
    );
}

#[test]
fn calls_out_by_prefix_and_phone_book_and_in_by_did() {
    let Some(p) = Provider::start(25370) else {
        return;
    };
    let mut uas = sipp_uas(p.port + 10, 2);
    let book = "[phonebook]\nprefix = \"9#\"\nentries = { \"30\" = \"sip:9030@upstream.test\" }\n";
    let s = gateway(
        "trunk-calls",
        &trunk(&format!("127.0.0.1:{}", p.port), "secret", "udp"),
        book,
    );
    let t = wait_state(&s, "registered", Duration::from_secs(10));
    assert_eq!(t["state"], "registered", "{t}");
    let mut alice = Ua::new(sip(&s), "alice", "wonder");
    // Prefix dialling: 2# + number, through the provider's 407, to its PSTN.
    let (mut leg, _) = alice.call("2%239001", &alice.sdp(&[(0, "PCMU/8000")]));
    let ok = alice.response("INVITE", 200);
    alice.confirm(&mut leg, &ok);
    assert_eq!(
        status(&ok),
        200,
        "{}\n{}",
        String::from_utf8_lossy(&ok),
        p.log()
    );
    assert!(p.log().contains("INVITE from gw to 9001"), "{}", p.log());
    alice.in_dialog(&mut leg, "BYE", None);
    assert_eq!(status(&alice.response("BYE", 200)), 200);
    // The phone book: 9#30 is sip:9030@upstream.test.
    let (mut leg, _) = alice.call("9%2330", &alice.sdp(&[(0, "PCMU/8000")]));
    let ok = loop {
        let r = alice.response("INVITE", 200);
        if header(&r, "Call-ID").as_deref() == Some(leg.call_id.as_str()) {
            break r;
        }
    };
    alice.confirm(&mut leg, &ok);
    assert_eq!(
        status(&ok),
        200,
        "{}\n{}",
        String::from_utf8_lossy(&ok),
        p.log()
    );
    assert!(p.log().contains("to 9030"), "{}", p.log());
    alice.in_dialog(&mut leg, "BYE", None);
    assert_eq!(status(&alice.response("BYE", 200)), 200);
    let _ = uas.kill();
    let _ = uas.wait();

    // Inbound: a remote caller dials bob's DID at the provider, which sends it to mgw.
    let mut bob = Ua::new(sip(&s), "bob", "builder");
    bob.register();
    let mut uac = Command::new("sipp")
        .arg("-sf")
        .arg(upstream_dir().join("sipp/uac_inbound.xml"))
        .args(["-i", "127.0.0.1", "-p", &(p.port + 11).to_string()])
        .args(["-s", "493012345", "-m", "1", "-nostdin"])
        .arg(format!("127.0.0.1:{}", p.port))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("sipp");
    let invite = bob.request("INVITE");
    let from = header(&invite, "From").unwrap_or_default();
    assert!(!from.is_empty(), "{from}");
    let answer = bob.sdp(&[(0, "PCMU/8000")]);
    let _leg = bob.reply(&invite, 200, "OK", Some(&answer));
    let bye = bob.request("BYE");
    bob.ok(&bye, None);
    let done = uac.wait().expect("sipp ends");
    assert!(done.success(), "the remote caller's call: {}", p.log());
    // The records name the trunk both ways.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let cdrs = s.json("t", "GET", "/api/v1/cdrs", "").1;
        let rows = cdrs.as_array().cloned().unwrap_or_default();
        if rows.len() >= 3 {
            assert!(rows.iter().all(|r| r["trunk"] == "up1"), "{cdrs}");
            let inbound = rows.iter().filter(|r| r["direction"] == "inbound").count();
            assert_eq!(inbound, 1, "{cdrs}");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{cdrs}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn registers_over_ipv6_and_tcp() {
    let Some(p) = Provider::start(25470) else {
        return;
    };
    let s = gateway(
        "trunk-v6",
        &trunk(&format!("[::1]:{}", p.port), "secret", "udp"),
        "",
    );
    let t = wait_state(&s, "registered", Duration::from_secs(10));
    assert_eq!(t["state"], "registered", "IPv6: {t}\n{}", p.log());
    let s2 = gateway(
        "trunk-tcp",
        &trunk(&format!("127.0.0.1:{}", p.port), "secret", "tcp"),
        "",
    );
    let t = wait_state(&s2, "registered", Duration::from_secs(10));
    assert_eq!(t["state"], "registered", "TCP: {t}\n{}", p.log());
    assert_eq!(t["transport"], "tcp");
    // A call out through each: over IPv6 UDP, and over TCP (mgw connects to the provider).
    let mut uas = sipp_uas(p.port + 10, 2);
    for (g, what) in [(&s, "IPv6"), (&s2, "TCP")] {
        let mut alice = Ua::new(sip(g), "alice", "wonder");
        let (mut leg, _) = alice.call("2%239001", &alice.sdp(&[(0, "PCMU/8000")]));
        let ok = alice.response("INVITE", 200);
        alice.confirm(&mut leg, &ok);
        assert_eq!(
            status(&ok),
            200,
            "{what}: {}\n{}",
            String::from_utf8_lossy(&ok),
            p.log()
        );
        alice.in_dialog(&mut leg, "BYE", None);
        assert_eq!(status(&alice.response("BYE", 200)), 200, "{what}");
    }
    let _ = uas.kill();
    let _ = uas.wait();
}

/// A trunk added through the admin API: checked, stored, applied at once, changed (a wrong
/// password, then the right one), limited to one call, still there after a restart, removed.
#[test]
fn trunk_configured_through_the_api_with_a_call_limit() {
    let Some(p) = Provider::start(25570) else {
        return;
    };
    let mut uas = sipp_uas(p.port + 10, 5);
    let mut s = gateway("trunk-api", "", "");
    let body = |password: &str| {
        format!(
            r#"{{"server":"127.0.0.1:{}","register":true,"address":"sip:gw@upstream.test","user":"gw","password":"{password}","expires":60,"prefix":"3#","max_calls":1}}"#,
            p.port
        )
    };
    let (code, v) = s.json(
        "t",
        "PUT",
        "/api/v1/trunks/up9",
        r#"{"server":"x","pasword":"y"}"#,
    );
    assert_eq!(code, 400, "{v}");
    assert!(v.to_string().contains("pasword"), "names the bad key: {v}");
    let (code, v) = s.json("t", "PUT", "/api/v1/trunks/up9", &body("wrong"));
    assert_eq!(code, 200, "{v}");
    let t = wait_state(&s, "failed", Duration::from_secs(10));
    assert!(
        t["reason"].as_str().is_some_and(|r| r.contains("403")),
        "{t}"
    );
    let (code, v) = s.json("t", "PUT", "/api/v1/trunks/up9", &body("secret"));
    assert_eq!(code, 200, "{v}");
    let t = wait_state(&s, "registered", Duration::from_secs(10));
    assert_eq!(t["state"], "registered", "{t}");

    let mut alice = Ua::new(sip(&s), "alice", "wonder");
    let (mut first, _) = alice.call("3%239001", &alice.sdp(&[(0, "PCMU/8000")]));
    let ok = alice.response("INVITE", 200);
    alice.confirm(&mut first, &ok);
    assert_eq!(status(&ok), 200, "{}", String::from_utf8_lossy(&ok));
    let (mut second, _) = alice.call("3%239002", &alice.sdp(&[(0, "PCMU/8000")]));
    let full = loop {
        let r = alice.response("INVITE", 200);
        if header(&r, "Call-ID").as_deref() == Some(second.call_id.as_str()) {
            break r;
        }
    };
    alice.confirm(&mut second, &full);
    assert_eq!(status(&full), 503, "{}", String::from_utf8_lossy(&full));
    assert!(String::from_utf8_lossy(&full).contains("every channel of up9"));
    alice.in_dialog(&mut first, "BYE", None);
    let _ = alice.response("BYE", 200);

    // Stored: a restart brings it back.
    s.stop();
    s.spawn();
    let t = wait_state(&s, "registered", Duration::from_secs(10));
    assert_eq!(t["state"], "registered", "after a restart: {t}");
    let (code, v) = s.json("t", "DELETE", "/api/v1/trunks/up9", "");
    assert_eq!(code, 200, "{v}");
    let (_, list) = s.json("t", "GET", "/api/v1/trunks", "");
    assert_eq!(list, serde_json::json!([]), "{list}");
    assert!(
        p.wait_log("REGISTER binding removed: gw", 2, Duration::from_secs(5)),
        "{}",
        p.log()
    );
    let _ = uas.kill();
    let _ = uas.wait();
}
