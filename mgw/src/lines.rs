//! The line host: one thread that runs every configured line driver (ISDN trunks, DECT base
//! stations) with its interworking function, on real loopback sockets. Each driver gets a SIP
//! socket (the switch knows it as a peer) and one RTP socket per voice channel; the thread
//! sleeps in poll(2) until a socket is readable or the earliest deadline of a driver (its line
//! clock ticks every 20 ms during calls).

use std::io::ErrorKind;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use mgw_core::call::peer::Peer;
use mgw_drivers::iwf::gateway::{LineGateway, LineGatewayConfig};
use mgw_drivers::{Driver, DriverStatus, SimCommand};

/// What the admin API reads of a driver.
#[derive(Clone, Debug)]
pub struct LineStatus {
    pub name: String,
    pub status: DriverStatus,
    /// The SIP address the switch knows the driver by.
    pub sip: SocketAddr,
    pub numbers: Vec<String>,
    /// The last signalling messages (ISDN: D-channel frames), oldest first.
    pub signalling: Vec<String>,
}

type Reply = Sender<Result<(), String>>;

/// A request to the line thread from another thread (the admin API).
enum Control {
    Simulate(String, SimCommand, Reply),
}

/// A driver whose sockets are bound, not yet running.
pub struct PreparedLine {
    driver: Box<dyn Driver>,
    sip: UdpSocket,
    rtp: Vec<UdpSocket>,
}

impl PreparedLine {
    /// Binds the driver's sockets on `ip` (the switch's own address, so the peer is local).
    pub fn bind(
        driver: Box<dyn Driver>,
        ip: std::net::IpAddr,
        channels: u32,
    ) -> Result<PreparedLine, String> {
        let name = driver.name().to_string();
        let bind = || {
            UdpSocket::bind(SocketAddr::new(ip, 0))
                .map_err(|e| format!("line {name}: cannot bind a UDP socket on {ip}: {e}"))
        };
        let sip = bind()?;
        let rtp = (0..channels)
            .map(|_| bind())
            .collect::<Result<Vec<_>, _>>()?;
        Ok(PreparedLine { driver, sip, rtp })
    }

    /// The switch's view of this driver.
    pub fn peer(&self) -> Result<Peer, String> {
        let addr = self.sip.local_addr().map_err(|e| e.to_string())?;
        // No call limit at the switch: the driver refuses a call it has no channel for with
        // its own cause (34 on an ISDN line), which the caller should hear rather than the
        // switch's generic 503.
        let mut p = Peer::new(self.driver.name(), addr, None);
        p.numbers = self.driver.numbers();
        Ok(p)
    }
}

/// The running line thread.
pub struct Lines {
    thread: Option<JoinHandle<()>>,
    stop: Arc<AtomicBool>,
    control: Sender<Control>,
    status: Arc<Mutex<Vec<LineStatus>>>,
}

impl Lines {
    /// Starts the thread. `switch` is the SIP address of the call switch, `domain` its domain.
    pub fn start(
        prepared: Vec<PreparedLine>,
        switch: SocketAddr,
        domain: &str,
    ) -> Result<Lines, String> {
        let now = Instant::now();
        let mut lines = Vec::new();
        for (i, p) in prepared.into_iter().enumerate() {
            let sip_addr = p.sip.local_addr().map_err(|e| e.to_string())?;
            let rtp_addrs = p
                .rtp
                .iter()
                .map(|s| s.local_addr().map_err(|e| e.to_string()))
                .collect::<Result<Vec<_>, _>>()?;
            for s in std::iter::once(&p.sip).chain(&p.rtp) {
                s.set_nonblocking(true).map_err(|e| e.to_string())?;
            }
            let gateway = LineGateway::new(
                p.driver,
                LineGatewayConfig {
                    sip: sip_addr,
                    switch,
                    domain: domain.to_string(),
                    rtp: rtp_addrs,
                },
                random_seed() ^ i as u64,
                now,
            );
            lines.push(Line {
                gateway,
                sip: p.sip,
                rtp: p.rtp,
                sip_addr,
            });
        }
        // The first snapshot before the thread runs: the API knows the lines from the start.
        let status = Arc::new(Mutex::new(snapshot(&lines)));
        let stop = Arc::new(AtomicBool::new(false));
        let (control, inbox) = mpsc::channel();
        let thread = {
            let status = status.clone();
            let stop = stop.clone();
            std::thread::Builder::new()
                .name("mgw-lines".into())
                .spawn(move || run(lines, inbox, status, stop))
                .map_err(|e| format!("cannot start the line thread: {e}"))?
        };
        Ok(Lines {
            thread: Some(thread),
            stop,
            control,
            status,
        })
    }

    /// A cloneable handle for the admin API.
    pub fn handle(&self) -> LinesHandle {
        LinesHandle {
            control: self.control.clone(),
            status: self.status.clone(),
        }
    }

