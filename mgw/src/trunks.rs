//! Upstream SIP trunks (seed 004): the registration client of each `[[trunk]]` on a thread of
//! its own, and the peers the switch uses to place calls through them and to recognise calls
//! from them.
//!
//! The thread resolves each server (RFC 3263, `resolve`), registers with the core user agent
//! (digest, refresh, backoff; `mgw_core::ua`) from a socket of its own, and writes the resolved
//! addresses into the trunk's peer, which the SIP workers read: calls go to the first address,
//! requests from any of them are the trunk's. The Contact registered is the switch's own
//! listener, so calls from the provider arrive where every call does.

use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use mgw_core::call::peer::{Peer, Peers};
use mgw_core::directory::ChannelGate;
use mgw_core::endpoint::Origin;
use mgw_core::registrar::Transport as PeerTransport;
use mgw_core::ua::{
    Event, RegistrationConfig, RegistrationId, RegistrationState, UaConfig, UserAgent,
};

use crate::config::{Config, TrunkConfig};

/// How long one nameserver gets to answer.
const DNS_TIMEOUT: Duration = Duration::from_secs(2);
/// A failed resolution is tried again after this long.
const DNS_RETRY: Duration = Duration::from_secs(30);
/// A successful one is refreshed after this long (addresses may change; the registration
/// moves only when the first address does).
const DNS_REFRESH: Duration = Duration::from_secs(300);
/// How long shutdown waits for the registrars to confirm the unregistrations.
const UNREGISTER_WAIT: Duration = Duration::from_secs(2);
const IDLE: Duration = Duration::from_millis(100);

/// What `GET /api/v1/trunks` shows of a trunk.
#[derive(Clone, Debug, serde::Serialize)]
pub struct TrunkStatus {
    /// The entry number (seed 004): the trunk's place in configuration order, from 1; the API
    /// and `mgw trunk` take it where they take a name.
    pub entry: usize,
    pub name: String,
    /// unregistered | registering | registered | failed | disabled
    pub state: &'static str,
    /// Why it is not registered, in words ("403 Forbidden from 192.0.2.1:5060", "DNS: no such
    /// host sip.example.invalid"); `null` when registered.
    pub reason: Option<String>,
    pub server: String,
    pub transport: &'static str,
    pub register: bool,
    /// The server's addresses as resolved (calls go to the first).
    pub addresses: Vec<String>,
    /// Seconds until the registration runs out.
    pub expires_in: Option<u64>,
    pub prefix: Option<String>,
    pub max_calls: Option<u32>,
    pub calls: u32,
}

type Reply = Sender<Result<(), String>>;

enum Control {
    Connect(String, Reply),
    Disconnect(String, Reply),
    /// Add a trunk, or replace the one of that name (it unregisters first).
    Upsert(Box<TrunkConfig>, Reply),
    Remove(String, Reply),
}

/// The switch's listeners, as registered in Contact.
#[derive(Clone, Copy, Debug, Default)]
pub struct Contacts {
    pub udp4: Option<SocketAddr>,
    pub udp6: Option<SocketAddr>,
    pub tcp4: Option<SocketAddr>,
    pub tcp6: Option<SocketAddr>,
}

impl Contacts {
    fn for_server(&self, server: SocketAddr, tcp: bool) -> Option<SocketAddr> {
        match (tcp, server.is_ipv6()) {
            (false, false) => self.udp4.or(self.udp6),
            (false, true) => self.udp6.or(self.udp4),
            (true, false) => self.tcp4.or(self.tcp6),
            (true, true) => self.tcp6.or(self.tcp4),
        }
    }
}

/// Builds the trunks' peers for the switch (before it starts) and the runtime that keeps
/// them resolved and registered (after).
/// A trunk's configuration with what it shares with its peer: the resolved addresses and
/// the call slots.
type TrunkParts = (TrunkConfig, Arc<RwLock<Vec<SocketAddr>>>, Arc<ChannelGate>);

pub struct PreparedTrunks {
    trunks: Vec<TrunkParts>,
}

impl PreparedTrunks {
    pub fn new(config: &Config) -> (PreparedTrunks, Vec<Peer>) {
        let mut peers = Vec::new();
        let mut trunks = Vec::new();
        for t in &config.trunks {
            let p = peer_of(t, None);
            trunks.push((t.clone(), p.resolved.clone(), p.calls.clone()));
            peers.push(p);
        }
        (PreparedTrunks { trunks }, peers)
    }

