//! Interop: a call between two real baresip phones through the gateway, with transcoding.
//! Alice's phone only speaks PCMU and Bob's only opus, so mgw must decode and re-encode both
//! directions. Each phone sends a sine tone of its own frequency (baresip's `ausine`) and
//! records what it hears (the `sndfile` filter dumps the decoded audio to a WAV); each
//! recording must be dominated by the other phone's tone, and the call record must name both
//! codecs. The phones are driven over baresip's `ctrl_tcp` interface (dial, hang up, events).
//! A second test has real phones call the simulated PSTN and a simulated DECT handset.
//! Skips (passes with a note) when baresip or one of its modules is not installed.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{free_port, Server};
use serde_json::Value;

/// Frequencies well apart and neither a harmonic of the other, so a mixed-up direction (each
/// phone hearing itself) cannot pass.
const ALICE_HZ: f64 = 1000.0;
const BOB_HZ: f64 = 440.0;
/// How long the answered call runs before Alice hangs up.
const TALK: Duration = Duration::from_secs(4);

const MODULES: [&str; 8] = [
    "account.so",
    "g711.so",
    "opus.so",
    "ausine.so",
    "aubridge.so",
    "sndfile.so",
    "ctrl_tcp.so",
    "menu.so",
];

/// The module directory holding every module the test needs, if baresip is installed.
fn baresip_modules() -> Option<PathBuf> {
    let runs = Command::new("baresip")
        .arg("-h")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    if !runs {
        return None;
    }
    [
        "/usr/lib/baresip/modules",
        "/usr/lib/x86_64-linux-gnu/baresip/modules",
        "/usr/local/lib/baresip/modules",
    ]
    .iter()
    .map(PathBuf::from)
    .find(|dir| MODULES.iter().all(|m| dir.join(m).exists()))
}

/// One baresip process with its own config directory and a `ctrl_tcp` connection to it.
struct Phone {
    name: &'static str,
    child: Child,
    dir: PathBuf,
    ctrl: Option<TcpStream>,
    /// Bytes read from ctrl_tcp not yet making up a whole netstring.
    pending: Vec<u8>,
    /// Events received while waiting for something else, oldest first.
    events: Vec<Value>,
    /// Every event seen, for failure messages.
    seen: Vec<String>,
    token: u32,
}