    pub fn shutdown(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Lines {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// What the admin API holds of the line thread.
#[derive(Clone)]
pub struct LinesHandle {
    control: Sender<Control>,
    status: Arc<Mutex<Vec<LineStatus>>>,
}

impl LinesHandle {
    /// A handle with no lines behind it (none configured): lists nothing, simulates nothing.
    pub fn empty() -> LinesHandle {
        let (control, _) = mpsc::channel();
        LinesHandle {
            control,
            status: Arc::new(Mutex::new(Vec::new())),
        }
    }

    pub fn status(&self) -> Vec<LineStatus> {
        self.status
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub fn simulate(&self, driver: &str, command: SimCommand) -> Result<(), String> {
        let (tx, rx) = mpsc::channel();
        self.control
            .send(Control::Simulate(driver.to_string(), command, tx))
            .map_err(|_| "the line thread has stopped".to_string())?;
        rx.recv_timeout(Duration::from_secs(5))
            .map_err(|_| "the line thread did not answer".to_string())?
    }
}

struct Line {
    gateway: LineGateway,
    sip: UdpSocket,
    rtp: Vec<UdpSocket>,
    sip_addr: SocketAddr,
}

/// D-channel messages kept in the status the admin API shows.
const SIGNALLING_SHOWN: usize = 50;

/// Longest sleep: the stop flag and control requests are looked at this often.
const IDLE: Duration = Duration::from_millis(100);

fn run(
    mut lines: Vec<Line>,
    inbox: Receiver<Control>,
    status: Arc<Mutex<Vec<LineStatus>>>,
    stop: Arc<AtomicBool>,
) {
    let mut buf = vec![0u8; 65_536];
    let mut last_status = Instant::now() - IDLE;
    while !stop.load(Ordering::Relaxed) {
        let now = Instant::now();
        while let Ok(c) = inbox.try_recv() {
            match c {
                Control::Simulate(name, cmd, reply) => {
                    let r = match lines.iter_mut().find(|l| l.gateway.name() == name) {
                        Some(l) => l.gateway.simulate(cmd, now),
                        None => Err(format!("no line driver is named {name}")),
                    };
                    let _ = reply.send(r);
                }
            }
        }
        for l in &mut lines {
            if l.gateway.poll_timeout().is_some_and(|t| t <= now) {
                l.gateway.handle_timeout(now);
            }
            flush(l);
        }
        if now.duration_since(last_status) >= IDLE {
            last_status = now;
            *status.lock().unwrap_or_else(PoisonError::into_inner) = snapshot(&lines);
        }
        let deadline = lines
            .iter()
            .filter_map(|l| l.gateway.poll_timeout())
            .min()
            .map_or(IDLE, |d| {
                d.saturating_duration_since(Instant::now()).min(IDLE)
            });
        wait(&lines, deadline);
        let now = Instant::now();
        for l in &mut lines {
            loop {
                match l.sip.recv_from(&mut buf) {
                    Ok((n, from)) => l.gateway.on_sip(&buf[..n], from, now),
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) => {
                        log::debug!("line {}: SIP receive: {e}", l.gateway.name());
                        break;
                    }
                }
            }
            for slot in 0..l.rtp.len() {
                loop {
                    match l.rtp[slot].recv_from(&mut buf) {
                        Ok((n, from)) => l.gateway.on_rtp(slot, &mut buf[..n], from, now),
                        Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                        Err(_) => break,
                    }
                }
            }
            flush(l);
        }
    }
    let now = Instant::now();
    for l in &mut lines {
        l.gateway.shutdown(now);
        flush(l);
    }
}

fn snapshot(lines: &[Line]) -> Vec<LineStatus> {
    lines
        .iter()
        .map(|l| LineStatus {
            name: l.gateway.name().to_string(),
            status: l.gateway.status(),
            sip: l.sip_addr,
            numbers: l.gateway.numbers(),
            signalling: l.gateway.signalling_log(SIGNALLING_SHOWN),
        })
        .collect()
}

fn flush(l: &mut Line) {
    while let Some(t) = l.gateway.poll_transmit() {
        let socket = match t.slot {
            None => &l.sip,
            Some(i) => match l.rtp.get(i) {
                Some(s) => s,
                None => continue,
            },
        };
        if let Err(e) = socket.send_to(&t.bytes, t.to) {
            log::debug!("line {}: send to {}: {e}", l.gateway.name(), t.to);
        }
    }
}

/// Sleeps until a socket of any line is readable or `timeout` passes.
fn wait(lines: &[Line], timeout: Duration) {
    let mut fds: Vec<libc::pollfd> = lines
        .iter()
        .flat_map(|l| std::iter::once(&l.sip).chain(&l.rtp))
        .map(|s| libc::pollfd {
            fd: s.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    // Rounded up: a deadline under a millisecond away must not turn into a busy loop.
    let ms = timeout.as_micros().div_ceil(1000).min(i32::MAX as u128) as i32;
    // SAFETY: `fds` is a live, exclusively borrowed array of `fds.len()` pollfd structs for
    // the whole call; poll(2) only writes their `revents`. The descriptors belong to sockets
    // that outlive the call. Exercised by every test that runs a line driver.
    unsafe {
        libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, ms);
    }
}

fn status_json(l: &LineStatus) -> serde_json::Value {
    serde_json::json!({
        "name": l.name,
        "kind": l.status.kind,
        "up": l.status.up,
        "channels_busy": l.status.channels_busy,
        "channels_total": l.status.channels_total,
        "detail": l.status.detail,
        "sip": l.sip.to_string(),
        "numbers": l.numbers,
        "signalling": l.signalling,
    })
}

/// `GET /api/v1/drivers`, `GET /api/v1/drivers/{name}`, `POST /api/v1/drivers/{name}/simulate`.
pub fn routes(r: &mut crate::admin::Router, lines: LinesHandle) {
    use crate::admin::{ApiError, Json, Role};
    let all = lines.clone();
    r.get("/api/v1/drivers", Role::Viewer, move |_| {
        let list: Vec<_> = all.status().iter().map(status_json).collect();
        Ok(Json::ok(serde_json::Value::Array(list)))
    });
    let one = lines.clone();
    r.get("/api/v1/drivers/{name}", Role::Viewer, move |req| {
        let name = req.param("name")?;
        one.status()
            .iter()
            .find(|l| l.name == name)
            .map(|l| Json::ok(status_json(l)))
            .ok_or_else(|| {
                ApiError::not_found(format!("no line driver is named {name}"))
                    .with_fix("GET /api/v1/drivers lists them")
            })
    });
    r.post("/api/v1/drivers/{name}/simulate", Role::Admin, move |req| {
        let name = req.param("name")?.to_string();
        if !lines.status().iter().any(|l| l.name == name) {
            return Err(
                ApiError::not_found(format!("no line driver is named {name}"))
                    .with_fix("GET /api/v1/drivers lists them"),
            );
        }
        let cmd: SimCommand = req.json()?;
        lines
            .simulate(&name, cmd)
            .map(|()| Json::ok(serde_json::json!({"ok": true})))
            .map_err(|e| ApiError::new(409, e))
    });
}

/// The drivers the configuration asks for, with their sockets bound on `ip`.
pub fn prepare(
    config: &crate::config::Config,
    ip: std::net::IpAddr,
) -> Result<Vec<PreparedLine>, String> {
    use mgw_drivers::dect::DectDriver;
    use mgw_drivers::isdn::{InterfaceKind, IsdnTrunk, IsdnTrunkConfig};
    use mgw_drivers::pstn::ExchangeConfig;
    let now = Instant::now();
    let mut out = Vec::new();
    for l in &config.isdn {
        let interface = match l.kind {
            crate::config::IsdnKind::E1Pri => InterfaceKind::E1,
            crate::config::IsdnKind::T1Pri => InterfaceKind::T1,
            crate::config::IsdnKind::Bri => InterfaceKind::Bri,
        };
        let mut c = IsdnTrunkConfig::new(&l.name, interface, ExchangeConfig::demo());
        c.seed = l.seed;
        c.timers.call.t309 = (l.t309_s > 0).then(|| Duration::from_secs(l.t309_s));
        let channels = interface.b_channels().len() as u32;
        let trunk = IsdnTrunk::new(c, now);
        out.push(PreparedLine::bind(Box::new(trunk), ip, channels)?);
    }
    for d in &config.dect {
        let c = dect_config(d);
        let driver = DectDriver::new(c, now).map_err(|e| format!("[[dect]] {}: {e}", d.name))?;
        out.push(PreparedLine::bind(Box::new(driver), ip, d.channels)?);
    }
    Ok(out)
}

/// The DECT driver's configuration for a `[[dect]]` section: one base station named after the
/// section, its handsets subscribed to it.
pub fn dect_config(d: &crate::config::DectConfig) -> mgw_drivers::dect::DectConfig {
    use mgw_drivers::dect::{BaseConfig, DectConfig, HandsetAudio, HandsetConfig};
    let mut c = DectConfig::new(&d.name);
    c.seed = d.seed;
    // The RFPI is derived from the name so that it stays the same across restarts.
    let rfpi = format!("{:010X}", fnv(&d.name) & 0xff_ffff_ffff);
    c.bases
        .push(BaseConfig::new(&d.name, &rfpi, d.channels, d.wideband));
    for h in &d.handsets {
        let name = h
            .name
            .clone()
            .unwrap_or_else(|| format!("Handset {}", h.number));
        let mut hc = HandsetConfig::new(&h.ipui, &d.name, &h.number, &name);
        hc.auto_answer = h.auto_answer.then_some(h.answer_after_ms);
        hc.audio = match h.audio.as_deref() {
            Some("silence") => HandsetAudio::Silence,
            Some(t) if t.starts_with("tone:") => HandsetAudio::Tone {
                hz: t[5..].parse().unwrap_or(1004),
            },
            _ => HandsetAudio::Echo,
        };
        c.handsets.push(hc);
    }
    c
}

/// FNV-1a: a stable 64-bit digest of a name.
fn fnv(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// OS randomness for the user agents' identifiers: Call-IDs and tags must differ between runs.
pub(crate) fn random_seed() -> u64 {
    use std::io::Read;
    let mut b = [0u8; 8];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        let _ = f.read_exact(&mut b);
    }
    u64::from_le_bytes(b) ^ u64::from(std::process::id())
}