    /// Starts the trunk thread; `contacts` are the switch's listeners, `peers` the switch's
    /// peer table, which the thread updates as trunks are added, changed or removed.
    pub fn start(
        self,
        contacts: Contacts,
        user_agent: &str,
        timers: mgw_core::transaction::TimerConfig,
        peers: Peers,
    ) -> Result<Trunks, String> {
        let status = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (control, inbox) = mpsc::channel();
        let mut trunks = Vec::new();
        let configs = Arc::new(Mutex::new(
            self.trunks.iter().map(|t| t.0.clone()).collect::<Vec<_>>(),
        ));
        for (cfg, resolved, calls) in self.trunks {
            trunks.push(Trunk::new(cfg, resolved, calls, user_agent, timers));
        }
        let host = Host {
            contacts,
            user_agent: user_agent.to_string(),
            timers,
            peers,
        };
        let thread = {
            let status = status.clone();
            let stop = stop.clone();
            std::thread::Builder::new()
                .name("mgw-trunks".into())
                .spawn(move || run(trunks, host, inbox, status, stop))
                .map_err(|e| format!("cannot start the trunk thread: {e}"))?
        };
        Ok(Trunks {
            thread: Some(thread),
            stop,
            handle: TrunksHandle {
                control,
                status,
                configs,
            },
        })
    }
}

/// What the trunk thread needs to build trunks at run time.
struct Host {
    contacts: Contacts,
    user_agent: String,
    timers: mgw_core::transaction::TimerConfig,
    peers: Peers,
}

/// The switch's view of a trunk. `calls`: the slots of the trunk it replaces, so calls in
/// progress stay counted.
fn peer_of(t: &TrunkConfig, calls: Option<Arc<ChannelGate>>) -> Peer {
    // A literal address is known now; a name is resolved by the trunk thread.
    let addr = t
        .server
        .ip()
        .map_or(SocketAddr::from(([0, 0, 0, 0], 0)), |ip| {
            SocketAddr::new(ip, t.server.port)
        });
    let mut p = Peer::new(&t.name, addr, t.max_calls);
    if let Some(c) = calls {
        c.set_limit(t.max_calls);
        p.calls = c;
    }
    p.transport = match t.transport {
        crate::config::Transport::Tcp => PeerTransport::Tcp,
        crate::config::Transport::Udp => PeerTransport::Udp,
    };
    p.domain = domain_of(t);
    p.from = t.aor();
    p.prefix = t.prefix.clone();
    p.local_only = true;
    p.credentials = t
        .user
        .clone()
        .zip(t.password.clone().or_else(|| Some(String::new())));
    p
}

impl PreparedTrunks {}

/// The host part of the trunk's SIP address: request URIs towards it use this domain
/// (`sip:NUMBER@upstream.example`).
fn domain_of(t: &TrunkConfig) -> String {
    t.aor()
        .and_then(|a| {
            mgw_core::sip::Uri::parse(&a).ok().map(|u| match u.port {
                Some(p) => format!("{}:{p}", u.host),
                None => u.host.to_string(),
            })
        })
        .unwrap_or_else(|| {
            if t.server.host.contains(':') {
                format!("[{}]", t.server.host)
            } else {
                t.server.host.clone()
            }
        })
}

/// The running trunk thread.
pub struct Trunks {
    thread: Option<JoinHandle<()>>,
    stop: Arc<AtomicBool>,
    handle: TrunksHandle,
}

impl Trunks {
    pub fn handle(&self) -> TrunksHandle {
        self.handle.clone()
    }

