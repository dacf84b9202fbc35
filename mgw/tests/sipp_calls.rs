//! Interop: SIPp calls through the gateway with RTP. A SIPp callee registers as Bob (digest
//! authentication), then a SIPp answering on the registered port echoes the audio of each
//! call; a SIPp caller logged in as Alice answers the 407 challenge, calls Bob's number and
//! plays SIPp's g711a.pcap. Five calls in a row must all succeed on both SIPp sides, and each
//! call record must show the answered call with packets both ways. Scenarios: tests/sipp/.
//! Skips (passes with a note) when sipp or its g711a.pcap is not installed.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{free_port, Server};
use serde_json::Value;

const PCAP: &str = "/usr/share/sip-tester/g711a.pcap";
const CALLS: usize = 5;
/// How long each call lasts after the ACK. The pcap holds 7 s of 30 ms PCMA packets; the
/// hang-up cuts it short, after about 66 packets.
const CALL_MS: u64 = 2000;
/// Packets each way a call must show: three quarters of what the pause lets through, for
/// SIPp's start-up and the echo's first packets.
const MIN_PACKETS: i64 = (CALL_MS / 30 * 3 / 4) as i64;

fn have(cmd: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {cmd}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn scenario(name: &str) -> String {
    format!("{}/tests/sipp/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// A SIPp run's files (in the test's directory, so none lands in the working directory).
struct Run {
    name: &'static str,
    dir: PathBuf,
}

impl Run {
    fn new(name: &'static str, dir: &Path) -> Run {
        Run {
            name,
            dir: dir.to_path_buf(),
        }
    }

    fn file(&self, what: &str) -> PathBuf {
        self.dir.join(format!("{}-{what}", self.name))
    }

    /// A sipp command writing its statistics, unexpected messages and SIP trace to files.
    fn command(&self) -> Command {
        let mut c = Command::new("sipp");
        c.current_dir(&self.dir)
            .args(["-i", "127.0.0.1", "-mi", "127.0.0.1", "-nostdin"])
            .args(["-trace_stat", "-stf"])
            .arg(self.file("stat.csv"))
            .args(["-trace_err", "-error_file"])
            .arg(self.file("errors.log"))
            .args(["-trace_msg", "-message_file"])
            .arg(self.file("messages.log"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(self.file("stderr.log")).expect("log"));
        c
    }

    /// A counter from the last line of the statistics file (`SuccessfulCall(C)`, ...).
    fn counter(&self, name: &str) -> Option<u64> {
        let text = std::fs::read_to_string(self.file("stat.csv")).ok()?;
        let mut lines = text.lines().filter(|l| !l.trim().is_empty());
        let header: Vec<&str> = lines.next()?.split(';').collect();
        let last: Vec<&str> = lines.next_back()?.split(';').collect();
        let i = header.iter().position(|h| *h == name)?;
        last.get(i)?.trim().parse().ok()
    }

    /// The stderr, unexpected messages and the end of the SIP trace, for failure messages.
    fn report(&self) -> String {
        let read = |what: &str| std::fs::read_to_string(self.file(what)).unwrap_or_default();
        let trace = read("messages.log");
        let start = trace.len().saturating_sub(12_000);
        let start = (start..trace.len())
            .find(|i| trace.is_char_boundary(*i))
            .unwrap_or(0);
        format!(
            "----- sipp {name}: stderr -----\n{}\n----- sipp {name}: unexpected messages -----\n{}\n\
             ----- sipp {name}: end of the SIP trace -----\n{}\n",
            read("stderr.log"),
            read("errors.log"),
            &trace[start..],
            name = self.name,
        )
    }
}

/// Kills a still running SIPp when the test fails half-way.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Running {
    /// The exit code once SIPp has exited within `wait`.
    fn exit_within(&mut self, wait: Duration) -> Option<i32> {
        let deadline = Instant::now() + wait;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.0.try_wait() {
                return Some(status.code().unwrap_or(-1));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        None
    }
}

fn metric(server: &Server, name: &str) -> Option<u64> {
    server.get("/metrics").1.lines().find_map(|l| {
        l.strip_prefix(&format!("{name} "))
            .and_then(|v| v.trim().parse().ok())
    })
}

fn cdrs(server: &Server) -> Value {
    let (status, v) = server.json("t", "GET", "/api/v1/cdrs", "");
    assert_eq!(status, 200, "{v}");
    v
}

#[test]
fn sipp_calls_with_auth_and_rtp_echo_through_mgw() {
    if !have("sipp") || !Path::new(PCAP).exists() {
        eprintln!("SKIPPED: sipp or {PCAP} is not installed (scripts/install-peers.sh)");
        return;
    }
    let server = Server::configure("sipp-calls", "");
    let csv = server.dir.join("users.csv");
    std::fs::write(
        &csv,
        "user,password,number,channels\nalice,wonder,200,\nbob,builder,201,\n",
    )
    .expect("csv");
    let ports = 49000 + (std::process::id() % 8) * 100;
    let config = std::fs::read_to_string(&server.config).expect("config");
    std::fs::write(
        &server.config,
        format!(
            "{config}[accounts]\nimport_csv = \"{}\"\n[media]\nbind = \"127.0.0.1\"\n\
             rtp_ports = \"{ports}-{}\"\n",
            csv.display(),
            ports + 99
        ),
    )
    .expect("config");
    let server = server.start();
    let target = format!("127.0.0.1:{}", server.port);
    let callee_port = free_port();

    // SIPp cannot tie an INVITE with a new Call-ID to the REGISTER's scenario, so Bob
    // registers from the port the answering SIPp binds right after.
    let register = Run::new("register", &server.dir);
    let status = register
        .command()
        .arg(&target)
        .args(["-sf", &scenario("register.xml")])
        .args(["-s", "bob", "-au", "bob", "-ap", "builder"])
        .args(["-p", &callee_port.to_string()])
        .args(["-m", "1", "-timeout", "15s"])
        .status()
        .expect("run sipp");
    assert!(
        status.success(),
        "Bob's REGISTER failed ({status}):\n{}----- mgw log -----\n{}",
        register.report(),
        server.log()
    );
    let regs = server.get("/api/v1/registrations").1;
    assert!(
        regs.contains(&format!("127.0.0.1:{callee_port}")),
        "Bob is not registered from 127.0.0.1:{callee_port}: {regs}"
    );

    let callee = Run::new("callee", &server.dir);
    let mut answering = Running(
        callee
            .command()
            .args(["-sf", &scenario("answer_echo.xml")])
            .args(["-p", &callee_port.to_string()])
            .args(["-mp", &free_port().to_string(), "-rtp_echo"])
            .args(["-m", &CALLS.to_string(), "-timeout", "50s"])
            .spawn()
            .expect("spawn sipp"),
    );
    // Ready once it holds the port.
    let deadline = Instant::now() + Duration::from_secs(5);
    while std::net::UdpSocket::bind(("127.0.0.1", callee_port)).is_ok() {
        if Instant::now() > deadline || answering.0.try_wait().ok().flatten().is_some() {
            panic!("the answering SIPp did not start:\n{}", callee.report());
        }
        std::thread::sleep(Duration::from_millis(50));
    }

    let caller = Run::new("caller", &server.dir);
    let started = Instant::now();
    let uac = caller
        .command()
        .arg(&target)
        .args(["-sf", &scenario("call_auth_pcap.xml")])
        .args(["-s", "201", "-key", "caller", "alice"])
        .args(["-au", "alice", "-ap", "wonder"])
        .args(["-p", &free_port().to_string()])
        .args(["-mp", &free_port().to_string()])
        // One call at a time.
        .args(["-m", &CALLS.to_string(), "-l", "1", "-r", "10"])
        .args(["-d", &CALL_MS.to_string(), "-timeout", "50s"])
        .status()
        .expect("run sipp");
    let uas = answering.exit_within(Duration::from_secs(10));
    eprintln!("{CALLS} calls in {:?}", started.elapsed());

    let mut records = cdrs(&server);
    let deadline = Instant::now() + Duration::from_secs(10);
    while records.as_array().map_or(0, Vec::len) < CALLS && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        records = cdrs(&server);
    }

    for r in records.as_array().into_iter().flatten() {
        eprintln!(
            "call {}: status {}, {} -> {}, packets {} / {}",
            r["id"],
            r["status"],
            r["codec_caller"],
            r["codec_callee"],
            r["packets_from_caller"],
            r["packets_from_callee"]
        );
    }

    let mut sessions = metric(&server, "mgw_media_sessions");
    while sessions != Some(0) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        sessions = metric(&server, "mgw_media_sessions");
    }
    let rx = metric(&server, "mgw_media_rx_packets_total").unwrap_or(0);
    let tx = metric(&server, "mgw_media_tx_packets_total").unwrap_or(0);
    eprintln!("relay: {rx} packets in, {tx} out");

    let mut problems = Vec::new();
    if sessions != Some(0) {
        problems.push(format!("media sessions left after the calls: {sessions:?}"));
    }
    // The CDRs count what reached mgw; this shows it went out again (to the callee, and the
    // echo back to the caller), give or take the packets in flight at each hang-up.
    if tx * 10 < rx * 9 {
        problems.push(format!("mgw received {rx} RTP packets but sent only {tx}"));
    }
    if !uac.success() {
        problems.push(format!("the calling SIPp failed: {uac}"));
    }
    if uas != Some(0) {
        problems.push(format!(
            "the answering SIPp exited with {uas:?} (None: still running)"
        ));
    }
    for (run, side) in [(&caller, "caller"), (&callee, "callee")] {
        let ok = run.counter("SuccessfulCall(C)");
        let failed = run.counter("FailedCall(C)");
        if ok != Some(CALLS as u64) || failed != Some(0) {
            problems.push(format!(
                "SIPp {side}: {ok:?} successful, {failed:?} failed calls, expected {CALLS} and 0"
            ));
        }
    }
    match records.as_array() {
        Some(list) if list.len() == CALLS => {
            for r in list {
                let answered = r["status"] == 200 && r["answered_at"].is_string();
                let codecs = r["codec_caller"] == "PCMA" && r["codec_callee"] == "PCMA";
                let both_ways = ["packets_from_caller", "packets_from_callee"]
                    .iter()
                    .all(|k| r[*k].as_i64().unwrap_or(0) >= MIN_PACKETS);
                let parties = r["caller"] == "200" && r["callee_user"] == "bob";
                if !(answered && codecs && both_ways && parties) {
                    problems.push(format!(
                        "call record not an answered PCMA call from 200 to bob with >= \
                         {MIN_PACKETS} packets each way: {r}"
                    ));
                }
            }
        }
        _ => problems.push(format!("expected {CALLS} call records, got {records}")),
    }
    assert!(
        problems.is_empty(),
        "{}\n{}{}----- mgw log -----\n{}",
        problems.join("\n"),
        caller.report(),
        callee.report(),
        server.log()
    );
}