impl Drop for Phone {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Phone {
    /// Starts baresip registered as `user` at the gateway's `sip_port`, sending a tone of
    /// `tone_hz`; `extra_params` are appended to the account line (codecs, answer mode).
    #[allow(clippy::too_many_arguments)]
    fn start(
        name: &'static str,
        modules: &Path,
        base: &Path,
        user: &str,
        password: &str,
        sip_port: u16,
        extra_params: &str,
        tone_hz: f64,
    ) -> Phone {
        let dir = base.join(name);
        std::fs::create_dir_all(dir.join("audio")).expect("dir");
        let ctrl_port = free_port();
        // ausine only produces 48 kHz stereo; baresip resamples it to the codec's rate. No
        // sound card: the player is an aubridge device nobody reads from, and what the phone
        // hears is taken from the sndfile dump of the decoded stream instead.
        let config = format!(
            "module_path {modules}\n\
             poll_method epoll\n\
             sip_listen 127.0.0.1:0\n\
             audio_player aubridge,nobody\n\
             audio_alert aubridge,nobody\n\
             audio_source ausine,{tone_hz}\n\
             ausrc_srate 48000\n\
             ausrc_channels 2\n\
             rtp_ports 20000-29999\n\
             statmode_default off\n\
             ctrl_tcp_listen 127.0.0.1:{ctrl_port}\n\
             snd_path {audio}\n\
             module g711.so\n\
             module opus.so\n\
             module ausine.so\n\
             module aubridge.so\n\
             module sndfile.so\n\
             module_tmp account.so\n\
             module_app menu.so\n\
             module_app ctrl_tcp.so\n",
            modules = modules.display(),
            audio = dir.join("audio").display(),
        );
        std::fs::write(dir.join("config"), config).expect("config");
        std::fs::write(
            dir.join("accounts"),
            format!(
                "<sip:{user}@mgw.test;transport=udp>;auth_pass={password};\
                 outbound=\"sip:127.0.0.1:{sip_port};transport=udp\";regint=300;{extra_params}\n"
            ),
        )
        .expect("accounts");
        let log = std::fs::File::create(dir.join("baresip.log")).expect("log");
        let child = Command::new("baresip")
            .arg("-f")
            .arg(&dir)
            // -s: the SIP trace goes into the log shown on failure. -t: never outlive a
            // test that got stuck.
            .args(["-s", "-t", "90"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("spawn baresip");
        let mut phone = Phone {
            name,
            child,
            dir,
            ctrl: None,
            pending: Vec::new(),
            events: Vec::new(),
            seen: Vec::new(),
            token: 0,
        };
        let deadline = Instant::now() + Duration::from_secs(15);
        while phone.ctrl.is_none() {
            match TcpStream::connect(("127.0.0.1", ctrl_port)) {
                Ok(s) => {
                    s.set_read_timeout(Some(Duration::from_millis(200)))
                        .expect("timeout");
                    phone.ctrl = Some(s);
                }
                Err(_) if Instant::now() < deadline => {
                    if let Ok(Some(status)) = phone.child.try_wait() {
                        panic!("baresip {name} exited ({status}):\n{}", phone.log());
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(e) => panic!("baresip {name}: no ctrl_tcp ({e}):\n{}", phone.log()),
            }
        }
        phone
    }

    fn log(&self) -> String {
        let raw = std::fs::read_to_string(self.dir.join("baresip.log")).unwrap_or_default();
        // baresip colours its SIP trace and warnings; escape codes only clutter a panic message.
        let mut text = String::with_capacity(raw.len());
        let mut rest = raw.as_str();
        while let Some(i) = rest.find('\x1b') {
            text.push_str(&rest[..i]);
            rest = &rest[i..];
            rest = rest.find('m').map_or("", |m| &rest[m + 1..]);
        }
        text.push_str(rest);
        // The tail is what matters; keep failure messages readable.
        let start = text.len().saturating_sub(20_000);
        let start = (start..text.len())
            .find(|i| text.is_char_boundary(*i))
            .unwrap_or(0);
        format!(
            "----- baresip {} log -----\n{}\n----- {} ctrl_tcp events: {:#?}\n",
            self.name,
            &text[start..],
            self.name,
            self.seen
        )
    }

    /// The next netstring (`len:payload,`) from ctrl_tcp, or `None` when nothing complete
    /// came within the read timeout or baresip closed the connection.
    fn read_message(&mut self) -> Option<Value> {
        loop {
            if let Some(v) = self.take_message() {
                self.seen.push(if v["event"] == true {
                    format!("{} {}", v["type"], v["param"])
                } else {
                    v.to_string()
                });
                return Some(v);
            }
            let ctrl = self.ctrl.as_mut()?;
            let mut buf = [0u8; 4096];
            match ctrl.read(&mut buf) {
                Ok(0) => {
                    self.ctrl = None;
                    return None;
                }
                Ok(n) => self.pending.extend_from_slice(&buf[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    return None
                }
                Err(e) => panic!("baresip {}: ctrl_tcp read: {e}", self.name),
            }
        }
    }

    fn take_message(&mut self) -> Option<Value> {
        let colon = self.pending.iter().position(|&b| b == b':')?;
        let n: usize = std::str::from_utf8(&self.pending[..colon])
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or_else(|| {
                panic!(
                    "bad netstring: {:?}",
                    String::from_utf8_lossy(&self.pending)
                )
            });
        let end = colon + 1 + n;
        if self.pending.len() <= end {
            return None;
        }
        let body: Vec<u8> = self.pending.drain(..=end).skip(colon + 1).take(n).collect();
        Some(serde_json::from_slice(&body).unwrap_or_else(|e| {
            panic!("ctrl_tcp JSON ({e}): {:?}", String::from_utf8_lossy(&body))
        }))
    }

    /// Runs a menu command (`dial`, `hangup`, `quit`) and returns its response.
    fn command(&mut self, command: &str, params: &str) -> Result<Value, String> {
        self.token += 1;
        let token = self.token.to_string();
        let json =
            serde_json::json!({"command": command, "params": params, "token": token}).to_string();
        let ctrl = self
            .ctrl
            .as_mut()
            .ok_or_else(|| format!("baresip {} closed ctrl_tcp", self.name))?;
        ctrl.write_all(format!("{}:{json},", json.len()).as_bytes())
            .map_err(|e| format!("ctrl_tcp write: {e}"))?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            match self.read_message() {
                Some(v) if v["response"] == true && v["token"] == token.as_str() => return Ok(v),
                Some(v) if v["event"] == true => self.events.push(v),
                None if self.ctrl.is_none() => break,
                _ => {}
            }
        }
        Err(format!(
            "baresip {}: no response to {command} {params}",
            self.name
        ))
    }

    /// Waits for an event of `kind` (`CALL_ESTABLISHED`, `CALL_CLOSED`, ...).
    fn event(&mut self, kind: &str, wait: Duration) -> Result<Value, String> {
        if let Some(i) = self.events.iter().position(|e| e["type"] == kind) {
            return Ok(self.events.remove(i));
        }
        let deadline = Instant::now() + wait;
        while Instant::now() < deadline {
            match self.read_message() {
                Some(v) if v["event"] == true && v["type"] == kind => return Ok(v),
                Some(v) if v["event"] == true => self.events.push(v),
                None if self.ctrl.is_none() => break,
                _ => {}
            }
        }
        Err(format!(
            "baresip {}: no {kind} event within {wait:?}",
            self.name
        ))
    }

    /// Dials `number` and waits for the call to be established.
    fn dial(&mut self, number: &str) -> Result<Value, String> {
        let r = self.command("dial", number)?;
        if r["ok"] != true {
            return Err(format!("dial refused: {r}"));
        }
        self.event("CALL_ESTABLISHED", Duration::from_secs(15))
    }

    /// Hangs up and waits for the call to close.
    fn hang_up(&mut self) -> Result<Value, String> {
        self.command("hangup", "")?;
        self.event("CALL_CLOSED", Duration::from_secs(10))
    }

    /// Quits baresip (closing its recordings) and waits for it to exit.
    fn quit(&mut self) {
        let _ = self.command("quit", "");
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The sndfile dump of `what` (`dec`: heard, `enc`: sent).
    fn recording(&self, what: &str) -> Result<PathBuf, String> {
        let suffix = format!("-{what}.wav");
        let files: Vec<PathBuf> = std::fs::read_dir(self.dir.join("audio"))
            .map_err(|e| e.to_string())?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.to_string_lossy().ends_with(&suffix))
            .collect();
        match files.as_slice() {
            [one] => Ok(one.clone()),
            other => Err(format!(
                "baresip {}: expected one *{suffix}, found {other:?}",
                self.name
            )),
        }
    }
}

/// Mono 16-bit samples (the first channel) and the sample rate of a PCM WAV file.
fn read_wav(path: &Path) -> Result<(Vec<i16>, u32), String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    if bytes.len() < 12 || &bytes[0..4] != b"RIFF" || &bytes[8..12] != b"WAVE" {
        return Err(format!("{}: not a WAV file", path.display()));
    }
    let u16_at = |i: usize| u16::from_le_bytes([bytes[i], bytes[i + 1]]);
    let u32_at =
        |i: usize| u32::from_le_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
    let mut fmt = None;
    let mut pos = 12;
    while pos + 8 <= bytes.len() {
        let id = &bytes[pos..pos + 4];
        let size = u32_at(pos + 4) as usize;
        let body = pos + 8;
        if id == b"fmt " && body + 16 <= bytes.len() {
            // (format, channels, rate, bits per sample)
            fmt = Some((
                u16_at(body),
                u16_at(body + 2),
                u32_at(body + 4),
                u16_at(body + 14),
            ));
        } else if id == b"data" {
            let (format, channels, rate, bits) =
                fmt.ok_or_else(|| format!("{}: data before fmt", path.display()))?;
            if format != 1 || bits != 16 || channels == 0 {
                return Err(format!(
                    "{}: not 16-bit PCM (format {format}, {bits} bits, {channels} channels)",
                    path.display()
                ));
            }
            // A recording cut short keeps a stale size; take what is there.
            let end = if size == 0 || body + size > bytes.len() {
                bytes.len()
            } else {
                body + size
            };
            let frame = 2 * usize::from(channels);
            let samples = bytes[body..end]
                .chunks_exact(frame)
                .map(|f| i16::from_le_bytes([f[0], f[1]]))
                .collect();
            return Ok((samples, rate));
        }
        pos = body + size + (size & 1);
    }
    Err(format!("{}: no data chunk", path.display()))
}

/// Goertzel power of `freq` over `x`, normalised so that a pure tone at `freq` spanning `x`
/// gives its share of the total energy (1.0).
fn tone_share(x: &[f64], freq: f64, rate: f64, energy: f64) -> f64 {
    let k = 2.0 * (2.0 * std::f64::consts::PI * freq / rate).cos();
    let (mut s1, mut s2) = (0.0, 0.0);
    for v in x {
        let s0 = v + k * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    let power = s1 * s1 + s2 * s2 - k * s1 * s2;
    power / (energy * x.len() as f64 / 2.0)
}

/// What a recording sounds like: its dominant frequency and the share of the energy at it.
#[derive(Debug)]
struct Heard {
    peak_hz: f64,
    share: f64,
    seconds: f64,
}

/// Finds the dominant frequency (100-3500 Hz, the band every codec here carries) of the
/// audible part of a recording, averaged over 50 ms blocks: short blocks make the bins wide
/// enough that a 5 Hz scan step cannot miss a tone.
fn listen(samples: &[i16], rate: u32) -> Result<Heard, String> {
    let rate_f = f64::from(rate);
    let block = (rate / 20) as usize;
    // The recording starts before the call is answered: skip the silence and the first
    // 200 ms of sound (jitter buffer fill, codec start-up), then take up to 2 s.
    let loud = samples.chunks(block).position(|b| {
        let e: f64 = b.iter().map(|&v| f64::from(v) * f64::from(v)).sum();
        (e / b.len() as f64).sqrt() > 300.0
    });
    let Some(first) = loud else {
        let peak = samples.iter().map(|v| v.unsigned_abs()).max().unwrap_or(0);
        return Err(format!(
            "silence: no 50 ms block above RMS 300 in {:.1} s (peak sample {peak})",
            samples.len() as f64 / rate_f
        ));
    };
    let start = (first * block + (rate / 5) as usize).min(samples.len());
    let end = (start + 2 * rate as usize).min(samples.len());
    let x: Vec<f64> = samples[start..end].iter().map(|&v| f64::from(v)).collect();
    let blocks: Vec<(&[f64], f64)> = x
        .chunks_exact(block)
        .map(|b| (b, b.iter().map(|v| v * v).sum::<f64>()))
        .filter(|(_, e)| *e > 0.0)
        .collect();
    if blocks.len() < 10 {
        return Err(format!(
            "only {} ms of sound after the start-up",
            blocks.len() * 50
        ));
    }
    let share = |f: f64| {
        blocks
            .iter()
            .map(|(b, e)| tone_share(b, f, rate_f, *e))
            .sum::<f64>()
            / blocks.len() as f64
    };
    let coarse = (20..=700)
        .map(|i| f64::from(i) * 5.0)
        .max_by(|a, b| share(*a).total_cmp(&share(*b)))
        .unwrap_or(0.0);
    let peak_hz = (-10..=10)
        .map(|d| coarse + f64::from(d) * 0.5)
        .max_by(|a, b| share(*a).total_cmp(&share(*b)))
        .unwrap_or(coarse);
    Ok(Heard {
        peak_hz,
        share: share(peak_hz),
        seconds: x.len() as f64 / rate_f,
    })
}

/// `Ok` if the recording is dominated by a tone within 5 % of `expect_hz`.
fn check_tone(what: &str, path: Result<PathBuf, String>, expect_hz: f64) -> Result<(), String> {
    let path = path?;
    let (samples, rate) = read_wav(&path)?;
    let heard = listen(&samples, rate).map_err(|e| format!("{what}: {e}"))?;
    let off = (heard.peak_hz - expect_hz).abs() / expect_hz;
    // The call lasts 4 s: sound that stops well before means a direction died mid-call.
    if off > 0.05 || heard.share < 0.5 || heard.seconds < 1.5 {
        return Err(format!(
            "{what}: expected a {expect_hz} Hz tone, heard {heard:?} ({}; {rate} Hz)",
            path.display()
        ));
    }
    eprintln!("{what}: {heard:?}");
    Ok(())
}

fn registered(server: &Server, users: &[&str]) -> bool {
    let (status, body) = server.get("/api/v1/registrations");
    let regs: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    status == 200
        && users.iter().all(|u| {
            regs.as_array()
                .is_some_and(|a| a.iter().any(|r| r["user"] == *u))
        })
}

#[test]
fn baresip_pcmu_calls_baresip_opus_through_the_transcoder() {
    let Some(modules) = baresip_modules() else {
        eprintln!(
            "SKIPPED: baresip or one of its modules ({}) is not installed \
             (scripts/install-peers.sh installs it)",
            MODULES.join(", ")
        );
        return;
    };
    let server = Server::configure("baresip-calls", "");
    let csv = server.dir.join("users.csv");
    std::fs::write(
        &csv,
        "user,password,number,channels\nalice,wonder,200,\nbob,builder,201,\n",
    )
    .expect("csv");
    let ports = 48000 + (std::process::id() % 8) * 100;
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

    let mut bob = Phone::start(
        "bob",
        &modules,
        &server.dir,
        "bob",
        "builder",
        server.port,
        "audio_codecs=opus/48000/2;answermode=auto",
        BOB_HZ,
    );
    let mut alice = Phone::start(
        "alice",
        &modules,
        &server.dir,
        "alice",
        "wonder",
        server.port,
        "audio_codecs=PCMU/8000/1",
        ALICE_HZ,
    );
    let logs = |alice: &Phone, bob: &Phone| {
        format!(
            "{}{}----- mgw log -----\n{}",
            alice.log(),
            bob.log(),
            server.log()
        )
    };

    let deadline = Instant::now() + Duration::from_secs(20);
    while !registered(&server, &["alice", "bob"]) {
        assert!(
            Instant::now() < deadline,
            "alice and bob did not both register within 20 s: {}\n{}",
            server.get("/api/v1/registrations").1,
            logs(&alice, &bob)
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    let call = alice
        .dial("201")
        .and_then(|_| bob.event("CALL_ESTABLISHED", Duration::from_secs(5)));
    if let Err(e) = call {
        panic!("the call was not established: {e}\n{}", logs(&alice, &bob));
    }
    std::thread::sleep(TALK);
    let hangup = alice
        .hang_up()
        .and_then(|_| bob.event("CALL_CLOSED", Duration::from_secs(10)));
    if let Err(e) = hangup {
        panic!("hanging up failed: {e}\n{}", logs(&alice, &bob));
    }
    alice.quit();
    bob.quit();

    let mut cdrs = Value::Null;
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        let (status, v) = server.json("t", "GET", "/api/v1/cdrs", "");
        assert_eq!(status, 200, "{v}");
        cdrs = v;
        if cdrs.as_array().is_some_and(|a| !a.is_empty()) {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }

    let sessions = |server: &Server| {
        server.get("/metrics").1.lines().find_map(|l| {
            l.strip_prefix("mgw_media_sessions ")
                .and_then(|v| v.trim().parse::<u64>().ok())
        })
    };
    let mut left = sessions(&server);
    while left != Some(0) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        left = sessions(&server);
    }

    let mut problems = Vec::new();
    if left != Some(0) {
        problems.push(format!("media sessions left after the call: {left:?}"));
    }
    for check in [
        check_tone("Bob heard", bob.recording("dec"), ALICE_HZ),
        check_tone("Alice heard", alice.recording("dec"), BOB_HZ),
        // Had a phone not sent its tone, the checks above would blame mgw.
        check_tone("Alice sent", alice.recording("enc"), ALICE_HZ),
        check_tone("Bob sent", bob.recording("enc"), BOB_HZ),
    ] {
        if let Err(e) = check {
            problems.push(e);
        }
    }
    match cdrs.as_array().map(Vec::as_slice) {
        Some([r]) => {
            let expect = [
                ("status", serde_json::json!(200)),
                ("caller", serde_json::json!("200")),
                ("callee", serde_json::json!("201")),
                ("codec_caller", serde_json::json!("PCMU")),
                ("codec_callee", serde_json::json!("opus")),
            ];
            for (key, want) in expect {
                if r[key] != want {
                    problems.push(format!("CDR {key} = {}, expected {want}", r[key]));
                }
            }
            // 4 s of 20 ms packets is 200 each way; allow for set-up and tear-down.
            for key in ["packets_from_caller", "packets_from_callee"] {
                if r[key].as_i64().unwrap_or(0) < 150 {
                    problems.push(format!("CDR {key} = {}, expected >= 150", r[key]));
                }
            }
        }
        _ => problems.push(format!("expected one call record, got {cdrs}")),
    }
    assert!(
        problems.is_empty(),
        "{}\nCDRs: {cdrs}\n{}",
        problems.join("\n"),
        logs(&alice, &bob)
    );
}

/// Real phones to the simulated hardware: an opus baresip calls the PSTN test number that
/// plays 1 kHz (opus <-> A-law over the simulated E1), a PCMU baresip calls a DECT handset that
/// echoes (PCMU <-> G.722 on the simulated base). Each recording must hold the far end's sound.
#[test]
fn baresip_calls_the_pstn_and_a_dect_handset() {
    let Some(modules) = baresip_modules() else {
        eprintln!("SKIPPED: baresip or one of its modules is not installed");
        return;
    };
    let server = Server::configure("baresip-lines", "");
    let csv = server.dir.join("users.csv");
    std::fs::write(
        &csv,
        "user,password,number,channels\ncarol,sing,202,\ndave,dig,203,\n",
    )
    .expect("csv");
    let ports = 48800 + (std::process::id() % 8) * 100;
    let config = std::fs::read_to_string(&server.config).expect("config");
    std::fs::write(
        &server.config,
        format!(
            "{config}[accounts]\nimport_csv = \"{}\"\n[media]\nbind = \"127.0.0.1\"\n\
             rtp_ports = \"{ports}-{}\"\n\
             [[isdn]]\nname = \"pri1\"\nkind = \"e1-pri\"\nsimulated = true\nprefix = \"0\"\n\
             [[dect]]\nname = \"base1\"\nsimulated = true\n\
             handsets = [{{ ipui = \"00077A1B2C\", number = \"300\" }}]\n",
            csv.display(),
            ports + 99
        ),
    )
    .expect("config");
    let server = server.start();
    let mut problems = Vec::new();
    for (user, password, codecs, sends, dial, expect, what) in [
        (
            "carol",
            "sing",
            "audio_codecs=opus/48000/2",
            BOB_HZ,
            "05551004",
            ALICE_HZ,
            "the PSTN's 1 kHz",
        ),
        (
            "dave",
            "dig",
            "audio_codecs=PCMU/8000/1",
            BOB_HZ,
            "300",
            BOB_HZ,
            "the handset's echo",
        ),
    ] {
        let mut phone = Phone::start(
            user,
            &modules,
            &server.dir,
            user,
            password,
            server.port,
            codecs,
            sends,
        );
        let deadline = Instant::now() + Duration::from_secs(20);
        while !registered(&server, &[user]) {
            assert!(
                Instant::now() < deadline,
                "{user} did not register: {}",
                phone.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        if let Err(e) = phone.dial(dial) {
            panic!(
                "{user} -> {dial} not established: {e}\n{}\n{}",
                phone.log(),
                server.log()
            );
        }
        std::thread::sleep(TALK);
        if let Err(e) = phone.hang_up() {
            panic!("{user}: hanging up failed: {e}\n{}", phone.log());
        }
        phone.quit();
        if let Err(e) = check_tone(
            &format!("{user} heard {what}"),
            phone.recording("dec"),
            expect,
        ) {
            problems.push(format!("{e}\n{}", phone.log()));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// The tone check itself: it must find a tone after silence, and reject a recording where the
/// expected tone is drowned by another one.
#[test]
fn listen_finds_the_dominant_tone() {
    let tone = |hz: f64, amp: f64, i: usize| {
        amp * (2.0 * std::f64::consts::PI * hz * i as f64 / 8000.0).sin()
    };
    let mut samples = vec![0i16; 4000];
    samples.extend((0..24_000).map(|i| tone(523.0, 8000.0, i) as i16));
    let heard = listen(&samples, 8000).expect("a tone");
    assert!((heard.peak_hz - 523.0).abs() < 3.0, "{heard:?}");
    assert!(heard.share > 0.9, "{heard:?}");

    let mixed: Vec<i16> = (0..24_000)
        .map(|i| (tone(523.0, 3000.0, i) + tone(1700.0, 6000.0, i)) as i16)
        .collect();
    let heard = listen(&mixed, 8000).expect("a tone");
    assert!((heard.peak_hz - 1700.0).abs() < 5.0, "{heard:?}");
    assert!(heard.share < 0.9, "{heard:?}");

    assert!(listen(&[0i16; 16_000], 8000).is_err(), "silence is no tone");
}