    /// Unregisters every trunk (waiting briefly for the registrars) and stops.
    pub fn shutdown(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Trunks {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[derive(Clone)]
pub struct TrunksHandle {
    control: Sender<Control>,
    status: Arc<Mutex<Vec<TrunkStatus>>>,
    /// The trunks' configurations as they are now, for checking a change against the others.
    configs: Arc<Mutex<Vec<TrunkConfig>>>,
}

impl TrunksHandle {
    pub fn empty() -> TrunksHandle {
        let (control, _) = mpsc::channel();
        TrunksHandle {
            control,
            status: Arc::new(Mutex::new(Vec::new())),
            configs: Arc::new(Mutex::new(Vec::new())),
        }
    }

    pub fn configs(&self) -> Vec<TrunkConfig> {
        self.configs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Adds or replaces a trunk at run time (already validated and stored).
    pub fn upsert(&self, cfg: TrunkConfig) -> Result<(), String> {
        {
            let mut c = self.configs.lock().unwrap_or_else(PoisonError::into_inner);
            c.retain(|t| t.name != cfg.name);
            c.push(cfg.clone());
        }
        self.ask(|r| Control::Upsert(Box::new(cfg), r))
    }

    pub fn remove(&self, name: &str) -> Result<(), String> {
        self.configs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|t| t.name != name);
        self.ask(|r| Control::Remove(name.to_string(), r))
    }

    pub fn status(&self) -> Vec<TrunkStatus> {
        self.status
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The name of the trunk `key` names: a trunk's name, or else its entry number.
    pub fn resolve(&self, key: &str) -> String {
        let list = self.status();
        if list.iter().any(|t| t.name == key) {
            return key.to_string();
        }
        key.parse::<usize>()
            .ok()
            .and_then(|n| list.into_iter().find(|t| t.entry == n))
            .map_or_else(|| key.to_string(), |t| t.name)
    }

    fn ask(&self, make: impl FnOnce(Reply) -> Control) -> Result<(), String> {
        let (tx, rx) = mpsc::channel();
        self.control
            .send(make(tx))
            .map_err(|_| "no trunk is configured".to_string())?;
        rx.recv_timeout(Duration::from_secs(5))
            .map_err(|_| "the trunk thread did not answer".to_string())?
    }

    /// Registers (again) by hand: after a 403, or after a disconnect.
    pub fn connect(&self, name: &str) -> Result<(), String> {
        self.ask(|r| Control::Connect(name.to_string(), r))
    }

    /// Unregisters (REGISTER with expires=0) and stays so until connected again.
    pub fn disconnect(&self, name: &str) -> Result<(), String> {
        self.ask(|r| Control::Disconnect(name.to_string(), r))
    }
}

/// One trunk on the trunk thread.
struct Trunk {
    cfg: TrunkConfig,
    resolved: Arc<RwLock<Vec<SocketAddr>>>,
    calls: Arc<ChannelGate>,
    ua: UserAgent<SocketAddr>,
    reg: Option<RegistrationId>,
    /// The registrar's address, once resolved.
    server: Option<SocketAddr>,
    udp: Option<UdpSocket>,
    tcp: Option<TcpStream>,
    tcp_in: Vec<u8>,
    /// When to resolve again after a DNS failure.
    resolve_at: Option<Instant>,
    dns_failure: Option<String>,
    /// Disconnected by hand: stays down until connected.
    manual_off: bool,
}

impl Trunk {
    fn new(
        cfg: TrunkConfig,
        resolved: Arc<RwLock<Vec<SocketAddr>>>,
        calls: Arc<ChannelGate>,
        user_agent: &str,
        timers: mgw_core::transaction::TimerConfig,
    ) -> Trunk {
        let ua = UserAgent::new(UaConfig {
            user_agent: user_agent.to_string(),
            // Call-IDs must differ between runs: a registrar refuses a reused one whose CSeq
            // starts at 1 again.
            seed: crate::lines::random_seed(),
            timers,
            ..UaConfig::default()
        });
        Trunk {
            cfg,
            resolved,
            calls,
            ua,
            reg: None,
            server: None,
            udp: None,
            tcp: None,
            tcp_in: Vec::new(),
            resolve_at: Some(Instant::now()),
            dns_failure: None,
            manual_off: false,
        }
    }

    fn transport(&self) -> PeerTransport {
        match self.cfg.transport {
            crate::config::Transport::Tcp => PeerTransport::Tcp,
            crate::config::Transport::Udp => PeerTransport::Udp,
        }
    }

    /// Resolves the server (and the outbound proxy); on success, sets up the registration.
    fn resolve(&mut self, contacts: Contacts, now: Instant) {
        self.resolve_at = None;
        let transport = match self.cfg.transport {
            crate::config::Transport::Tcp => mgw_core::dns::Transport::Tcp,
            crate::config::Transport::Udp => mgw_core::dns::Transport::Udp,
        };
        let hp = self.cfg.outbound_proxy.as_ref().unwrap_or(&self.cfg.server);
        // An explicit port in the config means no SRV lookup (RFC 3263 4.2); the config
        // always carries one, so SRV is asked only for names given without a port.
        let port = hp.port_given.then_some(hp.port);
        let found = crate::resolve::resolve(&hp.host, port, transport, None, DNS_TIMEOUT);
        let failure = match found {
            Ok(a) if !a.is_empty() => Ok(a),
            Ok(_) => Err(format!("DNS: {} has no address", hp.host)),
            Err(e) => Err(e.to_string()),
        };
        let addrs = match failure {
            Ok(a) => a,
            // A refresh that fails keeps the addresses that work.
            Err(e) if self.server.is_some() => {
                log::warn!(
                    "trunk {}: {e}; keeping the addresses resolved before",
                    self.cfg.name
                );
                self.resolve_at = Some(now + DNS_RETRY);
                return;
            }
            Err(e) => {
                log::warn!("trunk {}: {e}", self.cfg.name);
                self.dns_failure = Some(e);
                self.resolve_at = Some(now + DNS_RETRY);
                return;
            }
        };
        self.dns_failure = None;
        // Looked up again now and then: a provider moves its servers with DNS.
        self.resolve_at = Some(now + DNS_REFRESH);
        *self
            .resolved
            .write()
            .unwrap_or_else(PoisonError::into_inner) = addrs.clone();
        let server = addrs[0];
        if self.server == Some(server) && self.reg.is_some() {
            return;
        }
        if self.server.is_some() {
            // The server moved: sockets connected to the old one would keep talking to it.
            self.udp = None;
            self.tcp = None;
        }
        self.server = Some(server);
        log::info!(
            "trunk {}: {} is {}",
            self.cfg.name,
            hp.host,
            addrs
                .iter()
                .map(SocketAddr::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        );
        if !self.cfg.register {
            return;
        }
        let tcp = self.cfg.transport == crate::config::Transport::Tcp;
        let contact = contacts.for_server(server, tcp);
        let Some(contact) = contact else {
            self.dns_failure =
                Some("no SIP listener of the server's address family to register".into());
            return;
        };
        if let Err(e) = self.open_socket(server) {
            self.dns_failure = Some(e);
            self.resolve_at = Some(now + DNS_RETRY);
            return;
        }
        let via = self.local_addr().map(host_port);
        let aor = self.cfg.aor().unwrap_or_default();
        let user = self.cfg.user.clone().unwrap_or_default();
        let registrar = format!(
            "sip:{}",
            mgw_core::sip::Uri::parse(&aor)
                .ok()
                .map(|u| u.host.to_string())
                .unwrap_or_else(|| host_port(server))
        );
        let mut rc = RegistrationConfig::new(
            &registrar,
            &aor,
            &user,
            &host_port(contact),
            &user,
            self.cfg.password.as_deref().unwrap_or(""),
            server,
        );
        rc.expires = self.cfg.expires;
        rc.transport = self.transport();
        rc.via_host = via;
        match self.reg {
            Some(id) => {
                let _ = self.ua.reconfigure(id, rc, now);
            }
            None => {
                let id = self.ua.add_registration(rc);
                self.reg = Some(id);
                if !self.manual_off {
                    let _ = self.ua.connect(id, now);
                }
            }
        }
    }

    fn open_socket(&mut self, server: SocketAddr) -> Result<(), String> {
        let any: IpAddr = if server.is_ipv6() {
            IpAddr::from(std::net::Ipv6Addr::UNSPECIFIED)
        } else {
            IpAddr::from([0, 0, 0, 0])
        };
        match self.cfg.transport {
            crate::config::Transport::Udp => {
                if self.udp.is_none() {
                    let s = UdpSocket::bind(SocketAddr::new(any, 0))
                        .map_err(|e| format!("cannot open a UDP socket: {e}"))?;
                    // Bound to the server, the socket's local address is the one the server
                    // sees, which is what Via must name.
                    s.connect(server)
                        .map_err(|e| format!("cannot reach {server}: {e}"))?;
                    s.set_nonblocking(true).map_err(|e| e.to_string())?;
                    self.udp = Some(s);
                }
            }
            crate::config::Transport::Tcp => self.connect_tcp(server)?,
        }
        Ok(())
    }

    fn connect_tcp(&mut self, server: SocketAddr) -> Result<(), String> {
        if self.tcp.is_some() {
            return Ok(());
        }
        let s = TcpStream::connect_timeout(&server, Duration::from_secs(3))
            .map_err(|e| format!("TCP: cannot connect to {server}: {e}"))?;
        s.set_nonblocking(true).map_err(|e| e.to_string())?;
        let _ = s.set_nodelay(true);
        self.tcp = Some(s);
        self.tcp_in.clear();
        Ok(())
    }

    fn local_addr(&self) -> Option<SocketAddr> {
        match (&self.udp, &self.tcp) {
            (Some(u), _) => u.local_addr().ok(),
            (_, Some(t)) => t.local_addr().ok(),
            _ => None,
        }
    }

    fn send(&mut self, now: Instant) {
        while let Some(t) = self.ua.poll_transmit() {
            let r = match self.cfg.transport {
                crate::config::Transport::Udp => match &self.udp {
                    Some(s) => s.send(&t.bytes).map(|_| ()),
                    None => Ok(()),
                },
                crate::config::Transport::Tcp => {
                    if self.tcp.is_none() {
                        if let Err(e) = self.connect_tcp(t.to) {
                            if let Some(id) = self.reg {
                                let _ = self.ua.on_transport_error(id, &e, now);
                            }
                            continue;
                        }
                    }
                    match &mut self.tcp {
                        Some(s) => s.write_all(&t.bytes),
                        None => Ok(()),
                    }
                }
            };
            if let Err(e) = r {
                let reason = format!("cannot send to {}: {e}", t.to);
                log::debug!("trunk {}: {reason}", self.cfg.name);
                self.tcp = None;
                if let Some(id) = self.reg {
                    let _ = self.ua.on_transport_error(id, &reason, now);
                }
            }
        }
    }

    fn receive(&mut self, buf: &mut [u8], now: Instant) {
        let Some(server) = self.server else {
            return;
        };
        if let Some(s) = &self.udp {
            loop {
                match s.recv(buf) {
                    Ok(n) => {
                        let o = Origin {
                            reply_to: server,
                            source: server,
                            reliable: false,
                        };
                        self.ua.on_message(&buf[..n], o, now);
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    // ICMP port unreachable (RFC 3261 18.4: a transport error): the host is
                    // up and nothing listens on the port. Said at once, not after Timer F.
                    Err(e) if e.kind() == ErrorKind::ConnectionRefused => {
                        if let Some(id) = self.reg {
                            let reason = format!(
                                "ICMP port unreachable from {server}: nothing listens on that port"
                            );
                            let _ = self.ua.on_transport_error(id, &reason, now);
                        }
                        break;
                    }
                    // Other ICMP errors (host or network unreachable): the transaction's
                    // timeout says so in words.
                    Err(_) => break,
                }
            }
        }
        let mut closed = false;
        if let Some(s) = &mut self.tcp {
            loop {
                match s.read(buf) {
                    Ok(0) => {
                        closed = true;
                        break;
                    }
                    Ok(n) => self.tcp_in.extend_from_slice(&buf[..n]),
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(_) => {
                        closed = true;
                        break;
                    }
                }
            }
        }
        loop {
            let len = match mgw_core::sip::framing::frame(&self.tcp_in) {
                Ok(mgw_core::sip::framing::Frame::Message { len }) => len,
                Ok(mgw_core::sip::framing::Frame::KeepAlive { len, .. }) => {
                    self.tcp_in.drain(..len);
                    continue;
                }
                Ok(mgw_core::sip::framing::Frame::Incomplete) => break,
                Err(_) => {
                    // A stream that cannot be framed cannot be resynchronised.
                    closed = true;
                    break;
                }
            };
            let msg: Vec<u8> = self.tcp_in.drain(..len).collect();
            let o = Origin {
                reply_to: server,
                source: server,
                reliable: true,
            };
            self.ua.on_message(&msg, o, now);
        }
        if closed {
            self.tcp = None;
            self.tcp_in.clear();
        }
    }

    fn status(&self, now: Instant) -> TrunkStatus {
        let reg = self.reg.and_then(|id| self.ua.registration(id));
        let (state, expires_in) = match reg.map(|r| r.state()) {
            Some(RegistrationState::Registered { until }) => (
                "registered",
                Some(until.saturating_duration_since(now).as_secs()),
            ),
            Some(RegistrationState::Registering) => ("registering", None),
            Some(RegistrationState::Failed) => ("failed", None),
            Some(RegistrationState::Disabled) => ("disabled", None),
            Some(RegistrationState::Unregistered) => ("unregistered", None),
            None if self.dns_failure.is_some() => ("failed", None),
            None if !self.cfg.register => ("unregistered", None),
            None => ("registering", None),
        };
        let reason = match (&self.dns_failure, reg) {
            (Some(d), _) => Some(d.clone()),
            (None, _) if state == "registered" => None,
            (None, Some(r)) => r
                .last_failure()
                .map(str::to_string)
                .or_else(|| (state == "disabled").then(|| "disconnected by hand".to_string())),
            (None, None) if !self.cfg.register => {
                Some("does not register (register = false)".to_string())
            }
            (None, None) => None,
        };
        TrunkStatus {
            entry: 0,
            name: self.cfg.name.clone(),
            state,
            reason,
            server: self.cfg.server.to_string(),
            transport: match self.cfg.transport {
                crate::config::Transport::Tcp => "tcp",
                crate::config::Transport::Udp => "udp",
            },
            register: self.cfg.register,
            addresses: self
                .resolved
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .iter()
                .map(SocketAddr::to_string)
                .collect(),
            expires_in,
            prefix: self.cfg.prefix.clone(),
            max_calls: self.cfg.max_calls,
            calls: self.calls.busy(),
        }
    }

    fn poll_timeout(&self) -> Option<Instant> {
        [self.ua.poll_timeout(), self.resolve_at]
            .into_iter()
            .flatten()
            .min()
    }
}

/// Whether two configurations of a trunk register the same way.
fn same_registration(a: &TrunkConfig, b: &TrunkConfig) -> bool {
    a.server == b.server
        && a.transport == b.transport
        && a.register == b.register
        && a.address == b.address
        && a.user == b.user
        && a.password == b.password
        && a.expires == b.expires
        && a.outbound_proxy == b.outbound_proxy
}

fn host_port(a: SocketAddr) -> String {
    match a {
        SocketAddr::V4(v) => v.to_string(),
        SocketAddr::V6(v) => format!("[{}]:{}", v.ip(), v.port()),
    }
}

fn run(
    mut trunks: Vec<Trunk>,
    host: Host,
    inbox: Receiver<Control>,
    status: Arc<Mutex<Vec<TrunkStatus>>>,
    stop: Arc<AtomicBool>,
) {
    let mut buf = vec![0u8; 65_536];
    let contact = host.contacts;
    // Trunks removed or replaced, kept until their unregistration is answered.
    let mut retiring: Vec<(Trunk, Instant)> = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        let now = Instant::now();
        while let Ok(c) = inbox.try_recv() {
            let (name, on, reply) = match c {
                Control::Connect(n, r) => (n, true, r),
                Control::Disconnect(n, r) => (n, false, r),
                Control::Upsert(cfg, reply) => {
                    // Only the call side changed (prefix, limit): the registration stays up;
                    // unregistering and registering again the same Contact could race.
                    if let Some(t) = trunks
                        .iter_mut()
                        .find(|t| t.cfg.name == cfg.name && same_registration(&t.cfg, &cfg))
                    {
                        let peer = peer_of(&cfg, Some(t.calls.clone()));
                        *peer
                            .resolved
                            .write()
                            .unwrap_or_else(PoisonError::into_inner) = t
                            .resolved
                            .read()
                            .unwrap_or_else(PoisonError::into_inner)
                            .clone();
                        t.resolved = peer.resolved.clone();
                        t.cfg = *cfg;
                        host.peers.upsert(peer);
                        let _ = reply.send(Ok(()));
                        continue;
                    }
                    let old = trunks
                        .iter()
                        .position(|t| t.cfg.name == cfg.name)
                        .map(|i| trunks.remove(i));
                    let calls = old.as_ref().map(|t| t.calls.clone());
                    if let Some(mut t) = old {
                        t.ua.shutdown(now);
                        t.send(now);
                        retiring.push((t, now + UNREGISTER_WAIT));
                    }
                    let peer = peer_of(&cfg, calls);
                    let t = Trunk::new(
                        *cfg,
                        peer.resolved.clone(),
                        peer.calls.clone(),
                        &host.user_agent,
                        host.timers,
                    );
                    host.peers.upsert(peer);
                    trunks.push(t);
                    let _ = reply.send(Ok(()));
                    continue;
                }
                Control::Remove(name, reply) => {
                    let r = match trunks.iter().position(|t| t.cfg.name == name) {
                        Some(i) => {
                            let mut t = trunks.remove(i);
                            t.ua.shutdown(now);
                            t.send(now);
                            retiring.push((t, now + UNREGISTER_WAIT));
                            host.peers.remove(&name);
                            Ok(())
                        }
                        None => Err(format!("no trunk is named {name}")),
                    };
                    let _ = reply.send(r);
                    continue;
                }
            };
            let r = match trunks.iter_mut().find(|t| t.cfg.name == name) {
                None => Err(format!("no trunk is named {name}")),
                Some(t) => {
                    t.manual_off = !on;
                    match t.reg {
                        Some(id) if on => t.ua.connect(id, now).map_err(|e| e.to_string()),
                        Some(id) => t.ua.disconnect(id, now).map_err(|e| e.to_string()),
                        None if on => {
                            t.resolve_at = Some(now);
                            Ok(())
                        }
                        None if !t.cfg.register => {
                            Err(format!("trunk {name} does not register (register = false)"))
                        }
                        None => Ok(()),
                    }
                }
            };
            let _ = reply.send(r);
        }
        for t in &mut trunks {
            if t.resolve_at.is_some_and(|at| at <= now) {
                t.resolve(contact, now);
            }
            if t.ua.poll_timeout().is_some_and(|at| at <= now) {
                t.ua.handle_timeout(now);
            }
            while let Some(e) = t.ua.poll_event() {
                if let Event::Registration { state, .. } = e {
                    log::info!("trunk {}: {state:?}", t.cfg.name);
                }
            }
            t.send(now);
        }
        for (t, _) in &mut retiring {
            t.receive(&mut buf, now);
            if t.ua.poll_timeout().is_some_and(|at| at <= now) {
                t.ua.handle_timeout(now);
            }
            t.send(now);
        }
        retiring.retain(|(t, until)| !t.ua.is_idle() && *until > now);
        let snapshot: Vec<TrunkStatus> = trunks
            .iter()
            .enumerate()
            .map(|(i, t)| TrunkStatus {
                entry: i + 1,
                ..t.status(now)
            })
            .collect();
        *status.lock().unwrap_or_else(PoisonError::into_inner) = snapshot;
        let timeout = trunks
            .iter()
            .filter_map(Trunk::poll_timeout)
            .min()
            .map_or(IDLE, |d| {
                d.saturating_duration_since(Instant::now()).min(IDLE)
            });
        wait(&trunks, timeout);
        let now = Instant::now();
        for t in &mut trunks {
            t.receive(&mut buf, now);
            t.send(now);
        }
    }
    // Clean unregistration: REGISTER with expires=0 from every registered trunk, and a short
    // wait for the answers (retransmitting as needed).
    let now = Instant::now();
    for t in &mut trunks {
        t.ua.shutdown(now);
        t.send(now);
    }
    let until = Instant::now() + UNREGISTER_WAIT;
    while Instant::now() < until && trunks.iter().any(|t| !t.ua.is_idle()) {
        wait(&trunks, Duration::from_millis(20));
        let now = Instant::now();
        for t in &mut trunks {
            t.receive(&mut buf, now);
            if t.ua.poll_timeout().is_some_and(|at| at <= now) {
                t.ua.handle_timeout(now);
            }
            t.send(now);
        }
    }
}

fn wait(trunks: &[Trunk], timeout: Duration) {
    let mut fds: Vec<libc::pollfd> = trunks
        .iter()
        .flat_map(|t| {
            [
                t.udp.as_ref().map(|s| s.as_raw_fd()),
                t.tcp.as_ref().map(|s| s.as_raw_fd()),
            ]
        })
        .flatten()
        .map(|fd| libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    let ms = timeout.as_micros().div_ceil(1000).min(i32::MAX as u128) as i32;
    if fds.is_empty() {
        std::thread::sleep(Duration::from_millis(ms as u64));
        return;
    }
    // SAFETY: `fds` is a live, exclusively borrowed array of `fds.len()` pollfd structs for
    // the whole call; poll(2) only writes their `revents`. The descriptors belong to sockets
    // that outlive the call. Exercised by every trunk test.
    unsafe {
        libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, ms);
    }
}

/// What the API needs to add, change and remove trunks: the store, the configuration to
/// check a change against, and which trunks the config file defines.
pub struct TrunkStore {
    pub db: Arc<crate::store::db::Db>,
    pub base: Config,
    pub from_file: Vec<String>,
}

/// `GET /api/v1/trunks[/{name}]`, `POST /api/v1/trunks/{name}/connect|disconnect`, and with a
/// store `PUT` and `DELETE /api/v1/trunks/{name}`.
pub fn routes(r: &mut crate::admin::Router, trunks: TrunksHandle, store: Option<TrunkStore>) {
    use crate::admin::{ApiError, Json, Role};
    if let Some(store) = store {
        let store = Arc::new(store);
        let (h, st) = (trunks.clone(), store.clone());
        r.put("/api/v1/trunks/{name}", Role::Admin, move |req| {
            let name = req.param("name")?.to_string();
            let body = String::from_utf8_lossy(&req.body).into_owned();
            let cfg = crate::store::trunks::parse(&name, &body).map_err(|e| {
                ApiError::bad_request(format!("trunk {name}: {e}"))
                    .with_fix("send the keys of a [[trunk]] section as JSON, e.g. {\"server\": \"sip.example.org\", \"user\": \"gw\", \"password\": \"...\", \"register\": true}")
            })?;
            // Checked with every other trunk as it is now: names, prefixes, keys.
            let mut whole = st.base.clone();
            whole.trunks = h.configs();
            whole.trunks.retain(|t| t.name != name);
            whole.trunks.push(cfg.clone());
            whole
                .validate()
                .map_err(|e| ApiError::bad_request(e.to_string()))?;
            crate::store::trunks::save(&st.db, &name, &body, unix_ms())
                .map_err(|e| ApiError::internal(e.to_string()))?;
            h.upsert(cfg).map_err(|e| ApiError::new(409, e))?;
            Ok(Json::ok(serde_json::json!({"ok": true})))
        });
        let (h, st) = (trunks.clone(), store);
        r.delete("/api/v1/trunks/{name}", Role::Admin, move |req| {
            let name = req.param("name")?.to_string();
            let stored = crate::store::trunks::delete(&st.db, &name)
                .map_err(|e| ApiError::internal(e.to_string()))?;
            if !stored && st.from_file.contains(&name) {
                return Err(ApiError::new(
                    409,
                    format!("trunk {name} is defined in the config file"),
                )
                .with_fix("remove its [[trunk]] section and restart, or disconnect it"));
            }
            if !stored {
                return Err(ApiError::not_found(format!("no trunk is named {name}")));
            }
            // A stored trunk that replaced a config-file one: the file's comes back.
            match st.base.trunks.iter().find(|t| t.name == name) {
                Some(file) => h.upsert(file.clone()),
                None => h.remove(&name),
            }
            .map_err(|e| ApiError::new(409, e))?;
            Ok(Json::ok(serde_json::json!({"ok": true})))
        });
    }
    let list = trunks.clone();
    r.get("/api/v1/trunks", Role::Viewer, move |_| {
        Json::serialize(&list.status())
    });
    let one = trunks.clone();
    r.get("/api/v1/trunks/{name}", Role::Viewer, move |req| {
        let key = req.param("name")?;
        let name = one.resolve(key);
        match one.status().into_iter().find(|t| t.name == name) {
            Some(t) => Json::serialize(&t),
            None => Err(ApiError::not_found(format!("no trunk is named {name}"))
                .with_fix("GET /api/v1/trunks lists them")),
        }
    });
    let c = trunks.clone();
    r.post("/api/v1/trunks/{name}/connect", Role::Admin, move |req| {
        let name = c.resolve(req.param("name")?);
        c.connect(&name)
            .map(|()| Json::ok(serde_json::json!({"ok": true})))
            .map_err(|e| ApiError::new(409, e))
    });
    r.post(
        "/api/v1/trunks/{name}/disconnect",
        Role::Admin,
        move |req| {
            let name = trunks.resolve(req.param("name")?);
            trunks
                .disconnect(&name)
                .map(|()| Json::ok(serde_json::json!({"ok": true})))
                .map_err(|e| ApiError::new(409, e))
        },
    );
}

fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
